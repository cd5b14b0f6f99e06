//! Hand-built, hand-signed HTTP/1.1 requests, written byte for byte to a socket, for the
//! inputs no SDK sends: a body shorter than its `Content-Length`, broken aws-chunked framing,
//! wrong trailers, signatures from a skewed clock, expired presigned URLs, anonymous calls.
//!
//! Signing uses the `aws-sigv4` crate, as the SDK does; everything after signing (framing,
//! `Content-Length`, closing the connection) is ours to get wrong on purpose.

use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, SystemTime};

use aws_sdk_s3::config::Credentials;
use aws_sigv4::http_request::{
    PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SignatureLocation, SigningSettings,
    UriPathNormalizationMode, sign,
};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::{ACCESS_KEY, REGION, SECRET_KEY, Server};

/// How long one raw exchange may take before the test fails.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(60);

/// Credentials to sign with.
#[derive(Debug, Clone, Copy)]
pub struct Key<'a> {
    /// Access key id.
    pub access_key: &'a str,
    /// Secret key.
    pub secret_key: &'a str,
}

/// The server's root credentials.
pub const ROOT: Key<'static> = Key { access_key: ACCESS_KEY, secret_key: SECRET_KEY };

/// What `x-amz-content-sha256` claims about the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Payload {
    /// The SHA-256 of the body as it is.
    Signed,
    /// `UNSIGNED-PAYLOAD`.
    Unsigned,
    /// `STREAMING-UNSIGNED-PAYLOAD-TRAILER`: an aws-chunked body with trailing checksums, what
    /// the SDKs send over HTTPS by default.
    StreamingUnsignedTrailer,
}

/// A request as it will be written to the socket.
#[derive(Debug, Clone)]
pub struct RawRequest {
    method: String,
    /// Path and query, already percent-encoded.
    target: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

/// A response as read from the socket.
#[derive(Debug, Clone)]
pub struct RawResponse {
    /// The status code.
    pub status: u16,
    /// Headers, names in lower case.
    pub headers: Vec<(String, String)>,
    /// The body (de-chunked).
    pub body: Vec<u8>,
}

impl RawResponse {
    /// The S3 error code in the body, if it is an error document.
    #[must_use]
    pub fn code(&self) -> Option<String> {
        let text = String::from_utf8_lossy(&self.body);
        let start = text.find("<Code>")? + "<Code>".len();
        let end = start + text[start..].find("</Code>")?;
        Some(text[start..end].to_owned())
    }

    /// The first header called `name` (lower case).
    #[must_use]
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// The body as text, for failure messages.
    #[must_use]
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

impl RawRequest {
    /// Adds a header; it is signed if added before [`RawRequest::sign`].
    #[must_use]
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_ascii_lowercase(), value.to_owned()));
        self
    }

    /// Sets the body. `Content-Length` is the body's length unless a `content-length` header
    /// was set by hand.
    #[must_use]
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// Signs the request in its headers (SigV4, as S3 wants it) as of `time`.
    ///
    /// # Panics
    /// When `aws-sigv4` refuses the request.
    #[must_use]
    pub fn sign(mut self, key: Key<'_>, time: SystemTime, payload: Payload) -> Self {
        let mut settings = s3_settings();
        settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
        let body = match payload {
            Payload::Signed => SignableBody::Bytes(&self.body),
            Payload::Unsigned => SignableBody::UnsignedPayload,
            Payload::StreamingUnsignedTrailer => SignableBody::StreamingUnsignedPayloadTrailer,
        };
        let (headers, _) = self.signing_output(key, time, settings, body);
        self.headers.extend(headers);
        self
    }

    /// Turns the request into a presigned URL request, valid for `expires_in` from `time`.
    ///
    /// # Panics
    /// When `aws-sigv4` refuses the request.
    #[must_use]
    pub fn presign(mut self, key: Key<'_>, time: SystemTime, expires_in: Duration) -> Self {
        let mut settings = s3_settings();
        settings.signature_location = SignatureLocation::QueryParams;
        settings.expires_in = Some(expires_in);
        let (_, params) = self.signing_output(key, time, settings, SignableBody::UnsignedPayload);
        let query: Vec<String> =
            params.iter().map(|(k, v)| format!("{}={}", encode(k, false), encode(v, false))).collect();
        let separator = if self.target.contains('?') { '&' } else { '?' };
        self.target = format!("{}{separator}{}", self.target, query.join("&"));
        self
    }

    fn signing_output(
        &self,
        key: Key<'_>,
        time: SystemTime,
        settings: SigningSettings,
        body: SignableBody<'_>,
    ) -> (Pairs, Pairs) {
        let identity: Identity = Credentials::new(key.access_key, key.secret_key, None, None, "conformance").into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(REGION)
            .name("s3")
            .time(time)
            .settings(settings)
            .build()
            .expect("signing parameters")
            .into();
        let host = self.headers.iter().find(|(n, _)| n == "host").map_or("localhost", |(_, v)| v.as_str());
        let url = format!("http://{host}{}", self.target);
        let signable =
            SignableRequest::new(&self.method, &url, self.headers.iter().map(|(n, v)| (n.as_str(), v.as_str())), body)
                .expect("signable request");
        let (instructions, _signature) = sign(signable, &params).expect("sign the request").into_parts();
        let headers = instructions.headers().map(|(n, v)| (n.to_owned(), v.to_owned())).collect();
        let params = instructions.params().iter().map(|(k, v)| ((*k).to_owned(), v.to_string())).collect();
        (headers, params)
    }

    /// The bytes written to the socket.
    #[must_use]
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut head = format!("{} {} HTTP/1.1\r\n", self.method, self.target);
        for (name, value) in &self.headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        if !self.headers.iter().any(|(n, _)| n == "content-length") {
            head.push_str(&format!("content-length: {}\r\n", self.body.len()));
        }
        head.push_str("connection: close\r\n\r\n");
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(&self.body);
        bytes
    }
}

/// Header names and values, or query parameters, in order.
type Pairs = Vec<(String, String)>;

/// Signing settings S3 expects: the path signed as sent, not normalised or re-encoded.
fn s3_settings() -> SigningSettings {
    let mut settings = SigningSettings::default();
    settings.percent_encoding_mode = PercentEncodingMode::Single;
    settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
    settings
}

impl Server {
    /// A request to this server; `target` is the path and query, already percent-encoded
    /// (see [`encode`]).
    #[must_use]
    pub fn request(&self, method: &str, target: &str) -> RawRequest {
        RawRequest { method: method.to_owned(), target: target.to_owned(), headers: Vec::new(), body: Vec::new() }
            .header("host", &self.host())
    }

    /// Sends `request` and reads the whole response.
    ///
    /// # Panics
    /// On a connection error, no response, or no answer within a minute.
    pub async fn send(&self, request: &RawRequest) -> RawResponse {
        match self.try_send(request, false).await {
            Ok(Some(response)) => response,
            Ok(None) => panic!("the server closed the connection without a response\n{}", self.log()),
            Err(err) => panic!("raw request failed: {err}\n{}", self.log()),
        }
    }

    /// Sends `request` and reads what comes back: `None` when the server closed the
    /// connection without answering. With `half_close`, the write side is shut after the
    /// request, so a server waiting for more body sees the end of the stream.
    ///
    /// # Errors
    /// Connection errors (a reset is one way for a server to refuse a broken body).
    ///
    /// # Panics
    /// When the exchange takes more than a minute.
    pub async fn try_send(&self, request: &RawRequest, half_close: bool) -> io::Result<Option<RawResponse>> {
        let bytes = request.to_bytes();
        let exchange = async {
            let tcp = TcpStream::connect(self.addr()).await?;
            match &self.tls {
                None => exchange(tcp, &bytes, half_close).await,
                Some(config) => {
                    let connector = tokio_rustls::TlsConnector::from(config.clone());
                    let name = rustls::pki_types::ServerName::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST).into());
                    let tls = connector.connect(name, tcp).await?;
                    exchange(tls, &bytes, half_close).await
                }
            }
        };
        let received = tokio::time::timeout(EXCHANGE_TIMEOUT, exchange)
            .await
            .unwrap_or_else(|_| panic!("no answer within {EXCHANGE_TIMEOUT:?}\n{}", self.log()))?;
        if received.is_empty() {
            return Ok(None);
        }
        parse_response(&received).map(Some)
    }
}

async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    bytes: &[u8],
    half_close: bool,
) -> io::Result<Vec<u8>> {
    stream.write_all(bytes).await?;
    stream.flush().await?;
    if half_close {
        stream.shutdown().await?;
    }
    let mut received = Vec::new();
    match stream.read_to_end(&mut received).await {
        Ok(_) => Ok(received),
        // A TLS peer that closes without close_notify, after a complete response.
        Err(err) if err.kind() == io::ErrorKind::UnexpectedEof => Ok(received),
        Err(_) if !received.is_empty() => Ok(received),
        Err(err) => Err(err),
    }
}

fn parse_response(bytes: &[u8]) -> io::Result<RawResponse> {
    let invalid = |what: &str| io::Error::new(io::ErrorKind::InvalidData, format!("bad response: {what}"));
    let end = bytes.windows(4).position(|w| w == b"\r\n\r\n").ok_or_else(|| invalid("no end of head"))?;
    let head = std::str::from_utf8(&bytes[..end]).map_err(|_| invalid("head not UTF-8"))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().ok_or_else(|| invalid("no status line"))?;
    let status = status_line.split(' ').nth(1).and_then(|s| s.parse().ok()).ok_or_else(|| invalid(status_line))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    let raw_body = &bytes[end + 4..];
    let chunked = headers.iter().any(|(n, v)| n == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    let body = if chunked { dechunk(raw_body).ok_or_else(|| invalid("chunked body"))? } else { raw_body.to_vec() };
    Ok(RawResponse { status, headers, body })
}

fn dechunk(mut bytes: &[u8]) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line_end = bytes.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&bytes[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        bytes = &bytes[line_end + 2..];
        if size == 0 {
            return Some(body);
        }
        body.extend_from_slice(bytes.get(..size)?);
        bytes = bytes.get(size + 2..)?;
    }
}

/// Percent-encodes `text` as SigV4 and S3 paths want it: unreserved characters stay, and `/`
/// too when `keep_slash` (object keys in paths).
#[must_use]
pub fn encode(text: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.~".contains(&byte) || (keep_slash && byte == b'/') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// An aws-chunked body: each chunk framed as `<hex size>\r\n<bytes>\r\n`, then the last chunk
/// `0\r\n`, the trailers and a blank line. Only the unsigned variant (no chunk signatures).
#[must_use]
pub fn aws_chunked(chunks: &[&[u8]], trailers: &[(&str, &str)]) -> Vec<u8> {
    let mut body = Vec::new();
    for chunk in chunks {
        body.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        body.extend_from_slice(chunk);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(b"0\r\n");
    for (name, value) in trailers {
        body.extend_from_slice(format!("{name}:{value}\r\n").as_bytes());
    }
    body.extend_from_slice(b"\r\n");
    body
}
