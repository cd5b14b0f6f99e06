//! The digests of request bodies that are documents (DeleteObjects, lifecycle, Object Lock,
//! tagging, versioning, multipart completion): `Content-MD5` and `x-amz-checksum-*` are
//! checked against them as for object data, and required where AWS requires one.
//!
//! s3s reads these bodies whole before the operation runs but does not check their digests.
//! The server wraps a document request's body in a [`DigestingBody`] (see
//! [`is_document_request`]); the digests it computes while s3s reads are compared with the
//! request's claims by [`verify`] once the signature has been checked, before the operation.

use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderMap, Method};
use http_body::{Body, Frame, SizeHint};
use s3s::{S3Error, s3_error};

use super::checksum::ExpectedChecksums;
use crate::digest::{Checksummer, Md5};

/// Query parameters naming an operation whose body is a document. Those marked `true` are
/// the operations for which AWS requires `Content-MD5` or an `x-amz-checksum-*` header (the
/// S3 model's `httpChecksumRequired`).
const DOCUMENTS: [(&str, bool); 17] = [
    ("delete", true),
    ("lifecycle", true),
    ("object-lock", true),
    ("retention", true),
    ("legal-hold", true),
    ("tagging", true),
    ("versioning", true),
    ("acl", true),
    ("cors", true),
    ("policy", true),
    ("encryption", true),
    ("logging", true),
    ("ownershipControls", true),
    ("publicAccessBlock", true),
    ("replication", true),
    ("requestPayment", true),
    ("website", true),
];

/// The operations (as AWS names them) that need a digest of their body.
const REQUIRED: [&str; 8] = [
    "DeleteObjects",
    "PutBucketLifecycleConfiguration",
    "PutBucketTagging",
    "PutBucketVersioning",
    "PutObjectLegalHold",
    "PutObjectLockConfiguration",
    "PutObjectRetention",
    "PutObjectTagging",
];

/// Whether a request's body is a document rather than object data: a PUT or POST naming one
/// of the document subresources, or a multipart completion (POST with `uploadId`).
#[must_use]
pub fn is_document_request(method: &Method, query: Option<&str>) -> bool {
    if method != Method::PUT && method != Method::POST {
        return false;
    }
    form_urlencoded::parse(query.unwrap_or_default().as_bytes()).any(|(name, _)| {
        DOCUMENTS.iter().any(|(document, _)| name == *document) || (method == Method::POST && name == "uploadId")
    })
}

/// The digests of a document body, filled while it is read; a request extension.
#[derive(Clone)]
pub struct DocumentDigests(Arc<Mutex<Option<Digests>>>);

struct Digests {
    md5: Option<Md5>,
    checksums: Checksummer,
}

impl DocumentDigests {
    /// Digests of what the request's headers claim (nothing when they do not parse: [`verify`]
    /// refuses those).
    #[must_use]
    pub fn for_headers(headers: &HeaderMap) -> Self {
        let expected = ExpectedChecksums::from_headers(headers).unwrap_or_default();
        let digests = Digests {
            md5: expected.content_md5.map(|_| Md5::new()),
            checksums: Checksummer::new(&expected.algorithms()),
        };
        Self(Arc::new(Mutex::new(Some(digests))))
    }

    fn update(&self, data: &[u8]) {
        if let Some(digests) = self.0.lock().unwrap_or_else(PoisonError::into_inner).as_mut() {
            if let Some(md5) = &mut digests.md5 {
                md5.update(data);
            }
            digests.checksums.update(data);
        }
    }
}

/// A request body that feeds [`DocumentDigests`] as it is read.
pub struct DigestingBody<B> {
    inner: B,
    digests: DocumentDigests,
}

impl<B> DigestingBody<B> {
    /// Wraps `inner`.
    pub fn new(inner: B, digests: DocumentDigests) -> Self {
        Self { inner, digests }
    }
}

impl<B: Body<Data = Bytes> + Unpin> Body for DigestingBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let frame = std::task::ready!(Pin::new(&mut self.inner).poll_frame(cx));
        if let Some(data) = frame.as_ref().and_then(|f| f.as_ref().ok()).and_then(Frame::data_ref) {
            self.digests.update(data);
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Checks the body of operation `api` (`DeleteObjects`, ...) against the request's claims.
/// Called for every operation; only document requests carry [`DocumentDigests`].
///
/// # Errors
/// `InvalidRequest` when a digest is required and none was sent; `BadDigest` when one does
/// not match; `InvalidDigest` or `InvalidRequest` for a malformed one.
pub fn verify(api: &str, headers: &HeaderMap, extensions: &http::Extensions) -> Result<(), S3Error> {
    let Some(digests) = extensions.get::<DocumentDigests>() else {
        return Ok(());
    };
    let expected = if api == "CompleteMultipartUpload" {
        // A completion's `x-amz-checksum-*` headers claim the object's checksum, not its body's:
        // the completion checks them. Only `Content-MD5` describes the body.
        let content_md5 = http::HeaderName::from_static("content-md5");
        let only_md5 = headers.get_all(&content_md5).iter().map(|v| (content_md5.clone(), v.clone())).collect();
        ExpectedChecksums::from_headers(&only_md5)?
    } else {
        ExpectedChecksums::from_headers(headers)?
    };
    if REQUIRED.contains(&api) && expected.content_md5.is_none() && expected.headers.is_empty() {
        return Err(s3_error!(InvalidRequest, "Missing required header for this request: Content-MD5"));
    }
    let Some(digests) = digests.0.lock().unwrap_or_else(PoisonError::into_inner).take() else {
        return Ok(());
    };
    let md5 = digests.md5.map(Md5::finalize).unwrap_or_default();
    expected.verify(&md5, &digests.checksums.finish(), None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::md5;
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD as BASE64;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        pairs.iter().map(|(n, v)| (http::HeaderName::from_static(n), v.parse().expect("value"))).collect()
    }

    fn checked(api: &str, headers: &HeaderMap, body: &[u8]) -> Result<(), String> {
        let digests = DocumentDigests::for_headers(headers);
        digests.update(body);
        let mut extensions = http::Extensions::new();
        extensions.insert(digests);
        verify(api, headers, &extensions).map_err(|err| err.code().as_str().to_owned())
    }

    #[test]
    fn documents_are_told_apart_from_object_data() {
        assert!(is_document_request(&Method::POST, Some("delete")));
        assert!(is_document_request(&Method::PUT, Some("lifecycle=")));
        assert!(is_document_request(&Method::PUT, Some("tagging&versionId=1")));
        assert!(is_document_request(&Method::POST, Some("uploadId=abc")));
        assert!(!is_document_request(&Method::PUT, Some("partNumber=1&uploadId=abc")));
        assert!(!is_document_request(&Method::PUT, Some("x-id=PutObject")));
        assert!(!is_document_request(&Method::PUT, None));
        assert!(!is_document_request(&Method::GET, Some("tagging")));
        assert!(!is_document_request(&Method::POST, Some("uploads")));
    }

    #[test]
    fn a_document_digest_must_match_and_is_required_where_aws_requires_one() {
        let body = b"<Delete><Object><Key>k</Key></Object></Delete>";
        let right = BASE64.encode(md5(body));
        let wrong = BASE64.encode(md5(b"other"));
        assert_eq!(checked("DeleteObjects", &headers(&[("content-md5", &right)]), body), Ok(()));
        assert_eq!(checked("DeleteObjects", &headers(&[("content-md5", &wrong)]), body), Err("BadDigest".into()));
        assert_eq!(checked("DeleteObjects", &headers(&[]), body), Err("InvalidRequest".into()));
        assert_eq!(checked("CompleteMultipartUpload", &headers(&[]), body), Ok(()));
        let crc = BASE64.encode(crc32fast::hash(body).to_be_bytes());
        let header = [("x-amz-checksum-crc32", crc.as_str())];
        assert_eq!(checked("PutBucketLifecycleConfiguration", &headers(&header), body), Ok(()));
        assert_eq!(checked("PutBucketLifecycleConfiguration", &headers(&header), b"tampered"), Err("BadDigest".into()));
        // A completion's checksum headers are the object's, which the completion checks.
        assert_eq!(checked("CompleteMultipartUpload", &headers(&header), b"tampered"), Ok(()));
        let md5_header = BASE64.encode(md5(body));
        assert_eq!(
            checked("CompleteMultipartUpload", &headers(&[("content-md5", &md5_header)]), b"tampered"),
            Err("BadDigest".into())
        );
        assert_eq!(
            checked("DeleteObjects", &headers(&[("content-md5", "bm90IGJhc2U2NA")]), body),
            Err("InvalidDigest".into())
        );
    }
}
