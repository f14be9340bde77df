//! The `auth` binary: configuration from the environment, then the service until SIGTERM.
//! `--print-config-keys` prints the environment variables it reads instead.

use std::process::ExitCode;

use auth::{Application, Config};

#[tokio::main]
async fn main() -> ExitCode {
    if std::env::args()
        .skip(1)
        .any(|arg| arg == "--print-config-keys")
    {
        return common::config::print_keys(&Config::keys());
    }
    common::telemetry::init("auth");
    let config = match Config::from_env(&common::config::ProcessEnv) {
        Ok(config) => config,
        Err(e) => {
            tracing::error!("configuration error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = async { Application::build(config).await?.run_until_stopped().await }.await;
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("auth failed: {e:#}");
            ExitCode::FAILURE
        }
    }
}
