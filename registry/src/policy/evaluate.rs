//! The decision: AWS's evaluation logic over identity policies, the bucket policy and the
//! ACL's grant.
//!
//! 1. An explicit `Deny` in any policy that applies wins.
//! 2. Otherwise, in the bucket owner's account, an `Allow` from an identity policy or from
//!    the bucket (its policy naming the user, or everyone; its ACL granting everyone) lets
//!    the request in. An account's root user is allowed by its own account without a policy.
//! 3. From another account, both sides must allow: the user's own identity policies (or its
//!    being its account's root), and the bucket, to the user, its account or everyone.
//! 4. An anonymous request has no identity: only a grant to everyone lets it in.
//! 5. Otherwise denied.
//!
//! An object another account owns (written under `ObjectWriter`) is that account's to
//! grant: steps 2 and 3 read its account where they read the bucket owner's, the bucket
//! policy's `Allow`s do not speak on it, and its `Deny`s still do.
//!
//! One exception, as on AWS: the root user of the account that owns a bucket may always
//! read, replace and delete the bucket's policy, so that a policy denying everything cannot
//! lock the owner out.

use super::document::{Effect, Listed, NamedPrincipal, Policy, Principals, Statement};
use super::pattern::{arn_match, substitute, wildcard_match_ignore_case};
use super::request::{Principal, Request, User, canonical_id};

/// The outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Allowed.
    Allow,
    /// A `Deny` applies.
    ExplicitDeny,
    /// Nothing allows it.
    ImplicitDeny,
}

impl Decision {
    /// Whether the request may go on.
    #[must_use]
    pub fn allowed(self) -> bool {
        self == Decision::Allow
    }
}

/// What the resource's ACL grants for this request, as the caller found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AclGrant {
    /// No grant covers the request.
    #[default]
    None,
    /// A grant to `AllUsers`, or to `AuthenticatedUsers` for a signed request.
    Everyone,
    /// A grant to the requester's account: its users still need their own policies.
    RequesterAccount,
}

/// Everything that speaks on a request besides the request itself.
#[derive(Debug, Clone, Copy, Default)]
pub struct Grants<'a> {
    /// The requesting user's identity policies (none for a root user or anonymous).
    pub identity: &'a [Policy],
    /// The bucket's policy, if it has one.
    pub bucket_policy: Option<&'a Policy>,
    /// The id of the account that owns the resource; `None` for a request on no bucket
    /// (ListBuckets, IAM), which only the requester's own account speaks on.
    pub resource_owner: Option<&'a str>,
    /// The ACL's grant.
    pub acl: AclGrant,
    /// The id of the account that owns the object, when it is not the bucket's owner
    /// ([`crate::acl::ObjectAcl`]): that account's users decide by their own policies, and
    /// everyone else, the bucket's owner included, needs the object's ACL to grant them; the
    /// bucket's policy, its owner's, can still deny but no longer allow.
    pub object_owner: Option<&'a str>,
}

/// How a bucket policy's statement named the requester.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Named {
    /// The user itself, or everyone: enough on its own in the owner's account and for
    /// anonymous requests.
    Directly,
    /// The requester's account: its users need their own account's permission too.
    ByAccount,
}

/// Actions the owner's root user may always take on its bucket.
const OWNER_ALWAYS: &[&str] = &["s3:GetBucketPolicy", "s3:PutBucketPolicy", "s3:DeleteBucketPolicy"];

/// Decides a request.
#[must_use]
pub fn decide(request: &Request<'_>, grants: &Grants<'_>) -> Decision {
    let user = match request.principal {
        Principal::User(user) => Some(user),
        Principal::Anonymous => None,
    };
    if let Some(user) = user
        && user.is_root()
        && grants.resource_owner == Some(user.account())
        && OWNER_ALWAYS.iter().any(|a| a.eq_ignore_ascii_case(request.action))
    {
        return Decision::Allow;
    }

    let mut denied = false;
    let mut identity_allows = user.is_some_and(User::is_root);
    if user.is_some() {
        for statement in grants.identity.iter().flat_map(|p| &p.statements) {
            if applies(statement, request) {
                match statement.effect {
                    Effect::Deny => denied = true,
                    Effect::Allow => identity_allows = true,
                }
            }
        }
    }
    let mut bucket_allows = match grants.acl {
        AclGrant::None => None,
        AclGrant::Everyone => Some(Named::Directly),
        AclGrant::RequesterAccount => Some(Named::ByAccount),
    };
    let policy_grants = grants.object_owner.is_none();
    for statement in grants.bucket_policy.iter().flat_map(|p| &p.statements) {
        let Some(named) = names(statement, request.principal) else {
            continue;
        };
        if applies(statement, request) {
            match statement.effect {
                Effect::Deny => denied = true,
                Effect::Allow if policy_grants && bucket_allows != Some(Named::Directly) => bucket_allows = Some(named),
                Effect::Allow => {}
            }
        }
    }
    if denied {
        return Decision::ExplicitDeny;
    }
    let owner = grants.object_owner.or(grants.resource_owner);
    let allowed = match user {
        None => bucket_allows == Some(Named::Directly),
        Some(user) if owner.is_none_or(|owner| owner == user.account()) => {
            identity_allows || bucket_allows == Some(Named::Directly)
        }
        Some(_) => identity_allows && bucket_allows.is_some(),
    };
    if allowed { Decision::Allow } else { Decision::ImplicitDeny }
}

/// Whether deciding `request`, or any of the `also` actions on its resource with its keys,
/// can depend on the object's existing tags: some statement that could apply to it (naming
/// its principal, covering the action and the resource) has an `s3:ExistingObjectTag/`
/// condition. A statement that cannot apply whatever its conditions say needs no tags, so
/// most requests under a policy that reads tags somewhere cost no read of the object.
#[must_use]
pub fn needs_existing_object_tags(request: &Request<'_>, also: &[&str], grants: &Grants<'_>) -> bool {
    let could_apply = |statement: &Statement| {
        statement.reads_existing_object_tags()
            && std::iter::once(request.action)
                .chain(also.iter().copied())
                .any(|action| covers(statement, &Request { action, ..request.clone() }))
    };
    let identity = matches!(request.principal, Principal::User(_))
        && grants.identity.iter().flat_map(|p| &p.statements).any(could_apply);
    identity
        || grants
            .bucket_policy
            .iter()
            .flat_map(|p| &p.statements)
            .any(|statement| names(statement, request.principal).is_some() && could_apply(statement))
}

/// Whether a statement's action, resource and conditions cover the request (its principal
/// is checked apart, by [`names`], for the statements that name principals).
fn applies(statement: &Statement, request: &Request<'_>) -> bool {
    covers(statement, request) && statement.conditions.iter().all(|c| c.holds(request, statement.variables))
}

/// Whether a statement's action and resource cover the request's.
fn covers(statement: &Statement, request: &Request<'_>) -> bool {
    let action = |pattern: &String| wildcard_match_ignore_case(pattern, request.action);
    let resource = |pattern: &String| {
        let pattern = if statement.variables { substitute(pattern, request) } else { Some(pattern.into()) };
        pattern.is_some_and(|pattern| arn_match(&pattern, request.resource))
    };
    let actions = match &statement.actions {
        Listed::Only(patterns) => patterns.iter().any(action),
        Listed::AllBut(patterns) => !patterns.iter().any(action),
    };
    let resources = match &statement.resources {
        Listed::Only(patterns) => patterns.iter().any(resource),
        Listed::AllBut(patterns) => !patterns.iter().any(resource),
    };
    actions && resources
}

/// How a bucket policy's statement names the requester, if it does.
fn names(statement: &Statement, principal: &Principal) -> Option<Named> {
    match statement.principals.as_ref()? {
        Listed::Only(Principals::Everyone) => Some(Named::Directly),
        Listed::Only(Principals::Named(list)) => {
            let Principal::User(user) = principal else {
                return None;
            };
            // The strongest way the list names the user: itself (or, for a root user, its
            // account, which a root user is) before its account.
            list.iter().filter_map(|p| named_as(p, user)).min_by_key(|named| *named != Named::Directly)
        }
        Listed::AllBut(Principals::Everyone) => None,
        Listed::AllBut(Principals::Named(list)) => {
            let exempt = match principal {
                Principal::Anonymous => false,
                Principal::User(user) => exempts(list, user),
            };
            (!exempt).then_some(Named::Directly)
        }
    }
}

/// Whether a `NotPrincipal` list leaves `user` out. AWS may check each principal a request
/// speaks for against the list, its account first and then its user, which is why the IAM
/// guide asks for the account's ARN beside a user's: an account leaves out its root user
/// (which is the account) and no other, and a user is left out only when the list names
/// both it and its account.
fn exempts(list: &[NamedPrincipal], user: &User) -> bool {
    let account = list.iter().any(|p| names_account(p, user.account()));
    let itself =
        user.is_root() || list.iter().any(|p| matches!(p, NamedPrincipal::Arn(arn) if arn_match(arn, user.arn())));
    account && itself
}

/// How one named principal names `user`, if it does.
fn named_as(principal: &NamedPrincipal, user: &User) -> Option<Named> {
    if let NamedPrincipal::Arn(pattern) = principal {
        return arn_match(pattern, user.arn()).then_some(Named::Directly);
    }
    let named = if user.is_root() { Named::Directly } else { Named::ByAccount };
    names_account(principal, user.account()).then_some(named)
}

/// Whether a named principal is `account`, by its id, its root ARN or its canonical id.
fn names_account(principal: &NamedPrincipal, account: &str) -> bool {
    match principal {
        NamedPrincipal::Account(id) => id == account,
        NamedPrincipal::CanonicalUser(id) => *id == canonical_id(account),
        NamedPrincipal::Arn(_) | NamedPrincipal::Other => false,
    }
}
