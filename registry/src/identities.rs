//! Accounts, users, access keys and users' inline policies: who may sign requests, recorded
//! like every other change.
//!
//! Each change is an event (`v1.account.created`, `v1.user.*`, `v1.access_key.*`) naming the
//! principal that made it, so the log says who gave whom access and when. An access key's
//! secret is the one thing kept out of the log: it lives beside it, in the log database's
//! `access_key_secrets` table, written in the same transaction as the key's event and
//! removed with the key. The root account's root key is the configuration's, whose secret
//! stays there.
//!
//! Names follow IAM's rules: users, accounts and policies are 1 to 64 characters of letters,
//! digits and `+=,.@_-`. Users are unique within their account (each account has a `root`
//! user, its owner), accounts and access keys in the registry.

use rusqlite::OptionalExtension as _;

use crate::commands::Caller;
use crate::error::{Error, Result};
use crate::event::Event;
use crate::event::v1::{
    AccessKeyCreated, AccessKeyRef, AccessKeyStatus, AccessKeyStatusSet, AccountCreated, Payload, UserPolicyRef,
    UserPolicySet, UserRef,
};
use crate::policy::{Policy, PolicyKind};
use crate::queries::Reads;
use crate::sqlite::{Registry, Writer};
use crate::state::{AccessKey, Account, ROOT_ACCOUNT, ROOT_USER};

/// A new access key, as its creator hands it to the registry.
#[derive(Debug, Clone)]
pub struct NewAccessKey {
    /// The access key id.
    pub access_key: String,
    /// Its secret, kept beside the log and never in an event.
    pub secret: String,
}

/// Checks a user, account or policy name as IAM does.
///
/// # Errors
/// [`Error::InvalidIdentityName`] with the reason.
pub fn check_name(what: &str, name: &str) -> Result<()> {
    let valid_char = |c: char| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c);
    if name.is_empty() || name.len() > 64 || !name.chars().all(valid_char) {
        return Err(Error::InvalidIdentityName(format!(
            "The specified value for {what} is invalid. It must contain only alphanumeric characters and/or the \
             following: +=,.@_- and be 1 to 64 characters long."
        )));
    }
    Ok(())
}

fn require_account(views: &dyn Reads, account: &str) -> Result<Account> {
    views
        .account(account)?
        .ok_or_else(|| Error::NoSuchEntity(format!("The account with name {account} cannot be found.")))
}

fn require_user(views: &dyn Reads, account: &str, user: &str) -> Result<()> {
    require_account(views, account)?;
    match views.user(account, user)? {
        Some(_) => Ok(()),
        None => Err(Error::NoSuchEntity(format!("The user with name {user} cannot be found."))),
    }
}

/// Refuses to change a key whose secret the registry does not hold: the configured root key
/// (or an earlier one), which the configuration makes and unmakes. Disabling it here would
/// change nothing the gateway checks, and deleting it would stop the next start.
fn require_managed_here(writer: &Writer<'_>, access_key: &str) -> Result<()> {
    if writer.side().holds_secret(access_key)? {
        Ok(())
    } else {
        Err(Error::DeleteConflict(format!(
            "The access key {access_key} is the root key of the configuration: change it there."
        )))
    }
}

fn require_key(views: &dyn Reads, access_key: &str) -> Result<AccessKey> {
    match views.access_key(access_key)? {
        Some(key) if !key.deleted => Ok(key),
        _ => Err(Error::NoSuchEntity(format!("The Access Key with id {access_key} cannot be found."))),
    }
}

/// Records a key's event and stores its secret beside the log, in the same transaction.
fn append_key(
    writer: &mut Writer<'_>,
    caller: &Caller,
    account: &str,
    user: &str,
    key: &NewAccessKey,
) -> Result<Event> {
    if writer.views().access_key(&key.access_key)?.is_some() {
        return Err(Error::EntityAlreadyExists(format!("The access key {} exists already.", key.access_key)));
    }
    writer.side().store_secret(&key.access_key, &key.secret)?;
    writer.append(caller.draft(Payload::AccessKeyCreated(AccessKeyCreated {
        account: account.to_owned(),
        user: user.to_owned(),
        access_key: key.access_key.clone(),
    })))
}

/// An email address as accounts hold it: in lower case, as S3 compares them; refused unless
/// it has one `@` between a local part and a domain, and no space or control character.
fn checked_email(email: &str) -> Result<String> {
    let valid = email.len() <= 254
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && domain.contains('.') && !domain.contains('@') && !domain.starts_with('.')
        })
        && !email.chars().any(|c| c.is_whitespace() || c.is_control());
    if valid {
        Ok(email.to_lowercase())
    } else {
        Err(Error::InvalidIdentityName(format!("The email address {email} is not valid.")))
    }
}

fn create_account(writer: &mut Writer<'_>, caller: &Caller, name: &str, id: &str, email: Option<String>) -> Result<()> {
    if writer.views().account(name)?.is_some() {
        return Err(Error::EntityAlreadyExists(format!("The account with name {name} already exists.")));
    }
    if writer.views().accounts()?.iter().any(|account| account.id == id) {
        return Err(Error::EntityAlreadyExists(format!("An account with id {id} already exists.")));
    }
    if let Some(email) = &email
        && writer.views().account_by_email(email)?.is_some()
    {
        return Err(Error::EntityAlreadyExists(format!("An account with email address {email} already exists.")));
    }
    let created = AccountCreated { account: name.to_owned(), id: id.to_owned(), email };
    writer.append(caller.draft(Payload::AccountCreated(created)))?;
    writer
        .append(caller.draft(Payload::UserCreated(UserRef { account: name.to_owned(), user: ROOT_USER.to_owned() })))?;
    Ok(())
}

impl Registry {
    /// Makes sure the root account exists and its root user holds `root_access_key`, the
    /// configuration's (whose secret stays there): on the first start with accounts it
    /// creates them (`id` is the account's id from then on); when the configured root key
    /// changed, the new one is added to the root user. Returns the root account.
    ///
    /// # Errors
    /// The engine's errors; [`Error::EntityAlreadyExists`] if the key belongs to another user.
    pub async fn ensure_root_account(&self, root_access_key: &str, id: &str) -> Result<Account> {
        let (root_access_key, id) = (root_access_key.to_owned(), id.to_owned());
        self.write(move |writer| {
            let caller = Caller::system("system");
            if writer.views().account(ROOT_ACCOUNT)?.is_none() {
                create_account(writer, &caller, ROOT_ACCOUNT, &id, None)?;
            }
            match writer.views().access_key(&root_access_key)? {
                Some(key) if key.account == ROOT_ACCOUNT && key.user == ROOT_USER && !key.deleted => {}
                Some(_) => {
                    return Err(Error::EntityAlreadyExists(format!(
                        "the configured root access key {root_access_key} belongs to another user"
                    )));
                }
                None => {
                    writer.append(caller.draft(Payload::AccessKeyCreated(AccessKeyCreated {
                        account: ROOT_ACCOUNT.to_owned(),
                        user: ROOT_USER.to_owned(),
                        access_key: root_access_key,
                    })))?;
                }
            }
            require_account(writer.views(), ROOT_ACCOUNT)
        })
        .await
    }

    /// Creates an account, with id `id` (12 digits) and optionally an email address (by
    /// which ACLs may grant to it), its `root` user, and the root user's first access key.
    ///
    /// # Errors
    /// [`Error::InvalidIdentityName`] (for the name or the email address),
    /// [`Error::EntityAlreadyExists`] (for the name, the id or the email address).
    pub async fn create_account(
        &self,
        caller: Caller,
        name: &str,
        id: &str,
        email: Option<&str>,
        key: NewAccessKey,
    ) -> Result<Account> {
        check_name("AccountName", name)?;
        let email = email.map(checked_email).transpose()?;
        let (name, id) = (name.to_owned(), id.to_owned());
        self.write(move |writer| {
            create_account(writer, &caller, &name, &id, email)?;
            append_key(writer, &caller, &name, ROOT_USER, &key)?;
            require_account(writer.views(), &name)
        })
        .await
    }

    /// Creates a user in `account`.
    ///
    /// # Errors
    /// [`Error::InvalidIdentityName`], [`Error::NoSuchEntity`] for the account,
    /// [`Error::EntityAlreadyExists`].
    pub async fn create_user(&self, caller: Caller, account: &str, name: &str) -> Result<Event> {
        check_name("UserName", name)?;
        let user = UserRef { account: account.to_owned(), user: name.to_owned() };
        self.write(move |writer| {
            require_account(writer.views(), &user.account)?;
            // As IAM: names differ by more than case (`Alice` beside `alice`, or `Root`, would
            // pass a policy naming the other by its ARN).
            if writer.views().user_named_alike(&user.account, &user.user)?.is_some() {
                return Err(Error::EntityAlreadyExists(format!("User with name {} already exists.", user.user)));
            }
            writer.append(caller.draft(Payload::UserCreated(user)))
        })
        .await
    }

    /// Deletes a user that has no access keys and no policies left, as IAM requires; an
    /// account's root user cannot be deleted.
    ///
    /// # Errors
    /// [`Error::NoSuchEntity`], [`Error::DeleteConflict`].
    pub async fn delete_user(&self, caller: Caller, account: &str, name: &str) -> Result<Event> {
        let user = UserRef { account: account.to_owned(), user: name.to_owned() };
        self.write(move |writer| {
            require_user(writer.views(), &user.account, &user.user)?;
            if user.user == ROOT_USER {
                return Err(Error::DeleteConflict("An account's root user cannot be deleted.".to_owned()));
            }
            if !writer.views().access_keys(&user.account, &user.user)?.is_empty() {
                return Err(Error::DeleteConflict("Cannot delete entity, must delete access keys first.".to_owned()));
            }
            if !writer.views().user_policies(&user.account, &user.user)?.is_empty() {
                return Err(Error::DeleteConflict("Cannot delete entity, must delete policies first.".to_owned()));
            }
            writer.append(caller.draft(Payload::UserDeleted(user)))
        })
        .await
    }

    /// Gives a user a new access key; its secret is stored beside the log, not in the event.
    ///
    /// # Errors
    /// [`Error::NoSuchEntity`], [`Error::EntityAlreadyExists`] for a key id in use (or once used).
    pub async fn create_access_key(
        &self,
        caller: Caller,
        account: &str,
        user: &str,
        key: NewAccessKey,
    ) -> Result<Event> {
        let (account, user) = (account.to_owned(), user.to_owned());
        self.write(move |writer| {
            require_user(writer.views(), &account, &user)?;
            append_key(writer, &caller, &account, &user, &key)
        })
        .await
    }

    /// Makes an access key active or inactive; nothing is recorded when it already is.
    ///
    /// # Errors
    /// [`Error::NoSuchEntity`].
    pub async fn set_access_key_status(&self, caller: Caller, access_key: &str, active: bool) -> Result<Option<Event>> {
        let access_key = access_key.to_owned();
        self.write(move |writer| {
            let key = require_key(writer.views(), &access_key)?;
            require_managed_here(writer, &access_key)?;
            if key.active == active {
                return Ok(None);
            }
            let status = if active { AccessKeyStatus::Active } else { AccessKeyStatus::Inactive };
            writer
                .append(caller.draft(Payload::AccessKeyStatusSet(AccessKeyStatusSet { access_key, status })))
                .map(Some)
        })
        .await
    }

    /// Deletes an access key and its secret. Its record stays, so that the events it signed
    /// still name their user.
    ///
    /// # Errors
    /// [`Error::NoSuchEntity`].
    pub async fn delete_access_key(&self, caller: Caller, access_key: &str) -> Result<Event> {
        let access_key = access_key.to_owned();
        self.write(move |writer| {
            require_key(writer.views(), &access_key)?;
            require_managed_here(writer, &access_key)?;
            writer.side().delete_secret(&access_key)?;
            writer.append(caller.draft(Payload::AccessKeyDeleted(AccessKeyRef { access_key })))
        })
        .await
    }

    /// Sets a user's inline policy `name` after checking it as an identity policy.
    ///
    /// # Errors
    /// [`Error::MalformedPolicy`], [`Error::InvalidIdentityName`], [`Error::NoSuchEntity`].
    pub async fn put_user_policy(
        &self,
        caller: Caller,
        account: &str,
        user: &str,
        name: &str,
        policy: String,
    ) -> Result<Event> {
        check_name("PolicyName", name)?;
        // A root user is allowed everything in its account; no policy narrows it.
        if user == ROOT_USER {
            return Err(Error::NoSuchEntity("The user with name root cannot be found.".to_owned()));
        }
        Policy::parse(&policy, PolicyKind::Identity).map_err(|refused| Error::MalformedPolicy(refused.0))?;
        let set = UserPolicySet { account: account.to_owned(), user: user.to_owned(), name: name.to_owned(), policy };
        self.write(move |writer| {
            require_user(writer.views(), &set.account, &set.user)?;
            writer.append(caller.draft(Payload::UserPolicySet(set)))
        })
        .await
    }

    /// Removes a user's inline policy.
    ///
    /// # Errors
    /// [`Error::NoSuchEntity`] for the user or the policy.
    pub async fn delete_user_policy(&self, caller: Caller, account: &str, user: &str, name: &str) -> Result<Event> {
        let policy = UserPolicyRef { account: account.to_owned(), user: user.to_owned(), name: name.to_owned() };
        self.write(move |writer| {
            require_user(writer.views(), &policy.account, &policy.user)?;
            if !writer
                .views()
                .user_policies(&policy.account, &policy.user)?
                .iter()
                .any(|(name, _)| *name == policy.name)
            {
                return Err(Error::NoSuchEntity(format!("The user policy with name {} cannot be found.", policy.name)));
            }
            writer.append(caller.draft(Payload::UserPolicyDeleted(policy)))
        })
        .await
    }

    /// The secret of an access key the registry created, if it exists (a deleted key's is
    /// gone; the root key's is in the configuration).
    ///
    /// On a shared log a secret this gateway holds is answered from its replica without asking
    /// PostgreSQL, so a key deleted through another gateway is still answered until this one
    /// catches up: check the key's state with [`Registry::read`] first, which does (as the
    /// gateway's signature check does).
    ///
    /// # Errors
    /// The engine's errors.
    pub async fn access_key_secret(&self, access_key: &str) -> Result<Option<String>> {
        let found = self.local_access_key_secret(access_key).await?;
        if found.is_some() || !self.is_shared() {
            return Ok(found);
        }
        // A key created through another gateway: this replica holds its secret once it has
        // caught up.
        self.catch_up_with_shared().await?;
        self.local_access_key_secret(access_key).await
    }

    async fn local_access_key_secret(&self, access_key: &str) -> Result<Option<String>> {
        let access_key = access_key.to_owned();
        self.read_log(move |log| {
            Ok(log
                .prepare_cached("SELECT secret FROM main.access_key_secrets WHERE access_key = ?1")?
                .query_row([access_key], |row| row.get(0))
                .optional()?)
        })
        .await
    }
}
