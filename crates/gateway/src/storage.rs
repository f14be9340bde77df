//! MongoDB: uploads and MP3s in GridFS (bucket `fs` of the `videos` and `mp3s` databases) and the
//! `jobs` collection. Reads files chunk by chunk so that memory stays flat whatever their size.

use std::{collections::HashMap, time::Duration};

use bytes::Bytes;
pub use common::mongo::{StorageError, StorageResult};
use common::{
    gridfs::{self, keys, paths, Mp3Metadata, UploadMetadata},
    jobs::{fields, Job, JobState, WebhookStatus},
    mongo::MongoLocations,
    names,
    shared_mp3::{Holder, Released, SharedMp3s},
};
use futures::{Stream, StreamExt, TryStreamExt};
use mongodb::{
    bson::{doc, oid::ObjectId, Bson, DateTime, Document},
    error::ErrorKind,
    gridfs::{FilesCollectionDocument, GridFsBucket, GridFsUploadStream},
    options::{ClientOptions, GridFsBucketOptions, IndexOptions, ReturnDocument},
    Client, Collection, Database, IndexModel,
};

/// How long an operation waits for a reachable server before it fails (the driver's default is
/// 30 s; a request should answer 503 sooner).
const SERVER_SELECTION_TIMEOUT: Duration = Duration::from_secs(5);
/// Chunks fetched per cursor batch while streaming a file out (255 KiB each).
const CHUNKS_PER_BATCH: u32 = 4;
/// Field of a job: the SHA-256 of its upload, hex.
pub const CONTENT_SHA256: &str = "content_sha256";
/// Field of a job: what a repeat must match to share its MP3 (content, quality, title).
pub const REPEAT_KEY: &str = "repeat_key";
/// Field of a job: how often the stuck-job sweeper published it again.
pub const REQUEUES: &str = "requeues";
/// Field of a job: when a gateway replica claimed it for removal by the retention sweep.
const RETENTION_CLAIMED_AT: &str = "retention_claimed_at";

/// What the gateway needs to know about a stored GridFS file.
#[derive(Debug, Clone)]
pub struct StoredFile {
    /// The file's ObjectId.
    pub id: ObjectId,
    /// Length in bytes.
    pub length: u64,
    /// Size of each chunk in bytes.
    pub chunk_size: u32,
    /// The `filename` of the files document, when set.
    pub filename: Option<String>,
    /// The `metadata` sub-document (empty when absent).
    pub metadata: Document,
    /// When the file was stored (GridFS `uploadDate`: set when its last chunk was written).
    pub upload_date: DateTime,
}

impl StoredFile {
    fn from_doc(doc: FilesCollectionDocument) -> Option<Self> {
        let id = doc.id.as_object_id()?;
        Some(Self {
            id,
            length: doc.length,
            chunk_size: doc.chunk_size_bytes,
            filename: doc.filename,
            metadata: doc.metadata.unwrap_or_default(),
            upload_date: doc.upload_date,
        })
    }

    /// `metadata.owner`, absent for files written by the original system.
    pub fn owner(&self) -> Option<&str> {
        self.metadata.get_str(keys::OWNER).ok()
    }

    /// `metadata.video_fid` of an MP3: the upload it was made from.
    pub fn video_fid(&self) -> Option<&str> {
        self.metadata.get_str(keys::VIDEO_FID).ok()
    }

    /// The metadata of an upload.
    pub fn upload_metadata(&self) -> UploadMetadata {
        UploadMetadata::read(&self.metadata)
    }

    /// The metadata of an MP3.
    pub fn mp3_metadata(&self) -> Mp3Metadata {
        Mp3Metadata::read(&self.metadata)
    }

    /// The uploads sharing this MP3; `None` when it was never shared (its `video_fid` alone
    /// holds it).
    pub fn holders(&self) -> Option<Vec<ObjectId>> {
        self.mp3_metadata()
            .holders
            .map(|holders| holders.into_iter().map(|h| h.video_fid).collect())
    }
}

/// Most queued jobs [`Storage::queued_ahead`] reads in one query.
pub const QUEUE_SPAN_LIMIT: i64 = 5_000;

/// Handles on the two databases, their buckets and the jobs collection.
#[derive(Debug, Clone)]
pub struct Storage {
    videos: Database,
    mp3s: Database,
    video_bucket: GridFsBucket,
    mp3_bucket: GridFsBucket,
    jobs: Collection<Job>,
    shared: SharedMp3s,
}

/// A finished conversion an upload with the same content and quality may share.
#[derive(Debug, Clone, Copy)]
pub struct Shareable {
    /// The MP3.
    pub mp3_fid: ObjectId,
    /// Duration of the source, seconds, when known.
    pub duration_secs: Option<f64>,
}

impl Storage {
    /// Client handles for `locations`. Does not wait for a server: the gateway starts while
    /// MongoDB is down and the driver connects when it comes up.
    pub async fn connect(locations: &MongoLocations) -> anyhow::Result<Self> {
        let videos_client = client(&locations.videos.uri).await?;
        let mp3s_client = if locations.mp3s.uri == locations.videos.uri {
            videos_client.clone()
        } else {
            client(&locations.mp3s.uri).await?
        };
        let videos = videos_client.database(&locations.videos.database);
        let mp3s = mp3s_client.database(&locations.mp3s.database);
        let bucket = |db: &Database| {
            db.gridfs_bucket(
                GridFsBucketOptions::builder()
                    .bucket_name(names::BUCKET.to_owned())
                    .build(),
            )
        };
        Ok(Self {
            video_bucket: bucket(&videos),
            mp3_bucket: bucket(&mp3s),
            jobs: videos.collection(names::JOBS_COLLECTION),
            shared: SharedMp3s::new(&mp3s),
            videos,
            mp3s,
        })
    }

    /// Creates the indexes the gateway's queries use (idempotent).
    pub async fn ensure_indexes(&self) -> StorageResult<()> {
        let index = |keys: Document, name: &str| {
            IndexModel::builder()
                .keys(keys)
                .options(IndexOptions::builder().name(name.to_owned()).build())
                .build()
        };
        self.videos
            .collection::<Document>(names::FILES_COLLECTION)
            .create_index(index(doc! { paths::OWNER: 1 }, "metadata_owner"))
            .await?;
        self.mp3s
            .collection::<Document>(names::FILES_COLLECTION)
            .create_indexes([
                index(doc! { paths::VIDEO_FID: 1 }, "metadata_video_fid"),
                index(
                    doc! { paths::HOLDERS_VIDEO_FID: 1 },
                    "metadata_holders_video_fid",
                ),
                index(doc! { paths::HOLDERS_OWNER: 1 }, "metadata_holders_owner"),
            ])
            .await?;
        self.jobs
            .create_indexes([
                index(
                    doc! { fields::OWNER: 1, fields::CREATED_AT: -1 },
                    "owner_created_at",
                ),
                index(doc! { fields::STATE: 1 }, "state"),
                // The ETA's queue ahead of a queued job.
                index(
                    doc! { fields::STATE: 1, fields::CREATED_AT: 1 },
                    "state_created_at",
                ),
                // The ETA's recent completed jobs and the retention's expired ones.
                index(
                    doc! { fields::STATE: 1, fields::UPDATED_AT: -1 },
                    "state_updated_at",
                ),
                index(
                    doc! { fields::WEBHOOK_STATUS: 1, fields::WEBHOOK_NEXT_ATTEMPT_AT: 1 },
                    "webhook_due",
                ),
                index(doc! { REPEAT_KEY: 1 }, REPEAT_KEY),
            ])
            .await?;
        Ok(())
    }

    /// Round trip to both databases' servers, which must be new enough for the driver; answers
    /// the server version (both, when they differ).
    pub async fn check_server(&self) -> StorageResult<String> {
        let videos = common::mongo::check_server(&self.videos).await?;
        let mp3s = common::mongo::check_server(&self.mp3s).await?;
        Ok(if videos == mp3s {
            videos
        } else {
            format!("{videos} (videos), {mp3s} (mp3s)")
        })
    }

    /// Round trip to both databases' servers, refusing one too old for the driver.
    pub async fn ping(&self) -> StorageResult<()> {
        self.check_server().await.map(drop)
    }

    /// Opens a GridFS upload stream in the videos bucket with the upload's metadata.
    pub async fn open_video_upload(
        &self,
        id: ObjectId,
        filename: &str,
        owner: &str,
        content_type: &str,
    ) -> StorageResult<GridFsUploadStream> {
        Ok(self
            .video_bucket
            .open_upload_stream(filename)
            .id(Bson::ObjectId(id))
            .metadata(UploadMetadata::new(owner, filename, content_type).to_document())
            .await?)
    }

    /// The upload with ObjectId `id`.
    pub async fn video(&self, id: ObjectId) -> StorageResult<Option<StoredFile>> {
        find_file(&self.video_bucket, doc! { "_id": id }).await
    }

    /// The MP3 with ObjectId `id`.
    pub async fn mp3(&self, id: ObjectId) -> StorageResult<Option<StoredFile>> {
        find_file(&self.mp3_bucket, doc! { "_id": id }).await
    }

    /// The MP3 made from upload `video_fid` (the original's lookup by `metadata.video_fid`); the
    /// oldest if there are several, the one the converter keeps. An MP3 the upload shared and
    /// let go (deleted) is not its any more.
    pub async fn mp3_for_video(&self, video_fid: ObjectId) -> StorageResult<Option<StoredFile>> {
        Ok(gridfs::mp3s_made_from(&self.mp3_bucket, video_fid)
            .await?
            .into_iter()
            .filter_map(StoredFile::from_doc)
            .find(|file| file.mp3_metadata().is_held_by(video_fid)))
    }

    /// An MP3 upload `video_fid` shares with others, and the owner it was shared to.
    pub async fn mp3_shared_by(
        &self,
        video_fid: ObjectId,
    ) -> StorageResult<Option<(StoredFile, Option<String>)>> {
        let Some(file) = self
            .mp3_bucket
            .find_one(doc! { paths::HOLDERS_VIDEO_FID: video_fid })
            .await?
            .and_then(StoredFile::from_doc)
        else {
            return Ok(None);
        };
        let owner = file
            .mp3_metadata()
            .holders
            .unwrap_or_default()
            .into_iter()
            .find(|h| h.video_fid == video_fid)
            .and_then(|h| h.owner);
        Ok(Some((file, owner)))
    }

    /// The MP3s made from each of `video_fids` (the oldest per upload), in one indexed query.
    pub async fn mp3s_for_videos(
        &self,
        video_fids: &[ObjectId],
    ) -> StorageResult<HashMap<ObjectId, StoredFile>> {
        let mut found = HashMap::new();
        if video_fids.is_empty() {
            return Ok(found);
        }
        let mut cursor = self
            .mp3_bucket
            .find(gridfs::made_from_any(video_fids))
            .sort(gridfs::oldest_first())
            .await?;
        while let Some(file) = cursor.try_next().await? {
            let Some(file) = StoredFile::from_doc(file) else {
                continue;
            };
            let metadata = file.mp3_metadata();
            if let Some(video_fid) = metadata.video_fid() {
                if metadata.is_held_by(video_fid) {
                    found.entry(video_fid).or_insert(file);
                }
            }
        }
        Ok(found)
    }

    /// Marks the job of `video_fid` completed with `mp3_fid` unless it already is: the MP3 was
    /// stored by a converter that does not keep jobs (the original's).
    pub async fn reconcile_completed(
        &self,
        video_fid: ObjectId,
        mp3_fid: ObjectId,
    ) -> StorageResult<bool> {
        let result = self
            .jobs
            .update_one(
                doc! {
                    "_id": video_fid,
                    "$or": [
                        { fields::STATE: { "$ne": JobState::Completed.as_str() } },
                        { fields::MP3_FID: Bson::Null },
                    ],
                },
                doc! { "$set": {
                    fields::STATE: JobState::Completed.as_str(), fields::PROGRESS: 100.0,
                    fields::MP3_FID: mp3_fid, fields::ERROR: Bson::Null,
                    fields::UPDATED_AT: DateTime::now(),
                } },
            )
            .await?;
        Ok(result.modified_count > 0)
    }

    /// Removes an upload and its chunks; missing is fine.
    pub async fn delete_video(&self, id: ObjectId) -> StorageResult<()> {
        delete_file(&self.video_bucket, id).await
    }

    /// Removes one MP3 and its chunks; missing is fine.
    pub async fn delete_mp3(&self, id: ObjectId) -> StorageResult<()> {
        delete_file(&self.mp3_bucket, id).await
    }

    /// Lets go of every MP3 upload `video_fid` holds: the MP3 `mp3_fid` of its job if given,
    /// those made from it (`metadata.video_fid`) and those it shares. Each is deleted unless
    /// another upload shares it. Call after the job is deleted.
    pub async fn release_mp3s_of(
        &self,
        video_fid: ObjectId,
        mp3_fid: Option<ObjectId>,
    ) -> StorageResult<()> {
        let mut ids: Vec<ObjectId> = self
            .mp3_bucket
            .find(doc! { "$or": [
                gridfs::made_from(video_fid),
                { paths::HOLDERS_VIDEO_FID: video_fid },
            ] })
            .await?
            .try_filter_map(|f| async move { Ok(f.id.as_object_id()) })
            .try_collect()
            .await?;
        ids.extend(mp3_fid);
        ids.sort();
        ids.dedup();
        for id in ids {
            self.release_mp3(id, video_fid).await?;
        }
        Ok(())
    }

    /// Lets upload `video_fid` go of MP3 `mp3_fid`: the one place that gives up a reference.
    /// The file is deleted when no other upload shares it; otherwise it stays for them.
    pub async fn release_mp3(
        &self,
        mp3_fid: ObjectId,
        video_fid: ObjectId,
    ) -> StorageResult<Released> {
        let released = self.shared.release(mp3_fid, video_fid).await?;
        if released == Released::Kept {
            tracing::info!(%mp3_fid, %video_fid, "shared MP3 kept for the uploads still holding it");
        }
        Ok(released)
    }

    /// Makes upload `holder` a holder of MP3 `mp3_fid`; false when that MP3 cannot be shared
    /// (gone, being deleted, or shared too widely).
    pub async fn share_mp3(
        &self,
        mp3_fid: ObjectId,
        holder: ObjectId,
        owner: &str,
    ) -> StorageResult<bool> {
        let holder = Holder {
            video_fid: holder,
            owner: Some(owner.to_owned()),
        };
        Ok(self.shared.share(mp3_fid, &holder).await?)
    }

    /// Finished conversions whose `repeat_key` is `key` (same content, quality and title), a few
    /// at most.
    pub async fn shareable(&self, key: &str) -> StorageResult<Vec<Shareable>> {
        let found: Vec<Document> = self
            .jobs
            .clone_with_type::<Document>()
            .find(doc! {
                REPEAT_KEY: key,
                fields::STATE: JobState::Completed.as_str(),
                fields::MP3_FID: { "$type": "objectId" },
            })
            .projection(doc! { fields::MP3_FID: 1, fields::DURATION_SECS: 1 })
            .limit(3)
            .await?
            .try_collect()
            .await?;
        Ok(found
            .into_iter()
            .filter_map(|job| {
                Some(Shareable {
                    mp3_fid: job.get_object_id(fields::MP3_FID).ok()?,
                    duration_secs: job.get_f64(fields::DURATION_SECS).ok(),
                })
            })
            .collect())
    }

    /// Marks the still queued job `id` completed with a shared MP3; false when the job changed
    /// (deleted meanwhile).
    pub async fn complete_repeat(&self, id: ObjectId, shared: &Shareable) -> StorageResult<bool> {
        let mut set = doc! {
            fields::STATE: JobState::Completed.as_str(), fields::PROGRESS: 100.0,
            fields::MP3_FID: shared.mp3_fid, fields::UPDATED_AT: DateTime::now(),
        };
        if let Some(d) = shared.duration_secs {
            set.insert("duration_secs", d);
        }
        let result = self
            .jobs
            .update_one(
                doc! {
                    "_id": id, fields::STATE: JobState::Queued.as_str(), fields::MP3_FID: Bson::Null,
                },
                doc! { "$set": set },
            )
            .await?;
        Ok(result.modified_count == 1)
    }

    /// The job of `owner` among the holders of a shared MP3, which gives them the right to
    /// download it and names the file.
    pub async fn job_holding(
        &self,
        holders: &[ObjectId],
        owner: &str,
    ) -> StorageResult<Option<Job>> {
        if holders.is_empty() {
            return Ok(None);
        }
        Ok(self
            .jobs
            .find_one(doc! { "_id": { "$in": holders }, fields::OWNER: owner })
            .await?)
    }

    /// The job of upload `id`.
    pub async fn job(&self, id: ObjectId) -> StorageResult<Option<Job>> {
        Ok(self.jobs.find_one(doc! { "_id": id }).await?)
    }

    /// The jobs of uploads `ids` (those that have one), in one query.
    pub async fn jobs(&self, ids: &[ObjectId]) -> StorageResult<Vec<Job>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        Ok(self
            .jobs
            .find(doc! { "_id": { "$in": ids } })
            .await?
            .try_collect()
            .await?)
    }

    /// The uploads of `ids` that are stored, by id, in one query.
    pub async fn videos(&self, ids: &[ObjectId]) -> StorageResult<HashMap<ObjectId, StoredFile>> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        Ok(self
            .video_bucket
            .find(doc! { "_id": { "$in": ids } })
            .await?
            .try_collect::<Vec<_>>()
            .await?
            .into_iter()
            .filter_map(StoredFile::from_doc)
            .map(|file| (file.id, file))
            .collect())
    }

    /// Stores a new job.
    pub async fn insert_job(&self, job: &Job) -> StorageResult<()> {
        self.jobs.insert_one(job).await?;
        Ok(())
    }

    /// Stores a new job with the fields repeats are found by: the SHA-256 of the upload
    /// (`content_sha256`, hex) and `repeat_key`.
    pub async fn insert_job_with_content(
        &self,
        job: &Job,
        content_sha256: &str,
        repeat_key: &str,
    ) -> StorageResult<()> {
        let mut document = mongodb::bson::to_document(job)
            .map_err(|e| StorageError::Refused(mongodb::error::Error::custom(e.to_string())))?;
        document.insert(CONTENT_SHA256, content_sha256);
        document.insert(REPEAT_KEY, repeat_key);
        self.jobs
            .clone_with_type::<Document>()
            .insert_one(document)
            .await?;
        Ok(())
    }

    /// Removes the job of upload `id`; missing is fine.
    pub async fn delete_job(&self, id: ObjectId) -> StorageResult<()> {
        self.jobs.delete_one(doc! { "_id": id }).await?;
        Ok(())
    }

    /// Removes upload `id` with everything made from it: its job, its chunks and its MP3s
    /// (`mp3_fid` and any whose `metadata.video_fid` is `id`). The one release path of a user's
    /// `DELETE /jobs` and of the retention sweep; idempotent, so repeating it after a failure
    /// half-way finishes it.
    pub async fn release_upload(
        &self,
        id: ObjectId,
        mp3_fid: Option<ObjectId>,
    ) -> StorageResult<()> {
        // The job goes first: a converter that finds no job neither recreates it nor keeps the
        // MP3 it is about to store, and the stuck-job sweeper cannot re-publish it. Then the
        // upload, so no new conversion can start; last every MP3 it holds, found by
        // `metadata.video_fid` and the holders too, so one stored before the job named it is not
        // missed. An MP3 an instant repeat shares stays for it (`release_mp3`).
        self.delete_job(id).await?;
        self.delete_video(id).await?;
        self.release_mp3s_of(id, mp3_fid).await
    }

    /// How long recent completed jobs took: `(size, processing_secs)` of the last `limit` that
    /// recorded a time, newest first.
    pub async fn recent_job_times(&self, limit: i64) -> StorageResult<Vec<(Option<i64>, f64)>> {
        let mut cursor = self
            .jobs
            .clone_with_type::<Document>()
            .find(doc! {
                fields::STATE: JobState::Completed.as_str(),
                fields::PROCESSING_SECS: { "$gt": 0.0 },
            })
            .sort(doc! { fields::UPDATED_AT: -1 })
            .limit(limit)
            .projection(doc! { fields::SIZE: 1, fields::PROCESSING_SECS: 1 })
            .await?;
        let mut samples = Vec::new();
        while let Some(job) = cursor.try_next().await? {
            let secs = job.get(fields::PROCESSING_SECS).and_then(Bson::as_f64);
            let size = job
                .get(fields::SIZE)
                .and_then(bson_int)
                .and_then(|n| i64::try_from(n).ok());
            if let Some(secs) = secs {
                samples.push((size, secs));
            }
        }
        Ok(samples)
    }

    /// How many jobs a converter is working on now.
    pub async fn processing_count(&self) -> StorageResult<u64> {
        Ok(self
            .jobs
            .count_documents(doc! { fields::STATE: JobState::Processing.as_str() })
            .await?)
    }

    /// How many jobs wait before each of `jobs` (`(created_at, id)` of each) in the queue, in
    /// two queries however many they are: a count of those before the oldest, and the queued
    /// jobs from the oldest to the newest (at most [`QUEUE_SPAN_LIMIT`]; jobs past those are
    /// counted one by one).
    pub async fn queued_ahead(&self, jobs: &[(DateTime, ObjectId)]) -> StorageResult<Vec<u64>> {
        self.queued_ahead_reading(jobs, QUEUE_SPAN_LIMIT).await
    }

    /// [`Storage::queued_ahead`] reading at most `span_limit` queued jobs in one query (the
    /// tests make it small).
    pub async fn queued_ahead_reading(
        &self,
        jobs: &[(DateTime, ObjectId)],
        span_limit: i64,
    ) -> StorageResult<Vec<u64>> {
        let (Some(&first), Some(&last)) = (jobs.iter().min(), jobs.iter().max()) else {
            return Ok(Vec::new());
        };
        if first == last {
            let ahead = self.queued_before(first.0, first.1).await?;
            return Ok(vec![ahead; jobs.len()]);
        }
        let span = async {
            let mut cursor = self
                .jobs
                .clone_with_type::<Document>()
                .find(doc! {
                    fields::STATE: JobState::Queued.as_str(),
                    fields::CREATED_AT: { "$gte": first.0, "$lte": last.0 },
                })
                .sort(doc! { fields::CREATED_AT: 1, "_id": 1 })
                .limit(span_limit)
                .projection(doc! { fields::CREATED_AT: 1 })
                .await?;
            let mut span = Vec::new();
            while let Some(job) = cursor.try_next().await? {
                if let (Ok(created_at), Ok(id)) = (
                    job.get_datetime(fields::CREATED_AT),
                    job.get_object_id("_id"),
                ) {
                    span.push((*created_at, id));
                }
            }
            StorageResult::Ok(span)
        };
        let (before_first, mut span) =
            tokio::try_join!(self.queued_before(first.0, first.1), span)?;
        let complete = (span.len() as i64) < span_limit;
        // Those of the oldest's millisecond with a smaller id are counted in `before_first`.
        span.retain(|key| *key >= first);
        let mut ahead = Vec::with_capacity(jobs.len());
        for &job in jobs {
            let spanned = complete || span.last().is_some_and(|newest| job <= *newest);
            ahead.push(if spanned {
                before_first + span.partition_point(|key| *key < job) as u64
            } else {
                self.queued_before(job.0, job.1).await?
            });
        }
        Ok(ahead)
    }

    /// How many jobs were queued before the one created at `created_at` and still wait.
    pub async fn queued_before(&self, created_at: DateTime, id: ObjectId) -> StorageResult<u64> {
        Ok(self
            .jobs
            .count_documents(doc! {
                fields::STATE: JobState::Queued.as_str(),
                "$or": [
                    { fields::CREATED_AT: { "$lt": created_at } },
                    // Same millisecond: the id (made when the upload began) orders them.
                    { fields::CREATED_AT: created_at, "_id": { "$lt": id } },
                ],
            })
            .await?)
    }

    /// Completed or failed jobs whose last change (their completion or failure) is older than
    /// `cutoff`, oldest first: `(id, mp3_fid)`.
    pub async fn expired_jobs(
        &self,
        cutoff: DateTime,
        limit: i64,
    ) -> StorageResult<Vec<(ObjectId, Option<ObjectId>)>> {
        let mut cursor = self
            .jobs
            .clone_with_type::<Document>()
            .find(doc! {
                fields::STATE: { "$in": [JobState::Completed.as_str(), JobState::Failed.as_str()] },
                fields::UPDATED_AT: { "$lt": cutoff },
            })
            .sort(doc! { fields::UPDATED_AT: 1 })
            .limit(limit)
            .projection(doc! { fields::MP3_FID: 1 })
            .await?;
        let mut expired = Vec::new();
        while let Some(job) = cursor.try_next().await? {
            if let Ok(id) = job.get_object_id("_id") {
                expired.push((id, job.get_object_id(fields::MP3_FID).ok()));
            }
        }
        Ok(expired)
    }

    /// Claims expired job `id` for removal at `now`: true for exactly one caller among gateway
    /// replicas, unless the claim holder has not finished by `stale_before` (it died): then the
    /// job is claimed again. Only a job still final and unchanged since `cutoff` is claimed.
    pub async fn claim_expired(
        &self,
        id: ObjectId,
        cutoff: DateTime,
        now: DateTime,
        stale_before: DateTime,
    ) -> StorageResult<bool> {
        let result = self
            .jobs
            .update_one(
                doc! {
                    "_id": id,
                    fields::STATE: {
                        "$in": [JobState::Completed.as_str(), JobState::Failed.as_str()],
                    },
                    fields::UPDATED_AT: { "$lt": cutoff },
                    "$or": [
                        { RETENTION_CLAIMED_AT: { "$exists": false } },
                        { RETENTION_CLAIMED_AT: { "$lt": stale_before } },
                    ],
                },
                doc! { "$set": { RETENTION_CLAIMED_AT: now } },
            )
            .await?;
        Ok(result.modified_count == 1)
    }

    /// Files without `metadata.owner` (written by the original system) stored before `cutoff`,
    /// in the uploads' bucket (`mp3s` false) or the MP3s' bucket.
    pub async fn unowned_files_before(
        &self,
        mp3s: bool,
        cutoff: DateTime,
        limit: i64,
    ) -> StorageResult<Vec<StoredFile>> {
        let bucket = if mp3s {
            &self.mp3_bucket
        } else {
            &self.video_bucket
        };
        Ok(bucket
            .find(doc! {
                paths::OWNER: { "$exists": false },
                paths::UPLOAD_DATE: { "$lt": cutoff },
            })
            .sort(doc! { paths::UPLOAD_DATE: 1 })
            .limit(limit)
            .await?
            .try_filter_map(|f| async move { Ok(StoredFile::from_doc(f)) })
            .try_collect()
            .await?)
    }

    /// Up to `limit` jobs still `queued` whose last change is older than `before`.
    pub async fn stuck_jobs(&self, before: DateTime, limit: i64) -> StorageResult<Vec<Document>> {
        Ok(self
            .jobs
            .clone_with_type::<Document>()
            .find(doc! {
                fields::STATE: JobState::Queued.as_str(), fields::UPDATED_AT: { "$lt": before },
            })
            .limit(limit)
            .await?
            .try_collect()
            .await?)
    }

    /// Claims stuck job `id` for a re-publication: succeeds for exactly one caller among
    /// gateway replicas, the one whose update still finds it `queued` with the `updated_at` it
    /// read. Counts the re-publication in `requeues`.
    pub async fn claim_requeue(&self, id: ObjectId, seen: DateTime) -> StorageResult<bool> {
        let result = self
            .jobs
            .update_one(
                doc! {
                    "_id": id, fields::STATE: JobState::Queued.as_str(), fields::UPDATED_AT: seen,
                },
                doc! { "$set": { fields::UPDATED_AT: DateTime::now() }, "$inc": { REQUEUES: 1 } },
            )
            .await?;
        Ok(result.modified_count == 1)
    }

    /// Fails stuck job `id` with `reason`, on the same condition as [`Storage::claim_requeue`].
    pub async fn fail_stuck(
        &self,
        id: ObjectId,
        seen: DateTime,
        reason: &str,
    ) -> StorageResult<bool> {
        let result = self
            .jobs
            .update_one(
                doc! {
                    "_id": id, fields::STATE: JobState::Queued.as_str(), fields::UPDATED_AT: seen,
                },
                doc! { "$set": {
                    fields::STATE: JobState::Failed.as_str(),
                    fields::ERROR: reason,
                    fields::UPDATED_AT: DateTime::now(),
                } },
            )
            .await?;
        Ok(result.modified_count == 1)
    }

    /// Claims the webhook delivery due first among final jobs: counts the attempt and pushes
    /// `next_attempt_at` to `lease_until`, in one atomic update, so that exactly one replica
    /// makes each attempt. The job as it is after the update.
    pub async fn claim_webhook(
        &self,
        now: DateTime,
        lease_until: DateTime,
    ) -> StorageResult<Option<Job>> {
        Ok(self
            .jobs
            .find_one_and_update(
                doc! {
                    fields::WEBHOOK_STATUS: WebhookStatus::Pending.as_str(),
                    fields::WEBHOOK_NEXT_ATTEMPT_AT: { "$lte": now },
                    fields::STATE: {
                        "$in": [JobState::Completed.as_str(), JobState::Failed.as_str()],
                    },
                },
                doc! {
                    "$set": { fields::WEBHOOK_NEXT_ATTEMPT_AT: lease_until },
                    "$inc": { fields::WEBHOOK_ATTEMPTS: 1 },
                },
            )
            .sort(doc! { fields::WEBHOOK_NEXT_ATTEMPT_AT: 1 })
            .return_document(ReturnDocument::After)
            .await?)
    }

    /// Records that attempt `attempt` of job `id`'s webhook was accepted.
    pub async fn webhook_delivered(&self, id: ObjectId, attempt: i32) -> StorageResult<()> {
        self.jobs
            .update_one(
                doc! { "_id": id, fields::WEBHOOK_ATTEMPTS: attempt },
                doc! { "$set": {
                    fields::WEBHOOK_STATUS: WebhookStatus::Delivered.as_str(),
                    fields::WEBHOOK_DELIVERED_AT: DateTime::now(),
                    fields::WEBHOOK_LAST_ERROR: Bson::Null,
                } },
            )
            .await?;
        Ok(())
    }

    /// Records that attempt `attempt` of job `id`'s webhook failed with `reason`: the next one is
    /// due at `next`, or, without one, the delivery is given up.
    pub async fn webhook_failed(
        &self,
        id: ObjectId,
        attempt: i32,
        reason: &str,
        next: Option<DateTime>,
    ) -> StorageResult<()> {
        let set = match next {
            Some(next) => doc! {
                fields::WEBHOOK_NEXT_ATTEMPT_AT: next, fields::WEBHOOK_LAST_ERROR: reason,
            },
            None => doc! {
                fields::WEBHOOK_STATUS: WebhookStatus::Failed.as_str(),
                fields::WEBHOOK_LAST_ERROR: reason,
            },
        };
        self.jobs
            .update_one(
                doc! { "_id": id, fields::WEBHOOK_ATTEMPTS: attempt },
                doc! { "$set": set },
            )
            .await?;
        Ok(())
    }

    /// Bytes `owner` keeps: the lengths of their uploads and their MP3s, a shared MP3 counted
    /// for each of its holders' owners alike (so sharing changes nobody else's count).
    pub async fn usage_of(&self, owner: &str) -> StorageResult<u64> {
        let mut total: u64 = 0;
        let mine = doc! { paths::OWNER: owner };
        let mine_or_shared = doc! { "$or": [
            { paths::OWNER: owner, paths::HOLDERS: { "$exists": false } },
            { paths::HOLDERS_OWNER: owner },
        ] };
        for (db, filter) in [(&self.videos, mine), (&self.mp3s, mine_or_shared)] {
            let mut files = db
                .collection::<Document>(names::FILES_COLLECTION)
                .find(filter)
                .projection(doc! { "length": 1 })
                .await?;
            while let Some(file) = files.try_next().await? {
                total = total.saturating_add(file.get("length").and_then(bson_int).unwrap_or(0));
            }
        }
        Ok(total)
    }

    /// One page of `owner`'s jobs, newest first, and how many they have in all.
    pub async fn jobs_of(
        &self,
        owner: &str,
        skip: u64,
        limit: i64,
    ) -> StorageResult<(Vec<Job>, u64)> {
        let filter = doc! { fields::OWNER: owner };
        let total = self.jobs.count_documents(filter.clone()).await?;
        let jobs = self
            .jobs
            .find(filter)
            .sort(doc! { fields::CREATED_AT: -1, "_id": -1 })
            .skip(skip)
            .limit(limit)
            .await?
            .try_collect()
            .await?;
        Ok((jobs, total))
    }

    /// Bytes `start..=end` of MP3 `file`, read chunk by chunk from `fs.chunks`.
    pub fn mp3_bytes(
        &self,
        file: &StoredFile,
        start: u64,
        end: u64,
    ) -> impl Stream<Item = std::io::Result<Bytes>> + Send + 'static {
        read_range(
            self.mp3s.collection::<Document>(names::CHUNKS_COLLECTION),
            file.clone(),
            start,
            end,
        )
    }
}

async fn client(uri: &str) -> anyhow::Result<Client> {
    let mut options = ClientOptions::parse(uri).await?;
    options.server_selection_timeout = Some(SERVER_SELECTION_TIMEOUT);
    options.connect_timeout = Some(SERVER_SELECTION_TIMEOUT);
    if options.app_name.is_none() {
        options.app_name = Some("gateway".to_owned());
    }
    Ok(Client::with_options(options)?)
}

async fn find_file(bucket: &GridFsBucket, filter: Document) -> StorageResult<Option<StoredFile>> {
    Ok(bucket
        .find_one(filter)
        .await?
        .and_then(StoredFile::from_doc))
}

async fn delete_file(bucket: &GridFsBucket, id: ObjectId) -> StorageResult<()> {
    match bucket.delete(Bson::ObjectId(id)).await {
        Ok(()) => Ok(()),
        // The chunks were deleted all the same; there was just no files document.
        Err(e) if matches!(*e.kind, ErrorKind::GridFs(_)) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Streams bytes `start..=end` of `file` from its chunks, fetching only the chunks needed.
fn read_range(
    chunks: Collection<Document>,
    file: StoredFile,
    start: u64,
    end: u64,
) -> impl Stream<Item = std::io::Result<Bytes>> + Send + 'static {
    async_stream::try_stream! {
        if file.length == 0 || start > end || file.chunk_size == 0 {
            return;
        }
        let chunk_size = u64::from(file.chunk_size);
        let first_n = start / chunk_size;
        let last_n = end / chunk_size;
        let mut cursor = chunks
            .find(doc! {
                "files_id": file.id,
                "n": { "$gte": first_n as i64, "$lte": last_n as i64 },
            })
            .sort(doc! { "n": 1 })
            .batch_size(CHUNKS_PER_BATCH)
            .await
            .map_err(std::io::Error::other)?;
        let mut expected_n = first_n;
        while let Some(chunk) = cursor.next().await {
            let mut chunk = chunk.map_err(std::io::Error::other)?;
            let n = chunk.get("n").and_then(bson_int).unwrap_or(u64::MAX);
            if n != expected_n {
                Err(std::io::Error::other(format!(
                    "file {} is missing chunk {expected_n}", file.id
                )))?;
            }
            let data = match chunk.remove("data") {
                Some(Bson::Binary(b)) => Bytes::from(b.bytes),
                _ => Err(std::io::Error::other(format!("chunk {n} of {} has no data", file.id)))?,
            };
            let chunk_start = n * chunk_size;
            let from = start.saturating_sub(chunk_start) as usize;
            let to = ((end + 1 - chunk_start) as usize).min(data.len());
            if from < to {
                yield data.slice(from..to);
            }
            expected_n += 1;
        }
        if expected_n != last_n + 1 {
            Err(std::io::Error::other(format!(
                "file {} ends at chunk {expected_n}, expected {}", file.id, last_n + 1
            )))?;
        }
    }
}

fn bson_int(value: &Bson) -> Option<u64> {
    match value {
        Bson::Int32(n) => u64::try_from(*n).ok(),
        Bson::Int64(n) => u64::try_from(*n).ok(),
        Bson::Double(n) if *n >= 0.0 => Some(*n as u64),
        _ => None,
    }
}
