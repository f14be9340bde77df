//! Limits on password guessing and on registrations, keyed so that an attacker cannot turn them
//! against other people (the design and its numbers are in docs/auth.md#login-abuse).
//!
//! A login attempt is counted under three keys:
//!
//! - the **pair** (email, client address): a hard limit. At `max_failures_per_pair` failures the
//!   pair answers 429, even to the right password, until the oldest failure leaves the window.
//!   Guessing one account from one address is bounded; the owner at another address is not
//!   touched.
//! - the **address**: the number of *distinct emails* that failed from it. At the limit the
//!   address is throttled (429), except for pairs that logged in successfully before (a known
//!   address of that account), so a sprayer is stopped while the regular users behind the same
//!   NAT or node address keep logging in. Hammering one account counts once here.
//! - the **email**, from any address: never refused, only slowed. Beyond `max_failures_per_email`
//!   each attempt from an address not known for that account waits before its password is
//!   checked, doubling from `slowdown` up to `max_slowdown`, so that many addresses guessing one
//!   account are slowed down while its owner still gets in.
//!
//! An attempt takes its places *before* the password is checked and gives them back unless it
//! failed; checking first and counting afterwards would let a burst of concurrent guesses all
//! pass before the first failure is counted.
//!
//! Hand-written rather than `governor`: only *failures* may count, a place must be given back and
//! a pair forgotten on success. The counts live in an [`EventLog`]; [`MemoryLog`] keeps them in
//! this process, so with several replicas each counts on its own.

use std::{
    collections::{HashMap, VecDeque},
    fmt,
    net::IpAddr,
    sync::{Mutex, MutexGuard, PoisonError},
    time::{Duration, Instant},
};

/// Most keys a [`MemoryLog`] remembers; beyond it the keys with the oldest events are dropped,
/// so a flood of made-up emails costs bounded memory.
const MAX_KEYS: usize = 100_000;

/// How long a successful login makes its (email, address) pair a known one.
pub const KNOWN_ADDRESS_TTL: Duration = Duration::from_secs(30 * 24 * 60 * 60);

/// Timestamps of recent events per key, forgotten once older than the log's window. The counts
/// the limiters keep; a store shared by replicas can implement it later.
pub trait EventLog: Send + Sync + fmt::Debug {
    /// Records an event for `key` at `now` unless the key already holds `limit` events in the
    /// window. `Ok(events, the new one included)` or `Err(time until one leaves the window)`.
    fn push(&self, key: &str, now: Instant, limit: Option<u32>) -> Result<u32, Duration>;
    /// Like [`EventLog::push`] without recording: `Ok(events)` or `Err(wait)` when at `limit`.
    fn peek(&self, key: &str, now: Instant, limit: Option<u32>) -> Result<u32, Duration>;
    /// Removes the event recorded for `key` at `at` (an attempt giving its place back).
    fn remove(&self, key: &str, at: Instant);
    /// Forgets every event of `key`.
    fn clear(&self, key: &str);
}

type Events = HashMap<String, VecDeque<Instant>>;

/// An [`EventLog`] in this process's memory, bounded to [`MAX_KEYS`] keys.
#[derive(Debug)]
pub struct MemoryLog {
    window: Duration,
    events: Mutex<Events>,
}

impl MemoryLog {
    /// A log forgetting events older than `window`.
    pub fn new(window: Duration) -> Self {
        Self {
            window,
            events: Mutex::new(HashMap::new()),
        }
    }

    fn admit(
        &self,
        key: &str,
        now: Instant,
        limit: Option<u32>,
        record: bool,
    ) -> Result<u32, Duration> {
        if limit == Some(0) {
            return Err(Duration::ZERO);
        }
        let mut map = self.lock();
        let count = match map.get_mut(key) {
            Some(times) => {
                self.expire(times, now);
                let count = times.len();
                if let Some(limit) = limit.map(|l| l as usize) {
                    if count >= limit {
                        // Free once enough old events age out to get back under the limit.
                        let until = times[count - limit] + self.window;
                        return Err(until.saturating_duration_since(now));
                    }
                }
                count
            }
            None => {
                if record && map.len() >= MAX_KEYS {
                    self.prune(&mut map, now);
                }
                0
            }
        };
        if record {
            map.entry(key.to_owned()).or_default().push_back(now);
            return Ok(count as u32 + 1);
        }
        Ok(count as u32)
    }

    fn expire(&self, times: &mut VecDeque<Instant>, now: Instant) {
        while times
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= self.window)
        {
            times.pop_front();
        }
    }

    /// Drops expired keys, and if that is not enough, the half with the oldest last event.
    fn prune(&self, map: &mut Events, now: Instant) {
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

    fn lock(&self) -> MutexGuard<'_, Events> {
        // A panic while holding the lock cannot leave the map inconsistent: keep using it.
        self.events.lock().unwrap_or_else(PoisonError::into_inner)
    }

    #[cfg(test)]
    fn keys(&self) -> usize {
        self.lock().len()
    }
}

impl EventLog for MemoryLog {
    fn push(&self, key: &str, now: Instant, limit: Option<u32>) -> Result<u32, Duration> {
        self.admit(key, now, limit, true)
    }

    fn peek(&self, key: &str, now: Instant, limit: Option<u32>) -> Result<u32, Duration> {
        self.admit(key, now, limit, false)
    }

    fn remove(&self, key: &str, at: Instant) {
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

    fn clear(&self, key: &str) {
        self.lock().remove(key);
    }
}

/// An event recorded for an attempt in progress. Dropping it removes the event (the attempt
/// succeeded or could not be checked); [`Slot::keep`] leaves it to age out.
#[must_use = "dropping a slot gives it back at once"]
#[derive(Debug)]
pub struct Slot<'a> {
    log: &'a dyn EventLog,
    key: String,
    at: Option<Instant>,
}

impl Slot<'_> {
    /// The event stays counted until it leaves the window.
    pub fn keep(mut self) {
        self.at = None;
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        if let Some(at) = self.at {
            self.log.remove(&self.key, at);
        }
    }
}

/// Pushes an event for `key` and wraps it in a [`Slot`].
fn take<'a>(
    log: &'a dyn EventLog,
    key: String,
    now: Instant,
    limit: Option<u32>,
) -> Result<(Slot<'a>, u32), Duration> {
    let count = log.push(&key, now, limit)?;
    Ok((
        Slot {
            log,
            key,
            at: Some(now),
        },
        count,
    ))
}

/// The numbers of the login limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginLimits {
    /// Failures per (email, address) pair before it answers 429; at least 1.
    pub max_failures_per_pair: u32,
    /// Distinct failing emails per address before it is throttled; 0 disables.
    pub max_failed_emails_per_ip: u32,
    /// Failures per email, from any address, before its attempts are slowed; 0 disables.
    pub max_failures_per_email: u32,
    /// The first slow-down; it doubles with each further failure.
    pub slowdown: Duration,
    /// The longest slow-down.
    pub max_slowdown: Duration,
    /// How long a failure counts.
    pub window: Duration,
}

impl Default for LoginLimits {
    fn default() -> Self {
        Self {
            max_failures_per_pair: 10,
            max_failed_emails_per_ip: 20,
            max_failures_per_email: 10,
            slowdown: Duration::from_secs(1),
            max_slowdown: Duration::from_secs(8),
            window: Duration::from_secs(15 * 60),
        }
    }
}

/// The login limits of this process (see the module documentation).
#[derive(Debug)]
pub struct LoginLimiter {
    limits: LoginLimits,
    pairs: Box<dyn EventLog>,
    addresses: Box<dyn EventLog>,
    emails: Box<dyn EventLog>,
    known: Box<dyn EventLog>,
}

/// A login attempt admitted by the limiter. Report its outcome with [`Attempt::failed`] or
/// [`Attempt::succeeded`]; dropping it (the password could not be checked) gives every place
/// back.
#[must_use = "an attempt must be reported as failed or succeeded"]
#[derive(Debug)]
pub struct Attempt<'a> {
    limiter: &'a LoginLimiter,
    pair_key: String,
    at: Instant,
    pair: Slot<'a>,
    address: Option<Slot<'a>>,
    email: Slot<'a>,
    delay: Duration,
}

impl Attempt<'_> {
    /// How long to wait before checking the password (zero unless the email is under attack).
    pub fn delay(&self) -> Duration {
        self.delay
    }

    /// Wrong password or unknown email: the attempt counts under every key.
    pub fn failed(self) {
        let Attempt {
            pair,
            address,
            email,
            ..
        } = self;
        pair.keep();
        if let Some(address) = address {
            address.keep();
        }
        email.keep();
    }

    /// The right password: the pair's failures are forgotten and the address becomes a known
    /// one for this account.
    pub fn succeeded(self) {
        let limiter = self.limiter;
        limiter.pairs.clear(&self.pair_key);
        limiter.known.clear(&self.pair_key);
        let _ = limiter.known.push(&self.pair_key, self.at, None);
    }
}

impl LoginLimiter {
    /// Limits kept in this process's memory.
    pub fn in_memory(limits: LoginLimits) -> Self {
        Self {
            limits,
            pairs: Box::new(MemoryLog::new(limits.window)),
            addresses: Box::new(MemoryLog::new(limits.window)),
            emails: Box::new(MemoryLog::new(limits.window)),
            known: Box::new(MemoryLog::new(KNOWN_ADDRESS_TTL)),
        }
    }

    /// Admits an attempt for `email` (already lower-cased) from `ip` at `now`, or
    /// `Err(retry_after)` when the pair or the address is at its limit.
    pub fn begin(&self, email: &str, ip: IpAddr, now: Instant) -> Result<Attempt<'_>, Duration> {
        let limits = &self.limits;
        let ip_key = ip.to_string();
        // Neither part can contain a space: emails are checked at registration, and an unknown
        // email with spaces still gets its own key.
        let pair_key = format!("{email} {ip_key}");
        let known = self.known.peek(&pair_key, now, None).unwrap_or(0) > 0;

        let (pair, pair_count) = take(
            self.pairs.as_ref(),
            pair_key.clone(),
            now,
            Some(limits.max_failures_per_pair),
        )?;
        let address_limit = (!known).then_some(limits.max_failed_emails_per_ip);
        let address = if limits.max_failed_emails_per_ip == 0 {
            None
        } else if pair_count == 1 {
            // The first failure of this pair (so far) makes one more failing email for the
            // address.
            Some(take(self.addresses.as_ref(), ip_key, now, address_limit)?.0)
        } else {
            self.addresses.peek(&ip_key, now, address_limit)?;
            None
        };
        let (email, email_count) = take(self.emails.as_ref(), email.to_owned(), now, None)?;

        let over = email_count.saturating_sub(limits.max_failures_per_email);
        let delay = if known || limits.max_failures_per_email == 0 || over == 0 {
            Duration::ZERO
        } else {
            let doublings = (over - 1).min(16);
            (limits.slowdown * 2u32.pow(doublings)).min(limits.max_slowdown)
        };
        Ok(Attempt {
            limiter: self,
            pair_key,
            at: now,
            pair,
            address,
            email,
            delay,
        })
    }
}

/// Registrations per client address within a window.
#[derive(Debug)]
pub struct RegisterLimiter {
    max_per_ip: u32,
    log: Box<dyn EventLog>,
}

impl RegisterLimiter {
    /// `max_per_ip` registration attempts per address within `window`; 0 never refuses.
    pub fn in_memory(max_per_ip: u32, window: Duration) -> Self {
        Self {
            max_per_ip,
            log: Box::new(MemoryLog::new(window)),
        }
    }

    /// Takes a place for an attempt from `ip`, `Ok(None)` when unlimited, or `Err(retry_after)`.
    pub fn begin(&self, ip: IpAddr, now: Instant) -> Result<Option<Slot<'_>>, Duration> {
        if self.max_per_ip == 0 {
            return Ok(None);
        }
        let (slot, _) = take(
            self.log.as_ref(),
            ip.to_string(),
            now,
            Some(self.max_per_ip),
        )?;
        Ok(Some(slot))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WINDOW: Duration = Duration::from_secs(60);

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn limits() -> LoginLimits {
        LoginLimits {
            max_failures_per_pair: 3,
            max_failed_emails_per_ip: 4,
            max_failures_per_email: 5,
            slowdown: Duration::from_secs(1),
            max_slowdown: Duration::from_secs(4),
            window: WINDOW,
        }
    }

    fn fail(limiter: &LoginLimiter, email: &str, from: &str, at: Instant) {
        limiter
            .begin(email, ip(from), at)
            .expect("not limited yet")
            .failed();
    }

    #[test]
    fn a_pair_is_refused_at_its_limit_until_the_window_passes() {
        let limiter = LoginLimiter::in_memory(limits());
        let t0 = Instant::now();
        for i in 0..3 {
            fail(&limiter, "v@x", "1.1.1.1", t0 + Duration::from_secs(i));
        }
        let now = t0 + Duration::from_secs(10);
        assert_eq!(
            limiter.begin("v@x", ip("1.1.1.1"), now).unwrap_err(),
            Duration::from_secs(50)
        );
        // The same account from elsewhere, and another account from here, are admitted.
        limiter
            .begin("v@x", ip("2.2.2.2"), now)
            .unwrap()
            .succeeded();
        limiter
            .begin("w@x", ip("1.1.1.1"), now)
            .unwrap()
            .succeeded();
        assert!(limiter.begin("v@x", ip("1.1.1.1"), t0 + WINDOW).is_ok());
    }

    #[test]
    fn success_forgets_the_pair() {
        let limiter = LoginLimiter::in_memory(limits());
        let t0 = Instant::now();
        for _ in 0..2 {
            fail(&limiter, "v@x", "1.1.1.1", t0);
        }
        limiter.begin("v@x", ip("1.1.1.1"), t0).unwrap().succeeded();
        for _ in 0..3 {
            fail(&limiter, "v@x", "1.1.1.1", t0);
        }
        assert!(limiter.begin("v@x", ip("1.1.1.1"), t0).is_err());
    }

    #[test]
    fn an_address_counts_distinct_failing_emails_and_spares_known_pairs() {
        let limiter = LoginLimiter::in_memory(limits());
        let t0 = Instant::now();
        // A regular user of this address logged in before.
        limiter
            .begin("known@x", ip("9.9.9.9"), t0)
            .unwrap()
            .succeeded();
        // Hammering one account counts once for the address.
        for _ in 0..3 {
            fail(&limiter, "target@x", "9.9.9.9", t0);
        }
        for i in 0..3 {
            fail(&limiter, &format!("sprayed{i}@x"), "9.9.9.9", t0);
        }
        // Four failing emails: the address is throttled for emails new to it and for those
        // that failed...
        assert!(limiter.begin("new@x", ip("9.9.9.9"), t0).is_err());
        assert!(limiter.begin("sprayed0@x", ip("9.9.9.9"), t0).is_err());
        // ...but not for an account that logged in from here before, nor elsewhere.
        let known = limiter.begin("known@x", ip("9.9.9.9"), t0).unwrap();
        assert_eq!(known.delay(), Duration::ZERO);
        known.failed();
        limiter
            .begin("known@x", ip("9.9.9.9"), t0)
            .unwrap()
            .succeeded();
        limiter
            .begin("new@x", ip("8.8.8.8"), t0)
            .unwrap()
            .succeeded();
    }

    #[test]
    fn an_email_under_attack_is_slowed_not_locked() {
        let limiter = LoginLimiter::in_memory(limits());
        let t0 = Instant::now();
        // The owner logged in from home once.
        limiter
            .begin("v@x", ip("10.0.0.1"), t0)
            .unwrap()
            .succeeded();
        // Five addresses fail once each: the email reaches its limit.
        for i in 0..5 {
            fail(&limiter, "v@x", &format!("6.6.6.{i}"), t0);
        }
        let delays: Vec<Duration> = (10..14)
            .map(|i| {
                let attempt = limiter.begin("v@x", ip(&format!("6.6.6.{i}")), t0).unwrap();
                let delay = attempt.delay();
                attempt.failed();
                delay
            })
            .collect();
        let secs = |s| Duration::from_secs(s);
        assert_eq!(delays, [secs(1), secs(2), secs(4), secs(4)]);
        // The owner, at home, is not slowed; from a new address, slowed but admitted.
        let home = limiter.begin("v@x", ip("10.0.0.1"), t0).unwrap();
        assert_eq!(home.delay(), Duration::ZERO);
        home.succeeded();
        let away = limiter.begin("v@x", ip("10.9.9.9"), t0).unwrap();
        assert_eq!(away.delay(), secs(4));
        away.succeeded();
    }

    #[test]
    fn attempts_in_progress_count_until_reported() {
        let limiter = LoginLimiter::in_memory(limits());
        let t0 = Instant::now();
        let first = limiter.begin("v@x", ip("1.1.1.1"), t0).unwrap();
        let second = limiter.begin("v@x", ip("1.1.1.1"), t0).unwrap();
        let third = limiter.begin("v@x", ip("1.1.1.1"), t0).unwrap();
        // A fourth concurrent attempt is refused while three are being checked.
        assert!(limiter.begin("v@x", ip("1.1.1.1"), t0).is_err());
        drop(first); // could not be checked
        second.failed();
        third.failed();
        fail(&limiter, "v@x", "1.1.1.1", t0);
        assert!(limiter.begin("v@x", ip("1.1.1.1"), t0).is_err());
    }

    #[test]
    fn given_back_attempts_leave_nothing_behind() {
        let log = MemoryLog::new(WINDOW);
        let t0 = Instant::now();
        for _ in 0..5 {
            drop(take(&log, "a".to_owned(), t0, Some(1)).unwrap());
        }
        assert_eq!(log.keys(), 0);
        let limiter = LoginLimiter::in_memory(limits());
        for _ in 0..10 {
            drop(limiter.begin("v@x", ip("1.1.1.1"), t0).unwrap());
        }
        fail(&limiter, "v@x", "1.1.1.1", t0);
        fail(&limiter, "v@x", "1.1.1.1", t0);
        assert!(limiter.begin("v@x", ip("1.1.1.1"), t0).is_ok());
    }

    #[test]
    fn zero_disables_the_address_and_email_limits() {
        let limiter = LoginLimiter::in_memory(LoginLimits {
            max_failed_emails_per_ip: 0,
            max_failures_per_email: 0,
            ..limits()
        });
        let t0 = Instant::now();
        for i in 0..50 {
            fail(&limiter, &format!("u{i}@x"), "1.1.1.1", t0);
            fail(&limiter, "v@x", &format!("2.2.{i}.1"), t0);
        }
        let attempt = limiter.begin("v@x", ip("1.1.1.1"), t0).unwrap();
        assert_eq!(attempt.delay(), Duration::ZERO);
        attempt.succeeded();
    }

    #[test]
    fn registrations_per_address() {
        let limiter = RegisterLimiter::in_memory(2, WINDOW);
        let t0 = Instant::now();
        for _ in 0..2 {
            limiter.begin(ip("1.1.1.1"), t0).unwrap().unwrap().keep();
        }
        assert_eq!(limiter.begin(ip("1.1.1.1"), t0).unwrap_err(), WINDOW);
        assert!(limiter.begin(ip("1.1.1.2"), t0).is_ok());
        // Free again once the window has passed.
        assert!(limiter.begin(ip("1.1.1.1"), t0 + WINDOW).unwrap().is_some());
        assert!(RegisterLimiter::in_memory(0, WINDOW)
            .begin(ip("1.1.1.1"), t0)
            .unwrap()
            .is_none());
    }

    #[test]
    fn old_events_do_not_count() {
        let log = MemoryLog::new(WINDOW);
        let t0 = Instant::now();
        log.push("a", t0, Some(2)).unwrap();
        log.push("a", t0 + WINDOW + Duration::from_secs(1), Some(2))
            .unwrap();
        assert_eq!(
            log.push("a", t0 + WINDOW + Duration::from_secs(2), Some(2)),
            Ok(2)
        );
    }

    #[test]
    fn memory_is_bounded() {
        let log = MemoryLog::new(WINDOW);
        let t0 = Instant::now();
        for i in 0..(MAX_KEYS + 10) {
            log.push(
                &format!("k{i}"),
                t0 + Duration::from_micros(i as u64),
                Some(5),
            )
            .unwrap();
        }
        assert!(log.keys() <= MAX_KEYS);
        // The newest key survived the pruning with its event, and keeps counting.
        let newest = format!("k{}", MAX_KEYS + 9);
        for _ in 0..4 {
            log.push(&newest, t0 + WINDOW / 2, Some(5)).unwrap();
        }
        assert!(log.push(&newest, t0 + WINDOW / 2, Some(5)).is_err());
    }
}
