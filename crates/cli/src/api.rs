//! The gateway's HTTP API as the command line uses it: login, register, streamed upload, status,
//! the `/events` stream and downloads into a file.

use std::{
    error::Error as _,
    path::{Path, PathBuf},
    pin::Pin,
    sync::Arc,
    time::Duration,
};

use eventsource_stream::Eventsource;
use futures::{Stream, StreamExt, TryStreamExt};
use reqwest::{header, multipart, Body, Response, StatusCode};
use serde::Deserialize;
use tokio::io::AsyncWriteExt;
use tokio_util::io::ReaderStream;

/// How long a short request (login, status, the start of a stream) may take.
const SHORT_TIMEOUT: Duration = Duration::from_secs(30);
/// Chunk size read from the video while uploading.
const UPLOAD_CHUNK: usize = 64 * 1024;

/// MP3 bitrates (kb/s) the gateway accepts.
pub use common::states::ALLOWED_BITRATES_KBPS as BITRATES;
use common::states::{JobState, Status};

/// What went wrong talking to the gateway.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 401: the token, or the email and password, were refused.
    #[error("{0}")]
    Unauthorized(String),
    /// Any other answer that is not a success, with the gateway's sentence.
    #[error("{message}")]
    Refused {
        /// The HTTP status.
        status: StatusCode,
        /// What the gateway said, or the status's reason when it said nothing readable.
        message: String,
    },
    /// No answer: the gateway is unreachable, or the connection broke.
    #[error("cannot reach the gateway at {url}: {reason}")]
    Transport {
        /// The gateway's base URL.
        url: String,
        /// The underlying error, in words.
        reason: String,
    },
    /// An answer this client does not understand.
    #[error("{0}")]
    Unexpected(String),
    /// A local file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

impl ApiError {
    /// The HTTP status of a refusal.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            ApiError::Unauthorized(_) => Some(StatusCode::UNAUTHORIZED),
            ApiError::Refused { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// A refusal that asking again will not change (a 4xx other than 408 and 429).
    pub fn is_permanent(&self) -> bool {
        self.status().is_some_and(|s| {
            s.is_client_error()
                && s != StatusCode::REQUEST_TIMEOUT
                && s != StatusCode::TOO_MANY_REQUESTS
        })
    }
}

/// MP3 quality asked for at upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Quality {
    /// The gateway's default (128 kb/s CBR).
    #[default]
    Default,
    /// Constant bitrate, kb/s.
    Bitrate(u32),
    /// LAME VBR quality, 0 (best) to 9.
    Vbr(u8),
}

/// A conversion's status, as `/status` and each `status` event carry it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct JobStatus {
    /// `processing`, `completed` or `failed` (the original gateway knows only the first two).
    pub status: Status,
    /// `queued`, `processing`, `completed` or `failed`; absent from the original gateway.
    #[serde(default)]
    pub state: Option<JobState>,
    /// Percent done while processing; absent from the original gateway.
    #[serde(default)]
    pub progress: Option<f64>,
    /// The MP3 to download, once completed.
    #[serde(default)]
    pub mp3_fid: Option<String>,
    /// Why it failed.
    #[serde(default)]
    pub error: Option<String>,
    /// Estimated seconds left while queued or processing; absent when the gateway cannot tell
    /// (and from the original gateway).
    #[serde(default)]
    pub eta_secs: Option<u64>,
}

impl JobStatus {
    /// Whether the status will not change any more.
    pub fn is_final(&self) -> bool {
        self.status.is_final()
    }
}

/// One Server-Sent Event: its type and data.
#[derive(Debug, Clone)]
pub struct ServerEvent {
    /// `status`, `error`, or `message` when the server named none.
    pub event: String,
    /// The data lines, joined.
    pub data: String,
}

/// The events of an open `/events` stream; an `Err` item means the stream broke.
pub type EventStream = Pin<Box<dyn Stream<Item = Result<ServerEvent, String>> + Send>>;

/// What `GET /events` gave.
pub enum Events {
    /// An event stream to read.
    Stream(EventStream),
    /// No stream for this job here: a gateway without `/events` (the original answers 404), too
    /// many open streams (429), or an answer that is not an event stream. `/status` still works.
    Unavailable(String),
}

/// Called with the number of bytes just sent or received.
pub type ByteCounter = Arc<dyn Fn(u64) + Send + Sync>;

/// A client of one gateway.
#[derive(Clone)]
pub struct Api {
    base: String,
    http: reqwest::Client,
    token: Option<String>,
}

impl Api {
    /// A client of the gateway at `base` (`http://host:port`), with a token or none.
    pub fn new(base: &str, token: Option<String>) -> Result<Api, ApiError> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("vidconv/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ApiError::Unexpected(format!("cannot set up HTTP: {e}")))?;
        Ok(Api {
            base: base.trim_end_matches('/').to_owned(),
            http,
            token,
        })
    }

    /// The gateway's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn transport(&self, error: &reqwest::Error) -> ApiError {
        ApiError::Transport {
            url: self.base.clone(),
            reason: describe(error),
        }
    }

    fn authed(&self, builder: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.token {
            Some(token) => builder.bearer_auth(token),
            None => builder,
        }
    }

    /// `POST /login` with HTTP Basic: the JWT.
    pub async fn login(&self, email: &str, password: &str) -> Result<String, ApiError> {
        let response = self
            .post_basic("/login", email, password, Context::Login)
            .await?;
        let token = response.text().await.map_err(|e| self.transport(&e))?;
        let token = token.trim().to_owned();
        // A JWT is three base64url parts; anything else is not the gateway's answer.
        if token.split('.').count() != 3 || token.contains(char::is_whitespace) {
            return Err(ApiError::Unexpected(
                "the gateway answered the login without a token; is this the right URL?".into(),
            ));
        }
        Ok(token)
    }

    /// `POST /register` with HTTP Basic (201 from auth, 200 from the original gateway).
    pub async fn register(&self, email: &str, password: &str) -> Result<(), ApiError> {
        self.post_basic("/register", email, password, Context::Register)
            .await
            .map(drop)
    }

    /// A POST with HTTP Basic credentials (the auth proxy's way), checked.
    async fn post_basic(
        &self,
        path: &str,
        email: &str,
        password: &str,
        context: Context,
    ) -> Result<Response, ApiError> {
        let response = self
            .http
            .post(self.url(path))
            .basic_auth(email, Some(password))
            .timeout(SHORT_TIMEOUT)
            .send()
            .await
            .map_err(|e| self.transport(&e))?;
        check(response, context).await
    }

    /// `POST /upload` of the file at `path`, streamed from disk (never whole in memory);
    /// `sent` is called with each chunk's size as it is handed to the connection. The `video_fid`.
    pub async fn upload(
        &self,
        path: &Path,
        quality: Quality,
        sent: ByteCounter,
    ) -> Result<String, ApiError> {
        let io = |source| ApiError::Io {
            path: path.to_owned(),
            source,
        };
        let file = tokio::fs::File::open(path).await.map_err(io)?;
        let len = file.metadata().await.map_err(io)?.len();
        let chunks = ReaderStream::with_capacity(file, UPLOAD_CHUNK).inspect_ok(move |chunk| {
            sent(chunk.len() as u64);
        });
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "video.mp4".to_owned());
        let part = multipart::Part::stream_with_length(Body::wrap_stream(chunks), len)
            .file_name(name)
            .mime_str(mime_for(path))
            .map_err(|e| ApiError::Unexpected(e.to_string()))?;
        // Options first, so the gateway knows them before the file streams in.
        let form = match quality {
            Quality::Default => multipart::Form::new(),
            Quality::Bitrate(kbps) => multipart::Form::new().text("bitrate", kbps.to_string()),
            Quality::Vbr(q) => multipart::Form::new().text("vbr_quality", q.to_string()),
        }
        .part("file", part);
        let response = self
            .authed(self.http.post(self.url("/upload")))
            .multipart(form)
            .send()
            .await
            .map_err(|e| self.transport(&e))?;
        let response = check(response, Context::Token).await?;
        let body: serde_json::Value = response.json().await.map_err(|_| {
            ApiError::Unexpected("the gateway accepted the upload but did not say its id".into())
        })?;
        body.get("video_fid")
            .and_then(|v| v.as_str())
            .map(str::to_owned)
            .ok_or_else(|| {
                ApiError::Unexpected(
                    "the gateway accepted the upload but did not say its id (video_fid)".into(),
                )
            })
    }

    /// `GET /status?fid=<video_fid>`.
    pub async fn status(&self, video_fid: &str) -> Result<JobStatus, ApiError> {
        let response = self
            .authed(self.http.get(self.url("/status")))
            .query(&[("fid", video_fid)])
            .timeout(SHORT_TIMEOUT)
            .send()
            .await
            .map_err(|e| self.transport(&e))?;
        let response = check(response, Context::Token).await?;
        response.json().await.map_err(|_| {
            ApiError::Unexpected("the gateway's status answer is not the JSON expected".into())
        })
    }

    /// `GET /events?fid=<video_fid>`: the open event stream, or why there is none.
    pub async fn events(&self, video_fid: &str) -> Result<Events, ApiError> {
        let send = self
            .authed(self.http.get(self.url("/events")))
            .query(&[("fid", video_fid)])
            .header(header::ACCEPT, "text/event-stream")
            .send();
        // Only the answer's head has to come quickly; the body lasts as long as the job.
        let response = match tokio::time::timeout(SHORT_TIMEOUT, send).await {
            Ok(sent) => sent.map_err(|e| self.transport(&e))?,
            Err(_) => {
                return Err(ApiError::Transport {
                    url: self.base.clone(),
                    reason: "no answer to GET /events in time".into(),
                })
            }
        };
        let status = response.status();
        if status == StatusCode::NOT_FOUND || status == StatusCode::TOO_MANY_REQUESTS {
            return Ok(Events::Unavailable(format!(
                "GET /events answered {status}"
            )));
        }
        let response = check(response, Context::Token).await?;
        let is_stream = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        if !is_stream {
            return Ok(Events::Unavailable(
                "GET /events did not answer an event stream".into(),
            ));
        }
        let events = response
            .bytes_stream()
            .eventsource()
            .map(|item| match item {
                Ok(event) => Ok(ServerEvent {
                    event: event.event,
                    data: event.data,
                }),
                Err(e) => Err(e.to_string()),
            });
        Ok(Events::Stream(Box::pin(events)))
    }

    /// `GET /download?fid=<mp3_fid>` into `dest`, through a temporary file in the same folder
    /// that becomes `dest` only when complete; an existing `dest` is replaced only if `replace`.
    /// `total` is called once with the length when the gateway says it, `received` per chunk.
    pub async fn download(
        &self,
        mp3_fid: &str,
        dest: &Path,
        replace: bool,
        total: impl FnOnce(u64),
        received: impl Fn(u64),
    ) -> Result<u64, ApiError> {
        let response = self
            .authed(self.http.get(self.url("/download")))
            .query(&[("fid", mp3_fid)])
            .send()
            .await
            .map_err(|e| self.transport(&e))?;
        let response = check(response, Context::Token).await?;
        if let Some(len) = response.content_length() {
            total(len);
        }
        let dir = dest
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let io = |source| ApiError::Io {
            path: dest.to_owned(),
            source,
        };
        let partial = tempfile::Builder::new()
            .prefix(".vidconv-")
            .suffix(".part")
            .tempfile_in(dir)
            .map_err(io)?;
        let mut file = tokio::fs::File::from_std(partial.reopen().map_err(io)?);
        let mut written = 0u64;
        let mut body = response.bytes_stream();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| self.transport(&e))?;
            file.write_all(&chunk).await.map_err(io)?;
            written += chunk.len() as u64;
            received(chunk.len() as u64);
        }
        file.flush().await.map_err(io)?;
        file.sync_all().await.map_err(io)?;
        drop(file);
        // Temporary files are created owner-only; the MP3 gets a download's usual mode.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(partial.path(), std::fs::Permissions::from_mode(0o644))
                .map_err(io)?;
        }
        let persisted = if replace {
            partial.persist(dest).map(drop)
        } else {
            partial.persist_noclobber(dest).map(drop)
        };
        persisted.map_err(|e| io(e.error))?;
        Ok(written)
    }
}

/// Which request an answer belongs to, for the words of a 401.
#[derive(Clone, Copy)]
enum Context {
    Login,
    Register,
    Token,
}

/// The response when it is a success, else the error it stands for.
async fn check(response: Response, context: Context) -> Result<Response, ApiError> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let retry_after = response
        .headers()
        .get(header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let body = response.text().await.unwrap_or_default();
    let said = error_sentence(&body);
    if status == StatusCode::UNAUTHORIZED {
        let message = match context {
            Context::Login => "wrong email or password".to_owned(),
            Context::Register => said.unwrap_or_else(|| "registration refused".to_owned()),
            Context::Token => format!(
                "the gateway refused the token ({}); log in again with `vidconv login EMAIL`",
                said.unwrap_or_else(|| "401 Unauthorized".to_owned())
            ),
        };
        return Err(ApiError::Unauthorized(message));
    }
    let mut message = said.unwrap_or_else(|| format!("the gateway answered {status}"));
    if let Some(secs) = retry_after {
        message.push_str(&format!(" (try again in {secs} s)"));
    }
    Err(ApiError::Refused { status, message })
}

/// The gateway's `{"error": "..."}` sentence, or a short plain-text body (the original gateway
/// answers text such as `exactly 1 file required`); `None` for HTML pages and empty bodies.
fn error_sentence(body: &str) -> Option<String> {
    if let Ok(json) = serde_json::from_str::<serde_json::Value>(body) {
        return json
            .get("error")
            .and_then(|v| v.as_str())
            .map(str::to_owned);
    }
    let text = body.trim();
    if text.is_empty() || text.starts_with('<') || text.len() > 300 {
        return None;
    }
    Some(text.to_owned())
}

/// A reqwest error with its causes ("error sending request" alone says little).
fn describe(error: &reqwest::Error) -> String {
    let mut text = if error.is_timeout() {
        "timed out".to_owned()
    } else if error.is_connect() {
        "connection failed".to_owned()
    } else {
        "the connection broke".to_owned()
    };
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The content type sent with a video, from its extension (the gateway records it).
fn mime_for(path: &Path) -> &'static str {
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "mp4" | "m4v" => "video/mp4",
        "mov" => "video/quicktime",
        "mkv" => "video/x-matroska",
        "webm" => "video/webm",
        "avi" => "video/x-msvideo",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_sentences() {
        assert_eq!(
            error_sentence(r#"{"error":"the file is empty"}"#).as_deref(),
            Some("the file is empty")
        );
        assert_eq!(
            error_sentence("exactly 1 file required").as_deref(),
            Some("exactly 1 file required")
        );
        assert_eq!(
            error_sentence("<!doctype html><title>404 Not Found</title>"),
            None
        );
        assert_eq!(error_sentence("  "), None);
    }

    #[test]
    fn permanent_refusals() {
        let refused = |status| ApiError::Refused {
            status,
            message: String::new(),
        };
        assert!(refused(StatusCode::BAD_REQUEST).is_permanent());
        assert!(refused(StatusCode::NOT_FOUND).is_permanent());
        assert!(!refused(StatusCode::TOO_MANY_REQUESTS).is_permanent());
        assert!(!refused(StatusCode::SERVICE_UNAVAILABLE).is_permanent());
        assert!(ApiError::Unauthorized(String::new()).is_permanent());
    }

    #[test]
    fn status_of_the_original_gateway_parses() {
        let s: JobStatus = serde_json::from_str(r#"{"status":"processing"}"#).unwrap();
        assert!(!s.is_final());
        assert_eq!(s.progress, None);
        let s: JobStatus =
            serde_json::from_str(r#"{"status":"completed","mp3_fid":"ab12"}"#).unwrap();
        assert!(s.is_final());
        assert_eq!(s.mp3_fid.as_deref(), Some("ab12"));
    }
}
