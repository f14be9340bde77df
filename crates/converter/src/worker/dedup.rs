//! Exactly one MP3 per upload: RabbitMQ delivers at least once, so a redelivered or concurrently
//! processed message may find, or race, another delivery's MP3. The oldest (`_id` order, the
//! same for every converter and the gateway) is kept; the others are removed unless an instant
//! repeat shares them.

use common::jobs::Job;
use mongodb::bson::oid::ObjectId;

use super::{JobError, Outcome, Worker};
use crate::storage::StorageError;

/// Tries of pointing the job at the surviving MP3 while racing deliveries store theirs.
const RECORD_TRIES: usize = 5;

impl Worker {
    /// Completes the job with an MP3 an earlier delivery stored but died before recording, if
    /// there is one.
    pub(super) async fn reuse_stored_mp3(&self, job: &Job) -> Result<Option<Outcome>, JobError> {
        let Some(existing) = self.keep_one_mp3(job.id).await? else {
            return Ok(None);
        };
        let mp3_fid = self
            .record_kept_mp3(job.id, existing, job.duration_secs, None)
            .await?;
        tracing::info!(%mp3_fid, "reused the MP3 of an earlier delivery");
        Ok(Some(Outcome::Completed {
            mp3_fid,
            reused: true,
        }))
    }

    /// Marks the job completed with the MP3 that survives deduplication. Checked again after the
    /// write: a converter racing us on a redelivered copy may have stored an older MP3 meanwhile
    /// and removed ours; then the job is pointed at the survivor. [`JobError::Deleted`] when the
    /// job or the upload was deleted meanwhile (the caller removes the MP3).
    pub(super) async fn record_kept_mp3(
        &self,
        id: ObjectId,
        ours: ObjectId,
        duration_secs: Option<f64>,
        processing_secs: Option<f64>,
    ) -> Result<ObjectId, JobError> {
        let mut kept = self.keep_one_mp3(id).await?.unwrap_or(ours);
        for _ in 0..RECORD_TRIES {
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
}
