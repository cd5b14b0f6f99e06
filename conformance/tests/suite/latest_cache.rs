//! The latest versions the gateway keeps in memory for GETs without a version id, against the
//! real binary with aws-sdk-s3: a GET that begins after a write was acknowledged sees that
//! write, whatever readers filled the cache with meanwhile; overwrites, deletes, delete
//! markers, tags and bucket settings all reach the next read, and so does an object another
//! process wrote (`package seal` beside the serving gateway). Buckets are kept beside them for
//! every request that looks its bucket up, PUT included: a bucket setting reaches the next
//! write.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use artifact_store_conformance::metrics::sample;
use artifact_store_conformance::sdk::{create_bucket, enable_versioning, failure, get, put};
use artifact_store_conformance::{Server, Transport, bytes, cli, md5_hex};
use aws_sdk_s3::Client;
use aws_sdk_s3::types::{
    ServerSideEncryption, ServerSideEncryptionByDefault, ServerSideEncryptionConfiguration, ServerSideEncryptionRule,
    Tag, Tagging,
};

async fn cache_hits(server: &Server) -> f64 {
    sample(&server.scrape().await, "artifact_store_registry_latest_cache_hits_total", &[]).unwrap_or(0.0)
}

/// Readers that GET `bucket/key` without a pause until told to stop, so that fills of the
/// cache race with every write the test makes. What they read is not checked: a read that
/// began before a write was acknowledged may see either side of it.
fn hammer(s3: &Client, bucket: &str, key: &str, stop: &Arc<AtomicBool>) -> Vec<tokio::task::JoinHandle<u64>> {
    (0..4)
        .map(|_| {
            let (s3, bucket, key, stop) = (s3.clone(), bucket.to_owned(), key.to_owned(), Arc::clone(stop));
            tokio::spawn(async move {
                let mut reads = 0;
                while !stop.load(Ordering::Relaxed) {
                    if let Ok(out) = s3.get_object().bucket(&bucket).key(&key).send().await {
                        let _ = out.body.collect().await;
                    }
                    reads += 1;
                }
                reads
            })
        })
        .collect()
}

#[tokio::test]
async fn a_get_after_an_acknowledged_overwrite_or_delete_never_sees_what_it_replaced() {
    let server = Server::start(Transport::Http).await;
    let s3 = server.s3();
    create_bucket(&s3, "latest").await;
    let stop = Arc::new(AtomicBool::new(false));
    let readers = hammer(&s3, "latest", "k", &stop);

    for round in 0..60u8 {
        // Inline bodies and, every third round, one kept in the blob store.
        let size = if round % 3 == 2 { 9000 } else { 100 + usize::from(round) };
        let data = bytes(size, round.into());
        let etag = put(&s3, "latest", "k", &data).await;
        assert_eq!(etag, md5_hex(&data));
        for _ in 0..2 {
            let out = s3.get_object().bucket("latest").key("k").send().await.expect("get");
            assert_eq!(out.e_tag().map(|e| e.trim_matches('"').to_owned()), Some(etag.clone()), "round {round}");
            assert_eq!(out.body.collect().await.expect("body").into_bytes().to_vec(), data, "round {round}");
        }
        if round % 5 == 4 {
            s3.delete_object().bucket("latest").key("k").send().await.expect("delete");
            let (status, code) = failure(s3.get_object().bucket("latest").key("k").send().await);
            assert_eq!((status, code.as_str()), (404, "NoSuchKey"), "round {round}");
            let (status, _) = failure(s3.head_object().bucket("latest").key("k").send().await);
            assert_eq!(status, 404, "round {round}");
        }
    }

    // Tags are part of what a GET answers (x-amz-tagging-count).
    put(&s3, "latest", "k", b"tagged").await;
    assert_eq!(get(&s3, "latest", "k").await, b"tagged");
    let tags = Tagging::builder().tag_set(Tag::builder().key("a").value("1").build().unwrap()).build().unwrap();
    s3.put_object_tagging().bucket("latest").key("k").tagging(tags).send().await.expect("tag");
    let out = s3.get_object().bucket("latest").key("k").send().await.expect("get");
    assert_eq!(out.tag_count(), Some(1));

    // A bucket setting changes every entry: with versioning on, a delete leaves a marker.
    enable_versioning(&s3, "latest").await;
    let first = s3.put_object().bucket("latest").key("k").body(b"first".to_vec().into()).send().await.expect("put");
    let first_id = first.version_id().expect("a version id").to_owned();
    let out = s3.get_object().bucket("latest").key("k").send().await.expect("get");
    assert_eq!(out.version_id(), Some(first_id.as_str()));
    let marker = s3.delete_object().bucket("latest").key("k").send().await.expect("delete");
    assert_eq!(marker.delete_marker(), Some(true));
    let (status, code) = failure(s3.get_object().bucket("latest").key("k").send().await);
    assert_eq!((status, code.as_str()), (404, "NoSuchKey"));
    // Removing the marker brings the version back.
    s3.delete_object()
        .bucket("latest")
        .key("k")
        .version_id(marker.version_id().expect("the marker's id"))
        .send()
        .await
        .expect("delete the marker");
    assert_eq!(get(&s3, "latest", "k").await, b"first");

    stop.store(true, Ordering::Relaxed);
    let mut raced = 0;
    for reader in readers {
        raced += reader.await.expect("reader");
    }
    assert!(raced > 0, "the readers read");
    // The reads above went through the cache: without hits this test would prove nothing.
    assert!(cache_hits(&server).await > 0.0, "no read was answered from memory");
}

#[tokio::test]
async fn a_put_after_an_acknowledged_bucket_setting_obeys_it() {
    let server = Server::start(Transport::Http).await;
    let s3 = server.s3();
    create_bucket(&s3, "settings").await;
    let stop = Arc::new(AtomicBool::new(false));
    let readers = hammer(&s3, "settings", "k", &stop);
    let aes256 = ServerSideEncryptionConfiguration::builder()
        .rules(
            ServerSideEncryptionRule::builder()
                .apply_server_side_encryption_by_default(
                    ServerSideEncryptionByDefault::builder()
                        .sse_algorithm(ServerSideEncryption::Aes256)
                        .build()
                        .expect("default"),
                )
                .build(),
        )
        .build()
        .expect("configuration");
    let put_encryption = async |round| {
        let out = s3.put_object().bucket("settings").key("k").body(b"x".to_vec().into()).send().await;
        out.unwrap_or_else(|e| panic!("round {round}: put: {e:?}")).server_side_encryption().cloned()
    };
    for round in 0..10 {
        // Twice each way: the first PUT may read the bucket, the second finds it kept.
        for _ in 0..2 {
            assert_eq!(put_encryption(round).await, None, "round {round}: no default yet");
        }
        s3.put_bucket_encryption()
            .bucket("settings")
            .server_side_encryption_configuration(aes256.clone())
            .send()
            .await
            .expect("set the default encryption");
        for _ in 0..2 {
            assert_eq!(put_encryption(round).await, Some(ServerSideEncryption::Aes256), "round {round}: the default");
        }
        s3.delete_bucket_encryption().bucket("settings").send().await.expect("remove the default encryption");
    }
    stop.store(true, Ordering::Relaxed);
    for reader in readers {
        reader.await.expect("reader");
    }
    let hits = sample(&server.scrape().await, "artifact_store_registry_bucket_cache_hits_total", &[]).unwrap_or(0.0);
    assert!(hits > 0.0, "no PUT found its bucket in memory");
}

#[tokio::test]
async fn a_deleted_and_recreated_bucket_is_read_afresh() {
    let server = Server::start(Transport::Http).await;
    let s3 = server.s3();
    create_bucket(&s3, "again").await;
    put(&s3, "again", "k", b"old").await;
    assert_eq!(get(&s3, "again", "k").await, b"old");
    assert_eq!(get(&s3, "again", "k").await, b"old");
    s3.delete_object().bucket("again").key("k").send().await.expect("delete");
    s3.delete_bucket().bucket("again").send().await.expect("delete bucket");
    let (status, code) = failure(s3.get_object().bucket("again").key("k").send().await);
    assert_eq!((status, code.as_str()), (404, "NoSuchBucket"));
    create_bucket(&s3, "again").await;
    let (status, code) = failure(s3.get_object().bucket("again").key("k").send().await);
    assert_eq!((status, code.as_str()), (404, "NoSuchKey"));
    put(&s3, "again", "k", b"new").await;
    assert_eq!(get(&s3, "again", "k").await, b"new");
}

#[tokio::test]
async fn an_object_another_process_wrote_is_read_at_once() {
    let server = Server::start(Transport::Http).await;
    let s3 = server.s3();
    create_bucket(&s3, "beside").await;
    put(&s3, "beside", "rel/1.0/a.bin", b"member").await;
    // The manifest's absence is read, twice: kept, then answered from memory.
    for _ in 0..2 {
        let (status, code) = failure(s3.get_object().bucket("beside").key("rel/1.0/.package.json").send().await);
        assert_eq!((status, code.as_str()), (404, "NoSuchKey"));
    }
    let hits = cache_hits(&server).await;
    assert!(hits > 0.0, "the second read was not answered from memory");
    // The CLI appends the manifest's version to the registry from its own process: the very
    // next request, with nothing committed by the gateway in between, finds it.
    cli::expect(&server, &["package", "seal", "s3://beside/rel/1.0/"], 0);
    let manifest = get(&s3, "beside", "rel/1.0/.package.json").await;
    assert!(String::from_utf8(manifest).expect("UTF-8").contains("rel/1.0/a.bin"));
}
