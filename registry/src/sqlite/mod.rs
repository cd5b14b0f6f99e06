//! The SQLite store: opening and migrating the database, the writer task with group commit,
//! and pooled reader connections.
//!
//! SQLite allows one writer at a time, so one thread owns the write connection. Callers hand
//! it jobs; it runs every job that is waiting in one transaction (a job that refuses does so
//! before it appends, so it leaves no trace while its neighbours commit), commits once with
//! `synchronous=FULL`, and only then tells the callers. Readers use their own WAL connections
//! and never wait for the writer.

mod faults;
mod histogram;
mod latest;
mod queries;
mod queue;
mod side_tables;
pub mod views;

pub use histogram::Histogram;
pub use latest::{LatestCacheStats, LatestObject};

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use futures::Stream;
use rusqlite::{Connection, OpenFlags, TransactionBehavior};
use rusqlite_migration::{M, Migrations};
use tokio::sync::{oneshot, watch};

use self::faults::Faults;
use self::latest::{Kept, LatestObjects, Touched};
use self::queue::JobQueue;
use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::event::{Event, EventDraft};
use crate::log::{self, ChainHead};
use crate::postgres::{self as shared_log, SharedBatch, SharedLease, SharedReads};
use crate::queries::Reads;
use crate::side_tables::SideTables;

const LOG_MIGRATIONS: &[M<'static>] = &[
    M::up(include_str!("migrations/log/0001_init.sql")),
    M::up(include_str!("migrations/log/0002_inline_blobs.sql")),
    M::up(include_str!("migrations/log/0003_blob_deletions.sql")),
    M::up(include_str!("migrations/log/0004_blob_pins.sql")),
    M::up(include_str!("migrations/log/0005_commit_probe.sql")),
    M::up(include_str!("migrations/log/0006_access_key_secrets.sql")),
];
const VIEWS_MIGRATIONS: &[M<'static>] = &[
    M::up(include_str!("migrations/views/0001_init.sql")),
    M::up(include_str!("migrations/views/0002_packages.sql")),
    M::up(include_str!("migrations/views/0003_bucket_policies.sql")),
    M::up(include_str!("migrations/views/0004_identities.sql")),
    M::up(include_str!("migrations/views/0005_public_access_blocks.sql")),
    M::up(include_str!("migrations/views/0006_bucket_cors.sql")),
    M::up(include_str!("migrations/views/0007_bucket_acls.sql")),
    M::up(include_str!("migrations/views/0008_object_acls.sql")),
    M::up(include_str!("migrations/views/0009_account_emails.sql")),
    M::up(include_str!("migrations/views/0010_object_owners.sql")),
    M::up(include_str!("migrations/views/0011_bucket_tags.sql")),
    M::up(include_str!("migrations/views/0012_retrievals_by_bucket.sql")),
    M::up(include_str!("migrations/views/0013_bucket_encryption.sql")),
    M::up(include_str!("migrations/views/0014_master_key.sql")),
];

/// Prepared statements kept per connection.
const STATEMENT_CACHE: usize = 128;

/// Page cache of each connection, in KiB.
const PAGE_CACHE_KIB: i64 = 64 * 1024;

/// Page cache of the writer's connections once the views are caught up, in KiB: what a group
/// commit of a few events touches is the end of the log and a few index pages. A commit walks
/// the whole cache whenever its transaction split a b-tree page (see [`open_writer`]), so a
/// cache sized for replays made every such commit visit thousands of pages.
const WRITER_PAGE_CACHE_KIB: i64 = 8 * 1024;

/// WAL frames (pages) past which the writer completes a checkpoint itself, so that the WAL
/// starts over (see [`run_checkpointer`]): the views' WAL, and the log's on a replica of a
/// shared log. Their commits are not fsync'd, so only the WAL's size matters, and finishing
/// a checkpoint costs the writer the fsync of every page written since the last pass.
const WAL_RESTART_FRAMES: i64 = 16 * 1024;

/// The same bound for the log of a registry of its own, whose every commit is fsync'd. An
/// fsync costs more when the commit appended past the file's end (the file system allocates
/// blocks and writes the new size) than when it overwrote blocks the WAL already holds:
/// 0.28 ms against 0.19 ms for 24 KiB on this project's benchmark machine. Starting the
/// log's WAL over every 4 MiB keeps its commits in place.
const FSYNCED_WAL_RESTART_FRAMES: i64 = 1024;

/// Least time between two checkpoints.
const CHECKPOINT_INTERVAL: std::time::Duration = std::time::Duration::from_millis(250);

/// Most jobs committed in one transaction; bounds the latency a large queue adds.
const MAX_BATCH: usize = 4096;

/// How long a batch of detached jobs only (retrieval records) waits for more work before it
/// commits. Nobody waits for them, and reads come one at a time from each client: without the
/// wait every GET paid a commit and its fsync of its own. A job whose caller waits ends the
/// wait at once. At most this much of recorded reads is lost to a crash beyond what is queued.
const DETACHED_LINGER: std::time::Duration = std::time::Duration::from_millis(5);

/// The writer's view of one job's transaction: reads the views through [`Writer::views`],
/// writes only through [`Writer::append`].
pub struct Writer<'a> {
    log: &'a Connection,
    views: &'a Connection,
    side: &'a dyn SideTables,
    head: &'a mut ChainHead,
    now: i64,
    touched: &'a mut Touched,
}

impl Writer<'_> {
    /// The views, inside the job's transaction: reads see the job's own appends and
    /// everything committed or queued before it.
    #[must_use]
    pub fn views(&self) -> &dyn Reads {
        self.views
    }

    /// The registry clock's time when the job started, in milliseconds since the epoch.
    #[must_use]
    pub fn now(&self) -> i64 {
        self.now
    }

    /// Appends an event and applies it to the views.
    ///
    /// # Errors
    /// SQLite errors; the whole group commit then rolls back. A job must make every check
    /// that can refuse before its first append.
    pub fn append(&mut self, draft: EventDraft) -> Result<Event> {
        self.touched.note(&draft.payload);
        log::append(self.log, self.views, self.head, draft, self.now)
    }

    /// The tables beside the log, inside the job's transaction, so that their rows share the
    /// commit of the job's events: for [`crate::inline`], [`crate::identities`] and
    /// [`crate::deletions`].
    pub(crate) fn side(&self) -> &dyn SideTables {
        self.side
    }

    /// The event at `sequence`, read from the log inside the job's transaction.
    pub(crate) fn logged_event(&self, sequence: u64) -> Result<Option<Event>> {
        self.log.event(sequence)
    }
}

/// A hold on a task that runs on one gateway at a time ([`Registry::try_lease`]), released
/// when dropped.
pub struct Lease(Option<Arc<SharedLease>>);

impl Lease {
    /// Whether the lease holds now, asked of PostgreSQL (one round trip): for a task that must
    /// stop before an action another holder could also take, such as deleting a blob.
    ///
    /// # Errors
    /// [`Error::WriterStopped`] when the runtime is shutting down.
    pub async fn confirm(&self) -> Result<bool> {
        let Some(shared) = self.0.clone() else { return Ok(true) };
        tokio::task::spawn_blocking(move || shared.confirm()).await.map_err(|_| Error::WriterStopped)
    }
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease").field("shared", &self.0.is_some()).finish()
    }
}

/// What a job tells the writer when it has run: whether to keep its changes, and what to do
/// once the transaction's fate is known.
type Completion = Box<dyn FnOnce(Result<(), BatchError>) + Send>;

/// Why a group commit failed, as every write in it hears it.
#[derive(Clone, Debug)]
enum BatchError {
    /// The shared log's server could not be reached or answered with an error: a retry
    /// succeeds once it is back, and the client must not be told that a disk is full.
    SharedLog(String),
    /// This registry could not commit (a full disk, views that cannot be caught up, a clock
    /// that disagrees with the shared log's).
    Local(String),
    /// The log no longer holds the events this writer committed, from this sequence: no retry
    /// helps, and the client must not be told to retry.
    ChainBroken(u64),
}

impl BatchError {
    fn of(error: &Error) -> Self {
        match error {
            Error::Postgres(_) | Error::SharedLogUnreachable(_) => Self::SharedLog(error.to_string()),
            Error::ChainBroken { sequence } => Self::ChainBroken(*sequence),
            _ => Self::Local(error.to_string()),
        }
    }
}

impl std::fmt::Display for BatchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::SharedLog(reason) | Self::Local(reason) => f.write_str(reason),
            Self::ChainBroken(sequence) => write!(f, "event chain broken at sequence {sequence}"),
        }
    }
}

impl From<BatchError> for Error {
    fn from(failure: BatchError) -> Self {
        match failure {
            BatchError::SharedLog(reason) => Error::SharedLogUnreachable(reason),
            BatchError::Local(reason) => Error::CommitFailed(reason),
            BatchError::ChainBroken(sequence) => Error::ChainBroken { sequence },
        }
    }
}
/// A queued write: run with the [`Writer`], or, when its batch fails before it runs (PostgreSQL
/// out of reach, views that cannot be caught up), handed `None` for its completion alone,
/// which then hears why the batch failed.
type Job = Box<dyn FnOnce(Option<&mut Writer<'_>>) -> (bool, Completion) + Send>;

/// What the writer is asked: a job, or (on a shared log) to catch the replica up, which needs
/// no lock on the shared head when nothing else is asked with it.
enum Queued {
    /// A job whose caller waits for its commit.
    Job(Job),
    /// A job nobody waits for ([`Registry::write_detached`]).
    Detached(Job),
    CatchUp(Completion),
}

impl Queued {
    fn is_detached(&self) -> bool {
        matches!(self, Self::Detached(_))
    }
}

/// The read side, shared by the handle and by tails (which must not keep the writer alive).
struct ReadSide {
    path: PathBuf,
    pool: Mutex<Vec<Connection>>,
    committed: watch::Receiver<u64>,
    tails: AtomicUsize,
    /// Set by the writer while the views lack events the log has committed (their commit
    /// failed and so did catching them up); see [`ViewsLag`] for what is refused meanwhile.
    views_lag: Arc<AtomicU8>,
    /// Set by the writer while its group commits fail (a full or failing disk), cleared by the
    /// next one that commits.
    commits_failing: Arc<AtomicBool>,
    /// The shared log on PostgreSQL this registry replicates, if any.
    shared: Option<Arc<SharedReads>>,
    /// The latest versions of objects read lately, which the writer invalidates.
    latest: Arc<LatestObjects>,
}

/// Counts a live tail for as long as its stream exists.
struct TailGuard(Arc<ReadSide>);

impl TailGuard {
    fn new(read: Arc<ReadSide>) -> Self {
        read.tails.fetch_add(1, Ordering::SeqCst);
        Self(read)
    }
}

impl Drop for TailGuard {
    fn drop(&mut self) {
        self.0.tails.fetch_sub(1, Ordering::SeqCst);
    }
}

impl ReadSide {
    /// [`ReadSide::with_connection`] for reads that involve the views: refused while they lack
    /// an event that changes what `f` may read, since they would answer from a state that is
    /// not the log's. Only `retrievals` readers see the read records, so other reads go on
    /// while the views lack nothing else (on a full disk, reads must not stop for their own
    /// records).
    fn with_views<R>(&self, reads_records: bool, f: impl FnOnce(&Connection) -> Result<R>) -> Result<R> {
        if ViewsLag::from(self.views_lag.load(Ordering::SeqCst)).refuses(reads_records) {
            return Err(Error::ViewsBehind);
        }
        self.with_connection(f)
    }

    /// Whether the log ends where this registry's writer last committed. Otherwise another
    /// process appended to it (the CLI's maintenance commands beside a serving gateway), and
    /// what is kept in memory may predate that, until the writer's next group commit catches
    /// up and invalidates it. Read on the calling thread: one lookup of the log's last row,
    /// which a WAL reader makes without waiting for the writer.
    fn log_is_ours(&self) -> Result<bool> {
        let on_disk = self.with_connection(|conn| {
            Ok(conn
                .prepare_cached("SELECT ifnull(max(seq), 0) FROM events")?
                .query_row([], |row| row.get::<_, u64>(0))?)
        })?;
        Ok(on_disk == *self.committed.borrow())
    }

    fn with_connection<R>(&self, f: impl FnOnce(&Connection) -> Result<R>) -> Result<R> {
        let pooled = self.pool.lock().expect("reader pool lock").pop();
        let conn = match pooled {
            Some(conn) => conn,
            None => open_reader(&self.path)?,
        };
        let result = f(&conn);
        self.pool.lock().expect("reader pool lock").push(conn);
        result
    }
}

/// Jobs per group commit: 1 when callers come one at a time, up to the batch limit under load.
const BATCH_SIZE_BOUNDS: &[u64] = &[1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024];
/// Group commit durations in microseconds: from an fsync on a fast disk to a stalled one.
const BATCH_MICROS_BOUNDS: &[u64] =
    &[100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 1_000_000];

/// Counters of the writer's work since the registry opened, for metrics and benchmarks.
#[derive(Debug)]
pub struct WriterStats {
    /// Transactions committed (group commits).
    pub batches: AtomicU64,
    /// Jobs run, kept or refused.
    pub jobs: AtomicU64,
    /// Time spent in batches, from BEGIN to the end of COMMIT, in microseconds.
    pub busy_micros: AtomicU64,
    /// Of that, time spent in COMMIT (writing the WAL and fsyncing it), in microseconds.
    pub commit_micros: AtomicU64,
    /// On a shared log: time spent taking the head's lock, in microseconds: the round trips
    /// that ask for it, and the wait while other gateways' batches hold it.
    pub head_wait_micros: AtomicU64,
    /// On a shared log: time the head's lock was held, from its grant to the end of the
    /// shared log's COMMIT (or until a failed batch gave up), in microseconds. Summed over
    /// every gateway and divided by the elapsed time, the share of the time no other batch
    /// could run.
    pub head_held_micros: AtomicU64,
    /// On a shared log: events other gateways committed that a batch applied to the replica
    /// while it held the head's lock (those committed while it waited for it), which lengthen
    /// every batch's hold.
    pub head_caught_up_events: AtomicU64,
    /// Jobs per group commit.
    pub batch_sizes: Histogram,
    /// Each group commit's time from BEGIN to the end of COMMIT, in microseconds.
    pub batch_micros: Histogram,
    /// Each checkpoint the writer finishes itself between two batches, so that a WAL starts
    /// over, in microseconds: time that holds back the next batch and is not in
    /// `batch_micros`.
    pub checkpoint_micros: Histogram,
}

impl Default for WriterStats {
    fn default() -> Self {
        Self {
            batches: AtomicU64::new(0),
            jobs: AtomicU64::new(0),
            busy_micros: AtomicU64::new(0),
            commit_micros: AtomicU64::new(0),
            head_wait_micros: AtomicU64::new(0),
            head_held_micros: AtomicU64::new(0),
            head_caught_up_events: AtomicU64::new(0),
            batch_sizes: Histogram::new(BATCH_SIZE_BOUNDS),
            batch_micros: Histogram::new(BATCH_MICROS_BOUNDS),
            checkpoint_micros: Histogram::new(BATCH_MICROS_BOUNDS),
        }
    }
}

struct Inner {
    stats: Arc<WriterStats>,
    jobs: Arc<JobQueue>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    read: Arc<ReadSide>,
    /// The writer's faults, set by tests.
    #[cfg(feature = "fault-injection")]
    faults: Arc<Faults>,
}

/// A handle on an open registry. Cheap to clone; the writer stops when [`Registry::close`]
/// is called or the last handle is dropped.
#[derive(Clone)]
pub struct Registry {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry").field("path", &self.inner.read.path).finish_non_exhaustive()
    }
}

impl Registry {
    /// Opens (creating and migrating if needed) the registry database at `path` and starts
    /// its writer task. `clock` stamps every event.
    ///
    /// # Errors
    /// SQLite or migration errors.
    pub fn open(path: impl AsRef<Path>, clock: Arc<dyn Clock>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let conns = open_writer(&path, "FULL", None)?;
        Self::start(path, conns, clock, None)
    }

    /// Opens a registry whose log is shared with other gateways on PostgreSQL at `url`
    /// ([`crate::postgres`]), migrating its schema if needed. `replica` is this gateway's
    /// SQLite registry, which holds a copy of the log and the views: created if missing, caught
    /// up with every group commit, and refused if it belongs to another log.
    ///
    /// # Errors
    /// [`Error::Postgres`] when the server cannot be reached; SQLite errors; [`Error::CommitFailed`]
    /// when the replica is not a copy of the shared log.
    pub fn open_shared(replica: impl AsRef<Path>, url: &str, clock: Arc<dyn Clock>) -> Result<Self> {
        let path = replica.as_ref().to_path_buf();
        let replica_head = ChainHead::load(&open_migrated(&path, LOG_MIGRATIONS, "NORMAL")?)?;
        // A client of the `postgres` crate runs a runtime of its own, which may be neither made
        // nor dropped on an async runtime's thread: it is made here and lives on the writer's.
        let client = std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    let mut client = shared_log::connect(url)?;
                    shared_log::migrate(&mut client)?;
                    shared_log::check_replica(&mut client, &replica_head)?;
                    Ok::<_, Error>(client)
                })
                .join()
                .map_err(|_| Error::CommitFailed("connecting to PostgreSQL panicked".to_owned()))?
        })?;
        // The replica's commits need no fsync of their own: what it loses, it copies again.
        let conns = open_writer(
            &path,
            "NORMAL",
            Some(SharedWriter { url: url.to_owned(), client: Some(client), statements: Default::default() }),
        )?;
        let registry = Self::start(path, conns, clock, Some(Arc::new(SharedReads::new(url))))?;
        let inner = Arc::downgrade(&registry.inner);
        let url = url.to_owned();
        std::thread::Builder::new()
            .name("registry-listener".into())
            .spawn(move || {
                shared_log::listen(&url, |head| {
                    let Some(inner) = inner.upgrade() else { return false };
                    let behind = head.is_some_and(|head| head > *inner.read.committed.borrow());
                    if !behind {
                        return true;
                    }
                    // One catch-up at a time: the notifications that come while it runs are
                    // drained together afterwards, so a busy shared log costs this gateway one
                    // catch-up per group commit of its writer, not one per batch of the others.
                    let (caught_up, done) = std::sync::mpsc::channel();
                    let submitted = submit(
                        &inner,
                        Queued::CatchUp(Box::new(move |_| {
                            let _ = caught_up.send(());
                        })),
                    );
                    drop(inner);
                    submitted.is_ok() && done.recv().is_ok()
                });
            })
            .map_err(|e| Error::CommitFailed(format!("cannot start the listener thread: {e}")))?;
        Ok(registry)
    }

    fn start(
        path: PathBuf,
        mut conns: WriterConnections,
        clock: Arc<dyn Clock>,
        shared: Option<Arc<SharedReads>>,
    ) -> Result<Self> {
        let head = ChainHead::load(&conns.log)?;
        let (committed_tx, committed_rx) = watch::channel(head.sequence);
        let jobs = Arc::new(JobQueue::new());
        let writer_jobs = Arc::clone(&jobs);
        let stats = Arc::new(WriterStats::default());
        let writer_stats = Arc::clone(&stats);
        let faults = Arc::new(Faults::default());
        let views_lag = Arc::new(AtomicU8::new(ViewsLag::Current as u8));
        let commits_failing = Arc::new(AtomicBool::new(false));
        let latest = Arc::new(LatestObjects::new());
        let health = WriterHealth {
            views_lag: Arc::clone(&views_lag),
            latest: Arc::clone(&latest),
            commits_failing: Arc::clone(&commits_failing),
            faults: Arc::clone(&faults),
        };
        let writer = std::thread::Builder::new()
            .name("registry-writer".into())
            .spawn(move || {
                let _abandon = AbandonOnExit(&writer_jobs);
                run_writer(&mut conns, head, &writer_jobs, &committed_tx, clock.as_ref(), &writer_stats, &health)
            })
            .map_err(|e| Error::CommitFailed(format!("cannot start the writer thread: {e}")))?;
        let read = Arc::new(ReadSide {
            path,
            pool: Mutex::new(Vec::new()),
            committed: committed_rx,
            tails: AtomicUsize::new(0),
            views_lag,
            commits_failing,
            shared,
            latest,
        });
        Ok(Self {
            inner: Arc::new(Inner {
                stats,
                jobs,
                writer: Mutex::new(Some(writer)),
                read,
                #[cfg(feature = "fault-injection")]
                faults,
            }),
        })
    }

    /// Makes the next `count` commits of the views fail, as a full or failing disk would
    /// (tests only: SQLite cannot be made to fail a commit on demand).
    #[cfg(feature = "fault-injection")]
    pub fn fail_views_commits(&self, count: u32) {
        self.inner.faults.fail_views_commits(count);
    }

    /// Makes the next `count` commits of this gateway's replica fail after the shared log's
    /// commit, as a full disk under the replica would (tests only).
    #[cfg(feature = "fault-injection")]
    pub fn fail_replica_commits(&self, count: u32) {
        self.inner.faults.fail_replica_commits(count);
    }

    /// The writer's counters.
    #[must_use]
    pub fn stats(&self) -> &WriterStats {
        &self.inner.stats
    }

    /// The path of the database file.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.inner.read.path
    }

    /// Runs `job` in the writer's transaction and resolves once its events are durable.
    ///
    /// The job reads the views, decides, and appends events through the [`Writer`]. If it
    /// returns an error, everything it appended is rolled back and the error is returned;
    /// other jobs in the same group commit are not affected.
    ///
    /// # Errors
    /// The job's own error, [`Error::CommitFailed`] when the transaction could not commit,
    /// or [`Error::WriterStopped`] after [`Registry::close`].
    pub async fn write<R, F>(&self, job: F) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&mut Writer<'_>) -> Result<R> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        self.submit(Box::new(move |writer| {
            let outcome = writer.map(job);
            let keep = outcome.as_ref().is_some_and(Result::is_ok);
            let completion: Completion = Box::new(move |committed| {
                let result = committed.map_err(Error::from).and_then(|()| outcome.unwrap_or_else(not_run));
                let _ = tx.send(result);
            });
            (keep, completion)
        }))?;
        rx.await.map_err(|_| Error::WriterStopped)?
    }

    /// Queues `job` without waiting for its commit: for records that must not slow the
    /// response down, such as retrievals. The job still commits through the group commit,
    /// and `on_failure` hears of a job error or a failed commit.
    ///
    /// # Errors
    /// [`Error::WriterStopped`] after [`Registry::close`].
    pub fn write_detached<F>(&self, job: F, on_failure: impl FnOnce(Error) + Send + 'static) -> Result<()>
    where
        F: FnOnce(&mut Writer<'_>) -> Result<()> + Send + 'static,
    {
        let job: Job = Box::new(move |writer| {
            let outcome = writer.map(job);
            let keep = outcome.as_ref().is_some_and(Result::is_ok);
            let completion: Completion = Box::new(move |committed| {
                if let Err(error) = committed.map_err(Error::from).and_then(|()| outcome.unwrap_or_else(not_run)) {
                    on_failure(error);
                }
            });
            (keep, completion)
        });
        submit(&self.inner, Queued::Detached(job))
    }

    fn submit(&self, job: Job) -> Result<()> {
        submit(&self.inner, Queued::Job(job))
    }

    /// Whether the log is shared on PostgreSQL (and this registry a gateway's replica of it).
    #[must_use]
    pub fn is_shared(&self) -> bool {
        self.inner.read.shared.is_some()
    }

    /// Takes the lease `name` of a task that runs on one gateway at a time (gc, the lifecycle
    /// sweeper, automatic checkpoints), unless another gateway holds it. A registry of its own
    /// is its only gateway: the lease is always granted.
    ///
    /// # Errors
    /// [`Error::Postgres`] when PostgreSQL cannot be reached.
    pub async fn try_lease(&self, name: &str) -> Result<Option<Lease>> {
        let Some(shared) = self.inner.read.shared.clone() else {
            return Ok(Some(Lease(None)));
        };
        let name = name.to_owned();
        let taken =
            tokio::task::spawn_blocking(move || shared.try_lease(&name)).await.map_err(|_| Error::WriterStopped)??;
        Ok(taken.map(|lease| Lease(Some(Arc::new(lease)))))
    }

    /// On a shared log, waits until the replica holds every event committed by any gateway
    /// before the current request began ([`crate::freshness`]): the shared head, learnt by a
    /// query the request's reads and those waiting with them share, and, when the replica is
    /// behind it, one group commit (which begins by catching up). Nothing to do on a registry
    /// of its own.
    ///
    /// # Errors
    /// [`Error::Postgres`] when PostgreSQL cannot be reached; the writer's errors.
    pub async fn catch_up_with_shared(&self) -> Result<()> {
        let Some(shared) = self.inner.read.shared.clone() else {
            return Ok(());
        };
        let query = || {
            let shared = Arc::clone(&shared);
            async move {
                tokio::task::spawn_blocking(move || shared.with_client(shared_log::committed_sequence))
                    .await
                    .map_err(|_| Error::WriterStopped)?
            }
        };
        let head = shared.heads.head(query).await?;
        if head > self.committed_sequence() {
            let (tx, rx) = oneshot::channel();
            submit(
                &self.inner,
                Queued::CatchUp(Box::new(move |caught_up| {
                    let _ = tx.send(caught_up);
                })),
            )?;
            rx.await.map_err(|_| Error::WriterStopped)?.map_err(Error::from)?;
        }
        Ok(())
    }

    /// Runs `f` with the engine's [`Reads`] over a reader's snapshot, on the blocking pool:
    /// it sees committed data only. `f` must not read the `retrievals` view:
    /// [`Registry::read_retrievals`] does.
    ///
    /// # Errors
    /// Whatever `f` returns, SQLite errors opening a connection, or [`Error::ViewsBehind`]
    /// while the views lack committed events other than read records.
    pub async fn read<R, F>(&self, f: F) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&dyn Reads) -> Result<R> + Send + 'static,
    {
        self.read_views(false, |conn| f(conn)).await
    }

    /// The bucket, the latest version of `key` in it and, for a small object the registry holds
    /// whole, its bytes: what a GET without a version id needs. On a registry of its own the
    /// answer is read on the calling thread, with no trip to the blocking pool, and kept in
    /// memory until a commit changes it ([`LatestObject`]). On a shared log, while the views
    /// lag, and for a version too large to keep, it is read as [`Registry::read`] does.
    ///
    /// # Errors
    /// As [`Registry::read`].
    pub async fn latest_object(&self, bucket: &str, key: &str) -> Result<Arc<LatestObject>> {
        let read = &self.inner.read;
        let stats = &read.latest.stats;
        let cache = Arc::clone(&read.latest);
        // Read as any other read on a shared log, while the views lag (a catch-up comes
        // first), and for a version last found too large to keep (its row would be parsed on
        // the calling thread at every read).
        let kept = (read.shared.is_none() && !self.views_lag().refuses(false)).then(|| cache.lookup(bucket, key));
        match kept {
            Some(Kept::Entry(found)) if read.log_is_ours()? => {
                stats.hits.fetch_add(1, Ordering::Relaxed);
                return Ok(found);
            }
            None | Some(Kept::TooLarge) => {
                stats.misses.fetch_add(1, Ordering::Relaxed);
                let (name, key) = (bucket.to_owned(), key.to_owned());
                return Ok(Arc::new(self.read(move |reads| LatestObject::read(reads, &name, &key, None)).await?));
            }
            Some(Kept::Entry(_) | Kept::Nothing) => {}
        }
        stats.misses.fetch_add(1, Ordering::Relaxed);
        // A read that began before a commit fills nothing after it (see `latest`): another
        // process's events too, since the writer's catch-up of them moves the epoch on.
        let epoch = cache.epoch();
        let kept_bucket = cache.bucket(bucket);
        // Read on the calling thread, as `log_is_ours` is: a point read (the bucket's row, one
        // version's row, and the bytes of an object held whole, which the gateway caps at
        // 256 KiB) that a WAL reader makes without waiting for the writer. The trip to the
        // blocking pool and back cost more than the read when its pages are in memory: doing
        // without it measured 1.41x on 4 KiB GETs at 16 clients, each key read once.
        let found = read.with_views(false, |conn| {
            // A bucket kept before this read is its bucket only if no commit changed anything
            // since.
            let kept_bucket = kept_bucket.filter(|_| cache.epoch() == epoch);
            LatestObject::read(conn, bucket, key, kept_bucket)
        })?;
        let found = Arc::new(found);
        cache.fill_bucket(epoch, bucket, found.bucket.clone());
        cache.fill(epoch, bucket, key, Arc::clone(&found));
        Ok(found)
    }

    /// The bucket `name` (`None`: there is none), which a write, a delete or a listing looks up
    /// before anything else. On a registry of its own it is kept in memory with the latest versions
    /// until a commit changes a bucket, and read on the calling thread when it is not kept, as
    /// [`Registry::latest_object`] does; on a shared log and while the views lag, it is read as
    /// [`Registry::read`] does.
    ///
    /// # Errors
    /// As [`Registry::read`].
    pub async fn bucket(&self, name: &str) -> Result<Option<Arc<crate::state::Bucket>>> {
        let read = &self.inner.read;
        let stats = &read.latest.stats;
        if read.shared.is_some() || self.views_lag().refuses(false) {
            stats.bucket_misses.fetch_add(1, Ordering::Relaxed);
            let wanted = name.to_owned();
            return Ok(self.read(move |reads| reads.bucket(&wanted)).await?.map(Arc::new));
        }
        let cache = &read.latest;
        if let Some(kept) = cache.bucket(name)
            && read.log_is_ours()?
        {
            stats.bucket_hits.fetch_add(1, Ordering::Relaxed);
            return Ok(kept);
        }
        stats.bucket_misses.fetch_add(1, Ordering::Relaxed);
        // A read that began before a commit fills nothing after it, as for the latest versions.
        let epoch = cache.epoch();
        let found = read.with_views(false, |conn| conn.bucket(name))?.map(Arc::new);
        cache.fill_bucket(epoch, name, found.clone());
        Ok(found)
    }

    /// Lookups of [`Registry::latest_object`] and [`Registry::bucket`] answered from memory and
    /// not.
    #[must_use]
    pub fn latest_cache_stats(&self) -> &LatestCacheStats {
        &self.inner.read.latest.stats
    }

    /// [`Registry::read`] for reads of the `retrievals` view, which are refused while the
    /// views lack any committed event.
    ///
    /// # Errors
    /// As [`Registry::read`].
    pub async fn read_retrievals<R, F>(&self, f: F) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&dyn Reads) -> Result<R> + Send + 'static,
    {
        self.read_views(true, |conn| f(conn)).await
    }

    /// Reads the tables beside the log (deletion epochs and marks) on a reader's snapshot;
    /// refused as [`Registry::read`] is, since what a caller does next is decided on views.
    pub(crate) async fn read_side<R, F>(&self, f: F) -> Result<R>
    where
        R: Send + 'static,
        F: Fn(&dyn SideTables) -> Result<R> + Send + 'static,
    {
        if let Some(shared) = self.inner.read.shared.clone() {
            return tokio::task::spawn_blocking(move || {
                shared.with_client(|client, statements| f(&shared_log::SharedTables::reading(client, statements)))
            })
            .await
            .map_err(|_| Error::WriterStopped)?;
        }
        self.read_views(false, move |conn| f(conn)).await
    }

    async fn read_views<R, F>(&self, reads_records: bool, f: F) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> Result<R> + Send + 'static,
    {
        self.catch_up_with_shared().await?;
        if self.views_lag().refuses(reads_records) {
            // Every group commit begins by catching the views up: run one rather than wait for
            // a write, so that reads resume by themselves once the disk has room again.
            let _ = self.write(|_| Ok(())).await;
        }
        let read = Arc::clone(&self.inner.read);
        tokio::task::spawn_blocking(move || read.with_views(reads_records, f))
            .await
            .map_err(|_| Error::WriterStopped)?
    }

    /// Runs `f` on a reader connection on the calling thread (for CLI commands and tests).
    ///
    /// # Errors
    /// As [`Registry::read_retrievals`]: `f` may read any view.
    pub fn read_blocking<R>(&self, f: impl FnOnce(&Connection) -> Result<R>) -> Result<R> {
        self.inner.read.with_views(true, f)
    }

    /// Reads the log alone, which is current whatever state the views are in.
    pub(crate) async fn read_log<R, F>(&self, f: F) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> Result<R> + Send + 'static,
    {
        let read = Arc::clone(&self.inner.read);
        tokio::task::spawn_blocking(move || read.with_connection(f)).await.map_err(|_| Error::WriterStopped)?
    }

    /// Whether the views lack events the log has committed: their commit failed and so did
    /// catching them up. The next group commit brings them up to the log; until then reads
    /// are refused as the views lag says.
    #[must_use]
    pub fn views_behind(&self) -> bool {
        self.views_lag() != ViewsLag::Current
    }

    fn views_lag(&self) -> ViewsLag {
        ViewsLag::from(self.inner.read.views_lag.load(Ordering::SeqCst))
    }

    /// Whether the last group commit failed (a full or failing disk): writes are refused
    /// until one commits again, which [`Registry::probe_commit`] tries without waiting for one.
    #[must_use]
    pub fn commits_failing(&self) -> bool {
        self.inner.read.commits_failing.load(Ordering::SeqCst)
    }

    /// Commits a transaction that rewrites a page of the log database, as every event does;
    /// an empty transaction would commit even on a full disk. Its success clears
    /// [`Registry::commits_failing`].
    ///
    /// # Errors
    /// [`Error::CommitFailed`] and SQLite errors while the registry cannot commit,
    /// [`Error::WriterStopped`].
    pub async fn probe_commit(&self) -> Result<()> {
        self.write(|writer| {
            let now = writer.now();
            writer.side().probe(now)
        })
        .await
    }

    /// The sequence of the last committed event.
    #[must_use]
    pub fn committed_sequence(&self) -> u64 {
        *self.inner.read.committed.borrow()
    }

    /// Up to `limit` committed events after `cursor`.
    ///
    /// # Errors
    /// SQLite errors.
    pub async fn fetch_since(&self, cursor: u64, limit: usize) -> Result<Vec<Event>> {
        self.read_log(move |conn| log::fetch_since(conn, cursor, limit)).await
    }

    /// Every committed event after `cursor`, then each new one as it commits. The stream
    /// wakes on commit (no polling interval), holds no task of its own, and ends when the
    /// registry closes; dropping it stops all its work.
    pub fn tail(&self, cursor: u64) -> impl Stream<Item = Result<Event>> + Send + 'static {
        let read = Arc::clone(&self.inner.read);
        let committed = read.committed.clone();
        let following = TailGuard::new(Arc::clone(&read));
        let state = (following, committed, cursor, VecDeque::<Event>::new());
        futures::stream::unfold(state, |(read, mut committed, mut cursor, mut buffer)| async move {
            loop {
                if let Some(event) = buffer.pop_front() {
                    cursor = event.sequence;
                    return Some((Ok(event), (read, committed, cursor, buffer)));
                }
                // Mark the current head as seen before reading, so a commit that lands
                // during the read still wakes the wait below.
                committed.borrow_and_update();
                let fetch_from = Arc::clone(&read.0);
                let fetched = tokio::task::spawn_blocking(move || {
                    fetch_from.with_connection(|conn| log::fetch_since(conn, cursor, 1024))
                })
                .await
                .map_err(|_| Error::WriterStopped)
                .and_then(|r| r);
                match fetched {
                    Ok(events) if !events.is_empty() => buffer.extend(events),
                    Ok(_) => {
                        if committed.changed().await.is_err() {
                            return None;
                        }
                    }
                    Err(error) => return Some((Err(error), (read, committed, cursor, buffer))),
                }
            }
        })
    }

    /// How many tails are following the log now.
    #[must_use]
    pub fn tail_count(&self) -> usize {
        self.inner.read.tails.load(Ordering::SeqCst)
    }

    /// Walks the chain (see [`log::verify`]) on a reader connection.
    ///
    /// # Errors
    /// SQLite errors.
    pub async fn verify(&self) -> Result<log::Verified> {
        self.read_log(log::verify).await
    }

    /// On a shared log, walks PostgreSQL's events up to the replica's head, re-hashing each
    /// and comparing it with the replica's: the first sequence that does not hold, if any
    /// (`None` too for a registry of its own). [`Registry::verify`] checks the replica, which
    /// took each event once, when it was pulled; an event changed in PostgreSQL since is found
    /// only here.
    ///
    /// # Errors
    /// [`Error::Postgres`]; SQLite errors reading the replica.
    pub async fn check_shared_log(&self) -> Result<Option<u64>> {
        let Some(shared) = self.inner.read.shared.clone() else {
            return Ok(None);
        };
        self.read_log(move |local| {
            let last = ChainHead::load(local)?.sequence;
            shared.with_client(|client, _| shared_log::check_against_replica(&mut *client.borrow_mut(), local, last))
        })
        .await
    }

    /// Rebuilds every view from the log inside the writer's transaction (see [`log::replay`]).
    ///
    /// # Errors
    /// As [`log::replay`].
    pub async fn replay(&self) -> Result<log::Replayed> {
        self.write(|writer| {
            writer.touched.everything();
            log::replay_in(writer.log, writer.views, u64::MAX, |_| {})
        })
        .await
    }

    /// Stops the writer after the jobs already queued have committed.
    pub async fn close(&self) {
        self.inner.jobs.close();
        let writer = self.inner.writer.lock().expect("writer lock").take();
        if let Some(writer) = writer {
            let _ = tokio::task::spawn_blocking(move || writer.join()).await;
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.jobs.close();
        if let Ok(mut writer) = self.writer.lock()
            && let Some(writer) = writer.take()
        {
            let _ = writer.join();
        }
    }
}

/// The writer's connections: the log (`synchronous=FULL`, or a replica's `NORMAL`), the
/// views, and the shared log on PostgreSQL when there is one; and what the batch in progress
/// leaves to do once it is over.
struct WriterConnections {
    log: Connection,
    views: Connection,
    shared: Option<SharedWriter>,
    /// The page caches are sized for a bulk catch-up until the batch that ran it is over.
    bulk_cache: bool,
    /// What the batch changed of the latest versions kept in memory, to invalidate once it
    /// is over and before its callers hear of it.
    touched: Touched,
}

/// The writer's connection to the shared log, made again after it was lost, and the
/// statements prepared on it.
struct SharedWriter {
    url: String,
    client: Option<postgres::Client>,
    statements: std::cell::RefCell<shared_log::StatementCache>,
}

impl SharedWriter {
    /// The connection, made again first if it was lost.
    fn client(&mut self) -> Result<&mut postgres::Client> {
        if self.client.as_ref().is_none_or(postgres::Client::is_closed) {
            self.client = None;
            self.statements.borrow_mut().clear();
            self.client = Some(shared_log::connect(&self.url)?);
        }
        Ok(self.client.as_mut().expect("connected above"))
    }

    /// Whether the connection was found lost (its last use failed on it): the next use makes
    /// it again.
    fn lost_connection(&self) -> bool {
        self.client.as_ref().is_some_and(postgres::Client::is_closed)
    }

    /// Copies into the replica's log (inside its transaction) what the shared log committed
    /// after `replica_head`, without a lock.
    fn pull_committed(&mut self, local: &Connection, replica_head: ChainHead) -> Result<ChainHead> {
        self.client()?;
        let Self { client, statements, .. } = self;
        shared_log::pull(client.as_mut().expect("connected above"), statements, local, replica_head, None)
    }

    /// Whether a batch whose commit failed committed all the same (only its answer was
    /// lost), asked on a connection made again.
    fn committed(&mut self, batch: shared_log::BatchTransaction) -> Result<bool> {
        self.client = None;
        self.statements.borrow_mut().clear();
        shared_log::committed(self.client()?, batch)
    }

    /// Begins a batch on the shared log: takes the head's lock.
    fn begin(&mut self) -> Result<SharedBatch<'_>> {
        self.client()?;
        let Self { client, statements, .. } = self;
        SharedBatch::begin(client.as_mut().expect("connected above"), statements)
    }
}

/// Refuses a batch on a shared log whose wall clock is off the database's by more than
/// [`crate::clock::MAX_SKEW_MS`]: the database's time at the grant must lie between this
/// clock's before the lock was asked for and after it was granted, widened by the bound either
/// way (a long wait for the lock widens the window and never refuses a clock that agrees).
fn check_clock(clock: &dyn Clock, asked_at: i64, database_now: i64) -> std::result::Result<(), String> {
    if !clock.is_wall_clock() {
        return Ok(());
    }
    let granted_at = clock.now_ms();
    let bound = crate::clock::MAX_SKEW_MS;
    if database_now >= asked_at.saturating_sub(bound) && database_now <= granted_at.saturating_add(bound) {
        return Ok(());
    }
    let off = if database_now < asked_at { asked_at - database_now } else { database_now - granted_at };
    let reason = format!(
        "this gateway's clock is {off} ms {} PostgreSQL's, more than the {bound} ms allowed: no write is \
         decided on it until the clocks agree (synchronise them, with NTP)",
        if database_now < asked_at { "ahead of" } else { "behind" }
    );
    tracing::error!(off_ms = off, "{reason}");
    Err(reason)
}

/// Adds to its counter, when dropped, the microseconds since it was made: the time a batch
/// held the shared head's lock, from the grant until its COMMIT or, however it returns, until
/// it gives the batch up (and its transaction rolls back).
struct HeldSince<'a> {
    since: std::time::Instant,
    micros: &'a AtomicU64,
}

impl<'a> HeldSince<'a> {
    fn now(micros: &'a AtomicU64) -> Self {
        Self { since: std::time::Instant::now(), micros }
    }
}

impl Drop for HeldSince<'_> {
    fn drop(&mut self) {
        self.micros.fetch_add(micros(self.since.elapsed()), Ordering::Relaxed);
    }
}

/// Abandons the writer's queue when the writer thread ends, however it ends: after a panic
/// its callers hear [`Error::WriterStopped`] rather than wait for a commit that never comes.
struct AbandonOnExit<'a>(&'a JobQueue);

impl Drop for AbandonOnExit<'_> {
    fn drop(&mut self) {
        self.0.abandon();
    }
}

fn submit(inner: &Inner, job: Queued) -> Result<()> {
    inner.jobs.push(job).map_err(|_| Error::WriterStopped)
}

/// Splits queued work into the jobs of a batch and the catch-ups that wait for it.
fn sort_queued(queued: Vec<Queued>, batch: &mut Vec<Job>, catch_ups: &mut Vec<Completion>) {
    for queued in queued {
        match queued {
            Queued::Job(job) | Queued::Detached(job) => batch.push(job),
            Queued::CatchUp(done) => catch_ups.push(done),
        }
    }
}

fn run_writer(
    conns: &mut WriterConnections,
    mut head: ChainHead,
    jobs: &JobQueue,
    committed: &watch::Sender<u64>,
    clock: &dyn Clock,
    stats: &WriterStats,
    health: &WriterHealth,
) {
    let (wake_checkpointer, checkpoints) = mpsc::sync_channel::<()>(1);
    let paths = [conns.log.path().map(PathBuf::from), conns.views.path().map(PathBuf::from)];
    let log_restart_frames = if conns.shared.is_some() { WAL_RESTART_FRAMES } else { FSYNCED_WAL_RESTART_FRAMES };
    let restart_frames = [log_restart_frames, WAL_RESTART_FRAMES];
    let wal_too_long = Arc::new([AtomicBool::new(false), AtomicBool::new(false)]);
    let checkpointer_flags = Arc::clone(&wal_too_long);
    let checkpointer = std::thread::Builder::new()
        .name("registry-checkpointer".into())
        .spawn(move || run_checkpointer(&paths, restart_frames, &checkpoints, &checkpointer_flags));
    loop {
        let mut batch = Vec::with_capacity(64);
        if !jobs.wait_and_take(&mut batch, MAX_BATCH) {
            break;
        }
        if batch.len() < MAX_BATCH && batch.iter().all(Queued::is_detached) {
            jobs.linger(std::time::Instant::now() + DETACHED_LINGER);
            jobs.take(&mut batch, MAX_BATCH);
        }
        let started = std::time::Instant::now();
        stats.jobs.fetch_add(batch.len() as u64, Ordering::Relaxed);
        stats.batch_sizes.record(batch.len() as u64);
        let committed_head = head;
        let outcome = run_batch(conns, &mut head, batch, jobs, clock, stats, health);
        // Whether the batch committed or not (a failed one changed nothing, or its COMMIT's
        // outcome is unknown), and before anyone hears of it.
        health.latest.invalidate(&std::mem::take(&mut conns.touched));
        stats.batches.fetch_add(1, Ordering::Relaxed);
        let busy = micros(started.elapsed());
        stats.busy_micros.fetch_add(busy, Ordering::Relaxed);
        stats.batch_micros.record(busy);
        health.commits_failing.store(outcome.is_err(), Ordering::SeqCst);
        let completions = match outcome {
            Ok(completions) => {
                committed.send_replace(head.sequence);
                completions.into_iter().map(|done| (done, Ok(()))).collect::<Vec<_>>()
            }
            Err((completions, reason)) => {
                tracing::error!(%reason, "registry commit failed");
                // The transaction rolled back: the chain continues from what is on disk; but
                // not from a log that lost this writer's head, which every batch refuses
                // until the log is restored.
                // A log that cannot be read now is taken up again from the last head known
                // committed, which the next batch finds on disk (or a rewrite if it is not).
                if !matches!(reason, BatchError::ChainBroken(_)) {
                    head = ChainHead::load(&conns.log).unwrap_or(committed_head);
                }
                // Events on disk that readers were never told of (another process's, or this
                // batch's if its COMMIT landed but reported an error): the next batch will
                // chain from them with nothing to catch up, so it is told here to drop what
                // was kept, as a catch-up would. Until it commits, `log_is_ours` keeps reads
                // off what is kept.
                if head.sequence != *committed.borrow() {
                    conns.touched.everything();
                }
                completions.into_iter().map(|done| (done, Err(reason.clone()))).collect()
            }
        };
        for (done, result) in completions {
            done(result);
        }
        if conns.bulk_cache {
            // The bulk catch-up committed (or failed): its dirty pages are written or gone.
            if let Err(error) = set_page_cache(&conns.log, &conns.views, WRITER_PAGE_CACHE_KIB) {
                tracing::warn!(%error, "cannot shrink the registry writer's page cache");
            }
            conns.bulk_cache = false;
        }
        // Between batches nothing else writes, so this checkpoint copies what the
        // checkpointer has not yet and leaves the WAL fully copied: the next commit then
        // writes from the WAL's start again.
        for (conn, too_long) in [&conns.log, &conns.views].into_iter().zip(wal_too_long.iter()) {
            if too_long.swap(false, Ordering::Relaxed) {
                let started = std::time::Instant::now();
                if let Err(error) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                    tracing::warn!(%error, "registry checkpoint failed");
                }
                stats.checkpoint_micros.record(micros(started.elapsed()));
            }
        }
        // Full: a checkpoint is already due; it will see these commits too.
        let _ = wake_checkpointer.try_send(());
    }
    drop(wake_checkpointer);
    if let Ok(checkpointer) = checkpointer {
        let _ = checkpointer.join();
    }
}

/// Copies committed WAL pages back into the database files, away from the writer: a
/// checkpoint writes every page the WAL holds and fsyncs the file, which inside a commit
/// would stall every caller of that group commit. PASSIVE never blocks the writer or readers.
///
/// A WAL starts over from its beginning only when a commit finds every frame copied, which
/// a checkpoint running beside a busy writer never achieves: commits land while it copies.
/// Left alone, the views' WAL grew by gigabytes in the benchmark, every commit appending to
/// fresh file blocks (which the kernel zeroes and allocates) and the checkpointer re-reading
/// them. So when a WAL holds more than its `restart_frames` (one per path, see
/// [`WAL_RESTART_FRAMES`]) after a pass, the writer is asked (`too_long`, one flag per path)
/// to finish the job between two batches.
fn run_checkpointer(
    paths: &[Option<PathBuf>; 2],
    restart_frames: [i64; 2],
    wake: &mpsc::Receiver<()>,
    too_long: &[AtomicBool; 2],
) {
    let conns: Vec<(Connection, &AtomicBool, i64)> = paths
        .iter()
        .zip(too_long)
        .zip(restart_frames)
        .filter_map(|((path, too_long), restart_frames)| {
            let conn = Connection::open(path.as_ref()?).ok()?;
            conn.busy_timeout(std::time::Duration::from_secs(10)).ok()?;
            Some((conn, too_long, restart_frames))
        })
        .collect();
    // The WAL's frames when the pass began.
    let pass = |conn: &Connection| {
        conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| row.get::<_, i64>(1))
            .inspect_err(|error| tracing::warn!(%error, "registry checkpoint failed"))
    };
    let checkpoint = || {
        for (conn, too_long, restart_frames) in &conns {
            if pass(conn).is_ok_and(|frames| frames > *restart_frames) {
                // A second pass copies what was committed during the first, so the writer's
                // own checkpoint, which holds back its next commit, finds little left to do.
                // The flag is raised even when this pass copied every frame it saw: commits
                // may have landed meanwhile, and a WAL starts over only if a write finds it
                // fully copied, which under sustained writes only the writer can arrange.
                if pass(conn).is_ok() {
                    too_long.store(true, Ordering::Relaxed);
                }
            }
        }
    };
    let mut pending = false;
    loop {
        if !pending && wake.recv().is_err() {
            return;
        }
        checkpoint();
        pending = false;
        // At most a few checkpoints a second: each costs the pages written since the last,
        // so commits gathered between them write hot pages once. Leave at once when the
        // writer stops.
        let deadline = std::time::Instant::now() + CHECKPOINT_INTERVAL;
        loop {
            match wake.recv_timeout(deadline.saturating_duration_since(std::time::Instant::now())) {
                Ok(()) => pending = true,
                Err(mpsc::RecvTimeoutError::Timeout) => break,
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    if pending {
                        checkpoint();
                    }
                    return;
                }
            }
        }
    }
}

type BatchFailure = (Vec<Completion>, BatchError);

/// Runs a batch of jobs in one transaction. On success the head has advanced and the
/// completions are returned to be told; on failure they are returned with the reason.
///
/// Jobs decide before they append (every command checks, then appends), so a refusal leaves
/// nothing to undo and needs no savepoint; savepoints would copy every page a job touches
/// into a sub-journal. A job that fails after appending (an SQLite error mid-write) fails
/// the whole batch: its transaction rolls back and every caller in it hears of the failure.
fn run_batch(
    conns: &mut WriterConnections,
    head: &mut ChainHead,
    queued: Vec<Queued>,
    jobs: &JobQueue,
    clock: &dyn Clock,
    stats: &WriterStats,
    health: &WriterHealth,
) -> Result<Vec<Completion>, BatchFailure> {
    let mut batch = Vec::with_capacity(queued.len());
    let mut catch_ups = Vec::new();
    sort_queued(queued, &mut batch, &mut catch_ups);
    let unrun =
        |batch: Vec<Job>, catch_ups: Vec<Completion>| batch.into_iter().map(fail_unrun).chain(catch_ups).collect();
    let WriterConnections { log: log_conn, views: views_conn, shared, bulk_cache, touched } = conns;
    let log_tx = match log_conn.transaction_with_behavior(TransactionBehavior::Immediate) {
        Ok(tx) => tx,
        Err(error) => return Err((unrun(batch, catch_ups), BatchError::Local(error.to_string()))),
    };
    let views_tx = match views_conn.transaction_with_behavior(TransactionBehavior::Immediate) {
        Ok(tx) => tx,
        Err(error) => return Err((unrun(batch, catch_ups), BatchError::Local(error.to_string()))),
    };
    // On a shared log, the replica first copies and applies what other gateways committed,
    // without a lock; then, if there are jobs, the head's lock is taken (no other gateway's
    // batch runs until this one commits or rolls back) and the rest copied under it.
    let batch_start = *head;
    let mut shared_batch = None;
    if let Some(shared) = shared.as_mut() {
        // The connection may have been cut while the writer was idle (PostgreSQL restarted):
        // the first query finds out. Nothing is locked yet, so the batch asks again, once, on a
        // connection made again, rather than fail writes that PostgreSQL is back to take; but
        // only if the first try copied nothing: the rows beside the events (inline bytes,
        // secrets) are copied for the whole range at its end, and a second try from a later
        // head would leave out those of the events the first one copied.
        let pulled = ChainHead::load(&log_tx).and_then(|replica| match shared.pull_committed(&log_tx, replica) {
            Err(error) if shared.lost_connection() && ChainHead::load(&log_tx).ok() == Some(replica) => {
                tracing::info!(%error, "the connection to the shared log was lost; connecting again");
                shared.pull_committed(&log_tx, replica)
            }
            pulled => pulled,
        });
        if let Err(error) = pulled {
            return Err((unrun(batch, catch_ups), BatchError::of(&error)));
        }
        // Applied before the lock is asked for: a replica far behind (a new gateway, one back
        // after a long absence) applies its backlog while the other gateways' batches go on,
        // not while they wait for the head (and, past their lock timeout, fail).
        if let Err(error) = catch_up_with_log(&log_tx, &views_tx, head, bulk_cache) {
            touched.everything();
            health.views_lag.store(ViewsLag::of(&log_tx, &views_tx) as u8, Ordering::SeqCst);
            return Err((unrun(batch, catch_ups), BatchError::of(&error)));
        }
        if !batch.is_empty() {
            let waiting = std::time::Instant::now();
            let asked_at = clock.now_ms();
            let locked = shared.begin();
            stats.head_wait_micros.fetch_add(micros(waiting.elapsed()), Ordering::Relaxed);
            match locked {
                Ok(locked) => {
                    if let Err(error) = check_clock(clock, asked_at, locked.database_now_ms()) {
                        return Err((unrun(batch, catch_ups), BatchError::Local(error)));
                    }
                    shared_batch = Some(locked);
                }
                // What was applied above rolls back with the views' transaction: nothing kept
                // in memory saw it.
                Err(error) => return Err((unrun(batch, catch_ups), BatchError::of(&error))),
            }
            // What was queued while the batch waited for the lock (other gateways' batches
            // held it) joins it: under contention each gateway takes the lock fewer times, for
            // more events each, rather than once per few requests.
            let mut queued = Vec::new();
            jobs.take(&mut queued, MAX_BATCH.saturating_sub(batch.len() + catch_ups.len()));
            stats.jobs.fetch_add(queued.len() as u64, Ordering::Relaxed);
            sort_queued(queued, &mut batch, &mut catch_ups);
        }
    }
    let head_held = shared_batch.is_some().then(|| HeldSince::now(&stats.head_held_micros));
    // Jobs decide on the views, so they must hold every committed event first: a maintenance
    // command (`package seal`) may have appended from another process since our last commit
    // (the IMMEDIATE transactions above serialise it with us), or an earlier batch's views may
    // have failed to commit. Chain from what is on disk and catch the views up; if they cannot
    // be, no job runs, rather than deciding on stale rows.
    // On a shared log, the replica's log first takes the events other gateways committed
    // while the batch waited for the lock.
    let pulled = match &shared_batch {
        Some(shared) => ChainHead::load(&log_tx).and_then(|replica| shared.pull_into(&log_tx, replica)).map(Some),
        None => Ok(None),
    };
    let before_locked_catch_up = *head;
    let caught_up = pulled.and_then(|pulled| {
        catch_up_with_log(&log_tx, &views_tx, head, bulk_cache)?;
        match pulled {
            Some(pulled) if pulled != *head => Err(Error::CommitFailed("the replica did not catch up".to_owned())),
            _ => Ok(()),
        }
    });
    // Events this writer did not append: which objects they change is not worth working out.
    if caught_up.is_err() || *head != batch_start {
        touched.everything();
    }
    if let Err(error) = caught_up {
        health.views_lag.store(ViewsLag::of(&log_tx, &views_tx) as u8, Ordering::SeqCst);
        return Err((unrun(batch, catch_ups), BatchError::of(&error)));
    }
    if shared_batch.is_some() {
        stats.head_caught_up_events.fetch_add(head.sequence - before_locked_catch_up.sequence, Ordering::Relaxed);
    }
    let started_at = *head;
    let shared_tables = shared_batch.as_ref().map(|shared| shared.tables(&*log_tx));
    let side: &dyn SideTables = match &shared_tables {
        Some(tables) => tables,
        None => &*log_tx,
    };
    // The catch-ups come first, so that they can be told apart from the jobs below.
    let caught_up_count = catch_ups.len();
    let mut completions = catch_ups;
    completions.reserve(batch.len());
    let mut failure = None;
    for job in batch {
        if failure.is_some() {
            completions.push(fail_unrun(job));
            continue;
        }
        let before = *head;
        let mut writer = Writer { log: &log_tx, views: &views_tx, side, head, now: clock.now_ms(), touched };
        let (keep, done) = job(Some(&mut writer));
        if !keep && *head != before {
            failure =
                Some(BatchError::Local("a write failed after appending; its group commit is abandoned".to_owned()));
        }
        completions.push(done);
    }
    if failure.is_none()
        && let Err(error) = views::set_applied(&views_tx, head.sequence)
    {
        failure = Some(BatchError::of(&error));
    }
    if let Some(reason) = failure {
        return Err((completions, reason));
    }
    // The log first: once it is on disk the writes are durable, whatever happens next. The
    // views follow without an fsync of their own; if they are lost, opening the registry
    // catches them up from the log. On a shared log, its commit is the durable one.
    let committing = std::time::Instant::now();
    let batch_transaction = shared_batch.as_ref().map(SharedBatch::transaction);
    let shared_committed = shared_batch.map(|batch| {
        log::fetch_since(&log_tx, started_at.sequence, usize::MAX).and_then(|events| batch.commit(&events))
    });
    drop(head_held);
    if let Some(Err(error)) = &shared_committed {
        // A COMMIT whose answer was lost may have happened: PostgreSQL, asked about the
        // batch's transaction, says whether it did (waiting for it, or ending it, while it is
        // still in progress). If it did, the writes stand and are acknowledged as such; if it
        // cannot be asked, they are reported failed and the next batch copies in whatever the
        // shared log holds.
        let holds = match (batch_transaction, shared.as_mut()) {
            (Some(transaction), Some(shared)) => shared.committed(transaction).unwrap_or_else(|asked| {
                tracing::error!(%error, %asked, "the shared log's COMMIT failed and its outcome cannot be learnt");
                false
            }),
            _ => false,
        };
        if !holds {
            return Err((completions, BatchError::of(error)));
        }
        tracing::warn!(%error, "the shared log's COMMIT answered with an error but holds the batch: it stands");
    }
    let committed = if shared_committed.is_some() && health.faults.replica_commit_fails() {
        // Dropping the transaction rolls it back, as a failed COMMIT leaves it.
        drop(log_tx);
        Err(BatchError::Local("injected failure of the replica's commit".to_owned()))
    } else {
        log_tx.commit().map_err(|e| BatchError::Local(e.to_string()))
    };
    stats.commit_micros.fetch_add(micros(committing.elapsed()), Ordering::Relaxed);
    if let Err(reason) = committed {
        if shared_committed.is_none() {
            return Err((completions, reason));
        }
        // The shared log holds the batch: its writes stand, and the next batch copies them
        // into the replica again. The catch-ups asked for did not happen: their readers must
        // not read the replica as if they had.
        tracing::error!(%reason, "the replica did not commit; it catches up with the next group commit");
        drop(views_tx);
        *head = ChainHead::load(log_conn).unwrap_or(started_at);
        health.views_lag.store(ViewsLag::Events as u8, Ordering::SeqCst);
        for caught_up in completions.drain(..caught_up_count) {
            caught_up(Err(reason.clone()));
        }
        return Ok(completions);
    }
    let committed = commit_views(views_tx, &health.faults).or_else(|error| {
        tracing::error!(%error, "the views did not commit; catching them up from the log");
        views_conn.transaction().map_err(Error::from).and_then(|views| {
            log::catch_up(log_conn, &views)?;
            commit_views(views, &health.faults)
        })
    });
    // The log holds the batch, so its writes stand either way; views that lack it are read only
    // as `ViewsLag` allows until the next batch catches them up (it begins with that).
    let lag = match &committed {
        Ok(()) => ViewsLag::Current,
        Err(error) => {
            tracing::error!(%error, "the views could not catch up; reads wait for the next group commit");
            ViewsLag::of(log_conn, views_conn)
        }
    };
    health.views_lag.store(lag as u8, Ordering::SeqCst);
    Ok(completions)
}

/// What the views lack of the log, which decides the reads refused until they catch up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum ViewsLag {
    /// The views hold every committed event.
    Current = 0,
    /// The views lack read records (`v1.object.retrieved`) only: every view but `retrievals`
    /// is the log's state, so only reads of `retrievals` are refused.
    ReadRecords = 1,
    /// The views lack other events: every read of them is refused.
    Events = 2,
}

impl ViewsLag {
    /// Whether a read is refused: one of `retrievals` (`reads_records`) or of the other views.
    fn refuses(self, reads_records: bool) -> bool {
        match self {
            Self::Current => false,
            Self::ReadRecords => reads_records,
            Self::Events => true,
        }
    }

    /// Compares the views with the log after the views failed to commit or to catch up.
    /// Anything that cannot be read counts as [`ViewsLag::Events`].
    fn of(log: &Connection, views: &Connection) -> Self {
        let lacks_more_than_records = views::applied(views).and_then(|applied| {
            Ok(log
                .prepare_cached(
                    "SELECT EXISTS (SELECT 1 FROM events WHERE seq > ?1 AND event_type <> 'v1.object.retrieved')",
                )?
                .query_row([applied], |row| row.get::<_, bool>(0))?)
        });
        match lacks_more_than_records {
            Ok(false) => Self::ReadRecords,
            Ok(true) | Err(_) => Self::Events,
        }
    }
}

impl From<u8> for ViewsLag {
    fn from(value: u8) -> Self {
        match value {
            0 => Self::Current,
            1 => Self::ReadRecords,
            _ => Self::Events,
        }
    }
}

/// What the writer shares with readers beyond rows: whether the views are behind the log,
/// whether its commits fail, the latest versions kept in memory; and the failures a test
/// asked for.
struct WriterHealth {
    views_lag: Arc<AtomicU8>,
    latest: Arc<LatestObjects>,
    commits_failing: Arc<AtomicBool>,
    faults: Arc<Faults>,
}

/// Commits the views' transaction, unless a test asked for this commit to fail.
fn commit_views(views: rusqlite::Transaction<'_>, faults: &Faults) -> Result<()> {
    if faults.views_commit_fails() {
        // Dropping the transaction rolls it back, as a failed COMMIT leaves it.
        drop(views);
        return Err(Error::CommitFailed("injected failure of the views' commit".to_owned()));
    }
    Ok(views.commit()?)
}

/// A catch-up of more events than this (a replica back after an absence, a gateway joining a
/// shared log) runs with the page cache sized for replays.
const BULK_CATCH_UP: u64 = 1024;

/// Moves `head` to the log's last event when another writer appended after it, and applies
/// to the views whatever committed events they lack. A bulk catch-up enlarges the caches and
/// sets `bulk_cache`; the writer shrinks them again after the batch commits.
///
/// Another writer only appends: a log that no longer holds `head` (its newest events
/// deleted, or rewritten behind the registry's back) is refused, [`Error::ChainBroken`] at
/// `head`, rather than taken as the new end of the chain, which would drop acknowledged
/// writes without a word and chain new events after the gap.
fn catch_up_with_log(
    log_conn: &Connection,
    views_conn: &Connection,
    head: &mut ChainHead,
    bulk_cache: &mut bool,
) -> Result<()> {
    let on_disk = ChainHead::load(log_conn)?;
    if on_disk != *head && head.sequence > 0 && log::hash_at(log_conn, head.sequence)? != Some(head.hash) {
        tracing::error!(
            head = head.sequence,
            log_ends_at = on_disk.sequence,
            "the log no longer holds the events this writer committed: it was truncated or rewritten; \
             no write is taken (run `verify`)"
        );
        return Err(Error::ChainBroken { sequence: head.sequence });
    }
    let applied = views::applied(views_conn)?;
    if on_disk != *head || applied != on_disk.sequence {
        if on_disk.sequence.saturating_sub(applied) > BULK_CATCH_UP && !*bulk_cache {
            set_page_cache(log_conn, views_conn, PAGE_CACHE_KIB)?;
            *bulk_cache = true;
        }
        log::catch_up(log_conn, views_conn)?;
        *head = on_disk;
    }
    Ok(())
}

fn set_page_cache(log: &Connection, views: &Connection, kib: i64) -> Result<()> {
    log.pragma_update(None, "cache_size", -kib)?;
    views.pragma_update(None, "cache_size", -kib)?;
    Ok(())
}

fn micros(elapsed: std::time::Duration) -> u64 {
    u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX)
}

/// The completion of a job its batch gave up before running it; the batch's failure is what
/// it hears.
fn fail_unrun(job: Job) -> Completion {
    job(None).1
}

/// The outcome of a job that never ran, should its batch be reported committed all the same
/// (none is: a batch that gives a job up fails).
fn not_run<R>() -> Result<R> {
    Err(Error::CommitFailed("the write was not run".to_owned()))
}

fn configure(conn: &Connection) -> Result<()> {
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    // The view writer and the queries use a few dozen statements; the default cache of 16
    // would re-prepare them on every event.
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    keep_plans(conn)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // Views take random-key inserts (blob digests, keys); a small page cache spills dirty
    // pages to the WAL mid-transaction and re-reads them, which dominated replay time.
    conn.pragma_update(None, "cache_size", -PAGE_CACHE_KIB)?;
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    Ok(())
}

/// Makes the planner's choices independent of bound values (SQLite's query planner stability
/// guarantee). Otherwise a statement whose plan may depend on a value, as any with `LIMIT ?`
/// does, is parsed and planned again each time that value is bound, which cached statements
/// are there to avoid: the log's reads by sequence were re-prepared on every group commit.
/// No plan here needs a bound value: the registry keeps no `ANALYZE` statistics, and its
/// partial indexes' conditions are literals.
fn keep_plans(conn: &Connection) -> Result<()> {
    conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
    Ok(())
}

/// The views database that belongs to the log at `path`: `registry.db` keeps its views in
/// `registry.views.db`.
#[must_use]
pub fn views_path(path: &Path) -> PathBuf {
    path.with_extension("views.db")
}

/// Opens a database file read-write, migrated to the latest schema.
fn open_migrated(path: &Path, migrations: &'static [M<'static>], synchronous: &str) -> Result<Connection> {
    let mut conn = Connection::open(path)?;
    configure(&conn)?;
    conn.pragma_update(None, "synchronous", synchronous)?;
    Migrations::from_slice(migrations).to_latest(&mut conn)?;
    Ok(conn)
}

/// Opens the writer's connections: the log with `synchronous=FULL` (a commit is on disk
/// before it is acknowledged), the views with `synchronous=NORMAL` (consistent after a crash,
/// possibly behind), both migrated, and the views caught up with the log.
fn open_writer(path: &Path, log_synchronous: &str, shared: Option<SharedWriter>) -> Result<WriterConnections> {
    let log = open_migrated(path, LOG_MIGRATIONS, log_synchronous)?;
    let mut views = open_migrated(&views_path(path), VIEWS_MIGRATIONS, "NORMAL")?;
    // The checkpointer thread checkpoints; commits never do.
    log.pragma_update(None, "wal_autocheckpoint", 0)?;
    views.pragma_update(None, "wal_autocheckpoint", 0)?;
    let tx = views.transaction_with_behavior(TransactionBehavior::Immediate)?;
    log::catch_up(&log, &tx)?;
    tx.commit()?;
    // When a b-tree page splits, SQLite renumbers the new pages through the number of the
    // page that holds the file's lock bytes (page 262,145 at 4 KiB), so the cache has seen a
    // page far past the end of the file, and the commit drops "pages past the end" by walking
    // every page in the cache. That cost grows with the cache, not with the commit: with the
    // replay-sized cache it took a fifth of the writer's time under small GETs. Catching up
    // (above), which may rebuild the views, keeps the large cache.
    set_page_cache(&log, &views, WRITER_PAGE_CACHE_KIB)?;
    Ok(WriterConnections { log, views, shared, bulk_cache: false, touched: Touched::default() })
}

/// A read-only connection to the log with the views attached, so that queries of either
/// work on it. Reads see committed data only.
fn open_reader(path: &Path) -> Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI;
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    keep_plans(&conn)?;
    conn.execute("ATTACH DATABASE ?1 AS views", [read_only_uri(&views_path(path))])?;
    Ok(conn)
}

fn read_only_uri(path: &Path) -> String {
    // Percent-encode what a URI path may not hold as is.
    let mut uri = String::from("file:");
    for byte in path.as_os_str().as_encoded_bytes() {
        match byte {
            b'%' | b'?' | b'#' => uri.push_str(&format!("%{byte:02X}")),
            _ => uri.push(char::from(*byte)),
        }
    }
    uri.push_str("?mode=ro");
    uri
}

/// Opens an existing database read-only, for checks that run beside a serving gateway
/// (`verify`, `gc`); WAL lets it read a consistent snapshot while the writer commits.
///
/// # Errors
/// SQLite errors (for example, no database at `path`).
pub fn open_read_only(path: impl AsRef<Path>) -> Result<Connection> {
    open_reader(path.as_ref())
}

/// Opens the registry for offline work (CLI `replay`, tests): one read-write connection to
/// the log with the views attached, migrated and caught up, with the writer's settings.
///
/// # Errors
/// SQLite or migration errors.
pub fn open_offline(path: impl AsRef<Path>) -> Result<Connection> {
    let path = path.as_ref();
    drop(open_writer(path, "FULL", None)?);
    let conn = open_migrated(path, LOG_MIGRATIONS, "FULL")?;
    conn.execute("ATTACH DATABASE ?1 AS views", [views_path(path).to_string_lossy()])?;
    conn.pragma_update(Some("views"), "synchronous", "NORMAL")?;
    conn.pragma_update(Some("views"), "cache_size", -PAGE_CACHE_KIB)?;
    Ok(conn)
}

#[cfg(test)]
mod tests {
    use rusqlite::StatementStatus;

    use super::*;

    /// SQLite re-prepares a statement whose plan may depend on a bound value (here `LIMIT ?`)
    /// each time that value is bound again, unless the planner is told to keep its plans.
    /// Cached statements would then be parsed and planned anew on every run.
    #[test]
    fn cached_statements_with_bound_limits_are_not_prepared_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("registry.db");
        let writer = open_writer(&path, "FULL", None).unwrap();
        let reader = open_reader(&path).unwrap();
        let sql = format!("SELECT {} FROM events WHERE seq > ?1 ORDER BY seq LIMIT ?2", log::EVENT_COLUMNS);
        for conn in [&writer.log, &reader] {
            for limit in [10, 20, 10] {
                log::fetch_since(conn, 0, limit).unwrap();
            }
            let statement = conn.prepare_cached(&sql).unwrap();
            assert_eq!(statement.get_status(StatementStatus::RePrepare), 0);
        }
    }
}
