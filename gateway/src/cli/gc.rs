//! `artifact-store gc`: one garbage collection pass ([`crate::worker::gc`]) on a data folder,
//! safe beside a serving gateway (which also runs passes of its own, `gc.interval_seconds`):
//! blobs and inline bytes that no version or part references, upstream multipart uploads no
//! open upload names, and on the local store temp files of uploads that died.
//!
//! Whether a blob may be deleted is agreed with the writes in the registry, under its writer
//! (see [`crate::worker::gc`]); `--min-age` only leaves recent blobs for a later pass.
//!
//! Temp files are removed when a gateway starts. Here, beside a gateway that may be serving,
//! only those untouched for `--min-age` and at least [`TEMP_FILE_GUARD`] go: a live upload's
//! file can sit untouched while its client pauses or while its write waits for the registry.

use std::time::{Duration, SystemTime};

use anyhow::Context as _;

use super::{open_registry, print_line};
use crate::backend::fs::{FsBlobStore, TEMP_FILE_GUARD};
use crate::config::{Backend, Config};
use crate::outboard::OutboardFiles;
use crate::worker::gc::{self, Options, PassLock, Report};

/// Flags of `gc`.
#[derive(Debug, clap::Args)]
pub struct GcArgs {
    /// Keep blobs and temp files modified more recently than this (`0s`, `10m`, `24h`, `7d`).
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = humantime::parse_duration)]
    pub min_age: Duration,

    /// Report what would be removed, and remove nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// Collects garbage and prints what was freed.
///
/// # Errors
///
/// No registry, or a failure to read it, list the blobs or remove one.
pub async fn run(config: &Config, args: &GcArgs, json: bool) -> anyhow::Result<()> {
    let path = crate::layout::local_registry_path(config);
    let registry = open_registry(config).await?;
    let store = crate::server::open_blobs(config).context("cannot open the blob store")?;

    let lock = PassLock::acquire(&path).await.context("cannot take the gc lock")?;
    // Gateways sharing the log run their passes under a lease: wait for theirs to end.
    let lease = loop {
        if let Some(lease) = registry.try_lease("gc").await.context("cannot take the gc lease")? {
            break lease;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    };
    let options = Options { min_age: args.min_age, dry_run: args.dry_run };
    let spinner = super::progress::spinner("collecting");
    let collected =
        gc::collect(&registry, store.as_ref(), &OutboardFiles::new(&config.storage.data_dir), options, &lock, &lease)
            .await;
    spinner.finish_and_clear();
    registry.close().await;
    let mut report = collected?;
    if config.storage.backend == Backend::Fs {
        let local = FsBlobStore::open(&config.storage.data_dir)
            .with_context(|| format!("cannot open the blob store in {}", config.storage.data_dir.display()))?;
        let cutoff = SystemTime::now().checked_sub(args.min_age.max(TEMP_FILE_GUARD)).unwrap_or(SystemTime::UNIX_EPOCH);
        let swept = local.remove_stale_temp_files(cutoff, args.dry_run).await.context("cannot clean tmp/")?;
        report.temp_files_removed = swept.files;
        report.temp_bytes_freed = swept.bytes;
    }
    print_report(&report, config.storage.backend, json)
}

/// The report; as text, only the lines of what `backend` has (an S3 upstream's locked objects
/// and multipart uploads, or the local store's temp files), as the other lines always read 0
/// and made a local store look like it had an upstream. JSON keeps every field.
fn print_report(report: &Report, backend: Backend, json: bool) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    let text = if json {
        serde_json::to_string(report)?
    } else {
        let verb = if report.dry_run { "would remove" } else { "removed" };
        let age = humantime::format_duration(Duration::from_secs(report.min_age_seconds));
        let mut lines = vec![format!(
            "blobs: {verb} {} unreferenced ({}); kept {} referenced, {} younger than {age}",
            report.blobs_removed,
            indicatif::HumanBytes(report.blob_bytes_freed),
            report.blobs_referenced,
            report.blobs_too_young,
        )];
        match backend {
            Backend::S3 => {
                lines.push(format!("locked upstream: kept {}", report.blobs_locked));
                lines.push(format!(
                    "uploads: {verb} {} unnamed upstream multipart uploads; kept {}",
                    report.uploads_aborted, report.uploads_kept
                ));
            }
            Backend::Fs => lines.push(format!(
                "tmp: {verb} {} stale temp files ({})",
                report.temp_files_removed,
                indicatif::HumanBytes(report.temp_bytes_freed)
            )),
        }
        lines.push(format!(
            "inline: {verb} {} unreferenced ({}); kept {} referenced",
            report.inline_blobs_removed,
            indicatif::HumanBytes(report.inline_bytes_freed),
            report.inline_blobs_referenced,
        ));
        lines.push(format!("outboards: {verb} {} of contents no version has", report.outboards_removed));
        lines.join("\n")
    };
    print_line(&mut out, &text)?;
    Ok(())
}
