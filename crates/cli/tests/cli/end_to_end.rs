//! Register, log in, convert a real video and a broken file through the real auth, gateway and
//! converter; a refused token and a wrong password.

use crate::helpers::{files_in, make_video, probe, vidconv, Stack};

const PASSWORD: &str = "correct-horse-battery\n";

fn unique_email() -> String {
    format!("cli-{}@example.com", uuid::Uuid::new_v4().simple())
}

#[tokio::test(flavor = "multi_thread")]
async fn converts_a_video_and_reports_a_broken_file_with_exit_code_1() {
    let stack = Stack::spawn().await;
    let home = stack.path().join("home");
    let email = unique_email();

    // Arrange: an account, logged in by `register`, the token saved owner-only.
    let run = vidconv(
        &home,
        &["--url", &stack.url, "register", &email, "--password-stdin"],
        &[],
        PASSWORD,
    )
    .await;
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout.contains(&format!("Account created for {email}")),
        "{run:?}"
    );
    let saved_path = home.join("vidconv").join("credentials.json");
    let saved: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&saved_path).unwrap()).unwrap();
    assert_eq!(saved["url"], stack.url.as_str());
    assert_eq!(saved["email"], email.as_str());
    assert_eq!(saved["token"].as_str().unwrap().split('.').count(), 3);
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&saved_path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "credentials mode {mode:o}");
    }
    let media = stack.path().join("media");
    std::fs::create_dir(&media).unwrap();
    let video = make_video(&media, "lecture.mp4", 3);
    let broken = media.join("broken.mp4");
    std::fs::write(&broken, b"this is a text file, not a video\n".repeat(200)).unwrap();
    let out = stack.path().join("mp3s");

    // Act: no --url: the saved login says where the gateway is.
    let run = vidconv(
        &home,
        &[
            "convert",
            video.to_str().unwrap(),
            broken.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--bitrate",
            "192",
        ],
        &[],
        "",
    )
    .await;

    // Assert: one MP3, one clear failure, exit code 1.
    assert_eq!(run.code, 1, "{run:?}");
    let mp3 = out.join("lecture.mp3");
    assert!(
        run.stdout
            .contains(&format!("done   lecture.mp4 -> {}", mp3.display())),
        "{run:?}"
    );
    assert!(run.stdout.contains("1 of 2 converted"), "{run:?}");
    let failure = run
        .stderr
        .lines()
        .find(|l| l.starts_with("failed broken.mp4: "))
        .unwrap_or_else(|| panic!("no failure line for broken.mp4: {run:?}"));
    assert!(
        failure.len() > "failed broken.mp4: ".len() + 10,
        "{failure}"
    );
    assert_eq!(
        files_in(&out),
        ["lecture.mp3"],
        "only the MP3, no partial files"
    );
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&mp3).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o644, "MP3 mode {mode:o}");
    }
    let (codec, bit_rate, duration) = probe(&mp3);
    assert_eq!(codec, "mp3");
    assert_eq!(bit_rate, 192_000);
    assert!((duration - 3.0).abs() < 0.2, "duration {duration}");

    // Again: the MP3 stays as it is without --force, and nothing is uploaded.
    let before = std::fs::read(&mp3).unwrap();
    let run = vidconv(
        &home,
        &[
            "convert",
            video.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ],
        &[],
        "",
    )
    .await;
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stderr.contains("already exists"), "{run:?}");
    assert!(run.stderr.contains("--force"), "{run:?}");
    assert_eq!(std::fs::read(&mp3).unwrap(), before);

    // Logging out forgets the token: converting is then a login error.
    let run = vidconv(&home, &["logout"], &[], "").await;
    assert_eq!(run.code, 0, "{run:?}");
    assert!(!saved_path.exists());
    let run = vidconv(
        &home,
        &["--url", &stack.url, "convert", video.to_str().unwrap()],
        &[],
        "",
    )
    .await;
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("not logged in"), "{run:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_token_or_password_exits_with_2() {
    let stack = Stack::spawn().await;
    let home = stack.path().join("home");
    let media = stack.path().join("media");
    std::fs::create_dir(&media).unwrap();
    let first = make_video(&media, "one.mp4", 1);
    let second = make_video(&media, "two.mp4", 1);
    let out = stack.path().join("out");

    let run = vidconv(
        &home,
        &[
            "convert",
            first.to_str().unwrap(),
            second.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ],
        &[
            ("VIDCONV_URL", &stack.url),
            ("VIDCONV_TOKEN", "not.a.token"),
        ],
        "",
    )
    .await;
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("refused the token"), "{run:?}");
    assert!(run.stderr.contains("vidconv login"), "{run:?}");
    assert!(
        run.stderr.contains("failed two.mp4: not tried"),
        "the second file is not uploaded: {run:?}"
    );
    assert!(files_in(&out).is_empty());

    // A wrong password.
    let email = unique_email();
    let run = vidconv(
        &home,
        &[
            "--url",
            &stack.url,
            "register",
            &email,
            "--password-stdin",
            "--no-login",
        ],
        &[],
        PASSWORD,
    )
    .await;
    assert_eq!(run.code, 0, "{run:?}");
    let run = vidconv(
        &home,
        &["--url", &stack.url, "login", &email, "--password-stdin"],
        &[],
        "not-the-password\n",
    )
    .await;
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("wrong email or password"), "{run:?}");
    assert!(!home.join("vidconv").join("credentials.json").exists());

    // --print: the token on stdout, for `export VIDCONV_TOKEN=...`, and nothing saved.
    let run = vidconv(
        &home,
        &[
            "--url",
            &stack.url,
            "login",
            &email,
            "--password-stdin",
            "--print",
        ],
        &[],
        PASSWORD,
    )
    .await;
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.stdout.trim().split('.').count(), 3, "{run:?}");
    assert!(!home.join("vidconv").join("credentials.json").exists());
}
