//! `GET /readyz`: whether MongoDB, RabbitMQ and auth answer. Served on the admin listener with
//! `/healthz` and `/metrics` (from `common::http::ops_router`), not on the public port.

use std::time::Duration;

use axum::{extract::State, http::StatusCode, routing::get, Json, Router};
use serde::Serialize;

use crate::AppState;

/// Longest wait for each dependency.
const CHECK_TIMEOUT: Duration = Duration::from_secs(3);

/// `GET /readyz`.
pub fn router() -> Router<AppState> {
    Router::new().route("/readyz", get(readyz))
}

/// Readiness of each dependency: `ok` or why not.
#[derive(Debug, Serialize)]
pub struct Readiness {
    /// `ready` or `not ready`.
    pub status: &'static str,
    /// MongoDB: `ok` or the reason.
    pub mongodb: String,
    /// RabbitMQ: `ok` or the reason.
    pub rabbitmq: String,
    /// The auth service: `ok` or the reason.
    pub auth: String,
}

/// Whether the gateway can serve: MongoDB, RabbitMQ and auth reachable. 200 when every
/// dependency answers, else 503 with the body saying which does not. (Not in the OpenAPI
/// document: that describes the public port.)
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Readiness>) {
    let mongodb = async {
        let answer = describe(state.storage.ping()).await;
        // A server that answers is not enough before the indexes exist: traffic would reach
        // unindexed collections while they are being built.
        if answer == "ok" && !*state.mongo_prepared.borrow() {
            "not ready: creating the indexes".to_owned()
        } else {
            answer
        }
    };
    let rabbitmq = describe(state.queue.check());
    let auth = async {
        let url = format!("{}/healthz", state.config.auth_base_url);
        // Any HTTP answer means auth is up and reachable.
        match state.http.get(&url).timeout(CHECK_TIMEOUT).send().await {
            Ok(_) => "ok".to_owned(),
            Err(e) => format!("not ready: {e}"),
        }
    };
    let (mongodb, rabbitmq, auth) = tokio::join!(mongodb, rabbitmq, auth);
    let ready = [&mongodb, &rabbitmq, &auth].iter().all(|s| *s == "ok");
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(Readiness {
            status: if ready { "ready" } else { "not ready" },
            mongodb,
            rabbitmq,
            auth,
        }),
    )
}

/// `ok`, or why a dependency check failed or did not answer within [`CHECK_TIMEOUT`].
async fn describe<E: std::fmt::Display>(
    check: impl std::future::Future<Output = Result<(), E>>,
) -> String {
    match tokio::time::timeout(CHECK_TIMEOUT, check).await {
        Ok(Ok(())) => "ok".to_owned(),
        Ok(Err(e)) => format!("not ready: {e}"),
        Err(_) => "not ready: no answer in time".to_owned(),
    }
}
