//! Configuration from the environment. Every variable the converter reads is read here.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use common::{
    config::{self, ConfigError, Env},
    job_events::JobEventsConfig,
    mongo::MongoLocations,
    names,
};

use crate::transcode::Limits;

/// Default broker address, matching the k8s service name.
pub const DEFAULT_RABBITMQ_URL: &str = "amqp://guest:guest@rabbitmq:5672/%2f";

/// The variables [`Config::from_env`] reads itself; [`Config::keys`] adds the shared readers'.
pub mod var {
    common::env_vars![
        CONVERTER_MAX_ATTEMPTS,
        CONVERTER_MAX_DURATION_SECS,
        CONVERTER_MAX_OUTPUT_BYTES,
        CONVERTER_MAX_STREAMS,
        CONVERTER_ADDR,
        RABBITMQ_URL,
        VIDEO_QUEUE,
        CONVERTER_TMP_DIR,
        CONVERTER_RETRY_BASE_MS,
        CONVERTER_JOB_TIMEOUT_SECS,
        CONVERTER_SHUTDOWN_GRACE_SECS,
        CONVERTER_SPLIT_MIN_SECS,
        CONVERTER_CONCURRENCY,
        CONVERTER_CPU_LIMIT,
    ];
}

/// Everything the converter needs to run.
#[derive(Debug, Clone)]
pub struct Config {
    /// Listen address of `/healthz`, `/readyz` and `/metrics` (`CONVERTER_ADDR`).
    pub addr: SocketAddr,
    /// AMQP URL of RabbitMQ (`RABBITMQ_URL`).
    pub rabbitmq_url: String,
    /// Queue to consume (`VIDEO_QUEUE`); dead letters go to `<queue>.dlq`.
    pub queue: String,
    /// Uploads, jobs and MP3s (`MONGODB_VIDEOS_URI`, `MONGODB_MP3S_URI`, `MONGODB_URI`).
    pub mongo: MongoLocations,
    /// Conversions at once, and the prefetch count (`CONVERTER_CONCURRENCY`; else
    /// `CONVERTER_CPU_LIMIT`, the pod's CPU limit from the downward API; else the CPUs seen).
    pub concurrency: u16,
    /// Where the MP3 being written lives (`CONVERTER_TMP_DIR`); uploads are read from GridFS.
    pub tmp_dir: PathBuf,
    /// Attempts for a job failing transiently before it is dead-lettered, and deliveries of a job
    /// that may die mid-conversion (killed, crashed) before it is failed (`CONVERTER_MAX_ATTEMPTS`).
    pub max_attempts: u32,
    /// First retry delay, doubled per attempt (`CONVERTER_RETRY_BASE_MS`).
    pub retry_base: Duration,
    /// A conversion running longer is stopped and dead-lettered (`CONVERTER_JOB_TIMEOUT_SECS`);
    /// kept below RabbitMQ's `consumer_timeout` (30 min) so the delivery is still ours to ack.
    pub job_timeout: Duration,
    /// On SIGTERM, in-flight jobs get this long before they are requeued
    /// (`CONVERTER_SHUTDOWN_GRACE_SECS`); below Kubernetes' 30 s termination grace period.
    pub shutdown_grace: Duration,
    /// Longest media (`CONVERTER_MAX_DURATION_SECS`), largest MP3 (`CONVERTER_MAX_OUTPUT_BYTES`)
    /// and most streams in a file (`CONVERTER_MAX_STREAMS`).
    pub limits: Limits,
    /// A job starting while slots are idle and nothing waits in the queue is encoded in
    /// segments on those slots, each at least this long (`CONVERTER_SPLIT_MIN_SECS`, default 30;
    /// 0 never splits).
    pub split_min_segment: Option<Duration>,
    /// Where job state changes and progress are published for the gateways' event streams
    /// (`REDIS_URL`, `REDIS_EVENTS_CHANNEL`); unset, nothing is published.
    pub job_events: Option<JobEventsConfig>,
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

    /// Reads the configuration; the error names the offending variable.
    pub fn from_env(env: &impl Env) -> Result<Config, ConfigError> {
        let default_addr = SocketAddr::from(([0, 0, 0, 0], 9090));
        let concurrency = concurrency(env)?;
        let max_attempts: u32 = positive(env, var::CONVERTER_MAX_ATTEMPTS, 5)?;
        let defaults = Limits::default();
        let limits = Limits {
            max_duration: Duration::from_secs(positive(
                env,
                var::CONVERTER_MAX_DURATION_SECS,
                defaults.max_duration.as_secs(),
            )?),
            max_output_bytes: positive(
                env,
                var::CONVERTER_MAX_OUTPUT_BYTES,
                defaults.max_output_bytes,
            )?,
            max_streams: positive(env, var::CONVERTER_MAX_STREAMS, defaults.max_streams)?,
        };
        Ok(Config {
            addr: config::parsed_or(env, var::CONVERTER_ADDR, default_addr)?,
            rabbitmq_url: config::or_default(env, var::RABBITMQ_URL, DEFAULT_RABBITMQ_URL),
            queue: config::or_default(env, var::VIDEO_QUEUE, names::VIDEO_QUEUE),
            mongo: MongoLocations::from_env(env)?,
            concurrency,
            tmp_dir: config::optional(env, var::CONVERTER_TMP_DIR)
                .map(PathBuf::from)
                .unwrap_or_else(std::env::temp_dir),
            max_attempts,
            retry_base: Duration::from_millis(config::parsed_or(
                env,
                var::CONVERTER_RETRY_BASE_MS,
                1000,
            )?),
            job_timeout: Duration::from_secs(config::parsed_or(
                env,
                var::CONVERTER_JOB_TIMEOUT_SECS,
                25 * 60,
            )?),
            shutdown_grace: Duration::from_secs(config::parsed_or(
                env,
                var::CONVERTER_SHUTDOWN_GRACE_SECS,
                25,
            )?),
            limits,
            job_events: JobEventsConfig::from_env(env)?,
            split_min_segment: match config::parsed_or(env, var::CONVERTER_SPLIT_MIN_SECS, 30u64)? {
                0 => None,
                secs => Some(Duration::from_secs(secs)),
            },
        })
    }

    /// Name of the dead-letter queue.
    pub fn dead_letter_queue(&self) -> String {
        names::dead_letter_queue(&self.queue)
    }
}

/// `CONVERTER_CONCURRENCY` when set, else `CONVERTER_CPU_LIMIT` (Kubernetes gives the limit in
/// whole CPUs, rounded up), else the CPUs this process may use; at least 1 either way.
fn concurrency(env: &impl Env) -> Result<u16, ConfigError> {
    if config::optional(env, var::CONVERTER_CONCURRENCY).is_some() {
        return positive(env, var::CONVERTER_CONCURRENCY, 1);
    }
    positive(
        env,
        var::CONVERTER_CPU_LIMIT,
        u16::try_from(num_cpus::get().max(1)).unwrap_or(u16::MAX),
    )
}

/// A number that must be at least 1.
fn positive<T>(env: &impl Env, name: &'static str, default: T) -> Result<T, ConfigError>
where
    T: std::str::FromStr + PartialOrd + From<u8>,
    T::Err: std::fmt::Display,
{
    let value = config::parsed_or(env, name, default)?;
    if value < T::from(1) {
        return Err(ConfigError::Invalid {
            name,
            reason: "must be at least 1".to_owned(),
        });
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use common::config::RecordingEnv;
    use std::collections::BTreeSet;

    #[test]
    fn the_printed_keys_are_the_variables_read() {
        // CONVERTER_CPU_LIMIT is read only without CONVERTER_CONCURRENCY, REDIS_EVENTS_CHANNEL
        // only with REDIS_URL.
        let env = RecordingEnv::new([
            ("MONGODB_URI", "mongodb://m:27017/"),
            ("REDIS_URL", "redis://redis:6379"),
        ]);
        Config::from_env(&env).unwrap();
        let keys = Config::keys();
        let declared: BTreeSet<String> = keys.iter().map(|k| (*k).to_owned()).collect();
        assert_eq!(env.asked(), declared);
        assert_eq!(declared.len(), keys.len(), "declared twice: {keys:?}");
    }

    #[test]
    fn defaults() {
        let env = [("MONGODB_URI", "mongodb://m:27017/")];
        let c = Config::from_env(&env).unwrap();
        assert_eq!(c.addr.to_string(), "0.0.0.0:9090");
        assert_eq!(c.queue, "video");
        assert_eq!(c.dead_letter_queue(), "video.dlq");
        assert_eq!(c.rabbitmq_url, DEFAULT_RABBITMQ_URL);
        assert!(c.concurrency >= 1);
        assert_eq!(c.max_attempts, 5);
        assert!(c.job_events.is_none());
        assert_eq!(c.limits.max_duration, Duration::from_secs(6 * 3600));
        assert_eq!(c.limits.max_output_bytes, 512 * 1024 * 1024);
        assert_eq!(c.limits.max_streams, 16);
        assert_eq!(c.split_min_segment, Some(Duration::from_secs(30)));
        assert_eq!(c.mongo.videos.database, "videos");
        assert_eq!(c.mongo.mp3s.database, "mp3s");
    }

    #[test]
    fn values_and_errors_name_the_variable() {
        let env = [
            ("MONGODB_URI", "mongodb://m:27017/"),
            ("VIDEO_QUEUE", "q1"),
            ("CONVERTER_CONCURRENCY", "3"),
            ("CONVERTER_TMP_DIR", "/x"),
            ("CONVERTER_SPLIT_MIN_SECS", "0"),
        ];
        let c = Config::from_env(&env).unwrap();
        assert_eq!(c.split_min_segment, None);
        assert_eq!(c.dead_letter_queue(), "q1.dlq");
        assert_eq!(c.concurrency, 3);
        assert_eq!(c.tmp_dir, PathBuf::from("/x"));

        let env = [
            ("MONGODB_URI", "mongodb://m:27017/"),
            ("CONVERTER_CONCURRENCY", "0"),
        ];
        let err = Config::from_env(&env).unwrap_err().to_string();
        assert!(err.contains("CONVERTER_CONCURRENCY"), "{err}");

        for name in [
            "CONVERTER_MAX_ATTEMPTS",
            "CONVERTER_MAX_DURATION_SECS",
            "CONVERTER_MAX_OUTPUT_BYTES",
            "CONVERTER_MAX_STREAMS",
        ] {
            for bad in ["0", "-1", "many"] {
                let env = [("MONGODB_URI", "mongodb://m:27017/"), (name, bad)];
                let err = Config::from_env(&env).unwrap_err().to_string();
                assert!(err.contains(name), "{name}={bad}: {err}");
            }
        }
        let env = [
            ("MONGODB_URI", "mongodb://m:27017/"),
            ("CONVERTER_MAX_DURATION_SECS", "60"),
            ("CONVERTER_MAX_OUTPUT_BYTES", "300000"),
            ("CONVERTER_MAX_STREAMS", "4"),
        ];
        let c = Config::from_env(&env).unwrap();
        assert_eq!(
            c.limits,
            Limits {
                max_duration: Duration::from_secs(60),
                max_output_bytes: 300_000,
                max_streams: 4,
            }
        );
        let env = [
            ("MONGODB_URI", "mongodb://m:27017/"),
            ("CONVERTER_SPLIT_MIN_SECS", "soon"),
        ];
        let err = Config::from_env(&env).unwrap_err().to_string();
        assert!(err.contains("CONVERTER_SPLIT_MIN_SECS"), "{err}");

        let err = Config::from_env(&[("X", "y")]).unwrap_err().to_string();
        assert!(err.contains("MONGODB_VIDEOS_URI"), "{err}");
    }

    #[test]
    fn concurrency_follows_the_cpu_limit_unless_set() {
        let mongo = ("MONGODB_URI", "mongodb://m:27017/");
        let limit = [mongo, ("CONVERTER_CPU_LIMIT", "4")];
        assert_eq!(Config::from_env(&limit).unwrap().concurrency, 4);
        let both = [
            mongo,
            ("CONVERTER_CPU_LIMIT", "4"),
            ("CONVERTER_CONCURRENCY", "1"),
        ];
        assert_eq!(Config::from_env(&both).unwrap().concurrency, 1);
        let err = Config::from_env(&[mongo, ("CONVERTER_CPU_LIMIT", "0")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("CONVERTER_CPU_LIMIT"), "{err}");
        let err = Config::from_env(&[mongo, ("CONVERTER_CPU_LIMIT", "1500m")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("CONVERTER_CPU_LIMIT"), "{err}");
    }
}
