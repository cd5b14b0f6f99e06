//! Packages: a prefix of a bucket sealed as one unit.
//!
//! Sealing writes a manifest (every current version under the prefix: key, version id,
//! BLAKE3, size, ETag) as an object at `<prefix>.package.json` and a `v1.package.finalized`
//! event with the manifest's BLAKE3, both in one transaction. From then on every command that
//! would change a key under the prefix refuses with [`Error::Sealed`]: PUT, copy into,
//! multipart create, part upload and completion, delete, tagging, retention and legal hold.
//! The manifest key starts with the prefix, so the manifest is sealed with its package.
//!
//! The manifest is built from the views and checked again inside the writer's transaction
//! ([`crate::Registry::seal_package`], with the other commands), so no write can slip in
//! between the list and the seal. Its bytes go to the blob store first; that is the
//! gateway's part, as the registry does no blob I/O. This module holds what the commands,
//! the queries and replay's rule check share: the manifest, reads of the packages view and
//! the refusal of a change under a seal.

use rusqlite::{Connection, OptionalExtension, Row, params};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::event::Event;
use crate::event::v1::{self, PackageFinalized};
use crate::lifecycle::{Action, Effect};

/// What the manifest key adds to the prefix.
pub const MANIFEST_SUFFIX: &str = ".package.json";

/// The `format` field of every manifest this build writes.
pub const MANIFEST_FORMAT: &str = "artifact-store.package.v1";

/// The key of the manifest of a package sealing `prefix`.
#[must_use]
pub fn manifest_key(prefix: &str) -> String {
    format!("{prefix}{MANIFEST_SUFFIX}")
}

/// One object version of a package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// Object key.
    pub key: String,
    /// Version id (`null` in a bucket without versioning).
    pub version_id: String,
    /// BLAKE3 of the object's bytes, hex.
    pub blake3: String,
    /// Size in bytes.
    pub size: u64,
    /// ETag without quotes.
    pub etag: String,
}

/// The manifest object's content. Encoded as canonical JSON (the event payload encoding), so
/// the same members always give the same bytes and the same digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`MANIFEST_FORMAT`].
    pub format: String,
    /// The package's name.
    pub name: String,
    /// Bucket.
    pub bucket: String,
    /// The sealed prefix.
    pub prefix: String,
    /// Every current version under the prefix except the manifest itself, by key.
    pub members: Vec<Member>,
}

impl Manifest {
    /// The manifest `prefix` of `bucket` would get now: the current versions (not delete
    /// markers) of every key under it, by key.
    ///
    /// # Errors
    /// SQLite errors.
    pub fn collect(conn: &Connection, name: &str, bucket: &str, prefix: &str) -> Result<Self> {
        let own_key = manifest_key(prefix);
        let mut statement = conn.prepare_cached(
            "SELECT key, version_id, blake3, size, etag FROM object_versions
             WHERE bucket = ?1 AND is_latest = 1 AND is_delete_marker = 0
               AND key >= ?2 AND substr(key, 1, length(?2)) = ?2
             ORDER BY key",
        )?;
        let members = statement
            .query_map(params![bucket, prefix], |row| {
                Ok(Member {
                    key: row.get(0)?,
                    version_id: row.get(1)?,
                    blake3: row.get(2)?,
                    size: row.get(3)?,
                    etag: row.get(4)?,
                })
            })?
            .filter(|member| !matches!(member, Ok(m) if m.key == own_key))
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(Self {
            format: MANIFEST_FORMAT.to_owned(),
            name: name.to_owned(),
            bucket: bucket.to_owned(),
            prefix: prefix.to_owned(),
            members,
        })
    }

    /// The canonical bytes stored as the manifest object.
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        let value = serde_json::to_value(self).expect("manifests always serialise");
        v1::canonical_bytes(&value)
    }

    /// Parses stored manifest bytes.
    ///
    /// # Errors
    /// The JSON error when the bytes are not a manifest.
    pub fn decode(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    /// The key of this manifest's object.
    #[must_use]
    pub fn key(&self) -> String {
        manifest_key(&self.prefix)
    }
}

/// A sealed package, as the views hold it: what its event recorded, and when and by whom.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Package {
    /// The `v1.package.finalized` payload.
    #[serde(flatten)]
    pub sealed: PackageFinalized,
    /// Sequence of the `v1.package.finalized` event.
    pub sealed_seq: u64,
    /// When it was sealed, milliseconds since the epoch.
    pub sealed_at: i64,
    /// Who sealed it.
    pub actor: String,
}

const PACKAGE_COLUMNS: &str = "name, bucket, prefix, manifest_key, manifest_version_id, manifest_blake3, members,
    bytes, sealed_seq, sealed_at, actor";

fn package_from_row(row: &Row<'_>) -> rusqlite::Result<Package> {
    Ok(Package {
        sealed: PackageFinalized {
            name: row.get(0)?,
            bucket: row.get(1)?,
            prefix: row.get(2)?,
            manifest_key: row.get(3)?,
            manifest_version_id: row.get(4)?,
            manifest_blake3: row.get(5)?,
            members: row.get(6)?,
            bytes: row.get(7)?,
        },
        sealed_seq: row.get(8)?,
        sealed_at: row.get(9)?,
        actor: row.get(10)?,
    })
}

/// Every package, by name.
///
/// # Errors
/// SQLite errors.
pub fn packages(conn: &Connection) -> Result<Vec<Package>> {
    let mut statement = conn.prepare_cached(&format!("SELECT {PACKAGE_COLUMNS} FROM packages ORDER BY name"))?;
    let packages = statement.query_map([], package_from_row)?.collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(packages)
}

/// The package called `name`.
///
/// # Errors
/// SQLite errors.
pub fn package(conn: &Connection, name: &str) -> Result<Option<Package>> {
    Ok(conn
        .prepare_cached(&format!("SELECT {PACKAGE_COLUMNS} FROM packages WHERE name = ?1"))?
        .query_row([name], package_from_row)
        .optional()?)
}

/// The package that seals exactly `prefix` of `bucket`.
///
/// # Errors
/// SQLite errors.
pub fn package_of_prefix(conn: &Connection, bucket: &str, prefix: &str) -> Result<Option<Package>> {
    Ok(conn
        .prepare_cached(&format!("SELECT {PACKAGE_COLUMNS} FROM packages WHERE bucket = ?1 AND prefix = ?2"))?
        .query_row([bucket, prefix], package_from_row)
        .optional()?)
}

/// The name of a package whose prefix covers `key`, if any.
///
/// # Errors
/// SQLite errors.
pub fn sealing(conn: &Connection, bucket: &str, key: &str) -> Result<Option<String>> {
    Ok(conn
        .prepare_cached(
            "SELECT name FROM packages WHERE bucket = ?1 AND substr(?2, 1, length(prefix)) = prefix
             ORDER BY prefix LIMIT 1",
        )?
        .query_row([bucket, key], |row| row.get(0))
        .optional()?)
}

/// Refuses a change to `key` when a package seals it; every command that changes a key
/// calls this before it appends.
pub(crate) fn refuse_sealed(conn: &Connection, bucket: &str, key: &str) -> Result<()> {
    match sealing(conn, bucket, key)? {
        Some(package) => Err(Error::Sealed { package }),
        None => Ok(()),
    }
}

/// Whether `action` would change a version of a sealed package, which lifecycle leaves alone
/// as it leaves a locked version (an upload in flight may still be aborted).
pub(crate) fn lifecycle_spares_sealed(conn: &Connection, action: &Action) -> Result<bool> {
    let changes_a_version = !matches!(action.effect, Effect::AbortUpload { .. });
    Ok(changes_a_version && sealing(conn, &action.bucket, &action.key)?.is_some())
}

/// A package that was sealed: its `v1.package.finalized` event and the manifest's version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    /// The `v1.package.finalized` event.
    pub event: Event,
    /// The `v1.object.put` event of the manifest object.
    pub manifest_event: Event,
    /// What was recorded.
    pub package: PackageFinalized,
}
