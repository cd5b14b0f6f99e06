//! Small objects' bytes kept in the log database: stored with their event, shared by
//! identical content, checked against their digest, and removed once nothing references them.

use std::sync::Arc;

use artifact_store_registry::clock::ManualClock;
use artifact_store_registry::commands::{NewVersion, WriteCondition};
use artifact_store_registry::event::v1::{BlobPart, ObjectContent, ObjectPut, Origin, VersionRef};
use artifact_store_registry::inline::{self, InlineBlob, Removed};
use artifact_store_registry::queries::Reads as _;
use artifact_store_registry::sqlite::views;
use artifact_store_registry::{Caller, Error, Registry, log, sqlite};

use crate::engines::{self, Opened};

pub(crate) fn new_version(bucket: &str, key: &str, blob: &InlineBlob) -> NewVersion {
    let part = BlobPart {
        blob: blob.locator(),
        size: blob.bytes().len() as u64,
        etag: format!("{:032x}", 1),
        checksums: Default::default(),
        subtree: None,
        subtrees: None,
        offset: None,
        store_etag: None,
        wrapped_key: None,
    };
    NewVersion {
        acl: artifact_store_registry::acl::ObjectAcl::default(),
        placement: None,
        put: ObjectPut {
            bucket: bucket.into(),
            key: key.into(),
            version_id: format!("v-{key}"),
            content: ObjectContent {
                size: part.size,
                etag: part.etag.clone(),
                blake3: blake3::hash(blob.bytes()).to_hex().to_string(),
                parts: vec![part],
                ..Default::default()
            },
            origin: Origin::Put,
            retention: None,
            legal_hold: false,
        },
        condition: WriteCondition::default(),
    }
}

/// The registry on each engine the run has.
fn engines() -> Vec<Opened> {
    engines::each(|| Arc::new(ManualClock::new(1_800_000_000_000)))
}

async fn read(registry: &Registry, locator: &str) -> Option<Vec<u8>> {
    let locator = locator.to_owned();
    registry.read(move |conn| conn.inline_bytes(&locator)).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inline_bytes_are_stored_with_their_version_and_only_then() {
    for opened in engines() {
        stored_with_their_version_and_only_then(&opened).await;
    }
}

async fn stored_with_their_version_and_only_then(opened: &Opened) {
    let registry = &opened.registry;
    let caller = Caller::system("test");
    registry.create_bucket(caller.clone(), "small", "us-east-1", false).await.unwrap();
    let blob = InlineBlob::new(b"hello, inline".to_vec());
    assert!(blob.locator().starts_with(inline::LOCATOR_PREFIX) && inline::is_locator(&blob.locator()));

    // A refused version stores nothing.
    let refused = registry.put_inline_object(caller.clone(), new_version("missing", "k", &blob), blob.clone()).await;
    assert!(matches!(refused, Err(Error::NoSuchBucket(_))), "{refused:?}");
    assert_eq!(read(registry, &blob.locator()).await, None);

    let recorded = registry.put_inline_object(caller.clone(), new_version("small", "a", &blob), blob.clone()).await;
    let recorded = recorded.unwrap();
    assert_eq!(read(registry, &blob.locator()).await.as_deref(), Some(&b"hello, inline"[..]));
    // The event names the bytes; it does not carry them.
    assert!(!String::from_utf8_lossy(&recorded.event.payload).contains("hello, inline"));
    assert!(String::from_utf8_lossy(&recorded.event.payload).contains(&blob.locator()));

    // Identical content is kept once and counted twice.
    registry.put_inline_object(caller.clone(), new_version("small", "b", &blob), blob.clone()).await.unwrap();
    let (rows, refs) = registry
        .read_blocking({
            let locator = blob.locator();
            move |conn| {
                let rows: u64 = conn.query_row("SELECT count(*) FROM inline_blobs", [], |row| row.get(0))?;
                Ok((rows, conn.blob_refs(&locator)?))
            }
        })
        .unwrap();
    assert_eq!((rows, refs), (1, 2), "{}", opened.engine);
    let checked = registry.read_blocking(inline::check).unwrap();
    assert_eq!((checked.checked, checked.bytes), (1, 13));
    assert!(checked.corrupt.is_empty() && checked.missing.is_empty(), "{checked:?}");
    // Every gateway on a shared log reads them.
    if let Some((another, _)) = opened.another_gateway() {
        assert_eq!(read(&another, &blob.locator()).await.as_deref(), Some(&b"hello, inline"[..]));
        another.close().await;
    }
    registry.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_of_more_inline_bytes_than_one_statement_holds_reaches_every_gateway() {
    for opened in engines() {
        let Some(url) = opened.shared_url().map(str::to_owned) else { continue };
        let registry = &opened.registry;
        let caller = Caller::system("test");
        registry.create_bucket(caller.clone(), "large", "us-east-1", false).await.unwrap();
        // A gateway caught up to here, so that what it copies later is exactly what the batch
        // stored, by the stamp the batch gave it.
        let (another, _) = opened.another_gateway().unwrap();
        another.catch_up_with_shared().await.unwrap();
        // Another session holds the head's lock, so the writer's next batch waits for it and
        // takes in every put queued meanwhile: about 18 MiB of inline bytes in one batch,
        // more than a batch holds back for the statement that appends its events.
        let (locked_tx, locked) = std::sync::mpsc::channel();
        let (release, released) = std::sync::mpsc::channel::<()>();
        let holder = std::thread::spawn(move || {
            let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
            let mut tx = client.transaction().unwrap();
            tx.execute("SELECT 1 FROM registry_head WHERE id = 0 FOR UPDATE", &[]).unwrap();
            locked_tx.send(()).unwrap();
            let _ = released.recv();
            tx.commit().unwrap();
        });
        locked.recv().unwrap();
        let blobs: Vec<InlineBlob> =
            (0..60u8).map(|n| InlineBlob::new((0..300 * 1024).map(|i| (i % 251) as u8 ^ n).collect())).collect();
        let puts: Vec<_> = blobs
            .iter()
            .enumerate()
            .map(|(n, blob)| {
                let (registry, caller, blob) = (registry.clone(), caller.clone(), blob.clone());
                tokio::spawn(async move {
                    registry.put_inline_object(caller, new_version("large", &format!("o{n}"), &blob), blob).await
                })
            })
            .collect();
        // Setup, not an assertion: let the puts queue behind the lock (were some late, they
        // would make a batch of their own, and every assertion below holds all the same).
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        release.send(()).unwrap();
        for put in puts {
            put.await.unwrap().unwrap();
        }
        holder.join().unwrap();
        for blob in &blobs {
            assert_eq!(read(&another, &blob.locator()).await.as_deref(), Some(blob.bytes()));
            assert_eq!(read(registry, &blob.locator()).await.as_deref(), Some(blob.bytes()));
        }
        another.close().await;
        registry.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_removes_inline_bytes_once_no_version_references_them_and_nothing_else() {
    for opened in engines() {
        gc_removes_what_no_version_references(&opened).await;
    }
}

async fn gc_removes_what_no_version_references(opened: &Opened) {
    let registry = &opened.registry;
    let caller = Caller::system("test");
    registry.create_bucket(caller.clone(), "small", "us-east-1", false).await.unwrap();
    let kept = InlineBlob::new(b"kept".to_vec());
    let dropped = InlineBlob::new(b"dropped bytes".to_vec());
    registry.put_inline_object(caller.clone(), new_version("small", "kept", &kept), kept.clone()).await.unwrap();
    registry.put_inline_object(caller.clone(), new_version("small", "gone", &dropped), dropped.clone()).await.unwrap();
    let target = VersionRef { bucket: "small".into(), key: "gone".into(), version_id: String::new() };
    registry.delete_object(caller.clone(), target, false, "marker".into(), false, None).await.unwrap();

    // Other gateways on a shared log hold their own copies of the bytes.
    let others: Vec<Registry> = (0..2).filter_map(|_| opened.another_gateway()).map(|(other, _)| other).collect();
    for other in &others {
        assert_eq!(read(other, &dropped.locator()).await.as_deref(), Some(&b"dropped bytes"[..]));
    }

    let head = registry.committed_sequence();
    let counted = registry.remove_unreferenced_inline_blobs(true).await.unwrap();
    assert_eq!(counted, Removed { blobs: 1, bytes: 13, referenced: 1 });
    assert_eq!(read(registry, &dropped.locator()).await.as_deref(), Some(&b"dropped bytes"[..]), "a dry run");
    let removed = registry.remove_unreferenced_inline_blobs(false).await.unwrap();
    assert_eq!(removed, Removed { blobs: 1, bytes: 13, referenced: 1 });
    assert_eq!(read(registry, &dropped.locator()).await, None);
    assert_eq!(read(registry, &kept.locator()).await.as_deref(), Some(&b"kept"[..]));
    assert_eq!(registry.committed_sequence(), head, "gc appends no event");
    assert_eq!(registry.remove_unreferenced_inline_blobs(false).await.unwrap().blobs, 0);

    // The other gateways drop their copies with their next group commit or catch-up: the
    // bytes of a deleted object do not stay on their disks. gc appended no event, so the first
    // one to write appends the next event itself, and the second copies it.
    if let [first, second] = &others[..] {
        first.create_bucket(caller.clone(), "later", "us-east-1", false).await.unwrap();
        for (name, other) in [("the next writer", first), ("a gateway catching up", second)] {
            assert_eq!(read(other, &dropped.locator()).await, None, "removed from {name}'s replica");
            assert_eq!(read(other, &kept.locator()).await.as_deref(), Some(&b"kept"[..]));
        }
    }
    for other in others {
        other.close().await;
    }
    registry.close().await;

    // The log still verifies and replays to the same views: inline bytes are neither.
    let mut conn = sqlite::open_offline(opened.path()).unwrap();
    assert!(log::verify(&conn).unwrap().first_mismatch.is_none());
    let before = views::dump(&conn).unwrap();
    log::replay(&mut conn).unwrap();
    assert_eq!(views::dump(&conn).unwrap(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_names_inline_bytes_altered_or_removed_behind_the_registrys_back() {
    for opened in engines() {
        check_names_what_was_altered_or_removed(&opened).await;
    }
}

async fn check_names_what_was_altered_or_removed(opened: &Opened) {
    let registry = &opened.registry;
    let caller = Caller::system("test");
    registry.create_bucket(caller.clone(), "small", "us-east-1", false).await.unwrap();
    let blobs: Vec<InlineBlob> = (0..3).map(|i| InlineBlob::new(format!("object {i}").into_bytes())).collect();
    for (i, blob) in blobs.iter().enumerate() {
        registry
            .put_inline_object(caller.clone(), new_version("small", &format!("k{i}"), blob), blob.clone())
            .await
            .unwrap();
    }
    registry.close().await;
    let path = opened.path();

    let digest = |blob: &InlineBlob| blake3::hash(blob.bytes()).as_bytes().to_vec();
    let conn = rusqlite::Connection::open(&path).unwrap();
    let changed =
        conn.execute("UPDATE inline_blobs SET bytes = ?1 WHERE digest = ?2", (b"object X".to_vec(), digest(&blobs[1])));
    assert_eq!(changed.unwrap(), 1);
    let removed = conn.execute("DELETE FROM inline_blobs WHERE digest = ?1", [digest(&blobs[2])]);
    assert_eq!(removed.unwrap(), 1);
    drop(conn);

    let conn = sqlite::open_read_only(&path).unwrap();
    let checked = inline::check(&conn).unwrap();
    assert_eq!(checked.checked, 2);
    assert_eq!(checked.corrupt, [blobs[1].locator()]);
    assert_eq!(checked.missing, [blobs[2].locator()]);
    // The chain itself is intact: the bytes are not part of it.
    assert!(log::verify(&conn).unwrap().first_mismatch.is_none());
}
