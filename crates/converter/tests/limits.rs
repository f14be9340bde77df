//! Hostile inputs: playlists, very long or lying media, huge outputs, many streams, audio with no
//! known format. Each fails its job with a reason and is dead-lettered; nothing is fetched.

// Test code, helpers included (clippy.toml's allow-*-in-tests covers #[test] functions only):
// a panic is a failed test with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod helpers;

use std::{
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
};

use common::jobs::{JobState, Mp3Quality};
use helpers::*;
use mongodb::bson::oid::ObjectId;

/// Uploads each file, publishes them, and returns each job's error once all have failed.
async fn fail_each(env: &TestEnv, files: &[&Path]) -> Vec<String> {
    let mut fids = Vec::new();
    for path in files {
        let name = path.file_name().unwrap().to_str().unwrap();
        let fid = env.upload(path, name, "mallory@example.com").await;
        env.publish(fid, "mallory@example.com").await;
        fids.push(fid);
    }
    let mut errors = Vec::new();
    for fid in fids {
        let job = env.wait_final(fid).await;
        assert_eq!(job.state, JobState::Failed, "{job:?}");
        assert!(env.mp3_files(fid).await.is_empty(), "{job:?}");
        errors.push(job.error.unwrap_or_default());
    }
    env.wait_dead_letters(files.len() as u32).await;
    assert_eq!(env.declare(&env.queue).await, 0);
    let reasons: Vec<String> = env.drain_dlq().await.into_iter().map(|(_, r)| r).collect();
    for error in &errors {
        assert!(reasons.contains(error), "{error:?} not in {reasons:?}");
    }
    errors
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test]
async fn playlists_and_scripts_are_refused_and_nothing_is_fetched() {
    let env = TestEnv::new().await;
    let dir = env.media.path();
    // Anyone connecting here is the converter following a URL it was given.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let contacts = Arc::new(AtomicUsize::new(0));
    let counter = contacts.clone();
    let watcher = tokio::spawn(async move {
        while listener.accept().await.is_ok() {
            counter.fetch_add(1, Ordering::SeqCst);
        }
    });
    // A media file on the converter's machine, which a playlist must not smuggle out as an MP3.
    let local = ffmpeg(
        dir,
        "server-side.m4a",
        &["-f", "lavfi", "-i", "sine=duration=3", "-c:a", "aac"],
    );
    let hls_remote = write(
        dir,
        "remote.m3u8",
        &format!(
            "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:10\n#EXT-X-MEDIA-SEQUENCE:0\n\
             #EXTINF:10.0,\nhttp://127.0.0.1:{port}/seg0.ts\n#EXT-X-ENDLIST\n"
        ),
    );
    let hls_local = write(
        dir,
        "local.m3u8",
        &format!(
            "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:10\n#EXT-X-MEDIA-SEQUENCE:0\n\
             #EXTINF:3.0,\n{}\n#EXT-X-ENDLIST\n",
            local.display()
        ),
    );
    let dash = write(
        dir,
        "remote.mpd",
        &format!(
            r#"<?xml version="1.0"?>
<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="static" mediaPresentationDuration="PT10S"
     minBufferTime="PT1S" profiles="urn:mpeg:dash:profile:isoff-on-demand:2011">
  <BaseURL>http://127.0.0.1:{port}/</BaseURL>
  <Period><AdaptationSet mimeType="audio/mp4">
    <Representation id="a" bandwidth="64000" codecs="mp4a.40.2" audioSamplingRate="44100">
      <BaseURL>audio.m4a</BaseURL>
    </Representation>
  </AdaptationSet></Period>
</MPD>
"#
        ),
    );
    let concat = write(
        dir,
        "list.ffconcat",
        &format!("ffconcat version 1.0\nfile '{}'\n", local.display()),
    );

    let app = env.spawn_app().await;
    let errors = fail_each(&env, &[&hls_remote, &hls_local, &dash, &concat]).await;
    for error in &errors {
        assert!(
            error.contains(
                "playlists, scripts and other formats that refer to further files are not accepted"
            ),
            "{error}"
        );
    }
    assert_eq!(
        contacts.load(Ordering::SeqCst),
        0,
        "the converter connected to a URL"
    );
    app.stop().await;
    watcher.abort();
    env.cleanup().await;
}

/// Thirty hours of 8 kHz mono silence in FLAC: 200 KB, made in a few seconds.
fn thirty_hours(dir: &Path) -> PathBuf {
    ffmpeg(
        dir,
        "thirty-hours.flac",
        &[
            "-f",
            "lavfi",
            "-i",
            "anullsrc=r=8000:cl=mono:nb_samples=65535",
            "-t",
            "108000",
            "-c:a",
            "flac",
            "-frame_size",
            "65535",
            "-compression_level",
            "0",
        ],
    )
}

#[tokio::test]
async fn a_thirty_hour_audio_file_is_refused_for_its_length() {
    let env = TestEnv::new().await;
    let long = thirty_hours(env.media.path());
    let app = env.spawn_app().await;
    let errors = fail_each(&env, &[&long]).await;
    assert_eq!(errors, ["the media is longer than the 6 hours accepted"]);
    app.stop().await;
    assert!(env.leftover_files().is_empty());
    env.cleanup().await;
}

#[tokio::test]
async fn audio_is_counted_as_decoded_whatever_the_file_declares() {
    let env = TestEnv::new().await;
    let lying = lying_about_its_length(env.media.path(), 8000, 150, 2);
    let within = ffmpeg(
        env.media.path(),
        "within.m4a",
        &[
            "-f",
            "lavfi",
            "-i",
            "sine=sample_rate=8000:duration=50",
            "-c:a",
            "aac",
        ],
    );
    let app = spawn_app_with(&env, &[("CONVERTER_MAX_DURATION_SECS", "60")]).await;
    let errors = fail_each(&env, &[&lying]).await;
    assert_eq!(errors, ["the media is longer than the 1 minute accepted"]);

    // Under the limit converts as usual.
    let fid = env.upload(&within, "within.m4a", "ok@example.com").await;
    env.publish(fid, "ok@example.com").await;
    let job = env.wait_final(fid).await;
    assert_eq!(job.state, JobState::Completed, "{job:?}");
    app.stop().await;
    assert!(env.leftover_files().is_empty());
    env.cleanup().await;
}

#[tokio::test]
async fn the_mp3_is_capped_and_nothing_of_it_is_kept() {
    let env = TestEnv::new().await;
    let src = ffmpeg(
        env.media.path(),
        "talk.m4a",
        &[
            "-f",
            "lavfi",
            "-i",
            "sine=sample_rate=8000:duration=30",
            "-c:a",
            "aac",
            "-b:a",
            "16k",
        ],
    );
    // 30 s at 320 kb/s is 1.2 MB; at 64 kb/s 240 KB.
    let big = env.upload(&src, "talk.m4a", "m@example.com").await;
    env.insert_job(&job_with_quality(
        big,
        "m@example.com",
        "talk.m4a",
        Mp3Quality::cbr(320).unwrap(),
    ))
    .await;
    let small = env.upload(&src, "talk.m4a", "m@example.com").await;
    env.insert_job(&job_with_quality(
        small,
        "m@example.com",
        "talk.m4a",
        Mp3Quality::cbr(64).unwrap(),
    ))
    .await;
    let app = spawn_app_with(&env, &[("CONVERTER_MAX_OUTPUT_BYTES", "300000")]).await;
    env.publish(big, "m@example.com").await;
    env.publish(small, "m@example.com").await;

    let job = env.wait_final(big).await;
    assert_eq!(job.state, JobState::Failed, "{job:?}");
    assert_eq!(
        job.error.as_deref(),
        Some("the MP3 would be larger than the 300000 bytes accepted")
    );
    assert!(env.mp3_files(big).await.is_empty());
    let job = env.wait_final(small).await;
    assert_eq!(job.state, JobState::Completed, "{job:?}");
    env.wait_dead_letters(1).await;
    app.stop().await;
    assert!(env.leftover_files().is_empty());
    env.cleanup().await;
}

/// One lavfi tone mapped `n` times into a file of the given extension.
fn many_streams(dir: &Path, name: &str, n: usize, codec: &str) -> PathBuf {
    let mut args: Vec<String> = ["-f", "lavfi", "-i", "sine=sample_rate=8000:duration=2"]
        .map(String::from)
        .to_vec();
    for _ in 0..n {
        args.extend(["-map".into(), "0:a".into()]);
    }
    args.extend(["-c:a".into(), codec.into()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    ffmpeg(dir, name, &args)
}

#[tokio::test]
async fn files_with_more_streams_than_accepted_are_refused() {
    let env = TestEnv::new().await;
    let dir = env.media.path();
    let mp4 = many_streams(dir, "sixty-four.mp4", 64, "aac");
    let ts = many_streams(dir, "sixty-four.ts", 64, "mp2");
    let mkv = many_streams(dir, "seventeen.mka", 17, "pcm_s16le");
    let app = env.spawn_app().await;
    let errors = fail_each(&env, &[&mp4, &ts, &mkv]).await;
    for error in &errors {
        assert_eq!(error, "the file has more streams than the 16 accepted");
    }
    app.stop().await;
    env.cleanup().await;
}

/// A WavPack file whose blocks keep their headers but lose their audio: nothing decodes while
/// probing, so the decoder never learns its sample format.
fn wavpack_without_a_format(dir: &Path) -> PathBuf {
    let good = ffmpeg(
        dir,
        "good.wv",
        &["-f", "lavfi", "-i", "sine=duration=3", "-c:a", "wavpack"],
    );
    let mut bytes = std::fs::read(&good).unwrap();
    let mut at = 0;
    while let Some(found) = bytes[at..].windows(4).position(|w| w == b"wvpk") {
        let start = at + found;
        let size = u32::from_le_bytes(bytes[start + 4..start + 8].try_into().unwrap()) as usize + 8;
        let end = (start + size).min(bytes.len());
        bytes[start + 32..end].fill(0xFF);
        at = end;
    }
    let bad = dir.join("no-format.wv");
    std::fs::write(&bad, bytes).unwrap();
    bad
}

#[tokio::test]
async fn audio_with_no_known_sample_format_fails_instead_of_crashing() {
    let env = TestEnv::new().await;
    let bad = wavpack_without_a_format(env.media.path());
    let app = env.spawn_app().await;
    let errors = fail_each(&env, &[&bad]).await;
    assert_eq!(
        errors,
        ["the audio track uses a format that cannot be decoded (its sample format, rate or channels are unknown)"]
    );
    // Still converting afterwards.
    let fine = video_with_audio(env.media.path(), "fine.mp4", 2, 44_100, 2, "aac");
    let fid: ObjectId = env.upload(&fine, "fine.mp4", "ok@example.com").await;
    env.publish(fid, "ok@example.com").await;
    assert_eq!(env.wait_final(fid).await.state, JobState::Completed);
    app.stop().await;
    env.cleanup().await;
}
