//! The rules in force at each event's sequence, checked again as replay applies the log: no
//! version under retention or legal hold is deleted or overwritten, no retention is weakened
//! beyond what its mode allows, and nothing under a sealed package changes.
//!
//! The commands check these rules before they append, reading the views. Views edited behind
//! the log's back (a COMPLIANCE retention cleared in the views file) would let a command
//! append an event its rules forbid, and replay would apply it without a question, leaving
//! views that match the log. So replay asks the question: it checks each event against the
//! views it has rebuilt from the log alone, up to that event, at the event's own time (the
//! time the command checked at), and names the first event that breaks a rule. The event
//! is applied all the same: the log records what happened, and the views must show it.

use serde::Serialize;

use crate::error::Result;
use crate::event::Event;
use crate::event::v1::{LockMode, Payload, Retention, VersionRef};
use crate::queries::Reads;
use crate::retention::{self, Protection};
use crate::views::{Deferred, ViewRows};

/// An event that the rules in force at its sequence forbid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    /// The event's sequence.
    pub sequence: u64,
    /// Its type.
    pub event_type: String,
    /// What it did that the rules forbid.
    pub breaks: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "event {} ({}) {}", self.sequence, self.event_type, self.breaks)
    }
}

/// What a replay has learnt about the rules so far.
#[derive(Debug, Default)]
pub(crate) struct RuleCheck {
    /// The first event that broke a rule.
    pub(crate) first: Option<Violation>,
    /// How many did.
    pub(crate) count: u64,
    /// Whether any package is sealed yet (most logs have none, so the check is skipped).
    sealed_any: Option<bool>,
    /// The version a `v1.retention.bypassed` event just before allowed to be removed.
    bypassed: Option<(u64, VersionRef)>,
}

/// Checks `event` against the rules in force before it is applied to `conn`'s views. Only
/// replay and catch-up ask: on the direct path the command has just checked, on the same
/// views.
pub(crate) fn check(
    conn: &(impl ViewRows + Reads),
    event: &Event,
    payload: &Payload,
    rules: &mut RuleCheck,
    deferred: &mut Deferred,
) -> Result<()> {
    let bypassed = rules.bypassed.take().filter(|(sequence, _)| sequence + 1 == event.sequence).map(|(_, v)| v);
    if rules.sealed_any.is_none() {
        rules.sealed_any = Some(conn.any_package()?);
    }
    let sealed_any = rules.sealed_any == Some(true);
    let time = event.created_at;
    let breaks = match payload {
        Payload::RetentionBypassed(p) => {
            rules.bypassed = Some((event.sequence, p.version.clone()));
            None
        }
        Payload::PackageFinalized(_) => {
            rules.sealed_any = Some(true);
            None
        }
        Payload::ObjectPut(p)
        | Payload::MultipartCompleted(crate::event::v1::MultipartCompleted { version: p, .. }) => {
            let version = VersionRef { bucket: p.bucket.clone(), key: p.key.clone(), version_id: p.version_id.clone() };
            match sealed(conn, sealed_any, &p.bucket, &p.key)? {
                Some(breaks) => Some(breaks),
                None => removal(conn, deferred, &version, time, false, "overwrites")?,
            }
        }
        Payload::DeleteMarkerCreated(v) => match sealed(conn, sealed_any, &v.bucket, &v.key)? {
            Some(breaks) => Some(breaks),
            // A marker takes the place of a version of the same id (the null version).
            None => removal(conn, deferred, v, time, bypassed.as_ref() == Some(v), "replaces")?,
        },
        Payload::ObjectDeleted(p) => match sealed(conn, sealed_any, &p.version.bucket, &p.version.key)? {
            Some(breaks) => Some(breaks),
            None => removal(conn, deferred, &p.version, time, p.bypass_governance, "deletes")?,
        },
        Payload::RetentionSet(p) => match sealed(conn, sealed_any, &p.version.bucket, &p.version.key)? {
            Some(breaks) => Some(breaks),
            None => match lock_of(conn, deferred, &p.version)? {
                Some((current, _))
                    if !retention::may_change_retention(current, p.retention, time, p.bypass_governance) =>
                {
                    Some(format!(
                        "weakens the retention of {}, which {}",
                        describe(&p.version),
                        protected_by(current, false)
                    ))
                }
                _ => None,
            },
        },
        Payload::LegalHoldSet(p) => sealed(conn, sealed_any, &p.version.bucket, &p.version.key)?,
        Payload::TaggingSet(p) => sealed(conn, sealed_any, &p.version.bucket, &p.version.key)?,
        Payload::ObjectAclSet(p) => sealed(conn, sealed_any, &p.version.bucket, &p.version.key)?,
        Payload::MultipartCreated(p) => sealed(conn, sealed_any, &p.bucket, &p.key)?,
        Payload::PartUploaded(p) => sealed(conn, sealed_any, &p.bucket, &p.key)?,
        _ => None,
    };
    if let Some(breaks) = breaks {
        rules.count += 1;
        if rules.first.is_none() {
            rules.first = Some(Violation { sequence: event.sequence, event_type: event.event_type.clone(), breaks });
        }
    }
    Ok(())
}

/// Why changing `key` breaks a seal, if a package seals it.
fn sealed(conn: &impl Reads, sealed_any: bool, bucket: &str, key: &str) -> Result<Option<String>> {
    if !sealed_any {
        return Ok(None);
    }
    Ok(conn
        .sealing(bucket, key)?
        .map(|package| format!("changes key {key:?} of bucket {bucket:?}, which package {package:?} seals")))
}

/// Why removing `version` at `time` breaks its lock, if it does.
fn removal(
    conn: &impl ViewRows,
    deferred: &mut Deferred,
    version: &VersionRef,
    time: i64,
    bypass_governance: bool,
    verb: &str,
) -> Result<Option<String>> {
    let Some((retention, legal_hold)) = lock_of(conn, deferred, version)? else {
        return Ok(None);
    };
    if retention::may_delete(retention, legal_hold, time, bypass_governance) {
        return Ok(None);
    }
    let by = match retention::protection(retention, legal_hold, time) {
        Protection::Absolute if legal_hold => "a legal hold protects".to_owned(),
        _ => protected_by(retention, true),
    };
    Ok(Some(format!("{verb} {}, which {by}", describe(version))))
}

/// The retention and legal hold of a version the views hold, if they hold it.
fn lock_of(conn: &impl ViewRows, deferred: &mut Deferred, v: &VersionRef) -> Result<Option<(Option<Retention>, bool)>> {
    match deferred.version_seq(conn, &v.bucket, &v.key, &v.version_id)? {
        Some(row) => conn.version_lock(row),
        None => Ok(None),
    }
}

fn protected_by(retention: Option<Retention>, without_bypass: bool) -> String {
    match retention {
        Some(r) => {
            let mode = crate::views::mode_name(r.mode);
            let bypass = if without_bypass && r.mode == LockMode::Governance { " (without a bypass)" } else { "" };
            format!("{mode} retention protects until {}{bypass}", r.retain_until)
        }
        None => "nothing protects".to_owned(),
    }
}

fn describe(v: &VersionRef) -> String {
    format!("version {:?} of key {:?} in bucket {:?}", v.version_id, v.key, v.bucket)
}
