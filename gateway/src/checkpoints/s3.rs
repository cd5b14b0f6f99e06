//! Checkpoints kept in an S3 bucket: `checkpoint create --s3` uploads one by hand, and a
//! serving gateway with `registry.checkpoint_copy_s3` uploads each automatic one, where plain
//! `verify` looks for the newest as it does in the folders.
//!
//! The point of the copy is that the registry's host cannot take it back: a bucket created with
//! Object Lock and a COMPLIANCE default retention keeps every checkpoint for the retention
//! period, whoever asks. The client is configured from the standard `AWS_*` variables, never
//! from the gateway's own credentials or its upstream's: `AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION` (or `AWS_DEFAULT_REGION`, default
//! `us-east-1`), `AWS_ENDPOINT_URL` (then path-style addressing) and `AWS_CA_BUNDLE` (an extra
//! trusted PEM).

use std::fmt;

use anyhow::{Context as _, bail};
use aws_sdk_s3::Client;
use aws_sdk_s3::error::DisplayErrorContext;
use ed25519_dalek::VerifyingKey;

use super::Checkpoint;

/// An `s3://bucket/key` location; for automatic checkpoints the key is a prefix that each
/// checkpoint's file name is appended to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Location {
    /// The bucket.
    pub bucket: String,
    /// The key, or the prefix of the keys.
    pub key: String,
}

impl S3Location {
    /// Parses `s3://bucket/key`; the key may be empty (the bucket's top) when `prefix` is set.
    ///
    /// # Errors
    /// Anything else.
    pub fn parse(url: &str, prefix: bool) -> anyhow::Result<Self> {
        let shape = if prefix { "s3://bucket/prefix/" } else { "s3://bucket/key" };
        let rest = url.strip_prefix("s3://").with_context(|| format!("{url:?} is not an {shape}"))?;
        let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() || (key.is_empty() && !prefix) {
            bail!("{url:?} is not an {shape}");
        }
        Ok(Self { bucket: bucket.to_owned(), key: key.to_owned() })
    }

    /// Where the checkpoint goes under this prefix.
    #[must_use]
    pub fn join(&self, checkpoint: &Checkpoint) -> Self {
        Self { bucket: self.bucket.clone(), key: format!("{}{}", self.key, checkpoint.file_name()) }
    }
}

impl fmt::Display for S3Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.key)
    }
}

/// An S3 client configured from the standard `AWS_*` variables (see the module docs).
///
/// # Errors
/// No credentials in the environment, or an unreadable `AWS_CA_BUNDLE`.
pub fn client_from_env() -> anyhow::Result<Client> {
    use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
    use aws_smithy_http_client::tls::{self, TlsContext, TrustStore};

    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let access_key = var("AWS_ACCESS_KEY_ID").context("an S3 checkpoint copy needs AWS_ACCESS_KEY_ID")?;
    let secret_key = var("AWS_SECRET_ACCESS_KEY").context("an S3 checkpoint copy needs AWS_SECRET_ACCESS_KEY")?;
    let region = var("AWS_REGION").or_else(|| var("AWS_DEFAULT_REGION")).unwrap_or_else(|| "us-east-1".to_owned());
    let mut trust = TrustStore::default();
    if let Some(bundle) = var("AWS_CA_BUNDLE") {
        let pem = std::fs::read(&bundle).with_context(|| format!("cannot read AWS_CA_BUNDLE {bundle}"))?;
        trust = trust.with_pem_certificate(pem);
    }
    let tls_context = TlsContext::builder().with_trust_store(trust).build().context("TLS settings")?;
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(tls::rustls_provider::CryptoMode::Ring))
        .tls_context(tls_context)
        .build_https();
    let mut builder = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(region))
        .credentials_provider(Credentials::new(access_key, secret_key, var("AWS_SESSION_TOKEN"), None, "environment"))
        .http_client(http);
    if let Some(endpoint) = var("AWS_ENDPOINT_URL") {
        builder = builder.endpoint_url(endpoint).force_path_style(true);
    }
    Ok(Client::from_conf(builder.build()))
}

/// Uploads `checkpoint` to `to`, as the file format's JSON line.
///
/// # Errors
/// The upload failed (the message carries S3's error code).
pub async fn upload(client: &Client, to: &S3Location, checkpoint: &Checkpoint) -> anyhow::Result<()> {
    let body = format!("{}\n", serde_json::to_string(checkpoint)?);
    client
        .put_object()
        .bucket(&to.bucket)
        .key(&to.key)
        .content_type("application/json")
        .body(body.into_bytes().into())
        .send()
        .await
        .map_err(|err| anyhow::anyhow!("{}", DisplayErrorContext(err)))
        .with_context(|| format!("cannot upload the checkpoint to {to}"))?;
    Ok(())
}

/// The newest checkpoint under `prefix` (highest sequence among the keys named as automatic
/// checkpoints are) that `trusted` signed. Objects that are not checkpoints or not signed by
/// `trusted` are passed over, as in the folders.
///
/// # Errors
/// The bucket cannot be listed, or a checkpoint object cannot be read.
pub async fn newest(
    client: &Client,
    prefix: &S3Location,
    trusted: &VerifyingKey,
) -> anyhow::Result<Option<(S3Location, Checkpoint)>> {
    let mut keys = Vec::new();
    let mut pages = client.list_objects_v2().bucket(&prefix.bucket).prefix(&prefix.key).into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page
            .map_err(|err| anyhow::anyhow!("{}", DisplayErrorContext(err)))
            .with_context(|| format!("cannot list {prefix}"))?;
        for object in page.contents() {
            let Some(key) = object.key() else { continue };
            let name = &key[prefix.key.len().min(key.len())..];
            let digits = name.strip_suffix(".json").unwrap_or_default();
            if digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit()) {
                keys.push(key.to_owned());
            }
        }
    }
    // Zero-padded names sort as their sequences do.
    keys.sort_unstable_by(|a, b| b.cmp(a));
    for key in keys {
        let location = S3Location { bucket: prefix.bucket.clone(), key };
        let object = client
            .get_object()
            .bucket(&location.bucket)
            .key(&location.key)
            .send()
            .await
            .map_err(|err| anyhow::anyhow!("{}", DisplayErrorContext(err)))
            .with_context(|| format!("cannot read {location}"))?;
        let bytes = object.body.collect().await.with_context(|| format!("cannot read {location}"))?.into_bytes();
        let Ok(checkpoint) = Checkpoint::parse(&String::from_utf8_lossy(&bytes), &location.to_string()) else {
            continue;
        };
        if checkpoint.signature_holds(trusted) {
            return Ok(Some((location, checkpoint)));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_parse_as_keys_or_prefixes() {
        let key = S3Location::parse("s3://audit/gw1/first.json", false).unwrap();
        assert_eq!((key.bucket.as_str(), key.key.as_str()), ("audit", "gw1/first.json"));
        assert_eq!(key.to_string(), "s3://audit/gw1/first.json");
        assert!(S3Location::parse("s3://audit/", false).is_err());
        assert!(S3Location::parse("s3://audit", false).is_err());
        assert_eq!(S3Location::parse("s3://audit", true).unwrap().key, "");
        assert_eq!(S3Location::parse("s3://audit/gw1/", true).unwrap().key, "gw1/");
        assert!(S3Location::parse("s3:///gw1/", true).is_err());
        assert!(S3Location::parse("https://audit/gw1/", true).is_err());
    }
}
