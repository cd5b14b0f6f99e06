//! A bound on the chunks of an aws-chunked body (`x-amz-content-sha256: STREAMING-...`).
//!
//! s3s 0.14 reads each chunk whole before it checks the chunk's signature and hands its bytes
//! on, and a chunk may declare up to 4 GiB: one upload could make the server hold gigabytes
//! however its bytes then stream. [`ChunkLimitBody`] reads the framing as the bytes pass
//! through, unchanged, and fails the body with [`ChunkTooLarge`] (400 `InvalidRequest`) as soon
//! as a chunk declares more than [`MAX_CHUNK`], before s3s gathers any of it. SDKs send chunks
//! of 64 KiB (Go, JavaScript, Rust), 128 KiB (Java) or 1 MiB (botocore).

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

/// The largest chunk accepted.
pub const MAX_CHUNK: u64 = 8 << 20;

/// The longest chunk header line (`<hex size>;chunk-signature=<64 hex>` is under 100 bytes).
const MAX_HEADER_LINE: usize = 4096;

/// Whether a request's body is aws-chunked, as s3s decides it: by `x-amz-content-sha256`.
#[must_use]
pub fn is_aws_chunked(headers: &http::HeaderMap) -> bool {
    headers.get("x-amz-content-sha256").is_some_and(|value| value.as_bytes().starts_with(b"STREAMING-"))
}

/// A chunk declared larger than [`MAX_CHUNK`], or a chunk header that never ends.
#[derive(Debug, thiserror::Error)]
#[error("{} {declared} bytes, more than the {MAX_CHUNK} accepted", Self::MARK)]
pub struct ChunkTooLarge {
    /// The size declared (`u64::MAX` for a header line too long to be one).
    pub declared: u64,
}

impl ChunkTooLarge {
    /// The start of its message, by which it is known once s3s has made it text.
    pub const MARK: &str = "an aws-chunked chunk declares";
}

/// Where the scan of the framing is.
#[derive(Debug, Clone, Copy)]
enum Framing {
    /// In a chunk's header line: the size read so far, whether its hex digits ended, the
    /// line's length.
    Header { size: u64, digits_ended: bool, length: usize },
    /// In a chunk's data and the line end after it: the bytes left.
    Data { left: u64 },
    /// Past the last (empty) chunk: trailers, which s3s bounds itself; or a body that is not
    /// aws-chunked.
    Done,
}

/// A request body whose aws-chunked chunks may not be larger than [`MAX_CHUNK`].
pub struct ChunkLimitBody<B> {
    inner: B,
    framing: Framing,
    /// Set when the body was failed for a chunk too large.
    refused: Arc<AtomicBool>,
}

impl<B> ChunkLimitBody<B> {
    /// Wraps `inner`, whose framing is followed when it is `aws_chunked` ([`is_aws_chunked`]);
    /// any other body passes as it is. The flag turns true if the body is failed for a chunk
    /// too large.
    pub fn new(inner: B, aws_chunked: bool) -> (Self, Arc<AtomicBool>) {
        let framing =
            if aws_chunked { Framing::Header { size: 0, digits_ended: false, length: 0 } } else { Framing::Done };
        let refused = Arc::new(AtomicBool::new(false));
        (Self { inner, framing, refused: Arc::clone(&refused) }, refused)
    }
}

/// The message of the refusal of a chunk too large (400 `InvalidRequest`).
pub const MESSAGE: &str =
    "An aws-chunked chunk is larger than the 8388608 bytes this server accepts; send smaller chunks.";

/// The answer to a body failed for a chunk too large: 400 `InvalidRequest`.
#[must_use]
pub fn refusal(request_id: &str) -> http::Response<s3s::Body> {
    let refusal = crate::auth::request_checks::Refusal {
        code: s3s::S3ErrorCode::InvalidRequest,
        message: MESSAGE.to_owned(),
        details: Vec::new(),
    };
    let mut response = http::Response::new(s3s::Body::from(refusal.to_xml(request_id)));
    *response.status_mut() = refusal.status();
    response.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/xml"));
    response
}

impl Framing {
    /// Follows the framing over `bytes`.
    fn scan(&mut self, mut bytes: &[u8]) -> Result<(), ChunkTooLarge> {
        while !bytes.is_empty() {
            match self {
                Self::Done => return Ok(()),
                Self::Data { left } => {
                    let taken = usize::try_from(*left).unwrap_or(usize::MAX).min(bytes.len());
                    bytes = &bytes[taken..];
                    *left -= taken as u64;
                    if *left == 0 {
                        *self = Self::Header { size: 0, digits_ended: false, length: 0 };
                    }
                }
                Self::Header { size, digits_ended, length } => {
                    let byte = bytes[0];
                    bytes = &bytes[1..];
                    *length += 1;
                    if *length > MAX_HEADER_LINE {
                        return Err(ChunkTooLarge { declared: u64::MAX });
                    }
                    if byte == b'\n' {
                        let size = *size;
                        if size > MAX_CHUNK {
                            return Err(ChunkTooLarge { declared: size });
                        }
                        // The data, then its `\r\n`; a malformed line is s3s's to refuse.
                        *self = if size == 0 { Self::Done } else { Self::Data { left: size + 2 } };
                        continue;
                    }
                    match (char::from(byte).to_digit(16), *digits_ended) {
                        (Some(digit), false) => {
                            *size = size.saturating_mul(16).saturating_add(u64::from(digit));
                            if *size > MAX_CHUNK {
                                return Err(ChunkTooLarge { declared: *size });
                            }
                        }
                        _ => *digits_ended = true,
                    }
                }
            }
        }
        Ok(())
    }
}

impl<B> Body for ChunkLimitBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let frame = match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => frame,
            Poll::Ready(Some(Err(err))) => return Poll::Ready(Some(Err(err.into()))),
            Poll::Ready(None) => return Poll::Ready(None),
            Poll::Pending => return Poll::Pending,
        };
        if let Some(data) = frame.data_ref()
            && let Err(err) = self.framing.scan(data)
        {
            self.refused.store(true, Ordering::Release);
            return Poll::Ready(Some(Err(Box::new(err))));
        }
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan_all(pieces: &[&[u8]]) -> Result<(), ChunkTooLarge> {
        let mut framing = Framing::Header { size: 0, digits_ended: false, length: 0 };
        pieces.iter().try_for_each(|piece| framing.scan(piece))
    }

    #[test]
    fn chunks_up_to_the_bound_pass_and_a_larger_one_is_caught_at_its_header() {
        let data = vec![b'x'; 1000];
        let body = [b"3e8;chunk-signature=ab\r\n".as_slice(), &data, b"\r\n0;chunk-signature=cd\r\n\r\n"].concat();
        // Split anywhere: the framing is followed across frames.
        for at in [0, 1, 3, 20, 500, body.len() - 1] {
            assert!(scan_all(&[&body[..at], &body[at..]]).is_ok(), "split at {at}");
        }
        let most = format!("{MAX_CHUNK:x}\r\n");
        assert!(scan_all(&[most.as_bytes()]).is_ok());
        let over = format!("{:x};chunk-signature=ab\r\n", MAX_CHUNK + 1);
        assert_eq!(scan_all(&[over.as_bytes()]).unwrap_err().declared, MAX_CHUNK + 1);
        // Caught while the digits arrive, before the line ends.
        assert!(scan_all(&[b"fffffffff"]).is_err());
        // After the last chunk, trailers are not chunk headers.
        assert!(scan_all(&[b"0\r\nx-amz-checksum-crc32:AAAAAA==\r\n\r\n"]).is_ok());
        assert!(scan_all(&[&vec![b';'; MAX_HEADER_LINE + 1]]).is_err(), "a header line without end");
        assert!(MESSAGE.contains(&MAX_CHUNK.to_string()), "the refusal names the bound");
    }
}
