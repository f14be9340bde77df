//! When to try again, and how soon: the one classification of errors into retryable and
//! permanent, and the one back-off (capped, exponential, with jitter) every retry loop uses.

use std::time::Duration;

use rand::Rng;

/// Whether doing the same thing again can succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// A passing fault (a server away, a connection dropped): try again after a pause.
    Retryable,
    /// No retry changes the answer (the server refused the operation, the data is wrong): fail
    /// now, with the reason.
    Permanent,
}

/// An error that knows whether retrying can help.
pub trait Classify {
    /// Whether the failed operation is worth trying again.
    fn retry(&self) -> Retry;

    /// Shorthand for `retry() == Retry::Retryable`.
    fn is_retryable(&self) -> bool {
        self.retry() == Retry::Retryable
    }
}

/// Pauses between the tries of one operation: `initial`, then doubling up to `max`, each drawn
/// at random from its upper half so that many clients that failed together do not retry
/// together ("equal jitter").
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    /// A back-off starting at `initial` and capped at `max`.
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max,
            next: initial.min(max),
        }
    }

    /// The pause before the next try; the one after it is twice as long, up to the cap.
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = self.next.saturating_mul(2).min(self.max);
        jitter(delay)
    }

    /// Starts over from the initial pause (after a success).
    pub fn reset(&mut self) {
        self.next = self.initial.min(self.max);
    }

    /// The pause before try number `attempt + 1` (`attempt` 1-based) of a back-off starting at
    /// `initial`, capped at `max`: for retries counted by the caller.
    pub fn delay_after(initial: Duration, max: Duration, attempt: u32) -> Duration {
        jitter(doubled(initial, max, attempt))
    }
}

/// `initial` doubled after each failure but the first, capped at `max`: `initial * 2^(n-1)`
/// after failure `n` (1-based; 0 counts as 1), without jitter, for schedules that are stored
/// or shown (webhook retries, the CLI's reconnects).
pub fn doubled(initial: Duration, max: Duration, failures: u32) -> Duration {
    let factor = 2u32.saturating_pow(failures.saturating_sub(1));
    initial.checked_mul(factor).unwrap_or(max).min(max)
}

/// A duration drawn uniformly from `[delay / 2, delay]`.
fn jitter(delay: Duration) -> Duration {
    let half = delay / 2;
    let spread = delay.saturating_sub(half).as_nanos() as u64;
    if spread == 0 {
        return delay;
    }
    half + Duration::from_nanos(rand::thread_rng().gen_range(0..=spread))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn within(d: Duration, full: Duration) -> bool {
        d >= full / 2 && d <= full
    }

    #[test]
    fn doubles_up_to_the_cap_with_jitter() {
        let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(3));
        let expected = [500, 1000, 2000, 3000, 3000];
        for ms in expected {
            let d = backoff.next_delay();
            assert!(within(d, Duration::from_millis(ms)), "{d:?} for {ms} ms");
        }
        backoff.reset();
        assert!(within(backoff.next_delay(), Duration::from_millis(500)));
    }

    #[test]
    fn delay_after_an_attempt_count() {
        let base = Duration::from_millis(500);
        let cap = Duration::from_secs(60);
        assert!(within(Backoff::delay_after(base, cap, 1), base));
        assert!(within(Backoff::delay_after(base, cap, 2), base * 2));
        assert!(within(Backoff::delay_after(base, cap, 3), base * 4));
        assert!(within(Backoff::delay_after(base, cap, 30), cap));
        assert_eq!(Backoff::delay_after(Duration::ZERO, cap, 3), Duration::ZERO);
    }

    #[test]
    fn doubled_is_exact_and_never_overflows() {
        let (base, cap) = (Duration::from_secs(1), Duration::from_secs(15));
        let delays: Vec<u64> = (0..=5).map(|n| doubled(base, cap, n).as_secs()).collect();
        assert_eq!(delays, [1, 1, 2, 4, 8, 15]);
        assert_eq!(doubled(Duration::from_secs(3600), cap, u32::MAX), cap);
    }

    #[test]
    fn jitter_spreads_the_delays() {
        let d = Duration::from_secs(1);
        let draws: std::collections::HashSet<Duration> = (0..20).map(|_| jitter(d)).collect();
        assert!(draws.len() > 1, "no spread: {draws:?}");
        assert!(draws.iter().all(|x| within(*x, d)));
    }
}
