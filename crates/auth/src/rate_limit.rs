//! Failed-login limiting: after too many failures for one key (an email, a client address)
//! within a sliding window, further attempts are refused until the oldest failure ages out.
//!
//! Hand-written rather than `governor`: we must look at a key without using it up (only
//! *failures* count, a correct password must not be charged), and forget a key on success.
//! The state lives in this process: with several replicas each one counts on its own.

use std::{
    collections::{HashMap, VecDeque},
    sync::Mutex,
    time::{Duration, Instant},
};

/// Most keys remembered at once; beyond it the entries with the oldest failures are dropped, so
/// a flood of made-up emails costs bounded memory.
const MAX_KEYS: usize = 100_000;

/// Counts failures per key within `window`, refusing a key that reached `max_failures`.
#[derive(Debug)]
pub struct FailureLimiter {
    max_failures: u32,
    window: Duration,
    failures: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl FailureLimiter {
    /// A limiter allowing `max_failures` failures per key within `window`; 0 never refuses.
    pub fn new(max_failures: u32, window: Duration) -> Self {
        Self {
            max_failures,
            window,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// `Err(retry_after)` when `key` has used up its failures at `now`.
    pub fn check(&self, key: &str, now: Instant) -> Result<(), Duration> {
        if self.max_failures == 0 {
            return Ok(());
        }
        let mut map = self.lock();
        let Some(times) = map.get_mut(key) else {
            return Ok(());
        };
        self.expire(times, now);
        if times.len() < self.max_failures as usize {
            if times.is_empty() {
                map.remove(key);
            }
            return Ok(());
        }
        // Refused until enough old failures age out to get back under the limit.
        let release = times.len() - self.max_failures as usize;
        let until = times[release] + self.window;
        Err(until.saturating_duration_since(now))
    }

    /// Counts a failure for `key` at `now`.
    pub fn record_failure(&self, key: &str, now: Instant) {
        if self.max_failures == 0 {
            return;
        }
        let mut map = self.lock();
        if map.len() >= MAX_KEYS && !map.contains_key(key) {
            self.prune(&mut map, now);
        }
        let times = map.entry(key.to_owned()).or_default();
        self.expire(times, now);
        times.push_back(now);
        // Only the newest `max_failures` matter for the decision.
        while times.len() > self.max_failures as usize {
            times.pop_front();
        }
    }

    /// Forgets `key`'s failures (after a successful login).
    pub fn reset(&self, key: &str) {
        self.lock().remove(key);
    }

    fn expire(&self, times: &mut VecDeque<Instant>, now: Instant) {
        while times
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= self.window)
        {
            times.pop_front();
        }
    }

    /// Drops expired keys, and if that is not enough, the half with the oldest last failure.
    fn prune(&self, map: &mut HashMap<String, VecDeque<Instant>>, now: Instant) {
        map.retain(|_, times| {
            self.expire(times, now);
            !times.is_empty()
        });
        if map.len() >= MAX_KEYS {
            let mut last: Vec<Instant> = map.values().filter_map(|t| t.back().copied()).collect();
            let middle = last.len() / 2;
            let (_, cutoff, _) = last.select_nth_unstable(middle);
            let cutoff = *cutoff;
            map.retain(|_, times| times.back().is_some_and(|t| *t > cutoff));
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, VecDeque<Instant>>> {
        // A panic while holding the lock cannot leave the map inconsistent: keep using it.
        self.failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    #[cfg(test)]
    fn keys(&self) -> usize {
        self.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WINDOW: Duration = Duration::from_secs(60);

    #[test]
    fn refuses_after_max_failures_until_window_passes() {
        let limiter = FailureLimiter::new(3, WINDOW);
        let t0 = Instant::now();
        for i in 0..3 {
            assert_eq!(limiter.check("a", t0), Ok(()), "attempt {i}");
            limiter.record_failure("a", t0 + Duration::from_secs(i));
        }
        let now = t0 + Duration::from_secs(10);
        // The first failure (t0) ages out at t0 + 60s.
        assert_eq!(limiter.check("a", now), Err(Duration::from_secs(50)));
        assert_eq!(limiter.check("b", now), Ok(()));
        assert_eq!(limiter.check("a", t0 + WINDOW), Ok(()));
    }

    #[test]
    fn reset_forgets_key() {
        let limiter = FailureLimiter::new(1, WINDOW);
        let t0 = Instant::now();
        limiter.record_failure("a", t0);
        assert!(limiter.check("a", t0).is_err());
        limiter.reset("a");
        assert_eq!(limiter.check("a", t0), Ok(()));
    }

    #[test]
    fn zero_disables() {
        let limiter = FailureLimiter::new(0, WINDOW);
        let t0 = Instant::now();
        for _ in 0..10 {
            limiter.record_failure("a", t0);
        }
        assert_eq!(limiter.check("a", t0), Ok(()));
        assert_eq!(limiter.keys(), 0);
    }

    #[test]
    fn old_failures_do_not_count() {
        let limiter = FailureLimiter::new(2, WINDOW);
        let t0 = Instant::now();
        limiter.record_failure("a", t0);
        limiter.record_failure("a", t0 + WINDOW + Duration::from_secs(1));
        assert_eq!(
            limiter.check("a", t0 + WINDOW + Duration::from_secs(2)),
            Ok(())
        );
    }

    #[test]
    fn memory_is_bounded() {
        let limiter = FailureLimiter::new(5, WINDOW);
        let t0 = Instant::now();
        for i in 0..(MAX_KEYS + 10) {
            limiter.record_failure(&format!("k{i}"), t0 + Duration::from_micros(i as u64));
        }
        assert!(limiter.keys() <= MAX_KEYS);
        // The newest key survived the pruning.
        limiter.record_failure(&format!("k{}", MAX_KEYS + 9), t0 + WINDOW / 2);
        limiter.record_failure(&format!("k{}", MAX_KEYS + 9), t0 + WINDOW / 2);
        limiter.record_failure(&format!("k{}", MAX_KEYS + 9), t0 + WINDOW / 2);
        limiter.record_failure(&format!("k{}", MAX_KEYS + 9), t0 + WINDOW / 2);
        assert!(limiter
            .check(&format!("k{}", MAX_KEYS + 9), t0 + WINDOW / 2)
            .is_err());
    }
}
