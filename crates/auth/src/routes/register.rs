//! `POST /register`: creates an account from HTTP Basic `email:password`.

use std::{net::SocketAddr, time::Instant};

use axum::{
    extract::{ConnectInfo, State},
    http::{HeaderMap, StatusCode},
    Json,
};
use serde::Serialize;

use crate::{
    credentials::{BasicCredentials, NewEmail, NewPassword},
    error::{AuthError, ErrorBody},
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
        (status = 400, description = "No usable Basic credentials, an email or password that breaks a rule (the message says which), or a request body that could not be read", body = ErrorBody),
        (status = 409, description = "An account with this email (in any letter case) exists", body = ErrorBody),
        (status = 413, description = "A request body over 1 KiB (this endpoint needs none)", body = ErrorBody),
        (status = 429, description = "Too many registrations from this address", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait before trying again"))),
        (status = 500, description = "An unexpected fault (logged; the body says no more)", body = ErrorBody),
        (status = 503, description = "The user database cannot be reached or is not set up yet; or the request waited over 30 s (then with an empty body)", body = ErrorBody),
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
    let result = register_parsed(state, email, password).await;
    if let Some(slot) = slot {
        match &result {
            Ok(_) | Err(AuthError::Conflict | AuthError::Invalid(_)) => slot.keep(),
            Err(_) => slot.give_back().await,
        }
    }
    result
}

/// Parses the credentials by the rules for a new account, then creates it.
async fn register_parsed(
    state: &AppState,
    email: String,
    password: String,
) -> Result<(StatusCode, Json<Registered>), AuthError> {
    let email = NewEmail::parse(email)?;
    let password = NewPassword::parse(password)?;
    register_new(state, email, password).await
}

async fn register_new(
    state: &AppState,
    email: NewEmail,
    password: NewPassword,
) -> Result<(StatusCode, Json<Registered>), AuthError> {
    state.require_schema()?;
    // Answer a taken email before paying for a hash; the insert checks again under a lock.
    if state.store.find_by_email(email.as_str()).await?.is_some() {
        return Err(AuthError::Conflict);
    }
    let hashed = state.hasher.hash(password.into_string()).await?;
    match state.store.insert(&email, &hashed).await? {
        Some(id) => {
            tracing::info!(user_id = id, %email, "user registered");
            Ok((
                StatusCode::CREATED,
                Json(Registered {
                    status: "created",
                    email: email.into_string(),
                }),
            ))
        }
        None => Err(AuthError::Conflict),
    }
}
