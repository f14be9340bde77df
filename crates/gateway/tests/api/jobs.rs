use mongodb::bson::{doc, oid::ObjectId, Document};
use serde_json::Value;

use crate::helpers::{test_bytes, video_bytes, TestApp};

const USER: &str = "dave@example.com";
const OTHER: &str = "eve@example.com";

#[tokio::test]
async fn jobs_lists_the_callers_uploads_newest_first_by_page() {
    let app = TestApp::spawn().await;
    let mut fids = Vec::new();
    for i in 0..5 {
        fids.push(
            app.upload_file(USER, &format!("clip{i}.mp4"), b"video")
                .await,
        );
        // created_at has millisecond precision.
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    app.upload_file(OTHER, "theirs.mp4", b"video").await;
    app.update_job(fids[4], doc! { "state": "failed", "error": "no audio" })
        .await;

    let res = app.get_as(USER, "/jobs?page=1&per_page=2").await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["page"], 1);
    assert_eq!(body["per_page"], 2);
    assert_eq!(body["total"], 5);
    let jobs = body["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 2);
    assert_eq!(jobs[0]["video_fid"], fids[4].to_hex());
    assert_eq!(jobs[0]["state"], "failed");
    assert_eq!(jobs[0]["status"], "failed");
    assert_eq!(jobs[0]["error"], "no audio");
    assert_eq!(jobs[1]["video_fid"], fids[3].to_hex());
    assert_eq!(jobs[1]["filename"], "clip3.mp4");
    assert_eq!(jobs[1]["state"], "queued");
    assert_eq!(jobs[1]["status"], "processing");
    assert_eq!(jobs[1]["size"], video_bytes(b"video").len());
    assert!(jobs[1]["mp3_fid"].is_null());
    for field in ["progress", "created_at", "updated_at"] {
        assert!(!jobs[1][field].is_null(), "{field}");
    }

    let body: Value = app
        .get_as(USER, "/jobs?page=3&per_page=2")
        .await
        .json()
        .await
        .unwrap();
    let jobs = body["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0]["video_fid"], fids[0].to_hex());

    let body: Value = app.get_as(OTHER, "/jobs").await.json().await.unwrap();
    assert_eq!(body["total"], 1);

    for bad in ["/jobs?page=0", "/jobs?per_page=101", "/jobs?per_page=x"] {
        assert_eq!(app.get_as(USER, bad).await.status(), 400, "{bad}");
    }
}

async fn delete(app: &TestApp, email: &str, fid: &str) -> u16 {
    app.http
        .delete(format!("{}/jobs/{fid}", app.base))
        .header("authorization", app.bearer(email))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn delete_removes_the_upload_its_mp3_and_its_job() {
    let app = TestApp::spawn().await;
    let fid = app
        .upload_file(USER, "clip.mp4", &test_bytes(600_000, 1))
        .await;
    let mp3 = app
        .store_mp3(fid, Some(USER), "clip.mp3", &test_bytes(300_000, 2))
        .await;
    let keep = app.upload_file(USER, "keep.mp4", b"keep me").await;

    assert_eq!(delete(&app, OTHER, &fid.to_hex()).await, 404);
    assert_eq!(delete(&app, USER, "nothex").await, 400);
    assert_eq!(delete(&app, USER, &ObjectId::new().to_hex()).await, 404);

    assert_eq!(delete(&app, USER, &fid.to_hex()).await, 204);
    assert!(app.job(fid).await.is_none());
    assert!(app.video_file_doc(fid).await.is_none());
    let chunks = app.videos.collection::<Document>("fs.chunks");
    assert_eq!(
        chunks
            .count_documents(doc! { "files_id": fid })
            .await
            .unwrap(),
        0
    );
    assert!(
        chunks
            .count_documents(doc! { "files_id": keep })
            .await
            .unwrap()
            > 0
    );
    let mp3_files = app.mp3s.collection::<Document>("fs.files");
    assert_eq!(mp3_files.count_documents(doc! {}).await.unwrap(), 0);
    let mp3_chunks = app.mp3s.collection::<Document>("fs.chunks");
    assert_eq!(
        mp3_chunks
            .count_documents(doc! { "files_id": mp3 })
            .await
            .unwrap(),
        0
    );
    assert_eq!(delete(&app, USER, &fid.to_hex()).await, 404);
    assert!(app.job(keep).await.is_some());

    // Files of the original system (no owner) are readable by all but deletable by none.
    let original = app.store_original_video(b"old").await;
    assert_eq!(delete(&app, USER, &original.to_hex()).await, 404);
    assert!(app.video_file_doc(original).await.is_some());
}
