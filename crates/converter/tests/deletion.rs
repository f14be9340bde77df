//! An upload deleted by its owner (the gateway's `DELETE /jobs/{fid}` removes its MP3s, the
//! upload and the job) at any stage leaves nothing behind, and its job never comes back.

// Test code, helpers included (clippy.toml's allow-*-in-tests covers #[test] functions only):
// a panic is a failed test with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod helpers;

use std::time::Duration;

use common::jobs::{JobState, Mp3Quality};
use converter::storage::Storage;
use helpers::*;
use mongodb::bson::oid::ObjectId;

const DISCARDED_THREE: &str = r#"converter_jobs_total{outcome="discarded"} 3"#;

/// Nothing of the upload is left: no job, no upload, no MP3, no chunk, no message anywhere.
async fn assert_nothing_left(env: &TestEnv, fid: ObjectId) {
    assert_eq!(env.job(fid).await, None, "the job came back");
    assert!(env.mp3_files(fid).await.is_empty(), "an MP3 was left");
    assert_eq!(env.mp3_chunk_count().await, 0, "MP3 chunks were left");
    let upload = env
        .videos()
        .gridfs_bucket(None)
        .find_one(mongodb::bson::doc! { "_id": fid })
        .await
        .unwrap();
    assert!(upload.is_none());
    assert_eq!(env.declare(&env.queue).await, 0);
    assert_eq!(env.declare(&env.dlq()).await, 0, "dead-lettered");
}

#[tokio::test]
async fn deleted_while_queued_the_message_is_dropped_and_nothing_is_recreated() {
    let env = TestEnv::new().await;
    let src = video_with_audio(env.media.path(), "gone.mp4", 2, 44_100, 2, "aac");
    // Uploads made by our gateway (with a job), deleted in today's order and in the old one,
    // and one made by the original gateway (without a job).
    let mut ours = Vec::new();
    for _ in 0..2 {
        let fid = env.upload(&src, "gone.mp4", "s@example.com").await;
        env.insert_job(&job_with_quality(
            fid,
            "s@example.com",
            "gone.mp4",
            Mp3Quality::default(),
        ))
        .await;
        env.publish(fid, "s@example.com").await;
        ours.push(fid);
    }
    let original = env.upload(&src, "gone.mp4", "s@example.com").await;
    env.publish(original, "s@example.com").await;
    env.delete_like_the_gateway(ours[0]).await;
    env.delete_mp3s_first(ours[1]).await;
    env.delete_like_the_gateway(original).await;

    let app = env.spawn_app().await;
    app.wait_metric(DISCARDED_THREE).await;
    app.stop().await;
    for fid in [ours[0], ours[1], original] {
        assert_nothing_left(&env, fid).await;
    }
    env.cleanup().await;
}

#[tokio::test]
async fn deleted_while_converting_no_mp3_is_left() {
    let env = TestEnv::new().await;
    // Six minutes of audio: still converting when the owner deletes it.
    let src = ffmpeg(
        env.media.path(),
        "long.m4a",
        &[
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=220:sample_rate=44100:duration=360",
            "-c:a",
            "aac",
            "-b:a",
            "32k",
        ],
    );
    let app = env.spawn_app().await;
    for (n, mp3s_first) in [false, true].into_iter().enumerate() {
        let fid = env.upload(&src, "long.m4a", "t@example.com").await;
        env.insert_job(&job_with_quality(
            fid,
            "t@example.com",
            "long.m4a",
            Mp3Quality::cbr(64).unwrap(),
        ))
        .await;
        env.publish(fid, "t@example.com").await;
        env.wait_job(fid, Duration::from_secs(60), |j| {
            j.state == JobState::Processing && j.progress > 0.0
        })
        .await;
        if mp3s_first {
            env.delete_mp3s_first(fid).await;
        } else {
            env.delete_like_the_gateway(fid).await;
        }
        app.wait_metric(&format!(
            r#"converter_jobs_total{{outcome="discarded"}} {}"#,
            n + 1
        ))
        .await;
        assert_nothing_left(&env, fid).await;
    }
    app.stop().await;
    assert!(env.leftover_files().is_empty());
    env.cleanup().await;
}

#[tokio::test]
async fn a_job_is_completed_only_while_it_exists() {
    let env = TestEnv::new().await;
    let config = converter::Config::from_env(&env.env()).unwrap();
    let storage = Storage::connect(&config.mongo).await.unwrap();
    let fid = ObjectId::new();
    // Deleted before the converter finished: the completion creates nothing.
    let completed = storage
        .complete_job(fid, ObjectId::new(), Some(1.0), Some(0.5))
        .await
        .unwrap();
    assert!(!completed);
    assert_eq!(env.job(fid).await, None);
    // And the MP3 upload is not begun for it.
    assert!(!storage
        .begin_mp3_upload(fid, ObjectId::new())
        .await
        .unwrap());
    assert_eq!(env.job(fid).await, None);
    assert_eq!(storage.claim_job(fid).await.unwrap(), None);
    assert_eq!(env.job(fid).await, None);
    env.cleanup().await;
}

#[tokio::test]
async fn a_deleted_upload_leaves_an_mp3_it_shares_to_the_repeat_holding_it() {
    use common::shared_mp3::{Holder, Released, SharedMp3s};
    let env = TestEnv::new().await;
    let src = video_with_audio(env.media.path(), "shared.mp4", 2, 44_100, 2, "aac");
    let fid = env.upload(&src, "shared.mp4", "a@example.com").await;
    env.insert_job(&job_with_quality(
        fid,
        "a@example.com",
        "shared.mp4",
        Mp3Quality::default(),
    ))
    .await;
    env.publish(fid, "a@example.com").await;
    let app = env.spawn_app().await;
    let mp3 = env.wait_final(fid).await.mp3_fid.expect("converted");
    // The gateway gave the MP3 to a repeat, then the first upload was deleted and a copy of its
    // message came again before the gateway let go of the MP3.
    let shared = SharedMp3s::new(&env.mp3s());
    let repeat = Holder {
        video_fid: ObjectId::new(),
        owner: Some("b@example.com".into()),
    };
    assert!(shared.share(mp3, &repeat).await.unwrap());
    env.videos()
        .collection::<mongodb::bson::Document>(common::names::JOBS_COLLECTION)
        .delete_one(mongodb::bson::doc! { "_id": fid })
        .await
        .unwrap();
    env.videos()
        .gridfs_bucket(None)
        .delete(mongodb::bson::Bson::ObjectId(fid))
        .await
        .unwrap();
    env.publish(fid, "a@example.com").await;
    app.wait_metric(r#"converter_jobs_total{outcome="discarded"} 1"#)
        .await;
    app.stop().await;

    // The converter let go of the deleted upload's share only: the repeat's MP3 is whole.
    assert_eq!(env.job(fid).await, None);
    let file = env
        .mp3_bucket()
        .find_one(mongodb::bson::doc! { "_id": mp3 })
        .await
        .unwrap()
        .expect("the shared MP3 is kept");
    let metadata = file.metadata.unwrap();
    assert_eq!(metadata.get_i32("refs").unwrap(), 1);
    assert_eq!(
        metadata.get_str("video_fid").unwrap(),
        repeat.video_fid.to_hex()
    );
    assert!(probe(&env.download_mp3(mp3).await).samples > 44_100);
    // The repeat's own delete removes it.
    assert_eq!(
        shared.release(mp3, repeat.video_fid).await.unwrap(),
        Released::Deleted
    );
    assert_eq!(env.mp3_chunk_count().await, 0);
    env.cleanup().await;
}
