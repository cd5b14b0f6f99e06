//! Conversions between the registry's records and the s3s wire types, and the request
//! checks every operation family shares (key rules, tags, lock headers).

use registry::event::v1::{LockMode, ObjectContent, Retention, StringMap};
use registry::queries::{Bucket, ObjectVersion};
use s3s::dto::{
    ETag, Metadata, ObjectLockLegalHoldStatus, ObjectLockMode, ObjectLockRetainUntilDate, Timestamp, TimestampFormat,
};
use s3s::{S3Response, s3_error};

use super::error::{Error, Refusal, Result};
use crate::digest::{ChecksumAlgorithm, Checksums};

/// The receipt header of a write that created a version (PutObject, CopyObject,
/// CompleteMultipartUpload): `<sequence>;<hash>` of the event that recorded it, the hash in
/// hex. A client keeps it and can later find the same pair in the event log.
pub const RECEIPT_HEADER: &str = "x-artifact-store-event";

/// A response carrying the receipt of `event` in [`RECEIPT_HEADER`].
pub fn with_receipt<T>(output: T, event: &registry::Event) -> S3Response<T> {
    let mut response = S3Response::new(output);
    let receipt = format!("{};{}", event.sequence, hex::encode(event.hash));
    let value = http::HeaderValue::from_str(&receipt).expect("digits, ';' and hex are a valid header value");
    response.headers.insert(RECEIPT_HEADER, value);
    response
}

/// AWS's answer to a header asking for what is not done here: 501 `NotImplemented`, with its
/// message.
#[must_use]
pub fn header_not_implemented() -> Error {
    s3_error!(NotImplemented, "A header you provided implies functionality that is not implemented").into()
}

/// The longest key S3 accepts, in bytes.
const MAX_KEY_BYTES: usize = 1024;

/// Refuses keys S3 refuses (too long) and keys we refuse on principle: NUL and other
/// control bytes, and `.`/`..` path segments. Keys never become file paths here, but they
/// do become paths in tools that mirror buckets to disk (`aws s3 sync`, rclone), where such
/// keys escape the target folder.
///
/// # Errors
/// `KeyTooLongError`, `InvalidArgument`.
pub fn check_key(key: &str) -> Result<()> {
    if key.is_empty() {
        return Err(s3_error!(InvalidArgument, "Object key must not be empty").into());
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(s3_error!(KeyTooLongError, "Your key is too long").into());
    }
    if key.chars().any(char::is_control) {
        return Err(s3_error!(InvalidArgument, "Object key must not contain control characters").into());
    }
    if key.split('/').any(|segment| segment == ".." || segment == ".") {
        return Err(s3_error!(InvalidArgument, "Object key must not contain '.' or '..' path segments").into());
    }
    Ok(())
}

/// The length of a request body's bytes: `Content-Length`, or for an aws-chunked body sent
/// with chunked transfer encoding (botocore does so over HTTPS) `x-amz-decoded-content-length`.
/// s3s decodes the chunks but does not compare their bytes with that length: the blob store
/// does, receiving the body against it (`BlobError::IncompleteBody`). A store that must know
/// the length before the first byte (an S3 upstream) needs it here too.
#[must_use]
pub fn body_length(content_length: Option<i64>, headers: &http::HeaderMap) -> Option<i64> {
    content_length.or_else(|| {
        headers.get("x-amz-decoded-content-length").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok())
    })
}

/// The largest object a single PUT (and a single part) may carry: 5 GiB.
pub const MAX_PUT_SIZE: i64 = 5 * 1024 * 1024 * 1024;

/// The most user-defined metadata a version may carry: 2 KiB, counted as AWS does, the UTF-8
/// bytes of every name (without `x-amz-meta-`) and value.
pub const MAX_USER_METADATA: usize = 2 * 1024;

/// Refuses a body announced (by `Content-Length` or `x-amz-decoded-content-length`) larger
/// than [`MAX_PUT_SIZE`] before a byte of it is read.
///
/// # Errors
/// `EntityTooLarge`.
pub fn check_body_size(length: Option<i64>) -> Result<()> {
    if length.is_some_and(|n| n > MAX_PUT_SIZE) {
        return Err(s3_error!(EntityTooLarge, "Your proposed upload exceeds the maximum allowed object size.").into());
    }
    Ok(())
}

/// Refuses user metadata over [`MAX_USER_METADATA`].
///
/// # Errors
/// `MetadataTooLarge`.
pub fn check_metadata_size(metadata: Option<&Metadata>) -> Result<()> {
    let size: usize = metadata.into_iter().flatten().map(|(name, value)| name.len() + value.len()).sum();
    if size > MAX_USER_METADATA {
        return Err(
            s3_error!(MetadataTooLarge, "Your metadata headers exceed the maximum allowed metadata size.").into()
        );
    }
    Ok(())
}

/// Milliseconds since the epoch as an s3s timestamp. Times outside the years 1970 to 9999,
/// which S3's date formats cannot carry, are clamped to those bounds: a date recorded from an
/// earlier, unchecked configuration must never make a response impossible to build.
#[must_use]
pub fn timestamp(ms: i64) -> Timestamp {
    /// 9999-12-31T23:59:59.999Z.
    const LAST_MS: i64 = 253_402_300_799_999;
    let nanos = i128::from(ms.clamp(0, LAST_MS)) * 1_000_000;
    Timestamp::from(time::OffsetDateTime::from_unix_timestamp_nanos(nanos).unwrap_or(time::OffsetDateTime::UNIX_EPOCH))
}

/// The time of an object, part, upload or bucket as S3 gives it: in whole seconds (`.000Z` in
/// a listing's XML). The registry keeps milliseconds, which order versions; a client that
/// compares a listing's time with a file's, kept in seconds (`aws s3 sync --exact-timestamps`),
/// would otherwise find every file changed.
#[must_use]
pub fn whole_seconds(ms: i64) -> Timestamp {
    timestamp(ms - ms.rem_euclid(1000))
}

/// An s3s timestamp as milliseconds since the epoch.
#[must_use]
pub fn millis(ts: &Timestamp) -> i64 {
    let nanos = time::OffsetDateTime::from(ts.clone()).unix_timestamp_nanos();
    i64::try_from(nanos / 1_000_000).unwrap_or(i64::MAX)
}

/// The seconds of a timestamp, for HTTP-date comparisons (If-Modified-Since has second
/// precision, so a version modified within the same second is not "modified since").
#[must_use]
pub fn seconds(ms: i64) -> i64 {
    ms.div_euclid(1000)
}

/// The registry stores ETags without quotes; s3s quotes them on the wire.
#[must_use]
pub fn etag(value: &str) -> ETag {
    ETag::Strong(value.to_owned())
}

/// `x-amz-version-id` for a version: absent for the `null` version of a bucket that never
/// had versioning, as S3 does.
#[must_use]
pub fn version_id_header(bucket: &Bucket, version_id: &str) -> Option<String> {
    (bucket.versioning.is_some() || version_id != "null").then(|| version_id.to_owned())
}

/// `x-amz-copy-source-version-id` of a copy (or part copy) of `version_id` from `bucket`: the
/// version the request named, or the one it copied when the source bucket keeps versions, as
/// [`version_id_header`] names a new version.
#[must_use]
pub fn copy_source_version_id(bucket: &Bucket, named: bool, version_id: &str) -> Option<String> {
    if named { Some(version_id.to_owned()) } else { version_id_header(bucket, version_id) }
}

/// The standard headers kept with a version (besides Content-Type), by lower-case name.
pub const STORED_HEADERS: [&str; 5] =
    ["cache-control", "content-disposition", "content-encoding", "content-language", "expires"];

/// Collects the standard headers a PUT, copy or upload sets.
#[must_use]
pub fn stored_headers(
    cache_control: Option<&String>,
    content_disposition: Option<&String>,
    content_encoding: Option<&String>,
    content_language: Option<&String>,
    expires: Option<&Timestamp>,
) -> StringMap {
    let expires = expires.and_then(|ts| {
        let mut text = Vec::new();
        ts.format(TimestampFormat::HttpDate, &mut text).ok().and_then(|()| String::from_utf8(text).ok())
    });
    let values = [
        cache_control.cloned(),
        content_disposition.cloned(),
        content_encoding.and_then(|coding| content_coding(coding)),
        content_language.cloned(),
        expires,
    ];
    STORED_HEADERS.iter().zip(values).filter_map(|(name, value)| Some(((*name).to_owned(), value?))).collect()
}

/// A `Content-Encoding` as a version keeps and serves it: without `aws-chunked`, which frames
/// a request's body in transit (SigV4 streaming) rather than coding the object; S3 neither
/// stores nor returns it, so a client reading the object does not try to decode it. `None`
/// when nothing else is left. Also applied when serving, to versions stored before.
#[must_use]
pub fn content_coding(value: &str) -> Option<String> {
    let is_framing = |coding: &str| coding.trim().eq_ignore_ascii_case("aws-chunked");
    if !value.split(',').any(is_framing) {
        return Some(value.to_owned());
    }
    let kept: Vec<&str> =
        value.split(',').map(str::trim).filter(|coding| !coding.is_empty() && !is_framing(coding)).collect();
    (!kept.is_empty()).then(|| kept.join(","))
}

/// The stored header `name` of a version.
#[must_use]
pub fn header(content: &ObjectContent, name: &str) -> Option<String> {
    content.headers.get(name).cloned()
}

/// The stored `Expires` header as a timestamp.
#[must_use]
pub fn expires(content: &ObjectContent) -> Option<Timestamp> {
    content.headers.get("expires").and_then(|text| Timestamp::parse(TimestampFormat::HttpDate, text).ok())
}

/// `x-amz-meta-*` as s3s hands it over, as the registry stores it.
#[must_use]
pub fn user_metadata(metadata: Option<Metadata>) -> StringMap {
    metadata.map(|m| m.into_iter().collect()).unwrap_or_default()
}

/// Stored user metadata for a response.
#[must_use]
pub fn metadata(content: &ObjectContent) -> Option<Metadata> {
    (!content.user_metadata.is_empty()).then(|| content.user_metadata.clone().into_iter().collect())
}

/// Computed checksums as the registry stores them: algorithm name to base64.
#[must_use]
pub fn checksum_map(checksums: &Checksums) -> StringMap {
    checksums.iter().map(|c| (c.algorithm.as_str().to_owned(), c.to_base64())).collect()
}

/// The stored checksums, one optional field per algorithm, as s3s outputs want them.
#[derive(Debug, Default)]
pub struct ChecksumFields {
    /// CRC32.
    pub crc32: Option<String>,
    /// CRC32C.
    pub crc32c: Option<String>,
    /// CRC64NVME.
    pub crc64nvme: Option<String>,
    /// SHA1.
    pub sha1: Option<String>,
    /// SHA256.
    pub sha256: Option<String>,
}

impl ChecksumFields {
    /// The fields of a stored checksum map.
    #[must_use]
    pub fn of(map: &StringMap) -> Self {
        let get = |algorithm: ChecksumAlgorithm| map.get(algorithm.as_str()).cloned();
        Self {
            crc32: get(ChecksumAlgorithm::Crc32),
            crc32c: get(ChecksumAlgorithm::Crc32c),
            crc64nvme: get(ChecksumAlgorithm::Crc64Nvme),
            sha1: get(ChecksumAlgorithm::Sha1),
            sha256: get(ChecksumAlgorithm::Sha256),
        }
    }
}

/// The longest tag key and value S3 accepts, and the most tags on one object and on one
/// bucket.
const MAX_TAG_KEY: usize = 128;
const MAX_TAG_VALUE: usize = 256;
pub(crate) const MAX_OBJECT_TAGS: usize = 10;

/// The most keys one DeleteObjects may name.
pub(crate) const MAX_DELETE_KEYS: usize = 1000;
const MAX_BUCKET_TAGS: usize = 50;

/// Parses the URL-encoded `x-amz-tagging` header (`k1=v1&k2=v2`).
///
/// # Errors
/// `InvalidTag` for too many, too long or repeated tags, or characters AWS does not allow.
pub fn tags_from_header(header: Option<&str>) -> Result<StringMap> {
    let Some(header) = header else { return Ok(StringMap::new()) };
    check_tags(form_urlencoded::parse(header.as_bytes()).map(|(k, v)| (k.into_owned(), v.into_owned())))
}

/// Validates an object's tags from a header or a Tagging document.
///
/// # Errors
/// `InvalidTag` for too many, too long or repeated tags, or characters AWS does not allow.
pub fn check_tags(tags: impl IntoIterator<Item = (String, String)>) -> Result<StringMap> {
    let map = check_tag_set(tags)?;
    if map.len() > MAX_OBJECT_TAGS {
        return Err(s3_error!(InvalidTag, "Object tags cannot be greater than 10").into());
    }
    Ok(map)
}

/// Validates a bucket's tags from a Tagging document: up to 50, and none in the `aws:`
/// namespace, which S3 keeps for its own.
///
/// # Errors
/// `InvalidTag` for too many, too long, repeated or reserved tags, or characters AWS does not
/// allow.
pub fn check_bucket_tags(tags: impl IntoIterator<Item = (String, String)>) -> Result<StringMap> {
    let map = check_tag_set(tags)?;
    if map.len() > MAX_BUCKET_TAGS {
        return Err(s3_error!(InvalidTag, "Bucket tag count cannot be greater than 50").into());
    }
    if map.keys().any(|key| key.to_ascii_lowercase().starts_with("aws:")) {
        return Err(s3_error!(InvalidTag, "System tags cannot be added/updated by requester").into());
    }
    Ok(map)
}

/// The rules every tag set follows: keys 1 to 128 characters and unique, values up to 256, both
/// of AWS's tag characters.
fn check_tag_set(tags: impl IntoIterator<Item = (String, String)>) -> Result<StringMap> {
    let mut map = StringMap::new();
    for (key, value) in tags {
        if key.is_empty() || key.chars().count() > MAX_TAG_KEY || !key.chars().all(is_tag_char) {
            return Err(s3_error!(InvalidTag, "The TagKey you have provided is invalid").into());
        }
        if value.chars().count() > MAX_TAG_VALUE || !value.chars().all(is_tag_char) {
            return Err(s3_error!(InvalidTag, "The TagValue you have provided is invalid").into());
        }
        if map.insert(key, value).is_some() {
            return Err(s3_error!(InvalidTag, "Cannot provide multiple Tags with the same key").into());
        }
    }
    Ok(map)
}

/// A character AWS allows in a tag's key or value: letters, numbers and spaces of any script,
/// and `_ . : / = + - @` (the pattern `[\p{L}\p{Z}\p{N}_.:/=+\-@]` of its tagging APIs).
/// Letters are Unicode's Alphabetic property, a little wider than `\p{L}` (it has some
/// combining marks and circled letters): nothing AWS takes is refused.
fn is_tag_char(c: char) -> bool {
    c.is_alphanumeric() || (c.is_whitespace() && !c.is_control()) || "_.:/=+-@".contains(c)
}

/// The Object Lock headers of a PUT, copy or upload: retention (mode and date come
/// together) and legal hold.
///
/// # Errors
/// `InvalidArgument` when only one of mode and date is given or the date is in the past;
/// `InvalidRequest` when the bucket has no Object Lock.
pub fn lock_headers(
    bucket: &Bucket,
    mode: Option<&ObjectLockMode>,
    until: Option<&ObjectLockRetainUntilDate>,
    legal_hold: Option<&ObjectLockLegalHoldStatus>,
    now_ms: i64,
) -> Result<(Option<Retention>, bool)> {
    let hold = match legal_hold.map(ObjectLockLegalHoldStatus::as_str) {
        None | Some(ObjectLockLegalHoldStatus::OFF) => false,
        Some(ObjectLockLegalHoldStatus::ON) => true,
        // Taken as "no hold", a client would believe it had placed one.
        Some(_) => return Err(s3_error!(InvalidArgument, "Legal Hold must be either of 'ON' or 'OFF'").into()),
    };
    let retention = match (mode, until) {
        (None, None) => None,
        (Some(mode), Some(until)) => {
            let mode = lock_mode(mode.as_str())?;
            let retain_until = millis(until);
            if retain_until <= now_ms {
                return Err(Refusal::RetainUntilInThePast.into());
            }
            Some(Retention { mode, retain_until })
        }
        _ => {
            return Err(s3_error!(
                InvalidArgument,
                "x-amz-object-lock-retain-until-date and x-amz-object-lock-mode must both be supplied"
            )
            .into());
        }
    };
    if (retention.is_some() || legal_hold.is_some()) && !bucket.object_lock_enabled {
        return Err(s3_error!(InvalidRequest, "Bucket is missing Object Lock Configuration").into());
    }
    Ok((retention, hold))
}

/// Parses a lock mode as S3 spells it (upper case only).
///
/// # Errors
/// `InvalidArgument` for anything else.
pub fn lock_mode(mode: &str) -> Result<LockMode> {
    match mode {
        "GOVERNANCE" => Ok(LockMode::Governance),
        "COMPLIANCE" => Ok(LockMode::Compliance),
        _ => Err(s3_error!(InvalidArgument, "Unknown wormMode directive.").into()),
    }
}

/// A version's retention and legal hold as response headers.
#[must_use]
pub fn lock_fields(
    version: &ObjectVersion,
) -> (Option<ObjectLockMode>, Option<ObjectLockRetainUntilDate>, Option<ObjectLockLegalHoldStatus>) {
    let mode = version.retention.map(|r| {
        ObjectLockMode::from(match r.mode {
            LockMode::Governance => ObjectLockMode::GOVERNANCE.to_owned(),
            LockMode::Compliance => ObjectLockMode::COMPLIANCE.to_owned(),
        })
    });
    let until = version.retention.map(|r| timestamp(r.retain_until));
    let hold = version.legal_hold.then(|| ObjectLockLegalHoldStatus::from(ObjectLockLegalHoldStatus::ON.to_owned()));
    (mode, until, hold)
}

/// Parses a copy source into (bucket, key, version id): for the copies, and for the access
/// hook, which must decide on the object they read.
///
/// # Errors
/// `NotImplemented` for an access point or Outposts source.
pub fn copy_source(source: &s3s::dto::CopySource) -> Result<(String, String, Option<String>)> {
    match source {
        s3s::dto::CopySource::Bucket { bucket, key, version_id } => {
            Ok((bucket.to_string(), key.to_string(), version_id.as_deref().map(str::to_owned)))
        }
        _ => Err(s3_error!(NotImplemented, "Access point copy sources are not supported").into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_characters_are_aws_s() {
        for c in ['a', 'Z', '9', 'ß', 'ü', '漢', '٣', ' ', '\u{a0}', '\u{2028}', '_', '.', ':', '/', '=', '+', '-', '@']
        {
            assert!(is_tag_char(c), "{c:?} is allowed");
        }
        for c in [',', '#', '<', '>', '&', '\'', '"', '*', '?', '!', '%', '\t', '\n', '\u{85}', '\u{301}', '€'] {
            assert!(!is_tag_char(c), "{c:?} is refused");
        }
    }

    #[test]
    fn every_millisecond_count_becomes_a_timestamp_s3_can_carry() {
        let text = |ms| {
            let mut out = Vec::new();
            timestamp(ms).format(TimestampFormat::DateTime, &mut out).expect("formats");
            String::from_utf8(out).expect("ASCII")
        };
        assert_eq!(text(i64::MAX), "9999-12-31T23:59:59.999Z");
        assert_eq!(text(253_402_300_800_000), "9999-12-31T23:59:59.999Z");
        assert_eq!(text(i64::MIN), "1970-01-01T00:00:00.000Z");
        assert_eq!(text(-1), "1970-01-01T00:00:00.000Z");
        assert_eq!(millis(&timestamp(1_800_000_000_123)), 1_800_000_000_123);
        let mut http_date = Vec::new();
        timestamp(i64::MAX).format(TimestampFormat::HttpDate, &mut http_date).expect("formats");
        assert_eq!(millis(&timestamp(i64::MAX)), 253_402_300_799_999);
    }

    #[test]
    fn keys_that_escape_a_folder_or_carry_control_bytes_are_refused() {
        assert!(check_key("builds/1.0/app.tar.gz").is_ok());
        assert!(check_key("a..b/c").is_ok());
        for key in ["../etc/passwd", "a/../../b", "a/./b", "nul\0byte", "line\nbreak", "tab\t", ""] {
            assert!(check_key(key).is_err(), "{key:?}");
        }
        assert!(check_key(&"k".repeat(1024)).is_ok());
        assert!(check_key(&"k".repeat(1025)).is_err());
    }

    #[test]
    fn timestamps_round_trip_through_milliseconds() {
        let ms = 1_800_000_123_456;
        assert_eq!(millis(&timestamp(ms)), ms);
    }

    #[test]
    fn tagging_header_is_url_decoded_and_validated() {
        let tags = tags_from_header(Some("team=build%20infra&stage=rc")).unwrap();
        assert_eq!(tags.get("team").map(String::as_str), Some("build infra"));
        assert_eq!(tags.len(), 2);
        assert!(tags_from_header(Some("a=1&a=2")).is_err());
        assert!(tags_from_header(Some(&format!("{}=v", "k".repeat(129)))).is_err());
    }
}
