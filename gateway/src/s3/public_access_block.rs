//! Put/Get/DeletePublicAccessBlock at bucket level. The registry records the settings and
//! refuses a public policy under `BlockPublicPolicy`; [`crate::auth::access`] applies
//! `RestrictPublicBuckets` and `IgnorePublicAcls` (grants to groups count for nothing); the
//! registry refuses a public ACL under `BlockPublicAcls` (ACLs themselves: [`super::acl`]).

use registry::event::v1::PublicAccessBlockSet;
use s3s::dto::*;
use s3s::{S3Request, S3Response};

use super::error::{Result, unlisted};
use super::{Gateway, caller};

pub(super) async fn put_public_access_block(
    gw: &Gateway,
    req: S3Request<PutPublicAccessBlockInput>,
) -> Result<S3Response<PutPublicAccessBlockOutput>> {
    let config = &req.input.public_access_block_configuration;
    let block = PublicAccessBlockSet {
        bucket: req.input.bucket.clone(),
        block_public_acls: config.block_public_acls == Some(true),
        ignore_public_acls: config.ignore_public_acls == Some(true),
        block_public_policy: config.block_public_policy == Some(true),
        restrict_public_buckets: config.restrict_public_buckets == Some(true),
    };
    gw.registry.set_public_access_block(caller(&req), block).await?;
    gw.grants.changed();
    Ok(S3Response::new(PutPublicAccessBlockOutput {}))
}

pub(super) async fn get_public_access_block(
    gw: &Gateway,
    req: S3Request<GetPublicAccessBlockInput>,
) -> Result<S3Response<GetPublicAccessBlockOutput>> {
    let name = req.input.bucket.clone();
    let block = gw
        .registry
        .read(move |reads| match reads.bucket(&name)? {
            Some(_) => reads.public_access_block(&name),
            None => Err(registry::Error::NoSuchBucket(name)),
        })
        .await?;
    let Some(block) = block else {
        let message = "The public access block configuration was not found";
        return Err(unlisted("NoSuchPublicAccessBlockConfiguration", http::StatusCode::NOT_FOUND, message).into());
    };
    Ok(S3Response::new(GetPublicAccessBlockOutput {
        public_access_block_configuration: Some(PublicAccessBlockConfiguration {
            block_public_acls: Some(block.block_public_acls),
            ignore_public_acls: Some(block.ignore_public_acls),
            block_public_policy: Some(block.block_public_policy),
            restrict_public_buckets: Some(block.restrict_public_buckets),
        }),
    }))
}

pub(super) async fn delete_public_access_block(
    gw: &Gateway,
    req: S3Request<DeletePublicAccessBlockInput>,
) -> Result<S3Response<DeletePublicAccessBlockOutput>> {
    gw.registry.delete_public_access_block(caller(&req), &req.input.bucket).await?;
    gw.grants.changed();
    Ok(S3Response::with_status(DeletePublicAccessBlockOutput {}, http::StatusCode::NO_CONTENT))
}
