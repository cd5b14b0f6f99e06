//! Sealing a prefix: the manifest lists what was there, and nothing under the prefix can
//! change afterwards; a seal from a second registry handle (another process) is seen by the
//! first one's writer.

use std::collections::BTreeMap;
use std::sync::Arc;

use artifact_store_registry::clock::SystemClock;
use artifact_store_registry::commands::{NewVersion, WriteCondition};
use artifact_store_registry::deletions::{Epoch, Placement};
use artifact_store_registry::event::v1::{ObjectContent, ObjectPut, Origin, VersionRef};
use artifact_store_registry::packages::{self, Manifest};
use artifact_store_registry::{Caller, Error, Registry, log};

use crate::engines::{self, Opened};

fn object(bucket: &str, key: &str, bytes: &[u8]) -> ObjectPut {
    let digest = blake3::hash(bytes).to_hex().to_string();
    let part = crate::plain_part(digest.clone(), bytes.len() as u64);
    ObjectPut {
        bucket: bucket.into(),
        key: key.into(),
        version_id: "v".into(),
        content: ObjectContent {
            size: part.size,
            etag: part.etag.clone(),
            blake3: digest,
            parts: vec![part],
            ..ObjectContent::default()
        },
        origin: Origin::Put,
        retention: None,
        legal_hold: false,
    }
}

async fn put(registry: &Registry, key: &str, bytes: &[u8]) -> Result<(), Error> {
    let new = NewVersion {
        acl: artifact_store_registry::acl::ObjectAcl::default(),
        put: object("b", key, bytes),
        condition: WriteCondition::default(),
        placement: Some(Epoch::ORIGIN.into()),
    };
    registry.put_object(Caller::system("test"), new).await.map(drop)
}

async fn manifest(registry: &Registry, name: &str, prefix: &str) -> Manifest {
    let (name, prefix) = (name.to_owned(), prefix.to_owned());
    registry.read(move |conn| conn.manifest(&name, "b", &prefix)).await.unwrap()
}

async fn seal(registry: &Registry, manifest: Manifest) -> Result<packages::Sealed, Error> {
    let put = object("b", &manifest.key(), &manifest.encode());
    registry.seal_package(Caller::system("test"), manifest, put, Epoch::ORIGIN.into()).await
}

/// The registry on each engine the run has.
fn engines() -> Vec<Opened> {
    engines::each(|| Arc::new(SystemClock))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sealed_prefix_refuses_every_change_and_lists_its_members() {
    for opened in engines() {
        refuses_every_change_and_lists_its_members(&opened).await;
    }
}

async fn refuses_every_change_and_lists_its_members(opened: &Opened) {
    let registry = &opened.registry;
    registry.create_bucket(Caller::system("test"), "b", "us-east-1", false).await.unwrap();
    put(registry, "rel/1/a", b"a").await.unwrap();
    put(registry, "rel/1/b", b"bb").await.unwrap();
    put(registry, "rel/2/a", b"c").await.unwrap();

    let stale = manifest(registry, "rel-1", "rel/1/").await;
    put(registry, "rel/1/c", b"ccc").await.unwrap();
    assert!(matches!(seal(registry, stale).await, Err(Error::PackageChanged)));

    let current = manifest(registry, "rel-1", "rel/1/").await;
    let keys: Vec<&str> = current.members.iter().map(|m| m.key.as_str()).collect();
    assert_eq!(keys, ["rel/1/a", "rel/1/b", "rel/1/c"]);
    let sealed = seal(registry, current.clone()).await.unwrap();
    assert_eq!(sealed.event.event_type, "v1.package.finalized");
    assert_eq!(sealed.package.members, 3);
    assert_eq!(sealed.package.bytes, 6);
    assert_eq!(sealed.package.manifest_key, "rel/1/.package.json");
    assert_eq!(sealed.package.manifest_blake3, blake3::hash(&current.encode()).to_hex().to_string());

    let refused = |result: Result<(), Error>| matches!(result, Err(Error::Sealed { package }) if package == "rel-1");
    assert!(refused(put(registry, "rel/1/a", b"new").await));
    assert!(refused(put(registry, "rel/1/new", b"new").await));
    assert!(refused(put(registry, "rel/1/.package.json", b"forged").await));
    let target = VersionRef { bucket: "b".into(), key: "rel/1/a".into(), version_id: String::new() };
    let caller = Caller::system("test");
    assert!(refused(registry.delete_object(caller.clone(), target, false, "m".into(), true, None).await.map(drop)));
    let tags = BTreeMap::from([("t".to_owned(), "1".to_owned())]);
    assert!(refused(registry.set_tagging(caller, "b", "rel/1/b", None, tags).await.map(drop)));
    put(registry, "rel/2/a", b"still writable").await.unwrap();
    put(registry, "rel/1", b"a sibling, not under rel/1/").await.unwrap();

    assert!(matches!(seal(registry, manifest(registry, "rel-1", "rel/2/").await).await, Err(Error::PackageExists(_))));
    let inner = manifest(registry, "inner", "rel/1/a").await;
    assert!(matches!(seal(registry, inner).await, Err(Error::Sealed { .. })));
    assert_eq!(manifest(registry, "rel-1", "rel/1/").await, current);
    // Every gateway on a shared log refuses them.
    if let Some((another, _)) = opened.another_gateway() {
        assert!(refused(put(&another, "rel/1/b", b"elsewhere").await), "{}", opened.engine);
        another.close().await;
    }
    registry.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_writer_continues_the_chain_after_another_handle_appended() {
    for opened in engines() {
        continues_the_chain_after_another_handle_appended(&opened).await;
    }
}

async fn continues_the_chain_after_another_handle_appended(opened: &Opened) {
    let server = &opened.registry;
    server.create_bucket(Caller::system("test"), "b", "us-east-1", false).await.unwrap();
    put(server, "p/a", b"a").await.unwrap();

    // A maintenance command opens its own writer on the same files while the first runs (or
    // another gateway writes to the shared log).
    let command = opened.another_writer();
    seal(&command, manifest(&command, "p", "p/").await).await.unwrap();
    command.close().await;

    assert!(matches!(put(server, "p/b", b"b").await, Err(Error::Sealed { .. })), "{}", opened.engine);
    put(server, "q/b", b"b").await.unwrap();
    let verified = server.verify().await.unwrap();
    assert_eq!(verified.first_mismatch, None);
    assert_eq!(verified.events, 5);
    let listed = server.read(|conn| conn.packages()).await.unwrap();
    assert_eq!(listed.len(), 1);
    server.close().await;
    let conn = artifact_store_registry::sqlite::open_offline(opened.path()).unwrap();
    assert_eq!(log::verify(&conn).unwrap().head.sequence, 5);
}

/// Two writers on one database, as `package seal` beside a serving gateway: both append at
/// once, and the log stays one chain holding every event either acknowledged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_writers_appending_at_once_keep_one_chain() {
    for opened in engines() {
        appending_at_once_keeps_one_chain(&opened).await;
    }
}

async fn appending_at_once_keeps_one_chain(opened: &Opened) {
    const EACH: usize = 200;
    let server = &opened.registry;
    server.create_bucket(Caller::system("test"), "b", "us-east-1", false).await.unwrap();
    put(server, "sealed/a", b"a").await.unwrap();
    let command = opened.another_writer();

    let writes = |registry: &Registry, prefix: &'static str| {
        let registry = registry.clone();
        tokio::spawn(async move {
            let puts = (0..EACH).map(|i| {
                let registry = registry.clone();
                async move { put(&registry, &format!("{prefix}/{i}"), prefix.as_bytes()).await }
            });
            futures::future::join_all(puts).await.into_iter().collect::<Result<Vec<_>, _>>()
        })
    };
    let from_server = writes(server, "server");
    let from_command = writes(&command, "command");
    let sealed = seal(&command, manifest(&command, "sealed", "sealed/").await).await.unwrap();
    assert_eq!(from_server.await.unwrap().unwrap().len(), EACH);
    assert_eq!(from_command.await.unwrap().unwrap().len(), EACH);
    command.close().await;

    // The server's writer sees the seal the other one committed.
    assert!(matches!(put(server, "sealed/b", b"b").await, Err(Error::Sealed { .. })), "{}", opened.engine);
    let verified = server.verify().await.unwrap();
    assert_eq!(verified.first_mismatch, None);
    // The bucket, the first object, both writers' objects, the manifest and the seal.
    assert_eq!(verified.events, 2 + 2 * EACH as u64 + 2);
    let event = sealed.event.sequence;
    let at_seal = server.read_blocking(move |conn| log::hash_at(conn, event)).unwrap();
    assert_eq!(at_seal, Some(sealed.event.hash), "the seal's receipt names the event the log holds");
    server.close().await;
}

/// One whole gc pass over `blobs`; returns those it deleted.
async fn gc_pass(registry: &Registry, blobs: &[String]) -> Vec<String> {
    registry.begin_deletion_pass().await.unwrap();
    let marked = registry.mark_for_deletion(blobs.to_vec()).await.unwrap();
    registry.release_deletions(marked.clone()).await.unwrap();
    marked
}

/// `package seal` placed its manifest after reading the deletion epoch only: gc passes in a
/// loop could take the manifest's blob before every attempt, and the seal gave up. Placed
/// again under a pin, it is sealed whatever passes ran meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manifest_placed_again_under_a_pin_is_sealed_whatever_gc_passes_ran() {
    for opened in engines() {
        placed_again_under_a_pin_is_sealed(&opened).await;
    }
}

async fn placed_again_under_a_pin_is_sealed(opened: &Opened) {
    let registry = &opened.registry;
    registry.create_bucket(Caller::system("test"), "b", "us-east-1", false).await.unwrap();
    put(registry, "rel/1/a", b"a").await.unwrap();
    let manifest = manifest(registry, "release-1", "rel/1/").await;
    let object = object("b", &manifest.key(), &manifest.encode());
    let blob = object.content.parts[0].blob.clone();
    let seal = |placement: Placement| {
        registry.seal_package(Caller::system("test"), manifest.clone(), object.clone(), placement)
    };

    for _ in 0..3 {
        let placed_after = registry.deletion_epoch().await.unwrap();
        assert_eq!(gc_pass(registry, std::slice::from_ref(&blob)).await, std::slice::from_ref(&blob));
        assert!(matches!(seal(placed_after.into()).await, Err(Error::BlobDeleted { .. })), "taken after placing");
    }
    let pin = registry.pin_blob(blob.clone()).await.unwrap();
    for _ in 0..3 {
        assert!(gc_pass(registry, std::slice::from_ref(&blob)).await.is_empty(), "gc took a pinned blob");
    }
    let sealed = seal(Placement::Pinned(pin)).await.expect("sealed under the pin");
    assert_eq!(sealed.package.members, 1);
    registry.unpin(pin).await.unwrap();
    assert!(gc_pass(registry, &[blob]).await.is_empty(), "the sealed manifest's blob is referenced");
    registry.close().await;
}
