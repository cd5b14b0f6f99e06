//! `artifact-store kms create|list|rotate-master|rewrap`: the gateway's own KMS keys, which
//! SSE-KMS writes name (`x-amz-server-side-encryption-aws-kms-key-id: <id>`, its ARN, or
//! `alias/<name>`), and the rotation of the master key of SSE-S3. Keys are files beside the
//! master key (see `crypto::KeyRing`); gateways that share the folder find a new KMS key the
//! first time a request names it.

use std::collections::BTreeMap;

use anyhow::Context as _;
use registry::Registry;
use registry::event::v1::{BlobPart, KeysRewrapped, RewrappedKey, WrappedKey};
use registry::queries::ObjectVersion;

use super::{open_registry, operator, print_line};
use crate::config::Config;
use crate::crypto::{KeyRing, KeyRingError};

/// Versions read from the registry at a time.
const PAGE: usize = 500;

/// Flags of `kms`.
#[derive(Debug, clap::Args)]
pub struct KmsArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: KmsCommand,
}

/// The `kms` commands.
#[derive(Debug, clap::Subcommand)]
pub enum KmsCommand {
    /// Create a key (and an alias for it) and print its id.
    Create {
        /// An alias to name the key by, as `alias/<NAME>` (letters, digits, '/', '_', '-').
        #[arg(long, value_name = "NAME")]
        alias: Option<String>,
    },
    /// List the keys with their aliases.
    List,
    /// Replace the master key of SSE-S3 by a new one. The old one is kept (in `retired/`):
    /// objects are not rewritten and stay readable. Gateways wrap new data keys with the new
    /// key from their next start.
    RotateMaster,
    /// Wrap anew, by the current master key, every object's data keys that a retired master
    /// key wraps, and say which retired keys no data key needs any more (their files can then
    /// be destroyed). Objects are not rewritten. Run it once every gateway has restarted since
    /// the rotation: until then they wrap new data keys with the old key.
    Rewrap,
}

/// Runs a `kms` command.
///
/// # Errors
/// A key file that cannot be read or written; an alias that is taken or invalid; for
/// `rewrap`, the registry's errors and data keys that no key of the ring unwraps.
pub async fn run(config: &Config, args: &KmsArgs, json: bool) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match &args.command {
        KmsCommand::Create { alias } => {
            let keys = KeyRing::open_or_create(&config.master_key_path())?;
            let alias = alias.as_deref().map(|a| a.strip_prefix("alias/").unwrap_or(a));
            let id = keys.create_kms_key(alias)?;
            let aliases: Vec<String> = alias.map(|a| format!("alias/{a}")).into_iter().collect();
            print_key(&mut out, &id, &aliases, json)?;
        }
        KmsCommand::List => {
            let keys = KeyRing::open_or_create(&config.master_key_path())?;
            for (id, aliases) in keys.kms_keys()? {
                print_key(&mut out, &id, &aliases, json)?;
            }
        }
        KmsCommand::RotateMaster => {
            let (old, new) = KeyRing::rotate_master(&config.master_key_path())?;
            let line = if json {
                serde_json::json!({ "retired": old, "current": new }).to_string()
            } else {
                format!("master key {old} retired; new data keys are wrapped by {new} once the gateways restart")
            };
            print_line(&mut out, &line)?;
        }
        KmsCommand::Rewrap => {
            let path = config.master_key_path();
            let keys = KeyRing::open(&path)?
                .with_context(|| format!("no master key at {} (is --data-dir right?)", path.display()))?;
            let registry = open_registry(config).await?;
            let pass = rewrap_all(&registry, &keys, config.registry.url.is_some()).await;
            registry.close().await;
            let report = pass?;
            // A rotation during the pass: what it reports of the key it took as current is stale.
            let current = KeyRing::open(&path)?.map(|now| now.current_id().to_owned());
            anyhow::ensure!(
                current.as_deref() == Some(keys.current_id()),
                "the master key was rotated during the pass: run kms rewrap again"
            );
            print_rewrap(&mut out, &report, &keys, json)?;
            anyhow::ensure!(
                report.unreadable.is_empty(),
                "data keys that no key here unwraps (by the key that wrapped them): {:?}",
                report.unreadable
            );
        }
    }
    Ok(())
}

/// What a `rewrap` pass did and found.
#[derive(Debug, Default)]
struct RewrapReport {
    /// Versions whose keys were wrapped anew.
    versions: u64,
    /// Data keys wrapped anew.
    data_keys: u64,
    /// Data keys that a retired master key still wraps once the pass is over, by key: found by
    /// reading every version and upload part again, so that what was written, copied or
    /// completed while the pass ran is counted.
    still_needed: BTreeMap<String, u64>,
    /// Data keys that did not unwrap (their key is gone, or the record was changed).
    unreadable: BTreeMap<String, u64>,
}

/// Wraps anew the data keys of every version in the registry that a retired master key
/// wraps, then reads every version and upload part again to count what still needs one.
async fn rewrap_all(registry: &Registry, keys: &KeyRing, shared: bool) -> anyhow::Result<RewrapReport> {
    // Only a registry shared now keeps its record of the master key up to date (a log moved
    // back from PostgreSQL keeps the last one).
    let recorded = if shared { registry.read(|conn| conn.master_key()).await? } else { None };
    if let Some(shared) = recorded.filter(|shared| shared != keys.current_id()) {
        anyhow::bail!(
            "the gateways sharing this registry wrap data keys with master key {shared}, not with this folder's {}: \
             run kms rewrap where encryption.master_key_file names their key",
            keys.current_id()
        );
    }
    let mut report = RewrapReport::default();
    // The keys retired when the pass starts: one rotated out during the pass is newer than
    // this ring's current key, and what it wraps is not wrapped back.
    let retired = keys.retired_ids()?;
    let spinner = super::progress::spinner("versions");
    let mut pages = VersionPages::of(registry).await?;
    while let Some(versions) = pages.next().await? {
        for version in versions {
            rewrap_version(registry, keys, &retired, version, &mut report).await?;
            spinner.inc(1);
        }
    }
    spinner.finish_and_clear();
    let retired = keys.retired_ids()?;
    let mut needed = BTreeMap::new();
    let mut count = |parts: &[BlobPart]| {
        for wrapped in parts.iter().filter_map(|part| part.wrapped_key.as_ref()) {
            if retired.contains(&wrapped.key_id) {
                *needed.entry(wrapped.key_id.clone()).or_default() += 1;
            }
        }
    };
    // Uploads before versions: a completion moves its parts into a version in one event, so
    // an upload completed between the two readings is seen by the second.
    for bucket in registry.read(|conn| conn.buckets()).await? {
        count(&upload_parts(registry, &bucket.name).await?);
    }
    let mut pages = VersionPages::of(registry).await?;
    while let Some(versions) = pages.next().await? {
        versions.iter().for_each(|version| count(&version.content.parts));
    }
    report.still_needed = needed;
    Ok(report)
}

/// Every version of every bucket, a page at a time.
struct VersionPages<'a> {
    registry: &'a Registry,
    /// The buckets not started yet.
    buckets: std::vec::IntoIter<String>,
    /// The bucket being read, and the last key read in it.
    current: Option<(String, String)>,
}

impl<'a> VersionPages<'a> {
    async fn of(registry: &'a Registry) -> anyhow::Result<Self> {
        let buckets = registry.read(|conn| conn.buckets()).await.context("cannot list the buckets")?;
        let mut buckets = buckets.into_iter().map(|bucket| bucket.name).collect::<Vec<_>>().into_iter();
        let current = buckets.next().map(|name| (name, String::new()));
        Ok(Self { registry, buckets, current })
    }

    /// The next page, `None` after the last.
    async fn next(&mut self) -> anyhow::Result<Option<Vec<ObjectVersion>>> {
        while let Some((bucket, after)) = self.current.take() {
            let (name, from) = (bucket.clone(), after);
            let (versions, next) = self.registry.read(move |conn| conn.versions_page(&name, &from, PAGE)).await?;
            self.current = match next {
                Some(key) => Some((bucket, key)),
                None => self.buckets.next().map(|name| (name, String::new())),
            };
            if !versions.is_empty() {
                return Ok(Some(versions));
            }
        }
        Ok(None)
    }
}

/// Records `version`'s data keys wrapped anew, if a retired master key wraps any. A version
/// deleted or changed since it was read is left to the count that follows the pass.
async fn rewrap_version(
    registry: &Registry,
    keys: &KeyRing,
    retired: &[String],
    version: ObjectVersion,
    report: &mut RewrapReport,
) -> anyhow::Result<()> {
    let mut parts = Vec::new();
    let mut previous: Vec<WrappedKey> = Vec::new();
    for (index, part) in version.content.parts.iter().enumerate() {
        let Some(wrapped) = &part.wrapped_key else { continue };
        match keys.rewrap(wrapped) {
            Ok(Some(_)) if !retired.contains(&wrapped.key_id) => {}
            Ok(Some(anew)) => {
                let part_index = u32::try_from(index).context("a version of more than 2^32 parts")?;
                parts.push(RewrappedKey { part: part_index, blob: part.blob.clone(), wrapped_key: anew });
                previous.push(wrapped.clone());
            }
            Ok(None) => {}
            Err(KeyRingError::UnknownKey(id) | KeyRingError::Unwrap(id)) => {
                *report.unreadable.entry(id).or_default() += 1;
            }
            Err(err) => return Err(err.into()),
        }
    }
    if parts.is_empty() {
        return Ok(());
    }
    let count = parts.len() as u64;
    let version_ref =
        registry::event::v1::VersionRef { bucket: version.bucket, key: version.key, version_id: version.version_id };
    let rewrapped = KeysRewrapped { version: version_ref, parts };
    if registry.rewrap_keys(operator("kms rewrap"), rewrapped, previous).await? {
        report.versions += 1;
        report.data_keys += count;
    }
    Ok(())
}

/// The parts of the uploads in progress in `bucket`: a completed upload's version keeps
/// its parts' keys, so a retired key they need is needed until a later pass.
async fn upload_parts(registry: &Registry, bucket: &str) -> anyhow::Result<Vec<BlobPart>> {
    let mut found = Vec::new();
    let mut marker: Option<(String, String)> = None;
    loop {
        let (name, from) = (bucket.to_owned(), marker.clone());
        let uploads = registry
            .read(move |conn| {
                let (key, id) = from.as_ref().map(|(k, i)| (k.as_str(), i.as_str())).unzip();
                conn.uploads(&name, "", key, id, PAGE)
            })
            .await?;
        for upload in &uploads {
            let mut after = 0;
            loop {
                let id = upload.created.upload_id.clone();
                let parts = registry.read(move |conn| conn.parts(&id, after, PAGE)).await?;
                let Some(last) = parts.last() else { break };
                after = last.number;
                found.extend(parts.into_iter().map(|p| p.part));
            }
        }
        match uploads.last() {
            Some(last) if uploads.len() == PAGE => {
                marker = Some((last.created.key.clone(), last.created.upload_id.clone()));
            }
            _ => return Ok(found),
        }
    }
}

/// Prints what `rewrap` did, then each retired key with the data keys that still need it.
fn print_rewrap(
    out: &mut impl std::io::Write,
    report: &RewrapReport,
    keys: &KeyRing,
    json: bool,
) -> anyhow::Result<()> {
    let retired = keys.retired_ids()?;
    let needed = |id: &String| report.still_needed.get(id).copied().unwrap_or(0);
    if json {
        let retired: Vec<_> =
            retired.iter().map(|id| serde_json::json!({ "key_id": id, "still_needed": needed(id) })).collect();
        let line = serde_json::json!({
            "current": keys.current_id(),
            "versions": report.versions,
            "data_keys": report.data_keys,
            "retired": retired,
            "unreadable": report.unreadable,
        });
        return print_line(out, &line.to_string()).map(drop);
    }
    let line = format!(
        "wrapped anew by master key {}: {} data keys of {} versions",
        keys.current_id(),
        report.data_keys,
        report.versions
    );
    if !print_line(out, &line)? {
        return Ok(());
    }
    for id in &retired {
        let line = match needed(id) {
            0 => format!("retired key {id}: no data key needs it; keys/retired/{id}.key can be destroyed"),
            n => format!(
                "retired key {id}: still needed by {n} data keys (uploads in progress, or versions changed during the pass); run rewrap again later"
            ),
        };
        if !print_line(out, &line)? {
            break;
        }
    }
    Ok(())
}

fn print_key(out: &mut impl std::io::Write, id: &str, aliases: &[String], json: bool) -> anyhow::Result<()> {
    let line = if json {
        serde_json::json!({ "key_id": id, "aliases": aliases }).to_string()
    } else {
        [id.to_owned()].into_iter().chain(aliases.iter().cloned()).collect::<Vec<_>>().join("\t")
    };
    print_line(out, &line).map(drop)
}
