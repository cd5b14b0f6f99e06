//! A copy names its source's blobs without placing anything, so its job accepts them only
//! while something references them. A source deleted or replaced between the copy's read and
//! its job leaves them unreferenced with no gc involved: the job says so, and the gateway reads
//! the source again (found by an attacker's pass: such copies answered 503 as if gc had taken
//! their blob).

use std::sync::Arc;

use artifact_store_registry::clock::SystemClock;
use artifact_store_registry::commands::{NewVersion, WriteCondition};
use artifact_store_registry::deletions::Epoch;
use artifact_store_registry::event::v1::{ObjectContent, ObjectPut, Origin, VersionRef};
use artifact_store_registry::state::ObjectVersion;
use artifact_store_registry::{Caller, Error, Registry};

use crate::engines::{self, Opened};

fn caller() -> Caller {
    Caller::system("test")
}

fn content(bytes: &[u8]) -> ObjectContent {
    let part = crate::plain_part(blake3::hash(bytes).to_hex().to_string(), bytes.len() as u64);
    ObjectContent {
        size: part.size,
        etag: part.etag.clone(),
        blake3: part.blob.clone(),
        parts: vec![part],
        ..ObjectContent::default()
    }
}

fn new_version(key: &str, content: ObjectContent, origin: Origin) -> NewVersion {
    // A write that stores bytes names the epoch it read; a copy places nothing.
    let placement = matches!(origin, Origin::Put).then(|| Epoch::ORIGIN.into());
    NewVersion {
        acl: artifact_store_registry::acl::ObjectAcl::default(),
        put: ObjectPut {
            bucket: "b".into(),
            key: key.into(),
            version_id: "v".into(),
            content,
            origin,
            retention: None,
            legal_hold: false,
        },
        condition: WriteCondition::default(),
        placement,
    }
}

async fn put(registry: &Registry, key: &str, bytes: &[u8]) {
    registry.put_object(caller(), new_version(key, content(bytes), Origin::Put)).await.unwrap();
}

/// The copy of `source` to `dst` that CopyObject records.
async fn copy(registry: &Registry, source: &ObjectVersion) -> Result<(), Error> {
    let origin = Origin::Copy { bucket: "b".into(), key: source.key.clone(), version_id: source.version_id.clone() };
    registry.put_object(caller(), new_version("dst", source.content.clone(), origin)).await.map(drop)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_whose_source_changed_after_its_read_is_refused_as_such_not_as_gcs_deletion() {
    for opened in engines::each(|| Arc::new(SystemClock)) {
        source_changed_after_the_read(&opened).await;
    }
}

async fn source_changed_after_the_read(opened: &Opened) {
    let registry = &opened.registry;
    registry.create_bucket(caller(), "b", "us-east-1", false).await.unwrap();
    put(registry, "src", b"first").await;
    let read = || registry.read(|conn| conn.latest_version("b", "src"));
    let source = read().await.unwrap().expect("the source");

    // Deleted after the copy read it.
    let target = VersionRef { bucket: "b".into(), key: "src".into(), version_id: String::new() };
    registry.delete_object(caller(), target, false, "marker".into(), false, None).await.unwrap();
    let copied = copy(registry, &source).await;
    assert!(matches!(copied, Err(Error::CopySourceChanged)), "{}: {copied:?}", opened.engine);

    // Replaced by other bytes under the same version id (a bucket without versioning).
    put(registry, "src", b"second").await;
    let copied = copy(registry, &source).await;
    assert!(matches!(copied, Err(Error::CopySourceChanged)), "{}: {copied:?}", opened.engine);

    // Its bytes referenced again: the copy is recorded.
    put(registry, "again", b"first").await;
    copy(registry, &source).await.unwrap_or_else(|err| panic!("{}: {err:?}", opened.engine));
    registry.close().await;
}
