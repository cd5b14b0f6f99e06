//! The views' commit fails after the log's (a full or failing disk): nothing acknowledged may
//! vanish from the views, the views never claim a sequence they did not apply, and reads are
//! refused until they catch up (issue 16, item 4), except where the views lack nothing a read
//! sees: a read must not stop for its own records.

use std::sync::Arc;

use artifact_store_registry::clock::SystemClock;
use artifact_store_registry::commands::{NewVersion, WriteCondition};
use artifact_store_registry::deletions::Epoch;
use artifact_store_registry::event::v1::{ObjectContent, ObjectPut, Origin, Retrieved, VersionRef};
use artifact_store_registry::sqlite::views;
use artifact_store_registry::{Caller, Error, Registry, log, queries, sqlite};

fn version(key: &str) -> NewVersion {
    let part = crate::plain_part(blake3::hash(key.as_bytes()).to_hex().to_string(), 1);
    let put = ObjectPut {
        bucket: "b".into(),
        key: key.into(),
        version_id: "v".into(),
        content: ObjectContent {
            size: 1,
            etag: part.etag.clone(),
            blake3: part.blob.clone(),
            parts: vec![part],
            ..ObjectContent::default()
        },
        origin: Origin::Put,
        retention: None,
        legal_hold: false,
    };
    NewVersion {
        acl: artifact_store_registry::acl::ObjectAcl::default(),
        put,
        condition: WriteCondition::default(),
        placement: Some(Epoch::ORIGIN.into()),
    }
}

async fn exists(registry: &Registry, key: &'static str) -> Result<bool, Error> {
    registry.read(move |conn| Ok(conn.latest_version("b", key)?.is_some())).await
}

#[tokio::test]
async fn a_failed_views_commit_hides_no_acknowledged_write_issue_16() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("registry.db");
    let registry = Registry::open(&path, Arc::new(SystemClock)).unwrap();
    registry.create_bucket(Caller::system("test"), "b", "us-east-1", false).await.unwrap();

    // The batch's views commit fails, and so does the catch-up right after it; then those of
    // the group commit a refused read runs to catch them up.
    registry.fail_views_commits(4);
    let acknowledged = registry.put_object(Caller::system("test"), version("first")).await;
    assert!(acknowledged.is_ok(), "the log committed, so the write is acknowledged: {acknowledged:?}");
    // Until the views catch up they are not served from.
    let refused = exists(&registry, "first").await;
    assert!(matches!(refused, Err(Error::ViewsBehind)), "{refused:?}");
    assert!(registry.views_behind());

    // The next batch catches the views up before it runs, so the first write is not lost.
    registry.put_object(Caller::system("test"), version("second")).await.unwrap();
    assert!(!registry.views_behind());
    assert!(exists(&registry, "second").await.unwrap());
    assert!(exists(&registry, "first").await.unwrap(), "an acknowledged write is missing from the views");
    registry.close().await;
    drop(registry);

    // And they are what a fresh replay of the log gives, claiming no more than the log holds.
    let mut conn = sqlite::open_offline(&path).unwrap();
    let stored = views::dump(&conn).unwrap();
    assert_eq!(views::applied(&conn).unwrap(), 3);
    log::replay(&mut conn).unwrap();
    assert_eq!(String::from_utf8_lossy(&views::dump(&conn).unwrap()), String::from_utf8_lossy(&stored));
}

#[tokio::test]
async fn writes_decided_while_the_views_are_behind_see_every_earlier_write() {
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::open(dir.path().join("registry.db"), Arc::new(SystemClock)).unwrap();
    registry.create_bucket(Caller::system("test"), "b", "us-east-1", false).await.unwrap();
    // Three batches in a row fail to commit their views and to catch them up, and so does
    // the group commit that the refused read below runs.
    registry.fail_views_commits(8);
    registry.put_object(Caller::system("test"), version("first")).await.unwrap();
    // Decided on the views caught up inside its own transaction: it sees the first write.
    let conditional =
        NewVersion { condition: WriteCondition { if_match: None, if_none_match_any: true }, ..version("first") };
    let refused = registry.put_object(Caller::system("test"), conditional).await;
    assert!(matches!(refused, Err(Error::PreconditionFailed)), "{refused:?}");
    registry.put_object(Caller::system("test"), version("second")).await.unwrap();
    assert!(registry.views_behind());
    assert!(matches!(exists(&registry, "second").await, Err(Error::ViewsBehind)));
    // Once the disk recovers, so does the registry, without a restart and without a write:
    // a read runs the group commit that catches the views up.
    assert!(exists(&registry, "second").await.unwrap(), "a read did not catch the views up");
    assert!(!registry.views_behind());
    registry.put_object(Caller::system("test"), version("third")).await.unwrap();
    for key in ["first", "second", "third"] {
        assert!(exists(&registry, key).await.unwrap(), "{key} is missing");
    }
    registry.close().await;
}

async fn read_records(registry: &Registry) -> Result<usize, Error> {
    let all = queries::RetrievalFilter::default();
    registry.read_retrievals(move |conn| Ok(conn.retrievals(&all, 100)?.len())).await
}

/// Views that lack only read records still answer every other read. Otherwise, on a full disk
/// whose views lost room before the log did, one read record would stop every read, and
/// `registry.retrievals = best_effort` would not serve reads.
#[tokio::test]
async fn views_lacking_only_read_records_still_serve_reads_issue_16() {
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::open(dir.path().join("registry.db"), Arc::new(SystemClock)).unwrap();
    registry.create_bucket(Caller::system("test"), "b", "us-east-1", false).await.unwrap();
    registry.put_object(Caller::system("test"), version("first")).await.unwrap();

    // The read record's views commit fails and so does the catch-up; then those of the group
    // commit that the first read of the records runs.
    registry.fail_views_commits(4);
    let read = Retrieved {
        version: VersionRef { bucket: "b".into(), key: "first".into(), version_id: "v".into() },
        method: "GET".into(),
        bytes: 1,
        range: None,
    };
    registry.record_retrieval(Caller::system("test"), read, |err| panic!("the log refused the record: {err}")).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !registry.views_behind() {
        assert!(std::time::Instant::now() < deadline, "the record's views commit never failed");
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }

    assert!(exists(&registry, "first").await.unwrap(), "a read refused for lacking a read record");
    let refused = read_records(&registry).await;
    assert!(matches!(refused, Err(Error::ViewsBehind)), "records read from views that lack one: {refused:?}");
    assert!(registry.views_behind());
    assert_eq!(read_records(&registry).await.unwrap(), 1, "the record did not reach the views");
    assert!(!registry.views_behind());

    // Any other event missing refuses every read, as before.
    registry.fail_views_commits(2);
    registry.put_object(Caller::system("test"), version("second")).await.unwrap();
    assert!(registry.views_behind());
    registry.fail_views_commits(2);
    assert!(matches!(exists(&registry, "first").await, Err(Error::ViewsBehind)));
    registry.close().await;
}
