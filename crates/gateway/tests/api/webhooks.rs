//! Webhooks end to end: a real receiver (axum on 127.0.0.1, reached through the allow-list)
//! checks the signature and timestamp; retries, giving up, refusals, several replicas and a
//! restart between two attempts.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode},
    routing::post,
    Router,
};
use hmac::{Hmac, Mac};
use mongodb::bson::{doc, oid::ObjectId, Document};
use serde_json::Value;
use sha2::Sha256;

use crate::helpers::{video_bytes, Form, Options, TestApp};

const USER: &str = "hooks@example.com";
const SECRET: &str = "webhook-secret-0123456789abcdef-0123456789";

/// One request the receiver got.
#[derive(Clone, Debug)]
struct Received {
    headers: HeaderMap,
    body: Bytes,
}

/// An HTTP server on 127.0.0.1 that records every POST and answers the given statuses in order
/// (the last one again once they run out).
struct Receiver {
    url: String,
    received: Arc<Mutex<Vec<Received>>>,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Clone)]
struct ReceiverState {
    received: Arc<Mutex<Vec<Received>>>,
    answers: Arc<Vec<u16>>,
}

async fn record(State(state): State<ReceiverState>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let mut received = state.received.lock().unwrap();
    received.push(Received { headers, body });
    let n = received.len();
    let status = state.answers[(n - 1).min(state.answers.len() - 1)];
    StatusCode::from_u16(status).unwrap()
}

impl Receiver {
    async fn start(answers: &[u16]) -> Receiver {
        let received = Arc::new(Mutex::new(Vec::new()));
        let state = ReceiverState {
            received: received.clone(),
            answers: Arc::new(answers.to_vec()),
        };
        let router = Router::new().route("/hook", post(record)).with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!(
            "http://127.0.0.1:{}/hook",
            listener.local_addr().unwrap().port()
        );
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Receiver {
            url,
            received,
            task,
        }
    }

    fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// Waits (bounded) until `n` requests arrived.
    async fn wait_for(&self, n: usize) -> Vec<Received> {
        for _ in 0..300 {
            if self.received().len() >= n {
                return self.received();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("expected {n} requests, got {}", self.received().len());
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What a receiver must do: recompute the HMAC over "<timestamp>.<body>", compare it in constant
/// time, and refuse a timestamp far from now.
fn verify(secret: &str, received: &Received) -> Result<Value, String> {
    let timestamp = received
        .headers
        .get("x-vidconv-timestamp")
        .and_then(|v| v.to_str().ok())
        .ok_or("no timestamp")?;
    let signature = received
        .headers
        .get("x-vidconv-signature")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("sha256="))
        .ok_or("no signature")?;
    let when: i64 = timestamp.parse().map_err(|_| "timestamp is not a number")?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    if (now - when).abs() > 300 {
        return Err(format!(
            "timestamp {when} is more than 5 minutes from {now}"
        ));
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(&received.body);
    let expected = hex::decode(signature).map_err(|_| "signature is not hex")?;
    mac.verify_slice(&expected)
        .map_err(|_| "signature does not match".to_owned())?;
    serde_json::from_slice(&received.body).map_err(|e| e.to_string())
}

fn webhook_env(extra: &[(&'static str, &str)]) -> Options {
    let mut env = vec![
        ("WEBHOOK_SECRET", SECRET.to_owned()),
        ("WEBHOOK_ALLOWED_HOSTS", "127.0.0.1".to_owned()),
        ("WEBHOOK_RETRY_BASE_MS", "200".to_owned()),
    ];
    for (k, v) in extra {
        env.retain(|(name, _)| name != k);
        env.push((k, (*v).to_owned()));
    }
    Options {
        env,
        ..Options::default()
    }
}

/// Uploads a small "video" to `base` asking for `callback_url`; the answer.
async fn upload_with_callback(app: &TestApp, base: &str, callback: &str) -> reqwest::Response {
    let form = Form::new().text("callback_url", callback).file(
        "file",
        "lecture.mp4",
        "video/mp4",
        &video_bytes(b"not really a video"),
    );
    app.http
        .post(format!("{base}/upload"))
        .header("authorization", app.bearer(USER))
        .header("content-type", form.content_type())
        .body(form.into_bytes())
        .send()
        .await
        .unwrap()
}

async fn video_fid(res: reqwest::Response) -> ObjectId {
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    let body: Value = res.json().await.unwrap();
    ObjectId::parse_str(body["video_fid"].as_str().unwrap()).unwrap()
}

/// The job's `webhook` sub-document once `done` says so (bounded wait).
async fn wait_webhook(app: &TestApp, id: ObjectId, done: impl Fn(&Document) -> bool) -> Document {
    for _ in 0..300 {
        if let Some(hook) = app
            .job(id)
            .await
            .and_then(|job| job.get_document("webhook").ok().cloned())
        {
            if done(&hook) {
                return hook;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "the webhook of {id} did not reach the expected state: {:?}",
        app.job(id).await
    );
}

fn attempts(hook: &Document) -> i64 {
    hook.get_i32("attempts")
        .map(i64::from)
        .or_else(|_| hook.get_i64("attempts"))
        .unwrap()
}

#[tokio::test]
async fn a_completed_job_is_posted_once_signed_even_with_two_replicas() {
    let app = TestApp::spawn_with(webhook_env(&[])).await;
    let (_replica, replica) = app.spawn_replica().await;
    let receiver = Receiver::start(&[200]).await;

    let id = video_fid(upload_with_callback(&app, &app.base, &receiver.url).await).await;
    let hook = app
        .job(id)
        .await
        .unwrap()
        .get_document("webhook")
        .unwrap()
        .clone();
    assert_eq!(hook.get_str("status").unwrap(), "pending");
    assert_eq!(hook.get_str("url").unwrap(), receiver.url);
    // Nothing is sent before the job ends.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(receiver.received().is_empty());

    let mp3 = app
        .store_mp3(id, Some(USER), "lecture.mp3", b"ID3 mp3 bytes")
        .await;
    app.update_job(id, doc! { "duration_secs": 61.5 }).await;
    let got = receiver.wait_for(1).await;
    let payload = verify(SECRET, &got[0]).unwrap();
    assert_eq!(payload["event"], "job.completed");
    assert_eq!(payload["video_fid"], id.to_hex());
    assert_eq!(payload["status"], "completed");
    assert_eq!(payload["mp3_fid"], mp3.to_hex());
    assert_eq!(payload["filename"], "lecture.mp4");
    assert!(payload.get("error").is_none(), "{payload}");
    assert!(payload["created_at"].as_str().unwrap().ends_with('Z'));
    assert!(payload["finished_at"].as_str().is_some());
    assert_eq!(got[0].headers["content-type"], "application/json");
    assert_eq!(got[0].headers["x-vidconv-delivery"], id.to_hex());
    assert_eq!(got[0].headers["x-vidconv-attempt"], "1");
    // A signature made with another key, or over another body, does not verify.
    assert!(verify("another-secret-0123456789abcdef-0123456789", &got[0]).is_err());
    let mut tampered = got[0].clone();
    tampered.body =
        Bytes::from(String::from_utf8_lossy(&tampered.body).replace("completed", "failed"));
    assert!(verify(SECRET, &tampered).is_err());

    let hook = wait_webhook(&app, id, |h| h.get_str("status") == Ok("delivered")).await;
    assert_eq!(attempts(&hook), 1);
    assert!(hook.get_datetime("delivered_at").is_ok());
    // Two dispatchers looked for due deliveries: still exactly one request.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(receiver.received().len(), 1);
    replica.abort();
}

#[tokio::test]
async fn a_failed_job_is_retried_until_the_receiver_accepts_it() {
    let app = TestApp::spawn_with(webhook_env(&[])).await;
    let receiver = Receiver::start(&[500, 500, 200]).await;
    let id = video_fid(upload_with_callback(&app, &app.base, &receiver.url).await).await;
    app.update_job(
        id,
        doc! { "state": "failed", "error": "the file has no audio track" },
    )
    .await;

    let got = receiver.wait_for(3).await;
    for (n, request) in got.iter().enumerate() {
        let payload = verify(SECRET, request).unwrap();
        assert_eq!(payload["event"], "job.failed");
        assert_eq!(payload["status"], "failed");
        assert_eq!(payload["error"], "the file has no audio track");
        assert!(payload.get("mp3_fid").is_none());
        assert_eq!(request.headers["x-vidconv-attempt"], (n + 1).to_string());
    }
    let hook = wait_webhook(&app, id, |h| h.get_str("status") == Ok("delivered")).await;
    assert_eq!(attempts(&hook), 3);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        receiver.received().len(),
        3,
        "nothing after the accepted attempt"
    );
}

#[tokio::test]
async fn a_receiver_that_always_fails_is_given_up_after_the_last_attempt() {
    let app = TestApp::spawn_with(webhook_env(&[("WEBHOOK_MAX_ATTEMPTS", "3")])).await;
    let receiver = Receiver::start(&[503]).await;
    let id = video_fid(upload_with_callback(&app, &app.base, &receiver.url).await).await;
    app.store_mp3(id, Some(USER), "lecture.mp3", b"mp3").await;

    let hook = wait_webhook(&app, id, |h| h.get_str("status") == Ok("failed")).await;
    assert_eq!(attempts(&hook), 3);
    let error = hook.get_str("last_error").unwrap();
    assert!(error.contains("503"), "{error}");
    tokio::time::sleep(Duration::from_millis(2000)).await;
    assert_eq!(receiver.received().len(), 3, "no attempt after giving up");

    let metrics = app
        .http
        .get(format!("{}/metrics", app.admin))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(r#"gateway_webhook_attempts_total{outcome="gave_up"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"gateway_webhook_attempts_total{outcome="retry"} 2"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_receiver_that_is_down_counts_as_a_failed_attempt() {
    let app = TestApp::spawn_with(webhook_env(&[("WEBHOOK_MAX_ATTEMPTS", "2")])).await;
    let url = format!("http://127.0.0.1:{}/hook", crate::helpers::closed_port());
    let id = video_fid(upload_with_callback(&app, &app.base, &url).await).await;
    app.store_mp3(id, Some(USER), "lecture.mp3", b"mp3").await;
    let hook = wait_webhook(&app, id, |h| h.get_str("status") == Ok("failed")).await;
    assert_eq!(attempts(&hook), 2);
    let error = hook.get_str("last_error").unwrap();
    assert!(error.contains("connect"), "{error}");
}

#[tokio::test]
async fn private_and_malformed_callbacks_are_refused_and_nothing_is_stored() {
    // A secret, but no allow-list.
    let app = TestApp::spawn_with(webhook_env(&[("WEBHOOK_ALLOWED_HOSTS", "")])).await;
    for url in [
        "http://127.0.0.1:9/hook",
        "http://10.1.2.3/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]:8080/hook",
        "http://localhost:8080/hook",
        "https://192.168.0.10/",
    ] {
        let res = upload_with_callback(&app, &app.base, url).await;
        assert_eq!(res.status(), 400, "{url}");
        let body: Value = res.json().await.unwrap();
        let error = body["error"].as_str().unwrap();
        assert!(
            error.contains("non-public") && error.contains("WEBHOOK_ALLOWED_HOSTS"),
            "{url}: {error}"
        );
    }
    for (url, words) in [
        ("ftp://example.com/hook", "http:// or https://"),
        ("not a url", "not a valid URL"),
        ("https://user:pw@example.com/", "user name or password"),
    ] {
        let res = upload_with_callback(&app, &app.base, url).await;
        assert_eq!(res.status(), 400, "{url}");
        let body: Value = res.json().await.unwrap();
        assert!(
            body["error"].as_str().unwrap().contains(words),
            "{url}: {body}"
        );
    }
    // The callback after the file: refused all the same, and the stored file is removed.
    let form = Form::new()
        .file(
            "file",
            "late.mp4",
            "video/mp4",
            &video_bytes(b"video bytes"),
        )
        .text("callback_url", "http://127.0.0.1/hook");
    let res = app
        .http
        .post(format!("{}/upload", app.base))
        .header("authorization", app.bearer(USER))
        .header("content-type", form.content_type())
        .body(form.into_bytes())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert_eq!(app.video_counts().await, (0, 0));
    assert_eq!(app.job_count().await, 0);
    assert_eq!(app.queued_messages().await, 0);
}

#[tokio::test]
async fn a_callback_is_refused_while_webhooks_are_off() {
    let app = TestApp::spawn().await;
    let res = upload_with_callback(&app, &app.base, "https://example.com/hook").await;
    assert_eq!(res.status(), 400);
    let body: Value = res.json().await.unwrap();
    let error = body["error"].as_str().unwrap();
    assert!(
        error.contains("webhooks are off") && error.contains("WEBHOOK_SECRET"),
        "{error}"
    );
    assert_eq!(app.video_counts().await, (0, 0));
    assert_eq!(app.job_count().await, 0);
}

#[tokio::test]
async fn a_delivery_survives_a_restart_between_two_attempts() {
    let mut options = webhook_env(&[("WEBHOOK_RETRY_BASE_MS", "1500")]);
    options.no_gateway = true;
    let app = TestApp::spawn_with(options).await;
    let receiver = Receiver::start(&[500, 200]).await;

    let (first, first_task) = app.spawn_replica().await;
    let id = video_fid(upload_with_callback(&app, &first, &receiver.url).await).await;
    app.update_job(id, doc! { "state": "failed", "error": "corrupt" })
        .await;
    receiver.wait_for(1).await;
    // The failure is on record (the next attempt scheduled) before the gateway goes away.
    wait_webhook(&app, id, |h| h.get_str("last_error").is_ok()).await;
    first_task.abort();
    let _ = first_task.await;

    let (_second, second_task) = app.spawn_replica().await;
    let got = receiver.wait_for(2).await;
    verify(SECRET, &got[1]).unwrap();
    let hook = wait_webhook(&app, id, |h| h.get_str("status") == Ok("delivered")).await;
    assert_eq!(attempts(&hook), 2);
    second_task.abort();
}

#[tokio::test]
async fn the_address_is_checked_again_when_sending() {
    // Accepted at upload: localhost is allowed then.
    let mut options = webhook_env(&[
        ("WEBHOOK_ALLOWED_HOSTS", "127.0.0.1, ::1"),
        ("WEBHOOK_MAX_ATTEMPTS", "2"),
    ]);
    options.no_gateway = true;
    let app = TestApp::spawn_with(options).await;
    let receiver = Receiver::start(&[200]).await;
    let url = receiver.url.replace("127.0.0.1", "localhost");
    let (first, first_task) = app.spawn_replica().await;
    let id = video_fid(upload_with_callback(&app, &first, &url).await).await;
    first_task.abort();
    let _ = first_task.await;

    // The gateway that sends no longer allows it: as for a name that moved to a private address
    // after the upload (DNS rebinding), the resolver hands the client nothing to connect to.
    let mut env = app.env.clone();
    env.remove("WEBHOOK_ALLOWED_HOSTS");
    let config = gateway::Config::from_env(&env).unwrap();
    let second = gateway::Application::build(config).await.unwrap();
    let second_task = tokio::spawn(async move {
        let _ = second.run_until_stopped().await;
    });
    app.update_job(id, doc! { "state": "failed", "error": "corrupt" })
        .await;
    let hook = wait_webhook(&app, id, |h| h.get_str("status") == Ok("failed")).await;
    assert_eq!(attempts(&hook), 2);
    let error = hook.get_str("last_error").unwrap();
    assert!(
        error.contains("non-public") && error.contains("localhost"),
        "{error}"
    );
    assert!(
        receiver.received().is_empty(),
        "the receiver was never called"
    );
    second_task.abort();
}
