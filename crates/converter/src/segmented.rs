//! Segment-parallel encoding: one job's audio cut on MP3 frame boundaries, the segments encoded
//! at once on idle converter slots, and joined into one MP3 that decodes like a single-stream
//! encode (same sample count, same Xing/LAME header fields, no seam).
//!
//! Segment `k` owns the global MP3 frames `S_k .. S_k+1` (frame `g` is what a single-stream encode
//! would emit as its `g`-th frame: LAME's framing only depends on the sample index, so an encoder
//! fed from sample `A * 1152` emits global frame `A + j` as its `j`-th frame). Each segment's
//! encoder starts [`WARMUP_FRAMES`] before its first frame, so the psychoacoustic model, the
//! polyphase filterbank and the MDCT overlap are in the state a single stream would have; the
//! warm-up frames are dropped. Each segment but the last encodes [`OVERLAP_FRAMES`] past its end,
//! and [`crate::mp3_frame::splice`] picks the seam frame inside that overlap where the next
//! segment's bit-reservoir bytes fit (see `docs/converter.md#segment-parallel-encoding`).
//!
//! Splitting is only attempted when the result is exact: the source rate is kept (no
//! resampler, whose state would differ at a seam) and the audio timestamps count samples without
//! gaps. Otherwise the job is encoded in one stream, as before.

use std::{
    fs::File,
    io::{BufReader, BufWriter, Read, Write},
    path::Path,
    sync::atomic::{AtomicBool, AtomicU64, Ordering},
    time::{Duration, Instant},
};

use ffmpeg::{frame, Rational};
use ffmpeg_next as ffmpeg;

use crate::{
    mp3_frame,
    transcode::{
        self, build_filter, internal, is_truncated, open_encoder, open_input, open_output,
        output_rate, percent, pull_filtered, read_packet, source, AudioInput, Input, Limits,
        PacketRead, Throttle, TranscodeError, TranscodeOptions, TranscodeReport, PROGRESS_INTERVAL,
    },
};

/// Samples per MPEG-1 layer III frame.
const FRAME: u64 = 1152;
/// Frames encoded and dropped before a segment's first frame (about 1 s): the encoder's
/// filterbank and psychoacoustic state need a few frames, LAME's adaptive ATH a little longer.
pub const WARMUP_FRAMES: u64 = 40;
/// Frames past its end that a segment also encodes, where the seam may be placed.
pub const OVERLAP_FRAMES: u64 = 24;
/// Input fed past the overlap, so the encoder's flush at the end touches no frame we keep.
const FLUSH_MARGIN_FRAMES: u64 = 4;
/// Audio decoded and thrown away before a segment's warm-up: the decoder's own overlap state.
const DECODER_PREROLL_SECS: f64 = 1.0;
/// How often the coordinating thread looks at the segments' progress.
const POLL: Duration = Duration::from_millis(50);

/// How a job may be split.
#[derive(Debug, Clone, Copy)]
pub struct Split {
    /// Segments to encode at once (1 = one stream).
    pub segments: usize,
    /// Shortest segment worth a thread of its own.
    pub min_segment: Duration,
}

/// Why a segmented encode did not produce the MP3.
#[derive(Debug)]
enum SegmentError {
    /// The input cannot be split exactly; encode it in one stream instead.
    NotSplittable(String),
    /// A real failure: the job fails (or retries) as a one-stream encode would.
    Failed(TranscodeError),
    /// Stopped because another segment failed.
    Aborted,
}

impl From<TranscodeError> for SegmentError {
    fn from(e: TranscodeError) -> Self {
        Self::Failed(e)
    }
}

fn ff(e: ffmpeg::Error) -> SegmentError {
    SegmentError::Failed(internal(e))
}

/// Converts like [`transcode::transcode`], on `split.segments` threads when the input allows.
pub fn transcode<'a>(
    input: impl Into<Input<'a>>,
    output: &Path,
    options: &TranscodeOptions,
    cancel: &AtomicBool,
    mut progress: impl FnMut(f64),
    split: Split,
) -> Result<TranscodeReport, TranscodeError> {
    transcode::init();
    let input = input.into();
    if split.segments > 1 {
        match transcode_segments(input, output, options, cancel, &mut progress, split) {
            Ok(report) => return Ok(report),
            Err(SegmentError::NotSplittable(why)) => {
                tracing::info!(%why, "encoding in one stream");
            }
            Err(SegmentError::Failed(e)) => return Err(e),
            Err(SegmentError::Aborted) => {
                return Err(TranscodeError::Internal("a segment was stopped".into()))
            }
        }
    }
    transcode::transcode(input, output, options, cancel, progress)
}

/// What every segment needs to know.
struct Plan {
    /// Timestamp, in samples, of the first decoded sample (global sample 0).
    origin: i64,
    /// Segment boundaries in global frames: segment k owns `bounds[k] .. bounds[k + 1]`; the
    /// last runs to the end of the audio.
    bounds: Vec<u64>,
    /// Sample rate (in and out).
    rate: u32,
    /// Estimated total samples, for progress.
    total_samples: u64,
}

/// Converts a timestamp to a sample index when it is one exactly.
fn ts_to_samples(ts: i64, tb: Rational, rate: u32) -> Option<i64> {
    let num = i128::from(ts) * i128::from(tb.numerator()) * i128::from(rate);
    let den = i128::from(tb.denominator());
    (den > 0 && num % den == 0).then(|| (num / den) as i64)
}

/// Sample index to a timestamp, rounded down.
fn samples_to_ts(samples: i64, tb: Rational, rate: u32) -> i64 {
    let num = i128::from(samples) * i128::from(tb.denominator());
    let den = i128::from(tb.numerator()) * i128::from(rate);
    num.div_euclid(den.max(1)) as i64
}

/// Segment boundaries in frames for `total_frames` split `n` ways.
pub fn boundaries(total_frames: u64, n: usize) -> Vec<u64> {
    (0..n as u64).map(|k| k * total_frames / n as u64).collect()
}

fn make_plan(audio: &mut AudioInput, split: Split, limits: &Limits) -> Result<Plan, SegmentError> {
    let rate = audio.decoder.rate();
    if output_rate(rate) != rate {
        return Err(SegmentError::NotSplittable(format!(
            "{rate} Hz is resampled"
        )));
    }
    let duration = audio
        .stream_duration
        .or(audio.duration)
        .ok_or_else(|| SegmentError::NotSplittable("unknown duration".into()))?;
    let by_length = (duration / split.min_segment.as_secs_f64().max(1.0)).floor() as usize;
    let n = split.segments.min(by_length);
    if n < 2 {
        return Err(SegmentError::NotSplittable("too short to split".into()));
    }
    // Global sample 0 is the first sample a one-stream decode yields: decode up to it.
    let mut decoded = frame::Audio::empty();
    let origin = loop {
        let packet = match read_packet(&mut audio.ictx) {
            Ok(PacketRead::Packet(packet)) => packet,
            Ok(PacketRead::End) => {
                return Err(SegmentError::NotSplittable("no audio decoded".into()))
            }
            Ok(PacketRead::Corrupt) => continue,
            Err(e) => return Err(SegmentError::NotSplittable(format!("reading failed: {e}"))),
        };
        if packet.stream() != audio.stream_index {
            if audio.ictx.nb_streams() > limits.max_streams {
                return Err(TranscodeError::TooManyStreams(limits.max_streams).into());
            }
            continue;
        }
        if audio.decoder.send_packet(&packet).is_err() {
            continue;
        }
        if audio.decoder.receive_frame(&mut decoded).is_ok() && decoded.samples() > 0 {
            let ts = decoded
                .timestamp()
                .and_then(|ts| ts_to_samples(ts, audio.time_base, rate))
                .ok_or_else(|| {
                    SegmentError::NotSplittable("timestamps do not count samples".into())
                })?;
            break ts;
        }
    };
    let total_samples = (duration * f64::from(rate)) as u64;
    Ok(Plan {
        origin,
        bounds: boundaries(total_samples / FRAME, n),
        rate,
        total_samples,
    })
}

/// What one segment's encoder produced.
struct Segment {
    /// Frames `S - WARMUP .. S + OVERLAP` (empty for the first segment).
    head: Vec<Vec<u8>>,
    /// The frames in between, in a scratch file, with their sizes.
    body: tempfile::NamedTempFile,
    body_sizes: Vec<u32>,
    /// Frames `next S - 1 .. next S + OVERLAP` (empty for the last segment).
    tail: Vec<Vec<u8>>,
    /// The first segment's first packet and the last segment's final packet, kept whole: their
    /// side data tells the muxer the encoder delay and the padding for the LAME header.
    first_packet: Option<ffmpeg::Packet>,
    last_packet: Option<ffmpeg::Packet>,
    /// One past the last global sample decoded.
    end_sample: u64,
    audio_packets: u64,
    bad_packets: u64,
}

/// One segment's job description.
struct SegmentJob<'a> {
    input: Input<'a>,
    scratch: &'a Path,
    options: &'a TranscodeOptions,
    plan: &'a Plan,
    index: usize,
    cancel: &'a AtomicBool,
    abort: &'a AtomicBool,
    done_samples: &'a AtomicU64,
    /// Shared by all segments: the job's [`crate::transcode::Limits`] hold for their sum.
    totals: &'a Totals,
}

/// What all segments of a job decoded and produced, held to the job's limits.
#[derive(Default)]
struct Totals {
    /// Samples decoded, each counted once: by the segment that owns it.
    decoded_samples: AtomicU64,
    /// Bytes of MP3 frames kept (the overlap frames around seams are few and not counted).
    output_bytes: AtomicU64,
}

impl SegmentJob<'_> {
    fn first_frame(&self) -> u64 {
        self.plan.bounds[self.index]
    }

    /// First frame the encoder is fed from.
    fn feed_from(&self) -> u64 {
        self.first_frame()
            .saturating_sub(if self.index == 0 { 0 } else { WARMUP_FRAMES })
    }

    /// First frame of the next segment.
    fn next_first(&self) -> Option<u64> {
        self.plan.bounds.get(self.index + 1).copied()
    }

    fn run(&self) -> Result<Segment, SegmentError> {
        let AudioInput {
            mut ictx,
            stream_index,
            time_base,
            mut decoder,
            source_format,
            ..
        } = open_input(self.input, &self.options.limits)?;
        let rate = self.plan.rate;
        let (mut encoder, _) = open_encoder(&decoder, self.options.quality)?;
        let feed_start = self.feed_from() * FRAME;
        let feed_end = self
            .next_first()
            .map(|next| (next + OVERLAP_FRAMES + FLUSH_MARGIN_FRAMES) * FRAME);
        let spec = match feed_end {
            Some(end) => format!("atrim=start_pts={feed_start}:end_pts={end}"),
            None => format!("atrim=start_pts={feed_start}"),
        };
        // Frames are given to the filter with their global sample index as timestamp.
        let sample_tb = Rational::new(1, rate as i32);
        let mut graph = build_filter(&decoder, source_format, sample_tb, &encoder, &spec)?;
        let preroll = (DECODER_PREROLL_SECS * f64::from(rate)) as i64;
        let skip_before = samples_to_ts(
            self.plan.origin + feed_start as i64 - preroll,
            time_base,
            rate,
        );
        let mut sink = Sink::new(self, feed_start)?;
        let mut decoded = frame::Audio::empty();
        let mut expected: Option<i64> = None;
        let mut audio_packets = 0u64;
        let mut bad_packets = 0u64;
        let mut reached_end = false;
        let mut decoded_here = 0u64;
        let limits = self.options.limits;
        'read: loop {
            if self.cancel.load(Ordering::Relaxed) {
                return Err(SegmentError::Failed(TranscodeError::Cancelled));
            }
            if self.abort.load(Ordering::Relaxed) {
                return Err(SegmentError::Aborted);
            }
            let packet = match read_packet(&mut ictx) {
                Ok(PacketRead::Packet(packet)) => packet,
                Ok(PacketRead::End) => break,
                Ok(PacketRead::Corrupt) => {
                    bad_packets += 1;
                    continue;
                }
                Err(e) => {
                    return Err(TranscodeError::Damaged(format!("reading failed: {e}")).into())
                }
            };
            if packet.stream() != stream_index {
                // Demuxers that find streams while reading (MPEG-TS) stop at `max_streams` + 1.
                if ictx.nb_streams() > limits.max_streams {
                    return Err(TranscodeError::TooManyStreams(limits.max_streams).into());
                }
                continue;
            }
            // Packets long before the segment are not even decoded.
            if self.index > 0 && packet.pts().is_some_and(|pts| pts < skip_before) {
                continue;
            }
            audio_packets += 1;
            match decoder.send_packet(&packet) {
                Ok(()) => {}
                Err(ffmpeg::Error::InvalidData) => {
                    bad_packets += 1;
                    continue;
                }
                Err(e) => {
                    return Err(TranscodeError::Damaged(format!("decoding failed: {e}")).into())
                }
            }
            while decoder.receive_frame(&mut decoded).is_ok() {
                let at = self.place(&decoded, time_base, &mut expected)?;
                self.count_decoded(at, decoded.samples() as u64, &mut decoded_here)?;
                sink.feed(&mut graph, &mut decoded, at, &mut encoder)?;
                if feed_end
                    .is_some_and(|end| expected.unwrap_or(0) - self.plan.origin >= end as i64)
                {
                    reached_end = true;
                    break 'read;
                }
            }
        }
        if !reached_end {
            if feed_end.is_some() {
                // Shorter than declared: let the one-stream encode judge the damage.
                return Err(SegmentError::NotSplittable(
                    "the audio ends before the segment does".into(),
                ));
            }
            decoder.send_eof().map_err(ff)?;
            while decoder.receive_frame(&mut decoded).is_ok() {
                let at = self.place(&decoded, time_base, &mut expected)?;
                self.count_decoded(at, decoded.samples() as u64, &mut decoded_here)?;
                sink.feed(&mut graph, &mut decoded, at, &mut encoder)?;
            }
        }
        source(&mut graph)?.source().flush().map_err(ff)?;
        sink.drain_filter(&mut graph, &mut encoder)?;
        encoder.send_eof().map_err(ff)?;
        sink.drain_encoder(&mut encoder)?;
        let end_sample = expected.map_or(0, |e| (e - self.plan.origin).max(0) as u64);
        sink.finish(end_sample, audio_packets, bad_packets)
    }

    /// Counts `samples` decoded at global sample `at` against the duration limit: all of them
    /// for this segment alone (`decoded_here`), the ones it owns for the job's total.
    fn count_decoded(
        &self,
        at: i64,
        samples: u64,
        decoded_here: &mut u64,
    ) -> Result<(), SegmentError> {
        let max = self.options.limits.max_duration;
        let max_samples = (max.as_secs_f64() * f64::from(self.plan.rate)) as u64;
        *decoded_here += samples;
        let from = (self.first_frame() * FRAME) as i64;
        let to = self
            .next_first()
            .map_or(i64::MAX, |next| (next * FRAME) as i64);
        let owned = (at + samples as i64).min(to) - at.max(from);
        let total = if owned > 0 {
            self.totals
                .decoded_samples
                .fetch_add(owned as u64, Ordering::Relaxed)
                + owned as u64
        } else {
            self.totals.decoded_samples.load(Ordering::Relaxed)
        };
        if *decoded_here > max_samples || total > max_samples {
            return Err(TranscodeError::TooLong(max).into());
        }
        Ok(())
    }

    /// Counts `bytes` of MP3 kept against the output cap, for the job's total.
    fn count_output(&self, bytes: usize) -> Result<(), SegmentError> {
        let max = self.options.limits.max_output_bytes;
        let total = self
            .totals
            .output_bytes
            .fetch_add(bytes as u64, Ordering::Relaxed)
            + bytes as u64;
        if total > max {
            return Err(TranscodeError::OutputTooLarge(max).into());
        }
        Ok(())
    }

    /// The global sample index of a decoded frame; checks the timeline has no gaps.
    fn place(
        &self,
        decoded: &frame::Audio,
        time_base: Rational,
        expected: &mut Option<i64>,
    ) -> Result<i64, SegmentError> {
        let at = decoded
            .timestamp()
            .and_then(|ts| ts_to_samples(ts, time_base, self.plan.rate))
            .ok_or_else(|| SegmentError::NotSplittable("timestamps do not count samples".into()))?;
        if let Some(e) = *expected {
            if e != at {
                return Err(SegmentError::NotSplittable(format!(
                    "the audio timeline jumps from sample {e} to {at}"
                )));
            }
        }
        *expected = Some(at + decoded.samples() as i64);
        Ok(at - self.plan.origin)
    }
}

/// The filter graph's output side of a segment: encoder frames in, MP3 frames sorted into head,
/// body file and tail.
struct Sink<'a> {
    job: &'a SegmentJob<'a>,
    /// Global sample index of the next frame given to the encoder.
    next_sample: i64,
    /// Global frame index of the next MP3 frame out of the encoder.
    next_frame: u64,
    head: Vec<Vec<u8>>,
    body: tempfile::NamedTempFile,
    writer: BufWriter<File>,
    body_sizes: Vec<u32>,
    tail: Vec<Vec<u8>>,
    first: Option<ffmpeg::Packet>,
    pending: Option<ffmpeg::Packet>,
}

impl<'a> Sink<'a> {
    fn new(job: &'a SegmentJob<'a>, feed_start: u64) -> Result<Self, SegmentError> {
        let body = tempfile::Builder::new()
            .prefix("converter-seg-")
            .tempfile_in(job.scratch)
            .map_err(|e| TranscodeError::Internal(format!("segment scratch file: {e}")))?;
        let writer = BufWriter::new(
            body.reopen()
                .map_err(|e| TranscodeError::Internal(format!("segment scratch file: {e}")))?,
        );
        Ok(Sink {
            job,
            next_sample: feed_start as i64,
            next_frame: feed_start / FRAME,
            head: Vec::new(),
            body,
            writer,
            body_sizes: Vec::new(),
            tail: Vec::new(),
            first: None,
            pending: None,
        })
    }

    fn feed(
        &mut self,
        graph: &mut ffmpeg::filter::Graph,
        decoded: &mut frame::Audio,
        at: i64,
        encoder: &mut ffmpeg::encoder::Audio,
    ) -> Result<(), SegmentError> {
        decoded.set_pts(Some(at));
        source(graph)?.source().add(decoded).map_err(ff)?;
        self.drain_filter(graph, encoder)
    }

    fn drain_filter(
        &mut self,
        graph: &mut ffmpeg::filter::Graph,
        encoder: &mut ffmpeg::encoder::Audio,
    ) -> Result<(), SegmentError> {
        while let Some(mut filtered) = pull_filtered(graph)? {
            if let Some(pts) = filtered.pts() {
                if pts != self.next_sample {
                    return Err(SegmentError::NotSplittable(format!(
                        "the trimmed audio starts at sample {pts}, not {}",
                        self.next_sample
                    )));
                }
            }
            filtered.set_pts(Some(self.next_sample));
            self.next_sample += filtered.samples() as i64;
            encoder.send_frame(&filtered).map_err(ff)?;
            self.drain_encoder(encoder)?;
        }
        Ok(())
    }

    fn drain_encoder(&mut self, encoder: &mut ffmpeg::encoder::Audio) -> Result<(), SegmentError> {
        loop {
            let mut packet = ffmpeg::Packet::empty();
            if encoder.receive_packet(&mut packet).is_err() {
                return Ok(());
            }
            let g = self.next_frame;
            self.next_frame += 1;
            self.place(g, packet)?;
        }
    }

    /// Sorts global frame `g` into head, body, tail or nowhere.
    fn place(&mut self, g: u64, packet: ffmpeg::Packet) -> Result<(), SegmentError> {
        let first = self.job.first_frame();
        let data = || packet.data().unwrap_or_default().to_vec();
        if g >= first && self.job.next_first().is_none_or(|next| g < next) {
            // Counted before it is kept, so no segment's scratch file grows past the cap.
            self.job.count_output(packet.size())?;
        }
        if g == 0 {
            self.first = Some(packet);
        } else if self.job.index > 0 && g < first + OVERLAP_FRAMES {
            self.head.push(data());
        } else if let Some(next) = self.job.next_first() {
            if g + 1 >= next {
                if g < next + OVERLAP_FRAMES {
                    self.tail.push(data());
                }
            } else {
                self.write_body(&data())?;
            }
        } else {
            // Last segment: hold one packet back, the final one keeps its side data.
            if let Some(previous) = self.pending.replace(packet) {
                self.write_body(previous.data().unwrap_or_default())?;
            }
        }
        if g >= first && self.job.next_first().is_none_or(|next| g < next) {
            self.job.done_samples.fetch_add(FRAME, Ordering::Relaxed);
        }
        Ok(())
    }

    fn write_body(&mut self, data: &[u8]) -> Result<(), SegmentError> {
        self.writer
            .write_all(data)
            .map_err(|e| TranscodeError::Internal(format!("segment scratch file: {e}")))?;
        self.body_sizes.push(data.len() as u32);
        Ok(())
    }

    fn finish(
        mut self,
        end_sample: u64,
        audio_packets: u64,
        bad_packets: u64,
    ) -> Result<Segment, SegmentError> {
        self.writer
            .flush()
            .map_err(|e| TranscodeError::Internal(format!("segment scratch file: {e}")))?;
        if self.job.index > 0 && self.head.len() < (WARMUP_FRAMES + OVERLAP_FRAMES) as usize {
            return Err(SegmentError::NotSplittable("a segment is too short".into()));
        }
        if self.job.next_first().is_some() && self.tail.len() < (OVERLAP_FRAMES + 1) as usize {
            return Err(SegmentError::NotSplittable("a segment is too short".into()));
        }
        Ok(Segment {
            head: self.head,
            body: self.body,
            body_sizes: self.body_sizes,
            tail: self.tail,
            first_packet: self.first,
            last_packet: self.pending,
            end_sample,
            audio_packets,
            bad_packets,
        })
    }
}

fn transcode_segments(
    input: Input<'_>,
    output: &Path,
    options: &TranscodeOptions,
    cancel: &AtomicBool,
    progress: &mut impl FnMut(f64),
    split: Split,
) -> Result<TranscodeReport, SegmentError> {
    let mut audio = open_input(input, &options.limits)?;
    let plan = make_plan(&mut audio, split, &options.limits)?;
    let scratch = output.parent().unwrap_or(Path::new("."));
    let abort = AtomicBool::new(false);
    let totals = Totals::default();
    let done: Vec<AtomicU64> = plan.bounds.iter().map(|_| AtomicU64::new(0)).collect();
    let started = Instant::now();
    let results: Vec<Result<Segment, SegmentError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..plan.bounds.len())
            .map(|index| {
                let job = SegmentJob {
                    input,
                    scratch,
                    options,
                    plan: &plan,
                    index,
                    cancel,
                    abort: &abort,
                    done_samples: &done[index],
                    totals: &totals,
                };
                let abort = &abort;
                scope.spawn(move || {
                    let result = job.run();
                    if result.is_err() {
                        // The others stop at their next packet.
                        abort.store(true, Ordering::Relaxed);
                    }
                    result
                })
            })
            .collect();
        let mut throttle = Throttle::new(PROGRESS_INTERVAL);
        while !handles.iter().all(|h| h.is_finished()) {
            std::thread::sleep(POLL);
            if throttle.ready(Instant::now()) {
                let samples: u64 = done.iter().map(|d| d.load(Ordering::Relaxed)).sum();
                let secs = samples as f64 / f64::from(plan.rate);
                if let Some(p) =
                    percent(secs, Some(plan.total_samples as f64 / f64::from(plan.rate)))
                {
                    progress(p.min(99.9));
                }
            }
        }
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(SegmentError::Failed(TranscodeError::Internal(
                        "a segment thread panicked".into(),
                    )))
                })
            })
            .collect()
    });
    // The most telling error wins: a real failure, then a reason not to split.
    let mut segments = Vec::with_capacity(results.len());
    let mut not_splittable = None;
    let mut failure = None;
    for result in results {
        match result {
            Ok(segment) => segments.push(segment),
            Err(SegmentError::Failed(e)) => {
                if failure.is_none() || matches!(failure, Some(TranscodeError::Cancelled)) {
                    failure = Some(e);
                }
            }
            Err(SegmentError::NotSplittable(why)) => not_splittable = Some(why),
            Err(SegmentError::Aborted) => {}
        }
    }
    if let Some(e) = failure {
        return Err(SegmentError::Failed(e));
    }
    if let Some(why) = not_splittable {
        return Err(SegmentError::NotSplittable(why));
    }
    let audio_packets: u64 = segments.iter().map(|s| s.audio_packets).sum();
    let bad_packets: u64 = segments.iter().map(|s| s.bad_packets).sum();
    if bad_packets * 10 > audio_packets.max(1) {
        return Err(TranscodeError::Damaged(format!(
            "{bad_packets} of {audio_packets} audio packets are corrupt"
        ))
        .into());
    }
    let total = segments.last().map_or(0, |s| s.end_sample);
    let decoded_secs = total as f64 / f64::from(plan.rate);
    if let Some(declared) = audio.stream_duration {
        if is_truncated(decoded_secs, declared) {
            return Err(TranscodeError::Damaged(format!(
                "only {decoded_secs:.1} of {declared:.1} seconds of audio could be read"
            ))
            .into());
        }
    }
    let seams = join(&audio, &plan, &segments, output, options, cancel)?;
    tracing::info!(
        segments = segments.len(),
        grown_seams = seams,
        secs = started.elapsed().as_secs_f64(),
        "encoded in segments"
    );
    progress(100.0);
    let channels = transcode::output_layout(audio.decoder.channels()).channels() as u16;
    Ok(TranscodeReport {
        input_samples: total,
        output_samples: total,
        sample_rate: plan.rate,
        channels,
        duration_secs: decoded_secs,
        segments: segments.len(),
    })
}

/// Writes the segments' frames, spliced at each seam, through FFmpeg's mp3 muxer (which writes
/// the ID3 tag and the Xing/LAME header: frame count, bytes, seek table, delay and padding).
/// Returns how many seams needed a frame raised to a higher bitrate.
fn join(
    audio: &AudioInput,
    plan: &Plan,
    segments: &[Segment],
    output: &Path,
    options: &TranscodeOptions,
    cancel: &AtomicBool,
) -> Result<usize, SegmentError> {
    let max_bytes = options.limits.max_output_bytes;
    let mut written: u64 = 0;
    let (encoder, codec) = open_encoder(&audio.decoder, options.quality)?;
    let (mut octx, out_tb) = open_output(output, codec, &encoder, options.title.as_deref())?;
    let encoder_tb = Rational::new(1, plan.rate as i32);
    let mut g: i64 = 0;
    let mut write = |mut packet: ffmpeg::Packet,
                     octx: &mut ffmpeg::format::context::Output|
     -> Result<(), SegmentError> {
        if cancel.load(Ordering::Relaxed) {
            return Err(TranscodeError::Cancelled.into());
        }
        // The seams may have grown a frame: the file itself is held to the cap as well.
        written += packet.size() as u64;
        if written > max_bytes {
            return Err(TranscodeError::OutputTooLarge(max_bytes).into());
        }
        packet.set_stream(0);
        packet.set_pts(Some(g * FRAME as i64));
        packet.set_dts(Some(g * FRAME as i64));
        packet.set_duration(FRAME as i64);
        packet.rescale_ts(encoder_tb, out_tb);
        packet.write_interleaved(octx).map_err(ff)?;
        g += 1;
        Ok(())
    };
    let mut grown = 0;
    // Frames of the next segment's head to skip, set by the seam before it.
    let mut skip_head = 0usize;
    for (k, segment) in segments.iter().enumerate() {
        if let Some(first) = segment.first_packet.clone() {
            write(first, &mut octx)?;
        }
        for frame in segment.head.iter().skip(skip_head) {
            write(ffmpeg::Packet::copy(frame), &mut octx)?;
        }
        let mut reader = BufReader::new(
            segment
                .body
                .reopen()
                .map_err(|e| TranscodeError::Internal(format!("segment scratch file: {e}")))?,
        );
        let mut buf = Vec::new();
        for &size in &segment.body_sizes {
            buf.resize(size as usize, 0);
            reader
                .read_exact(&mut buf)
                .map_err(|e| TranscodeError::Internal(format!("segment scratch file: {e}")))?;
            write(ffmpeg::Packet::copy(&buf), &mut octx)?;
        }
        if let Some(next) = segments.get(k + 1) {
            let seam = mp3_frame::splice(&segment.tail, &next.head, WARMUP_FRAMES as usize)
                .map_err(|e| SegmentError::NotSplittable(format!("seam {k}: {e}")))?;
            for frame in &seam.prev {
                write(ffmpeg::Packet::copy(frame), &mut octx)?;
            }
            grown += usize::from(seam.grown);
            skip_head = seam.skip_next;
        }
    }
    if let Some(last) = segments.last().and_then(|s| s.last_packet.clone()) {
        write(last, &mut octx)?;
    }
    octx.write_trailer().map_err(ff)?;
    Ok(grown)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_to_samples_only_when_exact() {
        assert_eq!(
            ts_to_samples(1024, Rational::new(1, 48_000), 48_000),
            Some(1024)
        );
        assert_eq!(
            ts_to_samples(-1024, Rational::new(1, 44_100), 44_100),
            Some(-1024)
        );
        assert_eq!(ts_to_samples(3, Rational::new(1, 1000), 48_000), Some(144));
        assert_eq!(ts_to_samples(23, Rational::new(1, 1000), 44_100), None);
        assert_eq!(samples_to_ts(44_100, Rational::new(1, 1000), 44_100), 1000);
        assert_eq!(samples_to_ts(-1, Rational::new(1, 1000), 44_100), -1);
    }

    #[test]
    fn boundaries_split_evenly() {
        assert_eq!(boundaries(100, 2), vec![0, 50]);
        assert_eq!(boundaries(10, 3), vec![0, 3, 6]);
        assert_eq!(boundaries(7, 1), vec![0]);
    }
}
