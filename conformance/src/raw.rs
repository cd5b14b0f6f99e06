//! Hand-built, hand-signed HTTP/1.1 requests, written byte for byte to a socket, for the
//! inputs no SDK sends: a body shorter than its `Content-Length`, broken aws-chunked framing,
//! wrong trailers, signatures from a skewed clock, expired presigned URLs, anonymous calls;
//! and for the signed streaming uploads ([`SignedChunks`]) that the Java and Go SDKs send but
//! the Rust SDK does not.
//!
//! Signing uses the `aws-sigv4` crate, as the SDK does; everything after signing (framing,
//! `Content-Length`, closing the connection) is ours to get wrong on purpose.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
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

/// The region and service a SigV4 signature is scoped to.
#[derive(Debug, Clone, Copy)]
pub struct Scope<'a> {
    /// The region, such as `us-east-1`.
    pub region: &'a str,
    /// The service, such as `s3`.
    pub service: &'a str,
}

/// The scope the test servers serve: S3 in [`REGION`].
pub const S3: Scope<'static> = Scope { region: REGION, service: "s3" };

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

/// Asserts that `response` is the S3 error `code` with `status`.
///
/// # Panics
/// When it is not.
pub fn assert_refused(response: &RawResponse, status: u16, code: &str, what: &str) {
    assert_eq!(
        (response.status, response.code().as_deref()),
        (status, Some(code)),
        "{what}: expected {status} {code}, got {} {}",
        response.status,
        response.text()
    );
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

    /// The path and query as they will be sent.
    #[must_use]
    pub fn target(&self) -> &str {
        &self.target
    }

    /// Sets the body. `Content-Length` is the body's length unless a `content-length` header
    /// was set by hand.
    #[must_use]
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// The body's length, as sent.
    #[must_use]
    pub fn body_len(&self) -> usize {
        self.body.len()
    }

    /// Signs the request in its headers (SigV4, as S3 wants it) as of `time`.
    ///
    /// # Panics
    /// When `aws-sigv4` refuses the request.
    #[must_use]
    pub fn sign(self, key: Key<'_>, time: SystemTime, payload: Payload) -> Self {
        self.sign_in(S3, key, time, payload)
    }

    /// [`RawRequest::sign`] with a credential scope of another region or service.
    ///
    /// # Panics
    /// When `aws-sigv4` refuses the request.
    #[must_use]
    pub fn sign_in(mut self, scope: Scope<'_>, key: Key<'_>, time: SystemTime, payload: Payload) -> Self {
        let mut settings = s3_settings();
        settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
        let body = match payload {
            Payload::Signed => SignableBody::Bytes(&self.body),
            Payload::Unsigned => SignableBody::UnsignedPayload,
            Payload::StreamingUnsignedTrailer => SignableBody::StreamingUnsignedPayloadTrailer,
        };
        let (headers, _, _) = self.signing_output(scope, key, time, settings, body);
        self.headers.extend(headers);
        self
    }

    /// Signs the request in its headers for a signed streaming upload of `body` as of `time`,
    /// then writes `body` aws-chunked, each chunk signed in a chain seeded by the request's
    /// own signature. `Content-Encoding` (`aws-chunked`, unless the request has one, such as
    /// `aws-chunked,gzip`), `x-amz-decoded-content-length`, `x-amz-trailer` and
    /// `Content-Length` are set and signed, as the Java SDKs do.
    ///
    /// # Panics
    /// When `aws-sigv4` refuses the request.
    #[must_use]
    pub fn sign_streaming(mut self, key: Key<'_>, time: SystemTime, body: &SignedChunks) -> Self {
        if !self.headers.iter().any(|(name, _)| name == "content-encoding") {
            self = self.header("content-encoding", "aws-chunked");
        }
        self = self.header("x-amz-decoded-content-length", &body.decoded_len().to_string());
        if !body.trailers.is_empty() {
            let names: Vec<&str> = body.trailers.iter().map(|(n, _)| n.as_str()).collect();
            self = self.header("x-amz-trailer", &names.join(","));
        }
        // Every signature is 64 hex digits: a chain from any seed and date has the same length.
        let framed_len = body.encode(&ChunkSigner::new(key, time, "00000000T000000Z"), &"0".repeat(64)).len();
        self = self.header("content-length", &framed_len.to_string());
        let mut settings = s3_settings();
        settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
        let payload = SignableBody::Precomputed(body.content_sha256().to_owned());
        let (headers, _, seed) = self.signing_output(S3, key, time, settings, payload);
        self.headers.extend(headers);
        let timestamp = self.headers.iter().find(|(n, _)| n == "x-amz-date").map(|(_, v)| v.clone());
        let signer = ChunkSigner::new(key, time, &timestamp.expect("x-amz-date is signed"));
        self.body = body.encode(&signer, &seed);
        self
    }

    /// Turns the request into a presigned URL request, valid for `expires_in` from `time`.
    ///
    /// # Panics
    /// When `aws-sigv4` refuses the request.
    #[must_use]
    pub fn presign(self, key: Key<'_>, time: SystemTime, expires_in: Duration) -> Self {
        self.presign_in(S3, key, time, expires_in)
    }

    /// [`RawRequest::presign`] with a credential scope of another region or service.
    ///
    /// # Panics
    /// When `aws-sigv4` refuses the request.
    #[must_use]
    pub fn presign_in(mut self, scope: Scope<'_>, key: Key<'_>, time: SystemTime, expires_in: Duration) -> Self {
        let mut settings = s3_settings();
        settings.signature_location = SignatureLocation::QueryParams;
        settings.expires_in = Some(expires_in);
        let (_, params, _) = self.signing_output(scope, key, time, settings, SignableBody::UnsignedPayload);
        let query: Vec<String> =
            params.iter().map(|(k, v)| format!("{}={}", encode(k, false), encode(v, false))).collect();
        let separator = if self.target.contains('?') { '&' } else { '?' };
        self.target = format!("{}{separator}{}", self.target, query.join("&"));
        self
    }

    fn signing_output(
        &self,
        scope: Scope<'_>,
        key: Key<'_>,
        time: SystemTime,
        settings: SigningSettings,
        body: SignableBody<'_>,
    ) -> (Pairs, Pairs, String) {
        let identity: Identity = Credentials::new(key.access_key, key.secret_key, None, None, "conformance").into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(scope.region)
            .name(scope.service)
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
        let (instructions, signature) = sign(signable, &params).expect("sign the request").into_parts();
        let headers = instructions.headers().map(|(n, v)| (n.to_owned(), v.to_owned())).collect();
        let params = instructions.params().iter().map(|(k, v)| ((*k).to_owned(), v.to_string())).collect();
        (headers, params, signature)
    }

    /// The method, path and query, and headers (names in lower case), as signed: for
    /// sending the same request another way ([`crate::http2`]).
    #[must_use]
    pub fn parts(&self) -> (&str, &str, &[(String, String)]) {
        (&self.method, &self.target, &self.headers)
    }

    /// Signs the request with SigV2 in its `Authorization` header, dated `time` in a `Date`
    /// header. An `x-amz-date` header added before takes the place of `Date` in the signature,
    /// as in SigV2. Only plain paths (no sub-resources in the query) are supported.
    #[must_use]
    pub fn sign_v2(self, key: Key<'_>, time: SystemTime) -> Self {
        let resource = self.v2_plain_resource();
        self.sign_v2_as(key, time, &resource)
    }

    /// As [`Self::sign_v2`], with `resource` as the signed CanonicalizedResource (path and
    /// subresources) instead of the target: botocore signs `/bucket/` for a request it sends
    /// to `/bucket`.
    #[must_use]
    pub fn sign_v2_as(mut self, key: Key<'_>, time: SystemTime, resource: &str) -> Self {
        self = self.header("date", &httpdate::fmt_http_date(time));
        let date =
            if self.headers.iter().any(|(n, _)| n == "x-amz-date") { String::new() } else { self.v2_header("date") };
        let signature = self.v2_signature(key, &date, resource);
        self.header("authorization", &format!("AWS {}:{signature}", key.access_key))
    }

    /// The request with `parameter` added to its query, as someone would add it after it was
    /// signed.
    #[must_use]
    pub fn with_query(mut self, parameter: &str) -> Self {
        let separator = if self.target.contains('?') { '&' } else { '?' };
        self.target = format!("{}{separator}{parameter}", self.target);
        self
    }

    /// Turns the request into a SigV2 presigned URL request that expires at `expires`.
    #[must_use]
    pub fn presign_v2(self, key: Key<'_>, expires: SystemTime) -> Self {
        let resource = self.v2_plain_resource();
        self.presign_v2_as(key, expires, &resource)
    }

    /// As [`Self::presign_v2`], with `resource` as the signed CanonicalizedResource (path and
    /// subresources) instead of the target, which may then have a query of its own.
    #[must_use]
    pub fn presign_v2_as(mut self, key: Key<'_>, expires: SystemTime, resource: &str) -> Self {
        let expires = expires.duration_since(SystemTime::UNIX_EPOCH).expect("after 1970").as_secs().to_string();
        let signature = self.v2_signature(key, &expires, resource);
        let separator = if self.target.contains('?') { '&' } else { '?' };
        self.target = format!(
            "{}{separator}AWSAccessKeyId={}&Expires={expires}&Signature={}",
            self.target,
            encode(key.access_key, false),
            encode(&signature, false)
        );
        self
    }

    /// The target as the CanonicalizedResource, which only a plain path (no subresources) is.
    fn v2_plain_resource(&self) -> String {
        assert!(!self.target.contains('?'), "SigV2 signing of the target supports plain paths only");
        self.target.clone()
    }

    /// The SigV2 signature (HMAC-SHA1, base64) of the request with `date` on the date line and
    /// `resource` as its CanonicalizedResource.
    fn v2_signature(&self, key: Key<'_>, date: &str, resource: &str) -> String {
        use base64::Engine as _;
        use hmac::{KeyInit as _, Mac as _};
        let mut amz: Vec<&(String, String)> = self.headers.iter().filter(|(n, _)| n.starts_with("x-amz-")).collect();
        amz.sort();
        let amz_lines: String = amz.iter().map(|(n, v)| format!("{n}:{}\n", v.trim())).collect();
        let string_to_sign = format!(
            "{}\n{}\n{}\n{date}\n{amz_lines}{}",
            self.method,
            self.v2_header("content-md5"),
            self.v2_header("content-type"),
            resource
        );
        let mut mac = hmac::Hmac::<sha1::Sha1>::new_from_slice(key.secret_key.as_bytes()).expect("any key length");
        mac.update(string_to_sign.as_bytes());
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    }

    fn v2_header(&self, name: &str) -> String {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone()).unwrap_or_default()
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

/// Sends `request` over plain HTTP to `to` from the local address `from` (any address of
/// 127.0.0.0/8 on loopback), as a client at that address would: directly to a gateway, or
/// through a load balancer.
///
/// # Panics
/// On a connection error, no response, or no answer within a minute.
pub async fn send_from(from: IpAddr, to: SocketAddr, request: &RawRequest) -> RawResponse {
    let exchange = async {
        let socket = if from.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
        socket.bind(SocketAddr::new(from, 0))?;
        let tcp = socket.connect(to).await?;
        exchange(tcp, &request.to_bytes(), false).await
    };
    let received = tokio::time::timeout(EXCHANGE_TIMEOUT, exchange)
        .await
        .unwrap_or_else(|_| panic!("no answer from {to} within {EXCHANGE_TIMEOUT:?}"))
        .unwrap_or_else(|err| panic!("request from {from} to {to} failed: {err}"));
    parse_response(&received).unwrap_or_else(|err| panic!("from {to}: {err}"))
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
/// `0\r\n`, the trailers and a blank line. The unsigned variant (no chunk signatures); see
/// [`SignedChunks`] for the signed ones.
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

/// A signed aws-chunked body, as the Java and Go SDKs send: `x-amz-content-sha256` is
/// `STREAMING-AWS4-HMAC-SHA256-PAYLOAD`, or `STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER` once
/// it has trailers. Each chunk is `<hex size>;chunk-signature=<signature>\r\n<bytes>\r\n`,
/// the last one empty; each signature covers the chunk's bytes and the signature before it,
/// the first one the request's own (the seed). Trailers follow the last chunk and are signed
/// in `x-amz-trailer-signature`. [`RawRequest::sign_streaming`] sends it.
#[derive(Debug, Clone, Default)]
pub struct SignedChunks {
    chunks: Vec<Vec<u8>>,
    trailers: Vec<(String, String)>,
    /// The chunk sent with a signature of other bytes; `chunks.len()` is the final empty one.
    forged_chunk: Option<usize>,
    forged_trailers: bool,
}

impl SignedChunks {
    /// The chunks, in order, without trailers.
    #[must_use]
    pub fn new(chunks: &[&[u8]]) -> Self {
        Self { chunks: chunks.iter().map(|c| c.to_vec()).collect(), ..Self::default() }
    }

    /// Adds a trailer (and so makes this the `-TRAILER` variant).
    #[must_use]
    pub fn trailer(mut self, name: &str, value: &str) -> Self {
        self.trailers.push((name.to_ascii_lowercase(), value.to_owned()));
        self
    }

    /// Sends chunk `index` with the signature of other bytes, chained as if it were right;
    /// `index` equal to the number of chunks is the final empty chunk.
    #[must_use]
    pub fn forge_chunk_signature(mut self, index: usize) -> Self {
        self.forged_chunk = Some(index);
        self
    }

    /// Sends the trailers with the signature of other trailer lines.
    #[must_use]
    pub fn forge_trailer_signature(mut self) -> Self {
        self.forged_trailers = true;
        self
    }

    /// The value of `x-amz-content-sha256`.
    #[must_use]
    pub fn content_sha256(&self) -> &'static str {
        if self.trailers.is_empty() {
            "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
        } else {
            "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
        }
    }

    /// The number of object bytes: `x-amz-decoded-content-length`.
    #[must_use]
    pub fn decoded_len(&self) -> usize {
        self.chunks.iter().map(Vec::len).sum()
    }

    /// The framed body, its chain starting at `seed`.
    fn encode(&self, signer: &ChunkSigner, seed: &str) -> Vec<u8> {
        let mut body = Vec::new();
        let mut previous = seed.to_owned();
        let last = [Vec::new()];
        for (index, chunk) in self.chunks.iter().chain(&last).enumerate() {
            let signed: &[u8] = if self.forged_chunk == Some(index) { b"other bytes" } else { chunk };
            previous = signer.chunk(&previous, signed);
            body.extend_from_slice(format!("{:x};chunk-signature={previous}\r\n", chunk.len()).as_bytes());
            body.extend_from_slice(chunk);
            if !chunk.is_empty() {
                body.extend_from_slice(b"\r\n");
            }
        }
        if !self.trailers.is_empty() {
            let other = [("x-amz-meta-other".to_owned(), "trailer".to_owned())];
            let signed = if self.forged_trailers { other.as_slice() } else { self.trailers.as_slice() };
            let signature = signer.trailer(&previous, signed);
            for (name, value) in &self.trailers {
                body.extend_from_slice(format!("{name}:{value}\r\n").as_bytes());
            }
            body.extend_from_slice(format!("x-amz-trailer-signature:{signature}\r\n").as_bytes());
        }
        body.extend_from_slice(b"\r\n");
        body
    }
}

/// Signs the chunks and trailers of a streaming upload (AWS SigV4 "chunked upload").
struct ChunkSigner {
    signing_key: Vec<u8>,
    /// `yyyymmddThhmmssZ`, as in `x-amz-date`.
    timestamp: String,
    /// `yyyymmdd/region/s3/aws4_request`.
    scope: String,
}

impl ChunkSigner {
    /// A signer for chunks of a request signed at `time`, whose `x-amz-date` is `timestamp`.
    fn new(key: Key<'_>, time: SystemTime, timestamp: &str) -> Self {
        let signing_key = v4::generate_signing_key(key.secret_key, time, REGION, "s3").as_ref().to_vec();
        let scope = format!("{}/{REGION}/s3/aws4_request", &timestamp[..8]);
        Self { signing_key, timestamp: timestamp.to_owned(), scope }
    }

    /// The signature of a chunk of `data` following the signature `previous`.
    fn chunk(&self, previous: &str, data: &[u8]) -> String {
        self.sign(&format!(
            "AWS4-HMAC-SHA256-PAYLOAD\n{}\n{}\n{previous}\n{}\n{}",
            self.timestamp,
            self.scope,
            sha256_hex(b""),
            sha256_hex(data)
        ))
    }

    /// The signature of `trailers` following the final chunk's signature `previous`: they are
    /// hashed as `name:value\n` lines sorted by name.
    fn trailer(&self, previous: &str, trailers: &[(String, String)]) -> String {
        let mut sorted: Vec<_> = trailers.iter().collect();
        sorted.sort();
        let lines: String = sorted.iter().map(|(name, value)| format!("{name}:{}\n", value.trim())).collect();
        self.sign(&format!(
            "AWS4-HMAC-SHA256-TRAILER\n{}\n{}\n{previous}\n{}",
            self.timestamp,
            self.scope,
            sha256_hex(lines.as_bytes())
        ))
    }

    fn sign(&self, string_to_sign: &str) -> String {
        v4::calculate_signature(&self.signing_key, string_to_sign.as_bytes())
    }
}

fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(data))
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;

    /// The example of AWS's "Signature calculations for the Authorization header:
    /// transferring payload in multiple chunks" page (and of its trailing-header sibling).
    const EXAMPLE_KEY: Key<'static> =
        Key { access_key: "AKIAIOSFODNN7EXAMPLE", secret_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY" };

    /// 2013-05-24T00:00:00Z.
    fn example_time() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_369_353_600)
    }

    fn example_request(body: &SignedChunks) -> RawRequest {
        RawRequest {
            method: "PUT".into(),
            target: "/examplebucket/chunkObject.txt".into(),
            headers: Vec::new(),
            body: Vec::new(),
        }
        .header("host", "s3.amazonaws.com")
        .header("x-amz-storage-class", "REDUCED_REDUNDANCY")
        .sign_streaming(EXAMPLE_KEY, example_time(), body)
    }

    fn signature_lines(body: &[u8]) -> Vec<String> {
        String::from_utf8_lossy(body)
            .split("\r\n")
            .filter(|line| line.contains("signature"))
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn signed_chunks_match_the_aws_example() {
        let (a64k, a1k) = (vec![b'a'; 65_536], vec![b'a'; 1024]);
        let request = example_request(&SignedChunks::new(&[&a64k, &a1k]));
        let header = |name: &str| request.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
        assert_eq!(header("content-length"), Some("66824"));
        assert_eq!(header("x-amz-content-sha256"), Some("STREAMING-AWS4-HMAC-SHA256-PAYLOAD"));
        assert!(
            header("authorization").is_some_and(
                |v| v.ends_with("Signature=4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9")
            ),
            "{:?}",
            header("authorization")
        );
        assert_eq!(request.body.len(), 66_824);
        assert_eq!(
            signature_lines(&request.body),
            [
                "10000;chunk-signature=ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648",
                "400;chunk-signature=0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497",
                "0;chunk-signature=b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9",
            ]
        );
        assert!(request.body.ends_with(b"b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9\r\n\r\n"));
    }

    #[test]
    fn signed_trailers_match_the_aws_example() {
        let (a64k, a1k) = (vec![b'a'; 65_536], vec![b'a'; 1024]);
        let body = SignedChunks::new(&[&a64k, &a1k]).trailer("x-amz-checksum-crc32c", "sOO8/Q==");
        let signer = ChunkSigner::new(EXAMPLE_KEY, example_time(), "20130524T000000Z");
        let seed = "106e2a8a18243abcf37539882f36619c00e2dfc72633413f02d3b74544bfeb8e";
        assert_eq!(
            signature_lines(&body.encode(&signer, seed)),
            [
                "10000;chunk-signature=b474d8862b1487a5145d686f57f013e54db672cee1c953b3010fb58501ef5aa2",
                "400;chunk-signature=1c1344b170168f8e65b41376b44b20fe354e373826ccbbe2c1d40a8cae51e5c7",
                "0;chunk-signature=2ca2aba2005185cf7159c6277faf83795951dd77a3a99e6e65d5c9f85863f992",
                "x-amz-trailer-signature:d81f82fc3505edab99d459891051a732e8730629a2e4a59689829ca17fe2e435",
            ]
        );
    }

    #[test]
    fn forged_signatures_differ_only_where_forged() {
        let body = SignedChunks::new(&[b"one", b"two"]).trailer("x-amz-checksum-crc32", "AAAAAA==");
        let signer = ChunkSigner::new(EXAMPLE_KEY, example_time(), "20130524T000000Z");
        let seed = "0".repeat(64);
        let right = signature_lines(&body.encode(&signer, &seed));
        let forged = signature_lines(&body.clone().forge_chunk_signature(1).encode(&signer, &seed));
        assert_eq!(right[0], forged[0]);
        assert_ne!(right[1], forged[1]);
        let forged = signature_lines(&body.forge_trailer_signature().encode(&signer, &seed));
        assert_eq!(right[..3], forged[..3]);
        assert_ne!(right[3], forged[3]);
    }
}
