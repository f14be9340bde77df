//! In-process audio extraction: the best audio stream of a media file to an MP3 file.
//!
//! decode (audio packets only) -> filter graph (resample, re-chunk to the encoder's frame size)
//! -> libmp3lame -> mp3 muxer. The output is a seekable file, so the muxer writes the Xing/LAME
//! header with the encoder delay and padding, and players trim them: the MP3 decodes to the
//! source's sample count.

use std::{
    path::Path,
    sync::{
        atomic::{AtomicBool, Ordering},
        Once,
    },
    time::{Duration, Instant},
};

use common::jobs::Mp3Quality;

use crate::gridfs_input::{self, GridFsUpload};
use ffmpeg::{codec, filter, format, frame, media, ChannelLayout, Dictionary, Rational};
use ffmpeg_next as ffmpeg;

/// LAME VBR quality is passed as `global_quality / FF_QP2LAMBDA` by FFmpeg's libmp3lame wrapper.
const FF_QP2LAMBDA: usize = 118;
/// Sample rates we keep from the source: MPEG-1 layer III, where every allowed bitrate is valid.
const MPEG1_RATES: [u32; 3] = [32_000, 44_100, 48_000];
/// Output rate for every other source rate, as the original produced.
const DEFAULT_RATE: u32 = 44_100;
/// Progress is reported at most this often.
pub const PROGRESS_INTERVAL: Duration = Duration::from_millis(250);
/// The demuxers an upload may be opened with: real audio and video containers only. Playlists
/// (HLS, DASH), concat scripts, image sequences and anything else that opens further files are
/// left out. Each entry is matched against FFmpeg's demuxer names (`mov,mp4,m4a,3gp,3g2,mj2` is
/// one demuxer).
pub const ACCEPTED_FORMATS: &str = "mov,mp4,m4a,3gp,3g2,mj2,matroska,webm,avi,flv,asf,mpegts,\
                                    mpeg,ogg,wav,w64,aiff,caf,mp3,aac,ac3,eac3,dts,flac,wv,ape,amr";
/// Bytes FFmpeg may read to detect the format and the streams (its default, made explicit).
pub const PROBE_SIZE_BYTES: u32 = 5_000_000;
/// Media time FFmpeg may read to find the streams' parameters, in microseconds (its default).
pub const ANALYZE_DURATION_MICROS: u32 = 5_000_000;

/// Where an upload is read from.
#[derive(Debug, Clone, Copy)]
pub enum Input<'a> {
    /// A local file.
    File(&'a Path),
    /// A GridFS file, read while it is decoded (see [`crate::gridfs_input`]).
    GridFs(&'a GridFsUpload),
}

impl<'a> From<&'a Path> for Input<'a> {
    fn from(path: &'a Path) -> Self {
        Self::File(path)
    }
}

impl<'a> From<&'a std::path::PathBuf> for Input<'a> {
    fn from(path: &'a std::path::PathBuf) -> Self {
        Self::File(path)
    }
}

impl<'a> From<&'a GridFsUpload> for Input<'a> {
    fn from(upload: &'a GridFsUpload) -> Self {
        Self::GridFs(upload)
    }
}

/// Bounds on what one conversion may take in and produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest media accepted, counted in samples actually decoded.
    pub max_duration: Duration,
    /// Largest MP3 produced, in bytes.
    pub max_output_bytes: u64,
    /// Most streams (audio, video, subtitles, data) a file may have.
    pub max_streams: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_duration: Duration::from_secs(6 * 3600),
            max_output_bytes: 512 * 1024 * 1024,
            max_streams: 16,
        }
    }
}

/// What to produce.
#[derive(Debug, Clone, Default)]
pub struct TranscodeOptions {
    /// Bitrate or VBR quality.
    pub quality: Mp3Quality,
    /// ID3 title; none when empty.
    pub title: Option<String>,
    /// What the input may be and the output may become.
    pub limits: Limits,
}

/// What was produced.
#[derive(Debug, Clone, PartialEq)]
pub struct TranscodeReport {
    /// Samples per channel decoded from the source.
    pub input_samples: u64,
    /// Samples per channel given to the encoder (after resampling).
    pub output_samples: u64,
    /// Output sample rate.
    pub sample_rate: u32,
    /// Output channels (1 or 2).
    pub channels: u16,
    /// Seconds of audio in the output.
    pub duration_secs: f64,
    /// Segments encoded at once (1 = one stream; see [`crate::segmented`]).
    pub segments: usize,
}

/// Why a file could not be converted.
#[derive(Debug, thiserror::Error)]
pub enum TranscodeError {
    /// The file is not a container FFmpeg can open.
    #[error("the file is not a video or audio file that can be read ({0})")]
    Unreadable(ffmpeg::Error),
    /// FFmpeg recognised the file, but not as one of [`ACCEPTED_FORMATS`].
    #[error(
        "the file is not a video or audio file that can be read (playlists, scripts and other \
         formats that refer to further files are not accepted)"
    )]
    NotAccepted,
    /// More streams than [`Limits::max_streams`].
    #[error("the file has more streams than the {0} accepted")]
    TooManyStreams(u32),
    /// More audio than [`Limits::max_duration`], decoded or declared.
    #[error("the media is longer than the {} accepted", human_duration(*.0))]
    TooLong(Duration),
    /// The MP3 would exceed [`Limits::max_output_bytes`].
    #[error("the MP3 would be larger than the {} accepted", human_bytes(*.0))]
    OutputTooLarge(u64),
    /// The container has no audio stream.
    #[error("the video has no audio track")]
    NoAudio,
    /// The audio stream uses a codec we cannot decode.
    #[error("the audio track uses a format that cannot be decoded ({0})")]
    UnsupportedCodec(String),
    /// Reading or decoding failed part way, or far less audio than declared was found.
    #[error("the video file is damaged or incomplete ({0})")]
    Damaged(String),
    /// The caller asked us to stop.
    #[error("the conversion was cancelled")]
    Cancelled,
    /// Anything else: the encoder, the muxer or the output file.
    #[error("internal conversion error: {0}")]
    Internal(String),
}

impl TranscodeError {
    /// Whether retrying the same input can never help.
    pub fn is_permanent(&self) -> bool {
        !matches!(self, Self::Cancelled | Self::Internal(_))
    }
}

/// Initialises FFmpeg once per process and keeps its log quiet (we log outcomes ourselves).
pub fn init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        if let Err(e) = ffmpeg::init() {
            tracing::error!(error = %e, "FFmpeg initialisation failed");
        }
        ffmpeg::util::log::set_level(ffmpeg::util::log::Level::Error);
    });
}

/// The output sample rate for a source rate: kept when MPEG-1 layer III supports it.
pub fn output_rate(source_rate: u32) -> u32 {
    if MPEG1_RATES.contains(&source_rate) {
        source_rate
    } else {
        DEFAULT_RATE
    }
}

/// The output channel layout: mono stays mono, anything wider becomes stereo.
pub fn output_layout(source_channels: u16) -> ChannelLayout {
    if source_channels <= 1 {
        ChannelLayout::MONO
    } else {
        ChannelLayout::STEREO
    }
}

/// The ID3 title for an upload's file name: its stem (`holiday.mp4` -> `holiday`). Shared with
/// the gateway, whose instant repeats share an MP3 only between uploads of the same title.
pub use common::jobs::mp3_title as title_from_filename;

/// Progress in percent (0..=100) of a timestamp within a duration.
pub fn percent(position_secs: f64, duration_secs: Option<f64>) -> Option<f64> {
    let duration = duration_secs.filter(|d| d.is_finite() && *d > 0.0)?;
    Some((position_secs / duration * 100.0).clamp(0.0, 100.0))
}

/// Lets a call through at most once per interval (the first call always passes).
#[derive(Debug)]
pub struct Throttle {
    interval: Duration,
    last: Option<Instant>,
}

impl Throttle {
    /// A throttle passing at most once per `interval`.
    pub fn new(interval: Duration) -> Self {
        Self {
            interval,
            last: None,
        }
    }

    /// Whether a call at `now` may pass; records it when it does.
    pub fn ready(&mut self, now: Instant) -> bool {
        match self.last {
            Some(last) if now.duration_since(last) < self.interval => false,
            _ => {
                self.last = Some(now);
                true
            }
        }
    }
}

/// Converts the best audio stream of `input` into an MP3 at `output` (a seekable file).
///
/// `progress` receives percentages at most every [`PROGRESS_INTERVAL`]; setting `cancel` stops
/// the work at the next packet with [`TranscodeError::Cancelled`].
pub fn transcode<'a>(
    input: impl Into<Input<'a>>,
    output: &Path,
    options: &TranscodeOptions,
    cancel: &AtomicBool,
    mut progress: impl FnMut(f64),
) -> Result<TranscodeReport, TranscodeError> {
    init();
    let limits = options.limits;
    let AudioInput {
        mut ictx,
        stream_index,
        time_base: stream_tb,
        start_secs,
        stream_duration,
        duration,
        mut decoder,
        source_format,
    } = open_input(input.into(), &limits)?;
    let (mut encoder, codec) = open_encoder(&decoder, options.quality)?;
    let rate = encoder.rate();
    let layout = encoder.channel_layout();
    let (mut octx, out_tb) = open_output(output, codec, &encoder, options.title.as_deref())?;

    let mut graph = build_filter(&decoder, source_format, stream_tb, &encoder, "anull")?;
    let mut pump = Pump {
        encoder_tb: Rational::new(1, rate as i32),
        out_tb,
        next_pts: 0,
        input_samples: 0,
        decoded_secs: 0.0,
        output_bytes: 0,
        limits,
    };

    let mut throttle = Throttle::new(PROGRESS_INTERVAL);
    let mut decoded = frame::Audio::empty();
    let mut audio_packets = 0u64;
    let mut bad_packets = 0u64;
    let mut last_position = 0.0f64;
    loop {
        if cancel.load(Ordering::Relaxed) {
            return Err(TranscodeError::Cancelled);
        }
        let packet = match read_packet(&mut ictx) {
            Ok(PacketRead::Packet(packet)) => packet,
            Ok(PacketRead::End) => break,
            // A demuxer resyncs past a corrupt packet; count it like a bad audio packet.
            Ok(PacketRead::Corrupt) => {
                bad_packets += 1;
                continue;
            }
            Err(e) => return Err(TranscodeError::Damaged(format!("reading failed: {e}"))),
        };
        if packet.stream() != stream_index {
            // Demuxers that find streams while reading (MPEG-TS) stop at `max_streams` + 1.
            if ictx.nb_streams() > limits.max_streams {
                return Err(TranscodeError::TooManyStreams(limits.max_streams));
            }
            continue;
        }
        audio_packets += 1;
        match decoder.send_packet(&packet) {
            Ok(()) => {}
            // Like the ffmpeg CLI: skip a packet the decoder rejects, judge the total below.
            Err(ffmpeg::Error::InvalidData) => {
                bad_packets += 1;
                continue;
            }
            Err(e) => return Err(TranscodeError::Damaged(format!("decoding failed: {e}"))),
        }
        while decoder.receive_frame(&mut decoded).is_ok() {
            if let Some(ts) = decoded.timestamp() {
                last_position = seconds(ts, stream_tb) - start_secs
                    + decoded.samples() as f64 / f64::from(decoded.rate().max(1));
            }
            pump.filter_frame(&mut graph, &mut decoded, &mut encoder, &mut octx)?;
            if throttle.ready(Instant::now()) {
                if let Some(p) = percent(last_position, duration) {
                    progress(p);
                }
            }
        }
    }

    // Flush order at EOF: decoder, then filter graph, then encoder.
    decoder.send_eof().map_err(internal)?;
    while decoder.receive_frame(&mut decoded).is_ok() {
        pump.filter_frame(&mut graph, &mut decoded, &mut encoder, &mut octx)?;
    }
    source(&mut graph)?.source().flush().map_err(internal)?;
    pump.drain_filter(&mut graph, &mut encoder, &mut octx)?;
    encoder.send_eof().map_err(internal)?;
    pump.drain_encoder(&mut encoder, &mut octx)?;
    octx.write_trailer().map_err(internal)?;

    if pump.input_samples == 0 {
        return Err(TranscodeError::Damaged("no audio could be decoded".into()));
    }
    if bad_packets * 10 > audio_packets.max(1) {
        return Err(TranscodeError::Damaged(format!(
            "{bad_packets} of {audio_packets} audio packets are corrupt"
        )));
    }
    let decoded_secs = pump.input_samples as f64 / f64::from(decoder.rate().max(1));
    if let Some(declared) = stream_duration {
        if is_truncated(decoded_secs, declared) {
            return Err(TranscodeError::Damaged(format!(
                "only {decoded_secs:.1} of {declared:.1} seconds of audio could be read"
            )));
        }
    }
    progress(100.0);
    Ok(TranscodeReport {
        input_samples: pump.input_samples,
        output_samples: pump.next_pts as u64,
        sample_rate: rate,
        channels: layout.channels() as u16,
        duration_secs: pump.next_pts as f64 / f64::from(rate),
        segments: 1,
    })
}

/// The best audio stream of an input file, opened for decoding.
pub(crate) struct AudioInput {
    /// The demuxer, reading only the audio stream's packets.
    pub ictx: format::context::Input,
    /// Index of the audio stream.
    pub stream_index: usize,
    /// Time base of the audio stream.
    pub time_base: Rational,
    /// First timestamp of the stream in seconds (0 when unknown).
    pub start_secs: f64,
    /// Duration the stream declares.
    pub stream_duration: Option<f64>,
    /// The stream's duration, else the container's.
    pub duration: Option<f64>,
    /// The audio decoder.
    pub decoder: ffmpeg::decoder::Audio,
    /// The decoder's sample format as the filter graph names it.
    pub source_format: &'static str,
}

/// Opens `input` within `limits` (see [`open_container`]), picks its best audio stream and opens
/// a decoder for it. Every open of a job (one stream or each of its segments) goes through here.
pub(crate) fn open_input(input: Input<'_>, limits: &Limits) -> Result<AudioInput, TranscodeError> {
    let mut ictx = open_container(input, limits)?;
    let stream = ictx
        .streams()
        .best(media::Type::Audio)
        .ok_or(TranscodeError::NoAudio)?;
    let stream_index = stream.index();
    let time_base = stream.time_base();
    let start_secs = if stream.start_time() == ffmpeg::ffi::AV_NOPTS_VALUE {
        0.0
    } else {
        seconds(stream.start_time(), time_base)
    };
    let stream_duration = (stream.duration() > 0).then(|| seconds(stream.duration(), time_base));
    let duration = stream_duration.or_else(|| {
        (ictx.duration() > 0).then(|| ictx.duration() as f64 / f64::from(ffmpeg::ffi::AV_TIME_BASE))
    });
    // A declared length over the limit is refused before any work; a declaration can lie the
    // other way, so the decoded samples are counted as well.
    if duration.is_some_and(|d| d > limits.max_duration.as_secs_f64()) {
        return Err(TranscodeError::TooLong(limits.max_duration));
    }
    let decoder_ctx = codec::context::Context::from_parameters(stream.parameters())
        .map_err(|e| TranscodeError::UnsupportedCodec(e.to_string()))?;
    let mut decoder = decoder_ctx
        .decoder()
        .audio()
        .map_err(|e| TranscodeError::UnsupportedCodec(e.to_string()))?;
    decoder.set_packet_time_base(time_base);
    let source_format = source_format_name(decoder.format(), decoder.rate(), decoder.channels())?;
    discard_other_streams(&mut ictx, stream_index);
    if let Input::GridFs(upload) = input {
        gridfs_input::follow_index(&mut ictx, stream_index, upload);
    }
    Ok(AudioInput {
        ictx,
        stream_index,
        time_base,
        start_secs,
        stream_duration,
        duration,
        decoder,
        source_format,
    })
}

/// Opens libmp3lame for a decoder's audio: output rate and layout from the source, the quality
/// asked for. Every encode of a job (one stream or its segments) is set up here, identically.
pub(crate) fn open_encoder(
    decoder: &ffmpeg::decoder::Audio,
    quality: Mp3Quality,
) -> Result<(ffmpeg::encoder::Audio, ffmpeg::codec::Audio), TranscodeError> {
    let codec = ffmpeg::encoder::find(codec::Id::MP3)
        .ok_or_else(|| TranscodeError::Internal("no MP3 encoder (libmp3lame) in FFmpeg".into()))?
        .audio()
        .map_err(internal)?;
    let rate = output_rate(decoder.rate());
    let layout = output_layout(decoder.channels());
    let mut encoder = codec::context::Context::new_with_codec(*codec)
        .encoder()
        .audio()
        .map_err(internal)?;
    encoder.set_rate(rate as i32);
    encoder.set_channel_layout(layout);
    encoder.set_channels(layout.channels());
    encoder.set_format(pick_sample_format(&codec));
    encoder.set_time_base((1, rate as i32));
    match quality {
        Mp3Quality::Cbr { bitrate_kbps } => {
            encoder.set_bit_rate(bitrate_kbps.kbps() as usize * 1000)
        }
        Mp3Quality::Vbr { quality } => {
            // What `ffmpeg -q:a N` does: libmp3lame reads VBR quality from global_quality.
            encoder.set_flags(codec::flag::Flags::QSCALE);
            encoder.set_quality(usize::from(quality.get()) * FF_QP2LAMBDA);
        }
    }
    let encoder = encoder.open_as(codec).map_err(internal)?;
    Ok((encoder, codec))
}

/// Creates the MP3 file with the encoder's stream and the ID3 title, header written; returns
/// it with its stream's time base.
pub(crate) fn open_output(
    output: &Path,
    codec: ffmpeg::codec::Audio,
    encoder: &ffmpeg::encoder::Audio,
    title: Option<&str>,
) -> Result<(format::context::Output, Rational), TranscodeError> {
    let rate = encoder.rate() as i32;
    let mut octx = format::output_as(&output, "mp3").map_err(internal)?;
    {
        let mut ost = octx.add_stream(codec).map_err(internal)?;
        ost.set_time_base((1, rate));
        ost.set_parameters(encoder);
    }
    let mut metadata = Dictionary::new();
    if let Some(title) = title.filter(|t| !t.is_empty()) {
        metadata.set("title", title);
    }
    octx.set_metadata(metadata);
    octx.write_header().map_err(internal)?;
    let out_tb = octx
        .stream(0)
        .map(|s| s.time_base())
        .unwrap_or(Rational::new(1, rate));
    Ok((octx, out_tb))
}

/// Opens an upload with the accepted demuxers and the `file` protocol only (a GridFS upload: no
/// protocol at all), probing bounded, and refuses it when it has more streams than allowed.
fn open_container(
    input: Input<'_>,
    limits: &Limits,
) -> Result<format::context::Input, TranscodeError> {
    let mut options = Dictionary::new();
    options.set("format_whitelist", ACCEPTED_FORMATS);
    options.set("probesize", &PROBE_SIZE_BYTES.to_string());
    options.set("analyzeduration", &ANALYZE_DURATION_MICROS.to_string());
    // One over the limit: a demuxer stops creating streams there, before they are all probed,
    // and a file just over the limit still opens and is refused below with its count.
    options.set(
        "max_streams",
        &limits.max_streams.saturating_add(1).to_string(),
    );
    let opened = match input {
        Input::File(path) => {
            // Nested opens (a playlist's segments, a reference track) inherit this list.
            options.set("protocol_whitelist", "file");
            format::input_with_dictionary(&path, options)
        }
        // Custom I/O; nested opens are refused by its `io_open`.
        Input::GridFs(upload) => gridfs_input::open(upload.reader(), options),
    };
    let ictx = opened.map_err(|e| match e {
        // What avformat_open_input answers for a demuxer not on the whitelist.
        ffmpeg::Error::Other { errno } if errno == ffmpeg::error::EINVAL => {
            TranscodeError::NotAccepted
        }
        // What demuxers answer when `max_streams` stops them (reading a header allocates
        // nothing else big enough to run out of memory).
        ffmpeg::Error::Other { errno } if errno == ffmpeg::error::ENOMEM => {
            TranscodeError::TooManyStreams(limits.max_streams)
        }
        e => TranscodeError::Unreadable(e),
    })?;
    if ictx.nb_streams() > limits.max_streams {
        return Err(TranscodeError::TooManyStreams(limits.max_streams));
    }
    Ok(ictx)
}

/// The decoder's sample format as FFmpeg names it for the filter graph. A decoder that has not
/// learnt its format, rate or channel count from the file (nothing in it could be decoded while
/// probing) cannot be converted; FFmpeg has no name for an unknown format.
pub fn source_format_name(
    format: format::Sample,
    rate: u32,
    channels: u16,
) -> Result<&'static str, TranscodeError> {
    if format == format::Sample::None || rate == 0 || channels == 0 {
        return Err(TranscodeError::UnsupportedCodec(
            "its sample format, rate or channels are unknown".into(),
        ));
    }
    Ok(format.name())
}

/// "6 hours", "1 minute", "90 seconds": a limit in words.
pub fn human_duration(d: Duration) -> String {
    let secs = d.as_secs();
    let (n, unit) = if secs >= 3600 && secs.is_multiple_of(3600) {
        (secs / 3600, "hour")
    } else if secs >= 60 && secs.is_multiple_of(60) {
        (secs / 60, "minute")
    } else {
        (secs, "second")
    };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

/// "512 MiB", "1 GiB", "300000 bytes": a size limit in words.
pub fn human_bytes(bytes: u64) -> String {
    const MIB: u64 = 1024 * 1024;
    if bytes >= 1024 * MIB && bytes.is_multiple_of(1024 * MIB) {
        format!("{} GiB", bytes / (1024 * MIB))
    } else if bytes >= MIB && bytes.is_multiple_of(MIB) {
        format!("{} MiB", bytes / MIB)
    } else {
        format!("{bytes} bytes")
    }
}

/// Whether far less audio was decoded than the container declares (a cut-off upload).
pub fn is_truncated(decoded_secs: f64, declared_secs: f64) -> bool {
    decoded_secs < declared_secs * 0.9 - 1.0
}

/// Moves frames from the decoder through the filter graph into the encoder and the muxer.
struct Pump {
    encoder_tb: Rational,
    out_tb: Rational,
    /// Next output pts in samples: counting samples keeps the timeline gap- and drift-free.
    next_pts: i64,
    input_samples: u64,
    /// Seconds of audio decoded so far, whatever the container declares.
    decoded_secs: f64,
    /// Bytes of MP3 written so far.
    output_bytes: u64,
    limits: Limits,
}

impl Pump {
    fn filter_frame(
        &mut self,
        graph: &mut filter::Graph,
        decoded: &mut frame::Audio,
        encoder: &mut ffmpeg::encoder::Audio,
        octx: &mut format::context::Output,
    ) -> Result<(), TranscodeError> {
        self.input_samples += decoded.samples() as u64;
        self.decoded_secs += decoded.samples() as f64 / f64::from(decoded.rate().max(1));
        if self.decoded_secs > self.limits.max_duration.as_secs_f64() {
            return Err(TranscodeError::TooLong(self.limits.max_duration));
        }
        let ts = decoded.timestamp();
        decoded.set_pts(ts);
        source(graph)?.source().add(decoded).map_err(internal)?;
        self.drain_filter(graph, encoder, octx)
    }

    fn drain_filter(
        &mut self,
        graph: &mut filter::Graph,
        encoder: &mut ffmpeg::encoder::Audio,
        octx: &mut format::context::Output,
    ) -> Result<(), TranscodeError> {
        while let Some(mut filtered) = pull_filtered(graph)? {
            filtered.set_pts(Some(self.next_pts));
            self.next_pts += filtered.samples() as i64;
            encoder.send_frame(&filtered).map_err(internal)?;
            self.drain_encoder(encoder, octx)?;
        }
        Ok(())
    }

    fn drain_encoder(
        &mut self,
        encoder: &mut ffmpeg::encoder::Audio,
        octx: &mut format::context::Output,
    ) -> Result<(), TranscodeError> {
        let mut encoded = ffmpeg::Packet::empty();
        while encoder.receive_packet(&mut encoded).is_ok() {
            // Counted before writing, so the output file never grows past the limit.
            self.output_bytes += encoded.size() as u64;
            if self.output_bytes > self.limits.max_output_bytes {
                return Err(TranscodeError::OutputTooLarge(self.limits.max_output_bytes));
            }
            encoded.set_stream(0);
            encoded.rescale_ts(self.encoder_tb, self.out_tb);
            encoded.write_interleaved(octx).map_err(internal)?;
        }
        Ok(())
    }
}

/// The next frame out of the filter graph's sink, if one is ready.
pub(crate) fn pull_filtered(
    graph: &mut filter::Graph,
) -> Result<Option<frame::Audio>, TranscodeError> {
    // A fresh frame each time: the sink moves its frame in without unreferencing ours.
    let mut filtered = frame::Audio::empty();
    let mut sink = graph
        .get("out")
        .ok_or_else(|| TranscodeError::Internal("filter sink missing".into()))?;
    Ok(sink.sink().frame(&mut filtered).is_ok().then_some(filtered))
}

pub(crate) fn source(graph: &mut filter::Graph) -> Result<filter::Context, TranscodeError> {
    graph
        .get("in")
        .ok_or_else(|| TranscodeError::Internal("filter source missing".into()))
}

/// abuffer -> `spec` -> (auto-inserted aresample) -> abuffersink delivering the encoder's format
/// in frames of exactly the encoder's frame size (1152 for MP3; the last one may be shorter).
pub(crate) fn build_filter(
    decoder: &ffmpeg::decoder::Audio,
    source_format: &str,
    time_base: Rational,
    encoder: &ffmpeg::encoder::Audio,
    spec: &str,
) -> Result<filter::Graph, TranscodeError> {
    let mut graph = filter::Graph::new();
    let layout = if decoder.channel_layout().bits() == 0 {
        ChannelLayout::default(i32::from(decoder.channels()))
    } else {
        decoder.channel_layout()
    };
    let args = format!(
        "time_base={}:sample_rate={}:sample_fmt={}:channel_layout=0x{:x}",
        time_base,
        decoder.rate(),
        source_format,
        layout.bits()
    );
    let abuffer = filter::find("abuffer")
        .ok_or_else(|| TranscodeError::Internal("abuffer filter missing".into()))?;
    let abuffersink = filter::find("abuffersink")
        .ok_or_else(|| TranscodeError::Internal("abuffersink filter missing".into()))?;
    graph.add(&abuffer, "in", &args).map_err(internal)?;
    graph.add(&abuffersink, "out", "").map_err(internal)?;
    {
        let mut out = graph
            .get("out")
            .ok_or_else(|| TranscodeError::Internal("filter sink missing".into()))?;
        out.set_sample_format(encoder.format());
        out.set_channel_layout(encoder.channel_layout());
        // Not `set_sample_rate`: it writes an i64 where abuffersink takes an array of C ints,
        // allowing a second rate of 0 that sources under 22.05 kHz negotiate to (the graph then
        // fails). One i32 is exactly one allowed rate.
        let rate = i32::try_from(encoder.rate())
            .map_err(|_| TranscodeError::Internal("output rate out of range".into()))?;
        ffmpeg::option::Settable::set::<i32>(&mut out, "sample_rates", &rate).map_err(internal)?;
    }
    graph
        .output("in", 0)
        .and_then(|p| p.input("out", 0))
        .and_then(|p| p.parse(spec))
        .map_err(internal)?;
    graph.validate().map_err(internal)?;
    if let Some(mut out) = graph.get("out") {
        out.sink().set_frame_size(encoder.frame_size());
    }
    Ok(graph)
}

/// Planar float when the encoder takes it (what AAC and most decoders give: no conversion).
fn pick_sample_format(codec: &ffmpeg::codec::Audio) -> format::Sample {
    let wanted = format::Sample::F32(format::sample::Type::Planar);
    let mut formats = codec.formats().into_iter().flatten().peekable();
    let first = formats.peek().copied();
    if formats.any(|f| f == wanted) {
        wanted
    } else {
        first.unwrap_or(wanted)
    }
}

pub(crate) fn seconds(ts: i64, tb: Rational) -> f64 {
    ts as f64 * f64::from(tb.numerator()) / f64::from(tb.denominator().max(1))
}

pub(crate) fn internal(e: ffmpeg::Error) -> TranscodeError {
    TranscodeError::Internal(e.to_string())
}

/// Tells the demuxer to skip every stream but the audio one: their packets are never read into
/// memory nor decoded (what the ffmpeg CLI does for streams no output uses).
#[allow(unsafe_code)]
fn discard_other_streams(ictx: &mut format::context::Input, keep: usize) {
    for index in 0..ictx.nb_streams() as usize {
        if index == keep {
            continue;
        }
        if let Some(mut stream) = ictx.stream_mut(index) {
            // SAFETY: ffmpeg-next has no setter for AVStream.discard. The pointer comes from a
            // live, open input context we borrow mutably, and `discard` is a plain enum field
            // the demuxer reads on its next av_read_frame.
            unsafe {
                (*stream.as_mut_ptr()).discard = ffmpeg::ffi::AVDiscard::AVDISCARD_ALL;
            }
        }
    }
}

/// What one read from the demuxer gave.
pub(crate) enum PacketRead {
    Packet(ffmpeg::Packet),
    /// A corrupt packet the demuxer resynced past.
    Corrupt,
    End,
}

/// Reads the next packet into a fresh one: av_read_frame overwrites without unreferencing, so
/// reusing a packet would leak every packet's buffer (memory growing with the file's length).
pub(crate) fn read_packet(ictx: &mut format::context::Input) -> Result<PacketRead, ffmpeg::Error> {
    let mut packet = ffmpeg::Packet::empty();
    match packet.read(ictx) {
        Ok(()) => Ok(PacketRead::Packet(packet)),
        Err(ffmpeg::Error::Eof) => Ok(PacketRead::End),
        Err(ffmpeg::Error::InvalidData) => Ok(PacketRead::Corrupt),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_kept_only_when_mpeg1() {
        assert_eq!(output_rate(48_000), 48_000);
        assert_eq!(output_rate(44_100), 44_100);
        assert_eq!(output_rate(32_000), 32_000);
        assert_eq!(output_rate(22_050), 44_100);
        assert_eq!(output_rate(96_000), 44_100);
        assert_eq!(output_rate(8_000), 44_100);
    }

    #[test]
    fn layouts_up_to_stereo() {
        assert_eq!(output_layout(1), ChannelLayout::MONO);
        assert_eq!(output_layout(2), ChannelLayout::STEREO);
        assert_eq!(output_layout(6), ChannelLayout::STEREO);
    }

    #[test]
    fn titles_from_filenames() {
        assert_eq!(
            title_from_filename("holiday.mp4").as_deref(),
            Some("holiday")
        );
        assert_eq!(title_from_filename("a.b.mov").as_deref(), Some("a.b"));
        assert_eq!(
            title_from_filename("C:\\x\\talk.mp4").as_deref(),
            Some("talk")
        );
        assert_eq!(title_from_filename("noext").as_deref(), Some("noext"));
        assert_eq!(title_from_filename(".hidden").as_deref(), Some(".hidden"));
        assert_eq!(title_from_filename("").as_deref(), None);
    }

    #[test]
    fn percent_is_clamped_and_needs_a_duration() {
        assert_eq!(percent(5.0, Some(10.0)), Some(50.0));
        assert_eq!(percent(12.0, Some(10.0)), Some(100.0));
        assert_eq!(percent(-1.0, Some(10.0)), Some(0.0));
        assert_eq!(percent(5.0, None), None);
        assert_eq!(percent(5.0, Some(0.0)), None);
    }

    #[test]
    fn throttle_passes_once_per_interval() {
        let mut t = Throttle::new(Duration::from_millis(100));
        let start = Instant::now();
        assert!(t.ready(start));
        assert!(!t.ready(start + Duration::from_millis(50)));
        assert!(t.ready(start + Duration::from_millis(100)));
        assert!(!t.ready(start + Duration::from_millis(150)));
    }

    #[test]
    fn truncation_threshold() {
        assert!(!is_truncated(9.98, 10.0));
        assert!(!is_truncated(8.5, 10.0));
        assert!(is_truncated(5.0, 10.0));
        assert!(is_truncated(100.0, 600.0));
    }

    #[test]
    fn an_unknown_sample_format_is_an_error_not_a_crash() {
        use format::sample::Type;
        let planar = format::Sample::F32(Type::Planar);
        assert_eq!(source_format_name(planar, 44_100, 2).unwrap(), "fltp");
        for (format, rate, channels) in [
            (format::Sample::None, 44_100, 2),
            (planar, 0, 2),
            (planar, 44_100, 0),
        ] {
            let err = source_format_name(format, rate, channels).unwrap_err();
            assert!(err.is_permanent());
            assert_eq!(
                err.to_string(),
                "the audio track uses a format that cannot be decoded \
                 (its sample format, rate or channels are unknown)"
            );
        }
    }

    #[test]
    fn limits_in_words() {
        assert_eq!(human_duration(Duration::from_secs(6 * 3600)), "6 hours");
        assert_eq!(human_duration(Duration::from_secs(3600)), "1 hour");
        assert_eq!(human_duration(Duration::from_secs(60)), "1 minute");
        assert_eq!(human_duration(Duration::from_secs(90)), "90 seconds");
        assert_eq!(human_duration(Duration::from_secs(1)), "1 second");
        assert_eq!(human_bytes(512 * 1024 * 1024), "512 MiB");
        assert_eq!(human_bytes(1024 * 1024 * 1024), "1 GiB");
        assert_eq!(human_bytes(300_000), "300000 bytes");
        assert_eq!(
            TranscodeError::TooLong(Duration::from_secs(6 * 3600)).to_string(),
            "the media is longer than the 6 hours accepted"
        );
        assert_eq!(
            TranscodeError::OutputTooLarge(512 * 1024 * 1024).to_string(),
            "the MP3 would be larger than the 512 MiB accepted"
        );
        assert_eq!(
            TranscodeError::TooManyStreams(16).to_string(),
            "the file has more streams than the 16 accepted"
        );
    }

    #[test]
    fn permanence() {
        assert!(TranscodeError::NoAudio.is_permanent());
        assert!(TranscodeError::NotAccepted.is_permanent());
        assert!(TranscodeError::TooManyStreams(16).is_permanent());
        assert!(TranscodeError::OutputTooLarge(1).is_permanent());
        assert!(TranscodeError::TooLong(Duration::from_secs(1)).is_permanent());
        assert!(TranscodeError::Damaged("x".into()).is_permanent());
        assert!(!TranscodeError::Cancelled.is_permanent());
        assert!(!TranscodeError::Internal("x".into()).is_permanent());
    }
}
