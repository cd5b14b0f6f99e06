//! The latest versions and buckets kept in memory ([`Registry::latest_object`],
//! [`Registry::bucket`]): once a write is acknowledged, the next read finds it, whatever the
//! reads in flight during its commit found and tried to keep.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use artifact_store_registry::clock::ManualClock;
use artifact_store_registry::event::v1::VersioningStatus;
use artifact_store_registry::inline::InlineBlob;
use artifact_store_registry::{Caller, Registry};

use crate::inline::new_version;

/// A registry in a temporary folder, with bucket `b`.
async fn registry_with_bucket(dir: &tempfile::TempDir) -> (Registry, Caller) {
    let registry =
        Registry::open(dir.path().join("registry.db"), Arc::new(ManualClock::new(1_800_000_000_000))).unwrap();
    let caller = Caller::system("test");
    registry.create_bucket(caller.clone(), "b", "us-east-1", false).await.unwrap();
    (registry, caller)
}

/// Six readers that never pause, so that some read is in flight whenever a commit lands and
/// tries to keep what its snapshot held from before it.
struct RacingReaders {
    stop: Arc<AtomicBool>,
    readers: Vec<tokio::task::JoinHandle<()>>,
}

impl RacingReaders {
    fn start<R, F>(registry: &Registry, read: R) -> Self
    where
        R: Fn(Registry) -> F + Clone + Send + 'static,
        F: Future<Output = ()> + Send,
    {
        let stop = Arc::new(AtomicBool::new(false));
        let readers = (0..6)
            .map(|_| {
                let (registry, stop, read) = (registry.clone(), Arc::clone(&stop), read.clone());
                tokio::spawn(async move {
                    while !stop.load(Ordering::Relaxed) {
                        read(registry.clone()).await;
                        // A read from memory does not yield, and the writes must get their turn.
                        tokio::task::yield_now().await;
                    }
                })
            })
            .collect();
        Self { stop, readers }
    }

    async fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        for reader in self.readers {
            reader.await.unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_read_after_an_acknowledged_write_finds_it_while_reads_race_with_the_commits() {
    let dir = tempfile::tempdir().unwrap();
    let (registry, caller) = registry_with_bucket(&dir).await;
    let readers = RacingReaders::start(&registry, async |registry| {
        registry.latest_object("b", "k").await.unwrap();
    });
    for round in 0..400 {
        let blob = InlineBlob::new(format!("round {round}").into_bytes());
        registry.put_inline_object(caller.clone(), new_version("b", "k", &blob), blob.clone()).await.unwrap();
        for _ in 0..2 {
            let latest = registry.latest_object("b", "k").await.unwrap();
            let version = latest.version.as_ref().expect("a version");
            assert_eq!(version.content.blake3, blake3::hash(blob.bytes()).to_hex().as_str(), "round {round}");
            assert_eq!(latest.inline.as_deref(), Some(blob.bytes()), "round {round}");
        }
    }
    readers.stop().await;
    let hits = registry.latest_cache_stats().hits.load(Ordering::Relaxed);
    assert!(hits > 0, "no read was answered from memory");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_bucket_read_after_an_acknowledged_change_finds_it_while_reads_race_with_the_commits() {
    let dir = tempfile::tempdir().unwrap();
    let (registry, caller) = registry_with_bucket(&dir).await;
    let readers = RacingReaders::start(&registry, async |registry| {
        registry.bucket("b").await.unwrap();
    });
    for round in 0..300 {
        let status = if round % 2 == 0 { VersioningStatus::Enabled } else { VersioningStatus::Suspended };
        registry.set_versioning(caller.clone(), "b", status).await.unwrap();
        for _ in 0..2 {
            let bucket = registry.bucket("b").await.unwrap().expect("the bucket");
            assert_eq!(bucket.versioning, Some(status), "round {round}");
        }
        if round % 10 == 9 {
            let created = registry.bucket("b").await.unwrap().expect("the bucket").created_seq;
            registry.delete_bucket(caller.clone(), "b").await.unwrap();
            assert!(registry.bucket("b").await.unwrap().is_none(), "round {round}: deleted, still found");
            registry.create_bucket(caller.clone(), "b", "us-east-1", false).await.unwrap();
            let again = registry.bucket("b").await.unwrap().expect("the bucket made again");
            assert!(again.created_seq > created, "round {round}: the deleted bucket was found");
            assert_eq!(again.versioning, None, "round {round}");
        }
    }
    readers.stop().await;
    let hits = registry.latest_cache_stats().bucket_hits.load(Ordering::Relaxed);
    assert!(hits > 0, "no bucket was answered from memory");
}

/// Another process (the CLI beside a gateway) appends, then holds the log's write lock past the
/// writer's busy timeout: the writer's next batch fails before it looks at the log, and takes
/// the chain's head from disk. The batch after it then finds nothing new to catch up with, so
/// what was kept from before the other process's event must go with the failed batch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_another_process_appended_before_a_failed_batch_reaches_the_next_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("registry.db");
    let clock = Arc::new(ManualClock::new(1_800_000_000_000));
    let registry = Registry::open(&path, clock.clone()).unwrap();
    let caller = Caller::system("test");
    registry.create_bucket(caller.clone(), "b", "us-east-1", false).await.unwrap();
    let put = async |registry: &Registry, key: &str, text: &str| {
        let blob = InlineBlob::new(text.as_bytes().to_vec());
        registry.put_inline_object(caller.clone(), new_version("b", key, &blob), blob.clone()).await
    };
    put(&registry, "k", "one").await.unwrap();
    for _ in 0..2 {
        assert_eq!(registry.latest_object("b", "k").await.unwrap().inline.as_deref(), Some(&b"one"[..]));
    }
    assert!(registry.latest_cache_stats().hits.load(Ordering::Relaxed) > 0, "`one` is kept");

    let other = Registry::open(&path, clock).unwrap();
    put(&other, "k", "two").await.unwrap();
    drop(other);
    let lock = rusqlite::Connection::open(&path).unwrap();
    lock.execute_batch("BEGIN IMMEDIATE").unwrap();
    assert!(put(&registry, "elsewhere", "refused").await.is_err(), "the log was locked");
    lock.execute_batch("ROLLBACK").unwrap();
    put(&registry, "elsewhere", "three").await.unwrap();

    assert_eq!(registry.latest_object("b", "k").await.unwrap().inline.as_deref(), Some(&b"two"[..]));
}
