//! What every handler shares.

use std::sync::{
    atomic::{AtomicBool, Ordering},
    Arc,
};

use common::jwt::JwtKeys;

use crate::{error::AuthError, password::Hasher, rate_limit::FailureLimiter, store::UserStore};

/// The shared state of the auth service; cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The users table.
    pub store: UserStore,
    /// Password hashing and verification, bounded in concurrency.
    pub hasher: Hasher,
    /// HS256 keys from `JWT_SECRET`.
    pub keys: JwtKeys,
    /// Failed logins per (lower-cased) email.
    pub email_limiter: Arc<FailureLimiter>,
    /// Failed logins per client address.
    pub ip_limiter: Arc<FailureLimiter>,
    /// How many proxies' `X-Forwarded-For` entries to trust.
    pub trusted_proxy_hops: usize,
    /// Whether plaintext rows are rehashed at login (`AUTH_UPGRADE_LEGACY_PASSWORDS`).
    pub upgrade_legacy_passwords: bool,
    /// Set once the users table is known to exist.
    pub schema_ready: Arc<AtomicBool>,
}

impl AppState {
    /// Whether the schema set-up has completed.
    pub fn is_schema_ready(&self) -> bool {
        self.schema_ready.load(Ordering::Acquire)
    }

    /// `Err(NotReady)` until the users table is set up, so that requests arriving while
    /// Postgres was away get a 503 rather than a query on a missing table.
    pub fn require_schema(&self) -> Result<(), AuthError> {
        if self.is_schema_ready() {
            Ok(())
        } else {
            Err(AuthError::NotReady)
        }
    }
}
