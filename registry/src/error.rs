//! The registry's error type: domain conditions a caller branches on, and storage failures.

/// Everything the registry can refuse or fail with. Domain variants name the condition; the
/// gateway maps them to S3 codes in one place.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The bucket does not exist.
    #[error("no such bucket: {0}")]
    NoSuchBucket(String),
    /// A bucket of that name exists already.
    #[error("bucket already exists: {0}")]
    BucketAlreadyExists(String),
    /// The bucket still holds versions or uploads.
    #[error("bucket is not empty: {0}")]
    BucketNotEmpty(String),
    /// No current version of the key (or the current one is a delete marker).
    #[error("no such key")]
    NoSuchKey,
    /// The version id does not name a version of the key.
    #[error("no such version")]
    NoSuchVersion,
    /// The version is a delete marker, which holds no data, tags or lock.
    #[error("the version is a delete marker")]
    DeleteMarker,
    /// The upload id does not name an upload in progress.
    #[error("no such upload")]
    NoSuchUpload,
    /// A part named in a completion was never uploaded, or its ETag does not match.
    #[error("invalid part {number}")]
    InvalidPart {
        /// The part number.
        number: u32,
    },
    /// Parts in a completion are not in ascending order.
    #[error("parts are not in ascending order")]
    InvalidPartOrder,
    /// A non-last part is smaller than the minimum part size.
    #[error("part {number} is smaller than the minimum allowed size")]
    EntityTooSmall {
        /// The part number.
        number: u32,
    },
    /// A conditional write's precondition does not hold.
    #[error("precondition failed")]
    PreconditionFailed,
    /// The version is under retention or legal hold and the request may not remove or weaken it.
    #[error("object is locked")]
    ObjectLocked,
    /// The bucket was created without Object Lock: its versions take no retention or legal
    /// hold.
    #[error("bucket {bucket} has no Object Lock")]
    ObjectLockNotEnabled {
        /// The bucket.
        bucket: String,
    },
    /// An Object Lock configuration for a bucket without Object Lock whose versioning is not
    /// `Enabled`: Object Lock is turned on only over versions kept.
    #[error("bucket {bucket} has no Object Lock and its versioning is not Enabled")]
    ObjectLockNeedsVersioning {
        /// The bucket.
        bucket: String,
    },
    /// Versioning cannot be suspended on a bucket with Object Lock.
    #[error("bucket {bucket} has Object Lock: its versioning cannot be suspended")]
    VersioningRequiredByObjectLock {
        /// The bucket.
        bucket: String,
    },
    /// The key lies under a sealed package's prefix: it may no longer be written or deleted.
    #[error("the key belongs to sealed package {package}")]
    Sealed {
        /// The package's name.
        package: String,
    },
    /// A bucket policy that does not parse or check, with the reason in S3's words.
    #[error("malformed policy: {0}")]
    MalformedPolicy(String),
    /// The bucket has no policy.
    #[error("the bucket has no policy")]
    NoSuchBucketPolicy,
    /// A public bucket policy, while the bucket's public access block has
    /// `BlockPublicPolicy`.
    #[error("public policies are blocked by the bucket's public access block")]
    PublicPolicyBlocked,
    /// An ACL on a bucket whose object ownership is `BucketOwnerEnforced`
    /// (`AccessControlListNotSupported`).
    #[error("the bucket does not allow ACLs")]
    AclsDisabled,
    /// `BucketOwnerEnforced` asked of a bucket whose ACL grants others, or a CreateBucket
    /// with an ACL and that ownership (`InvalidBucketAclWithObjectOwnership`).
    #[error("the bucket's ACL grants more than its owner's full control")]
    AclWithEnforcedOwnership,
    /// A public ACL while the bucket's public access block has `BlockPublicAcls`.
    #[error("public ACLs are blocked by the bucket's public access block")]
    PublicAclBlocked,
    /// A CORS configuration S3 refuses (`InvalidRequest`), with the reason in S3's words.
    #[error("invalid CORS configuration: {0}")]
    InvalidCors(String),
    /// An account, user, access key or user policy that does not exist (IAM's
    /// `NoSuchEntity`), described.
    #[error("{0}")]
    NoSuchEntity(String),
    /// An account, user or access key of that name exists already (`EntityAlreadyExists`).
    #[error("{0}")]
    EntityAlreadyExists(String),
    /// A user that still has access keys or policies cannot be deleted (`DeleteConflict`).
    #[error("{0}")]
    DeleteConflict(String),
    /// A name IAM would refuse (`ValidationError`), with the reason.
    #[error("{0}")]
    InvalidIdentityName(String),
    /// A package's manifest key holds an object already.
    #[error("an object already exists at the manifest key {key}")]
    ManifestKeyTaken {
        /// The manifest key.
        key: String,
    },
    /// The manifest object handed to [`crate::sqlite::Registry::seal_package`] is not the
    /// manifest's encoding at its key (a caller's mistake).
    #[error("the manifest object is not the manifest at its key")]
    ManifestMismatch,
    /// A scratch path SQLite must be handed as text is not UTF-8.
    #[error("the path {0:?} is not UTF-8")]
    PathNotUtf8(std::path::PathBuf),
    /// A package of that name exists already.
    #[error("package already exists: {0}")]
    PackageExists(String),
    /// The objects under the prefix changed between reading them for the manifest and
    /// sealing; the caller builds the manifest again.
    #[error("the objects under the prefix changed while the package was being sealed")]
    PackageChanged,
    /// A write names a blob that gc is deleting, or may have deleted after the write placed
    /// it in the store ([`crate::deletions`]). Nothing was recorded; the write places its
    /// bytes again and retries, or fails.
    #[error("blob {blob} is being deleted by gc")]
    BlobDeleted {
        /// The blob id.
        blob: String,
    },
    /// A copy names blobs that nothing references any more: the version it read as its
    /// source was deleted, or replaced under the same id, before the copy was recorded (gc
    /// may have collected them since, but only because of that). Nothing was recorded; the
    /// copy reads its source again.
    #[error("the source of the copy was deleted or replaced after the copy read it")]
    CopySourceChanged,
    /// The event chain does not verify at this sequence.
    #[error("event chain broken at sequence {sequence}")]
    ChainBroken {
        /// The first sequence that does not match.
        sequence: u64,
    },
    /// A stored payload of a known type does not parse.
    #[error("event {sequence} has a payload that does not parse: {source}")]
    CorruptPayload {
        /// Its sequence.
        sequence: u64,
        /// The parse error.
        source: serde_json::Error,
    },
    /// The registry was opened with a schema newer than this build knows.
    #[error("schema migration failed: {0}")]
    Migration(#[from] rusqlite_migration::Error),
    /// SQLite failed.
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// PostgreSQL failed or cannot be reached (the shared log's engine).
    #[error("postgres: {0}")]
    Postgres(#[from] postgres::Error),
    /// The shared log's head could not be learnt (PostgreSQL out of reach) by a query sent
    /// after the read's request began: the read cannot be answered.
    #[error("postgres: the shared log's head cannot be read: {0}")]
    SharedLogUnreachable(String),
    /// The group commit this write belonged to did not commit; nothing of it is stored.
    #[error("registry commit failed: {0}")]
    CommitFailed(String),
    /// The views lack events the log has committed (their commit failed); they are not read
    /// until the writer has caught them up.
    #[error("the registry's views are behind its log; they are being caught up")]
    ViewsBehind,
    /// The writer task has stopped (the registry is shutting down or crashed).
    #[error("the registry writer has stopped")]
    WriterStopped,
}

impl Error {
    /// Whether the engine refused for lack of disk space: the write may succeed once there is
    /// room again.
    #[must_use]
    pub fn is_disk_full(&self) -> bool {
        matches!(self, Error::Sqlite(err) if err.sqlite_error_code() == Some(rusqlite::ErrorCode::DiskFull))
    }
}

/// `Result` with the registry's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
