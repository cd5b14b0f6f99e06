//! The S3 backend when its upstream fails during a write: killed in the middle of a PUT and
//! of a multipart part, answering 500 or 503 SlowDown, or not answering at all (also during a
//! multipart completion and abort). Each time the
//! client gets an error (503 when the gateway could answer), no version appears, no event is
//! recorded, and `artifact-store gc` leaves no orphan object upstream.
//!
//! The upstream is a real moto server; the faults come from a TCP proxy between the gateway
//! and moto ([`artifact_store_conformance::upstream::FaultProxy`]), which is how "the upstream
//! died" looks from the gateway: a connection cut in the middle of the body.

use artifact_store_conformance::events::of_type;
use artifact_store_conformance::sdk::failure;
use artifact_store_conformance::server::binary_path;
use artifact_store_conformance::upstream::{Fault, FaultProxy, Moto, UPSTREAM_ACCESS_KEY, UPSTREAM_SECRET_KEY};
use artifact_store_conformance::{Server, Transport, bytes};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};

const UPSTREAM_BUCKET: &str = "gateway-blobs";
const PREFIX: &str = "faults/";
const BUCKET: &str = "faults";
const MIB: usize = 1024 * 1024;

/// The gateway's configuration for an upstream behind `proxy`: short timeouts so a stalled
/// upstream fails quickly, one attempt so every injected fault reaches the gateway.
fn upstream_config(endpoint: &str) -> Vec<(String, String)> {
    [
        ("ARTIFACT_STORE_STORAGE_BACKEND", "s3"),
        ("ARTIFACT_STORE_UPSTREAM_ENDPOINT", endpoint),
        ("ARTIFACT_STORE_UPSTREAM_BUCKET", UPSTREAM_BUCKET),
        ("ARTIFACT_STORE_UPSTREAM_PREFIX", PREFIX),
        ("ARTIFACT_STORE_UPSTREAM_ACCESS_KEY", UPSTREAM_ACCESS_KEY),
        ("ARTIFACT_STORE_UPSTREAM_SECRET_KEY", UPSTREAM_SECRET_KEY),
        ("ARTIFACT_STORE_UPSTREAM_TIMEOUT", "2"),
        ("ARTIFACT_STORE_UPSTREAM_MAX_ATTEMPTS", "1"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// Runs `artifact-store gc --min-age 0s` on the server's data with the upstream settings
/// (without blocking the runtime the proxy runs on).
async fn gc(server: &Server, config: &[(String, String)]) {
    let output = tokio::process::Command::new(binary_path())
        .args(["gc", "--min-age", "0s", "--json", "--data-dir"])
        .arg(server.data_dir())
        .env_clear()
        .envs(config.iter().map(|(k, v)| (k, v)))
        .output()
        .await
        .expect("run gc");
    assert!(output.status.success(), "gc failed: {}", String::from_utf8_lossy(&output.stderr));
}

/// A PUT of `len` bytes to `key`, which must fail; when the gateway could answer, with 503
/// and `code`. Then the key must not exist and have no event.
async fn put_fails(server: &Server, key: &str, len: usize, code: &str) {
    let result =
        server.s3().put_object().bucket(BUCKET).key(key).body(ByteStream::from(bytes(len, len as u64))).send().await;
    assert!(result.is_err(), "PUT {key} must fail");
    // A client still sending its body may see the connection close instead of the answer.
    if result.as_ref().err().and_then(|e| e.raw_response()).is_some() {
        assert_eq!(failure(result), (503, code.to_owned()), "PUT {key}");
    }
    server.assert_absent(BUCKET, key).await;
    assert!(of_type(&server.object_events(BUCKET, key), "v1.object.put").is_empty(), "{key}: no event");
}

#[tokio::test]
async fn upstream_faults_during_writes_leave_nothing_behind() {
    let moto = Moto::start().await;
    moto.client().create_bucket().bucket(UPSTREAM_BUCKET).send().await.expect("upstream bucket");
    let proxy = FaultProxy::start(moto.addr()).await;
    let config = upstream_config(&proxy.endpoint());
    let server = Server::start_with(Transport::Http, &[], config.clone()).await;
    let s3 = server.s3();
    s3.create_bucket().bucket(BUCKET).send().await.expect("create bucket");

    // A write that works, to prove the path and to have one blob gc must keep.
    let kept = bytes(3 * MIB, 1);
    s3.put_object().bucket(BUCKET).key("kept").body(ByteStream::from(kept.clone())).send().await.expect("put");
    let read = s3.get_object().bucket(BUCKET).key("kept").range("bytes=1000-1999").send().await.expect("get");
    assert_eq!(read.body.collect().await.unwrap().into_bytes().as_ref(), &kept[1000..2000]);
    assert_eq!(moto.keys(UPSTREAM_BUCKET, PREFIX).await.len(), 1);

    // The upstream dies in the middle of a PUT body.
    proxy.set(Fault::CutAfter(MIB));
    put_fails(&server, "killed-mid-put", 8 * MIB, "ServiceUnavailable").await;

    // The upstream answers 500, then throttles.
    proxy.set(Fault::Answer(500, "InternalError"));
    put_fails(&server, "answered-500", 64 * 1024, "ServiceUnavailable").await;
    proxy.set(Fault::Answer(503, "SlowDown"));
    put_fails(&server, "answered-slowdown", 64 * 1024, "SlowDown").await;

    // The upstream takes the request and never answers (timeout: 2 s).
    proxy.set(Fault::Stall);
    put_fails(&server, "timed-out", 64 * 1024, "ServiceUnavailable").await;

    // A multipart upload the upstream refuses to begin: 503, and no upload recorded.
    let before = server.events().len();
    let created = s3.create_multipart_upload().bucket(BUCKET).key("multipart").send().await;
    assert_eq!(failure(created), (503, "ServiceUnavailable".to_owned()), "create against a stalled upstream");
    server.assert_no_new_events(before, "an upload the upstream did not begin");

    // A multipart upload whose second part meets a dying upstream.
    proxy.set(Fault::None);
    let upload = s3.create_multipart_upload().bucket(BUCKET).key("multipart").send().await.expect("create upload");
    let upload_id = upload.upload_id().expect("upload id");
    let part1 = s3
        .upload_part()
        .bucket(BUCKET)
        .key("multipart")
        .upload_id(upload_id)
        .part_number(1)
        .body(ByteStream::from(bytes(5 * MIB, 2)))
        .send()
        .await
        .expect("part 1");
    proxy.set(Fault::CutAfter(2 * MIB));
    let part2 = s3
        .upload_part()
        .bucket(BUCKET)
        .key("multipart")
        .upload_id(upload_id)
        .part_number(2)
        .body(ByteStream::from(bytes(5 * MIB, 3)))
        .send()
        .await;
    assert!(part2.is_err(), "part 2 must fail");
    proxy.set(Fault::None);
    let parts = [
        CompletedPart::builder().part_number(1).e_tag(part1.e_tag().unwrap()).build(),
        CompletedPart::builder().part_number(2).e_tag("\"00000000000000000000000000000000\"").build(),
    ];
    let completed = s3
        .complete_multipart_upload()
        .bucket(BUCKET)
        .key("multipart")
        .upload_id(upload_id)
        .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts.to_vec())).build())
        .send()
        .await;
    assert_eq!(failure(completed), (400, "InvalidPart".to_owned()));

    // Part 2 again, then a completion the upstream refuses: 503, and nothing recorded.
    let part2 = s3
        .upload_part()
        .bucket(BUCKET)
        .key("multipart")
        .upload_id(upload_id)
        .part_number(2)
        .body(ByteStream::from(bytes(MIB, 3)))
        .send()
        .await
        .expect("part 2 again");
    let parts = [parts[0].clone(), CompletedPart::builder().part_number(2).e_tag(part2.e_tag().unwrap()).build()];
    let before = server.events().len();
    for (fault, code) in
        [(Fault::Answer(500, "InternalError"), "ServiceUnavailable"), (Fault::Stall, "ServiceUnavailable")]
    {
        proxy.set(fault);
        let completed = s3
            .complete_multipart_upload()
            .bucket(BUCKET)
            .key("multipart")
            .upload_id(upload_id)
            .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts.to_vec())).build())
            .send()
            .await;
        assert_eq!(failure(completed), (503, code.to_owned()), "complete against {fault:?}");
        server.assert_no_new_events(before, "a completion the upstream refused");
        server.assert_absent(BUCKET, "multipart").await;
    }

    // An abort the upstream refuses: 503, and the upload is still there to abort again.
    proxy.set(Fault::Answer(503, "SlowDown"));
    let aborted = s3.abort_multipart_upload().bucket(BUCKET).key("multipart").upload_id(upload_id).send().await;
    assert_eq!(failure(aborted), (503, "SlowDown".to_owned()));
    server.assert_no_new_events(before, "an abort the upstream refused");
    assert_eq!(moto.uploads(UPSTREAM_BUCKET, PREFIX).await.len(), 1, "the upstream upload is still open");
    proxy.set(Fault::None);
    s3.abort_multipart_upload().bucket(BUCKET).key("multipart").upload_id(upload_id).send().await.expect("abort");
    server.assert_absent(BUCKET, "multipart").await;
    let events = server.object_events(BUCKET, "multipart");
    assert!(of_type(&events, "v1.object.put").is_empty(), "no version of the multipart object");
    assert!(moto.uploads(UPSTREAM_BUCKET, PREFIX).await.is_empty(), "the abort reached the upstream");

    // Every failed PUT's object was removed or is unreferenced: gc must leave exactly the one
    // referenced blob.
    gc(&server, &config).await;
    let left = moto.keys(UPSTREAM_BUCKET, PREFIX).await;
    assert_eq!(left.len(), 1, "only the blob of \"kept\" may remain: {left:?}");
    let again = s3.get_object().bucket(BUCKET).key("kept").send().await.expect("get after gc");
    assert_eq!(again.body.collect().await.unwrap().into_bytes().as_ref(), kept.as_slice());
}

#[tokio::test]
async fn an_upstream_down_at_start_up_does_not_stop_the_gateway() {
    // Nothing listens on the proxy's upstream: every upstream request fails.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let config = upstream_config(&format!("http://{closed}"));
    let server = Server::start_with(Transport::Http, &[], config).await;
    let s3 = server.s3();
    s3.create_bucket().bucket(BUCKET).send().await.expect("buckets live in the registry");
    put_fails(&server, "no-upstream", 1024, "ServiceUnavailable").await;
    let listed = s3.list_objects_v2().bucket(BUCKET).send().await.expect("list");
    assert_eq!(listed.key_count(), Some(0));
}
