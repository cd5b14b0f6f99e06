//! The `artifact-store` binary.

use std::process::ExitCode;
use std::time::Duration;

use artifact_store_gateway::cli::{self, Cli};
use artifact_store_gateway::telemetry;
use clap::Parser as _;

/// How long the process waits, once a command is done, for blocking work nobody awaits: a
/// background check's replay of the log (read-only) may be left. Everything a write needs is
/// awaited before the command returns.
const LEFTOVER_WORK_TIMEOUT: Duration = Duration::from_secs(1);

fn main() -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::from(cli::EXIT_ERROR);
        }
    };
    let code = runtime.block_on(run());
    // Dropping the runtime would wait for every blocking task: a stop right after a start
    // would wait for the views check's whole replay.
    runtime.shutdown_timeout(LEFTOVER_WORK_TIMEOUT);
    code
}

async fn run() -> ExitCode {
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
