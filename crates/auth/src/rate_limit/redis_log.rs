//! The login and registration counts in Redis, shared by every replica (`REDIS_URL`).
//!
//! Each key of a limit is a sorted set of events scored by the Redis server's clock in
//! milliseconds, so replicas whose clocks differ still agree on the window. Every change is one
//! Lua script: "drop what left the window, count, add unless at the limit" runs as one atomic
//! step, so two replicas admitting attempts at the same moment cannot both take the last place.
//! Every write sets the key to expire when its newest event leaves the window: nothing outlives
//! its use, whatever happens to the replica that wrote it.
//!
//! Keys are `<REDIS_KEY_PREFIX><limit>:<digest>`, where the digest is a keyed SHA-256 of the
//! email and/or client address (the key derived from `JWT_SECRET`): whoever can read Redis sees
//! counts, not who logs in from where, and cannot confirm a guessed email without the secret.

use std::{
    fmt,
    sync::{Arc, LazyLock, Mutex, PoisonError},
    time::{Duration, Instant},
};

use redis::{aio::ConnectionManager, ConnectionInfo, Script};
use sha2::{Digest as _, Sha256};

use super::{Admission, Event, EventLog};

/// Longest any Redis call may take before the limits fall back to this replica's memory: a
/// login must not stall on an unreachable Redis.
pub const CALL_TIMEOUT: Duration = Duration::from_millis(200);
/// How long after a failure calls go straight to memory before Redis is tried again, so that
/// an unreachable Redis costs one timeout per interval, not one per request.
pub const RETRY_INTERVAL: Duration = Duration::from_secs(2);
/// Shortest time between two warnings while Redis stays unreachable.
const WARNING_INTERVAL: Duration = Duration::from_secs(60);

/// Admits an event unless the key is at its limit. KEYS[1] the sorted set; ARGV: window (ms),
/// limit (-1: none), the event's member, 1 to record it or 0 to only count. Answers
/// `{1, events}` or `{0, ms until a place frees up}`.
static ADMIT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local window = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local count = redis.call('ZCARD', KEYS[1])
if limit >= 0 and count >= limit then
  if limit == 0 then
    return {0, 0}
  end
  -- Free once enough old events leave the window to get back under the limit.
  local oldest = redis.call('ZRANGE', KEYS[1], count - limit, count - limit, 'WITHSCORES')
  return {0, math.max(0, tonumber(oldest[2]) + window - now)}
end
if ARGV[4] == '1' then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], window)
  return {1, count + 1}
end
return {1, count}
",
    )
});

/// Why a Redis call failed.
#[derive(Debug, thiserror::Error)]
pub enum RedisLogError {
    /// The connection or the server failed.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// No answer within [`CALL_TIMEOUT`].
    #[error("redis did not answer within {CALL_TIMEOUT:?}")]
    Timeout,
    /// A script answered something it never answers.
    #[error("redis answered {0:?} to the limit script")]
    Reply(Vec<i64>),
}

/// One connection to Redis shared by every count of this replica, with what it has seen of
/// Redis's health (for the fallback, the warnings and `/readyz`).
pub struct RedisLink {
    connection: ConnectionManager,
    prefix: String,
    key_secret: [u8; 32],
    health: Mutex<Health>,
}

#[derive(Debug, Default)]
struct Health {
    /// Set while Redis is unreachable: when that started.
    down_since: Option<Instant>,
    /// Calls go to memory until then.
    retry_at: Option<Instant>,
    last_warning: Option<Instant>,
    errors_since_warning: u64,
}

impl fmt::Debug for RedisLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisLink")
            .field("prefix", &self.prefix)
            .field("key_secret", &"<redacted>")
            .field("health", &self.health)
            .finish_non_exhaustive()
    }
}

impl RedisLink {
    /// A link to `info`; nothing is connected until the first call, so a Redis that is down at
    /// start does not stop the service. `secret` (the JWT secret) keys the digests in key names.
    pub fn new(info: ConnectionInfo, prefix: &str, secret: &[u8]) -> Result<Self, RedisLogError> {
        // Small requests each awaiting its answer: no Nagle delay.
        let tcp = info.tcp_settings().clone().set_nodelay(true);
        let client = redis::Client::open(info.set_tcp_settings(tcp))?;
        // Reconnecting is the manager's job; a call never waits longer than CALL_TIMEOUT for it.
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CALL_TIMEOUT))
            .set_response_timeout(Some(CALL_TIMEOUT))
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_secs(1));
        let connection = ConnectionManager::new_lazy_with_config(client, config)?;
        // A key of its own for the digests, so that they reveal nothing about the JWT secret.
        let key_secret = Sha256::new()
            .chain_update(b"vidconv auth redis key names\0")
            .chain_update(secret)
            .finalize()
            .into();
        metrics::gauge!("auth_redis_degraded").set(0.0);
        Ok(Self {
            connection,
            prefix: prefix.to_owned(),
            key_secret,
            health: Mutex::new(Health::default()),
        })
    }

    /// `PING` within [`CALL_TIMEOUT`], recording the outcome like any other call.
    pub async fn ping(&self) -> Result<(), RedisLogError> {
        let mut connection = self.connection.clone();
        let result = call(async move {
            redis::cmd("PING")
                .query_async::<String>(&mut connection)
                .await
        })
        .await;
        self.record(result.as_ref().map(drop));
        result.map(drop)
    }

    /// Whether the last call failed (the limits are per replica until Redis answers again).
    pub fn is_degraded(&self) -> bool {
        self.health().down_since.is_some()
    }

    /// Whether a call should go to Redis now: always while it answers, once per
    /// [`RETRY_INTERVAL`] while it does not.
    pub fn should_try(&self) -> bool {
        self.health()
            .retry_at
            .is_none_or(|retry_at| Instant::now() >= retry_at)
    }

    /// Notes the outcome of a call: a warning (at most one per [`WARNING_INTERVAL`]) and the
    /// metrics when it failed, a note when Redis answers again after failing.
    pub fn record(&self, outcome: Result<(), &RedisLogError>) {
        let now = Instant::now();
        let mut health = self.health();
        match outcome {
            Ok(()) => {
                if let Some(since) = health.down_since.take() {
                    metrics::gauge!("auth_redis_degraded").set(0.0);
                    tracing::info!(
                        down_ms = now.duration_since(since).as_millis() as u64,
                        "redis answers again: login limits are shared by the replicas again"
                    );
                }
                health.retry_at = None;
                health.errors_since_warning = 0;
            }
            Err(error) => {
                metrics::counter!("auth_redis_errors_total").increment(1);
                metrics::gauge!("auth_redis_degraded").set(1.0);
                health.retry_at = Some(now + RETRY_INTERVAL);
                health.errors_since_warning += 1;
                let first = health.down_since.is_none();
                health.down_since.get_or_insert(now);
                let due = health
                    .last_warning
                    .is_none_or(|last| now.duration_since(last) >= WARNING_INTERVAL);
                if first || due {
                    tracing::warn!(
                        %error,
                        errors = health.errors_since_warning,
                        "redis unreachable: login limits fall back to this replica's memory \
                         (each replica counts alone) until it answers"
                    );
                    health.last_warning = Some(now);
                    health.errors_since_warning = 0;
                }
            }
        }
    }

    /// The Redis key of `subject` (an email, an address or both) in the limit `kind`.
    fn key(&self, kind: &str, subject: &str) -> String {
        let digest = Sha256::new()
            .chain_update(self.key_secret)
            .chain_update(kind.as_bytes())
            .chain_update(b"\0")
            .chain_update(subject.as_bytes())
            .finalize();
        // 128 bits: no two subjects share a key in practice, and the names stay short.
        let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
        format!("{}{kind}:{hex}", self.prefix)
    }

    fn health(&self) -> std::sync::MutexGuard<'_, Health> {
        // Plain data: a panic elsewhere cannot leave it inconsistent.
        self.health.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Runs a Redis call within [`CALL_TIMEOUT`].
async fn call<T>(
    future: impl std::future::Future<Output = redis::RedisResult<T>>,
) -> Result<T, RedisLogError> {
    match tokio::time::timeout(CALL_TIMEOUT, future).await {
        Ok(result) => Ok(result?),
        Err(_) => Err(RedisLogError::Timeout),
    }
}

/// One limit's counts in Redis: events per key within `window`, under the key names of `kind`.
#[derive(Clone)]
pub struct RedisLog {
    link: Arc<RedisLink>,
    kind: &'static str,
    window: Duration,
}

impl fmt::Debug for RedisLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisLog")
            .field("kind", &self.kind)
            .field("window", &self.window)
            .finish()
    }
}

impl RedisLog {
    /// The counts of the limit `kind` (a short name such as `login:pair`, part of every key),
    /// forgetting events older than `window`.
    pub fn new(link: Arc<RedisLink>, kind: &'static str, window: Duration) -> Self {
        Self { link, kind, window }
    }

    /// The link this log talks through.
    pub fn link(&self) -> &Arc<RedisLink> {
        &self.link
    }

    /// The Redis key holding the events of `key`.
    pub fn redis_key(&self, key: &str) -> String {
        self.link.key(self.kind, key)
    }

    async fn admit(
        &self,
        key: &str,
        member: Option<u64>,
        limit: Option<u32>,
    ) -> Result<Admission, RedisLogError> {
        let mut connection = self.link.connection.clone();
        let mut invocation = ADMIT.key(self.redis_key(key));
        invocation
            .arg(self.window.as_millis() as u64)
            .arg(limit.map_or(-1, i64::from))
            .arg(member.map_or_else(String::new, member_name))
            .arg(if member.is_some() { "1" } else { "0" });
        let reply: Vec<i64> = call(invocation.invoke_async(&mut connection)).await?;
        match reply[..] {
            [1, count] if count >= 0 => Ok(Ok(count as u32)),
            [0, wait_ms] if wait_ms >= 0 => Ok(Err(Duration::from_millis(wait_ms as u64))),
            _ => Err(RedisLogError::Reply(reply)),
        }
    }
}

/// The sorted-set member of an event: its id, unique among concurrent attempts of all
/// replicas.
fn member_name(id: u64) -> String {
    format!("{id:016x}")
}

impl EventLog for RedisLog {
    type Error = RedisLogError;

    /// `event.at` is not used: the Redis server's clock stamps the event.
    async fn push(
        &self,
        key: &str,
        event: Event,
        limit: Option<u32>,
    ) -> Result<Admission, RedisLogError> {
        self.admit(key, Some(event.id), limit).await
    }

    async fn peek(
        &self,
        key: &str,
        _now: Instant,
        limit: Option<u32>,
    ) -> Result<Admission, RedisLogError> {
        self.admit(key, None, limit).await
    }

    async fn remove(&self, key: &str, event: Event) -> Result<(), RedisLogError> {
        let mut connection = self.link.connection.clone();
        let key = self.redis_key(key);
        // Removing the last member deletes the key.
        call(async move {
            redis::cmd("ZREM")
                .arg(key)
                .arg(member_name(event.id))
                .query_async::<i64>(&mut connection)
                .await
        })
        .await
        .map(drop)
    }

    async fn clear(&self, key: &str) -> Result<(), RedisLogError> {
        let mut connection = self.link.connection.clone();
        let key = self.redis_key(key);
        call(async move {
            redis::cmd("DEL")
                .arg(key)
                .query_async::<i64>(&mut connection)
                .await
        })
        .await
        .map(drop)
    }
}

/// Turns a `redis://` URL into connection settings; the error never repeats the URL, which may
/// hold a password.
pub fn parse_url(url: &str) -> Result<ConnectionInfo, String> {
    use redis::IntoConnectionInfo as _;
    url.into_connection_info().map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    //! Against the real Redis of `TEST_REDIS_URL` (default `redis://127.0.0.1:6379`), each test
    //! under a prefix of its own.

    use std::net::SocketAddr;

    use tokio::{net::TcpListener, task::JoinSet};

    use super::*;
    use crate::rate_limit::{take, Counts, Place, KNOWN_ADDRESS_TTL};

    const SECRET: &[u8] = b"test-secret-for-auth-0123456789abcdef";

    fn test_url() -> String {
        std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
    }

    fn unique_prefix() -> String {
        format!("vidconv-test:auth:{}:", uuid::Uuid::new_v4().simple())
    }

    /// A link to the test Redis under `prefix`, as one replica would have it.
    fn link_at(url: &str, prefix: &str) -> Arc<RedisLink> {
        Arc::new(RedisLink::new(parse_url(url).unwrap(), prefix, SECRET).unwrap())
    }

    /// Runs a plain command on the test Redis.
    async fn command<T: redis::FromRedisValue>(link: &RedisLink, cmd: &mut redis::Cmd) -> T {
        let mut connection = link.connection.clone();
        cmd.query_async(&mut connection)
            .await
            .expect("redis command")
    }

    #[tokio::test]
    async fn counts_and_refuses_at_the_limit_with_the_wait() {
        let link = link_at(&test_url(), &unique_prefix());
        let window = Duration::from_secs(60);
        let log = RedisLog::new(link.clone(), "login:pair", window);
        let now = Instant::now();
        for expected in 1..=3 {
            assert_eq!(
                log.push("v@x 1.1.1.1", Event::new(now), Some(3))
                    .await
                    .unwrap(),
                Ok(expected)
            );
        }
        let wait = log
            .push("v@x 1.1.1.1", Event::new(now), Some(3))
            .await
            .unwrap()
            .unwrap_err();
        assert!(wait > Duration::ZERO && wait <= window, "{wait:?}");
        assert_eq!(log.peek("v@x 1.1.1.1", now, None).await.unwrap(), Ok(3));
        assert!(log
            .peek("v@x 1.1.1.1", now, Some(3))
            .await
            .unwrap()
            .is_err());
        // Other keys, and the same key in another limit, are separate.
        assert_eq!(log.peek("w@x 1.1.1.1", now, Some(3)).await.unwrap(), Ok(0));
        let other = RedisLog::new(link, "login:email", window);
        assert_eq!(
            other.peek("v@x 1.1.1.1", now, Some(3)).await.unwrap(),
            Ok(0)
        );
        assert_eq!(
            log.push("k", Event::new(now), Some(0)).await.unwrap(),
            Err(Duration::ZERO)
        );
    }

    #[tokio::test]
    async fn concurrent_pushes_from_two_replicas_never_pass_the_limit() {
        let prefix = unique_prefix();
        // Two links, two connections: two replicas.
        let replicas = [link_at(&test_url(), &prefix), link_at(&test_url(), &prefix)];
        let window = Duration::from_secs(60);
        let mut pushes = JoinSet::new();
        for i in 0..60 {
            let log = RedisLog::new(replicas[i % 2].clone(), "login:pair", window);
            pushes.spawn(async move {
                log.push("v@x 1.1.1.1", Event::new(Instant::now()), Some(10))
                    .await
                    .unwrap()
            });
        }
        let admissions = pushes.join_all().await;
        let mut admitted: Vec<u32> = admissions.iter().filter_map(|a| a.ok()).collect();
        admitted.sort_unstable();
        // Each admitted push saw a different count: no two took the same place.
        assert_eq!(admitted, (1..=10).collect::<Vec<_>>());
        let log = RedisLog::new(replicas[1].clone(), "login:pair", window);
        assert_eq!(
            log.peek("v@x 1.1.1.1", Instant::now(), None).await.unwrap(),
            Ok(10)
        );
    }

    #[tokio::test]
    async fn keys_expire_with_the_window() {
        let link = link_at(&test_url(), &unique_prefix());
        let window = Duration::from_millis(800);
        let log = RedisLog::new(link.clone(), "login:ip", window);
        log.push("1.1.1.1", Event::new(Instant::now()), Some(2))
            .await
            .unwrap()
            .unwrap();
        log.push("1.1.1.1", Event::new(Instant::now()), Some(2))
            .await
            .unwrap()
            .unwrap();
        let key = log.redis_key("1.1.1.1");
        let ttl: i64 = command(&link, redis::cmd("PTTL").arg(&key)).await;
        assert!(ttl > 0 && ttl <= 800, "{ttl}");
        assert!(log
            .push("1.1.1.1", Event::new(Instant::now()), Some(2))
            .await
            .unwrap()
            .is_err());

        tokio::time::sleep(window + Duration::from_millis(200)).await;
        let exists: i64 = command(&link, redis::cmd("EXISTS").arg(&key)).await;
        assert_eq!(exists, 0, "the key outlived its window");
        assert_eq!(
            log.push("1.1.1.1", Event::new(Instant::now()), Some(2))
                .await
                .unwrap(),
            Ok(1)
        );

        // A known address lasts KNOWN_ADDRESS_TTL.
        let known = RedisLog::new(link.clone(), "login:known", KNOWN_ADDRESS_TTL);
        known
            .push("v@x 1.1.1.1", Event::new(Instant::now()), None)
            .await
            .unwrap()
            .unwrap();
        let ttl: i64 = command(
            &link,
            redis::cmd("PTTL").arg(known.redis_key("v@x 1.1.1.1")),
        )
        .await;
        let days_29 = 29 * 24 * 3600 * 1000;
        assert!(
            ttl > days_29 && ttl <= KNOWN_ADDRESS_TTL.as_millis() as i64,
            "{ttl}"
        );
        known.clear("v@x 1.1.1.1").await.unwrap();
    }

    #[tokio::test]
    async fn a_given_back_event_alone_is_removed_and_clear_forgets_the_key() {
        let link = link_at(&test_url(), &unique_prefix());
        let log = RedisLog::new(link.clone(), "login:email", Duration::from_secs(60));
        let now = Instant::now();
        let (first, second) = (Event::new(now), Event::new(now));
        log.push("v@x", first, None).await.unwrap().unwrap();
        log.push("v@x", second, None).await.unwrap().unwrap();
        log.remove("v@x", first).await.unwrap();
        // Giving back twice, or an event never recorded, removes nothing else.
        log.remove("v@x", first).await.unwrap();
        log.remove("v@x", Event::new(now)).await.unwrap();
        assert_eq!(log.peek("v@x", now, None).await.unwrap(), Ok(1));
        log.remove("v@x", second).await.unwrap();
        let exists: i64 = command(&link, redis::cmd("EXISTS").arg(log.redis_key("v@x"))).await;
        assert_eq!(exists, 0, "an empty count leaves no key behind");

        for _ in 0..3 {
            log.push("v@x", Event::new(now), None)
                .await
                .unwrap()
                .unwrap();
        }
        log.clear("v@x").await.unwrap();
        assert_eq!(log.peek("v@x", now, None).await.unwrap(), Ok(0));
        let exists: i64 = command(&link, redis::cmd("EXISTS").arg(log.redis_key("v@x"))).await;
        assert_eq!(exists, 0);
    }

    #[tokio::test]
    async fn key_names_reveal_neither_email_nor_address() {
        let prefix = unique_prefix();
        let link = link_at(&test_url(), &prefix);
        let log = RedisLog::new(link, "login:pair", Duration::from_secs(60));
        let key = log.redis_key("victim@example.com 203.0.113.5");
        let digest = key
            .strip_prefix(&format!("{prefix}login:pair:"))
            .unwrap_or_else(|| panic!("{key}"));
        assert!(
            digest.len() == 32 && digest.bytes().all(|b| b.is_ascii_hexdigit()),
            "{key}"
        );
        // Every replica (same secret) names it alike; another secret names it otherwise.
        let replica = RedisLog::new(link_at(&test_url(), &prefix), "login:pair", Duration::ZERO);
        assert_eq!(replica.redis_key("victim@example.com 203.0.113.5"), key);
        let other = Arc::new(
            RedisLink::new(parse_url(&test_url()).unwrap(), &prefix, b"another secret").unwrap(),
        );
        let other = RedisLog::new(other, "login:pair", Duration::ZERO);
        assert_ne!(other.redis_key("victim@example.com 203.0.113.5"), key);
    }

    #[tokio::test]
    async fn an_unreachable_redis_fails_fast_and_the_counts_fall_back_to_memory() {
        // Nothing listens on port 1.
        let link = link_at("redis://127.0.0.1:1", &unique_prefix());
        assert!(!link.is_degraded());
        let log = RedisLog::new(link.clone(), "login:pair", Duration::from_secs(60));
        assert!(log
            .push("k", Event::new(Instant::now()), Some(2))
            .await
            .is_err());

        let counts = Counts::new(Some(&link), "login:pair", Duration::from_secs(60));
        let now = Instant::now();
        for expected in 1..=2 {
            let (admission, place) = counts.push("k", Event::new(now), Some(2)).await;
            assert_eq!((admission, place), (Ok(expected), Place::Memory));
        }
        assert!(counts.push("k", Event::new(now), Some(2)).await.0.is_err());
        assert!(link.is_degraded());
        // Redis is left alone for a while rather than tried by every request.
        assert!(!link.should_try());
    }

    #[tokio::test]
    async fn a_slot_dropped_unreported_is_given_back_in_redis_too() {
        let link = link_at(&test_url(), &unique_prefix());
        let counts = Counts::new(Some(&link), "login:pair", Duration::from_secs(60));
        let now = Instant::now();
        let (kept, _) = take(&counts, "k".to_owned(), Event::new(now), Some(2))
            .await
            .unwrap();
        kept.keep();
        // A request cancelled mid-way drops its slot: the place comes back from a task.
        drop(
            take(&counts, "k".to_owned(), Event::new(now), Some(2))
                .await
                .unwrap(),
        );
        let log = RedisLog::new(link, "login:pair", Duration::from_secs(60));
        let mut count = Ok(2);
        for _ in 0..50 {
            count = log.peek("k", now, None).await.unwrap();
            if count == Ok(1) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(count, Ok(1), "the dropped slot's event stayed");
    }

    /// A TCP forwarder to the test Redis that a test can cut and restore, for an outage of a
    /// real Redis.
    struct Outage {
        addr: SocketAddr,
        tasks: JoinSet<()>,
    }

    impl Outage {
        async fn forwarder() -> Self {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let mut outage = Self {
                addr: listener.local_addr().unwrap(),
                tasks: JoinSet::new(),
            };
            outage.serve(listener);
            outage
        }

        fn serve(&mut self, listener: TcpListener) {
            let upstream = parse_url(&test_url()).unwrap().addr().to_string();
            self.tasks.spawn(async move {
                let mut connections = JoinSet::new();
                while let Ok((mut client, _)) = listener.accept().await {
                    let upstream = upstream.clone();
                    connections.spawn(async move {
                        if let Ok(mut server) = tokio::net::TcpStream::connect(&upstream).await {
                            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                        }
                    });
                }
            });
        }

        /// Closes the port and every connection through it.
        async fn cut(&mut self) {
            self.tasks.abort_all();
            while self.tasks.join_next().await.is_some() {}
        }

        async fn restore(&mut self) {
            let listener = TcpListener::bind(self.addr).await.unwrap();
            self.serve(listener);
        }
    }

    #[tokio::test]
    async fn the_counts_go_back_to_redis_when_it_answers_again() {
        let mut outage = Outage::forwarder().await;
        let prefix = unique_prefix();
        let link = link_at(&format!("redis://{}", outage.addr), &prefix);
        let counts = Counts::new(Some(&link), "login:pair", Duration::from_secs(60));
        let now = Instant::now();
        assert_eq!(
            counts.push("k", Event::new(now), None).await,
            (Ok(1), Place::Redis)
        );

        outage.cut().await;
        assert_eq!(
            counts.push("k", Event::new(now), None).await,
            (Ok(1), Place::Memory),
            "Redis is cut off: this replica counts alone"
        );
        assert!(link.is_degraded());

        outage.restore().await;
        // Within the retry interval memory still answers; after it, Redis again.
        assert_eq!(
            counts.push("k", Event::new(now), None).await.1,
            Place::Memory
        );
        tokio::time::sleep(RETRY_INTERVAL).await;
        let mut back = false;
        for _ in 0..20 {
            if counts.push("k", Event::new(now), None).await.1 == Place::Redis {
                back = true;
                break;
            }
            tokio::time::sleep(RETRY_INTERVAL / 4).await;
        }
        assert!(back, "the counts never went back to Redis");
        assert!(!link.is_degraded());
        // The event counted in Redis before the outage is still there.
        let direct = RedisLog::new(
            link_at(&test_url(), &prefix),
            "login:pair",
            Duration::from_secs(60),
        );
        assert_eq!(direct.peek("k", now, None).await.unwrap(), Ok(2));
    }
}
