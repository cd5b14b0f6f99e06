use super::*;
use crate::event::v1::{LockMode, MultipartCreated, ObjectContent, Retention};

/// 2026-01-01T10:00:00Z.
const T0: i64 = 1_767_261_600_000;

fn version(key: &str, id: &str, created_at: i64, is_latest: bool) -> ObjectVersion {
    ObjectVersion {
        bucket: "b".into(),
        key: key.into(),
        version_id: id.into(),
        sequence: 0,
        created_at,
        is_latest,
        is_delete_marker: false,
        content: ObjectContent { size: 100, ..ObjectContent::default() },
        origin: None,
        actor: "test".into(),
        retention: None,
        legal_hold: false,
    }
}

fn marker(key: &str, id: &str, created_at: i64, is_latest: bool) -> ObjectVersion {
    ObjectVersion {
        is_delete_marker: true,
        content: ObjectContent::default(),
        ..version(key, id, created_at, is_latest)
    }
}

fn rule(id: &str) -> Rule {
    Rule {
        id: id.into(),
        enabled: true,
        filter: Filter::default(),
        expiration: None,
        noncurrent_version_expiration: None,
        abort_incomplete_multipart_upload_days: None,
    }
}

fn expire_after(days: u32) -> Rule {
    Rule { expiration: Some(Expiration { days: Some(days), ..Expiration::default() }), ..rule("expire") }
}

fn bucket(rules: &[Rule], versioning: Option<VersioningStatus>) -> BucketRules<'_> {
    BucketRules { name: "b", rules, versioning }
}

#[test]
fn days_round_up_to_the_next_midnight_utc() {
    // 10:00 on Jan 1st plus one day is 10:00 on Jan 2nd: due at midnight starting Jan 3rd.
    let jan_3 = 1_767_398_400_000;
    assert_eq!(after_days(T0, 1, DAY_MS), jan_3);
    assert_eq!(round_up(jan_3, DAY_MS), jan_3);
    assert_eq!(round_up(7, 5), 10);
}

#[test]
fn expiration_deletes_in_an_unversioned_bucket_and_hides_in_a_versioned_one() {
    let rules = [expire_after(1)];
    let versions = [version("k", "null", T0, true)];
    let due = after_days(T0, 1, DAY_MS);
    assert!(plan(bucket(&rules, None), &versions, &[], due - 1, DAY_MS).actions.is_empty());
    let unversioned = plan(bucket(&rules, None), &versions, &[], due, DAY_MS);
    assert_eq!(unversioned.actions[0].effect, Effect::DeleteVersion { version_id: "null".into() });
    assert_eq!(unversioned.actions[0].due, due);
    let versioned = plan(bucket(&rules, Some(VersioningStatus::Enabled)), &versions, &[], due, DAY_MS);
    assert_eq!(versioned.actions[0].effect, Effect::AddDeleteMarker { version_id: "null".into() });
}

#[test]
fn a_version_under_retention_or_legal_hold_is_held_never_removed() {
    let rules = [expire_after(1)];
    let due = after_days(T0, 1, DAY_MS);
    let mut locked = version("k", "null", T0, true);
    locked.retention = Some(Retention { mode: LockMode::Compliance, retain_until: due + 1 });
    let p = plan(bucket(&rules, None), std::slice::from_ref(&locked), &[], due, DAY_MS);
    assert!(p.actions.is_empty());
    assert_eq!(p.held.len(), 1);
    // Once retention has passed, it goes.
    assert_eq!(plan(bucket(&rules, None), &[locked], &[], due + 1, DAY_MS).actions.len(), 1);
    let mut held = version("k", "null", T0, true);
    held.legal_hold = true;
    assert!(plan(bucket(&rules, None), &[held], &[], due * 2, DAY_MS).actions.is_empty());
}

#[test]
fn noncurrent_versions_expire_after_they_stop_being_current_keeping_the_newest() {
    let nve = Rule {
        noncurrent_version_expiration: Some(NoncurrentExpiration {
            noncurrent_days: 1,
            newer_noncurrent_versions: Some(1),
        }),
        ..rule("nve")
    };
    let versions =
        [version("k", "v3", T0 + 2000, true), version("k", "v2", T0 + 1000, false), version("k", "v1", T0, false)];
    let rules = [nve];
    let at = after_days(T0 + 2000, 1, DAY_MS);
    let p = plan(bucket(&rules, Some(VersioningStatus::Enabled)), &versions, &[], at, DAY_MS);
    // v2 is the newest noncurrent version and is kept; v1 goes.
    assert_eq!(p.actions.len(), 1);
    assert_eq!(p.actions[0].effect, Effect::DeleteVersion { version_id: "v1".into() });
    assert_eq!(p.actions[0].kind, ActionKind::NoncurrentVersionExpiration);
}

#[test]
fn a_lone_delete_marker_is_removed_only_when_asked_and_tag_filters_skip_markers() {
    let eodm = Rule {
        expiration: Some(Expiration { expired_object_delete_marker: true, ..Expiration::default() }),
        ..rule("eodm")
    };
    let rules = [eodm.clone()];
    let versioned = bucket(&rules, Some(VersioningStatus::Enabled));
    let lone = [marker("k", "m", T0, true)];
    assert_eq!(plan(versioned, &lone, &[], T0, DAY_MS).actions[0].kind, ActionKind::ExpiredObjectDeleteMarker);
    let not_lone = [marker("k", "m", T0, true), version("k", "v", T0 - 1, false)];
    assert!(plan(versioned, &not_lone, &[], T0, DAY_MS).actions.is_empty());
    let mut tagged = eodm;
    tagged.filter.tags.insert("t".into(), "1".into());
    let rules = [tagged];
    assert!(plan(bucket(&rules, Some(VersioningStatus::Enabled)), &lone, &[], T0, DAY_MS).actions.is_empty());
}

/// S3 cleans expired delete markers up for a rule with `Days` once they are old enough,
/// without `ExpiredObjectDeleteMarker` (which cannot be set beside `Days`): such a rule, with
/// a noncurrent expiration, empties a versioned bucket.
#[test]
fn a_lone_delete_marker_expires_under_days_once_it_is_old_enough() {
    let rules = [expire_after(1)];
    let versioned = bucket(&rules, Some(VersioningStatus::Enabled));
    let lone = [marker("k", "m", T0, true)];
    let due = after_days(T0, 1, DAY_MS);
    assert!(plan(versioned, &lone, &[], due - 1, DAY_MS).actions.is_empty(), "not yet old enough");
    let p = plan(versioned, &lone, &[], due, DAY_MS);
    assert_eq!(p.actions[0].kind, ActionKind::ExpiredObjectDeleteMarker);
    assert_eq!(p.actions[0].effect, Effect::DeleteVersion { version_id: "m".into() });
    assert_eq!(p.actions[0].due, due);
    let not_lone = [marker("k", "m", T0, true), version("k", "v", T0 - 1, false)];
    assert!(plan(versioned, &not_lone, &[], due, DAY_MS).actions.is_empty(), "a marker over a version stays");
}

#[test]
fn filters_match_prefix_tags_and_sizes() {
    let mut r = expire_after(1);
    r.filter = Filter {
        prefix: "tmp/".into(),
        tags: [("kind".to_owned(), "scratch".to_owned())].into(),
        object_size_greater_than: Some(10),
        object_size_less_than: Some(1000),
        legacy_prefix: false,
    };
    let mut v = version("tmp/a", "null", T0, true);
    assert!(!r.filter.matches(&v), "untagged");
    v.content.tags.insert("kind".into(), "scratch".into());
    assert!(r.filter.matches(&v));
    v.content.size = 1000;
    assert!(!r.filter.matches(&v), "not strictly smaller");
    v.content.size = 100;
    v.key = "keep/a".into();
    assert!(!r.filter.matches(&v), "prefix");
}

#[test]
fn incomplete_uploads_are_aborted_after_their_days() {
    let abort = Rule { abort_incomplete_multipart_upload_days: Some(2), ..rule("abort") };
    let upload = Upload {
        created: MultipartCreated {
            acl: Vec::new(),
            owner: None,
            bucket: "b".into(),
            key: "k".into(),
            upload_id: "u".into(),
            template: ObjectContent::default(),
            checksum_algorithm: None,
            retention: None,
            legal_hold: false,
            store_upload: None,
        },
        created_at: T0,
        initiator: "test".into(),
    };
    let rules = [abort];
    let due = after_days(T0, 2, DAY_MS);
    assert!(plan(bucket(&rules, None), &[], std::slice::from_ref(&upload), due - 1, DAY_MS).actions.is_empty());
    let p = plan(bucket(&rules, None), &[], &[upload], due, DAY_MS);
    assert_eq!(p.actions[0].effect, Effect::AbortUpload { upload_id: "u".into() });
}

#[test]
fn disabled_rules_do_nothing_and_expiration_reports_the_earliest_rule() {
    let mut off = expire_after(1);
    off.enabled = false;
    let v = version("k", "null", T0, true);
    assert!(
        plan(bucket(std::slice::from_ref(&off), None), std::slice::from_ref(&v), &[], T0 * 2, DAY_MS)
            .actions
            .is_empty()
    );
    let mut late = expire_after(5);
    late.id = "late".into();
    let early = expire_after(2);
    let (due, id) = expiration_of(&[late, early, off], &v, DAY_MS).unwrap();
    assert_eq!((due, id.as_str()), (after_days(T0, 2, DAY_MS), "expire"));
}

#[test]
fn day_counts_at_the_extremes_saturate_issue_16() {
    let far = after_days(T0, u32::MAX, DAY_MS);
    assert!(far > T0 && far.rem_euclid(DAY_MS) == 0);
    assert_eq!(after_days(i64::MAX, u32::MAX, i64::MAX), i64::MAX);
    assert_eq!(after_days(T0, u32::MAX, i64::MAX), i64::MAX);
    assert_eq!(after_days(i64::MIN, 0, DAY_MS).rem_euclid(DAY_MS), 0);
    assert_eq!(round_up(i64::MAX, DAY_MS), i64::MAX);
    assert_eq!(round_up(5, 0), 5);
    assert_eq!(round_up(5, i64::MIN), 5);
    let v = version("k", "v1", T0, true);
    let (due, _) = expiration_of(&[expire_after(u32::MAX)], &v, DAY_MS).unwrap();
    assert_eq!(due, far);
    let p = plan(bucket(&[expire_after(u32::MAX)], None), std::slice::from_ref(&v), &[], T0 + 1000 * DAY_MS, DAY_MS);
    assert!(p.actions.is_empty());
    let p = plan(bucket(&[expire_after(1)], None), std::slice::from_ref(&v), &[], i64::MAX, DAY_MS);
    assert_eq!(p.actions.len(), 1);
}
