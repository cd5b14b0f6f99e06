//! The latest version of recently read objects, kept in memory so that a GET of a small
//! object neither hands off to the blocking pool nor reads SQLite.
//!
//! The writer invalidates what each group commit changed before it tells the batch's callers,
//! so a read that begins after a write was acknowledged never finds what the write replaced.
//! A read that missed fills the cache only if no commit invalidated anything since the read
//! began (the `epoch`): otherwise its snapshot may predate a commit whose invalidation ran
//! before the fill, and it would put back what that commit replaced.
//!
//! Only a registry of its own keeps entries: on a shared log, another gateway's write must be
//! seen by the next request, which only a query of the shared head tells
//! ([`crate::freshness`]). Appends by another process on the same files (the CLI's maintenance
//! commands) are not in what is kept: a hit is served only while the log ends where this
//! writer last committed, and the writer's next group commit finds them and empties the cache
//! (`Registry::latest_object`).

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use crate::error::Result;
use crate::event::v1::{BlobCorrupt, CorruptSubject, Payload};
use crate::queries::Reads;
use crate::state::{Bucket, ObjectVersion};

/// Memory kept for entries at most, as [`LatestObject::weight`] estimates it: room for a
/// few thousand small objects.
const BUDGET_BYTES: usize = 24 << 20;

/// What an entry costs beyond its inline bytes, maps and parts: the version's other fields
/// and the key twice; an estimate, generous.
const ENTRY_OVERHEAD: usize = 1024;

/// What each part of a version costs: its blob id, ETag, checksums, subtrees, wrapped key.
const PART_OVERHEAD: usize = 1024;

/// What a read of an object's latest version finds in one go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LatestObject {
    /// The bucket; `None` when there is no such bucket (nothing else is looked up then).
    /// Shared by the entries of one bucket.
    pub bucket: Option<Arc<Bucket>>,
    /// The latest version (a delete marker included); `None` when the key has none.
    pub version: Option<ObjectVersion>,
    /// The object's bytes, when the registry holds them whole (a small object, inline).
    pub inline: Option<bytes::Bytes>,
}

impl LatestObject {
    /// Reads it: the bucket unless `kept` (`Some(None)`: there is no such bucket), the latest
    /// version of `key` and its inline bytes.
    pub(crate) fn read(reads: &dyn Reads, bucket: &str, key: &str, kept: Option<Option<Arc<Bucket>>>) -> Result<Self> {
        let found = match kept {
            Some(kept) => kept,
            None => reads.bucket(bucket)?.map(Arc::new),
        };
        let Some(found) = found else {
            return Ok(Self { bucket: None, version: None, inline: None });
        };
        let version = reads.latest_version(bucket, key)?;
        let inline = match version.as_ref().and_then(|v| crate::inline::locator_of(&v.content.parts)) {
            Some(locator) => reads.inline_bytes(locator)?.map(bytes::Bytes::from),
            None => None,
        };
        Ok(Self { bucket: Some(found), version, inline })
    }

    /// An estimate of the memory it holds beyond its bucket (which its bucket's entries share).
    fn weight(&self, key: &(String, String)) -> usize {
        let content = self.version.as_ref().map_or(0, |version| {
            let c = &version.content;
            let maps = [&c.checksums, &c.headers, &c.user_metadata, &c.tags]
                .iter()
                .flat_map(|map| map.iter())
                .map(|(name, value)| name.len() + value.len())
                .sum::<usize>();
            maps + c.parts.len() * PART_OVERHEAD
        });
        ENTRY_OVERHEAD + key.0.len() + key.1.len() + content + self.inline.as_ref().map_or(0, bytes::Bytes::len)
    }
}

/// What a committed event changes of what the cache holds.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Touch {
    /// Nothing a read of a latest version returns.
    Nothing,
    /// One object's versions.
    Object(String, String),
    /// A bucket's settings or its existence (every entry of it), or what cannot be told.
    Bucket,
}

impl Touch {
    /// From the event's subject ([`Payload::subject_id`]: `bucket/key` for what happens to an
    /// object, the bucket's name for a bucket): every event changes its subject unless it is
    /// named below, so a new event type invalidates until it is known not to.
    fn of(payload: &Payload) -> Self {
        match payload {
            // Reads, uploads in progress, a damaged part and identities change no version and
            // no bucket.
            Payload::Retrieved(_)
            | Payload::MultipartCreated(_)
            | Payload::PartUploaded(_)
            | Payload::MultipartAborted(_)
            | Payload::BlobCorrupt(BlobCorrupt { subject: CorruptSubject::Part(_), .. })
            | Payload::PackageFinalized(_)
            | Payload::AccountCreated(_)
            | Payload::UserCreated(_)
            | Payload::UserDeleted(_)
            | Payload::UserPolicySet(_)
            | Payload::UserPolicyDeleted(_)
            | Payload::AccessKeyCreated(_)
            | Payload::AccessKeyStatusSet(_)
            | Payload::AccessKeyDeleted(_)
            | Payload::MasterKeySet(_) => Self::Nothing,
            _ if payload.subject_kind() == "object" => {
                // Bucket names hold no `/`: the first one ends the bucket.
                let subject = payload.subject_id();
                match subject.split_once('/') {
                    Some((bucket, key)) => Self::Object(bucket.to_owned(), key.to_owned()),
                    None => Self::Bucket,
                }
            }
            _ => Self::Bucket,
        }
    }
}

/// What one group commit changed, gathered by the writer as its jobs append.
#[derive(Debug, Default)]
pub(crate) struct Touched {
    objects: Vec<(String, String)>,
    everything: bool,
}

impl Touched {
    /// Notes what `payload` changes.
    pub(crate) fn note(&mut self, payload: &Payload) {
        match Touch::of(payload) {
            Touch::Nothing => {}
            Touch::Object(bucket, key) => self.objects.push((bucket, key)),
            // Bucket settings change seldom: every entry goes, rather than an index by bucket.
            Touch::Bucket => self.everything = true,
        }
    }

    /// Notes a change the writer cannot tell apart: events another process appended, or a
    /// shared log's events copied in.
    pub(crate) fn everything(&mut self) {
        self.everything = true;
    }

    fn is_empty(&self) -> bool {
        !self.everything && self.objects.is_empty()
    }
}

/// Counts of [`crate::Registry::latest_object`]'s and [`crate::Registry::bucket`]'s answers
/// since the registry opened, for metrics and tests.
#[derive(Debug, Default)]
pub struct LatestCacheStats {
    /// Latest versions answered from memory.
    pub hits: AtomicU64,
    /// Latest versions read from the registry (nothing kept, or nothing may be kept: a shared
    /// log).
    pub misses: AtomicU64,
    /// Buckets answered from memory.
    pub bucket_hits: AtomicU64,
    /// Buckets read from the registry.
    pub bucket_misses: AtomicU64,
}

/// What the cache holds of one key ([`LatestObjects::lookup`]).
pub(crate) enum Kept {
    /// Its latest version, as last read.
    Entry(Arc<LatestObject>),
    /// Its latest version was last found too large to keep (a multipart object of hundreds of
    /// parts): read it on the blocking pool, not on the calling thread.
    TooLarge,
    /// Neither.
    Nothing,
}

/// The cache: entries by (bucket, key), least recently used first out.
#[derive(Debug)]
pub(crate) struct LatestObjects {
    state: Mutex<State>,
    pub(crate) stats: LatestCacheStats,
}

#[derive(Debug)]
struct State {
    /// Moves on at every invalidation that removed or could have removed something.
    epoch: u64,
    entries: lru::LruCache<(String, String), Arc<LatestObject>>,
    bytes: usize,
    /// Keys whose latest version was too large to keep (a multipart object of hundreds of
    /// parts), so that their next reads go to the blocking pool rather than parse a large row
    /// on the calling thread (`Registry::latest_object`).
    too_large: lru::LruCache<(String, String), ()>,
    /// Buckets by name (`None`: no such bucket), for reads of keys not kept: every GET of a
    /// bucket needs its row, and a bucket's settings change seldom.
    buckets: HashMap<String, Option<Arc<Bucket>>>,
}

/// Buckets kept at once; beyond it the map starts over (a bound on memory for a client that
/// names many buckets that do not exist).
const MAX_BUCKETS: usize = 10_000;

/// Keys remembered as too large to keep, least recently marked first out.
const MAX_TOO_LARGE: NonZeroUsize = NonZeroUsize::new(4096).expect("not zero");

impl LatestObjects {
    pub(crate) fn new() -> Self {
        Self {
            state: Mutex::new(State {
                epoch: 0,
                entries: lru::LruCache::unbounded(),
                bytes: 0,
                too_large: lru::LruCache::new(MAX_TOO_LARGE),
                buckets: HashMap::new(),
            }),
            stats: LatestCacheStats::default(),
        }
    }

    /// What is kept of `bucket`/`key`: one lookup, under one lock, on every GET.
    pub(crate) fn lookup(&self, bucket: &str, key: &str) -> Kept {
        // The key type owns its strings; a lookup by borrowed parts would need a wrapper type
        // whose hashing and equality match, for a copy of two short strings.
        let entry_key = (bucket.to_owned(), key.to_owned());
        let mut state = self.state.lock().expect("latest cache lock");
        if let Some(found) = state.entries.get(&entry_key) {
            return Kept::Entry(Arc::clone(found));
        }
        if state.too_large.contains(&entry_key) { Kept::TooLarge } else { Kept::Nothing }
    }

    #[cfg(test)]
    fn get(&self, bucket: &str, key: &str) -> Option<Arc<LatestObject>> {
        match self.lookup(bucket, key) {
            Kept::Entry(found) => Some(found),
            Kept::TooLarge | Kept::Nothing => None,
        }
    }

    #[cfg(test)]
    fn is_too_large(&self, bucket: &str, key: &str) -> bool {
        matches!(self.lookup(bucket, key), Kept::TooLarge)
    }

    /// The bucket `name` as last read (`Some(None)`: there is no such bucket), if kept.
    pub(crate) fn bucket(&self, name: &str) -> Option<Option<Arc<Bucket>>> {
        self.state.lock().expect("latest cache lock").buckets.get(name).cloned()
    }

    /// Keeps the bucket a read that began at `epoch` found, as [`LatestObjects::fill`] does.
    pub(crate) fn fill_bucket(&self, epoch: u64, name: &str, found: Option<Arc<Bucket>>) {
        let mut state = self.state.lock().expect("latest cache lock");
        if state.epoch != epoch {
            return;
        }
        if state.buckets.len() >= MAX_BUCKETS {
            state.buckets.clear();
        }
        state.buckets.insert(name.to_owned(), found);
    }

    /// The epoch to pass to [`LatestObjects::fill`], taken before the read begins.
    pub(crate) fn epoch(&self) -> u64 {
        self.state.lock().expect("latest cache lock").epoch
    }

    /// Keeps what a read that began at `epoch` found, unless a commit invalidated anything
    /// since.
    pub(crate) fn fill(&self, epoch: u64, bucket: &str, key: &str, found: Arc<LatestObject>) {
        let mut state = self.state.lock().expect("latest cache lock");
        if state.epoch != epoch {
            return;
        }
        let entry_key = (bucket.to_owned(), key.to_owned());
        let weight = found.weight(&entry_key);
        if weight > BUDGET_BYTES / 64 {
            state.too_large.put(entry_key, ());
            return;
        }
        if let Some(old) = state.entries.put(entry_key.clone(), found) {
            state.bytes -= old.weight(&entry_key);
        }
        state.bytes += weight;
        while state.bytes > BUDGET_BYTES {
            let Some((key, old)) = state.entries.pop_lru() else { break };
            state.bytes -= old.weight(&key);
        }
    }

    /// Removes what a commit changed; called after the commit, before its callers hear of it.
    pub(crate) fn invalidate(&self, touched: &Touched) {
        if touched.is_empty() {
            return;
        }
        let mut state = self.state.lock().expect("latest cache lock");
        state.epoch += 1;
        if touched.everything {
            state.entries.clear();
            state.bytes = 0;
            state.buckets.clear();
            state.too_large.clear();
            return;
        }
        for entry_key in &touched.objects {
            if let Some(old) = state.entries.pop(entry_key) {
                state.bytes -= old.weight(entry_key);
            }
            // Its next version may be small again.
            state.too_large.pop(entry_key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(inline: usize) -> Arc<LatestObject> {
        Arc::new(LatestObject { bucket: None, version: None, inline: Some(bytes::Bytes::from(vec![7u8; inline])) })
    }

    fn touched(objects: &[(&str, &str)]) -> Touched {
        Touched {
            objects: objects.iter().map(|(b, k)| ((*b).to_owned(), (*k).to_owned())).collect(),
            everything: false,
        }
    }

    #[test]
    fn a_version_too_large_to_keep_is_remembered_until_a_commit_changes_it() {
        let cache = LatestObjects::new();
        cache.fill(cache.epoch(), "b", "big", entry(BUDGET_BYTES / 64 + 1));
        assert!(cache.get("b", "big").is_none(), "too large to keep");
        assert!(cache.is_too_large("b", "big"));
        assert!(!cache.is_too_large("b", "other"));
        cache.invalidate(&touched(&[("b", "other")]));
        assert!(cache.is_too_large("b", "big"), "another key's commit leaves the mark");
        cache.invalidate(&touched(&[("b", "big")]));
        assert!(!cache.is_too_large("b", "big"), "its next version may be small again");
        cache.fill(cache.epoch(), "b", "big", entry(1));
        assert!(cache.get("b", "big").is_some());
    }

    #[test]
    fn a_fill_from_before_an_invalidation_is_not_kept() {
        let cache = LatestObjects::new();
        let epoch = cache.epoch();
        // A commit lands between the read's start and its fill.
        cache.invalidate(&touched(&[("b", "other")]));
        cache.fill(epoch, "b", "k", entry(1));
        assert!(cache.get("b", "k").is_none());
        let epoch = cache.epoch();
        cache.fill(epoch, "b", "k", entry(1));
        assert!(cache.get("b", "k").is_some());
    }

    #[test]
    fn an_invalidation_removes_its_objects_and_a_bucket_change_removes_all() {
        let cache = LatestObjects::new();
        for key in ["a", "b", "c"] {
            cache.fill(cache.epoch(), "bucket", key, entry(1));
        }
        cache.invalidate(&touched(&[("bucket", "b")]));
        assert!(cache.get("bucket", "a").is_some());
        assert!(cache.get("bucket", "b").is_none());
        let mut all = Touched::default();
        all.everything();
        cache.invalidate(&all);
        assert!(cache.get("bucket", "a").is_none() && cache.get("bucket", "c").is_none());
        assert_eq!(cache.state.lock().unwrap().bytes, 0);
    }

    #[test]
    fn buckets_stay_until_a_bucket_changes() {
        let cache = LatestObjects::new();
        cache.fill_bucket(cache.epoch(), "gone", None);
        assert_eq!(cache.bucket("gone"), Some(None));
        cache.invalidate(&touched(&[("gone", "k")]));
        assert_eq!(cache.bucket("gone"), Some(None), "an object's change keeps its bucket");
        let epoch = cache.epoch();
        let mut all = Touched::default();
        all.note(&Payload::VersioningSet(crate::event::v1::VersioningSet {
            bucket: "gone".into(),
            status: crate::event::v1::VersioningStatus::Enabled,
        }));
        cache.invalidate(&all);
        assert_eq!(cache.bucket("gone"), None);
        cache.fill_bucket(epoch, "gone", None);
        assert_eq!(cache.bucket("gone"), None, "a read from before the change is not kept");
    }

    #[test]
    fn a_read_record_invalidates_nothing() {
        let mut noted = Touched::default();
        noted.note(&Payload::Retrieved(crate::event::v1::Retrieved {
            version: crate::event::v1::VersionRef { bucket: "b".into(), key: "k".into(), version_id: "v".into() },
            method: "GET".into(),
            bytes: 1,
            range: None,
        }));
        assert!(noted.is_empty());
    }

    #[test]
    fn memory_stays_within_the_budget() {
        let cache = LatestObjects::new();
        let size = 64 << 10;
        for i in 0..(2 * BUDGET_BYTES / size) {
            cache.fill(cache.epoch(), "b", &i.to_string(), entry(size));
        }
        let state = cache.state.lock().unwrap();
        assert!(state.bytes <= BUDGET_BYTES, "{} bytes kept", state.bytes);
        assert!(state.entries.len() < 2 * BUDGET_BYTES / size);
        // The most recent entry stays.
        assert!(state.entries.contains(&("b".to_owned(), (2 * BUDGET_BYTES / size - 1).to_string())));
    }
}
