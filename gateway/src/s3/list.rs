//! Listing: ListObjects (v1) and ListObjectsV2, served from the registry's index of current
//! versions, never from a directory walk.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as TOKEN;
use registry::queries::{ListPage, ListQuery, ObjectVersion};
use s3s::dto::*;
use s3s::{S3Request, S3Response, s3_error};

use super::bucket::require_bucket;
use super::error::Result;
use super::owner::{bucket_owner, version_owners};
use super::{Gateway, wire};

/// The most keys one page returns, whatever the client asks for.
const MAX_KEYS: i32 = 1000;

/// Encodes a key, prefix or marker for the response when the client asked for it.
pub(super) struct Encoder(bool);

impl Encoder {
    pub(super) fn new(encoding_type: Option<&EncodingType>) -> Result<Self> {
        match encoding_type.map(EncodingType::as_str) {
            None => Ok(Self(false)),
            Some(EncodingType::URL) => Ok(Self(true)),
            Some(_) => Err(s3_error!(InvalidArgument, "Invalid Encoding Method specified in Request").into()),
        }
    }

    pub(super) fn apply(&self, text: String) -> String {
        if self.0 { crate::url_encode::path(&text) } else { text }
    }
}

pub(super) fn max_keys(requested: Option<i32>) -> Result<usize> {
    match requested {
        Some(n) if n < 0 => Err(s3_error!(InvalidArgument, "max-keys cannot be negative").into()),
        Some(n) => Ok(usize::try_from(n.min(MAX_KEYS)).unwrap_or(0)),
        None => Ok(usize::try_from(MAX_KEYS).unwrap_or(0)),
    }
}

async fn page(gw: &Gateway, query: ListQuery) -> Result<ListPage> {
    Ok(gw.registry.read(move |conn| conn.list_objects(&query)).await?)
}

fn object(version: ObjectVersion, owner: Option<Owner>, encoder: &Encoder) -> Object {
    let checksum_algorithm =
        version.content.checksums.keys().map(|name| ChecksumAlgorithm::from(name.clone())).collect::<Vec<_>>();
    Object {
        key: Some(encoder.apply(version.key)),
        e_tag: Some(wire::etag(&version.content.etag)),
        last_modified: Some(wire::whole_seconds(version.created_at)),
        size: i64::try_from(version.content.size).ok(),
        storage_class: Some(ObjectStorageClass::from(ObjectStorageClass::STANDARD.to_owned())),
        owner,
        checksum_algorithm: (!checksum_algorithm.is_empty()).then_some(checksum_algorithm),
        checksum_type: version.content.checksum_type.map(ChecksumType::from),
        ..Default::default()
    }
}

pub(super) fn common_prefixes(prefixes: Vec<String>, encoder: &Encoder) -> Option<Vec<CommonPrefix>> {
    (!prefixes.is_empty())
        .then(|| prefixes.into_iter().map(|p| CommonPrefix { prefix: Some(encoder.apply(p)) }).collect())
}

pub(super) async fn list_objects(
    gw: &Gateway,
    req: S3Request<ListObjectsInput>,
) -> Result<S3Response<ListObjectsOutput>> {
    let input = req.input;
    require_bucket(gw, &input.bucket).await?;
    let encoder = Encoder::new(input.encoding_type.as_ref())?;
    // An empty delimiter groups nothing, and S3 does not echo it.
    let delimiter = input.delimiter.clone().filter(|d| !d.is_empty());
    let max = max_keys(input.max_keys)?;
    let query = ListQuery {
        bucket: input.bucket.clone(),
        prefix: input.prefix.clone().unwrap_or_default(),
        delimiter: delimiter.clone(),
        start_after: input.marker.clone().filter(|m| !m.is_empty()),
        max_keys: max,
    };
    let page = page(gw, query).await?;
    let owner = bucket_owner(gw, &input.bucket).await?;
    let keys = page.objects.iter().map(|v| (v.key.clone(), v.version_id.clone())).collect();
    let owners = version_owners(gw, &input.bucket, &owner, keys).await?;
    // S3 sends NextMarker only with a delimiter; clients use the last key otherwise.
    let next_marker = page.is_truncated.then_some(()).and(delimiter.as_ref()).and(page.last.clone());
    Ok(S3Response::new(ListObjectsOutput {
        name: Some(input.bucket),
        // ListObjects (v1) leaves its top-level Prefix as given whatever the encoding type
        // (SDKs decode the other elements, not this one); ListObjectsV2 encodes it.
        prefix: Some(input.prefix.unwrap_or_default()),
        marker: Some(encoder.apply(input.marker.unwrap_or_default())),
        max_keys: i32::try_from(max).ok(),
        is_truncated: Some(page.is_truncated),
        contents: Some(
            page.objects.into_iter().zip(owners).map(|(v, owner)| object(v, Some(owner), &encoder)).collect(),
        ),
        common_prefixes: common_prefixes(page.common_prefixes, &encoder),
        delimiter: delimiter.map(|d| encoder.apply(d)),
        next_marker: next_marker.map(|m| encoder.apply(m)),
        encoding_type: input.encoding_type,
        ..Default::default()
    }))
}

pub(super) async fn list_objects_v2(
    gw: &Gateway,
    req: S3Request<ListObjectsV2Input>,
) -> Result<S3Response<ListObjectsV2Output>> {
    let input = req.input;
    require_bucket(gw, &input.bucket).await?;
    let encoder = Encoder::new(input.encoding_type.as_ref())?;
    // An empty delimiter groups nothing, and S3 does not echo it.
    let delimiter = input.delimiter.clone().filter(|d| !d.is_empty());
    let max = max_keys(input.max_keys)?;
    // The token is where the previous page ended (a key or a common prefix); it wins over
    // start-after, which only applies to the first page.
    let resume_after = match &input.continuation_token {
        Some(token) => Some(decode_token(token)?),
        None => input.start_after.clone().filter(|s| !s.is_empty()),
    };
    let query = ListQuery {
        bucket: input.bucket.clone(),
        prefix: input.prefix.clone().unwrap_or_default(),
        delimiter: delimiter.clone(),
        start_after: resume_after,
        max_keys: max,
    };
    let page = page(gw, query).await?;
    let owners = match input.fetch_owner {
        Some(true) => {
            let owner = bucket_owner(gw, &input.bucket).await?;
            let keys = page.objects.iter().map(|v| (v.key.clone(), v.version_id.clone())).collect();
            version_owners(gw, &input.bucket, &owner, keys).await?.into_iter().map(Some).collect()
        }
        _ => vec![None; page.objects.len()],
    };
    let key_count = page.objects.len() + page.common_prefixes.len();
    let next = page.is_truncated.then(|| page.last.clone()).flatten().map(|last| TOKEN.encode(last));
    Ok(S3Response::new(ListObjectsV2Output {
        name: Some(input.bucket),
        prefix: Some(encoder.apply(input.prefix.unwrap_or_default())),
        max_keys: i32::try_from(max).ok(),
        key_count: i32::try_from(key_count).ok(),
        continuation_token: input.continuation_token,
        is_truncated: Some(page.is_truncated),
        next_continuation_token: next,
        contents: Some(page.objects.into_iter().zip(owners).map(|(v, owner)| object(v, owner, &encoder)).collect()),
        common_prefixes: common_prefixes(page.common_prefixes, &encoder),
        delimiter: delimiter.map(|d| encoder.apply(d)),
        start_after: input.start_after.map(|s| encoder.apply(s)),
        encoding_type: input.encoding_type,
        ..Default::default()
    }))
}

fn decode_token(token: &str) -> Result<String> {
    TOKEN
        .decode(token)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(|| s3_error!(InvalidArgument, "The continuation token provided is incorrect").into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_encoding_keeps_slashes_and_unreserved_characters() {
        let encoder = Encoder(true);
        assert_eq!(encoder.apply("a b/ü+c~d.e".to_owned()), "a%20b/%C3%BC%2Bc~d.e");
        assert_eq!(Encoder(false).apply("a b".to_owned()), "a b");
    }

    #[test]
    fn continuation_tokens_round_trip_and_reject_garbage() {
        let token = TOKEN.encode("photos/2026/");
        assert_eq!(decode_token(&token).unwrap(), "photos/2026/");
        assert!(decode_token("%%%").is_err());
    }
}
