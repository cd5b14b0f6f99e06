//! The command line: `artifact-store <command>`. Flags beat environment beat the config file
//! (see [`crate::config`]).
//!
//! Exit codes: [`EXIT_OK`], [`EXIT_CHECK_FAILED`] (a check such as `verify` found a problem),
//! [`EXIT_ERROR`] (usage or runtime error; clap also uses 2 for usage errors).
//!
//! Maintenance commands (`verify`, `gc`, `replay`, `events`, `object`, `retrievals`,
//! `retention`, `package`, `checkpoint`, `account`, `user`, `key`) work on an existing data directory, print their result
//! on stdout (JSON with `--json`) and draw progress bars on stderr when it is a terminal.

pub mod checkpoint;
pub mod copy;
pub mod events;
pub mod gc;
pub mod identity;
pub mod kms;
pub mod object;
pub mod package;
mod progress;
pub mod replay;
pub mod retention;
pub mod retrievals;
pub mod serve;
pub mod verify;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
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

    /// The registry's shared log on PostgreSQL, `postgres://USER@HOST:PORT/DB`
    /// (registry.url); unset: the embedded registry in the data directory.
    #[arg(long, global = true, value_name = "URL")]
    pub registry: Option<String>,

    /// Log line format [default: text].
    #[arg(long, global = true, value_enum)]
    pub log_format: Option<LogFormat>,

    /// Log filter, e.g. `info` or `artifact_store_gateway=debug,info` [default: info].
    #[arg(long, global = true, value_name = "FILTER")]
    pub log_level: Option<String>,

    /// Print results as JSON (`events`, `retrievals`: one record per line; `object history`:
    /// one document) instead of text; `serve` writes its log as JSON lines (`--log-format json`).
    #[arg(long, global = true)]
    pub json: bool,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the S3 API.
    Serve(serve::ServeArgs),
    /// Check the event chain, the views against the log, and every blob against its digest.
    Verify(verify::VerifyArgs),
    /// Remove blobs that nothing references and abandoned temp files.
    Gc(gc::GcArgs),
    /// Rebuild every view from the event log.
    Replay,
    /// Read the event log.
    Events(events::EventsArgs),
    /// Seal a prefix as a package, verify a package, list packages.
    Package(package::PackageArgs),
    /// Sign the chain's head, or check that the log still extends a signed checkpoint.
    Checkpoint(checkpoint::CheckpointArgs),
    /// Show what the registry knows about an object.
    Object(object::ObjectArgs),
    /// List recorded reads of objects.
    Retrievals(retrievals::RetrievalsArgs),
    /// Lifecycle plan and retention explanations (read-only).
    Retention(retention::RetentionArgs),
    /// Create and list accounts.
    Account(identity::AccountArgs),
    /// Copy the registry between a data folder and PostgreSQL.
    Registry(copy::RegistryArgs),
    /// Create, show and delete users, and set their policies.
    User(identity::UserArgs),
    /// Create, list, disable and delete access keys.
    Key(identity::KeyArgs),
    /// Create and list the KMS keys of SSE-KMS.
    Kms(kms::KmsArgs),
}

/// How a command that ran to its end came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Done; every check passed.
    Ok,
    /// A check found a problem (reported on stdout).
    CheckFailed,
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
        if let Some(url) = &self.registry {
            flags.push(("registry.url", url.clone()));
        }
        // `serve` prints no results, only its log: `--json` asks for that in JSON, as users of
        // the other commands expect it to; an explicit `--log-format` still wins.
        let serve_json = self.json && matches!(self.command, Command::Serve(_));
        match self.log_format {
            Some(LogFormat::Text) => flags.push(("log.format", "text".to_owned())),
            Some(LogFormat::Json) => flags.push(("log.format", "json".to_owned())),
            None if serve_json => flags.push(("log.format", "json".to_owned())),
            None => {}
        }
        if let Some(level) = &self.log_level {
            flags.push(("log.level", level.clone()));
        }
        if let Command::Serve(args) = &self.command {
            args.push_flags(&mut flags);
        }
        Config::load(self.config.as_deref(), &|name| std::env::var(name).ok(), &flags)
    }
}

/// Runs the command and returns the process exit code.
pub async fn run(cli: Cli, mut config: Config) -> ExitCode {
    crate::layout::restrict_new_files();
    // Blobs are read where the folder was served to keep them, whatever this command names.
    if let Err(err) = crate::served_backend::apply(&mut config) {
        eprintln!("error: {err:#}");
        return ExitCode::from(EXIT_ERROR);
    }
    let json = cli.json;
    let result = match cli.command {
        Command::Serve(_) => serve::run(config).await.map(|()| Outcome::Ok),
        Command::Verify(args) => verify::run(&config, &args, json).await,
        Command::Gc(args) => gc::run(&config, &args, json).await.map(|()| Outcome::Ok),
        Command::Replay => replay::run(&config, json).await,
        Command::Events(args) => events::run(&config, &args, json).await.map(|()| Outcome::Ok),
        Command::Package(args) => package::run(&config, &args, json).await,
        Command::Checkpoint(args) => checkpoint::run(&config, &args, json).await,
        Command::Object(args) => object::run(&config, &args, json).await.map(|()| Outcome::Ok),
        Command::Retrievals(args) => retrievals::run(&config, &args, json).await.map(|()| Outcome::Ok),
        Command::Retention(args) => retention::run(&config, args, json).await.map(|()| Outcome::Ok),
        Command::Account(args) => identity::run_account(&config, &args, json).await.map(|()| Outcome::Ok),
        Command::Registry(args) => copy::run(&config, &args, json).await,
        Command::Kms(args) => kms::run(&config, &args, json).await.map(|()| Outcome::Ok),
        Command::User(args) => identity::run_user(&config, &args, json).await.map(|()| Outcome::Ok),
        Command::Key(args) => identity::run_key(&config, &args, json).await.map(|()| Outcome::Ok),
    };
    match result {
        Ok(Outcome::Ok) => ExitCode::from(EXIT_OK),
        Ok(Outcome::CheckFailed) => ExitCode::from(EXIT_CHECK_FAILED),
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}

/// The registry of the configured data directory. A missing file is an error rather than a
/// new empty registry, so a mistyped `--data-dir` is reported instead of "verified". On a log
/// shared on PostgreSQL, this host's replica, first brought up to the shared log.
async fn existing_registry(config: &Config) -> anyhow::Result<PathBuf> {
    let path = crate::layout::local_registry_path(config);
    if config.registry.url.is_some() {
        open_registry(config).await?.close().await;
        return Ok(path);
    }
    let exists = path.try_exists().with_context(|| format!("cannot read {}", path.display()))?;
    anyhow::ensure!(exists, "no registry at {} (is --data-dir right?)", path.display());
    Ok(path)
}

/// The registry, opened for writing beside gateways that may be serving it; on a shared log,
/// caught up with it.
async fn open_registry(config: &Config) -> anyhow::Result<registry::Registry> {
    let path = crate::layout::local_registry_path(config);
    if config.registry.url.is_none() {
        let exists = path.try_exists().with_context(|| format!("cannot read {}", path.display()))?;
        anyhow::ensure!(exists, "no registry at {} (is --data-dir right?)", path.display());
    }
    let registry = crate::server::open_registry(config, &path)
        .with_context(|| format!("cannot open the registry {}", path.display()))?;
    registry.catch_up_with_shared().await.context("cannot catch up with the shared registry")?;
    Ok(registry)
}

/// The operator, as the events of maintenance commands run on the host record it, with the
/// command that acted.
fn operator(command: &str) -> registry::Caller {
    registry::Caller {
        actor: "operator".to_owned(),
        context: registry::RequestContext {
            user_agent: Some(format!("artifact-store/{} {command}", env!("CARGO_PKG_VERSION"))),
            ..registry::RequestContext::default()
        },
    }
}

/// Runs `read` on a read-only connection to the configured registry on the blocking pool, so
/// a long read (a chain walk) does not stall the progress bars and blob reads of the runtime.
async fn read_registry<R: Send + 'static>(
    config: &Config,
    read: impl FnOnce(&rusqlite::Connection) -> anyhow::Result<R> + Send + 'static,
) -> anyhow::Result<R> {
    let path = existing_registry(config).await?;
    tokio::task::spawn_blocking(move || {
        let conn =
            registry::sqlite::open_read_only(&path).with_context(|| format!("cannot open {}", path.display()))?;
        read(&conn)
    })
    .await
    .context("the registry read did not finish")?
}

/// Writes one line of a command's result to stdout. A closed pipe (`| head`) is not an error
/// worth reporting; the caller stops writing when this returns `false`.
fn print_line(out: &mut impl std::io::Write, line: &str) -> anyhow::Result<bool> {
    Ok(print_part(out, line)? && print_part(out, "\n")?)
}

/// Writes part of a line, for documents written piece by piece; as [`print_line`].
fn print_part(out: &mut impl std::io::Write, text: &str) -> anyhow::Result<bool> {
    match out.write_all(text.as_bytes()) {
        Ok(()) => Ok(true),
        Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => Ok(false),
        Err(err) => Err(anyhow::Error::new(err).context("cannot write to stdout")),
    }
}
