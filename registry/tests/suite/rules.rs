//! Views edited behind the log's back let the commands append an event their own rules
//! forbid; replay and the views audit check every event against the rules in force at its
//! sequence and name that event (issue 16, item 8).

use std::path::Path;
use std::sync::Arc;

use artifact_store_registry::clock::ManualClock;
use artifact_store_registry::commands::{NewVersion, WriteCondition};
use artifact_store_registry::deletions::Epoch;
use artifact_store_registry::event::v1::{LockMode, ObjectContent, ObjectPut, Origin, Retention, VersionRef};
use artifact_store_registry::{Caller, Error, Registry, audit, log, sqlite};

const T0: i64 = 1_800_000_000_000;
const DAY: i64 = 86_400_000;

fn caller() -> Caller {
    Caller::system("test")
}

fn object(key: &str, bytes: &[u8], retention: Option<Retention>) -> ObjectPut {
    let part = crate::plain_part(blake3::hash(bytes).to_hex().to_string(), bytes.len() as u64);
    ObjectPut {
        bucket: "b".into(),
        key: key.into(),
        version_id: format!("v-{key}"),
        content: ObjectContent {
            size: part.size,
            etag: part.etag.clone(),
            blake3: part.blob.clone(),
            parts: vec![part],
            ..ObjectContent::default()
        },
        origin: Origin::Put,
        retention,
        legal_hold: false,
    }
}

fn version(key: &str) -> VersionRef {
    VersionRef { bucket: "b".into(), key: key.into(), version_id: format!("v-{key}") }
}

/// A registry with an Object Lock bucket `b` holding key `k` with no lock of its own.
async fn open(path: &Path) -> Registry {
    let registry = Registry::open(path, Arc::new(ManualClock::new(T0))).unwrap();
    registry.create_bucket(caller(), "b", "us-east-1", true).await.unwrap();
    let new = NewVersion {
        acl: artifact_store_registry::acl::ObjectAcl::default(),
        put: object("k", b"locked", None),
        condition: WriteCondition::default(),
        placement: Some(Epoch::ORIGIN.into()),
    };
    registry.put_object(caller(), new).await.unwrap();
    registry
}

/// Edits the views file as someone with access to the data folder would, with the registry
/// closed so the edit is what it next reads.
async fn tamper(registry: Registry, path: &Path, sql: &str) -> Registry {
    registry.close().await;
    drop(registry);
    let views = rusqlite::Connection::open(sqlite::views_path(path)).unwrap();
    assert!(views.execute(sql, []).unwrap() > 0, "the edit changed nothing: {sql}");
    drop(views);
    Registry::open(path, Arc::new(ManualClock::new(T0 + 1))).unwrap()
}

/// The first violation replay finds, and the audit's, which must agree with it and find
/// the views matching the log (the forbidden event removed what was edited).
fn first_violation(path: &Path) -> (u64, String) {
    let scratch = tempfile::tempdir().unwrap();
    let audited = audit::audit_views(&sqlite::open_read_only(path).unwrap(), scratch.path(), |_| {}).unwrap();
    let replayed = log::replay(&mut sqlite::open_offline(path).unwrap()).unwrap();
    let violation = replayed.first_violation.expect("replay names the forbidden event");
    assert_eq!(audited.first_violation.as_ref(), Some(&violation));
    assert!(!audited.ok());
    (violation.sequence, violation.breaks)
}

#[tokio::test]
async fn a_delete_allowed_by_a_cleared_compliance_retention_is_named_by_replay_issue_16() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("registry.db");
    let registry = open(&path).await;
    let lock = Retention { mode: LockMode::Compliance, retain_until: T0 + 30 * DAY };
    registry.set_retention(caller(), version("k"), true, Some(lock), false).await.unwrap();
    let registry =
        tamper(registry, &path, "UPDATE object_versions SET retention_mode = NULL, retain_until = NULL").await;
    // The command reads the edited views and lets the delete through.
    let deleted = registry.delete_object(caller(), version("k"), true, String::new(), false, None).await.unwrap();
    let sequence = deleted.event.unwrap().sequence;
    registry.close().await;
    let (named, breaks) = first_violation(&path);
    assert_eq!(named, sequence);
    assert!(breaks.contains("COMPLIANCE retention protects until"), "{breaks}");
}

#[tokio::test]
async fn a_delete_allowed_by_a_cleared_legal_hold_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("registry.db");
    let registry = open(&path).await;
    registry.set_legal_hold(caller(), version("k"), true, true).await.unwrap();
    let registry = tamper(registry, &path, "UPDATE object_versions SET legal_hold = 0").await;
    let deleted = registry.delete_object(caller(), version("k"), true, String::new(), false, None).await.unwrap();
    registry.close().await;
    let (named, breaks) = first_violation(&path);
    assert_eq!(named, deleted.event.unwrap().sequence);
    assert!(breaks.contains("legal hold"), "{breaks}");
}

#[tokio::test]
async fn compliance_retention_shortened_through_edited_views_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("registry.db");
    let registry = open(&path).await;
    let lock = Retention { mode: LockMode::Compliance, retain_until: T0 + 30 * DAY };
    registry.set_retention(caller(), version("k"), true, Some(lock), false).await.unwrap();
    let registry = tamper(registry, &path, "UPDATE object_versions SET retention_mode = 'GOVERNANCE'").await;
    let shorter = Retention { mode: LockMode::Governance, retain_until: T0 + DAY };
    let event = registry.set_retention(caller(), version("k"), true, Some(shorter), true).await.unwrap();
    registry.close().await;
    let (named, breaks) = first_violation(&path);
    assert_eq!(named, event.sequence);
    assert!(breaks.starts_with("weakens the retention"), "{breaks}");
}

#[tokio::test]
async fn a_write_under_a_seal_removed_from_the_views_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("registry.db");
    let registry = open(&path).await;
    let manifest = registry.read(|conn| conn.manifest("p", "b", "")).await.unwrap();
    let manifest_object = object(&manifest.key(), &manifest.encode(), None);
    registry.seal_package(caller(), manifest, manifest_object, Epoch::ORIGIN.into()).await.unwrap();
    let new = NewVersion {
        acl: artifact_store_registry::acl::ObjectAcl::default(),
        put: object("k2", b"late", None),
        condition: WriteCondition::default(),
        placement: Some(Epoch::ORIGIN.into()),
    };
    let refused = registry.put_object(caller(), new).await;
    assert!(matches!(refused, Err(Error::Sealed { .. })), "{refused:?}");
    let registry = tamper(registry, &path, "DELETE FROM packages").await;
    let new = NewVersion {
        acl: artifact_store_registry::acl::ObjectAcl::default(),
        put: object("k2", b"late", None),
        condition: WriteCondition::default(),
        placement: Some(Epoch::ORIGIN.into()),
    };
    let recorded = registry.put_object(caller(), new).await.unwrap();
    registry.close().await;
    let (named, breaks) = first_violation(&path);
    assert_eq!(named, recorded.event.sequence);
    assert!(breaks.contains("which package \"p\" seals"), "{breaks}");
}

#[tokio::test]
async fn compliance_retention_given_at_creation_holds_against_edited_views() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("registry.db");
    let registry = open(&path).await;
    let lock = Retention { mode: LockMode::Compliance, retain_until: T0 + 30 * DAY };
    let new = NewVersion {
        acl: artifact_store_registry::acl::ObjectAcl::default(),
        put: object("c", b"compliant", Some(lock)),
        condition: WriteCondition::default(),
        placement: Some(Epoch::ORIGIN.into()),
    };
    registry.put_object(caller(), new).await.unwrap();
    let registry =
        tamper(registry, &path, "UPDATE object_versions SET retention_mode = NULL, retain_until = NULL").await;
    // The deletion reads the retention from the event that created the version.
    let refused = registry.delete_object(caller(), version("c"), true, String::new(), true, None).await;
    assert!(matches!(refused, Err(Error::ObjectLocked)), "{refused:?}");
    registry.close().await;
}
