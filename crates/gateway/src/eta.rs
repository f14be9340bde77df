//! How many seconds a conversion has left (`eta_secs` of `/status` and `/events`).
//!
//! - **Processing**: from the measured speed of this very job: `elapsed * (100 - p) / p`, with
//!   `elapsed` counted from the job's `started_at` (set by the converter when it claims the job)
//!   and `p` its progress in percent. It falls as the job advances at a steady speed.
//! - **Queued**: from the queue ahead of it and the recent past. The converter records in each
//!   completed job how long it took (`processing_secs`); the median of the last
//!   [`RECENT_JOBS`] completed jobs is the typical job time, and their bytes per second turn the
//!   job's own size into its own conversion time. The jobs queued before it are shared among the
//!   converter slots, counted as the jobs `processing` right now (a queue only forms when every
//!   slot is busy); each busy slot is assumed half done.
//!
//! Unknown (absent) before anything has been measured: no completed job with a time yet, or a
//! job processing for a moment with less than 1 % done and no history.

use std::{collections::HashMap, sync::Mutex, time::Duration};

use common::jobs::{Job, JobState};
use mongodb::bson::{oid::ObjectId, DateTime};
use tokio::time::Instant;

use crate::{
    shared_reads::{shared_read_lost, SharedReads},
    storage::{Storage, StorageResult},
};

/// Completed jobs whose measured times make the typical job time.
pub const RECENT_JOBS: i64 = 20;
/// How long the measured history and the number of busy slots are reused before being read
/// again (`/events` asks twice a second per stream).
const CACHE_FOR: Duration = Duration::from_secs(10);
/// Below this progress (percent) the job's own speed is too noisy to extrapolate.
const MIN_PROGRESS: f64 = 1.0;

/// What recent completed jobs measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Speed {
    /// Median wall-clock seconds of one job.
    pub typical_secs: f64,
    /// Upload bytes converted per second (sum of sizes over sum of times), when sizes are known.
    pub bytes_per_sec: Option<f64>,
}

impl Speed {
    /// The speed measured by recent jobs, each `(size in bytes, seconds taken)`; `None` without
    /// any usable measurement.
    pub fn from_samples(samples: &[(Option<i64>, f64)]) -> Option<Speed> {
        let mut secs: Vec<f64> = samples
            .iter()
            .map(|&(_, s)| s)
            .filter(|s| s.is_finite() && *s > 0.0)
            .collect();
        if secs.is_empty() {
            return None;
        }
        secs.sort_by(f64::total_cmp);
        let mid = secs.len() / 2;
        let typical_secs = if secs.len().is_multiple_of(2) {
            (secs[mid - 1] + secs[mid]) / 2.0
        } else {
            secs[mid]
        };
        let (bytes, time) = samples
            .iter()
            .filter_map(|&(size, s)| Some((size.filter(|b| *b > 0)? as f64, s)))
            .filter(|(_, s)| s.is_finite() && *s > 0.0)
            .fold((0.0, 0.0), |(b, t), (size, s)| (b + size, t + s));
        let bytes_per_sec = (bytes > 0.0 && time > 0.0).then(|| bytes / time);
        Some(Speed {
            typical_secs,
            bytes_per_sec,
        })
    }

    /// Seconds a job of `size` bytes takes: by its size when bytes per second are known, else
    /// the typical job time.
    pub fn job_secs(&self, size: Option<i64>) -> f64 {
        match (size.filter(|s| *s > 0), self.bytes_per_sec) {
            (Some(size), Some(rate)) => size as f64 / rate,
            _ => self.typical_secs,
        }
    }
}

/// Seconds left of a job `processing` since `started_at` (ms since the epoch) at `progress`
/// percent, at `now`; `own_secs` is what its size says it takes (the fallback before 1 %).
pub fn processing_secs_left(
    now: i64,
    started_at: Option<i64>,
    progress: f64,
    own_secs: Option<f64>,
) -> Option<f64> {
    let elapsed = started_at.map(|start| (now.saturating_sub(start)).max(0) as f64 / 1000.0);
    if progress >= 100.0 {
        return Some(0.0);
    }
    match elapsed {
        Some(elapsed) if progress >= MIN_PROGRESS => Some(elapsed * (100.0 - progress) / progress),
        // Just started: what the job's size says, less what has passed already. Past that
        // estimate there is nothing honest to say until the job's own speed shows.
        _ => {
            let left = own_secs? - elapsed.unwrap_or(0.0);
            (left > 0.0).then_some(left)
        }
    }
}

/// Seconds left of a queued job with `ahead` jobs queued before it while `busy` slots convert,
/// of `size` bytes itself.
pub fn queued_secs_left(speed: &Speed, ahead: u64, busy: u64, size: Option<i64>) -> f64 {
    let slots = busy.max(1) as f64;
    // Each busy slot is on average half done with its job.
    let in_progress = if busy > 0 { 0.5 } else { 0.0 };
    (ahead as f64 / slots + in_progress) * speed.typical_secs + speed.job_secs(size)
}

/// `secs` rounded to what is worth telling (and so the stream of events does not change every
/// second): whole seconds below 10, 5 s below a minute, 10 s below 10 minutes, minutes below an
/// hour, 5 minutes beyond.
pub fn rounded(secs: f64) -> u64 {
    if !secs.is_finite() || secs <= 0.0 {
        return 0;
    }
    let step = match secs {
        s if s < 10.0 => return s.ceil() as u64,
        s if s < 60.0 => 5.0,
        s if s < 600.0 => 10.0,
        s if s < 3600.0 => 60.0,
        _ => 300.0,
    };
    ((secs / step).round() * step) as u64
}

#[derive(Debug, Clone, Copy)]
struct Snapshot {
    read_at: Instant,
    speed: Option<Speed>,
    busy: u64,
}

/// Computes ETAs, keeping the measured history for a few seconds.
#[derive(Debug, Default)]
pub struct Estimator {
    /// The last read that found a history, reused for [`CACHE_FOR`].
    cached: Mutex<Option<Snapshot>>,
    /// Requests that find no fresh history share one read (without history, under load, every
    /// request would otherwise read the same two things again).
    reads: SharedReads<(), StorageResult<Snapshot>>,
}

impl Estimator {
    /// The seconds left (rounded by [`rounded`]) of each of `jobs` whose time left is known
    /// (none for final jobs), with one read of the history and one of the queue for all.
    pub async fn eta_secs(
        &self,
        storage: &Storage,
        jobs: &[&Job],
    ) -> StorageResult<HashMap<ObjectId, u64>> {
        let unfinished: Vec<&Job> = jobs
            .iter()
            .copied()
            .filter(|job| !job.state.is_final())
            .collect();
        if unfinished.is_empty() {
            return Ok(HashMap::new());
        }
        let snapshot = self.snapshot(storage).await?;
        let speed = snapshot.speed;
        // Where each queued job stands in the queue matters only with a speed to turn it into time.
        let queued: Vec<&Job> = match speed {
            Some(_) => unfinished
                .iter()
                .copied()
                .filter(|job| job.state == JobState::Queued)
                .collect(),
            None => Vec::new(),
        };
        let keys: Vec<(DateTime, ObjectId)> =
            queued.iter().map(|job| (job.created_at, job.id)).collect();
        let ahead: HashMap<ObjectId, u64> = queued
            .iter()
            .map(|job| job.id)
            .zip(storage.queued_ahead(&keys).await?)
            .collect();
        let now = DateTime::now().timestamp_millis();
        Ok(unfinished
            .into_iter()
            .filter_map(|job| {
                let secs = match job.state {
                    JobState::Processing => processing_secs_left(
                        now,
                        job.started_at.map(|t| t.timestamp_millis()),
                        job.progress,
                        speed.map(|s| s.job_secs(job.size)),
                    ),
                    JobState::Queued => speed.zip(ahead.get(&job.id)).map(|(speed, &ahead)| {
                        queued_secs_left(&speed, ahead, snapshot.busy, job.size)
                    }),
                    JobState::Completed | JobState::Failed => None,
                };
                Some((job.id, rounded(secs?)))
            })
            .collect())
    }

    /// The measured history and busy slots.
    async fn snapshot(&self, storage: &Storage) -> StorageResult<Snapshot> {
        let fresh = *self.cached.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(snapshot) = fresh.filter(|s| s.read_at.elapsed() < CACHE_FOR) {
            return Ok(snapshot);
        }
        let storage = storage.clone();
        let snapshot = self
            .reads
            .read((), move |_| {
                let storage = storage.clone();
                async move {
                    let read = tokio::try_join!(
                        storage.recent_job_times(RECENT_JOBS),
                        storage.processing_count()
                    )
                    .map(|(samples, busy)| Snapshot {
                        read_at: Instant::now(),
                        speed: Speed::from_samples(&samples),
                        busy,
                    });
                    HashMap::from([((), read)])
                }
            })
            .await
            .ok_or_else(shared_read_lost)??;
        // Without any history the look is cheap (nothing matches) and the first completed job
        // should count at once.
        if snapshot.speed.is_some() {
            *self.cached.lock().unwrap_or_else(|e| e.into_inner()) = Some(snapshot);
        }
        Ok(snapshot)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn speed_is_the_median_time_and_the_summed_rate() {
        assert_eq!(Speed::from_samples(&[]), None);
        assert_eq!(Speed::from_samples(&[(Some(10), 0.0)]), None);
        let speed = Speed::from_samples(&[
            (Some(1_000), 1.0),
            (Some(3_000), 3.0),
            (None, 100.0),
            (Some(6_000), 6.0),
        ])
        .unwrap();
        assert_eq!(speed.typical_secs, 4.5);
        assert_eq!(speed.bytes_per_sec, Some(1_000.0));
        assert_eq!(speed.job_secs(Some(2_000)), 2.0);
        assert_eq!(speed.job_secs(None), 4.5);
        let no_sizes = Speed::from_samples(&[(None, 2.0)]).unwrap();
        assert_eq!(no_sizes.bytes_per_sec, None);
        assert_eq!(no_sizes.job_secs(Some(10)), 2.0);
    }

    #[test]
    fn processing_eta_falls_as_the_job_advances() {
        let start = 1_000_000;
        let at =
            |secs: i64, p: f64| processing_secs_left(start + secs * 1000, Some(start), p, None);
        assert_eq!(at(10, 20.0), Some(40.0));
        assert_eq!(at(20, 40.0), Some(30.0));
        assert_eq!(at(40, 80.0), Some(10.0));
        assert_eq!(at(5, 100.0), Some(0.0));
        // Too early to extrapolate: the size-based guess less the time passed, or nothing.
        assert_eq!(
            processing_secs_left(start + 2_000, Some(start), 0.5, Some(30.0)),
            Some(28.0)
        );
        assert_eq!(
            processing_secs_left(start + 40_000, Some(start), 0.5, Some(30.0)),
            None
        );
        assert_eq!(processing_secs_left(start, Some(start), 0.0, None), None);
        // No start time (a job a converter without this field claimed): the size-based guess.
        assert_eq!(
            processing_secs_left(start, None, 50.0, Some(8.0)),
            Some(8.0)
        );
    }

    #[test]
    fn queued_eta_shares_the_queue_among_busy_slots() {
        let speed = Speed {
            typical_secs: 10.0,
            bytes_per_sec: Some(100.0),
        };
        // Nothing ahead, nothing busy: only its own time.
        assert_eq!(queued_secs_left(&speed, 0, 0, Some(500)), 5.0);
        // Four ahead on two busy slots, each half done: (4/2 + 0.5) * 10 + 5.
        assert_eq!(queued_secs_left(&speed, 4, 2, Some(500)), 30.0);
        // More ahead, later.
        assert!(queued_secs_left(&speed, 5, 2, None) > queued_secs_left(&speed, 4, 2, None));
    }

    #[test]
    fn rounding_is_coarser_the_longer_it_is() {
        assert_eq!(rounded(0.2), 1);
        assert_eq!(rounded(4.1), 5);
        assert_eq!(rounded(37.0), 35);
        assert_eq!(rounded(38.0), 40);
        assert_eq!(rounded(123.0), 120);
        assert_eq!(rounded(1_000.0), 1_020);
        assert_eq!(rounded(4_000.0), 3_900);
        assert_eq!(rounded(f64::NAN), 0);
        assert_eq!(rounded(-3.0), 0);
    }
}
