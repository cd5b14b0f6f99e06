//! Signed streaming uploads against the real binary, over HTTP and HTTPS: the
//! `STREAMING-AWS4-HMAC-SHA256-PAYLOAD` and `STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER`
//! bodies the Java (v1 and v2) and Go SDKs send, every chunk signed in a chain from the
//! request's signature. The Rust SDK does not send them, so they are built by
//! [`artifact_store_conformance::raw::SignedChunks`].
//!
//! What is stored is the decoded bytes, never the framing; a chunk or trailer whose
//! signature does not match, or a trailer checksum that does not match the bytes, stores
//! nothing and records no event. Each refusal is paired with the same request signed right.

use std::time::SystemTime;

use artifact_store_conformance::events::{self, of_type};
use artifact_store_conformance::raw::{ROOT, RawRequest, RawResponse, SignedChunks, assert_refused, encode};
use artifact_store_conformance::sdk::unquote;
use artifact_store_conformance::{Server, blake3_hex, bytes, crc32_base64, md5_hex, over_http_and_https};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use md5::Digest as _;
use serde_json::json;

over_http_and_https!(
    signed_streaming_puts_store_the_decoded_bytes,
    signed_streaming_parts_complete_into_the_decoded_bytes,
    wrong_chunk_signatures_store_nothing,
    wrong_trailer_checksums_are_bad_digests,
    wrong_trailer_signatures_store_nothing,
    sdk_file_uploads_store_the_decoded_bytes,
);

const BUCKET: &str = "streaming";
/// Parts other than the last must be at least this large.
const MIN_PART: usize = 5 * 1024 * 1024;

/// A server with the bucket [`BUCKET`] and the number of events so far.
async fn with_bucket(server: &Server) -> usize {
    server.s3().create_bucket().bucket(BUCKET).send().await.expect("create bucket");
    server.events().len()
}

fn object_path(key: &str) -> String {
    format!("/{BUCKET}/{}", encode(key, true))
}

/// `data` cut at `cuts` (ascending offsets), as a client with odd buffer sizes sends it.
fn cut<'a>(data: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut chunks = Vec::new();
    let mut start = 0;
    for &end in cuts.iter().chain([&data.len()]) {
        chunks.push(&data[start..end]);
        start = end;
    }
    chunks
}

/// A PUT (PutObject, or UploadPart with a query) of `body`, signed for streaming now.
fn streaming_put(server: &Server, target: &str, body: &SignedChunks) -> RawRequest {
    server.request("PUT", target).sign_streaming(ROOT, SystemTime::now(), body)
}

fn assert_ok(response: &RawResponse, what: &str) {
    assert_eq!(response.status, 200, "{what}: {}", response.text());
}

async fn get(server: &Server, key: &str) -> Vec<u8> {
    let got = server.s3().get_object().bucket(BUCKET).key(key).send().await.expect("get");
    got.body.collect().await.expect("body").into_bytes().to_vec()
}

async fn signed_streaming_puts_store_the_decoded_bytes(server: &Server) {
    with_bucket(server).await;
    let data = bytes(150_000, 1);
    // One 64 KiB chunk, then boundaries aligned to nothing, a one-byte chunk among them.
    let chunks = cut(&data, &[65_536, 65_536 + 12_345, 65_536 + 12_346, 149_999]);
    let crc = crc32_base64(&data);
    let cases = [
        ("no-trailer", SignedChunks::new(&chunks)),
        ("crc32-trailer", SignedChunks::new(&chunks).trailer("x-amz-checksum-crc32", &crc)),
    ];
    for (key, body) in cases {
        let response = server.send(&streaming_put(server, &object_path(key), &body)).await;
        assert_ok(&response, key);
        assert_eq!(response.header("etag").map(unquote), Some(md5_hex(&data).as_str()), "{key}: ETag");
        assert_eq!(get(server, key).await, data, "{key}: GET returns exactly the decoded bytes");

        let events = server.object_events(BUCKET, key);
        let puts = of_type(&events, "v1.object.put");
        assert_eq!(puts.len(), 1, "{key}: {:?}", events::types(&events));
        let content = &events::version(puts[0])["content"];
        assert_eq!((&content["size"], &content["blake3"]), (&json!(150_000), &json!(blake3_hex(&data))), "{key}");
        assert_eq!(content["etag"], md5_hex(&data), "{key}");
        if key == "crc32-trailer" {
            assert_eq!(content["checksums"]["CRC32"], crc, "{key}: the trailer's checksum is recorded");
        }
        // `aws-chunked` framed the request, not the object: neither kept nor served.
        assert_eq!(content["headers"].get("content-encoding"), None, "{key}: {content}");
        let head = server.s3().head_object().bucket(BUCKET).key(key).send().await.expect("head");
        assert_eq!(head.content_encoding(), None, "{key}");
    }
    // A coding of the object beside the framing is kept, without the framing.
    let body = SignedChunks::new(&chunks);
    let request = server.request("PUT", &object_path("gzip")).header("content-encoding", "aws-chunked,gzip");
    assert_ok(&server.send(&request.sign_streaming(ROOT, SystemTime::now(), &body)).await, "gzip");
    let got = server.s3().get_object().bucket(BUCKET).key("gzip").send().await.expect("get");
    assert_eq!(got.content_encoding(), Some("gzip"));
    assert_eq!(got.body.collect().await.expect("body").into_bytes().as_ref(), &data[..]);
}

async fn signed_streaming_parts_complete_into_the_decoded_bytes(server: &Server) {
    with_bucket(server).await;
    let s3 = server.s3();
    let (first, second) = (bytes(MIN_PART, 2), bytes(70_001, 3));
    let upload = s3.create_multipart_upload().bucket(BUCKET).key("parts").send().await.expect("create");
    let upload_id = upload.upload_id().expect("upload id").to_owned();
    let part_target = |number: u32| format!("{}?partNumber={number}&uploadId={upload_id}", object_path("parts"));

    // Part 1 in 64 KiB chunks with an odd one in the middle; part 2 with a signed trailer.
    let mut cuts: Vec<usize> = (1..80).map(|i| i * 65_536).collect();
    cuts.insert(39, 40 * 65_536 - 4_321);
    let part1 = SignedChunks::new(&cut(&first, &cuts));
    let part2 = SignedChunks::new(&cut(&second, &[1, 65_537])).trailer("x-amz-checksum-crc32", &crc32_base64(&second));
    let mut etags = Vec::new();
    for (number, body, data) in [(1, &part1, &first), (2, &part2, &second)] {
        let response = server.send(&streaming_put(server, &part_target(number), body)).await;
        assert_ok(&response, &format!("UploadPart {number}"));
        let etag = response.header("etag").expect("part ETag").to_owned();
        assert_eq!(unquote(&etag), md5_hex(data), "part {number} ETag is the MD5 of the decoded bytes");
        etags.push(etag);
    }
    let listed = s3.list_parts().bucket(BUCKET).key("parts").upload_id(&upload_id).send().await.expect("parts");
    let sizes: Vec<_> = listed.parts().iter().map(|p| p.size()).collect();
    assert_eq!(sizes, [Some(5 * 1024 * 1024), Some(70_001)]);

    let parts = etags.iter().zip(1..).map(|(etag, n)| CompletedPart::builder().part_number(n).e_tag(etag).build());
    s3.complete_multipart_upload()
        .bucket(BUCKET)
        .key("parts")
        .upload_id(&upload_id)
        .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts.collect())).build())
        .send()
        .await
        .expect("complete");

    let whole = [first.as_slice(), second.as_slice()].concat();
    assert_eq!(get(server, "parts").await, whole, "GET returns the decoded parts");
    let events = server.object_events(BUCKET, "parts");
    let completed = of_type(&events, "v1.multipart.completed");
    assert_eq!(completed.len(), 1, "{:?}", events::types(&events));
    let content = &events::version(completed[0])["content"];
    assert_eq!((&content["size"], &content["blake3"]), (&json!(whole.len()), &json!(blake3_hex(&whole))));
    let mut md5s = md5::Md5::new();
    for data in [&first, &second] {
        md5s.update(md5::Md5::digest(data));
    }
    assert_eq!(content["etag"], format!("{}-2", hex::encode(md5s.finalize())));
}

async fn wrong_chunk_signatures_store_nothing(server: &Server) {
    let before = with_bucket(server).await;
    let data = bytes(20_000, 4);
    let chunks = cut(&data, &[8_192, 8_193, 15_000]);
    let crc = crc32_base64(&data);
    let variants = [SignedChunks::new(&chunks), SignedChunks::new(&chunks).trailer("x-amz-checksum-crc32", &crc)];
    for body in &variants {
        // The first chunk, one in the middle, and the final empty chunk (after every byte).
        for index in [0, 2, chunks.len()] {
            let forged = body.clone().forge_chunk_signature(index);
            let what = format!("{} with chunk {index} forged", body.content_sha256());
            let response = server.send(&streaming_put(server, &object_path("forged"), &forged)).await;
            assert_refused(&response, 403, "SignatureDoesNotMatch", &what);
        }
    }
    server.assert_no_new_events(before, "forged chunk signatures");
    server.assert_absent(BUCKET, "forged").await;

    // UploadPart too.
    let s3 = server.s3();
    let upload = s3.create_multipart_upload().bucket(BUCKET).key("forged-part").send().await.expect("create");
    let upload_id = upload.upload_id().expect("upload id").to_owned();
    let after_create = server.events().len();
    let target = format!("{}?partNumber=1&uploadId={upload_id}", object_path("forged-part"));
    let forged = variants[1].clone().forge_chunk_signature(1);
    assert_refused(
        &server.send(&streaming_put(server, &target, &forged)).await,
        403,
        "SignatureDoesNotMatch",
        "UploadPart with a forged chunk",
    );
    server.assert_no_new_events(after_create, "forged part");
    let parts = s3.list_parts().bucket(BUCKET).key("forged-part").upload_id(&upload_id).send().await.expect("parts");
    assert!(parts.parts().is_empty(), "{parts:?}");

    // Signed right, the same bodies are stored.
    for body in &variants {
        assert_ok(&server.send(&streaming_put(server, &object_path("forged"), body)).await, body.content_sha256());
        assert_eq!(get(server, "forged").await, data);
    }
    assert_ok(&server.send(&streaming_put(server, &target, &variants[1])).await, "UploadPart signed right");
}

async fn wrong_trailer_checksums_are_bad_digests(server: &Server) {
    let before = with_bucket(server).await;
    let data = bytes(20_000, 5);
    let chunks = cut(&data, &[10_000, 10_007]);
    let wrong = SignedChunks::new(&chunks).trailer("x-amz-checksum-crc32", &crc32_base64(b"something else"));
    let response = server.send(&streaming_put(server, &object_path("digest"), &wrong)).await;
    assert_refused(&response, 400, "BadDigest", "signed trailer with a wrong CRC32");

    let s3 = server.s3();
    let upload = s3.create_multipart_upload().bucket(BUCKET).key("digest-part").send().await.expect("create");
    let upload_id = upload.upload_id().expect("upload id").to_owned();
    let after_create = server.events().len();
    assert_eq!(after_create, before + 1);
    let target = format!("{}?partNumber=1&uploadId={upload_id}", object_path("digest-part"));
    let response = server.send(&streaming_put(server, &target, &wrong)).await;
    assert_refused(&response, 400, "BadDigest", "UploadPart with a signed wrong CRC32 trailer");
    server.assert_no_new_events(after_create, "wrong trailer checksums");
    server.assert_absent(BUCKET, "digest").await;
    let parts = s3.list_parts().bucket(BUCKET).key("digest-part").upload_id(&upload_id).send().await.expect("parts");
    assert!(parts.parts().is_empty(), "{parts:?}");

    let right = SignedChunks::new(&chunks).trailer("x-amz-checksum-crc32", &crc32_base64(&data));
    assert_ok(&server.send(&streaming_put(server, &object_path("digest"), &right)).await, "right CRC32 trailer");
    assert_eq!(get(server, "digest").await, data);
}

async fn wrong_trailer_signatures_store_nothing(server: &Server) {
    let before = with_bucket(server).await;
    let data = bytes(20_000, 6);
    let chunks = cut(&data, &[10_000, 10_007]);
    // The checksum is right; only the trailer's signature is not.
    let body = SignedChunks::new(&chunks).trailer("x-amz-checksum-crc32", &crc32_base64(&data));
    let forged = body.clone().forge_trailer_signature();
    let response = server.send(&streaming_put(server, &object_path("trailer"), &forged)).await;
    assert_refused(&response, 403, "SignatureDoesNotMatch", "forged trailer signature");
    server.assert_no_new_events(before, "forged trailer signature");
    server.assert_absent(BUCKET, "trailer").await;

    assert_ok(&server.send(&streaming_put(server, &object_path("trailer"), &body)).await, "trailer signed right");
    assert_eq!(get(server, "trailer").await, data);
}

/// aws-sdk-s3 sends an in-memory body with its checksum in a header, but a body it streams
/// (a file) aws-chunked with a trailing CRC32: the path every SDK's file upload takes.
async fn sdk_file_uploads_store_the_decoded_bytes(server: &Server) {
    with_bucket(server).await;
    let s3 = server.s3();
    let dir = tempfile::tempdir().expect("temp folder");
    let file = |name: &str, data: &[u8]| {
        let path = dir.path().join(name);
        std::fs::write(&path, data).expect("write the file");
        path
    };

    let data = bytes(100_003, 7);
    let body = ByteStream::from_path(file("object", &data)).await.expect("file body");
    let out = s3.put_object().bucket(BUCKET).key("file").body(body).send().await.expect("put from a file");
    assert_eq!(out.checksum_crc32(), Some(crc32_base64(&data).as_str()), "the trailer's CRC32");
    assert_eq!(get(server, "file").await, data, "GET returns exactly the file");
    let events = server.object_events(BUCKET, "file");
    let content = &events::version(of_type(&events, "v1.object.put")[0])["content"];
    assert_eq!((&content["size"], &content["blake3"]), (&json!(data.len()), &json!(blake3_hex(&data))));
    let head = s3.head_object().bucket(BUCKET).key("file").send().await.expect("head");
    assert_eq!(head.content_encoding(), None, "the SDK's aws-chunked framing is not the object's coding");

    let part = bytes(MIN_PART + 17, 8);
    let upload = s3.create_multipart_upload().bucket(BUCKET).key("file-part").send().await.expect("create");
    let upload_id = upload.upload_id().expect("upload id");
    let body = ByteStream::from_path(file("part", &part)).await.expect("file body");
    let out = s3
        .upload_part()
        .bucket(BUCKET)
        .key("file-part")
        .upload_id(upload_id)
        .part_number(1)
        .body(body)
        .send()
        .await
        .expect("part from a file");
    assert_eq!(out.checksum_crc32(), Some(crc32_base64(&part).as_str()), "the part trailer's CRC32");
    let completed = CompletedPart::builder().part_number(1).set_e_tag(out.e_tag().map(str::to_owned)).build();
    s3.complete_multipart_upload()
        .bucket(BUCKET)
        .key("file-part")
        .upload_id(upload_id)
        .multipart_upload(CompletedMultipartUpload::builder().parts(completed).build())
        .send()
        .await
        .expect("complete");
    assert_eq!(get(server, "file-part").await, part, "GET returns exactly the file");
    let events = server.object_events(BUCKET, "file-part");
    let content = &events::version(of_type(&events, "v1.multipart.completed")[0])["content"];
    assert_eq!((&content["size"], &content["blake3"]), (&json!(part.len()), &json!(blake3_hex(&part))));
}

/// Found by an attacker's pass: s3s gathers each chunk whole before it checks its signature,
/// and a chunk may declare 4 GiB, so one upload could make the server hold gigabytes. A signed
/// chunk of up to 8 MiB is taken; one declared larger is refused as soon as its header is read.
#[tokio::test]
async fn signed_chunks_over_8_mib_are_refused_at_their_header() {
    const MAX_CHUNK: usize = 8 << 20;
    let server = Server::start(artifact_store_conformance::Transport::Http).await;
    let before = with_bucket(&server).await;
    let data = bytes(MAX_CHUNK, 8);
    let largest = SignedChunks::new(&[&data]);
    assert_ok(&server.send(&streaming_put(&server, &object_path("largest"), &largest)).await, "an 8 MiB chunk");
    assert_eq!(get(&server, "largest").await, data);
    // The read's record is committed after its response.
    let events =
        server.wait_for_events(BUCKET, "largest", |events| of_type(events, "v1.object.retrieved").len() == 1).await;
    assert_eq!(events.len(), 2, "its put and its read");
    let after_largest = server.events().len();
    assert_eq!(after_largest, before + 2, "its put and its read");

    // A request signed for a 64 KiB chunk whose body declares one byte over, or 512 MiB; to
    // PutObject, and to calls whose body is a document (found by a review: they were not
    // bounded), PutObjectTagging among them, which is authorized only once its body is read.
    let targets = [
        (MAX_CHUNK + 1, object_path("too-large")),
        (512 << 20, object_path("too-large")),
        (512 << 20, format!("{}?tagging", object_path("largest"))),
    ];
    for (declared, target) in targets {
        let signed = streaming_put(&server, &target, &SignedChunks::new(&[&data[..65_536]]));
        let header = format!("{declared:x};chunk-signature={}\r\n", "0".repeat(64));
        let body = [header.as_bytes(), &data[..signed.body_len() - header.len()]].concat();
        let response = server.send(&signed.body(body)).await;
        assert_refused(&response, 400, "InvalidRequest", &format!("a chunk of {declared} bytes to {target}"));
        assert!(response.text().contains("aws-chunked chunk is larger"), "{target}: {}", response.text());
    }
    server.assert_no_new_events(after_largest, "chunks over the bound");
    server.assert_absent(BUCKET, "too-large").await;
}

/// An unsigned aws-chunked body may carry chunks of any size (the JS SDK sends each `data`
/// event of a stream as one chunk): they are cut into 1 MiB chunks before s3s gathers them.
#[tokio::test]
async fn unsigned_chunks_of_any_size_are_taken() {
    let server = Server::start(artifact_store_conformance::Transport::Http).await;
    with_bucket(&server).await;
    let data = bytes(20 << 20, 9);
    let crc = crc32_base64(&data);
    let request = server
        .request("PUT", &object_path("one-chunk"))
        .header("content-encoding", "aws-chunked")
        .header("x-amz-decoded-content-length", &data.len().to_string())
        .header("x-amz-trailer", "x-amz-checksum-crc32")
        .body(artifact_store_conformance::raw::aws_chunked(&[&data], &[("x-amz-checksum-crc32", &crc)]))
        .sign(ROOT, SystemTime::now(), artifact_store_conformance::raw::Payload::StreamingUnsignedTrailer);
    assert_ok(&server.send(&request).await, "one chunk of 20 MiB");
    assert_eq!(get(&server, "one-chunk").await, data);
}
