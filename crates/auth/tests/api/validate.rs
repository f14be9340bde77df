use base64::Engine as _;
use common::jwt::{now_unix, JwtKeys, TOKEN_LIFETIME_SECS};

use crate::helpers::{email, error_message, spawn_app, JWT_SECRET};

fn b64(data: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(data)
}

fn keys() -> JwtKeys {
    JwtKeys::new(JWT_SECRET.as_bytes())
}

#[tokio::test]
async fn valid_token_answers_its_claims() {
    let app = spawn_app().await;
    let claims = JwtKeys::claims_for("someone@example.com", now_unix());
    let token = keys().sign(&claims).unwrap();

    let response = app.validate(&token).await;

    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    let body: common::jwt::Claims = response.json().await.unwrap();
    assert_eq!(body, claims);
}

#[tokio::test]
async fn missing_or_malformed_authorization_is_401() {
    let app = spawn_app().await;
    let cases = [
        (None, "missing token"),
        (Some("Basic dXNlcjpwYXNz"), "malformed"),
        (Some("Bearer"), "malformed"),
        (Some("Bearer not.a.jwt"), "invalid token"),
        (Some("Bearer abc"), "invalid token"),
    ];
    for (authorization, says) in cases {
        let response = app.post("/validate", authorization, &[]).await;
        assert_eq!(response.status(), 401, "{authorization:?}");
        assert_eq!(response.headers()["www-authenticate"], "Bearer");
        let message = error_message(response).await;
        assert!(message.contains(says), "{authorization:?}: {message}");
    }
}

#[tokio::test]
async fn tampered_token_is_401() {
    let app = spawn_app().await;
    let email = email();
    let token = app.token_for(&email, "correct horse").await;
    let parts: Vec<&str> = token.split('.').collect();
    // Same signature, payload naming somebody else.
    let mut claims = JwtKeys::claims_for("admin@example.com", now_unix());
    claims.exp += 1;
    let forged_payload = b64(&serde_json::to_vec(&claims).unwrap());
    let forged = format!("{}.{}.{}", parts[0], forged_payload, parts[2]);

    let response = app.validate(&forged).await;
    assert_eq!(response.status(), 401);
    assert_eq!(error_message(response).await, "invalid token");

    // A flipped signature character.
    let mut signature = parts[2].to_owned();
    let last = signature.pop().unwrap();
    signature.push(if last == 'A' { 'B' } else { 'A' });
    let flipped = format!("{}.{}.{}", parts[0], parts[1], signature);
    assert_eq!(app.validate(&flipped).await.status(), 401);

    // Signed with another secret.
    let other = JwtKeys::new(b"another secret").issue(&email).unwrap();
    assert_eq!(app.validate(&other).await.status(), 401);
}

#[tokio::test]
async fn alg_none_token_is_401() {
    let app = spawn_app().await;
    let claims = serde_json::to_vec(&JwtKeys::claims_for("admin@example.com", now_unix())).unwrap();
    for header in [
        r#"{"alg":"none","typ":"JWT"}"#,
        r#"{"alg":"None","typ":"JWT"}"#,
    ] {
        let unsigned = format!("{}.{}.", b64(header.as_bytes()), b64(&claims));
        let response = app.validate(&unsigned).await;
        assert_eq!(response.status(), 401, "{header}");
    }
    // HS512 with the right secret is still refused: only HS256 is accepted.
    let hs512 = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS512),
        &JwtKeys::claims_for("admin@example.com", now_unix()),
        &jsonwebtoken::EncodingKey::from_secret(JWT_SECRET.as_bytes()),
    )
    .unwrap();
    assert_eq!(app.validate(&hs512).await.status(), 401);
}

#[tokio::test]
async fn expired_token_is_401() {
    let app = spawn_app().await;
    let issued = now_unix() - TOKEN_LIFETIME_SECS - 120;
    let token = keys()
        .sign(&JwtKeys::claims_for("someone@example.com", issued))
        .unwrap();

    let response = app.validate(&token).await;

    assert_eq!(response.status(), 401);
    assert_eq!(error_message(response).await, "token has expired");
}

#[tokio::test]
async fn token_without_expiry_is_401() {
    let app = spawn_app().await;
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &serde_json::json!({"username": "x@example.com", "admin": true, "iat": now_unix()}),
        &jsonwebtoken::EncodingKey::from_secret(JWT_SECRET.as_bytes()),
    )
    .unwrap();
    assert_eq!(app.validate(&token).await.status(), 401);
}
