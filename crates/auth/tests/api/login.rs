use common::jwt::{JwtKeys, TOKEN_LIFETIME_SECS};

use crate::helpers::{basic, email, error_message, spawn_app, JWT_SECRET};

#[tokio::test]
async fn login_answers_a_plain_text_token_with_the_original_claims() {
    let app = spawn_app().await;
    let email = email();
    assert_eq!(app.register(&email, "correct horse").await.status(), 201);

    let before = common::jwt::now_unix();
    let response = app.login(&email, "correct horse").await;

    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    let token = response.text().await.unwrap();
    let claims = JwtKeys::new(JWT_SECRET.as_bytes()).verify(&token).unwrap();
    assert_eq!(claims.username, email);
    assert!(claims.admin);
    assert!(claims.iat >= before && claims.iat <= common::jwt::now_unix());
    assert_eq!(claims.exp - claims.iat, TOKEN_LIFETIME_SECS);
    // The header says HS256.
    let header = jsonwebtoken_header(&token);
    assert_eq!(header["alg"], "HS256");
}

fn jsonwebtoken_header(token: &str) -> serde_json::Value {
    use base64::Engine as _;
    let first = token.split('.').next().unwrap();
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(first)
        .unwrap();
    serde_json::from_slice(&raw).unwrap()
}

#[tokio::test]
async fn wrong_password_and_unknown_email_are_the_same_401() {
    let app = spawn_app().await;
    let email = email();
    assert_eq!(app.register(&email, "correct horse").await.status(), 201);

    let wrong = app.login(&email, "wrong horse").await;
    assert_eq!(wrong.status(), 401);
    let wrong_message = error_message(wrong).await;

    let unknown = app.login("nobody@example.com", "correct horse").await;
    assert_eq!(unknown.status(), 401);
    assert_eq!(error_message(unknown).await, wrong_message);
    assert_eq!(wrong_message, "invalid credentials");
}

#[tokio::test]
async fn login_without_credentials_is_401_missing_credentials() {
    let app = spawn_app().await;
    for authorization in [
        None,
        Some("Bearer abc"),
        Some("Basic ###"),
        Some(basic("a@b.c", "").as_str()),
    ] {
        let response = app.post("/login", authorization, &[]).await;
        assert_eq!(response.status(), 401, "{authorization:?}");
        assert_eq!(error_message(response).await, "missing credentials");
    }
}

#[tokio::test]
async fn login_ignores_email_letter_case_and_answers_the_registered_spelling() {
    let app = spawn_app().await;
    let email = format!("Mixed.Case-{}@Example.com", uuid::Uuid::new_v4().simple());
    assert_eq!(app.register(&email, "correct horse").await.status(), 201);

    let response = app.login(&email.to_lowercase(), "correct horse").await;

    assert_eq!(response.status(), 200);
    let token = response.text().await.unwrap();
    let claims = JwtKeys::new(JWT_SECRET.as_bytes()).verify(&token).unwrap();
    assert_eq!(claims.username, email);
}

#[tokio::test]
async fn a_login_token_validates() {
    let app = spawn_app().await;
    let email = email();
    let token = app.token_for(&email, "correct horse").await;

    let response = app.validate(&token).await;

    assert_eq!(response.status(), 200);
    let claims: serde_json::Value = response.json().await.unwrap();
    assert_eq!(claims["username"], email.as_str());
    assert_eq!(claims["admin"], true);
    let exp = claims["exp"].as_i64().unwrap();
    let iat = claims["iat"].as_i64().unwrap();
    assert_eq!(exp - iat, TOKEN_LIFETIME_SECS);
}

#[tokio::test]
async fn odd_bytes_in_credentials_are_a_401_not_a_500() {
    let app = spawn_app().await;
    for (email, password) in [
        ("nul\0@example.com", "password1"),
        ("a@example.com", "nul\0password"),
        ("\u{1F600}@example.com", "\u{1F600}\u{1F600}"),
    ] {
        let response = app.login(email, password).await;
        assert_eq!(response.status(), 401, "{email:?}");
        assert_eq!(error_message(response).await, "invalid credentials");
    }
    let response = app.register("nul\0@example.com", "password1").await;
    assert_eq!(response.status(), 400);
}
