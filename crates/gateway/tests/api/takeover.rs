//! Our gateway in a deployment of the original: started with only the original gateway's
//! variables (no `JWT_SECRET`), and next to the original converter, played here by its wire
//! behaviour (it stores the MP3 and acks, and never writes a job).

use std::time::Duration;

use common::jwt::{now_unix, Claims, JwtKeys};
use futures::StreamExt;
use lapin::{
    options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions},
    types::FieldTable,
    Connection, ConnectionProperties,
};
use mongodb::bson::{doc, oid::ObjectId, spec::BinarySubtype, Binary, DateTime, Document};
use serde_json::Value;

use crate::{
    events::EventReader,
    helpers::{test_bytes, test_env, Form, Options, TestApp},
};

const PASSWORD: &str = "correct horse battery staple";

async fn get(app: &TestApp, path: &str, authorization: Option<&str>) -> reqwest::Response {
    app.get_with(path, authorization).await
}

async fn error_of(res: reqwest::Response) -> String {
    let body: Value = res.json().await.unwrap();
    body["error"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn without_jwt_secret_tokens_are_validated_by_auth() {
    let app = TestApp::spawn_with(Options {
        with_auth: true,
        without_jwt_secret: true,
        ..Options::default()
    })
    .await;
    assert!(!app.env.contains_key("JWT_SECRET"));
    let email = "olga@example.com";

    let res = app.post_basic("/register", Some((email, PASSWORD))).await;
    assert_eq!(res.status(), 200);
    let res = app.post_basic("/login", Some((email, PASSWORD))).await;
    assert_eq!(res.status(), 200);
    let bearer = format!("Bearer {}", res.text().await.unwrap().trim());

    // Auth's claims open every route: upload, status, jobs.
    let form = Form::new().file("file", "clip.mp4", "video/mp4", &test_bytes(4096, 1));
    let res = app
        .http
        .post(format!("{}/upload", app.base))
        .header("authorization", &bearer)
        .header("content-type", form.content_type())
        .body(form.into_bytes())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    let fid = body["video_fid"].as_str().unwrap().to_owned();
    let (message, _) = app.next_message().await.expect("the upload was queued");
    let message: Value = serde_json::from_slice(&message).unwrap();
    assert_eq!(
        message["username"], email,
        "the username comes from auth's claims"
    );
    let res = get(&app, &format!("/status?fid={fid}"), Some(&bearer)).await;
    assert_eq!(res.status(), 200);
    // Validated again from the cache: the same answer.
    let res = get(&app, "/jobs", Some(&bearer)).await;
    assert_eq!(res.status(), 200);
    let page: Value = res.json().await.unwrap();
    assert_eq!(page["jobs"][0]["video_fid"], fid.as_str());

    // Refusals are the local mode's: 401 with the same sentences.
    let expired = app
        .keys
        .sign(&JwtKeys::claims_for(email, now_unix() - 2 * 86_400))
        .unwrap();
    let res = get(&app, "/jobs", Some(&format!("Bearer {expired}"))).await;
    assert_eq!(res.status(), 401);
    assert_eq!(error_of(res).await, "token has expired, log in again");

    let forged = JwtKeys::new(b"not the secret auth holds")
        .issue(email)
        .unwrap();
    let res = get(&app, "/jobs", Some(&format!("Bearer {forged}"))).await;
    assert_eq!(res.status(), 401);
    assert_eq!(error_of(res).await, "invalid token");

    let not_admin = app
        .keys
        .sign(&Claims {
            admin: false,
            ..JwtKeys::claims_for(email, now_unix())
        })
        .unwrap();
    let res = get(&app, "/jobs", Some(&format!("Bearer {not_admin}"))).await;
    assert_eq!(res.status(), 401);
    assert_eq!(error_of(res).await, "not authorized");

    let res = get(&app, "/jobs", None).await;
    assert_eq!(res.status(), 401);
}

#[tokio::test]
async fn without_jwt_secret_and_auth_away_the_answer_is_503_with_a_sentence() {
    // Without `with_auth`, AUTH_SVC_ADDRESS points at a closed port.
    let app = TestApp::spawn_with(Options {
        without_jwt_secret: true,
        ..Options::default()
    })
    .await;
    let res = get(&app, "/jobs", Some(&app.bearer("p@example.com"))).await;
    assert_eq!(res.status(), 503);
    assert_eq!(
        error_of(res).await,
        "the authentication service is unavailable, try again shortly"
    );
}

/// The original converter as RabbitMQ and MongoDB see it: takes one message from `video`, stores
/// an MP3 in GridFS `mp3s` (pymongo's `put`: no filename, `metadata.video_fid` the hex id),
/// writes no job, acks. Returns the MP3's id.
async fn original_converter_converts_one(app: &TestApp) -> ObjectId {
    let conn = Connection::connect(&test_env("TEST_AMQP_URL"), ConnectionProperties::default())
        .await
        .unwrap();
    let channel = conn.create_channel().await.unwrap();
    channel
        .basic_qos(1, BasicQosOptions::default())
        .await
        .unwrap();
    let mut deliveries = channel
        .basic_consume(
            &app.queue,
            "original-converter",
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let delivery = tokio::time::timeout(Duration::from_secs(10), deliveries.next())
        .await
        .expect("a message within 10 s")
        .expect("a delivery")
        .unwrap();
    let message: Value = serde_json::from_slice(&delivery.data).unwrap();
    let video_fid = message["video_fid"].as_str().unwrap().to_owned();

    let mp3 = test_bytes(300_000, 7);
    let mp3_id = ObjectId::new();
    let chunk_size = 255 * 1024;
    for (n, chunk) in mp3.chunks(chunk_size).enumerate() {
        app.mp3s
            .collection::<Document>("fs.chunks")
            .insert_one(doc! {
                "files_id": mp3_id, "n": n as i32,
                "data": Binary { subtype: BinarySubtype::Generic, bytes: chunk.to_vec() },
            })
            .await
            .unwrap();
    }
    app.mp3s
        .collection::<Document>("fs.files")
        .insert_one(doc! {
            "_id": mp3_id, "length": mp3.len() as i64, "chunkSize": chunk_size as i32,
            "uploadDate": DateTime::now(), "metadata": { "video_fid": &video_fid },
        })
        .await
        .unwrap();
    delivery.ack(BasicAckOptions::default()).await.unwrap();
    let _ = conn.close(200, "done").await;
    mp3_id
}

#[tokio::test]
async fn an_mp3_stored_by_the_original_converter_completes_the_job() {
    let app = TestApp::spawn().await;
    let email = "quinn@example.com";
    let fid = app
        .upload_file(email, "talk.mp4", &test_bytes(10_000, 3))
        .await;
    let mp3_id = original_converter_converts_one(&app).await;
    assert_eq!(
        app.job(fid).await.unwrap().get_str("state").unwrap(),
        "queued",
        "the original converter wrote no job"
    );

    // /status: completed with the MP3, and the job is brought up to date.
    let res = app
        .get_as(email, &format!("/status?fid={}", fid.to_hex()))
        .await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["status"], "completed", "{body}");
    assert_eq!(body["mp3_fid"], mp3_id.to_hex().as_str());
    let job = app.job(fid).await.unwrap();
    assert_eq!(job.get_str("state").unwrap(), "completed");
    assert_eq!(job.get_object_id("mp3_fid").unwrap(), mp3_id);

    // /events: one completed event, then the stream ends.
    let res = app
        .get_as(email, &format!("/events?fid={}", fid.to_hex()))
        .await;
    assert_eq!(res.status(), 200);
    let mut events = EventReader::new(res);
    let (event, data) = events.next().await.expect("a status event");
    assert_eq!(event, "status");
    assert_eq!(data["status"], "completed");
    assert_eq!(data["mp3_fid"], mp3_id.to_hex().as_str());
    assert!(events.next().await.is_none(), "the stream ends");

    // The MP3 downloads.
    let res = app
        .get_as(email, &format!("/download?fid={}", mp3_id.to_hex()))
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.bytes().await.unwrap().len(), 300_000);
}

#[tokio::test]
async fn events_and_jobs_see_the_original_converters_mp3_while_the_job_says_queued() {
    let app = TestApp::spawn().await;
    let email = "rosa@example.com";
    let converted = app
        .upload_file(email, "one.mp4", &test_bytes(5_000, 4))
        .await;
    let waiting = app
        .upload_file(email, "two.mp4", &test_bytes(5_000, 5))
        .await;

    // A stream opened while the job is queued ends with completed once the MP3 appears.
    let res = app
        .get_as(email, &format!("/events?fid={}", converted.to_hex()))
        .await;
    let mut events = EventReader::new(res);
    let (_, first) = events.next().await.unwrap();
    assert_eq!(first["status"], "processing");
    let mp3_id = original_converter_converts_one(&app).await;
    let (event, last) = events.next().await.expect("the completed event");
    assert_eq!(event, "status");
    assert_eq!(last["status"], "completed", "{last}");
    assert_eq!(last["mp3_fid"], mp3_id.to_hex().as_str());
    assert!(events.next().await.is_none(), "the stream ends");

    // Back to queued in our jobs collection, as if nobody had looked: /jobs finds the MP3.
    app.update_job(
        converted,
        doc! { "state": "queued", "progress": 0.0, "mp3_fid": mongodb::bson::Bson::Null },
    )
    .await;
    let res = app.get_as(email, "/jobs").await;
    assert_eq!(res.status(), 200);
    let page: Value = res.json().await.unwrap();
    let jobs = page["jobs"].as_array().unwrap();
    let view = |fid: ObjectId| {
        jobs.iter()
            .find(|j| j["video_fid"] == fid.to_hex().as_str())
            .unwrap()
            .clone()
    };
    assert_eq!(view(converted)["state"], "completed");
    assert_eq!(view(converted)["status"], "completed");
    assert_eq!(view(converted)["mp3_fid"], mp3_id.to_hex().as_str());
    assert_eq!(view(waiting)["state"], "queued");
    assert_eq!(
        app.job(converted).await.unwrap().get_str("state").unwrap(),
        "completed",
        "reconciled in the jobs collection"
    );
}

#[tokio::test]
async fn the_test_mongodb_is_new_enough_and_says_its_version() {
    let app = TestApp::spawn().await;
    let version = common::mongo::check_server(&app.videos)
        .await
        .expect("the stand-in is accepted");
    assert_eq!(common::mongo::too_old_version(&version), None, "{version}");
    let res = app
        .http
        .get(format!("{}/readyz", app.admin))
        .send()
        .await
        .unwrap();
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["mongodb"], "ok", "{body}");
}

#[tokio::test]
async fn a_mongodb_older_than_4_4_is_refused_in_words() {
    // The handshake of a MongoDB 4.0 server (wire version 7), as the original's chart runs.
    let old = common::old_mongo::OldMongo::start(7).await.unwrap();
    let app = TestApp::spawn_with(Options {
        mongodb_uri: Some(old.uri("videos")),
        ..Options::default()
    })
    .await;
    let sentence = format!(
        "MongoDB 4.0 at {} (wire version 7) is older than 4.4, the oldest supported; see \
         docs/migrating-from-python.md",
        old.address()
    );

    let res = app
        .http
        .get(format!("{}/readyz", app.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 503);
    let body: Value = res.json().await.unwrap();
    assert_eq!(
        body["mongodb"],
        format!("not ready: {sentence}").as_str(),
        "{body}"
    );

    let res = app.get_as("s@example.com", "/jobs").await;
    assert_eq!(res.status(), 503);
    assert_eq!(
        error_of(res).await,
        format!("the file store cannot be used: {sentence}")
    );
}
