//! `vidconv convert FILE...`: uploads the files one after another, follows each conversion while
//! the next file uploads, and downloads each MP3 as `<stem>.mp3` into the output folder.

use std::{
    collections::HashSet,
    path::{Path, PathBuf},
};

use clap::Args;
use common::states::Status;
use tokio::task::JoinSet;

use crate::{
    api::{Api, ApiError, Quality, BITRATES},
    follow::{self, Settings},
    progress::{FileBar, Output},
    Context, Fatal, EXIT_FAILED, EXIT_OK, EXIT_USAGE,
};

/// `vidconv convert`.
#[derive(Debug, Args)]
pub struct ConvertArgs {
    /// The videos to convert
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,

    /// Constant bitrate of the MP3, kb/s: 64, 96, 128, 160, 192, 224, 256 or 320 [default: the gateway's, 128]
    #[arg(long, value_parser = parse_bitrate, conflicts_with = "vbr")]
    pub bitrate: Option<u32>,

    /// Variable bitrate instead: LAME quality 0 (best) to 9
    #[arg(long, value_parser = clap::value_parser!(u8).range(0..=9))]
    pub vbr: Option<u8>,

    /// Folder for the MP3s (created when missing)
    #[arg(short, long, value_name = "DIR", default_value = ".")]
    pub output: PathBuf,

    /// Replace MP3s that already exist in the folder
    #[arg(long)]
    pub force: bool,
}

fn parse_bitrate(value: &str) -> Result<u32, String> {
    let list = || {
        BITRATES
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    match value.parse::<u32>() {
        Ok(kbps) if BITRATES.contains(&kbps) => Ok(kbps),
        _ => Err(format!("not one of the MP3 bitrates: {}", list())),
    }
}

/// How one file ended.
#[derive(Debug)]
enum Outcome {
    /// The MP3 is at this path, this many bytes.
    Saved(PathBuf, u64),
    /// It failed, for this reason.
    Failed(String),
    /// The token was refused: nothing more can work.
    Unauthorized(String),
}

/// Converts every file; the exit code (2 when the token is refused, 1 when a file failed).
pub async fn convert(context: &Context, args: ConvertArgs, output: &Output) -> Result<u8, Fatal> {
    let api = context.authenticated()?;
    std::fs::create_dir_all(&args.output).map_err(|e| {
        Fatal(format!(
            "cannot create the output folder {}: {e}",
            args.output.display()
        ))
    })?;
    let quality = match (args.bitrate, args.vbr) {
        (Some(kbps), _) => Quality::Bitrate(kbps),
        (None, Some(q)) => Quality::Vbr(q),
        (None, None) => Quality::Default,
    };

    let mut claimed = HashSet::new();
    let mut following = JoinSet::new();
    let mut tally = Tally::default();
    for input in &args.files {
        let name = display_name(input);
        if tally.refused_token.is_some() {
            let not_tried = Outcome::Failed("not tried, the token was refused".into());
            tally.report(output, &name, not_tried);
            continue;
        }
        let dest = match plan(input, &args.output, args.force, &mut claimed) {
            Ok(dest) => dest,
            Err(reason) => {
                tally.report(output, &name, Outcome::Failed(reason));
                continue;
            }
        };
        let bar = output.file_bar(&name);
        bar.uploading(std::fs::metadata(input).map(|m| m.len()).unwrap_or(0));
        tracing::debug!(file = %input.display(), "uploading");
        match api.upload(input, quality, bar.counter()).await {
            Ok(video_fid) => {
                tracing::debug!(file = %input.display(), video_fid, "uploaded");
                let api = api.clone();
                let force = args.force;
                following.spawn(async move {
                    let outcome = finish(&api, &video_fid, &dest, force, &bar).await;
                    bar.finish();
                    (name, outcome)
                });
            }
            Err(e) => {
                bar.finish();
                let outcome = match e {
                    ApiError::Unauthorized(message) => Outcome::Unauthorized(message),
                    other => Outcome::Failed(format!("upload failed: {other}")),
                };
                tally.report(output, &name, outcome);
            }
        }
    }
    while let Some(joined) = following.join_next().await {
        match joined {
            Ok((name, outcome)) => tally.report(output, &name, outcome),
            Err(e) => tally.report(
                output,
                "?",
                Outcome::Failed(format!("a conversion task stopped: {e}")),
            ),
        }
    }
    let Tally {
        saved,
        failed,
        refused_token,
    } = tally;

    if args.files.len() > 1 {
        output.say(&format!(
            "{saved} of {} converted into {}{}",
            args.files.len(),
            args.output.display(),
            if failed > 0 {
                format!(", {failed} failed")
            } else {
                String::new()
            }
        ));
    }
    if let Some(message) = refused_token {
        output.complain(&format!("vidconv: {message}"));
        return Ok(EXIT_USAGE);
    }
    Ok(if failed > 0 { EXIT_FAILED } else { EXIT_OK })
}

/// How the files ended so far.
#[derive(Default)]
struct Tally {
    saved: usize,
    failed: usize,
    /// Why the token was refused, once it was.
    refused_token: Option<String>,
}

impl Tally {
    /// Counts `outcome` and prints its line: stdout for a saved MP3, stderr for a failure.
    fn report(&mut self, output: &Output, name: &str, outcome: Outcome) {
        match outcome {
            Outcome::Saved(path, bytes) => {
                self.saved += 1;
                output.say(&format!(
                    "done   {name} -> {} ({})",
                    path.display(),
                    indicatif::HumanBytes(bytes)
                ));
            }
            Outcome::Failed(reason) => {
                self.failed += 1;
                output.complain(&format!("failed {name}: {reason}"));
            }
            Outcome::Unauthorized(message) => {
                self.failed += 1;
                output.complain(&format!("failed {name}: the token was refused"));
                self.refused_token.get_or_insert(message);
            }
        }
    }
}

/// Where the MP3 of `input` goes, or why the file is not tried: unreadable, not a file, an MP3
/// already there (without `--force`), or the same name as an earlier input's MP3.
fn plan(
    input: &Path,
    out_dir: &Path,
    force: bool,
    claimed: &mut HashSet<PathBuf>,
) -> Result<PathBuf, String> {
    let meta = std::fs::metadata(input).map_err(|e| format!("cannot read it: {e}"))?;
    if !meta.is_file() {
        return Err("not a file".into());
    }
    let stem = input
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "audio".to_owned());
    let dest = out_dir.join(format!("{stem}.mp3"));
    if !claimed.insert(dest.clone()) {
        return Err(format!(
            "an earlier file also becomes {}; rename one",
            dest.display()
        ));
    }
    if !force && dest.exists() {
        return Err(format!(
            "{} already exists; not overwritten (use --force to replace it)",
            dest.display()
        ));
    }
    Ok(dest)
}

/// Follows the conversion of `video_fid` and downloads its MP3 to `dest`.
async fn finish(api: &Api, video_fid: &str, dest: &Path, force: bool, bar: &FileBar) -> Outcome {
    let status =
        match follow::follow(api, video_fid, &Settings::default(), |u| bar.update(&u)).await {
            Ok(status) => status,
            Err(ApiError::Unauthorized(message)) => return Outcome::Unauthorized(message),
            Err(e) => return Outcome::Failed(format!("lost track of the conversion: {e}")),
        };
    if status.status == Status::Failed {
        return Outcome::Failed(format!(
            "conversion failed: {}",
            status
                .error
                .unwrap_or_else(|| "the gateway gave no reason".into())
        ));
    }
    let Some(mp3_fid) = status.mp3_fid else {
        return Outcome::Failed(
            "the conversion completed but the gateway did not say which MP3 to download".into(),
        );
    };
    bar.downloading(0);
    let counter = bar.counter();
    let downloaded = api
        .download(
            &mp3_fid,
            dest,
            force,
            |total| bar.downloading(total),
            |n| counter(n),
        )
        .await;
    match downloaded {
        Ok(bytes) => Outcome::Saved(dest.to_owned(), bytes),
        Err(ApiError::Unauthorized(message)) => Outcome::Unauthorized(message),
        Err(ApiError::Io { source, .. }) if source.kind() == std::io::ErrorKind::AlreadyExists => {
            Outcome::Failed(format!(
                "{} appeared meanwhile; not overwritten (use --force to replace it)",
                dest.display()
            ))
        }
        Err(e) => Outcome::Failed(format!("download failed: {e}")),
    }
}

fn display_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bitrates_are_checked() {
        assert_eq!(parse_bitrate("192"), Ok(192));
        assert!(parse_bitrate("100").unwrap_err().contains("64, 96"));
        assert!(parse_bitrate("x").is_err());
    }

    #[test]
    fn plan_refuses_existing_and_duplicate_outputs() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.mp4");
        std::fs::write(&a, b"x").unwrap();
        let other = dir.path().join("sub");
        std::fs::create_dir(&other).unwrap();
        let b = other.join("a.mkv");
        std::fs::write(&b, b"x").unwrap();
        let out = dir.path().join("out");
        std::fs::create_dir(&out).unwrap();

        let mut claimed = HashSet::new();
        assert_eq!(plan(&a, &out, false, &mut claimed), Ok(out.join("a.mp3")));
        assert!(plan(&b, &out, false, &mut claimed)
            .unwrap_err()
            .contains("also becomes"));

        std::fs::write(out.join("a.mp3"), b"old").unwrap();
        let mut claimed = HashSet::new();
        assert!(plan(&a, &out, false, &mut claimed)
            .unwrap_err()
            .contains("--force"));
        let mut claimed = HashSet::new();
        assert_eq!(plan(&a, &out, true, &mut claimed), Ok(out.join("a.mp3")));
        assert!(
            plan(&dir.path().join("missing.mp4"), &out, true, &mut claimed)
                .unwrap_err()
                .contains("cannot read")
        );
        assert_eq!(
            plan(&other, &out, true, &mut claimed),
            Err("not a file".to_owned())
        );
    }
}
