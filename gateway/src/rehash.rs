//! A version's BLAKE3, computed again from its bytes where they are kept: the blob store, or
//! the registry for an inline object. What `package verify` and the console's "verify this
//! object" share; the bytes stream through the hasher, so memory does not grow with the size.

use bytes::Bytes;
use futures::StreamExt as _;
use registry::event::v1::BlobPart;

use crate::backend::{BlobId, BlobStore};

/// The hex BLAKE3 of the bytes `parts` name, and the bytes too when `keep` (for a manifest,
/// which is small). `inline` gives the bytes of an inline locator (`None`: they are gone).
///
/// # Errors
/// The store's read errors, `inline`'s errors, and an inline blob that is missing.
pub async fn blake3_of<F>(
    store: &dyn BlobStore,
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
    for part in parts {
        if registry::inline::is_locator(&part.blob) {
            let bytes = inline(part.blob.clone())
                .await?
                .ok_or_else(|| anyhow::anyhow!("inline blob {} is missing", part.blob))?;
            take(&bytes);
            continue;
        }
        // A part that is a range of a shared blob (an S3 upstream's multipart object) is read
        // as that range.
        let range = part.offset.filter(|_| part.size > 0).map(|offset| (offset, offset + part.size - 1));
        if part.offset.is_some() && range.is_none() {
            continue;
        }
        let mut stream = store.get(&BlobId::new(part.blob.as_str()), range).await?;
        while let Some(chunk) = stream.next().await {
            let chunk: Bytes = chunk?;
            take(&chunk);
        }
    }
    Ok((hasher.finalize().to_hex().to_string(), kept))
}
