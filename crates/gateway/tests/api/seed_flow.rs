//! The seed's curl sequence against the gateway: register, login, upload, status, download, with
//! a stand-in converter step done by the test.

use std::process::Command;

use common::message::VideoMessage;
use mongodb::bson::oid::ObjectId;
use serde_json::Value;

use crate::helpers::{Form, Options, TestApp};

/// A one-second MP4 (video and audio) and an MP3, made with the ffmpeg CLI.
fn media() -> (Vec<u8>, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let mp4 = dir.path().join("clip.mp4");
    let mp3 = dir.path().join("clip.mp3");
    let run = |args: &[&str]| {
        let out = Command::new("ffmpeg")
            .args(["-hide_banner", "-loglevel", "error", "-y"])
            .args(args)
            .output()
            .expect("ffmpeg runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc=duration=1:size=160x120:rate=10",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:duration=1",
        "-c:v",
        "mpeg4",
        "-c:a",
        "aac",
        "-shortest",
        mp4.to_str().unwrap(),
    ]);
    run(&[
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:duration=1",
        "-c:a",
        "libmp3lame",
        mp3.to_str().unwrap(),
    ]);
    (std::fs::read(mp4).unwrap(), std::fs::read(mp3).unwrap())
}

#[tokio::test]
async fn register_login_upload_status_download() {
    let app = TestApp::spawn_with(Options {
        with_auth: true,
        ..Options::default()
    })
    .await;
    let (video, mp3) = media();
    let (email, password) = ("grace@example.com", "correct horse battery staple");

    // curl -X POST http://gateway/register -u email:password
    let res = app
        .http
        .post(format!("{}/register", app.base))
        .basic_auth(email, Some(password))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);

    // curl -X POST http://gateway/login -u email:password
    let res = app
        .http
        .post(format!("{}/login", app.base))
        .basic_auth(email, Some(password))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let jwt = res.text().await.unwrap().trim().to_owned();

    // curl -X POST -F 'file=@video.mp4' -H 'Authorization: Bearer <JWT>' http://gateway/upload
    let form = Form::new().file("file", "clip.mp4", "video/mp4", &video);
    let res = app
        .http
        .post(format!("{}/upload", app.base))
        .bearer_auth(&jwt)
        .header("content-type", form.content_type())
        .body(form.into_bytes())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["status"], "success");
    let video_fid = body["video_fid"].as_str().unwrap().to_owned();

    // curl -H 'Authorization: Bearer <JWT>' "http://gateway/status?fid=<video_fid>"
    let status = |fid: String| {
        let (http, base, jwt) = (app.http.clone(), app.base.clone(), jwt.clone());
        async move {
            http.get(format!("{base}/status?fid={fid}"))
                .bearer_auth(jwt)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    assert_eq!(status(video_fid.clone()).await["status"], "processing");

    // The stand-in converter: take the message, read the upload, store the MP3 as the
    // converter does, mark the job completed.
    let (payload, _) = app.next_message().await.expect("the upload was queued");
    let message: VideoMessage = serde_json::from_slice(&payload).unwrap();
    assert_eq!(message, VideoMessage::new(video_fid.clone(), email));
    let id = ObjectId::parse_str(&message.video_fid).unwrap();
    assert_eq!(app.stored_video(id).await, video);
    let mp3_fid = app.store_mp3(id, Some(email), "clip.mp3", &mp3).await;

    let body = status(video_fid.clone()).await;
    assert_eq!(body["status"], "completed");
    assert_eq!(body["mp3_fid"], mp3_fid.to_hex());

    // curl -H 'Authorization: Bearer <JWT>' "http://gateway/download?fid=<mp3_fid>" -o output.mp3
    let res = app
        .http
        .get(format!("{}/download?fid={}", app.base, mp3_fid.to_hex()))
        .bearer_auth(&jwt)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "audio/mpeg");
    assert!(res.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .contains("filename=\"clip.mp3\""));
    assert_eq!(res.bytes().await.unwrap().as_ref(), mp3.as_slice());
}
