//! Object Lock mirrored onto the S3 upstream (`upstream.object_lock = mirror`): retention and
//! legal holds set through the gateway are also on the upstream objects, so deleting those
//! behind the gateway's back fails, and `gc` keeps (without failing) an upstream object its
//! lock still protects.
//!
//! Runs against the run's upstream (`CONFORMANCE_UPSTREAM_*`, moto or Ceph RGW, as
//! `scripts/test.sh` sets it), in a bucket of its own created with Object Lock; ignored
//! unless run with `--include-ignored`, and failing then without an upstream.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use artifact_store_conformance::server::binary_path;
use artifact_store_conformance::upstream::RunUpstream;
use artifact_store_conformance::{Server, Transport};
use aws_sdk_s3::primitives::{ByteStream, DateTime};
use aws_sdk_s3::types::{
    ObjectLockLegalHold, ObjectLockLegalHoldStatus, ObjectLockMode, ObjectLockRetention, ObjectLockRetentionMode,
};

const PREFIX: &str = "locked/";
const BUCKET: &str = "records";

/// A name no earlier run used.
fn unique(name: &str) -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
    format!("{name}-{nanos:x}")
}

/// Whole seconds from now: what every upstream keeps exactly.
fn in_days(days: u64) -> SystemTime {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    UNIX_EPOCH + Duration::from_secs(now + days * 86_400)
}

/// The gateway's settings for blobs in `bucket` of `upstream`, with mirroring on.
fn mirror_env(upstream: &RunUpstream, bucket: &str) -> Vec<(String, String)> {
    let (access, secret) = upstream.keys();
    let mut env = upstream.gateway_env(bucket, PREFIX);
    env.push(("ARTIFACT_STORE_UPSTREAM_ACCESS_KEY".to_owned(), access.to_owned()));
    env.push(("ARTIFACT_STORE_UPSTREAM_SECRET_KEY".to_owned(), secret.to_owned()));
    env.push(("ARTIFACT_STORE_UPSTREAM_OBJECT_LOCK".to_owned(), "mirror".to_owned()));
    env
}

/// The one upstream object (key, version id) the gateway wrote since `before` (a listing of
/// the keys there were).
async fn new_object(client: &aws_sdk_s3::Client, bucket: &str, before: &[String]) -> (String, String) {
    let listed = client.list_object_versions().bucket(bucket).prefix(PREFIX).send().await.expect("list versions");
    let mut new: Vec<(String, String)> = listed
        .versions()
        .iter()
        .filter(|v| !before.iter().any(|k| Some(k.as_str()) == v.key()))
        .map(|v| (v.key().unwrap().to_owned(), v.version_id().unwrap().to_owned()))
        .collect();
    assert_eq!(new.len(), 1, "one new upstream object: {new:?}");
    new.pop().unwrap()
}

async fn keys(client: &aws_sdk_s3::Client, bucket: &str) -> Vec<String> {
    let listed = client.list_object_versions().bucket(bucket).prefix(PREFIX).send().await.expect("list versions");
    listed.versions().iter().filter_map(|v| v.key().map(str::to_owned)).collect()
}

/// The retention (mode, until) and legal hold an upstream object version holds.
async fn upstream_lock(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    (key, version): &(String, String),
) -> (Option<ObjectLockMode>, Option<SystemTime>, bool) {
    let head = client.head_object().bucket(bucket).key(key).version_id(version).send().await.expect("head upstream");
    (
        head.object_lock_mode().cloned(),
        head.object_lock_retain_until_date().map(|t| SystemTime::try_from(*t).unwrap()),
        head.object_lock_legal_hold_status() == Some(&ObjectLockLegalHoldStatus::On),
    )
}

fn hold(on: bool) -> ObjectLockLegalHold {
    let status = if on { ObjectLockLegalHoldStatus::On } else { ObjectLockLegalHoldStatus::Off };
    ObjectLockLegalHold::builder().status(status).build()
}

#[tokio::test]
#[ignore = "needs an S3 upstream (CONFORMANCE_UPSTREAM_*)"]
async fn mirroring_needs_an_upstream_bucket_with_object_lock() {
    let upstream = RunUpstream::required();
    let plain = unique("no-lock");
    upstream.client().create_bucket().bucket(&plain).send().await.expect("upstream bucket");
    let data = tempfile::tempdir().expect("temp folder");
    let serve = tokio::process::Command::new(binary_path())
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data.path())
        .env_clear()
        .envs(mirror_env(&upstream, &plain))
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(60), serve).await.expect("serve must stop").expect("run");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "serve must refuse: {stderr}");
    assert!(stderr.contains("needs Object Lock on the upstream bucket"), "the reason is given: {stderr}");
}

#[tokio::test]
#[ignore = "needs an S3 upstream (CONFORMANCE_UPSTREAM_*)"]
async fn mirrored_locks_hold_upstream_objects() {
    let upstream = RunUpstream::required();
    let direct = upstream.client();
    let up_bucket = unique("lock");
    direct.create_bucket().bucket(&up_bucket).object_lock_enabled_for_bucket(true).send().await.expect("lock bucket");
    let env = mirror_env(&upstream, &up_bucket);
    let server = Server::start_with(Transport::Http, &[], env).await;
    let s3 = server.s3();
    s3.create_bucket().bucket(BUCKET).object_lock_enabled_for_bucket(true).send().await.expect("create bucket");

    // A COMPLIANCE retention set by the PUT is on the upstream object too.
    let until = in_days(1);
    s3.put_object()
        .bucket(BUCKET)
        .key("report")
        .body(ByteStream::from_static(b"quarterly figures"))
        .object_lock_mode(ObjectLockMode::Compliance)
        .object_lock_retain_until_date(DateTime::from(until))
        .send()
        .await
        .expect("put with retention");
    let blob = new_object(&direct, &up_bucket, &[]).await;
    assert_eq!(upstream_lock(&direct, &up_bucket, &blob).await, (Some(ObjectLockMode::Compliance), Some(until), false));

    // Deleting that upstream version directly, behind the gateway's back, fails.
    let deleted = direct.delete_object().bucket(&up_bucket).key(&blob.0).version_id(&blob.1).send().await;
    let err = deleted.expect_err("the upstream must refuse to delete a locked version");
    assert_eq!(err.as_service_error().and_then(|e| e.meta().code()), Some("AccessDenied"), "{err:?}");
    let read = s3.get_object().bucket(BUCKET).key("report").send().await.expect("still readable");
    assert_eq!(read.body.collect().await.unwrap().into_bytes().as_ref(), b"quarterly figures");

    // A copy shares the blob: its later retention extends the upstream one...
    let later = in_days(3);
    s3.copy_object()
        .bucket(BUCKET)
        .key("copy")
        .copy_source(format!("{BUCKET}/report"))
        .object_lock_mode(ObjectLockMode::Compliance)
        .object_lock_retain_until_date(DateTime::from(later))
        .send()
        .await
        .expect("copy with retention");
    assert_eq!(keys(&direct, &up_bucket).await.len(), 1, "the copy wrote no bytes upstream");
    assert_eq!(upstream_lock(&direct, &up_bucket, &blob).await.1, Some(later));
    // ...and extending the source's retention to a date before that leaves it where it is.
    let retention = ObjectLockRetention::builder()
        .mode(ObjectLockRetentionMode::Compliance)
        .retain_until_date(DateTime::from(in_days(2)))
        .build();
    s3.put_object_retention().bucket(BUCKET).key("report").retention(retention).send().await.expect("extend");
    assert_eq!(upstream_lock(&direct, &up_bucket, &blob).await.1, Some(later), "never shortened");

    // A legal hold stays upstream while any version sharing the blob holds one.
    s3.put_object_legal_hold().bucket(BUCKET).key("report").legal_hold(hold(true)).send().await.expect("hold");
    s3.put_object_legal_hold().bucket(BUCKET).key("copy").legal_hold(hold(true)).send().await.expect("hold copy");
    assert!(upstream_lock(&direct, &up_bucket, &blob).await.2);
    s3.put_object_legal_hold().bucket(BUCKET).key("report").legal_hold(hold(false)).send().await.expect("release");
    assert!(upstream_lock(&direct, &up_bucket, &blob).await.2, "the copy still holds it");
    s3.put_object_legal_hold().bucket(BUCKET).key("copy").legal_hold(hold(false)).send().await.expect("release");
    assert!(!upstream_lock(&direct, &up_bucket, &blob).await.2, "nothing holds it any more");

    // A GOVERNANCE version deleted through the gateway with a bypass (root may) leaves an
    // unreferenced upstream object the upstream still locks: gc keeps it and says so.
    let before = keys(&direct, &up_bucket).await;
    let put = s3
        .put_object()
        .bucket(BUCKET)
        .key("draft")
        .body(ByteStream::from_static(b"draft"))
        .object_lock_mode(ObjectLockMode::Governance)
        .object_lock_retain_until_date(DateTime::from(in_days(1)))
        .send()
        .await
        .expect("put governance");
    let draft = new_object(&direct, &up_bucket, &before).await;
    assert_eq!(upstream_lock(&direct, &up_bucket, &draft).await.0, Some(ObjectLockMode::Governance));
    s3.delete_object()
        .bucket(BUCKET)
        .key("draft")
        .version_id(put.version_id().unwrap())
        .bypass_governance_retention(true)
        .send()
        .await
        .expect("the gateway allows the bypass");
    let gc = server.cli(&["gc", "--min-age", "0s", "--json"]);
    assert!(gc.status.success(), "gc must not fail: {}", String::from_utf8_lossy(&gc.stderr));
    let report = String::from_utf8_lossy(&gc.stdout);
    assert!(report.contains("\"blobs_locked\":1"), "{report}");
    assert!(report.contains("\"blobs_referenced\":1"), "{report}");
    let head = direct.head_object().bucket(&up_bucket).key(&draft.0).version_id(&draft.1).send().await;
    assert!(head.is_ok(), "the locked object is still upstream");
}
