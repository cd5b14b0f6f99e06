//! The view writer: applies one event to the materialised tables.
//!
//! The direct path (a command appending an event) and [`crate::log::replay`] both call
//! [`apply`], so the views after either are the same rows. `apply` trusts the event: the
//! checks that decide whether an event may be appended run before it, in the commands.
//! Everything written here comes from the event itself (never the clock, never a random
//! number), which is what makes replay reproduce the views byte for byte.

use std::collections::HashMap;
use std::hash::{BuildHasher as _, Hash, RandomState};

use rusqlite::{Connection, OptionalExtension, params};

use crate::error::{Error, Result};
use crate::event::Event;
use crate::event::v1::{self, BlobPart, ObjectPut, Payload, VersioningStatus};

/// The view tables, in dump order, each with the columns that order its rows.
pub const VIEW_TABLES: &[(&str, &str)] = &[
    ("event_subjects", "subject_id, seq"),
    ("buckets", "name"),
    ("object_versions", "seq"),
    ("multipart_uploads", "upload_id"),
    ("multipart_parts", "upload_id, part_number"),
    ("retrievals", "seq"),
    ("blob_refs", "blob"),
    ("packages", "name"),
];

/// Empties every view table (the log is untouched).
///
/// # Errors
/// SQLite errors.
pub fn reset(conn: &Connection) -> Result<()> {
    for (table, _) in VIEW_TABLES {
        conn.execute(&format!("DELETE FROM {table}"), [])?;
    }
    set_applied(conn, 0)
}

/// Drops the secondary indexes of the view tables, for a rebuild that finds versions in
/// memory instead ([`Deferred::rebuilding`]); returns the statements that build them again.
/// Building an index once from sorted rows costs a fraction of keeping it up to date
/// through every insert.
pub(crate) fn drop_indexes(conn: &Connection) -> Result<Vec<String>> {
    let tables = VIEW_TABLES.iter().map(|(table, _)| format!("'{table}'")).collect::<Vec<_>>().join(", ");
    let schemas = conn
        .prepare("SELECT name FROM pragma_database_list")?
        .query_map([], |row| row.get::<_, String>(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut creates = Vec::new();
    for schema in schemas {
        let indexes = conn
            .prepare(&format!(
                "SELECT name, sql FROM \"{schema}\".sqlite_master
                 WHERE type = 'index' AND sql IS NOT NULL AND tbl_name IN ({tables})"
            ))?
            .query_map([], |row| Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?)))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        for (name, sql) in indexes {
            conn.execute(&format!("DROP INDEX \"{schema}\".\"{name}\""), [])?;
            // The stored statement names the index unqualified; the views may be attached.
            let at = sql.find(&name).expect("an index's statement holds its name");
            creates.push(format!("{}\"{schema}\".{}", &sql[..at], &sql[at..]));
        }
    }
    Ok(creates)
}

/// Builds the indexes [`drop_indexes`] dropped.
pub(crate) fn create_indexes(conn: &Connection, creates: &[String]) -> Result<()> {
    for create in creates {
        conn.execute(create, [])?;
    }
    Ok(())
}

/// The sequence of the last event applied to the views.
///
/// # Errors
/// SQLite errors.
pub fn applied(conn: &Connection) -> Result<u64> {
    Ok(conn.prepare_cached("SELECT applied_seq FROM views_state WHERE id = 1")?.query_row([], |row| row.get(0))?)
}

/// Records that the views reflect the log up to `sequence`.
///
/// # Errors
/// SQLite errors.
pub fn set_applied(conn: &Connection, sequence: u64) -> Result<()> {
    conn.prepare_cached("UPDATE views_state SET applied_seq = ?1 WHERE id = 1")?.execute([sequence])?;
    Ok(())
}

/// Applies one event to the views. Unknown event types change nothing.
///
/// # Errors
/// SQLite errors, or [`Error::CorruptPayload`] for a payload that does not parse.
pub fn apply(conn: &Connection, event: &Event) -> Result<()> {
    apply_payload(conn, event, &event.decode()?, None, &mut Deferred::None)
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
        conn: &Connection,
        bucket: &str,
        key: &str,
        version_id: &str,
    ) -> Result<Option<i64>> {
        if let Some(index) = self.memory() {
            return Ok(index.version(bucket, key, version_id));
        }
        Ok(conn
            .prepare_cached("SELECT seq FROM object_versions WHERE bucket = ?1 AND key = ?2 AND version_id = ?3")?
            .query_row([bucket, key, version_id], |row| row.get(0))
            .optional()?)
    }

    /// The row of the key's latest version, if any.
    fn latest_seq(&mut self, conn: &Connection, bucket: &str, key: &str) -> Result<Option<i64>> {
        if let Some(index) = self.memory() {
            return Ok(index.key(bucket, key).and_then(|rows| rows.latest));
        }
        Ok(conn
            .prepare_cached("SELECT seq FROM object_versions WHERE bucket = ?1 AND key = ?2 AND is_latest = 1")?
            .query_row([bucket, key], |row| row.get(0))
            .optional()?)
    }

    /// The newest remaining row of the key, if any.
    fn newest_seq(&mut self, conn: &Connection, bucket: &str, key: &str) -> Result<Option<i64>> {
        if let Some(index) = self.memory() {
            return Ok(index.key(bucket, key).and_then(|rows| rows.newest));
        }
        Ok(conn
            .prepare_cached("SELECT MAX(seq) FROM object_versions WHERE bucket = ?1 AND key = ?2")?
            .query_row([bucket, key], |row| row.get(0))?)
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
    pub(crate) fn flush(&mut self, conn: &Connection) -> Result<()> {
        let Deferred::Gathering { subjects, refs, versions } = self else {
            return Ok(());
        };
        subjects.sort_unstable();
        let subjects = std::mem::take(subjects);
        insert_rows(conn, "event_subjects (subject_id, seq)", subjects.iter().map(|(id, seq)| (id.as_str(), *seq)))?;
        let mut refs = std::mem::take(refs);
        refs.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let counts = sum_by_blob(&refs);
        if versions.is_some() {
            // Rebuilding from empty: every count is new.
            insert_rows(conn, "blob_refs (blob, refs)", counts.filter(|(_, n)| *n > 0))?;
        } else {
            for (blob, delta) in counts {
                if delta != 0 {
                    add_ref(conn, blob, delta)?;
                }
            }
        }
        Ok(())
    }

    fn subject(&mut self, conn: &Connection, event: &Event) -> Result<()> {
        match self {
            Deferred::None => insert_subject(conn, &event.subject_id, event.sequence),
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

    fn refs(&mut self, conn: &Connection, parts: &[BlobPart], delta: i64) -> Result<()> {
        for part in parts {
            match self {
                Deferred::None => add_ref(conn, &part.blob, delta)?,
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

/// Rows inserted by one statement when writing gathered rows: binding many rows per step
/// saves most of a statement's fixed cost per row.
const ROWS_PER_INSERT: usize = 64;

/// Inserts `(text, integer)` rows into `table_and_columns`, in the order given.
fn insert_rows<'a, N: rusqlite::ToSql>(
    conn: &Connection,
    table_and_columns: &str,
    rows: impl Iterator<Item = (&'a str, N)>,
) -> Result<()> {
    let statement = |count: usize| {
        let values = vec!["(?, ?)"; count].join(", ");
        format!("INSERT INTO {table_and_columns} VALUES {values}")
    };
    let full = statement(ROWS_PER_INSERT);
    let mut chunk: Vec<(&str, N)> = Vec::with_capacity(ROWS_PER_INSERT);
    let mut rows = rows.peekable();
    while rows.peek().is_some() {
        chunk.clear();
        chunk.extend(rows.by_ref().take(ROWS_PER_INSERT));
        let last;
        let sql = if chunk.len() == ROWS_PER_INSERT {
            &full
        } else {
            last = statement(chunk.len());
            &last
        };
        let params =
            chunk.iter().flat_map(|(text, number)| [text as &dyn rusqlite::ToSql, number as &dyn rusqlite::ToSql]);
        conn.prepare_cached(sql)?.execute(rusqlite::params_from_iter(params))?;
    }
    Ok(())
}

fn insert_subject(conn: &Connection, subject_id: &str, sequence: u64) -> Result<()> {
    conn.prepare_cached("INSERT INTO event_subjects (subject_id, seq) VALUES (?1, ?2)")?
        .execute(params![subject_id, sequence])?;
    Ok(())
}

fn add_ref(conn: &Connection, blob: &str, delta: i64) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO blob_refs (blob, refs) VALUES (?1, ?2)
         ON CONFLICT (blob) DO UPDATE SET refs = refs + excluded.refs",
    )?
    .execute(params![blob, delta])?;
    if delta < 0 {
        conn.prepare_cached("DELETE FROM blob_refs WHERE blob = ?1 AND refs <= 0")?.execute([blob])?;
    }
    Ok(())
}

/// Applies an event whose payload the caller has already decoded (the direct path has it),
/// with its version's columns if the caller rendered them ([`VersionColumns::of`]).
pub(crate) fn apply_payload(
    conn: &Connection,
    event: &Event,
    payload: &Payload,
    columns: Option<&VersionColumns>,
    deferred: &mut Deferred,
) -> Result<()> {
    deferred.subject(conn, event)?;
    match payload {
        Payload::BucketCreated(p) => {
            let versioning = p.object_lock_enabled.then_some("Enabled");
            conn.prepare_cached(
                "INSERT INTO buckets (name, created_seq, created_at, region, owner, versioning, object_lock_enabled)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?
            .execute(params![
                p.bucket,
                event.sequence,
                event.created_at,
                p.region,
                event.actor,
                versioning,
                p.object_lock_enabled
            ])?;
        }
        Payload::BucketDeleted(p) => {
            conn.prepare_cached("DELETE FROM buckets WHERE name = ?1")?.execute([&p.bucket])?;
        }
        Payload::VersioningSet(p) => {
            let status = match p.status {
                VersioningStatus::Enabled => "Enabled",
                VersioningStatus::Suspended => "Suspended",
            };
            conn.prepare_cached("UPDATE buckets SET versioning = ?2 WHERE name = ?1")?.execute([&p.bucket, status])?;
        }
        Payload::ObjectLockSet(p) => {
            let default = p.default_retention.as_ref().map(json);
            conn.prepare_cached("UPDATE buckets SET default_retention = ?2 WHERE name = ?1")?
                .execute(params![p.bucket, default])?;
        }
        Payload::LifecycleSet(p) => {
            conn.prepare_cached("UPDATE buckets SET lifecycle = ?2 WHERE name = ?1")?
                .execute(params![p.bucket, json(&p.rules)])?;
        }
        Payload::LifecycleDeleted(p) => {
            conn.prepare_cached("UPDATE buckets SET lifecycle = NULL WHERE name = ?1")?.execute([&p.bucket])?;
        }
        Payload::ObjectPut(p) => insert_version(conn, event, p, columns, deferred)?,
        Payload::DeleteMarkerCreated(v) => {
            remove_version(conn, &v.bucket, &v.key, &v.version_id, deferred)?;
            demote_latest(conn, &v.bucket, &v.key, deferred)?;
            deferred.inserted(&v.bucket, &v.key, &v.version_id, seq(event));
            conn.prepare_cached(
                "INSERT INTO object_versions (bucket, key, version_id, seq, created_at, is_latest, is_delete_marker,
                   size, etag, blake3, content, origin, actor, legal_hold)
                 VALUES (?1, ?2, ?3, ?4, ?5, 1, 1, 0, '', '', '{}', '{}', ?6, 0)",
            )?
            .execute(params![
                v.bucket,
                v.key,
                v.version_id,
                event.sequence,
                event.created_at,
                event.actor
            ])?;
        }
        Payload::ObjectDeleted(p) => {
            let v = &p.version;
            remove_version(conn, &v.bucket, &v.key, &v.version_id, deferred)?;
        }
        Payload::TaggingSet(p) => {
            let v = &p.version;
            if let Some(row) = deferred.version_seq(conn, &v.bucket, &v.key, &v.version_id)? {
                let content: String = conn
                    .prepare_cached("SELECT content FROM object_versions WHERE seq = ?1")?
                    .query_row([row], |row| row.get(0))?;
                let mut content: v1::ObjectContent = serde_json::from_str(&content)
                    .map_err(|source| Error::CorruptPayload { sequence: event.sequence, source })?;
                content.tags.clone_from(&p.tags);
                conn.prepare_cached("UPDATE object_versions SET content = ?2 WHERE seq = ?1")?
                    .execute(params![row, json(&content)])?;
            }
        }
        Payload::RetentionSet(p) => {
            let v = &p.version;
            let mode = p.retention.map(|r| mode_name(r.mode));
            let until = p.retention.map(|r| r.retain_until);
            if let Some(row) = deferred.version_seq(conn, &v.bucket, &v.key, &v.version_id)? {
                conn.prepare_cached(
                    "UPDATE object_versions SET retention_mode = ?2, retain_until = ?3 WHERE seq = ?1",
                )?
                .execute(params![row, mode, until])?;
            }
        }
        Payload::LegalHoldSet(p) => {
            let v = &p.version;
            if let Some(row) = deferred.version_seq(conn, &v.bucket, &v.key, &v.version_id)? {
                conn.prepare_cached("UPDATE object_versions SET legal_hold = ?2 WHERE seq = ?1")?
                    .execute(params![row, p.on])?;
            }
        }
        Payload::Retrieved(p) => {
            let v = &p.version;
            let c = &event.context;
            conn.prepare_cached(
                "INSERT INTO retrievals (seq, created_at, bucket, key, version_id, method, bytes, actor, source_addr, user_agent, request_id)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            )?
            .execute(params![
                event.sequence,
                event.created_at,
                v.bucket,
                v.key,
                v.version_id,
                p.method,
                p.bytes,
                event.actor,
                c.source_addr,
                c.user_agent,
                c.request_id
            ])?;
        }
        Payload::MultipartCreated(p) => {
            conn.prepare_cached(
                "INSERT INTO multipart_uploads (upload_id, bucket, key, created_seq, created_at, initiator, template)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?
            .execute(params![
                p.upload_id,
                p.bucket,
                p.key,
                event.sequence,
                event.created_at,
                event.actor,
                json(p)
            ])?;
        }
        Payload::PartUploaded(p) => {
            remove_part(conn, &p.upload_id, Some(p.part_number), deferred)?;
            conn.prepare_cached(
                "INSERT INTO multipart_parts (upload_id, part_number, seq, created_at, size, etag, part)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?
            .execute(params![
                p.upload_id,
                p.part_number,
                event.sequence,
                event.created_at,
                p.part.size,
                p.part.etag,
                json(&p.part)
            ])?;
            deferred.refs(conn, std::slice::from_ref(&p.part), 1)?;
        }
        Payload::MultipartCompleted(p) => {
            // The version takes its references before the parts drop theirs, so a blob that
            // moves from the upload to the version never reaches zero.
            insert_version(conn, event, &p.version, columns, deferred)?;
            remove_upload(conn, &p.upload_id, deferred)?;
        }
        Payload::MultipartAborted(p) => remove_upload(conn, &p.upload_id, deferred)?,
        Payload::PackageFinalized(p) => {
            conn.prepare_cached(
                "INSERT INTO packages (name, bucket, prefix, manifest_key, manifest_version_id, manifest_blake3,
                   members, bytes, sealed_seq, sealed_at, actor)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            )?
            .execute(params![
                p.name,
                p.bucket,
                p.prefix,
                p.manifest_key,
                p.manifest_version_id,
                p.manifest_blake3,
                p.members,
                p.bytes,
                event.sequence,
                event.created_at,
                event.actor
            ])?;
        }
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
    conn: &Connection,
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
    remove_version(conn, &p.bucket, &p.key, &p.version_id, deferred)?;
    demote_latest(conn, &p.bucket, &p.key, deferred)?;
    deferred.inserted(&p.bucket, &p.key, &p.version_id, seq(event));
    let mode = p.retention.map(|r| mode_name(r.mode));
    let until = p.retention.map(|r| r.retain_until);
    conn.prepare_cached(
        "INSERT INTO object_versions (bucket, key, version_id, seq, created_at, is_latest, is_delete_marker,
           size, etag, blake3, content, origin, actor, retention_mode, retain_until, legal_hold)
         VALUES (?1, ?2, ?3, ?4, ?5, 1, 0, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
    )?
    .execute(params![
        p.bucket,
        p.key,
        p.version_id,
        event.sequence,
        event.created_at,
        p.content.size,
        p.content.etag,
        p.content.blake3,
        columns.content,
        columns.origin,
        event.actor,
        mode,
        until,
        p.legal_hold
    ])?;
    deferred.refs(conn, &p.content.parts, 1)
}

/// Removes a version if it exists, releasing its blobs; if it was the latest, the newest
/// remaining version of the key becomes the latest.
fn remove_version(conn: &Connection, bucket: &str, key: &str, version_id: &str, deferred: &mut Deferred) -> Result<()> {
    // Find the row, then work by rowid: most writes replace nothing, and a miss costs one
    // lookup where `DELETE ... RETURNING` would also build and drop a temporary table.
    let Some(row) = deferred.version_seq(conn, bucket, key, version_id)? else {
        return Ok(());
    };
    let (content, was_latest): (String, bool) = conn
        .prepare_cached("SELECT content, is_latest FROM object_versions WHERE seq = ?1")?
        .query_row([row], |row| Ok((row.get(0)?, row.get(1)?)))?;
    conn.prepare_cached("DELETE FROM object_versions WHERE seq = ?1")?.execute([row])?;
    deferred.removed(bucket, key, version_id, row);
    // Delete markers store `{}`, which has no parts.
    if let Ok(content) = serde_json::from_str::<v1::ObjectContent>(&content) {
        deferred.refs(conn, &content.parts, -1)?;
    }
    if was_latest {
        let newest = deferred.newest_seq(conn, bucket, key)?;
        if let Some(newest) = newest {
            conn.prepare_cached("UPDATE object_versions SET is_latest = 1 WHERE seq = ?1")?.execute([newest])?;
        }
        deferred.set_latest(bucket, key, newest);
    }
    Ok(())
}

fn demote_latest(conn: &Connection, bucket: &str, key: &str, deferred: &mut Deferred) -> Result<()> {
    // A read finds the latest version (usually none, for a new key); the write then goes
    // by rowid instead of opening write cursors on the table and both indexes for nothing.
    if let Some(row) = deferred.latest_seq(conn, bucket, key)? {
        conn.prepare_cached("UPDATE object_versions SET is_latest = 0 WHERE seq = ?1")?.execute([row])?;
        deferred.set_latest(bucket, key, None);
    }
    Ok(())
}

/// An event's sequence as SQLite stores it.
fn seq(event: &Event) -> i64 {
    i64::try_from(event.sequence).expect("sequences fit in SQLite integers")
}

fn remove_upload(conn: &Connection, upload_id: &str, deferred: &mut Deferred) -> Result<()> {
    remove_part(conn, upload_id, None, deferred)?;
    conn.prepare_cached("DELETE FROM multipart_uploads WHERE upload_id = ?1")?.execute([upload_id])?;
    Ok(())
}

/// Removes one part of an upload, or all of them, releasing their blobs.
fn remove_part(conn: &Connection, upload_id: &str, number: Option<u32>, deferred: &mut Deferred) -> Result<()> {
    let mut statement = conn.prepare_cached(
        "DELETE FROM multipart_parts WHERE upload_id = ?1 AND (?2 IS NULL OR part_number = ?2) RETURNING part",
    )?;
    let parts = statement
        .query_map(params![upload_id, number], |row| row.get::<_, String>(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    for part in parts {
        let part: BlobPart =
            serde_json::from_str(&part).map_err(|source| Error::CorruptPayload { sequence: 0, source })?;
        deferred.refs(conn, std::slice::from_ref(&part), -1)?;
    }
    Ok(())
}

pub(crate) fn mode_name(mode: v1::LockMode) -> &'static str {
    match mode {
        v1::LockMode::Governance => "GOVERNANCE",
        v1::LockMode::Compliance => "COMPLIANCE",
    }
}

/// JSON text of a value stored in a view column. Views need determinism, not the log's
/// canonical form: serde_json writes struct fields in declaration order and our maps are
/// ordered, so the same value always gives the same text.
pub(crate) fn json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("view values always serialise")
}

/// A deterministic dump of every view table: each row of each table in primary-key order,
/// every value with its SQLite type. Two databases have the same views exactly when their
/// dumps are equal.
///
/// # Errors
/// SQLite errors.
pub fn dump(conn: &Connection) -> Result<Vec<u8>> {
    use rusqlite::types::ValueRef;
    use std::io::Write;
    let mut out = Vec::new();
    for (table, order) in VIEW_TABLES {
        writeln!(out, "table {table}").expect("writing to a Vec cannot fail");
        let mut statement = conn.prepare(&format!("SELECT * FROM {table} ORDER BY {order}"))?;
        let columns = statement.column_count();
        let mut rows = statement.query([])?;
        while let Some(row) = rows.next()? {
            for i in 0..columns {
                match row.get_ref(i)? {
                    ValueRef::Null => out.extend_from_slice(b"N"),
                    ValueRef::Integer(n) => write!(out, "I{n}").expect("Vec write"),
                    ValueRef::Real(r) => write!(out, "R{:x}", r.to_bits()).expect("Vec write"),
                    ValueRef::Text(t) => {
                        write!(out, "T{}:", t.len()).expect("Vec write");
                        out.extend_from_slice(t);
                    }
                    ValueRef::Blob(b) => write!(out, "B{}", hex::encode(b)).expect("Vec write"),
                }
                out.push(b'\t');
            }
            out.push(b'\n');
        }
    }
    Ok(out)
}
