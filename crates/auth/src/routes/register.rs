//! `POST /register`: creates an account from HTTP Basic `email:password`.

use std::{net::SocketAddr, time::Instant};

use axum::{
    extract::{ConnectInfo, State},
    http::{HeaderMap, StatusCode},
    Json,
};
use serde::Serialize;

use crate::{
    credentials::{check_new_email, check_new_password, BasicCredentials},
    error::AuthError,
    state::AppState,
};

/// The body of a 201.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Registered {
    /// Always `created`.
    pub status: &'static str,
    /// The email the account was created for.
    pub email: String,
}

/// Creates an account; the password is stored as an argon2id hash.
#[utoipa::path(
    post,
    path = "/register",
    tag = "auth",
    security(("basic" = [])),
    responses(
        (status = 201, description = "Account created", body = Registered),
        (status = 400, description = "Missing credentials, or an email or password that breaks a rule (the message says which)", body = crate::error::ErrorBody),
        (status = 409, description = "An account with this email (in any letter case) exists", body = crate::error::ErrorBody),
        (status = 413, description = "A request body (this endpoint takes none; at most 1 KiB)", body = crate::error::ErrorBody),
        (status = 429, description = "Too many registrations from this address; see Retry-After", body = crate::error::ErrorBody),
        (status = 503, description = "The user database cannot be reached", body = crate::error::ErrorBody),
    )
)]
pub async fn register(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<(StatusCode, Json<Registered>), AuthError> {
    let result = create(&state, peer, &headers).await;
    let outcome = match &result {
        Ok(_) => "created",
        Err(AuthError::Conflict) => "conflict",
        Err(AuthError::MissingRegisterCredentials | AuthError::Invalid(_)) => "invalid",
        Err(AuthError::TooManyRegistrations(_)) => "rate_limited",
        Err(_) => "error",
    };
    metrics::counter!("auth_registrations_total", "outcome" => outcome).increment(1);
    result
}

async fn create(
    state: &AppState,
    peer: SocketAddr,
    headers: &HeaderMap,
) -> Result<(StatusCode, Json<Registered>), AuthError> {
    let BasicCredentials { email, password } =
        BasicCredentials::from_headers(headers).ok_or(AuthError::MissingRegisterCredentials)?;
    // Every registration costs an argon2 hash (19 MiB, tens of milliseconds): limit them per
    // address before anything else. The place is given back only when the service failed.
    let ip = state.client_ip(headers, peer);
    let slot = state
        .register_limiter
        .begin(ip, Instant::now())
        .await
        .map_err(|wait| {
            tracing::info!(client = %ip, "registration refused: rate limited");
            AuthError::TooManyRegistrations(wait)
        })?;
    let result = register_checked(state, email, password).await;
    if let Some(slot) = slot {
        match &result {
            Ok(_) | Err(AuthError::Conflict | AuthError::Invalid(_)) => slot.keep(),
            Err(_) => slot.give_back().await,
        }
    }
    result
}

async fn register_checked(
    state: &AppState,
    email: String,
    password: String,
) -> Result<(StatusCode, Json<Registered>), AuthError> {
    check_new_email(&email).map_err(AuthError::Invalid)?;
    check_new_password(&password).map_err(AuthError::Invalid)?;

    state.require_schema()?;
    // Answer a taken email before paying for a hash; the insert checks again under a lock.
    if state.store.find_by_email(&email).await?.is_some() {
        return Err(AuthError::Conflict);
    }
    let hashed = state.hasher.hash(password).await?;
    match state.store.insert(&email, &hashed).await? {
        Some(id) => {
            tracing::info!(user_id = id, %email, "user registered");
            Ok((
                StatusCode::CREATED,
                Json(Registered {
                    status: "created",
                    email,
                }),
            ))
        }
        None => Err(AuthError::Conflict),
    }
}
