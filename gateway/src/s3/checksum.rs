//! Checksums clients send with their bytes.
//!
//! [`ExpectedChecksums`] collects what the client claimed (`Content-MD5`, `x-amz-checksum-*`
//! headers, or the trailer announced by `x-amz-trailer`) and [`ExpectedChecksums::verify`]
//! compares it with what [`crate::digest`] computed while the bytes streamed, answering
//! `BadDigest` on a mismatch.
//!
//! Wire values are base64 of the big-endian digest, as AWS sends them.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use http::HeaderMap;
use s3s::{S3Error, S3ErrorCode, s3_error};

use crate::digest::{ChecksumAlgorithm, ChecksumValue, Checksums};

/// What the client claimed about a body, read from the request headers before the body
/// streams; trailer values are read after it ends.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExpectedChecksums {
    /// Decoded `Content-MD5`.
    pub content_md5: Option<[u8; 16]>,
    /// Values sent as `x-amz-checksum-*` headers.
    pub headers: Vec<ChecksumValue>,
    /// The checksum announced by `x-amz-trailer`, whose value comes after the body.
    pub trailer: Option<ChecksumAlgorithm>,
    /// An algorithm named by `x-amz-checksum-algorithm` / `x-amz-sdk-checksum-algorithm`
    /// without a value (the value then comes in a header or trailer, or the client only asks
    /// us to compute and store it).
    pub requested: Option<ChecksumAlgorithm>,
}

impl ExpectedChecksums {
    /// Whether the client sent no digest of the body at all: no `Content-MD5`, no checksum
    /// header or trailer, no checksum algorithm named.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.content_md5.is_none() && self.headers.is_empty() && self.trailer.is_none() && self.requested.is_none()
    }

    /// Reads `Content-MD5`, `x-amz-checksum-*`, `x-amz-trailer` and
    /// `x-amz-(sdk-)checksum-algorithm` from request headers.
    ///
    /// # Errors
    ///
    /// `InvalidDigest` for a malformed `Content-MD5`; `InvalidRequest` for a malformed checksum
    /// value, an unknown algorithm or trailer, or more than one checksum algorithm.
    pub fn from_headers(headers: &HeaderMap) -> Result<Self, S3Error> {
        let mut expected = Self::default();

        if let Some(v) = headers.get("content-md5") {
            let digest = v
                .to_str()
                .ok()
                .and_then(|s| BASE64.decode(s.trim()).ok())
                .and_then(|d| <[u8; 16]>::try_from(d).ok())
                .ok_or_else(|| s3_error!(InvalidDigest, "The Content-MD5 you specified was invalid."))?;
            expected.content_md5 = Some(digest);
        }

        for algorithm in ChecksumAlgorithm::ALL {
            if let Some(v) = headers.get(algorithm.header_name()) {
                let value = v
                    .to_str()
                    .ok()
                    .and_then(|s| ChecksumValue::from_base64(algorithm, s))
                    .ok_or_else(|| invalid_value(algorithm))?;
                expected.headers.push(value);
            }
        }

        if let Some(v) = headers.get("x-amz-trailer") {
            let name = v.to_str().unwrap_or_default();
            let algorithm = ChecksumAlgorithm::from_header_name(name).ok_or_else(|| {
                s3_error!(InvalidRequest, "The value specified in the x-amz-trailer header is not supported")
            })?;
            expected.trailer = Some(algorithm);
        }

        for name in ["x-amz-sdk-checksum-algorithm", "x-amz-checksum-algorithm"] {
            if let Some(v) = headers.get(name) {
                let algorithm = v
                    .to_str()
                    .ok()
                    .and_then(ChecksumAlgorithm::parse)
                    .ok_or_else(|| s3_error!(InvalidRequest, "Value for {name} header is invalid."))?;
                expected.requested = Some(algorithm);
            }
        }

        let mut named: Vec<_> = expected.headers.iter().map(|v| v.algorithm).collect();
        named.extend(expected.trailer);
        named.sort_unstable();
        named.dedup();
        if named.len() > 1 {
            return Err(s3_error!(
                InvalidRequest,
                "Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed."
            ));
        }
        if let (Some(requested), Some(&named)) = (expected.requested, named.first())
            && requested != named
        {
            return Err(s3_error!(
                InvalidRequest,
                "Value for x-amz-checksum-algorithm header does not match the checksum that was sent."
            ));
        }
        Ok(expected)
    }

    /// The algorithms to compute while the body streams.
    #[must_use]
    pub fn algorithms(&self) -> Vec<ChecksumAlgorithm> {
        let mut algorithms: Vec<_> = self.headers.iter().map(|v| v.algorithm).collect();
        algorithms.extend(self.trailer);
        algorithms.extend(self.requested);
        algorithms.sort_unstable();
        algorithms.dedup();
        algorithms
    }

    /// Compares the claims with what was computed. `trailers` are the trailing headers of the
    /// body (s3s `req.trailing_headers`), read after the body ended.
    ///
    /// # Errors
    ///
    /// `BadDigest` when a value differs; `InvalidRequest` when an announced trailer is missing
    /// or malformed; `InternalError` if a claimed algorithm was not computed (a caller bug).
    pub fn verify(&self, md5: &[u8; 16], computed: &Checksums, trailers: Option<&HeaderMap>) -> Result<(), S3Error> {
        if let Some(expected) = &self.content_md5
            && expected != md5
        {
            return Err(s3_error!(BadDigest, "The Content-MD5 you specified did not match what we received."));
        }

        let trailer_value = match self.trailer {
            None => None,
            Some(algorithm) => {
                let raw = trailers
                    .and_then(|t| t.get(algorithm.header_name()))
                    .ok_or_else(|| s3_error!(InvalidRequest, "The trailing {algorithm} checksum is missing."))?;
                let value = raw
                    .to_str()
                    .ok()
                    .and_then(|s| ChecksumValue::from_base64(algorithm, s))
                    .ok_or_else(|| invalid_value(algorithm))?;
                Some(value)
            }
        };

        for expected in self.headers.iter().chain(trailer_value.as_ref()) {
            let Some(actual) = computed.get(expected.algorithm) else {
                return Err(S3Error::with_message(
                    S3ErrorCode::InternalError,
                    format!("{} checksum was not computed", expected.algorithm),
                ));
            };
            if actual.digest != expected.digest {
                return Err(s3_error!(
                    BadDigest,
                    "The {} you specified did not match the calculated checksum.",
                    expected.algorithm
                ));
            }
        }
        Ok(())
    }
}

fn invalid_value(algorithm: ChecksumAlgorithm) -> S3Error {
    s3_error!(InvalidRequest, "Value for {} header is invalid.", algorithm.header_name())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::md5;
    use crate::digest::tests::{HELLO, compute};

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(http::HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
        }
        h
    }

    fn code(err: &S3Error) -> &str {
        err.code().as_str()
    }

    #[test]
    fn matching_header_checksum_verifies() {
        let expected = ExpectedChecksums::from_headers(&headers(&[
            ("x-amz-checksum-crc32", "DUoRhQ=="),
            ("content-md5", "XrY7u+Ae7tCTyyK7j1rNww=="),
        ]))
        .unwrap();
        assert_eq!(expected.algorithms(), vec![ChecksumAlgorithm::Crc32]);
        let computed = compute(&[b"hello world"]);
        expected.verify(&md5(b"hello world"), &computed, None).unwrap();
    }

    #[test]
    fn wrong_header_checksum_is_bad_digest() {
        let expected = ExpectedChecksums::from_headers(&headers(&[("x-amz-checksum-sha256", HELLO[4].1)])).unwrap();
        let computed = compute(&[b"hello World"]);
        let err = expected.verify(&md5(b"hello World"), &computed, None).unwrap_err();
        assert_eq!(code(&err), "BadDigest");
    }

    #[test]
    fn wrong_content_md5_is_bad_digest() {
        let expected =
            ExpectedChecksums::from_headers(&headers(&[("content-md5", "XrY7u+Ae7tCTyyK7j1rNww==")])).unwrap();
        let err = expected.verify(&md5(b"other"), &Checksums::default(), None).unwrap_err();
        assert_eq!(code(&err), "BadDigest");
    }

    #[test]
    fn malformed_content_md5_is_invalid_digest() {
        let err = ExpectedChecksums::from_headers(&headers(&[("content-md5", "not-base64!")])).unwrap_err();
        assert_eq!(code(&err), "InvalidDigest");
        let err = ExpectedChecksums::from_headers(&headers(&[("content-md5", "DUoRhQ==")])).unwrap_err();
        assert_eq!(code(&err), "InvalidDigest");
    }

    #[test]
    fn checksum_of_wrong_length_is_invalid_request() {
        let err = ExpectedChecksums::from_headers(&headers(&[("x-amz-checksum-crc64nvme", "DUoRhQ==")])).unwrap_err();
        assert_eq!(code(&err), "InvalidRequest");
    }

    #[test]
    fn two_checksum_algorithms_are_refused() {
        let err = ExpectedChecksums::from_headers(&headers(&[
            ("x-amz-checksum-crc32", HELLO[0].1),
            ("x-amz-checksum-sha1", HELLO[3].1),
        ]))
        .unwrap_err();
        assert_eq!(code(&err), "InvalidRequest");
    }

    #[test]
    fn trailer_checksum_is_read_after_the_body() {
        let expected = ExpectedChecksums::from_headers(&headers(&[
            ("x-amz-trailer", "x-amz-checksum-crc32c"),
            ("x-amz-sdk-checksum-algorithm", "CRC32C"),
        ]))
        .unwrap();
        assert_eq!(expected.algorithms(), vec![ChecksumAlgorithm::Crc32c]);
        let computed = compute(&[b"hello world"]);
        let md5 = md5(b"hello world");

        let good = headers(&[("x-amz-checksum-crc32c", "yZRlqg==")]);
        expected.verify(&md5, &computed, Some(&good)).unwrap();

        let bad = headers(&[("x-amz-checksum-crc32c", "DUoRhQ==")]);
        assert_eq!(code(&expected.verify(&md5, &computed, Some(&bad)).unwrap_err()), "BadDigest");

        assert_eq!(code(&expected.verify(&md5, &computed, None).unwrap_err()), "InvalidRequest");
    }

    #[test]
    fn requested_algorithm_without_value_is_computed_not_checked() {
        let expected = ExpectedChecksums::from_headers(&headers(&[("x-amz-checksum-algorithm", "sha256")])).unwrap();
        assert_eq!(expected.algorithms(), vec![ChecksumAlgorithm::Sha256]);
        expected.verify(&md5(b"x"), &compute(&[b"x"]), None).unwrap();
    }

    #[test]
    fn requested_algorithm_must_match_the_sent_one() {
        let err = ExpectedChecksums::from_headers(&headers(&[
            ("x-amz-checksum-algorithm", "SHA1"),
            ("x-amz-checksum-crc32", HELLO[0].1),
        ]))
        .unwrap_err();
        assert_eq!(code(&err), "InvalidRequest");
    }

    #[test]
    fn unknown_trailer_is_invalid_request() {
        let err = ExpectedChecksums::from_headers(&headers(&[("x-amz-trailer", "x-amz-checksum-md5")])).unwrap_err();
        assert_eq!(code(&err), "InvalidRequest");
    }
}
