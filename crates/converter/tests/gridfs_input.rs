//! Converting straight out of GridFS (no copy of the upload on scratch disk): real Mongo stand-in,
//! real FFmpeg, media made with the ffmpeg CLI.

// Test code, helpers included (clippy.toml's allow-*-in-tests covers #[test] functions only):
// a panic is a failed test with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod helpers;

use std::{
    path::Path,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use common::jobs::JobState;
use converter::{
    gridfs_input::{CacheSize, GridFsUpload, ReadFailure},
    segmented::{self, Split},
    transcode::{transcode, TranscodeError, TranscodeOptions, TranscodeReport},
};
use helpers::*;
use mongodb::bson::{doc, oid::ObjectId, Bson, Document};

/// A small GridFS chunk, so even short fixtures span many chunks and the cache below is tight.
const CHUNK: u32 = 16 * 1024;
/// A cache far smaller than the fixtures.
const SMALL_CACHE: CacheSize = CacheSize {
    chunks: 8,
    read_ahead: 3,
};

/// Stores `path` in the videos bucket with chunks of `chunk` bytes.
async fn store(env: &TestEnv, path: &Path, chunk: u32) -> ObjectId {
    env.upload_in_chunks(path, "clip.mp4", "gridfs@example.com", Some(chunk))
        .await
}

fn chunks(env: &TestEnv) -> mongodb::Collection<Document> {
    env.videos().collection("fs.chunks")
}

fn upload_of(env: &TestEnv, id: ObjectId, len: u64, cancel: Arc<AtomicBool>) -> GridFsUpload {
    GridFsUpload::with_cache_size(
        chunks(env),
        Bson::ObjectId(id),
        len,
        CHUNK,
        cancel,
        SMALL_CACHE,
    )
}

/// Transcodes `upload` on a blocking thread (reads block on chunks fetched by the runtime).
async fn convert(
    upload: GridFsUpload,
    out: &Path,
    split: Split,
) -> Result<TranscodeReport, TranscodeError> {
    let out = out.to_owned();
    let cancel = AtomicBool::new(false);
    tokio::task::spawn_blocking(move || {
        segmented::transcode(
            &upload,
            &out,
            &TranscodeOptions::default(),
            &cancel,
            |_| {},
            split,
        )
        .map_err(|e| upload.explain(e))
    })
    .await
    .unwrap()
}

fn one_stream() -> Split {
    Split {
        segments: 1,
        min_segment: Duration::MAX,
    }
}

/// Byte offset of an MP4 top-level box.
fn box_offset(path: &Path, name: &[u8; 4]) -> usize {
    let bytes = std::fs::read(path).unwrap();
    bytes
        .windows(4)
        .position(|w| w == name)
        .unwrap_or_else(|| panic!("no {} box", String::from_utf8_lossy(name)))
}

#[tokio::test(flavor = "multi_thread")]
async fn faststart_and_moov_at_end_decode_like_the_file() {
    let env = TestEnv::new().await;
    // The mp4 muxer writes the index after the media; +faststart moves it to the front.
    let at_end = video_with_audio(env.media.path(), "at_end.mp4", 8, 44_100, 2, "aac");
    let faststart = ffmpeg(
        env.media.path(),
        "faststart.mp4",
        &[
            "-i",
            at_end.to_str().unwrap(),
            "-c",
            "copy",
            "-movflags",
            "+faststart",
        ],
    );
    assert!(box_offset(&at_end, b"moov") > box_offset(&at_end, b"mdat"));
    assert!(box_offset(&faststart, b"moov") < box_offset(&faststart, b"mdat"));

    for src in [&at_end, &faststart] {
        let len = std::fs::metadata(src).unwrap().len();
        assert!(len > 8 * u64::from(CHUNK), "the fixture outgrows the cache");
        let from_file = env.media.path().join("file.mp3");
        let file_report = transcode(
            src,
            &from_file,
            &TranscodeOptions::default(),
            &AtomicBool::new(false),
            |_| {},
        )
        .unwrap();

        let id = store(&env, src, CHUNK).await;
        let upload = upload_of(&env, id, len, Arc::default());
        let from_gridfs = env.media.path().join("gridfs.mp3");
        let report = convert(upload.clone(), &from_gridfs, one_stream())
            .await
            .unwrap();
        assert_eq!(report, file_report, "{}", src.display());
        assert_eq!(
            std::fs::read(&from_gridfs).unwrap(),
            std::fs::read(&from_file).unwrap(),
            "the same MP3 as from the local file"
        );
        let source_samples = decoded_samples(src, 2, None);
        assert_eq!(decoded_samples(&from_gridfs, 2, None), source_samples);
        // Every chunk was read, never more than the cache's worth at once.
        assert!(upload.chunks_fetched() >= len.div_ceil(u64::from(CHUNK)));
        assert!(
            upload.peak_cache_bytes() <= 8 * u64::from(CHUNK),
            "{}",
            upload.peak_cache_bytes()
        );
        assert_eq!(upload.failure(), None);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn segments_share_one_upload_and_its_cache() {
    let env = TestEnv::new().await;
    // PCM keeps the rate and the timestamps exact, so the encode is split.
    let src = video_with_audio(env.media.path(), "talk.mov", 24, 44_100, 2, "pcm_s16le");
    let len = std::fs::metadata(&src).unwrap().len();
    let id = store(&env, &src, CHUNK).await;
    let upload = GridFsUpload::with_cache_size(
        chunks(&env),
        Bson::ObjectId(id),
        len,
        CHUNK,
        Arc::default(),
        CacheSize {
            chunks: 24,
            read_ahead: 3,
        },
    );
    let out = env.media.path().join("split.mp3");
    let split = Split {
        segments: 3,
        min_segment: Duration::from_secs(4),
    };
    let report = convert(upload.clone(), &out, split).await.unwrap();
    assert_eq!(report.segments, 3);
    assert_eq!(
        decoded_samples(&out, 2, None),
        decoded_samples(&src, 2, None)
    );
    assert!(upload.peak_cache_bytes() <= 24 * u64::from(CHUNK));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_or_short_chunk_fails_permanently_and_names_it() {
    let env = TestEnv::new().await;
    let src = video_with_audio(env.media.path(), "clip.mp4", 6, 44_100, 2, "aac");
    let len = std::fs::metadata(&src).unwrap().len();
    let count = len.div_ceil(u64::from(CHUNK));

    let missing = store(&env, &src, CHUNK).await;
    chunks(&env)
        .delete_one(doc! { "files_id": missing, "n": 2 })
        .await
        .unwrap();
    let short = store(&env, &src, CHUNK).await;
    chunks(&env)
        .update_one(
            doc! { "files_id": short, "n": 3 },
            doc! { "$set": { "data": Bson::Binary(mongodb::bson::Binary {
            subtype: mongodb::bson::spec::BinarySubtype::Generic, bytes: vec![0; 10] }) } },
        )
        .await
        .unwrap();

    for (id, n) in [(missing, 2u32), (short, 3)] {
        let upload = upload_of(&env, id, len, Arc::default());
        let started = Instant::now();
        let out = env.media.path().join("x.mp3");
        let err = convert(upload.clone(), &out, one_stream())
            .await
            .unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(30), "no hang");
        assert!(err.is_permanent(), "{err}");
        assert_eq!(
            err.to_string(),
            format!(
                "the video file is damaged or incomplete (chunk {n} of {count} of the stored \
                 upload is missing or cut short)"
            )
        );
        assert_eq!(
            upload.failure(),
            Some(ReadFailure::Missing {
                n,
                count: count as u32
            })
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_read_waiting_for_a_chunk_stops_when_cancelled() {
    // A "server" that accepts connections and never answers: every fetch hangs.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let client = mongodb::Client::with_uri_str(format!(
        "mongodb://127.0.0.1:{port}/?directConnection=true&serverSelectionTimeoutMS=60000"
    ))
    .await
    .unwrap();
    let cancel = Arc::new(AtomicBool::new(false));
    let upload = GridFsUpload::new(
        client.database("x").collection("fs.chunks"),
        Bson::ObjectId(ObjectId::new()),
        1_000_000,
        CHUNK,
        cancel.clone(),
    );
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.mp3");
    let reading = upload.clone();
    let conversion = tokio::spawn(async move { convert(reading, &out, one_stream()).await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!conversion.is_finished(), "the read waits for its chunk");
    let cancelled = Instant::now();
    cancel.store(true, Ordering::Relaxed);
    let result = tokio::time::timeout(Duration::from_secs(10), conversion)
        .await
        .expect("the cancelled read returns")
        .unwrap();
    assert!(
        matches!(result, Err(TranscodeError::Cancelled)),
        "{result:?}"
    );
    assert!(cancelled.elapsed() < Duration::from_secs(2));
    assert_eq!(upload.failure(), Some(ReadFailure::Cancelled));
    drop(silent);
}

/// Bytes of the files under `dir`.
fn dir_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            total += dir_bytes(&path);
        } else if let Ok(meta) = entry.metadata() {
            total += meta.len();
        }
    }
    total
}

#[tokio::test(flavor = "multi_thread")]
async fn through_the_queue_scratch_holds_only_the_mp3() {
    let env = TestEnv::new().await;
    // 24 MB of PCM: larger than the chunk cache (16 MiB), the MP3 a tenth of it.
    let src = ffmpeg(
        env.media.path(),
        "lecture.wav",
        &[
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=48000:duration=130",
            "-ac",
            "2",
            "-c:a",
            "pcm_s16le",
        ],
    );
    let len = std::fs::metadata(&src).unwrap().len();
    assert!(len > converter::gridfs_input::CACHE_BYTES as u64);
    let fid = env.upload(&src, "lecture.wav", "ann@example.com").await;
    // One slot: no segments, one reader.
    let _app = spawn_app_with(&env, &[("CONVERTER_CONCURRENCY", "1")]).await;
    env.publish(fid, "ann@example.com").await;

    let mut peak = 0;
    let started = Instant::now();
    let job = loop {
        peak = peak.max(dir_bytes(env.tmp.path()));
        let job = env.job(fid).await;
        if let Some(job) = job.filter(|j| j.state.is_final()) {
            break job;
        }
        assert!(started.elapsed() < Duration::from_secs(120), "stuck");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(job.state, JobState::Completed, "{job:?}");
    let mp3 = env.download_mp3(job.mp3_fid.unwrap()).await;
    let mp3_len = std::fs::metadata(&mp3).unwrap().len();
    assert!(peak > 0, "the MP3 was written to scratch");
    assert!(
        peak <= mp3_len,
        "scratch peaked at {peak} bytes for a {len}-byte upload and a {mp3_len}-byte MP3"
    );
    assert_eq!(
        decoded_samples(&mp3, 2, None),
        decoded_samples(&src, 2, None)
    );
    assert!(env.leftover_files().is_empty());
}
