//! Messages of the original gateway, which writes no job document: the converter adopts them by
//! creating the job from the upload's files document, so that the rest of the pipeline (claims,
//! progress, status) works the same for both gateways.

use common::{
    gridfs::UploadMetadata,
    jobs::{Job, Mp3Quality},
    message::VideoMessage,
};
use mongodb::{bson::oid::ObjectId, gridfs::FilesCollectionDocument};

use super::{JobError, Worker};

impl Worker {
    /// Creates the job for a message without one, from the upload's file document.
    pub(super) async fn adopt(
        &self,
        message: &VideoMessage,
        id: ObjectId,
        upload: &FilesCollectionDocument,
    ) -> Result<Job, JobError> {
        let job = Job::queued(
            id,
            owner_of(message),
            filename_of(id, upload),
            Mp3Quality::default(),
            i64::try_from(upload.length).ok(),
        );
        self.storage.create_job(&job).await?;
        // Deleted between our look and the insert: the job just made must not outlive it.
        if self.storage.upload(id).await?.is_none() {
            return Err(JobError::Deleted);
        }
        tracing::info!("created the job for a message without one");
        Ok(job)
    }
}

/// The upload's name: the files document's, else the one our gateway keeps in the metadata,
/// else one made from the id.
fn filename_of(id: ObjectId, upload: &FilesCollectionDocument) -> String {
    upload
        .filename
        .clone()
        .or_else(|| {
            upload
                .metadata
                .as_ref()
                .and_then(|m| UploadMetadata::read(m).filename)
        })
        .unwrap_or_else(|| format!("{}.mp4", id.to_hex()))
}

/// The message's `username`, when it names someone.
fn owner_of(message: &VideoMessage) -> Option<String> {
    let owner = message.username.trim();
    (!owner.is_empty()).then(|| owner.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_blank_username_owns_nothing() {
        assert_eq!(
            owner_of(&VideoMessage::new("f", " a@b.c ")).as_deref(),
            Some("a@b.c")
        );
        assert_eq!(owner_of(&VideoMessage::new("f", "  ")), None);
    }
}
