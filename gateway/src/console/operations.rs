//! The gateway at work: requests, errors, bytes in and out, the registry's commit latency and
//! the data folder's free space, sampled from the gateway's own metrics every
//! [`SAMPLE_EVERY`] over the last [`KEPT_SAMPLES`]; whether it is ready and what fails it; and
//! the newest signed checkpoint and whether the log still holds it. Shown to whoever may read
//! the log (`artifact-store:ReadEvents`): the operators.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use http::{Response, StatusCode};
use maud::{Markup, html};
use s3s::Body;
use tokio::sync::watch;

use super::layout::{self, bar_chart, size, time};
use super::{CONSOLE_PREFIX, Console, Refusal, Visit, html};
use crate::admin::Admin;
use crate::checkpoints::{self, Checkpoint};
use crate::metrics::{BYTES_RECEIVED, BYTES_SENT, GROUP_COMMIT_SECONDS, GROUP_COMMITS, HTTP_RESPONSES};

/// How often the gateway's counters are sampled.
const SAMPLE_EVERY: Duration = Duration::from_secs(10);
/// Samples kept: ten minutes.
const KEPT_SAMPLES: usize = 61;

/// One reading of the gateway's counters.
#[derive(Debug, Clone, Copy, Default)]
struct Sample {
    at_ms: i64,
    responses: f64,
    client_errors: f64,
    server_errors: f64,
    bytes_in: f64,
    bytes_out: f64,
    commits: f64,
    commit_seconds: f64,
    free_bytes: Option<u64>,
}

/// What the operations page reads: the gateway's admin endpoints (metrics, readiness), its
/// data folder, and where its checkpoints are kept.
pub struct Operations {
    admin: Arc<Admin>,
    checkpoint_folders: Vec<PathBuf>,
    checkpoint_key: PathBuf,
    samples: Arc<Mutex<VecDeque<Sample>>>,
    /// The newest checkpoint file found, with the modification times of the key and the
    /// folders when it was looked for: finding it reads and checks every checkpoint file, so
    /// that is done again only when a file came or went.
    newest_checkpoint: Arc<Mutex<Option<CheckpointSearch>>>,
}

/// The last search for the newest checkpoint file.
struct CheckpointSearch {
    /// The modification times of the checkpoint key and folders (`None`: not there).
    stamp: Vec<Option<SystemTime>>,
    found: Option<Found>,
}

/// A checkpoint file found, or `None` for no key yet.
type Found = Option<(PathBuf, Checkpoint)>;

impl Operations {
    /// Starts sampling `admin`'s metrics, until `shutdown` becomes `true`.
    #[must_use]
    pub fn start(
        admin: Arc<Admin>,
        data_dir: PathBuf,
        checkpoint_folders: Vec<PathBuf>,
        checkpoint_key: PathBuf,
        mut shutdown: watch::Receiver<bool>,
    ) -> Self {
        let samples = Arc::new(Mutex::new(VecDeque::with_capacity(KEPT_SAMPLES)));
        let (sampled, from, folder) = (Arc::clone(&samples), Arc::clone(&admin), data_dir);
        tokio::spawn(async move {
            let mut every = tokio::time::interval(SAMPLE_EVERY);
            // After a stall, the next sample comes a whole interval later rather than at once,
            // so that no rate is computed over a sliver of time.
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = every.tick() => {}
                    _ = shutdown.wait_for(|stopping| *stopping) => return,
                }
                let (from, folder) = (Arc::clone(&from), folder.clone());
                let Ok(sample) = tokio::task::spawn_blocking(move || read_sample(&from, &folder)).await else {
                    return;
                };
                let mut samples = sampled.lock().expect("samples lock");
                if samples.len() == KEPT_SAMPLES {
                    samples.pop_front();
                }
                samples.push_back(sample);
            }
        });
        Self { admin, checkpoint_folders, checkpoint_key, samples, newest_checkpoint: Arc::default() }
    }
}

/// The counters now, from the Prometheus text the gateway serves at `/_metrics`, and the data
/// folder's free space (a `statvfs`: run off the async threads).
fn read_sample(admin: &Admin, data_dir: &std::path::Path) -> Sample {
    let mut sample = Sample {
        at_ms: crate::clock::now_ms(),
        free_bytes: crate::backend::fs::free_bytes(data_dir).ok(),
        ..Sample::default()
    };
    for line in admin.metrics_text().lines().filter(|line| !line.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else { continue };
        let Ok(value) = value.parse::<f64>() else { continue };
        let name = series.split('{').next().unwrap_or(series);
        match name {
            HTTP_RESPONSES => {
                sample.responses += value;
                if series.contains("status=\"4") {
                    sample.client_errors += value;
                } else if series.contains("status=\"5") {
                    sample.server_errors += value;
                }
            }
            BYTES_RECEIVED => sample.bytes_in += value,
            BYTES_SENT => sample.bytes_out += value,
            GROUP_COMMITS => sample.commits += value,
            GROUP_COMMIT_SECONDS => sample.commit_seconds += value,
            _ => {}
        }
    }
    sample
}

/// One chart: a label per interval and a value computed from its two ends.
fn series(samples: &[Sample], value: impl Fn(&Sample, &Sample) -> f64) -> Vec<(String, f64)> {
    samples
        .windows(2)
        .map(|pair| (time(pair[1].at_ms)[11..19].to_owned(), value(&pair[0], &pair[1]).max(0.0)))
        .collect()
}

fn per_second(counter: impl Fn(&Sample) -> f64) -> impl Fn(&Sample, &Sample) -> f64 {
    move |a, b| {
        let seconds = (b.at_ms - a.at_ms) as f64 / 1000.0;
        if seconds > 0.0 { (counter(b) - counter(a)) / seconds } else { 0.0 }
    }
}

/// A chart of `points` with the newest value beside its title.
fn chart(title: &str, unit: &str, points: &[(String, f64)]) -> Markup {
    let latest = points.last().map_or(0.0, |(_, v)| *v);
    html! {
        section {
            h2 { (title) ": " (format!("{latest:.2}")) " " (unit) }
            (bar_chart(&format!("{title} over the last ten minutes"), points))
        }
    }
}

/// The newest signed checkpoint, and whether the event at its sequence still has its hash.
enum CheckpointState {
    /// No key yet (the gateway signs none until it is configured to).
    NoKey,
    /// None in the folders.
    None,
    /// The newest, and whether the log still holds it.
    Newest { file: PathBuf, sequence: u64, hash: String, created_at: i64, holds: bool },
}

/// The newest checkpoint file (`None`: no key yet), found again when the key or a folder
/// changed since the last search.
async fn newest_checkpoint(ops: &Operations) -> Result<Option<Found>, Refusal> {
    let (folders, key) = (ops.checkpoint_folders.clone(), ops.checkpoint_key.clone());
    let cache = Arc::clone(&ops.newest_checkpoint);
    tokio::task::spawn_blocking(move || -> anyhow::Result<Option<Found>> {
        let modified = |path: &std::path::Path| std::fs::metadata(path).and_then(|m| m.modified()).ok();
        let stamp: Vec<_> = std::iter::once(&key).chain(&folders).map(|path| modified(path)).collect();
        if let Some(search) = cache.lock().expect("checkpoint lock").as_ref()
            && search.stamp == stamp
        {
            return Ok(search.found.clone());
        }
        let found = if key.exists() {
            let trusted = checkpoints::signing_key(&key)?.verifying_key();
            Some(checkpoints::newest(&folders, &trusted)?)
        } else {
            None
        };
        *cache.lock().expect("checkpoint lock") = Some(CheckpointSearch { stamp, found: found.clone() });
        Ok(found)
    })
    .await
    .map_err(|_| Refusal::Failed(StatusCode::INTERNAL_SERVER_ERROR))?
    .map_err(|err| {
        tracing::error!(error = %format!("{err:#}"), "console: the checkpoints could not be read");
        Refusal::Failed(StatusCode::INTERNAL_SERVER_ERROR)
    })
}

async fn checkpoint_state(console: &Console, ops: &Operations) -> Result<CheckpointState, Refusal> {
    let Some(newest) = newest_checkpoint(ops).await? else { return Ok(CheckpointState::NoKey) };
    let Some((file, checkpoint)) = newest else { return Ok(CheckpointState::None) };
    let sequence = checkpoint.sequence;
    let logged = console.registry.read(move |reads| reads.event(sequence)).await?;
    let holds = logged.is_some_and(|event| hex::encode(event.hash) == checkpoint.hash);
    Ok(CheckpointState::Newest { file, sequence, hash: checkpoint.hash, created_at: checkpoint.created_at, holds })
}

/// `/_console/operations`.
pub(super) async fn page(console: &Console, visit: &Visit) -> Result<Response<Body>, Refusal> {
    console.allow(visit, "artifact-store:ReadEvents", None, "*", &visit.keys, None).await?;
    let Some(ops) = &console.operations else {
        return Err(Refusal::NotFound("This gateway keeps no operations record.".to_owned()));
    };
    let samples: Vec<Sample> = ops.samples.lock().expect("samples lock").iter().copied().collect();
    let ready = ops.admin.readiness().await;
    let checkpoint = checkpoint_state(console, ops).await?;
    let free = samples.last().and_then(|sample| sample.free_bytes);
    let mib = |bytes: f64| bytes / (1024.0 * 1024.0);
    let body = html! {
        h1 { "Operations" }
        dl.facts {
            dt { "Ready" } dd {
                @match &ready {
                    Ok(()) => span.good { "yes" },
                    Err(reason) => span.bad { "no: " (reason) },
                }
            }
            dt { "Log head" } dd {
                a href={ (CONSOLE_PREFIX) "/events/" (console.registry.committed_sequence()) } { "event " (console.registry.committed_sequence()) }
            }
            dt { "Newest checkpoint" } dd {
                @match &checkpoint {
                    CheckpointState::NoKey => "none: no checkpoint key yet",
                    CheckpointState::None => "none signed yet",
                    CheckpointState::Newest { file, sequence, hash, created_at, holds } => {
                        "event " (sequence) " at " (time(*created_at)) " (" code { (file.display().to_string()) } "), hash "
                        (layout::short_hash(hash)) ": "
                        @if *holds { span.good { "the log still holds it" } }
                        @else { span.bad { "the log no longer holds it" } }
                    }
                }
            }
            dt { "Data folder free" } dd { @match free { Some(free) => (size(free)), None => "unknown" } }
        }
        @if samples.len() < 2 {
            p.muted { "Charts appear after " (SAMPLE_EVERY.as_secs() * 2) " seconds of sampling." }
        } @else {
            (chart("Requests", "per second", &series(&samples, per_second(|s| s.responses))))
            (chart("Errors", "per second (4xx and 5xx)", &series(&samples, per_second(|s| s.client_errors + s.server_errors))))
            (chart("Bytes in", "MiB/s", &series(&samples, per_second(|s| mib(s.bytes_in)))))
            (chart("Bytes out", "MiB/s", &series(&samples, per_second(|s| mib(s.bytes_out)))))
            (chart("Registry commit latency", "ms per group commit", &series(&samples, |a, b| {
                let commits = b.commits - a.commits;
                if commits > 0.0 { 1000.0 * (b.commit_seconds - a.commit_seconds) / commits } else { 0.0 }
            })))
            (chart("Disk free", "GiB", &series(&samples, |_, b| b.free_bytes.unwrap_or(0) as f64 / f64::from(1u32 << 30))))
        }
    };
    Ok(html(StatusCode::OK, &layout::page("Operations", Some(&visit.session), &body)))
}
