//! Scratch space for temporary files: one directory per process under `CONVERTER_TMP_DIR`.
//!
//! Temporary files are removed when their handles drop (tempfile RAII), on success and on every
//! error. Only a killed process leaves files behind; its directory is named after its pid, so the
//! next converter to start on the same directory removes the directories of dead processes.

use std::path::{Path, PathBuf};

/// Prefix of the per-process directories.
const PREFIX: &str = "converter-";

/// Creates `<base>/converter-<pid>` after sweeping the directories of processes that are gone.
pub fn process_dir(base: &Path) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(base)?;
    sweep(base);
    let dir = base.join(format!("{PREFIX}{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// Removes this process' directory on a clean exit.
pub fn remove_process_dir(dir: &Path) {
    if let Err(e) = std::fs::remove_dir_all(dir) {
        tracing::debug!(error = %e, dir = %dir.display(), "scratch directory not removed");
    }
}

/// The pid in a scratch directory name, if it is one.
pub fn pid_of(name: &str) -> Option<u32> {
    name.strip_prefix(PREFIX)?.parse().ok()
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
        assert_eq!(pid_of("converter-123"), Some(123));
        assert_eq!(pid_of("converter-x"), None);
        assert_eq!(pid_of("other-123"), None);
    }

    #[test]
    fn stale_directories_are_swept_and_live_ones_kept() {
        let base = tempfile::tempdir().unwrap();
        // Pid numbers above the kernel's pid_max never run.
        let stale = base.path().join("converter-4294967");
        std::fs::create_dir_all(stale.join("sub")).unwrap();
        std::fs::write(stale.join("sub/f"), b"x").unwrap();
        let unrelated = base.path().join("keep-me");
        std::fs::create_dir_all(&unrelated).unwrap();

        let mine = process_dir(base.path()).unwrap();
        assert!(mine.exists());
        assert!(!stale.exists());
        assert!(unrelated.exists());
        // A second start in the same process keeps the live directory.
        assert_eq!(process_dir(base.path()).unwrap(), mine);
        assert!(mine.exists());
        remove_process_dir(&mine);
        assert!(!mine.exists());
    }
}
