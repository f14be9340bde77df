//! Job state changes and progress pushed over Redis pub/sub, so that `/events` streams need not
//! poll MongoDB: the converter (and the gateway, for the changes it makes itself) publishes, and
//! each gateway process holds one subscription that feeds all its streams.
//!
//! One channel carries every job, the upload's id in each message (rather than a channel per
//! job): a gateway subscribes once at start and never again per stream, so there is no
//! SUBSCRIBE/UNSUBSCRIBE churn and no race between a stream's first MongoDB read and its
//! subscription being confirmed. The price is that every gateway receives every job's messages
//! and drops those nobody there watches (one map look-up each); their number is bounded by the
//! converters' CPUs, at most one per job every 250 ms, a few hundred a second for a large fleet.
//!
//! Publishing is best effort: MongoDB stays the source of truth, a message only carries a state
//! and a percentage, and a lost one is made good by the readers' resync and safety poll.

use std::{
    sync::Mutex,
    time::{Duration, Instant},
};

use redis::aio::ConnectionManager;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::config::{self, ConfigError, Env};

/// Channel used when `REDIS_EVENTS_CHANNEL` is unset.
pub const DEFAULT_CHANNEL: &str = "vidconv:job-events";

/// Messages waiting to be published; beyond this (Redis slow or away) new ones are dropped.
const PUBLISH_BACKLOG: usize = 1024;
/// Longest one PUBLISH (or the connection it needs) may take before it counts as failed.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(1);
/// At most one warning per this period about failed publishing; the rest go to debug.
const WARN_EVERY: Duration = Duration::from_secs(60);

/// What happened to a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobEventKind {
    /// Waiting for a converter (new, or handed back by one that stopped).
    Queued,
    /// Being converted; `progress` says how far.
    Processing,
    /// The MP3 is stored.
    Completed,
    /// It can never succeed.
    Failed,
    /// Its owner deleted it.
    Deleted,
}

/// One message on the channel: `{"video_fid":"<hex>","state":"processing","progress":42.5}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobEvent {
    /// The upload the job converts, as a hex ObjectId.
    pub video_fid: String,
    /// Its new state.
    pub state: JobEventKind,
    /// Percent done, while processing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<f64>,
}

impl JobEvent {
    /// A state change without progress.
    pub fn new(video_fid: impl ToString, state: JobEventKind) -> Self {
        Self {
            video_fid: video_fid.to_string(),
            state,
            progress: None,
        }
    }

    /// Progress of a job being converted.
    pub fn progress(video_fid: impl ToString, progress: f64) -> Self {
        Self {
            video_fid: video_fid.to_string(),
            state: JobEventKind::Processing,
            progress: Some(progress),
        }
    }
}

/// The variables [`JobEventsConfig::from_env`] reads.
pub mod var {
    crate::env_vars![REDIS_URL, REDIS_EVENTS_CHANNEL,];
}

/// Where job events go: `REDIS_URL` (optional; unset, nothing is pushed and the gateway polls
/// MongoDB) and `REDIS_EVENTS_CHANNEL`.
#[derive(Debug, Clone)]
pub struct JobEventsConfig {
    /// The Redis server, parsed from `REDIS_URL` (its password is redacted in `Debug`).
    pub client: redis::Client,
    /// The pub/sub channel (`REDIS_EVENTS_CHANNEL`, default [`DEFAULT_CHANNEL`]).
    pub channel: String,
}

impl JobEventsConfig {
    /// Reads `REDIS_URL` and `REDIS_EVENTS_CHANNEL`; `None` when `REDIS_URL` is unset.
    pub fn from_env(env: &impl Env) -> Result<Option<Self>, ConfigError> {
        let Some(url) = config::optional(env, var::REDIS_URL) else {
            return Ok(None);
        };
        let client = parse_redis_url(url.trim()).map_err(|reason| ConfigError::Invalid {
            name: var::REDIS_URL,
            reason,
        })?;
        let channel = config::or_default(env, var::REDIS_EVENTS_CHANNEL, DEFAULT_CHANNEL);
        if channel.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(ConfigError::Invalid {
                name: var::REDIS_EVENTS_CHANNEL,
                reason: "must not contain spaces or control characters".to_owned(),
            });
        }
        Ok(Some(Self { client, channel }))
    }
}

/// A `redis://` or `rediss://` URL, parsed without connecting; the error never repeats the URL
/// (it may hold a password).
fn parse_redis_url(url: &str) -> Result<redis::Client, String> {
    if !url.starts_with("redis://") && !url.starts_with("rediss://") {
        return Err("must start with redis:// (or rediss:// for TLS)".to_owned());
    }
    redis::Client::open(url).map_err(|e| format!("not a usable Redis URL ({})", e.category()))
}

/// Publishes job events without ever making the caller wait: messages go to a bounded queue
/// that a background task sends to Redis. Cheap to clone; [`Publisher::disabled`] drops all.
#[derive(Debug, Clone)]
pub struct Publisher {
    queue: Option<mpsc::Sender<JobEvent>>,
}

impl Publisher {
    /// A publisher that publishes nothing (no `REDIS_URL`).
    pub fn disabled() -> Self {
        Self { queue: None }
    }

    /// Starts the background task publishing to `config`'s channel; it connects lazily and
    /// reconnects by itself, and ends when the last clone of the publisher is dropped. Must be
    /// called inside a Tokio runtime.
    pub fn start(config: &JobEventsConfig) -> Self {
        let (tx, rx) = mpsc::channel(PUBLISH_BACKLOG);
        let manager = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(PUBLISH_TIMEOUT))
            .set_response_timeout(Some(PUBLISH_TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(5));
        match ConnectionManager::new_lazy_with_config(config.client.clone(), manager) {
            Ok(connection) => {
                tokio::spawn(publish_loop(connection, config.channel.clone(), rx));
                Self { queue: Some(tx) }
            }
            Err(e) => {
                // Only a configuration the manager itself refuses ends here; keep converting.
                tracing::warn!(error = %e, "cannot publish job events to Redis");
                Self::disabled()
            }
        }
    }

    /// Whether events go anywhere.
    pub fn is_enabled(&self) -> bool {
        self.queue.is_some()
    }

    /// Queues `event` for publishing; dropped (and counted) when the backlog is full.
    pub fn publish(&self, event: JobEvent) {
        let Some(queue) = &self.queue else { return };
        if queue.try_send(event).is_err() {
            metrics::counter!("job_events_published_total", "result" => "dropped").increment(1);
        }
    }
}

async fn publish_loop(
    mut connection: ConnectionManager,
    channel: String,
    mut queue: mpsc::Receiver<JobEvent>,
) {
    let warnings = RateLimitedWarning::new(WARN_EVERY);
    while let Some(event) = queue.recv().await {
        let Ok(payload) = serde_json::to_string(&event) else {
            continue;
        };
        let sent = tokio::time::timeout(
            PUBLISH_TIMEOUT,
            redis::cmd("PUBLISH")
                .arg(&channel)
                .arg(payload)
                .query_async::<i64>(&mut connection),
        )
        .await;
        let error = match sent {
            Ok(Ok(_)) => {
                metrics::counter!("job_events_published_total", "result" => "ok").increment(1);
                continue;
            }
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("no answer within {PUBLISH_TIMEOUT:?}"),
        };
        metrics::counter!("job_events_published_total", "result" => "error").increment(1);
        if warnings.should_warn() {
            tracing::warn!(%error, "cannot publish job events to Redis; pages fall back to \
                polling MongoDB (said at most once a minute)");
        } else {
            tracing::debug!(%error, "job event not published");
        }
    }
}

/// Says "warn" at most once per period, "debug" otherwise.
#[derive(Debug)]
pub struct RateLimitedWarning {
    every: Duration,
    last: Mutex<Option<Instant>>,
}

impl RateLimitedWarning {
    /// At most one warning per `every`.
    pub fn new(every: Duration) -> Self {
        Self {
            every,
            last: Mutex::new(None),
        }
    }

    /// Whether this occurrence is the one to warn about.
    pub fn should_warn(&self) -> bool {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        match *last {
            Some(at) if now.duration_since(at) < self.every => false,
            _ => {
                *last = Some(now);
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_url_is_optional_and_checked() {
        assert!(JobEventsConfig::from_env(&[("X", "y")]).unwrap().is_none());
        let c = JobEventsConfig::from_env(&[("REDIS_URL", "redis://127.0.0.1:6379/0")])
            .unwrap()
            .unwrap();
        assert_eq!(c.channel, DEFAULT_CHANNEL);
        for bad in [
            "http://redis:6379",
            "redis://:secret@[bad",
            "127.0.0.1:6379",
        ] {
            let err = JobEventsConfig::from_env(&[("REDIS_URL", bad)]).unwrap_err();
            let text = err.to_string();
            assert!(text.contains("REDIS_URL"), "{text}");
            assert!(
                !text.contains("secret"),
                "the password is not repeated: {text}"
            );
        }
        let err = JobEventsConfig::from_env(&[
            ("REDIS_URL", "redis://127.0.0.1"),
            ("REDIS_EVENTS_CHANNEL", "a b"),
        ])
        .unwrap_err();
        assert!(err.to_string().contains("REDIS_EVENTS_CHANNEL"), "{err}");
    }

    #[test]
    fn events_read_back_as_written() {
        let e = JobEvent::progress("abc", 42.5);
        let json = serde_json::to_string(&e).unwrap();
        assert_eq!(
            json,
            r#"{"video_fid":"abc","state":"processing","progress":42.5}"#
        );
        assert_eq!(serde_json::from_str::<JobEvent>(&json).unwrap(), e);
        let done: JobEvent =
            serde_json::from_str(r#"{"video_fid":"abc","state":"completed","extra":1}"#).unwrap();
        assert_eq!(done, JobEvent::new("abc", JobEventKind::Completed));
    }

    #[test]
    fn warnings_are_rate_limited() {
        let w = RateLimitedWarning::new(Duration::from_secs(3600));
        assert!(w.should_warn());
        assert!(!w.should_warn());
    }
}
