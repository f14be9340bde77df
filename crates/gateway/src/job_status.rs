//! What clients are told about a conversion: the original's `status` and our additions, built
//! from a job document. Shared by `/status`, `/events`, `/jobs` and the webhooks, so it lives
//! outside `routes` (the webhooks module would otherwise depend on a route).

use common::jobs::{Job, JobState};
pub use common::states::Status;
use mongodb::bson::oid::ObjectId;
use serde::Serialize;

/// A conversion's status. `status` is the original's field (`processing` or `completed`, now
/// also `failed`); the other fields are additions.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct StatusBody {
    /// `processing`, `completed` or `failed`.
    #[schema(example = "processing")]
    pub status: Status,
    /// The job's state: `queued`, `processing`, `completed` or `failed`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "processing")]
    pub state: Option<JobState>,
    /// Percent done, 0 to 100, while processing.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = 42.5)]
    pub progress: Option<f64>,
    /// The MP3 to download, once completed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mp3_fid: Option<String>,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Estimated seconds left while queued or processing, from the measured speed of this job
    /// (or, while queued, of recent jobs and the queue ahead); absent when unknown.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = 40)]
    pub eta_secs: Option<u64>,
    /// When the conversion will be removed (RFC 3339), with `RETENTION_HOURS` set: its
    /// completion or failure plus the retention. Absent while it runs or with retention off.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "2026-12-01T15:00:00Z")]
    pub expires_at: Option<String>,
    /// When a converter claimed the job (ms since the epoch), so that progress pushed to an
    /// event stream also moves `eta_secs`; not part of the answer.
    #[serde(skip)]
    pub started_at_ms: Option<i64>,
}

impl StatusBody {
    /// The status a job document describes.
    pub fn of_job(job: &Job) -> Self {
        match job.state {
            JobState::Queued | JobState::Processing => Self::processing(job.state, job.progress),
            JobState::Completed => match job.mp3_fid {
                Some(mp3) => Self::completed(mp3),
                // A completed job always names its MP3; without one it cannot be downloaded.
                None => Self::failed("the conversion finished but its MP3 is missing".into()),
            },
            JobState::Failed => Self::failed(
                job.error
                    .clone()
                    .unwrap_or_else(|| "the conversion failed".to_owned()),
            ),
        }
    }

    pub(crate) fn processing(state: JobState, progress: f64) -> Self {
        Self {
            status: Status::Processing,
            state: Some(state),
            progress: Some((progress.clamp(0.0, 100.0) * 10.0).round() / 10.0),
            mp3_fid: None,
            error: None,
            eta_secs: None,
            expires_at: None,
            started_at_ms: None,
        }
    }

    pub(crate) fn completed(mp3: ObjectId) -> Self {
        Self {
            status: Status::Completed,
            state: Some(JobState::Completed),
            progress: Some(100.0),
            mp3_fid: Some(mp3.to_hex()),
            error: None,
            eta_secs: None,
            expires_at: None,
            started_at_ms: None,
        }
    }

    pub(crate) fn failed(error: String) -> Self {
        Self {
            status: Status::Failed,
            state: Some(JobState::Failed),
            progress: None,
            mp3_fid: None,
            error: Some(error),
            eta_secs: None,
            expires_at: None,
            started_at_ms: None,
        }
    }

    /// This status with the progress a converter pushed, when the job is still in progress; the
    /// job is then `processing`, whatever it was when last read. Every other field stays as the
    /// last read of the job made it.
    pub fn with_progress(&self, progress: f64) -> Option<Self> {
        if self.status != Status::Processing {
            return None;
        }
        let pushed = Self::processing(JobState::Processing, progress);
        // The time left from this job's own speed, as a read would compute it; before the job
        // has shown a speed, the last read's estimate stands.
        let eta_secs = crate::eta::processing_secs_left(
            mongodb::bson::DateTime::now().timestamp_millis(),
            self.started_at_ms,
            pushed.progress.unwrap_or(progress),
            None,
        )
        .map(crate::eta::rounded)
        .or(self.eta_secs);
        Some(Self {
            state: pushed.state,
            progress: pushed.progress,
            eta_secs,
            ..self.clone()
        })
    }

    /// Whether the status will not change any more.
    pub fn is_final(&self) -> bool {
        self.status.is_final()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pushed_progress_changes_only_state_and_progress_of_an_unfinished_job() {
        let queued = StatusBody::processing(JobState::Queued, 0.0);
        let pushed = queued.with_progress(41.26).unwrap();
        assert_eq!(pushed.status, Status::Processing);
        assert_eq!(pushed.state, Some(JobState::Processing));
        let json = serde_json::to_value(&pushed).unwrap();
        assert_eq!(json["status"], "processing");
        assert_eq!(json["state"], "processing");
        assert_eq!(pushed.progress, Some(41.3));
        assert_eq!(
            queued.with_progress(250.0).unwrap().progress,
            Some(100.0),
            "clamped"
        );
        assert_eq!(
            StatusBody::completed(ObjectId::new()).with_progress(5.0),
            None
        );
        assert_eq!(StatusBody::failed("x".into()).with_progress(5.0), None);
    }

    #[test]
    fn pushed_progress_moves_the_eta_by_the_jobs_own_speed() {
        let mut read = StatusBody::processing(JobState::Processing, 10.0);
        read.eta_secs = Some(180);
        read.started_at_ms = Some(mongodb::bson::DateTime::now().timestamp_millis() - 20_000);
        // 20 s for 50 %: about 20 s left; for 75 %: about 7 s (whole seconds below 10).
        assert_eq!(read.with_progress(50.0).unwrap().eta_secs, Some(20));
        assert_eq!(read.with_progress(75.0).unwrap().eta_secs, Some(7));
        // Not claimed when last read: the read's estimate stands.
        read.started_at_ms = None;
        assert_eq!(read.with_progress(50.0).unwrap().eta_secs, Some(180));
    }
}
