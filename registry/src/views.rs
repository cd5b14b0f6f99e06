//! What each event does to the views, engine-neutral.
//!
//! The direct path (a command appending an event) and [`crate::log::replay`] both call
//! [`apply_payload`], so the views after either are the same rows. It trusts the event: the
//! checks that decide whether an event may be appended run before it, in the commands.
//! Everything written here comes from the event itself (never the clock, never a random
//! number), which is what makes replay reproduce the views byte for byte.
//!
//! The meaning lives here: which rows an event adds, replaces or removes, which version of a
//! key is the latest after it, when a blob gains or loses a reference. An engine stores the
//! rows through [`ViewRows`], the row operations `apply_payload` is made of; the SQLite
//! engine's are in `sqlite/views.rs`.

use std::collections::HashMap;
use std::hash::{BuildHasher as _, Hash, RandomState};

use crate::error::{Error, Result};
use crate::event::Event;
use crate::event::v1::{self, AccessKeyStatus, BlobPart, LockMode, ObjectPut, Payload, Retention, VersioningStatus};
use crate::state::PublicAccessBlock;

/// The row operations an engine keeps the views with. A version's row is named by the
/// sequence of the event that added it, unique and stable for the row's life.
///
/// Each method does one thing to one table; which of them an event calls, and in what
/// order, is decided by [`apply_payload`] once for every engine.
pub(crate) trait ViewRows {
    /// Adds an event to the subject index.
    fn insert_subject(&self, subject_id: &str, sequence: u64) -> Result<()>;
    /// Adds `(subject_id, sequence)` rows to the subject index, in the order given.
    fn insert_subjects(&self, rows: &[(String, u64)]) -> Result<()>;
    /// Adds `delta` to a blob's reference count; a count that reaches zero drops the row.
    fn add_blob_refs(&self, blob: &str, delta: i64) -> Result<()>;
    /// Adds reference count rows for blobs that have none, in the order given (a rebuild
    /// of emptied views, whose counts are all new).
    fn insert_blob_refs(&self, counts: &mut dyn Iterator<Item = (&str, i64)>) -> Result<()>;

    /// Adds a bucket.
    fn insert_bucket(&self, bucket: &BucketRow<'_>) -> Result<()>;
    /// Removes a bucket.
    fn delete_bucket(&self, name: &str) -> Result<()>;
    /// Changes one of a bucket's settings.
    fn set_bucket(&self, name: &str, setting: BucketSetting<'_>) -> Result<()>;
    /// Sets a bucket's policy, recorded by the event of `sequence`, or removes it.
    fn set_bucket_policy(&self, bucket: &str, policy: Option<(&str, u64)>) -> Result<()>;

    /// Sets a bucket's public access block, recorded by `event`, or removes it.
    fn set_public_access_block(&self, bucket: &str, block: Option<(&PublicAccessBlock, &Event)>) -> Result<()>;
    /// Sets a bucket's CORS rules, recorded by the event of `sequence`, or removes them.
    fn set_cors(&self, bucket: &str, rules: Option<(&[v1::CorsRule], u64)>) -> Result<()>;
    /// Sets a bucket's tags, recorded by the event of `sequence`, or removes them.
    fn set_bucket_tags(&self, bucket: &str, tags: Option<(&v1::StringMap, u64)>) -> Result<()>;
    /// Sets a bucket's default encryption, recorded by the event of `sequence`, or removes it.
    fn set_bucket_encryption(&self, bucket: &str, rule: Option<(&v1::EncryptionRule, u64)>) -> Result<()>;
    /// Records the master key the gateways wrap SSE-S3 data keys with, by the event of
    /// `sequence`.
    fn set_master_key(&self, key_id: &str, sequence: u64) -> Result<()>;
    /// Sets a bucket's object ownership (`None` as the name once the controls were deleted),
    /// recorded by the event of `sequence`, or forgets it (the bucket is gone).
    fn set_ownership(&self, bucket: &str, ownership: Option<(Option<&str>, u64)>) -> Result<()>;
    /// Sets the ACL of the version in `row`, its grants and its owner when not the bucket's,
    /// recorded by the event of `sequence` (a version's ACL goes with its row, in
    /// `delete_version`).
    fn set_object_acl(&self, row: i64, grants: &[v1::AclEntry], owner: Option<&str>, sequence: u64) -> Result<()>;
    /// Sets a bucket's ACL grants, recorded by the event of `sequence`, or removes them.
    fn set_bucket_acl(&self, bucket: &str, grants: Option<(&[v1::AclEntry], u64)>) -> Result<()>;
    /// Adds an account, created by `event`.
    fn insert_account(&self, event: &Event, account: &v1::AccountCreated) -> Result<()>;
    /// Adds a user, created by the event `created`, or removes it.
    fn set_user(&self, account: &str, name: &str, created: Option<&Event>) -> Result<()>;
    /// Adds an active access key, created by `event`.
    fn insert_access_key(&self, event: &Event, access_key: &str, account: &str, user: &str) -> Result<()>;
    /// Sets an access key's status (`Active` or `Inactive`).
    fn set_access_key_status(&self, access_key: &str, status: &str) -> Result<()>;
    /// Marks an access key deleted by the event of `sequence` (its row stays, naming its user).
    fn delete_access_key(&self, access_key: &str, sequence: u64) -> Result<()>;
    /// Sets a user's inline policy, recorded by the event of `sequence`, or removes it.
    fn set_user_policy(&self, account: &str, user: &str, name: &str, policy: Option<(&str, u64)>) -> Result<()>;

    /// The row of a version, if the views hold it.
    fn version_row(&self, bucket: &str, key: &str, version_id: &str) -> Result<Option<i64>>;
    /// The row of the key's latest version, if any.
    fn latest_row(&self, bucket: &str, key: &str) -> Result<Option<i64>>;
    /// The key's newest row, if any.
    fn newest_row(&self, bucket: &str, key: &str) -> Result<Option<i64>>;
    /// A version row's content column and whether it is the latest.
    fn version_content(&self, row: i64) -> Result<(String, bool)>;
    /// A version row's retention and legal hold, if the row exists.
    fn version_lock(&self, row: i64) -> Result<Option<(Option<Retention>, bool)>>;
    /// Adds a version row.
    fn insert_version(&self, version: &VersionRow<'_>) -> Result<()>;
    /// Removes a version row.
    fn delete_version(&self, row: i64) -> Result<()>;
    /// Changes one column of a version row.
    fn set_version(&self, row: i64, change: VersionChange<'_>) -> Result<()>;

    /// Adds a retrieval.
    fn insert_retrieval(&self, event: &Event, retrieved: &v1::Retrieved) -> Result<()>;
    /// Adds a multipart upload, its template the JSON of its `v1.multipart.created` payload.
    fn insert_upload(&self, event: &Event, created: &v1::MultipartCreated, template: &str) -> Result<()>;
    /// Removes a multipart upload's row (its parts go through [`ViewRows::take_parts`]).
    fn delete_upload(&self, upload_id: &str) -> Result<()>;
    /// Adds a part, its `part` column the JSON of its blob part.
    fn insert_part(&self, event: &Event, uploaded: &v1::PartUploaded, part: &str) -> Result<()>;
    /// Removes one part of an upload, or all of them, returning their `part` columns.
    fn take_parts(&self, upload_id: &str, number: Option<u32>) -> Result<Vec<String>>;

    /// Adds a sealed package.
    fn insert_package(&self, event: &Event, finalized: &v1::PackageFinalized) -> Result<()>;
    /// Whether any package is sealed.
    fn any_package(&self) -> Result<bool>;
}

/// A bucket's row as `v1.bucket.created` adds it.
pub(crate) struct BucketRow<'a> {
    pub(crate) name: &'a str,
    pub(crate) created_seq: u64,
    pub(crate) created_at: i64,
    pub(crate) region: &'a str,
    pub(crate) owner: &'a str,
    /// A bucket created with Object Lock has versioning enabled from the start.
    pub(crate) versioning: Option<&'static str>,
    pub(crate) object_lock_enabled: bool,
}

/// One bucket setting an event changes.
pub(crate) enum BucketSetting<'a> {
    /// `Enabled` or `Suspended`.
    Versioning(&'static str),
    /// Object Lock on, with the default retention's JSON, or none.
    ObjectLock(Option<&'a str>),
    /// The lifecycle rules' JSON, or none.
    Lifecycle(Option<&'a str>),
}

/// A version's row: an object version or a delete marker.
pub(crate) struct VersionRow<'a> {
    pub(crate) bucket: &'a str,
    pub(crate) key: &'a str,
    pub(crate) version_id: &'a str,
    pub(crate) seq: u64,
    pub(crate) created_at: i64,
    pub(crate) is_delete_marker: bool,
    pub(crate) size: u64,
    pub(crate) etag: &'a str,
    pub(crate) blake3: &'a str,
    /// [`v1::ObjectContent`] as JSON; `{}` for a delete marker.
    pub(crate) content: &'a str,
    /// [`v1::Origin`] as JSON; `{}` for a delete marker.
    pub(crate) origin: &'a str,
    pub(crate) actor: &'a str,
    pub(crate) retention: Option<Retention>,
    pub(crate) legal_hold: bool,
}

/// One change to a version's row.
pub(crate) enum VersionChange<'a> {
    /// Whether it is the key's latest version.
    Latest(bool),
    /// Its content's JSON (new tags).
    Content(&'a str),
    /// Its retention.
    Retention(Option<Retention>),
    /// Its legal hold.
    LegalHold(bool),
}
/// The JSON columns of the version row an event adds, rendered from its payload alone, so
/// a rebuild renders them on the thread that decodes while another applies.
pub(crate) struct VersionColumns {
    content: String,
    origin: String,
}

impl VersionColumns {
    /// The columns of the version `payload` adds, if it adds one with content.
    pub(crate) fn of(payload: &Payload) -> Option<Self> {
        let put = match payload {
            Payload::ObjectPut(p) => p,
            Payload::MultipartCompleted(p) => &p.version,
            _ => return None,
        };
        Some(Self::render(put))
    }

    fn render(put: &ObjectPut) -> Self {
        VersionColumns { content: json(&put.content), origin: json(&put.origin) }
    }
}

/// Where the two tables that no apply reads back (the subject index and the blob reference
/// counts) get their changes: at once, or gathered over many events and written once in key
/// order. Both tables are keyed by random-looking text; a rebuild that inserts into them
/// event by event spends its time seeking b-tree pages, while the same rows written in key
/// order append. Replay gathers; the direct path writes at once, so every commit leaves the
/// views complete.
pub(crate) enum Deferred {
    /// Write each change as it comes.
    None,
    /// Gather until [`Deferred::flush`].
    Gathering {
        /// `(subject_id, seq)` rows.
        subjects: Vec<(String, u64)>,
        /// Reference count changes, one per blob part as they come; summed per blob at
        /// flush (sorting once costs less than keeping a map ordered through every change).
        refs: Vec<(String, i64)>,
        /// When rebuilding from empty views: every version by bucket and key, so that
        /// apply finds versions without the indexes of `object_versions`, which the
        /// rebuild drops and builds again, sorted, at the end.
        versions: Option<Box<VersionIndex>>,
    },
}

/// The rows of `object_versions`, mirrored in memory during a rebuild from empty views, so
/// that apply finds versions without the table's indexes (dropped, and built once at the
/// end). It holds no strings: a version or a key is known by a 128-bit hash of its names,
/// keyed afresh for each rebuild, so the mirror costs a few flat tables instead of several
/// allocations per version (allocating and freeing those took a tenth of a rebuild). With
/// random keys no input can aim at a collision, and a chance one among n names has odds of
/// about n² / 2¹²⁹: for a billion versions, 1 in 10²⁰.
pub(crate) struct VersionIndex {
    /// The two halves of a name's hash.
    hashers: (RandomState, RandomState),
    /// The row of each version, by the hash of its bucket, key and version id.
    rows: HashMap<u128, i64>,
    /// Per key, by the hash of its bucket and key.
    keys: HashMap<u128, KeyRows>,
    /// For each row, the key's next older row still present: the chain that says which row
    /// becomes the newest when the newest is removed.
    older: HashMap<i64, i64>,
    /// The reverse of `older`, so a row in the middle unlinks in constant time.
    newer: HashMap<i64, i64>,
}

/// What the index knows of one key.
#[derive(Default)]
struct KeyRows {
    /// The row with `is_latest = 1`.
    latest: Option<i64>,
    /// The key's newest row (rows are added in sequence order).
    newest: Option<i64>,
}

impl VersionIndex {
    fn new() -> Self {
        VersionIndex {
            hashers: (RandomState::new(), RandomState::new()),
            rows: HashMap::new(),
            keys: HashMap::new(),
            older: HashMap::new(),
            newer: HashMap::new(),
        }
    }

    fn name_hash(&self, names: impl Hash + Copy) -> u128 {
        (u128::from(self.hashers.0.hash_one(names)) << 64) | u128::from(self.hashers.1.hash_one(names))
    }

    fn version(&self, bucket: &str, key: &str, version_id: &str) -> Option<i64> {
        self.rows.get(&self.name_hash((bucket, key, version_id))).copied()
    }

    fn key(&self, bucket: &str, key: &str) -> Option<&KeyRows> {
        self.keys.get(&self.name_hash((bucket, key)))
    }

    /// Notes a new row, the key's newest and latest.
    fn insert(&mut self, bucket: &str, key: &str, version_id: &str, row: i64) {
        self.rows.insert(self.name_hash((bucket, key, version_id)), row);
        let rows = self.keys.entry(self.name_hash((bucket, key))).or_default();
        if let Some(previous) = rows.newest.replace(row) {
            self.older.insert(row, previous);
            self.newer.insert(previous, row);
        }
        rows.latest = Some(row);
    }

    /// Notes a removed row.
    fn remove(&mut self, bucket: &str, key: &str, version_id: &str, row: i64) {
        self.rows.remove(&self.name_hash((bucket, key, version_id)));
        let older = self.older.remove(&row);
        let newer = self.newer.remove(&row);
        match (older, newer) {
            (Some(older), Some(newer)) => {
                self.older.insert(newer, older);
                self.newer.insert(older, newer);
            }
            (Some(older), None) => drop(self.newer.remove(&older)),
            (None, Some(newer)) => drop(self.older.remove(&newer)),
            (None, None) => {}
        }
        if let Some(rows) = self.keys.get_mut(&self.name_hash((bucket, key))) {
            if rows.newest == Some(row) {
                rows.newest = older;
            }
            if rows.latest == Some(row) {
                rows.latest = None;
            }
        }
    }

    fn set_latest(&mut self, bucket: &str, key: &str, row: Option<i64>) {
        if let Some(rows) = self.keys.get_mut(&self.name_hash((bucket, key))) {
            rows.latest = row;
        }
    }
}

impl Deferred {
    /// A gatherer for catching up views that already hold rows.
    pub(crate) fn gathering() -> Self {
        Deferred::Gathering { subjects: Vec::new(), refs: Vec::new(), versions: None }
    }

    /// A gatherer for a rebuild of emptied views, with the version index in memory.
    pub(crate) fn rebuilding() -> Self {
        Deferred::Gathering { subjects: Vec::new(), refs: Vec::new(), versions: Some(Box::new(VersionIndex::new())) }
    }

    fn memory(&mut self) -> Option<&mut VersionIndex> {
        match self {
            Deferred::Gathering { versions: Some(versions), .. } => Some(versions),
            _ => None,
        }
    }

    /// The row of a version, if it exists.
    pub(crate) fn version_seq(
        &mut self,
        rows: &(impl ViewRows + ?Sized),
        bucket: &str,
        key: &str,
        version_id: &str,
    ) -> Result<Option<i64>> {
        match self.memory() {
            Some(index) => Ok(index.version(bucket, key, version_id)),
            None => rows.version_row(bucket, key, version_id),
        }
    }

    /// The row of the key's latest version, if any.
    fn latest_seq(&mut self, rows: &(impl ViewRows + ?Sized), bucket: &str, key: &str) -> Result<Option<i64>> {
        match self.memory() {
            Some(index) => Ok(index.key(bucket, key).and_then(|key_rows| key_rows.latest)),
            None => rows.latest_row(bucket, key),
        }
    }

    /// The newest remaining row of the key, if any.
    fn newest_seq(&mut self, rows: &(impl ViewRows + ?Sized), bucket: &str, key: &str) -> Result<Option<i64>> {
        match self.memory() {
            Some(index) => Ok(index.key(bucket, key).and_then(|key_rows| key_rows.newest)),
            None => rows.newest_row(bucket, key),
        }
    }

    /// Notes a new latest version row.
    fn inserted(&mut self, bucket: &str, key: &str, version_id: &str, seq: i64) {
        if let Some(index) = self.memory() {
            index.insert(bucket, key, version_id, seq);
        }
    }

    /// Notes a removed row.
    fn removed(&mut self, bucket: &str, key: &str, version_id: &str, seq: i64) {
        if let Some(index) = self.memory() {
            index.remove(bucket, key, version_id, seq);
        }
    }

    /// Notes which row is the latest now.
    fn set_latest(&mut self, bucket: &str, key: &str, seq: Option<i64>) {
        if let Some(index) = self.memory() {
            index.set_latest(bucket, key, seq);
        }
    }

    /// Writes what was gathered. The result is what writing each change at once would have
    /// left: subjects are distinct rows, and a blob's count is the sum of its changes (a
    /// count never goes below zero on the way, since a part releases only what it took).
    pub(crate) fn flush(&mut self, rows: &(impl ViewRows + ?Sized)) -> Result<()> {
        let Deferred::Gathering { subjects, refs, versions } = self else {
            return Ok(());
        };
        subjects.sort_unstable();
        rows.insert_subjects(&std::mem::take(subjects))?;
        let mut refs = std::mem::take(refs);
        refs.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let counts = sum_by_blob(&refs);
        if versions.is_some() {
            // Rebuilding from empty: every count is new.
            rows.insert_blob_refs(&mut counts.filter(|(_, n)| *n > 0))?;
        } else {
            for (blob, delta) in counts {
                if delta != 0 {
                    rows.add_blob_refs(blob, delta)?;
                }
            }
        }
        Ok(())
    }

    fn subject(&mut self, rows: &(impl ViewRows + ?Sized), event: &Event) -> Result<()> {
        match self {
            Deferred::None => rows.insert_subject(&event.subject_id, event.sequence),
            // The caller hands the events over once applied (`gather_subjects`).
            Deferred::Gathering { .. } => Ok(()),
        }
    }

    /// Gathers the subjects of applied events, moved out of the events rather than copied
    /// (a copy and a free per event were a few percent of a rebuild).
    pub(crate) fn gather_subjects(&mut self, events: Vec<Event>) {
        if let Deferred::Gathering { subjects, .. } = self {
            subjects.extend(events.into_iter().map(|event| (event.subject_id, event.sequence)));
        }
    }

    fn refs(&mut self, rows: &(impl ViewRows + ?Sized), parts: &[BlobPart], delta: i64) -> Result<()> {
        for part in parts {
            match self {
                Deferred::None => rows.add_blob_refs(&part.blob, delta)?,
                Deferred::Gathering { refs, .. } => refs.push((part.blob.clone(), delta)),
            }
        }
        Ok(())
    }
}

/// The total change per blob of changes sorted by blob.
fn sum_by_blob(sorted: &[(String, i64)]) -> impl Iterator<Item = (&str, i64)> {
    sorted.chunk_by(|a, b| a.0 == b.0).map(|changes| (changes[0].0.as_str(), changes.iter().map(|(_, n)| n).sum()))
}

/// Applies an event whose payload the caller has already decoded (the direct path has it),
/// with its version's columns if the caller rendered them ([`VersionColumns::of`]). Unknown
/// event types change nothing.
pub(crate) fn apply_payload(
    rows: &(impl ViewRows + ?Sized),
    event: &Event,
    payload: &Payload,
    columns: Option<&VersionColumns>,
    deferred: &mut Deferred,
) -> Result<()> {
    deferred.subject(rows, event)?;
    match payload {
        Payload::BucketCreated(p) => rows.insert_bucket(&BucketRow {
            name: &p.bucket,
            created_seq: event.sequence,
            created_at: event.created_at,
            region: &p.region,
            owner: &event.actor,
            versioning: p.object_lock_enabled.then_some("Enabled"),
            object_lock_enabled: p.object_lock_enabled,
        })?,
        Payload::BucketDeleted(p) => {
            // A bucket's policy goes with it: a bucket created again under the name starts
            // without one.
            rows.set_bucket_policy(&p.bucket, None)?;
            rows.set_public_access_block(&p.bucket, None)?;
            rows.set_cors(&p.bucket, None)?;
            rows.set_bucket_tags(&p.bucket, None)?;
            rows.set_bucket_encryption(&p.bucket, None)?;
            rows.set_ownership(&p.bucket, None)?;
            rows.set_bucket_acl(&p.bucket, None)?;
            rows.delete_bucket(&p.bucket)?;
        }
        Payload::BucketPolicySet(p) => rows.set_bucket_policy(&p.bucket, Some((&p.policy, event.sequence)))?,
        Payload::BucketPolicyDeleted(p) => rows.set_bucket_policy(&p.bucket, None)?,
        Payload::PublicAccessBlockSet(p) => {
            let block = PublicAccessBlock {
                block_public_acls: p.block_public_acls,
                ignore_public_acls: p.ignore_public_acls,
                block_public_policy: p.block_public_policy,
                restrict_public_buckets: p.restrict_public_buckets,
            };
            rows.set_public_access_block(&p.bucket, Some((&block, event)))?;
        }
        Payload::PublicAccessBlockDeleted(p) => rows.set_public_access_block(&p.bucket, None)?,
        Payload::CorsSet(p) => rows.set_cors(&p.bucket, Some((&p.rules, event.sequence)))?,
        Payload::CorsDeleted(p) => rows.set_cors(&p.bucket, None)?,
        Payload::BucketTaggingSet(p) => rows.set_bucket_tags(&p.bucket, Some((&p.tags, event.sequence)))?,
        Payload::BucketTaggingDeleted(p) => rows.set_bucket_tags(&p.bucket, None)?,
        Payload::BucketEncryptionSet(p) => rows.set_bucket_encryption(&p.bucket, Some((&p.rule, event.sequence)))?,
        Payload::BucketEncryptionDeleted(p) => rows.set_bucket_encryption(&p.bucket, None)?,
        Payload::MasterKeySet(p) => rows.set_master_key(&p.key_id, event.sequence)?,
        Payload::OwnershipSet(p) => rows.set_ownership(&p.bucket, Some((Some(&p.ownership), event.sequence)))?,
        Payload::OwnershipDeleted(p) => rows.set_ownership(&p.bucket, Some((None, event.sequence)))?,
        Payload::BucketAclSet(p) => rows.set_bucket_acl(&p.bucket, Some((&p.grants, event.sequence)))?,
        Payload::ObjectAclSet(p) => {
            let v = &p.version;
            if let Some(row) = deferred.version_seq(rows, &v.bucket, &v.key, &v.version_id)? {
                rows.set_object_acl(row, &p.grants, p.owner.as_deref(), event.sequence)?;
            }
        }
        Payload::AccountCreated(p) => rows.insert_account(event, p)?,
        Payload::UserCreated(p) => rows.set_user(&p.account, &p.user, Some(event))?,
        Payload::UserDeleted(p) => rows.set_user(&p.account, &p.user, None)?,
        Payload::UserPolicySet(p) => {
            rows.set_user_policy(&p.account, &p.user, &p.name, Some((&p.policy, event.sequence)))?;
        }
        Payload::UserPolicyDeleted(p) => rows.set_user_policy(&p.account, &p.user, &p.name, None)?,
        Payload::AccessKeyCreated(p) => rows.insert_access_key(event, &p.access_key, &p.account, &p.user)?,
        Payload::AccessKeyStatusSet(p) => {
            let status = match p.status {
                AccessKeyStatus::Active => "Active",
                AccessKeyStatus::Inactive => "Inactive",
            };
            rows.set_access_key_status(&p.access_key, status)?;
        }
        Payload::AccessKeyDeleted(p) => rows.delete_access_key(&p.access_key, event.sequence)?,
        Payload::VersioningSet(p) => {
            let status = match p.status {
                VersioningStatus::Enabled => "Enabled",
                VersioningStatus::Suspended => "Suspended",
            };
            rows.set_bucket(&p.bucket, BucketSetting::Versioning(status))?;
        }
        Payload::ObjectLockSet(p) => {
            let default = p.default_retention.as_ref().map(json);
            rows.set_bucket(&p.bucket, BucketSetting::ObjectLock(default.as_deref()))?;
        }
        Payload::LifecycleSet(p) => {
            rows.set_bucket(&p.bucket, BucketSetting::Lifecycle(Some(&json(&p.rules))))?;
        }
        Payload::LifecycleDeleted(p) => rows.set_bucket(&p.bucket, BucketSetting::Lifecycle(None))?,
        Payload::ObjectPut(p) => insert_version(rows, event, p, columns, deferred)?,
        Payload::DeleteMarkerCreated(v) => {
            remove_version(rows, &v.bucket, &v.key, &v.version_id, deferred)?;
            demote_latest(rows, &v.bucket, &v.key, deferred)?;
            deferred.inserted(&v.bucket, &v.key, &v.version_id, seq(event));
            rows.insert_version(&VersionRow {
                bucket: &v.bucket,
                key: &v.key,
                version_id: &v.version_id,
                seq: event.sequence,
                created_at: event.created_at,
                is_delete_marker: true,
                size: 0,
                etag: "",
                blake3: "",
                content: "{}",
                origin: "{}",
                actor: &event.actor,
                retention: None,
                legal_hold: false,
            })?;
        }
        Payload::ObjectDeleted(p) => {
            let v = &p.version;
            remove_version(rows, &v.bucket, &v.key, &v.version_id, deferred)?;
        }
        Payload::TaggingSet(p) => {
            edit_content(rows, deferred, event.sequence, &p.version, |content| content.tags.clone_from(&p.tags))?;
        }
        // Only a part that is that blob and was encrypted takes the new key: an event naming
        // anything else changes nothing (the command appends none such).
        Payload::KeysRewrapped(p) => edit_content(rows, deferred, event.sequence, &p.version, |content| {
            for rewrapped in &p.parts {
                let part = usize::try_from(rewrapped.part).ok().and_then(|i| content.parts.get_mut(i));
                if let Some(part) = part.filter(|part| part.blob == rewrapped.blob && part.wrapped_key.is_some()) {
                    part.wrapped_key = Some(rewrapped.wrapped_key.clone());
                }
            }
        })?,
        Payload::RetentionSet(p) => {
            let v = &p.version;
            if let Some(row) = deferred.version_seq(rows, &v.bucket, &v.key, &v.version_id)? {
                rows.set_version(row, VersionChange::Retention(p.retention))?;
            }
        }
        Payload::LegalHoldSet(p) => {
            let v = &p.version;
            if let Some(row) = deferred.version_seq(rows, &v.bucket, &v.key, &v.version_id)? {
                rows.set_version(row, VersionChange::LegalHold(p.on))?;
            }
        }
        Payload::Retrieved(p) => rows.insert_retrieval(event, p)?,
        Payload::MultipartCreated(p) => rows.insert_upload(event, p, &json(p))?,
        Payload::PartUploaded(p) => {
            remove_part(rows, &p.upload_id, Some(p.part_number), deferred)?;
            rows.insert_part(event, p, &json(&p.part))?;
            deferred.refs(rows, std::slice::from_ref(&p.part), 1)?;
        }
        Payload::MultipartCompleted(p) => {
            // The version takes its references before the parts drop theirs, so a blob that
            // moves from the upload to the version never reaches zero.
            insert_version(rows, event, &p.version, columns, deferred)?;
            remove_upload(rows, &p.upload_id, deferred)?;
        }
        Payload::MultipartAborted(p) => remove_upload(rows, &p.upload_id, deferred)?,
        Payload::PackageFinalized(p) => rows.insert_package(event, p)?,
        // Audit-only: the change a bypass or a rule allowed is its own event, and a refused
        // read changed nothing.
        Payload::RetentionBypassed(_)
        | Payload::LifecycleApplied(_)
        | Payload::BlobCorrupt(_)
        | Payload::Unknown { .. } => {}
    }
    Ok(())
}

/// Adds a version, replacing one with the same id (the `null` version of an unversioned or
/// suspended bucket), and makes it the latest.
fn insert_version(
    rows: &(impl ViewRows + ?Sized),
    event: &Event,
    p: &ObjectPut,
    columns: Option<&VersionColumns>,
    deferred: &mut Deferred,
) -> Result<()> {
    let rendered;
    let columns = match columns {
        Some(columns) => columns,
        None => {
            rendered = VersionColumns::render(p);
            &rendered
        }
    };
    remove_version(rows, &p.bucket, &p.key, &p.version_id, deferred)?;
    demote_latest(rows, &p.bucket, &p.key, deferred)?;
    deferred.inserted(&p.bucket, &p.key, &p.version_id, seq(event));
    rows.insert_version(&VersionRow {
        bucket: &p.bucket,
        key: &p.key,
        version_id: &p.version_id,
        seq: event.sequence,
        created_at: event.created_at,
        is_delete_marker: false,
        size: p.content.size,
        etag: &p.content.etag,
        blake3: &p.content.blake3,
        content: &columns.content,
        origin: &columns.origin,
        actor: &event.actor,
        retention: p.retention,
        legal_hold: p.legal_hold,
    })?;
    deferred.refs(rows, &p.content.parts, 1)
}

/// Changes the recorded content of a version (its tags, its parts' wrapped keys), if the
/// version exists; its blobs stay the same.
fn edit_content(
    rows: &(impl ViewRows + ?Sized),
    deferred: &mut Deferred,
    sequence: u64,
    version: &v1::VersionRef,
    edit: impl FnOnce(&mut v1::ObjectContent),
) -> Result<()> {
    let Some(row) = deferred.version_seq(rows, &version.bucket, &version.key, &version.version_id)? else {
        return Ok(());
    };
    let (content, _) = rows.version_content(row)?;
    let mut content: v1::ObjectContent =
        serde_json::from_str(&content).map_err(|source| Error::CorruptPayload { sequence, source })?;
    edit(&mut content);
    rows.set_version(row, VersionChange::Content(&json(&content)))
}

/// Removes a version if it exists, releasing its blobs; if it was the latest, the newest
/// remaining version of the key becomes the latest.
fn remove_version(
    rows: &(impl ViewRows + ?Sized),
    bucket: &str,
    key: &str,
    version_id: &str,
    deferred: &mut Deferred,
) -> Result<()> {
    // Find the row, then work by row: most writes replace nothing, and a miss costs one
    // lookup.
    let Some(row) = deferred.version_seq(rows, bucket, key, version_id)? else {
        return Ok(());
    };
    let (content, was_latest) = rows.version_content(row)?;
    rows.delete_version(row)?;
    deferred.removed(bucket, key, version_id, row);
    // Delete markers store `{}`, which has no parts.
    if let Ok(content) = serde_json::from_str::<v1::ObjectContent>(&content) {
        deferred.refs(rows, &content.parts, -1)?;
    }
    if was_latest {
        let newest = deferred.newest_seq(rows, bucket, key)?;
        if let Some(newest) = newest {
            rows.set_version(newest, VersionChange::Latest(true))?;
        }
        deferred.set_latest(bucket, key, newest);
    }
    Ok(())
}

fn demote_latest(rows: &(impl ViewRows + ?Sized), bucket: &str, key: &str, deferred: &mut Deferred) -> Result<()> {
    // A read finds the latest version (usually none, for a new key); the write then goes
    // by row instead of searching the key's rows for nothing.
    if let Some(row) = deferred.latest_seq(rows, bucket, key)? {
        rows.set_version(row, VersionChange::Latest(false))?;
        deferred.set_latest(bucket, key, None);
    }
    Ok(())
}

/// An event's sequence as a version's row.
fn seq(event: &Event) -> i64 {
    i64::try_from(event.sequence).expect("sequences fit in signed 64-bit integers")
}

fn remove_upload(rows: &(impl ViewRows + ?Sized), upload_id: &str, deferred: &mut Deferred) -> Result<()> {
    remove_part(rows, upload_id, None, deferred)?;
    rows.delete_upload(upload_id)
}

/// Removes one part of an upload, or all of them, releasing their blobs.
fn remove_part(
    rows: &(impl ViewRows + ?Sized),
    upload_id: &str,
    number: Option<u32>,
    deferred: &mut Deferred,
) -> Result<()> {
    for part in rows.take_parts(upload_id, number)? {
        let part: BlobPart =
            serde_json::from_str(&part).map_err(|source| Error::CorruptPayload { sequence: 0, source })?;
        deferred.refs(rows, std::slice::from_ref(&part), -1)?;
    }
    Ok(())
}

/// The name a lock mode is stored and shown under.
pub(crate) fn mode_name(mode: LockMode) -> &'static str {
    match mode {
        LockMode::Governance => "GOVERNANCE",
        LockMode::Compliance => "COMPLIANCE",
    }
}

/// A version's retention from the mode's stored name ([`mode_name`]) and its date.
pub(crate) fn stored_retention(mode: Option<&str>, retain_until: Option<i64>) -> Option<Retention> {
    let mode = if mode? == mode_name(LockMode::Compliance) { LockMode::Compliance } else { LockMode::Governance };
    Some(Retention { mode, retain_until: retain_until? })
}

/// JSON text of a value stored in a view column. Views need determinism, not the log's
/// canonical form: serde_json writes struct fields in declaration order and our maps are
/// ordered, so the same value always gives the same text.
pub(crate) fn json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("view values always serialise")
}
