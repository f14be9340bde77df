//! Scratch space for temporary files: one directory per running application under
//! `CONVERTER_TMP_DIR`, made when it is built and removed when it is dropped.
//!
//! Temporary files are removed when their handles drop (tempfile RAII), on success and on every
//! error. Only a killed process leaves files behind; its directories carry its pid
//! (`converter-<pid>-<random>`), so the next converter to start on the same directory removes
//! the directories of dead processes. Several applications in one process (tests) each have
//! their own directory, so one stopping never pulls the files from under another.

use std::path::Path;

use tempfile::{NamedTempFile, TempDir};

/// Prefix of the per-application directories.
const PREFIX: &str = "converter-";

/// One application's scratch directory; removed with everything in it on drop.
#[derive(Debug)]
pub struct Scratch {
    dir: TempDir,
}

impl Scratch {
    /// Creates `<base>/converter-<pid>-<random>` after sweeping the directories of processes
    /// that are gone.
    pub fn create(base: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(base)?;
        sweep(base);
        let dir = tempfile::Builder::new()
            .prefix(&format!("{PREFIX}{}-", std::process::id()))
            .tempdir_in(base)?;
        Ok(Self { dir })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// A new empty file in the directory, named `<prefix>…<suffix>`, removed when dropped.
    pub fn file(&self, prefix: &str, suffix: &str) -> std::io::Result<NamedTempFile> {
        tempfile::Builder::new()
            .prefix(prefix)
            .suffix(suffix)
            .tempfile_in(self.dir.path())
    }
}

/// The pid in a scratch directory name (`converter-<pid>-<random>`, or `converter-<pid>` as
/// earlier versions named theirs), if it is one.
pub fn pid_of(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(PREFIX)?;
    rest.split_once('-')
        .map_or(rest, |(pid, _)| pid)
        .parse()
        .ok()
}

fn sweep(base: &Path) {
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(pid_of) else {
            continue;
        };
        // /proc tells whether the pid still runs (Linux, where the service is deployed).
        let alive = Path::new("/proc").join(pid.to_string()).exists();
        if !alive && pid != std::process::id() {
            tracing::info!(dir = %entry.path().display(), "removing files left by a dead converter");
            if let Err(e) = std::fs::remove_dir_all(entry.path()) {
                tracing::warn!(error = %e, "could not remove stale scratch files");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pids_from_names() {
        assert_eq!(pid_of("converter-123-a1b2c3"), Some(123));
        assert_eq!(pid_of("converter-123"), Some(123));
        assert_eq!(pid_of("converter-x"), None);
        assert_eq!(pid_of("other-123"), None);
    }

    #[test]
    fn stale_directories_are_swept_and_live_ones_kept() {
        let base = tempfile::tempdir().unwrap();
        // Pid numbers above the kernel's pid_max never run.
        let stale = base.path().join("converter-4294967-abc");
        std::fs::create_dir_all(stale.join("sub")).unwrap();
        std::fs::write(stale.join("sub/f"), b"x").unwrap();
        let stale_old_style = base.path().join("converter-4294968");
        std::fs::create_dir_all(&stale_old_style).unwrap();
        let unrelated = base.path().join("keep-me");
        std::fs::create_dir_all(&unrelated).unwrap();

        let mine = Scratch::create(base.path()).unwrap();
        assert!(mine.path().exists());
        assert!(!stale.exists());
        assert!(!stale_old_style.exists());
        assert!(unrelated.exists());
        // A second application in the same process gets its own directory and keeps ours.
        let other = Scratch::create(base.path()).unwrap();
        assert_ne!(other.path(), mine.path());
        assert!(mine.path().exists());
        let file = mine.file("converter-in-", "").unwrap();
        assert!(file.path().starts_with(mine.path()));
        drop(other);
        assert!(mine.path().exists(), "the other's removal left ours alone");
        let dir = mine.path().to_owned();
        drop(file);
        drop(mine);
        assert!(!dir.exists());
    }
}
