//! What the fuzz targets share: an in-process s3s service set up as the gateway sets up its
//! own (an authenticator, so every request is signature-checked), and a SigV4 signer for
//! the requests whose body the aws-chunked target wants to reach.
//!
//! s3s keeps its aws-chunked decoder and its SigV4/SigV2 parsers private; the narrowest
//! public API that reaches them is `S3Service::call` with a whole HTTP request.

use std::sync::{Arc, OnceLock};

use futures::StreamExt as _;
use hmac::{KeyInit as _, Mac as _};
use s3s::auth::SimpleAuth;
use s3s::config::{S3Config, StaticConfigProvider};
use s3s::dto::{PutObjectInput, PutObjectOutput};
use s3s::service::{S3Service, S3ServiceBuilder};
use s3s::{S3, S3Request, S3Response, S3Result};
use sha2::Digest as _;

/// The example credentials of AWS's SigV4 documentation.
pub const ACCESS_KEY: &str = "AKIAIOSFODNN7EXAMPLE";
/// Secret of [`ACCESS_KEY`].
pub const SECRET_KEY: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
/// The date of AWS's examples; accepted because [`service`] allows any clock skew.
pub const AMZ_DATE: &str = "20130524T000000Z";
/// Region of the credential scope.
pub const REGION: &str = "us-east-1";

/// An S3 implementation that reads every byte of a PutObject body (so the aws-chunked
/// decoder runs to its end, trailers included) and answers every other call with s3s's
/// `NotImplemented`, which comes after the signature check.
struct Drain;

#[async_trait::async_trait]
impl S3 for Drain {
    async fn put_object(&self, req: S3Request<PutObjectInput>) -> S3Result<S3Response<PutObjectOutput>> {
        if let Some(mut body) = req.input.body {
            while let Some(chunk) = body.next().await {
                if chunk.is_err() {
                    return Err(s3s::s3_error!(IncompleteBody));
                }
            }
        }
        if let Some(trailers) = req.trailing_headers {
            let _ = trailers.take();
        }
        Ok(S3Response::new(PutObjectOutput::default()))
    }
}

/// The service every request target calls, built once per process.
pub fn service() -> &'static S3Service {
    static SERVICE: OnceLock<S3Service> = OnceLock::new();
    SERVICE.get_or_init(|| {
        let mut builder = S3ServiceBuilder::new(Drain);
        builder.set_auth(SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
        // AWS's example requests are dated 2013; the clock is not what is being fuzzed.
        let mut config = S3Config::default();
        config.presigned_url_max_skew_time_secs = u32::MAX;
        builder.set_config(Arc::new(StaticConfigProvider::new(Arc::new(config))));
        builder.build()
    })
}

/// Runs `request` through [`service`] to its end, response body included.
pub fn call(request: http::Request<s3s::Body>) {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    let runtime = RUNTIME
        .get_or_init(|| tokio::runtime::Builder::new_current_thread().build().expect("a current-thread runtime"));
    runtime.block_on(async {
        let Ok(response) = service().call(request).await else { return };
        let status = response.status();
        let mut body = response.into_body();
        let mut text = Vec::new();
        while let Some(chunk) = body.next().await {
            match chunk {
                Ok(chunk) => text.extend_from_slice(&chunk),
                Err(_) => break,
            }
        }
        // `FUZZ_DEBUG=1 cargo fuzz run <target> <input>` shows how far an input got.
        if std::env::var_os("FUZZ_DEBUG").is_some() {
            eprintln!("{status} {}", String::from_utf8_lossy(&text));
        }
    });
}

/// Lowercase hex SHA-256.
#[must_use]
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(data))
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// The SigV4 signature of `string_to_sign` with the example key on [`AMZ_DATE`] in [`REGION`].
#[must_use]
pub fn sign(string_to_sign: &str) -> String {
    let date = &AMZ_DATE[..8];
    let key = [date, REGION, "s3", "aws4_request"]
        .iter()
        .fold(format!("AWS4{SECRET_KEY}").into_bytes(), |key, part| hmac(&key, part.as_bytes()));
    hex::encode(hmac(&key, string_to_sign.as_bytes()))
}

/// The `Authorization` header of a request whose canonical headers are `headers` (lowercase
/// names, sorted, values trimmed), with an empty query.
#[must_use]
pub fn authorization(method: &str, path: &str, headers: &[(&str, &str)], content_sha256: &str) -> String {
    let canonical_headers: String = headers.iter().map(|(n, v)| format!("{n}:{v}\n")).collect();
    let signed_headers = headers.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(";");
    let canonical_request = format!("{method}\n{path}\n\n{canonical_headers}\n{signed_headers}\n{content_sha256}");
    let scope = format!("{}/{REGION}/s3/aws4_request", &AMZ_DATE[..8]);
    let string_to_sign = format!("AWS4-HMAC-SHA256\n{AMZ_DATE}\n{scope}\n{}", sha256_hex(canonical_request.as_bytes()));
    format!(
        "AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/{scope}, SignedHeaders={signed_headers}, Signature={}",
        sign(&string_to_sign)
    )
}
