//! Garbage collection: deletes the blobs no version or part references, the inline bytes no
//! version references, and (on an S3 upstream) the upstream multipart uploads no open upload
//! names. [`collect`] is one pass; `artifact-store gc` runs one beside a serving gateway, and
//! [`spawn`] runs one every `gc.interval_seconds` in the background of `serve`.
//!
//! **Blobs** are deleted in three steps agreed with writes in the registry
//! (`registry::deletions`), not by file times: a write may place a blob (or, on the local
//! store, find identical content already there and only refresh its mtime) at any moment
//! before its event references it, and the time gc read tells nothing of it.
//! 1. The store is listed; blobs older than `min_age` that a reader finds unreferenced are
//!    candidates (cheap filters that spare the writer; they decide nothing).
//! 2. A batch of candidates is marked under the registry's writer, each only if nothing
//!    references it then. From that commit on, a write naming a marked blob is refused.
//! 3. The marked blobs are deleted from the store, and the marks released under the writer.
//!    A write that placed its blob before the release is refused too, and places its bytes
//!    again once gc is done with them.
//!
//! One pass at a time: a pass holds an exclusive lock on `registry.gc.lock` beside the
//! registry (a lock the kernel drops with its process) and the registry's `gc` lease, so marks
//! still set when a pass begins are those of a pass that died, and this one finishes them. A
//! write that meets such a mark while no pass runs finishes them too ([`finish_dead_pass`]):
//! the next pass may be an hour away, and the mark refuses the write until it is released.
//!
//! **Inline bytes** live in the registry: one writer job checks and deletes them together.
//!
//! **Upstream multipart uploads** (an S3 upstream): every one under the prefix that no open
//! upload in the registry names and that began before the guard is aborted. That catches
//! uploads whose gateway died before recording them, uploads that lifecycle rules aborted in the
//! registry, and aborts that the upstream refused at the time. The guard compares the
//! upstream's times with this machine's clock, so it must exceed their skew.

use std::collections::HashSet;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use futures::StreamExt as _;
use registry::{Lease, Registry};
use serde::Serialize;
use tokio::task::JoinHandle;

use crate::backend::{BlobError, BlobId, BlobStore};
use crate::config::GcConfig;
use crate::outboard::OutboardFiles;
use crate::test_barrier::Barrier;
use registry::queries::Reads;

/// Blobs marked, deleted and released together: few enough that a write meeting a mark waits
/// for one batch of deletions, many enough that the writer sees few gc jobs.
const BATCH: usize = 256;

/// What a pass does.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Blobs and uploads younger than this are left for a later pass.
    pub min_age: Duration,
    /// Count only; delete nothing.
    pub dry_run: bool,
}

/// What a pass did (or, dry, would do).
#[derive(Debug, Default, Serialize)]
pub struct Report {
    /// Whether nothing was deleted.
    pub dry_run: bool,
    /// The age guard, in seconds.
    pub min_age_seconds: u64,
    /// Unreferenced blobs older than the guard, removed.
    pub blobs_removed: u64,
    /// Their total size in bytes.
    pub blob_bytes_freed: u64,
    /// Blobs kept because the registry references them.
    pub blobs_referenced: u64,
    /// Blobs kept because they are younger than the guard.
    pub blobs_too_young: u64,
    /// Unreferenced blobs kept because the upstream still holds them under a mirrored
    /// Object Lock (their retention outlives every version that asked for it, or a legal
    /// hold was set on them directly); a later pass removes them once it has expired.
    pub blobs_locked: u64,
    /// Upstream multipart uploads that no open upload names, older than the guard, aborted.
    pub uploads_aborted: u64,
    /// Upstream multipart uploads kept because an open upload names them or they are young.
    pub uploads_kept: u64,
    /// Stale temp files removed (`artifact-store gc` on the local store only).
    pub temp_files_removed: u64,
    /// Their total size in bytes.
    pub temp_bytes_freed: u64,
    /// Unreferenced inline blobs removed from the registry.
    pub inline_blobs_removed: u64,
    /// Their total size in bytes.
    pub inline_bytes_freed: u64,
    /// Inline blobs kept because a version or part references them.
    pub inline_blobs_referenced: u64,
    /// Outboards (the 1 MiB group digests of large objects) of contents no version has, and
    /// those of multipart parts no open upload has, removed.
    pub outboards_removed: u64,
}

/// The exclusive right to run a pass on one registry, held until dropped.
#[derive(Debug)]
pub struct PassLock {
    /// The locked file: closing it releases the lock.
    _held: File,
}

impl PassLock {
    /// The lock file of the registry at `registry_path`.
    fn path(registry_path: &Path) -> PathBuf {
        registry_path.with_extension("gc.lock")
    }

    /// Takes the lock, waiting for a pass that holds it to end.
    ///
    /// # Errors
    /// I/O errors opening or locking the file.
    pub async fn acquire(registry_path: &Path) -> std::io::Result<Self> {
        let path = Self::path(registry_path);
        tokio::task::spawn_blocking(move || {
            let file = File::options().create(true).truncate(false).write(true).open(path)?;
            file.lock()?;
            Ok(Self { _held: file })
        })
        .await
        .map_err(std::io::Error::other)?
    }

    /// Takes the lock, or `None` when another pass holds it.
    ///
    /// # Errors
    /// I/O errors opening or locking the file.
    pub fn try_acquire(registry_path: &Path) -> std::io::Result<Option<Self>> {
        let file = File::options().create(true).truncate(false).write(true).open(Self::path(registry_path))?;
        match file.try_lock() {
            Ok(()) => Ok(Some(Self { _held: file })),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(err)) => Err(err),
        }
    }
}

/// One pass over `store` and the registry's inline bytes, by the holder of the [`PassLock`]
/// and of the registry's `gc` lease (one pass at a time across gateways sharing a log).
///
/// # Errors
/// Failures to read the registry, list the store or delete a blob; marks set by this pass are
/// released first. A pass whose lease is lost stops before its next deletion and leaves its
/// marks to the pass that takes the lease.
pub async fn collect(
    registry: &Registry,
    store: &dyn BlobStore,
    outboards: &OutboardFiles,
    options: Options,
    _lock: &PassLock,
    lease: &Lease,
) -> anyhow::Result<Report> {
    let mut report =
        Report { dry_run: options.dry_run, min_age_seconds: options.min_age.as_secs(), ..Report::default() };
    let cutoff = SystemTime::now().checked_sub(options.min_age).unwrap_or(SystemTime::UNIX_EPOCH);
    collect_blobs(registry, store, lease, cutoff, options.dry_run, &mut report).await?;
    collect_uploads(registry, store, cutoff, options.dry_run, &mut report).await?;
    collect_outboards(registry, outboards, cutoff, options.dry_run, &mut report).await?;
    let removed = registry
        .remove_unreferenced_inline_blobs(options.dry_run)
        .await
        .context("cannot remove unreferenced inline blobs")?;
    report.inline_blobs_removed = removed.blobs;
    report.inline_bytes_freed = removed.bytes;
    report.inline_blobs_referenced = removed.referenced;
    Ok(report)
}

/// Deletes the store's unreferenced blobs older than `cutoff`, a batch at a time.
async fn collect_blobs(
    registry: &Registry,
    store: &dyn BlobStore,
    lease: &Lease,
    cutoff: SystemTime,
    dry_run: bool,
    report: &mut Report,
) -> anyhow::Result<()> {
    if !dry_run {
        begin_deletions(registry, store, lease, report).await?;
    }
    let mut listing = store.list().await.context("cannot list blobs")?;
    let mut batch: Vec<(String, u64)> = Vec::with_capacity(BATCH);
    loop {
        let entry = listing.next().await.transpose().context("cannot list blobs")?;
        if let Some(entry) = &entry {
            if entry.modified >= cutoff {
                report.blobs_too_young += 1;
            } else {
                batch.push((entry.id.as_str().to_owned(), entry.size));
            }
        }
        if batch.len() == BATCH || (entry.is_none() && !batch.is_empty()) {
            let candidates = unreferenced(registry, std::mem::take(&mut batch), report).await?;
            if dry_run {
                report.blobs_removed += candidates.len() as u64;
                report.blob_bytes_freed += candidates.iter().map(|(_, size)| size).sum::<u64>();
            } else if !candidates.is_empty() {
                delete_batch(registry, store, lease, candidates, report).await?;
            }
        }
        if entry.is_none() {
            return Ok(());
        }
    }
}

/// Begins the deletions of a pass (see `registry::deletions`), and finishes those that a pass
/// which died left marked: deletes their blobs and releases them.
async fn begin_deletions(
    registry: &Registry,
    store: &dyn BlobStore,
    lease: &Lease,
    report: &mut Report,
) -> anyhow::Result<()> {
    let unfinished = registry.begin_deletion_pass().await.context("cannot begin a deletion pass")?;
    if unfinished.is_empty() {
        return Ok(());
    }
    tracing::info!(blobs = unfinished.len(), "finishing the deletions of a gc pass that stopped");
    let mut sizes = Vec::with_capacity(unfinished.len());
    for id in &unfinished {
        // Only the report reads it; a blob the dead pass deleted already is not counted.
        sizes.push(store.size(&BlobId::new(id.as_str())).await.unwrap_or(0));
    }
    delete_marked(registry, store, lease, unfinished, &sizes, report).await
}

/// Finishes the deletions that a pass which died (killed between marking a batch and releasing
/// it) left marked, unless a pass runs, which then does nothing. For a write that met a mark:
/// it is refused until the mark is released, and the next pass may be an hour away.
///
/// Whether a pass runs is asked of both things a pass holds while its marks are set: the
/// [`PassLock`] of this data folder (the gateway's own pass, `artifact-store gc`) and the `gc`
/// lease, which on a registry shared on PostgreSQL is the only one the gateways share (each
/// has a lock file of its own beside its replica). Holding both, this is the pass that takes
/// over from a dead one, as the next pass would: a live pass releases its marks before it lets
/// go of either, and no pass begins until this one has released. A pass that lost its lease
/// stops before its next deletion and releases nothing, as it does for another gateway's pass.
///
/// # Errors
/// Failures to take the lock or the lease, to read the registry or to delete a blob.
pub async fn finish_dead_pass(registry: &Registry, store: &dyn BlobStore) -> anyhow::Result<()> {
    let Some(_lock) = PassLock::try_acquire(registry.path()).context("cannot take the gc lock")? else {
        return Ok(());
    };
    let Some(lease) = registry.try_lease("gc").await.context("cannot take the gc lease")? else {
        return Ok(());
    };
    begin_deletions(registry, store, &lease, &mut Report::default()).await
}

/// The listed blobs a reader finds unreferenced (asked after the listing, so a reference
/// recorded since is seen); the others are counted as referenced.
async fn unreferenced(
    registry: &Registry,
    listed: Vec<(String, u64)>,
    report: &mut Report,
) -> anyhow::Result<Vec<(String, u64)>> {
    let count = listed.len();
    let candidates = registry
        .read(move |conn| {
            let mut candidates = Vec::with_capacity(listed.len());
            for (id, size) in listed {
                if conn.blob_refs(&id)? == 0 {
                    candidates.push((id, size));
                }
            }
            Ok(candidates)
        })
        .await?;
    report.blobs_referenced += (count - candidates.len()) as u64;
    Ok(candidates)
}

/// Marks a batch of candidates, then deletes and releases those marked.
async fn delete_batch(
    registry: &Registry,
    store: &dyn BlobStore,
    lease: &Lease,
    candidates: Vec<(String, u64)>,
    report: &mut Report,
) -> anyhow::Result<()> {
    let ids = candidates.iter().map(|(id, _)| id.clone()).collect();
    let marked = registry.mark_for_deletion(ids).await.context("cannot mark blobs for deletion")?;
    // Referenced since the listing: a write recorded it meanwhile.
    report.blobs_referenced += (candidates.len() - marked.len()) as u64;
    let marked_set: HashSet<&str> = marked.iter().map(String::as_str).collect();
    let sizes: Vec<u64> =
        candidates.iter().filter(|(id, _)| marked_set.contains(id.as_str())).map(|(_, size)| *size).collect();
    MARKED.reach().await;
    delete_marked(registry, store, lease, marked, &sizes, report).await
}

/// Deletes marked blobs (of the given sizes) from the store and releases their marks, also
/// when a deletion fails: a mark released over a blob that is still there only makes the
/// writes that placed it before place it again.
async fn delete_marked(
    registry: &Registry,
    store: &dyn BlobStore,
    lease: &Lease,
    marked: Vec<String>,
    sizes: &[u64],
    report: &mut Report,
) -> anyhow::Result<()> {
    let mut failure = None;
    for (id, size) in marked.iter().zip(sizes) {
        // Another gateway's pass that took the lease finishes these marks itself: it deletes
        // and releases them, and a write may place a blob again once released, which this
        // pass must then not delete. So it stops here, and releases nothing.
        if !lease.confirm().await? {
            anyhow::bail!("the gc lease was lost; the pass stops and leaves its marks to the next");
        }
        let id = BlobId::new(id.as_str());
        match store.delete(&id).await {
            Ok(()) => {
                report.blobs_removed += 1;
                report.blob_bytes_freed += size;
            }
            // Deleted by the pass that marked it, before that pass stopped.
            Err(BlobError::NotFound) => {}
            Err(BlobError::Locked) => {
                tracing::warn!(blob = %id, "unreferenced blob kept: the upstream holds it under Object Lock");
                report.blobs_locked += 1;
            }
            Err(err) => {
                failure = Some(anyhow::Error::new(err).context(format!("cannot remove blob {id}")));
                break;
            }
        }
    }
    registry.release_deletions(marked).await.context("cannot release the blobs' deletion marks")?;
    failure.map_or(Ok(()), Err)
}

/// Removes the kept outboards older than `cutoff` whose object no version has any more (an
/// outboard is named by its object's BLAKE3: versions of one content share it), and the kept
/// groups of multipart parts that no open upload has (aborted, or completed without taking
/// them). One that a write kept just before its version or part was recorded is younger than
/// `cutoff`; one removed anyway is only computed again by the next ranged read.
async fn collect_outboards(
    registry: &Registry,
    outboards: &OutboardFiles,
    cutoff: SystemTime,
    dry_run: bool,
    report: &mut Report,
) -> anyhow::Result<()> {
    let files = outboards.clone();
    let kept = tokio::task::spawn_blocking(move || files.list()).await?.context("cannot list the outboards")?;
    let kept = kept.into_iter().map(|(root, modified)| (*root.as_bytes(), modified)).collect();
    let unused = unnamed(registry, kept, cutoff, |conn, unused| {
        conn.each_version_digest(crate::outboard::GROUP, &mut |digest| {
            unused.remove(digest);
            Ok(())
        })
    })
    .await?;
    report.outboards_removed += unused.len() as u64;
    if !dry_run {
        let files = outboards.clone();
        let removed = move || unused.iter().try_for_each(|root| files.remove(&blake3::Hash::from_bytes(*root)));
        tokio::task::spawn_blocking(removed).await?.context("cannot remove an outboard")?;
    }

    let files = outboards.clone();
    let kept =
        tokio::task::spawn_blocking(move || files.list_parts()).await?.context("cannot list the parts' groups")?;
    let unused = unnamed(registry, kept, cutoff, |conn, unused| {
        conn.each_open_part_subtree(&mut |values| {
            if let Some(name) = crate::outboard::part_name_of_hex(values) {
                unused.remove(&hex::encode(name));
            }
            Ok(())
        })
    })
    .await?;
    report.outboards_removed += unused.len() as u64;
    if !dry_run {
        let files = outboards.clone();
        let removed = move || unused.iter().try_for_each(|cv| files.remove_part(cv));
        tokio::task::spawn_blocking(removed).await?.context("cannot remove a part's groups")?;
    }
    Ok(())
}

/// Of the kept files (named by 32 bytes) older than `cutoff`, those whose hex name `names`
/// does not take out of the set it is given: what nothing in the registry names any more.
async fn unnamed(
    registry: &Registry,
    kept: Vec<([u8; 32], SystemTime)>,
    cutoff: SystemTime,
    names: fn(&dyn Reads, &mut HashSet<String>) -> registry::Result<()>,
) -> anyhow::Result<Vec<[u8; 32]>> {
    let mut unused: HashSet<String> =
        kept.into_iter().filter(|(_, modified)| *modified < cutoff).map(|(name, _)| hex::encode(name)).collect();
    if unused.is_empty() {
        return Ok(Vec::new());
    }
    let unused = registry
        .read(move |conn| {
            names(conn, &mut unused)?;
            Ok(unused)
        })
        .await?;
    Ok(unused.iter().filter_map(|name| <[u8; 32]>::try_from(hex::decode(name).ok()?).ok()).collect())
}

/// Aborts the store's multipart uploads begun before `cutoff` that no open upload names.
async fn collect_uploads(
    registry: &Registry,
    store: &dyn BlobStore,
    cutoff: SystemTime,
    dry_run: bool,
    report: &mut Report,
) -> anyhow::Result<()> {
    let uploads = store.list_multipart().await.context("cannot list the upstream multipart uploads")?;
    if uploads.is_empty() {
        return Ok(());
    }
    // Read after the listing: an upload recorded since is seen here.
    let open: HashSet<String> =
        registry.read(|conn| conn.store_uploads()).await?.into_iter().map(|upload| upload.upload_id).collect();
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

/// The running background collector; dropping it stops the task.
#[derive(Debug)]
pub struct Collector(JoinHandle<()>);

impl Drop for Collector {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Starts a pass every `config.interval_seconds` on the current Tokio runtime, skipping a turn
/// while another pass (an `artifact-store gc`) holds the lock. `None` when `config` turns it off.
#[must_use]
pub fn spawn(
    registry: Registry,
    store: Arc<dyn BlobStore>,
    outboards: OutboardFiles,
    config: &GcConfig,
) -> Option<Collector> {
    if !config.enabled {
        return None;
    }
    let interval = Duration::from_secs(config.interval_seconds);
    let options = Options { min_age: Duration::from_secs(config.min_age_seconds), dry_run: false };
    Some(Collector(tokio::spawn(async move {
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            // One pass at a time across gateways sharing a log, and beside `artifact-store gc`.
            let lease = match registry.try_lease("gc").await {
                Ok(Some(lease)) => lease,
                Ok(None) => continue,
                Err(err) => {
                    tracing::error!(error = %err, "gc cannot take its lease");
                    continue;
                }
            };
            let lock = match PassLock::try_acquire(registry.path()) {
                Ok(Some(lock)) => lock,
                Ok(None) => continue,
                Err(err) => {
                    tracing::error!(error = %err, "gc cannot take its lock");
                    continue;
                }
            };
            match collect(&registry, store.as_ref(), &outboards, options, &lock, &lease).await {
                Ok(report)
                    if report.blobs_removed
                        + report.inline_blobs_removed
                        + report.uploads_aborted
                        + report.outboards_removed
                        > 0 =>
                {
                    tracing::info!(
                        blobs = report.blobs_removed,
                        bytes = report.blob_bytes_freed,
                        inline = report.inline_blobs_removed,
                        uploads = report.uploads_aborted,
                        outboards = report.outboards_removed,
                        "gc"
                    );
                }
                Ok(_) => {}
                Err(err) if err.downcast_ref::<registry::Error>().is_some_and(is_stopped) => break,
                Err(err) => tracing::error!(error = format!("{err:#}"), "gc failed"),
            }
        }
    })))
}

fn is_stopped(err: &registry::Error) -> bool {
    matches!(err, registry::Error::WriterStopped)
}

/// A barrier between gc's marking of its first batch and its deletions, for tests only
/// (`ARTIFACT_STORE_GC_PAUSE`): a test runs a write at exactly that point.
static MARKED: Barrier = Barrier::new("ARTIFACT_STORE_GC_PAUSE");
