//! Small objects' bytes, kept in the log database instead of a blob store.
//!
//! A version whose only part is named by an inline locator (`inline:<BLAKE3 hex>`) has its
//! bytes in the table `inline_blobs` of the log file, keyed by their BLAKE3 digest. The row is
//! inserted by the same job, in the same transaction, as the event that records the version
//! ([`crate::Registry::put_inline_object`]), so the write is durable with the group commit's
//! one fsync and needs no sync of its own.
//!
//! The bytes are not in the event payload: the events table is append-only, and bytes there
//! could never be forgotten once every version naming them is deleted. They are not a view
//! either, since replay could not rebuild them. So the table sits beside the chain: `verify`
//! re-hashes every row against its digest ([`check`]), and `gc` deletes the rows no version
//! or part references ([`crate::Registry::remove_unreferenced_inline_blobs`]). The locator is
//! an ordinary blob id to the views (`blob_refs` counts it like any other), which keeps
//! CopyObject a copy of the locator, not of the bytes.

use rusqlite::Connection;
use serde::Serialize;

use crate::error::Result;
use crate::event::v1::BlobPart;
use crate::queries::Reads as _;
use crate::sqlite::{Registry, Writer};

pub use crate::inline_blob::{InlineBlob, LOCATOR_PREFIX, is_locator};

/// The locator of a version's bytes when the registry holds them whole: one part, inline.
#[must_use]
pub fn locator_of(parts: &[BlobPart]) -> Option<&str> {
    match parts {
        [part] if is_locator(&part.blob) => Some(part.blob.as_str()),
        _ => None,
    }
}

/// What [`check`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Checked {
    /// Rows re-hashed.
    pub checked: u64,
    /// Their total size in bytes.
    pub bytes: u64,
    /// Locators of rows whose bytes do not hash to their digest, in digest order.
    pub corrupt: Vec<String>,
    /// Inline locators the views reference that have no row, in order.
    pub missing: Vec<String>,
}

/// Re-hashes every inline blob against its digest and looks for referenced ones that are
/// gone. `conn` has the log as `main` and the views attached as `views`
/// ([`crate::sqlite::open_read_only`]).
///
/// # Errors
/// SQLite errors.
pub fn check(conn: &Connection) -> Result<Checked> {
    let mut checked = Checked::default();
    let mut statement = conn.prepare("SELECT digest, bytes FROM main.inline_blobs ORDER BY digest")?;
    let mut rows = statement.query([])?;
    while let Some(row) = rows.next()? {
        let digest = row.get_ref(0)?.as_blob().map_err(rusqlite::Error::from)?;
        let bytes = row.get_ref(1)?.as_blob().map_err(rusqlite::Error::from)?;
        checked.checked += 1;
        checked.bytes += bytes.len() as u64;
        if blake3::hash(bytes).as_bytes()[..] != *digest {
            checked.corrupt.push(format!("{LOCATOR_PREFIX}{}", hex::encode(digest)));
        }
    }
    let mut statement =
        conn.prepare("SELECT blob FROM views.blob_refs WHERE blob >= ?1 AND blob < ?2 ORDER BY blob")?;
    let referenced = statement
        .query_map([LOCATOR_PREFIX, "inline;"], |row| row.get::<_, String>(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    for locator in referenced {
        if conn.inline_bytes(&locator)?.is_none() {
            checked.missing.push(locator);
        }
    }
    Ok(checked)
}

/// What [`Registry::remove_unreferenced_inline_blobs`] removed (or would remove).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Removed {
    /// Rows.
    pub blobs: u64,
    /// Their total size in bytes.
    pub bytes: u64,
    /// Rows kept because a version or part references them.
    pub referenced: u64,
}

/// Deletes the rows no version or part references, inside the writer's transaction.
fn remove_unreferenced(writer: &Writer<'_>, dry_run: bool) -> Result<Removed> {
    let mut removed = Removed::default();
    let mut unreferenced = Vec::new();
    for (digest, size) in writer.side().inline_sizes()? {
        let locator = format!("{LOCATOR_PREFIX}{}", hex::encode(&digest));
        if writer.views().blob_refs(&locator)? > 0 {
            removed.referenced += 1;
        } else {
            unreferenced.push(digest);
            removed.blobs += 1;
            removed.bytes += size;
        }
    }
    if !dry_run {
        for digest in unreferenced {
            writer.side().delete_inline(&digest)?;
        }
    }
    Ok(removed)
}

impl Registry {
    /// Deletes every inline blob no version or part references (`gc`). Runs as one writer
    /// job: a write that references the same bytes is ordered before or after it, never
    /// between the check and the delete, so no age guard is needed. With `dry_run`, counts
    /// only.
    ///
    /// # Errors
    /// SQLite errors, [`crate::Error::WriterStopped`].
    pub async fn remove_unreferenced_inline_blobs(&self, dry_run: bool) -> Result<Removed> {
        self.write(move |writer| remove_unreferenced(writer, dry_run)).await
    }
}

/// Stores `blob` for a write, after its checks and before its event. Identical content is
/// kept once.
pub(crate) fn store_for(writer: &Writer<'_>, blob: &InlineBlob) -> Result<()> {
    writer.side().store_inline(blob)
}
