//! How the gateway checks a Bearer token: locally with `JWT_SECRET` (HS256), or, without it, by
//! asking auth's `POST /validate` as the original gateway does, with a short-lived cache.
//!
//! Both ways end in [`accept`], so the same claims are enforced whichever runs.

use std::time::{Duration, Instant};

use axum::http::{header::AUTHORIZATION, HeaderValue, StatusCode};
use common::jwt::{now_unix, Claims, JwtKeys, TokenError};
use moka::sync::Cache;

/// Longest a claim from auth's `/validate` is reused without asking again.
pub const VALIDATION_CACHE_TTL: Duration = Duration::from_secs(30);
/// Most tokens remembered at once.
const VALIDATION_CACHE_CAPACITY: u64 = 10_000;
/// Seconds of clock difference tolerated on `exp`, as the local check allows.
const EXP_LEEWAY_SECS: i64 = 5;
/// Longest wait for auth's answer to `/validate`.
const VALIDATE_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a token was not accepted; the route answers 401 for the first three, 503 for the last.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// Past its `exp`.
    #[error("token has expired, log in again")]
    Expired,
    /// Bad signature, not a JWT, refused by auth.
    #[error("invalid token")]
    Invalid,
    /// Valid, but its `admin` claim is false (the original gateway refuses these too).
    #[error("not authorized")]
    NotAdmin,
    /// Auth could not be asked, or gave an answer that cannot be read.
    #[error("{0}")]
    AuthUnavailable(String),
}

/// How tokens are checked; chosen once at start from whether `JWT_SECRET` is set.
pub enum TokenChecker {
    /// HS256 with the shared secret, no network (boxed: the keys are large, the enum is not).
    Local(Box<JwtKeys>),
    /// Auth's `POST /validate`, answers cached per token.
    Remote(RemoteValidator),
}

impl TokenChecker {
    /// Local with `secret`, else remote through `auth_base_url`.
    pub fn new(secret: Option<&str>, auth_base_url: &str, http: reqwest::Client) -> Self {
        match secret {
            Some(secret) => Self::Local(Box::new(JwtKeys::new(secret.as_bytes()))),
            None => Self::Remote(RemoteValidator::new(auth_base_url, http)),
        }
    }

    /// A sentence for the start-up log saying which mode runs.
    pub fn describe(&self) -> String {
        match self {
            Self::Local(_) => "tokens are verified locally with JWT_SECRET (HS256)".to_owned(),
            Self::Remote(r) => format!(
                "JWT_SECRET is not set: tokens are validated by the auth service at {} \
                 (answers cached up to {}s)",
                r.url,
                VALIDATION_CACHE_TTL.as_secs()
            ),
        }
    }

    /// The claims of `token`, taken from the `Authorization` header value `header`.
    pub async fn check(&self, token: &str, header: &HeaderValue) -> Result<Claims, Refusal> {
        match self {
            Self::Local(keys) => match keys.verify(token) {
                Ok(claims) => accept(claims, now_unix()),
                Err(TokenError::Expired) => Err(Refusal::Expired),
                Err(TokenError::Invalid(e)) => {
                    tracing::debug!(error = %e, "token refused");
                    Err(Refusal::Invalid)
                }
            },
            Self::Remote(remote) => remote.check(token, header).await,
        }
    }
}

/// The rules every accepted token meets, whoever checked its signature: not expired (with a
/// few seconds of leeway) and `admin` true, as the original gateway requires.
pub fn accept(claims: Claims, now: i64) -> Result<Claims, Refusal> {
    if claims.exp + EXP_LEEWAY_SECS < now {
        return Err(Refusal::Expired);
    }
    if !claims.admin {
        return Err(Refusal::NotAdmin);
    }
    Ok(claims)
}

/// How long claims may be reused: [`VALIDATION_CACHE_TTL`], never past the token's `exp`.
/// `None` when the token is (about to be) expired and must not be cached.
pub fn cache_lifetime(claims: &Claims, now: i64) -> Option<Duration> {
    let left = claims.exp - now;
    (left > 0).then(|| VALIDATION_CACHE_TTL.min(Duration::from_secs(left as u64)))
}

/// Auth's `POST /validate` behind a bounded cache keyed by the token.
pub struct RemoteValidator {
    url: String,
    http: reqwest::Client,
    cache: Cache<String, Cached>,
}

#[derive(Clone)]
struct Cached {
    claims: Claims,
    lifetime: Duration,
}

/// Each entry expires after its own lifetime (the TTL or the token's `exp`, whichever is first).
struct PerEntryExpiry;

impl moka::Expiry<String, Cached> for PerEntryExpiry {
    fn expire_after_create(&self, _: &String, value: &Cached, _: Instant) -> Option<Duration> {
        Some(value.lifetime)
    }
}

impl RemoteValidator {
    fn new(auth_base_url: &str, http: reqwest::Client) -> Self {
        Self {
            url: format!("{auth_base_url}/validate"),
            http,
            cache: Cache::builder()
                .max_capacity(VALIDATION_CACHE_CAPACITY)
                .expire_after(PerEntryExpiry)
                .build(),
        }
    }

    async fn check(&self, token: &str, header: &HeaderValue) -> Result<Claims, Refusal> {
        let now = now_unix();
        if let Some(hit) = self.cache.get(token) {
            return accept(hit.claims, now);
        }
        let claims = accept(self.ask(header).await?, now)?;
        if let Some(lifetime) = cache_lifetime(&claims, now) {
            self.cache.insert(
                token.to_owned(),
                Cached {
                    claims: claims.clone(),
                    lifetime,
                },
            );
        }
        Ok(claims)
    }

    /// The original gateway's call: the caller's `Authorization` header as it came, claims
    /// from the JSON answer on 200.
    async fn ask(&self, header: &HeaderValue) -> Result<Claims, Refusal> {
        let unavailable = |e: &dyn std::fmt::Display| {
            tracing::warn!(error = %e, url = %self.url, "auth service cannot validate tokens");
            Refusal::AuthUnavailable(
                "the authentication service is unavailable, try again shortly".to_owned(),
            )
        };
        let answer = self
            .http
            .post(&self.url)
            .header(AUTHORIZATION, header.clone())
            .timeout(VALIDATE_TIMEOUT)
            .send()
            .await
            .map_err(|e| unavailable(&e))?;
        let status = answer.status().as_u16();
        if status == StatusCode::OK.as_u16() {
            let body = answer.bytes().await.map_err(|e| unavailable(&e))?;
            return serde_json::from_slice::<Claims>(&body)
                .map_err(|e| unavailable(&format!("unreadable claims from /validate: {e}")));
        }
        if (400..500).contains(&status) {
            // Our auth says why in JSON; the original answers the bare word "Unauthorized".
            let body = answer.text().await.unwrap_or_default();
            return Err(if body.contains("expired") {
                Refusal::Expired
            } else {
                Refusal::Invalid
            });
        }
        Err(unavailable(&format!("/validate answered {status}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: i64, admin: bool) -> Claims {
        Claims {
            username: "a@b.c".into(),
            exp,
            iat: exp - 86_400,
            admin,
        }
    }

    #[test]
    fn the_same_rules_for_both_modes() {
        let now = 1_000_000;
        assert!(accept(claims(now + 60, true), now).is_ok());
        assert!(
            accept(claims(now - 2, true), now).is_ok(),
            "within the leeway"
        );
        assert!(matches!(
            accept(claims(now - 60, true), now),
            Err(Refusal::Expired)
        ));
        assert!(matches!(
            accept(claims(now + 60, false), now),
            Err(Refusal::NotAdmin)
        ));
    }

    #[test]
    fn cache_never_outlives_the_token_nor_the_ttl() {
        let now = 1_000_000;
        assert_eq!(
            cache_lifetime(&claims(now + 86_400, true), now),
            Some(VALIDATION_CACHE_TTL)
        );
        assert_eq!(
            cache_lifetime(&claims(now + 7, true), now),
            Some(Duration::from_secs(7))
        );
        assert_eq!(cache_lifetime(&claims(now, true), now), None);
        assert_eq!(cache_lifetime(&claims(now - 3, true), now), None);
    }
}
