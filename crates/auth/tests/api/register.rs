use crate::helpers::{basic, email, error_message, spawn_app};

#[tokio::test]
async fn register_creates_user_with_argon2id_hash() {
    let app = spawn_app().await;
    let email = email();

    let response = app.register(&email, "correct horse").await;

    assert_eq!(response.status(), 201);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(
        body,
        serde_json::json!({"status": "created", "email": email})
    );
    let stored = app.stored_password(&email).await;
    assert!(
        stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{stored}"
    );
    assert!(!stored.contains("correct horse"));
}

#[tokio::test]
async fn register_existing_email_is_409_whatever_the_letter_case() {
    let app = spawn_app().await;
    let email = email();
    assert_eq!(app.register(&email, "password-1").await.status(), 201);

    let again = app.register(&email, "password-2").await;
    assert_eq!(again.status(), 409);
    assert_eq!(error_message(again).await, "user already exists");

    let shouted = app.register(&email.to_uppercase(), "password-3").await;
    assert_eq!(shouted.status(), 409);

    // The first password still logs in; nothing was overwritten.
    assert_eq!(app.login(&email, "password-1").await.status(), 200);
}

#[tokio::test]
async fn register_without_credentials_is_400() {
    let app = spawn_app().await;

    let none = app.post("/register", None, &[]).await;
    assert_eq!(none.status(), 400);
    assert!(error_message(none).await.contains("missing credentials"));

    let bearer = app.post("/register", Some("Bearer abc"), &[]).await;
    assert_eq!(bearer.status(), 400);

    let no_password = app.register("a@example.com", "").await;
    assert_eq!(no_password.status(), 400);
}

#[tokio::test]
async fn register_rejections_say_what_is_wrong() {
    let app = spawn_app().await;
    let long_email = format!("{}@example.com", "a".repeat(250));
    let cases = [
        ("not-an-email", "long enough", "@"),
        ("a@localhost", "long enough", "domain"),
        (long_email.as_str(), "long enough", "at most 255"),
        ("short@example.com", "1234567", "at least 8"),
    ];
    for (email, password, says) in cases {
        let response = app.register(email, password).await;
        assert_eq!(response.status(), 400, "{email}");
        let message = error_message(response).await;
        assert!(message.contains(says), "{email}: {message}");
    }
    // Nothing was stored.
    let pool = app.db.pool().await;
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM auth_user")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(rows, 0);
}

#[tokio::test]
async fn concurrent_registrations_of_one_email_create_one_row() {
    let app = spawn_app().await;
    let email = email();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..4 {
        let email = if i % 2 == 0 {
            email.clone()
        } else {
            email.to_uppercase()
        };
        let client = app.client.clone();
        let url = format!("{}/register", app.address);
        tasks.spawn(async move {
            client
                .post(url)
                .header("authorization", basic(&email, "password-x"))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        });
    }
    let mut statuses = tasks.join_all().await;
    statuses.sort_unstable();
    assert_eq!(statuses, vec![201, 409, 409, 409]);
}

/// Attack: every registration costs an argon2 hash; a client may not ask for them endlessly.
#[tokio::test]
async fn registrations_are_throttled_per_client_address() {
    let app = crate::helpers::spawn_app_with(
        crate::helpers::TestDb::create().await,
        &[("REGISTER_MAX_PER_IP", "3"), ("TRUSTED_PROXY_HOPS", "1")],
    )
    .await;
    let taken = email();
    // Created, taken and refused registrations all count.
    assert_eq!(
        app.register_from("203.0.113.9", &taken, "long enough")
            .await
            .status(),
        201
    );
    assert_eq!(
        app.register_from("203.0.113.9", &taken, "long enough")
            .await
            .status(),
        409
    );
    assert_eq!(
        app.register_from("203.0.113.9", &email(), "short")
            .await
            .status(),
        400
    );

    let refused = app
        .register_from("203.0.113.9", &email(), "long enough")
        .await;
    assert_eq!(refused.status(), 429);
    assert!(refused.headers().contains_key("retry-after"));
    assert!(error_message(refused)
        .await
        .contains("too many registrations from this address"));
    // Another address registers as usual.
    assert_eq!(
        app.register_from("203.0.113.10", &email(), "long enough")
            .await
            .status(),
        201
    );
}
