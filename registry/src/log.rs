//! The append-only event log: append, read, replay and verify.
//!
//! The log (table `events`) and the views live in two database files; these functions take
//! the connection to each (`log` and `views`). One connection with the views database
//! attached, as [`crate::sqlite::open_offline`] opens it, serves as both. [`append`] must run
//! inside transactions that the caller commits, the log's first; the [`crate::Registry`]
//! writer task is the only caller on a live registry.

use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::error::Result;
use crate::event::v1::Payload;
use crate::event::{Digest, Event, EventDraft, GENESIS_HASH, RequestContext, StoredFields, chain_hash};
use crate::rules::{self, RuleCheck, Violation};
use crate::sqlite::views as stored_views;
use crate::views;

/// The last event of the log: what the next one chains from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainHead {
    /// Its sequence (0 for an empty log).
    pub sequence: u64,
    /// Its hash ([`GENESIS_HASH`] for an empty log).
    pub hash: Digest,
}

impl ChainHead {
    /// Reads the head from the log.
    ///
    /// # Errors
    /// SQLite errors.
    pub fn load(conn: &Connection) -> Result<Self> {
        // Cached: a replica's writer reads its head several times per group commit.
        let head = conn
            .prepare_cached("SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1")?
            .query_row([], |row| Ok(ChainHead { sequence: row.get(0)?, hash: row.get(1)? }))
            .optional()?;
        Ok(head.unwrap_or(ChainHead { sequence: 0, hash: GENESIS_HASH }))
    }
}

/// Appends a draft after `head`, stamped `created_at`, to the log, and applies it to the
/// views, inside the caller's transactions. Advances `head`; if the caller rolls back, it
/// must restore it.
///
/// # Errors
/// SQLite errors.
pub fn append(
    log: &Connection,
    views: &Connection,
    head: &mut ChainHead,
    draft: EventDraft,
    created_at: i64,
) -> Result<Event> {
    let (event, payload) = Event::seal(draft, head.sequence + 1, created_at, head.hash);
    insert(log, &event)?;
    views::apply_payload(views, &event, &payload, None, &mut views::Deferred::None)?;
    *head = ChainHead { sequence: event.sequence, hash: event.hash };
    Ok(event)
}

/// Stores an event row as it is (used by [`append`], and by tests that build logs).
pub(crate) fn insert(conn: &Connection, e: &Event) -> Result<()> {
    let c = &e.context;
    conn.prepare_cached(
        "INSERT INTO events (seq, created_at, event_type, subject_kind, subject_id, actor,
           access_key, request_id, source_addr, user_agent, payload, payload_digest, prev_hash, hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
    )?
    .execute(params![
        e.sequence,
        e.created_at,
        e.event_type,
        e.subject_kind,
        e.subject_id,
        e.actor,
        c.access_key,
        c.request_id,
        c.source_addr,
        c.user_agent,
        e.payload,
        e.payload_digest,
        e.prev_hash,
        e.hash
    ])?;
    Ok(())
}

pub(crate) const EVENT_COLUMNS: &str =
    "seq, created_at, event_type, subject_kind, subject_id, actor, access_key, request_id,
    source_addr, user_agent, payload, payload_digest, prev_hash, hash";

fn event_from_row(row: &Row<'_>) -> rusqlite::Result<Event> {
    Ok(Event {
        sequence: row.get(0)?,
        created_at: row.get(1)?,
        event_type: row.get(2)?,
        subject_kind: row.get(3)?,
        subject_id: row.get(4)?,
        actor: row.get(5)?,
        context: RequestContext {
            access_key: row.get(6)?,
            request_id: row.get(7)?,
            source_addr: row.get(8)?,
            user_agent: row.get(9)?,
        },
        payload: payload_column(row, 10)?,
        payload_digest: digest_column(row, 11)?,
        prev_hash: digest_column(row, 12)?,
        hash: digest_column(row, 13)?,
    })
}

/// Reads the payload column: its bytes, also when stored as text (an edit made with a tool
/// that wrote it back as a string), so that the chain check names the event rather than every
/// reader failing on the column's type.
fn payload_column(row: &Row<'_>, index: usize) -> rusqlite::Result<Vec<u8>> {
    use rusqlite::types::ValueRef;
    match row.get_ref(index)? {
        ValueRef::Text(bytes) | ValueRef::Blob(bytes) => Ok(bytes.to_vec()),
        _ => row.get(index),
    }
}

/// Reads a 32-byte digest column; a stored value of another length (tampering) reads as a
/// digest that cannot match, so verify reports the event rather than failing to read it.
fn digest_column(row: &Row<'_>, index: usize) -> rusqlite::Result<Digest> {
    let bytes: Vec<u8> = row.get(index)?;
    let mut digest = [0xff; 32];
    if bytes.len() == 32 {
        digest.copy_from_slice(&bytes);
    }
    Ok(digest)
}

/// Up to `limit` events with a sequence above `cursor`, in order.
///
/// # Errors
/// SQLite errors.
pub fn fetch_since(conn: &Connection, cursor: u64, limit: usize) -> Result<Vec<Event>> {
    let mut statement =
        conn.prepare_cached(&format!("SELECT {EVENT_COLUMNS} FROM events WHERE seq > ?1 ORDER BY seq LIMIT ?2"))?;
    let events = statement
        .query_map(params![cursor, i64::try_from(limit).unwrap_or(i64::MAX)], event_from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(events)
}

/// What a replay or catch-up applied, and the first event it found that the rules in force
/// at its sequence forbid ([`crate::rules`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replayed {
    /// The last sequence applied (0 for an empty log).
    pub last: u64,
    /// The first event that breaks a rule, if any; it was applied all the same.
    pub first_violation: Option<Violation>,
    /// How many events break a rule.
    pub violations: u64,
}

/// Empties the views and re-applies the whole log, in one transaction, checking every event
/// against the rules in force at its sequence. Unknown event types are skipped.
///
/// # Errors
/// SQLite errors, or [`crate::Error::CorruptPayload`] for a known type that does not parse;
/// on error nothing changes.
pub fn replay(conn: &mut Connection) -> Result<Replayed> {
    replay_with_progress(conn, |_| {})
}

/// [`replay`], calling `progress` with each applied sequence (for progress bars).
///
/// # Errors
/// As [`replay`].
pub fn replay_with_progress(conn: &mut Connection, progress: impl FnMut(u64)) -> Result<Replayed> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let replayed = replay_in(&tx, &tx, u64::MAX, progress)?;
    tx.commit()?;
    Ok(replayed)
}

/// Empties the views and re-applies the log up to and including sequence `until`, inside
/// the caller's transactions.
///
/// # Errors
/// As [`replay`].
pub fn replay_in(log: &Connection, views: &Connection, until: u64, progress: impl FnMut(u64)) -> Result<Replayed> {
    stored_views::reset(views)?;
    // Emptied views are rebuilt in bulk: versions are found in memory, so the indexes go
    // and come back once at the end, built from sorted rows.
    let indexes = stored_views::drop_indexes(views)?;
    let applied = apply_since(log, views, 0, until, views::Deferred::rebuilding(), progress);
    // Also after a failure: a caller that commits anyway must not lose the indexes.
    stored_views::create_indexes(views, &indexes)?;
    applied
}

/// Brings the views up to the end of the log, inside the caller's transactions: applies the
/// events they have not seen, or rebuilds them if they are ahead of the log (a log restored
/// from an older backup). The events applied are checked against the rules as in [`replay`].
///
/// # Errors
/// As [`replay`].
pub fn catch_up(log: &Connection, views: &Connection) -> Result<Replayed> {
    let applied = stored_views::applied(views)?;
    let head = ChainHead::load(log)?.sequence;
    if applied > head {
        // Said loudly: the same holds for a log whose newest events were deleted, which only
        // a signed checkpoint beyond its end proves.
        tracing::error!(
            views_applied = applied,
            log_ends_at = head,
            "the views had applied events the log no longer holds: rebuilt from the log; the log was \
             restored from an older backup, lost its newest commits to a power cut (a shared log's \
             replica, which catches up again), or had its newest events deleted (run `verify`)"
        );
        return replay_in(log, views, u64::MAX, |_| {});
    }
    apply_since(log, views, applied, head, views::Deferred::gathering(), |_| {})
}

fn apply_since(
    log: &Connection,
    views: &Connection,
    after: u64,
    until: u64,
    mut deferred: views::Deferred,
    mut progress: impl FnMut(u64),
) -> Result<Replayed> {
    let mut last = after;
    let mut rule_check = RuleCheck::default();
    let mut apply = |events: Vec<Event>, payloads: &[Decoded]| -> Result<()> {
        for (event, (payload, columns)) in events.iter().zip(payloads) {
            rules::check(views, event, payload, &mut rule_check, &mut deferred)?;
            views::apply_payload(views, event, payload, columns.as_ref(), &mut deferred)?;
            last = event.sequence;
            progress(event.sequence);
        }
        deferred.gather_subjects(events);
        Ok(())
    };
    if until.saturating_sub(after) <= DECODE_BATCH as u64 {
        // A catch-up of a few events (a replica's, after each group commit of another
        // gateway) costs less on this thread than handing it to a decoding thread.
        let events = fetch_range(log, after, until)?;
        let payloads = events.iter().map(decode_with_columns).collect::<Result<Vec<_>>>()?;
        apply(events, &payloads)?;
    } else {
        apply_decoding_aside(log, after, until, &mut apply)?;
    }
    deferred.flush(views)?;
    stored_views::set_applied(views, last)?;
    let RuleCheck { first: first_violation, count: violations, .. } = rule_check;
    if let Some(violation) = &first_violation {
        tracing::warn!(%violation, violations, "the log holds events its own rules forbid (run `verify`)");
    }
    Ok(Replayed { last, first_violation, violations })
}

/// The events after `after` up to and including `until`, in order.
fn fetch_range(log: &Connection, after: u64, until: u64) -> Result<Vec<Event>> {
    let mut statement = range_statement(log)?;
    let events = statement
        .query_map(params![after, i64::try_from(until).unwrap_or(i64::MAX)], event_from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(events)
}

/// The read of the events in a range of sequences (`?1` exclusive, `?2` inclusive), which
/// catch-ups of either size and replays share.
fn range_statement(log: &Connection) -> Result<rusqlite::CachedStatement<'_>> {
    Ok(log.prepare_cached(&format!("SELECT {EVENT_COLUMNS} FROM events WHERE seq > ?1 AND seq <= ?2 ORDER BY seq"))?)
}

fn decode_with_columns(event: &Event) -> Result<Decoded> {
    let payload = event.decode()?;
    let columns = views::VersionColumns::of(&payload);
    Ok((payload, columns))
}

/// Reads the events after `after` up to `until` and hands them to `apply` in batches, parsed
/// by a second thread.
fn apply_decoding_aside(
    log: &Connection,
    after: u64,
    until: u64,
    apply: &mut impl FnMut(Vec<Event>, &[Decoded]) -> Result<()>,
) -> Result<()> {
    // Reading rows is SQLite's work and applying them writes through the same connection, so
    // both stay on this thread; parsing a payload depends on nothing else, so a second thread
    // decodes each batch (and renders the view columns that need only the payload) while
    // this one applies the previous batch and reads the next. The parsed payloads go back to
    // the decoding thread to be freed: memory freed by the thread that allocated it does not
    // contend for the allocator's lock, which made a first version of this slower than one
    // thread. At most DECODE_BATCHES_IN_FLIGHT batches are out at once, so the decoding
    // thread never waits to hand one back.
    let (to_decoder, work) = std::sync::mpsc::sync_channel::<DecoderWork>(2 * DECODE_BATCHES_IN_FLIGHT);
    let (to_applier, decoded) =
        std::sync::mpsc::sync_channel::<(Vec<Event>, Result<Vec<Decoded>>)>(DECODE_BATCHES_IN_FLIGHT);
    std::thread::scope(|scope| {
        // Named for profilers and debuggers; spawning panics as `std::thread::spawn` would.
        let decoder = std::thread::Builder::new().name("log-decoder".into());
        let spawned = decoder.spawn_scoped(scope, move || {
            for item in work {
                match item {
                    DecoderWork::Decode(events) => {
                        let payloads = events.iter().map(decode_with_columns).collect();
                        if to_applier.send((events, payloads)).is_err() {
                            return;
                        }
                    }
                    DecoderWork::Free(payloads) => drop(payloads),
                }
            }
        });
        spawned.expect("the system starts a thread");
        let mut in_flight = 0;
        let mut apply_next = || -> Result<()> {
            let (events, payloads) = decoded.recv().expect("the decoding thread outlives the reader");
            let payloads = payloads?;
            apply(events, &payloads)?;
            // The thread may have ended after an error of its own, in which case it has
            // nothing left to free.
            let _ = to_decoder.send(DecoderWork::Free(payloads));
            Ok(())
        };
        let read = (|| -> Result<()> {
            let mut statement = range_statement(log)?;
            let mut rows = statement.query(params![after, i64::try_from(until).unwrap_or(i64::MAX)])?;
            let mut batch = Vec::with_capacity(DECODE_BATCH);
            let mut more = true;
            while more {
                match rows.next()? {
                    Some(row) => batch.push(event_from_row(row)?),
                    None => more = false,
                }
                if batch.len() == DECODE_BATCH || (!more && !batch.is_empty()) {
                    let full = std::mem::replace(&mut batch, Vec::with_capacity(DECODE_BATCH));
                    to_decoder.send(DecoderWork::Decode(full)).expect("the decoding thread outlives the reader");
                    in_flight += 1;
                    if in_flight == DECODE_BATCHES_IN_FLIGHT {
                        in_flight -= 1;
                        apply_next()?;
                    }
                }
            }
            while in_flight > 0 {
                in_flight -= 1;
                apply_next()?;
            }
            Ok(())
        })();
        // Ends the decoding thread, also when an error left it blocked on a full queue.
        drop(decoded);
        drop(to_decoder);
        read
    })
}

/// A parsed payload with the columns of the version it adds, if any.
type Decoded = (Payload, Option<views::VersionColumns>);

/// What the decoding thread is handed: a batch to parse, or parsed payloads to free.
enum DecoderWork {
    Decode(Vec<Event>),
    Free(Vec<Decoded>),
}

/// Events read before their batch is handed to the decoding thread.
const DECODE_BATCH: usize = 1024;
/// Batches queued or being decoded at once: enough to keep both threads busy.
const DECODE_BATCHES_IN_FLIGHT: usize = 4;

/// The outcome of [`verify`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified {
    /// Events checked.
    pub events: u64,
    /// The head of the verified chain (up to the first mismatch, if any).
    pub head: ChainHead,
    /// The first sequence that does not match, if any.
    pub first_mismatch: Option<u64>,
}

/// Walks the chain from the first event and returns the first sequence that does not
/// match: a payload that is not its digest, a `prev_hash` that is not the previous event's
/// hash, a hash that is not the hash of the stored fields, or a gap in the sequence.
///
/// # Errors
/// SQLite errors.
pub fn verify(conn: &Connection) -> Result<Verified> {
    verify_with_progress(conn, |_| {})
}

/// [`verify`], calling `progress` with each checked sequence.
///
/// # Errors
/// As [`verify`].
pub fn verify_with_progress(conn: &Connection, progress: impl FnMut(u64)) -> Result<Verified> {
    verify_after(conn, ChainHead { sequence: 0, hash: GENESIS_HASH }, progress)
}

/// [`verify_with_progress`] from a known point of the chain on (a signed checkpoint): the
/// event at `start.sequence` must still have `start.hash` (else it is the first mismatch),
/// and the events after it are checked as [`verify`] checks them. `events` counts those.
///
/// # Errors
/// As [`verify`].
pub fn verify_after(conn: &Connection, start: ChainHead, mut progress: impl FnMut(u64)) -> Result<Verified> {
    if start.sequence > 0 && hash_at(conn, start.sequence)? != Some(start.hash) {
        return Ok(Verified { events: 0, head: start, first_mismatch: Some(start.sequence) });
    }
    // Decoding rows is SQLite's work and must stay on this thread; the two BLAKE3 hashes of
    // each row depend only on that row's stored fields, so a second thread computes them
    // while this one reads on. The chain links (sequence and `prev_hash` against the previous
    // row's stored hash) are checked here as rows arrive; a row whose predecessor is intact
    // has computed hash = stored hash, so checking the link against the stored hash names
    // the same first mismatch as checking it against the recomputed one.
    let (to_hasher, batches) = std::sync::mpsc::sync_channel::<RowBatch>(VERIFY_BATCHES_IN_FLIGHT);
    let (to_reader, hashed) = std::sync::mpsc::sync_channel::<(RowBatch, Option<usize>)>(VERIFY_BATCHES_IN_FLIGHT);
    std::thread::scope(|scope| {
        scope.spawn(move || {
            for batch in batches {
                let bad = batch.first_bad_hash();
                if to_reader.send((batch, bad)).is_err() {
                    return;
                }
            }
        });
        let mut verified = Verified { events: 0, head: start, first_mismatch: None };
        let mut in_flight = 0;
        let mut receive = |verified: &mut Verified| -> bool {
            let (batch, bad_hash) = hashed.recv().expect("the hashing thread outlives the reader");
            let first_bad = match (bad_hash, batch.broken_link) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let intact = first_bad.unwrap_or(batch.rows.len());
            for row in &batch.rows[..intact] {
                verified.head = ChainHead { sequence: row.sequence, hash: row.hash };
                progress(row.sequence);
            }
            verified.events += intact as u64;
            if let Some(index) = first_bad {
                verified.events += 1;
                verified.first_mismatch = Some(batch.rows[index].sequence);
                return false;
            }
            true
        };
        let read = (|| -> Result<()> {
            let mut statement =
                conn.prepare(&format!("SELECT {EVENT_COLUMNS} FROM events WHERE seq > ?1 ORDER BY seq"))?;
            let mut rows = statement.query([start.sequence])?;
            let mut last = start;
            let mut batch = RowBatch::default();
            let mut reading = true;
            while reading {
                let row = rows.next()?;
                if let Some(row) = row {
                    let (sequence, prev_hash, hash) = batch.push(row)?;
                    if sequence != last.sequence + 1 || prev_hash != last.hash {
                        batch.broken_link = Some(batch.rows.len() - 1);
                        reading = false;
                    }
                    last = ChainHead { sequence, hash };
                } else {
                    reading = false;
                }
                if batch.rows.len() == VERIFY_BATCH || (!reading && !batch.rows.is_empty()) {
                    let full = std::mem::take(&mut batch);
                    to_hasher.send(full).expect("the hashing thread outlives the reader");
                    in_flight += 1;
                    if in_flight == VERIFY_BATCHES_IN_FLIGHT {
                        in_flight -= 1;
                        if !receive(&mut verified) {
                            return Ok(());
                        }
                    }
                }
            }
            while in_flight > 0 {
                in_flight -= 1;
                if !receive(&mut verified) {
                    return Ok(());
                }
            }
            Ok(())
        })();
        drop(to_hasher);
        read.map(|()| verified)
    })
}

/// Rows that verify reads in one go before handing them to the hashing thread.
const VERIFY_BATCH: usize = 2048;
/// Batches queued or being hashed at once: enough to keep both threads busy.
const VERIFY_BATCHES_IN_FLIGHT: usize = 8;

/// A row's stored fields, as offsets into its batch's byte buffer.
#[derive(Default)]
struct StoredRow {
    sequence: u64,
    created_at: i64,
    prev_hash: Digest,
    hash: Digest,
    /// `event_type`, `subject_kind`, `subject_id`, `actor`, then the four context fields,
    /// then `payload` and `payload_digest`: (start, end) in the buffer.
    fields: [(usize, usize); 10],
    /// Which context fields are present.
    context_present: [bool; 4],
}

/// Rows copied out of SQLite (its buffers live only until the next step) for hashing.
#[derive(Default)]
struct RowBatch {
    bytes: Vec<u8>,
    rows: Vec<StoredRow>,
    /// The first row (index) whose link to its predecessor is broken; reading stops there.
    broken_link: Option<usize>,
}

impl RowBatch {
    /// Copies a row in; returns its sequence, `prev_hash` and hash.
    fn push(&mut self, row: &Row<'_>) -> Result<(u64, Digest, Digest)> {
        use rusqlite::types::ValueRef;
        let mut stored = StoredRow { sequence: row.get(0)?, created_at: row.get(1)?, ..StoredRow::default() };
        // Columns 2 to 11: the texts, the context, the payload and its digest.
        for (slot, column) in (2..12).enumerate() {
            let value = row.get_ref(column)?;
            if let Some(present) = slot.checked_sub(4).and_then(|i| stored.context_present.get_mut(i)) {
                *present = value != ValueRef::Null;
            }
            let bytes = match value {
                ValueRef::Text(b) | ValueRef::Blob(b) => b,
                _ => &[],
            };
            let start = self.bytes.len();
            self.bytes.extend_from_slice(bytes);
            stored.fields[slot] = (start, self.bytes.len());
        }
        stored.prev_hash = digest_ref(row, 12)?;
        stored.hash = digest_ref(row, 13)?;
        let link = (stored.sequence, stored.prev_hash, stored.hash);
        self.rows.push(stored);
        Ok(link)
    }

    /// The first row whose payload is not its digest or whose hash is not the hash of its
    /// stored fields.
    fn first_bad_hash(&self) -> Option<usize> {
        self.rows.iter().position(|row| {
            let field = |slot: usize| &self.bytes[row.fields[slot].0..row.fields[slot].1];
            let context = |i: usize| row.context_present[i].then(|| field(4 + i));
            let fields = StoredFields {
                prev_hash: &row.prev_hash,
                sequence: row.sequence,
                created_at: row.created_at,
                texts: [field(0), field(1), field(2), field(3)],
                context: [context(0), context(1), context(2), context(3)],
                payload_digest: field(9),
            };
            blake3::hash(field(8)).as_bytes() != field(9) || chain_hash(&fields) != row.hash
        })
    }
}

/// A digest column as [`digest_column`] reads it, without allocating.
fn digest_ref(row: &Row<'_>, index: usize) -> rusqlite::Result<Digest> {
    use rusqlite::types::ValueRef;
    let mut digest = [0xff; 32];
    if let ValueRef::Text(b) | ValueRef::Blob(b) = row.get_ref(index)?
        && b.len() == 32
    {
        digest.copy_from_slice(b);
    }
    Ok(digest)
}

/// The hash of the event at `sequence`, if the log holds it (a signed checkpoint names a
/// sequence and the hash it had; see `artifact-store checkpoint verify`).
///
/// # Errors
/// SQLite errors.
pub fn hash_at(conn: &Connection, sequence: u64) -> Result<Option<Digest>> {
    let hash = conn
        .prepare_cached("SELECT hash FROM events WHERE seq = ?1")?
        .query_row([sequence], |row| row.get::<_, Vec<u8>>(0))
        .optional()?;
    Ok(hash.map(|bytes| {
        let mut digest = [0xff; 32];
        if bytes.len() == 32 {
            digest.copy_from_slice(&bytes);
        }
        digest
    }))
}
