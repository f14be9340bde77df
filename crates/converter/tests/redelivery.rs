//! At-least-once delivery, exactly one MP3: crashes, redeliveries and shutdowns.

// Test code, helpers included (clippy.toml's allow-*-in-tests covers #[test] functions only):
// a panic is a failed test with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod helpers;

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use common::jobs::JobState;
use futures::AsyncWriteExt;
use helpers::*;
use mongodb::bson::doc;

/// A 6-minute mono AAC track (1.4 MB): long enough to interrupt mid-conversion, small enough
/// for the in-memory Mongo stand-in.
fn long_audio(env: &TestEnv) -> std::path::PathBuf {
    ffmpeg(
        env.media.path(),
        "lecture.m4a",
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
    )
}

/// Uploads the long track with a job asking for 64 kb/s (a smaller MP3 to store).
async fn upload_long(
    env: &TestEnv,
    owner: &str,
) -> (std::path::PathBuf, mongodb::bson::oid::ObjectId) {
    let src = long_audio(env);
    let fid = env.upload(&src, "lecture.m4a", owner).await;
    env.insert_job(&job_with_quality(
        fid,
        owner,
        "lecture.m4a",
        common::jobs::Mp3Quality::cbr(64).unwrap(),
    ))
    .await;
    (src, fid)
}

fn start_binary(env: &TestEnv, extra: &[(&str, &str)]) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_converter"));
    cmd.envs(env.env())
        .envs(extra.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    cmd.spawn().expect("converter binary")
}

fn signal(child: &Child, name: &str) {
    let ok = Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
}

fn wait_exit(child: &mut Child, timeout: Duration) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(start.elapsed() < timeout, "converter did not exit");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test]
async fn mp3s_stored_by_earlier_deliveries_are_reused_and_duplicates_removed() {
    let env = TestEnv::new().await;
    let src = video_with_audio(env.media.path(), "clip.mp4", 2, 44_100, 2, "aac");
    let fid = env.upload(&src, "clip.mp4", "g@example.com").await;
    // A converter died after storing its MP3 (twice, even), before recording the job.
    let mp3 = ffmpeg(
        env.media.path(),
        "old.mp3",
        &["-i", src.to_str().unwrap(), "-vn", "-c:a", "libmp3lame"],
    );
    let mut stored = Vec::new();
    for _ in 0..2 {
        let mut up = env
            .mp3_bucket()
            .open_upload_stream("clip.mp3")
            .metadata(doc! { "video_fid": fid.to_hex(), "owner": "g@example.com", "content_type": "audio/mpeg" })
            .await
            .unwrap();
        up.write_all(&std::fs::read(&mp3).unwrap()).await.unwrap();
        up.close().await.unwrap();
        stored.push(up.id().as_object_id().unwrap());
    }
    let app = env.spawn_app().await;
    env.publish(fid, "g@example.com").await;
    let job = env.wait_final(fid).await;
    assert_eq!(job.state, JobState::Completed, "{job:?}");
    assert_eq!(job.mp3_fid, Some(stored[0]), "the oldest MP3 is kept");
    let files = env.mp3_files(fid).await;
    assert_eq!(files.len(), 1);
    assert_eq!(job.attempts, 0, "nothing converted again");
    let (_, metrics) = app.get("/metrics").await;
    assert!(
        metrics.contains(r#"converter_jobs_total{outcome="duplicate"} 1"#),
        "{metrics}"
    );
    app.stop().await;
    env.cleanup().await;
}

#[tokio::test]
async fn killed_mid_conversion_then_restarted_yields_exactly_one_mp3() {
    let env = TestEnv::new().await;
    let (src, fid) = upload_long(&env, "h@example.com").await;
    env.publish(fid, "h@example.com").await;

    let mut first = start_binary(&env, &[]);
    let job = env
        .wait_job(fid, Duration::from_secs(60), |j| {
            j.state == JobState::Processing && j.progress > 0.0
        })
        .await;
    assert!(job.progress < 100.0, "{job:?}");
    first.kill().unwrap(); // SIGKILL: no chance to clean up or requeue
    first.wait().unwrap();
    assert!(
        !env.leftover_files().is_empty(),
        "the killed process left its scratch files"
    );

    let mut second = start_binary(&env, &[]);
    let job = env.wait_final(fid).await;
    assert_eq!(job.state, JobState::Completed, "{job:?}");
    assert_eq!(job.attempts, 2, "redelivered once");
    assert_eq!(job.quality, common::jobs::Mp3Quality::cbr(64).unwrap());
    let files = env.mp3_files(fid).await;
    assert_eq!(files.len(), 1, "exactly one MP3");
    let p = probe(&env.download_mp3(job.mp3_fid.unwrap()).await);
    assert_eq!(p.samples, decoded_samples(&src, 1, None));
    assert_eq!(env.declare(&env.queue).await, 0);

    signal(&second, "TERM");
    assert!(wait_exit(&mut second, Duration::from_secs(30)).success());
    assert!(
        env.leftover_files().is_empty(),
        "{:?}",
        env.leftover_files()
    );
    env.cleanup().await;
}

#[tokio::test]
async fn sigterm_lets_the_conversion_in_flight_finish() {
    let env = TestEnv::new().await;
    let (_, fid) = upload_long(&env, "i@example.com").await;
    env.publish(fid, "i@example.com").await;
    let mut child = start_binary(&env, &[]);
    env.wait_job(fid, Duration::from_secs(60), |j| {
        j.state == JobState::Processing && j.progress > 0.0
    })
    .await;
    signal(&child, "TERM");
    assert!(wait_exit(&mut child, Duration::from_secs(60)).success());
    let job = env.job(fid).await.unwrap();
    assert_eq!(job.state, JobState::Completed, "{job:?}");
    assert_eq!(env.mp3_files(fid).await.len(), 1);
    assert_eq!(env.declare(&env.queue).await, 0);
    assert!(env.leftover_files().is_empty());
    env.cleanup().await;
}

#[tokio::test]
async fn sigterm_requeues_work_that_would_outlast_the_grace_period() {
    let env = TestEnv::new().await;
    let (_, fid) = upload_long(&env, "j@example.com").await;
    env.publish(fid, "j@example.com").await;
    let mut child = start_binary(&env, &[("CONVERTER_SHUTDOWN_GRACE_SECS", "0")]);
    env.wait_job(fid, Duration::from_secs(60), |j| {
        j.state == JobState::Processing && j.progress > 0.0
    })
    .await;
    signal(&child, "TERM");
    assert!(wait_exit(&mut child, Duration::from_secs(30)).success());
    let job = env.job(fid).await.unwrap();
    assert_eq!(job.state, JobState::Queued, "{job:?}");
    assert!(env.mp3_files(fid).await.is_empty());
    assert_eq!(
        env.declare(&env.queue).await,
        1,
        "the message is back in the queue"
    );
    assert!(
        env.leftover_files().is_empty(),
        "{:?}",
        env.leftover_files()
    );

    // The next converter picks it up.
    let app = env.spawn_app().await;
    let job = env.wait_final(fid).await;
    assert_eq!(job.state, JobState::Completed, "{job:?}");
    assert_eq!(env.mp3_files(fid).await.len(), 1);
    app.stop().await;
    env.cleanup().await;
}

/// Rollouts stop converters all the time, and an operator watches for ERROR lines while
/// switching from the original: an idle converter stopped by SIGTERM logs none. (Dropping the
/// channel let lapin close it behind the connection close, logged as a connection ERROR about
/// every second stop.)
#[tokio::test]
async fn sigterm_when_idle_logs_no_error() {
    let env = TestEnv::new().await;
    for _ in 0..4 {
        let mut child = Command::new(env!("CARGO_BIN_EXE_converter"))
            .envs(env.env())
            .env("LOG_FORMAT", "json")
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("converter binary");
        let logs = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(logs).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut lines = Vec::new();
        loop {
            let Ok(line) = rx.recv_timeout(Duration::from_secs(30)) else {
                let _ = child.kill();
                panic!("the converter never consumed: {lines:#?}");
            };
            let consuming = line.contains("\"consuming\"");
            lines.push(line);
            if consuming {
                break;
            }
        }
        signal(&child, "TERM");
        assert!(wait_exit(&mut child, Duration::from_secs(30)).success());
        reader.join().unwrap();
        lines.extend(rx.try_iter());
        assert!(
            lines.iter().any(|l| l.contains("consumer stopped")),
            "{lines:#?}"
        );
        let errors: Vec<_> = lines
            .iter()
            .filter(|l| l.contains(r#""level":"ERROR""#))
            .collect();
        assert!(errors.is_empty(), "{errors:#?}");
    }
    env.cleanup().await;
}

/// Closes our broker connection from the server side, as a broker restart does.
fn close_broker_connection(queue: &str) -> bool {
    let out = Command::new("rabbitmqctl")
        .args(["-q", "list_connections", "pid", "client_properties"])
        .output()
        .expect("rabbitmqctl");
    let text = String::from_utf8_lossy(&out.stdout);
    let name = format!("\"converter:{queue}\"");
    let Some(pid) = text
        .lines()
        .find(|l| l.contains(&name))
        .and_then(|l| l.split_whitespace().next())
    else {
        return false;
    };
    Command::new("rabbitmqctl")
        .args([
            "-q",
            "close_connection",
            pid,
            "closed by the reconnect test",
        ])
        .status()
        .expect("rabbitmqctl")
        .success()
}

#[tokio::test]
async fn consumer_reconnects_after_the_broker_drops_the_connection() {
    let env = TestEnv::new().await;
    let app = env.spawn_app().await;
    app.wait_ready().await;
    assert!(
        close_broker_connection(&env.queue),
        "our connection was not listed"
    );
    // Not ready while disconnected, ready again once reconnected.
    let start = Instant::now();
    while app.get("/readyz").await.0 == 200 {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the loss was never noticed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    app.wait_ready().await;

    let src = video_with_audio(env.media.path(), "after.mp4", 2, 44_100, 2, "aac");
    let fid = env.upload(&src, "after.mp4", "k@example.com").await;
    env.publish(fid, "k@example.com").await;
    let job = env.wait_final(fid).await;
    assert_eq!(job.state, JobState::Completed, "{job:?}");
    app.stop().await;
    env.cleanup().await;
}

#[tokio::test]
async fn a_file_the_converter_dies_on_every_time_is_failed_after_the_limit() {
    let env = TestEnv::new().await;
    let (_, fid) = upload_long(&env, "p@example.com").await;
    env.publish(fid, "p@example.com").await;
    let limit = [("CONVERTER_MAX_ATTEMPTS", "2")];
    // Whatever kills it (an out-of-memory kill, a crash in FFmpeg), the process dies
    // mid-conversion and the broker hands the message to the next converter.
    for attempt in 1..=2 {
        let mut child = start_binary(&env, &limit);
        env.wait_job(fid, Duration::from_secs(60), |j| {
            j.state == JobState::Processing && j.attempts == attempt && j.progress > 0.0
        })
        .await;
        child.kill().unwrap();
        child.wait().unwrap();
    }

    let mut last = start_binary(&env, &limit);
    let job = env.wait_final(fid).await;
    assert_eq!(job.state, JobState::Failed, "{job:?}");
    assert_eq!(
        job.error.as_deref(),
        Some("the converter stopped while converting this file 2 times")
    );
    env.wait_dead_letters(1).await;
    let dead = env.drain_dlq().await;
    assert_eq!(dead.len(), 1);
    assert_eq!(
        dead[0].1,
        "the converter stopped while converting this file 2 times"
    );
    assert!(env.mp3_files(fid).await.is_empty());
    signal(&last, "TERM");
    assert!(wait_exit(&mut last, Duration::from_secs(30)).success());
    assert_eq!(env.declare(&env.queue).await, 0, "not requeued");
    assert!(
        env.leftover_files().is_empty(),
        "{:?}",
        env.leftover_files()
    );
    env.cleanup().await;
}

#[tokio::test]
async fn shutdowns_do_not_count_as_deaths() {
    let env = TestEnv::new().await;
    let (_, fid) = upload_long(&env, "q@example.com").await;
    env.publish(fid, "q@example.com").await;
    let settings = [
        ("CONVERTER_MAX_ATTEMPTS", "1"),
        ("CONVERTER_SHUTDOWN_GRACE_SECS", "0"),
    ];
    for _ in 0..2 {
        let mut child = start_binary(&env, &settings);
        env.wait_job(fid, Duration::from_secs(60), |j| {
            j.state == JobState::Processing && j.progress > 0.0
        })
        .await;
        signal(&child, "TERM");
        assert!(wait_exit(&mut child, Duration::from_secs(30)).success());
        let job = env.job(fid).await.unwrap();
        assert_eq!((job.state, job.attempts), (JobState::Queued, 0), "{job:?}");
    }
    let app = spawn_app_with(&env, &settings).await;
    let job = env.wait_final(fid).await;
    assert_eq!(job.state, JobState::Completed, "{job:?}");
    app.stop().await;
    env.cleanup().await;
}

#[tokio::test]
async fn the_chunks_of_an_mp3_upload_cut_short_are_swept_by_the_next_delivery() {
    let env = TestEnv::new().await;
    let src = video_with_audio(env.media.path(), "cut.mp4", 2, 44_100, 2, "aac");
    let fid = env.upload(&src, "cut.mp4", "r@example.com").await;
    env.insert_job(&job_with_quality(
        fid,
        "r@example.com",
        "cut.mp4",
        common::jobs::Mp3Quality::default(),
    ))
    .await;
    // What a converter killed while streaming its MP3 leaves: the job names the upload it had
    // begun, two chunks are stored, the files document (written last) is not.
    let unfinished = mongodb::bson::oid::ObjectId::new();
    env.videos()
        .collection::<mongodb::bson::Document>(common::names::JOBS_COLLECTION)
        .update_one(
            doc! { "_id": fid },
            doc! { "$set": { "state": "processing", "attempts": 1, "mp3_upload": unfinished } },
        )
        .await
        .unwrap();
    let chunks = env
        .mp3s()
        .collection::<mongodb::bson::Document>("fs.chunks");
    for n in 0..2 {
        let data = mongodb::bson::Binary {
            subtype: mongodb::bson::spec::BinarySubtype::Generic,
            bytes: vec![0xAB; 1000],
        };
        chunks
            .insert_one(doc! { "files_id": unfinished, "n": n, "data": data })
            .await
            .unwrap();
    }
    assert_eq!(env.mp3_chunk_count().await, 2);

    let app = env.spawn_app().await;
    env.publish(fid, "r@example.com").await;
    let job = env.wait_final(fid).await;
    assert_eq!(job.state, JobState::Completed, "{job:?}");
    assert_eq!(job.attempts, 2);
    let left = chunks
        .count_documents(doc! { "files_id": unfinished })
        .await
        .unwrap();
    assert_eq!(left, 0, "the orphan chunks were not swept");
    let files = env.mp3_files(fid).await;
    assert_eq!(files.len(), 1);
    // Every chunk left belongs to the MP3 kept.
    let expected = files[0]
        .length
        .div_ceil(u64::from(files[0].chunk_size_bytes));
    assert_eq!(env.mp3_chunk_count().await, expected);
    let raw = env
        .videos()
        .collection::<mongodb::bson::Document>(common::names::JOBS_COLLECTION)
        .find_one(doc! { "_id": fid })
        .await
        .unwrap()
        .unwrap();
    assert!(!raw.contains_key("mp3_upload"), "{raw}");
    app.stop().await;
    env.cleanup().await;
}
