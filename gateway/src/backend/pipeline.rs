//! The hashing pipeline every store shares: one body read once, its chunks handed to workers
//! on the blocking pool so the expensive hashes run on different cores (measured here: BLAKE3
//! ~1.5 GiB/s, MD5 ~490 MiB/s per core). Each worker gets a bounded channel: a slow worker, or
//! a slow destination, slows the body reader down instead of letting memory grow.

use std::io;

use bytes::Bytes;
use futures::StreamExt as _;
use md5::{Digest as _, Md5};
use tokio::sync::mpsc;

use super::{BlobError, BodyStream, Result};
use crate::s3::checksum::{Checksummer, Checksums};

/// Chunks queued per hashing worker before the body reader waits (backpressure).
pub(super) const PIPELINE_DEPTH: usize = 16;

/// What a worker receives: the body's bytes, then `End` if the body arrived whole. A channel
/// closed without `End` means the put was abandoned.
pub(super) enum Chunk {
    Data(Bytes),
    End,
}

/// Reads the body into every worker, enforcing `expected_len`. Returns the byte count.
pub(super) async fn feed(
    mut body: BodyStream,
    expected_len: Option<u64>,
    workers: &[&mpsc::Sender<Chunk>],
) -> Result<u64> {
    let mut received: u64 = 0;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(BlobError::Body)?;
        received += chunk.len() as u64;
        if let Some(expected) = expected_len
            && received > expected
        {
            return Err(BlobError::IncompleteBody { expected, received });
        }
        for worker in workers {
            // Cloning `Bytes` shares the buffer: every worker reads the same memory.
            if worker.send(Chunk::Data(chunk.clone())).await.is_err() {
                return Err(io::Error::other("blob worker stopped").into());
            }
        }
    }
    if let Some(expected) = expected_len
        && received != expected
    {
        return Err(BlobError::IncompleteBody { expected, received });
    }
    Ok(received)
}

/// MD5 of everything received; `None` if the put was abandoned.
pub(super) fn md5_worker(mut rx: mpsc::Receiver<Chunk>) -> Option<[u8; 16]> {
    let mut md5 = Md5::new();
    while let Some(chunk) = rx.blocking_recv() {
        match chunk {
            Chunk::Data(bytes) => md5.update(&bytes),
            Chunk::End => return Some(md5.finalize().into()),
        }
    }
    None
}

/// The BLAKE3 chaining value of everything received, hashed as a subtree starting at
/// `offset` of a larger input; `None` if the put was abandoned or the bytes cannot form such
/// a subtree (their length does not fit at that offset).
pub(super) fn subtree_worker(mut rx: mpsc::Receiver<Chunk>, offset: u64) -> Option<[u8; 32]> {
    use blake3::hazmat::HasherExt as _;
    let mut hasher = blake3::Hasher::new();
    hasher.set_input_offset(offset);
    let mut len: u64 = 0;
    while let Some(chunk) = rx.blocking_recv() {
        match chunk {
            Chunk::Data(bytes) => {
                len += bytes.len() as u64;
                hasher.update(&bytes);
            }
            Chunk::End => {
                let fits = blake3::hazmat::max_subtree_len(offset).is_none_or(|max| len <= max) && len > 0;
                return fits.then(|| hasher.finalize_non_root());
            }
        }
    }
    None
}

/// BLAKE3 and the requested checksums of everything received; `None` if the put was
/// abandoned. (The local store folds this into its file writer.)
pub(super) fn digest_worker(
    mut rx: mpsc::Receiver<Chunk>,
    mut checksummer: Checksummer,
) -> Option<(blake3::Hash, Checksums)> {
    let mut blake3 = blake3::Hasher::new();
    while let Some(chunk) = rx.blocking_recv() {
        match chunk {
            Chunk::Data(bytes) => {
                blake3.update(&bytes);
                checksummer.update(&bytes);
            }
            Chunk::End => return Some((blake3.finalize(), checksummer.finish())),
        }
    }
    None
}

pub(super) fn join_error(err: tokio::task::JoinError) -> BlobError {
    BlobError::Io(io::Error::other(err))
}
