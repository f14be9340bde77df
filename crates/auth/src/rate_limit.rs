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
//! a pair forgotten on success. The counts live in an [`EventLog`]: [`MemoryLog`] keeps them in
//! this process, so with several replicas each counts on its own; [`RedisLog`] keeps them in
//! Redis (`REDIS_URL`) for all replicas. [`Counts`] uses Redis while it answers and this
//! process's memory while it does not, so that an outage of Redis never stops a login.

use std::{
    collections::{HashMap, VecDeque},
    convert::Infallible,
    fmt,
    future::Future,
    net::IpAddr,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
    time::{Duration, Instant},
};

pub mod redis_log;

pub use redis_log::{RedisLink, RedisLog, RedisLogError};

/// Most keys a [`MemoryLog`] remembers; beyond it the keys with the oldest events are dropped,
/// so a flood of made-up emails costs bounded memory.
const MAX_KEYS: usize = 100_000;

/// How long a successful login makes its (email, address) pair a known one.
pub const KNOWN_ADDRESS_TTL: Duration = Duration::from_secs(30 * 24 * 60 * 60);

/// One recorded event: when it happened by this process's clock, and a random id that tells it
/// apart from every other attempt's (so that it alone can be given back).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event {
    /// This process's time of the event (a shared log uses its server's clock instead).
    pub at: Instant,
    /// Random, unique among the attempts in flight on all replicas.
    pub id: u64,
}

impl Event {
    /// A new event at `at` with a random id.
    pub fn new(at: Instant) -> Self {
        Self {
            at,
            id: rand::random(),
        }
    }
}

/// `Ok(events counted)` or `Err(time until a place frees up)` when the key is at its limit.
pub type Admission = Result<u32, Duration>;

/// Recent events per key, forgotten once older than the log's window: the counts the limiters
/// keep. [`MemoryLog`] keeps them in this process, [`RedisLog`] in Redis for every replica.
pub trait EventLog: Send + Sync + fmt::Debug {
    /// Why the log could not answer (never, for memory).
    type Error: std::error::Error + Send + Sync + 'static;

    /// Records `event` for `key` unless the key already holds `limit` events in the window, as
    /// one atomic step. `Ok(events, the new one included)` or `Err(time until one leaves the
    /// window)`.
    fn push(
        &self,
        key: &str,
        event: Event,
        limit: Option<u32>,
    ) -> impl Future<Output = Result<Admission, Self::Error>> + Send;
    /// Like [`EventLog::push`] without recording: `Ok(events)` or `Err(wait)` when at `limit`.
    fn peek(
        &self,
        key: &str,
        now: Instant,
        limit: Option<u32>,
    ) -> impl Future<Output = Result<Admission, Self::Error>> + Send;
    /// Removes `event` from `key` (an attempt giving its place back).
    fn remove(
        &self,
        key: &str,
        event: Event,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;
    /// Forgets every event of `key`.
    fn clear(&self, key: &str) -> impl Future<Output = Result<(), Self::Error>> + Send;
}

type Events = HashMap<String, VecDeque<Event>>;

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

    /// Counts `key`'s events at `now`, recording `event` unless at `limit`.
    fn admit(
        &self,
        key: &str,
        now: Instant,
        event: Option<Event>,
        limit: Option<u32>,
    ) -> Admission {
        if limit == Some(0) {
            return Err(Duration::ZERO);
        }
        let mut map = self.lock();
        let count = match map.get_mut(key) {
            Some(events) => {
                self.expire(events, now);
                let count = events.len();
                if let Some(limit) = limit.map(|l| l as usize) {
                    if count >= limit {
                        // Free once enough old events age out to get back under the limit.
                        let until = events[count - limit].at + self.window;
                        return Err(until.saturating_duration_since(now));
                    }
                }
                count
            }
            None => {
                if event.is_some() && map.len() >= MAX_KEYS {
                    self.prune(&mut map, now);
                }
                0
            }
        };
        match event {
            Some(event) => {
                map.entry(key.to_owned()).or_default().push_back(event);
                Ok(count as u32 + 1)
            }
            None => Ok(count as u32),
        }
    }

    fn take_back(&self, key: &str, event: Event) {
        let mut map = self.lock();
        if let Some(events) = map.get_mut(key) {
            if let Some(index) = events.iter().rposition(|e| e.id == event.id) {
                events.remove(index);
            }
            if events.is_empty() {
                map.remove(key);
            }
        }
    }

    fn forget(&self, key: &str) {
        self.lock().remove(key);
    }

    fn expire(&self, events: &mut VecDeque<Event>, now: Instant) {
        while events
            .front()
            .is_some_and(|e| now.saturating_duration_since(e.at) >= self.window)
        {
            events.pop_front();
        }
    }

    /// Drops expired keys, and if that is not enough, the half with the oldest last event.
    fn prune(&self, map: &mut Events, now: Instant) {
        map.retain(|_, events| {
            self.expire(events, now);
            !events.is_empty()
        });
        if map.len() >= MAX_KEYS {
            let mut last: Vec<Instant> = map
                .values()
                .filter_map(|e| e.back())
                .map(|e| e.at)
                .collect();
            let middle = last.len() / 2;
            let (_, cutoff, _) = last.select_nth_unstable(middle);
            let cutoff = *cutoff;
            map.retain(|_, events| events.back().is_some_and(|e| e.at > cutoff));
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
    type Error = Infallible;

    async fn push(
        &self,
        key: &str,
        event: Event,
        limit: Option<u32>,
    ) -> Result<Admission, Infallible> {
        Ok(self.admit(key, event.at, Some(event), limit))
    }

    async fn peek(
        &self,
        key: &str,
        now: Instant,
        limit: Option<u32>,
    ) -> Result<Admission, Infallible> {
        Ok(self.admit(key, now, None, limit))
    }

    async fn remove(&self, key: &str, event: Event) -> Result<(), Infallible> {
        self.take_back(key, event);
        Ok(())
    }

    async fn clear(&self, key: &str) -> Result<(), Infallible> {
        self.forget(key);
        Ok(())
    }
}

/// Where an event was recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    Memory,
    Redis,
}

/// The counts of one limit: in Redis when configured and answering, else in this process's
/// memory. A Redis error (or no answer within [`redis_log::CALL_TIMEOUT`]) never refuses or
/// admits an attempt by itself: the call is answered from memory, Redis is left alone for
/// [`redis_log::RETRY_INTERVAL`], and then tried again.
#[derive(Debug)]
pub struct Counts {
    memory: MemoryLog,
    redis: Option<RedisLog>,
}

impl Counts {
    /// Counts in memory only, within `window`.
    pub fn in_memory(window: Duration) -> Self {
        Self {
            memory: MemoryLog::new(window),
            redis: None,
        }
    }

    /// Counts of the limit `kind` within `window`, in Redis through `link` when there is one.
    pub fn new(link: Option<&Arc<RedisLink>>, kind: &'static str, window: Duration) -> Self {
        Self {
            memory: MemoryLog::new(window),
            redis: link.map(|link| RedisLog::new(link.clone(), kind, window)),
        }
    }

    /// Redis, unless it failed within the last [`redis_log::RETRY_INTERVAL`].
    fn redis(&self) -> Option<&RedisLog> {
        self.redis
            .as_ref()
            .filter(|redis| redis.link().should_try())
    }

    /// The result of a Redis call, noted in the link's health; `None` on failure.
    fn answered<T>(redis: &RedisLog, result: Result<T, RedisLogError>) -> Option<T> {
        redis.link().record(result.as_ref().map(drop));
        result.ok()
    }

    async fn push(&self, key: &str, event: Event, limit: Option<u32>) -> (Admission, Place) {
        if let Some(redis) = self.redis() {
            if let Some(admission) = Self::answered(redis, redis.push(key, event, limit).await) {
                return (admission, Place::Redis);
            }
        }
        (
            self.memory.admit(key, event.at, Some(event), limit),
            Place::Memory,
        )
    }

    async fn peek(&self, key: &str, now: Instant, limit: Option<u32>) -> Admission {
        if let Some(redis) = self.redis() {
            if let Some(admission) = Self::answered(redis, redis.peek(key, now, limit).await) {
                return admission;
            }
        }
        self.memory.admit(key, now, None, limit)
    }

    async fn remove(&self, key: &str, event: Event, place: Place) {
        match place {
            Place::Memory => self.memory.take_back(key, event),
            Place::Redis => {
                if let Some(redis) = &self.redis {
                    // On failure the event stays until it leaves the window: one extra failure
                    // counted, never one too few.
                    Self::answered(redis, redis.remove(key, event).await);
                }
            }
        }
    }

    async fn clear(&self, key: &str) {
        // Memory too: what was counted there during an outage is stale once Redis answers.
        self.memory.forget(key);
        if let Some(redis) = self.redis() {
            Self::answered(redis, redis.clear(key).await);
        }
    }
}

/// An event recorded for an attempt in progress. [`Slot::keep`] leaves it to age out;
/// [`Slot::give_back`] removes it (the attempt succeeded or could not be checked), and so does
/// dropping it, in the background.
#[must_use = "a slot must be kept or given back"]
#[derive(Debug)]
pub struct Slot<'a> {
    counts: &'a Counts,
    key: String,
    event: Event,
    place: Place,
    pending: bool,
}

impl Slot<'_> {
    /// The event stays counted until it leaves the window.
    pub fn keep(mut self) {
        self.pending = false;
    }

    /// Removes the event now.
    pub async fn give_back(mut self) {
        self.pending = false;
        self.counts.remove(&self.key, self.event, self.place).await;
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        if !self.pending {
            return;
        }
        match (self.place, &self.counts.redis) {
            (Place::Redis, Some(redis)) => {
                // A request cancelled mid-way (the client left, a timeout): give the place back
                // from a task of its own. Without a runtime the event just ages out.
                if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                    let (redis, key, event) =
                        (redis.clone(), std::mem::take(&mut self.key), self.event);
                    runtime.spawn(async move {
                        let result = redis.remove(&key, event).await;
                        redis.link().record(result.as_ref().map(drop));
                    });
                }
            }
            _ => self.counts.memory.take_back(&self.key, self.event),
        }
    }
}

/// Pushes `event` for `key` and wraps it in a [`Slot`].
async fn take<'a>(
    counts: &'a Counts,
    key: String,
    event: Event,
    limit: Option<u32>,
) -> Result<(Slot<'a>, u32), Duration> {
    let (admission, place) = counts.push(&key, event, limit).await;
    let count = admission?;
    Ok((
        Slot {
            counts,
            key,
            event,
            place,
            pending: true,
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

/// The login limits (see the module documentation).
#[derive(Debug)]
pub struct LoginLimiter {
    limits: LoginLimits,
    pairs: Counts,
    addresses: Counts,
    emails: Counts,
    known: Counts,
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

    /// The right password: the pair's failures are forgotten, the address becomes a known
    /// one for this account, and the attempt's places are given back.
    pub async fn succeeded(self) {
        let Attempt {
            limiter,
            pair_key,
            at,
            pair,
            address,
            email,
            ..
        } = self;
        pair.keep();
        // Independent keys: one round trip's time in Redis rather than four.
        tokio::join!(
            limiter.pairs.clear(&pair_key),
            async {
                limiter.known.clear(&pair_key).await;
                // Unlimited: always admitted.
                let _ = limiter.known.push(&pair_key, Event::new(at), None).await;
            },
            async {
                if let Some(address) = address {
                    address.give_back().await;
                }
            },
            email.give_back(),
        );
    }
}

impl LoginLimiter {
    /// Limits kept in this process's memory.
    pub fn in_memory(limits: LoginLimits) -> Self {
        Self::new(limits, None)
    }

    /// Limits kept in Redis through `redis` when given (falling back to memory while it does
    /// not answer), else in memory.
    pub fn new(limits: LoginLimits, redis: Option<&Arc<RedisLink>>) -> Self {
        Self {
            limits,
            pairs: Counts::new(redis, "login:pair", limits.window),
            addresses: Counts::new(redis, "login:ip", limits.window),
            emails: Counts::new(redis, "login:email", limits.window),
            known: Counts::new(redis, "login:known", KNOWN_ADDRESS_TTL),
        }
    }

    /// Admits an attempt for `email` (already lower-cased) from `ip` at `now`, or
    /// `Err(retry_after)` when the pair or the address is at its limit.
    pub async fn begin(
        &self,
        email: &str,
        ip: IpAddr,
        now: Instant,
    ) -> Result<Attempt<'_>, Duration> {
        let limits = &self.limits;
        let ip_key = ip.to_string();
        // Neither part can contain a space: emails are checked at registration, and an unknown
        // email with spaces still gets its own key.
        let pair_key = format!("{email} {ip_key}");
        let event = Event::new(now);
        // Independent: one round trip's time in Redis.
        let (known, pair) = tokio::join!(
            self.known.peek(&pair_key, now, None),
            take(
                &self.pairs,
                pair_key.clone(),
                event,
                Some(limits.max_failures_per_pair),
            ),
        );
        let known = known.unwrap_or(0) > 0;
        let (pair, pair_count) = pair?;
        let address_limit = (!known).then_some(limits.max_failed_emails_per_ip);
        let address = if limits.max_failed_emails_per_ip == 0 {
            None
        } else if pair_count == 1 {
            // The first failure of this pair (so far) makes one more failing email for the
            // address.
            match take(&self.addresses, ip_key, event, address_limit).await {
                Ok((slot, _)) => Some(slot),
                Err(wait) => {
                    pair.give_back().await;
                    return Err(wait);
                }
            }
        } else {
            if let Err(wait) = self.addresses.peek(&ip_key, now, address_limit).await {
                pair.give_back().await;
                return Err(wait);
            }
            None
        };
        // Unlimited: always admitted.
        let (email, email_count) = match take(&self.emails, email.to_owned(), event, None).await {
            Ok(taken) => taken,
            Err(wait) => {
                pair.give_back().await;
                if let Some(address) = address {
                    address.give_back().await;
                }
                return Err(wait);
            }
        };

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
    counts: Counts,
}

impl RegisterLimiter {
    /// `max_per_ip` registration attempts per address within `window` in this process's
    /// memory; 0 never refuses.
    pub fn in_memory(max_per_ip: u32, window: Duration) -> Self {
        Self::new(max_per_ip, window, None)
    }

    /// Like [`RegisterLimiter::in_memory`], counted in Redis through `redis` when given.
    pub fn new(max_per_ip: u32, window: Duration, redis: Option<&Arc<RedisLink>>) -> Self {
        Self {
            max_per_ip,
            counts: Counts::new(redis, "register:ip", window),
        }
    }

    /// Takes a place for an attempt from `ip`, `Ok(None)` when unlimited, or `Err(retry_after)`.
    pub async fn begin(&self, ip: IpAddr, now: Instant) -> Result<Option<Slot<'_>>, Duration> {
        if self.max_per_ip == 0 {
            return Ok(None);
        }
        let (slot, _) = take(
            &self.counts,
            ip.to_string(),
            Event::new(now),
            Some(self.max_per_ip),
        )
        .await?;
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

    async fn fail(limiter: &LoginLimiter, email: &str, from: &str, at: Instant) {
        limiter
            .begin(email, ip(from), at)
            .await
            .expect("not limited yet")
            .failed();
    }

    #[tokio::test]
    async fn a_pair_is_refused_at_its_limit_until_the_window_passes() {
        let limiter = LoginLimiter::in_memory(limits());
        let t0 = Instant::now();
        for i in 0..3 {
            fail(&limiter, "v@x", "1.1.1.1", t0 + Duration::from_secs(i)).await;
        }
        let now = t0 + Duration::from_secs(10);
        assert_eq!(
            limiter.begin("v@x", ip("1.1.1.1"), now).await.unwrap_err(),
            Duration::from_secs(50)
        );
        // The same account from elsewhere, and another account from here, are admitted.
        limiter
            .begin("v@x", ip("2.2.2.2"), now)
            .await
            .unwrap()
            .succeeded()
            .await;
        limiter
            .begin("w@x", ip("1.1.1.1"), now)
            .await
            .unwrap()
            .succeeded()
            .await;
        assert!(limiter
            .begin("v@x", ip("1.1.1.1"), t0 + WINDOW)
            .await
            .is_ok());
    }

    #[tokio::test]
    async fn success_forgets_the_pair() {
        let limiter = LoginLimiter::in_memory(limits());
        let t0 = Instant::now();
        for _ in 0..2 {
            fail(&limiter, "v@x", "1.1.1.1", t0).await;
        }
        limiter
            .begin("v@x", ip("1.1.1.1"), t0)
            .await
            .unwrap()
            .succeeded()
            .await;
        for _ in 0..3 {
            fail(&limiter, "v@x", "1.1.1.1", t0).await;
        }
        assert!(limiter.begin("v@x", ip("1.1.1.1"), t0).await.is_err());
    }

    #[tokio::test]
    async fn an_address_counts_distinct_failing_emails_and_spares_known_pairs() {
        let limiter = LoginLimiter::in_memory(limits());
        let t0 = Instant::now();
        // A regular user of this address logged in before.
        limiter
            .begin("known@x", ip("9.9.9.9"), t0)
            .await
            .unwrap()
            .succeeded()
            .await;
        // Hammering one account counts once for the address.
        for _ in 0..3 {
            fail(&limiter, "target@x", "9.9.9.9", t0).await;
        }
        for i in 0..3 {
            fail(&limiter, &format!("sprayed{i}@x"), "9.9.9.9", t0).await;
        }
        // Four failing emails: the address is throttled for emails new to it and for those
        // that failed...
        assert!(limiter.begin("new@x", ip("9.9.9.9"), t0).await.is_err());
        assert!(limiter
            .begin("sprayed0@x", ip("9.9.9.9"), t0)
            .await
            .is_err());
        // ...but not for an account that logged in from here before, nor elsewhere.
        let known = limiter.begin("known@x", ip("9.9.9.9"), t0).await.unwrap();
        assert_eq!(known.delay(), Duration::ZERO);
        known.failed();
        limiter
            .begin("known@x", ip("9.9.9.9"), t0)
            .await
            .unwrap()
            .succeeded()
            .await;
        limiter
            .begin("new@x", ip("8.8.8.8"), t0)
            .await
            .unwrap()
            .succeeded()
            .await;
    }

    #[tokio::test]
    async fn an_email_under_attack_is_slowed_not_locked() {
        let limiter = LoginLimiter::in_memory(limits());
        let t0 = Instant::now();
        // The owner logged in from home once.
        limiter
            .begin("v@x", ip("10.0.0.1"), t0)
            .await
            .unwrap()
            .succeeded()
            .await;
        // Five addresses fail once each: the email reaches its limit.
        for i in 0..5 {
            fail(&limiter, "v@x", &format!("6.6.6.{i}"), t0).await;
        }
        let mut delays = Vec::new();
        for i in 10..14 {
            let attempt = limiter
                .begin("v@x", ip(&format!("6.6.6.{i}")), t0)
                .await
                .unwrap();
            delays.push(attempt.delay());
            attempt.failed();
        }
        let secs = |s| Duration::from_secs(s);
        assert_eq!(delays, [secs(1), secs(2), secs(4), secs(4)]);
        // The owner, at home, is not slowed; from a new address, slowed but admitted.
        let home = limiter.begin("v@x", ip("10.0.0.1"), t0).await.unwrap();
        assert_eq!(home.delay(), Duration::ZERO);
        home.succeeded().await;
        let away = limiter.begin("v@x", ip("10.9.9.9"), t0).await.unwrap();
        assert_eq!(away.delay(), secs(4));
        away.succeeded().await;
    }

    #[tokio::test]
    async fn attempts_in_progress_count_until_reported() {
        let limiter = LoginLimiter::in_memory(limits());
        let t0 = Instant::now();
        let first = limiter.begin("v@x", ip("1.1.1.1"), t0).await.unwrap();
        let second = limiter.begin("v@x", ip("1.1.1.1"), t0).await.unwrap();
        let third = limiter.begin("v@x", ip("1.1.1.1"), t0).await.unwrap();
        // A fourth concurrent attempt is refused while three are being checked.
        assert!(limiter.begin("v@x", ip("1.1.1.1"), t0).await.is_err());
        drop(first); // could not be checked
        second.failed();
        third.failed();
        fail(&limiter, "v@x", "1.1.1.1", t0).await;
        assert!(limiter.begin("v@x", ip("1.1.1.1"), t0).await.is_err());
    }

    #[tokio::test]
    async fn given_back_attempts_leave_nothing_behind() {
        let counts = Counts::in_memory(WINDOW);
        let t0 = Instant::now();
        for _ in 0..5 {
            let (slot, _) = take(&counts, "a".to_owned(), Event::new(t0), Some(1))
                .await
                .unwrap();
            slot.give_back().await;
            // Dropped unreported (a cancelled request): given back too.
            drop(
                take(&counts, "a".to_owned(), Event::new(t0), Some(1))
                    .await
                    .unwrap(),
            );
        }
        assert_eq!(counts.memory.keys(), 0);
        let (kept, _) = take(&counts, "a".to_owned(), Event::new(t0), Some(1))
            .await
            .unwrap();
        kept.keep();
        assert!(take(&counts, "a".to_owned(), Event::new(t0), Some(1))
            .await
            .is_err());

        let limiter = LoginLimiter::in_memory(limits());
        for _ in 0..10 {
            drop(limiter.begin("v@x", ip("1.1.1.1"), t0).await.unwrap());
        }
        fail(&limiter, "v@x", "1.1.1.1", t0).await;
        fail(&limiter, "v@x", "1.1.1.1", t0).await;
        assert!(limiter.begin("v@x", ip("1.1.1.1"), t0).await.is_ok());
    }

    #[tokio::test]
    async fn zero_disables_the_address_and_email_limits() {
        let limiter = LoginLimiter::in_memory(LoginLimits {
            max_failed_emails_per_ip: 0,
            max_failures_per_email: 0,
            ..limits()
        });
        let t0 = Instant::now();
        for i in 0..50 {
            fail(&limiter, &format!("u{i}@x"), "1.1.1.1", t0).await;
            fail(&limiter, "v@x", &format!("2.2.{i}.1"), t0).await;
        }
        let attempt = limiter.begin("v@x", ip("1.1.1.1"), t0).await.unwrap();
        assert_eq!(attempt.delay(), Duration::ZERO);
        attempt.succeeded().await;
    }

    #[tokio::test]
    async fn registrations_per_address() {
        let limiter = RegisterLimiter::in_memory(2, WINDOW);
        let t0 = Instant::now();
        for _ in 0..2 {
            limiter
                .begin(ip("1.1.1.1"), t0)
                .await
                .unwrap()
                .unwrap()
                .keep();
        }
        assert_eq!(limiter.begin(ip("1.1.1.1"), t0).await.unwrap_err(), WINDOW);
        assert!(limiter.begin(ip("1.1.1.2"), t0).await.is_ok());
        // Free again once the window has passed.
        assert!(limiter
            .begin(ip("1.1.1.1"), t0 + WINDOW)
            .await
            .unwrap()
            .is_some());
        assert!(RegisterLimiter::in_memory(0, WINDOW)
            .begin(ip("1.1.1.1"), t0)
            .await
            .unwrap()
            .is_none());
    }

    /// Pushes an event at `at` into a memory log.
    fn push_at(log: &MemoryLog, key: &str, at: Instant, limit: Option<u32>) -> Admission {
        log.admit(key, at, Some(Event::new(at)), limit)
    }

    #[test]
    fn old_events_do_not_count() {
        let log = MemoryLog::new(WINDOW);
        let t0 = Instant::now();
        push_at(&log, "a", t0, Some(2)).unwrap();
        push_at(&log, "a", t0 + WINDOW + Duration::from_secs(1), Some(2)).unwrap();
        assert_eq!(
            push_at(&log, "a", t0 + WINDOW + Duration::from_secs(2), Some(2)),
            Ok(2)
        );
    }

    #[test]
    fn memory_is_bounded() {
        let log = MemoryLog::new(WINDOW);
        let t0 = Instant::now();
        for i in 0..(MAX_KEYS + 10) {
            push_at(
                &log,
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
            push_at(&log, &newest, t0 + WINDOW / 2, Some(5)).unwrap();
        }
        assert!(push_at(&log, &newest, t0 + WINDOW / 2, Some(5)).is_err());
    }
}
