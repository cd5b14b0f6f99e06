//! Server-side encryption: the gateway encrypts the bytes it stores, so a blob store (a local
//! folder, an upstream S3 bucket run by someone else) only ever holds ciphertext.
//!
//! - Every blob is encrypted under a data key of its own ([`DataKey`]), in the segment format
//!   of [`segments`]: AES-256-GCM over 64 KiB segments, so a range decrypts only what it
//!   touches and a changed byte is refused where it is read.
//! - A data key is kept only wrapped (encrypted) by a master key of the [`KeyRing`], in the
//!   registry's record of the part ([`registry::event::v1::WrappedKey`]); the registry never
//!   holds a key it could use, and replaying it needs none.
//! - The S3 layer decides what is encrypted (the request's `x-amz-server-side-encryption`);
//!   stores only run a [`Seal`] over the bytes after hashing them, so digests, ETags and
//!   checksums stay those of the plaintext.

mod customer;
mod keyring;
pub mod segments;

use bytes::{Bytes, BytesMut};
pub use customer::{CUSTOMER_KEY_ID, CustomerKey};
use futures::{Stream, StreamExt as _};
pub use keyring::{DEFAULT_KMS_ALIAS, KeyRing, KeyRingError, is_master_key_id};
use rand::Rng as _;
use registry::event::v1::{BlobPart, WrappedKey};
use zeroize::Zeroizing;

pub use self::segments::{OpenError, Opener, Sealer};

/// The `x-amz-server-side-encryption` value of SSE-S3: encrypted under a key the service holds.
pub const SSE_S3: &str = "AES256";

/// The `x-amz-server-side-encryption` value of SSE-KMS: data keys wrapped by a named KMS key.
pub const SSE_KMS: &str = "aws:kms";

/// One blob's AES-256 key, in memory only while the blob is written or read.
pub struct DataKey(Zeroizing<[u8; 32]>);

impl DataKey {
    /// A new random key, for one new blob.
    #[must_use]
    pub fn generate() -> Self {
        let mut key = Zeroizing::new([0u8; 32]);
        rand::rng().fill_bytes(key.as_mut());
        Self(key)
    }

    /// What a store runs over the blob's plaintext as it writes it.
    #[must_use]
    pub fn seal(&self) -> Seal {
        Seal { sealer: Sealer::new(segments::cipher(&self.0)), id: self.encrypted_blob_id() }
    }

    /// The id a content-addressed store keeps the encrypted blob of the plaintext named
    /// `plaintext_name` under (see [`EncryptedBlobId`]).
    #[must_use]
    pub fn blob_id(&self, plaintext_name: &[u8; 32]) -> String {
        self.encrypted_blob_id().of(plaintext_name)
    }

    fn encrypted_blob_id(&self) -> EncryptedBlobId {
        EncryptedBlobId(blake3::derive_key(BLOB_ID_CONTEXT, &*self.0))
    }

    /// `plaintext` in the stored form, at once: for bodies held in memory.
    #[must_use]
    pub fn seal_all(&self, plaintext: &[u8]) -> Bytes {
        let mut sealer = Sealer::new(segments::cipher(&self.0));
        let mut sealed = BytesMut::from(sealer.push(plaintext));
        sealed.extend_from_slice(&sealer.finish());
        sealed.freeze()
    }

    /// The plaintext bytes `range` of a blob of `len` plaintext bytes, from its stored bytes
    /// (as [`segments::sealed_span`] gives them) as they arrive: each segment's plaintext is
    /// passed on as soon as it authenticated, and one that does not ends the stream with
    /// [`OpenError`].
    pub fn open_stream<S, E>(
        &self,
        len: u64,
        range: (u64, u64),
        stored: S,
    ) -> impl Stream<Item = Result<Bytes, E>> + use<S, E>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: From<OpenError>,
    {
        let opener = self.opener(len, range);
        futures::stream::unfold((stored, Some(opener)), |(mut stored, opener)| async move {
            let mut opener = opener?;
            loop {
                let step = match stored.next().await {
                    Some(Ok(bytes)) => opener.push(&bytes).map_err(E::from),
                    Some(Err(err)) => Err(err),
                    None => return Some((opener.finish().map_err(E::from), (stored, None))),
                };
                match step {
                    Ok(plain) if plain.is_empty() => {}
                    Ok(plain) => return Some((Ok(plain), (stored, Some(opener)))),
                    Err(err) => return Some((Err(err), (stored, None))),
                }
            }
        })
    }

    /// A decryptor of the plaintext bytes `range` of a blob of `len` plaintext bytes, to be fed
    /// the stored bytes of [`segments::sealed_span`].
    #[must_use]
    pub fn opener(&self, len: u64, range: (u64, u64)) -> Opener {
        Opener::new(segments::cipher(&self.0), len, range)
    }
}

/// The BLAKE3 key-derivation context of the ids of encrypted blobs.
const BLOB_ID_CONTEXT: &str = "artifact-store 2026-12 encrypted blob id";

/// Encryption of one blob being written: the [`Sealer`] its plaintext goes through, and the
/// id a content-addressed store keeps it under.
pub struct Seal {
    /// Encrypts the plaintext into the stored bytes.
    pub sealer: Sealer,
    /// Names the encrypted blob.
    pub id: EncryptedBlobId,
}

/// The id of an encrypted blob, for a store that names blobs by their content.
pub struct EncryptedBlobId([u8; 32]);

impl EncryptedBlobId {
    /// The id of the encrypted blob whose plaintext has this name (its BLAKE3, or a multipart
    /// part's [`crate::outboard::Hashed::name`]): keyed by the data key, so it names this
    /// encrypted copy only, never the plaintext's own blob or another key's copy, and tells
    /// nothing of the content.
    #[must_use]
    pub fn of(&self, plaintext_name: &[u8; 32]) -> String {
        hex::encode(blake3::keyed_hash(&self.0, plaintext_name).as_bytes())
    }
}

/// How many bytes the store holds for `part`: its size, or more when it is encrypted.
#[must_use]
pub fn stored_size(part: &BlobPart) -> u64 {
    match part.wrapped_key {
        Some(_) => segments::sealed_len(part.size),
        None => part.size,
    }
}

/// The stored bytes that hold the plaintext bytes `range` of `part`, counted from the part's
/// start: the range itself, or the segments around it when the part is encrypted.
#[must_use]
pub fn stored_range(part: &BlobPart, range: (u64, u64)) -> (u64, u64) {
    match part.wrapped_key {
        Some(_) => segments::sealed_span(part.size, range),
        None => range,
    }
}

/// What wraps and unwraps data keys: the gateway's own key ring ([`KeyRing`]), or, later, an
/// external KMS. The S3 layer and the readers of blobs know keys only through it.
pub trait KeyProvider: Send + Sync {
    /// `key` wrapped by the master key (`kms_key: None`) or by KMS key `kms_key` (an id as
    /// [`KeyProvider::resolve`] gives it), for the registry.
    ///
    /// # Errors
    /// [`KeyRingError::NoSuchKmsKey`]; the provider's own failures.
    fn wrap(&self, key: &DataKey, kms_key: Option<&str>) -> Result<WrappedKey, KeyRingError>;

    /// The data key of a registry record.
    ///
    /// # Errors
    /// [`KeyRingError::UnknownKey`], [`KeyRingError::Unwrap`]; the provider's own failures.
    fn unwrap(&self, wrapped: &WrappedKey) -> Result<DataKey, KeyRingError>;

    /// The id of the KMS key `reference` names (an id, an ARN or an alias).
    ///
    /// # Errors
    /// [`KeyRingError::NoSuchKmsKey`]; the provider's own failures.
    fn resolve(&self, reference: &str) -> Result<String, KeyRingError>;

    /// The ARN of KMS key `id`, as responses name it.
    fn arn(&self, id: &str) -> String;
}

impl KeyProvider for KeyRing {
    fn wrap(&self, key: &DataKey, kms_key: Option<&str>) -> Result<WrappedKey, KeyRingError> {
        KeyRing::wrap(self, key, kms_key)
    }

    fn unwrap(&self, wrapped: &WrappedKey) -> Result<DataKey, KeyRingError> {
        KeyRing::unwrap(self, wrapped)
    }

    fn resolve(&self, reference: &str) -> Result<String, KeyRingError> {
        KeyRing::resolve(self, reference)
    }

    fn arn(&self, id: &str) -> String {
        KeyRing::arn(self, id)
    }
}

/// The data key of a new encrypted blob, with its record.
pub struct BlobKey {
    /// The key, for writing the blob.
    pub key: DataKey,
    /// The key wrapped by the key ring's current master key, for the registry.
    pub wrapped: WrappedKey,
}

impl BlobKey {
    /// A new random data key, wrapped by the master key of `keys`, or by its KMS key
    /// `kms_key` (an id as [`KeyProvider::resolve`] gives it).
    ///
    /// # Errors
    /// Those of [`KeyProvider::wrap`].
    pub fn new(keys: &dyn KeyProvider, kms_key: Option<&str>) -> Result<Self, KeyRingError> {
        let key = DataKey::generate();
        let wrapped = keys.wrap(&key, kms_key)?;
        Ok(Self { key, wrapped })
    }
}
