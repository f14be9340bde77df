//! The `jobs` collection: one document per upload, written by the gateway and the converter.
//!
//! Lives in the videos database ([`crate::names::JOBS_COLLECTION`]). `_id` is the upload's GridFS
//! ObjectId, so a job is found by the `video_fid` clients already hold. Uploads made by the
//! original system have no job document.

use mongodb::bson::{oid::ObjectId, DateTime};
use serde::{Deserialize, Serialize};

/// Field names of a job document, for queries and partial updates (the document itself is
/// [`Job`]; a test checks the two agree).
pub mod fields {
    /// The upload's ObjectId.
    pub const ID: &str = "_id";
    /// [`super::Job::owner`].
    pub const OWNER: &str = "owner";
    /// [`super::Job::filename`].
    pub const FILENAME: &str = "filename";
    /// [`super::Job::state`].
    pub const STATE: &str = "state";
    /// [`super::Job::progress`].
    pub const PROGRESS: &str = "progress";
    /// [`super::Job::mp3_fid`].
    pub const MP3_FID: &str = "mp3_fid";
    /// [`super::Job::error`].
    pub const ERROR: &str = "error";
    /// [`super::Job::quality`].
    pub const QUALITY: &str = "quality";
    /// [`super::Job::size`].
    pub const SIZE: &str = "size";
    /// [`super::Job::duration_secs`].
    pub const DURATION_SECS: &str = "duration_secs";
    /// [`super::Job::attempts`].
    pub const ATTEMPTS: &str = "attempts";
    /// [`super::Job::started_at`].
    pub const STARTED_AT: &str = "started_at";
    /// [`super::Job::processing_secs`].
    pub const PROCESSING_SECS: &str = "processing_secs";
    /// [`super::Job::webhook`].
    pub const WEBHOOK: &str = "webhook";
    /// [`super::Job::created_at`].
    pub const CREATED_AT: &str = "created_at";
    /// [`super::Job::updated_at`].
    pub const UPDATED_AT: &str = "updated_at";
    /// `webhook.status`.
    pub const WEBHOOK_STATUS: &str = "webhook.status";
    /// `webhook.attempts`.
    pub const WEBHOOK_ATTEMPTS: &str = "webhook.attempts";
    /// `webhook.next_attempt_at`.
    pub const WEBHOOK_NEXT_ATTEMPT_AT: &str = "webhook.next_attempt_at";
    /// `webhook.last_error`.
    pub const WEBHOOK_LAST_ERROR: &str = "webhook.last_error";
    /// `webhook.delivered_at`.
    pub const WEBHOOK_DELIVERED_AT: &str = "webhook.delivered_at";
}

pub use crate::states::JobState;

/// What the MP3 should be: constant bitrate or LAME VBR quality. Default: 128 kb/s CBR.
///
/// Holds only values a converter can use: built through [`Mp3Quality::cbr`] and
/// [`Mp3Quality::vbr`] (or read from a job document, which checks the same way).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mp3Quality {
    /// Constant bitrate: one of [`ALLOWED_BITRATES_KBPS`].
    Cbr { bitrate_kbps: Bitrate },
    /// LAME VBR quality, 0 (best) to 9.
    Vbr { quality: VbrQuality },
}

pub use crate::states::{ALLOWED_BITRATES_KBPS, MAX_VBR_QUALITY};

/// A quality a client chose that no MP3 can have; the message is meant for the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidQuality(String);

/// A constant bitrate in kb/s, one of [`ALLOWED_BITRATES_KBPS`]; stored as the bare number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "u32", into = "u32")]
pub struct Bitrate(u32);

impl Bitrate {
    /// The bitrate in kb/s.
    pub fn kbps(self) -> u32 {
        self.0
    }
}

impl TryFrom<u32> for Bitrate {
    type Error = InvalidQuality;
    fn try_from(kbps: u32) -> Result<Self, InvalidQuality> {
        if ALLOWED_BITRATES_KBPS.contains(&kbps) {
            Ok(Self(kbps))
        } else {
            Err(InvalidQuality(format!(
                "bitrate must be one of {ALLOWED_BITRATES_KBPS:?} kb/s, not {kbps}"
            )))
        }
    }
}

impl From<Bitrate> for u32 {
    fn from(bitrate: Bitrate) -> u32 {
        bitrate.0
    }
}

impl std::fmt::Display for Bitrate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// A LAME VBR quality, 0 (best) to [`MAX_VBR_QUALITY`]; stored as the bare number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "u8", into = "u8")]
pub struct VbrQuality(u8);

impl VbrQuality {
    /// The quality, 0 to [`MAX_VBR_QUALITY`].
    pub fn get(self) -> u8 {
        self.0
    }
}

impl TryFrom<u8> for VbrQuality {
    type Error = InvalidQuality;
    fn try_from(quality: u8) -> Result<Self, InvalidQuality> {
        if quality <= MAX_VBR_QUALITY {
            Ok(Self(quality))
        } else {
            Err(InvalidQuality(format!(
                "VBR quality must be 0 (best) to {MAX_VBR_QUALITY}, not {quality}"
            )))
        }
    }
}

impl From<VbrQuality> for u8 {
    fn from(quality: VbrQuality) -> u8 {
        quality.0
    }
}

impl std::fmt::Display for VbrQuality {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl Default for Mp3Quality {
    fn default() -> Self {
        Self::Cbr {
            bitrate_kbps: Bitrate(128),
        }
    }
}

impl Mp3Quality {
    /// Constant bitrate `kbps`; refused unless one of [`ALLOWED_BITRATES_KBPS`].
    pub fn cbr(kbps: u32) -> Result<Self, InvalidQuality> {
        Ok(Self::Cbr {
            bitrate_kbps: Bitrate::try_from(kbps)?,
        })
    }

    /// LAME VBR quality `quality`; refused above [`MAX_VBR_QUALITY`].
    pub fn vbr(quality: u8) -> Result<Self, InvalidQuality> {
        Ok(Self::Vbr {
            quality: VbrQuality::try_from(quality)?,
        })
    }
}

/// A job document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    /// The upload's ObjectId (its `video_fid`).
    #[serde(rename = "_id")]
    pub id: ObjectId,
    /// Email of the uploader; `None` for jobs made from an original-system message without one.
    pub owner: Option<String>,
    /// The upload's original file name.
    pub filename: String,
    /// Where the conversion stands.
    pub state: JobState,
    /// 0 to 100 while processing; 100 once completed.
    pub progress: f64,
    /// The MP3's ObjectId once completed.
    pub mp3_fid: Option<ObjectId>,
    /// Why it failed, in words for the user.
    pub error: Option<String>,
    /// Output options chosen at upload.
    #[serde(default)]
    pub quality: Mp3Quality,
    /// Size of the upload in bytes.
    pub size: Option<i64>,
    /// Duration of the source, seconds, once known.
    pub duration_secs: Option<f64>,
    /// How many times a converter started this job.
    #[serde(default)]
    pub attempts: i32,
    /// When a converter last started this job (set with `processing`), for the gateway's ETA.
    #[serde(default)]
    pub started_at: Option<DateTime>,
    /// Wall-clock seconds the converter spent on it, from start to the stored MP3: the measured
    /// speed the gateway's queue ETA is based on.
    #[serde(default)]
    pub processing_secs: Option<f64>,
    /// The callback asked for at upload and where its delivery stands; absent without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<Webhook>,
    /// When the upload was stored.
    pub created_at: DateTime,
    /// Last change.
    pub updated_at: DateTime,
}

impl Job {
    /// A new queued job for an upload.
    pub fn queued(
        id: ObjectId,
        owner: Option<String>,
        filename: String,
        quality: Mp3Quality,
        size: Option<i64>,
    ) -> Self {
        let now = DateTime::now();
        Self {
            id,
            owner,
            filename,
            state: JobState::Queued,
            progress: 0.0,
            mp3_fid: None,
            error: None,
            quality,
            size,
            duration_secs: None,
            attempts: 0,
            started_at: None,
            processing_secs: None,
            webhook: None,
            created_at: now,
            updated_at: now,
        }
    }
}

/// Where a webhook's delivery stands. Stored in lowercase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WebhookStatus {
    /// Waiting for the job to end, or for the next attempt.
    Pending,
    /// The receiver answered 2xx.
    Delivered,
    /// Every attempt failed; no more are made.
    Failed,
}

impl WebhookStatus {
    /// The lowercase name, as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
        }
    }
}

/// A job's callback: POSTed (signed) once the job completes or fails. Kept in the job document so
/// that deliveries survive restarts and any gateway replica can make them (see
/// `docs/webhooks.md`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Webhook {
    /// The URL given at upload (http or https), checked then and again at every attempt.
    pub url: String,
    /// Where the delivery stands.
    pub status: WebhookStatus,
    /// Attempts made (claimed) so far.
    #[serde(default)]
    pub attempts: i32,
    /// Not before this may the next attempt be made (once the job is final). Also the lease of
    /// an attempt in flight: a replica that dies mid-attempt leaves it to another after this.
    pub next_attempt_at: DateTime,
    /// Why the last attempt failed.
    #[serde(default)]
    pub last_error: Option<String>,
    /// When the receiver accepted it.
    #[serde(default)]
    pub delivered_at: Option<DateTime>,
}

impl Webhook {
    /// A delivery to `url`, due as soon as the job is final.
    pub fn pending(url: String) -> Self {
        Self {
            url,
            status: WebhookStatus::Pending,
            attempts: 0,
            next_attempt_at: DateTime::now(),
            last_error: None,
            delivered_at: None,
        }
    }
}

/// The ID3 title the converter writes into the MP3 of an upload named `filename`: its stem
/// (`holiday.mp4` -> `holiday`).
pub fn mp3_title(filename: &str) -> Option<String> {
    let name = filename.rsplit(['/', '\\']).next().unwrap_or(filename);
    let stem = match name.rsplit_once('.') {
        Some((stem, _)) if !stem.is_empty() => stem,
        _ => name,
    };
    let stem = stem.trim();
    (!stem.is_empty()).then(|| stem.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quality_holds_only_usable_values() {
        let Mp3Quality::Cbr { bitrate_kbps } = Mp3Quality::cbr(192).unwrap() else {
            panic!("cbr gives Cbr");
        };
        assert_eq!(bitrate_kbps.kbps(), 192);
        assert_eq!(
            Mp3Quality::cbr(100).unwrap_err().to_string(),
            "bitrate must be one of [64, 96, 128, 160, 192, 224, 256, 320] kb/s, not 100"
        );
        assert!(Mp3Quality::vbr(2).is_ok());
        assert!(Mp3Quality::vbr(9).is_ok());
        assert_eq!(
            Mp3Quality::vbr(10).unwrap_err().to_string(),
            "VBR quality must be 0 (best) to 9, not 10"
        );
    }

    #[test]
    fn a_stored_quality_out_of_range_is_refused_on_read() {
        let doc = mongodb::bson::doc! { "vbr": { "quality": 12_i32 } };
        assert!(mongodb::bson::from_document::<Mp3Quality>(doc).is_err());
        let doc = mongodb::bson::doc! { "cbr": { "bitrate_kbps": 100_i64 } };
        assert!(mongodb::bson::from_document::<Mp3Quality>(doc).is_err());
        let doc = mongodb::bson::doc! { "vbr": { "quality": 4_i32 } };
        assert_eq!(
            mongodb::bson::from_document::<Mp3Quality>(doc).unwrap(),
            Mp3Quality::vbr(4).unwrap()
        );
    }

    #[test]
    fn document_shape() {
        let job = Job::queued(
            ObjectId::new(),
            Some("a@b.c".into()),
            "v.mp4".into(),
            Mp3Quality::default(),
            Some(3),
        );
        let doc = mongodb::bson::to_document(&job).unwrap();
        assert_eq!(doc.get_str("state").unwrap(), "queued");
        assert_eq!(
            doc.get_document("quality").unwrap(),
            &mongodb::bson::doc! { "cbr": { "bitrate_kbps": 128_i64 } }
        );
        assert!(
            !doc.contains_key("webhook"),
            "no webhook field without a callback"
        );
        let back: Job = mongodb::bson::from_document(doc).unwrap();
        assert_eq!(back, job);
    }

    #[test]
    fn field_names_are_the_documents_keys() {
        let mut job = Job::queued(
            ObjectId::new(),
            Some("a@b.c".into()),
            "v.mp4".into(),
            Mp3Quality::default(),
            Some(3),
        );
        job.webhook = Some(Webhook::pending("https://example.com/hook".into()));
        let doc = mongodb::bson::to_document(&job).unwrap();
        let mut keys: Vec<&str> = doc.keys().map(String::as_str).collect();
        keys.sort_unstable();
        let mut expected = vec![
            fields::ID,
            fields::OWNER,
            fields::FILENAME,
            fields::STATE,
            fields::PROGRESS,
            fields::MP3_FID,
            fields::ERROR,
            fields::QUALITY,
            fields::SIZE,
            fields::DURATION_SECS,
            fields::ATTEMPTS,
            fields::STARTED_AT,
            fields::PROCESSING_SECS,
            fields::WEBHOOK,
            fields::CREATED_AT,
            fields::UPDATED_AT,
        ];
        expected.sort_unstable();
        assert_eq!(keys, expected);
        let hook = doc.get_document(fields::WEBHOOK).unwrap();
        for path in [
            fields::WEBHOOK_STATUS,
            fields::WEBHOOK_ATTEMPTS,
            fields::WEBHOOK_NEXT_ATTEMPT_AT,
            fields::WEBHOOK_LAST_ERROR,
            fields::WEBHOOK_DELIVERED_AT,
        ] {
            let key = path.strip_prefix("webhook.").unwrap();
            assert!(hook.contains_key(key), "{key}");
        }
    }

    #[test]
    fn webhook_shape() {
        let mut job = Job::queued(
            ObjectId::new(),
            None,
            "v.mp4".into(),
            Mp3Quality::default(),
            None,
        );
        job.webhook = Some(Webhook::pending("https://example.com/hook".into()));
        let doc = mongodb::bson::to_document(&job).unwrap();
        let hook = doc.get_document("webhook").unwrap();
        assert_eq!(hook.get_str("status").unwrap(), "pending");
        assert_eq!(hook.get_str("url").unwrap(), "https://example.com/hook");
        let back: Job = mongodb::bson::from_document(doc).unwrap();
        assert_eq!(back, job);
    }
}
