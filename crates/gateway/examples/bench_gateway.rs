//! Gateway benchmark, run by `scripts/bench-gateway.sh` (not part of the tests).
//!
//! Starts the gateway binary once per measurement against the MongoDB at `BENCH_MONGODB_URI` and
//! the RabbitMQ at `BENCH_AMQP_URL`, and prints, measured in this run:
//! - upload throughput (MB/s) and the gateway's peak RSS (VmHWM) for 10 MiB, 100 MiB, 1 GiB
//!   streamed uploads, each on a fresh gateway process;
//! - `GET /status` requests per second with 50 concurrent clients (bounded in count and time).
//!
//! Usage: bench_gateway <path to the gateway binary>
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
/// Upper bounds of the /status run: whichever comes first.
const STATUS_REQUESTS: u64 = 50_000;
const STATUS_DURATION: Duration = Duration::from_secs(15);

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
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

async fn start(
    bin: &str,
    env: &[(&str, String)],
    http: &reqwest::Client,
) -> anyhow::Result<Gateway> {
    let port = free_port()?;
    let child = Command::new(bin)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .env("GATEWAY_ADDR", format!("127.0.0.1:{port}"))
        // Any free port: the benchmark does not read /metrics, and 9102 may be taken.
        .env("GATEWAY_ADMIN_ADDR", "127.0.0.1:0")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
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
    let mongo = std::env::var("BENCH_MONGODB_URI").context("BENCH_MONGODB_URI")?;
    let amqp = std::env::var("BENCH_AMQP_URL").context("BENCH_AMQP_URL")?;
    let queue = format!("bench-{}", uuid::Uuid::new_v4().simple());
    let secret = format!("bench-{}", uuid::Uuid::new_v4().simple());
    let env = [
        ("JWT_SECRET", secret.clone()),
        ("MONGODB_URI", mongo),
        ("RABBITMQ_URL", amqp.clone()),
        ("VIDEO_QUEUE", queue.clone()),
        ("MAX_UPLOAD_BYTES", (2048 * MIB).to_string()),
        ("AUTH_SVC_ADDRESS", format!("127.0.0.1:{}", free_port()?)),
    ];
    let token = common::jwt::JwtKeys::new(secret.as_bytes()).issue("bench@example.com")?;
    let http = reqwest::Client::new();

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
        let gateway = start(&bin, &env, &http).await?;
        let started = Instant::now();
        upload(&http, &gateway.base, &token, len).await?;
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

    let gateway = start(&bin, &env, &http).await?;
    let fid = upload(&http, &gateway.base, &token, 1024).await?;
    let url = Arc::new(format!("{}/status?fid={fid}", gateway.base));
    let token = Arc::new(token);
    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + STATUS_DURATION;
    let started = Instant::now();
    let mut clients = Vec::new();
    for _ in 0..CONCURRENCY {
        let (http, url, token, done, failed) = (
            http.clone(),
            url.clone(),
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
    let secs = started.elapsed().as_secs_f64();
    let requests = done.load(Ordering::Relaxed).min(STATUS_REQUESTS);
    println!(
        "GET /status, {CONCURRENCY} concurrent clients: {requests} requests in {secs:.1} s = {:.0} req/s ({} failed)",
        requests as f64 / secs,
        failed.load(Ordering::Relaxed)
    );
    drop(gateway);

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
