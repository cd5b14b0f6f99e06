//! The S3 API: [`Gateway`] implements the s3s [`S3`] trait. Its `impl` block is the table of
//! contents; each operation family lives in its own file and returns [`error::Error`], mapped
//! to an S3 error in one place ([`error`]).
//!
//! - [`checksum`]: client checksums (`Content-MD5`, `x-amz-checksum-*`, trailers) vs computed.
//! - [`error`]: the gateway error and its S3 codes.

pub mod checksum;
pub mod error;

use std::sync::Arc;

use async_trait::async_trait;
use s3s::S3;

use crate::auth::Users;
use crate::backend::BlobStore;
use crate::config::Config;

pub use self::error::{Error, Result};

/// The S3 service: operations parse the request, call the registry and the blob store, and
/// build the response.
pub struct Gateway {
    #[expect(dead_code, reason = "read by the S3 operations")]
    blobs: Arc<dyn BlobStore>,
    #[expect(dead_code, reason = "read by the S3 operations")]
    config: Arc<Config>,
    #[expect(dead_code, reason = "read by the S3 operations")]
    users: Users,
}

impl Gateway {
    /// A gateway storing bytes in `blobs`.
    #[must_use]
    pub fn new(blobs: Arc<dyn BlobStore>, config: Arc<Config>, users: Users) -> Self {
        Self { blobs, config, users }
    }
}

/// Operations not listed here answer `NotImplemented` (the s3s default).
#[async_trait]
impl S3 for Gateway {}
