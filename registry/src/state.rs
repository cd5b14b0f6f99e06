//! The registry's state as the views hold it: the records that commands check and queries
//! return, and that the lifecycle rules plan over. Plain data, with no storage behind it.

use crate::event::v1::{DefaultRetention, MultipartCreated, ObjectContent, Origin, Retention, VersioningStatus};

/// The version id S3 gives versions written while versioning is not enabled.
pub const NULL_VERSION: &str = "null";

/// A bucket and its settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bucket {
    /// Name.
    pub name: String,
    /// Sequence of the event that created it: what came before belongs to an earlier bucket
    /// of the same name.
    pub created_seq: u64,
    /// Creation time, milliseconds since the epoch.
    pub created_at: i64,
    /// Region reported by GetBucketLocation.
    pub region: String,
    /// Access key that created it.
    pub owner: String,
    /// `None` for a bucket that never had versioning enabled.
    pub versioning: Option<VersioningStatus>,
    /// Whether Object Lock is enabled (for good).
    pub object_lock_enabled: bool,
    /// Default retention for new versions.
    pub default_retention: Option<DefaultRetention>,
    /// Lifecycle rules as stored.
    pub lifecycle: Option<serde_json::Value>,
    /// How objects written without an encryption header of their own are encrypted.
    pub default_encryption: Option<crate::event::v1::EncryptionRule>,
}

impl Bucket {
    /// Whether new writes get their own version id (as opposed to replacing `null`).
    #[must_use]
    pub fn versioning_enabled(&self) -> bool {
        self.versioning == Some(VersioningStatus::Enabled)
    }
}

/// One version of an object, or a delete marker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectVersion {
    /// Bucket.
    pub bucket: String,
    /// Key.
    pub key: String,
    /// Version id (`null` for the null version).
    pub version_id: String,
    /// Sequence of the event that created it.
    pub sequence: u64,
    /// Creation time (Last-Modified), milliseconds since the epoch.
    pub created_at: i64,
    /// Whether it is the key's current version.
    pub is_latest: bool,
    /// Whether it is a delete marker (then `content` is empty).
    pub is_delete_marker: bool,
    /// Content description.
    pub content: ObjectContent,
    /// How it came to be (`None` for delete markers).
    pub origin: Option<Origin>,
    /// Access key (or system actor) that created it.
    pub actor: String,
    /// Retention, if any.
    pub retention: Option<Retention>,
    /// Legal hold.
    pub legal_hold: bool,
}

/// A multipart upload in progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upload {
    /// What it will create.
    pub created: MultipartCreated,
    /// When it was created.
    pub created_at: i64,
    /// Who created it.
    pub initiator: String,
}

/// An account: it owns the buckets its users create, and has users.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// Its name, unique in the registry.
    pub name: String,
    /// Its 12-digit id, as ARNs and policies name it.
    pub id: String,
    /// Its email address, in lower case, by which ACLs may grant to it.
    pub email: Option<String>,
    /// Creation time, milliseconds since the epoch.
    pub created_at: i64,
}

/// A user of an account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountUser {
    /// The account's name.
    pub account: String,
    /// The user's name, unique in its account; [`ROOT_USER`] is the account's root user.
    pub name: String,
    /// Creation time, milliseconds since the epoch.
    pub created_at: i64,
}

/// The name of every account's root user.
pub const ROOT_USER: &str = "root";

/// The name of the account that the first start creates for the root credentials.
pub const ROOT_ACCOUNT: &str = "root";

/// An access key and whom it belongs to (its secret is never part of the state).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessKey {
    /// The access key id.
    pub access_key: String,
    /// The owning user's account.
    pub account: String,
    /// The owning user.
    pub user: String,
    /// Whether it may sign requests.
    pub active: bool,
    /// Creation time, milliseconds since the epoch.
    pub created_at: i64,
    /// Whether it was deleted (its record stays, naming whom its events came from).
    pub deleted: bool,
}

/// A bucket's public access block: S3's four settings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PublicAccessBlock {
    /// Refuse requests that set public ACLs.
    pub block_public_acls: bool,
    /// Ignore public ACLs when deciding.
    pub ignore_public_acls: bool,
    /// Refuse bucket policies that are public.
    pub block_public_policy: bool,
    /// While the bucket's policy is public, only the owner's account is let in.
    pub restrict_public_buckets: bool,
}
