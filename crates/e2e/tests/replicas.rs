//! Two replicas of each service (`STACK_REPLICAS=2`, which `scripts/test-e2e.sh` sets through
//! `E2E_REPLICAS`): a converter killed mid-job leaves the job to the other one, and the login
//! limits hold across the auth replicas. They kill parts of the stack, so they run in the serial
//! e2e test group (`.config/nextest.toml`). Run with `make test-e2e`.

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use e2e::{assert_decodable_mp3, kill_9, make_video, media_duration, Stack};
use reqwest::StatusCode;

/// Long enough that the kill lands mid-conversion (~30x real time in a debug build).
const LONG_VIDEO_SECONDS: u32 = 600;

fn needs_replicas(stack: &Stack) -> Result<()> {
    ensure!(
        stack.replicas >= 2,
        "this test needs a stack with two replicas of each service (E2E_REPLICAS={}); \
         `make test-e2e` starts one",
        stack.replicas
    );
    Ok(())
}

#[tokio::test]
async fn the_other_converter_finishes_a_job_whose_converter_was_killed() -> Result<()> {
    let stack = Stack::from_env();
    needs_replicas(&stack)?;
    let converters = stack.converters();
    ensure!(
        converters.len() >= 2,
        "two converters should be running: {converters:?}"
    );
    let dir = tempfile::tempdir()?;
    let video = make_video(dir.path(), "replica.mp4", LONG_VIDEO_SECONDS)?;
    let user = stack.new_user().await?;
    let video_fid = stack.upload(&user.token, &video).await?;

    let (busy, progress_at_kill) = stack.wait_converting(&user.token, &video_fid).await?;
    ensure!(
        progress_at_kill < 90.0,
        "too late to kill: {progress_at_kill}%"
    );
    kill_9(busy.pid)?;

    // Not restarted: the job can only be finished by the converters still alive.
    let done = stack
        .wait_final(&user.token, &video_fid, Duration::from_secs(600))
        .await;
    let survivors = stack.converters();
    // Whatever happened, the stack gets its replica back for the tests after this one.
    stack.stack_command(&["start", &busy.name])?;
    let done = done?;
    assert_eq!(done["status"], "completed", "{done}");
    assert!(
        !survivors.is_empty() && survivors.iter().all(|c| c.pid != busy.pid),
        "the killed converter {busy:?} is still listed: {survivors:?}"
    );

    assert_eq!(
        stack.mp3_count(&video_fid).await?,
        1,
        "MP3s stored for {video_fid}"
    );
    let attempts = stack.job_attempts(&video_fid).await?;
    assert!(
        attempts >= 2,
        "the job was not redelivered (attempts {attempts})"
    );
    let mp3 = dir.path().join("replica.mp3");
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

/// Failed logins per (email, address) before auth answers 429: auth's
/// `LOGIN_MAX_FAILURES_PER_EMAIL_AND_IP`, which the stack passes through when it is set.
fn pair_limit() -> u32 {
    std::env::var("LOGIN_MAX_FAILURES_PER_EMAIL_AND_IP")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(10)
}

/// `POST /login` straight to one auth replica, as the gateway would call it for `client_ip`.
async fn login_at(
    stack: &Stack,
    auth: &str,
    email: &str,
    password: &str,
    client_ip: &str,
) -> Result<StatusCode> {
    let response = stack
        .http()
        .post(format!("{auth}/login"))
        .basic_auth(email, Some(password))
        // Auth believes one proxy (the gateway): the right-most entry is the client.
        .header("X-Forwarded-For", client_ip)
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .with_context(|| format!("POST {auth}/login"))?;
    Ok(response.status())
}

// Needs auth's Redis-backed login limits and the stack's REDIS_URL: without them each replica
// counts on its own and the second replica answers 200 here.
#[tokio::test]
async fn the_login_limit_holds_across_auth_replicas() -> Result<()> {
    let stack = Stack::from_env();
    needs_replicas(&stack)?;
    let [first, second, ..] = stack.auth_replicas.as_slice() else {
        anyhow::bail!(
            "E2E_AUTH_REPLICA_URLS names fewer than two auth replicas: {:?}",
            stack.auth_replicas
        );
    };
    let user = stack.new_user().await?;
    // An address of its own (TEST-NET-2), so no other test's failures count with these.
    let ip = format!(
        "198.51.100.{}",
        1 + uuid::Uuid::new_v4().as_bytes()[0] % 254
    );

    let limit = pair_limit();
    for attempt in 1..=limit {
        let status = login_at(&stack, first, &user.email, "not the password", &ip).await?;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "failed login {attempt} of {limit} at {first}"
        );
    }
    // The other replica knows of those failures: even the right password is refused there.
    let status = login_at(&stack, second, &user.email, &user.password, &ip).await?;
    assert_eq!(
        status,
        StatusCode::TOO_MANY_REQUESTS,
        "{second} answered the right password after {limit} failures at {first}"
    );
    // The owner at another address is not locked out, at either replica.
    for auth in [first, second] {
        let status = login_at(&stack, auth, &user.email, &user.password, "203.0.113.9").await?;
        assert_eq!(
            status,
            StatusCode::OK,
            "login from another address at {auth}"
        );
    }
    Ok(())
}
