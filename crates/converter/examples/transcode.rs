//! `transcode IN OUT [bitrate_kbps|vN]`: our transcoder on one file, for the benchmark and by hand.

use std::{path::PathBuf, process::ExitCode, sync::atomic::AtomicBool};

use common::jobs::Mp3Quality;
use converter::transcode::{title_from_filename, transcode, TranscodeOptions};

fn main() -> ExitCode {
    common::telemetry::init("transcode");
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(input), Some(output)) = (args.first(), args.get(1)) else {
        tracing::error!("usage: transcode IN OUT [bitrate_kbps | vQUALITY]");
        return ExitCode::from(2);
    };
    let quality = match args.get(2).map(String::as_str) {
        None => Mp3Quality::default(),
        Some(q) => match q.strip_prefix('v') {
            Some(v) => Mp3Quality::Vbr {
                quality: v.parse().unwrap_or(4),
            },
            None => Mp3Quality::Cbr {
                bitrate_kbps: q.parse().unwrap_or(128),
            },
        },
    };
    let options = TranscodeOptions {
        quality,
        title: title_from_filename(input),
    };
    let cancel = AtomicBool::new(false);
    match transcode(
        &PathBuf::from(input),
        &PathBuf::from(output),
        &options,
        &cancel,
        |_| {},
    ) {
        Ok(report) => {
            tracing::info!(?report, "converted");
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!(error = %e, "conversion failed");
            ExitCode::FAILURE
        }
    }
}
