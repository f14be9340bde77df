//! `POST /login` and `POST /register`, forwarded to the auth service as the original did, passing
//! the status, body and content type (plus `WWW-Authenticate`, `Retry-After`) back and the
//! `Authorization` header forward, with `X-Forwarded-For` set to the client as far as the
//! gateway can tell (auth's login limits count by address).

use std::net::SocketAddr;

use axum::{
    body::{Body, Bytes},
    extract::{ConnectInfo, State},
    http::{header, HeaderMap, StatusCode},
    middleware,
    response::{IntoResponse, Response},
};
use common::{
    forwarded::{client_ip_by_trusted, X_FORWARDED_FOR},
    http::{limit_body, TINY_BODY_BYTES},
};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    error::{ApiError, ApiResult},
    AppState,
};

/// `POST /login`, `POST /register`; their input is in headers, so bodies stay tiny.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(login))
        .routes(routes!(register))
        .route_layer(middleware::from_fn_with_state(
            TINY_BODY_BYTES,
            limit_body::<ApiError>,
        ))
}

/// Logs in with HTTP Basic `email:password`; answers the JWT as plain text (from auth).
#[utoipa::path(
    post,
    path = "/login",
    tag = "auth",
    security(("basic" = [])),
    responses(
        (status = 200, description = "The JWT, as plain text", content_type = "text/plain", body = String),
        (status = 401, description = "Wrong or missing credentials"),
        (status = 413, description = "A body over 1 KiB: the operation takes none (the credentials go in the Authorization header; a small body is passed to auth, which ignores it)"),
        (status = 429, description = "Too many failed logins for this email from this address, or for many emails from it; see Retry-After"),
        (status = 503, description = "The auth service is unreachable"),
    )
)]
pub async fn login(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    forward(&state, "/login", peer, &headers, body).await
}

/// Registers HTTP Basic `email:password`: 200 when registered (auth's 201, answered as the
/// original gateway did), 409 exists, 400 missing or malformed.
#[utoipa::path(
    post,
    path = "/register",
    tag = "auth",
    security(("basic" = [])),
    responses(
        (status = 200, description = "Registered; auth's body passed through"),
        (status = 400, description = "Missing or malformed credentials"),
        (status = 409, description = "The email is already registered"),
        (status = 413, description = "A body over 1 KiB: the operation takes none (the credentials go in the Authorization header; a small body is passed to auth, which ignores it)"),
        (status = 429, description = "Too many registrations from this address; see Retry-After"),
        (status = 503, description = "The auth service is unreachable"),
    )
)]
pub async fn register(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let mut response = forward(&state, "/register", peer, &headers, body).await?;
    // The original gateway passed auth's body on with Flask's default 200; scripts check for it.
    if response.status() == StatusCode::CREATED {
        *response.status_mut() = StatusCode::OK;
    }
    Ok(response)
}

async fn forward(
    state: &AppState,
    path: &str,
    peer: SocketAddr,
    headers: &HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    // The operations take no body (the OpenAPI document says none); whatever small one a client
    // sends is passed on, as the original did. `limit_body` has already bounded and read it.
    let body: Bytes = axum::body::to_bytes(body, TINY_BODY_BYTES)
        .await
        .map_err(|_| ApiError::BadRequest("cannot read the request body".into()))?;
    let url = format!("{}{path}", state.config.auth_base_url);
    let mut request = state.http.post(&url).body(body);
    for name in [header::AUTHORIZATION, header::CONTENT_TYPE] {
        if let Some(value) = headers.get(&name) {
            request = request.header(name, value);
        }
    }
    // The client as this gateway sees it, replacing whatever the client wrote: auth trusts
    // exactly one hop (this one), so nothing a client sends can choose its address.
    let client = client_ip_by_trusted(headers, peer, &state.config.trusted_proxies);
    request = request.header(X_FORWARDED_FOR, client.to_string());

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
