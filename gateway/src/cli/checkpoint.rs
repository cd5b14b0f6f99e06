//! `artifact-store checkpoint create|verify`: signed checkpoints of the event chain (format,
//! key and folders in [`crate::checkpoints`]).
//!
//! `create` verifies the chain and signs its head; `--s3 s3://bucket/key` also uploads it
//! ([`crate::checkpoints::s3`]), for example to a bucket under Object Lock in COMPLIANCE mode
//! upstream. `verify` proves that the log still extends a
//! checkpoint ([`check`]): the event at its sequence still has its hash and the chain verifies
//! up to the head. It trusts the public half of the configured key, or the one given with
//! `--public-key`.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use ed25519_dalek::VerifyingKey;
use registry::log::{self, ChainHead};
use rusqlite::Connection;

use super::progress::{self, Unit};
use super::{Outcome, existing_registry, print_line, read_registry};
use crate::checkpoints::s3::S3Location;
use crate::checkpoints::{self, Checkpoint, key_path, signing_key};
use crate::config::Config;

/// `checkpoint` and its subcommands.
#[derive(Debug, clap::Args)]
pub struct CheckpointArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: CheckpointCommand,
}

/// Subcommands of `checkpoint`.
#[derive(Debug, clap::Subcommand)]
pub enum CheckpointCommand {
    /// Verify the chain and sign its head; print the checkpoint or write it to a file.
    Create {
        /// Write the checkpoint to this file instead of stdout.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Also upload it to this S3 location; the endpoint, region and credentials come from
        /// the standard `AWS_*` variables (`AWS_ENDPOINT_URL` for a non-AWS endpoint).
        #[arg(long, value_name = "s3://BUCKET/KEY")]
        s3: Option<String>,
    },
    /// Check that the log still extends a checkpoint.
    Verify {
        /// The checkpoint file.
        file: PathBuf,
        /// Trust this public key (hex) instead of the configured key's.
        #[arg(long, value_name = "HEX")]
        public_key: Option<String>,
    },
}

/// Runs a `checkpoint` subcommand.
///
/// # Errors
/// No registry, an unreadable or unwritable key or checkpoint file.
pub async fn run(config: &Config, args: &CheckpointArgs, json: bool) -> anyhow::Result<Outcome> {
    match &args.command {
        CheckpointCommand::Create { out, s3 } => create(config, out.as_deref(), s3.as_deref()).await,
        CheckpointCommand::Verify { file, public_key } => {
            let problems = check(config, file, public_key.as_deref()).await?;
            let mut stdout = std::io::stdout().lock();
            if json {
                let report = serde_json::json!({ "ok": problems.is_empty(), "problems": problems });
                print_line(&mut stdout, &report.to_string())?;
            } else {
                for problem in &problems {
                    print_line(&mut stdout, &format!("FAILED {problem}"))?;
                }
                if problems.is_empty() {
                    print_line(&mut stdout, "ok: the log extends the checkpoint")?;
                }
            }
            Ok(if problems.is_empty() { Outcome::Ok } else { Outcome::CheckFailed })
        }
    }
}

async fn create(config: &Config, out: Option<&Path>, s3: Option<&str>) -> anyhow::Result<Outcome> {
    let upload_to = s3.map(|url| S3Location::parse(url, false)).transpose()?;
    // No registry: say so before generating a key for it.
    existing_registry(config).await?;
    let key = signing_key(&key_path(config))?;
    let verified = read_registry(config, verify_chain).await?;
    if let Some(sequence) = verified.first_mismatch {
        eprintln!("error: the event chain is broken at event {sequence}; not signing it (run `artifact-store verify`)");
        return Ok(Outcome::CheckFailed);
    }
    anyhow::ensure!(verified.head.sequence > 0, "the log is empty; there is nothing to checkpoint");
    let created_at = i64::try_from(SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis())?;
    let checkpoint = Checkpoint::sign(verified.head, created_at, &key);
    let text = serde_json::to_string(&checkpoint)?;
    match out {
        Some(file) => {
            fs::write(file, format!("{text}\n")).with_context(|| format!("cannot write {}", file.display()))?;
            eprintln!(
                "checkpoint of event {} written to {} (public key {})",
                checkpoint.sequence,
                file.display(),
                checkpoint.public_key
            );
        }
        None if upload_to.is_none() => {
            print_line(&mut std::io::stdout().lock(), &text)?;
        }
        None => {}
    }
    if let Some(to) = upload_to {
        checkpoints::s3::upload(&checkpoints::s3::client_from_env()?, &to, &checkpoint).await?;
        eprintln!("checkpoint of event {} uploaded to {to}", checkpoint.sequence);
    }
    Ok(Outcome::Ok)
}

/// Checks the checkpoint in `file` against the registry: signed by the trusted key (given,
/// or the configured key's public half), the event at its sequence has its hash, and the
/// chain verifies from the first event to the head. Returns the problems found.
///
/// # Errors
/// An unreadable checkpoint, key or registry.
pub async fn check(config: &Config, file: &Path, public_key: Option<&str>) -> anyhow::Result<Vec<String>> {
    let checkpoint = Checkpoint::read(file)?;
    let trusted = match public_key {
        Some(hex_key) => parse_public_key(hex_key)?,
        None => {
            let path = key_path(config);
            anyhow::ensure!(
                path.exists(),
                "no checkpoint key at {} to trust; pass --public-key HEX or set registry.checkpoint_key",
                path.display()
            );
            signing_key(&path)?.verifying_key()
        }
    };
    let mut problems = Vec::new();
    if !checkpoint.signature_holds(&trusted) {
        problems.push(format!(
            "checkpoint: not signed by the trusted key {} (it names {})",
            hex::encode(trusted.as_bytes()),
            checkpoint.public_key
        ));
    }
    problems.extend(extends(config, &checkpoint, "checkpoint").await?);
    Ok(problems)
}

/// Checks the log against the newest automatic checkpoint signed by the configured key, in
/// the data folder, `registry.checkpoint_copy_dir` or `registry.checkpoint_copy_s3` (plain
/// `verify`). Returns where the checkpoint checked was, if there was one, and the problems
/// found; an S3 copy that cannot be read is one of them, since the check did not run.
///
/// # Errors
/// An unreadable key, checkpoint folder or registry.
pub async fn check_newest(config: &Config) -> anyhow::Result<(Option<String>, Vec<String>)> {
    let path = key_path(config);
    if !path.exists() {
        // Nothing was ever signed with it; a checkpoint made by another key proves nothing here.
        return Ok((None, Vec::new()));
    }
    let trusted = signing_key(&path)?.verifying_key();
    let mut newest = checkpoints::newest(&checkpoints::folders(config), &trusted)?
        .map(|(file, checkpoint)| (file.display().to_string(), checkpoint));
    let mut problems = Vec::new();
    if let Some(prefix) = checkpoints::s3_copy(config)? {
        let found = async { checkpoints::s3::newest(&checkpoints::s3::client_from_env()?, &prefix, &trusted).await };
        match found.await {
            Ok(Some((location, checkpoint)))
                if newest.as_ref().is_none_or(|(_, local)| checkpoint.sequence > local.sequence) =>
            {
                newest = Some((location.to_string(), checkpoint));
            }
            Ok(_) => {}
            Err(error) => problems.push(format!("checkpoint copy {prefix}: not checked: {error:#}")),
        }
    }
    let Some((origin, checkpoint)) = newest else {
        return Ok((None, problems));
    };
    problems.extend(extends(config, &checkpoint, &format!("checkpoint {origin}")).await?);
    Ok((Some(origin), problems))
}

/// The ways the log fails to extend `checkpoint` (whose signature the caller has checked):
/// it no longer reaches its sequence (truncated), the event there has another hash
/// (rewritten), or the chain is broken.
async fn extends(config: &Config, checkpoint: &Checkpoint, name: &str) -> anyhow::Result<Vec<String>> {
    let sequence = checkpoint.sequence;
    let (verified, found) =
        read_registry(config, move |conn| Ok((verify_chain(conn)?, log::hash_at(conn, sequence)?))).await?;
    let mut problems = Vec::new();
    match found {
        None => problems.push(format!(
            "{name}: the log has no event {sequence} (it ends at {}): the log was truncated",
            verified.head.sequence
        )),
        Some(hash) if hex::encode(hash) != checkpoint.hash => problems.push(format!(
            "{name}: event {sequence} has hash {}, the checkpoint signed {}: the log was rewritten",
            hex::encode(hash),
            checkpoint.hash
        )),
        Some(_) => {}
    }
    if let Some(at) = verified.first_mismatch {
        problems.push(format!("{name}: the chain is broken at event {at}, so it does not extend the checkpoint"));
    }
    Ok(problems)
}

fn verify_chain(conn: &Connection) -> anyhow::Result<log::Verified> {
    let head = ChainHead::load(conn)?;
    let bar = progress::bar("chain", head.sequence, Unit::Events);
    let verified = log::verify_with_progress(conn, |sequence| bar.set_position(sequence))?;
    bar.finish_and_clear();
    Ok(verified)
}

fn parse_public_key(text: &str) -> anyhow::Result<VerifyingKey> {
    let mut bytes = [0; 32];
    hex::decode_to_slice(text.trim(), &mut bytes).context("--public-key must be 64 hex digits")?;
    VerifyingKey::from_bytes(&bytes).context("--public-key is not an ed25519 public key")
}
