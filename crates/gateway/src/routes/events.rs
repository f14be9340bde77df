//! `GET /events?fid=<video_fid>`: Server-Sent Events with the job's status as it changes.
//!
//! With `REDIS_URL` set, changes are pushed: the converter publishes each state change and
//! progress update, and the gateway's one subscription ([`crate::job_feed`]) hands them to the
//! streams. The job document stays the truth: a stream reads it at start, whenever the feed says
//! something a message cannot carry (a new state, missed messages, the subscription lost or
//! back), and after [`SAFETY_POLL`] without news in case a message was lost. Progress alone is
//! taken from the message. Without the feed (no `REDIS_URL`, or Redis away) the stream polls the document every
//! 500 ms; MongoDB change streams would need a replica set.
//!
//! Each change is sent as one `status` event with the `/status` JSON, and the stream ends after
//! `completed` or `failed`, or when it has lived `EVENT_STREAM_MAX_SECS` (the client reconnects).
//! A user holds at most `MAX_EVENT_STREAMS_PER_USER` streams at once.

use std::{convert::Infallible, time::Duration};

use axum::{
    extract::State,
    response::sse::{Event, KeepAlive, Sse},
};
use futures::Stream;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{status::status_of, Fid};
use crate::{
    claims::User,
    error::{ApiError, ApiResult},
    job_feed::Signal,
    AppState,
};

/// How often the job document is read when nothing is pushed.
const POLL_INTERVAL: Duration = Duration::from_millis(500);
/// After this long without a pushed message the job document is read, so that a lost message
/// never leaves a page stuck for long.
pub const SAFETY_POLL: Duration = Duration::from_secs(12);
/// How often a comment keeps idle proxies from closing the stream.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// `GET /events`.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(events))
}

/// Status changes of one upload, as Server-Sent Events.
#[utoipa::path(
    get,
    path = "/events",
    tag = "files",
    security(("bearer" = [])),
    params(("fid" = inline(Fid), Query, description = "The upload's id (`video_fid`)")),
    responses(
        (status = 200, description = "text/event-stream: `event: status` with the /status JSON on every change; `event: error` if the job vanishes or cannot be read; ends after completed or failed", content_type = "text/event-stream"),
        (status = 400, description = "fid missing or malformed"),
        (status = 401, description = "Missing, malformed, bad or expired token"),
        (status = 404, description = "No such upload, or another user's"),
        (status = 429, description = "The caller already holds MAX_EVENT_STREAMS_PER_USER streams"),
        (status = 503, description = "MongoDB unavailable"),
    )
)]
pub async fn events(
    State(state): State<AppState>,
    user: User,
    Fid(fid): Fid,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    let slot = state
        .event_streams
        .try_acquire(user.email())
        .ok_or_else(|| {
            ApiError::TooManyRequests(format!(
                "you already follow {} uploads at once; close a page or wait for one to finish",
                state.event_streams.max()
            ))
        })?;
    // Watching before the first read, so that nothing published after the read is missed.
    let mut feed = state.job_feed.watch(fid);
    // Errors before the stream starts (404, 503) are ordinary JSON answers.
    let first = read_status(&state, &user, fid).await?;
    let ends_at = tokio::time::Instant::now() + state.config.event_stream_max;
    let stream = async_stream::stream! {
        // Held as long as the stream lives; dropped when it ends or the client goes away.
        let _slot = slot;
        let mut last = first;
        // When the stream last learned where the job stands: a read, or pushed progress.
        let mut last_known = tokio::time::Instant::now();
        yield Ok(status_event(&last));
        while !last.is_final() {
            let pushed = feed.as_ref().is_some_and(|f| f.is_live());
            // Pushed progress means a converter has just written the job `processing`: a message
            // lost meanwhile is superseded by the next one, and a lost final one leaves silence,
            // which the safety poll ends. So only silence is polled.
            let read_at = last_known + if pushed { SAFETY_POLL } else { POLL_INTERVAL };
            let signal = tokio::select! {
                () = tokio::time::sleep_until(read_at) => None,
                signal = next_signal(&mut feed) => Some(signal),
                // The gateway is stopping: end the stream; the client reconnects elsewhere.
                () = state.shutdown.cancelled() => break,
                // Lived long enough (a job stuck `queued` would hold it forever): end cleanly,
                // the client reconnects and gets the current status first.
                () = tokio::time::sleep_until(ends_at) => break,
            };
            if let Some(Signal::Progress(p)) = signal {
                // Only progress comes from the message; the rest of the status is the
                // document's as last read.
                if let Some(current) = last.with_progress(p) {
                    last_known = tokio::time::Instant::now();
                    if current != last {
                        yield Ok(status_event(&current));
                        last = current;
                    }
                    continue;
                }
            }
            last_known = tokio::time::Instant::now();
            match read_status(&state, &user, fid).await {
                Ok(current) if current == last => {}
                Ok(current) => {
                    yield Ok(status_event(&current));
                    last = current;
                }
                Err(e) => {
                    let message = if e.status_code().is_server_error() {
                        tracing::warn!(error = %e, video_fid = %fid, "event stream cannot read the job");
                        // A transient fault: keep polling, the client keeps its stream.
                        continue;
                    } else {
                        e.to_string()
                    };
                    yield Ok(Event::default()
                        .event("error")
                        .data(serde_json::json!({ "error": message }).to_string()));
                    break;
                }
            }
        }
    };
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(KEEP_ALIVE).text("keep-alive")))
}

/// What the feed says next; never, without a feed.
async fn next_signal(feed: &mut Option<crate::job_feed::Watch>) -> Signal {
    match feed {
        Some(feed) => feed.next().await,
        None => std::future::pending().await,
    }
}

/// The job's status from MongoDB, counted in `gateway_event_status_reads_total` (what the pushed
/// feed saves is measured by this counter).
async fn read_status(
    state: &AppState,
    user: &User,
    fid: mongodb::bson::oid::ObjectId,
) -> ApiResult<super::status::StatusBody> {
    metrics::counter!("gateway_event_status_reads_total").increment(1);
    status_of(state, user, fid).await
}

fn status_event(status: &super::status::StatusBody) -> Event {
    Event::default()
        .event("status")
        .data(serde_json::to_string(status).unwrap_or_else(|_| "{}".to_owned()))
}
