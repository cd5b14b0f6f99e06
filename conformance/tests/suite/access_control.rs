//! Access control as S3 users know it (issue 18): bucket policies set, read and removed over
//! the wire, recorded as events, and enforced on every request, signed or anonymous.

use std::time::SystemTime;

use artifact_store_conformance::events::of_type;
use artifact_store_conformance::raw::{Key, Payload, ROOT, assert_refused};
use artifact_store_conformance::sdk::{create_bucket, failure, get, put};
use artifact_store_conformance::server::upstream_env;
use artifact_store_conformance::{ACCESS_KEY, Server, Transport};
use aws_sdk_s3::types::{Delete, ObjectIdentifier};

const BUCKET: &str = "policies";
/// A second configured user: it may do everything unless a bucket policy denies it.
const USER: Key<'static> =
    Key { access_key: "CONFORMANCESECONDKEY", secret_key: "second0secret0key0for0conformance000000" };

/// A gateway with the second user configured.
async fn server_with_a_second_user() -> (tempfile::TempDir, Server) {
    let dir = tempfile::tempdir().expect("temp folder");
    let config = dir.path().join("users.toml");
    std::fs::write(
        &config,
        format!("[[auth.users]]\naccess_key = \"{}\"\nsecret_key = \"{}\"\n", USER.access_key, USER.secret_key),
    )
    .expect("config file");
    let mut env = upstream_env();
    env.push(("ARTIFACT_STORE_CONFIG".into(), config.display().to_string()));
    (dir, Server::start_with(Transport::Http, &[], env).await)
}

fn public_reads_and_no_deletes_by_the_second_user() -> String {
    format!(
        r#"{{
  "Version": "2012-10-17",
  "Statement": [
    {{"Sid": "PublicRead", "Effect": "Allow", "Principal": "*",
      "Action": "s3:GetObject", "Resource": "arn:aws:s3:::{BUCKET}/public/*"}},
    {{"Sid": "NoDeletes", "Effect": "Deny", "Principal": {{"AWS": "*"}},
      "Action": ["s3:DeleteObject", "s3:DeleteObjectVersion"], "Resource": "arn:aws:s3:::{BUCKET}/*",
      "Condition": {{"StringEquals": {{"aws:username": "{}"}}}}}}
  ]
}}"#,
        USER.access_key
    )
}

#[tokio::test]
async fn a_bucket_policy_grants_anonymous_reads_denies_a_user_and_is_recorded_issue_18() {
    let (_dir, server) = server_with_a_second_user().await;
    let s3 = server.s3();
    let user = server.s3_as(USER);
    create_bucket(&s3, BUCKET).await;
    put(&s3, BUCKET, "public/a.txt", b"for everyone").await;
    put(&s3, BUCKET, "private/b.txt", b"for us").await;

    // No policy yet.
    let (status, code) = failure(s3.get_bucket_policy().bucket(BUCKET).send().await);
    assert_eq!((status, code.as_str()), (404, "NoSuchBucketPolicy"));
    let anonymous_get = |key: &str| server.request("GET", &format!("/{BUCKET}/{key}"));
    assert_refused(&server.send(&anonymous_get("public/a.txt")).await, 403, "AccessDenied", "anonymous, no policy");

    // A malformed policy is refused with S3's reason, and nothing is recorded.
    let before = server.events().len();
    let malformed = format!(
        r#"{{"Statement":{{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::{BUCKET}"}}}}"#
    );
    let refused = s3.put_bucket_policy().bucket(BUCKET).policy(&malformed).send().await;
    let err = refused.as_ref().expect_err("a policy whose action fits no resource");
    assert_eq!(
        err.as_service_error().and_then(|e| e.meta().message()),
        Some("Action does not apply to any resource(s) in statement")
    );
    assert_eq!(failure(refused), (400, "MalformedPolicy".to_owned()));
    server.assert_no_new_events(before, "a malformed policy");

    // The policy as written is recorded, returned as written, and judged public.
    let policy = public_reads_and_no_deletes_by_the_second_user();
    s3.put_bucket_policy().bucket(BUCKET).policy(&policy).send().await.expect("put bucket policy");
    let stored = s3.get_bucket_policy().bucket(BUCKET).send().await.expect("get bucket policy");
    assert_eq!(stored.policy(), Some(policy.as_str()));
    let status = s3.get_bucket_policy_status().bucket(BUCKET).send().await.expect("policy status");
    assert_eq!(status.policy_status().and_then(|s| s.is_public()), Some(true));
    let events = server.bucket_events(BUCKET);
    let set = of_type(&events, "v1.bucket.policy.set");
    assert_eq!(set.len(), 1);
    assert_eq!(set[0].actor, ACCESS_KEY);
    assert_eq!(set[0].payload["policy"], policy.as_str());

    // Anonymous: public/ is readable, nothing else is.
    let read = server.send(&anonymous_get("public/a.txt")).await;
    assert_eq!(read.status, 200, "{}", read.text());
    assert_eq!(read.body, b"for everyone");
    assert_refused(&server.send(&anonymous_get("private/b.txt")).await, 403, "AccessDenied", "anonymous private read");
    let anonymous_put = server.request("PUT", &format!("/{BUCKET}/public/new.txt")).body(b"x".to_vec());
    assert_refused(&server.send(&anonymous_put).await, 403, "AccessDenied", "anonymous PUT");
    let anonymous_list = server.request("GET", &format!("/{BUCKET}?list-type=2"));
    assert_refused(&server.send(&anonymous_list).await, 403, "AccessDenied", "anonymous list");
    // A signed request with the same target is the signer's, not the anonymous grant's.
    let signed = anonymous_get("private/b.txt").sign(ROOT, SystemTime::now(), Payload::Signed);
    assert_eq!(server.send(&signed).await.status, 200);
    // A key that does not exist: whoever may not list the bucket cannot tell it from one they
    // may not read (403, as on AWS); the owner, who may list, hears 404.
    assert_refused(&server.send(&anonymous_get("public/missing")).await, 403, "AccessDenied", "anonymous, missing key");
    let head = server.request("HEAD", &format!("/{BUCKET}/public/missing"));
    assert_eq!(server.send(&head).await.status, 403, "anonymous HEAD of a missing key");
    assert_eq!(failure(s3.get_object().bucket(BUCKET).key("public/missing").send().await), (404, "NoSuchKey".into()));

    // The second user reads, writes, and cannot delete: neither one key nor in a batch.
    assert_eq!(get(&user, BUCKET, "private/b.txt").await, b"for us");
    put(&user, BUCKET, "private/c.txt", b"by the user").await;
    let before = server.events().len();
    let (status, code) = failure(user.delete_object().bucket(BUCKET).key("private/b.txt").send().await);
    assert_eq!((status, code.as_str()), (403, "AccessDenied"));
    let batch = Delete::builder()
        .objects(ObjectIdentifier::builder().key("private/c.txt").build().expect("identifier"))
        .objects(ObjectIdentifier::builder().key("private/b.txt").build().expect("identifier"))
        .build()
        .expect("delete");
    // A batch answers each denied key with AccessDenied, as AWS does.
    let answer = user.delete_objects().bucket(BUCKET).delete(batch).send().await.expect("a batch answers per key");
    assert!(answer.deleted().is_empty(), "{:?}", answer.deleted());
    let mut denied: Vec<_> =
        answer.errors().iter().map(|e| (e.key().unwrap_or_default(), e.code().unwrap_or_default())).collect();
    denied.sort_unstable();
    assert_eq!(denied, [("private/b.txt", "AccessDenied"), ("private/c.txt", "AccessDenied")]);
    server.assert_no_new_events(before, "deletes the policy denies");
    assert_eq!(get(&s3, BUCKET, "private/b.txt").await, b"for us");
    assert_eq!(get(&s3, BUCKET, "private/c.txt").await, b"by the user");
    // The root user is not named by the deny.
    s3.delete_object().bucket(BUCKET).key("private/c.txt").send().await.expect("root deletes");
}

/// Whether a key exists is told (404) to whoever may list the bucket; to anyone else who may
/// read it a missing key is 403, as on AWS.
#[tokio::test]
async fn a_missing_key_is_404_only_to_whoever_may_list_the_bucket() {
    let server = Server::start_with(Transport::Http, &[], upstream_env()).await;
    let s3 = server.s3();
    create_bucket(&s3, BUCKET).await;
    put(&s3, BUCKET, "there", b"here").await;
    let statement = |action: &str, resource: &str| {
        format!(r#"{{"Effect": "Allow", "Principal": "*", "Action": "{action}", "Resource": "{resource}"}}"#)
    };
    let reads = statement("s3:GetObject*", &format!("arn:aws:s3:::{BUCKET}/*"));
    let lists = statement("s3:ListBucket", &format!("arn:aws:s3:::{BUCKET}"));
    // Listing allowed from the loopback only: decided on the request's address here too.
    let lists_from_here =
        lists.replace(r#""Resource""#, r#""Condition": {"IpAddress": {"aws:SourceIp": "127.0.0.0/8"}}, "Resource""#);
    let lists_from_elsewhere = lists_from_here.replace("127.0.0.0/8", "192.0.2.0/24");
    let anonymous = |method: &str, key: &str| server.request(method, &format!("/{BUCKET}/{key}"));
    for (statements, missing) in [
        (vec![&reads], (403, "AccessDenied")),
        (vec![&reads, &lists], (404, "NoSuchKey")),
        (vec![&reads, &lists_from_here], (404, "NoSuchKey")),
        (vec![&reads, &lists_from_elsewhere], (403, "AccessDenied")),
    ] {
        let policy = format!(
            r#"{{"Version": "2012-10-17", "Statement": [{}]}}"#,
            statements.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
        );
        s3.put_bucket_policy().bucket(BUCKET).policy(&policy).send().await.expect("put bucket policy");
        let what = format!("a missing key, {} statement(s)", statements.len());
        assert_refused(&server.send(&anonymous("GET", "missing")).await, missing.0, missing.1, &what);
        assert_eq!(server.send(&anonymous("HEAD", "missing")).await.status, missing.0, "{what}: HEAD");
        assert_eq!(server.send(&anonymous("GET", "there")).await.body, b"here", "{what}: a key that is there");
        let version = server.send(&anonymous("GET", "missing?versionId=null")).await;
        assert_eq!(version.status, missing.0, "{what}: a version of a missing key: {}", version.text());
        for setting in ["tagging", "acl"] {
            let read = server.send(&anonymous("GET", &format!("missing?{setting}"))).await;
            assert_eq!(read.status, missing.0, "{what}: the {setting} of a missing key: {}", read.text());
        }
    }
}

#[tokio::test]
async fn a_policy_that_denies_everything_leaves_the_root_user_its_policy_issue_18() {
    let (_dir, server) = server_with_a_second_user().await;
    let s3 = server.s3();
    let user = server.s3_as(USER);
    create_bucket(&s3, BUCKET).await;
    put(&s3, BUCKET, "k", b"data").await;
    let lockout = format!(
        r#"{{"Statement":{{"Effect":"Deny","Principal":"*","Action":"s3:*",
            "Resource":["arn:aws:s3:::{BUCKET}","arn:aws:s3:::{BUCKET}/*"]}}}}"#
    );
    s3.put_bucket_policy().bucket(BUCKET).policy(&lockout).send().await.expect("put the lockout");

    assert_eq!(failure(s3.get_object().bucket(BUCKET).key("k").send().await), (403, "AccessDenied".to_owned()));
    assert_eq!(failure(user.get_object().bucket(BUCKET).key("k").send().await), (403, "AccessDenied".to_owned()));
    assert_eq!(failure(user.get_bucket_policy().bucket(BUCKET).send().await), (403, "AccessDenied".to_owned()));
    assert_eq!(failure(user.delete_bucket_policy().bucket(BUCKET).send().await), (403, "AccessDenied".to_owned()));
    // The owner's root may always read and remove the policy.
    let stored = s3.get_bucket_policy().bucket(BUCKET).send().await.expect("root reads the policy");
    assert_eq!(stored.policy(), Some(lockout.as_str()));
    s3.delete_bucket_policy().bucket(BUCKET).send().await.expect("root removes the policy");
    assert_eq!(get(&user, BUCKET, "k").await, b"data");
    // That read's record commits after its response: wait for it, so that it is not taken
    // below for a record of the second deletion.
    server.wait_for_events(BUCKET, "k", |events| !of_type(events, "v1.object.retrieved").is_empty()).await;
    let events = server.bucket_events(BUCKET);
    assert_eq!(of_type(&events, "v1.bucket.policy.deleted").len(), 1);
    // Removing an absent policy answers the same and records nothing.
    let before = server.events().len();
    s3.delete_bucket_policy().bucket(BUCKET).send().await.expect("delete again");
    server.assert_no_new_events(before, "deleting an absent policy");
}

#[tokio::test]
async fn a_bucket_policy_can_deny_bypassing_governance_retention_issue_18() {
    use aws_sdk_s3::primitives::DateTime;
    use aws_sdk_s3::types::ObjectLockMode;

    let (_dir, server) = server_with_a_second_user().await;
    let s3 = server.s3();
    s3.create_bucket().bucket(BUCKET).object_lock_enabled_for_bucket(true).send().await.expect("locked bucket");
    let in_a_day = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).expect("after 1970").as_secs() + 86_400;
    let put = s3
        .put_object()
        .bucket(BUCKET)
        .key("report.pdf")
        .object_lock_mode(ObjectLockMode::Governance)
        .object_lock_retain_until_date(DateTime::from_secs(i64::try_from(in_a_day).expect("a time")))
        .body(aws_sdk_s3::primitives::ByteStream::from_static(b"report"))
        .send()
        .await
        .expect("locked put");
    let version = put.version_id().expect("a version id").to_owned();
    let no_bypass = format!(
        r#"{{"Statement":{{"Effect":"Deny","Principal":"*","Action":"s3:BypassGovernanceRetention",
            "Resource":"arn:aws:s3:::{BUCKET}/*"}}}}"#
    );
    s3.put_bucket_policy().bucket(BUCKET).policy(&no_bypass).send().await.expect("put policy");

    // The root user may bypass by configuration; the policy takes that away.
    let before = server.events().len();
    let delete = || {
        s3.delete_object()
            .bucket(BUCKET)
            .key("report.pdf")
            .version_id(&version)
            .bypass_governance_retention(true)
            .send()
    };
    assert_eq!(failure(delete().await), (403, "AccessDenied".to_owned()));
    let batch = Delete::builder()
        .objects(ObjectIdentifier::builder().key("report.pdf").version_id(&version).build().expect("identifier"))
        .build()
        .expect("delete");
    let batch_delete = s3.delete_objects().bucket(BUCKET).delete(batch).bypass_governance_retention(true).send();
    let answer = batch_delete.await.expect("a batch answers per key");
    let denied: Vec<_> =
        answer.errors().iter().map(|e| (e.key().unwrap_or_default(), e.code().unwrap_or_default())).collect();
    assert_eq!(denied, [("report.pdf", "AccessDenied")]);
    assert!(answer.deleted().is_empty());
    server.assert_no_new_events(before, "bypasses the policy denies");
    assert_eq!(get(&s3, BUCKET, "report.pdf").await, b"report");

    s3.delete_bucket_policy().bucket(BUCKET).send().await.expect("remove the policy");
    delete().await.expect("the bypass is the root user's again");
    let (status, _) = failure(s3.head_object().bucket(BUCKET).key("report.pdf").version_id(&version).send().await);
    assert_eq!(status, 404);
}

#[tokio::test]
async fn acls_are_disabled_as_on_new_aws_buckets_so_a_public_acl_is_refused_not_ignored_issue_18() {
    use aws_sdk_s3::types::{BucketCannedAcl, ObjectCannedAcl, ObjectOwnership};

    let server = Server::start(Transport::Http).await;
    let s3 = server.s3();
    let unsupported = (400, "AccessControlListNotSupported".to_owned());
    let refused = s3.create_bucket().bucket("acls").acl(BucketCannedAcl::PublicRead).send().await;
    assert_eq!(failure(refused), (400, "InvalidBucketAclWithObjectOwnership".to_owned()));
    s3.create_bucket().bucket("acls").acl(BucketCannedAcl::Private).send().await.expect("a private bucket");

    // A write that would make an object public is refused before anything is stored.
    let before = server.events().len();
    let body = || aws_sdk_s3::primitives::ByteStream::from_static(b"data");
    let public = s3.put_object().bucket("acls").key("k").acl(ObjectCannedAcl::PublicRead).body(body()).send().await;
    assert_eq!(failure(public), unsupported);
    let granted = s3
        .put_object()
        .bucket("acls")
        .key("k")
        .grant_read("uri=\"http://acs.amazonaws.com/groups/global/AllUsers\"")
        .body(body())
        .send()
        .await;
    assert_eq!(failure(granted), unsupported);
    let multipart = s3.create_multipart_upload().bucket("acls").key("k").acl(ObjectCannedAcl::PublicRead).send().await;
    assert_eq!(failure(multipart), unsupported);
    server.assert_no_new_events(before, "writes with public ACLs");
    assert_refused(&server.send(&server.request("GET", "/acls/k")).await, 403, "AccessDenied", "nothing became public");

    // Owner-only ACLs are what every object has: accepted.
    s3.put_object()
        .bucket("acls")
        .key("k")
        .acl(ObjectCannedAcl::BucketOwnerFullControl)
        .body(body())
        .send()
        .await
        .expect("owner-only ACL");
    s3.put_object_acl().bucket("acls").key("k").acl(ObjectCannedAcl::Private).send().await.expect("private object ACL");
    s3.put_bucket_acl().bucket("acls").acl(BucketCannedAcl::Private).send().await.expect("private bucket ACL");
    assert_eq!(failure(s3.put_bucket_acl().bucket("acls").acl(BucketCannedAcl::PublicRead).send().await), unsupported);
    assert_eq!(
        failure(s3.put_object_acl().bucket("acls").key("k").acl(ObjectCannedAcl::PublicRead).send().await),
        unsupported
    );

    // Reading an ACL answers the owner's full control.
    for acl in [
        s3.get_bucket_acl().bucket("acls").send().await.expect("bucket ACL").grants().to_vec(),
        s3.get_object_acl().bucket("acls").key("k").send().await.expect("object ACL").grants().to_vec(),
    ] {
        assert_eq!(acl.len(), 1, "{acl:?}");
        assert_eq!(acl[0].permission().map(|p| p.as_str()), Some("FULL_CONTROL"));
        let grantee = acl[0].grantee().expect("grantee");
        assert_eq!(grantee.id().map(str::len), Some(64), "a canonical user id");
        assert_eq!(grantee.display_name(), Some("root"));
    }
    assert_eq!(failure(s3.get_object_acl().bucket("acls").key("missing").send().await), (404, "NoSuchKey".to_owned()));

    // Ownership: BucketOwnerEnforced unless asked otherwise (see the test below).
    let controls = s3.get_bucket_ownership_controls().bucket("acls").send().await.expect("ownership controls");
    let rules = controls.ownership_controls().expect("controls").rules();
    assert_eq!(rules[0].object_ownership(), &ObjectOwnership::BucketOwnerEnforced);
}

fn ownership(setting: aws_sdk_s3::types::ObjectOwnership) -> aws_sdk_s3::types::OwnershipControls {
    use aws_sdk_s3::types::{OwnershipControls, OwnershipControlsRule};
    OwnershipControls::builder()
        .rules(OwnershipControlsRule::builder().object_ownership(setting).build().expect("rule"))
        .build()
        .expect("controls")
}

#[tokio::test]
async fn bucket_acls_grant_groups_and_accounts_once_ownership_enables_them_issue_18() {
    use aws_sdk_s3::types::{BucketCannedAcl, ObjectOwnership, PublicAccessBlockConfiguration};

    let server = Server::start(Transport::Http).await;
    let s3 = server.s3();
    let partner = new_account(&server, "partner", None).await.client;
    create_bucket(&partner, "partner-own").await;
    let partner_id = partner.get_bucket_acl().bucket("partner-own").send().await.expect("partner's ACL");
    let partner_id = partner_id.owner().and_then(|o| o.id()).expect("canonical id").to_owned();

    // ACLs are enabled at creation by the ownership asked for; without it an ACL is refused.
    let refused = s3.create_bucket().bucket("shared").acl(BucketCannedAcl::PublicRead).send().await;
    assert_eq!(failure(refused), (400, "InvalidBucketAclWithObjectOwnership".to_owned()));
    s3.create_bucket().bucket("shared").object_ownership(ObjectOwnership::ObjectWriter).send().await.expect("bucket");
    put(&s3, "shared", "a.txt", b"a").await;
    let controls = s3.get_bucket_ownership_controls().bucket("shared").send().await.expect("controls");
    assert_eq!(
        controls.ownership_controls().expect("controls").rules()[0].object_ownership(),
        &ObjectOwnership::ObjectWriter
    );
    let anonymous_list = || server.request("GET", "/shared?list-type=2");
    assert_refused(&server.send(&anonymous_list()).await, 403, "AccessDenied", "anonymous list, private ACL");

    // public-read: anyone lists, no one else writes; recorded and read back.
    s3.put_bucket_acl().bucket("shared").acl(BucketCannedAcl::PublicRead).send().await.expect("public-read");
    let listed = server.send(&anonymous_list()).await;
    assert_eq!(listed.status, 200, "{}", listed.text());
    assert!(listed.text().contains("<Key>a.txt</Key>"), "{}", listed.text());
    let anonymous_put = server.request("PUT", "/shared/b.txt").body(b"b".to_vec());
    assert_refused(&server.send(&anonymous_put).await, 403, "AccessDenied", "anonymous write under public-read");
    let acl = s3.get_bucket_acl().bucket("shared").send().await.expect("bucket ACL");
    let grants: Vec<_> = acl
        .grants()
        .iter()
        .map(|g| {
            let grantee = g.grantee().expect("grantee");
            (
                grantee.uri().or(grantee.id()).unwrap_or_default().to_owned(),
                g.permission().map(|p| p.as_str().to_owned()),
            )
        })
        .collect();
    assert_eq!(grants.len(), 2, "{grants:?}");
    assert_eq!(grants[1], ("http://acs.amazonaws.com/groups/global/AllUsers".to_owned(), Some("READ".to_owned())));
    let events = server.bucket_events("shared");
    assert_eq!(of_type(&events, "v1.bucket.ownership.set").len(), 1);
    let set = of_type(&events, "v1.bucket.acl.set");
    assert_eq!(set.len(), 1);
    assert_eq!(set[0].payload["grants"][0]["grantee"]["group"], "AllUsers");

    // A grant to another account by canonical id: its root writes; a grant to an email address
    // no account has is refused.
    assert_eq!(failure(put_result(&partner, "shared", "p.txt").await), (403, "AccessDenied".to_owned()));
    s3.put_bucket_acl()
        .bucket("shared")
        .grant_write(format!("id=\"{partner_id}\""))
        .grant_read(format!("id=\"{partner_id}\""))
        .send()
        .await
        .expect("grant to the partner");
    put_result(&partner, "shared", "p.txt").await.expect("the partner writes under its grant");
    assert_refused(&server.send(&anonymous_list()).await, 403, "AccessDenied", "public-read replaced");
    let email = s3.put_bucket_acl().bucket("shared").grant_read("emailAddress=\"someone@example.com\"").send().await;
    assert_eq!(failure(email), (400, "UnresolvableGrantByEmailAddress".to_owned()));

    // BucketOwnerEnforced while others are granted is refused; once they are not, accepted,
    // and ACLs are refused again.
    let enforce = s3
        .put_bucket_ownership_controls()
        .bucket("shared")
        .ownership_controls(ownership(ObjectOwnership::BucketOwnerEnforced));
    assert_eq!(failure(enforce.send().await), (400, "InvalidBucketAclWithObjectOwnership".to_owned()));
    s3.put_bucket_acl().bucket("shared").acl(BucketCannedAcl::Private).send().await.expect("private");
    assert_eq!(failure(put_result(&partner, "shared", "q.txt").await), (403, "AccessDenied".to_owned()));

    // The public access block: BlockPublicAcls refuses a public ACL, IgnorePublicAcls makes one
    // count for nothing.
    let block = |acls: bool, ignore: bool| {
        PublicAccessBlockConfiguration::builder().block_public_acls(acls).ignore_public_acls(ignore).build()
    };
    s3.put_public_access_block()
        .bucket("shared")
        .public_access_block_configuration(block(true, false))
        .send()
        .await
        .expect("block");
    let before = server.events().len();
    let blocked = s3.put_bucket_acl().bucket("shared").acl(BucketCannedAcl::PublicRead).send().await;
    assert_eq!(failure(blocked), (403, "AccessDenied".to_owned()));
    server.assert_no_new_events(before, "a public ACL under BlockPublicAcls");
    s3.put_public_access_block()
        .bucket("shared")
        .public_access_block_configuration(block(false, true))
        .send()
        .await
        .expect("ignore");
    s3.put_bucket_acl().bucket("shared").acl(BucketCannedAcl::PublicRead).send().await.expect("public-read, ignored");
    assert_refused(&server.send(&anonymous_list()).await, 403, "AccessDenied", "a public ACL ignored");
    s3.delete_public_access_block().bucket("shared").send().await.expect("no block");
    assert_eq!(server.send(&anonymous_list()).await.status, 200);

    // Deleting the controls leaves ACLs enabled and no controls to read.
    s3.delete_bucket_ownership_controls().bucket("shared").send().await.expect("delete controls");
    let (status, code) = failure(s3.get_bucket_ownership_controls().bucket("shared").send().await);
    assert_eq!((status, code.as_str()), (404, "OwnershipControlsNotFoundError"));
    assert_eq!(server.send(&anonymous_list()).await.status, 200);
}

/// An account `account create` made, as its root user sees it.
struct NewAccount {
    /// The root user's client.
    client: aws_sdk_s3::Client,
    /// The account's canonical id, as S3 answers it.
    canonical_id: String,
    /// The account's 12-digit id.
    id: String,
    access_key: String,
    secret_key: String,
}

impl NewAccount {
    fn key(&self) -> Key<'_> {
        Key { access_key: &self.access_key, secret_key: &self.secret_key }
    }
}

/// A new account from `account create` (with `--email` when given).
async fn new_account(server: &Server, name: &str, email: Option<&str>) -> NewAccount {
    let mut args = vec!["--json", "account", "create", name];
    args.extend(email.map(|email| ["--email", email]).into_iter().flatten());
    let created = artifact_store_conformance::cli::expect(server, &args, 0);
    let created: serde_json::Value = serde_json::from_str(created.stdout.trim()).expect("account JSON");
    let field = |name: &str| created[name].as_str().unwrap_or_else(|| panic!("{name} in {created}")).to_owned();
    let (access_key, secret_key) = (field("access_key"), field("secret_key"));
    let client = server.s3_as(Key { access_key: &access_key, secret_key: &secret_key });
    let listed = client.list_buckets().send().await.expect("the account lists its buckets");
    let canonical_id = listed.owner().and_then(|o| o.id()).expect("canonical id").to_owned();
    NewAccount { client, canonical_id, id: field("id"), access_key, secret_key }
}

#[tokio::test]
async fn acls_grant_to_an_account_by_its_email_address_issue_18() {
    use aws_sdk_s3::types::{AccessControlPolicy, Grant, Grantee, ObjectCannedAcl, ObjectOwnership, Permission, Type};

    let server = Server::start(Transport::Http).await;
    let s3 = server.s3();
    let NewAccount { client: partner, canonical_id: partner_id, .. } =
        new_account(&server, "partner", Some("Builds@Partner.example")).await;
    let listed = artifact_store_conformance::cli::expect(&server, &["--json", "account", "list"], 0).stdout;
    assert!(listed.contains(r#""email":"builds@partner.example""#), "{listed}");
    let events = server.events();
    let created = of_type(&events, "v1.account.created");
    assert_eq!(created.last().expect("the partner's account").payload["email"], "builds@partner.example");
    // An email address is one account's, and must look like one.
    let taken = ["account", "create", "copycat", "--email", "builds@partner.example"];
    let taken = artifact_store_conformance::cli::expect(&server, &taken, 2);
    assert!(taken.stderr.contains("already exists"), "{taken:?}");
    let invalid = ["account", "create", "nomail", "--email", "not an address"];
    let invalid = artifact_store_conformance::cli::expect(&server, &invalid, 2);
    assert!(invalid.stderr.contains("is not valid"), "{invalid:?}");

    s3.create_bucket().bucket("shared").object_ownership(ObjectOwnership::ObjectWriter).send().await.expect("bucket");
    let list = || partner.list_objects_v2().bucket("shared").send();
    assert_eq!(failure(list().await), (403, "AccessDenied".to_owned()));
    // By header, in any case: recorded and answered as the account's canonical id.
    s3.put_bucket_acl()
        .bucket("shared")
        .grant_read("emailAddress=\"BUILDS@partner.example\"")
        .send()
        .await
        .expect("grant by email");
    list().await.expect("the partner lists under its grant by email");
    let acl = s3.get_bucket_acl().bucket("shared").send().await.expect("bucket ACL");
    let granted: Vec<_> = acl.grants().iter().filter_map(|g| g.grantee().and_then(|g| g.id())).collect();
    assert!(granted.contains(&partner_id.as_str()), "{granted:?} lacks {partner_id}");

    // By document, on an object.
    put(&s3, "shared", "report.txt", b"numbers").await;
    assert_eq!(
        failure(partner.get_object().bucket("shared").key("report.txt").send().await),
        (403, "AccessDenied".to_owned())
    );
    let owner = s3.get_object_acl().bucket("shared").key("report.txt").send().await.expect("object ACL");
    let email_grant = Grant::builder()
        .grantee(
            Grantee::builder()
                .r#type(Type::AmazonCustomerByEmail)
                .email_address("builds@partner.example")
                .build()
                .expect("grantee"),
        )
        .permission(Permission::Read)
        .build();
    let document = AccessControlPolicy::builder().set_owner(owner.owner().cloned()).grants(email_grant.clone()).build();
    s3.put_object_acl()
        .bucket("shared")
        .key("report.txt")
        .access_control_policy(document)
        .send()
        .await
        .expect("object grant by email");
    let read = partner.get_object().bucket("shared").key("report.txt").send().await.expect("the partner reads");
    assert_eq!(read.body.collect().await.expect("body").into_bytes().as_ref(), b"numbers");
    // That read's record commits after its response: counted before, it is not taken for a
    // record of the refused grant below.
    server.wait_for_events("shared", "report.txt", |events| !of_type(events, "v1.object.retrieved").is_empty()).await;

    // An address no account has is refused, and nothing is recorded.
    let before = server.events().len();
    let unknown =
        s3.put_object_acl().bucket("shared").key("report.txt").grant_read("emailAddress=\"nobody@example.com\"");
    assert_eq!(failure(unknown.send().await), (400, "UnresolvableGrantByEmailAddress".to_owned()));
    let unknown = s3
        .put_object()
        .bucket("shared")
        .key("other.txt")
        .acl(ObjectCannedAcl::Private)
        .grant_read("emailAddress=\"nobody@example.com\"")
        .body(aws_sdk_s3::primitives::ByteStream::from_static(b"x"))
        .send()
        .await;
    assert_eq!(failure(unknown), (400, "UnresolvableGrantByEmailAddress".to_owned()));
    server.assert_no_new_events(before, "grants to an unknown email address");
}

#[tokio::test]
async fn object_ownership_gives_another_accounts_writes_to_the_writer_as_on_aws_issue_18() {
    use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, ObjectCannedAcl, ObjectOwnership};

    let server = Server::start(Transport::Http).await;
    let s3 = server.s3();
    let NewAccount { client: partner, canonical_id: partner_id, id: partner_account, .. } =
        new_account(&server, "partner", None).await;
    let root_id = s3.list_buckets().send().await.expect("list").owner().and_then(|o| o.id()).expect("id").to_owned();
    // Listings name each account by its canonical id, never by an access key.
    assert_ne!(root_id, ACCESS_KEY);
    assert_ne!(partner_id, root_id);
    s3.create_bucket().bucket("shared").object_ownership(ObjectOwnership::ObjectWriter).send().await.expect("bucket");
    let account = |id: &str| format!("arn:aws:iam::{id}:root");
    let grant = serde_json::json!({"Statement": {"Effect": "Allow", "Principal": {"AWS": account(&partner_account)},
        "Action": ["s3:PutObject", "s3:GetObject", "s3:PutObjectAcl", "s3:GetObjectAcl"],
        "Resource": "arn:aws:s3:::shared/*"}});
    s3.put_bucket_policy().bucket("shared").policy(grant.to_string()).send().await.expect("bucket policy");
    let owner_of = |client: &aws_sdk_s3::Client, key: &str| {
        let request = client.get_object_acl().bucket("shared").key(key).send();
        async move {
            let acl = request.await.expect("object ACL");
            let grants: Vec<(String, String)> = acl
                .grants()
                .iter()
                .map(|g| {
                    let id = g.grantee().and_then(|g| g.id()).unwrap_or_default().to_owned();
                    (id, g.permission().map(|p| p.as_str().to_owned()).unwrap_or_default())
                })
                .collect();
            (acl.owner().and_then(|o| o.id()).expect("owner").to_owned(), grants)
        }
    };
    let get_as = |client: &aws_sdk_s3::Client, key: &str| client.get_object().bucket("shared").key(key).send();

    // ObjectWriter: the partner's write is the partner's. The bucket's owner cannot read it,
    // its own policy's grant notwithstanding, but may delete it.
    put(&partner, "shared", "p.txt", b"partner's").await;
    let (owner, grants) = owner_of(&partner, "p.txt").await;
    assert_eq!(owner, partner_id);
    assert_eq!(grants, [(partner_id.clone(), "FULL_CONTROL".to_owned())]);
    let events = server.bucket_events("shared");
    let set = of_type(&events, "v1.object.acl.set");
    assert_eq!(set.last().expect("the write's ACL").payload["owner"], partner_account.as_str());
    assert_eq!(failure(get_as(&s3, "p.txt").await), (403, "AccessDenied".to_owned()));
    assert_eq!(
        failure(s3.get_object_acl().bucket("shared").key("p.txt").send().await),
        (403, "AccessDenied".to_owned())
    );
    let by_owner = s3.put_object_acl().bucket("shared").key("p.txt").acl(ObjectCannedAcl::PublicRead).send().await;
    assert_eq!(failure(by_owner), (403, "AccessDenied".to_owned()));
    // The writer grants the bucket's owner a read; the grant names the bucket's owner.
    partner
        .put_object_acl()
        .bucket("shared")
        .key("p.txt")
        .acl(ObjectCannedAcl::BucketOwnerRead)
        .send()
        .await
        .expect("bucket-owner-read");
    assert_eq!(owner_of(&partner, "p.txt").await.1[1], (root_id.clone(), "READ".to_owned()));
    let read = get_as(&s3, "p.txt").await.expect("the bucket's owner reads under the grant");
    assert_eq!(read.body.collect().await.expect("body").into_bytes().as_ref(), b"partner's");
    assert_eq!(owner_of(&partner, "p.txt").await.0, partner_id, "an ACL change keeps the owner");
    s3.delete_object().bucket("shared").key("p.txt").send().await.expect("the bucket's owner deletes");

    // Written with bucket-owner-full-control: still the writer's under ObjectWriter, with
    // full control granted to the bucket's owner.
    let full = partner
        .put_object()
        .bucket("shared")
        .key("q.txt")
        .acl(ObjectCannedAcl::BucketOwnerFullControl)
        .body(aws_sdk_s3::primitives::ByteStream::from_static(b"q"));
    full.send().await.expect("write with bucket-owner-full-control");
    let (owner, grants) = owner_of(&s3, "q.txt").await;
    assert_eq!((owner.as_str(), &grants[1]), (partner_id.as_str(), &(root_id.clone(), "FULL_CONTROL".to_owned())));

    // A multipart upload's object is its initiator's too.
    let upload = partner.create_multipart_upload().bucket("shared").key("m.bin").send().await.expect("create");
    let upload_id = upload.upload_id().expect("upload id");
    let part = partner
        .upload_part()
        .bucket("shared")
        .key("m.bin")
        .upload_id(upload_id)
        .part_number(1)
        .body(aws_sdk_s3::primitives::ByteStream::from_static(b"multipart"))
        .send()
        .await
        .expect("part");
    let parts = CompletedMultipartUpload::builder()
        .parts(CompletedPart::builder().part_number(1).e_tag(part.e_tag().expect("etag")).build())
        .build();
    let complete =
        partner.complete_multipart_upload().bucket("shared").key("m.bin").upload_id(upload_id).multipart_upload(parts);
    // While open, listings name its initiator by canonical id, never by an access key.
    let listed = s3.list_multipart_uploads().bucket("shared").send().await.expect("list uploads");
    let initiator = listed.uploads()[0].initiator().expect("initiator");
    assert_eq!((initiator.id(), initiator.display_name()), (Some(partner_id.as_str()), Some("partner")));
    let parts = s3.list_parts().bucket("shared").key("m.bin").upload_id(upload_id).send().await.expect("parts");
    assert_eq!(parts.initiator().and_then(|i| i.id()), Some(partner_id.as_str()));
    complete.send().await.expect("complete");
    assert_eq!(owner_of(&partner, "m.bin").await.0, partner_id);
    assert_eq!(failure(get_as(&s3, "m.bin").await), (403, "AccessDenied".to_owned()));

    // BucketOwnerPreferred: bucket-owner-full-control gives the object to the bucket's owner;
    // without it the writer keeps it.
    s3.put_bucket_ownership_controls()
        .bucket("shared")
        .ownership_controls(ownership(ObjectOwnership::BucketOwnerPreferred))
        .send()
        .await
        .expect("BucketOwnerPreferred");
    let preferred = partner
        .put_object()
        .bucket("shared")
        .key("r.txt")
        .acl(ObjectCannedAcl::BucketOwnerFullControl)
        .body(aws_sdk_s3::primitives::ByteStream::from_static(b"r"));
    preferred.send().await.expect("write with bucket-owner-full-control");
    assert_eq!(owner_of(&s3, "r.txt").await, (root_id.clone(), vec![(root_id.clone(), "FULL_CONTROL".to_owned())]));
    put(&partner, "shared", "s.txt", b"s").await;
    assert_eq!(owner_of(&partner, "s.txt").await.0, partner_id);
    assert_eq!(failure(get_as(&s3, "s.txt").await), (403, "AccessDenied".to_owned()));

    // Listings name each object's owner, as GetObjectAcl does.
    let listed = s3.list_objects_v2().bucket("shared").fetch_owner(true).send().await.expect("list");
    let owners: Vec<(&str, &str)> = listed
        .contents()
        .iter()
        .map(|o| (o.key().unwrap_or_default(), o.owner().and_then(|o| o.id()).unwrap_or_default()))
        .collect();
    let expected = [("m.bin", &partner_id), ("q.txt", &partner_id), ("r.txt", &root_id), ("s.txt", &partner_id)];
    assert_eq!(owners, expected.map(|(k, id)| (k, id.as_str())));
    let versions = s3.list_object_versions().bucket("shared").send().await.expect("versions");
    let r = versions.versions().iter().find(|v| v.key() == Some("r.txt")).expect("r.txt");
    let s_txt = versions.versions().iter().find(|v| v.key() == Some("s.txt")).expect("s.txt");
    assert_eq!(r.owner().and_then(|o| o.id()), Some(root_id.as_str()));
    assert_eq!(s_txt.owner().and_then(|o| o.id()), Some(partner_id.as_str()));

    // An upload the partner starts now would be the partner's; it is completed only after
    // ACLs are disabled, below.
    let late = partner.create_multipart_upload().bucket("shared").key("late.bin").send().await.expect("create");
    let late_id = late.upload_id().expect("upload id").to_owned();
    let late_part = partner
        .upload_part()
        .bucket("shared")
        .key("late.bin")
        .upload_id(&late_id)
        .part_number(1)
        .body(aws_sdk_s3::primitives::ByteStream::from_static(b"late"))
        .send()
        .await
        .expect("part");

    // BucketOwnerEnforced: the bucket's owner owns every object, whatever was recorded.
    s3.put_bucket_ownership_controls()
        .bucket("shared")
        .ownership_controls(ownership(ObjectOwnership::BucketOwnerEnforced))
        .send()
        .await
        .expect("BucketOwnerEnforced");
    assert_eq!(owner_of(&s3, "s.txt").await.0, root_id);
    get_as(&s3, "s.txt").await.expect("the bucket's owner reads what it owns now");
    get_as(&s3, "m.bin").await.expect("and the upload's object");
    // The upload started under BucketOwnerPreferred completes, and is the bucket owner's.
    let parts = CompletedMultipartUpload::builder()
        .parts(CompletedPart::builder().part_number(1).e_tag(late_part.e_tag().expect("etag")).build())
        .build();
    let complete = partner
        .complete_multipart_upload()
        .bucket("shared")
        .key("late.bin")
        .upload_id(&late_id)
        .multipart_upload(parts);
    complete.send().await.expect("an upload started before ACLs were disabled completes");
    assert_eq!(owner_of(&s3, "late.bin").await.0, root_id);
    let read = get_as(&s3, "late.bin").await.expect("the bucket's owner reads it");
    assert_eq!(read.body.collect().await.expect("body").into_bytes().as_ref(), b"late");
}

#[tokio::test]
async fn a_copy_source_is_decided_as_the_copy_reads_it_issue_18() {
    use aws_sdk_s3::types::{BucketVersioningStatus, ObjectOwnership, VersioningConfiguration};

    // The access decision and the copy must read `x-amz-copy-source` alike: decoded first,
    // then its leading slash and its versionId taken. Read any other way, a copy is decided
    // on another object than the one it copies.
    let server = Server::start(Transport::Http).await;
    let s3 = server.s3();
    let partner = new_account(&server, "partner", None).await.client;
    create_bucket(&s3, "vault").await;
    put(&s3, "vault", "secret.txt", b"root's secret").await;
    create_bucket(&partner, "loot").await;
    let before = server.events().len();
    for source in ["%2Fvault/secret.txt", "%2fvault%2Fsecret.txt", "/vault/secret.txt", "vault/secret.txt"] {
        let copy = partner.copy_object().bucket("loot").key("stolen.txt").copy_source(source).send().await;
        assert_eq!(failure(copy), (403, "AccessDenied".to_owned()), "a copy from {source}");
    }
    server.assert_no_new_events(before, "copies from another account's bucket");

    // A version another account owns, named with its id percent-encoded.
    s3.create_bucket().bucket("shared").object_ownership(ObjectOwnership::ObjectWriter).send().await.expect("bucket");
    let enabled = VersioningConfiguration::builder().status(BucketVersioningStatus::Enabled).build();
    s3.put_bucket_versioning().bucket("shared").versioning_configuration(enabled).send().await.expect("versioning");
    let grant = serde_json::json!({"Statement": {"Effect": "Allow", "Principal": "*",
        "Action": "s3:PutObject", "Resource": "arn:aws:s3:::shared/*"}});
    s3.put_bucket_policy().bucket("shared").policy(grant.to_string()).send().await.expect("bucket policy");
    let written = partner
        .put_object()
        .bucket("shared")
        .key("p.txt")
        .body(aws_sdk_s3::primitives::ByteStream::from_static(b"partner's"))
        .send()
        .await
        .expect("the partner writes");
    let version = written.version_id().expect("a version id").to_owned();
    let encoded: String = version.bytes().map(|b| format!("%{b:02X}")).collect();
    let before = server.events().len();
    for id in [version.as_str(), encoded.as_str()] {
        let copy =
            s3.copy_object().bucket("vault").key("taken.txt").copy_source(format!("shared/p.txt?versionId={id}"));
        assert_eq!(failure(copy.send().await), (403, "AccessDenied".to_owned()), "a copy of version {id}");
    }
    server.assert_no_new_events(before, "copies of a version the bucket's owner does not own");
}

#[tokio::test]
async fn an_objects_provenance_is_its_owners_to_grant_issue_18() {
    use aws_sdk_s3::types::{ObjectCannedAcl, ObjectOwnership};

    // The registry API's provenance of a key is decided as a read of the key: an object
    // another account owns shows its uploader, address and metadata to whom that account
    // grants, not to whom the bucket grants.
    let server = Server::start(Transport::Http).await;
    let s3 = server.s3();
    let account = new_account(&server, "partner", None).await;
    let (partner, partner_key) = (&account.client, account.key());
    s3.create_bucket().bucket("shared").object_ownership(ObjectOwnership::ObjectWriter).send().await.expect("bucket");
    let grant = serde_json::json!({"Statement": {"Effect": "Allow", "Principal": "*",
        "Action": ["s3:PutObject", "s3:GetObject"], "Resource": "arn:aws:s3:::shared/*"}});
    s3.put_bucket_policy().bucket("shared").policy(grant.to_string()).send().await.expect("bucket policy");
    put(partner, "shared", "p.txt", b"partner's").await;
    let provenance = |key: Key<'_>| {
        server.request("GET", "/_registry/objects/shared/p.txt").sign(key, SystemTime::now(), Payload::Signed)
    };
    let refused = server.send(&provenance(ROOT)).await;
    assert_refused(&refused, 403, "AccessDenied", "the bucket's owner, without the object owner's grant");
    let own = server.send(&provenance(partner_key)).await;
    assert_eq!(own.status, 200, "{}", own.text());
    partner
        .put_object_acl()
        .bucket("shared")
        .key("p.txt")
        .acl(ObjectCannedAcl::BucketOwnerRead)
        .send()
        .await
        .expect("bucket-owner-read");
    let granted = server.send(&provenance(ROOT)).await;
    assert_eq!(granted.status, 200, "{}", granted.text());
}

async fn put_result(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
) -> Result<
    aws_sdk_s3::operation::put_object::PutObjectOutput,
    aws_sdk_s3::error::SdkError<aws_sdk_s3::operation::put_object::PutObjectError>,
> {
    client.put_object().bucket(bucket).key(key).body(aws_sdk_s3::primitives::ByteStream::from_static(b"x")).send().await
}

/// Deleting a bucket's public access block or its ownership controls needs the permission
/// to put them, as in AWS: no IAM action names the deletions, so a policy that denies the
/// puts must stop them too, or a denied user could lift the block and make the bucket public.
#[tokio::test]
async fn a_deny_on_putting_the_public_access_block_or_ownership_controls_also_stops_their_removal() {
    use aws_sdk_s3::types::{
        ObjectOwnership, OwnershipControls, OwnershipControlsRule, PublicAccessBlockConfiguration,
    };

    let (_dir, server) = server_with_a_second_user().await;
    let s3 = server.s3();
    let user = server.s3_as(USER);
    create_bucket(&s3, BUCKET).await;
    let block = |on: bool| {
        PublicAccessBlockConfiguration::builder()
            .block_public_acls(on)
            .ignore_public_acls(on)
            .block_public_policy(on)
            .restrict_public_buckets(on)
            .build()
    };
    s3.put_public_access_block()
        .bucket(BUCKET)
        .public_access_block_configuration(block(true))
        .send()
        .await
        .expect("block");
    let enforced = OwnershipControls::builder()
        .rules(
            OwnershipControlsRule::builder()
                .object_ownership(ObjectOwnership::BucketOwnerEnforced)
                .build()
                .expect("rule"),
        )
        .build()
        .expect("controls");
    s3.put_bucket_ownership_controls().bucket(BUCKET).ownership_controls(enforced).send().await.expect("controls");
    let policy = format!(
        r#"{{"Statement":[
  {{"Effect":"Deny","Principal":{{"AWS":"*"}},
    "Action":["s3:PutBucketPublicAccessBlock","s3:GetBucketPublicAccessBlock","s3:PutBucketOwnershipControls"],
    "Resource":"arn:aws:s3:::{BUCKET}","Condition":{{"StringEquals":{{"aws:username":"{}"}}}}}}]}}"#,
        USER.access_key
    );
    s3.put_bucket_policy().bucket(BUCKET).policy(&policy).send().await.expect("deny the second user");
    let before = server.events().len();

    let denied = (403, "AccessDenied".to_owned());
    assert_eq!(failure(user.delete_public_access_block().bucket(BUCKET).send().await), denied);
    let lifted = user.put_public_access_block().bucket(BUCKET).public_access_block_configuration(block(false));
    assert_eq!(failure(lifted.send().await), denied);
    assert_eq!(failure(user.get_public_access_block().bucket(BUCKET).send().await), denied);
    assert_eq!(failure(user.delete_bucket_ownership_controls().bucket(BUCKET).send().await), denied);
    server.assert_no_new_events(before, "removals denied by the bucket policy");

    let stored = s3.get_public_access_block().bucket(BUCKET).send().await.expect("get the block");
    assert_eq!(stored.public_access_block_configuration().and_then(|c| c.block_public_policy()), Some(true));
    let controls = s3.get_bucket_ownership_controls().bucket(BUCKET).send().await.expect("controls stand");
    let rule = controls.ownership_controls().and_then(|c| c.rules().first()).map(|r| r.object_ownership().clone());
    assert_eq!(rule, Some(ObjectOwnership::BucketOwnerEnforced));
    // The owner, whom the policy does not name, still removes both.
    s3.delete_public_access_block().bucket(BUCKET).send().await.expect("the owner removes the block");
    s3.delete_bucket_ownership_controls().bucket(BUCKET).send().await.expect("the owner removes the controls");
}

#[tokio::test]
async fn a_public_access_block_refuses_public_policies_and_restricts_a_public_bucket_issue_18() {
    use aws_sdk_s3::types::PublicAccessBlockConfiguration;

    let server = Server::start(Transport::Http).await;
    let s3 = server.s3();
    create_bucket(&s3, BUCKET).await;
    put(&s3, BUCKET, "public/a.txt", b"for everyone").await;
    let missing = s3.get_public_access_block().bucket(BUCKET).send().await;
    assert_eq!(failure(missing), (404, "NoSuchPublicAccessBlockConfiguration".to_owned()));
    let public = format!(
        r#"{{"Statement":{{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::{BUCKET}/public/*"}}}}"#
    );
    let block = |policy: bool, restrict: bool| {
        PublicAccessBlockConfiguration::builder()
            .block_public_acls(true)
            .ignore_public_acls(false)
            .block_public_policy(policy)
            .restrict_public_buckets(restrict)
            .build()
    };

    // BlockPublicPolicy: a public policy is refused and nothing is recorded.
    s3.put_public_access_block()
        .bucket(BUCKET)
        .public_access_block_configuration(block(true, false))
        .send()
        .await
        .expect("put the block");
    let stored = s3.get_public_access_block().bucket(BUCKET).send().await.expect("get the block");
    let stored = stored.public_access_block_configuration().expect("configuration");
    assert_eq!(
        (
            stored.block_public_acls(),
            stored.ignore_public_acls(),
            stored.block_public_policy(),
            stored.restrict_public_buckets()
        ),
        (Some(true), Some(false), Some(true), Some(false))
    );
    let before = server.events().len();
    let refused = s3.put_bucket_policy().bucket(BUCKET).policy(&public).send().await;
    assert_eq!(failure(refused), (403, "AccessDenied".to_owned()));
    server.assert_no_new_events(before, "a public policy under BlockPublicPolicy");

    // RestrictPublicBuckets: the public policy stands but lets no one outside the account in.
    s3.put_public_access_block()
        .bucket(BUCKET)
        .public_access_block_configuration(block(false, true))
        .send()
        .await
        .expect("restrict");
    s3.put_bucket_policy().bucket(BUCKET).policy(&public).send().await.expect("a public policy, now allowed");
    let anonymous = || server.request("GET", &format!("/{BUCKET}/public/a.txt"));
    assert_refused(&server.send(&anonymous()).await, 403, "AccessDenied", "anonymous read of a restricted bucket");
    assert_eq!(get(&s3, BUCKET, "public/a.txt").await, b"for everyone");

    // Without the block, the policy lets everyone read again; every change was recorded.
    s3.delete_public_access_block().bucket(BUCKET).send().await.expect("delete the block");
    assert_eq!(server.send(&anonymous()).await.status, 200);
    let events = server.bucket_events(BUCKET);
    assert_eq!(of_type(&events, "v1.bucket.public_access_block.set").len(), 2);
    assert_eq!(of_type(&events, "v1.bucket.public_access_block.deleted").len(), 1);
}

/// Found by an attacker's pass: a grant to everyone under a condition that narrows nothing
/// (`Null`, a negated operator, an `…IfExists`, address blocks that cover the internet between
/// them) passed for private: `BlockPublicPolicy` let it in, `RestrictPublicBuckets` let
/// anonymous readers through and `GetBucketPolicyStatus` answered `IsPublic: false`.
#[tokio::test]
async fn a_condition_that_narrows_nothing_leaves_a_grant_to_everyone_public() {
    use aws_sdk_s3::types::PublicAccessBlockConfiguration;

    let server = Server::start(Transport::Http).await;
    let s3 = server.s3();
    create_bucket(&s3, BUCKET).await;
    put(&s3, BUCKET, "a.txt", b"not for everyone").await;
    let block = |block_public_policy: bool| {
        let block = PublicAccessBlockConfiguration::builder()
            .block_public_acls(true)
            .ignore_public_acls(true)
            .block_public_policy(block_public_policy)
            .restrict_public_buckets(true)
            .build();
        s3.put_public_access_block().bucket(BUCKET).public_access_block_configuration(block).send()
    };
    let granted_if = |condition: &str| {
        format!(
            r#"{{"Statement":{{"Effect":"Allow","Principal":"*","Action":"s3:GetObject",
                "Resource":"arn:aws:s3:::{BUCKET}/*","Condition":{condition}}}}}"#
        )
    };
    let anonymous = || server.request("GET", &format!("/{BUCKET}/a.txt"));
    let is_public = || async {
        let status = s3.get_bucket_policy_status().bucket(BUCKET).send().await.expect("policy status");
        status.policy_status().and_then(|s| s.is_public())
    };

    // Each holds for an anonymous request from here, and none names whom it lets in.
    for condition in [
        r#"{"Null":{"aws:PrincipalAccount":"true"}}"#,
        r#"{"NotIpAddress":{"aws:SourceIp":"192.0.2.1/32"}}"#,
        r#"{"StringNotEquals":{"aws:PrincipalAccount":"111111111111"}}"#,
        r#"{"StringEqualsIfExists":{"aws:PrincipalAccount":"111111111111"}}"#,
        r#"{"IpAddress":{"aws:SourceIp":["0.0.0.0/1","128.0.0.0/1"]}}"#,
    ] {
        let policy = granted_if(condition);
        block(true).await.expect("block public policies");
        let before = server.events().len();
        let refused = s3.put_bucket_policy().bucket(BUCKET).policy(&policy).send().await;
        assert_eq!(failure(refused), (403, "AccessDenied".to_owned()), "BlockPublicPolicy: {condition}");
        server.assert_no_new_events(before, condition);

        block(false).await.expect("let public policies in, still restricted");
        s3.put_bucket_policy().bucket(BUCKET).policy(&policy).send().await.expect("the policy, now allowed");
        assert_eq!(is_public().await, Some(true), "GetBucketPolicyStatus: {condition}");
        assert_refused(&server.send(&anonymous()).await, 403, "AccessDenied", condition);
        s3.delete_bucket_policy().bucket(BUCKET).send().await.expect("remove the policy");
    }

    // A fixed account is a narrowing the block lets in.
    block(true).await.expect("block public policies");
    let one_account = granted_if(r#"{"StringEquals":{"aws:PrincipalAccount":"111111111111"}}"#);
    s3.put_bucket_policy().bucket(BUCKET).policy(&one_account).send().await.expect("a private policy");
    assert_eq!(is_public().await, Some(false));
}

#[tokio::test]
async fn object_acls_grant_reads_of_the_version_they_were_set_on_issue_18() {
    use aws_sdk_s3::types::{ObjectCannedAcl, ObjectOwnership, PublicAccessBlockConfiguration};

    let server = Server::start(Transport::Http).await;
    let s3 = server.s3();
    s3.create_bucket()
        .bucket("objects")
        .object_ownership(ObjectOwnership::BucketOwnerPreferred)
        .send()
        .await
        .expect("bucket");
    put(&s3, "objects", "doc.txt", b"first").await;
    let anonymous_get = || server.request("GET", "/objects/doc.txt");
    assert_refused(&server.send(&anonymous_get()).await, 403, "AccessDenied", "a private object");

    // public-read on the object: anyone reads it, and only it.
    put(&s3, "objects", "other.txt", b"other").await;
    s3.put_object_acl().bucket("objects").key("doc.txt").acl(ObjectCannedAcl::PublicRead).send().await.expect("acl");
    let read = server.send(&anonymous_get()).await;
    assert_eq!((read.status, read.body.as_slice()), (200, b"first".as_slice()), "{}", read.text());
    let other = server.send(&server.request("GET", "/objects/other.txt")).await;
    assert_refused(&other, 403, "AccessDenied", "another object of the bucket");
    let acl = s3.get_object_acl().bucket("objects").key("doc.txt").send().await.expect("object ACL");
    let public = acl.grants().iter().any(|g| {
        g.grantee().and_then(|g| g.uri()) == Some("http://acs.amazonaws.com/groups/global/AllUsers")
            && g.permission().map(|p| p.as_str()) == Some("READ")
    });
    assert!(public, "{:?}", acl.grants());
    let events = server.bucket_events("objects");
    assert!(events.iter().any(|e| e.event_type == "v1.object.acl.set" && e.subject_id == "objects/doc.txt"));

    // IgnorePublicAcls takes the grant away while it stands; BlockPublicAcls refuses a new one.
    let block = |acls: bool, ignore: bool| {
        PublicAccessBlockConfiguration::builder().block_public_acls(acls).ignore_public_acls(ignore).build()
    };
    s3.put_public_access_block()
        .bucket("objects")
        .public_access_block_configuration(block(false, true))
        .send()
        .await
        .expect("ignore");
    assert_refused(&server.send(&anonymous_get()).await, 403, "AccessDenied", "a public object ACL ignored");
    s3.put_public_access_block()
        .bucket("objects")
        .public_access_block_configuration(block(true, false))
        .send()
        .await
        .expect("block");
    let before = server.events().len();
    let blocked = s3.put_object_acl().bucket("objects").key("other.txt").acl(ObjectCannedAcl::PublicRead).send().await;
    assert_eq!(failure(blocked), (403, "AccessDenied".to_owned()));
    server.assert_no_new_events(before, "a public object ACL under BlockPublicAcls");
    s3.delete_public_access_block().bucket("objects").send().await.expect("no block");
    assert_eq!(server.send(&anonymous_get()).await.status, 200);

    // The grant is the version's: a new version of the key starts private.
    put(&s3, "objects", "doc.txt", b"second").await;
    assert_refused(&server.send(&anonymous_get()).await, 403, "AccessDenied", "the new version");
    let acl = s3.get_object_acl().bucket("objects").key("doc.txt").send().await.expect("object ACL");
    assert_eq!(acl.grants().len(), 1, "the owner's full control alone: {:?}", acl.grants());

    // A write may set its version's ACL: PUT, copy and multipart alike, recorded with it.
    let body = || aws_sdk_s3::primitives::ByteStream::from_static(b"public bytes");
    s3.put_object()
        .bucket("objects")
        .key("put.txt")
        .acl(ObjectCannedAcl::PublicRead)
        .body(body())
        .send()
        .await
        .expect("put");
    s3.copy_object()
        .bucket("objects")
        .key("copy.txt")
        .copy_source("objects/put.txt")
        .acl(ObjectCannedAcl::PublicRead)
        .send()
        .await
        .expect("copy");
    let upload = s3
        .create_multipart_upload()
        .bucket("objects")
        .key("multi.txt")
        .acl(ObjectCannedAcl::PublicRead)
        .send()
        .await
        .expect("create upload");
    let upload_id = upload.upload_id().expect("upload id");
    let part =
        s3.upload_part().bucket("objects").key("multi.txt").upload_id(upload_id).part_number(1).body(body()).send();
    let part = part.await.expect("part");
    let completed = aws_sdk_s3::types::CompletedMultipartUpload::builder()
        .parts(aws_sdk_s3::types::CompletedPart::builder().part_number(1).e_tag(part.e_tag().expect("etag")).build())
        .build();
    s3.complete_multipart_upload()
        .bucket("objects")
        .key("multi.txt")
        .upload_id(upload_id)
        .multipart_upload(completed)
        .send()
        .await
        .expect("complete");
    for key in ["put.txt", "copy.txt", "multi.txt"] {
        let read = server.send(&server.request("GET", &format!("/objects/{key}"))).await;
        assert_eq!((read.status, read.body.as_slice()), (200, b"public bytes".as_slice()), "{key}: {}", read.text());
    }
    let events = server.bucket_events("objects");
    let acls: Vec<_> =
        events.iter().filter(|e| e.event_type == "v1.object.acl.set").map(|e| e.subject_id.as_str()).collect();
    assert_eq!(acls, ["objects/doc.txt", "objects/put.txt", "objects/copy.txt", "objects/multi.txt"]);
}

#[tokio::test]
async fn an_encoded_version_id_is_decided_as_the_version_it_names_issue_18() {
    use aws_sdk_s3::types::{BucketVersioningStatus, ObjectCannedAcl, ObjectOwnership, VersioningConfiguration};

    // s3s decodes query names, so `version%49d` is `versionId`: the decision must see it too,
    // or a request for an old private version is decided on the latest, public one.
    let server = Server::start(Transport::Http).await;
    let s3 = server.s3();
    s3.create_bucket().bucket("versions").object_ownership(ObjectOwnership::ObjectWriter).send().await.expect("bucket");
    let enabled = VersioningConfiguration::builder().status(BucketVersioningStatus::Enabled).build();
    s3.put_bucket_versioning().bucket("versions").versioning_configuration(enabled).send().await.expect("versioning");
    let body = |b: &'static [u8]| aws_sdk_s3::primitives::ByteStream::from_static(b);
    let old = s3.put_object().bucket("versions").key("k").body(body(b"private")).send().await.expect("old");
    let old = old.version_id().expect("version").to_owned();
    s3.put_object()
        .bucket("versions")
        .key("k")
        .acl(ObjectCannedAcl::PublicRead)
        .body(body(b"public"))
        .send()
        .await
        .expect("new");
    assert_eq!(server.send(&server.request("GET", "/versions/k")).await.status, 200, "the latest is public");
    for target in [format!("/versions/k?versionId={old}"), format!("/versions/k?version%49d={old}")] {
        let response = server.send(&server.request("GET", &target)).await;
        assert_refused(&response, 403, "AccessDenied", &target);
    }
}

#[tokio::test]
async fn re_creating_a_bucket_resets_its_acl_only_for_who_may_set_it_issue_20() {
    use aws_sdk_s3::types::ObjectOwnership;

    let (_dir, server) = server_with_a_second_user().await;
    let s3 = server.s3();
    let user = server.s3_as(USER);
    create_bucket(&s3, BUCKET).await;
    let owner_controls = ownership(ObjectOwnership::BucketOwnerPreferred);
    s3.put_bucket_ownership_controls().bucket(BUCKET).ownership_controls(owner_controls).send().await.expect("ACLs on");
    let owner = s3.get_bucket_acl().bucket(BUCKET).send().await.expect("ACL");
    let owner_id = owner.owner().and_then(|o| o.id()).expect("canonical id").to_owned();
    let read = format!("id={owner_id}");
    s3.put_bucket_acl().bucket(BUCKET).grant_read(&read).grant_full_control(&read).send().await.expect("grant READ");
    let grants = |acl: aws_sdk_s3::operation::get_bucket_acl::GetBucketAclOutput| {
        acl.grants().iter().filter_map(|g| g.permission().map(|p| p.as_str().to_owned())).collect::<Vec<_>>()
    };
    let policy = format!(
        r#"{{"Statement": [{{"Effect": "Deny", "Principal": {{"AWS": "*"}}, "Action": "s3:PutBucketAcl",
            "Resource": "arn:aws:s3:::{BUCKET}", "Condition": {{"StringEquals": {{"aws:username": "{}"}}}}}}]}}"#,
        USER.access_key
    );
    s3.put_bucket_policy().bucket(BUCKET).policy(policy).send().await.expect("policy");

    // Re-creating resets the ACL (us-east-1's legacy answer): a PutBucketAcl in effect, so a
    // user the policy denies it may not, and the ACL stays.
    assert_eq!(failure(user.create_bucket().bucket(BUCKET).send().await), (403, "AccessDenied".into()));
    let kept = grants(s3.get_bucket_acl().bucket(BUCKET).send().await.expect("ACL"));
    assert_eq!(kept.len(), 2, "the READ grant survives a refused re-create: {kept:?}");
    s3.create_bucket().bucket(BUCKET).send().await.expect("the owner re-creates its bucket");
    let reset = grants(s3.get_bucket_acl().bucket(BUCKET).send().await.expect("ACL"));
    assert_eq!(reset, ["FULL_CONTROL"], "the ACL is reset to private");
}

#[tokio::test]
async fn what_reveals_a_read_needs_the_reads_permission_issue_20() {
    let (_dir, server) = server_with_a_second_user().await;
    let s3 = server.s3();
    let user = server.s3_as(USER);
    create_bucket(&s3, BUCKET).await;
    put(&s3, BUCKET, "k", b"secret bytes").await;
    let etag = s3.head_object().bucket(BUCKET).key("k").send().await.expect("head").e_tag().expect("ETag").to_owned();
    let policy = format!(
        r#"{{"Statement": [{{"Effect": "Deny", "Principal": {{"AWS": "*"}}, "Action": "s3:GetObject",
            "Resource": "arn:aws:s3:::{BUCKET}/*", "Condition": {{"StringEquals": {{"aws:username": "{}"}}}}}}]}}"#,
        USER.access_key
    );
    s3.put_bucket_policy().bucket(BUCKET).policy(policy).send().await.expect("policy");
    let denied = (403, "AccessDenied".to_owned());

    // An object's attributes (its ETag, checksum, size) are what a read would reveal.
    let attributes = user.get_object_attributes().bucket(BUCKET).key("k").object_attributes("ETag".into());
    assert_eq!(failure(attributes.send().await), denied);
    // A delete conditional on an ETag tells whether the ETag is the object's: so does a key's
    // ETag in DeleteObjects. `If-Match: *` asks only whether the object exists.
    assert_eq!(failure(user.delete_object().bucket(BUCKET).key("k").if_match(&etag).send().await), denied);
    let guess = ObjectIdentifier::builder().key("k").e_tag(&etag).build().expect("identifier");
    let batch = user
        .delete_objects()
        .bucket(BUCKET)
        .delete(Delete::builder().objects(guess).build().expect("delete"))
        .send()
        .await
        .expect("DeleteObjects answers per key");
    assert_eq!(batch.errors().iter().filter_map(|e| e.code()).collect::<Vec<_>>(), ["AccessDenied"]);
    assert_eq!(get(&s3, BUCKET, "k").await, b"secret bytes", "nothing was deleted");
    user.delete_object().bucket(BUCKET).key("k").if_match("*").send().await.expect("a delete if it exists");
    assert_eq!(failure(s3.head_object().bucket(BUCKET).key("k").send().await).0, 404);
}

#[tokio::test]
async fn a_new_bucket_with_a_public_acl_needs_put_bucket_acl_issue_20() {
    use artifact_store_conformance::cli::expect;
    use aws_sdk_s3::types::{BucketCannedAcl, ObjectOwnership};

    let server = Server::start(Transport::Http).await;
    let dir = tempfile::tempdir().expect("temp folder");
    expect(&server, &["user", "create", "maker"], 0);
    let created = expect(&server, &["--json", "key", "create", "maker"], 0);
    let created: serde_json::Value = serde_json::from_str(created.stdout.trim()).expect("key JSON");
    let key = |name: &str| created[name].as_str().expect("key field").to_owned();
    let (access_key, secret_key) = (key("access_key"), key("secret_key"));
    let maker = server.s3_as(Key { access_key: &access_key, secret_key: &secret_key });
    let policy = dir.path().join("buckets.json");
    std::fs::write(&policy, r#"{"Statement": [{"Effect": "Allow", "Action": "s3:CreateBucket", "Resource": "*"}]}"#)
        .expect("policy file");
    expect(&server, &["user", "policy", "put", "maker", "--file", &policy.display().to_string()], 0);

    // CreateBucket alone makes private buckets; a public ACL is a PutBucketAcl as well.
    let public = maker
        .create_bucket()
        .bucket("made-public")
        .object_ownership(ObjectOwnership::ObjectWriter)
        .acl(BucketCannedAcl::PublicRead);
    assert_eq!(failure(public.send().await), (403, "AccessDenied".to_owned()));
    assert_eq!(failure(server.s3().head_bucket().bucket("made-public").send().await).0, 404, "nothing was made");
    maker.create_bucket().bucket("made-private").acl(BucketCannedAcl::Private).send().await.expect("private bucket");
}
