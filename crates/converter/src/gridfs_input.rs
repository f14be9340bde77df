//! Reading an upload straight out of GridFS while it is decoded: no copy on scratch disk.
//!
//! [`GridFsUpload`] gives random access to a GridFS file by chunk number (`fs.chunks` documents
//! `{files_id, n, data}`), through a small LRU cache of chunks shared by every reader of the
//! upload (the probe and each segment of a split encode). A reader that needs chunk `n` fetches
//! `n` and the next few chunks in one query on a background task, so the download of what comes
//! next overlaps the decode of what came before. [`GridFsReader`] is a `Read + Seek` view of it,
//! and [`open`] hands one to FFmpeg as a custom `AVIOContext` (ffmpeg-next's `StreamIo`; its read
//! and seek callbacks, `AVSEEK_SIZE` included, call ours). An MP4 whose index (`moov`) is at the
//! end is read like a local file: the demuxer seeks to the end, reads the index, seeks back.
//!
//! The memory bound: at most [`CACHE_BYTES`] of chunks per upload (at least [`MIN_CACHE_CHUNKS`]
//! chunks: GridFS chunks are at most 16 MiB), plus one chunk held by each reader and FFmpeg's
//! [`AVIO_BUFFER_BYTES`] per open demuxer. Gauge `converter_input_cache_bytes` counts the cached
//! chunks of all jobs.
//!
//! The hardening of a file open holds: the same demuxer allow-list, probe and stream limits; the
//! custom I/O has no protocol at all, and nested opens (a playlist entry, an MP4 data reference)
//! go through the format context's `io_open`, which [`open`] replaces by one that refuses
//! everything. A chunk that is missing or has the wrong size fails the read with a permanent
//! error naming it; a MongoDB error fails it with a transient one; a read waiting for a chunk
//! gives up when the conversion is cancelled or after [`CHUNK_WAIT`].
#![allow(unsafe_code)]

use std::{
    collections::HashMap,
    ffi::{c_char, c_int},
    io::{self, Read, Seek, SeekFrom},
    panic::{catch_unwind, AssertUnwindSafe},
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Condvar, Mutex, MutexGuard, OnceLock,
    },
    time::{Duration, Instant},
};

use ffmpeg::{ffi, format, Dictionary};
use ffmpeg_next as ffmpeg;
use futures::TryStreamExt;
use mongodb::{
    bson::{doc, Bson, Document},
    Collection,
};

use crate::transcode::TranscodeError;

/// Bytes of chunks one upload may keep in memory (64 chunks of GridFS's default 255 KiB).
pub const CACHE_BYTES: usize = 16 * 1024 * 1024;
/// Chunks the cache holds whatever their size, so read-ahead and a few readers always fit.
pub const MIN_CACHE_CHUNKS: usize = 4;
/// Bytes fetched ahead of the chunk a reader needs, in the same query.
pub const READ_AHEAD_BYTES: usize = 2 * 1024 * 1024;
/// FFmpeg's buffer in front of the reader (its own default for files is 32 KiB).
pub const AVIO_BUFFER_BYTES: usize = 256 * 1024;
/// Longest a read waits for one chunk before the conversion fails (transiently).
pub const CHUNK_WAIT: Duration = Duration::from_secs(60);
/// How often a waiting read looks at the cancellation flag.
const CANCEL_POLL: Duration = Duration::from_millis(50);

/// Why reading the upload failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadFailure {
    /// A chunk is not stored, or has the wrong size: the upload can never be read.
    #[error("chunk {n} of {count} of the stored upload is missing or cut short")]
    Missing {
        /// The chunk's number.
        n: u32,
        /// Chunks the upload should have.
        count: u32,
    },
    /// MongoDB failed or did not answer in time; another attempt may succeed.
    #[error("reading the upload from MongoDB failed: {0}")]
    Storage(String),
    /// The conversion was cancelled while a read waited.
    #[error("cancelled")]
    Cancelled,
}

/// Where the chunks are and how big the cache may grow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheSize {
    /// Chunks kept at most (those being fetched included).
    pub chunks: usize,
    /// Chunks fetched after the one needed.
    pub read_ahead: usize,
}

impl CacheSize {
    /// The defaults ([`CACHE_BYTES`], [`READ_AHEAD_BYTES`]) for a chunk size.
    pub fn for_chunk_size(chunk_size: u32) -> Self {
        let chunk = chunk_size.max(1) as usize;
        let chunks = (CACHE_BYTES / chunk).max(MIN_CACHE_CHUNKS);
        Self {
            chunks,
            // Half the cache at most, so two readers' read-ahead never evicts what they read.
            read_ahead: (READ_AHEAD_BYTES / chunk).clamp(1, chunks / 2),
        }
    }
}

/// One GridFS upload, readable at any offset; cheap to clone (the cache is shared).
#[derive(Clone, Debug)]
pub struct GridFsUpload {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    chunks: Collection<Document>,
    files_id: Bson,
    length: u64,
    chunk_size: u32,
    size: CacheSize,
    runtime: tokio::runtime::Handle,
    cancel: Arc<AtomicBool>,
    cache: Mutex<Cache>,
    arrived: Condvar,
    /// Chunks holding the packets the demuxer will read, ascending (see [`follow_index`]).
    plan: OnceLock<Vec<u32>>,
    /// The failure that made a read fail first, for [`GridFsUpload::explain`].
    failure: Mutex<Option<ReadFailure>>,
    /// Most bytes the cache held at once.
    peak_bytes: AtomicU64,
    /// Chunks fetched from MongoDB (a chunk evicted and needed again counts twice).
    fetched: AtomicU64,
}

#[derive(Debug, Default)]
struct Cache {
    slots: HashMap<u32, Slot>,
    /// Bytes of the ready chunks.
    bytes: usize,
    /// Use counter for the LRU order.
    tick: u64,
}

#[derive(Debug)]
enum Slot {
    /// A fetch task is getting it.
    Pending,
    Ready {
        data: Arc<Vec<u8>>,
        used: u64,
    },
    Failed(ReadFailure),
}

impl GridFsUpload {
    /// The upload `files_id` of `length` bytes in chunks of `chunk_size` in `chunks` (the
    /// bucket's `fs.chunks`). Fetches run on the current Tokio runtime; reads are blocking (made
    /// on the conversion's thread) and stop waiting once `cancel` is set.
    pub fn new(
        chunks: Collection<Document>,
        files_id: Bson,
        length: u64,
        chunk_size: u32,
        cancel: Arc<AtomicBool>,
    ) -> Self {
        Self::with_cache_size(
            chunks,
            files_id,
            length,
            chunk_size,
            cancel,
            CacheSize::for_chunk_size(chunk_size),
        )
    }

    /// [`GridFsUpload::new`] with a cache of another size.
    pub fn with_cache_size(
        chunks: Collection<Document>,
        files_id: Bson,
        length: u64,
        chunk_size: u32,
        cancel: Arc<AtomicBool>,
        size: CacheSize,
    ) -> Self {
        Self {
            shared: Arc::new(Shared {
                chunks,
                files_id,
                length,
                chunk_size: chunk_size.max(1),
                size: CacheSize {
                    chunks: size.chunks.max(2),
                    read_ahead: size.read_ahead.min(size.chunks.max(2) - 1),
                },
                runtime: tokio::runtime::Handle::current(),
                cancel,
                cache: Mutex::default(),
                arrived: Condvar::new(),
                plan: OnceLock::new(),
                failure: Mutex::default(),
                peak_bytes: AtomicU64::new(0),
                fetched: AtomicU64::new(0),
            }),
        }
    }

    /// A reader positioned at the start.
    pub fn reader(&self) -> GridFsReader {
        GridFsReader {
            upload: self.clone(),
            pos: 0,
            current: None,
        }
    }

    /// The upload's size in bytes.
    pub fn len(&self) -> u64 {
        self.shared.length
    }

    /// Whether the upload is empty.
    pub fn is_empty(&self) -> bool {
        self.shared.length == 0
    }

    /// The cache's size.
    pub fn cache_size(&self) -> CacheSize {
        self.shared.size
    }

    /// Most bytes of chunks the cache held at once.
    pub fn peak_cache_bytes(&self) -> u64 {
        self.shared.peak_bytes.load(Ordering::Relaxed)
    }

    /// Chunks fetched from MongoDB so far.
    pub fn chunks_fetched(&self) -> u64 {
        self.shared.fetched.load(Ordering::Relaxed)
    }

    /// What made a read fail, if one did.
    pub fn failure(&self) -> Option<ReadFailure> {
        lock(&self.shared.failure).clone()
    }

    /// The error a conversion of this upload ends with: FFmpeg only saw "I/O error" when a read
    /// failed, so the read's own failure replaces what it made of that. A missing chunk is
    /// permanent ([`TranscodeError::Damaged`]), a MongoDB failure transient.
    pub fn explain(&self, error: TranscodeError) -> TranscodeError {
        match self.failure() {
            None => error,
            Some(ReadFailure::Cancelled) => TranscodeError::Cancelled,
            Some(missing @ ReadFailure::Missing { .. }) => {
                TranscodeError::Damaged(missing.to_string())
            }
            Some(storage @ ReadFailure::Storage(_)) => {
                TranscodeError::Internal(storage.to_string())
            }
        }
    }

    fn chunk_count(&self) -> u32 {
        u32::try_from(
            self.shared
                .length
                .div_ceil(u64::from(self.shared.chunk_size)),
        )
        .unwrap_or(u32::MAX)
    }

    /// Bytes chunk `n` must hold.
    fn expected_len(&self, n: u32) -> usize {
        let start = u64::from(n) * u64::from(self.shared.chunk_size);
        self.shared
            .length
            .saturating_sub(start)
            .min(u64::from(self.shared.chunk_size)) as usize
    }

    /// Chunk `n`, fetched (with the next ones) when it is not cached; blocks until it is there.
    fn chunk(&self, n: u32) -> Result<Arc<Vec<u8>>, ReadFailure> {
        let result = self.wait_for(n);
        if let Err(failure) = &result {
            lock(&self.shared.failure).get_or_insert_with(|| failure.clone());
        }
        result
    }

    fn wait_for(&self, n: u32) -> Result<Arc<Vec<u8>>, ReadFailure> {
        let shared = &*self.shared;
        let deadline = Instant::now() + CHUNK_WAIT;
        let mut cache = lock(&shared.cache);
        loop {
            if shared.cancel.load(Ordering::Relaxed) {
                return Err(ReadFailure::Cancelled);
            }
            cache.tick += 1;
            let tick = cache.tick;
            match cache.slots.get_mut(&n) {
                Some(Slot::Ready { data, used }) => {
                    *used = tick;
                    let data = data.clone();
                    self.read_ahead(&mut cache, n);
                    return Ok(data);
                }
                Some(Slot::Failed(failure)) => {
                    let failure = failure.clone();
                    // Not kept: a later read (after a transient failure) tries again.
                    cache.slots.remove(&n);
                    return Err(failure);
                }
                Some(Slot::Pending) => {}
                None => self.fetch(&mut cache, n, true),
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(ReadFailure::Storage(format!(
                    "chunk {n} did not arrive within {} s",
                    CHUNK_WAIT.as_secs()
                )));
            }
            cache = shared
                .arrived
                .wait_timeout(cache, CANCEL_POLL.min(deadline - now))
                .map(|(guard, _)| guard)
                .unwrap_or_else(|poisoned| poisoned.into_inner().0);
        }
    }

    /// The chunks a reader of chunk `n` reads next: those of the demuxer's index that follow `n`
    /// when `n` is one of them ([`follow_index`]), else the next ones in the file.
    fn following(&self, n: u32) -> Vec<u32> {
        let ahead = self.shared.size.read_ahead;
        if let Some(plan) = self.shared.plan.get() {
            if let Ok(at) = plan.binary_search(&n) {
                return plan[at + 1..].iter().copied().take(ahead).collect();
            }
        }
        let end = n
            .saturating_add(1)
            .saturating_add(ahead as u32)
            .min(self.chunk_count());
        (n.saturating_add(1)..end).collect()
    }

    /// Starts fetching the chunks read after `n` that are not cached, once half of those fetched
    /// ahead are used up (so a query fetches a few chunks at once).
    fn read_ahead(&self, cache: &mut Cache, n: u32) {
        let next = self.following(n);
        let half = self.shared.size.read_ahead.div_ceil(2);
        if let Some(first) = next
            .iter()
            .take(half)
            .find(|k| !cache.slots.contains_key(k))
        {
            self.fetch(cache, *first, false);
        }
    }

    /// Marks chunk `n` and the absent ones read after it (up to the read-ahead) pending and
    /// fetches them on a background task. `needed`: `n` is wanted now, so room is made for it.
    fn fetch(&self, cache: &mut Cache, n: u32, needed: bool) {
        let shared = &*self.shared;
        if n >= self.chunk_count() {
            return;
        }
        let mut list = Vec::new();
        for k in std::iter::once(n).chain(self.following(n)) {
            if cache.slots.contains_key(&k) {
                continue;
            }
            if cache.slots.len() >= shared.size.chunks && !evict(cache) {
                break;
            }
            cache.slots.insert(k, Slot::Pending);
            list.push(k);
        }
        if needed && !list.contains(&n) {
            // Everything else is pending: the needed chunk goes over the bound by one.
            cache.slots.insert(n, Slot::Pending);
            list.insert(0, n);
        }
        if list.is_empty() {
            return;
        }
        let upload = self.clone();
        shared
            .runtime
            .spawn(async move { upload.fetch_list(list).await });
    }

    /// Fetches chunks `list` (ascending) in one query and puts each in the cache as it arrives;
    /// those that do not arrive are marked missing.
    async fn fetch_list(self, list: Vec<u32>) {
        let shared = &*self.shared;
        // What this query delivered: a chunk that arrived, was evicted and is pending again for
        // another query is not this one's to mark missing.
        let mut delivered = Vec::with_capacity(list.len());
        let found = async {
            let numbers: Vec<i64> = list.iter().map(|&n| i64::from(n)).collect();
            let mut cursor = shared
                .chunks
                .find(doc! { "files_id": shared.files_id.clone(), "n": { "$in": numbers } })
                .sort(doc! { "n": 1 })
                .projection(doc! { "_id": 0, "n": 1, "data": 1 })
                .await?;
            while let Some(chunk) = cursor.try_next().await? {
                let Some(n) = chunk_number(&chunk).filter(|n| list.binary_search(n).is_ok()) else {
                    continue;
                };
                let slot = match chunk_data(chunk) {
                    Some(data) if data.len() == self.expected_len(n) => {
                        shared.fetched.fetch_add(1, Ordering::Relaxed);
                        Slot::Ready {
                            data: Arc::new(data),
                            used: 0,
                        }
                    }
                    _ => Slot::Failed(ReadFailure::Missing {
                        n,
                        count: self.chunk_count(),
                    }),
                };
                delivered.push(n);
                self.settle(n, slot);
            }
            Ok::<_, mongodb::error::Error>(())
        }
        .await;
        let count = self.chunk_count();
        let mut cache = lock(&shared.cache);
        for n in list.iter().filter(|n| !delivered.contains(n)) {
            if let Some(slot) = cache.slots.get_mut(n) {
                if matches!(slot, Slot::Pending) {
                    *slot = Slot::Failed(match &found {
                        Ok(()) => ReadFailure::Missing { n: *n, count },
                        Err(e) => ReadFailure::Storage(e.to_string()),
                    });
                }
            }
        }
        drop(cache);
        shared.arrived.notify_all();
    }

    /// Puts a fetched chunk in its pending slot (gone when the conversion ended meanwhile).
    fn settle(&self, n: u32, slot: Slot) {
        let shared = &*self.shared;
        let mut cache = lock(&shared.cache);
        if !matches!(cache.slots.get(&n), Some(Slot::Pending)) {
            return;
        }
        if let Slot::Ready { data, .. } = &slot {
            cache.bytes += data.len();
            metrics::gauge!("converter_input_cache_bytes").increment(data.len() as f64);
            shared
                .peak_bytes
                .fetch_max(cache.bytes as u64, Ordering::Relaxed);
        }
        cache.slots.insert(n, slot);
        drop(cache);
        shared.arrived.notify_all();
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        let bytes = self.cache.get_mut().map_or(0, |c| c.bytes);
        metrics::gauge!("converter_input_cache_bytes").decrement(bytes as f64);
    }
}

/// Removes the least recently used ready (or failed) chunk; false when every slot is pending.
fn evict(cache: &mut Cache) -> bool {
    let victim = cache
        .slots
        .iter()
        .filter_map(|(n, slot)| match slot {
            Slot::Ready { used, .. } => Some((*used, *n)),
            Slot::Failed(_) => Some((0, *n)),
            Slot::Pending => None,
        })
        .min()
        .map(|(_, n)| n);
    let Some(n) = victim else {
        return false;
    };
    if let Some(Slot::Ready { data, .. }) = cache.slots.remove(&n) {
        cache.bytes -= data.len();
        metrics::gauge!("converter_input_cache_bytes").decrement(data.len() as f64);
    }
    true
}

fn chunk_number(chunk: &Document) -> Option<u32> {
    match chunk.get("n")? {
        Bson::Int32(n) => u32::try_from(*n).ok(),
        Bson::Int64(n) => u32::try_from(*n).ok(),
        Bson::Double(n) if n.fract() == 0.0 && *n >= 0.0 => Some(*n as u32),
        _ => None,
    }
}

fn chunk_data(mut chunk: Document) -> Option<Vec<u8>> {
    match chunk.remove("data")? {
        Bson::Binary(b) => Some(b.bytes),
        _ => None,
    }
}

/// A mutex whose holder never panics with it held in our code; a poisoned one is still usable.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A position in a [`GridFsUpload`]; what FFmpeg reads through.
#[derive(Debug)]
pub struct GridFsReader {
    upload: GridFsUpload,
    pos: u64,
    /// The chunk last read from, held while reads stay in it.
    current: Option<(u32, Arc<Vec<u8>>)>,
}

impl GridFsReader {
    fn read_at(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let length = self.upload.shared.length;
        if buf.is_empty() || self.pos >= length {
            return Ok(0);
        }
        let chunk_size = u64::from(self.upload.shared.chunk_size);
        let n = u32::try_from(self.pos / chunk_size).map_err(io::Error::other)?;
        let data = match &self.current {
            Some((current, data)) if *current == n => data.clone(),
            _ => {
                self.current = None;
                let data = self.upload.chunk(n).map_err(io::Error::other)?;
                self.current = Some((n, data.clone()));
                data
            }
        };
        let offset = (self.pos - u64::from(n) * chunk_size) as usize;
        let available = data.get(offset..).unwrap_or_default();
        let count = available.len().min(buf.len());
        buf[..count].copy_from_slice(&available[..count]);
        self.pos += count as u64;
        Ok(count)
    }

    fn seek_to(&mut self, to: SeekFrom) -> io::Result<u64> {
        let length = self.upload.shared.length;
        let target = match to {
            SeekFrom::Start(offset) => Some(offset),
            SeekFrom::End(delta) => length.checked_add_signed(delta),
            SeekFrom::Current(delta) => self.pos.checked_add_signed(delta),
        };
        let target = target
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek before the start"))?;
        self.pos = target;
        Ok(target)
    }
}

// FFmpeg calls these from C: a panic must never unwind out of them (it would abort the process),
// so each one is caught and becomes an I/O error.
impl Read for GridFsReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        catch_unwind(AssertUnwindSafe(|| self.read_at(buf)))
            .unwrap_or_else(|_| Err(io::Error::other("reading the upload panicked")))
    }
}

impl Seek for GridFsReader {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        catch_unwind(AssertUnwindSafe(|| self.seek_to(to)))
            .unwrap_or_else(|_| Err(io::Error::other("seeking in the upload panicked")))
    }
}

/// Opens a demuxer over `reader` with `options` (the caller's allow-list and limits) and finds
/// its streams. Nested opens are refused whatever the demuxer asks for.
pub(crate) fn open<R: Read + Seek + Send + 'static>(
    reader: R,
    options: Dictionary,
) -> Result<format::context::Input, ffmpeg::Error> {
    let mut io =
        format::context::StreamIo::from_read_seek_with_capacity(reader, AVIO_BUFFER_BYTES)?;
    // SAFETY: the context is allocated here and only used by this block until it is handed to
    // `Input`, which owns it from then on (closing it before `io` drops, see the destructor of
    // ffmpeg-next's custom-I/O inputs). `pb` points into `io`, which the `Input` also owns, so it
    // outlives every use; AVFMT_FLAG_CUSTOM_IO tells FFmpeg not to free it. On a failed
    // avformat_open_input FFmpeg frees the context itself and nulls `ctx`; `io` is then dropped
    // by us. `opts` is the dictionary FFmpeg consumes, handed back to Rust to be freed.
    unsafe {
        let mut opts = options.disown();
        let mut ctx = ffi::avformat_alloc_context();
        if ctx.is_null() {
            ffmpeg::Dictionary::own(opts);
            return Err(ffmpeg::Error::Other {
                errno: ffmpeg::error::ENOMEM,
            });
        }
        (*ctx).pb = io.as_mut_ptr();
        (*ctx).flags |= ffi::AVFMT_FLAG_CUSTOM_IO;
        (*ctx).io_open = Some(refuse_nested_open);
        let opened =
            ffi::avformat_open_input(&mut ctx, std::ptr::null(), std::ptr::null_mut(), &mut opts);
        ffmpeg::Dictionary::own(opts);
        if opened < 0 {
            return Err(ffmpeg::Error::from(opened));
        }
        let found = ffi::avformat_find_stream_info(ctx, std::ptr::null_mut());
        if found < 0 {
            ffi::avformat_close_input(&mut ctx);
            return Err(ffmpeg::Error::from(found));
        }
        Ok(format::context::Input::wrap_with_custom_io(ctx, io))
    }
}

/// Reads ahead along the demuxer's index of the audio stream: an MP4 lists where every packet
/// is, and the audio of a video file sits in a fraction of its chunks (a third for 720p H.264 and
/// 128 kb/s AAC in GridFS's 255 KiB chunks), so only those are fetched, in the order they are
/// read. Other formats (whose index lists only some packets, if any) read ahead sequentially, and
/// so does any read outside the plan: the plan decides what is fetched early, never what is read.
pub(crate) fn follow_index(
    ictx: &mut format::context::Input,
    stream_index: usize,
    upload: &GridFsUpload,
) {
    if upload.shared.plan.get().is_some() || !ictx.format().name().starts_with("mov,") {
        return;
    }
    let Some(mut stream) = ictx.stream_mut(stream_index) else {
        return;
    };
    let chunk_size = i64::from(upload.shared.chunk_size);
    let mut chunks = std::collections::BTreeSet::new();
    // SAFETY: the stream belongs to a live, open input we borrow mutably; the index functions
    // only read the stream's index (entries stay valid until the demuxer adds one, which it does
    // not while we hold the context), and each entry is copied out before the next call.
    unsafe {
        let st = stream.as_mut_ptr();
        let count = ffi::avformat_index_get_entries_count(st);
        for i in 0..count {
            let entry = ffi::avformat_index_get_entry(st, i);
            if entry.is_null() {
                continue;
            }
            let (pos, size) = ((*entry).pos, i64::from((*entry).size()));
            if pos < 0 || size <= 0 {
                continue;
            }
            for n in pos / chunk_size..=(pos + size - 1) / chunk_size {
                if let Ok(n) = u32::try_from(n) {
                    chunks.insert(n);
                }
            }
        }
    }
    if !chunks.is_empty() {
        let _ = upload.shared.plan.set(chunks.into_iter().collect());
    }
}

/// The format context's `io_open`: every file a demuxer asks to open besides the upload (an HLS
/// segment, an MP4 external data reference, an image sequence's next file) is refused.
unsafe extern "C" fn refuse_nested_open(
    _ctx: *mut ffi::AVFormatContext,
    _pb: *mut *mut ffi::AVIOContext,
    _url: *const c_char,
    _flags: c_int,
    _options: *mut *mut ffi::AVDictionary,
) -> c_int {
    ffi::AVERROR(ffmpeg::error::EPERM)
}

#[cfg(test)]
mod tests {
    use mongodb::bson::spec::BinarySubtype;

    use super::*;

    #[test]
    fn cache_sizes_follow_the_chunk_size() {
        let default = CacheSize::for_chunk_size(255 * 1024);
        assert_eq!(default.chunks, 64);
        assert_eq!(default.read_ahead, 8);
        // Huge chunks: a few of them, read-ahead within half the cache.
        let huge = CacheSize::for_chunk_size(16 * 1024 * 1024);
        assert_eq!(huge.chunks, MIN_CACHE_CHUNKS);
        assert_eq!(huge.read_ahead, 1);
        let tiny = CacheSize::for_chunk_size(1024);
        assert_eq!(tiny.chunks, 16 * 1024);
        assert_eq!(tiny.read_ahead, 2048);
    }

    #[test]
    fn chunk_fields() {
        assert_eq!(chunk_number(&doc! { "n": 3 }), Some(3));
        assert_eq!(chunk_number(&doc! { "n": 3i64 }), Some(3));
        assert_eq!(chunk_number(&doc! { "n": -1 }), None);
        assert_eq!(chunk_number(&doc! { "x": 1 }), None);
        let data = mongodb::bson::Binary {
            subtype: BinarySubtype::Generic,
            bytes: vec![1, 2],
        };
        assert_eq!(chunk_data(doc! { "data": data }), Some(vec![1, 2]));
        assert_eq!(chunk_data(doc! { "data": "text" }), None);
    }

    /// The io_open installed by [`open`] refuses a nested open of a local file.
    #[test]
    fn nested_opens_are_refused() {
        crate::transcode::init();
        let dir = tempfile::tempdir().unwrap();
        let wav = dir.path().join("a.wav");
        // A minimal WAV: 44-byte header and 0.1 s of silence.
        let samples = 4410u32;
        let mut bytes = Vec::new();
        bytes.extend_from_slice(b"RIFF");
        bytes.extend_from_slice(&(36 + samples * 2).to_le_bytes());
        bytes.extend_from_slice(b"WAVEfmt ");
        bytes.extend_from_slice(&16u32.to_le_bytes());
        bytes.extend_from_slice(&1u16.to_le_bytes());
        bytes.extend_from_slice(&1u16.to_le_bytes());
        bytes.extend_from_slice(&44_100u32.to_le_bytes());
        bytes.extend_from_slice(&88_200u32.to_le_bytes());
        bytes.extend_from_slice(&2u16.to_le_bytes());
        bytes.extend_from_slice(&16u16.to_le_bytes());
        bytes.extend_from_slice(b"data");
        bytes.extend_from_slice(&(samples * 2).to_le_bytes());
        bytes.resize(bytes.len() + samples as usize * 2, 0);
        std::fs::write(&wav, &bytes).unwrap();

        let mut input = open(io::Cursor::new(bytes), Dictionary::new()).unwrap();
        assert_eq!(input.format().name(), "wav");
        let url = std::ffi::CString::new(wav.display().to_string()).unwrap();
        // SAFETY: `input` is a live, open context; io_open is the callback `open` installed, called
        // as FFmpeg's demuxers call it (a null `options` is allowed).
        let refused = unsafe {
            let ctx = input.as_mut_ptr();
            let mut pb = std::ptr::null_mut();
            let io_open = (*ctx).io_open.unwrap();
            io_open(
                ctx,
                &mut pb,
                url.as_ptr(),
                ffi::AVIO_FLAG_READ,
                std::ptr::null_mut(),
            )
        };
        assert_eq!(refused, ffi::AVERROR(ffmpeg::error::EPERM));
    }
}
