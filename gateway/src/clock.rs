//! The wall clock as the gateway reads it, and the ids it mints from it. Used by the S3
//! layer, the workers and the CLI alike, so it sits below all of them.

use std::time::{SystemTime, UNIX_EPOCH};

/// Wall-clock milliseconds, for validating dates clients send (the registry stamps events
/// with its own clock).
#[must_use]
pub fn now_ms() -> i64 {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
}

/// A time of the registry (milliseconds since the epoch) as RFC 3339 in UTC, with the
/// fraction of a second when there is one: `aws:CurrentTime`, IAM's dates.
#[must_use]
pub fn rfc3339(ms: i64) -> String {
    let time = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    time.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

/// A time of the registry as RFC 3339 in UTC to the second, for people (the CLI, the
/// console); the milliseconds as a number if it is out of range.
#[must_use]
pub fn rfc3339_seconds(ms: i64) -> String {
    u64::try_from(ms)
        .ok()
        .and_then(|ms| SystemTime::UNIX_EPOCH.checked_add(std::time::Duration::from_millis(ms)))
        .map_or_else(|| ms.to_string(), |t| humantime::format_rfc3339_seconds(t).to_string())
}

/// A fresh, unguessable id for a version, a delete marker or an upload: 32 hex digits of
/// randomness, prefixed by the time so ids sort roughly by creation in listings and logs.
#[must_use]
pub fn new_id() -> String {
    let millis = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_millis();
    format!("{millis:012x}{:032x}", rand::random::<u128>())
}

/// Whether `id` can name a version: `null`, or an id [`new_id`] could have made (44 lowercase
/// hex digits).
#[must_use]
pub fn is_version_id(id: &str) -> bool {
    id == "null" || (id.len() == 44 && id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
}
