//! `artifact-store events list`: prints the event log, as a table or (with `--json`) one
//! event per line in the registry's JSON form. Reads a read-only connection, so it runs
//! beside a serving gateway.

use std::io::Write as _;
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use registry::{Event, log, sqlite};

use super::{existing_registry, print_line};
use crate::config::Config;

/// Events read per query.
const PAGE: usize = 1000;

/// `events` and its subcommands.
#[derive(Debug, clap::Args)]
pub struct EventsArgs {
    /// What to do with the log.
    #[command(subcommand)]
    pub command: EventsCommand,
}

/// Subcommands of `events`.
#[derive(Debug, clap::Subcommand)]
pub enum EventsCommand {
    /// Print events in sequence order.
    List(ListArgs),
}

/// Flags of `events list`.
#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// Only events after this sequence.
    #[arg(long, value_name = "SEQUENCE", default_value_t = 0)]
    pub since: u64,

    /// At most this many events [default: all].
    #[arg(long, value_name = "COUNT")]
    pub limit: Option<usize>,
}

/// Runs an `events` subcommand.
///
/// # Errors
///
/// No registry, or a failure to read it or to write to stdout.
pub async fn run(config: &Config, args: &EventsArgs, json: bool) -> anyhow::Result<()> {
    let EventsCommand::List(list) = &args.command;
    let path = existing_registry(config)?;
    let (since, limit) = (list.since, list.limit);
    tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        let conn = sqlite::open_read_only(&path).with_context(|| format!("cannot open {}", path.display()))?;
        let mut out = std::io::BufWriter::new(std::io::stdout().lock());
        if !json && !print_line(&mut out, &table_header())? {
            return Ok(());
        }
        let mut cursor = since;
        let mut left = limit.unwrap_or(usize::MAX);
        while left > 0 {
            let events = log::fetch_since(&conn, cursor, left.min(PAGE))?;
            let Some(last) = events.last() else { break };
            cursor = last.sequence;
            left -= events.len();
            for event in &events {
                let line = if json { serde_json::to_string(event)? } else { table_row(event) };
                if !print_line(&mut out, &line)? {
                    return Ok(());
                }
            }
        }
        match out.flush() {
            Err(err) if err.kind() != std::io::ErrorKind::BrokenPipe => Err(err).context("cannot write to stdout"),
            _ => Ok(()),
        }
    })
    .await
    .context("events list")?
}

fn table_header() -> String {
    format!("{:>8}  {:<24}  {:<28}  {:<20}  SUBJECT", "SEQ", "TIME", "TYPE", "ACTOR")
}

fn table_row(event: &Event) -> String {
    let time = u64::try_from(event.created_at)
        .ok()
        .and_then(|ms| SystemTime::UNIX_EPOCH.checked_add(Duration::from_millis(ms)))
        .map_or_else(|| event.created_at.to_string(), |t| humantime::format_rfc3339_millis(t).to_string());
    format!(
        "{:>8}  {:<24}  {:<28}  {:<20}  {}/{}",
        event.sequence, time, event.event_type, event.actor, event.subject_kind, event.subject_id
    )
}
