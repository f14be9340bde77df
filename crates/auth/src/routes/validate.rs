//! `POST /validate`: `Authorization: Bearer <jwt>` in, the claims as JSON out.

use axum::{
    extract::State,
    http::{header::AUTHORIZATION, HeaderMap},
    Json,
};
use common::jwt::{bearer_token, Claims, TokenError};

use crate::{error::AuthError, state::AppState};

/// Answers the token's claims when it is valid: HS256 with our secret, not expired.
#[utoipa::path(
    post,
    path = "/validate",
    tag = "auth",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The token's claims", body = crate::openapi::TokenClaims),
        (status = 401, description = "Missing, malformed, tampered, expired or non-HS256 token", body = crate::error::ErrorBody),
        (status = 413, description = "A request body (this endpoint takes none; at most 1 KiB)", body = crate::error::ErrorBody),
    )
)]
pub async fn validate(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Claims>, AuthError> {
    let header = headers.get(AUTHORIZATION).ok_or(AuthError::Unauthorized(
        "missing token: send Authorization: Bearer <token>",
    ))?;
    let token = header
        .to_str()
        .ok()
        .and_then(bearer_token)
        .ok_or(AuthError::Unauthorized(
            "malformed Authorization header: expected Bearer <token>",
        ))?;
    match state.keys.verify(token) {
        Ok(claims) => Ok(Json(claims)),
        Err(TokenError::Expired) => Err(AuthError::Unauthorized("token has expired")),
        Err(TokenError::Invalid(e)) => {
            tracing::debug!(error = %e, "token refused");
            Err(AuthError::Unauthorized("invalid token"))
        }
    }
}
