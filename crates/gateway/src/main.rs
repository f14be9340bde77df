//! The gateway binary: configuration from the environment, then serve until SIGTERM.

use gateway::{Application, Config};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    common::telemetry::init("gateway");
    let config = match Config::from_env(&common::config::ProcessEnv) {
        Ok(config) => config,
        Err(e) => {
            tracing::error!("{e}");
            std::process::exit(1);
        }
    };
    let app = Application::build(config).await?;
    app.run_until_stopped().await
}
