//! Who may do what: every S3 request is decided by the registry's policy evaluator
//! ([`registry::policy`]) before its body is read.
//!
//! The principal comes from the signature: the configured root access key is the root user
//! of the root account; a key the registry holds (`key create`, `aws iam create-access-key`)
//! is its user, allowed what the user's inline policies allow (an account's root user is
//! allowed everything in its own account); each `[[auth.users]]` key is a user of the root
//! account named by its access key, with an identity policy that allows everything (what
//! configured keys could always do). An unsigned request is the anonymous principal. The
//! bucket's policy speaks on every request to the bucket: it can deny any user (except that
//! the owner's root may always manage the policy itself) and grant access to other accounts
//! and to everyone. A bucket is owned by the account of the key that created it.
//!
//! The root account's id is derived from the root access key (12 digits) on the first start
//! and recorded with the account, so that policies naming it keep naming it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use registry::Registry;
use registry::acl;
use registry::acl::{ObjectAcl, Ownership};
use registry::event::v1::AclEntry;
use registry::policy::{self, AclGrant, ConditionKeys, Decision, Grants, Policy, PolicyKind, Principal, Request};
use registry::state::ROOT_ACCOUNT;
use s3s::access::{S3Access, S3AccessContext};
use s3s::dto::{
    DeleteObjectsInput, PutObjectInput, PutObjectLegalHoldInput, PutObjectRetentionInput, PutObjectTaggingInput,
    Timestamp, TimestampFormat,
};
use s3s::path::S3Path;
use s3s::{S3Request, S3Result, s3_error};

use super::{Users, key_holder};
use crate::client_addr::ClientAddr;
use crate::request::{DeniedDeletes, MaySetBucketAcl, MissingKeyHidden, WriterOwns};

/// The access hook s3s calls for every request.
#[derive(Clone)]
pub struct Access {
    users: Users,
    buckets: BucketGrants,
    registry: Registry,
    /// The root account's id.
    account: String,
    /// How `aws:SecureTransport` is decided.
    secure_transport: SecureTransport,
    /// What every configured user may do by itself: everything.
    allow_all: Arc<[Policy]>,
}

/// Who signed a request, as the hook found it; handlers read it from the request's
/// extensions (ListBuckets lists the requester's account's buckets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requester {
    /// The account's name.
    pub account: String,
    /// The account's id (12 digits).
    pub id: String,
}

/// What a request's condition keys will decide: for whom, under which bucket's grants, which
/// action (and `also` these, with the same keys) on which resource.
#[derive(Clone, Copy)]
struct Decided<'a> {
    identity: &'a Identity,
    grant: &'a BucketGrant,
    action: &'a str,
    also: &'a [&'a str],
    resource: &'a str,
}

/// A request's principal and the identity policies that speak for it.
struct Identity {
    principal: Principal,
    policies: Arc<[Policy]>,
    requester: Option<Requester>,
}

impl Access {
    /// The hook for `users` and the registry's keys, deciding with the bucket grants of
    /// `buckets`; `account` is the root account's id.
    #[must_use]
    pub fn new(
        users: Users,
        buckets: BucketGrants,
        registry: Registry,
        account: String,
        secure_transport: SecureTransport,
    ) -> Self {
        let allow_all =
            Policy::parse(r#"{"Statement":{"Effect":"Allow","Action":"*","Resource":"*"}}"#, PolicyKind::Identity)
                .expect("the allow-all policy parses");
        Access { users, buckets, registry, account, secure_transport, allow_all: Arc::from([allow_all]) }
    }

    /// The principal of a request signed with `access_key`, or the anonymous one.
    async fn identity(&self, access_key: Option<&str>) -> S3Result<Identity> {
        let root_account = || Some(Requester { account: ROOT_ACCOUNT.to_owned(), id: self.account.clone() });
        let Some(key) = access_key else {
            return Ok(Identity { principal: Principal::Anonymous, policies: Arc::from([]), requester: None });
        };
        match self.users.get(key) {
            Some(user) if user.root => {
                return Ok(Identity {
                    principal: Principal::User(policy::User::root(&self.account)),
                    policies: Arc::from([]),
                    requester: root_account(),
                });
            }
            Some(_) => {
                return Ok(Identity {
                    principal: Principal::User(policy::User::new(&self.account, key)),
                    policies: Arc::clone(&self.allow_all),
                    requester: root_account(),
                });
            }
            None => {}
        }
        // A key the registry holds: s3s checked its signature with the registry's secret.
        let holder = key_holder(&self.registry, key)
            .await
            .map_err(|err| s3s::S3Error::from(crate::s3::error::Error::from(err)))?;
        let Some(holder) = holder else {
            return Err(s3_error!(
                InvalidAccessKeyId,
                "The AWS Access Key Id you provided does not exist in our records."
            ));
        };
        Ok(Identity {
            principal: Principal::User(policy::User::named(&holder.account.id, &holder.user)),
            policies: holder.policies.into(),
            requester: Some(Requester { account: holder.account.name, id: holder.account.id.clone() }),
        })
    }

    /// Decides `action` on `resource` under the bucket's grants.
    fn decide(
        &self,
        identity: &Identity,
        bucket: &BucketGrant,
        action: &str,
        resource: &str,
        keys: &ConditionKeys,
    ) -> S3Result<()> {
        self.decide_with(identity, bucket, action, resource, keys, &ObjectAcl::default())
    }

    /// [`Access::decide`], with the object's ACL for the actions its owner grants
    /// ([`Access::object_acl`]).
    fn decide_with(
        &self,
        identity: &Identity,
        bucket: &BucketGrant,
        action: &str,
        resource: &str,
        keys: &ConditionKeys,
        object_acl: &ObjectAcl,
    ) -> S3Result<()> {
        match self.refusal(identity, bucket, action, resource, keys, object_acl) {
            None => Ok(()),
            Some(Refusal::Restricted) => {
                tracing::info!(code = "AccessDenied", action, resource, "refused: the bucket restricts public access");
                Err(s3_error!(AccessDenied, "Access Denied"))
            }
            Some(Refusal::Policy(decision)) => {
                tracing::info!(code = "AccessDenied", action, resource, ?decision, "request refused by policy");
                Err(s3_error!(AccessDenied, "Access Denied"))
            }
        }
    }

    /// Why `identity` may not take `action` on `resource`, if it may not; decided as
    /// [`Access::decide_with`] decides, without refusing anything.
    fn refusal(
        &self,
        identity: &Identity,
        bucket: &BucketGrant,
        action: &str,
        resource: &str,
        keys: &ConditionKeys,
        object_acl: &ObjectAcl,
    ) -> Option<Refusal> {
        let principal = &identity.principal;
        // RestrictPublicBuckets: while the policy is public, anyone outside the owner's
        // account (anonymous included) is refused whatever the policy grants.
        if bucket.restricted {
            let insider = matches!(principal, Principal::User(user) if bucket.owner.as_deref() == Some(user.account()));
            if !insider {
                return Some(Refusal::Restricted);
            }
        }
        let request = Request { principal, action, resource, keys };
        // A bucket that does not exist is owned by no one yet: the requester's own account
        // decides (CreateBucket, or a request the handler answers with NoSuchBucket).
        let resource_owner = match (&bucket.owner, principal) {
            (Some(owner), _) => Some(owner.as_str()),
            (None, Principal::User(user)) => Some(user.account()),
            (None, Principal::Anonymous) => None,
        };
        let acl = if bucket.acl.is_empty() && object_acl.grants.is_empty() {
            AclGrant::None
        } else {
            let account = match principal {
                Principal::User(user) => Some(policy::canonical_id(user.account())),
                Principal::Anonymous => None,
            };
            let requester = account.as_deref().map_or(acl::Requester::Anonymous, acl::Requester::Account);
            let public = !bucket.ignore_public_acls;
            match acl::bucket_grant(&bucket.acl, action, requester, public) {
                AclGrant::None => acl::object_grant(&object_acl.grants, action, requester, public),
                granted => granted,
            }
        };
        // An object another account owns is that account's to grant (read only where ACLs
        // are enabled, for the actions its owner grants).
        let object_owner = object_acl.owner.as_deref().filter(|owner| bucket.owner.as_deref() != Some(*owner));
        let grants = Grants {
            identity: &identity.policies,
            bucket_policy: bucket.policy.as_ref(),
            resource_owner,
            acl,
            object_owner,
        };
        match policy::decide(&request, &grants) {
            Decision::Allow => None,
            decision => Some(Refusal::Policy(decision)),
        }
    }

    /// The account of a request signed with `access_key`: whose buckets it lists.
    ///
    /// # Errors
    /// `InvalidAccessKeyId`, or a registry read refused.
    pub async fn requester(&self, access_key: &str) -> S3Result<Option<Requester>> {
        Ok(self.identity(Some(access_key)).await?.requester)
    }

    /// The condition keys of a request head, from where it came from (`client`): for
    /// S3 operations and registry API calls.
    #[must_use]
    pub fn request_keys(
        &self,
        client: Option<ClientAddr>,
        headers: &http::HeaderMap,
        uri: &http::Uri,
    ) -> ConditionKeys {
        condition_keys(self.secure_transport, client, headers, uri)
    }
}

/// The reads of an object (its bytes, attributes or settings), whose answer for a key that
/// does not exist depends on whether the requester may list the bucket.
fn is_object_read(op: &str) -> bool {
    matches!(
        op,
        "GetObject"
            | "HeadObject"
            | "GetObjectAttributes"
            | "GetObjectTagging"
            | "GetObjectAcl"
            | "GetObjectRetention"
            | "GetObjectLegalHold"
    )
}

/// Why an action was refused ([`Access::refusal`]).
enum Refusal {
    /// The bucket restricts public access, and the requester is outside its owner's account.
    Restricted,
    /// The policies and ACLs did not allow it.
    Policy(Decision),
}

/// How a request's `aws:SecureTransport` is decided.
#[derive(Debug, Clone, Copy)]
pub struct SecureTransport {
    /// The gateway serves HTTPS.
    pub tls: bool,
    /// `server.trust_forwarded_proto`: on a trusted proxy's connection, the proxy's
    /// `X-Forwarded-Proto` decides instead (it ends the client's TLS, or says it had none).
    pub forwarded_proto: bool,
}

impl SecureTransport {
    /// How the server's configuration decides whether a request came over HTTPS.
    #[must_use]
    pub fn of(server: &crate::config::ServerConfig) -> Self {
        Self { tls: server.tls_enabled(), forwarded_proto: server.trust_forwarded_proto }
    }

    /// Whether a request from `client` came over HTTPS.
    #[must_use]
    pub fn is_secure(self, client: Option<ClientAddr>) -> bool {
        match client.and_then(|client| client.proxy_said_https) {
            Some(said_https) if self.forwarded_proto => said_https,
            _ => self.tls,
        }
    }
}

/// The condition keys of a request head, from where it came from (`client`, and
/// whether it is TLS): for S3 operations, the registry API and IAM calls alike.
#[must_use]
pub fn condition_keys(
    secure_transport: SecureTransport,
    client: Option<ClientAddr>,
    headers: &http::HeaderMap,
    uri: &http::Uri,
) -> ConditionKeys {
    let mut keys = ConditionKeys::new();
    let now = crate::clock::now_ms();
    keys.set("aws:CurrentTime", crate::clock::rfc3339(now)).set("aws:EpochTime", (now / 1000).to_string());
    keys.set("aws:SecureTransport", secure_transport.is_secure(client).to_string());
    if let Some(client) = client {
        keys.set("aws:SourceIp", client.ip.to_canonical().to_string());
    }
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    for (key, name) in [
        ("aws:UserAgent", "user-agent"),
        ("aws:Referer", "referer"),
        ("s3:x-amz-acl", "x-amz-acl"),
        ("s3:x-amz-metadata-directive", "x-amz-metadata-directive"),
        ("s3:x-amz-server-side-encryption", "x-amz-server-side-encryption"),
        ("s3:x-amz-server-side-encryption-aws-kms-key-id", "x-amz-server-side-encryption-aws-kms-key-id"),
        ("s3:x-amz-server-side-encryption-customer-algorithm", "x-amz-server-side-encryption-customer-algorithm"),
        ("s3:x-amz-content-sha256", "x-amz-content-sha256"),
        ("s3:x-amz-storage-class", "x-amz-storage-class"),
        ("s3:object-lock-mode", "x-amz-object-lock-mode"),
        ("s3:object-lock-retain-until-date", "x-amz-object-lock-retain-until-date"),
        ("s3:object-lock-legal-hold", "x-amz-object-lock-legal-hold"),
        ("s3:x-amz-grant-read", "x-amz-grant-read"),
        ("s3:x-amz-grant-write", "x-amz-grant-write"),
        ("s3:x-amz-grant-read-acp", "x-amz-grant-read-acp"),
        ("s3:x-amz-grant-write-acp", "x-amz-grant-write-acp"),
        ("s3:x-amz-grant-full-control", "x-amz-grant-full-control"),
    ] {
        if let Some(value) = header(name) {
            keys.set(key, value);
        }
    }
    // The source a copy reads, decoded (`/b/k`, `b/%6B` and `b%2Fk` all read `b/k`), as a
    // condition on it must see it: the header as sent would let another spelling past it.
    if let Some((bucket, key, version_id)) = header("x-amz-copy-source").and_then(copy_source) {
        let source = match version_id {
            Some(id) => format!("{bucket}/{key}?versionId={id}"),
            None => format!("{bucket}/{key}"),
        };
        keys.set("s3:x-amz-copy-source", source);
    }
    // How far the retention a write asks for reaches, as AWS supplies it for a bound on it.
    if let Some(until) = header("x-amz-object-lock-retain-until-date")
        .and_then(|date| Timestamp::parse(TimestampFormat::DateTime, date).ok())
    {
        keys.set(REMAINING_RETENTION_DAYS, remaining_days(&until, now));
    }
    if let Some(tagging) = header("x-amz-tagging") {
        request_tags(
            &mut keys,
            form_urlencoded::parse(tagging.as_bytes()).map(|(k, v)| (k.into_owned(), v.into_owned())),
        );
    }
    let query = uri.query().unwrap_or("");
    for (name, key) in [
        ("prefix", "s3:prefix"),
        ("delimiter", "s3:delimiter"),
        ("max-keys", "s3:max-keys"),
        ("versionId", "s3:VersionId"),
    ] {
        if let Some(value) = query_value(query, name) {
            keys.set(key, value);
        }
    }
    // How long ago a SigV4 request was signed, for a bound on how old a presigned URL may be.
    let signed = header("x-amz-date").map(str::to_owned).or_else(|| query_value(query, "X-Amz-Date"));
    if let Some(signed) = signed.as_deref().and_then(super::request_checks::parse_amz_date) {
        let signed_ms = signed.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis());
        let age = u128::try_from(now).unwrap_or(0).saturating_sub(signed_ms);
        keys.set("s3:signatureAge", age.to_string());
    }
    let (signature_version, auth_type) = if header("authorization").is_some_and(|a| a.starts_with("AWS4-")) {
        (Some("AWS4-HMAC-SHA256"), Some("REST-HEADER"))
    } else if header("authorization").is_some() {
        (Some("AWS"), Some("REST-HEADER"))
    } else if query.contains("X-Amz-Signature=") {
        (Some("AWS4-HMAC-SHA256"), Some("REST-QUERY-STRING"))
    } else if query.contains("Signature=") {
        (Some("AWS"), Some("REST-QUERY-STRING"))
    } else {
        (None, None)
    };
    if let Some(version) = signature_version {
        keys.set("s3:signatureversion", version);
    }
    if let Some(auth_type) = auth_type {
        keys.set("s3:authType", auth_type);
    }
    keys
}

/// The condition key of how many days a retention asked for has left.
const REMAINING_RETENTION_DAYS: &str = "s3:object-lock-remaining-retention-days";

/// The Object Lock keys a write takes from its `x-amz-object-lock-*` headers, which
/// PutObjectRetention and PutObjectLegalHold take from their bodies instead.
const OBJECT_LOCK_KEYS: [&str; 4] =
    ["s3:object-lock-mode", "s3:object-lock-retain-until-date", "s3:object-lock-legal-hold", REMAINING_RETENTION_DAYS];

/// Whole days from `now_ms` until `until`, a part of a day counted as one; none once past.
fn remaining_days(until: &Timestamp, now_ms: i64) -> String {
    let left = u64::try_from(crate::s3::wire::millis(until).saturating_sub(now_ms)).unwrap_or(0);
    left.div_ceil(registry::lifecycle::DAY_MS.unsigned_abs()).to_string()
}

/// `s3:RequestObjectTag/<key>` for each tag a request sets, and `s3:RequestObjectTagKeys`.
fn request_tags(keys: &mut ConditionKeys, tags: impl IntoIterator<Item = (String, String)>) {
    let mut names = Vec::new();
    for (name, value) in tags {
        keys.set(&format!("s3:RequestObjectTag/{name}"), value);
        names.push(name);
    }
    keys.set_all("s3:RequestObjectTagKeys", names);
}

impl Access {
    /// `x-amz-expected-bucket-owner` (and `x-amz-source-expected-bucket-owner` for a copy's
    /// source): a caller's check that the bucket belongs to the account it names. AWS answers
    /// 403 `AccessDenied` when it does not; a bucket that does not exist is left to the
    /// handler (`NoSuchBucket`).
    async fn check_expected_owners(&self, op: &str, cx: &S3AccessContext<'_>) -> S3Result<()> {
        // A value that is not text names no account: it cannot match, rather than be skipped.
        let header = |name: &str| cx.headers().get(name).map(|v| v.to_str().unwrap_or("\u{fffd}"));
        let target = match cx.s3_path() {
            S3Path::Bucket { bucket } | S3Path::Object { bucket, .. } if op != "CreateBucket" => {
                Some(bucket.to_string())
            }
            _ => None,
        };
        let source = cx
            .headers()
            .get("x-amz-copy-source")
            .and_then(|v| v.to_str().ok())
            .and_then(copy_source)
            .map(|(bucket, _, _)| bucket);
        for (expected, bucket) in
            [(header("x-amz-expected-bucket-owner"), target), (header("x-amz-source-expected-bucket-owner"), source)]
        {
            let (Some(expected), Some(bucket)) = (expected, bucket) else { continue };
            let owner = self.buckets.get(&bucket).await?.owner.clone();
            if owner.is_some_and(|owner| owner != expected) {
                tracing::info!(
                    code = "AccessDenied",
                    bucket,
                    expected,
                    "refused: the bucket's owner is not the expected one"
                );
                return Err(s3_error!(AccessDenied, "Access Denied"));
            }
        }
        Ok(())
    }

    /// Re-creating a bucket one's account owns resets its ACL in us-east-1: the handler does
    /// it only when the requester may set that bucket's ACL ([`MaySetBucketAcl`]).
    async fn mark_acl_reset(
        &self,
        identity: &Identity,
        bucket: &str,
        resource: &str,
        cx: &mut S3AccessContext<'_>,
    ) -> S3Result<()> {
        let existing = self.buckets.get(bucket).await?;
        let owned = existing.owner.is_some()
            && identity.requester.as_ref().is_some_and(|r| existing.owner.as_deref() == Some(r.id.as_str()));
        if !owned {
            return Ok(());
        }
        let client = cx.extensions_mut().get::<ClientAddr>().copied();
        let keys = self.request_keys(client, cx.headers(), cx.uri());
        if self.decide(identity, &existing, "s3:PutBucketAcl", resource, &keys).is_ok() {
            cx.extensions_mut().insert(MaySetBucketAcl);
        }
        Ok(())
    }

    /// Adds `s3:ExistingObjectTag/<key>` for each tag of the object a request names (the
    /// version it names, else the latest), when a statement that could decide it reads them
    /// (`policy::evaluate::needs_existing_object_tags`): the object's record is read only then.
    async fn existing_tags(
        &self,
        keys: &mut ConditionKeys,
        decided: Decided<'_>,
        object: (&str, &str),
        version_id: Option<&str>,
    ) -> S3Result<()> {
        let request = Request {
            principal: &decided.identity.principal,
            action: decided.action,
            resource: decided.resource,
            keys,
        };
        let grants = Grants {
            identity: &decided.identity.policies,
            bucket_policy: decided.grant.policy.as_ref(),
            ..Grants::default()
        };
        if !policy::evaluate::needs_existing_object_tags(&request, decided.also, &grants) {
            return Ok(());
        }
        let (bucket, key, version_id) = (object.0.to_owned(), object.1.to_owned(), version_id.map(str::to_owned));
        let version = self
            .registry
            .read(move |reads| match version_id {
                Some(id) => reads.version(&bucket, &key, &id),
                None => reads.latest_version(&bucket, &key),
            })
            .await
            .map_err(|err| s3s::S3Error::from(crate::s3::error::Error::from(err)))?;
        for (name, value) in version.filter(|v| !v.is_delete_marker).map(|v| v.content.tags).unwrap_or_default() {
            keys.set(&format!("s3:ExistingObjectTag/{name}"), value);
        }
        Ok(())
    }

    /// A write that sets its object's ACL or tags needs `s3:PutObjectAcl` or
    /// `s3:PutObjectTagging` too, as on AWS: write permission alone must not publish an object
    /// or set the tags other policies trust. An ACL of the owner's full control alone
    /// (`private`, `bucket-owner-full-control`) asks for nothing more. One that sets Object Lock
    /// retention or a legal hold needs `s3:PutObjectRetention` or `s3:PutObjectLegalHold`, as
    /// those actions do: write permission alone must not make a version that nobody, the
    /// account's root included, may delete before a date of the writer's choosing.
    fn decide_write_extras(
        &self,
        identity: &Identity,
        grant: &BucketGrant,
        headers: &http::HeaderMap,
        resource: &str,
        keys: &ConditionKeys,
    ) -> S3Result<()> {
        let canned = headers.get("x-amz-acl").and_then(|v| v.to_str().ok());
        let sets_acl = canned.is_some_and(|acl| acl != "private" && acl != "bucket-owner-full-control")
            || headers.keys().any(|name| name.as_str().starts_with("x-amz-grant-"));
        if sets_acl {
            self.decide(identity, grant, "s3:PutObjectAcl", resource, keys)?;
        }
        if headers.contains_key("x-amz-tagging") {
            self.decide(identity, grant, "s3:PutObjectTagging", resource, keys)?;
        }
        if headers.contains_key("x-amz-object-lock-mode") || headers.contains_key("x-amz-object-lock-retain-until-date")
        {
            self.decide(identity, grant, "s3:PutObjectRetention", resource, keys)?;
        }
        if headers.contains_key("x-amz-object-lock-legal-hold") {
            self.decide(identity, grant, "s3:PutObjectLegalHold", resource, keys)?;
        }
        Ok(())
    }

    /// The ACL of the object a request names (the version it names, else the latest), for
    /// `action` on a bucket whose ownership enables ACLs and an action the object's owner
    /// grants; empty otherwise, with no read.
    async fn object_acl(
        &self,
        grant: &BucketGrant,
        action: &str,
        (bucket, key): (&str, &str),
        version_id: Option<&str>,
    ) -> S3Result<ObjectAcl> {
        if !grant.acls_enabled() || !acl::granted_by_object_owner(action) {
            return Ok(ObjectAcl::default());
        }
        let (bucket, key, version_id) = (bucket.to_owned(), key.to_owned(), version_id.map(str::to_owned));
        self.registry
            .read(move |reads| {
                let id = match version_id {
                    Some(id) => id,
                    None => match reads.latest_version(&bucket, &key)? {
                        Some(latest) => latest.version_id,
                        None => return Ok(ObjectAcl::default()),
                    },
                };
                reads.object_acl(&bucket, &key, &id)
            })
            .await
            .map_err(|err| s3s::S3Error::from(crate::s3::error::Error::from(err)))
    }

    /// Decides a request that is not an S3 operation (the registry API, the console) as
    /// `action` on `resource`, under `bucket`'s grants when it names one, with the request's
    /// `keys` ([`Access::request_keys`]). An object's resource is decided with its tags
    /// (`s3:ExistingObjectTag/...`) and ACL, those of `version_id` when given, else its
    /// latest version's.
    ///
    /// # Errors
    /// `AccessDenied`, `InvalidAccessKeyId`, or a registry read refused.
    pub async fn authorize(
        &self,
        access_key: Option<&str>,
        action: &str,
        bucket: Option<&str>,
        resource: &str,
        keys: &ConditionKeys,
        version_id: Option<&str>,
    ) -> S3Result<()> {
        let identity = self.identity(access_key).await?;
        // `s3:VersionId` is the version decided on, as for an S3 read of it: a `versionId` in
        // the request's query (a console page's, a registry call's) names nothing here, and
        // would let one version's Allow or Deny decide another.
        let mut keys = keys.clone();
        match version_id {
            Some(id) => keys.set("s3:VersionId", id),
            None => keys.remove("s3:VersionId"),
        };
        let grant = match bucket {
            Some(bucket) => self.buckets.get(bucket).await?,
            None => Arc::default(),
        };
        // What names no existing bucket (the whole log, a deleted bucket's records) is the
        // gateway's, the root account's: another account's users never read it, whatever
        // their own policies say. A list of one's buckets is one's own account's, as S3's
        // ListBuckets is decided.
        let grant = if grant.owner.is_none() && action != "s3:ListAllMyBuckets" {
            Arc::new(BucketGrant { owner: Some(self.account.clone()), ..BucketGrant::default() })
        } else {
            grant
        };
        // An object's records are decided as a read of the object (its latest version):
        // one another account owns is that account's to grant.
        let object = bucket
            .and_then(|bucket| Some((bucket, resource.strip_prefix("arn:aws:s3:::")?.strip_prefix(bucket)?)))
            .and_then(|(bucket, rest)| Some((bucket, rest.strip_prefix('/')?)));
        let Some(object) = object else {
            return self.decide_with(&identity, &grant, action, resource, &keys, &ObjectAcl::default());
        };
        let object_acl = self.object_acl(&grant, action, object, version_id).await?;
        let decided = Decided { identity: &identity, grant: &grant, action, also: &[], resource };
        self.existing_tags(&mut keys, decided, object, version_id).await?;
        self.decide_with(&identity, &grant, action, resource, &keys, &object_acl)
    }
}

/// What a request's decision reads of its head, beside the operation's input.
struct RequestHead<'a> {
    access_key: Option<&'a str>,
    client: Option<ClientAddr>,
    headers: &'a http::HeaderMap,
    uri: &'a http::Uri,
}

impl<'a> RequestHead<'a> {
    fn of<T>(req: &'a S3Request<T>) -> Self {
        Self {
            access_key: req.credentials.as_ref().map(|c| c.access_key.as_str()),
            client: req.extensions.get::<ClientAddr>().copied(),
            headers: &req.headers,
            uri: &req.uri,
        }
    }
}

impl Access {
    /// A change of a version's lock, `op` on `object`, decided with the Object Lock keys its
    /// body sets (`body_keys`) in place of any from headers; and `also` (governance bypass),
    /// with the same keys.
    async fn decide_lock_change(
        &self,
        request: RequestHead<'_>,
        op: &str,
        (bucket, key): (&str, &str),
        version_id: Option<&str>,
        body_keys: Vec<(&'static str, String)>,
        also: &[&str],
    ) -> S3Result<()> {
        let identity = self.identity(request.access_key).await?;
        let grant = self.buckets.get(bucket).await?;
        let mut keys = self.request_keys(request.client, request.headers, request.uri);
        for name in OBJECT_LOCK_KEYS {
            keys.remove(name);
        }
        for (name, value) in body_keys {
            keys.set(name, value);
        }
        let action = action_of(op, version_id.is_some());
        let resource = format!("arn:aws:s3:::{bucket}/{key}");
        let decided = Decided { identity: &identity, grant: &grant, action: &action, also, resource: &resource };
        self.existing_tags(&mut keys, decided, (bucket, key), version_id).await?;
        let object_acl = self.object_acl(&grant, &action, (bucket, key), version_id).await?;
        self.decide_with(&identity, &grant, &action, &resource, &keys, &object_acl)?;
        also.iter().try_for_each(|action| self.decide(&identity, &grant, action, &resource, &keys))
    }
}

#[async_trait]
impl S3Access for Access {
    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        let op = cx.s3_op().name().to_owned();
        let identity = self.identity(cx.credentials().map(|c| c.access_key.as_str())).await?;
        if let Some(requester) = &identity.requester {
            cx.extensions_mut().insert(requester.clone());
        }
        self.check_expected_owners(&op, cx).await?;
        if matches!(
            op.as_str(),
            "DeleteObjects" | "PostObject" | "PutObjectTagging" | "PutObjectLegalHold" | "PutObjectRetention"
        ) {
            // What they are decided on is in the body: decided once it is read (below). But a
            // body is read into memory first (up to 8 MiB), so an anonymous request that nothing
            // of an existing bucket could allow is refused now, before a byte of it is held.
            if op != "PostObject"
                && matches!(identity.principal, Principal::Anonymous)
                && let S3Path::Bucket { bucket } | S3Path::Object { bucket, .. } = cx.s3_path()
            {
                let grant = self.buckets.get(bucket).await?;
                let open = grant.policy.is_some() || !grant.acl.is_empty();
                if grant.owner.is_some() && (!open || grant.restricted) {
                    tracing::info!(code = "AccessDenied", op, bucket = %bucket, "anonymous request refused: nothing of the bucket grants it anything");
                    return Err(s3_error!(AccessDenied, "Access Denied"));
                }
            }
            return Ok(());
        }
        let (bucket, resource) = match cx.s3_path() {
            S3Path::Root => (None, "*".to_owned()),
            S3Path::Bucket { bucket } => (Some(bucket.to_string()), format!("arn:aws:s3:::{bucket}")),
            S3Path::Object { bucket, key } => (Some(bucket.to_string()), format!("arn:aws:s3:::{bucket}/{key}")),
        };
        let grant = match &bucket {
            // Creating a bucket is the requester's account's decision: a name another
            // account holds is answered by the handler (BucketAlreadyExists), as on AWS.
            Some(bucket) if op != "CreateBucket" => self.buckets.get(bucket).await?,
            _ => Arc::default(),
        };
        if op == "CreateBucket"
            && let Some(name) = &bucket
        {
            self.mark_acl_reset(&identity, name, &resource, cx).await?;
        }
        // A copy reads its source, which is decided as well, under its own bucket's grants.
        let source = match op.as_str() {
            "CopyObject" | "UploadPartCopy" => cx.headers().get("x-amz-copy-source").and_then(|v| v.to_str().ok()),
            _ => None,
        }
        .and_then(copy_source);
        let source_grant = match &source {
            Some((bucket, _, _)) => Some(self.buckets.get(bucket).await?),
            None => None,
        };
        // Conditions are only in policies: without one, no key can change the decision, and
        // building them (a clock read, a dozen strings) is skipped.
        let version_id = cx.uri().query().and_then(|query| query_value(query, "versionId"));
        let versioned = version_id.is_some();
        let action = action_of(&op, versioned);
        let writes = matches!(op.as_str(), "PutObject" | "CopyObject" | "CreateMultipartUpload");
        // What reveals what a read would (an object's attributes; whether a delete's ETag is
        // the object's) needs the read's permission too, as AWS asks for it.
        let reads_too = match op.as_str() {
            "GetObjectAttributes" => true,
            "DeleteObject" => cx.headers().get(http::header::IF_MATCH).is_some_and(|v| v.as_bytes() != b"*"),
            _ => false,
        }
        .then(|| action_of("GetObject", versioned));
        let bypass = asks_bypass(cx.headers());
        let mut keys = if grant.policy.is_some()
            || source_grant.as_ref().is_some_and(|g| g.policy.is_some())
            || !identity.policies.is_empty()
        {
            let client = cx.extensions_mut().get::<ClientAddr>().copied();
            self.request_keys(client, cx.headers(), cx.uri())
        } else {
            ConditionKeys::new()
        };
        // A copy's source is decided with its own object's tags, not the target's.
        let mut source_keys = source.is_some().then(|| keys.clone());
        if let S3Path::Object { bucket, key } = cx.s3_path() {
            // Every action decided below with these keys, each of which may read the tags.
            let mut also: Vec<&str> = Vec::new();
            if writes {
                also.extend([
                    "s3:PutObjectAcl",
                    "s3:PutObjectTagging",
                    "s3:PutObjectRetention",
                    "s3:PutObjectLegalHold",
                ]);
            }
            if bypass {
                also.push("s3:BypassGovernanceRetention");
            }
            if let Some(read) = &reads_too {
                also.push(read);
            }
            let decided =
                Decided { identity: &identity, grant: &grant, action: &action, also: &also, resource: &resource };
            self.existing_tags(&mut keys, decided, (bucket, key), version_id.as_deref()).await?;
        }
        let object_acl = match cx.s3_path() {
            S3Path::Object { bucket, key } => {
                self.object_acl(&grant, &action, (bucket, key), version_id.as_deref()).await?
            }
            _ => ObjectAcl::default(),
        };
        self.decide_with(&identity, &grant, &action, &resource, &keys, &object_acl)?;
        if matches!(op.as_str(), "GetBucketPolicy" | "PutBucketPolicy" | "DeleteBucketPolicy") {
            grant.check_owners_account(&identity)?;
        }
        if op == "CreateBucket" {
            // What a new bucket is created with is decided as setting it afterwards would be,
            // as on AWS: an ACL other than private, its object ownership, Object Lock (which
            // turns versioning on for good).
            let asks = |name: &str| cx.headers().get(name).and_then(|v| v.to_str().ok());
            let mut also = Vec::new();
            if asks_bucket_acl(cx.headers()) {
                also.push("s3:PutBucketAcl");
            }
            if asks("x-amz-object-ownership").is_some() {
                also.push("s3:PutBucketOwnershipControls");
            }
            if asks("x-amz-bucket-object-lock-enabled").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
                also.extend(["s3:PutBucketObjectLockConfiguration", "s3:PutBucketVersioning"]);
            }
            for action in also {
                self.decide(&identity, &grant, action, &resource, &keys)?;
            }
        }
        if let Some(read) = &reads_too {
            self.decide_with(&identity, &grant, read, &resource, &keys, &object_acl)?;
        }
        // A read of a key that does not exist tells whether it exists only to whoever may list
        // the bucket; anyone else hears 403, as on AWS, and cannot probe for keys.
        if let (true, Some(bucket)) = (is_object_read(&op), &bucket) {
            let listing = format!("arn:aws:s3:::{bucket}");
            // Decided on the request's own keys (its address, transport, time), without the
            // object's: a policy that lets listers in from one network must find them here too.
            let keys = if grant.policy.is_some() || !identity.policies.is_empty() {
                let client = cx.extensions_mut().get::<ClientAddr>().copied();
                self.request_keys(client, cx.headers(), cx.uri())
            } else {
                ConditionKeys::new()
            };
            if self.refusal(&identity, &grant, "s3:ListBucket", &listing, &keys, &ObjectAcl::default()).is_some() {
                cx.extensions_mut().insert(MissingKeyHidden);
            }
        }
        if writes {
            self.decide_write_extras(&identity, &grant, cx.headers(), &resource, &keys)?;
            if let Some(owns) = grant.writer_owns(&identity, cx.headers()) {
                cx.extensions_mut().insert(owns);
            }
        }
        // Asking to bypass governance retention is a permission of its own, which a bucket
        // policy can deny (the configuration says who may ask at all).
        if bypass {
            self.decide(&identity, &grant, "s3:BypassGovernanceRetention", &resource, &keys)?;
        }
        if let (Some((bucket, key, version_id)), Some(source_grant), Some(mut keys)) =
            (source, source_grant, source_keys.take())
        {
            let action = if version_id.is_some() { "s3:GetObjectVersion" } else { "s3:GetObject" };
            let resource = format!("arn:aws:s3:::{bucket}/{key}");
            let object = (bucket.as_str(), key.as_str());
            let decided = Decided { identity: &identity, grant: &source_grant, action, also: &[], resource: &resource };
            self.existing_tags(&mut keys, decided, object, version_id.as_deref()).await?;
            let source_acl = self.object_acl(&source_grant, action, object, version_id.as_deref()).await?;
            self.decide_with(&identity, &source_grant, action, &resource, &keys, &source_acl)?;
        }
        Ok(())
    }

    /// A form upload (POST object) names its key in the form: s3s hands it on as a PutObject
    /// once the form is read, and it is decided here as one, on its key (`${filename}`
    /// replaced), with the form's `acl` as `s3:x-amz-acl`.
    async fn put_object(&self, req: &mut S3Request<PutObjectInput>) -> S3Result<()> {
        if req.method != http::Method::POST {
            // A PUT was decided by its head (`check`).
            return Ok(());
        }
        // The form's fields become the request's object headers first: its condition keys
        // (ACL, tags, grants, lock) are then the form's, never unsigned headers'.
        crate::s3::post_object::apply_fields(req).map_err(s3s::S3Error::from)?;
        let identity = self.identity(req.credentials.as_ref().map(|c| c.access_key.as_str())).await?;
        let grant = self.buckets.get(&req.input.bucket).await?;
        let keys = self.request_keys(req.extensions.get::<ClientAddr>().copied(), &req.headers, &req.uri);
        let resource = format!("arn:aws:s3:::{}/{}", req.input.bucket, req.input.key);
        self.decide(&identity, &grant, "s3:PutObject", &resource, &keys)?;
        self.decide_write_extras(&identity, &grant, &req.headers, &resource, &keys)?;
        if let Some(owns) = grant.writer_owns(&identity, &req.headers) {
            req.extensions.insert(owns);
        }
        Ok(())
    }

    /// PutObjectTagging names the tags it sets in its body: decided once it is read, with
    /// them as `s3:RequestObjectTag/<key>` and `s3:RequestObjectTagKeys`.
    async fn put_object_tagging(&self, req: &mut S3Request<PutObjectTaggingInput>) -> S3Result<()> {
        let identity = self.identity(req.credentials.as_ref().map(|c| c.access_key.as_str())).await?;
        let (bucket, key) = (req.input.bucket.clone(), req.input.key.clone());
        let grant = self.buckets.get(&bucket).await?;
        // Refused before a condition key is made of each tag, as the handler refuses it.
        if req.input.tagging.tag_set.len() > crate::s3::wire::MAX_OBJECT_TAGS {
            return Err(s3_error!(InvalidTag, "Object tags cannot be greater than 10"));
        }
        let mut keys = self.request_keys(req.extensions.get::<ClientAddr>().copied(), &req.headers, &req.uri);
        let tags = req.input.tagging.tag_set.iter();
        request_tags(&mut keys, tags.map(|t| (t.key.clone().unwrap_or_default(), t.value.clone().unwrap_or_default())));
        let version_id = req.input.version_id.clone();
        let action = action_of("PutObjectTagging", version_id.is_some());
        let resource = format!("arn:aws:s3:::{bucket}/{key}");
        let decided = Decided { identity: &identity, grant: &grant, action: &action, also: &[], resource: &resource };
        self.existing_tags(&mut keys, decided, (&bucket, &key), version_id.as_deref()).await?;
        let object_acl = self.object_acl(&grant, &action, (&bucket, &key), version_id.as_deref()).await?;
        self.decide_with(&identity, &grant, &action, &resource, &keys, &object_acl)
    }

    /// PutObjectLegalHold sets the status its body names: decided once it is read, with that
    /// status as `s3:object-lock-legal-hold`, never a header's.
    async fn put_object_legal_hold(&self, req: &mut S3Request<PutObjectLegalHoldInput>) -> S3Result<()> {
        let input = &req.input;
        let status = input.legal_hold.as_ref().and_then(|hold| hold.status.as_ref());
        let body_keys = status.map(|status| ("s3:object-lock-legal-hold", status.as_str().to_owned())).into_iter();
        let object = (input.bucket.as_str(), input.key.as_str());
        let version_id = input.version_id.as_deref();
        let head = RequestHead::of(req);
        self.decide_lock_change(head, "PutObjectLegalHold", object, version_id, body_keys.collect(), &[]).await
    }

    /// PutObjectRetention sets the retention its body names: decided once it is read, with
    /// its mode, date and the days it has left as the Object Lock keys, never a header's.
    async fn put_object_retention(&self, req: &mut S3Request<PutObjectRetentionInput>) -> S3Result<()> {
        let retention = req.input.retention.as_ref();
        let mode = retention.and_then(|r| r.mode.as_ref()).map(|m| ("s3:object-lock-mode", m.as_str().to_owned()));
        let until = retention.and_then(|r| r.retain_until_date.as_ref());
        let mut date = Vec::new();
        let until = until.filter(|until| until.format(TimestampFormat::DateTime, &mut date).is_ok());
        let now = crate::clock::now_ms();
        let body_keys = mode
            .into_iter()
            .chain(until.into_iter().flat_map(|until| {
                [
                    ("s3:object-lock-retain-until-date", String::from_utf8_lossy(&date).into_owned()),
                    (REMAINING_RETENTION_DAYS, remaining_days(until, now)),
                ]
            }))
            .collect();
        let input = &req.input;
        let object = (input.bucket.as_str(), input.key.as_str());
        let version_id = input.version_id.as_deref();
        // Asking to bypass governance retention is a permission of its own, as for a delete.
        let bypass: &[&str] =
            if input.bypass_governance_retention == Some(true) { &["s3:BypassGovernanceRetention"] } else { &[] };
        let head = RequestHead::of(req);
        self.decide_lock_change(head, "PutObjectRetention", object, version_id, body_keys, bypass).await
    }

    /// DeleteObjects names its keys in the body: each key is checked as a DeleteObject of
    /// its own, so a policy on part of a bucket holds for batch deletes too. A denied key is
    /// taken out of the request and handed on as [`DeniedDeletes`], which the handler
    /// answers as AWS does: `AccessDenied` for that key, the others deleted.
    async fn delete_objects(&self, req: &mut S3Request<DeleteObjectsInput>) -> S3Result<()> {
        // Refused before any key is decided, as the handler refuses it: a request of anyone
        // naming more keys than S3 takes must not cost a decision, a read and a log line each.
        if req.input.delete.objects.len() > crate::s3::wire::MAX_DELETE_KEYS {
            return Err(s3_error!(
                MalformedXML,
                "The XML you provided was not well-formed or did not validate against our published schema"
            ));
        }
        let identity = self.identity(req.credentials.as_ref().map(|c| c.access_key.as_str())).await?;
        let bucket = req.input.bucket.clone();
        let grant = self.buckets.get(&bucket).await?;
        // The same keys as for any request head, and as there only when a policy can read them.
        let keys = if grant.policy.is_some() || !identity.policies.is_empty() {
            self.request_keys(req.extensions.get::<ClientAddr>().copied(), &req.headers, &req.uri)
        } else {
            ConditionKeys::new()
        };
        let bypass = req.input.bypass_governance_retention == Some(true);
        let (mut allowed, mut denied) = (Vec::new(), Vec::new());
        for object in std::mem::take(&mut req.input.delete.objects) {
            let action = if object.version_id.is_some() { "s3:DeleteObjectVersion" } else { "s3:DeleteObject" };
            let resource = format!("arn:aws:s3:::{bucket}/{}", object.key);
            // Each key with its own object's tags, as a DeleteObject of its own would be.
            let mut keys = keys.clone();
            let read = if object.version_id.is_some() { "s3:GetObjectVersion" } else { "s3:GetObject" };
            let mut also = Vec::new();
            if bypass {
                also.push("s3:BypassGovernanceRetention");
            }
            if object.e_tag.is_some() {
                also.push(read);
            }
            let decided = Decided { identity: &identity, grant: &grant, action, also: &also, resource: &resource };
            self.existing_tags(&mut keys, decided, (&bucket, &object.key), object.version_id.as_deref()).await?;
            let decided = self
                .decide(&identity, &grant, action, &resource, &keys)
                .and_then(|()| match bypass {
                    true => self.decide(&identity, &grant, "s3:BypassGovernanceRetention", &resource, &keys),
                    false => Ok(()),
                })
                // A key's ETag makes its delete tell whether the ETag is the object's: a read.
                .and_then(|()| match object.e_tag {
                    Some(_) => self.decide(&identity, &grant, read, &resource, &keys),
                    None => Ok(()),
                });
            match decided {
                Ok(()) => allowed.push(object),
                // An unknown or disabled key is refused as a whole, as for any request.
                Err(err) if *err.code() != s3s::S3ErrorCode::AccessDenied => return Err(err),
                Err(_) => denied.push(object),
            }
        }
        req.input.delete.objects = allowed;
        req.extensions.insert(DeniedDeletes(denied));
        Ok(())
    }
}

/// What a bucket grants, besides its users' own policies: who owns it and its policy.
#[derive(Debug, Default)]
pub struct BucketGrant {
    /// The id of the owning account; `None` when the bucket does not exist.
    owner: Option<String>,
    /// Its policy, if it has one.
    policy: Option<Policy>,
    /// Its policy is public and its public access block says `RestrictPublicBuckets`: only
    /// users of the owner's account are let in.
    restricted: bool,
    /// Its object ownership: whether ACLs are enabled, its own and its objects', and who
    /// owns what another account writes.
    ownership: Ownership,
    /// Its ACL's grants besides the owner's, when its ownership enables ACLs.
    acl: Vec<AclEntry>,
    /// Its public access block says `IgnorePublicAcls`: grants to groups count for nothing.
    ignore_public_acls: bool,
}

/// Buckets' grants as the hook reads them: read and parsed once, and kept until one changes.
///
/// Every request to a bucket needs its grant; reading and parsing the policy each time cost
/// a tenth of a 4 KiB GET. An entry is kept with the generation it was read in, and every
/// change to a grant (a policy set or removed, a bucket created or deleted) starts a new
/// generation once it is committed ([`BucketGrants::changed`]). A read that began before a
/// change and finished after it is stored under the old generation, so it is never served:
/// no request is decided by a grant older than the last committed change.
///
/// That holds only where this gateway makes every change. On a log shared with other
/// gateways, a grant changes through any of them, so nothing is kept: each request reads its
/// grant, and that read first catches this gateway up with the shared log. A policy removed
/// through one gateway then closes the bucket on all of them for the next request.
#[derive(Clone)]
pub struct BucketGrants {
    registry: Registry,
    /// The root account's id: it owns buckets whose creator's key the registry does not
    /// hold (configured keys, and buckets created before accounts were recorded).
    root_account: String,
    generation: Arc<AtomicU64>,
    entries: Arc<RwLock<HashMap<String, Cached>>>,
}

impl BucketGrant {
    /// A bucket's policy is its owner's account's alone, whatever the policy grants: another
    /// account allowed the action could otherwise lift the owner's Denies, or make the bucket
    /// public. AWS answers such a caller 405 `MethodNotAllowed` (once it is allowed, so 403
    /// still tells a caller nothing was granted).
    fn check_owners_account(&self, identity: &Identity) -> S3Result<()> {
        let in_owners_account = match (&self.owner, &identity.principal) {
            (Some(owner), Principal::User(user)) => user.account() == owner,
            // A bucket that does not exist is the handler's to answer (NoSuchBucket).
            (None, _) => true,
            (Some(_), Principal::Anonymous) => false,
        };
        if in_owners_account {
            Ok(())
        } else {
            Err(s3_error!(MethodNotAllowed, "The specified method is not allowed against this resource."))
        }
    }

    /// Whether the bucket's ownership enables ACLs.
    fn acls_enabled(&self) -> bool {
        self.ownership.acls_enabled()
    }

    /// The account that will own what `identity` writes with `headers` (or a form's fields
    /// applied to them), when not the bucket's owner.
    fn writer_owns(&self, identity: &Identity, headers: &http::HeaderMap) -> Option<WriterOwns> {
        let (Some(owner), Principal::User(user)) = (&self.owner, &identity.principal) else { return None };
        let owner_full_control = headers.get("x-amz-acl").is_some_and(|acl| acl == "bucket-owner-full-control");
        acl::writer_owns(self.ownership, owner, user.account(), owner_full_control)
            .then(|| WriterOwns(user.account().to_owned()))
    }
}

/// A bucket's grant and the generation it was read in.
type Cached = (u64, Arc<BucketGrant>);

impl BucketGrants {
    /// Grants read from `registry`; `root_account` is the root account's id.
    #[must_use]
    pub fn new(registry: Registry, root_account: String) -> Self {
        BucketGrants { registry, root_account, generation: Arc::default(), entries: Arc::default() }
    }

    /// The bucket's grant.
    async fn get(&self, bucket: &str) -> S3Result<Arc<BucketGrant>> {
        let keep = !self.registry.is_shared();
        let generation = self.generation.load(Ordering::Acquire);
        if keep
            && let Some((seen, grant)) = self.entries.read().expect("grant cache lock").get(bucket)
            && *seen == generation
        {
            return Ok(Arc::clone(grant));
        }
        let name = bucket.to_owned();
        let root_account = self.root_account.clone();
        // A read the registry refuses (its views behind on a full disk) is answered as any
        // handler's read would be.
        let (owner, text, block, ownership, acl) = self
            .registry
            .read(move |reads| {
                let Some(bucket) = reads.bucket(&name)? else {
                    return Ok((None, None, None, Ownership::default(), None));
                };
                let owner = reads.account_of_key(&bucket.owner)?.map_or(root_account, |account| account.id);
                let block = reads.public_access_block(&name)?;
                // A bucket whose ownership disables ACLs has none to read.
                let ownership = reads.bucket_ownership(&name)?;
                let acl = if ownership.acls_enabled() { Some(reads.bucket_acl(&name)?) } else { None };
                Ok((Some(owner), reads.bucket_policy(&name)?, block, ownership, acl))
            })
            .await
            .map_err(|err| s3s::S3Error::from(crate::s3::error::Error::from(err)))?;
        // Recorded policies were checked when they were set.
        let policy = text.and_then(|text| Policy::parse(&text, PolicyKind::Bucket).ok());
        let block = block.unwrap_or_default();
        let restricted = block.restrict_public_buckets && policy.as_ref().is_some_and(Policy::is_public);
        let grant = Arc::new(BucketGrant {
            owner,
            policy,
            restricted,
            ownership,
            acl: acl.unwrap_or_default(),
            ignore_public_acls: block.ignore_public_acls,
        });
        if keep {
            let mut entries = self.entries.write().expect("grant cache lock");
            if entries.len() >= MAX_CACHED_GRANTS {
                entries.clear();
            }
            entries.insert(bucket.to_owned(), (generation, Arc::clone(&grant)));
        }
        Ok(grant)
    }

    /// Records that a bucket's grant changed and the change is committed.
    pub fn changed(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }
}

/// Buckets whose grants are kept at once; beyond it the cache starts over (a bound on
/// memory for a client that names many buckets that do not exist).
const MAX_CACHED_GRANTS: usize = 10_000;

/// The IAM action of an S3 operation, as AWS's documentation maps them.
fn action_of(op: &str, versioned: bool) -> String {
    let name = match op {
        "GetObject" | "HeadObject" if versioned => "GetObjectVersion",
        "GetObject" | "HeadObject" => "GetObject",
        "DeleteObject" if versioned => "DeleteObjectVersion",
        "GetObjectTagging" if versioned => "GetObjectVersionTagging",
        "GetObjectAcl" if versioned => "GetObjectVersionAcl",
        "PutObjectAcl" if versioned => "PutObjectVersionAcl",
        "PutObjectTagging" if versioned => "PutObjectVersionTagging",
        "DeleteObjectTagging" if versioned => "DeleteObjectVersionTagging",
        "GetObjectAttributes" if versioned => "GetObjectVersionAttributes",
        "PutObject"
        | "CopyObject"
        | "CreateMultipartUpload"
        | "UploadPart"
        | "UploadPartCopy"
        | "CompleteMultipartUpload"
        | "PostObject" => "PutObject",
        "ListObjects" | "ListObjectsV2" | "HeadBucket" => "ListBucket",
        "ListObjectVersions" => "ListBucketVersions",
        "ListBuckets" => "ListAllMyBuckets",
        "ListMultipartUploads" => "ListBucketMultipartUploads",
        "ListParts" => "ListMultipartUploadParts",
        "DeleteObjects" => "DeleteObject",
        "PutObjectLockConfiguration" => "PutBucketObjectLockConfiguration",
        "GetObjectLockConfiguration" => "GetBucketObjectLockConfiguration",
        "PutBucketLifecycleConfiguration" | "DeleteBucketLifecycle" => "PutLifecycleConfiguration",
        "GetBucketLifecycleConfiguration" => "GetLifecycleConfiguration",
        "PutBucketCors" | "DeleteBucketCors" => "PutBucketCORS",
        "GetBucketCors" => "GetBucketCORS",
        "DeleteBucketTagging" => "PutBucketTagging",
        "PutBucketEncryption" | "DeleteBucketEncryption" => "PutEncryptionConfiguration",
        "GetBucketEncryption" => "GetEncryptionConfiguration",
        "PutPublicAccessBlock" | "DeletePublicAccessBlock" => "PutBucketPublicAccessBlock",
        "GetPublicAccessBlock" => "GetBucketPublicAccessBlock",
        "DeleteBucketOwnershipControls" => "PutBucketOwnershipControls",
        other => other,
    };
    format!("s3:{name}")
}

/// Whether a CreateBucket asks for an ACL other than the private one: a canned ACL other
/// than `private`, or any `x-amz-grant-*`.
fn asks_bucket_acl(headers: &http::HeaderMap) -> bool {
    headers.get("x-amz-acl").is_some_and(|acl| acl.as_bytes() != b"private")
        || headers.keys().any(|name| name.as_str().starts_with("x-amz-grant-"))
}

/// Whether the request asks to bypass governance retention.
fn asks_bypass(headers: &http::HeaderMap) -> bool {
    headers
        .get("x-amz-bypass-governance-retention")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

/// A query parameter's value as s3s reads it: names and values decoded as a form
/// (`version%49d` is `versionId`), and a name given twice read as absent. The decision must
/// see the parameters the handler will act on.
fn query_value(query: &str, name: &str) -> Option<String> {
    let mut values = form_urlencoded::parse(query.as_bytes()).filter(|(n, _)| n == name).map(|(_, v)| v);
    let value = values.next()?;
    values.next().is_none().then(|| value.into_owned())
}

/// The bucket, key and version an `x-amz-copy-source` names, read by s3s's own parser and
/// the handlers' reading of it (`s3::wire::copy_source`), so that the decision is on the
/// object the copy reads. `None` for a header s3s refuses, or an access point the handler
/// refuses: no copy happens then.
fn copy_source(header: &str) -> Option<(String, String, Option<String>)> {
    crate::s3::wire::copy_source(&s3s::dto::CopySource::parse(header).ok()?).ok()
}
