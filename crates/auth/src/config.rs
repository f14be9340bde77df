//! Every environment variable the auth service reads, and nothing else reads the environment.

use std::{fmt, net::SocketAddr, str::FromStr, time::Duration};

use common::config::{self, ConfigError, Env};

use crate::rate_limit::{redis_log, LoginLimits};
use sqlx::postgres::PgConnectOptions;

/// Listen address when `AUTH_ADDR` is unset (the original's port).
pub const DEFAULT_ADDR: &str = "0.0.0.0:5000";
/// Users table when `AUTH_TABLE` is unset (the original's).
pub const DEFAULT_TABLE: &str = "auth_user";
/// What the names of auth's Redis keys start with when `REDIS_KEY_PREFIX` is unset.
pub const DEFAULT_REDIS_KEY_PREFIX: &str = "vidconv:auth:";

/// Every variable [`Config::from_env`] reads.
pub mod var {
    common::env_vars![
        JWT_SECRET,
        AUTH_ADDR,
        AUTH_TABLE,
        REGISTER_MAX_PER_IP,
        REGISTER_WINDOW_SECS,
        DATABASE_MAX_CONNECTIONS,
        PASSWORD_HASH_CONCURRENCY,
        TRUSTED_PROXY_HOPS,
        AUTH_UPGRADE_LEGACY_PASSWORDS,
        REDIS_URL,
        LOGIN_MAX_FAILED_EMAILS_PER_IP,
        LOGIN_MAX_FAILURES_PER_IP,
        LOGIN_MAX_FAILURES_PER_EMAIL_AND_IP,
        LOGIN_MAX_FAILURES_PER_EMAIL,
        LOGIN_SLOWDOWN_MS,
        LOGIN_MAX_SLOWDOWN_MS,
        LOGIN_FAILURE_WINDOW_SECS,
        DATABASE_URL,
        DATABASE_HOST,
        DATABASE_PORT,
        DATABASE_NAME,
        DATABASE_USER,
        DATABASE_PASSWORD,
        REDIS_KEY_PREFIX,
    ];
}

/// The auth service's configuration.
#[derive(Clone)]
pub struct Config {
    /// Where to listen (`AUTH_ADDR`); port 0 picks a free port.
    pub addr: SocketAddr,
    /// How to reach Postgres (`DATABASE_URL`, or the original's `DATABASE_HOST`/... variables).
    pub database: PgConnectOptions,
    /// Most connections the pool opens (`DATABASE_MAX_CONNECTIONS`).
    pub database_max_connections: u32,
    /// The users table (`AUTH_TABLE`), a checked plain identifier.
    pub table: TableName,
    /// HS256 secret for tokens (`JWT_SECRET`).
    pub jwt_secret: String,
    /// How failed logins are limited (see `rate_limit`).
    pub login_limits: LoginLimits,
    /// Registrations per client address within `register_window` (`REGISTER_MAX_PER_IP`); 0
    /// disables.
    pub register_max_per_ip: u32,
    /// The window of `register_max_per_ip` (`REGISTER_WINDOW_SECS`).
    pub register_window: Duration,
    /// Most password hashes computed at once (`PASSWORD_HASH_CONCURRENCY`, default: the number
    /// of CPUs); each takes 19 MiB while it runs.
    pub password_hash_concurrency: usize,
    /// How many proxies in front of auth append to `X-Forwarded-For` (`TRUSTED_PROXY_HOPS`);
    /// 0 ignores the header and uses the connection's peer address.
    pub trusted_proxy_hops: usize,
    /// Whether a plaintext password (a row of the original's) is replaced by an argon2id hash
    /// at its first successful login (`AUTH_UPGRADE_LEGACY_PASSWORDS`, default true). Off while
    /// the original auth still serves the same table, so that it can still log those users in.
    pub upgrade_legacy_passwords: bool,
    /// Where the login and registration limits are shared by the replicas (`REDIS_URL`);
    /// `None` keeps them in each replica's memory.
    pub redis: Option<RedisUrl>,
    /// What every Redis key of auth starts with (`REDIS_KEY_PREFIX`).
    pub redis_key_prefix: String,
}

/// Longest slow-down allowed: well inside the 30 s request timeout of auth and the gateway.
const MAX_SLOWDOWN_LIMIT_MS: u64 = 20_000;

// Hand-written so that the JWT secret and the database password never reach a log line.
impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("addr", &self.addr)
            .field("database_host", &self.database.get_host())
            .field("database_port", &self.database.get_port())
            .field("database_name", &self.database.get_database())
            .field("database_user", &self.database.get_username())
            .field("database_max_connections", &self.database_max_connections)
            .field("table", &self.table)
            .field("jwt_secret", &"<redacted>")
            .field("login_limits", &self.login_limits)
            .field("register_max_per_ip", &self.register_max_per_ip)
            .field("register_window", &self.register_window)
            .field("password_hash_concurrency", &self.password_hash_concurrency)
            .field("trusted_proxy_hops", &self.trusted_proxy_hops)
            .field("upgrade_legacy_passwords", &self.upgrade_legacy_passwords)
            .field("redis", &self.redis)
            .field("redis_key_prefix", &self.redis_key_prefix)
            .finish()
    }
}

impl Config {
    /// Every environment variable [`Config::from_env`] reads: what `--print-config-keys` prints.
    pub fn keys() -> Vec<&'static str> {
        var::ALL.to_vec()
    }

    /// Reads the configuration; the error names the variable that is missing or wrong.
    pub fn from_env(env: &impl Env) -> Result<Config, ConfigError> {
        let jwt_secret = config::secret(env, var::JWT_SECRET)?;
        let default_addr = SocketAddr::from(([0, 0, 0, 0], 5000));
        let addr = config::parsed_or(env, var::AUTH_ADDR, default_addr)?;
        let database = database_options(env)?;
        let table = config::parsed_or(env, var::AUTH_TABLE, TableName::default())?;
        let login_limits = login_limits(env)?;
        let register_max_per_ip = config::parsed_or(env, var::REGISTER_MAX_PER_IP, 20)?;
        let register_window =
            Duration::from_secs(u64::from(positive(env, var::REGISTER_WINDOW_SECS, 3600)?));
        Ok(Config {
            addr,
            database,
            database_max_connections: positive(env, var::DATABASE_MAX_CONNECTIONS, 10)?,
            table,
            jwt_secret,
            login_limits,
            register_max_per_ip,
            register_window,
            password_hash_concurrency: positive(
                env,
                var::PASSWORD_HASH_CONCURRENCY,
                std::thread::available_parallelism().map_or(2, |n| n.get() as u32),
            )? as usize,
            trusted_proxy_hops: config::parsed_or(env, var::TRUSTED_PROXY_HOPS, 0)?,
            upgrade_legacy_passwords: config::flag(env, var::AUTH_UPGRADE_LEGACY_PASSWORDS, true)?,
            redis: config::optional(env, var::REDIS_URL)
                .map(|url| RedisUrl::parse(url.trim()))
                .transpose()?,
            redis_key_prefix: key_prefix(env)?,
        })
    }
}

/// The `LOGIN_*` variables. `LOGIN_MAX_FAILURES_PER_IP` (failures per address, before the limits
/// were keyed by pair) is still read, with a warning, when its successor is not set.
fn login_limits(env: &impl Env) -> Result<LoginLimits, ConfigError> {
    let defaults = LoginLimits::default();
    let failed_emails = match (
        config::parsed_optional(env, var::LOGIN_MAX_FAILED_EMAILS_PER_IP)?,
        config::parsed_optional::<u32>(env, var::LOGIN_MAX_FAILURES_PER_IP)?,
    ) {
        (Some(n), _) => n,
        (None, Some(n)) => {
            tracing::warn!(
                "LOGIN_MAX_FAILURES_PER_IP is deprecated and now counts distinct failing emails \
                 per address; rename it to LOGIN_MAX_FAILED_EMAILS_PER_IP (default {})",
                defaults.max_failed_emails_per_ip
            );
            n
        }
        (None, None) => defaults.max_failed_emails_per_ip,
    };
    let millis = |name: &'static str, default: Duration| -> Result<Duration, ConfigError> {
        let ms = config::parsed_or(env, name, default.as_millis() as u64)?;
        if ms > MAX_SLOWDOWN_LIMIT_MS {
            return Err(ConfigError::Invalid {
                name,
                reason: format!(
                    "must be at most {MAX_SLOWDOWN_LIMIT_MS} (requests time out after 30 s)"
                ),
            });
        }
        Ok(Duration::from_millis(ms))
    };
    Ok(LoginLimits {
        max_failures_per_pair: positive(
            env,
            var::LOGIN_MAX_FAILURES_PER_EMAIL_AND_IP,
            defaults.max_failures_per_pair,
        )?,
        max_failed_emails_per_ip: failed_emails,
        max_failures_per_email: config::parsed_or(
            env,
            var::LOGIN_MAX_FAILURES_PER_EMAIL,
            defaults.max_failures_per_email,
        )?,
        slowdown: millis(var::LOGIN_SLOWDOWN_MS, defaults.slowdown)?,
        max_slowdown: millis(var::LOGIN_MAX_SLOWDOWN_MS, defaults.max_slowdown)?,
        window: Duration::from_secs(u64::from(positive(
            env,
            var::LOGIN_FAILURE_WINDOW_SECS,
            defaults.window.as_secs() as u32,
        )?)),
    })
}

/// `DATABASE_URL` when set, else the original's `DATABASE_HOST`, `DATABASE_PORT` (5432),
/// `DATABASE_NAME`, `DATABASE_USER` and `DATABASE_PASSWORD`.
fn database_options(env: &impl Env) -> Result<PgConnectOptions, ConfigError> {
    let options = if let Some(url) = config::optional(env, var::DATABASE_URL) {
        PgConnectOptions::from_str(&url).map_err(|e| ConfigError::Invalid {
            name: var::DATABASE_URL,
            // The URL may hold a password: show the error, not the value.
            reason: e.to_string(),
        })?
    } else {
        let mut options = PgConnectOptions::new_without_pgpass()
            .host(&config::required(env, var::DATABASE_HOST)?)
            .port(config::parsed_or(env, var::DATABASE_PORT, 5432)?)
            .database(&config::required(env, var::DATABASE_NAME)?)
            .username(&config::required(env, var::DATABASE_USER)?);
        if let Some(password) = config::optional(env, var::DATABASE_PASSWORD) {
            options = options.password(&password);
        }
        options
    };
    Ok(options.application_name("auth"))
}

/// Where Redis is (`REDIS_URL`): `redis://[:password@]host[:port][/db]`. Shown without its
/// password.
#[derive(Clone)]
pub struct RedisUrl(redis::ConnectionInfo);

impl RedisUrl {
    fn parse(url: &str) -> Result<Self, ConfigError> {
        redis_log::parse_url(url)
            .map(Self)
            .map_err(|reason| ConfigError::Invalid {
                name: var::REDIS_URL,
                // The URL may hold a password: show the error, not the value.
                reason: format!("{reason} (expected redis://[:password@]host[:port][/db])"),
            })
    }

    /// The connection settings.
    pub fn connection_info(&self) -> &redis::ConnectionInfo {
        &self.0
    }
}

impl fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisUrl")
            .field("addr", &self.0.addr().to_string())
            .field("db", &self.0.redis_settings().db())
            .finish_non_exhaustive()
    }
}

/// `REDIS_KEY_PREFIX`: printable ASCII without spaces, at most 64 characters (it starts every
/// key).
fn key_prefix(env: &impl Env) -> Result<String, ConfigError> {
    let Some(prefix) = config::optional(env, var::REDIS_KEY_PREFIX) else {
        return Ok(DEFAULT_REDIS_KEY_PREFIX.to_owned());
    };
    if prefix.len() > 64 || !prefix.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ConfigError::Invalid {
            name: var::REDIS_KEY_PREFIX,
            reason: "must be at most 64 printable ASCII characters without spaces".to_owned(),
        });
    }
    Ok(prefix)
}

/// A number that must be at least 1.
fn positive(env: &impl Env, name: &'static str, default: u32) -> Result<u32, ConfigError> {
    match config::parsed_or(env, name, default)? {
        0 => Err(ConfigError::Invalid {
            name,
            reason: "must be at least 1".to_owned(),
        }),
        n => Ok(n),
    }
}

/// A table name that is safe to put into SQL text: ASCII letters, digits and `_`, not starting
/// with a digit, at most 63 bytes (Postgres' limit). Kept in lower case, which is what Postgres
/// makes of the unquoted name the original used, and always emitted quoted so that even a
/// reserved word works.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableName(String);

impl TableName {
    /// The bare name, for messages and index names.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name as a quoted SQL identifier.
    pub fn quoted(&self) -> String {
        format!("\"{}\"", self.0)
    }
}

impl Default for TableName {
    fn default() -> Self {
        Self(DEFAULT_TABLE.to_owned())
    }
}

impl fmt::Display for TableName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for TableName {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut chars = s.chars();
        let first_ok = chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
        if !first_ok || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err("must be a plain SQL identifier: letters, digits and _, \
                        not starting with a digit"
                .to_owned());
        }
        if s.len() > 63 {
            return Err("must be at most 63 characters".to_owned());
        }
        Ok(Self(s.to_ascii_lowercase()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use common::config::RecordingEnv;
    use std::collections::BTreeSet;

    /// A secret that passes the length check.
    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    const BASE: [(&str, &str); 2] = [
        ("JWT_SECRET", SECRET),
        ("DATABASE_URL", "postgres://u:pw@db:5433/authdb"),
    ];

    #[test]
    fn the_printed_keys_are_the_variables_read() {
        // DATABASE_URL, or else the original's DATABASE_* variables: both ways are read.
        let with_url = RecordingEnv::new(BASE);
        Config::from_env(&with_url).unwrap();
        let with_parts = RecordingEnv::new([
            ("JWT_SECRET", SECRET),
            ("DATABASE_HOST", "db"),
            ("DATABASE_NAME", "auth"),
            ("DATABASE_USER", "auth"),
        ]);
        Config::from_env(&with_parts).unwrap();
        let asked: BTreeSet<String> = with_url
            .asked()
            .union(&with_parts.asked())
            .cloned()
            .collect();
        let keys = Config::keys();
        let declared: BTreeSet<String> = keys.iter().map(|k| (*k).to_owned()).collect();
        assert_eq!(asked, declared);
        assert_eq!(declared.len(), keys.len(), "declared twice: {keys:?}");
    }

    #[test]
    fn defaults() {
        let config = Config::from_env(&BASE).unwrap();
        assert_eq!(config.addr, DEFAULT_ADDR.parse().unwrap());
        assert_eq!(config.table.as_str(), DEFAULT_TABLE);
        assert_eq!(config.database.get_host(), "db");
        assert_eq!(config.database.get_port(), 5433);
        assert_eq!(config.login_limits, LoginLimits::default());
        assert_eq!(config.register_max_per_ip, 20);
        assert_eq!(config.register_window, Duration::from_secs(3600));
        assert_eq!(config.trusted_proxy_hops, 0);
        assert!(config.upgrade_legacy_passwords);
    }

    #[test]
    fn legacy_password_upgrade_switch() {
        for (raw, want) in [
            ("false", false),
            ("FALSE", false),
            ("0", false),
            ("true", true),
        ] {
            let env = [
                ("JWT_SECRET", SECRET),
                ("DATABASE_URL", "postgres://db/x"),
                ("AUTH_UPGRADE_LEGACY_PASSWORDS", raw),
            ];
            assert_eq!(
                Config::from_env(&env).unwrap().upgrade_legacy_passwords,
                want,
                "{raw}"
            );
        }
        let env = [
            ("JWT_SECRET", SECRET),
            ("DATABASE_URL", "postgres://db/x"),
            ("AUTH_UPGRADE_LEGACY_PASSWORDS", "sometimes"),
        ];
        let err = Config::from_env(&env).unwrap_err().to_string();
        assert!(err.contains("AUTH_UPGRADE_LEGACY_PASSWORDS"), "{err}");
    }

    #[test]
    fn missing_jwt_secret_is_named() {
        let env = [("DATABASE_URL", "postgres://u@db/authdb")];
        assert_eq!(
            Config::from_env(&env).unwrap_err(),
            ConfigError::Missing("JWT_SECRET")
        );
    }

    #[test]
    fn original_database_variables() {
        let env = [
            ("JWT_SECRET", SECRET),
            ("DATABASE_HOST", "postgres"),
            ("DATABASE_NAME", "authdb"),
            ("DATABASE_USER", "mohamed"),
            ("DATABASE_PASSWORD", "pw"),
        ];
        let config = Config::from_env(&env).unwrap();
        assert_eq!(config.database.get_host(), "postgres");
        assert_eq!(config.database.get_port(), 5432);
        assert_eq!(config.database.get_database(), Some("authdb"));
        assert_eq!(config.database.get_username(), "mohamed");
    }

    #[test]
    fn missing_database_host_is_named() {
        let env = [("JWT_SECRET", SECRET)];
        assert_eq!(
            Config::from_env(&env).unwrap_err(),
            ConfigError::Missing("DATABASE_HOST")
        );
    }

    #[test]
    fn debug_hides_secrets() {
        let text = format!("{:?}", Config::from_env(&BASE).unwrap());
        assert!(!text.contains(SECRET) && !text.contains("pw"), "{text}");
    }

    #[test]
    fn table_names() {
        assert_eq!(
            "Auth_User".parse::<TableName>().unwrap().as_str(),
            "auth_user"
        );
        assert_eq!(
            "user".parse::<TableName>().unwrap().quoted(),
            "\"user\"".to_owned()
        );
        for bad in [
            "",
            "1users",
            "auth user",
            "users;drop",
            "a\"b",
            "schema.t",
            "é",
        ] {
            assert!(bad.parse::<TableName>().is_err(), "{bad}");
        }
        assert!("a".repeat(64).parse::<TableName>().is_err());
        let env = [
            ("JWT_SECRET", SECRET),
            ("DATABASE_URL", "postgres://db/x"),
            ("AUTH_TABLE", "x;y"),
        ];
        let err = Config::from_env(&env).unwrap_err().to_string();
        assert!(err.contains("AUTH_TABLE"), "{err}");
    }

    #[test]
    fn short_or_placeholder_secrets_stop_the_service() {
        for bad in ["s3cret", "change-me-to-a-long-random-string"] {
            let env = [("JWT_SECRET", bad), ("DATABASE_URL", "postgres://db/x")];
            let err = Config::from_env(&env).unwrap_err().to_string();
            assert!(
                err.contains("JWT_SECRET") && err.contains("openssl rand -hex 32"),
                "{err}"
            );
        }
    }

    #[test]
    fn rate_limit_knobs() {
        let env = [
            ("JWT_SECRET", SECRET),
            ("DATABASE_URL", "postgres://db/x"),
            ("LOGIN_MAX_FAILURES_PER_EMAIL_AND_IP", "4"),
            ("LOGIN_MAX_FAILED_EMAILS_PER_IP", "0"),
            ("LOGIN_MAX_FAILURES_PER_EMAIL", "3"),
            ("LOGIN_SLOWDOWN_MS", "50"),
            ("LOGIN_MAX_SLOWDOWN_MS", "200"),
            ("LOGIN_FAILURE_WINDOW_SECS", "60"),
            ("REGISTER_MAX_PER_IP", "0"),
            ("REGISTER_WINDOW_SECS", "10"),
            ("TRUSTED_PROXY_HOPS", "2"),
        ];
        let config = Config::from_env(&env).unwrap();
        assert_eq!(
            config.login_limits,
            LoginLimits {
                max_failures_per_pair: 4,
                max_failed_emails_per_ip: 0,
                max_failures_per_email: 3,
                slowdown: Duration::from_millis(50),
                max_slowdown: Duration::from_millis(200),
                window: Duration::from_secs(60),
            }
        );
        assert_eq!(config.register_max_per_ip, 0);
        assert_eq!(config.register_window, Duration::from_secs(10));
        assert_eq!(config.trusted_proxy_hops, 2);
        for (name, bad) in [
            ("LOGIN_MAX_FAILURES_PER_EMAIL_AND_IP", "0"),
            ("LOGIN_MAX_SLOWDOWN_MS", "60000"),
            ("REGISTER_WINDOW_SECS", "0"),
        ] {
            let env = [
                ("JWT_SECRET", SECRET),
                ("DATABASE_URL", "postgres://db/x"),
                (name, bad),
            ];
            let err = Config::from_env(&env).unwrap_err().to_string();
            assert!(err.contains(name), "{err}");
        }
    }

    /// BASE with `name` set to `value`.
    fn base_with(name: &str, value: &str) -> std::collections::HashMap<String, String> {
        BASE.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .chain([(name.to_owned(), value.to_owned())])
            .collect()
    }

    #[test]
    fn redis_is_optional_and_a_bad_url_is_named_without_its_password() {
        let config = Config::from_env(&BASE).unwrap();
        assert!(config.redis.is_none());
        assert_eq!(config.redis_key_prefix, DEFAULT_REDIS_KEY_PREFIX);
        let config = Config::from_env(&base_with("REDIS_URL", "  ")).unwrap();
        assert!(config.redis.is_none());

        let url = "redis://:hunter2-pw@redis:6380/2";
        let config = Config::from_env(&base_with("REDIS_URL", url)).unwrap();
        let info = config.redis.as_ref().unwrap().connection_info();
        assert_eq!(info.addr().to_string(), "redis:6380");
        assert_eq!(info.redis_settings().db(), 2);
        assert_eq!(info.redis_settings().password(), Some("hunter2-pw"));
        let text = format!("{config:?}");
        assert!(
            text.contains("redis:6380") && !text.contains("hunter2"),
            "{text}"
        );

        for bad in [
            "http://:hunter2-pw@redis:6379",
            "redis://:hunter2-pw@",
            // No TLS support is built in: refused at start rather than at the first login.
            "rediss://:hunter2-pw@redis:6379",
            "not a url hunter2-pw",
        ] {
            let err = Config::from_env(&base_with("REDIS_URL", bad))
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("REDIS_URL") && !err.contains("hunter2"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn redis_key_prefix() {
        let prefix = |value: &str| Config::from_env(&base_with("REDIS_KEY_PREFIX", value));
        assert_eq!(
            prefix("staging:auth:").unwrap().redis_key_prefix,
            "staging:auth:"
        );
        assert_eq!(
            prefix("").unwrap().redis_key_prefix,
            DEFAULT_REDIS_KEY_PREFIX
        );
        for bad in ["with space:", "tab\t", "é:", &"x".repeat(65)] {
            let err = prefix(bad).unwrap_err().to_string();
            assert!(err.contains("REDIS_KEY_PREFIX"), "{bad}: {err}");
        }
    }

    #[test]
    fn the_deprecated_per_ip_setting_still_works_until_renamed() {
        let env = [
            ("JWT_SECRET", SECRET),
            ("DATABASE_URL", "postgres://db/x"),
            ("LOGIN_MAX_FAILURES_PER_IP", "7"),
        ];
        let config = Config::from_env(&env).unwrap();
        assert_eq!(config.login_limits.max_failed_emails_per_ip, 7);
        let env = [
            ("JWT_SECRET", SECRET),
            ("DATABASE_URL", "postgres://db/x"),
            ("LOGIN_MAX_FAILURES_PER_IP", "7"),
            ("LOGIN_MAX_FAILED_EMAILS_PER_IP", "5"),
        ];
        let config = Config::from_env(&env).unwrap();
        assert_eq!(config.login_limits.max_failed_emails_per_ip, 5);
    }
}
