use crate::helpers::{basic, error_message, spawn_app_with, TestDb};

#[tokio::test]
async fn failed_logins_per_email_are_limited_with_retry_after() {
    let app = spawn_app_with(
        TestDb::create().await,
        &[
            ("LOGIN_MAX_FAILURES_PER_EMAIL", "3"),
            ("LOGIN_MAX_FAILURES_PER_IP", "100"),
        ],
    )
    .await;
    assert_eq!(
        app.register("victim@example.com", "right password")
            .await
            .status(),
        201
    );
    assert_eq!(
        app.register("other@example.com", "right password")
            .await
            .status(),
        201
    );

    for _ in 0..3 {
        assert_eq!(app.login("victim@example.com", "guess").await.status(), 401);
    }
    // Now even the right password is refused for this email, in any letter case.
    for email in ["victim@example.com", "VICTIM@example.com"] {
        let limited = app.login(email, "right password").await;
        assert_eq!(limited.status(), 429);
        let retry_after: u64 = limited.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=15 * 60).contains(&retry_after), "{retry_after}");
        assert!(error_message(limited)
            .await
            .contains("too many failed login attempts"));
    }
    // Other accounts are unaffected.
    assert_eq!(
        app.login("other@example.com", "right password")
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn a_successful_login_clears_the_email_count() {
    let app = spawn_app_with(
        TestDb::create().await,
        &[("LOGIN_MAX_FAILURES_PER_EMAIL", "3")],
    )
    .await;
    assert_eq!(
        app.register("typo@example.com", "right password")
            .await
            .status(),
        201
    );

    for _ in 0..2 {
        assert_eq!(app.login("typo@example.com", "wrong").await.status(), 401);
    }
    assert_eq!(
        app.login("typo@example.com", "right password")
            .await
            .status(),
        200
    );
    for _ in 0..2 {
        assert_eq!(app.login("typo@example.com", "wrong").await.status(), 401);
    }
    assert_eq!(
        app.login("typo@example.com", "right password")
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn failed_logins_per_client_address_are_limited() {
    let app = spawn_app_with(
        TestDb::create().await,
        &[
            ("LOGIN_MAX_FAILURES_PER_EMAIL", "100"),
            ("LOGIN_MAX_FAILURES_PER_IP", "3"),
        ],
    )
    .await;
    assert_eq!(
        app.register("real@example.com", "right password")
            .await
            .status(),
        201
    );

    // A spraying client: one guess each for many emails.
    for i in 0..3 {
        let email = format!("guess{i}@example.com");
        assert_eq!(app.login(&email, "password").await.status(), 401);
    }
    let limited = app.login("real@example.com", "right password").await;
    assert_eq!(limited.status(), 429);
    assert!(limited.headers().contains_key("retry-after"));
    // Without TRUSTED_PROXY_HOPS a client cannot dodge the limit with X-Forwarded-For.
    let spoofed = app
        .login_from("198.51.100.99", "real@example.com", "right password")
        .await;
    assert_eq!(spoofed.status(), 429);
}

#[tokio::test]
async fn behind_a_trusted_proxy_clients_are_told_apart_by_x_forwarded_for() {
    let app = spawn_app_with(
        TestDb::create().await,
        &[
            ("LOGIN_MAX_FAILURES_PER_EMAIL", "100"),
            ("LOGIN_MAX_FAILURES_PER_IP", "3"),
            ("TRUSTED_PROXY_HOPS", "1"),
        ],
    )
    .await;
    assert_eq!(
        app.register("real@example.com", "right password")
            .await
            .status(),
        201
    );

    for i in 0..3 {
        let email = format!("guess{i}@example.com");
        let response = app.login_from("203.0.113.5", &email, "password").await;
        assert_eq!(response.status(), 401);
    }
    assert_eq!(
        app.login_from("203.0.113.5", "real@example.com", "right password")
            .await
            .status(),
        429
    );
    // Another client behind the same proxy is not affected...
    assert_eq!(
        app.login_from("203.0.113.6", "real@example.com", "right password")
            .await
            .status(),
        200
    );
    // ...and the limited one cannot escape by prepending a made-up address: the proxy appends
    // the real one last.
    assert_eq!(
        app.login_from("1.2.3.4, 203.0.113.5", "real@example.com", "right password")
            .await
            .status(),
        429
    );
}

#[tokio::test]
async fn a_burst_of_concurrent_guesses_gets_no_more_than_the_limit() {
    let app = spawn_app_with(
        TestDb::create().await,
        &[
            ("LOGIN_MAX_FAILURES_PER_EMAIL", "3"),
            ("LOGIN_MAX_FAILURES_PER_IP", "100"),
        ],
    )
    .await;
    assert_eq!(
        app.register("burst@example.com", "right password")
            .await
            .status(),
        201
    );

    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..10 {
        let client = app.client.clone();
        let url = format!("{}/login", app.address);
        tasks.spawn(async move {
            client
                .post(url)
                .header(
                    "authorization",
                    basic("burst@example.com", &format!("guess-{i}")),
                )
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        });
    }
    let mut statuses = tasks.join_all().await;
    statuses.sort_unstable();

    // Each guess took its slot before its password was checked: three were checked, the
    // rest refused at once.
    let mut expected = vec![401; 3];
    expected.extend([429; 7]);
    assert_eq!(statuses, expected);
}
