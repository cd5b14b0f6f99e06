//! The reads the console's pages make: what a bucket holds, a key's reads per day and reader,
//! and the newest events about a key with their count.

use std::sync::Arc;

use artifact_store_registry::clock::ManualClock;
use artifact_store_registry::commands::{NewVersion, WriteCondition};
use artifact_store_registry::deletions::Epoch;
use artifact_store_registry::event::v1::{ObjectContent, ObjectPut, Origin, Retrieved, VersionRef, VersioningStatus};
use artifact_store_registry::queries::{BucketUsage, RetrievalDay};
use artifact_store_registry::{Caller, Registry};

const DAY_MS: i64 = 86_400_000;

fn version(key: &str, version_id: &str, size: u64) -> NewVersion {
    let part = crate::plain_part(blake3::hash(format!("{key}{version_id}").as_bytes()).to_hex().to_string(), size);
    NewVersion {
        acl: artifact_store_registry::acl::ObjectAcl::default(),
        put: ObjectPut {
            bucket: "b".into(),
            key: key.into(),
            version_id: version_id.into(),
            content: ObjectContent {
                size,
                etag: part.etag.clone(),
                blake3: part.blob.clone(),
                parts: vec![part],
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

async fn read(registry: &Registry, actor: &str, key: &str) {
    let retrieved = Retrieved {
        version: VersionRef { bucket: "b".into(), key: key.into(), version_id: "v1".into() },
        method: "GET".into(),
        bytes: 1,
        range: None,
    };
    registry.record_retrieval(Caller::system(actor), retrieved, |err| panic!("refused: {err}")).unwrap();
    // Committed, and sealed with the clock's time, before the test moves the clock.
    registry.probe_commit().await.unwrap();
}

#[tokio::test]
async fn a_buckets_usage_counts_its_current_objects_their_bytes_and_every_version() {
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::open(dir.path().join("registry.db"), Arc::new(ManualClock::new(DAY_MS))).unwrap();
    registry.create_bucket(Caller::system("t"), "b", "us-east-1", false).await.unwrap();
    registry.create_bucket(Caller::system("t"), "other", "us-east-1", false).await.unwrap();
    registry.set_versioning(Caller::system("t"), "b", VersioningStatus::Enabled).await.unwrap();
    assert_eq!(registry.read(|r| r.bucket_usage("b")).await.unwrap(), BucketUsage::default());
    registry.put_object(Caller::system("t"), version("a", "v1", 10)).await.unwrap();
    registry.put_object(Caller::system("t"), version("a", "v2", 20)).await.unwrap();
    registry.put_object(Caller::system("t"), version("c", "v1", 5)).await.unwrap();
    registry.put_object(Caller::system("t"), version("gone", "v1", 7)).await.unwrap();
    let gone = VersionRef { bucket: "b".into(), key: "gone".into(), version_id: String::new() };
    registry.delete_object(Caller::system("t"), gone, false, "m1".into(), false, None).await.unwrap();
    // Current: a (v2, 20 bytes) and c (5); in all: a twice, c, gone and its delete marker.
    let usage = registry.read(|r| r.bucket_usage("b")).await.unwrap();
    assert_eq!(usage, BucketUsage { objects: 2, bytes: 25, versions: 5 });
    assert_eq!(registry.read(|r| r.bucket_usage("other")).await.unwrap(), BucketUsage::default());
}

#[tokio::test]
async fn a_keys_reads_are_counted_per_day_and_reader_after_a_sequence() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(10 * DAY_MS + 5));
    let registry = Registry::open(dir.path().join("registry.db"), Arc::clone(&clock) as _).unwrap();
    registry.create_bucket(Caller::system("t"), "b", "us-east-1", false).await.unwrap();
    registry.put_object(Caller::system("t"), version("k", "v1", 1)).await.unwrap();
    read(&registry, "alice", "k").await;
    read(&registry, "bob", "k").await;
    read(&registry, "alice", "other-key").await;
    clock.set(11 * DAY_MS - 1);
    read(&registry, "alice", "k").await;
    clock.set(11 * DAY_MS);
    read(&registry, "bob", "k").await;
    let head = registry.committed_sequence();
    let days = registry.read_retrievals(|r| r.retrieval_days("b", "k", 0)).await.unwrap();
    let day = |day: i64, actor: &str, reads| RetrievalDay { day_ms: day * DAY_MS, actor: actor.into(), reads };
    assert_eq!(days, [day(10, "alice", 2), day(10, "bob", 1), day(11, "bob", 1)], "at head {head}");
    // After the first records' sequences, only the later ones count.
    let first_bob = registry
        .read_retrievals(|r| r.retrievals(&Default::default(), 10))
        .await
        .unwrap()
        .into_iter()
        .find(|record| record.actor == "bob")
        .unwrap()
        .sequence;
    let later = registry.read_retrievals(move |r| r.retrieval_days("b", "k", first_bob)).await.unwrap();
    assert_eq!(later, [day(10, "alice", 1), day(11, "bob", 1)]);
}

#[tokio::test]
async fn the_newest_events_of_a_key_come_newest_first_with_their_count_after_a_sequence() {
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::open(dir.path().join("registry.db"), Arc::new(ManualClock::new(DAY_MS))).unwrap();
    registry.create_bucket(Caller::system("t"), "b", "us-east-1", false).await.unwrap();
    registry.set_versioning(Caller::system("t"), "b", VersioningStatus::Enabled).await.unwrap();
    let mut puts = Vec::new();
    for i in 0..5 {
        puts.push(
            registry.put_object(Caller::system("t"), version("k", &format!("v{i}"), 1)).await.unwrap().event.sequence,
        );
    }
    registry.put_object(Caller::system("t"), version("other", "v1", 1)).await.unwrap();
    let (newest, count) = registry.read(|r| r.recent_subject_sequences("b/k", 0, 3)).await.unwrap();
    assert_eq!((newest, count), (vec![puts[4], puts[3], puts[2]], 5));
    let second = puts[1];
    let (after, count) = registry.read(move |r| r.recent_subject_sequences("b/k", second, 10)).await.unwrap();
    assert_eq!((after, count), (vec![puts[4], puts[3], puts[2]], 3));
    assert_eq!(registry.read(|r| r.recent_subject_sequences("b/none", 0, 10)).await.unwrap(), (vec![], 0));
}
