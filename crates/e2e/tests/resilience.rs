//! Components of a running stack killed or restarted under the services. These tests stop and
//! start parts of the stack, so nothing else may run beside them: `.config/nextest.toml` puts the
//! whole e2e package in one serial test group. Run with `make test-e2e`.

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use e2e::{assert_decodable_mp3, kill_9, make_video, media_duration, Stack, SHORT_JOB_TIMEOUT};
use mongodb::bson::{doc, oid::ObjectId, Document};

/// Length of the video converted while the converter is killed: long enough that the kill lands
/// mid-conversion (the converter runs at roughly 30x real time in a debug build, 100x in release).
const LONG_VIDEO_SECONDS: u32 = 600;

#[tokio::test]
async fn converter_killed_mid_conversion_still_completes_with_exactly_one_mp3() -> Result<()> {
    let stack = Stack::from_env();
    let dir = tempfile::tempdir()?;
    let video = make_video(dir.path(), "long.mp4", LONG_VIDEO_SECONDS)?;
    let user = stack.new_user().await?;
    let video_fid = stack.upload(&user.token, &video).await?;

    // Wait until a converter is visibly working on it (with replicas, the one holding the job's
    // scratch files), then kill it without warning.
    let (busy, progress_at_kill) = stack.wait_converting(&user.token, &video_fid).await?;
    ensure!(
        progress_at_kill < 90.0,
        "too late to kill: {progress_at_kill}%"
    );
    kill_9(busy.pid)?;

    // Restart it through the stack script; the unacknowledged message is delivered again (to it,
    // or to another replica).
    stack.stack_command(&["start", &busy.name])?;
    let done = stack
        .wait_final(&user.token, &video_fid, Duration::from_secs(600))
        .await?;
    assert_eq!(done["status"], "completed", "{done}");

    // Exactly one MP3 for the upload, and the job was attempted again after the kill.
    let mongo = stack.mongo().await?;
    let mp3s = mongo
        .database("mp3s")
        .collection::<Document>("fs.files")
        .count_documents(doc! { "metadata.video_fid": &video_fid })
        .await?;
    assert_eq!(mp3s, 1, "MP3s stored for {video_fid}");
    let oid = ObjectId::parse_str(&video_fid)?;
    let job = mongo
        .database("videos")
        .collection::<Document>("jobs")
        .find_one(doc! { "_id": oid })
        .await?
        .context("no job document")?;
    let attempts = job
        .get("attempts")
        .and_then(|a| a.as_i32().map(i64::from).or_else(|| a.as_i64()))
        .unwrap_or(0);
    assert!(attempts >= 2, "the job was not redelivered: {job}");

    let mp3 = dir.path().join("long.mp3");
    let mp3_fid = done["mp3_fid"].as_str().unwrap_or_default();
    stack.download_to(&user.token, mp3_fid, &mp3).await?;
    assert_decodable_mp3(&mp3)?;
    let seconds = media_duration(&mp3)?;
    assert!(
        (seconds - f64::from(LONG_VIDEO_SECONDS)).abs() < 0.5,
        "the MP3 lasts {seconds} s"
    );
    Ok(())
}

#[tokio::test]
async fn rabbitmq_restarted_while_idle_the_next_upload_still_converts() -> Result<()> {
    let stack = Stack::from_env();
    let dir = tempfile::tempdir()?;
    let video = make_video(dir.path(), "after-restart.mp4", 3)?;
    let user = stack.new_user().await?;

    stack.stack_command(&["restart", "rabbitmq"])?;
    // The services reconnect by themselves; their readiness says when.
    let reconnect = Duration::from_secs(90);
    stack.wait_ready(&stack.gateway_admin, reconnect).await?;
    stack.wait_ready(&stack.converter, reconnect).await?;

    let video_fid = stack.upload(&user.token, &video).await?;
    let done = stack
        .wait_final(&user.token, &video_fid, SHORT_JOB_TIMEOUT)
        .await?;
    assert_eq!(done["status"], "completed", "{done}");
    let mp3 = dir.path().join("after-restart.mp3");
    stack
        .download_to(
            &user.token,
            done["mp3_fid"].as_str().unwrap_or_default(),
            &mp3,
        )
        .await?;
    assert_decodable_mp3(&mp3)?;
    Ok(())
}
