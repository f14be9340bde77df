//! The converter publishes job state changes and progress on Redis (real Redis on 127.0.0.1:6379,
//! or `TEST_REDIS_URL`; a channel of the test's own), and keeps converting when Redis is away.

// Test code, helpers included (clippy.toml's allow-*-in-tests covers #[test] functions only):
// a panic is a failed test with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod helpers;

use std::time::Duration;

use common::{
    job_events::{JobEvent, JobEventKind},
    jobs::JobState,
};
use futures::StreamExt;
use helpers::*;

fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// A subscription to a channel no other test uses, confirmed before it is returned.
async fn subscribe() -> (String, redis::aio::PubSub) {
    let channel = format!("test:job-events:{}", uuid::Uuid::new_v4().simple());
    let client = redis::Client::open(redis_url()).unwrap();
    let mut pubsub = client
        .get_async_pubsub()
        .await
        .expect("Redis on TEST_REDIS_URL (default 127.0.0.1:6379)");
    pubsub.subscribe(&channel).await.unwrap();
    (channel, pubsub)
}

/// The events of `video_fid` received until one in a final state (or 60 s pass).
async fn events_until_final(pubsub: &mut redis::aio::PubSub, video_fid: &str) -> Vec<JobEvent> {
    let mut seen = Vec::new();
    let mut messages = pubsub.on_message();
    let collect = async {
        while let Some(message) = messages.next().await {
            let event: JobEvent = serde_json::from_slice(message.get_payload_bytes()).unwrap();
            if event.video_fid != video_fid {
                continue;
            }
            let last = event.state;
            seen.push(event);
            if matches!(last, JobEventKind::Completed | JobEventKind::Failed) {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(60), collect).await;
    seen
}

#[tokio::test]
async fn progress_and_completion_are_published() {
    let env = TestEnv::new().await;
    let (channel, mut pubsub) = subscribe().await;
    // Long enough for several progress reports (one per 250 ms at most).
    let src = ffmpeg(
        env.media.path(),
        "talk.flac",
        &[
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=22050:duration=600",
        ],
    );
    let fid = env.upload(&src, "talk.flac", "ann@example.com").await;
    let app = spawn_app_with(
        &env,
        &[
            ("REDIS_URL", &redis_url()),
            ("REDIS_EVENTS_CHANNEL", &channel),
            // One segment: progress comes from one transcoder.
            ("CONVERTER_CONCURRENCY", "1"),
        ],
    )
    .await;
    env.publish(fid, "ann@example.com").await;

    let events = events_until_final(&mut pubsub, &fid.to_hex()).await;
    let job = env.wait_final(fid).await;
    assert_eq!(job.state, JobState::Completed, "{job:?}");
    let last = events.last().expect("events were published");
    assert_eq!(last, &JobEvent::new(fid.to_hex(), JobEventKind::Completed));
    let progress: Vec<f64> = events.iter().filter_map(|e| e.progress).collect();
    assert_eq!(
        events.first().map(|e| (e.state, e.progress)),
        Some((JobEventKind::Processing, Some(0.0))),
        "the claim is published: {events:?}"
    );
    assert!(
        progress.iter().any(|&p| p > 0.0 && p < 100.0),
        "intermediate progress is published: {events:?}"
    );
    assert!(
        progress.windows(2).all(|w| w[0] <= w[1]),
        "progress never goes back: {progress:?}"
    );
    app.stop().await;
}

#[tokio::test]
async fn failures_are_published() {
    let env = TestEnv::new().await;
    let (channel, mut pubsub) = subscribe().await;
    let garbage = env.media.path().join("garbage.mp4");
    std::fs::write(&garbage, vec![7u8; 50_000]).unwrap();
    let fid = env.upload(&garbage, "garbage.mp4", "eve@example.com").await;
    let app = spawn_app_with(
        &env,
        &[
            ("REDIS_URL", &redis_url()),
            ("REDIS_EVENTS_CHANNEL", &channel),
        ],
    )
    .await;
    env.publish(fid, "eve@example.com").await;

    let events = events_until_final(&mut pubsub, &fid.to_hex()).await;
    assert_eq!(env.wait_final(fid).await.state, JobState::Failed);
    assert_eq!(
        events.last(),
        Some(&JobEvent::new(fid.to_hex(), JobEventKind::Failed)),
        "{events:?}"
    );
    app.stop().await;
}

#[tokio::test]
async fn conversions_go_on_without_redis() {
    let env = TestEnv::new().await;
    let src = video_with_audio(env.media.path(), "clip.mp4", 5, 44_100, 2, "aac");
    let fid = env.upload(&src, "clip.mp4", "ann@example.com").await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("redis://127.0.0.1:{closed}");
    let app = spawn_app_with(&env, &[("REDIS_URL", &url)]).await;
    env.publish(fid, "ann@example.com").await;
    assert_eq!(env.wait_final(fid).await.state, JobState::Completed);
    app.stop().await;
}
