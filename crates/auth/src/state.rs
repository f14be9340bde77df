//! What every handler shares.

use std::{
    net::{IpAddr, SocketAddr},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
};

use axum::http::HeaderMap;
use common::jwt::JwtKeys;

use crate::{
    error::AuthError,
    password::Hasher,
    rate_limit::{LoginLimiter, RedisLink, RegisterLimiter},
    store::UserStore,
};

/// The shared state of the auth service; cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The users table.
    pub store: UserStore,
    /// Password hashing and verification, bounded in concurrency.
    pub hasher: Hasher,
    /// HS256 keys from `JWT_SECRET`.
    pub keys: JwtKeys,
    /// Failed logins per (email, address), per address and per email.
    pub login_limiter: Arc<LoginLimiter>,
    /// Registrations per client address.
    pub register_limiter: Arc<RegisterLimiter>,
    /// The Redis the limits are shared through (`REDIS_URL`), for `/readyz`.
    pub redis: Option<Arc<RedisLink>>,
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

    /// The client's address: the connection's `peer`, or what the trusted proxies in front
    /// of auth report in `X-Forwarded-For`.
    pub fn client_ip(&self, headers: &HeaderMap, peer: SocketAddr) -> IpAddr {
        common::forwarded::client_ip_by_hops(headers, peer, self.trusted_proxy_hops)
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
