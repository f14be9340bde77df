//! MongoDB access: the uploads (GridFS `videos`), the MP3s (GridFS `mp3s`) and the `jobs` collection.

use std::path::Path;

pub use common::mongo::StorageError;
use common::{
    gridfs::{self, Mp3Metadata},
    jobs::{fields, Job, JobState},
    mongo::MongoLocations,
    names,
    shared_mp3::{Released, SharedMp3s},
};
use mongodb::{
    bson::{doc, oid::ObjectId, Bson, DateTime, Document},
    gridfs::{FilesCollectionDocument, GridFsBucket},
    options::{GridFsBucketOptions, ReturnDocument},
    Client, Collection, Database,
};
use tokio::io::AsyncWriteExt;
use tokio_util::compat::FuturesAsyncWriteCompatExt;

/// Field of a job naming the MP3 being streamed into GridFS, so that the chunks of an upload cut
/// short by a killed converter can be found and removed by the next delivery. Not part of
/// [`Job`]: only the converter reads it.
const MP3_UPLOAD_FIELD: &str = "mp3_upload";

/// What a delivery learns when it claims a job for conversion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claim {
    /// Deliveries that began converting this job before and neither finished it nor handed it
    /// back: each one died mid-conversion (killed, out of memory, crashed).
    pub earlier_attempts: u32,
    /// The MP3 an earlier delivery was streaming into GridFS when it stopped, if any.
    pub unfinished_mp3: Option<ObjectId>,
}

/// Handles on the two databases.
#[derive(Clone, Debug)]
pub struct Storage {
    videos_db: Database,
    mp3s_db: Database,
    jobs: Collection<Job>,
    videos: GridFsBucket,
    video_chunks: Collection<Document>,
    mp3s: GridFsBucket,
    mp3_chunks: Collection<Document>,
    shared: SharedMp3s,
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
                    .bucket_name(names::BUCKET.to_owned())
                    .build(),
            )
        };
        Ok(Self {
            jobs: videos_db.collection(names::JOBS_COLLECTION),
            videos: bucket(&videos_db),
            video_chunks: videos_db.collection(names::CHUNKS_COLLECTION),
            mp3s: bucket(&mp3s_db),
            mp3_chunks: mp3s_db.collection(names::CHUNKS_COLLECTION),
            shared: SharedMp3s::new(&mp3s_db),
            videos_db,
            mp3s_db,
        })
    }

    /// Round trip to both databases' servers, which must be new enough for the driver (readiness,
    /// and before consuming); answers the server version.
    pub async fn check_server(&self) -> Result<String, StorageError> {
        let mut versions = Vec::new();
        for db in [&self.videos_db, &self.mp3s_db] {
            let version = common::mongo::check_server(db).await?;
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

    /// Whether the job of an upload exists, whatever its document holds.
    pub async fn job_exists(&self, id: ObjectId) -> Result<bool, StorageError> {
        Ok(self
            .jobs
            .clone_with_type::<Document>()
            .find_one(doc! { "_id": id })
            .projection(doc! { "_id": 1 })
            .await?
            .is_some())
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
            .map_err(|e| StorageError::from(mongodb::error::Error::custom(e.to_string())))?;
        // The upsert takes `_id` from the filter; naming it in the update is not allowed.
        doc.remove("_id");
        self.jobs
            .clone_with_type::<Document>()
            .update_one(doc! { "_id": job.id }, doc! { "$setOnInsert": doc })
            .upsert(true)
            .await?;
        Ok(())
    }

    /// Counts a delivery's attempt at converting a job and marks the job `processing`, in one
    /// atomic update that also returns what earlier deliveries left: how many began and never
    /// ended, and the MP3 one was streaming. `None` when the job is gone (deleted) or final.
    pub async fn claim_job(&self, id: ObjectId) -> Result<Option<Claim>, StorageError> {
        let now = DateTime::now();
        let before = self
            .jobs
            .clone_with_type::<Document>()
            .find_one_and_update(
                // Not failed, and not completed with an MP3 (those are final).
                doc! { "_id": id, fields::STATE: { "$ne": JobState::Failed.as_str() },
                fields::MP3_FID: Bson::Null },
                doc! {
                    // `started_at` lets the gateway tell the speed of the job in progress.
                    "$set": {
                        fields::STATE: JobState::Processing.as_str(), fields::PROGRESS: 0.0,
                        fields::ERROR: Bson::Null, fields::UPDATED_AT: now,
                        fields::STARTED_AT: now,
                    },
                    "$inc": { fields::ATTEMPTS: 1 },
                },
            )
            .return_document(ReturnDocument::Before)
            .projection(doc! { fields::ATTEMPTS: 1, MP3_UPLOAD_FIELD: 1 })
            .await?;
        Ok(before.map(|job| Claim {
            earlier_attempts: match job.get(fields::ATTEMPTS) {
                Some(Bson::Int32(n)) => u32::try_from(*n).unwrap_or(0),
                Some(Bson::Int64(n)) => u32::try_from(*n).unwrap_or(u32::MAX),
                _ => 0,
            },
            unfinished_mp3: job.get_object_id(MP3_UPLOAD_FIELD).ok(),
        }))
    }

    /// Records progress of a job still processing; false when no such job is processing any
    /// more (deleted, or finished by another delivery).
    pub async fn set_progress(&self, id: ObjectId, progress: f64) -> Result<bool, StorageError> {
        let result = self
            .jobs
            .update_one(
                doc! { "_id": id, fields::STATE: JobState::Processing.as_str() },
                doc! {
                    "$set": { fields::PROGRESS: progress, fields::UPDATED_AT: DateTime::now() },
                },
            )
            .await?;
        Ok(result.matched_count > 0)
    }

    /// Records the finished MP3, if the job still exists (it is never recreated); false when
    /// it was deleted. `processing_secs` is how long this delivery took (none when it reused an
    /// earlier delivery's MP3): the gateway's queue ETA learns from it.
    pub async fn complete_job(
        &self,
        id: ObjectId,
        mp3_fid: ObjectId,
        duration_secs: Option<f64>,
        processing_secs: Option<f64>,
    ) -> Result<bool, StorageError> {
        let mut set = doc! {
            fields::STATE: JobState::Completed.as_str(), fields::PROGRESS: 100.0,
            fields::MP3_FID: mp3_fid,
            fields::ERROR: Bson::Null, fields::UPDATED_AT: DateTime::now(),
        };
        if let Some(d) = duration_secs {
            set.insert("duration_secs", d);
        }
        if let Some(secs) = processing_secs.filter(|s| s.is_finite() && *s > 0.0) {
            set.insert("processing_secs", secs);
        }
        let result = self
            .jobs
            .update_one(
                doc! { "_id": id },
                doc! { "$set": set, "$unset": { MP3_UPLOAD_FIELD: "" } },
            )
            .await?;
        Ok(result.matched_count > 0)
    }

    /// Records why a job can never succeed (if it still exists: never recreated).
    pub async fn fail_job(&self, id: ObjectId, reason: &str) -> Result<(), StorageError> {
        self.jobs
            .update_one(
                doc! { "_id": id },
                doc! { "$set": { fields::STATE: JobState::Failed.as_str(), fields::ERROR: reason,
                fields::UPDATED_AT: DateTime::now() } },
            )
            .await?;
        Ok(())
    }

    /// Puts an interrupted job back to `queued` (its message was requeued) and takes back the
    /// delivery's attempt: a shutdown is not a crash.
    pub async fn requeue_job(&self, id: ObjectId) -> Result<(), StorageError> {
        self.jobs
            .update_one(
                doc! { "_id": id, fields::STATE: JobState::Processing.as_str() },
                doc! { "$set": { fields::STATE: JobState::Queued.as_str(), fields::PROGRESS: 0.0,
                fields::UPDATED_AT: DateTime::now() }, "$inc": { fields::ATTEMPTS: -1 } },
            )
            .await?;
        Ok(())
    }

    /// Removes a job; missing is fine.
    pub async fn delete_job(&self, id: ObjectId) -> Result<(), StorageError> {
        self.jobs.delete_one(doc! { "_id": id }).await?;
        Ok(())
    }

    /// Removes a job this converter created for a message without one, unless a delivery has
    /// started on it since.
    pub async fn delete_adopted_job(&self, id: ObjectId) -> Result<(), StorageError> {
        self.jobs
            .delete_one(doc! {
                "_id": id, fields::STATE: JobState::Queued.as_str(), fields::ATTEMPTS: 0,
            })
            .await?;
        Ok(())
    }

    /// Notes in the job the MP3 about to be streamed into GridFS; false when the job is gone.
    pub async fn begin_mp3_upload(
        &self,
        id: ObjectId,
        mp3_fid: ObjectId,
    ) -> Result<bool, StorageError> {
        let result = self
            .jobs
            .update_one(
                doc! { "_id": id },
                doc! { "$set": { MP3_UPLOAD_FIELD: mp3_fid } },
            )
            .await?;
        Ok(result.matched_count > 0)
    }

    /// Removes the chunks of an MP3 upload that never got its files document (the converter
    /// writing it was killed). A finished MP3 is left alone.
    pub async fn sweep_unfinished_mp3(&self, mp3_fid: ObjectId) -> Result<u64, StorageError> {
        if self.mp3s.find_one(doc! { "_id": mp3_fid }).await?.is_some() {
            return Ok(0);
        }
        let result = self
            .mp3_chunks
            .delete_many(doc! { "files_id": mp3_fid })
            .await?;
        Ok(result.deleted_count)
    }

    /// The chunks of the uploads, read in place while converting (see [`crate::gridfs_input`]).
    pub fn upload_chunks(&self) -> Collection<Document> {
        self.video_chunks.clone()
    }

    /// Streams the MP3 at `src` into the mp3s bucket as file `id`; a failed upload leaves no
    /// chunks behind, and neither do the leftovers of an earlier try with the same id.
    pub async fn store_mp3(
        &self,
        id: ObjectId,
        src: &Path,
        filename: &str,
        video_fid: ObjectId,
        owner: Option<&str>,
    ) -> Result<(), StorageError> {
        let metadata = Mp3Metadata::new(video_fid, owner).to_document();
        self.mp3_chunks.delete_many(doc! { "files_id": id }).await?;
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
        self.check_chunks(id).await
    }

    /// Verifies that every chunk of a stored MP3 is there. A delivery of the same job running
    /// at the same time (a redelivery after a lost connection) may have swept this upload's
    /// chunks, taking them for a dead converter's; the MP3 is then removed and stored again.
    async fn check_chunks(&self, id: ObjectId) -> Result<(), StorageError> {
        let Some(file) = self.mp3s.find_one(doc! { "_id": id }).await? else {
            return Err(missing_chunks(id));
        };
        let expected = file
            .length
            .div_ceil(u64::from(file.chunk_size_bytes.max(1)));
        let stored = self
            .mp3_chunks
            .count_documents(doc! { "files_id": id })
            .await?;
        if stored != expected {
            self.delete_mp3(id).await?;
            return Err(missing_chunks(id));
        }
        Ok(())
    }

    /// Ids of the MP3s made from an upload, oldest first (`_id` order, the same for everyone).
    pub async fn mp3s_for(&self, video_fid: ObjectId) -> Result<Vec<ObjectId>, StorageError> {
        Ok(gridfs::mp3s_made_from(&self.mp3s, video_fid)
            .await?
            .into_iter()
            .filter_map(|f| f.id.as_object_id())
            .collect())
    }

    /// Removes an MP3 and its chunks.
    pub async fn delete_mp3(&self, id: ObjectId) -> Result<(), StorageError> {
        self.mp3s.delete(Bson::ObjectId(id)).await?;
        Ok(())
    }

    /// Removes a duplicate MP3 of an upload unless a repeat shares it (the gateway gave it to
    /// another upload meanwhile); true when it is gone.
    pub async fn delete_unshared_mp3(&self, id: ObjectId) -> Result<bool, StorageError> {
        Ok(self.shared.delete_unshared(id).await?)
    }

    /// Lets deleted upload `video_fid` go of MP3 `id`: deleted unless a repeat shares it.
    pub async fn release_mp3(
        &self,
        id: ObjectId,
        video_fid: ObjectId,
    ) -> Result<Released, StorageError> {
        Ok(self.shared.release(id, video_fid).await?)
    }
}

fn missing_chunks(id: ObjectId) -> StorageError {
    StorageError::Io(std::io::Error::other(format!(
        "the stored MP3 {id} is incomplete"
    )))
}
