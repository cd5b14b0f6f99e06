//! `artifact-store object history s3://bucket/key`: every version of a key with who stored
//! it, from where, its digests, retention and the event that recorded it, then every event
//! about the key (writes, reads, deletions, delete markers) in log order. A key whose versions
//! were all deleted has no version left but still has its events: backup and dataset tools
//! delete every day, and "who deleted it, and who read it before" is what is asked then.
//! `--json` prints the registry API's document of `GET /_registry/objects/{bucket}/{key}`
//! with the events added as `events`, in the registry's JSON form.

use anyhow::Context as _;
use registry::event::v1::Payload;
use registry::queries::VersionProvenance;
use registry::{Event, sqlite};

use super::{existing_registry, print_line};
use crate::admin::records::{self, rfc3339};
use crate::config::Config;
use registry::queries::Reads as _;

/// `object` and its subcommands.
#[derive(Debug, clap::Args)]
pub struct ObjectArgs {
    /// What to show.
    #[command(subcommand)]
    pub command: ObjectCommand,
}

/// Subcommands of `object`.
#[derive(Debug, clap::Subcommand)]
pub enum ObjectCommand {
    /// Every version of a key with its provenance, newest first.
    History(HistoryArgs),
}

/// Arguments of `object history`.
#[derive(Debug, clap::Args)]
pub struct HistoryArgs {
    /// The object, as `s3://bucket/key`.
    #[arg(value_name = "S3_URL")]
    pub url: String,
}

/// Splits `s3://bucket/key` into its bucket and key.
fn parse_url(url: &str) -> anyhow::Result<(String, String)> {
    let rest = url.strip_prefix("s3://").context("expected s3://bucket/key")?;
    let (bucket, key) = rest.split_once('/').context("expected s3://bucket/key")?;
    anyhow::ensure!(!bucket.is_empty() && !key.is_empty(), "expected s3://bucket/key");
    Ok((bucket.to_owned(), key.to_owned()))
}

/// Prints the history of one key.
///
/// # Errors
///
/// No registry, a malformed URL, a key the log never mentions, or a failure to read or print.
pub async fn run(config: &Config, args: &ObjectArgs, json: bool) -> anyhow::Result<()> {
    let ObjectCommand::History(history) = &args.command;
    let (bucket, key) = parse_url(&history.url)?;
    let path = existing_registry(config).await?;
    let conn = sqlite::open_read_only(&path).with_context(|| format!("cannot open {}", path.display()))?;
    // The whole history, as asked for: the command reads the data folder, not a server.
    let versions = conn.key_provenance(&bucket, &key, u64::MAX, usize::MAX)?;
    let mut events = Vec::new();
    for sequence in conn.subject_sequences(&format!("{bucket}/{key}"))? {
        events.extend(conn.event(sequence)?);
    }
    anyhow::ensure!(
        !versions.is_empty() || !events.is_empty(),
        "the registry has no record of s3://{bucket}/{key}: it was never written"
    );
    let mut out = std::io::stdout().lock();
    if json {
        let mut document = records::provenance(&bucket, &key, &versions);
        document["events"] = serde_json::to_value(&events)?;
        print_line(&mut out, &serde_json::to_string_pretty(&document)?)?;
        return Ok(());
    }
    let mut lines = Vec::new();
    if versions.is_empty() {
        lines.push(format!("s3://{bucket}/{key} has no version left: every one was deleted"));
    }
    for (index, version) in versions.iter().enumerate() {
        if index > 0 {
            lines.push(String::new());
        }
        lines.extend(describe(version));
    }
    lines.push(String::new());
    lines.push(format!("events of s3://{bucket}/{key}, oldest first:"));
    lines.extend(events.iter().map(event_line));
    for line in &lines {
        if !print_line(&mut out, line)? {
            return Ok(());
        }
    }
    Ok(())
}

/// One event about the key: when, what, which version, by whom, and its place in the log.
fn event_line(event: &Event) -> String {
    let detail = match Payload::decode(&event.event_type, &event.payload) {
        Ok(Payload::ObjectPut(put)) => format!("version {} {} bytes", put.version_id, put.content.size),
        Ok(Payload::ObjectDeleted(deleted)) => format!("version {}", deleted.version.version_id),
        Ok(Payload::DeleteMarkerCreated(marker)) => format!("version {}", marker.version_id),
        Ok(Payload::Retrieved(read)) => {
            format!("version {} {} {} bytes", read.version.version_id, read.method, read.bytes)
        }
        _ => String::new(),
    };
    format!(
        "  {}  {:<32} {:<28} by {:<20} event {} {}",
        rfc3339(event.created_at),
        event.event_type,
        detail,
        event.actor,
        event.sequence,
        hex::encode(event.hash)
    )
}

fn describe(record: &VersionProvenance) -> Vec<String> {
    let (v, e) = (&record.version, &record.event);
    let or_dash = |value: Option<&String>| value.map_or_else(|| "-".to_owned(), Clone::clone);
    let mut lines = vec![format!(
        "version {}{}{}",
        v.version_id,
        if v.is_latest { " (latest)" } else { "" },
        if v.is_delete_marker { " delete marker" } else { "" }
    )];
    lines.push(format!("  time        {}", rfc3339(v.created_at)));
    if !v.is_delete_marker {
        let content = &v.content;
        lines.push(format!("  size        {}", content.size));
        lines.push(format!("  etag        {}", content.etag));
        lines.push(format!("  blake3      {}", content.blake3));
        if let Some(sha256) = content.checksums.get("SHA256") {
            lines.push(format!("  sha256      {sha256}"));
        }
        for (name, value) in &content.user_metadata {
            lines.push(format!("  meta        {name}={value}"));
        }
        for (name, value) in &content.tags {
            lines.push(format!("  tag         {name}={value}"));
        }
    }
    lines.push(format!("  uploader    {}", or_dash(e.context.access_key.as_ref())));
    if let Some(signer) = &record.signer {
        lines.push(format!("  principal   {} ({}/{})", records::principal_arn(signer), signer.account, signer.user));
    }
    lines.push(format!("  source      {}", or_dash(e.context.source_addr.as_ref())));
    lines.push(format!("  user agent  {}", or_dash(e.context.user_agent.as_ref())));
    lines.push(format!("  request id  {}", or_dash(e.context.request_id.as_ref())));
    if let Some(retention) = v.retention {
        lines.push(format!("  retention   {:?} until {}", retention.mode, rfc3339(retention.retain_until)));
    }
    if v.legal_hold {
        lines.push("  legal hold  on".to_owned());
    }
    lines.push(format!("  event       {} {} {}", e.sequence, e.event_type, hex::encode(e.hash)));
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_a_bucket_and_a_key() {
        assert_eq!(parse_url("s3://b/dir/k").unwrap(), ("b".to_owned(), "dir/k".to_owned()));
        assert!(parse_url("s3://b").is_err());
        assert!(parse_url("s3://b/").is_err());
        assert!(parse_url("b/k").is_err());
    }
}
