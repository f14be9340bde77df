use std::{
    process::{Command, Stdio},
    time::Duration,
};

use futures::StreamExt;

use crate::helpers::{closed_port, Options, TestApp};

#[tokio::test]
async fn sigterm_ends_open_event_streams_and_the_process_exits() {
    let app = TestApp::spawn_with(Options {
        no_gateway: true,
        ..Options::default()
    })
    .await;
    let port = closed_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_gateway"))
        .env_clear()
        .envs(&app.env)
        .env("GATEWAY_ADDR", format!("127.0.0.1:{port}"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let mut up = false;
    for _ in 0..100 {
        if app.http.get(format!("{base}/healthz")).send().await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(up, "the gateway binary did not come up");

    let video = crate::helpers::video_bytes(b"video");
    let form = crate::helpers::Form::new().file("file", "a.mp4", "video/mp4", &video);
    let res = app
        .http
        .post(format!("{base}/upload"))
        .bearer_auth(app.token("sam@example.com"))
        .header("content-type", form.content_type())
        .body(form.into_bytes())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let fid: serde_json::Value = res.json().await.unwrap();
    let res = app
        .http
        .get(format!(
            "{base}/events?fid={}",
            fid["video_fid"].as_str().unwrap()
        ))
        .bearer_auth(app.token("sam@example.com"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let mut stream = res.bytes_stream();
    assert!(stream.next().await.is_some(), "the first event");

    // The job stays queued (no converter): only the shutdown can end this stream.
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(chunk) = stream.next().await {
            if chunk.is_err() {
                break;
            }
        }
    })
    .await;
    let mut exited = None;
    for _ in 0..100 {
        if let Some(status) = child.try_wait().unwrap() {
            exited = Some(status);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if exited.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    assert!(ended.is_ok(), "the event stream ended on SIGTERM");
    assert!(
        exited.is_some_and(|s| s.success()),
        "the gateway exited cleanly: {exited:?}"
    );
}
