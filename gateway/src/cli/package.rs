//! `artifact-store package seal|verify|list`: evidence packages.
//!
//! `seal` freezes a prefix of a bucket (see [`registry::packages`]): it reads the current
//! versions under the prefix, writes their manifest to the blob store, and asks the registry
//! to record the manifest object and `v1.package.finalized` in one transaction that checks
//! the members again. It opens its own registry writer on the data directory, which is safe
//! beside a serving gateway: SQLite serialises the two writers, and the gateway's writer
//! continues the chain from whatever this one appended. If an upload lands between the
//! manifest and the seal, the seal is refused and the manifest built again. If gc takes the
//! manifest's blob between its placement and the seal, the seal pins the blob, waits until gc
//! is done with it and places it again, as a PUT does (see `registry::deletions`).
//!
//! `verify` re-hashes every member's bytes with BLAKE3 against the manifest, after checking
//! the manifest's own bytes against the digest the `v1.package.finalized` event recorded.
//! `list` prints the sealed packages.

use std::sync::Arc;

use anyhow::{Context as _, bail};
use bytes::Bytes;
use futures::future::BoxFuture;
use registry::deletions::{Pin, Placement};
use registry::event::v1::{BlobPart, ObjectContent, ObjectPut, Origin};
use registry::packages::{Manifest, Package};
use rusqlite::Connection;
use serde::Serialize;

use super::progress::{self, Unit};
use super::{Outcome, open_registry, operator, print_line, read_registry};
use crate::backend::BlobStore;
use crate::config::Config;
use crate::crypto::{KeyProvider, KeyRing};
use crate::package_check;
use crate::rehash::Stored;
use registry::queries::Reads as _;

/// How often `seal` builds the manifest again when uploads keep changing the prefix.
const SEAL_ATTEMPTS: usize = 5;

/// How long `seal` waits for a gc pass to finish deleting the manifest's blob before it
/// places it again.
const GC_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// `package` and its subcommands.
#[derive(Debug, clap::Args)]
pub struct PackageArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: PackageCommand,
}

/// Subcommands of `package`.
#[derive(Debug, clap::Subcommand)]
pub enum PackageCommand {
    /// Seal a prefix of a bucket: write its manifest and refuse every later change under it.
    Seal {
        /// `s3://bucket/prefix` (the prefix may be empty: the whole bucket).
        location: String,
        /// The package's name [default: bucket/prefix].
        #[arg(long)]
        name: Option<String>,
    },
    /// Re-hash every member of a package against its manifest.
    Verify {
        /// The package's name, or the `s3://bucket/prefix` it seals.
        package: String,
    },
    /// List the sealed packages.
    List,
}

/// Runs a `package` subcommand.
///
/// # Errors
/// No registry; a refused seal (no such bucket, a name taken, a prefix inside a sealed
/// package); failures to read or write the registry or the blobs.
pub async fn run(config: &Config, args: &PackageArgs, json: bool) -> anyhow::Result<Outcome> {
    match &args.command {
        PackageCommand::Seal { location, name } => seal(config, location, name.as_deref(), json).await,
        PackageCommand::Verify { package } => verify(config, package, json).await,
        PackageCommand::List => list(config, json).await,
    }
}

/// Splits `s3://bucket/prefix` into its bucket and prefix.
fn parse_location(location: &str) -> anyhow::Result<(String, String)> {
    let rest = location.strip_prefix("s3://").with_context(|| format!("{location:?} is not an s3://bucket/prefix"))?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    anyhow::ensure!(!bucket.is_empty(), "{location:?} names no bucket");
    Ok((bucket.to_owned(), prefix.to_owned()))
}

#[derive(Debug, Serialize)]
struct SealReport<'a> {
    package: &'a registry::event::v1::PackageFinalized,
    sequence: u64,
    hash: String,
}

async fn seal(config: &Config, location: &str, name: Option<&str>, json: bool) -> anyhow::Result<Outcome> {
    let (bucket, prefix) = parse_location(location)?;
    let name = name.map_or_else(|| format!("{bucket}/{prefix}"), str::to_owned);
    let registry = open_registry(config).await?;
    // The configured store: the local folder, or the S3 upstream the server writes to.
    let store = crate::server::open_blobs(config).context("cannot open the blob store")?;

    let caller = operator("package seal");
    let mut attempt = 0;
    // Set once gc took the manifest's blob: gc marks no pinned blob, so the next placement of
    // the same blob (the local store names blobs by their bytes) cannot lose to another pass.
    let mut pin: Option<(String, Pin)> = None;
    let sealed = loop {
        attempt += 1;
        let manifest = {
            let (name, bucket, prefix) = (name.clone(), bucket.clone(), prefix.clone());
            registry.read(move |conn| conn.manifest(&name, &bucket, &prefix)).await?
        };
        // Read before the manifest's blob is placed, so a gc deleting it meanwhile is noticed.
        let placed_after = registry.deletion_epoch().await?;
        let object = store_manifest(store.as_ref(), &manifest).await?;
        let placement = match &pin {
            Some((blob, held)) if object.content.parts.iter().all(|part| &part.blob == blob) => {
                Placement::Pinned(*held)
            }
            _ => Placement::After(placed_after),
        };
        match registry.seal_package(caller.clone(), manifest, object, placement).await {
            Err(registry::Error::PackageChanged) if attempt < SEAL_ATTEMPTS => {}
            // A gc took the manifest's blob while it was being placed: pin it, wait until gc
            // is done with it, and place it again.
            Err(registry::Error::BlobDeleted { blob }) if attempt < SEAL_ATTEMPTS => {
                if pin.as_ref().is_none_or(|(pinned, _)| *pinned != blob) {
                    if let Some((_, old)) = pin.take() {
                        registry.unpin(old).await?;
                    }
                    pin = Some((blob.clone(), registry.pin_blob(blob.clone()).await?));
                }
                let deadline = std::time::Instant::now() + GC_WAIT;
                while registry.deletion_pending(blob.clone()).await? {
                    if std::time::Instant::now() > deadline {
                        bail!("gc has been deleting the manifest's blob {blob} for {GC_WAIT:?}; try again later");
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
            }
            result => break result,
        }
    };
    if let Some((_, held)) = pin {
        // Left behind, it would be dropped by the first gc pass past its lifetime.
        registry.unpin(held).await?;
    }
    let sealed = sealed.map_err(|err| match err {
        registry::Error::NoSuchBucket(bucket) => anyhow::anyhow!("no bucket {bucket}"),
        registry::Error::Sealed { package } => anyhow::anyhow!("{location} lies inside sealed package {package}"),
        registry::Error::PackageExists(name) => anyhow::anyhow!("a package called {name:?} exists already"),
        registry::Error::PackageChanged => anyhow::anyhow!("objects under {location} kept changing; try again"),
        other => anyhow::Error::new(other).context("cannot seal"),
    })?;
    let report =
        SealReport { package: &sealed.package, sequence: sealed.event.sequence, hash: hex::encode(sealed.event.hash) };
    let line = if json {
        serde_json::to_string(&report)?
    } else {
        let p = &sealed.package;
        format!(
            "sealed package {} (s3://{}/{}): {} members, {} bytes; manifest s3://{}/{} version {} blake3 {}; event {} {}",
            p.name,
            p.bucket,
            p.prefix,
            p.members,
            p.bytes,
            p.bucket,
            p.manifest_key,
            p.manifest_version_id,
            p.manifest_blake3,
            report.sequence,
            report.hash
        )
    };
    print_line(&mut std::io::stdout().lock(), &line)?;
    Ok(Outcome::Ok)
}

/// Writes the manifest's bytes to the blob store and describes the object that holds them.
async fn store_manifest(store: &dyn BlobStore, manifest: &Manifest) -> anyhow::Result<ObjectPut> {
    let bytes = manifest.encode();
    let len = bytes.len() as u64;
    let body: crate::backend::BodyStream = Box::pin(futures::stream::once(async move { Ok(Bytes::from(bytes)) }));
    let staged = store.put(body, Some(len), &[], None, None).await.context("cannot store the manifest")?;
    let blake3 = staged.blake3().context("the manifest's bytes were not hashed")?.to_hex().to_string();
    let etag = hex::encode(staged.md5());
    let blob = staged.commit().await.context("cannot store the manifest")?;
    let part = BlobPart {
        blob: blob.to_string(),
        size: len,
        etag: etag.clone(),
        checksums: Default::default(),
        subtree: None,
        subtrees: None,
        offset: None,
        store_etag: None,
        wrapped_key: None,
    };
    Ok(ObjectPut {
        bucket: manifest.bucket.clone(),
        key: manifest.key(),
        version_id: crate::clock::new_id(),
        content: ObjectContent {
            size: len,
            etag,
            blake3,
            content_type: Some("application/json".to_owned()),
            parts: vec![part],
            ..ObjectContent::default()
        },
        origin: Origin::Put,
        retention: None,
        legal_hold: false,
    })
}

/// What `package verify` found.
#[derive(Debug, Serialize)]
struct VerifyReport {
    ok: bool,
    package: String,
    members: u64,
    bytes: u64,
    /// One line per problem.
    problems: Vec<String>,
}

async fn verify(config: &Config, wanted: &str, json: bool) -> anyhow::Result<Outcome> {
    // The configured store: the local folder, or the S3 upstream the server writes to.
    let store = crate::server::open_blobs(config).context("cannot open the blob store")?;
    let keys = KeyRing::open(&config.master_key_path())?.map(|keys| Arc::new(keys) as Arc<dyn KeyProvider>);
    let stored = Stored { store, keys };
    let wanted_owned = wanted.to_owned();
    let (package, recorded, manifest_parts) = read_registry(config, move |conn| {
        let package = find_package(conn, &wanted_owned)?;
        let recorded = package_check::sealed_digest(conn.event(package.sealed_seq)?.as_ref(), &package)?;
        let manifest =
            conn.version(&package.sealed.bucket, &package.sealed.manifest_key, &package.sealed.manifest_version_id)?;
        Ok((package, recorded, manifest.map(|v| v.content.parts)))
    })
    .await?;

    let mut report =
        VerifyReport { ok: false, package: package.sealed.name.clone(), members: 0, bytes: 0, problems: Vec::new() };
    let (manifest, problems) =
        package_check::manifest(&stored, &package, &recorded, manifest_parts.as_deref(), inline(config)).await?;
    report.problems.extend(problems);
    if let Some(manifest) = manifest {
        check_members(config, &stored, &package, &manifest, &mut report).await?;
    }
    report.ok = report.problems.is_empty();
    let mut out = std::io::stdout().lock();
    if json {
        print_line(&mut out, &serde_json::to_string(&report)?)?;
    } else {
        for problem in &report.problems {
            print_line(&mut out, &format!("FAILED {problem}"))?;
        }
        let verdict = if report.ok { "ok" } else { "FAILED" };
        print_line(
            &mut out,
            &format!(
                "package {}: {} members, {} bytes re-hashed: {verdict}",
                report.package, report.members, report.bytes
            ),
        )?;
    }
    Ok(if report.ok { Outcome::Ok } else { Outcome::CheckFailed })
}

/// Re-hashes every member listed in the manifest; each must still be the version the
/// manifest names, and its bytes must hash to the manifest's BLAKE3.
async fn check_members(
    config: &Config,
    stored: &Stored,
    package: &Package,
    manifest: &Manifest,
    report: &mut VerifyReport,
) -> anyhow::Result<()> {
    let wanted: Vec<(String, String)> =
        manifest.members.iter().map(|m| (m.key.clone(), m.version_id.clone())).collect();
    let bucket = package.sealed.bucket.clone();
    let versions: Vec<_> =
        read_registry(config, move |conn| wanted.iter().map(|(key, id)| Ok(conn.version(&bucket, key, id)?)).collect())
            .await?;
    let bar = progress::bar("members", manifest.members.iter().map(|m| m.size).sum(), Unit::Bytes);
    let bucket = &package.sealed.bucket;
    for (member, version) in manifest.members.iter().zip(versions) {
        let checked = package_check::member(stored, bucket, member, version.as_ref(), true, inline(config)).await;
        if checked.rehashed {
            report.members += 1;
            report.bytes += member.size;
        }
        report.problems.extend(checked.problems);
        bar.inc(member.size);
    }
    bar.finish_and_clear();
    Ok(())
}

/// Reads an inline part's bytes from the registry of `config`.
fn inline<'c>(config: &'c Config) -> impl Fn(String) -> BoxFuture<'c, anyhow::Result<Option<Vec<u8>>>> + 'c {
    move |locator| Box::pin(read_registry(config, move |conn| Ok(conn.inline_bytes(&locator)?)))
}

/// The package named `wanted`, or sealing the `s3://bucket/prefix` it gives.
fn find_package(conn: &Connection, wanted: &str) -> anyhow::Result<Package> {
    let found = if wanted.starts_with("s3://") {
        let (bucket, prefix) = parse_location(wanted)?;
        conn.package_of_prefix(&bucket, &prefix)?
    } else {
        conn.package(wanted)?
    };
    match found {
        Some(package) => Ok(package),
        None => bail!("no package {wanted}"),
    }
}

async fn list(config: &Config, json: bool) -> anyhow::Result<Outcome> {
    let listed = read_registry(config, |conn| Ok(conn.packages()?)).await?;
    let mut out = std::io::stdout().lock();
    if json {
        print_line(&mut out, &serde_json::to_string(&listed)?)?;
        return Ok(Outcome::Ok);
    }
    if !print_line(&mut out, &format!("{:<32}  {:>8}  {:>14}  {:>8}  LOCATION", "NAME", "MEMBERS", "BYTES", "SEQ"))? {
        return Ok(Outcome::Ok);
    }
    for p in &listed {
        let line = format!(
            "{:<32}  {:>8}  {:>14}  {:>8}  s3://{}/{}",
            p.sealed.name, p.sealed.members, p.sealed.bytes, p.sealed_seq, p.sealed.bucket, p.sealed.prefix
        );
        if !print_line(&mut out, &line)? {
            break;
        }
    }
    Ok(Outcome::Ok)
}
