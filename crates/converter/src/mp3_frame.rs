//! MPEG-1 layer III frames at the byte level: header and side-info parsing, and the splice that
//! joins two independently encoded streams at a frame boundary without breaking the bit
//! reservoir.
//!
//! A layer III frame's audio data ("main data") may begin up to 511 bytes before the frame's own
//! header, in the unused tail of earlier frames (`main_data_begin`). When segment k's encoder is
//! warmed up on audio before its first kept frame, that frame may point back into bytes of the
//! dropped warm-up frames. [`splice`] copies those bytes into the free tail of the previous
//! segment's last kept frame, choosing a seam frame where they fit, or, failing that, raising the
//! bitrate of that one frame to make room. The joined stream then decodes every kept frame from
//! exactly the bytes its encoder wrote.

/// Layer III bitrates of MPEG-1 in kb/s by bitrate index (0 = free format, 15 = invalid).
const BITRATES_KBPS: [u32; 15] = [
    0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320,
];
/// MPEG-1 sample rates by index.
const SAMPLE_RATES: [u32; 3] = [44_100, 48_000, 32_000];
/// Largest `main_data_begin` of MPEG-1 (9 bits).
pub const MAX_RESERVOIR: usize = 511;

/// Why bytes are not a frame we can work with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// Not an MPEG-1 layer III frame header, or a free-format/invalid field.
    #[error("not an MPEG-1 layer III frame")]
    NotLayer3,
    /// Fewer bytes than the header announces.
    #[error("frame shorter than its header says ({have} of {want} bytes)")]
    Short {
        /// Bytes given.
        have: usize,
        /// Bytes the header announces.
        want: usize,
    },
    /// No seam frame could hold the reservoir bytes, even at a higher bitrate.
    #[error("no seam frame has room for {needed} reservoir bytes")]
    NoRoom {
        /// Bytes that had to fit.
        needed: usize,
    },
}

/// What the header and side information of one frame say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameInfo {
    /// Whole frame length in bytes, header included.
    pub size: usize,
    /// Offset of the first main-data byte slot (after header, CRC and side info).
    pub payload_start: usize,
    /// Bytes of main data that lie before this frame's payload.
    pub main_data_begin: usize,
    /// Main data length in bytes (part2_3 bits of all granules and channels, rounded up).
    pub main_data_len: usize,
    /// Bitrate index (1..=14).
    pub bitrate_index: u8,
    /// Sample rate in Hz.
    pub sample_rate: u32,
    /// Whether a CRC follows the header.
    pub protected: bool,
}

impl FrameInfo {
    /// Bytes available for main data in this frame.
    pub fn slot_len(&self) -> usize {
        self.size - self.payload_start
    }
}

/// Length of an MPEG-1 layer III frame at a bitrate index and sample rate.
fn frame_size(bitrate_index: u8, sample_rate: u32, padding: bool) -> usize {
    (144_000 * BITRATES_KBPS[usize::from(bitrate_index)] / sample_rate) as usize
        + usize::from(padding)
}

/// Reads `n` bits from `data` starting at bit `pos` (MSB first).
fn bits(data: &[u8], pos: usize, n: usize) -> u32 {
    (0..n).fold(0, |acc, i| {
        let bit = pos + i;
        (acc << 1) | u32::from((data[bit / 8] >> (7 - bit % 8)) & 1)
    })
}

/// Parses the header and side information of the frame at the start of `frame`.
pub fn parse(frame: &[u8]) -> Result<FrameInfo, FrameError> {
    if frame.len() < 4 || frame[0] != 0xFF || frame[1] & 0xE0 != 0xE0 {
        return Err(FrameError::NotLayer3);
    }
    let version = (frame[1] >> 3) & 3;
    let layer = (frame[1] >> 1) & 3;
    let protected = frame[1] & 1 == 0;
    let bitrate_index = frame[2] >> 4;
    let rate_index = usize::from((frame[2] >> 2) & 3);
    let padding = (frame[2] >> 1) & 1 == 1;
    let mono = frame[3] >> 6 == 3;
    if version != 3 || layer != 1 || bitrate_index == 0 || bitrate_index == 15 || rate_index == 3 {
        return Err(FrameError::NotLayer3);
    }
    let sample_rate = SAMPLE_RATES[rate_index];
    let size = frame_size(bitrate_index, sample_rate, padding);
    if frame.len() < size {
        return Err(FrameError::Short {
            have: frame.len(),
            want: size,
        });
    }
    let side_start = 4 + if protected { 2 } else { 0 };
    let (side_len, private_bits, channels) = if mono { (17, 5, 1) } else { (32, 3, 2) };
    let side = &frame[side_start..side_start + side_len];
    let main_data_begin = bits(side, 0, 9) as usize;
    // part2_3_length opens each granule/channel block of 59 bits, after the scfsi bits.
    let first_block = 9 + private_bits + 4 * channels;
    let total_bits: usize = (0..2 * channels)
        .map(|block| bits(side, first_block + block * 59, 12) as usize)
        .sum();
    Ok(FrameInfo {
        size,
        payload_start: side_start + side_len,
        main_data_begin,
        main_data_len: total_bits.div_ceil(8),
        bitrate_index,
        sample_rate,
        protected,
    })
}

/// How to join two segments at a seam.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seam {
    /// The previous segment's tail frames to keep (at least one), with the next segment's
    /// reservoir bytes written into their unused end.
    pub prev: Vec<Vec<u8>>,
    /// How many frames of the next segment's head to skip (warm-up frames and the frames the
    /// previous segment's tail covers).
    pub skip_next: usize,
    /// True when the last kept tail frame had to be raised to a higher bitrate.
    pub grown: bool,
}

/// Payload offsets of frames in their reservoir byte stream (one more entry: the end).
fn offsets(info: &[FrameInfo]) -> Vec<usize> {
    let mut offsets = Vec::with_capacity(info.len() + 1);
    let mut offset = 0usize;
    for i in info {
        offsets.push(offset);
        offset += i.slot_len();
    }
    offsets.push(offset);
    offsets
}

/// The frames' payloads, concatenated: what a decoder's reservoir sees.
fn payloads(frames: &[Vec<u8>], info: &[FrameInfo]) -> Vec<u8> {
    frames
        .iter()
        .zip(info)
        .flat_map(|(f, i)| f[i.payload_start..i.size].iter().copied())
        .collect()
}

/// Finds a seam between two encodes of the same audio.
///
/// `tail` holds the previous segment's frames for global frames `s - 1 .. s + e`, `head` the
/// next segment's frames for `s - warmup .. s + e'`; both encoders were warm over that range.
/// The seam frame `c` is the first frame taken from `head`; it is chosen in `s ..` so that the
/// reservoir bytes the head needs before frame `c` fit in the bytes of the kept tail that follow
/// the tail's last main data. Every head frame from `c` on then finds its main data where its
/// encoder put it: that is checked for the frames in `head`, and frames after `head` are too far
/// from `c` to reach back past it (the head's bytes after `c` must exceed [`MAX_RESERVOIR`]).
pub fn splice(tail: &[Vec<u8>], head: &[Vec<u8>], warmup: usize) -> Result<Seam, FrameError> {
    let tail_info = tail
        .iter()
        .map(|f| parse(f))
        .collect::<Result<Vec<_>, _>>()?;
    let head_info = head
        .iter()
        .map(|f| parse(f))
        .collect::<Result<Vec<_>, _>>()?;
    let head_at = offsets(&head_info);
    let head_stream = payloads(head, &head_info);
    let tail_at = offsets(&tail_info);
    // Bytes before frame `i`'s payload that head frames `i..` use.
    let needed = |i: usize| -> Option<usize> {
        if head_at[head.len()] - head_at[i] <= MAX_RESERVOIR {
            return None;
        }
        let reach = (i..head.len())
            .map(|j| (head_at[i] + head_info[j].main_data_begin).saturating_sub(head_at[j]))
            .max()
            .unwrap_or(0);
        (reach <= head_at[i]).then_some(reach)
    };
    // Bytes of the tail up to the end of frame `t` that no kept frame's main data uses.
    let room = |t: usize| -> usize {
        let info = tail_info[t];
        let data_end = (tail_at[t] + info.main_data_len).saturating_sub(info.main_data_begin);
        tail_at[t + 1] - data_end.max(tail_at[0])
    };
    let mut best: Option<(usize, usize, usize)> = None; // (t, needed, deficit)
    for t in 0..tail.len() {
        let i = warmup + t;
        if i >= head.len() {
            break;
        }
        let Some(need) = needed(i) else { continue };
        let free = room(t);
        if need <= free {
            let prefix = &head_stream[head_at[i] - need..head_at[i]];
            return Ok(Seam {
                prev: write_prefix(&tail[..=t], &tail_info[..=t], prefix),
                skip_next: i,
                grown: false,
            });
        }
        let deficit = need - free;
        if best.is_none_or(|(_, _, d)| deficit < d) {
            best = Some((t, need, deficit));
        }
    }
    let Some((t, need, deficit)) = best else {
        return Err(FrameError::NoRoom { needed: 0 });
    };
    // No frame had room: raise the bitrate of tail frame `t` until it has enough.
    let info = tail_info[t];
    let padding = (tail[t][2] >> 1) & 1 == 1;
    let grow_to = (info.bitrate_index + 1..=14)
        .find(|&b| frame_size(b, info.sample_rate, padding) - info.size >= deficit);
    match grow_to {
        Some(b) if !info.protected => {
            let extra = frame_size(b, info.sample_rate, padding) - info.size;
            let mut frames = tail[..=t].to_vec();
            let mut infos = tail_info[..=t].to_vec();
            frames[t][2] = (frames[t][2] & 0x0F) | (b << 4);
            frames[t].resize(info.size + extra, 0);
            infos[t] = FrameInfo {
                size: info.size + extra,
                bitrate_index: b,
                ..info
            };
            let i = warmup + t;
            let prefix = &head_stream[head_at[i] - need..head_at[i]];
            Ok(Seam {
                prev: write_prefix(&frames, &infos, prefix),
                skip_next: i,
                grown: true,
            })
        }
        _ => Err(FrameError::NoRoom { needed: need }),
    }
}

/// The frames with `prefix` written over the last bytes of their payloads (spanning frames when
/// it is longer than the last payload).
fn write_prefix(frames: &[Vec<u8>], info: &[FrameInfo], prefix: &[u8]) -> Vec<Vec<u8>> {
    let mut out = frames.to_vec();
    let mut remaining = prefix;
    for (frame, info) in out.iter_mut().zip(info).rev() {
        if remaining.is_empty() {
            break;
        }
        let slot = &mut frame[info.payload_start..info.size];
        let n = remaining.len().min(slot.len());
        let (rest, last) = remaining.split_at(remaining.len() - n);
        let len = slot.len();
        slot[len - n..].copy_from_slice(last);
        remaining = rest;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stereo, unprotected 44.1 kHz frame at `bitrate_index` with the given side info fields;
    /// payload bytes are filled with `fill`.
    fn frame(bitrate_index: u8, main_data_begin: u16, part23: [u16; 4], fill: u8) -> Vec<u8> {
        let size = frame_size(bitrate_index, 44_100, false);
        let mut f = vec![fill; size];
        f[0] = 0xFF;
        f[1] = 0xFB; // MPEG-1, layer III, no CRC
        f[2] = bitrate_index << 4; // 44.1 kHz, no padding
        f[3] = 0x44; // joint stereo
        let mut side = [0u8; 32];
        let mut put = |pos: usize, n: usize, value: u32| {
            for b in 0..n {
                let bit = (value >> (n - 1 - b)) & 1;
                let at = pos + b;
                side[at / 8] |= (bit as u8) << (7 - at % 8);
            }
        };
        put(0, 9, u32::from(main_data_begin));
        for (block, len) in part23.iter().enumerate() {
            put(9 + 3 + 8 + block * 59, 12, u32::from(*len));
        }
        f[4..36].copy_from_slice(&side);
        f
    }

    #[test]
    fn parses_header_and_side_info() {
        let f = frame(9, 300, [800, 800, 800, 801], 0);
        let info = parse(&f).unwrap();
        assert_eq!(info.size, 417);
        assert_eq!(info.payload_start, 36);
        assert_eq!(info.slot_len(), 381);
        assert_eq!(info.main_data_begin, 300);
        assert_eq!(info.main_data_len, 3201_usize.div_ceil(8));
        assert_eq!(info.bitrate_index, 9);
        assert_eq!(info.sample_rate, 44_100);
        assert!(!info.protected);
    }

    #[test]
    fn rejects_other_data() {
        assert_eq!(parse(b"ID3\x04"), Err(FrameError::NotLayer3));
        let mut f = frame(9, 0, [0; 4], 0);
        f[1] = 0xF3; // MPEG-2
        assert_eq!(parse(&f), Err(FrameError::NotLayer3));
        let f = frame(9, 0, [0; 4], 0);
        assert!(matches!(parse(&f[..100]), Err(FrameError::Short { .. })));
    }

    #[test]
    fn mono_side_info_is_17_bytes() {
        let mut f = frame(9, 0, [0; 4], 0);
        f[3] = 0xC4;
        // main_data_begin 5, part2_3 of gr0 = 16 bits, gr1 = 8 bits.
        f[4..21].fill(0);
        let mut side = [0u8; 17];
        side[0] = 5 >> 1;
        side[1] = (5 & 1) << 7;
        let put12 = |side: &mut [u8; 17], pos: usize, v: u32| {
            for b in 0..12 {
                let at = pos + b;
                side[at / 8] |= (((v >> (11 - b)) & 1) as u8) << (7 - at % 8);
            }
        };
        put12(&mut side, 18, 16);
        put12(&mut side, 18 + 59, 8);
        f[4..21].copy_from_slice(&side);
        let info = parse(&f).unwrap();
        assert_eq!(info.payload_start, 21);
        assert_eq!(info.main_data_begin, 5);
        assert_eq!(info.main_data_len, 3);
    }

    /// Head frames whose payload bytes hold their stream offset, so spliced bytes are traceable.
    fn numbered_head(count: usize, mdb: &[u16]) -> Vec<Vec<u8>> {
        let mut offset = 0usize;
        (0..count)
            .map(|i| {
                let mut f = frame(9, mdb[i], [400, 400, 400, 400], 0);
                for (k, b) in f[36..].iter_mut().enumerate() {
                    *b = ((offset + k) % 251) as u8;
                }
                offset += 381;
                f
            })
            .collect()
    }

    #[test]
    fn splices_reservoir_bytes_into_a_free_tail() {
        // Tail frames use 200 of 381 bytes with nothing borrowed: 181 free bytes each.
        let tail: Vec<_> = (0..4)
            .map(|_| frame(9, 0, [400, 400, 400, 400], 0xAA))
            .collect();
        // The head's frame after 2 warm-up frames borrows 100 bytes.
        let head = numbered_head(6, &[0, 0, 100, 50, 0, 0]);
        let seam = splice(&tail, &head, 2).unwrap();
        assert_eq!(seam.prev.len(), 1);
        assert_eq!(seam.skip_next, 2);
        assert!(!seam.grown);
        let last = &seam.prev[0];
        assert_eq!(last.len(), 417);
        // The first 236 bytes (header, side info, its 200 bytes of data) are untouched ...
        assert_eq!(last[..236], tail[0][..236]);
        // ... and the last 100 are the head's bytes just before its frame 2's payload.
        let expected: Vec<u8> = (2 * 381 - 100..2 * 381).map(|o| (o % 251) as u8).collect();
        assert_eq!(last[417 - 100..], expected[..]);
    }

    #[test]
    fn moves_the_seam_until_the_bytes_fit() {
        // Tail frame 0 is full (its data fills the slot), frame 1 has 181 free bytes.
        let tail = vec![
            frame(9, 0, [762, 762, 762, 762], 0xAA),
            frame(9, 0, [400, 400, 400, 400], 0xAA),
            frame(9, 0, [400, 400, 400, 400], 0xAA),
        ];
        let head = numbered_head(7, &[0, 0, 100, 100, 0, 0, 0]);
        let seam = splice(&tail, &head, 2).unwrap();
        assert_eq!(seam.prev.len(), 2);
        assert_eq!(seam.prev[0], tail[0]);
        assert_eq!(seam.skip_next, 3);
        assert!(!seam.grown);
    }

    #[test]
    fn later_frames_reaching_back_count() {
        // Frame 2 borrows nothing, but frame 3 borrows 500 bytes: 119 of them before frame 2.
        let tail: Vec<_> = (0..2)
            .map(|_| frame(9, 0, [400, 400, 400, 400], 0xAA))
            .collect();
        let head = numbered_head(6, &[0, 0, 0, 500, 0, 0]);
        let seam = splice(&tail, &head, 2).unwrap();
        let expected: Vec<u8> = (2 * 381 - 119..2 * 381).map(|o| (o % 251) as u8).collect();
        assert_eq!(seam.prev[0][417 - 119..], expected[..]);
    }

    #[test]
    fn grows_a_full_frame_when_nothing_fits() {
        let tail = vec![frame(9, 0, [762, 762, 762, 762], 0xAA)];
        let head = numbered_head(5, &[0, 0, 300, 0, 0]);
        let seam = splice(&tail, &head, 2).unwrap();
        assert!(seam.grown);
        let last = &seam.prev[0];
        let info = parse(last).unwrap();
        assert!(info.size >= 417 + 300, "{info:?}");
        assert_eq!(info.main_data_len, 381);
        assert_eq!(last[36..417], tail[0][36..417]);
        let expected: Vec<u8> = (2 * 381 - 300..2 * 381).map(|o| (o % 251) as u8).collect();
        assert_eq!(last[info.size - 300..], expected[..]);
    }

    #[test]
    fn reservoir_bytes_may_span_several_tail_frames() {
        // As LAME's VBR does with a full reservoir: each frame's 200 bytes of data start 450
        // bytes back, so they end 250 bytes before its own payload; 250 + 381 bytes are free.
        let tail: Vec<_> = (0..3)
            .map(|_| frame(9, 450, [400, 400, 400, 400], 0xAA))
            .collect();
        let head = numbered_head(6, &[0, 0, 500, 500, 0, 0]);
        let seam = splice(&tail, &head, 2).unwrap();
        // Frame 2 needs 500 bytes but only tail frame 0 (381 bytes) may change: seam at 3, whose
        // 500 bytes go into the last 119 bytes of tail frame 0 and all of tail frame 1.
        assert_eq!(seam.prev.len(), 2);
        assert_eq!(seam.skip_next, 3);
        assert!(!seam.grown);
        let expected: Vec<u8> = (3 * 381 - 500..3 * 381).map(|o| (o % 251) as u8).collect();
        assert_eq!(seam.prev[0][417 - 119..], expected[..119]);
        assert_eq!(seam.prev[1][36..], expected[119..]);
        assert_eq!(seam.prev[0][..417 - 119], tail[0][..417 - 119]);
    }

    #[test]
    fn fails_when_even_320_kbps_is_too_small() {
        let tail = vec![frame(14, 0, [2000, 2000, 2000, 2006], 0xAA)];
        let head = numbered_head(5, &[0, 0, 300, 0, 0]);
        assert_eq!(
            splice(&tail, &head, 2),
            Err(FrameError::NoRoom { needed: 300 })
        );
    }

    #[test]
    fn needs_enough_head_after_the_seam() {
        let tail: Vec<_> = (0..2)
            .map(|_| frame(9, 0, [400, 400, 400, 400], 0xAA))
            .collect();
        // Only one frame (381 bytes) after the warm-up: a later frame could still reach back.
        let head = numbered_head(3, &[0, 0, 0]);
        assert!(splice(&tail, &head, 2).is_err());
    }
}
