//! Test harness: a unique queue and unique databases per test, media made with the ffmpeg CLI,
//! the converter started in-process on port 0 (or as the built binary).
#![allow(dead_code)]

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use common::jobs::{Job, JobState};
use converter::{Application, Config};
use futures::{AsyncWriteExt, TryStreamExt};
use lapin::{
    options::{BasicGetOptions, BasicPublishOptions, QueueDeclareOptions, QueueDeleteOptions},
    types::FieldTable,
    BasicProperties, Channel, Connection, ConnectionProperties,
};
use mongodb::{
    bson::{doc, oid::ObjectId, Bson, Document},
    gridfs::{FilesCollectionDocument, GridFsBucket},
    Client, Database,
};
use tokio::sync::oneshot;

/// The services a test talks to, with names no other test uses.
pub struct TestEnv {
    pub amqp_url: String,
    pub mongo_uri: String,
    pub videos_db: String,
    pub mp3s_db: String,
    pub queue: String,
    pub tmp: tempfile::TempDir,
    pub media: tempfile::TempDir,
    pub client: Client,
    pub channel: Channel,
    /// Drop `videos_db` and `mp3s_db` at the end (not when they are the shared `videos`/`mp3s`).
    pub drop_databases: bool,
    _connection: Connection,
}

fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run `eval \"$(bash scripts/test-deps.sh)\"` first")
    })
}

/// The URI with a database in its path (what MONGODB_VIDEOS_URI / MONGODB_MP3S_URI look like).
fn uri_with_db(uri: &str, db: &str) -> String {
    let (scheme, rest) = uri.split_once("://").expect("mongodb uri");
    let (hosts, query) = match rest.split_once('/') {
        Some((h, q)) => (h, q.trim_start_matches(|c| c != '?')),
        None => (rest, ""),
    };
    format!("{scheme}://{hosts}/{db}{query}")
}

impl TestEnv {
    pub async fn new() -> TestEnv {
        let amqp_url = var("TEST_AMQP_URL");
        let mongo_uri = var("TEST_MONGODB_URI");
        let id = uuid::Uuid::new_v4().simple().to_string();
        let connection = Connection::connect(&amqp_url, ConnectionProperties::default())
            .await
            .expect("RabbitMQ");
        let channel = connection.create_channel().await.unwrap();
        let client = Client::with_uri_str(&mongo_uri).await.unwrap();
        TestEnv {
            amqp_url,
            videos_db: format!("cv_videos_{}", &id[..12]),
            mp3s_db: format!("cv_mp3s_{}", &id[..12]),
            queue: format!("cv_test_{id}"),
            mongo_uri,
            tmp: tempfile::tempdir().unwrap(),
            media: tempfile::tempdir().unwrap(),
            client,
            channel,
            drop_databases: true,
            _connection: connection,
        }
    }

    /// Uses the databases `videos` and `mp3s` themselves, as the original converter does; they
    /// are shared with other tests, so the test removes what it stored and nothing is dropped.
    pub fn use_original_databases(&mut self) {
        self.videos_db = common::names::VIDEOS_DB.to_owned();
        self.mp3s_db = common::names::MP3S_DB.to_owned();
        self.drop_databases = false;
    }

    /// The converter's environment for this test.
    pub fn env(&self) -> HashMap<String, String> {
        HashMap::from([
            ("CONVERTER_ADDR".into(), "127.0.0.1:0".into()),
            ("RABBITMQ_URL".into(), self.amqp_url.clone()),
            ("VIDEO_QUEUE".into(), self.queue.clone()),
            (
                "MONGODB_VIDEOS_URI".into(),
                uri_with_db(&self.mongo_uri, &self.videos_db),
            ),
            (
                "MONGODB_MP3S_URI".into(),
                uri_with_db(&self.mongo_uri, &self.mp3s_db),
            ),
            ("CONVERTER_CONCURRENCY".into(), "2".into()),
            (
                "CONVERTER_TMP_DIR".into(),
                self.tmp.path().display().to_string(),
            ),
            ("CONVERTER_RETRY_BASE_MS".into(), "100".into()),
        ])
    }

    /// Starts the converter in this process; dropping the handle's sender stops it.
    pub async fn spawn_app(&self) -> RunningApp {
        self.spawn_app_with_env(&self.env()).await
    }

    /// Starts the converter in this process with exactly the environment `env`.
    pub async fn spawn_app_with_env(&self, env: &HashMap<String, String>) -> RunningApp {
        let config = Config::from_env(env).expect("config");
        let app = Application::build(config).await.expect("build");
        let port = app.port();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(app.run_until(async move {
            let _ = stopped.await;
        }));
        RunningApp { port, stop, task }
    }

    pub fn videos(&self) -> Database {
        self.client.database(&self.videos_db)
    }

    pub fn mp3s(&self) -> Database {
        self.client.database(&self.mp3s_db)
    }

    pub fn mp3_bucket(&self) -> GridFsBucket {
        self.mp3s().gridfs_bucket(None)
    }

    /// Stores a file the way the gateway does: videos bucket `fs`, metadata with owner.
    pub async fn upload(&self, path: &Path, filename: &str, owner: &str) -> ObjectId {
        self.upload_in_chunks(path, filename, owner, None).await
    }

    /// [`TestEnv::upload`] with chunks of `chunk` bytes (the driver's 255 KiB when `None`).
    pub async fn upload_in_chunks(
        &self,
        path: &Path,
        filename: &str,
        owner: &str,
        chunk: Option<u32>,
    ) -> ObjectId {
        let bucket = self.videos().gridfs_bucket(None);
        let mut stream = bucket
            .open_upload_stream(filename)
            .with_options(
                mongodb::options::GridFsUploadOptions::builder()
                    .chunk_size_bytes(chunk)
                    .metadata(
                        doc! { "owner": owner, "filename": filename, "content_type": "video/mp4" },
                    )
                    .build(),
            )
            .await
            .unwrap();
        stream
            .write_all(&std::fs::read(path).unwrap())
            .await
            .unwrap();
        stream.close().await.unwrap();
        stream.id().as_object_id().unwrap()
    }

    pub async fn insert_job(&self, job: &Job) {
        self.videos()
            .collection::<Job>(common::names::JOBS_COLLECTION)
            .insert_one(job)
            .await
            .unwrap();
    }

    pub async fn job(&self, id: ObjectId) -> Option<Job> {
        self.videos()
            .collection::<Job>(common::names::JOBS_COLLECTION)
            .find_one(doc! { "_id": id })
            .await
            .unwrap()
    }

    /// Publishes like the original gateway: persistent, default exchange.
    pub async fn publish_raw(&self, payload: &[u8]) {
        self.declare(&self.queue).await;
        self.channel
            .basic_publish(
                "",
                &self.queue,
                BasicPublishOptions::default(),
                payload,
                BasicProperties::default().with_delivery_mode(2),
            )
            .await
            .unwrap()
            .await
            .unwrap();
    }

    /// Our gateway's message for an upload: with the request id and traceparent headers.
    pub async fn publish_traced(
        &self,
        video_fid: ObjectId,
        username: &str,
        request_id: &str,
        traceparent: &str,
    ) {
        self.declare(&self.queue).await;
        let body = serde_json::json!({"video_fid": video_fid.to_hex(), "mp3_fid": null, "username": username});
        let mut headers = lapin::types::FieldTable::default();
        for (name, value) in [("x-request-id", request_id), ("traceparent", traceparent)] {
            headers.insert(
                name.into(),
                lapin::types::AMQPValue::LongString(value.into()),
            );
        }
        self.channel
            .basic_publish(
                "",
                &self.queue,
                BasicPublishOptions::default(),
                body.to_string().as_bytes(),
                BasicProperties::default()
                    .with_delivery_mode(2)
                    .with_headers(headers),
            )
            .await
            .unwrap()
            .await
            .unwrap();
    }

    /// The original gateway's message for an upload.
    pub async fn publish(&self, video_fid: ObjectId, username: &str) {
        let body = serde_json::json!({"video_fid": video_fid.to_hex(), "mp3_fid": null, "username": username});
        self.publish_raw(body.to_string().as_bytes()).await;
    }

    pub async fn declare(&self, queue: &str) -> u32 {
        self.channel
            .queue_declare(
                queue,
                QueueDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap()
            .message_count()
    }

    pub fn dlq(&self) -> String {
        format!("{}.dlq", self.queue)
    }

    /// Takes every message from the dead-letter queue: (payload, reason header).
    pub async fn drain_dlq(&self) -> Vec<(Vec<u8>, String)> {
        let mut out = Vec::new();
        while let Some(msg) = self
            .channel
            .basic_get(&self.dlq(), BasicGetOptions { no_ack: true })
            .await
            .unwrap()
        {
            let reason = msg
                .delivery
                .properties
                .headers()
                .as_ref()
                .and_then(|h| h.inner().get("x-converter-reason").cloned())
                .map(|v| match v {
                    lapin::types::AMQPValue::LongString(s) => s.to_string(),
                    other => format!("{other:?}"),
                })
                .unwrap_or_default();
            out.push((msg.delivery.data.clone(), reason));
        }
        out
    }

    /// Waits until the job satisfies `done`, or panics with the last state seen.
    pub async fn wait_job(
        &self,
        id: ObjectId,
        timeout: Duration,
        done: impl Fn(&Job) -> bool,
    ) -> Job {
        let start = Instant::now();
        loop {
            let job = self.job(id).await;
            if let Some(job) = &job {
                if done(job) {
                    return job.clone();
                }
            }
            assert!(
                start.elapsed() < timeout,
                "job {id} never reached the expected state: {job:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn wait_final(&self, id: ObjectId) -> Job {
        self.wait_job(id, Duration::from_secs(120), |j| j.state.is_final())
            .await
    }

    pub async fn mp3_files(&self, video_fid: ObjectId) -> Vec<FilesCollectionDocument> {
        self.mp3_bucket()
            .find(doc! { "metadata.video_fid": video_fid.to_hex() })
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap()
    }

    /// Deletes an upload the way the gateway's `DELETE /jobs/{fid}` does: the job, the upload,
    /// then its MP3s.
    pub async fn delete_like_the_gateway(&self, video_fid: ObjectId) {
        self.delete_job_doc(video_fid).await;
        self.delete_upload(video_fid).await;
        self.delete_mp3s(video_fid).await;
    }

    /// The order the gateway deleted in before: MP3s, upload, job. A converter must leave
    /// nothing behind with either.
    pub async fn delete_mp3s_first(&self, video_fid: ObjectId) {
        self.delete_mp3s(video_fid).await;
        self.delete_upload(video_fid).await;
        self.delete_job_doc(video_fid).await;
    }

    async fn delete_mp3s(&self, video_fid: ObjectId) {
        for file in self.mp3_files(video_fid).await {
            let _ = self.mp3_bucket().delete(file.id).await;
        }
    }

    async fn delete_upload(&self, video_fid: ObjectId) {
        let _ = self
            .videos()
            .gridfs_bucket(None)
            .delete(Bson::ObjectId(video_fid))
            .await;
    }

    async fn delete_job_doc(&self, video_fid: ObjectId) {
        self.videos()
            .collection::<Document>(common::names::JOBS_COLLECTION)
            .delete_one(doc! { "_id": video_fid })
            .await
            .unwrap();
    }

    /// Every GridFS chunk in the MP3 database, whoever it belongs to.
    pub async fn mp3_chunk_count(&self) -> u64 {
        self.mp3s()
            .collection::<Document>("fs.chunks")
            .count_documents(doc! {})
            .await
            .unwrap()
    }

    /// Waits until `n` messages sit in the dead-letter queue.
    pub async fn wait_dead_letters(&self, n: u32) {
        let start = Instant::now();
        while self.declare(&self.dlq()).await < n {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "dead letters missing"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Downloads an MP3 to a file in the media directory.
    pub async fn download_mp3(&self, id: ObjectId) -> PathBuf {
        let mut stream = self
            .mp3_bucket()
            .open_download_stream(Bson::ObjectId(id))
            .await
            .unwrap();
        let mut bytes = Vec::new();
        futures::AsyncReadExt::read_to_end(&mut stream, &mut bytes)
            .await
            .unwrap();
        let path = self.media.path().join(format!("{}.mp3", id.to_hex()));
        std::fs::write(&path, bytes).unwrap();
        path
    }

    /// Files left in the converter's scratch directory (none once it is done).
    pub fn leftover_files(&self) -> Vec<PathBuf> {
        fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
            for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                if e.path().is_dir() {
                    walk(&e.path(), out);
                } else {
                    out.push(e.path());
                }
            }
        }
        let mut out = Vec::new();
        walk(self.tmp.path(), &mut out);
        out
    }

    /// Deletes the queues and databases (also done on drop, so a failed test cleans up too).
    pub async fn cleanup(self) {
        drop(self);
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        let (amqp, mongo) = (self.amqp_url.clone(), self.mongo_uri.clone());
        let queues = [self.queue.clone(), self.dlq()];
        let dbs = if self.drop_databases {
            vec![self.videos_db.clone(), self.mp3s_db.clone()]
        } else {
            Vec::new()
        };
        // Drop cannot await, and may run inside the test's runtime: use a thread of our own.
        let cleaner = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                if let Ok(conn) = Connection::connect(&amqp, ConnectionProperties::default()).await
                {
                    if let Ok(channel) = conn.create_channel().await {
                        for q in &queues {
                            let _ = channel.queue_delete(q, QueueDeleteOptions::default()).await;
                        }
                    }
                    let _ = conn.close(200, "test cleanup").await;
                }
                if let Ok(client) = Client::with_uri_str(&mongo).await {
                    for db in &dbs {
                        let _ = client.database(db).drop().await;
                    }
                }
            });
        });
        let _ = cleaner.join();
    }
}

/// The in-process converter.
pub struct RunningApp {
    pub port: u16,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl RunningApp {
    /// Stops it the way SIGTERM does and waits for it to exit.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.unwrap().unwrap();
    }

    pub async fn get(&self, path: &str) -> (u16, String) {
        let res = reqwest::get(format!("http://127.0.0.1:{}{path}", self.port))
            .await
            .unwrap();
        (res.status().as_u16(), res.text().await.unwrap())
    }

    /// Waits until `/metrics` holds `line` (e.g. a counter reaching a value).
    pub async fn wait_metric(&self, line: &str) {
        let start = Instant::now();
        loop {
            let (_, metrics) = self.get("/metrics").await;
            if metrics.lines().any(|l| l == line) {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(120),
                "{line} never showed in {metrics}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until /readyz says the consumer is registered.
    pub async fn wait_ready(&self) {
        let start = Instant::now();
        loop {
            if self.get("/readyz").await.0 == 200 {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "converter never became ready"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Runs the ffmpeg CLI to make a fixture in `dir`; `args` go between the inputs and the output.
/// A Matroska file holding `secs` of a `rate` Hz sine (FLAC) whose header declares `declared`
/// seconds.
pub fn lying_about_its_length(dir: &Path, rate: u32, secs: u32, declared: u32) -> PathBuf {
    let src = format!("sine=frequency=300:sample_rate={rate}:duration={secs}");
    let honest = ffmpeg(
        dir,
        "honest.mka",
        &["-f", "lavfi", "-i", &src, "-c:a", "flac"],
    );
    let mut bytes = std::fs::read(&honest).unwrap();
    // Segment Info > Duration (ID 0x4489, an 8-byte float of milliseconds).
    let at = bytes
        .windows(3)
        .position(|w| w == [0x44, 0x89, 0x88])
        .expect("a Duration element");
    bytes[at + 3..at + 11].copy_from_slice(&(f64::from(declared) * 1000.0).to_be_bytes());
    let lying = dir.join("lying.mka");
    std::fs::write(&lying, bytes).unwrap();
    lying
}

pub fn ffmpeg(dir: &Path, name: &str, args: &[&str]) -> PathBuf {
    let out = dir.join(name);
    let status = Command::new("ffmpeg")
        .args(["-v", "error", "-y"])
        .args(args)
        .arg(&out)
        .status()
        .expect("ffmpeg CLI");
    assert!(status.success(), "ffmpeg failed making {name}");
    out
}

/// A video with a test pattern and a sine tone: `secs` long, `rate` Hz, `channels`, audio codec.
pub fn video_with_audio(
    dir: &Path,
    name: &str,
    secs: u32,
    rate: u32,
    channels: u32,
    acodec: &str,
) -> PathBuf {
    let v = format!("testsrc=size=160x120:rate=25:duration={secs}");
    let a = format!("sine=frequency=440:sample_rate={rate}:duration={secs}");
    let ac = channels.to_string();
    ffmpeg(
        dir,
        name,
        &[
            "-f",
            "lavfi",
            "-i",
            &v,
            "-f",
            "lavfi",
            "-i",
            &a,
            "-ac",
            &ac,
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-c:a",
            acodec,
            "-shortest",
        ],
    )
}

/// The converter's environment for this test with `extra` settings on top.
pub fn env_with(env: &TestEnv, extra: &[(&str, &str)]) -> HashMap<String, String> {
    let mut vars = env.env();
    vars.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    vars
}

/// Starts an in-process converter with `extra` settings.
pub async fn spawn_app_with(env: &TestEnv, extra: &[(&str, &str)]) -> RunningApp {
    env.spawn_app_with_env(&env_with(env, extra)).await
}

/// What ffprobe and a full decode say about an audio file.
#[derive(Debug)]
pub struct Probe {
    pub codec: String,
    pub sample_rate: u32,
    pub channels: u32,
    pub bit_rate: u64,
    pub title: String,
    /// Samples per channel after a full decode (with the LAME header's delay/padding trimmed).
    pub samples: u64,
}

pub fn probe(path: &Path) -> Probe {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "a:0",
            "-show_entries",
            "stream=codec_name,sample_rate,channels,bit_rate:format_tags=title",
            "-of",
            "json",
        ])
        .arg(path)
        .output()
        .expect("ffprobe");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let s = &json["streams"][0];
    let channels = s["channels"].as_u64().unwrap_or(0) as u32;
    Probe {
        codec: s["codec_name"].as_str().unwrap_or_default().to_owned(),
        sample_rate: s["sample_rate"]
            .as_str()
            .and_then(|r| r.parse().ok())
            .unwrap_or(0),
        channels,
        bit_rate: s["bit_rate"]
            .as_str()
            .and_then(|r| r.parse().ok())
            .unwrap_or(0),
        title: json["format"]["tags"]["title"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        samples: decoded_samples(path, channels.max(1), None),
    }
}

/// Samples per channel of the first audio stream, decoded by the ffmpeg CLI (optionally resampled).
pub fn decoded_samples(path: &Path, channels: u32, rate: Option<u32>) -> u64 {
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-v", "error", "-i"])
        .arg(path)
        .args(["-vn", "-map", "0:a:0"]);
    if let Some(rate) = rate {
        cmd.args(["-ar", &rate.to_string()]);
    }
    let out = cmd
        .args(["-ac", &channels.to_string(), "-f", "s16le", "-"])
        .output()
        .expect("ffmpeg");
    assert!(out.status.success(), "decoding {} failed", path.display());
    out.stdout.len() as u64 / (2 * u64::from(channels))
}

pub fn job_with_quality(
    id: ObjectId,
    owner: &str,
    filename: &str,
    quality: common::jobs::Mp3Quality,
) -> Job {
    Job::queued(id, Some(owner.into()), filename.into(), quality, None)
}

pub fn is_state(state: JobState) -> impl Fn(&Job) -> bool {
    move |j| j.state == state
}

pub fn metadata(file: &FilesCollectionDocument) -> Document {
    file.metadata.clone().unwrap_or_default()
}

/// JSON log lines written while the returned guard lives, on this thread (the tests' runtime is
/// single-threaded, so the converter's tasks log here too).
pub fn capture_logs() -> (
    std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    tracing::subscriber::DefaultGuard,
) {
    use tracing_subscriber::prelude::*;
    let buffer = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::registry().with(
        tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_writer(move || LogWriter(writer.clone())),
    );
    (buffer, tracing::subscriber::set_default(subscriber))
}

/// Appends to the shared buffer of [`capture_logs`].
pub struct LogWriter(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
