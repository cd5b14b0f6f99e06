//! The writer task: racing checks are decided once, refusals leave no trace, a write that
//! fails after appending leaves nothing behind, and the log's WAL does not grow without end.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use artifact_store_registry::clock::SystemClock;
use artifact_store_registry::event::v1::{BucketRef, Payload};
use artifact_store_registry::inline::InlineBlob;
use artifact_store_registry::{Caller, Error, EventDraft, Registry, log};

use crate::inline::new_version;

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

/// Under sustained writes a checkpoint beside the writer never finds the log's WAL fully
/// copied, so the WAL would only grow, every commit appending past the file's end. Once a
/// checkpoint pass leaves more than 1,024 frames, the writer finishes that checkpoint itself
/// and its next commit writes the WAL from the start again, over blocks the file holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_sustained_writes_the_logs_wal_starts_over() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("registry.db");
    let registry = Registry::open(&path, Arc::new(SystemClock)).unwrap();
    registry.create_bucket(Caller::system("test"), "wal", "us-east-1", false).await.unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..8)
        .map(|writer| {
            let (registry, stop) = (registry.clone(), Arc::clone(&stop));
            tokio::spawn(async move {
                for i in 0.. {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    // Distinct 4 KiB objects, each stored inline with its event.
                    let mut bytes = format!("{writer}-{i}").into_bytes();
                    bytes.resize(4096, b'.');
                    let blob = InlineBlob::new(bytes);
                    let version = new_version("wal", &format!("{writer}/{i}"), &blob);
                    registry.put_inline_object(Caller::system("test"), version, blob).await.unwrap();
                }
            })
        })
        .collect();
    // The former bound, 16,384 frames, is never reached here: 16,000 frames are about 63 MiB.
    let shm = format!("{}-shm", path.display());
    let mut most = 0;
    let restarted = loop {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        let frames = wal_frames(&shm);
        if frames + 512 < most {
            break true;
        }
        most = most.max(frames);
        if most > 16_000 {
            break false;
        }
    };
    stop.store(true, Ordering::Relaxed);
    for writer in writers {
        writer.await.unwrap();
    }
    assert!(restarted, "the log's WAL grew to {most} frames without starting over");
    let verified = registry.verify().await.unwrap();
    assert_eq!(verified.first_mismatch, None);
    registry.close().await;
}

/// The frames committed to a WAL, from its index (the `-shm` file): `mxFrame`, the 32-bit
/// native-endian integer at offset 16 of the header (<https://sqlite.org/walformat.html>).
fn wal_frames(shm: &str) -> u32 {
    let index = std::fs::read(shm).unwrap();
    u32::from_ne_bytes(index[16..20].try_into().unwrap())
}

/// A job that panics stops the writer thread. Its caller, and every caller after it, hear
/// that the writer stopped, rather than wait for a commit that never comes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_job_panics_writes_fail_rather_than_wait() {
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::open(dir.path().join("registry.db"), Arc::new(SystemClock)).unwrap();
    let panicked = registry.write(|_| -> artifact_store_registry::Result<()> { panic!("a job that panics") }).await;
    assert!(matches!(panicked, Err(Error::WriterStopped)), "{panicked:?}");
    let next = registry.create_bucket(Caller::system("test"), "after", "us-east-1", false);
    let next = tokio::time::timeout(std::time::Duration::from_secs(60), next)
        .await
        .expect("a write waited for a writer that had stopped");
    assert!(matches!(next, Err(Error::WriterStopped)), "{next:?}");
}
