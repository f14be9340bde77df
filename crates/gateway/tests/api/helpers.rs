//! A gateway on port 0 against the real RabbitMQ, the Mongo stand-in and (when asked) the real
//! auth service, each test with its own databases and queue, removed when the test ends.

use std::{collections::HashMap, time::Duration};

use bytes::Bytes;
use common::jwt::JwtKeys;
use futures::{AsyncWriteExt, StreamExt, TryStreamExt};
use lapin::{
    options::{BasicGetOptions, QueueDeleteOptions},
    BasicProperties, Connection, ConnectionProperties,
};
use mongodb::{
    bson::{doc, oid::ObjectId, Bson, Document},
    Database,
};
use sqlx::{Connection as _, Executor as _};

/// A variable `scripts/test-deps.sh` prints.
pub fn test_env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run `eval \"$(bash scripts/test-deps.sh)\"` first")
    })
}

/// `TEST_MONGODB_URI` with database `db` in its path (query string kept).
/// Waits until the gateway has its indexes, as a Kubernetes probe waits for `/readyz`: a test
/// writing while they are being created would race them (the Mongo stand-in can livelock on a
/// collection created by an index and by an insert at once).
async fn wait_until_prepared(mut prepared: tokio::sync::watch::Receiver<bool>) {
    tokio::time::timeout(Duration::from_secs(60), prepared.wait_for(|ready| *ready))
        .await
        .expect("the gateway prepares MongoDB within 60 s")
        .expect("the gateway is running");
}

pub fn mongo_uri_with_db(base: &str, db: &str) -> String {
    let (prefix, query) = match base.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (base, None),
    };
    let (scheme, rest) = prefix.split_once("://").expect("mongodb URI has a scheme");
    let hosts = rest.split('/').next().unwrap_or(rest);
    match query {
        Some(q) => format!("{scheme}://{hosts}/{db}?{q}"),
        None => format!("{scheme}://{hosts}/{db}"),
    }
}

/// A TCP port on 127.0.0.1 with nothing listening.
pub fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// How to start the gateway under test.
#[derive(Default)]
pub struct Options {
    /// Start the real auth service (fresh Postgres database) and point the gateway at it.
    pub with_auth: bool,
    /// `MAX_UPLOAD_BYTES`.
    pub max_upload_bytes: Option<u64>,
    /// `RABBITMQ_URL` instead of the test broker.
    pub rabbitmq_url: Option<String>,
    /// `MONGODB_URI` for everything instead of the stand-in (e.g. a closed port).
    pub mongodb_uri: Option<String>,
    /// Do not start the gateway in-process (the test runs the binary itself).
    pub no_gateway: bool,
    /// Leave `JWT_SECRET` out of the gateway's environment, as the original gateway's
    /// ConfigMap does: tokens are then validated by auth (`with_auth`, else a closed port).
    pub without_jwt_secret: bool,
    /// Further settings, e.g. `("HTTP_IDLE_TIMEOUT_SECS", "1")`.
    pub env: Vec<(&'static str, String)>,
    /// Extra variables for auth (with `with_auth`).
    pub auth_env: Vec<(&'static str, String)>,
}

/// One test's gateway and everything it talks to.
pub struct TestApp {
    /// `http://127.0.0.1:<port>` of the gateway.
    pub base: String,
    /// `http://127.0.0.1:<port>` of the gateway's admin listener (`/metrics`, `/readyz`).
    pub admin: String,
    /// HTTP client.
    pub http: reqwest::Client,
    /// Keys for the secret of the gateway and auth, to mint tokens as auth would.
    pub keys: JwtKeys,
    /// This test's `VIDEO_QUEUE`.
    pub queue: String,
    /// The uploads' database.
    pub videos: Database,
    /// The MP3s' database.
    pub mp3s: Database,
    /// The environment the gateway was (or should be) started with.
    pub env: HashMap<String, String>,
    pg_database: Option<String>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl TestApp {
    /// A gateway with auth pointed at a closed port (tests mint tokens with [`TestApp::token`]).
    pub async fn spawn() -> TestApp {
        Self::spawn_with(Options::default()).await
    }

    /// A gateway started as `options` say.
    pub async fn spawn_with(options: Options) -> TestApp {
        common::telemetry::init("gateway");
        let id = uuid::Uuid::new_v4().simple().to_string();
        let secret = format!("secret-{id}");
        let queue = format!("gw-test-{id}");
        let mongo_base = test_env("TEST_MONGODB_URI");
        let videos_db = format!("videos_{id}");
        let mp3s_db = format!("mp3s_{id}");
        let mut tasks = Vec::new();

        let mut pg_database = None;
        let mut auth_port = None;
        if options.with_auth {
            let name = format!("gw_auth_{id}");
            let admin_url = test_env("TEST_DATABASE_URL");
            let mut conn = sqlx::PgConnection::connect(&admin_url).await.unwrap();
            conn.execute(format!("CREATE DATABASE \"{name}\"").as_str())
                .await
                .unwrap();
            conn.close().await.unwrap();
            pg_database = Some(name.clone());
            let auth_env: HashMap<String, String> = [
                ("DATABASE_URL", database_url_with_db(&admin_url, &name)),
                ("JWT_SECRET", secret.clone()),
                ("AUTH_ADDR", "127.0.0.1:0".to_owned()),
            ]
            .into_iter()
            .chain(options.auth_env.iter().cloned())
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
            let config = auth::Config::from_env(&auth_env).unwrap();
            let app = auth::Application::build(config).await.unwrap();
            auth_port = Some(app.port());
            tasks.push(tokio::spawn(async move {
                let _ = app.run_until_stopped().await;
            }));
        }

        let mut env: HashMap<String, String> = HashMap::new();
        let mut set = |k: &str, v: String| {
            env.insert(k.to_owned(), v);
        };
        set("GATEWAY_ADDR", "127.0.0.1:0".to_owned());
        set("GATEWAY_ADMIN_ADDR", "127.0.0.1:0".to_owned());
        if !options.without_jwt_secret {
            set("JWT_SECRET", secret.clone());
        }
        set(
            "AUTH_SVC_ADDRESS",
            format!("127.0.0.1:{}", auth_port.unwrap_or_else(closed_port)),
        );
        match &options.mongodb_uri {
            Some(uri) => set("MONGODB_URI", uri.clone()),
            None => {
                set(
                    "MONGODB_VIDEOS_URI",
                    mongo_uri_with_db(&mongo_base, &videos_db),
                );
                set("MONGODB_MP3S_URI", mongo_uri_with_db(&mongo_base, &mp3s_db));
            }
        }
        set(
            "RABBITMQ_URL",
            options
                .rabbitmq_url
                .clone()
                .unwrap_or_else(|| test_env("TEST_AMQP_URL")),
        );
        set("VIDEO_QUEUE", queue.clone());
        if let Some(max) = options.max_upload_bytes {
            set("MAX_UPLOAD_BYTES", max.to_string());
        }
        for (name, value) in &options.env {
            set(name, value.clone());
        }

        let mut base = String::new();
        let mut admin = String::new();
        if !options.no_gateway {
            let config = gateway::Config::from_env(&env).unwrap();
            let app = gateway::Application::build(config).await.unwrap();
            base = format!("http://127.0.0.1:{}", app.port());
            admin = format!("http://127.0.0.1:{}", app.admin_port());
            let prepared = app.mongo_prepared();
            tasks.push(tokio::spawn(async move {
                let _ = app.run_until_stopped().await;
            }));
            if options.mongodb_uri.is_none() {
                wait_until_prepared(prepared).await;
            }
        }

        let mongo = mongodb::Client::with_uri_str(&mongo_base).await.unwrap();
        TestApp {
            base,
            admin,
            http: reqwest::Client::new(),
            keys: JwtKeys::new(secret.as_bytes()),
            queue,
            videos: mongo.database(&videos_db),
            mp3s: mongo.database(&mp3s_db),
            env,
            pg_database,
            tasks,
        }
    }

    /// A valid token for `email`, signed with the gateway's secret as auth signs it.
    pub fn token(&self, email: &str) -> String {
        self.keys.issue(email).unwrap()
    }

    /// `Authorization: Bearer <token>` value for `email`.
    pub fn bearer(&self, email: &str) -> String {
        format!("Bearer {}", self.token(email))
    }

    /// POST `path` with HTTP Basic credentials (none when `None`), as to `/login` and `/register`.
    pub async fn post_basic(&self, path: &str, user: Option<(&str, &str)>) -> reqwest::Response {
        let mut request = self.http.post(format!("{}{path}", self.base));
        if let Some((email, password)) = user {
            request = request.basic_auth(email, Some(password));
        }
        request.send().await.unwrap()
    }

    /// GET `path` with this `Authorization` header value (none when `None`).
    pub async fn get_with(&self, path: &str, authorization: Option<&str>) -> reqwest::Response {
        let mut request = self.http.get(format!("{}{path}", self.base));
        if let Some(value) = authorization {
            request = request.header("authorization", value);
        }
        request.send().await.unwrap()
    }

    /// GET `path` with a token for `email`.
    pub async fn get_as(&self, email: &str, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.base))
            .header("authorization", self.bearer(email))
            .send()
            .await
            .unwrap()
    }

    /// POST /upload with `form` as `email`.
    pub async fn upload_as(&self, email: &str, form: Form) -> reqwest::Response {
        self.http
            .post(format!("{}/upload", self.base))
            .header("authorization", self.bearer(email))
            .header("content-type", form.content_type())
            .body(form.into_bytes())
            .send()
            .await
            .unwrap()
    }

    /// Uploads `data` as `name` (after [`MP4_HEAD`] when it would not pass for media) and
    /// returns the video_fid.
    pub async fn upload_file(&self, email: &str, name: &str, data: &[u8]) -> ObjectId {
        let data = match gateway::sniff::sniff(data) {
            gateway::sniff::Sniffed::Media(_) => data.to_vec(),
            gateway::sniff::Sniffed::Refused(_) => video_bytes(data),
        };
        let res = self
            .upload_as(email, Form::new().file("file", name, "video/mp4", &data))
            .await;
        assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
        let body: serde_json::Value = res.json().await.unwrap();
        ObjectId::parse_str(body["video_fid"].as_str().unwrap()).unwrap()
    }

    /// Number of documents in `fs.files` and `fs.chunks` of the videos database.
    pub async fn video_counts(&self) -> (u64, u64) {
        (
            count(&self.videos, "fs.files").await,
            count(&self.videos, "fs.chunks").await,
        )
    }

    /// Number of documents in `fs.files` and `fs.chunks` of the MP3s database.
    pub async fn mp3_counts(&self) -> (u64, u64) {
        (
            count(&self.mp3s, "fs.files").await,
            count(&self.mp3s, "fs.chunks").await,
        )
    }

    /// Another gateway process-alike on the same databases, queue and secret (a second
    /// replica); stopped when the returned handle is aborted.
    pub async fn spawn_replica(&self) -> (String, tokio::task::JoinHandle<()>) {
        let config = gateway::Config::from_env(&self.env).unwrap();
        let app = gateway::Application::build(config).await.unwrap();
        let base = format!("http://127.0.0.1:{}", app.port());
        let prepared = app.mongo_prepared();
        let task = tokio::spawn(async move {
            let _ = app.run_until_stopped().await;
        });
        wait_until_prepared(prepared).await;
        (base, task)
    }

    /// Number of job documents.
    pub async fn job_count(&self) -> u64 {
        count(&self.videos, "jobs").await
    }

    /// The job document of `video_fid`.
    pub async fn job(&self, video_fid: ObjectId) -> Option<Document> {
        self.videos
            .collection::<Document>("jobs")
            .find_one(doc! { "_id": video_fid })
            .await
            .unwrap()
    }

    /// Sets fields of the job of `video_fid`, as the converter does.
    pub async fn update_job(&self, video_fid: ObjectId, set: Document) {
        self.videos
            .collection::<Document>("jobs")
            .update_one(doc! { "_id": video_fid }, doc! { "$set": set })
            .await
            .unwrap();
    }

    /// The bytes of upload `id` as stored in GridFS.
    pub async fn stored_video(&self, id: ObjectId) -> Vec<u8> {
        read_gridfs(&self.videos, id).await
    }

    /// The files document of upload `id`.
    pub async fn video_file_doc(&self, id: ObjectId) -> Option<Document> {
        self.videos
            .collection::<Document>("fs.files")
            .find_one(doc! { "_id": id })
            .await
            .unwrap()
    }

    /// Stores an MP3 the way the converter does (bucket `fs` of the MP3s database,
    /// `metadata.video_fid` = the upload's hex id), and marks the job completed if there is one.
    pub async fn store_mp3(
        &self,
        video_fid: ObjectId,
        owner: Option<&str>,
        filename: &str,
        data: &[u8],
    ) -> ObjectId {
        let mut metadata = doc! { "video_fid": video_fid.to_hex(), "content_type": "audio/mpeg" };
        if let Some(owner) = owner {
            metadata.insert("owner", owner);
        }
        let id = write_gridfs(&self.mp3s, filename, metadata, data).await;
        self.update_job(
            video_fid,
            doc! { "state": "completed", "progress": 100.0, "mp3_fid": id },
        )
        .await;
        id
    }

    /// Stores an upload the way the original gateway did: no owner, no job.
    pub async fn store_original_video(&self, data: &[u8]) -> ObjectId {
        write_gridfs(&self.videos, "video.mp4", Document::new(), data).await
    }

    /// Takes the next message from this test's queue, waiting a few seconds for it.
    pub async fn next_message(&self) -> Option<(Vec<u8>, BasicProperties)> {
        let conn = Connection::connect(&test_env("TEST_AMQP_URL"), ConnectionProperties::default())
            .await
            .unwrap();
        let channel = conn.create_channel().await.unwrap();
        let mut result = None;
        for _ in 0..50 {
            match channel
                .basic_get(&self.queue, BasicGetOptions { no_ack: true })
                .await
            {
                Ok(Some(message)) => {
                    let delivery = message.delivery;
                    result = Some((delivery.data, delivery.properties));
                    break;
                }
                Ok(None) | Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
        let _ = conn.close(200, "done").await;
        result
    }

    /// How many messages wait on this test's queue (0 when it does not exist).
    pub async fn queued_messages(&self) -> u32 {
        let conn = Connection::connect(&test_env("TEST_AMQP_URL"), ConnectionProperties::default())
            .await
            .unwrap();
        let channel = conn.create_channel().await.unwrap();
        let count = channel
            .queue_declare(
                &self.queue,
                lapin::options::QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                Default::default(),
            )
            .await
            .map(|q| q.message_count())
            .unwrap_or(0);
        let _ = conn.close(200, "done").await;
        count
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
        let databases = [self.videos.name().to_owned(), self.mp3s.name().to_owned()];
        let queue = self.queue.clone();
        let pg_database = self.pg_database.take();
        // Clean up on a runtime of its own: Drop cannot await, and the test's runtime is busy.
        let cleanup = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                // A client of this runtime: the test's client needs the test's (blocked) runtime.
                if let Ok(mongo) = mongodb::Client::with_uri_str(test_env("TEST_MONGODB_URI")).await
                {
                    for name in databases {
                        let _ = mongo.database(&name).drop().await;
                    }
                }
                if let Ok(conn) =
                    Connection::connect(&test_env("TEST_AMQP_URL"), ConnectionProperties::default())
                        .await
                {
                    if let Ok(channel) = conn.create_channel().await {
                        let _ = channel
                            .queue_delete(&queue, QueueDeleteOptions::default())
                            .await;
                    }
                    let _ = conn.close(200, "done").await;
                }
                if let Some(name) = pg_database {
                    if let Ok(mut conn) =
                        sqlx::PgConnection::connect(&test_env("TEST_DATABASE_URL")).await
                    {
                        let _ = conn
                            .execute(
                                format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)").as_str(),
                            )
                            .await;
                    }
                }
            });
        });
        let _ = cleanup.join();
    }
}

/// `TEST_DATABASE_URL` pointing at database `db`.
fn database_url_with_db(url: &str, db: &str) -> String {
    let (prefix, query) = match url.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (url, None),
    };
    let (scheme, rest) = prefix.split_once("://").unwrap();
    let hosts = rest.split('/').next().unwrap_or(rest);
    match query {
        Some(q) => format!("{scheme}://{hosts}/{db}?{q}"),
        None => format!("{scheme}://{hosts}/{db}"),
    }
}

async fn count(db: &Database, collection: &str) -> u64 {
    db.collection::<Document>(collection)
        .count_documents(doc! {})
        .await
        .unwrap()
}

async fn read_gridfs(db: &Database, id: ObjectId) -> Vec<u8> {
    use futures::AsyncReadExt;
    let mut out = Vec::new();
    db.gridfs_bucket(None)
        .open_download_stream(Bson::ObjectId(id))
        .await
        .unwrap()
        .read_to_end(&mut out)
        .await
        .unwrap();
    out
}

async fn write_gridfs(db: &Database, filename: &str, metadata: Document, data: &[u8]) -> ObjectId {
    let mut upload = db
        .gridfs_bucket(None)
        .open_upload_stream(filename)
        .metadata(metadata)
        .await
        .unwrap();
    upload.write_all(data).await.unwrap();
    upload.close().await.unwrap();
    upload.id().as_object_id().unwrap()
}

/// An MP4 `ftyp` box: what the gateway's content check needs to see first to take an upload
/// for a video (what follows is never decoded by the gateway).
pub const MP4_HEAD: &[u8] = b"\0\0\0\x18ftypisom\0\0\x02\0isomiso2";

/// A pseudo-video for tests that do not convert: [`MP4_HEAD`] then `tail`.
pub fn video_bytes(tail: &[u8]) -> Vec<u8> {
    [MP4_HEAD, tail].concat()
}

/// Deterministic pseudo-random bytes (so a shifted or truncated copy never matches), starting
/// with [`MP4_HEAD`] so that they pass for a video at upload.
pub fn test_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut bytes: Vec<u8> = (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect();
    let head = MP4_HEAD.len().min(len);
    bytes[..head].copy_from_slice(&MP4_HEAD[..head]);
    bytes
}

/// Media made by the ffmpeg CLI: `args` (lavfi inputs, codecs, flags) and then the output file
/// `name`, whose extension picks the container; answers the file's bytes.
pub fn ffmpeg_media(name: &str, args: &[&str]) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    let out = std::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-nostdin", "-y"])
        .args(args)
        .arg(&path)
        .output()
        .expect("ffmpeg runs");
    assert!(
        out.status.success(),
        "ffmpeg {args:?} {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read(&path).unwrap()
}

/// A multipart/form-data body built by hand, so tests control every part and its order.
pub struct Form {
    boundary: String,
    body: Vec<u8>,
}

impl Form {
    /// An empty form.
    pub fn new() -> Self {
        Self {
            boundary: format!("----gwtest{}", uuid::Uuid::new_v4().simple()),
            body: Vec::new(),
        }
    }

    /// Adds a file part.
    pub fn file(mut self, name: &str, filename: &str, content_type: &str, data: &[u8]) -> Self {
        self.body.extend_from_slice(
            format!(
                "--{}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{filename}\"\r\nContent-Type: {content_type}\r\n\r\n",
                self.boundary
            )
            .as_bytes(),
        );
        self.body.extend_from_slice(data);
        self.body.extend_from_slice(b"\r\n");
        self
    }

    /// Adds a text part.
    pub fn text(mut self, name: &str, value: &str) -> Self {
        self.body.extend_from_slice(
            format!(
                "--{}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n",
                self.boundary
            )
            .as_bytes(),
        );
        self
    }

    /// The Content-Type header value.
    pub fn content_type(&self) -> String {
        format!("multipart/form-data; boundary={}", self.boundary)
    }

    /// The whole body.
    pub fn into_bytes(mut self) -> Vec<u8> {
        self.body
            .extend_from_slice(format!("--{}--\r\n", self.boundary).as_bytes());
        self.body
    }
}

/// A multipart body with one file part of `len` pseudo-random bytes, produced piece by piece
/// (never held whole). Returns the content type and the stream.
pub fn streamed_form(
    filename: &str,
    len: u64,
) -> (
    String,
    impl futures::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static,
) {
    const PIECE: u64 = 256 * 1024;
    let boundary = format!("----gwstream{}", uuid::Uuid::new_v4().simple());
    let head = Bytes::from(format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\nContent-Type: video/mp4\r\n\r\n"
    ));
    let tail = Bytes::from(format!("\r\n--{boundary}--\r\n"));
    let piece = Bytes::from(test_bytes(PIECE as usize, 7));
    let pieces = futures::stream::iter(0..len.div_ceil(PIECE)).map(move |i| {
        let n = PIECE.min(len - i * PIECE) as usize;
        Ok::<_, std::io::Error>(piece.slice(..n))
    });
    let stream = futures::stream::once(async move { Ok(head) })
        .chain(pieces)
        .chain(futures::stream::once(async move { Ok(tail) }));
    (
        format!("multipart/form-data; boundary={boundary}"),
        stream.into_stream(),
    )
}
