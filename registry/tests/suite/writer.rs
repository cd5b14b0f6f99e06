//! The writer task: racing checks are decided once, refusals leave no trace, and a write
//! that fails after appending leaves nothing behind.

use std::sync::Arc;

use artifact_store_registry::clock::SystemClock;
use artifact_store_registry::event::v1::{BucketRef, Payload};
use artifact_store_registry::{Caller, Error, EventDraft, Registry, log};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_creates_of_one_bucket_commit_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::open(dir.path().join("registry.db"), Arc::new(SystemClock)).unwrap();
    let racers: Vec<_> = (0..64)
        .map(|i| {
            let registry = registry.clone();
            tokio::spawn(async move {
                registry.create_bucket(Caller::system(&format!("racer-{i}")), "contested", "us-east-1", false).await
            })
        })
        .collect();
    let mut created = 0;
    for racer in racers {
        match racer.await.unwrap() {
            Ok(_) => created += 1,
            Err(Error::BucketAlreadyExists(name)) => assert_eq!(name, "contested"),
            Err(other) => panic!("unexpected error: {other}"),
        }
    }
    assert_eq!(created, 1);
    let verified = registry.verify().await.unwrap();
    assert_eq!((verified.events, verified.first_mismatch), (1, None));
    registry.close().await;
}

#[tokio::test]
async fn a_write_that_fails_after_appending_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::open(dir.path().join("registry.db"), Arc::new(SystemClock)).unwrap();
    registry.create_bucket(Caller::system("test"), "kept", "us-east-1", false).await.unwrap();
    let failed = registry
        .write(|writer| {
            let draft = EventDraft {
                payload: Payload::BucketDeleted(BucketRef { bucket: "kept".into() }),
                actor: "test".into(),
                context: Default::default(),
            };
            writer.append(draft)?;
            Err::<(), _>(Error::PreconditionFailed)
        })
        .await;
    assert!(matches!(failed, Err(Error::CommitFailed(_))), "{failed:?}");
    // The chain and the views are as before, and the next write chains on from them.
    let bucket = registry.read(|conn| conn.bucket("kept")).await.unwrap();
    assert!(bucket.is_some());
    let next = registry.create_bucket(Caller::system("test"), "next", "us-east-1", false).await.unwrap();
    assert_eq!(next.sequence, 2);
    let verified = registry.read_blocking(log::verify).unwrap();
    assert_eq!((verified.events, verified.first_mismatch), (2, None));
    registry.close().await;
}

#[tokio::test]
async fn lost_views_are_rebuilt_from_the_log_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("registry.db");
    let registry = Registry::open(&path, Arc::new(SystemClock)).unwrap();
    registry.create_bucket(Caller::system("test"), "survivor", "us-east-1", false).await.unwrap();
    registry.close().await;
    drop(registry);

    // The views are not fsync'd: losing them entirely must lose nothing.
    for suffix in ["", "-wal", "-shm"] {
        let file = format!("{}{suffix}", artifact_store_registry::sqlite::views_path(&path).display());
        let _ = std::fs::remove_file(file);
    }
    let registry = Registry::open(&path, Arc::new(SystemClock)).unwrap();
    let bucket = registry.read(|conn| conn.bucket("survivor")).await.unwrap();
    assert_eq!(bucket.map(|b| b.name).as_deref(), Some("survivor"));
    registry.close().await;
}
