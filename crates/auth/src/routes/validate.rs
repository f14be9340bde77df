//! `POST /validate`: `Authorization: Bearer <jwt>` in, the claims as JSON out.

use axum::{
    extract::State,
    http::{header::AUTHORIZATION, HeaderMap},
    Json,
};
use common::jwt::{bearer_token, Claims, TokenError};

use crate::{
    error::{AuthError, ErrorBody},
    state::AppState,
};

/// Answers the token's claims when it is valid: HS256 with our secret, not expired.
#[utoipa::path(
    post,
    path = "/validate",
    tag = "auth",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The token's claims", body = Claims),
        (status = 400, description = "The request body could not be read (the client broke off or garbled it)", body = ErrorBody),
        (status = 401, description = "A missing, malformed, tampered, expired or non-HS256 token", body = ErrorBody,
            headers(("WWW-Authenticate" = String, description = "`Bearer`"))),
        (status = 413, description = "A request body over 1 KiB (this endpoint needs none)", body = ErrorBody),
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
