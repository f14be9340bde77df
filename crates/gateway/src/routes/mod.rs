//! The HTTP routes, one module per concern, merged here.

pub mod auth_proxy;
pub mod download;
pub mod drain;
pub mod events;
pub mod health;
pub mod jobs;
pub mod media_cookie;
pub mod status;
pub mod upload;

use axum::{
    extract::Query,
    http::{Method, Uri},
    routing::get,
    Router,
};
use mongodb::bson::oid::ObjectId;
use serde::Deserialize;

use crate::{error::ApiError, AppState};

/// Every route of the gateway, with `state` applied.
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(auth_proxy::router())
        .merge(upload::router(state.config.max_upload_bytes))
        .merge(status::router())
        .merge(download::router())
        .merge(media_cookie::router())
        .merge(jobs::router())
        .merge(events::router())
        .merge(crate::openapi::router())
        // Liveness only (no state, no detail), kept here for the Docker HEALTHCHECK and anything
        // that already polls it; `/metrics` and `/readyz` are on the admin listener only.
        .route("/healthz", get(common::http::healthz))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        // Last, so it also covers refusals by extractors and fallbacks.
        .layer(axum::middleware::from_fn_with_state(
            drain::Bound::for_uploads(state.config.max_upload_bytes),
            drain::drain_refused,
        ))
        .with_state(state)
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

async fn not_found(uri: Uri) -> ApiError {
    ApiError::NotFound(format!("no such endpoint: {}", uri.path()))
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::MethodNotAllowed(format!("{} does not accept {method}", uri.path()))
}

/// `?fid=<hex>` of `/status`, `/download` and `/events`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FidQuery {
    /// A file id: 24 hexadecimal characters.
    pub fid: Option<String>,
}

/// The `fid` query parameter, parsed; 400 when missing or malformed.
pub fn fid_param(
    query: Result<Query<FidQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<ObjectId, ApiError> {
    let fid = query
        .ok()
        .and_then(|Query(q)| q.fid)
        .ok_or_else(|| ApiError::BadRequest("missing query parameter fid".into()))?;
    parse_fid(&fid)
}

/// A file id from a client; 400 when it is not an ObjectId.
pub fn parse_fid(fid: &str) -> Result<ObjectId, ApiError> {
    ObjectId::parse_str(fid.trim()).map_err(|_| {
        ApiError::BadRequest(format!(
            "fid {fid:?} is malformed: expected 24 hexadecimal characters"
        ))
    })
}
