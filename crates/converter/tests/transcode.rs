//! The transcoder alone, in-process: memory stays flat with the input's length, cancellation.

// Test code, helpers included (clippy.toml's allow-*-in-tests covers #[test] functions only):
// a panic is a failed test with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod helpers;

use std::sync::atomic::AtomicBool;

use converter::transcode::{transcode, Limits, TranscodeError, TranscodeOptions};
use helpers::ffmpeg;

/// Resident memory of this process in KiB (Linux).
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

fn tone(dir: &std::path::Path, name: &str, secs: u32) -> std::path::PathBuf {
    let src = format!("sine=frequency=330:sample_rate=48000:duration={secs}");
    ffmpeg(
        dir,
        name,
        &[
            "-f", "lavfi", "-i", &src, "-ac", "2", "-c:a", "aac", "-b:a", "64k",
        ],
    )
}

#[test]
fn memory_does_not_grow_with_the_length_of_the_input() {
    let dir = tempfile::tempdir().unwrap();
    let short = tone(dir.path(), "short.m4a", 10);
    let long = tone(dir.path(), "long.m4a", 600);
    let out = dir.path().join("out.mp3");
    let cancel = AtomicBool::new(false);
    let options = TranscodeOptions::default();
    // Warm up: libraries, codec tables and allocator arenas.
    transcode(&short, &out, &options, &cancel, |_| {}).unwrap();
    transcode(&short, &out, &options, &cancel, |_| {}).unwrap();
    let before = rss_kib();
    let report = transcode(&long, &out, &options, &cancel, |_| {}).unwrap();
    let after = rss_kib();
    assert_eq!(report.output_samples, report.input_samples, "{report:?}");
    assert!(report.input_samples >= 600 * 48_000, "{report:?}");
    // 10 minutes of AAC is ~28,000 packets: leaking each one (as reusing a packet for
    // av_read_frame does) grows RSS by ~15 MiB; flat streaming stays within a few MiB.
    let growth = after.saturating_sub(before);
    assert!(
        growth < 6 * 1024,
        "RSS grew by {growth} KiB converting 10 minutes"
    );
}

#[test]
fn a_cancelled_conversion_stops_with_cancelled() {
    let dir = tempfile::tempdir().unwrap();
    let src = tone(dir.path(), "t.m4a", 5);
    let cancel = AtomicBool::new(true);
    let err = transcode(
        &src,
        &dir.path().join("o.mp3"),
        &TranscodeOptions::default(),
        &cancel,
        |_| {},
    )
    .unwrap_err();
    assert!(matches!(err, TranscodeError::Cancelled), "{err:?}");
}

#[test]
fn progress_rises_to_100() {
    let dir = tempfile::tempdir().unwrap();
    let src = tone(dir.path(), "p.m4a", 120);
    let cancel = AtomicBool::new(false);
    let mut seen = Vec::new();
    transcode(
        &src,
        &dir.path().join("o.mp3"),
        &TranscodeOptions::default(),
        &cancel,
        |p| seen.push(p),
    )
    .unwrap();
    assert_eq!(seen.last(), Some(&100.0));
    assert!(seen.windows(2).all(|w| w[0] <= w[1]), "{seen:?}");
    assert!(seen.iter().all(|p| (0.0..=100.0).contains(p)));
}

#[test]
fn the_output_cap_stops_the_encoder_before_the_file_grows_past_it() {
    let dir = tempfile::tempdir().unwrap();
    let src = tone(dir.path(), "cap.m4a", 120);
    let out = dir.path().join("o.mp3");
    let cap = 100_000;
    let options = TranscodeOptions {
        quality: common::jobs::Mp3Quality::cbr(320).unwrap(),
        limits: Limits {
            max_output_bytes: cap,
            ..Limits::default()
        },
        ..TranscodeOptions::default()
    };
    let err = transcode(&src, &out, &options, &AtomicBool::new(false), |_| {}).unwrap_err();
    assert!(
        matches!(err, TranscodeError::OutputTooLarge(c) if c == cap),
        "{err:?}"
    );
    // 120 s at 320 kb/s would be 4.8 MB; what was written stays within the cap (plus the
    // ID3 and Xing headers written before the first packet).
    let written = std::fs::metadata(&out).unwrap().len();
    assert!(written <= cap + 4096, "{written} bytes written");
}

#[test]
fn a_declared_length_over_the_limit_is_refused_before_decoding() {
    let dir = tempfile::tempdir().unwrap();
    let src = tone(dir.path(), "len.m4a", 20);
    let options = TranscodeOptions {
        limits: Limits {
            max_duration: std::time::Duration::from_secs(10),
            ..Limits::default()
        },
        ..TranscodeOptions::default()
    };
    let mut progress = Vec::new();
    let err = transcode(
        &src,
        &dir.path().join("o.mp3"),
        &options,
        &AtomicBool::new(false),
        |p| progress.push(p),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "the media is longer than the 10 seconds accepted"
    );
    assert!(progress.is_empty(), "decoding began: {progress:?}");
}

#[test]
fn low_sample_rates_are_resampled_to_44100() {
    let dir = tempfile::tempdir().unwrap();
    for rate in [8_000u32, 11_025, 16_000] {
        let src = ffmpeg(
            dir.path(),
            &format!("speech-{rate}.m4a"),
            &[
                "-f",
                "lavfi",
                "-i",
                &format!("sine=frequency=300:sample_rate={rate}:duration=3"),
                "-c:a",
                "aac",
            ],
        );
        let report = transcode(
            &src,
            &dir.path().join("o.mp3"),
            &TranscodeOptions::default(),
            &AtomicBool::new(false),
            |_| {},
        )
        .unwrap_or_else(|e| panic!("{rate} Hz: {e}"));
        assert_eq!(report.sample_rate, 44_100);
        let expected = report.input_samples * 44_100 / u64::from(rate);
        assert!(
            report.output_samples.abs_diff(expected) <= 64,
            "{rate} Hz: {report:?}"
        );
    }
}
