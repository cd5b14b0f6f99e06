//! Objects kept inline in the registry: PutObject bodies of at most
//! `storage.inline_max_bytes` bytes.
//!
//! Their bytes go into the registry's log database in the same transaction as the event that
//! records the version (`registry::inline`), so such a PUT costs no blob store write and no
//! sync of its own: on the local store it saves the blob's `fdatasync` and its directory's
//! `fsync`, and shares the group commit's one fsync with every other write. The version's
//! part names the bytes by an inline locator instead of a blob id; reads, copies and part
//! copies go through [`read`], everything else (ETag, checksums, BLAKE3) is as for any
//! object.

use bytes::Bytes;
use registry::Registry;
use registry::event::v1::BlobPart;
use registry::inline::InlineBlob;
use s3s::TrailingHeaders;
use s3s::dto::StreamingBlob;

use super::checksum::ExpectedChecksums;
use super::error::Result;
use super::{Gateway, Stored, wire};
use crate::backend::{BlobError, BlobStream, BodyStream, Hashes, receive_exactly};
use crate::crypto::BlobKey;

/// Bodies up to this size are hashed on the request's own thread; larger ones on the blocking
/// pool, so that no runtime thread spends long on MD5 (about 600 MiB/s).
const HASH_IN_PLACE: u64 = 16 << 10;

/// The announced length of a PutObject body, when it is small enough to keep inline.
pub(super) fn eligible(gw: &Gateway, content_length: Option<i64>) -> Option<u64> {
    let len = u64::try_from(content_length?).ok()?;
    (len <= gw.config.storage.inline_limit()).then_some(len)
}

/// Receives a body of exactly `len` bytes into memory, hashes it as a blob store would and
/// verifies the client's checksums. Nothing is stored: the bytes go to the registry with the
/// version's event, encrypted under `key` when given.
pub(super) async fn store_body(
    body: Option<StreamingBlob>,
    len: u64,
    expected: &ExpectedChecksums,
    trailers: Option<TrailingHeaders>,
    key: Option<BlobKey>,
) -> Result<(Stored, InlineBlob)> {
    let stream: BodyStream = match body {
        Some(body) => Box::pin(body),
        None => Box::pin(futures::stream::empty()),
    };
    let data = receive_exactly(stream, len).await?;
    let algorithms = expected.algorithms();
    let (data, hashes) = if len <= HASH_IN_PLACE {
        let hashes = Hashes::of(&data, &algorithms, None);
        (data, hashes)
    } else {
        tokio::task::spawn_blocking(move || {
            let hashes = Hashes::of(&data, &algorithms, None);
            (data, hashes)
        })
        .await
        .map_err(|err| BlobError::Io(std::io::Error::other(err)))?
    };
    let trailers = trailers.and_then(|t| t.take());
    expected.verify(&hashes.md5, &hashes.checksums, trailers.as_ref())?;
    let (kept, wrapped_key) = match key {
        Some(BlobKey { key, wrapped }) => (key.seal_all(&data), Some(wrapped)),
        None => (data, None),
    };
    let blob = InlineBlob::new(kept.to_vec());
    crate::metrics::bytes_received(len);
    let part = BlobPart {
        blob: blob.locator(),
        size: len,
        etag: hex::encode(hashes.md5),
        checksums: wire::checksum_map(&hashes.checksums),
        subtree: None,
        subtrees: None,
        offset: None,
        store_etag: None,
        wrapped_key,
    };
    Ok((Stored { part, blake3: hashes.hashed.blake3(), outboard: Vec::new() }, blob))
}

/// The inclusive byte range `(first, last)` of inline bytes, as one chunk.
///
/// # Errors
/// [`BlobError::NotFound`] when the registry no longer holds them (every version naming them
/// was deleted and `gc` ran), [`BlobError::InvalidRange`], registry failures as I/O errors.
pub(super) async fn read(
    registry: &Registry,
    locator: &str,
    (first, last): (u64, u64),
) -> Result<BlobStream, BlobError> {
    let locator = locator.to_owned();
    let bytes = registry
        .read(move |conn| conn.inline_bytes(&locator))
        .await
        .map_err(|err| BlobError::Io(std::io::Error::other(err)))?
        .ok_or(BlobError::NotFound)?;
    slice(Bytes::from(bytes), (first, last))
}

/// The inclusive byte range `(first, last)` of inline bytes already read, as one chunk.
///
/// # Errors
/// [`BlobError::InvalidRange`] when the bytes are shorter.
pub(super) fn slice(bytes: Bytes, (first, last): (u64, u64)) -> Result<BlobStream, BlobError> {
    let size = bytes.len() as u64;
    if first > last || last >= size {
        return Err(BlobError::InvalidRange { start: first, end: last, size });
    }
    #[expect(clippy::cast_possible_truncation, reason = "the range is inside a buffer in memory")]
    let chunk = bytes.slice(first as usize..=last as usize);
    Ok(Box::pin(futures::stream::once(std::future::ready(Ok(chunk)))))
}
