//! The registry's integration tests, one module per concern, in one test binary: each
//! binary links the registry and SQLite again, so one builds much faster than ten.

mod crash;
mod frozen_v1;
mod identities;
mod inline;
mod packages;
mod policy;
mod replay;
mod rules;
mod tail;
mod verify;
mod views_failure;
mod writer;
