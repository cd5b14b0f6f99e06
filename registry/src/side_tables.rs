//! The engine seam for the tables kept beside the log: rows that are neither events nor views,
//! written in the transaction of the events they go with.
//!
//! - Inline blobs: small objects' bytes ([`crate::inline`]). Not payload (the chain names them
//!   by digest) and not a view: gc deletes rows that nothing references.
//! - Access key secrets ([`crate::identities`]): an event never carries a secret.
//! - gc's deletion marks, epochs and pins ([`crate::deletions`]), which gc and writes agree on
//!   under the writer.
//! - The commit probe, a row readiness rewrites to learn whether commits still succeed.
//!
//! Each engine implements [`SideTables`] over its transaction (inside the writer) or a reader's
//! snapshot. The operations that use them hold the rules; the engines only store.

use crate::error::Result;
use crate::inline_blob::InlineBlob;

/// A pin's row id: see [`crate::deletions::Pin`].
pub type PinId = i64;

/// The tables beside the log, as one engine stores them.
pub trait SideTables {
    /// Inserts an inline blob's bytes unless a row with its digest exists.
    fn store_inline(&self, blob: &InlineBlob) -> Result<()>;
    /// Every inline blob's digest and size in bytes.
    fn inline_sizes(&self) -> Result<Vec<(Vec<u8>, u64)>>;
    /// Deletes the inline blob with this digest.
    fn delete_inline(&self, digest: &[u8]) -> Result<()>;

    /// Whether the registry holds the secret of `access_key`.
    fn holds_secret(&self, access_key: &str) -> Result<bool>;
    /// Stores the secret of a new access key.
    fn store_secret(&self, access_key: &str, secret: &str) -> Result<()>;
    /// Deletes the secret of `access_key`.
    fn delete_secret(&self, access_key: &str) -> Result<()>;

    /// Whether any write holds a pin on `blob`.
    fn pinned(&self, blob: &str) -> Result<bool>;
    /// The blob `pin` holds, while it exists.
    fn pinned_blob(&self, pin: PinId) -> Result<Option<String>>;
    /// Pins `blob` at `now` (milliseconds) and returns the new pin.
    fn pin(&self, blob: &str, now: i64) -> Result<PinId>;
    /// Removes `pin`.
    fn unpin(&self, pin: PinId) -> Result<()>;
    /// How many deletion batches have ended, and up to which epoch ended deletions are
    /// forgotten.
    fn deletion_epochs(&self) -> Result<(u64, u64)>;
    /// `blob`'s deletion mark: `None` when unmarked, `Some(None)` while its deletion runs,
    /// `Some(Some(epoch))` once it ended at `epoch`.
    fn deletion_mark(&self, blob: &str) -> Result<Option<Option<u64>>>;
    /// Starts a gc pass: drops pins older than `stale_before` and the marks of ended
    /// deletions, forgets up to the current epoch, and returns the blobs still marked (by a
    /// pass that died), in order.
    fn begin_deletion_pass(&self, stale_before: i64) -> Result<Vec<String>>;
    /// Marks `blob` as being deleted.
    fn mark_for_deletion(&self, blob: &str) -> Result<()>;
    /// Ends the deletion of `blobs`: advances the epoch and records it as theirs.
    fn release_deletions(&self, blobs: &[String]) -> Result<()>;

    /// Rewrites the commit probe's row with `now`.
    fn probe(&self, now: i64) -> Result<()>;
}
