//! Every environment variable the auth service reads, and nothing else reads the environment.

use std::{fmt, net::SocketAddr, str::FromStr, time::Duration};

use common::config::{self, ConfigError, Env};
use sqlx::postgres::PgConnectOptions;

/// Listen address when `AUTH_ADDR` is unset (the original's port).
pub const DEFAULT_ADDR: &str = "0.0.0.0:5000";
/// Users table when `AUTH_TABLE` is unset (the original's).
pub const DEFAULT_TABLE: &str = "auth_user";

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
    /// When failed logins are limited.
    pub rate_limit: RateLimitConfig,
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
}

/// Limits on failed logins; both count failures within a sliding window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitConfig {
    /// Failed logins per email before further attempts answer 429 (`LOGIN_MAX_FAILURES_PER_EMAIL`).
    pub max_failures_per_email: u32,
    /// Failed logins per client address before 429 (`LOGIN_MAX_FAILURES_PER_IP`); 0 disables.
    pub max_failures_per_ip: u32,
    /// How long a failure counts (`LOGIN_FAILURE_WINDOW_SECS`).
    pub window: Duration,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            max_failures_per_email: 10,
            max_failures_per_ip: 100,
            window: Duration::from_secs(15 * 60),
        }
    }
}

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
            .field("rate_limit", &self.rate_limit)
            .field("password_hash_concurrency", &self.password_hash_concurrency)
            .field("trusted_proxy_hops", &self.trusted_proxy_hops)
            .field("upgrade_legacy_passwords", &self.upgrade_legacy_passwords)
            .finish()
    }
}

impl Config {
    /// Reads the configuration; the error names the variable that is missing or wrong.
    pub fn from_env(env: &impl Env) -> Result<Config, ConfigError> {
        let jwt_secret = config::required(env, "JWT_SECRET")?;
        let default_addr = SocketAddr::from(([0, 0, 0, 0], 5000));
        let addr = config::parsed_or(env, "AUTH_ADDR", default_addr)?;
        let database = database_options(env)?;
        let table = config::parsed_or(env, "AUTH_TABLE", TableName::default())?;
        let defaults = RateLimitConfig::default();
        let rate_limit = RateLimitConfig {
            max_failures_per_email: positive(
                env,
                "LOGIN_MAX_FAILURES_PER_EMAIL",
                defaults.max_failures_per_email,
            )?,
            max_failures_per_ip: config::parsed_or(
                env,
                "LOGIN_MAX_FAILURES_PER_IP",
                defaults.max_failures_per_ip,
            )?,
            window: Duration::from_secs(u64::from(positive(
                env,
                "LOGIN_FAILURE_WINDOW_SECS",
                defaults.window.as_secs() as u32,
            )?)),
        };
        Ok(Config {
            addr,
            database,
            database_max_connections: positive(env, "DATABASE_MAX_CONNECTIONS", 10)?,
            table,
            jwt_secret,
            rate_limit,
            password_hash_concurrency: positive(
                env,
                "PASSWORD_HASH_CONCURRENCY",
                std::thread::available_parallelism().map_or(2, |n| n.get() as u32),
            )? as usize,
            trusted_proxy_hops: config::parsed_or(env, "TRUSTED_PROXY_HOPS", 0)?,
            upgrade_legacy_passwords: flag(env, "AUTH_UPGRADE_LEGACY_PASSWORDS", true)?,
        })
    }
}

/// `DATABASE_URL` when set, else the original's `DATABASE_HOST`, `DATABASE_PORT` (5432),
/// `DATABASE_NAME`, `DATABASE_USER` and `DATABASE_PASSWORD`.
fn database_options(env: &impl Env) -> Result<PgConnectOptions, ConfigError> {
    let options = if let Some(url) = config::optional(env, "DATABASE_URL") {
        PgConnectOptions::from_str(&url).map_err(|e| ConfigError::Invalid {
            name: "DATABASE_URL",
            // The URL may hold a password: show the error, not the value.
            reason: e.to_string(),
        })?
    } else {
        let mut options = PgConnectOptions::new_without_pgpass()
            .host(&config::required(env, "DATABASE_HOST")?)
            .port(config::parsed_or(env, "DATABASE_PORT", 5432)?)
            .database(&config::required(env, "DATABASE_NAME")?)
            .username(&config::required(env, "DATABASE_USER")?);
        if let Some(password) = config::optional(env, "DATABASE_PASSWORD") {
            options = options.password(&password);
        }
        options
    };
    Ok(options.application_name("auth"))
}

/// A yes/no setting: `true`/`false` (also `1`/`0`, `yes`/`no`, `on`/`off`), any case.
fn flag(env: &impl Env, name: &'static str, default: bool) -> Result<bool, ConfigError> {
    let Some(raw) = config::optional(env, name) else {
        return Ok(default);
    };
    match raw.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(ConfigError::Invalid {
            name,
            reason: format!("{raw:?}: expected true or false"),
        }),
    }
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

    const BASE: [(&str, &str); 2] = [
        ("JWT_SECRET", "s3cret"),
        ("DATABASE_URL", "postgres://u:pw@db:5433/authdb"),
    ];

    #[test]
    fn defaults() {
        let config = Config::from_env(&BASE).unwrap();
        assert_eq!(config.addr, DEFAULT_ADDR.parse().unwrap());
        assert_eq!(config.table.as_str(), DEFAULT_TABLE);
        assert_eq!(config.database.get_host(), "db");
        assert_eq!(config.database.get_port(), 5433);
        assert_eq!(config.rate_limit, RateLimitConfig::default());
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
                ("JWT_SECRET", "s"),
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
            ("JWT_SECRET", "s"),
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
            ("JWT_SECRET", "s"),
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
        let env = [("JWT_SECRET", "s")];
        assert_eq!(
            Config::from_env(&env).unwrap_err(),
            ConfigError::Missing("DATABASE_HOST")
        );
    }

    #[test]
    fn debug_hides_secrets() {
        let text = format!("{:?}", Config::from_env(&BASE).unwrap());
        assert!(!text.contains("s3cret") && !text.contains("pw"), "{text}");
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
            ("JWT_SECRET", "s"),
            ("DATABASE_URL", "postgres://db/x"),
            ("AUTH_TABLE", "x;y"),
        ];
        let err = Config::from_env(&env).unwrap_err().to_string();
        assert!(err.contains("AUTH_TABLE"), "{err}");
    }

    #[test]
    fn rate_limit_knobs() {
        let env = [
            ("JWT_SECRET", "s"),
            ("DATABASE_URL", "postgres://db/x"),
            ("LOGIN_MAX_FAILURES_PER_EMAIL", "3"),
            ("LOGIN_MAX_FAILURES_PER_IP", "0"),
            ("LOGIN_FAILURE_WINDOW_SECS", "60"),
            ("TRUSTED_PROXY_HOPS", "2"),
        ];
        let config = Config::from_env(&env).unwrap();
        assert_eq!(config.rate_limit.max_failures_per_email, 3);
        assert_eq!(config.rate_limit.max_failures_per_ip, 0);
        assert_eq!(config.rate_limit.window, Duration::from_secs(60));
        assert_eq!(config.trusted_proxy_hops, 2);
        let env = [
            ("JWT_SECRET", "s"),
            ("DATABASE_URL", "postgres://db/x"),
            ("LOGIN_MAX_FAILURES_PER_EMAIL", "0"),
        ];
        assert!(Config::from_env(&env).is_err());
    }
}
