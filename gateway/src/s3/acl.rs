//! ACLs and object ownership as AWS has them for new buckets since 2023: every bucket's
//! ownership is `BucketOwnerEnforced`, so ACLs are disabled. The bucket owner owns every
//! object; access is decided by policies alone ([`crate::auth::access`]).
//!
//! As on AWS with that setting, a request that sets an ACL granting anything beyond the
//! owner's full control (`--acl public-read`, `x-amz-grant-read: uri=...AllUsers`) is refused
//! with 400 `AccessControlListNotSupported` rather than accepted and ignored, and reading an
//! ACL answers the owner's `FULL_CONTROL`. Enabling ACLs (`ObjectWriter`,
//! `BucketOwnerPreferred`) is not supported yet and is refused.

use registry::policy::canonical_id;
use s3s::dto::*;
use s3s::{S3Request, S3Response, s3_error};

use super::Gateway;
use super::error::Result;
use super::lookup::{OnDeleteMarker, named_version};

/// Canned ACLs that grant nothing beyond the owner's full control.
const OWNER_ONLY: [&str; 2] = ["private", "bucket-owner-full-control"];

/// The headers that set ACLs on a write.
const GRANT_HEADERS: [&str; 5] = [
    "x-amz-grant-read",
    "x-amz-grant-write",
    "x-amz-grant-read-acp",
    "x-amz-grant-write-acp",
    "x-amz-grant-full-control",
];

fn not_supported() -> s3s::S3Error {
    let mut err = s3s::S3Error::with_message(
        s3s::S3ErrorCode::Custom("AccessControlListNotSupported".into()),
        "The bucket does not allow ACLs",
    );
    err.set_status_code(http::StatusCode::BAD_REQUEST);
    err
}

/// Refuses a write (PutObject, CopyObject, CreateMultipartUpload) that sets an ACL granting
/// more than the owner's full control, before its body is read.
///
/// # Errors
/// 400 `AccessControlListNotSupported`.
pub(super) fn check_write(headers: &http::HeaderMap) -> Result<()> {
    let canned = headers.get("x-amz-acl").and_then(|v| v.to_str().ok());
    if canned.is_some_and(|acl| !OWNER_ONLY.contains(&acl)) || GRANT_HEADERS.iter().any(|h| headers.contains_key(*h)) {
        return Err(not_supported().into());
    }
    Ok(())
}

/// Refuses a CreateBucket that sets an ACL or asks for ownership that enables ACLs.
///
/// # Errors
/// 400 `InvalidBucketAclWithObjectOwnership`, 501 `NotImplemented` for ACL-enabled ownership.
pub(super) fn check_create(headers: &http::HeaderMap) -> Result<()> {
    let ownership = headers.get("x-amz-object-ownership").and_then(|v| v.to_str().ok());
    if ownership.is_some_and(|o| o != ObjectOwnership::BUCKET_OWNER_ENFORCED) {
        return Err(acl_enabling_ownership().into());
    }
    let canned = headers.get("x-amz-acl").and_then(|v| v.to_str().ok());
    if canned.is_some_and(|acl| acl != "private") || GRANT_HEADERS.iter().any(|h| headers.contains_key(*h)) {
        let mut err = s3s::S3Error::with_message(
            s3s::S3ErrorCode::Custom("InvalidBucketAclWithObjectOwnership".into()),
            "Bucket cannot have ACLs set with ObjectOwnership's BucketOwnerEnforced setting",
        );
        err.set_status_code(http::StatusCode::BAD_REQUEST);
        return Err(err.into());
    }
    Ok(())
}

fn acl_enabling_ownership() -> s3s::S3Error {
    s3_error!(NotImplemented, "ACLs are not supported: every bucket's object ownership is BucketOwnerEnforced")
}

/// The owner's full control: the one grant a bucket or object has (`NoSuchBucket` when the
/// bucket does not exist).
async fn owner_only(gw: &Gateway, bucket: &str) -> Result<(Owner, Grants)> {
    let name = bucket.to_owned();
    let account = gw
        .registry
        .read(move |reads| {
            let Some(bucket) = reads.bucket(&name)? else { return Err(registry::Error::NoSuchBucket(name)) };
            // A bucket created by a configured key belongs to the root account.
            match reads.account_of_key(&bucket.owner)? {
                Some(account) => Ok(Some(account)),
                None => reads.account(registry::state::ROOT_ACCOUNT),
            }
        })
        .await?;
    let (name, id) = account.map(|a| (a.name, canonical_id(&a.id))).unwrap_or_default();
    let owner = Owner { display_name: Some(name.clone()), id: Some(id.clone()) };
    let grant = Grant {
        grantee: Some(Grantee {
            display_name: Some(name),
            id: Some(id),
            type_: Type::from_static(Type::CANONICAL_USER),
            email_address: None,
            uri: None,
        }),
        permission: Some(Permission::from_static(Permission::FULL_CONTROL)),
    };
    Ok((owner, vec![grant]))
}

/// Whether an ACL a request sets grants only the owner's full control.
fn owner_only_acl(canned: Option<&str>, policy: Option<&AccessControlPolicy>, headers: &http::HeaderMap) -> bool {
    if GRANT_HEADERS.iter().any(|h| headers.contains_key(*h)) {
        return false;
    }
    if let Some(canned) = canned {
        return OWNER_ONLY.contains(&canned);
    }
    let Some(policy) = policy else { return true };
    let owner = policy.owner.as_ref().and_then(|o| o.id.as_deref());
    policy.grants.iter().flatten().all(|grant| {
        let full = grant.permission.as_ref().is_some_and(|p| p.as_str() == Permission::FULL_CONTROL);
        let grantee = grant.grantee.as_ref();
        full && grantee.is_some_and(|g| g.uri.is_none() && g.email_address.is_none() && g.id.as_deref() == owner)
    })
}

pub(super) async fn get_bucket_acl(
    gw: &Gateway,
    req: S3Request<GetBucketAclInput>,
) -> Result<S3Response<GetBucketAclOutput>> {
    let (owner, grants) = owner_only(gw, &req.input.bucket).await?;
    Ok(S3Response::new(GetBucketAclOutput { grants: Some(grants), owner: Some(owner) }))
}

pub(super) async fn put_bucket_acl(
    gw: &Gateway,
    req: S3Request<PutBucketAclInput>,
) -> Result<S3Response<PutBucketAclOutput>> {
    owner_only(gw, &req.input.bucket).await?;
    let canned = req.input.acl.as_ref().map(BucketCannedACL::as_str);
    if !owner_only_acl(canned, req.input.access_control_policy.as_ref(), &req.headers) {
        return Err(not_supported().into());
    }
    Ok(S3Response::new(PutBucketAclOutput {}))
}

pub(super) async fn get_object_acl(
    gw: &Gateway,
    req: S3Request<GetObjectAclInput>,
) -> Result<S3Response<GetObjectAclOutput>> {
    let input = &req.input;
    named_version(gw, &input.bucket, &input.key, input.version_id.as_deref(), OnDeleteMarker::LockRead).await?;
    let (owner, grants) = owner_only(gw, &input.bucket).await?;
    Ok(S3Response::new(GetObjectAclOutput { grants: Some(grants), owner: Some(owner), request_charged: None }))
}

pub(super) async fn put_object_acl(
    gw: &Gateway,
    req: S3Request<PutObjectAclInput>,
) -> Result<S3Response<PutObjectAclOutput>> {
    let input = &req.input;
    named_version(gw, &input.bucket, &input.key, input.version_id.as_deref(), OnDeleteMarker::LockRead).await?;
    let canned = input.acl.as_ref().map(ObjectCannedACL::as_str);
    if !owner_only_acl(canned, input.access_control_policy.as_ref(), &req.headers) {
        return Err(not_supported().into());
    }
    Ok(S3Response::new(PutObjectAclOutput { request_charged: None }))
}

pub(super) async fn get_bucket_ownership_controls(
    gw: &Gateway,
    req: S3Request<GetBucketOwnershipControlsInput>,
) -> Result<S3Response<GetBucketOwnershipControlsOutput>> {
    owner_only(gw, &req.input.bucket).await?;
    let rule = OwnershipControlsRule {
        object_ownership: ObjectOwnership::from_static(ObjectOwnership::BUCKET_OWNER_ENFORCED),
    };
    Ok(S3Response::new(GetBucketOwnershipControlsOutput {
        ownership_controls: Some(OwnershipControls { rules: vec![rule] }),
    }))
}

pub(super) async fn put_bucket_ownership_controls(
    gw: &Gateway,
    req: S3Request<PutBucketOwnershipControlsInput>,
) -> Result<S3Response<PutBucketOwnershipControlsOutput>> {
    owner_only(gw, &req.input.bucket).await?;
    let rules = &req.input.ownership_controls.rules;
    if rules.iter().any(|rule| rule.object_ownership.as_str() != ObjectOwnership::BUCKET_OWNER_ENFORCED) {
        return Err(acl_enabling_ownership().into());
    }
    // The one setting every bucket has: nothing changes, nothing is recorded.
    Ok(S3Response::new(PutBucketOwnershipControlsOutput {}))
}

pub(super) async fn delete_bucket_ownership_controls(
    gw: &Gateway,
    req: S3Request<DeleteBucketOwnershipControlsInput>,
) -> Result<S3Response<DeleteBucketOwnershipControlsOutput>> {
    owner_only(gw, &req.input.bucket).await?;
    // Deleting them would make the bucket ObjectWriter, which enables ACLs.
    Err(acl_enabling_ownership().into())
}
