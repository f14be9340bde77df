//! The `vidconv` binary: parses the command line and hands it to the library.

use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    vidconv::init_tracing();
    vidconv::run(vidconv::Cli::parse()).await
}
