//! Bucket policies: Put/Get/DeleteBucketPolicy and GetBucketPolicyStatus. The registry
//! checks a policy before recording it; [`crate::auth::access`] enforces it.

use registry::policy::{Policy, PolicyKind};
use s3s::dto::*;
use s3s::{S3Request, S3Response};

use super::error::Result;
use super::{Gateway, caller};

pub(super) async fn put_bucket_policy(
    gw: &Gateway,
    req: S3Request<PutBucketPolicyInput>,
) -> Result<S3Response<PutBucketPolicyOutput>> {
    let policy = req.input.policy.clone();
    gw.registry.set_bucket_policy(caller(&req), &req.input.bucket, policy).await?;
    gw.grants.changed();
    Ok(S3Response::with_status(PutBucketPolicyOutput::default(), http::StatusCode::NO_CONTENT))
}

/// The bucket's policy document as its owner wrote it.
async fn policy_of(gw: &Gateway, bucket: &str) -> Result<String> {
    let name = bucket.to_owned();
    let policy = gw
        .registry
        .read(move |reads| match reads.bucket(&name)? {
            Some(_) => reads.bucket_policy(&name)?.ok_or(registry::Error::NoSuchBucketPolicy),
            None => Err(registry::Error::NoSuchBucket(name)),
        })
        .await?;
    Ok(policy)
}

pub(super) async fn get_bucket_policy(
    gw: &Gateway,
    req: S3Request<GetBucketPolicyInput>,
) -> Result<S3Response<GetBucketPolicyOutput>> {
    let policy = policy_of(gw, &req.input.bucket).await?;
    Ok(S3Response::new(GetBucketPolicyOutput { policy: Some(policy) }))
}

pub(super) async fn delete_bucket_policy(
    gw: &Gateway,
    req: S3Request<DeleteBucketPolicyInput>,
) -> Result<S3Response<DeleteBucketPolicyOutput>> {
    gw.registry.delete_bucket_policy(caller(&req), &req.input.bucket).await?;
    gw.grants.changed();
    Ok(S3Response::with_status(DeleteBucketPolicyOutput::default(), http::StatusCode::NO_CONTENT))
}

/// Whether the policy makes the bucket public, as the public access block judges it.
pub(super) async fn get_bucket_policy_status(
    gw: &Gateway,
    req: S3Request<GetBucketPolicyStatusInput>,
) -> Result<S3Response<GetBucketPolicyStatusOutput>> {
    let text = policy_of(gw, &req.input.bucket).await?;
    let is_public = Policy::parse(&text, PolicyKind::Bucket).is_ok_and(|policy| policy.is_public());
    Ok(S3Response::new(GetBucketPolicyStatusOutput {
        policy_status: Some(PolicyStatus { is_public: Some(is_public) }),
    }))
}
