//! `RETENTION_HOURS`: conversions removed that long after they finished (job, upload, MP3 and
//! their chunks), nothing younger or still running, and the original system's files only with
//! `RETENTION_INCLUDE_UNOWNED`; `expires_at` in `/jobs` and `/status`.

use std::time::Duration;

use mongodb::bson::{doc, oid::ObjectId, DateTime, Document};
use serde_json::Value;

use crate::helpers::{test_bytes, Options, TestApp};

const USER: &str = "rita@example.com";
const HOUR_MS: i64 = 3600 * 1000;

fn retention(include_unowned: bool) -> Options {
    Options {
        env: vec![
            ("RETENTION_HOURS", "1".to_owned()),
            ("RETENTION_SWEEP_SECS", "1".to_owned()),
            ("RETENTION_INCLUDE_UNOWNED", include_unowned.to_string()),
        ],
        ..Options::default()
    }
}

fn hours_ago(hours: i64) -> DateTime {
    DateTime::from_millis(DateTime::now().timestamp_millis() - hours * HOUR_MS)
}

/// Files documents and chunks of file `id` in `db`.
async fn file_parts(db: &mongodb::Database, id: ObjectId) -> (u64, u64) {
    let files = db
        .collection::<Document>("fs.files")
        .count_documents(doc! { "_id": id })
        .await
        .unwrap();
    let chunks = db
        .collection::<Document>("fs.chunks")
        .count_documents(doc! { "files_id": id })
        .await
        .unwrap();
    (files, chunks)
}

/// Moves the GridFS `uploadDate` of file `id` back to `when`.
async fn stored_at(db: &mongodb::Database, id: ObjectId, when: DateTime) {
    db.collection::<Document>("fs.files")
        .update_one(doc! { "_id": id }, doc! { "$set": { "uploadDate": when } })
        .await
        .unwrap();
}

/// An upload of USER, converted (MP3 with owner), finished `finished` ago; (video, mp3).
async fn converted(app: &TestApp, name: &str, finished: DateTime) -> (ObjectId, ObjectId) {
    let video = app.upload_file(USER, name, &test_bytes(300_000, 1)).await;
    let mp3 = app
        .store_mp3(video, Some(USER), "a.mp3", &test_bytes(300_000, 2))
        .await;
    app.update_job(video, doc! { "updated_at": finished }).await;
    (video, mp3)
}

/// An upload and MP3 as the original system stores them: no owner, no job.
async fn original(app: &TestApp, stored: DateTime) -> (ObjectId, ObjectId) {
    let video = app.store_original_video(&test_bytes(300_000, 3)).await;
    let mp3 = app
        .store_mp3(video, None, "orig.mp3", &test_bytes(300_000, 4))
        .await;
    stored_at(&app.videos, video, stored).await;
    stored_at(&app.mp3s, mp3, stored).await;
    (video, mp3)
}

async fn wait_until_gone(app: &TestApp, video: ObjectId) {
    for _ in 0..200 {
        if app.job(video).await.is_none() && file_parts(&app.videos, video).await == (0, 0) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{video} was not removed by the retention sweep");
}

async fn wait_until_file_gone(db: &mongodb::Database, id: ObjectId) {
    for _ in 0..200 {
        if file_parts(db, id).await == (0, 0) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("file {id} was not removed by the retention sweep");
}

async fn get_json(app: &TestApp, path: &str) -> (u16, Value) {
    let res = app.get_as(USER, path).await;
    (res.status().as_u16(), res.json().await.unwrap())
}

#[tokio::test]
async fn retention_removes_exactly_what_finished_long_enough_ago() {
    let app = TestApp::spawn_with(retention(false)).await;
    // A second replica sweeps the same databases: each expired job is removed once, by one.
    let (_replica, replica_task) = app.spawn_replica().await;
    let young_end = DateTime::now();
    let (young, young_mp3) = converted(&app, "young.mp4", young_end).await;
    let (old, old_mp3) = converted(&app, "old.mp4", hours_ago(2)).await;
    let (old_failed, _) = {
        let video = app.upload_file(USER, "bad.mp4", b"not a video").await;
        app.update_job(
            video,
            doc! { "state": "failed", "error": "no audio", "updated_at": hours_ago(3) },
        )
        .await;
        (video, ())
    };
    // Still queued (a long backlog) though uploaded long ago: it has not finished, so it stays.
    let waiting = app.upload_file(USER, "waiting.mp4", b"video").await;
    app.update_job(
        waiting,
        doc! { "created_at": hours_ago(5), "updated_at": hours_ago(5) },
    )
    .await;
    let (orig_video, orig_mp3) = original(&app, hours_ago(10)).await;

    wait_until_gone(&app, old).await;
    wait_until_gone(&app, old_failed).await;
    // Job, upload and MP3 of the old conversion: documents and chunks (the MP3 goes last).
    wait_until_file_gone(&app.mp3s, old_mp3).await;
    assert_eq!(file_parts(&app.videos, old).await, (0, 0));
    // Answers 404 afterwards, like a deleted one.
    let hex = old.to_hex();
    assert_eq!(get_json(&app, &format!("/status?fid={hex}")).await.0, 404);
    assert_eq!(
        get_json(&app, &format!("/download?fid={}", old_mp3.to_hex()))
            .await
            .0,
        404
    );
    let res = app
        .http
        .delete(format!("{}/jobs/{hex}", app.base))
        .header("authorization", app.bearer(USER))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);

    // A few more rounds (on both replicas) touch nothing else.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(app.job(young).await.is_some());
    assert_eq!(file_parts(&app.videos, young).await.0, 1);
    assert_eq!(file_parts(&app.mp3s, young_mp3).await.0, 1);
    assert!(file_parts(&app.mp3s, young_mp3).await.1 > 0);
    assert_eq!(
        app.job(waiting).await.unwrap().get_str("state").unwrap(),
        "queued"
    );
    assert_eq!(file_parts(&app.videos, waiting).await.0, 1);
    // The original system's files are not ours to remove.
    assert_eq!(file_parts(&app.videos, orig_video).await.0, 1);
    assert_eq!(file_parts(&app.mp3s, orig_mp3).await.0, 1);

    // The young one says when it goes: its completion plus one hour.
    let (code, body) = get_json(&app, &format!("/status?fid={}", young.to_hex())).await;
    assert_eq!(code, 200);
    let finished = app.job(young).await.unwrap();
    let finished = finished.get_datetime("updated_at").unwrap();
    let expected = DateTime::from_millis(finished.timestamp_millis() + HOUR_MS)
        .try_to_rfc3339_string()
        .unwrap();
    assert_eq!(body["expires_at"], expected.as_str(), "{body}");
    let (_, page) = get_json(&app, "/jobs").await;
    let jobs = page["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 2, "{page}");
    let listed = |fid: ObjectId| {
        jobs.iter()
            .find(|j| j["video_fid"] == fid.to_hex())
            .unwrap()
            .clone()
    };
    assert_eq!(listed(young)["expires_at"], expected.as_str());
    // A queued job does not expire (yet).
    assert!(listed(waiting).get("expires_at").is_none(), "{page}");
    let (_, queued) = get_json(&app, &format!("/status?fid={}", waiting.to_hex())).await;
    assert!(queued.get("expires_at").is_none(), "{queued}");
    // Without RETENTION_INCLUDE_UNOWNED the original's file shows no expiry either.
    let (_, orig) = get_json(&app, &format!("/status?fid={}", orig_video.to_hex())).await;
    assert_eq!(orig["status"], "completed");
    assert!(orig.get("expires_at").is_none(), "{orig}");
    replica_task.abort();
}

#[tokio::test]
async fn with_include_unowned_the_original_systems_old_files_go_too() {
    let app = TestApp::spawn_with(retention(true)).await;
    let (old_video, old_mp3) = original(&app, hours_ago(2)).await;
    // Uploaded long ago but converted a moment ago: counted from its MP3.
    let (recent_video, recent_mp3) = original(&app, hours_ago(5)).await;
    stored_at(&app.mp3s, recent_mp3, DateTime::now()).await;
    // Never converted, stored long ago.
    let lone = app.store_original_video(&test_bytes(1000, 5)).await;
    stored_at(&app.videos, lone, hours_ago(2)).await;
    let fresh = app.store_original_video(&test_bytes(1000, 6)).await;

    wait_until_file_gone(&app.mp3s, old_mp3).await;
    wait_until_file_gone(&app.videos, old_video).await;
    wait_until_file_gone(&app.videos, lone).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(file_parts(&app.videos, recent_video).await.0, 1);
    assert_eq!(file_parts(&app.mp3s, recent_mp3).await.0, 1);
    assert_eq!(file_parts(&app.videos, fresh).await.0, 1);

    // Their expiry is shown: from the MP3 for a converted one, from the upload otherwise.
    let (code, body) = get_json(&app, &format!("/status?fid={}", recent_video.to_hex())).await;
    assert_eq!(code, 200);
    assert_eq!(body["status"], "completed");
    let mp3_doc = app
        .mp3s
        .collection::<Document>("fs.files")
        .find_one(doc! { "_id": recent_mp3 })
        .await
        .unwrap()
        .unwrap();
    let stored = mp3_doc.get_datetime("uploadDate").unwrap();
    let expected = DateTime::from_millis(stored.timestamp_millis() + HOUR_MS)
        .try_to_rfc3339_string()
        .unwrap();
    assert_eq!(body["expires_at"], expected.as_str(), "{body}");
    let (_, body) = get_json(&app, &format!("/status?fid={}", fresh.to_hex())).await;
    assert!(body["expires_at"].is_string(), "{body}");
}

#[tokio::test]
async fn without_retention_nothing_expires() {
    let app = TestApp::spawn().await;
    let (video, _) = converted(&app, "kept.mp4", hours_ago(24 * 400)).await;
    let (code, body) = get_json(&app, &format!("/status?fid={}", video.to_hex())).await;
    assert_eq!(code, 200);
    assert!(body.get("expires_at").is_none(), "{body}");
    let (_, page) = get_json(&app, "/jobs").await;
    assert!(page["jobs"][0].get("expires_at").is_none(), "{page}");
}
