//! Object Lock: the bucket's lock configuration (default retention), and per-version
//! retention and legal hold. The rules (who may shorten, lift or bypass what) are the
//! registry's; this file parses the documents and shapes the answers, and mirrors the locks
//! onto the blobs of stores that hold their own (`protect_blobs`).

use std::time::{Duration, UNIX_EPOCH};

use registry::commands::VersionRecorded;
use registry::event::v1::{DefaultRetention, LockMode, ObjectLockSet, Payload, Retention, VersionRef};
use registry::queries::ObjectVersion;
use s3s::dto::*;
use s3s::{S3Request, S3Response};

use super::bucket::require_bucket;
use super::error::{Refusal, Result};
use super::lookup::{OnDeleteMarker, named_version};
use super::{Gateway, caller, wire};
use crate::backend::{BlobId, BlobLock, RetentionMode};
use crate::clock;

/// The mode as S3 spells it: upper case only; anything else does not validate.
fn mode(mode: Option<&ObjectLockRetentionMode>) -> Result<LockMode> {
    match mode.map(ObjectLockRetentionMode::as_str) {
        Some(ObjectLockRetentionMode::GOVERNANCE) => Ok(LockMode::Governance),
        Some(ObjectLockRetentionMode::COMPLIANCE) => Ok(LockMode::Compliance),
        _ => Err(Refusal::MalformedXml("unknown Object Lock mode").into()),
    }
}

fn mode_name(mode: LockMode) -> ObjectLockRetentionMode {
    ObjectLockRetentionMode::from(
        match mode {
            LockMode::Governance => ObjectLockRetentionMode::GOVERNANCE,
            LockMode::Compliance => ObjectLockRetentionMode::COMPLIANCE,
        }
        .to_owned(),
    )
}

/// The longest default retention AWS accepts: 100 years, in days or in years.
const MAX_RETENTION_DAYS: u32 = 36_500;
const MAX_RETENTION_YEARS: u32 = 100;

/// Validates a lock configuration document as AWS does: `ObjectLockEnabled` must be
/// `Enabled`; a default retention names a mode and exactly one of Days and Years, positive
/// and at most 100 years.
fn default_retention(config: Option<ObjectLockConfiguration>) -> Result<Option<DefaultRetention>> {
    let config = config.ok_or(Refusal::MalformedXml("missing ObjectLockConfiguration"))?;
    if config.object_lock_enabled.as_ref().map(ObjectLockEnabled::as_str) != Some(ObjectLockEnabled::ENABLED) {
        return Err(Refusal::MalformedXml("ObjectLockEnabled must be Enabled").into());
    }
    let Some(default) = config.rule.and_then(|rule| rule.default_retention) else {
        return Ok(None);
    };
    let mode = mode(default.mode.as_ref())?;
    let period = |n: i32, max: u32| match u32::try_from(n) {
        Ok(n) if n > max => Err(Refusal::RetentionPeriodTooLarge),
        Ok(n) if n > 0 => Ok(n),
        _ => Err(Refusal::InvalidRetentionPeriod),
    };
    let (days, years) = match (default.days, default.years) {
        (Some(days), None) => (Some(period(days, MAX_RETENTION_DAYS)?), None),
        (None, Some(years)) => (None, Some(period(years, MAX_RETENTION_YEARS)?)),
        _ => return Err(Refusal::MalformedXml("exactly one of Days and Years").into()),
    };
    Ok(Some(DefaultRetention { mode, days, years }))
}

pub(super) async fn put_object_lock_configuration(
    gw: &Gateway,
    req: S3Request<PutObjectLockConfigurationInput>,
) -> Result<S3Response<PutObjectLockConfigurationOutput>> {
    let bucket = req.input.bucket.clone();
    let default_retention = default_retention(req.input.object_lock_configuration.clone())?;
    gw.registry.set_object_lock(caller(&req), ObjectLockSet { bucket, default_retention }).await?;
    Ok(S3Response::new(PutObjectLockConfigurationOutput::default()))
}

pub(super) async fn get_object_lock_configuration(
    gw: &Gateway,
    req: S3Request<GetObjectLockConfigurationInput>,
) -> Result<S3Response<GetObjectLockConfigurationOutput>> {
    let bucket = require_bucket(gw, &req.input.bucket).await?;
    if !bucket.object_lock_enabled {
        return Err(Refusal::NoObjectLockConfiguration.into());
    }
    let rule = bucket.default_retention.as_ref().map(|d| ObjectLockRule {
        default_retention: Some(s3s::dto::DefaultRetention {
            mode: Some(mode_name(d.mode)),
            days: d.days.and_then(|n| i32::try_from(n).ok()),
            years: d.years.and_then(|n| i32::try_from(n).ok()),
        }),
    });
    Ok(S3Response::new(GetObjectLockConfigurationOutput {
        object_lock_configuration: Some(ObjectLockConfiguration {
            object_lock_enabled: Some(ObjectLockEnabled::from(ObjectLockEnabled::ENABLED.to_owned())),
            rule,
        }),
    }))
}

fn target(bucket: &str, key: &str, version_id: Option<&String>) -> (VersionRef, bool) {
    let version = VersionRef {
        bucket: bucket.to_owned(),
        key: key.to_owned(),
        version_id: version_id.cloned().unwrap_or_default(),
    };
    (version, version_id.is_some())
}

/// The version a retention or legal-hold read names, on a bucket that has Object Lock. A
/// delete marker named by id has no lock: 405 `MethodNotAllowed`, as a GET of it.
async fn lock_version(gw: &Gateway, bucket: &str, key: &str, version_id: Option<&str>) -> Result<ObjectVersion> {
    if !require_bucket(gw, bucket).await?.object_lock_enabled {
        return Err(registry::Error::ObjectLockNotEnabled { bucket: bucket.to_owned() }.into());
    }
    named_version(gw, bucket, key, version_id, OnDeleteMarker::LockRead).await
}

pub(super) async fn put_object_retention(
    gw: &Gateway,
    req: S3Request<PutObjectRetentionInput>,
) -> Result<S3Response<PutObjectRetentionOutput>> {
    let input = &req.input;
    // An empty Retention element lifts retention (GOVERNANCE only, with bypass).
    let requested = match input.retention.as_ref() {
        None => return Err(Refusal::MalformedXml("missing Retention").into()),
        Some(ObjectLockRetention { mode: None, retain_until_date: None }) => None,
        Some(ObjectLockRetention { mode: m, retain_until_date: Some(until) }) => {
            let retain_until = wire::millis(until);
            if retain_until <= clock::now_ms() {
                return Err(Refusal::RetainUntilInThePast.into());
            }
            Some(Retention { mode: mode(m.as_ref())?, retain_until })
        }
        Some(_) => return Err(Refusal::MalformedXml("Mode needs a RetainUntilDate").into()),
    };
    let bypass = gw.bypass_governance(&req, input.bypass_governance_retention);
    let (version, by_id) = target(&input.bucket, &input.key, input.version_id.as_ref());
    let event = gw.registry.set_retention(caller(&req), version, by_id, requested, bypass).await?;
    // A lifted or shortened retention leaves the mirrored one as it is: it only grows.
    if let (Some(_), Ok(Payload::RetentionSet(set))) = (requested, event.decode()) {
        protect_blobs(gw, set.version).await?;
    }
    Ok(S3Response::new(PutObjectRetentionOutput::default()))
}

pub(super) async fn get_object_retention(
    gw: &Gateway,
    req: S3Request<GetObjectRetentionInput>,
) -> Result<S3Response<GetObjectRetentionOutput>> {
    let input = &req.input;
    let version = lock_version(gw, &input.bucket, &input.key, input.version_id.as_deref()).await?;
    let retention = version.retention.ok_or(Refusal::NoObjectLockOnVersion)?;
    Ok(S3Response::new(GetObjectRetentionOutput {
        retention: Some(ObjectLockRetention {
            mode: Some(mode_name(retention.mode)),
            retain_until_date: Some(wire::timestamp(retention.retain_until)),
        }),
    }))
}

pub(super) async fn put_object_legal_hold(
    gw: &Gateway,
    req: S3Request<PutObjectLegalHoldInput>,
) -> Result<S3Response<PutObjectLegalHoldOutput>> {
    let input = &req.input;
    let status = input.legal_hold.as_ref().and_then(|h| h.status.as_ref()).map(ObjectLockLegalHoldStatus::as_str);
    let on = match status {
        Some(ObjectLockLegalHoldStatus::ON) => true,
        Some(ObjectLockLegalHoldStatus::OFF) => false,
        _ => return Err(Refusal::MalformedXml("LegalHold Status must be ON or OFF").into()),
    };
    let (version, by_id) = target(&input.bucket, &input.key, input.version_id.as_ref());
    let event = gw.registry.set_legal_hold(caller(&req), version, by_id, on).await?;
    if let Ok(Payload::LegalHoldSet(set)) = event.decode() {
        protect_blobs(gw, set.version).await?;
    }
    Ok(S3Response::new(PutObjectLegalHoldOutput::default()))
}

pub(super) async fn get_object_legal_hold(
    gw: &Gateway,
    req: S3Request<GetObjectLegalHoldInput>,
) -> Result<S3Response<GetObjectLegalHoldOutput>> {
    let input = &req.input;
    let version = lock_version(gw, &input.bucket, &input.key, input.version_id.as_deref()).await?;
    let status = if version.legal_hold { ObjectLockLegalHoldStatus::ON } else { ObjectLockLegalHoldStatus::OFF };
    Ok(S3Response::new(GetObjectLegalHoldOutput {
        legal_hold: Some(ObjectLockLegalHold { status: Some(ObjectLockLegalHoldStatus::from(status.to_owned())) }),
    }))
}

/// Mirrors the lock of a version just recorded (PUT, copy, multipart completion) onto its
/// blobs, when it has one.
pub(super) async fn protect_new_version(
    gw: &Gateway,
    bucket: &str,
    key: &str,
    recorded: &VersionRecorded,
    legal_hold: bool,
) -> Result<()> {
    if recorded.retention.is_none() && !legal_hold {
        return Ok(());
    }
    let version =
        VersionRef { bucket: bucket.to_owned(), key: key.to_owned(), version_id: recorded.version_id.clone() };
    protect_blobs(gw, version).await
}

/// Mirrors a version's retention and legal hold onto its blobs in a store that holds locks of
/// its own (`upstream.object_lock = mirror`). A blob may back several versions (copies, and
/// multipart parts): its retention only ever grows to the latest any of them asked for, and
/// it stays held while any of them holds it.
///
/// The version is recorded before its blobs are locked: when the store fails, the client is
/// told so, and repeating the retention or legal-hold request sets the lock again.
async fn protect_blobs(gw: &Gateway, version: VersionRef) -> Result<()> {
    if !gw.mirrors_locks() {
        return Ok(());
    }
    let (version, held) = gw
        .registry
        .read(move |conn| {
            let version = conn.version(&version.bucket, &version.key, &version.version_id)?;
            Ok((version, conn.versions_on_legal_hold()?))
        })
        .await?;
    // Deleted in the meantime: nothing left to protect.
    let Some(version) = version else { return Ok(()) };
    let retention = version.retention.map(|r| {
        let mode = match r.mode {
            LockMode::Governance => RetentionMode::Governance,
            LockMode::Compliance => RetentionMode::Compliance,
        };
        (mode, UNIX_EPOCH + Duration::from_millis(u64::try_from(r.retain_until).unwrap_or(0)))
    });
    let mut protected = std::collections::HashSet::new();
    for part in &version.content.parts {
        // Bytes kept in the registry have no upstream object; the gateway's own rules hold them.
        // The parts of an object completed upstream as one multipart upload share one blob.
        if registry::inline::is_locator(&part.blob) || !protected.insert(part.blob.as_str()) {
            continue;
        }
        let legal_hold = held.iter().any(|h| h.content.parts.iter().any(|p| p.blob == part.blob));
        let lock = BlobLock { retention, legal_hold };
        if let Err(err) = gw.blobs.protect(&BlobId::new(part.blob.clone()), &lock).await {
            tracing::error!(
                bucket = %version.bucket, key = %version.key, version_id = %version.version_id, blob = %part.blob,
                error = %crate::telemetry::error_chain(&err), "the version's lock could not be set on its upstream object"
            );
            return Err(err.into());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(mode: &str, days: Option<i32>, years: Option<i32>) -> Option<ObjectLockConfiguration> {
        Some(ObjectLockConfiguration {
            object_lock_enabled: Some(ObjectLockEnabled::from(ObjectLockEnabled::ENABLED.to_owned())),
            rule: Some(ObjectLockRule {
                default_retention: Some(s3s::dto::DefaultRetention {
                    mode: Some(ObjectLockRetentionMode::from(mode.to_owned())),
                    days,
                    years,
                }),
            }),
        })
    }

    fn refusal(result: Result<Option<DefaultRetention>>) -> String {
        match result {
            Err(super::super::Error::Refused(r)) => format!("{r:?}"),
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn default_retention_is_validated_as_aws_does() {
        let ok = default_retention(config("GOVERNANCE", Some(3), None)).unwrap().unwrap();
        assert_eq!((ok.mode, ok.days, ok.years), (LockMode::Governance, Some(3), None));
        assert!(refusal(default_retention(config("GOVERNANCE", Some(1), Some(1)))).starts_with("MalformedXml"));
        assert!(refusal(default_retention(config("governance", Some(1), None))).starts_with("MalformedXml"));
        assert!(refusal(default_retention(config("FOREVER", Some(1), None))).starts_with("MalformedXml"));
        assert_eq!(refusal(default_retention(config("COMPLIANCE", Some(0), None))), "InvalidRetentionPeriod");
        assert_eq!(refusal(default_retention(config("COMPLIANCE", None, Some(-1)))), "InvalidRetentionPeriod");
    }

    #[test]
    fn default_retention_over_100_years_is_refused_issue_16() {
        let ok = default_retention(config("COMPLIANCE", Some(36_500), None)).unwrap().unwrap();
        assert_eq!(ok.days, Some(36_500));
        let ok = default_retention(config("COMPLIANCE", None, Some(100))).unwrap().unwrap();
        assert_eq!(ok.years, Some(100));
        for (days, years) in [(Some(36_501), None), (Some(i32::MAX), None), (None, Some(101)), (None, Some(300_000))] {
            assert_eq!(refusal(default_retention(config("COMPLIANCE", days, years))), "RetentionPeriodTooLarge");
        }
    }
}
