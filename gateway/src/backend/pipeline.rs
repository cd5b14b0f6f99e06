//! The hashing pipeline every store shares: one body read once, its chunks handed to workers
//! so the expensive hashes run on different cores (measured here: BLAKE3 ~1.5 GiB/s, MD5
//! ~600 MiB/s per core). Each worker gets a bounded channel: a slow worker, or a slow
//! destination, slows the body reader down instead of letting memory grow.
//!
//! A worker is an async task that waits for its chunks without holding a thread and hands the
//! chunks queued for it to the blocking pool ([`off_thread`]): a client that sends its body
//! slowly costs a task, not a blocking thread, so slow uploads cannot exhaust the pool the
//! other requests need.

use std::io;

use bytes::{Bytes, BytesMut};
use futures::StreamExt as _;
use tokio::sync::mpsc;

use super::{BlobError, BodyStream, Result};
use crate::crypto::Sealer;
use crate::digest::{ChecksumAlgorithm, Checksummer, Checksums, Md5, md5};
use crate::outboard::{BlobHasher, Hashed};

/// Chunks queued per hashing worker before the body reader waits (backpressure). With
/// [`FEED_CHUNK`] this bounds a put's buffered body to about 2 MiB: 1 MiB queued, and at most
/// as much again taken by a worker in one [`Batch`].
pub(super) const PIPELINE_DEPTH: usize = 4;

/// The body is handed to the workers in chunks of about this size, not in the 8 to 16 KiB
/// pieces HTTP delivers: every hand-off wakes a thread, and BLAKE3 only uses its widest SIMD
/// path (16 chunks of 1 KiB at once) on inputs of 16 KiB and more.
pub(super) const FEED_CHUNK: usize = 256 << 10;

/// What a worker receives: the body's bytes, then `End` if the body arrived whole. A channel
/// closed without `End` means the put was abandoned.
pub(super) enum Chunk {
    Data(Bytes),
    End,
}

/// Reads the body into every worker in [`FEED_CHUNK`]s, enforcing `expected_len`. Returns the
/// byte count.
pub(super) async fn feed(
    mut body: BodyStream,
    expected_len: Option<u64>,
    workers: &[&mpsc::Sender<Chunk>],
) -> Result<u64> {
    let mut received: u64 = 0;
    let mut pending = BytesMut::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(BlobError::Body)?;
        received += chunk.len() as u64;
        if let Some(expected) = expected_len
            && received > expected
        {
            return Err(BlobError::IncompleteBody { expected, received });
        }
        // A chunk that is already large enough goes on as it is, without a copy.
        let ready = if pending.is_empty() && chunk.len() >= FEED_CHUNK {
            chunk
        } else {
            pending.extend_from_slice(&chunk);
            if pending.len() < FEED_CHUNK {
                continue;
            }
            pending.split().freeze()
        };
        send_to_all(workers, ready).await?;
    }
    if let Some(expected) = expected_len
        && received != expected
    {
        return Err(BlobError::IncompleteBody { expected, received });
    }
    if !pending.is_empty() {
        send_to_all(workers, pending.freeze()).await?;
    }
    Ok(received)
}

async fn send_to_all(workers: &[&mpsc::Sender<Chunk>], chunk: Bytes) -> Result<()> {
    for worker in workers {
        // Cloning `Bytes` shares the buffer: every worker reads the same memory.
        if worker.send(Chunk::Data(chunk.clone())).await.is_err() {
            return Err(io::Error::other("blob worker stopped").into());
        }
    }
    Ok(())
}

/// What a worker takes on at once: the chunks already queued for it (at most
/// [`PIPELINE_DEPTH`]), and whether the body's `End` came with them.
pub(super) struct Batch {
    pub data: Vec<Bytes>,
    pub end: bool,
}

/// The next chunk, and the chunks queued behind it, up to [`PIPELINE_DEPTH`] in all; `None`
/// once the channel is closed and empty. A worker that has fallen behind takes its backlog to
/// the blocking pool in one trip rather than one per chunk; one that keeps up gets one chunk
/// at a time. Each trip wakes a pool thread and then the worker's task: with the CPU
/// saturated by 64 MiB PUTs, the scheduler was about a tenth of the gateway's CPU, and
/// batching measured 1.05x. The cap keeps the body reader, which refills the channel while a
/// batch is taken, from growing a batch past what the channel bounds.
pub(super) async fn next_batch(rx: &mut mpsc::Receiver<Chunk>) -> Option<Batch> {
    let mut batch = Batch { data: Vec::new(), end: false };
    let mut next = Some(rx.recv().await?);
    while let Some(chunk) = next {
        match chunk {
            Chunk::Data(bytes) => batch.data.push(bytes),
            Chunk::End => {
                batch.end = true;
                break;
            }
        }
        next = if batch.data.len() < PIPELINE_DEPTH { rx.try_recv().ok() } else { None };
    }
    Some(batch)
}

/// Runs `work` (hashing or writing a batch of chunks) on the blocking pool. A panic there is
/// passed on; a cancelled task (the runtime is shutting down) gives `None`.
pub(super) async fn off_thread<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    match tokio::task::spawn_blocking(work).await {
        Ok(value) => Some(value),
        Err(err) if err.is_panic() => std::panic::resume_unwind(err.into_panic()),
        Err(_) => None,
    }
}

/// MD5 of everything received; `None` if the put was abandoned.
pub(super) async fn md5_worker(mut rx: mpsc::Receiver<Chunk>) -> Option<[u8; 16]> {
    let mut md5 = Md5::new();
    while let Some(Batch { data, end }) = next_batch(&mut rx).await {
        if !data.is_empty() {
            md5 = off_thread(move || {
                for bytes in &data {
                    md5.update(bytes);
                }
                md5
            })
            .await?;
        }
        if end {
            return Some(md5.finalize());
        }
    }
    None
}

/// What the digest worker computes: the hash that names the blob, and the requested checksums.
pub(super) struct Digests {
    pub hashed: Hashed,
    pub checksums: Checksums,
}

impl Digests {
    /// `None` for a part that was not exactly the length its hasher was made for.
    pub(super) fn finish(hasher: BlobHasher, checksummer: Checksummer) -> Option<Self> {
        Some(Self { hashed: hasher.finish()?, checksums: checksummer.finish() })
    }
}

/// The hash that names the blob (see [`BlobHasher`]) and the requested checksums of
/// everything received; `None` if the put was abandoned. (The local store folds this into its
/// file writer.)
pub(super) async fn digest_worker(
    mut rx: mpsc::Receiver<Chunk>,
    mut hasher: BlobHasher,
    mut checksummer: Checksummer,
) -> Option<Digests> {
    while let Some(Batch { data, end }) = next_batch(&mut rx).await {
        if !data.is_empty() {
            (hasher, checksummer) = off_thread(move || {
                for bytes in &data {
                    hasher.update(bytes);
                    checksummer.update(bytes);
                }
                (hasher, checksummer)
            })
            .await?;
        }
        if end {
            return Digests::finish(hasher, checksummer);
        }
    }
    None
}

/// Encrypts the chunks it receives with `sealer` and passes the stored form on to `out`
/// (an upstream request reading its own channel). A channel closed without `End` is passed on
/// closed, so the abandoned put stays abandoned.
pub(super) async fn seal_worker(mut rx: mpsc::Receiver<Chunk>, mut sealer: Sealer, out: mpsc::Sender<Chunk>) {
    while let Some(chunk) = rx.recv().await {
        let sealed = match chunk {
            Chunk::Data(bytes) => {
                let Some((next, sealed)) = off_thread(move || {
                    let sealed = sealer.push(&bytes);
                    (sealer, sealed)
                })
                .await
                else {
                    return;
                };
                sealer = next;
                sealed
            }
            Chunk::End => {
                let last = sealer.finish();
                if out.send(Chunk::Data(last)).await.is_ok() {
                    let _ = out.send(Chunk::End).await;
                }
                return;
            }
        };
        if !sealed.is_empty() && out.send(Chunk::Data(sealed)).await.is_err() {
            return;
        }
    }
}

pub(super) fn join_error(err: tokio::task::JoinError) -> BlobError {
    BlobError::Io(io::Error::other(err))
}

/// The whole body, which must be exactly `len` bytes long.
pub async fn receive_exactly(mut body: BodyStream, len: u64) -> Result<Bytes> {
    let mut data = BytesMut::with_capacity(usize::try_from(len).unwrap_or(0));
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(BlobError::Body)?;
        let received = (data.len() + chunk.len()) as u64;
        if received > len {
            return Err(BlobError::IncompleteBody { expected: len, received });
        }
        data.extend_from_slice(&chunk);
    }
    if data.len() as u64 != len {
        return Err(BlobError::IncompleteBody { expected: len, received: data.len() as u64 });
    }
    Ok(data.freeze())
}

/// Everything a put computes over a body held whole in memory.
#[derive(Debug)]
pub struct Hashes {
    /// MD5 (the single-part ETag).
    pub md5: [u8; 16],
    /// The hash that names the blob (see [`BlobHasher`]).
    pub hashed: Hashed,
    /// The requested checksums.
    pub checksums: Checksums,
}

impl Hashes {
    /// Hashes `data` on the calling thread: for small bodies, where a hand-off to a worker per
    /// hash would cost more than the hashing. With `part_offset`, as a multipart part there
    /// (see [`BlobHasher`]).
    #[must_use]
    pub fn of(data: &[u8], algorithms: &[ChecksumAlgorithm], part_offset: Option<u64>) -> Self {
        let md5 = md5(data);
        let mut hasher = BlobHasher::new(part_offset, Some(data.len() as u64));
        hasher.update(data);
        let hashed = hasher.finish().expect("hashed at exactly the length it was made for");
        let mut checksummer = Checksummer::new(algorithms);
        checksummer.update(data);
        Self { md5, hashed, checksums: checksummer.finish() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_worker_takes_its_backlog_in_order_and_an_abandoned_body_ends_it() {
        let (tx, mut rx) = mpsc::channel(PIPELINE_DEPTH);
        for piece in ["a", "b", "c"] {
            tx.send(Chunk::Data(Bytes::from(piece))).await.unwrap();
        }
        tx.send(Chunk::End).await.unwrap();
        let batch = next_batch(&mut rx).await.expect("chunks were queued");
        assert_eq!(batch.data, [Bytes::from("a"), Bytes::from("b"), Bytes::from("c")]);
        assert!(batch.end, "the End queued behind the data comes with it");

        tx.send(Chunk::Data(Bytes::from("d"))).await.unwrap();
        drop(tx);
        let batch = next_batch(&mut rx).await.expect("one chunk was queued");
        assert_eq!(batch.data, [Bytes::from("d")]);
        assert!(!batch.end, "a body whose sender went away did not end");
        assert!(next_batch(&mut rx).await.is_none(), "closed and empty: the put was abandoned");
    }

    #[tokio::test]
    async fn a_batch_takes_no_more_than_the_channel_holds() {
        let (tx, mut rx) = mpsc::channel(2 * PIPELINE_DEPTH);
        let pieces: Vec<Bytes> = (0..PIPELINE_DEPTH + 2).map(|i| Bytes::from(i.to_string())).collect();
        for piece in &pieces {
            tx.send(Chunk::Data(piece.clone())).await.unwrap();
        }
        tx.send(Chunk::End).await.unwrap();
        let first = next_batch(&mut rx).await.unwrap();
        assert_eq!(first.data, pieces[..PIPELINE_DEPTH]);
        assert!(!first.end);
        let second = next_batch(&mut rx).await.unwrap();
        assert_eq!(second.data, pieces[PIPELINE_DEPTH..]);
        assert!(second.end);
    }

    #[tokio::test]
    async fn the_md5_worker_hashes_every_queued_chunk_before_it_finishes() {
        let (tx, rx) = mpsc::channel(PIPELINE_DEPTH);
        for piece in ["a", "b", "c"] {
            tx.send(Chunk::Data(Bytes::from(piece))).await.unwrap();
        }
        tx.send(Chunk::End).await.unwrap();
        assert_eq!(md5_worker(rx).await, Some(md5(b"abc")));

        let (tx, rx) = mpsc::channel(PIPELINE_DEPTH);
        tx.send(Chunk::Data(Bytes::from("a"))).await.unwrap();
        drop(tx);
        assert_eq!(md5_worker(rx).await, None, "a body without End was abandoned");
    }
}
