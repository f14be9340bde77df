//! The client's address, for per-address login limiting.
//!
//! Behind a proxy (the gateway, nginx) the connection's peer is the proxy, so every user would
//! share one counter. `X-Forwarded-For` names the real client, but a client can send that header
//! itself, so it is trusted only as far as configured: with `TRUSTED_PROXY_HOPS = n`, the n
//! proxies in front of auth each append the address they saw, and the client is the n-th entry
//! from the right. Entries further left were written by the client and are ignored.

use std::net::{IpAddr, SocketAddr};

use axum::http::HeaderMap;

/// The address to count failed logins against.
pub fn client_ip(headers: &HeaderMap, peer: SocketAddr, trusted_proxy_hops: usize) -> IpAddr {
    if trusted_proxy_hops == 0 {
        return peer.ip();
    }
    // Several headers are one list, in order.
    let entries: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .collect();
    if entries.is_empty() {
        return peer.ip();
    }
    // Fewer entries than proxies: some proxy did not append; the leftmost is still one a
    // trusted proxy wrote.
    let index = entries.len().saturating_sub(trusted_proxy_hops);
    parse_entry(entries[index]).unwrap_or_else(|| peer.ip())
}

/// An address as proxies write it: `1.2.3.4`, `1.2.3.4:5678`, `2001:db8::1` or `[2001:db8::1]:80`.
fn parse_entry(entry: &str) -> Option<IpAddr> {
    entry
        .parse::<IpAddr>()
        .ok()
        .or_else(|| entry.parse::<SocketAddr>().ok().map(|s| s.ip()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn peer() -> SocketAddr {
        "10.0.0.9:4000".parse().unwrap()
    }

    fn xff(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append("x-forwarded-for", HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn untrusted_header_is_ignored() {
        let ip = client_ip(&xff(&["1.1.1.1"]), peer(), 0);
        assert_eq!(ip, peer().ip());
    }

    #[test]
    fn nth_from_the_right() {
        // client spoofed 6.6.6.6; nginx appended the real client; the gateway appended nginx.
        let h = xff(&["6.6.6.6, 203.0.113.7, 10.0.0.2"]);
        assert_eq!(
            client_ip(&h, peer(), 2),
            "203.0.113.7".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            client_ip(&h, peer(), 1),
            "10.0.0.2".parse::<IpAddr>().unwrap()
        );
        let split = xff(&["6.6.6.6", "203.0.113.7"]);
        assert_eq!(
            client_ip(&split, peer(), 1),
            "203.0.113.7".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn short_or_odd_headers() {
        assert_eq!(
            client_ip(&xff(&["203.0.113.7"]), peer(), 3),
            "203.0.113.7".parse::<IpAddr>().unwrap()
        );
        assert_eq!(client_ip(&HeaderMap::new(), peer(), 1), peer().ip());
        assert_eq!(client_ip(&xff(&["garbage"]), peer(), 1), peer().ip());
        assert_eq!(
            client_ip(&xff(&["[2001:db8::1]:443"]), peer(), 1),
            "2001:db8::1".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            client_ip(&xff(&["198.51.100.1:1234"]), peer(), 1),
            "198.51.100.1".parse::<IpAddr>().unwrap()
        );
    }
}
