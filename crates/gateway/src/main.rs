//! The gateway binary: configuration from the environment, then serve until SIGTERM.
//! `--print-config-keys` prints the environment variables it reads instead;
//! `--print-openapi` prints the OpenAPI document `/openapi.json` serves (the frontend generates
//! its API types from it).

use std::process::ExitCode;

use gateway::{Application, Config};

#[tokio::main]
async fn main() -> ExitCode {
    if std::env::args()
        .skip(1)
        .any(|arg| arg == "--print-config-keys")
    {
        return common::config::print_keys(&Config::keys());
    }
    if std::env::args().skip(1).any(|arg| arg == "--print-openapi") {
        return print_openapi();
    }
    common::telemetry::init("gateway");
    let config = match Config::from_env(&common::config::ProcessEnv) {
        Ok(config) => config,
        Err(e) => {
            tracing::error!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let result = async { Application::build(config).await?.run_until_stopped().await }.await;
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("gateway failed: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Writes the OpenAPI document to stdout as JSON.
fn print_openapi() -> ExitCode {
    use std::io::Write;
    let doc = gateway::openapi::document();
    let mut out = std::io::stdout().lock();
    let written = serde_json::to_writer_pretty(&mut out, &doc)
        .map_err(std::io::Error::from)
        .and_then(|()| writeln!(out))
        .and_then(|()| out.flush());
    match written {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) => ExitCode::FAILURE,
    }
}
