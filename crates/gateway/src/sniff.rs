//! Early refusals: what the first bytes of an upload say it is, and whether an MP4 whose index
//! (`moov`) comes first has an audio track. Pure functions over bytes; the upload route feeds
//! them while it streams.
//!
//! The accepted signatures follow the converter's demuxer allow-list (`ACCEPTED_FORMATS` in
//! `crates/converter/src/transcode.rs`): a container listed there is recognised here, anything
//! else is refused before it is stored. What only the whole file can tell (a damaged stream, an
//! index at the end without audio) is still judged by the converter.

/// Bytes of an upload read before deciding what it is (less when the file is shorter).
pub const PREFIX_BYTES: usize = 4096;

/// What the first bytes of an upload are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sniffed {
    /// An audio or video container the converter opens; the name is for logs.
    Media(&'static str),
    /// Something else; the sentence says what, for the client (415).
    Refused(String),
}

impl Sniffed {
    /// Whether the content is an ISO base media file (MP4, MOV, 3GP, M4A), whose index can be
    /// checked for an audio track while it streams.
    pub fn is_iso_media(&self) -> bool {
        matches!(self, Self::Media(ISO_MEDIA))
    }
}

const ISO_MEDIA: &str = "MP4/QuickTime";

/// Classifies an upload by its first bytes: `prefix` holds [`PREFIX_BYTES`], or the whole file
/// when it is shorter.
pub fn sniff(prefix: &[u8]) -> Sniffed {
    if let Some(name) = media(prefix) {
        return Sniffed::Media(name);
    }
    let what = not_media(prefix)
        .map(str::to_owned)
        .or_else(|| text(prefix).map(str::to_owned));
    Sniffed::Refused(match what {
        Some(what) => format!(
            "this file is {what}, not a video or audio file; upload a video (MP4, MOV, MKV, WebM, \
             AVI, ...) or an audio file"
        ),
        None => "this file is not a video or audio file in a format that can be converted \
                 (MP4, MOV, MKV, WebM, AVI, MPEG-TS, FLV, Ogg, WAV, MP3, FLAC, ...)"
            .to_owned(),
    })
}

/// The container `b` starts with, among those the converter accepts.
fn media(b: &[u8]) -> Option<&'static str> {
    let at = |offset: usize, sig: &[u8]| b.get(offset..offset + sig.len()) == Some(sig);
    // ISO base media (mov,mp4,m4a,3gp,3g2,mj2): a box header, `ftyp` or an old QuickTime atom.
    if b.len() >= 8 {
        let kind = &b[4..8];
        if kind == b"ftyp" {
            return (!is_heif_image(b)).then_some(ISO_MEDIA);
        }
        // `jP  `: the signature box Motion JPEG 2000 (`mj2`) starts with.
        if [
            b"moov", b"mdat", b"free", b"skip", b"wide", b"pnot", b"jP  ",
        ]
        .iter()
        .any(|k| kind == *k)
        {
            return Some(ISO_MEDIA);
        }
    }
    if at(0, &[0x1A, 0x45, 0xDF, 0xA3]) {
        return Some("Matroska/WebM");
    }
    if at(0, b"RIFF") {
        return match b.get(8..12) {
            Some(b"AVI ") | Some(b"AVIX") => Some("AVI"),
            Some(b"WAVE") => Some("WAV"),
            // Video CD: MPEG program stream in RIFF, read by the `mpeg` demuxer.
            Some(b"CDXA") => Some("MPEG-PS"),
            _ => None,
        };
    }
    if (at(0, b"RF64") || at(0, b"BW64")) && at(8, b"WAVE") {
        return Some("WAV");
    }
    if at(0, b"riff") && at(4, &[0x2E, 0x91, 0xCF, 0x11]) {
        return Some("Wave64");
    }
    if at(0, b"FORM") && (at(8, b"AIFF") || at(8, b"AIFC")) {
        return Some("AIFF");
    }
    let signatures: [(&[u8], &'static str); 12] = [
        (b"caff", "CAF"),
        (b"FLV\x01", "FLV"),
        (&[0x30, 0x26, 0xB2, 0x75, 0x8E, 0x66, 0xCF, 0x11], "ASF/WMV"),
        (b"OggS", "Ogg"),
        (b"fLaC", "FLAC"),
        (b"ID3", "MP3 (ID3-tagged audio)"),
        (b"wvpk", "WavPack"),
        (b"MAC ", "Monkey's Audio"),
        (b"#!AMR", "AMR"),
        (b"ADIF", "AAC"),
        (&[0x7F, 0xFE, 0x80, 0x01], "DTS"),
        (&[0xFE, 0x7F, 0x01, 0x80], "DTS"),
    ];
    if let Some((_, name)) = signatures.iter().find(|(sig, _)| at(0, sig)) {
        return Some(name);
    }
    if at(0, &[0x1F, 0xFF, 0xE8, 0x00]) || at(0, &[0xFF, 0x1F, 0x00, 0xE8]) {
        return Some("DTS");
    }
    if at(0, &[0x0B, 0x77]) {
        return Some("AC-3");
    }
    // Streams that may start after padding or mid-packet (a capture cut anywhere).
    let start = b.iter().position(|&x| x != 0).unwrap_or(b.len());
    let s = &b[start..];
    if s.len() >= 2
        && start >= 2
        && b[start - 2..start] == [0, 0]
        && s[0] == 1
        && (s[1] == 0xBA || (0xC0..=0xEF).contains(&s[1]))
    {
        return Some("MPEG-PS");
    }
    if is_transport_stream(b) {
        return Some("MPEG-TS");
    }
    if s.len() >= 4 && is_mpeg_audio_header(s) {
        return Some("MPEG audio (MP3, MP2, AAC)");
    }
    None
}

/// An `ftyp` whose major brand is a still-image format (HEIC, AVIF).
fn is_heif_image(b: &[u8]) -> bool {
    matches!(
        b.get(8..12),
        Some(b"heic" | b"heix" | b"heim" | b"heis" | b"mif1" | b"msf1" | b"avif" | b"avis")
    )
}

/// MPEG transport stream: the sync byte 0x47 repeating at a packet size (188, 192 or 204 bytes),
/// from any offset within the first packet.
fn is_transport_stream(b: &[u8]) -> bool {
    [188usize, 192, 204].iter().any(|&size| {
        // Three packets when the prefix holds them, two for a tiny file.
        let needed = if b.len() >= 3 * size + size { 3 } else { 2 };
        (0..size).any(|first| {
            (0..needed).all(|k| b.get(first + k * size) == Some(&0x47))
                && b.len() > first + (needed - 1) * size
        })
    })
}

/// An MPEG audio frame header (MP3, MP2) or an ADTS header (AAC) at the start of `b`.
fn is_mpeg_audio_header(b: &[u8]) -> bool {
    if b[0] != 0xFF || b[1] & 0xE0 != 0xE0 {
        return false;
    }
    let version = (b[1] >> 3) & 0b11;
    let layer = (b[1] >> 1) & 0b11;
    if layer == 0 {
        // ADTS (AAC): MPEG-4 or MPEG-2, layer 0, a valid sampling frequency index.
        return b[1] & 0xF6 == 0xF0 && (b[2] >> 2) & 0x0F < 13;
    }
    let bitrate = b[2] >> 4;
    let rate = (b[2] >> 2) & 0b11;
    version != 0b01 && bitrate != 0b1111 && rate != 0b11
}

/// What a well-known non-media file is, by its signature.
fn not_media(b: &[u8]) -> Option<&'static str> {
    let at = |offset: usize, sig: &[u8]| b.get(offset..offset + sig.len()) == Some(sig);
    let signatures: [(&[u8], &'static str); 16] = [
        (b"%PDF", "a PDF document"),
        (b"\x89PNG\r\n\x1a\n", "a PNG image"),
        (&[0xFF, 0xD8, 0xFF], "a JPEG image"),
        (b"GIF87a", "a GIF image"),
        (b"GIF89a", "a GIF image"),
        (b"II*\0", "a TIFF image"),
        (b"MM\0*", "a TIFF image"),
        (
            b"PK\x03\x04",
            "a ZIP archive (or an office document, which is one)",
        ),
        (b"\x1F\x8B", "a gzip archive"),
        (b"7z\xBC\xAF\x27\x1C", "a 7-Zip archive"),
        (b"Rar!\x1A\x07", "a RAR archive"),
        (
            &[0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1],
            "an old-style Microsoft Office document",
        ),
        (b"\x7FELF", "a program (ELF executable)"),
        (b"MZ", "a Windows program"),
        (b"SQLite format 3\0", "an SQLite database"),
        (b"{\\rtf", "an RTF document"),
    ];
    if let Some((_, what)) = signatures.iter().find(|(sig, _)| at(0, sig)) {
        return Some(what);
    }
    if at(0, b"RIFF") && at(8, b"WEBP") {
        return Some("a WebP image");
    }
    if at(4, b"ftyp") && is_heif_image(b) {
        return Some("a HEIC or AVIF image");
    }
    None
}

/// What a text file is, when `b` is text (UTF-8 without control characters but whitespace).
fn text(b: &[u8]) -> Option<&'static str> {
    let valid = match std::str::from_utf8(b) {
        Ok(s) => s,
        // A character cut at the end of the prefix is still text.
        Err(e) if e.error_len().is_none() => std::str::from_utf8(&b[..e.valid_up_to()]).ok()?,
        Err(_) => return None,
    };
    if valid.is_empty()
        || valid
            .chars()
            .any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r' | '\x0C'))
    {
        return None;
    }
    let head = valid
        .trim_start_matches('\u{FEFF}')
        .trim_start()
        .to_ascii_lowercase();
    Some(
        if head.starts_with("<!doctype html") || head.starts_with("<html") {
            "an HTML page"
        } else if head.starts_with("<svg") || head.contains("<svg") && head.starts_with("<?xml") {
            "an SVG image"
        } else if head.starts_with("<?xml") {
            "an XML document"
        } else if head.starts_with("#extm3u") || head.starts_with("[playlist]") {
            "a playlist, which only points at media files"
        } else if head.starts_with('{') || head.starts_with('[') {
            "a JSON or other text file"
        } else {
            "a text file"
        },
    )
}

/// What an MP4's index says about audio.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Index {
    /// The index has not arrived yet.
    Pending,
    /// The index lists an audio track.
    HasAudio,
    /// The index arrived and lists no audio track (422).
    NoAudio,
    /// Cannot be told from the stream: the media data comes first (index at the end), the file
    /// is fragmented, or the boxes are not understood. The converter decides.
    Unknown,
}

/// Reads the box structure of an ISO media file as it streams, keeping only a box header and a
/// few bytes of each `hdlr` (constant memory, whatever the size of the index): the handler
/// types of the tracks in `moov` say whether there is audio.
#[derive(Debug)]
pub struct IndexScan {
    /// Bytes consumed so far.
    pos: u64,
    state: ScanState,
    /// Ends of the open container boxes (`moov`, `trak`, `mdia`), outermost first.
    open: Vec<u64>,
    header: Vec<u8>,
    audio: bool,
    verdict: Index,
}

#[derive(Debug)]
enum ScanState {
    /// Reading the header of the box starting at `pos`.
    Header,
    /// Skipping to the end of a box.
    Skip { until: u64 },
    /// Reading a `hdlr` box's first 12 bytes of payload, then skipping to `until`.
    Handler { until: u64, payload: Vec<u8> },
}

impl Default for IndexScan {
    fn default() -> Self {
        Self::new()
    }
}

impl IndexScan {
    /// A scan from the first byte of the file.
    pub fn new() -> Self {
        Self {
            pos: 0,
            state: ScanState::Header,
            open: Vec::new(),
            header: Vec::with_capacity(16),
            audio: false,
            verdict: Index::Pending,
        }
    }

    /// The verdict so far.
    pub fn verdict(&self) -> Index {
        self.verdict
    }

    /// Feeds the next bytes of the file; answers the verdict so far.
    pub fn feed(&mut self, mut bytes: &[u8]) -> Index {
        while !bytes.is_empty() && self.verdict == Index::Pending {
            match &mut self.state {
                ScanState::Skip { until } => {
                    let n = (*until - self.pos).min(bytes.len() as u64) as usize;
                    bytes = &bytes[n..];
                    self.pos += n as u64;
                    if self.pos == *until {
                        self.state = ScanState::Header;
                        self.close_boxes();
                    }
                }
                ScanState::Handler { until, payload } => {
                    let want = 12 - payload.len();
                    let n = want.min(bytes.len());
                    payload.extend_from_slice(&bytes[..n]);
                    bytes = &bytes[n..];
                    self.pos += n as u64;
                    if payload.len() == 12 {
                        if &payload[8..12] == b"soun" {
                            self.audio = true;
                        }
                        let until = *until;
                        self.state = ScanState::Skip { until };
                        if self.pos == until {
                            self.state = ScanState::Header;
                            self.close_boxes();
                        }
                    }
                }
                ScanState::Header => {
                    let want = if self.header.len() >= 8 && self.header[..4] == [0, 0, 0, 1] {
                        16
                    } else {
                        8
                    };
                    let n = (want - self.header.len()).min(bytes.len());
                    self.header.extend_from_slice(&bytes[..n]);
                    bytes = &bytes[n..];
                    if self.header.len() == want && (want == 16 || self.header[..4] != [0, 0, 0, 1])
                    {
                        let header = std::mem::take(&mut self.header);
                        self.open_box(&header);
                    }
                }
            }
        }
        self.verdict
    }

    /// Acts on a complete box header starting at `self.pos`.
    fn open_box(&mut self, header: &[u8]) {
        let start = self.pos;
        self.pos += header.len() as u64;
        let size = match u32::from_be_bytes([header[0], header[1], header[2], header[3]]) {
            1 => u64::from_be_bytes(header[8..16].try_into().unwrap_or([0; 8])),
            // To the end of the file: only media data does that.
            0 => {
                self.verdict = Index::Unknown;
                return;
            }
            n => u64::from(n),
        };
        let kind: [u8; 4] = [header[4], header[5], header[6], header[7]];
        let end = start.saturating_add(size);
        if size < header.len() as u64 || self.open.last().is_some_and(|&parent| end > parent) {
            self.verdict = Index::Unknown;
            return;
        }
        let depth = self.open.len();
        match (depth, &kind) {
            (0, b"moov") | (1, b"trak") | (2, b"mdia") => {
                self.open.push(end);
                self.state = ScanState::Header;
                self.close_boxes();
            }
            // Media data or fragments before the index: it cannot be judged early.
            (0, b"mdat" | b"moof") => self.verdict = Index::Unknown,
            (3, b"hdlr") => {
                self.state = ScanState::Handler {
                    until: end,
                    payload: Vec::with_capacity(12),
                };
                if size - (header.len() as u64) < 12 {
                    self.verdict = Index::Unknown;
                }
            }
            _ => {
                self.state = ScanState::Skip { until: end };
                if self.pos == end {
                    self.state = ScanState::Header;
                    self.close_boxes();
                }
            }
        }
    }

    /// Closes the containers that end at `self.pos`; the end of `moov` gives the verdict.
    fn close_boxes(&mut self) {
        while self.open.last() == Some(&self.pos) {
            self.open.pop();
            if self.open.is_empty() {
                self.verdict = if self.audio {
                    Index::HasAudio
                } else {
                    Index::NoAudio
                };
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn boxed(kind: &[u8; 4], payload: &[u8]) -> Vec<u8> {
        let mut b = ((payload.len() + 8) as u32).to_be_bytes().to_vec();
        b.extend_from_slice(kind);
        b.extend_from_slice(payload);
        b
    }

    fn hdlr(handler: &[u8; 4]) -> Vec<u8> {
        let mut payload = vec![0u8; 8];
        payload.extend_from_slice(handler);
        payload.extend_from_slice(&[0u8; 12]);
        payload.extend_from_slice(b"Handler\0");
        boxed(b"hdlr", &payload)
    }

    fn track(handler: &[u8; 4]) -> Vec<u8> {
        let mdhd = boxed(b"mdhd", &[0u8; 24]);
        let minf = boxed(b"minf", &[7u8; 100]);
        let mdia = boxed(b"mdia", &[mdhd, hdlr(handler), minf].concat());
        boxed(b"trak", &[boxed(b"tkhd", &[0u8; 84]), mdia].concat())
    }

    fn mp4(tracks: &[&[u8; 4]], moov_first: bool) -> Vec<u8> {
        let ftyp = boxed(b"ftyp", b"isom\0\0\x02\0isomiso2mp41");
        let mut moov_payload = boxed(b"mvhd", &[0u8; 100]);
        for t in tracks {
            moov_payload.extend(track(t));
        }
        let moov = boxed(b"moov", &moov_payload);
        let mdat = boxed(b"mdat", &[0x55u8; 5000]);
        if moov_first {
            [ftyp, boxed(b"free", &[]), moov, mdat].concat()
        } else {
            [ftyp, mdat, moov].concat()
        }
    }

    /// Feeds `file` in pieces of `piece` bytes.
    fn scan(file: &[u8], piece: usize) -> Index {
        let mut scan = IndexScan::new();
        for chunk in file.chunks(piece) {
            if scan.feed(chunk) != Index::Pending {
                break;
            }
        }
        scan.verdict()
    }

    #[test]
    fn the_index_tells_audio_whatever_the_pieces() {
        for piece in [1, 3, 7, 64, 100_000] {
            assert_eq!(
                scan(&mp4(&[b"vide", b"soun"], true), piece),
                Index::HasAudio
            );
            assert_eq!(scan(&mp4(&[b"vide"], true), piece), Index::NoAudio);
            assert_eq!(scan(&mp4(&[], true), piece), Index::NoAudio);
            assert_eq!(scan(&mp4(&[b"vide"], false), piece), Index::Unknown);
        }
    }

    #[test]
    fn the_verdict_comes_when_the_index_ends() {
        let file = mp4(&[b"vide"], true);
        let moov_end = file.len() - 5008;
        let mut scan = IndexScan::new();
        assert_eq!(scan.feed(&file[..moov_end - 1]), Index::Pending);
        assert_eq!(scan.feed(&file[moov_end - 1..moov_end]), Index::NoAudio);
    }

    #[test]
    fn broken_boxes_are_left_to_the_converter() {
        let mut file = boxed(b"ftyp", b"isom");
        file.extend_from_slice(&[0, 0, 0, 3, b'm', b'o', b'o', b'v']);
        assert_eq!(scan(&file, 5), Index::Unknown);
        // A child larger than its parent.
        let mut file = boxed(b"ftyp", b"isom");
        file.extend(boxed(b"moov", &boxed(b"trak", &[0u8; 10])));
        let n = file.len();
        file[n - 18..n - 14].copy_from_slice(&1000u32.to_be_bytes());
        assert_eq!(scan(&file, 4), Index::Unknown);
        // Media data to the end of the file.
        let mut file = boxed(b"ftyp", b"isom");
        file.extend_from_slice(&[0, 0, 0, 0, b'm', b'd', b'a', b't', 1, 2, 3]);
        assert_eq!(scan(&file, 4), Index::Unknown);
    }

    #[test]
    fn a_64_bit_box_size_is_read() {
        let mut file = boxed(b"ftyp", b"isom");
        let mut free = vec![0, 0, 0, 1];
        free.extend_from_slice(b"free");
        free.extend_from_slice(&(16u64 + 20).to_be_bytes());
        free.extend_from_slice(&[0u8; 20]);
        file.extend(free);
        file.extend(boxed(b"moov", &track(b"soun")));
        assert_eq!(scan(&file, 3), Index::HasAudio);
    }

    #[test]
    fn documents_images_and_text_are_named() {
        let refused = |b: &[u8]| match sniff(b) {
            Sniffed::Refused(s) => s,
            Sniffed::Media(m) => panic!("taken for {m}"),
        };
        assert!(refused(b"%PDF-1.7\n%\xE2\xE3\xCF\xD3\n1 0 obj").contains("a PDF document"));
        assert!(refused(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR").contains("a PNG image"));
        assert!(refused(&[0xFF, 0xD8, 0xFF, 0xE0, 0, 0x10]).contains("a JPEG image"));
        assert!(refused(b"PK\x03\x04\x14\0").contains("ZIP"));
        assert!(refused(b"hello, this is not a video\n").contains("a text file"));
        assert!(refused("caf\u{e9} ol\u{e9}\n".as_bytes()).contains("a text file"));
        assert!(refused(b"<!DOCTYPE html><html>").contains("an HTML page"));
        assert!(refused(b"#EXTM3U\n#EXT-X-VERSION:3\n").contains("a playlist"));
        assert!(refused(b"\0\0\0\x1cftypheic\0\0\0\0mif1heic").contains("HEIC"));
        assert!(refused(&[0x13, 0x37, 0x00, 0x42, 0x99]).contains("not a video or audio file"));
    }

    #[test]
    fn containers_are_recognised() {
        let media = |b: &[u8]| sniff(b).is_iso_media() || matches!(sniff(b), Sniffed::Media(_));
        assert!(sniff(&mp4(&[b"soun"], true)).is_iso_media());
        assert!(media(&[0x1A, 0x45, 0xDF, 0xA3, 0x9F]));
        assert!(media(b"\0\0\0\x0cjP  \r\n\x87\n"));
        assert!(media(b"RIFF\x10\0\0\0AVI LIST"));
        assert!(media(b"RIFF\x10\0\0\0WAVEfmt "));
        assert!(media(b"OggS\0\x02"));
        assert!(media(b"fLaC\0\0\0\x22"));
        assert!(media(b"ID3\x04\0\0\0\0\0\0"));
        assert!(media(&[0xFF, 0xFB, 0x90, 0x64]));
        assert!(media(&[0xFF, 0xF1, 0x50, 0x80]));
        assert!(media(&[0, 0, 1, 0xBA, 0x44]));
        let mut ts = vec![0u8; 188 * 4];
        for k in 0..4 {
            ts[5 + k * 188] = 0x47;
        }
        assert!(media(&ts));
        // Random bytes are not taken for MPEG audio by accident of one byte.
        assert!(!media(&[0xFF, 0x12, 0x34, 0x56]));
    }
}
