//! `tail` delivers events committed by other tasks as they commit, and stops when dropped.

use std::sync::Arc;
use std::time::Duration;

use artifact_store_registry::clock::SystemClock;
use artifact_store_registry::{Caller, Registry};
use futures::StreamExt;

#[tokio::test]
async fn tail_delivers_the_backlog_then_events_committed_by_another_task() {
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::open(dir.path().join("registry.db"), Arc::new(SystemClock)).unwrap();
    registry.create_bucket(Caller::system("test"), "before", "us-east-1", false).await.unwrap();

    let mut tail = Box::pin(registry.tail(0));
    let first = tail.next().await.unwrap().unwrap();
    assert_eq!((first.sequence, first.subject_id.as_str()), (1, "before"));

    let writer = registry.clone();
    let task = tokio::spawn(async move {
        writer.create_bucket(Caller::system("other-task"), "after", "us-east-1", false).await.unwrap()
    });
    // Generous bound: the tail must wake on the commit, not on a poll; a hang fails loudly.
    let second = tokio::time::timeout(Duration::from_secs(30), tail.next()).await.expect("tail woke").unwrap().unwrap();
    assert_eq!((second.sequence, second.subject_id.as_str(), second.actor.as_str()), (2, "after", "other-task"));
    assert_eq!(task.await.unwrap(), second);
    registry.close().await;
}

#[tokio::test]
async fn a_dropped_tail_stops_following() {
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::open(dir.path().join("registry.db"), Arc::new(SystemClock)).unwrap();
    let tail = registry.tail(0);
    let mut tail = Box::pin(tail);
    assert_eq!(registry.tail_count(), 1);
    // Park the tail in its wait for a commit, then drop it there.
    assert!(tokio::time::timeout(Duration::from_millis(50), tail.next()).await.is_err());
    drop(tail);
    assert_eq!(registry.tail_count(), 0);
    registry.create_bucket(Caller::system("test"), "b", "us-east-1", false).await.unwrap();
    registry.close().await;
}

#[tokio::test]
async fn a_tail_ends_when_the_registry_closes() {
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::open(dir.path().join("registry.db"), Arc::new(SystemClock)).unwrap();
    let mut tail = Box::pin(registry.tail(0));
    let closer = registry.clone();
    tokio::spawn(async move { closer.close().await });
    let end = tokio::time::timeout(Duration::from_secs(30), tail.next()).await.expect("tail ended");
    assert!(end.is_none());
}
