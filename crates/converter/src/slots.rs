//! The converter's conversion slots (`CONVERTER_CONCURRENCY`): every job holds one while it
//! runs, and a starting job may borrow the idle ones to encode its audio in segments
//! ([`crate::segmented`]), but only when no message is waiting in the queue: when there is more
//! work than slots, jobs are not split (throughput first).

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use lapin::{options::QueueDeclareOptions, types::FieldTable, Channel};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Longest wait for the broker's answer on the queue depth; no answer means "do not split".
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// The slots of one converter process; clones share them.
#[derive(Clone)]
pub struct Slots {
    permits: Arc<Semaphore>,
    queue: String,
    /// Shortest segment worth splitting for; `None` never splits.
    min_segment: Option<Duration>,
    /// A channel of the consumer's connection used only to ask for the queue depth.
    probe: Arc<Mutex<Option<Channel>>>,
}

impl std::fmt::Debug for Slots {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Slots")
            .field("idle", &self.permits.available_permits())
            .field("queue", &self.queue)
            .field("min_segment", &self.min_segment)
            .finish()
    }
}

impl Slots {
    /// `total` slots for jobs from `queue`; jobs split into segments of at least `min_segment`
    /// (`None`: never).
    pub fn new(total: u16, queue: &str, min_segment: Option<Duration>) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(usize::from(total.max(1)))),
            queue: queue.to_owned(),
            min_segment,
            probe: Arc::new(Mutex::new(None)),
        }
    }

    /// Slots not held by any job.
    pub fn idle(&self) -> usize {
        self.permits.available_permits()
    }

    /// Shortest segment a split job gets, if splitting is on.
    pub fn min_segment(&self) -> Option<Duration> {
        self.min_segment
    }

    /// The channel used to ask the broker how many messages wait (set by the consumer for each
    /// connection, cleared when it is lost).
    pub fn set_probe(&self, channel: Option<Channel>) {
        if let Ok(mut probe) = self.probe.lock() {
            *probe = channel;
        }
    }

    /// Takes the probe channel away, to close it before its connection at shutdown.
    pub fn take_probe(&self) -> Option<Channel> {
        self.probe.lock().ok()?.take()
    }

    /// The slot a job runs in; waits while every slot is held (by jobs or a split job's
    /// segments).
    #[allow(
        clippy::expect_used,
        reason = "the semaphore is never closed, so acquiring only fails if that changes"
    )]
    pub async fn acquire(&self) -> OwnedSemaphorePermit {
        self.permits
            .clone()
            .acquire_owned()
            .await
            .expect("the slot semaphore is never closed")
    }

    /// The idle slots a starting job may use for its segments: all of them when no message is
    /// waiting in the queue, none otherwise (or when the broker does not answer).
    pub async fn borrow_idle(&self) -> Option<OwnedSemaphorePermit> {
        self.min_segment?;
        if self.idle() == 0 {
            return None;
        }
        let waiting = self.waiting_messages().await?;
        if waiting > 0 {
            tracing::debug!(waiting, "messages waiting: not splitting");
            return None;
        }
        // Take as many as are still idle (another job may have started meanwhile).
        let idle = self.idle() as u32;
        (1..=idle)
            .rev()
            .find_map(|n| self.permits.clone().try_acquire_many_owned(n).ok())
    }

    /// Messages ready in the queue, from a passive declare; `None` when the broker cannot tell.
    pub async fn waiting_messages(&self) -> Option<u32> {
        let channel = self.probe.lock().ok()?.clone()?;
        let declared = tokio::time::timeout(
            PROBE_TIMEOUT,
            channel.queue_declare(
                &self.queue,
                QueueDeclareOptions {
                    passive: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            ),
        )
        .await;
        match declared {
            Ok(Ok(queue)) => Some(queue.message_count()),
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "queue depth unknown");
                None
            }
            Err(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn nothing_is_borrowed_without_a_broker_or_when_off() {
        let slots = Slots::new(3, "q", Some(Duration::from_secs(30)));
        let _job = slots.acquire().await;
        assert_eq!(slots.idle(), 2);
        // No probe channel: the queue depth is unknown, so no split.
        assert!(slots.borrow_idle().await.is_none());
        let off = Slots::new(3, "q", None);
        assert!(off.borrow_idle().await.is_none());
    }

    #[tokio::test]
    async fn a_job_waits_while_every_slot_is_held() {
        let slots = Slots::new(1, "q", None);
        let held = slots.acquire().await;
        assert!(
            tokio::time::timeout(Duration::from_millis(50), slots.acquire())
                .await
                .is_err()
        );
        drop(held);
        let _next = slots.acquire().await;
    }
}
