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

/// A fresh, unguessable id for a version, a delete marker or an upload: 32 hex digits of
/// randomness, prefixed by the time so ids sort roughly by creation in listings and logs.
#[must_use]
pub fn new_id() -> String {
    let millis = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_millis();
    format!("{millis:012x}{:032x}", rand::random::<u128>())
}
