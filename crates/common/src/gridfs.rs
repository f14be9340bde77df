//! What the services keep in GridFS besides the bytes: the `metadata` of an upload and of an MP3,
//! with every key written here once, and the lookup of the MP3s made from an upload.
//!
//! The original system writes uploads without metadata and MP3s with `metadata.video_fid` only;
//! ours add the owner, the file name, the content type and (for MP3s shared by repeats, see
//! [`crate::shared_mp3`]) the holders. Reading is lenient: a field of the wrong type reads as
//! absent, as it did before these types existed, so one odd document never hides a file.

use futures::TryStreamExt;
use mongodb::{
    bson::{self, doc, oid::ObjectId, Bson, Document},
    gridfs::{FilesCollectionDocument, GridFsBucket},
};
use serde::{de::DeserializeOwned, Deserialize, Deserializer, Serialize};

/// Keys inside `metadata` (and inside each of `metadata.holders`).
pub mod keys {
    /// Email of the uploader (ours; absent on the original's files).
    pub const OWNER: &str = "owner";
    /// The upload's original file name (ours).
    pub const FILENAME: &str = "filename";
    /// MIME type of the stored bytes (ours).
    pub const CONTENT_TYPE: &str = "content_type";
    /// On an MP3: the upload it was made from, as a hex string (the original's).
    pub const VIDEO_FID: &str = "video_fid";
    /// On a shared MP3: the uploads holding it.
    pub const HOLDERS: &str = "holders";
    /// On a shared MP3: how many holders it has.
    pub const REFS: &str = "refs";
}

/// The same keys as paths in a files document, for queries and updates.
pub mod paths {
    /// `metadata.owner`.
    pub const OWNER: &str = "metadata.owner";
    /// `metadata.video_fid`.
    pub const VIDEO_FID: &str = "metadata.video_fid";
    /// `metadata.holders`.
    pub const HOLDERS: &str = "metadata.holders";
    /// `metadata.holders.video_fid`: matches an MP3 one of whose holders is the upload.
    pub const HOLDERS_VIDEO_FID: &str = "metadata.holders.video_fid";
    /// `metadata.holders.owner`.
    pub const HOLDERS_OWNER: &str = "metadata.holders.owner";
    /// `metadata.refs`.
    pub const REFS: &str = "metadata.refs";
    /// GridFS `uploadDate` of a files document.
    pub const UPLOAD_DATE: &str = "uploadDate";
}

/// The `metadata` of an upload in the videos bucket.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct UploadMetadata {
    /// Email of the uploader; `None` on the original's uploads (readable by anyone).
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "lenient")]
    pub owner: Option<String>,
    /// The file name the client gave.
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "lenient")]
    pub filename: Option<String>,
    /// What the gateway found the bytes to be.
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "lenient")]
    pub content_type: Option<String>,
}

impl UploadMetadata {
    /// The metadata the gateway writes with an upload.
    pub fn new(owner: &str, filename: &str, content_type: &str) -> Self {
        Self {
            owner: Some(owner.to_owned()),
            filename: Some(filename.to_owned()),
            content_type: Some(content_type.to_owned()),
        }
    }

    /// Reads a files document's `metadata` (absent or odd fields read as `None`).
    pub fn read(metadata: &Document) -> Self {
        read(metadata)
    }

    /// As stored.
    pub fn to_document(&self) -> Document {
        to_document(self)
    }
}

/// The `metadata` of an MP3 in the mp3s bucket.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Mp3Metadata {
    /// The upload it was made from (its ObjectId in hex, as the original writes it); after the
    /// upload let go of a shared MP3, one of the remaining holders.
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "lenient")]
    pub video_fid: Option<String>,
    /// Always `audio/mpeg` on ours.
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "lenient")]
    pub content_type: Option<String>,
    /// Owner of the upload named by `video_fid`; `None` on the original's MP3s.
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "lenient")]
    pub owner: Option<String>,
    /// Every upload holding it, once it was first shared; `None` before: `video_fid` alone
    /// holds it.
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_holders"
    )]
    pub holders: Option<Vec<Holder>>,
    /// How many holders it has, written with `holders`.
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_count"
    )]
    pub refs: Option<i64>,
}

impl Mp3Metadata {
    /// Content type stored with every MP3.
    pub const CONTENT_TYPE: &'static str = "audio/mpeg";

    /// The metadata the converter writes with the MP3 of upload `video_fid`.
    pub fn new(video_fid: ObjectId, owner: Option<&str>) -> Self {
        Self {
            video_fid: Some(video_fid.to_hex()),
            content_type: Some(Self::CONTENT_TYPE.to_owned()),
            owner: owner.map(str::to_owned),
            holders: None,
            refs: None,
        }
    }

    /// Reads a files document's `metadata` (absent or odd fields read as `None`).
    pub fn read(metadata: &Document) -> Self {
        read(metadata)
    }

    /// As stored.
    pub fn to_document(&self) -> Document {
        to_document(self)
    }

    /// `video_fid` as an ObjectId, when it is one.
    pub fn video_fid(&self) -> Option<ObjectId> {
        ObjectId::parse_str(self.video_fid.as_deref()?).ok()
    }

    /// Whether upload `video_fid` holds this MP3: listed among the holders once it was shared,
    /// named by `video_fid` before.
    pub fn is_held_by(&self, video_fid: ObjectId) -> bool {
        match &self.holders {
            Some(holders) => holders.iter().any(|h| h.video_fid == video_fid),
            None => self.video_fid() == Some(video_fid),
        }
    }

    /// The holder an MP3 has before it is shared: the upload its `video_fid` names.
    pub fn implicit_holder(&self) -> Option<Holder> {
        Some(Holder {
            video_fid: self.video_fid()?,
            owner: self.owner.clone(),
        })
    }
}

/// One upload holding a shared MP3: an entry of `metadata.holders`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    /// The upload (its job's id), as an ObjectId.
    pub video_fid: ObjectId,
    /// Its owner; `None` for files of the original system.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
}

impl Holder {
    /// As stored in `metadata.holders`.
    pub fn to_document(&self) -> Document {
        to_document(self)
    }
}

/// The filter of the MP3s made from upload `video_fid`: the original's lookup by
/// `metadata.video_fid`.
pub fn made_from(video_fid: ObjectId) -> Document {
    doc! { paths::VIDEO_FID: video_fid.to_hex() }
}

/// The filter of the MP3s made from any of `video_fids`.
pub fn made_from_any(video_fids: &[ObjectId]) -> Document {
    let hex: Vec<String> = video_fids.iter().map(|id| id.to_hex()).collect();
    doc! { paths::VIDEO_FID: { "$in": hex } }
}

/// The order in which the MP3s of one upload are considered: oldest first (`_id`), the same for
/// every service, so that all keep and answer the same one.
pub fn oldest_first() -> Document {
    doc! { "_id": 1 }
}

/// The MP3s made from upload `video_fid` (`metadata.video_fid`), oldest first, whoever made them
/// (the original converter or ours). Shared MP3s the upload let go are among them only until
/// their `video_fid` moves on: [`Mp3Metadata::is_held_by`] tells.
pub async fn mp3s_made_from(
    mp3s: &GridFsBucket,
    video_fid: ObjectId,
) -> mongodb::error::Result<Vec<FilesCollectionDocument>> {
    mp3s.find(made_from(video_fid))
        .sort(oldest_first())
        .await?
        .try_collect()
        .await
}

fn read<T: DeserializeOwned + Default>(metadata: &Document) -> T {
    bson::from_bson(Bson::Document(metadata.clone())).unwrap_or_default()
}

fn to_document<T: Serialize>(value: &T) -> Document {
    match bson::to_bson(value) {
        Ok(Bson::Document(doc)) => doc,
        // Plain structs of strings, ids and numbers always serialize to a document.
        _ => Document::new(),
    }
}

/// `None` instead of an error for a value of another type.
fn lenient<'de, D: Deserializer<'de>, T: DeserializeOwned>(d: D) -> Result<Option<T>, D::Error> {
    let value = Bson::deserialize(d)?;
    Ok(bson::from_bson(value).ok())
}

/// The holders list; entries that are not holders are skipped, anything but a list is `None`.
fn lenient_holders<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<Holder>>, D::Error> {
    Ok(match Bson::deserialize(d)? {
        Bson::Array(list) => Some(
            list.into_iter()
                .filter_map(|h| bson::from_bson(h).ok())
                .collect(),
        ),
        _ => None,
    })
}

/// A count stored as any BSON number.
fn lenient_count<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    Ok(match Bson::deserialize(d)? {
        Bson::Int32(n) => Some(i64::from(n)),
        Bson::Int64(n) => Some(n),
        Bson::Double(n) => Some(n as i64),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upload_metadata_has_the_gateways_keys() {
        let doc = UploadMetadata::new("a@b.c", "v.mp4", "video/mp4").to_document();
        assert_eq!(
            doc,
            doc! { keys::OWNER: "a@b.c", keys::FILENAME: "v.mp4", keys::CONTENT_TYPE: "video/mp4" }
        );
        assert_eq!(
            doc,
            doc! { "owner": "a@b.c", "filename": "v.mp4", "content_type": "video/mp4" }
        );
        assert_eq!(UploadMetadata::read(&doc).owner.as_deref(), Some("a@b.c"));
        // The original's uploads carry no metadata.
        assert_eq!(
            UploadMetadata::read(&Document::new()),
            UploadMetadata::default()
        );
    }

    #[test]
    fn mp3_metadata_has_the_original_video_fid() {
        let id = ObjectId::new();
        let doc = Mp3Metadata::new(id, Some("a@b.c")).to_document();
        assert_eq!(
            doc,
            doc! { "video_fid": id.to_hex(), "content_type": "audio/mpeg", "owner": "a@b.c" }
        );
        let back = Mp3Metadata::read(&doc);
        assert_eq!(back.video_fid(), Some(id));
        assert!(back.is_held_by(id));
        assert!(!back.is_held_by(ObjectId::new()));
        assert_eq!(
            back.implicit_holder().unwrap().owner.as_deref(),
            Some("a@b.c")
        );
        // The original converter's MP3: no owner.
        let original = Mp3Metadata::read(&doc! { "video_fid": id.to_hex() });
        assert_eq!(original.owner, None);
        assert!(original.is_held_by(id));
    }

    #[test]
    fn odd_fields_read_as_absent() {
        let a = ObjectId::new();
        let b = ObjectId::new();
        let odd = doc! {
            "video_fid": 12, "owner": true,
            "holders": [ { "video_fid": b, "owner": "u2" }, "junk", { "owner": "no id" } ],
            "refs": 1.0,
        };
        let m = Mp3Metadata::read(&odd);
        assert_eq!(m.video_fid, None);
        assert_eq!(m.owner, None);
        assert_eq!(m.refs, Some(1));
        let holders = m.holders.clone().unwrap();
        assert_eq!(
            holders,
            vec![Holder {
                video_fid: b,
                owner: Some("u2".into())
            }]
        );
        assert!(m.is_held_by(b));
        assert!(!m.is_held_by(a));
    }

    #[test]
    fn paths_are_the_keys_under_metadata() {
        for (path, key) in [
            (paths::OWNER, keys::OWNER),
            (paths::VIDEO_FID, keys::VIDEO_FID),
            (paths::HOLDERS, keys::HOLDERS),
            (paths::REFS, keys::REFS),
        ] {
            assert_eq!(path, format!("metadata.{key}"));
        }
        assert_eq!(
            paths::HOLDERS_VIDEO_FID,
            format!("{}.{}", paths::HOLDERS, keys::VIDEO_FID)
        );
        assert_eq!(
            paths::HOLDERS_OWNER,
            format!("{}.{}", paths::HOLDERS, keys::OWNER)
        );
        let holder = Holder {
            video_fid: ObjectId::new(),
            owner: Some("o".into()),
        };
        let doc = holder.to_document();
        assert!(doc.contains_key(keys::VIDEO_FID) && doc.contains_key(keys::OWNER));
    }
}
