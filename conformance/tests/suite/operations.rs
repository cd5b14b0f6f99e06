//! What an operator relies on, against the real binary: `/_health` and `/_ready`, `/_metrics`
//! read by a Prometheus text-format parser with counters that match the requests made, a
//! graceful SIGTERM that finishes an upload in flight and loses nothing across a restart,
//! and the CLI commands that read the registry beside a serving gateway.

use std::io::BufRead as _;
use std::time::{Duration, SystemTime};

use artifact_store_conformance::raw::{Payload, ROOT, encode};
use artifact_store_conformance::sdk::{create_bucket, enable_versioning, failure, get, put};
use artifact_store_conformance::server::upstream_env;
use artifact_store_conformance::{ACCESS_KEY, FIRST_START_EVENTS, Server, Transport, bytes, metrics};
use prometheus_parse::{Scrape, Value as Sample};
use serde_json::Value;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// Waits until the log holds `count` retrieval records (they commit after the response).
async fn wait_for_retrievals(server: &Server, bucket: &str, key: &str, count: usize) {
    server
        .wait_for_events(bucket, key, |events| {
            events.iter().filter(|e| e.event_type == "v1.object.retrieved").count() == count
        })
        .await;
}

#[tokio::test]
async fn health_and_readiness_need_no_credentials() {
    let server = Server::start(Transport::Http).await;
    let health = server.send(&server.request("GET", "/_health")).await;
    assert_eq!((health.status, health.text().as_str()), (200, "ok"));
    let ready = server.send(&server.request("GET", "/_ready")).await;
    assert_eq!((ready.status, ready.text().as_str()), (200, "ready"));
    assert_eq!(server.events().len(), FIRST_START_EVENTS, "a readiness probe appends no event");
    // A bucket may be called `health`: its objects are not the admin endpoints.
    create_bucket(&server.s3(), "health").await;
    put(&server.s3(), "health", "_ready", b"object").await;
    assert_eq!(get(&server.s3(), "health", "_ready").await, b"object");
}

#[tokio::test]
async fn a_separate_admin_listener_takes_the_metrics_off_the_s3_port() {
    let server = Server::start_with(Transport::Http, &["--admin-listen", "127.0.0.1:0"], upstream_env()).await;
    let log = server.log();
    let addr = log
        .lines()
        .find(|line| line.contains("admin listening"))
        .and_then(|line| line.split("addr=").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no admin address in the log:\n{log}"))
        .to_owned();
    let fetch = |path: &'static str| {
        let addr = addr.clone();
        async move {
            let mut tcp = tokio::net::TcpStream::connect(&addr).await.expect("connect to the admin listener");
            let request = format!("GET {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n");
            tcp.write_all(request.as_bytes()).await.expect("send");
            let mut response = Vec::new();
            tcp.read_to_end(&mut response).await.expect("read");
            String::from_utf8_lossy(&response).into_owned()
        }
    };
    assert!(fetch("/_health").await.starts_with("HTTP/1.1 200"));
    assert!(fetch("/_ready").await.starts_with("HTTP/1.1 200"));
    let metrics = fetch("/_metrics").await;
    assert!(
        metrics.starts_with("HTTP/1.1 200") && metrics.contains("artifact_store_retrieval_records_dropped_total 0")
    );
    assert_eq!(
        fetch("/_registry/events").await.split(' ').nth(1),
        Some("404"),
        "the registry API stays on the S3 port"
    );
    assert_eq!(server.send(&server.request("GET", "/_metrics")).await.status, 404, "metrics left the S3 port");
    assert_eq!(server.send(&server.request("GET", "/_ready")).await.status, 200, "readiness stays for load balancers");
}

/// The value of `name` with exactly `labels`, which the scrape must have.
fn sample(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    metrics::sample(scrape, name, labels).unwrap_or_else(|| panic!("{name} {labels:?} is not in the scrape"))
}

#[tokio::test]
async fn metrics_parse_and_count_the_requests_made() {
    let server = Server::start(Transport::Http).await;
    create_bucket(&server.s3(), "metered").await;
    let sizes = [1000_usize, 20_000, 300_000];
    for (seed, size) in sizes.iter().enumerate() {
        put(&server.s3(), "metered", &format!("k{seed}"), &bytes(*size, seed as u64)).await;
    }
    assert_eq!(get(&server.s3(), "metered", "k0").await.len(), 1000);
    assert_eq!(get(&server.s3(), "metered", "k2").await.len(), 300_000);
    let missing = server.s3().get_object().bucket("metered").key("nope").send().await;
    assert_eq!(failure(missing).1, "NoSuchKey");
    server.s3().head_object().bucket("metered").key("k1").send().await.expect("head");
    wait_for_retrievals(&server, "metered", "k0", 1).await;
    wait_for_retrievals(&server, "metered", "k1", 1).await;
    wait_for_retrievals(&server, "metered", "k2", 1).await;

    let scrape = server.scrape().await;
    let requests = |api| sample(&scrape, "artifact_store_s3_requests_total", &[("api", api)]);
    assert_eq!(requests("CreateBucket"), 1.0);
    assert_eq!(requests("PutObject"), 3.0);
    assert_eq!(requests("GetObject"), 3.0);
    assert_eq!(requests("HeadObject"), 1.0);
    assert_eq!(sample(&scrape, "artifact_store_s3_errors_total", &[("api", "GetObject"), ("code", "NoSuchKey")]), 1.0);
    let put_latency = scrape
        .samples
        .iter()
        .find(|s| s.metric == "artifact_store_s3_request_duration_seconds" && s.labels.get("api") == Some("PutObject"))
        .expect("a PutObject latency histogram");
    let Sample::Histogram(buckets) = &put_latency.value else { panic!("not a histogram: {:?}", put_latency.value) };
    assert_eq!(buckets.last().map(|b| b.count), Some(3.0), "+Inf counts every PutObject");
    assert_eq!(sample(&scrape, "artifact_store_bytes_received_total", &[]), 321_000.0);
    assert_eq!(sample(&scrape, "artifact_store_bytes_sent_total", &[]), 301_000.0);
    // The first start's 3, then 1 bucket + 3 puts + 3 retrievals (2 GETs, 1 HEAD).
    assert_eq!(sample(&scrape, "artifact_store_registry_events_appended_total", &[]), 10.0);
    assert_eq!(sample(&scrape, "artifact_store_registry_head_sequence", &[]), 10.0);
    assert_eq!(sample(&scrape, "artifact_store_retrieval_records_dropped_total", &[]), 0.0);
    assert!(sample(&scrape, "artifact_store_registry_group_commits_total", &[]) >= 1.0);
    assert!(sample(&scrape, "artifact_store_registry_group_commit_jobs_total", &[]) >= 7.0);
    let commits = sample(&scrape, "artifact_store_registry_group_commits_total", &[]);
    assert_eq!(sample(&scrape, "artifact_store_registry_group_commit_size", &[]), commits, "one size per commit");
    assert_eq!(
        sample(&scrape, "artifact_store_registry_group_commit_duration_seconds", &[]),
        commits,
        "one duration per commit"
    );
    // Ten events leave every WAL far below the size at which the writer finishes a checkpoint.
    assert_eq!(sample(&scrape, "artifact_store_registry_writer_checkpoint_duration_seconds", &[]), 0.0);
    // An embedded registry has no shared head to wait for or hold.
    assert_eq!(sample(&scrape, "artifact_store_registry_shared_head_wait_seconds_total", &[]), 0.0);
    assert_eq!(sample(&scrape, "artifact_store_registry_shared_head_held_seconds_total", &[]), 0.0);
    assert_eq!(sample(&scrape, "artifact_store_registry_shared_head_caught_up_events_total", &[]), 0.0);
    assert!(sample(&scrape, "artifact_store_http_responses_total", &[("status", "404")]) >= 1.0);
}

#[tokio::test]
async fn sigterm_finishes_an_upload_in_flight_and_a_restart_loses_nothing() {
    let mut server = Server::start(Transport::Http).await;
    create_bucket(&server.s3(), "durable").await;
    let acknowledged: Vec<(String, Vec<u8>)> =
        (0..5).map(|i| (format!("before-{i}"), bytes(10_000 + i, i as u64))).collect();
    for (key, data) in &acknowledged {
        put(&server.s3(), "durable", key, data).await;
    }

    // Half of an upload's body is on the wire when SIGTERM arrives.
    let body = bytes(1 << 20, 99);
    let request = server
        .request("PUT", &format!("/durable/{}", encode("in-flight.bin", true)))
        .body(body.clone())
        .sign(ROOT, SystemTime::now(), Payload::Unsigned)
        .to_bytes();
    let split = request.len() - body.len() / 2;
    let mut tcp = tokio::net::TcpStream::connect(server.addr()).await.expect("connect");
    tcp.write_all(&request[..split]).await.expect("first half");
    tcp.flush().await.expect("flush");
    // A HEAD on another connection proves the server is reading the upload's request by now.
    server.s3().head_bucket().bucket("durable").send().await.expect("head bucket");
    server.terminate();
    // Once the listener is closed, the shutdown is under way while the upload is unfinished.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while tokio::net::TcpStream::connect(server.addr()).await.is_ok() {
        assert!(tokio::time::Instant::now() < deadline, "the server kept accepting after SIGTERM");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tcp.write_all(&request[split..]).await.expect("second half");
    let mut response = Vec::new();
    tcp.read_to_end(&mut response).await.expect("the response");
    let response = String::from_utf8_lossy(&response);
    assert!(response.starts_with("HTTP/1.1 200"), "the upload in flight finishes: {response}");
    assert!(response.contains("x-artifact-store-event: "), "{response}");
    let status = server.wait_exit().await;
    assert!(status.success(), "a SIGTERM exit is clean: {status}\n{}", server.log());
    assert!(server.log().contains("shutting down"), "{}", server.log());

    server.restart().await;
    for (key, data) in &acknowledged {
        assert_eq!(&get(&server.s3(), "durable", key).await, data, "{key} survived the restart");
    }
    assert_eq!(get(&server.s3(), "durable", "in-flight.bin").await, body, "the acknowledged upload survived");
    let verify = server.cli(&["verify"]);
    let output = format!("{}{}", String::from_utf8_lossy(&verify.stdout), String::from_utf8_lossy(&verify.stderr));
    assert!(verify.status.success(), "verify after restart: {output}");
}

#[tokio::test]
async fn cli_commands_read_the_registry_beside_a_serving_gateway() {
    let server = Server::start(Transport::Http).await;
    create_bucket(&server.s3(), "cli-a").await;
    create_bucket(&server.s3(), "cli-b").await;
    let data = bytes(2048, 7);
    put(&server.s3(), "cli-a", "dir/app.tar", &data).await;
    put(&server.s3(), "cli-b", "other", b"x").await;
    assert_eq!(get(&server.s3(), "cli-a", "dir/app.tar").await, data);
    wait_for_retrievals(&server, "cli-a", "dir/app.tar", 1).await;

    let stdout = |args: &[&str]| {
        let output = server.cli(args);
        assert!(output.status.success(), "{args:?}: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8(output.stdout).expect("UTF-8 output")
    };
    let json_lines =
        |text: &str| -> Vec<Value> { text.lines().map(|l| serde_json::from_str(l).expect("JSON")).collect() };

    // events list: filters, JSON lines, table.
    let puts = json_lines(&stdout(&["events", "list", "--json", "--bucket", "cli-a", "--type", "v1.object.put"]));
    assert_eq!(puts.len(), 1);
    assert_eq!(puts[0]["subject_id"], "cli-a/dir/app.tar");
    let all = json_lines(&stdout(&["events", "list", "--json"]));
    assert_eq!(all.len(), FIRST_START_EVENTS + 5, "the first start's, 2 buckets, 2 puts, 1 retrieval");
    let limited = json_lines(&stdout(&["events", "list", "--json", "--since", "4", "--limit", "2"]));
    assert_eq!(limited.iter().map(|e| e["sequence"].as_u64().unwrap()).collect::<Vec<_>>(), [5, 6]);
    let table = stdout(&["events", "list", "--bucket", "cli-b"]);
    assert_eq!(table.lines().count(), 3, "a header and cli-b's two events:\n{table}");

    // object history: one JSON document, the same as the registry API's.
    let history: Value = serde_json::from_str(&stdout(&["object", "history", "s3://cli-a/dir/app.tar", "--json"]))
        .expect("one JSON document");
    assert_eq!(history["versions"][0]["blake3"], artifact_store_conformance::blake3_hex(&data));
    assert_eq!(history["versions"][0]["uploader"], ACCESS_KEY);
    let by_api = server
        .send(&server.request("GET", "/_registry/objects/cli-a/dir/app.tar").sign(
            ROOT,
            SystemTime::now(),
            Payload::Signed,
        ))
        .await;
    let mut versions_only = history.clone();
    versions_only.as_object_mut().expect("a JSON object").remove("events");
    assert_eq!(serde_json::from_slice::<Value>(&by_api.body).expect("JSON"), versions_only);
    let text = stdout(&["object", "history", "s3://cli-a/dir/app.tar"]);
    assert!(text.contains("blake3") && text.contains(ACCESS_KEY), "{text}");
    let missing = server.cli(&["object", "history", "s3://cli-a/nothing"]);
    assert_eq!(missing.status.code(), Some(2), "no such key is an error");

    // retrievals: filters and formats.
    let records = json_lines(&stdout(&["retrievals", "--json", "--bucket", "cli-a"]));
    assert_eq!(records.len(), 1);
    assert_eq!((records[0]["key"].as_str(), records[0]["bytes"].as_u64()), (Some("dir/app.tar"), Some(2048)));
    assert!(stdout(&["retrievals", "--json", "--actor", "NOBODY"]).is_empty());
    let log = stdout(&["retrievals", "--format", "access-log"]);
    assert!(log.contains("REST.GET.OBJECT dir/app.tar \"GET /cli-a/dir/app.tar HTTP/1.1\" 200 - 2048 "), "{log}");
    // The CloudTrail document is written record by record: with several records, and with none.
    assert_eq!(get(&server.s3(), "cli-b", "other").await, b"x");
    wait_for_retrievals(&server, "cli-b", "other", 1).await;
    let trail: Value = serde_json::from_str(&stdout(&["retrievals", "--format", "cloudtrail"])).expect("JSON");
    let keys: Vec<_> =
        trail["Records"].as_array().expect("Records").iter().map(|r| &r["requestParameters"]["key"]).collect();
    assert_eq!(keys, ["dir/app.tar", "other"]);
    assert_eq!(trail["Records"][0]["eventName"], "GetObject");
    let none: Value =
        serde_json::from_str(&stdout(&["retrievals", "--format", "cloudtrail", "--actor", "NOBODY"])).expect("JSON");
    assert_eq!(none, serde_json::json!({ "Records": [] }));

    // events tail: prints what commits while it runs.
    let mut tail = server
        .cli_command(&["events", "tail", "--json", "--bucket", "cli-b"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start events tail");
    let (lines_tx, lines_rx) = std::sync::mpsc::channel();
    let reader = std::io::BufReader::new(tail.stdout.take().expect("stdout"));
    std::thread::spawn(move || {
        for line in reader.lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    // The tail starts at the head: write until it has started and printed a write.
    for attempt in 0.. {
        put(&server.s3(), "cli-b", &format!("tailed-{attempt}"), b"t").await;
        if let Ok(line) = lines_rx.recv_timeout(Duration::from_secs(2)) {
            let event: Value = serde_json::from_str(&line).expect("tail prints JSON lines");
            assert_eq!(event["event_type"], "v1.object.put");
            assert!(event["subject_id"].as_str().unwrap().starts_with("cli-b/tailed-"), "{event}");
            break;
        }
        assert!(attempt < 30, "events tail printed nothing");
    }
    let _ = tail.kill();
    let _ = tail.wait();
}

/// A key whose versions were all deleted (an unversioned bucket's delete, a versioned bucket's
/// permanent delete of its only version) has no version left, but its writes, reads and
/// deletions are in the log: `object history` shows them instead of "no version". A delete
/// marker is a version and its events are shown with it.
#[tokio::test]
async fn object_history_of_a_deleted_key_shows_its_writes_reads_and_deletions() {
    let server = Server::start(Transport::Http).await;
    let s3 = server.s3();
    create_bucket(&s3, "gone").await;
    put(&s3, "gone", "backup.tar", b"nightly").await;
    assert_eq!(get(&s3, "gone", "backup.tar").await, b"nightly");
    wait_for_retrievals(&server, "gone", "backup.tar", 1).await;
    s3.delete_object().bucket("gone").key("backup.tar").send().await.expect("delete");
    create_bucket(&s3, "kept").await;
    enable_versioning(&s3, "kept").await;
    put(&s3, "kept", "data.csv", b"rows").await;
    s3.delete_object().bucket("kept").key("data.csv").send().await.expect("delete marker");

    let history = |url: &str| {
        let output = server.cli(&["object", "history", url]);
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        assert_eq!(output.status.code(), Some(0), "{url}: {text}{}", String::from_utf8_lossy(&output.stderr));
        text
    };
    let deleted = history("s3://gone/backup.tar");
    assert!(deleted.contains("has no version left"), "{deleted}");
    let kinds: Vec<&str> =
        deleted.lines().filter_map(|line| line.split_whitespace().nth(1)).filter(|w| w.starts_with("v1.")).collect();
    assert_eq!(kinds, ["v1.object.put", "v1.object.retrieved", "v1.object.deleted"], "{deleted}");
    assert!(deleted.contains(ACCESS_KEY), "who deleted it: {deleted}");

    let marked = history("s3://kept/data.csv");
    assert!(marked.contains("delete marker") && marked.contains("v1.object.delete_marker.created"), "{marked}");

    let output = server.cli(&["object", "history", "s3://gone/backup.tar", "--json"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let document: Value = serde_json::from_slice(&output.stdout).expect("one JSON document");
    assert_eq!(document["versions"], serde_json::json!([]));
    let types: Vec<&str> =
        document["events"].as_array().expect("events").iter().filter_map(|e| e["event_type"].as_str()).collect();
    assert_eq!(types, ["v1.object.put", "v1.object.retrieved", "v1.object.deleted"]);

    let never = server.cli(&["object", "history", "s3://gone/never-written"]);
    assert_eq!(never.status.code(), Some(2), "a key the log never mentions is an error");
    assert!(String::from_utf8_lossy(&never.stderr).contains("never written"));
}

/// Writes answer `x-amz-expiration` as reads do, when a lifecycle rule will expire the new
/// version: PutObject, CopyObject and CompleteMultipartUpload, as AWS documents them.
#[tokio::test]
async fn writes_tell_when_a_lifecycle_rule_expires_what_they_wrote() {
    use aws_sdk_s3::types::{
        BucketLifecycleConfiguration, CompletedMultipartUpload, CompletedPart, ExpirationStatus, LifecycleExpiration,
        LifecycleRule, LifecycleRuleFilter,
    };
    let server = Server::start(Transport::Http).await;
    let s3 = server.s3();
    create_bucket(&s3, "expiring").await;
    let rule = LifecycleRule::builder()
        .id("tmp-week")
        .status(ExpirationStatus::Enabled)
        .filter(LifecycleRuleFilter::builder().prefix("tmp/").build())
        .expiration(LifecycleExpiration::builder().days(7).build())
        .build()
        .expect("rule");
    let rules = BucketLifecycleConfiguration::builder().rules(rule).build().expect("configuration");
    let set = s3.put_bucket_lifecycle_configuration().bucket("expiring").lifecycle_configuration(rules);
    set.send().await.expect("lifecycle");
    let head = |key: &'static str| {
        let s3 = s3.clone();
        async move {
            let head = s3.head_object().bucket("expiring").key(key).send().await.expect("HEAD");
            head.expiration().map(str::to_owned)
        }
    };

    let put = s3.put_object().bucket("expiring").key("tmp/put").body(bytes(10, 1).into()).send().await.expect("put");
    assert!(put.expiration().is_some_and(|e| e.contains("rule-id=\"tmp-week\"")), "{:?}", put.expiration());
    assert_eq!(put.expiration().map(str::to_owned), head("tmp/put").await);
    let copy = s3.copy_object().bucket("expiring").key("tmp/copy").copy_source("expiring/tmp/put").send().await;
    let copy = copy.expect("copy");
    assert_eq!(copy.expiration().map(str::to_owned), head("tmp/copy").await);
    assert!(copy.expiration().is_some());
    let upload = s3.create_multipart_upload().bucket("expiring").key("tmp/parts").send().await.expect("create");
    let upload_id = upload.upload_id().expect("upload id");
    let part = s3.upload_part().bucket("expiring").key("tmp/parts").upload_id(upload_id).part_number(1);
    let part = part.body(bytes(10, 2).into()).send().await.expect("part");
    let done = s3
        .complete_multipart_upload()
        .bucket("expiring")
        .key("tmp/parts")
        .upload_id(upload_id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .parts(CompletedPart::builder().part_number(1).e_tag(part.e_tag().expect("ETag")).build())
                .build(),
        )
        .send()
        .await
        .expect("complete");
    assert_eq!(done.expiration().map(str::to_owned), head("tmp/parts").await);
    assert!(done.expiration().is_some());
    // A key no rule matches: no header.
    let kept = s3.put_object().bucket("expiring").key("kept").body(bytes(10, 3).into()).send().await.expect("put");
    assert_eq!(kept.expiration(), None);
}

/// Found by a review: an upload that a lifecycle rule will abort was not told so. AWS answers
/// CreateMultipartUpload and ListParts with `x-amz-abort-date` (the next midnight UTC after
/// the days since initiation) and `x-amz-abort-rule-id`, from the first rule that applies.
#[tokio::test]
async fn uploads_tell_when_a_lifecycle_rule_aborts_them() {
    use aws_sdk_s3::primitives::DateTime;
    use aws_sdk_s3::types::{
        AbortIncompleteMultipartUpload, BucketLifecycleConfiguration, ExpirationStatus, LifecycleRule,
        LifecycleRuleFilter,
    };
    const DAY: i64 = 86_400;
    let server = Server::start(Transport::Http).await;
    let s3 = server.s3();
    create_bucket(&s3, "aborting").await;
    let abort = |id: &str, prefix: &str, days: i32| {
        LifecycleRule::builder()
            .id(id)
            .status(ExpirationStatus::Enabled)
            .filter(LifecycleRuleFilter::builder().prefix(prefix).build())
            .abort_incomplete_multipart_upload(
                AbortIncompleteMultipartUpload::builder().days_after_initiation(days).build(),
            )
            .build()
            .expect("rule")
    };
    let rules = BucketLifecycleConfiguration::builder()
        .rules(abort("uploads-3-days", "uploads/", 3))
        .rules(abort("everything-7-days", "", 7))
        .build()
        .expect("configuration");
    let set = s3.put_bucket_lifecycle_configuration().bucket("aborting").lifecycle_configuration(rules);
    set.send().await.expect("lifecycle");

    let before = DateTime::from(SystemTime::now()).secs();
    let created = s3.create_multipart_upload().bucket("aborting").key("uploads/big.iso").send().await.expect("create");
    let after = DateTime::from(SystemTime::now()).secs();
    assert_eq!(created.abort_rule_id(), Some("uploads-3-days"), "the first rule that applies");
    let date = created.abort_date().expect("x-amz-abort-date").secs();
    assert_eq!(date % DAY, 0, "a midnight UTC");
    assert!((before + 3 * DAY..=after + 4 * DAY).contains(&date), "three days after {before}: {date}");
    let upload_id = created.upload_id().expect("upload id");
    let listed = s3.list_parts().bucket("aborting").key("uploads/big.iso").upload_id(upload_id).send().await;
    let listed = listed.expect("ListParts");
    assert_eq!((listed.abort_date(), listed.abort_rule_id()), (created.abort_date(), created.abort_rule_id()));

    let other = s3.create_multipart_upload().bucket("aborting").key("elsewhere").send().await.expect("create");
    assert_eq!(other.abort_rule_id(), Some("everything-7-days"));
    create_bucket(&s3, "kept").await;
    let kept = s3.create_multipart_upload().bucket("kept").key("uploads/big.iso").send().await.expect("create");
    assert_eq!((kept.abort_date(), kept.abort_rule_id()), (None, None), "a bucket without rules");
}

/// Object Lock turns on for a bucket created without it once its versioning is Enabled, as
/// on S3 since 2023 (Terraform's `aws_s3_bucket_object_lock_configuration` does it): new
/// versions take the default retention, the versions already there none, and versioning can
/// no longer be suspended. A bucket whose versioning is not Enabled is refused.
#[tokio::test]
async fn object_lock_turns_on_for_an_existing_bucket_once_its_versioning_is_enabled() {
    use aws_sdk_s3::types::{
        DefaultRetention, ObjectLockConfiguration, ObjectLockEnabled, ObjectLockRetentionMode, ObjectLockRule,
    };
    let server = Server::start(Transport::Http).await;
    let s3 = server.s3();
    create_bucket(&s3, "later").await;
    put(&s3, "later", "old", b"before the lock").await;
    let governance = DefaultRetention::builder().mode(ObjectLockRetentionMode::Governance).days(1).build();
    let config = ObjectLockConfiguration::builder()
        .object_lock_enabled(ObjectLockEnabled::Enabled)
        .rule(ObjectLockRule::builder().default_retention(governance).build())
        .build();
    let lock = || s3.put_object_lock_configuration().bucket("later").object_lock_configuration(config.clone()).send();
    assert_eq!(failure(lock().await), (409, "InvalidBucketState".to_owned()), "a bucket never versioned");

    enable_versioning(&s3, "later").await;
    lock().await.expect("Object Lock on a versioned bucket");
    let got = s3.get_object_lock_configuration().bucket("later").send().await.expect("the configuration");
    let got = got.object_lock_configuration().expect("a configuration");
    assert_eq!(got.object_lock_enabled(), Some(&ObjectLockEnabled::Enabled));
    put(&s3, "later", "new", b"after the lock").await;
    let retention = s3.get_object_retention().bucket("later").key("new").send().await.expect("new retention");
    let mode = retention.retention().and_then(|r| r.mode()).map(|m| m.as_str().to_owned());
    assert_eq!(mode.as_deref(), Some("GOVERNANCE"), "a new version takes the default retention");
    let old = s3.get_object_retention().bucket("later").key("old").send().await;
    assert_eq!(failure(old), (404, "NoSuchObjectLockConfiguration".to_owned()), "the version already there");
    let suspended = aws_sdk_s3::types::VersioningConfiguration::builder()
        .status(aws_sdk_s3::types::BucketVersioningStatus::Suspended)
        .build();
    let suspend = s3.put_bucket_versioning().bucket("later").versioning_configuration(suspended).send().await;
    assert_eq!(failure(suspend), (409, "InvalidBucketState".to_owned()), "suspending a locked bucket's versioning");
    // The views a replay of the log makes are those the gateway keeps.
    let verified = server.cli(&["verify", "--no-blobs"]);
    assert!(verified.status.success(), "{verified:?}");
}

/// A copy names the source version it read (`x-amz-copy-source-version-id`) whenever the
/// source bucket keeps versions, as AWS does, not only when the request named one; from a
/// bucket that never kept versions it names none.
#[tokio::test]
async fn copies_name_the_source_version_they_read() {
    let server = Server::start(Transport::Http).await;
    let s3 = server.s3();
    create_bucket(&s3, "kept").await;
    enable_versioning(&s3, "kept").await;
    let put = s3.put_object().bucket("kept").key("source").body(bytes(1_000, 3).into()).send().await.expect("put");
    let version = put.version_id().expect("a version id").to_owned();
    let copy = s3.copy_object().bucket("kept").key("whole").copy_source("kept/source").send().await.expect("copy");
    assert_eq!(copy.copy_source_version_id(), Some(version.as_str()), "a copy of the latest version");
    let upload = s3.create_multipart_upload().bucket("kept").key("parted").send().await.expect("create");
    let part = s3
        .upload_part_copy()
        .bucket("kept")
        .key("parted")
        .upload_id(upload.upload_id().expect("upload id"))
        .part_number(1)
        .copy_source("kept/source")
        .send()
        .await
        .expect("part copy");
    assert_eq!(part.copy_source_version_id(), Some(version.as_str()), "a part copy of the latest version");

    create_bucket(&s3, "plain").await;
    s3.put_object().bucket("plain").key("source").body(bytes(10, 1).into()).send().await.expect("put");
    let copy = s3.copy_object().bucket("plain").key("copy").copy_source("plain/source").send().await.expect("copy");
    assert_eq!(copy.copy_source_version_id(), None, "a copy from a bucket without versioning");
}

/// A copy reads its source on its caller's behalf, as a GET would: CopyObject and
/// UploadPartCopy each leave a record of the source version read, with the bytes (and the
/// range) they took, so the source's readers include whoever copied it.
#[tokio::test]
async fn copies_record_a_read_of_their_source() {
    let server = Server::start(Transport::Http).await;
    let s3 = server.s3();
    create_bucket(&s3, "copies").await;
    let data = bytes(100_000, 5);
    put(&s3, "copies", "source", &data).await;
    s3.copy_object().bucket("copies").key("whole").copy_source("copies/source").send().await.expect("copy");
    let upload = s3.create_multipart_upload().bucket("copies").key("parted").send().await.expect("create");
    s3.upload_part_copy()
        .bucket("copies")
        .key("parted")
        .upload_id(upload.upload_id().expect("upload id"))
        .part_number(1)
        .copy_source("copies/source")
        .copy_source_range("bytes=10-1009")
        .send()
        .await
        .expect("part copy");
    wait_for_retrievals(&server, "copies", "source", 2).await;
    let events = server.object_events("copies", "source");
    let reads: Vec<(&str, &Value, &Value, &str)> = events
        .iter()
        .filter(|event| event.event_type == "v1.object.retrieved")
        .map(|event| {
            (
                event.actor.as_str(),
                &event.payload["method"],
                &event.payload["bytes"],
                event.payload["range"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        reads,
        [
            (ACCESS_KEY, &Value::from("COPY"), &Value::from(100_000), ""),
            (ACCESS_KEY, &Value::from("COPY_PART"), &Value::from(1_000), "bytes=10-1009"),
        ]
    );
    // The copy's own object records no read of itself.
    let copied = server.object_events("copies", "whole");
    assert!(copied.iter().all(|event| event.event_type != "v1.object.retrieved"), "{copied:?}");
}
