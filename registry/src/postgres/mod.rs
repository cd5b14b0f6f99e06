//! The PostgreSQL engine: one log shared by several gateways.
//!
//! PostgreSQL holds the authority: the chain (`events` and the one-row `registry_head`) and
//! the tables beside it ([`crate::side_tables`]). Each gateway keeps a replica of the log and
//! its views in a local SQLite registry ([`crate::sqlite`]), which its writer brings up to
//! PostgreSQL at the start of every group commit, under the head's row lock:
//!
//! 1. take `registry_head` `FOR UPDATE`: the batches of all gateways are serialised here;
//! 2. copy the events the replica lacks (and the inline bytes and secrets stored with them)
//!    into the replica's log, which applies them to its views;
//! 3. run the batch's jobs on the replica, which now holds every committed event, so every
//!    check (a conditional write, Object Lock, a policy) sees what all gateways committed;
//! 4. insert the batch's events with their explicit sequences, move the head, NOTIFY once,
//!    and COMMIT; only then commit the replica and acknowledge.
//!
//! Reads are served from the replica after a freshness check: a read first learns the head's
//! sequence and, when the replica is behind it, waits for one group commit to catch up. So a
//! read that begins after a write was acknowledged by any gateway sees it. A listener per
//! gateway (LISTEN, and a poll for a missed notification) catches the replica up between
//! writes, which is what tails and caches follow.
//!
//! Why a replica rather than views in PostgreSQL: the views and every query over them exist
//! once, in one SQL dialect, so the views of a log are the same bytes whatever engine holds the
//! log; and reads cost one round trip for the freshness check instead of one per query.

mod copy;
mod side_tables;

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use postgres::fallible_iterator::FallibleIterator as _;
use postgres::types::ToSql;
use postgres::{Client, GenericClient, NoTls, Row, Statement, Transaction};
use rusqlite::{Connection, OptionalExtension as _};

use crate::error::{Error, Result};
use crate::event::v1::Payload;
use crate::event::{Digest, Event, RequestContext};
use crate::freshness::HeadQueries;
use crate::inline_blob::InlineBlob;
use crate::log::{self, ChainHead};
use crate::side_tables::SideTables;

pub use copy::{Copied, copy_to_shared};
pub(crate) use side_tables::SharedTables;

/// The channel a batch notifies, with its last sequence as the payload.
const CHANNEL: &str = "registry_events";

/// Versioned migrations, applied in order, each once, under an advisory lock so that gateways
/// starting together do not race.
const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("migrations/0001_init.sql")),
    (2, include_str!("migrations/0002_inline_removals.sql")),
    (3, include_str!("migrations/0003_removed_since.sql")),
];

/// Key of the advisory lock that serialises migrations.
const MIGRATION_LOCK: i64 = 0x6172_7469_6661_6374;

/// Events read per query while catching up.
const PULL_CHUNK: i64 = 4096;

/// Most time a connection may take to be made.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Server-side limits of every session, so that nothing waits for ever on a gateway that
/// stalled or was cut off while it held the head's lock: its idle transaction is ended (and
/// the lock freed) after a minute, and a batch waits at most that long for the lock (its
/// callers then hear 503 and may retry).
const SESSION_LIMITS: &str =
    "-c lock_timeout=60000 -c statement_timeout=120000 -c idle_in_transaction_session_timeout=60000";

/// Opens a connection to `url` (`postgres://USER@HOST:PORT/DB`), with a connect timeout, TCP
/// keepalives and the session limits above (added to the URL's own `options`).
///
/// # Errors
/// [`Error::Postgres`] when the URL does not parse, or the server cannot be reached or refuses.
pub fn connect(url: &str) -> Result<Client> {
    let mut config: postgres::Config = url.parse()?;
    let options = match config.get_options() {
        Some(given) => format!("{given} {SESSION_LIMITS}"),
        None => SESSION_LIMITS.to_owned(),
    };
    config
        .options(&options)
        .connect_timeout(CONNECT_TIMEOUT)
        .keepalives(true)
        .keepalives_idle(Duration::from_secs(30))
        .keepalives_interval(Duration::from_secs(10))
        .keepalives_retries(3);
    Ok(config.connect(NoTls)?)
}

/// Brings the schema at `url` to the latest version.
///
/// # Errors
/// [`Error::Postgres`].
pub fn migrate(client: &mut Client) -> Result<()> {
    let mut tx = client.transaction()?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
    let fresh: bool = tx.query_one("SELECT to_regclass('registry_migrations') IS NULL", &[])?.get(0);
    if fresh {
        tx.batch_execute("CREATE TABLE registry_migrations (version bigint PRIMARY KEY)")?;
    }
    let applied: i64 = tx.query_one("SELECT coalesce(max(version), 0) FROM registry_migrations", &[])?.get(0);
    for (version, sql) in MIGRATIONS.iter().filter(|(version, _)| *version > applied) {
        tx.batch_execute(sql)?;
        tx.execute("INSERT INTO registry_migrations (version) VALUES ($1)", &[version])?;
    }
    tx.commit()?;
    Ok(())
}

/// The committed head's sequence, without a lock: every event up to it is committed and
/// visible. Asked for nearly every request on a shared log ([`crate::freshness`]), so on a
/// pooled connection's prepared statement: one round trip, and no parsing or planning by the
/// server (which took it 0.1 ms a question as a simple query, more than the query itself).
///
/// # Errors
/// [`Error::Postgres`].
pub(crate) fn committed_sequence(client: &RefCell<Client>, statements: &RefCell<StatementCache>) -> Result<u64> {
    let rows =
        query_prepared(statements, &mut *client.borrow_mut(), "SELECT next_seq FROM registry_head WHERE id = 0", &[])?;
    let row = rows.first().ok_or_else(|| Error::CommitFailed("the shared log has no head row".to_owned()))?;
    Ok(sequence_of(row.get(0)).saturating_sub(1))
}

/// The committed head, without a lock: every event up to it is committed and visible.
///
/// # Errors
/// [`Error::Postgres`].
pub fn committed_head(client: &mut impl GenericClient) -> Result<ChainHead> {
    // Asked once per connection (a CLI command, the listener's poll): the simple protocol
    // takes one round trip where a statement not yet prepared takes two.
    let messages = client.simple_query("SELECT next_seq, encode(head_hash, 'hex') FROM registry_head WHERE id = 0")?;
    let row = messages.iter().find_map(|message| match message {
        postgres::SimpleQueryMessage::Row(row) => Some(row),
        _ => None,
    });
    let unreadable = || Error::CommitFailed("the shared log has no readable head row".to_owned());
    let row = row.ok_or_else(unreadable)?;
    let next_seq = row.get(0).and_then(|text| text.parse().ok()).ok_or_else(unreadable)?;
    let hash = row.get(1).and_then(|text| hex::decode(text).ok()).ok_or_else(unreadable)?;
    head_from(next_seq, hash)
}

/// Refuses a replica that is not a copy of the shared log's beginning: one ahead of it, or
/// whose last event is not the shared log's event at that sequence.
///
/// # Errors
/// [`Error::CommitFailed`] naming the mismatch; [`Error::Postgres`].
pub fn check_replica(client: &mut Client, replica: &ChainHead) -> Result<()> {
    if replica.sequence == 0 {
        return Ok(());
    }
    let shared = committed_head(client)?;
    let row = client.query_opt("SELECT hash FROM events WHERE seq = $1", &[&column(replica.sequence)])?;
    match row.map(|row| row.get::<_, Vec<u8>>(0)) {
        Some(hash) if hash == replica.hash => Ok(()),
        _ => Err(diverged(*replica, shared.sequence)),
    }
}

fn head_from(next_seq: i64, hash: Vec<u8>) -> Result<ChainHead> {
    let hash: Digest =
        hash.try_into().map_err(|_| Error::CommitFailed("the shared head's hash is not 32 bytes".to_owned()))?;
    Ok(ChainHead { sequence: sequence_of(next_seq) - 1, hash })
}

fn sequence_of(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

fn column(sequence: u64) -> i64 {
    i64::try_from(sequence).unwrap_or(i64::MAX)
}

/// Statements prepared on one connection, by their SQL: a prepared statement runs in one
/// round trip, where an unprepared one takes two (parse, then execute). Every batch asks the
/// same questions, under the head's lock that all gateways wait for.
pub(crate) type StatementCache = HashMap<&'static str, Statement>;

/// Runs `sql` on `client`, prepared once per connection in `cache`.
pub(crate) fn query_prepared(
    cache: &RefCell<StatementCache>,
    client: &mut impl GenericClient,
    sql: &'static str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Vec<Row>> {
    let cached = cache.borrow().get(sql).cloned();
    let statement = match cached {
        Some(statement) => statement,
        None => {
            let statement = client.prepare(sql)?;
            cache.borrow_mut().insert(sql, statement.clone());
            statement
        }
    };
    Ok(client.query(&statement, params)?)
}

/// Which transaction a batch is, and which server process runs it: after a COMMIT whose
/// answer was lost, they tell whether it happened ([`committed`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct BatchTransaction {
    txid: i64,
    backend_pid: i32,
}

/// How long a lost COMMIT's transaction may stay in progress before its server process is
/// ended (its COMMIT never arrived, and it waits idle in its transaction), in polls of
/// [`OUTCOME_POLL`].
const OUTCOME_POLLS_BEFORE_ENDING: u32 = 10;
/// How long a lost COMMIT waiting for a synchronous standby is waited for before its outcome
/// is reported unknown: the sessions' lock timeout, a minute (every batch waits as long for
/// the head meanwhile, as it would for any commit waiting for the standby).
const OUTCOME_POLLS_FOR_A_STANDBY: u32 = 600;
const OUTCOME_POLL: std::time::Duration = std::time::Duration::from_millis(100);

/// Whether `batch` committed, asked (on another connection) after its COMMIT's answer was
/// lost. A transaction still in progress is waited for; if it stays so, its process is ended
/// (PostgreSQL then rolls it back) and the answer is the outcome that leaves.
///
/// One in progress because its COMMIT waits for a synchronous standby is not ended: it has
/// committed on this server, and ending its process would make it visible (and acknowledged)
/// without the standby, which a failover would then lose. It is waited for as an answered
/// COMMIT would be.
///
/// # Errors
/// [`Error::Postgres`], or [`Error::CommitFailed`] when no outcome comes: then nobody knows.
pub(crate) fn committed(client: &mut Client, batch: BatchTransaction) -> Result<bool> {
    let mut polls = 0;
    loop {
        let status: Option<String> = client.query_one("SELECT txid_status($1)", &[&batch.txid])?.get(0);
        match status.as_deref() {
            Some("committed") => return Ok(true),
            Some("aborted") => return Ok(false),
            Some(_) => {
                let waits_for_standby: bool = client
                    .query_one(
                        "SELECT EXISTS (SELECT FROM pg_stat_activity WHERE pid = $1 AND wait_event = 'SyncRep')",
                        &[&batch.backend_pid],
                    )?
                    .get(0);
                let limit =
                    if waits_for_standby { OUTCOME_POLLS_FOR_A_STANDBY } else { OUTCOME_POLLS_BEFORE_ENDING * 3 };
                if polls >= limit {
                    break;
                }
                if polls == OUTCOME_POLLS_BEFORE_ENDING && !waits_for_standby {
                    client.execute("SELECT pg_terminate_backend($1)", &[&batch.backend_pid])?;
                }
                polls += 1;
                std::thread::sleep(OUTCOME_POLL);
            }
            // Too old to be known: never for a transaction of a moment ago.
            None => break,
        }
    }
    Err(Error::CommitFailed(format!("the outcome of transaction {} is unknown", batch.txid)))
}

/// One group commit's transaction on the shared log, holding the head's row lock.
pub(crate) struct SharedBatch<'a> {
    tx: RefCell<Transaction<'a>>,
    statements: &'a RefCell<StatementCache>,
    /// The head when the batch took the lock.
    head: ChainHead,
    /// Its transaction, to ask after about a COMMIT whose answer was lost.
    transaction: BatchTransaction,
    /// The stamp of gc's latest removal of inline bytes (see [`SharedBatch::pull_into`]).
    removed_since: u64,
    /// The database's clock at the grant (see [`crate::clock::MAX_SKEW_MS`]).
    database_now_ms: i64,
    /// Inline bytes the batch's jobs stored, written with its events ([`SharedBatch::commit`]).
    inline_stored: RefCell<Vec<InlineBlob>>,
}

impl<'a> SharedBatch<'a> {
    /// Begins a transaction and takes the head's row lock: from here until commit or rollback
    /// no other gateway's batch runs. `statements` are those prepared on `client`.
    pub(crate) fn begin(client: &'a mut Client, statements: &'a RefCell<StatementCache>) -> Result<Self> {
        let mut tx = client.transaction()?;
        let rows = query_prepared(
            statements,
            &mut tx,
            "SELECT next_seq, head_hash, txid_current(), pg_backend_pid(), removed_since,
                    (extract(epoch FROM clock_timestamp()) * 1000)::bigint
             FROM registry_head WHERE id = 0 FOR UPDATE",
            &[],
        )?;
        let row = rows.first().ok_or_else(|| Error::CommitFailed("the shared log has no head row".to_owned()))?;
        let head = head_from(row.get(0), row.get(1))?;
        let transaction = BatchTransaction { txid: row.get(2), backend_pid: row.get(3) };
        let removed_since = sequence_of(row.get(4));
        Ok(Self {
            tx: RefCell::new(tx),
            statements,
            head,
            transaction,
            removed_since,
            database_now_ms: row.get(5),
            inline_stored: RefCell::default(),
        })
    }

    /// The database's clock when the batch was granted the lock, in milliseconds since the
    /// epoch.
    pub(crate) fn database_now_ms(&self) -> i64 {
        self.database_now_ms
    }

    /// The tables beside the shared log, for the batch's jobs; inline bytes and secrets are
    /// kept in the replica's tables (`replica`) as well, so that reads find them locally.
    pub(crate) fn tables<'b>(&'b self, replica: &'b dyn SideTables) -> SharedTables<'b, Transaction<'a>> {
        SharedTables::in_batch(&self.tx, self.statements, replica, &self.inline_stored, self.head.sequence + 1)
    }

    /// Copies into the replica's log the events after `replica_head` up to the locked head:
    /// see [`pull`]. Also drops the inline bytes gc removed in batches that appended no event
    /// after the head: they are stamped with the next sequence, which this batch's own events
    /// take, so no later catch-up of this replica would look at them.
    pub(crate) fn pull_into(&self, local: &Connection, replica_head: ChainHead) -> Result<ChainHead> {
        let mut tx = self.tx.borrow_mut();
        let pulled = pull(&mut *tx, self.statements, local, replica_head, Some(self.head))?;
        if self.removed_since > self.head.sequence {
            let sql = "SELECT digest FROM inline_removals WHERE since > $1";
            for row in query_prepared(self.statements, &mut *tx, sql, &[&column(self.head.sequence)])? {
                local.delete_inline(row.get::<_, &[u8]>(0))?;
            }
        }
        Ok(pulled)
    }

    /// The batch's transaction, to ask [`committed`] about if its COMMIT fails.
    pub(crate) fn transaction(&self) -> BatchTransaction {
        self.transaction
    }

    /// Appends the batch's events (which chain from the locked head) and the inline bytes its
    /// jobs stored to the shared log, moves the head, notifies the channel once, and commits.
    ///
    /// # Errors
    /// [`Error::Postgres`]: the batch is not in the shared log, unless the error is the lost
    /// answer of a COMMIT that happened ([`committed`] tells).
    pub(crate) fn commit(self, events: &[Event]) -> Result<()> {
        let mut tx = self.tx.into_inner();
        let inline = self.inline_stored.into_inner();
        if !events.is_empty() || !inline.is_empty() {
            append_batch(&mut tx, self.statements, events, &inline, self.head.sequence + 1)?;
        }
        tx.commit()?;
        Ok(())
    }
}

/// A chunk of the events after `$1` up to `$2`, at most `$3`, in order: what a replica copies
/// and `verify` walks.
const EVENTS_AFTER: &str = "SELECT seq, created_at, event_type, subject_kind, subject_id, actor, access_key,
                                   request_id, source_addr, user_agent, payload, payload_digest, prev_hash, hash
                            FROM events WHERE seq > $1 AND seq <= $2 ORDER BY seq LIMIT $3";

/// Copies into the replica's log (`local`, inside its transaction) the events after
/// `replica_head` up to `until` (the locked head), or, without it, every event committed so
/// far, and the inline bytes and secrets their batches stored; drops the secrets of keys
/// deleted by them, and the inline bytes gc removed in them (a removal by a batch with no event
/// is stamped past the head, where the next batch of each gateway finds it:
/// [`SharedBatch::pull_into`]). The replica's views apply the events when the writer catches
/// them up. Committed events never change, so this needs no lock: a writer pulls most of what
/// it lacks before it takes the head, and only the rest under it.
///
/// Without `until` no query of the head is needed: batches append under the head's lock and
/// commit in the order of their sequences, so the committed events any query sees run without
/// a gap from the first, and the pull ends at the first chunk that is not full.
///
/// # Errors
/// [`Error::Postgres`]; [`Error::CommitFailed`] when the replica does not belong to this log
/// (its head is ahead of `until`, or an event does not chain from it).
pub(crate) fn pull(
    client: &mut impl GenericClient,
    statements: &RefCell<StatementCache>,
    local: &Connection,
    replica_head: ChainHead,
    until: Option<ChainHead>,
) -> Result<ChainHead> {
    if let Some(until) = until
        && replica_head.sequence > until.sequence
    {
        return Err(diverged(replica_head, until.sequence));
    }
    let last = until.map_or(i64::MAX, |until| column(until.sequence));
    let mut head = replica_head;
    while until.is_none_or(|until| head.sequence < until.sequence) {
        let rows = query_prepared(statements, client, EVENTS_AFTER, &[&column(head.sequence), &last, &PULL_CHUNK])?;
        if rows.is_empty()
            && let Some(until) = until
        {
            return Err(Error::CommitFailed(format!(
                "the shared log lacks events after {} up to its head {}",
                head.sequence, until.sequence
            )));
        }
        let chunk_full = rows.len() == usize::try_from(PULL_CHUNK).unwrap_or(usize::MAX);
        for row in rows {
            let event = event_from_row(&row);
            if event.sequence != head.sequence + 1 || event.prev_hash != head.hash {
                return Err(diverged(head, until.map_or(event.sequence, |until| until.sequence)));
            }
            // An event changed in PostgreSQL behind the registry's back is refused here, before
            // any replica's views apply it.
            if !event.verify_digest() || event.compute_hash() != event.hash {
                return Err(Error::ChainBroken { sequence: event.sequence });
            }
            log::insert(local, &event)?;
            if event.event_type == "v1.access_key.deleted"
                && let Payload::AccessKeyDeleted(deleted) = event.decode()?
            {
                local.delete_secret(&deleted.access_key)?;
            }
            head = ChainHead { sequence: event.sequence, hash: event.hash };
        }
        if until.is_none() && !chunk_full {
            break;
        }
    }
    if head.sequence > replica_head.sequence {
        pull_side_rows(client, statements, local, replica_head.sequence, head.sequence)?;
    }
    Ok(head)
}

/// Walks the shared log from its first event up to `last`, each event re-hashed and chained to
/// the one before, and each compared with the replica's event of the same sequence (`local`):
/// the first sequence that does not hold, if any. Reads see the replica, which took each event
/// once when it was pulled; an event changed in PostgreSQL since is found only here.
///
/// # Errors
/// [`Error::Postgres`]; [`Error::Sqlite`] reading the replica.
pub(crate) fn check_against_replica(
    client: &mut impl GenericClient,
    local: &Connection,
    last: u64,
) -> Result<Option<u64>> {
    let mut head = ChainHead { sequence: 0, hash: crate::event::GENESIS_HASH };
    while head.sequence < last {
        let rows = client.query(EVENTS_AFTER, &[&column(head.sequence), &column(last), &PULL_CHUNK])?;
        if rows.is_empty() {
            return Ok(Some(head.sequence + 1));
        }
        for row in rows {
            let event = event_from_row(&row);
            let intact = event.sequence == head.sequence + 1
                && event.prev_hash == head.hash
                && event.verify_digest()
                && event.compute_hash() == event.hash;
            let replica: Option<Vec<u8>> = local
                .prepare_cached("SELECT hash FROM events WHERE seq = ?1")?
                .query_row([event.sequence], |row| row.get(0))
                .optional()?;
            if !intact || replica.as_deref() != Some(&event.hash[..]) {
                return Ok(Some(head.sequence + 1));
            }
            head = ChainHead { sequence: event.sequence, hash: event.hash };
        }
    }
    Ok(None)
}

/// Copies into the replica the rows beside the log stored by the batches whose first
/// sequence is after `after` and at most `last`, in one query: gc's removals of inline bytes
/// before stores (bytes removed and then stored again in the range are kept), inline bytes,
/// and access keys' secrets.
fn pull_side_rows(
    client: &mut impl GenericClient,
    statements: &RefCell<StatementCache>,
    local: &Connection,
    after: u64,
    last: u64,
) -> Result<()> {
    let sql = "SELECT 0 AS kind, digest, NULL::bytea, NULL::text, NULL::text
                 FROM inline_removals WHERE since > $1 AND since <= $2
               UNION ALL
               SELECT 1, digest, bytes, NULL, NULL FROM inline_blobs WHERE since > $1 AND since <= $2
               UNION ALL
               SELECT 2, NULL, NULL, access_key, secret FROM access_key_secrets WHERE since > $1 AND since <= $2
               ORDER BY kind";
    for row in query_prepared(statements, client, sql, &[&column(after), &column(last)])? {
        match row.get::<_, i32>(0) {
            0 => local.delete_inline(row.get::<_, &[u8]>(1))?,
            1 => {
                let digest: Vec<u8> = row.get(1);
                if let Ok(digest) = digest.try_into() {
                    local.store_inline(&InlineBlob { digest, bytes: row.get(2) })?;
                }
            }
            _ => {
                let access_key: String = row.get(3);
                if !local.holds_secret(&access_key)? {
                    local.store_secret(&access_key, row.get(4))?;
                }
            }
        }
    }
    Ok(())
}

fn diverged(replica: ChainHead, shared: u64) -> Error {
    Error::CommitFailed(format!(
        "the local replica (at event {}) does not belong to the shared log (at event {shared}): move it aside \
         and start again to rebuild it",
        replica.sequence
    ))
}

/// The columns of `events`, as the arrays that statements unnest.
struct EventColumns<'e> {
    seqs: Vec<i64>,
    created: Vec<i64>,
    types: Vec<&'e str>,
    kinds: Vec<&'e str>,
    subjects: Vec<&'e str>,
    actors: Vec<&'e str>,
    keys: Vec<Option<&'e str>>,
    requests: Vec<Option<&'e str>>,
    sources: Vec<Option<&'e str>>,
    agents: Vec<Option<&'e str>>,
    payloads: Vec<&'e [u8]>,
    digests: Vec<&'e [u8]>,
    prevs: Vec<&'e [u8]>,
    hashes: Vec<&'e [u8]>,
}

impl<'e> EventColumns<'e> {
    fn of(events: &'e [Event]) -> Self {
        Self {
            seqs: events.iter().map(|e| column(e.sequence)).collect(),
            created: events.iter().map(|e| e.created_at).collect(),
            types: events.iter().map(|e| e.event_type.as_str()).collect(),
            kinds: events.iter().map(|e| e.subject_kind.as_str()).collect(),
            subjects: events.iter().map(|e| e.subject_id.as_str()).collect(),
            actors: events.iter().map(|e| e.actor.as_str()).collect(),
            keys: events.iter().map(|e| e.context.access_key.as_deref()).collect(),
            requests: events.iter().map(|e| e.context.request_id.as_deref()).collect(),
            sources: events.iter().map(|e| e.context.source_addr.as_deref()).collect(),
            agents: events.iter().map(|e| e.context.user_agent.as_deref()).collect(),
            payloads: events.iter().map(|e| e.payload.as_slice()).collect(),
            digests: events.iter().map(|e| &e.payload_digest[..]).collect(),
            prevs: events.iter().map(|e| &e.prev_hash[..]).collect(),
            hashes: events.iter().map(|e| &e.hash[..]).collect(),
        }
    }

    /// Parameters `$1` to `$14` of [`append_batch`]'s statement.
    fn params(&self) -> [&(dyn ToSql + Sync); 14] {
        [
            &self.seqs,
            &self.created,
            &self.types,
            &self.kinds,
            &self.subjects,
            &self.actors,
            &self.keys,
            &self.requests,
            &self.sources,
            &self.agents,
            &self.payloads,
            &self.digests,
            &self.prevs,
            &self.hashes,
        ]
    }
}

/// Appends a batch in one statement, one round trip under the head's lock: its events, the
/// inline bytes its jobs stored (stamped `since`, its first sequence), and, when it has
/// events, the head moved past them and the channel notified of it. `registry copy` appends
/// the copied log this way too, a chunk of events at a time.
fn append_batch(
    tx: &mut Transaction<'_>,
    statements: &RefCell<StatementCache>,
    events: &[Event],
    inline: &[InlineBlob],
    since: u64,
) -> Result<()> {
    let columns = EventColumns::of(events);
    let digests: Vec<&[u8]> = inline.iter().map(|blob| &blob.digest[..]).collect();
    let bytes: Vec<&[u8]> = inline.iter().map(|blob| blob.bytes.as_slice()).collect();
    let next_seq = column(events.last().map_or(since, |last| last.sequence + 1));
    let head_hash: &[u8] = events.last().map_or(&[], |last| &last.hash[..]);
    let since = column(since);
    let mut params = columns.params().to_vec();
    params.extend_from_slice(&[&digests, &bytes, &since, &next_seq, &head_hash]);
    // An inline row already there takes this batch's bytes: it may have been damaged since it
    // was stored. Its stamp stays: a gateway copying rows reads the events first and the rows
    // after, in two statements, and a row whose stamp moved past the events it read would be
    // left out of the copy.
    let sql = "WITH appended AS (
                   INSERT INTO events (seq, created_at, event_type, subject_kind, subject_id, actor, access_key,
                                       request_id, source_addr, user_agent, payload, payload_digest, prev_hash, hash)
                   SELECT * FROM UNNEST($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[],
                                        $7::text[], $8::text[], $9::text[], $10::text[], $11::bytea[], $12::bytea[],
                                        $13::bytea[], $14::bytea[])
               ), stored AS (
                   INSERT INTO inline_blobs (digest, bytes, since)
                   SELECT digest, bytes, $17 FROM UNNEST($15::bytea[], $16::bytea[]) AS stored (digest, bytes)
                   ON CONFLICT (digest) DO UPDATE SET bytes = excluded.bytes
               ), moved AS (
                   UPDATE registry_head SET next_seq = $18, head_hash = $19
                   WHERE id = 0 AND cardinality($1::bigint[]) > 0 RETURNING next_seq
               )
               SELECT pg_notify('registry_events', (next_seq - 1)::text) FROM moved";
    query_prepared(statements, tx, sql, &params)?;
    Ok(())
}

fn event_from_row(row: &postgres::Row) -> Event {
    let digest = |index: usize| -> Digest {
        // A stored value of another length (tampering) reads as a digest that cannot match.
        let bytes: Vec<u8> = row.get(index);
        bytes.try_into().unwrap_or([0xff; 32])
    };
    Event {
        sequence: sequence_of(row.get(0)),
        created_at: row.get(1),
        event_type: row.get(2),
        subject_kind: row.get(3),
        subject_id: row.get(4),
        actor: row.get(5),
        context: RequestContext {
            access_key: row.get(6),
            request_id: row.get(7),
            source_addr: row.get(8),
            user_agent: row.get(9),
        },
        payload: row.get(10),
        payload_digest: digest(11),
        prev_hash: digest(12),
        hash: digest(13),
    }
}

/// Up to `limit` events of the shared log after `cursor`, in order.
///
/// # Errors
/// [`Error::Postgres`].
pub fn fetch_since(client: &mut impl GenericClient, cursor: u64, limit: usize) -> Result<Vec<Event>> {
    let rows = client.query(
        "SELECT seq, created_at, event_type, subject_kind, subject_id, actor, access_key, request_id,
                source_addr, user_agent, payload, payload_digest, prev_hash, hash
         FROM events WHERE seq > $1 ORDER BY seq LIMIT $2",
        &[&column(cursor), &i64::try_from(limit).unwrap_or(i64::MAX)],
    )?;
    Ok(rows.iter().map(event_from_row).collect())
}

/// Connections for reads of the shared log (freshness checks, the tables beside it), kept
/// between uses, and the session that asks for leases. A connection that failed is dropped,
/// so a restarted server is reconnected to by the next read.
pub(crate) struct SharedReads {
    url: String,
    /// The shared head, as the gateway's reads last learnt it.
    pub(crate) heads: HeadQueries,
    pool: Mutex<Pool>,
    returned: std::sync::Condvar,
    /// The session of the last lease refused, kept for the next attempt: an idle gateway asks
    /// for the checkpoints' lease every second, and a session per attempt would have the
    /// server start a process for each.
    lease_session: Mutex<Option<Client>>,
}

/// Idle connections, each with the statements prepared on it, and how many exist in all.
#[derive(Default)]
struct Pool {
    idle: Vec<(Client, StatementCache)>,
    open: usize,
}

/// Most read connections a gateway opens: past them a read waits for one to be returned, so
/// that a flood of requests cannot take the server's every connection.
const MAX_READ_CONNECTIONS: usize = 16;

impl SharedReads {
    pub(crate) fn new(url: &str) -> Self {
        Self {
            url: url.to_owned(),
            heads: HeadQueries::default(),
            pool: Mutex::new(Pool::default()),
            returned: std::sync::Condvar::new(),
            lease_session: Mutex::new(None),
        }
    }

    /// Takes the lease `name` unless another session holds it. A granted lease keeps the
    /// session it was taken on (closing it releases the lease); a refused attempt leaves its
    /// session for the next. A kept session cut since (PostgreSQL restarted) is found out by
    /// the attempt, which is then made again, once, on a new one.
    pub(crate) fn try_lease(&self, name: &str) -> Result<Option<SharedLease>> {
        let key = i64::from_le_bytes(blake3::hash(name.as_bytes()).as_bytes()[..8].try_into().expect("8 bytes"));
        let try_lock = |client: &mut Client| -> Result<bool> {
            Ok(client.query_one("SELECT pg_try_advisory_lock($1)", &[&key])?.get(0))
        };
        let kept = self.lease_session.lock().expect("lease session lock").take().filter(|client| !client.is_closed());
        let reused = kept.is_some();
        let mut client = match kept {
            Some(client) => client,
            None => connect(&self.url)?,
        };
        let taken = match try_lock(&mut client) {
            Err(error) if reused && client.is_closed() => {
                tracing::info!(%error, "the session asking for leases was lost; connecting again");
                client = connect(&self.url)?;
                try_lock(&mut client)?
            }
            taken => taken?,
        };
        if taken {
            return Ok(Some(SharedLease { client: Mutex::new(Some(client)) }));
        }
        // Another attempt may have put its session back meanwhile: one is kept, the other
        // closed here (a blocking thread, where a client may be dropped).
        let replaced = self.lease_session.lock().expect("lease session lock").replace(client);
        drop(replaced);
        Ok(None)
    }

    /// Runs `f` on a pooled connection and the statements prepared on it, on the calling
    /// (blocking) thread.
    ///
    /// A pooled connection may have been cut since its last use (PostgreSQL restarted): the
    /// first query on it finds out. Its idle neighbours most likely went with it, so they are
    /// let go, and `f`, a read, is asked again, once, on a connection made again.
    pub(crate) fn with_client<R>(
        &self,
        f: impl Fn(&RefCell<Client>, &RefCell<StatementCache>) -> Result<R>,
    ) -> Result<R> {
        match self.run_pooled(&f) {
            Pooled::Ran(result) => result,
            Pooled::FoundLost(error) => {
                tracing::info!(%error, "the read connections to the shared log were lost; connecting again");
                let lost = {
                    let mut pool = self.pool.lock().expect("shared pool lock");
                    pool.open -= pool.idle.len();
                    std::mem::take(&mut pool.idle)
                };
                drop(lost);
                self.returned.notify_all();
                match self.run_pooled(&f) {
                    Pooled::Ran(result) => result,
                    Pooled::FoundLost(error) => Err(error),
                }
            }
        }
    }

    fn run_pooled<R>(&self, f: &impl Fn(&RefCell<Client>, &RefCell<StatementCache>) -> Result<R>) -> Pooled<R> {
        let pooled = {
            let mut pool = self.pool.lock().expect("shared pool lock");
            loop {
                if let Some(pooled) = pool.idle.pop() {
                    break Some(pooled);
                }
                if pool.open < MAX_READ_CONNECTIONS {
                    pool.open += 1;
                    break None;
                }
                pool = self.returned.wait(pool).expect("shared pool lock");
            }
        };
        let reused = pooled.as_ref().is_some_and(|(client, _)| !client.is_closed());
        let connection = match pooled {
            Some((client, statements)) if !client.is_closed() => Ok((client, statements)),
            _ => connect(&self.url).map(|client| (client, StatementCache::new())),
        };
        let result = connection.map(|(client, statements)| {
            let (client, statements) = (RefCell::new(client), RefCell::new(statements));
            let result = f(&client, &statements);
            (result, client.into_inner(), statements.into_inner())
        });
        let mut pool = self.pool.lock().expect("shared pool lock");
        let result = match result {
            Ok((result, client, statements)) if result.is_ok() && !client.is_closed() => {
                pool.idle.push((client, statements));
                Pooled::Ran(result)
            }
            Ok((result, client, _)) => {
                pool.open -= 1;
                match result {
                    Err(error) if reused && client.is_closed() => Pooled::FoundLost(error),
                    result => Pooled::Ran(result),
                }
            }
            Err(error) => {
                pool.open -= 1;
                Pooled::Ran(Err(error))
            }
        };
        drop(pool);
        self.returned.notify_one();
        result
    }
}

/// What running a read on a pooled connection came to.
enum Pooled<R> {
    /// The read's result, whatever it is.
    Ran(Result<R>),
    /// The reused connection turned out to be lost: the read may be asked again.
    FoundLost(Error),
}

impl Drop for SharedReads {
    fn drop(&mut self) {
        // Each client owns a runtime, which must not be dropped on an async runtime's thread.
        let clients = std::mem::take(&mut self.pool.lock().unwrap_or_else(std::sync::PoisonError::into_inner).idle);
        let lease_session = self.lease_session.get_mut().unwrap_or_else(std::sync::PoisonError::into_inner).take();
        if !clients.is_empty() || lease_session.is_some() {
            let _ = std::thread::Builder::new()
                .name("registry-pg-close".into())
                .spawn(move || drop((clients, lease_session)));
        }
    }
}

/// A gateway's hold on a task that must run on one gateway at a time (gc, the lifecycle
/// sweeper, automatic checkpoints): a session-level advisory lock, which PostgreSQL releases
/// when the holder's connection ends, whether the holder stopped or died.
pub(crate) struct SharedLease {
    client: Mutex<Option<Client>>,
}

impl SharedLease {
    /// Whether the lease holds now: a round trip on its session, which still holds the lock
    /// exactly when it still answers.
    pub(crate) fn confirm(&self) -> bool {
        let mut client = self.client.lock().expect("lease lock");
        client.as_mut().is_some_and(|client| client.simple_query("SELECT 1").is_ok())
    }
}

impl Drop for SharedLease {
    fn drop(&mut self) {
        // Closing the session releases the lock; the client's runtime must not be dropped on
        // an async runtime's thread.
        if let Some(client) = self.client.get_mut().ok().and_then(Option::take) {
            let _ = std::thread::Builder::new().name("registry-pg-close".into()).spawn(move || drop(client));
        }
    }
}

/// How often the listener asks for the head when no notification came: a notification lost
/// with a connection delays a gateway's catching up by at most this.
pub const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// Follows the shared log's notifications on its own connection and calls `wake` with the
/// shared head's sequence after each one (the notified sequence, so no query is made) and at
/// least every [`POLL_INTERVAL`] (a query of the head), until `wake` returns false. Calls it
/// with `None` while PostgreSQL cannot be reached, and reconnects after a lost connection.
pub(crate) fn listen(url: &str, mut wake: impl FnMut(Option<u64>) -> bool) {
    loop {
        let connected = connect(url).and_then(|mut client| {
            client.batch_execute(&format!("LISTEN {CHANNEL}"))?;
            Ok(client)
        });
        let mut client = match connected {
            Ok(client) => client,
            Err(error) => {
                tracing::warn!(%error, "the registry cannot listen to PostgreSQL; retrying");
                if !wake(None) {
                    return;
                }
                std::thread::sleep(POLL_INTERVAL);
                continue;
            }
        };
        loop {
            // Each batch notifies its last sequence: drain what came and keep the highest. A
            // wait without any (or with one that does not parse) asks for the head instead.
            let mut notified = None;
            let mut drain = || -> std::result::Result<(), postgres::Error> {
                let Some(first) = client.notifications().timeout_iter(POLL_INTERVAL).next()? else {
                    return Ok(());
                };
                notified = first.payload().parse::<u64>().ok();
                let mut notifications = client.notifications();
                let mut rest = notifications.iter();
                while let Some(notification) = rest.next()? {
                    notified = notified.max(notification.payload().parse::<u64>().ok());
                }
                Ok(())
            };
            let drained = drain();
            if let Err(error) = drained {
                tracing::warn!(%error, "the registry's PostgreSQL listener lost its connection");
                break;
            }
            let head = match notified {
                Some(sequence) => Some(sequence),
                None => committed_head(&mut client).ok().map(|head| head.sequence),
            };
            if !wake(head) {
                return;
            }
            if head.is_none() {
                break;
            }
        }
    }
}
