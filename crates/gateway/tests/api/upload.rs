use std::process::Command;

use common::jwt::JwtKeys;
use mongodb::bson::{doc, oid::ObjectId};
use serde_json::{json, Value};

use crate::helpers::{closed_port, streamed_form, test_bytes, Form, Options, TestApp};

const USER: &str = "alice@example.com";

#[tokio::test]
async fn upload_stores_the_bytes_creates_a_job_and_queues_the_exact_message() {
    let app = TestApp::spawn().await;
    // Not a multiple of the 255 KiB chunk size, so the last chunk is partial.
    let data = test_bytes(700_001, 1);

    let before = unix_secs();
    let res = app
        .upload_as(
            USER,
            Form::new().file("file", "My clip.mp4", "video/mp4", &data),
        )
        .await;
    let after = unix_secs();

    assert_eq!(res.status(), 200);
    let request_id = res.headers()["x-request-id"].to_str().unwrap().to_owned();
    let body: Value = res.json().await.unwrap();
    let fid = body["video_fid"].as_str().unwrap().to_owned();
    assert_eq!(body, json!({ "status": "success", "video_fid": fid }));
    let id = ObjectId::parse_str(&fid).unwrap();

    assert_eq!(app.stored_video(id).await, data);
    let file = app.video_file_doc(id).await.unwrap();
    assert_eq!(file.get_str("filename").unwrap(), "My clip.mp4");
    assert_eq!(
        file.get_document("metadata").unwrap(),
        &doc! { "owner": USER, "filename": "My clip.mp4", "content_type": "video/mp4" }
    );

    let job = app.job(id).await.unwrap();
    assert_eq!(job.get_str("state").unwrap(), "queued");
    assert_eq!(job.get_str("owner").unwrap(), USER);
    assert_eq!(job.get_str("filename").unwrap(), "My clip.mp4");
    assert_eq!(job.get_i64("size").unwrap(), 700_001);
    assert_eq!(
        job.get_document("quality").unwrap(),
        &doc! { "cbr": { "bitrate_kbps": 128_i64 } }
    );

    let (payload, properties) = app.next_message().await.expect("a message on the queue");
    let message: Value = serde_json::from_slice(&payload).unwrap();
    assert_eq!(
        message,
        json!({ "video_fid": fid, "mp3_fid": null, "username": USER })
    );
    assert_eq!(*properties.delivery_mode(), Some(2));
    assert_eq!(
        properties.content_type().as_ref().map(|c| c.as_str()),
        Some("application/json")
    );
    // The publish time, which RabbitMQ exports as the queue head's age for the alerting rules.
    let stamp = properties.timestamp().expect("an AMQP timestamp");
    assert!(
        (before..=after).contains(&stamp),
        "{before} <= {stamp} <= {after}"
    );
    // The upload's request id and a W3C traceparent whose trace id is that id's hex digits:
    // the converter logs the job under both.
    let headers = properties.headers().as_ref().expect("AMQP headers").inner();
    let header = |name: &str| match headers.get(name) {
        Some(lapin::types::AMQPValue::LongString(s)) => s.to_string(),
        other => panic!("{name}: {other:?}"),
    };
    assert_eq!(header("x-request-id"), request_id);
    let traceparent = header("traceparent");
    let (trace_id, _) = common::trace_context::parse_traceparent(&traceparent).expect("valid");
    assert_eq!(trace_id, request_id.replace('-', ""));
    assert_eq!(app.queued_messages().await, 0, "exactly one message");
}

fn unix_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[tokio::test]
async fn quality_options_are_read_before_or_after_the_file() {
    let app = TestApp::spawn().await;
    let data = test_bytes(1000, 2);

    let res = app
        .upload_as(
            USER,
            Form::new()
                .text("bitrate", "192")
                .file("file", "a.mp4", "video/mp4", &data),
        )
        .await;
    assert_eq!(res.status(), 200);
    let fid: Value = res.json().await.unwrap();
    let job = app
        .job(ObjectId::parse_str(fid["video_fid"].as_str().unwrap()).unwrap())
        .await
        .unwrap();
    assert_eq!(
        job.get_document("quality").unwrap(),
        &doc! { "cbr": { "bitrate_kbps": 192_i64 } }
    );

    let res = app
        .upload_as(
            USER,
            Form::new()
                .file("file", "b.mp4", "video/mp4", &data)
                .text("vbr_quality", "2"),
        )
        .await;
    assert_eq!(res.status(), 200);
    let fid: Value = res.json().await.unwrap();
    let job = app
        .job(ObjectId::parse_str(fid["video_fid"].as_str().unwrap()).unwrap())
        .await
        .unwrap();
    assert_eq!(
        job.get_document("quality").unwrap(),
        &doc! { "vbr": { "quality": 2_i32 } }
    );
}

async fn assert_refused(app: &TestApp, form: Form, status: u16, says: &str) {
    let res = app.upload_as(USER, form).await;
    assert_eq!(res.status(), status);
    let body: Value = res.json().await.unwrap();
    let error = body["error"].as_str().unwrap();
    assert!(error.contains(says), "{error:?} should say {says:?}");
    assert_eq!(app.video_counts().await, (0, 0), "nothing stored");
    assert_eq!(app.job_count().await, 0, "no job");
}

#[tokio::test]
async fn bad_forms_are_refused_with_400_saying_why_and_nothing_is_kept() {
    let app = TestApp::spawn().await;
    let data = test_bytes(300_000, 3);

    assert_refused(&app, Form::new().text("other", "x"), 400, "no file").await;
    assert_refused(
        &app,
        Form::new().file("file", "a.mp4", "video/mp4", &data).file(
            "file",
            "b.mp4",
            "video/mp4",
            &data,
        ),
        400,
        "more than one file",
    )
    .await;
    assert_refused(
        &app,
        Form::new().file("file", "a.mp4", "video/mp4", b""),
        400,
        "empty",
    )
    .await;
    assert_refused(
        &app,
        Form::new()
            .file("file", "a.mp4", "video/mp4", &data)
            .text("bitrate", "100"),
        400,
        "bitrate must be one of",
    )
    .await;
    assert_refused(
        &app,
        Form::new()
            .text("vbr_quality", "10")
            .file("file", "a.mp4", "video/mp4", &data),
        400,
        "VBR quality",
    )
    .await;
    assert_refused(
        &app,
        Form::new()
            .text("bitrate", "loud")
            .file("file", "a.mp4", "video/mp4", &data),
        400,
        "bitrate must be a number",
    )
    .await;
    assert_refused(
        &app,
        Form::new()
            .text("bitrate", "128")
            .text("vbr_quality", "2")
            .file("file", "a.mp4", "video/mp4", &data),
        400,
        "not both",
    )
    .await;

    // Not multipart at all.
    let res = app
        .http
        .post(format!("{}/upload", app.base))
        .header("authorization", app.bearer(USER))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let body: Value = res.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("multipart"));
    assert_eq!(app.queued_messages().await, 0);
}

#[tokio::test]
async fn oversized_uploads_get_413_and_leave_no_chunks() {
    let max = 1024 * 1024;
    let app = TestApp::spawn_with(Options {
        max_upload_bytes: Some(max),
        ..Options::default()
    })
    .await;

    // Announced by Content-Length: refused before reading.
    let big = test_bytes(3 * 1024 * 1024, 4);
    assert_refused(
        &app,
        Form::new().file("file", "big.mp4", "video/mp4", &big),
        413,
        "larger than the limit",
    )
    .await;

    // Chunked (no Content-Length): refused while streaming, after chunks were written.
    let (content_type, stream) = streamed_form("big.mp4", max + 1);
    let res = app
        .http
        .post(format!("{}/upload", app.base))
        .header("authorization", app.bearer(USER))
        .header("content-type", content_type)
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 413);
    let body: Value = res.json().await.unwrap();
    assert!(body["error"]
        .as_str()
        .unwrap()
        .contains("larger than the limit"));
    assert_eq!(app.video_counts().await, (0, 0));
    assert_eq!(app.job_count().await, 0);

    // Exactly the limit is fine.
    let (content_type, stream) = streamed_form("fits.mp4", max);
    let res = app
        .http
        .post(format!("{}/upload", app.base))
        .header("authorization", app.bearer(USER))
        .header("content-type", content_type)
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(app.video_counts().await.0, 1);
}

#[tokio::test]
async fn uploads_without_a_valid_token_get_401() {
    let app = TestApp::spawn().await;
    let form = || Form::new().file("file", "a.mp4", "video/mp4", b"data");
    let expired = app
        .keys
        .sign(&JwtKeys::claims_for(
            USER,
            common::jwt::now_unix() - 2 * 86_400,
        ))
        .unwrap();
    let other_secret = JwtKeys::new(b"not the secret").issue(USER).unwrap();
    let alg_none = {
        use base64::Engine as _;
        let b64 = |d: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(d);
        let claims =
            serde_json::to_vec(&JwtKeys::claims_for(USER, common::jwt::now_unix())).unwrap();
        format!(
            "{}.{}.",
            b64(br#"{"alg":"none","typ":"JWT"}"#),
            b64(&claims)
        )
    };
    for header in [
        None,
        Some("Bearer".to_owned()),
        Some("Basic YTpi".to_owned()),
        Some(format!("Bearer {expired}")),
        Some(format!("Bearer {other_secret}")),
        Some(format!("Bearer {alg_none}")),
        Some("Bearer not.a.jwt".to_owned()),
    ] {
        let form = form();
        let mut req = app
            .http
            .post(format!("{}/upload", app.base))
            .header("content-type", form.content_type())
            .body(form.into_bytes());
        if let Some(h) = &header {
            req = req.header("authorization", h);
        }
        let res = req.send().await.unwrap();
        assert_eq!(res.status(), 401, "{header:?}");
        let body: Value = res.json().await.unwrap();
        assert!(body["error"].is_string(), "{header:?}");
    }
    assert_eq!(app.video_counts().await, (0, 0));
}

#[tokio::test]
async fn broker_unreachable_gives_503_and_removes_the_file_and_job() {
    let app = TestApp::spawn_with(Options {
        rabbitmq_url: Some(format!(
            "amqp://guest:guest@127.0.0.1:{}/%2f",
            closed_port()
        )),
        ..Options::default()
    })
    .await;
    assert_refused(
        &app,
        Form::new().file("file", "a.mp4", "video/mp4", &test_bytes(600_000, 5)),
        503,
        "conversion queue is unavailable",
    )
    .await;
}

fn rabbitmqctl(args: &[&str]) {
    let out = Command::new("rabbitmqctl")
        .args(args)
        .output()
        .expect("rabbitmqctl runs");
    assert!(
        out.status.success(),
        "rabbitmqctl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn a_publish_the_broker_nacks_gives_503_and_removes_the_file_and_job() {
    let app = TestApp::spawn().await;
    // A policy for this test's queue only: no room, and refuse (nack) new messages.
    let policy = format!("nack-{}", app.queue);
    rabbitmqctl(&[
        "set_policy",
        "--apply-to",
        "queues",
        &policy,
        &format!("^{}$", app.queue),
        r#"{"max-length":0,"overflow":"reject-publish"}"#,
    ]);
    // Policies reach the queue asynchronously.
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let res = app
        .upload_as(
            USER,
            Form::new().file("file", "a.mp4", "video/mp4", &test_bytes(600_000, 6)),
        )
        .await;
    rabbitmqctl(&["clear_policy", &policy]);

    assert_eq!(res.status(), 503);
    let body: Value = res.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("conversion queue"));
    assert_eq!(app.video_counts().await, (0, 0));
    assert_eq!(app.job_count().await, 0);
}

#[tokio::test]
async fn publishing_recovers_after_the_broker_drops_the_connection() {
    let app = TestApp::spawn().await;
    app.upload_file(USER, "one.mp4", b"first").await;
    assert!(app.next_message().await.is_some());

    // Close the gateway's connection from the broker's side, as a broker restart does.
    let name = format!("gateway:{}", app.queue);
    let out = Command::new("rabbitmqctl")
        .args(["list_connections", "-q", "pid", "client_properties"])
        .output()
        .unwrap();
    let listing = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let conn = listing
        .lines()
        .find(|l| l.contains(&format!("{{\"connection_name\",\"{name}\"}}")))
        .and_then(|l| l.split('\t').next())
        .unwrap_or_else(|| panic!("connection {name} not in {listing}"))
        .to_owned();
    rabbitmqctl(&["close_connection", &conn, "test: broker restart"]);

    let fid = app.upload_file(USER, "two.mp4", b"second").await;
    let (payload, _) = app
        .next_message()
        .await
        .expect("published after reconnecting");
    let message: Value = serde_json::from_slice(&payload).unwrap();
    assert_eq!(message["video_fid"], fid.to_hex());
}
