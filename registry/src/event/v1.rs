//! Version 1 event payloads and their canonical encoding.
//!
//! # Canonical encoding
//! A payload is stored as UTF-8 JSON with no insignificant whitespace, object keys sorted by
//! their UTF-8 bytes, integers only (no floats), absent optional fields omitted, and strings
//! escaped as `serde_json` escapes them. The same logical payload therefore always encodes to
//! the same bytes, whatever map type or feature flags the rest of the program uses.
//!
//! This is a file format: payloads of a released type never change shape. A new shape is a
//! new type name (`v2.object.put`) decoded beside the old one.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// String-to-string maps (metadata, tags, checksums) are ordered so they encode canonically.
pub type StringMap = BTreeMap<String, String>;

/// Object Lock retention mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum LockMode {
    /// Can be shortened or lifted by a principal allowed to bypass governance.
    Governance,
    /// Can never be shortened or lifted, by anyone.
    Compliance,
}

/// Bucket versioning state as S3 reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum VersioningStatus {
    /// Every write makes a new version with its own id.
    Enabled,
    /// Writes replace the `null` version; older versions are kept.
    Suspended,
}

/// A bucket's default Object Lock retention.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DefaultRetention {
    /// Mode applied to new versions.
    pub mode: LockMode,
    /// Retention length in days (exclusive with `years`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub days: Option<u32>,
    /// Retention length in years (exclusive with `days`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub years: Option<u32>,
}

/// Retention on one version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retention {
    /// Lock mode.
    pub mode: LockMode,
    /// Retain-until time, milliseconds since the Unix epoch.
    pub retain_until: i64,
}

/// One piece of an object's bytes in the blob store. A single PUT has one part; a completed
/// multipart upload has one per uploaded part, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobPart {
    /// Backend locator of the blob (for the local store, the hex BLAKE3 of its bytes, or for a
    /// multipart part stored since 2026-12, a name derived from the `subtrees` its
    /// `v1.multipart.part.uploaded` event records).
    pub blob: String,
    /// Size in bytes.
    pub size: u64,
    /// The part's own ETag (the hex MD5 of its bytes, without quotes).
    pub etag: String,
    /// The part's checksums (algorithm name to base64 value), when the client sent one.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub checksums: StringMap,
    /// For a multipart part recorded before parts of any size could be merged: its BLAKE3
    /// chaining value (hex) as one subtree at `(part_number - 1) * size`. No longer written:
    /// see `subtrees`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subtree: Option<String>,
    /// For a multipart part: its BLAKE3 subtrees at the offset it was expected at, which let
    /// completion merge the object's BLAKE3 without reading the part back when it is there. A
    /// field of its own, so that a build that knows only `subtree` reads such a part back
    /// rather than taking its values for ones at another offset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subtrees: Option<PartSubtrees>,
    /// Where the part starts inside its blob, when the blob holds more than this part (the
    /// parts of a multipart object completed upstream as one object); absent means 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
    /// For a part uploaded into a store's own multipart upload: the ETag the store gave it,
    /// which completing that upload must name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store_etag: Option<String>,
    /// For a part stored encrypted: its data key, wrapped. The blob then holds ciphertext, and
    /// `size`, `etag` and `checksums` are those of the plaintext.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wrapped_key: Option<WrappedKey>,
}

/// A blob's data key as the registry keeps it: encrypted by a master key that only the
/// gateways hold, never in the clear.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WrappedKey {
    /// The master key that wrapped it.
    pub key_id: String,
    /// The wrapped key: base64 of the nonce, the encrypted key and its tag.
    pub wrapped: String,
}

impl BlobPart {
    /// The subtree chaining values recorded for a multipart part (hex, one after the other):
    /// its `subtrees`, or the one legacy `subtree`.
    #[must_use]
    pub fn recorded_subtrees(&self) -> Option<&str> {
        self.subtrees.as_ref().map(|s| s.chaining_values.as_str()).or(self.subtree.as_deref())
    }
}

/// A multipart part's BLAKE3 as the subtrees it forms at an offset of its object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartSubtrees {
    /// Where in the object the part was hashed.
    pub offset: u64,
    /// The chaining values (hex, one after the other) of the subtrees its bytes form there:
    /// the largest power-of-two runs of 1 KiB chunks aligned there, in order.
    pub chaining_values: String,
}

/// Everything that describes an object version's content.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectContent {
    /// Size in bytes.
    pub size: u64,
    /// ETag without its quotes: the hex MD5, or `<hex>-<parts>` for multipart objects.
    pub etag: String,
    /// BLAKE3 of the whole object, hex.
    pub blake3: String,
    /// Checksums by algorithm name (`CRC32`, `SHA256`, ...), base64 as S3 returns them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub checksums: StringMap,
    /// `COMPOSITE` or `FULL_OBJECT` for multipart checksums.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum_type: Option<String>,
    /// Content-Type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// The other standard headers (`Cache-Control`, `Content-Disposition`, `Content-Encoding`,
    /// `Content-Language`, `Expires`), by lower-case header name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: StringMap,
    /// `x-amz-meta-*` metadata, keys without the prefix.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub user_metadata: StringMap,
    /// Object tags.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: StringMap,
    /// Where the bytes are.
    pub parts: Vec<BlobPart>,
    /// The server-side encryption the bytes are stored under (`AES256`, `aws:kms`, or `SSE-C`
    /// for a key the client sends with every request), when they are stored encrypted (see
    /// [`BlobPart::wrapped_key`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<String>,
    /// For `aws:kms`: the id of the KMS key that wraps the parts' data keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms_key_id: Option<String>,
    /// For `aws:kms`: whether the writer asked for an S3 Bucket Key (given back as it was).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub bucket_key_enabled: bool,
    /// For `SSE-C`: a salted HMAC of the customer's key (base64), which tells a wrong key from
    /// the right one; never the key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_key_check: Option<String>,
}

/// How a version came to be, beyond the request context.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Origin {
    /// A PutObject.
    Put,
    /// A CopyObject from another version.
    Copy {
        /// Source bucket.
        bucket: String,
        /// Source key.
        key: String,
        /// Source version id.
        version_id: String,
    },
    /// A completed multipart upload.
    Multipart {
        /// The upload id.
        upload_id: String,
    },
}

/// A new object version (`v1.object.put`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectPut {
    /// Bucket name.
    pub bucket: String,
    /// Object key.
    pub key: String,
    /// Version id, or `null` in a bucket without versioning.
    pub version_id: String,
    /// The content.
    pub content: ObjectContent,
    /// How it came to be.
    pub origin: Origin,
    /// Retention set at creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<Retention>,
    /// Legal hold set at creation.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub legal_hold: bool,
}

/// Template of an object that a multipart upload will create (`v1.multipart.created`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MultipartCreated {
    /// Bucket name.
    pub bucket: String,
    /// Object key.
    pub key: String,
    /// Upload id.
    pub upload_id: String,
    /// Content fields known at creation (size, ETag, digests and parts are empty).
    pub template: ObjectContent,
    /// Checksum algorithm the client announced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum_algorithm: Option<String>,
    /// Retention to apply on completion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<Retention>,
    /// Legal hold to apply on completion.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub legal_hold: bool,
    /// The blob store's own multipart upload behind this one, when the store keeps one (an S3
    /// upstream); absent when each part is a blob of its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store_upload: Option<StoreUpload>,
    /// ACL grants the completed version gets (`v1.object.acl.set` with the completion), on a
    /// bucket whose ownership enables ACLs; absent for none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub acl: Vec<AclEntry>,
    /// The account that will own the completed version, when not the bucket's owner (as
    /// [`ObjectAclSet::owner`]); absent when the bucket's owner will.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
}

/// A multipart upload inside the blob store: the blob the completed object becomes, and the
/// store's id for the upload (kept so it can be completed or aborted after a restart).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreUpload {
    /// The blob id (upstream key without the prefix) chosen at creation.
    pub blob: String,
    /// The store's upload id.
    pub upload_id: String,
}

/// One uploaded part (`v1.multipart.part.uploaded`). A re-upload of the same number replaces it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartUploaded {
    /// Bucket name.
    pub bucket: String,
    /// Object key.
    pub key: String,
    /// Upload id.
    pub upload_id: String,
    /// Part number, 1 to 10,000.
    pub part_number: u32,
    /// The part's bytes.
    pub part: BlobPart,
}

/// A finished multipart upload (`v1.multipart.completed`): the upload ends and the version appears.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MultipartCompleted {
    /// Upload id.
    pub upload_id: String,
    /// The version it created (its origin is [`Origin::Multipart`]).
    pub version: ObjectPut,
}

/// Events about one object version: deletion, markers, tags, reads, retention.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionRef {
    /// Bucket name.
    pub bucket: String,
    /// Object key.
    pub key: String,
    /// Version id.
    pub version_id: String,
}

/// New tags on a version (`v1.object.tagging.set`); empty tags delete them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaggingSet {
    /// The version.
    #[serde(flatten)]
    pub version: VersionRef,
    /// The whole new tag set.
    pub tags: StringMap,
}

/// A version's data keys wrapped anew (`v1.object.keys.rewrapped`) by the current master key,
/// after the one that wrapped them was rotated out: the stored bytes do not change, and the
/// retired key can be destroyed once no data key needs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeysRewrapped {
    /// The version.
    #[serde(flatten)]
    pub version: VersionRef,
    /// The parts whose keys were wrapped anew.
    pub parts: Vec<RewrappedKey>,
}

/// One part's data key, wrapped anew.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RewrappedKey {
    /// The part's position in the version's [`ObjectContent::parts`].
    pub part: u32,
    /// The part's blob, so that a reader of the log alone knows which key opens which blob.
    pub blob: String,
    /// The same data key, wrapped by another key.
    pub wrapped_key: WrappedKey,
}

/// The master key that the gateways sharing this registry wrap SSE-S3 data keys with
/// (`v1.encryption.master_key.set`), by its id (which reveals nothing of the key). A gateway
/// records its own when none is recorded yet, or when the recorded one is among its retired
/// keys (a rotation); one that holds neither refuses to wrap data keys, rather than write
/// objects the others cannot read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MasterKeySet {
    /// The key's id.
    pub key_id: String,
}

/// A read of a version's bytes (`v1.object.retrieved`), from GET or HEAD.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retrieved {
    /// The version read.
    #[serde(flatten)]
    pub version: VersionRef,
    /// `GET` or `HEAD`; `COPY` for the source of a CopyObject, `COPY_PART` for the range of
    /// the source an UploadPartCopy read.
    pub method: String,
    /// Bytes sent in the response body.
    pub bytes: u64,
    /// The `Range` header when one was honoured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range: Option<String>,
}

/// Why bytes read for a version were refused (`v1.blob.corrupt`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CorruptReason {
    /// The bytes do not hash to the digest recorded for them.
    DigestMismatch,
    /// A blob the version names is not in the store.
    Missing,
    /// A blob holds fewer bytes than the version records.
    Short,
}

impl CorruptReason {
    /// The name the event and the metrics use.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            CorruptReason::DigestMismatch => "digest_mismatch",
            CorruptReason::Missing => "missing",
            CorruptReason::Short => "short",
        }
    }
}

/// A read that found stored bytes damaged and refused them (`v1.blob.corrupt`): a read of a
/// version, whose response was an error or whose body was cut before it completed, or the
/// read-back of an upload's part by its completion, which was refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobCorrupt {
    /// What was read.
    #[serde(flatten)]
    pub subject: CorruptSubject,
    /// The blobs the read covered (one for most objects; the parts read for a multipart one).
    pub blobs: Vec<String>,
    /// What was wrong.
    pub reason: CorruptReason,
    /// The `Content-Range` of a partial read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range: Option<String>,
}

/// What a [`BlobCorrupt`] read: its fields sit beside the others in the payload, so a
/// version's record has the same bytes it had before parts could be named.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum CorruptSubject {
    /// A version (GetObject, HeadObject, a copy's source).
    Version(VersionRef),
    /// A part of a multipart upload, read back by CompleteMultipartUpload.
    Part(PartRef),
}

/// One part of a multipart upload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartRef {
    /// Bucket name.
    pub bucket: String,
    /// Object key.
    pub key: String,
    /// Upload id.
    pub upload_id: String,
    /// Part number, 1 to 10,000.
    pub part_number: u32,
}

/// Retention set, changed or lifted on a version (`v1.retention.set`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetentionSet {
    /// The version.
    #[serde(flatten)]
    pub version: VersionRef,
    /// New retention; `None` lifts it (only possible for GOVERNANCE with bypass).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<Retention>,
    /// Whether the change used `x-amz-bypass-governance-retention`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub bypass_governance: bool,
}

/// Legal hold switched on or off (`v1.legal_hold.set`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LegalHoldSet {
    /// The version.
    #[serde(flatten)]
    pub version: VersionRef,
    /// Whether the hold is on.
    pub on: bool,
}

/// What a governance bypass was used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BypassedFor {
    /// Deleting the version for good.
    Delete,
    /// Shortening, lifting or changing the mode of its retention.
    RetentionChange,
}

/// GOVERNANCE retention bypassed with `x-amz-bypass-governance-retention` by a principal
/// allowed to (`v1.retention.bypassed`). Recorded on its own, just before the deletion or
/// retention change it allowed, so audits find every bypass by type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetentionBypassed {
    /// The version.
    #[serde(flatten)]
    pub version: VersionRef,
    /// The retention that was in force.
    pub retention: Retention,
    /// What it was bypassed for.
    pub action: BypassedFor,
}

/// A version deleted for good (`v1.object.deleted`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectDeleted {
    /// The version.
    #[serde(flatten)]
    pub version: VersionRef,
    /// Whether the deletion used `x-amz-bypass-governance-retention`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub bypass_governance: bool,
}

/// A new bucket (`v1.bucket.created`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketCreated {
    /// Bucket name.
    pub bucket: String,
    /// Region the bucket reports in GetBucketLocation.
    pub region: String,
    /// Object Lock enabled at creation (which also enables versioning for good).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub object_lock_enabled: bool,
}

/// A bucket named by an event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketRef {
    /// Bucket name.
    pub bucket: String,
}

/// Versioning switched (`v1.bucket.versioning.set`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersioningSet {
    /// Bucket name.
    pub bucket: String,
    /// The new state.
    pub status: VersioningStatus,
}

/// Object Lock configuration set (`v1.bucket.object_lock.set`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectLockSet {
    /// Bucket name.
    pub bucket: String,
    /// Default retention for new versions, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_retention: Option<DefaultRetention>,
}

/// Lifecycle configuration set (`v1.bucket.lifecycle.set`). The rules are kept as the
/// gateway parsed them, in canonical JSON, so the registry can evaluate them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LifecycleSet {
    /// Bucket name.
    pub bucket: String,
    /// The rules.
    pub rules: serde_json::Value,
}

/// A bucket policy set (`v1.bucket.policy.set`): the document as its owner wrote it,
/// checked before it was recorded (`crate::policy::Policy::parse`), and returned as written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketPolicySet {
    /// Bucket name.
    pub bucket: String,
    /// The policy document's text.
    pub policy: String,
}

/// A bucket's public access block set (`v1.bucket.public_access_block.set`): the four
/// settings S3 has, each `false` when not given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicAccessBlockSet {
    /// Bucket name.
    pub bucket: String,
    /// Refuse requests that set public ACLs.
    pub block_public_acls: bool,
    /// Ignore public ACLs when deciding.
    pub ignore_public_acls: bool,
    /// Refuse bucket policies that are public.
    pub block_public_policy: bool,
    /// While the bucket's policy is public, only the owner's account is let in.
    pub restrict_public_buckets: bool,
}

/// A bucket's object ownership set (`v1.bucket.ownership.set`): `BucketOwnerEnforced` (ACLs
/// disabled, what a bucket without this event has), `BucketOwnerPreferred` or `ObjectWriter`
/// (ACLs enabled).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnershipSet {
    /// Bucket name.
    pub bucket: String,
    /// The setting, as S3 spells it.
    pub ownership: String,
}

/// A bucket's ACL set (`v1.bucket.acl.set`): its grants besides the owner's full control,
/// which every bucket has.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketAclSet {
    /// Bucket name.
    pub bucket: String,
    /// The grants, as given (emails resolved to canonical ids before they are recorded).
    pub grants: Vec<AclEntry>,
}

/// An object version's ACL set (`v1.object.acl.set`): its owner, when another account than
/// the bucket's owns it, and its grants besides the owner's full control.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectAclSet {
    /// The version.
    pub version: VersionRef,
    /// The grants, as given.
    pub grants: Vec<AclEntry>,
    /// The id of the account that owns the version, when it is not the bucket's owner: the
    /// writer's account, under `ObjectWriter` or `BucketOwnerPreferred` (see
    /// [`crate::acl::ObjectAcl`]); absent when the bucket's owner owns it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
}

/// One ACL grant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AclEntry {
    /// Who is granted.
    pub grantee: AclGrantee,
    /// `READ`, `WRITE`, `READ_ACP`, `WRITE_ACP` or `FULL_CONTROL`.
    pub permission: String,
}

/// Whom an ACL grant names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AclGrantee {
    /// An account, by its canonical id.
    CanonicalUser(String),
    /// A group by its URI's last segment: `AllUsers`, `AuthenticatedUsers` or `LogDelivery`.
    Group(String),
}

/// A bucket's CORS configuration set (`v1.bucket.cors.set`): its rules, in the order a
/// browser's request is matched against them (the first that matches answers).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CorsSet {
    /// Bucket name.
    pub bucket: String,
    /// The rules, as the owner gave them (checked by the gateway before they were recorded).
    pub rules: Vec<CorsRule>,
}

/// A bucket's default encryption set (`v1.bucket.encryption.set`): how objects written
/// without an encryption header of their own are encrypted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketEncryptionSet {
    /// Bucket name.
    pub bucket: String,
    /// The default rule (S3 takes one).
    pub rule: EncryptionRule,
}

/// A bucket's default encryption, as `PutBucketEncryption` gave it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncryptionRule {
    /// The `x-amz-server-side-encryption` value applied: `AES256` or `aws:kms`.
    pub algorithm: String,
    /// For `aws:kms`: the id of the KMS key; absent for the default key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms_key_id: Option<String>,
    /// `BucketKeyEnabled`, given back as it was set.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub bucket_key_enabled: bool,
}

/// A bucket's tags set (`v1.bucket.tagging.set`): the whole set, replacing any before.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketTaggingSet {
    /// Bucket name.
    pub bucket: String,
    /// The tags, key to value (checked by the gateway before they were recorded).
    pub tags: StringMap,
}

/// One CORS rule: which origins may use which methods, with which request headers, and what
/// the browser is told.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CorsRule {
    /// The rule's id, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// `GET`, `PUT`, `POST`, `DELETE` or `HEAD`.
    pub allowed_methods: Vec<String>,
    /// Origins, each with at most one `*`.
    pub allowed_origins: Vec<String>,
    /// Request headers a preflight may ask for, each with at most one `*`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_headers: Vec<String>,
    /// Response headers the browser may show the page.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expose_headers: Vec<String>,
    /// How long the browser may cache the preflight's answer, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age_seconds: Option<i32>,
}

/// An account created (`v1.account.created`): it owns buckets and has users.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountCreated {
    /// The account's name, unique in the registry.
    pub account: String,
    /// Its 12-digit id, as policies and ARNs name it.
    pub id: String,
    /// Its email address, in lower case, by which ACLs may grant to it; absent for none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
}

/// A user of an account (`v1.user.created`, `v1.user.deleted`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRef {
    /// The account's name.
    pub account: String,
    /// The user's name, unique in its account; `root` is the account's root user.
    pub user: String,
}

/// An access key created for a user (`v1.access_key.created`). The secret is not in the
/// event: it is kept beside the log, and the root key's in the configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessKeyCreated {
    /// The account's name.
    pub account: String,
    /// The user's name.
    pub user: String,
    /// The access key id.
    pub access_key: String,
}

/// Whether an access key may sign requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AccessKeyStatus {
    /// It may.
    Active,
    /// It may not, until made active again.
    Inactive,
}

/// An access key made active or inactive (`v1.access_key.status.set`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessKeyStatusSet {
    /// The access key id.
    pub access_key: String,
    /// Its new status.
    pub status: AccessKeyStatus,
}

/// An access key named by an event (`v1.access_key.deleted`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessKeyRef {
    /// The access key id.
    pub access_key: String,
}

/// A user's inline identity policy set (`v1.user.policy.set`), checked before it was
/// recorded and returned as written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserPolicySet {
    /// The account's name.
    pub account: String,
    /// The user's name.
    pub user: String,
    /// The policy's name, unique per user.
    pub name: String,
    /// The policy document's text.
    pub policy: String,
}

/// A user's inline policy removed (`v1.user.policy.deleted`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserPolicyRef {
    /// The account's name.
    pub account: String,
    /// The user's name.
    pub user: String,
    /// The policy's name.
    pub name: String,
}

/// A lifecycle rule acted on a version or an upload (`v1.lifecycle.applied`). Recorded just
/// before the deletion, delete marker or abort it caused (actor `lifecycle`), so the history
/// of a version says which rule removed it and when that became due.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LifecycleApplied {
    /// Bucket name.
    pub bucket: String,
    /// Object key.
    pub key: String,
    /// The version acted on (absent for an upload).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
    /// The upload aborted (absent for a version).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upload_id: Option<String>,
    /// The rule's ID.
    pub rule_id: String,
    /// `expiration`, `expired_object_delete_marker`, `noncurrent_version_expiration` or
    /// `abort_incomplete_multipart_upload`.
    pub action: String,
    /// `delete_version`, `add_delete_marker` or `abort_upload`.
    pub effect: String,
    /// When the action became due, milliseconds since the epoch.
    pub due: i64,
}

/// An upload, named by its object and id (`v1.multipart.aborted`: it ended without an object).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadRef {
    /// Bucket name.
    pub bucket: String,
    /// Object key.
    pub key: String,
    /// Upload id.
    pub upload_id: String,
}

/// A prefix of a bucket sealed as a package (`v1.package.finalized`): from this event on, no
/// key under `prefix` may be written, deleted, tagged or have its retention changed. The
/// manifest it names lists every member; see `crate::packages`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageFinalized {
    /// The package's name, unique in the registry.
    pub name: String,
    /// Bucket name.
    pub bucket: String,
    /// The sealed key prefix (may be empty: the whole bucket).
    pub prefix: String,
    /// Key of the manifest object, `<prefix>.package.json`.
    pub manifest_key: String,
    /// Version id of the manifest object.
    pub manifest_version_id: String,
    /// BLAKE3 of the manifest's bytes, hex.
    pub manifest_blake3: String,
    /// Number of members.
    pub members: u64,
    /// Total size of the members in bytes.
    pub bytes: u64,
}

macro_rules! payloads {
    ($( $(#[$doc:meta])* $variant:ident($ty:ty) = $name:literal, $kind:literal; )*) => {
        /// Every event payload the registry knows, by type name.
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub enum Payload {
            $( $(#[$doc])* $variant($ty), )*
            /// A type this build does not know (written by a newer version). Replay skips it.
            Unknown {
                /// Its type name.
                event_type: String,
                /// Its canonical payload bytes, kept as they were.
                payload: Vec<u8>,
            },
        }

        impl Payload {
            /// The versioned type name, such as `v1.object.put`.
            #[must_use]
            pub fn event_type(&self) -> &str {
                match self {
                    $( Payload::$variant(_) => $name, )*
                    Payload::Unknown { event_type, .. } => event_type,
                }
            }

            /// What kind of subject the event is about.
            #[must_use]
            pub fn subject_kind(&self) -> &'static str {
                match self {
                    $( Payload::$variant(_) => $kind, )*
                    Payload::Unknown { .. } => "unknown",
                }
            }

            /// The canonical payload bytes.
            #[must_use]
            pub fn encode(&self) -> Vec<u8> {
                match self {
                    $( Payload::$variant(p) => canonical_json(p), )*
                    Payload::Unknown { payload, .. } => payload.clone(),
                }
            }

            /// Decodes a stored payload by its type name.
            ///
            /// # Errors
            /// The JSON error when a known type's bytes do not parse.
            pub fn decode(event_type: &str, payload: &[u8]) -> Result<Self, serde_json::Error> {
                Ok(match event_type {
                    $( $name => Payload::$variant(serde_json::from_slice(payload)?), )*
                    other => Payload::Unknown { event_type: other.to_owned(), payload: payload.to_vec() },
                })
            }
        }
    };
}

payloads! {
    /// `v1.bucket.created`
    BucketCreated(BucketCreated) = "v1.bucket.created", "bucket";
    /// `v1.bucket.deleted`
    BucketDeleted(BucketRef) = "v1.bucket.deleted", "bucket";
    /// `v1.bucket.versioning.set`
    VersioningSet(VersioningSet) = "v1.bucket.versioning.set", "bucket";
    /// `v1.bucket.object_lock.set`
    ObjectLockSet(ObjectLockSet) = "v1.bucket.object_lock.set", "bucket";
    /// `v1.bucket.lifecycle.set`
    LifecycleSet(LifecycleSet) = "v1.bucket.lifecycle.set", "bucket";
    /// `v1.bucket.lifecycle.deleted`
    LifecycleDeleted(BucketRef) = "v1.bucket.lifecycle.deleted", "bucket";
    /// `v1.bucket.policy.set`
    BucketPolicySet(BucketPolicySet) = "v1.bucket.policy.set", "bucket";
    /// `v1.bucket.policy.deleted`
    BucketPolicyDeleted(BucketRef) = "v1.bucket.policy.deleted", "bucket";
    /// `v1.lifecycle.applied`
    LifecycleApplied(LifecycleApplied) = "v1.lifecycle.applied", "object";
    /// `v1.object.put`
    ObjectPut(ObjectPut) = "v1.object.put", "object";
    /// `v1.object.deleted`
    ObjectDeleted(ObjectDeleted) = "v1.object.deleted", "object";
    /// `v1.object.delete_marker.created`
    DeleteMarkerCreated(VersionRef) = "v1.object.delete_marker.created", "object";
    /// `v1.object.tagging.set`
    TaggingSet(TaggingSet) = "v1.object.tagging.set", "object";
    /// `v1.object.keys.rewrapped`
    KeysRewrapped(KeysRewrapped) = "v1.object.keys.rewrapped", "object";
    /// `v1.object.retrieved`
    Retrieved(Retrieved) = "v1.object.retrieved", "object";
    /// `v1.blob.corrupt`
    BlobCorrupt(BlobCorrupt) = "v1.blob.corrupt", "object";
    /// `v1.retention.set`
    RetentionSet(RetentionSet) = "v1.retention.set", "object";
    /// `v1.retention.bypassed`
    RetentionBypassed(RetentionBypassed) = "v1.retention.bypassed", "object";
    /// `v1.legal_hold.set`
    LegalHoldSet(LegalHoldSet) = "v1.legal_hold.set", "object";
    /// `v1.multipart.created`
    MultipartCreated(MultipartCreated) = "v1.multipart.created", "object";
    /// `v1.multipart.part.uploaded`
    PartUploaded(PartUploaded) = "v1.multipart.part.uploaded", "object";
    /// `v1.multipart.completed`
    MultipartCompleted(MultipartCompleted) = "v1.multipart.completed", "object";
    /// `v1.multipart.aborted`
    MultipartAborted(UploadRef) = "v1.multipart.aborted", "object";
    /// `v1.package.finalized`
    PackageFinalized(PackageFinalized) = "v1.package.finalized", "package";
    /// `v1.bucket.public_access_block.set`
    PublicAccessBlockSet(PublicAccessBlockSet) = "v1.bucket.public_access_block.set", "bucket";
    /// `v1.bucket.public_access_block.deleted`
    PublicAccessBlockDeleted(BucketRef) = "v1.bucket.public_access_block.deleted", "bucket";
    /// `v1.bucket.cors.set`
    CorsSet(CorsSet) = "v1.bucket.cors.set", "bucket";
    /// `v1.bucket.cors.deleted`
    CorsDeleted(BucketRef) = "v1.bucket.cors.deleted", "bucket";
    /// `v1.bucket.ownership.set`
    OwnershipSet(OwnershipSet) = "v1.bucket.ownership.set", "bucket";
    /// `v1.bucket.ownership.deleted`
    OwnershipDeleted(BucketRef) = "v1.bucket.ownership.deleted", "bucket";
    /// `v1.bucket.acl.set`
    BucketAclSet(BucketAclSet) = "v1.bucket.acl.set", "bucket";
    /// `v1.object.acl.set`
    ObjectAclSet(ObjectAclSet) = "v1.object.acl.set", "object";
    /// `v1.account.created`
    AccountCreated(AccountCreated) = "v1.account.created", "account";
    /// `v1.user.created`
    UserCreated(UserRef) = "v1.user.created", "user";
    /// `v1.user.deleted`
    UserDeleted(UserRef) = "v1.user.deleted", "user";
    /// `v1.user.policy.set`
    UserPolicySet(UserPolicySet) = "v1.user.policy.set", "user";
    /// `v1.user.policy.deleted`
    UserPolicyDeleted(UserPolicyRef) = "v1.user.policy.deleted", "user";
    /// `v1.access_key.created`
    AccessKeyCreated(AccessKeyCreated) = "v1.access_key.created", "access_key";
    /// `v1.access_key.status.set`
    AccessKeyStatusSet(AccessKeyStatusSet) = "v1.access_key.status.set", "access_key";
    /// `v1.access_key.deleted`
    AccessKeyDeleted(AccessKeyRef) = "v1.access_key.deleted", "access_key";
    /// `v1.bucket.tagging.set`
    BucketTaggingSet(BucketTaggingSet) = "v1.bucket.tagging.set", "bucket";
    /// `v1.bucket.tagging.deleted`
    BucketTaggingDeleted(BucketRef) = "v1.bucket.tagging.deleted", "bucket";
    /// `v1.bucket.encryption.set`
    BucketEncryptionSet(BucketEncryptionSet) = "v1.bucket.encryption.set", "bucket";
    /// `v1.bucket.encryption.deleted`
    BucketEncryptionDeleted(BucketRef) = "v1.bucket.encryption.deleted", "bucket";
    /// `v1.encryption.master_key.set`
    MasterKeySet(MasterKeySet) = "v1.encryption.master_key.set", "key";
}

impl Payload {
    /// The subject id: the bucket name, or `bucket/key` for everything that happens to an
    /// object (uploads included), so one query finds an object's whole history.
    #[must_use]
    pub fn subject_id(&self) -> String {
        let object = |bucket: &str, key: &str| format!("{bucket}/{key}");
        match self {
            Payload::BucketCreated(p) => p.bucket.clone(),
            Payload::BucketDeleted(p) | Payload::LifecycleDeleted(p) | Payload::BucketPolicyDeleted(p) => {
                p.bucket.clone()
            }
            Payload::BucketPolicySet(p) => p.bucket.clone(),
            Payload::PublicAccessBlockSet(p) => p.bucket.clone(),
            Payload::PublicAccessBlockDeleted(p) => p.bucket.clone(),
            Payload::CorsSet(p) => p.bucket.clone(),
            Payload::CorsDeleted(p) => p.bucket.clone(),
            Payload::BucketTaggingSet(p) => p.bucket.clone(),
            Payload::BucketTaggingDeleted(p) => p.bucket.clone(),
            Payload::BucketEncryptionSet(p) => p.bucket.clone(),
            Payload::BucketEncryptionDeleted(p) => p.bucket.clone(),
            Payload::OwnershipSet(p) => p.bucket.clone(),
            Payload::OwnershipDeleted(p) => p.bucket.clone(),
            Payload::BucketAclSet(p) => p.bucket.clone(),
            Payload::VersioningSet(p) => p.bucket.clone(),
            Payload::ObjectLockSet(p) => p.bucket.clone(),
            Payload::LifecycleSet(p) => p.bucket.clone(),
            Payload::ObjectPut(p) => object(&p.bucket, &p.key),
            Payload::ObjectDeleted(ObjectDeleted { version: v, .. })
            | Payload::DeleteMarkerCreated(v)
            | Payload::TaggingSet(TaggingSet { version: v, .. })
            | Payload::KeysRewrapped(KeysRewrapped { version: v, .. })
            | Payload::Retrieved(Retrieved { version: v, .. })
            | Payload::RetentionSet(RetentionSet { version: v, .. })
            | Payload::RetentionBypassed(RetentionBypassed { version: v, .. })
            | Payload::LegalHoldSet(LegalHoldSet { version: v, .. })
            | Payload::ObjectAclSet(ObjectAclSet { version: v, .. }) => object(&v.bucket, &v.key),
            Payload::BlobCorrupt(BlobCorrupt { subject, .. }) => match subject {
                CorruptSubject::Version(v) => object(&v.bucket, &v.key),
                CorruptSubject::Part(p) => object(&p.bucket, &p.key),
            },
            Payload::MultipartCreated(p) => object(&p.bucket, &p.key),
            Payload::PartUploaded(p) => object(&p.bucket, &p.key),
            Payload::MultipartCompleted(p) => object(&p.version.bucket, &p.version.key),
            Payload::MultipartAborted(p) => object(&p.bucket, &p.key),
            Payload::LifecycleApplied(p) => object(&p.bucket, &p.key),
            // A package belongs to its bucket's history (its manifest object has its own).
            Payload::PackageFinalized(p) => p.bucket.clone(),
            // An identity's history: the account, `account/user`, or the access key id.
            Payload::AccountCreated(p) => p.account.clone(),
            Payload::UserCreated(p) | Payload::UserDeleted(p) => object(&p.account, &p.user),
            Payload::UserPolicySet(p) => object(&p.account, &p.user),
            Payload::UserPolicyDeleted(p) => object(&p.account, &p.user),
            Payload::AccessKeyCreated(p) => p.access_key.clone(),
            Payload::AccessKeyStatusSet(p) => p.access_key.clone(),
            Payload::AccessKeyDeleted(p) => p.access_key.clone(),
            Payload::MasterKeySet(p) => p.key_id.clone(),
            Payload::Unknown { .. } => String::new(),
        }
    }
}

/// Serialises `value` in the canonical encoding described in the module docs.
fn canonical_json<T: Serialize>(value: &T) -> Vec<u8> {
    // Serialising our own payload types cannot fail: they hold only strings, integers,
    // booleans, ordered maps and JSON values.
    canonical_bytes(&serde_json::to_value(value).expect("payload types always serialise"))
}

/// The canonical bytes of a JSON value.
pub(crate) fn canonical_bytes(value: &serde_json::Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &serde_json::Value, out: &mut Vec<u8>) {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push(b'{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_scalar(&Value::String(key.clone()), out);
                out.push(b':');
                write_canonical(item, out);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(item, out);
            }
            out.push(b']');
        }
        scalar => write_scalar(scalar, out),
    }
}

fn write_scalar(value: &serde_json::Value, out: &mut Vec<u8>) {
    serde_json::to_writer(out, value).expect("writing JSON to a Vec cannot fail");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_encoding_sorts_keys_at_every_depth() {
        let value = serde_json::json!({"b": 1, "a": {"d": [true, null], "c": "x"}});
        let mut out = Vec::new();
        write_canonical(&value, &mut out);
        assert_eq!(out, br#"{"a":{"c":"x","d":[true,null]},"b":1}"#);
    }

    #[test]
    fn payload_round_trips_through_its_type_name() {
        let payload = Payload::LegalHoldSet(LegalHoldSet {
            version: VersionRef { bucket: "b".into(), key: "k/ü".into(), version_id: "v1".into() },
            on: true,
        });
        let bytes = payload.encode();
        assert_eq!(
            String::from_utf8(bytes.clone()).unwrap(),
            r#"{"bucket":"b","key":"k/ü","on":true,"version_id":"v1"}"#
        );
        assert_eq!(Payload::decode("v1.legal_hold.set", &bytes).unwrap(), payload);
        assert_eq!(payload.subject_id(), "b/k/ü");
    }

    #[test]
    fn a_corrupt_read_names_a_version_or_an_uploads_part() {
        let version = VersionRef { bucket: "b".into(), key: "k".into(), version_id: "v1".into() };
        let part = PartRef { bucket: "b".into(), key: "k".into(), upload_id: "u1".into(), part_number: 3 };
        let corrupt = |subject| {
            Payload::BlobCorrupt(BlobCorrupt {
                subject,
                blobs: vec!["x".into()],
                reason: CorruptReason::DigestMismatch,
                range: None,
            })
        };
        let (of_version, of_part) = (corrupt(CorruptSubject::Version(version)), corrupt(CorruptSubject::Part(part)));
        assert_eq!(
            String::from_utf8(of_version.encode()).unwrap(),
            r#"{"blobs":["x"],"bucket":"b","key":"k","reason":"digest_mismatch","version_id":"v1"}"#
        );
        assert_eq!(
            String::from_utf8(of_part.encode()).unwrap(),
            r#"{"blobs":["x"],"bucket":"b","key":"k","part_number":3,"reason":"digest_mismatch","upload_id":"u1"}"#
        );
        for payload in [of_version, of_part] {
            assert_eq!(Payload::decode("v1.blob.corrupt", &payload.encode()).unwrap(), payload);
            assert_eq!(payload.subject_id(), "b/k");
        }
    }

    #[test]
    fn unknown_types_keep_their_bytes() {
        let decoded = Payload::decode("v9.future.thing", b"{\"x\":1}").unwrap();
        assert_eq!(decoded.event_type(), "v9.future.thing");
        assert_eq!(decoded.encode(), b"{\"x\":1}");
    }
}
