//! `artifact-store registry copy`: moves a registry between a data folder (SQLite) and a
//! PostgreSQL database with its whole chain, both ways, and checks the copy: the chain
//! verified on both sides, and the views rebuilt from the copy equal to the source's.
//!
//! Stop the gateways first: a copy is of a registry nobody writes.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, bail, ensure};
use registry::clock::SystemClock;
use registry::log::{self, ChainHead};
use registry::sqlite::{self, views};
use registry::{Registry, postgres};
use serde::Serialize;

use super::progress::{self, Unit};
use super::{Outcome, print_line};
use crate::config::Config;

/// `registry ...`
#[derive(Debug, clap::Args)]
pub struct RegistryArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: RegistryCommand,
}

/// The registry's own commands.
#[derive(Debug, clap::Subcommand)]
pub enum RegistryCommand {
    /// Copy a registry, with its whole chain, between a data folder and PostgreSQL.
    Copy(CopyArgs),
}

/// `registry copy`: one side a data folder, the other a `postgres://` URL.
#[derive(Debug, clap::Args)]
pub struct CopyArgs {
    /// The registry to copy: a data folder, or `postgres://USER@HOST:PORT/DB`
    /// [default: the configured data folder].
    #[arg(long, value_name = "DIR|URL")]
    pub from: Option<String>,
    /// Where to copy it: an empty PostgreSQL database, or a data folder without a registry
    /// [default: the configured data folder].
    #[arg(long, value_name = "DIR|URL")]
    pub to: Option<String>,
}

#[derive(Debug, Serialize)]
struct Report {
    events: u64,
    head_sequence: u64,
    head_hash: String,
    inline_blobs: Option<u64>,
    secrets: Option<u64>,
}

/// A side of a copy.
enum Side {
    Folder(PathBuf),
    Shared(String),
}

impl Side {
    fn parse(given: Option<&str>, config: &Config) -> Side {
        match given {
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                Side::Shared(url.to_owned())
            }
            Some(dir) => Side::Folder(PathBuf::from(dir)),
            None => Side::Folder(config.storage.data_dir.clone()),
        }
    }
}

/// Runs `registry ...`.
///
/// # Errors
/// Neither or both sides a database, a source whose chain does not verify, a target that is
/// not empty, or a copy that does not check.
pub async fn run(config: &Config, args: &RegistryArgs, json: bool) -> anyhow::Result<Outcome> {
    let RegistryCommand::Copy(copy) = &args.command;
    let report = match (Side::parse(copy.from.as_deref(), config), Side::parse(copy.to.as_deref(), config)) {
        (Side::Folder(dir), Side::Shared(url)) => to_shared(&dir, url).await?,
        (Side::Shared(url), Side::Folder(dir)) => from_shared(url, &dir).await?,
        _ => bail!("one side of a copy is a data folder and the other a postgres:// URL"),
    };
    let mut out = std::io::stdout().lock();
    if json {
        print_line(&mut out, &serde_json::to_string(&report)?)?;
    } else {
        print_line(
            &mut out,
            &format!("copied: {} events, head {} {}", report.events, report.head_sequence, report.head_hash),
        )?;
        if let (Some(blobs), Some(secrets)) = (report.inline_blobs, report.secrets) {
            print_line(&mut out, &format!("        {blobs} inline blobs, {secrets} access key secrets"))?;
        }
        print_line(
            &mut out,
            "checked: the chain verifies on both sides and the views rebuilt from the copy are the source's",
        )?;
    }
    Ok(Outcome::Ok)
}

async fn to_shared(dir: &Path, url: String) -> anyhow::Result<Report> {
    let source = crate::layout::registry_path(dir);
    ensure!(source.try_exists()?, "no registry at {} (is the folder right?)", source.display());
    let head = {
        let source = source.clone();
        tokio::task::spawn_blocking(move || ChainHead::load(&sqlite::open_read_only(&source)?)).await??
    };
    let copied = {
        let (source, url) = (source.clone(), url.clone());
        tokio::task::spawn_blocking(move || {
            // The bar runs twice: the source's chain verified, then copied.
            let bar = progress::bar("copy", head.sequence, Unit::Events);
            let copied = sqlite::open_read_only(&source)
                .and_then(|source| postgres::copy_to_shared(&source, &url, |sequence| bar.set_position(sequence)));
            bar.finish_and_clear();
            copied
        })
        .await??
    };
    // The check: a fresh replica of the copy, which takes every event only if it chains from
    // the one before, and whose views must be the source's.
    let scratch = tempfile::tempdir().context("a scratch folder for the check")?;
    let replica = scratch.path().join("registry.db");
    let shared = Registry::open_shared(&replica, &url, Arc::new(SystemClock)).context("cannot open the copy")?;
    shared.catch_up_with_shared().await?;
    shared.close().await;
    drop(shared);
    same_registry(&source, &replica).await?;
    Ok(Report {
        events: copied.events,
        head_sequence: head.sequence,
        head_hash: hex::encode(head.hash),
        inline_blobs: Some(copied.inline_blobs),
        secrets: Some(copied.secrets),
    })
}

async fn from_shared(url: String, dir: &Path) -> anyhow::Result<Report> {
    let target = crate::layout::registry_path(dir);
    ensure!(!target.try_exists()?, "{} holds a registry already: copy into a folder without one", target.display());
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    // A replica of the shared log is a whole SQLite registry: its log, views, inline blobs and
    // secrets. Once caught up it is the copy.
    let spinner = progress::spinner("copying");
    let copied = Registry::open_shared(&target, &url, Arc::new(SystemClock)).context("cannot copy the registry")?;
    copied.catch_up_with_shared().await?;
    copied.close().await;
    drop(copied);
    spinner.finish_and_clear();
    let checked = target.clone();
    let (verified, before, after) = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        let mut conn = sqlite::open_offline(&checked)?;
        let verified = log::verify(&conn)?;
        let before = views::dump(&conn)?;
        log::replay(&mut conn)?;
        Ok((verified, before, views::dump(&conn)?))
    })
    .await??;
    ensure!(verified.first_mismatch.is_none(), "the copied chain does not verify from {:?}", verified.first_mismatch);
    ensure!(before == after, "the copy's views differ from a replay of its log");
    Ok(Report {
        events: verified.events,
        head_sequence: verified.head.sequence,
        head_hash: hex::encode(verified.head.hash),
        inline_blobs: None,
        secrets: None,
    })
}

/// Checks that the registry at `copy` holds the chain of `source`, verified, with the same views.
async fn same_registry(source: &Path, copy: &Path) -> anyhow::Result<()> {
    let (source, copy) = (source.to_owned(), copy.to_owned());
    tokio::task::spawn_blocking(move || {
        let (source, copy) = (sqlite::open_read_only(&source)?, sqlite::open_read_only(&copy)?);
        let verified = log::verify(&copy)?;
        ensure!(
            verified.first_mismatch.is_none(),
            "the copied chain does not verify from {:?}",
            verified.first_mismatch
        );
        ensure!(verified.head == ChainHead::load(&source)?, "the copy's head is not the source's");
        ensure!(
            views::dump(&source)? == views::dump(&copy)?,
            "the views rebuilt from the copy differ from the source's"
        );
        Ok(())
    })
    .await?
}
