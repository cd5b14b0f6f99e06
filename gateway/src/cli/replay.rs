//! `artifact-store replay`: rebuilds every view from the event log.
//!
//! The chain is verified first: views are not rebuilt from a log that was changed behind the
//! registry's back (that is `verify`'s finding to act on, exit code 1). Every event is checked
//! against the rules in force at its sequence as it is applied ([`registry::rules`]); an event
//! they forbid is applied all the same (the views show what the log holds), named, and the
//! exit code is 1.
//!
//! The rebuild is one `IMMEDIATE` transaction ([`registry::log::replay_with_progress`]), so it
//! is safe beside a serving gateway: readers keep seeing the old views until it commits, and
//! the gateway's writes wait for it. They wait up to SQLite's busy timeout (10 s) and fail
//! after that, so replay a large log while the gateway is stopped. A serving gateway keeps
//! bucket rows, latest versions and bucket grants in memory until one of its commits changes
//! them, and a replay appends no event: after a replay that repaired the views, restart it.

use anyhow::Context as _;
use registry::log::{self, ChainHead};
use registry::rules::Violation;
use registry::sqlite;
use serde::Serialize;

use super::progress::{self, Unit};
use super::{Outcome, existing_registry, print_line};
use crate::config::Config;

/// How a replay ended.
enum Replayed {
    /// The views were rebuilt.
    Rebuilt(log::Replayed),
    /// The chain does not verify from this sequence on; nothing was changed.
    ChainBroken(u64),
}

#[derive(Debug, Serialize)]
struct Report {
    /// The last event applied (0 for an empty log).
    head_sequence: u64,
    /// The first event the rules in force at its sequence forbid.
    first_violation: Option<Violation>,
    /// How many events break a rule.
    violations: u64,
}

/// Verifies the chain, rebuilds the views and prints the head sequence.
///
/// # Errors
///
/// No registry, the write lock not obtained in time, or a payload that does not parse.
pub async fn run(config: &Config, json: bool) -> anyhow::Result<Outcome> {
    let path = existing_registry(config).await?;
    let replayed = tokio::task::spawn_blocking(move || -> anyhow::Result<Replayed> {
        let mut conn = sqlite::open_offline(&path).with_context(|| format!("cannot open {}", path.display()))?;
        let head = ChainHead::load(&conn)?;

        let bar = progress::bar("chain", head.sequence, Unit::Events);
        let verified = log::verify_with_progress(&conn, |sequence| bar.set_position(sequence))?;
        bar.finish_and_clear();
        if let Some(sequence) = verified.first_mismatch {
            return Ok(Replayed::ChainBroken(sequence));
        }

        let bar = progress::bar("replay", head.sequence, Unit::Events);
        let applied = log::replay_with_progress(&mut conn, |sequence| bar.set_position(sequence))
            .context("replay failed; the views are unchanged")?;
        bar.finish_and_clear();
        Ok(Replayed::Rebuilt(applied))
    })
    .await
    .context("replay")??;

    let mut out = std::io::stdout().lock();
    match replayed {
        Replayed::Rebuilt(replayed) => {
            let report = Report {
                head_sequence: replayed.last,
                first_violation: replayed.first_violation,
                violations: replayed.violations,
            };
            if json {
                print_line(&mut out, &serde_json::to_string(&report)?)?;
            } else {
                print_line(&mut out, &format!("views rebuilt from the log; head sequence {}", report.head_sequence))?;
                if let Some(violation) = &report.first_violation {
                    print_line(
                        &mut out,
                        &format!("FAILED rules: {violation} ({} event(s) break a rule)", report.violations),
                    )?;
                }
            }
            Ok(if report.first_violation.is_none() { Outcome::Ok } else { Outcome::CheckFailed })
        }
        Replayed::ChainBroken(sequence) => {
            eprintln!(
                "error: the event chain is broken at event {sequence}; not rebuilding views from it \
                 (run `artifact-store verify`)"
            );
            Ok(Outcome::CheckFailed)
        }
    }
}
