//! GetObjectAttributes: what a version is (ETag, size, checksum, storage class, its parts)
//! without its bytes, as backup and sync tools ask before deciding what to transfer.

use registry::queries::ObjectVersion;
use s3s::dto::*;
use s3s::{S3Request, S3Response, s3_error};

use super::error::Result;
use super::get_object::{Conditions, plan};
use super::{Gateway, wire};

/// The most parts one answer lists, and the default.
const MAX_PARTS: i32 = 1000;

pub(super) async fn get_object_attributes(
    gw: &Gateway,
    req: S3Request<GetObjectAttributesInput>,
) -> Result<S3Response<GetObjectAttributesOutput>> {
    let input = &req.input;
    if input.object_attributes.is_empty() {
        return Err(s3_error!(InvalidArgument, "Invalid attribute name specified.").into());
    }
    let plan =
        plan(gw, &input.bucket, &input.key, input.version_id.as_deref(), &Conditions::default(), None, None).await?;
    // The checksums and parts of an SSE-C object are for its key's holder, as its bytes are.
    super::encryption::check_read(gw, &req, &plan.version.content)?;
    let version = &plan.version;
    let content = &version.content;
    // The header is one comma-separated list (s3s may hand it over as a single item).
    let asked: Vec<&str> = input.object_attributes.iter().flat_map(|a| a.as_str().split(',')).map(str::trim).collect();
    let known = [
        ObjectAttributes::ETAG,
        ObjectAttributes::CHECKSUM,
        ObjectAttributes::OBJECT_PARTS,
        ObjectAttributes::STORAGE_CLASS,
        ObjectAttributes::OBJECT_SIZE,
    ];
    if asked.iter().any(|name| !known.contains(name)) {
        return Err(s3_error!(InvalidArgument, "Invalid attribute name specified.").into());
    }
    let wanted = |name: &str| asked.contains(&name);
    let output = GetObjectAttributesOutput {
        e_tag: wanted(ObjectAttributes::ETAG).then(|| wire::etag(&content.etag)),
        object_size: wanted(ObjectAttributes::OBJECT_SIZE).then(|| i64::try_from(content.size).unwrap_or(i64::MAX)),
        storage_class: wanted(ObjectAttributes::STORAGE_CLASS)
            .then(|| StorageClass::from_static(StorageClass::STANDARD)),
        checksum: wanted(ObjectAttributes::CHECKSUM).then(|| checksum(version)).flatten(),
        object_parts: wanted(ObjectAttributes::OBJECT_PARTS)
            .then(|| parts(version, input.max_parts, input.part_number_marker))
            .flatten(),
        last_modified: Some(wire::whole_seconds(version.created_at)),
        version_id: wire::version_id_header(&plan.bucket, &version.version_id),
        ..Default::default()
    };
    Ok(S3Response::new(output))
}

/// The version's checksum, as its type names it. A COMPOSITE value is given without the
/// `-<parts>` suffix GET adds: the part count is `ObjectParts.TotalPartsCount`.
fn checksum(version: &ObjectVersion) -> Option<Checksum> {
    let content = &version.content;
    if content.checksums.is_empty() {
        return None;
    }
    let value = |algorithm: &str| {
        content.checksums.get(algorithm).map(|v| v.split_once('-').map_or(v.as_str(), |(v, _)| v).to_owned())
    };
    let kind = content.checksum_type.clone().unwrap_or_else(|| ChecksumType::FULL_OBJECT.to_owned());
    Some(Checksum {
        checksum_crc32: value(ChecksumAlgorithm::CRC32),
        checksum_crc32c: value(ChecksumAlgorithm::CRC32C),
        checksum_crc64nvme: value(ChecksumAlgorithm::CRC64NVME),
        checksum_sha1: value(ChecksumAlgorithm::SHA1),
        checksum_sha256: value(ChecksumAlgorithm::SHA256),
        checksum_type: Some(ChecksumType::from(kind)),
    })
}

/// The parts of a multipart version after `marker`, at most `max_parts` of them; `None` for a
/// version written by a single PUT, which S3 describes without parts.
fn parts(version: &ObjectVersion, max_parts: Option<i32>, marker: Option<i32>) -> Option<GetObjectAttributesParts> {
    let content = &version.content;
    let total: i32 = content.etag.rsplit_once('-')?.1.parse().ok()?;
    let max = max_parts.unwrap_or(MAX_PARTS).clamp(0, MAX_PARTS);
    let after = marker.unwrap_or(0).max(0);
    let listed: Vec<ObjectPart> = content
        .parts
        .iter()
        .zip(1..)
        .filter(|(_, number)| *number > after)
        .take(usize::try_from(max).unwrap_or(0))
        .map(|(part, number)| {
            let checksums = wire::ChecksumFields::of(&part.checksums);
            ObjectPart {
                part_number: Some(number),
                size: i64::try_from(part.size).ok(),
                checksum_crc32: checksums.crc32,
                checksum_crc32c: checksums.crc32c,
                checksum_crc64nvme: checksums.crc64nvme,
                checksum_sha1: checksums.sha1,
                checksum_sha256: checksums.sha256,
            }
        })
        .collect();
    let last = listed.last().and_then(|p| p.part_number).unwrap_or(after);
    Some(GetObjectAttributesParts {
        total_parts_count: Some(total),
        part_number_marker: marker,
        next_part_number_marker: Some(last),
        max_parts: Some(max),
        is_truncated: Some(last < total),
        parts: Some(listed),
    })
}
