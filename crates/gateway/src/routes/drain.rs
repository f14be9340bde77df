//! Reading the rest of a refused request's body before answering, so that clients which send the
//! whole body before they read (Python's urllib and requests, browsers) see the 401 or 413 and its
//! sentence instead of a reset connection. Closing a socket with unread bytes in its receive
//! buffer makes the kernel send a reset, which destroys the answer in flight.

use std::{
    pin::Pin,
    sync::{Arc, Mutex, PoisonError},
    task::{Context, Poll},
    time::Duration,
};

use axum::{
    body::{Body, Bytes, HttpBody},
    extract::{Request, State},
    http::header::EXPECT,
    middleware::Next,
    response::Response,
};
use http_body_util::BodyExt;
use hyper::body::{Frame, SizeHint};

use super::upload::MULTIPART_OVERHEAD;

/// Longest time spent reading the rest of a refused body.
const DRAIN_TIME: Duration = Duration::from_secs(10);

/// Multiple of the largest upload body read at most from a refused request.
const DRAIN_FACTOR: u64 = 4;

/// How much of a refused body is read and thrown away at most.
#[derive(Debug, Clone, Copy)]
pub struct Bound {
    bytes: u64,
    time: Duration,
}

impl Bound {
    /// [`DRAIN_FACTOR`] times the largest upload body: a file somewhat over the limit is read to
    /// its end so its sender sees the 413; beyond that (or [`DRAIN_TIME`]) the connection is
    /// closed anyway.
    pub fn for_uploads(max_upload_bytes: u64) -> Self {
        Self {
            bytes: max_upload_bytes
                .saturating_add(MULTIPART_OVERHEAD)
                .saturating_mul(DRAIN_FACTOR),
            time: DRAIN_TIME,
        }
    }
}

/// Middleware: when the answer is an error and the request body was not read to its end, reads
/// and discards what is left (within [`Bound`]) before the answer goes out.
pub async fn drain_refused(State(bound): State<Bound>, request: Request, next: Next) -> Response {
    // A client that asked `Expect: 100-continue` waits for our answer before sending the body;
    // if the handler never touched the body, there is nothing in flight to drain.
    let expects_continue = request
        .headers()
        .get(EXPECT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"));
    let (parts, body) = request.into_parts();
    let shared = Arc::new(Mutex::new(Tracked {
        body,
        polled: false,
    }));
    let request = Request::from_parts(parts, Body::new(SharedBody(Arc::clone(&shared))));
    let response = next.run(request).await;
    if !response.status().is_client_error() {
        return response;
    }
    // The handler has returned and dropped its side: this is the only handle left.
    let Tracked { mut body, polled } = {
        let mut tracked = shared.lock().unwrap_or_else(PoisonError::into_inner);
        std::mem::replace(
            &mut *tracked,
            Tracked {
                body: Body::empty(),
                polled: true,
            },
        )
    };
    if body.is_end_stream() || (expects_continue && !polled) {
        return response;
    }
    let mut drained: u64 = 0;
    let drain = async {
        while let Some(Ok(frame)) = body.frame().await {
            if let Ok(data) = frame.into_data() {
                drained += data.len() as u64;
                if drained > bound.bytes {
                    return false;
                }
            }
        }
        true
    };
    let complete = tokio::time::timeout(bound.time, drain)
        .await
        .unwrap_or(false);
    tracing::debug!(
        drained,
        complete,
        status = response.status().as_u16(),
        "read the rest of a refused body"
    );
    response
}

/// The request body and whether the handler ever asked for it.
struct Tracked {
    body: Body,
    polled: bool,
}

/// The request body as the handler sees it, while the middleware keeps a handle on it.
struct SharedBody(Arc<Mutex<Tracked>>);

impl HttpBody for SharedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let mut tracked = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        tracked.polled = true;
        Pin::new(&mut tracked.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        let tracked = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        tracked.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let tracked = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        tracked.body.size_hint()
    }
}
