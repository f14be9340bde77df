//! One id per upload across services: the gateway's request id and a W3C `traceparent`, carried
//! from the HTTP request into the AMQP message's headers and onto every converter log line of
//! the job.

use http::HeaderMap;

/// AMQP header (and HTTP header) carrying the gateway's request id.
pub const REQUEST_ID_HEADER: &str = crate::http::REQUEST_ID_HEADER;
/// W3C Trace Context header: `00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>`.
pub const TRACEPARENT_HEADER: &str = "traceparent";

/// The ids an upload carries from the gateway to the converter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceContext {
    /// The request id the gateway answered the upload with (`x-request-id`).
    pub request_id: String,
    /// A valid W3C `traceparent` whose parent id is the gateway's span.
    pub traceparent: String,
}

impl TraceContext {
    /// From an HTTP request's headers: its request id, and the client's trace continued with a
    /// new parent id when it sent a valid `traceparent`, else a new trace (whose id is the
    /// request id's hex digits when it is a UUID, so either finds the other).
    pub fn from_http(headers: &HeaderMap) -> TraceContext {
        let request_id = headers
            .get(REQUEST_ID_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let incoming = headers
            .get(TRACEPARENT_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_traceparent);
        let (trace_id, flags) = match incoming {
            Some((trace_id, flags)) => (trace_id.to_owned(), flags.to_owned()),
            None => {
                let hex: String = request_id
                    .chars()
                    .filter(|c| *c != '-')
                    .collect::<String>()
                    .to_ascii_lowercase();
                let trace_id = if is_hex_id(&hex, 32) {
                    hex
                } else {
                    uuid::Uuid::new_v4().simple().to_string()
                };
                (trace_id, "01".to_owned())
            }
        };
        let parent_id = uuid::Uuid::new_v4().simple().to_string()[..16].to_owned();
        TraceContext {
            request_id,
            traceparent: format!("00-{trace_id}-{parent_id}-{flags}"),
        }
    }

    /// A new request id and trace, for a message no request caused (the stuck-job sweeper).
    pub fn generated() -> TraceContext {
        TraceContext::from_http(&HeaderMap::new())
    }

    /// The trace id of [`Self::traceparent`] (32 hex digits).
    pub fn trace_id(&self) -> &str {
        parse_traceparent(&self.traceparent).map_or("", |(id, _)| id)
    }
}

/// (trace id, flags) of a valid version-00 `traceparent`, else `None`.
pub fn parse_traceparent(value: &str) -> Option<(&str, &str)> {
    let mut parts = value.trim().split('-');
    let (version, trace_id, parent_id, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let valid = parts.next().is_none()
        && version == "00"
        && is_hex_id(trace_id, 32)
        && is_hex_id(parent_id, 16)
        && flags.len() == 2
        && flags
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase());
    valid.then_some((trace_id, flags))
}

/// `len` lowercase hex digits, not all zero (the W3C spec's invalid id).
fn is_hex_id(s: &str, len: usize) -> bool {
    s.len() == len
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        && s.bytes().any(|b| b != b'0')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn a_new_trace_takes_its_id_from_the_request_uuid() {
        let ctx = TraceContext::from_http(&headers(&[(
            "x-request-id",
            "6F9619FF-8B86-D011-B42D-00C04FC964FF",
        )]));
        assert_eq!(ctx.request_id, "6F9619FF-8B86-D011-B42D-00C04FC964FF");
        assert_eq!(ctx.trace_id(), "6f9619ff8b86d011b42d00c04fc964ff");
        assert!(
            parse_traceparent(&ctx.traceparent).is_some(),
            "{}",
            ctx.traceparent
        );
        assert!(ctx.traceparent.ends_with("-01"));
    }

    #[test]
    fn a_client_trace_is_continued_with_a_new_parent() {
        let incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";
        let ctx = TraceContext::from_http(&headers(&[
            ("x-request-id", "abc"),
            ("traceparent", incoming),
        ]));
        assert_eq!(ctx.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_ne!(ctx.traceparent, incoming, "the gateway is the new parent");
        assert!(ctx.traceparent.ends_with("-00"), "flags kept");
    }

    #[test]
    fn invalid_traceparents_start_a_new_trace() {
        for bad in [
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "garbage",
        ] {
            let ctx = TraceContext::from_http(&headers(&[
                ("x-request-id", "not-a-uuid"),
                ("traceparent", bad),
            ]));
            assert_ne!(ctx.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736", "{bad}");
            assert!(
                parse_traceparent(&ctx.traceparent).is_some(),
                "{bad} -> {}",
                ctx.traceparent
            );
        }
    }

    #[test]
    fn without_a_request_id_one_is_made() {
        let ctx = TraceContext::generated();
        assert_eq!(ctx.request_id.len(), 36);
        assert_eq!(ctx.trace_id().len(), 32);
    }
}
