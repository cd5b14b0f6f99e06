//! `artifact-store retention plan` and `retention explain`: what the lifecycle sweeper
//! would do at a time (the same pure plan the sweeper applies; nothing is deleted), and why
//! a version still exists or was deleted, from its events. Both read a read-only connection,
//! so they run beside a serving gateway.

use std::time::SystemTime;

use anyhow::Context as _;
use registry::explain::{self, Explanation, Step};
use registry::lifecycle::{Action, Effect, Plan};
use registry::{Event, log, sqlite};
use serde::Serialize;

use super::{existing_registry, print_line};
use crate::clock::rfc3339_seconds;
use crate::config::Config;
use registry::queries::Reads as _;

/// `retention` and its subcommands.
#[derive(Debug, clap::Args)]
pub struct RetentionArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: RetentionCommand,
}

/// Subcommands of `retention`.
#[derive(Debug, clap::Subcommand)]
pub enum RetentionCommand {
    /// Print what the lifecycle sweeper would do at a time; deletes nothing.
    Plan(PlanArgs),
    /// Explain why a version still exists, or why it was deleted, from its events.
    Explain(ExplainArgs),
}

/// Flags of `retention plan`.
#[derive(Debug, clap::Args)]
pub struct PlanArgs {
    /// The time to plan for: RFC 3339 (`2027-01-01T00:00:00Z`) or `+DURATION` from now
    /// (`+30days`) [default: now].
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub at: Option<i64>,
}

/// Flags of `retention explain`.
#[derive(Debug, clap::Args)]
pub struct ExplainArgs {
    /// The object, as `s3://bucket/key`.
    #[arg(value_name = "S3_URL")]
    pub object: String,
    /// The version to explain [default: the current one, or the last one created].
    #[arg(long, value_name = "ID")]
    pub version_id: Option<String>,
    /// The time to judge retention at (RFC 3339 or `+DURATION`) [default: now].
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub at: Option<i64>,
}

/// Milliseconds since the epoch from RFC 3339 or `+DURATION`.
fn parse_time(text: &str) -> Result<i64, String> {
    let time = match text.strip_prefix('+') {
        Some(duration) => {
            let duration = humantime::parse_duration(duration).map_err(|e| format!("{e}"))?;
            SystemTime::now() + duration
        }
        None => humantime::parse_rfc3339_weak(text).map_err(|e| format!("{e}"))?,
    };
    millis(time).ok_or_else(|| "time out of range".to_owned())
}

fn millis(time: SystemTime) -> Option<i64> {
    i64::try_from(time.duration_since(SystemTime::UNIX_EPOCH).ok()?.as_millis()).ok()
}

/// Runs a `retention` subcommand.
///
/// # Errors
///
/// No registry, a malformed `s3://` URL, or a failure to read the registry or write stdout.
pub async fn run(config: &Config, args: RetentionArgs, json: bool) -> anyhow::Result<()> {
    let path = existing_registry(config).await?;
    let day_ms = config.lifecycle.day_ms();
    let now = millis(SystemTime::now()).context("clock before 1970")?;
    tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        let conn = sqlite::open_read_only(&path).with_context(|| format!("cannot open {}", path.display()))?;
        let mut out = std::io::BufWriter::new(std::io::stdout().lock());
        let lines = match args.command {
            RetentionCommand::Plan(plan) => {
                let at = plan.at.unwrap_or(now);
                plan_lines(&conn.lifecycle_plan(at, day_ms)?, at, json)?
            }
            RetentionCommand::Explain(explain) => {
                let at = explain.at.unwrap_or(now);
                let (bucket, key) = parse_url(&explain.object)?;
                let events = object_events(&conn, &format!("{bucket}/{key}"))?;
                let why = explain::explain(&events, explain.version_id.as_deref(), at)?;
                let plans = conn.lifecycle_plan(at, day_ms)?;
                let lifecycle = lifecycle_note(&plans, bucket, key, why.version_id.as_deref());
                explain_lines(Explained { bucket, key, at, explanation: why, lifecycle }, json)?
            }
        };
        for line in lines {
            if !print_line(&mut out, &line)? {
                return Ok(());
            }
        }
        Ok(())
    })
    .await
    .context("retention")?
}

fn parse_url(url: &str) -> anyhow::Result<(&str, &str)> {
    let rest = url.strip_prefix("s3://").context("the object must be given as s3://bucket/key")?;
    let (bucket, key) = rest.split_once('/').context("the object must be given as s3://bucket/key")?;
    anyhow::ensure!(!bucket.is_empty() && !key.is_empty(), "the object must be given as s3://bucket/key");
    Ok((bucket, key))
}

/// Every event about `subject` (`bucket/key`), in order.
fn object_events(conn: &rusqlite::Connection, subject: &str) -> anyhow::Result<Vec<Event>> {
    let mut events = Vec::new();
    for sequence in conn.subject_sequences(subject)? {
        let event = log::fetch_since(conn, sequence - 1, 1)?.pop().context("event missing from the log")?;
        events.push(event);
    }
    Ok(events)
}

fn target(action: &Action) -> (&'static str, &str) {
    match &action.effect {
        Effect::AddDeleteMarker { version_id } => ("add delete marker over", version_id),
        Effect::DeleteVersion { version_id } => ("delete version", version_id),
        Effect::AbortUpload { upload_id } => ("abort upload", upload_id),
    }
}

fn action_line(action: &Action) -> String {
    let (effect, id) = target(action);
    format!(
        "{:<20}  {:<24}  s3://{}/{} {}  (rule {:?}, {}, due {})",
        effect,
        action.kind.as_str(),
        action.bucket,
        action.key,
        id,
        action.rule_id,
        action.kind.as_str(),
        rfc3339_seconds(action.due)
    )
}

#[derive(Serialize)]
struct PlanOutput<'a> {
    at: i64,
    actions: Vec<&'a Action>,
    held: Vec<&'a Action>,
}

fn plan_lines(plans: &[Plan], at: i64, json: bool) -> anyhow::Result<Vec<String>> {
    let actions: Vec<&Action> = plans.iter().flat_map(|p| &p.actions).collect();
    let held: Vec<&Action> = plans.iter().flat_map(|p| &p.held).collect();
    if json {
        return Ok(vec![serde_json::to_string(&PlanOutput { at, actions, held })?]);
    }
    let mut lines = vec![format!("lifecycle plan at {} (nothing is deleted)", rfc3339_seconds(at))];
    lines.extend(actions.iter().map(|a| action_line(a)));
    if !held.is_empty() {
        lines.push("held back (under retention or legal hold):".to_owned());
        lines.extend(held.iter().map(|a| format!("  {}", action_line(a))));
    }
    lines.push(format!("{} actions due, {} held back", actions.len(), held.len()));
    Ok(lines)
}

#[derive(Serialize)]
struct Explained<'a> {
    bucket: &'a str,
    key: &'a str,
    at: i64,
    #[serde(flatten)]
    explanation: Explanation,
    /// What the lifecycle sweeper would do to the version at `at`.
    lifecycle: Option<String>,
}

fn lifecycle_note(plans: &[Plan], bucket: &str, key: &str, version_id: Option<&str>) -> Option<String> {
    let version_id = version_id?;
    let concerns = |a: &&Action| a.bucket == bucket && a.key == key && target(a).1 == version_id;
    let due = plans.iter().flat_map(|p| &p.actions).find(concerns);
    let held = plans.iter().flat_map(|p| &p.held).find(concerns);
    match (due, held) {
        (Some(a), _) => Some(format!("due now: {}", action_line(a).trim_end())),
        (None, Some(a)) => Some(format!("due but held back by its protection: {}", action_line(a).trim_end())),
        (None, None) => None,
    }
}

fn step_line(s: &Step) -> String {
    format!("  {:>8}  {:<20}  {:<32}  {:<20}  {}", s.sequence, rfc3339_seconds(s.time), s.event_type, s.actor, s.note)
}

fn explain_lines(explained: Explained<'_>, json: bool) -> anyhow::Result<Vec<String>> {
    if json {
        return Ok(vec![serde_json::to_string(&explained)?]);
    }
    let why = &explained.explanation;
    let name = format!(
        "s3://{}/{} version {}",
        explained.bucket,
        explained.key,
        why.version_id.as_deref().unwrap_or("(none)")
    );
    let marker = if why.delete_marker { " (a delete marker)" } else { "" };
    let mut lines = vec![match why.fate {
        explain::Fate::Unknown => format!("{name}: no event ever created it"),
        explain::Fate::Deleted => format!("{name}{marker} was deleted, because:"),
        explain::Fate::Current | explain::Fate::Noncurrent => {
            let state = if why.fate == explain::Fate::Current { "current" } else { "noncurrent" };
            if why.retention.is_some() || why.legal_hold {
                format!(
                    "{name}{marker} exists ({state}) and is protected at {}, because:",
                    rfc3339_seconds(explained.at)
                )
            } else if !why.reasons.is_empty() {
                format!("{name}{marker} exists ({state}); nothing protects it; it was made by:")
            } else {
                format!("{name}{marker} exists ({state}); nothing protects it, and no lifecycle rule has removed it")
            }
        }
    }];
    lines.extend(why.reasons.iter().map(step_line));
    if let Some(note) = &explained.lifecycle {
        lines.push(format!("lifecycle: {note}"));
    }
    lines.push(format!("history ({} reads not listed):", why.retrievals));
    lines.extend(why.history.iter().map(step_line));
    Ok(lines)
}
