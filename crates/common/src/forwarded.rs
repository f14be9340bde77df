//! The client's address behind proxies, from `X-Forwarded-For`, believed only as far as the
//! configuration trusts the proxies that wrote it.
//!
//! Each proxy appends the address it saw, so the right-most entries are the most trustworthy and
//! anything left of the first entry written by an untrusted party is whatever the client wanted.
//! Two ways of saying which entries to believe:
//!
//! - [`client_ip_by_hops`] (auth, `TRUSTED_PROXY_HOPS`): exactly `n` proxies sit in front, and
//!   the client is the `n`-th entry from the right;
//! - [`client_ip_by_trusted`] (gateway, `TRUSTED_PROXIES`): the header counts only when the
//!   connection comes from a trusted proxy, and the client is the right-most entry that is not
//!   itself a trusted proxy.

use std::{
    fmt,
    net::{IpAddr, SocketAddr},
    str::FromStr,
};

use axum::http::HeaderMap;
use ipnet::IpNet;

/// The header proxies append the client's address to.
pub const X_FORWARDED_FOR: &str = "x-forwarded-for";

/// The address `n` proxies in front of us report: the `n`-th `X-Forwarded-For` entry from the
/// right; the connection's `peer` when `n` is 0, the header is absent or the entry is not an
/// address. With fewer entries than proxies (some proxy did not append), the left-most one.
pub fn client_ip_by_hops(
    headers: &HeaderMap,
    peer: SocketAddr,
    trusted_proxy_hops: usize,
) -> IpAddr {
    let peer_ip = canonical(peer.ip());
    if trusted_proxy_hops == 0 {
        return peer_ip;
    }
    let entries = forwarded_for(headers);
    if entries.is_empty() {
        return peer_ip;
    }
    let index = entries.len().saturating_sub(trusted_proxy_hops);
    parse_entry(entries[index]).unwrap_or(peer_ip)
}

/// The client's address when `peer` is the connection's other end: `peer` itself unless it is a
/// trusted proxy; otherwise the right-most `X-Forwarded-For` entry that is not a trusted proxy
/// (the left-most if all are). An entry that is not an address ends the walk at the hop that
/// wrote it: that hop is the last address known.
pub fn client_ip_by_trusted(
    headers: &HeaderMap,
    peer: SocketAddr,
    trusted: &TrustedProxies,
) -> IpAddr {
    let mut client = canonical(peer.ip());
    if !trusted.contains(client) {
        return client;
    }
    for entry in forwarded_for(headers).into_iter().rev() {
        let Some(ip) = parse_entry(entry) else {
            break;
        };
        client = ip;
        if !trusted.contains(ip) {
            break;
        }
    }
    client
}

/// The `X-Forwarded-For` entries in order; several headers are one list.
fn forwarded_for(headers: &HeaderMap) -> Vec<&str> {
    headers
        .get_all(X_FORWARDED_FOR)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .collect()
}

/// An address as proxies write it: `1.2.3.4`, `1.2.3.4:5678`, `2001:db8::1` or `[2001:db8::1]:80`.
fn parse_entry(entry: &str) -> Option<IpAddr> {
    entry
        .parse::<IpAddr>()
        .ok()
        .or_else(|| entry.parse::<SocketAddr>().ok().map(|s| s.ip()))
        .map(canonical)
}

/// An IPv4 address seen over IPv6 (`::ffff:1.2.3.4`) as the IPv4 address, so one client has
/// one address whichever socket it came through.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The proxies whose `X-Forwarded-For` is believed: comma-separated CIDRs or addresses
/// (`10.0.0.0/8, 192.168.1.7`); empty trusts nobody.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Whether `ip` is one of the trusted proxies.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// Whether no proxy is trusted.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl FromStr for TrustedProxies {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map(|e| {
                e.parse::<IpNet>()
                    .or_else(|_| e.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| format!("{e:?} is not a CIDR (10.0.0.0/8) or an address"))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Self)
    }
}

impl fmt::Display for TrustedProxies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let nets: Vec<String> = self.0.iter().map(IpNet::to_string).collect();
        f.write_str(&nets.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn peer() -> SocketAddr {
        "10.0.0.9:4000".parse().unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn xff(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(X_FORWARDED_FOR, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn hops_zero_ignores_the_header() {
        assert_eq!(
            client_ip_by_hops(&xff(&["1.1.1.1"]), peer(), 0),
            peer().ip()
        );
    }

    #[test]
    fn hops_take_the_nth_from_the_right() {
        // client spoofed 6.6.6.6; nginx appended the real client; the gateway appended nginx.
        let h = xff(&["6.6.6.6, 203.0.113.7, 10.0.0.2"]);
        assert_eq!(client_ip_by_hops(&h, peer(), 2), ip("203.0.113.7"));
        assert_eq!(client_ip_by_hops(&h, peer(), 1), ip("10.0.0.2"));
        let split = xff(&["6.6.6.6", "203.0.113.7"]);
        assert_eq!(client_ip_by_hops(&split, peer(), 1), ip("203.0.113.7"));
    }

    #[test]
    fn hops_with_short_or_odd_headers() {
        assert_eq!(
            client_ip_by_hops(&xff(&["203.0.113.7"]), peer(), 3),
            ip("203.0.113.7")
        );
        assert_eq!(client_ip_by_hops(&HeaderMap::new(), peer(), 1), peer().ip());
        assert_eq!(
            client_ip_by_hops(&xff(&["garbage"]), peer(), 1),
            peer().ip()
        );
        assert_eq!(
            client_ip_by_hops(&xff(&["[2001:db8::1]:443"]), peer(), 1),
            ip("2001:db8::1")
        );
        assert_eq!(
            client_ip_by_hops(&xff(&["198.51.100.1:1234"]), peer(), 1),
            ip("198.51.100.1")
        );
        assert_eq!(
            client_ip_by_hops(&xff(&["::ffff:198.51.100.1"]), peer(), 1),
            ip("198.51.100.1")
        );
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_says() {
        let trusted: TrustedProxies = "10.1.0.0/16".parse().unwrap();
        let h = xff(&["203.0.113.7"]);
        assert_eq!(client_ip_by_trusted(&h, peer(), &trusted), peer().ip());
        assert_eq!(
            client_ip_by_trusted(&h, peer(), &TrustedProxies::default()),
            peer().ip()
        );
    }

    #[test]
    fn behind_trusted_proxies_the_rightmost_untrusted_entry_is_the_client() {
        let trusted: TrustedProxies = "10.0.0.0/24, 192.168.5.5".parse().unwrap();
        // The client wrote 6.6.6.6, an outer trusted proxy saw 203.0.113.7, 192.168.5.5 passed
        // it on.
        let h = xff(&["6.6.6.6, 203.0.113.7, 192.168.5.5"]);
        assert_eq!(
            client_ip_by_trusted(&h, peer(), &trusted),
            ip("203.0.113.7")
        );
        // No header: the trusted proxy itself is the last address known.
        assert_eq!(
            client_ip_by_trusted(&HeaderMap::new(), peer(), &trusted),
            peer().ip()
        );
        // Every entry trusted: the left-most.
        let h = xff(&["10.0.0.3", "192.168.5.5"]);
        assert_eq!(client_ip_by_trusted(&h, peer(), &trusted), ip("10.0.0.3"));
        // Garbage stops the walk at the hop that wrote it.
        let h = xff(&["6.6.6.6, garbage, 192.168.5.5"]);
        assert_eq!(
            client_ip_by_trusted(&h, peer(), &trusted),
            ip("192.168.5.5")
        );
    }

    #[test]
    fn trusted_proxies_parse_cidrs_and_addresses() {
        let t: TrustedProxies = " 10.0.0.0/8 ,127.0.0.1, ::1 ,".parse().unwrap();
        assert!(t.contains(ip("10.200.3.4")));
        assert!(t.contains(ip("127.0.0.1")));
        assert!(t.contains(ip("::ffff:127.0.0.1")));
        assert!(t.contains(ip("::1")));
        assert!(!t.contains(ip("11.0.0.1")));
        assert_eq!(t.to_string(), "10.0.0.0/8,127.0.0.1/32,::1/128");
        assert!("".parse::<TrustedProxies>().unwrap().is_empty());
        let err = "10.0.0.0/8, nginx".parse::<TrustedProxies>().unwrap_err();
        assert!(err.contains("nginx"), "{err}");
        assert!("10.0.0.0/33".parse::<TrustedProxies>().is_err());
    }
}
