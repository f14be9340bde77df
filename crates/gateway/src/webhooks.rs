//! Webhooks: an upload may name a `callback_url`; once its job completes or fails, the gateway
//! POSTs the job as JSON, signed with HMAC-SHA256 (`WEBHOOK_SECRET`), and retries with
//! exponential back-off up to `WEBHOOK_MAX_ATTEMPTS` times.
//!
//! Why here and not in the converter (docs/webhooks.md says more): every way a job ends is seen in
//! its document (the converter's completion or failure, the sweeper failing a stuck job, an MP3 of
//! the original converter reconciled); converters may be scaled to zero; and the converter, which
//! feeds hostile media to C libraries, keeps no route to the internet.
//!
//! Pending deliveries live in the job document (`webhook`), so they survive restarts; each attempt
//! is claimed with one `findOneAndUpdate` that also pushes `next_attempt_at` ahead by a lease, so
//! exactly one replica makes it, and a replica that dies mid-attempt leaves it to another.
//!
//! Server-side request forgery: a URL is refused at upload when it is not http(s) or its host is
//! (or resolves to) an address that is not public, unless `WEBHOOK_ALLOWED_HOSTS` permits it. At
//! send time the name is resolved again by [`CheckedResolver`], which hands the HTTP client only
//! addresses that pass the same check, so the connection goes to a checked address (no DNS
//! rebinding); redirects are not followed.

use std::{
    collections::HashSet,
    fmt,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    str::FromStr,
    sync::Arc,
    time::Duration,
};

use axum::extract::multipart::Field;
use common::jobs::Job;
use hmac::{Hmac, Mac};
use ipnet::IpNet;
use mongodb::bson::DateTime;
use serde::Serialize;
use sha2::Sha256;
use url::{Host, Url};

use crate::{
    error::{ApiError, ApiResult},
    AppState,
};

/// Header with the Unix time (seconds) the signature covers.
pub const TIMESTAMP_HEADER: &str = "x-vidconv-timestamp";
/// Header with `sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">`.
pub const SIGNATURE_HEADER: &str = "x-vidconv-signature";
/// Header with the job's `video_fid`, the same on every attempt (receivers de-duplicate on it).
pub const DELIVERY_HEADER: &str = "x-vidconv-delivery";
/// Header with the attempt's number, from 1.
pub const ATTEMPT_HEADER: &str = "x-vidconv-attempt";

/// Default attempts before a delivery is given up (`WEBHOOK_MAX_ATTEMPTS`).
pub const DEFAULT_MAX_ATTEMPTS: u32 = 5;
/// Default wait after the first failed attempt, doubled after each further one
/// (`WEBHOOK_RETRY_BASE_MS`): 15 s, 30 s, 1 min, 2 min: five attempts over about four minutes.
pub const DEFAULT_RETRY_BASE_MS: u64 = 15_000;
/// Longest wait between two attempts.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(3600);
/// Longest accepted `callback_url`, in bytes.
pub const MAX_URL_BYTES: usize = 2048;
/// How long one attempt may take, connection included.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an attempt stays claimed: longer than [`ATTEMPT_TIMEOUT`] and the bookkeeping after it.
const LEASE: Duration = Duration::from_secs(60);
/// Longest wait for the name of a callback to resolve, at upload and at send time.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest pause of the dispatcher between two looks for due deliveries.
const MAX_POLL_INTERVAL: Duration = Duration::from_secs(1);
/// Deliveries made at once by one replica.
const CONCURRENT_DELIVERIES: usize = 8;
/// The most of a receiver's answer kept in `last_error`.
const MAX_ERROR_CHARS: usize = 300;

/// The webhook settings.
#[derive(Clone, Debug)]
pub struct WebhookConfig {
    /// `WEBHOOK_SECRET`: the HMAC key; webhooks are off while it is unset.
    pub secret: Option<String>,
    /// `WEBHOOK_ALLOWED_HOSTS`: hosts and address ranges that may be called although not public.
    pub allowed: AllowList,
    /// `WEBHOOK_MAX_ATTEMPTS`.
    pub max_attempts: u32,
    /// `WEBHOOK_RETRY_BASE_MS`: the wait after the first failure, doubled after each further one.
    pub retry_base: Duration,
}

impl WebhookConfig {
    /// The wait after failed attempt number `attempt` (from 1): `retry_base * 2^(attempt-1)`,
    /// at most an hour.
    pub fn retry_delay(&self, attempt: u32) -> Duration {
        common::retry::doubled(self.retry_base, MAX_RETRY_DELAY, attempt)
    }
}

/// Hosts (by name) and address ranges a callback may reach although they are not public:
/// `WEBHOOK_ALLOWED_HOSTS`, comma-separated, e.g. `hooks.internal, 10.20.0.0/16, 127.0.0.1`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AllowList {
    hosts: HashSet<String>,
    nets: Vec<IpNet>,
}

impl AllowList {
    /// Whether nothing is allowed beyond public addresses.
    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty() && self.nets.is_empty()
    }

    /// Whether `host` (a name as in the URL) connecting to `ip` is allowed.
    pub fn permits(&self, host: &str, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        is_public(ip)
            || self.hosts.contains(&normal_host(host))
            || self.nets.iter().any(|net| net.contains(&ip))
    }
}

impl FromStr for AllowList {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, String> {
        let mut list = AllowList::default();
        for entry in raw.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            if let Ok(net) = entry.parse::<IpNet>() {
                list.nets.push(net);
            } else if let Ok(ip) = entry.trim_matches(['[', ']']).parse::<IpAddr>() {
                list.nets.push(IpNet::from(ip));
            } else if entry
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
                && entry.chars().any(|c| c.is_ascii_alphanumeric())
            {
                list.hosts.insert(normal_host(entry));
            } else {
                return Err(format!(
                    "{entry:?} is neither a host name, an address nor a CIDR range"
                ));
            }
        }
        Ok(list)
    }
}

/// Lowercase, without a trailing dot.
fn normal_host(host: &str) -> String {
    host.trim_end_matches('.').to_ascii_lowercase()
}

/// An IPv4 address written as IPv6 (`::ffff:a.b.c.d`) is that IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

/// Whether `ip` is a public unicast address: not private, loopback, link-local, unique-local,
/// shared (CGNAT), multicast, documentation, benchmarking, reserved or unspecified. IPv6 forms
/// that carry an IPv4 address (mapped, NAT64, 6to4) are judged by that address.
pub fn is_public(ip: IpAddr) -> bool {
    match canonical(ip) {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    const NOT_PUBLIC: [(u32, u8); 16] = [
        (0x0000_0000, 8),  // 0.0.0.0/8 "this network"
        (0x0A00_0000, 8),  // 10.0.0.0/8 private
        (0x6440_0000, 10), // 100.64.0.0/10 shared address space (CGNAT)
        (0x7F00_0000, 8),  // 127.0.0.0/8 loopback
        (0xA9FE_0000, 16), // 169.254.0.0/16 link-local (cloud metadata services)
        (0xAC10_0000, 12), // 172.16.0.0/12 private
        (0xC000_0000, 24), // 192.0.0.0/24 IETF protocol assignments
        (0xC000_0200, 24), // 192.0.2.0/24 documentation
        (0xC058_6300, 24), // 192.88.99.0/24 6to4 relay anycast
        (0xC0A8_0000, 16), // 192.168.0.0/16 private
        (0xC612_0000, 15), // 198.18.0.0/15 benchmarking
        (0xC633_6400, 24), // 198.51.100.0/24 documentation
        (0xCB00_7100, 24), // 203.0.113.0/24 documentation
        (0xE000_0000, 4),  // 224.0.0.0/4 multicast
        (0xF000_0000, 4),  // 240.0.0.0/4 reserved, and the broadcast address
        (0xFFFF_FFFF, 32), // 255.255.255.255 broadcast
    ];
    let bits = u32::from(ip);
    !NOT_PUBLIC.iter().any(|&(net, len)| {
        let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
        bits & mask == net & mask
    })
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    let embedded_v4 = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    // NAT64 (64:ff9b::/96) and 6to4 (2002::/16) reach the IPv4 address they carry.
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return is_public_v4(embedded_v4(s[6], s[7]));
    }
    if s[0] == 0x2002 {
        return is_public_v4(embedded_v4(s[1], s[2]));
    }
    // Only global unicast (2000::/3) is public; that excludes ::, ::1, fc00::/7 (unique local),
    // fe80::/10 (link-local), ff00::/8 (multicast), 64:ff9b:1::/48 (local NAT64), 100::/64.
    if s[0] & 0xe000 != 0x2000 {
        return false;
    }
    let in_net = |prefix: [u16; 2], len: u32| {
        let value = (u32::from(s[0]) << 16) | u32::from(s[1]);
        let want = (u32::from(prefix[0]) << 16) | u32::from(prefix[1]);
        let mask = u32::MAX << (32 - len);
        value & mask == want & mask
    };
    // 2001::/23 IETF protocol assignments (Teredo 2001::/32 among them), 2001:db8::/32 and
    // 3fff::/20 documentation.
    !(in_net([0x2001, 0], 23) || in_net([0x2001, 0x0db8], 32) || in_net([0x3fff, 0], 20))
}

/// Why a callback URL cannot be used: a sentence for the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused(pub String);

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

/// Parses a callback URL: absolute, http or https, with a host, no credentials, not too long.
pub fn parse_url(raw: &str) -> Result<Url, Refused> {
    let raw = raw.trim();
    if raw.len() > MAX_URL_BYTES {
        return Err(Refused(format!(
            "callback_url is longer than {MAX_URL_BYTES} bytes"
        )));
    }
    let url = Url::parse(raw)
        .map_err(|e| Refused(format!("callback_url {raw:?} is not a valid URL ({e})")))?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(Refused(format!(
            "callback_url must be an http:// or https:// URL, not {}:",
            url.scheme()
        )));
    }
    if url.host().is_none() {
        return Err(Refused("callback_url has no host".into()));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Refused(
            "callback_url must not contain a user name or password; check the signature \
             header instead"
                .into(),
        ));
    }
    Ok(url)
}

/// The sentence for an address the callback may not reach.
fn not_public(host: &str, ip: IpAddr) -> Refused {
    Refused(format!(
        "callback_url host {host} is {ip}, a private, loopback, link-local or otherwise \
         non-public address; such callbacks are refused unless WEBHOOK_ALLOWED_HOSTS permits them"
    ))
}

/// The addresses `url`'s host stands for, each checked against `allowed`: all must pass.
pub async fn resolve_checked(url: &Url, allowed: &AllowList) -> Result<Vec<IpAddr>, Refused> {
    let host_text = url.host_str().unwrap_or_default().to_owned();
    let ips = match url.host() {
        Some(Host::Ipv4(ip)) => vec![IpAddr::V4(ip)],
        Some(Host::Ipv6(ip)) => vec![IpAddr::V6(ip)],
        Some(Host::Domain(name)) => resolve(name).await?,
        None => return Err(Refused("callback_url has no host".into())),
    };
    check_all(&host_text, &ips, allowed)?;
    Ok(ips)
}

fn check_all(host: &str, ips: &[IpAddr], allowed: &AllowList) -> Result<(), Refused> {
    match ips.iter().find(|ip| !allowed.permits(host, **ip)) {
        Some(ip) => Err(not_public(host, *ip)),
        None => Ok(()),
    }
}

/// The system resolver's addresses for `name`.
async fn resolve(name: &str) -> Result<Vec<IpAddr>, Refused> {
    let lookup = tokio::net::lookup_host((name.trim_end_matches('.'), 0u16));
    let addrs = tokio::time::timeout(RESOLVE_TIMEOUT, lookup)
        .await
        .map_err(|_| Refused(format!("callback_url host {name} did not resolve in time")))?
        .map_err(|_| Refused(format!("callback_url host {name} does not resolve")))?;
    let ips: Vec<IpAddr> = addrs.map(|a| a.ip()).collect();
    if ips.is_empty() {
        return Err(Refused(format!("callback_url host {name} has no address")));
    }
    Ok(ips)
}

/// Reads the multipart field `callback_url` and checks it (resolving its host): the URL to store.
/// 400 with a sentence when webhooks are off or the URL cannot be used.
pub async fn callback_field(state: &AppState, mut field: Field<'_>) -> ApiResult<String> {
    let mut value = Vec::new();
    while let Some(bytes) = field
        .chunk()
        .await
        .map_err(|e| ApiError::BadRequest(format!("malformed multipart body: {}", e.body_text())))?
    {
        value.extend_from_slice(&bytes);
        if value.len() > MAX_URL_BYTES {
            return Err(ApiError::BadRequest(format!(
                "callback_url is longer than {MAX_URL_BYTES} bytes"
            )));
        }
    }
    let raw = String::from_utf8(value)
        .map_err(|_| ApiError::BadRequest("callback_url is not UTF-8 text".into()))?;
    check_callback(&state.config.webhooks, &raw).await
}

/// Checks a callback URL as given at upload; the URL to store.
pub async fn check_callback(config: &WebhookConfig, raw: &str) -> ApiResult<String> {
    if config.secret.is_none() {
        return Err(ApiError::BadRequest(
            "webhooks are off on this server (WEBHOOK_SECRET is not set): send the upload \
             without callback_url"
                .into(),
        ));
    }
    let url = parse_url(raw).map_err(|r| ApiError::BadRequest(r.0))?;
    resolve_checked(&url, &config.allowed)
        .await
        .map_err(|r| ApiError::BadRequest(r.0))?;
    Ok(url.to_string())
}

/// `sha256=<hex>`: HMAC-SHA256 over `<timestamp>.<body>` keyed by `secret`.
#[allow(
    clippy::expect_used,
    reason = "HMAC takes keys of any length: `new_from_slice` cannot fail for it"
)]
pub fn signature(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("HMAC accepts any key");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// What a receiver gets: the job as `/status` describes it, with its file name and times.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct WebhookPayload {
    /// `job.completed` or `job.failed`.
    #[schema(example = "job.completed")]
    pub event: &'static str,
    /// The upload's id, as `POST /upload` answered it.
    pub video_fid: String,
    /// `completed` or `failed`, as `/status` says.
    pub status: crate::job_status::Status,
    /// The MP3 to download, when completed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mp3_fid: Option<String>,
    /// Why it failed, when failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The uploaded file's name.
    pub filename: String,
    /// Duration of the source in seconds, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_secs: Option<f64>,
    /// When it was uploaded (RFC 3339).
    pub created_at: String,
    /// When it ended (RFC 3339).
    pub finished_at: String,
}

impl WebhookPayload {
    /// The payload of a final job.
    pub fn of_job(job: &Job) -> Self {
        let status = crate::job_status::StatusBody::of_job(job);
        let completed = status.status == crate::job_status::Status::Completed;
        Self {
            event: if completed {
                "job.completed"
            } else {
                "job.failed"
            },
            video_fid: job.id.to_hex(),
            status: status.status,
            mp3_fid: status.mp3_fid,
            error: status.error,
            filename: job.filename.clone(),
            duration_secs: job.duration_secs,
            created_at: rfc3339(job.created_at),
            finished_at: rfc3339(job.updated_at),
        }
    }
}

fn rfc3339(t: DateTime) -> String {
    t.try_to_rfc3339_string()
        .unwrap_or_else(|_| t.timestamp_millis().to_string())
}

/// Resolves names for the webhook client and passes on only addresses the callback may reach,
/// so the connection is made to an address checked now (not at upload: DNS may have changed).
#[derive(Clone)]
pub struct CheckedResolver {
    allowed: AllowList,
}

impl reqwest::dns::Resolve for CheckedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allowed = self.allowed.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let ips = resolve(&host).await?;
            check_all(&host, &ips, &allowed)?;
            let addrs: reqwest::dns::Addrs =
                Box::new(ips.into_iter().map(|ip| SocketAddr::new(ip, 0)));
            Ok(addrs)
        })
    }
}

/// The HTTP client of the deliveries: checked resolution, no redirects, no proxy, bounded time.
pub fn client(allowed: &AllowList) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .dns_resolver(Arc::new(CheckedResolver {
            allowed: allowed.clone(),
        }))
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .connect_timeout(RESOLVE_TIMEOUT)
        .timeout(ATTEMPT_TIMEOUT)
        .user_agent(concat!("vidconv-webhooks/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// How one attempt ended.
#[derive(Debug)]
enum Outcome {
    Delivered(u16),
    Failed(String),
}

/// Makes due deliveries until the gateway stops. Without `WEBHOOK_SECRET` it returns at once.
pub async fn run(state: AppState) {
    let config = &state.config.webhooks;
    let Some(secret) = config.secret.clone() else {
        return;
    };
    let client = match client(&config.allowed) {
        Ok(client) => client,
        Err(e) => {
            tracing::error!(error = %e, "cannot build the webhook client; no webhook is sent");
            return;
        }
    };
    let interval = config.retry_base.min(MAX_POLL_INTERVAL);
    loop {
        match deliver_due(&state, &client, secret.as_bytes()).await {
            // A full batch: more may be due at once.
            Ok(n) if n == CONCURRENT_DELIVERIES => continue,
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "cannot look for due webhooks; retrying"),
        }
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            () = state.shutdown.cancelled() => return,
        }
    }
}

/// Claims up to a batch of due deliveries and makes them concurrently; how many were claimed.
pub async fn deliver_due(
    state: &AppState,
    client: &reqwest::Client,
    secret: &[u8],
) -> crate::storage::StorageResult<usize> {
    let lease = DateTime::from_millis(
        DateTime::now()
            .timestamp_millis()
            .saturating_add(LEASE.as_millis() as i64),
    );
    let mut claimed = Vec::new();
    while claimed.len() < CONCURRENT_DELIVERIES {
        match state.storage.claim_webhook(DateTime::now(), lease).await? {
            Some(job) => claimed.push(job),
            None => break,
        }
    }
    let n = claimed.len();
    futures::future::join_all(
        claimed
            .into_iter()
            .map(|job| deliver_one(state, client, secret, job)),
    )
    .await;
    Ok(n)
}

/// One attempt for a claimed job, and its bookkeeping.
async fn deliver_one(state: &AppState, client: &reqwest::Client, secret: &[u8], job: Job) {
    let Some(hook) = job.webhook.as_ref() else {
        return;
    };
    let attempt = hook.attempts;
    let outcome = attempt_once(state, client, secret, &job, &hook.url).await;
    let config = &state.config.webhooks;
    let attempt_no = u32::try_from(attempt).unwrap_or(0);
    let result = match &outcome {
        Outcome::Delivered(status) => {
            metrics::counter!("gateway_webhook_attempts_total", "outcome" => "delivered")
                .increment(1);
            tracing::info!(video_fid = %job.id, attempt, status, "webhook delivered");
            state.storage.webhook_delivered(job.id, attempt).await
        }
        Outcome::Failed(reason) if attempt_no >= config.max_attempts => {
            metrics::counter!("gateway_webhook_attempts_total", "outcome" => "gave_up")
                .increment(1);
            tracing::warn!(video_fid = %job.id, attempt, error = %reason,
                "webhook given up after the last attempt");
            state
                .storage
                .webhook_failed(job.id, attempt, reason, None)
                .await
        }
        Outcome::Failed(reason) => {
            let delay = config.retry_delay(attempt_no);
            metrics::counter!("gateway_webhook_attempts_total", "outcome" => "retry").increment(1);
            tracing::info!(video_fid = %job.id, attempt, error = %reason, retry_in = ?delay,
                "webhook attempt failed; will retry");
            let next = DateTime::from_millis(
                DateTime::now()
                    .timestamp_millis()
                    .saturating_add(delay.as_millis() as i64),
            );
            state
                .storage
                .webhook_failed(job.id, attempt, reason, Some(next))
                .await
        }
    };
    if let Err(e) = result {
        // The lease runs out and the attempt is made again: at-least-once delivery.
        tracing::warn!(error = %e, video_fid = %job.id, "cannot record a webhook attempt");
    }
}

async fn attempt_once(
    state: &AppState,
    client: &reqwest::Client,
    secret: &[u8],
    job: &Job,
    raw_url: &str,
) -> Outcome {
    let url = match parse_url(raw_url) {
        Ok(url) => url,
        Err(refused) => return Outcome::Failed(refused.0),
    };
    // Names are checked by the client's resolver; literal addresses never reach it.
    let literal = match url.host() {
        Some(Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
        Some(Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
        _ => None,
    };
    if let Some(ip) = literal {
        if let Err(refused) = check_all(
            url.host_str().unwrap_or_default(),
            &[ip],
            &state.config.webhooks.allowed,
        ) {
            return Outcome::Failed(refused.0);
        }
    }
    debug_assert!(job.state.is_final());
    let body = match serde_json::to_vec(&WebhookPayload::of_job(job)) {
        Ok(body) => body,
        Err(e) => return Outcome::Failed(format!("cannot encode the payload: {e}")),
    };
    let timestamp = DateTime::now().timestamp_millis() / 1000;
    let answer = client
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(TIMESTAMP_HEADER, timestamp.to_string())
        .header(SIGNATURE_HEADER, signature(secret, timestamp, &body))
        .header(DELIVERY_HEADER, job.id.to_hex())
        .header(
            ATTEMPT_HEADER,
            job.webhook.as_ref().map_or(0, |h| h.attempts).to_string(),
        )
        .body(body)
        .send()
        .await;
    match answer {
        Ok(response) if response.status().is_success() => {
            Outcome::Delivered(response.status().as_u16())
        }
        Ok(response) => {
            let status = response.status();
            let text: String = response
                .text()
                .await
                .unwrap_or_default()
                .chars()
                .take(MAX_ERROR_CHARS)
                .collect();
            Outcome::Failed(format!("the receiver answered {status}: {}", text.trim()))
        }
        Err(e) => Outcome::Failed(describe(&e)),
    }
}

/// A reqwest error with its causes (the resolver's refusal is one), in one line.
fn describe(e: &reqwest::Error) -> String {
    let mut text = if e.is_timeout() {
        "the receiver did not answer in time".to_owned()
    } else if e.is_connect() {
        "cannot connect to the receiver".to_owned()
    } else {
        "the request failed".to_owned()
    };
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        if let Some(refused) = cause.downcast_ref::<Refused>() {
            return refused.0.clone();
        }
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text.chars().take(MAX_ERROR_CHARS).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn public_and_not_public_addresses() {
        for public in [
            "8.8.8.8",
            "1.1.1.1",
            "93.184.215.14",
            "172.32.0.1",
            "100.128.0.1",
            "2606:4700::1111",
            "2a00:1450:4001::200e",
            "::ffff:8.8.8.8",
            "2002:0808:0808::1",
        ] {
            assert!(is_public(ip(public)), "{public} is public");
        }
        for private in [
            "127.0.0.1",
            "127.255.0.9",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "239.255.255.250",
            "255.255.255.255",
            "240.0.0.1",
            "192.0.2.1",
            "198.18.0.1",
            "::",
            "::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "2002:7f00:0001::1",
            "2001:db8::1",
            "2001:0:4136:e378::1",
            "fec0::1",
            "100::1",
        ] {
            assert!(!is_public(ip(private)), "{private} is not public");
        }
    }

    #[test]
    fn the_allow_list_takes_names_addresses_and_ranges() {
        let list: AllowList = "hooks.internal, 10.20.0.0/16, 127.0.0.1, [::1]"
            .parse()
            .unwrap();
        assert!(list.permits("hooks.internal", ip("10.9.9.9")));
        assert!(list.permits("HOOKS.internal.", ip("192.168.0.1")));
        assert!(list.permits("x", ip("10.20.3.4")));
        assert!(!list.permits("x", ip("10.21.3.4")));
        assert!(list.permits("x", ip("127.0.0.1")));
        assert!(list.permits("x", ip("::ffff:127.0.0.1")));
        assert!(!list.permits("x", ip("127.0.0.2")));
        assert!(list.permits("x", ip("::1")));
        assert!(
            list.permits("anything", ip("8.8.8.8")),
            "public is always fine"
        );
        assert!("a b".parse::<AllowList>().is_err());
        assert!("10.0.0.0/33".parse::<AllowList>().is_err());
        assert!("".parse::<AllowList>().unwrap().is_empty());
    }

    #[test]
    fn urls_are_http_with_a_host_and_no_credentials() {
        assert!(parse_url("https://example.com/hook?x=1").is_ok());
        assert!(parse_url(" http://example.com:8080/ ").is_ok());
        for bad in [
            "ftp://example.com/",
            "file:///etc/passwd",
            "gopher://example.com/",
            "example.com/hook",
            "https://",
            "http://user:pw@example.com/",
            "javascript:alert(1)",
        ] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
        assert!(parse_url(&format!("https://e.com/{}", "a".repeat(MAX_URL_BYTES))).is_err());
    }

    #[tokio::test]
    async fn literal_and_loopback_names_are_refused_without_the_allow_list() {
        let none = AllowList::default();
        for url in [
            "http://127.0.0.1/",
            "http://10.0.0.5:8080/x",
            "http://169.254.169.254/latest/meta-data/",
            "http://[::1]:9000/",
            "http://[::ffff:127.0.0.1]/",
            "http://2130706433/",
            "http://0x7f.1/",
            "http://localhost:8080/",
            "http://LOCALHOST./",
        ] {
            let parsed = parse_url(url).unwrap();
            let refused = resolve_checked(&parsed, &none).await.unwrap_err();
            assert!(
                refused.0.contains("WEBHOOK_ALLOWED_HOSTS"),
                "{url}: {refused}"
            );
        }
        let allowed: AllowList = "127.0.0.0/8, ::1".parse().unwrap();
        for url in [
            "http://127.0.0.1:1/",
            "http://[::1]:1/",
            "http://localhost:1/",
        ] {
            let parsed = parse_url(url).unwrap();
            assert!(resolve_checked(&parsed, &allowed).await.is_ok(), "{url}");
        }
    }

    #[test]
    fn signature_matches_a_known_vector() {
        // printf '1700000000.{"a":1}' | openssl dgst -sha256 -hmac key
        assert_eq!(
            signature(b"key", 1_700_000_000, br#"{"a":1}"#),
            "sha256=a438e398bfafc57e4396bb7fc2304422f0f768e965d073ca313cb52e22e6ad03"
        );
    }

    #[test]
    fn retry_delays_double_up_to_an_hour() {
        let config = WebhookConfig {
            secret: None,
            allowed: AllowList::default(),
            max_attempts: 5,
            retry_base: Duration::from_secs(15),
        };
        let delays: Vec<u64> = (1..=5).map(|n| config.retry_delay(n).as_secs()).collect();
        assert_eq!(delays, [15, 30, 60, 120, 240]);
        assert_eq!(config.retry_delay(40), MAX_RETRY_DELAY);
    }
}
