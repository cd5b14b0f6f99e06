//! Typed reads of the views. Each function takes a connection: a reader's for the gateway's
//! reads, or the writer's inside a command so that checks and the append see the same state.

use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::error::Result;
use crate::event::v1::{BlobPart, LockMode, ObjectContent, Retention, VersioningStatus};
pub use crate::state::{Bucket, ObjectVersion, Upload};

const VERSION_COLUMNS: &str = "bucket, key, version_id, seq, created_at, is_latest, is_delete_marker, content, origin,
    actor, retention_mode, retain_until, legal_hold";

fn version_from_row(row: &Row<'_>) -> rusqlite::Result<ObjectVersion> {
    let is_delete_marker: bool = row.get(6)?;
    let content: String = row.get(7)?;
    let origin: String = row.get(8)?;
    let mode: Option<String> = row.get(10)?;
    let until: Option<i64> = row.get(11)?;
    Ok(ObjectVersion {
        bucket: row.get(0)?,
        key: row.get(1)?,
        version_id: row.get(2)?,
        sequence: row.get(3)?,
        created_at: row.get(4)?,
        is_latest: row.get(5)?,
        is_delete_marker,
        content: if is_delete_marker { ObjectContent::default() } else { parse_json(7, &content)? },
        origin: if is_delete_marker { None } else { Some(parse_json(8, &origin)?) },
        actor: row.get(9)?,
        retention: match (mode.as_deref(), until) {
            (Some(mode), Some(retain_until)) => Some(Retention { mode: parse_mode(mode), retain_until }),
            _ => None,
        },
        legal_hold: row.get(12)?,
    })
}

fn parse_mode(mode: &str) -> LockMode {
    if mode == "COMPLIANCE" { LockMode::Compliance } else { LockMode::Governance }
}

fn parse_json<T: serde::de::DeserializeOwned>(column: usize, text: &str) -> rusqlite::Result<T> {
    serde_json::from_str(text)
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(column, rusqlite::types::Type::Text, Box::new(e)))
}

/// The bucket called `name`.
///
/// # Errors
/// SQLite errors.
pub fn bucket(conn: &Connection, name: &str) -> Result<Option<Bucket>> {
    Ok(conn
        .prepare_cached(
            "SELECT name, created_at, region, owner, versioning, object_lock_enabled, default_retention, lifecycle
             FROM buckets WHERE name = ?1",
        )?
        .query_row([name], bucket_from_row)
        .optional()?)
}

/// Every bucket, by name.
///
/// # Errors
/// SQLite errors.
pub fn buckets(conn: &Connection) -> Result<Vec<Bucket>> {
    let mut statement = conn.prepare_cached(
        "SELECT name, created_at, region, owner, versioning, object_lock_enabled, default_retention, lifecycle
         FROM buckets ORDER BY name",
    )?;
    let buckets = statement.query_map([], bucket_from_row)?.collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(buckets)
}

fn bucket_from_row(row: &Row<'_>) -> rusqlite::Result<Bucket> {
    let versioning: Option<String> = row.get(4)?;
    let default_retention: Option<String> = row.get(6)?;
    let lifecycle: Option<String> = row.get(7)?;
    Ok(Bucket {
        name: row.get(0)?,
        created_at: row.get(1)?,
        region: row.get(2)?,
        owner: row.get(3)?,
        versioning: versioning
            .map(|v| if v == "Enabled" { VersioningStatus::Enabled } else { VersioningStatus::Suspended }),
        object_lock_enabled: row.get(5)?,
        default_retention: default_retention.map(|t| parse_json(6, &t)).transpose()?,
        lifecycle: lifecycle.map(|t| parse_json(7, &t)).transpose()?,
    })
}

/// Whether the bucket holds no version, no delete marker and no upload in progress.
///
/// # Errors
/// SQLite errors.
pub fn bucket_is_empty(conn: &Connection, bucket: &str) -> Result<bool> {
    let has_version: bool = conn
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM object_versions WHERE bucket = ?1)")?
        .query_row([bucket], |row| row.get(0))?;
    let has_upload: bool = conn
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM multipart_uploads WHERE bucket = ?1)")?
        .query_row([bucket], |row| row.get(0))?;
    Ok(!has_version && !has_upload)
}

/// The key's current version (which may be a delete marker).
///
/// # Errors
/// SQLite errors.
pub fn latest_version(conn: &Connection, bucket: &str, key: &str) -> Result<Option<ObjectVersion>> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {VERSION_COLUMNS} FROM object_versions WHERE bucket = ?1 AND key = ?2 AND is_latest = 1"
        ))?
        .query_row([bucket, key], version_from_row)
        .optional()?)
}

/// One version by id.
///
/// # Errors
/// SQLite errors.
pub fn version(conn: &Connection, bucket: &str, key: &str, version_id: &str) -> Result<Option<ObjectVersion>> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {VERSION_COLUMNS} FROM object_versions WHERE bucket = ?1 AND key = ?2 AND version_id = ?3"
        ))?
        .query_row([bucket, key, version_id], version_from_row)
        .optional()?)
}

/// Every version of a key, newest first.
///
/// # Errors
/// SQLite errors.
pub fn versions_of_key(conn: &Connection, bucket: &str, key: &str) -> Result<Vec<ObjectVersion>> {
    let mut statement = conn.prepare_cached(&format!(
        "SELECT {VERSION_COLUMNS} FROM object_versions WHERE bucket = ?1 AND key = ?2 ORDER BY seq DESC"
    ))?;
    let versions = statement.query_map([bucket, key], version_from_row)?.collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(versions)
}

/// Every version under a legal hold. Few by nature: what keeps a shared blob held is asked of
/// these rather than of an index of versions by blob.
///
/// # Errors
/// SQLite errors.
pub fn versions_on_legal_hold(conn: &Connection) -> Result<Vec<ObjectVersion>> {
    let mut statement =
        conn.prepare_cached(&format!("SELECT {VERSION_COLUMNS} FROM object_versions WHERE legal_hold = 1"))?;
    let versions = statement.query_map([], version_from_row)?.collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(versions)
}

/// How many versions one page of a lifecycle plan reads, about, for the sweeper and
/// [`lifecycle_plan`]: a page holds whole keys, so a key with more versions than this is read
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

/// The lifecycle plan of one bucket at `now` for its keys after `after` (`""`: from the
/// start, which also plans its incomplete multipart uploads), one page of about
/// `page_versions` versions, so the sweeper's memory does not grow with the bucket.
///
/// # Errors
/// SQLite errors; [`crate::Error::CorruptPayload`] for stored rules that do not parse.
pub fn lifecycle_plan_page(
    conn: &Connection,
    bucket: &Bucket,
    after: &str,
    page_versions: usize,
    now: i64,
    day_ms: i64,
) -> Result<PlanPage> {
    let rules = crate::lifecycle::rules_of(bucket)?;
    if rules.is_empty() {
        return Ok(PlanPage::default());
    }
    let (versions, next) = versions_page(conn, &bucket.name, after, page_versions.max(1))?;
    let uploads = if after.is_empty() { uploads(conn, &bucket.name, "", None, None, usize::MAX)? } else { Vec::new() };
    let scope = crate::lifecycle::BucketRules { name: &bucket.name, rules: &rules, versioning: bucket.versioning };
    let mut plan = crate::lifecycle::plan(scope, &versions, &uploads, now, day_ms);
    let mut kept = Vec::with_capacity(plan.actions.len());
    for action in plan.actions {
        if !crate::packages::lifecycle_spares_sealed(conn, &action)? {
            kept.push(action);
        }
    }
    plan.actions = kept;
    Ok(PlanPage { plan, next })
}

/// The versions of a bucket's keys after `after`, in key order and newest first within a
/// key: whole keys, about `limit` versions. Also returns the last key when more may follow.
fn versions_page(
    conn: &Connection,
    bucket: &str,
    after: &str,
    limit: usize,
) -> Result<(Vec<ObjectVersion>, Option<String>)> {
    let mut statement = conn.prepare_cached(&format!(
        "SELECT {VERSION_COLUMNS} FROM object_versions WHERE bucket = ?1 AND key > ?2 ORDER BY key, seq DESC LIMIT ?3"
    ))?;
    let limit_sql = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut versions = statement
        .query_map(params![bucket, after, limit_sql], version_from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    if versions.len() < limit {
        return Ok((versions, None));
    }
    // The page may end inside its last key: leave that key to the next page, or, when it is
    // the only key, read it whole.
    let last = versions.last().map(|v| v.key.clone()).unwrap_or_default();
    versions.retain(|v| v.key != last);
    if versions.is_empty() {
        let mut whole = conn.prepare_cached(&format!(
            "SELECT {VERSION_COLUMNS} FROM object_versions WHERE bucket = ?1 AND key = ?2 ORDER BY seq DESC"
        ))?;
        versions = whole.query_map(params![bucket, last], version_from_row)?.collect::<rusqlite::Result<Vec<_>>>()?;
        return Ok((versions, Some(last)));
    }
    let next = versions.last().map(|v| v.key.clone());
    Ok((versions, next))
}

/// The whole lifecycle plan of every bucket with rules at `now`, one plan per page: what
/// `retention plan` prints (see [`crate::lifecycle::plan`]). The sweeper applies page by page
/// instead ([`lifecycle_plan_page`]).
///
/// # Errors
/// SQLite errors; [`crate::Error::CorruptPayload`] for stored rules that do not parse.
pub fn lifecycle_plan(conn: &Connection, now: i64, day_ms: i64) -> Result<Vec<crate::lifecycle::Plan>> {
    let mut plans = Vec::new();
    for bucket in buckets(conn)? {
        let mut after = String::new();
        loop {
            let page = lifecycle_plan_page(conn, &bucket, &after, PLAN_PAGE_VERSIONS, now, day_ms)?;
            plans.push(page.plan);
            match page.next {
                Some(next) => after = next,
                None => break,
            }
        }
    }
    Ok(plans)
}

/// The sequences of every event about a subject (`bucket` or `bucket/key`), in order.
///
/// # Errors
/// SQLite errors.
pub fn subject_sequences(conn: &Connection, subject_id: &str) -> Result<Vec<u64>> {
    let mut statement = conn.prepare_cached("SELECT seq FROM event_subjects WHERE subject_id = ?1 ORDER BY seq")?;
    let sequences = statement.query_map([subject_id], |row| row.get(0))?.collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(sequences)
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

/// Lists current (non-delete-marker) versions in key order, rolling keys up to common
/// prefixes. Keys under a common prefix are skipped with one index seek each, so a listing
/// with a delimiter costs what it returns, not what the bucket holds.
///
/// # Errors
/// SQLite errors.
pub fn list_objects(conn: &Connection, query: &ListQuery) -> Result<ListPage> {
    let mut page = ListPage::default();
    if query.max_keys == 0 {
        return Ok(page);
    }
    // Keys are compared as SQLite compares TEXT: by their UTF-8 bytes, which is S3's order.
    let mut cursor = match &query.start_after {
        Some(after) if after.as_str() >= query.prefix.as_str() => Bound::After(after.clone()),
        _ => Bound::AtLeast(query.prefix.clone()),
    };
    let mut statement = conn.prepare_cached(&format!(
        "SELECT {VERSION_COLUMNS} FROM object_versions
         WHERE bucket = ?1 AND is_latest = 1 AND is_delete_marker = 0 AND key >= ?2 AND (?3 = 0 OR key > ?2)
         ORDER BY key LIMIT 1"
    ))?;
    loop {
        let (bound, exclusive) = match &cursor {
            Bound::After(key) => (key.as_str(), true),
            Bound::AtLeast(key) => (key.as_str(), false),
        };
        let Some(version) =
            statement.query_row(params![query.bucket, bound, exclusive], version_from_row).optional()?
        else {
            break;
        };
        if !version.key.starts_with(&query.prefix) {
            break;
        }
        let entries = page.objects.len() + page.common_prefixes.len();
        if entries == query.max_keys {
            page.is_truncated = true;
            break;
        }
        let rolled_up = query.delimiter.as_deref().filter(|d| !d.is_empty()).and_then(|delimiter| {
            let rest = &version.key[query.prefix.len()..];
            rest.find(delimiter).map(|at| version.key[..query.prefix.len() + at + delimiter.len()].to_owned())
        });
        match rolled_up {
            Some(common_prefix) => {
                cursor = match successor(&common_prefix) {
                    Some(next) => Bound::AtLeast(next),
                    None => Bound::After(version.key.clone()),
                };
                if page.common_prefixes.last() != Some(&common_prefix)
                    && query.start_after.as_deref().is_none_or(|after| common_prefix.as_str() > after)
                {
                    page.last = Some(common_prefix.clone());
                    page.common_prefixes.push(common_prefix);
                }
            }
            None => {
                cursor = Bound::After(version.key.clone());
                page.last = Some(version.key.clone());
                page.objects.push(version);
            }
        }
    }
    Ok(page)
}

enum Bound {
    After(String),
    AtLeast(String),
}

/// The smallest string greater than every string that starts with `prefix`, when it is
/// valid UTF-8 (it is for ASCII delimiters; otherwise the caller steps key by key).
fn successor(prefix: &str) -> Option<String> {
    let mut bytes = prefix.as_bytes().to_vec();
    while let Some(last) = bytes.pop() {
        if last < 0xff {
            bytes.push(last + 1);
            return String::from_utf8(bytes).ok();
        }
    }
    None
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

/// Lists versions and delete markers in key order, newest first within a key, rolling keys
/// up to common prefixes as [`list_objects`] does.
///
/// # Errors
/// SQLite errors.
pub fn list_versions(conn: &Connection, query: &VersionQuery) -> Result<VersionPage> {
    let mut page = VersionPage::default();
    if query.max_keys == 0 {
        return Ok(page);
    }
    let marker = query.key_marker.as_deref().filter(|m| !m.is_empty());
    // A version-id marker resumes inside its key, below that version's sequence.
    let mut resume_below = match (marker, query.version_id_marker.as_deref().filter(|v| !v.is_empty())) {
        (Some(key), Some(id)) => version(conn, &query.bucket, key, id)?.map(|v| (key.to_owned(), v.sequence)),
        _ => None,
    };
    let mut cursor = match (&resume_below, marker) {
        (Some((key, _)), _) => Bound::AtLeast(key.clone()),
        (None, Some(after)) if after >= query.prefix.as_str() => Bound::After(after.to_owned()),
        _ => Bound::AtLeast(query.prefix.clone()),
    };
    let mut next_key = conn.prepare_cached(
        "SELECT key FROM object_versions WHERE bucket = ?1 AND key >= ?2 AND (?3 = 0 OR key > ?2)
         ORDER BY key LIMIT 1",
    )?;
    let mut versions_below = conn.prepare_cached(&format!(
        "SELECT {VERSION_COLUMNS} FROM object_versions WHERE bucket = ?1 AND key = ?2 AND seq < ?3 ORDER BY seq DESC"
    ))?;
    'keys: loop {
        let (bound, exclusive) = match &cursor {
            Bound::After(key) => (key.as_str(), true),
            Bound::AtLeast(key) => (key.as_str(), false),
        };
        let Some(key) =
            next_key.query_row(params![query.bucket, bound, exclusive], |row| row.get::<_, String>(0)).optional()?
        else {
            break;
        };
        if !key.starts_with(&query.prefix) {
            break;
        }
        let rolled_up = query.delimiter.as_deref().filter(|d| !d.is_empty()).and_then(|delimiter| {
            let rest = &key[query.prefix.len()..];
            rest.find(delimiter).map(|at| key[..query.prefix.len() + at + delimiter.len()].to_owned())
        });
        if let Some(common_prefix) = rolled_up {
            cursor = match successor(&common_prefix) {
                Some(next) => Bound::AtLeast(next),
                None => Bound::After(key.clone()),
            };
            let after_marker = marker.is_none_or(|m| common_prefix.as_str() > m);
            if page.common_prefixes.last() != Some(&common_prefix) && after_marker {
                if page.versions.len() + page.common_prefixes.len() == query.max_keys {
                    page.is_truncated = true;
                    break;
                }
                page.next_key_marker = Some(common_prefix.clone());
                page.next_version_id_marker = None;
                page.common_prefixes.push(common_prefix);
            }
            continue;
        }
        let below = match resume_below.take() {
            Some((resume_key, sequence)) if resume_key == key => i64::try_from(sequence).unwrap_or(i64::MAX),
            _ => i64::MAX,
        };
        let versions = versions_below
            .query_map(params![query.bucket, key, below], version_from_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        for version in versions {
            if page.versions.len() + page.common_prefixes.len() == query.max_keys {
                page.is_truncated = true;
                break 'keys;
            }
            page.next_key_marker = Some(version.key.clone());
            page.next_version_id_marker = Some(version.version_id.clone());
            page.versions.push(version);
        }
        cursor = Bound::After(key);
    }
    if !page.is_truncated {
        page.next_key_marker = None;
        page.next_version_id_marker = None;
    }
    Ok(page)
}

/// The upload with this id.
///
/// # Errors
/// SQLite errors.
pub fn upload(conn: &Connection, upload_id: &str) -> Result<Option<Upload>> {
    Ok(conn
        .prepare_cached("SELECT template, created_at, initiator FROM multipart_uploads WHERE upload_id = ?1")?
        .query_row([upload_id], upload_from_row)
        .optional()?)
}

fn upload_from_row(row: &Row<'_>) -> rusqlite::Result<Upload> {
    let template: String = row.get(0)?;
    Ok(Upload { created: parse_json(0, &template)?, created_at: row.get(1)?, initiator: row.get(2)? })
}

/// Uploads in progress in a bucket, by key then creation, after the markers.
///
/// # Errors
/// SQLite errors.
pub fn uploads(
    conn: &Connection,
    bucket: &str,
    prefix: &str,
    key_marker: Option<&str>,
    upload_id_marker: Option<&str>,
    limit: usize,
) -> Result<Vec<Upload>> {
    let mut statement = conn.prepare_cached(
        "SELECT template, created_at, initiator FROM multipart_uploads
         WHERE bucket = ?1 AND substr(key, 1, length(?2)) = ?2
           AND (?3 IS NULL OR key > ?3 OR (key = ?3 AND ?4 IS NOT NULL AND upload_id > ?4))
         ORDER BY key, created_seq LIMIT ?5",
    )?;
    let uploads = statement
        .query_map(
            params![bucket, prefix, key_marker, upload_id_marker, i64::try_from(limit).unwrap_or(i64::MAX)],
            upload_from_row,
        )?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(uploads)
}

/// The blob store's own uploads behind every upload in progress: `gc` aborts the store's
/// uploads that none of these name, and `verify` does not expect their blobs to exist yet.
///
/// # Errors
/// SQLite errors.
pub fn store_uploads(conn: &Connection) -> Result<Vec<crate::event::v1::StoreUpload>> {
    let mut statement = conn.prepare_cached("SELECT template, created_at, initiator FROM multipart_uploads")?;
    let uploads = statement.query_map([], upload_from_row)?.collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(uploads.into_iter().filter_map(|u| u.created.store_upload).collect())
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

/// Parts of an upload with a number above `after`, in order.
///
/// # Errors
/// SQLite errors.
pub fn parts(conn: &Connection, upload_id: &str, after: u32, limit: usize) -> Result<Vec<Part>> {
    let mut statement = conn.prepare_cached(
        "SELECT part_number, created_at, part FROM multipart_parts
         WHERE upload_id = ?1 AND part_number > ?2 ORDER BY part_number LIMIT ?3",
    )?;
    let parts = statement
        .query_map(params![upload_id, after, i64::try_from(limit).unwrap_or(i64::MAX)], |row| {
            let part: String = row.get(2)?;
            Ok(Part { number: row.get(0)?, created_at: row.get(1)?, part: parse_json(2, &part)? })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(parts)
}

/// Calls `each` with the BLAKE3 (hex) of every version larger than `min_size` bytes, in no
/// particular order and possibly more than once: one pass over the versions, for the
/// collection of data kept per object content (outboards).
///
/// # Errors
/// SQLite errors, and those `each` returns.
pub fn each_version_digest(conn: &Connection, min_size: u64, mut each: impl FnMut(&str) -> Result<()>) -> Result<()> {
    let mut statement = conn.prepare_cached("SELECT blake3 FROM object_versions WHERE size > ?1")?;
    let mut rows = statement.query([i64::try_from(min_size).unwrap_or(i64::MAX)])?;
    while let Some(row) = rows.next()? {
        let digest: String = row.get(0)?;
        each(&digest)?;
    }
    Ok(())
}

/// Calls `each` with the subtree chaining value (hex) of every part of an open upload that
/// records one: the parts whose kept data (their groups' digests) must stay until completion.
///
/// # Errors
/// SQLite errors, and those `each` returns.
pub fn each_open_part_subtree(conn: &Connection, mut each: impl FnMut(&str) -> Result<()>) -> Result<()> {
    let mut statement = conn.prepare_cached("SELECT part FROM multipart_parts")?;
    let mut rows = statement.query([])?;
    while let Some(row) = rows.next()? {
        let part: String = row.get(0)?;
        let part: BlobPart = parse_json(0, &part)?;
        if let Some(subtree) = &part.subtree {
            each(subtree)?;
        }
    }
    Ok(())
}

/// How many versions and parts reference a blob (0: garbage, unless an upload is in flight).
///
/// # Errors
/// SQLite errors.
pub fn blob_refs(conn: &Connection, blob: &str) -> Result<u64> {
    Ok(conn
        .prepare_cached("SELECT refs FROM blob_refs WHERE blob = ?1")?
        .query_row([blob], |row| row.get(0))
        .optional()?
        .unwrap_or(0))
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
}

/// Every version of a key, newest first, each with the event that created it. Needs a
/// connection that sees both the log and the views (a reader's).
///
/// # Errors
/// SQLite errors.
pub fn key_provenance(conn: &Connection, bucket: &str, key: &str) -> Result<Vec<VersionProvenance>> {
    let mut event = conn.prepare_cached(
        "SELECT hash, event_type, access_key, request_id, source_addr, user_agent FROM events WHERE seq = ?1",
    )?;
    let mut provenance = Vec::new();
    for version in versions_of_key(conn, bucket, key)? {
        let recorded = event.query_row([version.sequence], |row| {
            Ok(RecordingEvent {
                sequence: version.sequence,
                hash: row.get(0)?,
                event_type: row.get(1)?,
                context: crate::event::RequestContext {
                    access_key: row.get(2)?,
                    request_id: row.get(3)?,
                    source_addr: row.get(4)?,
                    user_agent: row.get(5)?,
                },
            })
        })?;
        provenance.push(VersionProvenance { version, event: recorded });
    }
    Ok(provenance)
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

/// Up to `limit` retrieval records matching `filter`, in sequence order. Needs a connection
/// that sees both the log and the views (a reader's).
///
/// # Errors
/// SQLite errors.
pub fn retrievals(conn: &Connection, filter: &RetrievalFilter, limit: usize) -> Result<Vec<RetrievalRecord>> {
    // Only the conditions given go into the query: `(?2 IS NULL OR r.bucket = ?2)` would keep
    // SQLite on the primary key, scanning every later record to answer "who read this key"
    // instead of seeking `retrievals_by_object`. The fragments are fixed; values are bound.
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut conditions = vec!["r.seq > ?"];
    let mut values: Vec<&dyn rusqlite::ToSql> = vec![&filter.after];
    let optional: [(&str, Option<&dyn rusqlite::ToSql>); 5] = [
        ("r.bucket = ?", filter.bucket.as_ref().map(|v| v as &dyn rusqlite::ToSql)),
        ("r.key = ?", filter.key.as_ref().map(|v| v as &dyn rusqlite::ToSql)),
        ("r.actor = ?", filter.actor.as_ref().map(|v| v as &dyn rusqlite::ToSql)),
        ("r.created_at >= ?", filter.from_ms.as_ref().map(|v| v as &dyn rusqlite::ToSql)),
        ("r.created_at < ?", filter.to_ms.as_ref().map(|v| v as &dyn rusqlite::ToSql)),
    ];
    for (condition, value) in optional {
        if let Some(value) = value {
            conditions.push(condition);
            values.push(value);
        }
    }
    values.push(&limit);
    let mut statement = conn.prepare_cached(&format!(
        "SELECT r.seq, e.hash, r.created_at, r.bucket, r.key, r.version_id, r.method, r.bytes, r.actor,
                e.access_key, r.request_id, r.source_addr, r.user_agent, e.payload
         FROM retrievals r JOIN events e ON e.seq = r.seq
         WHERE {}
         ORDER BY r.seq LIMIT ?",
        conditions.join(" AND ")
    ))?;
    let records = statement
        .query_map(values.as_slice(), |row| {
            let payload: Vec<u8> = row.get(13)?;
            let range = serde_json::from_slice::<crate::event::v1::Retrieved>(&payload).ok().and_then(|r| r.range);
            Ok(RetrievalRecord {
                sequence: row.get(0)?,
                hash: row.get(1)?,
                created_at: row.get(2)?,
                bucket: row.get(3)?,
                key: row.get(4)?,
                version_id: row.get(5)?,
                method: row.get(6)?,
                bytes: row.get(7)?,
                range,
                actor: row.get(8)?,
                context: crate::event::RequestContext {
                    access_key: row.get(9)?,
                    request_id: row.get(10)?,
                    source_addr: row.get(11)?,
                    user_agent: row.get(12)?,
                },
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(records)
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

/// Up to `limit` events after `cursor` that pass `filter`, looking at no more than `budget`
/// events, so a filter that matches rarely cannot make one call read the whole log.
///
/// # Errors
/// SQLite errors.
pub fn events_matching(
    conn: &Connection,
    filter: &EventFilter,
    cursor: u64,
    limit: usize,
    budget: usize,
) -> Result<EventPage> {
    const PAGE: usize = 1000;
    let mut page = EventPage { events: Vec::new(), scanned_to: cursor };
    let mut looked = 0;
    while page.events.len() < limit && looked < budget {
        let batch = crate::log::fetch_since(conn, page.scanned_to, PAGE.min(budget - looked))?;
        let Some(last) = batch.last() else { break };
        let last = last.sequence;
        looked += batch.len();
        for event in batch {
            if page.events.len() == limit {
                break;
            }
            page.scanned_to = event.sequence;
            if filter.matches(&event) {
                page.events.push(event);
            }
        }
        if page.events.len() == limit {
            break;
        }
        page.scanned_to = last;
    }
    Ok(page)
}

/// The event at `sequence`, if the log has it.
///
/// # Errors
/// SQLite errors.
pub fn event(conn: &Connection, sequence: u64) -> Result<Option<crate::event::Event>> {
    let Some(before) = sequence.checked_sub(1) else { return Ok(None) };
    Ok(crate::log::fetch_since(conn, before, 1)?.into_iter().next().filter(|e| e.sequence == sequence))
}
