//! End-to-end converter benchmark: an upload already in GridFS -> the original gateway's message
//! on the queue -> the MP3 stored in GridFS and the job `completed`, against
//! `ffmpeg -i IN -vn -c:a libmp3lame OUT.mp3` on the same file on local disk. One converter slot,
//! runs alternating, medians; prints the ratio (goal: at most 1.15x) and the most bytes the
//! converter's scratch directory held during each conversion.
//!
//! Needs RabbitMQ and MongoDB: `BENCH_AMQP_URL`, `BENCH_MONGODB_URI` (scripts/bench-e2e.sh
//! starts a SecantusDB of its own). Options: `--runs N` (default 3), `--cache DIR` (inputs,
//! default /var/tmp/vidconv-bench).

use std::{
    collections::HashMap,
    io::Write,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{bail, Context};
use common::jobs::{Job, JobState};
use converter::{Application, Config};
use futures::AsyncWriteExt;
use lapin::{
    options::{BasicPublishOptions, QueueDeclareOptions},
    types::FieldTable,
    BasicProperties, Connection, ConnectionProperties,
};
use mongodb::bson::{doc, oid::ObjectId};

/// The input: 5 minutes of 1280x720 H.264 + AAC, the index (`moov`) at the end as the mp4 muxer
/// writes it by default: the converter must seek to the end and back.
const INPUT_FILE: &str = "e2e-5min-720p.mp4";
const INPUT_LAVFI: &[&str] = &[
    "-f",
    "lavfi",
    "-i",
    "testsrc2=size=1280x720:rate=30:duration=300",
    "-f",
    "lavfi",
    "-i",
    "sine=frequency=440:sample_rate=48000:duration=300",
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
];
/// How often the job document and the scratch directory are looked at.
const POLL: Duration = Duration::from_millis(20);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let opt = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1).cloned())
    };
    let runs: usize = opt("--runs").map(|v| v.parse()).transpose()?.unwrap_or(3);
    let cache = PathBuf::from(opt("--cache").unwrap_or_else(|| "/var/tmp/vidconv-bench".into()));
    let amqp_url = std::env::var("BENCH_AMQP_URL").context("BENCH_AMQP_URL")?;
    let mongo_uri = std::env::var("BENCH_MONGODB_URI").context("BENCH_MONGODB_URI")?;
    std::fs::create_dir_all(&cache)?;
    let input = make_input(&cache)?;
    let size = std::fs::metadata(&input)?.len();
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "end to end (GridFS -> queue -> MP3 in GridFS, 1 slot) vs ffmpeg CLI on a local file; \
         {runs} alternating runs, medians; {} CPUs; load average at start: {}",
        num_cpus::get(),
        load_average()
    )?;
    writeln!(
        out,
        "input: {INPUT_FILE}, 5 min 1280x720 H.264 + AAC, {:.1} MiB, moov at the end",
        size as f64 / (1024.0 * 1024.0)
    )?;
    out.flush()?;

    let tag = ObjectId::new().to_hex();
    let videos_db = format!("bench_e2e_videos_{}", &tag[16..]);
    let mp3s_db = format!("bench_e2e_mp3s_{}", &tag[16..]);
    let queue = format!("bench_e2e_{tag}");
    let scratch = tempfile::tempdir()?;
    let client = mongodb::Client::with_uri_str(&mongo_uri).await?;
    let videos = client.database(&videos_db);

    // One upload per run (a converted upload's job is final), stored before anything is timed.
    let bytes = std::fs::read(&input)?;
    let mut uploads = Vec::new();
    for _ in 0..runs {
        let bucket = videos.gridfs_bucket(None);
        let mut stream = bucket
            .open_upload_stream(INPUT_FILE)
            .metadata(doc! { "owner": "bench@example.com", "filename": INPUT_FILE })
            .await?;
        stream.write_all(&bytes).await?;
        stream.close().await?;
        uploads.push(stream.id().as_object_id().context("upload id")?);
    }
    drop(bytes);

    let env = HashMap::from([
        ("CONVERTER_ADDR".to_owned(), "127.0.0.1:0".to_owned()),
        ("RABBITMQ_URL".to_owned(), amqp_url.clone()),
        ("VIDEO_QUEUE".to_owned(), queue.clone()),
        (
            "MONGODB_VIDEOS_URI".to_owned(),
            with_db(&mongo_uri, &videos_db),
        ),
        ("MONGODB_MP3S_URI".to_owned(), with_db(&mongo_uri, &mp3s_db)),
        ("CONVERTER_CONCURRENCY".to_owned(), "1".to_owned()),
        (
            "CONVERTER_TMP_DIR".to_owned(),
            scratch.path().display().to_string(),
        ),
    ]);
    let app = Application::build(Config::from_env(&env)?).await?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let converter = tokio::spawn(app.run_until(async move {
        let _ = stopped.await;
    }));
    let connection = Connection::connect(&amqp_url, ConnectionProperties::default()).await?;
    let channel = connection.create_channel().await?;
    let durable = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    channel
        .queue_declare(&queue, durable, FieldTable::default())
        .await?;

    let cli_out = tempfile::tempdir()?;
    let jobs = videos.collection::<Job>(common::names::JOBS_COLLECTION);
    let (mut ours, mut cli, mut peaks) = (Vec::new(), Vec::new(), Vec::new());
    for (run, fid) in uploads.iter().enumerate() {
        let cli_first = run % 2 == 0;
        if cli_first {
            cli.push(run_cli(&input, cli_out.path())?);
        }
        let message = serde_json::json!({
            "video_fid": fid.to_hex(), "mp3_fid": null, "username": "bench@example.com"
        });
        let started = Instant::now();
        channel
            .basic_publish(
                "",
                &queue,
                BasicPublishOptions::default(),
                message.to_string().as_bytes(),
                BasicProperties::default().with_delivery_mode(2),
            )
            .await?
            .await?;
        let mut peak = 0;
        loop {
            peak = peak.max(dir_bytes(scratch.path()));
            if let Some(job) = jobs.find_one(doc! { "_id": fid }).await? {
                match job.state {
                    JobState::Completed => break,
                    JobState::Failed => bail!("the conversion failed: {:?}", job.error),
                    _ => {}
                }
            }
            if started.elapsed() > Duration::from_secs(600) {
                bail!("no result after 10 minutes");
            }
            tokio::time::sleep(POLL).await;
        }
        ours.push(started.elapsed().as_secs_f64());
        peaks.push(peak);
        if !cli_first {
            cli.push(run_cli(&input, cli_out.path())?);
        }
        writeln!(
            out,
            "  run {}: ours {:.2} s, CLI {:.2} s, scratch peak {:.2} MiB",
            run + 1,
            ours[run],
            cli[run],
            peak as f64 / (1024.0 * 1024.0)
        )?;
        out.flush()?;
    }
    let (ours_median, cli_median) = (median(ours), median(cli));
    writeln!(
        out,
        "end to end: ours {ours_median:.2} s, CLI {cli_median:.2} s, ratio {:.2}x (goal <= 1.15x); \
         scratch peak {:.2} MiB for a {:.1} MiB upload (the MP3 only)",
        ours_median / cli_median,
        peaks.iter().copied().max().unwrap_or(0) as f64 / (1024.0 * 1024.0),
        size as f64 / (1024.0 * 1024.0)
    )?;
    writeln!(out, "load average at end: {}", load_average())?;

    let _ = stop.send(());
    converter.await??;
    let _ = channel.queue_delete(&queue, Default::default()).await;
    for db in [&videos_db, &mp3s_db] {
        client.database(db).drop().await?;
    }
    Ok(())
}

fn run_cli(input: &Path, dir: &Path) -> anyhow::Result<f64> {
    let started = Instant::now();
    let ok = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-i"])
        .arg(input)
        .args(["-vn", "-c:a", "libmp3lame"])
        .arg(dir.join("cli.mp3"))
        .status()?
        .success();
    if !ok {
        bail!("the ffmpeg CLI failed");
    }
    Ok(started.elapsed().as_secs_f64())
}

/// The URI with a database in its path.
fn with_db(uri: &str, db: &str) -> String {
    let (scheme, rest) = uri.split_once("://").unwrap_or(("mongodb", uri));
    let (hosts, query) = match rest.split_once('/') {
        Some((h, q)) => (h, q.trim_start_matches(|c| c != '?')),
        None => (rest, ""),
    };
    format!("{scheme}://{hosts}/{db}{query}")
}

fn make_input(cache: &Path) -> anyhow::Result<PathBuf> {
    let path = cache.join(INPUT_FILE);
    if !path.exists() {
        let tmp = cache.join(format!("{INPUT_FILE}.partial.mp4"));
        let ok = Command::new("ffmpeg")
            .args(["-v", "error", "-y"])
            .args(INPUT_LAVFI)
            .arg(&tmp)
            .status()?
            .success();
        if !ok {
            bail!("ffmpeg could not make {INPUT_FILE}");
        }
        std::fs::rename(&tmp, &path)?;
    }
    Ok(path)
}

fn dir_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            total += dir_bytes(&path);
        } else if let Ok(meta) = entry.metadata() {
            total += meta.len();
        }
    }
    total
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "unknown".into())
}
