//! Buckets: create, delete, head, list, location (versioning lives in `versioning.rs`). Bucket names are checked by
//! s3s against AWS's rules before a request reaches us.

use std::sync::Arc;

use registry::queries::Bucket;
use registry::state::ROOT_ACCOUNT;
use s3s::dto::*;
use s3s::{S3Request, S3Response, s3_error};

use super::error::Result;
use super::owner::account_owner;
use super::{Gateway, caller, wire};
use crate::auth::access::Requester;
use crate::request::MaySetBucketAcl;

/// Reads a bucket, or `NoSuchBucket`: from memory when the registry keeps it.
pub(super) async fn require_bucket(gw: &Gateway, name: &str) -> Result<Arc<Bucket>> {
    let bucket = gw.registry.bucket(name).await?;
    bucket.ok_or_else(|| registry::Error::NoSuchBucket(name.to_owned()).into())
}

pub(super) async fn list_buckets(
    gw: &Gateway,
    req: S3Request<ListBucketsInput>,
) -> Result<S3Response<ListBucketsOutput>> {
    let prefix = req.input.prefix.clone().unwrap_or_default();
    // Each account sees its own buckets, and is named as their owner.
    // (The access hook names every signed request's account; an anonymous one is refused.)
    let Some(requester) = req.extensions.get::<Requester>().cloned() else {
        return Err(s3_error!(AccessDenied, "Access Denied").into());
    };
    let owner = account_owner(requester.account.clone(), &requester.id);
    let requester = requester.account;
    let buckets = gw.registry.read(move |reads| reads.account_buckets(&requester)).await?;
    let buckets = buckets
        .into_iter()
        .filter(|b| b.name.starts_with(&prefix))
        .map(|b| s3s::dto::Bucket {
            bucket_region: Some(b.region.clone()),
            creation_date: Some(wire::whole_seconds(b.created_at)),
            name: Some(b.name),
        })
        .collect();
    Ok(S3Response::new(ListBucketsOutput {
        buckets: Some(buckets),
        owner: Some(owner),
        prefix: req.input.prefix,
        ..Default::default()
    }))
}

/// Prefixes and suffixes AWS reserves for its own kinds of buckets (s3s checks the rest of
/// the naming rules).
const RESERVED_PREFIXES: [&str; 3] = ["xn--", "sthree-", "amzn-s3-demo-"];
const RESERVED_SUFFIXES: [&str; 5] = ["-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"];

fn check_bucket_name(name: &str) -> Result<()> {
    let reserved =
        RESERVED_PREFIXES.iter().any(|p| name.starts_with(p)) || RESERVED_SUFFIXES.iter().any(|s| name.ends_with(s));
    if reserved {
        return Err(s3_error!(InvalidBucketName, "The specified bucket is not valid.").into());
    }
    Ok(())
}

pub(super) async fn create_bucket(
    gw: &Gateway,
    req: S3Request<CreateBucketInput>,
) -> Result<S3Response<CreateBucketOutput>> {
    check_bucket_name(&req.input.bucket)?;
    let (ownership, grants) = super::acl::requested_at_creation(gw, &req.headers).await?;
    let region = &gw.config.server.region;
    let constraint = req.input.create_bucket_configuration.as_ref().and_then(|c| c.location_constraint.as_ref());
    // us-east-1 is the one region whose buckets carry no location constraint.
    if let Some(constraint) = constraint
        && constraint.as_str() != region
    {
        return Err(s3_error!(
            IllegalLocationConstraintException,
            "The {} location constraint is incompatible for the region specific endpoint this request was sent to.",
            constraint.as_str()
        )
        .into());
    }
    let lock = req.input.object_lock_enabled_for_bucket == Some(true);
    let requested_grants = grants.clone();
    match gw.registry.create_bucket_with(caller(&req), &req.input.bucket, region, lock, ownership, grants).await {
        Ok(_) => {}
        // The name is taken: by the requester's own account (S3 answers that it is yours),
        // or by another's.
        Err(registry::Error::BucketAlreadyExists(name)) => {
            let requester = req.extensions.get::<Requester>().map(|r| r.account.clone());
            let owner = gw
                .registry
                .read(move |reads| {
                    let Some(bucket) = reads.bucket(&name)? else { return Ok(None) };
                    Ok(reads.account_of_key(&bucket.owner)?.map(|account| account.name))
                })
                .await?
                .unwrap_or_else(|| ROOT_ACCOUNT.to_owned());
            // An anonymous requester owns no bucket.
            if requester.is_none_or(|requester| requester != owner) {
                return Err(s3_error!(
                    BucketAlreadyExists,
                    "The requested bucket name is not available. The bucket namespace is shared by all users of the system. Please select a different name and try again."
                )
                .into());
            }
            // us-east-1 keeps its legacy answer: 200, and the bucket's ACL reset to the one
            // the request asks for (private when it asks none). Every other region answers
            // BucketAlreadyOwnedByYou.
            if region != "us-east-1" {
                return Err(registry::Error::BucketAlreadyExists(req.input.bucket.clone()).into());
            }
            let name = req.input.bucket.clone();
            let current = gw.registry.read(move |reads| reads.bucket_acl(&name)).await?;
            if current != requested_grants {
                // The reset is a PutBucketAcl: only for who may make one.
                if req.extensions.get::<MaySetBucketAcl>().is_none() {
                    return Err(s3_error!(AccessDenied, "Access Denied").into());
                }
                gw.registry.set_bucket_acl(caller(&req), &req.input.bucket, requested_grants).await?;
            }
        }
        Err(err) => return Err(err.into()),
    }
    // A grant cached for the name while it had no bucket is stale now.
    gw.grants.changed();
    Ok(S3Response::new(CreateBucketOutput { location: Some(format!("/{}", req.input.bucket)) }))
}

pub(super) async fn head_bucket(gw: &Gateway, req: S3Request<HeadBucketInput>) -> Result<S3Response<HeadBucketOutput>> {
    let bucket = require_bucket(gw, &req.input.bucket).await?;
    Ok(S3Response::new(HeadBucketOutput { bucket_region: Some(bucket.region.clone()), ..Default::default() }))
}

pub(super) async fn delete_bucket(
    gw: &Gateway,
    req: S3Request<DeleteBucketInput>,
) -> Result<S3Response<DeleteBucketOutput>> {
    gw.registry.delete_bucket(caller(&req), &req.input.bucket).await?;
    // The bucket's policy went with it.
    gw.grants.changed();
    Ok(S3Response::new(DeleteBucketOutput {}))
}

pub(super) async fn get_bucket_location(
    gw: &Gateway,
    req: S3Request<GetBucketLocationInput>,
) -> Result<S3Response<GetBucketLocationOutput>> {
    let bucket = require_bucket(gw, &req.input.bucket).await?;
    let location_constraint =
        (bucket.region != "us-east-1").then(|| BucketLocationConstraint::from(bucket.region.clone()));
    Ok(S3Response::new(GetBucketLocationOutput { location_constraint }))
}
