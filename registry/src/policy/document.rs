//! A policy document parsed and checked: what `PutBucketPolicy` and `PutUserPolicy` accept.

use ipnet::IpNet;
use serde_json::{Map, Value};

use super::actions::{BUCKET_ACTIONS, OBJECT_ACTIONS, SERVICE_ACTIONS};
use super::condition::{Base, Condition, Operator, SetQualifier, parse_cidr};
use super::pattern::wildcard_match_ignore_case;

/// Why a policy document was refused, in the words S3 answers `MalformedPolicy` with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Malformed(pub String);

fn malformed(message: impl Into<String>) -> Malformed {
    Malformed(message.into())
}

/// Where a policy is attached, which decides whether it names principals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyKind {
    /// Attached to a user: it speaks for that user and names no principal.
    Identity,
    /// Attached to a bucket: each statement names the principals it applies to.
    Bucket,
}

/// A parsed policy.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub(crate) statements: Vec<Statement>,
}

/// `Allow` or `Deny`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// Grants, unless something denies.
    Allow,
    /// Denies, whatever grants.
    Deny,
}

/// What an element names, or all but it (`Action` or `NotAction`, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Listed<T> {
    Only(T),
    AllBut(T),
}

/// Principals a bucket policy's statement names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Principals {
    /// `"*"` or `{"AWS": "*"}`: everyone, anonymous included.
    Everyone,
    /// Named ones.
    Named(Vec<NamedPrincipal>),
}

/// One named principal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum NamedPrincipal {
    /// An account (`123456789012` or `arn:aws:iam::123456789012:root`): its users, once
    /// their own account allows them too. In a `NotPrincipal`, its root user alone.
    Account(String),
    /// A user's ARN, or an ARN pattern.
    Arn(String),
    /// A canonical user id (an account's, as ACLs name it).
    CanonicalUser(String),
    /// A service or federated principal: accepted, and never the principal of a request
    /// here.
    Other,
}

/// One statement.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Statement {
    pub(crate) effect: Effect,
    /// `None` in an identity policy.
    pub(crate) principals: Option<Listed<Principals>>,
    pub(crate) actions: Listed<Vec<String>>,
    pub(crate) resources: Listed<Vec<String>>,
    pub(crate) conditions: Vec<Condition>,
    /// Whether `${...}` in its resources and condition values are policy variables: only in a
    /// policy of version `2012-10-17`; without a version, or in one of `2008-10-17`, they are
    /// plain text, as on AWS.
    pub(crate) variables: bool,
}

impl Statement {
    /// Whether one of its conditions reads an existing object's tags.
    pub(crate) fn reads_existing_object_tags(&self) -> bool {
        self.conditions.iter().any(|c| {
            c.key.get(..EXISTING_OBJECT_TAG.len()).is_some_and(|name| name.eq_ignore_ascii_case(EXISTING_OBJECT_TAG))
        })
    }
}

/// The prefix of the condition keys that name an existing object's tags.
const EXISTING_OBJECT_TAG: &str = "s3:ExistingObjectTag/";

const NOT_JSON: &str = "Policies must be valid JSON and the first byte must be '{'";

const ELEMENTS: &[&str] =
    &["Sid", "Effect", "Principal", "NotPrincipal", "Action", "NotAction", "Resource", "NotResource", "Condition"];

impl Policy {
    /// Parses and checks a policy document.
    ///
    /// # Errors
    /// [`Malformed`] with the reason S3 gives.
    pub fn parse(text: &str, kind: PolicyKind) -> Result<Policy, Malformed> {
        if !text.trim_start().starts_with('{') {
            return Err(malformed(NOT_JSON));
        }
        let document: Value = serde_json::from_str(text).map_err(|_| malformed(NOT_JSON))?;
        let Value::Object(document) = document else {
            return Err(malformed(NOT_JSON));
        };
        for key in document.keys() {
            if !["Version", "Id", "Statement"].contains(&key.as_str()) {
                return Err(malformed(format!("Unknown field {key}")));
            }
        }
        let variables = match document.get("Version") {
            None => false,
            Some(Value::String(v)) if v == "2012-10-17" => true,
            Some(Value::String(v)) if v == "2008-10-17" => false,
            Some(_) => return Err(malformed("Invalid policy version")),
        };
        let statements = match document.get("Statement") {
            Some(Value::Array(items)) => items.iter().collect(),
            Some(item @ Value::Object(_)) => vec![item],
            _ => return Err(malformed("Missing required field Statement")),
        };
        if statements.is_empty() {
            return Err(malformed("Could not parse the policy: Statement is empty!"));
        }
        let statements =
            statements.into_iter().map(|s| statement(s, kind, variables)).collect::<Result<Vec<_>, _>>()?;
        Ok(Policy { statements })
    }

    /// Whether a condition reads an existing object's tags (`s3:ExistingObjectTag/<key>`):
    /// only then can a decision need them, which costs a read of the object's record (see
    /// [`crate::policy::evaluate::needs_existing_object_tags`] for one request).
    #[must_use]
    pub fn reads_existing_object_tags(&self) -> bool {
        self.statements.iter().any(Statement::reads_existing_object_tags)
    }

    /// Whether a statement allows everyone, which the public access block's
    /// `BlockPublicPolicy` refuses and `RestrictPublicBuckets` ignores: an `Allow` to `*`
    /// (or to all but some principals) without a condition that narrows it to known
    /// sources.
    #[must_use]
    pub fn is_public(&self) -> bool {
        self.statements.iter().any(|s| {
            s.effect == Effect::Allow
                && match &s.principals {
                    Some(Listed::Only(Principals::Everyone)) | Some(Listed::AllBut(_)) => {
                        !s.conditions.iter().any(narrows_to_known_sources)
                    }
                    _ => false,
                }
        })
    }
}

/// Whether a condition narrows a grant to everyone down to sources AWS trusts, as S3's "The
/// meaning of public" sets them out: a positive operator comparing one of [`TRUSTED_KEYS`]
/// (or `aws:SourceIp`, with [`narrow_address_blocks`]) with fixed values, which contain no
/// wildcard and no policy variable. `Null`, the negated operators, `…IfExists` and
/// `ForAllValues:` hold for requests that lack the key or carry a value the policy never
/// names, anonymous ones included, so they narrow nothing.
fn narrows_to_known_sources(condition: &Condition) -> bool {
    let Operator { base, set, if_exists } = condition.operator;
    let positive = matches!(
        base,
        Base::StringEquals
            | Base::StringEqualsIgnoreCase
            | Base::StringLike
            | Base::ArnEquals
            | Base::ArnLike
            | Base::IpAddress
    );
    let fixed = condition.values.iter().all(|v| !v.contains(['*', '?']) && !v.contains("${"));
    if !positive || if_exists || set == SetQualifier::AllValues || !fixed {
        return false;
    }
    let key = condition.key.to_ascii_lowercase();
    if key == "aws:sourceip" {
        return narrow_address_blocks(&condition.values);
    }
    TRUSTED_KEYS.contains(&key.as_str())
}

/// The keys (lower-cased) whose fixed values name a principal, an account, an organisation
/// or a network someone owns. `s3:x-amz-server-side-encryption-aws-kms-key-id`, which AWS
/// also trusts because only a KMS key's grantees can use it, is left out: any requester may
/// name any key of the gateway's key ring, so its value narrows nothing here. Some keys no
/// request here carries (`aws:SourceVpc`, `s3:DataAccessPointAccount`, ...): a grant
/// conditioned on them lets no one in, and AWS's policies that use them stay private.
const TRUSTED_KEYS: &[&str] = &[
    "aws:principalaccount",
    "aws:principalarn",
    "aws:principalorgid",
    "aws:userid",
    "aws:sourcearn",
    "aws:sourceaccount",
    "aws:sourceowner",
    "aws:sourcevpc",
    "aws:sourcevpce",
    "s3:dataaccesspointaccount",
    "s3:dataaccesspointarn",
];

/// Whether `aws:SourceIp` blocks name known networks rather than the internet. AWS counts a
/// block broader than a /8 (a /32 in IPv6) as public. Blocks narrow enough each can still
/// cover the internet between them (256 /8s), so together they may cover no more addresses
/// than one /8 (or /32) does, RFC 1918's private ranges aside, which AWS leaves out. Blocks
/// that overlap count twice: stricter than needed, for policies nobody writes.
fn narrow_address_blocks(values: &[String]) -> bool {
    const PRIVATE: [&str; 3] = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"];
    let Some(blocks) = values.iter().map(|v| parse_cidr(v)).collect::<Option<Vec<_>>>() else {
        return false;
    };
    let widest = |block: &IpNet| match block {
        IpNet::V4(_) => 8,
        IpNet::V6(_) => 32,
    };
    if blocks.iter().any(|block| block.prefix_len() < widest(block)) {
        return false;
    }
    // At most 2^24 (IPv4) or 2^96 (IPv6) each, now.
    let size = |block: &IpNet| 1_u128 << (block.max_prefix_len() - block.prefix_len());
    let outside_private = |block: &IpNet| {
        let mut addresses = size(block);
        for private in PRIVATE.iter().filter_map(|p| p.parse::<IpNet>().ok()) {
            if private.contains(block) {
                return 0;
            }
            if block.contains(&private) {
                addresses -= size(&private);
            }
        }
        addresses
    };
    let (mut v4, mut v6) = (0_u128, 0_u128);
    for block in &blocks {
        match block {
            IpNet::V4(_) => v4 = v4.saturating_add(outside_private(block)),
            IpNet::V6(_) => v6 = v6.saturating_add(size(block)),
        }
    }
    v4 <= 1 << 24 && v6 <= 1 << 96
}

fn statement(value: &Value, kind: PolicyKind, variables: bool) -> Result<Statement, Malformed> {
    let Value::Object(fields) = value else {
        return Err(malformed("Statement is not well formed"));
    };
    for key in fields.keys() {
        if !ELEMENTS.contains(&key.as_str()) {
            return Err(malformed(format!("Unknown field {key}")));
        }
    }
    let effect = match fields.get("Effect") {
        Some(Value::String(e)) if e == "Allow" => Effect::Allow,
        Some(Value::String(e)) if e == "Deny" => Effect::Deny,
        Some(_) => return Err(malformed("Invalid effect")),
        None => return Err(malformed("Missing required field Effect")),
    };
    let principals = match (fields.get("Principal"), fields.get("NotPrincipal"), kind) {
        (None, None, PolicyKind::Identity) => None,
        (Some(_) | None, Some(_) | None, PolicyKind::Identity) => {
            return Err(malformed("Policy document should not specify a principal."));
        }
        (Some(_), Some(_), PolicyKind::Bucket) => {
            return Err(malformed("Statement has both Principal and NotPrincipal"));
        }
        (None, None, PolicyKind::Bucket) => return Err(malformed("Missing required field Principal")),
        (Some(p), None, PolicyKind::Bucket) => Some(Listed::Only(principals(p)?)),
        (None, Some(p), PolicyKind::Bucket) => Some(Listed::AllBut(principals(p)?)),
    };
    let actions = listed(fields, "Action", "NotAction", "Missing required field Action")?;
    for action in listed_items(&actions) {
        if !valid_action(action) {
            return Err(malformed("Policy has invalid action"));
        }
    }
    let resources = listed(fields, "Resource", "NotResource", "Missing required field Resource")?;
    for resource in listed_items(&resources) {
        if resource != "*" && !resource.starts_with("arn:") {
            return Err(malformed("Policy has invalid resource"));
        }
    }
    if kind == PolicyKind::Bucket
        && let Listed::Only(resources) = &resources
        && let Listed::Only(actions) = &actions
        && !actions_apply_to_resources(actions, resources)
    {
        return Err(malformed("Action does not apply to any resource(s) in statement"));
    }
    let conditions = match fields.get("Condition") {
        None => Vec::new(),
        Some(Value::Object(block)) => conditions(block)?,
        Some(_) => return Err(malformed("Condition is not well formed")),
    };
    Ok(Statement { effect, principals, actions, resources, conditions, variables })
}

fn listed(
    fields: &Map<String, Value>,
    only: &str,
    all_but: &str,
    missing: &str,
) -> Result<Listed<Vec<String>>, Malformed> {
    match (fields.get(only), fields.get(all_but)) {
        (Some(_), Some(_)) => Err(malformed(format!("Statement has both {only} and {all_but}"))),
        (Some(v), None) => Ok(Listed::Only(strings(v, only)?)),
        (None, Some(v)) => Ok(Listed::AllBut(strings(v, all_but)?)),
        (None, None) => Err(malformed(missing)),
    }
}

fn listed_items(listed: &Listed<Vec<String>>) -> &[String] {
    match listed {
        Listed::Only(items) | Listed::AllBut(items) => items,
    }
}

/// A string or an array of strings.
fn strings(value: &Value, element: &str) -> Result<Vec<String>, Malformed> {
    match value {
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(items) if !items.is_empty() => items
            .iter()
            .map(|item| match item {
                Value::String(s) => Ok(s.clone()),
                _ => Err(malformed(format!("{element} is not well formed"))),
            })
            .collect(),
        _ => Err(malformed(format!("{element} is not well formed"))),
    }
}

/// `*`, an S3 action (a pattern must match at least one that exists), or another
/// service's `service:Name`, for the actions of this gateway's own API and of IAM.
fn valid_action(action: &str) -> bool {
    if action == "*" {
        return true;
    }
    let Some((service, name)) = action.split_once(':') else {
        return false;
    };
    if service.eq_ignore_ascii_case("s3") {
        return all_s3_actions().any(|known| wildcard_match_ignore_case(action, known));
    }
    !service.is_empty()
        && service.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && !name.is_empty()
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '*' || c == '?')
}

fn all_s3_actions() -> impl Iterator<Item = &'static str> {
    OBJECT_ACTIONS.iter().chain(BUCKET_ACTIONS).chain(SERVICE_ACTIONS).copied()
}

/// Whether some S3 action of a bucket policy's statement applies to some of its resources:
/// an object action to a resource that can name an object (`bucket/...`), a bucket action
/// to one that can name a bucket. S3 refuses a statement where none can. Other services'
/// actions are not S3's to judge.
fn actions_apply_to_resources(actions: &[String], resources: &[String]) -> bool {
    let mut s3_actions = actions.iter().filter(|a| *a == "*" || a.to_ascii_lowercase().starts_with("s3:")).peekable();
    if s3_actions.peek().is_none() {
        return true;
    }
    s3_actions.any(|action| {
        let names = |list: &'static [&'static str]| list.iter().any(|known| wildcard_match_ignore_case(action, known));
        resources.iter().any(|resource| {
            let Some(path) = resource.strip_prefix("arn:aws:s3:::") else {
                return resource == "*";
            };
            let can_name_object = path.contains('/') || path.contains('*');
            let can_name_bucket = !path.contains('/');
            (can_name_object && names(OBJECT_ACTIONS)) || (can_name_bucket && names(BUCKET_ACTIONS))
        })
    })
}

fn principals(value: &Value) -> Result<Principals, Malformed> {
    let invalid = || malformed("Invalid principal in policy");
    match value {
        Value::String(s) if s == "*" => Ok(Principals::Everyone),
        Value::Object(map) if !map.is_empty() => {
            let mut named = Vec::new();
            for (kind, values) in map {
                let values = strings(values, "Principal").map_err(|_| invalid())?;
                for value in values {
                    let principal = match kind.as_str() {
                        "AWS" if value == "*" => return Ok(Principals::Everyone),
                        "AWS" => aws_principal(&value).ok_or_else(invalid)?,
                        "CanonicalUser" => NamedPrincipal::CanonicalUser(value),
                        "Service" | "Federated" => NamedPrincipal::Other,
                        _ => return Err(invalid()),
                    };
                    named.push(principal);
                }
            }
            Ok(Principals::Named(named))
        }
        _ => Err(invalid()),
    }
}

/// An `AWS` principal: a 12-digit account id, an account's root ARN, or an IAM ARN.
fn aws_principal(value: &str) -> Option<NamedPrincipal> {
    if value.len() == 12 && value.chars().all(|c| c.is_ascii_digit()) {
        return Some(NamedPrincipal::Account(value.to_owned()));
    }
    let rest = value.strip_prefix("arn:aws:iam::")?;
    let (account, resource) = rest.split_once(':')?;
    if account.len() != 12 || !account.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    if resource == "root" {
        return Some(NamedPrincipal::Account(account.to_owned()));
    }
    if resource.starts_with("user/") || resource.starts_with("role/") {
        return Some(NamedPrincipal::Arn(value.to_owned()));
    }
    None
}

fn conditions(block: &Map<String, Value>) -> Result<Vec<Condition>, Malformed> {
    let mut out = Vec::new();
    for (operator_name, keys) in block {
        let operator = Operator::parse(operator_name)
            .ok_or_else(|| malformed(format!("Invalid Condition type : {operator_name}")))?;
        let Value::Object(keys) = keys else {
            return Err(malformed("Condition is not well formed"));
        };
        for (key, values) in keys {
            let values = match values {
                Value::Array(items) => items.iter().map(scalar).collect::<Option<Vec<_>>>(),
                other => scalar(other).map(|v| vec![v]),
            }
            .ok_or_else(|| malformed("Condition is not well formed"))?;
            if let Some(bad) = values.iter().find(|v| !operator.base().accepts(v)) {
                return Err(malformed(format!("Invalid value {bad:?} for condition {operator_name}")));
            }
            out.push(Condition { operator, key: key.clone(), values });
        }
    }
    Ok(out)
}

/// A condition value as text: IAM accepts strings, numbers and booleans.
fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}
