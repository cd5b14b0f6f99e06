//! Whether a sealed package still holds: its manifest's bytes hash to the digest its seal
//! recorded, and each member the manifest lists is still the version it names, with bytes
//! that hash to the manifest's BLAKE3. What `package verify` and the console's package page
//! share; each reads the registry its own way and hands the records in.

use registry::event::v1::BlobPart;
use registry::packages::{Manifest, Member, Package};
use registry::queries::ObjectVersion;

use crate::backend::BlobStore;
use crate::rehash::blake3_of;

/// The manifest of `package`, read back from `manifest_parts` (`None`: its version is gone)
/// and checked against `recorded`, the digest of the seal's event: the problems found, and
/// the manifest when its bytes are the sealed ones. `inline` reads an inline part's bytes.
///
/// # Errors
/// The store's read errors, and a manifest whose bytes hash right but do not parse.
pub async fn manifest<F>(
    store: &dyn BlobStore,
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
    let (digest, bytes) = blake3_of(store, parts, true, inline).await?;
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
/// version it names (`None`: gone), and, when `rehash`, against its bytes: the problems found.
pub async fn member<F>(
    store: &dyn BlobStore,
    bucket: &str,
    member: &Member,
    version: Option<&ObjectVersion>,
    rehash: bool,
    inline: impl Fn(String) -> F,
) -> Vec<String>
where
    F: Future<Output = anyhow::Result<Option<Vec<u8>>>>,
{
    let name = format!("s3://{bucket}/{} version {}", member.key, member.version_id);
    let Some(version) = version else {
        return vec![format!("{name} is missing")];
    };
    let mut problems = Vec::new();
    if version.content.blake3 != member.blake3 || version.content.size != member.size {
        problems.push(format!("{name}: the registry's record differs from the manifest"));
    }
    if rehash {
        match blake3_of(store, &version.content.parts, false, inline).await {
            Ok((digest, _)) if digest != member.blake3 => {
                problems.push(format!("{name}: its bytes hash to {digest}, the manifest says {}", member.blake3));
            }
            Ok(_) => {}
            Err(err) => problems.push(format!("{name}: cannot read its bytes ({err:#})")),
        }
    }
    problems
}
