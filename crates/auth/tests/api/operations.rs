use std::time::Duration;

use crate::helpers::{spawn_app, test_env, TestDb, JWT_SECRET};

#[tokio::test]
async fn healthz_and_readyz_answer_200_with_postgres_up() {
    let app = spawn_app().await;

    let health = app.get("/healthz").await;
    assert_eq!(health.status(), 200);

    let ready = app.get("/readyz").await;
    assert_eq!(ready.status(), 200);
    let body: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(body["status"], "ready");
}

#[tokio::test]
async fn metrics_count_logins_by_outcome_and_requests_by_route() {
    let app = spawn_app().await;
    let email = crate::helpers::email();
    app.token_for(&email, "correct horse").await;
    assert_eq!(app.login(&email, "wrong horse").await.status(), 401);

    let response = app.get("/metrics").await;
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    for expected in [
        r#"auth_logins_total{outcome="success"}"#,
        r#"auth_logins_total{outcome="invalid_credentials"}"#,
        r#"http_requests_total{method="POST",route="/login",status="200"}"#,
        r#"http_requests_total{method="POST",route="/register",status="201"}"#,
        "http_request_duration_seconds_bucket",
    ] {
        assert!(text.contains(expected), "missing {expected} in:\n{text}");
    }
}

#[tokio::test]
async fn openapi_document_is_the_routers_and_every_documented_operation_is_served() {
    let app = spawn_app().await;

    let response = app.get("/openapi.json").await;

    assert_eq!(response.status(), 200);
    let served: serde_json::Value = response.json().await.unwrap();
    let built = serde_json::to_value(auth::routes::openapi()).unwrap();
    assert_eq!(served, built);
    // The list comes from the router; each entry must answer as a route, not as the fallback.
    let paths = served["paths"].as_object().expect("paths");
    let mut operations = Vec::new();
    for (path, item) in paths {
        for method in item.as_object().unwrap().keys() {
            operations.push(format!("{method} {path}"));
            let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let answer = app
                .client
                .request(method, format!("{}{path}", app.address))
                .send()
                .await
                .unwrap();
            assert!(
                ![404, 405].contains(&answer.status().as_u16()),
                "{path}: {}",
                answer.status()
            );
        }
    }
    operations.sort();
    assert_eq!(
        operations,
        [
            "get /readyz",
            "post /login",
            "post /register",
            "post /validate"
        ]
    );
}

#[tokio::test]
async fn openapi_document_describes_security_errors_and_claims() {
    let app = spawn_app().await;
    let doc: serde_json::Value = app.get("/openapi.json").await.json().await.unwrap();

    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["basic"]["scheme"], "basic");
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    for (path, scheme) in [
        ("/login", "basic"),
        ("/register", "basic"),
        ("/validate", "bearer"),
    ] {
        let security = &doc["paths"][path]["post"]["security"];
        assert!(security[0][scheme].is_array(), "{path}: {security}");
    }
    let login = &doc["paths"]["/login"]["post"]["responses"];
    assert!(login["429"]["headers"]["Retry-After"].is_object());
    assert!(login["200"]["content"]["text/plain"].is_object());
    assert_eq!(
        doc["components"]["schemas"]["ReadyState"]["enum"],
        serde_json::json!(["ready", "not ready"])
    );
    let error = &doc["components"]["schemas"]["ErrorBody"];
    assert_eq!(error["required"], serde_json::json!(["error"]));
    // The claims schema is the shared claims type's.
    let claims = &doc["components"]["schemas"]["Claims"];
    let mut required: Vec<&str> = claims["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    required.sort();
    assert_eq!(required, ["admin", "exp", "iat", "username"]);
}

#[tokio::test]
async fn unknown_paths_and_wrong_methods_answer_json_errors() {
    let app = spawn_app().await;

    let missing = app.get("/nope").await;
    assert_eq!(missing.status(), 404);
    assert!(crate::helpers::error_message(missing)
        .await
        .contains("not found"));

    let wrong_method = app.get("/login").await;
    assert_eq!(wrong_method.status(), 405);
    assert!(crate::helpers::error_message(wrong_method)
        .await
        .contains("method not allowed"));
}

#[tokio::test]
async fn every_response_carries_a_request_id() {
    let app = spawn_app().await;
    let response = app
        .post("/login", None, &[("x-request-id", "trace-me")])
        .await;
    assert_eq!(response.headers()["x-request-id"], "trace-me");
}

/// A TCP port nothing listens on: bound, then released.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[tokio::test]
async fn with_postgres_down_the_service_starts_alive_but_not_ready() {
    let url = format!("postgres://postgres@127.0.0.1:{}/authdb", closed_port());
    let config = auth::Config::from_env(&test_env(&url, &[])).unwrap();
    let app = auth::Application::build(config)
        .await
        .expect("starts without postgres");
    let address = format!("http://127.0.0.1:{}", app.port());
    let server = tokio::spawn(app.run_until_stopped());
    let client = reqwest::Client::new();

    let health = client
        .get(format!("{address}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);

    let ready = client
        .get(format!("{address}/readyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);
    let body: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(body["status"], "not ready");
    assert!(body["error"].as_str().unwrap().contains("postgres"));

    // A login cannot be checked: 503 with a JSON error, not a 500 or a hang.
    let login = client
        .post(format!("{address}/login"))
        .basic_auth("a@example.com", Some("whatever1"))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 503);
    let body: serde_json::Value = login.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("database"));
    server.abort();
}

#[tokio::test]
async fn becomes_ready_and_sets_up_the_table_once_the_database_appears() {
    // The server answers but the database does not exist yet (e.g. still being initialised).
    let db = TestDb::not_created();
    let config = auth::Config::from_env(&test_env(&db.url, &[])).unwrap();
    let app = auth::Application::build(config).await.expect("starts");
    let address = format!("http://127.0.0.1:{}", app.port());
    let server = tokio::spawn(app.run_until_stopped());
    let client = reqwest::Client::new();
    let ready = client
        .get(format!("{address}/readyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);
    let early = client
        .post(format!("{address}/register"))
        .basic_auth("early@example.com", Some("long enough"))
        .send()
        .await
        .unwrap();
    assert_eq!(early.status(), 503);
    let body: serde_json::Value = early.json().await.unwrap();
    assert!(body["error"]
        .as_str()
        .unwrap()
        .starts_with("service unavailable"));

    db.create_now().await;

    let mut status = 0;
    for _ in 0..120 {
        status = client
            .get(format!("{address}/readyz"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16();
        if status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(status, 200, "never became ready");
    let registered = client
        .post(format!("{address}/register"))
        .basic_auth("late@example.com", Some("long enough"))
        .send()
        .await
        .unwrap();
    assert_eq!(registered.status(), 201);
    server.abort();
}

#[test]
fn print_config_keys_lists_the_variables_read_without_reading_them() {
    // No variable at all: auth could not start (JWT_SECRET is required), yet it answers.
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_auth"))
        .arg("--print-config-keys")
        .env_clear()
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert_eq!(stdout.lines().collect::<Vec<_>>(), auth::Config::keys());
    assert!(stdout.lines().any(|key| key == "JWT_SECRET"), "{stdout}");
}

#[tokio::test]
async fn missing_jwt_secret_refuses_to_start_naming_it() {
    // The library says which variable...
    let env = [("DATABASE_URL", "postgres://postgres@127.0.0.1/x")];
    let error = auth::Config::from_env(&env).unwrap_err().to_string();
    assert!(error.contains("JWT_SECRET"), "{error}");

    // ...and the binary exits non-zero with that message.
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_auth"))
        .env_clear()
        .env("DATABASE_URL", "postgres://postgres@127.0.0.1/x")
        .env("AUTH_ADDR", "127.0.0.1:0")
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    let logs = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(logs.contains("JWT_SECRET"), "{logs}");
}

#[tokio::test]
async fn a_short_or_placeholder_jwt_secret_refuses_to_start() {
    // The placeholder the compose file and the k8s Secrets used to ship, and a short one.
    for secret in ["change-me-to-a-long-random-string", "s3cret"] {
        let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_auth"))
            .env_clear()
            .env("DATABASE_URL", "postgres://postgres@127.0.0.1/x")
            .env("AUTH_ADDR", "127.0.0.1:0")
            .env("JWT_SECRET", secret)
            .output()
            .await
            .unwrap();
        assert!(!output.status.success(), "{secret}");
        let logs = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(
            logs.contains("JWT_SECRET") && logs.contains("openssl rand -hex 32"),
            "{logs}"
        );
        assert!(!logs.contains(secret), "the secret was logged: {logs}");
    }
}

#[tokio::test]
async fn the_binary_serves_and_stops_cleanly_on_sigterm() {
    use tokio::io::{AsyncBufReadExt, BufReader};

    let db = TestDb::create().await;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_auth"))
        .env_clear()
        .env("DATABASE_URL", &db.url)
        .env("JWT_SECRET", JWT_SECRET)
        .env("AUTH_ADDR", "127.0.0.1:0")
        .env("LOG_FORMAT", "json")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut port = None;
    while let Some(line) = lines.next_line().await.unwrap() {
        let Ok(event) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        if event["message"] == "auth listening" {
            port = event["port"].as_u64();
            break;
        }
    }
    let port = port.expect("the binary logged its port");
    // Keep reading the logs so the pipe never fills.
    let drain = tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });

    let client = reqwest::Client::new();
    let ready = client
        .get(format!("http://127.0.0.1:{port}/readyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);

    let pid = child.id().unwrap().to_string();
    let killed = tokio::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .unwrap();
    assert!(killed.success());
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("stopped after SIGTERM")
        .unwrap();
    assert!(status.success(), "{status:?}");
    drain.abort();
}
