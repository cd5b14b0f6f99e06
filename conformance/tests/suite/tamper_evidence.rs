//! Tamper evidence (issue 16): what someone with access to the data folder can do behind the
//! gateway's back, and how `verify` and `/_ready` name it.

use std::time::{Duration, Instant, SystemTime};

use artifact_store_conformance::sdk::{failure, get};
use artifact_store_conformance::server::upstream_env;
use artifact_store_conformance::{ACCESS_KEY, REGION, SECRET_KEY, Server, Transport, cli, tamper};
use aws_sdk_s3::primitives::{ByteStream, DateTime};
use aws_sdk_s3::types::{
    DefaultRetention, ObjectLockConfiguration, ObjectLockEnabled, ObjectLockMode, ObjectLockRetentionMode,
    ObjectLockRule,
};

/// How long a test waits for a background check of a server to report.
const CHECK_TIMEOUT: Duration = Duration::from_secs(60);

fn in_a_day() -> DateTime {
    let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).expect("after 1970").as_secs();
    DateTime::from_secs(i64::try_from(now + 86_400).expect("a date"))
}

/// PUTs `body` to `evidence/key` under COMPLIANCE retention for a day; returns its version id.
async fn put_under_compliance(s3: &aws_sdk_s3::Client, key: &str, body: &'static [u8]) -> String {
    let put = s3
        .put_object()
        .bucket("evidence")
        .key(key)
        .object_lock_mode(ObjectLockMode::Compliance)
        .object_lock_retain_until_date(in_a_day())
        .body(ByteStream::from_static(body));
    put.send().await.expect("locked put").version_id.expect("a version id")
}

/// `/_ready`'s status and body.
async fn ready(server: &Server) -> (u16, String) {
    let response = server.send(&server.request("GET", "/_ready")).await;
    (response.status, response.text())
}

/// Waits (up to [`CHECK_TIMEOUT`]) until `/_ready` fails with a body that `says`, and returns
/// the body: the background checks report a while after what they find was done.
async fn until_not_ready(server: &Server, says: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + CHECK_TIMEOUT;
    loop {
        let (status, body) = ready(server).await;
        if status == 503 && says(&body) {
            return body;
        }
        assert!(Instant::now() < deadline, "/_ready says {status} {body}\n{}", server.log());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn a_delete_allowed_by_an_edited_views_file_is_named_by_verify_and_fails_ready_issue_16() {
    // The views are checked against the log every second here.
    let mut env = upstream_env();
    env.push(("ARTIFACT_STORE_REGISTRY_VIEWS_CHECK_INTERVAL_SECONDS".into(), "1".into()));
    let server = Server::start_with(Transport::Http, &[], env).await;
    let s3 = server.s3();
    s3.create_bucket().bucket("evidence").object_lock_enabled_for_bucket(true).send().await.expect("lock bucket");
    let put = |key: &'static str| {
        s3.put_object().bucket("evidence").key(key).body(ByteStream::from_static(b"signed report")).send()
    };
    let version = put("report.pdf").await.expect("put").version_id.expect("a version id");
    s3.put_object_retention()
        .bucket("evidence")
        .key("report.pdf")
        .version_id(&version)
        .retention(
            aws_sdk_s3::types::ObjectLockRetention::builder()
                .mode(aws_sdk_s3::types::ObjectLockRetentionMode::Compliance)
                .retain_until_date(in_a_day())
                .build(),
        )
        .send()
        .await
        .expect("COMPLIANCE retention");
    let delete = || s3.delete_object().bucket("evidence").key("report.pdf").version_id(&version).send();
    assert_eq!(failure(delete().await), (403, "AccessDenied".to_owned()));

    // Clear the retention in the views file and delete the locked version.
    tamper::edit_views(
        &server.registry_path(),
        "UPDATE object_versions SET retention_mode = NULL, retain_until = NULL WHERE key = 'report.pdf'",
    );
    delete().await.expect("the edited views let the delete through");
    let deleted = server
        .object_events("evidence", "report.pdf")
        .into_iter()
        .rfind(|e| e.event_type == "v1.object.deleted")
        .expect("the delete's event")
        .sequence;

    let failed = cli::expect(&server, &["verify", "--no-blobs"], 1);
    assert!(
        failed.stdout.contains(&format!("FAILED rules: event {deleted} (v1.object.deleted) deletes version")),
        "{failed:?}"
    );
    assert!(failed.stdout.contains("COMPLIANCE retention protects until"), "{failed:?}");
    let failed = cli::expect(&server, &["replay"], 1);
    assert!(failed.stdout.contains(&format!("event {deleted} (v1.object.deleted)")), "{failed:?}");

    // The serving gateway's own check finds it too.
    let body = until_not_ready(&server, |_| true).await;
    assert!(body.contains(&format!("rules: event {deleted} (v1.object.deleted)")), "{body}");

    // COMPLIANCE retention given when the version was written is read from the log itself.
    let locked = put_under_compliance(&s3, "audit.pdf", b"audit").await;
    tamper::edit_views(
        &server.registry_path(),
        "UPDATE object_versions SET retention_mode = NULL, retain_until = NULL WHERE key = 'audit.pdf'",
    );
    let refused = failure(s3.delete_object().bucket("evidence").key("audit.pdf").version_id(&locked).send().await);
    assert_eq!(refused, (403, "AccessDenied".to_owned()));
}

/// Views edited while the gateway is stopped are found by the check it runs at start, under
/// the default (daily) interval: until then they decide what Object Lock allows.
#[tokio::test]
async fn views_edited_while_the_gateway_is_stopped_fail_ready_once_it_starts() {
    let mut server = Server::start_with(Transport::Http, &[], upstream_env()).await;
    let s3 = server.s3();
    s3.create_bucket().bucket("evidence").object_lock_enabled_for_bucket(true).send().await.expect("lock bucket");
    put_under_compliance(&s3, "report.pdf", b"signed report").await;
    assert_eq!(ready(&server).await.0, 200);
    server.terminate();
    assert!(server.wait_exit().await.success(), "{}", server.log());

    tamper::edit_views(
        &server.registry_path(),
        "UPDATE object_versions SET retention_mode = NULL, retain_until = NULL WHERE key = 'report.pdf'",
    );
    server.restart().await;
    let body = until_not_ready(&server, |_| true).await;
    assert!(body.contains("object_versions"), "{body}");
}

/// The highest sequence of the checkpoint files in `folder`.
fn newest_checkpoint(folder: &std::path::Path) -> Option<u64> {
    std::fs::read_dir(folder)
        .ok()?
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.strip_suffix(".json")?.parse().ok())
        .max()
}

/// A gateway killed and restarted more often than the checkpoint interval (deploys, a crash
/// loop) still signs: the interval counts from the oldest event no checkpoint covers, not from
/// the process's start. Six lives of about three seconds each, under a six-second interval.
#[tokio::test]
async fn a_gateway_restarted_more_often_than_the_interval_still_signs_checkpoints() {
    let mut env = upstream_env();
    env.push(("ARTIFACT_STORE_REGISTRY_CHECKPOINT_INTERVAL_SECONDS".into(), "6".into()));
    let mut server = Server::start_with(Transport::Http, &[], env).await;
    server.s3().create_bucket().bucket("ledger").send().await.expect("bucket");
    for life in 0..6 {
        if life > 0 {
            server.restart().await;
        }
        let put = server.s3().put_object().bucket("ledger").key(format!("entry-{life}"));
        put.body(ByteStream::from_static(b"entry")).send().await.expect("put");
        tokio::time::sleep(Duration::from_secs(2)).await;
        server.kill();
    }
    let signed = newest_checkpoint(&server.data_dir().join("checkpoints"));
    assert!(signed.is_some(), "no checkpoint was signed in six lives\n{}", server.log());
}

/// A gateway stopped gracefully signs the events no checkpoint covers yet, however far its
/// interval is: the newest writes of a stopped gateway are what someone with the disk could
/// remove unseen, and plain `verify` now names their removal.
#[tokio::test]
async fn a_gateway_that_stops_signs_the_events_no_checkpoint_covers() {
    // The defaults: a checkpoint every 10,000 events or an hour, neither reached here.
    let mut server = Server::start_with(Transport::Http, &[], upstream_env()).await;
    let s3 = server.s3();
    s3.create_bucket().bucket("ledger").send().await.expect("bucket");
    for key in ["a", "b"] {
        s3.put_object().bucket("ledger").key(key).body(ByteStream::from_static(b"entry")).send().await.expect("put");
    }
    let own = server.data_dir().join("checkpoints");
    assert_eq!(newest_checkpoint(&own), None, "a checkpoint signed while serving\n{}", server.log());
    server.terminate();
    assert!(server.wait_exit().await.success(), "{}", server.log());

    let log = rusqlite::Connection::open(server.registry_path()).expect("open the log");
    let head: u64 = log.query_row("SELECT MAX(seq) FROM events", [], |row| row.get(0)).expect("the log's end");
    assert_eq!(newest_checkpoint(&own), Some(head), "the stop signed no checkpoint of the head\n{}", server.log());
    let intact = cli::expect(&server, &["verify", "--no-blobs"], 0);
    assert!(intact.stdout.contains("checkpoint: checked against"), "{intact:?}");

    // The last write removed while the gateway is stopped.
    log.execute("DELETE FROM events WHERE seq = ?1", [head]).expect("truncate the log");
    drop(log);
    let truncated = cli::expect(&server, &["verify", "--no-blobs"], 1);
    assert!(truncated.stdout.contains(&format!("the log has no event {head}")), "{truncated:?}");
}

#[tokio::test]
async fn plain_verify_catches_a_rewritten_or_truncated_log_from_the_gateways_own_checkpoints_issue_16() {
    let copies = tempfile::tempdir().expect("temp folder");
    let mut env = upstream_env();
    env.push(("ARTIFACT_STORE_REGISTRY_CHECKPOINT_INTERVAL_SECONDS".into(), "1".into()));
    env.push(("ARTIFACT_STORE_REGISTRY_CHECKPOINT_COPY_DIR".into(), copies.path().display().to_string()));
    let mut server = Server::start_with(Transport::Http, &[], env).await;
    let s3 = server.s3();
    s3.create_bucket().bucket("ledger").send().await.expect("bucket");
    for key in ["a", "b", "c", "d"] {
        s3.put_object().bucket("ledger").key(key).body(ByteStream::from_static(b"entry")).send().await.expect("put");
    }
    let head = server.events().last().expect("events").sequence;
    let own = server.data_dir().join("checkpoints");
    let deadline = Instant::now() + CHECK_TIMEOUT;
    while newest_checkpoint(&own) < Some(head) || newest_checkpoint(copies.path()) < Some(head) {
        assert!(Instant::now() < deadline, "no checkpoint of event {head} was signed\n{}", server.log());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let intact = cli::expect(&server, &["verify"], 0);
    assert!(intact.stdout.contains("checkpoint: checked against"), "{intact:?}");
    server.terminate();
    assert!(server.wait_exit().await.success());

    // An early event rewritten with every hash after it recomputed: the chain verifies.
    let put = server.object_events("ledger", "a")[0].sequence;
    tamper::rewrite_payload(&server.registry_path(), put, |payload| {
        payload["content"]["user_metadata"]["approved-by"] = "someone else".into();
    });
    let rewritten = cli::expect(&server, &["verify", "--no-blobs"], 1);
    assert!(rewritten.stdout.contains(&format!("event {head} has hash")), "{rewritten:?}");
    assert!(rewritten.stdout.contains("the log was rewritten"), "{rewritten:?}");

    // The last events removed, and the data folder's checkpoints with them: the copy tells.
    std::fs::remove_dir_all(&own).expect("remove the data folder's checkpoints");
    let log = rusqlite::Connection::open(server.registry_path()).expect("open the log");
    log.execute("DELETE FROM events WHERE seq > ?1", [head - 2]).expect("truncate the log");
    drop(log);
    let truncated = cli::expect(&server, &["verify", "--no-blobs"], 1);
    assert!(truncated.stdout.contains(&format!("the log has no event {head}")), "{truncated:?}");
    assert!(truncated.stdout.contains("the log was truncated"), "{truncated:?}");
}

/// A payload edited with a tool that wrote it back as text (SQLite's `replace()` does): verify
/// names the event, rather than failing to read the column (exit 2).
#[tokio::test]
async fn a_payload_rewritten_as_text_is_named_by_verify() {
    let mut server = Server::start_with(Transport::Http, &[], upstream_env()).await;
    let s3 = server.s3();
    s3.create_bucket().bucket("ledger").send().await.expect("bucket");
    s3.put_object().bucket("ledger").key("a").body(ByteStream::from_static(b"100000")).send().await.expect("put");
    let put = server.object_events("ledger", "a")[0].sequence;
    server.terminate();
    assert!(server.wait_exit().await.success());
    let log = rusqlite::Connection::open(server.registry_path()).expect("open the log");
    let edited = log
        .execute("UPDATE events SET payload = replace(payload, '\"ledger\"', '\"ledgers\"') WHERE seq = ?1", [put])
        .expect("edit the payload as text");
    assert_eq!(edited, 1);
    let kind: String =
        log.query_row("SELECT typeof(payload) FROM events WHERE seq = ?1", [put], |row| row.get(0)).expect("its type");
    assert_eq!(kind, "text", "the edit stored the payload as text");
    drop(log);
    let verified = cli::expect(&server, &["verify", "--no-blobs"], 1);
    assert!(verified.stdout.contains(&format!("event {put} does not match the hash chain")), "{verified:?}");
}

/// The newest events deleted while the gateway runs: it takes no further write (which would
/// chain after the gap and hide it), and `/_ready` fails, rather than carrying on from the
/// shorter log as if the acknowledged writes had never been.
#[tokio::test]
async fn a_running_gateway_takes_no_write_once_its_newest_events_are_deleted() {
    let server = Server::start_with(Transport::Http, &[], upstream_env()).await;
    let s3 = server.s3();
    s3.create_bucket().bucket("ledger").send().await.expect("bucket");
    let put =
        |key: &'static str| s3.put_object().bucket("ledger").key(key).body(ByteStream::from_static(b"entry")).send();
    put("a").await.expect("put a");
    put("b").await.expect("put b");
    assert_eq!(ready(&server).await.0, 200);
    let deleted_from = server.object_events("ledger", "b")[0].sequence;
    let log = rusqlite::Connection::open(server.registry_path()).expect("open the log");
    log.execute("DELETE FROM events WHERE seq >= ?1", [deleted_from]).expect("delete the newest events");

    assert_eq!(failure(put("c").await), (500, "InternalError".to_owned()), "a write after the deletion");
    let newest: u64 = log.query_row("SELECT MAX(seq) FROM events", [], |row| row.get(0)).expect("the log's end");
    assert_eq!(newest, deleted_from - 1, "nothing was chained after the gap");
    drop(log);
    let (status, body) = ready(&server).await;
    assert_eq!(status, 503, "{body}");
    assert!(server.log().contains("the log no longer holds the events this writer committed"), "{}", server.log());
}

/// The run's configuration with a checkpoint every second, each uploaded to `url` on `vault`
/// (a gateway standing in for an upstream S3) with the standard `AWS_*` variables.
fn copying_checkpoints_to(vault: &Server, url: &str) -> Vec<(String, String)> {
    let mut env = upstream_env();
    env.push(("ARTIFACT_STORE_REGISTRY_CHECKPOINT_INTERVAL_SECONDS".into(), "1".into()));
    env.push(("ARTIFACT_STORE_REGISTRY_CHECKPOINT_COPY_S3".into(), url.into()));
    env.push(("AWS_ENDPOINT_URL".into(), vault.endpoint()));
    env.push(("AWS_ACCESS_KEY_ID".into(), ACCESS_KEY.into()));
    env.push(("AWS_SECRET_ACCESS_KEY".into(), SECRET_KEY.into()));
    env.push(("AWS_REGION".into(), REGION.into()));
    env
}

/// The keys under `prefix` in `bucket`.
async fn keys_under(s3: &aws_sdk_s3::Client, bucket: &str, prefix: &str) -> Vec<String> {
    let listed = s3.list_objects_v2().bucket(bucket).prefix(prefix).send().await.expect("list");
    listed.contents().iter().filter_map(|object| object.key().map(str::to_owned)).collect()
}

#[tokio::test]
async fn automatic_checkpoints_go_to_an_object_lock_bucket_that_verify_and_a_restart_check_issue_16() {
    // The vault: another gateway standing in for an upstream S3, with a bucket whose default
    // retention is COMPLIANCE.
    let vault = Server::start_with(Transport::Http, &[], Vec::new()).await;
    let locked = vault.s3();
    locked.create_bucket().bucket("vault").object_lock_enabled_for_bucket(true).send().await.expect("lock bucket");
    let compliance_for_a_day = ObjectLockConfiguration::builder()
        .object_lock_enabled(ObjectLockEnabled::Enabled)
        .rule(
            ObjectLockRule::builder()
                .default_retention(
                    DefaultRetention::builder().mode(ObjectLockRetentionMode::Compliance).days(1).build(),
                )
                .build(),
        )
        .build();
    locked
        .put_object_lock_configuration()
        .bucket("vault")
        .object_lock_configuration(compliance_for_a_day)
        .send()
        .await
        .expect("default retention");

    let mut server = Server::start_with(Transport::Http, &[], copying_checkpoints_to(&vault, "s3://vault/gw1/")).await;
    let s3 = server.s3();
    s3.create_bucket().bucket("ledger").send().await.expect("bucket");
    for key in ["a", "b", "c"] {
        s3.put_object().bucket("ledger").key(key).body(ByteStream::from_static(b"entry")).send().await.expect("put");
    }
    let head = server.events().last().expect("events").sequence;
    let uploaded = format!("gw1/{head:020}.json");
    let deadline = Instant::now() + CHECK_TIMEOUT;
    while !keys_under(&locked, "vault", "gw1/").await.contains(&uploaded) {
        assert!(Instant::now() < deadline, "no checkpoint of event {head} was uploaded\n{}", server.log());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let own = server.data_dir().join("checkpoints").join(format!("{head:020}.json"));
    assert_eq!(get(&locked, "vault", &uploaded).await, std::fs::read(&own).expect("the data folder's checkpoint"));
    // The copy is under COMPLIANCE: nobody takes it back.
    let retention = locked.get_object_retention().bucket("vault").key(&uploaded).send().await.expect("retention");
    assert_eq!(retention.retention().and_then(|r| r.mode()), Some(&ObjectLockRetentionMode::Compliance));
    let version = locked.head_object().bucket("vault").key(&uploaded).send().await.expect("head");
    let version = version.version_id().expect("a version id");
    let refused = failure(locked.delete_object().bucket("vault").key(&uploaded).version_id(version).send().await);
    assert_eq!(refused, (403, "AccessDenied".to_owned()));
    cli::expect(&server, &["verify", "--no-blobs"], 0);
    server.terminate();
    assert!(server.wait_exit().await.success());

    // The log rewritten with every hash recomputed, and the data folder's checkpoints removed:
    // the uploaded copy still tells.
    std::fs::remove_dir_all(server.data_dir().join("checkpoints")).expect("remove the data folder's checkpoints");
    let put = server.object_events("ledger", "a")[0].sequence;
    tamper::rewrite_payload(&server.registry_path(), put, |payload| {
        payload["content"]["user_metadata"]["approved-by"] = "someone else".into();
    });
    let rewritten = cli::expect(&server, &["verify", "--no-blobs"], 1);
    assert!(
        rewritten.stdout.contains(&format!("checkpoint s3://vault/{uploaded}: event {head} has hash")),
        "{rewritten:?}"
    );
    assert!(rewritten.stdout.contains("the log was rewritten"), "{rewritten:?}");

    // Restarted on the rewritten log, the gateway signs nothing and is not ready.
    server.restart().await;
    until_not_ready(&server, |body| body.contains(&format!("does not extend the checkpoint of event {head}"))).await;
    assert_eq!(keys_under(&locked, "vault", "gw1/").await.iter().max(), Some(&uploaded));
}

#[tokio::test]
async fn a_checkpoint_copy_that_cannot_be_reached_fails_ready_with_the_reason_issue_16() {
    // A bucket the vault does not have.
    let vault = Server::start_with(Transport::Http, &[], Vec::new()).await;
    let server = Server::start_with(Transport::Http, &[], copying_checkpoints_to(&vault, "s3://absent/gw1/")).await;
    until_not_ready(&server, |body| body.contains("cannot list s3://absent/gw1/") && body.contains("NoSuchBucket"))
        .await;
    let unchecked = cli::expect(&server, &["verify", "--no-blobs"], 1);
    assert!(unchecked.stdout.contains("checkpoint copy s3://absent/gw1/: not checked"), "{unchecked:?}");
}
