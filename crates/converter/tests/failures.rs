//! Bad inputs leave the queue: job `failed` with a reason, message in `<queue>.dlq`, no retry loop.
//! A message for an upload that no longer exists (nor its job) is dropped.

// Test code, helpers included (clippy.toml's allow-*-in-tests covers #[test] functions only):
// a panic is a failed test with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod helpers;

use std::time::Duration;

use common::jobs::JobState;
use helpers::*;
use mongodb::bson::{doc, oid::ObjectId, DateTime, Document};

#[tokio::test]
async fn permanent_failures_are_dead_lettered_once_with_a_reason() {
    let env = TestEnv::new().await;
    let dir = env.media.path();
    let no_audio = ffmpeg(
        dir,
        "silent-film.mp4",
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=160x120:rate=25:duration=3",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
        ],
    );
    let good = video_with_audio(dir, "good.mp4", 10, 48_000, 2, "aac");
    let bytes = std::fs::read(&good).unwrap();
    // moov at the end and the file cut in half: no index at all.
    let cut = dir.join("cut.mp4");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    // moov first and the file cut in half: the index promises more audio than there is.
    let fast = ffmpeg(
        dir,
        "fast.mp4",
        &[
            "-i",
            good.to_str().unwrap(),
            "-c",
            "copy",
            "-movflags",
            "+faststart",
        ],
    );
    let fast_bytes = std::fs::read(&fast).unwrap();
    let fast_cut = dir.join("fast-cut.mp4");
    std::fs::write(&fast_cut, &fast_bytes[..fast_bytes.len() / 2]).unwrap();
    let garbage = dir.join("garbage.mp4");
    std::fs::write(
        &garbage,
        (0..200_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect::<Vec<_>>(),
    )
    .unwrap();

    let cases = [
        (no_audio, "the video has no audio track"),
        (cut, "not a video or audio file that can be read"),
        (fast_cut, "damaged or incomplete"),
        (garbage, "not a video or audio file that can be read"),
    ];
    let mut fids = Vec::new();
    for (path, _) in &cases {
        let name = path.file_name().unwrap().to_str().unwrap();
        fids.push(env.upload(path, name, "eve@example.com").await);
    }
    let unknown = ObjectId::new();
    // A job whose upload is missing (lost, not deleted: the gateway removes the job too).
    let lost = ObjectId::new();
    env.insert_job(&job_with_quality(
        lost,
        "eve@example.com",
        "lost.mp4",
        Default::default(),
    ))
    .await;

    let app = env.spawn_app().await;
    for fid in &fids {
        env.publish(*fid, "eve@example.com").await;
    }
    env.publish(unknown, "eve@example.com").await;
    env.publish(lost, "eve@example.com").await;
    env.publish_raw(b"{not json").await;
    env.publish_raw(br#"{"video_fid":"nope","mp3_fid":null,"username":"eve@example.com"}"#)
        .await;

    for ((_, reason), fid) in cases.iter().zip(&fids) {
        let job = env.wait_final(*fid).await;
        assert_eq!(job.state, JobState::Failed, "{job:?}");
        let error = job.error.clone().unwrap_or_default();
        assert!(error.contains(reason), "{error:?} should say {reason:?}");
        assert_eq!(job.mp3_fid, None);
        assert!(env.mp3_files(*fid).await.is_empty());
    }
    let job = env.wait_final(lost).await;
    assert_eq!(job.state, JobState::Failed);
    assert_eq!(
        job.error.as_deref(),
        Some("the uploaded video was not found")
    );
    // No upload and no job: deleted while queued. Dropped, and no job is made up for it.
    app.wait_metric(r#"converter_jobs_total{outcome="discarded"} 1"#)
        .await;
    assert_eq!(env.job(unknown).await, None);

    // The other seven reach the dead-letter queue; give a retry loop time to show itself.
    env.wait_dead_letters(7).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(env.declare(&env.queue).await, 0, "the main queue is empty");
    let dead = env.drain_dlq().await;
    assert_eq!(dead.len(), 7, "each message dead-lettered exactly once");
    let reasons: Vec<&str> = dead.iter().map(|(_, r)| r.as_str()).collect();
    assert!(
        reasons.contains(&"the video has no audio track"),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|r| r.contains("not valid JSON")),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|r| r.contains("not a valid file id")),
        "{reasons:?}"
    );
    assert!(
        dead.iter().any(|(body, _)| body == b"{not json"),
        "original payload kept"
    );
    for fid in &fids {
        assert!(env.job(*fid).await.unwrap().attempts <= 1, "never retried");
    }
    assert_eq!(env.job(unknown).await, None, "never recreated");
    let (_, metrics) = app.get("/metrics").await;
    assert!(
        metrics.contains(r#"converter_jobs_total{outcome="failed"} 7"#),
        "{metrics}"
    );
    app.stop().await;
    assert!(
        env.leftover_files().is_empty(),
        "{:?}",
        env.leftover_files()
    );
    env.cleanup().await;
}

#[tokio::test]
async fn transient_failures_retry_a_bounded_number_of_times_then_dead_letter() {
    let env = TestEnv::new().await;
    let src = video_with_audio(env.media.path(), "a.mp4", 2, 44_100, 2, "aac");
    let fid = env.upload(&src, "a.mp4", "f@example.com").await;
    // The MP3 database is unreachable (nothing listens on port 9): every attempt fails.
    let mut vars = env.env();
    vars.insert(
        "MONGODB_MP3S_URI".into(),
        "mongodb://127.0.0.1:9/mp3s?serverSelectionTimeoutMS=200&directConnection=true".into(),
    );
    vars.insert("CONVERTER_MAX_ATTEMPTS".into(), "3".into());
    let app = converter::Application::build(converter::Config::from_env(&vars).unwrap())
        .await
        .unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(app.run_until(async move {
        let _ = stopped.await;
    }));
    env.publish(fid, "f@example.com").await;
    let job = env.wait_final(fid).await;
    assert_eq!(job.state, JobState::Failed, "{job:?}");
    let error = job.error.unwrap();
    assert!(
        error.contains("failed 3 times because of a temporary problem"),
        "{error}"
    );
    let start = std::time::Instant::now();
    while env.declare(&env.dlq()).await < 1 {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "not dead-lettered"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(env.declare(&env.queue).await, 0);
    let _ = stop.send(());
    task.await.unwrap().unwrap();
    env.cleanup().await;
}

#[tokio::test]
async fn permanent_storage_errors_fail_at_once_without_retries() {
    let env = TestEnv::new().await;
    let src = video_with_audio(env.media.path(), "p.mp4", 2, 44_100, 2, "aac");
    let fid = env.upload(&src, "p.mp4", "p@example.com").await;
    // A job document the converter cannot read (an unknown state): MongoDB answers, but the
    // answer can never be used, so retrying only repeats the refusal.
    env.videos()
        .collection::<Document>(common::names::JOBS_COLLECTION)
        .insert_one(doc! {
            "_id": fid, "owner": "p@example.com", "filename": "p.mp4", "state": "bogus",
            "progress": 0.0, "created_at": DateTime::now(), "updated_at": DateTime::now(),
        })
        .await
        .unwrap();
    // A retry would pause at least 60 s first: the job would not be final within the wait.
    let mut vars = env.env();
    vars.insert("CONVERTER_RETRY_BASE_MS".into(), "120000".into());
    vars.insert("CONVERTER_MAX_ATTEMPTS".into(), "5".into());
    let app = env.spawn_app_with_env(&vars).await;
    env.publish(fid, "p@example.com").await;
    env.wait_dead_letters(1).await;
    let job = env.wait_final(fid).await;
    assert_eq!(job.state, JobState::Failed, "{job:?}");
    let error = job.error.unwrap();
    assert!(error.contains("the file store refused it"), "{error}");
    assert!(!error.contains("temporary problem"), "{error}");
    let dead = env.drain_dlq().await;
    assert_eq!(dead.len(), 1);
    assert!(
        dead[0].1.contains("the file store refused it"),
        "{}",
        dead[0].1
    );
    let (_, metrics) = app.get("/metrics").await;
    assert!(
        !metrics.contains("converter_job_retries_total"),
        "a permanent error was retried: {metrics}"
    );
    assert!(
        metrics.contains(r#"converter_jobs_total{outcome="failed"} 1"#),
        "{metrics}"
    );
    app.stop().await;
    env.cleanup().await;
}

#[tokio::test]
async fn a_mongodb_older_than_4_4_keeps_the_messages_queued_and_says_why() {
    let env = TestEnv::new().await;
    // The handshake of a MongoDB 4.0 server (wire version 7), as the original's chart runs.
    let old = common::old_mongo::OldMongo::start(7).await.unwrap();
    let mut vars = env.env();
    vars.remove("MONGODB_VIDEOS_URI");
    vars.remove("MONGODB_MP3S_URI");
    vars.insert("MONGODB_URI".into(), old.uri(""));
    vars.insert("CONVERTER_MAX_ATTEMPTS".into(), "1".into());
    env.publish(ObjectId::new(), "old@example.com").await;
    let app = env.spawn_app_with_env(&vars).await;

    let sentence = format!(
        "MongoDB 4.0 at {} (wire version 7) is older than 4.4, the oldest supported; see \
         docs/migrating-from-python.md",
        old.address()
    );
    let start = std::time::Instant::now();
    loop {
        let (status, body) = app.get("/readyz").await;
        if body.contains(&sentence) {
            assert_eq!(status, 503);
            assert!(body.contains(r#""rabbitmq":"not consuming""#), "{body}");
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "readyz never said why: {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Nothing taken, nothing dead-lettered: the message waits for a usable server.
    assert_eq!(env.declare(&env.queue).await, 1);
    assert_eq!(env.declare(&env.dlq()).await, 0);
    app.stop().await;
    env.cleanup().await;
}
