//! The conversion itself: claim the job (counting the delivery's attempt), decode the upload
//! straight out of GridFS with progress, a timeout and cancellation, and store the MP3.

use std::{
    path::PathBuf,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use common::{job_events::JobEvent, jobs::Job};
use mongodb::{bson::oid::ObjectId, gridfs::FilesCollectionDocument};
use tokio_util::sync::CancellationToken;

use super::{final_outcome, Delivery, JobError, Outcome, Worker};
use crate::{
    gridfs_input::{GridFsUpload, ReadFailure},
    segmented::{self, Split},
    storage::StorageError,
    transcode::{self, title_from_filename, TranscodeError, TranscodeOptions},
};

impl Worker {
    /// Counts this delivery's attempt in the job and marks it `processing`; removes what a
    /// stopped converter left. An outcome when there is nothing to convert any more.
    pub(super) async fn claim(
        &self,
        id: ObjectId,
        delivery: &mut Delivery,
    ) -> Result<Option<Outcome>, JobError> {
        let Some(claim) = self.storage.claim_job(id).await? else {
            // Deleted, or finished by another delivery, since we looked.
            return match self.storage.job(id).await? {
                Some(job) => final_outcome(&job).map(Some).ok_or_else(|| {
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
        Ok(None)
    }

    /// Converts the claimed job's upload and stores the MP3, keeping one per upload.
    pub(super) async fn convert_and_store(
        &self,
        job: &Job,
        upload: &FilesCollectionDocument,
        delivery: &Delivery,
        abort: &CancellationToken,
    ) -> Result<Outcome, JobError> {
        let id = job.id;
        let started = Instant::now();
        // The upload is read from GridFS while it is decoded: only the MP3 goes to scratch.
        let output = self
            .scratch
            .file("converter-out-", ".mp3")
            .map_err(StorageError::from)?;

        let report = self
            .convert(job, upload, output.path().into(), abort)
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
