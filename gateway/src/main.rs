//! The `artifact-store` binary.

use std::process::ExitCode;

use artifact_store_gateway::cli::{self, Cli};
use artifact_store_gateway::telemetry;
use clap::Parser as _;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match cli.load_config() {
        Ok(config) => config,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::from(cli::EXIT_ERROR);
        }
    };
    if let Err(err) = telemetry::init(&config.log) {
        eprintln!("error: invalid log settings: {err}");
        return ExitCode::from(cli::EXIT_ERROR);
    }
    cli::run(cli, config).await
}
