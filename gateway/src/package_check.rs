//! Whether a sealed package still holds: its manifest's bytes hash to the digest its seal
//! recorded, and each member the manifest lists is still the version it names, with bytes
//! that hash to the manifest's BLAKE3. What `package verify` and the console's package page
//! share; each reads the registry its own way and hands the records in.

use registry::event::v1::BlobPart;
use registry::packages::{Manifest, Member, Package};
use registry::queries::ObjectVersion;

use crate::rehash::{Stored, blake3_of};

/// The manifest digest that `event`, the package's `v1.package.finalized` event in the log,
/// recorded: what the manifest's bytes must hash to (the packages view could have been edited;
/// the event is covered by the chain that `verify` checks).
///
/// # Errors
/// No event, or one that is not this package's seal.
pub fn sealed_digest(event: Option<&registry::Event>, package: &Package) -> anyhow::Result<String> {
    let (sequence, name) = (package.sealed_seq, &package.sealed.name);
    let event = event.ok_or_else(|| anyhow::anyhow!("event {sequence} of package {name} is missing from the log"))?;
    match event.decode()? {
        registry::event::v1::Payload::PackageFinalized(seal) if seal.name == *name => Ok(seal.manifest_blake3),
        _ => Err(anyhow::anyhow!("event {sequence} is not the seal of package {name}")),
    }
}

/// The manifest of `package`, read back from `manifest_parts` (`None`: its version is gone)
/// and checked against `recorded`, the digest of the seal's event: the problems found, and
/// the manifest when its bytes are the sealed ones. `inline` reads an inline part's bytes.
///
/// # Errors
/// The store's read errors, and a manifest whose bytes hash right but do not parse.
pub async fn manifest<F>(
    stored: &Stored,
    package: &Package,
    recorded: &str,
    manifest_parts: Option<&[BlobPart]>,
    inline: impl Fn(String) -> F,
) -> anyhow::Result<(Option<Manifest>, Vec<String>)>
where
    F: Future<Output = anyhow::Result<Option<Vec<u8>>>>,
{
    let sealed = &package.sealed;
    let mut problems = Vec::new();
    if recorded != sealed.manifest_blake3 {
        problems.push(format!(
            "the packages view says the manifest digest is {}, the v1.package.finalized event {} says {recorded}",
            sealed.manifest_blake3, package.sealed_seq
        ));
    }
    let Some(parts) = manifest_parts else {
        problems.push(format!(
            "manifest s3://{}/{} version {} is missing",
            sealed.bucket, sealed.manifest_key, sealed.manifest_version_id
        ));
        return Ok((None, problems));
    };
    let (digest, bytes) = blake3_of(stored, parts, true, inline).await?;
    if digest != recorded {
        problems.push(format!(
            "manifest s3://{}/{}: its bytes hash to {digest}, the seal recorded {recorded}",
            sealed.bucket, sealed.manifest_key
        ));
        return Ok((None, problems));
    }
    let manifest = Manifest::decode(&bytes).map_err(|err| anyhow::anyhow!("the manifest does not parse: {err}"))?;
    Ok((Some(manifest), problems))
}

/// One `member` of a package in `bucket` against `version`, the registry's record of the
/// version it names (`None`: gone), and, when `rehash`, against its bytes.
pub async fn member<F>(
    stored: &Stored,
    bucket: &str,
    member: &Member,
    version: Option<&ObjectVersion>,
    rehash: bool,
    inline: impl Fn(String) -> F,
) -> MemberCheck
where
    F: Future<Output = anyhow::Result<Option<Vec<u8>>>>,
{
    let name = format!("s3://{bucket}/{} version {}", member.key, member.version_id);
    let mut checked = MemberCheck::default();
    let Some(version) = version else {
        checked.problems.push(format!("{name} is missing"));
        return checked;
    };
    if version.content.blake3 != member.blake3 || version.content.size != member.size {
        checked.problems.push(format!("{name}: the registry's record differs from the manifest"));
    }
    if rehash {
        match blake3_of(stored, &version.content.parts, false, inline).await {
            Ok((digest, _)) => {
                checked.rehashed = true;
                if digest != member.blake3 {
                    checked
                        .problems
                        .push(format!("{name}: its bytes hash to {digest}, the manifest says {}", member.blake3));
                }
            }
            Err(err) => checked.problems.push(format!("{name}: cannot read its bytes ({err:#})")),
        }
    }
    checked
}

/// What [`member`] found.
#[derive(Debug, Default)]
pub struct MemberCheck {
    /// What does not hold, one line each.
    pub problems: Vec<String>,
    /// Whether its bytes were read back and hashed.
    pub rehashed: bool,
}
