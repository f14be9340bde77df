//! The auth service: registers users, checks passwords (argon2id, upgrading the original's
//! plaintext rows) and issues and validates the HS256 JWTs the gateway accepts.
//!
//! `main.rs` only reads [`Config`] and runs an [`Application`]; tests do the same on port 0.

pub mod config;
pub mod credentials;
pub mod error;
pub mod openapi;
pub mod password;
pub mod rate_limit;
pub mod routes;
pub mod startup;
pub mod state;
pub mod store;

pub use config::Config;
pub use startup::Application;
