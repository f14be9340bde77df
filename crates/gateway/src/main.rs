//! The gateway binary: configuration from the environment, then serve until SIGTERM.
//! `--print-config-keys` prints the environment variables it reads instead.

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
