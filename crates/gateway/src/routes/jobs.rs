//! `GET /jobs` (the caller's conversions, newest first) and `DELETE /jobs/{video_fid}`.

use axum::{
    extract::{rejection::QueryRejection, Query, State},
    http::StatusCode,
    Json,
};
use common::{
    job_events::{JobEvent, JobEventKind},
    jobs::{Job, JobState},
};
use serde::{Deserialize, Serialize};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    status::{needs_mp3_lookup, reconcile, Status, StatusBody},
    Fid,
};
use crate::{
    claims::User,
    config::Retention,
    error::{ApiError, ApiResult},
    retention::{self, rfc3339},
    AppState,
};

/// Page size when none is asked for.
const DEFAULT_PER_PAGE: u64 = 20;
/// Largest page size.
const MAX_PER_PAGE: u64 = 100;
/// Largest page number: far beyond any history, and small enough that the number of jobs to skip
/// always fits MongoDB's 64-bit signed skip.
const MAX_PAGE: u64 = 1_000_000;

/// `GET /jobs`, `DELETE /jobs/{video_fid}`.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_jobs))
        .routes(routes!(delete_job))
}

/// `?page=&per_page=` of `/jobs`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Page number, 1 to 1000000 (default 1).
    #[param(minimum = 1, maximum = 1_000_000, nullable = false)]
    pub page: Option<u64>,
    /// Jobs per page, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100, nullable = false)]
    pub per_page: Option<u64>,
}

/// One conversion in the caller's history.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct JobView {
    /// The upload's id.
    pub video_fid: String,
    /// The uploaded file's name.
    pub filename: String,
    /// `queued`, `processing`, `completed` or `failed`.
    #[schema(example = "processing")]
    pub state: JobState,
    /// As `/status` answers: `processing`, `completed` or `failed`.
    pub status: Status,
    /// Percent done.
    pub progress: f64,
    /// The MP3, once completed.
    pub mp3_fid: Option<String>,
    /// Why it failed.
    pub error: Option<String>,
    /// Upload size in bytes.
    pub size: Option<i64>,
    /// When it was uploaded (RFC 3339).
    pub created_at: String,
    /// Last change (RFC 3339).
    pub updated_at: String,
    /// When it will be removed (RFC 3339), with `RETENTION_HOURS` set and once it completed or
    /// failed: that moment plus the retention.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
}

impl JobView {
    /// The view of `job` under `retention`.
    pub fn new(job: &Job, retention: Option<&Retention>) -> Self {
        let status = StatusBody::of_job(job);
        Self {
            video_fid: job.id.to_hex(),
            filename: job.filename.clone(),
            state: job.state,
            status: status.status,
            progress: status.progress.unwrap_or(job.progress),
            mp3_fid: job.mp3_fid.map(|f| f.to_hex()),
            error: job.error.clone(),
            size: job.size,
            created_at: rfc3339(job.created_at),
            updated_at: rfc3339(job.updated_at),
            expires_at: retention::expires_at(retention, job).map(rfc3339),
        }
    }
}

/// A page of the caller's jobs.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct JobsPage {
    /// The jobs, newest first.
    pub jobs: Vec<JobView>,
    /// This page's number, from 1.
    pub page: u64,
    /// Page size.
    pub per_page: u64,
    /// How many jobs the caller has in all.
    pub total: u64,
}

/// The caller's conversions, newest first.
#[utoipa::path(
    get,
    path = "/jobs",
    tag = "jobs",
    security(("bearer" = [])),
    params(PageQuery),
    responses(
        (status = 200, description = "One page of the caller's jobs", body = JobsPage),
        (status = 400, description = "page or per_page out of range"),
        (status = 401, description = "Missing, malformed, bad or expired token"),
        (status = 503, description = "MongoDB unavailable"),
    )
)]
pub async fn list_jobs(
    State(state): State<AppState>,
    user: User,
    query: Result<Query<PageQuery>, QueryRejection>,
) -> ApiResult<Json<JobsPage>> {
    let Query(query) = query.map_err(|_| {
        ApiError::BadRequest("page and per_page must be positive whole numbers".into())
    })?;
    let page = query.page.unwrap_or(1);
    let per_page = query.per_page.unwrap_or(DEFAULT_PER_PAGE);
    if !(1..=MAX_PAGE).contains(&page) {
        return Err(ApiError::BadRequest(format!(
            "page must be 1 to {MAX_PAGE}"
        )));
    }
    if !(1..=MAX_PER_PAGE).contains(&per_page) {
        return Err(ApiError::BadRequest(format!(
            "per_page must be 1 to {MAX_PER_PAGE}"
        )));
    }
    let skip = (page - 1) * per_page;
    let (mut jobs, total) = state
        .storage
        .jobs_of(user.email(), skip, per_page as i64)
        .await?;
    // One query for the MP3s of the page's unfinished jobs (stored by a converter that keeps
    // no jobs), however long the page.
    let open: Vec<_> = jobs
        .iter()
        .filter(|job| needs_mp3_lookup(job))
        .map(|job| job.id)
        .collect();
    let mut mp3s = state.storage.mp3s_for_videos(&open).await?;
    for job in &mut jobs {
        if let Some(mp3) = mp3s.remove(&job.id) {
            if user.may_see(mp3.owner()) {
                reconcile(&state, job, mp3.id).await;
            }
        }
    }
    Ok(Json(JobsPage {
        jobs: jobs
            .iter()
            .map(|job| JobView::new(job, state.config.retention.as_ref()))
            .collect(),
        page,
        per_page,
        total,
    }))
}

/// Deletes one of the caller's uploads: its job, its chunks and its MP3s, at any stage. An MP3
/// another upload shares (an instant repeat) stays for that upload; the last one deletes it.
#[utoipa::path(
    delete,
    path = "/jobs/{video_fid}",
    tag = "jobs",
    security(("bearer" = [])),
    params(("video_fid" = inline(Fid), Path, description = "The upload's id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "Malformed video_fid"),
        (status = 401, description = "Missing, malformed, bad or expired token"),
        (status = 404, description = "No such upload of the caller's"),
        (status = 503, description = "MongoDB unavailable"),
    )
)]
pub async fn delete_job(
    State(state): State<AppState>,
    user: User,
    Fid(id): Fid,
) -> ApiResult<StatusCode> {
    let not_found = || ApiError::no_such_file(&id.to_hex());
    let job = state.storage.job(id).await?;
    let mine = Some(user.email());
    let mp3_fid = match &job {
        // Only the owner deletes; files without an owner (the original's) are read-only.
        Some(job) if job.owner.as_deref() == mine => job.mp3_fid,
        Some(_) => return Err(not_found()),
        // No job: an upload, or what an interrupted earlier delete left (an MP3).
        None => match state.storage.video(id).await? {
            Some(video) if video.owner() == mine => None,
            Some(_) => return Err(not_found()),
            None => match state.storage.mp3_for_video(id).await? {
                Some(mp3) if mp3.owner() == mine => None,
                Some(_) => return Err(not_found()),
                // Or a shared MP3 an interrupted delete did not let go of yet.
                None => match state.storage.mp3_shared_by(id).await? {
                    Some((_, owner)) if owner.as_deref() == mine => None,
                    _ => return Err(not_found()),
                },
            },
        },
    };
    // The same release path as the retention sweep's.
    state.storage.release_upload(id, mp3_fid).await?;
    // Pages watching it learn at once (they read MongoDB and find nothing).
    state
        .job_events
        .publish(JobEvent::new(id, JobEventKind::Deleted));
    tracing::info!(video_fid = %id, owner = user.email(), "upload deleted");
    Ok(StatusCode::NO_CONTENT)
}
