//! A bound on the chunks of an aws-chunked body (`x-amz-content-sha256: STREAMING-...`).
//!
//! s3s 0.14 reads each chunk whole before it checks the chunk's signature and hands its bytes
//! on, and a chunk may declare up to 4 GiB: one upload could make the server hold gigabytes
//! however its bytes then stream. [`ChunkLimitBody`] reads the framing as the bytes pass:
//!
//! - A signed body (`STREAMING-AWS4-HMAC-SHA256-PAYLOAD[-TRAILER]`) passes unchanged, and fails
//!   with [`ChunkTooLarge`] (400 `InvalidRequest`) as soon as a chunk declares more than
//!   [`MAX_CHUNK`], before s3s gathers any of it: a chunk's signature covers it whole. The SDKs
//!   that sign chunks send 64 KiB (Go) or 128 KiB (Java).
//! - An unsigned one (`STREAMING-UNSIGNED-PAYLOAD-TRAILER`) has its larger chunks cut into
//!   chunks of at most [`RECHUNK`] on the way: nothing covers a chunk's bounds there, and the JS
//!   SDK sends each `data` event of a stream as one chunk, however large.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

/// The largest chunk accepted.
pub const MAX_CHUNK: u64 = 8 << 20;

/// The chunks an unsigned body's larger chunks are cut into.
pub const RECHUNK: u64 = 1 << 20;

/// The longest chunk header line (`<hex size>;chunk-signature=<64 hex>` is under 100 bytes).
const MAX_HEADER_LINE: usize = 4096;

/// The longest chunk header line s3s 0.14 reads (`ChunkMetaTooLarge` past it).
const S3S_MAX_HEADER_LINE: usize = 1024;

/// How a request's body is framed, as s3s decides it: by `x-amz-content-sha256`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chunking {
    /// Not aws-chunked.
    None,
    /// aws-chunked, each chunk signed.
    Signed,
    /// aws-chunked without chunk signatures.
    Unsigned,
}

impl Chunking {
    /// The framing of a request's body, as s3s decides it: aws-chunked only when the request
    /// is signed with SigV4 in its `Authorization` header (whatever word names its algorithm,
    /// which s3s does not read) and `x-amz-content-sha256` says so; an anonymous, SigV2,
    /// presigned or form request's body is taken as it is. Exact for a request that passed
    /// `auth::request_checks` (one value of each signing header).
    #[must_use]
    pub fn of(method: &http::Method, uri: &http::Uri, headers: &http::HeaderMap) -> Self {
        if !crate::auth::request_checks::is_sigv4_header_signed(method, uri, headers) {
            return Self::None;
        }
        match headers.get("x-amz-content-sha256").map(http::HeaderValue::as_bytes) {
            Some(b"STREAMING-UNSIGNED-PAYLOAD-TRAILER") => Self::Unsigned,
            Some(value) if value.starts_with(b"STREAMING-") => Self::Signed,
            _ => Self::None,
        }
    }
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

/// Where the scan of a signed body's framing is.
#[derive(Debug, Clone, Copy)]
enum Framing {
    /// In a chunk's header line: the size read so far, whether its hex digits ended, the
    /// line's length.
    Header { size: u64, digits_ended: bool, length: usize },
    /// In a chunk's data and the line end after it: the bytes left.
    Data { left: u64 },
    /// Past the last (empty) chunk: trailers, which s3s bounds itself.
    Done,
}

/// Where the cutting of an unsigned body's chunks is.
#[derive(Debug)]
enum Rechunker {
    /// In a chunk's header line, gathered until its end.
    Header(Vec<u8>),
    /// In a chunk's data: the bytes of it left, and of the piece being sent.
    Data { left: u64, piece_left: u64 },
    /// In the `\r\n` after a chunk's data: the bytes of it left.
    DataEnd(u64),
    /// Past the last (empty) chunk, or past a line s3s will refuse: passed as it is.
    Done,
}

/// What the body does with its frames.
#[derive(Debug)]
enum Mode {
    /// Not aws-chunked: nothing.
    Pass,
    /// Signed: follows the framing, bounds the chunks.
    Bound(Framing),
    /// Unsigned: cuts the larger chunks.
    Cut(Rechunker),
}

/// A request body whose aws-chunked chunks s3s may gather are bounded: a signed body's may not
/// be larger than [`MAX_CHUNK`], an unsigned body's are cut to [`RECHUNK`].
pub struct ChunkLimitBody<B> {
    inner: B,
    mode: Mode,
    /// Set when the body was failed for a chunk too large.
    refused: Arc<AtomicBool>,
}

impl<B> ChunkLimitBody<B> {
    /// Wraps `inner`, framed as `chunking` says ([`Chunking::of`] the request's headers); a
    /// body that is not aws-chunked passes as it is. The flag turns true if the body is failed
    /// for a chunk too large.
    pub fn new(inner: B, chunking: Chunking) -> (Self, Arc<AtomicBool>) {
        let mode = match chunking {
            Chunking::None => Mode::Pass,
            Chunking::Signed => Mode::Bound(Framing::Header { size: 0, digits_ended: false, length: 0 }),
            Chunking::Unsigned => Mode::Cut(Rechunker::Header(Vec::new())),
        };
        let refused = Arc::new(AtomicBool::new(false));
        (Self { inner, mode, refused: Arc::clone(&refused) }, refused)
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

impl Rechunker {
    /// Whether `len` more bytes fall inside the piece of data being sent, leaving some of it:
    /// then [`Self::cut`] would write them out unchanged, and they are counted instead.
    fn passes_whole(&mut self, len: usize) -> bool {
        match self {
            Self::Data { left, piece_left } if (len as u64) < *piece_left => {
                *left -= len as u64;
                *piece_left -= len as u64;
                true
            }
            _ => false,
        }
    }

    /// Writes `bytes` to `out` with every chunk over [`RECHUNK`] cut into chunks of at most
    /// that size (the data unchanged, the trailers after the last chunk as they are).
    fn cut(&mut self, mut bytes: &[u8], out: &mut Vec<u8>) -> Result<(), ChunkTooLarge> {
        while !bytes.is_empty() {
            match self {
                Self::Done => {
                    out.extend_from_slice(bytes);
                    return Ok(());
                }
                Self::Header(line) => {
                    let end = bytes.iter().position(|&b| b == b'\n');
                    let taken = end.map_or(bytes.len(), |at| at + 1);
                    line.extend_from_slice(&bytes[..taken]);
                    bytes = &bytes[taken..];
                    if line.len() > S3S_MAX_HEADER_LINE {
                        // s3s refuses a line this long; it is passed on for it to.
                        out.extend_from_slice(line);
                        *self = Self::Done;
                        continue;
                    }
                    if end.is_none() {
                        continue;
                    }
                    let line = std::mem::take(line);
                    match chunk_size(&line) {
                        // The last chunk, then the trailers; or a line s3s will refuse.
                        None | Some(0) => {
                            out.extend_from_slice(&line);
                            *self = Self::Done;
                        }
                        // Only a plain line (`<hex>\r\n`) is rewritten: one with extensions
                        // (signatures) or oddities passes as it is, for s3s to read as it would.
                        Some(size) if size > RECHUNK && is_plain(&line) => {
                            out.extend_from_slice(format!("{RECHUNK:x}\r\n").as_bytes());
                            *self = Self::Data { left: size, piece_left: RECHUNK };
                        }
                        Some(size) if size > MAX_CHUNK => return Err(ChunkTooLarge { declared: size }),
                        Some(size) => {
                            out.extend_from_slice(&line);
                            *self = Self::Data { left: size, piece_left: size };
                        }
                    }
                }
                Self::Data { left, piece_left } => {
                    let taken = usize::try_from(*piece_left).unwrap_or(usize::MAX).min(bytes.len());
                    out.extend_from_slice(&bytes[..taken]);
                    bytes = &bytes[taken..];
                    *left -= taken as u64;
                    *piece_left -= taken as u64;
                    if *left == 0 {
                        *self = Self::DataEnd(2);
                    } else if *piece_left == 0 {
                        let piece = (*left).min(RECHUNK);
                        out.extend_from_slice(format!("\r\n{piece:x}\r\n").as_bytes());
                        *piece_left = piece;
                    }
                }
                Self::DataEnd(left) => {
                    let taken = usize::try_from(*left).unwrap_or(usize::MAX).min(bytes.len());
                    out.extend_from_slice(&bytes[..taken]);
                    bytes = &bytes[taken..];
                    *left -= taken as u64;
                    if *left == 0 {
                        *self = Self::Header(Vec::new());
                    }
                }
            }
        }
        Ok(())
    }
}

/// The size s3s 0.14 reads in a chunk header line, or `None` when it refuses the line. s3s
/// takes the bytes before `;` or `\r`, reads at most eight hex digits at their start and
/// ignores the rest of them; then the line must end in `;chunk-signature=<64 bytes>\r\n` or
/// `\r\n`.
fn chunk_size(line: &[u8]) -> Option<u64> {
    let size_end = line.iter().position(|&b| b == b';' || b == b'\r')?;
    let digits = line[..size_end].iter().take_while(|b| b.is_ascii_hexdigit()).take(8);
    let size = digits.fold(None, |size: Option<u64>, &b| {
        Some(size.unwrap_or(0) * 16 + u64::from(char::from(b).to_digit(16).unwrap_or(0)))
    })?;
    let rest = &line[size_end..];
    let signed = rest.len() == 17 + 64 + 2 && rest.starts_with(b";chunk-signature=") && rest.ends_with(b"\r\n");
    (signed || rest == b"\r\n").then_some(size)
}

/// Whether a chunk header line is `<one to eight hex digits>\r\n` and nothing else.
fn is_plain(line: &[u8]) -> bool {
    line.strip_suffix(b"\r\n")
        .is_some_and(|digits| (1..=8).contains(&digits.len()) && digits.iter().all(u8::is_ascii_hexdigit))
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
            Poll::Ready(None) => {
                // A header line the body ended in is s3s's to read (and refuse), not to lose.
                if let Mode::Cut(rechunker @ Rechunker::Header(_)) = &mut self.mode
                    && let Rechunker::Header(line) = std::mem::replace(rechunker, Rechunker::Done)
                    && !line.is_empty()
                {
                    return Poll::Ready(Some(Ok(Frame::data(Bytes::from(line)))));
                }
                return Poll::Ready(None);
            }
            Poll::Pending => return Poll::Pending,
        };
        let Some(data) = frame.data_ref() else { return Poll::Ready(Some(Ok(frame))) };
        let checked = match &mut self.mode {
            Mode::Pass => return Poll::Ready(Some(Ok(frame))),
            Mode::Bound(framing) => framing.scan(data).map(|()| frame),
            Mode::Cut(rechunker) => {
                // Most frames lie inside a chunk's data, well before any cut: they pass as they
                // are, not copied.
                if rechunker.passes_whole(data.len()) {
                    return Poll::Ready(Some(Ok(frame)));
                }
                let mut out = Vec::with_capacity(data.len() + 64);
                rechunker.cut(data, &mut out).map(|()| Frame::data(Bytes::from(out)))
            }
        };
        match checked {
            Ok(frame) => Poll::Ready(Some(Ok(frame))),
            Err(err) => {
                self.refused.store(true, Ordering::Release);
                Poll::Ready(Some(Err(Box::new(err))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        let line_pending = matches!(&self.mode, Mode::Cut(Rechunker::Header(line)) if !line.is_empty());
        self.inner.is_end_stream() && !line_pending
    }

    fn size_hint(&self) -> SizeHint {
        match self.mode {
            // The cut chunks' headers add bytes.
            Mode::Cut(_) => SizeHint::default(),
            _ => self.inner.size_hint(),
        }
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

    /// The chunks' data and sizes, and what follows the last chunk, of an unsigned body.
    fn decoded(mut body: &[u8]) -> (Vec<u8>, Vec<u64>, Vec<u8>) {
        let (mut data, mut sizes) = (Vec::new(), Vec::new());
        loop {
            let end = body.iter().position(|&b| b == b'\n').expect("a header line") + 1;
            let size = chunk_size(&body[..end]).expect("a chunk size");
            body = &body[end..];
            if size == 0 {
                return (data, sizes, body.to_vec());
            }
            sizes.push(size);
            let size = usize::try_from(size).unwrap();
            data.extend_from_slice(&body[..size]);
            assert_eq!(&body[size..size + 2], b"\r\n");
            body = &body[size + 2..];
        }
    }

    #[test]
    fn an_unsigned_bodys_large_chunks_are_cut_and_its_bytes_kept() {
        let big: Vec<u8> = (0..3 * RECHUNK as usize + 5).map(|i| (i * 31 % 251) as u8).collect();
        let small = b"tail".to_vec();
        let trailer = b"x-amz-checksum-crc32:AAAAAA==\r\n\r\n";
        let body =
            [format!("{:x}\r\n", big.len()).as_bytes(), &big, b"\r\n4\r\n", &small, b"\r\n0\r\n", trailer].concat();
        for split in [1, 7, 4096, 65_536, 1 << 20, body.len()] {
            let mut rechunker = Rechunker::Header(Vec::new());
            let mut out = Vec::new();
            for piece in body.chunks(split) {
                rechunker.cut(piece, &mut out).unwrap();
            }
            let (data, sizes, rest) = decoded(&out);
            assert!(data == [big.as_slice(), &small].concat(), "split {split}: the data is kept");
            assert_eq!(sizes, [RECHUNK, RECHUNK, RECHUNK, 5, 4], "split {split}");
            assert_eq!(rest, trailer, "split {split}: the trailers follow as they were");
        }
        // A line that does not read as a chunk header is passed on for s3s to refuse.
        let mut out = Vec::new();
        Rechunker::Header(Vec::new()).cut(b"zz\r\nmore", &mut out).unwrap();
        assert_eq!(out, b"zz\r\nmore");
    }

    /// Found by a review: s3s decodes aws-chunked only for SigV4 in the header; an anonymous
    /// or SigV2 request's body is stored as it is, whatever `x-amz-content-sha256` says, and
    /// must not be rewritten.
    #[test]
    fn only_a_sigv4_header_signed_body_is_aws_chunked() {
        let of = |target: &str, authorization: Option<&str>, sha: &str| {
            let mut headers = http::HeaderMap::new();
            headers.insert("x-amz-content-sha256", sha.parse().unwrap());
            if let Some(value) = authorization {
                headers.insert(http::header::AUTHORIZATION, value.parse().unwrap());
            }
            Chunking::of(&http::Method::PUT, &target.parse().unwrap(), &headers)
        };
        let v4 =
            Some("AWS4-HMAC-SHA256 Credential=AK/20261206/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=00");
        assert_eq!(of("/b/k", v4, "STREAMING-UNSIGNED-PAYLOAD-TRAILER"), Chunking::Unsigned);
        assert_eq!(of("/b/k", v4, "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"), Chunking::Signed);
        assert_eq!(
            of("/b/k", Some("aws4-hmac-sha256 Credential=x"), "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"),
            Chunking::Signed
        );
        assert_eq!(of("/b/k", v4, "UNSIGNED-PAYLOAD"), Chunking::None);
        assert_eq!(of("/b/k", None, "STREAMING-UNSIGNED-PAYLOAD-TRAILER"), Chunking::None);
        assert_eq!(of("/b/k", Some("AWS AK:c2lnbmF0dXJl"), "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"), Chunking::None);
        assert_eq!(
            of("/b/k?Signature=s&Expires=1&AWSAccessKeyId=a", v4, "STREAMING-UNSIGNED-PAYLOAD-TRAILER"),
            Chunking::None
        );
    }

    /// Frames inside a chunk's data pass uncopied; the body comes out as [`Rechunker::cut`]
    /// writes it, however it is framed.
    #[tokio::test]
    async fn frames_inside_the_data_pass_as_they_are() {
        use http_body_util::BodyExt as _;
        let data: Vec<u8> = (0..3 * RECHUNK as usize + 5).map(|i| (i * 7 % 253) as u8).collect();
        let body = [format!("{:x}\r\n", data.len()).as_bytes(), &data, b"\r\n0\r\n\r\n"].concat();
        let mut expected = Vec::new();
        Rechunker::Header(Vec::new()).cut(&body, &mut expected).unwrap();
        for frame in [1000, 16_384, 65_536] {
            let frames: Vec<Result<Frame<Bytes>, std::convert::Infallible>> =
                body.chunks(frame).map(|piece| Ok(Frame::data(Bytes::copy_from_slice(piece)))).collect();
            let inner = http_body_util::StreamBody::new(futures::stream::iter(frames));
            let (limited, _) = ChunkLimitBody::new(inner, Chunking::Unsigned);
            let out = limited.collect().await.unwrap().to_bytes();
            assert!(out.as_ref() == expected.as_slice(), "frames of {frame}");
        }
    }

    /// Found by a review: a header line the body ended in was held and dropped, so s3s saw a
    /// clean end where it would have refused the line.
    #[tokio::test]
    async fn a_header_line_the_body_ends_in_reaches_s3s() {
        use http_body_util::BodyExt as _;
        for tail in [b"ab".to_vec(), vec![b'a'; 2000]] {
            let body = [b"5\r\nhello\r\n".as_slice(), &tail].concat();
            let inner = http_body_util::Full::new(Bytes::from(body.clone()));
            let (limited, _) = ChunkLimitBody::new(inner, Chunking::Unsigned);
            let out = limited.collect().await.unwrap().to_bytes();
            assert_eq!(out.as_ref(), body.as_slice(), "{} bytes of a line", tail.len());
        }
    }

    /// Found by a review: lines s3s reads as a size with something after its digits (a space,
    /// a ninth digit) passed as "refused by s3s" and turned the cutting off, while s3s read
    /// them as 4 GiB chunks; and lines with extensions were rewritten into ones s3s reads
    /// differently.
    #[test]
    fn header_lines_are_read_as_s3s_reads_them() {
        assert_eq!(chunk_size(b"ffffffff \r\n"), Some(0xffff_ffff));
        assert_eq!(chunk_size(b"ffffffffg\r\n"), Some(0xffff_ffff));
        assert_eq!(chunk_size(b"ffffffff000000000\r\n"), Some(0xffff_ffff), "eight digits at most");
        assert_eq!(chunk_size(b"00000000a\r\n"), Some(0));
        assert_eq!(chunk_size(format!("400;chunk-signature={}\r\n", "0".repeat(64)).as_bytes()), Some(0x400));
        assert_eq!(chunk_size(b"400;foo=bar\r\n"), None, "s3s refuses other extensions");
        assert_eq!(chunk_size(b"a\n"), None, "s3s wants CRLF");
        assert_eq!(chunk_size(b"+a\r\n"), None);
        for line in [b"ffffffff \r\n".as_slice(), b"1000000 \r\n", b"ffffffff000000000\r\n"] {
            let err = Rechunker::Header(Vec::new()).cut(line, &mut Vec::new()).unwrap_err();
            assert!(err.declared > MAX_CHUNK, "{:?}", String::from_utf8_lossy(line));
        }
        // A chunk of a plain line over the cut is cut; one with anything else passes as it is.
        let odd = b"100000 \r\n";
        let mut out = Vec::new();
        Rechunker::Header(Vec::new()).cut(odd, &mut out).unwrap();
        assert_eq!(out, odd, "not rewritten");
        let signed = format!("200000;chunk-signature={}\r\n", "0".repeat(64));
        let mut out = Vec::new();
        Rechunker::Header(Vec::new()).cut(signed.as_bytes(), &mut out).unwrap();
        assert_eq!(out, signed.as_bytes(), "a signed line keeps its signature");
    }
}
