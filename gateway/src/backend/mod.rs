//! Where object bytes live. A [`BlobStore`] moves bytes only: it knows nothing of buckets,
//! keys, versions or the registry. The S3 layer decides what a blob means.
//!
//! Writing is two steps so that nothing becomes visible before it is checked:
//! [`BlobStore::put`] streams the body once, hashing every byte (BLAKE3, MD5 and the requested
//! checksums) and making it durable in a staging area; the caller verifies the client's
//! checksums against the [`StagedBlob`] and only then calls [`StagedBlob::commit`] (or
//! [`StagedBlob::place`], which keeps what it needs to put the blob in place again until the
//! write is recorded: gc may take a blob that no event names yet). Dropping a `StagedBlob`
//! instead throws the bytes away.
//!
//! - [`fs`]: local disk, content-addressed by BLAKE3.
//! - [`s3`]: an S3 upstream (AWS, Ceph RGW, ...), one upstream object per blob; a multipart
//!   upload is one upstream multipart upload whose object is one blob.
//! - `pipeline`: the hashing workers both share, and the hashing of small bodies held in
//!   memory ([`Hashes`]), which the S3 layer also uses for objects kept inline in the registry.

mod direct_io;
pub mod fs;
mod pipeline;
pub use pipeline::{Hashes, receive_exactly};
pub mod s3;

use std::pin::Pin;
use std::time::SystemTime;

use async_trait::async_trait;
use blake3::hazmat::ChainingValue;
use bytes::Bytes;
use futures::Stream;

use crate::crypto::Seal;
use crate::digest::{ChecksumAlgorithm, Checksums};
use crate::outboard::{Hashed, PartHashes};

/// Boxed error of a request body stream (the error type s3s bodies carry).
pub type BodyError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A request body handed to [`BlobStore::put`]; an s3s `StreamingBlob` or `Body` boxes into it.
pub type BodyStream = Pin<Box<dyn Stream<Item = Result<Bytes, BodyError>> + Send>>;

/// Bytes read back from a store. `Sync` so that s3s `StreamingBlob::wrap` accepts it.
pub type BlobStream = Pin<Box<dyn Stream<Item = Result<Bytes, BlobError>> + Send + Sync>>;

/// Result alias for blob operations.
pub type Result<T, E = BlobError> = std::result::Result<T, E>;

/// What can go wrong while moving bytes.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    /// No blob has this id.
    #[error("blob not found")]
    NotFound,
    /// The id is not one this store could have produced; refused before touching storage.
    #[error("invalid blob id")]
    InvalidId,
    /// The requested byte range is not inside the blob.
    #[error("range {start}-{end} is outside a blob of {size} bytes")]
    InvalidRange {
        /// First byte requested.
        start: u64,
        /// Last byte requested (inclusive).
        end: u64,
        /// Size of the blob.
        size: u64,
    },
    /// The body ended before, or ran past, the length the client announced.
    #[error("body length mismatch: expected {expected} bytes, received {received}")]
    IncompleteBody {
        /// The announced length.
        expected: u64,
        /// Bytes received when the mismatch was noticed.
        received: u64,
    },
    /// Reading the request body failed (client went away, bad aws-chunked signature, ...).
    #[error("reading the request body failed")]
    Body(#[source] BodyError),
    /// The storage is not reachable or refuses service for now (an upstream 5xx, timeout or
    /// refused connection).
    #[error("blob storage unavailable: {0}")]
    Unavailable(String),
    /// The storage asks for fewer requests (an upstream's throttling answer).
    #[error("blob storage throttled: {0}")]
    SlowDown(String),
    /// The upstream refused a request for a reason the client can do nothing about
    /// (credentials, permissions, configuration).
    #[error("upstream refused the request: {status} {code}")]
    Upstream {
        /// HTTP status of the upstream's answer.
        status: u16,
        /// The upstream's error code.
        code: String,
    },
    /// The storage refuses to delete a blob it holds under its own Object Lock (an upstream
    /// object whose mirrored retention or legal hold is still in force).
    #[error("blob is locked by the storage")]
    Locked,
    /// Encrypted stored bytes do not authenticate under their data key: they were changed,
    /// moved or cut (see [`crate::crypto::segments`]).
    #[error("stored bytes do not authenticate: {0}")]
    Forged(#[from] crate::crypto::OpenError),
    /// Local I/O failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Object Lock protection for a store to hold on a blob itself, besides the gateway's own
/// enforcement (see [`BlobStore::protect`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobLock {
    /// Retention: its mode and until when.
    pub retention: Option<(RetentionMode, SystemTime)>,
    /// Whether a legal hold must keep the blob.
    pub legal_hold: bool,
}

/// How strict a retention is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum RetentionMode {
    /// Lifted or shortened by whoever may bypass it.
    Governance,
    /// Lifted or shortened by nobody.
    Compliance,
}

/// A part of a store's own multipart upload, as the store knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartToJoin {
    /// Its part number.
    pub number: u32,
    /// The ETag the store gave it.
    pub etag: String,
    /// Its size in bytes.
    pub size: u64,
}

/// Identifies a blob within one store. Opaque to callers; each store validates the ids it is
/// given (for [`fs::FsBlobStore`]: 64 lowercase hex digits, see [`crate::outboard::Hashed::name`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlobId(String);

impl BlobId {
    /// Wraps a stored id (from the registry). It is validated by the store that uses it.
    #[must_use]
    pub fn new(id: impl Into<String>) -> Self {
        Self(id.into())
    }

    /// The id as stored.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for BlobId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// One stored blob, as listed for garbage collection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobEntry {
    /// The blob.
    pub id: BlobId,
    /// Its size in bytes.
    pub size: u64,
    /// Last time it was written or re-committed; gc keeps blobs younger than its grace period.
    pub modified: SystemTime,
}

/// A multipart upload the store keeps as one of its own ([`BlobStore::begin_multipart`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreUpload {
    /// The blob the completed upload becomes.
    pub blob: BlobId,
    /// The store's id for the upload.
    pub upload_id: String,
}

/// A store's half of a staged write: placing makes it a permanent blob; dropping discards
/// the staged copy (never a placed blob).
#[async_trait]
pub trait Stage: Send + Sync {
    /// Puts the staged bytes in place as a permanent blob and returns its id. Called again
    /// after gc removed the blob before its write was recorded, it puts them in place again,
    /// or fails with [`BlobError::Unavailable`] where the store kept no copy to do that with.
    async fn place(&mut self) -> Result<BlobId>;
}

/// Bytes that were received, hashed and made durable but are not yet a blob.
///
/// Dropping it discards the bytes: a write that fails verification leaves nothing behind.
pub struct StagedBlob {
    size: u64,
    hashed: Hashed,
    md5: [u8; 16],
    checksums: Checksums,
    store_etag: Option<String>,
    stage: Box<dyn Stage>,
}

impl StagedBlob {
    /// Assembles a staged blob; for [`BlobStore`] implementations.
    #[must_use]
    pub fn new(size: u64, hashed: Hashed, md5: [u8; 16], checksums: Checksums, stage: Box<dyn Stage>) -> Self {
        Self { size, hashed, md5, checksums, store_etag: None, stage }
    }

    /// The chaining values of the bytes' 1 MiB groups (see [`crate::outboard`]), when there is
    /// more than one group and the bytes were hashed from their own first byte; else empty.
    #[must_use]
    pub fn outboard(&self) -> &[ChainingValue] {
        match &self.hashed {
            Hashed::Whole { outboard, .. } => outboard,
            Hashed::Part(_) => &[],
        }
    }

    /// Notes the ETag the store gave a part of its own multipart upload.
    #[must_use]
    pub fn with_store_etag(self, etag: String) -> Self {
        Self { store_etag: Some(etag), ..self }
    }

    /// For a part put with [`BlobStore::put_part`]: the ETag that completing the upload must
    /// name for it.
    #[must_use]
    pub fn store_etag(&self) -> Option<&str> {
        self.store_etag.as_deref()
    }

    /// The hash that names the blob.
    #[must_use]
    pub fn hashed(&self) -> &Hashed {
        &self.hashed
    }

    /// The bytes' hashes as a multipart part at the offset given to [`BlobStore::put`], when
    /// one was given, the length was announced and the offset is a chunk boundary.
    #[must_use]
    pub fn part_hashes(&self) -> Option<&PartHashes> {
        match &self.hashed {
            Hashed::Part(part) => Some(part),
            Hashed::Whole { .. } => None,
        }
    }

    /// Number of bytes received.
    #[must_use]
    pub fn size(&self) -> u64 {
        self.size
    }

    /// BLAKE3 digest of the bytes; `None` for a part hashed only at its offset in its object
    /// (see [`Self::part_hashes`]).
    #[must_use]
    pub fn blake3(&self) -> Option<blake3::Hash> {
        self.hashed.blake3()
    }

    /// MD5 digest of the bytes (the single-part ETag).
    #[must_use]
    pub fn md5(&self) -> [u8; 16] {
        self.md5
    }

    /// The checksums requested from [`BlobStore::put`].
    #[must_use]
    pub fn checksums(&self) -> &Checksums {
        &self.checksums
    }

    /// Makes the bytes a permanent blob and returns its id.
    ///
    /// # Errors
    ///
    /// [`BlobError::Io`] or [`BlobError::Unavailable`] when the store cannot make it permanent;
    /// the staged bytes are then discarded.
    pub async fn commit(self) -> Result<BlobId> {
        let mut stage = self.stage;
        stage.place().await
    }

    /// Makes the bytes a permanent blob, keeping the staged copy until the returned
    /// [`PlacedBlob`] is dropped: for a write that records an event naming the blob next.
    ///
    /// # Errors
    ///
    /// As [`StagedBlob::commit`].
    pub async fn place(self) -> Result<PlacedBlob> {
        let mut stage = self.stage;
        let id = stage.place().await?;
        Ok(PlacedBlob { id, stage })
    }
}

/// A blob put in place by a write whose event is not recorded yet. While it lives, the store
/// can put the same bytes in place again ([`PlacedBlob::place_again`]) when gc removed the
/// blob before the event named it; dropping it discards the staged copy, never the blob.
pub struct PlacedBlob {
    id: BlobId,
    stage: Box<dyn Stage>,
}

impl PlacedBlob {
    /// The blob.
    #[must_use]
    pub fn id(&self) -> &BlobId {
        &self.id
    }

    /// Puts the bytes in place again, after gc removed them.
    ///
    /// # Errors
    ///
    /// [`BlobError::Unavailable`] where the store kept no copy (an S3 upstream); I/O errors.
    pub async fn place_again(&mut self) -> Result<()> {
        self.stage.place().await.map(drop)
    }
}

impl std::fmt::Debug for PlacedBlob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlacedBlob").field("id", &self.id).finish_non_exhaustive()
    }
}

impl std::fmt::Debug for StagedBlob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StagedBlob")
            .field("size", &self.size)
            .field("name", &hex::encode(self.hashed.name()))
            .field("md5", &hex::encode(self.md5))
            .field("checksums", &self.checksums)
            .finish_non_exhaustive()
    }
}

/// A place to keep object bytes.
#[async_trait]
pub trait BlobStore: Send + Sync + 'static {
    /// Streams `body` once into staging, computing BLAKE3, MD5 and `algorithms` as it passes.
    /// With `part_offset` and `expected_len`, the bytes' BLAKE3 is computed instead as the
    /// subtrees of a larger input they form at that offset (a multipart part; see
    /// [`crate::blake3_tree`]), and names the blob ([`crate::outboard::BlobHasher`]): a part is
    /// hashed once.
    /// With `seal`, the bytes are stored encrypted by it, after they were hashed: the staged
    /// blob's size and hashes are those of the plaintext (see [`crate::crypto`]).
    ///
    /// # Errors
    ///
    /// [`BlobError::IncompleteBody`] when `expected_len` is given and the body is shorter or
    /// longer; [`BlobError::Body`] when the body stream fails; I/O errors. Nothing is left behind
    /// on error.
    async fn put(
        &self,
        body: BodyStream,
        expected_len: Option<u64>,
        algorithms: &[ChecksumAlgorithm],
        part_offset: Option<u64>,
        seal: Option<Seal>,
    ) -> Result<StagedBlob>;

    /// Reads a blob, or the inclusive byte range `(first, last)` of it.
    ///
    /// # Errors
    ///
    /// [`BlobError::NotFound`], [`BlobError::InvalidId`], [`BlobError::InvalidRange`] before any
    /// byte is sent; I/O errors inside the stream.
    async fn get(&self, id: &BlobId, range: Option<(u64, u64)>) -> Result<BlobStream>;

    /// Size of a blob in bytes.
    ///
    /// # Errors
    ///
    /// [`BlobError::NotFound`], [`BlobError::InvalidId`], I/O errors.
    async fn size(&self, id: &BlobId) -> Result<u64>;

    /// Removes a blob. The registry must no longer reference it.
    ///
    /// # Errors
    ///
    /// [`BlobError::NotFound`], [`BlobError::InvalidId`], I/O errors.
    async fn delete(&self, id: &BlobId) -> Result<()>;

    /// Every stored blob with its size and modification time, in no particular order.
    ///
    /// # Errors
    ///
    /// I/O errors, before or inside the stream.
    async fn list(&self) -> Result<Pin<Box<dyn Stream<Item = Result<BlobEntry>> + Send>>>;

    /// Checks that the store answers now (for readiness reports). Cheap: one small request
    /// or filesystem call.
    ///
    /// # Errors
    ///
    /// [`BlobError::Unavailable`] and the other errors of the store's requests.
    async fn probe(&self) -> Result<()>;

    /// Makes the store hold `lock` on a blob where it keeps locks of its own (an S3 upstream
    /// with Object Lock mirroring): the retention is extended to `lock`'s if that is later or
    /// stricter, never shortened; the legal hold is set as given. Stores without locks of
    /// their own do nothing: the gateway enforces retention itself.
    ///
    /// # Errors
    ///
    /// The errors of the store's requests.
    async fn protect(&self, id: &BlobId, lock: &BlobLock) -> Result<()> {
        let _ = (id, lock);
        Ok(())
    }

    /// Starts a multipart upload of the store's own, or `None` when the store keeps each part
    /// as a blob of its own ([`BlobStore::put`]) and a completed object as the list of them.
    ///
    /// # Errors
    ///
    /// The errors of the store's requests.
    async fn begin_multipart(&self) -> Result<Option<StoreUpload>>;

    /// Streams part `number` of `upload` like [`BlobStore::put`] (encrypted by `seal` when
    /// given), replacing any earlier part with that number. Committing the staged part returns the upload's blob id; the staged
    /// part's [`StagedBlob::store_etag`] is what completion must name.
    ///
    /// # Errors
    ///
    /// Those of [`BlobStore::put`]; [`BlobError::NotFound`] when the store no longer has the
    /// upload; [`BlobError::InvalidId`] for an upload this store did not begin.
    async fn put_part(
        &self,
        (upload, number): (&StoreUpload, u32),
        body: BodyStream,
        expected_len: Option<u64>,
        algorithms: &[ChecksumAlgorithm],
        part_offset: Option<u64>,
        seal: Option<Seal>,
    ) -> Result<StagedBlob>;

    /// Joins the named parts (in order; each of the size the store holds, larger than its
    /// plaintext when encrypted) into the upload's blob and returns where each one's bytes
    /// start in it: one after the other, unless the store had to join parts that were
    /// not named too (see [`s3::S3BlobStore`]). The upload ends.
    ///
    /// # Errors
    ///
    /// [`BlobError::NotFound`] when the store no longer has the upload; the errors of the
    /// store's requests.
    async fn complete_multipart(&self, upload: &StoreUpload, parts: &[PartToJoin]) -> Result<Vec<u64>>;

    /// Ends the upload and drops its parts. An upload the store no longer has is already
    /// aborted.
    ///
    /// # Errors
    ///
    /// The errors of the store's requests.
    async fn abort_multipart(&self, upload: &StoreUpload) -> Result<()>;

    /// The store's own multipart uploads in progress, with their start times (for `gc`).
    ///
    /// # Errors
    ///
    /// The errors of the store's requests.
    async fn list_multipart(&self) -> Result<Vec<(StoreUpload, SystemTime)>>;
}
