//! Small objects kept inline in the registry (`storage.inline_max_bytes`), against the real
//! binary with aws-sdk-s3: their bytes and digests round-trip through every read and copy,
//! no blob is written for them, `verify` names one altered behind the registry's back, and
//! `gc` removes the ones no version references.

use artifact_store_conformance::events::{of_type, version};
use artifact_store_conformance::sdk::{create_bucket, failure, get, get_range, put};
use artifact_store_conformance::server::upstream_env;
use artifact_store_conformance::{Server, Transport, blake3_hex, bytes, cli, md5_hex};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ChecksumAlgorithm, CompletedMultipartUpload, CompletedPart};
use serde_json::Value;

/// The benchmark's object size, and the largest body kept inline below.
const INLINE: usize = 4096;

/// A server that keeps bodies of up to [`INLINE`] bytes inline, on either backend.
async fn server() -> Server {
    Server::start_with(Transport::Http, &["--inline-max-bytes", "4096"], upstream_env()).await
}

/// The registry's locator of inline bytes.
fn locator(data: &[u8]) -> String {
    format!("inline:{}", blake3_hex(data))
}

/// The blob id the version of `bucket/key` recorded in the log.
fn recorded_blob(server: &Server, bucket: &str, key: &str) -> String {
    let events = server.object_events(bucket, key);
    let put = of_type(&events, "v1.object.put").last().copied().expect("a v1.object.put event");
    version(put)["content"]["parts"][0]["blob"].as_str().expect("a blob id").to_owned()
}

/// Whether the local store holds a blob file named by the BLAKE3 of `data`.
fn blob_file_exists(server: &Server, data: &[u8]) -> bool {
    let hex = blake3_hex(data);
    server.data_dir().join("blobs").join(&hex[..2]).join(&hex).exists()
}

#[tokio::test]
async fn a_small_object_is_kept_inline_and_round_trips_through_every_read_and_copy() {
    let server = server().await;
    let s3 = server.s3();
    create_bucket(&s3, "inline").await;
    let data = bytes(INLINE, 11);

    let out = s3
        .put_object()
        .bucket("inline")
        .key("small.bin")
        .checksum_algorithm(ChecksumAlgorithm::Sha256)
        .body(ByteStream::from(data.clone()))
        .send()
        .await
        .expect("put");
    let etag = out.e_tag().expect("ETag").to_owned();
    assert_eq!(etag.trim_matches('"'), md5_hex(&data), "the ETag is the MD5");
    let sha256 = out.checksum_sha256().expect("the SHA-256 checksum").to_owned();

    // Inline: the version names the registry's bytes, and no blob was written for them.
    assert_eq!(recorded_blob(&server, "inline", "small.bin"), locator(&data));
    if !server.on_s3_backend() {
        assert!(!blob_file_exists(&server, &data), "an inline object has no blob file");
    }
    // One byte more goes to the blob store as before.
    let larger = bytes(INLINE + 1, 12);
    put(&s3, "inline", "larger.bin", &larger).await;
    assert!(!recorded_blob(&server, "inline", "larger.bin").starts_with("inline:"));
    if !server.on_s3_backend() {
        assert!(blob_file_exists(&server, &larger), "a larger object has its blob file");
    }
    assert_eq!(get(&s3, "inline", "larger.bin").await, larger);

    // GET, HEAD, ranges, the stored checksum and conditional reads.
    assert_eq!(get(&s3, "inline", "small.bin").await, data);
    let head = s3.head_object().bucket("inline").key("small.bin").send().await.expect("head");
    assert_eq!(head.content_length(), Some(INLINE as i64));
    assert_eq!(head.e_tag(), Some(etag.as_str()));
    let got = s3
        .get_object()
        .bucket("inline")
        .key("small.bin")
        .checksum_mode(aws_sdk_s3::types::ChecksumMode::Enabled)
        .send()
        .await
        .expect("get with checksum");
    assert_eq!(got.checksum_sha256(), Some(sha256.as_str()));
    assert_eq!(got.body.collect().await.expect("body").into_bytes().as_ref(), &data[..]);
    assert_eq!(get_range(&s3, "inline", "small.bin", Some("bytes=100-1099")).await, &data[100..1100]);
    assert_eq!(get_range(&s3, "inline", "small.bin", Some("bytes=-10")).await, &data[INLINE - 10..]);
    let unsatisfiable = s3.get_object().bucket("inline").key("small.bin").range("bytes=5000-6000").send().await;
    assert_eq!(failure(unsatisfiable), (416, "InvalidRange".to_owned()));
    let not_modified = s3.get_object().bucket("inline").key("small.bin").if_none_match(&etag).send().await;
    assert!(not_modified.is_err(), "If-None-Match with the current ETag is 304");
    let failed = s3.get_object().bucket("inline").key("small.bin").if_match("\"0000\"").send().await;
    assert_eq!(failure(failed), (412, "PreconditionFailed".to_owned()));

    // CopyObject names the same bytes; UploadPartCopy reads them.
    s3.copy_object().bucket("inline").key("copy.bin").copy_source("inline/small.bin").send().await.expect("copy");
    assert_eq!(recorded_blob(&server, "inline", "copy.bin"), locator(&data));
    assert_eq!(get(&s3, "inline", "copy.bin").await, data);
    let upload = s3.create_multipart_upload().bucket("inline").key("assembled.bin").send().await.expect("create");
    let upload_id = upload.upload_id().expect("upload id");
    let part = s3
        .upload_part_copy()
        .bucket("inline")
        .key("assembled.bin")
        .upload_id(upload_id)
        .part_number(1)
        .copy_source("inline/small.bin")
        .copy_source_range("bytes=0-2047")
        .send()
        .await
        .expect("upload part copy");
    let part_etag = part.copy_part_result().and_then(|r| r.e_tag()).expect("part ETag").to_owned();
    let parts = CompletedMultipartUpload::builder()
        .parts(CompletedPart::builder().part_number(1).e_tag(part_etag).build())
        .build();
    s3.complete_multipart_upload()
        .bucket("inline")
        .key("assembled.bin")
        .upload_id(upload_id)
        .multipart_upload(parts)
        .send()
        .await
        .expect("complete");
    assert_eq!(get(&s3, "inline", "assembled.bin").await, &data[..2048]);

    // The registry records the digest; the event feed carries the locator, never the bytes.
    let history = cli::expect(&server, &["object", "history", "s3://inline/small.bin", "--json"], 0);
    let history: Value = serde_json::from_str(&history.stdout).expect("JSON");
    assert_eq!(history["versions"][0]["blake3"], blake3_hex(&data));
    for event in server.object_events("inline", "small.bin") {
        let text = event.payload.to_string();
        assert!(text.len() < INLINE, "event {} carries no object bytes: {text}", event.sequence);
    }

    // An empty object is inline too.
    put(&s3, "inline", "empty", b"").await;
    assert_eq!(recorded_blob(&server, "inline", "empty"), locator(b""));
    assert_eq!(get(&s3, "inline", "empty").await, b"");

    // DeleteObject: the key is gone; the bytes stay while the copy references them.
    s3.delete_object().bucket("inline").key("small.bin").send().await.expect("delete");
    let gone = s3.get_object().bucket("inline").key("small.bin").send().await;
    assert_eq!(failure(gone), (404, "NoSuchKey".to_owned()));
    assert_eq!(get(&s3, "inline", "copy.bin").await, data);
    let verify = cli::expect(&server, &["verify", "--json"], 0);
    let report: Value = serde_json::from_str(&verify.stdout).expect("JSON");
    assert_eq!(report["inline"]["corrupt"], serde_json::json!([]));
}

#[tokio::test]
async fn verify_names_an_altered_inline_blob_and_gc_removes_unreferenced_ones() {
    let server = server().await;
    let s3 = server.s3();
    create_bucket(&s3, "inline-gc").await;
    let kept = bytes(1000, 21);
    let dropped = bytes(2000, 22);
    put(&s3, "inline-gc", "kept", &kept).await;
    put(&s3, "inline-gc", "dropped", &dropped).await;
    s3.delete_object().bucket("inline-gc").key("dropped").send().await.expect("delete");

    let dry = cli::expect(&server, &["gc", "--min-age", "0s", "--dry-run", "--json"], 0);
    let dry: Value = serde_json::from_str(&dry.stdout).expect("JSON");
    assert_eq!(dry["inline_blobs_removed"], 1, "{dry}");
    let gc = cli::expect(&server, &["gc", "--min-age", "0s", "--json"], 0);
    let gc: Value = serde_json::from_str(&gc.stdout).expect("JSON");
    assert_eq!((gc["inline_blobs_removed"].as_u64(), gc["inline_bytes_freed"].as_u64()), (Some(1), Some(2000)), "{gc}");
    assert_eq!(gc["inline_blobs_referenced"], 1, "{gc}");
    let again = cli::expect(&server, &["gc", "--min-age", "0s", "--json"], 0);
    assert_eq!(serde_json::from_str::<Value>(&again.stdout).expect("JSON")["inline_blobs_removed"], 0);
    assert_eq!(get(&s3, "inline-gc", "kept").await, kept, "gc kept the referenced bytes");
    // The same bytes stored again after gc are stored anew.
    put(&s3, "inline-gc", "dropped", &dropped).await;
    assert_eq!(get(&s3, "inline-gc", "dropped").await, dropped);
    cli::expect(&server, &["verify", "--no-blobs"], 0);

    // Alter the kept bytes behind the registry's back: verify names them.
    let conn = rusqlite::Connection::open(server.registry_path()).expect("open the log");
    conn.busy_timeout(std::time::Duration::from_secs(10)).expect("busy timeout");
    let altered = conn.execute(
        "UPDATE inline_blobs SET bytes = ?1 WHERE digest = ?2",
        (bytes(1000, 99), blake3::hash(&kept).as_bytes().to_vec()),
    );
    assert_eq!(altered.expect("alter"), 1);
    drop(conn);
    let failed = cli::expect(&server, &["verify", "--no-blobs"], 1);
    let named = format!("blob {}: its bytes do not hash to its name", locator(&kept));
    assert!(failed.stdout.contains(&named), "{failed:#?}");
    assert!(!failed.stdout.contains(&locator(&dropped)), "{failed:#?}");
}
