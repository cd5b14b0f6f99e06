//! Tags: of objects (GetObjectTagging, PutObjectTagging, DeleteObjectTagging; a change is an
//! event on the version, the bytes are untouched) and of buckets (Get/Put/DeleteBucketTagging,
//! events on the bucket).

use registry::event::v1::{BucketTaggingSet, StringMap};
use s3s::dto::*;
use s3s::{S3Request, S3Response, s3_error};

use super::bucket::require_bucket;
use super::error::Result;
use super::lookup::{OnDeleteMarker, named_version};
use super::{Gateway, caller, wire};

/// A Tagging document's tags as (key, value) pairs, for the checks of [`wire`].
fn pairs(tagging: &Tagging) -> impl Iterator<Item = (String, String)> + '_ {
    tagging.tag_set.iter().map(|t| (t.key.clone().unwrap_or_default(), t.value.clone().unwrap_or_default()))
}

/// Stored tags as a response's TagSet.
fn tag_set(tags: &StringMap) -> Vec<Tag> {
    tags.iter().map(|(k, v)| Tag { key: Some(k.clone()), value: Some(v.clone()) }).collect()
}

pub(super) async fn get_object_tagging(
    gw: &Gateway,
    req: S3Request<GetObjectTaggingInput>,
) -> Result<S3Response<GetObjectTaggingOutput>> {
    let input = &req.input;
    let bucket = require_bucket(gw, &input.bucket).await?;
    let version =
        named_version(gw, &input.bucket, &input.key, input.version_id.as_deref(), OnDeleteMarker::Tagging).await?;
    Ok(S3Response::new(GetObjectTaggingOutput {
        tag_set: tag_set(&version.content.tags),
        version_id: wire::version_id_header(&bucket, &version.version_id),
    }))
}

pub(super) async fn put_object_tagging(
    gw: &Gateway,
    req: S3Request<PutObjectTaggingInput>,
) -> Result<S3Response<PutObjectTaggingOutput>> {
    let input = &req.input;
    let tags = wire::check_tags(pairs(&input.tagging))?;
    let version_id = set_tags(gw, &req, &input.bucket, &input.key, input.version_id.clone(), tags).await?;
    Ok(S3Response::new(PutObjectTaggingOutput { version_id }))
}

pub(super) async fn delete_object_tagging(
    gw: &Gateway,
    req: S3Request<DeleteObjectTaggingInput>,
) -> Result<S3Response<DeleteObjectTaggingOutput>> {
    let input = &req.input;
    let version_id = set_tags(gw, &req, &input.bucket, &input.key, input.version_id.clone(), StringMap::new()).await?;
    Ok(S3Response::new(DeleteObjectTaggingOutput { version_id }))
}

/// Records the new tag set and returns the `x-amz-version-id` to answer with.
async fn set_tags<T>(
    gw: &Gateway,
    req: &S3Request<T>,
    bucket: &str,
    key: &str,
    version_id: Option<String>,
    tags: StringMap,
) -> Result<Option<String>> {
    let stored = require_bucket(gw, bucket).await?;
    let version_id = gw.registry.set_tagging(caller(req), bucket, key, version_id, tags).await?;
    Ok(wire::version_id_header(&stored, &version_id))
}

pub(super) async fn get_bucket_tagging(
    gw: &Gateway,
    req: S3Request<GetBucketTaggingInput>,
) -> Result<S3Response<GetBucketTaggingOutput>> {
    let name = require_bucket(gw, &req.input.bucket).await?.name.clone();
    let tags = gw.registry.read(move |reads| reads.bucket_tags(&name)).await?;
    let Some(tags) = tags.filter(|tags| !tags.is_empty()) else {
        return Err(s3_error!(NoSuchTagSet, "The TagSet does not exist").into());
    };
    Ok(S3Response::new(GetBucketTaggingOutput { tag_set: tag_set(&tags) }))
}

pub(super) async fn put_bucket_tagging(
    gw: &Gateway,
    req: S3Request<PutBucketTaggingInput>,
) -> Result<S3Response<PutBucketTaggingOutput>> {
    let input = &req.input;
    let tags = wire::check_bucket_tags(pairs(&input.tagging))?;
    require_bucket(gw, &input.bucket).await?;
    // An empty set leaves the bucket without tags, as DeleteBucketTagging does.
    if tags.is_empty() {
        gw.registry.delete_bucket_tagging(caller(&req), &input.bucket).await?;
    } else {
        gw.registry.set_bucket_tagging(caller(&req), BucketTaggingSet { bucket: input.bucket.clone(), tags }).await?;
    }
    Ok(S3Response::new(PutBucketTaggingOutput::default()))
}

pub(super) async fn delete_bucket_tagging(
    gw: &Gateway,
    req: S3Request<DeleteBucketTaggingInput>,
) -> Result<S3Response<DeleteBucketTaggingOutput>> {
    require_bucket(gw, &req.input.bucket).await?;
    gw.registry.delete_bucket_tagging(caller(&req), &req.input.bucket).await?;
    Ok(S3Response::new(DeleteBucketTaggingOutput::default()))
}
