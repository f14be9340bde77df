//! Retention (`RETENTION_HOURS`): conversions are removed that long after they completed or
//! failed, upload, MP3s and job together, through the same release path as a user's
//! `DELETE /jobs` ([`Storage::release_upload`]), so that they answer 404 afterwards exactly like
//! a deleted one. Queued and processing jobs never expire.
//!
//! Files of the original system (no job document and no `metadata.owner`) are left alone unless
//! `RETENTION_INCLUDE_UNOWNED` is set; then each counts from when it was stored: a converted
//! upload from its MP3's `uploadDate` (its completion), an unconverted one from its own.
//!
//! Safe with several gateway replicas: each expired job is claimed with a conditional update
//! (`retention_claimed_at`), so one replica removes it; a claim not finished within
//! [`CLAIM_STALE_AFTER`] (the replica died) is taken over. The original system's files are not
//! ours to mark: for them the removal is idempotent instead (a file already gone is fine).

use std::time::Duration;

use common::jobs::Job;
use mongodb::bson::{oid::ObjectId, DateTime};

use crate::{
    config::Retention,
    storage::{StorageResult, StoredFile},
    AppState,
};

/// Jobs (or files) read per batch.
const BATCH: i64 = 200;
/// A claim older than this belongs to a replica that died before finishing: taken over.
pub const CLAIM_STALE_AFTER: Duration = Duration::from_secs(600);

/// When `job` will be removed: its completion or failure plus the retention; `None` while it
/// is queued or processing (it does not expire) or with retention off.
pub fn expires_at(retention: Option<&Retention>, job: &Job) -> Option<DateTime> {
    let retention = retention?;
    job.state
        .is_final()
        .then(|| after(job.updated_at, retention.after))
}

/// When a file of the original system stored at `stored` will be removed; `None` unless
/// `RETENTION_INCLUDE_UNOWNED` is on.
pub fn unowned_expires_at(retention: Option<&Retention>, stored: DateTime) -> Option<DateTime> {
    let retention = retention.filter(|r| r.include_unowned)?;
    Some(after(stored, retention.after))
}

/// `t` as RFC 3339, as every date the API answers.
pub fn rfc3339(t: DateTime) -> String {
    t.try_to_rfc3339_string()
        .unwrap_or_else(|_| t.timestamp_millis().to_string())
}

fn after(t: DateTime, d: Duration) -> DateTime {
    let ms = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
    DateTime::from_millis(t.timestamp_millis().saturating_add(ms))
}

fn before(t: DateTime, d: Duration) -> DateTime {
    let ms = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
    DateTime::from_millis(t.timestamp_millis().saturating_sub(ms))
}

/// Sweeps every `RETENTION_SWEEP_SECS` until the gateway stops; returns at once with retention
/// off.
pub async fn run(state: AppState) {
    let Some(retention) = state.config.retention else {
        return;
    };
    tracing::info!(
        hours = retention.after.as_secs() / 3600,
        include_unowned = retention.include_unowned,
        "retention on: conversions are removed that long after they finish"
    );
    loop {
        tokio::select! {
            () = tokio::time::sleep(retention.sweep_every) => {}
            () = state.shutdown.cancelled() => return,
        }
        match sweep(&state, &retention).await {
            Ok(0) => {}
            Ok(removed) => tracing::info!(removed, "retention removed expired conversions"),
            Err(e) => tracing::warn!(error = %e, "retention sweep failed; next round retries"),
        }
    }
}

/// One round: removes every conversion that expired; answers how many uploads were removed.
pub async fn sweep(state: &AppState, retention: &Retention) -> StorageResult<u64> {
    let now = DateTime::now();
    let cutoff = before(now, retention.after);
    let mut removed = expired_jobs(state, cutoff).await?;
    if retention.include_unowned {
        removed += unowned_files(state, cutoff).await?;
    }
    Ok(removed)
}

async fn expired_jobs(state: &AppState, cutoff: DateTime) -> StorageResult<u64> {
    let storage = &state.storage;
    let mut removed = 0;
    loop {
        let batch = storage.expired_jobs(cutoff, BATCH).await?;
        let full = batch.len() as i64 == BATCH;
        let mut progress = false;
        for (id, mp3_fid) in batch {
            if state.shutdown.is_cancelled() {
                return Ok(removed);
            }
            let now = DateTime::now();
            let stale_before = before(now, CLAIM_STALE_AFTER);
            if !storage.claim_expired(id, cutoff, now, stale_before).await? {
                // Another replica is removing it.
                continue;
            }
            storage.release_upload(id, mp3_fid).await?;
            metrics::counter!("gateway_retention_removed_total", "kind" => "job").increment(1);
            tracing::info!(video_fid = %id, "expired conversion removed");
            removed += 1;
            progress = true;
        }
        // A short batch was the last; a full one where every job was another replica's would
        // come back the same.
        if !full || !progress {
            return Ok(removed);
        }
    }
}

/// The original system's files (no owner, no job): MP3s stored before `cutoff` with their
/// uploads, then uploads stored before `cutoff` that have no MP3.
async fn unowned_files(state: &AppState, cutoff: DateTime) -> StorageResult<u64> {
    let storage = &state.storage;
    let mut removed = 0;
    for mp3 in storage.unowned_files_before(true, cutoff, BATCH).await? {
        let video_fid = mp3.video_fid().and_then(|v| ObjectId::parse_str(v).ok());
        match video_fid {
            // Made from an upload that has a job: ours, it expires with its job.
            Some(video_fid) if storage.job(video_fid).await?.is_some() => continue,
            Some(video_fid) => storage.release_upload(video_fid, Some(mp3.id)).await?,
            // An MP3 that names no upload: only the file itself.
            None => storage.delete_mp3(mp3.id).await?,
        }
        count_unowned(&mp3, "mp3");
        removed += 1;
    }
    for video in storage.unowned_files_before(false, cutoff, BATCH).await? {
        // With a job it is ours; with an MP3 it counts from the MP3 (above, once that is old).
        if storage.job(video.id).await?.is_some()
            || storage.mp3_for_video(video.id).await?.is_some()
        {
            continue;
        }
        storage.release_upload(video.id, None).await?;
        count_unowned(&video, "upload");
        removed += 1;
    }
    Ok(removed)
}

fn count_unowned(file: &StoredFile, kind: &'static str) {
    metrics::counter!("gateway_retention_removed_total", "kind" => kind).increment(1);
    tracing::info!(file_id = %file.id, kind, "expired file of the original system removed");
}

#[cfg(test)]
mod tests {
    use super::*;
    use common::jobs::{JobState, Mp3Quality};

    fn retention(hours: u64, include_unowned: bool) -> Retention {
        Retention {
            after: Duration::from_secs(hours * 3600),
            include_unowned,
            sweep_every: Duration::from_secs(300),
        }
    }

    #[test]
    fn only_finished_jobs_expire_counted_from_their_end() {
        let mut job = Job::queued(
            ObjectId::new(),
            Some("a@b.c".into()),
            "v.mp4".into(),
            Mp3Quality::default(),
            None,
        );
        let r = retention(3, false);
        assert_eq!(expires_at(Some(&r), &job), None);
        job.state = JobState::Processing;
        assert_eq!(expires_at(Some(&r), &job), None);
        job.state = JobState::Completed;
        job.updated_at = DateTime::from_millis(1_000);
        assert_eq!(
            expires_at(Some(&r), &job),
            Some(DateTime::from_millis(1_000 + 3 * 3600 * 1000))
        );
        job.state = JobState::Failed;
        assert!(expires_at(Some(&r), &job).is_some());
        assert_eq!(expires_at(None, &job), None);
    }

    #[test]
    fn the_original_systems_files_expire_only_when_asked() {
        let stored = DateTime::from_millis(0);
        assert_eq!(unowned_expires_at(Some(&retention(1, false)), stored), None);
        assert_eq!(
            unowned_expires_at(Some(&retention(1, true)), stored),
            Some(DateTime::from_millis(3_600_000))
        );
        assert_eq!(unowned_expires_at(None, stored), None);
    }
}
