//! How a segment-parallel MP3 compares with the source: overall signal-to-noise ratio and the
//! coding error of the 50 ms windows around each seam. Used by the tests and the benchmark
//! (`make bench`), never by the service.

use std::{io, path::Path, process::Command};

use crate::segmented::{boundaries, OVERLAP_FRAMES};

/// Samples per MP3 frame.
const FRAME: u64 = 1152;

/// Interleaved float samples of an audio file as the ffmpeg CLI decodes it (an MP3's encoder
/// delay and padding trimmed by its LAME header).
pub fn decode_pcm(path: &Path, channels: u32) -> io::Result<Vec<f32>> {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(["-vn", "-ac", &channels.to_string(), "-f", "f32le", "-"])
        .output()?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "ffmpeg could not decode {}",
            path.display()
        )));
    }
    Ok(out
        .stdout
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect())
}

/// Signal-to-noise ratio in dB of `coded` against `reference` (over their common length).
pub fn snr_db(reference: &[f32], coded: &[f32]) -> f64 {
    let (signal, noise) = reference
        .iter()
        .zip(coded)
        .fold((0f64, 0f64), |(s, n), (r, c)| {
            (s + f64::from(*r).powi(2), n + f64::from(r - c).powi(2))
        });
    10.0 * (signal / noise.max(f64::MIN_POSITIVE)).log10()
}

/// Error energy of each window of `window` interleaved samples.
pub fn window_errors(reference: &[f32], coded: &[f32], window: usize) -> Vec<f64> {
    reference
        .chunks(window)
        .zip(coded.chunks(window))
        .map(|(r, c)| r.iter().zip(c).map(|(r, c)| f64::from(r - c).powi(2)).sum())
        .collect()
}

/// The median of `values` (the upper one for an even count); NaN when empty.
pub fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// The sample ranges (per channel) where the seams of a `segments`-way split of
/// `total_samples` can lie: from two frames before each boundary to two frames after the
/// overlap in which the seam frame is chosen.
pub fn seam_ranges(total_samples: u64, segments: usize) -> Vec<(u64, u64)> {
    boundaries(total_samples / FRAME, segments)
        .into_iter()
        .skip(1)
        .map(|start| {
            (
                (start * FRAME).saturating_sub(2 * FRAME),
                (start + OVERLAP_FRAMES + 2) * FRAME,
            )
        })
        .collect()
}

/// What a segment-parallel encode looks like next to a one-stream encode of the same source.
#[derive(Debug, Clone, Copy)]
pub struct SeamReport {
    /// SNR of the one-stream MP3 against the source, dB.
    pub snr_single_db: f64,
    /// SNR of the segmented MP3 against the source, dB.
    pub snr_segmented_db: f64,
    /// Error energy of the worst 50 ms window around a seam over the median window's.
    pub worst_seam_window: f64,
}

/// Compares decoded PCM (interleaved, `channels`) of a one-stream and a segmented encode with
/// the source's, the segmented one split `segments` ways.
pub fn compare(
    source: &[f32],
    single: &[f32],
    segmented: &[f32],
    rate: u32,
    channels: u32,
    segments: usize,
) -> SeamReport {
    let window_frames = u64::from(rate / 20);
    let errors = window_errors(
        source,
        segmented,
        (window_frames * u64::from(channels)) as usize,
    );
    let med = median(&errors);
    let total = source.len() as u64 / u64::from(channels.max(1));
    let worst = seam_ranges(total, segments)
        .into_iter()
        .flat_map(|(from, to)| from / window_frames..=to / window_frames)
        .filter_map(|w| errors.get(w as usize))
        .map(|e| e / med)
        .fold(0.0, f64::max);
    SeamReport {
        snr_single_db: snr_db(source, single),
        snr_segmented_db: snr_db(source, segmented),
        worst_seam_window: worst,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snr_of_a_known_error() {
        let reference = vec![1.0f32; 100];
        let coded = vec![0.9f32; 100];
        assert!((snr_db(&reference, &coded) - 20.0).abs() < 1e-4);
    }

    #[test]
    fn windows_and_median() {
        let reference = vec![0.0f32; 10];
        let coded = [0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 2.0, 0.0, 0.0, 0.0];
        assert_eq!(
            window_errors(&reference, &coded, 2),
            vec![0.0, 2.0, 0.0, 4.0, 0.0]
        );
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert!(median(&[]).is_nan());
    }

    #[test]
    fn seam_ranges_cover_the_overlap() {
        let ranges = seam_ranges(100 * FRAME, 2);
        assert_eq!(ranges, vec![(48 * FRAME, (52 + OVERLAP_FRAMES) * FRAME)]);
        assert!(seam_ranges(100 * FRAME, 1).is_empty());
    }

    #[test]
    fn a_click_at_a_seam_is_seen() {
        let rate = 1000;
        let source = vec![0.5f32; 10 * rate as usize];
        let mut coded: Vec<f32> = source.iter().map(|s| s + 0.01).collect();
        let clean = compare(&source, &coded, &coded, rate, 1, 2);
        assert!(clean.worst_seam_window <= 1.0 + 1e-9, "{clean:?}");
        // The boundary of a 2-way split of 10,000 samples lies at frame 4, sample 4608.
        coded[4608] += 0.5;
        let clicked = compare(&source, &source, &coded, rate, 1, 2);
        assert!(clicked.worst_seam_window > 2.0, "{clicked:?}");
    }
}
