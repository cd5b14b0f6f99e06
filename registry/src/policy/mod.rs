//! Who may do what: IAM policies and the decision they make on a request. Pure: no I/O,
//! no clock (the request carries `aws:CurrentTime`), nothing of HTTP.
//!
//! - [`document`]: a policy document parsed and checked, refused with S3's
//!   `MalformedPolicy` wording.
//! - [`request`]: the principal, the action, the resource and the condition keys.
//! - [`evaluate`]: AWS's evaluation logic over identity policies, the bucket policy and
//!   the ACL's grant.
//! - `condition` and `pattern`: condition operators; wildcards, ARNs and policy variables.
//! - [`actions`]: the S3 actions, by the resource each applies to.

pub mod actions;
mod condition;
pub mod document;
pub mod evaluate;
mod pattern;
pub mod request;

pub use document::{Effect, Malformed, Policy, PolicyKind};
pub use evaluate::{AclGrant, Decision, Grants, decide};
pub use pattern::{arn_match, wildcard_match};
pub use request::{ConditionKeys, Principal, Request, User, canonical_id};
