//! The SQLite engine's view rows: the tables of `migrations/views`, written through
//! `ViewRows` as `views::apply_payload` decides (both crate-private), and the engine's tools around
//! them (emptying, the applied mark, dropping indexes for a rebuild, the deterministic dump).

use rusqlite::{Connection, OptionalExtension, params};

use crate::error::Result;
use crate::event::Event;
use crate::event::v1::{self, AclEntry, CorsRule, Retention};
use crate::state::PublicAccessBlock;
use crate::views::{BucketRow, BucketSetting, VersionChange, VersionRow, ViewRows, mode_name, stored_retention};

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
    ("bucket_policies", "bucket"),
    ("bucket_public_access_blocks", "bucket"),
    ("bucket_cors", "bucket"),
    ("bucket_ownership", "bucket"),
    ("bucket_acls", "bucket"),
    ("object_acls", "version_seq"),
    ("accounts", "name"),
    ("users", "account, name"),
    ("access_keys", "access_key"),
    ("user_policies", "account, user, name"),
    ("bucket_tags", "bucket"),
    ("bucket_encryption", "bucket"),
    ("master_key", "id"),
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
/// memory instead ([`crate::views::Deferred::rebuilding`]); returns the statements that build them again.
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

/// Sets (`Some((value, sequence))`) or removes a bucket's row in a one-row-per-bucket setting
/// table: `(table, column)` names where the value goes; `set_seq` holds the event that set it.
fn set_bucket_setting(
    conn: &Connection,
    (table, column): (&str, &str),
    bucket: &str,
    value: Option<(String, u64)>,
) -> Result<()> {
    match value {
        Some((value, sequence)) => {
            conn.prepare_cached(&format!(
                "INSERT INTO {table} (bucket, {column}, set_seq) VALUES (?1, ?2, ?3)
                 ON CONFLICT (bucket) DO UPDATE SET {column} = excluded.{column}, set_seq = excluded.set_seq"
            ))?
            .execute(params![bucket, value, sequence])?;
        }
        None => {
            conn.prepare_cached(&format!("DELETE FROM {table} WHERE bucket = ?1"))?.execute([bucket])?;
        }
    }
    Ok(())
}

impl ViewRows for Connection {
    fn insert_subject(&self, subject_id: &str, sequence: u64) -> Result<()> {
        self.prepare_cached("INSERT INTO event_subjects (subject_id, seq) VALUES (?1, ?2)")?
            .execute(params![subject_id, sequence])?;
        Ok(())
    }

    fn insert_subjects(&self, rows: &[(String, u64)]) -> Result<()> {
        insert_rows(self, "event_subjects (subject_id, seq)", rows.iter().map(|(id, seq)| (id.as_str(), *seq)))
    }

    fn add_blob_refs(&self, blob: &str, delta: i64) -> Result<()> {
        self.prepare_cached(
            "INSERT INTO blob_refs (blob, refs) VALUES (?1, ?2)
             ON CONFLICT (blob) DO UPDATE SET refs = refs + excluded.refs",
        )?
        .execute(params![blob, delta])?;
        if delta < 0 {
            self.prepare_cached("DELETE FROM blob_refs WHERE blob = ?1 AND refs <= 0")?.execute([blob])?;
        }
        Ok(())
    }

    fn insert_blob_refs(&self, counts: &mut dyn Iterator<Item = (&str, i64)>) -> Result<()> {
        insert_rows(self, "blob_refs (blob, refs)", counts)
    }

    fn insert_bucket(&self, b: &BucketRow<'_>) -> Result<()> {
        self.prepare_cached(
            "INSERT INTO buckets (name, created_seq, created_at, region, owner, versioning, object_lock_enabled)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?
        .execute(params![
            b.name,
            b.created_seq,
            b.created_at,
            b.region,
            b.owner,
            b.versioning,
            b.object_lock_enabled
        ])?;
        Ok(())
    }

    fn delete_bucket(&self, name: &str) -> Result<()> {
        self.prepare_cached("DELETE FROM buckets WHERE name = ?1")?.execute([name])?;
        Ok(())
    }

    fn set_bucket(&self, name: &str, setting: BucketSetting<'_>) -> Result<()> {
        let (sql, value) = match setting {
            BucketSetting::Versioning(status) => ("UPDATE buckets SET versioning = ?2 WHERE name = ?1", Some(status)),
            // A configuration may turn Object Lock on for a bucket created without it.
            BucketSetting::ObjectLock(json) => {
                ("UPDATE buckets SET object_lock_enabled = 1, default_retention = ?2 WHERE name = ?1", json)
            }
            BucketSetting::Lifecycle(json) => ("UPDATE buckets SET lifecycle = ?2 WHERE name = ?1", json),
        };
        self.prepare_cached(sql)?.execute(params![name, value])?;
        Ok(())
    }

    fn set_bucket_policy(&self, bucket: &str, policy: Option<(&str, u64)>) -> Result<()> {
        set_bucket_setting(self, ("bucket_policies", "policy"), bucket, policy.map(|(p, seq)| (p.to_owned(), seq)))
    }

    fn set_public_access_block(&self, bucket: &str, block: Option<(&PublicAccessBlock, &Event)>) -> Result<()> {
        match block {
            Some((b, event)) => {
                self.prepare_cached(
                    "INSERT INTO bucket_public_access_blocks (bucket, block_public_acls, ignore_public_acls,
                         block_public_policy, restrict_public_buckets, set_seq) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                     ON CONFLICT (bucket) DO UPDATE SET block_public_acls = excluded.block_public_acls,
                         ignore_public_acls = excluded.ignore_public_acls,
                         block_public_policy = excluded.block_public_policy,
                         restrict_public_buckets = excluded.restrict_public_buckets, set_seq = excluded.set_seq",
                )?
                .execute(params![
                    bucket,
                    b.block_public_acls,
                    b.ignore_public_acls,
                    b.block_public_policy,
                    b.restrict_public_buckets,
                    event.sequence
                ])?;
            }
            None => {
                self.prepare_cached("DELETE FROM bucket_public_access_blocks WHERE bucket = ?1")?.execute([bucket])?;
            }
        }
        Ok(())
    }

    fn set_cors(&self, bucket: &str, rules: Option<(&[CorsRule], u64)>) -> Result<()> {
        let rules = rules.map(|(rules, seq)| (serde_json::to_string(rules).expect("CORS rules serialize"), seq));
        set_bucket_setting(self, ("bucket_cors", "rules"), bucket, rules)
    }

    fn set_bucket_tags(&self, bucket: &str, tags: Option<(&v1::StringMap, u64)>) -> Result<()> {
        let tags = tags.map(|(tags, seq)| (serde_json::to_string(tags).expect("tags serialize"), seq));
        set_bucket_setting(self, ("bucket_tags", "tags"), bucket, tags)
    }

    fn set_bucket_encryption(&self, bucket: &str, rule: Option<(&v1::EncryptionRule, u64)>) -> Result<()> {
        let rule = rule.map(|(rule, seq)| (serde_json::to_string(rule).expect("a rule serializes"), seq));
        set_bucket_setting(self, ("bucket_encryption", "rule"), bucket, rule)
    }

    fn set_master_key(&self, key_id: &str, sequence: u64) -> Result<()> {
        self.prepare_cached(
            "INSERT INTO master_key (id, key_id, set_seq) VALUES (1, ?1, ?2)
             ON CONFLICT (id) DO UPDATE SET key_id = excluded.key_id, set_seq = excluded.set_seq",
        )?
        .execute(params![key_id, sequence])?;
        Ok(())
    }

    fn set_ownership(&self, bucket: &str, ownership: Option<(Option<&str>, u64)>) -> Result<()> {
        match ownership {
            Some((name, sequence)) => {
                self.prepare_cached(
                    "INSERT INTO bucket_ownership (bucket, ownership, set_seq) VALUES (?1, ?2, ?3)
                     ON CONFLICT (bucket) DO UPDATE SET ownership = excluded.ownership, set_seq = excluded.set_seq",
                )?
                .execute(params![bucket, name, sequence])?;
            }
            None => {
                self.prepare_cached("DELETE FROM bucket_ownership WHERE bucket = ?1")?.execute([bucket])?;
            }
        }
        Ok(())
    }

    fn set_bucket_acl(&self, bucket: &str, grants: Option<(&[AclEntry], u64)>) -> Result<()> {
        let grants = grants.map(|(grants, seq)| (serde_json::to_string(grants).expect("ACL grants serialize"), seq));
        set_bucket_setting(self, ("bucket_acls", "grants"), bucket, grants)
    }

    fn insert_account(&self, event: &Event, account: &v1::AccountCreated) -> Result<()> {
        self.prepare_cached(
            "INSERT INTO accounts (name, id, email, created_seq, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?
        .execute(params![account.account, account.id, account.email, event.sequence, event.created_at])?;
        Ok(())
    }

    fn set_user(&self, account: &str, name: &str, created: Option<&Event>) -> Result<()> {
        match created {
            Some(event) => {
                self.prepare_cached(
                    "INSERT INTO users (account, name, created_seq, created_at) VALUES (?1, ?2, ?3, ?4)",
                )?
                .execute(params![account, name, event.sequence, event.created_at])?;
            }
            None => {
                self.prepare_cached("DELETE FROM users WHERE account = ?1 AND name = ?2")?.execute([account, name])?;
            }
        }
        Ok(())
    }

    fn insert_access_key(&self, event: &Event, access_key: &str, account: &str, user: &str) -> Result<()> {
        self.prepare_cached(
            "INSERT INTO access_keys (access_key, account, user, status, created_seq, created_at)
             VALUES (?1, ?2, ?3, 'Active', ?4, ?5)",
        )?
        .execute(params![access_key, account, user, event.sequence, event.created_at])?;
        Ok(())
    }

    fn set_access_key_status(&self, access_key: &str, status: &str) -> Result<()> {
        self.prepare_cached("UPDATE access_keys SET status = ?2 WHERE access_key = ?1")?
            .execute([access_key, status])?;
        Ok(())
    }

    fn delete_access_key(&self, access_key: &str, sequence: u64) -> Result<()> {
        self.prepare_cached("UPDATE access_keys SET deleted_seq = ?2 WHERE access_key = ?1")?
            .execute(params![access_key, sequence])?;
        Ok(())
    }

    fn set_user_policy(&self, account: &str, user: &str, name: &str, policy: Option<(&str, u64)>) -> Result<()> {
        match policy {
            Some((policy, sequence)) => {
                self.prepare_cached(
                    "INSERT INTO user_policies (account, user, name, policy, set_seq) VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT (account, user, name) DO UPDATE SET policy = excluded.policy, set_seq = excluded.set_seq",
                )?
                .execute(params![account, user, name, policy, sequence])?;
            }
            None => {
                self.prepare_cached("DELETE FROM user_policies WHERE account = ?1 AND user = ?2 AND name = ?3")?
                    .execute([account, user, name])?;
            }
        }
        Ok(())
    }

    fn version_row(&self, bucket: &str, key: &str, version_id: &str) -> Result<Option<i64>> {
        Ok(self
            .prepare_cached("SELECT seq FROM object_versions WHERE bucket = ?1 AND key = ?2 AND version_id = ?3")?
            .query_row([bucket, key, version_id], |row| row.get(0))
            .optional()?)
    }

    fn latest_row(&self, bucket: &str, key: &str) -> Result<Option<i64>> {
        Ok(self
            .prepare_cached("SELECT seq FROM object_versions WHERE bucket = ?1 AND key = ?2 AND is_latest = 1")?
            .query_row([bucket, key], |row| row.get(0))
            .optional()?)
    }

    fn newest_row(&self, bucket: &str, key: &str) -> Result<Option<i64>> {
        Ok(self
            .prepare_cached("SELECT MAX(seq) FROM object_versions WHERE bucket = ?1 AND key = ?2")?
            .query_row([bucket, key], |row| row.get(0))?)
    }

    fn version_content(&self, row: i64) -> Result<(String, bool)> {
        Ok(self
            .prepare_cached("SELECT content, is_latest FROM object_versions WHERE seq = ?1")?
            .query_row([row], |row| Ok((row.get(0)?, row.get(1)?)))?)
    }

    fn version_lock(&self, row: i64) -> Result<Option<(Option<Retention>, bool)>> {
        Ok(self
            .prepare_cached("SELECT retention_mode, retain_until, legal_hold FROM object_versions WHERE seq = ?1")?
            .query_row([row], |row| {
                let mode: Option<String> = row.get(0)?;
                let retention = stored_retention(mode.as_deref(), row.get(1)?);
                Ok((retention, row.get::<_, bool>(2)?))
            })
            .optional()?)
    }

    fn insert_version(&self, v: &VersionRow<'_>) -> Result<()> {
        self.prepare_cached(
            "INSERT INTO object_versions (bucket, key, version_id, seq, created_at, is_latest, is_delete_marker,
               size, etag, blake3, content, origin, actor, retention_mode, retain_until, legal_hold)
             VALUES (?1, ?2, ?3, ?4, ?5, 1, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
        )?
        .execute(params![
            v.bucket,
            v.key,
            v.version_id,
            v.seq,
            v.created_at,
            v.is_delete_marker,
            v.size,
            v.etag,
            v.blake3,
            v.content,
            v.origin,
            v.actor,
            v.retention.map(|r| mode_name(r.mode)),
            v.retention.map(|r| r.retain_until),
            v.legal_hold
        ])?;
        Ok(())
    }

    fn delete_version(&self, row: i64) -> Result<()> {
        self.prepare_cached("DELETE FROM object_versions WHERE seq = ?1")?.execute([row])?;
        self.prepare_cached("DELETE FROM object_acls WHERE version_seq = ?1")?.execute([row])?;
        Ok(())
    }

    fn set_object_acl(&self, row: i64, grants: &[AclEntry], owner: Option<&str>, sequence: u64) -> Result<()> {
        let grants = serde_json::to_string(grants).expect("ACL grants serialize");
        self.prepare_cached(
            "INSERT INTO object_acls (version_seq, grants, owner, set_seq) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (version_seq) DO UPDATE
             SET grants = excluded.grants, owner = excluded.owner, set_seq = excluded.set_seq",
        )?
        .execute(params![row, grants, owner, sequence])?;
        Ok(())
    }

    fn set_version(&self, row: i64, change: VersionChange<'_>) -> Result<()> {
        match change {
            VersionChange::Latest(latest) => {
                self.prepare_cached("UPDATE object_versions SET is_latest = ?2 WHERE seq = ?1")?
                    .execute(params![row, latest])?;
            }
            VersionChange::Content(content) => {
                self.prepare_cached("UPDATE object_versions SET content = ?2 WHERE seq = ?1")?
                    .execute(params![row, content])?;
            }
            VersionChange::Retention(retention) => {
                self.prepare_cached(
                    "UPDATE object_versions SET retention_mode = ?2, retain_until = ?3 WHERE seq = ?1",
                )?
                .execute(params![
                    row,
                    retention.map(|r| mode_name(r.mode)),
                    retention.map(|r| r.retain_until)
                ])?;
            }
            VersionChange::LegalHold(on) => {
                self.prepare_cached("UPDATE object_versions SET legal_hold = ?2 WHERE seq = ?1")?
                    .execute(params![row, on])?;
            }
        }
        Ok(())
    }

    fn insert_retrieval(&self, event: &Event, p: &v1::Retrieved) -> Result<()> {
        let v = &p.version;
        let c = &event.context;
        self.prepare_cached(
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
        Ok(())
    }

    fn insert_upload(&self, event: &Event, p: &v1::MultipartCreated, template: &str) -> Result<()> {
        self.prepare_cached(
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
            template
        ])?;
        Ok(())
    }

    fn delete_upload(&self, upload_id: &str) -> Result<()> {
        self.prepare_cached("DELETE FROM multipart_uploads WHERE upload_id = ?1")?.execute([upload_id])?;
        Ok(())
    }

    fn insert_part(&self, event: &Event, p: &v1::PartUploaded, part: &str) -> Result<()> {
        self.prepare_cached(
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
            part
        ])?;
        Ok(())
    }

    fn take_parts(&self, upload_id: &str, number: Option<u32>) -> Result<Vec<String>> {
        let mut statement = self.prepare_cached(
            "DELETE FROM multipart_parts WHERE upload_id = ?1 AND (?2 IS NULL OR part_number = ?2) RETURNING part",
        )?;
        let parts = statement
            .query_map(params![upload_id, number], |row| row.get::<_, String>(0))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(parts)
    }

    fn insert_package(&self, event: &Event, p: &v1::PackageFinalized) -> Result<()> {
        self.prepare_cached(
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
        Ok(())
    }

    fn any_package(&self) -> Result<bool> {
        Ok(self.prepare_cached("SELECT EXISTS (SELECT 1 FROM packages)")?.query_row([], |row| row.get(0))?)
    }
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
