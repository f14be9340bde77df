//! The caller's identity: a Bearer JWT checked by [`crate::tokens::TokenChecker`] (locally with
//! HS256, or by auth's `/validate`), as an axum extractor.

use axum::{extract::FromRequestParts, http::header::AUTHORIZATION, http::request::Parts};
use common::jwt::{bearer_token, Claims};

use crate::{error::ApiError, tokens::Refusal, AppState};

/// The verified claims of the request's token. Rejects with 401 JSON when missing or invalid.
#[derive(Debug, Clone)]
pub struct User(pub Claims);

impl User {
    /// The caller's email (the token's `username`).
    pub fn email(&self) -> &str {
        &self.0.username
    }

    /// Whether the caller may see a file owned by `owner`; files with no owner (written by the
    /// original system) are visible to every authenticated user.
    pub fn may_see(&self, owner: Option<&str>) -> bool {
        owner.is_none_or(|o| o == self.email())
    }
}

impl FromRequestParts<AppState> for User {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let header = parts.headers.get(AUTHORIZATION).ok_or_else(|| {
            ApiError::Unauthorized("missing Authorization header (expected: Bearer <token>)".into())
        })?;
        let text = header.to_str().map_err(|_| {
            ApiError::Unauthorized(
                "malformed Authorization header (expected: Bearer <token>)".into(),
            )
        })?;
        let token = bearer_token(text).ok_or_else(|| {
            ApiError::Unauthorized(
                "malformed Authorization header (expected: Bearer <token>)".into(),
            )
        })?;
        match state.tokens.check(token, header).await {
            Ok(claims) => Ok(User(claims)),
            Err(Refusal::AuthUnavailable(message)) => Err(ApiError::Unavailable(message)),
            Err(refusal) => Err(ApiError::Unauthorized(refusal.to_string())),
        }
    }
}
