//! Who may do what: every S3 request is decided by the registry's policy evaluator
//! ([`registry::policy`]) before its body is read.
//!
//! The principal comes from the signature: the root access key is the root user of the
//! gateway's account; each `[[auth.users]]` key is a user of that account named by its access
//! key, with an identity policy that allows everything (what configured keys could always
//! do). An unsigned request is the anonymous principal. The bucket's policy speaks on every
//! request to the bucket: it can deny any user (except that the account's root may always
//! manage the policy itself) and grant anonymous access.
//!
//! The account id is derived from the root access key (12 digits), so that policies naming
//! the account keep naming it across restarts.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use registry::Registry;
use registry::policy::{self, AclGrant, ConditionKeys, Decision, Grants, Policy, PolicyKind, Principal, Request};
use s3s::access::{S3Access, S3AccessContext};
use s3s::dto::DeleteObjectsInput;
use s3s::path::S3Path;
use s3s::{S3Request, S3Result, s3_error};

use super::Users;
use crate::request::PeerAddr;

/// The access hook s3s calls for every request.
#[derive(Clone)]
pub struct Access {
    users: Users,
    policies: BucketPolicies,
    account: String,
    /// Whether connections arrive over TLS (`aws:SecureTransport`).
    secure_transport: bool,
    /// What every configured user may do by itself: everything.
    allow_all: Arc<[Policy]>,
}

impl Access {
    /// The hook for `users`, deciding with the bucket policies of `policies`.
    #[must_use]
    pub fn new(users: Users, policies: BucketPolicies, secure_transport: bool) -> Self {
        let allow_all =
            Policy::parse(r#"{"Statement":{"Effect":"Allow","Action":"*","Resource":"*"}}"#, PolicyKind::Identity)
                .expect("the allow-all policy parses");
        let account = account_id(users.root_access_key());
        Access { users, policies, account, secure_transport, allow_all: Arc::from([allow_all]) }
    }

    /// The principal of a request signed with `access_key`, or the anonymous one.
    fn principal(&self, access_key: Option<&str>) -> Principal {
        match access_key.and_then(|key| self.users.get(key).map(|user| (key, user))) {
            Some((_, user)) if user.root => Principal::User(policy::User::root(&self.account)),
            Some((key, _)) => Principal::User(policy::User::new(&self.account, key)),
            None => Principal::Anonymous,
        }
    }

    /// Decides `action` on `resource` under the bucket's policy.
    fn decide(
        &self,
        principal: &Principal,
        bucket_policy: Option<&Policy>,
        action: &str,
        resource: &str,
        keys: &ConditionKeys,
    ) -> S3Result<()> {
        let identity: &[Policy] = match principal {
            Principal::User(user) if !user.is_root() => &self.allow_all,
            _ => &[],
        };
        let request = Request { principal, action, resource, keys };
        let grants = Grants { identity, bucket_policy, resource_owner: Some(&self.account), acl: AclGrant::None };
        match policy::decide(&request, &grants) {
            Decision::Allow => Ok(()),
            decision => {
                tracing::info!(code = "AccessDenied", action, resource, ?decision, "request refused by policy");
                Err(s3_error!(AccessDenied, "Access Denied"))
            }
        }
    }

    /// The condition keys of a request head, from the connection it came on (`peer`).
    fn keys(&self, peer: Option<PeerAddr>, headers: &http::HeaderMap, uri: &http::Uri) -> ConditionKeys {
        let mut keys = ConditionKeys::new();
        let now = crate::clock::now_ms();
        keys.set("aws:CurrentTime", format_time(now)).set("aws:EpochTime", (now / 1000).to_string());
        keys.set("aws:SecureTransport", self.secure_transport.to_string());
        if let Some(peer) = peer {
            keys.set("aws:SourceIp", peer.0.ip().to_canonical().to_string());
        }
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        for (key, name) in [
            ("aws:UserAgent", "user-agent"),
            ("aws:Referer", "referer"),
            ("s3:x-amz-acl", "x-amz-acl"),
            ("s3:x-amz-copy-source", "x-amz-copy-source"),
            ("s3:x-amz-metadata-directive", "x-amz-metadata-directive"),
            ("s3:x-amz-server-side-encryption", "x-amz-server-side-encryption"),
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
        let query = uri.query().unwrap_or("");
        for pair in query.split('&') {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let key = match name {
                "prefix" => "s3:prefix",
                "delimiter" => "s3:delimiter",
                "max-keys" => "s3:max-keys",
                "versionId" => "s3:VersionId",
                _ => continue,
            };
            keys.set(key, percent_encoding::percent_decode_str(value).decode_utf8_lossy());
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
}

#[async_trait]
impl S3Access for Access {
    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        let op = cx.s3_op().name().to_owned();
        if op == "DeleteObjects" {
            // Its keys are in the body: decided key by key once it is read (below).
            return Ok(());
        }
        let principal = self.principal(cx.credentials().map(|c| c.access_key.as_str()));
        let (bucket, resource) = match cx.s3_path() {
            S3Path::Root => (None, "*".to_owned()),
            S3Path::Bucket { bucket } => (Some(bucket.to_string()), format!("arn:aws:s3:::{bucket}")),
            S3Path::Object { bucket, key } => (Some(bucket.to_string()), format!("arn:aws:s3:::{bucket}/{key}")),
        };
        let policy = match &bucket {
            Some(bucket) => self.policies.get(bucket).await?,
            None => None,
        };
        // A copy reads its source, which is decided as well, under its own bucket's policy.
        let source = match op.as_str() {
            "CopyObject" | "UploadPartCopy" => cx.headers().get("x-amz-copy-source").and_then(|v| v.to_str().ok()),
            _ => None,
        }
        .map(copy_source);
        let source_policy = match &source {
            Some((path, _)) => self.policies.get(path.split('/').next().unwrap_or_default()).await?,
            None => None,
        };
        // Conditions are only in policies: without one, no key can change the decision, and
        // building them (a clock read, a dozen strings) is skipped.
        let keys = if policy.is_some() || source_policy.is_some() {
            let peer = cx.extensions_mut().get::<PeerAddr>().copied();
            self.keys(peer, cx.headers(), cx.uri())
        } else {
            ConditionKeys::new()
        };
        let versioned = cx.uri().query().is_some_and(|q| q.split('&').any(|pair| pair.starts_with("versionId=")));
        self.decide(&principal, policy.as_deref(), &action_of(&op, versioned), &resource, &keys)?;
        // Asking to bypass governance retention is a permission of its own, which a bucket
        // policy can deny (the configuration says who may ask at all).
        if asks_bypass(cx.headers()) {
            self.decide(&principal, policy.as_deref(), "s3:BypassGovernanceRetention", &resource, &keys)?;
        }
        if let Some((path, version)) = source {
            let action = if version { "s3:GetObjectVersion" } else { "s3:GetObject" };
            self.decide(&principal, source_policy.as_deref(), action, &format!("arn:aws:s3:::{path}"), &keys)?;
        }
        Ok(())
    }

    /// DeleteObjects names its keys in the body: each key is checked as a DeleteObject of
    /// its own, so a policy on part of a bucket holds for batch deletes too. One denied key
    /// refuses the whole request (AWS answers per key; refusing more is the safe side).
    async fn delete_objects(&self, req: &mut S3Request<DeleteObjectsInput>) -> S3Result<()> {
        let principal = self.principal(req.credentials.as_ref().map(|c| c.access_key.as_str()));
        let bucket = req.input.bucket.clone();
        let policy = self.policies.get(&bucket).await?;
        // The same keys as for any request head, and as there only when a policy can read them.
        let keys = match policy {
            Some(_) => self.keys(req.extensions.get::<PeerAddr>().copied(), &req.headers, &req.uri),
            None => ConditionKeys::new(),
        };
        let bypass = req.input.bypass_governance_retention == Some(true);
        for object in &req.input.delete.objects {
            let action = if object.version_id.is_some() { "s3:DeleteObjectVersion" } else { "s3:DeleteObject" };
            let resource = format!("arn:aws:s3:::{bucket}/{}", object.key);
            self.decide(&principal, policy.as_deref(), action, &resource, &keys)?;
            if bypass {
                self.decide(&principal, policy.as_deref(), "s3:BypassGovernanceRetention", &resource, &keys)?;
            }
        }
        Ok(())
    }
}

/// Bucket policies as the hook reads them: parsed once, and kept until a policy changes.
///
/// Every request to a bucket needs its policy; reading and parsing it each time cost a tenth
/// of a 4 KiB GET. An entry is kept with the generation it was read in, and every change to a
/// policy (set, removed, or its bucket deleted) starts a new generation once it is committed
/// ([`BucketPolicies::changed`]). A read that began before a change and finished after it is
/// stored under the old generation, so it is never served: no request is decided by a policy
/// older than the last committed change. Only this gateway changes its registry's policies;
/// several gateways on one PostgreSQL registry will need the engine's change notifications.
#[derive(Clone)]
pub struct BucketPolicies {
    registry: Registry,
    generation: Arc<AtomicU64>,
    entries: Arc<RwLock<HashMap<String, Cached>>>,
}

/// A bucket's policy (none included) and the generation it was read in.
type Cached = (u64, Option<Arc<Policy>>);

impl BucketPolicies {
    /// Policies read from `registry`.
    #[must_use]
    pub fn new(registry: Registry) -> Self {
        BucketPolicies { registry, generation: Arc::default(), entries: Arc::default() }
    }

    /// The bucket's policy, if it has one.
    async fn get(&self, bucket: &str) -> S3Result<Option<Arc<Policy>>> {
        let generation = self.generation.load(Ordering::Acquire);
        if let Some((seen, policy)) = self.entries.read().expect("policy cache lock").get(bucket)
            && *seen == generation
        {
            return Ok(policy.clone());
        }
        let name = bucket.to_owned();
        // A read the registry refuses (its views behind on a full disk) is answered as any
        // handler's read would be.
        let text = self
            .registry
            .read(move |reads| reads.bucket_policy(&name))
            .await
            .map_err(|err| s3s::S3Error::from(crate::s3::error::Error::from(err)))?;
        // Recorded policies were checked when they were set.
        let policy = text.and_then(|text| Policy::parse(&text, PolicyKind::Bucket).ok()).map(Arc::new);
        let mut entries = self.entries.write().expect("policy cache lock");
        if entries.len() >= MAX_CACHED_POLICIES {
            entries.clear();
        }
        entries.insert(bucket.to_owned(), (generation, policy.clone()));
        Ok(policy)
    }

    /// Records that a bucket's policy changed and the change is committed.
    pub fn changed(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }
}

/// Buckets whose policies are kept at once; beyond it the cache starts over (a bound on
/// memory for a client that names many buckets that do not exist).
const MAX_CACHED_POLICIES: usize = 10_000;

/// The IAM action of an S3 operation, as AWS's documentation maps them.
fn action_of(op: &str, versioned: bool) -> String {
    let name = match op {
        "GetObject" | "HeadObject" if versioned => "GetObjectVersion",
        "GetObject" | "HeadObject" => "GetObject",
        "DeleteObject" if versioned => "DeleteObjectVersion",
        "GetObjectTagging" if versioned => "GetObjectVersionTagging",
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
        other => other,
    };
    format!("s3:{name}")
}

/// Whether the request asks to bypass governance retention.
fn asks_bypass(headers: &http::HeaderMap) -> bool {
    headers
        .get("x-amz-bypass-governance-retention")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

/// The `bucket/key` of an `x-amz-copy-source` (leading `/` and `?versionId=` dropped,
/// percent-decoded), and whether it names a version.
fn copy_source(header: &str) -> (String, bool) {
    let header = header.strip_prefix('/').unwrap_or(header);
    let (path, version) = match header.split_once("?versionId=") {
        Some((path, _)) => (path, true),
        None => (header, false),
    };
    (percent_encoding::percent_decode_str(path).decode_utf8_lossy().into_owned(), version)
}

/// `aws:CurrentTime` as AWS writes it: ISO 8601 in UTC.
fn format_time(millis: i64) -> String {
    let time = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(millis) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    time.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

/// The gateway account's 12-digit id, derived from the root access key.
#[must_use]
pub fn account_id(root_access_key: &str) -> String {
    let digest = blake3::hash(format!("artifact-store account {root_access_key}").as_bytes());
    let number = u64::from_le_bytes(digest.as_bytes()[..8].try_into().expect("8 bytes")) % 1_000_000_000_000;
    format!("{number:012}")
}
