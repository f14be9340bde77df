//! Event-stream benchmark, run by `scripts/bench-events.sh` (not part of the tests).
//!
//! For N concurrent `GET /events` streams (N from `BENCH_EVENT_STREAMS`, default 100,1000,3000)
//! spread over 20 uploads, measures the MongoDB operations per second the streams cause, once
//! with the gateway polling (no `REDIS_URL`) and once with progress pushed over Redis. A
//! simulated converter writes each job's progress every 250 ms in both runs (and publishes it in
//! the push run), as the real one does. Operations are counted by the server: `opcounters` of
//! `serverStatus` (SecantusDB reports them like MongoDB), over a 10 s window, reads (`query` +
//! `getmore`) apart from the converter's `update`s; and the gateway's own count of status reads
//! by event streams (`gateway_event_status_reads_total`, one to two queries each), which shows
//! what polling asks for when the server cannot keep up.
//!
//! Usage: bench_events <path to the gateway binary>; env BENCH_MONGODB_URI, BENCH_AMQP_URL,
//! BENCH_REDIS_URL.
#![allow(clippy::print_stdout, clippy::print_stderr)] // a benchmark reports on the terminal

use std::{
    future::IntoFuture,
    process::{Child, Command, Stdio},
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use anyhow::{bail, Context};
use futures::StreamExt;
use mongodb::bson::{doc, oid::ObjectId, Document};

const UPLOADS: usize = 20;
const CONVERTER_TICK: Duration = Duration::from_millis(250);
const WINDOW: Duration = Duration::from_secs(10);

struct Gateway {
    child: Child,
    base: String,
    admin: String,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Gateway {
    /// CPU seconds (user + system) the process used so far.
    fn cpu_secs(&self) -> f64 {
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())) else {
            return 0.0;
        };
        // Fields after the command name (which may hold spaces) start after the last ')'.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.split_whitespace().collect())
            .unwrap_or_default();
        let ticks: f64 = fields
            .get(11..13)
            .map(|f| f.iter().filter_map(|v| v.parse::<f64>().ok()).sum())
            .unwrap_or(0.0);
        ticks / 100.0
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
    let admin_port = free_port()?;
    let child = Command::new(bin)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .env("GATEWAY_ADDR", format!("127.0.0.1:{port}"))
        .env("GATEWAY_ADMIN_ADDR", format!("127.0.0.1:{admin_port}"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .with_context(|| format!("cannot run {bin}"))?;
    let gateway = Gateway {
        child,
        base: format!("http://127.0.0.1:{port}"),
        admin: format!("http://127.0.0.1:{admin_port}"),
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

async fn upload(http: &reqwest::Client, base: &str, token: &str) -> anyhow::Result<ObjectId> {
    let boundary = "----bench-events";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"bench.mp4\"\r\nContent-Type: video/mp4\r\n\r\n"
    )
    .into_bytes();
    // An MP4's file-type box first: anything not starting like a media file gets 415.
    body.extend_from_slice(b"\0\0\0\x18ftypisom\0\0\x02\0isomiso2");
    body.extend_from_slice(&[7u8; 1024]);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let res = http
        .post(format!("{base}/upload"))
        .bearer_auth(token)
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(body)
        .send()
        .await?;
    if !res.status().is_success() {
        bail!("upload answered {}: {}", res.status(), res.text().await?);
    }
    let body: serde_json::Value = res.json().await?;
    Ok(ObjectId::parse_str(
        body["video_fid"].as_str().context("no video_fid")?,
    )?)
}

/// The gateway's own count of MongoDB status reads made by event streams.
async fn status_reads(http: &reqwest::Client, gateway: &Gateway) -> anyhow::Result<f64> {
    let text = http
        .get(format!("{}/metrics", gateway.admin))
        .send()
        .await?
        .text()
        .await?;
    Ok(text
        .lines()
        .find_map(|l| l.strip_prefix("gateway_event_status_reads_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0))
}

/// Reads (`query` + `getmore`) and updates the server has counted so far.
async fn opcounters(client: &mongodb::Client) -> anyhow::Result<(i64, i64)> {
    let status = client
        .database("admin")
        .run_command(doc! { "serverStatus": 1 })
        .await?;
    let ops: &Document = status.get_document("opcounters")?;
    let n = |k: &str| {
        ops.get(k)
            .and_then(|v| v.as_i64().or_else(|| v.as_i32().map(i64::from)))
            .unwrap_or(0)
    };
    Ok((n("query") + n("getmore"), n("update")))
}

struct Run {
    status_reads_per_sec: f64,
    reads_per_sec: f64,
    updates_per_sec: f64,
    events_per_sec: f64,
    cpu_percent: f64,
    connect_secs: f64,
}

async fn run(
    bin: &str,
    base_env: &[(&str, String)],
    push: Option<(&str, &str)>,
    streams: usize,
    mongo: &mongodb::Client,
    token: &str,
) -> anyhow::Result<Run> {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()?;
    let mut env = base_env.to_vec();
    if let Some((url, channel)) = push {
        env.push(("REDIS_URL", url.to_owned()));
        env.push(("REDIS_EVENTS_CHANNEL", channel.to_owned()));
    }
    let gateway = start(bin, &env, &http).await?;
    let mut fids = Vec::new();
    for _ in 0..UPLOADS {
        fids.push(upload(&http, &gateway.base, token).await?);
    }
    // Let the push run's subscription settle before streams start.
    tokio::time::sleep(Duration::from_millis(500)).await;

    // The simulated converter, running before the streams open (people watch jobs being
    // converted): progress of every job every 250 ms, written (and published).
    let jobs = mongo
        .database("videos")
        .collection::<Document>(common::names::JOBS_COLLECTION);
    let mut publisher = match push {
        Some((url, _)) => Some(
            redis::Client::open(url)?
                .get_multiplexed_async_connection()
                .await?,
        ),
        None => None,
    };
    let channel = push.map(|(_, c)| c.to_owned());
    let fids_written = fids.clone();
    let converter = tokio::spawn(async move {
        let fids = fids_written;
        let mut progress = 0.0f64;
        let mut tick = tokio::time::interval(CONVERTER_TICK);
        loop {
            tick.tick().await;
            progress = (progress + 0.5).min(99.0);
            // One writer per job, as converters are: all jobs' updates at once.
            futures::future::join_all(fids.iter().map(|fid| {
                jobs.update_one(
                    doc! { "_id": fid },
                    doc! { "$set": { "state": "processing", "progress": progress } },
                )
                .into_future()
            }))
            .await;
            for fid in &fids {
                if let (Some(conn), Some(channel)) = (publisher.as_mut(), channel.as_deref()) {
                    let message = common::job_events::JobEvent::progress(fid, progress);
                    let _: Result<i64, _> = redis::cmd("PUBLISH")
                        .arg(channel)
                        .arg(serde_json::to_string(&message).unwrap_or_default())
                        .query_async(conn)
                        .await;
                }
            }
        }
    });

    let events = Arc::new(AtomicU64::new(0));
    let connected = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut clients = Vec::new();
    for i in 0..streams {
        let url = format!("{}/events?fid={}", gateway.base, fids[i % UPLOADS].to_hex());
        let (http, token, events, connected) = (
            http.clone(),
            token.to_owned(),
            events.clone(),
            connected.clone(),
        );
        clients.push(tokio::spawn(async move {
            let Ok(res) = http.get(url).bearer_auth(token).send().await else {
                return;
            };
            if !res.status().is_success() {
                return;
            }
            let mut body = res.bytes_stream();
            let mut first = true;
            while let Some(Ok(chunk)) = body.next().await {
                let n = chunk.windows(13).filter(|w| w == b"event: status").count() as u64;
                if n > 0 && first {
                    first = false;
                    connected.fetch_add(1, Ordering::Relaxed);
                }
                events.fetch_add(n, Ordering::Relaxed);
            }
        }));
    }
    while (connected.load(Ordering::Relaxed) as usize) < streams {
        if started.elapsed() > Duration::from_secs(300) {
            bail!(
                "only {} of {streams} streams started",
                connected.load(Ordering::Relaxed)
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let connect_secs = started.elapsed().as_secs_f64();

    // Settle: reads queued while the streams opened drain first, then measure.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (reads0, updates0) = opcounters(mongo).await?;
    let status0 = status_reads(&http, &gateway).await?;
    let events0 = events.load(Ordering::Relaxed);
    let cpu0 = gateway.cpu_secs();
    let t0 = Instant::now();
    tokio::time::sleep(WINDOW).await;
    let (reads1, updates1) = opcounters(mongo).await?;
    let status1 = status_reads(&http, &gateway).await?;
    let secs = t0.elapsed().as_secs_f64();
    let result = Run {
        status_reads_per_sec: (status1 - status0) / secs,
        // The serverStatus call itself is a command, not a query: nothing to subtract.
        reads_per_sec: (reads1 - reads0) as f64 / secs,
        updates_per_sec: (updates1 - updates0) as f64 / secs,
        events_per_sec: (events.load(Ordering::Relaxed) - events0) as f64 / secs,
        cpu_percent: (gateway.cpu_secs() - cpu0) / secs * 100.0,
        connect_secs,
    };
    converter.abort();
    for client in clients {
        client.abort();
    }
    drop(gateway);
    Ok(result)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let bin = std::env::args()
        .nth(1)
        .context("usage: bench_events <gateway binary>")?;
    let mongo_uri = std::env::var("BENCH_MONGODB_URI").context("BENCH_MONGODB_URI")?;
    let amqp = std::env::var("BENCH_AMQP_URL").context("BENCH_AMQP_URL")?;
    let redis_url = std::env::var("BENCH_REDIS_URL").context("BENCH_REDIS_URL")?;
    let counts: Vec<usize> = std::env::var("BENCH_EVENT_STREAMS")
        .unwrap_or_else(|_| "100,1000,3000".to_owned())
        .split(',')
        .map(|n| n.trim().parse())
        .collect::<Result<_, _>>()
        .context("BENCH_EVENT_STREAMS: numbers separated by commas")?;
    let id = uuid::Uuid::new_v4().simple().to_string();
    let queue = format!("bench-events-{id}");
    let channel = format!("bench:job-events:{id}");
    let secret = format!("bench-{id}");
    let env = [
        ("JWT_SECRET", secret.clone()),
        ("MONGODB_URI", mongo_uri.clone()),
        ("RABBITMQ_URL", amqp.clone()),
        ("VIDEO_QUEUE", queue.clone()),
        ("AUTH_SVC_ADDRESS", format!("127.0.0.1:{}", free_port()?)),
        ("MAX_EVENT_STREAMS_PER_USER", "100000".to_owned()),
        ("EVENT_STREAM_MAX_SECS", "3600".to_owned()),
    ];
    let token = common::jwt::JwtKeys::new(secret.as_bytes()).issue("bench@example.com")?;
    let mongo = mongodb::Client::with_uri_str(&mongo_uri).await?;

    println!(
        "GET /events: MongoDB reads per second caused by N streams over {UPLOADS} uploads, \
         each upload's progress written every {} ms; counted by the server (serverStatus \
         opcounters query+getmore) over {} s",
        CONVERTER_TICK.as_millis(),
        WINDOW.as_secs()
    );
    println!(
        "{:>8} {:>6} {:>12} {:>14} {:>16} {:>10} {:>12} {:>10}",
        "streams",
        "mode",
        "reads/s",
        "reads/s/stream",
        "status reads/s",
        "events/s",
        "gateway CPU",
        "updates/s"
    );
    let mut rows = Vec::new();
    for &n in &counts {
        let mut pair = Vec::new();
        for (mode, push) in [
            ("poll", None),
            ("push", Some((redis_url.as_str(), channel.as_str()))),
        ] {
            let r = run(&bin, &env, push, n, &mongo, &token).await?;
            println!(
                "{n:>8} {mode:>6} {:>12.0} {:>14.3} {:>16.0} {:>10.0} {:>11.0}% {:>10.0}   (streams up in {:.1} s)",
                r.reads_per_sec,
                r.reads_per_sec / n as f64,
                r.status_reads_per_sec,
                r.events_per_sec,
                r.cpu_percent,
                r.updates_per_sec,
                r.connect_secs
            );
            pair.push(r);
        }
        rows.push((n, pair));
    }
    for (n, pair) in &rows {
        println!(
            "{n} streams: polling causes {:.0}x the MongoDB reads of pushing ({:.0} vs {:.0} per second); events delivered {:.2}x",
            pair[0].reads_per_sec / pair[1].reads_per_sec.max(0.001),
            pair[0].reads_per_sec,
            pair[1].reads_per_sec,
            pair[1].events_per_sec / pair[0].events_per_sec.max(0.001),
        );
    }

    let _ = mongo.database("videos").drop().await;
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
