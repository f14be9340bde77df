//! The seed's curl workflow and the additions, through the gateway of a running stack.
//! Run with `make test-e2e`.

use std::time::Duration;

use anyhow::Result;
use e2e::{
    assert_decodable_mp3, is_object_id, make_video, media_duration, Stack, SHORT_JOB_TIMEOUT,
};
use reqwest::StatusCode;

#[tokio::test]
async fn seed_workflow_converts_an_mp4_into_an_mp3_of_the_same_length() -> Result<()> {
    let stack = Stack::from_env();
    let dir = tempfile::tempdir()?;
    let video = make_video(dir.path(), "holiday.mp4", 6)?;

    // register, login
    let user = stack.new_user().await?;
    // A second registration of the same email is refused; a wrong password does not log in.
    let again = stack
        .http()
        .post(format!("{}/register", stack.gateway))
        .basic_auth(&user.email, Some("another-password"))
        .send()
        .await?;
    assert_eq!(again.status(), StatusCode::CONFLICT);
    assert!(stack.login(&user.email, "wrong password").await.is_err());
    let token = stack.login(&user.email, &user.password).await?;

    // upload, status (until done)
    let video_fid = stack.upload(&token, &video).await?;
    let (code, first) = stack.status(&token, &video_fid).await?;
    assert_eq!(code, StatusCode::OK, "{first}");
    assert!(
        first["status"] == "processing" || first["status"] == "completed",
        "{first}"
    );
    let done = stack
        .wait_final(&token, &video_fid, SHORT_JOB_TIMEOUT)
        .await?;
    assert_eq!(done["status"], "completed", "{done}");
    let mp3_fid = done["mp3_fid"].as_str().unwrap_or_default().to_owned();
    assert!(is_object_id(&mp3_fid), "{done}");

    // download
    let response = stack.download_raw(&token, &mp3_fid).await?;
    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(content_type.starts_with("audio/mpeg"), "{content_type}");
    let mp3 = dir.path().join("holiday.mp3");
    std::fs::write(&mp3, response.bytes().await?)?;
    assert_decodable_mp3(&mp3)?;
    let seconds = media_duration(&mp3)?;
    assert!(
        (seconds - 6.0).abs() < 0.2,
        "the MP3 lasts {seconds} s, the video 6 s"
    );

    // The job shows in the user's history.
    let jobs = stack.jobs(&token).await?;
    let job = jobs
        .iter()
        .find(|j| j["video_fid"] == video_fid.as_str())
        .expect("the upload is in GET /jobs");
    assert_eq!(job["state"], "completed");
    assert_eq!(job["filename"], "holiday.mp4");
    Ok(())
}

#[tokio::test]
async fn users_cannot_see_each_others_files() -> Result<()> {
    let stack = Stack::from_env();
    let dir = tempfile::tempdir()?;
    let video = make_video(dir.path(), "private.mp4", 2)?;
    let alice = stack.new_user().await?;
    let bob = stack.new_user().await?;

    let video_fid = stack.upload(&alice.token, &video).await?;
    let done = stack
        .wait_final(&alice.token, &video_fid, SHORT_JOB_TIMEOUT)
        .await?;
    assert_eq!(done["status"], "completed", "{done}");
    let mp3_fid = done["mp3_fid"].as_str().unwrap_or_default().to_owned();

    let (code, body) = stack.status(&bob.token, &video_fid).await?;
    assert_eq!(code, StatusCode::NOT_FOUND, "{body}");
    assert!(body["error"].is_string(), "{body}");
    let download = stack.download_raw(&bob.token, &mp3_fid).await?;
    assert_eq!(download.status(), StatusCode::NOT_FOUND);
    let events = stack
        .events(&bob.token, &video_fid, Duration::from_secs(10))
        .await;
    assert!(events.is_err(), "bob followed alice's events: {events:?}");
    assert!(
        !stack
            .jobs(&bob.token)
            .await?
            .iter()
            .any(|j| j["video_fid"] == video_fid.as_str()),
        "alice's upload is in bob's history"
    );

    // Alice still sees and downloads her own.
    let own = stack.download_raw(&alice.token, &mp3_fid).await?;
    assert_eq!(own.status(), StatusCode::OK);
    // Without a token nobody does.
    let anonymous = stack
        .http()
        .get(format!("{}/download", stack.gateway))
        .query(&[("fid", &mp3_fid)])
        .send()
        .await?;
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    Ok(())
}

#[tokio::test]
async fn a_video_without_audio_and_its_index_last_ends_failed_with_a_reason() -> Result<()> {
    let stack = Stack::from_env();
    let user = stack.new_user().await?;
    // The gateway cannot judge it early (the index comes after the media data): it is stored,
    // queued, and the converter fails it with a reason.
    let dir = tempfile::tempdir()?;
    let silent = dir.path().join("silent.mp4");
    let made = std::process::Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg("testsrc=size=64x48:rate=5:duration=2")
        .args(["-c:v", "mpeg4", "-an"])
        .arg(&silent)
        .status()?;
    assert!(made.success(), "ffmpeg could not make silent.mp4");
    let response = stack
        .upload_raw(&user.token, "silent.mp4", std::fs::read(&silent)?)
        .await?;
    let status = response.status();
    let body: serde_json::Value = response.json().await?;
    assert_eq!(status, StatusCode::OK, "{body}");
    let video_fid = body["video_fid"].as_str().unwrap_or_default().to_owned();

    let done = stack
        .wait_final(&user.token, &video_fid, SHORT_JOB_TIMEOUT)
        .await?;
    assert_eq!(done["status"], "failed", "{done}");
    let reason = done["error"].as_str().unwrap_or_default();
    assert!(reason.contains("no audio track"), "{done}");
    assert!(done.get("mp3_fid").is_none(), "{done}");

    // It stays failed: the message is not redelivered into a loop.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (_, later) = stack.status(&user.token, &video_fid).await?;
    assert_eq!(later["status"], "failed", "{later}");
    Ok(())
}

#[tokio::test]
async fn server_sent_events_follow_a_job_until_it_completes() -> Result<()> {
    let stack = Stack::from_env();
    let dir = tempfile::tempdir()?;
    let video = make_video(dir.path(), "live.mp4", 30)?;
    let user = stack.new_user().await?;
    let video_fid = stack.upload(&user.token, &video).await?;

    let events = stack
        .events(&user.token, &video_fid, SHORT_JOB_TIMEOUT)
        .await?;
    assert!(!events.is_empty(), "no status event arrived");
    let last = events.last().expect("checked above");
    assert_eq!(last["status"], "completed", "{events:?}");
    // Everything before the last event is still in progress; progress never goes back.
    let mut progress = 0.0;
    for event in &events[..events.len() - 1] {
        assert_eq!(event["status"], "processing", "{events:?}");
        let p = event["progress"].as_f64().unwrap_or(0.0);
        assert!(p >= progress, "progress went back: {events:?}");
        progress = p;
    }
    let (_, status) = stack.status(&user.token, &video_fid).await?;
    assert_eq!(last["mp3_fid"], status["mp3_fid"], "{events:?} vs {status}");
    Ok(())
}

#[tokio::test]
async fn metrics_and_readiness_answer_on_the_admin_port_only() -> Result<()> {
    let stack = Stack::from_env();
    for path in ["/metrics", "/readyz"] {
        let res = stack
            .http()
            .get(format!("{}{path}", stack.gateway))
            .send()
            .await?;
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "public {path}");
        let body: serde_json::Value = res.json().await?;
        assert_eq!(body["error"], format!("no such endpoint: {path}").as_str());
    }
    let res = stack
        .http()
        .get(format!("{}/readyz", stack.gateway_admin))
        .send()
        .await?;
    assert_eq!(res.status(), StatusCode::OK);
    let metrics = stack
        .http()
        .get(format!("{}/metrics", stack.gateway_admin))
        .send()
        .await?
        .text()
        .await?;
    assert!(metrics.contains("http_requests_total"), "{metrics}");
    Ok(())
}

#[tokio::test]
async fn a_repeat_by_another_user_completes_at_once_and_outlives_the_first_delete() -> Result<()> {
    let stack = Stack::from_env();
    let dir = tempfile::tempdir()?;
    let video = make_video(dir.path(), "repeat.mp4", 3)?;
    let ann = stack.new_user().await?;
    let bob = stack.new_user().await?;
    let first = stack.upload(&ann.token, &video).await?;
    let done = stack
        .wait_final(&ann.token, &first, SHORT_JOB_TIMEOUT)
        .await?;
    assert_eq!(done["status"], "completed", "{done}");
    let mp3 = done["mp3_fid"].as_str().unwrap_or_default().to_owned();

    // The same file from another user: completed in the upload's answer, the same MP3.
    let second = stack.upload(&bob.token, &video).await?;
    let (_, repeat) = stack.status(&bob.token, &second).await?;
    assert_eq!(repeat["status"], "completed", "{repeat}");
    assert_eq!(repeat["mp3_fid"], mp3.as_str(), "{repeat}");

    // Ann deletes hers: Bob still downloads a whole MP3.
    let deleted = stack
        .http()
        .delete(format!("{}/jobs/{first}", stack.gateway))
        .bearer_auth(&ann.token)
        .send()
        .await?;
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        stack.download_raw(&ann.token, &mp3).await?.status(),
        StatusCode::NOT_FOUND
    );
    let saved = dir.path().join("bob.mp3");
    stack.download_to(&bob.token, &mp3, &saved).await?;
    assert_decodable_mp3(&saved)?;
    assert!((media_duration(&saved)? - 3.0).abs() < 0.3);
    let deleted = stack
        .http()
        .delete(format!("{}/jobs/{second}", stack.gateway))
        .bearer_auth(&bob.token)
        .send()
        .await?;
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        stack.download_raw(&bob.token, &mp3).await?.status(),
        StatusCode::NOT_FOUND
    );
    Ok(())
}

#[tokio::test]
async fn a_pdf_named_mp4_is_refused_with_415_at_upload() -> Result<()> {
    let stack = Stack::from_env();
    let user = stack.new_user().await?;
    let mut pdf = b"%PDF-1.7\n".to_vec();
    pdf.extend(std::iter::repeat_n(b'x', 2_000_000));
    let response = stack.upload_raw(&user.token, "report.mp4", pdf).await?;
    assert_eq!(response.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let body: serde_json::Value = response.json().await?;
    assert!(
        body["error"]
            .as_str()
            .unwrap_or_default()
            .contains("PDF document"),
        "{body}"
    );
    assert!(stack.jobs(&user.token).await?.is_empty());
    Ok(())
}
