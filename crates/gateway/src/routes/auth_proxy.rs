//! `POST /login` and `POST /register`, forwarded to the auth service as the original did, passing
//! the status, body and content type (plus `WWW-Authenticate`, `Retry-After`) back and the
//! `Authorization` header forward.

use std::net::SocketAddr;

use axum::{
    body::Bytes,
    extract::{ConnectInfo, State},
    http::{header, HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::post,
    Router,
};

use crate::{
    error::{ApiError, ApiResult},
    AppState,
};

/// `POST /login`, `POST /register`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/login", post(login))
        .route("/register", post(register))
}

/// Logs in with HTTP Basic `email:password`; answers the JWT as plain text (from auth).
#[utoipa::path(
    post,
    path = "/login",
    tag = "auth",
    security(("basic" = [])),
    request_body(content = String, description = "Passed through to auth (usually empty)"),
    responses(
        (status = 200, description = "The JWT, as plain text", content_type = "text/plain", body = String),
        (status = 401, description = "Wrong or missing credentials"),
        (status = 429, description = "Too many failed logins; `Retry-After` says when to try again"),
        (status = 503, description = "The auth service is unreachable"),
    )
)]
pub async fn login(
    State(state): State<AppState>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    forward(&state, "/login", client, &headers, body).await
}

/// Registers HTTP Basic `email:password`: 200 when registered (auth's 201, answered as the
/// original gateway did), 409 exists, 400 missing or malformed.
#[utoipa::path(
    post,
    path = "/register",
    tag = "auth",
    security(("basic" = [])),
    request_body(content = String, description = "Passed through to auth (usually empty)"),
    responses(
        (status = 200, description = "Registered; auth's body passed through"),
        (status = 400, description = "Missing or malformed credentials"),
        (status = 409, description = "The email is already registered"),
        (status = 429, description = "Too many registrations; `Retry-After` says when to try again"),
        (status = 503, description = "The auth service is unreachable"),
    )
)]
pub async fn register(
    State(state): State<AppState>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let mut response = forward(&state, "/register", client, &headers, body).await?;
    // The original gateway passed auth's body on with Flask's default 200; scripts check for it.
    if response.status() == StatusCode::CREATED {
        *response.status_mut() = StatusCode::OK;
    }
    Ok(response)
}

async fn forward(
    state: &AppState,
    path: &str,
    client: SocketAddr,
    headers: &HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let url = format!("{}{path}", state.config.auth_base_url);
    let mut request = state.http.post(&url).body(body);
    for name in [header::AUTHORIZATION, header::CONTENT_TYPE] {
        if let Some(value) = headers.get(&name) {
            request = request.header(name, value);
        }
    }
    // Append the client to any X-Forwarded-For chain, so auth (rate limiting) sees who it is.
    let forwarded_for = match headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
        Some(chain) if !chain.trim().is_empty() => format!("{}, {}", chain.trim(), client.ip()),
        _ => client.ip().to_string(),
    };
    request = request.header("x-forwarded-for", forwarded_for);

    let unavailable = |e: reqwest::Error| {
        tracing::warn!(error = %e, url = %url, "auth service unreachable");
        ApiError::Unavailable("the authentication service is unavailable, try again shortly".into())
    };
    let answer = request.send().await.map_err(unavailable)?;
    let status = StatusCode::from_u16(answer.status().as_u16())
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("auth answered a bad status: {e}")))?;
    let passed: Vec<_> = [
        header::CONTENT_TYPE,
        header::WWW_AUTHENTICATE,
        header::RETRY_AFTER,
    ]
    .into_iter()
    .filter_map(|name| answer.headers().get(&name).cloned().map(|v| (name, v)))
    .collect();
    let body = answer.bytes().await.map_err(unavailable)?;
    let mut response = (status, body).into_response();
    let h = response.headers_mut();
    h.remove(header::CONTENT_TYPE);
    for (name, value) in passed {
        h.insert(name, value);
    }
    Ok(response)
}
