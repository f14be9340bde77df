//! Conversions end to end: real RabbitMQ, the Mongo stand-in, media made with the ffmpeg CLI.

// Test code, helpers included (clippy.toml's allow-*-in-tests covers #[test] functions only):
// a panic is a failed test with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod helpers;

use std::collections::HashMap;

use common::jobs::{JobState, Mp3Quality};
use helpers::*;

#[tokio::test]
async fn original_gateway_message_converts_stereo_aac_48k_sample_exact() {
    let env = TestEnv::new().await;
    let src = video_with_audio(env.media.path(), "holiday clip.mp4", 6, 48_000, 2, "aac");
    let fid = env
        .upload(&src, "holiday clip.mp4", "ann@example.com")
        .await;
    let app = env.spawn_app().await;

    // Exactly what the original gateway publishes, and no job document.
    env.publish(fid, "ann@example.com").await;
    let job = env.wait_final(fid).await;

    assert_eq!(job.state, JobState::Completed, "{job:?}");
    assert_eq!(job.progress, 100.0);
    assert_eq!(job.owner.as_deref(), Some("ann@example.com"));
    assert_eq!(job.filename, "holiday clip.mp4");
    assert_eq!(job.attempts, 1);
    let files = env.mp3_files(fid).await;
    assert_eq!(files.len(), 1);
    let file = &files[0];
    assert_eq!(Some(file.id.clone()), job.mp3_fid.map(Into::into));
    assert_eq!(file.filename.as_deref(), Some("holiday clip.mp3"));
    let meta = metadata(file);
    assert_eq!(meta.get_str("video_fid").unwrap(), fid.to_hex());
    assert_eq!(meta.get_str("owner").unwrap(), "ann@example.com");
    assert_eq!(meta.get_str("content_type").unwrap(), "audio/mpeg");

    let mp3 = env.download_mp3(job.mp3_fid.unwrap()).await;
    let p = probe(&mp3);
    assert_eq!(p.codec, "mp3");
    assert_eq!(p.sample_rate, 48_000, "MP3 supports 48 kHz: kept");
    assert_eq!(p.channels, 2);
    assert_eq!(p.bit_rate, 128_000);
    assert_eq!(p.title, "holiday clip");
    // The LAME header carries delay and padding, so the decode is exactly the source's length.
    let source_samples = decoded_samples(&src, 2, None);
    assert_eq!(p.samples, source_samples);
    let duration = job.duration_secs.unwrap();
    assert!(
        (duration - source_samples as f64 / 48_000.0).abs() < 1e-6,
        "{duration}"
    );
    // What the gateway's ETA is computed from: when the job started and how long it took.
    let started_at = job.started_at.expect("started_at recorded at the claim");
    assert!(started_at <= job.updated_at, "{job:?}");
    assert!(job.processing_secs.is_some_and(|s| s > 0.0), "{job:?}");

    assert_eq!(env.declare(&env.queue).await, 0, "message acked");
    assert_eq!(env.declare(&env.dlq()).await, 0, "nothing dead-lettered");
    let (status, metrics) = app.get("/metrics").await;
    assert_eq!(status, 200);
    assert!(
        metrics.contains(r#"converter_jobs_total{outcome="completed"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains("converter_conversion_seconds"),
        "{metrics}"
    );
    assert!(
        metrics.contains("converter_media_seconds_total"),
        "{metrics}"
    );
    assert!(
        env.leftover_files().is_empty(),
        "{:?}",
        env.leftover_files()
    );
    app.stop().await;
    assert!(env.leftover_files().is_empty());
    env.cleanup().await;
}

#[tokio::test]
async fn mono_mp3_in_mp4_with_moov_at_the_end_honours_the_requested_bitrate() {
    let env = TestEnv::new().await;
    // The MP4 muxer writes the moov atom at the end unless told otherwise (+faststart).
    let src = video_with_audio(env.media.path(), "talk.mp4", 5, 44_100, 1, "libmp3lame");
    let fid = env.upload(&src, "talk.mp4", "bob@example.com").await;
    env.insert_job(&job_with_quality(
        fid,
        "bob@example.com",
        "talk.mp4",
        Mp3Quality::cbr(192).unwrap(),
    ))
    .await;
    let app = env.spawn_app().await;
    env.publish(fid, "bob@example.com").await;
    let job = env.wait_final(fid).await;
    assert_eq!(job.state, JobState::Completed, "{job:?}");

    let p = probe(&env.download_mp3(job.mp3_fid.unwrap()).await);
    assert_eq!(
        (p.sample_rate, p.channels, p.bit_rate),
        (44_100, 1, 192_000)
    );
    assert_eq!(p.title, "talk");
    assert_eq!(p.samples, decoded_samples(&src, 1, None));
    app.stop().await;
    assert!(env.leftover_files().is_empty());
    env.cleanup().await;
}

#[tokio::test]
async fn odd_source_rate_is_resampled_to_44100_with_the_same_duration() {
    let env = TestEnv::new().await;
    let src = video_with_audio(env.media.path(), "odd.mp4", 4, 22_050, 2, "aac");
    let fid = env.upload(&src, "odd.mp4", "c@example.com").await;
    let app = env.spawn_app().await;
    env.publish(fid, "c@example.com").await;
    let job = env.wait_final(fid).await;
    assert_eq!(job.state, JobState::Completed, "{job:?}");
    let p = probe(&env.download_mp3(job.mp3_fid.unwrap()).await);
    assert_eq!(
        (p.sample_rate, p.channels, p.bit_rate),
        (44_100, 2, 128_000)
    );
    let source = decoded_samples(&src, 2, None);
    // 22050 -> 44100 doubles the count; the resampler may differ by a few samples at the end.
    assert!(
        p.samples.abs_diff(source * 2) <= 64,
        "{} vs {}",
        p.samples,
        source * 2
    );
    app.stop().await;
    env.cleanup().await;
}

#[tokio::test]
async fn vbr_quality_changes_the_bitrate() {
    let env = TestEnv::new().await;
    // Noise makes the VBR encoder's choices visible in the average bitrate.
    let src = ffmpeg(
        env.media.path(),
        "noise.mp4",
        &[
            "-f",
            "lavfi",
            "-i",
            "anoisesrc=d=5:c=pink:r=44100:a=0.5",
            "-ac",
            "2",
            "-c:a",
            "aac",
            "-b:a",
            "256k",
        ],
    );
    let mut fids = Vec::new();
    for quality in [0u8, 9] {
        let fid = env.upload(&src, "noise.mp4", "d@example.com").await;
        env.insert_job(&job_with_quality(
            fid,
            "d@example.com",
            "noise.mp4",
            Mp3Quality::vbr(quality).unwrap(),
        ))
        .await;
        fids.push(fid);
    }
    let app = env.spawn_app().await;
    for fid in &fids {
        env.publish(*fid, "d@example.com").await;
    }
    let mut rates = Vec::new();
    for fid in &fids {
        let job = env.wait_final(*fid).await;
        assert_eq!(job.state, JobState::Completed, "{job:?}");
        let p = probe(&env.download_mp3(job.mp3_fid.unwrap()).await);
        assert_eq!(p.samples, decoded_samples(&src, 2, None));
        rates.push(p.bit_rate);
    }
    // V0 is LAME's best (~245 kb/s average), V9 its smallest (~65 kb/s).
    assert!(
        rates[0] > rates[1] * 2,
        "V0 {} vs V9 {}",
        rates[0],
        rates[1]
    );
    assert!(rates[0] != 128_000 && rates[1] != 128_000, "{rates:?}");
    app.stop().await;
    env.cleanup().await;
}

#[tokio::test]
async fn readiness_follows_the_consumer_and_health_is_always_up() {
    let env = TestEnv::new().await;
    let app = env.spawn_app().await;
    assert_eq!(app.get("/healthz").await.0, 200);
    app.wait_ready().await;
    let (_, body) = app.get("/readyz").await;
    assert!(body.contains(r#""rabbitmq":"consuming""#), "{body}");
    assert!(body.contains(r#""mongodb":"ok""#), "{body}");
    app.stop().await;
    env.cleanup().await;
}

#[tokio::test]
async fn the_original_converter_configmap_converts() {
    let mut env = TestEnv::new().await;
    env.use_original_databases();
    let src = video_with_audio(env.media.path(), "old.mp4", 2, 44_100, 2, "aac");
    let fid = env.upload(&src, "old.mp4", "ops@example.com").await;

    // src/converter-service/manifest/configmap.yaml of the original: MONGODB_URI with `mp3s` in
    // its path (credentials left out: the stand-in has no users; host and queue are this
    // test's). RABBITMQ_URL stands for the original's hard-coded host `rabbitmq`.
    let (_, hosts_and_path) = env.mongo_uri.split_once("://").unwrap();
    let host = hosts_and_path.split('/').next().unwrap();
    let original_env: HashMap<String, String> = [
        ("MP3_QUEUE", "mp3".to_owned()),
        ("VIDEO_QUEUE", env.queue.clone()),
        (
            "MONGODB_URI",
            format!("mongodb://{host}/mp3s?authSource=admin&directConnection=true"),
        ),
        ("RABBITMQ_URL", env.amqp_url.clone()),
        ("CONVERTER_ADDR", "127.0.0.1:0".to_owned()),
        ("CONVERTER_TMP_DIR", env.tmp.path().display().to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let app = env.spawn_app_with_env(&original_env).await;

    env.publish(fid, "ops@example.com").await;
    let job = env.wait_final(fid).await;
    assert_eq!(job.state, JobState::Completed, "{job:?}");
    let files = env.mp3_files(fid).await;
    assert_eq!(files.len(), 1, "one MP3 in the database mp3s");
    assert_eq!(Some(files[0].id.clone()), job.mp3_fid.map(Into::into));
    assert_eq!(env.declare(&env.dlq()).await, 0, "nothing dead-lettered");
    app.stop().await;

    // The shared databases keep only what other tests stored.
    let mp3_bucket = env.mp3_bucket();
    mp3_bucket.delete(files[0].id.clone()).await.unwrap();
    env.videos()
        .gridfs_bucket(None)
        .delete(fid.into())
        .await
        .unwrap();
    env.videos()
        .collection::<mongodb::bson::Document>(common::names::JOBS_COLLECTION)
        .delete_one(mongodb::bson::doc! { "_id": fid })
        .await
        .unwrap();
    env.cleanup().await;
}

#[tokio::test]
async fn every_log_line_of_a_job_carries_the_gateways_request_id_and_trace_id() {
    let (logs, _guard) = capture_logs();
    let env = TestEnv::new().await;
    let src = video_with_audio(env.media.path(), "traced.mp4", 2, 44_100, 1, "aac");
    let fid = env.upload(&src, "traced.mp4", "tia@example.com").await;
    let app = env.spawn_app().await;
    let request_id = "0f8fad5b-d9cb-469f-a165-70867728950e";
    let traceparent = "00-0f8fad5bd9cb469fa16570867728950e-00f067aa0ba902b7-01";

    env.publish_traced(fid, "tia@example.com", request_id, traceparent)
        .await;
    let job = env.wait_final(fid).await;
    assert_eq!(job.state, JobState::Completed, "{job:?}");
    app.stop().await;

    let text = String::from_utf8(logs.lock().unwrap().clone()).unwrap();
    let job_lines: Vec<serde_json::Value> = text
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|line| {
            line["spans"]
                .as_array()
                .is_some_and(|spans| spans.iter().any(|s| s["name"] == "job"))
        })
        .collect();
    assert!(job_lines.len() >= 2, "log lines of the job: {text}");
    for line in &job_lines {
        let job_span = line["spans"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == "job")
            .unwrap();
        assert_eq!(job_span["request_id"], request_id, "{line}");
        assert_eq!(
            job_span["trace_id"], "0f8fad5bd9cb469fa16570867728950e",
            "{line}"
        );
    }
    env.cleanup().await;
}
