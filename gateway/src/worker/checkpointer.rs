//! Automatic signed checkpoints: a serving gateway signs its chain's head every
//! `registry.checkpoint_every_events` events or every `registry.checkpoint_interval_seconds`
//! seconds (whichever comes first, when the log has grown) and keeps each checkpoint in the
//! data folder and, when configured, a second folder ([`crate::checkpoints`]). Plain `verify`
//! then checks the log against the newest one, which catches a log truncated or rewritten with
//! recomputed hashes.
//!
//! A checkpoint is signed only for a log that extends the one before it: from the newest
//! checkpoint found at start (or from the first event) the chain is verified up to the head,
//! and each later checkpoint verifies only the events since the previous one. A log that does
//! not extend it (rewritten while the gateway was stopped) is not signed, and `/_ready`
//! fails: signing it would make the rewrite the newest truth. A failure later on (a folder
//! that cannot be written) fails `/_ready` too, until a later attempt succeeds.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use registry::Registry;
use registry::log::{self, ChainHead};
use tokio::task::JoinHandle;

use crate::checkpoints::{self, Checkpoint};
use crate::config::Config;
use crate::worker::Findings;

/// How often the worker looks at the log's head (an atomic read).
const POLL: Duration = Duration::from_secs(1);

/// How long the worker waits after a failed checkpoint before it tries again.
const RETRY: Duration = Duration::from_secs(60);

/// The running checkpointer; dropping it stops the task.
#[derive(Debug)]
pub struct Checkpointer(Option<JoinHandle<()>>);

impl Drop for Checkpointer {
    fn drop(&mut self) {
        if let Some(task) = self.0.take() {
            task.abort();
        }
    }
}

/// What the worker needs from the configuration.
struct Settings {
    every_events: u64,
    interval: Option<Duration>,
    key_path: PathBuf,
    folders: Vec<PathBuf>,
}

/// Starts the checkpointer (none when both `checkpoint_every_events` and
/// `checkpoint_interval_seconds` are 0); it reports a log it refuses to sign to `findings`.
#[must_use]
pub fn spawn(registry: Registry, config: &Config, findings: Arc<Findings>) -> Checkpointer {
    let every_events = config.registry.checkpoint_every_events;
    let interval_seconds = config.registry.checkpoint_interval_seconds;
    if every_events == 0 && interval_seconds == 0 {
        return Checkpointer(None);
    }
    let settings = Arc::new(Settings {
        every_events,
        interval: (interval_seconds > 0).then(|| Duration::from_secs(interval_seconds)),
        key_path: checkpoints::key_path(config),
        folders: checkpoints::folders(config),
    });
    Checkpointer(Some(tokio::spawn(async move {
        let path = registry.path().to_owned();
        let run = |job: Job| {
            let (settings, path) = (Arc::clone(&settings), path.clone());
            tokio::task::spawn_blocking(move || match job {
                Job::Start => start(&path, &settings),
                Job::Sign(last) => sign_next(&path, &settings, last),
            })
        };
        // The log is checked against the newest stored checkpoint before anything is signed.
        let mut last = match run(Job::Start).await {
            Ok(Ok(base)) => base,
            Ok(Err(error)) => {
                refuse(&findings, &error);
                return;
            }
            Err(error) => {
                tracing::warn!(%error, "the checkpoint task did not finish; no checkpoints will be signed");
                return;
            }
        };
        let mut last_time = Instant::now();
        // After a failure (a folder that cannot be written, a log that no longer extends the
        // last checkpoint), the next attempt waits a while rather than a second.
        let mut failed_at: Option<Instant> = None;
        let mut ticks = tokio::time::interval(POLL);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            if failed_at.is_some_and(|at| at.elapsed() < RETRY) {
                continue;
            }
            let committed = registry.committed_sequence();
            let by_count =
                settings.every_events > 0 && committed >= last.sequence.saturating_add(settings.every_events);
            let by_time = settings.interval.is_some_and(|interval| last_time.elapsed() >= interval);
            if committed <= last.sequence || !(by_count || by_time) {
                continue;
            }
            match run(Job::Sign(last)).await {
                Ok(Ok(head)) => {
                    last = head;
                    last_time = Instant::now();
                    if failed_at.take().is_some() {
                        findings.set(Vec::new());
                    }
                }
                Ok(Err(error)) => {
                    let problem = format!("checkpoints: {error:#}");
                    tracing::error!(%problem, "no checkpoint signed");
                    findings.set(vec![problem]);
                    failed_at = Some(Instant::now());
                }
                Err(error) => tracing::warn!(%error, "the checkpoint task did not finish"),
            }
        }
    })))
}

/// Work for the blocking pool.
enum Job {
    /// Find the newest stored checkpoint and verify that the log extends it.
    Start,
    /// Verify the events since this checkpoint and sign the head.
    Sign(ChainHead),
}

/// Stops signing (the log at start does not extend the newest checkpoint, or it cannot be
/// read) and fails `/_ready` until a restart.
fn refuse(findings: &Findings, error: &anyhow::Error) {
    let problem = format!("checkpoints: {error:#}");
    tracing::error!(%problem, "no checkpoints will be signed");
    findings.set(vec![problem]);
}

/// The newest stored checkpoint signed by the key (the first event's predecessor if there is
/// none), once the log is verified to extend it up to its head.
fn start(path: &Path, settings: &Settings) -> anyhow::Result<ChainHead> {
    let key = checkpoints::signing_key(&settings.key_path)?;
    let base = match checkpoints::newest(&settings.folders, &key.verifying_key())? {
        Some((file, checkpoint)) => {
            let mut hash = [0; 32];
            hex::decode_to_slice(&checkpoint.hash, &mut hash)
                .with_context(|| format!("{} holds a hash that is not hex", file.display()))?;
            ChainHead { sequence: checkpoint.sequence, hash }
        }
        None => ChainHead { sequence: 0, hash: registry::event::GENESIS_HASH },
    };
    verified_head(path, base)?;
    Ok(base)
}

/// Verifies the events after `last` and signs the head; returns it.
fn sign_next(path: &Path, settings: &Settings, last: ChainHead) -> anyhow::Result<ChainHead> {
    let key = checkpoints::signing_key(&settings.key_path)?;
    let head = verified_head(path, last)?;
    if head.sequence <= last.sequence {
        return Ok(last);
    }
    let created_at = i64::try_from(SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis())?;
    checkpoints::store(&Checkpoint::sign(head, created_at, &key), &settings.folders)?;
    tracing::info!(sequence = head.sequence, "checkpoint signed");
    Ok(head)
}

/// The head of the log, verified from `from` on.
fn verified_head(path: &Path, from: ChainHead) -> anyhow::Result<ChainHead> {
    let conn = registry::sqlite::open_read_only(path)?;
    let verified = log::verify_after(&conn, from, |_| {})?;
    if let Some(sequence) = verified.first_mismatch {
        anyhow::bail!(
            "the log does not extend the checkpoint of event {} (it differs at event {sequence}): it was \
             truncated or rewritten; run `artifact-store verify`",
            from.sequence
        );
    }
    Ok(verified.head)
}
