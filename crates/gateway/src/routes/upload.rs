//! `POST /upload`: the video streams into GridFS chunk by chunk (never held whole in memory), a
//! `queued` job is stored, and the conversion request is published with publisher confirms.
//!
//! Before anything is stored, the first bytes must be an audio or video container (else 415);
//! an MP4 whose index comes first must list an audio track (else 422, as soon as the index has
//! arrived). The SHA-256 of the content is computed while it streams: a repeat of a finished
//! conversion (same content, quality and title) shares its MP3 and completes at once.

use axum::{
    extract::{
        multipart::{Field, MultipartError, MultipartRejection},
        DefaultBodyLimit, Multipart, State,
    },
    http::{header::CONTENT_LENGTH, HeaderMap},
    Json,
};
use common::{
    jobs::{Job, Mp3Quality, Webhook},
    message::VideoMessage,
    trace_context::TraceContext,
};
use futures::AsyncWriteExt;
use mongodb::bson::oid::ObjectId;
use serde::Serialize;
use sha2::{Digest, Sha256};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    claims::User,
    error::{ApiError, ApiResult},
    repeats,
    sniff::{self, Index, IndexScan, Sniffed},
    AppState,
};

/// Room for the multipart framing (boundaries, part headers, small text fields) on top of the
/// file itself when bounding the whole request body.
pub(crate) const MULTIPART_OVERHEAD: u64 = 1024 * 1024;
/// Longest accepted value of a text field (`bitrate`, `vbr_quality`).
const MAX_TEXT_FIELD: usize = 64;
/// Longest stored file name, in characters.
const MAX_FILENAME_CHARS: usize = 255;

/// The upload route, its body limit lifted from axum's 2 MB default to `MAX_UPLOAD_BYTES` (plus
/// the multipart framing); the file's own bytes are counted while streaming.
pub fn router(max_upload_bytes: u64) -> OpenApiRouter<AppState> {
    let body_limit =
        usize::try_from(max_upload_bytes.saturating_add(MULTIPART_OVERHEAD)).unwrap_or(usize::MAX);
    let (schemas, paths, method_router) = routes!(upload);
    OpenApiRouter::new().routes((
        schemas,
        paths,
        method_router.layer(DefaultBodyLimit::max(body_limit)),
    ))
}

/// Answer to a stored and queued upload, exactly as the original.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UploadResponse {
    /// Always `success`.
    #[schema(example = "success")]
    pub status: &'static str,
    /// ObjectId of the upload: ask `/status?fid=` with it.
    #[schema(example = "65f1c0ffee0123456789abcd")]
    pub video_fid: String,
}

/// The stored video, before it is queued.
struct StoredVideo {
    id: ObjectId,
    filename: String,
    size: u64,
    /// SHA-256 of the content, hex.
    sha256: String,
}

/// What became of a stored upload.
enum Queued {
    /// Published for conversion.
    ForConversion,
    /// A repeat: completed at once with this shared MP3.
    Repeat(ObjectId),
}

// The handler reads the parts as they stream (into `FormFields` and GridFS): this type only
// describes the form in the OpenAPI document.
/// The form of `POST /upload`: the file and the options for its MP3.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct UploadForm {
    /// The video: exactly one file, an audio or video container with an audio track.
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
    /// Constant bitrate in kb/s (default 128); not together with `vbr_quality`.
    #[schema(schema_with = bitrate_schema)]
    bitrate: Option<u32>,
    /// LAME VBR quality, 0 (best) to 9; not together with `bitrate`.
    #[schema(minimum = 0, maximum = 9, nullable = false)]
    vbr_quality: Option<u8>,
    /// An http(s) URL that receives the job as signed JSON (`WebhookPayload`) when it completes
    /// or fails (docs/webhooks.md). It must resolve to public addresses unless
    /// WEBHOOK_ALLOWED_HOSTS permits it; send it before `file` so that a refusal comes before
    /// the upload.
    #[schema(format = "uri", nullable = false)]
    callback_url: Option<String>,
}

/// `bitrate`: one of the bitrates the converter offers.
fn bitrate_schema() -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::Integer)
        .description(Some(
            "Constant bitrate in kb/s (default 128); not together with `vbr_quality`.",
        ))
        .enum_values(Some(common::jobs::ALLOWED_BITRATES_KBPS.iter().copied()))
        .build()
}

/// The form's text fields as they arrive (numbers already parsed), before they are checked
/// together into a [`ConversionRequest`].
#[derive(Default)]
struct FormFields {
    bitrate: Option<u32>,
    vbr_quality: Option<u8>,
    /// `callback_url`, already checked (crate::webhooks).
    callback_url: Option<String>,
}

/// What the client asked of the conversion, parsed once from the form: the rest of the upload
/// works from this.
#[derive(Debug, PartialEq)]
struct ConversionRequest {
    quality: Mp3Quality,
    /// The checked webhook URL, if one was given.
    callback_url: Option<String>,
}

impl FormFields {
    /// The request these fields make; 400 when they ask for an impossible MP3.
    fn into_request(self) -> ApiResult<ConversionRequest> {
        let quality = match (self.bitrate, self.vbr_quality) {
            (Some(_), Some(_)) => {
                return Err(ApiError::BadRequest(
                    "give either bitrate or vbr_quality, not both".into(),
                ))
            }
            (Some(kbps), None) => Mp3Quality::cbr(kbps),
            (None, Some(quality)) => Mp3Quality::vbr(quality),
            (None, None) => Ok(Mp3Quality::default()),
        }
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
        Ok(ConversionRequest {
            quality,
            callback_url: self.callback_url,
        })
    }
}

/// Uploads a video for conversion.
#[utoipa::path(
    post,
    path = "/upload",
    tag = "files",
    security(("bearer" = [])),
    request_body(
        content = UploadForm,
        content_type = "multipart/form-data",
        description = "The video in the field `file`; other fields are ignored, as the original did."
    ),
    responses(
        (status = 200, description = "Stored and queued; or a repeat of a finished conversion (same content, quality and file title), whose job is completed at once and shares that MP3", body = UploadResponse),
        (status = 400, description = "No file, two files, an empty file, bad options, a callback_url that is malformed or not public (or webhooks are off), or a malformed body"),
        (status = 401, description = "Missing, malformed, bad or expired token"),
        (status = 413, description = "Larger than MAX_UPLOAD_BYTES, or than what is left of the caller's MAX_USER_STORAGE_BYTES; nothing is kept"),
        (status = 415, description = "The first bytes are not an audio or video container (a PDF, an image, text, ...); the sentence says what the file is. Nothing is stored"),
        (status = 422, description = "An MP4/MOV whose index comes first lists no audio track; refused as soon as the index has arrived. Nothing is kept"),
        (status = 429, description = "The caller already sends MAX_UPLOADS_PER_USER uploads"),
        (status = 503, description = "MongoDB or RabbitMQ unavailable; nothing is kept"),
    )
)]
pub async fn upload(
    State(state): State<AppState>,
    user: User,
    headers: HeaderMap,
    multipart: Result<Multipart, MultipartRejection>,
) -> ApiResult<Json<UploadResponse>> {
    let result = match state.uploads.try_acquire(user.email()) {
        Some(_slot) => handle(&state, &user, &headers, multipart).await,
        None => Err(ApiError::TooManyRequests(format!(
            "you already send {} uploads at once; wait for one to finish",
            state.uploads.max()
        ))),
    };
    let outcome = match &result {
        Ok(_) => "stored",
        Err(e) => match e.status_code().as_u16() {
            413 => "too_large",
            415 => "not_media",
            422 => "no_audio",
            s if s < 500 => "refused",
            _ => "failed",
        },
    };
    metrics::counter!("gateway_uploads_total", "outcome" => outcome).increment(1);
    result
}

async fn handle(
    state: &AppState,
    user: &User,
    headers: &HeaderMap,
    multipart: Result<Multipart, MultipartRejection>,
) -> ApiResult<Json<UploadResponse>> {
    let limit = FileLimit::of(state, user).await?;
    // Refuse an announced oversized body before reading any of it.
    let announced = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if limit.bytes == 0
        || announced.is_some_and(|len| len > limit.bytes.saturating_add(MULTIPART_OVERHEAD))
    {
        return Err(limit.exceeded());
    }
    let max = state.config.max_upload_bytes;
    let mut multipart = multipart.map_err(|e| {
        ApiError::BadRequest(format!(
            "expected a multipart/form-data body with the video in the field `file` ({})",
            e.body_text()
        ))
    })?;

    let mut fields = FormFields::default();
    let mut stored: Option<StoredVideo> = None;
    let read = async {
        while let Some(field) = multipart
            .next_field()
            .await
            .map_err(|e| form_error(e, max))?
        {
            let name = field.name().unwrap_or_default().to_owned();
            if name == "file" || field.file_name().is_some() {
                if stored.is_some() {
                    return Err(ApiError::BadRequest(
                        "more than one file: send exactly one file, in the field `file`".into(),
                    ));
                }
                stored = Some(store_video(state, user, field, &limit).await?);
            } else if name == "bitrate" {
                let value = text_field(field, &name, max).await?;
                fields.bitrate = Some(value.parse().map_err(|_| {
                    ApiError::BadRequest(format!("bitrate must be a number of kb/s, not {value:?}"))
                })?);
            } else if name == "callback_url" {
                fields.callback_url = Some(crate::webhooks::callback_field(state, field).await?);
            } else if name == "vbr_quality" {
                let value = text_field(field, &name, max).await?;
                fields.vbr_quality = Some(value.parse().map_err(|_| {
                    ApiError::BadRequest(format!(
                        "vbr_quality must be a number from 0 (best) to 9, not {value:?}"
                    ))
                })?);
            }
            // Any other field is ignored, as the original did.
        }
        Ok(())
    }
    .await;
    // From here on, every failure must remove the stored file.
    let outcome = match read {
        Ok(()) => match stored.as_ref() {
            None => Err(ApiError::BadRequest(
                "no file: send the video in the multipart field `file`".into(),
            )),
            // Checked after the form is read, as before: a bad option discards the stored file.
            Some(video) => match fields.into_request() {
                Ok(request) => queue_video(state, user, headers, video, &request).await,
                Err(e) => Err(e),
            },
        },
        Err(e) => Err(e),
    };
    match (outcome, stored) {
        (Ok(Queued::ForConversion), Some(video)) => {
            tracing::info!(video_fid = %video.id, size = video.size, owner = user.email(), "upload queued");
            Ok(Json(UploadResponse {
                status: "success",
                video_fid: video.id.to_hex(),
            }))
        }
        (Ok(Queued::Repeat(mp3_fid)), Some(video)) => {
            drop_repeated_video(state, video.id).await;
            tracing::info!(video_fid = %video.id, %mp3_fid, size = video.size, owner = user.email(),
                "upload completed at once: a repeat sharing an MP3");
            metrics::counter!("gateway_upload_repeats_total").increment(1);
            Ok(Json(UploadResponse {
                status: "success",
                video_fid: video.id.to_hex(),
            }))
        }
        (Ok(_), None) => Err(ApiError::BadRequest(
            "no file: send the video in the multipart field `file`".into(),
        )),
        (Err(e), stored) => {
            if let Some(video) = stored {
                discard(state, video.id).await;
            }
            Err(e)
        }
    }
}

/// Stores the job and, unless it repeats a finished conversion, publishes the conversion
/// request; the caller discards the file on error.
async fn queue_video(
    state: &AppState,
    user: &User,
    headers: &HeaderMap,
    video: &StoredVideo,
    request: &ConversionRequest,
) -> ApiResult<Queued> {
    let quality = request.quality;
    let mut job = Job::queued(
        video.id,
        Some(user.email().to_owned()),
        video.filename.clone(),
        quality,
        i64::try_from(video.size).ok(),
    );
    job.webhook = request.callback_url.clone().map(Webhook::pending);
    let key = repeats::repeat_key(&video.sha256, quality, &video.filename);
    state
        .storage
        .insert_job_with_content(&job, &video.sha256, &key)
        .await?;
    if state.config.deduplicate_uploads {
        if let Some(mp3_fid) = repeats::share_existing(state, &job, user.email(), &key).await {
            return Ok(Queued::Repeat(mp3_fid));
        }
    }
    let message = VideoMessage::new(video.id.to_hex(), user.email());
    let trace = TraceContext::from_http(headers);
    if let Err(e) = state.queue.publish(&message, &trace).await {
        tracing::warn!(error = %e, video_fid = %video.id, "publish failed, discarding the upload");
        return Err(ApiError::Unavailable(
            "the conversion queue is unavailable; the upload was not kept, try again shortly"
                .into(),
        ));
    }
    Ok(Queued::ForConversion)
}

/// Removes the video bytes of a repeat: its job holds the shared MP3 and needs no upload (the
/// conversion it repeats has its own). Logged only: a leftover goes with the job's deletion.
async fn drop_repeated_video(state: &AppState, id: ObjectId) {
    if let Err(e) = state.storage.delete_video(id).await {
        tracing::warn!(error = %e, video_fid = %id, "could not remove a repeat's video");
    }
}

/// Streams one file part into GridFS; on any failure the partial upload is aborted.
async fn store_video(
    state: &AppState,
    user: &User,
    mut field: Field<'_>,
    limit: &FileLimit,
) -> ApiResult<StoredVideo> {
    let max = state.config.max_upload_bytes;
    let id = ObjectId::new();
    let filename = clean_filename(field.file_name());
    let content_type = field
        .content_type()
        .unwrap_or("application/octet-stream")
        .to_owned();
    // Nothing is stored before the first bytes say it is media.
    let prefix = read_prefix(&mut field, limit, max).await?;
    let sniffed = sniff::sniff(&prefix[..prefix.len().min(sniff::PREFIX_BYTES)]);
    if let Sniffed::Refused(sentence) = &sniffed {
        return Err(ApiError::UnsupportedMediaType(sentence.clone()));
    }
    let mut content = Content::new(sniffed.is_iso_media());
    let mut upload = state
        .storage
        .open_video_upload(id, &filename, user.email(), &content_type)
        .await?;
    let mut size = prefix.len() as u64;
    let written = async {
        content.take(&prefix)?;
        upload.write_all(&prefix).await.map_err(store_error)?;
        while let Some(bytes) = field.chunk().await.map_err(|e| form_error(e, max))? {
            size += bytes.len() as u64;
            if size > limit.bytes {
                return Err(limit.exceeded());
            }
            content.take(&bytes)?;
            upload.write_all(&bytes).await.map_err(store_error)?;
        }
        upload.close().await.map_err(store_error)
    }
    .await;
    match written {
        Ok(()) => {
            metrics::counter!("gateway_upload_bytes_total").increment(size);
            Ok(StoredVideo {
                id,
                filename,
                size,
                sha256: content.sha256(),
            })
        }
        Err(e) => {
            // `abort` removes the chunks written so far; if MongoDB is away, fall back to a
            // delete that also catches a files document written by a failed close.
            if let Err(abort) = upload.abort().await {
                tracing::debug!(error = %abort, "abort of partial upload failed");
                discard(state, id).await;
            }
            Err(e)
        }
    }
}

/// Reads the first [`sniff::PREFIX_BYTES`] of the file (all of it when shorter, a little more
/// when a chunk ends past that), within the size limit; 400 when the file is empty.
async fn read_prefix(field: &mut Field<'_>, limit: &FileLimit, max: u64) -> ApiResult<Vec<u8>> {
    let mut prefix = Vec::with_capacity(sniff::PREFIX_BYTES);
    while prefix.len() < sniff::PREFIX_BYTES {
        let Some(bytes) = field.chunk().await.map_err(|e| form_error(e, max))? else {
            break;
        };
        if (prefix.len() + bytes.len()) as u64 > limit.bytes {
            return Err(limit.exceeded());
        }
        prefix.extend_from_slice(&bytes);
    }
    if prefix.is_empty() {
        return Err(ApiError::BadRequest("the file is empty".into()));
    }
    Ok(prefix)
}

/// What is learnt from the content while it streams: its SHA-256, and for an MP4 whether its
/// index (when it comes first) lists audio.
struct Content {
    hash: Sha256,
    index: Option<IndexScan>,
}

impl Content {
    fn new(iso_media: bool) -> Self {
        Self {
            hash: Sha256::new(),
            index: iso_media.then(IndexScan::new),
        }
    }

    /// Takes in the next bytes; 422 once an index without audio has arrived.
    fn take(&mut self, bytes: &[u8]) -> ApiResult<()> {
        self.hash.update(bytes);
        if let Some(index) = &mut self.index {
            match index.feed(bytes) {
                Index::Pending => {}
                Index::NoAudio => {
                    return Err(ApiError::Unprocessable(
                        "this video has no audio track, so there is nothing to convert to MP3"
                            .into(),
                    ))
                }
                Index::HasAudio | Index::Unknown => self.index = None,
            }
        }
        Ok(())
    }

    fn sha256(self) -> String {
        format!("{:x}", self.hash.finalize())
    }
}

/// Removes an upload, its chunks and its job; logged, never fails the request further.
async fn discard(state: &AppState, id: ObjectId) {
    if let Err(e) = state.storage.delete_video(id).await {
        tracing::error!(error = %e, video_fid = %id, "could not remove a discarded upload");
    }
    if let Err(e) = state.storage.delete_job(id).await {
        tracing::error!(error = %e, video_fid = %id, "could not remove a discarded job");
    }
}

async fn text_field(mut field: Field<'_>, name: &str, max: u64) -> ApiResult<String> {
    let mut value = Vec::new();
    while let Some(bytes) = field.chunk().await.map_err(|e| form_error(e, max))? {
        value.extend_from_slice(&bytes);
        if value.len() > MAX_TEXT_FIELD {
            return Err(ApiError::BadRequest(format!("field {name} is too long")));
        }
    }
    String::from_utf8(value)
        .map(|v| v.trim().to_owned())
        .map_err(|_| ApiError::BadRequest(format!("field {name} is not UTF-8 text")))
}

/// The name to store: the last path component of what the browser sent, bounded in length.
fn clean_filename(raw: Option<&str>) -> String {
    let name = raw
        .unwrap_or_default()
        .rsplit(['/', '\\'])
        .next()
        .unwrap_or_default()
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_FILENAME_CHARS)
        .collect::<String>();
    let name = name.trim();
    if name.is_empty() || name == "." || name == ".." {
        "upload".to_owned()
    } else {
        name.to_owned()
    }
}

/// The largest file this upload may store: `MAX_UPLOAD_BYTES`, or less when the user's quota
/// has less room left.
struct FileLimit {
    bytes: u64,
    /// `Some((quota, used))` when the quota is what limits.
    quota: Option<(u64, u64)>,
    max_upload_bytes: u64,
}

impl FileLimit {
    async fn of(state: &AppState, user: &User) -> ApiResult<Self> {
        let max_upload_bytes = state.config.max_upload_bytes;
        let Some(quota) = state.config.max_user_storage_bytes else {
            return Ok(Self {
                bytes: max_upload_bytes,
                quota: None,
                max_upload_bytes,
            });
        };
        let used = state.storage.usage_of(user.email()).await?;
        let room = quota.saturating_sub(used);
        Ok(Self {
            bytes: room.min(max_upload_bytes),
            quota: (room < max_upload_bytes).then_some((quota, used)),
            max_upload_bytes,
        })
    }

    /// The 413 for a file over this limit.
    fn exceeded(&self) -> ApiError {
        match self.quota {
            // 413 rather than 507: the client has to act (delete files), and a 5xx would count
            // as a server fault and invite retries that cannot succeed.
            Some((quota, used)) => ApiError::PayloadTooLarge(format!(
                "your files already take {used} of your {quota} bytes of storage ({:.0} MiB); \
                 delete some conversions to upload this file",
                quota as f64 / (1024.0 * 1024.0)
            )),
            None => too_large(self.max_upload_bytes),
        }
    }
}

fn too_large(max: u64) -> ApiError {
    ApiError::PayloadTooLarge(format!(
        "the file is larger than the limit of {max} bytes ({:.0} MiB)",
        max as f64 / (1024.0 * 1024.0)
    ))
}

fn form_error(e: MultipartError, max: u64) -> ApiError {
    if e.status().as_u16() == 413 {
        too_large(max)
    } else {
        ApiError::BadRequest(format!(
            "malformed or interrupted multipart body: {}",
            e.body_text()
        ))
    }
}

fn store_error(e: std::io::Error) -> ApiError {
    tracing::warn!(error = %e, "writing to GridFS failed");
    ApiError::Unavailable("the file store is unavailable, try again shortly".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filenames_lose_paths_and_control_characters() {
        assert_eq!(clean_filename(Some("C:\\Users\\me\\clip.mp4")), "clip.mp4");
        assert_eq!(clean_filename(Some("../../etc/passwd")), "passwd");
        assert_eq!(clean_filename(Some("a\nb.mp4")), "ab.mp4");
        assert_eq!(clean_filename(Some("..")), "upload");
        assert_eq!(clean_filename(None), "upload");
        assert_eq!(
            clean_filename(Some(&"x".repeat(999))).len(),
            MAX_FILENAME_CHARS
        );
    }

    #[test]
    fn form_fields_make_one_request() {
        let request = |bitrate, vbr_quality| {
            FormFields {
                bitrate,
                vbr_quality,
                callback_url: None,
            }
            .into_request()
        };
        assert_eq!(
            request(Some(192), None).unwrap().quality,
            Mp3Quality::cbr(192).unwrap()
        );
        assert_eq!(
            request(None, Some(2)).unwrap().quality,
            Mp3Quality::vbr(2).unwrap()
        );
        assert_eq!(request(None, None).unwrap().quality, Mp3Quality::default());
        for (bitrate, vbr, message) in [
            (
                Some(100),
                None,
                "bitrate must be one of [64, 96, 128, 160, 192, 224, 256, 320] kb/s, not 100",
            ),
            (None, Some(10), "VBR quality must be 0 (best) to 9, not 10"),
            (
                Some(128),
                Some(2),
                "give either bitrate or vbr_quality, not both",
            ),
        ] {
            let e = request(bitrate, vbr).unwrap_err();
            assert!(
                matches!(&e, ApiError::BadRequest(m) if m == message),
                "{e:?}"
            );
        }
        let with_hook = FormFields {
            callback_url: Some("https://example.com/hook".into()),
            ..FormFields::default()
        }
        .into_request()
        .unwrap();
        assert_eq!(
            with_hook.callback_url.as_deref(),
            Some("https://example.com/hook")
        );
    }
}
