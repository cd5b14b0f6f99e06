//! `artifact-store checkpoint create|verify`: signed checkpoints of the event chain.
//!
//! The hash chain shows that no event was changed *unless* every later hash was recomputed
//! too: someone who can rewrite the whole SQLite file can produce a chain that verifies. A
//! checkpoint is the pair (sequence, hash of the event at that sequence) with a time, signed
//! with an ed25519 key that lives outside the database. Kept elsewhere (a file in a backup, an
//! object in a COMPLIANCE-locked bucket), it lets [`check`] prove that the log still extends
//! it: the event at that sequence still has that hash and the chain verifies up to the head.
//!
//! # File format (`artifact-store.checkpoint.v1`)
//! One JSON object: `created_at` (milliseconds since the epoch), `format`, `hash` (hex, 32
//! bytes), `public_key` (hex, 32 bytes), `sequence`, `signature` (hex, 64 bytes). The
//! signature is ed25519 over the canonical JSON of the four fields `created_at`, `format`,
//! `hash` and `sequence`: keys sorted, no whitespace, as `jq -cjS
//! '{created_at,format,hash,sequence}'` prints them.
//!
//! `create --s3 s3://bucket/key` also uploads it with an S3 client configured from the standard
//! `AWS_*` variables, for example to a bucket under Object Lock in COMPLIANCE mode upstream.
//!
//! # Key
//! `registry.checkpoint_key` names the key file, by default `<data_dir>/checkpoint.key`. On
//! first use `create` generates it: the hex of a 32-byte ed25519 seed, mode 0600. `verify`
//! trusts the public half of that key, or the one given with `--public-key`.

use std::fs::{self, File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use registry::log::{self, ChainHead};
use rusqlite::Connection;
use serde::{Deserialize, Serialize};

use super::progress::{self, Unit};
use super::{Outcome, existing_registry, print_line, read_registry};
use crate::config::Config;

/// The `format` of checkpoints this build writes and reads.
pub const FORMAT: &str = "artifact-store.checkpoint.v1";

/// `checkpoint` and its subcommands.
#[derive(Debug, clap::Args)]
pub struct CheckpointArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: CheckpointCommand,
}

/// Subcommands of `checkpoint`.
#[derive(Debug, clap::Subcommand)]
pub enum CheckpointCommand {
    /// Verify the chain and sign its head; print the checkpoint or write it to a file.
    Create {
        /// Write the checkpoint to this file instead of stdout.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Also upload it to this S3 location; the endpoint, region and credentials come from
        /// the standard `AWS_*` variables (`AWS_ENDPOINT_URL` for a non-AWS endpoint).
        #[arg(long, value_name = "s3://BUCKET/KEY")]
        s3: Option<String>,
    },
    /// Check that the log still extends a checkpoint.
    Verify {
        /// The checkpoint file.
        file: PathBuf,
        /// Trust this public key (hex) instead of the configured key's.
        #[arg(long, value_name = "HEX")]
        public_key: Option<String>,
    },
}

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

    fn sign(head: ChainHead, created_at: i64, key: &SigningKey) -> Self {
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
    fn signature_holds(&self, trusted: &VerifyingKey) -> bool {
        let mut bytes = [0; 64];
        hex::decode_to_slice(&self.signature, &mut bytes).is_ok()
            && self.public_key == hex::encode(trusted.as_bytes())
            && trusted.verify_strict(&self.signed_bytes(), &Signature::from_bytes(&bytes)).is_ok()
    }
}

/// Runs a `checkpoint` subcommand.
///
/// # Errors
/// No registry, an unreadable or unwritable key or checkpoint file.
pub async fn run(config: &Config, args: &CheckpointArgs, json: bool) -> anyhow::Result<Outcome> {
    match &args.command {
        CheckpointCommand::Create { out, s3 } => create(config, out.as_deref(), s3.as_deref()).await,
        CheckpointCommand::Verify { file, public_key } => {
            let problems = check(config, file, public_key.as_deref()).await?;
            let mut stdout = std::io::stdout().lock();
            if json {
                let report = serde_json::json!({ "ok": problems.is_empty(), "problems": problems });
                print_line(&mut stdout, &report.to_string())?;
            } else {
                for problem in &problems {
                    print_line(&mut stdout, &format!("FAILED {problem}"))?;
                }
                if problems.is_empty() {
                    print_line(&mut stdout, "ok: the log extends the checkpoint")?;
                }
            }
            Ok(if problems.is_empty() { Outcome::Ok } else { Outcome::CheckFailed })
        }
    }
}

fn key_path(config: &Config) -> PathBuf {
    config.registry.checkpoint_key.clone().unwrap_or_else(|| config.storage.data_dir.join("checkpoint.key"))
}

async fn create(config: &Config, out: Option<&Path>, s3: Option<&str>) -> anyhow::Result<Outcome> {
    let upload_to = s3.map(parse_s3_url).transpose()?;
    // No registry: say so before generating a key for it.
    existing_registry(config)?;
    let key = signing_key(&key_path(config))?;
    let verified = read_registry(config, verify_chain).await?;
    if let Some(sequence) = verified.first_mismatch {
        eprintln!("error: the event chain is broken at event {sequence}; not signing it (run `artifact-store verify`)");
        return Ok(Outcome::CheckFailed);
    }
    anyhow::ensure!(verified.head.sequence > 0, "the log is empty; there is nothing to checkpoint");
    let created_at = i64::try_from(SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis())?;
    let checkpoint = Checkpoint::sign(verified.head, created_at, &key);
    let text = serde_json::to_string(&checkpoint)?;
    match out {
        Some(file) => {
            fs::write(file, format!("{text}\n")).with_context(|| format!("cannot write {}", file.display()))?;
            eprintln!(
                "checkpoint of event {} written to {} (public key {})",
                checkpoint.sequence,
                file.display(),
                checkpoint.public_key
            );
        }
        None if upload_to.is_none() => {
            print_line(&mut std::io::stdout().lock(), &text)?;
        }
        None => {}
    }
    if let Some((bucket, key)) = upload_to {
        upload(&bucket, &key, format!("{text}\n")).await?;
        eprintln!("checkpoint of event {} uploaded to s3://{bucket}/{key}", checkpoint.sequence);
    }
    Ok(Outcome::Ok)
}

fn parse_s3_url(url: &str) -> anyhow::Result<(String, String)> {
    let rest = url.strip_prefix("s3://").with_context(|| format!("{url:?} is not an s3://bucket/key"))?;
    match rest.split_once('/') {
        Some((bucket, key)) if !bucket.is_empty() && !key.is_empty() => Ok((bucket.to_owned(), key.to_owned())),
        _ => bail!("{url:?} is not an s3://bucket/key"),
    }
}

/// Uploads the checkpoint with an S3 client configured from the standard `AWS_*` variables:
/// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION` (or
/// `AWS_DEFAULT_REGION`, default `us-east-1`), `AWS_ENDPOINT_URL` (path-style when set) and
/// `AWS_CA_BUNDLE` (an extra trusted PEM).
async fn upload(bucket: &str, key: &str, body: String) -> anyhow::Result<()> {
    use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
    use aws_smithy_http_client::tls::{self, TlsContext, TrustStore};

    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let access_key = var("AWS_ACCESS_KEY_ID").context("--s3 needs AWS_ACCESS_KEY_ID")?;
    let secret_key = var("AWS_SECRET_ACCESS_KEY").context("--s3 needs AWS_SECRET_ACCESS_KEY")?;
    let region = var("AWS_REGION").or_else(|| var("AWS_DEFAULT_REGION")).unwrap_or_else(|| "us-east-1".to_owned());
    let mut trust = TrustStore::default();
    if let Some(bundle) = var("AWS_CA_BUNDLE") {
        let pem = fs::read(&bundle).with_context(|| format!("cannot read AWS_CA_BUNDLE {bundle}"))?;
        trust = trust.with_pem_certificate(pem);
    }
    let tls_context = TlsContext::builder().with_trust_store(trust).build().context("TLS settings")?;
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(tls::rustls_provider::CryptoMode::Ring))
        .tls_context(tls_context)
        .build_https();
    let mut builder = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(region))
        .credentials_provider(Credentials::new(access_key, secret_key, var("AWS_SESSION_TOKEN"), None, "environment"))
        .http_client(http);
    if let Some(endpoint) = var("AWS_ENDPOINT_URL") {
        builder = builder.endpoint_url(endpoint).force_path_style(true);
    }
    let client = aws_sdk_s3::Client::from_conf(builder.build());
    client
        .put_object()
        .bucket(bucket)
        .key(key)
        .content_type("application/json")
        .body(body.into_bytes().into())
        .send()
        .await
        .map_err(|err| anyhow::anyhow!("{}", aws_sdk_s3::error::DisplayErrorContext(err)))
        .with_context(|| format!("cannot upload the checkpoint to s3://{bucket}/{key}"))?;
    Ok(())
}

/// Checks the checkpoint in `file` against the registry: signed by the trusted key (given,
/// or the configured key's public half), the event at its sequence has its hash, and the
/// chain verifies from the first event to the head. Returns the problems found.
///
/// # Errors
/// An unreadable checkpoint, key or registry.
pub async fn check(config: &Config, file: &Path, public_key: Option<&str>) -> anyhow::Result<Vec<String>> {
    let text = fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let checkpoint: Checkpoint =
        serde_json::from_str(&text).with_context(|| format!("{} is not a checkpoint", file.display()))?;
    if checkpoint.format != FORMAT {
        bail!("{} has format {:?}; this build reads {FORMAT}", file.display(), checkpoint.format);
    }
    let trusted = match public_key {
        Some(hex_key) => parse_public_key(hex_key)?,
        None => {
            let path = key_path(config);
            anyhow::ensure!(
                path.exists(),
                "no checkpoint key at {} to trust; pass --public-key HEX or set registry.checkpoint_key",
                path.display()
            );
            signing_key(&path)?.verifying_key()
        }
    };
    let mut problems = Vec::new();
    if !checkpoint.signature_holds(&trusted) {
        problems.push(format!(
            "checkpoint: not signed by the trusted key {} (it names {})",
            hex::encode(trusted.as_bytes()),
            checkpoint.public_key
        ));
    }
    let sequence = checkpoint.sequence;
    let (verified, found) =
        read_registry(config, move |conn| Ok((verify_chain(conn)?, log::hash_at(conn, sequence)?))).await?;
    match found {
        None => problems
            .push(format!("checkpoint: the log has no event {sequence} (it ends at {})", verified.head.sequence)),
        Some(hash) if hex::encode(hash) != checkpoint.hash => problems.push(format!(
            "checkpoint: event {sequence} has hash {}, the checkpoint signed {}: the log was rewritten",
            hex::encode(hash),
            checkpoint.hash
        )),
        Some(_) => {}
    }
    if let Some(at) = verified.first_mismatch {
        problems.push(format!("checkpoint: the chain is broken at event {at}, so it does not extend the checkpoint"));
    }
    Ok(problems)
}

fn verify_chain(conn: &Connection) -> anyhow::Result<log::Verified> {
    let head = ChainHead::load(conn)?;
    let bar = progress::bar("chain", head.sequence, Unit::Events);
    let verified = log::verify_with_progress(conn, |sequence| bar.set_position(sequence))?;
    bar.finish_and_clear();
    Ok(verified)
}

fn parse_public_key(text: &str) -> anyhow::Result<VerifyingKey> {
    let mut bytes = [0; 32];
    hex::decode_to_slice(text.trim(), &mut bytes).context("--public-key must be 64 hex digits")?;
    VerifyingKey::from_bytes(&bytes).context("--public-key is not an ed25519 public key")
}

/// Reads the signing key at `path`, generating it (mode 0600) if there is none.
fn signing_key(path: &Path) -> anyhow::Result<SigningKey> {
    match fs::read_to_string(path) {
        Ok(text) => {
            let mut seed = [0; 32];
            hex::decode_to_slice(text.trim(), &mut seed)
                .with_context(|| format!("{} does not hold a hex ed25519 seed", path.display()))?;
            if fs::metadata(path).is_ok_and(|meta| meta.permissions().mode() & 0o077 != 0) {
                tracing::warn!(path = %path.display(), "checkpoint key is accessible to other users; chmod 600 it");
            }
            Ok(SigningKey::from_bytes(&seed))
        }
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            let seed: [u8; 32] = rand::random();
            write_key(path, &seed).with_context(|| format!("cannot write {}", path.display()))?;
            eprintln!("generated checkpoint key {}", path.display());
            Ok(SigningKey::from_bytes(&seed))
        }
        Err(err) => Err(err).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// Creates the key file, owner-only, failing rather than replacing one that appeared meanwhile.
fn write_key(path: &Path, seed: &[u8; 32]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir)?;
    let mut file = OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    writeln!(file, "{}", hex::encode(seed))?;
    file.sync_all()?;
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

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
