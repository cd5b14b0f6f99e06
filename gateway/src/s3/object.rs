//! Writing and removing objects: PutObject, CopyObject, DeleteObject, DeleteObjects.
//!
//! Every write follows one order: stream the body once into staging while hashing it, verify
//! the client's checksums, commit the blob, then record the event. The event's commit is what
//! makes the object visible, so a failed write at any step leaves no object and no event (and,
//! at worst, a committed blob that `gc` removes). A small PutObject body skips the blob store:
//! its bytes are committed with the event (see `inline`).

use std::time::{Duration, Instant};

use registry::commands::{Deleted, NewVersion, WriteCondition};
use registry::deletions::{Epoch, Pin, Placement};
use registry::event::v1::{BlobPart, ObjectContent, ObjectPut, Origin, PartSubtrees, VersionRef};
use registry::queries::ObjectVersion;
use s3s::dto::*;
use s3s::{S3Request, S3Response, TrailingHeaders, s3_error};

use super::bucket::require_bucket;
use super::checksum::ExpectedChecksums;
use super::encryption::Encryption;
use super::error::{Error, Result};
use super::lifecycle_config::NewVersionExpiry;
use super::lookup::{OnDeleteMarker, named_version};
use super::{Gateway, Stored, acl, caller, encryption, get_object, inline, wire};
use crate::backend::{BlobError, PlacedBlob, StagedBlob, StoreUpload};
use crate::clock;
use crate::crypto::{BlobKey, CustomerKey};
use crate::outboard::PartHashes;
use crate::request::DeniedDeletes;
use crate::test_barrier::Barrier;
use crate::worker::gc;

/// How many times a write places its blob again after gc took it, before it gives up.
const PLACE_ATTEMPTS: usize = 3;

/// How long a write waits for gc to finish deleting its blob before it gives up.
const GC_WAIT: Duration = Duration::from_secs(30);

/// How often a waiting write asks whether the pass that marked its blob is gone: a pass's
/// lease on PostgreSQL ends a moment after its process, once the server sees its session closed.
const DEAD_PASS_CHECK: Duration = Duration::from_secs(1);

/// A barrier for tests only (see [`Barrier`]): a CopyObject that stores its source's bytes
/// again, having read the source's version and not yet its bytes.
static COPY_SOURCE_READ: Barrier = Barrier::new("ARTIFACT_STORE_COPY_PAUSE");

/// A blob a write placed in the store, kept until the write's event is recorded
/// ([`record_placed`]).
pub(super) struct Placed {
    blob: PlacedBlob,
    /// The deletion epoch read before the blob was placed.
    after: Epoch,
}

impl Placed {
    /// The blob's id.
    pub(super) fn blob_id(&self) -> &crate::backend::BlobId {
        self.blob.id()
    }
}

/// Places a staged blob, reading the deletion epoch first (see `registry::deletions`).
pub(super) async fn place(gw: &Gateway, staged: StagedBlob) -> Result<Placed> {
    let after = gw.registry.deletion_epoch().await?;
    let blob = staged.place().await?;
    Ok(Placed { blob, after })
}

/// Records, through `record`, an event naming the blob `placed` and how it was placed. When
/// gc took the blob (or is taking it) in between, the registry refuses; the write then pins
/// the blob so that no later gc pass takes it, waits until gc is done with it, places it again
/// and retries under the pin, which it removes once the event is recorded or the write gives
/// up. The staged copy goes once the event is recorded.
pub(super) async fn record_placed<T, F>(
    gw: &Gateway,
    mut placed: Placed,
    record: impl FnMut(Placement) -> F,
) -> Result<T>
where
    F: Future<Output = registry::Result<T>>,
{
    let mut pin = None;
    let result = record_until_accepted(gw, &mut placed, &mut pin, record).await;
    if let Some(pin) = pin
        && let Err(err) = gw.registry.unpin(pin).await
    {
        // The next gc pass past the pin's lifetime drops it; until then the blob is kept.
        tracing::warn!(error = %err, "could not remove a blob pin");
    }
    result
}

async fn record_until_accepted<T, F>(
    gw: &Gateway,
    placed: &mut Placed,
    pin: &mut Option<Pin>,
    mut record: impl FnMut(Placement) -> F,
) -> Result<T>
where
    F: Future<Output = registry::Result<T>>,
{
    let mut placement = Placement::After(placed.after);
    let mut attempts = 0;
    loop {
        match record(placement).await {
            Err(registry::Error::BlobDeleted { blob }) if attempts < PLACE_ATTEMPTS => {
                attempts += 1;
                tracing::warn!(%blob, "gc is deleting the blob of this write; placing it again once it is done");
                let held = match *pin {
                    Some(held) => held,
                    None => *pin.insert(gw.registry.pin_blob(blob.clone()).await?),
                };
                wait_for_gc(gw, &blob).await?;
                placed.blob.place_again().await?;
                placement = Placement::Pinned(held);
            }
            result => return Ok(result?),
        }
    }
}

/// Waits until gc has released `blob` (deleted it and said so), for at most [`GC_WAIT`]. When
/// no pass runs, the mark is that of a pass that died, which would refuse this write until the
/// next pass: the write finishes that pass's deletions itself (see
/// [`gc::finish_dead_pass`], which tells a dead pass from a live one across gateways too).
async fn wait_for_gc(gw: &Gateway, blob: &str) -> Result<()> {
    let deadline = Instant::now() + GC_WAIT;
    let mut next_check = Instant::now();
    while gw.registry.deletion_pending(blob.to_owned()).await? {
        if Instant::now() >= next_check {
            next_check = Instant::now() + DEAD_PASS_CHECK;
            if let Err(err) = gc::finish_dead_pass(&gw.registry, gw.blobs.as_ref()).await {
                tracing::warn!(error = format!("{err:#}"), "cannot finish the deletions of a gc pass that stopped");
            }
        }
        if Instant::now() > deadline {
            return Err(registry::Error::BlobDeleted { blob: blob.to_owned() }.into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// What a body stored by [`store_body`] becomes.
pub(super) enum BodyRole<'a> {
    /// A whole object, stored encrypted under the key when one is given.
    Object(Option<BlobKey>),
    /// A multipart part: hashed as subtrees at `offset` when given (see `blake3_tree`), sent
    /// into the store's own multipart upload, as the part number given, when it has one, and
    /// encrypted under the key when the upload is.
    Part { offset: Option<u64>, into: Option<(&'a StoreUpload, u32)>, key: Option<BlobKey> },
}

/// Streams a request body into the blob store, verifies the client's checksums (headers and
/// trailers) and places the blob. Nothing is placed if anything does not match.
pub(super) async fn store_body(
    gw: &Gateway,
    body: Option<StreamingBlob>,
    content_length: Option<i64>,
    expected: &ExpectedChecksums,
    trailers: Option<TrailingHeaders>,
    role: BodyRole<'_>,
) -> Result<(Stored, Placed)> {
    let stream: crate::backend::BodyStream = match body {
        Some(body) => Box::pin(body),
        None => Box::pin(futures::stream::empty()),
    };
    let expected_len = content_length.and_then(|n| u64::try_from(n).ok());
    let algorithms = expected.algorithms();
    let (offset, into, key) = match role {
        BodyRole::Object(key) => (None, None, key),
        BodyRole::Part { offset, into, key } => (offset, into, key),
    };
    let seal = key.as_ref().map(|k| k.key.seal());
    let staged = match into {
        Some((upload, number)) => gw.blobs.put_part((upload, number), stream, expected_len, &algorithms, offset, seal),
        None => gw.blobs.put(stream, expected_len, &algorithms, offset, seal),
    };
    let (staged, wrapped_key) = (staged.await?, key.map(|k| k.wrapped));
    let trailers = trailers.and_then(|t| t.take());
    expected.verify(&staged.md5(), staged.checksums(), trailers.as_ref())?;
    let (size, blake3, etag) = (staged.size(), staged.blake3(), hex::encode(staged.md5()));
    let checksums = wire::checksum_map(staged.checksums());
    let store_etag = staged.store_etag().map(str::to_owned);
    let outboard = staged.outboard().to_vec();
    let part_hashes = staged.part_hashes().cloned();
    let placed = place(gw, staged).await?;
    let subtrees = keep_part_hashes(gw, part_hashes).await;
    crate::metrics::bytes_received(size);
    let blob = placed.blob_id().to_string();
    let part = BlobPart { blob, size, etag, checksums, subtree: None, subtrees, offset: None, store_etag, wrapped_key };
    Ok((Stored { part, blake3, outboard }, placed))
}

/// Keeps a stored part's leaves for its object's outboard, and returns what its event records
/// of its hashes: its pieces' chaining values and the offset they were hashed at.
pub(super) async fn keep_part_hashes(gw: &Gateway, hashes: Option<PartHashes>) -> Option<PartSubtrees> {
    let hashes = hashes?;
    let recorded = PartSubtrees { offset: hashes.offset, chaining_values: hex::encode(hashes.pieces.concat()) };
    gw.outboards.keep_part(hashes).await;
    Some(recorded)
}

/// The write condition of a conditional PUT or completion. `If-None-Match` takes only `*` on
/// writes; another value is refused as AWS refuses it.
pub(super) fn write_condition(
    if_match: Option<&ETagCondition>,
    if_none_match: Option<&ETagCondition>,
) -> Result<WriteCondition> {
    if if_none_match.is_some_and(|c| !c.is_any()) {
        return Err(wire::header_not_implemented());
    }
    Ok(WriteCondition { if_match: if_match.map(condition_etag), if_none_match_any: if_none_match.is_some() })
}

pub(super) async fn put_object(
    gw: &Gateway,
    mut req: S3Request<PutObjectInput>,
) -> Result<S3Response<PutObjectOutput>> {
    let form = super::post_object::is_form(&req);
    if form {
        super::post_object::apply_fields(&mut req)?;
    }
    wire::check_key(&req.input.key)?;
    let asked = encryption::requested(gw, &req)?;
    if req.input.write_offset_bytes.is_some() {
        // An append (directory buckets on AWS): storing the body as the whole object instead
        // would lose what it was meant to follow.
        return Err(s3_error!(NotImplemented, "Appending to an object is not supported").into());
    }
    let acl = acl::write_acl(gw, &req.input.bucket, &req.headers, req.extensions.get()).await?;
    let input = &mut req.input;
    let length = wire::body_length(input.content_length, &req.headers);
    wire::check_body_size(length)?;
    wire::check_metadata_size(input.metadata.as_ref())?;
    let _slot = gw.upload_slot(req.extensions.get())?;
    let bucket = require_bucket(gw, &input.bucket).await?;
    let encryption = encryption::with_default(gw, &bucket, asked)?;
    let expected = ExpectedChecksums::from_headers(&req.headers)?;
    let (retention, legal_hold) = lock_headers!(&bucket, input)?;
    // AWS takes a lock only with a digest of what it locks (a form's upload is not asked).
    let asks_lock = input.object_lock_mode.is_some()
        || input.object_lock_retain_until_date.is_some()
        || input.object_lock_legal_hold_status.is_some();
    if asks_lock && !form && expected.is_empty() {
        return Err(s3_error!(
            InvalidRequest,
            "Content-MD5 OR x-amz-checksum- HTTP header is required for Put Object requests with Object Lock parameters"
        )
        .into());
    }
    let tags = wire::tags_from_header(input.tagging.as_deref())?;
    let condition = write_condition(input.if_match.as_ref(), input.if_none_match.as_ref())?;

    let key = encryption.as_ref().map(|e| e.new_key(gw.keys.as_ref())).transpose()?;
    let (mut stored, kept) = match inline::eligible(gw, length) {
        Some(len) => {
            let trailers = req.trailing_headers.clone();
            let (stored, blob) = inline::store_body(input.body.take(), len, &expected, trailers, key).await?;
            (stored, Kept::Inline(blob))
        }
        None => {
            let role = BodyRole::Object(key);
            let stored = store_body(gw, input.body.take(), length, &expected, req.trailing_headers.clone(), role);
            let (stored, placed) = stored.await?;
            (stored, Kept::Placed(placed))
        }
    };

    let outboard = std::mem::take(&mut stored.outboard);
    let root = stored.blake3.ok_or_else(|| s3_error!(InternalError, "The object's bytes were not hashed."))?;
    let mut content = ObjectContent {
        size: stored.part.size,
        etag: stored.part.etag.clone(),
        blake3: root.to_hex().to_string(),
        checksums: stored.part.checksums.clone(),
        checksum_type: (!stored.part.checksums.is_empty()).then(|| "FULL_OBJECT".to_owned()),
        content_type: input.content_type.clone(),
        headers: wire::stored_headers(
            input.cache_control.as_ref(),
            input.content_disposition.as_ref(),
            input.content_encoding.as_ref(),
            input.content_language.as_ref(),
            input.expires.as_ref(),
        ),
        user_metadata: wire::user_metadata(input.metadata.take()),
        tags,
        parts: vec![stored.part],
        ..ObjectContent::default()
    };
    if let Some(encryption) = &encryption {
        encryption.record(&mut content);
    }
    let put = ObjectPut {
        bucket: input.bucket.clone(),
        key: input.key.clone(),
        version_id: clock::new_id(),
        content,
        origin: Origin::Put,
        retention,
        legal_hold,
    };
    let checksums = wire::ChecksumFields::of(&put.content.checksums);
    let has_checksum = !put.content.checksums.is_empty();
    let (etag, size) = (put.content.etag.clone(), put.content.size);
    let expiry = NewVersionExpiry::of(&bucket, &put);
    let sse = encryption::answer(gw.keys.as_ref(), &put.content, encryption.as_ref().and_then(Encryption::customer));
    let new = NewVersion { acl, put, condition, placement: None };
    let recorded = match kept {
        Kept::Inline(blob) => gw.registry.put_inline_object(caller(&req), new, blob).await?,
        Kept::Placed(placed) => {
            let caller = caller(&req);
            let record = |after| {
                let new = NewVersion { placement: Some(after), ..new.clone() };
                gw.registry.put_object(caller.clone(), new)
            };
            record_placed(gw, placed, record).await?
        }
    };
    gw.outboards.keep(root, size, outboard).await;
    super::object_lock::protect_new_version(gw, &req.input.bucket, &req.input.key, &recorded, legal_hold).await?;
    let output = PutObjectOutput {
        e_tag: Some(wire::etag(&etag)),
        expiration: expiry.header(&bucket, recorded.event.created_at, gw.config.lifecycle.day_ms()),
        version_id: wire::version_id_header(&bucket, &recorded.version_id),
        checksum_crc32: checksums.crc32,
        checksum_crc32c: checksums.crc32c,
        checksum_crc64nvme: checksums.crc64nvme,
        checksum_sha1: checksums.sha1,
        checksum_sha256: checksums.sha256,
        checksum_type: has_checksum.then(|| ChecksumType::from(ChecksumType::FULL_OBJECT.to_owned())),
        size: i64::try_from(size).ok(),
        server_side_encryption: sse.server_side_encryption,
        ssekms_key_id: sse.ssekms_key_id,
        bucket_key_enabled: sse.bucket_key_enabled,
        sse_customer_algorithm: sse.sse_customer_algorithm,
        sse_customer_key_md5: sse.sse_customer_key_md5,
        ..Default::default()
    };
    let response = wire::with_receipt(output, &recorded.event);
    Ok(if form { super::post_object::answer(&req, response) } else { response })
}

/// Where a PUT's bytes went.
enum Kept {
    /// Into the registry, with the event.
    Inline(registry::inline::InlineBlob),
    /// Into the blob store.
    Placed(Placed),
}

/// The version a copy names as its source.
pub(super) async fn source_version(
    gw: &Gateway,
    bucket: &str,
    key: &str,
    version_id: Option<&str>,
) -> Result<ObjectVersion> {
    named_version(gw, bucket, key, version_id, OnDeleteMarker::CopySource).await
}

/// Checks the `x-amz-copy-source-if-*` conditions against the source version (of a CopyObject
/// or an UploadPartCopy: a multipart copy names the source's ETag on every part, so that its
/// parts cannot come from two versions).
pub(super) fn check_copy_conditions(
    source: &ObjectVersion,
    if_match: Option<&ETagCondition>,
    if_none_match: Option<&ETagCondition>,
    if_modified_since: Option<&Timestamp>,
    if_unmodified_since: Option<&Timestamp>,
) -> Result<()> {
    let etag = wire::etag(&source.content.etag);
    let matches = |c: &ETagCondition| match c {
        ETagCondition::Any => true,
        ETagCondition::ETag(e) => e.value() == etag.value(),
    };
    let modified = wire::seconds(source.created_at);
    let failed = if let Some(c) = if_match {
        !matches(c)
    } else {
        if_unmodified_since.is_some_and(|ts| modified > wire::seconds(wire::millis(ts)))
    } || if let Some(c) = if_none_match {
        matches(c)
    } else {
        if_modified_since.is_some_and(|ts| modified <= wire::seconds(wire::millis(ts)))
    };
    if failed {
        return Err(registry::Error::PreconditionFailed.into());
    }
    Ok(())
}

pub(super) async fn copy_object(gw: &Gateway, req: S3Request<CopyObjectInput>) -> Result<S3Response<CopyObjectOutput>> {
    // A copy names the blobs of the source it read; when the source was deleted or replaced
    // before the copy's record, nothing may reference them any more, and the registry refuses
    // them. A copy that stores the bytes again reads them after the source's version: gc may
    // have taken them by then ([`source_read_failure`]).
    copy_as_read(gw, &req.input.copy_source, copy_source_as_read(gw, &req)).await
}

/// Runs `attempt`, a copy of `copy_source` as it reads it. When the source went between the
/// attempt's read of it and the attempt's end ([`registry::Error::CopySourceChanged`]), the
/// copy answers as one made a moment later would, without copying what stands there now: a
/// source gone answers NoSuchKey (or NoSuchVersion); a version that replaced it is not served,
/// since its tags and ACL never decided this request, and the answer is 503, which clients
/// retry, the retry being decided on it.
pub(super) async fn copy_as_read<T>(
    gw: &Gateway,
    copy_source: &CopySource,
    attempt: impl Future<Output = Result<T>>,
) -> Result<T> {
    match attempt.await {
        Err(Error::Registry(registry::Error::CopySourceChanged)) => {
            let (bucket, key, version_id) = wire::copy_source(copy_source)?;
            if let Err(err) = source_version(gw, &bucket, &key, version_id.as_deref()).await {
                let err = s3s::S3Error::from(err);
                tracing::info!(code = err.code().as_str(), "a copy whose source went while it ran was refused");
                return Err(err.into());
            }
            tracing::warn!(
                code = "ServiceUnavailable",
                "a copy was refused: another version replaced its source while it ran; a retry copies that one"
            );
            Err(s3_error!(ServiceUnavailable, "Please reduce your request rate.").into())
        }
        answer => answer,
    }
}

/// The error of a copy whose read of its source's bytes failed with `err`. A source deleted or
/// replaced since the copy read its version may have lost its blobs to gc meanwhile: that is
/// no damage, and the copy answers as one made a moment later would
/// ([`registry::Error::CopySourceChanged`], see [`copy_as_read`]).
pub(super) async fn source_read_failure(gw: &Gateway, source: &ObjectVersion, err: BlobError) -> Error {
    if !get_object::went_while_read(gw, source, &err, "a copy").await {
        return err.into();
    }
    registry::Error::CopySourceChanged.into()
}

/// A copy's `If-Match` and `If-None-Match` on its target, which s3s 0.14 reads into no field
/// of `CopyObjectInput`: taken from the headers, and held as for a PUT (one winner among
/// concurrent copies "if absent", whichever gateways take them).
fn target_condition(headers: &http::HeaderMap) -> Result<WriteCondition> {
    let condition = |name: http::header::HeaderName| {
        headers
            .get(name)
            .map(|value| ETagCondition::parse_http_header(value.as_bytes()))
            .transpose()
            .map_err(|_| s3_error!(InvalidArgument, "The If-Match or If-None-Match header is not a valid ETag"))
    };
    let (if_match, if_none_match) = (condition(http::header::IF_MATCH)?, condition(http::header::IF_NONE_MATCH)?);
    write_condition(if_match.as_ref(), if_none_match.as_ref())
}

/// Whether a copy's `x-amz-{what}-directive` is `REPLACE`; absent is `COPY`, and any other
/// value is refused, as AWS does, rather than taken for `COPY`.
fn replaces(directive: Option<&str>, what: &str) -> Result<bool> {
    match directive {
        None | Some("COPY") => Ok(false),
        Some("REPLACE") => Ok(true),
        Some(_) => Err(s3_error!(InvalidArgument, "Unknown {what} directive.").into()),
    }
}

/// One attempt at a copy, on its source as it reads it.
async fn copy_source_as_read(gw: &Gateway, req: &S3Request<CopyObjectInput>) -> Result<S3Response<CopyObjectOutput>> {
    wire::check_key(&req.input.key)?;
    let asked = encryption::requested(gw, req)?;
    let same_object_change = asked.is_some();
    let acl = acl::write_acl(gw, &req.input.bucket, &req.headers, req.extensions.get()).await?;
    let copier = caller(req);
    let (src_bucket, src_key, src_version_id) = wire::copy_source(&req.input.copy_source)?;
    let source_bucket = require_bucket(gw, &src_bucket).await?;
    let bucket = require_bucket(gw, &req.input.bucket).await?;
    let source = source_version(gw, &src_bucket, &src_key, src_version_id.as_deref()).await?;
    let source_key = encryption::read_key(gw, req, &source.content, encryption::COPY_SOURCE_CUSTOMER)?;
    // A copy of an SSE-C source that asks for nothing is encrypted as AWS's default (SSE-S3):
    // it cannot share the source's blobs, which only the source's key opens.
    let encryption = match encryption::with_default(gw, &bucket, asked)? {
        None if encryption::is_customer(&source.content) => Some(Encryption::S3),
        encryption => encryption,
    };
    let input = &req.input;
    check_copy_conditions(
        &source,
        input.copy_source_if_match.as_ref(),
        input.copy_source_if_none_match.as_ref(),
        input.copy_source_if_modified_since.as_ref(),
        input.copy_source_if_unmodified_since.as_ref(),
    )?;
    let replace_metadata = replaces(input.metadata_directive.as_ref().map(MetadataDirective::as_str), "metadata")?;
    let replace_tags = replaces(input.tagging_directive.as_ref().map(TaggingDirective::as_str), "tagging")?;
    if let Some(asked) = &input.checksum_algorithm
        && crate::digest::ChecksumAlgorithm::parse(asked.as_str()).is_none()
    {
        return Err(s3_error!(InvalidRequest, "Value for x-amz-checksum-algorithm header is invalid.").into());
    }
    // Checked before a copy that stores the bytes again reads a byte of them.
    if replace_metadata {
        wire::check_metadata_size(input.metadata.as_ref())?;
    }
    let replaced_tags = if replace_tags { Some(wire::tags_from_header(input.tagging.as_deref())?) } else { None };
    let (retention, legal_hold) = lock_headers!(&bucket, input)?;
    let same_object = src_bucket == input.bucket && src_key == input.key;
    if same_object
        && !replace_metadata
        && !replace_tags
        && src_version_id.is_none()
        && retention.is_none()
        && !same_object_change
    {
        return Err(s3_error!(
            InvalidRequest,
            "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes."
        )
        .into());
    }

    // The blobs are content-addressed and immutable: the copy points at the same bytes (and,
    // encrypted, at the same wrapped data keys), and an encrypted source stays encrypted (as
    // under AWS's default bucket encryption). A copy that must be encrypted when its source is
    // not stores the bytes again.
    let mut content = source.content.clone();
    let placed = match &encryption {
        Some(target) if !target.stores_as(&source.content) => {
            let source_key = source_key.as_ref().map(|c| &c.key);
            let (part, placed) = store_encrypted_copy(gw, copier.clone(), (&source, source_key), target).await?;
            target.record(&mut content);
            if content.parts.len() > 1 || content.etag.contains('-') {
                // One part now: its ETag is the MD5 of the bytes, and per-part checksums
                // combined into a COMPOSITE one no longer describe it.
                content.etag.clone_from(&part.etag);
                if content.checksum_type.as_deref() == Some("COMPOSITE") {
                    content.checksums.clear();
                    content.checksum_type = None;
                }
            }
            content.parts = vec![part];
            Some(placed)
        }
        _ => None,
    };
    if replace_metadata {
        content.content_type = input.content_type.clone();
        content.headers = wire::stored_headers(
            input.cache_control.as_ref(),
            input.content_disposition.as_ref(),
            input.content_encoding.as_ref(),
            input.content_language.as_ref(),
            input.expires.as_ref(),
        );
        content.user_metadata = wire::user_metadata(input.metadata.clone());
    }
    if let Some(tags) = replaced_tags {
        content.tags = tags;
    }
    let put = ObjectPut {
        bucket: input.bucket.clone(),
        key: input.key.clone(),
        version_id: clock::new_id(),
        content,
        origin: Origin::Copy { bucket: src_bucket, key: src_key, version_id: source.version_id.clone() },
        retention,
        legal_hold,
    };
    let checksums = wire::ChecksumFields::of(&put.content.checksums);
    let etag = put.content.etag.clone();
    let expiry = NewVersionExpiry::of(&bucket, &put);
    let sse = encryption::answer(gw.keys.as_ref(), &put.content, encryption.as_ref().and_then(Encryption::customer));
    let new = NewVersion { acl, put, condition: target_condition(&req.headers)?, placement: None };
    let recorded = match placed {
        None => gw.registry.put_object(copier, new).await?,
        Some(placed) => {
            let record =
                |after| gw.registry.put_object(copier.clone(), NewVersion { placement: Some(after), ..new.clone() });
            record_placed(gw, placed, record).await?
        }
    };
    super::object_lock::protect_new_version(gw, &req.input.bucket, &req.input.key, &recorded, legal_hold).await?;
    // The copy read the source on its caller's behalf, as a GET would: recorded as such, so
    // the source's readers include those who copied it (AWS logs REST.COPY.OBJECT_GET).
    if gw.records_retrievals() {
        let read = get_object::version_ref(&source);
        get_object::record_retrieval(&gw.registry, caller(req), read, "COPY", source.content.size, None);
    }
    let output = CopyObjectOutput {
        expiration: expiry.header(&bucket, recorded.event.created_at, gw.config.lifecycle.day_ms()),
        copy_object_result: Some(CopyObjectResult {
            e_tag: Some(wire::etag(&etag)),
            last_modified: Some(wire::whole_seconds(recorded.event.created_at)),
            checksum_crc32: checksums.crc32,
            checksum_crc32c: checksums.crc32c,
            checksum_crc64nvme: checksums.crc64nvme,
            checksum_sha1: checksums.sha1,
            checksum_sha256: checksums.sha256,
            ..Default::default()
        }),
        copy_source_version_id: wire::copy_source_version_id(
            &source_bucket,
            src_version_id.is_some(),
            &source.version_id,
        ),
        version_id: wire::version_id_header(&bucket, &recorded.version_id),
        server_side_encryption: sse.server_side_encryption,
        ssekms_key_id: sse.ssekms_key_id,
        bucket_key_enabled: sse.bucket_key_enabled,
        sse_customer_algorithm: sse.sse_customer_algorithm,
        sse_customer_key_md5: sse.sse_customer_key_md5,
        ..Default::default()
    };
    Ok(wire::with_receipt(output, &recorded.event))
}

/// The bytes of `source` read back (checked against its digest; with its customer's key when it
/// is stored under one) and stored again as one blob encrypted under a new data key as
/// `target` asks: the part of a copy that must be encrypted when its source is not, or is under
/// another key.
async fn store_encrypted_copy(
    gw: &Gateway,
    caller: registry::Caller,
    (source, source_key): (&ObjectVersion, Option<&CustomerKey>),
    target: &Encryption,
) -> Result<(BlobPart, Placed)> {
    let size = source.content.size;
    let read = super::integrity::SourceRead::default();
    COPY_SOURCE_READ.reach().await;
    let body: crate::backend::BodyStream = match size {
        0 => Box::pin(futures::stream::empty()),
        _ => {
            let span = (0, size - 1);
            // The source's version was read before its bytes: gc may have taken them since,
            // with the source deleted or replaced (see `source_read_failure`).
            match get_object::checked_read(gw, caller, source, None, span, None, source_key).await {
                Err(Error::Blob(err)) => return Err(source_read_failure(gw, source, err).await),
                checked => read.body(checked?),
            }
        }
    };
    let key = target.new_key(gw.keys.as_ref())?;
    let staged = match gw.blobs.put(body, Some(size), &[], None, Some(key.key.seal())).await {
        Ok(staged) => staged,
        Err(err) => return Err(source_read_failure(gw, source, read.failure_or(err)).await),
    };
    let etag = hex::encode(staged.md5());
    let placed = place(gw, staged).await?;
    let part = BlobPart {
        blob: placed.blob_id().to_string(),
        size,
        etag,
        checksums: Default::default(),
        subtree: None,
        subtrees: None,
        offset: None,
        store_etag: None,
        wrapped_key: Some(key.wrapped),
    };
    Ok((part, placed))
}

pub(super) async fn delete_object(
    gw: &Gateway,
    req: S3Request<DeleteObjectInput>,
) -> Result<S3Response<DeleteObjectOutput>> {
    let input = &req.input;
    let bucket = require_bucket(gw, &input.bucket).await?;
    let bypass = gw.bypass_governance(&req, input.bypass_governance_retention);
    let target = VersionRef {
        bucket: input.bucket.clone(),
        key: input.key.clone(),
        version_id: input.version_id.clone().unwrap_or_default(),
    };
    if input.if_match_last_modified_time.is_some() || input.if_match_size.is_some() {
        // Conditions on date and size (directory buckets on AWS) are not evaluated here, and a
        // delete they were meant to stop must not happen regardless.
        return Err(wire::header_not_implemented());
    }
    let if_match = input.if_match.as_ref().map(condition_etag);
    let conditional = if_match.is_some();
    let deleted = gw
        .registry
        .delete_object(caller(&req), target, input.version_id.is_some(), clock::new_id(), bypass, if_match)
        .await;
    // A conditional delete of a key that is not there is NoSuchKey, not a success.
    let deleted = if conditional { deleted? } else { deleted.or_else(absent_version_is_deleted)? };
    Ok(S3Response::new(DeleteObjectOutput {
        delete_marker: deleted.delete_marker.then_some(true),
        version_id: deleted.version_id.and_then(|id| wire::version_id_header(&bucket, &id)),
        ..Default::default()
    }))
}

/// The ETag an `If-Match` names, or `*`.
fn condition_etag(condition: &ETagCondition) -> String {
    match condition {
        ETagCondition::Any => "*".to_owned(),
        ETagCondition::ETag(etag) => etag.value().to_owned(),
    }
}

/// S3 answers success for a delete of a version that is not there.
fn absent_version_is_deleted(err: registry::Error) -> Result<Deleted, registry::Error> {
    match err {
        registry::Error::NoSuchVersion | registry::Error::NoSuchKey => {
            Ok(Deleted { version_id: None, delete_marker: false, event: None })
        }
        other => Err(other),
    }
}

pub(super) async fn delete_objects(
    gw: &Gateway,
    req: S3Request<DeleteObjectsInput>,
) -> Result<S3Response<DeleteObjectsOutput>> {
    let input = &req.input;
    let objects = &input.delete.objects;
    let denied = req.extensions.get::<DeniedDeletes>().map(|d| d.0.as_slice()).unwrap_or_default();
    if objects.len() + denied.len() > wire::MAX_DELETE_KEYS {
        return Err(s3_error!(
            MalformedXML,
            "The XML you provided was not well-formed or did not validate against our published schema"
        )
        .into());
    }
    if objects.iter().any(|o| o.last_modified_time.is_some() || o.size.is_some()) {
        // Conditions on date and size (directory buckets on AWS) are not evaluated here, and
        // the deletes they guard must not happen regardless.
        return Err(wire::header_not_implemented());
    }
    require_bucket(gw, &input.bucket).await?;
    let bypass = gw.bypass_governance(&req, input.bypass_governance_retention);
    // A version id no version can have is the key's own error, NoSuchVersion as S3 answers it
    // in a batch, never a deletion reported done.
    let (well_formed, malformed): (Vec<&ObjectIdentifier>, Vec<&ObjectIdentifier>) =
        objects.iter().partition(|o| o.version_id.as_deref().is_none_or(clock::is_version_id));
    let targets = well_formed
        .iter()
        .map(|o| {
            let target = VersionRef {
                bucket: input.bucket.clone(),
                key: o.key.clone(),
                version_id: o.version_id.clone().unwrap_or_default(),
            };
            // A key's ETag makes its delete conditional, as If-Match does on DeleteObject.
            let if_match = o.e_tag.as_ref().map(|etag| etag.value().to_owned());
            (target, o.version_id.is_some(), clock::new_id(), if_match)
        })
        .collect();
    let outcomes = gw.registry.delete_objects(caller(&req), targets, bypass).await?;
    let quiet = input.delete.quiet == Some(true);
    let mut deleted = Vec::new();
    let refused = |object: &ObjectIdentifier, code: &str, message: &str| s3s::dto::Error {
        code: Some(code.to_owned()),
        key: Some(object.key.clone()),
        message: Some(message.to_owned()),
        version_id: object.version_id.clone(),
    };
    let mut errors: Vec<_> = denied.iter().map(|object| refused(object, "AccessDenied", "Access Denied")).collect();
    errors.extend(
        malformed.into_iter().map(|object| refused(object, "NoSuchVersion", "The specified version does not exist.")),
    );
    for (object, outcome) in well_formed.iter().zip(outcomes) {
        let outcome = if object.e_tag.is_some() { outcome } else { outcome.or_else(absent_version_is_deleted) };
        match outcome {
            Ok(done) if !quiet => deleted.push(DeletedObject {
                key: Some(object.key.clone()),
                version_id: object.version_id.clone(),
                delete_marker: done.delete_marker.then_some(true),
                delete_marker_version_id: if done.delete_marker { done.version_id } else { None },
            }),
            Ok(_) => {}
            Err(err) => {
                let s3 = s3s::S3Error::from(Error::Registry(err));
                errors.push(s3s::dto::Error {
                    code: Some(s3.code().as_str().to_owned()),
                    key: Some(object.key.clone()),
                    message: s3.message().map(str::to_owned),
                    version_id: object.version_id.clone(),
                });
            }
        }
    }
    Ok(S3Response::new(DeleteObjectsOutput {
        deleted: Some(deleted),
        errors: (!errors.is_empty()).then_some(errors),
        ..Default::default()
    }))
}
