//! MP3s shared by several uploads of the same content (instant repeats): who holds each one, and
//! its removal when the last holder lets it go. Used by the gateway (sharing, deleting jobs) and
//! the converter (removing duplicates and the MP3s of deleted jobs), so both count alike.
//!
//! An MP3 starts with one implicit holder: the upload its `metadata.video_fid` names (the files of
//! the original system all stay that way). The first share writes that holder out in
//! `metadata.holders` (`[{video_fid, owner}]`) with `metadata.refs`, its length; from then on every
//! change is one atomic update of the files document that matches only when it applies (a holder
//! is added once and removed once), so concurrent shares and releases, and a release repeated
//! after an interruption, keep the count right. `refs: 0` is final: nobody can share the MP3 any
//! more, and the file is deleted.

use mongodb::{
    bson::{doc, oid::ObjectId, Bson, Document},
    error::ErrorKind,
    gridfs::GridFsBucket,
    options::{GridFsBucketOptions, ReturnDocument},
    Collection, Database,
};

pub use crate::gridfs::Holder;
use crate::{
    gridfs::{
        keys,
        paths::{HOLDERS, HOLDERS_VIDEO_FID, OWNER, REFS, VIDEO_FID},
        Mp3Metadata,
    },
    names,
};

/// Most uploads one MP3 is shared by; a further repeat is converted anew, so that the holders
/// list stays far below MongoDB's 16 MB document limit.
pub const MAX_HOLDERS: i64 = 10_000;
/// Tries of an update that lost a race with a concurrent share or release.
const RACE_RETRIES: usize = 16;

/// What a release did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Released {
    /// The upload did not hold the MP3 (or it was already gone).
    NotHeld,
    /// Others still hold it: the file stays.
    Kept,
    /// That was the last holder: the file is deleted.
    Deleted,
}

/// The MP3s bucket with its reference counting.
#[derive(Debug, Clone)]
pub struct SharedMp3s {
    files: Collection<Document>,
    bucket: GridFsBucket,
}

impl SharedMp3s {
    /// The `fs` bucket of the MP3s database.
    pub fn new(mp3s: &Database) -> Self {
        Self {
            files: mp3s.collection(names::FILES_COLLECTION),
            bucket: mp3s.gridfs_bucket(
                GridFsBucketOptions::builder()
                    .bucket_name(names::BUCKET.to_owned())
                    .build(),
            ),
        }
    }

    /// Adds `holder` to MP3 `mp3`; false when it cannot be shared (gone, being deleted, or held
    /// by [`MAX_HOLDERS`] uploads already): the caller converts instead.
    pub async fn share(&self, mp3: ObjectId, holder: &Holder) -> mongodb::error::Result<bool> {
        for _ in 0..RACE_RETRIES {
            let Some(file) = self.files.find_one(doc! { "_id": mp3 }).await? else {
                return Ok(false);
            };
            let metadata = metadata_of(&file);
            if metadata.holders.is_none() {
                // Write out the implicit holder first; a release racing us sets `refs: 0`
                // instead, and then the share below finds nothing to add to.
                let Some(parent) = metadata.implicit_holder() else {
                    return Ok(false);
                };
                self.files
                    .update_one(
                        doc! { "_id": mp3, HOLDERS: { "$exists": false } },
                        doc! { "$set": { HOLDERS: [parent.to_document()], REFS: 1 } },
                    )
                    .await?;
                continue;
            }
            let added = self
                .files
                .update_one(
                    doc! {
                        "_id": mp3,
                        REFS: { "$gte": 1, "$lt": MAX_HOLDERS },
                        HOLDERS_VIDEO_FID: { "$ne": holder.video_fid },
                    },
                    doc! {
                        "$push": { HOLDERS: holder.to_document() },
                        "$inc": { REFS: 1 },
                    },
                )
                .await?;
            if added.modified_count == 1 {
                return Ok(true);
            }
            // Not added: already a holder (a repeated call), or no longer shareable.
            let now = self.files.find_one(doc! { "_id": mp3 }).await?;
            return Ok(
                now.is_some_and(|f| metadata_of(&f).is_held_by(holder.video_fid) && refs(&f) >= 1)
            );
        }
        Ok(false)
    }

    /// Removes upload `video_fid` from the holders of MP3 `mp3`; the last holder deletes the file.
    /// When the upload its `metadata.video_fid` names lets go, that field (and `metadata.owner`)
    /// moves to a remaining holder, so that the MP3 still names a live upload.
    pub async fn release(
        &self,
        mp3: ObjectId,
        video_fid: ObjectId,
    ) -> mongodb::error::Result<Released> {
        for _ in 0..RACE_RETRIES {
            let Some(file) = self.files.find_one(doc! { "_id": mp3 }).await? else {
                return Ok(Released::NotHeld);
            };
            let metadata = metadata_of(&file);
            if metadata.holders.is_none() {
                if !metadata.is_held_by(video_fid) {
                    return Ok(Released::NotHeld);
                }
                // Never shared: mark it dead unless a share wrote the holders meanwhile.
                let dead = self
                    .files
                    .update_one(
                        doc! { "_id": mp3, HOLDERS: { "$exists": false } },
                        doc! { "$set": { HOLDERS: [], REFS: 0 } },
                    )
                    .await?;
                if dead.modified_count == 1 {
                    self.delete(mp3).await?;
                    return Ok(Released::Deleted);
                }
                continue;
            }
            let after = self
                .files
                .find_one_and_update(
                    doc! { "_id": mp3, HOLDERS_VIDEO_FID: video_fid },
                    doc! {
                        "$pull": { HOLDERS: { keys::VIDEO_FID: video_fid } },
                        "$inc": { REFS: -1 },
                    },
                )
                .return_document(ReturnDocument::After)
                .await?;
            let Some(after) = after else {
                // Not a holder; a file left at `refs: 0` by an interrupted release is finished.
                if refs(&file) <= 0 {
                    self.delete(mp3).await?;
                    return Ok(Released::Deleted);
                }
                return Ok(Released::NotHeld);
            };
            if refs(&after) <= 0 {
                self.delete(mp3).await?;
                return Ok(Released::Deleted);
            }
            self.move_parent(mp3, video_fid).await?;
            return Ok(Released::Kept);
        }
        Ok(Released::NotHeld)
    }

    /// Deletes MP3 `mp3` unless another upload shares it (the converter's duplicates of one
    /// upload); true when it is gone.
    pub async fn delete_unshared(&self, mp3: ObjectId) -> mongodb::error::Result<bool> {
        for _ in 0..RACE_RETRIES {
            let Some(file) = self.files.find_one(doc! { "_id": mp3 }).await? else {
                return Ok(true);
            };
            match metadata_of(&file).holders {
                None => {
                    let dead = self
                        .files
                        .update_one(
                            doc! { "_id": mp3, HOLDERS: { "$exists": false } },
                            doc! { "$set": { HOLDERS: [], REFS: 0 } },
                        )
                        .await?;
                    if dead.modified_count == 1 {
                        self.delete(mp3).await?;
                        return Ok(true);
                    }
                }
                Some(_) if refs(&file) <= 0 => {
                    self.delete(mp3).await?;
                    return Ok(true);
                }
                Some(_) => return Ok(false),
            }
        }
        Ok(false)
    }

    /// Points `metadata.video_fid` and `metadata.owner` of MP3 `mp3` at a remaining holder when
    /// they named `gone`, as the original system expects of an MP3.
    async fn move_parent(&self, mp3: ObjectId, gone: ObjectId) -> mongodb::error::Result<()> {
        for _ in 0..RACE_RETRIES {
            let Some(file) = self
                .files
                .find_one(doc! { "_id": mp3, VIDEO_FID: gone.to_hex() })
                .await?
            else {
                return Ok(());
            };
            let Some(next) = metadata_of(&file)
                .holders
                .and_then(|h| h.into_iter().next())
            else {
                return Ok(());
            };
            let update = match &next.owner {
                Some(owner) => doc! { "$set": {
                    VIDEO_FID: next.video_fid.to_hex(), OWNER: owner,
                } },
                None => doc! {
                    "$set": { VIDEO_FID: next.video_fid.to_hex() },
                    "$unset": { OWNER: "" },
                },
            };
            let moved = self
                .files
                .update_one(
                    doc! {
                        "_id": mp3,
                        VIDEO_FID: gone.to_hex(),
                        HOLDERS_VIDEO_FID: next.video_fid,
                    },
                    update,
                )
                .await?;
            if moved.matched_count == 1 {
                return Ok(());
            }
        }
        Ok(())
    }

    async fn delete(&self, mp3: ObjectId) -> mongodb::error::Result<()> {
        match self.bucket.delete(Bson::ObjectId(mp3)).await {
            // No files document: removed by another release; its chunks went with this call.
            Err(e) if matches!(*e.kind, ErrorKind::GridFs(_)) => Ok(()),
            other => other,
        }
    }
}

/// The typed `metadata` of an MP3's files document.
fn metadata_of(file: &Document) -> Mp3Metadata {
    file.get_document("metadata")
        .map(Mp3Metadata::read)
        .unwrap_or_default()
}

/// How many holders an MP3 has; one (implicit) while never shared.
fn refs(file: &Document) -> i64 {
    metadata_of(file).refs.unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holders_and_the_implicit_one() {
        let a = ObjectId::new();
        let b = ObjectId::new();
        let plain = doc! { "video_fid": a.to_hex(), "owner": "u1" };
        let m = Mp3Metadata::read(&plain);
        assert!(m.holders.is_none());
        assert!(m.is_held_by(a));
        assert!(!m.is_held_by(b));
        assert_eq!(m.implicit_holder().unwrap().owner.as_deref(), Some("u1"));
        let shared = doc! {
            "video_fid": a.to_hex(),
            "holders": [ { "video_fid": b, "owner": "u2" } ],
            "refs": 1,
        };
        // The named upload let go: only the listed holders count.
        let m = Mp3Metadata::read(&shared);
        assert!(!m.is_held_by(a));
        assert!(m.is_held_by(b));
        assert_eq!(refs(&doc! { "metadata": shared }), 1);
        assert_eq!(refs(&doc! { "metadata": plain }), 1);
        assert_eq!(refs(&doc! { "metadata": { "refs": 0_i64 } }), 0);
    }
}
