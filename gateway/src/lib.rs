//! artifact-store gateway: an S3 front end whose objects are recorded in the artifact-store
//! registry and whose bytes live in a [`backend::BlobStore`].
//!
//! Module map, from the top down; a module imports only from modules below it (checked by
//! `tests/layering.rs`):
//! - [`cli`]: the `artifact-store` commands.
//! - [`server`]: HTTP(S) accept loop, request ids, graceful shutdown; [`serve`] is the entry.
//! - [`console`]: the web console under `/_console/`, pages over the registry's queries.
//! - [`admin`]: `/_health` and the other endpoints under `/_`.
//! - [`cors`]: browsers' preflights and the `Access-Control-*` headers, from buckets' CORS
//!   rules.
//! - [`iam`]: the IAM query API on the S3 port (users, access keys, user policies).
//! - [`s3`]: the s3s `S3` implementation and the gateway error → S3 code mapping.
//! - [`worker`]: background work (the lifecycle sweeper, checks of the registry, automatic
//!   checkpoints).
//! - [`backend`]: the `BlobStore` trait and the stores; they move bytes and know nothing of S3
//!   requests or the registry.
//! - [`auth`]: users and root credentials.
//! - [`checkpoints`]: signed checkpoints of the event chain: format, key, folders.
//! - [`blake3_tree`] and [`outboard`]: BLAKE3 over a tree of parts and of 1 MiB groups, so a
//!   multipart object's digest needs no second read and a range is checked on its own.
//! - [`digest`]: the checksum algorithms S3 defines and MD5, computed over bytes.
//! - [`rehash`]: a version's BLAKE3 computed again from its stored bytes.
//! - [`package_check`]: whether a sealed package's manifest and members still hold.
//! - [`post_form`]: the POST object form's fields that s3s does not read, read ahead of it.
//! - [`request`]: what the server hands the S3 layer about a request (its id, the client).
//! - [`client_addr`]: the address a request came from, through trusted load balancers.
//! - [`clock`]: the wall clock and the fresh ids made from it.
//! - [`metrics`]: the Prometheus metrics every layer records.
//! - [`error_body`]: the code and message of an error response, for the request's log line.
//! - [`tls`]: rustls acceptor and the self-signed certificate.
//! - [`private_file`]: key files created whole, owner-only, the first of two at once kept.
//! - [`url_encode`]: keys and values percent-encoded as AWS writes them.
//! - [`limits`]: idle connections and bodies, and uploads in progress, bounded.
//! - [`chunk_limit`]: the chunks of an aws-chunked body, bounded before s3s gathers them.
//! - [`layout`]: where the data directory keeps what.
//! - [`served_backend`]: the backend a data folder was served with, for the commands run on it.
//! - [`telemetry`]: tracing setup.
//! - [`config`]: one typed configuration (file < environment < flags).
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
pub mod chunk_limit;
pub mod cli;
pub mod client_addr;
pub mod clock;
pub mod config;
pub mod console;
pub mod cors;
pub mod crypto;
pub mod digest;
pub mod error_body;
pub mod iam;
pub mod layout;
pub mod limits;
pub mod metrics;
pub mod outboard;
pub mod package_check;
pub mod post_form;
pub mod private_file;
pub mod rehash;
pub mod request;
pub mod s3;
pub mod served_backend;
pub mod server;
pub mod telemetry;
mod test_barrier;
pub mod tls;
pub mod url_encode;
pub mod worker;

pub use server::serve;
