//! The S3 API: [`Gateway`] implements the s3s [`S3`] trait. Its `impl` block is the table of
//! contents; each operation family lives in its own file and returns [`error::Error`], mapped
//! to an S3 error in one place ([`error`]).
//!
//! - [`bucket`]: create, delete, head, list, location.
//! - [`object`]: put, copy, delete (single and batch).
//! - [`object_lock`]: lock configuration, retention and legal hold.
//! - [`get_object`]: GetObject and HeadObject, with ranges, conditions and part numbers.
//! - `attributes`: GetObjectAttributes.
//! - [`lifecycle_config`]: bucket lifecycle configuration and `x-amz-expiration`.
//! - [`list`]: ListObjects and ListObjectsV2.
//! - [`multipart`]: uploads, parts, completion.
//! - [`tagging`]: object and bucket tags.
//! - [`versioning`]: the versioning configuration; listing every version and delete marker.
//! - [`wire`]: conversions between registry records and s3s types.
//! - [`checksum`]: client checksums (`Content-MD5`, `x-amz-checksum-*`, trailers) vs those
//!   [`crate::digest`] computed.
//! - [`document`]: the digests of document bodies (DeleteObjects, configurations).
//! - [`acl`]: object ownership, bucket and object ACLs.
//! - [`bucket_policy`], [`public_access_block`], `cors`: the bucket's other access settings.
//! - [`post_object`]: HTML form uploads, handed on as PutObject.
//! - `lookup`: the version a request names, for copies, tags and locks.
//! - `owner`: owners as S3 names them, of buckets and of what they hold.
//! - [`error`]: the gateway error and its S3 codes.

/// The Object Lock headers of a PutObject, CopyObject or CreateMultipartUpload (their s3s
/// inputs share these field names), read with [`wire::lock_headers`].
macro_rules! lock_headers {
    ($bucket:expr, $input:expr) => {
        super::wire::lock_headers(
            $bucket,
            $input.object_lock_mode.as_ref(),
            $input.object_lock_retain_until_date.as_ref(),
            $input.object_lock_legal_hold_status.as_ref(),
            crate::clock::now_ms(),
        )
    };
}

pub mod acl;
mod attributes;
pub mod bucket;
mod bucket_encryption;
pub mod bucket_policy;
pub mod checksum;
mod cors;
pub mod document;
mod encryption;
pub mod error;
pub mod get_object;
mod inline;
mod integrity;
pub mod lifecycle_config;
pub mod list;
mod lookup;
pub mod multipart;
pub mod object;
pub mod object_lock;
mod owner;
pub mod post_object;
pub mod public_access_block;
pub mod tagging;
pub mod versioning;
pub mod wire;

use std::sync::Arc;

use async_trait::async_trait;
use blake3::hazmat::ChainingValue;
use registry::event::v1::BlobPart;
use registry::{Caller, Registry, RequestContext};
use s3s::dto::*;
use s3s::{S3, S3Request, S3Response, S3Result};

use crate::auth::Users;
use crate::auth::access::{BucketGrants, SecureTransport};
use crate::backend::BlobStore;
use crate::client_addr::ClientAddr;
use crate::config::{Backend, Config, Retrievals, UpstreamObjectLock};
use crate::crypto::KeyProvider;
use crate::limits::{UploadSlot, UploadSlots};
use crate::outboard::OutboardFiles;
use crate::request::{MissingKeyHidden, RequestId};

pub use self::error::{Error, Refusal, Result};

/// The S3 service: operations parse the request, call the registry and the blob store, and
/// build the response.
pub struct Gateway {
    registry: Registry,
    blobs: Arc<dyn BlobStore>,
    config: Arc<Config>,
    users: Users,
    uploads: UploadSlots,
    /// The bucket grants the access hook decides with, told when one changes.
    grants: BucketGrants,
    /// Outboards of large objects read by range, so a range is checked by the 1 MiB groups
    /// it touches.
    outboards: integrity::Outboards,
    /// What wraps the data keys of encrypted objects.
    keys: Arc<dyn KeyProvider>,
}

impl Gateway {
    /// A gateway recording into `registry` and storing bytes in `blobs` (encrypted, where a
    /// write asks for it, under data keys wrapped by `keys`), receiving at most as many bodies
    /// at once as `uploads` has slots.
    #[must_use]
    pub fn new(
        registry: Registry,
        blobs: Arc<dyn BlobStore>,
        config: Arc<Config>,
        users: Users,
        uploads: UploadSlots,
        grants: BucketGrants,
        keys: Arc<dyn KeyProvider>,
    ) -> Self {
        let outboards = integrity::Outboards::new(OutboardFiles::new(&config.storage.data_dir));
        Self { registry, blobs, config, users, uploads, grants, outboards, keys }
    }

    /// Where the request came to, as a URL's origin (`https://HOST`): the scheme the client
    /// used (a trusted proxy's word counting as for `aws:SecureTransport`) and the `Host` it
    /// named, so that a `Location` built on it is the address the client can reach.
    fn origin_of<T>(&self, req: &S3Request<T>) -> Option<String> {
        let client = req.extensions.get::<ClientAddr>().copied();
        let scheme = if SecureTransport::of(&self.config.server).is_secure(client) { "https" } else { "http" };
        let host = crate::request::authority(&req.uri, &req.headers)?;
        Some(format!("{scheme}://{host}"))
    }

    /// A slot for receiving one body (PutObject, UploadPart) from `client`, held until the
    /// write is done.
    ///
    /// # Errors
    /// 503 `SlowDown` when every slot is taken, or the client holds its share: the client
    /// retries later.
    fn upload_slot(&self, client: Option<&ClientAddr>) -> Result<UploadSlot> {
        self.uploads.try_take(client.map(|c| c.ip)).ok_or_else(|| {
            s3s::s3_error!(SlowDown, "Please reduce your request rate: too many uploads in progress.").into()
        })
    }

    /// Whether reads are recorded as retrieval events.
    fn records_retrievals(&self) -> bool {
        self.config.registry.retrievals != Retrievals::Off
    }

    /// Whether versions' locks are also set on their blobs (see `object_lock::protect_blobs`).
    fn mirrors_locks(&self) -> bool {
        self.config.storage.backend == Backend::S3 && self.config.upstream.object_lock == UpstreamObjectLock::Mirror
    }

    /// Whether the request asked to bypass governance retention and its signer may.
    fn bypass_governance<T>(&self, req: &S3Request<T>, asked: Option<bool>) -> bool {
        asked == Some(true)
            // A key the registry holds was allowed s3:BypassGovernanceRetention by the access
            // hook; a configured one also needs the configuration's leave.
            && req.credentials.as_ref().is_some_and(|c| self.users.get(&c.access_key).is_none_or(|u| u.bypass_governance))
    }
}

/// Bytes received and committed as one blob, with everything computed as they streamed.
struct Stored {
    /// The blob, as a part of an object.
    pub part: BlobPart,
    /// BLAKE3 of the bytes; `None` for a multipart part, hashed only at its offset in its
    /// object (see [`crate::outboard::BlobHasher`]).
    pub blake3: Option<blake3::Hash>,
    /// The bytes' outboard, when the store computed one ([`crate::outboard`]).
    pub outboard: Vec<ChainingValue>,
}

/// Who sent a request, as the registry records it: the access key, the request id, the
/// client's address and the user agent.
fn caller<T>(req: &S3Request<T>) -> Caller {
    let access_key = req.credentials.as_ref().map(|c| c.access_key.clone());
    Caller {
        actor: access_key.clone().unwrap_or_else(|| "anonymous".to_owned()),
        context: RequestContext {
            access_key,
            request_id: req.extensions.get::<RequestId>().map(|id| id.0.clone()),
            source_addr: req.extensions.get::<ClientAddr>().map(ToString::to_string),
            user_agent: req.headers.get(http::header::USER_AGENT).and_then(|v| v.to_str().ok()).map(str::to_owned),
        },
    }
}

/// `NoSuchKey` (and `NoSuchVersion`, a `versionId` no version of the key has) as
/// `AccessDenied` for a requester who may not list the bucket ([`MissingKeyHidden`]).
fn hide_missing_key(err: s3s::S3Error, hidden: bool) -> s3s::S3Error {
    let missing = matches!(*err.code(), s3s::S3ErrorCode::NoSuchKey | s3s::S3ErrorCode::NoSuchVersion);
    if !hidden || !missing {
        return err;
    }
    tracing::info!(code = "AccessDenied", "refused: no such key, and the requester may not list the bucket");
    s3s::s3_error!(AccessDenied, "Access Denied")
}

macro_rules! delegate {
    ($($family:ident :: $op:ident ($input:ident) -> $output:ident;)*) => {
        #[async_trait]
        impl S3 for Gateway {
            $(
                async fn $op(&self, req: S3Request<$input>) -> S3Result<S3Response<$output>> {
                    let started = std::time::Instant::now();
                    // The operation's name as AWS spells it: `PutObjectInput` -> `PutObject`.
                    let api = stringify!($input).trim_end_matches("Input");
                    let missing_key_hidden = req.extensions.get::<MissingKeyHidden>().is_some();
                    let result = match document::verify(api, &req.headers, &req.extensions) {
                        Ok(()) => $family::$op(self, req).await.map_err(s3s::S3Error::from),
                        Err(err) => Err(err),
                    };
                    let result = result.map_err(|err| hide_missing_key(err, missing_key_hidden));
                    let code = result.as_ref().err().map(|err| err.code().as_str());
                    crate::metrics::s3_request(api, code, started.elapsed());
                    result
                }
            )*
        }
    };
}

// Operations not listed here answer `NotImplemented` (the s3s default).
delegate! {
    bucket::list_buckets(ListBucketsInput) -> ListBucketsOutput;
    bucket::create_bucket(CreateBucketInput) -> CreateBucketOutput;
    bucket::head_bucket(HeadBucketInput) -> HeadBucketOutput;
    bucket::delete_bucket(DeleteBucketInput) -> DeleteBucketOutput;
    bucket::get_bucket_location(GetBucketLocationInput) -> GetBucketLocationOutput;
    lifecycle_config::put_bucket_lifecycle_configuration(PutBucketLifecycleConfigurationInput) -> PutBucketLifecycleConfigurationOutput;
    lifecycle_config::get_bucket_lifecycle_configuration(GetBucketLifecycleConfigurationInput) -> GetBucketLifecycleConfigurationOutput;
    lifecycle_config::delete_bucket_lifecycle(DeleteBucketLifecycleInput) -> DeleteBucketLifecycleOutput;
    bucket_policy::put_bucket_policy(PutBucketPolicyInput) -> PutBucketPolicyOutput;
    bucket_policy::get_bucket_policy(GetBucketPolicyInput) -> GetBucketPolicyOutput;
    bucket_policy::delete_bucket_policy(DeleteBucketPolicyInput) -> DeleteBucketPolicyOutput;
    bucket_policy::get_bucket_policy_status(GetBucketPolicyStatusInput) -> GetBucketPolicyStatusOutput;
    cors::put_bucket_cors(PutBucketCorsInput) -> PutBucketCorsOutput;
    bucket_encryption::put_bucket_encryption(PutBucketEncryptionInput) -> PutBucketEncryptionOutput;
    bucket_encryption::get_bucket_encryption(GetBucketEncryptionInput) -> GetBucketEncryptionOutput;
    bucket_encryption::delete_bucket_encryption(DeleteBucketEncryptionInput) -> DeleteBucketEncryptionOutput;
    cors::get_bucket_cors(GetBucketCorsInput) -> GetBucketCorsOutput;
    cors::delete_bucket_cors(DeleteBucketCorsInput) -> DeleteBucketCorsOutput;
    public_access_block::put_public_access_block(PutPublicAccessBlockInput) -> PutPublicAccessBlockOutput;
    public_access_block::get_public_access_block(GetPublicAccessBlockInput) -> GetPublicAccessBlockOutput;
    public_access_block::delete_public_access_block(DeletePublicAccessBlockInput) -> DeletePublicAccessBlockOutput;
    acl::get_bucket_acl(GetBucketAclInput) -> GetBucketAclOutput;
    acl::put_bucket_acl(PutBucketAclInput) -> PutBucketAclOutput;
    acl::get_object_acl(GetObjectAclInput) -> GetObjectAclOutput;
    acl::put_object_acl(PutObjectAclInput) -> PutObjectAclOutput;
    acl::get_bucket_ownership_controls(GetBucketOwnershipControlsInput) -> GetBucketOwnershipControlsOutput;
    acl::put_bucket_ownership_controls(PutBucketOwnershipControlsInput) -> PutBucketOwnershipControlsOutput;
    acl::delete_bucket_ownership_controls(DeleteBucketOwnershipControlsInput) -> DeleteBucketOwnershipControlsOutput;
    object::put_object(PutObjectInput) -> PutObjectOutput;
    object::copy_object(CopyObjectInput) -> CopyObjectOutput;
    object::delete_object(DeleteObjectInput) -> DeleteObjectOutput;
    object::delete_objects(DeleteObjectsInput) -> DeleteObjectsOutput;
    object_lock::put_object_lock_configuration(PutObjectLockConfigurationInput) -> PutObjectLockConfigurationOutput;
    object_lock::get_object_lock_configuration(GetObjectLockConfigurationInput) -> GetObjectLockConfigurationOutput;
    object_lock::put_object_retention(PutObjectRetentionInput) -> PutObjectRetentionOutput;
    object_lock::get_object_retention(GetObjectRetentionInput) -> GetObjectRetentionOutput;
    object_lock::put_object_legal_hold(PutObjectLegalHoldInput) -> PutObjectLegalHoldOutput;
    object_lock::get_object_legal_hold(GetObjectLegalHoldInput) -> GetObjectLegalHoldOutput;
    get_object::get_object(GetObjectInput) -> GetObjectOutput;
    get_object::head_object(HeadObjectInput) -> HeadObjectOutput;
    attributes::get_object_attributes(GetObjectAttributesInput) -> GetObjectAttributesOutput;
    list::list_objects(ListObjectsInput) -> ListObjectsOutput;
    list::list_objects_v2(ListObjectsV2Input) -> ListObjectsV2Output;
    versioning::get_bucket_versioning(GetBucketVersioningInput) -> GetBucketVersioningOutput;
    versioning::put_bucket_versioning(PutBucketVersioningInput) -> PutBucketVersioningOutput;
    versioning::list_object_versions(ListObjectVersionsInput) -> ListObjectVersionsOutput;
    multipart::create_multipart_upload(CreateMultipartUploadInput) -> CreateMultipartUploadOutput;
    multipart::upload_part(UploadPartInput) -> UploadPartOutput;
    multipart::upload_part_copy(UploadPartCopyInput) -> UploadPartCopyOutput;
    multipart::complete_multipart_upload(CompleteMultipartUploadInput) -> CompleteMultipartUploadOutput;
    multipart::abort_multipart_upload(AbortMultipartUploadInput) -> AbortMultipartUploadOutput;
    multipart::list_parts(ListPartsInput) -> ListPartsOutput;
    multipart::list_multipart_uploads(ListMultipartUploadsInput) -> ListMultipartUploadsOutput;
    tagging::get_object_tagging(GetObjectTaggingInput) -> GetObjectTaggingOutput;
    tagging::put_object_tagging(PutObjectTaggingInput) -> PutObjectTaggingOutput;
    tagging::delete_object_tagging(DeleteObjectTaggingInput) -> DeleteObjectTaggingOutput;
    tagging::get_bucket_tagging(GetBucketTaggingInput) -> GetBucketTaggingOutput;
    tagging::put_bucket_tagging(PutBucketTaggingInput) -> PutBucketTaggingOutput;
    tagging::delete_bucket_tagging(DeleteBucketTaggingInput) -> DeleteBucketTaggingOutput;
}
