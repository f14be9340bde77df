//! The `vidconv` binary run against the real services (auth, gateway and converter started
//! in-process on port 0, against the real Postgres, RabbitMQ and Mongo stand-in, each test with
//! its own databases and queue), media made with the ffmpeg CLI.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    process::Output,
};

use lapin::{options::QueueDeleteOptions, Connection, ConnectionProperties};
use sqlx::{Connection as _, Executor as _};
use tokio::sync::oneshot;

/// A variable `scripts/test-deps.sh` prints.
pub fn test_env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run `eval \"$(bash scripts/test-deps.sh)\"` first")
    })
}

/// `base` (a URL of Postgres or MongoDB) with database `db` in its path, query string kept.
fn with_db(base: &str, db: &str) -> String {
    let (prefix, query) = match base.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (base, None),
    };
    let (scheme, rest) = prefix.split_once("://").expect("URL has a scheme");
    let hosts = rest.split('/').next().unwrap_or(rest);
    match query {
        Some(q) => format!("{scheme}://{hosts}/{db}?{q}"),
        None => format!("{scheme}://{hosts}/{db}"),
    }
}

/// Auth, gateway and converter for one test; everything they stored is removed on drop.
pub struct Stack {
    /// The gateway's base URL.
    pub url: String,
    /// This test's files: media, output folders, the config home.
    pub dir: tempfile::TempDir,
    pg_database: String,
    mongo_dbs: [String; 2],
    queue: String,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    stop_converter: Option<oneshot::Sender<()>>,
}

impl Stack {
    /// Starts auth (fresh Postgres database), the gateway and the converter; fails the test
    /// with a message when the shared test services do not answer.
    pub async fn spawn() -> Stack {
        tokio::time::timeout(std::time::Duration::from_secs(120), Self::start())
            .await
            .expect("the services started within 2 minutes (are Postgres, RabbitMQ and the Mongo stand-in up?)")
    }

    async fn start() -> Stack {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let secret = format!("cli-test-secret-{id}");
        let queue = format!("cli-test-{id}");
        let pg_database = format!("cli_auth_{id}");
        let videos = format!("cli_videos_{}", &id[..16]);
        let mp3s = format!("cli_mp3s_{}", &id[..16]);
        let mongo = test_env("TEST_MONGODB_URI");
        let amqp = test_env("TEST_AMQP_URL");
        let admin_url = test_env("TEST_DATABASE_URL");
        let dir = tempfile::tempdir().unwrap();
        let env = |pairs: &[(&str, String)]| -> HashMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect()
        };
        let mut tasks = Vec::new();

        let mut conn = sqlx::PgConnection::connect(&admin_url).await.unwrap();
        conn.execute(format!("CREATE DATABASE \"{pg_database}\"").as_str())
            .await
            .unwrap();
        conn.close().await.unwrap();
        let auth_config = auth::Config::from_env(&env(&[
            ("DATABASE_URL", with_db(&admin_url, &pg_database)),
            ("JWT_SECRET", secret.clone()),
            ("AUTH_ADDR", "127.0.0.1:0".into()),
        ]))
        .unwrap();
        let auth_app = auth::Application::build(auth_config).await.unwrap();
        let auth_port = auth_app.port();
        tasks.push(tokio::spawn(async move {
            let _ = auth_app.run_until_stopped().await;
        }));

        let gateway_config = gateway::Config::from_env(&env(&[
            ("GATEWAY_ADDR", "127.0.0.1:0".into()),
            // Not the default 9102: tests run side by side.
            ("GATEWAY_ADMIN_ADDR", "127.0.0.1:0".into()),
            ("JWT_SECRET", secret.clone()),
            ("AUTH_SVC_ADDRESS", format!("127.0.0.1:{auth_port}")),
            ("MONGODB_VIDEOS_URI", with_db(&mongo, &videos)),
            ("MONGODB_MP3S_URI", with_db(&mongo, &mp3s)),
            ("RABBITMQ_URL", amqp.clone()),
            ("VIDEO_QUEUE", queue.clone()),
        ]))
        .unwrap();
        let gateway_app = gateway::Application::build(gateway_config).await.unwrap();
        let url = format!("http://127.0.0.1:{}", gateway_app.port());
        tasks.push(tokio::spawn(async move {
            let _ = gateway_app.run_until_stopped().await;
        }));

        let scratch = dir.path().join("converter-tmp");
        std::fs::create_dir(&scratch).unwrap();
        let converter_config = converter::Config::from_env(&env(&[
            ("CONVERTER_ADDR", "127.0.0.1:0".into()),
            ("RABBITMQ_URL", amqp),
            ("VIDEO_QUEUE", queue.clone()),
            ("MONGODB_VIDEOS_URI", with_db(&mongo, &videos)),
            ("MONGODB_MP3S_URI", with_db(&mongo, &mp3s)),
            ("CONVERTER_CONCURRENCY", "2".into()),
            ("CONVERTER_TMP_DIR", scratch.display().to_string()),
        ]))
        .unwrap();
        let converter_app = converter::Application::build(converter_config)
            .await
            .unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        tasks.push(tokio::spawn(async move {
            let _ = converter_app
                .run_until(async move {
                    let _ = stopped.await;
                })
                .await;
        }));

        Stack {
            url,
            dir,
            pg_database,
            mongo_dbs: [videos, mp3s],
            queue,
            tasks,
            stop_converter: Some(stop),
        }
    }

    /// The test's folder.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        if let Some(stop) = self.stop_converter.take() {
            let _ = stop.send(());
        }
        for task in &self.tasks {
            task.abort();
        }
        let dbs = self.mongo_dbs.clone();
        let queues = [self.queue.clone(), format!("{}.dlq", self.queue)];
        let pg_database = self.pg_database.clone();
        // Drop cannot await and runs inside the test's runtime: clean up on a runtime of its own.
        let cleaner = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                if let Ok(client) =
                    mongodb::Client::with_uri_str(test_env("TEST_MONGODB_URI")).await
                {
                    for db in &dbs {
                        let _ = client.database(db).drop().await;
                    }
                }
                if let Ok(conn) =
                    Connection::connect(&test_env("TEST_AMQP_URL"), ConnectionProperties::default())
                        .await
                {
                    if let Ok(channel) = conn.create_channel().await {
                        for queue in &queues {
                            let _ = channel
                                .queue_delete(queue, QueueDeleteOptions::default())
                                .await;
                        }
                    }
                    let _ = conn.close(200, "test cleanup").await;
                }
                if let Ok(mut conn) =
                    sqlx::PgConnection::connect(&test_env("TEST_DATABASE_URL")).await
                {
                    let _ = conn
                        .execute(
                            format!("DROP DATABASE IF EXISTS \"{pg_database}\" WITH (FORCE)")
                                .as_str(),
                        )
                        .await;
                }
            });
        });
        let _ = cleaner.join();
    }
}

/// What one run of the binary did.
#[derive(Debug)]
pub struct Run {
    /// The exit code.
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(output: Output) -> Self {
        Run {
            code: output.status.code().expect("vidconv exited by a signal"),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

/// Runs `vidconv args...` with `home` as its home and config folder (so the saved login lands in
/// `home/vidconv/credentials.json`), none of the caller's `VIDCONV_*` settings, `env` added,
/// and `stdin` as its standard input.
pub async fn vidconv(home: &Path, args: &[&str], env: &[(&str, &str)], stdin: &str) -> Run {
    use tokio::io::AsyncWriteExt;
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_vidconv"));
    command
        .args(args)
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home)
        .env_remove("VIDCONV_URL")
        .env_remove("VIDCONV_TOKEN")
        .env_remove("VIDCONV_CREDENTIALS")
        .env("RUST_LOG", "warn")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    for (k, v) in env {
        command.env(k, v);
    }
    let mut child = command.spawn().expect("the vidconv binary runs");
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.as_bytes()).await.unwrap();
    drop(input);
    let output = tokio::time::timeout(
        std::time::Duration::from_secs(180),
        child.wait_with_output(),
    )
    .await
    .expect("vidconv finished within 3 minutes")
    .unwrap();
    output.into()
}

/// Makes a video with a test pattern and a sine tone, `secs` long, with the ffmpeg CLI.
pub fn make_video(dir: &Path, name: &str, secs: u32) -> PathBuf {
    let out = dir.join(name);
    let status = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg(format!("testsrc=size=160x120:rate=25:duration={secs}"))
        .args(["-f", "lavfi", "-i"])
        .arg(format!(
            "sine=frequency=440:sample_rate=44100:duration={secs}"
        ))
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-c:a",
            "aac",
            "-shortest",
        ])
        .arg(&out)
        .status()
        .expect("the ffmpeg CLI runs");
    assert!(status.success(), "ffmpeg failed making {name}");
    out
}

/// What ffprobe says about an audio file: (codec, bit rate, duration in seconds).
pub fn probe(path: &Path) -> (String, u64, f64) {
    let out = std::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "a:0",
            "-show_entries",
            "stream=codec_name,bit_rate:format=duration",
            "-of",
            "json",
        ])
        .arg(path)
        .output()
        .expect("ffprobe runs");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let stream = &json["streams"][0];
    let number = |v: &serde_json::Value| v.as_str().and_then(|s| s.parse::<f64>().ok());
    (
        stream["codec_name"].as_str().unwrap_or_default().to_owned(),
        number(&stream["bit_rate"]).unwrap_or(0.0) as u64,
        number(&json["format"]["duration"]).unwrap_or(0.0),
    )
}

/// Names of the files in `dir`.
pub fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}
