//! [`SideTables`] in PostgreSQL: the shared tables, over a batch's transaction or a reader's
//! connection.

use std::cell::{Cell, RefCell};

use postgres::types::ToSql;
use postgres::{GenericClient, Row};

use crate::error::{Error, Result};
use crate::inline_blob::InlineBlob;
use crate::side_tables::{PinId, SideTables};

use super::{StatementCache, column, query_prepared};

/// Most bytes of inline objects a batch holds back for the statement that appends its events.
const INLINE_HELD_BYTES: usize = 16 << 20;

/// The shared tables beside the log. In a batch, inline bytes and secrets are also written to
/// the replica's tables, so that the gateway reads them locally, and rows are stamped with the
/// batch's first sequence (`since`) for other gateways to copy them when they catch up.
///
/// The batch's jobs ask the same questions many times under the head's lock, which every
/// gateway waits for: statements are prepared once per connection, and the deletion epochs and
/// whether any blob is marked (gc runs rarely) are read once per batch and kept until a write
/// changes them.
pub(crate) struct SharedTables<'a, C: GenericClient> {
    client: &'a RefCell<C>,
    replica: Option<&'a dyn SideTables>,
    /// In a batch, the inline bytes stored so far: written with its events, in the statement
    /// that appends them, rather than one statement each under the head's lock.
    inline_stored: Option<&'a RefCell<Vec<InlineBlob>>>,
    since: i64,
    statements: &'a RefCell<StatementCache>,
    epochs: Cell<Option<(u64, u64)>>,
    any_marks: Cell<Option<bool>>,
}

impl<'a, C: GenericClient> SharedTables<'a, C> {
    pub(crate) fn in_batch(
        client: &'a RefCell<C>,
        statements: &'a RefCell<StatementCache>,
        replica: &'a dyn SideTables,
        inline_stored: &'a RefCell<Vec<InlineBlob>>,
        since: u64,
    ) -> Self {
        Self::new(client, statements, Some((replica, inline_stored)), column(since))
    }

    /// The tables as a reader sees them (no writes are made through a reader).
    pub(crate) fn reading(client: &'a RefCell<C>, statements: &'a RefCell<StatementCache>) -> Self {
        Self::new(client, statements, None, 0)
    }

    fn new(
        client: &'a RefCell<C>,
        statements: &'a RefCell<StatementCache>,
        batch: Option<(&'a dyn SideTables, &'a RefCell<Vec<InlineBlob>>)>,
        since: i64,
    ) -> Self {
        Self {
            client,
            replica: batch.map(|(replica, _)| replica),
            inline_stored: batch.map(|(_, stored)| stored),
            since,
            statements,
            epochs: Cell::new(None),
            any_marks: Cell::new(None),
        }
    }

    fn query(&self, sql: &'static str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>> {
        query_prepared(self.statements, &mut *self.client.borrow_mut(), sql, params)
    }

    fn execute(&self, sql: &'static str, params: &[&(dyn ToSql + Sync)]) -> Result<()> {
        query_prepared(self.statements, &mut *self.client.borrow_mut(), sql, params).map(drop)
    }

    fn forget_deletions(&self) {
        self.epochs.set(None);
        self.any_marks.set(None);
    }
}

impl<C: GenericClient> SideTables for SharedTables<'_, C> {
    fn store_inline(&self, blob: &InlineBlob) -> Result<()> {
        // Only a batch stores, with the stamp (`since`) of its events.
        let (Some(replica), Some(stored)) = (self.replica, self.inline_stored) else {
            return Err(Error::CommitFailed("inline bytes are stored in a batch, never through a reader".to_owned()));
        };
        let mut stored = stored.borrow_mut();
        if !stored.iter().any(|earlier| earlier.digest == blob.digest) {
            stored.push(blob.clone());
        }
        // Many large inline objects in one batch: written now, so that no statement carries
        // an unbounded array (PostgreSQL refuses values past 1 GiB). A row already there is
        // replaced, as by the batch's append.
        if stored.iter().map(|blob| blob.bytes.len()).sum::<usize>() > INLINE_HELD_BYTES {
            let digests: Vec<&[u8]> = stored.iter().map(|blob| &blob.digest[..]).collect();
            let bytes: Vec<&[u8]> = stored.iter().map(|blob| blob.bytes.as_slice()).collect();
            self.execute(
                "INSERT INTO inline_blobs (digest, bytes, since)
                 SELECT digest, bytes, $3 FROM UNNEST($1::bytea[], $2::bytea[]) AS stored (digest, bytes)
                 ON CONFLICT (digest) DO UPDATE SET bytes = excluded.bytes",
                &[&digests, &bytes, &self.since],
            )?;
            stored.clear();
        }
        replica.store_inline(blob)
    }

    fn inline_sizes(&self) -> Result<Vec<(Vec<u8>, u64)>> {
        let rows = self.query("SELECT digest, octet_length(bytes)::bigint FROM inline_blobs", &[])?;
        let mut sizes: Vec<(Vec<u8>, u64)> =
            rows.iter().map(|row| (row.get(0), u64::try_from(row.get::<_, i64>(1)).unwrap_or(0))).collect();
        // And those the batch stored, which reach the table when it commits.
        for blob in self.inline_stored.map(RefCell::borrow).iter().flat_map(|stored| stored.iter()) {
            if !sizes.iter().any(|(digest, _)| digest[..] == blob.digest[..]) {
                sizes.push((blob.digest.to_vec(), blob.bytes.len() as u64));
            }
        }
        Ok(sizes)
    }

    fn delete_inline(&self, digest: &[u8]) -> Result<()> {
        // Only a batch holds the head's lock and knows the stamp (`since`) a removal takes.
        debug_assert!(self.replica.is_some(), "inline bytes are removed in a batch, never through a reader");
        if let Some(stored) = self.inline_stored {
            stored.borrow_mut().retain(|blob| blob.digest[..] != *digest);
        }
        self.execute("DELETE FROM inline_blobs WHERE digest = $1", &[&digest])?;
        // For the other gateways' replicas, which hold copies (`pull`, `SharedBatch::pull_into`).
        self.execute("INSERT INTO inline_removals (digest, since) VALUES ($1, $2)", &[&digest, &self.since])?;
        self.execute("UPDATE registry_head SET removed_since = $1 WHERE id = 0", &[&self.since])?;
        match self.replica {
            Some(replica) => replica.delete_inline(digest),
            None => Ok(()),
        }
    }

    fn holds_secret(&self, access_key: &str) -> Result<bool> {
        Ok(!self.query("SELECT 1 FROM access_key_secrets WHERE access_key = $1", &[&access_key])?.is_empty())
    }

    fn store_secret(&self, access_key: &str, secret: &str) -> Result<()> {
        self.execute(
            "INSERT INTO access_key_secrets (access_key, secret, since) VALUES ($1, $2, $3)",
            &[&access_key, &secret, &self.since],
        )?;
        match self.replica {
            Some(replica) => replica.store_secret(access_key, secret),
            None => Ok(()),
        }
    }

    fn delete_secret(&self, access_key: &str) -> Result<()> {
        self.execute("DELETE FROM access_key_secrets WHERE access_key = $1", &[&access_key])?;
        match self.replica {
            Some(replica) => replica.delete_secret(access_key),
            None => Ok(()),
        }
    }

    fn pinned(&self, blob: &str) -> Result<bool> {
        Ok(!self.query("SELECT 1 FROM blob_pins WHERE blob = $1 LIMIT 1", &[&blob])?.is_empty())
    }

    fn pinned_blob(&self, pin: PinId) -> Result<Option<String>> {
        let rows = self.query("SELECT blob FROM blob_pins WHERE pin = $1", &[&pin])?;
        Ok(rows.first().map(|row| row.get(0)))
    }

    fn pin(&self, blob: &str, now: i64) -> Result<PinId> {
        let rows =
            self.query("INSERT INTO blob_pins (blob, pinned_at) VALUES ($1, $2) RETURNING pin", &[&blob, &now])?;
        Ok(rows[0].get(0))
    }

    fn unpin(&self, pin: PinId) -> Result<()> {
        self.execute("DELETE FROM blob_pins WHERE pin = $1", &[&pin])?;
        Ok(())
    }

    fn deletion_epochs(&self) -> Result<(u64, u64)> {
        if let Some(epochs) = self.epochs.get() {
            return Ok(epochs);
        }
        let rows = self.query("SELECT epoch, forgotten FROM deletion_epoch WHERE id = 0", &[])?;
        let epoch = |index: usize| u64::try_from(rows[0].get::<_, i64>(index)).unwrap_or(0);
        let epochs = (epoch(0), epoch(1));
        self.epochs.set(Some(epochs));
        Ok(epochs)
    }

    fn deletion_mark(&self, blob: &str) -> Result<Option<Option<u64>>> {
        if self.any_marks.get().is_none() {
            let rows = self.query("SELECT EXISTS (SELECT 1 FROM blob_deletions)", &[])?;
            self.any_marks.set(Some(rows[0].get(0)));
        }
        if self.any_marks.get() == Some(false) {
            return Ok(None);
        }
        let rows = self.query("SELECT released FROM blob_deletions WHERE blob = $1", &[&blob])?;
        Ok(rows.first().map(|row| row.get::<_, Option<i64>>(0).map(|epoch| u64::try_from(epoch).unwrap_or(0))))
    }

    fn begin_deletion_pass(&self, stale_before: i64) -> Result<Vec<String>> {
        self.forget_deletions();
        self.execute("DELETE FROM blob_pins WHERE pinned_at < $1", &[&stale_before])?;
        self.execute("DELETE FROM blob_deletions WHERE released IS NOT NULL", &[])?;
        self.execute("UPDATE deletion_epoch SET forgotten = epoch WHERE id = 0", &[])?;
        let rows = self.query("SELECT blob FROM blob_deletions ORDER BY blob COLLATE \"C\"", &[])?;
        Ok(rows.iter().map(|row| row.get(0)).collect())
    }

    fn mark_for_deletion(&self, blob: &str) -> Result<()> {
        self.forget_deletions();
        self.execute(
            "INSERT INTO blob_deletions (blob, released) VALUES ($1, NULL)
             ON CONFLICT (blob) DO UPDATE SET released = NULL",
            &[&blob],
        )?;
        Ok(())
    }

    fn release_deletions(&self, blobs: &[String]) -> Result<()> {
        self.forget_deletions();
        let rows = self.query("UPDATE deletion_epoch SET epoch = epoch + 1 WHERE id = 0 RETURNING epoch", &[])?;
        let epoch: i64 = rows[0].get(0);
        self.execute(
            "UPDATE blob_deletions SET released = $2 WHERE blob = ANY($1) AND released IS NULL",
            &[&blobs, &epoch],
        )?;
        Ok(())
    }

    fn probe(&self, now: i64) -> Result<()> {
        self.execute("UPDATE commit_probe SET at = $1 WHERE id = 0", &[&now])?;
        Ok(())
    }
}
