//! Lifecycle rules and the sweeper's plan, as a pure function of (rules, versions, uploads,
//! time): no I/O, no clock.
//!
//! The gateway's sweeper, the `retention plan` command and the command that applies a plan
//! inside the writer's transaction all call [`plan`], so what is printed is what is done.
//!
//! Times follow AWS: an action is due `days` after the object's creation (or, for a
//! noncurrent version, after it stopped being current), rounded up to the next midnight UTC.
//! With a shorter `day_ms` (tests, like Ceph's `rgw_lc_debug_interval`) "midnight" is the
//! next multiple of that length since the epoch.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::event::v1::{StringMap, VersioningStatus};
use crate::retention::{self, Protection};
use crate::state::{Bucket, NULL_VERSION, ObjectVersion, Upload};

/// One day in milliseconds, the real length of a lifecycle day.
pub const DAY_MS: i64 = 24 * 60 * 60 * 1000;

/// One lifecycle rule, as stored in `v1.bucket.lifecycle.set`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rule {
    /// The rule's ID (at most 255 characters, unique in the configuration).
    pub id: String,
    /// `Status` is `Enabled`.
    pub enabled: bool,
    /// Which objects it applies to.
    #[serde(default)]
    pub filter: Filter,
    /// Expiration of current versions (and of expired object delete markers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiration: Option<Expiration>,
    /// Expiration of noncurrent versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub noncurrent_version_expiration: Option<NoncurrentExpiration>,
    /// Days after initiation to abort an incomplete multipart upload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abort_incomplete_multipart_upload_days: Option<u32>,
}

/// A rule's filter; every condition given must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Filter {
    /// Keys that start with this.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub prefix: String,
    /// Objects carrying every one of these tags.
    #[serde(default, skip_serializing_if = "StringMap::is_empty")]
    pub tags: StringMap,
    /// Objects strictly larger than this many bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_size_greater_than: Option<u64>,
    /// Objects strictly smaller than this many bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_size_less_than: Option<u64>,
    /// Given as the rule's top-level `Prefix` (the form before `Filter`), and given back in
    /// that form, as S3 does. Absent from rules recorded in the `Filter` form.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub legacy_prefix: bool,
}

impl Filter {
    /// Whether the filter looks at anything a delete marker does not have (tags, size):
    /// such rules never apply to delete markers, as on AWS.
    fn needs_content(&self) -> bool {
        !self.tags.is_empty() || self.object_size_greater_than.is_some() || self.object_size_less_than.is_some()
    }

    fn matches(&self, version: &ObjectVersion) -> bool {
        if !version.key.starts_with(&self.prefix) {
            return false;
        }
        if version.is_delete_marker {
            return !self.needs_content();
        }
        let content = &version.content;
        self.tags.iter().all(|(k, v)| content.tags.get(k) == Some(v))
            && self.object_size_greater_than.is_none_or(|n| content.size > n)
            && self.object_size_less_than.is_none_or(|n| content.size < n)
    }
}

/// `Expiration`: exactly one of `days`, `date` or `expired_object_delete_marker`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Expiration {
    /// Days after creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub days: Option<u32>,
    /// A date (milliseconds since the epoch, midnight UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date: Option<i64>,
    /// Remove a delete marker once no version is left behind it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub expired_object_delete_marker: bool,
}

/// `NoncurrentVersionExpiration`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoncurrentExpiration {
    /// Days after a version became noncurrent.
    pub noncurrent_days: u32,
    /// Keep this many newest noncurrent versions whatever their age.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub newer_noncurrent_versions: Option<u32>,
}

/// Which part of a rule an action comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    /// `Expiration` (Days or Date) of a current version.
    Expiration,
    /// `Expiration` `ExpiredObjectDeleteMarker` of a lone delete marker.
    ExpiredObjectDeleteMarker,
    /// `NoncurrentVersionExpiration`.
    NoncurrentVersionExpiration,
    /// `AbortIncompleteMultipartUpload`.
    AbortIncompleteMultipartUpload,
}

impl ActionKind {
    /// The name used in events and CLI output.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            ActionKind::Expiration => "expiration",
            ActionKind::ExpiredObjectDeleteMarker => "expired_object_delete_marker",
            ActionKind::NoncurrentVersionExpiration => "noncurrent_version_expiration",
            ActionKind::AbortIncompleteMultipartUpload => "abort_incomplete_multipart_upload",
        }
    }
}

/// What an action does to the bucket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "effect", rename_all = "snake_case")]
pub enum Effect {
    /// A delete marker becomes the current version (versioned buckets); the version stays.
    AddDeleteMarker {
        /// The current version it hides.
        version_id: String,
    },
    /// The version (or delete marker) is removed for good.
    DeleteVersion {
        /// Its id.
        version_id: String,
    },
    /// The upload is aborted and its parts released.
    AbortUpload {
        /// Its id.
        upload_id: String,
    },
}

/// One thing the sweeper does (or would do, were the version not protected).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Action {
    /// Bucket.
    pub bucket: String,
    /// Key.
    pub key: String,
    /// The rule that asks for it.
    pub rule_id: String,
    /// Which part of the rule.
    pub kind: ActionKind,
    /// What it does.
    pub effect: Effect,
    /// When it became due, milliseconds since the epoch.
    pub due: i64,
}

/// What the sweeper does at a given time: the actions, and those held back because the
/// version they would remove is under retention or legal hold.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// Due and allowed.
    pub actions: Vec<Action>,
    /// Due, but the version is protected; nothing is done.
    pub held: Vec<Action>,
}

/// A bucket as the plan sees it.
#[derive(Debug, Clone, Copy)]
pub struct BucketRules<'a> {
    /// Name.
    pub name: &'a str,
    /// Its rules.
    pub rules: &'a [Rule],
    /// Its versioning state.
    pub versioning: Option<VersioningStatus>,
}

/// The rules of a bucket's stored lifecycle configuration (none when it has none).
///
/// # Errors
/// [`crate::Error::CorruptPayload`] when the stored rules do not parse.
pub fn rules_of(bucket: &Bucket) -> Result<Vec<Rule>> {
    match &bucket.lifecycle {
        None => Ok(Vec::new()),
        Some(value) => {
            serde_json::from_value(value.clone()).map_err(|source| Error::CorruptPayload { sequence: 0, source })
        }
    }
}

/// The first multiple of `day_ms` at or after `t`: AWS's "next midnight UTC".
#[must_use]
pub fn round_up(t: i64, day_ms: i64) -> i64 {
    let day = day_ms.max(1);
    t.div_euclid(day).saturating_add(i64::from(t.rem_euclid(day) != 0)).saturating_mul(day)
}

fn after_days(start: i64, days: u32, day_ms: i64) -> i64 {
    round_up(start.saturating_add(i64::from(days).saturating_mul(day_ms)), day_ms)
}

/// When the current version `version` expires under `rules`, and by which rule (the
/// earliest one): what `x-amz-expiration` reports.
#[must_use]
pub fn expiration_of(rules: &[Rule], version: &ObjectVersion, day_ms: i64) -> Option<(i64, String)> {
    if version.is_delete_marker {
        return None;
    }
    rules
        .iter()
        .filter(|r| r.enabled && r.filter.matches(version))
        .filter_map(|r| {
            let e = r.expiration.as_ref()?;
            let due = e.date.or_else(|| e.days.map(|d| after_days(version.created_at, d, day_ms)))?;
            Some((due, r.id.clone()))
        })
        .min()
}

/// When an upload of `key` initiated at `initiated_at` is aborted under `rules`, and by which
/// rule: the first enabled one, in configuration order, that aborts uploads of the key (what the
/// sweeper acts on, and what `x-amz-abort-date` and `x-amz-abort-rule-id` report). Such a rule
/// filters by prefix only, as on AWS: one with tags or sizes never applies to an upload.
#[must_use]
pub fn abort_of<'r>(rules: &'r [Rule], key: &str, initiated_at: i64, day_ms: i64) -> Option<(&'r Rule, i64)> {
    rules.iter().filter(|r| r.enabled).find_map(|r| {
        let days = r.abort_incomplete_multipart_upload_days?;
        let applies = key.starts_with(&r.filter.prefix) && !r.filter.needs_content();
        applies.then(|| (r, after_days(initiated_at, days, day_ms)))
    })
}

/// The sweeper's plan for one bucket at `now`.
///
/// `versions` are versions and delete markers of the bucket, whole keys grouped by key,
/// newest first within a key (a page of [`crate::queries::Reads::lifecycle_plan_page`]); `uploads`
/// its uploads in progress. Each version gets at most one action, from the first rule (in configuration
/// order) that asks for one. An action that would remove a version under retention or legal
/// hold at `now` goes to [`Plan::held`], never to [`Plan::actions`].
#[must_use]
pub fn plan(bucket: BucketRules<'_>, versions: &[ObjectVersion], uploads: &[Upload], now: i64, day_ms: i64) -> Plan {
    let mut plan = Plan::default();
    let rules: Vec<&Rule> = bucket.rules.iter().filter(|r| r.enabled).collect();
    if rules.is_empty() {
        return plan;
    }
    for key_versions in versions.chunk_by(|a, b| a.key == b.key) {
        plan_key(&mut plan, bucket, &rules, key_versions, now, day_ms);
    }
    for upload in uploads {
        let created = &upload.created;
        let due = abort_of(bucket.rules, &created.key, upload.created_at, day_ms);
        if let Some((rule, due)) = due.filter(|(_, due)| *due <= now) {
            plan.actions.push(Action {
                bucket: bucket.name.to_owned(),
                key: created.key.clone(),
                rule_id: rule.id.clone(),
                kind: ActionKind::AbortIncompleteMultipartUpload,
                effect: Effect::AbortUpload { upload_id: created.upload_id.clone() },
                due,
            });
        }
    }
    plan
}

/// The actions for one key's versions, newest first.
fn plan_key(
    plan: &mut Plan,
    bucket: BucketRules<'_>,
    rules: &[&Rule],
    versions: &[ObjectVersion],
    now: i64,
    day_ms: i64,
) {
    let action = |version: &ObjectVersion, rule: &Rule, kind, effect, due| Action {
        bucket: bucket.name.to_owned(),
        key: version.key.clone(),
        rule_id: rule.id.clone(),
        kind,
        effect,
        due,
    };
    let protected =
        |version: &ObjectVersion| retention::protection(version.retention, version.legal_hold, now) != Protection::None;
    let Some(current) = versions.first().filter(|v| v.is_latest) else { return };

    // The current version: Expiration (Days or Date), or a lone expired delete marker.
    let current_action = rules.iter().find_map(|rule| {
        let expiration = rule.expiration.as_ref().filter(|_| rule.filter.matches(current))?;
        if current.is_delete_marker {
            // A lone delete marker goes at once under ExpiredObjectDeleteMarker, and under Days
            // once it is as old as a version would be to expire: S3 cleans expired delete
            // markers up for a rule with Days, so that such a rule can empty a bucket.
            if versions.len() != 1 {
                return None;
            }
            let due = if expiration.expired_object_delete_marker {
                current.created_at
            } else {
                after_days(current.created_at, expiration.days?, day_ms)
            };
            return (due <= now).then(|| {
                let effect = Effect::DeleteVersion { version_id: current.version_id.clone() };
                action(current, rule, ActionKind::ExpiredObjectDeleteMarker, effect, due)
            });
        }
        let due = expiration.date.or_else(|| expiration.days.map(|d| after_days(current.created_at, d, day_ms)))?;
        (due <= now).then(|| {
            let effect = match bucket.versioning {
                None => Effect::DeleteVersion { version_id: current.version_id.clone() },
                Some(_) => Effect::AddDeleteMarker { version_id: current.version_id.clone() },
            };
            action(current, rule, ActionKind::Expiration, effect, due)
        })
    });
    if let Some(found) = current_action {
        // A marker hides a version without removing it, except in a suspended bucket, where
        // the null marker replaces a null version.
        let removed = match &found.effect {
            Effect::DeleteVersion { .. } => Some(current),
            Effect::AddDeleteMarker { .. } if bucket.versioning == Some(VersioningStatus::Suspended) => {
                versions.iter().find(|v| v.version_id == NULL_VERSION)
            }
            _ => None,
        };
        if removed.is_some_and(protected) { plan.held.push(found) } else { plan.actions.push(found) }
    }

    // Noncurrent versions: each became noncurrent when the next newer one was created.
    for (index, pair) in versions.windows(2).enumerate() {
        let (newer, version) = (&pair[0], &pair[1]);
        let found = rules.iter().find_map(|rule| {
            let nve = rule.noncurrent_version_expiration.as_ref().filter(|_| rule.filter.matches(version))?;
            // `index` noncurrent versions are newer than this one.
            if nve.newer_noncurrent_versions.is_some_and(|keep| index < usize::try_from(keep).unwrap_or(usize::MAX)) {
                return None;
            }
            let due = after_days(newer.created_at, nve.noncurrent_days, day_ms);
            (due <= now).then(|| {
                let effect = Effect::DeleteVersion { version_id: version.version_id.clone() };
                action(version, rule, ActionKind::NoncurrentVersionExpiration, effect, due)
            })
        });
        if let Some(found) = found {
            if protected(version) { plan.held.push(found) } else { plan.actions.push(found) }
        }
    }
}

#[cfg(test)]
mod tests;
