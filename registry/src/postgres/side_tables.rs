//! [`SideTables`] in PostgreSQL: the shared tables, over a batch's transaction or a reader's
//! connection.

use std::cell::RefCell;

use postgres::GenericClient;

use crate::error::Result;
use crate::inline_blob::InlineBlob;
use crate::side_tables::{PinId, SideTables};

use super::column;

/// The shared tables beside the log. In a batch, inline bytes and secrets are also written to
/// the replica's tables, so that the gateway reads them locally, and rows are stamped with the
/// batch's first sequence (`since`) for other gateways to copy them when they catch up.
pub(crate) struct SharedTables<'a, C: GenericClient> {
    client: &'a RefCell<C>,
    replica: Option<&'a dyn SideTables>,
    since: i64,
}

impl<'a, C: GenericClient> SharedTables<'a, C> {
    pub(crate) fn in_batch(client: &'a RefCell<C>, replica: &'a dyn SideTables, since: u64) -> Self {
        Self { client, replica: Some(replica), since: column(since) }
    }

    /// The tables as a reader sees them (no writes are made through a reader).
    pub(crate) fn reading(client: &'a RefCell<C>) -> Self {
        Self { client, replica: None, since: 0 }
    }
}

impl<C: GenericClient> SideTables for SharedTables<'_, C> {
    fn store_inline(&self, blob: &InlineBlob) -> Result<()> {
        self.client.borrow_mut().execute(
            "INSERT INTO inline_blobs (digest, bytes, since) VALUES ($1, $2, $3) ON CONFLICT (digest) DO NOTHING",
            &[&&blob.digest[..], &blob.bytes, &self.since],
        )?;
        match self.replica {
            Some(replica) => replica.store_inline(blob),
            None => Ok(()),
        }
    }

    fn inline_sizes(&self) -> Result<Vec<(Vec<u8>, u64)>> {
        let rows =
            self.client.borrow_mut().query("SELECT digest, octet_length(bytes)::bigint FROM inline_blobs", &[])?;
        Ok(rows.iter().map(|row| (row.get(0), u64::try_from(row.get::<_, i64>(1)).unwrap_or(0))).collect())
    }

    fn delete_inline(&self, digest: &[u8]) -> Result<()> {
        self.client.borrow_mut().execute("DELETE FROM inline_blobs WHERE digest = $1", &[&digest])?;
        match self.replica {
            Some(replica) => replica.delete_inline(digest),
            None => Ok(()),
        }
    }

    fn holds_secret(&self, access_key: &str) -> Result<bool> {
        let row = self
            .client
            .borrow_mut()
            .query_opt("SELECT 1 FROM access_key_secrets WHERE access_key = $1", &[&access_key])?;
        Ok(row.is_some())
    }

    fn store_secret(&self, access_key: &str, secret: &str) -> Result<()> {
        self.client.borrow_mut().execute(
            "INSERT INTO access_key_secrets (access_key, secret, since) VALUES ($1, $2, $3)",
            &[&access_key, &secret, &self.since],
        )?;
        match self.replica {
            Some(replica) => replica.store_secret(access_key, secret),
            None => Ok(()),
        }
    }

    fn delete_secret(&self, access_key: &str) -> Result<()> {
        self.client.borrow_mut().execute("DELETE FROM access_key_secrets WHERE access_key = $1", &[&access_key])?;
        match self.replica {
            Some(replica) => replica.delete_secret(access_key),
            None => Ok(()),
        }
    }

    fn pinned(&self, blob: &str) -> Result<bool> {
        let row = self.client.borrow_mut().query_opt("SELECT 1 FROM blob_pins WHERE blob = $1 LIMIT 1", &[&blob])?;
        Ok(row.is_some())
    }

    fn pinned_blob(&self, pin: PinId) -> Result<Option<String>> {
        let row = self.client.borrow_mut().query_opt("SELECT blob FROM blob_pins WHERE pin = $1", &[&pin])?;
        Ok(row.map(|row| row.get(0)))
    }

    fn pin(&self, blob: &str, now: i64) -> Result<PinId> {
        let row = self
            .client
            .borrow_mut()
            .query_one("INSERT INTO blob_pins (blob, pinned_at) VALUES ($1, $2) RETURNING pin", &[&blob, &now])?;
        Ok(row.get(0))
    }

    fn unpin(&self, pin: PinId) -> Result<()> {
        self.client.borrow_mut().execute("DELETE FROM blob_pins WHERE pin = $1", &[&pin])?;
        Ok(())
    }

    fn deletion_epochs(&self) -> Result<(u64, u64)> {
        let row =
            self.client.borrow_mut().query_one("SELECT epoch, forgotten FROM deletion_epoch WHERE id = 0", &[])?;
        let epoch = |index: usize| u64::try_from(row.get::<_, i64>(index)).unwrap_or(0);
        Ok((epoch(0), epoch(1)))
    }

    fn deletion_mark(&self, blob: &str) -> Result<Option<Option<u64>>> {
        let row =
            self.client.borrow_mut().query_opt("SELECT released FROM blob_deletions WHERE blob = $1", &[&blob])?;
        Ok(row.map(|row| row.get::<_, Option<i64>>(0).map(|epoch| u64::try_from(epoch).unwrap_or(0))))
    }

    fn begin_deletion_pass(&self, stale_before: i64) -> Result<Vec<String>> {
        let mut client = self.client.borrow_mut();
        client.execute("DELETE FROM blob_pins WHERE pinned_at < $1", &[&stale_before])?;
        client.execute("DELETE FROM blob_deletions WHERE released IS NOT NULL", &[])?;
        client.execute("UPDATE deletion_epoch SET forgotten = epoch WHERE id = 0", &[])?;
        let rows = client.query("SELECT blob FROM blob_deletions ORDER BY blob COLLATE \"C\"", &[])?;
        Ok(rows.iter().map(|row| row.get(0)).collect())
    }

    fn mark_for_deletion(&self, blob: &str) -> Result<()> {
        self.client.borrow_mut().execute(
            "INSERT INTO blob_deletions (blob, released) VALUES ($1, NULL)
             ON CONFLICT (blob) DO UPDATE SET released = NULL",
            &[&blob],
        )?;
        Ok(())
    }

    fn release_deletions(&self, blobs: &[String]) -> Result<()> {
        let mut client = self.client.borrow_mut();
        let epoch: i64 =
            client.query_one("UPDATE deletion_epoch SET epoch = epoch + 1 WHERE id = 0 RETURNING epoch", &[])?.get(0);
        client.execute(
            "UPDATE blob_deletions SET released = $2 WHERE blob = ANY($1) AND released IS NULL",
            &[&blobs, &epoch],
        )?;
        Ok(())
    }

    fn probe(&self, now: i64) -> Result<()> {
        self.client.borrow_mut().execute("UPDATE commit_probe SET at = $1 WHERE id = 0", &[&now])?;
        Ok(())
    }
}
