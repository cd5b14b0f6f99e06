//! Blobs in an S3 upstream (AWS S3, Ceph RGW, MinIO, ...), through aws-sdk-s3.
//!
//! Every put goes to a fresh upstream key `<prefix><32 random hex digits>`, and that key is the
//! blob's id: the gateway learns the BLAKE3 only when the last byte has passed, and renaming
//! to a content address would be a server-side copy of every byte (S3 has no rename). So
//! identical content is stored once per version here, not once per store.
//!
//! A put streams the body through the shared hashing workers (`backend::pipeline`) and, in
//! the same pass, upstream as a plain body with a `Content-Length` (aws-chunked bodies were
//! decoded by the S3 layer; Ceph RGW 16 refuses aws-chunked trailer uploads with 411). Memory
//! stays bounded by the channel depths whatever the size; a body of unknown length is spooled
//! to an anonymous temp file first. Until its [`StagedBlob`] is
//! committed the object is upstream but unreferenced: dropping the stage deletes it, and an
//! object whose gateway died in between is an old unreferenced key that `gc` removes.
//!
//! A multipart upload is one upstream multipart upload, begun at CreateMultipartUpload under a
//! fresh blob id: each part streams through (hashed on the way, as a put is) as the upstream
//! part with the same number, completion completes it upstream, so the object is one upstream
//! object and one blob, and abort aborts it. The registry records the upstream upload id and
//! each part's upstream ETag, so an upload outlives a gateway restart; `gc` aborts upstream
//! uploads under the prefix that no open upload names.
//!
//! Upstream failures become [`BlobError::Unavailable`] (5xx, timeouts, unreachable) or
//! [`BlobError::SlowDown`] (throttling), which the S3 layer answers with 503s; what the
//! upstream says is logged, never passed on to clients as is.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use aws_sdk_s3::config::interceptors::FinalizerInterceptorContextRef;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, ProvideCredentials as _, Region, RequestChecksumCalculation,
    ResponseChecksumValidation, SharedCredentialsProvider, SharedHttpClient, StalledStreamProtectionConfig,
};
use aws_sdk_s3::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::{ByteStream, SdkBody};
use aws_sdk_s3::types::{
    CompletedMultipartUpload, CompletedPart, ObjectLockEnabled, ObjectLockLegalHold, ObjectLockLegalHoldStatus,
    ObjectLockMode, ObjectLockRetention, ObjectLockRetentionMode,
};
use aws_smithy_http_client::tls::{self, TlsContext, TrustStore};
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use bytes::Bytes;
use futures::Stream;
use http_body::{Frame, SizeHint};
use tokio::sync::{mpsc, oneshot};
use tokio::task::spawn_blocking;

use super::pipeline::{Chunk, Digests, PIPELINE_DEPTH, digest_worker, feed, join_error, md5_worker, seal_worker};
use super::{
    BlobEntry, BlobError, BlobId, BlobLock, BlobStore, BlobStream, BodyStream, PartToJoin, Result, RetentionMode,
    Stage, StagedBlob, StoreUpload,
};
use crate::config::{UpstreamConfig, UpstreamObjectLock};
use crate::crypto::{Seal, Sealer};
use crate::digest::{ChecksumAlgorithm, Checksummer, Checksums};
use crate::outboard::{BlobHasher, Hashed};
use crate::telemetry::error_chain;

/// Keys per listing page asked of the upstream (the S3 maximum).
const LIST_PAGE: i32 = 1000;

/// Why the store could not be built from its configuration.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// `upstream.ca_bundle` could not be read or used.
    #[error("cannot use the upstream CA bundle {path}: {reason}")]
    CaBundle {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        reason: String,
    },
    /// `upstream.profile` names a profile that gives no credentials.
    #[error("cannot take the upstream credentials from profile {profile}: {reason}")]
    Profile {
        /// The profile.
        profile: String,
        /// Why.
        reason: String,
    },
    /// `upstream.object_lock = mirror`, but the upstream bucket cannot hold locks.
    #[error(
        "upstream.object_lock = mirror needs Object Lock on the upstream bucket {bucket}, and it cannot be confirmed: {reason}"
    )]
    NoObjectLock {
        /// The upstream bucket.
        bucket: String,
        /// What the upstream said.
        reason: String,
    },
}

/// Blobs under a prefix of one upstream bucket.
#[derive(Debug, Clone)]
pub struct S3BlobStore {
    client: aws_sdk_s3::Client,
    bucket: String,
    prefix: String,
    /// How long the upstream may take to answer once a body has been sent.
    timeout: Duration,
    /// Whether versions' retention and legal holds are mirrored onto the upstream objects.
    mirror_lock: bool,
}

impl S3BlobStore {
    /// Builds the client. Makes no request: an upstream that is down at start-up does not
    /// stop the gateway (see [`BlobStore::probe`]).
    ///
    /// # Errors
    ///
    /// [`OpenError`] for an unusable CA bundle.
    pub fn open(config: &UpstreamConfig) -> Result<Self, OpenError> {
        let timeout = Duration::from_secs(config.timeout);
        let http_client = http_client(config)?;
        let mut builder = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(config.region.clone()))
            .force_path_style(config.path_style)
            .credentials_provider(credentials(config, &http_client))
            .http_client(http_client)
            .retry_config(RetryConfig::standard().with_max_attempts(config.max_attempts))
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(config.connect_timeout))
                    .read_timeout(timeout)
                    .build(),
            )
            // A stalled upstream (one that stops reading or sending) fails the transfer after
            // `timeout`; a slow client does not count as a stall.
            .stalled_stream_protection(StalledStreamProtectionConfig::enabled().grace_period(timeout).build())
            // Checksums only where S3 requires them: a plain body with a Content-Length, which
            // every upstream accepts. The gateway computes and checks its own.
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
        if let Some(endpoint) = &config.endpoint {
            builder = builder.endpoint_url(endpoint);
        }
        builder = builder.interceptor(CountUpstreamRequests);
        Ok(Self {
            client: aws_sdk_s3::Client::from_conf(builder.build()),
            bucket: config.bucket.clone(),
            prefix: config.prefix.clone(),
            timeout,
            mirror_lock: config.object_lock == UpstreamObjectLock::Mirror,
        })
    }

    /// Checks that the upstream bucket has Object Lock, which mirroring needs.
    ///
    /// # Errors
    ///
    /// [`OpenError::NoObjectLock`] when it has none or the upstream cannot say.
    pub async fn require_object_lock(&self) -> Result<(), OpenError> {
        let refused = |reason: String| OpenError::NoObjectLock { bucket: self.bucket.clone(), reason };
        let config = self
            .client
            .get_object_lock_configuration()
            .bucket(&self.bucket)
            .send()
            .await
            .map_err(|err| refused(error_chain(&err)))?;
        let enabled = config
            .object_lock_configuration()
            .and_then(|c| c.object_lock_enabled())
            .is_some_and(|e| *e == ObjectLockEnabled::Enabled);
        if enabled { Ok(()) } else { Err(refused("Object Lock is not enabled".to_owned())) }
    }

    /// The HEAD of a blob's object: its upstream version id (in a versioned bucket, as one
    /// with Object Lock always is) and the lock it holds. Each blob key is written once, so
    /// its current version is the blob.
    async fn head(&self, key: &str) -> Result<aws_sdk_s3::operation::head_object::HeadObjectOutput> {
        self.client.head_object().bucket(&self.bucket).key(key).send().await.map_err(upstream_error)
    }

    /// The upstream key of a blob. Only ids of our own shape are accepted, so no id can name
    /// an object outside the prefix or one the gateway did not write.
    fn key(&self, id: &BlobId) -> Result<String> {
        id_ok(id.as_str())?;
        Ok(format!("{}{}", self.prefix, id.as_str()))
    }

    /// Sends `len` bytes from `rx` to `target`; returns the upstream's ETag and, for an object
    /// in a versioned bucket, its version id. The upstream must answer within `timeout` of
    /// `sent` firing (the body handed over whole); before that, the stalled-stream protection
    /// watches the transfer.
    async fn upload(
        &self,
        target: Target<'_>,
        len: u64,
        rx: mpsc::Receiver<Chunk>,
        sent: oneshot::Receiver<()>,
    ) -> Result<Uploaded> {
        let body = ByteStream::new(SdkBody::from_body_1_x(ChannelBody::new(rx, len)));
        let length = i64::try_from(len).map_err(|_| BlobError::InvalidRange { start: 0, end: len, size: len })?;
        // The read timeout would run from the first byte of the body: no good for a large
        // one. The deadline below starts when the body has been handed over instead.
        let no_read_timeout =
            aws_sdk_s3::Config::builder().timeout_config(TimeoutConfig::builder().disable_read_timeout().build());
        let request = async {
            match target {
                Target::Object { key } => self
                    .client
                    .put_object()
                    .bucket(&self.bucket)
                    .key(key)
                    .content_length(length)
                    .body(body)
                    .customize()
                    .config_override(no_read_timeout)
                    .send()
                    .await
                    .map(|out| Uploaded { etag: out.e_tag, version_id: out.version_id })
                    .map_err(upstream_error),
                Target::Part { key, upload_id, number } => self
                    .client
                    .upload_part()
                    .bucket(&self.bucket)
                    .key(key)
                    .upload_id(upload_id)
                    .part_number(number)
                    .content_length(length)
                    .body(body)
                    .customize()
                    .config_override(no_read_timeout)
                    .send()
                    .await
                    .map(|out| Uploaded { etag: out.e_tag, version_id: None })
                    .map_err(upstream_error),
            }
        };
        let mut request = std::pin::pin!(request);
        let deadline = async {
            // An abandoned body ends the request by itself; only a complete one starts the clock.
            if sent.await.is_ok() {
                tokio::time::sleep(self.timeout).await;
            } else {
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            result = &mut request => result,
            () = deadline => Err(BlobError::Unavailable("the upstream did not answer a PUT in time".to_owned())),
        }
    }

    /// Streams `len` bytes of `body` through the hashing workers and, in the same pass, to
    /// `target` upstream.
    async fn stream_through(
        &self,
        body: BodyStream,
        len: u64,
        algorithms: &[ChecksumAlgorithm],
        part_offset: Option<u64>,
        target: Target<'_>,
        sealer: Option<Sealer>,
    ) -> Result<Streamed> {
        // 1. The hashing workers, and the upstream request reading its own channel (through
        //    the sealer when the blob is stored encrypted).
        let (md5_tx, md5_rx) = mpsc::channel(PIPELINE_DEPTH);
        let (digest_tx, digest_rx) = mpsc::channel(PIPELINE_DEPTH);
        let (mut upstream_tx, upstream_rx) = mpsc::channel(PIPELINE_DEPTH);
        let stored_len = match sealer {
            Some(sealer) => {
                let (plain_tx, plain_rx) = mpsc::channel(PIPELINE_DEPTH);
                tokio::spawn(seal_worker(plain_rx, sealer, std::mem::replace(&mut upstream_tx, plain_tx)));
                crate::crypto::segments::sealed_len(len)
            }
            None => len,
        };
        let md5_worker = tokio::spawn(md5_worker(md5_rx));
        let (hasher, checksummer) = (BlobHasher::new(part_offset, Some(len)), Checksummer::new(algorithms));
        let digest_worker = tokio::spawn(digest_worker(digest_rx, hasher, checksummer));
        let (sent_tx, sent_rx) = oneshot::channel();

        // 2. Feed the body to every worker and upstream at once. A body that fails closes the
        //    upstream channel without `End`, which aborts the upstream request: S3 stores a
        //    PUT (or a part) whole or not at all.
        let feeding = async {
            let workers = [&md5_tx, &digest_tx, &upstream_tx];
            let fed = feed(body, Some(len), &workers).await;
            if fed.is_ok() {
                for worker in &workers {
                    // A failed send means the worker already stopped; its own result says why.
                    let _ = worker.send(Chunk::End).await;
                }
                let _ = sent_tx.send(());
            }
            drop((md5_tx, digest_tx, upstream_tx));
            fed
        };
        let (fed, uploaded) = tokio::join!(feeding, self.upload(target, stored_len, upstream_rx, sent_rx));

        // 3. The client's own failure explains an aborted upload; otherwise the upstream's.
        let (size, Uploaded { etag, version_id }) = match (fed, uploaded) {
            (Err(err @ (BlobError::Body(_) | BlobError::IncompleteBody { .. })), _) | (_, Err(err)) => return Err(err),
            (Err(err), Ok(_)) => return Err(err),
            (Ok(size), Ok(uploaded)) => (size, uploaded),
        };

        // 4. Collect the hashes.
        let md5 = md5_worker.await.map_err(join_error)?;
        let digests = digest_worker.await.map_err(join_error)?;
        let Digests { hashed, checksums } = digests.ok_or_else(|| io::Error::other("digest worker stopped early"))?;
        let md5 = md5.ok_or_else(|| io::Error::other("md5 worker stopped early"))?;
        Ok(Streamed { size, hashed, md5, checksums, etag, version_id })
    }
}

/// Where [`S3BlobStore::upload`] sends a body.
#[derive(Clone, Copy)]
enum Target<'a> {
    /// A whole new object.
    Object { key: &'a str },
    /// Part `number` of an upstream multipart upload.
    Part { key: &'a str, upload_id: &'a str, number: i32 },
}

/// What streaming a body through the workers and upstream produced.
struct Streamed {
    size: u64,
    hashed: Hashed,
    md5: [u8; 16],
    checksums: Checksums,
    /// The upstream's ETag for what it stored.
    etag: Option<String>,
    /// The upstream's version id of a new object, in a versioned bucket.
    version_id: Option<String>,
}

/// What the upstream answered a PUT or UploadPart with.
struct Uploaded {
    etag: Option<String>,
    version_id: Option<String>,
}

impl Streamed {
    fn staged(self, stage: Box<dyn Stage>) -> StagedBlob {
        StagedBlob::new(self.size, self.hashed, self.md5, self.checksums, stage)
    }
}

/// A body with its length: the body as is when the client announced one, else spooled to
/// learn it (an upstream PUT or part needs its length up front; spooling to an anonymous temp
/// file keeps memory bounded).
async fn with_length(body: BodyStream, expected_len: Option<u64>) -> Result<(BodyStream, u64)> {
    match expected_len {
        Some(len) => Ok((body, len)),
        None => spool(body).await,
    }
}

/// Static credentials from the configuration, else those of the configured profile of the
/// shared AWS files, else the `AWS_*` variables of the upstream's own convention.
fn credentials(config: &UpstreamConfig, http_client: &SharedHttpClient) -> SharedCredentialsProvider {
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    if let (None, Some(profile)) = (&config.access_key, &config.profile) {
        // Read when the first request is signed, and again when they expire (a profile can
        // name a role to assume, which the gateway's own HTTPS client asks STS for).
        let provider_config = aws_config::provider_config::ProviderConfig::without_region()
            .with_region(Some(Region::new(config.region.clone())))
            .with_http_client(http_client.clone());
        return SharedCredentialsProvider::new(
            aws_config::profile::ProfileFileCredentialsProvider::builder()
                .configure(&provider_config)
                .profile_name(profile)
                .build(),
        );
    }
    SharedCredentialsProvider::new(match (&config.access_key, &config.secret_key) {
        (Some(access), Some(secret)) => Credentials::new(
            access,
            secret.expose(),
            config.session_token.as_ref().map(|t| t.expose().to_owned()),
            None,
            "artifact-store config",
        ),
        _ => Credentials::new(
            env("AWS_ACCESS_KEY_ID").unwrap_or_default(),
            env("AWS_SECRET_ACCESS_KEY").unwrap_or_default(),
            env("AWS_SESSION_TOKEN"),
            None,
            "environment",
        ),
    })
}

/// Resolves the credentials of `upstream.profile` once, so that a missing or malformed profile
/// stops the start rather than failing every upstream request.
///
/// # Errors
///
/// [`OpenError::Profile`]; [`OpenError::CaBundle`] for an unusable CA bundle.
pub async fn require_profile(config: &UpstreamConfig, profile: &str) -> Result<(), OpenError> {
    let provider = credentials(config, &http_client(config)?);
    provider
        .provide_credentials()
        .await
        .map_err(|err| OpenError::Profile { profile: profile.to_owned(), reason: error_chain(&err) })?;
    Ok(())
}

/// The SDK's rustls client (ring, no aws-lc), trusting the system roots and the configured
/// bundle.
fn http_client(config: &UpstreamConfig) -> Result<SharedHttpClient, OpenError> {
    let mut trust = TrustStore::default();
    if let Some(path) = &config.ca_bundle {
        let pem =
            std::fs::read(path).map_err(|err| OpenError::CaBundle { path: path.clone(), reason: err.to_string() })?;
        trust = trust.with_pem_certificate(pem.as_slice());
    }
    let context = TlsContext::builder().with_trust_store(trust).build().map_err(|err| OpenError::CaBundle {
        path: config.ca_bundle.clone().unwrap_or_default(),
        reason: err.to_string(),
    })?;
    Ok(aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(tls::rustls_provider::CryptoMode::Ring))
        .tls_context(context)
        .build_https())
}

#[async_trait]
impl BlobStore for S3BlobStore {
    async fn put(
        &self,
        body: BodyStream,
        expected_len: Option<u64>,
        algorithms: &[ChecksumAlgorithm],
        part_offset: Option<u64>,
        seal: Option<Seal>,
    ) -> Result<StagedBlob> {
        let (body, len) = with_length(body, expected_len).await?;
        let id = BlobId::new(hex::encode(rand::random::<[u8; 16]>()));
        let key = self.key(&id)?;
        let sealer = seal.map(|seal| seal.sealer);
        let streamed =
            self.stream_through(body, len, algorithms, part_offset, Target::Object { key: &key }, sealer).await;
        // From here the object may exist upstream (an upload that failed late may still have
        // landed): the stage's guard deletes it on any exit but a commit.
        let version_id = streamed.as_ref().ok().and_then(|s| s.version_id.clone());
        let stage =
            S3Stage { client: self.client.clone(), bucket: self.bucket.clone(), key, version_id, id, committed: false };
        Ok(streamed?.staged(Box::new(stage)))
    }

    async fn get(&self, id: &BlobId, range: Option<(u64, u64)>) -> Result<BlobStream> {
        let key = self.key(id)?;
        let mut request = self.client.get_object().bucket(&self.bucket).key(key);
        if let Some((first, last)) = range {
            if first > last {
                return Err(BlobError::InvalidRange { start: first, end: last, size: 0 });
            }
            request = request.range(format!("bytes={first}-{last}"));
        }
        let output = request.send().await.map_err(|err| match upstream_error(err) {
            BlobError::InvalidRange { size, .. } => {
                let (start, end) = range.unwrap_or_default();
                BlobError::InvalidRange { start, end, size }
            }
            other => other,
        })?;
        let chunks = futures::stream::unfold(output.body, |mut body| async move {
            let next = body.try_next().await;
            match next {
                Ok(Some(bytes)) => Some((Ok(bytes), body)),
                Ok(None) => None,
                // The client sees a truncated body, never a gap.
                Err(err) => Some((Err(BlobError::Io(io::Error::other(err))), ByteStream::new(SdkBody::empty()))),
            }
        });
        Ok(Box::pin(sync_wrapper::SyncStream::new(chunks)))
    }

    async fn size(&self, id: &BlobId) -> Result<u64> {
        let key = self.key(id)?;
        let head = self.client.head_object().bucket(&self.bucket).key(key).send().await.map_err(upstream_error)?;
        Ok(head.content_length().and_then(|n| u64::try_from(n).ok()).unwrap_or(0))
    }

    async fn delete(&self, id: &BlobId) -> Result<()> {
        let key = self.key(id)?;
        if !self.mirror_lock {
            self.client.delete_object().bucket(&self.bucket).key(key).send().await.map_err(upstream_error)?;
            return Ok(());
        }
        // The bucket is versioned: only deleting the version removes the bytes, and the
        // upstream refuses that while a mirrored lock holds them.
        let version_id = self.head(&key).await?.version_id;
        let deleted = self.client.delete_object().bucket(&self.bucket).key(key).set_version_id(version_id).send().await;
        match deleted.map_err(upstream_error) {
            Ok(_) => Ok(()),
            Err(BlobError::Upstream { code, .. }) if code == "AccessDenied" => Err(BlobError::Locked),
            Err(err) => Err(err),
        }
    }

    async fn list(&self) -> Result<Pin<Box<dyn Stream<Item = Result<BlobEntry>> + Send>>> {
        use futures::StreamExt as _;
        let store = self.clone();
        // One page per step; `None` once the last page has been listed.
        let pages = futures::stream::try_unfold(Some(None::<String>), move |token| {
            let store = store.clone();
            async move {
                let Some(token) = token else { return Ok(None) };
                let page = store
                    .client
                    .list_objects_v2()
                    .bucket(&store.bucket)
                    .prefix(&store.prefix)
                    .max_keys(LIST_PAGE)
                    .set_continuation_token(token)
                    .send()
                    .await
                    .map_err(upstream_error)?;
                let next =
                    page.next_continuation_token().map(str::to_owned).filter(|_| page.is_truncated() == Some(true));
                let entries: Vec<Result<BlobEntry>> = page
                    .contents()
                    .iter()
                    .filter_map(|object| {
                        // Keys that are not ours (another tool's, under the same prefix) are
                        // never collected.
                        let id = object.key()?.strip_prefix(store.prefix.as_str())?;
                        id_ok(id).ok()?;
                        let modified = object
                            .last_modified()
                            .and_then(|t| SystemTime::try_from(*t).ok())
                            .unwrap_or_else(SystemTime::now);
                        let size = object.size().and_then(|n| u64::try_from(n).ok()).unwrap_or(0);
                        Some(Ok(BlobEntry { id: BlobId::new(id), size, modified }))
                    })
                    .collect();
                Ok(Some((futures::stream::iter(entries), next.map(Some))))
            }
        });
        Ok(Box::pin(
            pages
                .map(|page: Result<_>| match page {
                    Ok(entries) => entries.left_stream(),
                    Err(err) => futures::stream::once(async { Err(err) }).right_stream(),
                })
                .flatten(),
        ))
    }

    async fn probe(&self) -> Result<()> {
        self.client.head_bucket().bucket(&self.bucket).send().await.map_err(upstream_error)?;
        Ok(())
    }

    async fn protect(&self, id: &BlobId, lock: &BlobLock) -> Result<()> {
        if !self.mirror_lock {
            return Ok(());
        }
        let key = self.key(id)?;
        // What the object holds now, from its HEAD (moto has no GetObjectRetention, and one
        // request answers both).
        let head = self.head(&key).await?;
        let held_mode = head.object_lock_mode().map(|m| match m {
            ObjectLockMode::Compliance => RetentionMode::Compliance,
            _ => RetentionMode::Governance,
        });
        let held_until = head.object_lock_retain_until_date().and_then(|t| SystemTime::try_from(*t).ok());
        let held = held_mode.zip(held_until);
        if let Some((mode, until)) = lock.retention {
            // The later date and the stricter mode: several versions may share this blob, and
            // the upstream (rightly) refuses to shorten a compliance retention anyway.
            let wanted = held.map_or((mode, until), |(h_mode, h_until)| (mode.max(h_mode), until.max(h_until)));
            if Some(wanted) != held {
                let retention = ObjectLockRetention::builder()
                    .mode(match wanted.0 {
                        RetentionMode::Governance => ObjectLockRetentionMode::Governance,
                        RetentionMode::Compliance => ObjectLockRetentionMode::Compliance,
                    })
                    .retain_until_date(aws_sdk_s3::primitives::DateTime::from(wanted.1))
                    .build();
                // Turning governance into compliance is a change governance guards.
                let bypass = held_mode == Some(RetentionMode::Governance) && wanted.0 == RetentionMode::Compliance;
                self.client
                    .put_object_retention()
                    .bucket(&self.bucket)
                    .key(&key)
                    .set_version_id(head.version_id.clone())
                    .retention(retention)
                    .set_bypass_governance_retention(bypass.then_some(true))
                    .send()
                    .await
                    .map_err(upstream_error)?;
            }
        }
        let held_hold = head.object_lock_legal_hold_status() == Some(&ObjectLockLegalHoldStatus::On);
        if lock.legal_hold != held_hold {
            let status = if lock.legal_hold { ObjectLockLegalHoldStatus::On } else { ObjectLockLegalHoldStatus::Off };
            self.client
                .put_object_legal_hold()
                .bucket(&self.bucket)
                .key(&key)
                .set_version_id(head.version_id.clone())
                .legal_hold(ObjectLockLegalHold::builder().status(status).build())
                .send()
                .await
                .map_err(upstream_error)?;
        }
        Ok(())
    }

    async fn begin_multipart(&self) -> Result<Option<StoreUpload>> {
        let blob = BlobId::new(hex::encode(rand::random::<[u8; 16]>()));
        let key = self.key(&blob)?;
        let created =
            self.client.create_multipart_upload().bucket(&self.bucket).key(key).send().await.map_err(upstream_error)?;
        let upload_id = created.upload_id.ok_or_else(|| {
            BlobError::Unavailable("the upstream answered CreateMultipartUpload without an upload id".to_owned())
        })?;
        Ok(Some(StoreUpload { blob, upload_id }))
    }

    async fn put_part(
        &self,
        (upload, number): (&StoreUpload, u32),
        body: BodyStream,
        expected_len: Option<u64>,
        algorithms: &[ChecksumAlgorithm],
        part_offset: Option<u64>,
        seal: Option<Seal>,
    ) -> Result<StagedBlob> {
        let key = self.key(&upload.blob)?;
        let number = i32::try_from(number).map_err(|_| BlobError::InvalidId)?;
        let (body, len) = with_length(body, expected_len).await?;
        let target = Target::Part { key: &key, upload_id: &upload.upload_id, number };
        let sealer = seal.map(|seal| seal.sealer);
        let mut streamed = self.stream_through(body, len, algorithms, part_offset, target, sealer).await?;
        let etag = streamed
            .etag
            .take()
            .ok_or_else(|| BlobError::Unavailable("the upstream answered UploadPart without an ETag".to_owned()))?;
        Ok(streamed.staged(Box::new(PartStage { blob: upload.blob.clone(), placed: false })).with_store_etag(etag))
    }

    async fn complete_multipart(&self, upload: &StoreUpload, parts: &[PartToJoin]) -> Result<Vec<u64>> {
        let named: Vec<(u32, &str)> = parts.iter().map(|p| (p.number, p.etag.as_str())).collect();
        let refused = match self.complete_with(upload, &named).await {
            Ok(()) => return Ok(successive_offsets(parts.iter().map(|p| p.size))),
            Err(BlobError::Upstream { code, .. }) if code == "InvalidPart" => BlobError::Upstream { status: 400, code },
            Err(err) => return Err(err),
        };
        // Ceph RGW completes an upload only with every part it holds, where S3 drops the parts
        // left out: those the client left out, and any whose request reached the upstream but
        // was never recorded (the gateway was killed meanwhile). Join every held part then, as
        // long as the named ones are there as recorded, and point past the others.
        let held = self.held_parts(upload).await?;
        let same = |part: &PartToJoin| {
            held.iter()
                .any(|h| h.number == part.number && unquoted(&h.etag) == unquoted(&part.etag) && h.size == part.size)
        };
        if held.len() == parts.len() || !parts.iter().all(same) {
            return Err(refused);
        }
        tracing::warn!(
            upload = %upload.upload_id,
            held = held.len(),
            named = parts.len(),
            "the upstream completes an upload only with every part it holds; the parts not named stay in its blob, unreferenced"
        );
        let all: Vec<(u32, &str)> = held.iter().map(|h| (h.number, h.etag.as_str())).collect();
        self.complete_with(upload, &all).await?;
        let offsets = successive_offsets(held.iter().map(|h| h.size));
        Ok(parts
            .iter()
            .map(|part| held.iter().zip(&offsets).find(|(h, _)| h.number == part.number).map_or(0, |(_, &at)| at))
            .collect())
    }

    async fn abort_multipart(&self, upload: &StoreUpload) -> Result<()> {
        let key = self.key(&upload.blob)?;
        let aborted = self
            .client
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(&upload.upload_id)
            .send()
            .await;
        match aborted.map_err(upstream_error) {
            Ok(_) | Err(BlobError::NotFound) => Ok(()),
            Err(err) => Err(err),
        }
    }

    async fn list_multipart(&self) -> Result<Vec<(StoreUpload, SystemTime)>> {
        let mut uploads = Vec::new();
        let (mut key_marker, mut upload_id_marker) = (None::<String>, None::<String>);
        loop {
            let page = self
                .client
                .list_multipart_uploads()
                .bucket(&self.bucket)
                .prefix(&self.prefix)
                .max_uploads(LIST_PAGE)
                .set_key_marker(key_marker.take())
                .set_upload_id_marker(upload_id_marker.take())
                .send()
                .await
                .map_err(upstream_error)?;
            for upload in page.uploads() {
                // Uploads that are not ours (another tool's, under the same prefix) are
                // never touched.
                let Some(id) = upload.key().and_then(|k| k.strip_prefix(self.prefix.as_str())) else { continue };
                let (Ok(()), Some(upload_id)) = (id_ok(id), upload.upload_id()) else { continue };
                let initiated =
                    upload.initiated().and_then(|t| SystemTime::try_from(*t).ok()).unwrap_or_else(SystemTime::now);
                uploads.push((StoreUpload { blob: BlobId::new(id), upload_id: upload_id.to_owned() }, initiated));
            }
            if page.is_truncated() != Some(true) {
                return Ok(uploads);
            }
            key_marker = page.next_key_marker().map(str::to_owned);
            upload_id_marker = page.next_upload_id_marker().map(str::to_owned);
            if key_marker.is_none() && upload_id_marker.is_none() {
                return Ok(uploads);
            }
        }
    }
}

/// Bytes per read when a spooled body is read back.
const SPOOL_CHUNK: usize = 1 << 20;

/// Writes `body` to an anonymous temp file (gone when closed, even after a crash) and returns
/// a stream reading it back, with its length.
async fn spool(mut body: BodyStream) -> Result<(BodyStream, u64)> {
    use futures::StreamExt as _;
    use tokio::io::{AsyncReadExt as _, AsyncSeekExt as _, AsyncWriteExt as _};
    let file = spawn_blocking(tempfile::tempfile).await.map_err(join_error)??;
    let mut file = tokio::io::BufWriter::with_capacity(SPOOL_CHUNK, tokio::fs::File::from_std(file));
    let mut len: u64 = 0;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(BlobError::Body)?;
        len += chunk.len() as u64;
        file.write_all(&chunk).await?;
    }
    file.flush().await?;
    let mut file = file.into_inner();
    file.seek(std::io::SeekFrom::Start(0)).await?;
    let chunks = futures::stream::try_unfold(file, |mut file| async move {
        let mut buf = vec![0; SPOOL_CHUNK];
        let n = file.read(&mut buf).await?;
        buf.truncate(n);
        Ok((n > 0).then(|| (Bytes::from(buf), file)))
    });
    Ok((Box::pin(chunks), len))
}

/// An uploaded object waiting for its version's event. Committing keeps it; dropping it
/// uncommitted deletes it upstream in the background (`gc` catches what that misses).
struct S3Stage {
    client: aws_sdk_s3::Client,
    bucket: String,
    key: String,
    /// In a versioned upstream bucket, deleting without it would only hide the object.
    version_id: Option<String>,
    id: BlobId,
    committed: bool,
}

#[async_trait]
impl Stage for S3Stage {
    async fn place(&mut self) -> Result<BlobId> {
        // Asked again only when gc deleted the object before its write was recorded; the
        // bytes went upstream as they streamed, and no copy is kept to send them again.
        if self.committed {
            return Err(gone_before_recorded(&self.id));
        }
        // The object is already in place under its final key: nothing to move.
        self.committed = true;
        Ok(self.id.clone())
    }
}

fn gone_before_recorded(id: &BlobId) -> BlobError {
    BlobError::Unavailable(format!("gc deleted upstream blob {id} before its write was recorded"))
}

impl Drop for S3Stage {
    fn drop(&mut self) {
        if self.committed {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        let request =
            self.client.delete_object().bucket(&self.bucket).key(&self.key).set_version_id(self.version_id.take());
        let key = std::mem::take(&mut self.key);
        runtime.spawn(async move {
            if let Err(err) = request.send().await {
                tracing::warn!(%key, error = %upstream_error(err), "could not delete an unused upstream object; gc will");
            }
        });
    }
}

/// A part inside an upstream multipart upload: already in place, and it cannot be removed on
/// its own, so dropping it leaves it to the upload (a part no completion names is discarded
/// with the upload's completion or abort).
struct PartStage {
    blob: BlobId,
    placed: bool,
}

#[async_trait]
impl Stage for PartStage {
    async fn place(&mut self) -> Result<BlobId> {
        if self.placed {
            return Err(gone_before_recorded(&self.blob));
        }
        self.placed = true;
        Ok(self.blob.clone())
    }
}

/// A request body fed by the hashing pipeline: `Data` chunks, then `End`. A channel closed
/// before `End` is an abandoned body, reported as an error so the request is aborted rather
/// than sent short.
///
/// The body's last byte waits for `End`: the upstream has a whole object or part, and stores
/// it, as soon as its last byte arrives, while the client's body can still fail after its last
/// byte was read (the signature of an aws-chunked body's final chunk, `x-amz-content-sha256`
/// checked at its end). A part refused then must not replace the part already uploaded under
/// its number.
struct ChannelBody {
    rx: mpsc::Receiver<Chunk>,
    /// Bytes not yet handed to the request, the held one included.
    remaining: u64,
    /// The last byte, until `End` releases it.
    held: Option<Bytes>,
    /// `End` came: the body is over once the held byte is handed on.
    ended: bool,
}

impl ChannelBody {
    fn new(rx: mpsc::Receiver<Chunk>, len: u64) -> Self {
        Self { rx, remaining: len, held: None, ended: false }
    }
}

impl http_body::Body for ChannelBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        loop {
            if self.ended {
                return Poll::Ready(None);
            }
            match self.rx.poll_recv(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Chunk::Data(mut bytes))) => {
                    let len = bytes.len() as u64;
                    if len > 0 && len >= self.remaining {
                        // The frame with the last byte: all but that byte now.
                        self.held = Some(bytes.split_off(bytes.len() - 1));
                        self.remaining = 1;
                        if bytes.is_empty() {
                            continue;
                        }
                    } else {
                        self.remaining -= len;
                    }
                    return Poll::Ready(Some(Ok(Frame::data(bytes))));
                }
                Poll::Ready(Some(Chunk::End)) => {
                    self.ended = true;
                    if let Some(last) = self.held.take() {
                        self.remaining = 0;
                        return Poll::Ready(Some(Ok(Frame::data(last))));
                    }
                }
                Poll::Ready(None) => return Poll::Ready(Some(Err(io::Error::other("request body abandoned")))),
            }
        }
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

/// Our blob ids: 32 lowercase hex digits.
fn id_ok(id: &str) -> Result<()> {
    let valid = id.len() == 32 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    if valid { Ok(()) } else { Err(BlobError::InvalidId) }
}

/// Throttling codes AWS and its imitators answer with.
const THROTTLED: &[&str] =
    &["SlowDown", "Throttling", "ThrottlingException", "RequestLimitExceeded", "TooManyRequests"];

/// Counts every attempt at an upstream request in `/_metrics`, by operation and the HTTP
/// status it got (`none` when no answer came: refused, timed out).
#[derive(Debug)]
struct CountUpstreamRequests;

impl Intercept for CountUpstreamRequests {
    fn name(&self) -> &'static str {
        "CountUpstreamRequests"
    }

    fn read_after_attempt(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let op = cfg.load::<Metadata>().map_or("unknown", Metadata::name);
        let outcome = context.response().map_or_else(|| "none".to_owned(), |r| r.status().as_u16().to_string());
        crate::metrics::upstream_request("s3", op, &outcome);
        Ok(())
    }
}

/// An SDK error as a [`BlobError`]: what a client may be told is decided here; the upstream's
/// own words go to the log only.
impl S3BlobStore {
    /// Completes the upstream's upload with `parts` (number and ETag, in order).
    async fn complete_with(&self, upload: &StoreUpload, parts: &[(u32, &str)]) -> Result<()> {
        let key = self.key(&upload.blob)?;
        let parts = parts
            .iter()
            .map(|(number, etag)| {
                let number = i32::try_from(*number).map_err(|_| BlobError::InvalidId)?;
                Ok(CompletedPart::builder().part_number(number).e_tag(*etag).build())
            })
            .collect::<Result<Vec<_>>>()?;
        self.client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(&upload.upload_id)
            .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build())
            .send()
            .await
            .map_err(upstream_error)?;
        Ok(())
    }

    /// Every part the upstream holds for `upload`, in order (ListParts, all pages).
    async fn held_parts(&self, upload: &StoreUpload) -> Result<Vec<PartToJoin>> {
        let key = self.key(&upload.blob)?;
        let mut held = Vec::new();
        let mut marker = None::<String>;
        loop {
            let page = self
                .client
                .list_parts()
                .bucket(&self.bucket)
                .key(&key)
                .upload_id(&upload.upload_id)
                .set_part_number_marker(marker.take())
                .send()
                .await
                .map_err(upstream_error)?;
            for part in page.parts() {
                let number = part.part_number().and_then(|n| u32::try_from(n).ok()).ok_or(BlobError::InvalidId)?;
                let size = part.size().and_then(|n| u64::try_from(n).ok()).unwrap_or(0);
                held.push(PartToJoin { number, etag: part.e_tag().unwrap_or_default().to_owned(), size });
            }
            match page.next_part_number_marker() {
                Some(next) if page.is_truncated() == Some(true) => marker = Some(next.to_owned()),
                _ => break,
            }
        }
        held.sort_by_key(|part| part.number);
        Ok(held)
    }
}

fn unquoted(etag: &str) -> &str {
    etag.trim_matches('"')
}

/// The offset of each of `sizes` when they are joined one after the other.
fn successive_offsets(sizes: impl Iterator<Item = u64>) -> Vec<u64> {
    sizes
        .scan(0, |next, size| {
            let at = *next;
            *next += size;
            Some(at)
        })
        .collect()
}

fn upstream_error<E>(err: SdkError<E, aws_sdk_s3::config::http::HttpResponse>) -> BlobError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let status = err.raw_response().map(|r| r.status().as_u16());
    let code = err.code().unwrap_or_default().to_owned();
    let unavailable = |what: &str| BlobError::Unavailable(format!("upstream {what}: {}", error_chain(&err)));
    match (&err, status) {
        (SdkError::TimeoutError(_), _) => unavailable("timed out"),
        (SdkError::DispatchFailure(_) | SdkError::ResponseError(_), _) => unavailable("unreachable"),
        _ if THROTTLED.contains(&code.as_str()) || status == Some(429) => {
            BlobError::SlowDown(format!("upstream throttled: {code}"))
        }
        (_, Some(500..)) => unavailable(&format!("answered {}", status.unwrap_or_default())),
        (_, Some(416)) => BlobError::InvalidRange { start: 0, end: 0, size: 0 },
        _ if code == "NoSuchBucket" => unavailable("has no such bucket"),
        (_, Some(404)) => BlobError::NotFound,
        (_, status) => BlobError::Upstream { status: status.unwrap_or_default(), code },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_our_ids_become_keys() {
        let store = S3BlobStore::open(&UpstreamConfig { bucket: "b".into(), ..UpstreamConfig::default() }).unwrap();
        let id = BlobId::new("0123456789abcdef0123456789abcdef");
        assert_eq!(store.key(&id).unwrap(), "artifact-store/0123456789abcdef0123456789abcdef");
        for bad in ["../x", "", "0123456789ABCDEF0123456789ABCDEF", &"a".repeat(64), "0123456789abcdef0123456789abcde/"]
        {
            assert!(matches!(store.key(&BlobId::new(bad)), Err(BlobError::InvalidId)), "{bad}");
        }
    }
}
