//! The engines a test runs on: SQLite alone, and the log shared on PostgreSQL (when the run has
//! a server, `POSTGRES_URL`), where the registry under test is one gateway's and a second
//! gateway on the same database shows what the others see.

use std::path::PathBuf;
use std::sync::Arc;

use artifact_store_registry::Registry;
use artifact_store_registry::clock::Clock;

use crate::shared::SharedDb;

/// A registry on one engine, and where its SQLite file is: the database itself, or the
/// gateway's replica of the shared log.
pub(crate) struct Opened {
    /// `sqlite` or `postgres`, for assertion messages.
    pub(crate) engine: &'static str,
    pub(crate) registry: Registry,
    dir: tempfile::TempDir,
    db: Option<SharedDb>,
    clock: Arc<dyn Clock>,
    /// Gateways opened by [`Opened::another_gateway`], each with a replica of its own.
    others: std::sync::atomic::AtomicUsize,
}

impl Opened {
    /// The SQLite file the registry writes: its log and views (and, on PostgreSQL, its copies
    /// of the shared tables).
    pub(crate) fn path(&self) -> PathBuf {
        self.dir.path().join("registry.db")
    }

    /// A second writer on the same log: another handle on the SQLite file (a command run
    /// beside the gateway), or another gateway on the shared log.
    pub(crate) fn another_writer(&self) -> Registry {
        match self.another_gateway() {
            Some((registry, _)) => registry,
            None => Registry::open(self.path(), Arc::clone(&self.clock)).unwrap(),
        }
    }

    /// The shared log's database; `None` on SQLite.
    pub(crate) fn shared_url(&self) -> Option<&str> {
        self.db.as_ref().map(SharedDb::url)
    }

    /// Another gateway on the same shared log, with a replica of its own; `None` on SQLite.
    pub(crate) fn another_gateway(&self) -> Option<(Registry, PathBuf)> {
        let db = self.db.as_ref()?;
        let n = self.others.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let replica = self.dir.path().join(format!("another-{n}.db"));
        Some((Registry::open_shared(&replica, db.url(), Arc::clone(&self.clock)).unwrap(), replica))
    }
}

/// The registry on each engine the run has, each in a folder (and database) of its own. The
/// PostgreSQL engine is reported as skipped when no server is configured.
pub(crate) fn each(clock: impl Fn() -> Arc<dyn Clock>) -> Vec<Opened> {
    let mut opened = Vec::new();
    let dir = tempfile::tempdir().unwrap();
    let clock_here = clock();
    let registry = Registry::open(dir.path().join("registry.db"), Arc::clone(&clock_here)).unwrap();
    opened.push(Opened { engine: "sqlite", registry, dir, db: None, clock: clock_here, others: Default::default() });
    if let Some(db) = SharedDb::create() {
        let dir = tempfile::tempdir().unwrap();
        let clock_here = clock();
        let registry =
            Registry::open_shared(dir.path().join("registry.db"), db.url(), Arc::clone(&clock_here)).unwrap();
        opened.push(Opened {
            engine: "postgres",
            registry,
            dir,
            db: Some(db),
            clock: clock_here,
            others: Default::default(),
        });
    }
    opened
}
