//! Gateway benchmark, run by `scripts/bench-gateway.sh` (not part of the tests).
//!
//! Starts the gateway binary once per measurement against the MongoDB at `BENCH_MONGODB_URI` and
//! the RabbitMQ at `BENCH_AMQP_URL`, and prints, measured in this run:
//! - upload throughput (MB/s) and the gateway's peak RSS (VmHWM) for 10 MiB, 100 MiB, 1 GiB
//!   streamed uploads, each on a fresh gateway process;
//! - `GET /status` with 50 concurrent clients for `BENCH_STATUS_SECS` (default 15) seconds, all
//!   on one upload and then each on an upload of its own, with one tokio worker thread (the
//!   gateway under its k8s CPU limit) and with one per core: requests per second, and the gateway's CPU time per request (user + system from
//!   `/proc/<pid>/stat` over the run, divided by the requests answered: not wall time, which the
//!   MongoDB stand-in dominates). This gateway logs at its default level (`info`), as deployed.
//!
//! Usage: bench_gateway <path to the gateway binary> [status] (`status`: only the `/status` runs)
#![allow(clippy::print_stdout, clippy::print_stderr)] // a benchmark reports on the terminal

use std::{
    process::{Child, Command, Stdio},
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use anyhow::{bail, Context};
use bytes::Bytes;
use futures::StreamExt;

const MIB: u64 = 1024 * 1024;
const CONCURRENCY: usize = 50;
/// Upper bound of the /status run's requests; its duration is `BENCH_STATUS_SECS`.
const STATUS_REQUESTS: u64 = 1_000_000;
const STATUS_SECS: u64 = 15;

struct Gateway {
    child: Child,
    base: String,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Gateway {
    fn peak_rss(&self) -> anyhow::Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        let kib: u64 = status
            .lines()
            .find(|l| l.starts_with("VmHWM:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .context("no VmHWM")?;
        Ok(kib * 1024)
    }

    /// CPU seconds (user + system) the process used so far.
    fn cpu_secs(&self) -> anyhow::Result<f64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id()))?;
        // Fields after the command name (which may hold spaces) start after the last ')';
        // utime and stime are the 12th and 13th of those, in clock ticks.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.split_whitespace().collect())
            .unwrap_or_default();
        let ticks = fields
            .get(11..13)
            .context("short /proc/<pid>/stat")?
            .iter()
            .map(|f| f.parse::<u64>())
            .sum::<Result<u64, _>>()?;
        Ok(ticks as f64 / clock_ticks_per_sec())
    }
}

/// `getconf CLK_TCK`: 100 on every Linux this runs on, asked all the same.
fn clock_ticks_per_sec() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// The 1-minute load average: the machine is shared, and figures are only comparable with it.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".to_owned())
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// `log`: the `RUST_LOG` of the gateway, `None` for its default.
async fn start(
    bin: &str,
    env: &[(&str, String)],
    log: Option<&str>,
    http: &reqwest::Client,
) -> anyhow::Result<Gateway> {
    let port = free_port()?;
    let mut command = Command::new(bin);
    command
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .env("GATEWAY_ADDR", format!("127.0.0.1:{port}"))
        // Any free port: the benchmark does not read /metrics, and 9102 may be taken.
        .env("GATEWAY_ADMIN_ADDR", "127.0.0.1:0")
        .env_remove("RUST_LOG")
        .stdout(Stdio::null());
    if let Some(log) = log {
        command.env("RUST_LOG", log);
    }
    let child = command
        .spawn()
        .with_context(|| format!("cannot run {bin}"))?;
    let gateway = Gateway {
        child,
        base: format!("http://127.0.0.1:{port}"),
    };
    for _ in 0..100 {
        if let Ok(res) = http.get(format!("{}/healthz", gateway.base)).send().await {
            if res.status().is_success() {
                return Ok(gateway);
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("the gateway did not come up")
}

/// The first bytes of an MP4 (a file-type box): the gateway refuses uploads that do not start
/// like a media file with 415 before storing anything.
const MP4_HEAD: &[u8] = b"\0\0\0\x18ftypisom\0\0\x02\0isomiso2";

/// A multipart body with one file of `len` bytes after [`MP4_HEAD`], generated piece by piece.
fn form(len: u64) -> (String, reqwest::Body) {
    const PIECE: u64 = 256 * 1024;
    let boundary = format!("----bench{}", uuid::Uuid::new_v4().simple());
    let mut head = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"bench.mp4\"\r\nContent-Type: video/mp4\r\n\r\n"
    )
    .into_bytes();
    head.extend_from_slice(MP4_HEAD);
    let head = Bytes::from(head);
    let tail = Bytes::from(format!("\r\n--{boundary}--\r\n"));
    let piece = Bytes::from(
        (0..PIECE)
            .map(|i| (i * 31 % 251) as u8)
            .collect::<Vec<u8>>(),
    );
    let pieces = futures::stream::iter(0..len.div_ceil(PIECE))
        .map(move |i| Ok::<_, std::io::Error>(piece.slice(..PIECE.min(len - i * PIECE) as usize)));
    let stream = futures::stream::once(async move { Ok(head) })
        .chain(pieces)
        .chain(futures::stream::once(async move { Ok(tail) }));
    (
        format!("multipart/form-data; boundary={boundary}"),
        reqwest::Body::wrap_stream(stream),
    )
}

async fn upload(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    len: u64,
) -> anyhow::Result<String> {
    let (content_type, body) = form(len);
    let res = http
        .post(format!("{base}/upload"))
        .bearer_auth(token)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await?;
    if !res.status().is_success() {
        bail!("upload answered {}: {}", res.status(), res.text().await?);
    }
    let body: serde_json::Value = res.json().await?;
    body["video_fid"]
        .as_str()
        .map(str::to_owned)
        .context("no video_fid")
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let bin = std::env::args()
        .nth(1)
        .context("usage: bench_gateway <gateway binary>")?;
    let status_only = match std::env::args().nth(2).as_deref() {
        None => false,
        Some("status") => true,
        Some(other) => bail!("unknown run {other:?}: only `status` may be named"),
    };
    let status_secs = match std::env::var("BENCH_STATUS_SECS") {
        Ok(v) => v.parse().context("BENCH_STATUS_SECS: whole seconds")?,
        Err(_) => STATUS_SECS,
    };
    let mongo_uri = std::env::var("BENCH_MONGODB_URI").context("BENCH_MONGODB_URI")?;
    let amqp = std::env::var("BENCH_AMQP_URL").context("BENCH_AMQP_URL")?;
    let queue = format!("bench-{}", uuid::Uuid::new_v4().simple());
    let secret = format!("bench-{}", uuid::Uuid::new_v4().simple());
    let env = [
        ("JWT_SECRET", secret.clone()),
        ("MONGODB_URI", mongo_uri.clone()),
        ("RABBITMQ_URL", amqp.clone()),
        ("VIDEO_QUEUE", queue.clone()),
        ("MAX_UPLOAD_BYTES", (2048 * MIB).to_string()),
        ("AUTH_SVC_ADDRESS", format!("127.0.0.1:{}", free_port()?)),
    ];
    let token = common::jwt::JwtKeys::new(secret.as_bytes()).issue("bench@example.com")?;
    let http = reqwest::Client::new();

    if !status_only {
        uploads(&bin, &env, &token, &http).await?;
    }
    measured_history(&mongo_uri).await?;
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    // The k8s manifest limits the gateway to one CPU, under which tokio (reading the cgroup
    // quota) runs one worker thread: that shape, and the machine's.
    for workers in [1, cores] {
        println!(
            "gateway with {workers} tokio worker thread(s){}:",
            if workers == 1 {
                " (as under the k8s limit of one CPU)"
            } else {
                " (this machine's cores)"
            }
        );
        let mut env = env.to_vec();
        env.push(("TOKIO_WORKER_THREADS", workers.to_string()));
        for watching in [Watching::OneUpload, Watching::OwnUploads] {
            let duration = Duration::from_secs(status_secs);
            status(&bin, &env, &token, &http, duration, watching).await?;
        }
    }

    // Leave no bench queue behind.
    if let Ok(conn) =
        lapin::Connection::connect(&amqp, lapin::ConnectionProperties::default()).await
    {
        if let Ok(channel) = conn.create_channel().await {
            let _ = channel
                .queue_delete(&queue, lapin::options::QueueDeleteOptions::default())
                .await;
        }
        let _ = conn.close(200, "bench done").await;
    }
    Ok(())
}

/// Upload throughput and peak RSS, a fresh gateway per size.
async fn uploads(
    bin: &str,
    env: &[(&str, String)],
    token: &str,
    http: &reqwest::Client,
) -> anyhow::Result<()> {
    println!("gateway upload: streamed multipart into GridFS + confirmed publish, fresh process per size");
    println!(
        "{:>10} {:>10} {:>12} {:>14}",
        "size", "seconds", "MB/s", "peak RSS MiB"
    );
    let mut rss = Vec::new();
    for (label, len) in [
        ("10 MiB", 10 * MIB),
        ("100 MiB", 100 * MIB),
        ("1 GiB", 1024 * MIB),
    ] {
        let gateway = start(bin, env, Some("warn"), http).await?;
        let started = Instant::now();
        upload(http, &gateway.base, token, len).await?;
        let secs = started.elapsed().as_secs_f64();
        let peak = gateway.peak_rss()?;
        rss.push(peak);
        println!(
            "{label:>10} {secs:>10.2} {:>12.1} {:>14.1}",
            len as f64 / 1e6 / secs,
            peak as f64 / MIB as f64
        );
    }
    println!(
        "peak RSS 1 GiB / 10 MiB upload: {:.2}x (flat = 1.00x; goal < 64 MiB)",
        rss[2] as f64 / rss[0] as f64
    );
    Ok(())
}

/// Completed jobs with measured times, as a converter leaves them: with them a queued job's
/// status has an ETA, which counts the jobs queued before it (a deployment's steady state, and
/// the most expensive status there is).
async fn measured_history(mongo_uri: &str) -> anyhow::Result<()> {
    use common::{jobs::fields, names};
    use mongodb::bson::{doc, oid::ObjectId, DateTime};
    let client = mongodb::Client::with_uri_str(mongo_uri).await?;
    let jobs = client
        .database(names::VIDEOS_DB)
        .collection::<mongodb::bson::Document>(names::JOBS_COLLECTION);
    let now = DateTime::now();
    let history: Vec<_> = (0..20)
        .map(|i| {
            doc! {
                fields::ID: ObjectId::new(),
                fields::OWNER: "history@example.com",
                fields::STATE: "completed",
                fields::PROGRESS: 100.0,
                fields::SIZE: 10_000_000_i64 + i,
                fields::PROCESSING_SECS: 8.0 + i as f64 / 10.0,
                fields::CREATED_AT: now,
                fields::UPDATED_AT: now,
            }
        })
        .collect();
    jobs.insert_many(history).await?;
    Ok(())
}

/// Whose upload each `/status` client asks about.
#[derive(Debug, Clone, Copy)]
enum Watching {
    /// All clients one upload (many tabs, streams and scripts watching one conversion).
    OneUpload,
    /// Each client an upload of its own (as many conversions as clients).
    OwnUploads,
}

/// `GET /status` of queued uploads by [`CONCURRENCY`] clients for `duration`: requests per
/// second and the gateway's CPU time per request.
async fn status(
    bin: &str,
    env: &[(&str, String)],
    token: &str,
    http: &reqwest::Client,
    duration: Duration,
    watching: Watching,
) -> anyhow::Result<()> {
    let gateway = start(bin, env, None, http).await?;
    let uploads = match watching {
        Watching::OneUpload => 1,
        Watching::OwnUploads => CONCURRENCY,
    };
    let mut urls = Vec::new();
    for _ in 0..uploads {
        // Until MongoDB is prepared (indexes built) an upload may be refused: a loaded machine.
        let mut fid = upload(http, &gateway.base, token, 1024).await;
        for _ in 0..20 {
            if fid.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
            fid = upload(http, &gateway.base, token, 1024).await;
        }
        urls.push(format!("{}/status?fid={}", gateway.base, fid?));
    }
    for url in &urls {
        // One request first: connections to MongoDB are opened, the status answers 200.
        let first = http.get(url.as_str()).bearer_auth(token).send().await?;
        if !first.status().is_success() {
            bail!(
                "GET /status answered {}: {}",
                first.status(),
                first.text().await?
            );
        }
    }
    let token = Arc::new(token.to_owned());
    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let load = load_average();
    let cpu0 = gateway.cpu_secs()?;
    let deadline = Instant::now() + duration;
    let started = Instant::now();
    let mut clients = Vec::new();
    for client in 0..CONCURRENCY {
        let (http, url, token, done, failed) = (
            http.clone(),
            urls[client % urls.len()].clone(),
            token.clone(),
            done.clone(),
            failed.clone(),
        );
        clients.push(tokio::spawn(async move {
            while Instant::now() < deadline
                && done.fetch_add(1, Ordering::Relaxed) < STATUS_REQUESTS
            {
                match http
                    .get(url.as_str())
                    .bearer_auth(token.as_str())
                    .send()
                    .await
                {
                    Ok(res) if res.status().is_success() => {
                        let _ = res.bytes().await;
                    }
                    _ => {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    for client in clients {
        client.await?;
    }
    let cpu = gateway.cpu_secs()? - cpu0;
    let secs = started.elapsed().as_secs_f64();
    // Counted when sent, and none is sent after the deadline: every one counted was answered.
    let requests = done.load(Ordering::Relaxed).min(STATUS_REQUESTS);
    println!(
        "GET /status, {CONCURRENCY} concurrent clients, {}: {requests} requests in {secs:.1} s = {:.0} req/s ({} failed)",
        match watching {
            Watching::OneUpload => "all on one upload",
            Watching::OwnUploads => "each on an upload of its own",
        },
        requests as f64 / secs,
        failed.load(Ordering::Relaxed)
    );
    println!(
        "gateway CPU per GET /status: {:.3} ms ({cpu:.2} s user+system over the run; {:.0}% of one core; load average {load})",
        cpu * 1e3 / requests.max(1) as f64,
        cpu / secs * 100.0,
    );
    Ok(())
}
