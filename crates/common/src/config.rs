//! Reading typed configuration from environment variables, with errors that name the variable.

use std::{fmt::Display, str::FromStr};

/// A configuration variable that is missing or cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    /// The variable is required and not set (or empty).
    #[error("environment variable {0} is required but not set")]
    Missing(&'static str),
    /// The variable is set but its value is not usable.
    #[error("environment variable {name} is invalid: {reason}")]
    Invalid { name: &'static str, reason: String },
}

/// Source of variables: the process environment in services, a map in tests.
pub trait Env {
    /// The value of `name`, `None` when unset.
    fn get(&self, name: &str) -> Option<String>;
}

/// Declares the environment variables a config reader reads, once: a `&str` constant per
/// variable, named and valued as the variable, and `ALL`, every one of them in order. The reader
/// names variables through the constants; the binaries' `--print-config-keys` prints `ALL` (with
/// the lists of the shared readers it calls), so both come from this one declaration.
///
/// ```
/// mod var {
///     common::env_vars![GATEWAY_ADDR, MAX_UPLOAD_BYTES];
/// }
/// assert_eq!(var::GATEWAY_ADDR, "GATEWAY_ADDR");
/// assert_eq!(var::ALL, ["GATEWAY_ADDR", "MAX_UPLOAD_BYTES"]);
/// ```
#[macro_export]
macro_rules! env_vars {
    ($($name:ident),+ $(,)?) => {
        $(
            #[doc = concat!("The environment variable `", stringify!($name), "`.")]
            pub const $name: &str = stringify!($name);
        )+
        /// Every variable declared here, in order.
        pub const ALL: &[&str] = &[$(stringify!($name)),+];
    };
}

/// An [`Env`] that notes every name it is asked for: a service's tests read their config through
/// it and compare the names with the ones the service declares.
#[derive(Debug, Default)]
pub struct RecordingEnv<E> {
    inner: E,
    asked: std::sync::Mutex<std::collections::BTreeSet<String>>,
}

impl<E: Env> RecordingEnv<E> {
    /// Answers from `inner`, noting each name.
    pub fn new(inner: E) -> Self {
        Self {
            inner,
            asked: Default::default(),
        }
    }

    /// The names asked for so far, sorted.
    pub fn asked(&self) -> std::collections::BTreeSet<String> {
        // A poisoned lock still holds every name noted before the panic.
        self.asked
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

impl<E: Env> Env for RecordingEnv<E> {
    fn get(&self, name: &str) -> Option<String> {
        self.asked
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(name.to_owned());
        self.inner.get(name)
    }
}

/// Writes `keys` to stdout one per line, for a binary's `--print-config-keys` (which the stack
/// script uses to pass the variables a service reads through from its environment).
pub fn print_keys(keys: &[&str]) -> std::process::ExitCode {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let written = keys.iter().try_for_each(|key| writeln!(out, "{key}"));
    match written.and_then(|()| out.flush()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(_) => std::process::ExitCode::FAILURE,
    }
}

/// The real process environment.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn get(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

impl<const N: usize> Env for [(&str, &str); N] {
    fn get(&self, name: &str) -> Option<String> {
        self.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| (*v).to_owned())
    }
}

impl Env for std::collections::HashMap<String, String> {
    fn get(&self, name: &str) -> Option<String> {
        std::collections::HashMap::get(self, name).cloned()
    }
}

/// The value of `name`, treating an empty value as unset.
pub fn optional(env: &impl Env, name: &'static str) -> Option<String> {
    env.get(name).filter(|v| !v.trim().is_empty())
}

/// The value of a variable that must be set.
pub fn required(env: &impl Env, name: &'static str) -> Result<String, ConfigError> {
    optional(env, name).ok_or(ConfigError::Missing(name))
}

/// The value of `name`, or `default` when unset.
pub fn or_default(env: &impl Env, name: &'static str, default: &str) -> String {
    optional(env, name).unwrap_or_else(|| default.to_owned())
}

/// `name` parsed as `T`, or `default` when unset; a value that does not parse is an error.
pub fn parsed_or<T>(env: &impl Env, name: &'static str, default: T) -> Result<T, ConfigError>
where
    T: FromStr,
    T::Err: Display,
{
    match optional(env, name) {
        None => Ok(default),
        Some(raw) => parse(name, &raw),
    }
}

/// `name` parsed as `T` when set.
pub fn parsed_optional<T>(env: &impl Env, name: &'static str) -> Result<Option<T>, ConfigError>
where
    T: FromStr,
    T::Err: Display,
{
    optional(env, name).map(|raw| parse(name, &raw)).transpose()
}

/// A yes/no setting: `true`/`false` (also `1`/`0`, `yes`/`no`, `on`/`off`), any case.
pub fn flag(env: &impl Env, name: &'static str, default: bool) -> Result<bool, ConfigError> {
    let Some(raw) = optional(env, name) else {
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

/// Fewest bytes a signing secret may have (HS256 keys should be at least as long as the hash).
pub const MIN_SECRET_BYTES: usize = 32;

/// Pieces of the placeholder values shipped in the repository's manifests and compose file, in
/// any letter case; a value containing one was copied, not generated.
const PLACEHOLDER_MARKERS: [&str; 3] = ["change-me", "changeme", "replace-me"];

/// The placeholder `JWT_SECRET` the compose file and the k8s Secrets used to ship.
const OLD_DEFAULT_SECRET: &str = "change-me-to-a-long-random-string";

/// A signing secret that must be set, at least [`MIN_SECRET_BYTES`] long and not a placeholder.
pub fn secret(env: &impl Env, name: &'static str) -> Result<String, ConfigError> {
    let value = required(env, name)?;
    check_secret(name, &value)?;
    Ok(value)
}

/// Like [`secret`], for a secret that may be left unset.
pub fn optional_secret(env: &impl Env, name: &'static str) -> Result<Option<String>, ConfigError> {
    let value = optional(env, name);
    if let Some(value) = &value {
        check_secret(name, value)?;
    }
    Ok(value)
}

/// Refuses a short or placeholder secret; the message never contains the value.
fn check_secret(name: &'static str, value: &str) -> Result<(), ConfigError> {
    const HOW: &str = "generate one with: openssl rand -hex 32";
    let lower = value.to_ascii_lowercase();
    if lower == OLD_DEFAULT_SECRET || PLACEHOLDER_MARKERS.iter().any(|m| lower.contains(m)) {
        return Err(ConfigError::Invalid {
            name,
            reason: format!("it is a placeholder copied from the repository, not a secret; {HOW}"),
        });
    }
    if value.len() < MIN_SECRET_BYTES {
        return Err(ConfigError::Invalid {
            name,
            reason: format!(
                "it is {} bytes long and must be at least {MIN_SECRET_BYTES}; {HOW}",
                value.len()
            ),
        });
    }
    Ok(())
}

fn parse<T>(name: &'static str, raw: &str) -> Result<T, ConfigError>
where
    T: FromStr,
    T::Err: Display,
{
    raw.trim()
        .parse()
        .map_err(|e: T::Err| ConfigError::Invalid {
            name,
            reason: format!("{raw:?}: {e}"),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

    #[test]
    fn missing_variable_is_named() {
        let env = [("OTHER", "x")];
        let err = required(&env, "JWT_SECRET").unwrap_err();
        assert_eq!(
            err.to_string(),
            "environment variable JWT_SECRET is required but not set"
        );
    }

    #[test]
    fn empty_counts_as_unset() {
        let env = [("JWT_SECRET", "  ")];
        assert_eq!(
            required(&env, "JWT_SECRET"),
            Err(ConfigError::Missing("JWT_SECRET"))
        );
        assert_eq!(or_default(&env, "JWT_SECRET", "d"), "d");
    }

    #[test]
    fn parse_errors_name_variable_and_value() {
        let env = [("AUTH_ADDR", "nope")];
        let err = parsed_or::<SocketAddr>(&env, "AUTH_ADDR", "0.0.0.0:5000".parse().unwrap())
            .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("AUTH_ADDR") && text.contains("nope"),
            "{text}"
        );
    }

    const GOOD_SECRET: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn secrets_of_32_bytes_or_more_are_accepted() {
        let env = [("JWT_SECRET", GOOD_SECRET)];
        assert_eq!(secret(&env, "JWT_SECRET").unwrap(), GOOD_SECRET);
        assert_eq!(
            optional_secret(&env, "JWT_SECRET").unwrap().as_deref(),
            Some(GOOD_SECRET)
        );
        assert_eq!(optional_secret(&[("X", "y")], "JWT_SECRET").unwrap(), None);
        assert_eq!(
            secret(&[("X", "y")], "JWT_SECRET"),
            Err(ConfigError::Missing("JWT_SECRET"))
        );
    }

    #[test]
    fn short_secrets_are_refused_with_the_way_out() {
        let short = &GOOD_SECRET[..31];
        for result in [
            secret(&[("JWT_SECRET", short)], "JWT_SECRET").map(drop),
            optional_secret(&[("JWT_SECRET", short)], "JWT_SECRET").map(drop),
        ] {
            let text = result.unwrap_err().to_string();
            assert!(
                text.contains("JWT_SECRET")
                    && text.contains("31 bytes")
                    && text.contains("generate one with: openssl rand -hex 32")
                    && !text.contains(short),
                "{text}"
            );
        }
    }

    #[test]
    fn placeholders_are_refused_whatever_their_length() {
        for placeholder in [
            "change-me-to-a-long-random-string",
            "REPLACE-ME-generate-with-openssl-rand-hex-32",
            "please-ChangeMe-0123456789abcdef0123456789",
            "0123456789abcdef0123456789abcdef-Change-Me",
            "replace-me",
        ] {
            let env = [("JWT_SECRET", placeholder)];
            let text = secret(&env, "JWT_SECRET").unwrap_err().to_string();
            assert!(
                text.contains("JWT_SECRET")
                    && text.contains("placeholder")
                    && text.contains("generate one with: openssl rand -hex 32"),
                "{placeholder}: {text}"
            );
            assert!(
                optional_secret(&env, "JWT_SECRET").is_err(),
                "{placeholder}"
            );
        }
    }

    mod var {
        crate::env_vars![FIRST_ONE, SECOND];
    }

    #[test]
    fn declared_variables_are_constants_and_a_list() {
        assert_eq!(var::FIRST_ONE, "FIRST_ONE");
        assert_eq!(var::ALL, ["FIRST_ONE", "SECOND"]);
    }

    #[test]
    fn the_recording_env_notes_what_was_asked_set_or_not() {
        let env = RecordingEnv::new([("SECOND", "2")]);
        assert_eq!(or_default(&env, var::FIRST_ONE, "d"), "d");
        assert_eq!(parsed_or(&env, var::SECOND, 0u8), Ok(2));
        assert_eq!(
            env.asked().into_iter().collect::<Vec<_>>(),
            ["FIRST_ONE", "SECOND"]
        );
    }

    #[test]
    fn defaults_and_values() {
        let env = [("N", "7")];
        assert_eq!(parsed_or(&env, "N", 1u32).unwrap(), 7);
        assert_eq!(parsed_or(&env, "M", 1u32).unwrap(), 1);
        assert_eq!(parsed_optional::<u32>(&env, "M").unwrap(), None);
    }
}
