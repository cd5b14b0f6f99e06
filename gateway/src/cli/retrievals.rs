//! `artifact-store retrievals`: who read which version, when, from where and how many bytes,
//! filtered by bucket, key, actor and time; printed as a table, JSON lines (`--json` or
//! `--format json`), S3 server access log lines or one CloudTrail document.

use anyhow::Context as _;
use registry::queries::RetrievalFilter;
use registry::sqlite;

use super::{existing_registry, print_line, print_part};
use crate::admin::records::{self, rfc3339};
use crate::admin::registry_api::parse_time;
use crate::config::Config;
use registry::queries::Reads as _;

/// Records read per query.
const PAGE: usize = 1000;

/// Output formats of `retrievals`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One record per line, aligned.
    Table,
    /// One JSON record per line.
    Json,
    /// S3 server access log lines.
    AccessLog,
    /// One CloudTrail document, `{"Records": [...]}`.
    Cloudtrail,
}

/// Flags of `retrievals`.
#[derive(Debug, clap::Args)]
pub struct RetrievalsArgs {
    /// Only reads of this bucket.
    #[arg(long)]
    pub bucket: Option<String>,
    /// Only reads of this key.
    #[arg(long)]
    pub key: Option<String>,
    /// Only reads by this access key.
    #[arg(long)]
    pub actor: Option<String>,
    /// Only reads at or after this time (RFC 3339 or milliseconds since the epoch).
    #[arg(long, value_name = "TIME")]
    pub from: Option<String>,
    /// Only reads before this time (RFC 3339 or milliseconds since the epoch).
    #[arg(long, value_name = "TIME")]
    pub to: Option<String>,
    /// At most this many records [default: all].
    #[arg(long, value_name = "COUNT")]
    pub limit: Option<usize>,
    /// Output format [default: table, or json with --json].
    #[arg(long, value_enum)]
    pub format: Option<Format>,
}

/// Prints the matching retrieval records.
///
/// # Errors
///
/// No registry, an unreadable time, or a failure to read or print.
pub async fn run(config: &Config, args: &RetrievalsArgs, json: bool) -> anyhow::Result<()> {
    let format = args.format.unwrap_or(if json { Format::Json } else { Format::Table });
    let time = |value: &Option<String>| value.as_deref().map(parse_time).transpose().map_err(anyhow::Error::msg);
    let mut filter = RetrievalFilter {
        bucket: args.bucket.clone(),
        key: args.key.clone(),
        actor: args.actor.clone(),
        from_ms: time(&args.from)?,
        to_ms: time(&args.to)?,
        after: 0,
    };
    let path = existing_registry(config).await?;
    let conn = sqlite::open_read_only(&path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut out = std::io::stdout().lock();
    let mut left = args.limit.unwrap_or(usize::MAX);
    // CloudTrail is one document, `{"Records":[...]}`: written record by record, so an export
    // of millions of reads holds one page in memory, not all of them.
    let mut opened = false;
    if format == Format::Table
        && !print_line(
            &mut out,
            &format!(
                "{:>8}  {:<24}  {:<6}  {:>10}  {:<20}  {:<21}  OBJECT",
                "SEQ", "TIME", "METHOD", "BYTES", "ACTOR", "SOURCE"
            ),
        )?
    {
        return Ok(());
    }
    while left > 0 {
        let page = conn.retrievals(&filter, left.min(PAGE))?;
        let Some(last) = page.last() else { break };
        filter.after = last.sequence;
        left -= page.len();
        for record in page {
            let line = match format {
                Format::Cloudtrail => {
                    let separator = if opened { "," } else { r#"{"Records":["# };
                    opened = true;
                    let record = records::cloudtrail_record(&record, &config.server.region);
                    if !print_part(&mut out, &format!("{separator}{record}"))? {
                        return Ok(());
                    }
                    continue;
                }
                Format::Json => records::retrieval(&record).to_string(),
                Format::AccessLog => records::access_log_line(&record),
                Format::Table => format!(
                    "{:>8}  {:<24}  {:<6}  {:>10}  {:<20}  {:<21}  s3://{}/{} ({})",
                    record.sequence,
                    rfc3339(record.created_at),
                    record.method,
                    record.bytes,
                    record.actor,
                    record.context.source_addr.as_deref().unwrap_or("-"),
                    record.bucket,
                    record.key,
                    record.version_id
                ),
            };
            if !print_line(&mut out, &line)? {
                return Ok(());
            }
        }
    }
    if format == Format::Cloudtrail {
        let start = if opened { "" } else { r#"{"Records":["# };
        print_line(&mut out, &format!("{start}]}}"))?;
    }
    Ok(())
}
