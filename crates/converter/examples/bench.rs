//! Benchmark: our transcoder against `ffmpeg -i IN -vn -c:a libmp3lame OUT.mp3` on the same inputs.
//!
//! `bench [--runs N] [--parallel N] [--segment-runs N] [--segments-only] [--cache DIR]`. Inputs
//! are made once with lavfi and cached. Both tools run as child processes under `/usr/bin/time`
//! (peak RSS), alternating which goes first, and the medians are compared. Release builds only
//! give meaningful numbers.
//!
//! Then segment-parallel encoding: the 10-minute and a 60-minute input converted on 1, 2 and 4
//! slots (`transcode --segments N`) against the CLI, and the seam quality of a 2- and 4-way
//! split of a 3-minute music-like input against a one-stream encode.

use std::{
    io::Write,
    path::{Path, PathBuf},
    process::Command,
    sync::atomic::AtomicBool,
    time::{Duration, Instant},
};

use anyhow::{bail, Context};
use common::jobs::Mp3Quality;
use converter::{
    seam_quality::{self, decode_pcm},
    segmented::{self, Split},
    transcode::{transcode, TranscodeOptions},
};

struct Input {
    name: &'static str,
    file: &'static str,
    lavfi: &'static [&'static str],
}

const INPUTS: &[Input] = &[
    Input {
        name: "short clip (30 s, 640x360 H.264 + AAC 44.1 kHz stereo)",
        file: "short-360p.mp4",
        lavfi: &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=640x360:rate=30:duration=30",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=44100:duration=30",
            "-ac",
            "2",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
            "-b:a",
            "128k",
            "-shortest",
        ],
    },
    Input {
        name: "10 min, 1280x720 H.264 + AAC 48 kHz stereo",
        file: "long-720p.mp4",
        lavfi: &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=1280x720:rate=30:duration=600",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=48000:duration=600",
            "-ac",
            "2",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-crf",
            "28",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
            "-b:a",
            "128k",
            "-shortest",
        ],
    },
];

/// The hour-long input of the segment benchmark: small video (it is skipped anyway), the same
/// tone as the 10-minute input.
const HOUR: Input = Input {
    name: "60 min, 320x180 H.264 + AAC 48 kHz stereo",
    file: "hour-180p.mp4",
    lavfi: &[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=320x180:rate=15:duration=3600",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:sample_rate=48000:duration=3600",
        "-ac",
        "2",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-crf",
        "30",
        "-pix_fmt",
        "yuv420p",
        "-c:a",
        "aac",
        "-b:a",
        "128k",
        "-shortest",
    ],
};

/// Music-like audio for the seam measurements (the tests' kind: tones, noise, clicks).
const MUSIC: Input = Input {
    name: "3 min music-like AAC 44.1 kHz stereo",
    file: "music-3min.m4a",
    lavfi: &[
        "-f",
        "lavfi",
        "-i",
        "aevalsrc=exprs='0.3*sin(2*PI*440*t)*(0.6+0.4*sin(2*PI*20*t))+0.15*sin(2*PI*(1500+300*sin(2*PI*20*t))*t)+0.03*(random(0)-0.5)+0.4*lt(mod(t,0.025),0.0005)|0.25*sin(2*PI*660*t+2*sin(2*PI*20*t))+0.03*(random(1)-0.5)+0.2*sin(2*PI*97*t)':s=44100:d=180",
        "-c:a",
        "aac",
        "-b:a",
        "192k",
    ],
};

struct Run {
    secs: f64,
    max_rss_kib: u64,
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let opt = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1).cloned())
    };
    let runs: usize = opt("--runs").map(|v| v.parse()).transpose()?.unwrap_or(5);
    let parallel: usize = opt("--parallel")
        .map(|v| v.parse())
        .transpose()?
        .unwrap_or_else(num_cpus::get);
    let segment_runs: usize = opt("--segment-runs")
        .map(|v| v.parse())
        .transpose()?
        .unwrap_or(3);
    let segments_only = args.iter().any(|a| a == "--segments-only");
    let cache = PathBuf::from(opt("--cache").unwrap_or_else(|| "/var/tmp/vidconv-bench".into()));
    std::fs::create_dir_all(&cache)?;
    let ours = std::env::current_exe()?
        .parent()
        .context("no exe dir")?
        .join("transcode");
    if !ours.exists() {
        bail!(
            "{} missing: cargo build --release -p converter --examples",
            ours.display()
        );
    }
    let out_dir = tempfile::tempdir()?;
    let mut stdout = std::io::stdout().lock();
    writeln!(
        stdout,
        "converter benchmark: {runs} alternating runs per tool, medians; {} CPUs",
        num_cpus::get()
    )?;
    writeln!(
        stdout,
        "CLI: ffmpeg -i IN -vn -c:a libmp3lame OUT.mp3 ({})",
        ffmpeg_version()
    )?;
    writeln!(
        stdout,
        "load average at start: {} (other work on the machine skews absolute times; runs alternate)",
        load_average()
    )?;

    let mut long_input = None;
    for input in INPUTS.iter().filter(|_| !segments_only) {
        let path = make_input(&cache, input, &mut stdout)?;
        let media_secs = duration(&path)?;
        let size_mib = std::fs::metadata(&path)?.len() as f64 / (1024.0 * 1024.0);
        let out = out_dir.path().join("out.mp3");
        let mut ours_runs = Vec::new();
        let mut cli_runs = Vec::new();
        for i in 0..runs {
            let mut ours_cmd = Command::new(&ours);
            ours_cmd.arg(&path).arg(&out);
            let mut cli_cmd = Command::new("ffmpeg");
            cli_cmd
                .args(["-v", "error", "-y", "-i"])
                .arg(&path)
                .args(["-vn", "-c:a", "libmp3lame"])
                .arg(&out);
            if i % 2 == 0 {
                ours_runs.push(timed(ours_cmd)?);
                cli_runs.push(timed(cli_cmd)?);
            } else {
                cli_runs.push(timed(cli_cmd)?);
                ours_runs.push(timed(ours_cmd)?);
            }
        }
        let ours_med = median(ours_runs.iter().map(|r| r.secs).collect());
        let cli_med = median(cli_runs.iter().map(|r| r.secs).collect());
        let rss =
            |runs: &[Run]| runs.iter().map(|r| r.max_rss_kib).max().unwrap_or(0) as f64 / 1024.0;
        writeln!(
            stdout,
            "\n{} [{:.0} s of media, {size_mib:.1} MiB]",
            input.name, media_secs
        )?;
        writeln!(
            stdout,
            "  wall time median   ours {ours_med:.3} s   CLI {cli_med:.3} s   ratio ours/CLI {:.3}",
            ours_med / cli_med
        )?;
        writeln!(
            stdout,
            "  realtime factor    ours {:.0}x   CLI {:.0}x",
            media_secs / ours_med,
            media_secs / cli_med
        )?;
        writeln!(
            stdout,
            "  peak RSS           ours {:.1} MiB   CLI {:.1} MiB",
            rss(&ours_runs),
            rss(&cli_runs)
        )?;
        stdout.flush()?;
        long_input = Some((path, media_secs));
    }

    if let Some((path, media_secs)) = long_input.filter(|_| !segments_only) {
        let out = out_dir.path().join("par.mp3");
        let one = median(
            (0..runs.min(3))
                .map(|_| {
                    let mut c = Command::new(&ours);
                    c.arg(&path).arg(&out);
                    timed(c).map(|r| r.secs)
                })
                .collect::<anyhow::Result<Vec<_>>>()?,
        );
        let mut c = Command::new(&ours);
        c.arg(&path)
            .arg(&out)
            .args(["--parallel", &parallel.to_string()]);
        let many = timed(c)?;
        let speedup = parallel as f64 * one / many.secs;
        writeln!(
            stdout,
            "\nconcurrency on the 10-minute input ({parallel} conversions in one process)"
        )?;
        writeln!(stdout, "  1 conversion {one:.3} s; {parallel} at once {:.3} s; throughput {speedup:.2}x of one ({:.0}x realtime in total); peak RSS {:.1} MiB",
            many.secs, parallel as f64 * media_secs / many.secs, many.max_rss_kib as f64 / 1024.0)?;
    }
    let ten = make_input(&cache, &INPUTS[1], &mut stdout)?;
    let hour = make_input(&cache, &HOUR, &mut stdout)?;
    for (input, path) in [(&INPUTS[1], &ten), (&HOUR, &hour)] {
        bench_segments(
            &ours,
            input,
            path,
            segment_runs,
            out_dir.path(),
            &mut stdout,
        )?;
    }
    let music = make_input(&cache, &MUSIC, &mut stdout)?;
    bench_seams(&music, out_dir.path(), &mut stdout)?;
    writeln!(stdout, "\nload average at end: {}", load_average())?;
    Ok(())
}

/// The cached input, made with lavfi the first time.
fn make_input(cache: &Path, input: &Input, stdout: &mut impl Write) -> anyhow::Result<PathBuf> {
    let path = cache.join(input.file);
    if !path.exists() {
        writeln!(
            stdout,
            "making {} (once, cached in {})",
            input.file,
            cache.display()
        )?;
        stdout.flush()?;
        let ext = Path::new(input.file)
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or("mp4");
        let tmp = cache.join(format!("{}.partial.{ext}", input.file));
        let ok = Command::new("ffmpeg")
            .args(["-v", "error", "-y"])
            .args(input.lavfi)
            .arg(&tmp)
            .status()?
            .success();
        if !ok {
            bail!("ffmpeg could not make {}", input.file);
        }
        std::fs::rename(&tmp, &path)?;
    }
    Ok(path)
}

/// One input on 1, 2 and 4 slots against the CLI, alternating which runs first.
fn bench_segments(
    ours: &Path,
    input: &Input,
    path: &Path,
    runs: usize,
    out_dir: &Path,
    stdout: &mut impl Write,
) -> anyhow::Result<()> {
    const SLOTS: [usize; 3] = [1, 2, 4];
    let media_secs = duration(path)?;
    let out = out_dir.join("seg.mp3");
    let mut cli = Vec::new();
    let mut by_slots: Vec<Vec<f64>> = vec![Vec::new(); SLOTS.len()];
    let mut rss_kib = [0u64; SLOTS.len()];
    for i in 0..runs {
        let run_cli = |cli: &mut Vec<f64>| -> anyhow::Result<()> {
            let mut c = Command::new("ffmpeg");
            c.args(["-v", "error", "-y", "-i"])
                .arg(path)
                .args(["-vn", "-c:a", "libmp3lame"])
                .arg(&out);
            cli.push(timed(c)?.secs);
            Ok(())
        };
        if i % 2 == 0 {
            run_cli(&mut cli)?;
        }
        for (k, slots) in SLOTS.iter().enumerate() {
            let mut c = Command::new(ours);
            c.arg(path)
                .arg(&out)
                .args(["--segments", &slots.to_string()]);
            let run = timed(c)?;
            by_slots[k].push(run.secs);
            rss_kib[k] = rss_kib[k].max(run.max_rss_kib);
        }
        if i % 2 == 1 {
            run_cli(&mut cli)?;
        }
    }
    let cli = median(cli);
    writeln!(
        stdout,
        "\nsegment-parallel encoding, {} [{media_secs:.0} s of media], median of {runs} (CPUs: {})",
        input.name,
        num_cpus::get()
    )?;
    writeln!(stdout, "  CLI             {cli:8.3} s")?;
    for ((slots, times), rss) in SLOTS.iter().zip(by_slots).zip(rss_kib) {
        let t = median(times);
        writeln!(
            stdout,
            "  ours, {slots} slot{} {t:8.3} s   ratio ours/CLI {:.3}   {:.0}x realtime   peak RSS {:.1} MiB{}",
            if *slots == 1 { " " } else { "s" },
            t / cli,
            media_secs / t,
            rss as f64 / 1024.0,
            if *slots > num_cpus::get() {
                "   (more segments than CPUs: bound by the cores)"
            } else {
                ""
            }
        )?;
    }
    stdout.flush()?;
    Ok(())
}

/// Seam quality of 2- and 4-way splits against a one-stream encode of the same source.
fn bench_seams(path: &Path, out_dir: &Path, stdout: &mut impl Write) -> anyhow::Result<()> {
    let cancel = AtomicBool::new(false);
    let source = decode_pcm(path, 2)?;
    writeln!(
        stdout,
        "\nseam quality, {} (SNR against the source's PCM; worst 50 ms window at a seam / median window)",
        MUSIC.name
    )?;
    for quality in [Mp3Quality::cbr(128)?, Mp3Quality::vbr(2)?] {
        let options = TranscodeOptions {
            quality,
            title: None,
            limits: Default::default(),
        };
        let single = out_dir.join("single.mp3");
        transcode(path, &single, &options, &cancel, |_| {})?;
        let single_pcm = decode_pcm(&single, 2)?;
        for segments in [2, 4] {
            let split_mp3 = out_dir.join("split.mp3");
            let split = Split {
                segments,
                min_segment: Duration::from_secs(30),
            };
            let report = segmented::transcode(path, &split_mp3, &options, &cancel, |_| {}, split)?;
            let pcm = decode_pcm(&split_mp3, 2)?;
            let r = seam_quality::compare(&source, &single_pcm, &pcm, 44_100, 2, segments);
            writeln!(
                stdout,
                "  {quality:?}, {} segments: SNR one stream {:.2} dB, segmented {:.2} dB (difference {:+.2} dB); worst seam window {:.2}x the median; samples {} vs source {}",
                report.segments,
                r.snr_single_db,
                r.snr_segmented_db,
                r.snr_segmented_db - r.snr_single_db,
                r.worst_seam_window,
                pcm.len() / 2,
                source.len() / 2
            )?;
        }
    }
    stdout.flush()?;
    Ok(())
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "unknown".into())
}

/// Runs `cmd` under `/usr/bin/time -f %M` and returns its wall time and peak RSS.
fn timed(cmd: Command) -> anyhow::Result<Run> {
    let rss_file = tempfile::NamedTempFile::new()?;
    let mut time = Command::new("/usr/bin/time");
    // Only our transcoder logs; keep its per-file line out of the report.
    time.env("RUST_LOG", "warn");
    time.args(["-f", "%M", "-o"])
        .arg(rss_file.path())
        .arg(cmd.get_program())
        .args(cmd.get_args());
    let start = Instant::now();
    let status = time
        .status()
        .context("/usr/bin/time (Debian package `time`)")?;
    let secs = start.elapsed().as_secs_f64();
    if !status.success() {
        bail!("{:?} failed", cmd.get_program());
    }
    let text = std::fs::read_to_string(rss_file.path())?;
    let max_rss_kib = text
        .lines()
        .rev()
        .find_map(|l| l.trim().parse().ok())
        .context("no RSS from /usr/bin/time")?;
    Ok(Run { secs, max_rss_kib })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn duration(path: &Path) -> anyhow::Result<f64> {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "format=duration",
            "-of",
            "default=nw=1:nk=1",
        ])
        .arg(path)
        .output()?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().parse()?)
}

fn ffmpeg_version() -> String {
    Command::new("ffmpeg")
        .arg("-version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| {
            s.lines()
                .next()
                .map(|l| l.split(" Copyright").next().unwrap_or(l).to_owned())
        })
        .unwrap_or_else(|| "unknown version".into())
}
