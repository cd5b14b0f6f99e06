//! aws-sdk-s3 (Rust) against the real binary, over HTTP and HTTPS, for every operation the
//! gateway implements. With its defaults the SDK sends a CRC32 with every upload: as an
//! `x-amz-checksum-crc32` header for in-memory bodies (these tests), as an aws-chunked
//! trailer for streaming bodies (see `streaming.rs`). Each test checks the bytes that come
//! back and the events the registry recorded.

use std::time::{Duration, SystemTime};

use artifact_store_conformance::events::Event;
use artifact_store_conformance::events::{self, of_type, types};
use artifact_store_conformance::sdk::{create_bucket, failure, get, put, unquote};
use artifact_store_conformance::{
    ACCESS_KEY, Server, Transport, blake3_hex, bytes, crc32_base64, md5_hex, over_http_and_https, sha256_base64,
};
use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::{ByteStream, DateTime, DateTimeFormat};
use aws_sdk_s3::types::{
    ChecksumAlgorithm, ChecksumMode, CompletedMultipartUpload, CompletedPart, Delete, EncodingType, MetadataDirective,
    ObjectIdentifier, Tag, Tagging, TaggingDirective,
};
use md5::Digest as _;
use serde_json::{Value, json};

/// Parts other than the last must be at least this large.
const MIN_PART: usize = 5 * 1024 * 1024;

over_http_and_https!(
    buckets_are_created_listed_located_and_deleted,
    bucket_names_follow_aws_rules,
    objects_round_trip_with_metadata_and_headers,
    times_are_whole_seconds_and_an_untyped_object_is_binary,
    ranges_return_the_requested_bytes,
    conditional_reads_follow_rfc_9110,
    response_overrides_replace_stored_headers,
    part_numbers_select_parts,
    conditional_writes_refuse_or_accept,
    tags_are_set_by_header_and_by_tagging_calls,
    copies_keep_or_replace_metadata_across_buckets,
    delete_objects_removes_many_keys,
    list_objects_v2_prefixes_pages_and_encodes,
    list_objects_v1_pages_with_markers,
    multipart_uploads_complete_with_copied_parts,
    multipart_uploads_abort_and_list,
    every_checksum_algorithm_is_verified_and_returned,
    default_checksum_is_recorded,
);

/// A `v1.object.put` (or completed upload) by the root key for exactly these bytes.
fn assert_version_of(event: &Event, bucket: &str, key: &str, data: &[u8]) {
    assert_eq!(event.actor, ACCESS_KEY, "actor of event {}", event.sequence);
    assert_eq!(event.context.access_key.as_deref(), Some(ACCESS_KEY));
    let put = events::version(event);
    assert_eq!((&put["bucket"], &put["key"]), (&json!(bucket), &json!(key)));
    assert_eq!(put["content"]["size"], data.len(), "recorded size");
    assert_eq!(put["content"]["blake3"], blake3_hex(data), "recorded BLAKE3");
}

/// The one `v1.object.put` of a key, checked against its bytes.
fn assert_single_put(server: &Server, bucket: &str, key: &str, data: &[u8]) -> Event {
    let events = server.object_events(bucket, key);
    let puts = of_type(&events, "v1.object.put");
    assert_eq!(puts.len(), 1, "puts of {key}: {:?}", types(&events));
    assert_version_of(puts[0], bucket, key, data);
    puts[0].clone()
}

fn assert_all_by_root(events: &[Event]) {
    for event in events {
        assert_eq!(event.actor, ACCESS_KEY, "actor of {} ({})", event.sequence, event.event_type);
    }
}

async fn buckets_are_created_listed_located_and_deleted(server: &Server) {
    let s3 = server.s3();
    let bucket = "bucket-lifecycle";
    create_bucket(&s3, bucket).await;
    s3.head_bucket().bucket(bucket).send().await.expect("head bucket");
    let listed = s3.list_buckets().send().await.expect("list buckets");
    assert!(listed.buckets().iter().any(|b| b.name() == Some(bucket)), "{listed:?}");
    let location = s3.get_bucket_location().bucket(bucket).send().await.expect("location");
    // us-east-1 buckets have an empty location constraint.
    assert_eq!(location.location_constraint().map_or("", |c| c.as_str()), "");

    // Re-creating one's own bucket is answered 200 in us-east-1 (AWS's legacy behaviour there).
    s3.create_bucket().bucket(bucket).send().await.expect("re-create own bucket in us-east-1");

    put(&s3, bucket, "keep", b"x").await;
    assert_eq!(failure(s3.delete_bucket().bucket(bucket).send().await), (409, "BucketNotEmpty".into()));
    s3.delete_object().bucket(bucket).key("keep").send().await.expect("delete object");
    s3.delete_bucket().bucket(bucket).send().await.expect("delete bucket");
    assert_eq!(failure(s3.head_bucket().bucket(bucket).send().await).0, 404);
    assert_eq!(failure(s3.get_bucket_location().bucket(bucket).send().await), (404, "NoSuchBucket".into()));
    let listed = s3.list_buckets().send().await.expect("list buckets");
    assert!(!listed.buckets().iter().any(|b| b.name() == Some(bucket)));

    let events = server.bucket_events(bucket);
    assert_eq!(types(&events), ["v1.bucket.created", "v1.object.put", "v1.object.deleted", "v1.bucket.deleted"]);
    assert_all_by_root(&events);
}

async fn bucket_names_follow_aws_rules(server: &Server) {
    let s3 = server.s3();
    let longest = "b".repeat(63);
    let names = ["abc", "a.b-c.d", "0-digits-first-9", longest.as_str()];
    for name in names {
        create_bucket(&s3, name).await;
        s3.head_bucket().bucket(name).send().await.unwrap_or_else(|e| panic!("head {name}: {e:?}"));
    }
    let listed = s3.list_buckets().send().await.expect("list buckets");
    let mut listed: Vec<&str> = listed.buckets().iter().filter_map(|b| b.name()).collect();
    listed.sort_unstable();
    let mut expected = names.to_vec();
    expected.sort_unstable();
    assert_eq!(listed, expected);
    for name in names {
        let created = server.bucket_events(name);
        assert_eq!(types(&created), ["v1.bucket.created"], "{name}");
        assert_all_by_root(&created);
    }
}

async fn objects_round_trip_with_metadata_and_headers(server: &Server) {
    let s3 = server.s3();
    let bucket = "objects-round-trip";
    create_bucket(&s3, bucket).await;
    let data = bytes(300 * 1024, 1);
    let key = "builds/1.0/app bundle+ü.tar";
    let expires = DateTime::from_secs(1_900_000_000);
    let out = s3
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from(data.clone()))
        .content_type("application/x-tar")
        .cache_control("max-age=60")
        .content_disposition("attachment; filename=\"app.tar\"")
        .content_encoding("identity")
        .content_language("en-GB")
        .expires(expires)
        .metadata("pipeline", "release")
        .metadata("commit", "abc123")
        .send()
        .await
        .expect("put");
    assert_eq!(unquote(out.e_tag().expect("ETag")), md5_hex(&data));

    let got = s3.get_object().bucket(bucket).key(key).send().await.expect("get");
    assert_eq!(got.content_type(), Some("application/x-tar"));
    assert_eq!(got.cache_control(), Some("max-age=60"));
    assert_eq!(got.content_disposition(), Some("attachment; filename=\"app.tar\""));
    assert_eq!(got.content_encoding(), Some("identity"));
    assert_eq!(got.content_language(), Some("en-GB"));
    let got_expires = got.expires_string().expect("Expires");
    assert_eq!(DateTime::from_str(got_expires, DateTimeFormat::HttpDate).expect("HTTP date"), expires);
    let metadata = got.metadata().expect("metadata");
    assert_eq!(metadata.get("pipeline").map(String::as_str), Some("release"));
    assert_eq!(metadata.get("commit").map(String::as_str), Some("abc123"));
    assert_eq!(got.content_length(), Some(data.len() as i64));
    assert_eq!(unquote(got.e_tag().expect("ETag")), md5_hex(&data));
    assert_eq!(got.body.collect().await.expect("body").into_bytes().as_ref(), data.as_slice());

    let head = s3.head_object().bucket(bucket).key(key).send().await.expect("head");
    assert_eq!(head.content_length(), Some(data.len() as i64));
    assert_eq!(unquote(head.e_tag().expect("ETag")), md5_hex(&data));
    assert_eq!(head.content_type(), Some("application/x-tar"));
    assert_eq!(head.metadata().and_then(|m| m.get("pipeline")).map(String::as_str), Some("release"));

    let event = assert_single_put(server, bucket, key, &data);
    let put = &events::version(&event)["content"];
    assert_eq!(put["etag"], md5_hex(&data));
    assert_eq!(put["content_type"], "application/x-tar");
    assert_eq!(put["user_metadata"]["pipeline"], "release");
    assert_eq!(put["headers"]["cache-control"], "max-age=60");
    assert_eq!(put["headers"]["content-language"], "en-GB");
    assert_eq!(events::version(&event)["origin"], json!({"kind": "put"}));

    // Both reads are recorded once their bodies have been sent.
    let events = server.wait_for_events(bucket, key, |events| of_type(events, "v1.object.retrieved").len() >= 2).await;
    for event in of_type(&events, "v1.object.retrieved") {
        let read = &event.payload;
        assert_eq!(event.actor, ACCESS_KEY);
        match read["method"].as_str() {
            Some("GET") => assert_eq!(read["bytes"], data.len()),
            Some("HEAD") => assert_eq!(read["bytes"], 0),
            other => panic!("retrieval method {other:?}"),
        }
    }

    s3.delete_object().bucket(bucket).key(key).send().await.expect("delete");
    assert_eq!(failure(s3.get_object().bucket(bucket).key(key).send().await), (404, "NoSuchKey".into()));
    assert_eq!(failure(s3.head_object().bucket(bucket).key(key).send().await).0, 404);
    let events = server.object_events(bucket, key);
    let deleted = of_type(&events, "v1.object.deleted");
    assert_eq!(deleted.len(), 1, "{:?}", types(&events));
    assert_eq!(deleted[0].actor, ACCESS_KEY);
    // Deleting what is not there succeeds, as on S3, and records nothing.
    s3.delete_object().bucket(bucket).key("never-written").send().await.expect("delete missing");
    assert!(server.object_events(bucket, "never-written").is_empty());
}

/// Times as S3 gives them, in whole seconds, so that a listing's time equals a HEAD's and a
/// file's mtime set from it (`aws s3 sync --exact-timestamps` compares them exactly); and an
/// object written without a `Content-Type` is served as `binary/octet-stream`, as S3 serves it.
async fn times_are_whole_seconds_and_an_untyped_object_is_binary(server: &Server) {
    let s3 = server.s3();
    let bucket = "times";
    create_bucket(&s3, bucket).await;
    let untyped = server.request("PUT", &format!("/{bucket}/untyped")).body(b"bytes".to_vec());
    let response = server
        .send(&untyped.sign(
            artifact_store_conformance::raw::ROOT,
            SystemTime::now(),
            artifact_store_conformance::raw::Payload::Signed,
        ))
        .await;
    assert_eq!(response.status, 200, "{}", response.text());
    let head = s3.head_object().bucket(bucket).key("untyped").send().await.expect("head");
    assert_eq!(head.content_type(), Some("binary/octet-stream"));
    let upload = s3.create_multipart_upload().bucket(bucket).key("parts").send().await.expect("create");
    let listed = s3.list_objects_v2().bucket(bucket).send().await.expect("list");
    let modified = listed.contents()[0].last_modified().expect("a time");
    assert_eq!(modified.subsec_nanos(), 0, "a listing's time is whole seconds: {modified:?}");
    assert_eq!(head.last_modified(), Some(modified), "a HEAD and a listing give the same time");
    let versions = s3.list_object_versions().bucket(bucket).send().await.expect("versions");
    assert!(versions.versions().iter().all(|v| v.last_modified().is_some_and(|t| t.subsec_nanos() == 0)));
    let uploads = s3.list_multipart_uploads().bucket(bucket).send().await.expect("uploads");
    assert!(uploads.uploads().iter().all(|u| u.initiated().is_some_and(|t| t.subsec_nanos() == 0)), "{uploads:?}");
    let buckets = s3.list_buckets().send().await.expect("buckets");
    assert!(buckets.buckets().iter().all(|b| b.creation_date().is_some_and(|t| t.subsec_nanos() == 0)));
    s3.abort_multipart_upload()
        .bucket(bucket)
        .key("parts")
        .upload_id(upload.upload_id().expect("id"))
        .send()
        .await
        .expect("abort");
}

async fn ranges_return_the_requested_bytes(server: &Server) {
    let s3 = server.s3();
    let bucket = "ranges";
    create_bucket(&s3, bucket).await;
    let data = bytes(1000, 2);
    put(&s3, bucket, "r", &data).await;
    for (range, first, last) in
        [("bytes=0-9", 0, 9), ("bytes=990-", 990, 999), ("bytes=-5", 995, 999), ("bytes=100-2000", 100, 999)]
    {
        let out = s3.get_object().bucket(bucket).key("r").range(range).send().await.expect(range);
        assert_eq!(out.content_range(), Some(format!("bytes {first}-{last}/1000").as_str()), "{range}");
        assert_eq!(out.content_length(), Some(last - first + 1), "{range}");
        let body = out.body.collect().await.expect("body").into_bytes();
        assert_eq!(body.as_ref(), &data[first as usize..=last as usize], "{range}");
    }
    let events = server.wait_for_events(bucket, "r", |events| of_type(events, "v1.object.retrieved").len() >= 4).await;
    let ranges: Vec<&Value> =
        of_type(&events, "v1.object.retrieved").into_iter().map(|e| &e.payload["range"]).collect();
    assert!(ranges.iter().all(|range| range.is_string()), "every ranged read records its range: {ranges:?}");
    assert_single_put(server, bucket, "r", &data);
}

async fn conditional_reads_follow_rfc_9110(server: &Server) {
    let s3 = server.s3();
    let bucket = "conditional-reads";
    create_bucket(&s3, bucket).await;
    let data = bytes(64, 3);
    let etag = put(&s3, bucket, "c", &data).await;
    let quoted = format!("\"{etag}\"");
    let past = DateTime::from(SystemTime::now() - Duration::from_secs(86_400));
    let future = DateTime::from(SystemTime::now() + Duration::from_secs(86_400));
    let get = || s3.get_object().bucket(bucket).key("c");

    let out = get().if_match(&quoted).send().await.expect("If-Match the ETag");
    assert_eq!(out.body.collect().await.expect("body").into_bytes().as_ref(), data.as_slice());
    assert_eq!(failure(get().if_match("\"0000\"").send().await), (412, "PreconditionFailed".into()));
    assert_eq!(failure(get().if_none_match(&quoted).send().await).0, 304);
    get().if_none_match("\"0000\"").send().await.expect("If-None-Match another ETag");
    assert_eq!(failure(get().if_modified_since(future).send().await).0, 304);
    get().if_modified_since(past).send().await.expect("modified since yesterday");
    assert_eq!(failure(get().if_unmodified_since(past).send().await), (412, "PreconditionFailed".into()));
    get().if_unmodified_since(future).send().await.expect("unmodified since tomorrow");
    // If-Match wins over If-Unmodified-Since; If-None-Match wins over If-Modified-Since.
    get().if_match(&quoted).if_unmodified_since(past).send().await.expect("If-Match wins");
    assert_eq!(failure(get().if_none_match(&quoted).if_modified_since(past).send().await).0, 304);
    let head = || s3.head_object().bucket(bucket).key("c");
    assert_eq!(failure(head().if_match("\"0000\"").send().await).0, 412);
    assert_eq!(failure(head().if_none_match(&quoted).send().await).0, 304);
    assert_single_put(server, bucket, "c", &data);
}

async fn response_overrides_replace_stored_headers(server: &Server) {
    let s3 = server.s3();
    let bucket = "response-overrides";
    create_bucket(&s3, bucket).await;
    let data = bytes(128, 4);
    s3.put_object()
        .bucket(bucket)
        .key("o")
        .body(ByteStream::from(data.clone()))
        .content_type("text/plain")
        .send()
        .await
        .expect("put");
    let expires = DateTime::from_secs(2_000_000_000);
    let out = s3
        .get_object()
        .bucket(bucket)
        .key("o")
        .response_content_type("application/json")
        .response_content_disposition("inline")
        .response_cache_control("no-store")
        .response_content_language("fr")
        .response_content_encoding("identity")
        .response_expires(expires)
        .send()
        .await
        .expect("get with overrides");
    assert_eq!(out.content_type(), Some("application/json"));
    assert_eq!(out.content_disposition(), Some("inline"));
    assert_eq!(out.cache_control(), Some("no-store"));
    assert_eq!(out.content_language(), Some("fr"));
    assert_eq!(out.content_encoding(), Some("identity"));
    let got_expires = out.expires_string().expect("Expires");
    assert_eq!(DateTime::from_str(got_expires, DateTimeFormat::HttpDate).expect("HTTP date"), expires);
    assert_eq!(out.body.collect().await.expect("body").into_bytes().as_ref(), data.as_slice());
    // The stored headers are unchanged.
    let head = s3.head_object().bucket(bucket).key("o").send().await.expect("head");
    assert_eq!(head.content_type(), Some("text/plain"));
    assert_single_put(server, bucket, "o", &data);
}

/// Uploads `parts` as a multipart object and returns the completion's ETag.
async fn upload_multipart(s3: &Client, bucket: &str, key: &str, parts: &[&[u8]]) -> String {
    let upload = s3.create_multipart_upload().bucket(bucket).key(key).send().await.expect("create upload");
    let upload_id = upload.upload_id().expect("upload id");
    let mut completed = Vec::new();
    for (number, part) in (1..).zip(parts) {
        let out = s3
            .upload_part()
            .bucket(bucket)
            .key(key)
            .upload_id(upload_id)
            .part_number(number)
            .body(ByteStream::from(part.to_vec()))
            .send()
            .await
            .unwrap_or_else(|e| panic!("upload part {number}: {e:?}"));
        completed.push(CompletedPart::builder().part_number(number).e_tag(out.e_tag().expect("ETag")).build());
    }
    let done = s3
        .complete_multipart_upload()
        .bucket(bucket)
        .key(key)
        .upload_id(upload_id)
        .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(completed)).build())
        .send()
        .await
        .expect("complete upload");
    unquote(done.e_tag().expect("ETag")).to_owned()
}

/// `md5(concat(part md5s))-N`.
fn multipart_etag(parts: &[&[u8]]) -> String {
    let mut md5 = md5::Md5::new();
    for part in parts {
        md5.update(md5::Md5::digest(part));
    }
    format!("{}-{}", hex::encode(md5.finalize()), parts.len())
}

async fn part_numbers_select_parts(server: &Server) {
    let s3 = server.s3();
    let bucket = "part-numbers";
    create_bucket(&s3, bucket).await;
    let single = bytes(100, 5);
    put(&s3, bucket, "single", &single).await;
    let out = s3.get_object().bucket(bucket).key("single").part_number(1).send().await.expect("part 1 of a PUT");
    assert_eq!(out.body.collect().await.expect("body").into_bytes().as_ref(), single.as_slice());

    let (first, second) = (bytes(MIN_PART, 6), bytes(1000, 7));
    let etag = upload_multipart(&s3, bucket, "multi", &[&first, &second]).await;
    assert_eq!(etag, multipart_etag(&[&first, &second]));
    let out = s3.get_object().bucket(bucket).key("multi").part_number(2).send().await.expect("part 2");
    assert_eq!(out.parts_count(), Some(2));
    assert_eq!(out.content_length(), Some(1000));
    let total = MIN_PART + 1000;
    assert_eq!(out.content_range(), Some(format!("bytes {MIN_PART}-{}/{total}", total - 1).as_str()));
    assert_eq!(out.body.collect().await.expect("body").into_bytes().as_ref(), second.as_slice());
    let head = s3.head_object().bucket(bucket).key("multi").part_number(1).send().await.expect("head part 1");
    assert_eq!(head.content_length(), Some(MIN_PART as i64));
    assert_eq!(head.parts_count(), Some(2));
    assert_eq!(
        failure(s3.get_object().bucket(bucket).key("multi").part_number(3).send().await),
        (416, "InvalidPartNumber".into())
    );
}

async fn conditional_writes_refuse_or_accept(server: &Server) {
    let s3 = server.s3();
    let bucket = "conditional-writes";
    create_bucket(&s3, bucket).await;
    let (first, second, third) = (bytes(10, 8), bytes(20, 9), bytes(30, 10));
    let put_if = |data: &[u8]| s3.put_object().bucket(bucket).key("w").body(ByteStream::from(data.to_vec()));

    let out = put_if(&first).if_none_match("*").send().await.expect("create if absent");
    let etag = out.e_tag().expect("ETag").to_owned();
    assert_eq!(failure(put_if(&second).if_none_match("*").send().await), (412, "PreconditionFailed".into()));
    assert_eq!(failure(put_if(&second).if_match("\"00000000000000000000000000000000\"").send().await).0, 412);
    put_if(&third).if_match(&etag).send().await.expect("replace if unchanged");
    assert_eq!(get(&s3, bucket, "w").await, third);

    let events = server.object_events(bucket, "w");
    let puts = of_type(&events, "v1.object.put");
    assert_eq!(puts.len(), 2, "only the two accepted writes are recorded: {:?}", types(&events));
    assert_version_of(puts[0], bucket, "w", &first);
    assert_version_of(puts[1], bucket, "w", &third);
}

async fn tags_are_set_by_header_and_by_tagging_calls(server: &Server) {
    let s3 = server.s3();
    let bucket = "tagging";
    create_bucket(&s3, bucket).await;
    let data = bytes(50, 11);
    s3.put_object()
        .bucket(bucket)
        .key("t")
        .body(ByteStream::from(data.clone()))
        .tagging("team=build%20infra&stage=rc")
        .send()
        .await
        .expect("put with tags");
    let tags = |out: &[Tag]| {
        let mut pairs: Vec<(String, String)> = out.iter().map(|t| (t.key().to_owned(), t.value().to_owned())).collect();
        pairs.sort();
        pairs
    };
    let got = s3.get_object_tagging().bucket(bucket).key("t").send().await.expect("get tagging");
    assert_eq!(tags(got.tag_set()), [("stage".into(), "rc".into()), ("team".into(), "build infra".into())]);
    let head = s3.get_object().bucket(bucket).key("t").send().await.expect("get");
    assert_eq!(head.tag_count(), Some(2));

    let tagging = Tagging::builder()
        .tag_set(Tag::builder().key("retain").value("7y").build().expect("tag"))
        .build()
        .expect("tagging");
    s3.put_object_tagging().bucket(bucket).key("t").tagging(tagging).send().await.expect("put tagging");
    let got = s3.get_object_tagging().bucket(bucket).key("t").send().await.expect("get tagging");
    assert_eq!(tags(got.tag_set()), [("retain".into(), "7y".into())]);

    s3.delete_object_tagging().bucket(bucket).key("t").send().await.expect("delete tagging");
    let got = s3.get_object_tagging().bucket(bucket).key("t").send().await.expect("get tagging");
    assert!(got.tag_set().is_empty());
    assert_eq!(get(&s3, bucket, "t").await, data, "tagging leaves the bytes alone");

    let events = server.object_events(bucket, "t");
    let put = assert_single_put(server, bucket, "t", &data);
    assert_eq!(events::version(&put)["content"]["tags"]["team"], "build infra");
    let set: Vec<_> = of_type(&events, "v1.object.tagging.set").into_iter().map(|e| &e.payload["tags"]).collect();
    assert_eq!(set.len(), 2, "{:?}", types(&events));
    assert_eq!(set[0]["retain"], "7y");
    assert_eq!(*set[1], json!({}), "the second set clears the tags");
}

async fn copies_keep_or_replace_metadata_across_buckets(server: &Server) {
    let s3 = server.s3();
    let (src, dst) = ("copy-source", "copy-target");
    create_bucket(&s3, src).await;
    create_bucket(&s3, dst).await;
    let data = bytes(70 * 1024, 12);
    s3.put_object()
        .bucket(src)
        .key("orig")
        .body(ByteStream::from(data.clone()))
        .content_type("text/csv")
        .metadata("origin", "ci")
        .tagging("k=v")
        .send()
        .await
        .expect("put source");

    let copied = s3.copy_object().bucket(src).key("same-bucket").copy_source(format!("{src}/orig")).send().await;
    let copied = copied.expect("copy with COPY directive");
    assert_eq!(unquote(copied.copy_object_result().and_then(|r| r.e_tag()).expect("ETag")), md5_hex(&data));
    let out = s3.get_object().bucket(src).key("same-bucket").send().await.expect("get copy");
    assert_eq!(out.content_type(), Some("text/csv"));
    assert_eq!(out.metadata().and_then(|m| m.get("origin")).map(String::as_str), Some("ci"));
    assert_eq!(out.body.collect().await.expect("body").into_bytes().as_ref(), data.as_slice());

    s3.copy_object()
        .bucket(dst)
        .key("replaced")
        .copy_source(format!("{src}/orig"))
        .metadata_directive(MetadataDirective::Replace)
        .content_type("application/octet-stream")
        .metadata("stage", "release")
        .tagging_directive(TaggingDirective::Replace)
        .tagging("promoted=yes")
        .send()
        .await
        .expect("copy across buckets with REPLACE");
    let out = s3.get_object().bucket(dst).key("replaced").send().await.expect("get copy");
    assert_eq!(out.content_type(), Some("application/octet-stream"));
    let metadata = out.metadata().cloned().unwrap_or_default();
    assert_eq!(metadata.get("stage").map(String::as_str), Some("release"));
    assert!(!metadata.contains_key("origin"), "REPLACE drops the old metadata: {metadata:?}");
    assert_eq!(out.body.collect().await.expect("body").into_bytes().as_ref(), data.as_slice());
    let tags = s3.get_object_tagging().bucket(dst).key("replaced").send().await.expect("tags");
    assert_eq!(tags.tag_set().iter().map(|t| (t.key(), t.value())).collect::<Vec<_>>(), [("promoted", "yes")]);

    // Copying an object onto itself without changing anything is refused, as on S3.
    let itself = s3.copy_object().bucket(src).key("orig").copy_source(format!("{src}/orig")).send().await;
    assert_eq!(failure(itself), (400, "InvalidRequest".into()));
    let missing = s3.copy_object().bucket(dst).key("x").copy_source(format!("{src}/missing")).send().await;
    assert_eq!(failure(missing), (404, "NoSuchKey".into()));

    let source_version = events::version(&assert_single_put(server, src, "orig", &data))["version_id"].clone();
    for (bucket, key) in [(src, "same-bucket"), (dst, "replaced")] {
        let copy = assert_single_put(server, bucket, key, &data);
        assert_eq!(
            events::version(&copy)["origin"],
            json!({"kind": "copy", "bucket": src, "key": "orig", "version_id": source_version}),
            "{bucket}/{key}"
        );
    }
}

async fn delete_objects_removes_many_keys(server: &Server) {
    let s3 = server.s3();
    let bucket = "delete-objects";
    create_bucket(&s3, bucket).await;
    for (i, key) in ["a", "b", "c"].into_iter().enumerate() {
        put(&s3, bucket, key, &bytes(10, 20 + i as u64)).await;
    }
    let ids = ["a", "b", "never-existed"]
        .map(|key| ObjectIdentifier::builder().key(key).build().expect("identifier"))
        .to_vec();
    let out = s3
        .delete_objects()
        .bucket(bucket)
        .delete(Delete::builder().set_objects(Some(ids)).build().expect("delete"))
        .send()
        .await
        .expect("delete objects");
    let mut deleted: Vec<&str> = out.deleted().iter().filter_map(|d| d.key()).collect();
    deleted.sort_unstable();
    assert_eq!(deleted, ["a", "b", "never-existed"]);
    assert!(out.errors().is_empty(), "{:?}", out.errors());

    let listed = s3.list_objects_v2().bucket(bucket).send().await.expect("list");
    assert_eq!(listed.contents().iter().filter_map(|o| o.key()).collect::<Vec<_>>(), ["c"]);
    for key in ["a", "b"] {
        let events = server.object_events(bucket, key);
        assert_eq!(types(&events), ["v1.object.put", "v1.object.deleted"], "{key}");
        assert_all_by_root(&events);
    }
    assert!(server.object_events(bucket, "never-existed").is_empty());

    // Quiet mode reports only errors.
    let quiet = Delete::builder()
        .objects(ObjectIdentifier::builder().key("c").build().expect("identifier"))
        .quiet(true)
        .build()
        .expect("delete");
    let out = s3.delete_objects().bucket(bucket).delete(quiet).send().await.expect("quiet delete");
    assert!(out.deleted().is_empty() && out.errors().is_empty(), "{out:?}");
    assert_eq!(s3.list_objects_v2().bucket(bucket).send().await.expect("list").key_count(), Some(0));
}

const LIST_KEYS: [&str; 7] = ["a/1", "a/2", "a/b/3", "b/1", "c", "d e+f", "é/x"];

async fn put_list_keys(s3: &Client, bucket: &str) {
    create_bucket(s3, bucket).await;
    for (i, key) in LIST_KEYS.into_iter().enumerate() {
        put(s3, bucket, key, &bytes(i + 1, 30 + i as u64)).await;
    }
}

async fn list_objects_v2_prefixes_pages_and_encodes(server: &Server) {
    let s3 = server.s3();
    let bucket = "list-v2";
    put_list_keys(&s3, bucket).await;
    let list = || s3.list_objects_v2().bucket(bucket);

    let all = list().send().await.expect("list all");
    assert_eq!(all.contents().iter().filter_map(|o| o.key()).collect::<Vec<_>>(), LIST_KEYS);
    assert_eq!(all.key_count(), Some(7));
    let sizes: Vec<i64> = all.contents().iter().filter_map(|o| o.size()).collect();
    assert_eq!(sizes, [1, 2, 3, 4, 5, 6, 7]);

    let nested = list().delimiter("/").send().await.expect("delimiter");
    assert_eq!(nested.contents().iter().filter_map(|o| o.key()).collect::<Vec<_>>(), ["c", "d e+f"]);
    let prefixes: Vec<&str> = nested.common_prefixes().iter().filter_map(|p| p.prefix()).collect();
    assert_eq!(prefixes, ["a/", "b/", "é/"]);

    let in_a = list().prefix("a/").delimiter("/").send().await.expect("prefix");
    assert_eq!(in_a.contents().iter().filter_map(|o| o.key()).collect::<Vec<_>>(), ["a/1", "a/2"]);
    assert_eq!(in_a.common_prefixes().iter().filter_map(|p| p.prefix()).collect::<Vec<_>>(), ["a/b/"]);

    let after = list().start_after("b/1").send().await.expect("start-after");
    assert_eq!(after.contents().iter().filter_map(|o| o.key()).collect::<Vec<_>>(), ["c", "d e+f", "é/x"]);

    // Pages of two, following continuation tokens, give every key once, in order.
    let mut keys = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = list().max_keys(2).set_continuation_token(token.clone()).send().await.expect("page");
        pages += 1;
        keys.extend(page.contents().iter().filter_map(|o| o.key()).map(str::to_owned));
        if page.is_truncated() != Some(true) {
            break;
        }
        token = Some(page.next_continuation_token().expect("next token").to_owned());
    }
    assert_eq!(keys, LIST_KEYS);
    assert_eq!(pages, 4);

    // With a delimiter, a page boundary inside a common prefix does not repeat the prefix.
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = list().delimiter("/").max_keys(1).set_continuation_token(token.clone()).send().await.expect("page");
        seen.extend(page.contents().iter().filter_map(|o| o.key()).map(str::to_owned));
        seen.extend(page.common_prefixes().iter().filter_map(|p| p.prefix()).map(str::to_owned));
        if page.is_truncated() != Some(true) {
            break;
        }
        token = Some(page.next_continuation_token().expect("next token").to_owned());
    }
    assert_eq!(seen, ["a/", "b/", "c", "d e+f", "é/"]);

    // encoding-type=url: the SDK hands the encoded keys through as the server sent them.
    let encoded = list().encoding_type(EncodingType::Url).send().await.expect("encoded");
    let keys: Vec<&str> = encoded.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(keys, ["a/1", "a/2", "a/b/3", "b/1", "c", "d%20e%2Bf", "%C3%A9/x"]);

    assert_eq!(failure(s3.list_objects_v2().bucket("no-such-bucket-here").send().await), (404, "NoSuchBucket".into()));
}

async fn list_objects_v1_pages_with_markers(server: &Server) {
    let s3 = server.s3();
    let bucket = "list-v1";
    put_list_keys(&s3, bucket).await;
    let list = || s3.list_objects().bucket(bucket);

    let all = list().send().await.expect("list all");
    assert_eq!(all.contents().iter().filter_map(|o| o.key()).collect::<Vec<_>>(), LIST_KEYS);

    // Without a delimiter the next marker is the last key of the page.
    let mut keys: Vec<String> = Vec::new();
    loop {
        let page = list().max_keys(3).set_marker(keys.last().cloned()).send().await.expect("page");
        keys.extend(page.contents().iter().filter_map(|o| o.key()).map(str::to_owned));
        if page.is_truncated() != Some(true) {
            break;
        }
    }
    assert_eq!(keys, LIST_KEYS);

    // With a delimiter the server names the next marker.
    let page = list().delimiter("/").max_keys(2).send().await.expect("page");
    assert_eq!(page.is_truncated(), Some(true));
    assert_eq!(page.common_prefixes().iter().filter_map(|p| p.prefix()).collect::<Vec<_>>(), ["a/", "b/"]);
    let marker = page.next_marker().expect("NextMarker with a delimiter").to_owned();
    let rest = list().delimiter("/").marker(marker).send().await.expect("rest");
    assert_eq!(rest.contents().iter().filter_map(|o| o.key()).collect::<Vec<_>>(), ["c", "d e+f"]);
    assert_eq!(rest.common_prefixes().iter().filter_map(|p| p.prefix()).collect::<Vec<_>>(), ["é/"]);

    let encoded = list().prefix("d").encoding_type(EncodingType::Url).send().await.expect("encoded");
    assert_eq!(encoded.contents().iter().filter_map(|o| o.key()).collect::<Vec<_>>(), ["d%20e%2Bf"]);
}

async fn multipart_uploads_complete_with_copied_parts(server: &Server) {
    let s3 = server.s3();
    let bucket = "multipart-complete";
    create_bucket(&s3, bucket).await;
    // Part 1 is copied from a range of this object; part 2 is uploaded.
    let source = bytes(MIN_PART + 100, 40);
    put(&s3, bucket, "source", &source).await;
    let key = "release/app.bin";
    let upload = s3
        .create_multipart_upload()
        .bucket(bucket)
        .key(key)
        .content_type("application/octet-stream")
        .metadata("build", "42")
        .send()
        .await
        .expect("create upload");
    let upload_id = upload.upload_id().expect("upload id").to_owned();

    let copied = s3
        .upload_part_copy()
        .bucket(bucket)
        .key(key)
        .upload_id(&upload_id)
        .part_number(1)
        .copy_source(format!("{bucket}/source"))
        .copy_source_range(format!("bytes=50-{}", 50 + MIN_PART - 1))
        .send()
        .await
        .expect("upload part copy");
    let part1 = &source[50..50 + MIN_PART];
    let part1_etag = copied.copy_part_result().and_then(|r| r.e_tag()).expect("ETag").to_owned();
    assert_eq!(unquote(&part1_etag), md5_hex(part1));
    let part2 = bytes(4096, 41);
    let uploaded = s3
        .upload_part()
        .bucket(bucket)
        .key(key)
        .upload_id(&upload_id)
        .part_number(2)
        .body(ByteStream::from(part2.clone()))
        .send()
        .await
        .expect("upload part");
    let part2_etag = uploaded.e_tag().expect("ETag").to_owned();
    assert_eq!(unquote(&part2_etag), md5_hex(&part2));

    let parts = s3.list_parts().bucket(bucket).key(key).upload_id(&upload_id).send().await.expect("list parts");
    let listed: Vec<(Option<i32>, Option<i64>, Option<&str>)> =
        parts.parts().iter().map(|p| (p.part_number(), p.size(), p.e_tag().map(unquote))).collect();
    assert_eq!(
        listed,
        [
            (Some(1), Some(MIN_PART as i64), Some(md5_hex(part1).as_str())),
            (Some(2), Some(4096), Some(md5_hex(&part2).as_str()))
        ]
    );
    let page = s3.list_parts().bucket(bucket).key(key).upload_id(&upload_id).max_parts(1).send().await.expect("page");
    assert_eq!(page.is_truncated(), Some(true));
    assert_eq!(page.next_part_number_marker(), Some("1"));

    let uploads = s3.list_multipart_uploads().bucket(bucket).send().await.expect("list uploads");
    assert_eq!(uploads.uploads().iter().filter_map(|u| u.upload_id()).collect::<Vec<_>>(), [upload_id.as_str()]);

    let completed = [(1, &part1_etag), (2, &part2_etag)]
        .map(|(n, etag)| CompletedPart::builder().part_number(n).e_tag(etag).build())
        .to_vec();
    let done = s3
        .complete_multipart_upload()
        .bucket(bucket)
        .key(key)
        .upload_id(&upload_id)
        .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(completed)).build())
        .send()
        .await
        .expect("complete");
    let whole = [part1, part2.as_slice()].concat();
    assert_eq!(unquote(done.e_tag().expect("ETag")), multipart_etag(&[part1, &part2]));
    // The object's URL, absolute as AWS gives it (the JS SDK's upload() hands it to callers).
    assert_eq!(done.location(), Some(format!("{}/{bucket}/{key}", server.endpoint()).as_str()));

    let out = s3.get_object().bucket(bucket).key(key).send().await.expect("get");
    assert_eq!(out.content_type(), Some("application/octet-stream"));
    assert_eq!(out.metadata().and_then(|m| m.get("build")).map(String::as_str), Some("42"));
    assert_eq!(out.body.collect().await.expect("body").into_bytes().as_ref(), whole.as_slice());
    let uploads = s3.list_multipart_uploads().bucket(bucket).send().await.expect("list uploads");
    assert!(uploads.uploads().is_empty(), "a completed upload is no longer listed");

    let events = server.object_events(bucket, key);
    assert_eq!(
        types(&events).into_iter().filter(|t| *t != "v1.object.retrieved").collect::<Vec<_>>(),
        ["v1.multipart.created", "v1.multipart.part.uploaded", "v1.multipart.part.uploaded", "v1.multipart.completed"]
    );
    assert_all_by_root(&events);
    let completed = of_type(&events, "v1.multipart.completed");
    assert_version_of(completed[0], bucket, key, &whole);
    let version = events::version(completed[0]);
    assert_eq!(version["content"]["etag"], multipart_etag(&[part1, &part2]));
    assert_eq!(version["origin"], json!({"kind": "multipart", "upload_id": upload_id}));
    let sizes: Vec<u64> = of_type(&events, "v1.multipart.part.uploaded")
        .into_iter()
        .map(|e| e.payload["part"]["size"].as_u64().expect("a part size"))
        .collect();
    assert_eq!(sizes, [MIN_PART as u64, 4096]);
}

async fn multipart_uploads_abort_and_list(server: &Server) {
    let s3 = server.s3();
    let bucket = "multipart-abort";
    create_bucket(&s3, bucket).await;
    let mut ids = Vec::new();
    for key in ["x/one", "x/two", "y/three"] {
        let upload = s3.create_multipart_upload().bucket(bucket).key(key).send().await.expect("create");
        ids.push(upload.upload_id().expect("upload id").to_owned());
    }
    let data = bytes(1234, 50);
    s3.upload_part()
        .bucket(bucket)
        .key("x/one")
        .upload_id(&ids[0])
        .part_number(1)
        .body(ByteStream::from(data))
        .send()
        .await
        .expect("upload part");

    let listed = s3.list_multipart_uploads().bucket(bucket).send().await.expect("list uploads");
    let keys: Vec<&str> = listed.uploads().iter().filter_map(|u| u.key()).collect();
    assert_eq!(keys, ["x/one", "x/two", "y/three"]);
    let prefixed = s3.list_multipart_uploads().bucket(bucket).prefix("x/").send().await.expect("prefix");
    assert_eq!(prefixed.uploads().len(), 2);
    let page = s3.list_multipart_uploads().bucket(bucket).max_uploads(1).send().await.expect("page");
    assert_eq!(page.is_truncated(), Some(true));
    assert_eq!(page.next_key_marker(), Some("x/one"));

    s3.abort_multipart_upload().bucket(bucket).key("x/one").upload_id(&ids[0]).send().await.expect("abort");
    let listed = s3.list_multipart_uploads().bucket(bucket).send().await.expect("list uploads");
    assert_eq!(listed.uploads().iter().filter_map(|u| u.key()).collect::<Vec<_>>(), ["x/two", "y/three"]);
    let gone = s3.list_parts().bucket(bucket).key("x/one").upload_id(&ids[0]).send().await;
    assert_eq!(failure(gone), (404, "NoSuchUpload".into()));
    assert_eq!(failure(s3.head_object().bucket(bucket).key("x/one").send().await).0, 404);

    let events = server.object_events(bucket, "x/one");
    assert_eq!(types(&events), ["v1.multipart.created", "v1.multipart.part.uploaded", "v1.multipart.aborted"]);
    assert_all_by_root(&events);
}

/// The checksum S3 returns for `algorithm`, from any output that carries the five fields.
macro_rules! checksum_of {
    ($out:expr, $algorithm:expr) => {
        match $algorithm {
            ChecksumAlgorithm::Crc32 => $out.checksum_crc32(),
            ChecksumAlgorithm::Crc32C => $out.checksum_crc32_c(),
            ChecksumAlgorithm::Crc64Nvme => $out.checksum_crc64_nvme(),
            ChecksumAlgorithm::Sha1 => $out.checksum_sha1(),
            ChecksumAlgorithm::Sha256 => $out.checksum_sha256(),
            other => panic!("no such checksum: {other:?}"),
        }
        .map(str::to_owned)
    };
}

async fn every_checksum_algorithm_is_verified_and_returned(server: &Server) {
    let s3 = server.s3();
    let bucket = "checksums";
    create_bucket(&s3, bucket).await;
    let algorithms = [
        (ChecksumAlgorithm::Crc32, "CRC32"),
        (ChecksumAlgorithm::Crc32C, "CRC32C"),
        (ChecksumAlgorithm::Crc64Nvme, "CRC64NVME"),
        (ChecksumAlgorithm::Sha1, "SHA1"),
        (ChecksumAlgorithm::Sha256, "SHA256"),
    ];
    for (i, (algorithm, name)) in algorithms.into_iter().enumerate() {
        let key = format!("sum-{name}");
        let data = bytes(100_000 + i, 60 + i as u64);
        let out = s3
            .put_object()
            .bucket(bucket)
            .key(&key)
            .body(ByteStream::from(data.clone()))
            .checksum_algorithm(algorithm.clone())
            .send()
            .await
            .unwrap_or_else(|e| panic!("put with {name}: {e:?}"));
        let sent = checksum_of!(out, algorithm.clone()).unwrap_or_else(|| panic!("PutObject returns the {name}"));
        match name {
            "CRC32" => assert_eq!(sent, crc32_base64(&data)),
            "SHA256" => assert_eq!(sent, sha256_base64(&data)),
            _ => {}
        }

        // With checksum mode on, the SDK also validates the body against the returned value.
        let got = s3
            .get_object()
            .bucket(bucket)
            .key(&key)
            .checksum_mode(ChecksumMode::Enabled)
            .send()
            .await
            .unwrap_or_else(|e| panic!("get {name}: {e:?}"));
        assert_eq!(checksum_of!(got, algorithm.clone()).as_deref(), Some(sent.as_str()), "GET {name}");
        assert_eq!(got.body.collect().await.expect("body").into_bytes().as_ref(), data.as_slice(), "{name}");
        let head =
            s3.head_object().bucket(bucket).key(&key).checksum_mode(ChecksumMode::Enabled).send().await.expect("head");
        assert_eq!(checksum_of!(head, algorithm.clone()).as_deref(), Some(sent.as_str()), "HEAD {name}");

        let event = assert_single_put(server, bucket, &key, &data);
        let recorded = &events::version(&event)["content"]["checksums"];
        assert_eq!(recorded[name], sent, "recorded {name}: {recorded}");
    }

    // A multipart upload announcing CRC32 gets the COMPOSITE checksum of its parts.
    let (first, second) = (bytes(MIN_PART, 70), bytes(999, 71));
    let key = "composite";
    let upload = s3
        .create_multipart_upload()
        .bucket(bucket)
        .key(key)
        .checksum_algorithm(ChecksumAlgorithm::Crc32)
        .send()
        .await
        .expect("create upload");
    let upload_id = upload.upload_id().expect("upload id");
    let mut completed = Vec::new();
    for (number, part) in [(1, &first), (2, &second)] {
        let out = s3
            .upload_part()
            .bucket(bucket)
            .key(key)
            .upload_id(upload_id)
            .part_number(number)
            .checksum_algorithm(ChecksumAlgorithm::Crc32)
            .body(ByteStream::from(part.clone()))
            .send()
            .await
            .expect("upload part");
        assert_eq!(out.checksum_crc32(), Some(crc32_base64(part).as_str()), "part {number}");
        completed.push(
            CompletedPart::builder()
                .part_number(number)
                .e_tag(out.e_tag().expect("ETag"))
                .checksum_crc32(out.checksum_crc32().expect("CRC32"))
                .build(),
        );
    }
    let done = s3
        .complete_multipart_upload()
        .bucket(bucket)
        .key(key)
        .upload_id(upload_id)
        .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(completed)).build())
        .send()
        .await
        .expect("complete");
    let composite = {
        let mut crcs = Vec::new();
        crcs.extend_from_slice(&crc32fast::hash(&first).to_be_bytes());
        crcs.extend_from_slice(&crc32fast::hash(&second).to_be_bytes());
        format!("{}-2", crc32_base64(&crcs))
    };
    assert_eq!(done.checksum_crc32(), Some(composite.as_str()));
    let whole = [first.as_slice(), second.as_slice()].concat();
    assert_eq!(get(&s3, bucket, key).await, whole);
    let events = server.object_events(bucket, key);
    assert_version_of(of_type(&events, "v1.multipart.completed")[0], bucket, key, &whole);
}

async fn default_checksum_is_recorded(server: &Server) {
    // With its defaults the SDK sends a CRC32 with every upload (a header for in-memory
    // bodies); the gateway verifies and keeps it.
    let s3 = server.s3();
    let bucket = "default-checksum";
    create_bucket(&s3, bucket).await;
    let data = bytes(256 * 1024 + 17, 80);
    let out = s3
        .put_object()
        .bucket(bucket)
        .key("d")
        .body(ByteStream::from(data.clone()))
        .send()
        .await
        .expect("put with default checksum");
    assert_eq!(out.checksum_crc32(), Some(crc32_base64(&data).as_str()));
    let event = assert_single_put(server, bucket, "d", &data);
    assert_eq!(events::version(&event)["content"]["checksums"]["CRC32"], crc32_base64(&data));
    assert_eq!(get(&s3, bucket, "d").await, data);
}

/// Found by an attacker's pass: with a delimiter whose last UTF-8 byte is 0xBF (`¿`, `ÿ`), a
/// listing walked its common prefix key by key and reported a page truncated after it, whose
/// next page was empty. Each common prefix is now skipped whole, whatever the delimiter.
#[tokio::test]
async fn listings_roll_up_under_any_delimiter_and_truncate_only_before_more() {
    let server = Server::start(Transport::Http).await;
    let s3 = server.s3();
    create_bucket(&s3, "delimiters").await;
    for key in ["c¿1", "c¿2", "c¿3", "cz", "dÿ1", "dÿ2", "日本/1"] {
        put(&s3, "delimiters", key, b"x").await;
    }
    let cases = [
        // Keys compare as UTF-8 bytes: `cz` before `c¿`.
        ("¿", "c", vec!["cz", "c¿"]),
        ("ÿ", "d", vec!["dÿ"]),
        ("本", "", vec!["cz", "c¿1", "c¿2", "c¿3", "dÿ1", "dÿ2", "日本"]),
    ];
    for (delimiter, prefix, expected) in cases {
        let mut seen = Vec::new();
        let mut token: Option<String> = None;
        let mut pages = 0;
        loop {
            let page = s3
                .list_objects_v2()
                .bucket("delimiters")
                .prefix(prefix)
                .delimiter(delimiter)
                .max_keys(1)
                .set_continuation_token(token.clone())
                .send()
                .await
                .expect("a page");
            pages += 1;
            let entries: Vec<String> = page
                .contents()
                .iter()
                .filter_map(|o| o.key())
                .chain(page.common_prefixes().iter().filter_map(|p| p.prefix()))
                .map(str::to_owned)
                .collect();
            assert_eq!(entries.len(), 1, "{delimiter}: page {pages} holds one entry, none empty: {entries:?}");
            seen.extend(entries);
            if page.is_truncated() != Some(true) {
                break;
            }
            token = Some(page.next_continuation_token().expect("next token").to_owned());
            assert!(pages < 20, "{delimiter}: paging does not end");
        }
        assert_eq!(seen, expected, "{delimiter}");
        let versions = s3.list_object_versions().bucket("delimiters").prefix(prefix).delimiter(delimiter).send().await;
        let versions = versions.expect("versions");
        let rolled: Vec<&str> = versions.common_prefixes().iter().filter_map(|p| p.prefix()).collect();
        let expected_prefixes: Vec<&str> = expected.iter().copied().filter(|e| e.ends_with(delimiter)).collect();
        assert_eq!(rolled, expected_prefixes, "{delimiter}: versions roll up alike");
    }
}
