//! The gateway over a blob store that fails on demand, served in-process on a loopback port
//! and driven by aws-sdk-s3: a write whose blob cannot be made durable leaves no object, no
//! event and no file; a read the store cannot start answers 500; and a store that ends a
//! blob early never gets a complete response past the gateway, as `s3::integrity` promises
//! (500 for reads checked before the response head, a cut body for the larger ones).

use std::io;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::SystemTime;

use artifact_store_gateway::backend::fs::FsBlobStore;
use artifact_store_gateway::backend::{
    BlobEntry, BlobError, BlobId, BlobStore, BlobStream, BodyStream, PartToJoin, Result, Stage, StagedBlob, StoreUpload,
};
use artifact_store_gateway::config::Config;
use artifact_store_gateway::crypto::Seal;
use artifact_store_gateway::digest::ChecksumAlgorithm;
use artifact_store_gateway::layout;
use artifact_store_gateway::server::serve_with_blobs;
use async_trait::async_trait;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use futures::{Stream, StreamExt as _, TryStreamExt as _};
use registry::Event;
use registry::event::v1::{CorruptReason, CorruptSubject, Payload};

const BUCKET: &str = "faults";
const ROOT_KEY: &str = "FAULTYROOT";
const ROOT_SECRET: &str = "faulty-root-secret";

/// What the store is told to get wrong.
#[derive(Debug, Default)]
struct Faults {
    /// Making a staged blob a permanent one fails (the staged bytes are dropped).
    commit: AtomicBool,
    /// `get` fails before any byte.
    read: AtomicBool,
    /// `get` streams only the first half of the span, then ends as if that were all.
    short_read: AtomicBool,
    /// Commits that failed as told.
    failed_commits: AtomicU32,
    /// Reads that failed or were cut as told.
    faulty_reads: AtomicU32,
}

/// The local store, failing where [`Faults`] says.
struct FaultyStore {
    inner: FsBlobStore,
    faults: Arc<Faults>,
}

/// The stage of a staged blob whose commit fails: it drops the real staged blob, which
/// discards its bytes, as a store does when it cannot make them permanent.
struct FailingStage {
    staged: Option<StagedBlob>,
    faults: Arc<Faults>,
}

#[async_trait]
impl Stage for FailingStage {
    async fn place(&mut self) -> Result<BlobId> {
        self.staged = None;
        self.faults.failed_commits.fetch_add(1, Ordering::SeqCst);
        Err(BlobError::Io(io::Error::other("injected: the blob could not be made durable")))
    }
}

impl FaultyStore {
    fn stage(&self, staged: StagedBlob) -> StagedBlob {
        if !self.faults.commit.load(Ordering::SeqCst) {
            return staged;
        }
        let hashed = staged.hashed().clone();
        let (size, md5, checksums) = (staged.size(), staged.md5(), staged.checksums().clone());
        let stage = FailingStage { staged: Some(staged), faults: Arc::clone(&self.faults) };
        StagedBlob::new(size, hashed, md5, checksums, Box::new(stage))
    }
}

/// Passes on the first `keep` bytes of `inner`, then ends.
fn first_bytes(inner: BlobStream, keep: u64) -> BlobStream {
    Box::pin(inner.scan(keep, |left, chunk| {
        let item = match chunk {
            Ok(_) if *left == 0 => None,
            Ok(mut bytes) => {
                bytes.truncate(usize::try_from(*left).unwrap_or(usize::MAX));
                *left -= bytes.len() as u64;
                Some(Ok(bytes))
            }
            Err(err) => Some(Err(err)),
        };
        std::future::ready(item)
    }))
}

#[async_trait]
impl BlobStore for FaultyStore {
    async fn put(
        &self,
        body: BodyStream,
        expected_len: Option<u64>,
        algorithms: &[ChecksumAlgorithm],
        subtree_offset: Option<u64>,
        seal: Option<Seal>,
    ) -> Result<StagedBlob> {
        let staged = self.inner.put(body, expected_len, algorithms, subtree_offset, seal).await?;
        Ok(self.stage(staged))
    }

    async fn get(&self, id: &BlobId, range: Option<(u64, u64)>) -> Result<BlobStream> {
        if self.faults.read.load(Ordering::SeqCst) {
            self.faults.faulty_reads.fetch_add(1, Ordering::SeqCst);
            return Err(BlobError::Io(io::Error::other("injected: the blob cannot be read")));
        }
        let stream = self.inner.get(id, range).await?;
        if !self.faults.short_read.load(Ordering::SeqCst) {
            return Ok(stream);
        }
        self.faults.faulty_reads.fetch_add(1, Ordering::SeqCst);
        let span = match range {
            Some((first, last)) => last - first + 1,
            None => self.inner.size(id).await?,
        };
        Ok(first_bytes(stream, span / 2))
    }

    async fn size(&self, id: &BlobId) -> Result<u64> {
        self.inner.size(id).await
    }

    async fn delete(&self, id: &BlobId) -> Result<()> {
        self.inner.delete(id).await
    }

    async fn list(&self) -> Result<Pin<Box<dyn Stream<Item = Result<BlobEntry>> + Send>>> {
        self.inner.list().await
    }

    async fn probe(&self) -> Result<()> {
        self.inner.probe().await
    }

    async fn begin_multipart(&self) -> Result<Option<StoreUpload>> {
        self.inner.begin_multipart().await
    }

    async fn put_part(
        &self,
        part: (&StoreUpload, u32),
        body: BodyStream,
        expected_len: Option<u64>,
        algorithms: &[ChecksumAlgorithm],
        subtree_offset: Option<u64>,
        seal: Option<Seal>,
    ) -> Result<StagedBlob> {
        let staged = self.inner.put_part(part, body, expected_len, algorithms, subtree_offset, seal).await?;
        Ok(self.stage(staged))
    }

    async fn complete_multipart(&self, upload: &StoreUpload, parts: &[PartToJoin]) -> Result<Vec<u64>> {
        self.inner.complete_multipart(upload, parts).await
    }

    async fn abort_multipart(&self, upload: &StoreUpload) -> Result<()> {
        self.inner.abort_multipart(upload).await
    }

    async fn list_multipart(&self) -> Result<Vec<(StoreUpload, SystemTime)>> {
        self.inner.list_multipart().await
    }
}

/// A gateway serving on a loopback port with a [`FaultyStore`] in a fresh data folder.
struct Gateway {
    dir: tempfile::TempDir,
    faults: Arc<Faults>,
    s3: aws_sdk_s3::Client,
    stop: tokio::sync::oneshot::Sender<()>,
    served: tokio::task::JoinHandle<()>,
}

impl Gateway {
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let flags = [
            ("storage.data_dir", dir.path().display().to_string()),
            // Every body goes to the blob store, however small.
            ("storage.inline_max_bytes", "0".to_owned()),
            ("auth.access_key", ROOT_KEY.to_owned()),
            ("auth.secret_key", ROOT_SECRET.to_owned()),
            ("server.shutdown_timeout", "5".to_owned()),
        ];
        let config = Config::load(None, &|_| None, &flags).unwrap();
        let faults = Arc::new(Faults::default());
        let store = FaultyStore { inner: FsBlobStore::open(dir.path()).unwrap(), faults: Arc::clone(&faults) };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let served = tokio::spawn(async move {
            serve_with_blobs(listener, config, Arc::new(store), async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
        });
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::Config::builder()
                .behavior_version(BehaviorVersion::latest())
                .region(Region::new("us-east-1"))
                .endpoint_url(endpoint)
                .force_path_style(true)
                .credentials_provider(Credentials::new(ROOT_KEY, ROOT_SECRET, None, None, "faulty-store"))
                .retry_config(RetryConfig::disabled())
                .http_client(aws_smithy_http_client::Builder::new().build_http())
                .build(),
        );
        s3.create_bucket().bucket(BUCKET).send().await.unwrap();
        Self { dir, faults, s3, stop, served }
    }

    async fn put(&self, key: &str, body: Vec<u8>) {
        self.s3.put_object().bucket(BUCKET).key(key).body(ByteStream::from(body)).send().await.unwrap();
    }

    /// Stops the gateway, which commits the records it queued, and returns the folder with
    /// the log.
    async fn stop(self) -> (tempfile::TempDir, Vec<Event>) {
        drop(self.s3);
        let _ = self.stop.send(());
        self.served.await.unwrap();
        let conn = registry::sqlite::open_read_only(layout::registry_path(self.dir.path())).unwrap();
        let events = registry::log::fetch_since(&conn, 0, usize::MAX).unwrap();
        (self.dir, events)
    }
}

/// The HTTP status and S3 error code of a call that must have failed with a response.
fn failure<T: std::fmt::Debug, E: ProvideErrorMetadata + std::fmt::Debug>(
    result: std::result::Result<T, SdkError<E, HttpResponse>>,
) -> (u16, String) {
    let err = result.expect_err("the call must fail");
    let status = err.raw_response().unwrap_or_else(|| panic!("no response: {err:?}")).status().as_u16();
    (status, err.code().unwrap_or_default().to_owned())
}

fn payloads(events: &[Event]) -> Vec<Payload> {
    events.iter().map(|e| e.decode().unwrap()).collect()
}

/// The bytes sent by each GET recorded for `key`.
fn recorded_gets(events: &[Event], key: &str) -> Vec<u64> {
    payloads(events)
        .into_iter()
        .filter_map(|p| match p {
            Payload::Retrieved(r) if r.version.key == key && r.method == "GET" => Some(r.bytes),
            _ => None,
        })
        .collect()
}

fn corruptions(events: &[Event], key: &str) -> Vec<CorruptReason> {
    payloads(events)
        .into_iter()
        .filter_map(|p| match p {
            Payload::BlobCorrupt(c) if matches!(&c.subject, CorruptSubject::Version(v) if v.key == key) => {
                Some(c.reason)
            }
            _ => None,
        })
        .collect()
}

async fn blob_files(data_dir: &Path) -> Vec<BlobEntry> {
    FsBlobStore::open(data_dir).unwrap().list().await.unwrap().try_collect().await.unwrap()
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

#[tokio::test]
async fn a_put_whose_commit_fails_leaves_no_object_no_event_and_no_file() {
    let gw = Gateway::start().await;
    gw.faults.commit.store(true, Ordering::SeqCst);

    let put = gw.s3.put_object().bucket(BUCKET).key("lost.bin").body(ByteStream::from(pattern(100_000))).send().await;
    assert_eq!(failure(put), (500, "InternalError".to_owned()));
    assert_eq!(gw.faults.failed_commits.load(Ordering::SeqCst), 1, "the commit was reached");

    assert_eq!(failure(gw.s3.head_object().bucket(BUCKET).key("lost.bin").send().await).0, 404);
    assert_eq!(failure(gw.s3.get_object().bucket(BUCKET).key("lost.bin").send().await), (404, "NoSuchKey".to_owned()));
    let listed = gw.s3.list_objects_v2().bucket(BUCKET).send().await.unwrap();
    assert!(listed.contents().is_empty(), "listed: {:?}", listed.contents());

    let (dir, events) = gw.stop().await;
    let types: Vec<_> = events.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(
        types,
        ["v1.account.created", "v1.user.created", "v1.access_key.created", "v1.bucket.created"],
        "the first start's root account, then only the bucket was recorded"
    );
    assert!(blob_files(dir.path()).await.is_empty(), "a blob file was left");
    assert_eq!(FsBlobStore::remove_temp_files(dir.path(), false).unwrap().files, 0, "a staged file was left");
}

#[tokio::test]
async fn a_read_the_store_cannot_start_answers_500_and_records_no_retrieval() {
    let gw = Gateway::start().await;
    let body = pattern(100_000);
    gw.put("kept.bin", body.clone()).await;
    gw.faults.read.store(true, Ordering::SeqCst);

    let get = gw.s3.get_object().bucket(BUCKET).key("kept.bin").send().await;
    assert_eq!(failure(get), (500, "InternalError".to_owned()));
    assert_eq!(gw.faults.faulty_reads.load(Ordering::SeqCst), 1, "the read was reached");

    // The bytes were not judged: once the store reads again, so does the gateway.
    gw.faults.read.store(false, Ordering::SeqCst);
    let read = gw.s3.get_object().bucket(BUCKET).key("kept.bin").send().await.unwrap();
    assert_eq!(read.body.collect().await.unwrap().into_bytes(), body);

    let (_dir, events) = gw.stop().await;
    assert_eq!(recorded_gets(&events, "kept.bin"), [100_000], "only the read that succeeded is recorded");
    assert!(corruptions(&events, "kept.bin").is_empty(), "a failed read is no verdict on the bytes");
}

/// Up to 2 MiB, the gateway checks every byte before the response head.
#[tokio::test]
async fn a_short_small_blob_answers_500_and_is_recorded_as_short() {
    let gw = Gateway::start().await;
    gw.put("small.bin", pattern(100_000)).await;
    gw.faults.short_read.store(true, Ordering::SeqCst);

    let get = gw.s3.get_object().bucket(BUCKET).key("small.bin").send().await;
    assert_eq!(failure(get), (500, "InternalError".to_owned()));
    assert_eq!(gw.faults.faulty_reads.load(Ordering::SeqCst), 1, "the read was reached");

    let (_dir, events) = gw.stop().await;
    assert!(recorded_gets(&events, "small.bin").is_empty(), "the refused read is recorded as a retrieval");
    assert_eq!(corruptions(&events, "small.bin"), [CorruptReason::Short]);
}

/// Past 2 MiB, the head goes out after the first chunk: a blob that ends early cuts the body,
/// so the client never holds a complete response.
#[tokio::test]
async fn a_short_large_blob_cuts_the_body_and_is_recorded_as_short() {
    const SIZE: usize = 4 << 20;
    let gw = Gateway::start().await;
    gw.put("large.bin", pattern(SIZE)).await;
    gw.faults.short_read.store(true, Ordering::SeqCst);

    let read = gw.s3.get_object().bucket(BUCKET).key("large.bin").send().await.unwrap();
    assert_eq!(read.content_length(), Some(SIZE as i64));
    let body = read.body.collect().await;
    assert!(body.is_err(), "the client received a complete body of {} bytes", body.unwrap().into_bytes().len());
    assert_eq!(gw.faults.faulty_reads.load(Ordering::SeqCst), 1, "the read was reached");

    let (_dir, events) = gw.stop().await;
    let gets = recorded_gets(&events, "large.bin");
    assert!(gets.iter().all(|&sent| sent < SIZE as u64), "a cut read is recorded as whole: {gets:?}");
    assert_eq!(corruptions(&events, "large.bin"), [CorruptReason::Short]);
}
