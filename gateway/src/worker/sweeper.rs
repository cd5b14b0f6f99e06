//! The lifecycle sweeper: every `lifecycle.sweep_interval_seconds` it plans every bucket
//! with rules, a page of keys at a time ([`registry::queries::Reads::lifecycle_plan_page`], the pure
//! plan `retention plan` prints) and has the registry apply what is due, as the actor
//! `lifecycle`. The registry plans each key again inside its transaction before acting, so
//! nothing changed since the plan (a new legal hold, a new version) is acted on by mistake.

use std::time::Duration;

use registry::{Caller, Registry, queries};
use tokio::task::JoinHandle;

use crate::clock;
use crate::config::LifecycleConfig;

/// The actor recorded on the sweeper's events.
pub const ACTOR: &str = "lifecycle";

/// The running sweeper; dropping it stops the task.
#[derive(Debug)]
pub struct Sweeper(JoinHandle<()>);

impl Drop for Sweeper {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Starts the sweeper on the current Tokio runtime.
#[must_use]
pub fn spawn(registry: Registry, config: &LifecycleConfig) -> Sweeper {
    let day_ms = config.day_ms();
    let interval = Duration::from_secs(config.sweep_interval_seconds);
    Sweeper(tokio::spawn(async move {
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            // One sweeper at a time across gateways sharing a log: a second would only find
            // the same actions done.
            let _lease = match registry.try_lease("lifecycle").await {
                Ok(Some(lease)) => lease,
                Ok(None) => continue,
                Err(err) => {
                    tracing::error!(error = %err, "the lifecycle sweeper cannot take its lease");
                    continue;
                }
            };
            match sweep(&registry, day_ms).await {
                Ok(0) => {}
                Ok(applied) => tracing::info!(applied, "lifecycle sweep"),
                Err(registry::Error::WriterStopped) => break,
                Err(err) => tracing::error!(error = %err, "lifecycle sweep failed"),
            }
        }
    }))
}

/// One sweep at the wall clock's now: plans each bucket with rules a page of keys at a time
/// and applies what is due before reading the next page, so a sweep's memory does not grow
/// with the bucket. Returns how many actions were applied.
///
/// # Errors
/// Registry failures.
pub async fn sweep(registry: &Registry, day_ms: i64) -> registry::Result<usize> {
    let now = clock::now_ms();
    let mut applied = 0;
    for bucket in registry.read(|conn| conn.buckets()).await? {
        let mut after = String::new();
        loop {
            let (of, from) = (bucket.clone(), after.clone());
            let page = registry
                .read(move |conn| conn.lifecycle_plan_page(&of, &from, queries::PLAN_PAGE_VERSIONS, now, day_ms))
                .await?;
            if !page.plan.actions.is_empty() {
                let actions = page.plan.actions;
                let done = registry
                    .apply_lifecycle(Caller::system(ACTOR), &bucket.name, actions, day_ms, clock::new_id)
                    .await?;
                applied += done.len();
            }
            match page.next {
                Some(next) => after = next,
                None => break,
            }
        }
    }
    Ok(applied)
}
