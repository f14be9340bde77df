//! `transcode IN OUT [bitrate_kbps | vQUALITY] [--parallel N] [--segments N]`: our transcoder on
//! one file.
//!
//! Used by the benchmark (run as a child process so its peak RSS is measured alone). With
//! `--parallel N` it converts the input N times at once on N threads (OUT-0.mp3, OUT-1.mp3, ...),
//! like a converter running N jobs. With `--segments N` each conversion is split into N segments
//! encoded at once (segments of at least 30 s), like a job given N idle slots.

use std::{path::PathBuf, process::ExitCode, sync::atomic::AtomicBool, time::Duration};

use common::jobs::Mp3Quality;
use converter::{
    segmented::{self, Split},
    transcode::{title_from_filename, TranscodeOptions},
};

fn main() -> ExitCode {
    common::telemetry::init("transcode");
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut parallel = 1usize;
    if let Some(i) = args.iter().position(|a| a == "--parallel") {
        parallel = args
            .get(i + 1)
            .and_then(|n| n.parse().ok())
            .unwrap_or(1)
            .max(1);
        args.drain(i..(i + 2).min(args.len()));
    }
    let mut segments = 1usize;
    if let Some(i) = args.iter().position(|a| a == "--segments") {
        segments = args
            .get(i + 1)
            .and_then(|n| n.parse().ok())
            .unwrap_or(1)
            .max(1);
        args.drain(i..(i + 2).min(args.len()));
    }
    let split = Split {
        segments,
        min_segment: Duration::from_secs(
            std::env::var("MIN_SEG")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(30),
        ),
    };
    let (Some(input), Some(output)) = (args.first().cloned(), args.get(1).cloned()) else {
        tracing::error!(
            "usage: transcode IN OUT [bitrate_kbps | vQUALITY] [--parallel N] [--segments N]"
        );
        return ExitCode::from(2);
    };
    let quality = match args.get(2).map(String::as_str) {
        None => Ok(Mp3Quality::default()),
        Some(q) => match q.strip_prefix('v') {
            Some(v) => Mp3Quality::vbr(v.parse().unwrap_or(4)),
            None => Mp3Quality::cbr(q.parse().unwrap_or(128)),
        },
    };
    let quality = match quality {
        Ok(quality) => quality,
        Err(e) => {
            tracing::error!("{e}");
            return ExitCode::from(2);
        }
    };
    let options = TranscodeOptions {
        quality,
        title: title_from_filename(&input),
        limits: Default::default(),
    };
    let outputs: Vec<PathBuf> = if parallel == 1 {
        vec![PathBuf::from(&output)]
    } else {
        let stem = output.strip_suffix(".mp3").unwrap_or(&output);
        (0..parallel)
            .map(|i| PathBuf::from(format!("{stem}-{i}.mp3")))
            .collect()
    };
    let failed = std::thread::scope(|scope| {
        let handles: Vec<_> = outputs
            .iter()
            .map(|out| {
                let (input, options) = (PathBuf::from(&input), options.clone());
                scope.spawn(move || {
                    let cancel = AtomicBool::new(false);
                    segmented::transcode(&input, out, &options, &cancel, |_| {}, split)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| match h.join() {
                Ok(Ok(report)) => {
                    tracing::info!(?report, "converted");
                    false
                }
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "conversion failed");
                    true
                }
                Err(_) => {
                    tracing::error!("conversion thread panicked");
                    true
                }
            })
            .fold(false, |acc, f| acc | f)
    });
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
