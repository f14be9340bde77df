//! `/events` with `REDIS_URL`: progress pushed over Redis pub/sub (real Redis on 127.0.0.1:6379,
//! or `TEST_REDIS_URL`; each test on a channel of its own), one subscription per gateway, and
//! polling MongoDB when Redis is away.

use std::time::Duration;

use mongodb::bson::{doc, oid::ObjectId};
use redis::AsyncCommands;
use serde_json::{json, Value};

use crate::{
    events::EventReader,
    helpers::{closed_port, Options, TestApp},
};

const USER: &str = "pia@example.com";

fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// A gateway publishing and subscribing on `channel`, plus more settings.
async fn spawn_with_redis(channel: &str, extra: Vec<(&'static str, String)>) -> TestApp {
    let mut env = vec![
        ("REDIS_URL", redis_url()),
        ("REDIS_EVENTS_CHANNEL", channel.to_owned()),
    ];
    env.extend(extra);
    TestApp::spawn_with(Options {
        env,
        ..Options::default()
    })
    .await
}

fn new_channel() -> String {
    format!("test:job-events:{}", uuid::Uuid::new_v4().simple())
}

async fn redis() -> redis::aio::MultiplexedConnection {
    redis::Client::open(redis_url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .expect("Redis on TEST_REDIS_URL (default 127.0.0.1:6379)")
}

/// Subscribers of `channel`, as Redis counts them.
async fn subscribers(conn: &mut redis::aio::MultiplexedConnection, channel: &str) -> i64 {
    let (_, n): (String, i64) = redis::cmd("PUBSUB")
        .arg("NUMSUB")
        .arg(channel)
        .query_async(conn)
        .await
        .unwrap();
    n
}

/// Waits until the gateway's subscription to `channel` is confirmed by Redis.
async fn wait_subscribed(conn: &mut redis::aio::MultiplexedConnection, channel: &str) {
    for _ in 0..200 {
        if subscribers(conn, channel).await > 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the gateway never subscribed to {channel}");
}

async fn publish(conn: &mut redis::aio::MultiplexedConnection, channel: &str, message: Value) {
    let _: i64 = conn.publish(channel, message.to_string()).await.unwrap();
}

fn progress(fid: ObjectId, p: f64) -> Value {
    json!({ "video_fid": fid.to_hex(), "state": "processing", "progress": p })
}

/// The status event the stream sends next, skipping none.
async fn next_status(events: &mut EventReader) -> Value {
    let (event, data) = events.next().await.expect("an event");
    assert_eq!(event, "status", "{data}");
    data
}

#[tokio::test]
async fn pushed_progress_reaches_the_stream_without_the_document_changing() {
    let channel = new_channel();
    let app = spawn_with_redis(&channel, vec![]).await;
    let mut conn = redis().await;
    wait_subscribed(&mut conn, &channel).await;
    let fid = app.upload_file(USER, "clip.mp4", b"video").await;
    let res = app
        .get_as(USER, &format!("/events?fid={}", fid.to_hex()))
        .await;
    assert_eq!(res.status(), 200);
    let mut events = EventReader::new(res);
    assert_eq!(next_status(&mut events).await["state"], "queued");

    // The job document stays `queued` at 0 %: these values can only come from the messages.
    for p in [12.5, 37.0, 81.2] {
        publish(&mut conn, &channel, progress(fid, p)).await;
        assert_eq!(
            next_status(&mut events).await,
            json!({ "status": "processing", "state": "processing", "progress": p })
        );
    }
    let job = app.job(fid).await.unwrap();
    assert_eq!(job.get_str("state").unwrap(), "queued");

    // A message about another upload reaches nobody here; a state change makes the stream read
    // the document, which says completed.
    publish(&mut conn, &channel, progress(ObjectId::new(), 50.0)).await;
    let mp3 = ObjectId::new();
    app.update_job(
        fid,
        doc! { "state": "completed", "progress": 100.0, "mp3_fid": mp3 },
    )
    .await;
    publish(
        &mut conn,
        &channel,
        json!({ "video_fid": fid.to_hex(), "state": "completed" }),
    )
    .await;
    let done = next_status(&mut events).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["mp3_fid"], mp3.to_hex());
    assert_eq!(
        events.next().await,
        None,
        "the stream ends after completion"
    );
}

#[tokio::test]
async fn messages_carry_no_ownership_and_a_stream_ends_on_deletion() {
    let channel = new_channel();
    let app = spawn_with_redis(&channel, vec![]).await;
    let mut conn = redis().await;
    wait_subscribed(&mut conn, &channel).await;
    let fid = app.upload_file(USER, "clip.mp4", b"video").await;

    // Another user is refused before any message counts.
    let res = app
        .get_as(
            "mallory@example.com",
            &format!("/events?fid={}", fid.to_hex()),
        )
        .await;
    assert_eq!(res.status(), 404);

    let res = app
        .get_as(USER, &format!("/events?fid={}", fid.to_hex()))
        .await;
    let mut events = EventReader::new(res);
    next_status(&mut events).await;
    // A forged `completed` does not complete anything: the stream checks the document, which
    // still says queued, and sends nothing new.
    publish(
        &mut conn,
        &channel,
        json!({ "video_fid": fid.to_hex(), "state": "completed", "mp3_fid": ObjectId::new().to_hex() }),
    )
    .await;
    publish(&mut conn, &channel, progress(fid, 5.0)).await;
    assert_eq!(next_status(&mut events).await["progress"], 5.0);

    // The gateway's own deletion is published: the stream reads, finds nothing, and ends.
    let status = app
        .http
        .delete(format!("{}/jobs/{}", app.base, fid.to_hex()))
        .header("authorization", app.bearer(USER))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 204);
    let (event, data) = events.next().await.unwrap();
    assert_eq!(event, "error", "{data}");
    assert_eq!(events.next().await, None);
}

#[tokio::test]
async fn one_subscription_serves_every_stream_of_the_gateway() {
    let channel = new_channel();
    let app = spawn_with_redis(
        &channel,
        vec![("MAX_EVENT_STREAMS_PER_USER", "50".to_owned())],
    )
    .await;
    let mut conn = redis().await;
    wait_subscribed(&mut conn, &channel).await;
    let mut fids = Vec::new();
    for i in 0..4 {
        fids.push(
            app.upload_file(USER, &format!("clip{i}.mp4"), b"video")
                .await,
        );
    }
    // Five streams per upload.
    let mut streams = Vec::new();
    for &fid in &fids {
        for _ in 0..5 {
            let res = app
                .get_as(USER, &format!("/events?fid={}", fid.to_hex()))
                .await;
            let mut events = EventReader::new(res);
            next_status(&mut events).await;
            streams.push((fid, events));
        }
    }
    assert_eq!(
        subscribers(&mut conn, &channel).await,
        1,
        "twenty streams, one subscription"
    );
    for (i, &fid) in fids.iter().enumerate() {
        publish(&mut conn, &channel, progress(fid, 10.0 * (i + 1) as f64)).await;
    }
    for (fid, events) in &mut streams {
        let i = fids.iter().position(|f| f == fid).unwrap();
        assert_eq!(
            next_status(events).await["progress"],
            10.0 * (i + 1) as f64,
            "each stream gets its own upload's progress"
        );
    }
    drop(streams);
    assert_eq!(subscribers(&mut conn, &channel).await, 1);
}

#[tokio::test]
async fn with_redis_away_a_stream_still_completes_by_polling() {
    let app = TestApp::spawn_with(Options {
        env: vec![("REDIS_URL", format!("redis://127.0.0.1:{}", closed_port()))],
        ..Options::default()
    })
    .await;
    let fid = app.upload_file(USER, "clip.mp4", b"video").await;
    let res = app
        .get_as(USER, &format!("/events?fid={}", fid.to_hex()))
        .await;
    assert_eq!(res.status(), 200);
    let mut events = EventReader::new(res);
    assert_eq!(next_status(&mut events).await["state"], "queued");
    app.update_job(fid, doc! { "state": "processing", "progress": 40.0 })
        .await;
    assert_eq!(
        next_status(&mut events).await,
        json!({ "status": "processing", "state": "processing", "progress": 40.0 })
    );
    let mp3 = ObjectId::new();
    app.update_job(
        fid,
        doc! { "state": "completed", "progress": 100.0, "mp3_fid": mp3 },
    )
    .await;
    assert_eq!(next_status(&mut events).await["status"], "completed");
    assert_eq!(events.next().await, None);
}

/// A TCP relay to Redis whose connections the test can cut, as a network fault would.
struct CuttableRelay {
    port: u16,
    links: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
    _accept: tokio::task::JoinHandle<()>,
}

impl CuttableRelay {
    async fn start() -> Self {
        let target = redis_url()
            .trim_start_matches("redis://")
            .trim_end_matches('/')
            .to_owned();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let links = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let held = links.clone();
        let accept = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let target = target.clone();
                let link = tokio::spawn(async move {
                    if let Ok(mut server) = tokio::net::TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                held.lock().unwrap().push(link);
            }
        });
        Self {
            port,
            links,
            _accept: accept,
        }
    }

    /// Closes every relayed connection (new ones are still accepted).
    fn cut(&self) {
        for link in self.links.lock().unwrap().drain(..) {
            link.abort();
        }
    }
}

#[tokio::test]
async fn a_lost_subscription_is_made_again_and_pushing_resumes() {
    let relay = CuttableRelay::start().await;
    let channel = new_channel();
    let app = TestApp::spawn_with(Options {
        env: vec![
            ("REDIS_URL", format!("redis://127.0.0.1:{}", relay.port)),
            ("REDIS_EVENTS_CHANNEL", channel.clone()),
        ],
        ..Options::default()
    })
    .await;
    let mut conn = redis().await;
    wait_subscribed(&mut conn, &channel).await;
    let fid = app.upload_file(USER, "clip.mp4", b"video").await;
    let res = app
        .get_as(USER, &format!("/events?fid={}", fid.to_hex()))
        .await;
    let mut events = EventReader::new(res);
    next_status(&mut events).await;
    // As the converter does: the write, then the message.
    app.update_job(fid, doc! { "state": "processing", "progress": 10.0 })
        .await;
    publish(&mut conn, &channel, progress(fid, 10.0)).await;
    assert_eq!(next_status(&mut events).await["progress"], 10.0);

    relay.cut();
    for _ in 0..200 {
        if subscribers(&mut conn, &channel).await == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    // Meanwhile the stream polls: a change in the document still arrives.
    app.update_job(fid, doc! { "state": "processing", "progress": 20.0 })
        .await;
    assert_eq!(next_status(&mut events).await["progress"], 20.0);

    // The gateway subscribes again by itself; pushed values (the document stays at 20) flow.
    wait_subscribed(&mut conn, &channel).await;
    let mut seen = Value::Null;
    for _ in 0..100 {
        publish(&mut conn, &channel, progress(fid, 30.0)).await;
        let data = tokio::time::timeout(Duration::from_millis(200), events.next()).await;
        if let Ok(Some((_, data))) = data {
            seen = data;
            break;
        }
    }
    assert_eq!(seen["progress"], 30.0, "{seen}");
}
