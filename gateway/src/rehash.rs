//! A version's BLAKE3, computed again from its bytes where they are kept: the blob store, or
//! the registry for an inline object. What `package verify` and the console's "verify this
//! object" share; the bytes stream through the hasher, so memory does not grow with the size.

use std::sync::Arc;

use anyhow::Context as _;
use bytes::Bytes;
use futures::StreamExt as _;
use registry::event::v1::BlobPart;

use crate::backend::{BlobError, BlobId, BlobStore, BlobStream};
use crate::crypto::{self, KeyProvider};

/// Where versions' bytes are kept: the blob store, and the master keys that unwrap the data
/// keys of encrypted parts (`None` where there are none to hand: such parts then fail).
#[derive(Clone)]
pub struct Stored {
    /// The blob store.
    pub store: Arc<dyn BlobStore>,
    /// The master keys.
    pub keys: Option<Arc<dyn KeyProvider>>,
}

/// The hex BLAKE3 of the bytes `parts` name, and the bytes too when `keep` (for a manifest,
/// which is small). `inline` gives the bytes of an inline locator (`None`: they are gone).
///
/// # Errors
/// The store's read errors, `inline`'s errors, and an inline blob that is missing.
pub async fn blake3_of<F>(
    stored: &Stored,
    parts: &[BlobPart],
    keep: bool,
    inline: impl Fn(String) -> F,
) -> anyhow::Result<(String, Vec<u8>)>
where
    F: Future<Output = anyhow::Result<Option<Vec<u8>>>>,
{
    let mut hasher = blake3::Hasher::new();
    let mut kept = Vec::new();
    let mut take = |bytes: &[u8]| {
        hasher.update(bytes);
        if keep {
            kept.extend_from_slice(bytes);
        }
    };
    // An empty part has nothing to hash; an unencrypted one that is a blob of its own is still
    // read, to find it missing.
    let empty_to_check = |part: &BlobPart| part.offset.is_none() && part.wrapped_key.is_none();
    for part in parts.iter().filter(|part| part.size > 0 || empty_to_check(part)) {
        let stream = if registry::inline::is_locator(&part.blob) {
            let bytes = inline(part.blob.clone())
                .await?
                .ok_or_else(|| anyhow::anyhow!("inline blob {} is missing", part.blob))?;
            Box::pin(futures::stream::iter([Ok(Bytes::from(bytes))])) as BlobStream
        } else {
            // A part that is a range of a shared blob (an S3 upstream's multipart object) is
            // read as that range.
            let range = part.offset.map(|offset| (offset, offset + crypto::stored_size(part) - 1));
            stored.store.get(&BlobId::new(part.blob.as_str()), range).await?
        };
        let mut stream = plaintext(stored.keys.as_deref(), part, stream)?;
        while let Some(chunk) = stream.next().await {
            let chunk: Bytes = chunk?;
            take(&chunk);
        }
    }
    Ok((hasher.finalize().to_hex().to_string(), kept))
}

/// The plaintext of a whole non-empty part from its stored bytes `stored`: decrypted when the
/// part is encrypted (every segment authenticated), else as it is.
///
/// # Errors
/// An encrypted part without `keys`, or whose data key does not unwrap with them.
pub fn plaintext(keys: Option<&dyn KeyProvider>, part: &BlobPart, stored: BlobStream) -> anyhow::Result<BlobStream> {
    let Some(wrapped) = &part.wrapped_key else { return Ok(stored) };
    let keys = keys.context("the part is encrypted and no master key is at hand")?;
    let key = keys.unwrap(wrapped)?;
    Ok(Box::pin(key.open_stream::<_, BlobError>(part.size, (0, part.size - 1), stored)))
}
