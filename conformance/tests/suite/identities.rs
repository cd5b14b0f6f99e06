//! Accounts, users and access keys (issue 18): made with the CLI while the gateway serves,
//! recorded as events without their secrets, and deciding what each key may do.

use artifact_store_conformance::cli::{expect, run};
use artifact_store_conformance::events::of_type;
use std::time::SystemTime;

use artifact_store_conformance::raw::{Key, Payload, Scope, assert_refused};
use artifact_store_conformance::sdk::{create_bucket, failure, get, put};
use artifact_store_conformance::{ACCESS_KEY, Server, Transport, md5_base64};

/// The namespace of S3's XML documents.
const XMLNS: &str = "http://s3.amazonaws.com/doc/2006-03-01/";
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ObjectLockLegalHold, ObjectLockLegalHoldStatus};

/// A key printed by `key create --json` or `account create --json`.
struct Created {
    access_key: String,
    secret_key: String,
    json: serde_json::Value,
}

impl Created {
    fn key(&self) -> Key<'_> {
        Key { access_key: &self.access_key, secret_key: &self.secret_key }
    }
}

fn created(server: &Server, args: &[&str]) -> Created {
    let ran = expect(server, args, 0);
    let json: serde_json::Value = serde_json::from_str(ran.stdout.trim()).expect("one JSON document");
    Created {
        access_key: json["access_key"].as_str().expect("access_key").to_owned(),
        secret_key: json["secret_key"].as_str().expect("secret_key").to_owned(),
        json,
    }
}

fn policy_file(dir: &tempfile::TempDir, name: &str, text: &str) -> String {
    let path = dir.path().join(name);
    std::fs::write(&path, text).expect("policy file");
    path.display().to_string()
}

/// Writing a version under Object Lock retention or a legal hold needs the permission to put
/// them, as PutObjectRetention and PutObjectLegalHold do: write permission alone must not make
/// a version nobody may delete before a date of the writer's choosing.
#[tokio::test]
async fn a_write_that_locks_its_version_needs_the_permission_to_lock_it() {
    use aws_sdk_s3::types::ObjectLockMode;

    let server = Server::start(Transport::Http).await;
    let dir = tempfile::tempdir().expect("temp folder");
    let s3 = server.s3();
    s3.create_bucket().bucket("locks").object_lock_enabled_for_bucket(true).send().await.expect("lock bucket");
    put(&s3, "locks", "source", b"source").await;
    expect(&server, &["user", "create", "ci"], 0);
    let ci = created(&server, &["--json", "key", "create", "ci"]);
    let as_ci = server.s3_as(ci.key());
    let writes = r#"{"Statement":[{"Effect":"Allow","Action":["s3:PutObject","s3:GetObject"],"Resource":"arn:aws:s3:::locks/*"}]}"#;
    expect(&server, &["user", "policy", "put", "ci", "--file", &policy_file(&dir, "writes.json", writes)], 0);
    let until = aws_sdk_s3::primitives::DateTime::from_secs(4_102_444_800); // 2100-01-01
    let denied = (403, "AccessDenied".to_owned());
    let before = server.events().len();

    let put_locked = as_ci
        .put_object()
        .bucket("locks")
        .key("junk")
        .object_lock_mode(ObjectLockMode::Compliance)
        .object_lock_retain_until_date(until)
        .body(ByteStream::from_static(b"junk"));
    assert_eq!(failure(put_locked.send().await), denied, "PUT with COMPLIANCE retention");
    let put_held = as_ci
        .put_object()
        .bucket("locks")
        .key("junk")
        .object_lock_legal_hold_status(ObjectLockLegalHoldStatus::On)
        .body(ByteStream::from_static(b"junk"));
    assert_eq!(failure(put_held.send().await), denied, "PUT under a legal hold");
    let copy_locked = as_ci
        .copy_object()
        .bucket("locks")
        .key("junk")
        .copy_source("locks/source")
        .object_lock_mode(ObjectLockMode::Compliance)
        .object_lock_retain_until_date(until);
    assert_eq!(failure(copy_locked.send().await), denied, "CopyObject with COMPLIANCE retention");
    let upload_held = as_ci
        .create_multipart_upload()
        .bucket("locks")
        .key("junk")
        .object_lock_legal_hold_status(ObjectLockLegalHoldStatus::On);
    assert_eq!(failure(upload_held.send().await), denied, "CreateMultipartUpload under a legal hold");
    server.assert_no_new_events(before, "writes that lock their version without the permission");
    server.assert_absent("locks", "junk").await;

    // Plain writes go through; with the permissions, so do locked ones.
    put(&as_ci, "locks", "plain", b"plain").await;
    let locks = r#"{"Statement":[{"Effect":"Allow","Action":["s3:PutObjectRetention","s3:PutObjectLegalHold"],"Resource":"arn:aws:s3:::locks/*"}]}"#;
    expect(
        &server,
        &["user", "policy", "put", "ci", "--name", "locks", "--file", &policy_file(&dir, "locks.json", locks)],
        0,
    );
    let put_held = as_ci
        .put_object()
        .bucket("locks")
        .key("held")
        .object_lock_legal_hold_status(ObjectLockLegalHoldStatus::On)
        .body(ByteStream::from_static(b"held"));
    put_held.send().await.expect("a legal hold put with the permission");
}

/// Found by an attacker's pass: the Object Lock condition keys of PutObjectLegalHold and
/// PutObjectRetention were read from `x-amz-object-lock-*` headers, which the caller chooses
/// and the operation ignores, not from the body the operation applies. A user allowed to
/// place holds only (`s3:object-lock-legal-hold` = ON) lifted one with an ON header and an OFF
/// body, and `s3:object-lock-remaining-retention-days` was never supplied, so a Deny on it let
/// a user lock a version for a century.
#[tokio::test]
async fn object_lock_conditions_are_what_the_request_sets_not_headers_beside_it() {
    use aws_sdk_s3::types::ObjectLockMode;

    let server = Server::start(Transport::Http).await;
    let dir = tempfile::tempdir().expect("temp folder");
    let s3 = server.s3();
    s3.create_bucket().bucket("locks").object_lock_enabled_for_bucket(true).send().await.expect("lock bucket");
    let held = s3
        .put_object()
        .bucket("locks")
        .key("held")
        .object_lock_legal_hold_status(ObjectLockLegalHoldStatus::On)
        .body(ByteStream::from_static(b"held"))
        .send()
        .await
        .expect("put under a legal hold");
    let held_version = held.version_id().expect("version").to_owned();
    put(&s3, "locks", "plain", b"plain").await;
    expect(&server, &["user", "create", "clerk"], 0);
    let clerk = created(&server, &["--json", "key", "create", "clerk"]);
    let policy = r#"{"Statement":[
        {"Effect":"Allow","Action":["s3:PutObject","s3:GetObject","s3:GetObjectVersion"],"Resource":"arn:aws:s3:::locks/*"},
        {"Effect":"Allow","Action":"s3:PutObjectLegalHold","Resource":"arn:aws:s3:::locks/*",
         "Condition":{"StringEquals":{"s3:object-lock-legal-hold":"ON"}}},
        {"Effect":"Allow","Action":"s3:PutObjectRetention","Resource":"arn:aws:s3:::locks/*",
         "Condition":{"StringEquals":{"s3:object-lock-mode":"GOVERNANCE"}}},
        {"Effect":"Deny","Action":["s3:PutObjectRetention","s3:PutObject"],"Resource":"arn:aws:s3:::locks/*",
         "Condition":{"NumericGreaterThan":{"s3:object-lock-remaining-retention-days":"30"}}}]}"#;
    expect(&server, &["user", "policy", "put", "clerk", "--file", &policy_file(&dir, "clerk.json", policy)], 0);
    let before = server.events().len();
    let request = |target: &str, body: String, headers: &[(&str, &str)]| {
        let mut request = server.request("PUT", target).header("content-md5", &md5_base64(body.as_bytes()));
        for (name, value) in headers {
            request = request.header(name, value);
        }
        request.body(body.into_bytes()).sign(clerk.key(), SystemTime::now(), Payload::Signed)
    };
    let hold = |status: &str| format!("<LegalHold xmlns=\"{XMLNS}\"><Status>{status}</Status></LegalHold>");
    let retention = |mode: &str, until: &str| {
        format!(
            "<Retention xmlns=\"{XMLNS}\"><Mode>{mode}</Mode><RetainUntilDate>{until}</RetainUntilDate></Retention>"
        )
    };
    let in_days = |days: i64| {
        let until = time::OffsetDateTime::now_utc() + time::Duration::days(days);
        format!("{:04}-{:02}-{:02}T00:00:00Z", until.year(), u8::from(until.month()), until.day())
    };
    let lift = format!("/locks/held?legal-hold&versionId={held_version}");

    // Lifting the hold: refused, with or without a header that says ON beside the body's OFF.
    for headers in [&[][..], &[("x-amz-object-lock-legal-hold", "ON")][..]] {
        let answer = server.send(&request(&lift, hold("OFF"), headers)).await;
        assert_refused(&answer, 403, "AccessDenied", &format!("a legal hold lifted with {headers:?}"));
    }
    // Retention: COMPLIANCE in the body is refused whatever the header says; GOVERNANCE
    // for more than 30 days is denied by the remaining days; for 10 days it is set.
    let compliance = retention("COMPLIANCE", &in_days(10));
    let answer =
        server.send(&request("/locks/plain?retention", compliance, &[("x-amz-object-lock-mode", "GOVERNANCE")])).await;
    assert_refused(&answer, 403, "AccessDenied", "COMPLIANCE retention under a GOVERNANCE header");
    let century = retention("GOVERNANCE", &in_days(36_500));
    let answer = server.send(&request("/locks/plain?retention", century, &[])).await;
    assert_refused(&answer, 403, "AccessDenied", "retention for a century past a 30-day Deny");
    // A write that locks its version for a century is denied by the same statement.
    let as_clerk = server.s3_as(clerk.key());
    let locked_put = as_clerk
        .put_object()
        .bucket("locks")
        .key("century")
        .object_lock_mode(ObjectLockMode::Governance)
        .object_lock_retain_until_date(aws_sdk_s3::primitives::DateTime::from_secs(
            (time::OffsetDateTime::now_utc() + time::Duration::days(36_500)).unix_timestamp(),
        ))
        .body(ByteStream::from_static(b"century"));
    assert_eq!(failure(locked_put.send().await), (403, "AccessDenied".to_owned()), "a PUT locked for a century");
    server.assert_no_new_events(before, "lock changes the clerk's policy refuses");

    // What the policy allows goes through.
    let answer = server.send(&request("/locks/plain?retention", retention("GOVERNANCE", &in_days(10)), &[])).await;
    assert_eq!(answer.status, 200, "GOVERNANCE retention for 10 days: {}", answer.text());
    let answer = server.send(&request("/locks/plain?legal-hold", hold("ON"), &[])).await;
    assert_eq!(answer.status, 200, "a legal hold placed: {}", answer.text());
    let still = s3.get_object_legal_hold().bucket("locks").key("held").version_id(&held_version).send().await;
    assert_eq!(still.expect("legal hold").legal_hold().and_then(|h| h.status()), Some(&ObjectLockLegalHoldStatus::On));
}

#[tokio::test]
async fn a_user_with_no_policy_can_do_nothing_until_one_allows_it_and_cannot_lift_a_legal_hold_issue_18() {
    let server = Server::start(Transport::Http).await;
    let dir = tempfile::tempdir().expect("temp folder");
    let s3 = server.s3();
    create_bucket(&s3, "team").await;
    put(&s3, "team", "build/app.tar", b"artifact").await;
    s3.create_bucket().bucket("held").object_lock_enabled_for_bucket(true).send().await.expect("lock bucket");
    let held = s3
        .put_object()
        .bucket("held")
        .key("evidence.bin")
        .object_lock_legal_hold_status(ObjectLockLegalHoldStatus::On)
        .body(ByteStream::from_static(b"keep me"))
        .send()
        .await
        .expect("put under legal hold");
    let version = held.version_id().expect("version").to_owned();

    expect(&server, &["user", "create", "alice"], 0);
    let alice = created(&server, &["--json", "key", "create", "alice"]);
    assert_eq!(alice.json["account"], "root");
    assert_eq!(alice.json["user"], "alice");
    assert_eq!(alice.access_key.len(), 20);
    assert_eq!(alice.secret_key.len(), 40);
    let as_alice = server.s3_as(alice.key());

    // No policy: nothing in the root's buckets, and no listing of them.
    let denied = (403, "AccessDenied".to_owned());
    assert_eq!(failure(as_alice.get_object().bucket("team").key("build/app.tar").send().await), denied);
    let write = as_alice.put_object().bucket("team").key("x").body(ByteStream::from_static(b"x")).send().await;
    assert_eq!(failure(write), denied);
    assert_eq!(failure(as_alice.list_objects_v2().bucket("team").send().await), denied);
    assert_eq!(failure(as_alice.list_buckets().send().await), denied);
    assert_eq!(failure(as_alice.delete_bucket().bucket("team").send().await), denied);
    assert_eq!(failure(as_alice.create_bucket().bucket("alices").send().await), denied);

    // A policy that allows reading build/ lets exactly that in.
    let reads = r#"{"Version":"2012-10-17","Statement":[
        {"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::team/build/*"},
        {"Effect":"Allow","Action":["s3:GetObject","s3:GetObjectVersion","s3:DeleteObjectVersion"],
         "Resource":"arn:aws:s3:::held/*"}]}"#;
    // A malformed policy is refused with IAM's reason, and nothing is recorded.
    let before = server.events().len();
    let malformed = policy_file(&dir, "bad.json", r#"{"Statement":{"Effect":"Allow","Action":"s3:GetObject"}}"#);
    let refused = expect(&server, &["user", "policy", "put", "alice", "--file", &malformed], 2);
    assert!(refused.stderr.contains("malformed policy"), "{}", refused.stderr);
    server.assert_no_new_events(before, "a malformed user policy");
    expect(&server, &["user", "policy", "put", "alice", "--file", &policy_file(&dir, "reads.json", reads)], 0);
    assert_eq!(get(&as_alice, "team", "build/app.tar").await, b"artifact");
    let write = as_alice.put_object().bucket("team").key("build/x").body(ByteStream::from_static(b"x")).send().await;
    assert_eq!(failure(write), denied);
    let got = expect(&server, &["user", "policy", "get", "alice"], 0);
    assert_eq!(got.stdout.trim(), reads);

    // The registry API is decided the same way: the object's provenance and retrievals with
    // s3:GetObject on it, the whole log only with artifact-store:ReadEvents.
    let registry_get =
        |target: &str| server.request("GET", target).sign(alice.key(), SystemTime::now(), Payload::Signed);
    let provenance = server.send(&registry_get("/_registry/objects/team/build/app.tar")).await;
    assert_eq!(provenance.status, 200, "{}", provenance.text());
    let retrievals = server.send(&registry_get("/_registry/retrievals?bucket=team&key=build/app.tar")).await;
    assert_eq!(retrievals.status, 200, "{}", retrievals.text());
    for target in
        ["/_registry/events", "/_registry/events/1", "/_registry/retrievals", "/_registry/objects/team/other.tar"]
    {
        let refused = server.send(&registry_get(target)).await;
        assert_eq!(refused.status, 403, "{target}: {}", refused.text());
        assert_eq!(refused.code().as_deref(), Some("AccessDenied"), "{target}");
    }

    let feed = policy_file(
        &dir,
        "feed.json",
        r#"{"Statement":{"Effect":"Allow","Action":"artifact-store:ReadEvents","Resource":"*"}}"#,
    );
    expect(&server, &["user", "policy", "put", "alice", "--name", "feed", "--file", &feed], 0);
    let events = server.send(&registry_get("/_registry/events")).await;
    assert_eq!(events.status, 200, "{}", events.text());
    expect(&server, &["user", "policy", "delete", "alice", "--name", "feed"], 0);

    // The legal hold stays: lifting it needs s3:PutObjectLegalHold, and the version it
    // protects cannot be deleted.
    let before = server.events().len();
    let lift = as_alice
        .put_object_legal_hold()
        .bucket("held")
        .key("evidence.bin")
        .version_id(&version)
        .legal_hold(ObjectLockLegalHold::builder().status(ObjectLockLegalHoldStatus::Off).build())
        .send()
        .await;
    assert_eq!(failure(lift), denied);
    let delete = as_alice.delete_object().bucket("held").key("evidence.bin").version_id(&version).send().await;
    assert_eq!(failure(delete), denied);
    server.assert_no_new_events(before, "a refused legal-hold lift and delete");
    let hold = s3.get_object_legal_hold().bucket("held").key("evidence.bin").version_id(&version).send().await;
    assert_eq!(hold.expect("legal hold").legal_hold().and_then(|h| h.status()), Some(&ObjectLockLegalHoldStatus::On));
    assert_eq!(get(&s3, "held", "evidence.bin").await, b"keep me");

    // A disabled key stops signing at once, while the gateway serves; enabled, it signs again.
    expect(&server, &["key", "disable", &alice.access_key], 0);
    let invalid = (403, "InvalidAccessKeyId".to_owned());
    assert_eq!(failure(as_alice.get_object().bucket("team").key("build/app.tar").send().await), invalid);
    expect(&server, &["key", "enable", &alice.access_key], 0);
    assert_eq!(get(&as_alice, "team", "build/app.tar").await, b"artifact");

    // A user with a key or a policy cannot be deleted; without them it can.
    let refused = expect(&server, &["user", "delete", "alice"], 2);
    assert!(refused.stderr.contains("must delete access keys first"), "{}", refused.stderr);
    expect(&server, &["key", "delete", &alice.access_key], 0);
    assert_eq!(failure(as_alice.get_object().bucket("team").key("build/app.tar").send().await), invalid);
    expect(&server, &["user", "delete", "alice"], 2);
    expect(&server, &["user", "policy", "delete", "alice"], 0);
    expect(&server, &["user", "delete", "alice"], 0);

    // Every change is an event by the operator, and no event holds the secret.
    let events = server.events();
    let types: Vec<&str> = events
        .iter()
        .map(|e| e.event_type.as_str())
        .filter(|t| !t.starts_with("v1.bucket") && !t.starts_with("v1.object") && !t.starts_with("v1.legal"))
        .collect();
    assert_eq!(
        types,
        [
            "v1.account.created",
            "v1.user.created",
            "v1.access_key.created",
            "v1.user.created",
            "v1.access_key.created",
            "v1.user.policy.set",
            "v1.user.policy.set",
            "v1.user.policy.deleted",
            "v1.access_key.status.set",
            "v1.access_key.status.set",
            "v1.access_key.deleted",
            "v1.user.policy.deleted",
            "v1.user.deleted",
        ]
    );
    let created = of_type(&events, "v1.access_key.created");
    assert_eq!(created[0].actor, "system", "the root key, recorded on the first start");
    assert_eq!(created[1].actor, "operator");
    assert_eq!(created[1].payload["access_key"], alice.access_key.as_str());
    assert_eq!(created[1].payload["user"], "alice");
    let log = run(&server, &["--json", "events", "list"]).stdout;
    assert!(log.contains(&alice.access_key));
    assert!(!log.contains(&alice.secret_key), "a secret reached the log");
}

/// Found by an attacker's pass: another account that a bucket policy grants `s3:*` read,
/// replaced and deleted the policy itself, and so lifted the owner's Deny and made the bucket
/// public. On AWS a bucket's policy is its owner's account's alone: anyone else is answered
/// 405 `MethodNotAllowed` when a policy grants it the action, 403 when none does.
#[tokio::test]
async fn only_the_owners_account_manages_a_buckets_policy_whatever_the_policy_grants() {
    let server = Server::start(Transport::Http).await;
    let s3 = server.s3();
    create_bucket(&s3, "ours").await;
    create_bucket(&s3, "closed").await;
    put(&s3, "ours", "secret/a.txt", b"secret").await;
    let other = created(&server, &["--json", "account", "create", "partner"]);
    let partner_id = other.json["id"].as_str().expect("account id").to_owned();
    let partner = server.s3_as(other.key());
    let policy = format!(
        r#"{{"Version":"2012-10-17","Statement":[
        {{"Effect":"Allow","Principal":{{"AWS":"{partner_id}"}},"Action":"s3:*","Resource":["arn:aws:s3:::ours","arn:aws:s3:::ours/*"]}},
        {{"Effect":"Deny","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::ours/secret/*"}}]}}"#
    );
    s3.put_bucket_policy().bucket("ours").policy(&policy).send().await.expect("the owner puts the policy");
    let before = server.events().len();
    let not_allowed = (405, "MethodNotAllowed".to_owned());
    assert_eq!(failure(partner.get_bucket_policy().bucket("ours").send().await), not_allowed, "GetBucketPolicy");
    let public =
        r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:*","Resource":"arn:aws:s3:::ours/*"}]}"#;
    let replace = partner.put_bucket_policy().bucket("ours").policy(public).send().await;
    assert_eq!(failure(replace), not_allowed, "PutBucketPolicy");
    assert_eq!(failure(partner.delete_bucket_policy().bucket("ours").send().await), not_allowed, "DeleteBucketPolicy");
    // Where no policy grants it the action, the answer is AccessDenied, as for any other.
    let denied = (403, "AccessDenied".to_owned());
    assert_eq!(failure(partner.get_bucket_policy().bucket("closed").send().await), denied);
    server.assert_no_new_events(before, "another account's policy calls");
    let kept = s3.get_bucket_policy().bucket("ours").send().await.expect("the owner reads its policy");
    assert_eq!(kept.policy(), Some(policy.as_str()));
    // What the policy does grant still works.
    assert_eq!(failure(partner.get_object().bucket("ours").key("secret/a.txt").send().await), denied);
    put(&partner, "ours", "drop/b.txt", b"b").await;
}

/// Found by an attacker's pass: `s3:x-amz-copy-source` was the header as sent, while the copy
/// reads the source it decodes, so a Deny on `bucket/secret/*` was passed by `/bucket/secret/a`,
/// `bucket/%73ecret/a` or `bucket/secret%2Fa`. The key is now the source the copy reads.
#[tokio::test]
async fn copy_source_conditions_see_the_source_the_copy_reads() {
    let server = Server::start(Transport::Http).await;
    let dir = tempfile::tempdir().expect("temp folder");
    let s3 = server.s3();
    create_bucket(&s3, "docs").await;
    put(&s3, "docs", "secret/a.txt", b"secret").await;
    put(&s3, "docs", "public/b.txt", b"public").await;
    expect(&server, &["user", "create", "copier"], 0);
    let copier = created(&server, &["--json", "key", "create", "copier"]);
    let policy = r#"{"Statement":[
        {"Effect":"Allow","Action":["s3:GetObject","s3:PutObject"],"Resource":"arn:aws:s3:::docs/*"},
        {"Effect":"Deny","Action":"s3:PutObject","Resource":"arn:aws:s3:::docs/*",
         "Condition":{"StringLike":{"s3:x-amz-copy-source":"docs/secret/*"}}}]}"#;
    expect(&server, &["user", "policy", "put", "copier", "--file", &policy_file(&dir, "copier.json", policy)], 0);
    let before = server.events().len();
    for source in ["docs/secret/a.txt", "/docs/secret/a.txt", "docs/%73ecret/a.txt", "docs/secret%2Fa.txt"] {
        let copy = server.request("PUT", "/docs/out.txt").header("x-amz-copy-source", source).sign(
            copier.key(),
            SystemTime::now(),
            Payload::Signed,
        );
        assert_refused(&server.send(&copy).await, 403, "AccessDenied", &format!("a copy of {source}"));
    }
    server.assert_no_new_events(before, "copies of a denied source");
    let copy = server.request("PUT", "/docs/out.txt").header("x-amz-copy-source", "/docs/public/b.txt").sign(
        copier.key(),
        SystemTime::now(),
        Payload::Signed,
    );
    assert_eq!(server.send(&copy).await.status, 200, "a copy of an allowed source");
    assert_eq!(get(&s3, "docs", "out.txt").await, b"public");
}

/// Found by an attacker's pass: CreateBucket asking for object ownership or Object Lock
/// needed `s3:CreateBucket` alone. On AWS it also needs `s3:PutBucketOwnershipControls` for
/// `x-amz-object-ownership`, and `s3:PutBucketObjectLockConfiguration` with
/// `s3:PutBucketVersioning` for `x-amz-bucket-object-lock-enabled`.
#[tokio::test]
async fn a_bucket_created_with_ownership_or_object_lock_needs_those_permissions_too() {
    use aws_sdk_s3::types::ObjectOwnership;

    let server = Server::start(Transport::Http).await;
    let dir = tempfile::tempdir().expect("temp folder");
    expect(&server, &["user", "create", "maker"], 0);
    let maker = created(&server, &["--json", "key", "create", "maker"]);
    let as_maker = server.s3_as(maker.key());
    let policy = r#"{"Statement":[{"Effect":"Allow","Action":"s3:CreateBucket","Resource":"*"}]}"#;
    expect(&server, &["user", "policy", "put", "maker", "--file", &policy_file(&dir, "maker.json", policy)], 0);
    let before = server.events().len();
    let denied = (403, "AccessDenied".to_owned());
    let owned = as_maker.create_bucket().bucket("owned").object_ownership(ObjectOwnership::ObjectWriter).send().await;
    assert_eq!(failure(owned), denied, "a bucket with its object ownership");
    let locked = as_maker.create_bucket().bucket("locked").object_lock_enabled_for_bucket(true).send().await;
    assert_eq!(failure(locked), denied, "a bucket with Object Lock");
    server.assert_no_new_events(before, "buckets created without the permissions they ask for");
    as_maker.create_bucket().bucket("plain").send().await.expect("a plain bucket");
    let more = r#"{"Statement":[{"Effect":"Allow","Action":["s3:PutBucketOwnershipControls",
        "s3:PutBucketObjectLockConfiguration","s3:PutBucketVersioning"],"Resource":"*"}]}"#;
    let file = policy_file(&dir, "more.json", more);
    expect(&server, &["user", "policy", "put", "maker", "--name", "more", "--file", &file], 0);
    as_maker
        .create_bucket()
        .bucket("owned")
        .object_ownership(ObjectOwnership::ObjectWriter)
        .send()
        .await
        .expect("owned");
    as_maker.create_bucket().bucket("locked").object_lock_enabled_for_bucket(true).send().await.expect("locked");
}

/// Found by an attacker's pass: `s3:signatureAge` was never supplied, so a policy bounding
/// how old a presigned URL may be held nothing, and week-long URLs kept working. It is the
/// time since the request's SigV4 date (header or presigned query), in milliseconds.
#[tokio::test]
async fn a_policy_bounds_the_age_of_a_signature() {
    use std::time::Duration;

    let server = Server::start(Transport::Http).await;
    let dir = tempfile::tempdir().expect("temp folder");
    let s3 = server.s3();
    create_bucket(&s3, "shared").await;
    put(&s3, "shared", "report.csv", b"numbers").await;
    expect(&server, &["user", "create", "linker"], 0);
    let linker = created(&server, &["--json", "key", "create", "linker"]);
    let policy = r#"{"Statement":[
        {"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::shared/*"},
        {"Effect":"Deny","Action":"s3:GetObject","Resource":"arn:aws:s3:::shared/*",
         "Condition":{"NumericGreaterThan":{"s3:signatureAge":"600000"}}}]}"#;
    expect(&server, &["user", "policy", "put", "linker", "--file", &policy_file(&dir, "linker.json", policy)], 0);
    let url = |signed: SystemTime| {
        server.request("GET", "/shared/report.csv").presign(linker.key(), signed, Duration::from_secs(3600))
    };
    let old = server.send(&url(SystemTime::now() - Duration::from_secs(15 * 60))).await;
    assert_refused(&old, 403, "AccessDenied", "a presigned URL signed 15 minutes ago");
    let fresh = server.send(&url(SystemTime::now())).await;
    assert_eq!((fresh.status, fresh.body.as_slice()), (200, b"numbers".as_slice()), "{}", fresh.text());
    let header_signed = server.request("GET", "/shared/report.csv").sign(
        linker.key(),
        SystemTime::now() - Duration::from_secs(5 * 60),
        Payload::Signed,
    );
    assert_eq!(server.send(&header_signed).await.status, 200, "a header signature 5 minutes old");
}

#[tokio::test]
async fn accounts_own_their_buckets_and_another_account_needs_the_bucket_s_grant_issue_18() {
    let server = Server::start(Transport::Http).await;
    let s3 = server.s3();
    create_bucket(&s3, "ours").await;
    put(&s3, "ours", "shared/report.csv", b"numbers").await;

    let other = created(&server, &["--json", "account", "create", "partner"]);
    let id = other.json["id"].as_str().expect("account id").to_owned();
    assert_eq!(id.len(), 12);
    assert_eq!(other.json["user"], "root");
    let partner = server.s3_as(other.key());

    // An account's root user may do everything in its own buckets, and sees only those.
    create_bucket(&partner, "theirs").await;
    put(&partner, "theirs", "k", b"partner data").await;
    let names = |listed: aws_sdk_s3::operation::list_buckets::ListBucketsOutput| {
        listed.buckets().iter().filter_map(|b| b.name().map(str::to_owned)).collect::<Vec<_>>()
    };
    assert_eq!(names(partner.list_buckets().send().await.expect("partner lists")), ["theirs"]);
    assert_eq!(names(s3.list_buckets().send().await.expect("root lists")), ["ours"]);

    // A bucket name is taken for everyone; its owner may re-create it (200 in us-east-1).
    assert_eq!(failure(s3.create_bucket().bucket("theirs").send().await), (409, "BucketAlreadyExists".to_owned()));
    partner.create_bucket().bucket("theirs").send().await.expect("the owner re-creates its bucket in us-east-1");

    // Across accounts: nothing without the bucket's grant; with it, exactly what it grants.
    let denied = (403, "AccessDenied".to_owned());
    assert_eq!(failure(partner.get_object().bucket("ours").key("shared/report.csv").send().await), denied);
    assert_eq!(failure(s3.get_object().bucket("theirs").key("k").send().await), denied);
    let grant = format!(
        r#"{{"Statement":{{"Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::{id}:root"}},
            "Action":"s3:GetObject","Resource":"arn:aws:s3:::ours/shared/*"}}}}"#
    );
    s3.put_bucket_policy().bucket("ours").policy(&grant).send().await.expect("grant the partner");
    assert_eq!(get(&partner, "ours", "shared/report.csv").await, b"numbers");
    let write = partner.put_object().bucket("ours").key("shared/new").body(ByteStream::from_static(b"x")).send().await;
    assert_eq!(failure(write), denied);

    // A user of the partner account needs its own account's leave as well as the grant.
    expect(&server, &["user", "create", "bob", "--account", "partner"], 0);
    let bob = created(&server, &["--json", "key", "create", "bob", "--account", "partner"]);
    let as_bob = server.s3_as(bob.key());
    assert_eq!(failure(as_bob.get_object().bucket("ours").key("shared/report.csv").send().await), denied);
    let dir = tempfile::tempdir().expect("temp folder");
    let path = dir.path().join("bob.json");
    std::fs::write(&path, r#"{"Statement":{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}}"#)
        .expect("policy file");
    let path = path.display().to_string();
    expect(&server, &["user", "policy", "put", "bob", "--account", "partner", "--file", &path], 0);
    assert_eq!(get(&as_bob, "ours", "shared/report.csv").await, b"numbers");
    assert_eq!(get(&as_bob, "theirs", "k").await, b"partner data");
    assert_eq!(failure(as_bob.get_object().bucket("ours").key("private").send().await), denied);

    // The log is the gateway's: another account reads only what a bucket grants it.
    let feed =
        server.request("GET", "/_registry/events").sign(other.key(), std::time::SystemTime::now(), Payload::Signed);
    let refused = server.send(&feed).await;
    assert_eq!((refused.status, refused.code().as_deref()), (403, Some("AccessDenied")));
    let granted = server.request("GET", "/_registry/objects/ours/shared/report.csv").sign(
        other.key(),
        std::time::SystemTime::now(),
        Payload::Signed,
    );
    assert_eq!(server.send(&granted).await.status, 200);

    // The history names the principal of each version: account, user and key.
    let history = expect(&server, &["--json", "object", "history", "s3://theirs/k"], 0).stdout;
    let history: serde_json::Value = serde_json::from_str(&history).expect("history JSON");
    let principal = &history["versions"][0]["principal"];
    assert_eq!(principal["account"], "partner");
    assert_eq!(principal["user"], "root");
    assert_eq!(principal["access_key"], other.access_key.as_str());
    assert_eq!(principal["arn"], format!("arn:aws:iam::{id}:root").as_str());
    let text = expect(&server, &["object", "history", "s3://theirs/k"], 0).stdout;
    assert!(text.contains(&format!("principal   arn:aws:iam::{id}:root (partner/root)")), "{text}");

    let listed = expect(&server, &["--json", "account", "list"], 0).stdout;
    assert!(listed.contains(r#""account":"partner""#) && listed.contains(r#""account":"root""#), "{listed}");
}

/// An IAM query API call (`POST /`, form-encoded), signed for `iam` with `key`.
async fn iam(server: &Server, key: Key<'_>, form: &[(&str, &str)]) -> (u16, String) {
    let body: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("Version", "2010-05-08")
        .extend_pairs(form)
        .finish();
    let scope = Scope { region: "us-east-1", service: "iam" };
    let request = server
        .request("POST", "/")
        .header("content-type", "application/x-www-form-urlencoded; charset=utf-8")
        .body(body.into_bytes())
        .sign_in(scope, key, SystemTime::now(), Payload::Signed);
    let response = server.send(&request).await;
    (response.status, response.text())
}

/// The `<Code>` of an IAM error answer.
fn iam_code(answer: &(u16, String)) -> (u16, String) {
    let code = answer.1.split("<Code>").nth(1).and_then(|rest| rest.split("</Code>").next()).unwrap_or("");
    (answer.0, code.to_owned())
}

#[tokio::test]
async fn the_iam_api_checks_signatures_and_lets_only_the_root_or_an_allowed_user_manage_users_issue_18() {
    let server = Server::start(Transport::Http).await;
    let root = artifact_store_conformance::raw::ROOT;

    let created = iam(&server, root, &[("Action", "CreateUser"), ("UserName", "erin")]).await;
    assert_eq!(created.0, 200, "{}", created.1);
    assert!(created.1.contains("<UserName>erin</UserName>"), "{}", created.1);
    let key = iam(&server, root, &[("Action", "CreateAccessKey"), ("UserName", "erin")]).await;
    assert_eq!(key.0, 200, "{}", key.1);
    let field = |name: &str| {
        key.1.split(&format!("<{name}>")).nth(1).and_then(|rest| rest.split('<').next()).expect(name).to_owned()
    };
    let (id, secret) = (field("AccessKeyId"), field("SecretAccessKey"));
    let erin = Key { access_key: &id, secret_key: &secret };

    // A user without iam permissions manages nothing, itself included.
    let denied = iam(&server, erin, &[("Action", "CreateUser"), ("UserName", "frank")]).await;
    assert_eq!(iam_code(&denied), (403, "AccessDenied".to_owned()), "{}", denied.1);
    let listed = iam(&server, erin, &[("Action", "ListUsers")]).await;
    assert_eq!(iam_code(&listed), (403, "AccessDenied".to_owned()));

    // A forged signature and an unknown key are refused as IAM refuses them, and record nothing.
    let before = server.events().len();
    let forged = Key { access_key: &id, secret_key: "not-the-secret-not-the-secret-not-the-se" };
    let refused = iam(&server, forged, &[("Action", "CreateUser"), ("UserName", "mallory")]).await;
    assert_eq!(iam_code(&refused), (403, "SignatureDoesNotMatch".to_owned()));
    let stranger = Key { access_key: "AKNOSUCHKEY000000000", secret_key: "whatever-whatever-whatever-whatever-what" };
    let refused = iam(&server, stranger, &[("Action", "CreateUser"), ("UserName", "mallory")]).await;
    assert_eq!(iam_code(&refused), (403, "InvalidClientTokenId".to_owned()));
    server.assert_no_new_events(before, "refused IAM calls");

    // Allowed iam:*, the user manages users; the events name its key.
    let admin = r#"{"Statement":{"Effect":"Allow","Action":"iam:*","Resource":"*"}}"#;
    let put = iam(
        &server,
        root,
        &[("Action", "PutUserPolicy"), ("UserName", "erin"), ("PolicyName", "admin"), ("PolicyDocument", admin)],
    )
    .await;
    assert_eq!(put.0, 200, "{}", put.1);
    let got = iam(&server, root, &[("Action", "GetUserPolicy"), ("UserName", "erin"), ("PolicyName", "admin")]).await;
    assert!(got.1.contains("%7B%22Statement%22"), "the document comes back URL-encoded: {}", got.1);
    let made = iam(&server, erin, &[("Action", "CreateUser"), ("UserName", "frank")]).await;
    assert_eq!(made.0, 200, "{}", made.1);
    let events = server.events();
    let frank = of_type(&events, "v1.user.created").into_iter().find(|e| e.payload["user"] == "frank").expect("frank");
    assert_eq!(frank.actor, id);

    // Names and malformed policies refused with IAM's codes.
    let bad = iam(&server, root, &[("Action", "CreateUser"), ("UserName", "no spaces")]).await;
    assert_eq!(iam_code(&bad), (400, "ValidationError".to_owned()));
    let twice = iam(&server, root, &[("Action", "CreateUser"), ("UserName", "frank")]).await;
    assert_eq!(iam_code(&twice), (409, "EntityAlreadyExists".to_owned()));
    // IAM does not tell names apart by case: not `FRANK` beside `frank`, nor `Root`.
    for alike in ["FRANK", "Frank", "Root", "ROOT"] {
        let refused = iam(&server, root, &[("Action", "CreateUser"), ("UserName", alike)]).await;
        assert_eq!(iam_code(&refused), (409, "EntityAlreadyExists".to_owned()), "{alike}");
    }
    let malformed = iam(
        &server,
        root,
        &[("Action", "PutUserPolicy"), ("UserName", "frank"), ("PolicyName", "p"), ("PolicyDocument", "{}")],
    )
    .await;
    assert_eq!(iam_code(&malformed), (400, "MalformedPolicyDocument".to_owned()));
    let unknown = iam(&server, root, &[("Action", "CreateRole"), ("RoleName", "r")]).await;
    assert_eq!(iam_code(&unknown), (400, "InvalidAction".to_owned()));
}

#[tokio::test]
async fn no_iam_permission_reaches_the_root_user_and_the_configured_root_key_stays_the_configuration_s_issue_18() {
    let server = Server::start(Transport::Http).await;
    let root = artifact_store_conformance::raw::ROOT;
    iam(&server, root, &[("Action", "CreateUser"), ("UserName", "helpdesk")]).await;
    let key = iam(&server, root, &[("Action", "CreateAccessKey"), ("UserName", "helpdesk")]).await;
    let field = |name: &str| {
        key.1.split(&format!("<{name}>")).nth(1).and_then(|rest| rest.split('<').next()).expect(name).to_owned()
    };
    let (id, secret) = (field("AccessKeyId"), field("SecretAccessKey"));
    let helpdesk = Key { access_key: &id, secret_key: &secret };
    let rotation = r#"{"Statement":{"Effect":"Allow","Action":["iam:*"],"Resource":"*"}}"#;
    let put =
        [("Action", "PutUserPolicy"), ("UserName", "helpdesk"), ("PolicyName", "p"), ("PolicyDocument", rotation)];
    assert_eq!(iam(&server, root, &put).await.0, 200);

    // Allowed every IAM action on every resource, the user still cannot touch the root user.
    let before = server.events().len();
    let not_found = (404, "NoSuchEntity".to_owned());
    for form in [
        vec![("Action", "CreateAccessKey"), ("UserName", "root")],
        vec![("Action", "ListAccessKeys"), ("UserName", "root")],
        vec![("Action", "UpdateAccessKey"), ("AccessKeyId", ACCESS_KEY), ("Status", "Inactive")],
        vec![("Action", "DeleteAccessKey"), ("AccessKeyId", ACCESS_KEY)],
        vec![("Action", "PutUserPolicy"), ("UserName", "root"), ("PolicyName", "p"), ("PolicyDocument", rotation)],
    ] {
        assert_eq!(iam_code(&iam(&server, helpdesk, &form).await), not_found, "{form:?}");
    }
    server.assert_no_new_events(before, "IAM calls on the root user");

    // A key is changed only through its own user: naming another user, or none that exists,
    // is NoSuchEntity, as on AWS, and the key stays as it was.
    iam(&server, root, &[("Action", "CreateUser"), ("UserName", "other")]).await;
    let before = server.events().len();
    for user in ["other", "nosuchuser"] {
        let disable = [("Action", "UpdateAccessKey"), ("UserName", user), ("AccessKeyId", &id), ("Status", "Inactive")];
        assert_eq!(iam_code(&iam(&server, root, &disable).await), not_found, "UpdateAccessKey naming {user}");
        let delete = [("Action", "DeleteAccessKey"), ("UserName", user), ("AccessKeyId", &id)];
        assert_eq!(iam_code(&iam(&server, root, &delete).await), not_found, "DeleteAccessKey naming {user}");
    }
    server.assert_no_new_events(before, "key changes naming another user");
    assert_eq!(iam(&server, helpdesk, &[("Action", "ListAccessKeys")]).await.0, 200, "the key still signs");

    // The configured root key is the configuration's: neither the CLI nor the root user itself
    // disables or deletes it through the registry, and it goes on signing.
    let refused = expect(&server, &["key", "disable", ACCESS_KEY], 2);
    assert!(refused.stderr.contains("root key of the configuration"), "{}", refused.stderr);
    expect(&server, &["key", "delete", ACCESS_KEY], 2);
    let own = iam(&server, root, &[("Action", "DeleteAccessKey"), ("AccessKeyId", ACCESS_KEY)]).await;
    assert_eq!(iam_code(&own), (409, "DeleteConflict".to_owned()));
    create_bucket(&server.s3(), "still-root").await;
    server.assert_no_new_events(before + 1, "refused changes to the configured root key");
}

/// A server whose configuration adds `key` to `[[auth.users]]`, with `extra` lines in its
/// entry; the folder holding the configuration goes with it.
async fn with_configured_key(key: Key<'_>, extra: &str) -> (Server, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp folder");
    let config = dir.path().join("users.toml");
    let entry =
        format!("[[auth.users]]\naccess_key = \"{}\"\nsecret_key = \"{}\"\n{extra}", key.access_key, key.secret_key);
    std::fs::write(&config, entry).expect("config file");
    let mut env = artifact_store_conformance::server::upstream_env();
    env.push(("ARTIFACT_STORE_CONFIG".into(), config.display().to_string()));
    (Server::start_with(Transport::Http, &[], env).await, dir)
}

/// Asserts that `key` is refused each IAM call of `forms`, and ListUsers with `AccessDenied`.
async fn assert_no_iam_rights(server: &Server, key: Key<'_>, forms: &[&[(&str, &str)]]) {
    for form in forms {
        let answer = iam(server, key, form).await;
        assert!(matches!(iam_code(&answer).0, 403 | 404), "{form:?}: {}", answer.1);
    }
    assert_eq!(iam_code(&iam(server, key, &[("Action", "ListUsers")]).await), (403, "AccessDenied".to_owned()));
}

#[tokio::test]
async fn a_configured_user_gets_no_iam_rights_issue_18() {
    let ci = Key { access_key: "CONFORMANCECIKEY0000", secret_key: "ci0secret0key0for0conformance0000000000" };
    let (server, _config) = with_configured_key(ci, "").await;
    let forms: [&[(&str, &str)]; 3] = [
        &[("Action", "CreateUser"), ("UserName", "escape")],
        &[("Action", "CreateAccessKey"), ("UserName", "root")],
        &[("Action", "ListUsers")],
    ];
    assert_no_iam_rights(&server, ci, &forms).await;
}

/// Found by an attacker's pass: a configured key whose access key was `root` was taken for the
/// account's root user by the IAM API (its user is named after its access key, and the root
/// user was recognised by that name): it could make users and a registry key of the root user,
/// which then bypassed governance retention the configuration denied it.
#[tokio::test]
async fn a_configured_key_named_root_is_not_the_root_user() {
    let named_root = Key { access_key: "root", secret_key: "ci0secret0key0named0root0000000000000000" };
    let (server, _config) = with_configured_key(named_root, "bypass_governance = false\n").await;
    let before = server.events().len();
    let forms: [&[(&str, &str)]; 3] = [
        &[("Action", "CreateUser"), ("UserName", "mallory")],
        &[("Action", "CreateAccessKey")],
        &[("Action", "ListUsers")],
    ];
    assert_no_iam_rights(&server, named_root, &forms).await;
    server.assert_no_new_events(before, "IAM calls of a configured key named root");
}

#[tokio::test]
async fn the_iam_api_answers_over_http2_where_the_host_is_the_uri_s_authority_issue_18() {
    let server = Server::start(Transport::Http).await;
    let body = "Action=ListUsers&Version=2010-05-08";
    let request = server
        .request("POST", "/")
        .header("content-type", "application/x-www-form-urlencoded; charset=utf-8")
        .body(body.as_bytes().to_vec())
        .sign_in(
            Scope { region: "us-east-1", service: "iam" },
            artifact_store_conformance::raw::ROOT,
            SystemTime::now(),
            Payload::Signed,
        );
    let mut h2 = server.http2().await;
    let answer = h2.send_with_body(&server, &request, body.as_bytes()).await;
    assert_eq!(answer.status, 200, "{:?}", answer.body.as_ref().map(|b| String::from_utf8_lossy(b).into_owned()));
}

#[tokio::test]
async fn an_event_stream_ends_once_its_key_is_disabled_issue_18() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    let server = Server::start(Transport::Http).await;
    let dir = tempfile::tempdir().expect("temp folder");
    expect(&server, &["user", "create", "watcher"], 0);
    let watcher = created(&server, &["--json", "key", "create", "watcher"]);
    let feed = policy_file(
        &dir,
        "feed.json",
        r#"{"Statement":{"Effect":"Allow","Action":"artifact-store:ReadEvents","Resource":"*"}}"#,
    );
    expect(&server, &["user", "policy", "put", "watcher", "--file", &feed], 0);
    let request =
        server.request("GET", "/_registry/events/stream").sign(watcher.key(), SystemTime::now(), Payload::Signed);
    let mut tcp = tokio::net::TcpStream::connect(server.addr()).await.expect("connect");
    tcp.write_all(&request.to_bytes()).await.expect("send");
    let mut seen = Vec::new();
    let mut chunk = [0; 4096];
    while !String::from_utf8_lossy(&seen).contains("event: v1.") {
        let read = tcp.read(&mut chunk).await.expect("read");
        assert!(read > 0, "the stream ended before its first event");
        seen.extend_from_slice(&chunk[..read]);
    }
    assert!(String::from_utf8_lossy(&seen).starts_with("HTTP/1.1 200"));

    // Disabled, the key's open stream is closed by the server (within its recheck period).
    expect(&server, &["key", "disable", &watcher.access_key], 0);
    let ended = tokio::time::timeout(std::time::Duration::from_secs(120), async {
        loop {
            match tcp.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(read) if String::from_utf8_lossy(&chunk[..read]).contains("\r\n0\r\n\r\n") => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the stream of a disabled key went on for two minutes");
}

#[tokio::test]
async fn tag_condition_keys_decide_reads_writes_and_retagging_issue_18() {
    let server = Server::start(Transport::Http).await;
    let dir = tempfile::tempdir().expect("temp folder");
    let s3 = server.s3();
    create_bucket(&s3, "tagged").await;
    let tagged_put = |key: &'static str, tagging: &'static str| {
        s3.put_object().bucket("tagged").key(key).tagging(tagging).body(ByteStream::from_static(b"bytes")).send()
    };
    tagged_put("public.txt", "classification=public").await.expect("root put");
    tagged_put("internal.txt", "classification=internal").await.expect("root put");
    expect(&server, &["user", "create", "tagger"], 0);
    let tagger = created(&server, &["--json", "key", "create", "tagger"]);
    let policy = r#"{"Statement": [
        {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::tagged/*",
         "Condition": {"StringEquals": {"s3:ExistingObjectTag/classification": "public"}}},
        {"Effect": "Allow", "Action": ["s3:PutObject", "s3:PutObjectTagging"], "Resource": "arn:aws:s3:::tagged/*",
         "Condition": {"StringEquals": {"s3:RequestObjectTag/team": "web"},
                       "ForAllValues:StringEquals": {"s3:RequestObjectTagKeys": ["team", "env"]}}}
    ]}"#;
    expect(&server, &["user", "policy", "put", "tagger", "--file", &policy_file(&dir, "tags.json", policy)], 0);
    let as_tagger = server.s3_as(tagger.key());

    // Reads by the object's own tags.
    assert_eq!(get(&as_tagger, "tagged", "public.txt").await, b"bytes");
    let (status, code) = failure(as_tagger.get_object().bucket("tagged").key("internal.txt").send().await);
    assert_eq!((status, code.as_str()), (403, "AccessDenied"));
    let missing = as_tagger.get_object().bucket("tagged").key("absent.txt").send().await;
    assert_eq!(failure(missing).0, 403, "no object, no tag: the condition fails");

    // Writes by the tags they set.
    let put = |key: &'static str, tagging: Option<&'static str>| {
        as_tagger
            .put_object()
            .bucket("tagged")
            .key(key)
            .set_tagging(tagging.map(str::to_owned))
            .body(ByteStream::from_static(b"mine"))
            .send()
    };
    put("web.txt", Some("team=web&env=prod")).await.expect("allowed by its tags");
    for (key, tagging) in [("ops.txt", Some("team=ops")), ("bare.txt", None), ("extra.txt", Some("team=web&owner=me"))]
    {
        let (status, code) = failure(put(key, tagging).await);
        assert_eq!((status, code.as_str()), (403, "AccessDenied"), "{key} tagged {tagging:?}");
    }

    // Retagging is decided on the tags in the body.
    let tagging = |value: &str| {
        aws_sdk_s3::types::Tagging::builder()
            .tag_set(aws_sdk_s3::types::Tag::builder().key("team").value(value).build().expect("tag"))
            .build()
            .expect("tagging")
    };
    let retag =
        |value: &str| as_tagger.put_object_tagging().bucket("tagged").key("web.txt").tagging(tagging(value)).send();
    let (status, code) = failure(retag("ops").await);
    assert_eq!((status, code.as_str()), (403, "AccessDenied"));
    retag("web").await.expect("retag allowed by its tags");

    // Once the root marks the internal object public, it is readable.
    s3.put_object_tagging()
        .bucket("tagged")
        .key("internal.txt")
        .tagging(
            aws_sdk_s3::types::Tagging::builder()
                .tag_set(aws_sdk_s3::types::Tag::builder().key("classification").value("public").build().expect("tag"))
                .build()
                .expect("tagging"),
        )
        .send()
        .await
        .expect("root retags");
    assert_eq!(get(&as_tagger, "tagged", "internal.txt").await, b"bytes");
}

#[tokio::test]
async fn a_batch_delete_deletes_what_is_allowed_and_answers_access_denied_for_the_rest_issue_18() {
    let server = Server::start(Transport::Http).await;
    let dir = tempfile::tempdir().expect("temp folder");
    let s3 = server.s3();
    create_bucket(&s3, "batch").await;
    put(&s3, "batch", "scratch/a.tmp", b"a").await;
    put(&s3, "batch", "keep/b.txt", b"b").await;
    expect(&server, &["user", "create", "cleaner"], 0);
    let cleaner = created(&server, &["--json", "key", "create", "cleaner"]);
    let policy = r#"{"Statement": {"Effect": "Allow", "Action": "s3:DeleteObject", "Resource": "arn:aws:s3:::batch/scratch/*"}}"#;
    expect(&server, &["user", "policy", "put", "cleaner", "--file", &policy_file(&dir, "scratch.json", policy)], 0);

    let batch = aws_sdk_s3::types::Delete::builder()
        .objects(aws_sdk_s3::types::ObjectIdentifier::builder().key("keep/b.txt").build().expect("identifier"))
        .objects(aws_sdk_s3::types::ObjectIdentifier::builder().key("scratch/a.tmp").build().expect("identifier"))
        .build()
        .expect("delete");
    let answer =
        server.s3_as(cleaner.key()).delete_objects().bucket("batch").delete(batch).send().await.expect("batch");
    let deleted: Vec<_> = answer.deleted().iter().filter_map(|d| d.key()).collect();
    assert_eq!(deleted, ["scratch/a.tmp"]);
    let errors: Vec<_> =
        answer.errors().iter().map(|e| (e.key().unwrap_or_default(), e.code().unwrap_or_default())).collect();
    assert_eq!(errors, [("keep/b.txt", "AccessDenied")]);
    assert_eq!(get(&s3, "batch", "keep/b.txt").await, b"b");
    assert!(s3.head_object().bucket("batch").key("scratch/a.tmp").send().await.is_err(), "deleted");
    let events = server.bucket_events("batch");
    let deletes: Vec<_> = events
        .iter()
        .filter(|e| e.event_type == "v1.object.delete_marker.created" || e.event_type == "v1.object.deleted")
        .map(|e| e.subject_id.as_str())
        .collect();
    assert_eq!(deletes, ["batch/scratch/a.tmp"]);
}

#[tokio::test]
async fn setting_an_acl_or_tags_on_a_write_needs_its_own_permission_and_batches_see_existing_tags_issue_18() {
    use aws_sdk_s3::types::{ObjectCannedAcl, ObjectOwnership};

    let server = Server::start(Transport::Http).await;
    let dir = tempfile::tempdir().expect("temp folder");
    let s3 = server.s3();
    s3.create_bucket().bucket("guarded").object_ownership(ObjectOwnership::ObjectWriter).send().await.expect("bucket");
    s3.put_object()
        .bucket("guarded")
        .key("keep.txt")
        .tagging("protected=true")
        .body(ByteStream::from_static(b"k"))
        .send()
        .await
        .expect("put");
    put(&s3, "guarded", "scratch.txt", b"s").await;
    expect(&server, &["user", "create", "writer"], 0);
    let writer = created(&server, &["--json", "key", "create", "writer"]);
    let policy = r#"{"Statement": [
        {"Effect": "Allow", "Action": ["s3:PutObject", "s3:DeleteObject"], "Resource": "arn:aws:s3:::guarded/*"},
        {"Effect": "Deny", "Action": "s3:DeleteObject", "Resource": "arn:aws:s3:::guarded/*",
         "Condition": {"StringEquals": {"s3:ExistingObjectTag/protected": "true"}}}
    ]}"#;
    expect(&server, &["user", "policy", "put", "writer", "--file", &policy_file(&dir, "writer.json", policy)], 0);
    let as_writer = server.s3_as(writer.key());

    // Writing is allowed; publishing or tagging what it writes is not, without its permission.
    let before = server.events().len();
    let public = as_writer
        .put_object()
        .bucket("guarded")
        .key("p.txt")
        .acl(ObjectCannedAcl::PublicRead)
        .body(ByteStream::from_static(b"p"));
    assert_eq!(failure(public.send().await), (403, "AccessDenied".to_owned()));
    let tagged = as_writer
        .put_object()
        .bucket("guarded")
        .key("t.txt")
        .tagging("protected=false")
        .body(ByteStream::from_static(b"t"));
    assert_eq!(failure(tagged.send().await), (403, "AccessDenied".to_owned()));
    server.assert_no_new_events(before, "writes that set an ACL or tags without the permission");
    as_writer
        .put_object()
        .bucket("guarded")
        .key("plain.txt")
        .acl(ObjectCannedAcl::BucketOwnerFullControl)
        .body(ByteStream::from_static(b"plain"))
        .send()
        .await
        .expect("an owner-only ACL asks for nothing more");

    // A batch delete sees each object's tags, as a single delete does.
    let (status, code) = failure(as_writer.delete_object().bucket("guarded").key("keep.txt").send().await);
    assert_eq!((status, code.as_str()), (403, "AccessDenied"));
    let batch = aws_sdk_s3::types::Delete::builder()
        .objects(aws_sdk_s3::types::ObjectIdentifier::builder().key("keep.txt").build().expect("identifier"))
        .objects(aws_sdk_s3::types::ObjectIdentifier::builder().key("scratch.txt").build().expect("identifier"))
        .build()
        .expect("delete");
    let answer = as_writer.delete_objects().bucket("guarded").delete(batch).send().await.expect("batch");
    let errors: Vec<_> =
        answer.errors().iter().map(|e| (e.key().unwrap_or_default(), e.code().unwrap_or_default())).collect();
    assert_eq!(errors, [("keep.txt", "AccessDenied")]);
    assert_eq!(get(&s3, "guarded", "keep.txt").await, b"k");
}

#[tokio::test]
async fn a_copy_is_decided_on_its_source_objects_own_tags_issue_18() {
    // The source of a copy is read under its own tags: a policy that keeps objects tagged
    // secret from a user must keep them from being copied out, to a key that has no tags.
    let server = Server::start(Transport::Http).await;
    let dir = tempfile::tempdir().expect("temp folder");
    let s3 = server.s3();
    create_bucket(&s3, "vault").await;
    let tagged_put = |key: &'static str, tagging: &'static str| {
        s3.put_object().bucket("vault").key(key).tagging(tagging).body(ByteStream::from_static(b"bytes")).send()
    };
    tagged_put("secret.txt", "class=secret").await.expect("root put");
    tagged_put("plain.txt", "class=plain").await.expect("root put");
    expect(&server, &["user", "create", "copier"], 0);
    let copier = created(&server, &["--json", "key", "create", "copier"]);
    let policy = r#"{"Statement": [
        {"Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject"], "Resource": "arn:aws:s3:::vault/*"},
        {"Effect": "Deny", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::vault/*",
         "Condition": {"StringEquals": {"s3:ExistingObjectTag/class": "secret"}}}
    ]}"#;
    expect(&server, &["user", "policy", "put", "copier", "--file", &policy_file(&dir, "copy.json", policy)], 0);
    let as_copier = server.s3_as(copier.key());
    let (status, code) = failure(as_copier.get_object().bucket("vault").key("secret.txt").send().await);
    assert_eq!((status, code.as_str()), (403, "AccessDenied"), "a direct read of the secret");

    let before = server.events().len();
    let copy = |source: &str, key: &str| {
        as_copier.copy_object().bucket("vault").key(key).copy_source(format!("vault/{source}")).send()
    };
    let (status, code) = failure(copy("secret.txt", "leak.txt").await);
    assert_eq!((status, code.as_str()), (403, "AccessDenied"), "a copy of the secret to an untagged key");
    server.assert_no_new_events(before, "a refused copy");
    // Onto a plain object's key, whose own tags allow, the source still decides.
    let (status, code) = failure(copy("secret.txt", "plain.txt").await);
    assert_eq!((status, code.as_str()), (403, "AccessDenied"), "a copy of the secret over a plain object");
    copy("plain.txt", "copy.txt").await.expect("a plain object copies");
    assert_eq!(get(&as_copier, "vault", "copy.txt").await, b"bytes");
}

/// The `<UserId>` of an IAM `GetUser` answer.
fn user_id(answer: &(u16, String)) -> String {
    assert_eq!(answer.0, 200, "{}", answer.1);
    let id = answer.1.split("<UserId>").nth(1).and_then(|rest| rest.split("</UserId>").next());
    id.unwrap_or_else(|| panic!("no UserId in {}", answer.1)).to_owned()
}

/// Found by an attacker's pass: `aws:userid` was the bare user name, so a home folder keyed on
/// it let another account's user of the same name read this account's user's files. It is the
/// `UserId` IAM reports (and a root user's account id), as on AWS.
#[tokio::test]
async fn aws_userid_is_the_user_id_iam_reports_so_same_named_users_of_two_accounts_differ() {
    let server = Server::start(Transport::Http).await;
    let dir = tempfile::tempdir().expect("temp folder");
    let s3 = server.s3();
    create_bucket(&s3, "rbkt").await;
    let partner = created(&server, &["--json", "account", "create", "partner"]);
    let partner_id = partner.json["id"].as_str().expect("account id").to_owned();
    let homes = r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::rbkt/home/${aws:userid}/*"}}"#;
    let homes = policy_file(&dir, "homes.json", homes);
    expect(&server, &["user", "create", "alice"], 0);
    expect(&server, &["user", "policy", "put", "alice", "--file", &homes], 0);
    let ours = created(&server, &["--json", "key", "create", "alice"]);
    expect(&server, &["user", "create", "alice", "--account", "partner"], 0);
    expect(&server, &["user", "policy", "put", "alice", "--account", "partner", "--file", &homes], 0);
    let theirs = created(&server, &["--json", "key", "create", "alice", "--account", "partner"]);
    let grant = format!(
        r#"{{"Version":"2012-10-17","Statement":{{"Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::{partner_id}:root"}},
            "Action":"s3:GetObject","Resource":"arn:aws:s3:::rbkt/home/${{aws:userid}}/*"}}}}"#
    );
    s3.put_bucket_policy().bucket("rbkt").policy(&grant).send().await.expect("the partner's users get their homes");

    let get_user = [("Action", "GetUser"), ("UserName", "alice")];
    let our_id = user_id(&iam(&server, artifact_store_conformance::raw::ROOT, &get_user).await);
    let their_id = user_id(&iam(&server, partner.key(), &get_user).await);
    assert_ne!(our_id, their_id);
    put(&s3, "rbkt", "home/alice/notes.txt", b"by name").await;
    put(&s3, "rbkt", &format!("home/{our_id}/notes.txt"), b"ours").await;
    put(&s3, "rbkt", &format!("home/{their_id}/notes.txt"), b"theirs").await;
    let (as_ours, as_theirs) = (server.s3_as(ours.key()), server.s3_as(theirs.key()));

    let denied = (403, "AccessDenied".to_owned());
    for (client, key) in [
        (&as_theirs, "home/alice/notes.txt".to_owned()),
        (&as_theirs, format!("home/{our_id}/notes.txt")),
        (&as_ours, "home/alice/notes.txt".to_owned()),
        (&as_ours, format!("home/{their_id}/notes.txt")),
    ] {
        assert_eq!(failure(client.get_object().bucket("rbkt").key(&key).send().await), denied, "{key}");
    }
    assert_eq!(get(&as_ours, "rbkt", &format!("home/{our_id}/notes.txt")).await, b"ours");
    assert_eq!(get(&as_theirs, "rbkt", &format!("home/{their_id}/notes.txt")).await, b"theirs");
    // The root user's id is its account's, in IAM and in policies alike.
    assert_eq!(user_id(&iam(&server, partner.key(), &[("Action", "GetUser")]).await), partner_id);
}

/// Found by an attacker's pass: a `Deny` whose `NotPrincipal` names an account exempted every
/// user of that account. As on AWS, the account's ARN exempts its root user alone; a user is
/// exempt when the list names both it and its account.
#[tokio::test]
async fn a_not_principal_naming_the_account_exempts_only_its_root_user() {
    let server = Server::start(Transport::Http).await;
    let dir = tempfile::tempdir().expect("temp folder");
    let s3 = server.s3();
    create_bucket(&s3, "vault").await;
    put(&s3, "vault", "k", b"secret").await;
    let accounts = expect(&server, &["--json", "account", "list"], 0).stdout;
    let root_id = accounts
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .find(|account| account["account"] == "root")
        .and_then(|account| account["id"].as_str().map(str::to_owned))
        .unwrap_or_else(|| panic!("the root account in {accounts}"));
    expect(&server, &["user", "create", "alice"], 0);
    let everything = r#"{"Statement":{"Effect":"Allow","Action":"s3:*","Resource":"*"}}"#;
    expect(&server, &["user", "policy", "put", "alice", "--file", &policy_file(&dir, "all.json", everything)], 0);
    let alice = server.s3_as(created(&server, &["--json", "key", "create", "alice"]).key());
    let deny_all_but = |listed: &[&str]| {
        let listed = serde_json::to_string(listed).expect("JSON");
        format!(
            r#"{{"Statement":{{"Effect":"Deny","NotPrincipal":{{"AWS":{listed}}},"Action":"s3:*",
                "Resource":["arn:aws:s3:::vault","arn:aws:s3:::vault/*"]}}}}"#
        )
    };
    let account_arn = format!("arn:aws:iam::{root_id}:root");
    let alice_arn = format!("arn:aws:iam::{root_id}:user/alice");
    let read = |client: &aws_sdk_s3::Client| client.get_object().bucket("vault").key("k").send();
    let denied = (403, "AccessDenied".to_owned());

    s3.put_bucket_policy().bucket("vault").policy(deny_all_but(&[&account_arn])).send().await.expect("policy");
    assert_eq!(failure(read(&alice).await), denied, "the account's ARN does not exempt its users");
    assert_eq!(get(&s3, "vault", "k").await, b"secret");

    let both = deny_all_but(&[&alice_arn, &account_arn]);
    s3.put_bucket_policy().bucket("vault").policy(both).send().await.expect("policy");
    assert_eq!(get(&alice, "vault", "k").await, b"secret");

    // Alice's ARN alone leaves her account, and so her, denied.
    s3.put_bucket_policy().bucket("vault").policy(deny_all_but(&[&alice_arn])).send().await.expect("policy");
    assert_eq!(failure(read(&alice).await), denied);
    assert_eq!(failure(read(&s3).await), denied);
    s3.delete_bucket_policy().bucket("vault").send().await.expect("the owner may always remove its policy");
}
