//! [`Fid`]: the file id a request is about, parsed once by the extractor, from the route's path
//! (`/jobs/{video_fid}`) or from `?fid=` (`/status`, `/download`, `/events`).

use std::borrow::Cow;

use axum::{
    extract::{FromRequestParts, Query, RawPathParams},
    http::request::Parts,
};
use mongodb::bson::oid::ObjectId;
use serde::Deserialize;
use utoipa::openapi::{schema::Type, ObjectBuilder, RefOr, Schema};

use crate::error::ApiError;

/// What a file id looks like on the wire: an ObjectId in hexadecimal.
pub const FID_PATTERN: &str = "^[0-9a-fA-F]{24}$";

/// A file id (an upload's or an MP3's ObjectId) from the request: the route's path parameter when
/// it has one, else the query parameter `fid`. Missing or malformed: 400 with the sentence that
/// says which.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fid(pub ObjectId);

/// `?fid=`, read leniently: a repeated or oddly encoded query counts as no fid.
#[derive(Deserialize)]
struct FidQuery {
    fid: Option<String>,
}

impl<S: Send + Sync> FromRequestParts<S> for Fid {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let in_path = match RawPathParams::from_request_parts(parts, state).await {
            Ok(params) => params.iter().next().map(|(_, value)| value.to_owned()),
            Err(_) => {
                return Err(ApiError::BadRequest(
                    "the file id in the path is not valid UTF-8".into(),
                ))
            }
        };
        let raw = match in_path {
            Some(raw) => raw,
            None => Query::<FidQuery>::try_from_uri(&parts.uri)
                .ok()
                .and_then(|Query(q)| q.fid)
                .ok_or_else(|| ApiError::BadRequest("missing query parameter fid".into()))?,
        };
        Fid::parse(&raw)
    }
}

impl Fid {
    /// A file id as a client wrote it (surrounding blanks tolerated, as the original did); 400
    /// when it is not an ObjectId.
    pub fn parse(raw: &str) -> Result<Self, ApiError> {
        ObjectId::parse_str(raw.trim()).map(Fid).map_err(|_| {
            ApiError::BadRequest(format!(
                "fid {raw:?} is malformed: expected 24 hexadecimal characters"
            ))
        })
    }

    /// The id in hexadecimal, as clients write it.
    pub fn to_hex(self) -> String {
        self.0.to_hex()
    }
}

impl std::fmt::Display for Fid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl utoipa::PartialSchema for Fid {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some(FID_PATTERN))
            .description(Some("A file id: an ObjectId, 24 hexadecimal characters"))
            .examples(["65f1c0ffee0123456789abcd"])
            .into()
    }
}

impl utoipa::ToSchema for Fid {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Fid")
    }
}

#[cfg(test)]
mod tests {
    use axum::{http::Request, routing::get, Router};

    use super::*;

    async fn extract(uri: &str, route: &str) -> Result<Fid, String> {
        // Through a router, so that path parameters are matched as in the service.
        let app = Router::new().route(
            route,
            get(|fid: Result<Fid, ApiError>| async move {
                match fid {
                    Ok(fid) => fid.to_hex(),
                    Err(e) => format!("error: {e}"),
                }
            }),
        );
        let response = tower::ServiceExt::oneshot(
            app,
            Request::builder()
                .uri(uri)
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
        let body = axum::body::to_bytes(response.into_body(), 1024)
            .await
            .unwrap();
        let text = String::from_utf8(body.to_vec()).unwrap();
        match text.strip_prefix("error: ") {
            Some(e) => Err(e.to_owned()),
            None => Ok(Fid::parse(&text).unwrap()),
        }
    }

    const ID: &str = "65f1c0ffee0123456789abcd";

    #[tokio::test]
    async fn from_the_query() {
        let fid = extract(&format!("/status?fid={ID}"), "/status").await;
        assert_eq!(fid.unwrap().to_hex(), ID);
        // Blanks around the id were accepted by the original.
        let fid = extract(&format!("/status?fid=%20{ID}%20"), "/status").await;
        assert_eq!(fid.unwrap().to_hex(), ID);
        assert_eq!(
            extract("/status", "/status").await.unwrap_err(),
            "missing query parameter fid"
        );
        assert_eq!(
            extract("/status?other=1", "/status").await.unwrap_err(),
            "missing query parameter fid"
        );
        assert_eq!(
            extract(&format!("/status?fid={ID}&fid={ID}"), "/status")
                .await
                .unwrap_err(),
            "missing query parameter fid"
        );
        assert_eq!(
            extract("/status?fid=0", "/status").await.unwrap_err(),
            "fid \"0\" is malformed: expected 24 hexadecimal characters"
        );
    }

    #[tokio::test]
    async fn from_the_path_before_the_query() {
        let other = "65f1c0ffee0123456789abce";
        let fid = extract(&format!("/jobs/{ID}?fid={other}"), "/jobs/{video_fid}").await;
        assert_eq!(fid.unwrap().to_hex(), ID);
        assert_eq!(
            extract("/jobs/0", "/jobs/{video_fid}").await.unwrap_err(),
            "fid \"0\" is malformed: expected 24 hexadecimal characters"
        );
        assert_eq!(
            extract("/jobs/%FF", "/jobs/{video_fid}").await.unwrap_err(),
            "the file id in the path is not valid UTF-8"
        );
    }
}
