//! The names the services share with the original system and with each other: databases, GridFS
//! buckets, collections and queues. Each is written here once; a running deployment of the
//! original depends on every one of them.

/// Database of the uploads and of the `jobs` collection, when `MONGODB_VIDEOS_URI` names none
/// (and always with `MONGODB_URI`).
pub const VIDEOS_DB: &str = "videos";
/// Database of the MP3s, when `MONGODB_MP3S_URI` names none (and always with `MONGODB_URI`).
pub const MP3S_DB: &str = "mp3s";
/// The GridFS bucket in both databases (pymongo's default).
pub const BUCKET: &str = "fs";
/// The files collection of [`BUCKET`].
pub const FILES_COLLECTION: &str = "fs.files";
/// The chunks collection of [`BUCKET`].
pub const CHUNKS_COLLECTION: &str = "fs.chunks";
/// The job documents, in the videos database (ours; the original has none).
pub const JOBS_COLLECTION: &str = "jobs";
/// The conversion queue when `VIDEO_QUEUE` is unset.
pub const VIDEO_QUEUE: &str = "video";
/// Appended to the conversion queue's name for its dead-letter queue (ours).
pub const DEAD_LETTER_QUEUE_SUFFIX: &str = ".dlq";

/// The dead-letter queue of conversion queue `queue`.
pub fn dead_letter_queue(queue: &str) -> String {
    format!("{queue}{DEAD_LETTER_QUEUE_SUFFIX}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_collections_follow_the_bucket_name() {
        assert_eq!(FILES_COLLECTION, format!("{BUCKET}.files"));
        assert_eq!(CHUNKS_COLLECTION, format!("{BUCKET}.chunks"));
        assert_eq!(dead_letter_queue("video"), "video.dlq");
    }
}
