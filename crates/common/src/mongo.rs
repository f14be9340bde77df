//! Where the uploads and the MP3s live, from the original's variables, whether the server is one
//! the driver can talk to, and what its errors mean ([`StorageError`]).
//!
//! Precedence (the same in the gateway and the converter; `docs/gateway.md#mongodb-locations`):
//!
//! | variable | used for | database |
//! |---|---|---|
//! | `MONGODB_VIDEOS_URI` | uploads and `jobs` | the URI's path, else `videos` |
//! | `MONGODB_MP3S_URI` | MP3s | the URI's path, else `mp3s` |
//! | `MONGODB_URI` | whichever of the two is unset | `videos` / `mp3s`, whatever its path says |

use mongodb::error::ErrorKind;

use crate::{
    config::{self, ConfigError, Env},
    names::{MP3S_DB, VIDEOS_DB},
    retry::{Classify, Retry},
};

/// The variables [`MongoLocations::from_env`] reads.
pub mod var {
    crate::env_vars![MONGODB_URI, MONGODB_VIDEOS_URI, MONGODB_MP3S_URI,];
}

/// A MongoDB connection string and the database to use on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MongoLocation {
    /// Connection string, as given.
    pub uri: String,
    /// Database name: the URI's path when it has one, else the default.
    pub database: String,
}

/// The two GridFS databases: `videos` (uploads, jobs) and `mp3s` (results).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MongoLocations {
    /// Uploads, bucket `fs`, and the `jobs` collection.
    pub videos: MongoLocation,
    /// Converted MP3s, bucket `fs`.
    pub mp3s: MongoLocation,
}

impl MongoLocations {
    /// Reads `MONGODB_VIDEOS_URI` / `MONGODB_MP3S_URI` (the original gateway's, database in the
    /// path), each falling back to `MONGODB_URI` (the original converter's), which names the
    /// server only: with it the databases are `videos` and `mp3s` whatever its path says.
    pub fn from_env(env: &impl Env) -> Result<Self, ConfigError> {
        let shared = config::optional(env, var::MONGODB_URI);
        let pick = |name: &'static str, default_db: &str| -> Result<MongoLocation, ConfigError> {
            let (variable, uri) = match config::optional(env, name) {
                Some(uri) => (name, uri),
                None => (
                    var::MONGODB_URI,
                    shared.clone().ok_or(ConfigError::Missing(name))?,
                ),
            };
            if !uri.starts_with("mongodb://") && !uri.starts_with("mongodb+srv://") {
                return Err(ConfigError::Invalid {
                    name: variable,
                    reason: "must start with mongodb:// or mongodb+srv://".to_owned(),
                });
            }
            // The path of MONGODB_URI stays in the URI all the same: like pymongo, the driver
            // authenticates against it when the URI sets no authSource.
            let database = match variable {
                var::MONGODB_URI => None,
                _ => database_in_uri(&uri),
            }
            .unwrap_or_else(|| default_db.to_owned());
            Ok(MongoLocation { uri, database })
        };
        Ok(Self {
            videos: pick(var::MONGODB_VIDEOS_URI, VIDEOS_DB)?,
            mp3s: pick(var::MONGODB_MP3S_URI, MP3S_DB)?,
        })
    }
}

/// The database named in a connection string's path (`mongodb://host:27017/videos?x=y`).
fn database_in_uri(uri: &str) -> Option<String> {
    let rest = uri.split_once("://")?.1;
    let rest = rest.split(['?', '#']).next()?;
    let (_, path) = rest.split_once('/')?;
    (!path.is_empty()).then(|| path.to_owned())
}

/// The oldest MongoDB release the `mongodb` driver 3.x talks to (wire version 9).
pub const OLDEST_SUPPORTED: &str = "4.4";
/// Where the move of the data to a newer server is described.
pub const MIGRATION_DOC: &str = "docs/migrating-from-python.md";

/// A failed MongoDB operation (or a local file operation of one), and whether retrying helps.
/// The one storage error of the gateway and the converter.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// No server reachable, the connection dropped, the server is stepping down: retryable.
    #[error("MongoDB unavailable: {0}")]
    Unavailable(#[source] mongodb::error::Error),
    /// The server is older than [`OLDEST_SUPPORTED`]; the sentence says which and what to do.
    /// Nothing the operation did wrong, and no retry helps until an operator replaces it.
    #[error("{0}")]
    TooOld(String),
    /// The server or the driver refused the operation (no permission, a rejected document, a
    /// missing GridFS file): permanent.
    #[error("MongoDB error: {0}")]
    Refused(#[source] mongodb::error::Error),
    /// Reading or writing a local file, or a stream of a stored file, failed: retryable.
    #[error("file I/O: {0}")]
    Io(#[from] std::io::Error),
}

/// Result of a storage operation.
pub type StorageResult<T> = Result<T, StorageError>;

/// A copy for each request that shared one failed read (`std::io::Error` is not `Clone`: its
/// copy keeps the kind and the message).
impl Clone for StorageError {
    fn clone(&self) -> Self {
        match self {
            Self::Unavailable(e) => Self::Unavailable(e.clone()),
            Self::TooOld(sentence) => Self::TooOld(sentence.clone()),
            Self::Refused(e) => Self::Refused(e.clone()),
            Self::Io(e) => Self::Io(std::io::Error::new(e.kind(), e.to_string())),
        }
    }
}

impl From<mongodb::error::Error> for StorageError {
    fn from(e: mongodb::error::Error) -> Self {
        if let Some(sentence) = too_old(&e) {
            return Self::TooOld(sentence);
        }
        match retry_of(&e) {
            Retry::Retryable => Self::Unavailable(e),
            Retry::Permanent => Self::Refused(e),
        }
    }
}

impl Classify for StorageError {
    /// A server too old is permanent for the operation; callers that wait for an operator
    /// match [`StorageError::TooOld`] first.
    fn retry(&self) -> Retry {
        match self {
            Self::Unavailable(_) | Self::Io(_) => Retry::Retryable,
            Self::TooOld(_) | Self::Refused(_) => Retry::Permanent,
        }
    }
}

/// Server error codes that mean "not now" (the driver's retryable-read codes: shutting down,
/// stepping down, not primary, host unreachable, network timeout, exceeded time limit).
const RETRYABLE_CODES: [i32; 14] = [
    11600, 11602, 10107, 13435, 13436, 189, 91, 7, 6, 89, 9001, 134, 262, 50,
];

/// Whether a driver error passes by itself: the network, server selection, a server changing
/// roles, or anything the server labels retryable.
fn retry_of(e: &mongodb::error::Error) -> Retry {
    let transient_label = [
        mongodb::error::RETRYABLE_WRITE_ERROR,
        mongodb::error::TRANSIENT_TRANSACTION_ERROR,
    ]
    .iter()
    .any(|label| e.contains_label(label));
    let retryable = transient_label
        || match &*e.kind {
            ErrorKind::ServerSelection { .. }
            | ErrorKind::Io(_)
            | ErrorKind::ConnectionPoolCleared { .. }
            | ErrorKind::DnsResolve { .. }
            | ErrorKind::InvalidResponse { .. } => true,
            ErrorKind::Command(c) => RETRYABLE_CODES.contains(&c.code),
            ErrorKind::Write(mongodb::error::WriteFailure::WriteConcernError(c)) => {
                RETRYABLE_CODES.contains(&c.code)
            }
            _ => false,
        };
    if retryable {
        Retry::Retryable
    } else {
        Retry::Permanent
    }
}

/// The server's version (`buildInfo`), or why it cannot be used: an old server is refused by the
/// driver before any command runs, so its version comes from the driver's error instead.
pub async fn check_server(db: &mongodb::Database) -> StorageResult<String> {
    let info = db
        .run_command(mongodb::bson::doc! { "buildInfo": 1 })
        .await?;
    let version = info.get_str("version").unwrap_or("unknown").to_owned();
    match too_old_version(&version) {
        Some(sentence) => Err(StorageError::TooOld(sentence)),
        None => Ok(version),
    }
}

/// The operator's sentence when `error` is the driver refusing a server that is too old.
pub fn too_old(error: &mongodb::error::Error) -> Option<String> {
    use mongodb::error::ErrorKind;
    match &*error.kind {
        ErrorKind::ServerSelection { message, .. }
        | ErrorKind::IncompatibleServer { message, .. } => too_old_from_driver_message(message),
        _ => None,
    }
}

/// Reads the driver's refusal, `Server at HOST:PORT reports wire version N, but this version of
/// the MongoDB Rust driver requires at least 9 (MongoDB 4.4).`, into a sentence for operators.
pub fn too_old_from_driver_message(message: &str) -> Option<String> {
    let (before, after) = message.split_once(" reports wire version ")?;
    if !after.contains("driver requires at least") {
        return None;
    }
    let address = before.rsplit_once("Server at ").map(|(_, a)| a.trim());
    let wire: u32 = after
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()?;
    let release = match wire {
        0..=2 => "2.6 or older".to_owned(),
        3 => "3.0".to_owned(),
        4 => "3.2".to_owned(),
        5 => "3.4".to_owned(),
        6 => "3.6".to_owned(),
        7 => "4.0".to_owned(),
        8 => "4.2".to_owned(),
        n => format!("with wire version {n}"),
    };
    let at = address.map(|a| format!(" at {a}")).unwrap_or_default();
    Some(format!(
        "MongoDB {release}{at} (wire version {wire}) is older than {OLDEST_SUPPORTED}, \
         the oldest supported; see {MIGRATION_DOC}"
    ))
}

/// The operator's sentence when a `buildInfo` version (`4.0.8`) is older than [`OLDEST_SUPPORTED`].
pub fn too_old_version(version: &str) -> Option<String> {
    let mut parts = version.split('.').map(|p| {
        p.chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
            .parse::<u32>()
    });
    let (Some(Ok(major)), Some(Ok(minor))) = (parts.next(), parts.next()) else {
        return None;
    };
    ((major, minor) < (4, 4)).then(|| {
        format!(
            "MongoDB {version} is older than {OLDEST_SUPPORTED}, the oldest supported; \
             see {MIGRATION_DOC}"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn original_variables_name_their_databases() {
        let env = [
            (
                "MONGODB_VIDEOS_URI",
                "mongodb://host.minikube.internal:27017/videos",
            ),
            (
                "MONGODB_MP3S_URI",
                "mongodb://host.minikube.internal:27017/mp3s?authSource=admin",
            ),
        ];
        let l = MongoLocations::from_env(&env).unwrap();
        assert_eq!(l.videos.database, "videos");
        assert_eq!(l.mp3s.database, "mp3s");
        assert_eq!(
            l.mp3s.uri,
            "mongodb://host.minikube.internal:27017/mp3s?authSource=admin"
        );
    }

    #[test]
    fn shared_uri_uses_default_databases() {
        let env = [(
            "MONGODB_URI",
            "mongodb://mongodb:27017/?directConnection=true",
        )];
        let l = MongoLocations::from_env(&env).unwrap();
        assert_eq!(l.videos.database, "videos");
        assert_eq!(l.mp3s.database, "mp3s");
    }

    #[test]
    fn shared_uri_path_is_ignored_as_by_the_original_converter() {
        // The original converter's ConfigMap.
        let env = [(
            "MONGODB_URI",
            "mongodb://mohamed:mo1234@mongodb:27017/mp3s?authSource=admin",
        )];
        let l = MongoLocations::from_env(&env).unwrap();
        assert_eq!(l.videos.database, "videos");
        assert_eq!(l.mp3s.database, "mp3s");
        assert_eq!(l.videos.uri, env[0].1);
    }

    #[test]
    fn specific_uris_override_the_shared_one() {
        let env = [
            ("MONGODB_URI", "mongodb://shared:27017/mp3s"),
            ("MONGODB_MP3S_URI", "mongodb://other:27017/music"),
        ];
        let l = MongoLocations::from_env(&env).unwrap();
        assert_eq!(l.videos.uri, "mongodb://shared:27017/mp3s");
        assert_eq!(l.videos.database, "videos");
        assert_eq!(l.mp3s.uri, "mongodb://other:27017/music");
        assert_eq!(l.mp3s.database, "music");
    }

    #[test]
    fn missing_uri_names_variable() {
        let env = [("OTHER", "x")];
        let err = MongoLocations::from_env(&env).unwrap_err();
        assert_eq!(err, ConfigError::Missing("MONGODB_VIDEOS_URI"));
    }

    #[test]
    fn bad_scheme_is_invalid() {
        let env = [("MONGODB_URI", "http://x")];
        let err = MongoLocations::from_env(&env).unwrap_err().to_string();
        assert!(err.contains("MONGODB_URI"), "{err}");
    }

    #[test]
    fn errors_are_classified() {
        let away: StorageError =
            mongodb::error::Error::from(std::io::Error::from(std::io::ErrorKind::ConnectionReset))
                .into();
        assert!(matches!(away, StorageError::Unavailable(_)), "{away:?}");
        assert!(away.is_retryable());
        let refused: StorageError = mongodb::error::Error::custom("a rejected document").into();
        assert!(matches!(refused, StorageError::Refused(_)), "{refused:?}");
        assert_eq!(refused.retry(), Retry::Permanent);
        let disk: StorageError = std::io::Error::other("disk full").into();
        assert!(disk.is_retryable());
        assert_eq!(StorageError::TooOld("old".into()).retry(), Retry::Permanent);
    }

    /// The driver's text, as `mongodb` 3.9 words it (`sdam/description/server.rs`).
    const DRIVER_REFUSAL: &str = "Server at mongodb:27017 reports wire version 7, but this \
        version of the MongoDB Rust driver requires at least 9 (MongoDB 4.4).";

    #[test]
    fn the_drivers_refusal_becomes_a_sentence() {
        assert_eq!(
            too_old_from_driver_message(DRIVER_REFUSAL).unwrap(),
            "MongoDB 4.0 at mongodb:27017 (wire version 7) is older than 4.4, the oldest \
             supported; see docs/migrating-from-python.md"
        );
        assert_eq!(
            too_old_from_driver_message("Server selection timeout: No available servers."),
            None
        );
        assert!(too_old_from_driver_message(
            "Server at h:1 reports wire version 8, but this version of the MongoDB Rust driver \
             requires at least 9 (MongoDB 4.4)."
        )
        .unwrap()
        .starts_with("MongoDB 4.2 at h:1"));
    }

    #[test]
    fn versions_older_than_4_4_are_refused() {
        assert_eq!(
            too_old_version("4.0.8").unwrap(),
            "MongoDB 4.0.8 is older than 4.4, the oldest supported; see \
             docs/migrating-from-python.md"
        );
        assert!(too_old_version("3.6.23").is_some());
        for ok in [
            "4.4.0",
            "5.0.31",
            "7.0.14",
            "8.2.11",
            "10.0.0-rc1",
            "unknown",
        ] {
            assert_eq!(too_old_version(ok), None, "{ok}");
        }
    }
}
