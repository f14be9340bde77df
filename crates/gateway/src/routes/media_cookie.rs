//! `POST /media-cookie` and `DELETE /media-cookie`: the page's way to let an `<audio>` element
//! stream `/download` without the token in its URL. The POST takes the Bearer token and answers
//! it back as an HttpOnly, SameSite=Strict cookie (Secure when the page is on https), which only
//! `GET /download` accepts (see [`crate::claims::MediaUser`] and docs/security.md, "Preview").

use axum::{
    http::{header, HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
};
use common::jwt::{bearer_token, now_unix};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    claims::{User, MEDIA_COOKIE},
    error::ApiResult,
    AppState,
};

/// `POST /media-cookie`, `DELETE /media-cookie`.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(set_cookie, clear_cookie))
}

/// Sets the media cookie to the caller's token, for as long as the token lives.
#[utoipa::path(
    post,
    path = "/media-cookie",
    tag = "files",
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Set-Cookie: vidconv_media=<token>; HttpOnly; SameSite=Strict; Max-Age=<seconds the token has left> (and Secure behind https). Only GET /download accepts it."),
        (status = 401, description = "Missing, malformed, bad or expired token"),
    )
)]
pub async fn set_cookie(user: User, headers: HeaderMap) -> ApiResult<Response> {
    // The extractor accepted this very header.
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer_token)
        .unwrap_or_default();
    let max_age = (user.0.exp - now_unix()).max(0);
    Ok(with_cookie(&cookie_value(
        token,
        max_age,
        is_https(&headers),
    )))
}

/// Clears the media cookie (logging out); needs no token, so an expired session can clear it too.
#[utoipa::path(
    delete,
    path = "/media-cookie",
    tag = "files",
    responses(
        (status = 204, description = "Set-Cookie: vidconv_media=; Max-Age=0"),
    )
)]
pub async fn clear_cookie(headers: HeaderMap) -> Response {
    with_cookie(&cookie_value("", 0, is_https(&headers)))
}

fn with_cookie(value: &str) -> Response {
    let mut response = StatusCode::NO_CONTENT.into_response();
    if let Ok(v) = HeaderValue::from_str(value) {
        response.headers_mut().insert(header::SET_COOKIE, v);
    }
    // A cookie-setting answer must never be stored by a cache and replayed to someone else.
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The `Set-Cookie` value. No `Path`: the browser then scopes the cookie to the directory of the
/// URL it called, `/api` behind the page's nginx (so it goes only to the API) and `/` when the
/// gateway is called directly; `/download` is below both.
fn cookie_value(token: &str, max_age: i64, secure: bool) -> String {
    let mut value = format!("{MEDIA_COOKIE}={token}; HttpOnly; SameSite=Strict; Max-Age={max_age}");
    if secure {
        value.push_str("; Secure");
    }
    value
}

/// Whether the browser reached us over https: the page's nginx (and the Ingress before it) say
/// so in `X-Forwarded-Proto`. Believing any sender is safe here: the header only decides whether
/// the sender's own cookie is restricted to https.
fn is_https(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .is_some_and(|proto| proto.trim().eq_ignore_ascii_case("https"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cookie_is_http_only_strict_and_secure_behind_https() {
        assert_eq!(
            cookie_value("a.b.c", 60, false),
            "vidconv_media=a.b.c; HttpOnly; SameSite=Strict; Max-Age=60"
        );
        assert!(cookie_value("a.b.c", 60, true).ends_with("; Secure"));
        let mut headers = HeaderMap::new();
        assert!(!is_https(&headers));
        headers.insert("x-forwarded-proto", HeaderValue::from_static("https, http"));
        assert!(is_https(&headers));
        headers.insert("x-forwarded-proto", HeaderValue::from_static("http"));
        assert!(!is_https(&headers));
    }
}
