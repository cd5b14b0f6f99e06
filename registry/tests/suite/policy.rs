//! The policy evaluator, table-tested with the policies AWS's documentation gives as
//! examples, and the refusals `PutBucketPolicy` answers with `MalformedPolicy`.

use artifact_store_registry::policy::{
    AclGrant, ConditionKeys, Decision, Grants, Policy, PolicyKind, Principal, Request, User, canonical_id, decide,
};

const OWNER: &str = "111111111111";
const OTHER: &str = "222222222222";

fn bucket_policy(json: &str) -> Policy {
    Policy::parse(json, PolicyKind::Bucket).unwrap_or_else(|e| panic!("{e}: {json}"))
}

fn identity_policy(json: &str) -> Policy {
    Policy::parse(json, PolicyKind::Identity).unwrap_or_else(|e| panic!("{e}: {json}"))
}

fn alice() -> Principal {
    Principal::User(User::new(OWNER, "alice"))
}

fn bob() -> Principal {
    Principal::User(User::new(OWNER, "bob"))
}

fn stranger() -> Principal {
    Principal::User(User::new(OTHER, "carol"))
}

/// Decides `action` on `resource` for `principal` with the given keys.
fn check(
    principal: &Principal,
    action: &str,
    resource: &str,
    keys: &ConditionKeys,
    identity: &[Policy],
    bucket: Option<&Policy>,
) -> Decision {
    let request = Request { principal, action, resource, keys };
    let grants = Grants { identity, bucket_policy: bucket, resource_owner: Some(OWNER), ..Grants::default() };
    decide(&request, &grants)
}

fn no_keys() -> ConditionKeys {
    ConditionKeys::new()
}

#[test]
fn a_public_read_policy_lets_anonymous_get_objects_and_nothing_else() {
    let policy = bucket_policy(
        r#"{"Version":"2012-10-17","Statement":[{"Sid":"PublicRead","Effect":"Allow","Principal":"*",
            "Action":["s3:GetObject","s3:GetObjectVersion"],"Resource":["arn:aws:s3:::docs/*"]}]}"#,
    );
    let anonymous = Principal::Anonymous;
    let get = check(&anonymous, "s3:GetObject", "arn:aws:s3:::docs/a/b.txt", &no_keys(), &[], Some(&policy));
    assert_eq!(get, Decision::Allow);
    let put = check(&anonymous, "s3:PutObject", "arn:aws:s3:::docs/a", &no_keys(), &[], Some(&policy));
    assert_eq!(put, Decision::ImplicitDeny);
    let list = check(&anonymous, "s3:ListBucket", "arn:aws:s3:::docs", &no_keys(), &[], Some(&policy));
    assert_eq!(list, Decision::ImplicitDeny);
    let elsewhere = check(&anonymous, "s3:GetObject", "arn:aws:s3:::other/a", &no_keys(), &[], Some(&policy));
    assert_eq!(elsewhere, Decision::ImplicitDeny);
    assert!(policy.is_public());
}

#[test]
fn nothing_is_allowed_without_a_grant_and_a_root_user_needs_none_in_its_account() {
    let get = |p: &Principal| check(p, "s3:GetObject", "arn:aws:s3:::b/k", &no_keys(), &[], None);
    assert_eq!(get(&alice()), Decision::ImplicitDeny);
    assert_eq!(get(&Principal::Anonymous), Decision::ImplicitDeny);
    assert_eq!(get(&Principal::User(User::root(OWNER))), Decision::Allow);
    assert_eq!(get(&Principal::User(User::root(OTHER))), Decision::ImplicitDeny);
}

#[test]
fn an_explicit_deny_wins_over_any_allow() {
    let admin = identity_policy(r#"{"Statement":{"Effect":"Allow","Action":"*","Resource":"*"}}"#);
    let bucket = bucket_policy(&format!(
        r#"{{"Statement":{{"Effect":"Deny","Principal":{{"AWS":"arn:aws:iam::{OWNER}:user/alice"}},
            "Action":"s3:DeleteObject*","Resource":"arn:aws:s3:::b/*"}}}}"#
    ));
    let identity = [admin];
    let delete = check(&alice(), "s3:DeleteObjectVersion", "arn:aws:s3:::b/k", &no_keys(), &identity, Some(&bucket));
    assert_eq!(delete, Decision::ExplicitDeny);
    let get = check(&alice(), "s3:GetObject", "arn:aws:s3:::b/k", &no_keys(), &identity, Some(&bucket));
    assert_eq!(get, Decision::Allow);
    let bob_deletes = check(&bob(), "s3:DeleteObject", "arn:aws:s3:::b/k", &no_keys(), &identity, Some(&bucket));
    assert_eq!(bob_deletes, Decision::Allow);
}

#[test]
fn requests_without_tls_are_denied_by_a_secure_transport_condition() {
    let bucket = bucket_policy(
        r#"{"Statement":[{"Effect":"Deny","Principal":"*","Action":"s3:*",
            "Resource":["arn:aws:s3:::b","arn:aws:s3:::b/*"],
            "Condition":{"Bool":{"aws:SecureTransport":"false"}}}]}"#,
    );
    let identity = [identity_policy(r#"{"Statement":{"Effect":"Allow","Action":"s3:*","Resource":"*"}}"#)];
    let mut plain = ConditionKeys::new();
    plain.set("aws:SecureTransport", "false");
    let mut tls = ConditionKeys::new();
    tls.set("aws:securetransport", "true");
    let get =
        |keys: &ConditionKeys| check(&alice(), "s3:GetObject", "arn:aws:s3:::b/k", keys, &identity, Some(&bucket));
    assert_eq!(get(&plain), Decision::ExplicitDeny);
    assert_eq!(get(&tls), Decision::Allow);
    // An absent key does not match a positive operator.
    assert_eq!(get(&no_keys()), Decision::Allow);
}

#[test]
fn source_ip_blocks_allow_and_deny_by_address() {
    let bucket = bucket_policy(
        r#"{"Statement":[{"Effect":"Deny","Principal":"*","Action":"s3:*","Resource":"arn:aws:s3:::b/*",
            "Condition":{"NotIpAddress":{"aws:SourceIp":["192.0.2.0/24","2001:db8::/32"]}}}]}"#,
    );
    let identity = [identity_policy(r#"{"Statement":{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}}"#)];
    for (address, expected) in [
        ("192.0.2.77", Decision::Allow),
        ("2001:db8::5", Decision::Allow),
        ("203.0.113.5", Decision::ExplicitDeny),
        ("not an address", Decision::ExplicitDeny),
    ] {
        let mut keys = ConditionKeys::new();
        keys.set("aws:SourceIp", address);
        let decision = check(&alice(), "s3:GetObject", "arn:aws:s3:::b/k", &keys, &identity, Some(&bucket));
        assert_eq!(decision, expected, "from {address}");
    }
    // A negated operator holds when the key is absent.
    let decision = check(&alice(), "s3:GetObject", "arn:aws:s3:::b/k", &no_keys(), &identity, Some(&bucket));
    assert_eq!(decision, Decision::ExplicitDeny);
}

/// Policy variables exist from version 2012-10-17: in a policy without a version, or of
/// 2008-10-17, `${aws:username}` is plain text, as on AWS, in resources and condition values.
#[test]
fn policy_variables_are_plain_text_before_version_2012_10_17() {
    let mut keys = ConditionKeys::new();
    keys.set("s3:prefix", "alice/");
    for version in [None, Some("2008-10-17"), Some("2012-10-17")] {
        let version_field = version.map(|v| format!(r#""Version":"{v}","#)).unwrap_or_default();
        let identity = [identity_policy(&format!(
            r#"{{{version_field}"Statement":[
                {{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/${{aws:username}}/*"}},
                {{"Effect":"Allow","Action":"s3:ListBucket","Resource":"arn:aws:s3:::b",
                 "Condition":{{"StringEquals":{{"s3:prefix":"${{aws:username}}/"}}}}}}]}}"#
        ))];
        let expected = if version == Some("2012-10-17") { Decision::Allow } else { Decision::ImplicitDeny };
        let get = check(&alice(), "s3:GetObject", "arn:aws:s3:::b/alice/k", &no_keys(), &identity, None);
        assert_eq!(get, expected, "GetObject under version {version:?}");
        let list = check(&alice(), "s3:ListBucket", "arn:aws:s3:::b", &keys, &identity, None);
        assert_eq!(list, expected, "ListBucket under version {version:?}");
        let literal = check(&alice(), "s3:GetObject", "arn:aws:s3:::b/${aws:username}/k", &no_keys(), &identity, None);
        let literal_expected = if version == Some("2012-10-17") { Decision::ImplicitDeny } else { Decision::Allow };
        assert_eq!(literal, literal_expected, "the text itself under version {version:?}");
    }
}

#[test]
fn home_folders_follow_the_user_name_through_policy_variables() {
    let identity = [identity_policy(
        r#"{"Version":"2012-10-17","Statement":[
            {"Effect":"Allow","Action":"s3:ListBucket","Resource":"arn:aws:s3:::home",
             "Condition":{"StringLike":{"s3:prefix":["","home/","home/${aws:username}/*"]}}},
            {"Effect":"Allow","Action":["s3:GetObject","s3:PutObject"],
             "Resource":"arn:aws:s3:::home/home/${aws:username}/*"}]}"#,
    )];
    let list = |who: &Principal, prefix: &str| {
        let mut keys = ConditionKeys::new();
        keys.set("s3:prefix", prefix);
        check(who, "s3:ListBucket", "arn:aws:s3:::home", &keys, &identity, None)
    };
    assert_eq!(list(&alice(), "home/alice/photos/"), Decision::Allow);
    assert_eq!(list(&alice(), "home/bob/"), Decision::ImplicitDeny);
    assert_eq!(list(&alice(), ""), Decision::Allow);
    let put = |who: &Principal, key: &str| {
        check(who, "s3:PutObject", &format!("arn:aws:s3:::home/{key}"), &no_keys(), &identity, None)
    };
    assert_eq!(put(&alice(), "home/alice/a.txt"), Decision::Allow);
    assert_eq!(put(&alice(), "home/bob/a.txt"), Decision::ImplicitDeny);
    assert_eq!(put(&bob(), "home/bob/a.txt"), Decision::Allow);
    // The root user has no user name: the variable matches nothing, and its account allows.
    assert_eq!(put(&Principal::User(User::root(OWNER)), "home/x/a"), Decision::Allow);
}

#[test]
fn another_account_needs_both_its_own_permission_and_the_buckets() {
    let grant_account = bucket_policy(&format!(
        r#"{{"Statement":{{"Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::{OTHER}:root"}},
            "Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}}}}"#
    ));
    let own = [identity_policy(r#"{"Statement":{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}}"#)];
    let get = |who: &Principal, identity: &[Policy], bucket: Option<&Policy>| {
        check(who, "s3:GetObject", "arn:aws:s3:::b/k", &no_keys(), identity, bucket)
    };
    assert_eq!(get(&stranger(), &own, Some(&grant_account)), Decision::Allow);
    assert_eq!(get(&stranger(), &[], Some(&grant_account)), Decision::ImplicitDeny);
    assert_eq!(get(&stranger(), &own, None), Decision::ImplicitDeny);
    assert_eq!(get(&Principal::User(User::root(OTHER)), &[], Some(&grant_account)), Decision::Allow);
    let third = Principal::User(User::new("333333333333", "dave"));
    assert_eq!(get(&third, &own, Some(&grant_account)), Decision::ImplicitDeny);

    // A grant to the user itself is still only the bucket's half.
    let grant_user = bucket_policy(&format!(
        r#"{{"Statement":{{"Effect":"Allow","Principal":{{"AWS":["arn:aws:iam::{OTHER}:user/carol"]}},
            "Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}}}}"#
    ));
    assert_eq!(get(&stranger(), &own, Some(&grant_user)), Decision::Allow);
    assert_eq!(get(&stranger(), &[], Some(&grant_user)), Decision::ImplicitDeny);
    // In the owner's account, naming the user is enough.
    let grant_bob = bucket_policy(&format!(
        r#"{{"Statement":{{"Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::{OWNER}:user/bob"}},
            "Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}}}}"#
    ));
    assert_eq!(get(&bob(), &[], Some(&grant_bob)), Decision::Allow);
    assert_eq!(get(&alice(), &[], Some(&grant_bob)), Decision::ImplicitDeny);
    // The canonical id names the account, as ACLs do.
    let by_canonical = bucket_policy(&format!(
        r#"{{"Statement":{{"Effect":"Allow","Principal":{{"CanonicalUser":"{}"}},
            "Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}}}}"#,
        canonical_id(OTHER)
    ));
    assert_eq!(get(&stranger(), &own, Some(&by_canonical)), Decision::Allow);
}

#[test]
fn acl_grants_speak_like_the_bucket_policy() {
    let request = |principal: &Principal, acl| {
        let keys = no_keys();
        let request = Request { principal, action: "s3:GetObject", resource: "arn:aws:s3:::b/k", keys: &keys };
        decide(&request, &Grants { resource_owner: Some(OWNER), acl, ..Grants::default() })
    };
    assert_eq!(request(&Principal::Anonymous, AclGrant::Everyone), Decision::Allow);
    assert_eq!(request(&Principal::Anonymous, AclGrant::RequesterAccount), Decision::ImplicitDeny);
    // A grant to the owner's account does not let its users in without their own policies.
    assert_eq!(request(&alice(), AclGrant::RequesterAccount), Decision::ImplicitDeny);
    assert_eq!(request(&Principal::User(User::root(OTHER)), AclGrant::RequesterAccount), Decision::Allow);
}

#[test]
fn not_action_not_resource_and_not_principal_invert_their_lists() {
    let identity = [identity_policy(
        r#"{"Statement":[{"Effect":"Allow","NotAction":"iam:*","Resource":"*"},
            {"Effect":"Deny","Action":"s3:*","NotResource":["arn:aws:s3:::ok","arn:aws:s3:::ok/*"]}]}"#,
    )];
    assert_eq!(check(&alice(), "s3:GetObject", "arn:aws:s3:::ok/k", &no_keys(), &identity, None), Decision::Allow);
    assert_eq!(
        check(&alice(), "s3:GetObject", "arn:aws:s3:::secret/k", &no_keys(), &identity, None),
        Decision::ExplicitDeny
    );
    assert_eq!(check(&alice(), "iam:CreateUser", "*", &no_keys(), &identity, None), Decision::ImplicitDeny);

    let only_alice = bucket_policy(&format!(
        r#"{{"Statement":{{"Effect":"Deny",
            "NotPrincipal":{{"AWS":["arn:aws:iam::{OWNER}:user/alice","arn:aws:iam::{OWNER}:root"]}},
            "Action":"s3:*","Resource":"arn:aws:s3:::b/*"}}}}"#
    ));
    let everything = [identity_policy(r#"{"Statement":{"Effect":"Allow","Action":"s3:*","Resource":"*"}}"#)];
    let put =
        |who: &Principal| check(who, "s3:PutObject", "arn:aws:s3:::b/k", &no_keys(), &everything, Some(&only_alice));
    assert_eq!(put(&alice()), Decision::Allow);
    assert_eq!(put(&bob()), Decision::ExplicitDeny);
    assert_eq!(put(&Principal::Anonymous), Decision::ExplicitDeny);
}

#[test]
fn set_operators_combine_a_multi_valued_keys_values() {
    let policy = |operator: &str| {
        [identity_policy(&format!(
            r#"{{"Statement":{{"Effect":"Allow","Action":"s3:PutObject","Resource":"*",
                "Condition":{{"{operator}":{{"s3:RequestObjectTagKeys":["env","team"]}}}}}}}}"#
        ))]
    };
    let put = |identity: &[Policy], tags: Option<&[&str]>| {
        let mut keys = ConditionKeys::new();
        if let Some(tags) = tags {
            keys.set_all("s3:RequestObjectTagKeys", tags.iter().map(|t| (*t).to_owned()));
        }
        check(&alice(), "s3:PutObject", "arn:aws:s3:::b/k", &keys, identity, None)
    };
    let all = policy("ForAllValues:StringEquals");
    assert_eq!(put(&all, Some(&["env"])), Decision::Allow);
    assert_eq!(put(&all, Some(&["env", "team"])), Decision::Allow);
    assert_eq!(put(&all, Some(&["env", "secret"])), Decision::ImplicitDeny);
    assert_eq!(put(&all, None), Decision::Allow, "no values: every one matches");
    let any = policy("ForAnyValue:StringEquals");
    assert_eq!(put(&any, Some(&["secret", "team"])), Decision::Allow);
    assert_eq!(put(&any, Some(&["secret"])), Decision::ImplicitDeny);
    assert_eq!(put(&any, None), Decision::ImplicitDeny);
    assert_eq!(put(&any, Some(&[])), Decision::ImplicitDeny);
}

#[test]
fn null_if_exists_numeric_and_date_conditions() {
    let require_sse = bucket_policy(
        r#"{"Statement":{"Effect":"Deny","Principal":"*","Action":"s3:PutObject","Resource":"arn:aws:s3:::b/*",
            "Condition":{"Null":{"s3:x-amz-server-side-encryption":"true"}}}}"#,
    );
    let everything = [identity_policy(r#"{"Statement":{"Effect":"Allow","Action":"s3:*","Resource":"*"}}"#)];
    let mut encrypted = ConditionKeys::new();
    encrypted.set("s3:x-amz-server-side-encryption", "AES256");
    let put = |keys: &ConditionKeys| {
        check(&alice(), "s3:PutObject", "arn:aws:s3:::b/k", keys, &everything, Some(&require_sse))
    };
    assert_eq!(put(&no_keys()), Decision::ExplicitDeny);
    assert_eq!(put(&encrypted), Decision::Allow);

    let private_if_given = [identity_policy(
        r#"{"Statement":{"Effect":"Allow","Action":"s3:PutObject","Resource":"*",
            "Condition":{"StringEqualsIfExists":{"s3:x-amz-acl":"private"}}}}"#,
    )];
    let mut public = ConditionKeys::new();
    public.set("s3:x-amz-acl", "public-read");
    let mut private = ConditionKeys::new();
    private.set("s3:x-amz-acl", "private");
    let put = |keys: &ConditionKeys| check(&alice(), "s3:PutObject", "arn:aws:s3:::b/k", keys, &private_if_given, None);
    assert_eq!(put(&no_keys()), Decision::Allow);
    assert_eq!(put(&private), Decision::Allow);
    assert_eq!(put(&public), Decision::ImplicitDeny);

    let small_pages = [identity_policy(
        r#"{"Statement":{"Effect":"Allow","Action":"s3:ListBucket","Resource":"*",
            "Condition":{"NumericLessThanEquals":{"s3:max-keys":10},
                         "DateLessThan":{"aws:CurrentTime":"2027-01-01T00:00:00Z"}}}}"#,
    )];
    let list = |max_keys: &str, now: &str| {
        let mut keys = ConditionKeys::new();
        keys.set("s3:max-keys", max_keys).set("aws:CurrentTime", now);
        check(&alice(), "s3:ListBucket", "arn:aws:s3:::b", &keys, &small_pages, None)
    };
    assert_eq!(list("10", "2026-12-03T15:00:00Z"), Decision::Allow);
    assert_eq!(list("11", "2026-12-03T15:00:00Z"), Decision::ImplicitDeny);
    assert_eq!(list("5", "2027-01-01T00:00:00.001Z"), Decision::ImplicitDeny);
    assert_eq!(list("5", "1798761599"), Decision::Allow, "epoch seconds compare as dates");
}

#[test]
fn the_owners_root_may_always_manage_the_bucket_policy() {
    let lockout = bucket_policy(
        r#"{"Statement":{"Effect":"Deny","Principal":"*","Action":"s3:*","Resource":["arn:aws:s3:::b","arn:aws:s3:::b/*"]}}"#,
    );
    let root = Principal::User(User::root(OWNER));
    for action in ["s3:GetBucketPolicy", "s3:PutBucketPolicy", "s3:DeleteBucketPolicy"] {
        assert_eq!(check(&root, action, "arn:aws:s3:::b", &no_keys(), &[], Some(&lockout)), Decision::Allow);
    }
    assert_eq!(
        check(&root, "s3:GetObject", "arn:aws:s3:::b/k", &no_keys(), &[], Some(&lockout)),
        Decision::ExplicitDeny
    );
    let other_root = Principal::User(User::root(OTHER));
    assert_eq!(
        check(&other_root, "s3:PutBucketPolicy", "arn:aws:s3:::b", &no_keys(), &[], Some(&lockout)),
        Decision::ExplicitDeny
    );
}

#[test]
fn malformed_policies_are_refused_in_s3s_words() {
    let cases = [
        ("not json", "Policies must be valid JSON and the first byte must be '{'"),
        ("[]", "Policies must be valid JSON and the first byte must be '{'"),
        (r#"{"Version":"2012-10-17"}"#, "Missing required field Statement"),
        (r#"{"Statement":[]}"#, "Could not parse the policy: Statement is empty!"),
        (
            r#"{"Statement":{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}}"#,
            "Missing required field Principal",
        ),
        (
            r#"{"Statement":{"Effect":"Maybe","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}}"#,
            "Invalid effect",
        ),
        (
            r#"{"Statement":{"Effect":"Allow","Principal":"*","Action":"s3:GetObjectz","Resource":"arn:aws:s3:::b/*"}}"#,
            "Policy has invalid action",
        ),
        (
            r#"{"Statement":{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"bucket/*"}}"#,
            "Policy has invalid resource",
        ),
        (
            r#"{"Statement":{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b"}}"#,
            "Action does not apply to any resource(s) in statement",
        ),
        (
            r#"{"Statement":{"Effect":"Allow","Principal":{"AWS":"alice"},"Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}}"#,
            "Invalid principal in policy",
        ),
        (
            r#"{"Statement":{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*","Condition":{"StringEqualz":{"s3:prefix":"x"}}}}"#,
            "Invalid Condition type : StringEqualz",
        ),
        (
            r#"{"Statement":{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*","Extra":1}}"#,
            "Unknown field Extra",
        ),
        (
            r#"{"Version":"2020-01-01","Statement":{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}}"#,
            "Invalid policy version",
        ),
    ];
    for (document, message) in cases {
        let refused = Policy::parse(document, PolicyKind::Bucket).expect_err(document);
        assert_eq!(refused.to_string(), message, "{document}");
    }
    let with_principal = r#"{"Statement":{"Effect":"Allow","Principal":"*","Action":"s3:*","Resource":"*"}}"#;
    let refused = Policy::parse(with_principal, PolicyKind::Identity).expect_err("identity policies name no principal");
    assert_eq!(refused.to_string(), "Policy document should not specify a principal.");
}

#[test]
fn a_policy_narrowed_to_known_sources_is_not_public() {
    let narrowed = bucket_policy(
        r#"{"Statement":{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*",
            "Condition":{"IpAddress":{"aws:SourceIp":"192.0.2.0/24"}}}}"#,
    );
    assert!(!narrowed.is_public());
    let everywhere = bucket_policy(
        r#"{"Statement":{"Effect":"Allow","Principal":{"AWS":"*"},"Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*",
            "Condition":{"IpAddress":{"aws:SourceIp":"0.0.0.0/0"}}}}"#,
    );
    assert!(everywhere.is_public());
}

#[test]
fn only_a_condition_on_existing_tags_asks_for_the_objects_tags() {
    let reads = bucket_policy(
        r#"{"Statement":{"Effect":"Deny","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*",
            "Condition":{"StringEqualsIfExists":{"S3:existingobjecttag/Secret":"yes"}}}}"#,
    );
    assert!(reads.reads_existing_object_tags(), "the key's name is matched without regard to case");
    let request_tags = bucket_policy(
        r#"{"Statement":{"Effect":"Allow","Principal":"*","Action":"s3:PutObject","Resource":"arn:aws:s3:::b/*",
            "Condition":{"StringEquals":{"s3:RequestObjectTag/team":"web"}}}}"#,
    );
    assert!(!request_tags.reads_existing_object_tags());
}

#[test]
fn an_object_another_account_owns_is_granted_by_that_account_alone() {
    // Carol's account (OTHER) wrote b/k into the owner's ObjectWriter bucket: the object is
    // OTHER's. Its users decide by their own policies; the bucket's owner needs the object's
    // ACL; the bucket policy can deny but not allow.
    let keys = no_keys();
    let reads = [identity_policy(r#"{"Statement":{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}}"#)];
    let everyone_reads = bucket_policy(
        r#"{"Statement":{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}}"#,
    );
    let deny_carol = bucket_policy(&format!(
        r#"{{"Statement":{{"Effect":"Deny","Principal":{{"AWS":"arn:aws:iam::{OTHER}:user/carol"}},
            "Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}}}}"#
    ));
    let get = |principal: &Principal, identity: &[Policy], bucket: Option<&Policy>, acl: AclGrant| {
        let request = Request { principal, action: "s3:GetObject", resource: "arn:aws:s3:::b/k", keys: &keys };
        let grants =
            Grants { identity, bucket_policy: bucket, resource_owner: Some(OWNER), acl, object_owner: Some(OTHER) };
        decide(&request, &grants)
    };
    let owner_root = Principal::User(User::root(OWNER));
    assert_eq!(get(&stranger(), &reads, None, AclGrant::None), Decision::Allow);
    assert_eq!(get(&stranger(), &[], None, AclGrant::None), Decision::ImplicitDeny);
    assert_eq!(get(&stranger(), &reads, Some(&deny_carol), AclGrant::None), Decision::ExplicitDeny);
    assert_eq!(get(&owner_root, &[], None, AclGrant::None), Decision::ImplicitDeny);
    assert_eq!(get(&owner_root, &[], Some(&everyone_reads), AclGrant::None), Decision::ImplicitDeny);
    assert_eq!(get(&owner_root, &[], None, AclGrant::RequesterAccount), Decision::Allow);
    assert_eq!(get(&alice(), &reads, None, AclGrant::RequesterAccount), Decision::Allow);
    assert_eq!(get(&alice(), &[], None, AclGrant::RequesterAccount), Decision::ImplicitDeny);
    assert_eq!(get(&Principal::Anonymous, &[], Some(&everyone_reads), AclGrant::None), Decision::ImplicitDeny);
    assert_eq!(get(&Principal::Anonymous, &[], None, AclGrant::Everyone), Decision::Allow);
}

/// Found by an attacker's pass: a grant to everyone under a condition that narrows nothing
/// (`Null`, a negated operator, an `…IfExists`, address blocks that cover the internet
/// between them) passed for private: `BlockPublicPolicy` let it in, `RestrictPublicBuckets`
/// let anonymous readers through and `GetBucketPolicyStatus` said it was not public.
#[test]
fn only_a_positive_condition_with_fixed_values_on_a_trusted_key_makes_a_grant_to_everyone_private() {
    let granted_if = |condition: &str| {
        bucket_policy(&format!(
            r#"{{"Statement":{{"Effect":"Allow","Principal":"*","Action":"s3:GetObject",
                "Resource":"arn:aws:s3:::b/*","Condition":{condition}}}}}"#
        ))
    };
    let public = [
        r#"{"Null":{"aws:PrincipalAccount":"true"}}"#,
        r#"{"NotIpAddress":{"aws:SourceIp":"192.0.2.1/32"}}"#,
        r#"{"StringNotEquals":{"aws:PrincipalAccount":"111111111111"}}"#,
        r#"{"StringEqualsIfExists":{"aws:PrincipalAccount":"111111111111"}}"#,
        r#"{"IpAddress":{"aws:SourceIp":["0.0.0.0/1","128.0.0.0/1"]}}"#,
        r#"{"ForAllValues:StringEquals":{"aws:PrincipalAccount":"111111111111"}}"#,
        r#"{"ArnNotLike":{"aws:SourceArn":"arn:aws:sns:us-east-1:111111111111:topic"}}"#,
        // Broader than a /8 (a /32 in IPv6), whole or in pieces.
        r#"{"IpAddress":{"aws:SourceIp":"10.0.0.0/7"}}"#,
        r#"{"IpAddress":{"aws:SourceIp":"2001:db8::/31"}}"#,
        r#"{"IpAddress":{"aws:SourceIp":["8.0.0.0/8","9.0.0.0/8"]}}"#,
        // Not fixed: a wildcard or a policy variable.
        r#"{"StringLike":{"aws:PrincipalAccount":"1111*"}}"#,
        r#"{"ArnLike":{"aws:SourceArn":"arn:aws:sns:*:111111111111:topic"}}"#,
        r#"{"StringEquals":{"aws:PrincipalAccount":"${aws:PrincipalAccount}"}}"#,
        // Keys that name nobody anyone trusts; a KMS key id is any requester's to send here.
        r#"{"StringEquals":{"aws:UserAgent":"curl/8.0"}}"#,
        r#"{"StringEquals":{"s3:x-amz-server-side-encryption-aws-kms-key-id":"alias/builds"}}"#,
    ];
    let wrongly_private: Vec<_> = public.iter().filter(|c| !granted_if(c).is_public()).collect();
    assert!(wrongly_private.is_empty(), "public, yet judged private: {wrongly_private:#?}");

    let private = [
        r#"{"StringEquals":{"aws:PrincipalAccount":"111111111111"}}"#,
        r#"{"StringEqualsIgnoreCase":{"aws:PrincipalOrgID":"o-a1b2c3d4e5"}}"#,
        r#"{"StringLike":{"aws:userid":"AIDAEXAMPLEEXAMPLE1"}}"#,
        r#"{"ArnEquals":{"aws:PrincipalArn":"arn:aws:iam::111111111111:user/alice"}}"#,
        r#"{"ArnLike":{"aws:SourceArn":"arn:aws:sns:us-east-1:111111111111:topic"}}"#,
        r#"{"ForAnyValue:StringEquals":{"aws:SourceVpce":"vpce-1a2b3c4d"}}"#,
        r#"{"IpAddress":{"aws:SourceIp":"11.0.0.0/8"}}"#,
        r#"{"IpAddress":{"aws:SourceIp":["10.0.0.0/8","172.16.0.0/12","192.168.0.0/16","198.51.100.0/24"]}}"#,
        r#"{"IpAddress":{"aws:SourceIp":"2001:db8::/32"}}"#,
        // A statement's conditions must all hold: one that narrows is enough.
        r#"{"Null":{"aws:PrincipalAccount":"false"},"StringEquals":{"aws:SourceAccount":"111111111111"}}"#,
    ];
    let wrongly_public: Vec<_> = private.iter().filter(|c| granted_if(c).is_public()).collect();
    assert!(wrongly_public.is_empty(), "private, yet judged public: {wrongly_public:#?}");
}

/// Found by an attacker's pass: `aws:userid` was the user's bare name, so a home folder keyed
/// on it was shared by same-named users of different accounts. It is the user's unique id
/// (`AIDA…`, as IAM's `GetUser` reports it), and a root user's account id, as on AWS.
#[test]
fn aws_userid_tells_same_named_users_of_two_accounts_apart() {
    let keys = no_keys();
    let userid = |principal: &Principal| {
        let request = Request { principal, action: "s3:GetObject", resource: "*", keys: &keys };
        request.values("aws:userid").and_then(|values| values.first().map(|v| (*v).to_owned())).expect("a user id")
    };
    let ours = alice();
    let theirs = Principal::User(User::new(OTHER, "alice"));
    let (our_id, their_id) = (userid(&ours), userid(&theirs));
    assert_ne!(our_id, their_id);
    assert!(our_id.starts_with("AIDA") && our_id.len() == 21, "{our_id}");
    assert_eq!(userid(&Principal::User(User::root(OWNER))), OWNER);

    let homes = bucket_policy(&format!(
        r#"{{"Version":"2012-10-17","Statement":{{"Effect":"Allow","Principal":{{"AWS":["{OWNER}","{OTHER}"]}},"Action":"s3:GetObject",
            "Resource":"arn:aws:s3:::b/home/${{aws:userid}}/*"}}}}"#
    ));
    let reads = [identity_policy(r#"{"Statement":{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}}"#)];
    let get = |who: &Principal, key: &str| {
        check(who, "s3:GetObject", &format!("arn:aws:s3:::b/{key}"), &keys, &reads, Some(&homes))
    };
    assert_eq!(get(&theirs, "home/alice/notes"), Decision::ImplicitDeny);
    assert_eq!(get(&theirs, &format!("home/{our_id}/notes")), Decision::ImplicitDeny);
    assert_eq!(get(&theirs, &format!("home/{their_id}/notes")), Decision::Allow);
}

/// Found by an attacker's pass: a `NotPrincipal` naming an account exempted every user of it
/// from the `Deny`. AWS checks the account and then the user against the list, so the
/// account's ARN exempts its root user alone, and a user is exempt only when both it and its
/// account are listed.
#[test]
fn not_principal_exempts_a_user_only_when_it_lists_both_the_user_and_its_account() {
    let everything = [identity_policy(r#"{"Statement":{"Effect":"Allow","Action":"s3:*","Resource":"*"}}"#)];
    let deny_all_but = |listed: &str| {
        bucket_policy(&format!(
            r#"{{"Statement":{{"Effect":"Deny","NotPrincipal":{{"AWS":[{listed}]}},"Action":"s3:*",
                "Resource":["arn:aws:s3:::b","arn:aws:s3:::b/*"]}}}}"#
        ))
    };
    let get = |who: &Principal, policy: &Policy| {
        check(who, "s3:GetObject", "arn:aws:s3:::b/k", &no_keys(), &everything, Some(policy))
    };
    let root = Principal::User(User::root(OWNER));

    for account in [format!(r#""arn:aws:iam::{OWNER}:root""#), format!(r#""{OWNER}""#)] {
        let account = deny_all_but(&account);
        assert_eq!(get(&root, &account), Decision::Allow);
        assert_eq!(get(&alice(), &account), Decision::ExplicitDeny);
        assert_eq!(get(&Principal::Anonymous, &account), Decision::ExplicitDeny);
    }
    let alice_and_account = deny_all_but(&format!(r#""arn:aws:iam::{OWNER}:user/alice","arn:aws:iam::{OWNER}:root""#));
    assert_eq!(get(&alice(), &alice_and_account), Decision::Allow);
    assert_eq!(get(&root, &alice_and_account), Decision::Allow);
    assert_eq!(get(&bob(), &alice_and_account), Decision::ExplicitDeny);
    // Alice's ARN alone: her account is not exempt, so neither is she.
    let alice_alone = deny_all_but(&format!(r#""arn:aws:iam::{OWNER}:user/alice""#));
    assert_eq!(get(&alice(), &alice_alone), Decision::ExplicitDeny);
    assert_eq!(get(&root, &alice_alone), Decision::ExplicitDeny);
    // Another account's user with the same name is not the listed user.
    let namesake = Principal::User(User::new(OTHER, "alice"));
    let other_account = deny_all_but(&format!(r#""arn:aws:iam::{OWNER}:user/alice","{OTHER}""#));
    assert_eq!(get(&namesake, &other_account), Decision::ExplicitDeny);
}
