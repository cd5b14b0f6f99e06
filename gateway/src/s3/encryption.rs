//! Server-side encryption on the wire: what a write asks for (`x-amz-server-side-encryption`
//! and its companions, the SSE-C key headers, or its bucket's default), refused as AWS refuses
//! it when malformed or contradictory; the key a read of an SSE-C object must bring; the
//! headers answers carry; and the decryption of the parts a read touches. The bytes themselves
//! are encrypted by the stores, after hashing ([`crate::crypto`]).
//!
//! Modes: SSE-S3 (`AES256`), SSE-KMS (`aws:kms`, with the gateway's own KMS keys) and SSE-C
//! (the client's key, sent with every request, never stored), on every write (PutObject inline
//! and blob, multipart uploads with every part under a data key of its own, CopyObject) and
//! read.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use registry::event::v1::{BlobPart, ObjectContent};
use registry::queries::Bucket;
use s3s::dto::*;
use s3s::{S3Request, s3_error};

use super::Gateway;
use super::error::Result;
use crate::auth::access::SecureTransport;
use crate::backend::{BlobError, BlobStream};
use crate::client_addr::ClientAddr;
use crate::crypto::{
    BlobKey, CUSTOMER_KEY_ID, CustomerKey, DEFAULT_KMS_ALIAS, DataKey, KeyProvider, KeyRingError, SSE_KMS, SSE_S3,
};

/// The header naming the encryption a write asks for.
const SSE: &str = "x-amz-server-side-encryption";
/// The SSE-KMS key.
const KMS_KEY: &str = "x-amz-server-side-encryption-aws-kms-key-id";
/// The SSE-KMS encryption context: accepted (it binds nothing here) only with `aws:kms`.
const KMS_CONTEXT: &str = "x-amz-server-side-encryption-context";
/// Whether an S3 Bucket Key is asked for: recorded and given back.
const BUCKET_KEY: &str = "x-amz-server-side-encryption-bucket-key-enabled";
/// The prefix of the SSE-C headers of the object written or read.
pub(super) const CUSTOMER: &str = "x-amz-server-side-encryption-customer-";
/// The prefix of the SSE-C headers of a copy's source.
pub(super) const COPY_SOURCE_CUSTOMER: &str = "x-amz-copy-source-server-side-encryption-customer-";
/// How the registry names SSE-C, which has no `x-amz-server-side-encryption` value.
const SSE_C: &str = "SSE-C";

/// The encryption a write gets.
#[derive(Clone)]
pub(super) enum Encryption {
    /// SSE-S3: data keys wrapped by the master key.
    S3,
    /// SSE-KMS: data keys wrapped by the KMS key of this id.
    Kms { key: String, bucket_key: bool },
    /// SSE-C: data keys wrapped by the client's key.
    Customer(Customer),
}

/// A customer's key as a request sent it, checked: the key and its MD5 (base64) to echo.
#[derive(Clone)]
pub(super) struct Customer {
    pub(super) key: CustomerKey,
    md5: String,
}

impl Encryption {
    /// Notes it in the content a write records.
    pub(super) fn record(&self, content: &mut ObjectContent) {
        let (mode, kms_key, bucket_key, check) = match self {
            Self::S3 => (SSE_S3, None, false, None),
            Self::Kms { key, bucket_key } => (SSE_KMS, Some(key.clone()), *bucket_key, None),
            Self::Customer(customer) => (SSE_C, None, false, Some(customer.key.new_check())),
        };
        content.encryption = Some(mode.to_owned());
        content.kms_key_id = kms_key;
        content.bucket_key_enabled = bucket_key;
        content.customer_key_check = check;
    }

    /// Whether bytes stored as `content` records are stored as this asks (a copy can then
    /// share them): the same mode and key. Never for SSE-C, whose copies always take the
    /// destination's key.
    pub(super) fn stores_as(&self, content: &ObjectContent) -> bool {
        match self {
            Self::S3 => content.encryption.as_deref() == Some(SSE_S3),
            Self::Kms { key, .. } => {
                content.encryption.as_deref() == Some(SSE_KMS) && content.kms_key_id.as_ref() == Some(key)
            }
            Self::Customer(_) => false,
        }
    }

    /// A new data key for one blob, wrapped as this asks.
    ///
    /// # Errors
    /// 500 `InternalError` when the KMS key cannot be read.
    pub(super) fn new_key(&self, keys: &dyn KeyProvider) -> Result<BlobKey> {
        match self {
            Self::S3 => BlobKey::new(keys, None).map_err(|err| kms_error(&err)),
            Self::Kms { key, .. } => BlobKey::new(keys, Some(key)).map_err(|err| kms_error(&err)),
            Self::Customer(customer) => {
                let key = DataKey::generate();
                let wrapped = customer.key.wrap(&key);
                Ok(BlobKey { key, wrapped })
            }
        }
    }

    /// The customer's key, for SSE-C.
    pub(super) fn customer(&self) -> Option<&Customer> {
        match self {
            Self::Customer(customer) => Some(customer),
            _ => None,
        }
    }
}

/// Whether `content` is stored under a customer's key.
pub(super) fn is_customer(content: &ObjectContent) -> bool {
    content.encryption.as_deref() == Some(SSE_C)
}

/// The SSE fields of answers about a version (or an upload): `x-amz-server-side-encryption`,
/// its KMS key's ARN and the bucket key flag, or for SSE-C the algorithm and the key's MD5.
pub(super) struct Answer {
    pub(super) server_side_encryption: Option<ServerSideEncryption>,
    pub(super) ssekms_key_id: Option<String>,
    pub(super) bucket_key_enabled: Option<bool>,
    pub(super) sse_customer_algorithm: Option<String>,
    pub(super) sse_customer_key_md5: Option<String>,
}

/// What answers about `content` say of its encryption; `customer` is the key the request
/// brought, checked, for an SSE-C version.
pub(super) fn answer(keys: &dyn KeyProvider, content: &ObjectContent, customer: Option<&Customer>) -> Answer {
    let customer = customer.filter(|_| is_customer(content));
    Answer {
        server_side_encryption: content.encryption.clone().filter(|mode| mode != SSE_C).map(ServerSideEncryption::from),
        ssekms_key_id: content.kms_key_id.as_deref().map(|id| keys.arn(id)),
        bucket_key_enabled: content.bucket_key_enabled.then_some(true),
        sse_customer_algorithm: customer.map(|_| SSE_S3.to_owned()),
        sse_customer_key_md5: customer.map(|c| c.md5.clone()),
    }
}

/// The encryption a write asks for with its headers, `None` for none. The KMS key is resolved
/// (an id, an ARN or an alias; the default key when none is named); a customer's key checked.
///
/// # Errors
/// `InvalidArgument` for an unknown mode, KMS headers without `aws:kms`, SSE-C headers beside
/// `x-amz-server-side-encryption`, and malformed SSE-C headers; `KMS.NotFoundException` for a
/// KMS key that does not exist; `InvalidRequest` for SSE-C over plain HTTP, as AWS; 501
/// `NotImplemented` for `aws:kms:dsse`.
pub(super) fn requested<T>(gw: &Gateway, req: &S3Request<T>) -> Result<Option<Encryption>> {
    let headers = &req.headers;
    let text = |name: &str| headers.get(name).map(|v| v.to_str().map_err(|_| unsupported_method()));
    let mode = text(SSE).transpose()?;
    let customer_headers = headers.keys().any(|name| name.as_str().starts_with(CUSTOMER));
    if customer_headers && mode.is_some() {
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
        name.starts_with(SSE) && ![SSE, KMS_KEY, KMS_CONTEXT, BUCKET_KEY].contains(name) && !name.starts_with(CUSTOMER)
    });
    if let Some(name) = unknown {
        return Err(s3_error!(
            NotImplemented,
            "A header you provided implies functionality that is not implemented: {name}"
        )
        .into());
    }
    if let Some(customer) = customer_key(gw, req, CUSTOMER)? {
        return Ok(Some(Encryption::Customer(customer)));
    }
    let bucket_key = text(BUCKET_KEY).transpose()?.is_some_and(|v| v.eq_ignore_ascii_case("true"));
    match mode {
        None => Ok(None),
        Some(SSE_S3) => Ok(Some(Encryption::S3)),
        Some(SSE_KMS) => {
            let key = resolve_kms_key(gw.keys.as_ref(), text(KMS_KEY).transpose()?)?;
            Ok(Some(Encryption::Kms { key, bucket_key }))
        }
        Some("aws:kms:dsse") => Err(not_yet("dual-layer server-side encryption (aws:kms:dsse)")),
        Some(_) => Err(unsupported_method()),
    }
}

/// The customer's key of the SSE-C headers under `prefix` (the object's, or a copy source's),
/// checked as AWS checks them; `None` when there are none.
///
/// # Errors
/// 400 `InvalidArgument` for a missing or malformed header or a key that does not match its
/// MD5, `InvalidEncryptionAlgorithmError` for an algorithm other than AES256, and
/// `InvalidRequest` over plain HTTP (unless `encryption.allow_sse_c_over_http`).
fn customer_key<T>(gw: &Gateway, req: &S3Request<T>, prefix: &str) -> Result<Option<Customer>> {
    // Any header under the prefix asks for SSE-C: one that cannot be read (misspelled, not
    // UTF-8) is refused below rather than taken as no request for encryption.
    if !req.headers.keys().any(|name| name.as_str().starts_with(prefix)) {
        return Ok(None);
    }
    let header = |name: &str| req.headers.get(format!("{prefix}{name}")).and_then(|v| v.to_str().ok());
    let (algorithm, key, md5) = (header("algorithm"), header("key"), header("key-md5"));
    let invalid = |message: &str| -> super::error::Error {
        s3s::S3Error::with_message(s3s::S3ErrorCode::InvalidArgument, message.to_owned()).into()
    };
    match algorithm {
        None => {
            return Err(invalid(
                "Requests specifying Server Side Encryption with Customer provided keys must provide a valid encryption algorithm.",
            ));
        }
        Some(SSE_S3) => {}
        Some(_) => {
            return Err(s3_error!(
                InvalidEncryptionAlgorithmError,
                "The encryption request you specified is not valid. The valid value is AES256."
            )
            .into());
        }
    }
    let Some(key) = key else {
        return Err(invalid(
            "Requests specifying Server Side Encryption with Customer provided keys must provide an appropriate secret key.",
        ));
    };
    let key: [u8; 32] = STANDARD
        .decode(key)
        .ok()
        .and_then(|bytes| bytes.try_into().ok())
        .ok_or_else(|| invalid("The secret key was invalid for the specified algorithm."))?;
    let Some(md5) = md5 else {
        return Err(invalid(
            "Requests specifying Server Side Encryption with Customer provided keys must provide the client calculated MD5 of the secret key.",
        ));
    };
    if STANDARD.decode(md5).ok().as_deref() != Some(&crate::digest::md5(&key)[..]) {
        return Err(invalid("The calculated MD5 hash of the key did not match the hash that was provided."));
    }
    let secure = SecureTransport::of(&gw.config.server).is_secure(req.extensions.get::<ClientAddr>().cloned());
    if !secure && !gw.config.encryption.allow_sse_c_over_http {
        return Err(s3_error!(
            InvalidRequest,
            "Requests specifying Server Side Encryption with Customer provided keys must be made over a secure connection."
        )
        .into());
    }
    Ok(Some(Customer { key: CustomerKey::new(key), md5: md5.to_owned() }))
}

/// The customer's key a read of `content` must bring under `prefix` (the object's SSE-C
/// headers, or a copy source's), checked against the version's record; `None` for a version
/// not stored under one.
///
/// # Errors
/// 400 `InvalidRequest` when an SSE-C version's key is missing, or a key is sent for a version
/// not stored under one; 403 `AccessDenied` for the wrong key; those of the headers' checks.
pub(super) fn read_key<T>(
    gw: &Gateway,
    req: &S3Request<T>,
    content: &ObjectContent,
    prefix: &str,
) -> Result<Option<Customer>> {
    let customer = customer_key(gw, req, prefix)?;
    match (is_customer(content), customer) {
        (false, None) => Ok(None),
        (false, Some(_)) => {
            Err(s3_error!(InvalidRequest, "The encryption parameters are not applicable to this object.").into())
        }
        (true, None) => Err(s3_error!(
            InvalidRequest,
            "The object was stored using a form of Server Side Encryption. The correct parameters must be provided to retrieve the object."
        )
        .into()),
        (true, Some(customer)) => {
            let matches = content.customer_key_check.as_deref().is_some_and(|check| customer.key.matches(check));
            if !matches {
                return Err(s3_error!(AccessDenied, "Access Denied").into());
            }
            Ok(Some(customer))
        }
    }
}

/// The key a CompleteMultipartUpload brings for an SSE-C upload, checked: optional, as it is
/// needed only when parts must be read back (their sizes differ), which then fails without it.
///
/// # Errors
/// Those of [`read_key`].
pub(super) fn completion_key<T>(gw: &Gateway, req: &S3Request<T>, upload: &ObjectContent) -> Result<Option<Customer>> {
    if is_customer(upload) && !req.headers.keys().any(|name| name.as_str().starts_with(CUSTOMER)) {
        return Ok(None);
    }
    read_key(gw, req, upload, CUSTOMER)
}

/// The data key for a new part of the upload whose template is `upload`, wrapped as the upload
/// is encrypted, whatever the part's request `asked` for ([`requested`]), except that only an
/// SSE-C upload takes a customer key, and it must be the upload's.
///
/// # Errors
/// For SSE-C, 400 `InvalidRequest` without the key and 403 `AccessDenied` for another; 400
/// `InvalidRequest` for a customer key on any other upload; 500 when a KMS key cannot be read.
pub(super) fn part_key(gw: &Gateway, asked: Option<&Encryption>, upload: &ObjectContent) -> Result<Option<BlobKey>> {
    let encryption = match upload.encryption.as_deref() {
        Some(SSE_C) => {
            let Some(customer) = asked.and_then(Encryption::customer) else {
                return Err(s3_error!(
                    InvalidRequest,
                    "The multipart upload initiate requested encryption. Subsequent part requests must include the appropriate encryption parameters."
                )
                .into());
            };
            if !upload.customer_key_check.as_deref().is_some_and(|check| customer.key.matches(check)) {
                return Err(s3_error!(AccessDenied, "Access Denied").into());
            }
            Encryption::Customer(customer.clone())
        }
        // A customer key on a part of any other upload would be ignored, the part kept under
        // a key other than the one its caller believes guards it.
        _ if asked.and_then(Encryption::customer).is_some() => {
            return Err(
                s3_error!(InvalidRequest, "The encryption parameters are not applicable to this object.").into()
            );
        }
        None => return Ok(None),
        Some(SSE_KMS) => Encryption::Kms {
            key: upload.kms_key_id.clone().unwrap_or_default(),
            bucket_key: upload.bucket_key_enabled,
        },
        Some(_) => Encryption::S3,
    };
    encryption.new_key(gw.keys.as_ref()).map(Some)
}

/// The id of the KMS key `reference` names, or of the default key.
pub(super) fn resolve_kms_key(keys: &dyn KeyProvider, reference: Option<&str>) -> Result<String> {
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
        KeyRingError::ForeignMaster { .. } => {
            tracing::error!(code = "InternalError", error = %err, "no data key is wrapped with a master key the others lack");
            s3_error!(InternalError, "The server-side encryption key is not available").into()
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

pub(super) fn not_yet(what: &str) -> super::error::Error {
    s3_error!(NotImplemented, "A header you provided implies functionality that is not implemented: {what}").into()
}

/// The encryption a write into `bucket` gets: what its headers asked for ([`requested`]),
/// else the bucket's default.
///
/// # Errors
/// Those of resolving the default's KMS key.
pub(super) fn with_default(gw: &Gateway, bucket: &Bucket, asked: Option<Encryption>) -> Result<Option<Encryption>> {
    if let Some(asked) = asked {
        return Ok(Some(asked));
    }
    let Some(rule) = &bucket.default_encryption else { return Ok(None) };
    Ok(Some(match rule.algorithm.as_str() {
        SSE_KMS => Encryption::Kms {
            key: resolve_kms_key(gw.keys.as_ref(), rule.kms_key_id.as_deref())?,
            bucket_key: rule.bucket_key_enabled,
        },
        _ => Encryption::S3,
    }))
}

/// The key a GET or HEAD of `content` must bring, after refusing what AWS refuses on a read:
/// `x-amz-server-side-encryption` (a read decrypts what the version says, and names no mode).
///
/// # Errors
/// 400 `InvalidArgument`; those of [`read_key`].
pub(super) fn check_read<T>(gw: &Gateway, req: &S3Request<T>, content: &ObjectContent) -> Result<Option<Customer>> {
    if req.headers.contains_key(SSE) {
        return Err(s3_error!(
            InvalidArgument,
            "x-amz-server-side-encryption header is not supported for this operation."
        )
        .into());
    }
    read_key(gw, req, content, CUSTOMER)
}

/// The plaintext bytes `range` of `part` from its stored bytes `stored` (read at
/// [`crypto::stored_range`](crate::crypto::stored_range)): decrypted segment by segment for an encrypted part, each segment
/// refused as [`BlobError::Forged`] unless it authenticates.
///
/// `customer` is the request's key, checked, for a part under one.
///
/// # Errors
/// An I/O error when the part's data key does not unwrap (the key that wrapped it is not this
/// gateway's, or not the request's).
pub(super) fn plaintext(
    keys: &dyn KeyProvider,
    customer: Option<&CustomerKey>,
    part: &BlobPart,
    range: (u64, u64),
    stored: BlobStream,
) -> Result<BlobStream, BlobError> {
    let Some(wrapped) = &part.wrapped_key else { return Ok(stored) };
    let unwrapped = if wrapped.key_id == CUSTOMER_KEY_ID {
        customer
            .and_then(|customer| customer.unwrap(wrapped))
            .ok_or_else(|| KeyRingError::Unwrap(wrapped.key_id.clone()))
    } else {
        keys.unwrap(wrapped)
    };
    let key = unwrapped.map_err(|err| {
        tracing::error!(code = "InternalError", error = %err, "an encrypted part's data key does not unwrap");
        BlobError::Io(std::io::Error::other(err))
    })?;
    Ok(Box::pin(key.open_stream(part.size, range, stored)))
}
