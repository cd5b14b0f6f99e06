//! Object tags: GetObjectTagging, PutObjectTagging, DeleteObjectTagging. A tag change is an
//! event on the version; the bytes are untouched.

use registry::event::v1::StringMap;
use s3s::dto::*;
use s3s::{S3Request, S3Response};

use super::bucket::require_bucket;
use super::error::Result;
use super::lookup::{OnDeleteMarker, named_version};
use super::{Gateway, caller, wire};

pub(super) async fn get_object_tagging(
    gw: &Gateway,
    req: S3Request<GetObjectTaggingInput>,
) -> Result<S3Response<GetObjectTaggingOutput>> {
    let input = &req.input;
    let bucket = require_bucket(gw, &input.bucket).await?;
    let version =
        named_version(gw, &input.bucket, &input.key, input.version_id.as_deref(), OnDeleteMarker::Tagging).await?;
    let tag_set =
        version.content.tags.iter().map(|(k, v)| Tag { key: Some(k.clone()), value: Some(v.clone()) }).collect();
    Ok(S3Response::new(GetObjectTaggingOutput {
        tag_set,
        version_id: wire::version_id_header(&bucket, &version.version_id),
    }))
}

pub(super) async fn put_object_tagging(
    gw: &Gateway,
    req: S3Request<PutObjectTaggingInput>,
) -> Result<S3Response<PutObjectTaggingOutput>> {
    let input = &req.input;
    let tags = wire::check_tags(
        input.tagging.tag_set.iter().map(|t| (t.key.clone().unwrap_or_default(), t.value.clone().unwrap_or_default())),
    )?;
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
