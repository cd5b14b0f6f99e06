//! Server-side encryption on the wire: what a write asks for (`x-amz-server-side-encryption`
//! and its companions), refused as AWS refuses it when malformed or contradictory, and the
//! decryption of the parts a read touches. The bytes themselves are encrypted by the stores,
//! after hashing ([`crate::crypto`]).
//!
//! Built: SSE-S3 (`AES256`) on PutObject (inline and blob), multipart uploads (every part
//! under a key of its own), CopyObject, every read, and as a bucket's default encryption
//! (Put/Get/DeleteBucketEncryption). SSE-KMS and SSE-C answer 501 until they are built.

use registry::event::v1::{BlobPart, BucketEncryptionSet, EncryptionRule};
use registry::queries::Bucket;
use s3s::dto::*;
use s3s::{S3Request, S3Response, s3_error};

use super::bucket::require_bucket;
use super::error::Result;
use super::{Gateway, caller};
use crate::backend::{BlobError, BlobStream};
use crate::crypto::{KeyRing, SSE_S3};

/// The header naming the encryption a write asks for.
const SSE: &str = "x-amz-server-side-encryption";
/// The SSE-KMS key and context: only with `aws:kms`.
const KMS_HEADERS: [&str; 2] = ["x-amz-server-side-encryption-aws-kms-key-id", "x-amz-server-side-encryption-context"];
/// Accepted with any mode; it only changes how KMS is called.
const BUCKET_KEY: &str = "x-amz-server-side-encryption-bucket-key-enabled";
/// The prefix of the SSE-C headers.
const CUSTOMER_PREFIX: &str = "x-amz-server-side-encryption-customer-";

/// The encryption a write asks for: `Some(SSE_S3)` for SSE-S3, `None` for none.
///
/// # Errors
/// `InvalidArgument` for an unknown mode, KMS headers without `aws:kms`, and SSE-C headers
/// beside `x-amz-server-side-encryption`, as AWS; 501 `NotImplemented` for SSE-KMS and SSE-C.
pub(super) fn requested(headers: &http::HeaderMap) -> Result<Option<&'static str>> {
    let mode = match headers.get(SSE) {
        None => None,
        Some(value) => Some(value.to_str().map_err(|_| unsupported_method())?),
    };
    let customer = headers.keys().any(|name| name.as_str().starts_with(CUSTOMER_PREFIX));
    if customer && mode.is_some() {
        return Err(s3_error!(
            InvalidArgument,
            "Server Side Encryption with Customer provided key is incompatible with the encryption method specified"
        )
        .into());
    }
    let kms_headers = KMS_HEADERS.iter().any(|name| headers.contains_key(*name));
    if kms_headers && mode != Some("aws:kms") && mode != Some("aws:kms:dsse") {
        return Err(s3_error!(
            InvalidArgument,
            "Server Side Encryption with AWS KMS managed key requires HTTP header x-amz-server-side-encryption : aws:kms"
        )
        .into());
    }
    let unknown = headers.keys().map(http::HeaderName::as_str).find(|name| {
        name.starts_with(SSE)
            && *name != SSE
            && *name != BUCKET_KEY
            && !KMS_HEADERS.contains(name)
            && !name.starts_with(CUSTOMER_PREFIX)
    });
    if let Some(name) = unknown {
        return Err(s3_error!(
            NotImplemented,
            "A header you provided implies functionality that is not implemented: {name}"
        )
        .into());
    }
    if customer {
        return Err(not_yet("server-side encryption with customer-provided keys (SSE-C)"));
    }
    match mode {
        None => Ok(None),
        Some(SSE_S3) => Ok(Some(SSE_S3)),
        Some("aws:kms" | "aws:kms:dsse") => Err(not_yet("server-side encryption with KMS keys (SSE-KMS)")),
        Some(_) => Err(unsupported_method()),
    }
}

fn unsupported_method() -> super::error::Error {
    s3_error!(InvalidArgument, "The encryption method specified is not supported").into()
}

fn not_yet(what: &str) -> super::error::Error {
    s3_error!(NotImplemented, "A header you provided implies functionality that is not implemented: {what}").into()
}

/// The encryption a write into `bucket` gets: what its headers ask for, else the bucket's
/// default.
///
/// # Errors
/// Those of [`requested`].
pub(super) fn for_write(bucket: &Bucket, headers: &http::HeaderMap) -> Result<Option<&'static str>> {
    Ok(requested(headers)?.or_else(|| bucket.default_encryption.as_ref().map(|_| SSE_S3)))
}

/// Checks the SSE headers of an UploadPart or UploadPartCopy as those of any write. A part is
/// encrypted as its upload is, whatever they say.
///
/// # Errors
/// Those of [`requested`].
pub(super) fn check_part_headers(headers: &http::HeaderMap) -> Result<()> {
    requested(headers).map(drop)
}

/// The `x-amz-server-side-encryption` an answer about a version carries.
pub(super) fn response_header(encryption: Option<&String>) -> Option<ServerSideEncryption> {
    encryption.map(|mode| ServerSideEncryption::from(mode.clone()))
}

/// The plaintext bytes `range` of `part` from its stored bytes `stored` (read at
/// [`crypto::stored_range`](crate::crypto::stored_range)): decrypted segment by segment for an encrypted part, each segment
/// refused as [`BlobError::Forged`] unless it authenticates.
///
/// # Errors
/// An I/O error when the part's data key does not unwrap (the master key that wrapped it is
/// not this gateway's).
pub(super) fn plaintext(
    keys: &KeyRing,
    part: &BlobPart,
    range: (u64, u64),
    stored: BlobStream,
) -> Result<BlobStream, BlobError> {
    let Some(wrapped) = &part.wrapped_key else { return Ok(stored) };
    let key = keys.unwrap(wrapped).map_err(|err| {
        tracing::error!(code = "InternalError", error = %err, "an encrypted part's data key does not unwrap");
        BlobError::Io(std::io::Error::other(err))
    })?;
    Ok(Box::pin(key.open_stream(part.size, range, stored)))
}

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
    if default.kms_master_key_id.is_some() && !algorithm.starts_with("aws:kms") {
        return Err(s3_error!(
            InvalidArgument,
            "a KMSMasterKeyID is not applicable if the default sse algorithm is not aws:kms or aws:kms:dsse"
        )
        .into());
    }
    match algorithm {
        SSE_S3 => {}
        "aws:kms" | "aws:kms:dsse" => return Err(not_yet("default encryption with KMS keys (SSE-KMS)")),
        _ => return Err(s3_error!(MalformedXML, "The XML you provided was not well-formed").into()),
    }
    require_bucket(gw, &input.bucket).await?;
    let rule =
        EncryptionRule { algorithm: SSE_S3.to_owned(), bucket_key_enabled: rule.bucket_key_enabled == Some(true) };
    gw.registry.set_bucket_encryption(caller(&req), BucketEncryptionSet { bucket: input.bucket.clone(), rule }).await?;
    Ok(S3Response::new(PutBucketEncryptionOutput::default()))
}

pub(super) async fn get_bucket_encryption(
    gw: &Gateway,
    req: S3Request<GetBucketEncryptionInput>,
) -> Result<S3Response<GetBucketEncryptionOutput>> {
    let bucket = require_bucket(gw, &req.input.bucket).await?;
    let Some(rule) = bucket.default_encryption else {
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
            kms_master_key_id: None,
        }),
        bucket_key_enabled: Some(rule.bucket_key_enabled),
        ..Default::default()
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
