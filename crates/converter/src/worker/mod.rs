//! One conversion job, from the queue message to the stored MP3 and the job's final state.
//!
//! Idempotent, because RabbitMQ delivers at least once: an MP3 already stored for the upload is
//! reused, and after storing ours only the oldest MP3 for the upload is kept, so a redelivered or
//! concurrently processed message ends with exactly one MP3.
//!
//! Bounded: each delivery counts itself in the job before converting, so a file that kills the
//! converter (whatever the cause) is failed after `max_attempts` deliveries instead of looping.
//! Retryable failures are retried in place with back-off; permanent ones (a bad message, a bad
//! file, a storage error no retry changes) fail the job at once.
//! A job deleted by its owner is never recreated, and whatever a delivery stored for it is removed.
//!
//! What each step decides lives in its own module: [`legacy`] adopts the original gateway's
//! job-less messages, [`dedup`] keeps exactly one MP3 per upload, [`conversion`] claims the job
//! and converts.

mod conversion;
mod dedup;
mod legacy;

use std::{sync::Arc, time::Duration};

use common::{
    job_events::{JobEvent, JobEventKind, Publisher},
    jobs::{Job, JobState},
    message::VideoMessage,
    retry::{Backoff, Classify},
};
use mongodb::bson::oid::ObjectId;
use tokio_util::sync::CancellationToken;

use crate::{
    scratch::Scratch,
    slots::Slots,
    storage::{Storage, StorageError},
    transcode::Limits,
};

/// Longest pause between two in-place retries of a job.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(60);

/// How a message ended; the consumer acks, dead-letters or requeues accordingly.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The MP3 and the job's `completed` state are stored.
    Completed {
        /// The MP3 kept for the upload.
        mp3_fid: ObjectId,
        /// True when an MP3 from an earlier delivery was reused instead of converting again.
        reused: bool,
    },
    /// It can never succeed: dead-letter it with this reason.
    Failed {
        /// For the user, stored in the job and in the dead letter's header.
        reason: String,
    },
    /// Interrupted by shutdown: requeue for another converter.
    Requeue,
    /// The job and its upload were deleted: nothing is kept, the message is acked.
    Discarded,
}

impl Outcome {
    /// Label for `converter_jobs_total{outcome}`.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Completed { reused: false, .. } => "completed",
            Self::Completed { reused: true, .. } => "duplicate",
            Self::Failed { .. } => "failed",
            Self::Requeue => "requeued",
            Self::Discarded => "discarded",
        }
    }
}

/// Why one attempt did not complete.
#[derive(Debug, thiserror::Error)]
enum JobError {
    /// The file or the job can never succeed; the reason is for the user.
    #[error("{0}")]
    Permanent(String),
    /// MongoDB or a local file failed; [`Classify`] tells whether a retry can help.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The transcoder failed in a way a retry may not repeat.
    #[error("internal error: {0}")]
    Internal(String),
    #[error("cancelled")]
    Cancelled,
    #[error("the job was deleted")]
    Deleted,
}

/// What a job needs besides the message: storage, scratch space and limits.
#[derive(Debug, Clone)]
pub struct Worker {
    /// Mongo access.
    pub storage: Storage,
    /// Publishes state changes and progress for the gateways' event streams (best effort).
    pub events: Publisher,
    /// This application's directory for the MP3 being written (uploads are read from GridFS).
    pub scratch: Arc<Scratch>,
    /// Attempts before a transient failure becomes permanent, and deliveries that may die
    /// mid-conversion before the job is failed.
    pub max_attempts: u32,
    /// First retry delay, doubled per attempt.
    pub retry_base: Duration,
    /// Longest a single conversion may run.
    pub job_timeout: Duration,
    /// What an input may be and an MP3 may become.
    pub limits: Limits,
    /// The process' conversion slots; a job may borrow idle ones to encode in segments.
    pub slots: Slots,
}

/// What one delivery carries from one in-place attempt to the next.
#[derive(Debug)]
struct Delivery {
    /// Whether this delivery has counted itself in the job (once, whatever the retries).
    claimed: bool,
    /// Whether this delivery created the job (a message from the original gateway).
    adopted: bool,
    /// Id of the MP3 this delivery stores, noted in the job before streaming it.
    mp3_fid: ObjectId,
}

/// A queue message that names an upload: the original's JSON with a valid ObjectId.
#[derive(Debug, Clone, PartialEq)]
pub struct ConversionRequest {
    /// The message as published.
    pub message: VideoMessage,
    /// The upload, parsed from `message.video_fid`.
    pub video_fid: ObjectId,
}

impl ConversionRequest {
    /// Parses a queue message, or says why it is unusable (in words for the user).
    pub fn parse(payload: &[u8]) -> Result<Self, String> {
        let message: VideoMessage = serde_json::from_slice(payload)
            .map_err(|e| format!("the queue message is not valid JSON for a conversion: {e}"))?;
        let video_fid = ObjectId::parse_str(message.video_fid.trim())
            .map_err(|_| format!("video_fid {:?} is not a valid file id", message.video_fid))?;
        Ok(Self { message, video_fid })
    }
}

impl Worker {
    /// Processes one message, retrying transient failures with back-off. `abort` interrupts
    /// the work (shutdown grace period over): the outcome is then [`Outcome::Requeue`].
    pub async fn process(&self, payload: &[u8], abort: &CancellationToken) -> Outcome {
        let request = match ConversionRequest::parse(payload) {
            Ok(request) => request,
            Err(reason) => {
                tracing::warn!(%reason, "unusable message");
                return Outcome::Failed { reason };
            }
        };
        let id = request.video_fid;
        tracing::Span::current().record("video_fid", id.to_hex());
        let mut delivery = Delivery {
            claimed: false,
            adopted: false,
            mp3_fid: ObjectId::new(),
        };
        let outcome = self.run(&request, abort, &mut delivery).await;
        // What the job document now says, for pages watching it; a requeue only changed it
        // when this delivery had claimed the job.
        let event = match &outcome {
            Outcome::Completed { .. } => Some(JobEventKind::Completed),
            Outcome::Failed { .. } => Some(JobEventKind::Failed),
            Outcome::Requeue => delivery.claimed.then_some(JobEventKind::Queued),
            Outcome::Discarded => Some(JobEventKind::Deleted),
        };
        if let Some(kind) = event {
            self.events.publish(JobEvent::new(id, kind));
        }
        outcome
    }

    /// [`Worker::process`] for a parsed message: the attempts and what each failure means.
    async fn run(
        &self,
        request: &ConversionRequest,
        abort: &CancellationToken,
        delivery: &mut Delivery,
    ) -> Outcome {
        let id = request.video_fid;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let error = match self.attempt(request, abort, delivery).await {
                Ok(outcome) => return outcome,
                Err(e) => e,
            };
            match error {
                JobError::Deleted => return self.discard(id).await,
                JobError::Cancelled => return self.requeue(id, delivery).await,
                JobError::Permanent(reason) => return self.fail(id, reason).await,
                // Not the message's fault and no retry fixes it: back to the queue (after a
                // pause, so it does not spin) until the server is replaced.
                JobError::Storage(StorageError::TooOld(sentence)) => {
                    tracing::error!("{sentence}; the message goes back to the queue");
                    tokio::select! {
                        () = tokio::time::sleep(crate::consumer::TOO_OLD_RECHECK) => {}
                        () = abort.cancelled() => {}
                    }
                    return self.requeue(id, delivery).await;
                }
                // Retrying a refusal only repeats it: fail now, with what was refused.
                JobError::Storage(e) if !e.is_retryable() => {
                    tracing::error!(error = %e, attempt, "permanent storage error, not retried");
                    return self
                        .fail_unless_deleted(id, format!("the file store refused it ({e})"))
                        .await;
                }
                JobError::Storage(_) | JobError::Internal(_) if attempt < self.max_attempts => {
                    let delay = Backoff::delay_after(self.retry_base, MAX_RETRY_DELAY, attempt);
                    tracing::warn!(error = %error, attempt, ?delay, "attempt failed, retrying");
                    metrics::counter!("converter_job_retries_total").increment(1);
                    tokio::select! {
                        () = tokio::time::sleep(delay) => {}
                        () = abort.cancelled() => return self.requeue(id, delivery).await,
                    }
                }
                JobError::Storage(_) | JobError::Internal(_) => {
                    tracing::error!(error = %error, attempt, "giving up");
                    let reason = format!(
                        "the conversion failed {attempt} times because of a temporary problem ({error})"
                    );
                    return self.fail(id, reason).await;
                }
            }
        }
    }

    /// One try at the job: the steps in order, each in the module that decides it.
    async fn attempt(
        &self,
        request: &ConversionRequest,
        abort: &CancellationToken,
        delivery: &mut Delivery,
    ) -> Result<Outcome, JobError> {
        let id = request.video_fid;
        let job = self.storage.job(id).await?;
        if let Some(outcome) = job.as_ref().and_then(final_outcome) {
            return Ok(outcome);
        }
        let Some(upload) = self.storage.upload(id).await? else {
            return match job {
                // Deleted while queued.
                None => Err(JobError::Deleted),
                // Deleted after this delivery made the job for it (the deletion found none).
                Some(_) if delivery.adopted => Err(JobError::Deleted),
                Some(_) => Err(JobError::Permanent(
                    "the uploaded video was not found".to_owned(),
                )),
            };
        };
        let job = match job {
            Some(job) => job,
            None => {
                delivery.adopted = true;
                self.adopt(&request.message, id, &upload).await?
            }
        };
        // An MP3 stored by an earlier delivery that died before recording it: reuse it.
        if let Some(outcome) = self.reuse_stored_mp3(&job).await? {
            return Ok(outcome);
        }
        if !delivery.claimed {
            if let Some(outcome) = self.claim(id, delivery).await? {
                return Ok(outcome);
            }
        }
        self.convert_and_store(&job, &upload, delivery, abort).await
    }

    async fn fail(&self, id: ObjectId, reason: String) -> Outcome {
        if let Err(e) = self.storage.fail_job(id, &reason).await {
            tracing::error!(error = %e, "could not record the failure in the job");
        }
        Outcome::Failed { reason }
    }

    /// [`Worker::fail`], unless the job is gone: then its owner deleted it meanwhile (the
    /// refusal was most likely the upload vanishing under us) and the message is discarded.
    async fn fail_unless_deleted(&self, id: ObjectId, reason: String) -> Outcome {
        match self.storage.job_exists(id).await {
            Ok(false) => self.discard(id).await,
            _ => self.fail(id, reason).await,
        }
    }

    /// Hands the job back for another converter; the delivery's attempt is taken back with it.
    async fn requeue(&self, id: ObjectId, delivery: &Delivery) -> Outcome {
        if delivery.claimed {
            if let Err(e) = self.storage.requeue_job(id).await {
                tracing::warn!(error = %e, "could not mark the interrupted job queued");
            }
        }
        Outcome::Requeue
    }

    /// The owner deleted the job: removes what this or an earlier delivery stored for it (an
    /// MP3, the job if it was completed after the deletion began), creates nothing.
    async fn discard(&self, id: ObjectId) -> Outcome {
        let removed = async {
            // Shared with repeats, an MP3 stays for them.
            for mp3 in self.storage.mp3s_for(id).await? {
                self.storage.release_mp3(mp3, id).await?;
            }
            self.storage.delete_job(id).await
        }
        .await;
        if let Err(e) = removed {
            tracing::warn!(error = %e, "could not remove what was stored for a deleted job");
        }
        tracing::info!("the upload and its job were deleted; dropping the message");
        Outcome::Discarded
    }
}

/// What a job already in a final state means for a new delivery: completed is acked, failed is
/// dead-lettered again (an earlier delivery may have died before doing so), never retried.
fn final_outcome(job: &Job) -> Option<Outcome> {
    match job.state {
        JobState::Completed => job.mp3_fid.map(|mp3_fid| {
            tracing::info!(%mp3_fid, "job already completed");
            Outcome::Completed {
                mp3_fid,
                reused: true,
            }
        }),
        JobState::Failed => Some(Outcome::Failed {
            reason: job
                .error
                .clone()
                .unwrap_or_else(|| "the conversion failed".to_owned()),
        }),
        JobState::Queued | JobState::Processing => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_original_message() {
        let request = ConversionRequest::parse(
            br#"{"video_fid":"65a1b2c3d4e5f60718293a4b","mp3_fid":null,"username":"a@b.c"}"#,
        )
        .unwrap();
        assert_eq!(request.message.username, "a@b.c");
        assert_eq!(request.video_fid.to_hex(), "65a1b2c3d4e5f60718293a4b");
    }

    #[test]
    fn rejects_bad_messages_with_reasons() {
        let e = ConversionRequest::parse(b"not json").unwrap_err();
        assert!(e.contains("not valid JSON"), "{e}");
        let e = ConversionRequest::parse(br#"{"video_fid":"xyz","mp3_fid":null,"username":"u"}"#)
            .unwrap_err();
        assert!(e.contains("not a valid file id"), "{e}");
        assert!(ConversionRequest::parse(br#"{"mp3_fid":null}"#).is_err());
    }

    #[test]
    fn outcome_labels() {
        let id = ObjectId::new();
        assert_eq!(
            Outcome::Completed {
                mp3_fid: id,
                reused: false
            }
            .label(),
            "completed"
        );
        assert_eq!(
            Outcome::Completed {
                mp3_fid: id,
                reused: true
            }
            .label(),
            "duplicate"
        );
        assert_eq!(Outcome::Failed { reason: "x".into() }.label(), "failed");
        assert_eq!(Outcome::Requeue.label(), "requeued");
        assert_eq!(Outcome::Discarded.label(), "discarded");
    }
}
