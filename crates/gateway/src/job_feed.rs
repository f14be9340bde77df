//! The gateway's one Redis subscription to job events, fanned out to its `/events` streams.
//!
//! One task per process holds the subscription (see [`common::job_events`] for why one channel)
//! and hands each message to the streams watching that upload through a per-upload broadcast
//! channel, created by the first watcher and removed when the last one leaves. A stream learns
//! when the subscription goes away or comes back (and when it missed messages), so that it reads
//! MongoDB again and polls while the feed is down. Messages carry a state and a percentage, never
//! anything about ownership: the stream checked that when it started.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use common::{
    job_events::{JobEvent, JobEventKind, JobEventsConfig, RateLimitedWarning},
    retry::Backoff,
};
use futures::StreamExt;
use mongodb::bson::oid::ObjectId;
use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;

/// Messages one stream may fall behind by before it is told to read MongoDB instead.
const BACKLOG_PER_JOB: usize = 16;
/// How often the subscription is checked with a PING (a dead peer sends no FIN).
const PING_EVERY: Duration = Duration::from_secs(15);
/// How long a PING may take before the subscription counts as lost.
const PING_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest pause between attempts to subscribe again.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(30);

/// What the feed tells one watcher.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Signal {
    /// The job is being converted and is this far (percent).
    Progress(f64),
    /// Something changed that a message cannot tell (a new state, messages missed, the
    /// subscription lost or back): read MongoDB.
    Resync,
}

/// Whether the subscription is up; `epoch` changes on every loss and every (re)subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Link {
    up: bool,
    epoch: u64,
}

/// Job events for this process' streams; [`JobFeed::disabled`] without `REDIS_URL`.
#[derive(Clone)]
pub struct JobFeed(Option<Arc<Hub>>);

struct Hub {
    watchers: Mutex<HashMap<ObjectId, Entry>>,
    link: watch::Sender<Link>,
}

/// The watchers of one upload.
struct Entry {
    sender: broadcast::Sender<Pushed>,
    /// Messages other than progress dispatched so far for this upload.
    changes: u64,
}

/// What travels to the watchers of one upload: the progress, if the message carried one, and
/// how many other messages came before, so that a watcher that missed some (lagged) can tell
/// whether any of those was more than progress, and read MongoDB only then.
#[derive(Debug, Clone, Copy)]
struct Pushed {
    progress: Option<f64>,
    changes: u64,
}

impl JobFeed {
    /// No feed: streams poll MongoDB.
    pub fn disabled() -> Self {
        Self(None)
    }

    /// Starts the subscribing task; it runs until `shutdown` is cancelled, resubscribing
    /// (with back-off) whenever the connection is lost.
    pub fn start(config: &JobEventsConfig, shutdown: CancellationToken) -> Self {
        let hub = Arc::new(Hub {
            watchers: Mutex::new(HashMap::new()),
            link: watch::Sender::new(Link::default()),
        });
        tokio::spawn(subscribe_loop(
            hub.clone(),
            config.client.clone(),
            config.channel.clone(),
            shutdown,
        ));
        Self(Some(hub))
    }

    /// Starts watching `video_fid`; `None` without a feed. Call before the first MongoDB read,
    /// so that nothing published after it is missed.
    pub fn watch(&self, video_fid: ObjectId) -> Option<Watch> {
        let hub = self.0.as_ref()?;
        let mut watchers = hub.lock();
        let entry = watchers.entry(video_fid).or_insert_with(|| Entry {
            sender: broadcast::channel(BACKLOG_PER_JOB).0,
            changes: 0,
        });
        let rx = entry.sender.subscribe();
        let seen_changes = entry.changes;
        metrics::gauge!("gateway_job_feed_watched_jobs").set(watchers.len() as f64);
        let mut link = hub.link.subscribe();
        link.mark_unchanged();
        Some(Watch {
            rx: Some(rx),
            seen_changes,
            link,
            video_fid,
            hub: hub.clone(),
        })
    }

    /// Whether the subscription is up now.
    pub fn is_up(&self) -> bool {
        self.0.as_ref().is_some_and(|hub| hub.link.borrow().up)
    }

    /// Uploads watched by at least one stream of this process.
    pub fn watched_jobs(&self) -> usize {
        self.0.as_ref().map_or(0, |hub| hub.lock().len())
    }
}

impl Hub {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ObjectId, Entry>> {
        // The map stays consistent whatever panicked while holding it.
        self.watchers.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn set_link(&self, up: bool) {
        self.link.send_modify(|link| {
            link.up = up;
            link.epoch += 1;
        });
        metrics::gauge!("gateway_job_feed_up").set(if up { 1.0 } else { 0.0 });
    }

    /// Hands one message to the streams watching its upload.
    fn dispatch(&self, payload: &[u8]) {
        let Ok(event) = serde_json::from_slice::<JobEvent>(payload) else {
            tracing::debug!("ignoring a job event that is not valid JSON");
            return;
        };
        let Ok(video_fid) = ObjectId::parse_str(&event.video_fid) else {
            return;
        };
        let progress = match (event.state, event.progress) {
            (JobEventKind::Processing, Some(p)) if p.is_finite() => Some(p),
            _ => None,
        };
        if let Some(entry) = self.lock().get_mut(&video_fid) {
            if progress.is_none() {
                entry.changes += 1;
            }
            // No receiver left is fine: the last watcher is leaving and removes the entry.
            let _ = entry.sender.send(Pushed {
                progress,
                changes: entry.changes,
            });
        }
    }
}

/// One stream's view of the feed; leaving removes the upload from the map if it was the last.
pub struct Watch {
    rx: Option<broadcast::Receiver<Pushed>>,
    /// The `changes` of the last message seen (or of the upload when watching began).
    seen_changes: u64,
    link: watch::Receiver<Link>,
    video_fid: ObjectId,
    hub: Arc<Hub>,
}

impl Watch {
    /// Whether messages arrive now (the subscription is up).
    pub fn is_live(&self) -> bool {
        self.link.borrow().up
    }

    /// The next thing the feed says about this upload; waits as long as it takes.
    pub async fn next(&mut self) -> Signal {
        let Some(rx) = self.rx.as_mut() else {
            return std::future::pending().await;
        };
        loop {
            tokio::select! {
                received = rx.recv() => match received {
                    Ok(pushed) if pushed.changes != self.seen_changes => {
                        self.seen_changes = pushed.changes;
                        return Signal::Resync;
                    }
                    Ok(Pushed { progress: Some(p), .. }) => return Signal::Progress(p),
                    Ok(Pushed { progress: None, .. }) => return Signal::Resync,
                    // Missed messages: the next one tells (by its `changes`) whether any of them
                    // was more than progress. Reading MongoDB for every lag would make a slow
                    // MongoDB slower still.
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    // The sender lives in the map while this receiver exists.
                    Err(broadcast::error::RecvError::Closed) => return std::future::pending().await,
                },
                changed = self.link.changed() => return match changed {
                    Ok(()) => {
                        self.link.borrow_and_update();
                        Signal::Resync
                    }
                    // The hub is gone (process stopping): nothing more will come.
                    Err(_) => std::future::pending().await,
                },
            }
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let mut watchers = self.hub.lock();
        // Our receiver first, so that the count below no longer includes it.
        drop(self.rx.take());
        if watchers
            .get(&self.video_fid)
            .is_some_and(|entry| entry.sender.receiver_count() == 0)
        {
            watchers.remove(&self.video_fid);
        }
        metrics::gauge!("gateway_job_feed_watched_jobs").set(watchers.len() as f64);
    }
}

async fn subscribe_loop(
    hub: Arc<Hub>,
    client: redis::Client,
    channel: String,
    shutdown: CancellationToken,
) {
    let warnings = RateLimitedWarning::new(Duration::from_secs(60));
    let mut backoff = Backoff::new(Duration::from_millis(250), MAX_RETRY_DELAY);
    loop {
        let subscribed = tokio::select! {
            subscribed = subscribe(&client, &channel) => subscribed,
            () = shutdown.cancelled() => return,
        };
        match subscribed {
            Ok(pubsub) => {
                hub.set_link(true);
                tracing::info!(%channel, "subscribed to job events: event streams are pushed");
                backoff.reset();
                let why = pump(&hub, pubsub, &shutdown).await;
                hub.set_link(false);
                if shutdown.is_cancelled() {
                    return;
                }
                tracing::warn!(reason = %why, "job events subscription lost; event streams \
                    poll MongoDB until it is back");
            }
            Err(e) => {
                if warnings.should_warn() {
                    tracing::warn!(error = %e, "cannot subscribe to job events in Redis; event \
                        streams poll MongoDB meanwhile (said at most once a minute)");
                } else {
                    tracing::debug!(error = %e, "cannot subscribe to job events yet");
                }
            }
        }
        tokio::select! {
            () = tokio::time::sleep(backoff.next_delay()) => {}
            () = shutdown.cancelled() => return,
        }
    }
}

async fn subscribe(
    client: &redis::Client,
    channel: &str,
) -> redis::RedisResult<redis::aio::PubSub> {
    let connect = async {
        let mut pubsub = client.get_async_pubsub().await?;
        pubsub.subscribe(channel).await?;
        Ok(pubsub)
    };
    tokio::time::timeout(PING_TIMEOUT, connect)
        .await
        .unwrap_or_else(|_| {
            Err(redis::RedisError::from((
                redis::ErrorKind::Io,
                "no answer from Redis",
            )))
        })
}

/// Dispatches messages until the connection fails or `shutdown`; returns why it stopped.
async fn pump(hub: &Hub, pubsub: redis::aio::PubSub, shutdown: &CancellationToken) -> String {
    let (mut sink, mut messages) = pubsub.split();
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.tick().await;
    loop {
        tokio::select! {
            message = messages.next() => match message {
                Some(message) => {
                    metrics::counter!("gateway_job_feed_messages_total").increment(1);
                    hub.dispatch(message.get_payload_bytes());
                }
                None => return "the connection closed".to_owned(),
            },
            _ = ping.tick() => {
                match tokio::time::timeout(PING_TIMEOUT, sink.ping::<redis::Value>()).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => return format!("PING failed: {e}"),
                    Err(_) => return format!("no answer to PING within {PING_TIMEOUT:?}"),
                }
            }
            () = shutdown.cancelled() => return "shutting down".to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hub_feed() -> JobFeed {
        JobFeed(Some(Arc::new(Hub {
            watchers: Mutex::new(HashMap::new()),
            link: watch::Sender::new(Link::default()),
        })))
    }

    #[tokio::test]
    async fn messages_reach_the_watchers_of_their_upload_only() {
        let feed = hub_feed();
        let hub = feed.0.clone().unwrap();
        let (a, b) = (ObjectId::new(), ObjectId::new());
        let mut wa1 = feed.watch(a).unwrap();
        let mut wa2 = feed.watch(a).unwrap();
        let mut wb = feed.watch(b).unwrap();
        assert_eq!(feed.watched_jobs(), 2);
        hub.dispatch(
            format!(r#"{{"video_fid":"{a}","state":"processing","progress":12.5}}"#).as_bytes(),
        );
        hub.dispatch(format!(r#"{{"video_fid":"{b}","state":"completed"}}"#).as_bytes());
        hub.dispatch(b"not json");
        assert_eq!(wa1.next().await, Signal::Progress(12.5));
        assert_eq!(wa2.next().await, Signal::Progress(12.5));
        assert_eq!(wb.next().await, Signal::Resync);
    }

    #[tokio::test]
    async fn the_last_watcher_leaving_removes_the_upload() {
        let feed = hub_feed();
        let a = ObjectId::new();
        let w1 = feed.watch(a).unwrap();
        let w2 = feed.watch(a).unwrap();
        drop(w1);
        assert_eq!(feed.watched_jobs(), 1);
        drop(w2);
        assert_eq!(feed.watched_jobs(), 0);
    }

    #[tokio::test]
    async fn a_lagging_watcher_resyncs_only_if_it_missed_a_state_change() {
        let feed = hub_feed();
        let hub = feed.0.clone().unwrap();
        let a = ObjectId::new();
        let mut w = feed.watch(a).unwrap();
        let progress =
            |i: usize| format!(r#"{{"video_fid":"{a}","state":"processing","progress":{i}}}"#);
        for i in 0..(BACKLOG_PER_JOB + 3) {
            hub.dispatch(progress(i).as_bytes());
        }
        assert_eq!(
            w.next().await,
            Signal::Progress(3.0),
            "missed progress only: carry on from the oldest kept"
        );
        for _ in 0..(BACKLOG_PER_JOB - 1) {
            assert!(matches!(w.next().await, Signal::Progress(_)));
        }
        hub.dispatch(format!(r#"{{"video_fid":"{a}","state":"queued"}}"#).as_bytes());
        for i in 0..(BACKLOG_PER_JOB + 3) {
            hub.dispatch(progress(i).as_bytes());
        }
        assert_eq!(
            w.next().await,
            Signal::Resync,
            "a state change was among the missed messages"
        );
        assert_eq!(w.next().await, Signal::Progress(4.0));
    }

    #[tokio::test]
    async fn a_link_change_means_resync() {
        let feed = hub_feed();
        let hub = feed.0.clone().unwrap();
        let mut w = feed.watch(ObjectId::new()).unwrap();
        hub.set_link(true);
        assert_eq!(w.next().await, Signal::Resync);
        assert!(w.is_live());
        assert!(feed.is_up());
    }

    #[test]
    fn without_a_feed_nothing_is_watched() {
        let feed = JobFeed::disabled();
        assert!(feed.watch(ObjectId::new()).is_none());
        assert!(!feed.is_up());
    }
}
