//! Versioning: Get/PutBucketVersioning, and ListObjectVersions, every version and delete
//! marker of a bucket, served from the registry's version rows (GET, HEAD, DELETE and copy
//! by `versionId` live with their families in `get_object.rs` and `object.rs`).

use registry::event::v1::VersioningStatus;
use registry::queries::VersionQuery;
use s3s::dto::*;
use s3s::{S3Request, S3Response, s3_error};

use super::bucket::require_bucket;
use super::error::Result;
use super::list::{Encoder, common_prefixes, max_keys};
use super::owner::{bucket_owner, version_owners};
use super::{Gateway, caller, wire};

pub(super) async fn list_object_versions(
    gw: &Gateway,
    req: S3Request<ListObjectVersionsInput>,
) -> Result<S3Response<ListObjectVersionsOutput>> {
    let input = req.input;
    require_bucket(gw, &input.bucket).await?;
    let encoder = Encoder::new(input.encoding_type.as_ref())?;
    // An empty delimiter groups nothing, and S3 does not echo it.
    let delimiter = input.delimiter.clone().filter(|d| !d.is_empty());
    let max = max_keys(input.max_keys)?;
    if input.version_id_marker.as_deref().is_some_and(|m| !m.is_empty())
        && input.key_marker.as_deref().is_none_or(str::is_empty)
    {
        return Err(s3_error!(InvalidArgument, "A version-id marker cannot be specified without a key marker.").into());
    }
    let query = VersionQuery {
        bucket: input.bucket.clone(),
        prefix: input.prefix.clone().unwrap_or_default(),
        delimiter: delimiter.clone(),
        key_marker: input.key_marker.clone(),
        version_id_marker: input.version_id_marker.clone(),
        max_keys: max,
    };
    let page = gw.registry.read(move |conn| conn.list_versions(&query)).await?;
    let owner = bucket_owner(gw, &input.bucket).await?;
    let listed = page.versions.iter().map(|v| (v.key.clone(), v.version_id.clone())).collect();
    let owners = version_owners(gw, &input.bucket, &owner, listed).await?;
    let mut versions = Vec::new();
    let mut delete_markers = Vec::new();
    for (version, version_owner) in page.versions.into_iter().zip(owners) {
        let last_modified = Some(wire::whole_seconds(version.created_at));
        if version.is_delete_marker {
            delete_markers.push(DeleteMarkerEntry {
                is_latest: Some(version.is_latest),
                key: Some(encoder.apply(version.key)),
                last_modified,
                owner: Some(owner.clone()),
                version_id: Some(version.version_id),
            });
            continue;
        }
        let algorithms: Vec<_> = version.content.checksums.keys().map(|n| ChecksumAlgorithm::from(n.clone())).collect();
        versions.push(ObjectVersion {
            checksum_algorithm: (!algorithms.is_empty()).then_some(algorithms),
            checksum_type: version.content.checksum_type.map(ChecksumType::from),
            e_tag: Some(wire::etag(&version.content.etag)),
            is_latest: Some(version.is_latest),
            key: Some(encoder.apply(version.key)),
            last_modified,
            owner: Some(version_owner),
            size: i64::try_from(version.content.size).ok(),
            storage_class: Some(ObjectVersionStorageClass::from(ObjectVersionStorageClass::STANDARD.to_owned())),
            version_id: Some(version.version_id),
            ..Default::default()
        });
    }
    Ok(S3Response::new(ListObjectVersionsOutput {
        name: Some(input.bucket),
        prefix: Some(encoder.apply(input.prefix.unwrap_or_default())),
        key_marker: Some(encoder.apply(input.key_marker.unwrap_or_default())),
        version_id_marker: Some(input.version_id_marker.unwrap_or_default()),
        max_keys: i32::try_from(max).ok(),
        is_truncated: Some(page.is_truncated),
        next_key_marker: page.next_key_marker.map(|m| encoder.apply(m)),
        next_version_id_marker: page.next_version_id_marker,
        versions: Some(versions),
        delete_markers: (!delete_markers.is_empty()).then_some(delete_markers),
        common_prefixes: common_prefixes(page.common_prefixes, &encoder),
        delimiter: delimiter.map(|d| encoder.apply(d)),
        encoding_type: input.encoding_type,
        ..Default::default()
    }))
}

pub(super) async fn get_bucket_versioning(
    gw: &Gateway,
    req: S3Request<GetBucketVersioningInput>,
) -> Result<S3Response<GetBucketVersioningOutput>> {
    let bucket = require_bucket(gw, &req.input.bucket).await?;
    let status = bucket.versioning.map(|status| {
        BucketVersioningStatus::from(
            match status {
                VersioningStatus::Enabled => BucketVersioningStatus::ENABLED,
                VersioningStatus::Suspended => BucketVersioningStatus::SUSPENDED,
            }
            .to_owned(),
        )
    });
    Ok(S3Response::new(GetBucketVersioningOutput { status, mfa_delete: None }))
}

pub(super) async fn put_bucket_versioning(
    gw: &Gateway,
    req: S3Request<PutBucketVersioningInput>,
) -> Result<S3Response<PutBucketVersioningOutput>> {
    let status = match req.input.versioning_configuration.status.as_ref().map(BucketVersioningStatus::as_str) {
        Some(BucketVersioningStatus::ENABLED) => VersioningStatus::Enabled,
        Some(BucketVersioningStatus::SUSPENDED) => VersioningStatus::Suspended,
        _ => {
            return Err(s3_error!(
                MalformedXML,
                "The XML you provided was not well-formed or did not validate against our published schema"
            )
            .into());
        }
    };
    // MFA delete needs an MFA device this gateway has none of: accepting `Enabled` and
    // ignoring it would let the owner believe deletes need a second factor.
    let mfa_delete = req.input.versioning_configuration.mfa_delete.as_ref().map(MFADelete::as_str);
    if mfa_delete == Some(MFADelete::ENABLED) {
        return Err(s3_error!(NotImplemented, "MFA delete is not supported").into());
    }
    gw.registry.set_versioning(caller(&req), &req.input.bucket, status).await?;
    Ok(S3Response::new(PutBucketVersioningOutput {}))
}
