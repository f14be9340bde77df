//! Where the uploads and the MP3s live, from the original's variables.

use crate::config::{self, ConfigError, Env};

/// Database of the uploads (and of the `jobs` collection) when the URI names none.
pub const DEFAULT_VIDEOS_DB: &str = "videos";
/// Database of the MP3s when the URI names none.
pub const DEFAULT_MP3S_DB: &str = "mp3s";

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
    /// Reads `MONGODB_VIDEOS_URI` / `MONGODB_MP3S_URI` (the original's, database in the path),
    /// each falling back to `MONGODB_URI` with the databases `videos` and `mp3s`.
    pub fn from_env(env: &impl Env) -> Result<Self, ConfigError> {
        let shared = config::optional(env, "MONGODB_URI");
        let pick = |name: &'static str, default_db: &str| -> Result<MongoLocation, ConfigError> {
            let uri = config::optional(env, name)
                .or_else(|| shared.clone())
                .ok_or(ConfigError::Missing(name))?;
            if !uri.starts_with("mongodb://") && !uri.starts_with("mongodb+srv://") {
                return Err(ConfigError::Invalid {
                    name,
                    reason: "must start with mongodb:// or mongodb+srv://".to_owned(),
                });
            }
            let database = database_in_uri(&uri).unwrap_or_else(|| default_db.to_owned());
            Ok(MongoLocation { uri, database })
        };
        Ok(Self {
            videos: pick("MONGODB_VIDEOS_URI", DEFAULT_VIDEOS_DB)?,
            mp3s: pick("MONGODB_MP3S_URI", DEFAULT_MP3S_DB)?,
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
    fn missing_uri_names_variable() {
        let env = [("OTHER", "x")];
        let err = MongoLocations::from_env(&env).unwrap_err();
        assert_eq!(err, ConfigError::Missing("MONGODB_VIDEOS_URI"));
    }

    #[test]
    fn bad_scheme_is_invalid() {
        let env = [("MONGODB_URI", "http://x")];
        assert!(MongoLocations::from_env(&env).is_err());
    }
}
