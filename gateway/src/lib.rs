//! artifact-store gateway: an S3 front end whose objects are recorded in the artifact-store
//! registry and whose bytes live in a [`backend::BlobStore`].
//!
//! Module map:
//! - [`server`]: HTTP(S) accept loop, request ids, graceful shutdown; [`serve`] is the entry.
//! - [`admin`]: `/_health` and the other endpoints under `/_`.
//! - [`s3`]: the s3s `S3` implementation and the gateway error → S3 code mapping.
//! - [`backend`]: the `BlobStore` trait and the local filesystem store.
//! - [`blake3_tree`] and [`outboard`]: BLAKE3 over a tree of parts and of 1 MiB groups, so a
//!   multipart object's digest needs no second read and a range is checked on its own.
//! - [`checkpoints`]: signed checkpoints of the event chain: format, key, folders.
//! - [`auth`]: users and root credentials.
//! - [`config`]: one typed configuration (file < environment < flags).
//! - [`tls`]: rustls acceptor and the self-signed certificate.
//! - [`limits`]: idle connections and bodies, and uploads in progress, bounded.
//! - [`telemetry`]: tracing setup.
//! - [`cli`]: the `artifact-store` commands.
//! - [`worker`]: background work (the lifecycle sweeper, checks of the registry, automatic
//!   checkpoints).
//!
//! ```
//! use artifact_store_gateway::config::Config;
//!
//! let config = Config::load(None, &|_| None, &[("server.listen", "127.0.0.1:0".to_owned())]).unwrap();
//! assert_eq!(config.server.region, "us-east-1");
//! ```

pub mod admin;
pub mod auth;
pub mod backend;
pub mod blake3_tree;
pub mod checkpoints;
pub mod cli;
pub mod config;
pub mod layout;
pub mod limits;
pub mod outboard;
pub mod s3;
pub mod server;
pub mod telemetry;
pub mod tls;
pub mod worker;

pub use server::serve;
