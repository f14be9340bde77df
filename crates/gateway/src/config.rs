//! Every environment variable the gateway reads, read here and nowhere else.

use std::{net::SocketAddr, time::Duration};

use common::{
    config::{self, ConfigError, Env},
    forwarded::TrustedProxies,
    job_events::JobEventsConfig,
    mongo::MongoLocations,
    names::VIDEO_QUEUE,
};

use crate::webhooks::{AllowList, WebhookConfig, DEFAULT_MAX_ATTEMPTS, DEFAULT_RETRY_BASE_MS};

/// Default port of the admin listener (`/metrics`, `/readyz`, `/healthz`).
pub const DEFAULT_ADMIN_PORT: u16 = 9102;

/// Default body size limit of an upload: 200 MiB.
pub const DEFAULT_MAX_UPLOAD_BYTES: u64 = 200 * 1024 * 1024;

/// Default deadline for a request's headers (and for the next request on a kept-alive
/// connection): 10 s.
pub const DEFAULT_HEADER_READ_TIMEOUT_SECS: u64 = 10;
/// Default idle timeout of a connection on which nothing moves: 60 s (longer than the 15 s
/// keep-alive comments of event streams).
pub const DEFAULT_IDLE_TIMEOUT_SECS: u64 = 60;
/// Default cap on one user's concurrent event streams (per gateway replica).
pub const DEFAULT_MAX_EVENT_STREAMS_PER_USER: usize = 8;
/// Default longest life of one event stream: 5 minutes, after which the page reconnects.
pub const DEFAULT_EVENT_STREAM_MAX_SECS: u64 = 300;
/// Default cap on one user's concurrent uploads (per gateway replica).
pub const DEFAULT_MAX_UPLOADS_PER_USER: usize = 3;
/// Default age of a `queued` job after which the sweeper publishes it again: 30 minutes.
pub const DEFAULT_REQUEUE_STUCK_AFTER_SECS: u64 = 1800;
/// Default number of re-publications before a stuck job is failed.
pub const DEFAULT_MAX_REQUEUES: u32 = 3;
/// Default pause between two rounds of the retention sweep: 5 minutes.
pub const DEFAULT_RETENTION_SWEEP_SECS: u64 = 300;

/// The variables [`Config::from_env`] reads itself; [`Config::keys`] adds the shared readers'.
pub mod var {
    common::env_vars![
        GATEWAY_ADDR,
        GATEWAY_ADMIN_ADDR,
        AUTH_SVC_ADDRESS,
        JWT_SECRET,
        TRUSTED_PROXIES,
        RABBITMQ_URL,
        VIDEO_QUEUE,
        MAX_UPLOAD_BYTES,
        HTTP_HEADER_READ_TIMEOUT_SECS,
        HTTP_IDLE_TIMEOUT_SECS,
        MAX_EVENT_STREAMS_PER_USER,
        EVENT_STREAM_MAX_SECS,
        MAX_UPLOADS_PER_USER,
        MAX_USER_STORAGE_BYTES,
        REQUEUE_STUCK_AFTER_SECS,
        MAX_REQUEUES,
        WEBHOOK_SECRET,
        WEBHOOK_ALLOWED_HOSTS,
        WEBHOOK_MAX_ATTEMPTS,
        WEBHOOK_RETRY_BASE_MS,
        DEDUPLICATE_UPLOADS,
        RETENTION_HOURS,
        RETENTION_INCLUDE_UNOWNED,
        RETENTION_SWEEP_SECS,
    ];
}

/// The gateway's configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Listen address of the public API (`GATEWAY_ADDR`, default `0.0.0.0:8080`).
    pub addr: SocketAddr,
    /// Listen address of `/metrics`, `/readyz` and `/healthz` for probes and Prometheus
    /// (`GATEWAY_ADMIN_ADDR`, default `0.0.0.0:9102`); kept off the public port.
    pub admin_addr: SocketAddr,
    /// Base URL of the auth service, from `AUTH_SVC_ADDRESS` (`host:port` or a URL).
    pub auth_base_url: String,
    /// HS256 secret shared with auth (`JWT_SECRET`; at least 32 bytes, not a placeholder);
    /// unset, tokens are validated by auth's `POST /validate` as the original gateway does.
    pub jwt_secret: Option<String>,
    /// Proxies whose `X-Forwarded-For` is believed (`TRUSTED_PROXIES`, CIDRs; default none).
    pub trusted_proxies: TrustedProxies,
    /// Where uploads, jobs and MP3s live (`MONGODB_VIDEOS_URI`, `MONGODB_MP3S_URI`, `MONGODB_URI`).
    pub mongo: MongoLocations,
    /// AMQP URL of RabbitMQ (`RABBITMQ_URL`).
    pub rabbitmq_url: String,
    /// Name of the conversion queue (`VIDEO_QUEUE`, default `video`).
    pub video_queue: String,
    /// Largest accepted upload, in bytes (`MAX_UPLOAD_BYTES`, default 200 MiB).
    pub max_upload_bytes: u64,
    /// Deadline for a request's headers and for the next request on an idle kept-alive
    /// connection (`HTTP_HEADER_READ_TIMEOUT_SECS`, default 10).
    pub header_read_timeout: Duration,
    /// A connection with no byte read or written for this long is closed
    /// (`HTTP_IDLE_TIMEOUT_SECS`, default 60).
    pub idle_timeout: Duration,
    /// Concurrent `/events` streams one user may hold (`MAX_EVENT_STREAMS_PER_USER`, default 8).
    pub max_event_streams_per_user: usize,
    /// Longest life of an `/events` stream (`EVENT_STREAM_MAX_SECS`, default 300).
    pub event_stream_max: Duration,
    /// Concurrent uploads one user may send (`MAX_UPLOADS_PER_USER`, default 3).
    pub max_uploads_per_user: usize,
    /// Bytes of uploads and MP3s one user may keep (`MAX_USER_STORAGE_BYTES`, unset: no quota).
    pub max_user_storage_bytes: Option<u64>,
    /// Age after which a job still `queued` is published again (`REQUEUE_STUCK_AFTER_SECS`,
    /// default 1800).
    pub requeue_stuck_after: Duration,
    /// Re-publications of a stuck job before it is failed (`MAX_REQUEUES`, default 3).
    pub max_requeues: u32,
    /// Callbacks at the end of a job (`WEBHOOK_SECRET`, `WEBHOOK_ALLOWED_HOSTS`,
    /// `WEBHOOK_MAX_ATTEMPTS`, `WEBHOOK_RETRY_BASE_MS`); off without the secret.
    pub webhooks: WebhookConfig,
    /// What is removed how long after it finished (`RETENTION_HOURS`; unset or 0: nothing).
    pub retention: Option<Retention>,
    /// Redis pub/sub for job events (`REDIS_URL`, `REDIS_EVENTS_CHANNEL`); unset, `/events`
    /// streams poll MongoDB.
    pub job_events: Option<JobEventsConfig>,
    /// An upload whose content and quality match a finished conversion shares its MP3 instead
    /// of being converted again (`DEDUPLICATE_UPLOADS`, `true` or `false`, default `true`).
    pub deduplicate_uploads: bool,
}

/// Automatic removal of old conversions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Age, counted from completion or failure, after which a conversion is removed
    /// (`RETENTION_HOURS`).
    pub after: Duration,
    /// Whether files the original system wrote (no owner) are removed too
    /// (`RETENTION_INCLUDE_UNOWNED`, default false).
    pub include_unowned: bool,
    /// Pause between two sweeps (`RETENTION_SWEEP_SECS`, default 300).
    pub sweep_every: Duration,
}

impl Config {
    /// Every environment variable [`Config::from_env`] reads, its own and the shared readers'
    /// (MongoDB locations, job events): what `--print-config-keys` prints.
    pub fn keys() -> Vec<&'static str> {
        [
            var::ALL,
            common::mongo::var::ALL,
            common::job_events::var::ALL,
        ]
        .concat()
    }

    /// Reads the configuration; the error names the variable at fault.
    pub fn from_env(env: &impl Env) -> Result<Config, ConfigError> {
        let addr = config::parsed_or(
            env,
            var::GATEWAY_ADDR,
            SocketAddr::from(([0, 0, 0, 0], 8080)),
        )?;
        let admin_addr = config::parsed_or(
            env,
            var::GATEWAY_ADMIN_ADDR,
            SocketAddr::from(([0, 0, 0, 0], DEFAULT_ADMIN_PORT)),
        )?;
        if admin_addr.port() != 0 && admin_addr.port() == addr.port() {
            return Err(ConfigError::Invalid {
                name: var::GATEWAY_ADMIN_ADDR,
                reason: format!(
                    "{admin_addr} uses the port of GATEWAY_ADDR ({addr}); the admin endpoints \
                     need a port of their own"
                ),
            });
        }
        let auth_base_url =
            auth_base_url(&config::or_default(env, var::AUTH_SVC_ADDRESS, "auth:5000")).map_err(
                |reason| ConfigError::Invalid {
                    name: var::AUTH_SVC_ADDRESS,
                    reason,
                },
            )?;
        let jwt_secret = config::optional_secret(env, var::JWT_SECRET)?;
        let trusted_proxies =
            config::parsed_or(env, var::TRUSTED_PROXIES, TrustedProxies::default())?;
        let mongo = MongoLocations::from_env(env)?;
        let rabbitmq_url = config::or_default(
            env,
            var::RABBITMQ_URL,
            "amqp://guest:guest@rabbitmq:5672/%2f",
        );
        if !rabbitmq_url.starts_with("amqp://") && !rabbitmq_url.starts_with("amqps://") {
            return Err(ConfigError::Invalid {
                name: var::RABBITMQ_URL,
                reason: "must start with amqp:// or amqps://".to_owned(),
            });
        }
        let video_queue = config::or_default(env, var::VIDEO_QUEUE, VIDEO_QUEUE);
        let max_upload_bytes =
            config::parsed_or(env, var::MAX_UPLOAD_BYTES, DEFAULT_MAX_UPLOAD_BYTES)?;
        if max_upload_bytes == 0 {
            return Err(ConfigError::Invalid {
                name: var::MAX_UPLOAD_BYTES,
                reason: "must be greater than 0".to_owned(),
            });
        }
        let header_read_timeout = seconds(
            env,
            var::HTTP_HEADER_READ_TIMEOUT_SECS,
            DEFAULT_HEADER_READ_TIMEOUT_SECS,
        )?;
        let idle_timeout = seconds(env, var::HTTP_IDLE_TIMEOUT_SECS, DEFAULT_IDLE_TIMEOUT_SECS)?;
        let max_event_streams_per_user = positive(
            env,
            var::MAX_EVENT_STREAMS_PER_USER,
            DEFAULT_MAX_EVENT_STREAMS_PER_USER,
        )?;
        let event_stream_max = seconds(
            env,
            var::EVENT_STREAM_MAX_SECS,
            DEFAULT_EVENT_STREAM_MAX_SECS,
        )?;
        let max_uploads_per_user =
            positive(env, var::MAX_UPLOADS_PER_USER, DEFAULT_MAX_UPLOADS_PER_USER)?;
        let max_user_storage_bytes = config::parsed_optional(env, var::MAX_USER_STORAGE_BYTES)?;
        if max_user_storage_bytes == Some(0) {
            return Err(ConfigError::Invalid {
                name: var::MAX_USER_STORAGE_BYTES,
                reason: "must be greater than 0 (unset it for no quota)".to_owned(),
            });
        }
        let requeue_stuck_after = seconds(
            env,
            var::REQUEUE_STUCK_AFTER_SECS,
            DEFAULT_REQUEUE_STUCK_AFTER_SECS,
        )?;
        let max_requeues = config::parsed_or(env, var::MAX_REQUEUES, DEFAULT_MAX_REQUEUES)?;
        let retention = retention(env)?;
        let webhooks = WebhookConfig {
            secret: config::optional_secret(env, var::WEBHOOK_SECRET)?,
            allowed: config::parsed_or(env, var::WEBHOOK_ALLOWED_HOSTS, AllowList::default())?,
            max_attempts: positive(env, var::WEBHOOK_MAX_ATTEMPTS, DEFAULT_MAX_ATTEMPTS)?,
            retry_base: Duration::from_millis(positive(
                env,
                var::WEBHOOK_RETRY_BASE_MS,
                DEFAULT_RETRY_BASE_MS,
            )?),
        };
        let job_events = JobEventsConfig::from_env(env)?;
        let deduplicate_uploads = config::parsed_or(env, var::DEDUPLICATE_UPLOADS, true)?;
        Ok(Config {
            addr,
            admin_addr,
            auth_base_url,
            jwt_secret,
            trusted_proxies,
            mongo,
            rabbitmq_url,
            video_queue,
            max_upload_bytes,
            header_read_timeout,
            idle_timeout,
            max_event_streams_per_user,
            event_stream_max,
            max_uploads_per_user,
            max_user_storage_bytes,
            requeue_stuck_after,
            max_requeues,
            retention,
            webhooks,
            job_events,
            deduplicate_uploads,
        })
    }
}

/// `RETENTION_HOURS` (0 or unset: off) and the settings that only matter with it.
fn retention(env: &impl Env) -> Result<Option<Retention>, ConfigError> {
    let hours: u64 = config::parsed_or(env, var::RETENTION_HOURS, 0)?;
    let include_unowned = config::flag(env, var::RETENTION_INCLUDE_UNOWNED, false)?;
    let sweep_every = seconds(env, var::RETENTION_SWEEP_SECS, DEFAULT_RETENTION_SWEEP_SECS)?;
    if hours == 0 {
        return Ok(None);
    }
    // Ten years: far beyond any use, and small enough for every date computation.
    if hours > 24 * 366 * 10 {
        return Err(ConfigError::Invalid {
            name: var::RETENTION_HOURS,
            reason: format!("{hours} hours is more than ten years; use 0 to keep files forever"),
        });
    }
    Ok(Some(Retention {
        after: Duration::from_secs(hours * 3600),
        include_unowned,
        sweep_every,
    }))
}

/// A whole number of seconds greater than 0.
fn seconds(env: &impl Env, name: &'static str, default: u64) -> Result<Duration, ConfigError> {
    positive(env, name, default).map(Duration::from_secs)
}

/// A number greater than 0.
fn positive<T>(env: &impl Env, name: &'static str, default: T) -> Result<T, ConfigError>
where
    T: std::str::FromStr + PartialOrd + Default,
    T::Err: std::fmt::Display,
{
    let value = config::parsed_or(env, name, default)?;
    if value <= T::default() {
        return Err(ConfigError::Invalid {
            name,
            reason: "must be greater than 0".to_owned(),
        });
    }
    Ok(value)
}

/// `auth:5000` (the original's form, no scheme) or `http://auth:5000/` -> `http://auth:5000`.
fn auth_base_url(raw: &str) -> Result<String, String> {
    let raw = raw.trim().trim_end_matches('/');
    let url = if raw.contains("://") {
        raw.to_owned()
    } else {
        format!("http://{raw}")
    };
    if !url.starts_with("http://") && !url.starts_with("https://") {
        return Err(format!("{raw:?}: expected host:port or an http:// URL"));
    }
    let host = url.split_once("://").map(|(_, h)| h).unwrap_or_default();
    if host.is_empty() {
        return Err(format!("{raw:?}: no host"));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;
    use common::config::RecordingEnv;
    use std::collections::BTreeSet;

    const MONGO: (&str, &str) = ("MONGODB_URI", "mongodb://127.0.0.1:27017");
    /// A secret that passes the length check.
    const SECRET: (&str, &str) = ("JWT_SECRET", "0123456789abcdef0123456789abcdef");

    #[test]
    fn the_printed_keys_are_the_variables_read() {
        // REDIS_EVENTS_CHANNEL is read only when REDIS_URL is set.
        let env = RecordingEnv::new([SECRET, MONGO, ("REDIS_URL", "redis://redis:6379")]);
        Config::from_env(&env).unwrap();
        let keys = Config::keys();
        let declared: BTreeSet<String> = keys.iter().map(|k| (*k).to_owned()).collect();
        assert_eq!(env.asked(), declared);
        assert_eq!(declared.len(), keys.len(), "declared twice: {keys:?}");
    }

    #[test]
    fn defaults() {
        let c = Config::from_env(&[SECRET, MONGO]).unwrap();
        assert_eq!(c.addr.to_string(), "0.0.0.0:8080");
        assert_eq!(c.admin_addr.to_string(), "0.0.0.0:9102");
        assert_eq!(c.auth_base_url, "http://auth:5000");
        assert_eq!(c.rabbitmq_url, "amqp://guest:guest@rabbitmq:5672/%2f");
        assert_eq!(c.video_queue, "video");
        assert_eq!(c.max_upload_bytes, 200 * 1024 * 1024);
        assert_eq!(c.mongo.videos.database, "videos");
        assert_eq!(c.mongo.mp3s.database, "mp3s");
        assert_eq!(c.header_read_timeout, Duration::from_secs(10));
        assert_eq!(c.idle_timeout, Duration::from_secs(60));
        assert_eq!(c.max_event_streams_per_user, 8);
        assert_eq!(c.event_stream_max, Duration::from_secs(300));
        assert_eq!(c.max_uploads_per_user, 3);
        assert_eq!(c.max_user_storage_bytes, None);
        assert_eq!(c.requeue_stuck_after, Duration::from_secs(1800));
        assert_eq!(c.max_requeues, 3);
        assert_eq!(c.retention, None);
        assert!(c.trusted_proxies.is_empty());
        assert_eq!(c.webhooks.secret, None);
        assert!(c.webhooks.allowed.is_empty());
        assert_eq!(c.webhooks.max_attempts, 5);
        assert_eq!(c.webhooks.retry_base, Duration::from_secs(15));
    }

    #[test]
    fn webhook_settings() {
        let c = Config::from_env(&[
            SECRET,
            MONGO,
            ("WEBHOOK_SECRET", "fedcba9876543210fedcba9876543210"),
            ("WEBHOOK_ALLOWED_HOSTS", "hooks.internal, 10.0.0.0/8"),
            ("WEBHOOK_MAX_ATTEMPTS", "3"),
            ("WEBHOOK_RETRY_BASE_MS", "250"),
        ])
        .unwrap();
        assert_eq!(
            c.webhooks.secret.as_deref(),
            Some("fedcba9876543210fedcba9876543210")
        );
        assert!(c
            .webhooks
            .allowed
            .permits("hooks.internal", "192.168.1.1".parse().unwrap()));
        assert_eq!(c.webhooks.max_attempts, 3);
        assert_eq!(c.webhooks.retry_base, Duration::from_millis(250));
        let err = Config::from_env(&[SECRET, MONGO, ("WEBHOOK_SECRET", "short")]).unwrap_err();
        assert!(err.to_string().contains("WEBHOOK_SECRET"), "{err}");
    }

    #[test]
    fn redis_url_turns_on_pushed_events_and_a_bad_one_is_named() {
        let c = Config::from_env(&[SECRET, MONGO]).unwrap();
        assert!(c.job_events.is_none());
        let c = Config::from_env(&[SECRET, MONGO, ("REDIS_URL", "redis://redis:6379")]).unwrap();
        assert_eq!(
            c.job_events.unwrap().channel,
            common::job_events::DEFAULT_CHANNEL
        );
        let err = Config::from_env(&[SECRET, MONGO, ("REDIS_URL", "redis:6379")]).unwrap_err();
        assert!(err.to_string().contains("REDIS_URL"), "{err}");
    }

    #[test]
    fn retention_is_off_unless_hours_are_given() {
        let c = Config::from_env(&[SECRET, MONGO, ("RETENTION_HOURS", "0")]).unwrap();
        assert_eq!(c.retention, None);
        let c = Config::from_env(&[
            SECRET,
            MONGO,
            ("RETENTION_HOURS", "24"),
            ("RETENTION_INCLUDE_UNOWNED", "true"),
        ])
        .unwrap();
        assert_eq!(
            c.retention,
            Some(Retention {
                after: Duration::from_secs(24 * 3600),
                include_unowned: true,
                sweep_every: Duration::from_secs(300),
            })
        );
        assert!(c.deduplicate_uploads);
        let c = Config::from_env(&[SECRET, MONGO, ("DEDUPLICATE_UPLOADS", "false")]).unwrap();
        assert!(!c.deduplicate_uploads);
        let err = Config::from_env(&[SECRET, MONGO, ("DEDUPLICATE_UPLOADS", "no")]).unwrap_err();
        assert!(err.to_string().contains("DEDUPLICATE_UPLOADS"), "{err}");
    }

    #[test]
    fn trusted_proxies_are_cidrs() {
        let c = Config::from_env(&[SECRET, MONGO, ("TRUSTED_PROXIES", "10.0.0.0/8, 127.0.0.1")])
            .unwrap();
        assert!(c.trusted_proxies.contains("10.1.2.3".parse().unwrap()));
        assert!(!c.trusted_proxies.contains("11.1.2.3".parse().unwrap()));
        let err = Config::from_env(&[SECRET, MONGO, ("TRUSTED_PROXIES", "nginx")]).unwrap_err();
        assert!(err.to_string().contains("TRUSTED_PROXIES"), "{err}");
    }

    #[test]
    fn a_weak_jwt_secret_is_refused_when_set() {
        for weak in ["s", "change-me-to-a-long-random-string"] {
            let err = Config::from_env(&[("JWT_SECRET", weak), MONGO]).unwrap_err();
            let text = err.to_string();
            assert!(
                text.contains("JWT_SECRET") && text.contains("openssl rand -hex 32"),
                "{text}"
            );
        }
    }

    #[test]
    fn jwt_secret_is_optional() {
        assert_eq!(Config::from_env(&[MONGO]).unwrap().jwt_secret, None);
        let c = Config::from_env(&[MONGO, SECRET]).unwrap();
        assert_eq!(c.jwt_secret.as_deref(), Some(SECRET.1));
    }

    #[test]
    fn the_original_gateway_configmap_is_enough() {
        // src/gateway-service/manifest/configmap.yaml of the original; it has no Secret for us.
        let c = Config::from_env(&[
            ("AUTH_SVC_ADDRESS", "auth:5000"),
            (
                "MONGODB_VIDEOS_URI",
                "mongodb://mohamed:mo1234@mongodb:27017/videos?authSource=admin",
            ),
            (
                "MONGODB_MP3S_URI",
                "mongodb://mohamed:mo1234@mongodb:27017/mp3s?authSource=admin",
            ),
        ])
        .unwrap();
        assert_eq!(c.jwt_secret, None);
        assert_eq!(c.auth_base_url, "http://auth:5000");
        assert_eq!(c.mongo.videos.database, "videos");
        assert_eq!(c.mongo.mp3s.database, "mp3s");
    }

    #[test]
    fn auth_address_with_or_without_scheme() {
        for (raw, want) in [
            ("auth:5000", "http://auth:5000"),
            ("http://10.0.0.1:5000/", "http://10.0.0.1:5000"),
            ("https://auth.example", "https://auth.example"),
        ] {
            let c = Config::from_env(&[SECRET, MONGO, ("AUTH_SVC_ADDRESS", raw)]).unwrap();
            assert_eq!(c.auth_base_url, want);
        }
        let err = Config::from_env(&[SECRET, MONGO, ("AUTH_SVC_ADDRESS", "ftp://x")]).unwrap_err();
        assert!(err.to_string().contains("AUTH_SVC_ADDRESS"));
    }

    #[test]
    fn bad_values_name_the_variable() {
        for (name, value) in [
            ("MAX_UPLOAD_BYTES", "lots"),
            ("MAX_UPLOAD_BYTES", "0"),
            ("GATEWAY_ADDR", "nowhere"),
            ("GATEWAY_ADMIN_ADDR", "nowhere"),
            ("GATEWAY_ADMIN_ADDR", "0.0.0.0:8080"),
            ("RABBITMQ_URL", "http://rabbit"),
            ("HTTP_HEADER_READ_TIMEOUT_SECS", "0"),
            ("HTTP_IDLE_TIMEOUT_SECS", "soon"),
            ("MAX_EVENT_STREAMS_PER_USER", "0"),
            ("EVENT_STREAM_MAX_SECS", "-1"),
            ("MAX_UPLOADS_PER_USER", "0"),
            ("MAX_USER_STORAGE_BYTES", "0"),
            ("MAX_USER_STORAGE_BYTES", "1GB"),
            ("REQUEUE_STUCK_AFTER_SECS", "0"),
            ("MAX_REQUEUES", "many"),
            ("RETENTION_HOURS", "-1"),
            ("RETENTION_HOURS", "1.5"),
            ("RETENTION_HOURS", "100000"),
            ("RETENTION_INCLUDE_UNOWNED", "maybe"),
            ("RETENTION_SWEEP_SECS", "0"),
            ("WEBHOOK_ALLOWED_HOSTS", "not a host!"),
            ("WEBHOOK_MAX_ATTEMPTS", "0"),
            ("WEBHOOK_RETRY_BASE_MS", "soon"),
            (
                "WEBHOOK_SECRET",
                "replace-me-with-a-webhook-secret-of-32-bytes",
            ),
        ] {
            let err = Config::from_env(&[SECRET, MONGO, (name, value)]).unwrap_err();
            assert!(err.to_string().contains(name), "{err}");
        }
    }
}
