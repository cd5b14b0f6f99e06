//! Server-side encryption on the wire: what a write asks for (`x-amz-server-side-encryption`
//! and its companions, or its bucket's default), refused as AWS refuses it when malformed or
//! contradictory; the headers answers carry; the decryption of the parts a read touches; and
//! Put/Get/DeleteBucketEncryption. The bytes themselves are encrypted by the stores, after
//! hashing ([`crate::crypto`]).
//!
//! Built: SSE-S3 (`AES256`) and SSE-KMS (`aws:kms`, with the gateway's own KMS keys) on every
//! write (PutObject inline and blob, multipart uploads with every part under a key of its own,
//! CopyObject) and read. SSE-C answers 501 until it is built.

use registry::event::v1::{BlobPart, BucketEncryptionSet, EncryptionRule, ObjectContent};
use registry::queries::Bucket;
use s3s::dto::*;
use s3s::{S3Request, S3Response, s3_error};

use super::bucket::require_bucket;
use super::error::Result;
use super::{Gateway, caller};
use crate::backend::{BlobError, BlobStream};
use crate::crypto::{BlobKey, DEFAULT_KMS_ALIAS, KeyRing, KeyRingError, SSE_KMS, SSE_S3};

/// The header naming the encryption a write asks for.
const SSE: &str = "x-amz-server-side-encryption";
/// The SSE-KMS key.
const KMS_KEY: &str = "x-amz-server-side-encryption-aws-kms-key-id";
/// The SSE-KMS encryption context: accepted (it binds nothing here) only with `aws:kms`.
const KMS_CONTEXT: &str = "x-amz-server-side-encryption-context";
/// Whether an S3 Bucket Key is asked for: recorded and given back.
const BUCKET_KEY: &str = "x-amz-server-side-encryption-bucket-key-enabled";
/// The prefix of the SSE-C headers.
const CUSTOMER_PREFIX: &str = "x-amz-server-side-encryption-customer-";

/// The encryption a write gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Encryption {
    /// [`SSE_S3`] or [`SSE_KMS`].
    mode: &'static str,
    /// For SSE-KMS: the id of the KMS key that wraps the data keys.
    kms_key: Option<String>,
    /// For SSE-KMS: whether an S3 Bucket Key was asked for.
    bucket_key: bool,
}

impl Encryption {
    /// The encryption a recorded version (or an upload's template) is stored under.
    pub(super) fn of(content: &ObjectContent) -> Option<Self> {
        let mode = match content.encryption.as_deref()? {
            SSE_KMS => SSE_KMS,
            _ => SSE_S3,
        };
        Some(Self { mode, kms_key: content.kms_key_id.clone(), bucket_key: content.bucket_key_enabled })
    }

    /// Notes it in the content a write records.
    pub(super) fn record(&self, content: &mut ObjectContent) {
        content.encryption = Some(self.mode.to_owned());
        content.kms_key_id.clone_from(&self.kms_key);
        content.bucket_key_enabled = self.bucket_key;
    }

    /// Whether bytes stored under `other` are stored as this asks: the same mode and key.
    pub(super) fn same_keys(&self, other: &Self) -> bool {
        self.mode == other.mode && self.kms_key == other.kms_key
    }

    /// A new data key for one blob, wrapped as this asks.
    ///
    /// # Errors
    /// 500 `InternalError` when the KMS key cannot be read.
    pub(super) fn new_key(&self, keys: &KeyRing) -> Result<BlobKey> {
        BlobKey::new(keys, self.kms_key.as_deref()).map_err(|err| kms_error(&err))
    }
}

/// The SSE fields of answers about a version (or an upload): `x-amz-server-side-encryption`,
/// its KMS key's ARN and the bucket key flag.
pub(super) struct Answer {
    pub(super) server_side_encryption: Option<ServerSideEncryption>,
    pub(super) ssekms_key_id: Option<String>,
    pub(super) bucket_key_enabled: Option<bool>,
}

/// What answers about `content` say of its encryption.
pub(super) fn answer(keys: &KeyRing, content: &ObjectContent) -> Answer {
    Answer {
        server_side_encryption: content.encryption.clone().map(ServerSideEncryption::from),
        ssekms_key_id: content.kms_key_id.as_deref().map(|id| keys.arn(id)),
        bucket_key_enabled: content.bucket_key_enabled.then_some(true),
    }
}

/// The encryption a write asks for with its headers, `None` for none. The KMS key is resolved
/// (an id, an ARN or an alias; the default key when none is named).
///
/// # Errors
/// `InvalidArgument` for an unknown mode, KMS headers without `aws:kms`, and SSE-C headers
/// beside `x-amz-server-side-encryption`; `KMS.NotFoundException` for a KMS key that does not
/// exist, as AWS; 501 `NotImplemented` for SSE-C and `aws:kms:dsse`.
pub(super) fn requested(keys: &KeyRing, headers: &http::HeaderMap) -> Result<Option<Encryption>> {
    let text = |name: &str| headers.get(name).map(|v| v.to_str().map_err(|_| unsupported_method()));
    let mode = text(SSE).transpose()?;
    let customer = headers.keys().any(|name| name.as_str().starts_with(CUSTOMER_PREFIX));
    if customer && mode.is_some() {
        return Err(s3_error!(
            InvalidArgument,
            "Server Side Encryption with Customer provided key is incompatible with the encryption method specified"
        )
        .into());
    }
    let kms_headers = headers.contains_key(KMS_KEY) || headers.contains_key(KMS_CONTEXT);
    if kms_headers && mode != Some(SSE_KMS) && mode != Some("aws:kms:dsse") {
        return Err(s3_error!(
            InvalidArgument,
            "Server Side Encryption with AWS KMS managed key requires HTTP header x-amz-server-side-encryption : aws:kms"
        )
        .into());
    }
    let unknown = headers.keys().map(http::HeaderName::as_str).find(|name| {
        name.starts_with(SSE)
            && ![SSE, KMS_KEY, KMS_CONTEXT, BUCKET_KEY].contains(name)
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
    let bucket_key = text(BUCKET_KEY).transpose()?.is_some_and(|v| v.eq_ignore_ascii_case("true"));
    match mode {
        None => Ok(None),
        Some(SSE_S3) => Ok(Some(Encryption { mode: SSE_S3, kms_key: None, bucket_key: false })),
        Some(SSE_KMS) => {
            let kms_key = resolve_kms_key(keys, text(KMS_KEY).transpose()?)?;
            Ok(Some(Encryption { mode: SSE_KMS, kms_key: Some(kms_key), bucket_key }))
        }
        Some("aws:kms:dsse") => Err(not_yet("dual-layer server-side encryption (aws:kms:dsse)")),
        Some(_) => Err(unsupported_method()),
    }
}

/// The id of the KMS key `reference` names, or of the default key.
fn resolve_kms_key(keys: &KeyRing, reference: Option<&str>) -> Result<String> {
    let default = format!("alias/{DEFAULT_KMS_ALIAS}");
    keys.resolve(reference.unwrap_or(&default)).map_err(|err| kms_error(&err))
}

/// AWS's answer to a KMS key that is not there (400 `KMS.NotFoundException`), or a 500 for a
/// key file that cannot be read.
fn kms_error(err: &KeyRingError) -> super::error::Error {
    match err {
        KeyRingError::NoSuchKmsKey(reference) => {
            let mut err = s3s::S3Error::with_message(
                s3s::S3ErrorCode::Custom("KMS.NotFoundException".into()),
                format!("Invalid keyId {reference}"),
            );
            err.set_status_code(http::StatusCode::BAD_REQUEST);
            err.into()
        }
        err => {
            tracing::error!(code = "InternalError", error = %err, "a KMS key could not be read");
            s3_error!(InternalError, "A KMS key could not be read").into()
        }
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
pub(super) fn for_write(keys: &KeyRing, bucket: &Bucket, headers: &http::HeaderMap) -> Result<Option<Encryption>> {
    if let Some(asked) = requested(keys, headers)? {
        return Ok(Some(asked));
    }
    let Some(rule) = &bucket.default_encryption else { return Ok(None) };
    Ok(Some(match rule.algorithm.as_str() {
        SSE_KMS => Encryption {
            mode: SSE_KMS,
            kms_key: Some(resolve_kms_key(keys, rule.kms_key_id.as_deref())?),
            bucket_key: rule.bucket_key_enabled,
        },
        _ => Encryption { mode: SSE_S3, kms_key: None, bucket_key: false },
    }))
}

/// Refuses encryption headers on a read as AWS does: `x-amz-server-side-encryption` (a read
/// decrypts what the version says, and names no mode), and SSE-C keys, since no version is
/// stored under a customer's key.
///
/// # Errors
/// 400 `InvalidArgument`, 400 `InvalidRequest`.
pub(super) fn check_read_headers(headers: &http::HeaderMap) -> Result<()> {
    if headers.contains_key(SSE) {
        return Err(s3_error!(
            InvalidArgument,
            "x-amz-server-side-encryption header is not supported for this operation."
        )
        .into());
    }
    let customer = headers.keys().any(|name| name.as_str().starts_with(CUSTOMER_PREFIX));
    if customer {
        return Err(s3_error!(InvalidRequest, "The encryption parameters are not applicable to this object.").into());
    }
    Ok(())
}

/// Checks the SSE headers of an UploadPart or UploadPartCopy as those of any write. A part is
/// encrypted as its upload is, whatever they say.
///
/// # Errors
/// Those of [`requested`].
pub(super) fn check_part_headers(keys: &KeyRing, headers: &http::HeaderMap) -> Result<()> {
    requested(keys, headers).map(drop)
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
        SSE_KMS => {
            (SSE_KMS, default.kms_master_key_id.as_deref().map(|k| resolve_kms_key(&gw.keys, Some(k))).transpose()?)
        }
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
