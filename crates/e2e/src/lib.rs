//! Helpers of the end-to-end tests: where the running stack is, a client for the gateway's API,
//! media made at test time with the ffmpeg CLI, and checks of the MP3s that come back.
//!
//! The tests need a stack started by `scripts/stack.sh`; `scripts/test-e2e.sh` starts one on its
//! own ports and sets the `E2E_*` variables read here. Without them every test fails with a
//! message saying so: they never pass silently.

// Helpers of tests only: a panic here is a failed test with its message, as in tests/.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{bail, ensure, Context, Result};
use futures::StreamExt;
use reqwest::{Client, StatusCode};
use serde_json::Value;

/// How long a short conversion may take before a test gives up.
pub const SHORT_JOB_TIMEOUT: Duration = Duration::from_secs(120);

/// The running stack, as `scripts/test-e2e.sh` describes it in the environment.
#[derive(Debug, Clone)]
pub struct Stack {
    /// Base URL of the gateway (`E2E_GATEWAY_URL`).
    pub gateway: String,
    /// Base URL of the gateway's admin listener: `/readyz`, `/metrics` (`E2E_GATEWAY_ADMIN_URL`).
    pub gateway_admin: String,
    /// Base URL of the converter's health endpoints (`E2E_CONVERTER_URL`).
    pub converter: String,
    /// The Mongo stand-in the services use (`E2E_MONGODB_URI`).
    pub mongodb_uri: String,
    /// `scripts/stack.sh` (`E2E_STACK_SCRIPT`), to stop and start components.
    pub stack_script: PathBuf,
    /// The stack's directory (`STACK_DIR`), where the pid files are.
    pub stack_dir: PathBuf,
    /// Replicas of each service (`E2E_REPLICAS`, 1 when unset).
    pub replicas: u32,
    /// Each auth replica's own URL, behind the balancer (`E2E_AUTH_REPLICA_URLS`, comma-separated;
    /// empty with one replica).
    pub auth_replicas: Vec<String>,
    http: Client,
}

/// One running converter process of the stack: its instance name and pid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Converter {
    /// `converter` for replica 1, `converter-2`, ... beyond (the pid file's and log's name).
    pub name: String,
    /// Its pid, from `run/<name>.pid`.
    pub pid: u32,
}

fn required_env(name: &str) -> String {
    match std::env::var(name) {
        Ok(value) if !value.trim().is_empty() => value,
        _ => panic!(
            "{name} is not set: the end-to-end tests need a running stack. \
             Run them with `make test-e2e` (scripts/test-e2e.sh starts a stack and sets {name})."
        ),
    }
}

impl Stack {
    /// Reads the stack's addresses; panics with instructions when they are not set.
    pub fn from_env() -> Stack {
        Stack {
            gateway: required_env("E2E_GATEWAY_URL")
                .trim_end_matches('/')
                .to_owned(),
            gateway_admin: required_env("E2E_GATEWAY_ADMIN_URL")
                .trim_end_matches('/')
                .to_owned(),
            converter: required_env("E2E_CONVERTER_URL")
                .trim_end_matches('/')
                .to_owned(),
            mongodb_uri: required_env("E2E_MONGODB_URI"),
            stack_script: required_env("E2E_STACK_SCRIPT").into(),
            stack_dir: required_env("STACK_DIR").into(),
            replicas: match std::env::var("E2E_REPLICAS") {
                Ok(n) => n
                    .trim()
                    .parse()
                    .unwrap_or_else(|_| panic!("E2E_REPLICAS is not a number: {n:?}")),
                Err(_) => 1,
            },
            auth_replicas: std::env::var("E2E_AUTH_REPLICA_URLS")
                .unwrap_or_default()
                .split(',')
                .map(|u| u.trim().trim_end_matches('/').to_owned())
                .filter(|u| !u.is_empty())
                .collect(),
            http: Client::builder()
                .connect_timeout(Duration::from_secs(5))
                .build()
                .expect("a reqwest client without TLS always builds"),
        }
    }

    /// The HTTP client.
    pub fn http(&self) -> &Client {
        &self.http
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.gateway)
    }

    /// Registers a new user with a unique email and logs in, as the seed's curl commands do.
    pub async fn new_user(&self) -> Result<User> {
        let email = format!("e2e-{}@example.com", uuid::Uuid::new_v4().simple());
        let password = format!("pw-{}", uuid::Uuid::new_v4().simple());
        let response = self
            .http
            .post(self.url("/register"))
            .basic_auth(&email, Some(&password))
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .context("POST /register")?;
        let status = response.status();
        // 200, as the original gateway answers a registration.
        ensure!(
            status == StatusCode::OK,
            "POST /register answered {status}: {}",
            response.text().await.unwrap_or_default()
        );
        let token = self.login(&email, &password).await?;
        Ok(User {
            email,
            password,
            token,
        })
    }

    /// `POST /login`: the JWT, as a plain-text body.
    pub async fn login(&self, email: &str, password: &str) -> Result<String> {
        let response = self
            .http
            .post(self.url("/login"))
            .basic_auth(email, Some(password))
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .context("POST /login")?;
        let status = response.status();
        let body = response.text().await.context("reading the login answer")?;
        ensure!(
            status == StatusCode::OK,
            "POST /login answered {status}: {body}"
        );
        ensure!(
            body.split('.').count() == 3,
            "POST /login did not answer a JWT: {body}"
        );
        Ok(body.trim().to_owned())
    }

    /// `POST /upload` of a file as multipart field `file`; the raw answer.
    pub async fn upload_raw(
        &self,
        token: &str,
        filename: &str,
        bytes: Vec<u8>,
    ) -> Result<reqwest::Response> {
        let boundary = format!("e2e-{}", uuid::Uuid::new_v4().simple());
        let mut body = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\n\
             Content-Type: video/mp4\r\n\r\n"
        )
        .into_bytes();
        body.extend_from_slice(&bytes);
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        self.http
            .post(self.url("/upload"))
            .bearer_auth(token)
            .header(
                reqwest::header::CONTENT_TYPE,
                format!("multipart/form-data; boundary={boundary}"),
            )
            .body(body)
            .timeout(Duration::from_secs(120))
            .send()
            .await
            .context("POST /upload")
    }

    /// Uploads a file and returns its `video_fid`, checking the original's answer shape.
    pub async fn upload(&self, token: &str, path: &Path) -> Result<String> {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let filename = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("video.mp4")
            .to_owned();
        let response = self.upload_raw(token, &filename, bytes).await?;
        let status = response.status();
        let body: Value = response.json().await.context("upload answer is not JSON")?;
        ensure!(
            status == StatusCode::OK,
            "POST /upload answered {status}: {body}"
        );
        ensure!(body["status"] == "success", "upload answer: {body}");
        let fid = body["video_fid"]
            .as_str()
            .context("upload answer has no video_fid")?;
        ensure!(is_object_id(fid), "video_fid is not an ObjectId hex: {fid}");
        Ok(fid.to_owned())
    }

    /// `GET /status?fid=`: HTTP status and JSON body.
    pub async fn status(&self, token: &str, fid: &str) -> Result<(StatusCode, Value)> {
        let response = self
            .http
            .get(self.url("/status"))
            .query(&[("fid", fid)])
            .bearer_auth(token)
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .context("GET /status")?;
        let status = response.status();
        let body = response.json().await.context("status answer is not JSON")?;
        Ok((status, body))
    }

    /// Polls `/status` until it is no longer `processing`; the final status body.
    pub async fn wait_final(&self, token: &str, fid: &str, timeout: Duration) -> Result<Value> {
        let started = Instant::now();
        loop {
            let (code, body) = self.status(token, fid).await?;
            ensure!(
                code == StatusCode::OK,
                "GET /status answered {code}: {body}"
            );
            if body["status"] != "processing" {
                return Ok(body);
            }
            if started.elapsed() > timeout {
                bail!("upload {fid} still processing after {timeout:?}: {body}");
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// `GET /download?fid=`: the raw answer.
    pub async fn download_raw(&self, token: &str, mp3_fid: &str) -> Result<reqwest::Response> {
        self.http
            .get(self.url("/download"))
            .query(&[("fid", mp3_fid)])
            .bearer_auth(token)
            .timeout(Duration::from_secs(120))
            .send()
            .await
            .context("GET /download")
    }

    /// Downloads an MP3 into `path`.
    pub async fn download_to(&self, token: &str, mp3_fid: &str, path: &Path) -> Result<()> {
        let response = self.download_raw(token, mp3_fid).await?;
        let status = response.status();
        ensure!(
            status == StatusCode::OK,
            "GET /download answered {status}: {}",
            response.text().await.unwrap_or_default()
        );
        let bytes = response.bytes().await.context("reading the MP3")?;
        std::fs::write(path, &bytes).with_context(|| format!("writing {}", path.display()))
    }

    /// `GET /jobs` of a user (first page of 100).
    pub async fn jobs(&self, token: &str) -> Result<Vec<Value>> {
        let response = self
            .http
            .get(self.url("/jobs"))
            .query(&[("per_page", "100")])
            .bearer_auth(token)
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .context("GET /jobs")?;
        let status = response.status();
        let body: Value = response.json().await.context("jobs answer is not JSON")?;
        ensure!(
            status == StatusCode::OK,
            "GET /jobs answered {status}: {body}"
        );
        Ok(body["jobs"].as_array().cloned().unwrap_or_default())
    }

    /// Follows `GET /events?fid=` until the stream ends or `timeout`; the `status` events' data.
    pub async fn events(&self, token: &str, fid: &str, timeout: Duration) -> Result<Vec<Value>> {
        let response = self
            .http
            .get(self.url("/events"))
            .query(&[("fid", fid)])
            .bearer_auth(token)
            .send()
            .await
            .context("GET /events")?;
        let status = response.status();
        ensure!(
            status == StatusCode::OK,
            "GET /events answered {status}: {}",
            response.text().await.unwrap_or_default()
        );
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        ensure!(
            content_type.starts_with("text/event-stream"),
            "GET /events has content type {content_type:?}"
        );
        let mut stream = response.bytes_stream();
        let mut buffer = String::new();
        let mut events = Vec::new();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let chunk = match tokio::time::timeout_at(deadline, stream.next()).await {
                Err(_) => bail!("event stream still open after {timeout:?}; got {events:?}"),
                Ok(None) => break,
                Ok(Some(chunk)) => chunk.context("reading the event stream")?,
            };
            buffer.push_str(&String::from_utf8_lossy(&chunk));
            // Events end with a blank line; keep a partial one for the next chunk.
            while let Some(end) = buffer.find("\n\n") {
                let block: String = buffer.drain(..end + 2).collect();
                if let Some(data) = parse_event(&block, "status") {
                    events.push(
                        serde_json::from_str(&data)
                            .with_context(|| format!("status event data is not JSON: {data}"))?,
                    );
                }
            }
        }
        Ok(events)
    }

    /// Waits for a component's `/readyz` (`gateway_admin` or `converter`) to answer 200.
    pub async fn wait_ready(&self, base: &str, timeout: Duration) -> Result<()> {
        let started = Instant::now();
        loop {
            let ok = self
                .http
                .get(format!("{base}/readyz"))
                .timeout(Duration::from_secs(3))
                .send()
                .await
                .map(|r| r.status() == StatusCode::OK)
                .unwrap_or(false);
            if ok {
                return Ok(());
            }
            if started.elapsed() > timeout {
                bail!("{base}/readyz not ready after {timeout:?}");
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Runs `scripts/stack.sh ARGS` against this stack.
    pub fn stack_command(&self, args: &[&str]) -> Result<()> {
        let output = Command::new("bash")
            .arg(&self.stack_script)
            .args(args)
            .env("STACK_DIR", &self.stack_dir)
            .output()
            .with_context(|| format!("running {} {args:?}", self.stack_script.display()))?;
        ensure!(
            output.status.success(),
            "stack.sh {args:?} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        Ok(())
    }

    /// The pid in `run/<component>.pid`.
    pub fn pid(&self, component: &str) -> Result<u32> {
        let path = self.stack_dir.join("run").join(format!("{component}.pid"));
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        text.trim()
            .parse()
            .with_context(|| format!("{} does not hold a pid: {text:?}", path.display()))
    }

    /// The converter processes whose pid files name a live process, replica 1 first.
    pub fn converters(&self) -> Vec<Converter> {
        let mut found = Vec::new();
        for r in 1..=self.replicas.max(1) {
            let name = if r == 1 {
                "converter".to_owned()
            } else {
                format!("converter-{r}")
            };
            let Ok(pid) = self.pid(&name) else { continue };
            if running(pid) {
                found.push(Converter { name, pid });
            }
        }
        found
    }

    /// The converter working on a job right now: the one whose scratch directory
    /// (`converter-tmp/converter-<pid>-<random>`, see the converter's scratch module) holds
    /// files, i.e. the MP3 being written (uploads are read from GridFS, not copied there). `None` while no converter holds
    /// any.
    pub fn busy_converter(&self) -> Option<Converter> {
        let scratch = self.stack_dir.join("converter-tmp");
        let dirs: Vec<(String, PathBuf)> = std::fs::read_dir(&scratch)
            .map(|entries| {
                entries
                    .flatten()
                    .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
                    .collect()
            })
            .unwrap_or_default();
        for converter in self.converters() {
            let prefix = format!("converter-{}-", converter.pid);
            let busy = dirs
                .iter()
                .filter(|(name, _)| name.starts_with(&prefix))
                .any(|(_, dir)| {
                    std::fs::read_dir(dir)
                        .map(|mut entries| entries.next().is_some())
                        .unwrap_or(false)
                });
            if busy {
                return Some(converter);
            }
        }
        None
    }

    /// Polls `/status` until a converter reports progress on the upload and its scratch files
    /// show which converter it is; that converter and the progress seen. Fails when the job
    /// ends first or nothing starts within [`SHORT_JOB_TIMEOUT`].
    pub async fn wait_converting(&self, token: &str, fid: &str) -> Result<(Converter, f64)> {
        let started = Instant::now();
        loop {
            let (_, status) = self.status(token, fid).await?;
            ensure!(
                status["status"] == "processing",
                "the job ended before a converter could be caught at it: {status}"
            );
            let progress = status["progress"].as_f64().unwrap_or(0.0);
            if status["state"] == "processing" && progress > 0.0 {
                if let Some(converter) = self.busy_converter() {
                    return Ok((converter, progress));
                }
            }
            ensure!(
                started.elapsed() < SHORT_JOB_TIMEOUT,
                "no converter was seen working on the job: {status}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The number of MP3s stored for an upload (`metadata.video_fid` in the `mp3s` GridFS).
    pub async fn mp3_count(&self, video_fid: &str) -> Result<u64> {
        Ok(self
            .mongo()
            .await?
            .database("mp3s")
            .collection::<mongodb::bson::Document>("fs.files")
            .count_documents(mongodb::bson::doc! { "metadata.video_fid": video_fid })
            .await?)
    }

    /// The job document's `attempts` (deliveries that started the conversion).
    pub async fn job_attempts(&self, video_fid: &str) -> Result<i64> {
        let oid = mongodb::bson::oid::ObjectId::parse_str(video_fid)?;
        let job = self
            .mongo()
            .await?
            .database("videos")
            .collection::<mongodb::bson::Document>("jobs")
            .find_one(mongodb::bson::doc! { "_id": oid })
            .await?
            .context("no job document")?;
        Ok(job
            .get("attempts")
            .and_then(|a| a.as_i32().map(i64::from).or_else(|| a.as_i64()))
            .unwrap_or(0))
    }

    /// A client of the stack's Mongo stand-in.
    pub async fn mongo(&self) -> Result<mongodb::Client> {
        mongodb::Client::with_uri_str(&self.mongodb_uri)
            .await
            .context("connecting to the stack's MongoDB")
    }
}

/// The data of an SSE block when its event name is `name`.
fn parse_event(block: &str, name: &str) -> Option<String> {
    let mut event = "message";
    let mut data = Vec::new();
    for line in block.lines() {
        if let Some(v) = line.strip_prefix("event:") {
            event = v.trim();
        } else if let Some(v) = line.strip_prefix("data:") {
            data.push(v.strip_prefix(' ').unwrap_or(v));
        }
    }
    (event == name && !data.is_empty()).then(|| data.join("\n"))
}

/// A registered, logged-in user.
#[derive(Debug, Clone)]
pub struct User {
    /// Unique per test run.
    pub email: String,
    /// Its password.
    pub password: String,
    /// The JWT from `/login`.
    pub token: String,
}

/// Whether `s` is 24 lowercase hex digits.
pub fn is_object_id(s: &str) -> bool {
    s.len() == 24 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Makes an MP4 of `seconds` with a 440 Hz tone and a small moving picture, using the ffmpeg CLI.
pub fn make_video(dir: &Path, name: &str, seconds: u32) -> Result<PathBuf> {
    let path = dir.join(name);
    let output = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-y"])
        .args(["-f", "lavfi", "-i"])
        .arg(format!(
            "sine=frequency=440:sample_rate=44100:duration={seconds}"
        ))
        .args(["-f", "lavfi", "-i"])
        .arg(format!("testsrc=size=64x48:rate=2:duration={seconds}"))
        .args(["-c:v", "mpeg4", "-c:a", "aac", "-b:a", "64k", "-shortest"])
        .args(["-movflags", "+faststart"])
        .arg(&path)
        .output()
        .context("running ffmpeg (is it installed?)")?;
    ensure!(
        output.status.success(),
        "ffmpeg could not make {name}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(path)
}

/// The duration ffprobe reads from a media file, in seconds.
pub fn media_duration(path: &Path) -> Result<f64> {
    let output = Command::new("ffprobe")
        .args(["-v", "error", "-show_entries", "format=duration"])
        .args(["-of", "default=noprint_wrappers=1:nokey=1"])
        .arg(path)
        .output()
        .context("running ffprobe")?;
    ensure!(
        output.status.success(),
        "ffprobe failed on {}: {}",
        path.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8_lossy(&output.stdout);
    text.trim()
        .parse()
        .with_context(|| format!("ffprobe printed no duration: {text:?}"))
}

/// Checks the file is an MP3 that decodes from start to end without an error.
pub fn assert_decodable_mp3(path: &Path) -> Result<()> {
    let probe = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "a:0"])
        .args(["-show_entries", "stream=codec_name,sample_rate,channels"])
        .args(["-of", "default=noprint_wrappers=1"])
        .arg(path)
        .output()
        .context("running ffprobe")?;
    let description = String::from_utf8_lossy(&probe.stdout);
    ensure!(
        probe.status.success() && description.contains("codec_name=mp3"),
        "not an MP3 audio stream: {description} {}",
        String::from_utf8_lossy(&probe.stderr)
    );
    let decode = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-i"])
        .arg(path)
        .args(["-f", "null", "-"])
        .output()
        .context("running ffmpeg")?;
    let errors = String::from_utf8_lossy(&decode.stderr);
    ensure!(
        decode.status.success() && errors.trim().is_empty(),
        "the MP3 does not decode cleanly: {errors}"
    );
    Ok(())
}

/// Sends SIGKILL to a process (the `kill` command: this crate has no unsafe code).
/// Whether process `pid` runs: it exists and is not a zombie (a process killed with SIGKILL
/// stays in /proc until its parent reaps it, which may come after a fast job has finished).
fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        // "pid (comm) state ...": comm may hold spaces and parentheses, the state follows the last ')'.
        stat.rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| !matches!(state, "Z" | "X" | "x"))
    })
}

pub fn kill_9(pid: u32) -> Result<()> {
    let status = Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .context("running kill")?;
    ensure!(status.success(), "kill -KILL {pid} failed");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_killed_process_not_yet_reaped_is_not_running() {
        assert!(running(std::process::id()));
        let mut child = Command::new("sleep").arg("30").spawn().unwrap();
        let pid = child.id();
        assert!(running(pid));
        kill_9(pid).unwrap();
        // Not waited for yet: a zombie, still in /proc.
        let deadline = Instant::now() + Duration::from_secs(10);
        while running(pid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(
            Path::new(&format!("/proc/{pid}")).exists(),
            "reaped too early"
        );
        assert!(!running(pid));
        child.wait().unwrap();
        assert!(!running(pid));
    }

    #[test]
    fn sse_blocks_are_parsed_by_event_name() {
        let block = "event: status\ndata: {\"status\":\"processing\"}\n\n";
        assert_eq!(
            parse_event(block, "status").as_deref(),
            Some("{\"status\":\"processing\"}")
        );
        assert_eq!(parse_event(block, "error"), None);
        assert_eq!(parse_event(":keep-alive\n\n", "status"), None);
        assert_eq!(
            parse_event("data: a\ndata: b\n\n", "message").as_deref(),
            Some("a\nb")
        );
    }

    #[test]
    fn object_ids() {
        assert!(is_object_id("6b09d0899a5ccbe117dba5a0"));
        assert!(!is_object_id("6b09d0899a5ccbe117dba5a"));
        assert!(!is_object_id("zz09d0899a5ccbe117dba5a0"));
    }
}
