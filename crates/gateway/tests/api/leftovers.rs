//! Nothing is left behind or comes back: deletion at every stage of a job, and the sweeper that
//! re-publishes (or fails) jobs stuck `queued`, once per job even with two gateway replicas.

use std::time::Duration;

use mongodb::bson::{doc, oid::ObjectId, DateTime};

use crate::helpers::{test_bytes, Options, TestApp};

const USER: &str = "sweep@example.com";

async fn delete(app: &TestApp, fid: ObjectId) -> u16 {
    app.http
        .delete(format!("{}/jobs/{}", app.base, fid.to_hex()))
        .header("authorization", app.bearer(USER))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn nothing_left(app: &TestApp) {
    assert_eq!(app.video_counts().await, (0, 0), "upload left");
    assert_eq!(app.mp3_counts().await, (0, 0), "MP3 left");
    assert_eq!(app.job_count().await, 0, "job left");
}

#[tokio::test]
async fn deleting_at_every_stage_leaves_no_upload_mp3_or_job() {
    let app = TestApp::spawn().await;

    // Queued (its message still waits on the queue).
    let queued = app.upload_file(USER, "q.mp4", b"video").await;
    assert_eq!(delete(&app, queued).await, 204);
    nothing_left(&app).await;

    // Processing.
    let processing = app.upload_file(USER, "p.mp4", b"video").await;
    app.update_job(processing, doc! { "state": "processing", "progress": 40.0 })
        .await;
    assert_eq!(delete(&app, processing).await, 204);
    nothing_left(&app).await;

    // The converter stored the MP3 but has not named it in the job yet.
    let storing = app.upload_file(USER, "s.mp4", b"video").await;
    app.store_mp3(storing, Some(USER), "s.mp3", &test_bytes(300_000, 1))
        .await;
    app.update_job(
        storing,
        doc! { "state": "processing", "progress": 99.0, "mp3_fid": null },
    )
    .await;
    assert_eq!(delete(&app, storing).await, 204);
    nothing_left(&app).await;

    // Completed.
    let completed = app.upload_file(USER, "c.mp4", b"video").await;
    app.store_mp3(completed, Some(USER), "c.mp3", b"mp3").await;
    assert_eq!(delete(&app, completed).await, 204);
    nothing_left(&app).await;

    // Failed.
    let failed = app.upload_file(USER, "f.mp4", b"video").await;
    app.update_job(failed, doc! { "state": "failed", "error": "not a video" })
        .await;
    assert_eq!(delete(&app, failed).await, 204);
    nothing_left(&app).await;

    // What an interrupted delete leaves (only the MP3) can still be deleted by its owner.
    let interrupted = app.upload_file(USER, "i.mp4", b"video").await;
    app.store_mp3(interrupted, Some(USER), "i.mp3", b"mp3")
        .await;
    app.videos
        .collection::<mongodb::bson::Document>("jobs")
        .delete_one(doc! { "_id": interrupted })
        .await
        .unwrap();
    app.videos
        .gridfs_bucket(None)
        .delete(interrupted.into())
        .await
        .unwrap();
    assert_eq!(delete(&app, interrupted).await, 204);
    nothing_left(&app).await;
    assert_eq!(delete(&app, interrupted).await, 404);
}

fn sweeping(after_secs: u64, max_requeues: u32) -> Options {
    Options {
        env: vec![
            ("REQUEUE_STUCK_AFTER_SECS", after_secs.to_string()),
            ("MAX_REQUEUES", max_requeues.to_string()),
        ],
        ..Options::default()
    }
}

/// Takes every message of the test's queue for `video_fid` until `want` arrived or a quiet
/// spell passed (`next_message` waits a few seconds for each).
async fn messages_for(app: &TestApp, video_fid: ObjectId, want: usize) -> usize {
    let mut seen = 0;
    while seen < want {
        let Some((data, _)) = app.next_message().await else {
            break;
        };
        let message: serde_json::Value = serde_json::from_slice(&data).unwrap();
        if message["video_fid"] == video_fid.to_hex() {
            assert_eq!(message["username"], USER);
            seen += 1;
        }
    }
    seen
}

async fn wait_for_state(app: &TestApp, fid: ObjectId, state: &str) -> mongodb::bson::Document {
    for _ in 0..300 {
        if let Some(job) = app.job(fid).await {
            if job.get_str("state") == Ok(state) {
                return job;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("job {fid} never became {state}: {:?}", app.job(fid).await);
}

#[tokio::test]
async fn a_job_whose_message_was_lost_is_published_again_then_failed_with_a_reason() {
    let app = TestApp::spawn_with(sweeping(1, 2)).await;
    let fid = app.upload_file(USER, "lost.mp4", b"video").await;
    // The original message is lost (taken and never acknowledged by a converter).
    assert_eq!(messages_for(&app, fid, 1).await, 1);

    // Twice re-published, each time the same message...
    assert_eq!(messages_for(&app, fid, 2).await, 2);
    // ...then failed with a reason, and never published again.
    let job = wait_for_state(&app, fid, "failed").await;
    assert!(
        job.get_str("error")
            .unwrap()
            .contains("no converter took the upload"),
        "{job}"
    );
    assert_eq!(job.get_i32("requeues").unwrap(), 2);
    assert_eq!(messages_for(&app, fid, 1).await, 0);
}

#[tokio::test]
async fn two_replicas_publish_a_stuck_job_once_per_round() {
    let app = TestApp::spawn_with(sweeping(1, 3)).await;
    let (_replica, replica_task) = app.spawn_replica().await;
    let fid = app.upload_file(USER, "twice.mp4", b"video").await;
    assert_eq!(messages_for(&app, fid, 1).await, 1);
    let job = wait_for_state(&app, fid, "failed").await;
    // Three rounds, one message each, whichever replica won the claim.
    assert_eq!(job.get_i32("requeues").unwrap(), 3);
    assert_eq!(messages_for(&app, fid, 4).await, 3);
    replica_task.abort();
}

#[tokio::test]
async fn the_sweeper_leaves_started_jobs_alone_and_never_resurrects_a_deleted_one() {
    let app = TestApp::spawn_with(sweeping(1, 5)).await;
    let started = app.upload_file(USER, "started.mp4", b"video").await;
    app.update_job(started, doc! { "state": "processing", "progress": 5.0 })
        .await;
    let deleted = app.upload_file(USER, "deleted.mp4", b"video").await;
    assert_eq!(delete(&app, deleted).await, 204);
    // The two original messages, in order.
    assert_eq!(messages_for(&app, started, 1).await, 1);
    assert_eq!(messages_for(&app, deleted, 1).await, 1);
    // Older than the threshold, so the sweeper would act if it were going to.
    app.update_job(started, doc! { "updated_at": DateTime::from_millis(0) })
        .await;

    assert_eq!(messages_for(&app, deleted, 1).await, 0);
    assert!(
        app.job(deleted).await.is_none(),
        "the deleted job came back"
    );
    let job = app.job(started).await.unwrap();
    assert_eq!(job.get_str("state").unwrap(), "processing");
    assert!(job.get("requeues").is_none(), "{job}");
}

#[tokio::test]
async fn a_queued_job_whose_upload_is_gone_is_removed() {
    let app = TestApp::spawn_with(sweeping(1, 5)).await;
    let fid = app.upload_file(USER, "gone.mp4", b"video").await;
    app.videos
        .gridfs_bucket(None)
        .delete(fid.into())
        .await
        .unwrap();
    for _ in 0..300 {
        if app.job(fid).await.is_none() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(app.job(fid).await.is_none(), "the orphan job stayed");
}
