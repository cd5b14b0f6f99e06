//! `artifact-store events list|tail`: prints the event log, as a table or (with `--json`) one
//! event per line in the registry's JSON form, optionally only one bucket's events or some
//! types. Reads a read-only connection, so it runs beside a serving gateway; `tail` polls it
//! for new commits (another process's commits cannot wake it).

use std::io::Write as _;
use std::time::Duration;

use anyhow::Context as _;
use registry::queries::EventFilter;
use registry::{Event, sqlite};

use super::{existing_registry, print_line};
use crate::admin::records::rfc3339;
use crate::config::Config;
use registry::queries::Reads as _;

/// Events read per query.
const PAGE: usize = 1000;

/// How often `events tail` looks for new events.
const TAIL_POLL: Duration = Duration::from_millis(250);

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
    /// Print new events as they are committed, until interrupted.
    Tail(TailArgs),
}

/// Which events to print.
#[derive(Debug, clap::Args)]
pub struct FilterArgs {
    /// Only events about this bucket and the objects in it.
    #[arg(long, value_name = "BUCKET")]
    pub bucket: Option<String>,

    /// Only events of this type (`v1.object.put`, ...); repeat for several.
    #[arg(long = "type", value_name = "TYPE")]
    pub types: Vec<String>,
}

impl FilterArgs {
    fn filter(&self) -> EventFilter {
        EventFilter { bucket: self.bucket.clone(), types: self.types.clone() }
    }
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

    /// Which events.
    #[command(flatten)]
    pub filter: FilterArgs,
}

/// Flags of `events tail`.
#[derive(Debug, clap::Args)]
pub struct TailArgs {
    /// Start after this sequence [default: the last committed event, so only new events].
    #[arg(long, value_name = "SEQUENCE")]
    pub since: Option<u64>,

    /// Which events.
    #[command(flatten)]
    pub filter: FilterArgs,
}

/// Runs an `events` subcommand.
///
/// # Errors
///
/// No registry, or a failure to read it or to write to stdout.
pub async fn run(config: &Config, args: &EventsArgs, json: bool) -> anyhow::Result<()> {
    let path = existing_registry(config).await?;
    let (since, limit, follow, filter) = match &args.command {
        EventsCommand::List(list) => (Some(list.since), list.limit, false, list.filter.filter()),
        EventsCommand::Tail(tail) => (tail.since, None, true, tail.filter.filter()),
    };
    let conn = sqlite::open_read_only(&path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut cursor = match since {
        Some(since) => since,
        None => registry::log::ChainHead::load(&conn)?.sequence,
    };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if !json && !print_line(&mut out, &table_header())? {
        return Ok(());
    }
    let mut left = limit.unwrap_or(usize::MAX);
    loop {
        let page = conn.events_matching(&filter, cursor, left.min(PAGE), usize::MAX)?;
        cursor = page.scanned_to;
        left -= page.events.len();
        for event in &page.events {
            let line = if json { serde_json::to_string(event)? } else { table_row(event) };
            if !print_line(&mut out, &line)? {
                return Ok(());
            }
        }
        if left == 0 || (page.events.is_empty() && !follow) {
            break;
        }
        if page.events.is_empty() {
            // Show what was printed before sleeping: a tail is read as it happens.
            match out.flush() {
                Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
                flushed => flushed.context("cannot write to stdout")?,
            }
            tokio::select! {
                () = tokio::time::sleep(TAIL_POLL) => {}
                _ = tokio::signal::ctrl_c() => break,
            }
        }
    }
    match out.flush() {
        Err(err) if err.kind() != std::io::ErrorKind::BrokenPipe => Err(err).context("cannot write to stdout"),
        _ => Ok(()),
    }
}

fn table_header() -> String {
    format!("{:>8}  {:<24}  {:<28}  {:<20}  SUBJECT", "SEQ", "TIME", "TYPE", "ACTOR")
}

fn table_row(event: &Event) -> String {
    format!(
        "{:>8}  {:<24}  {:<28}  {:<20}  {}/{}",
        event.sequence,
        rfc3339(event.created_at),
        event.event_type,
        event.actor,
        event.subject_kind,
        event.subject_id
    )
}
