//! Benchmark: our transcoder against `ffmpeg -i IN -vn -c:a libmp3lame OUT.mp3` on the same inputs.
//!
//! `bench [--runs N] [--parallel N] [--cache DIR]`. Inputs are made once with lavfi and cached.
//! Both tools run as child processes under `/usr/bin/time` (peak RSS), alternating which goes
//! first, and the medians are compared. Release builds only give meaningful numbers.

use std::{
    io::Write,
    path::{Path, PathBuf},
    process::Command,
    time::Instant,
};

use anyhow::{bail, Context};

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
    for input in INPUTS {
        let path = cache.join(input.file);
        if !path.exists() {
            writeln!(
                stdout,
                "making {} (once, cached in {})",
                input.file,
                cache.display()
            )?;
            stdout.flush()?;
            let tmp = cache.join(format!("{}.partial.mp4", input.file));
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

    if let Some((path, media_secs)) = long_input {
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
    writeln!(stdout, "\nload average at end: {}", load_average())?;
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
