//! What can be asked of the registry: the [`Reads`] every engine answers, and the queries'
//! and answers' types.
//!
//! Commands ask inside the writer's transaction, so that their checks and their appends see
//! the same state; the gateway asks of a reader. The rules that are reads of the views
//! (lifecycle plans, the refusal of a change under a seal, a package's manifest) are provided
//! methods, the same for every engine.

use crate::acl::{ObjectAcl, Ownership};
use crate::error::{Error, Result};
use crate::event::v1::{AclEntry, BlobPart, CorsRule};
use crate::lifecycle::{self, Action, Effect};
use crate::packages::{MANIFEST_FORMAT, Manifest, Member, Package};
pub use crate::state::{AccessKey, Account, AccountUser, Bucket, ObjectVersion, PublicAccessBlock, Upload};

/// The reads every registry engine answers from its views (and, for the few that name
/// events, its log): the typed questions the commands ask inside the writer's transaction and
/// the gateway asks of a reader. An engine implements the required methods; the provided ones
/// (lifecycle plans, the refusal of a change under a seal, a package's manifest) are the
/// registry's rules over them and are the same for every engine.
///
/// The SQLite engine implements it for a [`rusqlite::Connection`] (`crate::sqlite::queries`).
pub trait Reads {
    /// The bucket called `name`.
    ///
    /// # Errors
    /// The engine's errors.
    fn bucket(&self, name: &str) -> Result<Option<Bucket>>;

    /// Every bucket, by name.
    ///
    /// # Errors
    /// The engine's errors.
    fn buckets(&self) -> Result<Vec<Bucket>>;

    /// The bucket's policy document, as its owner wrote it, if it has one.
    ///
    /// # Errors
    /// The engine's errors.
    fn bucket_policy(&self, bucket: &str) -> Result<Option<String>>;

    /// The bucket's object ownership (`BucketOwnerEnforced` when never set).
    ///
    /// # Errors
    /// The engine's errors.
    fn bucket_ownership(&self, bucket: &str) -> Result<Ownership>;

    /// The bucket's ACL grants besides its owner's full control (none when never set).
    ///
    /// # Errors
    /// The engine's errors.
    fn bucket_acl(&self, bucket: &str) -> Result<Vec<AclEntry>>;

    /// One object version's ACL: its owner when not the bucket's, and its grants besides the
    /// owner's full control (empty when never set).
    ///
    /// # Errors
    /// The engine's errors.
    fn object_acl(&self, bucket: &str, key: &str, version_id: &str) -> Result<ObjectAcl>;

    /// The bucket's CORS rules, if it has a configuration.
    ///
    /// # Errors
    /// The engine's errors.
    fn bucket_cors(&self, bucket: &str) -> Result<Option<Vec<CorsRule>>>;

    /// A bucket's tags, `None` when it has none set.
    ///
    /// # Errors
    /// The engine's errors.
    fn bucket_tags(&self, bucket: &str) -> Result<Option<crate::event::v1::StringMap>>;

    /// A bucket's default encryption, `None` when it has none set.
    ///
    /// # Errors
    /// The engine's errors.
    fn bucket_encryption(&self, bucket: &str) -> Result<Option<crate::event::v1::EncryptionRule>>;

    /// The id of the master key the gateways sharing this registry wrap SSE-S3 data keys with,
    /// once one was recorded.
    ///
    /// # Errors
    /// The engine's errors.
    fn master_key(&self) -> Result<Option<String>>;

    /// Whether any version or open upload is stored under SSE-S3 or SSE-KMS: data keys that
    /// only the gateways' master key (or a KMS key it keeps) unwraps. A scan of every version,
    /// for the rare start that finds no master key file.
    ///
    /// # Errors
    /// The engine's errors.
    fn holds_gateway_wrapped_keys(&self) -> Result<bool>;

    /// The bucket's public access block, if it has one.
    ///
    /// # Errors
    /// The engine's errors.
    fn public_access_block(&self, bucket: &str) -> Result<Option<PublicAccessBlock>>;

    /// The account called `name`.
    ///
    /// # Errors
    /// The engine's errors.
    fn account(&self, name: &str) -> Result<Option<Account>>;

    /// The account whose email address is `email`, compared without regard to case.
    ///
    /// # Errors
    /// The engine's errors.
    fn account_by_email(&self, email: &str) -> Result<Option<Account>>;

    /// Every account, by name.
    ///
    /// # Errors
    /// The engine's errors.
    fn accounts(&self) -> Result<Vec<Account>>;

    /// The user `name` of `account`.
    ///
    /// # Errors
    /// The engine's errors.
    fn user(&self, account: &str, name: &str) -> Result<Option<AccountUser>>;

    /// A user of `account` whose name is `name` but for case: IAM does not tell `alice` from
    /// `ALICE`, so a new user may not take a name that differs from one only so.
    ///
    /// # Errors
    /// The engine's errors.
    fn user_named_alike(&self, account: &str, name: &str) -> Result<Option<AccountUser>>;

    /// The users of `account`, by name.
    ///
    /// # Errors
    /// The engine's errors.
    fn users(&self, account: &str) -> Result<Vec<AccountUser>>;

    /// An access key, deleted ones included.
    ///
    /// # Errors
    /// The engine's errors.
    fn access_key(&self, access_key: &str) -> Result<Option<AccessKey>>;

    /// A user's access keys that are not deleted, oldest first.
    ///
    /// # Errors
    /// The engine's errors.
    fn access_keys(&self, account: &str, user: &str) -> Result<Vec<AccessKey>>;

    /// A user's inline policies, `(name, document)` by name.
    ///
    /// # Errors
    /// The engine's errors.
    fn user_policies(&self, account: &str, user: &str) -> Result<Vec<(String, String)>>;

    /// The account of the user holding `access_key`, if the registry holds the key (a
    /// deleted key still names it): whose a bucket is, whose an event was.
    ///
    /// # Errors
    /// The engine's errors.
    fn account_of_key(&self, access_key: &str) -> Result<Option<Account>> {
        match self.access_key(access_key)? {
            Some(key) => self.account(&key.account),
            None => Ok(None),
        }
    }

    /// The buckets `account` owns (its users' keys created them), by name: what ListBuckets
    /// lists to that account's users.
    ///
    /// # Errors
    /// The engine's errors.
    fn account_buckets(&self, account: &str) -> Result<Vec<Bucket>> {
        let mut owned = Vec::new();
        for bucket in self.buckets()? {
            let owner = self.account_of_key(&bucket.owner)?.map(|a| a.name);
            if owner.as_deref().unwrap_or(crate::state::ROOT_ACCOUNT) == account {
                owned.push(bucket);
            }
        }
        Ok(owned)
    }

    /// Whether the bucket holds no version, no delete marker and no upload in progress.
    ///
    /// # Errors
    /// The engine's errors.
    fn bucket_is_empty(&self, bucket: &str) -> Result<bool>;

    /// The key's current version (which may be a delete marker).
    ///
    /// # Errors
    /// The engine's errors.
    fn latest_version(&self, bucket: &str, key: &str) -> Result<Option<ObjectVersion>>;

    /// One version by id.
    ///
    /// # Errors
    /// The engine's errors.
    fn version(&self, bucket: &str, key: &str, version_id: &str) -> Result<Option<ObjectVersion>>;

    /// Every version of a key, newest first.
    ///
    /// # Errors
    /// The engine's errors.
    fn versions_of_key(&self, bucket: &str, key: &str) -> Result<Vec<ObjectVersion>>;

    /// Every version under a legal hold. Few by nature: what keeps a shared blob held is asked of
    /// these rather than of an index of versions by blob.
    ///
    /// # Errors
    /// The engine's errors.
    fn versions_on_legal_hold(&self) -> Result<Vec<ObjectVersion>>;

    /// The versions of a bucket's keys after `after`, in key order and newest first within a
    /// key: whole keys, about `limit` versions. Also returns the last key when more may follow.
    ///
    /// # Errors
    /// The engine's errors.
    fn versions_page(&self, bucket: &str, after: &str, limit: usize) -> Result<(Vec<ObjectVersion>, Option<String>)>;

    /// The sequences of every event about a subject (`bucket` or `bucket/key`), in order.
    ///
    /// # Errors
    /// The engine's errors.
    fn subject_sequences(&self, subject_id: &str) -> Result<Vec<u64>>;

    /// Lists current (non-delete-marker) versions in key order, rolling keys up to common
    /// prefixes. Keys under a common prefix are skipped with one index seek each, so a listing
    /// with a delimiter costs what it returns, not what the bucket holds.
    ///
    /// # Errors
    /// The engine's errors.
    fn list_objects(&self, query: &ListQuery) -> Result<ListPage>;

    /// Lists versions and delete markers in key order, newest first within a key, rolling keys
    /// up to common prefixes as [`Reads::list_objects`] does.
    ///
    /// # Errors
    /// The engine's errors.
    fn list_versions(&self, query: &VersionQuery) -> Result<VersionPage>;

    /// The upload with this id.
    ///
    /// # Errors
    /// The engine's errors.
    fn upload(&self, upload_id: &str) -> Result<Option<Upload>>;

    /// Uploads in progress in a bucket, by key then creation, after the markers.
    ///
    /// # Errors
    /// The engine's errors.
    fn uploads(
        &self,
        bucket: &str,
        prefix: &str,
        key_marker: Option<&str>,
        upload_id_marker: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Upload>>;

    /// The blob store's own uploads behind every upload in progress: `gc` aborts the store's
    /// uploads that none of these name, and `verify` does not expect their blobs to exist yet.
    ///
    /// # Errors
    /// The engine's errors.
    fn store_uploads(&self) -> Result<Vec<crate::event::v1::StoreUpload>>;

    /// Parts of an upload with a number above `after`, in order.
    ///
    /// # Errors
    /// The engine's errors.
    fn parts(&self, upload_id: &str, after: u32, limit: usize) -> Result<Vec<Part>>;

    /// Calls `each` with the BLAKE3 (hex) of every version larger than `min_size` bytes, in no
    /// particular order and possibly more than once: one pass over the versions, for the
    /// collection of data kept per object content (outboards).
    ///
    /// # Errors
    /// SQLite errors, and those `each` returns.
    fn each_version_digest(&self, min_size: u64, each: &mut dyn FnMut(&str) -> Result<()>) -> Result<()>;

    /// Calls `each` with the recorded subtree chaining values (hex: [`BlobPart::subtrees`], or
    /// the legacy [`BlobPart::subtree`]) of every part of an open upload that records them: the
    /// parts whose kept data (their leaves' digests) must stay until completion.
    ///
    /// # Errors
    /// SQLite errors, and those `each` returns.
    fn each_open_part_subtree(&self, each: &mut dyn FnMut(&str) -> Result<()>) -> Result<()>;

    /// How many versions and parts reference a blob (0: garbage, unless an upload is in flight).
    ///
    /// # Errors
    /// The engine's errors.
    fn blob_refs(&self, blob: &str) -> Result<u64>;

    /// Up to `limit` versions of a key created before the sequence `before` (all of them with
    /// `u64::MAX`), newest first, each with the event that created it: a key overwritten
    /// many times is read a page at a time.
    ///
    /// # Errors
    /// The engine's errors.
    fn key_provenance(&self, bucket: &str, key: &str, before: u64, limit: usize) -> Result<Vec<VersionProvenance>>;

    /// Up to `limit` retrieval records matching `filter`, in sequence order.
    ///
    /// # Errors
    /// The engine's errors.
    fn retrievals(&self, filter: &RetrievalFilter, limit: usize) -> Result<Vec<RetrievalRecord>>;

    /// How many current objects a bucket holds and their bytes, and how many versions and
    /// delete markers it holds in all: one pass over the bucket's rows.
    ///
    /// # Errors
    /// The engine's errors.
    fn bucket_usage(&self, bucket: &str) -> Result<BucketUsage>;

    /// How often each actor read a key, per day (UTC), in the records after sequence `after`:
    /// counted without reading the records out one by one, the newest [`MAX_RETRIEVAL_DAYS`]
    /// (day, actor) pairs.
    ///
    /// # Errors
    /// The engine's errors.
    fn retrieval_days(&self, bucket: &str, key: &str, after: u64) -> Result<Vec<RetrievalDay>>;

    /// The sequences of the newest `limit` events about a subject (`bucket` or `bucket/key`)
    /// after sequence `after`, newest first, and how many events about it follow `after`,
    /// counted up to [`MAX_SUBJECT_COUNT`] (a key read a million times is not counted on each
    /// look).
    ///
    /// # Errors
    /// The engine's errors.
    fn recent_subject_sequences(&self, subject_id: &str, after: u64, limit: usize) -> Result<(Vec<u64>, u64)>;

    /// Up to `limit` events after `cursor` that pass `filter`, looking at no more than `budget`
    /// events, so a filter that matches rarely cannot make one call read the whole log.
    ///
    /// # Errors
    /// The engine's errors.
    fn events_matching(&self, filter: &EventFilter, cursor: u64, limit: usize, budget: usize) -> Result<EventPage>;

    /// The event at `sequence`, if the log has it.
    ///
    /// # Errors
    /// The engine's errors.
    fn event(&self, sequence: u64) -> Result<Option<crate::event::Event>>;

    /// The bytes an inline locator names ([`crate::inline_blob`]); `None` when the locator
    /// is malformed or its bytes are gone (no version references them any more, and `gc`
    /// removed them).
    ///
    /// # Errors
    /// The engine's errors.
    fn inline_bytes(&self, locator: &str) -> Result<Option<Vec<u8>>>;

    /// Every package, by name.
    ///
    /// # Errors
    /// The engine's errors.
    fn packages(&self) -> Result<Vec<Package>>;

    /// The package called `name`.
    ///
    /// # Errors
    /// The engine's errors.
    fn package(&self, name: &str) -> Result<Option<Package>>;

    /// The package that seals exactly `prefix` of `bucket`.
    ///
    /// # Errors
    /// The engine's errors.
    fn package_of_prefix(&self, bucket: &str, prefix: &str) -> Result<Option<Package>>;

    /// The name of a package whose prefix covers `key`, if any.
    ///
    /// # Errors
    /// The engine's errors.
    fn sealing(&self, bucket: &str, key: &str) -> Result<Option<String>>;

    /// The current versions (not delete markers) of every key of `bucket` under `prefix`, by
    /// key, as manifest members.
    ///
    /// # Errors
    /// The engine's errors.
    fn members_under(&self, bucket: &str, prefix: &str) -> Result<Vec<Member>>;

    /// The manifest `prefix` of `bucket` would get now: the current versions (not delete
    /// markers) of every key under it, by key, but the manifest's own.
    ///
    /// # Errors
    /// The engine's errors.
    fn manifest(&self, name: &str, bucket: &str, prefix: &str) -> Result<Manifest> {
        let own_key = crate::packages::manifest_key(prefix);
        let mut members = self.members_under(bucket, prefix)?;
        members.retain(|member| member.key != own_key);
        Ok(Manifest {
            format: MANIFEST_FORMAT.to_owned(),
            name: name.to_owned(),
            bucket: bucket.to_owned(),
            prefix: prefix.to_owned(),
            members,
        })
    }

    /// Refuses a change to `key` when a package seals it; every command that changes a key
    /// calls this before it appends.
    ///
    /// # Errors
    /// [`Error::Sealed`], or the engine's errors.
    fn refuse_sealed(&self, bucket: &str, key: &str) -> Result<()> {
        match self.sealing(bucket, key)? {
            Some(package) => Err(Error::Sealed { package }),
            None => Ok(()),
        }
    }

    /// Whether `action` would change a version of a sealed package, which lifecycle leaves
    /// alone as it leaves a locked version (an upload in flight may still be aborted).
    ///
    /// # Errors
    /// The engine's errors.
    fn lifecycle_spares_sealed(&self, action: &Action) -> Result<bool> {
        let changes_a_version = !matches!(action.effect, Effect::AbortUpload { .. });
        Ok(changes_a_version && self.sealing(&action.bucket, &action.key)?.is_some())
    }

    /// The lifecycle plan of one bucket at `now` for its keys after `after` (`""`: from the
    /// start, which also plans its incomplete multipart uploads), one page of about
    /// `page_versions` versions, so the sweeper's memory does not grow with the bucket.
    ///
    /// # Errors
    /// The engine's errors; [`Error::CorruptPayload`] for stored rules that do not parse.
    fn lifecycle_plan_page(
        &self,
        bucket: &Bucket,
        after: &str,
        page_versions: usize,
        now: i64,
        day_ms: i64,
    ) -> Result<PlanPage> {
        let rules = lifecycle::rules_of(bucket)?;
        if rules.is_empty() {
            return Ok(PlanPage::default());
        }
        let (versions, next) = self.versions_page(&bucket.name, after, page_versions.max(1))?;
        let uploads =
            if after.is_empty() { self.uploads(&bucket.name, "", None, None, usize::MAX)? } else { Vec::new() };
        let scope = lifecycle::BucketRules { name: &bucket.name, rules: &rules, versioning: bucket.versioning };
        let mut plan = lifecycle::plan(scope, &versions, &uploads, now, day_ms);
        let mut kept = Vec::with_capacity(plan.actions.len());
        for action in plan.actions {
            if !self.lifecycle_spares_sealed(&action)? {
                kept.push(action);
            }
        }
        plan.actions = kept;
        Ok(PlanPage { plan, next })
    }

    /// The whole lifecycle plan of every bucket with rules at `now`, one plan per page: what
    /// `retention plan` prints (see [`lifecycle::plan`]). The sweeper applies page by page
    /// instead ([`Reads::lifecycle_plan_page`]).
    ///
    /// # Errors
    /// The engine's errors; [`Error::CorruptPayload`] for stored rules that do not parse.
    fn lifecycle_plan(&self, now: i64, day_ms: i64) -> Result<Vec<lifecycle::Plan>> {
        let mut plans = Vec::new();
        for bucket in self.buckets()? {
            let mut after = String::new();
            loop {
                let page = self.lifecycle_plan_page(&bucket, &after, PLAN_PAGE_VERSIONS, now, day_ms)?;
                plans.push(page.plan);
                match page.next {
                    Some(next) => after = next,
                    None => break,
                }
            }
        }
        Ok(plans)
    }
}

/// How many versions one page of a lifecycle plan reads, about, for the sweeper and
/// [`Reads::lifecycle_plan`]: a page holds whole keys, so a key with more versions than this is read
/// whole on a page of its own.
pub const PLAN_PAGE_VERSIONS: usize = 4096;

/// One page of a bucket's lifecycle plan: what is due for a run of whole keys.
#[derive(Debug, Clone, Default)]
pub struct PlanPage {
    /// What the sweeper does for these keys (sealed packages' versions left out).
    pub plan: crate::lifecycle::Plan,
    /// The last key of the page, to pass as `after` for the next one; `None` on the last page.
    pub next: Option<String>,
}

/// A listing request over the current versions of a bucket.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    /// Bucket.
    pub bucket: String,
    /// Only keys that start with this.
    pub prefix: String,
    /// Roll keys up to common prefixes at the first occurrence after `prefix`.
    pub delimiter: Option<String>,
    /// Only keys (and common prefixes) strictly after this.
    pub start_after: Option<String>,
    /// Most entries (keys plus common prefixes) to return.
    pub max_keys: usize,
}

/// One page of a listing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListPage {
    /// Current versions, by key.
    pub objects: Vec<ObjectVersion>,
    /// Common prefixes, in order.
    pub common_prefixes: Vec<String>,
    /// Whether more entries follow.
    pub is_truncated: bool,
    /// The last key or common prefix returned: where the next page starts after.
    pub last: Option<String>,
}

/// A listing request over every version and delete marker of a bucket (ListObjectVersions).
#[derive(Debug, Clone, Default)]
pub struct VersionQuery {
    /// Bucket.
    pub bucket: String,
    /// Only keys that start with this.
    pub prefix: String,
    /// Roll keys up to common prefixes at the first occurrence after `prefix`.
    pub delimiter: Option<String>,
    /// Start with the keys after this one...
    pub key_marker: Option<String>,
    /// ...or, with this, with the versions of `key_marker` older than this one.
    pub version_id_marker: Option<String>,
    /// Most entries (versions, delete markers and common prefixes) to return.
    pub max_keys: usize,
}

/// One page of a version listing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VersionPage {
    /// Versions and delete markers, by key, newest first within a key.
    pub versions: Vec<ObjectVersion>,
    /// Common prefixes, in order.
    pub common_prefixes: Vec<String>,
    /// Whether more entries follow.
    pub is_truncated: bool,
    /// Where the next page starts: the last key (or common prefix) returned...
    pub next_key_marker: Option<String>,
    /// ...and, when that was a version, its id.
    pub next_version_id_marker: Option<String>,
}

/// An uploaded part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// Part number.
    pub number: u32,
    /// Upload time.
    pub created_at: i64,
    /// The bytes.
    pub part: BlobPart,
}

/// The event that recorded something, as a receipt names it, with who caused it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingEvent {
    /// Its sequence.
    pub sequence: u64,
    /// Its chain hash.
    pub hash: crate::event::Digest,
    /// Its type (`v1.object.put`, `v1.multipart.completed`, ...).
    pub event_type: String,
    /// The request that caused it.
    pub context: crate::event::RequestContext,
}

/// One version of a key with the event that created it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionProvenance {
    /// The version as the views hold it now (tags, retention and legal hold are current).
    pub version: ObjectVersion,
    /// The event that created it.
    pub event: RecordingEvent,
    /// The user whose access key signed that event, when the registry holds the key.
    pub signer: Option<Signer>,
}

/// The user an access key belongs to: whom an event came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signer {
    /// The account's name.
    pub account: String,
    /// The account's id.
    pub account_id: String,
    /// The user's name (`root` for the account's root user).
    pub user: String,
}

/// Which retrieval records to read; `None` fields match everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetrievalFilter {
    /// Only reads of this bucket.
    pub bucket: Option<String>,
    /// Only reads of this key.
    pub key: Option<String>,
    /// Only reads by this actor (access key).
    pub actor: Option<String>,
    /// Only reads at or after this time, milliseconds since the epoch.
    pub from_ms: Option<i64>,
    /// Only reads before this time, milliseconds since the epoch.
    pub to_ms: Option<i64>,
    /// Only records after this sequence (the cursor of the previous page).
    pub after: u64,
}

/// One read of a version, as `v1.object.retrieved` recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetrievalRecord {
    /// The recording event's sequence.
    pub sequence: u64,
    /// The recording event's chain hash.
    pub hash: crate::event::Digest,
    /// When, milliseconds since the epoch.
    pub created_at: i64,
    /// Bucket read.
    pub bucket: String,
    /// Key read.
    pub key: String,
    /// Version read.
    pub version_id: String,
    /// `GET` or `HEAD`.
    pub method: String,
    /// Body bytes sent.
    pub bytes: u64,
    /// The `Range` honoured, if any.
    pub range: Option<String>,
    /// Who read it.
    pub actor: String,
    /// The request that read it.
    pub context: crate::event::RequestContext,
}

/// The most (day, actor) pairs [`Reads::retrieval_days`] returns.
pub const MAX_RETRIEVAL_DAYS: usize = 10_000;

/// Where [`Reads::recent_subject_sequences`] stops counting.
pub const MAX_SUBJECT_COUNT: u64 = 100_000;

/// What a bucket holds ([`Reads::bucket_usage`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BucketUsage {
    /// Keys whose current version is not a delete marker.
    pub objects: u64,
    /// The size of those current versions, in bytes.
    pub bytes: u64,
    /// Every version and delete marker, current or not.
    pub versions: u64,
}

/// One actor's reads of a key on one day ([`Reads::retrieval_days`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetrievalDay {
    /// The day's first millisecond since the epoch (UTC).
    pub day_ms: i64,
    /// Who read (the access key, or `anonymous`).
    pub actor: String,
    /// How many reads (GET and HEAD).
    pub reads: u64,
}

/// Which events a feed shows: all, or those about one bucket (the bucket itself and every
/// object in it), of the given types.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    /// Only events whose subject is this bucket or an object in it.
    pub bucket: Option<String>,
    /// Only events of these types (`v1.object.put`, ...); empty for every type.
    pub types: Vec<String>,
}

impl EventFilter {
    /// Whether `event` passes the filter.
    #[must_use]
    pub fn matches(&self, event: &crate::event::Event) -> bool {
        let bucket_matches = self.bucket.as_deref().is_none_or(|bucket| {
            event.subject_id.strip_prefix(bucket).is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        });
        bucket_matches && (self.types.is_empty() || self.types.contains(&event.event_type))
    }
}

/// A page of a filtered feed: the matching events, and the sequence the scan reached (where
/// the next page starts, even when nothing matched).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventPage {
    /// Matching events, in sequence order.
    pub events: Vec<crate::event::Event>,
    /// The last sequence looked at (the cursor given when nothing was).
    pub scanned_to: u64,
}
