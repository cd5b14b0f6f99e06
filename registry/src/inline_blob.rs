//! An inline blob: a small object's bytes named by their BLAKE3 digest, and the locator
//! (`inline:<BLAKE3 hex>`) a version's part records in place of a blob store's id. How an
//! engine keeps the bytes is its own ([`crate::inline`] for SQLite).

/// What every inline locator starts with. A blob store's ids never do (the local store's are
/// bare hex, the S3 store's random names without a colon).
pub const LOCATOR_PREFIX: &str = "inline:";

/// The bytes of a small object, with the digest that names them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InlineBlob {
    pub(crate) digest: [u8; 32],
    pub(crate) bytes: Vec<u8>,
}

impl InlineBlob {
    /// Names `bytes` by their BLAKE3 digest.
    #[must_use]
    pub fn new(bytes: Vec<u8>) -> Self {
        Self { digest: *blake3::hash(&bytes).as_bytes(), bytes }
    }

    /// The blob id a version's part records: `inline:<BLAKE3 hex>`.
    #[must_use]
    pub fn locator(&self) -> String {
        format!("{LOCATOR_PREFIX}{}", hex::encode(self.digest))
    }

    /// The bytes.
    #[must_use]
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

/// Whether a blob id names inline bytes rather than a blob in a store.
#[must_use]
pub fn is_locator(blob: &str) -> bool {
    blob.starts_with(LOCATOR_PREFIX)
}

/// The digest an inline locator names, if it is one.
#[must_use]
pub fn digest_of(locator: &str) -> Option<[u8; 32]> {
    let hex_digest = locator.strip_prefix(LOCATOR_PREFIX)?;
    let mut digest = [0; 32];
    hex::decode_to_slice(hex_digest, &mut digest).ok()?;
    Some(digest)
}
