//! The gateway's one error type and how each case is answered.

use axum::{
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    Json,
};

/// Every error answer: `{"error": "<message>"}`.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// What went wrong, for a person.
    pub error: String,
}

/// Everything a handler can fail with. Client mistakes carry a message meant for the client;
/// server-side faults are logged here and answered with a generic message.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the request is malformed; the message says how.
    #[error("{0}")]
    BadRequest(String),
    /// 401: no usable token.
    #[error("{0}")]
    Unauthorized(String),
    /// 404: nothing the caller may see is there.
    #[error("{0}")]
    NotFound(String),
    /// 413: the upload is larger than `MAX_UPLOAD_BYTES`, or a body on `/login`, `/register`.
    #[error("{0}")]
    PayloadTooLarge(String),
    /// 429: the caller already holds as many streams or uploads as allowed.
    #[error("{0}")]
    TooManyRequests(String),
    /// 405: the path exists, the method does not.
    #[error("{0}")]
    MethodNotAllowed(String),
    /// 415: the upload is not an audio or video file; the message says what it is.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 422: the upload is media but cannot give an MP3 (no audio track); the message says why.
    #[error("{0}")]
    Unprocessable(String),
    /// 416: the Range lies outside the file; carries the file's length.
    #[error("requested range is outside the file of {0} bytes")]
    RangeNotSatisfiable(u64),
    /// 503: a dependency (Mongo, RabbitMQ, auth) is unavailable; the message says which.
    #[error("{0}")]
    Unavailable(String),
    /// 500: a fault on our side; the detail is logged, never shown.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    /// The HTTP status this error is answered with.
    pub fn status_code(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Self::RangeNotSatisfiable(_) => StatusCode::RANGE_NOT_SATISFIABLE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// A 404 for a file fid the caller may not see or that does not exist (the same answer).
    pub fn no_such_file(fid: &str) -> Self {
        Self::NotFound(format!("no file with fid {fid}"))
    }
}

impl From<common::http::BodyTooLarge> for ApiError {
    fn from(e: common::http::BodyTooLarge) -> Self {
        Self::PayloadTooLarge(e.to_string())
    }
}

impl From<crate::storage::StorageError> for ApiError {
    /// A retryable failure (the server away) is a 503 the client may retry; a permanent one is
    /// a fault on our side.
    fn from(e: crate::storage::StorageError) -> Self {
        use common::retry::Classify;

        use crate::storage::StorageError;
        match e {
            StorageError::TooOld(sentence) => {
                tracing::error!("{sentence}");
                Self::Unavailable(format!("the file store cannot be used: {sentence}"))
            }
            e if e.is_retryable() => {
                tracing::warn!(error = %e, "MongoDB unavailable");
                Self::Unavailable("the file store is unavailable, try again shortly".to_owned())
            }
            e => Self::Internal(e.into()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status_code();
        let message = match &self {
            Self::Internal(e) => {
                tracing::error!(error = ?e, "internal error");
                "internal server error".to_owned()
            }
            other => {
                if status.is_server_error() {
                    tracing::warn!(error = %other, status = status.as_u16(), "request failed");
                } else {
                    tracing::debug!(error = %other, status = status.as_u16(), "request refused");
                }
                other.to_string()
            }
        };
        let mut response = (status, Json(ErrorBody { error: message })).into_response();
        if let Self::RangeNotSatisfiable(len) = self {
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{len}")) {
                response.headers_mut().insert(header::CONTENT_RANGE, v);
            }
        }
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// Result of a handler.
pub type ApiResult<T> = Result<T, ApiError>;
