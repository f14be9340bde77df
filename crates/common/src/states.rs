//! The vocabulary of a conversion that the services, the API and its clients share: the job's
//! state, the original's `status` field, and the MP3 qualities an upload may ask for. Free of
//! any driver, so that a client (the `vidconv` CLI) uses the same words as the gateway.

use serde::{Deserialize, Serialize};

/// Where a conversion stands. Stored in lowercase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    /// Stored and published, waiting for a converter.
    Queued,
    /// A converter is working on it; see `progress`.
    Processing,
    /// The MP3 is stored; see `mp3_fid`.
    Completed,
    /// It can never succeed; see `error`.
    Failed,
}

impl JobState {
    /// The lowercase name, as stored and as shown to clients.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Processing => "processing",
            Self::Completed => "completed",
            Self::Failed => "failed",
        }
    }

    /// Whether the job will not change any more.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Completed | Self::Failed)
    }
}

/// The original's `status` field: what an old client knows of a conversion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Queued or converting (the original knows no other word for either).
    Processing,
    /// The MP3 is ready; see `mp3_fid`.
    Completed,
    /// It can never succeed; see `error`.
    Failed,
}

impl Status {
    /// Whether the conversion will not change any more.
    pub fn is_final(self) -> bool {
        self != Self::Processing
    }
}

/// The bitrates an upload may ask for.
pub const ALLOWED_BITRATES_KBPS: &[u32] = &[64, 96, 128, 160, 192, 224, 256, 320];

/// The worst LAME VBR quality (0 is the best).
pub const MAX_VBR_QUALITY: u8 = 9;
