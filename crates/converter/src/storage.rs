//! MongoDB access: the uploads (GridFS `videos`), the MP3s (GridFS `mp3s`) and the `jobs` collection.

use std::path::Path;

use common::{
    jobs::{self, Job, JobState},
    mongo::{MongoLocations, ServerProblem},
};
use futures::TryStreamExt;
use mongodb::{
    bson::{doc, oid::ObjectId, Bson, DateTime, Document},
    gridfs::{FilesCollectionDocument, GridFsBucket},
    options::GridFsBucketOptions,
    Client, Collection, Database,
};
use tokio::io::AsyncWriteExt;
use tokio_util::compat::{FuturesAsyncReadCompatExt, FuturesAsyncWriteCompatExt};

/// Content type stored with every MP3.
pub const MP3_CONTENT_TYPE: &str = "audio/mpeg";
/// GridFS bucket name in both databases, as the original.
const BUCKET: &str = "fs";

/// A Mongo or I/O failure while storing or fetching; always worth retrying.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The database answered with an error or is unreachable.
    #[error("MongoDB: {0}")]
    Mongo(#[source] mongodb::error::Error),
    /// The server is older than the driver supports; the sentence says which and what to do.
    /// Not the message's fault: it waits in the queue until the server is replaced.
    #[error("{0}")]
    TooOld(String),
    /// Reading or writing a local temporary file failed.
    #[error("temporary file: {0}")]
    Io(#[from] std::io::Error),
}

impl From<mongodb::error::Error> for StorageError {
    fn from(e: mongodb::error::Error) -> Self {
        match common::mongo::too_old(&e) {
            Some(sentence) => Self::TooOld(sentence),
            None => Self::Mongo(e),
        }
    }
}

/// Handles on the two databases.
#[derive(Clone, Debug)]
pub struct Storage {
    videos_db: Database,
    mp3s_db: Database,
    jobs: Collection<Job>,
    videos: GridFsBucket,
    mp3s: GridFsBucket,
}

impl Storage {
    /// Clients for both locations; connecting is lazy, so this works while Mongo is down.
    pub async fn connect(locations: &MongoLocations) -> Result<Self, StorageError> {
        let videos_client = Client::with_uri_str(&locations.videos.uri).await?;
        let mp3s_client = if locations.mp3s.uri == locations.videos.uri {
            videos_client.clone()
        } else {
            Client::with_uri_str(&locations.mp3s.uri).await?
        };
        let videos_db = videos_client.database(&locations.videos.database);
        let mp3s_db = mp3s_client.database(&locations.mp3s.database);
        let bucket = |db: &Database| {
            db.gridfs_bucket(
                GridFsBucketOptions::builder()
                    .bucket_name(BUCKET.to_owned())
                    .build(),
            )
        };
        Ok(Self {
            jobs: videos_db.collection(jobs::COLLECTION),
            videos: bucket(&videos_db),
            mp3s: bucket(&mp3s_db),
            videos_db,
            mp3s_db,
        })
    }

    /// Round trip to both databases' servers, which must be new enough for the driver (readiness,
    /// and before consuming); answers the server version.
    pub async fn check_server(&self) -> Result<String, StorageError> {
        let mut versions = Vec::new();
        for db in [&self.videos_db, &self.mp3s_db] {
            let version =
                common::mongo::check_server(db)
                    .await
                    .map_err(|problem| match problem {
                        ServerProblem::TooOld(sentence) => StorageError::TooOld(sentence),
                        ServerProblem::Other(e) => StorageError::Mongo(e),
                    })?;
            if !versions.contains(&version) {
                versions.push(version);
            }
        }
        Ok(versions.join(", "))
    }

    /// The job of an upload, if the gateway (or an earlier attempt) wrote one.
    pub async fn job(&self, id: ObjectId) -> Result<Option<Job>, StorageError> {
        Ok(self.jobs.find_one(doc! { "_id": id }).await?)
    }

    /// The upload's GridFS file document.
    pub async fn upload(
        &self,
        id: ObjectId,
    ) -> Result<Option<FilesCollectionDocument>, StorageError> {
        Ok(self.videos.find_one(doc! { "_id": id }).await?)
    }

    /// Inserts a job unless one with its id exists (another converter may race us).
    pub async fn create_job(&self, job: &Job) -> Result<(), StorageError> {
        let mut doc = mongodb::bson::to_document(job)
            .map_err(|e| mongodb::error::Error::custom(e.to_string()))?;
        // The upsert takes `_id` from the filter; naming it in the update is not allowed.
        doc.remove("_id");
        self.jobs
            .clone_with_type::<Document>()
            .update_one(doc! { "_id": job.id }, doc! { "$setOnInsert": doc })
            .upsert(true)
            .await?;
        Ok(())
    }

    /// Marks a job as being converted and counts the attempt.
    pub async fn start_job(&self, id: ObjectId) -> Result<(), StorageError> {
        self.jobs
            .update_one(
                doc! { "_id": id },
                doc! {
                    "$set": { "state": JobState::Processing.as_str(), "progress": 0.0,
                              "error": Bson::Null, "updated_at": DateTime::now() },
                    "$inc": { "attempts": 1 },
                },
            )
            .await?;
        Ok(())
    }

    /// Records progress of a job still processing.
    pub async fn set_progress(&self, id: ObjectId, progress: f64) -> Result<(), StorageError> {
        self.jobs
            .update_one(
                doc! { "_id": id, "state": JobState::Processing.as_str() },
                doc! { "$set": { "progress": progress, "updated_at": DateTime::now() } },
            )
            .await?;
        Ok(())
    }

    /// Records the finished MP3.
    pub async fn complete_job(
        &self,
        id: ObjectId,
        mp3_fid: ObjectId,
        duration_secs: Option<f64>,
    ) -> Result<(), StorageError> {
        let mut set = doc! {
            "state": JobState::Completed.as_str(), "progress": 100.0, "mp3_fid": mp3_fid,
            "error": Bson::Null, "updated_at": DateTime::now(),
        };
        if let Some(d) = duration_secs {
            set.insert("duration_secs", d);
        }
        self.jobs
            .update_one(doc! { "_id": id }, doc! { "$set": set })
            .await?;
        Ok(())
    }

    /// Records why a job can never succeed.
    pub async fn fail_job(&self, id: ObjectId, reason: &str) -> Result<(), StorageError> {
        self.jobs
            .update_one(
                doc! { "_id": id },
                doc! { "$set": { "state": JobState::Failed.as_str(), "error": reason,
                "updated_at": DateTime::now() } },
            )
            .await?;
        Ok(())
    }

    /// Puts an interrupted job back to `queued` (its message was requeued).
    pub async fn requeue_job(&self, id: ObjectId) -> Result<(), StorageError> {
        self.jobs
            .update_one(
                doc! { "_id": id, "state": JobState::Processing.as_str() },
                doc! { "$set": { "state": JobState::Queued.as_str(), "progress": 0.0,
                "updated_at": DateTime::now() } },
            )
            .await?;
        Ok(())
    }

    /// Copies the upload into `dest` chunk by chunk; returns the bytes written.
    pub async fn spool_upload(&self, id: ObjectId, dest: &Path) -> Result<u64, StorageError> {
        let stream = self.videos.open_download_stream(Bson::ObjectId(id)).await?;
        let mut reader = tokio::io::BufReader::with_capacity(256 * 1024, stream.compat());
        let mut file = tokio::fs::File::create(dest).await?;
        let n = tokio::io::copy_buf(&mut reader, &mut file).await?;
        file.flush().await?;
        Ok(n)
    }

    /// Streams the MP3 at `src` into the mp3s bucket; a failed upload leaves no chunks behind.
    pub async fn store_mp3(
        &self,
        src: &Path,
        filename: &str,
        video_fid: ObjectId,
        owner: Option<&str>,
    ) -> Result<ObjectId, StorageError> {
        let mut metadata = doc! {
            "video_fid": video_fid.to_hex(),
            "content_type": MP3_CONTENT_TYPE,
        };
        if let Some(owner) = owner {
            metadata.insert("owner", owner);
        }
        let id = ObjectId::new();
        let upload = self
            .mp3s
            .open_upload_stream(filename)
            .id(Bson::ObjectId(id))
            .metadata(metadata)
            .await?;
        let mut writer = upload.compat_write();
        let result = async {
            let mut file =
                tokio::io::BufReader::with_capacity(256 * 1024, tokio::fs::File::open(src).await?);
            tokio::io::copy_buf(&mut file, &mut writer).await?;
            writer.shutdown().await
        }
        .await;
        if let Err(e) = result {
            let mut upload = writer.into_inner();
            if let Err(abort) = upload.abort().await {
                tracing::warn!(error = %abort, "could not remove the chunks of a failed MP3 upload");
            }
            return Err(e.into());
        }
        Ok(id)
    }

    /// Ids of the MP3s made from an upload, oldest first (`_id` order, the same for everyone).
    pub async fn mp3s_for(&self, video_fid: ObjectId) -> Result<Vec<ObjectId>, StorageError> {
        let files: Vec<FilesCollectionDocument> = self
            .mp3s
            .find(doc! { "metadata.video_fid": video_fid.to_hex() })
            .sort(doc! { "_id": 1 })
            .await?
            .try_collect()
            .await?;
        Ok(files
            .into_iter()
            .filter_map(|f| f.id.as_object_id())
            .collect())
    }

    /// Removes an MP3 and its chunks.
    pub async fn delete_mp3(&self, id: ObjectId) -> Result<(), StorageError> {
        self.mp3s.delete(Bson::ObjectId(id)).await?;
        Ok(())
    }
}
