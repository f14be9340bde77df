//! The HTTP routes, one module per concern. Each module declares its routes once, with their
//! OpenAPI entries (`utoipa_axum::routes!`); [`api`] merges them.

pub mod auth_proxy;
pub mod download;
pub mod drain;
pub mod events;
pub mod fid;
pub mod health;
pub mod jobs;
pub mod media_cookie;
pub mod status;
pub mod upload;

use axum::{
    http::{Method, Uri},
    Router,
};
use utoipa_axum::router::OpenApiRouter;

pub use fid::Fid;

use crate::{error::ApiError, AppState};

/// Every documented route of the public API, with its OpenAPI entry. `max_upload_bytes` bounds
/// the upload's body; it changes nothing in the document.
pub fn api(max_upload_bytes: u64) -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(auth_proxy::router())
        .merge(upload::router(max_upload_bytes))
        .merge(status::router())
        .merge(download::router())
        .merge(media_cookie::router())
        .merge(jobs::router())
        .merge(events::router())
}

/// The admin listener's routes: `/metrics`, `/readyz` and `/healthz`, for probes and Prometheus,
/// on a port that is not exposed to the internet (`GATEWAY_ADMIN_ADDR`).
pub fn admin_router(state: AppState) -> Router {
    Router::new()
        .merge(health::router())
        .merge(common::http::ops_router())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

/// The JSON 404 of a path the gateway does not serve.
pub async fn not_found(uri: Uri) -> ApiError {
    ApiError::NotFound(format!("no such endpoint: {}", uri.path()))
}

/// The JSON 405 of a method a path does not accept.
pub async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::MethodNotAllowed(format!("{} does not accept {method}", uri.path()))
}
