//! Blob deletions that gc and writes agree on under the registry's writer.
//!
//! gc may run beside a serving gateway, and a write may name a blob that gc is about to
//! delete: the local store keeps identical content once, so a PUT of bytes that an old,
//! unreferenced blob already holds places nothing new and only references that blob; and on
//! any store, a write's blob is unreferenced from the moment it is placed until its event
//! commits. The time of a blob's file says nothing about a write that has placed it and not
//! yet committed, so gc and writes decide here instead, in writer transactions that SQLite
//! serialises (gc's own writer beside the gateway's, or the gateway's background gc):
//!
//! 1. gc marks the blobs it is going to delete ([`Registry::mark_for_deletion`]): only those
//!    that no version or part references at that moment.
//! 2. gc deletes them from the store, outside the writer.
//! 3. gc releases the marks ([`Registry::release_deletions`]); that advances the deletion
//!    epoch, and each released blob remembers the epoch its deletion ended at until the next
//!    pass forgets it ([`Registry::begin_deletion_pass`]).
//!
//! A write that places a blob reads the epoch first ([`Registry::deletion_epoch`]) and its job
//! names it (`check_reference`). The job accepts a blob that something references already
//! (a referenced blob is never marked, so it is in place and stays), and an unreferenced one
//! only if no deletion of it can have ended after the write read the epoch: it is not marked,
//! its last deletion ended at or before that epoch, and that deletion is not forgotten yet.
//! Otherwise the job refuses with [`Error::BlobDeleted`].
//!
//! A refused write must not race gc again: gc running pass after pass (as it may with a
//! minimum age of zero) could otherwise refuse the same write each time. So it pins the blob
//! first ([`Registry::pin_blob`]): from that commit on, gc marks it no more. The write then
//! waits until gc's pending deletion of it (if any) is released, places its bytes again and
//! retries naming the pin ([`Placement::Pinned`]), which the job accepts while the pin exists
//! and the blob is not marked, whatever passes ran meanwhile; the write then unpins it
//! ([`Registry::unpin`]). A pin that its write never removed (the gateway died) is dropped by
//! the first pass that begins after [`PIN_LIFETIME_MS`], so it only delays the blob's deletion.
//!
//! A reference made without placing anything (a copy, a multipart completion) must name a blob
//! that is referenced already. A copy refused so is not gc's doing (its source was deleted or
//! replaced after the copy read it, gc or not): its job says so, [`Error::CopySourceChanged`].
//!
//! Only one pass may run at a time (the gateway holds a lock file and a lease for it): a pass
//! that finds marks left by a pass that died deletes and releases them first, and so does a
//! write that meets one while no pass runs (it begins a pass of its own for that), since those
//! marks refuse it until they are released.

use crate::error::{Error, Result};
use crate::inline;
use crate::side_tables::PinId;
use crate::sqlite::{Registry, Writer};

/// How many deletion batches had ended when a write read it. A write names the epoch it read
/// before placing its blob; see the module documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Epoch(u64);

impl Epoch {
    /// The epoch of a registry in which no deletion has ended yet. Naming an epoch older than
    /// the one read is always safe: the write is refused more often, never accepted wrongly.
    pub const ORIGIN: Epoch = Epoch(0);
}

/// A write's hold on a blob it places again after gc deleted it: gc does not mark a pinned
/// blob. See the module documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pin(PinId);

/// How a write that names a blob it placed stands against gc, for the job to check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// Placed after reading this deletion epoch.
    After(Epoch),
    /// Placed again under this pin, after gc had released its deletion of the blob.
    Pinned(Pin),
}

impl From<Epoch> for Placement {
    fn from(epoch: Epoch) -> Self {
        Placement::After(epoch)
    }
}

/// How long a pin holds: a pass that begins later drops it, its write being gone.
pub const PIN_LIFETIME_MS: i64 = 60 * 60 * 1000;

/// Refuses a job's reference to `blob` when gc may have taken the blob from the store:
/// `placement` tells how the caller placed it (`None` when the caller placed nothing and relies
/// on the blob being referenced). Inline bytes that the job stores itself are not checked here.
///
/// # Errors
/// [`Error::BlobDeleted`]; SQLite errors.
pub(crate) fn check_reference(writer: &Writer<'_>, blob: &str, placement: Option<Placement>) -> Result<()> {
    if writer.views().blob_refs(blob)? > 0 {
        return Ok(());
    }
    let refused = || Err(Error::BlobDeleted { blob: blob.to_owned() });
    // Inline rows are deleted by gc in one job with its reference check: they have no marks,
    // so only the job that stores them may name them unreferenced.
    let placed_after = match placement.filter(|_| !inline::is_locator(blob)) {
        None => return refused(),
        Some(Placement::After(Epoch(placed_after))) => placed_after,
        Some(Placement::Pinned(Pin(pin))) => {
            // No mark can have been made since the pin, and the write placed the blob again
            // after the deletion marked before it was released.
            let side = writer.side();
            return if side.pinned_blob(pin)?.as_deref() == Some(blob) && side.deletion_mark(blob)? != Some(None) {
                Ok(())
            } else {
                refused()
            };
        }
    };
    let (_, forgotten) = writer.side().deletion_epochs()?;
    if placed_after < forgotten {
        return refused();
    }
    match writer.side().deletion_mark(blob)? {
        None => Ok(()),
        Some(Some(released)) if released <= placed_after => Ok(()),
        Some(_) => refused(),
    }
}

impl Registry {
    /// The epoch a write reads before it places a blob in the store, on a reader connection.
    ///
    /// # Errors
    /// SQLite errors.
    pub async fn deletion_epoch(&self) -> Result<Epoch> {
        self.read_side(|side| Ok(Epoch(side.deletion_epochs()?.0))).await
    }

    /// Whether gc is deleting `blob` now (it is marked and not yet released).
    ///
    /// # Errors
    /// SQLite errors.
    pub async fn deletion_pending(&self, blob: String) -> Result<bool> {
        self.read_side(move |side| Ok(side.deletion_mark(&blob)? == Some(None))).await
    }

    /// Pins `blob`, which the calling write is about to place again after gc refused it: gc
    /// marks it no more until [`Registry::unpin`] (or until the pin is older than
    /// [`PIN_LIFETIME_MS`] when a pass begins).
    ///
    /// # Errors
    /// SQLite errors, [`Error::WriterStopped`].
    pub async fn pin_blob(&self, blob: String) -> Result<Pin> {
        self.write(move |writer| {
            let now = writer.now();
            Ok(Pin(writer.side().pin(&blob, now)?))
        })
        .await
    }

    /// Removes a pin once its write recorded its event (or gave up).
    ///
    /// # Errors
    /// SQLite errors, [`Error::WriterStopped`].
    pub async fn unpin(&self, pin: Pin) -> Result<()> {
        self.write(move |writer| writer.side().unpin(pin.0)).await
    }

    /// Starts a gc pass: forgets the deletions that ended (a write that read an older epoch is
    /// refused from now on, see `check_reference`), drops pins older than
    /// [`PIN_LIFETIME_MS`], and returns the blobs still marked by a pass that died, which this
    /// pass must delete and release.
    ///
    /// # Errors
    /// SQLite errors, [`Error::WriterStopped`].
    pub async fn begin_deletion_pass(&self) -> Result<Vec<String>> {
        self.write(|writer| {
            let stale = writer.now().saturating_sub(PIN_LIFETIME_MS);
            writer.side().begin_deletion_pass(stale)
        })
        .await
    }

    /// Marks for deletion each of `candidates` that no version or part references and no
    /// write pins now, and returns those marked: from this commit on, every write that names
    /// one is refused until [`Registry::release_deletions`].
    ///
    /// # Errors
    /// SQLite errors, [`Error::WriterStopped`].
    pub async fn mark_for_deletion(&self, candidates: Vec<String>) -> Result<Vec<String>> {
        self.write(move |writer| {
            let mut marked = Vec::with_capacity(candidates.len());
            for blob in candidates {
                if writer.views().blob_refs(&blob)? == 0 && !writer.side().pinned(&blob)? {
                    writer.side().mark_for_deletion(&blob)?;
                    marked.push(blob);
                }
            }
            Ok(marked)
        })
        .await
    }

    /// Ends the deletion of `blobs`, which the store no longer holds: advances the epoch and
    /// records it as the end of their deletion.
    ///
    /// # Errors
    /// SQLite errors, [`Error::WriterStopped`].
    pub async fn release_deletions(&self, blobs: Vec<String>) -> Result<()> {
        self.write(move |writer| writer.side().release_deletions(&blobs)).await
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::sync::Arc;

    use super::*;
    use crate::clock::{Clock, SystemClock};

    /// Runs `scenario` on the embedded registry, then, when `POSTGRES_URL` names a server, on a
    /// registry replicating a shared log in a database of its own: gc's agreement with writes
    /// is the engines' side tables as much as these rules.
    async fn on_each_engine<F: Future<Output = ()>>(clock: Arc<dyn Clock>, scenario: impl Fn(Registry) -> F) {
        let dir = tempfile::tempdir().unwrap();
        let registry = Registry::open(dir.path().join("registry.db"), Arc::clone(&clock)).unwrap();
        scenario(registry.clone()).await;
        registry.close().await;
        let Ok(admin) = std::env::var("POSTGRES_URL") else {
            eprintln!("SKIPPED on the shared log: POSTGRES_URL is not set (scripts/start-postgres.sh)");
            return;
        };
        let name = format!(
            "deletions_{}_{}",
            std::process::id(),
            blake3::hash(dir.path().as_os_str().as_encoded_bytes()).to_hex()
        );
        let name = &name[..40];
        let admin_sql = |sql: String| {
            std::thread::scope(|scope| {
                scope.spawn(|| crate::postgres::connect(&admin).unwrap().batch_execute(&sql).unwrap()).join().unwrap();
            });
        };
        admin_sql(format!("CREATE DATABASE {name}"));
        let url = format!("{}/{name}", admin.rsplit_once('/').unwrap().0);
        let shared = Registry::open_shared(dir.path().join("replica.db"), &url, clock).unwrap();
        scenario(shared.clone()).await;
        shared.close().await;
        drop(shared);
        admin_sql(format!("DROP DATABASE {name} WITH (FORCE)"));
    }

    async fn check(registry: &Registry, blob: &str, placed_after: Option<Epoch>) -> Result<()> {
        check_placement(registry, blob, placed_after.map(Placement::After)).await
    }

    async fn check_placement(registry: &Registry, blob: &str, placement: Option<Placement>) -> Result<()> {
        let blob = blob.to_owned();
        registry.write(move |writer| check_reference(writer, &blob, placement)).await
    }

    /// One whole gc pass over `blobs`.
    async fn pass(registry: &Registry, blobs: &[&str]) -> Vec<String> {
        registry.begin_deletion_pass().await.unwrap();
        let marked = registry.mark_for_deletion(blobs.iter().map(|b| (*b).to_owned()).collect()).await.unwrap();
        registry.release_deletions(marked.clone()).await.unwrap();
        marked
    }

    fn refused(result: Result<()>) -> bool {
        matches!(result, Err(Error::BlobDeleted { .. }))
    }

    #[tokio::test]
    async fn a_blob_placed_before_its_deletion_ended_is_refused_and_accepted_once_placed_again() {
        on_each_engine(Arc::new(SystemClock), placed_before_its_deletion_ended).await;
    }

    async fn placed_before_its_deletion_ended(registry: Registry) {
        let before = registry.deletion_epoch().await.unwrap();
        assert!(check(&registry, "b", Some(before)).await.is_ok(), "nothing was ever deleted");

        assert!(registry.begin_deletion_pass().await.unwrap().is_empty());
        assert_eq!(registry.mark_for_deletion(vec!["b".into()]).await.unwrap(), ["b"]);
        assert!(registry.deletion_pending("b".into()).await.unwrap());
        assert!(refused(check(&registry, "b", Some(before)).await), "marked");
        let during = registry.deletion_epoch().await.unwrap();
        assert!(refused(check(&registry, "b", Some(during)).await), "marked, whatever the epoch");

        registry.release_deletions(vec!["b".into()]).await.unwrap();
        assert!(!registry.deletion_pending("b".into()).await.unwrap());
        assert!(refused(check(&registry, "b", Some(during)).await), "placed before the deletion ended");
        let after = registry.deletion_epoch().await.unwrap();
        assert!(after > during);
        assert!(check(&registry, "b", Some(after)).await.is_ok(), "placed again after it ended");
        assert!(check(&registry, "other", Some(during)).await.is_ok(), "another blob is not concerned");

        // The next pass forgets the deletion: only writes that read an older epoch are refused.
        registry.begin_deletion_pass().await.unwrap();
        assert!(check(&registry, "b", Some(after)).await.is_ok());
        assert!(refused(check(&registry, "other", Some(during)).await), "older than what is remembered");
    }

    /// A write refused once must not be refused again by the passes that follow: gc in a loop
    /// deleted its blob on every retry before blobs could be pinned (CI, 2026-12-02).
    #[tokio::test]
    async fn a_write_placed_again_under_a_pin_outlives_any_number_of_passes() {
        on_each_engine(Arc::new(SystemClock), placed_again_under_a_pin).await;
    }

    async fn placed_again_under_a_pin(registry: Registry) {
        let before = registry.deletion_epoch().await.unwrap();
        assert_eq!(pass(&registry, &["b"]).await, ["b"]);
        assert!(refused(check(&registry, "b", Some(before)).await), "deleted after it was placed");

        // Without a pin, placing again after reading the epoch loses to the next pass.
        let again = registry.deletion_epoch().await.unwrap();
        assert_eq!(pass(&registry, &["b"]).await, ["b"]);
        assert!(refused(check(&registry, "b", Some(again)).await));

        let pin = registry.pin_blob("b".into()).await.unwrap();
        for _ in 0..3 {
            assert!(pass(&registry, &["b"]).await.is_empty(), "gc marked a pinned blob");
        }
        assert!(check_placement(&registry, "b", Some(Placement::Pinned(pin))).await.is_ok());
        assert!(refused(check(&registry, "b", Some(again)).await), "the pin is not another write's");
        assert!(refused(check_placement(&registry, "c", Some(Placement::Pinned(pin))).await), "another blob");

        registry.unpin(pin).await.unwrap();
        assert!(refused(check_placement(&registry, "b", Some(Placement::Pinned(pin))).await), "unpinned");
        assert_eq!(pass(&registry, &["b"]).await, ["b"], "gc collects it once unpinned");
    }

    #[tokio::test]
    async fn a_pin_marked_before_is_honoured_only_after_the_deletion_is_released() {
        on_each_engine(Arc::new(SystemClock), pin_of_a_marked_blob).await;
    }

    async fn pin_of_a_marked_blob(registry: Registry) {
        registry.begin_deletion_pass().await.unwrap();
        assert_eq!(registry.mark_for_deletion(vec!["b".into()]).await.unwrap(), ["b"]);
        let pin = registry.pin_blob("b".into()).await.unwrap();
        assert!(refused(check_placement(&registry, "b", Some(Placement::Pinned(pin))).await), "still being deleted");
        registry.release_deletions(vec!["b".into()]).await.unwrap();
        assert!(check_placement(&registry, "b", Some(Placement::Pinned(pin))).await.is_ok());
    }

    #[tokio::test]
    async fn a_pin_its_write_left_behind_is_dropped_after_its_lifetime() {
        let clock = Arc::new(crate::clock::ManualClock::new(1_000_000));
        on_each_engine(clock.clone(), |registry| {
            let clock = Arc::clone(&clock);
            async move {
                registry.pin_blob("b".into()).await.unwrap();
                clock.advance(PIN_LIFETIME_MS);
                assert!(pass(&registry, &["b"]).await.is_empty(), "not older than its lifetime yet");
                clock.advance(1);
                assert_eq!(pass(&registry, &["b"]).await, ["b"]);
            }
        })
        .await;
    }

    #[tokio::test]
    async fn a_reference_that_placed_nothing_needs_a_referenced_blob() {
        on_each_engine(Arc::new(SystemClock), reference_without_placement).await;
    }

    async fn reference_without_placement(registry: Registry) {
        assert!(refused(check(&registry, "b", None).await));
        let epoch = registry.deletion_epoch().await.unwrap();
        assert!(refused(check(&registry, "inline:00", Some(epoch)).await), "inline rows are stored by their job");
    }

    #[tokio::test]
    async fn marks_of_a_pass_that_died_are_handed_to_the_next() {
        on_each_engine(Arc::new(SystemClock), marks_of_a_dead_pass).await;
    }

    async fn marks_of_a_dead_pass(registry: Registry) {
        registry.begin_deletion_pass().await.unwrap();
        registry.mark_for_deletion(vec!["a".into(), "b".into()]).await.unwrap();
        registry.release_deletions(vec!["a".into()]).await.unwrap();
        assert_eq!(registry.begin_deletion_pass().await.unwrap(), ["b"]);
        assert!(registry.deletion_pending("b".into()).await.unwrap());
    }
}
