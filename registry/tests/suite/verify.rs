//! `verify` passes on an untouched log and names the exact sequence of any event whose
//! stored fields were changed in the SQLite file behind the registry's back.

use std::path::Path;
use std::sync::Arc;

use artifact_store_registry::clock::ManualClock;
use artifact_store_registry::event::v1::VersioningStatus;
use artifact_store_registry::{Caller, Registry, log, sqlite};

const EVENTS: u64 = 30;

fn build_log(path: &Path) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let clock = Arc::new(ManualClock::new(1_800_000_000_000));
        let registry = Registry::open(path, clock.clone()).unwrap();
        let mut caller = Caller::system("AKIAVERIFY");
        caller.context.user_agent = Some("aws-cli/2.9".into());
        caller.context.access_key = Some("AKIAVERIFY".into());
        for i in 0..EVENTS / 2 {
            registry.create_bucket(caller.clone(), &format!("bucket-{i}"), "us-east-1", false).await.unwrap();
            registry.set_versioning(caller.clone(), &format!("bucket-{i}"), VersioningStatus::Enabled).await.unwrap();
            clock.advance(1000);
        }
        registry.close().await;
    });
}

/// Verifies the log file alone: a tampered log must not be opened for writing (catching the
/// views up would apply the tampered events).
fn first_mismatch(path: &Path) -> Option<u64> {
    let conn = rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    log::verify(&conn).unwrap().first_mismatch
}

#[test]
fn an_untouched_log_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("registry.db");
    build_log(&path);
    let conn = sqlite::open_offline(&path).unwrap();
    let verified = log::verify(&conn).unwrap();
    assert_eq!(verified.first_mismatch, None);
    assert_eq!(verified.events, EVENTS);
    assert_eq!(verified.head.sequence, EVENTS);
}

/// Each tampering changes one stored field of event 17 (or the payload together with a
/// matching digest, which only the chain hash can catch).
fn tamperings() -> Vec<(&'static str, String)> {
    let consistent_payload = format!(
        "UPDATE events SET payload = X'7B7D', payload_digest = X'{}' WHERE seq = 17",
        blake3::hash(b"{}").to_hex()
    );
    let mut list = vec![("payload and its digest", consistent_payload)];
    list.extend(FIELD_TAMPERINGS.iter().map(|(what, sql)| (*what, (*sql).to_owned())));
    list
}

const FIELD_TAMPERINGS: &[(&str, &str)] = &[
    (
        "payload",
        "UPDATE events SET payload = CAST(replace(CAST(payload AS TEXT), 'bucket-8', 'bucket-X') AS BLOB) WHERE seq = 17",
    ),
    ("event type", "UPDATE events SET event_type = 'v1.bucket.deleted' WHERE seq = 17"),
    ("subject", "UPDATE events SET subject_id = 'other' WHERE seq = 17"),
    ("actor", "UPDATE events SET actor = 'AKIAOTHER' WHERE seq = 17"),
    ("access key", "UPDATE events SET access_key = NULL WHERE seq = 17"),
    ("user agent", "UPDATE events SET user_agent = 'curl' WHERE seq = 17"),
    ("source address", "UPDATE events SET source_addr = '10.0.0.1' WHERE seq = 17"),
    ("timestamp", "UPDATE events SET created_at = created_at + 1 WHERE seq = 17"),
    ("hash", "UPDATE events SET hash = zeroblob(32) WHERE seq = 17"),
    ("previous hash", "UPDATE events SET prev_hash = zeroblob(32) WHERE seq = 17"),
    ("sequence", "UPDATE events SET seq = 1017 WHERE seq = 17"),
    ("deletion", "DELETE FROM events WHERE seq = 17"),
];

#[test]
fn any_changed_field_is_named_by_its_sequence() {
    let dir = tempfile::tempdir().unwrap();
    let pristine = dir.path().join("pristine.db");
    build_log(&pristine);
    for (what, sql) in tamperings() {
        let path = dir.path().join(format!("{}.db", what.replace(' ', "-")));
        let source = rusqlite::Connection::open(&pristine).unwrap();
        source.execute("VACUUM INTO ?1", [path.to_str().unwrap()]).unwrap();
        drop(source);
        let conn = rusqlite::Connection::open(&path).unwrap();
        assert_eq!(conn.execute(&sql, []).unwrap(), 1, "{what}: the tampering changed nothing");
        drop(conn);
        // A deleted or renumbered event leaves a gap that the next event exposes.
        let expected = if what == "deletion" || what == "sequence" { 18 } else { 17 };
        assert_eq!(first_mismatch(&path), Some(expected), "tampering with the {what}");
    }
}
