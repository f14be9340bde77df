//! Instant repeats: an upload whose content, quality and title match a finished conversion
//! completes at once with its own job, sharing that MP3; deleting one job never breaks another's
//! download, and the last one deletes the file. The converter's part is done as it does it
//! (`TestApp::store_mp3`).

use mongodb::bson::{doc, oid::ObjectId, Document};
use serde_json::Value;

use crate::helpers::{ffmpeg_media, test_bytes, Form, Options, TestApp};

const ANN: &str = "ann@example.com";
const BOB: &str = "bob@example.com";
const EVE: &str = "eve@example.com";

/// A two-second MP4 with audio, made by ffmpeg.
fn lecture() -> Vec<u8> {
    ffmpeg_media(
        "lecture.mp4",
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=64x48:rate=25:duration=2",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:duration=2",
            "-c:v",
            "mpeg4",
            "-c:a",
            "aac",
        ],
    )
}

async fn status(app: &TestApp, email: &str, fid: ObjectId) -> (u16, Value) {
    let res = app
        .get_as(email, &format!("/status?fid={}", fid.to_hex()))
        .await;
    (res.status().as_u16(), res.json().await.unwrap())
}

async fn download(app: &TestApp, email: &str, mp3: ObjectId) -> (u16, Vec<u8>) {
    let res = app
        .get_as(email, &format!("/download?fid={}", mp3.to_hex()))
        .await;
    (res.status().as_u16(), res.bytes().await.unwrap().to_vec())
}

async fn delete(app: &TestApp, email: &str, fid: ObjectId) -> u16 {
    app.http
        .delete(format!("{}/jobs/{}", app.base, fid.to_hex()))
        .header("authorization", app.bearer(email))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn listed(app: &TestApp, email: &str) -> Vec<String> {
    let page: Value = app.get_as(email, "/jobs").await.json().await.unwrap();
    page["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["video_fid"].as_str().unwrap().to_owned())
        .collect()
}

async fn mp3_doc(app: &TestApp, mp3: ObjectId) -> Option<Document> {
    app.mp3s
        .collection::<Document>("fs.files")
        .find_one(doc! { "_id": mp3 })
        .await
        .unwrap()
}

/// Uploads `data` as `email` with `form` fields and answers the video_fid.
async fn upload(
    app: &TestApp,
    email: &str,
    name: &str,
    data: &[u8],
    fields: &[(&str, &str)],
) -> ObjectId {
    let mut form = Form::new();
    for (k, v) in fields {
        form = form.text(k, v);
    }
    let res = app
        .upload_as(email, form.file("file", name, "video/mp4", data))
        .await;
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["status"], "success");
    ObjectId::parse_str(body["video_fid"].as_str().unwrap()).unwrap()
}

/// Ann's upload of `data`, converted: answers its video_fid, the MP3 and the MP3's bytes.
async fn converted(app: &TestApp, data: &[u8]) -> (ObjectId, ObjectId, Vec<u8>) {
    let video = upload(app, ANN, "lecture.mp4", data, &[]).await;
    let bytes = test_bytes(300_000, 21);
    let mp3 = app.store_mp3(video, Some(ANN), "lecture.mp3", &bytes).await;
    (video, mp3, bytes)
}

#[tokio::test]
async fn a_repeat_by_another_user_completes_at_once_and_outlives_the_first_delete() {
    let app = TestApp::spawn().await;
    let data = lecture();
    let (first, mp3, bytes) = converted(&app, &data).await;
    assert_eq!(app.queued_messages().await, 1);

    // Bob sends the same file (from another folder): completed at once, nothing queued.
    let repeat = upload(&app, BOB, "lecture.mp4", &data, &[]).await;
    assert_ne!(repeat, first);
    let (code, bob_status) = status(&app, BOB, repeat).await;
    assert_eq!(code, 200);
    assert_eq!(bob_status["status"], "completed", "{bob_status}");
    assert_eq!(bob_status["mp3_fid"], mp3.to_hex());
    assert_eq!(app.queued_messages().await, 1, "the repeat was not queued");
    // His job stands alone in his history; its video bytes were not kept (Ann's are).
    assert_eq!(listed(&app, BOB).await, [repeat.to_hex()]);
    assert_eq!(listed(&app, ANN).await, [first.to_hex()]);
    assert_eq!(app.video_counts().await.0, 1);
    assert!(app.video_file_doc(repeat).await.is_none());
    let job = app.job(repeat).await.unwrap();
    assert_eq!(job.get_str("owner").unwrap(), BOB);
    assert_eq!(job.get_str("state").unwrap(), "completed");
    assert_eq!(
        job.get_str("content_sha256").unwrap(),
        app.job(first)
            .await
            .unwrap()
            .get_str("content_sha256")
            .unwrap()
    );

    // Both download it, under their own file's name; nobody else learns it exists.
    assert_eq!(download(&app, BOB, mp3).await, (200, bytes.clone()));
    assert_eq!(download(&app, ANN, mp3).await, (200, bytes.clone()));
    assert_eq!(download(&app, EVE, mp3).await.0, 404);
    assert_eq!(status(&app, EVE, repeat).await.0, 404);
    assert_eq!(status(&app, ANN, repeat).await.0, 404);
    assert_eq!(status(&app, BOB, first).await.0, 404);
    assert_eq!(delete(&app, EVE, repeat).await, 404);

    // Ann deletes hers: Bob's download still works, hers is gone.
    assert_eq!(delete(&app, ANN, first).await, 204);
    assert_eq!(download(&app, BOB, mp3).await, (200, bytes.clone()));
    assert_eq!(download(&app, ANN, mp3).await.0, 404);
    assert_eq!(status(&app, ANN, first).await.0, 404);
    assert_eq!(status(&app, BOB, repeat).await.1["mp3_fid"], mp3.to_hex());
    // The MP3 now names Bob's upload, as the original system expects of an MP3.
    let metadata = mp3_doc(&app, mp3).await.unwrap();
    let metadata = metadata.get_document("metadata").unwrap();
    assert_eq!(metadata.get_str("video_fid").unwrap(), repeat.to_hex());
    assert_eq!(metadata.get_str("owner").unwrap(), BOB);

    // The last holder deletes the file.
    assert_eq!(delete(&app, BOB, repeat).await, 204);
    assert_eq!(download(&app, BOB, mp3).await.0, 404);
    assert_eq!(app.mp3_counts().await, (0, 0));
    assert_eq!(app.video_counts().await, (0, 0));
    assert_eq!(app.job_count().await, 0);
}

#[tokio::test]
async fn deleting_the_repeat_first_keeps_the_original_and_then_both_go() {
    let app = TestApp::spawn().await;
    let data = lecture();
    let (first, mp3, bytes) = converted(&app, &data).await;
    let repeat = upload(&app, BOB, "lecture.mp4", &data, &[]).await;
    // A second repeat by Ann herself.
    let again = upload(&app, ANN, "lecture.mp4", &data, &[]).await;
    assert_eq!(status(&app, ANN, again).await.1["mp3_fid"], mp3.to_hex());
    let holders = mp3_doc(&app, mp3).await.unwrap();
    assert_eq!(
        holders
            .get_document("metadata")
            .unwrap()
            .get_i32("refs")
            .unwrap(),
        3
    );

    assert_eq!(delete(&app, BOB, repeat).await, 204);
    assert_eq!(delete(&app, ANN, first).await, 204);
    assert_eq!(download(&app, ANN, mp3).await, (200, bytes));
    assert_eq!(download(&app, BOB, mp3).await.0, 404);
    assert_eq!(app.mp3_counts().await.0, 1);
    assert_eq!(delete(&app, ANN, again).await, 204);
    assert_eq!(app.mp3_counts().await, (0, 0));
    assert_eq!(app.video_counts().await, (0, 0));
}

#[tokio::test]
async fn another_quality_or_title_converts_again() {
    let app = TestApp::spawn().await;
    let data = lecture();
    let (_, mp3, _) = converted(&app, &data).await;
    for (name, fields) in [
        ("lecture.mp4", vec![("bitrate", "192")]),
        ("lecture.mp4", vec![("vbr_quality", "2")]),
        // The converter writes the title into the MP3: another name, another MP3.
        ("seminar.mp4", vec![]),
    ] {
        let before = app.queued_messages().await;
        let fid = upload(&app, BOB, name, &data, &fields).await;
        let (_, body) = status(&app, BOB, fid).await;
        assert_eq!(body["status"], "processing", "{name} {fields:?}: {body}");
        assert_eq!(app.queued_messages().await, before + 1);
        assert!(app.video_file_doc(fid).await.is_some());
    }
    // The default quality asked explicitly is a repeat.
    let fid = upload(&app, BOB, "lecture.mp4", &data, &[("bitrate", "128")]).await;
    assert_eq!(status(&app, BOB, fid).await.1["mp3_fid"], mp3.to_hex());
    // Other content is not.
    let mut other = data.clone();
    let last = other.len() - 1;
    other[last] ^= 1;
    let fid = upload(&app, BOB, "lecture.mp4", &other, &[]).await;
    assert_eq!(status(&app, BOB, fid).await.1["status"], "processing");
}

#[tokio::test]
async fn a_conversion_still_running_is_not_shared() {
    let app = TestApp::spawn().await;
    let data = lecture();
    let first = upload(&app, ANN, "lecture.mp4", &data, &[]).await;
    let second = upload(&app, BOB, "lecture.mp4", &data, &[]).await;
    // Both are converted; each keeps its own MP3, deleted with its job.
    assert_eq!(app.queued_messages().await, 2);
    let a = app
        .store_mp3(first, Some(ANN), "lecture.mp3", &test_bytes(1000, 1))
        .await;
    let b = app
        .store_mp3(second, Some(BOB), "lecture.mp3", &test_bytes(1000, 2))
        .await;
    assert_eq!(delete(&app, ANN, first).await, 204);
    assert_eq!(download(&app, BOB, b).await.0, 200);
    assert_eq!(download(&app, ANN, a).await.0, 404);
    assert_eq!(delete(&app, BOB, second).await, 204);
    assert_eq!(app.mp3_counts().await, (0, 0));
    assert_eq!(app.video_counts().await, (0, 0));
}

#[tokio::test]
async fn concurrent_repeats_and_a_delete_never_lose_or_leak_the_mp3() {
    let app = TestApp::spawn().await;
    let data = lecture();
    let (first, mp3, bytes) = converted(&app, &data).await;
    let users: Vec<String> = (0..5).map(|i| format!("user{i}@example.com")).collect();
    // Five repeats race each other and Ann's delete of the conversion they repeat.
    let uploads = users.iter().map(|u| {
        let (app, data) = (&app, &data);
        async move { (u.clone(), upload(app, u, "lecture.mp4", data, &[]).await) }
    });
    let (repeats, deleted) =
        tokio::join!(futures::future::join_all(uploads), delete(&app, ANN, first));
    assert_eq!(deleted, 204);

    // Each repeat either shares the MP3, and can download it, or was queued for conversion
    // because the MP3 was being deleted: never completed with a missing file.
    let mut shared = 0;
    for (user, fid) in &repeats {
        let (_, body) = status(&app, user, *fid).await;
        match body["status"].as_str() {
            Some("completed") => {
                shared += 1;
                assert_eq!(body["mp3_fid"], mp3.to_hex());
                assert_eq!(
                    download(&app, user, mp3).await,
                    (200, bytes.clone()),
                    "{user}"
                );
            }
            Some("processing") => assert!(app.video_file_doc(*fid).await.is_some()),
            other => panic!("{user}: {other:?} {body}"),
        }
    }
    let refs = mp3_doc(&app, mp3)
        .await
        .map(|d| d.get_document("metadata").unwrap().get_i32("refs").unwrap());
    assert_eq!(refs.unwrap_or(0), shared, "one reference per sharing job");

    for (user, fid) in &repeats {
        assert_eq!(delete(&app, user, *fid).await, 204);
    }
    assert_eq!(app.mp3_counts().await, (0, 0));
    assert_eq!(app.video_counts().await, (0, 0));
    assert_eq!(app.job_count().await, 0);
}

/// What `MAX_USER_STORAGE_BYTES` counts for `email`, read from the 413 sentence of an upload
/// larger than the room left.
async fn used(app: &TestApp, email: &str) -> u64 {
    let res = app
        .upload_as(
            email,
            Form::new().file("file", "big.mp4", "video/mp4", &test_bytes(3_500_000, 5)),
        )
        .await;
    assert_eq!(res.status(), 413);
    let body: Value = res.json().await.unwrap();
    let sentence = body["error"].as_str().unwrap();
    let after = sentence
        .split_once("already take ")
        .unwrap_or_else(|| panic!("{sentence}"))
        .1;
    after.split(' ').next().unwrap().parse().unwrap()
}

#[tokio::test]
async fn the_quota_counts_a_shared_mp3_for_each_holder_alike() {
    let app = TestApp::spawn_with(Options {
        env: vec![("MAX_USER_STORAGE_BYTES", "2000000".to_owned())],
        ..Options::default()
    })
    .await;
    let data = lecture();
    let (first, _, bytes) = converted(&app, &data).await;
    let ann = (data.len() + bytes.len()) as u64;
    assert_eq!(used(&app, ANN).await, ann);
    // Bob's repeat keeps no video: he holds the MP3 only. Ann's count does not move.
    upload(&app, BOB, "lecture.mp4", &data, &[]).await;
    assert_eq!(used(&app, BOB).await, bytes.len() as u64);
    assert_eq!(used(&app, ANN).await, ann);
    // Nor does Bob's when Ann deletes hers and the MP3 passes to him.
    assert_eq!(delete(&app, ANN, first).await, 204);
    assert_eq!(used(&app, ANN).await, 0);
    assert_eq!(used(&app, BOB).await, bytes.len() as u64);
}

#[tokio::test]
async fn with_deduplication_off_a_repeat_is_converted() {
    let app = TestApp::spawn_with(Options {
        env: vec![("DEDUPLICATE_UPLOADS", "false".to_owned())],
        ..Options::default()
    })
    .await;
    let data = lecture();
    converted(&app, &data).await;
    let repeat = upload(&app, BOB, "lecture.mp4", &data, &[]).await;
    assert_eq!(status(&app, BOB, repeat).await.1["status"], "processing");
    assert_eq!(app.queued_messages().await, 2);
}
