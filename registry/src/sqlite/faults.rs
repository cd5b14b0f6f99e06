//! Failures a test can ask the writer for, where SQLite cannot be made to fail on demand
//! (a commit of the views, or of a replica's log after the shared log's). Without the
//! `fault-injection` feature nothing here can fail.

/// The failures still to inject.
#[derive(Debug, Default)]
pub(crate) struct Faults {
    /// Commits of the views still to fail.
    #[cfg(feature = "fault-injection")]
    views_commits: std::sync::atomic::AtomicU32,
    /// Commits of a replica's log (after the shared log's) still to fail.
    #[cfg(feature = "fault-injection")]
    replica_commits: std::sync::atomic::AtomicU32,
}

impl Faults {
    /// Fails the next `count` commits of the views.
    #[cfg(feature = "fault-injection")]
    pub(crate) fn fail_views_commits(&self, count: u32) {
        self.views_commits.store(count, std::sync::atomic::Ordering::SeqCst);
    }

    /// Whether this commit of the views is to fail (and counts it).
    #[cfg(feature = "fault-injection")]
    pub(crate) fn views_commit_fails(&self) -> bool {
        use std::sync::atomic::Ordering::SeqCst;
        self.views_commits.fetch_update(SeqCst, SeqCst, |left| left.checked_sub(1)).is_ok()
    }

    /// Fails the next `count` commits of a replica's log that follow the shared log's.
    #[cfg(feature = "fault-injection")]
    pub(crate) fn fail_replica_commits(&self, count: u32) {
        self.replica_commits.store(count, std::sync::atomic::Ordering::SeqCst);
    }

    /// Whether this commit of a replica's log is to fail (and counts it).
    #[cfg(feature = "fault-injection")]
    pub(crate) fn replica_commit_fails(&self) -> bool {
        use std::sync::atomic::Ordering::SeqCst;
        self.replica_commits.fetch_update(SeqCst, SeqCst, |left| left.checked_sub(1)).is_ok()
    }

    /// Whether this commit of a replica's log is to fail: never, in a build without faults.
    #[cfg(not(feature = "fault-injection"))]
    #[allow(clippy::unused_self)]
    pub(crate) fn replica_commit_fails(&self) -> bool {
        false
    }

    /// Whether this commit of the views is to fail: never, in a build without faults.
    #[cfg(not(feature = "fault-injection"))]
    #[allow(clippy::unused_self)]
    pub(crate) fn views_commit_fails(&self) -> bool {
        false
    }
}
