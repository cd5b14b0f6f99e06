//! Bucket ACLs and object ownership, as S3 has them: which ownership setting enables ACLs,
//! which grants are public, and what a bucket's grants give a request. Pure, like
//! [`crate::policy`], whose evaluator takes the answer as its [`AclGrant`].
//!
//! Every bucket's owner has full control whatever its ACL says; the ACL recorded holds the
//! other grants. A bucket without an ownership event is `BucketOwnerEnforced`, as AWS creates
//! buckets since 2023: ACLs are disabled and refused.

use crate::event::v1::{AclEntry, AclGrantee};
use crate::policy::AclGrant;

/// A bucket's object ownership.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Ownership {
    /// ACLs disabled: the default.
    #[default]
    BucketOwnerEnforced,
    /// ACLs enabled; the bucket owner owns objects written with `bucket-owner-full-control`.
    BucketOwnerPreferred,
    /// ACLs enabled; the writer owns its objects.
    ObjectWriter,
    /// The controls were deleted: ACLs enabled, as with `ObjectWriter`.
    Unset,
}

impl Ownership {
    /// The setting S3 spells `name`; `None` for another name.
    #[must_use]
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "BucketOwnerEnforced" => Self::BucketOwnerEnforced,
            "BucketOwnerPreferred" => Self::BucketOwnerPreferred,
            "ObjectWriter" => Self::ObjectWriter,
            _ => return None,
        })
    }

    /// S3's name for the setting; `None` once the controls were deleted.
    #[must_use]
    pub fn name(self) -> Option<&'static str> {
        match self {
            Self::BucketOwnerEnforced => Some("BucketOwnerEnforced"),
            Self::BucketOwnerPreferred => Some("BucketOwnerPreferred"),
            Self::ObjectWriter => Some("ObjectWriter"),
            Self::Unset => None,
        }
    }

    /// Whether ACLs are read and may be set.
    #[must_use]
    pub fn acls_enabled(self) -> bool {
        self != Self::BucketOwnerEnforced
    }
}

/// An object version's ACL: who owns it and what it grants besides the owner's full control.
///
/// The bucket's owner owns the versions written into its bucket, except where the bucket's
/// ownership lets the writer own them: under `ObjectWriter` (or deleted controls) another
/// account's writes are that account's, and under `BucketOwnerPreferred` too unless written
/// with `bucket-owner-full-control`. The owner of a version, not of its bucket, grants reads
/// and ACL changes on it ([`granted_by_object_owner`]); the bucket's owner keeps deleting
/// it, and its policy can still deny. While the bucket is `BucketOwnerEnforced` the bucket's
/// owner owns every version again, whatever was recorded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectAcl {
    /// The id of the account that owns the version, when it is not the bucket's owner.
    pub owner: Option<String>,
    /// The grants besides the owner's full control.
    pub grants: Vec<AclEntry>,
}

impl ObjectAcl {
    /// Whether there is nothing to record: the bucket's owner owns the version and nothing
    /// else is granted.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.owner.is_none() && self.grants.is_empty()
    }
}

/// Whether a version written by `writer` (an account id) into a bucket owned by
/// `bucket_owner` under `ownership` is the writer's, as S3 decides it; `owner_full_control`
/// says the write asked for `bucket-owner-full-control`.
#[must_use]
pub fn writer_owns(ownership: Ownership, bucket_owner: &str, writer: &str, owner_full_control: bool) -> bool {
    writer != bucket_owner
        && match ownership {
            Ownership::BucketOwnerEnforced => false,
            Ownership::BucketOwnerPreferred => !owner_full_control,
            Ownership::ObjectWriter | Ownership::Unset => true,
        }
}

/// Whether the owner of an object version, rather than of its bucket, grants `action` on
/// it: what reads it or changes its ACL, tags, retention or legal hold. Writing a new
/// version and deleting one are the bucket's to grant, as on S3 (a bucket's owner may
/// always delete what others wrote into it).
#[must_use]
pub fn granted_by_object_owner(action: &str) -> bool {
    let action = action.strip_prefix("s3:").unwrap_or(action);
    matches!(
        action,
        "GetObject"
            | "GetObjectVersion"
            | "GetObjectAcl"
            | "GetObjectVersionAcl"
            | "PutObjectAcl"
            | "PutObjectVersionAcl"
            | "GetObjectTagging"
            | "GetObjectVersionTagging"
            | "PutObjectTagging"
            | "PutObjectVersionTagging"
            | "DeleteObjectTagging"
            | "DeleteObjectVersionTagging"
            | "GetObjectAttributes"
            | "GetObjectVersionAttributes"
            | "GetObjectRetention"
            | "PutObjectRetention"
            | "GetObjectLegalHold"
            | "PutObjectLegalHold"
    )
}

/// The groups S3 grants to, by their URI's last segment.
pub const GROUPS: [&str; 3] = ["AllUsers", "AuthenticatedUsers", "LogDelivery"];

/// The URI prefix of S3's groups.
pub const GROUP_URI_PREFIX: &str = "http://acs.amazonaws.com/groups/global/";

/// The permissions a grant may give.
pub const PERMISSIONS: [&str; 5] = ["READ", "WRITE", "READ_ACP", "WRITE_ACP", "FULL_CONTROL"];

/// Whether a grant is public: to everyone, or to every signed request.
#[must_use]
pub fn is_public(entry: &AclEntry) -> bool {
    matches!(&entry.grantee, AclGrantee::Group(group) if group == "AllUsers" || group == "AuthenticatedUsers")
}

/// The grants of a canned bucket ACL, besides the owner's full control; `None` for a name S3
/// does not know.
#[must_use]
pub fn canned_bucket_acl(name: &str) -> Option<Vec<AclEntry>> {
    let group = |group: &str, permission: &str| AclEntry {
        grantee: AclGrantee::Group(group.to_owned()),
        permission: permission.to_owned(),
    };
    Some(match name {
        "private" => Vec::new(),
        "public-read" => vec![group("AllUsers", "READ")],
        "public-read-write" => vec![group("AllUsers", "READ"), group("AllUsers", "WRITE")],
        "authenticated-read" => vec![group("AuthenticatedUsers", "READ")],
        "log-delivery-write" => vec![group("LogDelivery", "WRITE"), group("LogDelivery", "READ_ACP")],
        _ => return None,
    })
}

/// The grants of a canned object ACL, besides the object owner's full control; `None` for a
/// name S3 does not know. `bucket_owner` is the bucket owner's canonical id when another
/// account owns the object: `bucket-owner-read` and `bucket-owner-full-control` grant to it
/// (and nothing when the bucket's owner owns the object, as it has full control already).
#[must_use]
pub fn canned_object_acl(name: &str, bucket_owner: Option<&str>) -> Option<Vec<AclEntry>> {
    let to_bucket_owner = |permission: &str| {
        bucket_owner
            .map(|id| AclEntry { grantee: AclGrantee::CanonicalUser(id.to_owned()), permission: permission.to_owned() })
            .into_iter()
            .collect()
    };
    match name {
        "bucket-owner-read" => Some(to_bucket_owner("READ")),
        "bucket-owner-full-control" => Some(to_bucket_owner("FULL_CONTROL")),
        "aws-exec-read" => Some(Vec::new()),
        "log-delivery-write" => None,
        other => canned_bucket_acl(other),
    }
}

/// The object permission an action needs, for the actions an object ACL speaks on.
fn object_permission_for(action: &str) -> Option<&'static str> {
    let action = action.strip_prefix("s3:").unwrap_or(action);
    Some(match action {
        "GetObject" | "GetObjectVersion" => "READ",
        "GetObjectAcl" | "GetObjectVersionAcl" => "READ_ACP",
        "PutObjectAcl" | "PutObjectVersionAcl" => "WRITE_ACP",
        _ => return None,
    })
}

/// What an object's `grants` give `requester` for `action`, as [`bucket_grant`] for a bucket.
#[must_use]
pub fn object_grant(grants: &[AclEntry], action: &str, requester: Requester<'_>, public_allowed: bool) -> AclGrant {
    match object_permission_for(action) {
        Some(needed) => grant_for(grants, needed, requester, public_allowed),
        None => AclGrant::None,
    }
}

/// The bucket permission an action needs, for the actions a bucket ACL speaks on.
fn permission_for(action: &str) -> Option<&'static str> {
    let action = action.strip_prefix("s3:").unwrap_or(action);
    Some(match action {
        "ListBucket" | "ListBucketVersions" | "ListBucketMultipartUploads" => "READ",
        // AWS lets WRITE delete versions for the bucket owner alone, who needs no grant.
        "PutObject" | "DeleteObject" => "WRITE",
        "GetBucketAcl" => "READ_ACP",
        "PutBucketAcl" => "WRITE_ACP",
        _ => return None,
    })
}

/// Who asks, as a bucket ACL tells requesters apart.
#[derive(Debug, Clone, Copy)]
pub enum Requester<'a> {
    /// An unsigned request.
    Anonymous,
    /// A signed request from the account with this canonical id.
    Account(&'a str),
}

/// What the bucket's `grants` give `requester` for `action`. Public grants count only when
/// `public_allowed` (the public access block's `IgnorePublicAcls` says not).
#[must_use]
pub fn bucket_grant(grants: &[AclEntry], action: &str, requester: Requester<'_>, public_allowed: bool) -> AclGrant {
    match permission_for(action) {
        Some(needed) => grant_for(grants, needed, requester, public_allowed),
        None => AclGrant::None,
    }
}

fn grant_for(grants: &[AclEntry], needed: &str, requester: Requester<'_>, public_allowed: bool) -> AclGrant {
    let mut grant = AclGrant::None;
    for entry in grants.iter().filter(|e| e.permission == needed || e.permission == "FULL_CONTROL") {
        match (&entry.grantee, requester) {
            (AclGrantee::Group(group), _) if group == "AllUsers" && public_allowed => return AclGrant::Everyone,
            (AclGrantee::Group(group), Requester::Account(_)) if group == "AuthenticatedUsers" && public_allowed => {
                return AclGrant::Everyone;
            }
            (AclGrantee::CanonicalUser(id), Requester::Account(account)) if id == account => {
                grant = AclGrant::RequesterAccount;
            }
            _ => {}
        }
    }
    grant
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_public_read_bucket_lists_for_everyone_and_writes_for_no_one() {
        let grants = canned_bucket_acl("public-read").expect("canned ACL");
        assert_eq!(bucket_grant(&grants, "s3:ListBucket", Requester::Anonymous, true), AclGrant::Everyone);
        assert_eq!(bucket_grant(&grants, "s3:PutObject", Requester::Anonymous, true), AclGrant::None);
        assert_eq!(bucket_grant(&grants, "s3:ListBucket", Requester::Anonymous, false), AclGrant::None);
        assert_eq!(bucket_grant(&grants, "s3:GetObject", Requester::Anonymous, true), AclGrant::None);
        let read_write = canned_bucket_acl("public-read-write").expect("canned ACL");
        assert_eq!(bucket_grant(&read_write, "s3:DeleteObject", Requester::Anonymous, true), AclGrant::Everyone);
        // Deleting versions through WRITE is the bucket owner's alone on AWS.
        assert_eq!(bucket_grant(&read_write, "s3:DeleteObjectVersion", Requester::Anonymous, true), AclGrant::None);
    }

    #[test]
    fn an_accounts_grant_reaches_that_account_only() {
        let grants =
            [AclEntry { grantee: AclGrantee::CanonicalUser("c0ffee".into()), permission: "FULL_CONTROL".into() }];
        assert_eq!(
            bucket_grant(&grants, "s3:PutObject", Requester::Account("c0ffee"), true),
            AclGrant::RequesterAccount
        );
        assert_eq!(bucket_grant(&grants, "s3:PutObject", Requester::Account("beef"), true), AclGrant::None);
        let authenticated = canned_bucket_acl("authenticated-read").expect("canned ACL");
        assert_eq!(bucket_grant(&authenticated, "s3:ListBucket", Requester::Anonymous, true), AclGrant::None);
        assert_eq!(bucket_grant(&authenticated, "s3:ListBucket", Requester::Account("beef"), true), AclGrant::Everyone);
    }
}
