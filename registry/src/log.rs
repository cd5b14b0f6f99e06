//! The append-only event log: append, read, replay and verify.
//!
//! The log (table `events`) and the views live in two database files; these functions take
//! the connection to each (`log` and `views`). One connection with the views database
//! attached, as [`crate::sqlite::open_offline`] opens it, serves as both. [`append`] must run
//! inside transactions that the caller commits, the log's first; the [`crate::Registry`]
//! writer task is the only caller on a live registry.

use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::Result;
use crate::event::{Digest, Event, EventDraft, GENESIS_HASH, RequestContext, StoredFields, chain_hash};
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
        let head = conn
            .query_row("SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1", [], |row| {
                Ok(ChainHead { sequence: row.get(0)?, hash: row.get(1)? })
            })
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
    let payload = draft.payload.clone();
    let event = Event::seal(draft, head.sequence + 1, created_at, head.hash);
    insert(log, &event)?;
    views::apply_payload(views, &event, &payload)?;
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

const EVENT_COLUMNS: &str = "seq, created_at, event_type, subject_kind, subject_id, actor, access_key, request_id,
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
        payload: row.get(10)?,
        payload_digest: digest_column(row, 11)?,
        prev_hash: digest_column(row, 12)?,
        hash: digest_column(row, 13)?,
    })
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

/// Calls `visit` on every event after `after` in sequence order, streaming from one
/// statement, until `visit` says stop.
fn for_each_event(conn: &Connection, after: u64, mut visit: impl FnMut(Event) -> Result<bool>) -> Result<()> {
    let mut statement = conn.prepare(&format!("SELECT {EVENT_COLUMNS} FROM events WHERE seq > ?1 ORDER BY seq"))?;
    let mut rows = statement.query([after])?;
    while let Some(row) = rows.next()? {
        if !visit(event_from_row(row)?)? {
            break;
        }
    }
    Ok(())
}

/// Empties the views and re-applies the whole log, in one transaction. Returns the highest
/// sequence applied (0 for an empty log). Unknown event types are skipped.
///
/// # Errors
/// SQLite errors, or [`crate::Error::CorruptPayload`] for a known type that does not parse;
/// on error nothing changes.
pub fn replay(conn: &mut Connection) -> Result<u64> {
    replay_with_progress(conn, |_| {})
}

/// [`replay`], calling `progress` with each applied sequence (for progress bars).
///
/// # Errors
/// As [`replay`].
pub fn replay_with_progress(conn: &mut Connection, progress: impl FnMut(u64)) -> Result<u64> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let last = replay_in(&tx, &tx, u64::MAX, progress)?;
    tx.commit()?;
    Ok(last)
}

/// Empties the views and re-applies the log up to and including sequence `until`, inside
/// the caller's transactions. Returns the last sequence applied.
///
/// # Errors
/// As [`replay`].
pub fn replay_in(log: &Connection, views: &Connection, until: u64, progress: impl FnMut(u64)) -> Result<u64> {
    views::reset(views)?;
    apply_since(log, views, 0, until, progress)
}

/// Brings the views up to the end of the log, inside the caller's transactions: applies the
/// events they have not seen, or rebuilds them if they are ahead of the log (a log restored
/// from an older backup). Returns the last sequence applied.
///
/// # Errors
/// As [`replay`].
pub fn catch_up(log: &Connection, views: &Connection) -> Result<u64> {
    let applied = views::applied(views)?;
    let head = ChainHead::load(log)?.sequence;
    if applied > head {
        return replay_in(log, views, u64::MAX, |_| {});
    }
    apply_since(log, views, applied, u64::MAX, |_| {})
}

fn apply_since(
    log: &Connection,
    views: &Connection,
    after: u64,
    until: u64,
    mut progress: impl FnMut(u64),
) -> Result<u64> {
    let mut last = after;
    for_each_event(log, after, |event| {
        if event.sequence > until {
            return Ok(false);
        }
        views::apply(views, &event)?;
        last = event.sequence;
        progress(last);
        Ok(true)
    })?;
    views::set_applied(views, last)?;
    Ok(last)
}

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
pub fn verify_with_progress(conn: &Connection, mut progress: impl FnMut(u64)) -> Result<Verified> {
    use rusqlite::types::ValueRef;
    // Rows are hashed as SQLite hands them over (borrowed bytes, no `Event` built): verify
    // reads every event of the log.
    fn bytes<'a>(row: &'a Row<'_>, index: usize) -> rusqlite::Result<&'a [u8]> {
        Ok(match row.get_ref(index)? {
            ValueRef::Text(b) | ValueRef::Blob(b) => b,
            _ => &[],
        })
    }
    fn optional<'a>(row: &'a Row<'_>, index: usize) -> rusqlite::Result<Option<&'a [u8]>> {
        Ok(match row.get_ref(index)? {
            ValueRef::Null => None,
            ValueRef::Text(b) | ValueRef::Blob(b) => Some(b),
            _ => Some(&[]),
        })
    }
    let mut head = ChainHead { sequence: 0, hash: GENESIS_HASH };
    let mut events = 0;
    let mut first_mismatch = None;
    let mut statement = conn.prepare(&format!("SELECT {EVENT_COLUMNS} FROM events ORDER BY seq"))?;
    let mut rows = statement.query([])?;
    while let Some(row) = rows.next()? {
        events += 1;
        let sequence: u64 = row.get(0)?;
        let payload = bytes(row, 10)?;
        let payload_digest = bytes(row, 11)?;
        let prev_hash = bytes(row, 12)?;
        let hash = bytes(row, 13)?;
        let fields = StoredFields {
            prev_hash,
            sequence,
            created_at: row.get(1)?,
            texts: [bytes(row, 2)?, bytes(row, 3)?, bytes(row, 4)?, bytes(row, 5)?],
            context: [optional(row, 6)?, optional(row, 7)?, optional(row, 8)?, optional(row, 9)?],
            payload_digest,
        };
        let computed = chain_hash(&fields);
        let intact = sequence == head.sequence + 1
            && prev_hash == head.hash
            && blake3::hash(payload).as_bytes() == payload_digest
            && computed == hash;
        if !intact {
            first_mismatch = Some(sequence);
            break;
        }
        head = ChainHead { sequence, hash: computed };
        progress(sequence);
    }
    Ok(Verified { events, head, first_mismatch })
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
