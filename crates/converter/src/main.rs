//! The converter binary: configuration from the environment, then the service until SIGTERM.
//! `--print-config-keys` prints the environment variables it reads instead.

use std::process::ExitCode;

use converter::{Application, Config};

#[tokio::main]
async fn main() -> ExitCode {
    if std::env::args()
        .skip(1)
        .any(|arg| arg == "--print-config-keys")
    {
        return common::config::print_keys(&Config::keys());
    }
    common::telemetry::init("converter");
    let config = match Config::from_env(&common::config::ProcessEnv) {
        Ok(config) => config,
        Err(e) => {
            tracing::error!(error = %e, "invalid configuration");
            return ExitCode::from(1);
        }
    };
    let result = match Application::build(config).await {
        Ok(app) => {
            tracing::info!(port = app.port(), "converter listening");
            app.run_until_stopped().await
        }
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "converter stopped with an error");
            ExitCode::FAILURE
        }
    }
}
