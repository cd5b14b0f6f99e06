//! The views checked against the log: a snapshot of both is replayed from its log and
//! compared with the stored views table by table, row by row, and every event is checked
//! against the rules in force at its sequence ([`crate::rules`]).
//!
//! Used by `verify` and by a serving gateway's periodic check. It works on a read-only
//! connection beside a live writer: the snapshots are copies (`VACUUM INTO`) in a scratch
//! folder the caller provides, and nothing of the live files is written.

use std::path::Path;

use rusqlite::Connection;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::log;
use crate::rules::Violation;
use crate::sqlite::views as stored_views;

/// What the check found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ViewsAudit {
    /// The last event the stored views had applied: they are compared with a replay up to it.
    pub applied: u64,
    /// Whether the stored views equal the views rebuilt from the log, byte for byte.
    pub matches_log: bool,
    /// Tables that differ, each with the key of one differing row.
    pub differences: Vec<String>,
    /// The first event of the log that the rules in force at its sequence forbid.
    pub first_violation: Option<Violation>,
    /// How many events break a rule.
    pub violations: u64,
}

impl ViewsAudit {
    /// Whether nothing was found.
    #[must_use]
    pub fn ok(&self) -> bool {
        self.matches_log && self.first_violation.is_none()
    }

    /// One line per finding.
    #[must_use]
    pub fn problems(&self) -> Vec<String> {
        let mut problems: Vec<String> = self.differences.iter().map(|d| format!("views: {d}")).collect();
        if let Some(violation) = &self.first_violation {
            problems.push(format!("rules: {violation} ({} event(s) break a rule)", self.violations));
        }
        problems
    }
}

/// Prefix of the tables that keep the stored views inside the snapshot while it is replayed.
const STORED: &str = "audit_stored_";

/// Snapshots the log and views `conn` reads (a connection with the views attached as
/// `views`, as [`crate::sqlite::open_read_only`] opens it) into `scratch`, replays the
/// snapshot and compares. `progress` hears each replayed sequence.
///
/// # Errors
/// SQLite errors, or a `scratch` path that is not UTF-8. A payload that does not parse is
/// a finding, not an error.
pub fn audit_views(conn: &Connection, scratch: &Path, mut progress: impl FnMut(u64)) -> Result<ViewsAudit> {
    // The views first, then the log: the writer commits the log first, so the log snapshot
    // holds at least every event the views snapshot has applied.
    let views_snapshot = scratch.join("registry.views.db");
    let log_snapshot = scratch.join("registry.db");
    let utf8 = |path: &Path| path.to_str().map(str::to_owned).ok_or_else(|| Error::PathNotUtf8(path.to_owned()));
    conn.execute("VACUUM views INTO ?1", [utf8(&views_snapshot)?])?;
    conn.execute("VACUUM INTO ?1", [utf8(&log_snapshot)?])?;

    // A throwaway copy, opened as it is (opening it as a registry would catch the views up).
    let mut copy = Connection::open(&log_snapshot)?;
    copy.execute("ATTACH DATABASE ?1 AS views", [utf8(&views_snapshot)?])?;
    copy.pragma_update(None, "synchronous", "OFF")?;
    copy.pragma_update(Some("views"), "synchronous", "OFF")?;
    let applied = stored_views::applied(&copy)?;
    let stored = stored_views::dump(&copy)?;
    for (table, _) in stored_views::VIEW_TABLES {
        copy.execute_batch(&format!("CREATE TABLE main.{STORED}{table} AS SELECT * FROM views.{table}"))?;
    }

    let tx = copy.transaction()?;
    let mut audit =
        ViewsAudit { applied, matches_log: true, differences: Vec::new(), first_violation: None, violations: 0 };
    let replayed = match log::replay_in(&tx, &tx, applied, &mut progress) {
        Ok(replayed) => replayed,
        Err(Error::CorruptPayload { sequence, source }) => {
            audit.matches_log = false;
            audit.differences.push(format!(
                "event {sequence} has a payload that does not parse ({source}), so the views cannot be rebuilt"
            ));
            return Ok(audit);
        }
        Err(error) => return Err(error),
    };
    if stored_views::dump(&tx)? != stored {
        audit.matches_log = false;
        for (table, key) in stored_views::VIEW_TABLES {
            if let Some(row) = first_difference(&tx, table, key)? {
                audit.differences.push(format!("table {table} differs from the log at {row}"));
            }
        }
        if audit.differences.is_empty() {
            // Equal as SQL values but not byte for byte (a value stored with another type).
            audit.differences.push("the views differ from the log in the types of stored values".to_owned());
        }
    }
    // The rules hold for the whole log, also for events the stored views had not applied yet.
    let rest = match log::catch_up(&tx, &tx) {
        Ok(rest) => rest,
        Err(Error::CorruptPayload { sequence, source }) => {
            audit.differences.push(format!("event {sequence} has a payload that does not parse ({source})"));
            audit.matches_log = false;
            log::Replayed { last: applied, first_violation: None, violations: 0 }
        }
        Err(error) => return Err(error),
    };
    audit.first_violation = replayed.first_violation.or(rest.first_violation);
    audit.violations = replayed.violations + rest.violations;
    Ok(audit)
}

/// The key (`column=value, ...`) of the first row of `table` that is in the stored views but
/// not in the rebuilt ones, or the other way round.
fn first_difference(conn: &Connection, table: &str, key: &str) -> Result<Option<String>> {
    let sql = format!(
        "SELECT {key} FROM (SELECT * FROM {STORED}{table} EXCEPT SELECT * FROM {table}
                            UNION ALL
                            SELECT * FROM (SELECT * FROM {table} EXCEPT SELECT * FROM {STORED}{table}))
         ORDER BY {key} LIMIT 1"
    );
    let mut statement = conn.prepare(&sql)?;
    let names: Vec<String> = statement.column_names().into_iter().map(str::to_owned).collect();
    let mut rows = statement.query([])?;
    let Some(row) = rows.next()? else {
        return Ok(None);
    };
    let mut rendered = Vec::with_capacity(names.len());
    for (i, name) in names.iter().enumerate() {
        let value = match row.get_ref(i)? {
            rusqlite::types::ValueRef::Null => "NULL".to_owned(),
            rusqlite::types::ValueRef::Integer(n) => n.to_string(),
            rusqlite::types::ValueRef::Real(r) => r.to_string(),
            rusqlite::types::ValueRef::Text(t) => format!("{:?}", String::from_utf8_lossy(t)),
            rusqlite::types::ValueRef::Blob(b) => format!("x'{}'", hex::encode(b)),
        };
        rendered.push(format!("{name}={value}"));
    }
    Ok(Some(rendered.join(", ")))
}
