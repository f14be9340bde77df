//! Early refusals: an upload that is not audio or video gets a 415 from its first bytes, an MP4
//! whose index comes first without an audio track a 422 once the index has arrived; neither
//! leaves anything in GridFS, the jobs or the queue. Media made by ffmpeg passes.

use serde_json::Value;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::helpers::{ffmpeg_media, test_bytes, Form, TestApp};

const USER: &str = "sniff@example.com";

/// Everything an upload could have left: files and chunks, jobs, queued messages.
async fn traces(app: &TestApp) -> (u64, u64, u64, u32) {
    let (files, chunks) = app.video_counts().await;
    (
        files,
        chunks,
        app.job_count().await,
        app.queued_messages().await,
    )
}

/// Sends `head` of a multipart upload of `file` and then, unless `stop_after` cuts it, the rest,
/// all before reading, as Python's requests does; answers status and JSON body.
async fn raw_upload(app: &TestApp, file: &[u8], stop_after: Option<usize>) -> (u16, Value) {
    let form = Form::new().file("file", "clip.mp4", "video/mp4", file);
    let content_type = form.content_type();
    let body = form.into_bytes();
    let mut stream = TcpStream::connect(app.base.trim_start_matches("http://"))
        .await
        .unwrap();
    let head = format!(
        "POST /upload HTTP/1.1\r\nHost: gateway\r\nConnection: close\r\nAuthorization: {}\r\n\
         Content-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
        app.bearer(USER),
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let part_start = find(&body, file).expect("the file is in the body");
    let sent = match stop_after {
        Some(n) => &body[..part_start + n],
        None => &body[..],
    };
    for piece in sent.chunks(64 * 1024) {
        stream
            .write_all(piece)
            .await
            .expect("the gateway reset the connection while the body was being sent");
    }
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP answer: {answer:?}"));
    let json = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    let start = json.find('{').unwrap_or(0);
    let end = json.rfind('}').map_or(json.len(), |i| i + 1);
    let value = serde_json::from_str(&json[start..end])
        .unwrap_or_else(|e| panic!("answer body is not JSON ({e}): {answer:?}"));
    (status, value)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len().min(64))
        .position(|w| w == &needle[..needle.len().min(64)])
}

/// The end of the top-level `moov` box of an MP4, if any.
fn moov_end(mp4: &[u8]) -> Option<usize> {
    let mut pos = 0usize;
    while pos + 8 <= mp4.len() {
        let size = u32::from_be_bytes(mp4[pos..pos + 4].try_into().unwrap()) as usize;
        if &mp4[pos + 4..pos + 8] == b"moov" {
            return Some(pos + size);
        }
        if size < 8 {
            return None;
        }
        pos += size;
    }
    None
}

/// A PDF, a PNG and a text file named `.mp4`, each large enough that a gateway storing it
/// would write GridFS chunks.
fn not_videos() -> Vec<(&'static str, Vec<u8>, &'static str)> {
    let mut pdf = b"%PDF-1.4\n%\xE2\xE3\xCF\xD3\n1 0 obj << /Type /Catalog >> endobj\n".to_vec();
    pdf.extend(test_bytes(600_000, 3));
    let mut png = ffmpeg_media(
        "frame.png",
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=320x240",
            "-frames:v",
            "1",
        ],
    );
    png.extend(test_bytes(600_000, 4));
    let text = "this is a text file, not a video\n"
        .repeat(20_000)
        .into_bytes();
    vec![
        (
            "pdf.mp4",
            pdf,
            "this file is a PDF document, not a video or audio file",
        ),
        (
            "png.mp4",
            png,
            "this file is a PNG image, not a video or audio file",
        ),
        (
            "text.mp4",
            text,
            "this file is a text file, not a video or audio file",
        ),
    ]
}

#[tokio::test]
async fn documents_images_and_text_get_415_and_nothing_is_stored() {
    let app = TestApp::spawn().await;
    let before = traces(&app).await;
    assert_eq!(before, (0, 0, 0, 0));
    for (name, data, sentence) in not_videos() {
        let res = app
            .upload_as(USER, Form::new().file("file", name, "video/mp4", &data))
            .await;
        assert_eq!(res.status(), 415, "{name}");
        let body: Value = res.json().await.unwrap();
        assert!(
            body["error"].as_str().unwrap().starts_with(sentence),
            "{name}: {body}"
        );
        assert_eq!(traces(&app).await, before, "{name} left something behind");
    }
}

#[tokio::test]
async fn a_client_that_sends_everything_first_reads_the_415() {
    let app = TestApp::spawn().await;
    let mut pdf = b"%PDF-1.7\n".to_vec();
    pdf.extend(test_bytes(5_000_000, 8));
    let (status, body) = raw_upload(&app, &pdf, None).await;
    assert_eq!(status, 415, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("a PDF document"),
        "{body}"
    );
    assert_eq!(traces(&app).await, (0, 0, 0, 0));
}

/// A 12-second MP4 without audio, its index first (`+faststart`) or last.
fn silent_mp4(index_first: bool) -> Vec<u8> {
    let mut args = vec![
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=640x480:rate=25:duration=12",
        "-c:v",
        "mpeg4",
        "-q:v",
        "2",
        "-an",
    ];
    if index_first {
        args.extend(["-movflags", "+faststart"]);
    }
    ffmpeg_media("silent.mp4", &args)
}

#[tokio::test]
async fn an_mp4_with_its_index_first_and_no_audio_gets_422_and_nothing_is_stored() {
    let app = TestApp::spawn().await;
    let mp4 = silent_mp4(true);
    let end = moov_end(&mp4).expect("faststart puts moov before mdat");
    assert!(end < mp4.len() / 2, "moov at the front");
    assert!(mp4.len() > 600_000, "several GridFS chunks: {}", mp4.len());

    let res = app
        .upload_as(
            USER,
            Form::new().file("file", "silent.mp4", "video/mp4", &mp4),
        )
        .await;
    assert_eq!(res.status(), 422);
    let body: Value = res.json().await.unwrap();
    assert_eq!(
        body["error"],
        "this video has no audio track, so there is nothing to convert to MP3"
    );
    assert_eq!(traces(&app).await, (0, 0, 0, 0));
}

#[tokio::test]
async fn the_422_comes_from_the_index_before_the_rest_of_the_file() {
    let app = TestApp::spawn().await;
    let mp4 = silent_mp4(true);
    let end = moov_end(&mp4).unwrap();
    // The client sends the index and a little media data (past the first bytes the content
    // check reads), then nothing more: only a verdict taken from the index can answer it, after
    // the gateway has waited for the rest in vain.
    let sent = end.max(gateway::sniff::PREFIX_BYTES) + 8000;
    assert!(sent < mp4.len() / 4);
    let (status, body) = raw_upload(&app, &mp4, Some(sent)).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(traces(&app).await, (0, 0, 0, 0));
}

#[tokio::test]
async fn an_mp4_with_its_index_last_and_no_audio_is_accepted_for_the_converter() {
    let app = TestApp::spawn().await;
    let mp4 = silent_mp4(false);
    assert!(
        moov_end(&mp4).is_some_and(|end| end == mp4.len()),
        "moov last"
    );
    let fid = app.upload_file(USER, "silent.mp4", &mp4).await;
    assert_eq!(app.stored_video(fid).await, mp4);
    assert_eq!(
        app.job(fid).await.unwrap().get_str("state").unwrap(),
        "queued"
    );
    assert_eq!(app.queued_messages().await, 1);
}

/// One second of each container the converter accepts, made by ffmpeg, with audio.
fn accepted_media() -> Vec<(&'static str, Vec<&'static str>)> {
    let a = ["-f", "lavfi", "-i", "sine=frequency=440:duration=1"];
    let v = ["-f", "lavfi", "-i", "testsrc=size=64x48:rate=25:duration=1"];
    let av = |extra: &[&'static str]| [&v[..], &a[..], extra].concat();
    let audio = |extra: &[&'static str]| [&a[..], extra].concat();
    vec![
        ("a.mp4", av(&["-c:v", "mpeg4", "-c:a", "aac"])),
        ("b.mov", av(&["-c:v", "mpeg4", "-c:a", "aac"])),
        ("c.m4a", audio(&["-c:a", "aac"])),
        ("d.mkv", av(&["-c:v", "mpeg4", "-c:a", "libvorbis"])),
        ("e.webm", audio(&["-c:a", "libopus"])),
        ("f.avi", av(&["-c:v", "mpeg4", "-c:a", "mp2"])),
        ("g.ts", av(&["-c:v", "mpeg2video", "-c:a", "mp2"])),
        ("h.mpg", av(&["-c:v", "mpeg1video", "-c:a", "mp2"])),
        ("i.flv", av(&["-c:v", "flv", "-c:a", "libmp3lame"])),
        ("j.wmv", av(&["-c:v", "msmpeg4", "-c:a", "wmav2"])),
        ("k.ogg", audio(&["-c:a", "libvorbis"])),
        ("l.wav", audio(&[])),
        ("m.w64", audio(&[])),
        ("n.aiff", audio(&[])),
        ("o.caf", audio(&["-c:a", "pcm_s16be"])),
        ("p.mp3", audio(&[])),
        ("q.mp3", audio(&["-id3v2_version", "0", "-write_xing", "0"])),
        ("r.mp2", audio(&[])),
        ("s.flac", audio(&[])),
        ("t.aac", audio(&["-c:a", "aac"])),
        ("u.ac3", audio(&["-c:a", "ac3"])),
        ("v.wv", audio(&["-c:a", "wavpack"])),
        ("w.dts", audio(&["-c:a", "dca", "-strict", "-2"])),
    ]
}

#[test]
fn every_container_the_converter_accepts_passes_the_first_bytes_check() {
    for (name, args) in accepted_media() {
        let file = ffmpeg_media(name, &args);
        let prefix = &file[..file.len().min(gateway::sniff::PREFIX_BYTES)];
        assert!(
            matches!(
                gateway::sniff::sniff(prefix),
                gateway::sniff::Sniffed::Media(_)
            ),
            "{name} refused: {:?}, starts {:02x?}",
            gateway::sniff::sniff(prefix),
            &prefix[..16.min(prefix.len())]
        );
        // The converter opens what it is given by these demuxers; an MP4 with audio and its
        // index first is judged by the index, and passes.
        if name.ends_with(".mp4") || name.ends_with(".mov") || name.ends_with(".m4a") {
            let mut scan = gateway::sniff::IndexScan::new();
            let verdict = scan.feed(&file);
            assert!(
                matches!(
                    verdict,
                    gateway::sniff::Index::HasAudio | gateway::sniff::Index::Unknown
                ),
                "{name}: {verdict:?}"
            );
        }
    }
}

#[tokio::test]
async fn real_media_uploads_pass_and_are_stored_whole() {
    let app = TestApp::spawn().await;
    let faststart = ffmpeg_media(
        "talk.mp4",
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=64x48:rate=25:duration=2",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:duration=2",
            "-c:v",
            "mpeg4",
            "-c:a",
            "aac",
            "-movflags",
            "+faststart",
        ],
    );
    let flac = ffmpeg_media(
        "song.flac",
        &["-f", "lavfi", "-i", "sine=frequency=440:duration=2"],
    );
    for (name, data) in [("talk.mp4", faststart), ("song.flac", flac)] {
        let fid = app.upload_file(USER, name, &data).await;
        assert_eq!(app.stored_video(fid).await, data, "{name}");
    }
    assert_eq!(app.queued_messages().await, 2);
}
