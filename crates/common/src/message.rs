//! The message on the `video` queue, exactly as the original gateway publishes it.

use serde::{Deserialize, Serialize};

/// A conversion request: `{"video_fid":"<hex>","mp3_fid":null,"username":"<email>"}`.
///
/// Unknown fields are ignored so that newer producers never break older consumers; the fields we
/// add are optional so that messages from the original gateway still parse.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VideoMessage {
    /// ObjectId of the upload in the `videos` GridFS bucket, as 24 hex characters.
    pub video_fid: String,
    /// Always `null` on the queue; kept for compatibility with the original.
    pub mp3_fid: Option<String>,
    /// Email of the uploader.
    pub username: String,
}

impl VideoMessage {
    /// A new request for `video_fid` uploaded by `username`.
    pub fn new(video_fid: impl Into<String>, username: impl Into<String>) -> Self {
        Self {
            video_fid: video_fid.into(),
            mp3_fid: None,
            username: username.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serializes_like_the_original() {
        let json = serde_json::to_value(VideoMessage::new("abc", "a@b.c")).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"video_fid": "abc", "mp3_fid": null, "username": "a@b.c"})
        );
    }

    #[test]
    fn ignores_unknown_fields() {
        let m: VideoMessage =
            serde_json::from_str(r#"{"video_fid":"f","mp3_fid":null,"username":"u","x":1}"#)
                .unwrap();
        assert_eq!(m, VideoMessage::new("f", "u"));
    }
}
