//! Request bodies generated from memory.
//!
//! The gateway stores blobs by content (identical bytes are stored once), so every object must
//! differ or the benchmark would measure deduplication. A body is a 16-byte head unique to the
//! object followed by slices of one shared pseudo-random pool: no disk reads, no copies, and a
//! 5 GiB body costs the client no memory.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{SystemTime, UNIX_EPOCH};

use aws_sdk_s3::primitives::{ByteStream, SdkBody};
use bytes::{BufMut, Bytes, BytesMut};
use http_body::{Frame, SizeHint};

const POOL_SIZE: usize = 1 << 20;
const HEAD_SIZE: u64 = 16;

/// Hands out bodies that are unique within this process and, through the start time in every
/// head, across processes writing to the same server.
pub struct Bodies {
    pool: Bytes,
    run: u64,
    next: AtomicU64,
}

impl Bodies {
    pub fn new() -> Self {
        let run = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
        Self { pool: pool(run), run, next: AtomicU64::new(0) }
    }

    /// A fresh body of exactly `size` bytes, with a known length and retryable.
    pub fn body(&self, size: u64) -> ByteStream {
        let mut head = BytesMut::with_capacity(HEAD_SIZE as usize);
        // The sequence number first, least significant byte first: even a few-byte body differs.
        head.put_u64_le(self.next.fetch_add(1, Ordering::Relaxed));
        head.put_u64(self.run);
        let head = head.freeze().slice(..size.min(HEAD_SIZE) as usize);
        let pool = self.pool.clone();
        ByteStream::new(SdkBody::retryable(move || {
            SdkBody::from_body_1_x(Generated {
                head: Some(head.clone()).filter(|h| !h.is_empty()),
                pool: pool.clone(),
                remaining: size - head.len() as u64,
            })
        }))
    }
}

/// xorshift64*: incompressible enough that no layer can shortcut the bytes.
fn pool(seed: u64) -> Bytes {
    let mut state = seed | 1;
    let mut buf = BytesMut::with_capacity(POOL_SIZE);
    while buf.len() < POOL_SIZE {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        buf.put_u64(state.wrapping_mul(0x2545_F491_4F6C_DD1D));
    }
    buf.freeze()
}

struct Generated {
    head: Option<Bytes>,
    pool: Bytes,
    remaining: u64,
}

impl http_body::Body for Generated {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if let Some(head) = self.head.take() {
            return Poll::Ready(Some(Ok(Frame::data(head))));
        }
        if self.remaining == 0 {
            return Poll::Ready(None);
        }
        let n = self.remaining.min(self.pool.len() as u64);
        self.remaining -= n;
        Poll::Ready(Some(Ok(Frame::data(self.pool.slice(..n as usize)))))
    }

    fn is_end_stream(&self) -> bool {
        self.head.is_none() && self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.head.as_ref().map_or(0, |h| h.len() as u64) + self.remaining)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn collect(stream: ByteStream) -> Bytes {
        stream.collect().await.expect("generated bodies do not fail").into_bytes()
    }

    #[tokio::test]
    async fn bodies_have_the_exact_size_and_differ() {
        let bodies = Bodies::new();
        for size in [0, 5, 16, 4096, 3 * POOL_SIZE as u64 + 7] {
            let a = bodies.body(size);
            assert_eq!(a.size_hint(), (size, Some(size)));
            let (a, b) = (collect(a).await, collect(bodies.body(size)).await);
            assert_eq!(a.len() as u64, size);
            if size > 0 {
                assert_ne!(a, b);
            }
        }
    }
}
