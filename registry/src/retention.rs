//! Object Lock rules as pure functions of (state, time): no I/O, no clock.
//!
//! The commands call these before appending an event, and property tests call them to
//! check that no sequence of operations removes a protected version.

use crate::event::v1::{DefaultRetention, LockMode, Retention};

const DAY_MS: i64 = 24 * 60 * 60 * 1000;

/// What protects a version from removal at a given time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protection {
    /// Nothing: the version may be deleted.
    None,
    /// GOVERNANCE retention in force: only a principal allowed to bypass may delete it.
    Governance,
    /// COMPLIANCE retention in force, or a legal hold: nobody may delete it.
    Absolute,
}

/// The protection of a version with `retention` and `legal_hold` at `now`.
#[must_use]
pub fn protection(retention: Option<Retention>, legal_hold: bool, now: i64) -> Protection {
    if legal_hold {
        return Protection::Absolute;
    }
    match retention {
        Some(r) if r.retain_until > now => match r.mode {
            LockMode::Compliance => Protection::Absolute,
            LockMode::Governance => Protection::Governance,
        },
        _ => Protection::None,
    }
}

/// Whether a version may be deleted for good by a request that does (or does not) bypass
/// governance retention with permission to do so.
#[must_use]
pub fn may_delete(retention: Option<Retention>, legal_hold: bool, now: i64, bypass_governance: bool) -> bool {
    match protection(retention, legal_hold, now) {
        Protection::None => true,
        Protection::Governance => bypass_governance,
        Protection::Absolute => false,
    }
}

/// Whether retention may change from `current` to `requested` at `now`.
///
/// Extending (same mode, later date) is always allowed. While COMPLIANCE is in force nothing
/// else is. While GOVERNANCE is in force, shortening, lifting or changing the mode needs a
/// permitted bypass. Expired retention may be replaced freely.
#[must_use]
pub fn may_change_retention(
    current: Option<Retention>,
    requested: Option<Retention>,
    now: i64,
    bypass_governance: bool,
) -> bool {
    let Some(current) = current.filter(|c| c.retain_until > now) else {
        return true;
    };
    let extends = requested.is_some_and(|r| r.mode == current.mode && r.retain_until >= current.retain_until);
    if extends {
        return true;
    }
    match current.mode {
        LockMode::Compliance => false,
        LockMode::Governance => bypass_governance,
    }
}

/// The retention a new version gets from its bucket's default at `now`. A period beyond the
/// range of times saturates at the last one (such periods are refused when configured; a log
/// written before that may still hold one): a retention that ends never.
#[must_use]
pub fn default_retention(default: &DefaultRetention, now: i64) -> Retention {
    let days = i64::from(default.days.unwrap_or(0)).saturating_add(365 * i64::from(default.years.unwrap_or(0)));
    Retention { mode: default.mode, retain_until: now.saturating_add(days.saturating_mul(DAY_MS)) }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000_000;

    fn lock(mode: LockMode, until: i64) -> Option<Retention> {
        Some(Retention { mode, retain_until: until })
    }

    #[test]
    fn compliance_blocks_deletion_until_it_expires_even_with_bypass() {
        assert!(!may_delete(lock(LockMode::Compliance, NOW + 1), false, NOW, true));
        assert!(may_delete(lock(LockMode::Compliance, NOW), false, NOW, false));
    }

    #[test]
    fn governance_yields_only_to_bypass() {
        assert!(!may_delete(lock(LockMode::Governance, NOW + 1), false, NOW, false));
        assert!(may_delete(lock(LockMode::Governance, NOW + 1), false, NOW, true));
    }

    #[test]
    fn legal_hold_blocks_deletion_regardless_of_retention() {
        assert!(!may_delete(None, true, NOW, true));
    }

    #[test]
    fn retention_can_always_be_extended_but_compliance_never_shortened() {
        let current = lock(LockMode::Compliance, NOW + 10);
        assert!(may_change_retention(current, lock(LockMode::Compliance, NOW + 20), NOW, false));
        assert!(!may_change_retention(current, lock(LockMode::Compliance, NOW + 5), NOW, true));
        assert!(!may_change_retention(current, lock(LockMode::Governance, NOW + 50), NOW, true));
        assert!(!may_change_retention(current, None, NOW, true));
    }

    #[test]
    fn governance_can_be_shortened_or_lifted_only_with_bypass() {
        let current = lock(LockMode::Governance, NOW + 10);
        assert!(!may_change_retention(current, lock(LockMode::Governance, NOW + 5), NOW, false));
        assert!(may_change_retention(current, lock(LockMode::Governance, NOW + 5), NOW, true));
        assert!(may_change_retention(current, None, NOW, true));
        assert!(may_change_retention(current, lock(LockMode::Compliance, NOW + 10), NOW, true));
    }

    #[test]
    fn default_retention_counts_days_and_years() {
        let days = DefaultRetention { mode: LockMode::Governance, days: Some(2), years: None };
        assert_eq!(default_retention(&days, NOW).retain_until, NOW + 2 * DAY_MS);
        let years = DefaultRetention { mode: LockMode::Compliance, days: None, years: Some(1) };
        assert_eq!(default_retention(&years, NOW).retain_until, NOW + 365 * DAY_MS);
    }

    #[test]
    fn default_retention_saturates_at_the_extremes_issue_16() {
        for (days, years) in [(Some(u32::MAX), None), (None, Some(u32::MAX)), (Some(u32::MAX), Some(u32::MAX))] {
            let default = DefaultRetention { mode: LockMode::Compliance, days, years };
            assert_eq!(default_retention(&default, i64::MAX).retain_until, i64::MAX);
            assert!(default_retention(&default, NOW).retain_until > NOW);
            assert!(default_retention(&default, i64::MIN).retain_until > i64::MIN);
        }
        assert!(!may_delete(lock(LockMode::Compliance, i64::MAX), false, i64::MAX - 1, true));
        assert!(may_change_retention(lock(LockMode::Governance, i64::MAX), None, i64::MAX, false));
    }
}
