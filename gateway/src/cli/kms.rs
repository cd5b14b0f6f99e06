//! `artifact-store kms create|list|rotate-master`: the gateway's own KMS keys, which SSE-KMS
//! writes name (`x-amz-server-side-encryption-aws-kms-key-id: <id>`, its ARN, or
//! `alias/<name>`), and the rotation of the master key of SSE-S3. Keys are files beside the
//! master key (see `crypto::KeyRing`); gateways that share the folder find a new KMS key the
//! first time a request names it.

use super::print_line;
use crate::config::Config;
use crate::crypto::KeyRing;

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
}

/// Runs a `kms` command.
///
/// # Errors
/// A key file that cannot be read or written; an alias that is taken or invalid.
pub fn run(config: &Config, args: &KmsArgs, json: bool) -> anyhow::Result<()> {
    let keys = KeyRing::open_or_create(&config.master_key_path())?;
    let mut out = std::io::stdout().lock();
    match &args.command {
        KmsCommand::Create { alias } => {
            let alias = alias.as_deref().map(|a| a.strip_prefix("alias/").unwrap_or(a));
            let id = keys.create_kms_key(alias)?;
            let aliases: Vec<String> = alias.map(|a| format!("alias/{a}")).into_iter().collect();
            print_key(&mut out, &id, &aliases, json)?;
        }
        KmsCommand::List => {
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
