//! IAM requests' SigV4 signatures, checked by signing the request again as the client did
//! (aws-sigv4, the SDKs' own signer) with the key's secret and comparing. s3s verifies S3's
//! signatures but refuses every service other than `s3` and `sts`.

use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use http::StatusCode;

use super::response::IamError;

/// How far a request's `x-amz-date` may be from the server's clock, as AWS allows.
const MAX_SKEW: Duration = Duration::from_secs(15 * 60);

/// The parts of a SigV4 `Authorization` header that the check needs.
pub(super) struct Authorization<'a> {
    pub(super) access_key: &'a str,
    region: &'a str,
    signed_headers: Vec<&'a str>,
    signature: &'a str,
}

impl<'a> Authorization<'a> {
    /// Parses `AWS4-HMAC-SHA256 Credential=AK/date/region/iam/aws4_request, SignedHeaders=..,
    /// Signature=..`.
    pub(super) fn parse(header: &'a str) -> Option<Self> {
        let rest = header.strip_prefix("AWS4-HMAC-SHA256")?.trim_start();
        let (mut credential, mut signed_headers, mut signature) = (None, None, None);
        for part in rest.split(',').map(str::trim) {
            let (name, value) = part.split_once('=')?;
            match name {
                "Credential" => credential = Some(value),
                "SignedHeaders" => signed_headers = Some(value),
                "Signature" => signature = Some(value),
                _ => return None,
            }
        }
        let mut scope = credential?.split('/');
        let (access_key, _date, region) = (scope.next()?, scope.next()?, scope.next()?);
        Some(Authorization {
            access_key,
            region,
            signed_headers: signed_headers?.split(';').collect(),
            signature: signature?,
        })
    }
}

/// Checks the signature of an IAM request: its head (`parts`), its `body`, and the secret
/// of the key that signed it.
pub(super) fn check(
    parts: &http::request::Parts,
    authorization: &Authorization<'_>,
    body: &[u8],
    secret: &str,
    now: SystemTime,
) -> Result<(), IamError> {
    let mismatch = || {
        IamError::new(
            StatusCode::FORBIDDEN,
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided.",
        )
    };
    let date = parts.headers.get("x-amz-date").and_then(|v| v.to_str().ok()).ok_or_else(mismatch)?;
    let time = crate::auth::request_checks::parse_amz_date(date).ok_or_else(mismatch)?;
    let skew = now.duration_since(time).unwrap_or_else(|err| err.duration());
    if skew > MAX_SKEW {
        return Err(IamError::new(StatusCode::FORBIDDEN, "SignatureDoesNotMatch", "Signature expired"));
    }
    // The headers the client signed, as it sent them; the signer adds `x-amz-date` (the
    // same value) itself.
    // HTTP/2 carries the host as the URI's authority, HTTP/1 as a header.
    let host = parts
        .uri
        .authority()
        .map(http::uri::Authority::as_str)
        .or_else(|| parts.headers.get(http::header::HOST).and_then(|v| v.to_str().ok()))
        .ok_or_else(mismatch)?;
    let mut headers = Vec::new();
    for name in &authorization.signed_headers {
        match *name {
            "x-amz-date" => continue,
            "host" => headers.push(("host", host)),
            name => {
                let value = parts.headers.get(name).and_then(|v| v.to_str().ok()).ok_or_else(mismatch)?;
                headers.push((name, value));
            }
        }
    }
    let uri = format!("http://{host}{}", parts.uri.path_and_query().map_or("/", |p| p.as_str()));
    let request = SignableRequest::new(parts.method.as_str(), uri, headers.into_iter(), SignableBody::Bytes(body))
        .map_err(|_| mismatch())?;
    let identity = Credentials::new(authorization.access_key, secret, None, None, "iam").into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(authorization.region)
        .name("iam")
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .map_err(|_| mismatch())?
        .into();
    let signed = sign(request, &params).map_err(|_| mismatch())?;
    let expected = signed.signature().as_bytes();
    let given = authorization.signature.as_bytes();
    // Compared in constant time: the comparison must not tell how much of a guess was right.
    let equal = expected.len() == given.len() && expected.iter().zip(given).fold(0, |acc, (a, b)| acc | (a ^ b)) == 0;
    if equal { Ok(()) } else { Err(mismatch()) }
}
