//! Following a conversion to its end: the `/events` stream while the gateway has one, polling
//! `/status` every few seconds when it has none (the original gateway), is too busy (429) or the
//! stream keeps failing.

use std::time::{Duration, Instant};

use futures::StreamExt;

use crate::api::{Api, ApiError, Events, JobStatus};

/// How a job is followed; [`Settings::default`] is what the command line uses.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Interval between `/status` polls (3 s, as the original frontend polled).
    pub poll: Duration,
    /// First wait before reopening a failed stream; doubles per failure in a row.
    pub reconnect: Duration,
    /// Longest wait before reopening a stream.
    pub max_reconnect: Duration,
    /// A stream that ended cleanly after this long reached the gateway's lifetime cap: no failure.
    pub min_stream: Duration,
    /// Stream failures in a row after which polling takes over.
    pub max_stream_failures: u32,
    /// Failed polls in a row after which the job is given up.
    pub max_poll_failures: u32,
    /// Silence on an open stream after which it counts as broken (the gateway sends a
    /// keep-alive comment every 15 s).
    pub stream_idle: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            poll: Duration::from_secs(3),
            reconnect: Duration::from_secs(1),
            max_reconnect: Duration::from_secs(15),
            min_stream: Duration::from_secs(10),
            max_stream_failures: 3,
            max_poll_failures: 20,
            stream_idle: Duration::from_secs(45),
        }
    }
}

/// How the status arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// Server-Sent Events from `/events`.
    Stream,
    /// `/status`, every [`Settings::poll`].
    Polling,
}

/// What the follower reports while it works.
#[derive(Debug, Clone)]
pub enum Update {
    /// The way of following changed.
    Transport(Transport),
    /// A status (each event, each poll).
    Status(JobStatus),
}

/// How one stream ended.
enum StreamEnd {
    /// A final status arrived.
    Final(JobStatus),
    /// Ended without one, after `lived`.
    Ended { lived: Duration },
    /// Broke, or went silent.
    Broken(String),
    /// The gateway says the job is gone (`event: error`): `/status` confirms it.
    Gone,
}

/// Follows `video_fid` until it completes or fails; the final status.
pub async fn follow(
    api: &Api,
    video_fid: &str,
    settings: &Settings,
    mut on_update: impl FnMut(Update),
) -> Result<JobStatus, ApiError> {
    let mut failures = 0u32;
    loop {
        let end = match api.events(video_fid).await {
            Ok(Events::Unavailable(why)) => {
                tracing::debug!(video_fid, why, "no event stream; polling /status");
                break;
            }
            Ok(Events::Stream(stream)) => {
                on_update(Update::Transport(Transport::Stream));
                read_stream(stream, settings, &mut on_update).await
            }
            Err(e) if e.is_permanent() => return Err(e),
            Err(e) => StreamEnd::Broken(e.to_string()),
        };
        match end {
            StreamEnd::Final(status) => return Ok(status),
            StreamEnd::Gone => break,
            StreamEnd::Ended { lived } if lived >= settings.min_stream => failures = 0,
            StreamEnd::Ended { .. } => failures += 1,
            StreamEnd::Broken(why) => {
                tracing::debug!(video_fid, why, "event stream failed");
                failures += 1;
            }
        }
        if failures >= settings.max_stream_failures {
            tracing::debug!(video_fid, failures, "event stream keeps failing; polling");
            break;
        }
        tokio::time::sleep(backoff(failures, settings)).await;
    }

    on_update(Update::Transport(Transport::Polling));
    let mut failures = 0u32;
    loop {
        match api.status(video_fid).await {
            Ok(status) => {
                let done = status.is_final();
                on_update(Update::Status(status.clone()));
                if done {
                    return Ok(status);
                }
                failures = 0;
            }
            Err(e) if e.is_permanent() => return Err(e),
            Err(e) => {
                failures += 1;
                tracing::debug!(video_fid, failures, error = %e, "status poll failed");
                if failures >= settings.max_poll_failures {
                    return Err(e);
                }
            }
        }
        tokio::time::sleep(settings.poll).await;
    }
}

async fn read_stream(
    mut stream: crate::api::EventStream,
    settings: &Settings,
    on_update: &mut impl FnMut(Update),
) -> StreamEnd {
    let opened = Instant::now();
    loop {
        let next = match tokio::time::timeout(settings.stream_idle, stream.next()).await {
            Ok(next) => next,
            Err(_) => return StreamEnd::Broken("no event or keep-alive in time".into()),
        };
        let event = match next {
            None => {
                return StreamEnd::Ended {
                    lived: opened.elapsed(),
                }
            }
            Some(Err(why)) => return StreamEnd::Broken(why),
            Some(Ok(event)) => event,
        };
        match event.event.as_str() {
            "status" => match serde_json::from_str::<JobStatus>(&event.data) {
                Ok(status) => {
                    let done = status.is_final();
                    on_update(Update::Status(status.clone()));
                    if done {
                        return StreamEnd::Final(status);
                    }
                }
                Err(e) => tracing::debug!(error = %e, data = event.data, "unreadable status event"),
            },
            "error" => return StreamEnd::Gone,
            other => tracing::debug!(event = other, "event ignored"),
        }
    }
}

/// The wait before reopening a stream after `failures` failures in a row (0: a clean end).
fn backoff(failures: u32, settings: &Settings) -> Duration {
    common::retry::doubled(settings.reconnect, settings.max_reconnect, failures)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let s = Settings::default();
        assert_eq!(backoff(0, &s), Duration::from_secs(1));
        assert_eq!(backoff(1, &s), Duration::from_secs(1));
        assert_eq!(backoff(2, &s), Duration::from_secs(2));
        assert_eq!(backoff(3, &s), Duration::from_secs(4));
        assert_eq!(backoff(30, &s), Duration::from_secs(15));
    }
}
