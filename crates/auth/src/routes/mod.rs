//! The HTTP routes, one module each. Each handler is registered together with its OpenAPI entry
//! (`routes!`), so the document served at `/openapi.json` lists exactly the routes served.

use std::time::Duration;

use axum::{http::StatusCode, middleware, routing::get, Json, Router};
use common::http::{limit_body, TINY_BODY_BYTES};
use tower_http::timeout::TimeoutLayer;
use utoipa::OpenApi as _;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{error::AuthError, openapi::ApiDoc, state::AppState};

pub mod health;
pub mod login;
pub mod register;
pub mod validate;

/// Longest a request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The documented endpoints, each with its OpenAPI entry.
pub fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(login::login))
        .routes(routes!(register::register))
        .routes(routes!(validate::validate))
        // Credentials travel in headers: these take no body worth reading.
        .route_layer(middleware::from_fn_with_state(
            TINY_BODY_BYTES,
            limit_body::<AuthError>,
        ))
        .routes(routes!(health::readyz))
}

/// The OpenAPI document of the service, as `/openapi.json` serves it.
pub fn openapi() -> utoipa::openapi::OpenApi {
    api().into_openapi()
}

/// All routes of the auth service, with request ids, spans and metrics.
pub fn router(state: AppState) -> Router {
    let (api, doc) = api().split_for_parts();
    let app = api
        .route(
            "/openapi.json",
            get(move || {
                let doc = doc.clone();
                async move { Json(doc) }
            }),
        )
        .merge(common::http::ops_router())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
        // A request queued behind a flood of password hashes gives up instead of piling up.
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            REQUEST_TIMEOUT,
        ));
    common::http::instrument(app)
}

async fn not_found() -> AuthError {
    AuthError::NotFound
}

async fn method_not_allowed() -> AuthError {
    AuthError::MethodNotAllowed
}
