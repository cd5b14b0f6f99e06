//! Bucket lifecycle: Put/Get/DeleteBucketLifecycleConfiguration, validated as AWS validates
//! them, and the `x-amz-expiration` header of GET and HEAD. The rules are evaluated by the
//! registry's pure plan (`registry::lifecycle`), which the sweeper (`crate::worker`) applies.

use registry::event::v1::{ObjectContent, ObjectPut, StringMap};
use registry::lifecycle::{self, Expiration, Filter, NoncurrentExpiration, Rule};
use registry::queries::{Bucket, ObjectVersion};
use s3s::dto::*;
use s3s::{S3Request, S3Response, s3_error};

use super::bucket::require_bucket;
use super::error::{Refusal, Result};
use super::{Gateway, caller, wire};
use crate::clock;

/// The longest rule ID AWS accepts, and the most rules in one configuration.
const MAX_ID_CHARS: usize = 255;
const MAX_RULES: usize = 1000;

fn malformed(why: &'static str) -> super::Error {
    Refusal::MalformedXml(why).into()
}

fn invalid(message: &str) -> super::Error {
    Refusal::InvalidLifecycleArgument(message.to_owned()).into()
}

fn positive(n: Option<i32>, message: &str) -> Result<Option<u32>> {
    n.map(|n| u32::try_from(n).ok().filter(|&n| n > 0).ok_or_else(|| invalid(message))).transpose()
}

fn tag(tag: &Tag) -> Result<(String, String)> {
    match (&tag.key, &tag.value) {
        (Some(k), Some(v)) => Ok((k.clone(), v.clone())),
        _ => Err(malformed("a Tag needs a Key and a Value")),
    }
}

fn size(n: Option<i64>) -> Result<Option<u64>> {
    n.map(|n| u64::try_from(n).map_err(|_| invalid("Object size must be a non-negative integer"))).transpose()
}

/// A rule's filter: the legacy top-level Prefix, or a Filter holding exactly one of Prefix,
/// Tag, a size bound or And (or nothing: every object). A rule with neither is malformed, as
/// on AWS, rather than read as applying to every object.
fn filter(rule: &LifecycleRule) -> Result<Filter> {
    let Some(f) = &rule.filter else {
        let Some(prefix) = &rule.prefix else {
            return Err(malformed("a rule needs a Filter or a Prefix"));
        };
        return Ok(Filter { prefix: prefix.clone(), legacy_prefix: true, ..Filter::default() });
    };
    if rule.prefix.is_some() {
        return Err(malformed("Prefix and Filter together"));
    }
    let given = [
        f.prefix.is_some(),
        f.tag.is_some(),
        f.object_size_greater_than.is_some(),
        f.object_size_less_than.is_some(),
        f.and.is_some(),
    ];
    if given.iter().filter(|&&g| g).count() > 1 {
        return Err(malformed("a Filter holds one condition; use And for several"));
    }
    let mut out = Filter {
        prefix: f.prefix.clone().unwrap_or_default(),
        tags: f.tag.as_ref().map(tag).transpose()?.into_iter().collect(),
        object_size_greater_than: size(f.object_size_greater_than)?,
        object_size_less_than: size(f.object_size_less_than)?,
        legacy_prefix: false,
    };
    if let Some(and) = &f.and {
        let mut tags = StringMap::new();
        for t in and.tags.iter().flatten() {
            let (k, v) = tag(t)?;
            if tags.insert(k, v).is_some() {
                return Err(invalid("Duplicate Tag Keys are not allowed."));
            }
        }
        out = Filter {
            prefix: and.prefix.clone().unwrap_or_default(),
            tags,
            object_size_greater_than: size(and.object_size_greater_than)?,
            object_size_less_than: size(and.object_size_less_than)?,
            legacy_prefix: false,
        };
    }
    if let (Some(greater), Some(less)) = (out.object_size_greater_than, out.object_size_less_than)
        && greater >= less
    {
        return Err(invalid("ObjectSizeGreaterThan must be less than ObjectSizeLessThan"));
    }
    Ok(out)
}

fn expiration(e: &LifecycleExpiration) -> Result<Expiration> {
    let marker = e.expired_object_delete_marker == Some(true);
    let given = usize::from(e.days.is_some())
        + usize::from(e.date.is_some())
        + usize::from(e.expired_object_delete_marker.is_some());
    if given != 1 {
        return Err(malformed("Expiration holds exactly one of Days, Date and ExpiredObjectDeleteMarker"));
    }
    let date = e.date.as_ref().map(wire::millis);
    if date.is_some_and(|d| d.rem_euclid(lifecycle::DAY_MS) != 0) {
        return Err(invalid("'Date' must be at midnight GMT"));
    }
    Ok(Expiration {
        days: positive(e.days, "'Days' for Expiration action must be a positive integer")?,
        date,
        expired_object_delete_marker: marker,
    })
}

/// Validates one rule (its ID already checked) into the registry's form.
fn rule(r: &LifecycleRule, id: String) -> Result<Rule> {
    let enabled = match r.status.as_str() {
        ExpirationStatus::ENABLED => true,
        ExpirationStatus::DISABLED => false,
        _ => return Err(malformed("Status must be Enabled or Disabled")),
    };
    // A transition is checked as S3 checks it (a bad one is a 400, as it would be on AWS)
    // before it is refused for wanting a storage class this gateway does not have.
    for transition in r.transitions.iter().flatten() {
        if transition.days.is_some() == transition.date.is_some() {
            return Err(malformed("Transition holds exactly one of Days and Date"));
        }
        if transition.date.as_ref().is_some_and(|d| wire::millis(d).rem_euclid(lifecycle::DAY_MS) != 0) {
            return Err(invalid("'Date' must be at midnight GMT"));
        }
        if transition.days.is_some_and(|d| d < 0) {
            return Err(invalid("'Days' in Transition action must be nonnegative"));
        }
    }
    if r.transitions.as_ref().is_some_and(|t| !t.is_empty())
        || r.noncurrent_version_transitions.as_ref().is_some_and(|t| !t.is_empty())
    {
        // One storage class: accepting a transition we would never perform misleads.
        return Err(s3_error!(NotImplemented, "Transitions are not supported: there is one storage class").into());
    }
    let filter = filter(r)?;
    let noncurrent = r
        .noncurrent_version_expiration
        .as_ref()
        .map(|n| -> Result<NoncurrentExpiration> {
            let days = positive(
                n.noncurrent_days,
                "'NoncurrentDays' for NoncurrentVersionExpiration action must be a positive integer",
            )?
            .ok_or_else(|| malformed("NoncurrentVersionExpiration needs NoncurrentDays"))?;
            let newer = n
                .newer_noncurrent_versions
                .map(|k| {
                    u32::try_from(k)
                        .ok()
                        .filter(|k| (1..=100).contains(k))
                        .ok_or_else(|| invalid("NewerNoncurrentVersions must be between 1 and 100"))
                })
                .transpose()?;
            Ok(NoncurrentExpiration { noncurrent_days: days, newer_noncurrent_versions: newer })
        })
        .transpose()?;
    let abort = r
        .abort_incomplete_multipart_upload
        .as_ref()
        .map(|a| {
            positive(
                a.days_after_initiation,
                "'DaysAfterInitiation' for AbortIncompleteMultipartUpload action must be a positive integer",
            )?
            .ok_or_else(|| malformed("AbortIncompleteMultipartUpload needs DaysAfterInitiation"))
        })
        .transpose()?;
    if abort.is_some() && !filter.tags.is_empty() {
        return Err(invalid("AbortIncompleteMultipartUpload cannot be specified with Tags."));
    }
    let expiration = r.expiration.as_ref().map(expiration).transpose()?;
    if expiration.as_ref().is_some_and(|e| e.expired_object_delete_marker) && !filter.tags.is_empty() {
        return Err(invalid("ExpiredObjectDeleteMarker cannot be specified with Tags."));
    }
    if expiration.is_none() && noncurrent.is_none() && abort.is_none() {
        return Err(malformed("a rule needs at least one action"));
    }
    Ok(Rule {
        id,
        enabled,
        filter,
        expiration,
        noncurrent_version_expiration: noncurrent,
        abort_incomplete_multipart_upload_days: abort,
    })
}

/// Validates a whole configuration: at least one rule, IDs of at most 255 characters and
/// unique (a rule without one gets a generated ID, as on AWS).
fn rules(config: Option<&BucketLifecycleConfiguration>) -> Result<Vec<Rule>> {
    let config = config.ok_or_else(|| malformed("missing LifecycleConfiguration"))?;
    if config.rules.is_empty() || config.rules.len() > MAX_RULES {
        return Err(malformed("a configuration holds 1 to 1000 rules"));
    }
    let mut out: Vec<Rule> = Vec::with_capacity(config.rules.len());
    for r in &config.rules {
        let id = r.id.clone().filter(|id| !id.is_empty()).unwrap_or_else(clock::new_id);
        if id.chars().count() > MAX_ID_CHARS {
            return Err(invalid("ID length should not exceed allowed limit of 255"));
        }
        if out.iter().any(|o| o.id == id) {
            return Err(invalid("Rule ID must be unique. Found same ID for more than one rule"));
        }
        out.push(rule(r, id)?);
    }
    Ok(out)
}

pub(super) async fn put_bucket_lifecycle_configuration(
    gw: &Gateway,
    req: S3Request<PutBucketLifecycleConfigurationInput>,
) -> Result<S3Response<PutBucketLifecycleConfigurationOutput>> {
    let rules = rules(req.input.lifecycle_configuration.as_ref())?;
    gw.registry.set_lifecycle(caller(&req), &req.input.bucket, rules).await?;
    Ok(S3Response::new(PutBucketLifecycleConfigurationOutput::default()))
}

pub(super) async fn get_bucket_lifecycle_configuration(
    gw: &Gateway,
    req: S3Request<GetBucketLifecycleConfigurationInput>,
) -> Result<S3Response<GetBucketLifecycleConfigurationOutput>> {
    let bucket = require_bucket(gw, &req.input.bucket).await?;
    let rules = lifecycle::rules_of(&bucket)?;
    if bucket.lifecycle.is_none() {
        return Err(Refusal::NoSuchLifecycleConfiguration.into());
    }
    Ok(S3Response::new(GetBucketLifecycleConfigurationOutput {
        rules: Some(rules.iter().map(wire_rule).collect()),
        ..Default::default()
    }))
}

pub(super) async fn delete_bucket_lifecycle(
    gw: &Gateway,
    req: S3Request<DeleteBucketLifecycleInput>,
) -> Result<S3Response<DeleteBucketLifecycleOutput>> {
    gw.registry.delete_lifecycle(caller(&req), &req.input.bucket).await?;
    Ok(S3Response::new(DeleteBucketLifecycleOutput {}))
}

fn wire_tag((key, value): (&String, &String)) -> Tag {
    Tag { key: Some(key.clone()), value: Some(value.clone()) }
}

/// A stored filter in the shape clients expect back: one condition alone, several in And.
fn wire_filter(f: &Filter) -> LifecycleRuleFilter {
    let sizes = (
        f.object_size_greater_than.and_then(|n| i64::try_from(n).ok()),
        f.object_size_less_than.and_then(|n| i64::try_from(n).ok()),
    );
    let conditions = usize::from(!f.prefix.is_empty())
        + f.tags.len()
        + usize::from(sizes.0.is_some())
        + usize::from(sizes.1.is_some());
    if conditions <= 1 {
        return LifecycleRuleFilter {
            prefix: (!f.prefix.is_empty() || conditions == 0).then(|| f.prefix.clone()),
            tag: f.tags.iter().next().map(wire_tag),
            object_size_greater_than: sizes.0,
            object_size_less_than: sizes.1,
            and: None,
        };
    }
    LifecycleRuleFilter {
        and: Some(LifecycleRuleAndOperator {
            prefix: (!f.prefix.is_empty()).then(|| f.prefix.clone()),
            tags: (!f.tags.is_empty()).then(|| f.tags.iter().map(wire_tag).collect()),
            object_size_greater_than: sizes.0,
            object_size_less_than: sizes.1,
        }),
        ..Default::default()
    }
}

fn wire_rule(r: &Rule) -> LifecycleRule {
    let days = |n: u32| i32::try_from(n).ok();
    LifecycleRule {
        id: Some(r.id.clone()),
        status: ExpirationStatus::from(
            if r.enabled { ExpirationStatus::ENABLED } else { ExpirationStatus::DISABLED }.to_owned(),
        ),
        filter: (!r.filter.legacy_prefix).then(|| wire_filter(&r.filter)),
        expiration: r.expiration.as_ref().map(|e| LifecycleExpiration {
            days: e.days.and_then(days),
            date: e.date.map(wire::timestamp),
            expired_object_delete_marker: e.expired_object_delete_marker.then_some(true),
        }),
        noncurrent_version_expiration: r.noncurrent_version_expiration.as_ref().map(|n| NoncurrentVersionExpiration {
            noncurrent_days: days(n.noncurrent_days),
            newer_noncurrent_versions: n.newer_noncurrent_versions.and_then(days),
        }),
        abort_incomplete_multipart_upload: r
            .abort_incomplete_multipart_upload_days
            .map(|d| AbortIncompleteMultipartUpload { days_after_initiation: days(d) }),
        noncurrent_version_transitions: None,
        prefix: r.filter.legacy_prefix.then(|| r.filter.prefix.clone()),
        transitions: None,
    }
}

/// What the `x-amz-expiration` of a write is computed from: the new version's key, size and
/// tags, taken before the version goes to the registry (which gives it its time), and only
/// when the bucket has lifecycle rules.
pub(super) struct NewVersionExpiry(Option<ObjectVersion>);

impl NewVersionExpiry {
    pub(super) fn of(bucket: &Bucket, put: &ObjectPut) -> Self {
        Self(bucket.lifecycle.is_some().then(|| ObjectVersion {
            bucket: put.bucket.clone(),
            key: put.key.clone(),
            version_id: put.version_id.clone(),
            sequence: 0,
            created_at: 0,
            is_latest: true,
            is_delete_marker: false,
            content: ObjectContent {
                size: put.content.size,
                tags: put.content.tags.clone(),
                ..ObjectContent::default()
            },
            origin: None,
            actor: String::new(),
            retention: None,
            legal_hold: false,
        }))
    }

    /// The header of the version once recorded at `created_at`, as a read of it answers.
    pub(super) fn header(self, bucket: &Bucket, created_at: i64, day_ms: i64) -> Option<String> {
        let mut version = self.0?;
        version.created_at = created_at;
        expiration_header(bucket, &version, day_ms)
    }
}

/// `x-amz-abort-date` and `x-amz-abort-rule-id` of an upload of `key` initiated at
/// `initiated_at`: when a rule of the bucket aborts it, if one does.
pub(super) fn abort_headers(
    bucket: &Bucket,
    key: &str,
    initiated_at: i64,
    day_ms: i64,
) -> (Option<Timestamp>, Option<String>) {
    let Ok(rules) = lifecycle::rules_of(bucket) else { return (None, None) };
    match lifecycle::abort_of(&rules, key, initiated_at, day_ms) {
        Some((rule, due)) => (Some(wire::timestamp(due)), Some(rule.id.clone())),
        None => (None, None),
    }
}

/// `x-amz-expiration` for a current version: when the earliest matching Expiration rule
/// removes it, and which rule.
pub(super) fn expiration_header(bucket: &Bucket, version: &ObjectVersion, day_ms: i64) -> Option<String> {
    if !version.is_latest {
        return None;
    }
    let rules = lifecycle::rules_of(bucket).ok()?;
    let (due, rule_id) = lifecycle::expiration_of(&rules, version, day_ms)?;
    let mut date = Vec::new();
    wire::timestamp(due).format(TimestampFormat::HttpDate, &mut date).ok()?;
    Some(format!("expiry-date=\"{}\", rule-id=\"{rule_id}\"", String::from_utf8(date).ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(rules: Vec<LifecycleRule>) -> BucketLifecycleConfiguration {
        BucketLifecycleConfiguration { rules }
    }

    fn expire(id: &str, days: i32) -> LifecycleRule {
        LifecycleRule {
            id: Some(id.to_owned()),
            status: ExpirationStatus::from(ExpirationStatus::ENABLED.to_owned()),
            filter: Some(LifecycleRuleFilter { prefix: Some("tmp/".into()), ..Default::default() }),
            expiration: Some(LifecycleExpiration { days: Some(days), ..Default::default() }),
            abort_incomplete_multipart_upload: None,
            noncurrent_version_expiration: None,
            noncurrent_version_transitions: None,
            prefix: None,
            transitions: None,
        }
    }

    fn refusal(result: Result<Vec<Rule>>) -> String {
        match result {
            Err(super::super::Error::Refused(r)) => format!("{r:?}"),
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn ids_must_be_short_and_unique() {
        assert!(refusal(rules(Some(&config(vec![expire(&"x".repeat(256), 1)])))).contains("255"));
        assert!(refusal(rules(Some(&config(vec![expire("a", 1), expire("a", 2)])))).contains("unique"));
        assert_eq!(rules(Some(&config(vec![expire(&"x".repeat(255), 1)]))).unwrap().len(), 1);
    }

    #[test]
    fn malformed_configurations_are_refused() {
        assert!(refusal(rules(None)).starts_with("MalformedXml"));
        assert!(refusal(rules(Some(&config(vec![])))).starts_with("MalformedXml"));
        let mut both = expire("a", 1);
        both.expiration.as_mut().unwrap().expired_object_delete_marker = Some(true);
        assert!(refusal(rules(Some(&config(vec![both])))).starts_with("MalformedXml"));
        let mut no_action = expire("a", 1);
        no_action.expiration = None;
        assert!(refusal(rules(Some(&config(vec![no_action])))).starts_with("MalformedXml"));
        assert!(refusal(rules(Some(&config(vec![expire("a", 0)])))).starts_with("InvalidLifecycleArgument"));
        // Neither a Filter nor the legacy Prefix: AWS's schema wants one of them.
        let mut unfiltered = expire("a", 1);
        unfiltered.filter = None;
        assert!(refusal(rules(Some(&config(vec![unfiltered.clone()])))).starts_with("MalformedXml"));
        unfiltered.prefix = Some(String::new());
        assert_eq!(rules(Some(&config(vec![unfiltered]))).unwrap()[0].filter.prefix, "");
    }

    #[test]
    fn rules_round_trip_through_the_wire_shape() {
        let mut r = expire("a", 3);
        r.filter = Some(LifecycleRuleFilter {
            and: Some(LifecycleRuleAndOperator {
                prefix: Some("logs/".into()),
                tags: Some(vec![Tag { key: Some("k".into()), value: Some("v".into()) }]),
                object_size_greater_than: Some(10),
                object_size_less_than: None,
            }),
            ..Default::default()
        });
        let parsed = rules(Some(&config(vec![r]))).unwrap();
        let back = rules(Some(&config(parsed.iter().map(wire_rule).collect()))).unwrap();
        assert_eq!(parsed, back);
    }
}
