//! The registry API under `/_registry/` and the receipts of writes, against the real binary:
//! requests signed like S3 requests (hand-signed with `aws-sigv4`, and by curl's
//! `--aws-sigv4`), provenance, retrieval records and their exports, and the event feed in
//! its three forms (pages, long poll, Server-Sent Events).

use std::time::{Duration, SystemTime};

use artifact_store_conformance::raw::{Key, Payload, ROOT, RawResponse, assert_refused, encode};
use artifact_store_conformance::sdk::{create_bucket, enable_versioning, get_range, put};
use artifact_store_conformance::{
    ACCESS_KEY, FIRST_START_EVENTS, SECRET_KEY, Server, Transport, blake3_hex, bytes, md5_hex, sha256_base64, skip,
};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ChecksumAlgorithm, Delete, ObjectIdentifier};
use serde_json::Value;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// A signed GET of the registry API.
async fn api(server: &Server, target: &str) -> RawResponse {
    server.send(&server.request("GET", target).sign(ROOT, SystemTime::now(), Payload::Signed)).await
}

/// A signed GET of the registry API that must answer 200 with JSON.
async fn api_json(server: &Server, target: &str) -> Value {
    let response = api(server, target).await;
    assert_eq!(response.status, 200, "GET {target}: {}", response.text());
    serde_json::from_slice(&response.body)
        .unwrap_or_else(|e| panic!("GET {target}: not JSON ({e}): {}", response.text()))
}

/// The JSON lines of a feed response.
fn lines(response: &RawResponse) -> Vec<Value> {
    response.text().lines().map(|line| serde_json::from_str(line).expect("a JSON line")).collect()
}

/// A signed PUT of `data` to `bucket/key` with extra headers; returns the response.
async fn raw_put(server: &Server, bucket: &str, key: &str, data: &[u8], headers: &[(&str, &str)]) -> RawResponse {
    let mut request = server.request("PUT", &format!("/{bucket}/{}", encode(key, true))).body(data.to_vec());
    for (name, value) in headers {
        request = request.header(name, value);
    }
    let response = server.send(&request.sign(ROOT, SystemTime::now(), Payload::Signed)).await;
    assert_eq!(response.status, 200, "PUT {bucket}/{key}: {}", response.text());
    response
}

/// The `x-artifact-store-event` receipt: (sequence, hash).
fn receipt(response: &RawResponse) -> (u64, String) {
    let value = response.header("x-artifact-store-event").expect("a receipt header");
    let (sequence, hash) = value.split_once(';').expect("<sequence>;<hash>");
    assert_eq!(hash.len(), 64, "the hash is 64 hex digits: {value}");
    (sequence.parse().expect("a sequence"), hash.to_owned())
}

#[tokio::test]
async fn the_registry_api_wants_a_valid_signature() {
    let server = Server::start(Transport::Http).await;
    let anonymous = server.send(&server.request("GET", "/_registry/events")).await;
    assert_refused(&anonymous, 403, "AccessDenied", "an unsigned registry request");
    let wrong = Key { access_key: ACCESS_KEY, secret_key: "not-the-secret-key-at-all-0000000000000000" };
    let forged =
        server.send(&server.request("GET", "/_registry/events").sign(wrong, SystemTime::now(), Payload::Signed)).await;
    assert_refused(&forged, 403, "SignatureDoesNotMatch", "a registry request signed with the wrong secret");
    let unknown = Key { access_key: "NOSUCHACCESSKEY00000", secret_key: SECRET_KEY };
    let stranger = server
        .send(&server.request("GET", "/_registry/events").sign(unknown, SystemTime::now(), Payload::Signed))
        .await;
    assert_refused(&stranger, 403, "InvalidAccessKeyId", "a registry request from an unknown key");

    // Every endpoint, the streaming ones included: a stream opened before the signature is
    // checked would never end, so each refusal must come back at once.
    for target in [
        "/_registry/events?since=0&limit=1",
        "/_registry/events?wait=60",
        "/_registry/events/stream",
        "/_registry/events/1",
        "/_registry/objects/b/k",
        "/_registry/retrievals?format=cloudtrail",
    ] {
        let refusals = async {
            let anonymous = server.send(&server.request("GET", target)).await;
            assert_refused(&anonymous, 403, "AccessDenied", &format!("unsigned GET {target}"));
            let forged =
                server.send(&server.request("GET", target).sign(wrong, SystemTime::now(), Payload::Signed)).await;
            assert_refused(&forged, 403, "SignatureDoesNotMatch", &format!("GET {target} with the wrong secret"));
        };
        tokio::time::timeout(Duration::from_secs(30), refusals)
            .await
            .unwrap_or_else(|_| panic!("GET {target} was answered with a stream or a wait, not a refusal"));
    }

    let presigned = server
        .send(&server.request("GET", "/_registry/events").presign(ROOT, SystemTime::now(), Duration::from_secs(300)))
        .await;
    assert_eq!(presigned.status, 200, "a presigned URL works too: {}", presigned.text());

    // `_registry` is the API, never a bucket: a signed CreateBucket of it reaches the API.
    let create = server.send(&server.request("PUT", "/_registry").sign(ROOT, SystemTime::now(), Payload::Signed)).await;
    assert_eq!(create.status, 405, "PUT /_registry: {}", create.text());
    let buckets = server.s3().list_buckets().send().await.expect("list buckets");
    assert!(buckets.buckets().is_empty(), "no bucket was created: {:?}", buckets.buckets());
    assert_eq!(api(&server, "/_registry/nothing").await.status, 404);
    assert_eq!(api(&server, "/_registry/events?since=x").await.status, 400);
    // Past what a sequence can be: the client's error, not a failed query.
    for target in [
        "/_registry/events?since=9223372036854775808",
        "/_registry/events/18446744073709551615",
        "/_registry/retrievals?after=18446744073709551615",
    ] {
        let refused = api(&server, target).await;
        assert_eq!(refused.status, 400, "{target}: {}", refused.text());
        assert!(refused.text().contains(r#""code":"InvalidArgument""#), "{target}: {}", refused.text());
    }
    // A page that can hold nothing would never move a follower's cursor.
    assert_eq!(api(&server, "/_registry/events?limit=0&wait=60").await.status, 400);
    assert_eq!(api(&server, "/_registry/retrievals?limit=0").await.status, 400);
}

#[tokio::test]
async fn writes_carry_receipts_that_match_the_log() {
    let server = Server::start(Transport::Http).await;
    create_bucket(&server.s3(), "receipts").await;
    let data = bytes(1000, 1);

    let put = raw_put(&server, "receipts", "a.bin", &data, &[]).await;
    let copy = raw_put(&server, "receipts", "copy.bin", b"", &[("x-amz-copy-source", "/receipts/a.bin")]).await;

    // CompleteMultipartUpload, by hand: create, one part, complete.
    let created = server
        .send(&server.request("POST", "/receipts/mp.bin?uploads").sign(ROOT, SystemTime::now(), Payload::Signed))
        .await;
    let text = created.text();
    let upload_id =
        text.split("<UploadId>").nth(1).and_then(|rest| rest.split("</UploadId>").next()).expect("UploadId");
    let part = server
        .send(
            &server
                .request("PUT", &format!("/receipts/mp.bin?partNumber=1&uploadId={}", encode(upload_id, false)))
                .body(data.clone())
                .sign(ROOT, SystemTime::now(), Payload::Signed),
        )
        .await;
    assert_eq!(part.status, 200, "UploadPart: {}", part.text());
    let complete_body = format!(
        "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>{}</ETag></Part></CompleteMultipartUpload>",
        part.header("etag").expect("part ETag")
    );
    let complete = server
        .send(
            &server
                .request("POST", &format!("/receipts/mp.bin?uploadId={}", encode(upload_id, false)))
                .body(complete_body)
                .sign(ROOT, SystemTime::now(), Payload::Signed),
        )
        .await;
    assert_eq!(complete.status, 200, "CompleteMultipartUpload: {}", complete.text());

    let log = server.events();
    for (what, response, event_type) in [
        ("PutObject", &put, "v1.object.put"),
        ("CopyObject", &copy, "v1.object.put"),
        ("Complete", &complete, "v1.multipart.completed"),
    ] {
        let (sequence, hash) = receipt(response);
        let stored =
            log.iter().find(|e| e.sequence == sequence).unwrap_or_else(|| panic!("{what}: no event {sequence}"));
        assert_eq!(stored.hash, hash, "{what}: the receipt's hash is the logged event's");
        assert_eq!(stored.event_type, event_type, "{what}");
        let event = api_json(&server, &format!("/_registry/events/{sequence}")).await;
        assert_eq!(event["hash"], hash, "{what}: the API shows the same event");
        assert_eq!(event["sequence"], sequence);
    }
    let missing = api(&server, "/_registry/events/999999").await;
    assert_eq!(missing.status, 404);
    assert_eq!(serde_json::from_slice::<Value>(&missing.body).unwrap()["code"], "NoSuchEvent");
}

#[tokio::test]
async fn provenance_lists_every_version_with_its_recording_event() {
    let server = Server::start(Transport::Http).await;
    create_bucket(&server.s3(), "prov").await;
    let s3 = server.s3();
    enable_versioning(&s3, "prov").await;
    let key = "releases/v1 build+ü.tar";
    let (first, second) = (bytes(3000, 2), bytes(5000, 3));
    let put = raw_put(
        &server,
        "prov",
        key,
        &first,
        &[("x-amz-meta-pipeline", "nightly"), ("x-amz-tagging", "team=ci"), ("user-agent", "release-bot/1.0")],
    )
    .await;
    let (sequence, hash) = receipt(&put);
    s3.put_object()
        .bucket("prov")
        .key(key)
        .checksum_algorithm(ChecksumAlgorithm::Sha256)
        .body(ByteStream::from(second.clone()))
        .send()
        .await
        .expect("second version");

    let target = format!("/_registry/objects/prov/{}", encode(key, true));
    let doc = api_json(&server, &target).await;
    assert_eq!((doc["bucket"].as_str(), doc["key"].as_str()), (Some("prov"), Some(key)));
    let versions = doc["versions"].as_array().expect("versions");
    assert_eq!(versions.len(), 2, "{doc}");
    let (newest, oldest) = (&versions[0], &versions[1]);
    assert_eq!(newest["is_latest"], true);
    assert_eq!(newest["blake3"], blake3_hex(&second));
    assert_eq!(newest["sha256"], sha256_base64(&second), "the SHA-256 the client sent is kept");
    assert_eq!(oldest["is_latest"], false);
    assert_eq!(oldest["size"], 3000);
    assert_eq!(oldest["etag"], md5_hex(&first));
    assert_eq!(oldest["blake3"], blake3_hex(&first));
    assert_eq!(oldest["sha256"], Value::Null, "no SHA-256 was sent for the first version");
    assert_eq!(oldest["uploader"], ACCESS_KEY);
    assert_eq!(oldest["request_id"], put.header("x-amz-request-id").expect("request id"));
    assert!(oldest["source_address"].as_str().is_some_and(|a| a.starts_with("127.0.0.1:")), "{oldest}");
    assert_eq!(oldest["user_agent"], "release-bot/1.0");
    assert_eq!(oldest["metadata"]["pipeline"], "nightly");
    assert_eq!(oldest["tags"]["team"], "ci");
    assert_eq!(oldest["retention"], Value::Null);
    assert_eq!(oldest["legal_hold"], false);
    assert_eq!(oldest["event"]["sequence"], sequence);
    assert_eq!(oldest["event"]["hash"], hash);
    assert_eq!(oldest["event"]["type"], "v1.object.put");
    assert_eq!(oldest["version_id"], put.header("x-amz-version-id").expect("version id"));

    let missing = api(&server, "/_registry/objects/prov/nothing-here").await;
    assert_eq!(missing.status, 404);
    assert_eq!(serde_json::from_slice::<Value>(&missing.body).unwrap()["code"], "NoSuchKey");

    // curl signs the same request with --aws-sigv4; S3 wants the payload hash header too.
    let curl = std::process::Command::new("curl")
        .args(["-sS", "--fail", "--aws-sigv4", "aws:amz:us-east-1:s3", "--user", &format!("{ACCESS_KEY}:{SECRET_KEY}")])
        .args(["-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD"])
        .arg(format!("{}{target}", server.endpoint()))
        .output()
        .expect("run curl");
    assert!(curl.status.success(), "curl: {}", String::from_utf8_lossy(&curl.stderr));
    let by_curl: Value = serde_json::from_slice(&curl.stdout).expect("curl got JSON");
    assert_eq!(by_curl, doc, "curl --aws-sigv4 reads the same document");
}

#[tokio::test]
async fn provenance_of_a_key_with_many_versions_comes_a_page_at_a_time() {
    let server = Server::start(Transport::Http).await;
    let s3 = server.s3();
    create_bucket(&s3, "pages").await;
    enable_versioning(&s3, "pages").await;
    let mut written = Vec::new();
    for i in 0..7 {
        let out = s3
            .put_object()
            .bucket("pages")
            .key("often.bin")
            .body(ByteStream::from(format!("version {i}").into_bytes()))
            .send()
            .await
            .expect("put a version");
        written.push(out.version_id().expect("a version id").to_owned());
    }
    written.reverse();

    let whole = api_json(&server, "/_registry/objects/pages/often.bin").await;
    let ids = |doc: &Value| -> Vec<String> {
        doc["versions"]
            .as_array()
            .expect("versions")
            .iter()
            .map(|v| v["version_id"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(ids(&whole), written, "every version, newest first");
    assert_eq!(whole["next_before"], Value::Null, "one page holds them all");

    let mut target = "/_registry/objects/pages/often.bin?limit=3".to_owned();
    let mut paged = Vec::new();
    let mut sizes = Vec::new();
    loop {
        let page = api_json(&server, &target).await;
        sizes.push(page["versions"].as_array().expect("versions").len());
        paged.extend(ids(&page));
        let Some(before) = page["next_before"].as_u64() else { break };
        assert_eq!(page["versions"][2]["event"]["sequence"], before, "the cursor is the page's last sequence");
        target = format!("/_registry/objects/pages/often.bin?limit=3&before={before}");
        assert!(sizes.len() < 5, "paging does not end: {target}");
    }
    assert_eq!(sizes, [3, 3, 1]);
    assert_eq!(paged, written, "the pages together are the whole history, each version once");

    for bad in ["limit=0", "limit=x", "before=-1"] {
        let refused = api(&server, &format!("/_registry/objects/pages/often.bin?{bad}")).await;
        assert_eq!(refused.status, 400, "{bad}: {}", refused.text());
        assert_eq!(serde_json::from_slice::<Value>(&refused.body).unwrap()["code"], "InvalidArgument", "{bad}");
    }
}

#[tokio::test]
async fn retrieval_records_filter_and_export() {
    let server = Server::start(Transport::Http).await;
    create_bucket(&server.s3(), "reads").await;
    let data = bytes(4096, 4);
    put(&server.s3(), "reads", "a.bin", &data).await;
    put(&server.s3(), "reads", "b.bin", &data[..100]).await;
    assert_eq!(get_range(&server.s3(), "reads", "a.bin", None).await, data);
    assert_eq!(get_range(&server.s3(), "reads", "a.bin", Some("bytes=0-9")).await, data[..10]);
    assert_eq!(get_range(&server.s3(), "reads", "b.bin", None).await, data[..100]);
    for key in ["a.bin", "b.bin"] {
        let wanted = if key == "a.bin" { 2 } else { 1 };
        server
            .wait_for_events("reads", key, |events| {
                events.iter().filter(|e| e.event_type == "v1.object.retrieved").count() == wanted
            })
            .await;
    }

    let all = api_json(&server, "/_registry/retrievals?bucket=reads").await;
    let records = all["retrievals"].as_array().expect("retrievals");
    assert_eq!(records.len(), 3, "{all}");
    let ranged = records.iter().find(|r| r["range"].is_string()).expect("the ranged read");
    assert_eq!((ranged["key"].as_str(), ranged["bytes"].as_u64()), (Some("a.bin"), Some(10)));
    assert_eq!(ranged["actor"], ACCESS_KEY);
    assert_eq!(ranged["method"], "GET");

    let by_key = api_json(&server, "/_registry/retrievals?bucket=reads&key=a.bin").await;
    assert_eq!(by_key["retrievals"].as_array().unwrap().len(), 2);
    let by_actor = api_json(&server, &format!("/_registry/retrievals?actor={ACCESS_KEY}")).await;
    assert_eq!(by_actor["retrievals"].as_array().unwrap().len(), 3);
    let nobody = api_json(&server, "/_registry/retrievals?actor=SOMEONEELSE").await;
    assert!(nobody["retrievals"].as_array().unwrap().is_empty());
    // Reads recorded in one group commit can share a time: count those at or after it.
    let later = records[2]["time"].as_str().unwrap();
    let at_or_after = records.iter().filter(|r| r["time"].as_str().unwrap() >= later).count();
    let since = api_json(&server, &format!("/_registry/retrievals?from={}", encode(later, false))).await;
    assert_eq!(since["retrievals"].as_array().unwrap().len(), at_or_after, "from= keeps reads at or after that time");
    let earliest = records[0]["time"].as_str().unwrap();
    let all_since = api_json(&server, &format!("/_registry/retrievals?from={}", encode(earliest, false))).await;
    assert_eq!(all_since["retrievals"].as_array().unwrap().len(), 3, "from= the first read keeps all");
    let first_page = api(&server, "/_registry/retrievals?limit=1").await;
    let next = first_page.header("x-artifact-store-next-since").expect("cursor").to_owned();
    let rest = api_json(&server, &format!("/_registry/retrievals?after={next}")).await;
    assert_eq!(rest["retrievals"].as_array().unwrap().len(), 2, "after= continues the previous page");

    let log = api(&server, "/_registry/retrievals?bucket=reads&format=access-log").await;
    assert_eq!(log.status, 200);
    let text = log.text();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(lines.iter().all(|l| l.contains(" REST.GET.OBJECT ") && l.starts_with("- reads [")), "{text}");
    assert!(lines.iter().any(|l| l.contains("\"GET /reads/a.bin HTTP/1.1\" 206 - 10 ")), "{text}");
    assert!(lines.iter().any(|l| l.contains("\"GET /reads/b.bin HTTP/1.1\" 200 - 100 ")), "{text}");

    let trail = api_json(&server, "/_registry/retrievals?bucket=reads&key=b.bin&format=cloudtrail").await;
    let record = &trail["Records"][0];
    assert_eq!(record["eventName"], "GetObject");
    assert_eq!(record["eventSource"], "s3.amazonaws.com");
    assert_eq!(record["requestParameters"]["key"], "b.bin");
    assert_eq!(record["additionalEventData"]["bytesTransferredOut"], 100);
    assert_eq!(record["userIdentity"]["accessKeyId"], ACCESS_KEY);
    assert_eq!(record["sourceIPAddress"], "127.0.0.1");
    assert_eq!(api(&server, "/_registry/retrievals?format=xml").await.status, 400);
}

/// Found by an attacker's pass: records of a key were filtered by bucket name only, so the
/// account that took a deleted bucket's name read the old owner's readers of the key.
#[tokio::test]
async fn retrievals_of_a_key_in_a_bucket_name_taken_again_are_the_new_buckets_only() {
    let server = Server::start(Transport::Http).await;
    let s3 = server.s3();
    create_bucket(&s3, "reused").await;
    put(&s3, "reused", "payroll.csv", b"the first owner's").await;
    artifact_store_conformance::sdk::get(&s3, "reused", "payroll.csv").await;
    s3.delete_object().bucket("reused").key("payroll.csv").send().await.expect("delete the object");
    s3.delete_bucket().bucket("reused").send().await.expect("delete the bucket");

    let partner = artifact_store_conformance::cli::expect(&server, &["--json", "account", "create", "partner"], 0);
    let partner: Value = serde_json::from_str(partner.stdout.trim()).expect("JSON");
    let key = Key {
        access_key: partner["access_key"].as_str().unwrap(),
        secret_key: partner["secret_key"].as_str().unwrap(),
    };
    let as_partner = server.s3_as(key);
    create_bucket(&as_partner, "reused").await;
    put(&as_partner, "reused", "payroll.csv", b"the second owner's").await;
    artifact_store_conformance::sdk::get(&as_partner, "reused", "payroll.csv").await;
    // Both reads recorded (records are committed after the response).
    server
        .wait_for_events("reused", "payroll.csv", |events| {
            events.iter().filter(|e| e.event_type == "v1.object.retrieved").count() == 2
        })
        .await;

    let target = "/_registry/retrievals?bucket=reused&key=payroll.csv";
    let response = server.send(&server.request("GET", target).sign(key, SystemTime::now(), Payload::Signed)).await;
    assert_eq!(response.status, 200, "{}", response.text());
    let doc: Value = serde_json::from_slice(&response.body).expect("JSON");
    let readers: Vec<&str> =
        doc["retrievals"].as_array().expect("records").iter().map(|r| r["actor"].as_str().unwrap()).collect();
    assert_eq!(readers, [key.access_key], "only the new bucket's read: {doc}");
    // The whole history stays with the holders of ReadRetrievals.
    let all = api_json(&server, "/_registry/retrievals?bucket=reused").await;
    assert_eq!(all["retrievals"].as_array().expect("records").len(), 2, "{all}");
}

#[tokio::test]
async fn the_event_feed_pages_filters_and_resumes() {
    let server = Server::start(Transport::Http).await;
    create_bucket(&server.s3(), "feed-a").await;
    create_bucket(&server.s3(), "feed-b").await;
    put(&server.s3(), "feed-a", "one", b"1").await;
    put(&server.s3(), "feed-b", "two", b"2").await;
    put(&server.s3(), "feed-a", "three", b"3").await;

    let all = api(&server, "/_registry/events").await;
    assert_eq!(all.header("content-type"), Some("application/x-ndjson"));
    let every = lines(&all);
    // The first start recorded the root account's 3 events (1 to 3).
    assert_eq!(every.len(), FIRST_START_EVENTS + 5);
    assert_eq!(every.iter().map(|e| e["sequence"].as_u64().unwrap()).collect::<Vec<_>>(), [1, 2, 3, 4, 5, 6, 7, 8]);

    let page = api(&server, "/_registry/events?since=4&limit=2").await;
    assert_eq!(lines(&page).iter().map(|e| e["sequence"].as_u64().unwrap()).collect::<Vec<_>>(), [5, 6]);
    assert_eq!(page.header("x-artifact-store-next-since"), Some("6"));
    let resumed = lines(&api(&server, "/_registry/events?since=6").await);
    assert_eq!(resumed.iter().map(|e| e["sequence"].as_u64().unwrap()).collect::<Vec<_>>(), [7, 8]);

    let bucket_a = lines(&api(&server, "/_registry/events?bucket=feed-a").await);
    let subjects: Vec<&str> = bucket_a.iter().map(|e| e["subject_id"].as_str().unwrap()).collect();
    assert_eq!(subjects, ["feed-a", "feed-a/one", "feed-a/three"]);
    let puts_a = lines(&api(&server, "/_registry/events?bucket=feed-a&type=v1.object.put").await);
    assert_eq!(puts_a.len(), 2);
    let created = lines(&api(&server, "/_registry/events?type=v1.bucket.created,v1.object.put&since=5").await);
    assert_eq!(created.len(), 3, "several types, after a sequence");
    let none = api(&server, "/_registry/events?bucket=feed-zzz").await;
    assert!(none.body.is_empty());
    assert_eq!(none.header("x-artifact-store-next-since"), Some("8"), "the scan's end is the next start");
}

#[tokio::test]
async fn a_long_poll_answers_with_the_event_a_put_commits() {
    let server = std::sync::Arc::new(Server::start(Transport::Http).await);
    create_bucket(&server.s3(), "poll").await;
    let head = server.events().last().map_or(0, |e| e.sequence);

    let polling = {
        let server = std::sync::Arc::clone(&server);
        tokio::spawn(async move { api(&server, &format!("/_registry/events?since={head}&bucket=poll&wait=60")).await })
    };
    put(&server.s3(), "poll", "new.bin", b"fresh").await;
    let answer = polling.await.expect("long poll task");
    assert_eq!(answer.status, 200);
    let events = lines(&answer);
    assert!(!events.is_empty(), "the long poll answered with the new event");
    assert_eq!(events[0]["event_type"], "v1.object.put");
    assert_eq!(events[0]["subject_id"], "poll/new.bin");

    // Nothing new within the wait: an empty page that resumes where it stopped.
    let after = events.last().unwrap()["sequence"].as_u64().unwrap();
    let quiet = api(&server, &format!("/_registry/events?since={after}&bucket=poll&wait=1")).await;
    assert_eq!(quiet.status, 200);
    assert!(quiet.body.is_empty(), "{}", quiet.text());
    assert_eq!(quiet.header("x-artifact-store-next-since"), Some(after.to_string().as_str()));
}

#[tokio::test]
async fn a_long_poll_whose_scan_ran_out_before_the_head_answers_at_once() {
    let server = Server::start(Transport::Http).await;
    let s3 = server.s3();
    create_bucket(&s3, "quiet").await;
    create_bucket(&s3, "busy").await;
    enable_versioning(&s3, "busy").await;
    let since = server.events().last().map_or(0, |e| e.sequence);
    // More events than one call scans (100,000), none about `quiet`: each key deleted in a
    // versioned bucket gains a delete marker, one event each.
    for batch in 0..101 {
        let ids: Vec<ObjectIdentifier> = (0..1000)
            .map(|i| ObjectIdentifier::builder().key(format!("{batch}/{i}")).build().expect("identifier"))
            .collect();
        let delete = Delete::builder().set_objects(Some(ids)).quiet(true).build().expect("delete");
        let done = s3.delete_objects().bucket("busy").delete(delete).send().await.expect("delete 1,000 keys");
        assert!(done.errors().is_empty(), "{:?}", done.errors());
    }
    let head = server.events().last().map_or(0, |e| e.sequence);
    assert!(head - since > 100_000, "the log outgrew one scan: {since}..{head}");

    // The scan stops after 100,000 events with nothing found: the answer says where it stopped,
    // without waiting and without reading on to the head.
    let first = api(&server, &format!("/_registry/events?since={since}&bucket=quiet&wait=5")).await;
    assert_eq!(first.status, 200, "{}", first.text());
    assert!(first.body.is_empty(), "{}", first.text());
    assert_eq!(first.header("x-artifact-store-next-since"), Some((since + 100_000).to_string().as_str()));
    // From there the rest of the log is scanned, and the poll waits at the head.
    let second = api(&server, &format!("/_registry/events?since={}&bucket=quiet&wait=1", since + 100_000)).await;
    assert_eq!(second.status, 200, "{}", second.text());
    assert!(second.body.is_empty(), "{}", second.text());
    assert_eq!(second.header("x-artifact-store-next-since"), Some(head.to_string().as_str()));
}

/// An open Server-Sent Events stream over plain HTTP.
struct EventStream {
    tcp: tokio::net::TcpStream,
    buffer: String,
}

impl EventStream {
    async fn open(server: &Server, target: &str, last_event_id: Option<u64>) -> Self {
        let mut request = server.request("GET", target);
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", &id.to_string());
        }
        let request = request.sign(ROOT, SystemTime::now(), Payload::Signed);
        let mut tcp = tokio::net::TcpStream::connect(server.addr()).await.expect("connect");
        tcp.write_all(&request.to_bytes()).await.expect("send the request");
        let mut stream = Self { tcp, buffer: String::new() };
        let head = stream.read_until("\r\n\r\n").await;
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert!(head.to_ascii_lowercase().contains("content-type: text/event-stream"), "{head}");
        stream
    }

    /// Reads until `marker` arrives and returns everything up to it.
    async fn read_until(&mut self, marker: &str) -> String {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(at) = self.buffer.find(marker) {
                let text = self.buffer[..at + marker.len()].to_owned();
                self.buffer.drain(..at + marker.len());
                return text;
            }
            let mut chunk = [0; 4096];
            let read = tokio::time::timeout_at(deadline, self.tcp.read(&mut chunk))
                .await
                .expect("no event within a minute")
                .expect("read the stream");
            assert!(read > 0, "the stream ended; so far: {}", self.buffer);
            self.buffer.push_str(&String::from_utf8_lossy(&chunk[..read]));
        }
    }

    /// The next message: (id, event type, data). Keep-alive comments and the chunked framing
    /// between messages are skipped.
    async fn next(&mut self) -> (u64, String, Value) {
        loop {
            let block = self.read_until("\n\n").await;
            let field = |name: &str| block.lines().find_map(|line| line.strip_prefix(name).map(str::to_owned));
            if let (Some(id), Some(event), Some(data)) = (field("id: "), field("event: "), field("data: ")) {
                return (id.parse().expect("id"), event, serde_json::from_str(&data).expect("data is JSON"));
            }
        }
    }
}

#[tokio::test]
async fn server_sent_events_deliver_a_put_and_resume_from_last_event_id() {
    let server = Server::start(Transport::Http).await;
    create_bucket(&server.s3(), "sse").await;
    create_bucket(&server.s3(), "sse-other").await;
    let mut stream = EventStream::open(&server, "/_registry/events/stream?bucket=sse&type=v1.object.put", None).await;
    put(&server.s3(), "sse-other", "ignored", b"x").await;
    put(&server.s3(), "sse", "first", b"1").await;
    let (id, event, data) = stream.next().await;
    assert_eq!(event, "v1.object.put");
    assert_eq!(data["subject_id"], "sse/first", "the filter skips other buckets");
    assert_eq!(data["sequence"], id);
    put(&server.s3(), "sse", "second", b"2").await;
    let (second_id, _, data) = stream.next().await;
    assert_eq!(data["subject_id"], "sse/second");

    // A client that lost the connection resumes after the last id it saw.
    let mut resumed =
        EventStream::open(&server, "/_registry/events/stream?bucket=sse&type=v1.object.put&since=0", Some(id)).await;
    let (next_id, _, data) = resumed.next().await;
    assert_eq!((next_id, data["subject_id"].as_str()), (second_id, Some("sse/second")));
    let mut from_start = EventStream::open(&server, "/_registry/events/stream?since=0", None).await;
    assert_eq!(from_start.next().await.0, 1, "since=0 replays the log from its first event");
}

#[tokio::test]
async fn the_registry_api_answers_over_https() {
    let server = Server::start(Transport::Https).await;
    create_bucket(&server.s3(), "tls").await;
    let put = raw_put(&server, "tls", "k", b"over tls", &[]).await;
    let (sequence, hash) = receipt(&put);
    let doc = api_json(&server, "/_registry/objects/tls/k").await;
    assert_eq!(doc["versions"][0]["event"]["sequence"], sequence);
    assert_eq!(doc["versions"][0]["event"]["hash"], hash);
    let events = lines(&api(&server, "/_registry/events?bucket=tls").await);
    assert_eq!(events.len(), 2);
}

#[tokio::test]
async fn provenance_shows_retention_and_legal_hold() {
    use aws_sdk_s3::primitives::DateTime;
    use aws_sdk_s3::types::{ObjectLockLegalHoldStatus, ObjectLockMode};

    let server = Server::start(Transport::Http).await;
    let s3 = server.s3();
    s3.create_bucket().bucket("locked").object_lock_enabled_for_bucket(true).send().await.expect("locked bucket");
    let until = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs() + 86_400;
    s3.put_object()
        .bucket("locked")
        .key("evidence.pdf")
        .object_lock_mode(ObjectLockMode::Governance)
        .object_lock_retain_until_date(DateTime::from_secs(i64::try_from(until).unwrap()))
        .object_lock_legal_hold_status(ObjectLockLegalHoldStatus::On)
        .body(ByteStream::from_static(b"evidence"))
        .send()
        .await
        .expect("locked put");
    let doc = api_json(&server, "/_registry/objects/locked/evidence.pdf").await;
    let version = &doc["versions"][0];
    assert_eq!(version["retention"]["mode"], "GOVERNANCE");
    let retain_until = version["retention"]["retain_until"].as_str().expect("a time");
    let expected = DateTime::from_secs(i64::try_from(until).unwrap())
        .fmt(aws_sdk_s3::primitives::DateTimeFormat::DateTime)
        .expect("format");
    assert_eq!(retain_until.replace(".000Z", "Z"), expected);
    assert_eq!(version["legal_hold"], true);
}

/// The page's `sh` code blocks, in order.
fn sh_blocks(page: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut lines = page.lines();
    while let Some(line) = lines.next() {
        if line.trim() == "```sh" {
            blocks.push(lines.by_ref().take_while(|l| l.trim() != "```").collect::<Vec<_>>().join("\n"));
        }
    }
    blocks
}

fn has_command(name: &str) -> bool {
    std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {name}"))
        .stdout(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Runs `script` with bash, with the root credentials exported as the page tells the reader to,
/// and gives up after `seconds` (`timeout`'s exit 124 then).
fn bash(script: &str, seconds: u32) -> std::process::Output {
    std::process::Command::new("timeout")
        .arg(seconds.to_string())
        .args(["bash", "-c", script])
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run bash")
}

/// The shell helper and the curl commands of `docs/registry-api.md`, run as written (only the
/// address is this server's) with the machine's curl. SigV4 signs a canonical query (sorted,
/// percent-encoded): Debian 12's curl 7.88 signs the query as given, so a helper that hands it
/// `since=0&limit=100&...` or `from=2026-11-01T00:00:00Z` as they are is refused.
#[tokio::test]
async fn the_documented_curl_commands_work_as_written() {
    if !has_command("curl") || !has_command("jq") {
        skip("curl or jq is not installed (scripts/install-test-deps.sh installs them)");
        return;
    }
    let server = Server::start(Transport::Http).await;
    let page = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/registry-api.md"))
        .expect("docs/registry-api.md")
        .replace("http://127.0.0.1:9000", &server.endpoint());
    let blocks = sh_blocks(&page);
    let helper = blocks.iter().find(|b| b.contains("registry() {")).expect("the page defines registry()");
    let helper: String = helper.lines().filter(|l| !l.starts_with("export AWS_")).collect::<Vec<_>>().join("\n");
    let calls: Vec<&str> = blocks.iter().flat_map(|b| b.lines()).filter(|l| l.starts_with("registry '")).collect();
    assert!(calls.len() >= 4, "the page's registry calls: {calls:?}");
    let stream = blocks.iter().find(|b| b.contains("events/stream")).expect("the page's stream command");

    let s3 = server.s3();
    create_bucket(&s3, "releases").await;
    put(&s3, "releases", "app-1.4.2.tar.gz", b"hello\n").await;
    let read = get_range(&s3, "releases", "app-1.4.2.tar.gz", None).await;
    assert_eq!(read, b"hello\n");
    server
        .wait_for_events("releases", "app-1.4.2.tar.gz", |events| {
            events.iter().any(|e| e.event_type == "v1.object.retrieved")
        })
        .await;

    for call in calls {
        let output = bash(&format!("{helper}\n{call}"), 60);
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "{call} failed ({:?}): {stdout}{}",
            output.status.code(),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(!stdout.trim().is_empty(), "{call} answered nothing");
        if call.contains("since=0&limit=100&bucket=releases&type=v1.object.put") {
            assert!(stdout.contains("\"v1.object.put\""), "{call}: {stdout}");
        }
    }

    // The stream runs until the client leaves: it must have sent the put by then.
    let output = bash(stream, 3);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(124),
        "the stream stays open: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("event: v1.object.put"), "{stdout}");
}

/// Whether a key exists is told by the provenance endpoint only to whoever may list its bucket,
/// as a GET tells it: another account's user allowed to read a public-read bucket's objects
/// hears 403 for a key that does not exist, as for one it may not see.
#[tokio::test]
async fn provenance_of_a_missing_key_is_404_only_to_whoever_may_list_the_bucket() {
    let server = Server::start(Transport::Http).await;
    let s3 = server.s3();
    create_bucket(&s3, "pubr").await;
    put(&s3, "pubr", "exists.txt", b"here").await;
    let policy = r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::pubr/*"}]}"#;
    s3.put_bucket_policy().bucket("pubr").policy(policy).send().await.expect("put bucket policy");
    let partner = artifact_store_conformance::cli::expect(&server, &["--json", "account", "create", "partner"], 0);
    let partner: Value = serde_json::from_str(partner.stdout.trim()).expect("JSON");
    let key = Key {
        access_key: partner["access_key"].as_str().expect("access_key"),
        secret_key: partner["secret_key"].as_str().expect("secret_key"),
    };
    let as_partner = |target: &str| server.request("GET", target).sign(key, SystemTime::now(), Payload::Signed);
    assert_eq!(server.send(&as_partner("/_registry/objects/pubr/exists.txt")).await.status, 200);
    let missing = server.send(&as_partner("/_registry/objects/pubr/missing.txt")).await;
    assert_eq!(missing.status, 403, "the partner: {}", missing.text());
    assert!(missing.text().contains(r#""code":"AccessDenied""#), "{}", missing.text());
    let owner = api(&server, "/_registry/objects/pubr/missing.txt").await;
    assert_eq!(owner.status, 404, "the owner: {}", owner.text());
    assert!(owner.text().contains(r#""code":"NoSuchKey""#), "{}", owner.text());
    // Nor through a page before the oldest version, or the key's (absent) readers.
    let page = server.send(&as_partner("/_registry/objects/pubr/missing.txt?before=9223372036854775807")).await;
    assert_eq!(page.status, 403, "a later page of a missing key: {}", page.text());
    let readers = server.send(&as_partner("/_registry/retrievals?bucket=pubr&key=missing.txt")).await;
    assert_eq!(readers.status, 403, "the readers of a missing key: {}", readers.text());
    let readers = server.send(&as_partner("/_registry/retrievals?bucket=pubr&key=exists.txt")).await;
    assert_eq!(readers.status, 200, "the readers of a key that is there: {}", readers.text());
    assert_eq!(api(&server, "/_registry/retrievals?bucket=pubr&key=missing.txt").await.status, 200, "the owner");
}
