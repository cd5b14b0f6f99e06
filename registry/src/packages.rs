//! Packages: a prefix of a bucket sealed as one unit.
//!
//! Sealing writes a manifest (every current version under the prefix: key, version id,
//! BLAKE3, size, ETag) as an object at `<prefix>.package.json` and a `v1.package.finalized`
//! event with the manifest's BLAKE3, both in one transaction. From then on every command that
//! would change a key under the prefix refuses with [`crate::Error::Sealed`]: PUT, copy into,
//! multipart create, part upload and completion, delete, tagging, retention and legal hold.
//! The manifest key starts with the prefix, so the manifest is sealed with its package.
//!
//! The manifest is built from the views ([`crate::queries::Reads::manifest`]) and checked
//! again inside the writer's transaction ([`crate::Registry::seal_package`], with the other
//! commands), so no write can slip in between the list and the seal. Its bytes go to the blob
//! store first; that is the gateway's part, as the registry does no blob I/O. This module holds
//! the types the commands, the reads and replay's rule check share: the manifest, its members
//! and a sealed package; the refusal of a change under a seal is
//! [`crate::queries::Reads::refuse_sealed`].

use serde::{Deserialize, Serialize};

use crate::event::Event;
use crate::event::v1::{self, PackageFinalized};

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
