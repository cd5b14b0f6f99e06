//! The command line: `artifact-store <command>`. Flags beat environment beat the config file
//! (see [`crate::config`]).
//!
//! Exit codes: [`EXIT_OK`], [`EXIT_CHECK_FAILED`] (a check such as `verify` found a problem),
//! [`EXIT_ERROR`] (usage or runtime error; clap also uses 2 for usage errors).

pub mod serve;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{Config, ConfigError, LogFormat};

/// Success.
pub const EXIT_OK: u8 = 0;
/// A check ran and failed.
pub const EXIT_CHECK_FAILED: u8 = 1;
/// Usage or runtime error.
pub const EXIT_ERROR: u8 = 2;

/// artifact-store: an S3-compatible gateway that records who stored and fetched what.
#[derive(Debug, Parser)]
#[command(name = "artifact-store", version, about)]
pub struct Cli {
    /// TOML configuration file.
    #[arg(long, global = true, env = "ARTIFACT_STORE_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Directory for blobs, the registry and generated credentials [default: ./artifact-store-data].
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// Log line format [default: text].
    #[arg(long, global = true, value_enum)]
    pub log_format: Option<LogFormat>,

    /// Log filter, e.g. `info` or `artifact_store_gateway=debug,info` [default: info].
    #[arg(long, global = true, value_name = "FILTER")]
    pub log_level: Option<String>,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the S3 API.
    Serve(serve::ServeArgs),
}

impl Cli {
    /// Loads the configuration for this invocation from the file, the process environment and
    /// the flags.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] for an invalid file, value or combination.
    pub fn load_config(&self) -> Result<Config, ConfigError> {
        let mut flags: Vec<(&str, String)> = Vec::new();
        if let Some(dir) = &self.data_dir {
            flags.push(("storage.data_dir", dir.display().to_string()));
        }
        if let Some(format) = self.log_format {
            let format = match format {
                LogFormat::Text => "text",
                LogFormat::Json => "json",
            };
            flags.push(("log.format", format.to_owned()));
        }
        if let Some(level) = &self.log_level {
            flags.push(("log.level", level.clone()));
        }
        match &self.command {
            Command::Serve(args) => args.push_flags(&mut flags),
        }
        Config::load(self.config.as_deref(), &|name| std::env::var(name).ok(), &flags)
    }
}

/// Runs the command and returns the process exit code.
pub async fn run(cli: Cli, config: Config) -> ExitCode {
    let result = match cli.command {
        Command::Serve(_) => serve::run(config).await,
    };
    match result {
        Ok(()) => ExitCode::from(EXIT_OK),
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}
