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
