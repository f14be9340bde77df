//! Segment-parallel encoding against a one-stream encode of the same source: sample counts,
//! quality overall and around every seam, headers as the ffmpeg CLI reads them, cancellation,
//! a failing segment, and the inputs that are not split.

// Test code, helpers included (clippy.toml's allow-*-in-tests covers #[test] functions only):
// a panic is a failed test with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod helpers;

use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::atomic::{AtomicBool, Ordering},
    time::Duration,
};

use common::jobs::Mp3Quality;
use converter::slots::Slots;
use converter::{
    seam_quality::{self, decode_pcm, SeamReport},
    segmented::{self, Split},
    transcode::{transcode, Limits, TranscodeError, TranscodeOptions},
};
use helpers::{ffmpeg, TestEnv};
use lapin::options::BasicGetOptions;

/// Music-like test audio with the same character all along, so that every 50 ms window of
/// coding error is alike: tones amplitude- and frequency-modulated at 20 Hz, noise, and a click
/// every 25 ms (transients make LAME switch to short blocks and lean on the bit reservoir).
fn source(dir: &Path, name: &str, secs: u32, rate: u32, channels: u32) -> PathBuf {
    let left = "0.3*sin(2*PI*440*t)*(0.6+0.4*sin(2*PI*20*t))+0.15*sin(2*PI*(1500+300*sin(2*PI*20*t))*t)+0.03*(random(0)-0.5)+0.4*lt(mod(t,0.025),0.0005)";
    let right = "0.25*sin(2*PI*660*t+2*sin(2*PI*20*t))+0.03*(random(1)-0.5)+0.2*sin(2*PI*97*t)";
    let exprs = if channels == 1 {
        left.to_owned()
    } else {
        format!("{left}|{right}")
    };
    let src = format!("aevalsrc=exprs='{exprs}':s={rate}:d={secs}");
    ffmpeg(
        dir,
        name,
        &["-f", "lavfi", "-i", &src, "-c:a", "aac", "-b:a", "192k"],
    )
}

/// Encodes `src` in one stream and in `segments` segments, checks what must be equal, and
/// measures quality.
fn compare(
    src: &Path,
    quality: Mp3Quality,
    segments: usize,
    rate: u32,
    channels: u32,
) -> SeamReport {
    let dir = src.parent().unwrap();
    let single = dir.join("single.mp3");
    let parallel = dir.join("parallel.mp3");
    let options = TranscodeOptions {
        quality,
        title: Some("seams".into()),
        limits: Default::default(),
    };
    let cancel = AtomicBool::new(false);
    let one = transcode(src, &single, &options, &cancel, |_| {}).unwrap();
    let split = Split {
        segments,
        min_segment: Duration::from_secs(3),
    };
    let mut last = 0.0;
    let many = segmented::transcode(
        src,
        &parallel,
        &options,
        &cancel,
        |p| {
            assert!(p >= last, "progress went back from {last} to {p}");
            last = p;
        },
        split,
    )
    .unwrap();
    assert_eq!(last, 100.0);
    assert_eq!(many.segments, segments, "{many:?}");
    assert_eq!(many.input_samples, one.input_samples);
    assert_eq!(many.output_samples, one.output_samples);

    // Gapless: the CLI decodes both MP3s to the source's sample count.
    let reference = decode_pcm(src, channels).unwrap();
    let a = decode_pcm(&single, channels).unwrap();
    let b = decode_pcm(&parallel, channels).unwrap();
    assert_eq!(a.len(), reference.len(), "one stream");
    assert_eq!(b.len(), reference.len(), "segments");

    // The headers say the same: duration, bitrate, title.
    let probe = |p: &Path| helpers::probe(p);
    let (pa, pb) = (probe(&single), probe(&parallel));
    assert_eq!(pb.samples, pa.samples);
    assert_eq!(pb.sample_rate, pa.sample_rate);
    assert_eq!(pb.channels, pa.channels);
    assert_eq!(pb.title, "seams");
    assert_eq!(format_duration(&parallel), format_duration(&single));
    if let Mp3Quality::Cbr { bitrate_kbps } = quality {
        assert_eq!(pb.bit_rate, u64::from(bitrate_kbps.kbps()) * 1000);
    }

    seam_quality::compare(&reference, &a, &b, rate, channels, segments)
}

/// The container duration ffprobe reports (from the Xing header's frame count).
fn format_duration(path: &Path) -> String {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "format=duration",
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .output()
        .expect("ffprobe");
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn assert_quality(c: &SeamReport) {
    assert!(
        c.snr_segmented_db > c.snr_single_db - 0.5,
        "SNR {:.2} dB in segments vs {:.2} dB in one stream",
        c.snr_segmented_db,
        c.snr_single_db
    );
    assert!(
        c.worst_seam_window <= 2.0,
        "a window at a seam has {:.2}x the median error energy",
        c.worst_seam_window
    );
}

#[test]
fn cbr_in_three_segments_is_like_one_stream() {
    let dir = tempfile::tempdir().unwrap();
    let src = source(dir.path(), "src.m4a", 20, 48_000, 2);
    let c = compare(&src, Mp3Quality::cbr(128).unwrap(), 3, 48_000, 2);
    assert_quality(&c);
}

#[test]
fn vbr_mono_in_two_segments_is_like_one_stream() {
    let dir = tempfile::tempdir().unwrap();
    let src = source(dir.path(), "src.m4a", 12, 44_100, 1);
    let c = compare(&src, Mp3Quality::vbr(2).unwrap(), 2, 44_100, 1);
    assert_quality(&c);
}

#[test]
fn low_bitrate_in_four_segments_is_like_one_stream() {
    let dir = tempfile::tempdir().unwrap();
    let src = source(dir.path(), "src.mp4", 20, 44_100, 2);
    let c = compare(&src, Mp3Quality::cbr(64).unwrap(), 4, 44_100, 2);
    assert_quality(&c);
}

#[test]
fn resampled_or_short_inputs_are_encoded_in_one_stream() {
    let dir = tempfile::tempdir().unwrap();
    let options = TranscodeOptions::default();
    let cancel = AtomicBool::new(false);
    let split = Split {
        segments: 2,
        min_segment: Duration::from_secs(3),
    };
    let resampled = source(dir.path(), "low.m4a", 10, 22_050, 2);
    let out = dir.path().join("out.mp3");
    let report = segmented::transcode(&resampled, &out, &options, &cancel, |_| {}, split).unwrap();
    assert_eq!(report.segments, 1);
    assert_eq!(
        helpers::decoded_samples(&out, 2, None),
        helpers::decoded_samples(&resampled, 2, Some(44_100))
    );
    let short = source(dir.path(), "short.m4a", 5, 48_000, 2);
    let report = segmented::transcode(&short, &out, &options, &cancel, |_| {}, split).unwrap();
    assert_eq!(report.segments, 1);
    assert_eq!(
        report.output_samples,
        helpers::decoded_samples(&short, 2, None)
    );
}

/// Files in `dir` other than the ones named.
fn extra_files(dir: &Path, known: &[&str]) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !known.contains(&n.as_str()))
        .collect()
}

#[test]
fn cancelling_mid_segment_stops_every_segment() {
    let dir = tempfile::tempdir().unwrap();
    let src = source(dir.path(), "src.m4a", 120, 48_000, 2);
    let out = dir.path().join("out.mp3");
    let cancel = AtomicBool::new(false);
    let split = Split {
        segments: 2,
        min_segment: Duration::from_secs(3),
    };
    let mut seen = 0.0;
    let result = segmented::transcode(
        &src,
        &out,
        &TranscodeOptions::default(),
        &cancel,
        |p| {
            seen = p;
            if p > 10.0 {
                cancel.store(true, Ordering::Relaxed);
            }
        },
        split,
    );
    assert!(
        matches!(result, Err(TranscodeError::Cancelled)),
        "{result:?}"
    );
    assert!(seen > 10.0 && seen < 90.0, "cancelled at {seen}%");
    assert!(extra_files(dir.path(), &["src.m4a", "out.mp3"]).is_empty());
}

#[test]
fn a_damaged_segment_fails_the_job() {
    let dir = tempfile::tempdir().unwrap();
    // ADTS AAC: every packet stands alone, so garbage in the second half stays there.
    let src = {
        let left = "0.3*sin(2*PI*440*t)";
        let s = format!("aevalsrc=exprs='{left}':s=48000:d=30");
        ffmpeg(
            dir.path(),
            "src.aac",
            &["-f", "lavfi", "-i", &s, "-c:a", "aac", "-b:a", "128k"],
        )
    };
    let mut bytes = std::fs::read(&src).unwrap();
    let half = bytes.len() / 2;
    let mut x: u32 = 12345;
    for b in &mut bytes[half..] {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
        *b = (x >> 16) as u8;
    }
    let bad = dir.path().join("bad.aac");
    std::fs::write(&bad, &bytes).unwrap();
    let out = dir.path().join("out.mp3");
    let split = Split {
        segments: 2,
        min_segment: Duration::from_secs(3),
    };
    let result = segmented::transcode(
        &bad,
        &out,
        &TranscodeOptions::default(),
        &AtomicBool::new(false),
        |_| {},
        split,
    );
    assert!(
        matches!(result, Err(TranscodeError::Damaged(_))),
        "{result:?}"
    );
    assert!(extra_files(dir.path(), &["src.aac", "bad.aac", "out.mp3"]).is_empty());
}

/// Two or three segments of `src` within `limits`.
fn segmented_within(
    src: &Path,
    segments: usize,
    quality: Mp3Quality,
    limits: Limits,
) -> Result<converter::transcode::TranscodeReport, TranscodeError> {
    let options = TranscodeOptions {
        quality,
        title: None,
        limits,
    };
    let split = Split {
        segments,
        min_segment: Duration::from_secs(3),
    };
    let out = src.parent().unwrap().join("out.mp3");
    segmented::transcode(src, &out, &options, &AtomicBool::new(false), |_| {}, split)
}

#[test]
fn the_mp3_cap_holds_for_the_sum_of_the_segments() {
    let dir = tempfile::tempdir().unwrap();
    let src = source(dir.path(), "src.m4a", 60, 48_000, 2);
    let cbr320 = Mp3Quality::cbr(320).unwrap();
    // 60 s at 320 kb/s is 2.4 MB: each of three segments keeps about 0.8 MB.
    let capped = Limits {
        max_output_bytes: 1_000_000,
        ..Limits::default()
    };
    let result = segmented_within(&src, 3, cbr320, capped);
    assert!(
        matches!(result, Err(TranscodeError::OutputTooLarge(1_000_000))),
        "{result:?}"
    );
    let out = dir.path().join("out.mp3");
    assert!(std::fs::metadata(&out).map_or(0, |m| m.len()) <= 1_000_000);
    assert!(extra_files(dir.path(), &["src.m4a", "out.mp3"]).is_empty());

    // Under the cap, the same file is split.
    let roomy = Limits {
        max_output_bytes: 3_000_000,
        ..Limits::default()
    };
    let report = segmented_within(&src, 3, cbr320, roomy).unwrap();
    assert_eq!(report.segments, 3, "{report:?}");
}

#[test]
fn audio_decoded_past_what_is_declared_counts_over_all_segments() {
    let dir = tempfile::tempdir().unwrap();
    // 40 s declared as 20: the second segment decodes about 31 s, the job 40. At 48 kHz FLAC's
    // 4608-sample blocks last whole milliseconds, so Matroska's timestamps count samples.
    let src = helpers::lying_about_its_length(dir.path(), 48_000, 40, 20);
    let cbr = Mp3Quality::cbr(128).unwrap();
    let short = Limits {
        max_duration: Duration::from_secs(35),
        ..Limits::default()
    };
    let result = segmented_within(&src, 2, cbr, short);
    assert!(
        matches!(result, Err(TranscodeError::TooLong(d)) if d == Duration::from_secs(35)),
        "{result:?}"
    );
    assert!(extra_files(dir.path(), &["honest.mka", "lying.mka", "out.mp3"]).is_empty());

    // Within the limit, the same file is split and all of it is kept.
    let long_enough = Limits {
        max_duration: Duration::from_secs(45),
        ..Limits::default()
    };
    let report = segmented_within(&src, 2, cbr, long_enough).unwrap();
    assert_eq!(report.segments, 2, "{report:?}");
    assert_eq!(report.input_samples, 40 * 48_000);
}

#[tokio::test]
async fn an_idle_converter_splits_a_job_through_the_queue() {
    let env = TestEnv::new().await;
    let src = source(env.media.path(), "talk.m4a", 16, 48_000, 2);
    let fid = env.upload(&src, "talk.m4a", "ann@example.com").await;
    let mut vars = env.env();
    vars.insert("CONVERTER_SPLIT_MIN_SECS".into(), "3".into());
    let app = env.spawn_app_with_env(&vars).await;
    env.publish(fid, "ann@example.com").await;
    let job = env.wait_final(fid).await;
    assert_eq!(job.state, common::jobs::JobState::Completed, "{job:?}");
    let mp3 = env.download_mp3(job.mp3_fid.unwrap()).await;
    let p = helpers::probe(&mp3);
    assert_eq!(p.samples, helpers::decoded_samples(&src, 2, None));
    assert_eq!(p.bit_rate, 128_000);
    assert_eq!(p.title, "talk");
    let (_, metrics) = app.get("/metrics").await;
    assert!(
        metrics.contains("converter_segmented_jobs_total 1"),
        "{metrics}"
    );
    app.stop().await;
    assert!(
        env.leftover_files().is_empty(),
        "{:?}",
        env.leftover_files()
    );
    env.cleanup().await;
}

#[tokio::test]
async fn idle_slots_are_lent_only_while_nothing_waits_in_the_queue() {
    let env = TestEnv::new().await;
    env.declare(&env.queue).await;
    let slots = Slots::new(3, &env.queue, Some(Duration::from_secs(30)));
    slots.set_probe(Some(env.channel.clone()));
    let _running = slots.acquire().await;

    env.publish_raw(b"{}").await;
    // The queue counts the message a moment after the publish.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while slots.waiting_messages().await != Some(1) && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(slots.waiting_messages().await, Some(1));
    assert!(
        slots.borrow_idle().await.is_none(),
        "a message waits: no split"
    );
    assert_eq!(slots.idle(), 2);

    let got = env
        .channel
        .basic_get(&env.queue, BasicGetOptions { no_ack: true })
        .await
        .unwrap();
    assert!(got.is_some());
    let lent = slots.borrow_idle().await.expect("idle slots lent");
    assert_eq!(lent.num_permits(), 2);
    assert_eq!(slots.idle(), 0);
    // A job arriving now waits for a slot until the split job gives them back.
    assert!(
        tokio::time::timeout(Duration::from_millis(100), slots.acquire())
            .await
            .is_err()
    );
    drop(lent);
    assert_eq!(slots.idle(), 2);
    env.cleanup().await;
}
