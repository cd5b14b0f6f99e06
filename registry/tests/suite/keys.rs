//! The registry's side of encryption keys: a version's data keys wrapped anew
//! (`v1.object.keys.rewrapped`) only while the version holds the keys the caller read, and only
//! on the encrypted part the event names; the shared master key recorded with a
//! compare-and-set (`v1.encryption.master_key.set`).

use std::sync::Arc;

use artifact_store_registry::clock::ManualClock;
use artifact_store_registry::commands::{NewVersion, WriteCondition};
use artifact_store_registry::deletions::Epoch;
use artifact_store_registry::event::v1::{
    BlobPart, KeysRewrapped, ObjectContent, ObjectPut, Origin, Payload, RewrappedKey, VersionRef, VersioningStatus,
    WrappedKey,
};
use artifact_store_registry::{Caller, EventDraft, Registry, RequestContext};

fn wrapped(key_id: &str, wrapped: &str) -> WrappedKey {
    WrappedKey { key_id: key_id.into(), wrapped: wrapped.into() }
}

fn part(blob: &str, key: Option<WrappedKey>) -> BlobPart {
    BlobPart { wrapped_key: key, ..crate::plain_part(blob.into(), 10) }
}

/// Version `v1` of `b/k`: part 0 encrypted under `old`, part 1 plain.
fn version(old: &WrappedKey) -> NewVersion {
    NewVersion {
        acl: artifact_store_registry::acl::ObjectAcl::default(),
        put: ObjectPut {
            bucket: "b".into(),
            key: "k".into(),
            version_id: "v1".into(),
            content: ObjectContent {
                size: 20,
                etag: "0".repeat(32),
                blake3: "0".repeat(64),
                parts: vec![part("encrypted", Some(old.clone())), part("plain", None)],
                encryption: Some("AES256".into()),
                ..ObjectContent::default()
            },
            origin: Origin::Put,
            retention: None,
            legal_hold: false,
        },
        condition: WriteCondition::default(),
        placement: Some(Epoch::ORIGIN.into()),
    }
}

fn rewrapped(index: u32, blob: &str, key: &WrappedKey) -> KeysRewrapped {
    KeysRewrapped {
        version: VersionRef { bucket: "b".into(), key: "k".into(), version_id: "v1".into() },
        parts: vec![RewrappedKey { part: index, blob: blob.into(), wrapped_key: key.clone() }],
    }
}

async fn recorded_keys(registry: &Registry) -> Vec<Option<WrappedKey>> {
    let version = registry.read(|r| r.version("b", "k", "v1")).await.unwrap().expect("the version");
    version.content.parts.into_iter().map(|p| p.wrapped_key).collect()
}

async fn events(registry: &Registry) -> usize {
    registry.fetch_since(0, usize::MAX).await.unwrap().len()
}

#[tokio::test]
async fn keys_are_wrapped_anew_only_where_the_version_still_holds_what_was_read() {
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::open(dir.path().join("registry.db"), Arc::new(ManualClock::new(1))).unwrap();
    registry.create_bucket(Caller::system("t"), "b", "us-east-1", false).await.unwrap();
    registry.set_versioning(Caller::system("t"), "b", VersioningStatus::Enabled).await.unwrap();
    let (old, new) = (wrapped("0000000000000001", "old"), wrapped("0000000000000002", "new"));
    registry.put_object(Caller::system("t"), version(&old)).await.unwrap();

    // Read before another change: the version no longer holds it, nothing is appended.
    let before = events(&registry).await;
    let stale = wrapped("0000000000000001", "read before a change");
    assert!(!registry.rewrap_keys(Caller::system("t"), rewrapped(0, "encrypted", &new), vec![stale]).await.unwrap());
    assert!(!registry.rewrap_keys(Caller::system("t"), rewrapped(0, "other", &new), vec![old.clone()]).await.unwrap());
    assert_eq!(events(&registry).await, before, "a refused re-wrap appends nothing");

    assert!(registry.rewrap_keys(Caller::system("t"), rewrapped(0, "encrypted", &new), vec![old]).await.unwrap());
    assert_eq!(recorded_keys(&registry).await, [Some(new.clone()), None]);

    // Events the command would not append (a plain part, another blob, a part past the end)
    // change nothing when applied.
    let other = wrapped("0000000000000003", "other");
    for event in
        [rewrapped(1, "plain", &other), rewrapped(0, "another blob", &other), rewrapped(7, "encrypted", &other)]
    {
        let draft = EventDraft {
            payload: Payload::KeysRewrapped(event),
            actor: "t".into(),
            context: RequestContext::default(),
        };
        registry.write(move |writer| writer.append(draft)).await.unwrap();
    }
    assert_eq!(recorded_keys(&registry).await, [Some(new), None]);
}

#[tokio::test]
async fn the_shared_master_key_is_recorded_with_a_compare_and_set() {
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::open(dir.path().join("registry.db"), Arc::new(ManualClock::new(1))).unwrap();
    let record = |key: &str, replaces: Option<&str>| {
        registry.record_master_key(Caller::system("gateway"), key.to_owned(), replaces.map(str::to_owned))
    };
    assert_eq!(record("aaaa", None).await.unwrap(), "aaaa", "the first key is recorded");
    assert_eq!(record("bbbb", None).await.unwrap(), "aaaa", "a second first one loses");
    assert_eq!(record("aaaa", Some("zzzz")).await.unwrap(), "aaaa", "the recorded key, recorded again, is not");
    assert_eq!(record("bbbb", Some("aaaa")).await.unwrap(), "bbbb", "a rotation replaces it");
    assert_eq!(registry.read(|r| r.master_key()).await.unwrap().as_deref(), Some("bbbb"));
    let events = registry.fetch_since(0, usize::MAX).await.unwrap();
    let recorded: Vec<_> = events.iter().filter(|e| e.event_type == "v1.encryption.master_key.set").collect();
    assert_eq!(recorded.len(), 2, "one event per change");
}
