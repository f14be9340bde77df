//! Failed-login limiting: after too many failures for one key (an email, a client address)
//! within a sliding window, further attempts are refused until the oldest failure ages out.
//!
//! An attempt takes a slot *before* the password is checked ([`FailureLimiter::reserve`]) and
//! gives it back unless it failed. Checking first and counting afterwards would let a burst of
//! concurrent guesses all pass the check before the first failure is counted.
//!
//! Hand-written rather than `governor`: only *failures* may count (a correct password must not
//! be charged), a key must be forgotten on success, and a slot given back. The state lives in
//! this process: with several replicas each one counts on its own.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Mutex, MutexGuard, PoisonError},
    time::{Duration, Instant},
};

/// Most keys remembered at once; beyond it the entries with the oldest failures are dropped, so
/// a flood of made-up emails costs bounded memory.
const MAX_KEYS: usize = 100_000;

type Failures = HashMap<String, VecDeque<Instant>>;

/// Counts failures per key within `window`, refusing a key that reached `max_failures`.
#[derive(Debug)]
pub struct FailureLimiter {
    max_failures: u32,
    window: Duration,
    failures: Mutex<Failures>,
}

/// An attempt in progress, counted as a failure until it is known. Dropping it gives the slot
/// back (success, or the attempt could not be checked); [`Reservation::fail`] keeps it.
#[derive(Debug)]
#[must_use = "dropping a reservation gives the slot back at once"]
pub struct Reservation<'a> {
    limiter: &'a FailureLimiter,
    key: String,
    at: Option<Instant>,
}

impl Reservation<'_> {
    /// The attempt failed: it keeps counting until it ages out of the window.
    pub fn fail(mut self) {
        self.at = None;
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if let Some(at) = self.at {
            self.limiter.give_back(&self.key, at);
        }
    }
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

    /// Takes a slot for an attempt on `key` at `now`, or `Err(retry_after)` when the key's
    /// failures (and attempts in progress) have reached the limit.
    pub fn reserve(&self, key: &str, now: Instant) -> Result<Reservation<'_>, Duration> {
        if self.max_failures == 0 {
            return Ok(Reservation {
                limiter: self,
                key: String::new(),
                at: None,
            });
        }
        let max = self.max_failures as usize;
        let mut map = self.lock();
        if let Some(times) = map.get_mut(key) {
            self.expire(times, now);
            if times.len() >= max {
                // Free once enough old failures age out to get back under the limit.
                let until = times[times.len() - max] + self.window;
                return Err(until.saturating_duration_since(now));
            }
        } else if map.len() >= MAX_KEYS {
            self.prune(&mut map, now);
        }
        map.entry(key.to_owned()).or_default().push_back(now);
        Ok(Reservation {
            limiter: self,
            key: key.to_owned(),
            at: Some(now),
        })
    }

    /// Forgets `key`'s failures (after a successful login).
    pub fn reset(&self, key: &str) {
        self.lock().remove(key);
    }

    /// Removes one entry made at `at` for `key`.
    fn give_back(&self, key: &str, at: Instant) {
        let mut map = self.lock();
        if let Some(times) = map.get_mut(key) {
            if let Some(index) = times.iter().rposition(|t| *t == at) {
                times.remove(index);
            }
            if times.is_empty() {
                map.remove(key);
            }
        }
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
    fn prune(&self, map: &mut Failures, now: Instant) {
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

    fn lock(&self) -> MutexGuard<'_, Failures> {
        // A panic while holding the lock cannot leave the map inconsistent: keep using it.
        self.failures.lock().unwrap_or_else(PoisonError::into_inner)
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

    fn fail(limiter: &FailureLimiter, key: &str, at: Instant) {
        limiter.reserve(key, at).expect("not limited yet").fail();
    }

    #[test]
    fn refuses_after_max_failures_until_window_passes() {
        let limiter = FailureLimiter::new(3, WINDOW);
        let t0 = Instant::now();
        for i in 0..3 {
            fail(&limiter, "a", t0 + Duration::from_secs(i));
        }
        let now = t0 + Duration::from_secs(10);
        // The first failure (t0) ages out at t0 + 60s.
        assert_eq!(
            limiter.reserve("a", now).unwrap_err(),
            Duration::from_secs(50)
        );
        assert!(limiter.reserve("b", now).is_ok());
        assert!(limiter.reserve("a", t0 + WINDOW).is_ok());
    }

    #[test]
    fn attempts_in_progress_count_until_given_back() {
        let limiter = FailureLimiter::new(2, WINDOW);
        let t0 = Instant::now();
        let first = limiter.reserve("a", t0).unwrap();
        let second = limiter.reserve("a", t0).unwrap();
        // A third concurrent attempt is refused while two are being checked.
        assert!(limiter.reserve("a", t0).is_err());
        drop(first); // it succeeded
        second.fail();
        assert!(limiter.reserve("a", t0).is_ok()); // one failure counted, one slot free
    }

    #[test]
    fn dropped_reservations_leave_nothing_behind() {
        let limiter = FailureLimiter::new(1, WINDOW);
        let t0 = Instant::now();
        for _ in 0..5 {
            drop(limiter.reserve("a", t0).unwrap());
        }
        assert_eq!(limiter.keys(), 0);
    }

    #[test]
    fn reset_forgets_key() {
        let limiter = FailureLimiter::new(1, WINDOW);
        let t0 = Instant::now();
        fail(&limiter, "a", t0);
        assert!(limiter.reserve("a", t0).is_err());
        limiter.reset("a");
        assert!(limiter.reserve("a", t0).is_ok());
    }

    #[test]
    fn zero_disables() {
        let limiter = FailureLimiter::new(0, WINDOW);
        let t0 = Instant::now();
        for _ in 0..10 {
            fail(&limiter, "a", t0);
        }
        assert!(limiter.reserve("a", t0).is_ok());
        assert_eq!(limiter.keys(), 0);
    }

    #[test]
    fn old_failures_do_not_count() {
        let limiter = FailureLimiter::new(2, WINDOW);
        let t0 = Instant::now();
        fail(&limiter, "a", t0);
        fail(&limiter, "a", t0 + WINDOW + Duration::from_secs(1));
        assert!(limiter
            .reserve("a", t0 + WINDOW + Duration::from_secs(2))
            .is_ok());
    }

    #[test]
    fn memory_is_bounded() {
        let limiter = FailureLimiter::new(5, WINDOW);
        let t0 = Instant::now();
        for i in 0..(MAX_KEYS + 10) {
            fail(
                &limiter,
                &format!("k{i}"),
                t0 + Duration::from_micros(i as u64),
            );
        }
        assert!(limiter.keys() <= MAX_KEYS);
        // The newest key survived the pruning with its failure, and keeps counting.
        let newest = format!("k{}", MAX_KEYS + 9);
        for _ in 0..4 {
            fail(&limiter, &newest, t0 + WINDOW / 2);
        }
        assert!(limiter.reserve(&newest, t0 + WINDOW / 2).is_err());
    }
}
