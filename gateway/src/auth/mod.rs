//! Who may call the API: the root user and the `[[auth.users]]` of the configuration, and
//! the users whose keys the registry holds.
//!
//! s3s verifies SigV4/SigV2 signatures and asks [`Users`] for the secret of an access key;
//! [`access::Access`] then decides each request, signed or anonymous.
//!
//! - [`access`]: the decision, by the registry's policy evaluator.
//! - [`root`]: the root credentials, generated and saved on first start.
//! - [`keys`]: new access keys, secrets and account ids.
//! - [`request_checks`]: what AWS requires of a signature that s3s does not check (clock,
//!   scope, expiry, unsigned `x-amz-*` headers), checked before s3s.

pub mod access;
pub mod keys;
pub mod request_checks;
pub mod root;

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use s3s::auth::{S3Auth, SecretKey};
use s3s::{S3Result, s3_error};

use registry::Registry;

use crate::config::AuthConfig;

/// One user who can sign requests.
#[derive(Debug)]
pub struct User {
    secret: SecretKey,
    /// May delete or shorten governance-mode retention with `x-amz-bypass-governance-retention`.
    pub bypass_governance: bool,
    /// The root user from `auth.access_key`.
    pub root: bool,
}

/// The configured users by access key, and the registry that holds the others' secrets.
/// Cheap to clone.
#[derive(Clone)]
pub struct Users {
    configured: Arc<HashMap<String, User>>,
    registry: Option<Registry>,
}

/// Raised when no root credentials were resolved before building [`Users`].
#[derive(Debug, thiserror::Error)]
#[error("no root credentials configured")]
pub struct MissingRootCredentials;

impl Users {
    /// The root user plus every `[[auth.users]]` entry. The config was validated, so access
    /// keys are unique and every user has a secret.
    ///
    /// # Errors
    ///
    /// [`MissingRootCredentials`] if `auth.access_key`/`secret_key` are unset (resolve them
    /// first with [`root::resolve`]).
    pub fn from_config(auth: &AuthConfig) -> Result<Self, MissingRootCredentials> {
        let (Some(root_key), Some(root_secret)) = (&auth.access_key, &auth.secret_key) else {
            return Err(MissingRootCredentials);
        };
        let mut users = HashMap::new();
        users.insert(
            root_key.clone(),
            User { secret: SecretKey::from(root_secret.expose()), bypass_governance: true, root: true },
        );
        for user in &auth.users {
            let Some(secret) = &user.secret_key else { continue };
            users.insert(
                user.access_key.clone(),
                User {
                    secret: SecretKey::from(secret.expose()),
                    bypass_governance: user.bypass_governance,
                    root: false,
                },
            );
        }
        Ok(Self { configured: Arc::new(users), registry: None })
    }

    /// These users, and the keys `registry` holds (`key create`, `aws iam create-access-key`).
    #[must_use]
    pub fn with_registry(self, registry: Registry) -> Self {
        Self { registry: Some(registry), ..self }
    }

    /// The root user's access key.
    #[must_use]
    pub fn root_access_key(&self) -> &str {
        self.configured
            .iter()
            .find(|(_, user)| user.root)
            .map(|(key, _)| key.as_str())
            .expect("the root user is always present")
    }

    /// The configured user owning `access_key`.
    #[must_use]
    pub fn get(&self, access_key: &str) -> Option<&User> {
        self.configured.get(access_key)
    }
}

/// The user holding a registry key that may sign (active, not deleted): its account, its
/// name and its inline policies, parsed. What the S3 access hook and the IAM API both decide
/// with.
pub(crate) struct KeyHolder {
    pub(crate) account: registry::queries::Account,
    pub(crate) user: String,
    pub(crate) policies: Vec<registry::policy::Policy>,
}

/// The holder of `access_key`, if the registry holds it and it may sign.
pub(crate) async fn key_holder(registry: &Registry, access_key: &str) -> registry::Result<Option<KeyHolder>> {
    let access_key = access_key.to_owned();
    let found = registry
        .read(move |reads| {
            let Some(key) = reads.access_key(&access_key)?.filter(|key| key.active && !key.deleted) else {
                return Ok(None);
            };
            let Some(account) = reads.account(&key.account)? else { return Ok(None) };
            let policies = reads.user_policies(&key.account, &key.user)?;
            Ok(Some((key.user, account, policies)))
        })
        .await?;
    Ok(found.map(|(user, account, policies)| KeyHolder {
        account,
        user,
        // Recorded policies were checked when they were set.
        policies: policies
            .iter()
            .filter_map(|(_, text)| registry::policy::Policy::parse(text, registry::policy::PolicyKind::Identity).ok())
            .collect(),
    }))
}

#[async_trait]
impl S3Auth for Users {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        if let Some(user) = self.get(access_key) {
            return Ok(user.secret.clone());
        }
        // A key the registry holds signs while it is active and not deleted.
        if let Some(registry) = &self.registry {
            let key = access_key.to_owned();
            let active = registry
                .read(move |reads| Ok(reads.access_key(&key)?.is_some_and(|key| key.active && !key.deleted)))
                .await
                .map_err(|err| s3s::S3Error::from(crate::s3::error::Error::from(err)))?;
            if active
                && let Some(secret) = registry
                    .access_key_secret(access_key)
                    .await
                    .map_err(|err| s3s::S3Error::from(crate::s3::error::Error::from(err)))?
            {
                return Ok(SecretKey::from(secret));
            }
        }
        Err(s3_error!(InvalidAccessKeyId, "The AWS Access Key Id you provided does not exist in our records."))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Secret, UserConfig};

    fn auth() -> AuthConfig {
        AuthConfig {
            access_key: Some("ROOT".to_owned()),
            secret_key: Some(Secret::new("rootsecret")),
            secret_key_file: None,
            users: vec![UserConfig {
                access_key: "CI".to_owned(),
                secret_key: Some(Secret::new("cisecret")),
                secret_key_file: None,
                bypass_governance: false,
            }],
        }
    }

    #[tokio::test]
    async fn known_keys_get_their_secret_and_unknown_keys_are_invalid() {
        let users = Users::from_config(&auth()).unwrap();
        assert_eq!(users.get_secret_key("ROOT").await.unwrap().expose(), "rootsecret");
        assert_eq!(users.get_secret_key("CI").await.unwrap().expose(), "cisecret");
        let err = users.get_secret_key("NOPE").await.unwrap_err();
        assert_eq!(err.code().as_str(), "InvalidAccessKeyId");
    }

    #[test]
    fn root_may_bypass_governance_and_users_only_when_configured() {
        let users = Users::from_config(&auth()).unwrap();
        assert!(users.get("ROOT").unwrap().bypass_governance);
        assert!(users.get("ROOT").unwrap().root);
        assert!(!users.get("CI").unwrap().bypass_governance);
    }

    #[test]
    fn users_need_root_credentials() {
        let mut auth = auth();
        auth.access_key = None;
        auth.secret_key = None;
        assert!(Users::from_config(&auth).is_err());
    }
}
