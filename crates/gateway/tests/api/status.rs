use mongodb::bson::{doc, oid::ObjectId};
use serde_json::{json, Value};

use crate::helpers::{test_bytes, TestApp};

const USER: &str = "bob@example.com";
const OTHER: &str = "eve@example.com";

async fn status(app: &TestApp, email: &str, fid: &str) -> (u16, Value) {
    let res = app.get_as(email, &format!("/status?fid={fid}")).await;
    (res.status().as_u16(), res.json().await.unwrap())
}

#[tokio::test]
async fn status_follows_the_job_lifecycle() {
    let app = TestApp::spawn().await;
    let fid = app
        .upload_file(USER, "clip.mp4", &test_bytes(5000, 1))
        .await;
    let hex = fid.to_hex();

    assert_eq!(
        status(&app, USER, &hex).await,
        (
            200,
            json!({ "status": "processing", "state": "queued", "progress": 0.0 })
        )
    );

    app.update_job(fid, doc! { "state": "processing", "progress": 42.25 })
        .await;
    assert_eq!(
        status(&app, USER, &hex).await,
        (
            200,
            json!({ "status": "processing", "state": "processing", "progress": 42.3 })
        )
    );

    let mp3 = ObjectId::new();
    app.update_job(
        fid,
        doc! { "state": "completed", "progress": 100.0, "mp3_fid": mp3 },
    )
    .await;
    let (code, body) = status(&app, USER, &hex).await;
    assert_eq!(code, 200);
    assert_eq!(body["status"], "completed");
    assert_eq!(body["mp3_fid"], mp3.to_hex());

    app.update_job(
        fid,
        doc! { "state": "failed", "error": "the video has no audio track" },
    )
    .await;
    let (code, body) = status(&app, USER, &hex).await;
    assert_eq!(code, 200);
    assert_eq!(body["status"], "failed");
    assert_eq!(body["error"], "the video has no audio track");
}

#[tokio::test]
async fn status_refuses_bad_unknown_and_foreign_fids() {
    let app = TestApp::spawn().await;
    let fid = app.upload_file(USER, "clip.mp4", b"abc").await;

    let (code, body) = status(&app, USER, "nothex").await;
    assert_eq!(code, 400);
    assert!(body["error"].as_str().unwrap().contains("malformed"));

    let res = app.get_as(USER, "/status").await;
    assert_eq!(res.status(), 400);

    let (code, body) = status(&app, USER, &ObjectId::new().to_hex()).await;
    assert_eq!(code, 404);
    assert!(body["error"].is_string());

    // Another user's upload looks exactly like an unknown one.
    let (code, _) = status(&app, OTHER, &fid.to_hex()).await;
    assert_eq!(code, 404);

    let res = app
        .http
        .get(format!("{}/status?fid={}", app.base, fid.to_hex()))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
}

#[tokio::test]
async fn uploads_of_the_original_system_are_reported_from_their_mp3() {
    let app = TestApp::spawn().await;
    // The original's layout: an upload without owner or job, and an MP3 whose
    // metadata.video_fid is the upload's hex id.
    let video = app.store_original_video(&test_bytes(4000, 2)).await;
    assert_eq!(
        status(&app, USER, &video.to_hex()).await,
        (
            200,
            json!({ "status": "processing", "state": "queued", "progress": 0.0 })
        )
    );

    let mp3_bytes = test_bytes(3000, 3);
    let mp3 = app.store_mp3(video, None, "video.mp3", &mp3_bytes).await;
    assert!(app.job(video).await.is_none(), "still no job");
    for user in [USER, OTHER] {
        let (code, body) = status(&app, user, &video.to_hex()).await;
        assert_eq!(code, 200);
        assert_eq!(body["status"], "completed");
        assert_eq!(body["mp3_fid"], mp3.to_hex());
    }

    // Any authenticated user may download it, as before.
    let res = app
        .get_as(OTHER, &format!("/download?fid={}", mp3.to_hex()))
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.bytes().await.unwrap().as_ref(), mp3_bytes.as_slice());
}

#[tokio::test]
async fn concurrent_requests_share_reads_but_each_is_answered_for_its_own_user() {
    let app = TestApp::spawn().await;
    let fid = app.upload_file(USER, "clip.mp4", b"abc").await;
    let hex = fid.to_hex();
    // Owner and stranger interleaved, so that reads of this upload are shared between them.
    let answers = futures::future::join_all((0..40).map(|i| {
        let (app, hex) = (&app, &hex);
        async move {
            let email = if i % 2 == 0 { USER } else { OTHER };
            (email, status(app, email, hex).await)
        }
    }))
    .await;
    for (email, (code, body)) in answers {
        if email == USER {
            assert_eq!(
                (code, body),
                (
                    200,
                    json!({ "status": "processing", "state": "queued", "progress": 0.0 })
                )
            );
        } else {
            assert_eq!(code, 404, "{body}");
        }
    }
    // A change made before a request is sent is in its answer: nothing is kept between reads.
    app.update_job(fid, doc! { "state": "processing", "progress": 10.0 })
        .await;
    let after = futures::future::join_all((0..10).map(|_| status(&app, USER, &hex))).await;
    for (code, body) in after {
        assert_eq!((code, body["progress"].as_f64()), (200, Some(10.0)));
    }
}
