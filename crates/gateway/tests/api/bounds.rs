//! The gateway's bounds against abusive clients: slow headers, idle connections, stalled bodies,
//! too many event streams or uploads, a full quota, absurd pages, unknown routes.

use std::time::Duration;

use futures::StreamExt;
use serde_json::Value;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::helpers::{test_bytes, Form, Options, TestApp};

const USER: &str = "bounded@example.com";
const OTHER: &str = "other@example.com";
/// How long a test waits for something that must happen; never a measured time.
const PATIENCE: Duration = Duration::from_secs(30);

async fn spawn_with_env(env: &[(&'static str, &str)]) -> TestApp {
    TestApp::spawn_with(Options {
        env: env.iter().map(|(k, v)| (*k, (*v).to_owned())).collect(),
        ..Options::default()
    })
    .await
}

async fn connect(app: &TestApp) -> TcpStream {
    TcpStream::connect(app.base.trim_start_matches("http://"))
        .await
        .unwrap()
}

/// Reads until the server closes the connection; what was read. Fails the test if it stays open.
async fn read_until_closed(stream: &mut TcpStream) -> String {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    let closed = tokio::time::timeout(PATIENCE, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the gateway kept the connection open");
    String::from_utf8_lossy(&seen).into_owned()
}

#[tokio::test]
async fn a_client_that_sends_half_a_header_and_stalls_is_disconnected() {
    let app = spawn_with_env(&[
        ("HTTP_HEADER_READ_TIMEOUT_SECS", "1"),
        ("HTTP_IDLE_TIMEOUT_SECS", "600"),
    ])
    .await;
    let mut stream = connect(&app).await;
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: gateway\r\nX-Slow: ")
        .await
        .unwrap();
    let seen = read_until_closed(&mut stream).await;
    assert!(!seen.contains("200 OK"), "{seen}");

    // A client that sends its headers in time is served.
    let mut stream = connect(&app).await;
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: gateway\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let seen = read_until_closed(&mut stream).await;
    assert!(seen.starts_with("HTTP/1.1 200 OK"), "{seen}");
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed() {
    let app = spawn_with_env(&[
        ("HTTP_HEADER_READ_TIMEOUT_SECS", "600"),
        ("HTTP_IDLE_TIMEOUT_SECS", "1"),
    ])
    .await;
    let mut stream = connect(&app).await;
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: gateway\r\n\r\n")
        .await
        .unwrap();
    // The answer comes, then the kept-alive connection sits idle until the gateway closes it.
    let seen = read_until_closed(&mut stream).await;
    assert!(seen.starts_with("HTTP/1.1 200 OK"), "{seen}");
    assert!(seen.contains(r#"{"status":"ok"}"#), "{seen}");
}

#[tokio::test]
async fn a_stalled_upload_body_is_cut_off_and_nothing_is_kept() {
    let app = spawn_with_env(&[("HTTP_IDLE_TIMEOUT_SECS", "1")]).await;
    let form = Form::new().file("file", "clip.mp4", "video/mp4", &test_bytes(600_000, 3));
    let content_type = form.content_type();
    let body = form.into_bytes();
    let mut stream = connect(&app).await;
    let head = format!(
        "POST /upload HTTP/1.1\r\nHost: gateway\r\nAuthorization: {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
        app.bearer(USER),
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    // More than one GridFS chunk, then nothing more.
    stream.write_all(&body[..400_000]).await.unwrap();
    read_until_closed(&mut stream).await;
    let mut left = (1, 1);
    for _ in 0..100 {
        left = app.video_counts().await;
        if left == (0, 0) && app.job_count().await == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        left,
        (0, 0),
        "chunks of the stalled upload were left behind"
    );
    assert_eq!(app.queued_messages().await, 0);
}

async fn open_events(app: &TestApp, email: &str, fid: &str) -> reqwest::Response {
    app.get_as(email, &format!("/events?fid={fid}")).await
}

#[tokio::test]
async fn event_streams_per_user_are_capped_with_a_429_sentence() {
    let app = spawn_with_env(&[("MAX_EVENT_STREAMS_PER_USER", "2")]).await;
    let fid = app.upload_file(USER, "a.mp4", b"video").await.to_hex();
    let other_fid = app.upload_file(OTHER, "b.mp4", b"video").await.to_hex();

    let first = open_events(&app, USER, &fid).await;
    assert_eq!(first.status(), 200);
    let second = open_events(&app, USER, &fid).await;
    assert_eq!(second.status(), 200);
    let third = open_events(&app, USER, &fid).await;
    assert_eq!(third.status(), 429);
    let body: Value = third.json().await.unwrap();
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("2 uploads at once"),
        "{body}"
    );
    // Another user is not affected.
    assert_eq!(open_events(&app, OTHER, &other_fid).await.status(), 200);

    // Closing a stream gives its place back.
    drop(first);
    let mut reopened = false;
    for _ in 0..100 {
        let res = open_events(&app, USER, &fid).await;
        if res.status() == 200 {
            reopened = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(reopened, "a closed stream did not free its place");
    drop(second);
}

#[tokio::test]
async fn an_event_stream_for_a_job_stuck_queued_ends_at_its_lifetime() {
    let app = spawn_with_env(&[("EVENT_STREAM_MAX_SECS", "1")]).await;
    let fid = app.upload_file(USER, "a.mp4", b"video").await.to_hex();
    let res = open_events(&app, USER, &fid).await;
    assert_eq!(res.status(), 200);
    let body = tokio::time::timeout(PATIENCE, async {
        let mut body = String::new();
        let mut stream = res.bytes_stream();
        while let Some(chunk) = stream.next().await {
            body.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
        }
        body
    })
    .await
    .expect("the stream of a job stuck queued never ended");
    // It ended cleanly after telling the current status; the client reconnects.
    assert!(body.contains("event: status"), "{body}");
    assert!(body.contains(r#""state":"queued""#), "{body}");
    assert!(!body.contains("event: error"), "{body}");
}

/// A request body the test feeds piece by piece.
fn channel_body() -> (
    tokio::sync::mpsc::Sender<Result<Vec<u8>, std::io::Error>>,
    reqwest::Body,
) {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    (tx, reqwest::Body::wrap_stream(stream))
}

#[tokio::test]
async fn concurrent_uploads_per_user_are_capped_with_a_429_sentence() {
    let app = spawn_with_env(&[("MAX_UPLOADS_PER_USER", "1")]).await;
    let form = Form::new().file("file", "slow.mp4", "video/mp4", &test_bytes(400_000, 5));
    let content_type = form.content_type();
    let body = form.into_bytes();
    let (tx, request_body) = channel_body();
    let slow = tokio::spawn({
        let request = app
            .http
            .post(format!("{}/upload", app.base))
            .header("authorization", app.bearer(USER))
            .header("content-type", content_type)
            .body(request_body);
        async move { request.send().await.unwrap() }
    });
    // More than a GridFS chunk: once a chunk is stored, the upload is in the handler.
    tx.send(Ok(body[..300_000].to_vec())).await.unwrap();
    let mut started = false;
    for _ in 0..100 {
        if app.video_counts().await.1 > 0 {
            started = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(started, "the first upload never reached GridFS");

    let res = app
        .upload_as(USER, Form::new().file("file", "b.mp4", "video/mp4", b"x"))
        .await;
    assert_eq!(res.status(), 429);
    let refused: Value = res.json().await.unwrap();
    assert!(
        refused["error"]
            .as_str()
            .unwrap()
            .contains("1 uploads at once"),
        "{refused}"
    );
    // Another user uploads meanwhile.
    app.upload_file(OTHER, "c.mp4", b"video").await;

    tx.send(Ok(body[300_000..].to_vec())).await.unwrap();
    drop(tx);
    let first = slow.await.unwrap();
    assert_eq!(first.status(), 200);
    // The place is free again.
    app.upload_file(USER, "d.mp4", b"video").await;
}

#[tokio::test]
async fn the_storage_quota_counts_uploads_and_mp3s_and_refuses_before_storing() {
    let app = spawn_with_env(&[("MAX_USER_STORAGE_BYTES", "10000")]).await;
    let first = app.upload_file(USER, "a.mp4", &test_bytes(4000, 1)).await;
    app.store_mp3(first, Some(USER), "a.mp3", &test_bytes(3000, 2))
        .await;
    // 7000 used: 2500 more fit, 3500 do not.
    app.upload_file(USER, "b.mp4", &test_bytes(2500, 3)).await;
    let before = app.video_counts().await;
    let res = app
        .upload_as(
            USER,
            Form::new().file("file", "c.mp4", "video/mp4", &test_bytes(3500, 4)),
        )
        .await;
    assert_eq!(res.status(), 413);
    let body: Value = res.json().await.unwrap();
    let message = body["error"].as_str().unwrap();
    assert!(message.contains("9500 of your 10000 bytes"), "{message}");
    assert_eq!(
        app.video_counts().await,
        before,
        "the refused file was kept"
    );
    // Someone else's quota is their own.
    app.upload_file(OTHER, "d.mp4", &test_bytes(9000, 5)).await;
    // Deleting frees room.
    let res = app
        .http
        .delete(format!("{}/jobs/{}", app.base, first.to_hex()))
        .header("authorization", app.bearer(USER))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    app.upload_file(USER, "c.mp4", &test_bytes(3500, 4)).await;
}

#[tokio::test]
async fn out_of_range_pages_are_400_with_a_sentence() {
    let app = TestApp::spawn().await;
    for query in [
        "page=9223372036854775807",
        "page=18446744073709551615",
        "page=1000001",
        "page=0",
        "per_page=0",
        "per_page=101",
        "page=-1",
        "page=abc",
    ] {
        let res = app.get_as(USER, &format!("/jobs?{query}")).await;
        assert_eq!(res.status(), 400, "{query}");
        let body: Value = res.json().await.unwrap();
        assert!(body["error"].is_string(), "{query}: {body}");
    }
    let res = app.get_as(USER, "/jobs?page=1000000&per_page=100").await;
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn unknown_routes_and_methods_get_json_errors() {
    let app = TestApp::spawn().await;
    let res = app.get_as(USER, "/nowhere").await;
    assert_eq!(res.status(), 404);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], "no such endpoint: /nowhere");

    for (method, path) in [
        (reqwest::Method::DELETE, "/status"),
        (reqwest::Method::POST, "/jobs"),
        (reqwest::Method::GET, "/upload"),
    ] {
        let res = app
            .http
            .request(method.clone(), format!("{}{path}", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 405, "{method} {path}");
        assert!(res.headers().contains_key("allow"), "{method} {path}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(
            body["error"],
            format!("{path} does not accept {method}"),
            "{method} {path}"
        );
    }
}
