//! `GET /readyz`: whether the service can serve logins now (`/healthz` and `/metrics` come from
//! `common::http`).

use std::time::Duration;

use axum::{extract::State, http::StatusCode, Json};
use serde::Serialize;

use crate::state::AppState;

/// How long readiness waits for Postgres before answering "not ready".
const PING_TIMEOUT: Duration = Duration::from_secs(2);

/// The readiness answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Readiness {
    /// Whether logins can be served now.
    pub status: ReadyState,
    /// Why not, when not ready.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Only with `REDIS_URL` set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis: Option<RedisState>,
}

/// `ready`, or `not ready`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub enum ReadyState {
    /// Postgres answers and the users table is set up.
    #[serde(rename = "ready")]
    Ready,
    /// Postgres cannot be reached, or the table is not set up yet.
    #[serde(rename = "not ready")]
    NotReady,
}

/// `ok`, or `degraded` while Redis does not answer (the login limits then count in each
/// replica's memory; the service stays ready).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RedisState {
    /// Redis answers: the limits are shared by the replicas.
    Ok,
    /// Redis does not answer.
    Degraded,
}

/// Ready when Postgres answers and the users table is set up. Redis is reported, never waited
/// for: without it the limits are per replica, and logins go on.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    responses(
        (status = 200, description = "Postgres answers and the users table exists", body = Readiness),
        (status = 503, description = "Postgres cannot be reached (or the schema is not set up yet)", body = Readiness),
    )
)]
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Readiness>) {
    // A ping also lets the limits go back to Redis as soon as it answers, logins or not.
    let redis = match &state.redis {
        None => None,
        Some(link) => Some(match link.ping().await {
            Ok(()) => RedisState::Ok,
            Err(_) => RedisState::Degraded,
        }),
    };
    let not_ready = |error: String| {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(Readiness {
                status: ReadyState::NotReady,
                error: Some(error),
                redis,
            }),
        )
    };
    match tokio::time::timeout(PING_TIMEOUT, state.store.ping()).await {
        Err(_) => return not_ready("postgres did not answer in time".to_owned()),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness: postgres unreachable");
            return not_ready("postgres is unreachable".to_owned());
        }
        Ok(Ok(())) => {}
    }
    if !state.is_schema_ready() {
        return not_ready("the users table is not set up yet".to_owned());
    }
    (
        StatusCode::OK,
        Json(Readiness {
            status: ReadyState::Ready,
            error: None,
            redis,
        }),
    )
}
