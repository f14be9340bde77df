//! The one error type of the auth service and the responses it becomes.

use std::time::Duration;

use axum::{
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use serde::Serialize;

/// Everything a handler can answer besides success.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// No usable HTTP Basic credentials on `/login` (401, as the original).
    #[error("missing credentials")]
    MissingLoginCredentials,
    /// No usable HTTP Basic credentials on `/register` (400).
    #[error("missing credentials: send the email and password with HTTP Basic auth")]
    MissingRegisterCredentials,
    /// Unknown email or wrong password; deliberately the same message for both.
    #[error("invalid credentials")]
    InvalidCredentials,
    /// Too many failed logins for this email from this address, or for many emails from it.
    #[error("too many failed login attempts; try again in {} seconds", retry_after_secs(.0))]
    RateLimited(Duration),
    /// Too many registrations from this client address.
    #[error(
        "too many registrations from this address; try again in {} seconds",
        retry_after_secs(.0)
    )]
    TooManyRegistrations(Duration),
    /// A body on an endpoint that takes its input from headers.
    #[error("{0}")]
    BodyTooLarge(#[from] common::http::BodyTooLarge),
    /// A registration that breaks a rule; the message says which.
    #[error("{0}")]
    Invalid(#[from] crate::credentials::RuleBroken),
    /// The email is taken (also when it differs only in letter case).
    #[error("user already exists")]
    Conflict,
    /// A bearer token that is missing, malformed, tampered with or expired.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// Postgres cannot be reached right now.
    #[error("service unavailable: the user database cannot be reached")]
    Unavailable(#[source] sqlx::Error),
    /// Postgres answers but the users table is not set up yet (see `/readyz`).
    #[error("service unavailable: the user database is not ready yet")]
    NotReady,
    /// No such endpoint.
    #[error("not found: this service has POST /login, /register, /validate")]
    NotFound,
    /// The endpoint exists, with another method.
    #[error("method not allowed for this endpoint")]
    MethodNotAllowed,
    /// Anything else; logged, never shown.
    #[error("internal server error")]
    Internal(#[from] anyhow::Error),
}

/// Whole seconds to wait, at least 1 (a `Retry-After` of 0 would invite a retry storm).
fn retry_after_secs(d: &Duration) -> u64 {
    (d.as_secs() + u64::from(d.subsec_nanos() > 0)).max(1)
}

impl From<sqlx::Error> for AuthError {
    fn from(e: sqlx::Error) -> Self {
        if is_unavailable(&e) {
            Self::Unavailable(e)
        } else {
            Self::Internal(e.into())
        }
    }
}

/// Whether `e` means "Postgres cannot serve us now" rather than a bug: no connection, or a
/// server refusing connections (SQLSTATE class 08 connection exception, 57P0x shutting down or
/// starting, 3D000 no such database yet, 28 login refused).
fn is_unavailable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            code.starts_with("08")
                || code.starts_with("57P")
                || code.starts_with("28")
                || code == "3D000"
        }),
        _ => false,
    }
}

/// The JSON error body: `{"error": "..."}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// What went wrong, for a person.
    pub error: String,
}

impl AuthError {
    /// The HTTP status for this error.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::MissingLoginCredentials | Self::InvalidCredentials | Self::Unauthorized(_) => {
                StatusCode::UNAUTHORIZED
            }
            Self::MissingRegisterCredentials | Self::Invalid(_) => StatusCode::BAD_REQUEST,
            Self::RateLimited(_) | Self::TooManyRegistrations(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::BodyTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Conflict => StatusCode::CONFLICT,
            Self::Unavailable(_) | Self::NotReady => StatusCode::SERVICE_UNAVAILABLE,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for AuthError {
    fn into_response(self) -> Response {
        match &self {
            Self::Internal(e) => tracing::error!(error = ?e, "request failed"),
            Self::Unavailable(e) => tracing::warn!(error = %e, "database unavailable"),
            _ => {}
        }
        let status = self.status();
        let mut response = (
            status,
            Json(ErrorBody {
                error: self.to_string(),
            }),
        )
            .into_response();
        let headers = response.headers_mut();
        match &self {
            Self::RateLimited(wait) | Self::TooManyRegistrations(wait) => {
                headers.insert(
                    header::RETRY_AFTER,
                    HeaderValue::from(retry_after_secs(wait)),
                );
            }
            Self::Unauthorized(_) => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            Self::MissingLoginCredentials | Self::InvalidCredentials => {
                // Not `Basic realm=...`: that would make browsers pop up their own login dialog
                // over the frontend's form.
            }
            _ => {}
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_rounds_up_and_is_positive() {
        assert_eq!(retry_after_secs(&Duration::from_secs(0)), 1);
        assert_eq!(retry_after_secs(&Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(&Duration::from_millis(1500)), 2);
        assert_eq!(retry_after_secs(&Duration::from_secs(60)), 60);
    }

    #[test]
    fn statuses() {
        assert_eq!(AuthError::MissingLoginCredentials.status(), 401);
        assert_eq!(AuthError::MissingRegisterCredentials.status(), 400);
        assert_eq!(AuthError::Conflict.status(), 409);
        assert_eq!(AuthError::RateLimited(Duration::from_secs(3)).status(), 429);
        assert_eq!(
            AuthError::Internal(anyhow::anyhow!("secret detail")).to_string(),
            "internal server error"
        );
        assert_eq!(AuthError::from(sqlx::Error::PoolTimedOut).status(), 503);
        assert_eq!(AuthError::from(sqlx::Error::RowNotFound).status(), 500);
    }
}
