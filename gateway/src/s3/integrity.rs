//! Checking every byte a GET serves against the BLAKE3 the registry recorded for the version,
//! whichever store the bytes come from (a blob file, an upstream object, an inline row).
//!
//! - A ranged read (or a part), and a whole-object read when the object's outboard is kept, is
//!   checked in groups of [`GROUP`] bytes, each a BLAKE3 subtree whose chaining value is in
//!   the object's outboard ([`crate::outboard`]): the chaining values of all its groups,
//!   accepted only when they merge into the recorded digest. A group's bytes are sent only
//!   after they matched, so no damaged byte leaves, and a range costs reading the groups it
//!   touches, not the object. Writes keep their outboard in the data folder.
//! - A whole-object read of an object whose outboard is not kept here (written by an older
//!   build, through another gateway with its own data folder, or completed from parts taken
//!   by other gateways) hashes the bytes as they stream and holds back the last chunk until
//!   the digest matched, rather than read the object twice before its first byte; it keeps
//!   the outboard it computed, so the next read is checked in groups. On a mismatch the body
//!   ends with an error instead, so hyper cuts the connection (HTTP/1.1) or resets the stream
//!   (HTTP/2): no client sees a complete response. A ranged read of such an object computes
//!   the outboard first, reading the object once.
//! - Reads of at most [`CHECKED_BEFORE_HEADERS`] bytes are read and checked before the
//!   response head, so damage answers 500 InternalError rather than a cut body. Larger reads
//!   fetch their first chunk before the head, so a missing or short blob answers 500 as well
//!   (503 when the store is unreachable: that is not a verdict on the bytes).
//!
//! Each refusal is reported once, through the [`Report`] the caller gives.

use std::io;
use std::num::NonZeroUsize;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, ready};

use blake3::hazmat::{ChainingValue, HasherExt as _};
use bytes::{Bytes, BytesMut};
use futures::{Stream, StreamExt as _};
use registry::event::v1::CorruptReason;
use tokio::sync::OnceCell;

use crate::backend::BlobError;
use crate::outboard::{self, GROUP, GroupHasher, OutboardFiles, PartHashes, group_hasher};

/// Reads of up to this many bytes (a small object, or the groups a short range touches) are
/// read and checked whole before the response head is sent.
const CHECKED_BEFORE_HEADERS: u64 = 2 * GROUP;

/// Outboards kept in memory: 32 bytes per MiB of object each, so 256 outboards of 5 GiB
/// objects take 40 MiB.
const OUTBOARDS_KEPT: NonZeroUsize = NonZeroUsize::new(256).expect("not zero");

/// A stream of object bytes, as the S3 layer reads them from the stores.
pub(super) type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, BlobError>> + Send>>;

/// A checked read of a copy's source made the body of the blob it is stored into. The store
/// takes a failed read for a bad body (400 `IncompleteBody`); the read's own error (damaged
/// bytes: 500, a store away: 503) is the answer, and [`SourceRead::failure_or`] gives it back.
#[derive(Clone, Default)]
pub(super) struct SourceRead(Arc<Mutex<Option<BlobError>>>);

impl SourceRead {
    /// `checked` as a body to store, keeping its error.
    pub(super) fn body(&self, checked: ByteStream) -> crate::backend::BodyStream {
        let failure = self.clone();
        Box::pin(checked.map(move |chunk| {
            chunk.map_err(|err| {
                let body_error = crate::backend::BodyError::from(err.to_string());
                *failure.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(err);
                body_error
            })
        }))
    }

    /// The error to answer for a store's failure `err`: the source read's, when it failed.
    pub(super) fn failure_or(&self, err: BlobError) -> BlobError {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).take().unwrap_or(err)
    }
}

/// Called once, with the reason, when a read refuses the stored bytes.
pub(super) type Report = Box<dyn FnOnce(CorruptReason) + Send>;

/// What an object's bytes must match: the digest and size its version records.
#[derive(Debug, Clone, Copy)]
pub(super) struct Expected {
    /// BLAKE3 of the whole object.
    pub root: blake3::Hash,
    /// Size in bytes (more than 0: an empty object has no bytes to check).
    pub size: u64,
}

/// Objects' outboards (the chaining values of their [`GROUP`]s), by the object's BLAKE3:
/// content-addressed, so an entry never goes stale. The recently used are kept in memory, all
/// in the data folder. Concurrent first reads of one object (a client downloading it in
/// parallel ranges) wait for a single computation.
pub struct Outboards {
    memory: Mutex<lru::LruCache<[u8; 32], Arc<OnceCell<Outboard>>>>,
    files: OutboardFiles,
}

/// The chaining values of an object's groups, in order.
type Outboard = Arc<[ChainingValue]>;

impl Outboards {
    /// Outboards kept in `files`.
    pub fn new(files: OutboardFiles) -> Self {
        Self { memory: Mutex::new(lru::LruCache::new(OUTBOARDS_KEPT)), files }
    }

    /// Keeps the outboard a write computed, for the object `root` of `size` bytes, when its
    /// ranges need one. A failure to keep it is logged: the first ranged read computes it.
    pub async fn keep(&self, root: blake3::Hash, size: u64, cvs: Vec<ChainingValue>) {
        if size <= CHECKED_BEFORE_HEADERS || cvs.is_empty() {
            return;
        }
        let files = self.files.clone();
        let saved = tokio::task::spawn_blocking(move || files.save(&root, &cvs)).await;
        if let Ok(Err(err)) = saved {
            tracing::warn!(blake3 = %root, error = %err, "an outboard could not be kept; the first ranged read computes it");
        }
    }

    /// Keeps a multipart part's leaves (see [`OutboardFiles::save_part`]) until its upload
    /// completes. A failure is logged: the object's first ranged read computes its outboard
    /// then.
    pub async fn keep_part(&self, hashes: PartHashes) {
        let key = outboard::part_name(&hashes.pieces.concat());
        let files = self.files.clone();
        if let Ok(Err(err)) = tokio::task::spawn_blocking(move || files.save_part(&key, &hashes.leaves)).await {
            tracing::warn!(error = %err, "a part's group digests could not be kept");
        }
    }

    /// The kept leaves of parts, each by its name ([`outboard::part_name`]) with the number of
    /// leaves it has; `None` for one not kept or of another count.
    pub async fn part_leaves(&self, parts: Vec<([u8; 32], usize)>) -> Vec<Option<Vec<ChainingValue>>> {
        let files = self.files.clone();
        let count = parts.len();
        let loaded = tokio::task::spawn_blocking(move || {
            parts.iter().map(|(key, count)| files.load_part(key, *count)).collect::<Vec<_>>()
        });
        loaded.await.unwrap_or_else(|_| vec![None; count])
    }

    /// Drops the kept groups of parts whose upload completed.
    pub async fn forget_parts(&self, keys: Vec<[u8; 32]>) {
        let files = self.files.clone();
        let removed = tokio::task::spawn_blocking(move || keys.iter().try_for_each(|key| files.remove_part(key))).await;
        if let Ok(Err(err)) = removed {
            tracing::warn!(error = %err, "a part's group digests could not be removed; gc removes them");
        }
    }

    /// The outboard of the object `expected` when one is kept, in memory or in its file (and
    /// then in memory too); never computed.
    async fn kept(&self, expected: Expected) -> Option<Outboard> {
        let in_memory = {
            let mut memory = self.memory.lock().unwrap_or_else(PoisonError::into_inner);
            memory.get(expected.root.as_bytes()).and_then(|cell| cell.get().cloned())
        };
        if in_memory.is_some() {
            return in_memory;
        }
        let cvs = self.load(expected).await?;
        // Another read may have set it meanwhile, to the same values.
        let _ = self.cell(expected).set(Arc::clone(&cvs));
        Some(cvs)
    }

    /// The outboard of the object `expected`: from memory, from its file, or computed by
    /// `compute` and then kept.
    async fn get_or_compute<F>(&self, expected: Expected, compute: F) -> Result<Outboard, BlobError>
    where
        F: Future<Output = Result<Outboard, BlobError>>,
    {
        // A failed computation leaves the cell empty: the next read tries again.
        self.cell(expected)
            .get_or_try_init(|| async {
                if let Some(cvs) = self.load(expected).await {
                    return Ok(cvs);
                }
                let cvs = compute.await?;
                self.keep(expected.root, expected.size, cvs.to_vec()).await;
                Ok(cvs)
            })
            .await
            .cloned()
    }

    /// The memory's cell for the outboard of `expected`, empty until it is known.
    fn cell(&self, expected: Expected) -> Arc<OnceCell<Outboard>> {
        let mut memory = self.memory.lock().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(memory.get_or_insert(*expected.root.as_bytes(), || Arc::new(OnceCell::new())))
    }

    /// The outboard of `expected` from its file, if one is kept there and merges into the
    /// digest.
    async fn load(&self, expected: Expected) -> Option<Outboard> {
        let files = self.files.clone();
        let loaded = tokio::task::spawn_blocking(move || files.load(&expected.root, expected.size)).await;
        loaded.ok().flatten().map(Outboard::from)
    }
}

/// The bytes `first..=last` of an object, each checked before it is sent. `read` streams any
/// inclusive span of the object's bytes from wherever they are stored.
///
/// # Errors
/// An I/O error of kind `InvalidData` (after `report` was called) when the stored bytes are
/// damaged, missing or short and that is known before the response head; the store's errors
/// (unavailable, throttled) as they are.
pub(super) async fn checked_read(
    outboards: &Outboards,
    expected: Expected,
    (first, last): (u64, u64),
    read: impl Fn((u64, u64)) -> ByteStream,
    report: Report,
) -> Result<ByteStream, BlobError> {
    let mut alarm = Alarm(Some(report));
    let size = expected.size;
    let whole = first == 0 && last + 1 == size;
    // A whole object whose outboard is kept is checked group by group, as a range is, so
    // that no byte leaves before its group matched. Without one (an object of an older build,
    // a lost file) it is hashed as it streams rather than read twice before its first byte.
    let kept = if whole && size > CHECKED_BEFORE_HEADERS { outboards.kept(expected).await } else { None };
    if kept.is_none() && (whole || size <= CHECKED_BEFORE_HEADERS) {
        if size > CHECKED_BEFORE_HEADERS {
            let keep = Some(outboards.files.clone());
            return head_first(Box::pin(WholeCheck::new(read((0, size - 1)), expected, alarm, keep))).await;
        }
        let checked = Box::pin(WholeCheck::new(read((0, size - 1)), expected, alarm, None));
        let bytes = collect(checked).await?;
        #[expect(clippy::cast_possible_truncation, reason = "the span is inside a buffer in memory")]
        let span = bytes.slice(first as usize..=last as usize);
        return Ok(Box::pin(futures::stream::once(std::future::ready(Ok(span)))));
    }

    let cvs = match kept {
        Some(cvs) => cvs,
        None => outboards.get_or_compute(expected, outboard(read((0, size - 1)), expected, &mut alarm)).await?,
    };
    let start = first / GROUP * GROUP;
    let end = ((last / GROUP + 1) * GROUP).min(size);
    let checked = Box::pin(GroupCheck {
        inner: read((start, end - 1)),
        cvs,
        size,
        group: first / GROUP,
        last_group: last / GROUP,
        buf: BytesMut::new(),
        span: (first, last),
        alarm,
        done: false,
    });
    if end - start <= CHECKED_BEFORE_HEADERS {
        let bytes = collect(checked).await?;
        return Ok(Box::pin(futures::stream::once(std::future::ready(Ok(bytes)))));
    }
    head_first(checked).await
}

/// Reports a refusal once and makes the error the body or the response carries.
struct Alarm(Option<Report>);

impl Alarm {
    fn raise(&mut self, reason: CorruptReason) -> BlobError {
        if let Some(report) = self.0.take() {
            report(reason);
        }
        BlobError::Io(io::Error::new(io::ErrorKind::InvalidData, format!("stored bytes refused: {}", reason.as_str())))
    }

    /// A store's error: a verdict on the stored bytes (missing, short) raises the alarm;
    /// any other (unavailable, throttled, I/O) passes as it is.
    fn store_error(&mut self, err: BlobError) -> BlobError {
        match verdict(&err) {
            Some(reason) => self.raise(reason),
            None => err,
        }
    }
}

/// What a store's error says of the stored bytes, if anything: missing or short. Other errors
/// (unavailable, throttled, I/O) say nothing of them.
pub(super) fn verdict(err: &BlobError) -> Option<CorruptReason> {
    match err {
        BlobError::NotFound => Some(CorruptReason::Missing),
        BlobError::Forged(crate::crypto::OpenError::Truncated(_)) => Some(CorruptReason::Short),
        BlobError::Forged(crate::crypto::OpenError::Forged(_)) => Some(CorruptReason::DigestMismatch),
        BlobError::InvalidRange { .. } => Some(CorruptReason::Short),
        BlobError::Io(err) if err.kind() == io::ErrorKind::UnexpectedEof => Some(CorruptReason::Short),
        _ => None,
    }
}

/// Waits for the first chunk, so that an error known at once (a missing or short blob) is an
/// answer rather than a cut body; then streams the rest.
async fn head_first(mut checked: ByteStream) -> Result<ByteStream, BlobError> {
    match checked.next().await {
        None => Ok(checked),
        Some(Err(err)) => Err(err),
        Some(Ok(first)) => Ok(Box::pin(futures::stream::once(std::future::ready(Ok(first))).chain(checked))),
    }
}

async fn collect(mut checked: ByteStream) -> Result<Bytes, BlobError> {
    let mut out = BytesMut::new();
    while let Some(chunk) = checked.next().await {
        out.extend_from_slice(&chunk?);
    }
    Ok(out.freeze())
}

/// The outboard of an object, computed from all its bytes and accepted only when it merges
/// into the recorded digest. The object spans more than one group.
async fn outboard(mut bytes: ByteStream, expected: Expected, alarm: &mut Alarm) -> Result<Outboard, BlobError> {
    let mut groups = GroupHasher::new();
    while let Some(chunk) = bytes.next().await {
        let chunk = chunk.map_err(|err| alarm.store_error(err))?;
        if groups.hashed() + chunk.len() as u64 > expected.size {
            return Err(alarm.raise(CorruptReason::DigestMismatch));
        }
        groups.update(&chunk);
    }
    if groups.hashed() < expected.size {
        return Err(alarm.raise(CorruptReason::Short));
    }
    let (_, cvs) = groups.finish();
    if !outboard::matches(&cvs, &expected.root, expected.size) {
        return Err(alarm.raise(CorruptReason::DigestMismatch));
    }
    Ok(cvs.into())
}

/// A whole object's bytes, passed on as they come but for the last chunk, which is held
/// back until the digest of everything matched. The outboard computed on the way is kept in
/// `keep`, when given, once the digest matched.
struct WholeCheck {
    inner: ByteStream,
    hasher: Option<GroupHasher>,
    expected: Expected,
    received: u64,
    held: Option<Bytes>,
    alarm: Alarm,
    keep: Option<OutboardFiles>,
    done: bool,
}

impl WholeCheck {
    fn new(inner: ByteStream, expected: Expected, alarm: Alarm, keep: Option<OutboardFiles>) -> Self {
        let hasher = Some(GroupHasher::new());
        Self { inner, hasher, expected, received: 0, held: None, alarm, keep, done: false }
    }

    /// Whether everything received hashes to the recorded digest; keeps the outboard if so.
    fn matched(&mut self) -> bool {
        let Some(hasher) = self.hasher.take() else { return false };
        let (root, cvs) = hasher.finish();
        if root != self.expected.root {
            return false;
        }
        if let Some(files) = self.keep.take().filter(|_| !cvs.is_empty()) {
            // Not awaited: the body is done, and a file not kept is only computed again.
            tokio::task::spawn_blocking(move || {
                if let Err(err) = files.save(&root, &cvs) {
                    tracing::warn!(blake3 = %root, error = %err, "an outboard could not be kept");
                }
            });
        }
        true
    }

    fn fail(&mut self, err: BlobError) -> Poll<Option<Result<Bytes, BlobError>>> {
        self.done = true;
        self.held = None;
        Poll::Ready(Some(Err(err)))
    }
}

impl Stream for WholeCheck {
    type Item = Result<Bytes, BlobError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            if self.done {
                return Poll::Ready(None);
            }
            match ready!(self.inner.poll_next_unpin(cx)) {
                Some(Ok(chunk)) => {
                    self.received += chunk.len() as u64;
                    if self.received > self.expected.size {
                        let err = self.alarm.raise(CorruptReason::DigestMismatch);
                        return self.fail(err);
                    }
                    if let Some(hasher) = &mut self.hasher {
                        hasher.update(&chunk);
                    }
                    if let Some(ready) = self.held.replace(chunk) {
                        return Poll::Ready(Some(Ok(ready)));
                    }
                }
                Some(Err(err)) => {
                    let err = self.alarm.store_error(err);
                    return self.fail(err);
                }
                None => {
                    if self.received < self.expected.size {
                        let err = self.alarm.raise(CorruptReason::Short);
                        return self.fail(err);
                    }
                    if !self.matched() {
                        let err = self.alarm.raise(CorruptReason::DigestMismatch);
                        return self.fail(err);
                    }
                    self.done = true;
                    return Poll::Ready(self.held.take().map(Ok));
                }
            }
        }
    }
}

/// The bytes `span` of an object, read as the whole groups around them; each group is checked
/// against its chaining value before its part of the span is passed on.
struct GroupCheck {
    inner: ByteStream,
    cvs: Outboard,
    size: u64,
    /// The next group to check.
    group: u64,
    last_group: u64,
    buf: BytesMut,
    span: (u64, u64),
    alarm: Alarm,
    done: bool,
}

impl GroupCheck {
    fn fail(&mut self, err: BlobError) -> Poll<Option<Result<Bytes, BlobError>>> {
        self.done = true;
        Poll::Ready(Some(Err(err)))
    }

    /// Checks `bytes`, the whole of the next group, and passes on its part of the span.
    fn pass(&mut self, bytes: &Bytes) -> Poll<Option<Result<Bytes, BlobError>>> {
        let start = self.group * GROUP;
        let mut hasher = group_hasher(start);
        hasher.update(bytes);
        let index = usize::try_from(self.group).expect("a group index fits in usize");
        if hasher.finalize_non_root() != self.cvs[index] {
            let err = self.alarm.raise(CorruptReason::DigestMismatch);
            return self.fail(err);
        }
        self.done = self.group == self.last_group;
        self.group += 1;
        let (first, last) = self.span;
        #[expect(clippy::cast_possible_truncation, reason = "offsets inside one group")]
        let sent =
            bytes.slice(first.saturating_sub(start) as usize..(last + 1 - start).min(bytes.len() as u64) as usize);
        Poll::Ready(Some(Ok(sent)))
    }
}

impl Stream for GroupCheck {
    type Item = Result<Bytes, BlobError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            if self.done {
                return Poll::Ready(None);
            }
            let len = GROUP.min(self.size - self.group * GROUP);
            if self.buf.len() as u64 >= len {
                #[expect(clippy::cast_possible_truncation, reason = "at most GROUP")]
                let bytes = self.buf.split_to(len as usize).freeze();
                return self.pass(&bytes);
            }
            match ready!(self.inner.poll_next_unpin(cx)) {
                // A chunk that is exactly the group (the local store reads whole groups) is
                // checked where it lies, not copied.
                Some(Ok(chunk)) if self.buf.is_empty() && chunk.len() as u64 == len => return self.pass(&chunk),
                Some(Ok(chunk)) => self.buf.extend_from_slice(&chunk),
                Some(Err(err)) => {
                    let err = self.alarm.store_error(err);
                    return self.fail(err);
                }
                None => {
                    let err = self.alarm.raise(CorruptReason::Short);
                    return self.fail(err);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// Outboards kept in a folder of their own, removed with the returned guard.
    fn test_outboards() -> (Outboards, tempfile::TempDir) {
        let folder = tempfile::tempdir().unwrap();
        (Outboards::new(OutboardFiles::new(folder.path())), folder)
    }

    fn data(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 31 % 251) as u8).collect()
    }

    /// A reader of `stored` in chunks of `chunk` bytes, as a store would stream it.
    fn reader(stored: Vec<u8>, chunk: usize) -> impl Fn((u64, u64)) -> ByteStream {
        move |(first, last)| {
            let span = stored.get(first as usize..=(last as usize).min(stored.len().saturating_sub(1)));
            let pieces: Vec<Result<Bytes, BlobError>> = match span {
                Some(span) => span.chunks(chunk).map(|c| Ok(Bytes::copy_from_slice(c))).collect(),
                None => vec![Err(BlobError::InvalidRange { start: first, end: last, size: stored.len() as u64 })],
            };
            Box::pin(futures::stream::iter(pieces))
        }
    }

    fn counting_report(count: &Arc<AtomicUsize>, want: CorruptReason) -> Report {
        let count = Arc::clone(count);
        Box::new(move |reason| {
            assert_eq!(reason, want);
            count.fetch_add(1, Ordering::SeqCst);
        })
    }

    /// Reads `span` of `stored` checked against `original`'s digest, body and all.
    async fn read(
        outboards: &Outboards,
        original: &[u8],
        stored: Vec<u8>,
        span: (u64, u64),
        report: Report,
    ) -> Result<Vec<u8>, BlobError> {
        let expected = Expected { root: blake3::hash(original), size: original.len() as u64 };
        let body = checked_read(outboards, expected, span, reader(stored, 300_001), report).await?;
        Ok(collect(body).await?.to_vec())
    }

    /// What a whole read of `expected` sends before its body ends or is cut; its head must
    /// have been answered.
    async fn sent_of_whole(
        outboards: &Outboards,
        expected: Expected,
        read: impl Fn((u64, u64)) -> ByteStream,
        report: Report,
    ) -> Vec<u8> {
        let mut body = checked_read(outboards, expected, (0, expected.size - 1), read, report).await.unwrap();
        let mut sent = Vec::new();
        while let Some(Ok(bytes)) = body.next().await {
            sent.extend_from_slice(&bytes);
        }
        sent
    }

    #[tokio::test]
    async fn intact_bytes_are_served_whole_and_in_ranges() {
        let (outboards, _folder) = test_outboards();
        let never = || -> Report { Box::new(|reason| panic!("refused intact bytes: {reason:?}")) };
        for len in [1, 1000, GROUP as usize, 2 * GROUP as usize + 1, 5 * GROUP as usize + 77] {
            let original = data(len);
            let last = len as u64 - 1;
            let spans = [(0, last), (0, 0), (last, last), (len as u64 / 3, last), (1, last.saturating_sub(1).max(1))];
            for (first, last) in spans.into_iter().filter(|(f, l)| f <= l && *l < len as u64) {
                let got = read(&outboards, &original, original.clone(), (first, last), never()).await.unwrap();
                assert_eq!(got, &original[first as usize..=last as usize], "len {len}, span {first}-{last}");
            }
        }
    }

    #[tokio::test]
    async fn a_flipped_byte_is_refused_once_where_it_is_read() {
        let len = 5 * GROUP as usize + 77;
        let original = data(len);
        let mut damaged = original.clone();
        damaged[3 * GROUP as usize + 5] ^= 1;
        let (outboards, _folder) = test_outboards();
        let count = Arc::new(AtomicUsize::new(0));

        // The whole object, and a range in the damaged group: refused, reported once each.
        let whole = read(&outboards, &original, damaged.clone(), (0, len as u64 - 1), {
            counting_report(&count, CorruptReason::DigestMismatch)
        });
        assert!(whole.await.is_err());
        assert_eq!(count.load(Ordering::SeqCst), 1);
        // No outboard can be computed from damaged bytes, so the first range is refused.
        let range = (3 * GROUP, 3 * GROUP + 10);
        let report = counting_report(&count, CorruptReason::DigestMismatch);
        assert!(read(&outboards, &original, damaged.clone(), range, report).await.is_err());
        assert_eq!(count.load(Ordering::SeqCst), 2);

        // With an outboard from before the damage, only the damaged group is refused.
        let never = || -> Report { Box::new(|reason| panic!("refused intact bytes: {reason:?}")) };
        read(&outboards, &original, original.clone(), (0, 0), never()).await.unwrap();
        let elsewhere = (GROUP - 3, 2 * GROUP + 3);
        let got = read(&outboards, &original, damaged.clone(), elsewhere, never()).await.unwrap();
        assert_eq!(got, &original[elsewhere.0 as usize..=elsewhere.1 as usize]);
        let report = counting_report(&count, CorruptReason::DigestMismatch);
        assert!(read(&outboards, &original, damaged, range, report).await.is_err());
        assert_eq!(count.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_whole_read_with_its_outboard_kept_sends_no_byte_of_a_damaged_group() {
        let len = 5 * GROUP as usize + 77;
        let original = data(len);
        let mut damaged = original.clone();
        damaged[2 * GROUP as usize + 9] ^= 1;
        let (outboards, _folder) = test_outboards();
        let never = || -> Report { Box::new(|reason| panic!("refused intact bytes: {reason:?}")) };
        // A range read keeps the outboard, as a write does.
        read(&outboards, &original, original.clone(), (0, 0), never()).await.unwrap();
        let expected = Expected { root: blake3::hash(&original), size: len as u64 };
        // Chunks of whole groups (checked where they lie) and of other sizes (gathered first).
        for chunk in [GROUP as usize, 300_001] {
            let count = Arc::new(AtomicUsize::new(0));
            let report = counting_report(&count, CorruptReason::DigestMismatch);
            let sent = sent_of_whole(&outboards, expected, reader(damaged.clone(), chunk), report).await;
            assert_eq!(sent.len(), 2 * GROUP as usize, "chunks of {chunk}: the groups before the damage");
            assert!(sent == original[..sent.len()], "chunks of {chunk}: only intact bytes were sent");
            assert_eq!(count.load(Ordering::SeqCst), 1);
        }
    }

    #[tokio::test]
    async fn a_whole_read_without_an_outboard_keeps_the_one_it_computed() {
        let len = 4 * GROUP as usize + 5;
        let original = data(len);
        let (outboards, _folder) = test_outboards();
        let expected = Expected { root: blake3::hash(&original), size: len as u64 };
        assert!(outboards.kept(expected).await.is_none(), "nothing kept before the read");
        let never = || -> Report { Box::new(|reason| panic!("refused intact bytes: {reason:?}")) };
        let got = read(&outboards, &original, original.clone(), (0, len as u64 - 1), never()).await.unwrap();
        assert_eq!(got, original);
        // Kept off the response's path: wait for it (a bounded wait, not a timing assertion).
        let mut kept = None;
        for _ in 0..500 {
            kept = outboards.kept(expected).await;
            if kept.is_some() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        let mut groups = GroupHasher::new();
        groups.update(&original);
        assert_eq!(kept.as_deref(), Some(groups.finish().1.as_slice()), "the outboard of the bytes read");

        // The next whole read of the same object, now damaged, is checked in groups.
        let mut damaged = original.clone();
        damaged[GROUP as usize + 1] ^= 1;
        let count = Arc::new(AtomicUsize::new(0));
        let report = counting_report(&count, CorruptReason::DigestMismatch);
        let sent = sent_of_whole(&outboards, expected, reader(damaged, GROUP as usize), report).await;
        assert_eq!(sent, &original[..GROUP as usize], "only the group before the damage");
    }

    #[tokio::test]
    async fn a_large_whole_read_holds_back_its_last_chunk_until_the_digest_matched() {
        let len = 3 * GROUP as usize;
        let original = data(len);
        let mut damaged = original.clone();
        damaged[len - 1] ^= 1;
        let expected = Expected { root: blake3::hash(&original), size: len as u64 };
        let count = Arc::new(AtomicUsize::new(0));
        let report = counting_report(&count, CorruptReason::DigestMismatch);
        let mut body =
            checked_read(&test_outboards().0, expected, (0, len as u64 - 1), reader(damaged, 1 << 20), report)
                .await
                .expect("the damage is past the first chunk");
        let mut sent = 0;
        let mut failed = false;
        while let Some(chunk) = body.next().await {
            match chunk {
                Ok(chunk) => sent += chunk.len(),
                Err(_) => failed = true,
            }
        }
        assert!(failed, "the body ends with an error");
        assert!(sent < len, "the last chunk was never sent");
        assert_eq!(count.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn missing_and_short_blobs_are_refused_before_the_head() {
        let original = data(3 * GROUP as usize);
        let expected = Expected { root: blake3::hash(&original), size: original.len() as u64 };
        let count = Arc::new(AtomicUsize::new(0));
        let missing =
            |_: (u64, u64)| -> ByteStream { Box::pin(futures::stream::once(async { Err(BlobError::NotFound) })) };
        let report = counting_report(&count, CorruptReason::Missing);
        assert!(checked_read(&test_outboards().0, expected, (0, expected.size - 1), missing, report).await.is_err());

        let short = reader(original[..1000].to_vec(), 4096);
        let report = counting_report(&count, CorruptReason::Short);
        assert!(checked_read(&test_outboards().0, expected, (0, expected.size - 1), short, report).await.is_err());
        assert_eq!(count.load(Ordering::SeqCst), 2);
    }
}
