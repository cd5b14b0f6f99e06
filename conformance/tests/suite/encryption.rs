//! Server-side encryption (SSE-S3, `x-amz-server-side-encryption: AES256`) with aws-sdk-s3
//! against the real binary, on the local store and on the S3 backend: the store holds only
//! ciphertext, every read (whole, ranged across segment boundaries, HEAD, a copy) gives back
//! the plaintext and says it was encrypted, the registry records the plaintext's digests and a
//! wrapped key (never the master key), damaged ciphertext is refused as a corrupt blob, and
//! `verify` decrypts to check. SSE-C (the client's key with every request, never stored) is
//! refused over plain HTTP, needs the key for every read, copy and part, and tells a wrong key
//! (403) from a missing one (400). SSE-KMS (`aws:kms`) wraps data keys with the gateway's own KMS
//! keys (`artifact-store kms create`), named by id, ARN or alias, and answers with the key's
//! ARN. A multipart upload asked to be encrypted encrypts every part
//! (copied ones too) under a key of its own, and reads back across part boundaries. A bucket's
//! default encryption (Put/Get/DeleteBucketEncryption) encrypts writes that ask for nothing,
//! copies of unencrypted objects included, and a bucket policy can require the header. Malformed, contradictory and not yet built SSE requests get
//! AWS's answers and leave nothing behind.

use artifact_store_conformance::events::{of_type, version};
use artifact_store_conformance::sdk::{create_bucket, failure, get, get_range, put, upload_part};
use artifact_store_conformance::server::upstream_env;
use artifact_store_conformance::upstream::RunUpstream;
use artifact_store_conformance::{Server, Transport, blake3_hex, bytes, md5_base64, md5_hex};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    CompletedMultipartUpload, CompletedPart, ServerSideEncryption, ServerSideEncryptionByDefault,
    ServerSideEncryptionConfiguration, ServerSideEncryptionRule,
};

const BUCKET: &str = "sealed";
const KIB: usize = 1024;
/// Plaintext bytes per stored segment, and what each adds.
const SEGMENT: usize = 64 * KIB;
const TAG: usize = 16;

async fn put_encrypted(s3: &aws_sdk_s3::Client, key: &str, data: &[u8]) {
    let out = s3
        .put_object()
        .bucket(BUCKET)
        .key(key)
        .server_side_encryption(ServerSideEncryption::Aes256)
        .body(ByteStream::from(data.to_vec()))
        .send()
        .await
        .unwrap_or_else(|err| panic!("encrypted PUT of {key}: {err:?}"));
    assert_eq!(out.server_side_encryption(), Some(&ServerSideEncryption::Aes256), "{key}: PUT answer");
    assert_eq!(out.e_tag(), Some(format!("\"{}\"", md5_hex(data)).as_str()));
}

/// The recorded content of the latest version of `key`.
fn recorded(server: &Server, key: &str) -> serde_json::Value {
    let events = server.object_events(BUCKET, key);
    let mut created: Vec<_> = of_type(&events, "v1.object.put");
    created.extend(of_type(&events, "v1.multipart.completed"));
    let newest = created.into_iter().max_by_key(|e| e.sequence).expect("an event creating a version");
    version(newest)["content"].clone()
}

/// The bytes the store holds for the single part of `key`: the blob file, the upstream object,
/// or the registry's inline row.
async fn stored(server: &Server, key: &str) -> Vec<u8> {
    let blob = recorded(server, key)["parts"][0]["blob"].as_str().expect("a blob id").to_owned();
    if let Some(digest) = blob.strip_prefix("inline:") {
        let conn = rusqlite::Connection::open(server.registry_path()).expect("open the log");
        let digest = hex::decode(digest).expect("hex");
        return conn
            .query_row("SELECT bytes FROM inline_blobs WHERE digest = ?1", [digest], |row| row.get(0))
            .expect("the inline row");
    }
    if server.on_s3_backend() {
        let (client, bucket, key) = upstream_object(server, &blob);
        let object = client.get_object().bucket(bucket).key(key).send().await.expect("upstream GET");
        return object.body.collect().await.expect("upstream body").into_bytes().to_vec();
    }
    std::fs::read(server.data_dir().join("blobs").join(&blob[..2]).join(&blob)).expect("the blob file")
}

fn upstream_object(server: &Server, blob: &str) -> (aws_sdk_s3::Client, String, String) {
    let upstream = RunUpstream::from_env().expect("the S3 backend's upstream");
    let bucket = server.setting("ARTIFACT_STORE_UPSTREAM_BUCKET").expect("upstream bucket").to_owned();
    let prefix = server.setting("ARTIFACT_STORE_UPSTREAM_PREFIX").unwrap_or_default();
    (upstream.client(), bucket, format!("{prefix}{blob}"))
}

/// Replaces the stored bytes of `key` (a blob, not inline) with `bytes`, behind the gateway.
async fn overwrite_stored(server: &Server, key: &str, bytes: Vec<u8>) {
    let blob = recorded(server, key)["parts"][0]["blob"].as_str().expect("a blob id").to_owned();
    if server.on_s3_backend() {
        let (client, bucket, key) = upstream_object(server, &blob);
        client.put_object().bucket(bucket).key(key).body(ByteStream::from(bytes)).send().await.expect("upstream PUT");
    } else {
        std::fs::write(server.data_dir().join("blobs").join(&blob[..2]).join(&blob), bytes).expect("the blob file");
    }
}

/// The bytes the store holds for all the parts of `key`, one after the other (on the S3
/// backend a multipart object is one upstream object).
async fn stored_parts(server: &Server, key: &str) -> Vec<u8> {
    if server.on_s3_backend() {
        return stored(server, key).await;
    }
    let content = recorded(server, key);
    let parts = content["parts"].as_array().expect("parts");
    let mut all = Vec::new();
    for part in parts {
        let blob = part["blob"].as_str().expect("a blob id");
        all.extend(std::fs::read(server.data_dir().join("blobs").join(&blob[..2]).join(blob)).expect("a part's blob"));
        assert!(part["wrapped_key"].is_object(), "every part has its own key: {part}");
    }
    all
}

/// Whether a 32-byte window of `plain` (one from every 256 KiB) shows up in `stored`.
fn leaks(plain: &[u8], stored: &[u8]) -> bool {
    plain.chunks(256 * KIB).filter(|c| c.len() >= 32).any(|c| memchr::memmem::find(stored, &c[..32]).is_some())
}

#[tokio::test]
async fn sse_s3_objects_are_stored_as_ciphertext_and_read_back_whole_and_in_ranges() {
    let server = Server::start_with(Transport::Http, &["--inline-max-bytes", "4096"], upstream_env()).await;
    let s3 = server.s3();
    create_bucket(&s3, BUCKET).await;
    let master_key = std::fs::read_to_string(server.data_dir().join("keys/master.key")).expect("the master key file");
    let mode = std::fs::metadata(server.data_dir().join("keys/master.key")).expect("key file").permissions();
    assert_eq!(std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777, 0o600, "the master key is private");

    // Inline (on the local store), one segment, a segment and a byte, several MiB.
    let sizes = [0, 3000, SEGMENT, SEGMENT + 1, 3 * 1024 * KIB + 17];
    for (i, &len) in sizes.iter().enumerate() {
        let key = format!("object-{len}");
        let data = bytes(len, 40 + i as u64);
        put_encrypted(&s3, &key, &data).await;

        let content = recorded(&server, &key);
        assert_eq!(content["encryption"], "AES256", "{key}");
        assert_eq!(content["blake3"], blake3_hex(&data), "{key}: the plaintext's digest");
        assert_eq!(content["size"], len, "{key}: the plaintext's size");
        let wrapped = &content["parts"][0]["wrapped_key"];
        assert!(wrapped["key_id"].is_string() && wrapped["wrapped"].is_string(), "{key}: {content}");

        let on_disk = stored(&server, &key).await;
        assert_eq!(on_disk.len(), len + TAG * len.div_ceil(SEGMENT).max(1), "{key}: stored size");
        assert!(!leaks(&data, &on_disk), "{key}: the store holds plaintext");

        let got = s3.get_object().bucket(BUCKET).key(&key).send().await.expect("GET");
        assert_eq!(got.server_side_encryption(), Some(&ServerSideEncryption::Aes256), "{key}: GET answer");
        assert_eq!(got.body.collect().await.expect("body").into_bytes().as_ref(), &data[..], "{key}");
        let head = s3.head_object().bucket(BUCKET).key(&key).send().await.expect("HEAD");
        assert_eq!(head.server_side_encryption(), Some(&ServerSideEncryption::Aes256), "{key}: HEAD answer");
        assert_eq!(head.content_length(), Some(len as i64));
    }

    // Ranges inside a segment, across one boundary, across many, and to the end.
    let key = format!("object-{}", 3 * 1024 * KIB + 17);
    let data = bytes(3 * 1024 * KIB + 17, 44);
    let last = data.len() - 1;
    for (first, end) in [(10, 20), (SEGMENT - 5, SEGMENT + 5), (100_000, 2_500_000), (last - 70_000, last)] {
        let range = format!("bytes={first}-{end}");
        assert_eq!(get_range(&s3, BUCKET, &key, Some(&range)).await, &data[first..=end], "{range}");
    }
    assert_eq!(get_range(&s3, BUCKET, &key, Some("bytes=-100")).await, &data[data.len() - 100..]);

    // An unencrypted PUT next to them says nothing of encryption and is stored as it is.
    let plain = bytes(200 * KIB, 50);
    put(&s3, BUCKET, "plain", &plain).await;
    let got = s3.get_object().bucket(BUCKET).key("plain").send().await.expect("GET");
    assert_eq!(got.server_side_encryption(), None);
    assert_eq!(stored(&server, "plain").await, plain);

    // The registry holds wrapped keys only: the master key appears in no event.
    let events = server.object_events(BUCKET, &key);
    let text = serde_json::to_string(&events.iter().map(|e| &e.payload).collect::<Vec<_>>()).expect("json");
    assert!(!text.contains(master_key.trim()), "the master key is not in the log");
    assert!(!server.log().contains(master_key.trim()), "nor in the gateway's log");
}

#[tokio::test]
async fn damaged_ciphertext_is_refused_as_a_corrupt_blob_and_verify_names_it() {
    let server = Server::start_with(Transport::Http, &[], upstream_env()).await;
    let s3 = server.s3();
    create_bucket(&s3, BUCKET).await;
    let data = bytes(3 * 1024 * KIB, 60);
    put_encrypted(&s3, "damaged", &data).await;
    let intact = bytes(100 * KIB, 61);
    put_encrypted(&s3, "intact", &intact).await;
    // An object deleted since: its blob, referenced by no version now, is still named by the
    // key its event recorded, and is not mistaken for a damaged one.
    put_encrypted(&s3, "deleted", &bytes(100 * KIB, 62)).await;
    s3.delete_object().bucket(BUCKET).key("deleted").send().await.expect("delete");
    // A write refused after its blob was placed leaves a blob no event names, under a key
    // nothing recorded: gc's to remove, not a damaged blob.
    let refused = s3
        .put_object()
        .bucket(BUCKET)
        .key("intact")
        .if_none_match("*")
        .server_side_encryption(ServerSideEncryption::Aes256)
        .body(ByteStream::from(bytes(100 * KIB, 63)))
        .send()
        .await;
    assert_eq!(failure(refused).0, 412, "If-None-Match on an existing key");
    let verified = server.cli(&["verify"]);
    assert!(verified.status.success(), "verify decrypts and accepts intact blobs: {verified:#?}");

    // One byte of the ciphertext of the third MiB changes.
    let mut on_disk = stored(&server, "damaged").await;
    let at = 2 * 1024 * KIB + 512 * KIB;
    on_disk[at] ^= 0x01;
    overwrite_stored(&server, "damaged", on_disk).await;

    let whole = s3.get_object().bucket(BUCKET).key("damaged").send().await;
    match whole {
        Err(err) => assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(500), "{err:?}"),
        Ok(response) => assert!(response.body.collect().await.is_err(), "a complete body from forged ciphertext"),
    }
    let over = format!("bytes={}-{}", at - 1000, at);
    let refused = s3.get_object().bucket(BUCKET).key("damaged").range(over).send().await;
    assert_eq!(failure(refused), (500, "InternalError".to_owned()), "a range over the damaged segment");
    let away = get_range(&s3, BUCKET, "damaged", Some("bytes=0-99999")).await;
    assert_eq!(away, &data[..100_000], "a range of intact segments is served");
    let events = server.wait_for_events(BUCKET, "damaged", |e| !of_type(e, "v1.blob.corrupt").is_empty()).await;
    assert_eq!(of_type(&events, "v1.blob.corrupt")[0].payload["reason"], "digest_mismatch");
    assert_eq!(get(&s3, BUCKET, "intact").await, intact);
    // A copy that must decrypt and encrypt again (under another key) refuses a damaged source
    // as a read does (not as a bad body of the client's), and records nothing.
    let copied = s3
        .copy_object()
        .bucket(BUCKET)
        .key("kms-copy")
        .copy_source(format!("{BUCKET}/damaged"))
        .server_side_encryption(ServerSideEncryption::AwsKms)
        .send()
        .await;
    assert_eq!(failure(copied), (500, "InternalError".to_owned()), "a copy of a damaged source");
    assert!(server.object_events(BUCKET, "kms-copy").is_empty(), "the refused copy recorded");

    let failed = server.cli(&["verify"]);
    let blob = recorded(&server, "damaged")["parts"][0]["blob"].as_str().expect("blob").to_owned();
    assert!(!failed.status.success(), "verify fails on forged ciphertext");
    assert!(String::from_utf8_lossy(&failed.stdout).contains(&blob), "and names the blob: {failed:#?}");
}

#[tokio::test]
async fn a_copy_of_an_encrypted_object_stays_encrypted() {
    let server = Server::start_with(Transport::Http, &[], upstream_env()).await;
    let s3 = server.s3();
    create_bucket(&s3, BUCKET).await;
    let data = bytes(150 * KIB, 70);
    put_encrypted(&s3, "source", &data).await;
    for (target, asked) in [("copy", None), ("copy-asked", Some(ServerSideEncryption::Aes256))] {
        let copied = s3
            .copy_object()
            .bucket(BUCKET)
            .key(target)
            .copy_source(format!("{BUCKET}/source"))
            .set_server_side_encryption(asked)
            .send()
            .await
            .expect("copy");
        assert_eq!(copied.server_side_encryption(), Some(&ServerSideEncryption::Aes256), "{target}");
        let got = s3.get_object().bucket(BUCKET).key(target).send().await.expect("GET the copy");
        assert_eq!(got.server_side_encryption(), Some(&ServerSideEncryption::Aes256), "{target}");
        assert_eq!(got.body.collect().await.expect("body").into_bytes().as_ref(), &data[..], "{target}");
    }
    // Re-encrypting an object in place is a change S3 allows as a copy onto itself.
    s3.copy_object()
        .bucket(BUCKET)
        .key("source")
        .copy_source(format!("{BUCKET}/source"))
        .server_side_encryption(ServerSideEncryption::Aes256)
        .send()
        .await
        .expect("copy onto itself with an encryption header");
}

#[tokio::test]
async fn malformed_contradictory_and_unbuilt_sse_requests_get_aws_answers_and_store_nothing() {
    let server = Server::start_with(Transport::Http, &[], upstream_env()).await;
    let s3 = server.s3();
    create_bucket(&s3, BUCKET).await;
    put(&s3, BUCKET, "plain", b"plain bytes").await;
    let before = server.events().len();
    let body = || ByteStream::from(b"secret".to_vec());

    let unknown = s3
        .put_object()
        .bucket(BUCKET)
        .key("k")
        .server_side_encryption(ServerSideEncryption::from("AES512"))
        .body(body())
        .send()
        .await;
    assert_eq!(failure(unknown), (400, "InvalidArgument".to_owned()), "an unknown mode");
    let kms_key_without_kms = s3
        .put_object()
        .bucket(BUCKET)
        .key("k")
        .server_side_encryption(ServerSideEncryption::Aes256)
        .ssekms_key_id("alias/some-key")
        .body(body())
        .send()
        .await;
    assert_eq!(failure(kms_key_without_kms), (400, "InvalidArgument".to_owned()), "a KMS key id with AES256");
    let customer_key = "0123456789abcdef0123456789abcdef";
    let both = s3
        .put_object()
        .bucket(BUCKET)
        .key("k")
        .server_side_encryption(ServerSideEncryption::Aes256)
        .sse_customer_algorithm("AES256")
        .sse_customer_key(base64_of(customer_key.as_bytes()))
        .sse_customer_key_md5(md5_base64(customer_key.as_bytes()))
        .body(body())
        .send()
        .await;
    assert_eq!(failure(both), (400, "InvalidArgument".to_owned()), "SSE-C beside SSE-S3");

    let unknown_key = s3
        .put_object()
        .bucket(BUCKET)
        .key("k")
        .server_side_encryption(ServerSideEncryption::AwsKms)
        .ssekms_key_id("alias/nobody")
        .body(body());
    assert_eq!(failure(unknown_key.send().await), (400, "KMS.NotFoundException".to_owned()), "an unknown KMS key");

    // Not built yet: refused rather than stored unencrypted.
    let dsse = s3.put_object().bucket(BUCKET).key("k").server_side_encryption(ServerSideEncryption::AwsKmsDsse);
    assert_eq!(failure(dsse.body(body()).send().await), (501, "NotImplemented".to_owned()), "aws:kms:dsse");
    // SSE-C over plain HTTP, as AWS refuses it; and malformed SSE-C headers.
    let customer = |key: &str, md5: String| {
        s3.put_object()
            .bucket(BUCKET)
            .key("k")
            .sse_customer_algorithm("AES256")
            .sse_customer_key(base64_of(key.as_bytes()))
            .sse_customer_key_md5(md5)
            .body(body())
    };
    let over_http = customer(customer_key, md5_base64(customer_key.as_bytes())).send().await;
    assert_eq!(failure(over_http), (400, "InvalidRequest".to_owned()), "SSE-C over plain HTTP");
    let wrong_md5 = customer(customer_key, md5_base64(b"another key")).send().await;
    assert_eq!(failure(wrong_md5), (400, "InvalidArgument".to_owned()), "a key that does not match its MD5");
    let short = customer("too short", md5_base64(b"too short")).send().await;
    assert_eq!(failure(short), (400, "InvalidArgument".to_owned()), "a key of the wrong length");

    assert_eq!(server.events().len(), before, "no refused request left an event");
    let missing = s3.head_object().bucket(BUCKET).key("k").send().await;
    assert_eq!(failure(missing).0, 404, "no object was stored");
}

fn base64_of(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[tokio::test]
async fn an_encrypted_multipart_upload_encrypts_every_part_and_reads_across_them() {
    let server = Server::start_with(Transport::Http, &[], upstream_env()).await;
    let s3 = server.s3();
    create_bucket(&s3, BUCKET).await;
    let source = bytes(5 * 1024 * KIB + 3, 80);
    put_encrypted(&s3, "source", &source).await;
    let plain_source = bytes(200 * KIB, 81);
    put(&s3, BUCKET, "plain-source", &plain_source).await;

    let created = s3
        .create_multipart_upload()
        .bucket(BUCKET)
        .key("multi")
        .server_side_encryption(ServerSideEncryption::Aes256)
        .send()
        .await
        .expect("create an encrypted upload");
    assert_eq!(created.server_side_encryption(), Some(&ServerSideEncryption::Aes256));
    let upload_id = created.upload_id().expect("upload id");
    // Parts of uneven sizes (their digests are read back at completion), and two copied in:
    // from an encrypted source and from a plain one.
    let (first, third) = (bytes(5 * 1024 * KIB, 82), bytes(6 * 1024 * KIB + 7, 83));
    let mut completed = Vec::new();
    for (number, data) in [(1, &first), (3, &third)] {
        let part = s3
            .upload_part()
            .bucket(BUCKET)
            .key("multi")
            .upload_id(upload_id)
            .part_number(number)
            .body(ByteStream::from(data.clone()))
            .send()
            .await
            .expect("upload a part");
        assert_eq!(part.server_side_encryption(), Some(&ServerSideEncryption::Aes256), "part {number}");
        assert_eq!(part.e_tag(), Some(format!("\"{}\"", md5_hex(data)).as_str()), "the plaintext's MD5");
        completed.push(CompletedPart::builder().part_number(number).e_tag(part.e_tag().unwrap()).build());
    }
    for (number, copied) in [(2, "source"), (4, "plain-source")] {
        let part = s3
            .upload_part_copy()
            .bucket(BUCKET)
            .key("multi")
            .upload_id(upload_id)
            .part_number(number)
            .copy_source(format!("{BUCKET}/{copied}"))
            .send()
            .await
            .expect("copy a part");
        assert_eq!(part.server_side_encryption(), Some(&ServerSideEncryption::Aes256), "part {number}");
        let etag = part.copy_part_result().and_then(|r| r.e_tag()).expect("etag").to_owned();
        completed.push(CompletedPart::builder().part_number(number).e_tag(etag).build());
    }
    completed.sort_by_key(|part| part.part_number());
    let done = s3
        .complete_multipart_upload()
        .bucket(BUCKET)
        .key("multi")
        .upload_id(upload_id)
        .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(completed)).build())
        .send()
        .await
        .expect("complete");
    assert_eq!(done.server_side_encryption(), Some(&ServerSideEncryption::Aes256));

    let whole = [&first[..], &source, &third, &plain_source].concat();
    assert_eq!(recorded(&server, "multi")["blake3"], blake3_hex(&whole), "the plaintext's digest");
    assert_eq!(recorded(&server, "multi")["encryption"], "AES256");
    let got = s3.get_object().bucket(BUCKET).key("multi").send().await.expect("GET");
    assert_eq!(got.server_side_encryption(), Some(&ServerSideEncryption::Aes256));
    assert_eq!(got.body.collect().await.expect("body").into_bytes().as_ref(), &whole[..]);
    let boundaries = [first.len(), first.len() + source.len(), first.len() + source.len() + third.len()];
    for at in boundaries {
        let range = format!("bytes={}-{}", at - 70_000, at + 70_000);
        assert_eq!(get_range(&s3, BUCKET, "multi", Some(&range)).await, &whole[at - 70_000..=at + 70_000], "{range}");
    }
    let part_two = s3.get_object().bucket(BUCKET).key("multi").part_number(2).send().await.expect("GET part 2");
    assert_eq!(part_two.body.collect().await.expect("body").into_bytes().as_ref(), &source[..]);

    assert!(!leaks(&whole, &stored_parts(&server, "multi").await), "the store holds plaintext");
    let verified = server.cli(&["verify"]);
    assert!(verified.status.success(), "verify decrypts every part: {verified:#?}");
}

fn encryption_configuration(algorithm: ServerSideEncryption) -> ServerSideEncryptionConfiguration {
    let default = ServerSideEncryptionByDefault::builder().sse_algorithm(algorithm).build().expect("default");
    let rule = ServerSideEncryptionRule::builder().apply_server_side_encryption_by_default(default).build();
    ServerSideEncryptionConfiguration::builder().rules(rule).build().expect("configuration")
}

#[tokio::test]
async fn a_bucket_default_encrypts_writes_that_ask_for_nothing_copies_of_plain_objects_included() {
    let server = Server::start_with(Transport::Http, &[], upstream_env()).await;
    let s3 = server.s3();
    create_bucket(&s3, BUCKET).await;
    create_bucket(&s3, "plain-bucket").await;
    let unset = s3.get_bucket_encryption().bucket(BUCKET).send().await;
    assert_eq!(failure(unset), (404, "ServerSideEncryptionConfigurationNotFoundError".to_owned()));
    let plain = bytes(100 * KIB, 90);
    put(&s3, "plain-bucket", "plain", &plain).await;

    let two_rules = {
        let default = ServerSideEncryptionByDefault::builder().sse_algorithm(ServerSideEncryption::Aes256).build();
        let rule =
            ServerSideEncryptionRule::builder().apply_server_side_encryption_by_default(default.unwrap()).build();
        ServerSideEncryptionConfiguration::builder().rules(rule.clone()).rules(rule).build().unwrap()
    };
    let refused =
        s3.put_bucket_encryption().bucket(BUCKET).server_side_encryption_configuration(two_rules).send().await;
    assert_eq!(failure(refused), (400, "MalformedXML".to_owned()), "two rules");
    let events_before = server.bucket_events(BUCKET).len();
    s3.put_bucket_encryption()
        .bucket(BUCKET)
        .server_side_encryption_configuration(encryption_configuration(ServerSideEncryption::Aes256))
        .send()
        .await
        .expect("set the default");
    let events = server.bucket_events(BUCKET);
    assert_eq!(events.len(), events_before + 1);
    assert_eq!(events.last().unwrap().event_type, "v1.bucket.encryption.set");
    let got = s3.get_bucket_encryption().bucket(BUCKET).send().await.expect("get the default");
    let rules = got.server_side_encryption_configuration().expect("configuration").rules();
    let default = rules[0].apply_server_side_encryption_by_default().expect("a default");
    assert_eq!(default.sse_algorithm(), &ServerSideEncryption::Aes256);

    // A PUT, a multipart upload and a copy of a plain object, none asking for encryption.
    let data = bytes(200 * KIB, 91);
    let out = s3.put_object().bucket(BUCKET).key("put").body(ByteStream::from(data.clone())).send().await.unwrap();
    assert_eq!(out.server_side_encryption(), Some(&ServerSideEncryption::Aes256), "PUT");
    assert!(!leaks(&data, &stored(&server, "put").await), "the PUT's bytes are encrypted");
    let created = s3.create_multipart_upload().bucket(BUCKET).key("multi").send().await.unwrap();
    assert_eq!(created.server_side_encryption(), Some(&ServerSideEncryption::Aes256), "multipart");
    let copied = s3
        .copy_object()
        .bucket(BUCKET)
        .key("copy")
        .copy_source("plain-bucket/plain")
        .send()
        .await
        .expect("copy a plain object into the bucket");
    assert_eq!(copied.server_side_encryption(), Some(&ServerSideEncryption::Aes256), "copy");
    assert_eq!(copied.copy_object_result().and_then(|r| r.e_tag()), Some(format!("\"{}\"", md5_hex(&plain)).as_str()));
    assert!(!leaks(&plain, &stored(&server, "copy").await), "the copy's bytes are encrypted");
    assert_eq!(get(&s3, BUCKET, "copy").await, plain);
    let source_key = {
        let events = server.object_events("plain-bucket", "plain");
        let put = of_type(&events, "v1.object.put")[0];
        version(put)["content"]["parts"][0]["wrapped_key"].clone()
    };
    assert!(source_key.is_null(), "the source stays unencrypted");

    // With the default gone, a PUT that asks for nothing is stored as it is.
    s3.delete_bucket_encryption().bucket(BUCKET).send().await.expect("delete the default");
    let out = s3.put_object().bucket(BUCKET).key("after").body(ByteStream::from(data.clone())).send().await.unwrap();
    assert_eq!(out.server_side_encryption(), None);
    assert_eq!(stored(&server, "after").await, data);
    let unset = s3.get_bucket_encryption().bucket(BUCKET).send().await;
    assert_eq!(failure(unset), (404, "ServerSideEncryptionConfigurationNotFoundError".to_owned()));
}

#[tokio::test]
async fn a_bucket_policy_can_require_the_encryption_header() {
    let server = Server::start_with(Transport::Http, &[], upstream_env()).await;
    let s3 = server.s3();
    create_bucket(&s3, BUCKET).await;
    // The policy AWS documents for requiring SSE-S3 on uploads.
    let policy = format!(
        r#"{{"Version":"2012-10-17","Statement":[
            {{"Sid":"DenyIncorrectEncryptionHeader","Effect":"Deny","Principal":"*","Action":"s3:PutObject",
              "Resource":"arn:aws:s3:::{BUCKET}/*","Condition":{{"StringNotEquals":{{"s3:x-amz-server-side-encryption":"AES256"}}}}}},
            {{"Sid":"DenyUnencryptedObjectUploads","Effect":"Deny","Principal":"*","Action":"s3:PutObject",
              "Resource":"arn:aws:s3:::{BUCKET}/*","Condition":{{"Null":{{"s3:x-amz-server-side-encryption":"true"}}}}}}]}}"#
    );
    s3.put_bucket_policy().bucket(BUCKET).policy(policy).send().await.expect("put the policy");
    let plain = s3.put_object().bucket(BUCKET).key("plain").body(ByteStream::from_static(b"data")).send().await;
    assert_eq!(failure(plain), (403, "AccessDenied".to_owned()), "a PUT without the header");
    put_encrypted(&s3, "sealed", b"data").await;
    assert_eq!(get(&s3, BUCKET, "sealed").await, b"data");
}

/// The id `artifact-store kms create --alias <alias>` printed.
fn create_kms_key(server: &Server, alias: &str) -> String {
    let created = artifact_store_conformance::cli::expect(server, &["--json", "kms", "create", "--alias", alias], 0);
    let created: serde_json::Value = serde_json::from_str(created.stdout.trim()).expect("JSON");
    created["key_id"].as_str().expect("a key id").to_owned()
}

#[tokio::test]
async fn sse_kms_wraps_data_keys_with_the_named_kms_key_and_copies_move_between_keys() {
    let server = Server::start_with(Transport::Http, &[], upstream_env()).await;
    let s3 = server.s3();
    create_bucket(&s3, BUCKET).await;
    let builds = create_kms_key(&server, "builds");
    let data = bytes(150 * KIB, 100);

    // Named by alias, by id and by ARN; and no key named: the default key (`aws/s3`).
    let mut arns = Vec::new();
    for (key, named) in
        [("by-alias", Some("alias/builds".to_owned())), ("by-id", Some(builds.clone())), ("default", None)]
    {
        let out = s3
            .put_object()
            .bucket(BUCKET)
            .key(key)
            .server_side_encryption(ServerSideEncryption::AwsKms)
            .set_ssekms_key_id(named)
            .bucket_key_enabled(key == "by-id")
            .body(ByteStream::from(data.clone()))
            .send()
            .await
            .unwrap_or_else(|err| panic!("{key}: {err:?}"));
        assert_eq!(out.server_side_encryption(), Some(&ServerSideEncryption::AwsKms), "{key}");
        let arn = out.ssekms_key_id().expect("the key's ARN").to_owned();
        assert!(arn.starts_with("arn:aws:kms:us-east-1:") && arn.contains(":key/"), "{arn}");
        assert_eq!(out.bucket_key_enabled(), (key == "by-id").then_some(true), "{key}");
        let got = s3.get_object().bucket(BUCKET).key(key).send().await.expect("GET");
        assert_eq!(got.server_side_encryption(), Some(&ServerSideEncryption::AwsKms));
        assert_eq!(got.ssekms_key_id(), Some(arn.as_str()), "{key}: GET names the key");
        assert_eq!(got.body.collect().await.unwrap().into_bytes().as_ref(), &data[..]);
        let content = recorded(&server, key);
        assert_eq!(content["parts"][0]["wrapped_key"]["key_id"], content["kms_key_id"], "{key}");
        assert!(!leaks(&data, &stored(&server, key).await), "{key}: the store holds plaintext");
        arns.push(arn);
    }
    assert!(arns[0].ends_with(&builds) && arns[1].ends_with(&builds), "{arns:?}");
    assert!(!arns[2].ends_with(&builds), "the default key is another key");
    let by_arn = s3
        .put_object()
        .bucket(BUCKET)
        .key("by-arn")
        .server_side_encryption(ServerSideEncryption::AwsKms)
        .ssekms_key_id(&arns[0])
        .body(ByteStream::from(data.clone()))
        .send()
        .await
        .expect("named by ARN");
    assert_eq!(by_arn.ssekms_key_id(), Some(arns[0].as_str()));

    // Copies between modes and keys store the bytes again under the target's key.
    for (target, mode, named) in
        [("to-s3", ServerSideEncryption::Aes256, None), ("to-default-kms", ServerSideEncryption::AwsKms, None)]
    {
        let copied = s3
            .copy_object()
            .bucket(BUCKET)
            .key(target)
            .copy_source(format!("{BUCKET}/by-alias"))
            .server_side_encryption(mode.clone())
            .set_ssekms_key_id(named)
            .send()
            .await
            .unwrap_or_else(|err| panic!("{target}: {err:?}"));
        assert_eq!(copied.server_side_encryption(), Some(&mode), "{target}");
        assert_eq!(get(&s3, BUCKET, target).await, data, "{target}");
        let source_key = recorded(&server, "by-alias")["parts"][0]["wrapped_key"]["key_id"].clone();
        let copy_key = recorded(&server, target)["parts"][0]["wrapped_key"]["key_id"].clone();
        assert_ne!(source_key, copy_key, "{target}: wrapped by the target's key");
    }

    // A bucket default naming a KMS key, and a multipart upload under it.
    let default = ServerSideEncryptionByDefault::builder()
        .sse_algorithm(ServerSideEncryption::AwsKms)
        .kms_master_key_id("alias/builds")
        .build()
        .unwrap();
    let rule = ServerSideEncryptionRule::builder().apply_server_side_encryption_by_default(default).build();
    let configuration = ServerSideEncryptionConfiguration::builder().rules(rule).build().unwrap();
    s3.put_bucket_encryption().bucket(BUCKET).server_side_encryption_configuration(configuration).send().await.unwrap();
    let got = s3.get_bucket_encryption().bucket(BUCKET).send().await.unwrap();
    let rule = &got.server_side_encryption_configuration().unwrap().rules()[0];
    let default = rule.apply_server_side_encryption_by_default().unwrap();
    assert_eq!(default.kms_master_key_id(), Some(arns[0].as_str()), "the default names the key by its ARN");
    let created = s3.create_multipart_upload().bucket(BUCKET).key("multi").send().await.unwrap();
    assert_eq!(created.ssekms_key_id(), Some(arns[0].as_str()));
    let upload_id = created.upload_id().unwrap();
    let part = s3
        .upload_part()
        .bucket(BUCKET)
        .key("multi")
        .upload_id(upload_id)
        .part_number(1)
        .body(ByteStream::from(data.clone()))
        .send()
        .await
        .unwrap();
    let parts = CompletedMultipartUpload::builder()
        .parts(CompletedPart::builder().part_number(1).e_tag(part.e_tag().unwrap()).build())
        .build();
    let done = s3
        .complete_multipart_upload()
        .bucket(BUCKET)
        .key("multi")
        .upload_id(upload_id)
        .multipart_upload(parts)
        .send()
        .await
        .unwrap();
    assert_eq!(done.ssekms_key_id(), Some(arns[0].as_str()));
    assert_eq!(recorded(&server, "multi")["parts"][0]["wrapped_key"]["key_id"], builds.as_str());
    assert_eq!(get(&s3, BUCKET, "multi").await, data);

    let verified = server.cli(&["verify"]);
    assert!(verified.status.success(), "verify unwraps with the KMS keys: {verified:#?}");
    let listed = artifact_store_conformance::cli::expect(&server, &["kms", "list"], 0);
    assert!(listed.stdout.contains(&format!("{builds}\talias/builds")), "{}", listed.stdout);
}

#[tokio::test]
async fn a_rotated_master_key_leaves_every_object_readable_and_wraps_new_ones() {
    let mut server = Server::start_with(Transport::Http, &[], upstream_env()).await;
    let s3 = server.s3();
    create_bucket(&s3, BUCKET).await;
    let (before, during, after) = (bytes(90 * KIB, 110), bytes(90 * KIB, 111), bytes(90 * KIB, 112));
    put_encrypted(&s3, "before", &before).await;
    let rotated = artifact_store_conformance::cli::expect(&server, &["--json", "kms", "rotate-master"], 0);
    let rotated: serde_json::Value = serde_json::from_str(rotated.stdout.trim()).expect("JSON");
    let wrapped_by = |server: &Server, key: &str| recorded(server, key)["parts"][0]["wrapped_key"]["key_id"].clone();
    assert_eq!(wrapped_by(&server, "before"), rotated["retired"]);
    // A running gateway goes on with the key it started with; the next start takes the new one.
    put_encrypted(&s3, "during", &during).await;
    server.restart().await;
    let s3 = server.s3();
    put_encrypted(&s3, "after", &after).await;
    assert_eq!(wrapped_by(&server, "after"), rotated["current"], "new data keys are wrapped by the new key");
    for (key, data) in [("before", &before), ("during", &during), ("after", &after)] {
        assert_eq!(&get(&s3, BUCKET, key).await, data, "{key}");
    }
    let verified = server.cli(&["verify"]);
    assert!(verified.status.success(), "verify unwraps with retired keys too: {verified:#?}");
}

#[tokio::test]
async fn a_missing_master_key_file_stops_the_start_rather_than_making_another() {
    let mut server = Server::start_with(Transport::Http, &[], upstream_env()).await;
    let s3 = server.s3();
    create_bucket(&s3, BUCKET).await;
    let data = bytes(20 * KIB, 140);
    put_encrypted(&s3, "sealed", &data).await;
    server.kill();
    // The key file moved away (or `encryption.master_key_file` mistyped): a new key would leave
    // "sealed" unreadable, and what it wrapped unreadable once the file came back.
    let key_file = server.data_dir().join("keys/master.key");
    let kept = server.data_dir().join("master.key.kept");
    std::fs::rename(&key_file, &kept).expect("move the key away");
    let mut serve = tokio::process::Command::from(server.cli_command(&["serve", "--listen", "127.0.0.1:0"]));
    serve.kill_on_drop(true);
    let output = tokio::time::timeout(std::time::Duration::from_secs(60), serve.output())
        .await
        .expect("serve must stop")
        .expect("run serve");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "serve refuses to start: {stderr}");
    assert!(stderr.contains("master key file") && stderr.contains(&key_file.display().to_string()), "{stderr}");
    assert!(!key_file.exists(), "no new key was made");
    std::fs::rename(&kept, &key_file).expect("put the key back");
    server.restart().await;
    assert_eq!(get(&server.s3(), BUCKET, "sealed").await, data, "readable with the key back");
}

async fn complete(s3: &aws_sdk_s3::Client, key: &str, upload_id: &str, parts: Vec<CompletedPart>) {
    s3.complete_multipart_upload()
        .bucket(BUCKET)
        .key(key)
        .upload_id(upload_id)
        .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build())
        .send()
        .await
        .unwrap_or_else(|err| panic!("complete {key}: {err:?}"));
}

/// `kms rewrap --json`, parsed.
fn rewrap(server: &Server) -> serde_json::Value {
    let ran = artifact_store_conformance::cli::expect(server, &["--json", "kms", "rewrap"], 0);
    serde_json::from_str(ran.stdout.trim()).expect("JSON")
}

#[tokio::test]
async fn wrapping_data_keys_anew_lets_the_retired_master_key_be_destroyed() {
    let mut server = Server::start_with(Transport::Http, &[], upstream_env()).await;
    let s3 = server.s3();
    create_bucket(&s3, BUCKET).await;
    let (single, tiny) = (bytes(150 * KIB, 120), bytes(100, 121));
    let (first, second) = (bytes(5 * 1024 * KIB, 122), bytes(70 * KIB, 123));
    put_encrypted(&s3, "single", &single).await;
    put_encrypted(&s3, "tiny", &tiny).await;
    let create = |key: &'static str| {
        s3.create_multipart_upload().bucket(BUCKET).key(key).server_side_encryption(ServerSideEncryption::Aes256).send()
    };
    let multi = create("multi").await.expect("create").upload_id.expect("upload id");
    let parts = vec![
        upload_part(&s3, BUCKET, "multi", &multi, 1, first.clone()).await,
        upload_part(&s3, BUCKET, "multi", &multi, 2, second.clone()).await,
    ];
    complete(&s3, "multi", &multi, parts).await;
    // An upload in progress across the rotation: its first part's key is wrapped by the old key.
    let pending = create("pending").await.expect("create").upload_id.expect("upload id");
    let pending_first = upload_part(&s3, BUCKET, "pending", &pending, 1, first.clone()).await;
    let plain = bytes(80 * KIB, 124);
    put(&s3, BUCKET, "plain", &plain).await;
    // A copy under the same key shares the source's blob and wrapped key; a KMS key's objects
    // are not the master key's business; an object overwritten after the rotation leaves a
    // blob that nothing references until gc, under the old key.
    s3.copy_object()
        .bucket(BUCKET)
        .key("single-copy")
        .copy_source(format!("{BUCKET}/single"))
        .server_side_encryption(ServerSideEncryption::Aes256)
        .send()
        .await
        .expect("copy");
    assert_eq!(recorded(&server, "single-copy")["parts"][0]["blob"], recorded(&server, "single")["parts"][0]["blob"]);
    create_kms_key(&server, "rewrap");
    let under_kms = bytes(90 * KIB, 125);
    s3.put_object()
        .bucket(BUCKET)
        .key("kms")
        .server_side_encryption(ServerSideEncryption::AwsKms)
        .ssekms_key_id("alias/rewrap")
        .body(ByteStream::from(under_kms.clone()))
        .send()
        .await
        .expect("SSE-KMS PUT");
    put_encrypted(&s3, "replaced", &bytes(90 * KIB, 126)).await;

    let rotated = artifact_store_conformance::cli::expect(&server, &["--json", "kms", "rotate-master"], 0);
    let rotated: serde_json::Value = serde_json::from_str(rotated.stdout.trim()).expect("JSON");
    let (old, new) = (rotated["retired"].as_str().unwrap().to_owned(), rotated["current"].as_str().unwrap().to_owned());
    server.restart().await;
    let s3 = server.s3();
    let replacement = bytes(90 * KIB, 127);
    put_encrypted(&s3, "replaced", &replacement).await;
    // Destroyed before the re-wrap, the retired key leaves live versions unreadable: verify
    // names them.
    let retired_file = server.data_dir().join(format!("keys/retired/{old}.key"));
    let aside = server.data_dir().join("retired-key-aside");
    std::fs::rename(&retired_file, &aside).expect("move the retired key away");
    let verified = server.cli(&["verify"]);
    let said = String::from_utf8_lossy(&verified.stdout);
    assert!(
        !verified.status.success() && said.contains(&format!("of {BUCKET}/single, part 1: its data key is unreadable")),
        "{verified:#?}"
    );
    assert!(said.contains(&format!("upload {pending}, part 1: its data key is unreadable")), "{said}");
    std::fs::rename(&aside, &retired_file).expect("put the retired key back");

    let report = rewrap(&server);
    assert_eq!((report["versions"].as_u64(), report["data_keys"].as_u64()), (Some(4), Some(5)), "{report}");
    assert_eq!(report["current"], new.as_str());
    assert_eq!(report["retired"], serde_json::json!([{ "key_id": old, "still_needed": 1 }]), "the pending part");
    assert!(recorded(&server, "kms")["parts"][0]["wrapped_key"]["key_id"] != new.as_str(), "the KMS key's stays");
    assert!(of_type(&server.object_events(BUCKET, "kms"), "v1.object.keys.rewrapped").is_empty());
    for key in ["single", "single-copy", "tiny", "multi"] {
        let events = server.object_events(BUCKET, key);
        let anew = of_type(&events, "v1.object.keys.rewrapped");
        let parts = anew.first().map(|e| e.payload["parts"].clone()).unwrap_or_default();
        let blobs: Vec<_> =
            recorded(&server, key)["parts"].as_array().unwrap().iter().map(|p| p["blob"].clone()).collect();
        assert_eq!(parts.as_array().map(|a| a.iter().map(|p| p["blob"].clone()).collect()), Some(blobs), "{key}");
        assert!(parts.as_array().unwrap().iter().all(|p| p["wrapped_key"]["key_id"] == new.as_str()), "{key}: {parts}");
    }
    let second_pending = upload_part(&s3, BUCKET, "pending", &pending, 2, second.clone()).await;
    complete(&s3, "pending", &pending, vec![pending_first, second_pending]).await;
    let report = rewrap(&server);
    assert_eq!((report["versions"].as_u64(), report["data_keys"].as_u64()), (Some(1), Some(1)), "{report}");
    assert_eq!(report["retired"], serde_json::json!([{ "key_id": old, "still_needed": 0 }]));
    let again = rewrap(&server);
    assert_eq!((again["versions"].as_u64(), again["data_keys"].as_u64()), (Some(0), Some(0)), "nothing is left");
    let events = server.events();
    assert_eq!(of_type(&events, "v1.object.keys.rewrapped").len(), 5, "one event per version wrapped anew");

    std::fs::remove_file(server.data_dir().join(format!("keys/retired/{old}.key"))).expect("destroy the retired key");
    server.restart().await;
    let s3 = server.s3();
    let multi_bytes = [&first[..], &second].concat();
    for (key, data) in [
        ("single", &single),
        ("single-copy", &single),
        ("tiny", &tiny),
        ("multi", &multi_bytes),
        ("pending", &multi_bytes),
        ("plain", &plain),
        ("kms", &under_kms),
        ("replaced", &replacement),
    ] {
        assert_eq!(&get(&s3, BUCKET, key).await, data, "{key} reads without the retired key");
    }
    let range = format!("bytes={}-{}", first.len() - 10, first.len() + 10);
    assert_eq!(get_range(&s3, BUCKET, "multi", Some(&range)).await, &multi_bytes[first.len() - 10..=first.len() + 10]);
    let verified = server.cli(&["verify"]);
    assert!(verified.status.success(), "verify reads the keys wrapped anew from the log: {verified:#?}");
    let expected = if server.on_s3_backend() { "" } else { "1 under destroyed keys, not read" };
    assert!(String::from_utf8_lossy(&verified.stdout).contains(expected), "the replaced blob: {verified:#?}");
    artifact_store_conformance::cli::expect(&server, &["replay"], 0);
}

/// A request builder with the SSE-C headers of `key`.
macro_rules! with_customer_key {
    ($request:expr, $key:expr) => {
        $request
            .sse_customer_algorithm("AES256")
            .sse_customer_key(base64_of($key))
            .sse_customer_key_md5(md5_base64($key))
    };
}

#[tokio::test]
async fn sse_c_objects_need_their_key_for_every_read_copy_and_part() {
    let server = Server::start(Transport::Https).await;
    let s3 = server.s3();
    create_bucket(&s3, BUCKET).await;
    let (key, wrong) = ([0x5a; 32], [0xa5; 32]);
    let data = bytes(200 * KIB, 120);

    let put = with_customer_key!(s3.put_object().bucket(BUCKET).key("secret"), &key)
        .body(ByteStream::from(data.clone()))
        .send()
        .await
        .expect("SSE-C PUT over HTTPS");
    assert_eq!(put.sse_customer_algorithm(), Some("AES256"));
    assert_eq!(put.sse_customer_key_md5(), Some(md5_base64(&key).as_str()));
    assert_eq!(put.server_side_encryption(), None);
    let content = recorded(&server, "secret");
    assert_eq!(content["encryption"], "SSE-C");
    assert_eq!(content["parts"][0]["wrapped_key"]["key_id"], "customer");
    assert!(content["customer_key_check"].is_string());
    let events =
        serde_json::to_string(&server.object_events(BUCKET, "secret").iter().map(|e| &e.payload).collect::<Vec<_>>());
    assert!(!events.unwrap().contains(&base64_of(&key)), "the key is in no event");
    assert!(!leaks(&data, &stored(&server, "secret").await), "the store holds plaintext");

    // Reads: without the key 400, with another 403, with it the bytes (whole and ranged).
    let missing = s3.get_object().bucket(BUCKET).key("secret").send().await;
    assert_eq!(failure(missing), (400, "InvalidRequest".to_owned()), "GET without the key");
    let head = s3.head_object().bucket(BUCKET).key("secret").send().await;
    assert_eq!(failure(head).0, 400, "HEAD without the key");
    let other = with_customer_key!(s3.get_object().bucket(BUCKET).key("secret"), &wrong).send().await;
    assert_eq!(failure(other), (403, "AccessDenied".to_owned()), "GET with another key");
    let got = with_customer_key!(s3.get_object().bucket(BUCKET).key("secret"), &key).send().await.expect("GET");
    assert_eq!(got.sse_customer_key_md5(), Some(md5_base64(&key).as_str()));
    assert_eq!(got.body.collect().await.unwrap().into_bytes().as_ref(), &data[..]);
    let attributes = s3
        .get_object_attributes()
        .bucket(BUCKET)
        .key("secret")
        .object_attributes(aws_sdk_s3::types::ObjectAttributes::Checksum)
        .send()
        .await;
    assert_eq!(failure(attributes).0, 400, "GetObjectAttributes without the key");
    let ranged = with_customer_key!(s3.get_object().bucket(BUCKET).key("secret"), &key)
        .range("bytes=65530-131080")
        .send()
        .await
        .expect("ranged GET");
    assert_eq!(ranged.body.collect().await.unwrap().into_bytes().as_ref(), &data[65530..=131080]);

    // Copies: the source's key is needed; the copy takes the destination's encryption, SSE-S3
    // when it asks for none.
    let no_source_key =
        s3.copy_object().bucket(BUCKET).key("copy").copy_source(format!("{BUCKET}/secret")).send().await;
    assert_eq!(failure(no_source_key), (400, "InvalidRequest".to_owned()), "a copy without the source's key");
    let copied = s3
        .copy_object()
        .bucket(BUCKET)
        .key("copy")
        .copy_source(format!("{BUCKET}/secret"))
        .copy_source_sse_customer_algorithm("AES256")
        .copy_source_sse_customer_key(base64_of(&key))
        .copy_source_sse_customer_key_md5(md5_base64(&key))
        .send()
        .await
        .expect("copy with the source's key");
    assert_eq!(copied.server_side_encryption(), Some(&ServerSideEncryption::Aes256));
    assert_eq!(get(&s3, BUCKET, "copy").await, data, "the copy reads without a key");
    let rekeyed = with_customer_key!(s3.copy_object().bucket(BUCKET).key("rekeyed"), &wrong)
        .copy_source(format!("{BUCKET}/secret"))
        .copy_source_sse_customer_algorithm("AES256")
        .copy_source_sse_customer_key(base64_of(&key))
        .copy_source_sse_customer_key_md5(md5_base64(&key))
        .send()
        .await
        .expect("copy under another customer key");
    assert_eq!(rekeyed.sse_customer_key_md5(), Some(md5_base64(&wrong).as_str()));
    let got = with_customer_key!(s3.get_object().bucket(BUCKET).key("rekeyed"), &wrong).send().await.unwrap();
    assert_eq!(got.body.collect().await.unwrap().into_bytes().as_ref(), &data[..]);

    // A multipart upload: every part brings the upload's key; parts of uneven sizes are read
    // back at completion with the key completion brings.
    let created =
        with_customer_key!(s3.create_multipart_upload().bucket(BUCKET).key("multi"), &key).send().await.unwrap();
    assert_eq!(created.sse_customer_key_md5(), Some(md5_base64(&key).as_str()));
    let upload_id = created.upload_id().unwrap().to_owned();
    let part = |number: i32, body: Vec<u8>| {
        s3.upload_part()
            .bucket(BUCKET)
            .key("multi")
            .upload_id(&upload_id)
            .part_number(number)
            .body(ByteStream::from(body))
    };
    let keyless = part(1, bytes(5 * 1024 * KIB, 121)).send().await;
    assert_eq!(failure(keyless), (400, "InvalidRequest".to_owned()), "a part without the upload's key");
    let other = with_customer_key!(part(1, bytes(5 * 1024 * KIB, 121)), &wrong).send().await;
    assert_eq!(failure(other), (403, "AccessDenied".to_owned()), "a part under another key");
    let (first, second) = (bytes(5 * 1024 * KIB, 121), bytes(3 * 1024 * KIB + 5, 122));
    let mut completed = Vec::new();
    // The last part first: it was hashed where it is not, so completion reads it back.
    for (number, body) in [(2, &second), (1, &first)] {
        let uploaded = with_customer_key!(part(number, body.clone()), &key).send().await.expect("part with the key");
        completed.push(CompletedPart::builder().part_number(number).e_tag(uploaded.e_tag().unwrap()).build());
    }
    completed.sort_by_key(|part| part.part_number());
    let complete = || {
        s3.complete_multipart_upload()
            .bucket(BUCKET)
            .key("multi")
            .upload_id(&upload_id)
            .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(completed.clone())).build())
    };
    let keyless = complete().send().await;
    assert_eq!(failure(keyless), (400, "InvalidRequest".to_owned()), "a completion that must read parts back, keyless");
    with_customer_key!(complete(), &key).send().await.expect("the same completion with the key");
    let got = with_customer_key!(s3.get_object().bucket(BUCKET).key("multi"), &key).send().await.unwrap();
    assert_eq!(got.body.collect().await.unwrap().into_bytes().as_ref(), &[&first[..], &second].concat()[..]);

    // A part or a part copy with a key, for an upload begun without one: plain, SSE-S3 or
    // SSE-KMS (refused, not kept under another key than the one its caller sent).
    s3.put_object().bucket(BUCKET).key("plain-source").body(ByteStream::from(bytes(KIB, 124))).send().await.unwrap();
    for (name, asked) in [
        ("plain", None),
        ("SSE-S3", Some(ServerSideEncryption::Aes256)),
        ("SSE-KMS", Some(ServerSideEncryption::AwsKms)),
    ] {
        let target = format!("{name}-multi");
        let created = s3
            .create_multipart_upload()
            .bucket(BUCKET)
            .key(&target)
            .set_server_side_encryption(asked)
            .send()
            .await
            .unwrap();
        let upload_id = created.upload_id().unwrap();
        let keyed = with_customer_key!(
            s3.upload_part()
                .bucket(BUCKET)
                .key(&target)
                .upload_id(upload_id)
                .part_number(1)
                .body(ByteStream::from(bytes(KIB, 123))),
            &key
        )
        .send()
        .await;
        assert_eq!(failure(keyed), (400, "InvalidRequest".to_owned()), "a key for a {name} upload");
        let keyed_copy = with_customer_key!(
            s3.upload_part_copy()
                .bucket(BUCKET)
                .key(&target)
                .upload_id(upload_id)
                .part_number(1)
                .copy_source(format!("{BUCKET}/plain-source")),
            &key
        )
        .send()
        .await;
        assert_eq!(failure(keyed_copy), (400, "InvalidRequest".to_owned()), "a key for a part copy of a {name} upload");
        let parts = s3.list_parts().bucket(BUCKET).key(&target).upload_id(upload_id).send().await.unwrap();
        assert!(parts.parts().is_empty(), "a refused part is not kept: {parts:?}");
    }

    let verified = server.cli(&["verify"]);
    assert!(verified.status.success(), "verify passes what it cannot read: {verified:#?}");
    assert!(String::from_utf8_lossy(&verified.stdout).contains("under customers' keys, not read"), "{verified:#?}");
}

/// The encryption a copy asks for in the matrix below.
#[derive(Clone, Copy, Debug)]
enum Mode {
    Plain,
    S3,
    Kms,
    Customer,
}

const MATRIX_KEY: [u8; 32] = [0x3c; 32];

/// `request` asking for `mode` (the destination's headers).
fn asking(
    request: aws_sdk_s3::operation::copy_object::builders::CopyObjectFluentBuilder,
    mode: Mode,
) -> aws_sdk_s3::operation::copy_object::builders::CopyObjectFluentBuilder {
    match mode {
        Mode::Plain => request,
        Mode::S3 => request.server_side_encryption(ServerSideEncryption::Aes256),
        Mode::Kms => request.server_side_encryption(ServerSideEncryption::AwsKms),
        Mode::Customer => with_customer_key!(request, &MATRIX_KEY),
    }
}

#[tokio::test]
async fn copies_move_between_every_pair_of_modes() {
    let server = Server::start(Transport::Https).await;
    let s3 = server.s3();
    create_bucket(&s3, BUCKET).await;
    let data = bytes(100 * KIB, 130);
    let modes = [Mode::Plain, Mode::S3, Mode::Kms, Mode::Customer];
    for source in modes {
        let key = format!("source-{source:?}");
        let put = s3.put_object().bucket(BUCKET).key(&key).body(ByteStream::from(data.clone()));
        let put = match source {
            Mode::Plain => put,
            Mode::S3 => put.server_side_encryption(ServerSideEncryption::Aes256),
            Mode::Kms => put.server_side_encryption(ServerSideEncryption::AwsKms),
            Mode::Customer => with_customer_key!(put, &MATRIX_KEY),
        };
        put.send().await.unwrap_or_else(|err| panic!("{key}: {err:?}"));
        for target in modes {
            let copy = format!("copy-{source:?}-to-{target:?}");
            let mut request =
                asking(s3.copy_object().bucket(BUCKET).key(&copy).copy_source(format!("{BUCKET}/{key}")), target);
            if let Mode::Customer = source {
                request = request
                    .copy_source_sse_customer_algorithm("AES256")
                    .copy_source_sse_customer_key(base64_of(&MATRIX_KEY))
                    .copy_source_sse_customer_key_md5(md5_base64(&MATRIX_KEY));
            }
            request.send().await.unwrap_or_else(|err| panic!("{copy}: {err:?}"));
            // What the copy is stored as: what it asked for, else its source's (SSE-S3 for an
            // SSE-C source, whose key the copy does not keep).
            let expected = match (source, target) {
                (Mode::Customer, Mode::Plain) => "AES256",
                (_, Mode::S3) | (Mode::S3, Mode::Plain) => "AES256",
                (_, Mode::Kms) | (Mode::Kms, Mode::Plain) => "aws:kms",
                (_, Mode::Customer) => "SSE-C",
                (Mode::Plain, Mode::Plain) => "",
            };
            assert_eq!(recorded(&server, &copy)["encryption"].as_str().unwrap_or(""), expected, "{copy}");
            let get = s3.get_object().bucket(BUCKET).key(&copy);
            let get = if expected == "SSE-C" { with_customer_key!(get, &MATRIX_KEY) } else { get };
            let got = get.send().await.unwrap_or_else(|err| panic!("GET {copy}: {err:?}"));
            assert_eq!(got.body.collect().await.unwrap().into_bytes().as_ref(), &data[..], "{copy}");
        }
    }
}
