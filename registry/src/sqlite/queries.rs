//! The SQLite engine's answers to [`Reads`]: each read is SQL over the views (and, for
//! those that name events, the log), on whichever connection asks: a reader's for the
//! gateway, the writer's inside a command.

use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::acl::{ObjectAcl, Ownership};
use crate::error::Result;
use crate::event::v1::{AclEntry, BlobPart, CorsRule, ObjectContent, PackageFinalized, VersioningStatus};
use crate::inline_blob::digest_of;
use crate::packages::{Member, Package};
use crate::queries::{
    BucketUsage, EventFilter, EventPage, ListPage, ListQuery, MAX_RETRIEVAL_DAYS, MAX_SUBJECT_COUNT, Part, Reads,
    RecordingEvent, RetrievalDay, RetrievalFilter, RetrievalRecord, Signer, VersionPage, VersionProvenance,
    VersionQuery,
};
use crate::state::{AccessKey, Account, AccountUser, Bucket, ObjectVersion, PublicAccessBlock, Upload};
use crate::views::stored_retention;

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
        retention: stored_retention(mode.as_deref(), until),
        legal_hold: row.get(12)?,
    })
}

fn parse_json<T: serde::de::DeserializeOwned>(column: usize, text: &str) -> rusqlite::Result<T> {
    serde_json::from_str(text)
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(column, rusqlite::types::Type::Text, Box::new(e)))
}

/// The bucket called `name`.
///
/// # Errors
/// SQLite errors.
fn bucket(conn: &Connection, name: &str) -> Result<Option<Bucket>> {
    Ok(conn
        .prepare_cached(
            "SELECT name, created_at, region, owner, versioning, object_lock_enabled, default_retention, lifecycle,
                    created_seq, encryption.rule
             FROM buckets LEFT JOIN bucket_encryption AS encryption ON encryption.bucket = buckets.name
             WHERE name = ?1",
        )?
        .query_row([name], bucket_from_row)
        .optional()?)
}

/// Every bucket, by name.
///
/// # Errors
/// SQLite errors.
fn buckets(conn: &Connection) -> Result<Vec<Bucket>> {
    let mut statement = conn.prepare_cached(
        "SELECT name, created_at, region, owner, versioning, object_lock_enabled, default_retention, lifecycle,
                created_seq, encryption.rule
         FROM buckets LEFT JOIN bucket_encryption AS encryption ON encryption.bucket = buckets.name
         ORDER BY name",
    )?;
    let buckets = statement.query_map([], bucket_from_row)?.collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(buckets)
}

fn bucket_from_row(row: &Row<'_>) -> rusqlite::Result<Bucket> {
    let versioning: Option<String> = row.get(4)?;
    let default_retention: Option<String> = row.get(6)?;
    let lifecycle: Option<String> = row.get(7)?;
    let encryption: Option<String> = row.get(9)?;
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
        created_seq: row.get(8)?,
        default_encryption: encryption.map(|t| parse_json(9, &t)).transpose()?,
    })
}

/// Whether the bucket holds no version, no delete marker and no upload in progress.
///
/// # Errors
/// SQLite errors.
fn bucket_is_empty(conn: &Connection, bucket: &str) -> Result<bool> {
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
fn latest_version(conn: &Connection, bucket: &str, key: &str) -> Result<Option<ObjectVersion>> {
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
fn version(conn: &Connection, bucket: &str, key: &str, version_id: &str) -> Result<Option<ObjectVersion>> {
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
fn versions_of_key(conn: &Connection, bucket: &str, key: &str) -> Result<Vec<ObjectVersion>> {
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
fn versions_on_legal_hold(conn: &Connection) -> Result<Vec<ObjectVersion>> {
    let mut statement =
        conn.prepare_cached(&format!("SELECT {VERSION_COLUMNS} FROM object_versions WHERE legal_hold = 1"))?;
    let versions = statement.query_map([], version_from_row)?.collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(versions)
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

/// The sequences of every event about a subject (`bucket` or `bucket/key`), in order.
///
/// # Errors
/// SQLite errors.
fn subject_sequences(conn: &Connection, subject_id: &str) -> Result<Vec<u64>> {
    let mut statement = conn.prepare_cached("SELECT seq FROM event_subjects WHERE subject_id = ?1 ORDER BY seq")?;
    let sequences = statement.query_map([subject_id], |row| row.get(0))?.collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(sequences)
}

/// Lists current (non-delete-marker) versions in key order, rolling keys up to common
/// prefixes. Keys under a common prefix are skipped with one index seek each, so a listing
/// with a delimiter costs what it returns, not what the bucket holds.
///
/// # Errors
/// SQLite errors.
fn list_objects(conn: &Connection, query: &ListQuery) -> Result<ListPage> {
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

/// The smallest string greater than every string that starts with `prefix`: its last
/// character replaced by the next one (keys compare as bytes, and UTF-8 orders as code points,
/// so no key lies between); `None` when every character is the last there is.
fn successor(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        // The next scalar value, past the surrogates, which no string holds.
        let next = (u32::from(last) + 1..=u32::from(char::MAX)).find_map(char::from_u32);
        if let Some(next) = next {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

/// Lists versions and delete markers in key order, newest first within a key, rolling keys
/// up to common prefixes as `list_objects` does.
///
/// # Errors
/// SQLite errors.
fn list_versions(conn: &Connection, query: &VersionQuery) -> Result<VersionPage> {
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
fn upload(conn: &Connection, upload_id: &str) -> Result<Option<Upload>> {
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
fn uploads(
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
fn store_uploads(conn: &Connection) -> Result<Vec<crate::event::v1::StoreUpload>> {
    let mut statement = conn.prepare_cached("SELECT template, created_at, initiator FROM multipart_uploads")?;
    let uploads = statement.query_map([], upload_from_row)?.collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(uploads.into_iter().filter_map(|u| u.created.store_upload).collect())
}

/// Parts of an upload with a number above `after`, in order.
///
/// # Errors
/// SQLite errors.
fn parts(conn: &Connection, upload_id: &str, after: u32, limit: usize) -> Result<Vec<Part>> {
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
fn each_version_digest(conn: &Connection, min_size: u64, each: &mut dyn FnMut(&str) -> Result<()>) -> Result<()> {
    let mut statement = conn.prepare_cached("SELECT blake3 FROM object_versions WHERE size > ?1")?;
    let mut rows = statement.query([i64::try_from(min_size).unwrap_or(i64::MAX)])?;
    while let Some(row) = rows.next()? {
        let digest: String = row.get(0)?;
        each(&digest)?;
    }
    Ok(())
}

/// Calls `each` with the recorded subtree chaining values (hex: [`BlobPart::subtrees`], or the
/// legacy [`BlobPart::subtree`]) of every part of an open upload that records them: the parts
/// whose kept data (their leaves' digests) must stay until completion.
///
/// # Errors
/// SQLite errors, and those `each` returns.
fn each_open_part_subtree(conn: &Connection, each: &mut dyn FnMut(&str) -> Result<()>) -> Result<()> {
    let mut statement = conn.prepare_cached("SELECT part FROM multipart_parts")?;
    let mut rows = statement.query([])?;
    while let Some(row) = rows.next()? {
        let part: String = row.get(0)?;
        let part: BlobPart = parse_json(0, &part)?;
        if let Some(values) = part.recorded_subtrees() {
            each(values)?;
        }
    }
    Ok(())
}

/// How many versions and parts reference a blob (0: garbage, unless an upload is in flight).
///
/// # Errors
/// SQLite errors.
fn blob_refs(conn: &Connection, blob: &str) -> Result<u64> {
    Ok(conn
        .prepare_cached("SELECT refs FROM blob_refs WHERE blob = ?1")?
        .query_row([blob], |row| row.get(0))
        .optional()?
        .unwrap_or(0))
}

/// Up to `limit` versions of a key created before `before`, newest first, each with the event
/// that created it. Needs a connection that sees both the log and the views (a reader's).
/// The page's sequences are chosen from the key's index entries alone, which carry the
/// sequence (the rowid), and only the page's rows are then read: ordering the rows themselves
/// would read every version of the key (about a kilobyte each) for every page.
///
/// # Errors
/// SQLite errors.
fn key_provenance(
    conn: &Connection,
    bucket: &str,
    key: &str,
    before: u64,
    limit: usize,
) -> Result<Vec<VersionProvenance>> {
    let mut versions = conn.prepare_cached(&key_page_sql())?;
    let before = i64::try_from(before).unwrap_or(i64::MAX);
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let versions = versions
        .query_map(params![bucket, key, before, limit], version_from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut event = conn.prepare_cached(
        "SELECT hash, event_type, access_key, request_id, source_addr, user_agent FROM events WHERE seq = ?1",
    )?;
    let mut provenance = Vec::with_capacity(versions.len());
    for version in versions {
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
        let signer = match &recorded.context.access_key {
            Some(access_key) => signer(conn, access_key)?,
            None => None,
        };
        provenance.push(VersionProvenance { version, event: recorded, signer });
    }
    Ok(provenance)
}

/// [`key_provenance`]'s page of versions: `?1` bucket, `?2` key, `?3` before, `?4` limit.
fn key_page_sql() -> String {
    format!(
        "SELECT {VERSION_COLUMNS} FROM object_versions WHERE seq IN (
             SELECT seq FROM object_versions WHERE bucket = ?1 AND key = ?2 AND seq < ?3 ORDER BY seq DESC LIMIT ?4
         ) ORDER BY seq DESC"
    )
}

/// The user holding `access_key`, deleted keys included.
fn signer(conn: &Connection, access_key: &str) -> Result<Option<Signer>> {
    Ok(conn
        .prepare_cached(
            "SELECT k.account, a.id, k.user FROM access_keys k JOIN accounts a ON a.name = k.account
             WHERE k.access_key = ?1",
        )?
        .query_row([access_key], |row| Ok(Signer { account: row.get(0)?, account_id: row.get(1)?, user: row.get(2)? }))
        .optional()?)
}

/// Up to `limit` retrieval records matching `filter`, in sequence order. Needs a connection
/// that sees both the log and the views (a reader's).
///
/// # Errors
/// SQLite errors.
fn retrievals(conn: &Connection, filter: &RetrievalFilter, limit: usize) -> Result<Vec<RetrievalRecord>> {
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
    let mut statement = conn.prepare_cached(&retrievals_sql(&conditions))?;
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

/// One pass over the bucket's version rows (`object_versions_by_id` gives them).
fn bucket_usage(conn: &Connection, bucket: &str) -> Result<BucketUsage> {
    let mut statement = conn.prepare_cached(
        "SELECT coalesce(sum(is_latest AND NOT is_delete_marker), 0),
                coalesce(sum(CASE WHEN is_latest AND NOT is_delete_marker THEN size ELSE 0 END), 0),
                count(*)
         FROM object_versions WHERE bucket = ?1",
    )?;
    Ok(statement.query_row([bucket], |row| {
        Ok(BucketUsage { objects: row.get(0)?, bytes: row.get(1)?, versions: row.get(2)? })
    })?)
}

/// The key's records through `retrievals_by_object`, grouped in SQL, the newest pairs first
/// and then put back in order.
fn retrieval_days(conn: &Connection, bucket: &str, key: &str, after: u64) -> Result<Vec<RetrievalDay>> {
    let mut statement = conn.prepare_cached(
        "SELECT created_at / 86400000 * 86400000 AS day, actor, count(*)
         FROM retrievals WHERE bucket = ?1 AND key = ?2 AND seq > ?3
         GROUP BY day, actor ORDER BY day DESC, actor DESC LIMIT ?4",
    )?;
    let limit = i64::try_from(MAX_RETRIEVAL_DAYS).unwrap_or(i64::MAX);
    let mut days = statement
        .query_map(params![bucket, key, after, limit], |row| {
            Ok(RetrievalDay { day_ms: row.get(0)?, actor: row.get(1)?, reads: row.get(2)? })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    days.reverse();
    Ok(days)
}

/// The subject's rows of `event_subjects` (its primary key), from the newest, and their count.
fn recent_subject_sequences(conn: &Connection, subject_id: &str, after: u64, limit: usize) -> Result<(Vec<u64>, u64)> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut newest = conn.prepare_cached(
        "SELECT seq FROM event_subjects WHERE subject_id = ?1 AND seq > ?2 ORDER BY seq DESC LIMIT ?3",
    )?;
    let sequences =
        newest.query_map(params![subject_id, after, limit], |row| row.get(0))?.collect::<rusqlite::Result<Vec<_>>>()?;
    let mut count = conn.prepare_cached(
        "SELECT count(*) FROM (SELECT 1 FROM event_subjects WHERE subject_id = ?1 AND seq > ?2 LIMIT ?3)",
    )?;
    let total = count.query_row(params![subject_id, after, MAX_SUBJECT_COUNT], |row| row.get(0))?;
    Ok((sequences, total))
}

/// The query of [`retrievals`] under `conditions` (fixed fragments with `?` for their values).
fn retrievals_sql(conditions: &[&str]) -> String {
    format!(
        "SELECT r.seq, e.hash, r.created_at, r.bucket, r.key, r.version_id, r.method, r.bytes, r.actor,
                e.access_key, r.request_id, r.source_addr, r.user_agent, e.payload
         FROM retrievals r JOIN events e ON e.seq = r.seq
         WHERE {}
         ORDER BY r.seq LIMIT ?",
        conditions.join(" AND ")
    )
}

/// Up to `limit` events after `cursor` that pass `filter`, looking at no more than `budget`
/// events, so a filter that matches rarely cannot make one call read the whole log.
///
/// # Errors
/// SQLite errors.
fn events_matching(
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
fn event(conn: &Connection, sequence: u64) -> Result<Option<crate::event::Event>> {
    let Some(before) = sequence.checked_sub(1) else { return Ok(None) };
    Ok(crate::log::fetch_since(conn, before, 1)?.into_iter().next().filter(|e| e.sequence == sequence))
}

const PACKAGE_COLUMNS: &str = "name, bucket, prefix, manifest_key, manifest_version_id, manifest_blake3, members,
    bytes, sealed_seq, sealed_at, actor";

fn package_from_row(row: &Row<'_>) -> rusqlite::Result<Package> {
    Ok(Package {
        sealed: PackageFinalized {
            name: row.get(0)?,
            bucket: row.get(1)?,
            prefix: row.get(2)?,
            manifest_key: row.get(3)?,
            manifest_version_id: row.get(4)?,
            manifest_blake3: row.get(5)?,
            members: row.get(6)?,
            bytes: row.get(7)?,
        },
        sealed_seq: row.get(8)?,
        sealed_at: row.get(9)?,
        actor: row.get(10)?,
    })
}

/// Every package, by name.
///
/// # Errors
/// SQLite errors.
fn packages(conn: &Connection) -> Result<Vec<Package>> {
    let mut statement = conn.prepare_cached(&format!("SELECT {PACKAGE_COLUMNS} FROM packages ORDER BY name"))?;
    let packages = statement.query_map([], package_from_row)?.collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(packages)
}

/// The package called `name`.
///
/// # Errors
/// SQLite errors.
fn package(conn: &Connection, name: &str) -> Result<Option<Package>> {
    Ok(conn
        .prepare_cached(&format!("SELECT {PACKAGE_COLUMNS} FROM packages WHERE name = ?1"))?
        .query_row([name], package_from_row)
        .optional()?)
}

/// The package that seals exactly `prefix` of `bucket`.
///
/// # Errors
/// SQLite errors.
fn package_of_prefix(conn: &Connection, bucket: &str, prefix: &str) -> Result<Option<Package>> {
    Ok(conn
        .prepare_cached(&format!("SELECT {PACKAGE_COLUMNS} FROM packages WHERE bucket = ?1 AND prefix = ?2"))?
        .query_row([bucket, prefix], package_from_row)
        .optional()?)
}

/// The name of a package whose prefix covers `key`, if any.
///
/// # Errors
/// SQLite errors.
fn sealing(conn: &Connection, bucket: &str, key: &str) -> Result<Option<String>> {
    Ok(conn
        .prepare_cached(
            "SELECT name FROM packages WHERE bucket = ?1 AND substr(?2, 1, length(prefix)) = prefix
             ORDER BY prefix LIMIT 1",
        )?
        .query_row([bucket, key], |row| row.get(0))
        .optional()?)
}

/// The current versions of every key under `prefix`, by key, as manifest members.
fn members_under(conn: &Connection, bucket: &str, prefix: &str) -> Result<Vec<Member>> {
    let mut statement = conn.prepare_cached(
        "SELECT key, version_id, blake3, size, etag FROM object_versions
         WHERE bucket = ?1 AND is_latest = 1 AND is_delete_marker = 0
           AND key >= ?2 AND substr(key, 1, length(?2)) = ?2
         ORDER BY key",
    )?;
    let members = statement
        .query_map(params![bucket, prefix], |row| {
            Ok(Member {
                key: row.get(0)?,
                version_id: row.get(1)?,
                blake3: row.get(2)?,
                size: row.get(3)?,
                etag: row.get(4)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(members)
}

/// The bytes an inline locator names, from the log's `inline_blobs` (the log is `main` on
/// every connection that reads).
fn inline_bytes(conn: &Connection, locator: &str) -> Result<Option<Vec<u8>>> {
    let Some(digest) = digest_of(locator) else {
        return Ok(None);
    };
    Ok(conn
        .prepare_cached("SELECT bytes FROM main.inline_blobs WHERE digest = ?1")?
        .query_row([&digest[..]], |row| row.get(0))
        .optional()?)
}

impl Reads for Connection {
    fn bucket(&self, name: &str) -> Result<Option<Bucket>> {
        bucket(self, name)
    }

    fn bucket_ownership(&self, bucket: &str) -> Result<Ownership> {
        let row: Option<Option<String>> = self
            .prepare_cached("SELECT ownership FROM bucket_ownership WHERE bucket = ?1")?
            .query_row([bucket], |row| row.get(0))
            .optional()?;
        Ok(match row {
            None => Ownership::default(),
            Some(None) => Ownership::Unset,
            Some(Some(name)) => Ownership::parse(&name).unwrap_or_default(),
        })
    }

    fn bucket_acl(&self, bucket: &str) -> Result<Vec<AclEntry>> {
        Ok(self
            .prepare_cached("SELECT grants FROM bucket_acls WHERE bucket = ?1")?
            .query_row([bucket], |row| parse_json(0, &row.get::<_, String>(0)?))
            .optional()?
            .unwrap_or_default())
    }

    fn object_acl(&self, bucket: &str, key: &str, version_id: &str) -> Result<ObjectAcl> {
        Ok(self
            .prepare_cached(
                "SELECT a.grants, a.owner FROM object_acls a JOIN object_versions v ON a.version_seq = v.seq
                 WHERE v.bucket = ?1 AND v.key = ?2 AND v.version_id = ?3",
            )?
            .query_row([bucket, key, version_id], |row| {
                Ok(ObjectAcl { grants: parse_json(0, &row.get::<_, String>(0)?)?, owner: row.get(1)? })
            })
            .optional()?
            .unwrap_or_default())
    }

    fn bucket_cors(&self, bucket: &str) -> Result<Option<Vec<CorsRule>>> {
        Ok(self
            .prepare_cached("SELECT rules FROM bucket_cors WHERE bucket = ?1")?
            .query_row([bucket], |row| parse_json(0, &row.get::<_, String>(0)?))
            .optional()?)
    }

    fn bucket_tags(&self, bucket: &str) -> Result<Option<crate::event::v1::StringMap>> {
        Ok(self
            .prepare_cached("SELECT tags FROM bucket_tags WHERE bucket = ?1")?
            .query_row([bucket], |row| parse_json(0, &row.get::<_, String>(0)?))
            .optional()?)
    }

    fn bucket_encryption(&self, bucket: &str) -> Result<Option<crate::event::v1::EncryptionRule>> {
        Ok(self
            .prepare_cached("SELECT rule FROM bucket_encryption WHERE bucket = ?1")?
            .query_row([bucket], |row| parse_json(0, &row.get::<_, String>(0)?))
            .optional()?)
    }

    fn master_key(&self) -> Result<Option<String>> {
        Ok(self
            .prepare_cached("SELECT key_id FROM master_key WHERE id = 1")?
            .query_row([], |row| row.get(0))
            .optional()?)
    }

    fn holds_gateway_wrapped_keys(&self) -> Result<bool> {
        Ok(self
            .prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM object_versions
                                WHERE json_extract(content, '$.encryption') IN ('AES256', 'aws:kms'))
                     OR EXISTS (SELECT 1 FROM multipart_uploads
                                WHERE json_extract(template, '$.template.encryption') IN ('AES256', 'aws:kms'))",
            )?
            .query_row([], |row| row.get(0))?)
    }

    fn public_access_block(&self, bucket: &str) -> Result<Option<PublicAccessBlock>> {
        Ok(self
            .prepare_cached(
                "SELECT block_public_acls, ignore_public_acls, block_public_policy, restrict_public_buckets
                 FROM bucket_public_access_blocks WHERE bucket = ?1",
            )?
            .query_row([bucket], |row| {
                Ok(PublicAccessBlock {
                    block_public_acls: row.get(0)?,
                    ignore_public_acls: row.get(1)?,
                    block_public_policy: row.get(2)?,
                    restrict_public_buckets: row.get(3)?,
                })
            })
            .optional()?)
    }

    fn account(&self, name: &str) -> Result<Option<Account>> {
        Ok(self
            .prepare_cached("SELECT name, id, email, created_at FROM accounts WHERE name = ?1")?
            .query_row([name], account_row)
            .optional()?)
    }

    fn account_by_email(&self, email: &str) -> Result<Option<Account>> {
        Ok(self
            .prepare_cached("SELECT name, id, email, created_at FROM accounts WHERE email = ?1")?
            .query_row([email.to_lowercase()], account_row)
            .optional()?)
    }

    fn accounts(&self) -> Result<Vec<Account>> {
        Ok(self
            .prepare_cached("SELECT name, id, email, created_at FROM accounts ORDER BY name")?
            .query_map([], account_row)?
            .collect::<rusqlite::Result<_>>()?)
    }

    fn user(&self, account: &str, name: &str) -> Result<Option<AccountUser>> {
        Ok(self
            .prepare_cached("SELECT account, name, created_at FROM users WHERE account = ?1 AND name = ?2")?
            .query_row([account, name], user_row)
            .optional()?)
    }

    fn user_named_alike(&self, account: &str, name: &str) -> Result<Option<AccountUser>> {
        // Names are ASCII (`check_name`), which NOCASE folds.
        Ok(self
            .prepare_cached(
                "SELECT account, name, created_at FROM users WHERE account = ?1 AND name = ?2 COLLATE NOCASE LIMIT 1",
            )?
            .query_row([account, name], user_row)
            .optional()?)
    }

    fn users(&self, account: &str) -> Result<Vec<AccountUser>> {
        Ok(self
            .prepare_cached("SELECT account, name, created_at FROM users WHERE account = ?1 ORDER BY name")?
            .query_map([account], user_row)?
            .collect::<rusqlite::Result<_>>()?)
    }

    fn access_key(&self, access_key: &str) -> Result<Option<AccessKey>> {
        Ok(self
            .prepare_cached(&format!("SELECT {ACCESS_KEY_COLUMNS} FROM access_keys WHERE access_key = ?1"))?
            .query_row([access_key], access_key_row)
            .optional()?)
    }

    fn access_keys(&self, account: &str, user: &str) -> Result<Vec<AccessKey>> {
        Ok(self
            .prepare_cached(&format!(
                "SELECT {ACCESS_KEY_COLUMNS} FROM access_keys
                 WHERE account = ?1 AND user = ?2 AND deleted_seq IS NULL ORDER BY created_seq"
            ))?
            .query_map([account, user], access_key_row)?
            .collect::<rusqlite::Result<_>>()?)
    }

    fn user_policies(&self, account: &str, user: &str) -> Result<Vec<(String, String)>> {
        Ok(self
            .prepare_cached("SELECT name, policy FROM user_policies WHERE account = ?1 AND user = ?2 ORDER BY name")?
            .query_map([account, user], |row| Ok((row.get(0)?, row.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?)
    }

    fn bucket_policy(&self, bucket: &str) -> Result<Option<String>> {
        Ok(self
            .prepare_cached("SELECT policy FROM bucket_policies WHERE bucket = ?1")?
            .query_row([bucket], |row| row.get(0))
            .optional()?)
    }

    fn buckets(&self) -> Result<Vec<Bucket>> {
        buckets(self)
    }

    fn bucket_is_empty(&self, bucket: &str) -> Result<bool> {
        bucket_is_empty(self, bucket)
    }

    fn latest_version(&self, bucket: &str, key: &str) -> Result<Option<ObjectVersion>> {
        latest_version(self, bucket, key)
    }

    fn version(&self, bucket: &str, key: &str, version_id: &str) -> Result<Option<ObjectVersion>> {
        version(self, bucket, key, version_id)
    }

    fn versions_of_key(&self, bucket: &str, key: &str) -> Result<Vec<ObjectVersion>> {
        versions_of_key(self, bucket, key)
    }

    fn versions_on_legal_hold(&self) -> Result<Vec<ObjectVersion>> {
        versions_on_legal_hold(self)
    }

    fn versions_page(&self, bucket: &str, after: &str, limit: usize) -> Result<(Vec<ObjectVersion>, Option<String>)> {
        versions_page(self, bucket, after, limit)
    }

    fn subject_sequences(&self, subject_id: &str) -> Result<Vec<u64>> {
        subject_sequences(self, subject_id)
    }

    fn list_objects(&self, query: &ListQuery) -> Result<ListPage> {
        list_objects(self, query)
    }

    fn list_versions(&self, query: &VersionQuery) -> Result<VersionPage> {
        list_versions(self, query)
    }

    fn upload(&self, upload_id: &str) -> Result<Option<Upload>> {
        upload(self, upload_id)
    }

    fn uploads(
        &self,
        bucket: &str,
        prefix: &str,
        key_marker: Option<&str>,
        upload_id_marker: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Upload>> {
        uploads(self, bucket, prefix, key_marker, upload_id_marker, limit)
    }

    fn store_uploads(&self) -> Result<Vec<crate::event::v1::StoreUpload>> {
        store_uploads(self)
    }

    fn parts(&self, upload_id: &str, after: u32, limit: usize) -> Result<Vec<Part>> {
        parts(self, upload_id, after, limit)
    }

    fn each_version_digest(&self, min_size: u64, each: &mut dyn FnMut(&str) -> Result<()>) -> Result<()> {
        each_version_digest(self, min_size, each)
    }

    fn each_open_part_subtree(&self, each: &mut dyn FnMut(&str) -> Result<()>) -> Result<()> {
        each_open_part_subtree(self, each)
    }

    fn blob_refs(&self, blob: &str) -> Result<u64> {
        blob_refs(self, blob)
    }

    fn key_provenance(&self, bucket: &str, key: &str, before: u64, limit: usize) -> Result<Vec<VersionProvenance>> {
        key_provenance(self, bucket, key, before, limit)
    }

    fn bucket_usage(&self, bucket: &str) -> Result<BucketUsage> {
        bucket_usage(self, bucket)
    }

    fn retrieval_days(&self, bucket: &str, key: &str, after: u64) -> Result<Vec<RetrievalDay>> {
        retrieval_days(self, bucket, key, after)
    }

    fn recent_subject_sequences(&self, subject_id: &str, after: u64, limit: usize) -> Result<(Vec<u64>, u64)> {
        recent_subject_sequences(self, subject_id, after, limit)
    }

    fn retrievals(&self, filter: &RetrievalFilter, limit: usize) -> Result<Vec<RetrievalRecord>> {
        retrievals(self, filter, limit)
    }

    fn events_matching(&self, filter: &EventFilter, cursor: u64, limit: usize, budget: usize) -> Result<EventPage> {
        events_matching(self, filter, cursor, limit, budget)
    }

    fn event(&self, sequence: u64) -> Result<Option<crate::event::Event>> {
        event(self, sequence)
    }

    fn inline_bytes(&self, locator: &str) -> Result<Option<Vec<u8>>> {
        inline_bytes(self, locator)
    }

    fn packages(&self) -> Result<Vec<Package>> {
        packages(self)
    }

    fn package(&self, name: &str) -> Result<Option<Package>> {
        package(self, name)
    }

    fn package_of_prefix(&self, bucket: &str, prefix: &str) -> Result<Option<Package>> {
        package_of_prefix(self, bucket, prefix)
    }

    fn sealing(&self, bucket: &str, key: &str) -> Result<Option<String>> {
        sealing(self, bucket, key)
    }

    fn members_under(&self, bucket: &str, prefix: &str) -> Result<Vec<Member>> {
        members_under(self, bucket, prefix)
    }
}

fn account_row(row: &Row<'_>) -> rusqlite::Result<Account> {
    Ok(Account { name: row.get(0)?, id: row.get(1)?, email: row.get(2)?, created_at: row.get(3)? })
}

fn user_row(row: &Row<'_>) -> rusqlite::Result<AccountUser> {
    Ok(AccountUser { account: row.get(0)?, name: row.get(1)?, created_at: row.get(2)? })
}

const ACCESS_KEY_COLUMNS: &str = "access_key, account, user, status, created_at, deleted_seq IS NOT NULL";

fn access_key_row(row: &Row<'_>) -> rusqlite::Result<AccessKey> {
    Ok(AccessKey {
        access_key: row.get(0)?,
        account: row.get(1)?,
        user: row.get(2)?,
        active: row.get::<_, String>(3)? == "Active",
        created_at: row.get(4)?,
        deleted: row.get(5)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by an attacker's pass: a delimiter whose last UTF-8 byte is 0xBF (`¿`, `ÿ`, many
    /// CJK characters) had no successor by bytes, so listings stepped key by key inside a
    /// common prefix and reported a page truncated where nothing followed.
    #[test]
    fn every_prefix_but_the_last_string_has_a_successor() {
        assert_eq!(successor("a/").as_deref(), Some("a0"));
        assert_eq!(successor("c¿").as_deref(), Some("cÀ"));
        assert_eq!(successor("xÿ").as_deref(), Some("xĀ"));
        assert_eq!(successor("k\u{d7ff}").as_deref(), Some("k\u{e000}"), "past the surrogates");
        assert_eq!(successor("k\u{10ffff}").as_deref(), Some("l"), "the last character carries");
        assert_eq!(successor("\u{10ffff}"), None);
        for prefix in ["c¿", "日本", "a\u{7f}", "é"] {
            let next = successor(prefix).unwrap();
            for longer in [prefix.to_owned(), format!("{prefix}\u{10ffff}"), format!("{prefix}zz")] {
                assert!(longer.as_bytes() < next.as_bytes(), "{longer:?} sorts before {next:?}");
            }
            assert!(prefix.as_bytes() < next.as_bytes());
        }
    }

    /// Found by a review: a page of a key's versions sorted the key's whole rows, reading every
    /// version for every page. It now picks its sequences from the index and reads its rows
    /// by primary key.
    #[test]
    fn a_page_of_a_keys_versions_reads_only_its_own_rows() {
        let dir = tempfile::tempdir().unwrap();
        let conn = crate::sqlite::open_offline(dir.path().join("registry.db")).unwrap();
        let plan: Vec<String> = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {}", key_page_sql()))
            .unwrap()
            .query_map(rusqlite::params!["b", "k", 100, 10], |row| row.get::<_, String>(3))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        let rows_read: Vec<&String> = plan.iter().filter(|step| step.starts_with("SEARCH object_versions")).collect();
        assert_eq!(rows_read.len(), 2, "{plan:?}");
        assert!(rows_read.iter().any(|step| step.contains("USING INTEGER PRIMARY KEY")), "{plan:?}");
        assert!(rows_read.iter().any(|step| step.contains("USING COVERING INDEX")), "{plan:?}");
    }

    /// A page of read records never sorts the records it filters: each filter the registry
    /// API takes (and every combination) is served in sequence order by an index, so a page
    /// costs its own size, not the number of records of a bucket or an actor.
    #[test]
    fn no_retrieval_filter_sorts_its_records() {
        let dir = tempfile::tempdir().unwrap();
        let conn = crate::sqlite::open_offline(dir.path().join("registry.db")).unwrap();
        let optional = ["r.bucket = ?", "r.key = ?", "r.actor = ?", "r.created_at >= ?", "r.created_at < ?"];
        for mask in 0..1u32 << optional.len() {
            let mut conditions = vec!["r.seq > ?"];
            conditions.extend(optional.iter().enumerate().filter(|(i, _)| mask & (1 << i) != 0).map(|(_, c)| *c));
            let sql = format!("EXPLAIN QUERY PLAN {}", retrievals_sql(&conditions));
            let plan: Vec<String> = conn
                .prepare(&sql)
                .unwrap()
                // Values do not change the plan on the registry's connections (QPSG).
                .query_map(rusqlite::params_from_iter(vec![rusqlite::types::Null; conditions.len() + 1]), |row| {
                    row.get::<_, String>(3)
                })
                .unwrap()
                .collect::<rusqlite::Result<_>>()
                .unwrap();
            assert!(!plan.iter().any(|step| step.contains("TEMP B-TREE")), "{conditions:?} sorts: {plan:?}");
        }
    }
}
