//! Why a version still exists, or why it was deleted, answered from its events alone (a
//! pure function of the object's history and a time; no view is consulted, so the answer
//! holds for any log that verifies).

use serde::Serialize;

use crate::error::Result;
use crate::event::Event;
use crate::event::v1::{LegalHoldSet, LockMode, ObjectDeleted, Payload, Retention, RetentionBypassed, RetentionSet};

/// What became of the version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Fate {
    /// No event ever created it.
    Unknown,
    /// It exists and is the key's current version.
    Current,
    /// It exists behind a newer version or a delete marker.
    Noncurrent,
    /// It was deleted for good.
    Deleted,
}

/// One event of the version's history, with what it meant for the version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Step {
    /// The event's sequence.
    pub sequence: u64,
    /// Its time, milliseconds since the epoch.
    pub time: i64,
    /// Its type.
    pub event_type: String,
    /// Who caused it.
    pub actor: String,
    /// What it did to this version.
    pub note: String,
}

/// The answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Explanation {
    /// The version explained (the current one, or the last one created, when none was named).
    pub version_id: Option<String>,
    /// What became of it.
    pub fate: Fate,
    /// Whether it is a delete marker.
    pub delete_marker: bool,
    /// The events that decide the answer: the deletion and what allowed it, or what protects
    /// the version now.
    pub reasons: Vec<Step>,
    /// Every event about the version, in order (reads are counted, not listed).
    pub history: Vec<Step>,
    /// How many times it was read.
    pub retrievals: u64,
    /// Retention in force at the time asked about.
    pub retention: Option<Retention>,
    /// Whether a legal hold is on.
    pub legal_hold: bool,
}

fn step(event: &Event, note: String) -> Step {
    Step {
        sequence: event.sequence,
        time: event.created_at,
        event_type: event.event_type.clone(),
        actor: event.actor.clone(),
        note,
    }
}

fn mode(mode: LockMode) -> &'static str {
    match mode {
        LockMode::Governance => "GOVERNANCE",
        LockMode::Compliance => "COMPLIANCE",
    }
}

/// The version a history is about: the one named, or else the newest one created.
fn target(events: &[(Event, Payload)], version_id: Option<&str>) -> Option<String> {
    if let Some(id) = version_id {
        return Some(id.to_owned());
    }
    events.iter().rev().find_map(|(_, payload)| match payload {
        Payload::ObjectPut(p) => Some(p.version_id.clone()),
        Payload::MultipartCompleted(p) => Some(p.version.version_id.clone()),
        Payload::DeleteMarkerCreated(v) => Some(v.version_id.clone()),
        _ => None,
    })
}

/// Explains one version of an object from the object's events (every event whose subject
/// is `bucket/key`, in sequence order), at time `now`.
///
/// # Errors
/// [`crate::Error::CorruptPayload`] for an event whose payload does not parse.
pub fn explain(events: &[Event], version_id: Option<&str>, now: i64) -> Result<Explanation> {
    let decoded = events.iter().map(|e| Ok((e.clone(), e.decode()?))).collect::<Result<Vec<_>>>()?;
    let target = target(&decoded, version_id);
    let mut out = Explanation {
        version_id: target.clone(),
        fate: Fate::Unknown,
        delete_marker: false,
        reasons: Vec::new(),
        history: Vec::new(),
        retrievals: 0,
        retention: None,
        legal_hold: false,
    };
    let Some(target) = target else { return Ok(out) };
    let is_target = |id: &str| id == target;
    // The last retention and legal-hold events, for the reasons of a version that exists.
    let (mut retention_step, mut hold_step) = (None, None);
    // Bypasses and lifecycle decisions are recorded just before the deletion they allow, and
    // a lifecycle expiration just before the delete marker it adds.
    let mut allowed_by: Vec<Step> = Vec::new();
    let (mut marker_rule, mut created_by) = (None::<(u64, Step)>, None);
    for (event, payload) in &decoded {
        let created = |out: &mut Explanation, retention: Option<Retention>, hold: bool, marker: bool| {
            // A null version written again replaces the earlier one: its history restarts.
            let note = if out.fate == Fate::Unknown { "created" } else { "created again, replacing the previous one" };
            out.history.push(step(event, note.to_owned()));
            out.fate = Fate::Current;
            out.delete_marker = marker;
            out.retention = retention;
            out.legal_hold = hold;
        };
        match payload {
            Payload::ObjectPut(p) if is_target(&p.version_id) => {
                created(&mut out, p.retention, p.legal_hold, false);
                retention_step = p.retention.map(|_| step(event, "retention set at creation".to_owned()));
                hold_step = p.legal_hold.then(|| step(event, "legal hold set at creation".to_owned()));
            }
            Payload::MultipartCompleted(p) if is_target(&p.version.version_id) => {
                created(&mut out, p.version.retention, p.version.legal_hold, false);
                retention_step = p.version.retention.map(|_| step(event, "retention set at creation".to_owned()));
                hold_step = p.version.legal_hold.then(|| step(event, "legal hold set at creation".to_owned()));
            }
            Payload::DeleteMarkerCreated(v) if is_target(&v.version_id) => {
                created(&mut out, None, false, true);
                created_by = marker_rule.take().filter(|(seq, _)| seq + 1 == event.sequence).map(|(_, s)| s);
            }
            Payload::ObjectPut(_) | Payload::MultipartCompleted(_) | Payload::DeleteMarkerCreated(_)
                if out.fate == Fate::Current =>
            {
                let what = if matches!(payload, Payload::DeleteMarkerCreated(_)) {
                    "a delete marker"
                } else {
                    "a newer version"
                };
                out.history.push(step(event, format!("became noncurrent: {what} is now current")));
                out.fate = Fate::Noncurrent;
            }
            Payload::RetentionSet(RetentionSet { version, retention, bypass_governance })
                if is_target(&version.version_id) =>
            {
                let note = match retention {
                    Some(r) => format!("retention {} until {}", mode(r.mode), r.retain_until),
                    None => "retention lifted".to_owned(),
                };
                let note = if *bypass_governance { format!("{note} (bypassing governance)") } else { note };
                out.retention = *retention;
                retention_step = Some(step(event, note.clone()));
                out.history.push(step(event, note));
            }
            Payload::LegalHoldSet(LegalHoldSet { version, on }) if is_target(&version.version_id) => {
                let note = if *on { "legal hold on" } else { "legal hold off" }.to_owned();
                out.legal_hold = *on;
                hold_step = Some(step(event, note.clone()));
                out.history.push(step(event, note));
            }
            Payload::RetentionBypassed(RetentionBypassed { version, retention, action })
                if is_target(&version.version_id) =>
            {
                let note = format!(
                    "{} retention until {} bypassed for {action:?}",
                    mode(retention.mode),
                    retention.retain_until
                );
                allowed_by.push(step(event, note.clone()));
                out.history.push(step(event, note));
            }
            Payload::LifecycleApplied(p)
                if p.effect == "add_delete_marker" && !p.version_id.as_deref().is_some_and(is_target) =>
            {
                let note = format!(
                    "lifecycle rule {:?}: {} of version {}, due at {}",
                    p.rule_id,
                    p.action,
                    p.version_id.as_deref().unwrap_or("?"),
                    p.due
                );
                marker_rule = Some((event.sequence, step(event, note)));
            }
            Payload::LifecycleApplied(p) if p.version_id.as_deref().is_some_and(is_target) => {
                let note = format!("lifecycle rule {:?}: {} ({}), due at {}", p.rule_id, p.action, p.effect, p.due);
                allowed_by.push(step(event, note.clone()));
                out.history.push(step(event, note));
            }
            Payload::ObjectDeleted(ObjectDeleted { version, .. }) if is_target(&version.version_id) => {
                let note = "deleted for good".to_owned();
                out.history.push(step(event, note.clone()));
                out.reasons = std::mem::take(&mut allowed_by);
                out.reasons.push(step(event, note));
                out.fate = Fate::Deleted;
            }
            Payload::TaggingSet(p) if is_target(&p.version.version_id) => {
                out.history.push(step(event, "tags replaced".to_owned()));
            }
            Payload::KeysRewrapped(p) if is_target(&p.version.version_id) => {
                let note = format!("{} data keys wrapped anew (the bytes unchanged)", p.parts.len());
                out.history.push(step(event, note));
            }
            Payload::Retrieved(p) if is_target(&p.version.version_id) => out.retrievals += 1,
            _ => {}
        }
    }
    if matches!(out.fate, Fate::Current | Fate::Noncurrent) {
        out.reasons.extend(created_by);
        out.retention = out.retention.filter(|r| r.retain_until > now);
        out.reasons.extend(out.retention.and(retention_step));
        out.reasons.extend(hold_step.filter(|_| out.legal_hold));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::v1::{ObjectContent, ObjectPut, Origin, VersionRef};
    use crate::event::{EventDraft, RequestContext};

    fn event(sequence: u64, actor: &str, payload: Payload) -> Event {
        let draft = EventDraft { payload, actor: actor.to_owned(), context: RequestContext::default() };
        Event::seal(draft, sequence, i64::try_from(sequence).unwrap() * 1000, [0; 32]).0
    }

    fn version(id: &str) -> VersionRef {
        VersionRef { bucket: "b".into(), key: "k".into(), version_id: id.into() }
    }

    fn put(id: &str, retention: Option<Retention>) -> Payload {
        Payload::ObjectPut(ObjectPut {
            bucket: "b".into(),
            key: "k".into(),
            version_id: id.into(),
            content: ObjectContent::default(),
            origin: Origin::Put,
            retention,
            legal_hold: false,
        })
    }

    #[test]
    fn a_locked_noncurrent_version_exists_because_of_its_retention() {
        let lock = Retention { mode: LockMode::Compliance, retain_until: 50_000 };
        let events = [
            event(1, "ci", put("v1", Some(lock))),
            event(2, "ci", Payload::DeleteMarkerCreated(version("m"))),
            event(3, "ci", put("v2", None)),
        ];
        let why = explain(&events, Some("v1"), 10_000).unwrap();
        assert_eq!(why.fate, Fate::Noncurrent);
        assert_eq!(why.reasons.len(), 1);
        assert_eq!(why.reasons[0].sequence, 1);
        assert_eq!(why.retention, Some(lock));
        // After the retention date nothing protects it.
        assert!(explain(&events, Some("v1"), 60_000).unwrap().reasons.is_empty());
        // Without a version id, the newest version is explained.
        assert_eq!(explain(&events, None, 0).unwrap().version_id.as_deref(), Some("v2"));
    }

    #[test]
    fn a_deletion_names_the_bypass_that_allowed_it() {
        let lock = Retention { mode: LockMode::Governance, retain_until: 50_000 };
        let events = [
            event(1, "ci", put("v1", Some(lock))),
            event(
                2,
                "officer",
                Payload::RetentionBypassed(RetentionBypassed {
                    version: version("v1"),
                    retention: lock,
                    action: crate::event::v1::BypassedFor::Delete,
                }),
            ),
            event(
                3,
                "officer",
                Payload::ObjectDeleted(ObjectDeleted { version: version("v1"), bypass_governance: true }),
            ),
        ];
        let why = explain(&events, Some("v1"), 10_000).unwrap();
        assert_eq!(why.fate, Fate::Deleted);
        assert_eq!(why.reasons.iter().map(|s| s.sequence).collect::<Vec<_>>(), [2, 3]);
        assert_eq!(why.reasons[0].actor, "officer");
        assert_eq!(explain(&events, Some("nope"), 0).unwrap().fate, Fate::Unknown);
    }
}
