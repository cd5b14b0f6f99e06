//! Edits of the event log behind the registry's back, for tests that prove they are caught.
//!
//! This is the one place the suite touches the registry's SQLite files: an attacker with the
//! data folder writes them directly, and no product interface will make such an edit. It does
//! so with plain SQL and the chain hash as the log's format defines it, not with the
//! registry's code, so a fault in that code cannot hide from the check.
//!
//! [`edit_payload`] changes one event's payload and leaves every hash as it was: the chain
//! breaks at that event. [`rewrite_payload`] makes the same edit and then recomputes the
//! payload digest and every hash from that event to the head, as someone who controls the
//! whole SQLite file would: the chain verifies again, and only a signed checkpoint from before
//! the rewrite tells. [`edit_views`] changes the views file, from which the gateway enforces
//! Object Lock.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension as _, params};
use serde_json::Value;

/// Domain separation of the chain hash (the log format's key derivation context).
const CHAIN_HASH_CONTEXT: &str = "artifact-store 2026 event chain v1";
/// The `prev_hash` of the first event.
const GENESIS_HASH: [u8; 32] = [0; 32];

/// Opens the log (or the views file) as a second writer beside the running server.
fn open(path: &Path) -> Connection {
    let conn = Connection::open(path).expect("open the registry file");
    conn.busy_timeout(std::time::Duration::from_secs(10)).expect("busy timeout");
    conn
}

/// Event `sequence`'s payload after `edit`, in the canonical encoding: compact JSON with the
/// keys of every object sorted (serde_json's map keeps them sorted).
fn edited(conn: &Connection, sequence: u64, edit: impl FnOnce(&mut Value)) -> Vec<u8> {
    let stored: Vec<u8> = conn
        .query_row("SELECT payload FROM events WHERE seq = ?1", [sequence], |row| row.get(0))
        .optional()
        .expect("read the event")
        .expect("the event to edit");
    let mut payload: Value = serde_json::from_slice(&stored).expect("a JSON payload");
    edit(&mut payload);
    let bytes = serde_json::to_vec(&payload).expect("JSON encodes");
    assert_ne!(bytes, stored, "the edit changed nothing");
    bytes
}

/// Replaces event `sequence`'s payload with an edited one, leaving its digest and hashes.
///
/// # Panics
/// When there is no such event or the edit changes nothing.
pub fn edit_payload(registry: &Path, sequence: u64, edit: impl FnOnce(&mut Value)) {
    let conn = open(registry);
    let payload = edited(&conn, sequence, edit);
    conn.execute("UPDATE events SET payload = ?1 WHERE seq = ?2", params![payload, sequence]).expect("edit");
}

/// Edits event `sequence`'s payload and recomputes its digest and the hash chain from it to
/// the head, in one transaction.
///
/// # Panics
/// When there is no such event or the edit changes nothing.
pub fn rewrite_payload(registry: &Path, sequence: u64, edit: impl FnOnce(&mut Value)) {
    let mut conn = open(registry);
    let payload = edited(&conn, sequence, edit);
    let tx = conn.transaction().expect("begin");
    tx.execute(
        "UPDATE events SET payload_digest = ?1, payload = ?2 WHERE seq = ?3",
        params![blake3::hash(&payload).as_bytes().to_vec(), payload, sequence],
    )
    .expect("rewrite the payload");
    let mut prev_hash: Vec<u8> = tx
        .query_row("SELECT hash FROM events WHERE seq < ?1 ORDER BY seq DESC LIMIT 1", [sequence], |row| row.get(0))
        .optional()
        .expect("read the previous hash")
        .unwrap_or_else(|| GENESIS_HASH.to_vec());
    let rows: Vec<StoredEvent> = {
        let mut select = tx
            .prepare(
                "SELECT seq, created_at, event_type, subject_kind, subject_id, actor, access_key, request_id, \
                 source_addr, user_agent, payload_digest FROM events WHERE seq >= ?1 ORDER BY seq",
            )
            .expect("prepare");
        select
            .query_map([sequence], |row| {
                Ok(StoredEvent {
                    sequence: row.get(0)?,
                    created_at: row.get(1)?,
                    texts: [row.get(2)?, row.get(3)?, row.get(4)?, row.get(5)?],
                    context: [row.get(6)?, row.get(7)?, row.get(8)?, row.get(9)?],
                    payload_digest: row.get(10)?,
                })
            })
            .expect("read the events")
            .collect::<Result<_, _>>()
            .expect("read the events")
    };
    for event in rows {
        let hash = event.chain_hash(&prev_hash);
        tx.execute(
            "UPDATE events SET prev_hash = ?1, hash = ?2 WHERE seq = ?3",
            params![prev_hash, hash, event.sequence],
        )
        .expect("rewrite the chain");
        prev_hash = hash;
    }
    tx.commit().expect("commit");
}

/// The stored fields the chain hash covers.
struct StoredEvent {
    sequence: u64,
    created_at: i64,
    /// `event_type`, `subject_kind`, `subject_id`, `actor`.
    texts: [String; 4],
    /// `access_key`, `request_id`, `source_addr`, `user_agent`.
    context: [Option<String>; 4],
    payload_digest: Vec<u8>,
}

impl StoredEvent {
    /// BLAKE3 in key-derivation mode over the previous hash, the sequence and time (little
    /// endian), each text with its length, each context field behind a presence byte, and the
    /// payload digest.
    fn chain_hash(&self, prev_hash: &[u8]) -> Vec<u8> {
        fn text(hasher: &mut blake3::Hasher, value: &str) {
            hasher.update(&(value.len() as u64).to_le_bytes());
            hasher.update(value.as_bytes());
        }
        let mut hasher = blake3::Hasher::new_derive_key(CHAIN_HASH_CONTEXT);
        hasher.update(prev_hash);
        hasher.update(&self.sequence.to_le_bytes());
        hasher.update(&self.created_at.to_le_bytes());
        for value in &self.texts {
            text(&mut hasher, value);
        }
        for field in &self.context {
            if let Some(value) = field {
                hasher.update(&[1]);
                text(&mut hasher, value);
            } else {
                hasher.update(&[0]);
            }
        }
        hasher.update(&self.payload_digest);
        hasher.finalize().as_bytes().to_vec()
    }
}

/// Runs `sql` on the views file (`registry.views.db`) beside the running server, as someone
/// with access to the data folder would; returns the rows it changed.
///
/// # Panics
/// When the statement fails or changes nothing.
pub fn edit_views(registry: &Path, sql: &str) -> usize {
    let views = open(&registry.with_extension("views.db"));
    let changed = views.execute(sql, []).expect("edit the views");
    assert!(changed > 0, "the edit changed nothing: {sql}");
    changed
}
