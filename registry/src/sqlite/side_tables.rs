//! [`SideTables`] in SQLite: tables of the log database, `main` on every connection.

use rusqlite::{Connection, OptionalExtension as _, params};

use crate::error::Result;
use crate::inline_blob::InlineBlob;
use crate::side_tables::{PinId, SideTables};

impl SideTables for Connection {
    fn store_inline(&self, blob: &InlineBlob) -> Result<()> {
        // A row of the same digest is replaced, not kept: it may have been damaged since, and
        // keeping it would acknowledge a write that can never be read (these bytes are the
        // write's own, known good).
        self.prepare_cached(
            "INSERT INTO main.inline_blobs (digest, bytes) VALUES (?1, ?2)
             ON CONFLICT (digest) DO UPDATE SET bytes = excluded.bytes",
        )?
        .execute(params![&blob.digest[..], &blob.bytes])?;
        Ok(())
    }

    fn inline_sizes(&self) -> Result<Vec<(Vec<u8>, u64)>> {
        let mut statement = self.prepare("SELECT digest, length(bytes) FROM main.inline_blobs")?;
        let rows = statement.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    fn delete_inline(&self, digest: &[u8]) -> Result<()> {
        self.prepare_cached("DELETE FROM main.inline_blobs WHERE digest = ?1")?.execute([digest])?;
        Ok(())
    }

    fn holds_secret(&self, access_key: &str) -> Result<bool> {
        Ok(self
            .prepare_cached("SELECT 1 FROM main.access_key_secrets WHERE access_key = ?1")?
            .query_row([access_key], |_| Ok(()))
            .optional()?
            .is_some())
    }

    fn store_secret(&self, access_key: &str, secret: &str) -> Result<()> {
        self.prepare_cached("INSERT INTO main.access_key_secrets (access_key, secret) VALUES (?1, ?2)")?
            .execute([access_key, secret])?;
        Ok(())
    }

    fn delete_secret(&self, access_key: &str) -> Result<()> {
        self.prepare_cached("DELETE FROM main.access_key_secrets WHERE access_key = ?1")?.execute([access_key])?;
        Ok(())
    }

    fn pinned(&self, blob: &str) -> Result<bool> {
        Ok(self
            .prepare_cached("SELECT EXISTS (SELECT 1 FROM main.blob_pins WHERE blob = ?1)")?
            .query_row([blob], |row| row.get(0))?)
    }

    fn pinned_blob(&self, pin: PinId) -> Result<Option<String>> {
        Ok(self
            .prepare_cached("SELECT blob FROM main.blob_pins WHERE pin = ?1")?
            .query_row([pin], |row| row.get(0))
            .optional()?)
    }

    fn pin(&self, blob: &str, now: i64) -> Result<PinId> {
        self.prepare_cached("INSERT INTO main.blob_pins (blob, pinned_at) VALUES (?1, ?2)")?
            .execute(params![blob, now])?;
        Ok(self.last_insert_rowid())
    }

    fn unpin(&self, pin: PinId) -> Result<()> {
        self.prepare_cached("DELETE FROM main.blob_pins WHERE pin = ?1")?.execute([pin])?;
        Ok(())
    }

    fn deletion_epochs(&self) -> Result<(u64, u64)> {
        Ok(self
            .prepare_cached("SELECT epoch, forgotten FROM main.deletion_epoch WHERE id = 0")?
            .query_row([], |row| Ok((row.get(0)?, row.get(1)?)))?)
    }

    fn deletion_mark(&self, blob: &str) -> Result<Option<Option<u64>>> {
        Ok(self
            .prepare_cached("SELECT released FROM main.blob_deletions WHERE blob = ?1")?
            .query_row([blob], |row| row.get(0))
            .optional()?)
    }

    fn begin_deletion_pass(&self, stale_before: i64) -> Result<Vec<String>> {
        self.prepare_cached("DELETE FROM main.blob_pins WHERE pinned_at < ?1")?.execute([stale_before])?;
        self.prepare_cached("DELETE FROM main.blob_deletions WHERE released IS NOT NULL")?.execute([])?;
        self.prepare_cached("UPDATE main.deletion_epoch SET forgotten = epoch WHERE id = 0")?.execute([])?;
        let mut statement = self.prepare_cached("SELECT blob FROM main.blob_deletions ORDER BY blob")?;
        let marked = statement.query_map([], |row| row.get(0))?.collect::<rusqlite::Result<Vec<String>>>()?;
        Ok(marked)
    }

    fn mark_for_deletion(&self, blob: &str) -> Result<()> {
        self.prepare_cached("INSERT OR REPLACE INTO main.blob_deletions (blob, released) VALUES (?1, NULL)")?
            .execute([blob])?;
        Ok(())
    }

    fn release_deletions(&self, blobs: &[String]) -> Result<()> {
        self.prepare_cached("UPDATE main.deletion_epoch SET epoch = epoch + 1 WHERE id = 0")?.execute([])?;
        let (epoch, _) = self.deletion_epochs()?;
        let mut release =
            self.prepare_cached("UPDATE main.blob_deletions SET released = ?2 WHERE blob = ?1 AND released IS NULL")?;
        for blob in blobs {
            release.execute(params![blob, epoch])?;
        }
        Ok(())
    }

    fn probe(&self, now: i64) -> Result<()> {
        self.prepare_cached("UPDATE main.commit_probe SET at = ?1 WHERE id = 0")?.execute([now])?;
        Ok(())
    }
}
