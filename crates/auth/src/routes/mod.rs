//! The HTTP routes, one module each, merged here.

use std::time::Duration;

use axum::{http::StatusCode, middleware, routing::get, routing::post, Router};
use common::http::{limit_body, TINY_BODY_BYTES};
use tower_http::timeout::TimeoutLayer;

use crate::{error::AuthError, state::AppState};

pub mod health;
pub mod login;
pub mod register;
pub mod validate;

/// Longest a request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// All routes of the auth service, with request ids, spans and metrics.
pub fn router(state: AppState) -> Router {
    let app = Router::new()
        .route("/login", post(login::login))
        .route("/register", post(register::register))
        .route("/validate", post(validate::validate))
        // Credentials travel in headers: these take no body worth reading.
        .route_layer(middleware::from_fn_with_state(
            TINY_BODY_BYTES,
            limit_body::<AuthError>,
        ))
        .route("/readyz", get(health::readyz))
        .route("/openapi.json", get(crate::openapi::openapi_json))
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
