//! The gateway's error type and the one place where outcomes become S3 error codes.
//!
//! The registry's domain errors (no such key or version, a delete marker, a failed
//! precondition, a locked object), the blob store's, and the gateway's own refusals
//! ([`Refusal`]) are raised as themselves wherever they are found and get their code and
//! message here, once. Only the parsing of a malformed request (`wire`, `checksum`, `list`,
//! ...) answers with an S3 error directly ([`Error::S3`]), where the input is read.
//!
//! Every variant maps to `InternalError` unless the table below opts it into a specific code.
//! Internal errors are logged with their source chain (and, for [`Error::Internal`], where
//! they were raised); the client gets the code and a short message only.

use std::panic::Location;

use s3s::{S3Error, S3ErrorCode, s3_error};

use crate::backend::BlobError;
use crate::telemetry::error_chain;

/// Result alias for the S3 layer.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything an S3 operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The registry refused or failed.
    #[error(transparent)]
    Registry(#[from] registry::Error),
    /// The blob store failed.
    #[error(transparent)]
    Blob(#[from] BlobError),
    /// A decision already expressed as an S3 error (request parsing, checksum verification).
    #[error(transparent)]
    S3(#[from] S3Error),
    /// A retention or lifecycle request refused by the gateway before it reached the registry.
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// A broken invariant: a bug, or storage that disagrees with itself.
    #[error("{message}")]
    Internal {
        /// What went wrong.
        message: String,
        /// Where it was raised.
        location: &'static Location<'static>,
    },
}

/// Conditions of the versioning, Object Lock and lifecycle calls that AWS answers with codes
/// of their own; their codes and statuses are chosen below, with the registry's.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// The configuration document does not validate (Days and Years together, an unknown or
    /// lower-case mode, a bad legal-hold status, a lifecycle rule without an action).
    #[error("malformed XML: {0}")]
    MalformedXml(&'static str),
    /// Days or Years of a default retention that are not positive.
    #[error("invalid retention period")]
    InvalidRetentionPeriod,
    /// Days or Years of a default retention beyond 100 years.
    #[error("retention period too large")]
    RetentionPeriodTooLarge,
    /// A retain-until date that is not in the future (PutObject's headers or
    /// PutObjectRetention's document).
    #[error("retain-until date not in the future")]
    RetainUntilInThePast,
    /// GetObjectLockConfiguration on a bucket without Object Lock.
    #[error("no Object Lock configuration")]
    NoObjectLockConfiguration,
    /// GetObjectRetention or GetObjectLegalHold on a version that has none.
    #[error("no Object Lock configuration on the object")]
    NoObjectLockOnVersion,
    /// GetBucketLifecycleConfiguration on a bucket without one.
    #[error("no lifecycle configuration")]
    NoSuchLifecycleConfiguration,
    /// A lifecycle rule with an invalid argument (ID too long or repeated, bad days).
    #[error("invalid lifecycle argument: {0}")]
    InvalidLifecycleArgument(String),
}

impl Error {
    /// An internal error raised here.
    #[track_caller]
    pub fn internal(message: impl Into<String>) -> Self {
        Self::Internal { message: message.into(), location: Location::caller() }
    }
}

impl From<Error> for S3Error {
    fn from(err: Error) -> Self {
        match err {
            Error::S3(err) => err,
            Error::Registry(err) => registry_error(err),
            Error::Refused(refusal) => refused(refusal),
            Error::Blob(err) => blob_error(err),
            Error::Internal { message, location } => {
                tracing::error!(%location, %message, "internal error");
                internal_error()
            }
        }
    }
}

/// An error whose code is not in s3s's table, with the status AWS answers it with.
pub(crate) fn unlisted(code: &'static str, status: http::StatusCode, message: &'static str) -> S3Error {
    let mut err = S3Error::with_message(S3ErrorCode::Custom(code.into()), message);
    err.set_status_code(status);
    err
}

fn registry_error(err: registry::Error) -> S3Error {
    use registry::Error as R;
    match err {
        R::NoSuchBucket(_) => s3_error!(NoSuchBucket, "The specified bucket does not exist"),
        // One tenant owns every bucket, so an existing name is always "yours".
        R::BucketAlreadyExists(_) => s3_error!(
            BucketAlreadyOwnedByYou,
            "Your previous request to create the named bucket succeeded and you already own it."
        ),
        R::BucketNotEmpty(_) => s3_error!(BucketNotEmpty, "The bucket you tried to delete is not empty"),
        R::NoSuchKey => s3_error!(NoSuchKey, "The specified key does not exist."),
        R::NoSuchVersion => s3_error!(NoSuchVersion, "The specified version does not exist."),
        R::DeleteMarker => s3_error!(MethodNotAllowed, "The specified method is not allowed against this resource."),
        R::NoSuchUpload => s3_error!(
            NoSuchUpload,
            "The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed."
        ),
        R::InvalidPart { number } => S3Error::with_message(
            S3ErrorCode::InvalidPart,
            format!(
                "One or more of the specified parts could not be found (part {number}). The part may not have been uploaded, or the specified entity tag may not match the part's entity tag."
            ),
        ),
        R::InvalidPartOrder => {
            s3_error!(
                InvalidPartOrder,
                "The list of parts was not in ascending order. Parts must be ordered by part number."
            )
        }
        R::EntityTooSmall { .. } => {
            s3_error!(EntityTooSmall, "Your proposed upload is smaller than the minimum allowed object size.")
        }
        R::PreconditionFailed => {
            s3_error!(PreconditionFailed, "At least one of the pre-conditions you specified did not hold")
        }
        R::MalformedPolicy(reason) => S3Error::with_message(S3ErrorCode::MalformedPolicy, reason),
        R::AclsDisabled => {
            unlisted("AccessControlListNotSupported", http::StatusCode::BAD_REQUEST, "The bucket does not allow ACLs")
        }
        R::AclWithEnforcedOwnership => unlisted(
            "InvalidBucketAclWithObjectOwnership",
            http::StatusCode::BAD_REQUEST,
            "Bucket cannot have ACLs set with ObjectOwnership's BucketOwnerEnforced setting",
        ),
        R::PublicAclBlocked => s3_error!(
            AccessDenied,
            "Access Denied: public ACLs are blocked by the BlockPublicAcls block public access setting."
        ),
        R::InvalidCors(reason) => S3Error::with_message(S3ErrorCode::InvalidRequest, reason),
        R::NoSuchBucketPolicy => s3_error!(NoSuchBucketPolicy, "The bucket policy does not exist"),
        R::PublicPolicyBlocked => s3_error!(
            AccessDenied,
            "Access Denied: public policies are blocked by the BlockPublicPolicy block public access setting."
        ),
        R::ObjectLocked => s3_error!(AccessDenied, "Access Denied because object protected by object lock."),
        R::Sealed { package } => S3Error::with_message(
            S3ErrorCode::AccessDenied,
            format!("Access Denied: the key belongs to sealed package {package}."),
        ),
        // gc deleted the blob this write placed and the write could not place it again:
        // nothing was recorded, and a retry starts afresh.
        R::BlobDeleted { blob } => {
            tracing::warn!(%blob, "write refused: gc deleted its blob");
            s3_error!(ServiceUnavailable, "Please reduce your request rate.")
        }
        // The copy's source went between its read and its record on every attempt: another
        // client rewrites it as fast as the copy reads it, and a retry may find it still.
        R::CopySourceChanged => {
            tracing::warn!("copy refused: its source was deleted or replaced after each read");
            s3_error!(ServiceUnavailable, "Please reduce your request rate.")
        }
        R::ObjectLockNotEnabled { .. } => s3_error!(InvalidRequest, "Bucket is missing Object Lock Configuration"),
        R::ObjectLockNeedsVersioning { .. } => s3_error!(
            InvalidBucketState,
            "Versioning must be 'Enabled' on the bucket to apply a Object Lock configuration"
        ),
        R::VersioningRequiredByObjectLock { .. } => s3_error!(
            InvalidBucketState,
            "An Object Lock configuration is present on this bucket, so the versioning state cannot be changed."
        ),
        // Passing: the writer catches the views up with its next group commit.
        R::ViewsBehind => {
            tracing::error!("a read was refused: the registry's views are behind its log");
            s3_error!(ServiceUnavailable, "Please reduce your request rate.")
        }
        // Nothing was recorded; the write can be retried once the registry commits again.
        err @ R::CommitFailed(_) => storage_full(&err, "the registry cannot commit"),
        // The shared log's server is out of reach: nothing was recorded, and reads that must
        // see every gateway's writes cannot be answered until it is back.
        err @ (R::Postgres(_) | R::SharedLogUnreachable(_)) => {
            tracing::error!(error = %error_chain(&err), code = "ServiceUnavailable", "refused: PostgreSQL is out of reach");
            s3_error!(ServiceUnavailable, "Please reduce your request rate: the registry's database is out of reach.")
        }
        err if err.is_disk_full() => storage_full(&err, "the registry's disk is full"),
        // Raised by `package seal` and identity management, never by an S3 request.
        err @ (R::PackageExists(_)
        | R::NoSuchEntity(_)
        | R::EntityAlreadyExists(_)
        | R::DeleteConflict(_)
        | R::InvalidIdentityName(_)
        | R::PackageChanged
        | R::ManifestKeyTaken { .. }
        | R::ManifestMismatch
        | R::PathNotUtf8(_)
        | R::ChainBroken { .. }
        | R::CorruptPayload { .. }
        | R::Migration(_)
        | R::Sqlite(_)
        | R::WriterStopped) => {
            tracing::error!(error = %error_chain(&err), "registry error");
            internal_error()
        }
    }
}

fn refused(refusal: Refusal) -> S3Error {
    match refusal {
        Refusal::MalformedXml(_) => s3_error!(
            MalformedXML,
            "The XML you provided was not well-formed or did not validate against our published schema"
        ),
        Refusal::InvalidRetentionPeriod => unlisted(
            "InvalidRetentionPeriod",
            http::StatusCode::BAD_REQUEST,
            "Default retention period must be a positive integer value.",
        ),
        Refusal::RetainUntilInThePast => s3_error!(InvalidArgument, "The retain until date must be in the future!"),
        Refusal::RetentionPeriodTooLarge => {
            s3_error!(InvalidArgument, "Default retention period is too large. It must not exceed 100 years.")
        }
        Refusal::NoObjectLockConfiguration => {
            s3_error!(ObjectLockConfigurationNotFoundError, "Object Lock configuration does not exist for this bucket")
        }
        Refusal::NoObjectLockOnVersion => {
            s3_error!(NoSuchObjectLockConfiguration, "The specified object does not have a ObjectLock configuration")
        }
        Refusal::NoSuchLifecycleConfiguration => {
            s3_error!(NoSuchLifecycleConfiguration, "The lifecycle configuration does not exist")
        }
        Refusal::InvalidLifecycleArgument(message) => S3Error::with_message(S3ErrorCode::InvalidArgument, message),
    }
}

fn blob_error(err: BlobError) -> S3Error {
    match err {
        BlobError::InvalidRange { .. } => s3_error!(InvalidRange, "The requested range is not satisfiable"),
        BlobError::IncompleteBody { .. } => s3_error!(
            IncompleteBody,
            "You did not provide the number of bytes specified by the Content-Length HTTP header."
        ),
        BlobError::Body(source) => body_error(source.as_ref()),
        BlobError::Unavailable(reason) => {
            tracing::warn!(%reason, "blob storage unavailable");
            s3_error!(ServiceUnavailable, "Please reduce your request rate.")
        }
        BlobError::SlowDown(reason) => {
            tracing::warn!(%reason, "blob storage throttled");
            s3_error!(SlowDown, "Please reduce your request rate.")
        }
        BlobError::Io(err) if err.kind() == std::io::ErrorKind::StorageFull => {
            storage_full(&err, "the blob store's disk is full")
        }
        // A blob the registry references is missing or malformed: our inconsistency, not the
        // client's (NoSuchKey is decided by the registry).
        err @ (BlobError::NotFound
        | BlobError::InvalidId
        | BlobError::Io(_)
        | BlobError::Forged(_)
        | BlobError::Upstream { .. }
        | BlobError::Locked) => {
            tracing::error!(error = %error_chain(&err), "blob store error");
            internal_error()
        }
    }
}

/// A write refused because a disk is full (or its reserve reached): 503, which clients retry,
/// with a message that says so; the log names the cause.
fn storage_full(err: &(dyn std::error::Error + 'static), what: &str) -> S3Error {
    tracing::error!(error = %error_chain(err), code = "ServiceUnavailable", "write refused: {what}");
    S3Error::with_message(
        S3ErrorCode::ServiceUnavailable,
        format!("Please reduce your request rate: {what}; retry once space is freed."),
    )
}

/// A request body that failed while streaming. s3s reports a bad aws-chunked chunk
/// signature as a body error; its error type is private, so it is recognised by its text.
fn body_error(source: &(dyn std::error::Error + 'static)) -> S3Error {
    if crate::limits::body_failed_with::<crate::limits::BodyIdle>(source) {
        return s3_error!(
            RequestTimeout,
            "Your socket connection to the server was not read from or written to within the timeout period. Idle connections will be closed."
        );
    }
    let chain = error_chain(source);
    // s3s keeps the body's own error only as text (its `Underlying` variant has no source).
    if chain.contains(crate::chunk_limit::ChunkTooLarge::MARK) {
        return S3Error::with_message(S3ErrorCode::InvalidRequest, crate::chunk_limit::MESSAGE);
    }
    if chain.contains("Sha256Mismatch") {
        return unlisted(
            "XAmzContentSHA256Mismatch",
            http::StatusCode::BAD_REQUEST,
            "The provided 'x-amz-content-sha256' header does not match what was computed.",
        );
    }
    if chain.contains("SignatureMismatch") {
        return s3_error!(
            SignatureDoesNotMatch,
            "The request signature we calculated does not match the signature you provided."
        );
    }
    tracing::info!(error = %chain, "request body failed");
    s3_error!(IncompleteBody, "The request body ended before it was complete.")
}

fn internal_error() -> S3Error {
    S3Error::with_message(S3ErrorCode::InternalError, "We encountered an internal error. Please try again.")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(err: impl Into<Error>) -> String {
        S3Error::from(err.into()).code().as_str().to_owned()
    }

    #[test]
    fn blob_errors_map_to_s3_codes() {
        assert_eq!(code(BlobError::InvalidRange { start: 5, end: 9, size: 3 }), "InvalidRange");
        assert_eq!(code(BlobError::IncompleteBody { expected: 5, received: 3 }), "IncompleteBody");
        assert_eq!(code(BlobError::Unavailable("down".into())), "ServiceUnavailable");
        assert_eq!(code(BlobError::SlowDown("throttled".into())), "SlowDown");
        assert_eq!(code(BlobError::Upstream { status: 403, code: "AccessDenied".into() }), "InternalError");
        assert_eq!(code(BlobError::NotFound), "InternalError");
        assert_eq!(code(BlobError::Io(std::io::Error::other("disk"))), "InternalError");
        assert_eq!(code(BlobError::Body(std::io::Error::other("reset").into())), "IncompleteBody");
        let idle = crate::limits::BodyIdle(std::time::Duration::from_secs(1));
        assert_eq!(code(BlobError::Body(std::io::Error::other(idle).into())), "RequestTimeout");
    }

    #[test]
    fn retention_refusals_carry_aws_codes_and_statuses() {
        let status = |r: Refusal| S3Error::from(Error::from(r)).status_code().map(|s| s.as_u16());
        assert_eq!(code(Refusal::MalformedXml("x")), "MalformedXML");
        assert_eq!(code(Refusal::InvalidRetentionPeriod), "InvalidRetentionPeriod");
        assert_eq!(status(Refusal::InvalidRetentionPeriod), Some(400));
        assert_eq!(code(Refusal::RetentionPeriodTooLarge), "InvalidArgument");
        assert_eq!(status(Refusal::RetentionPeriodTooLarge), Some(400));
        assert_eq!(code(Refusal::NoObjectLockConfiguration), "ObjectLockConfigurationNotFoundError");
        assert_eq!(status(Refusal::NoObjectLockConfiguration), Some(404));
        assert_eq!(code(Refusal::NoSuchLifecycleConfiguration), "NoSuchLifecycleConfiguration");
        assert_eq!(status(Refusal::NoSuchLifecycleConfiguration), Some(404));
        assert_eq!(code(Refusal::InvalidLifecycleArgument("ID".into())), "InvalidArgument");
        assert_eq!(code(registry::Error::ObjectLocked), "AccessDenied");
        let bucket = || "b".to_owned();
        assert_eq!(code(registry::Error::ObjectLockNotEnabled { bucket: bucket() }), "InvalidRequest");
        assert_eq!(code(registry::Error::ObjectLockNeedsVersioning { bucket: bucket() }), "InvalidBucketState");
        assert_eq!(code(registry::Error::VersioningRequiredByObjectLock { bucket: bucket() }), "InvalidBucketState");
    }

    #[test]
    fn s3_errors_pass_through_and_internal_errors_stay_vague() {
        assert_eq!(code(s3_error!(BadDigest)), "BadDigest");
        let err = S3Error::from(Error::internal("secret detail"));
        assert_eq!(err.code().as_str(), "InternalError");
        assert!(!err.message().unwrap_or_default().contains("secret detail"));
    }
}
