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

    #[test]
    fn defaults_and_values() {
        let env = [("N", "7")];
        assert_eq!(parsed_or(&env, "N", 1u32).unwrap(), 7);
        assert_eq!(parsed_or(&env, "M", 1u32).unwrap(), 1);
        assert_eq!(parsed_optional::<u32>(&env, "M").unwrap(), None);
    }
}
