//! Finding the version a request names, with the answer AWS gives when it is a delete marker.

use registry::queries::ObjectVersion;
use s3s::s3_error;

use super::Gateway;
use super::error::Result;

/// What a request gets when the version it names is a delete marker; AWS differs by operation.
#[derive(Clone, Copy)]
pub(super) enum OnDeleteMarker {
    /// A copy source, or a read of retention or legal hold: the current version being a marker
    /// is 404 `NoSuchKey`; a marker named by id is 400 `InvalidRequest` for a copy source and
    /// 405 `MethodNotAllowed` for a lock read (as a GET of it).
    CopySource,
    LockRead,
    /// Object tags: 405 `MethodNotAllowed` whether the marker is current or named by id.
    Tagging,
}

/// The version a request names (the latest without an id), never a delete marker.
pub(super) async fn named_version(
    gw: &Gateway,
    bucket: &str,
    key: &str,
    version_id: Option<&str>,
    on_marker: OnDeleteMarker,
) -> Result<ObjectVersion> {
    let by_id = version_id.is_some();
    let (bucket, key, version_id) = (bucket.to_owned(), key.to_owned(), version_id.map(str::to_owned));
    let version = gw
        .registry
        .read(move |conn| match version_id {
            Some(id) => conn.version(&bucket, &key, &id),
            None => conn.latest_version(&bucket, &key),
        })
        .await?;
    match (version, by_id, on_marker) {
        (Some(v), _, _) if !v.is_delete_marker => Ok(v),
        (Some(_), _, OnDeleteMarker::Tagging) | (Some(_), true, OnDeleteMarker::LockRead) => {
            Err(registry::Error::DeleteMarker.into())
        }
        (Some(_), true, OnDeleteMarker::CopySource) => Err(s3_error!(
            InvalidRequest,
            "The source of a copy request may not specifically refer to a delete marker by version id."
        )
        .into()),
        (None, true, _) => Err(registry::Error::NoSuchVersion.into()),
        _ => Err(registry::Error::NoSuchKey.into()),
    }
}
