//! The saved login: `<config dir>/vidconv/credentials.json` (`~/.config` on Linux, or
//! `$XDG_CONFIG_HOME`), readable by its owner only.

use std::{
    io::Write,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};

/// What `vidconv login` saves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Credentials {
    /// The gateway the token is for.
    pub url: String,
    /// Who logged in.
    pub email: String,
    /// The JWT.
    pub token: String,
}

/// Where the credentials live, or `None` when the system names no config directory.
pub fn default_path() -> Option<PathBuf> {
    dirs::config_dir().map(|dir| dir.join("vidconv").join("credentials.json"))
}

/// The saved credentials at `path`; `None` when there are none.
pub fn load(path: &Path) -> std::io::Result<Option<Credentials>> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{} is not a credentials file: {e}", path.display()),
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Saves `credentials` at `path` with mode 0600 (a temporary file, created 0600, renamed over
/// the old one, so no reader ever sees half a file); the folder is created 0700 when missing.
pub fn save(path: &Path, credentials: &Credentials) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    create_private_dir(dir)?;
    let mut file = tempfile::Builder::new()
        .prefix(".credentials-")
        .tempfile_in(dir)?;
    let json = serde_json::to_vec_pretty(credentials).map_err(std::io::Error::other)?;
    file.write_all(&json)?;
    file.as_file().sync_all()?;
    file.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// Removes the saved credentials; `false` when there were none.
pub fn remove(path: &Path) -> std::io::Result<bool> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(unix)]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

#[cfg(not(unix))]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saves_loads_and_removes_owner_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vidconv").join("credentials.json");
        assert_eq!(load(&path).unwrap(), None);
        let credentials = Credentials {
            url: "http://localhost:30002".into(),
            email: "me@example.com".into(),
            token: "a.b.c".into(),
        };
        save(&path, &credentials).unwrap();
        save(&path, &credentials).unwrap();
        assert_eq!(load(&path).unwrap(), Some(credentials));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(remove(&path).unwrap());
        assert!(!remove(&path).unwrap());
    }
}
