//! Local-disk blobs, content-addressed by BLAKE3.
//!
//! Layout under the data directory:
//! - `tmp/<random>.part`: bodies being received; removed when their [`StagedBlob`] is dropped.
//! - `blobs/ab/<64 hex digits>`: committed blobs, named by the BLAKE3 of their bytes, so
//!   identical content is stored once; a multipart part of announced length is named by its
//!   BLAKE3 subtrees at its offset in its object instead (see [`crate::outboard::BlobHasher`]),
//!   so that it is hashed once. Object keys never become paths; only validated hex does.
//!
//! A put streams the body through blocking workers so the expensive hashes run on different
//! cores: one computes MD5, the other BLAKE3 plus the requested checksums and writes the file
//! (measured here: BLAKE3 ~1.5 GiB/s, MD5 ~600 MiB/s per core). Streamed bodies are written
//! with `O_DIRECT` where the file system allows (see `backend::direct_io`). The temp file is
//! fsynced before the put returns; commit renames it into place and fsyncs the directory.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{self, Write as _};
use std::num::NonZeroU64;
use std::os::unix::fs::{FileExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use futures::Stream;
use rustix::fs::{Advice, fadvise};
use tokio::sync::mpsc;
use tokio::task::{JoinHandle, spawn_blocking};

use super::direct_io::BlockWriter;
use super::pipeline::{
    Batch, Chunk, Digests, FEED_CHUNK, Hashes, PIPELINE_DEPTH, feed, join_error, md5_worker, next_batch, off_thread,
    receive_exactly,
};
use super::{
    BlobEntry, BlobError, BlobId, BlobStore, BlobStream, BodyStream, PartToJoin, Result, Stage, StagedBlob, StoreUpload,
};
use crate::crypto::{EncryptedBlobId, Seal, Sealer};
use crate::digest::{ChecksumAlgorithm, Checksummer};
use crate::outboard::BlobHasher;

/// Bytes per read when serving a blob. Large reads keep syscalls and task hops rare.
const READ_CHUNK: u64 = 1 << 20;

/// Reads in flight per GET ahead of the chunk being sent, so a GET holds at most this many
/// chunks plus one. More than one keeps the disk busy while the client drains a chunk: blobs
/// are written past the page cache (see [`super::direct_io`]), so the first GET of a fresh
/// blob reads from the disk, and with a single read ahead each stream waited on the disk and
/// the network in turn (64 MiB GET benchmark: about 2.1x s3s-fs with one, 2.4x-2.7x with
/// three).
const READS_AHEAD: usize = 3;

/// Bodies announced at up to this size are received into memory and then hashed, written and
/// fsynced in one blocking task: for a small object the hand-offs between threads of the
/// streaming path cost more than the hashing.
const SMALL_BODY: u64 = FEED_CHUNK as u64;

/// Written bytes are flushed to the disk every this many bytes while the body still streams,
/// so the `fdatasync` that ends a large put waits for the last few MiB, not the whole blob.
const WRITEBACK_STEP: u64 = 8 << 20;

/// Blobs in a local directory.
#[derive(Debug, Clone)]
pub struct FsBlobStore {
    blobs: PathBuf,
    tmp: PathBuf,
    /// Large bodies are written past the page cache.
    direct_io: bool,
    /// Bytes a body must leave free on the file system (`storage.min_free_bytes`).
    min_free: u64,
}

impl FsBlobStore {
    /// Opens (creating if needed) the store under `data_dir`.
    ///
    /// # Errors
    ///
    /// I/O errors creating `blobs/` and `tmp/`.
    pub fn open(data_dir: &Path) -> io::Result<Self> {
        let blobs = data_dir.join("blobs");
        let tmp = data_dir.join("tmp");
        std::fs::create_dir_all(&tmp)?;
        // All 256 shard directories exist from the start, made durable once here, so a
        // commit never creates a directory and fsyncs only the one its blob lands in.
        let mut created = false;
        for shard in 0..=u8::MAX {
            let dir = blobs.join(format!("{shard:02x}"));
            if !dir.is_dir() {
                std::fs::create_dir_all(&dir)?;
                created = true;
            }
        }
        if created {
            sync_dir(&blobs)?;
            sync_dir(data_dir)?;
        }
        Ok(Self { blobs, tmp, direct_io: true, min_free: 0 })
    }

    /// Whether large bodies are written past the page cache (`storage.direct_io`; on by
    /// default). See `backend::direct_io`.
    #[must_use]
    pub fn with_direct_io(mut self, on: bool) -> Self {
        self.direct_io = on;
        self
    }

    /// Refuses bodies that would leave less than `bytes` free on the file system
    /// (`storage.min_free_bytes`), keeping room for the registry on a disk full of blobs.
    #[must_use]
    pub fn with_min_free(mut self, bytes: u64) -> Self {
        self.min_free = bytes;
        self
    }

    /// Refuses, as a full disk would, a body of `len` bytes that would eat into the reserve.
    fn check_free_space(&self, len: u64) -> io::Result<()> {
        if self.min_free == 0 {
            return Ok(());
        }
        let free = free_bytes(&self.tmp)?;
        if free < self.min_free.saturating_add(len) {
            return Err(io::Error::new(
                io::ErrorKind::StorageFull,
                format!("{free} bytes free, a body of {len} would leave less than storage.min_free_bytes"),
            ));
        }
        Ok(())
    }

    /// The path of a blob. The id is checked to be 64 lowercase hex digits before it is joined
    /// to any path, so no id can name a file outside `blobs/`.
    fn blob_path(&self, id: &BlobId) -> Result<PathBuf> {
        hex_id_ok(id)?;
        let hex = id.as_str();
        Ok(self.blobs.join(&hex[0..2]).join(hex))
    }

    /// Reads a blob back and computes the BLAKE3 of its bytes, for `verify`: the result should
    /// be the blob's own name, unless it is a multipart part's (see
    /// [`crate::outboard::BlobHasher`]). Streams the file (memory-mapped, hashed on all
    /// cores), so memory stays bounded for any blob size.
    ///
    /// # Errors
    ///
    /// [`BlobError::NotFound`], [`BlobError::InvalidId`], I/O errors.
    pub async fn rehash(&self, id: &BlobId) -> Result<blake3::Hash> {
        let path = self.blob_path(id)?;
        spawn_blocking(move || blake3::Hasher::new().update_mmap_rayon(path).map(|hasher| hasher.finalize()))
            .await
            .map_err(join_error)?
            .map_err(not_found)
    }

    /// Removes files in `tmp/` last modified before `cutoff`: bodies of uploads that died
    /// without their guard running (a crash, a kill). A live upload keeps writing, and so
    /// keeps its file's mtime fresh. With `dry_run`, only counts them.
    ///
    /// # Errors
    ///
    /// I/O errors reading `tmp/` or removing a file.
    pub async fn remove_stale_temp_files(&self, cutoff: SystemTime, dry_run: bool) -> Result<TempSweep> {
        let tmp = self.tmp.clone();
        Ok(spawn_blocking(move || sweep_temp_files(&tmp, Some(cutoff), dry_run)).await.map_err(join_error)??)
    }
}

/// Temp files younger than this may be a live upload's, whatever else is known: its file can
/// sit untouched while its client pauses or while its write waits for the registry.
pub const TEMP_FILE_GUARD: Duration = Duration::from_secs(3_600);

impl FsBlobStore {
    /// Removes the files in `data_dir`'s `tmp/`, bodies of uploads that died with an earlier
    /// process, when a gateway starts: every one when it is the only gateway on the data
    /// folder (`shared` false), else only those untouched for [`TEMP_FILE_GUARD`], since the
    /// files of the other gateways' uploads in flight live there too.
    ///
    /// # Errors
    ///
    /// I/O errors reading `tmp/` or removing a file; a missing `tmp/` is not one.
    pub fn remove_temp_files(data_dir: &Path, shared: bool) -> io::Result<TempSweep> {
        let cutoff = shared.then(|| SystemTime::now().checked_sub(TEMP_FILE_GUARD).unwrap_or(SystemTime::UNIX_EPOCH));
        match sweep_temp_files(&data_dir.join("tmp"), cutoff, false) {
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(TempSweep::default()),
            swept => swept,
        }
    }
}

/// Removes (with `dry_run`, only counts) the files in `tmp` last modified before `cutoff`, or
/// all of them without one. Uploads in flight place or remove theirs meanwhile: a file gone
/// since it was listed is passed over.
fn sweep_temp_files(tmp: &Path, cutoff: Option<SystemTime>, dry_run: bool) -> io::Result<TempSweep> {
    let mut swept = TempSweep::default();
    for entry in std::fs::read_dir(tmp)? {
        let entry = entry?;
        let meta = match entry.metadata() {
            Ok(meta) => meta,
            Err(err) if err.kind() == io::ErrorKind::NotFound => continue,
            Err(err) => return Err(err),
        };
        let recent = match cutoff {
            Some(cutoff) => meta.modified()? >= cutoff,
            None => false,
        };
        if !meta.is_file() || recent {
            continue;
        }
        if !dry_run {
            match std::fs::remove_file(entry.path()) {
                Ok(()) => {}
                Err(err) if err.kind() == io::ErrorKind::NotFound => continue,
                Err(err) => return Err(err),
            }
        }
        swept.files += 1;
        swept.bytes += meta.len();
    }
    Ok(swept)
}

/// What [`FsBlobStore::remove_stale_temp_files`] removed (or would remove).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TempSweep {
    /// Files.
    pub files: u64,
    /// Their total size in bytes.
    pub bytes: u64,
}

impl FsBlobStore {
    /// [`BlobStore::put`] of a body announced at `len` <= [`SMALL_BODY`] bytes.
    async fn put_small(
        &self,
        body: BodyStream,
        len: u64,
        algorithms: &[ChecksumAlgorithm],
        part_offset: Option<u64>,
        seal: Option<Seal>,
    ) -> Result<StagedBlob> {
        let data = receive_exactly(body, len).await?;
        let tmp_dir = self.tmp.clone();
        let algorithms = algorithms.to_vec();
        let (sealer, id) = seal.map(|seal| (seal.sealer, seal.id)).unzip();
        let (temp, hashes) = spawn_blocking(move || -> io::Result<_> {
            let hashes = Hashes::of(&data, &algorithms, part_offset);
            // The guard exists before the first byte is written: an error below removes the file.
            let (temp, mut file) = TempFile::create(&tmp_dir)?;
            match sealer {
                Some(mut sealer) => {
                    file.write_all(&sealer.push(&data))?;
                    file.write_all(&sealer.finish())?;
                }
                None => file.write_all(&data)?,
            }
            file.sync_data()?;
            Ok((temp, hashes))
        })
        .await
        .map_err(join_error)??;
        let Hashes { md5, hashed, checksums } = hashes;
        let final_path = self.blob_path(&blob_id(id.as_ref(), &hashed.name()))?;
        let stage = FsStage { temp, final_path };
        Ok(StagedBlob::new(len, hashed, md5, checksums, Box::new(stage)))
    }
}

/// The id of a blob whose plaintext is named `name` ([`crate::outboard::Hashed::name`]): the
/// name itself, or for an encrypted blob the id its seal gives it.
fn blob_id(encrypted: Option<&EncryptedBlobId>, name: &[u8; 32]) -> BlobId {
    BlobId::new(encrypted.map_or_else(|| hex::encode(name), |id| id.of(name)))
}

#[async_trait]
impl BlobStore for FsBlobStore {
    async fn put(
        &self,
        body: BodyStream,
        expected_len: Option<u64>,
        algorithms: &[ChecksumAlgorithm],
        part_offset: Option<u64>,
        seal: Option<Seal>,
    ) -> Result<StagedBlob> {
        self.check_free_space(expected_len.unwrap_or(0))?;
        if let Some(len) = expected_len
            && len <= SMALL_BODY
        {
            return self.put_small(body, len, algorithms, part_offset, seal).await;
        }
        let (sealer, id) = seal.map(|seal| (seal.sealer, seal.id)).unzip();

        // 1. A temp file and its guard exist before any byte is written, so every exit below
        //    (including this future being dropped) removes it.
        let tmp_dir = self.tmp.clone();
        let (temp, file) = spawn_blocking(move || TempFile::create(&tmp_dir)).await.map_err(join_error)??;

        // 2. Start the hashing workers.
        let (md5_tx, md5_rx) = mpsc::channel(PIPELINE_DEPTH);
        let (write_tx, write_rx) = mpsc::channel(PIPELINE_DEPTH);
        let md5_worker = tokio::spawn(md5_worker(md5_rx));
        let hashers = (BlobHasher::new(part_offset, expected_len), Checksummer::new(algorithms));
        let direct_io = self.direct_io;
        let write_worker = tokio::spawn(write_worker(file, direct_io, write_rx, hashers, sealer));
        let workers = [&md5_tx, &write_tx];

        // 3. Stream the body to every worker; `End` only if it arrived whole.
        let fed = feed(body, expected_len, &workers).await;
        if fed.is_ok() {
            for worker in &workers {
                // A failed send means the worker already stopped; its own result says why.
                let _ = worker.send(Chunk::End).await;
            }
        }
        drop((md5_tx, write_tx));

        // 4. Wait for every worker even on error, so nothing writes to the temp file after
        //    its guard removed it.
        let md5 = md5_worker.await.map_err(join_error)?;
        let written = write_worker.await.map_err(join_error)?;
        // A write error (a full disk) is why feeding found its worker gone: report it first.
        let written = written?;
        let size = fed?;
        let Digests { hashed, checksums } = written.ok_or_else(|| io::Error::other("blob writer stopped early"))?;
        let md5 = md5.ok_or_else(|| io::Error::other("md5 worker stopped early"))?;

        let final_path = self.blob_path(&blob_id(id.as_ref(), &hashed.name()))?;
        let stage = FsStage { temp, final_path };
        Ok(StagedBlob::new(size, hashed, md5, checksums, Box::new(stage)))
    }

    async fn get(&self, id: &BlobId, range: Option<(u64, u64)>) -> Result<BlobStream> {
        let path = self.blob_path(id)?;
        let (file, size) = spawn_blocking(move || -> io::Result<_> {
            let file = File::open(path)?;
            let size = file.metadata()?.len();
            Ok((file, size))
        })
        .await
        .map_err(join_error)?
        .map_err(not_found)?;

        let (start, end) = match range {
            None => (0, size),
            Some((start, last)) if start <= last && last < size => (start, last + 1),
            Some((start, end)) => return Err(BlobError::InvalidRange { start, end, size }),
        };
        // A GET reads its span front to back: sequential advice doubles the kernel's readahead
        // window for this file, so the disk works ahead of the reads in flight (64 MiB GET
        // benchmark: about 2.5x s3s-fs without it, 3.3x with it). Only a hint: ignore failure.
        let _ = fadvise(&file, start, NonZeroU64::new(end - start), Advice::Sequential);
        Ok(Box::pin(FileChunks { file: Arc::new(file), next: start, end, pending: VecDeque::new() }))
    }

    async fn size(&self, id: &BlobId) -> Result<u64> {
        let path = self.blob_path(id)?;
        let meta = tokio::fs::metadata(path).await.map_err(not_found)?;
        Ok(meta.len())
    }

    async fn delete(&self, id: &BlobId) -> Result<()> {
        let path = self.blob_path(id)?;
        tokio::fs::remove_file(path).await.map_err(not_found)
    }

    async fn list(&self) -> Result<Pin<Box<dyn Stream<Item = Result<BlobEntry>> + Send>>> {
        let (tx, rx) = mpsc::channel(256);
        let blobs = self.blobs.clone();
        spawn_blocking(move || {
            if let Err(err) = walk_blobs(&blobs, &tx) {
                let _ = tx.blocking_send(Err(err.into()));
            }
        });
        Ok(Box::pin(futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) })))
    }

    async fn probe(&self) -> Result<()> {
        tokio::fs::metadata(&self.tmp).await?;
        Ok(())
    }

    /// Parts are blobs of their own here: completion lists them and copies no byte, which a
    /// joined file would (a local file has no cheaper concatenation).
    async fn begin_multipart(&self) -> Result<Option<StoreUpload>> {
        Ok(None)
    }

    async fn put_part(
        &self,
        _part: (&StoreUpload, u32),
        _body: BodyStream,
        _expected_len: Option<u64>,
        _algorithms: &[ChecksumAlgorithm],
        _part_offset: Option<u64>,
        _seal: Option<Seal>,
    ) -> Result<StagedBlob> {
        Err(BlobError::InvalidId)
    }

    async fn complete_multipart(&self, _upload: &StoreUpload, _parts: &[PartToJoin]) -> Result<Vec<u64>> {
        Err(BlobError::InvalidId)
    }

    async fn abort_multipart(&self, _upload: &StoreUpload) -> Result<()> {
        Err(BlobError::InvalidId)
    }

    async fn list_multipart(&self) -> Result<Vec<(StoreUpload, SystemTime)>> {
        Ok(Vec::new())
    }
}

/// Writes and hashes everything received, then fsyncs; `None` if the put was abandoned.
///
/// The worker waits for chunks as a task; each chunk is hashed and written on the blocking
/// pool ([`off_thread`]). Writes go past the page cache where the file system allows
/// ([`BlockWriter`]). Where it does not, once a body passes [`WRITEBACK_STEP`], an
/// `fdatasync` of what has been written so far runs while the writer goes on, so the disk
/// works during the upload instead of after it.
async fn write_worker(
    file: File,
    direct_io: bool,
    mut rx: mpsc::Receiver<Chunk>,
    (hasher, checksummer): (BlobHasher, Checksummer),
    sealer: Option<Sealer>,
) -> io::Result<Option<Digests>> {
    let file = Arc::new(file);
    let stopped = || io::Error::other("blob writer stopped");
    let mut state = (BlockWriter::new(Arc::clone(&file), direct_io), hasher, checksummer, sealer);
    let mut flush: Option<JoinHandle<io::Result<()>>> = None;
    let mut unflushed: u64 = 0;
    while let Some(Batch { data, end }) = next_batch(&mut rx).await {
        if !data.is_empty() {
            unflushed += data.iter().map(|bytes| bytes.len() as u64).sum::<u64>();
            state = off_thread(move || -> io::Result<_> {
                let (mut writer, mut hasher, mut checksummer, mut sealer) = state;
                for bytes in &data {
                    hasher.update(bytes);
                    checksummer.update(bytes);
                    match &mut sealer {
                        Some(sealer) => writer.write(&sealer.push(bytes))?,
                        None => writer.write(bytes)?,
                    }
                }
                Ok((writer, hasher, checksummer, sealer))
            })
            .await
            .ok_or_else(stopped)??;
            // One flush runs at most: a step that finds it busy is covered by the next.
            if unflushed >= WRITEBACK_STEP && !state.0.is_direct() && flush.as_ref().is_none_or(|f| f.is_finished()) {
                unflushed = 0;
                if let Some(done) = flush.take() {
                    done.await.map_err(join_io_error)??;
                }
                let file = Arc::clone(&file);
                flush = Some(spawn_blocking(move || file.sync_data()));
            }
        }
        if end {
            // A write error is reported to one fdatasync only, so the early flush's own
            // result counts as much as the final one.
            if let Some(done) = flush.take() {
                done.await.map_err(join_io_error)??;
            }
            let file = Arc::clone(&file);
            return off_thread(move || {
                let (mut writer, hasher, checksummer, sealer) = state;
                if let Some(sealer) = sealer {
                    writer.write(&sealer.finish())?;
                }
                writer.finish()?;
                file.sync_data()?;
                let digests = Digests::finish(hasher, checksummer);
                Ok(Some(digests.ok_or_else(|| io::Error::other("the part was not the length announced"))?))
            })
            .await
            .ok_or_else(stopped)?;
        }
    }
    if let Some(done) = flush.take() {
        let _ = done.await;
    }
    Ok(None)
}

fn join_io_error(err: tokio::task::JoinError) -> io::Error {
    io::Error::other(err)
}

/// A file under `tmp/` that is removed when dropped. Removal in `Drop` is a blocking unlink:
/// quick, and the only way to clean up after a cancelled future.
struct TempFile {
    path: PathBuf,
}

impl TempFile {
    fn create(dir: &Path) -> io::Result<(Self, File)> {
        let name = format!("{}.part", hex::encode(rand::random::<[u8; 16]>()));
        let path = dir.join(name);
        let file = OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path)?;
        Ok((Self { path }, file))
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Err(err) = std::fs::remove_file(&self.path)
            && err.kind() != io::ErrorKind::NotFound
        {
            tracing::warn!(path = %self.path.display(), %err, "could not remove temp file");
        }
    }
}

/// A received body in `tmp/`, given its content-addressed name as a second link when placed.
/// The `tmp/` name stays until the stage is dropped, so the bytes can be placed again if gc
/// removes the blob before the write's event names it.
struct FsStage {
    temp: TempFile,
    final_path: PathBuf,
}

#[async_trait]
impl Stage for FsStage {
    async fn place(&mut self) -> Result<BlobId> {
        let (temp, final_path) = (self.temp.path.clone(), self.final_path.clone());
        spawn_blocking(move || place(&temp, &final_path)).await.map_err(join_error)?
    }
}

/// Links `temp` as the blob `final_path`, replacing the file of the same content if there is
/// one, and makes the link durable.
///
/// A file already there is not trusted: it may have been damaged since it was written (a
/// flipped bit, a truncation), and keeping it would acknowledge a write whose bytes can never
/// be read, however often they are sent again. This write's bytes are known good and already
/// written, so they take the name, through a second link renamed over it (the staged file
/// stays, to place again should gc take the blob before the write is recorded). Readers of the
/// old file keep reading it; gc's age filter sees the new file's fresh mtime.
fn place(temp: &Path, final_path: &Path) -> Result<BlobId> {
    let id = final_path.file_name().and_then(|n| n.to_str()).map(BlobId::new).ok_or(BlobError::InvalidId)?;
    let dir = final_path.parent().ok_or(BlobError::InvalidId)?;
    match std::fs::hard_link(temp, final_path) {
        Ok(()) => {}
        Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {
            let mut replacing = temp.as_os_str().to_owned();
            replacing.push(".replacing");
            let replacing = PathBuf::from(replacing);
            std::fs::hard_link(temp, &replacing)?;
            if let Err(err) = std::fs::rename(&replacing, final_path) {
                std::fs::remove_file(&replacing).ok();
                return Err(err.into());
            }
        }
        Err(err) => return Err(err.into()),
    }
    sync_dir(dir)?;
    Ok(id)
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Streams `[next, end)` of a file in [`READ_CHUNK`] reads on the blocking pool, keeping up
/// to [`READS_AHEAD`] reads in flight ahead of the consumer.
struct FileChunks {
    file: Arc<File>,
    next: u64,
    end: u64,
    pending: VecDeque<JoinHandle<io::Result<Bytes>>>,
}

impl FileChunks {
    /// Starts reads until [`READS_AHEAD`] are in flight or the span is all asked for.
    fn read_ahead(&mut self) {
        while self.pending.len() < READS_AHEAD && self.next < self.end {
            let offset = self.next;
            let len = (self.end - offset).min(READ_CHUNK);
            self.next += len;
            let file = Arc::clone(&self.file);
            self.pending.push_back(spawn_blocking(move || {
                // `len` is at most READ_CHUNK, so the cast cannot truncate.
                #[allow(clippy::cast_possible_truncation)]
                let mut buf = vec![0; len as usize];
                file.read_exact_at(&mut buf, offset)?;
                Ok(Bytes::from(buf))
            }));
        }
    }
}

impl Stream for FileChunks {
    type Item = Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.read_ahead();
        let Some(oldest) = self.pending.front_mut() else {
            return Poll::Ready(None);
        };
        let result = ready!(Pin::new(oldest).poll(cx));
        self.pending.pop_front();
        match result.map_err(join_error).and_then(|r| r.map_err(BlobError::from)) {
            Ok(bytes) => {
                self.read_ahead();
                Poll::Ready(Some(Ok(bytes)))
            }
            Err(err) => {
                // A failed read ends the stream: the client sees a truncated body, never a gap.
                self.next = self.end;
                self.pending.clear();
                Poll::Ready(Some(Err(err)))
            }
        }
    }
}

fn walk_blobs(blobs: &Path, tx: &mpsc::Sender<Result<BlobEntry>>) -> io::Result<()> {
    for shard in std::fs::read_dir(blobs)? {
        let shard = shard?.path();
        if !shard.is_dir() {
            continue;
        }
        for entry in std::fs::read_dir(&shard)? {
            let entry = entry?;
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            let id = BlobId::new(name);
            let meta = entry.metadata()?;
            if !meta.is_file() || hex_id_ok(&id).is_err() {
                continue;
            }
            let item = BlobEntry { id, size: meta.len(), modified: meta.modified()? };
            if tx.blocking_send(Ok(item)).is_err() {
                return Ok(()); // the consumer stopped listening
            }
        }
    }
    Ok(())
}

fn hex_id_ok(id: &BlobId) -> Result<()> {
    let hex = id.as_str();
    let valid = hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    if valid { Ok(()) } else { Err(BlobError::InvalidId) }
}

fn not_found(err: io::Error) -> BlobError {
    if err.kind() == io::ErrorKind::NotFound { BlobError::NotFound } else { BlobError::Io(err) }
}

/// Bytes an unprivileged writer may still use on the file system that holds `path`.
///
/// # Errors
///
/// When the file system cannot be asked (`statvfs`).
pub fn free_bytes(path: &Path) -> io::Result<u64> {
    let stat = rustix::fs::statvfs(path)?;
    Ok(stat.f_bavail.saturating_mul(stat.f_frsize))
}

#[cfg(test)]
mod tests {
    use futures::StreamExt as _;
    use md5::{Digest as _, Md5};

    use super::*;

    fn store() -> (tempfile::TempDir, FsBlobStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = FsBlobStore::open(dir.path()).unwrap();
        (dir, store)
    }

    fn body(chunks: Vec<Vec<u8>>) -> BodyStream {
        Box::pin(futures::stream::iter(chunks.into_iter().map(|c| Ok(Bytes::from(c)))))
    }

    /// Deterministic bytes that are not all equal.
    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i.wrapping_mul(31) ^ (i >> 8)) as u8).collect()
    }

    fn in_chunks(data: &[u8], size: usize) -> Vec<Vec<u8>> {
        data.chunks(size).map(<[u8]>::to_vec).collect()
    }

    async fn read_all(store: &FsBlobStore, id: &BlobId, range: Option<(u64, u64)>) -> Vec<u8> {
        let mut stream = store.get(id, range).await.unwrap();
        let mut out = Vec::new();
        while let Some(chunk) = stream.next().await {
            out.extend_from_slice(&chunk.unwrap());
        }
        out
    }

    fn files_in(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                out.extend(files_in(&path));
            } else {
                out.push(path);
            }
        }
        out
    }

    #[tokio::test]
    async fn encrypted_bytes_round_trip_with_the_plaintext_digests() {
        use futures::StreamExt as _;
        let (_dir, store) = store();
        for (len, offset) in [(6 * 1024 * 1024 + 7, Some(5 * 1024 * 1024)), (3 * 1024 * 1024 + 17, None), (5000, None)]
        {
            let data = pattern(len);
            let key = crate::crypto::DataKey::generate();
            let staged = store
                .put(body(in_chunks(&data, 65_536)), Some(len as u64), &[], offset, Some(key.seal()))
                .await
                .unwrap();
            // A part is named by its subtrees at its offset, whole bytes by their BLAKE3.
            let name = match offset {
                Some(_) => staged.part_hashes().unwrap().blob_name(),
                None => *staged.blake3().unwrap().as_bytes(),
            };
            assert_eq!(staged.blake3(), offset.is_none().then(|| blake3::hash(&data)), "{len}");
            assert_eq!(staged.size(), len as u64);
            let id = staged.commit().await.unwrap();
            assert_eq!(id.as_str(), key.blob_id(&name));
            let stored = store.get(&id, None).await.unwrap();
            let mut plain = Box::pin(key.open_stream::<_, BlobError>(len as u64, (0, len as u64 - 1), stored));
            let mut out = Vec::new();
            while let Some(chunk) = plain.next().await {
                out.extend_from_slice(&chunk.unwrap());
            }
            assert!(out == data, "{len}");
        }
    }

    #[tokio::test]
    async fn bytes_round_trip_with_their_digests() {
        let (dir, store) = store();
        let data = pattern(3 * READ_CHUNK as usize + 12_345);
        let staged = store.put(body(in_chunks(&data, 65_536)), Some(data.len() as u64), &[], None, None).await.unwrap();

        assert_eq!(staged.size(), data.len() as u64);
        assert_eq!(staged.blake3(), Some(blake3::hash(&data)));
        assert_eq!(staged.md5(), <[u8; 16]>::from(Md5::digest(&data)));
        let id = staged.commit().await.unwrap();

        assert_eq!(id.as_str(), blake3::hash(&data).to_hex().as_str());
        assert_eq!(read_all(&store, &id, None).await, data);
        assert_eq!(store.size(&id).await.unwrap(), data.len() as u64);
        let path = dir.path().join("blobs").join(&id.as_str()[..2]).join(id.as_str());
        assert!(path.is_file());
        assert!(files_in(&dir.path().join("tmp")).is_empty());
    }

    #[tokio::test]
    async fn bodies_past_the_writeback_step_round_trip_in_odd_chunks() {
        // Several early flushes, chunk sizes that straddle FEED_CHUNK, and one chunk larger
        // than FEED_CHUNK that is passed on without a copy.
        let (_dir, store) = store();
        let data = pattern(2 * WRITEBACK_STEP as usize + 777);
        let mut chunks = in_chunks(&data[..FEED_CHUNK + 3], FEED_CHUNK + 3);
        chunks.extend(in_chunks(&data[FEED_CHUNK + 3..], 100_003));
        let staged = store.put(body(chunks), Some(data.len() as u64), &[], None, None).await.unwrap();

        assert_eq!(staged.blake3(), Some(blake3::hash(&data)));
        assert_eq!(staged.md5(), <[u8; 16]>::from(Md5::digest(&data)));
        let id = staged.commit().await.unwrap();
        assert_eq!(read_all(&store, &id, None).await, data);
    }

    #[tokio::test]
    async fn small_bodies_hash_like_streamed_ones() {
        // A body of announced small length takes the in-memory path; without a length it streams.
        let (_dir, store) = store();
        let data = pattern(5_000);
        let algorithms = [ChecksumAlgorithm::Crc32c, ChecksumAlgorithm::Sha1];
        let offset = Some(16 << 20);
        let small = store.put(body(in_chunks(&data, 999)), Some(data.len() as u64), &algorithms, offset, None).await;
        let streamed = store.put(body(in_chunks(&data, 999)), None, &algorithms, offset, None).await;
        let (small, streamed) = (small.unwrap(), streamed.unwrap());

        assert_eq!(small.size(), streamed.size());
        assert_eq!(small.md5(), streamed.md5());
        assert_eq!(small.checksums(), streamed.checksums());
        let mut part = crate::outboard::PartHasher::at(16 << 20, data.len() as u64).unwrap();
        part.update(&data);
        let part = part.finish().unwrap();
        assert_eq!(small.part_hashes(), Some(&part));
        assert_eq!(small.blake3(), None, "a part is hashed once, at its offset");
        assert_eq!(streamed.part_hashes(), None, "a part's pieces need its length");
        assert_eq!(streamed.blake3(), Some(blake3::hash(&data)));
        assert_eq!(small.commit().await.unwrap().as_str(), hex::encode(part.blob_name()));
        assert_eq!(streamed.commit().await.unwrap().as_str(), blake3::hash(&data).to_hex().as_str());
    }

    #[tokio::test]
    async fn a_streamed_part_is_hashed_into_its_pieces_at_its_offset() {
        let (_dir, store) = store();
        let data = pattern(3 * (1 << 20) + 4321);
        let offset = 5 << 20;
        let staged = store.put(body(in_chunks(&data, 70_000)), Some(data.len() as u64), &[], Some(offset), None).await;
        let mut part = crate::outboard::PartHasher::at(offset, data.len() as u64).unwrap();
        part.update(&data);
        let expected = part.finish().unwrap();
        assert_eq!(expected.pieces.len(), 4, "1 MiB at 5 MiB, 2 MiB at 6 MiB, then 4096 and 225 bytes at 8 MiB");
        let staged = staged.unwrap();
        assert_eq!(staged.part_hashes(), Some(&expected));
        assert_eq!(staged.blake3(), None, "a part is hashed once, at its offset");
        let id = staged.commit().await.unwrap();
        assert_eq!(id.as_str(), hex::encode(expected.blob_name()), "the blob is named by the part's subtrees");
        assert_eq!(read_all(&store, &id, None).await, data);
    }

    #[tokio::test]
    async fn a_part_shares_its_blob_only_with_the_same_bytes_at_the_same_offset() {
        let (_dir, store) = store();
        let data = pattern(2 * (1 << 20) + 1000);
        let len = Some(data.len() as u64);
        let mut ids = Vec::new();
        for (offset, bytes) in [(1 << 20, data.clone()), (1 << 20, data.clone()), (2 << 20, data.clone())] {
            let staged = store.put(body(in_chunks(&bytes, 65_536)), len, &[], Some(offset), None).await.unwrap();
            ids.push(staged.commit().await.unwrap());
        }
        let mut changed = data.clone();
        changed[1_500_000] ^= 1;
        let staged = store.put(body(in_chunks(&changed, 65_536)), len, &[], Some(1 << 20), None).await.unwrap();
        ids.push(staged.commit().await.unwrap());
        assert_eq!(ids[0], ids[1], "the same part uploaded again is stored once");
        assert_ne!(ids[0], ids[2], "the same bytes at another offset hash to other subtrees");
        assert_ne!(ids[0], ids[3], "other bytes at the same offset");
        assert_eq!(files_in(&store.blobs).len(), 3);
    }

    #[tokio::test]
    async fn requested_checksums_are_computed_while_streaming() {
        let (_dir, store) = store();
        let algorithms = [ChecksumAlgorithm::Crc32, ChecksumAlgorithm::Sha256];
        let staged =
            store.put(body(vec![b"hello ".to_vec(), b"world".to_vec()]), None, &algorithms, None, None).await.unwrap();
        let checksums = staged.checksums();
        assert_eq!(checksums.get(ChecksumAlgorithm::Crc32).unwrap().to_base64(), "DUoRhQ==");
        assert_eq!(
            checksums.get(ChecksumAlgorithm::Sha256).unwrap().to_base64(),
            "uU0nuZNNPgilLlLX2n2r+sSE7+N6U4DukIj3rOLvzek="
        );
        assert!(checksums.get(ChecksumAlgorithm::Crc32c).is_none());
    }

    #[tokio::test]
    async fn identical_content_is_stored_once() {
        let (dir, store) = store();
        let data = pattern(100_000);
        let first = store.put(body(vec![data.clone()]), None, &[], None, None).await.unwrap();
        let second = store.put(body(in_chunks(&data, 7)), None, &[], None, None).await.unwrap();
        let first = first.commit().await.unwrap();
        let second = second.commit().await.unwrap();

        assert_eq!(first, second);
        assert_eq!(files_in(&dir.path().join("blobs")).len(), 1);
        assert!(files_in(&dir.path().join("tmp")).is_empty());
        assert_eq!(read_all(&store, &first, None).await, data);
    }

    #[tokio::test]
    async fn dropped_stage_leaves_no_file() {
        let (dir, store) = store();
        let staged = store.put(body(vec![pattern(1000)]), None, &[], None, None).await.unwrap();
        assert_eq!(files_in(&dir.path().join("tmp")).len(), 1);
        drop(staged);
        assert!(files_in(&dir.path().join("tmp")).is_empty());
        assert!(files_in(&dir.path().join("blobs")).is_empty());
    }

    #[tokio::test]
    async fn short_body_is_incomplete_and_leaves_nothing() {
        let (dir, store) = store();
        let err = store.put(body(vec![pattern(5)]), Some(10), &[], None, None).await.unwrap_err();
        assert!(matches!(err, BlobError::IncompleteBody { expected: 10, received: 5 }), "{err:?}");
        assert!(files_in(&dir.path().join("tmp")).is_empty());
        assert!(files_in(&dir.path().join("blobs")).is_empty());
    }

    #[tokio::test]
    async fn long_body_is_refused_and_leaves_nothing() {
        let (dir, store) = store();
        let err = store.put(body(vec![pattern(5), pattern(6)]), Some(8), &[], None, None).await.unwrap_err();
        assert!(matches!(err, BlobError::IncompleteBody { expected: 8, received: 11 }), "{err:?}");
        assert!(files_in(&dir.path().join("tmp")).is_empty());
    }

    #[tokio::test]
    async fn failing_body_stream_leaves_nothing() {
        let (dir, store) = store();
        let chunks: Vec<Result<Bytes, super::super::BodyError>> =
            vec![Ok(Bytes::from(pattern(100))), Err(io::Error::other("client went away").into())];
        let err = store.put(Box::pin(futures::stream::iter(chunks)), None, &[], None, None).await.unwrap_err();
        assert!(matches!(err, BlobError::Body(_)), "{err:?}");
        assert!(files_in(&dir.path().join("tmp")).is_empty());
    }

    #[tokio::test]
    async fn ranges_return_exactly_the_requested_bytes() {
        let (_dir, store) = store();
        let data = pattern(2 * READ_CHUNK as usize + 10);
        let id = store.put(body(vec![data.clone()]), None, &[], None, None).await.unwrap().commit().await.unwrap();
        let len = data.len() as u64;

        assert_eq!(read_all(&store, &id, Some((0, 0))).await, &data[..1]);
        assert_eq!(read_all(&store, &id, Some((1, 4))).await, &data[1..5]);
        assert_eq!(read_all(&store, &id, Some((len - 1, len - 1))).await, &data[data.len() - 1..]);
        let across = (READ_CHUNK - 3, READ_CHUNK + 5);
        assert_eq!(read_all(&store, &id, Some(across)).await, &data[across.0 as usize..=across.1 as usize]);
        assert_eq!(read_all(&store, &id, Some((0, len - 1))).await, data);

        for bad in [(5, 4), (0, len), (len, len)] {
            let err = store.get(&id, Some(bad)).await.err().unwrap();
            assert!(matches!(err, BlobError::InvalidRange { .. }), "{bad:?}: {err:?}");
        }
    }

    #[tokio::test]
    async fn empty_blob_round_trips() {
        let (_dir, store) = store();
        let id = store.put(body(vec![]), Some(0), &[], None, None).await.unwrap().commit().await.unwrap();
        assert_eq!(id.as_str(), blake3::hash(b"").to_hex().as_str());
        assert!(read_all(&store, &id, None).await.is_empty());
    }

    #[tokio::test]
    async fn ids_that_are_not_lowercase_hex_never_touch_a_path() {
        let (_dir, store) = store();
        let upper = "A".repeat(64);
        for bad in ["../../etc/passwd", "", upper.as_str(), &"a".repeat(63), &format!("{}/", "a".repeat(63))] {
            let id = BlobId::new(bad);
            assert!(matches!(store.get(&id, None).await.err().unwrap(), BlobError::InvalidId), "{bad}");
            assert!(matches!(store.delete(&id).await.unwrap_err(), BlobError::InvalidId), "{bad}");
        }
    }

    #[tokio::test]
    async fn missing_blob_is_not_found() {
        let (_dir, store) = store();
        let id = BlobId::new("0".repeat(64));
        assert!(matches!(store.get(&id, None).await.err().unwrap(), BlobError::NotFound));
        assert!(matches!(store.size(&id).await.unwrap_err(), BlobError::NotFound));
        assert!(matches!(store.delete(&id).await.unwrap_err(), BlobError::NotFound));
    }

    #[tokio::test]
    async fn list_shows_committed_blobs_and_delete_removes_them() {
        let (_dir, store) = store();
        let a = store.put(body(vec![b"a".to_vec()]), None, &[], None, None).await.unwrap().commit().await.unwrap();
        let b = store.put(body(vec![b"bb".to_vec()]), None, &[], None, None).await.unwrap().commit().await.unwrap();
        let _pending = store.put(body(vec![b"c".to_vec()]), None, &[], None, None).await.unwrap();

        let mut listed: Vec<_> = store.list().await.unwrap().map(|e| e.unwrap()).collect().await;
        listed.sort_by_key(|x| x.size);
        assert_eq!(listed.iter().map(|e| (&e.id, e.size)).collect::<Vec<_>>(), vec![(&a, 1), (&b, 2)]);

        store.delete(&a).await.unwrap();
        let listed: Vec<_> = store.list().await.unwrap().map(|e| e.unwrap().id).collect().await;
        assert_eq!(listed, vec![b]);
    }

    #[tokio::test]
    async fn a_placed_blob_is_placed_again_after_gc_removed_it() {
        let (dir, store) = store();
        let data = pattern(SMALL_BODY as usize + 1);
        let mut placed =
            store.put(body(vec![data.clone()]), None, &[], None, None).await.unwrap().place().await.unwrap();
        let id = placed.id().clone();
        store.delete(&id).await.unwrap();

        placed.place_again().await.unwrap();
        assert_eq!(read_all(&store, &id, None).await, data);
        drop(placed);
        assert!(files_in(&dir.path().join("tmp")).is_empty(), "the staged copy goes with the write");
        assert_eq!(read_all(&store, &id, None).await, data, "the blob stays");
    }

    #[tokio::test]
    async fn recommit_refreshes_the_mtime_of_the_existing_blob() {
        let (dir, store) = store();
        let id = store.put(body(vec![b"same".to_vec()]), None, &[], None, None).await.unwrap().commit().await.unwrap();
        let path = files_in(&dir.path().join("blobs")).pop().unwrap();
        let old = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        File::open(&path).unwrap().set_modified(old).unwrap();

        let again =
            store.put(body(vec![b"same".to_vec()]), None, &[], None, None).await.unwrap().commit().await.unwrap();
        assert_eq!(again, id);
        assert!(std::fs::metadata(&path).unwrap().modified().unwrap() > old);
    }
}
