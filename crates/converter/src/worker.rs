//! One conversion job, from the queue message to the stored MP3 and the job's final state.
//!
//! Idempotent, because RabbitMQ delivers at least once: an MP3 already stored for the upload is
//! reused, and after storing ours only the oldest MP3 for the upload is kept, so a redelivered or
//! concurrently processed message ends with exactly one MP3.
//!
//! Bounded: each delivery counts itself in the job before converting, so a file that kills the
//! converter (whatever the cause) is failed after `max_attempts` deliveries instead of looping.
//! A job deleted by its owner is never recreated, and whatever a delivery stored for it is removed.

use std::{
    path::PathBuf,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use common::{
    job_events::{JobEvent, JobEventKind, Publisher},
    jobs::{Job, JobState},
    message::VideoMessage,
};
use mongodb::{bson::oid::ObjectId, gridfs::FilesCollectionDocument};
use tokio_util::sync::CancellationToken;

use crate::{
    gridfs_input::{GridFsUpload, ReadFailure},
    segmented::{self, Split},
    slots::Slots,
    storage::{Storage, StorageError},
    transcode::{self, title_from_filename, Limits, TranscodeError, TranscodeOptions},
};

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
    #[error("{0}")]
    Permanent(String),
    #[error(transparent)]
    Transient(#[from] StorageError),
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
    /// Directory for the spooled input and the MP3 being written.
    pub tmp_dir: PathBuf,
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

/// Parses a queue message: the original's JSON with a valid ObjectId, or a reason it is unusable.
pub fn parse_message(payload: &[u8]) -> Result<(VideoMessage, ObjectId), String> {
    let message: VideoMessage = serde_json::from_slice(payload)
        .map_err(|e| format!("the queue message is not valid JSON for a conversion: {e}"))?;
    let id = ObjectId::parse_str(message.video_fid.trim())
        .map_err(|_| format!("video_fid {:?} is not a valid file id", message.video_fid))?;
    Ok((message, id))
}

/// Delay before retry number `attempt` (1-based): base, 2x base, 4x base, ... capped at a minute.
pub fn backoff(base: Duration, attempt: u32) -> Duration {
    let factor = 1u32 << attempt.saturating_sub(1).min(16);
    base.saturating_mul(factor).min(Duration::from_secs(60))
}

impl Worker {
    /// Processes one message, retrying transient failures with back-off. `abort` interrupts
    /// the work (shutdown grace period over): the outcome is then [`Outcome::Requeue`].
    pub async fn process(&self, payload: &[u8], abort: &CancellationToken) -> Outcome {
        let (message, id) = match parse_message(payload) {
            Ok(parsed) => parsed,
            Err(reason) => {
                tracing::warn!(%reason, "unusable message");
                return Outcome::Failed { reason };
            }
        };
        tracing::Span::current().record("video_fid", id.to_hex());
        let mut delivery = Delivery {
            claimed: false,
            adopted: false,
            mp3_fid: ObjectId::new(),
        };
        let outcome = self.run(&message, id, abort, &mut delivery).await;
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

    /// [`Worker::process`] for a parsed message.
    async fn run(
        &self,
        message: &VideoMessage,
        id: ObjectId,
        abort: &CancellationToken,
        delivery: &mut Delivery,
    ) -> Outcome {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let error = match self.attempt(message, id, abort, delivery).await {
                Ok(outcome) => return outcome,
                Err(e) => e,
            };
            match error {
                JobError::Deleted => return self.discard(id).await,
                JobError::Cancelled => return self.requeue(id, delivery).await,
                JobError::Permanent(reason) => return self.fail(id, reason).await,
                // Not the message's fault and no retry fixes it: back to the queue (after a
                // pause, so it does not spin) until the server is replaced.
                JobError::Transient(StorageError::TooOld(sentence)) => {
                    tracing::error!("{sentence}; the message goes back to the queue");
                    tokio::select! {
                        () = tokio::time::sleep(crate::consumer::TOO_OLD_RECHECK) => {}
                        () = abort.cancelled() => {}
                    }
                    return self.requeue(id, delivery).await;
                }
                JobError::Transient(_) | JobError::Internal(_) if attempt < self.max_attempts => {
                    let delay = backoff(self.retry_base, attempt);
                    tracing::warn!(error = %error, attempt, ?delay, "attempt failed, retrying");
                    tokio::select! {
                        () = tokio::time::sleep(delay) => {}
                        () = abort.cancelled() => return self.requeue(id, delivery).await,
                    }
                }
                JobError::Transient(_) | JobError::Internal(_) => {
                    tracing::error!(error = %error, attempt, "giving up");
                    let reason = format!(
                        "the conversion failed {attempt} times because of a temporary problem ({error})"
                    );
                    return self.fail(id, reason).await;
                }
            }
        }
    }

    async fn fail(&self, id: ObjectId, reason: String) -> Outcome {
        if let Err(e) = self.storage.fail_job(id, &reason).await {
            tracing::error!(error = %e, "could not record the failure in the job");
        }
        Outcome::Failed { reason }
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

    async fn attempt(
        &self,
        message: &VideoMessage,
        id: ObjectId,
        abort: &CancellationToken,
        delivery: &mut Delivery,
    ) -> Result<Outcome, JobError> {
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
                self.adopt(message, id, &upload).await?
            }
        };

        // An MP3 stored by an earlier delivery that died before recording it: reuse it.
        if let Some(existing) = self.keep_one_mp3(id).await? {
            let mp3_fid = self
                .record_kept_mp3(id, existing, job.duration_secs, None)
                .await?;
            tracing::info!(%mp3_fid, "reused the MP3 of an earlier delivery");
            return Ok(Outcome::Completed {
                mp3_fid,
                reused: true,
            });
        }

        if !delivery.claimed {
            let Some(claim) = self.storage.claim_job(id).await? else {
                // Deleted, or finished by another delivery, since we looked.
                return match self.storage.job(id).await? {
                    Some(job) => final_outcome(&job).ok_or_else(|| {
                        JobError::Internal("the job changed while being claimed".to_owned())
                    }),
                    None => Err(JobError::Deleted),
                };
            };
            delivery.claimed = true;
            self.events.publish(JobEvent::progress(id, 0.0));
            if let Some(unfinished) = claim.unfinished_mp3 {
                let chunks = self.storage.sweep_unfinished_mp3(unfinished).await?;
                if chunks > 0 {
                    tracing::info!(mp3_fid = %unfinished, chunks,
                        "removed the chunks of an MP3 upload a stopped converter left");
                }
            }
            if claim.earlier_attempts >= self.max_attempts {
                return Err(JobError::Permanent(format!(
                    "the converter stopped while converting this file {} times",
                    claim.earlier_attempts
                )));
            }
        }

        let started = Instant::now();
        // Recreated if something removed it (another converter in this process shutting down).
        std::fs::create_dir_all(&self.tmp_dir).map_err(StorageError::from)?;
        // The upload is read from GridFS while it is decoded: only the MP3 goes to scratch.
        let output = tempfile::Builder::new()
            .prefix("converter-out-")
            .suffix(".mp3")
            .tempfile_in(&self.tmp_dir)
            .map_err(StorageError::from)?;

        let report = self
            .convert(&job, &upload, output.path().into(), abort)
            .await?;
        let title = title_from_filename(&job.filename);
        let mp3_name = format!("{}.mp3", title.as_deref().unwrap_or("audio"));
        let ours = delivery.mp3_fid;
        if !self.storage.begin_mp3_upload(id, ours).await? {
            return Err(JobError::Deleted);
        }
        self.storage
            .store_mp3(ours, output.path(), &mp3_name, id, job.owner.as_deref())
            .await?;
        drop(output);
        let kept = self
            .record_kept_mp3(
                id,
                ours,
                Some(report.duration_secs),
                Some(started.elapsed().as_secs_f64()),
            )
            .await?;
        metrics::histogram!("converter_conversion_seconds").record(started.elapsed().as_secs_f64());
        if report.segments > 1 {
            metrics::counter!("converter_segmented_jobs_total").increment(1);
        }
        crate::record_media_seconds(report.duration_secs);
        tracing::info!(mp3_fid = %kept, media_secs = report.duration_secs,
            secs = started.elapsed().as_secs_f64(), "converted");
        Ok(Outcome::Completed {
            mp3_fid: kept,
            reused: kept != ours,
        })
    }

    /// Creates the job for a message from the original gateway (which writes none), from the
    /// upload's file document.
    async fn adopt(
        &self,
        message: &VideoMessage,
        id: ObjectId,
        upload: &FilesCollectionDocument,
    ) -> Result<Job, JobError> {
        let filename = upload
            .filename
            .clone()
            .or_else(|| {
                upload
                    .metadata
                    .as_ref()
                    .and_then(|m| m.get_str("filename").ok().map(str::to_owned))
            })
            .unwrap_or_else(|| format!("{}.mp4", id.to_hex()));
        let job = Job::queued(
            id,
            owner_of(message),
            filename,
            Default::default(),
            i64::try_from(upload.length).ok(),
        );
        self.storage.create_job(&job).await?;
        // Deleted between our look and the insert: the job just made must not outlive it.
        if self.storage.upload(id).await?.is_none() {
            return Err(JobError::Deleted);
        }
        tracing::info!("created the job for a message without one");
        Ok(job)
    }

    /// Marks the job completed with the MP3 that survives deduplication. Checked again after the
    /// write: a converter racing us on a redelivered copy may have stored an older MP3 meanwhile
    /// and removed ours; then the job is pointed at the survivor. [`JobError::Deleted`] when the
    /// job or the upload was deleted meanwhile (the caller removes the MP3).
    async fn record_kept_mp3(
        &self,
        id: ObjectId,
        ours: ObjectId,
        duration_secs: Option<f64>,
        processing_secs: Option<f64>,
    ) -> Result<ObjectId, JobError> {
        let mut kept = self.keep_one_mp3(id).await?.unwrap_or(ours);
        for _ in 0..5 {
            if !self
                .storage
                .complete_job(id, kept, duration_secs, processing_secs)
                .await?
            {
                return Err(JobError::Deleted);
            }
            match self.storage.mp3s_for(id).await?.first() {
                Some(&first) if first != kept => {
                    kept = self.keep_one_mp3(id).await?.unwrap_or(first)
                }
                _ => break,
            }
        }
        // A deletion that began before the job was completed removes the upload next.
        if self.storage.upload(id).await?.is_none() {
            return Err(JobError::Deleted);
        }
        Ok(kept)
    }

    /// Keeps the oldest MP3 of the upload, deletes any other; returns the one kept.
    async fn keep_one_mp3(&self, id: ObjectId) -> Result<Option<ObjectId>, StorageError> {
        let mp3s = self.storage.mp3s_for(id).await?;
        let Some((&first, rest)) = mp3s.split_first() else {
            return Ok(None);
        };
        for extra in rest {
            // A repeat may have been given the duplicate while a racing delivery had the job
            // name it: it then stays for that repeat.
            if self.storage.delete_unshared_mp3(*extra).await? {
                tracing::info!(mp3_fid = %extra, "removed a duplicate MP3");
            } else {
                tracing::info!(mp3_fid = %extra, "kept a duplicate MP3 that a repeat shares");
            }
        }
        Ok(Some(first))
    }

    /// Runs the transcoder on a blocking thread, reporting progress and honouring the timeout
    /// and `abort`.
    async fn convert(
        &self,
        job: &Job,
        upload: &FilesCollectionDocument,
        output: PathBuf,
        abort: &CancellationToken,
    ) -> Result<transcode::TranscodeReport, JobError> {
        let cancel = Arc::new(AtomicBool::new(false));
        let input = GridFsUpload::new(
            self.storage.upload_chunks(),
            upload.id.clone(),
            upload.length,
            upload.chunk_size_bytes,
            cancel.clone(),
        );
        let reading = input.clone();
        let deleted = Arc::new(AtomicBool::new(false));
        let (progress_tx, mut progress_rx) = tokio::sync::watch::channel(0.0f64);
        let options = TranscodeOptions {
            quality: job.quality,
            title: title_from_filename(&job.filename),
            limits: self.limits,
        };
        let flag = cancel.clone();
        // Idle slots, when nothing waits in the queue, encode segments of this job; they are
        // held until the conversion ends.
        let borrowed = self.slots.borrow_idle().await;
        let split = Split {
            segments: 1 + borrowed.as_ref().map_or(0, |p| p.num_permits()),
            min_segment: self.slots.min_segment().unwrap_or(Duration::MAX),
        };
        let mut conversion = tokio::task::spawn_blocking(move || {
            let _borrowed = borrowed;
            segmented::transcode(
                &input,
                &output,
                &options,
                &flag,
                |p| {
                    // The receiver only goes away when the job is over.
                    let _ = progress_tx.send(p);
                },
                split,
            )
            .map_err(|e| input.explain(e))
        });
        let storage = self.storage.clone();
        let events = self.events.clone();
        let id = job.id;
        let (stop, gone) = (cancel.clone(), deleted.clone());
        let reporter = tokio::spawn(async move {
            while progress_rx.changed().await.is_ok() {
                let p = *progress_rx.borrow_and_update();
                if p >= 100.0 {
                    continue;
                }
                let p = (p * 10.0).round() / 10.0;
                match storage.set_progress(id, p).await {
                    // Published after the write, so a page that reads the document next does
                    // not go backwards.
                    Ok(true) => events.publish(JobEvent::progress(id, p)),
                    // No longer processing: if the job is gone, its owner deleted it; stop.
                    Ok(false) => {
                        if let Ok(None) = storage.job(id).await {
                            gone.store(true, Ordering::Relaxed);
                            stop.store(true, Ordering::Relaxed);
                        }
                    }
                    Err(e) => tracing::debug!(error = %e, "progress not recorded"),
                }
            }
        });
        let deadline = tokio::time::sleep(self.job_timeout);
        tokio::pin!(deadline);
        let mut timed_out = false;
        let result = loop {
            tokio::select! {
                joined = &mut conversion => break joined,
                () = &mut deadline, if !timed_out => {
                    timed_out = true;
                    cancel.store(true, Ordering::Relaxed);
                }
                () = abort.cancelled(), if !cancel.load(Ordering::Relaxed) => {
                    cancel.store(true, Ordering::Relaxed);
                }
            }
        };
        // The sender went away with the closure: the reporter ends after its last update.
        if let Err(e) = reporter.await {
            tracing::debug!(error = %e, "progress reporter ended abnormally");
        }
        // Chunks gone mid-read: the owner deleted the upload, unless it is still there.
        if let Some(ReadFailure::Missing { .. }) = reading.failure() {
            if let Ok(None) = self.storage.upload(job.id).await {
                return Err(JobError::Deleted);
            }
        }
        match result {
            Ok(Ok(report)) => Ok(report),
            Ok(Err(TranscodeError::Cancelled)) if timed_out => Err(JobError::Permanent(format!(
                "the conversion took longer than {} minutes",
                self.job_timeout.as_secs().div_ceil(60)
            ))),
            Ok(Err(TranscodeError::Cancelled)) if deleted.load(Ordering::Relaxed) => {
                Err(JobError::Deleted)
            }
            Ok(Err(TranscodeError::Cancelled)) => Err(JobError::Cancelled),
            Ok(Err(e)) if e.is_permanent() => Err(JobError::Permanent(e.to_string())),
            Ok(Err(e)) => Err(JobError::Internal(e.to_string())),
            Err(join) => Err(JobError::Internal(format!(
                "the conversion thread failed: {join}"
            ))),
        }
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

fn owner_of(message: &VideoMessage) -> Option<String> {
    let owner = message.username.trim();
    (!owner.is_empty()).then(|| owner.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_original_message() {
        let (m, id) = parse_message(
            br#"{"video_fid":"65a1b2c3d4e5f60718293a4b","mp3_fid":null,"username":"a@b.c"}"#,
        )
        .unwrap();
        assert_eq!(m.username, "a@b.c");
        assert_eq!(id.to_hex(), "65a1b2c3d4e5f60718293a4b");
    }

    #[test]
    fn rejects_bad_messages_with_reasons() {
        let e = parse_message(b"not json").unwrap_err();
        assert!(e.contains("not valid JSON"), "{e}");
        let e = parse_message(br#"{"video_fid":"xyz","mp3_fid":null,"username":"u"}"#).unwrap_err();
        assert!(e.contains("not a valid file id"), "{e}");
        assert!(parse_message(br#"{"mp3_fid":null}"#).is_err());
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let base = Duration::from_millis(500);
        assert_eq!(backoff(base, 1), Duration::from_millis(500));
        assert_eq!(backoff(base, 2), Duration::from_secs(1));
        assert_eq!(backoff(base, 3), Duration::from_secs(2));
        assert_eq!(backoff(base, 30), Duration::from_secs(60));
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
