//! The periodic check of the views against the log: at start and then every
//! `registry.views_check_interval_seconds` (default daily) a snapshot of the registry is
//! replayed and compared with the stored views, and every event is checked against the rules
//! in force at its sequence ([`registry::audit`], as `verify` does). The gateway serves from
//! the views (Object Lock is enforced from them), so views edited behind the log's back, or
//! an event appended on the strength of such an edit, fail `/_ready` until a later check
//! passes. The gateway keeps serving: the finding is the operator's to act on.
//!
//! The first check runs at start, in the background: views edited while the gateway was
//! stopped are the likeliest edit, and a gateway restarted more often than the interval (a
//! daily deploy under the daily default) would otherwise never check at all.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;

use super::Findings;

/// The running check; dropping it stops the task.
#[derive(Debug)]
pub struct ViewsCheck(Option<JoinHandle<()>>);

impl Drop for ViewsCheck {
    fn drop(&mut self) {
        if let Some(task) = self.0.take() {
            task.abort();
        }
    }
}

/// Starts the check of the registry at `registry_path` now and every `interval_seconds` after
/// (none when 0); it reports to `findings`.
#[must_use]
pub fn spawn(registry_path: PathBuf, interval_seconds: u64, findings: Arc<Findings>) -> ViewsCheck {
    if interval_seconds == 0 {
        return ViewsCheck(None);
    }
    let interval = Duration::from_secs(interval_seconds);
    ViewsCheck(Some(tokio::spawn(async move {
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            let path = registry_path.clone();
            match tokio::task::spawn_blocking(move || check(&path)).await {
                Ok(Ok(problems)) => {
                    if problems.is_empty() {
                        tracing::info!("views check: the views match the log and the log keeps its rules");
                    } else {
                        tracing::error!(problems = %problems.join("; "), "views check failed; /_ready fails until it passes");
                    }
                    findings.set(problems);
                }
                Ok(Err(error)) => tracing::warn!(error = %format!("{error:#}"), "views check could not run"),
                Err(error) => tracing::warn!(%error, "views check did not finish"),
            }
        }
    })))
}

/// One check; returns its findings.
fn check(registry_path: &std::path::Path) -> anyhow::Result<Vec<String>> {
    use anyhow::Context as _;
    let conn = registry::sqlite::open_read_only(registry_path)?;
    let scratch = tempfile::Builder::new().prefix("artifact-store-views-check-").tempdir().context("scratch folder")?;
    Ok(registry::audit::audit_views(&conn, scratch.path(), |_| {})?.problems())
}
