use serde_json::Value;

use crate::helpers::{Options, TestApp};

const PASSWORD: &str = "correct horse battery staple";

async fn post(app: &TestApp, path: &str, user: Option<(&str, &str)>) -> reqwest::Response {
    app.post_basic(path, user).await
}

#[tokio::test]
async fn register_and_login_pass_through_to_the_real_auth() {
    let app = TestApp::spawn_with(Options {
        with_auth: true,
        ..Options::default()
    })
    .await;
    let email = "frank@example.com";

    // 200, as the original gateway answered (auth itself says 201).
    let res = post(&app, "/register", Some((email, PASSWORD))).await;
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));

    assert_eq!(
        post(&app, "/register", Some((email, PASSWORD)))
            .await
            .status(),
        409
    );
    let res = post(&app, "/register", None).await;
    assert_eq!(res.status(), 400);
    let body: Value = res.json().await.unwrap();
    assert!(body["error"].is_string());

    let res = post(&app, "/login", Some((email, PASSWORD))).await;
    assert_eq!(res.status(), 200);
    let token = res.text().await.unwrap();
    let claims = app.keys.verify(token.trim()).unwrap();
    assert_eq!(claims.username, email);

    // The token auth issued opens the gateway.
    let res = app
        .http
        .get(format!("{}/jobs", app.base))
        .bearer_auth(token.trim())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);

    let res = post(&app, "/login", Some((email, "wrong password!"))).await;
    assert_eq!(res.status(), 401);
    let res = post(&app, "/login", None).await;
    assert_eq!(res.status(), 401);
}

#[tokio::test]
async fn auth_unreachable_gives_503_with_a_message() {
    // Without `with_auth`, AUTH_SVC_ADDRESS points at a closed port.
    let app = TestApp::spawn().await;
    for path in ["/login", "/register"] {
        let res = post(&app, path, Some(("a@b.c", PASSWORD))).await;
        assert_eq!(res.status(), 503, "{path}");
        let body: Value = res.json().await.unwrap();
        assert!(
            body["error"]
                .as_str()
                .unwrap()
                .contains("authentication service is unavailable"),
            "{body}"
        );
    }
}

/// `KEY: "value"` of a shipped manifest, `None` when the key is absent.
fn manifest_value(path: &str, key: &str) -> Option<String> {
    let file = format!("{}/../../{path}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{file}: {e}"));
    text.lines().find_map(|line| {
        let (k, v) = line.trim().split_once(':')?;
        (k == key).then(|| v.trim().trim_matches('"').to_owned())
    })
}

/// `POST path` as `email` with `X-Forwarded-For: forwarded_for`.
async fn post_forwarded(
    app: &TestApp,
    path: &str,
    email: &str,
    forwarded_for: &str,
) -> reqwest::Response {
    app.http
        .post(format!("{}{path}", app.base))
        .basic_auth(email, Some(PASSWORD))
        .header("x-forwarded-for", forwarded_for)
        .send()
        .await
        .unwrap()
}

/// Attack: a password sprayer calling the gateway directly writes a new `X-Forwarded-For` on
/// every request, hoping auth counts each under another address. Run with the address settings
/// the k8s manifests ship.
#[tokio::test]
async fn forged_x_forwarded_for_sprays_do_not_escape_the_per_address_limit() {
    let hops = manifest_value("k8s/auth/configmap.yaml", "TRUSTED_PROXY_HOPS")
        .expect("the auth ConfigMap sets TRUSTED_PROXY_HOPS");
    let trusted =
        manifest_value("k8s/gateway/configmap.yaml", "TRUSTED_PROXIES").unwrap_or_default();
    let app = TestApp::spawn_with(Options {
        with_auth: true,
        auth_env: vec![
            ("TRUSTED_PROXY_HOPS", hops),
            ("LOGIN_MAX_FAILED_EMAILS_PER_IP", "3".into()),
            ("LOGIN_MAX_FAILURES_PER_IP", "3".into()),
        ],
        env: vec![("TRUSTED_PROXIES", trusted)],
        ..Options::default()
    })
    .await;

    let mut statuses = Vec::new();
    for i in 0..8 {
        let email = format!("sprayed{i}@example.com");
        let forged = format!("198.51.100.{i}");
        let res = post_forwarded(&app, "/login", &email, &forged).await;
        statuses.push(res.status().as_u16());
    }
    assert_eq!(statuses, [401, 401, 401, 429, 429, 429, 429, 429]);
}

/// Behind a trusted proxy (the frontend's nginx; here the test client is it) the address the
/// proxy names is the client's: clients are told apart, and what a client wrote to the left of
/// it changes nothing.
#[tokio::test]
async fn behind_a_trusted_proxy_auth_sees_the_address_the_proxy_names() {
    let app = TestApp::spawn_with(Options {
        with_auth: true,
        auth_env: vec![
            ("TRUSTED_PROXY_HOPS", "1".into()),
            ("LOGIN_MAX_FAILED_EMAILS_PER_IP", "2".into()),
        ],
        env: vec![("TRUSTED_PROXIES", "127.0.0.1/32, ::1/128".into())],
        ..Options::default()
    })
    .await;
    let email = "neighbour@example.com";
    let registered = post(&app, "/register", Some((email, PASSWORD))).await;
    assert!(registered.status().is_success(), "{}", registered.status());

    for i in 0..2 {
        let sprayed = format!("sprayed{i}@example.com");
        let res = post_forwarded(&app, "/login", &sprayed, "203.0.113.5").await;
        assert_eq!(res.status(), 401);
    }
    let res = post_forwarded(&app, "/login", email, "203.0.113.5").await;
    assert_eq!(res.status(), 429);
    let res = post_forwarded(&app, "/login", email, "6.6.6.6, 203.0.113.5").await;
    assert_eq!(res.status(), 429);
    // Another client behind the same proxy is not affected.
    let res = post_forwarded(&app, "/login", email, "203.0.113.6").await;
    assert_eq!(res.status(), 200);
}

/// Attack: large bodies on endpoints that need none (auth would read up to 2 MB each).
#[tokio::test]
async fn oversized_bodies_on_login_and_register_get_413() {
    let app = TestApp::spawn_with(Options {
        with_auth: true,
        ..Options::default()
    })
    .await;
    for path in ["/login", "/register"] {
        let res = app
            .http
            .post(format!("{}{path}", app.base))
            .basic_auth("big@example.com", Some(PASSWORD))
            .body(vec![b'x'; 2 * 1024 * 1024])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 413, "{path}");
        let body: Value = res.json().await.unwrap();
        let message = body["error"].as_str().unwrap();
        assert!(message.contains("at most 1024 bytes"), "{path}: {message}");
    }
    // Nothing was registered.
    let res = post(&app, "/login", Some(("big@example.com", PASSWORD))).await;
    assert_eq!(res.status(), 401);
}
