//! Multipart uploads: create, upload a part (or copy one), complete, abort, and list.
//!
//! Each part is its own event. Where the blob store keeps parts as blobs of their own (the
//! local store), completion copies no byte: the new version's content is the list of part
//! blobs, read back in order. Where it keeps a multipart upload of its own (an S3 upstream:
//! see [`BlobStore::begin_multipart`]), each part streams into that upload, completion
//! completes it, and the version's parts are successive ranges of its one blob. Either way
//! the object's BLAKE3 comes from the parts' chaining values where their sizes allow.

use blake3::hazmat::ChainingValue;
use registry::Caller;
use registry::acl::ObjectAcl;
use registry::commands::NewVersion;
use registry::event::v1::{
    self, BlobCorrupt, BlobPart, CorruptReason, CorruptSubject, MultipartCreated, ObjectContent, ObjectPut, Origin,
    PartRef, PartUploaded, UploadRef,
};
use registry::queries::{Part, Upload};
use s3s::dto::ChecksumAlgorithm as ChecksumAlgorithm_;
use s3s::dto::*;
use s3s::{S3Request, S3Response, s3_error};

use super::bucket::require_bucket;
use super::checksum::ExpectedChecksums;
use super::encryption::Encryption;
use super::error::{Error, Result};
use super::get_object::{self, checked_read, read_parts};
use super::integrity;
use super::lifecycle_config::{NewVersionExpiry, abort_headers};
use super::object::{
    BodyRole, Placed, check_copy_conditions, copy_as_read, keep_part_hashes, place, record_placed, source_read_failure,
    source_version, store_body,
};
use super::owner::{bucket_owner, initiators};
use super::{Gateway, acl, caller, encryption, wire};
use crate::backend::{BlobError, BlobId, BlobStore, PartToJoin, StoreUpload};
use crate::blake3_tree;
use crate::blake3_tree::Subtrees;
use crate::clock;
use crate::crypto::CustomerKey;
use crate::digest::{ChecksumAlgorithm, ChecksumValue, Checksummer, Md5};
use crate::outboard::{self, GroupHasher, PartHasher, PartHashes};
use crate::test_barrier::Barrier;

/// Parts other than the last must be at least this large.
const MIN_PART_SIZE: u64 = 5 * 1024 * 1024;
/// Part numbers run from 1 to this.
const MAX_PART_NUMBER: i32 = 10_000;
/// The most parts or uploads one listing page returns.
const MAX_LISTED: i32 = 1000;

/// Barriers for tests only (see [`Barrier`]): an UploadPartCopy that has read its source's
/// version and not yet its bytes, and a completion that has read its upload's parts and not
/// yet their bytes.
static PART_COPY_SOURCE_READ: Barrier = Barrier::new("ARTIFACT_STORE_PART_COPY_PAUSE");
static COMPLETION_PARTS_READ: Barrier = Barrier::new("ARTIFACT_STORE_COMPLETION_PAUSE");

/// Reads an upload and checks it belongs to the bucket and key the request names.
async fn require_upload(gw: &Gateway, bucket: &str, key: &str, upload_id: &str) -> Result<Upload> {
    find_upload(gw, bucket, key, upload_id).await?.ok_or_else(|| registry::Error::NoSuchUpload.into())
}

/// The upload in progress `upload_id` of `bucket/key`, if there is one.
async fn find_upload(gw: &Gateway, bucket: &str, key: &str, upload_id: &str) -> Result<Option<Upload>> {
    let id = upload_id.to_owned();
    let upload = gw.registry.read(move |conn| conn.upload(&id)).await?;
    Ok(upload.filter(|u| u.created.bucket == bucket && u.created.key == key))
}

/// The blob store's own upload behind an upload, when the store keeps one.
fn store_upload(created: &MultipartCreated) -> Option<StoreUpload> {
    let recorded = created.store_upload.as_ref()?;
    Some(StoreUpload { blob: BlobId::new(recorded.blob.clone()), upload_id: recorded.upload_id.clone() })
}

fn check_part_number(number: i32) -> Result<u32> {
    if !(1..=MAX_PART_NUMBER).contains(&number) {
        return Err(s3_error!(InvalidArgument, "Part number must be an integer between 1 and 10000, inclusive").into());
    }
    Ok(number.unsigned_abs())
}

pub(super) async fn create_multipart_upload(
    gw: &Gateway,
    mut req: S3Request<CreateMultipartUploadInput>,
) -> Result<S3Response<CreateMultipartUploadOutput>> {
    wire::check_key(&req.input.key)?;
    let asked = encryption::requested(gw, &req)?;
    let acl = acl::write_acl(gw, &req.input.bucket, &req.headers, req.extensions.get()).await?;
    let input = &mut req.input;
    wire::check_metadata_size(input.metadata.as_ref())?;
    let bucket = require_bucket(gw, &input.bucket).await?;
    let encryption = encryption::with_default(gw, &bucket, asked)?;
    let (retention, legal_hold) = lock_headers!(&bucket, input)?;
    let checksum_algorithm = match &input.checksum_algorithm {
        Some(a) => Some(
            ChecksumAlgorithm::parse(a.as_str())
                .ok_or_else(|| s3_error!(InvalidRequest, "Checksum algorithm provided is unsupported."))?,
        ),
        None => None,
    };
    let checksum_type = input.checksum_type.as_ref().map(|t| t.as_str().to_owned());
    if checksum_type.is_some() && checksum_algorithm.is_none() {
        return Err(s3_error!(
            InvalidRequest,
            "The x-amz-checksum-type header can only be used with the x-amz-checksum-algorithm header."
        )
        .into());
    }
    let checksum_type =
        checksum_algorithm.map(|algorithm| multipart_checksum_type(algorithm, checksum_type)).transpose()?;
    let template = ObjectContent {
        content_type: input.content_type.clone(),
        headers: wire::stored_headers(
            input.cache_control.as_ref(),
            input.content_disposition.as_ref(),
            input.content_encoding.as_ref(),
            input.content_language.as_ref(),
            input.expires.as_ref(),
        ),
        user_metadata: wire::user_metadata(input.metadata.take()),
        tags: wire::tags_from_header(input.tagging.as_deref())?,
        checksum_type: checksum_type.clone(),
        ..ObjectContent::default()
    };
    let mut template = template;
    if let Some(encryption) = &encryption {
        encryption.record(&mut template);
    }
    let sse = encryption::answer(gw.keys.as_ref(), &template, encryption.as_ref().and_then(Encryption::customer));
    // Begun before the event: an upload the store began for an event that was never recorded
    // is one no open upload names, which `gc` aborts.
    let store_upload = gw
        .blobs
        .begin_multipart()
        .await?
        .map(|upload| v1::StoreUpload { blob: upload.blob.to_string(), upload_id: upload.upload_id });
    let upload_id = clock::new_id();
    let created = MultipartCreated {
        bucket: input.bucket.clone(),
        key: input.key.clone(),
        upload_id: upload_id.clone(),
        template,
        checksum_algorithm: checksum_algorithm.map(|a| a.as_str().to_owned()),
        retention,
        legal_hold,
        store_upload,
        acl: acl.grants,
        owner: acl.owner,
    };
    let initiated = gw.registry.create_multipart_upload(caller(&req), created).await?;
    let (abort_date, abort_rule_id) =
        abort_headers(&bucket, &req.input.key, initiated.created_at, gw.config.lifecycle.day_ms());
    Ok(S3Response::new(CreateMultipartUploadOutput {
        abort_date,
        abort_rule_id,
        bucket: Some(req.input.bucket.clone()),
        key: Some(req.input.key.clone()),
        upload_id: Some(upload_id),
        checksum_algorithm: req.input.checksum_algorithm.clone(),
        checksum_type: checksum_type.map(ChecksumType::from),
        server_side_encryption: sse.server_side_encryption,
        ssekms_key_id: sse.ssekms_key_id,
        bucket_key_enabled: sse.bucket_key_enabled,
        sse_customer_algorithm: sse.sse_customer_algorithm,
        sse_customer_key_md5: sse.sse_customer_key_md5,
        ..Default::default()
    }))
}

pub(super) async fn upload_part(
    gw: &Gateway,
    mut req: S3Request<UploadPartInput>,
) -> Result<S3Response<UploadPartOutput>> {
    let asked = encryption::requested(gw, &req)?;
    let input = &mut req.input;
    let number = check_part_number(input.part_number)?;
    let length = wire::body_length(input.content_length, &req.headers);
    wire::check_body_size(length)?;
    let _slot = gw.upload_slot(req.extensions.get())?;
    require_bucket(gw, &input.bucket).await?;
    let upload = require_upload(gw, &input.bucket, &input.key, &input.upload_id).await?;
    let mut expected = ExpectedChecksums::from_headers(&req.headers)?;
    if let Some(algorithm) = upload_algorithm(&upload) {
        if let Some(other) = expected.algorithms().into_iter().find(|other| *other != algorithm) {
            tracing::info!(code = "InvalidRequest", upload = %algorithm.as_str(), part = %other.as_str(), "part refused: another checksum algorithm than its upload's");
            return Err(checksum_type_mismatch(algorithm, other).into());
        }
        // A part sent without the upload's checksum gets it all the same, computed as it
        // streams (as S3 computes it): the object's composite checksum is made of every part's.
        expected.requested.get_or_insert(algorithm);
    }
    let offset = expected_offset(gw, &input.upload_id, number, length.and_then(|n| u64::try_from(n).ok())).await?;
    let into = store_upload(&upload.created);
    let key = encryption::part_key(gw, asked.as_ref(), &upload.created.template)?;
    let (stored, placed) = store_body(
        gw,
        input.body.take(),
        length,
        &expected,
        req.trailing_headers.clone(),
        BodyRole::Part { offset, into: into.as_ref().map(|u| (u, number)), key },
    )
    .await?;
    let input = &req.input;
    let part = stored.part;
    let checksums = wire::ChecksumFields::of(&part.checksums);
    let etag = part.etag.clone();
    let target = (input.bucket.as_str(), input.key.as_str(), input.upload_id.as_str());
    record_part(gw, caller(&req), target, placed, (number, part)).await?;
    let sse =
        encryption::answer(gw.keys.as_ref(), &upload.created.template, asked.as_ref().and_then(Encryption::customer));
    Ok(S3Response::new(UploadPartOutput {
        e_tag: Some(wire::etag(&etag)),
        checksum_crc32: checksums.crc32,
        checksum_crc32c: checksums.crc32c,
        checksum_crc64nvme: checksums.crc64nvme,
        checksum_sha1: checksums.sha1,
        checksum_sha256: checksums.sha256,
        server_side_encryption: sse.server_side_encryption,
        ssekms_key_id: sse.ssekms_key_id,
        bucket_key_enabled: sse.bucket_key_enabled,
        sse_customer_algorithm: sse.sse_customer_algorithm,
        sse_customer_key_md5: sse.sse_customer_key_md5,
        ..Default::default()
    }))
}

/// Where part `number` of `length` bytes is taken to start in its object, to hash it there as
/// it streams (see [`blake3_tree`]): after `number - 1` parts of the size of another part of
/// the upload already recorded when that one is larger (this is then the smaller last part),
/// else of its own size. A part whose guess turns out wrong is read back at completion.
async fn expected_offset(gw: &Gateway, upload_id: &str, number: u32, length: Option<u64>) -> Result<Option<u64>> {
    let Some(length) = length else { return Ok(None) };
    if number == 1 {
        return Ok(Some(0));
    }
    let id = upload_id.to_owned();
    let recorded = gw.registry.read(move |conn| conn.parts(&id, 0, 2)).await?;
    let larger = recorded.iter().find(|p| p.number != number).map(|p| p.part.size).filter(|&size| size > length);
    Ok(u64::from(number - 1).checked_mul(larger.unwrap_or(length)))
}

/// Records `part`, whose blob is `placed`, as part `number` of the upload `upload_id` of
/// `bucket/key` (`v1.multipart.part.uploaded`).
async fn record_part(
    gw: &Gateway,
    caller: Caller,
    (bucket, key, upload_id): (&str, &str, &str),
    placed: Placed,
    (number, part): (u32, BlobPart),
) -> Result<registry::Event> {
    let uploaded = PartUploaded {
        bucket: bucket.to_owned(),
        key: key.to_owned(),
        upload_id: upload_id.to_owned(),
        part_number: number,
        part,
    };
    record_placed(gw, placed, |placement| gw.registry.upload_part(caller.clone(), uploaded.clone(), placement)).await
}

/// Parses `x-amz-copy-source-range: bytes=first-last` against the source size.
fn copy_range(range: Option<&str>, size: u64) -> Result<Option<(u64, u64)>> {
    let Some(range) = range else {
        return Ok((size > 0).then(|| (0, size - 1)));
    };
    let invalid = || {
        s3_error!(
            InvalidArgument,
            "The x-amz-copy-source-range value must be of the form bytes=first-last where first and last are the zero-based offsets of the first and last bytes to copy"
        )
    };
    let (first, last) = range.strip_prefix("bytes=").and_then(|r| r.split_once('-')).ok_or_else(invalid)?;
    let first: u64 = first.parse().map_err(|_| invalid())?;
    let last: u64 = last.parse().map_err(|_| invalid())?;
    if first > last {
        return Err(s3_error!(InvalidArgument, "Range specified is not valid for source object of size: {size}").into());
    }
    // Past the source's end: S3 answers as it does a GET range it cannot satisfy.
    if last >= size {
        return Err(s3_error!(InvalidRange, "The requested range is not satisfiable").into());
    }
    Ok(Some((first, last)))
}

pub(super) async fn upload_part_copy(
    gw: &Gateway,
    req: S3Request<UploadPartCopyInput>,
) -> Result<S3Response<UploadPartCopyOutput>> {
    // A part copy reads its source's bytes after its version: a source deleted or replaced
    // meanwhile may have lost its blobs to gc, and the copy answers as one made then would.
    copy_as_read(gw, &req.input.copy_source, part_copy_as_read(gw, &req)).await
}

/// One attempt at a part copy, on its source as it reads it.
async fn part_copy_as_read(
    gw: &Gateway,
    req: &S3Request<UploadPartCopyInput>,
) -> Result<S3Response<UploadPartCopyOutput>> {
    let asked = encryption::requested(gw, req)?;
    let input = &req.input;
    let number = check_part_number(input.part_number)?;
    require_bucket(gw, &input.bucket).await?;
    let upload = require_upload(gw, &input.bucket, &input.key, &input.upload_id).await?;
    let (src_bucket, src_key, src_version_id) = wire::copy_source(&input.copy_source)?;
    let source_bucket = require_bucket(gw, &src_bucket).await?;
    let source = source_version(gw, &src_bucket, &src_key, src_version_id.as_deref()).await?;
    check_copy_conditions(
        &source,
        input.copy_source_if_match.as_ref(),
        input.copy_source_if_none_match.as_ref(),
        input.copy_source_if_modified_since.as_ref(),
        input.copy_source_if_unmodified_since.as_ref(),
    )?;
    let source_key = encryption::read_key(gw, req, &source.content, encryption::COPY_SOURCE_CUSTOMER)?;
    let span = copy_range(input.copy_source_range.as_deref(), source.content.size)?;
    PART_COPY_SOURCE_READ.reach().await;

    // The range streams through the gateway (read from the source blobs, checked against the
    // source's BLAKE3, stored again) even where the store could copy it itself: the part's MD5
    // and BLAKE3 chaining value are computed on the way, as for an uploaded part, and damaged
    // bytes must not become a part whose digests vouch for them.
    let read = integrity::SourceRead::default();
    let (body, length): (crate::backend::BodyStream, u64) = match span {
        Some(span) => {
            let range = input.copy_source_range.clone();
            let source_key = source_key.as_ref().map(|c| &c.key);
            let checked = match checked_read(gw, caller(req), &source, range, span, None, source_key).await {
                Err(Error::Blob(err)) => return Err(source_read_failure(gw, &source, err).await),
                checked => checked?,
            };
            (read.body(checked), span.1 - span.0 + 1)
        }
        None => (Box::pin(futures::stream::empty()), 0),
    };
    let part_offset = expected_offset(gw, &input.upload_id, number, Some(length)).await?;
    let key = encryption::part_key(gw, asked.as_ref(), &upload.created.template)?;
    let seal = key.as_ref().map(|k| k.key.seal());
    // The copied part gets the upload's checksum, as an uploaded one does.
    let algorithms: Vec<ChecksumAlgorithm> = upload_algorithm(&upload).into_iter().collect();
    let staged = match store_upload(&upload.created) {
        Some(into) => gw.blobs.put_part((&into, number), body, Some(length), &algorithms, part_offset, seal).await,
        None => gw.blobs.put(body, Some(length), &algorithms, part_offset, seal).await,
    };
    let staged = match staged {
        Ok(staged) => staged,
        Err(err) => return Err(source_read_failure(gw, &source, read.failure_or(err)).await),
    };
    let (size, etag) = (staged.size(), hex::encode(staged.md5()));
    let checksums = wire::checksum_map(staged.checksums());
    let store_etag = staged.store_etag().map(str::to_owned);
    let part_hashes = staged.part_hashes().cloned();
    let placed = place(gw, staged).await?;
    let subtrees = keep_part_hashes(gw, part_hashes).await;
    let answered = wire::ChecksumFields::of(&checksums);
    let part = BlobPart {
        blob: placed.blob_id().to_string(),
        size,
        etag: etag.clone(),
        checksums,
        subtree: None,
        subtrees,
        offset: None,
        store_etag,
        wrapped_key: key.map(|k| k.wrapped),
    };
    let target = (input.bucket.as_str(), input.key.as_str(), input.upload_id.as_str());
    let event = record_part(gw, caller(req), target, placed, (number, part)).await?;
    // The range of the source read on the caller's behalf, as a GET of it would be (AWS logs
    // REST.COPY.PART_GET): the part's own event does not name its source.
    if gw.records_retrievals() {
        let read = get_object::version_ref(&source);
        let range = input.copy_source_range.clone();
        get_object::record_retrieval(&gw.registry, caller(req), read, "COPY_PART", length, range);
    }
    let sse =
        encryption::answer(gw.keys.as_ref(), &upload.created.template, asked.as_ref().and_then(Encryption::customer));
    Ok(S3Response::new(UploadPartCopyOutput {
        copy_part_result: Some(CopyPartResult {
            e_tag: Some(wire::etag(&etag)),
            last_modified: Some(wire::whole_seconds(event.created_at)),
            checksum_crc32: answered.crc32,
            checksum_crc32c: answered.crc32c,
            checksum_crc64nvme: answered.crc64nvme,
            checksum_sha1: answered.sha1,
            checksum_sha256: answered.sha256,
        }),
        copy_source_version_id: wire::copy_source_version_id(
            &source_bucket,
            src_version_id.is_some(),
            &source.version_id,
        ),
        server_side_encryption: sse.server_side_encryption,
        ssekms_key_id: sse.ssekms_key_id,
        bucket_key_enabled: sse.bucket_key_enabled,
        sse_customer_algorithm: sse.sse_customer_algorithm,
        sse_customer_key_md5: sse.sse_customer_key_md5,
        ..Default::default()
    }))
}

/// The multipart ETag: the MD5 of the parts' binary MD5s, then `-N`.
fn multipart_etag(parts: &[BlobPart]) -> String {
    let mut md5 = Md5::new();
    for part in parts {
        let mut digest = [0u8; 16];
        // Part ETags are the hex MD5s we computed; anything else would be our own bug.
        if hex::decode_to_slice(&part.etag, &mut digest).is_ok() {
            md5.update(&digest);
        }
    }
    format!("{}-{}", hex::encode(md5.finalize()), parts.len())
}

/// The COMPOSITE checksum: the checksum of the parts' binary checksums, then `-N`.
fn composite_checksum(algorithm: ChecksumAlgorithm, parts: &[BlobPart]) -> Option<String> {
    let mut checksummer = Checksummer::new(&[algorithm]);
    for part in parts {
        let value = ChecksumValue::from_base64(algorithm, part.checksums.get(algorithm.as_str())?)?;
        checksummer.update(&value.digest);
    }
    let value = checksummer.finish().get(algorithm)?.to_base64();
    Some(format!("{value}-{}", parts.len()))
}

/// The COMPOSITE checksum of `parts` by the upload's algorithm, as a version's checksums.
fn composite_checksums(algorithm: Option<ChecksumAlgorithm>, parts: &[BlobPart]) -> registry::event::v1::StringMap {
    algorithm
        .and_then(|algorithm| Some((algorithm.as_str().to_owned(), composite_checksum(algorithm, parts)?)))
        .into_iter()
        .collect()
}

/// The FULL_OBJECT CRC of the object, combined from its parts' own CRCs (see
/// [`ChecksumValue::followed_by`]) without reading them; `None` for a SHA algorithm or when a
/// part has no checksum of `algorithm`, when the object is read once to compute it.
fn combined_crc(algorithm: ChecksumAlgorithm, parts: &[BlobPart]) -> Option<String> {
    let mut combined: Option<ChecksumValue> = None;
    for part in parts {
        let value = ChecksumValue::from_base64(algorithm, part.checksums.get(algorithm.as_str())?)?;
        combined = Some(match combined {
            None => value,
            Some(before) => before.followed_by(&value, part.size)?,
        });
    }
    combined.map(|value| value.to_base64())
}

/// Checks the object checksum a completion claims (`x-amz-checksum-*`: the whole object's for
/// a FULL_OBJECT upload, the checksum of the parts' checksums for a COMPOSITE one, with or
/// without its `-<parts>` suffix) against the one computed, before anything is recorded.
fn check_object_checksum(
    input: &CompleteMultipartUploadInput,
    upload_algorithm: Option<ChecksumAlgorithm>,
    computed: &registry::event::v1::StringMap,
) -> Result<()> {
    let claims = [
        (ChecksumAlgorithm::Crc32, &input.checksum_crc32),
        (ChecksumAlgorithm::Crc32c, &input.checksum_crc32c),
        (ChecksumAlgorithm::Crc64Nvme, &input.checksum_crc64nvme),
        (ChecksumAlgorithm::Sha1, &input.checksum_sha1),
        (ChecksumAlgorithm::Sha256, &input.checksum_sha256),
    ];
    for (algorithm, claimed) in claims {
        let Some(claimed) = claimed else { continue };
        let Some(value) = computed.get(algorithm.as_str()) else {
            if upload_algorithm == Some(algorithm) {
                return Err(s3_error!(
                    InvalidRequest,
                    "The upload's parts carry no {algorithm} checksum to check the complete request's against"
                )
                .into());
            }
            let created = upload_algorithm.map_or("null", ChecksumAlgorithm::as_str);
            return Err(s3_error!(
                InvalidRequest,
                "The upload was created using the {created} checksum algorithm but the complete request specified {algorithm}"
            )
            .into());
        };
        // A claim with its `-<parts>` suffix must name the part count too.
        let matches = match claimed.split_once('-') {
            Some(_) => claimed == value,
            None => value.split_once('-').map_or(value.as_str(), |(value, _)| value) == claimed,
        };
        if !matches {
            return Err(
                s3_error!(BadDigest, "The {algorithm} you specified did not match the calculated checksum.").into()
            );
        }
    }
    Ok(())
}

/// The checksum type of an upload with `algorithm`, from the one asked for (`asked`), as S3
/// pairs them: CRC-64/NVME is a full-object checksum only (and so by default), SHA-1 and
/// SHA-256 are composite only, and the CRC-32s are either (composite by default).
fn multipart_checksum_type(algorithm: ChecksumAlgorithm, asked: Option<String>) -> Result<String> {
    let full_object_only = algorithm == ChecksumAlgorithm::Crc64Nvme;
    let composite_only = matches!(algorithm, ChecksumAlgorithm::Sha1 | ChecksumAlgorithm::Sha256);
    let default = if full_object_only { ChecksumType::FULL_OBJECT } else { ChecksumType::COMPOSITE };
    let asked = asked.unwrap_or_else(|| default.to_owned());
    if (full_object_only && asked != ChecksumType::FULL_OBJECT) || (composite_only && asked != ChecksumType::COMPOSITE)
    {
        tracing::info!(code = "InvalidRequest", algorithm = algorithm.as_str(), checksum_type = %asked, "upload refused: a checksum type its algorithm does not have");
        return Err(s3s::S3Error::with_message(
            s3s::S3ErrorCode::InvalidRequest,
            format!(
                "The {asked} checksum type cannot be used with the {} checksum algorithm.",
                algorithm.as_str().to_ascii_lowercase()
            ),
        )
        .into());
    }
    Ok(asked)
}

/// The checksum algorithm an upload was created with, if any.
fn upload_algorithm(upload: &Upload) -> Option<ChecksumAlgorithm> {
    upload.created.checksum_algorithm.as_deref().and_then(ChecksumAlgorithm::parse)
}

/// S3's refusal of a checksum of another algorithm than the upload's.
fn checksum_type_mismatch(expected: ChecksumAlgorithm, actual: ChecksumAlgorithm) -> s3s::S3Error {
    s3s::S3Error::with_message(
        s3s::S3ErrorCode::InvalidRequest,
        format!(
            "Checksum Type mismatch occurred, expected checksum Type: {}, actual checksum Type: {}",
            expected.as_str().to_ascii_lowercase(),
            actual.as_str().to_ascii_lowercase()
        ),
    )
}

/// Picks the stored parts the completion names, checking order, presence, ETags, the
/// checksums it names for them (each must be the part's, of the upload's algorithm: S3
/// answers `InvalidPart` otherwise) and sizes.
fn select_parts(
    requested: &[CompletedPart],
    stored: &[Part],
    algorithm: Option<ChecksumAlgorithm>,
) -> Result<Vec<(u32, BlobPart)>> {
    if requested.is_empty() {
        return Err(s3_error!(
            MalformedXML,
            "The XML you provided was not well-formed or did not validate against our published schema"
        )
        .into());
    }
    let mut selected = Vec::with_capacity(requested.len());
    let mut previous = 0;
    for wanted in requested {
        let number = wanted.part_number.and_then(|n| u32::try_from(n).ok()).unwrap_or(0);
        if number <= previous {
            return Err(registry::Error::InvalidPartOrder.into());
        }
        previous = number;
        let part = stored
            .iter()
            .find(|p| p.number == number)
            .filter(|p| wanted.e_tag.as_ref().is_none_or(|e| e.value() == p.part.etag))
            .filter(|p| named_checksums_hold(wanted, &p.part, algorithm))
            .ok_or(registry::Error::InvalidPart { number })?;
        selected.push((number, part.part.clone()));
    }
    if let Some(((number, _), _)) =
        selected.iter().zip(1..).find(|((_, p), i)| *i < selected.len() && p.size < MIN_PART_SIZE)
    {
        return Err(registry::Error::EntityTooSmall { number: *number }.into());
    }
    Ok(selected)
}

/// Whether the checksums a completion names for a part are the part's: of the upload's
/// algorithm, and equal to the value recorded at its upload when one was.
fn named_checksums_hold(wanted: &CompletedPart, part: &BlobPart, algorithm: Option<ChecksumAlgorithm>) -> bool {
    let named = [
        (ChecksumAlgorithm::Crc32, &wanted.checksum_crc32),
        (ChecksumAlgorithm::Crc32c, &wanted.checksum_crc32c),
        (ChecksumAlgorithm::Crc64Nvme, &wanted.checksum_crc64nvme),
        (ChecksumAlgorithm::Sha1, &wanted.checksum_sha1),
        (ChecksumAlgorithm::Sha256, &wanted.checksum_sha256),
    ];
    named.into_iter().all(|(named_algorithm, value)| {
        let Some(value) = value else { return true };
        algorithm == Some(named_algorithm)
            && part.checksums.get(named_algorithm.as_str()).is_none_or(|kept| kept == value)
    })
}

/// Ends the store's own upload with the selected parts, if the store keeps one, and returns
/// the version's parts: then successive ranges of its one blob, else the part blobs as they are.
async fn join_parts(
    blobs: &dyn BlobStore,
    created: &MultipartCreated,
    selected: Vec<(u32, BlobPart)>,
) -> Result<Vec<BlobPart>> {
    let Some(upload) = store_upload(created) else {
        return Ok(selected.into_iter().map(|(_, p)| p).collect());
    };
    let named: Vec<PartToJoin> = selected
        .iter()
        .map(|(number, p)| PartToJoin {
            number: *number,
            etag: p.store_etag.clone().unwrap_or_default(),
            size: crate::crypto::stored_size(p),
        })
        .collect();
    let offsets = blobs.complete_multipart(&upload, &named).await?;
    Ok(selected
        .into_iter()
        .zip(offsets)
        .map(|((_, p), offset)| BlobPart { blob: upload.blob.to_string(), offset: Some(offset), store_etag: None, ..p })
        .collect())
}

/// The object's BLAKE3 and outboard from its parts' subtrees (see [`blake3_tree`]): each
/// part's recorded ones where it was hashed at the offset it has in the object, else read back
/// and hashed there now. The outboard is empty when a part's kept leaves are missing (the first
/// ranged read computes it). `None` when a part but the last is not a whole number of chunks
/// (no part after it starts on a chunk boundary), or for an object whose tree has no subtree
/// below its root (one power-of-two part, or one chunk): the object is then read once whole.
async fn merge_part_hashes(
    gw: &Gateway,
    alarm: &PartAlarm,
    numbers: &[u32],
    parts: &[BlobPart],
    customer: Option<&CustomerKey>,
) -> Result<Option<(String, Vec<ChainingValue>)>> {
    let size: u64 = parts.iter().map(|p| p.size).sum();
    // Where each part's pieces are, all known before any part is read back.
    let mut placed = Vec::with_capacity(parts.len());
    let mut offset = 0;
    for (&number, part) in numbers.iter().zip(parts).filter(|(_, p)| p.size > 0) {
        let Some(places) = blake3_tree::pieces(offset, part.size) else { return Ok(None) };
        placed.push((number, part, offset, places));
        offset += part.size;
    }
    if placed.iter().map(|(.., places)| places.len()).sum::<usize>() < 2 {
        // One piece is the root itself: it has no chaining value to merge.
        return Ok(None);
    }
    let (mut pieces, mut leaves) = (Subtrees::new(), Subtrees::new());
    // Parts whose leaves were kept at upload: their name and their leaves' places.
    let mut kept = Vec::new();
    for (number, part, offset, places) in placed {
        let leaf_places = outboard::leaves_of(&places);
        if let Some(cvs) = recorded_pieces(number, part, offset, places.len()) {
            pieces.insert_all(&places, &cvs);
            kept.push((outboard::part_name(&cvs.concat()), leaf_places));
        } else {
            let hashes = hash_at(gw, alarm, (number, part), offset, customer).await?;
            pieces.insert_all(&places, &hashes.pieces);
            leaves.insert_all(&leaf_places, &hashes.leaves);
        }
    }
    let Some(root) = pieces.root(size) else { return Ok(None) };
    let names = kept.iter().map(|(name, places)| (*name, places.len())).collect();
    let mut complete = true;
    for ((_, places), loaded) in kept.iter().zip(gw.outboards.part_leaves(names).await) {
        match loaded {
            Some(cvs) => leaves.insert_all(places, &cvs),
            None => complete = false,
        }
    }
    let groups = (0..outboard::groups(size)).map(|g| {
        let at = g * outboard::GROUP;
        leaves.non_root(at, outboard::GROUP.min(size - at))
    });
    let outboard = complete.then(|| groups.collect::<Option<Vec<_>>>()).flatten();
    let outboard = outboard.filter(|groups| outboard::matches(groups, &root, size)).unwrap_or_default();
    Ok(Some((root.to_hex().to_string(), outboard)))
}

/// The chaining values of a part's pieces recorded at its upload, if it was hashed at
/// `offset` (see [`BlobPart::subtrees`]) into `count` pieces.
fn recorded_pieces(number: u32, part: &BlobPart, offset: u64, count: usize) -> Option<Vec<ChainingValue>> {
    let hashed_at = match &part.subtrees {
        Some(subtrees) => subtrees.offset,
        None => u64::from(number - 1).checked_mul(part.size)?,
    };
    let bytes = hex::decode(part.recorded_subtrees()?).ok()?;
    let whole = hashed_at == offset && bytes.len() == count * 32;
    whole.then(|| bytes.chunks_exact(32).map(|cv| cv.try_into().expect("chunks of 32 bytes")).collect())
}

/// Whether completing an upload of these parts reads any of them back: what
/// [`merge_part_hashes`] and the FULL_OBJECT checksum decide, asked before the store's upload
/// is completed.
fn reads_back(numbers: &[u32], parts: &[BlobPart], full_object: Option<ChecksumAlgorithm>) -> bool {
    if full_object.is_some_and(|algorithm| combined_crc(algorithm, parts).is_none()) {
        return true;
    }
    let mut offset = 0;
    let mut pieces = 0;
    for (&number, part) in numbers.iter().zip(parts).filter(|(_, p)| p.size > 0) {
        let Some(places) = blake3_tree::pieces(offset, part.size) else { return true };
        if recorded_pieces(number, part, offset, places.len()).is_none() {
            return true;
        }
        pieces += places.len();
        offset += part.size;
    }
    pieces < 2
}

/// The hashes of one stored part read back and hashed at `offset` of its object, the part
/// checked against its own digest as it is read (see [`PartCheck`]).
async fn hash_at(
    gw: &Gateway,
    alarm: &PartAlarm,
    (number, part): (u32, &BlobPart),
    offset: u64,
    customer: Option<&CustomerKey>,
) -> Result<PartHashes> {
    use futures::StreamExt as _;
    let unhashable = || super::Error::internal("a part does not start on a chunk boundary");
    let mut hasher = PartHasher::at(offset, part.size).ok_or_else(unhashable)?;
    let mut check = PartCheck::new(part);
    let mut stream = Box::pin(read_parts(gw, std::slice::from_ref(part), (0, part.size - 1), customer));
    while let Some(chunk) = stream.next().await {
        let chunk = match chunk {
            Ok(chunk) => chunk,
            Err(err) => return Err(alarm.store_error(number, part, err).await),
        };
        // Hashing a large part takes a while: keep it off the async workers.
        (hasher, check) = tokio::task::spawn_blocking(move || {
            let (mut hasher, mut check) = (hasher, check);
            hasher.update(&chunk);
            check.update(&chunk);
            (hasher, check)
        })
        .await
        .map_err(|e| super::Error::internal(format!("hashing task failed: {e}")))?;
    }
    if !check.holds(part) {
        return Err(alarm.raise(number, part, CorruptReason::DigestMismatch).await);
    }
    match hasher.finish() {
        Some(hashes) => Ok(hashes),
        None => Err(alarm.raise(number, part, CorruptReason::DigestMismatch).await),
    }
}

/// Reads the parts back once to compute the whole object's BLAKE3 and outboard (and a
/// FULL_OBJECT checksum when the upload asked for one), each part checked against its own
/// digest as it is read (see [`PartCheck`]).
async fn hash_whole(
    gw: &Gateway,
    alarm: &PartAlarm,
    (numbers, parts): (&[u32], &[BlobPart]),
    full_object: Option<ChecksumAlgorithm>,
    customer: Option<&CustomerKey>,
) -> Result<(String, Vec<ChainingValue>, Option<String>)> {
    use futures::StreamExt as _;
    let mut hashers = (GroupHasher::new(), Checksummer::new(&full_object.into_iter().collect::<Vec<_>>()));
    for (&number, part) in numbers.iter().zip(parts).filter(|(_, p)| p.size > 0) {
        let mut check = PartCheck::new(part);
        let mut stream = Box::pin(read_parts(gw, std::slice::from_ref(part), (0, part.size - 1), customer));
        while let Some(chunk) = stream.next().await {
            let chunk = match chunk {
                Ok(chunk) => chunk,
                Err(err) => return Err(alarm.store_error(number, part, err).await),
            };
            // Hashing a large object takes a while: keep it off the async workers.
            (hashers, check) = tokio::task::spawn_blocking(move || {
                let ((mut hasher, mut checksummer), mut check) = (hashers, check);
                hasher.update(&chunk);
                checksummer.update(&chunk);
                check.update(&chunk);
                ((hasher, checksummer), check)
            })
            .await
            .map_err(|e| super::Error::internal(format!("hashing task failed: {e}")))?;
        }
        if !check.holds(part) {
            return Err(alarm.raise(number, part, CorruptReason::DigestMismatch).await);
        }
    }
    let (hasher, checksummer) = hashers;
    let checksum = full_object.and_then(|a| checksummer.finish().get(a).map(ChecksumValue::to_base64));
    let (root, outboard) = hasher.finish();
    Ok((root.to_hex().to_string(), outboard, checksum))
}

/// The digest a stored part must still match when completion reads it back, so that bytes
/// damaged since their upload are refused rather than hashed into the new version's digest:
/// the BLAKE3 subtrees its event recorded, where it recorded them (a part's blob is then named
/// by them: see [`outboard::BlobHasher`]); else the BLAKE3 that names its blob where the blob
/// is the part alone and unencrypted (the local store); else the MD5 its ETag is (an
/// encrypted blob's name is keyed by its data key).
enum PartCheck {
    Subtrees(Box<PartHasher>),
    Blake3(Box<blake3::Hasher>),
    Md5(Md5),
}

impl PartCheck {
    fn new(part: &BlobPart) -> Self {
        if let Some(hasher) = part.subtrees.as_ref().and_then(|s| PartHasher::at(s.offset, part.size)) {
            Self::Subtrees(Box::new(hasher))
        } else if part.offset.is_none() && part.wrapped_key.is_none() && blake3::Hash::from_hex(&part.blob).is_ok() {
            Self::Blake3(Box::new(blake3::Hasher::new()))
        } else {
            Self::Md5(Md5::new())
        }
    }

    fn update(&mut self, data: &[u8]) {
        match self {
            Self::Subtrees(hasher) => hasher.update(data),
            Self::Blake3(hasher) => {
                hasher.update(data);
            }
            Self::Md5(md5) => md5.update(data),
        }
    }

    /// Whether the bytes read are the part's.
    fn holds(self, part: &BlobPart) -> bool {
        match self {
            Self::Subtrees(hasher) => match (hasher.finish(), &part.subtrees) {
                (Some(hashes), Some(recorded)) => hex::encode(hashes.pieces.concat()) == recorded.chaining_values,
                _ => false,
            },
            Self::Blake3(hasher) => hasher.finalize().to_hex().as_str() == part.blob,
            Self::Md5(md5) => hex::encode(md5.finalize()) == part.etag,
        }
    }
}

/// Reports a stored part found damaged, missing or short while completion read it back: a log
/// line naming the S3 code, the metric, and a `v1.blob.corrupt` event naming the upload and
/// the part (recorded without waiting: the completion is refused either way). Unless the upload
/// ended meanwhile (see [`PartAlarm::ended`]).
struct PartAlarm {
    registry: registry::Registry,
    caller: Caller,
    upload: UploadRef,
}

impl PartAlarm {
    async fn raise(&self, number: u32, part: &BlobPart, reason: CorruptReason) -> super::Error {
        let UploadRef { bucket, key, upload_id } = &self.upload;
        if self.ended().await {
            tracing::info!(
                code = "NoSuchUpload",
                reason = reason.as_str(),
                bucket = %bucket,
                key = %key,
                upload_id = %upload_id,
                part_number = number,
                "the upload ended while its completion read its parts back; the completion was refused"
            );
            return registry::Error::NoSuchUpload.into();
        }
        tracing::error!(
            code = "InternalError",
            reason = reason.as_str(),
            bucket = %bucket,
            key = %key,
            upload_id = %upload_id,
            part_number = number,
            blob = %part.blob,
            "a stored part failed its integrity check; the upload was not completed"
        );
        crate::metrics::blob_corrupt(reason.as_str());
        let subject = CorruptSubject::Part(PartRef {
            bucket: bucket.clone(),
            key: key.clone(),
            upload_id: upload_id.clone(),
            part_number: number,
        });
        let corrupt = BlobCorrupt { subject, blobs: vec![part.blob.clone()], reason, range: None };
        let lost = |err: registry::Error| tracing::error!(error = %err, "a v1.blob.corrupt record was lost");
        if let Err(err) = self.registry.record_corruption(self.caller.clone(), corrupt, lost) {
            lost(err);
        }
        s3_error!(InternalError, "A stored part of the upload is damaged.").into()
    }

    /// A store's error while reading `part` back: a verdict on its bytes raises the alarm;
    /// any other error (an unreachable upstream) passes as it is.
    async fn store_error(&self, number: u32, part: &BlobPart, err: BlobError) -> super::Error {
        match integrity::verdict(&err) {
            Some(reason) => self.raise(number, part, reason).await,
            None => err.into(),
        }
    }

    /// Whether the upload ended (aborted, or completed by another request) after this
    /// completion read its parts: its parts' bytes are gc's to take then, or the store's
    /// upload is gone, which is no damage. The completion answers as one made a moment later.
    async fn ended(&self) -> bool {
        let id = self.upload.upload_id.clone();
        matches!(self.registry.read(move |conn| conn.upload(&id)).await, Ok(None))
    }
}

pub(super) async fn complete_multipart_upload(
    gw: &Gateway,
    req: S3Request<CompleteMultipartUploadInput>,
) -> Result<S3Response<CompleteMultipartUploadOutput>> {
    let input = &req.input;
    let bucket = require_bucket(gw, &input.bucket).await?;
    let requested = input.multipart_upload.as_ref().and_then(|m| m.parts.clone()).unwrap_or_default();
    let condition = super::object::write_condition(input.if_match.as_ref(), input.if_none_match.as_ref())?;
    // The object's URL, as AWS gives it: the request's path names the object, encoded as the
    // client encoded it, path-style or virtual-hosted.
    let location = format!("{}{}", gw.origin_of(&req).unwrap_or_default(), req.uri.path());
    let Some(upload) = find_upload(gw, &input.bucket, &input.key, &input.upload_id).await? else {
        return completed_before(gw, &bucket, input, &requested, location).await;
    };
    // AWS: a checksum type other than the one the upload was created with "will result in a
    // BadDigest error". An upload created without a checksum has no type to contradict (AWS
    // gives such uploads its default, which the gateway does not compute).
    if let (Some(asked), Some(created)) = (&input.checksum_type, &upload.created.template.checksum_type)
        && asked.as_str() != created
    {
        return Err(s3_error!(
            BadDigest,
            "The upload was created with the {created} checksum type but the complete request specified {}",
            asked.as_str()
        )
        .into());
    }
    let customer = encryption::completion_key(gw, &req, &upload.created.template)?;
    let customer = customer.as_ref().map(|c| &c.key);
    let id = input.upload_id.clone();
    let stored = gw.registry.read(move |conn| conn.parts(&id, 0, usize::MAX)).await?;
    let selected = select_parts(&requested, &stored, upload_algorithm(&upload))?;
    COMPLETION_PARTS_READ.reach().await;
    // Checked before the store's own upload is completed, so that the client can try again.
    let size: u64 = selected.iter().map(|(_, p)| p.size).sum();
    if input.mpu_object_size.is_some_and(|claimed| u64::try_from(claimed).ok() != Some(size)) {
        return Err(s3_error!(
            InvalidRequest,
            "The provided 'x-amz-mp-object-size' header value does not match what was computed: {size}"
        )
        .into());
    }
    let algorithm = upload_algorithm(&upload);
    let full_object = upload.created.template.checksum_type.as_deref() == Some(ChecksumType::FULL_OBJECT);
    // A composite checksum comes from the parts' own: it is known, and a claim checked against
    // it, before the store's upload is completed, so that the client can try again.
    let composite = if full_object {
        None
    } else {
        let selected_parts: Vec<BlobPart> = selected.iter().map(|(_, part)| part.clone()).collect();
        let composite = composite_checksums(algorithm, &selected_parts);
        check_object_checksum(input, algorithm, &composite)?;
        Some(composite)
    };
    let expected_parts = selected.iter().map(|(n, p)| (*n, p.etag.clone())).collect();
    let numbers: Vec<u32> = selected.iter().map(|(n, _)| *n).collect();
    let full_object_algorithm = algorithm.filter(|_| full_object);
    // Parts under a customer's key are read back only with it: refused now, while the client
    // can still try again with it, not once the store's upload is completed.
    if encryption::is_customer(&upload.created.template) && customer.is_none() {
        let selected_parts: Vec<BlobPart> = selected.iter().map(|(_, part)| part.clone()).collect();
        if reads_back(&numbers, &selected_parts, full_object_algorithm) {
            return Err(s3_error!(
                InvalidRequest,
                "The parts of this upload are encrypted with a customer-provided key, and completing it reads them back: the request must include that key."
            )
            .into());
        }
    }
    let alarm = PartAlarm {
        registry: gw.registry.clone(),
        caller: caller(&req),
        upload: UploadRef { bucket: input.bucket.clone(), key: input.key.clone(), upload_id: input.upload_id.clone() },
    };
    // If anything below fails after the store's upload was completed, nothing is recorded: its
    // object is then a blob no version names, which `gc` removes.
    let parts = match join_parts(gw.blobs.as_ref(), &upload.created, selected).await {
        Ok(parts) => parts,
        Err(err) => {
            if alarm.ended().await {
                tracing::info!(error = %err, "the upload ended while its completion joined its parts");
                return completed_before(gw, &bucket, input, &requested, location).await;
            }
            return Err(err);
        }
    };
    let combined = full_object_algorithm.map(|algorithm| combined_crc(algorithm, &parts));
    // A FULL_OBJECT checksum that cannot be combined reads the object anyway: read it once.
    let merged = match combined {
        Some(None) => None,
        _ => merge_part_hashes(gw, &alarm, &numbers, &parts, customer).await?,
    };
    let (blake3, outboard, full_checksum) = match (merged, combined) {
        (Some((blake3, outboard)), combined) => (blake3, outboard, combined.flatten()),
        (None, _) => hash_whole(gw, &alarm, (&numbers, &parts), full_object_algorithm, customer).await?,
    };
    let part_keys: Vec<[u8; 32]> =
        parts.iter().filter_map(|p| outboard::part_name_of_hex(p.recorded_subtrees()?)).collect();
    // The chaining values served their purpose; the version's parts don't carry them.
    let parts: Vec<BlobPart> = parts.into_iter().map(|p| BlobPart { subtree: None, subtrees: None, ..p }).collect();
    let checksums = match composite {
        Some(composite) => composite,
        None => {
            let mut checksums = registry::event::v1::StringMap::new();
            if let (Some(algorithm), Some(value)) = (algorithm, full_checksum) {
                checksums.insert(algorithm.as_str().to_owned(), value);
            }
            // A whole-object checksum is known only now that the object was read.
            check_object_checksum(input, algorithm, &checksums)?;
            checksums
        }
    };

    let template = upload.created.template;
    let content = ObjectContent {
        size: parts.iter().map(|p| p.size).sum(),
        etag: multipart_etag(&parts),
        blake3,
        checksums,
        parts,
        ..template
    };
    let put = ObjectPut {
        bucket: input.bucket.clone(),
        key: input.key.clone(),
        version_id: clock::new_id(),
        content,
        origin: Origin::Multipart { upload_id: input.upload_id.clone() },
        retention: upload.created.retention,
        legal_hold: upload.created.legal_hold,
    };
    let content = put.content.clone();
    let expiry = NewVersionExpiry::of(&bucket, &put);
    let acl = ObjectAcl { owner: upload.created.owner.clone(), grants: upload.created.acl.clone() };
    let new = NewVersion { acl, put, condition, placement: None };
    let legal_hold = new.put.legal_hold;
    let recorded =
        match gw.registry.complete_multipart_upload(caller(&req), input.upload_id.clone(), expected_parts, new).await {
            Ok(recorded) => recorded,
            // Another completion of the same upload committed first: its answer is this one's.
            Err(registry::Error::NoSuchUpload) => {
                return completed_before(gw, &bucket, input, &requested, location).await;
            }
            Err(err) => return Err(err.into()),
        };
    if let Ok(root) = blake3::Hash::from_hex(&content.blake3) {
        gw.outboards.keep(root, content.size, outboard).await;
    }
    gw.outboards.forget_parts(part_keys).await;
    super::object_lock::protect_new_version(gw, &input.bucket, &input.key, &recorded, legal_hold).await?;
    let mut output = completion_output(gw, &bucket, &input.key, &recorded.version_id, &content, location);
    output.expiration = expiry.header(&bucket, recorded.event.created_at, gw.config.lifecycle.day_ms());
    Ok(wire::with_receipt(output, &recorded.event))
}

/// The answer to completing an upload that was completed already: S3 answers a repeated
/// completion (a client's retry after a lost response) with the same result, as long as the
/// version it created is still there and the request names the same parts.
async fn completed_before(
    gw: &Gateway,
    bucket: &registry::state::Bucket,
    input: &CompleteMultipartUploadInput,
    requested: &[CompletedPart],
    location: String,
) -> Result<S3Response<CompleteMultipartUploadOutput>> {
    let (name, key, upload_id) = (input.bucket.clone(), input.key.clone(), input.upload_id.clone());
    let versions = gw.registry.read(move |reads| reads.versions_of_key(&name, &key)).await?;
    let completed = versions.into_iter().find(|v| {
        matches!(&v.origin, Some(Origin::Multipart { upload_id: id }) if *id == upload_id)
            && v.content.parts.len() == requested.len()
            && v.content
                .parts
                .iter()
                .zip(requested)
                .all(|(part, wanted)| wanted.e_tag.as_ref().is_none_or(|etag| etag.value() == part.etag))
    });
    let Some(version) = completed else {
        return Err(registry::Error::NoSuchUpload.into());
    };
    let output = completion_output(gw, bucket, &input.key, &version.version_id, &version.content, location);
    Ok(S3Response::new(output))
}

/// CompleteMultipartUpload's answer for the version `version_id` of `key`, holding `content`,
/// at the URL `location`.
fn completion_output(
    gw: &Gateway,
    bucket: &registry::state::Bucket,
    key: &str,
    version_id: &str,
    content: &ObjectContent,
    location: String,
) -> CompleteMultipartUploadOutput {
    let fields = wire::ChecksumFields::of(&content.checksums);
    let sse = encryption::answer(gw.keys.as_ref(), content, None);
    CompleteMultipartUploadOutput {
        bucket: Some(bucket.name.clone()),
        key: Some(key.to_owned()),
        e_tag: Some(wire::etag(&content.etag)),
        location: Some(location),
        version_id: wire::version_id_header(bucket, version_id),
        checksum_crc32: fields.crc32,
        checksum_crc32c: fields.crc32c,
        checksum_crc64nvme: fields.crc64nvme,
        checksum_sha1: fields.sha1,
        checksum_sha256: fields.sha256,
        checksum_type: content.checksum_type.clone().map(ChecksumType::from),
        server_side_encryption: sse.server_side_encryption,
        ssekms_key_id: sse.ssekms_key_id,
        bucket_key_enabled: sse.bucket_key_enabled,
        ..Default::default()
    }
}

pub(super) async fn abort_multipart_upload(
    gw: &Gateway,
    req: S3Request<AbortMultipartUploadInput>,
) -> Result<S3Response<AbortMultipartUploadOutput>> {
    let input = &req.input;
    if input.if_match_initiated_time.is_some() {
        // A condition on the upload's start (directory buckets on AWS) that is not evaluated
        // here: the abort it was meant to stop must not happen regardless.
        return Err(wire::header_not_implemented());
    }
    require_bucket(gw, &input.bucket).await?;
    // The store's upload first: if that fails, nothing is recorded and the client may retry.
    let upload = require_upload(gw, &input.bucket, &input.key, &input.upload_id).await?;
    if let Some(store_upload) = store_upload(&upload.created) {
        gw.blobs.abort_multipart(&store_upload).await?;
    }
    let upload = UploadRef { bucket: input.bucket.clone(), key: input.key.clone(), upload_id: input.upload_id.clone() };
    gw.registry.abort_multipart_upload(caller(&req), upload).await?;
    Ok(S3Response::new(AbortMultipartUploadOutput::default()))
}

fn listing_limit(requested: Option<i32>) -> usize {
    usize::try_from(requested.unwrap_or(MAX_LISTED).clamp(0, MAX_LISTED)).unwrap_or(0)
}

pub(super) async fn list_parts(gw: &Gateway, req: S3Request<ListPartsInput>) -> Result<S3Response<ListPartsOutput>> {
    let input = &req.input;
    let bucket = require_bucket(gw, &input.bucket).await?;
    let upload = require_upload(gw, &input.bucket, &input.key, &input.upload_id).await?;
    let (abort_date, abort_rule_id) =
        abort_headers(&bucket, &input.key, upload.created_at, gw.config.lifecycle.day_ms());
    let limit = listing_limit(input.max_parts);
    let after = input.part_number_marker.and_then(|m| u32::try_from(m).ok()).unwrap_or(0);
    let id = input.upload_id.clone();
    let mut parts = gw.registry.read(move |conn| conn.parts(&id, after, limit + 1)).await?;
    let is_truncated = parts.len() > limit;
    parts.truncate(limit);
    let next = parts.last().map(|p| i32::try_from(p.number).unwrap_or(MAX_PART_NUMBER));
    let owner = bucket_owner(gw, &input.bucket).await?;
    let initiator = initiators(gw, vec![upload.initiator]).await?.pop();
    Ok(S3Response::new(ListPartsOutput {
        abort_date,
        abort_rule_id,
        bucket: Some(input.bucket.clone()),
        key: Some(input.key.clone()),
        upload_id: Some(input.upload_id.clone()),
        part_number_marker: input.part_number_marker,
        next_part_number_marker: next,
        max_parts: i32::try_from(limit).ok(),
        is_truncated: Some(is_truncated),
        checksum_algorithm: upload.created.checksum_algorithm.map(ChecksumAlgorithm_::from),
        checksum_type: upload.created.template.checksum_type.map(ChecksumType::from),
        initiator,
        owner: Some(owner),
        storage_class: Some(StorageClass::from(StorageClass::STANDARD.to_owned())),
        parts: Some(
            parts
                .into_iter()
                .map(|p| {
                    let checksums = wire::ChecksumFields::of(&p.part.checksums);
                    s3s::dto::Part {
                        part_number: i32::try_from(p.number).ok(),
                        e_tag: Some(wire::etag(&p.part.etag)),
                        size: i64::try_from(p.part.size).ok(),
                        last_modified: Some(wire::whole_seconds(p.created_at)),
                        checksum_crc32: checksums.crc32,
                        checksum_crc32c: checksums.crc32c,
                        checksum_crc64nvme: checksums.crc64nvme,
                        checksum_sha1: checksums.sha1,
                        checksum_sha256: checksums.sha256,
                    }
                })
                .collect(),
        ),
        ..Default::default()
    }))
}

pub(super) async fn list_multipart_uploads(
    gw: &Gateway,
    req: S3Request<ListMultipartUploadsInput>,
) -> Result<S3Response<ListMultipartUploadsOutput>> {
    let input = &req.input;
    require_bucket(gw, &input.bucket).await?;
    let limit = listing_limit(input.max_uploads);
    let (bucket, prefix) = (input.bucket.clone(), input.prefix.clone().unwrap_or_default());
    let (key_marker, upload_id_marker) = (input.key_marker.clone(), input.upload_id_marker.clone());
    let mut uploads = gw
        .registry
        .read(move |conn| conn.uploads(&bucket, &prefix, key_marker.as_deref(), upload_id_marker.as_deref(), limit + 1))
        .await?;
    let is_truncated = uploads.len() > limit;
    uploads.truncate(limit);
    let last = uploads.last().map(|u| (u.created.key.clone(), u.created.upload_id.clone()));
    let owner = bucket_owner(gw, &input.bucket).await?;
    let initiators = initiators(gw, uploads.iter().map(|u| u.initiator.clone()).collect()).await?;
    Ok(S3Response::new(ListMultipartUploadsOutput {
        bucket: Some(input.bucket.clone()),
        prefix: input.prefix.clone(),
        key_marker: input.key_marker.clone(),
        upload_id_marker: input.upload_id_marker.clone(),
        max_uploads: i32::try_from(limit).ok(),
        is_truncated: Some(is_truncated),
        next_key_marker: is_truncated.then(|| last.as_ref().map(|l| l.0.clone())).flatten(),
        next_upload_id_marker: is_truncated.then(|| last.map(|l| l.1)).flatten(),
        uploads: Some(
            uploads
                .into_iter()
                .zip(initiators)
                .map(|(u, initiator)| MultipartUpload {
                    key: Some(u.created.key),
                    upload_id: Some(u.created.upload_id),
                    initiated: Some(wire::whole_seconds(u.created_at)),
                    initiator: Some(initiator),
                    owner: Some(owner.clone()),
                    storage_class: Some(StorageClass::from(StorageClass::STANDARD.to_owned())),
                    checksum_algorithm: u.created.checksum_algorithm.map(ChecksumAlgorithm_::from),
                    checksum_type: u.created.template.checksum_type.map(ChecksumType::from),
                })
                .collect(),
        ),
        ..Default::default()
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(number: u32, size: u64, etag: &str) -> Part {
        Part {
            number,
            created_at: 0,
            part: BlobPart {
                blob: String::new(),
                size,
                etag: etag.to_owned(),
                checksums: Default::default(),
                subtree: None,
                subtrees: None,
                offset: None,
                store_etag: None,
                wrapped_key: None,
            },
        }
    }

    fn completed(number: i32, etag: &str) -> CompletedPart {
        CompletedPart { part_number: Some(number), e_tag: Some(ETag::Strong(etag.to_owned())), ..Default::default() }
    }

    #[test]
    fn completion_checks_order_presence_etags_and_sizes() {
        let big = MIN_PART_SIZE;
        let stored = [part(1, big, "a"), part(2, big, "b"), part(3, 1, "c")];
        assert_eq!(select_parts(&[completed(1, "a"), completed(3, "c")], &stored, None).unwrap().len(), 2);
        let code = |r: Result<Vec<(u32, BlobPart)>>| s3s::S3Error::from(r.unwrap_err()).code().as_str().to_owned();
        assert_eq!(code(select_parts(&[completed(2, "b"), completed(1, "a")], &stored, None)), "InvalidPartOrder");
        assert_eq!(code(select_parts(&[completed(4, "d")], &stored, None)), "InvalidPart");
        assert_eq!(code(select_parts(&[completed(1, "wrong")], &stored, None)), "InvalidPart");
        assert_eq!(code(select_parts(&[completed(3, "c"), completed(2, "b")], &stored, None)), "InvalidPartOrder");
        let small_first = [part(1, 10, "a"), part(2, 10, "b")];
        assert_eq!(code(select_parts(&[completed(1, "a"), completed(2, "b")], &small_first, None)), "EntityTooSmall");
        assert_eq!(code(select_parts(&[], &stored, None)), "MalformedXML");
    }

    #[test]
    fn completion_checks_the_part_checksums_it_names() {
        let mut crc = part(1, 1, "a");
        crc.part.checksums.insert("CRC32".to_owned(), "UaAuAQ==".to_owned());
        let stored = [crc];
        let code = |r: Result<Vec<(u32, BlobPart)>>| s3s::S3Error::from(r.unwrap_err()).code().as_str().to_owned();
        let named = |crc32: Option<&str>, sha1: Option<&str>| CompletedPart {
            checksum_crc32: crc32.map(str::to_owned),
            checksum_sha1: sha1.map(str::to_owned),
            ..completed(1, "a")
        };
        let crc32 = Some(ChecksumAlgorithm::Crc32);
        assert!(select_parts(&[named(Some("UaAuAQ=="), None)], &stored, crc32).is_ok());
        assert!(select_parts(&[named(None, None)], &stored, crc32).is_ok(), "naming none is allowed");
        assert_eq!(code(select_parts(&[named(Some("AAAAAA=="), None)], &stored, crc32)), "InvalidPart");
        assert_eq!(
            code(select_parts(&[named(None, Some("2jmj7l5rSw0yVb/vlWAYkK/YBwk="))], &stored, crc32)),
            "InvalidPart"
        );
        assert_eq!(code(select_parts(&[named(Some("UaAuAQ=="), None)], &stored, None)), "InvalidPart");
    }

    #[test]
    fn multipart_etag_is_md5_of_part_md5s() {
        // Two parts whose MD5s are those of "a" and "b".
        let parts = [
            BlobPart {
                blob: String::new(),
                size: 1,
                etag: "0cc175b9c0f1b6a831c399e269772661".into(),
                checksums: Default::default(),
                subtree: None,
                subtrees: None,
                offset: None,
                store_etag: None,
                wrapped_key: None,
            },
            BlobPart {
                blob: String::new(),
                size: 1,
                etag: "92eb5ffee6ae2fec3ad71c777531578f".into(),
                checksums: Default::default(),
                subtree: None,
                subtrees: None,
                offset: None,
                store_etag: None,
                wrapped_key: None,
            },
        ];
        // The expected value from the md-5 crate, an implementation independent of ours.
        use md5::Digest as _;
        let mut md5 = md5::Md5::new();
        md5.update(hex::decode("0cc175b9c0f1b6a831c399e269772661").unwrap());
        md5.update(hex::decode("92eb5ffee6ae2fec3ad71c777531578f").unwrap());
        assert_eq!(multipart_etag(&parts), format!("{}-2", hex::encode(md5.finalize())));
    }

    #[test]
    fn copy_ranges_are_inclusive_and_bounded() {
        assert_eq!(copy_range(Some("bytes=0-9"), 10).unwrap(), Some((0, 9)));
        assert!(copy_range(Some("bytes=0-10"), 10).is_err());
        assert!(copy_range(Some("bytes=5-4"), 10).is_err());
        assert!(copy_range(Some("0-4"), 10).is_err());
        assert_eq!(copy_range(None, 0).unwrap(), None);
    }

    #[test]
    fn recorded_pieces_are_used_only_where_they_were_hashed() {
        let mib = 1 << 20;
        let (a, b) = ([1u8; 32], [2u8; 32]);
        let mut new = part(2, 5 * mib, "e").part;
        new.subtrees =
            Some(registry::event::v1::PartSubtrees { offset: 5 * mib, chaining_values: hex::encode([a, b].concat()) });
        assert_eq!(recorded_pieces(2, &new, 5 * mib, 2), Some(vec![a, b]));
        assert_eq!(recorded_pieces(2, &new, 6 * mib, 2), None, "another offset");
        assert_eq!(recorded_pieces(2, &new, 5 * mib, 3), None, "another count");

        // Recorded by an earlier build: one value, at (number - 1) * size.
        let mut legacy = part(3, 8 * mib, "e").part;
        legacy.subtree = Some(hex::encode(a));
        assert_eq!(recorded_pieces(3, &legacy, 16 * mib, 1), Some(vec![a]));
        assert_eq!(recorded_pieces(3, &legacy, 8 * mib, 1), None);
        let key = |part: &BlobPart| outboard::part_name_of_hex(part.recorded_subtrees()?);
        assert_eq!(key(&legacy), Some(outboard::part_name(&a)));
        assert_eq!(key(&new), Some(outboard::part_name(&[a, b].concat())));
        assert_ne!(key(&new), key(&legacy), "parts sharing a first piece are kept apart");
    }
}
