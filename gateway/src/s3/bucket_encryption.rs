//! A bucket's default encryption: Put/Get/DeleteBucketEncryption, recorded as
//! `v1.bucket.encryption.set` / `.deleted` and applied by [`super::encryption::for_write`].

use registry::event::v1::{BucketEncryptionSet, EncryptionRule};
use s3s::dto::*;
use s3s::{S3Request, S3Response, s3_error};

use super::bucket::require_bucket;
use super::encryption::{not_yet, resolve_kms_key};
use super::error::Result;
use super::{Gateway, caller};
use crate::crypto::{SSE_KMS, SSE_S3};

pub(super) async fn put_bucket_encryption(
    gw: &Gateway,
    req: S3Request<PutBucketEncryptionInput>,
) -> Result<S3Response<PutBucketEncryptionOutput>> {
    let input = &req.input;
    let rule = match input.server_side_encryption_configuration.rules.as_slice() {
        [rule] => rule,
        _ => return Err(s3_error!(MalformedXML, "The configuration takes exactly one rule").into()),
    };
    let Some(default) = &rule.apply_server_side_encryption_by_default else {
        return Err(s3_error!(MalformedXML, "The rule has no ApplyServerSideEncryptionByDefault").into());
    };
    let algorithm = default.sse_algorithm.as_str();
    if default.kms_master_key_id.is_some() && !algorithm.starts_with(SSE_KMS) {
        return Err(s3_error!(
            InvalidArgument,
            "a KMSMasterKeyID is not applicable if the default sse algorithm is not aws:kms or aws:kms:dsse"
        )
        .into());
    }
    let (algorithm, kms_key_id) = match algorithm {
        SSE_S3 => (SSE_S3, None),
        // The key is checked now, and named by its id from here on, as an alias may move.
        SSE_KMS => (
            SSE_KMS,
            default.kms_master_key_id.as_deref().map(|k| resolve_kms_key(gw.keys.as_ref(), Some(k))).transpose()?,
        ),
        "aws:kms:dsse" => return Err(not_yet("dual-layer server-side encryption (aws:kms:dsse)")),
        _ => return Err(s3_error!(MalformedXML, "The XML you provided was not well-formed").into()),
    };
    require_bucket(gw, &input.bucket).await?;
    let rule = EncryptionRule {
        algorithm: algorithm.to_owned(),
        kms_key_id,
        bucket_key_enabled: rule.bucket_key_enabled == Some(true),
    };
    gw.registry.set_bucket_encryption(caller(&req), BucketEncryptionSet { bucket: input.bucket.clone(), rule }).await?;
    Ok(S3Response::new(PutBucketEncryptionOutput::default()))
}

pub(super) async fn get_bucket_encryption(
    gw: &Gateway,
    req: S3Request<GetBucketEncryptionInput>,
) -> Result<S3Response<GetBucketEncryptionOutput>> {
    let bucket = require_bucket(gw, &req.input.bucket).await?;
    let Some(rule) = bucket.default_encryption.clone() else {
        // s3s answers this code with 400; AWS with 404.
        let mut err = s3_error!(
            ServerSideEncryptionConfigurationNotFoundError,
            "The server side encryption configuration was not found"
        );
        err.set_status_code(http::StatusCode::NOT_FOUND);
        return Err(err.into());
    };
    let rule = ServerSideEncryptionRule {
        apply_server_side_encryption_by_default: Some(ServerSideEncryptionByDefault {
            sse_algorithm: ServerSideEncryption::from(rule.algorithm),
            kms_master_key_id: rule.kms_key_id.map(|id| gw.keys.arn(&id)),
        }),
        bucket_key_enabled: Some(rule.bucket_key_enabled),
    };
    Ok(S3Response::new(GetBucketEncryptionOutput {
        server_side_encryption_configuration: Some(ServerSideEncryptionConfiguration { rules: vec![rule] }),
    }))
}

pub(super) async fn delete_bucket_encryption(
    gw: &Gateway,
    req: S3Request<DeleteBucketEncryptionInput>,
) -> Result<S3Response<DeleteBucketEncryptionOutput>> {
    require_bucket(gw, &req.input.bucket).await?;
    gw.registry.delete_bucket_encryption(caller(&req), &req.input.bucket).await?;
    Ok(S3Response::new(DeleteBucketEncryptionOutput::default()))
}
