use serde_json::Value;

use crate::helpers::{closed_port, Options, TestApp};

#[tokio::test]
async fn healthz_and_openapi_on_the_public_port_metrics_on_the_admin_port() {
    let app = TestApp::spawn().await;
    let res = app
        .http
        .get(format!("{}/healthz", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);

    let res = app
        .http
        .get(format!("{}/openapi.json", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let doc: Value = res.json().await.unwrap();
    for path in [
        "/login",
        "/register",
        "/upload",
        "/status",
        "/download",
        "/events",
        "/jobs",
        "/jobs/{video_fid}",
    ] {
        assert!(
            doc["paths"][path].is_object(),
            "{path} missing from OpenAPI"
        );
    }
    for path in ["/readyz", "/metrics", "/healthz"] {
        assert!(doc["paths"][path].is_null(), "{path} in the public OpenAPI");
    }

    let text = app
        .http
        .get(format!("{}/metrics", app.admin))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains(r#"http_requests_total{method="GET",route="/healthz",status="200"}"#),
        "{text}"
    );
    // Scrapes are not counted as API traffic.
    assert!(!text.contains(r#"route="/metrics""#), "{text}");

    let res = app
        .http
        .get(format!("{}/healthz", app.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["status"], "ok");
}

#[tokio::test]
async fn the_public_port_answers_404_json_for_metrics_and_readyz() {
    let app = TestApp::spawn().await;
    for path in ["/metrics", "/readyz"] {
        let res = app
            .http
            .get(format!("{}{path}", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 404, "{path}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(
            body["error"],
            format!("no such endpoint: {path}").as_str(),
            "{path}"
        );
    }
    // The admin port serves nothing of the API.
    let res = app
        .http
        .post(format!("{}/login", app.admin))
        .basic_auth("a@b.c", Some("pw"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], "no such endpoint: /login");
}

#[tokio::test]
async fn readyz_is_ready_when_mongo_rabbitmq_and_auth_answer() {
    let app = TestApp::spawn_with(Options {
        with_auth: true,
        ..Options::default()
    })
    .await;
    let res = app
        .http
        .get(format!("{}/readyz", app.admin))
        .send()
        .await
        .unwrap();
    let status = res.status();
    let body: Value = res.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "ready");
    assert_eq!(body["mongodb"], "ok");
    assert_eq!(body["rabbitmq"], "ok");
    assert_eq!(body["auth"], "ok");
}

#[tokio::test]
async fn the_gateway_starts_without_its_dependencies_and_readyz_says_which_is_missing() {
    let app = TestApp::spawn_with(Options {
        mongodb_uri: Some(format!(
            "mongodb://127.0.0.1:{}/?directConnection=true",
            closed_port()
        )),
        rabbitmq_url: Some(format!(
            "amqp://guest:guest@127.0.0.1:{}/%2f",
            closed_port()
        )),
        ..Options::default()
    })
    .await;
    let res = app
        .http
        .get(format!("{}/healthz", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);

    let res = app
        .http
        .get(format!("{}/readyz", app.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 503);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["status"], "not ready");
    for dep in ["mongodb", "rabbitmq", "auth"] {
        assert!(
            body[dep].as_str().unwrap().starts_with("not ready"),
            "{dep}: {body}"
        );
    }

    // With MongoDB away, requests that need it answer 503 rather than hang or 500.
    let res = app
        .get_as("a@b.c", "/status?fid=65f1c0ffee0123456789abcd")
        .await;
    assert_eq!(res.status(), 503);
}
