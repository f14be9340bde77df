//! The caller's identity: a Bearer JWT checked by [`crate::tokens::TokenChecker`] (locally with
//! HS256, or by auth's `/validate`), as an axum extractor; and, for `GET /download` only, the
//! same JWT from the media cookie the page sets (an `<audio>` element cannot send headers).

use axum::{
    extract::FromRequestParts,
    http::{
        header::{AUTHORIZATION, COOKIE},
        request::Parts,
        HeaderMap, HeaderValue,
    },
};
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
        check(state, token, header).await
    }
}

/// `token`, whose `Authorization` header value is `header`, checked as every route checks it.
async fn check(state: &AppState, token: &str, header: &HeaderValue) -> Result<User, ApiError> {
    match state.tokens.check(token, header).await {
        Ok(claims) => Ok(User(claims)),
        Err(Refusal::AuthUnavailable(message)) => Err(ApiError::Unavailable(message)),
        Err(refusal) => Err(ApiError::Unauthorized(refusal.to_string())),
    }
}

/// Name of the HttpOnly cookie holding the JWT for media elements (`POST /media-cookie`).
pub const MEDIA_COOKIE: &str = "vidconv_media";

/// The caller of `GET /download`: the `Authorization` header when there is one, else the media
/// cookie. Only this read-only route accepts the cookie, so a request a browser adds it to on
/// its own (SameSite=Strict already keeps other sites out) can do nothing but read.
#[derive(Debug, Clone)]
pub struct MediaUser(pub User);

impl FromRequestParts<AppState> for MediaUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if parts.headers.contains_key(AUTHORIZATION) {
            return User::from_request_parts(parts, state).await.map(MediaUser);
        }
        let Some(token) = cookie(&parts.headers, MEDIA_COOKIE) else {
            return Err(ApiError::Unauthorized(
                "missing Authorization header (expected: Bearer <token>) or media cookie".into(),
            ));
        };
        // Auth's /validate (no JWT_SECRET) takes the token as a Bearer header.
        let header = HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|_| ApiError::Unauthorized("malformed media cookie".into()))?;
        check(state, token, &header).await.map(MediaUser)
    }
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.trim().trim_matches('"'))
        .filter(|value| !value.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_by_name() {
        let mut headers = HeaderMap::new();
        headers.append(
            COOKIE,
            HeaderValue::from_static("a=1; vidconv_media=tok.en.x"),
        );
        headers.append(COOKIE, HeaderValue::from_static("b=2"));
        assert_eq!(cookie(&headers, MEDIA_COOKIE), Some("tok.en.x"));
        assert_eq!(cookie(&headers, "b"), Some("2"));
        assert_eq!(cookie(&headers, "vidconv"), None);
        headers.insert(COOKIE, HeaderValue::from_static("vidconv_media="));
        assert_eq!(cookie(&headers, MEDIA_COOKIE), None);
    }
}
