//! ACLs and object ownership. A bucket's ownership is `BucketOwnerEnforced` unless its
//! creator or owner chose otherwise, the setting AWS gives new buckets since 2023: ACLs are
//! disabled and access is decided by policies alone. `BucketOwnerPreferred` and
//! `ObjectWriter` (or deleted controls) enable ACLs on the bucket: its grants, to accounts by
//! canonical id and to the `AllUsers` and `AuthenticatedUsers` groups, are recorded as events
//! and let requests in ([`crate::auth::access`], `registry::acl`).
//!
//! Object ACLs likewise: a write or `PutObjectAcl` on an ACL-enabled bucket records the
//! version's grants; on a bucket without ACLs, one that grants more than the owner's full
//! control is refused with 400 `AccessControlListNotSupported` rather than accepted and
//! ignored.

use registry::acl::{
    GROUP_URI_PREFIX, GROUPS, ObjectAcl, Ownership, PERMISSIONS, canned_bucket_acl, canned_object_acl,
};
use registry::event::v1::{AclEntry, AclGrantee, VersionRef};
use registry::policy::canonical_id;
use s3s::dto::*;
use s3s::{S3Request, S3Response, s3_error};

use super::error::{Result, unlisted};
use super::lookup::{OnDeleteMarker, named_version};
use super::owner::{bucket_owner, owner_of_account};
use super::{Gateway, caller};
use crate::request::WriterOwns;

/// Canned ACLs that grant nothing beyond the owner's full control.
const OWNER_ONLY: [&str; 2] = ["private", "bucket-owner-full-control"];

/// The headers that set ACLs, each with the permission it grants.
const GRANT_HEADERS: [(&str, &str); 5] = [
    ("x-amz-grant-read", "READ"),
    ("x-amz-grant-write", "WRITE"),
    ("x-amz-grant-read-acp", "READ_ACP"),
    ("x-amz-grant-write-acp", "WRITE_ACP"),
    ("x-amz-grant-full-control", "FULL_CONTROL"),
];

/// The object ACL a write (PutObject, CopyObject, CreateMultipartUpload, a form upload)
/// gives its version: its owner when the access hook found the writer owns it
/// ([`WriterOwns`]), and the grants it asks for with `x-amz-acl` or `x-amz-grant-*` besides
/// the owner's full control; decided before its body is read. Most writes ask for none and
/// cost no read.
///
/// # Errors
/// 400 `AccessControlListNotSupported` for grants on a bucket whose ownership disables ACLs,
/// `InvalidArgument` for an unknown canned ACL or grantee, `NoSuchBucket`.
pub(super) async fn write_acl(
    gw: &Gateway,
    bucket: &str,
    headers: &http::HeaderMap,
    writer: Option<&WriterOwns>,
) -> Result<ObjectAcl> {
    let canned = headers.get("x-amz-acl").and_then(|v| v.to_str().ok());
    let asks = canned.is_some_and(|acl| !OWNER_ONLY.contains(&acl))
        || GRANT_HEADERS.iter().any(|(h, _)| headers.contains_key(*h));
    let owner = writer.map(|w| w.0.clone());
    if !asks && owner.is_none() {
        return Ok(ObjectAcl::default());
    }
    let bucket_owner = bucket_owner(gw, bucket).await?;
    let name = bucket.to_owned();
    if !gw.registry.read(move |reads| reads.bucket_ownership(&name)).await?.acls_enabled() {
        return Err(registry::Error::AclsDisabled.into());
    }
    // `bucket-owner-*` grant to the bucket's owner when the writer owns the object.
    let to_bucket_owner = owner.as_ref().and(bucket_owner.id.as_deref());
    let canned = canned.map(|name| canned_grants(name, |n| canned_object_acl(n, to_bucket_owner))).transpose()?;
    let object_owner = owner.as_deref().map(canonical_id).or(bucket_owner.id);
    let grants = requested_grants(gw, canned, None, headers, object_owner.as_deref()).await?;
    Ok(ObjectAcl { owner, grants })
}

/// The ownership and bucket ACL grants a CreateBucket asks for.
///
/// # Errors
/// `InvalidArgument` for an unknown ownership or canned ACL, what [`grants_of_headers`] refuses.
pub(super) async fn requested_at_creation(
    gw: &Gateway,
    headers: &http::HeaderMap,
) -> Result<(Option<Ownership>, Vec<AclEntry>)> {
    let ownership = match headers.get("x-amz-object-ownership") {
        None => None,
        Some(value) => Some(value.to_str().ok().and_then(Ownership::parse).ok_or_else(|| {
            s3_error!(
                InvalidArgument,
                "Invalid x-amz-object-ownership header: {}",
                String::from_utf8_lossy(value.as_bytes())
            )
        })?),
    };
    let canned = headers.get("x-amz-acl").and_then(|v| v.to_str().ok());
    let canned = canned.map(|name| canned_grants(name, canned_bucket_acl)).transpose()?;
    Ok((ownership, requested_grants(gw, canned, None, headers, None).await?))
}

/// The grants of the canned ACL `name`, from `table`.
fn canned_grants(name: &str, table: impl Fn(&str) -> Option<Vec<AclEntry>>) -> Result<Vec<AclEntry>> {
    table(name).ok_or_else(|| s3_error!(InvalidArgument, "Invalid canned ACL: {name}").into())
}

/// A grantee as a request names it: grants by email address are resolved to their
/// account's canonical id before they are recorded.
enum Named {
    Grantee(AclGrantee),
    Email(String),
}

/// The grants an ACL request asks for besides the owner's full control: a canned ACL, the
/// `x-amz-grant-*` headers, or an `AccessControlPolicy` document.
async fn requested_grants(
    gw: &Gateway,
    canned: Option<Vec<AclEntry>>,
    policy: Option<&AccessControlPolicy>,
    headers: &http::HeaderMap,
    owner: Option<&str>,
) -> Result<Vec<AclEntry>> {
    let mut named = Vec::new();
    for (header, permission) in GRANT_HEADERS {
        for value in headers.get_all(header).iter() {
            let value = value.to_str().map_err(|_| s3_error!(InvalidArgument, "Invalid {header} header"))?;
            for grantee in value.split(',').map(str::trim).filter(|g| !g.is_empty()) {
                named.push((grantee_of_header(grantee)?, permission));
            }
        }
    }
    for grant in policy.and_then(|p| p.grants.as_ref()).into_iter().flatten() {
        let permission = grant.permission.as_ref().map(Permission::as_str).unwrap_or_default();
        let permission = PERMISSIONS.into_iter().find(|p| *p == permission).ok_or_else(malformed_acl)?;
        let grantee = grant.grantee.as_ref().ok_or_else(malformed_acl)?;
        let grantee = match (grantee.id.as_deref(), grantee.uri.as_deref(), grantee.email_address.as_deref()) {
            (Some(id), None, None) => Named::Grantee(AclGrantee::CanonicalUser(id.to_owned())),
            (None, Some(uri), None) => Named::Grantee(group_of_uri(uri)?),
            (None, None, Some(email)) => Named::Email(email.to_owned()),
            _ => return Err(malformed_acl().into()),
        };
        named.push((grantee, permission));
    }
    let mut grants = canned.unwrap_or_default();
    for (grantee, permission) in named {
        let grantee = match grantee {
            Named::Grantee(grantee) => grantee,
            Named::Email(email) => account_of_email(gw, email).await?,
        };
        grants.push(AclEntry { grantee, permission: permission.to_owned() });
    }
    // The owner's full control is every bucket's: not recorded.
    grants.retain(|g| {
        !(g.permission == "FULL_CONTROL" && owner.is_some_and(|o| g.grantee == AclGrantee::CanonicalUser(o.to_owned())))
    });
    Ok(grants)
}

/// One grantee of an `x-amz-grant-*` header: `id="..."`, `uri="..."` or `emailAddress="..."`.
fn grantee_of_header(grantee: &str) -> Result<Named> {
    let (kind, value) =
        grantee.split_once('=').ok_or_else(|| s3_error!(InvalidArgument, "Invalid grantee: {grantee}"))?;
    let value = value.trim().trim_matches('"');
    match kind.trim() {
        "id" => Ok(Named::Grantee(AclGrantee::CanonicalUser(value.to_owned()))),
        "uri" => Ok(Named::Grantee(group_of_uri(value)?)),
        "emailAddress" => Ok(Named::Email(value.to_owned())),
        _ => Err(s3_error!(InvalidArgument, "Invalid grantee: {grantee}").into()),
    }
}

/// The account an email address names (`account create --email`), as its canonical id, which
/// is what S3 records and answers for a grant by email.
async fn account_of_email(gw: &Gateway, email: String) -> Result<AclGrantee> {
    let account = gw.registry.read(move |reads| reads.account_by_email(&email)).await?;
    let account = account.ok_or_else(unresolvable_email)?;
    Ok(AclGrantee::CanonicalUser(canonical_id(&account.id)))
}

fn group_of_uri(uri: &str) -> Result<AclGrantee> {
    match uri.strip_prefix(GROUP_URI_PREFIX) {
        Some(group) if GROUPS.contains(&group) => Ok(AclGrantee::Group(group.to_owned())),
        _ => Err(s3_error!(InvalidArgument, "Invalid group uri").into()),
    }
}

fn malformed_acl() -> s3s::S3Error {
    s3_error!(
        MalformedACLError,
        "The XML you provided was not well-formed or did not validate against our published schema"
    )
}

/// No account has the email address a grant names.
fn unresolvable_email() -> s3s::S3Error {
    s3_error!(UnresolvableGrantByEmailAddress, "The e-mail address you provided does not match any account on record.")
}

/// The owner's full control, which every bucket and object has.
fn owner_grant(owner: &Owner) -> Grant {
    Grant {
        grantee: Some(Grantee {
            display_name: owner.display_name.clone(),
            id: owner.id.clone(),
            type_: Type::from_static(Type::CANONICAL_USER),
            email_address: None,
            uri: None,
        }),
        permission: Some(Permission::from_static(Permission::FULL_CONTROL)),
    }
}

fn answered_grant(entry: AclEntry) -> Grant {
    let grantee = match entry.grantee {
        AclGrantee::CanonicalUser(id) => Grantee {
            display_name: None,
            id: Some(id),
            type_: Type::from_static(Type::CANONICAL_USER),
            email_address: None,
            uri: None,
        },
        AclGrantee::Group(group) => Grantee {
            display_name: None,
            id: None,
            type_: Type::from_static(Type::GROUP),
            email_address: None,
            uri: Some(format!("{GROUP_URI_PREFIX}{group}")),
        },
    };
    Grant { grantee: Some(grantee), permission: Some(Permission::from(entry.permission)) }
}

pub(super) async fn get_bucket_acl(
    gw: &Gateway,
    req: S3Request<GetBucketAclInput>,
) -> Result<S3Response<GetBucketAclOutput>> {
    let owner = bucket_owner(gw, &req.input.bucket).await?;
    let name = req.input.bucket.clone();
    let recorded = gw.registry.read(move |reads| reads.bucket_acl(&name)).await?;
    let grants = std::iter::once(owner_grant(&owner)).chain(recorded.into_iter().map(answered_grant)).collect();
    Ok(S3Response::new(GetBucketAclOutput { grants: Some(grants), owner: Some(owner) }))
}

pub(super) async fn put_bucket_acl(
    gw: &Gateway,
    req: S3Request<PutBucketAclInput>,
) -> Result<S3Response<PutBucketAclOutput>> {
    let owner = bucket_owner(gw, &req.input.bucket).await?;
    let canned = req.input.acl.as_ref().map(|acl| canned_grants(acl.as_str(), canned_bucket_acl)).transpose()?;
    let policy = req.input.access_control_policy.as_ref();
    let grants = requested_grants(gw, canned, policy, &req.headers, owner.id.as_deref()).await?;
    let name = req.input.bucket.clone();
    let ownership = gw.registry.read(move |reads| reads.bucket_ownership(&name)).await?;
    if grants.is_empty() && !ownership.acls_enabled() {
        // The owner's full control alone, on a bucket without ACLs: what it has already.
        return Ok(S3Response::new(PutBucketAclOutput {}));
    }
    gw.registry.set_bucket_acl(caller(&req), &req.input.bucket, grants).await?;
    gw.grants.changed();
    Ok(S3Response::new(PutBucketAclOutput {}))
}

/// A version's recorded ACL, and its owner as S3 names it: the account recorded as its
/// owner while the bucket's ownership enables ACLs, else the bucket's owner (who owns every
/// object of a `BucketOwnerEnforced` bucket).
async fn version_acl(gw: &Gateway, bucket: &str, key: &str, version_id: String) -> Result<(Owner, ObjectAcl)> {
    let bucket_owner = bucket_owner(gw, bucket).await?;
    let (bucket, key) = (bucket.to_owned(), key.to_owned());
    let (acl, owner) = gw
        .registry
        .read(move |reads| {
            let acl = reads.object_acl(&bucket, &key, &version_id)?;
            let owner = match &acl.owner {
                Some(id) if reads.bucket_ownership(&bucket)?.acls_enabled() => owner_of_account(reads, id)?,
                _ => None,
            };
            Ok((acl, owner))
        })
        .await?;
    Ok((owner.unwrap_or(bucket_owner), acl))
}

pub(super) async fn get_object_acl(
    gw: &Gateway,
    req: S3Request<GetObjectAclInput>,
) -> Result<S3Response<GetObjectAclOutput>> {
    let input = &req.input;
    let version =
        named_version(gw, &input.bucket, &input.key, input.version_id.as_deref(), OnDeleteMarker::LockRead).await?;
    let (owner, recorded) = version_acl(gw, &input.bucket, &input.key, version.version_id).await?;
    let grants = std::iter::once(owner_grant(&owner)).chain(recorded.grants.into_iter().map(answered_grant)).collect();
    Ok(S3Response::new(GetObjectAclOutput { grants: Some(grants), owner: Some(owner), request_charged: None }))
}

pub(super) async fn put_object_acl(
    gw: &Gateway,
    req: S3Request<PutObjectAclInput>,
) -> Result<S3Response<PutObjectAclOutput>> {
    let input = &req.input;
    let version =
        named_version(gw, &input.bucket, &input.key, input.version_id.as_deref(), OnDeleteMarker::LockRead).await?;
    let (owner, _) = version_acl(gw, &input.bucket, &input.key, version.version_id).await?;
    // `bucket-owner-*` grant to the bucket's owner when another account owns the object.
    let bucket_owner = bucket_owner(gw, &input.bucket).await?.id.filter(|id| owner.id.as_ref() != Some(id));
    let canned = input
        .acl
        .as_ref()
        .map(|acl| canned_grants(acl.as_str(), |n| canned_object_acl(n, bucket_owner.as_deref())))
        .transpose()?;
    let policy = input.access_control_policy.as_ref();
    let grants = requested_grants(gw, canned, policy, &req.headers, owner.id.as_deref()).await?;
    let name = input.bucket.clone();
    let ownership = gw.registry.read(move |reads| reads.bucket_ownership(&name)).await?;
    if grants.is_empty() && !ownership.acls_enabled() {
        // The owner's full control alone, on a bucket without ACLs: what it has already.
        return Ok(S3Response::new(PutObjectAclOutput { request_charged: None }));
    }
    let target = VersionRef {
        bucket: input.bucket.clone(),
        key: input.key.clone(),
        version_id: input.version_id.clone().unwrap_or_default(),
    };
    gw.registry.set_object_acl(caller(&req), target, input.version_id.is_some(), grants).await?;
    Ok(S3Response::new(PutObjectAclOutput { request_charged: None }))
}

pub(super) async fn get_bucket_ownership_controls(
    gw: &Gateway,
    req: S3Request<GetBucketOwnershipControlsInput>,
) -> Result<S3Response<GetBucketOwnershipControlsOutput>> {
    bucket_owner(gw, &req.input.bucket).await?;
    let name = req.input.bucket.clone();
    let ownership = gw.registry.read(move |reads| reads.bucket_ownership(&name)).await?;
    let Some(name) = ownership.name() else {
        let message = "The bucket ownership controls were not found";
        return Err(unlisted("OwnershipControlsNotFoundError", http::StatusCode::NOT_FOUND, message).into());
    };
    let rule = OwnershipControlsRule { object_ownership: ObjectOwnership::from(name.to_owned()) };
    Ok(S3Response::new(GetBucketOwnershipControlsOutput {
        ownership_controls: Some(OwnershipControls { rules: vec![rule] }),
    }))
}

pub(super) async fn put_bucket_ownership_controls(
    gw: &Gateway,
    req: S3Request<PutBucketOwnershipControlsInput>,
) -> Result<S3Response<PutBucketOwnershipControlsOutput>> {
    bucket_owner(gw, &req.input.bucket).await?;
    let [rule] = req.input.ownership_controls.rules.as_slice() else {
        return Err(s3_error!(
            MalformedXML,
            "The XML you provided was not well-formed or did not validate against our published schema"
        )
        .into());
    };
    let ownership = Ownership::parse(rule.object_ownership.as_str()).ok_or_else(|| {
        s3_error!(
            MalformedXML,
            "The XML you provided was not well-formed or did not validate against our published schema"
        )
    })?;
    gw.registry.set_ownership(caller(&req), &req.input.bucket, ownership).await?;
    gw.grants.changed();
    Ok(S3Response::new(PutBucketOwnershipControlsOutput {}))
}

pub(super) async fn delete_bucket_ownership_controls(
    gw: &Gateway,
    req: S3Request<DeleteBucketOwnershipControlsInput>,
) -> Result<S3Response<DeleteBucketOwnershipControlsOutput>> {
    bucket_owner(gw, &req.input.bucket).await?;
    gw.registry.delete_ownership(caller(&req), &req.input.bucket).await?;
    gw.grants.changed();
    Ok(S3Response::with_status(DeleteBucketOwnershipControlsOutput {}, http::StatusCode::NO_CONTENT))
}
