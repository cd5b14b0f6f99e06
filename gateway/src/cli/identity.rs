//! `account`, `user` and `key`: accounts, their users, access keys and users' policies,
//! recorded as events by the operator (whoever can reach the data directory; the actor is
//! `operator`). They work while the gateway serves: it reads keys and policies from the
//! registry on each request, so a disabled key stops signing at once.
//!
//! Secrets are printed once, by `key create` and `account create`, and never again.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use registry::Registry;
use registry::identities::NewAccessKey;
use registry::queries::AccessKey;
use registry::state::{ROOT_ACCOUNT, ROOT_USER};
use serde_json::json;

use super::{open_registry, operator};
use crate::auth::keys::{new_access_key, new_account_id};
use crate::clock::rfc3339_seconds;
use crate::config::Config;

/// `account ...`
#[derive(Debug, Args)]
pub struct AccountArgs {
    #[command(subcommand)]
    command: AccountCommand,
}

#[derive(Debug, Subcommand)]
enum AccountCommand {
    /// Create an account, its root user and that user's first access key (printed once).
    Create {
        /// The account's name.
        name: String,
        /// Its email address, by which ACLs may grant to it (`emailAddress="..."`).
        #[arg(long)]
        email: Option<String>,
    },
    /// List the accounts.
    List,
}

/// `user ...`
#[derive(Debug, Args)]
pub struct UserArgs {
    #[command(subcommand)]
    command: UserCommand,
}

/// The account a user belongs to.
#[derive(Debug, Args)]
struct InAccount {
    /// The user's account.
    #[arg(long, default_value = ROOT_ACCOUNT)]
    account: String,
}

#[derive(Debug, Subcommand)]
enum UserCommand {
    /// Create a user, with no access key and no policy (it may do nothing yet).
    Create {
        /// The user's name.
        name: String,
        #[command(flatten)]
        account: InAccount,
    },
    /// List an account's users.
    List {
        #[command(flatten)]
        account: InAccount,
    },
    /// Show a user, its access keys and its policies.
    Show {
        /// The user's name.
        name: String,
        #[command(flatten)]
        account: InAccount,
    },
    /// Delete a user that has no access keys and no policies left.
    Delete {
        /// The user's name.
        name: String,
        #[command(flatten)]
        account: InAccount,
    },
    /// A user's inline policies.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
}

#[derive(Debug, Subcommand)]
enum PolicyCommand {
    /// Set a user's policy from an IAM JSON document.
    Put {
        /// The user's name.
        user: String,
        /// The policy document.
        #[arg(long, value_name = "FILE")]
        file: PathBuf,
        /// The policy's name (a user may have several).
        #[arg(long, default_value = "default")]
        name: String,
        #[command(flatten)]
        account: InAccount,
    },
    /// Print a user's policy as it was written.
    Get {
        /// The user's name.
        user: String,
        /// The policy's name.
        #[arg(long, default_value = "default")]
        name: String,
        #[command(flatten)]
        account: InAccount,
    },
    /// Remove a user's policy.
    Delete {
        /// The user's name.
        user: String,
        /// The policy's name.
        #[arg(long, default_value = "default")]
        name: String,
        #[command(flatten)]
        account: InAccount,
    },
}

/// `key ...`
#[derive(Debug, Args)]
pub struct KeyArgs {
    #[command(subcommand)]
    command: KeyCommand,
}

#[derive(Debug, Subcommand)]
enum KeyCommand {
    /// Create an access key for a user and print it with its secret (shown this once).
    Create {
        /// The user's name.
        user: String,
        #[command(flatten)]
        account: InAccount,
    },
    /// List a user's access keys.
    List {
        /// The user's name.
        user: String,
        #[command(flatten)]
        account: InAccount,
    },
    /// Stop an access key from signing requests (it can be enabled again).
    Disable {
        /// The access key id.
        access_key: String,
    },
    /// Let a disabled access key sign requests again.
    Enable {
        /// The access key id.
        access_key: String,
    },
    /// Delete an access key and its secret for good.
    Delete {
        /// The access key id.
        access_key: String,
    },
}

/// The registry, opened for writing beside a gateway that may be serving it.
async fn open(config: &Config) -> anyhow::Result<Registry> {
    open_registry(config).await
}

fn print_key(account: &str, user: &str, key: &NewAccessKey, json: bool) {
    if json {
        println!(
            "{}",
            json!({"account": account, "user": user, "access_key": key.access_key, "secret_key": key.secret})
        );
    } else {
        println!(
            "account:    {account}\nuser:       {user}\naccess key: {}\nsecret key: {}",
            key.access_key, key.secret
        );
    }
}

fn key_json(key: &AccessKey) -> serde_json::Value {
    json!({
        "access_key": key.access_key,
        "account": key.account,
        "user": key.user,
        "status": if key.active { "Active" } else { "Inactive" },
        "created": rfc3339_seconds(key.created_at),
    })
}

/// `account ...`
///
/// # Errors
/// The registry's refusals, in IAM's words.
pub async fn run_account(config: &Config, args: &AccountArgs, json: bool) -> anyhow::Result<()> {
    let registry = open(config).await?;
    match &args.command {
        AccountCommand::Create { name, email } => {
            let key = new_access_key();
            let caller = operator("account create");
            let account =
                registry.create_account(caller, name, &new_account_id(), email.as_deref(), key.clone()).await?;
            if json {
                println!(
                    "{}",
                    json!({"account": account.name, "id": account.id, "email": account.email, "user": ROOT_USER,
                           "access_key": key.access_key, "secret_key": key.secret})
                );
            } else {
                println!("id:         {}", account.id);
                if let Some(email) = &account.email {
                    println!("email:      {email}");
                }
                print_key(&account.name, ROOT_USER, &key, false);
            }
        }
        AccountCommand::List => {
            for account in registry.read(|reads| reads.accounts()).await? {
                if json {
                    println!("{}", json!({"account": account.name, "id": account.id, "email": account.email}));
                } else {
                    println!("{}\t{}\t{}", account.id, account.name, account.email.as_deref().unwrap_or("-"));
                }
            }
        }
    }
    registry.close().await;
    Ok(())
}

/// `user ...`
///
/// # Errors
/// The registry's refusals, in IAM's words; an unreadable policy file.
pub async fn run_user(config: &Config, args: &UserArgs, json: bool) -> anyhow::Result<()> {
    let registry = open(config).await?;
    match &args.command {
        UserCommand::Create { name, account } => {
            registry.create_user(operator("user create"), &account.account, name).await?;
            if json {
                println!("{}", json!({"account": account.account, "user": name}));
            } else {
                println!("created user {name} in account {}", account.account);
            }
        }
        UserCommand::List { account } => {
            let name = account.account.clone();
            for user in registry.read(move |reads| reads.users(&name)).await? {
                if json {
                    println!("{}", json!({"account": user.account, "user": user.name}));
                } else {
                    println!("{}", user.name);
                }
            }
        }
        UserCommand::Show { name, account } => {
            let (user, account) = (name.clone(), account.account.clone());
            let (found, keys, policies) = registry
                .read(move |reads| {
                    Ok((
                        reads.user(&account, &user)?,
                        reads.access_keys(&account, &user)?,
                        reads.user_policies(&account, &user)?,
                    ))
                })
                .await?;
            let found = found.with_context(|| format!("no user {name}"))?;
            let document = json!({
                "account": found.account,
                "user": found.name,
                "created": rfc3339_seconds(found.created_at),
                "access_keys": keys.iter().map(key_json).collect::<Vec<_>>(),
                "policies": policies.iter().map(|(name, _)| name).collect::<Vec<_>>(),
            });
            println!("{}", if json { document.to_string() } else { serde_json::to_string_pretty(&document)? });
        }
        UserCommand::Delete { name, account } => {
            registry.delete_user(operator("user delete"), &account.account, name).await?;
            println!("deleted user {name}");
        }
        UserCommand::Policy { command } => match command {
            PolicyCommand::Put { user, file, name, account } => {
                let text = std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
                registry.put_user_policy(operator("user policy put"), &account.account, user, name, text).await?;
                println!("set policy {name} of user {user}");
            }
            PolicyCommand::Get { user, name, account } => {
                let (owner, account_name) = (user.clone(), account.account.clone());
                let policies = registry.read(move |reads| reads.user_policies(&account_name, &owner)).await?;
                let (_, text) = policies
                    .into_iter()
                    .find(|(found, _)| found == name)
                    .with_context(|| format!("user {user} has no policy {name}"))?;
                println!("{text}");
            }
            PolicyCommand::Delete { user, name, account } => {
                registry.delete_user_policy(operator("user policy delete"), &account.account, user, name).await?;
                println!("deleted policy {name} of user {user}");
            }
        },
    }
    registry.close().await;
    Ok(())
}

/// `key ...`
///
/// # Errors
/// The registry's refusals, in IAM's words.
pub async fn run_key(config: &Config, args: &KeyArgs, json: bool) -> anyhow::Result<()> {
    let registry = open(config).await?;
    match &args.command {
        KeyCommand::Create { user, account } => {
            let key = new_access_key();
            registry.create_access_key(operator("key create"), &account.account, user, key.clone()).await?;
            print_key(&account.account, user, &key, json);
        }
        KeyCommand::List { user, account } => {
            let (user, account) = (user.clone(), account.account.clone());
            for key in registry.read(move |reads| reads.access_keys(&account, &user)).await? {
                if json {
                    println!("{}", key_json(&key));
                } else {
                    let status = if key.active { "Active" } else { "Inactive" };
                    println!("{}\t{status}\t{}", key.access_key, rfc3339_seconds(key.created_at));
                }
            }
        }
        KeyCommand::Disable { access_key } => {
            registry.set_access_key_status(operator("key disable"), access_key, false).await?;
            println!("disabled {access_key}");
        }
        KeyCommand::Enable { access_key } => {
            registry.set_access_key_status(operator("key enable"), access_key, true).await?;
            println!("enabled {access_key}");
        }
        KeyCommand::Delete { access_key } => {
            registry.delete_access_key(operator("key delete"), access_key).await?;
            println!("deleted {access_key}");
        }
    }
    registry.close().await;
    Ok(())
}
