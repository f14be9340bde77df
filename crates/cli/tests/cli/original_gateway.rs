//! The client against a stand-in with the original (Flask) gateway's wire behaviour: `/upload`,
//! `/status` (`processing`, then `completed` with `mp3_fid`, no progress) and `/download`
//! (`inline; filename=<id>.mp3`), every other path Flask's HTML 404. Variants answer `/events`
//! with 429, or with a real event stream, to show which way the client follows a job.

use std::sync::{Arc, Mutex};

use axum::{
    extract::{Multipart, State},
    http::{header, HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
    Json, Router,
};

use crate::helpers::{files_in, vidconv};

const TOKEN: &str = "header.payload.signature";
const VIDEO_FID: &str = "65f1c0ffee0123456789abcd";
const MP3_FID: &str = "65f1c0ffee0123456789abce";
const MP3: &[u8] = b"ID3\x04\x00\x00\x00\x00\x00\x00 an MP3 as the stand-in stores it";
const FLASK_404: &str = "<!doctype html>\n<html lang=en>\n<title>404 Not Found</title>\n\
    <h1>Not Found</h1>\n<p>The requested URL was not found on the server. If you entered the URL \
    manually please check your spelling and try again.</p>\n";

/// How the stand-in answers `GET /events`.
#[derive(Clone, Copy)]
enum EventsAnswer {
    /// Not there, as in the original: Flask's 404 page.
    Missing,
    /// 429, as the new gateway answers with too many open streams.
    TooMany,
    /// A stream: processing at 50 %, then completed.
    Stream,
}

/// One upload: its text fields and its file part (name, bytes), in the order sent.
type Upload = (Vec<(String, String)>, Option<(String, Vec<u8>)>);

/// What went over the wire.
#[derive(Default, Debug)]
struct Seen {
    uploads: Vec<Upload>,
    events: usize,
    status: usize,
    downloads: usize,
}

#[derive(Clone)]
struct Double {
    events: EventsAnswer,
    seen: Arc<Mutex<Seen>>,
}

fn authorized(headers: &HeaderMap) -> bool {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == format!("Bearer {TOKEN}"))
}

async fn upload(State(double): State<Double>, headers: HeaderMap, mut form: Multipart) -> Response {
    if !authorized(&headers) {
        return (StatusCode::UNAUTHORIZED, "not authorized").into_response();
    }
    let (mut fields, mut file) = (Vec::new(), None);
    while let Some(field) = form.next_field().await.unwrap() {
        let name = field.name().unwrap_or_default().to_owned();
        match field.file_name().map(str::to_owned) {
            Some(filename) => file = Some((filename, field.bytes().await.unwrap().to_vec())),
            None => fields.push((name, field.text().await.unwrap())),
        }
    }
    double.seen.lock().unwrap().uploads.push((fields, file));
    Json(serde_json::json!({"status": "success", "video_fid": VIDEO_FID})).into_response()
}

async fn status(State(double): State<Double>, headers: HeaderMap) -> Response {
    if !authorized(&headers) {
        return (StatusCode::UNAUTHORIZED, "not authorized").into_response();
    }
    let mut seen = double.seen.lock().unwrap();
    seen.status += 1;
    // Unfinished at the first look, done at the next: the client must poll again.
    if seen.status == 1 {
        Json(serde_json::json!({"status": "processing"})).into_response()
    } else {
        Json(serde_json::json!({"status": "completed", "mp3_fid": MP3_FID})).into_response()
    }
}

async fn download(State(double): State<Double>, headers: HeaderMap) -> Response {
    if !authorized(&headers) {
        return (StatusCode::UNAUTHORIZED, "not authorized").into_response();
    }
    double.seen.lock().unwrap().downloads += 1;
    (
        [
            (header::CONTENT_TYPE, "audio/mpeg".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("inline; filename={MP3_FID}.mp3"),
            ),
        ],
        MP3,
    )
        .into_response()
}

async fn events(State(double): State<Double>) -> Response {
    double.seen.lock().unwrap().events += 1;
    match double.events {
        EventsAnswer::Missing => flask_404().await,
        EventsAnswer::TooMany => (
            StatusCode::TOO_MANY_REQUESTS,
            Json(serde_json::json!({"error": "too many open event streams"})),
        )
            .into_response(),
        EventsAnswer::Stream => (
            [(header::CONTENT_TYPE, "text/event-stream")],
            format!(
                "event: status\ndata: {}\n\n: keep-alive\n\nevent: status\ndata: {}\n\n",
                r#"{"status":"processing","state":"processing","progress":50.0}"#,
                serde_json::json!({"status": "completed", "state": "completed", "progress": 100.0, "mp3_fid": MP3_FID}),
            ),
        )
            .into_response(),
    }
}

async fn flask_404() -> Response {
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        FLASK_404,
    )
        .into_response()
}

/// Starts the stand-in on port 0: its URL and what it sees.
async fn spawn(events_answer: EventsAnswer) -> (String, Arc<Mutex<Seen>>) {
    let double = Double {
        events: events_answer,
        seen: Arc::default(),
    };
    let seen = double.seen.clone();
    let mut app = Router::new()
        .route("/upload", post(upload))
        .route("/status", get(status))
        .route("/download", get(download));
    if !matches!(events_answer, EventsAnswer::Missing) {
        app = app.route("/events", get(events));
    }
    let app = app
        .fallback(flask_404)
        .layer(axum::extract::DefaultBodyLimit::disable())
        .with_state(double);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, seen)
}

/// A file of `len` bytes that are not all alike (so a mangled upload shows).
fn video_bytes(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

/// Converts `clip.mp4` against a stand-in answering `/events` as `answer` says.
async fn convert_against(answer: EventsAnswer) -> (tempfile::TempDir, Arc<Mutex<Seen>>, Vec<u8>) {
    let (url, seen) = spawn(answer).await;
    let dir = tempfile::tempdir().unwrap();
    let video = dir.path().join("clip.mp4");
    // Several upload chunks, not a multiple of the chunk size.
    let bytes = video_bytes(300_001);
    std::fs::write(&video, &bytes).unwrap();
    let out = dir.path().join("out");
    let run = vidconv(
        dir.path(),
        &[
            "convert",
            video.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--bitrate",
            "192",
        ],
        &[("VIDCONV_URL", &url), ("VIDCONV_TOKEN", TOKEN)],
        "",
    )
    .await;
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout.contains(&format!(
            "done   clip.mp4 -> {}",
            out.join("clip.mp3").display()
        )),
        "{run:?}"
    );
    // Named after the video, not after the original's `inline; filename=<id>.mp3`.
    assert_eq!(files_in(&out), ["clip.mp3"]);
    assert_eq!(std::fs::read(out.join("clip.mp3")).unwrap(), MP3);
    {
        let seen = seen.lock().unwrap();
        assert_eq!(seen.uploads.len(), 1, "{seen:?}");
        let (fields, file) = &seen.uploads[0];
        assert_eq!(fields, &[("bitrate".to_owned(), "192".to_owned())]);
        let (name, stored) = file.as_ref().expect("a file part");
        assert_eq!(name, "clip.mp4");
        assert!(stored == &bytes, "the uploaded bytes differ from the file");
        assert_eq!(seen.downloads, 1);
    }
    (dir, seen, bytes)
}

#[tokio::test(flavor = "multi_thread")]
async fn without_events_it_polls_status_until_completed() {
    let (_dir, seen, _) = convert_against(EventsAnswer::Missing).await;
    let seen = seen.lock().unwrap();
    assert_eq!(
        seen.status, 2,
        "one poll saw processing, the next completed"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_429_from_events_falls_back_to_polling() {
    let (_dir, seen, _) = convert_against(EventsAnswer::TooMany).await;
    let seen = seen.lock().unwrap();
    assert_eq!(seen.events, 1);
    assert_eq!(seen.status, 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_event_stream_is_followed_without_polling() {
    let (_dir, seen, _) = convert_against(EventsAnswer::Stream).await;
    let seen = seen.lock().unwrap();
    assert_eq!(seen.events, 1);
    assert_eq!(seen.status, 0, "no /status poll while the stream works");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_existing_mp3_is_kept_unless_forced() {
    let (url, seen) = spawn(EventsAnswer::Stream).await;
    let dir = tempfile::tempdir().unwrap();
    let video = dir.path().join("talk.mp4");
    std::fs::write(&video, video_bytes(1000)).unwrap();
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    std::fs::write(out.join("talk.mp3"), b"mine").unwrap();
    let env = [("VIDCONV_URL", url.as_str()), ("VIDCONV_TOKEN", TOKEN)];
    let args = [
        "convert",
        video.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ];

    let run = vidconv(dir.path(), &args, &env, "").await;
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stderr.contains("failed talk.mp4: "), "{run:?}");
    assert!(run.stderr.contains("already exists"), "{run:?}");
    assert_eq!(std::fs::read(out.join("talk.mp3")).unwrap(), b"mine");
    assert!(seen.lock().unwrap().uploads.is_empty(), "nothing uploaded");

    let run = vidconv(dir.path(), &[&args[..], &["--force"]].concat(), &env, "").await;
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(std::fs::read(out.join("talk.mp3")).unwrap(), MP3);
    assert_eq!(files_in(&out), ["talk.mp3"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn usage_errors_exit_with_2() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        &["convert"][..],
        &["convert", "a.mp4", "--bitrate", "100"],
        &["convert", "a.mp4", "--bitrate", "128", "--vbr", "2"],
        &["convert", "a.mp4", "--vbr", "10"],
        &["--url", "localhost:30002", "convert", "a.mp4"],
    ] {
        let run = vidconv(dir.path(), args, &[("VIDCONV_TOKEN", TOKEN)], "").await;
        assert_eq!(run.code, 2, "{args:?}: {run:?}");
        assert!(!run.stderr.is_empty(), "{args:?}: {run:?}");
    }
}
