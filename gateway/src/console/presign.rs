//! Presigned S3 requests in the visitor's name: the download link of an object page and the
//! requests of the console's changes ([`super::actions`]). Signed with the signed-in key for
//! the host the browser used, so that the gateway's S3 API decides and records them as the
//! visitor's own.

use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    PercentEncodingMode, SignableBody, SignableRequest, SignatureLocation, SigningSettings, UriPathNormalizationMode,
    sign,
};
use aws_sigv4::sign::v4;

use super::Visit;
use crate::url_encode;

/// The URL of `method` on `target` (path and query, percent-encoded) presigned for `lifetime`,
/// `headers` signed too (the browser sends them as given); `None` if it cannot be signed (a
/// host that is not a URL authority).
pub(super) fn url(
    visit: &Visit,
    region: &str,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    lifetime: Duration,
) -> Option<String> {
    let scheme = if visit.secure { "https" } else { "http" };
    let url = format!("{scheme}://{}{target}", visit.host);
    let identity = Credentials::new(&visit.session.access_key, visit.secret.expose(), None, None, "console").into();
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(lifetime);
    // The path as sent, as S3 signs it.
    settings.percent_encoding_mode = PercentEncodingMode::Single;
    settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("s3")
        .time(SystemTime::now())
        .settings(settings)
        .build()
        .ok()?
        .into();
    let signed_headers = std::iter::once(("host", visit.host.as_str())).chain(headers.iter().copied());
    let request = SignableRequest::new(method, &url, signed_headers, SignableBody::UnsignedPayload).ok()?;
    let (instructions, _) = sign(request, &params).ok()?.into_parts();
    let separator = if target.contains('?') { '&' } else { '?' };
    let query: Vec<String> = instructions
        .params()
        .iter()
        .map(|(name, value)| format!("{}={}", url_encode::component(name), url_encode::component(value)))
        .collect();
    Some(format!("{url}{separator}{}", query.join("&")))
}
