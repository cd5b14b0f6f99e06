//! What a policy is evaluated against: who asks, for which action on which resource, and
//! the condition keys of the request.

use std::collections::BTreeMap;

/// Who makes a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// An unsigned request.
    Anonymous,
    /// A user of an account, signing with one of its access keys.
    User(User),
}

/// A signed request's user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    account: String,
    name: String,
    is_root: bool,
    arn: String,
    id: String,
}

impl User {
    /// A user of `account` (its 12-digit id), named `name`.
    #[must_use]
    pub fn new(account: &str, name: &str) -> Self {
        let arn = format!("arn:aws:iam::{account}:user/{name}");
        // IAM's shape (`AIDA` and 17 characters), derived from the account and the name: the
        // registry names users, not ids. The account takes part so that same-named users of
        // two accounts differ, as policies keyed on `aws:userid` rely on.
        let digest = blake3::hash(format!("{account}/{name}").as_bytes()).to_hex();
        let id = format!("AIDA{}", digest[..17].to_ascii_uppercase());
        User { account: account.to_owned(), name: name.to_owned(), is_root: false, arn, id }
    }

    /// The root user of `account`, which needs no identity policy in its own account.
    #[must_use]
    pub fn root(account: &str) -> Self {
        let arn = format!("arn:aws:iam::{account}:root");
        User { account: account.to_owned(), name: "root".to_owned(), is_root: true, arn, id: account.to_owned() }
    }

    /// The user `name` of `account`: its root user when `name` is
    /// [`ROOT_USER`](crate::state::ROOT_USER), as the registry names every account's root.
    #[must_use]
    pub fn named(account: &str, name: &str) -> Self {
        if name == crate::state::ROOT_USER { User::root(account) } else { User::new(account, name) }
    }

    /// The account's id.
    #[must_use]
    pub fn account(&self) -> &str {
        &self.account
    }

    /// The user's name (`root` for the root user).
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether this is the account's root user.
    #[must_use]
    pub fn is_root(&self) -> bool {
        self.is_root
    }

    /// `arn:aws:iam::<account>:root` for the root user, else
    /// `arn:aws:iam::<account>:user/<name>`.
    #[must_use]
    pub fn arn(&self) -> &str {
        &self.arn
    }

    /// The user's unique id, as IAM's `GetUser` reports it and `aws:userid` reads: `AIDA`
    /// and 17 characters for a user, the account's id for the root user (as on AWS).
    #[must_use]
    pub fn id(&self) -> &str {
        &self.id
    }
}

/// One request, as the evaluator sees it.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    /// Who asks.
    pub principal: &'a Principal,
    /// The action, `service:Name` (`s3:GetObject`).
    pub action: &'a str,
    /// The resource's ARN (`arn:aws:s3:::bucket/key`).
    pub resource: &'a str,
    /// The request's condition keys beside the principal's, which the evaluator derives.
    pub keys: &'a ConditionKeys,
}

impl Request<'_> {
    /// The values of a condition key, from the request or derived from the principal
    /// (`aws:PrincipalArn`, `aws:PrincipalAccount`, `aws:username`, `aws:userid`,
    /// `aws:PrincipalType`). `None` when the request has no such key.
    #[must_use]
    pub fn values(&self, key: &str) -> Option<Vec<&str>> {
        if let Some(values) = self.keys.get(key) {
            return Some(values.iter().map(String::as_str).collect());
        }
        self.principal_value(key).map(|value| vec![value])
    }

    /// A key's one value (a policy variable's), if it has exactly one.
    pub(crate) fn single_value(&self, key: &str) -> Option<&str> {
        match self.keys.get(key) {
            Some(values) if values.len() == 1 => Some(values[0].as_str()),
            Some(_) => None,
            None => self.principal_value(key),
        }
    }

    fn principal_value(&self, key: &str) -> Option<&str> {
        let Principal::User(user) = self.principal else {
            return None;
        };
        match ConditionKeys::normalise(key).as_str() {
            "aws:principalarn" => Some(&user.arn),
            "aws:principalaccount" => Some(&user.account),
            "aws:username" if !user.is_root => Some(&user.name),
            "aws:userid" => Some(&user.id),
            "aws:principaltype" => Some(if user.is_root { "Account" } else { "User" }),
            _ => None,
        }
    }
}

/// A request's condition keys and their values. Key names compare without regard to case,
/// as IAM compares them, except what follows a `/` (a tag's key, which S3 compares exactly).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConditionKeys(BTreeMap<String, Vec<String>>);

impl ConditionKeys {
    /// No keys.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets a single-valued key.
    pub fn set(&mut self, key: &str, value: impl Into<String>) -> &mut Self {
        self.0.insert(Self::normalise(key), vec![value.into()]);
        self
    }

    /// Sets a multi-valued key (`s3:RequestObjectTagKeys`); an empty list is a key present
    /// with no values.
    pub fn set_all(&mut self, key: &str, values: impl IntoIterator<Item = String>) -> &mut Self {
        self.0.insert(Self::normalise(key), values.into_iter().collect());
        self
    }

    /// Takes a key out: the request does not supply it.
    pub fn remove(&mut self, key: &str) -> &mut Self {
        self.0.remove(&Self::normalise(key));
        self
    }

    /// A key's values.
    #[must_use]
    pub fn get(&self, key: &str) -> Option<&[String]> {
        self.0.get(&Self::normalise(key)).map(Vec::as_slice)
    }

    fn normalise(key: &str) -> String {
        match key.split_once('/') {
            Some((name, rest)) => format!("{}/{rest}", name.to_ascii_lowercase()),
            None => key.to_ascii_lowercase(),
        }
    }
}

/// An account's canonical user id, as ACLs and `CanonicalUser` principals name it: 64 hex
/// digits, like AWS's, derived from the account id so that it needs no storage of its own.
#[must_use]
pub fn canonical_id(account: &str) -> String {
    blake3::hash(format!("artifact-store canonical user id {account}").as_bytes()).to_hex().to_string()
}
