//! `eta_secs` of `/status` and `/events`: from the measured speed of the job in progress, and
//! while queued from recent completed jobs and the queue ahead. The job document is driven as
//! the converter writes it (`started_at` at the claim, `progress`, `processing_secs` at the end).

use mongodb::bson::{doc, oid::ObjectId, DateTime, Document};
use serde_json::Value;

use crate::{events::EventReader, helpers::TestApp};

const USER: &str = "tess@example.com";

async fn status(app: &TestApp, fid: ObjectId) -> Value {
    let res = app
        .get_as(USER, &format!("/status?fid={}", fid.to_hex()))
        .await;
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

fn secs_ago(secs: i64) -> DateTime {
    DateTime::from_millis(DateTime::now().timestamp_millis() - secs * 1000)
}

fn eta(body: &Value) -> u64 {
    body["eta_secs"]
        .as_u64()
        .unwrap_or_else(|| panic!("no eta_secs in {body}"))
}

/// A completed job of someone's as the converter leaves it, with its measured time.
async fn completed_job(app: &TestApp, size: i64, processing_secs: f64) {
    let now = DateTime::now();
    app.videos
        .collection::<Document>("jobs")
        .insert_one(doc! {
            "_id": ObjectId::new(), "owner": "someone@example.com", "filename": "old.mp4",
            "state": "completed", "progress": 100.0, "mp3_fid": ObjectId::new(),
            "error": null, "quality": { "cbr": { "bitrate_kbps": 128 } }, "size": size,
            "duration_secs": 60.0, "attempts": 1, "started_at": now,
            "processing_secs": processing_secs, "created_at": now, "updated_at": now,
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn the_eta_of_a_processing_job_falls_as_it_advances_and_goes_once_completed() {
    let app = TestApp::spawn().await;
    let fid = app.upload_file(USER, "talk.mp4", b"video").await;
    // Nothing measured yet: no estimate, and the field is absent (old clients see nothing new).
    let body = status(&app, fid).await;
    assert!(body.get("eta_secs").is_none(), "{body}");

    // Claimed a while ago, a fifth done.
    let started = secs_ago(30);
    app.update_job(
        fid,
        doc! { "state": "processing", "progress": 20.0, "started_at": started },
    )
    .await;
    let early = eta(&status(&app, fid).await);
    assert!(early > 0);

    // Four fifths done since the same start: less left.
    app.update_job(fid, doc! { "progress": 80.0 }).await;
    let late = eta(&status(&app, fid).await);
    assert!(late < early, "{late} s left at 80 %, {early} s at 20 %");

    app.update_job(
        fid,
        doc! { "state": "completed", "progress": 100.0, "mp3_fid": ObjectId::new() },
    )
    .await;
    let body = status(&app, fid).await;
    assert_eq!(body["status"], "completed");
    assert!(body.get("eta_secs").is_none(), "{body}");
}

#[tokio::test]
async fn events_carry_a_falling_eta() {
    let app = TestApp::spawn().await;
    let fid = app.upload_file(USER, "talk.mp4", b"video").await;
    app.update_job(
        fid,
        doc! { "state": "processing", "progress": 10.0, "started_at": secs_ago(20) },
    )
    .await;
    let res = app
        .get_as(USER, &format!("/events?fid={}", fid.to_hex()))
        .await;
    assert_eq!(res.status(), 200);
    let mut events = EventReader::new(res);
    let (_, first) = events.next().await.unwrap();
    assert_eq!(first["progress"], 10.0, "{first}");
    let first_eta = eta(&first);

    app.update_job(fid, doc! { "progress": 60.0 }).await;
    // The next event with the new progress (the estimate may change on its own before).
    let later = loop {
        let (event, data) = events.next().await.expect("an event for the new progress");
        assert_eq!(event, "status");
        if data["progress"] == 60.0 {
            break data;
        }
    };
    assert!(eta(&later) < first_eta, "{later} after {first}");

    app.update_job(
        fid,
        doc! { "state": "completed", "progress": 100.0, "mp3_fid": ObjectId::new() },
    )
    .await;
    let done = loop {
        let (_, data) = events.next().await.expect("the completed event");
        if data["status"] == "completed" {
            break data;
        }
    };
    assert!(done.get("eta_secs").is_none(), "{done}");
}

#[tokio::test]
async fn a_queued_job_gets_an_eta_from_recent_jobs_and_the_queue_ahead() {
    let app = TestApp::spawn().await;
    let first = app.upload_file(USER, "first.mp4", &[7; 2000]).await;
    // No completed job has a measured time yet: nothing to base an estimate on.
    let body = status(&app, first).await;
    assert_eq!(body["state"], "queued");
    assert!(body.get("eta_secs").is_none(), "{body}");

    // History: jobs of 1000 bytes took 10 s each (100 bytes per second).
    for _ in 0..3 {
        completed_job(&app, 1000, 10.0).await;
    }
    let second = app.upload_file(USER, "second.mp4", &[7; 2000]).await;
    let third = app.upload_file(USER, "third.mp4", &[7; 2000]).await;

    let first_eta = eta(&status(&app, first).await);
    let second_eta = eta(&status(&app, second).await);
    let third_eta = eta(&status(&app, third).await);
    // Nothing ahead, no converter busy: its own 2000 bytes at 100 B/s.
    assert_eq!(first_eta, 20);
    // Each job queued before it adds a typical job time.
    assert!(
        first_eta < second_eta && second_eta < third_eta,
        "{first_eta} {second_eta} {third_eta}"
    );

    // Once the first is being converted the others move up.
    app.update_job(
        first,
        doc! { "state": "processing", "progress": 0.0, "started_at": DateTime::now() },
    )
    .await;
    assert!(status(&app, first).await.get("eta_secs").is_some());
}

#[tokio::test]
async fn the_queue_ahead_of_many_jobs_read_at_once_is_what_counting_each_says() {
    let app = TestApp::spawn().await;
    let config = gateway::Config::from_env(&app.env).unwrap();
    let storage = gateway::storage::Storage::connect(&config.mongo)
        .await
        .unwrap();
    let jobs = app.videos.collection::<Document>("jobs");
    // 30 jobs over 10 milliseconds (three in each), every fourth one being converted.
    let base = DateTime::now().timestamp_millis() - 60_000;
    let mut keys = Vec::new();
    for i in 0..30_i64 {
        let (id, created_at) = (ObjectId::new(), DateTime::from_millis(base + i / 3));
        let state = if i % 4 == 3 { "processing" } else { "queued" };
        jobs.insert_one(doc! {
            "_id": id, "owner": USER, "filename": "q.mp4", "state": state, "progress": 0.0,
            "created_at": created_at, "updated_at": created_at,
        })
        .await
        .unwrap();
        keys.push((created_at, id));
    }
    // Ask about a few, not in queue order, some of them being converted.
    let asked: Vec<_> = [17, 2, 29, 4, 3, 11, 12, 25]
        .into_iter()
        .map(|i| keys[i])
        .collect();
    let mut counted = Vec::new();
    for &(created_at, id) in &asked {
        counted.push(storage.queued_before(created_at, id).await.unwrap());
    }
    assert_eq!(
        counted[0], 13,
        "17 jobs before it, 4 of them being converted"
    );
    assert_eq!(storage.queued_ahead(&asked).await.unwrap(), counted);
    // A span too long for one read: those past it are counted one by one, with the same result.
    for limit in [1, 3, 8] {
        assert_eq!(
            storage.queued_ahead_reading(&asked, limit).await.unwrap(),
            counted,
            "reading at most {limit}"
        );
    }
    assert_eq!(
        storage.queued_ahead(&asked[..1]).await.unwrap(),
        counted[..1]
    );
    assert!(storage.queued_ahead(&[]).await.unwrap().is_empty());
}
