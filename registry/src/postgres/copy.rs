//! Moving a registry between SQLite and PostgreSQL with its whole chain: a team starts with the
//! embedded registry and grows to several gateways, or goes back.

use std::cell::RefCell;

use postgres::Client;
use rusqlite::Connection;

use crate::error::{Error, Result};
use crate::log::{self, ChainHead};

use super::{SharedBatch, StatementCache, append_batch, connect, migrate};

/// Events copied per statement.
const CHUNK: usize = 4096;

/// What [`copy_to_shared`] moved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Copied {
    /// Events, the whole chain.
    pub events: u64,
    /// Inline blobs (small objects' bytes).
    pub inline_blobs: u64,
    /// Secrets of the access keys the registry made.
    pub secrets: u64,
}

/// Copies the SQLite registry `source` (a reader of its log with its views attached, as
/// `sqlite::open_read_only` opens it; not being written: stop its gateway first) into the
/// empty shared log at `url`, in one transaction: every event as it is (same bytes, same
/// hashes), the inline blobs, the access keys' secrets and gc's bookkeeping. The source's
/// chain is verified first. `progress` hears of each verified, then each copied, sequence.
///
/// Check the copy with [`crate::Registry::open_shared`] on a fresh replica: it verifies that
/// each event chains from the one before, and the replica's views can be compared with the
/// source's ([`crate::sqlite::views::dump`]).
///
/// # Errors
/// [`Error::ChainBroken`] for a source whose chain does not verify; [`Error::CommitFailed`]
/// when the shared log is not empty; [`Error::Postgres`], SQLite errors.
pub fn copy_to_shared(source: &Connection, url: &str, mut progress: impl FnMut(u64)) -> Result<Copied> {
    let verified = log::verify_with_progress(source, &mut progress)?;
    if let Some(sequence) = verified.first_mismatch {
        return Err(Error::ChainBroken { sequence });
    }
    let mut client = connect(url)?;
    migrate(&mut client)?;
    let copied = copy_rows(source, &mut client, verified.head, &mut progress)?;
    Ok(copied)
}

fn copy_rows(
    source: &Connection,
    client: &mut Client,
    head: ChainHead,
    progress: &mut impl FnMut(u64),
) -> Result<Copied> {
    let statements = RefCell::new(StatementCache::new());
    let batch = SharedBatch::begin(client, &statements)?;
    if batch.head.sequence != 0 {
        return Err(Error::CommitFailed(format!(
            "the shared log already holds {} events: a registry is copied into an empty database",
            batch.head.sequence
        )));
    }
    let mut tx = batch.tx.into_inner();
    let mut copied = Copied::default();
    let mut cursor = 0;
    while cursor < head.sequence {
        let events = log::fetch_since(source, cursor, CHUNK)?;
        let Some(last) = events.last() else { break };
        let first = cursor + 1;
        cursor = last.sequence;
        append_batch(&mut tx, &statements, &events, &[], first)?;
        copied.events += events.len() as u64;
        progress(cursor);
    }
    // Rows beside the log are stamped with the first sequence, so that a new replica copies
    // them all.
    let mut statement = source.prepare("SELECT digest, bytes FROM main.inline_blobs")?;
    let mut rows = statement.query([])?;
    while let Some(row) = rows.next()? {
        let (digest, bytes): (Vec<u8>, Vec<u8>) = (row.get(0)?, row.get(1)?);
        tx.execute("INSERT INTO inline_blobs (digest, bytes, since) VALUES ($1, $2, 1)", &[&digest, &bytes])?;
        copied.inline_blobs += 1;
    }
    let mut statement = source.prepare("SELECT access_key, secret FROM main.access_key_secrets")?;
    let mut rows = statement.query([])?;
    while let Some(row) = rows.next()? {
        let (key, secret): (String, String) = (row.get(0)?, row.get(1)?);
        tx.execute("INSERT INTO access_key_secrets (access_key, secret, since) VALUES ($1, $2, 1)", &[&key, &secret])?;
        copied.secrets += 1;
    }
    let (epoch, forgotten): (i64, i64) =
        source.query_row("SELECT epoch, forgotten FROM main.deletion_epoch WHERE id = 0", [], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })?;
    tx.execute("UPDATE deletion_epoch SET epoch = $1, forgotten = $2 WHERE id = 0", &[&epoch, &forgotten])?;
    let mut statement = source.prepare("SELECT blob, released FROM main.blob_deletions")?;
    let mut rows = statement.query([])?;
    while let Some(row) = rows.next()? {
        let (blob, released): (String, Option<i64>) = (row.get(0)?, row.get(1)?);
        tx.execute("INSERT INTO blob_deletions (blob, released) VALUES ($1, $2)", &[&blob, &released])?;
    }
    let mut statement = source.prepare("SELECT blob, pinned_at FROM main.blob_pins")?;
    let mut rows = statement.query([])?;
    while let Some(row) = rows.next()? {
        let (blob, pinned_at): (String, i64) = (row.get(0)?, row.get(1)?);
        tx.execute("INSERT INTO blob_pins (blob, pinned_at) VALUES ($1, $2)", &[&blob, &pinned_at])?;
    }
    // Each chunk moved the head past its events; an empty source leaves it where it began.
    tx.commit()?;
    Ok(copied)
}
