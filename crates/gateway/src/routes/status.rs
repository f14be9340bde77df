//! `GET /status?fid=<video_fid>`: where a conversion stands. An MP3 whose `metadata.video_fid` is
//! the upload means completed, whatever the job document says (the original converter writes no
//! job; the job is then brought up to date); otherwise the job document, or for uploads of the
//! original system (no job) `queued` while the upload is there.

use std::collections::HashMap;

use axum::{extract::State, Json};
use common::{
    job_events::{JobEvent, JobEventKind},
    jobs::{Job, JobState},
};
use mongodb::bson::oid::ObjectId;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::Fid;
pub use crate::job_status::{Status, StatusBody};
use crate::{
    claims::User,
    error::{ApiError, ApiResult},
    retention,
    shared_reads::shared_read_lost,
    storage::{StorageResult, StoredFile},
    AppState,
};

/// `GET /status`.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(status))
}

/// What MongoDB holds about one upload, as one read found it for all the requests that waited
/// for it ([`crate::shared_reads`]); who may see it is decided per request.
#[derive(Debug, Clone)]
pub enum Stored {
    /// A job document, the MP3 made from the upload when the job alone cannot say it is done
    /// ([`needs_mp3_lookup`]), and the job's estimated seconds left.
    Job {
        job: Job,
        mp3: Option<StoredFile>,
        eta_secs: Option<u64>,
    },
    /// No job: an upload of the original system (if still there) and the MP3 made from it.
    Untracked {
        video: Option<StoredFile>,
        mp3: Option<StoredFile>,
    },
}

/// What one shared read answers for each upload it was asked about.
pub type StoredReads = HashMap<ObjectId, StorageResult<Stored>>;

impl Stored {
    /// Reads what MongoDB holds about uploads `video_fids`, three queries for all of them: the
    /// jobs, then (at once) their MP3s, the uploads without a job and the ETAs' queue ahead. A
    /// failed query fails every upload.
    async fn read_many(state: AppState, video_fids: Vec<ObjectId>) -> StoredReads {
        match Self::try_read_many(&state, &video_fids).await {
            Ok(found) => found
                .into_iter()
                .map(|(id, stored)| (id, Ok(stored)))
                .collect(),
            Err(e) => video_fids
                .into_iter()
                .map(|id| (id, Err(e.clone())))
                .collect(),
        }
    }

    async fn try_read_many(
        state: &AppState,
        video_fids: &[ObjectId],
    ) -> StorageResult<HashMap<ObjectId, Stored>> {
        let storage = &state.storage;
        let mut jobs: HashMap<ObjectId, Job> = storage
            .jobs(video_fids)
            .await?
            .into_iter()
            .map(|job| (job.id, job))
            .collect();
        // The original's uploads have no job: the upload itself says it exists.
        let untracked: Vec<ObjectId> = video_fids
            .iter()
            .filter(|id| !jobs.contains_key(id))
            .copied()
            .collect();
        let lookups: Vec<ObjectId> = video_fids
            .iter()
            .filter(|id| jobs.get(id).is_none_or(needs_mp3_lookup))
            .copied()
            .collect();
        let found = jobs.values().collect::<Vec<_>>();
        let (files, etas) = tokio::join!(
            async {
                tokio::try_join!(
                    storage.mp3s_for_videos(&lookups),
                    storage.videos(&untracked)
                )
            },
            etas_of(state, &found)
        );
        let (mut mp3s, mut videos) = files?;
        Ok(video_fids
            .iter()
            .map(|&id| {
                let mp3 = mp3s.remove(&id);
                let stored = match jobs.remove(&id) {
                    Some(job) => Stored::Job {
                        job,
                        mp3,
                        eta_secs: etas.get(&id).copied(),
                    },
                    None => Stored::Untracked {
                        video: videos.remove(&id),
                        mp3,
                    },
                };
                (id, stored)
            })
            .collect())
    }
}

/// The status of upload `video_fid` as `user` may see it; 404 when unknown or someone else's.
/// Concurrent requests share the MongoDB reads ([`crate::shared_reads`]).
pub async fn status_of(
    state: &AppState,
    user: &User,
    video_fid: ObjectId,
) -> ApiResult<StatusBody> {
    let not_found = || ApiError::no_such_file(&video_fid.to_hex());
    let read_state = state.clone();
    let stored = state
        .status_reads
        .read(video_fid, move |video_fids| {
            Stored::read_many(read_state.clone(), video_fids)
        })
        .await
        .ok_or_else(shared_read_lost)??;
    let (video, mp3) = match stored {
        Stored::Job {
            mut job,
            mp3,
            eta_secs,
        } => {
            if !user.may_see(job.owner.as_deref()) {
                return Err(not_found());
            }
            if let Some(mp3) = mp3.filter(|mp3| user.may_see(mp3.owner())) {
                reconcile(state, &mut job, mp3.id).await;
            }
            let mut body = StatusBody::of_job(&job);
            body.eta_secs = eta_secs.filter(|_| !job.state.is_final());
            body.started_at_ms = job.started_at.map(|t| t.timestamp_millis());
            body.expires_at = retention::expires_at(state.config.retention.as_ref(), &job)
                .map(retention::rfc3339);
            return Ok(body);
        }
        Stored::Untracked { video, mp3 } => (video, mp3),
    };
    if let Some(video) = &video {
        if !user.may_see(video.owner()) {
            return Err(not_found());
        }
    }
    // Without a job, what retention would remove is the original system's (no owner).
    let unowned_expiry = |file: &StoredFile| {
        file.owner()
            .is_none()
            .then(|| {
                retention::unowned_expires_at(state.config.retention.as_ref(), file.upload_date)
            })
            .flatten()
            .map(retention::rfc3339)
    };
    let (mut body, expires_at) = match mp3 {
        Some(mp3) if user.may_see(mp3.owner()) => {
            (StatusBody::completed(mp3.id), unowned_expiry(&mp3))
        }
        Some(_) => return Err(not_found()),
        None => match &video {
            Some(video) => (
                StatusBody::processing(JobState::Queued, 0.0),
                unowned_expiry(video),
            ),
            None => return Err(not_found()),
        },
    };
    body.expires_at = expires_at;
    Ok(body)
}

/// The estimated seconds left of each of `jobs` that has an estimate; a failure to estimate is
/// logged and leaves them unknown rather than failing the status.
async fn etas_of(state: &AppState, jobs: &[&Job]) -> HashMap<ObjectId, u64> {
    match state.eta.eta_secs(&state.storage, jobs).await {
        Ok(etas) => etas,
        Err(e) => {
            tracing::warn!(error = %e, jobs = jobs.len(), "cannot estimate the time left");
            HashMap::new()
        }
    }
}

/// Whether the job document alone cannot say the upload is done: an MP3 in `mp3s` with its
/// `metadata.video_fid` is the truth whoever stored it (the original converter updates no job).
pub fn needs_mp3_lookup(job: &Job) -> bool {
    job.state != JobState::Completed || job.mp3_fid.is_none()
}

/// Records in `job` (and in the jobs collection) that MP3 `mp3_fid` exists. A failed write is
/// logged only: the MP3 is the truth, and the next look finds it again.
pub async fn reconcile(state: &AppState, job: &mut Job, mp3_fid: ObjectId) {
    let was = job.state;
    job.state = JobState::Completed;
    job.progress = 100.0;
    job.mp3_fid = Some(mp3_fid);
    job.error = None;
    job.updated_at = mongodb::bson::DateTime::now();
    match state.storage.reconcile_completed(job.id, mp3_fid).await {
        Ok(true) => {
            tracing::info!(video_fid = %job.id, %mp3_fid, was = was.as_str(),
                "job marked completed: its MP3 was stored by another converter");
            // Other pages watching the job need not wait for their safety poll.
            state
                .job_events
                .publish(JobEvent::new(job.id, JobEventKind::Completed));
        }
        Ok(false) => {}
        Err(e) => {
            tracing::warn!(error = %e, video_fid = %job.id, "cannot record the completed job")
        }
    }
}

/// The conversion status of an upload.
#[utoipa::path(
    get,
    path = "/status",
    tag = "files",
    security(("bearer" = [])),
    params(("fid" = inline(Fid), Query, description = "The upload's id (`video_fid`)")),
    responses(
        (status = 200, description = "processing (with state, progress and, when it can be estimated, eta_secs), completed (with mp3_fid) or failed (with error); expires_at with RETENTION_HOURS set", body = StatusBody),
        (status = 400, description = "fid missing or malformed"),
        (status = 401, description = "Missing, malformed, bad or expired token"),
        (status = 404, description = "No such upload, or another user's"),
        (status = 503, description = "MongoDB unavailable"),
    )
)]
pub async fn status(
    State(state): State<AppState>,
    user: User,
    Fid(fid): Fid,
) -> ApiResult<Json<StatusBody>> {
    status_of(&state, &user, fid).await.map(Json)
}
