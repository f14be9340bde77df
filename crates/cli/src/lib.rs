//! `vidconv`, the command-line client of the video-to-MP3 gateway: log in once, then convert
//! files with progress bars for the upload and the conversion, and find the MP3s in a folder.
//!
//! Exit codes: 0 every file converted, 1 some file failed, 2 a usage, login or configuration
//! error (nothing, or not everything, was tried).

pub mod api;
pub mod commands;
pub mod credentials;
pub mod follow;
pub mod progress;

use std::{path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};

use crate::{
    api::{Api, ApiError},
    credentials::Credentials,
};

/// Where the gateway is when neither `--url`, `VIDCONV_URL` nor a saved login says.
pub const DEFAULT_URL: &str = "http://localhost:30002";

/// Every file converted (or the command succeeded).
pub const EXIT_OK: u8 = 0;
/// At least one file failed; the others were converted.
pub const EXIT_FAILED: u8 = 1;
/// Bad usage, not logged in, a refused token or password, an unusable configuration.
pub const EXIT_USAGE: u8 = 2;

/// Convert videos to MP3 through the vidconv gateway.
#[derive(Debug, Parser)]
#[command(name = "vidconv", version, propagate_version = true)]
pub struct Cli {
    /// The gateway's URL [default: the saved login's, else http://localhost:30002]
    #[arg(long, env = "VIDCONV_URL", global = true)]
    pub url: Option<String>,

    /// A token (JWT) to use instead of the saved login
    #[arg(long, env = "VIDCONV_TOKEN", global = true, hide_env_values = true)]
    pub token: Option<String>,

    /// The saved login's file [default: <config dir>/vidconv/credentials.json]
    #[arg(long, env = "VIDCONV_CREDENTIALS", global = true)]
    pub credentials: Option<PathBuf>,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Log in and save the token (owner-only file), or print it with --print
    Login(commands::account::LoginArgs),
    /// Create an account, then log in as `login` does
    Register(commands::account::RegisterArgs),
    /// Forget the saved token
    Logout,
    /// Convert videos to MP3: upload each, follow its conversion, download the MP3
    Convert(commands::convert::ConvertArgs),
}

/// A command's end that is not about individual files: printed as `vidconv: <message>`, exit 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Fatal(pub String);

impl From<ApiError> for Fatal {
    fn from(e: ApiError) -> Self {
        Fatal(e.to_string())
    }
}

/// What the commands share: the gateway's URL, the token and where logins are saved.
#[derive(Debug, Clone)]
pub struct Context {
    /// The gateway's base URL.
    pub url: String,
    /// The token, from `--token`/`VIDCONV_TOKEN` or the saved login for this URL.
    pub token: Option<String>,
    /// Where logins are saved.
    pub credentials_path: Option<PathBuf>,
}

impl Context {
    /// Reads the saved login (if any) and settles the URL and token.
    pub fn resolve(cli: &Cli) -> Result<Context, Fatal> {
        let credentials_path = cli.credentials.clone().or_else(credentials::default_path);
        let saved: Option<Credentials> = match &credentials_path {
            Some(path) => credentials::load(path)
                .map_err(|e| Fatal(format!("cannot read the saved login: {e}")))?,
            None => None,
        };
        let url = cli
            .url
            .clone()
            .or_else(|| saved.as_ref().map(|c| c.url.clone()))
            .unwrap_or_else(|| DEFAULT_URL.to_owned());
        let url = url.trim().trim_end_matches('/').to_owned();
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(Fatal(format!(
                "the gateway URL must start with http:// or https://, not `{url}` (--url or VIDCONV_URL)"
            )));
        }
        // A saved token belongs to the gateway it came from.
        let token = cli
            .token
            .clone()
            .filter(|t| !t.trim().is_empty())
            .or_else(|| {
                saved
                    .filter(|c| c.url.trim_end_matches('/') == url)
                    .map(|c| c.token)
            });
        Ok(Context {
            url,
            token,
            credentials_path,
        })
    }

    /// A client without a token.
    pub fn anonymous(&self) -> Result<Api, Fatal> {
        Ok(Api::new(&self.url, None)?)
    }

    /// A client with the token; without one, says how to log in.
    pub fn authenticated(&self) -> Result<Api, Fatal> {
        let Some(token) = self.token.clone() else {
            return Err(Fatal(format!(
                "not logged in to {}: run `vidconv login EMAIL`, or set VIDCONV_TOKEN",
                self.url
            )));
        };
        Ok(Api::new(&self.url, Some(token))?)
    }

    /// Where logins are saved; an error when the system names no config directory.
    pub fn credentials_path(&self) -> Result<&PathBuf, Fatal> {
        self.credentials_path.as_ref().ok_or_else(|| {
            Fatal(
                "no config directory to save the login in: pass --credentials FILE, or use --print"
                    .into(),
            )
        })
    }
}

/// Logs to stderr, filtered by `RUST_LOG` (default: warnings only).
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Runs the command line; the process's exit code.
pub async fn run(cli: Cli) -> ExitCode {
    let output = progress::Output::new(true);
    let result = match Context::resolve(&cli) {
        Ok(context) => match cli.command {
            Command::Login(args) => commands::account::login(&context, args, &output).await,
            Command::Register(args) => commands::account::register(&context, args, &output).await,
            Command::Logout => commands::account::logout(&context, &output),
            Command::Convert(args) => commands::convert::convert(&context, args, &output).await,
        },
        Err(fatal) => Err(fatal),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(Fatal(message)) => {
            output.complain(&format!("vidconv: {message}"));
            ExitCode::from(EXIT_USAGE)
        }
    }
}
