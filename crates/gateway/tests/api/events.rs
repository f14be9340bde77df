use std::time::Duration;

use futures::StreamExt;
use mongodb::bson::{doc, oid::ObjectId};
use serde_json::{json, Value};

use crate::helpers::TestApp;

const USER: &str = "erin@example.com";
const OTHER: &str = "eve@example.com";

/// Reads Server-Sent Events as (event, data) pairs until the server closes the stream.
pub struct EventReader {
    stream: futures::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    buffer: String,
}

impl EventReader {
    /// Reads the body of `res`.
    pub fn new(res: reqwest::Response) -> Self {
        Self {
            stream: res.bytes_stream().boxed(),
            buffer: String::new(),
        }
    }

    /// The next event, or `None` when the stream ended. Gives up after 20 s.
    pub async fn next(&mut self) -> Option<(String, Value)> {
        tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                if let Some(end) = self.buffer.find("\n\n") {
                    let block: String = self.buffer.drain(..end + 2).collect();
                    let mut event = "message".to_owned();
                    let mut data = String::new();
                    for line in block.lines() {
                        if let Some(v) = line.strip_prefix("event:") {
                            event = v.trim().to_owned();
                        } else if let Some(v) = line.strip_prefix("data:") {
                            data.push_str(v.trim());
                        }
                    }
                    if data.is_empty() {
                        continue; // keep-alive comment
                    }
                    return Some((event, serde_json::from_str(&data).unwrap()));
                }
                match self.stream.next().await {
                    Some(chunk) => self
                        .buffer
                        .push_str(&String::from_utf8_lossy(&chunk.unwrap())),
                    None => return None,
                }
            }
        })
        .await
        .expect("an event or the end of the stream within 20 s")
    }
}

#[tokio::test]
async fn events_push_each_change_and_close_after_completion() {
    let app = TestApp::spawn().await;
    let fid = app.upload_file(USER, "clip.mp4", b"video").await;

    let res = app
        .get_as(USER, &format!("/events?fid={}", fid.to_hex()))
        .await;
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let mut events = EventReader::new(res);

    assert_eq!(
        events.next().await,
        Some((
            "status".to_owned(),
            json!({ "status": "processing", "state": "queued", "progress": 0.0 })
        ))
    );
    app.update_job(fid, doc! { "state": "processing", "progress": 50.0 })
        .await;
    assert_eq!(
        events.next().await,
        Some((
            "status".to_owned(),
            json!({ "status": "processing", "state": "processing", "progress": 50.0 })
        ))
    );
    let mp3 = ObjectId::new();
    app.update_job(
        fid,
        doc! { "state": "completed", "progress": 100.0, "mp3_fid": mp3 },
    )
    .await;
    let (event, data) = events.next().await.unwrap();
    assert_eq!(event, "status");
    assert_eq!(data["status"], "completed");
    assert_eq!(data["mp3_fid"], mp3.to_hex());
    assert_eq!(
        events.next().await,
        None,
        "the stream ends after completion"
    );
}

#[tokio::test]
async fn events_of_a_failed_job_end_at_once_and_foreign_fids_get_404() {
    let app = TestApp::spawn().await;
    let fid = app.upload_file(USER, "clip.mp4", b"video").await;
    app.update_job(fid, doc! { "state": "failed", "error": "corrupt video" })
        .await;

    let res = app
        .get_as(USER, &format!("/events?fid={}", fid.to_hex()))
        .await;
    let mut events = EventReader::new(res);
    let (_, data) = events.next().await.unwrap();
    assert_eq!(data["status"], "failed");
    assert_eq!(data["error"], "corrupt video");
    assert_eq!(events.next().await, None);

    let res = app
        .get_as(OTHER, &format!("/events?fid={}", fid.to_hex()))
        .await;
    assert_eq!(res.status(), 404);
    assert_eq!(app.get_as(USER, "/events?fid=zzz").await.status(), 400);
    let res = app
        .http
        .get(format!("{}/events?fid={}", app.base, fid.to_hex()))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
}

#[tokio::test]
async fn events_report_a_job_deleted_while_watching() {
    let app = TestApp::spawn().await;
    let fid = app.upload_file(USER, "clip.mp4", b"video").await;
    let res = app
        .get_as(USER, &format!("/events?fid={}", fid.to_hex()))
        .await;
    let mut events = EventReader::new(res);
    events.next().await.unwrap();
    let status = app
        .http
        .delete(format!("{}/jobs/{}", app.base, fid.to_hex()))
        .header("authorization", app.bearer(USER))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 204);
    let (event, data) = events.next().await.unwrap();
    assert_eq!(event, "error");
    assert!(data["error"].as_str().unwrap().contains("no file"));
    assert_eq!(events.next().await, None);
}
