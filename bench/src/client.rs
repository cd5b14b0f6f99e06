//! The aws-sdk-s3 client every workload uses.
//!
//! Both servers get the same client: path-style addressing, no retries (an error is counted,
//! not hidden), checksums only where an operation requires them and unsigned payloads (set per
//! request in `workload`), so the client spends no CPU hashing bodies and the comparison
//! measures the servers.

use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
    StalledStreamProtectionConfig,
};

/// Where and as whom the workloads connect.
pub struct Endpoint<'a> {
    pub url: &'a str,
    pub access_key: &'a str,
    pub secret_key: &'a str,
    pub region: &'a str,
}

/// A client for `endpoint` over plain HTTP.
pub fn build(endpoint: &Endpoint<'_>) -> aws_sdk_s3::Client {
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(endpoint.region.to_owned()))
        .endpoint_url(endpoint.url)
        .force_path_style(true)
        .credentials_provider(Credentials::new(endpoint.access_key, endpoint.secret_key, None, None, "s3bench"))
        .retry_config(RetryConfig::disabled())
        .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
        .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
        // A server that fsyncs a large object before answering stops reading the body for a
        // while; that is the workload, not a stall.
        .stalled_stream_protection(StalledStreamProtectionConfig::disabled())
        .http_client(aws_smithy_http_client::Builder::new().build_http())
        .build();
    aws_sdk_s3::Client::from_conf(config)
}
