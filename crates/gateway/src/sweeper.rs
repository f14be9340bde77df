//! The background sweep of jobs stuck `queued`: an upload whose publish never happened (the
//! gateway died between storing the job and the broker's confirm), or whose message was lost.
//! Such a job is published again, at most `MAX_REQUEUES` times, then failed with a reason.
//!
//! Safe with several gateway replicas: each job is claimed with a conditional update on the
//! `updated_at` the replica read, so exactly one replica acts on it per round.

use std::time::Duration;

use common::{
    job_events::{JobEvent, JobEventKind},
    jobs::fields,
    message::VideoMessage,
    trace_context::TraceContext,
};
use mongodb::bson::{oid::ObjectId, DateTime, Document};

use crate::{storage::StorageResult, AppState};

/// Jobs looked at per round.
const BATCH: i64 = 100;
/// Longest pause between rounds.
const MAX_INTERVAL: Duration = Duration::from_secs(60);

/// Sweeps until the gateway stops.
pub async fn run(state: AppState) {
    let after = state.config.requeue_stuck_after;
    // Often enough that a job is re-published soon after it counts as stuck.
    let interval = (after / 2).min(MAX_INTERVAL);
    loop {
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            () = state.shutdown.cancelled() => return,
        }
        if let Err(e) = sweep(&state).await {
            tracing::warn!(error = %e, "sweep of stuck jobs failed; next round retries");
        }
    }
}

/// One round: every job `queued` for longer than `REQUEUE_STUCK_AFTER_SECS`.
pub async fn sweep(state: &AppState) -> StorageResult<()> {
    let after = state.config.requeue_stuck_after;
    let now = DateTime::now().timestamp_millis();
    let cutoff = DateTime::from_millis(
        now.saturating_sub(i64::try_from(after.as_millis()).unwrap_or(i64::MAX)),
    );
    for job in state.storage.stuck_jobs(cutoff, BATCH).await? {
        let (Ok(id), Ok(seen)) = (job.get_object_id("_id"), job.get_datetime("updated_at")) else {
            continue;
        };
        handle(state, id, *seen, &job).await?;
    }
    Ok(())
}

async fn handle(
    state: &AppState,
    id: ObjectId,
    seen: DateTime,
    job: &Document,
) -> StorageResult<()> {
    let storage = &state.storage;
    if storage.video(id).await?.is_none() {
        // The upload is gone (a delete that stopped half-way): nothing can convert it.
        storage.delete_job(id).await?;
        state
            .job_events
            .publish(JobEvent::new(id, JobEventKind::Deleted));
        tracing::info!(video_fid = %id, "removed a queued job whose upload is gone");
        return Ok(());
    }
    let requeues = job
        .get(crate::storage::REQUEUES)
        .and_then(|v| v.as_i32().map(i64::from).or_else(|| v.as_i64()))
        .unwrap_or(0);
    if requeues >= i64::from(state.config.max_requeues) {
        let waited = state.config.requeue_stuck_after * (state.config.max_requeues + 1);
        let reason = format!(
            "no converter took the upload within {} minutes; upload it again later",
            waited.as_secs().div_ceil(60)
        );
        if storage.fail_stuck(id, seen, &reason).await? {
            metrics::counter!("gateway_stuck_jobs_total", "action" => "failed").increment(1);
            state
                .job_events
                .publish(JobEvent::new(id, JobEventKind::Failed));
            tracing::warn!(video_fid = %id, requeues, "stuck job failed");
        }
        return Ok(());
    }
    if !storage.claim_requeue(id, seen).await? {
        // Another replica took it, or a converter started it meanwhile.
        return Ok(());
    }
    let owner = job.get_str(fields::OWNER).unwrap_or_default();
    // No request caused this publish: a new request id, logged here and by the converter.
    let trace = TraceContext::generated();
    match state
        .queue
        .publish(&VideoMessage::new(id.to_hex(), owner), &trace)
        .await
    {
        Ok(()) => {
            metrics::counter!("gateway_stuck_jobs_total", "action" => "requeued").increment(1);
            tracing::info!(video_fid = %id, requeues = requeues + 1, request_id = %trace.request_id, "stuck job published again");
        }
        // Counted all the same: the next round after REQUEUE_STUCK_AFTER_SECS tries again, and a
        // broker that stays away ends in `failed` instead of forever.
        Err(e) => tracing::warn!(error = %e, video_fid = %id, "re-publishing a stuck job failed"),
    }
    Ok(())
}
