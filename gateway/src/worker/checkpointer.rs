//! Automatic signed checkpoints: a serving gateway signs its chain's head every
//! `registry.checkpoint_every_events` events or once the oldest event no checkpoint covers is
//! `registry.checkpoint_interval_seconds` seconds old (whichever comes first) and keeps each checkpoint in the
//! data folder and, when configured, a second folder and an S3 bucket ([`crate::checkpoints`]). Plain `verify`
//! then checks the log against the newest one, which catches a log truncated or rewritten with
//! recomputed hashes.
//!
//! A checkpoint is signed only for a log that extends the one before it: from the newest
//! checkpoint found at start (or from the first event) the chain is verified up to the head,
//! and each later checkpoint verifies only the events since the previous one. A log that does
//! not extend it (rewritten while the gateway was stopped) is not signed, and `/_ready`
//! fails: signing it would make the rewrite the newest truth. A failure later on (a folder
//! that cannot be written, an upload refused) fails `/_ready` too, until a later attempt
//! succeeds; a checkpoint counts as made only once every place holds it, so the next attempt
//! signs the head again and stores it everywhere.
//!
//! A gateway that stops gracefully signs the events no checkpoint covers yet, after its last
//! write is committed ([`Checkpointer::finish`]): a stopped gateway's log is what someone with
//! the disk could edit unseen, and without this its newest events (up to an interval's worth)
//! would be covered by no signature until the next start.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use registry::Registry;
use registry::log::{self, ChainHead};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::checkpoints::s3::S3Location;
use crate::checkpoints::{self, Checkpoint};
use crate::config::Config;
use crate::worker::Findings;

/// How often the worker looks at the log's head (an atomic read).
const POLL: Duration = Duration::from_secs(1);

/// How long the worker waits after a failed checkpoint before it tries again.
const RETRY: Duration = Duration::from_secs(60);

/// How long a stopping gateway waits for its last checkpoint, which verifies the events since
/// the previous one (at most `checkpoint_every_events` of them, when that is set, or an
/// interval's worth): well under a second for 10,000. Past it the stop goes on without the
/// checkpoint (a verification already running on the blocking pool is left to the process's
/// exit).
const FINISH_TIMEOUT: Duration = Duration::from_secs(15);

/// The running checkpointer; dropping it stops the task, [`Checkpointer::finish`] has it sign
/// what is left first.
#[derive(Debug)]
pub struct Checkpointer {
    task: Option<JoinHandle<()>>,
    finish: Option<oneshot::Sender<()>>,
}

impl Checkpointer {
    fn off() -> Self {
        Self { task: None, finish: None }
    }

    /// Signs the events no checkpoint covers yet, if this gateway signs checkpoints (on a shared
    /// log, the one holding the lease) and its start check is over, then stops the task. Called
    /// once the registry committed its last write.
    pub async fn finish(mut self) {
        let (Some(mut task), Some(finish)) = (self.task.take(), self.finish.take()) else { return };
        if finish.send(()).is_ok() && tokio::time::timeout(FINISH_TIMEOUT, &mut task).await.is_err() {
            tracing::warn!(timeout = ?FINISH_TIMEOUT, "no checkpoint signed at shutdown: the checkpointer did not finish");
        }
        task.abort();
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
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
    /// The client and the prefix of `registry.checkpoint_copy_s3`.
    s3_copy: Option<(aws_sdk_s3::Client, S3Location)>,
}

/// Starts the checkpointer (none when both `checkpoint_every_events` and
/// `checkpoint_interval_seconds` are 0); it reports a log it refuses to sign to `findings`.
#[must_use]
pub fn spawn(registry: Registry, config: &Config, findings: Arc<Findings>) -> Checkpointer {
    let every_events = config.registry.checkpoint_every_events;
    let interval_seconds = config.registry.checkpoint_interval_seconds;
    if every_events == 0 && interval_seconds == 0 {
        return Checkpointer::off();
    }
    let s3_copy = checkpoints::s3_copy(config).and_then(|prefix| {
        prefix.map(|prefix| checkpoints::s3::client_from_env().map(|client| (client, prefix))).transpose()
    });
    let s3_copy = match s3_copy {
        Ok(s3_copy) => s3_copy,
        Err(error) => {
            refuse(&findings, &error);
            return Checkpointer::off();
        }
    };
    let settings = Arc::new(Settings {
        every_events,
        interval: (interval_seconds > 0).then(|| Duration::from_secs(interval_seconds)),
        key_path: checkpoints::key_path(config),
        folders: checkpoints::folders(config),
        s3_copy,
    });
    let (finish, mut finishing) = oneshot::channel();
    let task = tokio::spawn(async move {
        let path = registry.path().to_owned();
        // The log is checked against the newest stored checkpoint before anything is signed,
        // the S3 copy's included: a log rewritten while the gateway was stopped, with the data
        // folder's checkpoints removed, must not be signed as the newest truth.
        let uploaded = loop {
            match newest_uploaded(&settings).await {
                Ok(uploaded) => break uploaded,
                // An upstream that cannot be reached now may be later: not ready meanwhile.
                Err(error) => {
                    let problem = format!("checkpoints: {error:#}");
                    tracing::error!(%problem, "no checkpoint signed");
                    findings.set(vec![problem]);
                    tokio::time::sleep(RETRY).await;
                }
            }
        };
        findings.set(Vec::new());
        let start = {
            let (settings, path) = (Arc::clone(&settings), path.clone());
            tokio::task::spawn_blocking(move || start(&path, &settings, uploaded)).await
        };
        let last = match start {
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
        let mut signing =
            Signing { registry, settings, path, findings, last, oldest_unsigned: None, failed_at: None, lease: None };
        let mut ticks = tokio::time::interval(POLL);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            // The last pass, when the gateway stops: whatever is unsigned is signed now.
            let last_pass = tokio::select! {
                _ = ticks.tick() => false,
                stopping = &mut finishing => {
                    if stopping.is_err() {
                        return;
                    }
                    true
                }
            };
            signing.pass(last_pass).await;
            if last_pass {
                return;
            }
        }
    });
    Checkpointer { task: Some(task), finish: Some(finish) }
}

/// The signing state of a running checkpointer, from its start check on.
struct Signing {
    registry: Registry,
    settings: Arc<Settings>,
    path: PathBuf,
    findings: Arc<Findings>,
    /// The newest checkpoint this gateway knows of.
    last: ChainHead,
    /// When the oldest event no checkpoint covers was committed, once read: the interval
    /// counts from it, not from this process's start, so a gateway restarted more often
    /// than the interval (deploys, a crash loop) still signs.
    oldest_unsigned: Option<i64>,
    /// After a failure (a folder that cannot be written, a log that no longer extends the
    /// last checkpoint), the next attempt waits a while rather than a second.
    failed_at: Option<Instant>,
    /// Held from the first time it is granted: one gateway signs while it lives.
    lease: Option<registry::Lease>,
}

impl Signing {
    /// Signs the head if a checkpoint is due, or on the `last_pass` when the gateway stops if any
    /// event is unsigned, provided this gateway holds the lease.
    async fn pass(&mut self, last_pass: bool) {
        if !last_pass && self.failed_at.is_some_and(|at| at.elapsed() < RETRY) {
            return;
        }
        // Asked of PostgreSQL every time (one round trip a second): a session that ended
        // (a restart, a cut network) freed the lease, and another gateway may have it now.
        let holds = match &self.lease {
            Some(lease) => lease.confirm().await.unwrap_or(false),
            None => false,
        };
        if !holds {
            // A gateway on its way out does not take over the signing: it would verify
            // every event since its own start, under the stop's time bound.
            if last_pass {
                return;
            }
            self.lease = self.registry.try_lease("checkpoints").await.unwrap_or_else(|error| {
                tracing::warn!(%error, "automatic checkpoints cannot take their lease");
                None
            });
            if self.lease.is_none() {
                return;
            }
        }
        let settings = &self.settings;
        let committed = self.registry.committed_sequence();
        if committed <= self.last.sequence {
            return;
        }
        let by_count =
            settings.every_events > 0 && committed >= self.last.sequence.saturating_add(settings.every_events);
        if settings.interval.is_some() && self.oldest_unsigned.is_none() {
            self.oldest_unsigned = match self.registry.fetch_since(self.last.sequence, 1).await {
                Ok(events) => events.first().map(|event| event.created_at),
                Err(error) => {
                    tracing::warn!(%error, "cannot read the oldest event to checkpoint");
                    None
                }
            };
        }
        let by_time =
            settings.interval.zip(self.oldest_unsigned).is_some_and(|(interval, oldest)| due(oldest, interval));
        if !(by_count || by_time || last_pass) {
            return;
        }
        let signed = {
            let (settings, path, last) = (Arc::clone(settings), self.path.clone(), self.last);
            tokio::task::spawn_blocking(move || sign_next(&path, &settings, last))
        };
        let stored = match signed.await {
            Ok(Ok(Some((head, checkpoint)))) => upload(settings, &checkpoint).await.map(|()| Some(head)),
            Ok(other) => other.map(|signed| signed.map(|(head, _)| head)),
            Err(error) => {
                tracing::warn!(%error, "the checkpoint task did not finish");
                return;
            }
        };
        match stored {
            Ok(Some(head)) => {
                tracing::info!(sequence = head.sequence, at_shutdown = last_pass, "checkpoint signed");
                self.last = head;
                self.oldest_unsigned = None;
                if self.failed_at.take().is_some() {
                    self.findings.set(Vec::new());
                }
            }
            Ok(None) => {}
            Err(error) => {
                let problem = format!("checkpoints: {error:#}");
                tracing::error!(%problem, "no checkpoint signed");
                self.findings.set(vec![problem]);
                self.failed_at = Some(Instant::now());
            }
        }
    }
}

/// Whether a checkpoint is due by time: the oldest event it would cover was committed at
/// `oldest` (milliseconds since the epoch) at least `interval` ago.
fn due(oldest: i64, interval: Duration) -> bool {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |since| since.as_millis());
    let interval = i128::try_from(interval.as_millis()).unwrap_or(i128::MAX);
    i128::try_from(now).unwrap_or(i128::MAX) - i128::from(oldest) >= interval
}

/// The newest checkpoint signed by the key under `registry.checkpoint_copy_s3`, when it is set.
async fn newest_uploaded(settings: &Settings) -> anyhow::Result<Option<Checkpoint>> {
    let Some((client, prefix)) = &settings.s3_copy else { return Ok(None) };
    let trusted = checkpoints::signing_key(&settings.key_path)?.verifying_key();
    Ok(checkpoints::s3::newest(client, prefix, &trusted).await?.map(|(_, checkpoint)| checkpoint))
}

/// Uploads `checkpoint` under `registry.checkpoint_copy_s3`, when it is set.
async fn upload(settings: &Settings, checkpoint: &Checkpoint) -> anyhow::Result<()> {
    match &settings.s3_copy {
        Some((client, prefix)) => checkpoints::s3::upload(client, &prefix.join(checkpoint), checkpoint).await,
        None => Ok(()),
    }
}

/// Stops signing (the log at start does not extend the newest checkpoint, or it cannot be
/// read) and fails `/_ready` until a restart.
fn refuse(findings: &Findings, error: &anyhow::Error) {
    let problem = format!("checkpoints: {error:#}");
    tracing::error!(%problem, "no checkpoints will be signed");
    findings.set(vec![problem]);
}

/// The newest checkpoint signed by the key, in the folders or `uploaded` (the newest in the S3
/// copy), or the first event's predecessor if there is none, once the log is verified to
/// extend it up to its head.
fn start(path: &Path, settings: &Settings, uploaded: Option<Checkpoint>) -> anyhow::Result<ChainHead> {
    let key = checkpoints::signing_key(&settings.key_path)?;
    let stored = checkpoints::newest(&settings.folders, &key.verifying_key())?.map(|(_, checkpoint)| checkpoint);
    let newest = stored.into_iter().chain(uploaded).max_by_key(|checkpoint| checkpoint.sequence);
    let base = match newest {
        Some(checkpoint) => checkpoint.head()?,
        None => ChainHead { sequence: 0, hash: registry::event::GENESIS_HASH },
    };
    verified_head(path, base)?;
    Ok(base)
}

/// Verifies the events after `last`, signs the head and writes the checkpoint to the folders;
/// returns the head and the checkpoint, or nothing when the log has not grown.
fn sign_next(path: &Path, settings: &Settings, last: ChainHead) -> anyhow::Result<Option<(ChainHead, Checkpoint)>> {
    let key = checkpoints::signing_key(&settings.key_path)?;
    let head = verified_head(path, last)?;
    if head.sequence <= last.sequence {
        return Ok(None);
    }
    let created_at = i64::try_from(SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis())?;
    let checkpoint = Checkpoint::sign(head, created_at, &key);
    checkpoints::store(&checkpoint, &settings.folders)?;
    Ok(Some((head, checkpoint)))
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The interval counts from the oldest event a checkpoint would cover, whenever the
    /// process started: a gateway restarted more often than the interval still signs.
    #[test]
    fn a_checkpoint_is_due_once_its_oldest_event_is_an_interval_old() {
        let now = i64::try_from(SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis()).unwrap();
        let hour = Duration::from_secs(3600);
        assert!(due(now - 3_600_000 - 1_000, hour), "an event older than the interval");
        assert!(!due(now - 60_000, hour), "a minute-old event under an hourly interval");
        assert!(due(now - 10_000, Duration::from_secs(5)));
    }
}
