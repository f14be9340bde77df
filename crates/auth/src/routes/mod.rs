//! The HTTP routes, one module each, merged here.

use axum::{routing::get, routing::post, Router};

use crate::state::AppState;

pub mod health;
pub mod login;
pub mod register;
pub mod validate;

/// All routes of the auth service, with request ids, spans and metrics.
pub fn router(state: AppState) -> Router {
    let app = Router::new()
        .route("/login", post(login::login))
        .route("/register", post(register::register))
        .route("/validate", post(validate::validate))
        .route("/readyz", get(health::readyz))
        .route("/openapi.json", get(crate::openapi::openapi_json))
        .merge(common::http::ops_router())
        .with_state(state);
    common::http::instrument(app)
}
