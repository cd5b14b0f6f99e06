//! Multipart uploads on the S3 backend become upstream multipart uploads: checked on the
//! upstream itself (a real moto server, read directly, past the gateway). A completed upload
//! is exactly one upstream object holding the uploaded bytes, with re-uploaded, copied and
//! left-out parts as the client asked; an aborted one leaves no upstream upload; an upload
//! outlives a gateway restart; `gc` aborts upstream uploads that no open upload names.

use artifact_store_conformance::upstream::{Moto, UPSTREAM_ACCESS_KEY, UPSTREAM_SECRET_KEY};
use artifact_store_conformance::{Server, Transport, blake3_hex, bytes};
use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};

const UPSTREAM_BUCKET: &str = "gateway-blobs";
const PREFIX: &str = "mpu/";
const BUCKET: &str = "multipart";
const MIB: usize = 1024 * 1024;

fn upstream_config(endpoint: &str) -> Vec<(String, String)> {
    [
        ("ARTIFACT_STORE_STORAGE_BACKEND", "s3"),
        ("ARTIFACT_STORE_UPSTREAM_ENDPOINT", endpoint),
        ("ARTIFACT_STORE_UPSTREAM_BUCKET", UPSTREAM_BUCKET),
        ("ARTIFACT_STORE_UPSTREAM_PREFIX", PREFIX),
        ("ARTIFACT_STORE_UPSTREAM_ACCESS_KEY", UPSTREAM_ACCESS_KEY),
        ("ARTIFACT_STORE_UPSTREAM_SECRET_KEY", UPSTREAM_SECRET_KEY),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

async fn create(s3: &Client, key: &str) -> String {
    let upload = s3.create_multipart_upload().bucket(BUCKET).key(key).send().await.expect("create upload");
    upload.upload_id().expect("upload id").to_owned()
}

async fn part(s3: &Client, key: &str, upload_id: &str, number: i32, body: &[u8]) -> CompletedPart {
    let uploaded = s3
        .upload_part()
        .bucket(BUCKET)
        .key(key)
        .upload_id(upload_id)
        .part_number(number)
        .body(ByteStream::from(body.to_vec()))
        .send()
        .await
        .unwrap_or_else(|err| panic!("part {number} of {key}: {err:?}"));
    CompletedPart::builder().part_number(number).e_tag(uploaded.e_tag().expect("etag")).build()
}

async fn complete(s3: &Client, key: &str, upload_id: &str, parts: Vec<CompletedPart>) {
    s3.complete_multipart_upload()
        .bucket(BUCKET)
        .key(key)
        .upload_id(upload_id)
        .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build())
        .send()
        .await
        .unwrap_or_else(|err| panic!("complete {key}: {err:?}"));
}

async fn get(s3: &Client, key: &str) -> Vec<u8> {
    let object = s3.get_object().bucket(BUCKET).key(key).send().await.expect("get");
    object.body.collect().await.expect("body").into_bytes().to_vec()
}

/// The upstream keys that appeared since `before`, which must be exactly one, and its bytes.
async fn the_new_object(moto: &Moto, before: &[String]) -> Vec<u8> {
    let new: Vec<String> =
        moto.keys(UPSTREAM_BUCKET, PREFIX).await.into_iter().filter(|k| !before.contains(k)).collect();
    assert_eq!(new.len(), 1, "exactly one new upstream object: {new:?}");
    moto.read(UPSTREAM_BUCKET, &new[0]).await
}

#[tokio::test]
async fn multipart_uploads_are_upstream_multipart_uploads() {
    let moto = Moto::start().await;
    moto.client().create_bucket().bucket(UPSTREAM_BUCKET).send().await.expect("upstream bucket");
    let config = upstream_config(&format!("http://{}", moto.addr()));
    let mut server = Server::start_with(Transport::Http, &[], config).await;
    let s3 = server.s3();
    s3.create_bucket().bucket(BUCKET).send().await.expect("create bucket");
    let source = bytes(2 * MIB, 9);
    s3.put_object().bucket(BUCKET).key("source").body(ByteStream::from(source.clone())).send().await.expect("put");

    // Two 8 MiB parts (BLAKE3 merged from their chaining values), part 2 uploaded twice, and
    // a last part copied from a range of another object.
    let before = moto.keys(UPSTREAM_BUCKET, PREFIX).await;
    let upload_id = create(&s3, "big").await;
    let p1 = bytes(8 * MIB, 1);
    let (p2_old, p2) = (bytes(8 * MIB, 2), bytes(8 * MIB, 3));
    let part1 = part(&s3, "big", &upload_id, 1, &p1).await;
    part(&s3, "big", &upload_id, 2, &p2_old).await;
    let part2 = part(&s3, "big", &upload_id, 2, &p2).await;
    let copied = s3
        .upload_part_copy()
        .bucket(BUCKET)
        .key("big")
        .upload_id(&upload_id)
        .part_number(3)
        .copy_source(format!("{BUCKET}/source"))
        .copy_source_range(format!("bytes=100-{}", 100 + MIB - 1))
        .send()
        .await
        .expect("upload part copy");
    let part3 = CompletedPart::builder()
        .part_number(3)
        .e_tag(copied.copy_part_result().and_then(|r| r.e_tag()).expect("copy etag"))
        .build();
    assert_eq!(moto.uploads(UPSTREAM_BUCKET, PREFIX).await.len(), 1, "one upstream upload while uploading");
    complete(&s3, "big", &upload_id, vec![part1, part2, part3]).await;
    let expected = [p1.as_slice(), p2.as_slice(), &source[100..100 + MIB]].concat();
    assert!(the_new_object(&moto, &before).await == expected, "the upstream object holds the uploaded bytes");
    assert!(moto.uploads(UPSTREAM_BUCKET, PREFIX).await.is_empty(), "no upstream upload left after completion");
    assert!(get(&s3, "big").await == expected, "GET through the gateway");
    assert_eq!(server.completed_blake3(BUCKET, "big"), blake3_hex(&expected));
    let second = s3.get_object().bucket(BUCKET).key("big").part_number(2).send().await.expect("get part 2");
    assert_eq!(second.parts_count(), Some(3));
    assert!(second.body.collect().await.unwrap().into_bytes().as_ref() == p2.as_slice(), "part 2 by number");
    let across = s3
        .get_object()
        .bucket(BUCKET)
        .key("big")
        .range(format!("bytes={}-{}", 8 * MIB - 10, 16 * MIB + 9))
        .send()
        .await
        .expect("range across parts");
    let across = across.body.collect().await.unwrap().into_bytes();
    assert!(across.as_ref() == &expected[8 * MIB - 10..16 * MIB + 10], "range across part boundaries");

    // Completing with a subset of the uploaded parts.
    let before = moto.keys(UPSTREAM_BUCKET, PREFIX).await;
    let upload_id = create(&s3, "subset").await;
    let (s1, s2, s3_bytes) = (bytes(5 * MIB, 4), bytes(5 * MIB, 5), bytes(1000, 6));
    let first = part(&s3, "subset", &upload_id, 1, &s1).await;
    part(&s3, "subset", &upload_id, 2, &s2).await;
    let third = part(&s3, "subset", &upload_id, 3, &s3_bytes).await;
    complete(&s3, "subset", &upload_id, vec![first, third]).await;
    let expected = [s1.as_slice(), s3_bytes.as_slice()].concat();
    assert!(the_new_object(&moto, &before).await == expected, "the upstream object holds parts 1 and 3");
    assert!(get(&s3, "subset").await == expected);
    assert_eq!(server.completed_blake3(BUCKET, "subset"), blake3_hex(&expected));

    // An aborted upload leaves no upstream upload and no object.
    let before = moto.keys(UPSTREAM_BUCKET, PREFIX).await;
    let upload_id = create(&s3, "aborted").await;
    part(&s3, "aborted", &upload_id, 1, &bytes(5 * MIB, 7)).await;
    assert_eq!(moto.uploads(UPSTREAM_BUCKET, PREFIX).await.len(), 1);
    s3.abort_multipart_upload().bucket(BUCKET).key("aborted").upload_id(&upload_id).send().await.expect("abort");
    assert!(moto.uploads(UPSTREAM_BUCKET, PREFIX).await.is_empty(), "no upstream upload left after abort");
    assert_eq!(moto.keys(UPSTREAM_BUCKET, PREFIX).await, before, "no upstream object from an aborted upload");

    // An upload goes on across a gateway restart: the upstream upload is recorded.
    let upload_id = create(&s3, "restarted").await;
    let r1 = bytes(5 * MIB, 8);
    let first = part(&s3, "restarted", &upload_id, 1, &r1).await;
    server.restart().await;
    let s3 = server.s3();
    let r2 = bytes(3000, 10);
    let second = part(&s3, "restarted", &upload_id, 2, &r2).await;
    let before = moto.keys(UPSTREAM_BUCKET, PREFIX).await;
    complete(&s3, "restarted", &upload_id, vec![first, second]).await;
    let expected = [r1.as_slice(), r2.as_slice()].concat();
    assert!(the_new_object(&moto, &before).await == expected, "completed after a restart");

    // gc aborts an upstream upload that no open upload names (one whose gateway died before
    // recording it), keeps one that an open upload names, and keeps every referenced object.
    let orphan = format!("{PREFIX}{}", "0123456789abcdef".repeat(2));
    moto.client().create_multipart_upload().bucket(UPSTREAM_BUCKET).key(&orphan).send().await.expect("orphan");
    let open_id = create(&s3, "open").await;
    let o1 = bytes(5 * MIB, 11);
    let open_part = part(&s3, "open", &open_id, 1, &o1).await;
    assert_eq!(moto.uploads(UPSTREAM_BUCKET, PREFIX).await.len(), 2);
    let keys = moto.keys(UPSTREAM_BUCKET, PREFIX).await;
    let output = server.cli(&["gc", "--min-age", "0s", "--json"]);
    assert!(output.status.success(), "gc failed: {}", String::from_utf8_lossy(&output.stderr));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).expect("gc report");
    assert_eq!(report["uploads_aborted"], 1, "{report}");
    assert_eq!(report["uploads_kept"], 1, "{report}");
    assert_eq!(moto.uploads(UPSTREAM_BUCKET, PREFIX).await.len(), 1, "only the open upload's upstream upload");
    assert_eq!(moto.keys(UPSTREAM_BUCKET, PREFIX).await, keys, "every object is referenced");
    complete(&s3, "open", &open_id, vec![open_part]).await;
    assert!(get(&s3, "open").await == o1, "the open upload completes after gc");

    // Deleting a version removes its upstream object (through gc) once nothing references it.
    let keys = moto.keys(UPSTREAM_BUCKET, PREFIX).await;
    s3.delete_object().bucket(BUCKET).key("subset").send().await.expect("delete");
    let output = server.cli(&["gc", "--min-age", "0s", "--json"]);
    assert!(output.status.success(), "gc failed: {}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(moto.keys(UPSTREAM_BUCKET, PREFIX).await.len(), keys.len() - 1, "the deleted object's blob is gone");
    assert!(get(&s3, "big").await.len() == 17 * MIB, "other objects stay readable");
}

/// Found by an attacker's pass: a part whose body fails after its last byte was read (the
/// signature of an aws-chunked body's final chunk) was refused, but its bytes had already
/// reached the upstream under the part's number and replaced the part uploaded before, which
/// the registry still named: completing the upload then failed with 500. The upstream request
/// now gets its last byte only once the client's body ended well.
#[tokio::test]
async fn a_part_refused_at_its_end_leaves_the_part_uploaded_before_in_place() {
    use artifact_store_conformance::raw::{ROOT, SignedChunks, assert_refused, encode};
    let moto = Moto::start().await;
    moto.client().create_bucket().bucket(UPSTREAM_BUCKET).send().await.expect("upstream bucket");
    let config = upstream_config(&format!("http://{}", moto.addr()));
    let server = Server::start_with(Transport::Http, &[], config).await;
    let s3 = server.s3();
    s3.create_bucket().bucket(BUCKET).send().await.expect("create bucket");
    let upload_id = create(&s3, "kept").await;
    // Whole pieces of the hashing pipeline (256 KiB), so that the last is sent on as soon as it
    // is read, before the body ends.
    let good = bytes(512 * 1024, 4);
    let uploaded = part(&s3, "kept", &upload_id, 1, &good).await;

    let other = bytes(512 * 1024, 5);
    let chunks: Vec<&[u8]> = other.chunks(65_536).collect();
    let forged = SignedChunks::new(&chunks).forge_chunk_signature(chunks.len());
    let target = format!("/{BUCKET}/kept?partNumber=1&uploadId={}", encode(&upload_id, false));
    let refused =
        server.send(&server.request("PUT", &target).sign_streaming(ROOT, std::time::SystemTime::now(), &forged)).await;
    assert_refused(&refused, 403, "SignatureDoesNotMatch", "a part whose final chunk is forged");

    complete(&s3, "kept", &upload_id, vec![uploaded]).await;
    assert!(get(&s3, "kept").await == good, "the object holds the part uploaded before");
}
