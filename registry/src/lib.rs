//! The artifact-store registry: an append-only, hash-chained event log and the views
//! rebuilt from it.
//!
//! Every state change of the gateway (a bucket created, an object written, a retention
//! changed, an object read) is one [`Event`] appended to the log in the same SQLite
//! transaction that applies it to the views. The log is the authority: [`log::replay`]
//! rebuilds every view from it, byte for byte, and [`log::verify`] walks the hash chain and
//! names the first event that was changed behind the registry's back.
//!
//! The crate knows nothing of HTTP or the S3 wire format, and of blob bytes only those of
//! small objects the gateway hands it to keep inline ([`inline`]).
//!
//! # Modules
//! Imports point one way: each module imports only modules listed before it, so the model
//! (what the registry means) can be read without how SQLite stores it.
//!
//! The model: pure data and rules, no I/O.
//! - [`event`]: events, their canonical encoding and chain hash; [`event::v1`] payloads.
//! - [`state`]: the buckets, versions and uploads the views hold, as plain records.
//! - [`retention`]: Object Lock rules as pure functions of (state, time).
//! - [`lifecycle`]: lifecycle rules and the sweeper's plan, a pure function of (state, time).
//! - [`explain`]: why a version exists or was deleted, from its events.
//! - [`clock`]: the injected time source.
//! - [`packages`]: sealed packages' manifests and records.
//! - [`inline_blob`]: a small object's bytes and the locator that names them.
//! - [`policy`]: who may do what: IAM policies parsed and checked, and AWS's evaluation
//!   logic over identity policies, bucket policies and ACL grants. Pure.
//! - [`side_tables`]: the engine seam for the rows kept beside the log (inline bytes, access
//!   key secrets, gc's marks and pins), written in the transaction of their events.
//! - [`queries`]: the engine seam for reads: [`queries::Reads`], what every engine answers
//!   from its views, with the rules that are reads of them (lifecycle plans, the refusal of a
//!   change under a seal, a package's manifest) as provided methods, and the queries' types.
//!
//! - `views` (crate-private): what each event does to the views, the same for every engine
//!   and for the direct path and replay; an engine stores the rows through its `ViewRows`.
//!
//! Storage: the log and the views in SQLite, the embedded engine, and the log shared on
//! PostgreSQL.
//! - [`rules`]: replay's check of every event against the rules in force at its sequence.
//! - [`log`]: append, fetch, replay, verify.
//! - [`audit`]: the views compared with a fresh replay of the log, and the log with its rules.
//! - [`freshness`]: how current a replica of a shared log must be for a read: as of its
//!   request's beginning, learnt by one query shared by the reads waiting together.
//! - [`postgres`]: the log shared by several gateways on PostgreSQL, which each gateway's
//!   SQLite registry replicates ([`Registry::open_shared`]); leases; `registry copy`.
//! - [`sqlite`]: opening the database, the writer task (group commit), reader connections,
//!   [`queries::Reads`] answered in SQL, the view rows and their deterministic dump
//!   ([`sqlite::views`]), and the [`Registry`] handle, whose methods the operation modules add.
//!
//! Operations: writes with their checks.
//! - [`inline`]: small objects' bytes, stored in the log database with their event.
//! - [`deletions`]: blob deletions that gc and writes agree on under the writer.
//! - [`commands`]: the domain operations that check the views (through
//!   [`sqlite::Writer::views`], a [`queries::Reads`]) and append events.
//! - [`identities`]: accounts, users, access keys and users' policies; secrets kept beside
//!   the log, never in it.
//!
//! # Example
//! ```
//! use std::sync::Arc;
//! use artifact_store_registry::{Caller, Registry, clock::SystemClock};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> artifact_store_registry::Result<()> {
//! let dir = tempfile::tempdir().unwrap();
//! let registry = Registry::open(dir.path().join("registry.db"), Arc::new(SystemClock))?;
//! let event = registry.create_bucket(Caller::system("docs"), "photos", "us-east-1", false).await?;
//! assert_eq!(event.event_type, "v1.bucket.created");
//! assert!(registry.verify().await?.first_mismatch.is_none());
//! registry.close().await;
//! # Ok(()) }
//! ```

pub mod acl;
pub mod audit;
pub mod clock;
pub mod commands;
pub mod cors;
pub mod deletions;
mod error;
pub mod event;
pub mod explain;
pub mod freshness;
pub mod identities;
pub mod inline;
pub mod inline_blob;
pub mod lifecycle;
pub mod log;
pub mod packages;
pub mod policy;
pub mod postgres;
pub mod queries;
pub mod retention;
pub mod rules;
pub mod side_tables;
pub mod sqlite;
pub mod state;
mod views;

pub use commands::Caller;
pub use error::{Error, Result};
pub use event::{Event, EventDraft, RequestContext};
pub use sqlite::{Lease, Registry, Writer};
