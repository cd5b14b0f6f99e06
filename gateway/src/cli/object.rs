//! `artifact-store object history s3://bucket/key`: every version of a key with who stored
//! it, from where, its digests, retention and the event that recorded it. `--json` prints the
//! same document as the registry API's `GET /_registry/objects/{bucket}/{key}`.

use anyhow::Context as _;
use registry::queries::VersionProvenance;
use registry::sqlite;

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
/// No registry, a malformed URL, no version of the key, or a failure to read or print.
pub async fn run(config: &Config, args: &ObjectArgs, json: bool) -> anyhow::Result<()> {
    let ObjectCommand::History(history) = &args.command;
    let (bucket, key) = parse_url(&history.url)?;
    let path = existing_registry(config).await?;
    let conn = sqlite::open_read_only(&path).with_context(|| format!("cannot open {}", path.display()))?;
    let versions = conn.key_provenance(&bucket, &key)?;
    anyhow::ensure!(!versions.is_empty(), "the registry has no version of s3://{bucket}/{key}");
    let mut out = std::io::stdout().lock();
    if json {
        let document = serde_json::to_string_pretty(&records::provenance(&bucket, &key, &versions))?;
        print_line(&mut out, &document)?;
        return Ok(());
    }
    for (index, version) in versions.iter().enumerate() {
        if index > 0 && !print_line(&mut out, "")? {
            return Ok(());
        }
        for line in describe(version) {
            if !print_line(&mut out, &line)? {
                return Ok(());
            }
        }
    }
    Ok(())
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
