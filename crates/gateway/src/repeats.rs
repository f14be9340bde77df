//! Instant repeats: an upload whose content, quality and title match a finished conversion
//! shares that conversion's MP3 (reference-counted, `common::shared_mp3`) instead of being
//! converted again. It gets its own job, completed at once.
//!
//! The title is part of the match because the converter writes it into the MP3 (ID3): sharing
//! an MP3 across titles would show one user another's file name.

use common::jobs::{mp3_title, Job, Mp3Quality};
use mongodb::bson::oid::ObjectId;
use sha2::{Digest, Sha256};

use crate::AppState;

/// What a repeat must match to share an MP3: the upload's SHA-256 (hex), the quality asked for
/// and the ID3 title its file name gives; hashed, so the key has a fixed length.
pub fn repeat_key(content_sha256: &str, quality: Mp3Quality, filename: &str) -> String {
    let quality = match quality {
        Mp3Quality::Cbr { bitrate_kbps } => format!("cbr:{bitrate_kbps}"),
        Mp3Quality::Vbr { quality } => format!("vbr:{quality}"),
    };
    let title = mp3_title(filename).unwrap_or_default();
    let mut key = Sha256::new();
    for part in [content_sha256, &quality, &title] {
        key.update((part.len() as u64).to_be_bytes());
        key.update(part.as_bytes());
    }
    format!("{:x}", key.finalize())
}

/// Shares the MP3 of a finished conversion with key `key` with the queued `job`, and completes
/// the job with it; the MP3 shared, or `None` when there is none to share (the caller queues
/// the job for conversion). A failure here is logged and only costs the conversion.
pub async fn share_existing(
    state: &AppState,
    job: &Job,
    owner: &str,
    key: &str,
) -> Option<ObjectId> {
    let candidates = match state.storage.shareable(key).await {
        Ok(candidates) => candidates,
        Err(e) => {
            tracing::warn!(error = %e, video_fid = %job.id, "cannot look for a conversion to share");
            return None;
        }
    };
    for candidate in candidates {
        match state
            .storage
            .share_mp3(candidate.mp3_fid, job.id, owner)
            .await
        {
            Ok(true) => {}
            // Deleted meanwhile (its last holder let go): try the next, or convert.
            Ok(false) => continue,
            Err(e) => {
                tracing::warn!(error = %e, video_fid = %job.id, "cannot share an MP3");
                release(state, candidate.mp3_fid, job.id).await;
                return None;
            }
        }
        match state.storage.complete_repeat(job.id, &candidate).await {
            Ok(true) => return Some(candidate.mp3_fid),
            Ok(false) => {
                tracing::warn!(video_fid = %job.id, "the repeat's job changed while sharing");
            }
            Err(e) => {
                tracing::warn!(error = %e, video_fid = %job.id, "cannot complete a repeat");
            }
        }
        release(state, candidate.mp3_fid, job.id).await;
        return None;
    }
    None
}

/// Gives back a share taken for a repeat that is converted after all; logged only (the job's
/// deletion lets go of it too).
async fn release(state: &AppState, mp3_fid: ObjectId, video_fid: ObjectId) {
    if let Err(e) = state.storage.release_mp3(mp3_fid, video_fid).await {
        tracing::warn!(error = %e, %mp3_fid, %video_fid, "cannot give back a share");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_tells_content_quality_and_title_apart() {
        let cbr = Mp3Quality::cbr(128).unwrap();
        let key = repeat_key("ab", cbr, "lecture.mp4");
        assert_eq!(key.len(), 64);
        // Same title from another container name or folder: the same MP3.
        assert_eq!(key, repeat_key("ab", cbr, "lecture.mkv"));
        assert_ne!(key, repeat_key("ac", cbr, "lecture.mp4"));
        assert_ne!(key, repeat_key("ab", cbr, "talk.mp4"));
        assert_ne!(
            key,
            repeat_key("ab", Mp3Quality::cbr(192).unwrap(), "lecture.mp4")
        );
        assert_ne!(
            key,
            repeat_key("ab", Mp3Quality::vbr(2).unwrap(), "lecture.mp4")
        );
        // Lengths are part of the key: moving bytes between parts changes it.
        assert_ne!(
            repeat_key("a", cbr, "bc.mp4"),
            repeat_key("ab", cbr, "c.mp4")
        );
    }
}
