//! Reading objects: GetObject and HeadObject, with ranges, part numbers, conditional
//! headers, `response-*` overrides, and a retrieval record for every read.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::{Stream, StreamExt, TryStreamExt};
use http::HeaderMap;
use registry::event::v1::{BlobCorrupt, BlobPart, CorruptReason, CorruptSubject, Retrieved, VersionRef};
use registry::queries::{Bucket, ObjectVersion};
use registry::{Caller, Registry};
use s3s::dto::*;
use s3s::{S3Error, S3ErrorCode, S3Request, S3Response, s3_error};

use super::error::{Error, Result};
use super::{Gateway, caller, encryption, integrity, wire};
use crate::backend::{BlobError, BlobId};
use crate::config::Retrievals;
use crate::crypto::CustomerKey;
use crate::test_barrier::Barrier;

/// A barrier for tests only (see [`Barrier`]): a GetObject that has read its version and not
/// yet its bytes.
static VERSION_READ: Barrier = Barrier::new("ARTIFACT_STORE_GET_PAUSE");

/// What a read resolved to: the version and the bytes of it to send.
pub(super) struct ReadPlan {
    pub(super) bucket: Bucket,
    pub(super) version: ObjectVersion,
    /// First and last byte (inclusive) to send; `None` for an empty object.
    span: Option<(u64, u64)>,
    /// `Content-Range` when the read is partial.
    content_range: Option<String>,
    /// Whether the whole object is sent (stored checksums apply only then).
    whole: bool,
    /// `x-amz-expiration`, when a lifecycle rule will expire the version.
    expiration: Option<String>,
    /// The bytes of an object kept in the registry ([`super::inline`]), read with its version.
    inline: Option<Bytes>,
}

/// The conditional headers of a read.
#[derive(Default)]
pub(super) struct Conditions<'a> {
    if_match: Option<&'a ETagCondition>,
    if_none_match: Option<&'a ETagCondition>,
    if_modified_since: Option<&'a Timestamp>,
    if_unmodified_since: Option<&'a Timestamp>,
}

/// Finds the version a read names, applies its conditions and works out the byte span.
pub(super) async fn plan(
    gw: &Gateway,
    bucket: &str,
    key: &str,
    version_id: Option<&str>,
    conditions: &Conditions<'_>,
    range: Option<&Range>,
    part_number: Option<i32>,
) -> Result<ReadPlan> {
    let (found, version, inline) = match version_id {
        // The latest version, kept in memory by the registry until a commit changes it.
        None => {
            let latest = gw.registry.latest_object(bucket, key).await?;
            (latest.bucket.as_deref().cloned(), latest.version.clone(), latest.inline.clone())
        }
        // One trip to the blocking pool for the bucket, the version and an inline object's
        // bytes: each trip is a hand-off between threads, which a small GET feels.
        Some(id) => {
            let (name, key_owned, id) = (bucket.to_owned(), key.to_owned(), id.to_owned());
            gw.registry
                .read(move |conn| {
                    let Some(bucket) = conn.bucket(&name)? else { return Ok((None, None, None)) };
                    let version = conn.version(&name, &key_owned, &id)?;
                    let inline = match version.as_ref().and_then(|v| registry::inline::locator_of(&v.content.parts)) {
                        Some(locator) => conn.inline_bytes(locator)?.map(Bytes::from),
                        None => None,
                    };
                    Ok((Some(bucket), version, inline))
                })
                .await?
        }
    };
    let bucket = found.ok_or_else(|| registry::Error::NoSuchBucket(bucket.to_owned()))?;
    let version = match (version, version_id) {
        (None, None) => return Err(registry::Error::NoSuchKey.into()),
        (None, Some(_)) => return Err(registry::Error::NoSuchVersion.into()),
        (Some(v), None) if v.is_delete_marker => return Err(delete_marker_error(&v, S3ErrorCode::NoSuchKey)),
        (Some(v), Some(_)) if v.is_delete_marker => return Err(delete_marker_error(&v, S3ErrorCode::MethodNotAllowed)),
        (Some(v), _) => v,
    };
    check_conditions(&version, conditions)?;

    let size = version.content.size;
    if range.is_some() && part_number.is_some() {
        return Err(s3_error!(InvalidRequest, "Cannot specify both Range header and partNumber query parameter").into());
    }
    // The bytes to send, first and last; `None` when there are none.
    let span = match (range, part_number) {
        (Some(range), None) => {
            // No range of an empty object is satisfiable (s3s grants a suffix one, `bytes=-1`,
            // as the empty range 0..0, which has no last byte).
            let r = range.check(size).ok().filter(|r| !r.is_empty()).ok_or_else(|| not_satisfiable(range, size))?;
            Some((r.start, r.end - 1))
        }
        (None, Some(number)) => part_span(&version.content.parts, number)?,
        _ => (size > 0).then(|| (0, size - 1)),
    };
    let whole = match span {
        Some((first, last)) => first == 0 && last + 1 == size,
        None => size == 0,
    };
    // A part is a ranged read even when it is the whole object (S3 answers 206 with a
    // Content-Range for part 1 of a single PUT too); an empty part has no span to name, and is
    // sent as an empty body.
    let content_range = span
        .filter(|_| range.is_some() || !whole || part_number.is_some())
        .map(|(first, last)| format!("bytes {first}-{last}/{size}"));
    let expiration = super::lifecycle_config::expiration_header(&bucket, &version, gw.config.lifecycle.day_ms());
    Ok(ReadPlan { bucket, version, span, content_range, whole, expiration, inline })
}

/// 416 `InvalidRange` for `range` of an object of `size` bytes, its document naming both as
/// AWS's does (`<RangeRequested>`, `<ActualObjectSize>`: smart_open reads the size from it).
fn not_satisfiable(range: &Range, size: u64) -> super::Error {
    let requested = match *range {
        Range::Int { first, last: Some(last) } => format!("bytes={first}-{last}"),
        Range::Int { first, last: None } => format!("bytes={first}-"),
        Range::Suffix { length } => format!("bytes=-{length}"),
    };
    let mut err = S3Error::with_message(S3ErrorCode::InvalidRange, "The requested range is not satisfiable");
    let details = [("RangeRequested", requested.as_str()), ("ActualObjectSize", &size.to_string())];
    if let Some(value) = crate::error_body::details_header(&details) {
        let mut headers = HeaderMap::new();
        headers.insert(crate::error_body::DETAILS_HEADER, value);
        err.set_headers(headers);
    }
    err.into()
}

/// 404 NoSuchKey for a current delete marker, 405 MethodNotAllowed for a marker read by id;
/// both carry `x-amz-delete-marker: true` as S3 sends it, and the 405 the marker's
/// `Last-Modified`, as AWS documents it.
fn delete_marker_error(marker: &ObjectVersion, code: S3ErrorCode) -> super::Error {
    let by_id = code == S3ErrorCode::MethodNotAllowed;
    let message = if by_id {
        "The specified method is not allowed against this resource."
    } else {
        "The specified key does not exist."
    };
    let mut err = S3Error::with_message(code, message);
    let mut headers = HeaderMap::new();
    headers.insert("x-amz-delete-marker", http::HeaderValue::from_static("true"));
    if let Ok(id) = http::HeaderValue::from_str(&marker.version_id) {
        headers.insert("x-amz-version-id", id);
    }
    let mut date = Vec::new();
    if by_id
        && wire::whole_seconds(marker.created_at).format(TimestampFormat::HttpDate, &mut date).is_ok()
        && let Ok(date) = http::HeaderValue::from_bytes(&date)
    {
        headers.insert(http::header::LAST_MODIFIED, date);
    }
    err.set_headers(headers);
    err.into()
}

/// The span of part `number`: the part itself for a multipart object, the whole object for
/// part 1 of a single-part one; `None` for an empty part (or part 1 of an empty object).
fn part_span(parts: &[BlobPart], number: i32) -> Result<Option<(u64, u64)>> {
    let index = usize::try_from(number).ok().and_then(|n| n.checked_sub(1));
    let Some(index) = index.filter(|&i| i < parts.len().max(1)) else {
        let mut err = S3Error::with_message(
            S3ErrorCode::Custom("InvalidPartNumber".into()),
            "The requested partnumber is not satisfiable",
        );
        err.set_status_code(http::StatusCode::RANGE_NOT_SATISFIABLE);
        return Err(err.into());
    };
    let first: u64 = parts[..index].iter().map(|p| p.size).sum();
    let size = parts.get(index).map_or(0, |p| p.size);
    Ok((size > 0).then(|| (first, first + size - 1)))
}

/// RFC 9110 precedence, as S3 applies it: If-Match beats If-Unmodified-Since (412), and
/// If-None-Match beats If-Modified-Since (304).
fn check_conditions(version: &ObjectVersion, c: &Conditions<'_>) -> Result<()> {
    let etag = &version.content.etag;
    let matches = |cond: &ETagCondition| match cond {
        ETagCondition::Any => true,
        ETagCondition::ETag(e) => e.value() == etag,
    };
    let modified = wire::seconds(version.created_at);
    let precondition_failed = match c.if_match {
        Some(cond) => !matches(cond),
        None => c.if_unmodified_since.is_some_and(|ts| modified > wire::seconds(wire::millis(ts))),
    };
    if precondition_failed {
        return Err(registry::Error::PreconditionFailed.into());
    }
    let not_modified = match c.if_none_match {
        Some(cond) => matches(cond),
        None => c.if_modified_since.is_some_and(|ts| modified <= wire::seconds(wire::millis(ts))),
    };
    if not_modified {
        let mut err = S3Error::new(S3ErrorCode::NotModified);
        let mut headers = HeaderMap::new();
        if let Ok(value) = wire::etag(etag).to_http_header() {
            headers.insert(http::header::ETAG, value);
        }
        err.set_headers(headers);
        return Err(err.into());
    }
    Ok(())
}

/// Streams the bytes `first..=last` of an object stored as consecutive parts (each a blob, or
/// a range of one at its `offset`), opening each only when the previous one is done. A part
/// kept inline is read from the registry; an encrypted part is read by the segments that hold
/// the bytes and decrypted (`customer`: the request's key, checked, for parts under one).
pub(super) fn read_parts(
    gw: &Gateway,
    parts: &[BlobPart],
    (first, last): (u64, u64),
    customer: Option<&CustomerKey>,
) -> impl Stream<Item = Result<Bytes, BlobError>> + Send + use<> {
    let mut pieces = Vec::new();
    let mut offset = 0;
    for part in parts {
        let (start, end) = (offset, offset + part.size);
        offset = end;
        if part.size == 0 || end <= first || start > last {
            continue;
        }
        let local = (first.max(start) - start, last.min(end - 1) - start);
        pieces.push((part.clone(), local));
    }
    let (blobs, registry, keys) = (Arc::clone(&gw.blobs), gw.registry.clone(), Arc::clone(&gw.keys));
    let customer = customer.cloned();
    futures::stream::iter(pieces)
        .then(move |(part, local)| {
            let (blobs, registry, keys) = (Arc::clone(&blobs), registry.clone(), Arc::clone(&keys));
            let customer = customer.clone();
            async move {
                let (first, last) = crate::crypto::stored_range(&part, local);
                let base = part.offset.unwrap_or(0);
                let stored = if registry::inline::is_locator(&part.blob) {
                    super::inline::read(&registry, &part.blob, (first, last)).await?
                } else {
                    use futures::TryStreamExt as _;
                    let counted = blobs.get(&BlobId::new(part.blob.clone()), Some((base + first, base + last))).await?;
                    let counted = counted.inspect_ok(|bytes| crate::metrics::store_bytes_read(bytes.len() as u64));
                    Box::pin(counted) as crate::backend::BlobStream
                };
                encryption::plaintext(keys.as_ref(), customer.as_ref(), &part, local, stored)
            }
        })
        .try_flatten()
}

/// The bytes `span` of `version`, each checked against its recorded BLAKE3 before it is
/// passed on (see [`integrity`]): to a GET's client, or into the part an UploadPartCopy
/// stores. A refusal is logged, counted and recorded as `v1.blob.corrupt` for `caller`,
/// with `range` as the request asked for it. `inline` are the version's bytes when they were
/// read with it (see [`ReadPlan`]); `customer` the request's key, checked, for a version
/// stored under one.
pub(super) async fn checked_read(
    gw: &Gateway,
    caller: Caller,
    version: &ObjectVersion,
    range: Option<String>,
    span: (u64, u64),
    inline: Option<Bytes>,
    customer: Option<&CustomerKey>,
) -> Result<integrity::ByteStream> {
    let content = &version.content;
    let root = blake3::Hash::from_hex(&content.blake3).map_err(|_| {
        tracing::error!(code = "InternalError", version_id = %version.version_id, "the version records no valid BLAKE3");
        S3Error::new(S3ErrorCode::InternalError)
    })?;
    let expected = integrity::Expected { root, size: content.size };
    let read = |span| match (&inline, content.parts.first()) {
        (Some(bytes), Some(part)) => {
            let stored = super::inline::slice(bytes.clone(), crate::crypto::stored_range(part, span));
            let plain = stored.and_then(|stored| encryption::plaintext(gw.keys.as_ref(), customer, part, span, stored));
            futures::stream::once(std::future::ready(plain)).try_flatten().boxed()
        }
        _ => read_parts(gw, &content.parts, span, customer).boxed(),
    };
    let report = corruption_report(gw, caller, version, range, span);
    Ok(integrity::checked_read(&gw.outboards, expected, span, read, report).await?)
}

/// Reports bytes of `version` that a read refused: a log line naming the answer, a metric and
/// a `v1.blob.corrupt` event (queued, like retrieval records).
fn corruption_report(
    gw: &Gateway,
    caller: Caller,
    version: &ObjectVersion,
    range: Option<String>,
    (first, last): (u64, u64),
) -> integrity::Report {
    let registry = gw.registry.clone();
    let target = version_ref(version);
    // The blobs holding the span, in order.
    let mut offset = 0;
    let mut blobs = Vec::new();
    for part in &version.content.parts {
        let (start, end) = (offset, offset + part.size);
        offset = end;
        if part.size > 0 && end > first && start <= last && !blobs.contains(&part.blob) {
            blobs.push(part.blob.clone());
        }
    }
    let (read, sequence) = (target.clone(), version.sequence);
    let raise = move |reason: CorruptReason| {
        tracing::error!(
            code = "InternalError",
            reason = reason.as_str(),
            bucket = %target.bucket,
            key = %target.key,
            version_id = %target.version_id,
            blobs = ?blobs,
            "stored bytes failed their integrity check; the read was refused"
        );
        crate::metrics::blob_corrupt(reason.as_str());
        let corrupt = BlobCorrupt { subject: CorruptSubject::Version(target), blobs, reason, range };
        let lost = |err: registry::Error| tracing::error!(error = %err, "a v1.blob.corrupt record was lost");
        if let Err(err) = registry.record_corruption(caller, corrupt, lost) {
            lost(err);
        }
    };
    let lookup = gw.registry.clone();
    Box::new(move |reason| {
        if reason != CorruptReason::Missing {
            return raise(reason);
        }
        // A blob is missing when gc took it after its version was deleted or replaced during
        // the read (see [`version_gone`]; a multipart object's next part is opened only when the
        // read reaches it): no damage, and no alarm in the log. Missing while the version
        // stands, it is lost.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return raise(reason) };
        runtime.spawn(async move {
            if !version_gone(&lookup, read.clone(), sequence).await {
                return raise(reason);
            }
            tracing::info!(
                bucket = %read.bucket,
                key = %read.key,
                version_id = %read.version_id,
                "a version was deleted or replaced while it was read; the read ended where its blobs went"
            );
        });
    })
}

/// Whether the version `read`, created by the event `sequence`, no longer stands as it was
/// read: deleted, or replaced under its id (an unversioned key's `null` version overwritten).
/// Its blobs were gc's to take then, which is no damage. A failed lookup tells nothing: the
/// version is taken to stand.
async fn version_gone(registry: &Registry, read: VersionRef, sequence: u64) -> bool {
    let VersionRef { bucket, key, version_id } = read;
    let now = registry.read(move |conn| conn.version(&bucket, &key, &version_id)).await;
    now.is_ok_and(|now| now.is_none_or(|now| now.sequence != sequence))
}

/// Whether `version`, whose bytes `reader` (a GET, a copy) failed to read with `err`, went
/// while it read them ([`version_gone`]); said in the log when it did, as no damage.
pub(super) async fn went_while_read(gw: &Gateway, version: &ObjectVersion, err: &BlobError, reader: &str) -> bool {
    if !version_gone(&gw.registry, version_ref(version), version.sequence).await {
        return false;
    }
    tracing::info!(
        bucket = %version.bucket,
        key = %version.key,
        version_id = %version.version_id,
        error = %err,
        "{reader} found the version it read deleted or replaced before it read its bytes"
    );
    true
}

/// A response body that records the retrieval, with the bytes actually sent, when hyper is
/// done with it (finished or dropped by a client that went away), and counts those bytes.
struct RecordedBody<S> {
    inner: S,
    sent: u64,
    record: Option<Box<dyn FnOnce(u64) + Send + Sync>>,
}

impl<S: Stream<Item = Result<Bytes, BlobError>> + Unpin> Stream for RecordedBody<S> {
    type Item = Result<Bytes, BlobError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let polled = Pin::new(&mut self.inner).poll_next(cx);
        if let Poll::Ready(Some(Ok(chunk))) = &polled {
            self.sent += chunk.len() as u64;
        }
        polled
    }
}

impl<S> Drop for RecordedBody<S> {
    fn drop(&mut self) {
        crate::metrics::bytes_sent(self.sent);
        if let Some(record) = self.record.take() {
            record(self.sent);
        }
    }
}

/// Queues the retrieval record of a version; never delays or fails the read.
pub(super) fn record_retrieval(
    registry: &Registry,
    caller: Caller,
    version: VersionRef,
    method: &str,
    bytes: u64,
    range: Option<String>,
) {
    let retrieved = Retrieved { version, method: method.to_owned(), bytes, range };
    let lost = |err: registry::Error| {
        crate::metrics::retrieval_record_dropped();
        tracing::error!(error = %err, "a retrieval record was lost");
    };
    if let Err(err) = registry.record_retrieval(caller, retrieved, lost) {
        lost(err);
    }
}

/// With `registry.retrievals = required`, refuses a read (503) while the registry cannot
/// commit (or its views could not, which the read's record would first have to repair),
/// rather than serving it unrecorded. The refused read tries a commit itself, so reads resume
/// as soon as space is freed, with or without writes or readiness probes.
async fn require_recordable(gw: &Gateway) -> Result<()> {
    let registry = &gw.registry;
    if gw.config.registry.retrievals != Retrievals::Required || !(registry.commits_failing() || registry.views_behind())
    {
        return Ok(());
    }
    if let Err(err) = gw.registry.probe_commit().await {
        tracing::error!(error = %err, code = "ServiceUnavailable", "read refused: its retrieval record cannot be committed");
        return Err(s3_error!(
            ServiceUnavailable,
            "Please reduce your request rate: the read cannot be recorded; retry once space is freed."
        )
        .into());
    }
    Ok(())
}

pub(super) fn version_ref(version: &ObjectVersion) -> VersionRef {
    VersionRef { bucket: version.bucket.clone(), key: version.key.clone(), version_id: version.version_id.clone() }
}

/// Applies a `response-*` override, or the stored value.
fn override_or(overridden: Option<String>, stored: Option<String>) -> Option<String> {
    overridden.or(stored)
}

/// Resolves a GET or HEAD request (their inputs share these fields) to a [`ReadPlan`].
macro_rules! read_plan {
    ($gw:expr, $input:expr) => {{
        let input = $input;
        let conditions = Conditions {
            if_match: input.if_match.as_ref(),
            if_none_match: input.if_none_match.as_ref(),
            if_modified_since: input.if_modified_since.as_ref(),
            if_unmodified_since: input.if_unmodified_since.as_ref(),
        };
        plan(
            $gw,
            &input.bucket,
            &input.key,
            input.version_id.as_deref(),
            &conditions,
            input.range.as_ref(),
            input.part_number,
        )
        .await?
    }};
}

/// The headers GET and HEAD answer with, as the fields of either output type, plus the
/// fields given and the encryption headers of `sse` ([`encryption::answer`]).
macro_rules! object_output {
    ($output:ident { $($field:ident $(: $value:expr)?),* $(,)? }, $plan:expr, $input:expr, $sse:expr) => {{
        let (plan, input, sse) = (&$plan, $input, $sse);
        let version = &plan.version;
        let content = &version.content;
        let length = plan.span.map_or(0, |(first, last)| last - first + 1);
        let with_checksums = plan.whole && checksum_mode_enabled(input.checksum_mode.as_ref());
        let checksums = if with_checksums {
            wire::ChecksumFields::of(&content.checksums)
        } else {
            wire::ChecksumFields::default()
        };
        // Whole-object checksums of single PUTs carry no type in the record: S3 names them
        // FULL_OBJECT, as PutObject's response did.
        let checksum_type = (with_checksums && !content.checksums.is_empty()).then(|| {
            ChecksumType::from(content.checksum_type.clone().unwrap_or_else(|| ChecksumType::FULL_OBJECT.to_owned()))
        });
        let (lock_mode, lock_until, legal_hold) = wire::lock_fields(version);
        $output {
            $($field $(: $value)?,)*
            accept_ranges: Some("bytes".to_owned()),
            content_length: i64::try_from(length).ok(),
            content_range: plan.content_range.clone(),
            e_tag: Some(wire::etag(&content.etag)),
            last_modified: Some(wire::whole_seconds(version.created_at)),
            metadata: wire::metadata(content),
            // Stored without one, an object is `binary/octet-stream`, as S3 answers it.
            content_type: override_or(
                input.response_content_type.clone(),
                Some(content.content_type.clone().unwrap_or_else(|| DEFAULT_CONTENT_TYPE.to_owned())),
            ),
            cache_control: override_or(input.response_cache_control.clone(), wire::header(content, "cache-control")),
            content_disposition: override_or(
                input.response_content_disposition.clone(),
                wire::header(content, "content-disposition"),
            ),
            content_encoding: override_or(
                input.response_content_encoding.clone(),
                wire::header(content, "content-encoding").and_then(|coding| wire::content_coding(&coding)),
            ),
            content_language: override_or(
                input.response_content_language.clone(),
                wire::header(content, "content-language"),
            ),
            expires: input.response_expires.clone().or_else(|| wire::expires(content)),
            version_id: wire::version_id_header(&plan.bucket, &version.version_id),
            parts_count: parts_count(&content.etag, input.part_number),
            checksum_type,
            checksum_crc32: checksums.crc32,
            checksum_crc32c: checksums.crc32c,
            checksum_crc64nvme: checksums.crc64nvme,
            checksum_sha1: checksums.sha1,
            checksum_sha256: checksums.sha256,
            object_lock_mode: lock_mode,
            object_lock_retain_until_date: lock_until,
            object_lock_legal_hold_status: legal_hold,
            expiration: plan.expiration.clone(),
            server_side_encryption: sse.server_side_encryption,
            ssekms_key_id: sse.ssekms_key_id,
            bucket_key_enabled: sse.bucket_key_enabled,
            sse_customer_algorithm: sse.sse_customer_algorithm,
            sse_customer_key_md5: sse.sse_customer_key_md5,
            ..Default::default()
        }
    }};
}

/// The `Content-Type` of an object written without one.
const DEFAULT_CONTENT_TYPE: &str = "binary/octet-stream";

pub(super) async fn get_object(gw: &Gateway, req: S3Request<GetObjectInput>) -> Result<S3Response<GetObjectOutput>> {
    let input = &req.input;
    let overrides = [
        &input.response_cache_control,
        &input.response_content_disposition,
        &input.response_content_encoding,
        &input.response_content_language,
        &input.response_content_type,
    ];
    if req.credentials.is_none() && (overrides.iter().any(|o| o.is_some()) || input.response_expires.is_some()) {
        // Anyone could otherwise have a public object served as a page of this origin.
        return Err(s3_error!(
            InvalidRequest,
            "Request specific response headers cannot be used for anonymous GET requests."
        )
        .into());
    }
    // A GET reads its version's bytes after the version: one deleted or replaced meanwhile (an
    // unversioned key overwritten) may have lost its blobs to gc, which is no damage. What
    // stands under the key now was not what this request was authorized for (its tags and ACL
    // decided it), so it is not served: a key gone answers as a GET a moment later would
    // (NoSuchKey), a key replaced answers 503, which clients retry, and the retry is decided
    // on the new version.
    let Some((plan, customer, stream)) = read_as_planned(gw, &req).await? else {
        let _standing = read_plan!(gw, &req.input);
        tracing::warn!(
            code = "ServiceUnavailable",
            "a GET was refused: the version it read was replaced before it read its bytes; a retry reads the new one"
        );
        return Err(s3_error!(ServiceUnavailable, "Please reduce your request rate.").into());
    };
    let content = &plan.version.content;
    let record: Option<Box<dyn FnOnce(u64) + Send + Sync>> = if gw.records_retrievals() {
        let (registry, caller, target, range) =
            (gw.registry.clone(), caller(&req), version_ref(&plan.version), plan.content_range.clone());
        Some(Box::new(move |sent| record_retrieval(&registry, caller, target, "GET", sent, range)))
    } else {
        None
    };
    let body = RecordedBody { inner: sync_wrapper::SyncStream::new(stream), sent: 0, record };
    let tag_count = i32::try_from(content.tags.len()).ok().filter(|&n| n > 0);
    let sse = encryption::answer(gw.keys.as_ref(), content, customer.as_ref());
    let output = object_output!(GetObjectOutput { body: Some(StreamingBlob::wrap(body)), tag_count }, plan, input, sse);
    Ok(response(output, &plan))
}

/// One attempt at a GET's read, on its key as it is now: the plan, the customer's key and the
/// checked bytes; `None` when the version it read was deleted or replaced, and its blobs
/// taken by gc, before it read them (see [`version_gone`]).
async fn read_as_planned(
    gw: &Gateway,
    req: &S3Request<GetObjectInput>,
) -> Result<Option<(ReadPlan, Option<encryption::Customer>, integrity::ByteStream)>> {
    let plan = read_plan!(gw, &req.input);
    let customer = encryption::check_read(gw, req, &plan.version.content)?;
    require_recordable(gw).await?;
    VERSION_READ.reach().await;
    let Some(span) = plan.span else { return Ok(Some((plan, customer, futures::stream::empty().boxed()))) };
    let (range, inline, key) = (plan.content_range.clone(), plan.inline.clone(), customer.as_ref().map(|c| &c.key));
    let err = match checked_read(gw, caller(req), &plan.version, range, span, inline, key).await {
        Ok(stream) => return Ok(Some((plan, customer, stream))),
        Err(Error::Blob(err)) => err,
        Err(err) => return Err(err),
    };
    if !went_while_read(gw, &plan.version, &err, "a GET").await {
        return Err(err.into());
    }
    Ok(None)
}

/// `x-amz-mp-parts-count`: for multipart objects (one of a single part too), when a part was
/// asked for. Their ETag ends in `-<parts>`, which tells a one-part upload from a single PUT
/// (both are stored as one part).
fn parts_count(etag: &str, part_number: Option<i32>) -> Option<i32> {
    part_number?;
    etag.rsplit_once('-')?.1.parse().ok()
}

fn checksum_mode_enabled(mode: Option<&ChecksumMode>) -> bool {
    mode.is_some_and(|m| m.as_str() == ChecksumMode::ENABLED)
}

pub(super) async fn head_object(gw: &Gateway, req: S3Request<HeadObjectInput>) -> Result<S3Response<HeadObjectOutput>> {
    let input = &req.input;
    let plan = read_plan!(gw, input);
    let customer = encryption::check_read(gw, &req, &plan.version.content)?;
    require_recordable(gw).await?;
    if gw.records_retrievals() {
        record_retrieval(&gw.registry, caller(&req), version_ref(&plan.version), "HEAD", 0, plan.content_range.clone());
    }
    let sse = encryption::answer(gw.keys.as_ref(), &plan.version.content, customer.as_ref());
    let output = object_output!(HeadObjectOutput {}, plan, input, sse);
    let mut response = response(output, &plan);
    // GetObject's output has a field for it; HeadObject's (as AWS's model) has none, while
    // AWS sends the header on HEAD too.
    let tags = plan.version.content.tags.len();
    if tags > 0 {
        response.headers.insert("x-amz-tagging-count", http::HeaderValue::from(tags));
    }
    Ok(response)
}

/// 206 for a partial read.
fn response<T>(output: T, plan: &ReadPlan) -> S3Response<T> {
    let mut response = S3Response::new(output);
    if plan.content_range.is_some() {
        response.status = Some(http::StatusCode::PARTIAL_CONTENT);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(size: u64) -> BlobPart {
        BlobPart {
            blob: String::new(),
            size,
            etag: String::new(),
            checksums: Default::default(),
            subtree: None,
            subtrees: None,
            offset: None,
            store_etag: None,
            wrapped_key: None,
        }
    }

    #[test]
    fn part_numbers_select_byte_spans() {
        let parts = [part(5), part(5), part(2), part(0)];
        assert_eq!(part_span(&parts, 1).unwrap(), Some((0, 4)));
        assert_eq!(part_span(&parts, 3).unwrap(), Some((10, 11)));
        assert_eq!(part_span(&parts, 4).unwrap(), None, "an empty part has no span");
        assert!(part_span(&parts, 5).is_err());
        assert!(part_span(&parts, 0).is_err());
        assert_eq!(part_span(&[part(7)], 1).unwrap(), Some((0, 6)));
        assert_eq!(part_span(&[], 1).unwrap(), None, "part 1 of an empty object");
    }
}
