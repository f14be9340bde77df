//! `GET /status?fid=<video_fid>`: where a conversion stands. An MP3 whose `metadata.video_fid` is
//! the upload means completed, whatever the job document says (the original converter writes no
//! job; the job is then brought up to date); otherwise the job document, or for uploads of the
//! original system (no job) `queued` while the upload is there.

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
    storage::StoredFile,
    AppState,
};

/// `GET /status`.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(status))
}

/// The status of upload `video_fid` as `user` may see it; 404 when unknown or someone else's.
pub async fn status_of(
    state: &AppState,
    user: &User,
    video_fid: ObjectId,
) -> ApiResult<StatusBody> {
    let not_found = || ApiError::no_such_file(&video_fid.to_hex());
    if let Some(mut job) = state.storage.job(video_fid).await? {
        if !user.may_see(job.owner.as_deref()) {
            return Err(not_found());
        }
        if needs_mp3_lookup(&job) {
            if let Some(mp3) = state.storage.mp3_for_video(video_fid).await? {
                if user.may_see(mp3.owner()) {
                    reconcile(state, &mut job, mp3.id).await;
                }
            }
        }
        let mut body = StatusBody::of_job(&job);
        body.eta_secs = eta_of(state, &job).await;
        body.started_at_ms = job.started_at.map(|t| t.timestamp_millis());
        body.expires_at =
            retention::expires_at(state.config.retention.as_ref(), &job).map(retention::rfc3339);
        return Ok(body);
    }
    // No job: an upload of the original system. Its MP3 (if any) carries metadata.video_fid.
    let video = state.storage.video(video_fid).await?;
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
    let (mut body, expires_at) = match state.storage.mp3_for_video(video_fid).await? {
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

/// The job's estimated seconds left; a failure to estimate is logged and leaves it unknown
/// rather than failing the status.
async fn eta_of(state: &AppState, job: &Job) -> Option<u64> {
    match state.eta.eta_secs(&state.storage, job).await {
        Ok(eta) => eta,
        Err(e) => {
            tracing::warn!(error = %e, video_fid = %job.id, "cannot estimate the time left");
            None
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
