use std::{
    process::{Child, Command, Stdio},
    time::Duration,
};

use crate::helpers::{closed_port, streamed_form, Options, TestApp};

const MIB: u64 = 1024 * 1024;
/// Disk the 1 GiB upload needs in the stand-in's directory.
const NEEDS_FREE: u64 = 4 * 1024 * MIB;

/// A child process, killed when the test ends however it ends.
struct Gateway(Child);

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Peak resident set size of `pid` so far (VmHWM), in bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .expect("VmHWM in /proc/<pid>/status");
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap();
    kib * 1024
}

async fn upload(app: &TestApp, base: &str, len: u64) {
    let (content_type, stream) = streamed_form("big.mp4", len);
    let res = app
        .http
        .post(format!("{base}/upload"))
        .header("authorization", app.bearer("mem@example.com"))
        .header("content-type", content_type)
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
}

/// A SecantusDB of this test's own, on disk with a short oplog: the shared in-memory stand-in
/// cannot hold 1 GiB of chunks plus their oplog entries in its cache. (A real MongoDB needs no
/// such thing; this is test set-up only.)
fn own_mongo(dir: &std::path::Path) -> (Gateway, String) {
    let secantus = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../.stack/secantus/bin/secantusd-py"
    );
    let port = closed_port();
    let child = Command::new(secantus)
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .arg("--storage-path")
        .arg(dir)
        .args(["--cache-size", "256M", "--log-level", "ERROR"])
        .args([
            "--oplog-max-entries",
            "200",
            "--oplog-retention-seconds",
            "30",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("SecantusDB installed by scripts/test-deps.sh");
    (
        Gateway(child),
        format!("mongodb://127.0.0.1:{port}/?directConnection=true"),
    )
}

/// Bytes free on the file system of `dir` (`df`: the test needs no crate for one number).
fn free_bytes(dir: &std::path::Path) -> u64 {
    let out = Command::new("df")
        .args(["--output=avail", "-B1"])
        .arg(dir)
        .output()
        .expect("df (coreutils)");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .nth(1)
        .and_then(|l| l.trim().parse().ok())
        .expect("df --output=avail prints a number")
}

async fn wait_for_port(port: u16) {
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("nothing listens on port {port}");
}

#[tokio::test]
async fn a_1_gib_upload_streams_with_flat_peak_memory() {
    let app = TestApp::spawn_with(Options {
        no_gateway: true,
        max_upload_bytes: Some(2048 * MIB),
        ..Options::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    // 1 GiB of chunks, their oplog entries and the stand-in's checkpoints: on a full disk the
    // stand-in fails in ways that read like a gateway fault, so say what is missing first.
    let free = free_bytes(dir.path());
    assert!(
        free >= NEEDS_FREE,
        "this test stores 1 GiB in a SecantusDB under {}: it needs {} GiB free there, {:.1} GiB are \
         (set TMPDIR to a larger file system)",
        dir.path().display(),
        NEEDS_FREE / 1024 / MIB,
        free as f64 / (1024 * MIB) as f64
    );
    let (_mongo, mongo_uri) = own_mongo(dir.path());
    let mongo_port: u16 = mongo_uri
        .rsplit(':')
        .next()
        .and_then(|p| p.split('/').next())
        .and_then(|p| p.parse().ok())
        .unwrap();
    wait_for_port(mongo_port).await;
    let port = closed_port();
    let child = Command::new(env!("CARGO_BIN_EXE_gateway"))
        .env_clear()
        .envs(&app.env)
        .env_remove("MONGODB_VIDEOS_URI")
        .env_remove("MONGODB_MP3S_URI")
        .env("MONGODB_URI", &mongo_uri)
        .env("GATEWAY_ADDR", format!("127.0.0.1:{port}"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let gateway = Gateway(child);
    let base = format!("http://127.0.0.1:{port}");
    let mut up = false;
    for _ in 0..100 {
        if app
            .http
            .get(format!("{base}/healthz"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(up, "the gateway binary did not come up");

    // Warm up every code path with a small upload, then measure the large one against it.
    upload(&app, &base, 8 * MIB).await;
    let after_small = peak_rss(gateway.0.id());
    upload(&app, &base, 1024 * MIB).await;
    let after_large = peak_rss(gateway.0.id());

    let growth = after_large.saturating_sub(after_small);
    assert!(
        growth < 32 * MIB,
        "peak RSS grew by {} MiB for a 1 GiB upload ({} -> {} MiB)",
        growth / MIB,
        after_small / MIB,
        after_large / MIB
    );
    assert!(
        after_large < 128 * MIB,
        "peak RSS {} MiB",
        after_large / MIB
    );
    let videos = mongodb::Client::with_uri_str(&mongo_uri)
        .await
        .unwrap()
        .database("videos");
    let files = videos.collection::<mongodb::bson::Document>("fs.files");
    assert_eq!(
        files.count_documents(mongodb::bson::doc! {}).await.unwrap(),
        2
    );
    let file = files
        .find_one(mongodb::bson::doc! { "length": 1024 * MIB as i64 })
        .await
        .unwrap();
    assert!(file.is_some(), "the 1 GiB file is stored whole");
}
