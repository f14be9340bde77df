//! `GET /download?fid=<mp3_fid>`: streams an MP3 out of GridFS, whole or one byte range. Takes
//! the token from the `Authorization` header or, for the page's `<audio>` player, from the media
//! cookie (`POST /media-cookie`).

use axum::{
    body::Body,
    extract::State,
    http::{header, HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
};
use mongodb::bson::oid::ObjectId;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::Fid;
use crate::{
    claims::{MediaUser, User},
    error::{ApiError, ApiResult},
    storage::StoredFile,
    AppState,
};

/// `GET /download`.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(download))
}

/// Downloads a converted MP3.
#[utoipa::path(
    get,
    path = "/download",
    tag = "files",
    security(("bearer" = []), ("media_cookie" = [])),
    params(("fid" = inline(Fid), Query, description = "The MP3's id (`mp3_fid` of /status)")),
    responses(
        (status = 200, description = "The MP3 (audio/mpeg)", content_type = "audio/mpeg"),
        (status = 206, description = "The requested byte range", content_type = "audio/mpeg"),
        (status = 400, description = "fid missing or malformed"),
        (status = 401, description = "Missing, malformed, bad or expired token"),
        (status = 404, description = "No such MP3, or another user's (an MP3 shared by repeats is each holder's own)"),
        (status = 416, description = "Range outside the file; Content-Range: bytes */<length>"),
        (status = 503, description = "MongoDB unavailable"),
    )
)]
pub async fn download(
    State(state): State<AppState>,
    MediaUser(user): MediaUser,
    headers: HeaderMap,
    Fid(fid): Fid,
) -> ApiResult<Response> {
    let not_found = || ApiError::no_such_file(&fid.to_hex());
    let mp3 = state.storage.mp3(fid).await?.ok_or_else(not_found)?;
    let source_name = match mp3.holders() {
        // Shared by repeats: each holder's owner may download it, under their own file's name;
        // nobody else learns that it exists.
        Some(holders) => {
            let job = state.storage.job_holding(&holders, user.email()).await?;
            Some(job.ok_or_else(not_found)?.filename)
        }
        None => {
            if !user.may_see(mp3.owner()) {
                return Err(not_found());
            }
            upload_name(&state, &user, &mp3).await?
        }
    };
    let filename = mp3_filename(source_name.as_deref(), mp3.filename.as_deref(), fid);

    let len = mp3.length;
    let range = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .map_or(Range::Full, |v| parse_range(v, len));
    let (status, start, end) = match range {
        Range::Full => (StatusCode::OK, 0, len.saturating_sub(1)),
        Range::Partial(start, end) => (StatusCode::PARTIAL_CONTENT, start, end),
        Range::Unsatisfiable => return Err(ApiError::RangeNotSatisfiable(len)),
    };
    let body_len = if len == 0 { 0 } else { end - start + 1 };
    let body = Body::from_stream(state.storage.mp3_bytes(&mp3, start, end));

    let mut response = (status, body).into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("audio/mpeg"));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(body_len));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Ok(v) = HeaderValue::from_str(&content_disposition(&filename)) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    if status == StatusCode::PARTIAL_CONTENT {
        if let Ok(v) = HeaderValue::from_str(&format!("bytes {start}-{end}/{len}")) {
            h.insert(header::CONTENT_RANGE, v);
        }
    }
    Ok(response)
}

/// The original upload's name, from the MP3's job or the upload's files document. Also refuses an
/// MP3 without an owner whose job belongs to someone else.
async fn upload_name(state: &AppState, user: &User, mp3: &StoredFile) -> ApiResult<Option<String>> {
    let Some(video_fid) = mp3.video_fid().and_then(|f| ObjectId::parse_str(f).ok()) else {
        return Ok(None);
    };
    if let Some(job) = state.storage.job(video_fid).await? {
        if !user.may_see(job.owner.as_deref()) {
            return Err(ApiError::no_such_file(&mp3.id.to_hex()));
        }
        return Ok(Some(job.filename));
    }
    Ok(state
        .storage
        .video(video_fid)
        .await?
        .and_then(|v| v.filename.clone().or_else(|| v.upload_metadata().filename)))
}

/// `<stem of the upload>.mp3`, else the MP3's stored name, else `<fid>.mp3`.
fn mp3_filename(upload: Option<&str>, stored: Option<&str>, fid: ObjectId) -> String {
    let stem = |name: &str| -> Option<String> {
        let name = name.rsplit(['/', '\\']).next().unwrap_or_default().trim();
        let stem = match name.rsplit_once('.') {
            Some((stem, _)) if !stem.is_empty() => stem,
            _ => name,
        };
        (!stem.is_empty()).then(|| stem.to_owned())
    };
    upload
        .and_then(stem)
        .or_else(|| stored.and_then(stem))
        .map_or_else(|| format!("{}.mp3", fid.to_hex()), |s| format!("{s}.mp3"))
}

/// `attachment; filename="<ASCII fallback>"; filename*=UTF-8''<percent-encoded>` (RFC 6266/5987).
fn content_disposition(filename: &str) -> String {
    let fallback: String = filename
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut encoded = String::new();
    for b in filename.bytes() {
        if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
            encoded.push(char::from(b));
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    format!("attachment; filename=\"{fallback}\"; filename*=UTF-8''{encoded}")
}

/// What a `Range` header asks of a file of `len` bytes.
#[derive(Debug, PartialEq, Eq)]
enum Range {
    /// No usable single range: send everything (RFC 9110 allows ignoring Range).
    Full,
    /// Bytes `start..=end`.
    Partial(u64, u64),
    /// A well-formed range that lies outside the file.
    Unsatisfiable,
}

fn parse_range(header: &str, len: u64) -> Range {
    let Some(spec) = header.trim().strip_prefix("bytes=") else {
        return Range::Full;
    };
    if spec.contains(',') {
        // Several ranges would need multipart/byteranges; a full answer is allowed instead.
        return Range::Full;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return Range::Full;
    };
    let (first, last) = (first.trim(), last.trim());
    match (first.parse::<u64>(), last.parse::<u64>()) {
        (Ok(start), Ok(end)) if start <= end => {
            if start >= len {
                Range::Unsatisfiable
            } else {
                Range::Partial(start, end.min(len - 1))
            }
        }
        (Ok(_), Ok(_)) => Range::Full,
        (Ok(start), Err(_)) if last.is_empty() => {
            if start >= len {
                Range::Unsatisfiable
            } else {
                Range::Partial(start, len - 1)
            }
        }
        (Err(_), Ok(suffix)) if first.is_empty() => {
            if suffix == 0 || len == 0 {
                Range::Unsatisfiable
            } else {
                Range::Partial(len.saturating_sub(suffix), len - 1)
            }
        }
        _ => Range::Full,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-99", 1000), Range::Partial(0, 99));
        assert_eq!(parse_range("bytes=900-", 1000), Range::Partial(900, 999));
        assert_eq!(parse_range("bytes=-100", 1000), Range::Partial(900, 999));
        assert_eq!(parse_range("bytes=-5000", 1000), Range::Partial(0, 999));
        assert_eq!(
            parse_range("bytes=990-2000", 1000),
            Range::Partial(990, 999)
        );
        assert_eq!(parse_range("bytes=1000-", 1000), Range::Unsatisfiable);
        assert_eq!(parse_range("bytes=1000-1001", 1000), Range::Unsatisfiable);
        assert_eq!(parse_range("bytes=-0", 1000), Range::Unsatisfiable);
        assert_eq!(parse_range("bytes=5-1", 1000), Range::Full);
        assert_eq!(parse_range("bytes=0-1,5-6", 1000), Range::Full);
        assert_eq!(parse_range("items=0-1", 1000), Range::Full);
        assert_eq!(parse_range("bytes=abc", 1000), Range::Full);
    }

    #[test]
    fn filenames() {
        let fid = ObjectId::parse_str("65f1c0ffee0123456789abcd").unwrap();
        assert_eq!(mp3_filename(Some("My clip.mp4"), None, fid), "My clip.mp3");
        assert_eq!(
            mp3_filename(Some("archive.tar.gz"), None, fid),
            "archive.tar.mp3"
        );
        assert_eq!(mp3_filename(None, Some("x.mp3"), fid), "x.mp3");
        assert_eq!(
            mp3_filename(None, None, fid),
            "65f1c0ffee0123456789abcd.mp3"
        );
        assert_eq!(mp3_filename(Some(".mp4"), None, fid), ".mp4.mp3");
    }

    #[test]
    fn disposition_is_quoted_and_encoded() {
        assert_eq!(
            content_disposition("a \"b\".mp3"),
            "attachment; filename=\"a _b_.mp3\"; filename*=UTF-8''a%20%22b%22.mp3"
        );
        assert_eq!(
            content_disposition("héllo.mp3"),
            "attachment; filename=\"h_llo.mp3\"; filename*=UTF-8''h%C3%A9llo.mp3"
        );
    }
}
