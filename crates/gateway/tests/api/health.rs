use serde_json::Value;

use reqwest::Method;

use crate::helpers::{closed_port, Options, TestApp};

/// The methods the OpenAPI document can give an operation.
const METHODS: [&str; 5] = ["get", "post", "put", "delete", "patch"];

/// Every documented (method, path) of the gateway, with path parameters filled in with a
/// well-formed id; read from the document the router is built from.
fn documented_operations() -> Vec<(Method, String, String)> {
    let doc = serde_json::to_value(gateway::openapi::document()).unwrap();
    let mut operations = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        let concrete = path.replace("{video_fid}", "65f1c0ffee0123456789abcd");
        assert!(
            !concrete.contains('{'),
            "a path parameter to fill in: {path}"
        );
        for method in METHODS {
            if item[method].is_object() {
                let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
                operations.push((method, path.clone(), concrete.clone()));
            }
        }
    }
    operations
}

#[tokio::test]
async fn every_documented_operation_is_routed() {
    let app = TestApp::spawn().await;
    let operations = documented_operations();
    assert!(operations.len() >= 10, "{operations:?}");
    for (method, path, concrete) in operations {
        // Without a token or body: refused by the route (401, 400), never the fallbacks.
        let res = app
            .http
            .request(method.clone(), format!("{}{concrete}", app.base))
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        let body = res.text().await.unwrap();
        assert!(
            status != 404 || !body.contains("no such endpoint"),
            "{method} {path}: {body}"
        );
        assert_ne!(status, 405, "{method} {path}: {body}");
    }
}

#[tokio::test]
async fn every_documented_path_answers_json_405_for_other_methods() {
    let app = TestApp::spawn().await;
    let operations = documented_operations();
    let mut checked = 0;
    let paths: std::collections::BTreeSet<_> = operations
        .iter()
        .map(|(_, path, concrete)| (path.clone(), concrete.clone()))
        .chain([("/openapi.json".to_owned(), "/openapi.json".to_owned())])
        .collect();
    for (path, concrete) in paths {
        for method in METHODS {
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let documented = operations
                .iter()
                .any(|(m, p, _)| *m == method && *p == path)
                || (path == "/openapi.json" && method == Method::GET);
            if documented {
                continue;
            }
            let res = app
                .http
                .request(method.clone(), format!("{}{concrete}", app.base))
                .bearer_auth(app.token("a@b.c"))
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 405, "{method} {path}");
            assert!(res.headers().contains_key("allow"), "{method} {path}");
            let body: Value = res.json().await.unwrap();
            assert_eq!(
                body["error"],
                format!("{concrete} does not accept {method}"),
                "{method} {path}"
            );
            checked += 1;
        }
    }
    assert!(checked >= 20, "{checked}");
}

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
    // The document the router was built from, as the binary prints it.
    assert_eq!(
        doc,
        serde_json::to_value(gateway::openapi::document()).unwrap()
    );
    for path in ["/login", "/upload", "/status", "/jobs/{video_fid}"] {
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
