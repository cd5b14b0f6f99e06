//! aws-sdk-s3 clients for a [`Server`]: path-style addressing, the test credentials, no
//! retries (a test sees the first answer), and for HTTPS the server's self-signed
//! certificate as the only trusted root, on the SDK's own rustls-based HTTP client.

use aws_sdk_s3::Client;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region, SharedHttpClient};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use aws_smithy_http_client::tls::{self, TlsContext, TrustStore};

use crate::raw::{Key, ROOT};
use crate::{REGION, Server};

impl Server {
    /// Asserts that `key` is not visible in `bucket`: HEAD answers 404 and no listing shows
    /// it.
    ///
    /// # Panics
    /// When it is visible, or the listing fails.
    pub async fn assert_absent(&self, bucket: &str, key: &str) {
        let s3 = self.s3();
        assert_eq!(failure(s3.head_object().bucket(bucket).key(key).send().await).0, 404, "{key:?} must not exist");
        let listed = s3.list_objects_v2().bucket(bucket).send().await.expect("list");
        assert!(!listed.contents().iter().any(|o| o.key() == Some(key)), "{key:?} is listed");
    }

    /// A client signing with the root credentials.
    #[must_use]
    pub fn s3(&self) -> aws_sdk_s3::Client {
        self.s3_as(ROOT)
    }

    /// A client signing with `key`.
    #[must_use]
    pub fn s3_as(&self, key: Key<'_>) -> aws_sdk_s3::Client {
        aws_sdk_s3::Client::from_conf(self.s3_config(key).build())
    }

    /// The configuration behind [`Server::s3_as`], for tests that change a setting.
    #[must_use]
    pub fn s3_config(&self, key: Key<'_>) -> aws_sdk_s3::config::Builder {
        aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(REGION))
            .endpoint_url(self.endpoint())
            .force_path_style(true)
            .credentials_provider(Credentials::new(key.access_key, key.secret_key, None, None, "conformance"))
            .retry_config(RetryConfig::disabled())
            .http_client(self.http_client())
    }

    fn http_client(&self) -> SharedHttpClient {
        let builder = aws_smithy_http_client::Builder::new();
        match self.cert_pem() {
            None => builder.build_http(),
            Some(pem) => {
                let trust = TrustStore::empty().with_native_roots(false).with_pem_certificate(pem.as_bytes());
                let context = TlsContext::builder().with_trust_store(trust).build().expect("TLS context");
                builder
                    .tls_provider(tls::Provider::Rustls(tls::rustls_provider::CryptoMode::Ring))
                    .tls_context(context)
                    .build_https()
            }
        }
    }
}

/// The HTTP status and S3 error code of a failed SDK call (the code is empty when the
/// response had no error document, as for 304 and HEAD).
///
/// # Panics
/// When the call succeeded, or failed without a response.
pub fn failure<T: std::fmt::Debug, E: ProvideErrorMetadata + std::fmt::Debug>(
    result: Result<T, SdkError<E, HttpResponse>>,
) -> (u16, String) {
    let err = match result {
        Ok(output) => panic!("expected an error response, got {output:?}"),
        Err(err) => err,
    };
    let status = err
        .raw_response()
        .map(|r| r.status().as_u16())
        .unwrap_or_else(|| panic!("expected an error response, got no response: {err:?}"));
    (status, err.code().unwrap_or_default().to_owned())
}

/// An ETag without its quotes.
#[must_use]
pub fn unquote(etag: &str) -> &str {
    etag.trim_matches('"')
}

/// Creates `bucket`.
///
/// # Panics
/// When the server refuses.
pub async fn create_bucket(s3: &Client, bucket: &str) {
    s3.create_bucket().bucket(bucket).send().await.unwrap_or_else(|e| panic!("create bucket {bucket}: {e:?}"));
}

/// Enables versioning on `bucket`.
///
/// # Panics
/// When the server refuses.
pub async fn enable_versioning(s3: &Client, bucket: &str) {
    let enabled = aws_sdk_s3::types::VersioningConfiguration::builder()
        .status(aws_sdk_s3::types::BucketVersioningStatus::Enabled)
        .build();
    s3.put_bucket_versioning()
        .bucket(bucket)
        .versioning_configuration(enabled)
        .send()
        .await
        .unwrap_or_else(|e| panic!("enable versioning on {bucket}: {e:?}"));
}

/// PUTs `data` at `bucket/key` and returns the ETag, unquoted.
///
/// # Panics
/// When the server refuses or answers without an ETag.
pub async fn put(s3: &Client, bucket: &str, key: &str, data: &[u8]) -> String {
    let out = s3
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from(data.to_vec()))
        .send()
        .await
        .unwrap_or_else(|e| panic!("put {bucket}/{key}: {e:?}"));
    unquote(out.e_tag().expect("ETag")).to_owned()
}

/// GETs `bucket/key`, or the `range` of it when one is given, and returns the bytes.
///
/// # Panics
/// When the server refuses or the body breaks off.
pub async fn get_range(s3: &Client, bucket: &str, key: &str, range: Option<&str>) -> Vec<u8> {
    let out = s3
        .get_object()
        .bucket(bucket)
        .key(key)
        .set_range(range.map(str::to_owned))
        .send()
        .await
        .unwrap_or_else(|e| panic!("get {bucket}/{key}: {e:?}"));
    out.body.collect().await.expect("body").into_bytes().to_vec()
}

/// GETs `bucket/key` and returns its bytes.
///
/// # Panics
/// As [`get_range`].
pub async fn get(s3: &Client, bucket: &str, key: &str) -> Vec<u8> {
    get_range(s3, bucket, key, None).await
}

/// Begins a multipart upload of `bucket/key` and uploads parts 1, 2, ... of `sizes`, part n's
/// bytes from [`crate::bytes`] seeded with `seed + n`; returns the upload id, and each part's
/// bytes with its completed-part entry.
///
/// # Panics
/// When a request fails.
pub async fn upload_parts(
    s3: &Client,
    bucket: &str,
    key: &str,
    sizes: &[usize],
    seed: u64,
) -> (String, Vec<(Vec<u8>, CompletedPart)>) {
    let created = s3.create_multipart_upload().bucket(bucket).key(key).send().await.expect("create upload");
    let upload_id = created.upload_id().expect("upload id").to_owned();
    let mut parts = Vec::new();
    for (number, size) in (1..).zip(sizes) {
        let data = crate::bytes(*size, seed + u64::try_from(number).expect("part numbers are positive"));
        let entry = upload_part(s3, bucket, key, &upload_id, number, data.clone()).await;
        parts.push((data, entry));
    }
    (upload_id, parts)
}

/// Uploads `data` as part `number` of `upload_id` and returns its entry for the completion.
///
/// # Panics
/// When the upload fails.
pub async fn upload_part(
    s3: &Client,
    bucket: &str,
    key: &str,
    upload_id: &str,
    number: i32,
    data: Vec<u8>,
) -> CompletedPart {
    let sent = s3
        .upload_part()
        .bucket(bucket)
        .key(key)
        .upload_id(upload_id)
        .part_number(number)
        .body(ByteStream::from(data))
        .send()
        .await
        .unwrap_or_else(|err| panic!("part {number} of {key}: {err:?}"));
    CompletedPart::builder().part_number(number).e_tag(sent.e_tag().expect("ETag")).build()
}

/// The completion naming every one of `parts`, in order.
#[must_use]
pub fn completion_of(parts: &[(Vec<u8>, CompletedPart)]) -> CompletedMultipartUpload {
    CompletedMultipartUpload::builder().set_parts(Some(parts.iter().map(|(_, entry)| entry.clone()).collect())).build()
}
