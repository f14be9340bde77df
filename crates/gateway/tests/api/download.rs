use mongodb::bson::oid::ObjectId;
use serde_json::Value;

use crate::helpers::{test_bytes, TestApp};

const USER: &str = "carol@example.com";
const OTHER: &str = "eve@example.com";

async fn converted(app: &TestApp, name: &str, len: usize) -> (ObjectId, Vec<u8>) {
    let video = app.upload_file(USER, name, b"some video").await;
    let mp3 = test_bytes(len, 9);
    let stem = name.rsplit_once('.').map_or(name, |(s, _)| s);
    let id = app
        .store_mp3(video, Some(USER), &format!("{stem}.mp3"), &mp3)
        .await;
    (id, mp3)
}

async fn get_range(app: &TestApp, email: &str, fid: ObjectId, range: &str) -> reqwest::Response {
    app.http
        .get(format!("{}/download?fid={}", app.base, fid.to_hex()))
        .header("authorization", app.bearer(email))
        .header("range", range)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn download_streams_the_mp3_with_its_headers() {
    let app = TestApp::spawn().await;
    // Three chunks and a bit.
    let (fid, mp3) = converted(&app, "Été 2024 (live).mp4", 3 * 261_120 + 77).await;

    let res = app
        .get_as(USER, &format!("/download?fid={}", fid.to_hex()))
        .await;
    assert_eq!(res.status(), 200);
    let h = res.headers().clone();
    assert_eq!(h["content-type"], "audio/mpeg");
    assert_eq!(h["content-length"], mp3.len().to_string());
    assert_eq!(h["accept-ranges"], "bytes");
    assert_eq!(
        h["content-disposition"],
        "attachment; filename=\"_t_ 2024 (live).mp3\"; \
         filename*=UTF-8''%C3%89t%C3%A9%202024%20%28live%29.mp3"
    );
    assert_eq!(res.bytes().await.unwrap().as_ref(), mp3.as_slice());
}

#[tokio::test]
async fn single_ranges_get_206_and_outside_ranges_416() {
    let app = TestApp::spawn().await;
    let (fid, mp3) = converted(&app, "clip.mp4", 600_000).await;
    let len = mp3.len();

    // Within one chunk, across a chunk boundary, open-ended and a suffix.
    for (range, start, end) in [
        ("bytes=0-99", 0, 99),
        ("bytes=261000-262000", 261_000, 262_000),
        ("bytes=599000-", 599_000, len - 1),
        ("bytes=-500", len - 500, len - 1),
        ("bytes=10-999999999", 10, len - 1),
    ] {
        let res = get_range(&app, USER, fid, range).await;
        assert_eq!(res.status(), 206, "{range}");
        assert_eq!(
            res.headers()["content-range"],
            format!("bytes {start}-{end}/{len}"),
            "{range}"
        );
        assert_eq!(
            res.headers()["content-length"],
            (end - start + 1).to_string()
        );
        assert_eq!(
            res.bytes().await.unwrap().as_ref(),
            &mp3[start..=end],
            "{range}"
        );
    }

    let res = get_range(&app, USER, fid, &format!("bytes={len}-")).await;
    assert_eq!(res.status(), 416);
    assert_eq!(res.headers()["content-range"], format!("bytes */{len}"));

    // Several ranges: the whole file instead (allowed by RFC 9110).
    let res = get_range(&app, USER, fid, "bytes=0-1,5-6").await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.bytes().await.unwrap().len(), len);
}

#[tokio::test]
async fn download_refuses_foreign_unknown_and_malformed_fids() {
    let app = TestApp::spawn().await;
    let (fid, _) = converted(&app, "clip.mp4", 1000).await;

    let res = app
        .get_as(OTHER, &format!("/download?fid={}", fid.to_hex()))
        .await;
    assert_eq!(res.status(), 404);
    let body: Value = res.json().await.unwrap();
    assert!(body["error"].is_string());

    let res = app
        .get_as(USER, &format!("/download?fid={}", ObjectId::new().to_hex()))
        .await;
    assert_eq!(res.status(), 404);

    let res = app.get_as(USER, "/download?fid=12345").await;
    assert_eq!(res.status(), 400);

    let res = app
        .http
        .get(format!("{}/download?fid={}", app.base, fid.to_hex()))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
}
