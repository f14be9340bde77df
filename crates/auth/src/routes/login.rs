//! `POST /login`: HTTP Basic `email:password` in, a JWT as plain text out.

use std::{net::SocketAddr, time::Instant};

use axum::{
    extract::{ConnectInfo, State},
    http::HeaderMap,
};

use crate::{
    credentials::BasicCredentials,
    error::{AuthError, ErrorBody},
    password::{self, Verdict},
    state::AppState,
};

/// Checks the credentials and answers a token valid for one day.
#[utoipa::path(
    post,
    path = "/login",
    tag = "auth",
    security(("basic" = [])),
    responses(
        (status = 200, description = "The JWT (HS256; claims `username`, `exp`, `iat`, `admin`), as a plain-text body", body = String, content_type = "text/plain"),
        (status = 400, description = "The request body could not be read (the client broke off or garbled it)", body = ErrorBody),
        (status = 401, description = "No usable Basic credentials (`missing credentials`), or an unknown email or a wrong password (`invalid credentials`)", body = ErrorBody),
        (status = 413, description = "A request body over 1 KiB (this endpoint needs none)", body = ErrorBody),
        (status = 429, description = "Too many failed logins for this email from this address, or for many emails from this address", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait before trying again"))),
        (status = 500, description = "An unexpected fault (logged; the body says no more)", body = ErrorBody),
        (status = 503, description = "The user database cannot be reached or is not set up yet; or the request waited over 30 s (then with an empty body)", body = ErrorBody),
    )
)]
pub async fn login(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<String, AuthError> {
    let result = attempt(&state, peer, &headers).await;
    let outcome = match &result {
        Ok(_) => "success",
        Err(AuthError::MissingLoginCredentials) => "missing_credentials",
        Err(AuthError::InvalidCredentials) => "invalid_credentials",
        Err(AuthError::RateLimited(_)) => "rate_limited",
        Err(_) => "error",
    };
    metrics::counter!("auth_logins_total", "outcome" => outcome).increment(1);
    result
}

async fn attempt(
    state: &AppState,
    peer: SocketAddr,
    headers: &HeaderMap,
) -> Result<String, AuthError> {
    let credentials =
        BasicCredentials::from_headers(headers).ok_or(AuthError::MissingLoginCredentials)?;
    let email_key = credentials.email.to_lowercase();
    let ip = state.client_ip(headers, peer);

    // The attempt takes its places in the limits before anything is checked: it counts as a
    // failure until it is known to be none. Dropping it (a database error) gives them back.
    let attempt = state
        .login_limiter
        .begin(&email_key, ip, Instant::now())
        .await
        .map_err(|wait| {
            tracing::info!(email = %credentials.email, client = %ip, "login refused: rate limited");
            AuthError::RateLimited(wait)
        })?;
    if !attempt.delay().is_zero() {
        // Many failures for this email from elsewhere: slow this attempt down, refuse nothing.
        metrics::counter!("auth_login_slowdowns_total").increment(1);
        let delay_ms = attempt.delay().as_millis() as u64;
        tracing::info!(email = %credentials.email, client = %ip, delay_ms, "login slowed down");
        tokio::time::sleep(attempt.delay()).await;
    }

    state.require_schema()?;
    let user = state.store.find_by_email(&credentials.email).await?;
    let stored = user.as_ref().map(|u| u.password.clone());
    let verdict = state
        .hasher
        .verify(stored, credentials.password.clone())
        .await?;

    let user = match (verdict, user) {
        (Verdict::Valid | Verdict::ValidNeedsRehash, Some(user)) => user,
        _ => {
            attempt.failed();
            tracing::info!(email = %credentials.email, client = %ip, "login failed");
            return Err(AuthError::InvalidCredentials);
        }
    };
    attempt.succeeded().await;

    // A plaintext row stays as it is while the upgrade is off, so that the original auth,
    // still serving the same table, can log the user in too. Weaker argon2 hashes are of no use
    // to the original either way, so they are always brought up to our parameters.
    let plaintext = !password::looks_hashed(&user.password);
    if verdict == Verdict::ValidNeedsRehash && (state.upgrade_legacy_passwords || !plaintext) {
        upgrade_password(state, &user, credentials.password).await;
    }
    // The stored spelling of the email, so that one account always has one username.
    let token = state
        .keys
        .issue(&user.email)
        .map_err(|e| AuthError::Internal(e.into()))?;
    tracing::info!(email = %user.email, "login succeeded");
    Ok(token)
}

/// Stores an argon2id hash in place of a plaintext (or weaker) password. A failure here is
/// logged and does not fail the login: the old value still works and is upgraded next time.
async fn upgrade_password(state: &AppState, user: &crate::store::User, password: String) {
    let hashed = match state.hasher.hash(password).await {
        Ok(hashed) => hashed,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "cannot hash password for upgrade");
            return;
        }
    };
    match state
        .store
        .replace_password(user.id, &user.password, &hashed)
        .await
    {
        Ok(true) => {
            metrics::counter!("auth_password_upgrades_total").increment(1);
            tracing::info!(user_id = user.id, "stored password upgraded to argon2id");
        }
        Ok(false) => tracing::info!(
            user_id = user.id,
            "password changed meanwhile; upgrade skipped"
        ),
        Err(e) => tracing::warn!(error = %e, user_id = user.id, "password upgrade failed"),
    }
}
