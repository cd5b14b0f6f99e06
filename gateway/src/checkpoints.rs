//! Signed checkpoints of the event chain: their file format, the key that signs them, and the
//! folders where a serving gateway keeps those it makes by itself.
//!
//! The hash chain shows that no event was changed *unless* every later hash was recomputed
//! too: someone who can rewrite the whole SQLite file can produce a chain that verifies. A
//! checkpoint is the pair (sequence, hash of the event at that sequence) with a time, signed
//! with an ed25519 key that lives outside the database. Kept elsewhere (a file in a backup, an
//! object in a COMPLIANCE-locked bucket), it proves that the log still extends it: the event
//! at that sequence still has that hash and the chain verifies up to the head.
//!
//! # File format (`artifact-store.checkpoint.v1`)
//! One JSON object: `created_at` (milliseconds since the epoch), `format`, `hash` (hex, 32
//! bytes), `public_key` (hex, 32 bytes), `sequence`, `signature` (hex, 64 bytes). The
//! signature is ed25519 over the canonical JSON of the four fields `created_at`, `format`,
//! `hash` and `sequence`: keys sorted, no whitespace, as `jq -cjS
//! '{created_at,format,hash,sequence}'` prints them.
//!
//! # Key
//! `registry.checkpoint_key` names the key file, by default `<data_dir>/checkpoint.key`. On
//! first use it is generated: the hex of a 32-byte ed25519 seed, mode 0600.
//!
//! # Folders
//! A serving gateway signs its chain's head by itself ([`crate::worker::checkpointer`]) and
//! writes each checkpoint as `<sequence, 20 digits>.json` to `<data_dir>/checkpoints/` and,
//! when `registry.checkpoint_copy_dir` is set, to that folder too: a place outside the data
//! folder (another disk, a mounted backup), so that someone who can edit the data folder
//! cannot remove the newest checkpoint with the log they rewrite. With
//! `registry.checkpoint_copy_s3` each one is also uploaded to an S3 bucket ([`s3`]), ideally
//! one under Object Lock. Plain `verify` checks the log against the newest checkpoint of any
//! of these places ([`newest`], [`s3::newest`]).

pub mod s3;

use std::fs::{self, File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use registry::log::ChainHead;
use serde::{Deserialize, Serialize};

use crate::config::Config;

/// The `format` of checkpoints this build writes and reads.
pub const FORMAT: &str = "artifact-store.checkpoint.v1";

/// The signed part of a checkpoint, fields in sorted order so `serde_json` writes it canonically.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Signed {
    created_at: i64,
    format: String,
    hash: String,
    sequence: u64,
}

/// A checkpoint file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// When it was made, milliseconds since the epoch.
    pub created_at: i64,
    /// [`FORMAT`].
    pub format: String,
    /// Hex hash of the event at `sequence`.
    pub hash: String,
    /// Hex ed25519 public key that signed it.
    pub public_key: String,
    /// The checkpointed sequence (the head when it was made).
    pub sequence: u64,
    /// Hex ed25519 signature over the canonical JSON of the other fields but `public_key`.
    pub signature: String,
}

impl Checkpoint {
    fn signed_bytes(&self) -> Vec<u8> {
        let signed = Signed {
            created_at: self.created_at,
            format: self.format.clone(),
            hash: self.hash.clone(),
            sequence: self.sequence,
        };
        serde_json::to_vec(&signed).expect("checkpoints always serialise")
    }

    /// Signs `head`, made at `created_at`, with `key`.
    #[must_use]
    pub fn sign(head: ChainHead, created_at: i64, key: &SigningKey) -> Self {
        let mut checkpoint = Self {
            created_at,
            format: FORMAT.to_owned(),
            hash: hex::encode(head.hash),
            public_key: hex::encode(key.verifying_key().as_bytes()),
            sequence: head.sequence,
            signature: String::new(),
        };
        checkpoint.signature = hex::encode(key.sign(&checkpoint.signed_bytes()).to_bytes());
        checkpoint
    }

    /// Whether `trusted` signed this checkpoint. Strict verification: an auditor may paste a
    /// public key from a checkpoint file, and a weak (small-order) key would let plain ed25519
    /// verification accept a signature made without any secret.
    pub fn signature_holds(&self, trusted: &VerifyingKey) -> bool {
        let mut bytes = [0; 64];
        hex::decode_to_slice(&self.signature, &mut bytes).is_ok()
            && self.public_key == hex::encode(trusted.as_bytes())
            && trusted.verify_strict(&self.signed_bytes(), &Signature::from_bytes(&bytes)).is_ok()
    }
}

impl Checkpoint {
    /// Reads a checkpoint file.
    ///
    /// # Errors
    /// An unreadable file, or one that is not a checkpoint of [`FORMAT`].
    pub fn read(file: &Path) -> anyhow::Result<Self> {
        let text = fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
        Self::parse(&text, &file.display().to_string())
    }

    /// Parses the text of a checkpoint read from `origin` (named in errors).
    ///
    /// # Errors
    /// Text that is not a checkpoint of [`FORMAT`].
    pub fn parse(text: &str, origin: &str) -> anyhow::Result<Self> {
        let checkpoint: Checkpoint =
            serde_json::from_str(text).with_context(|| format!("{origin} is not a checkpoint"))?;
        if checkpoint.format != FORMAT {
            bail!("{origin} has format {:?}; this build reads {FORMAT}", checkpoint.format);
        }
        Ok(checkpoint)
    }

    /// The chain head it signed.
    ///
    /// # Errors
    /// A hash that is not 32 bytes of hex.
    pub fn head(&self) -> anyhow::Result<ChainHead> {
        let mut hash = [0; 32];
        hex::decode_to_slice(&self.hash, &mut hash).context("the checkpoint's hash is not 32 bytes of hex")?;
        Ok(ChainHead { sequence: self.sequence, hash })
    }

    /// The name an automatic checkpoint's file gets: its sequence, zero-padded so that names
    /// sort as sequences do.
    #[must_use]
    pub fn file_name(&self) -> String {
        format!("{:020}.json", self.sequence)
    }
}

/// The key file the configuration names.
#[must_use]
pub fn key_path(config: &Config) -> PathBuf {
    config.registry.checkpoint_key.clone().unwrap_or_else(|| config.storage.data_dir.join("checkpoint.key"))
}

/// Where automatic checkpoints are uploaded to (`registry.checkpoint_copy_s3`), if anywhere.
///
/// # Errors
/// A value that is not an `s3://bucket/prefix/` (configuration validation refuses it first).
pub fn s3_copy(config: &Config) -> anyhow::Result<Option<s3::S3Location>> {
    config.registry.checkpoint_copy_s3.as_deref().map(|url| s3::S3Location::parse(url, true)).transpose()
}

/// The folders automatic checkpoints are written to and `verify` looks in: the data folder's
/// `checkpoints/`, then `registry.checkpoint_copy_dir` if set.
#[must_use]
pub fn folders(config: &Config) -> Vec<PathBuf> {
    let mut folders = vec![config.storage.data_dir.join("checkpoints")];
    folders.extend(config.registry.checkpoint_copy_dir.clone());
    folders
}

/// Writes `checkpoint` into each folder (created if needed), each file whole or not at all
/// (a temp file, fsynced, renamed, the folder fsynced).
///
/// # Errors
/// The first folder that cannot be written; the folders before it hold the checkpoint.
pub fn store(checkpoint: &Checkpoint, folders: &[PathBuf]) -> anyhow::Result<()> {
    let text = format!("{}\n", serde_json::to_string(checkpoint)?);
    for folder in folders {
        let write = || -> std::io::Result<()> {
            fs::create_dir_all(folder)?;
            let name = checkpoint.file_name();
            let temp = folder.join(format!(".{name}.tmp"));
            let mut file = OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&temp)?;
            file.write_all(text.as_bytes())?;
            file.sync_all()?;
            fs::rename(&temp, folder.join(name))?;
            File::open(folder)?.sync_all()
        };
        write().with_context(|| format!("cannot write a checkpoint to {}", folder.display()))?;
    }
    Ok(())
}

/// The newest checkpoint (highest sequence) in `folders` that `trusted` signed, with its file.
/// Files that are not checkpoints or not signed by `trusted` are passed over: anyone may drop
/// a file there, but only the key makes a checkpoint.
///
/// # Errors
/// A folder that exists but cannot be listed.
pub fn newest(folders: &[PathBuf], trusted: &VerifyingKey) -> anyhow::Result<Option<(PathBuf, Checkpoint)>> {
    let mut best: Option<(PathBuf, Checkpoint)> = None;
    for folder in folders {
        let entries = match fs::read_dir(folder) {
            Ok(entries) => entries,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => continue,
            Err(err) => return Err(err).with_context(|| format!("cannot list {}", folder.display())),
        };
        for entry in entries {
            let path = entry.with_context(|| format!("cannot list {}", folder.display()))?.path();
            if path.extension().is_none_or(|ext| ext != "json") {
                continue;
            }
            let Ok(checkpoint) = Checkpoint::read(&path) else { continue };
            let newer = best.as_ref().is_none_or(|(_, b)| checkpoint.sequence > b.sequence);
            if newer && checkpoint.signature_holds(trusted) {
                best = Some((path, checkpoint));
            }
        }
    }
    Ok(best)
}

/// Reads the signing key at `path`, generating it (mode 0600) if there is none.
pub fn signing_key(path: &Path) -> anyhow::Result<SigningKey> {
    match read_key(path) {
        Err(err) if err.downcast_ref::<std::io::Error>().is_some_and(|e| e.kind() == std::io::ErrorKind::NotFound) => {
            let seed: [u8; 32] = rand::random();
            match crate::private_file::create(path, format!("{}\n", hex::encode(seed)).as_bytes()) {
                Ok(()) => {
                    eprintln!("generated checkpoint key {}", path.display());
                    Ok(SigningKey::from_bytes(&seed))
                }
                // Another gateway on the same data folder made it first: that one is the key.
                Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => read_key(path),
                Err(err) => Err(err).with_context(|| format!("cannot write {}", path.display())),
            }
        }
        read => read,
    }
}

/// The key at `path`; a missing file is the `io::Error` itself, for [`signing_key`] to tell.
fn read_key(path: &Path) -> anyhow::Result<SigningKey> {
    let text = fs::read_to_string(path)?;
    let mut seed = [0; 32];
    hex::decode_to_slice(text.trim(), &mut seed)
        .with_context(|| format!("{} does not hold a hex ed25519 seed", path.display()))?;
    if fs::metadata(path).is_ok_and(|meta| meta.permissions().mode() & 0o077 != 0) {
        tracing::warn!(path = %path.display(), "checkpoint key is accessible to other users; chmod 600 it");
    }
    Ok(SigningKey::from_bytes(&seed))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Gateways started together on one shared data folder each ask for the key the first
    /// time: one makes it, and every one of them signs with that one.
    #[test]
    fn processes_asking_for_a_new_key_at_once_all_get_the_one_made() {
        for _ in 0..20 {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("checkpoint.key");
            let start = std::sync::Barrier::new(8);
            let keys: Vec<_> = std::thread::scope(|scope| {
                let askers: Vec<_> = (0..8)
                    .map(|_| {
                        scope.spawn(|| {
                            start.wait();
                            signing_key(&path).map(|key| key.to_bytes())
                        })
                    })
                    .collect();
                askers.into_iter().map(|asker| asker.join().unwrap()).collect()
            });
            let on_disk = signing_key(&path).unwrap().to_bytes();
            for key in keys {
                assert_eq!(key.expect("every asker gets a key"), on_disk, "every asker signs with the key on disk");
            }
            assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1, "no temporary file is left");
        }
    }

    #[test]
    fn a_checkpoint_verifies_only_unchanged_and_with_its_key() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let head = ChainHead { sequence: 42, hash: [9; 32] };
        let checkpoint = Checkpoint::sign(head, 1_800_000_000_000, &key);
        assert!(checkpoint.signature_holds(&key.verifying_key()));
        let other = SigningKey::from_bytes(&[8; 32]);
        assert!(!checkpoint.signature_holds(&other.verifying_key()));
        let moved = Checkpoint { sequence: 41, ..checkpoint.clone() };
        assert!(!moved.signature_holds(&key.verifying_key()));
        assert_eq!(
            String::from_utf8(checkpoint.signed_bytes()).unwrap(),
            format!(r#"{{"created_at":1800000000000,"format":"{FORMAT}","hash":"{}","sequence":42}}"#, "09".repeat(32))
        );
    }

    #[test]
    fn a_signature_needing_no_secret_is_refused() {
        // The identity point as public key: with R = identity and s = 0, plain ed25519
        // verification accepts any message.
        let mut identity = [0; 32];
        identity[0] = 1;
        let weak = VerifyingKey::from_bytes(&identity).unwrap();
        let forged = Checkpoint {
            created_at: 1_800_000_000_000,
            format: FORMAT.to_owned(),
            hash: "09".repeat(32),
            public_key: hex::encode(identity),
            sequence: 42,
            signature: hex::encode([identity, [0; 32]].concat()),
        };
        assert!(!forged.signature_holds(&weak));
    }

    #[test]
    fn the_key_is_generated_owner_only_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("checkpoint.key");
        let first = signing_key(&path).unwrap();
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(signing_key(&path).unwrap().to_bytes(), first.to_bytes());
    }
}
