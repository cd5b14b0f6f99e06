//! Edits of the event log behind the registry's back, for tests that prove they are caught.
//!
//! [`edit_payload`] changes one event's payload and leaves every hash as it was: the chain
//! breaks at that event. [`rewrite_payload`] makes the same edit and then recomputes the
//! payload digest and every hash from that event to the head with the registry's own
//! hashing, as someone who controls the whole SQLite file would: the chain verifies again,
//! and only a signed checkpoint from before the rewrite tells. [`edit_views`] changes the
//! views file, from which the gateway enforces Object Lock.

use std::path::Path;

use registry::event::v1::Payload;
use registry::{Event, log};
use rusqlite::{Connection, params};

/// Opens the log as a second writer beside the running server.
fn open(registry: &Path) -> Connection {
    let conn = Connection::open(registry).expect("open the registry log");
    conn.busy_timeout(std::time::Duration::from_secs(10)).expect("busy timeout");
    conn
}

fn events(conn: &Connection) -> Vec<Event> {
    log::fetch_since(conn, 0, usize::MAX).expect("read the log")
}

fn edited(event: &Event, edit: impl FnOnce(&mut Payload)) -> Vec<u8> {
    let mut payload = event.decode().expect("a known payload");
    edit(&mut payload);
    let bytes = payload.encode();
    assert_ne!(bytes, event.payload, "the edit changed nothing");
    bytes
}

/// Replaces event `sequence`'s payload with an edited one, leaving its digest and hashes.
///
/// # Panics
/// When there is no such event or the edit changes nothing.
pub fn edit_payload(registry: &Path, sequence: u64, edit: impl FnOnce(&mut Payload)) {
    let conn = open(registry);
    let event = events(&conn).into_iter().find(|e| e.sequence == sequence).expect("the event to edit");
    let payload = edited(&event, edit);
    conn.execute("UPDATE events SET payload = ?1 WHERE seq = ?2", params![payload, sequence]).expect("edit");
}

/// Edits event `sequence`'s payload and recomputes its digest and the hash chain from it to
/// the head, in one transaction.
///
/// # Panics
/// When there is no such event or the edit changes nothing.
pub fn rewrite_payload(registry: &Path, sequence: u64, edit: impl FnOnce(&mut Payload)) {
    let mut conn = open(registry);
    let mut all = events(&conn);
    let at = all.iter().position(|e| e.sequence == sequence).expect("the event to edit");
    let payload = edited(&all[at], edit);
    all[at].payload_digest = *blake3::hash(&payload).as_bytes();
    all[at].payload = payload;
    let tx = conn.transaction().expect("begin");
    let mut prev_hash = if at == 0 { registry::event::GENESIS_HASH } else { all[at - 1].hash };
    for event in &mut all[at..] {
        event.prev_hash = prev_hash;
        event.hash = event.compute_hash();
        prev_hash = event.hash;
        tx.execute(
            "UPDATE events SET payload = ?1, payload_digest = ?2, prev_hash = ?3, hash = ?4 WHERE seq = ?5",
            params![event.payload, event.payload_digest, event.prev_hash, event.hash, event.sequence],
        )
        .expect("rewrite");
    }
    tx.commit().expect("commit");
}

/// Runs `sql` on the views file (`registry.views.db`) beside the running server, as someone
/// with access to the data folder would; returns the rows it changed.
///
/// # Panics
/// When the statement fails or changes nothing.
pub fn edit_views(registry: &Path, sql: &str) -> usize {
    let views = open(&registry::sqlite::views_path(registry));
    let changed = views.execute(sql, []).expect("edit the views");
    assert!(changed > 0, "the edit changed nothing: {sql}");
    changed
}
