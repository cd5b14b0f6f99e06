//! `artifact-store gc`: removes blobs that no version or part references, and temp files of
//! uploads that died, once they are older than `--min-age`.
//!
//! Safe beside a serving gateway. A write makes its blob durable (a commit, which creates the
//! file or refreshes its mtime when identical content is already stored) and only then records
//! the event that references it; between the two the blob is unreferenced but young, and the
//! age guard keeps it. A blob is removed only if, when gc reaches it, it is older than the
//! guard and the registry (read fresh, just before the removal) has no reference to it.
//!
//! Blobs are listed and removed through the [`BlobStore`] trait, so any backend can be
//! collected: for an S3 upstream, every object under the prefix with a blob id's shape that no
//! version or part references (an upload that died before its event, an abandoned stage, the
//! parts of an aborted multipart upload). The age guard then compares the upstream's
//! `LastModified` with this machine's clock, so it must exceed their skew. The temp-file sweep
//! is specific to the local store.
//!
//! Objects kept inline have their bytes in the registry (`registry::inline`): gc deletes the
//! rows no version or part references through a registry writer of its own, in one
//! transaction that SQLite serialises with the serving gateway's writes, so they need no age
//! guard.
//!
//! An S3 upstream also holds the gateway's multipart uploads as upstream multipart uploads
//! (their parts are not objects, so no listing of blobs sees them): every one under the prefix
//! that no open upload in the registry names and that began before the guard is aborted. That
//! catches uploads whose gateway died before recording them, uploads that lifecycle rules
//! aborted in the registry, and aborts that the upstream refused at the time.

use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use futures::StreamExt as _;
use registry::clock::SystemClock;
use registry::{Registry, queries, sqlite};
use serde::Serialize;

use super::{existing_registry, print_line, progress};
use crate::backend::fs::FsBlobStore;
use crate::backend::s3::S3BlobStore;
use crate::backend::{BlobError, BlobId, BlobStore};
use crate::config::{Backend, Config};

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

/// What `gc` did (or, with `--dry-run`, would do).
#[derive(Debug, Default, Serialize)]
struct Report {
    dry_run: bool,
    min_age_seconds: u64,
    /// Unreferenced blobs older than the guard, removed.
    blobs_removed: u64,
    blob_bytes_freed: u64,
    /// Blobs kept because the registry references them.
    blobs_referenced: u64,
    /// Blobs kept because they are younger than the guard.
    blobs_too_young: u64,
    /// Unreferenced blobs kept because the upstream still holds them under a mirrored
    /// Object Lock (their retention outlives every version that asked for it, or a legal
    /// hold was set on them directly); a later gc removes them once it has expired.
    blobs_locked: u64,
    /// Upstream multipart uploads that no open upload names, older than the guard, aborted.
    uploads_aborted: u64,
    /// Upstream multipart uploads kept because an open upload names them or they are young.
    uploads_kept: u64,
    /// Stale temp files removed.
    temp_files_removed: u64,
    temp_bytes_freed: u64,
    /// Unreferenced inline blobs removed from the registry.
    inline_blobs_removed: u64,
    inline_bytes_freed: u64,
    /// Inline blobs kept because a version or part references them.
    inline_blobs_referenced: u64,
}

/// Collects garbage and prints what was freed.
///
/// # Errors
///
/// No registry, or a failure to read it, list the blobs or remove one.
pub async fn run(config: &Config, args: &GcArgs, json: bool) -> anyhow::Result<()> {
    let path = existing_registry(config)?;
    let conn = sqlite::open_read_only(&path).with_context(|| format!("cannot open {}", path.display()))?;
    let cutoff = SystemTime::now().checked_sub(args.min_age).unwrap_or(SystemTime::UNIX_EPOCH);

    let mut report = Report { dry_run: args.dry_run, min_age_seconds: args.min_age.as_secs(), ..Report::default() };
    // An indexed point lookup per blob: quicker on this thread than a hop to the blocking pool.
    let is_referenced = |id: &BlobId| -> anyhow::Result<bool> { Ok(queries::blob_refs(&conn, id.as_str())? > 0) };
    match config.storage.backend {
        Backend::Fs => {
            let store = FsBlobStore::open(&config.storage.data_dir)
                .with_context(|| format!("cannot open the blob store in {}", config.storage.data_dir.display()))?;
            collect_blobs(&store, is_referenced, cutoff, args.dry_run, &mut report).await?;
            let swept = store.remove_stale_temp_files(cutoff, args.dry_run).await.context("cannot clean tmp/")?;
            report.temp_files_removed = swept.files;
            report.temp_bytes_freed = swept.bytes;
        }
        Backend::S3 => {
            let store = S3BlobStore::open(&config.upstream).context("cannot set up the upstream client")?;
            collect_blobs(&store, is_referenced, cutoff, args.dry_run, &mut report).await?;
            let open = || -> anyhow::Result<_> {
                Ok(queries::store_uploads(&conn)?.into_iter().map(|u| u.upload_id).collect())
            };
            collect_uploads(&store, open, cutoff, args.dry_run, &mut report).await?;
        }
    }

    let registry = Registry::open(&path, std::sync::Arc::new(SystemClock))
        .with_context(|| format!("cannot open the registry {}", path.display()))?;
    let removed = registry.remove_unreferenced_inline_blobs(args.dry_run).await;
    registry.close().await;
    let removed = removed.context("cannot remove unreferenced inline blobs")?;
    report.inline_blobs_removed = removed.blobs;
    report.inline_bytes_freed = removed.bytes;
    report.inline_blobs_referenced = removed.referenced;

    print_report(&report, json)
}

/// Removes every blob older than `cutoff` that `is_referenced` says nothing needs.
async fn collect_blobs(
    store: &dyn BlobStore,
    is_referenced: impl Fn(&BlobId) -> anyhow::Result<bool>,
    cutoff: SystemTime,
    dry_run: bool,
    report: &mut Report,
) -> anyhow::Result<()> {
    let spinner = progress::spinner("blobs examined");
    let mut listing = store.list().await.context("cannot list blobs")?;
    while let Some(entry) = listing.next().await {
        let entry = entry.context("cannot list blobs")?;
        spinner.inc(1);
        if entry.modified >= cutoff {
            report.blobs_too_young += 1;
            continue;
        }
        // Asked after the age check: a reference recorded since the listing is seen here.
        if is_referenced(&entry.id)? {
            report.blobs_referenced += 1;
            continue;
        }
        if !dry_run {
            test_barrier::reach().await;
            match store.delete(&entry.id).await {
                Ok(()) => {}
                // Another gc got there first.
                Err(BlobError::NotFound) => continue,
                Err(BlobError::Locked) => {
                    tracing::warn!(blob = %entry.id, "unreferenced blob kept: the upstream holds it under Object Lock");
                    report.blobs_locked += 1;
                    continue;
                }
                Err(err) => return Err(err).with_context(|| format!("cannot remove blob {}", entry.id)),
            }
        }
        report.blobs_removed += 1;
        report.blob_bytes_freed += entry.size;
    }
    spinner.finish_and_clear();
    Ok(())
}

/// Aborts the store's multipart uploads begun before `cutoff` that no open upload names.
async fn collect_uploads(
    store: &dyn BlobStore,
    open: impl Fn() -> anyhow::Result<std::collections::HashSet<String>>,
    cutoff: SystemTime,
    dry_run: bool,
    report: &mut Report,
) -> anyhow::Result<()> {
    let uploads = store.list_multipart().await.context("cannot list the upstream multipart uploads")?;
    // Read after the listing: an upload recorded since is seen here.
    let open = open()?;
    for (upload, initiated) in uploads {
        if initiated >= cutoff || open.contains(&upload.upload_id) {
            report.uploads_kept += 1;
            continue;
        }
        if !dry_run {
            store
                .abort_multipart(&upload)
                .await
                .with_context(|| format!("cannot abort the upstream multipart upload of blob {}", upload.blob))?;
        }
        report.uploads_aborted += 1;
    }
    Ok(())
}

fn print_report(report: &Report, json: bool) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    let text = if json {
        serde_json::to_string(report)?
    } else {
        let verb = if report.dry_run { "would remove" } else { "removed" };
        let age = humantime::format_duration(Duration::from_secs(report.min_age_seconds));
        format!(
            "blobs: {verb} {} unreferenced ({}); kept {} referenced, {} younger than {age}\n\
             locked upstream: kept {}\n\
             uploads: {verb} {} unnamed upstream multipart uploads; kept {}\n\
             tmp: {verb} {} stale temp files ({})\n\
             inline: {verb} {} unreferenced ({}); kept {} referenced",
            report.blobs_removed,
            indicatif::HumanBytes(report.blob_bytes_freed),
            report.blobs_referenced,
            report.blobs_too_young,
            report.blobs_locked,
            report.uploads_aborted,
            report.uploads_kept,
            report.temp_files_removed,
            indicatif::HumanBytes(report.temp_bytes_freed),
            report.inline_blobs_removed,
            indicatif::HumanBytes(report.inline_bytes_freed),
            report.inline_blobs_referenced,
        )
    };
    print_line(&mut out, &text)?;
    Ok(())
}

/// A barrier between gc's decision and its first deletion, for tests only: with
/// `ARTIFACT_STORE_GC_PAUSE=<path>` set, gc creates `<path>.reached` when it is about to delete
/// its first blob and waits until `<path>` exists. It lets a test run a write at exactly that
/// point; nothing else reads the variable.
mod test_barrier {
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    static PASSED: AtomicBool = AtomicBool::new(false);

    pub(super) async fn reach() {
        let Some(path) = std::env::var_os("ARTIFACT_STORE_GC_PAUSE").map(PathBuf::from) else { return };
        if PASSED.swap(true, Ordering::SeqCst) {
            return;
        }
        let mut reached = path.clone().into_os_string();
        reached.push(".reached");
        if let Err(err) = std::fs::write(&reached, b"") {
            tracing::warn!(%err, "cannot signal the gc test barrier");
        }
        while !path.exists() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}
