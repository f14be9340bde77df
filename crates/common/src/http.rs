//! HTTP plumbing shared by the services: request ids, request spans, Prometheus metrics, and a
//! small-body limit for endpoints that take their input from headers.

use std::{sync::OnceLock, time::Instant};

use axum::{
    body::Body,
    extract::{MatchedPath, Request, State},
    http::{header::CONTENT_LENGTH, HeaderName, StatusCode},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::get,
    Router,
};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tower_http::{
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, RequestId, SetRequestIdLayer},
    trace::TraceLayer,
};

/// Header carrying the request id, set when the client sent none and echoed in the response.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// Latency buckets in seconds, from a fast JSON answer to a large upload.
const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// The process-wide Prometheus recorder, installed on first use (tests build many apps).
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), LATENCY_BUCKETS)
                .unwrap_or_else(|_| PrometheusBuilder::new());
            match builder.install_recorder() {
                Ok(handle) => handle,
                // Another recorder is already global: keep a detached one so /metrics still works.
                Err(_) => PrometheusBuilder::new().build_recorder().handle(),
            }
        })
        .clone()
}

/// `GET /healthz` (the process is alive) and `GET /metrics` (Prometheus text).
pub fn ops_router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(render_metrics))
}

/// `GET /healthz`: `{"status":"ok"}` while the process runs.
pub async fn healthz() -> impl IntoResponse {
    axum::Json(serde_json::json!({ "status": "ok" }))
}

/// `GET /metrics`: every metric of the process, as Prometheus text.
pub async fn render_metrics() -> impl IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        metrics_handle().render(),
    )
}

/// Wraps `router` with request ids, a tracing span per request and request metrics.
pub fn instrument(router: Router) -> Router {
    // Make sure the recorder exists before the first request is counted.
    let _ = metrics_handle();
    let header = HeaderName::from_static(REQUEST_ID_HEADER);
    router
        .layer(middleware::from_fn(track_metrics))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request| {
            let request_id = req
                .extensions()
                .get::<RequestId>()
                .and_then(|id| id.header_value().to_str().ok())
                .unwrap_or_default();
            let route = req
                .extensions()
                .get::<MatchedPath>()
                .map(MatchedPath::as_str)
                .unwrap_or_default();
            tracing::info_span!(
                "request",
                method = %req.method(),
                uri = %req.uri().path(),
                route,
                request_id,
            )
        }))
        .layer(PropagateRequestIdLayer::new(header.clone()))
        .layer(SetRequestIdLayer::new(header, MakeRequestUuid))
}

/// Counts requests by method, route and status and records their latency.
async fn track_metrics(req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().to_string();
    // The route template, not the raw path, so ids in paths do not explode the label set.
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let response = next.run(req).await;
    let status = response.status();
    let labels = [
        ("method", method),
        ("route", route),
        ("status", status.as_u16().to_string()),
    ];
    metrics::counter!("http_requests_total", &labels).increment(1);
    metrics::histogram!("http_request_duration_seconds", &labels[..2])
        .record(start.elapsed().as_secs_f64());
    if status == StatusCode::INTERNAL_SERVER_ERROR {
        metrics::counter!("http_server_errors_total").increment(1);
    }
    response
}

/// Largest body accepted by endpoints whose input travels in headers (login, register,
/// validate): they need none, and a large one only costs memory and time.
pub const TINY_BODY_BYTES: usize = 1024;

/// A request body over the limit of its endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("request body too large: this endpoint takes at most {limit} bytes (and needs none)")]
pub struct BodyTooLarge {
    /// The limit, in bytes.
    pub limit: usize,
}

/// Middleware (`from_fn_with_state(limit, limit_body::<E>)`) answering `E::from(BodyTooLarge)`
/// to a request whose body is over `limit` bytes: at once when `Content-Length` says so,
/// otherwise after reading at most `limit + 1` bytes. The body read is handed on unchanged.
/// A guard on the extractors would not do: the handlers this protects never read the body.
pub async fn limit_body<E>(State(limit): State<usize>, request: Request, next: Next) -> Response
where
    E: From<BodyTooLarge> + IntoResponse,
{
    let too_large = || E::from(BodyTooLarge { limit }).into_response();
    let declared = request
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return too_large();
    }
    let (parts, body) = request.into_parts();
    match axum::body::to_bytes(body, limit).await {
        Ok(bytes) => {
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
        Err(e) if is_length_limit(&e) => too_large(),
        // The client went away or broke the framing: nobody is left to answer.
        Err(e) => {
            tracing::debug!(error = %e, "cannot read request body");
            (
                StatusCode::BAD_REQUEST,
                axum::Json(serde_json::json!({ "error": "cannot read the request body" })),
            )
                .into_response()
        }
    }
}

fn is_length_limit(e: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if err.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = err.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use tower::ServiceExt;

    #[tokio::test]
    async fn request_id_is_echoed_and_generated() {
        let app = instrument(Router::new().merge(ops_router()));
        let res = app
            .clone()
            .oneshot(
                Request::get("/healthz")
                    .header(REQUEST_ID_HEADER, "abc")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()[REQUEST_ID_HEADER], "abc");

        let res = app
            .oneshot(Request::get("/healthz").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert!(!res.headers()[REQUEST_ID_HEADER].is_empty());
    }

    #[tokio::test]
    async fn metrics_count_requests_by_route() {
        let app = instrument(Router::new().merge(ops_router()));
        app.clone()
            .oneshot(Request::get("/healthz").body(Body::empty()).unwrap())
            .await
            .unwrap();
        let res = app
            .oneshot(Request::get("/metrics").body(Body::empty()).unwrap())
            .await
            .unwrap();
        let body = axum::body::to_bytes(res.into_body(), usize::MAX)
            .await
            .unwrap();
        let text = String::from_utf8(body.to_vec()).unwrap();
        assert!(
            text.contains(r#"http_requests_total{method="GET",route="/healthz",status="200"}"#),
            "{text}"
        );
    }

    #[derive(Debug)]
    struct TestError(BodyTooLarge);

    impl From<BodyTooLarge> for TestError {
        fn from(e: BodyTooLarge) -> Self {
            Self(e)
        }
    }

    impl IntoResponse for TestError {
        fn into_response(self) -> Response {
            (
                StatusCode::PAYLOAD_TOO_LARGE,
                axum::Json(serde_json::json!({ "error": self.0.to_string() })),
            )
                .into_response()
        }
    }

    fn limited_echo() -> Router {
        Router::new()
            .route(
                "/echo",
                axum::routing::post(|body: String| async move { body }),
            )
            .route_layer(middleware::from_fn_with_state(
                16usize,
                limit_body::<TestError>,
            ))
    }

    #[tokio::test]
    async fn small_bodies_pass_unchanged_and_large_ones_get_413() {
        let res = limited_echo()
            .oneshot(
                Request::post("/echo")
                    .body(Body::from("sixteen bytes!!!"))
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let body = axum::body::to_bytes(res.into_body(), usize::MAX)
            .await
            .unwrap();
        assert_eq!(&body[..], b"sixteen bytes!!!");

        // Refused by its Content-Length, and (no length given) after reading past the limit.
        let declared = Request::post("/echo")
            .header(CONTENT_LENGTH, "17")
            .body(Body::from("seventeen bytes!!"))
            .unwrap();
        let undeclared = Request::post("/echo")
            .body(Body::from("x".repeat(17)))
            .unwrap();
        for request in [declared, undeclared] {
            let res = limited_echo().oneshot(request).await.unwrap();
            assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
            let body = axum::body::to_bytes(res.into_body(), usize::MAX)
                .await
                .unwrap();
            let text = String::from_utf8(body.to_vec()).unwrap();
            assert!(text.contains("at most 16 bytes"), "{text}");
        }
    }
}
