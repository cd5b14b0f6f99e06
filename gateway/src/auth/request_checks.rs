//! What a signature must hold to be obeyed, checked before s3s verifies it.
//!
//! s3s 0.14 checks that a signature matches, but not everything AWS S3 requires around it:
//! it never compares a SigV2 `Date` with the clock, takes a SigV4 credential scope for any
//! region, answers 501 for a service other than `s3`/`sts`, accepts presigned URLs valid for
//! more than a week, and obeys `x-amz-*` headers that the signature does not cover (an
//! unsigned `x-amz-copy-source` turns a signed PUT into a copy). [`RequestChecks`] reads the
//! request head the way s3s will (same choice of signing method, same fields) and refuses what
//! AWS refuses, with AWS's codes, before any work is done. [`sig_v2_bucket_uri`] carries the
//! one fix to what s3s verifies: the SigV2 resource of a path-style request for a bucket.
//!
//! Content-Type, Cache-Control and other headers that are not `x-amz-*` may be unsigned, as
//! on AWS: SDKs such as minio's leave Content-Type out of `SignedHeaders`.

use http::{HeaderMap, Method, StatusCode, Uri};
use s3s::S3ErrorCode;
use time::OffsetDateTime;
use time::format_description::BorrowedFormatItem;
use time::format_description::well_known::Rfc2822;
use time::macros::format_description;

/// How far a SigV2 request's date may be from the server's clock, as for SigV4 in s3s.
const MAX_SKEW: time::Duration = time::Duration::minutes(15);

/// `ServerTime` in a `RequestTimeTooSkewed` error, as AWS writes it.
const SERVER_TIME: &[BorrowedFormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");

/// `x-amz-date` in the ISO 8601 basic form of SigV4.
const BASIC_TIME: &[BorrowedFormatItem<'static>] = format_description!("[year][month][day]T[hour][minute][second]Z");

/// The longest validity of a SigV4 presigned URL (`X-Amz-Expires`): a week.
const MAX_PRESIGNED_EXPIRES: i64 = 7 * 24 * 60 * 60;

/// The one `x-amz-*` header that may be sent unsigned: with header auth its value is the last
/// line of the canonical request anyway, and with a presigned URL it can only narrow which
/// body is accepted.
const MAY_BE_UNSIGNED: &str = "x-amz-content-sha256";

/// The checks, for the region the gateway serves.
#[derive(Debug, Clone)]
pub struct RequestChecks {
    region: String,
}

/// A request refused before s3s saw it: an S3 error with AWS's code, status and extra
/// elements (`Region`, `HeadersNotSigned`, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The S3 error code.
    pub code: S3ErrorCode,
    /// The message, as AWS words it.
    pub message: String,
    /// Elements after `Message`, in order.
    pub details: Vec<(&'static str, String)>,
}

/// How a request is signed, decided in the order s3s decides it.
enum Signing<'a> {
    /// SigV2 in the `Authorization` header.
    V2Header,
    /// SigV4 in the `Authorization` header.
    V4Header(&'a str),
    /// A SigV4 presigned URL.
    V4Query(Vec<(String, String)>),
    /// A SigV2 presigned URL (whose `Expires` s3s enforces).
    V2Query,
    /// Anonymous or a POST form: nothing to check here.
    Other,
}

/// Subresources that choose an operation but that s3s 0.14 leaves out of a SigV2 string to
/// sign (its list predates them), with `id`, which names the configuration some of them
/// act on. Added to a SigV2 request after it was signed, one would make it another operation
/// under the same signature; a SigV2 request naming one is refused.
const UNSIGNED_BY_V2: [&str; 11] = [
    "attributes",
    "encryption",
    "id",
    "intelligent-tiering",
    "legal-hold",
    "metadataTable",
    "ownershipControls",
    "policyStatus",
    "publicAccessBlock",
    "retention",
    "session",
];

impl RequestChecks {
    /// Checks for requests signed for `region` (`server.region`).
    #[must_use]
    pub fn new(region: impl Into<String>) -> Self {
        Self { region: region.into() }
    }

    /// Refuses a request whose signing parameters AWS S3 would refuse; `now` is the server's
    /// clock; `registry_api` says the request is for the registry API, whose query names what
    /// it reads. A request that s3s will refuse anyway (a malformed header) passes.
    ///
    /// # Errors
    ///
    /// The [`Refusal`] to answer with.
    pub fn check(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        registry_api: bool,
        now: OffsetDateTime,
    ) -> Result<(), Refusal> {
        check_length_given(method, headers)?;
        check_document_length(method, uri, headers)?;
        check_header_section(method, headers)?;
        check_unique_signing_headers(headers)?;
        if !registry_api {
            check_version_ids(uri)?;
        }
        match signing(method, uri, headers) {
            Signing::V2Header => {
                check_v2_covers_query(uri, registry_api)?;
                check_v2_date(headers, now)
            }
            Signing::V2Query => check_v2_covers_query(uri, registry_api),
            Signing::V4Header(authorization) => {
                let Some(auth) = AuthorizationV4::parse(authorization) else { return Ok(()) };
                // IAM is a global service: its scope names whichever region the client has.
                if !(auth.scope.service == "iam" && is_iam_target(method, uri)) {
                    self.check_scope(&auth.scope, Place::Header)?;
                }
                check_signed_headers(headers, auth.signed_headers)
            }
            Signing::V4Query(query) => {
                let param = |name: &str| query.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
                let Some(scope) = param("X-Amz-Credential").and_then(Scope::parse) else { return Ok(()) };
                self.check_scope(&scope, Place::Query)?;
                if let Some(expires) = param("X-Amz-Expires") {
                    check_expires(expires)?;
                }
                check_signed_headers(headers, param("X-Amz-SignedHeaders").unwrap_or_default())
            }
            Signing::Other => Ok(()),
        }
    }

    /// The scope must name this endpoint's service and region.
    fn check_scope(&self, scope: &Scope<'_>, place: Place) -> Result<(), Refusal> {
        if !served_service(scope.service) {
            return Err(place.malformed(
                &format!("incorrect service '{}'. This endpoint belongs to 's3'.", scope.service),
                Vec::new(),
            ));
        }
        if scope.region != self.region {
            return Err(place.malformed(
                &format!("the region '{}' is wrong; expecting '{}'", scope.region, self.region),
                vec![("Region", self.region.clone())],
            ));
        }
        Ok(())
    }
}

/// A PUT whose body comes in HTTP/1.1 chunks with no `Content-Length` (nor aws-chunked's
/// `x-amz-decoded-content-length`) is refused as S3 refuses it: 411 `MissingContentLength`.
/// s3s refuses it for some signing modes and streams it for others (presigned URLs).
fn check_length_given(method: &Method, headers: &HeaderMap) -> Result<(), Refusal> {
    let chunked = headers
        .get_all(http::header::TRANSFER_ENCODING)
        .iter()
        .any(|v| v.to_str().is_ok_and(|v| v.to_ascii_lowercase().contains("chunked")));
    if method != Method::PUT
        || !chunked
        || headers.contains_key(http::header::CONTENT_LENGTH)
        || headers.contains_key("x-amz-decoded-content-length")
    {
        return Ok(());
    }
    Err(Refusal {
        code: S3ErrorCode::MissingContentLength,
        message: "You must provide the Content-Length HTTP header.".to_owned(),
        details: Vec::new(),
    })
}

/// The longest document (XML, or a bucket policy's JSON) a request may carry; s3s reads it
/// whole before the request is decided on. 8 MiB holds the largest S3 takes (a DeleteObjects
/// of 1,000 keys of 1,024 characters each escaped to six, 6.3 MB; a completion of 10,000
/// parts with all their checksums, 4.5 MB; a lifecycle of 1,000 rules at their longest,
/// 5.7 MB).
pub const MAX_DOCUMENT_BODY: usize = 8 << 20;

/// The subresources whose PUT or POST carries a document rather than an object's bytes
/// (`uploadId` only in a POST, a completion: a PUT with it is an UploadPart).
const DOCUMENT_SUBRESOURCES: [&str; 24] = [
    "accelerate",
    "acl",
    "analytics",
    "cors",
    "delete",
    "encryption",
    "intelligent-tiering",
    "inventory",
    "legal-hold",
    "lifecycle",
    "logging",
    "metrics",
    "notification",
    "object-lock",
    "ownershipControls",
    "policy",
    "publicAccessBlock",
    "replication",
    "requestPayment",
    "restore",
    "retention",
    "tagging",
    "versioning",
    "website",
];

/// A document whose `Content-Length` is over [`MAX_DOCUMENT_BODY`] is refused at the head:
/// 400 `MaxMessageLengthExceeded`, before a byte of it is read. s3s 0.14 bounds what it
/// reads too, but answers 500 `InternalError` when a streamed body passes the bound (it looks
/// for its own error type and finds `http-body-util`'s).
fn check_document_length(method: &Method, uri: &Uri, headers: &HeaderMap) -> Result<(), Refusal> {
    let Some(length) = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
    else {
        return Ok(());
    };
    if length <= MAX_DOCUMENT_BODY as u64 || !(method == Method::PUT || method == Method::POST) {
        return Ok(());
    }
    let document = form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes())
        .map(|(name, _)| name)
        .any(|name| DOCUMENT_SUBRESOURCES.contains(&name.as_ref()) || (method == Method::POST && name == "uploadId"));
    if !document {
        return Ok(());
    }
    Err(Refusal {
        code: S3ErrorCode::MaxMessageLengthExceeded,
        message: "Your request was too big.".to_owned(),
        details: Vec::new(),
    })
}

/// The most a write's header section may hold, as on AWS ("the PUT request header is limited
/// to 8 KB"): headers such as `Content-Disposition` are stored with the version, recorded in
/// its event and sent back with every read, and only user metadata has a bound of its own.
const MAX_HEADER_SECTION: usize = 8 * 1024;

/// A PUT or a POST (CreateMultipartUpload stores its headers too; a form's fields are in its
/// body) whose headers, each counted as its `name: value` line, exceed
/// [`MAX_HEADER_SECTION`] is refused: 400 `RequestHeaderSectionTooLarge`.
fn check_header_section(method: &Method, headers: &HeaderMap) -> Result<(), Refusal> {
    let write = method == Method::PUT || (method == Method::POST && form_type(method, headers).is_none());
    if !write {
        return Ok(());
    }
    let size: usize = headers.iter().map(|(name, value)| name.as_str().len() + value.len() + 4).sum();
    if size <= MAX_HEADER_SECTION {
        return Ok(());
    }
    Err(Refusal {
        code: S3ErrorCode::RequestHeaderSectionTooLarge,
        message: "Your request header section exceeds the maximum allowed size.".to_owned(),
        details: Vec::new(),
    })
}

/// The headers that decide how a request is signed and its body framed. s3s reads each only
/// when it has exactly one value, leaving out values that are not UTF-8, while these checks
/// and the body's framing (`crate::chunk_limit`) read the first: a request with two, or with
/// one s3s cannot read, could be signed one way for them and another way for s3s. It is
/// refused: 400 `InvalidRequest`.
const SIGNING_HEADERS: [&str; 3] = ["authorization", "x-amz-content-sha256", "x-amz-date"];

fn check_unique_signing_headers(headers: &HeaderMap) -> Result<(), Refusal> {
    for name in SIGNING_HEADERS {
        let mut values = headers.get_all(name).iter();
        let first = values.next();
        if values.next().is_some() || first.is_some_and(|value| value.to_str().is_err()) {
            return Err(Refusal {
                code: S3ErrorCode::InvalidRequest,
                message: format!("The {name} header must be sent once, in ASCII."),
                details: Vec::new(),
            });
        }
    }
    Ok(())
}

/// Whether s3s takes the request as signed with SigV4 in its `Authorization` header, the only
/// signing under which it decodes an aws-chunked body. Exact once
/// [`RequestChecks::check`] has passed (one value of each signing header).
#[must_use]
pub fn is_sigv4_header_signed(method: &Method, uri: &Uri, headers: &HeaderMap) -> bool {
    matches!(signing(method, uri, headers), Signing::V4Header(_))
}

/// The URI s3s must verify a SigV2 request (header or presigned) for a bucket alone with,
/// when it is sent path-style as `/bucket`: `/bucket/`, with the same query. `None` for any
/// other request, which s3s verifies as sent. The caller rules out virtual-host style (where
/// `/key` names an object) and the registry API.
///
/// s3s 0.14 takes the path as sent for the SigV2 CanonicalizedResource, so it expects
/// `/bucket`. But the CanonicalizedResource of a bucket is `/bucket/` (AWS's examples:
/// `/awsexamplebucket1/`, `/awsexamplebucket1/?acl`; s3s builds the same for a bucket
/// addressed by its host), which botocore signs for the `/bucket` it sends path-style (boto3's
/// presigned ListObjectsV2, GetBucketVersioning...), and which the clients that send
/// `/bucket/` (the Java SDK, s3cmd, minio-go) sign too. Both paths name the same bucket and
/// operation, so the request keeps its meaning and is verified against the one spelling
/// clients sign; a signature over `/bucket` no longer verifies. A bucket segment with anything
/// but a bucket name's characters is left alone: percent-encoded, `/a%2Fb` would name the
/// object `b/` once s3s decodes `/a%2Fb/`.
#[must_use]
pub fn sig_v2_bucket_uri(method: &Method, uri: &Uri, headers: &HeaderMap) -> Option<Uri> {
    if !matches!(signing(method, uri, headers), Signing::V2Header | Signing::V2Query) {
        return None;
    }
    let bucket = uri.path().strip_prefix('/')?;
    if bucket.is_empty() || !bucket.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_')) {
        return None;
    }
    let path_and_query = match uri.query() {
        Some(query) => format!("/{bucket}/?{query}"),
        None => format!("/{bucket}/"),
    };
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(path_and_query.parse().ok()?);
    Uri::from_parts(parts).ok()
}

/// The services whose credential scopes this endpoint accepts everywhere (IAM only at its
/// own target, [`is_iam_request`]).
fn served_service(service: &str) -> bool {
    service == "s3"
}

/// Where IAM requests go: a form `POST /`.
fn is_iam_target(method: &Method, uri: &Uri) -> bool {
    method == Method::POST && uri.path() == "/" && uri.query().is_none_or(str::is_empty)
}

/// Whether the request is an IAM query API call: a `POST /` signed in the header for the
/// service `iam` (the IAM API then answers it, `crate::iam`).
#[must_use]
pub fn is_iam_request(method: &Method, uri: &Uri, headers: &HeaderMap) -> bool {
    if !is_iam_target(method, uri) {
        return false;
    }
    match signing(method, uri, headers) {
        Signing::V4Header(authorization) => {
            AuthorizationV4::parse(authorization).is_some_and(|auth| auth.scope.service == "iam")
        }
        _ => false,
    }
}

/// Where the signature came from, which decides how AWS words a malformed scope.
#[derive(Debug, Clone, Copy)]
enum Place {
    Header,
    Query,
}

impl Place {
    fn malformed(self, reason: &str, details: Vec<(&'static str, String)>) -> Refusal {
        let (code, prefix) = match self {
            Self::Header => (S3ErrorCode::AuthorizationHeaderMalformed, "The authorization header is malformed"),
            Self::Query => {
                (S3ErrorCode::AuthorizationQueryParametersError, "Error parsing the X-Amz-Credential parameter")
            }
        };
        Refusal { code, message: format!("{prefix}; {reason}"), details }
    }
}

/// The request's media type when s3s will take it for a POST form, and so check the form's
/// policy and signature instead of a signature in the header or the query: a POST with one
/// non-empty `Content-Type` that parses as `multipart/form-data` (as s3s 0.14 decides in
/// `SignatureContext::check`). Anything else, `multipart/form-datax` or a value that does
/// not parse among them, is signed as any other request, and must be checked as one.
#[must_use]
pub fn form_type(method: &Method, headers: &HeaderMap) -> Option<mime::Mime> {
    if method != Method::POST {
        return None;
    }
    // s3s reads the header values that are UTF-8 (others it leaves out, even one with bytes
    // past ASCII, which `to_str` would refuse) and needs exactly one of them.
    let mut values =
        headers.get_all(http::header::CONTENT_TYPE).iter().filter_map(|v| std::str::from_utf8(v.as_bytes()).ok());
    let (Some(value), None) = (values.next(), values.next()) else { return None };
    if value.is_empty() {
        return None;
    }
    let mime: mime::Mime = value.parse().ok()?;
    (mime.type_() == mime::MULTIPART && mime.subtype() == mime::FORM_DATA).then_some(mime)
}

/// The signing method s3s will verify, chosen as `SignatureContext::check` chooses it.
fn signing<'a>(method: &Method, uri: &Uri, headers: &'a HeaderMap) -> Signing<'a> {
    if form_type(method, headers).is_some() {
        return Signing::Other;
    }
    let query: Vec<(String, String)> =
        uri.query().map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect()).unwrap_or_default();
    let has = |name: &str| query.iter().any(|(k, _)| k == name);
    let authorization = headers.get(http::header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    if has("Signature") {
        Signing::V2Query
    } else if authorization.and_then(|a| a.strip_prefix("AWS ")).is_some_and(|a| a.contains(':')) {
        Signing::V2Header
    } else if has("X-Amz-Signature") {
        Signing::V4Query(query)
    } else if let Some(authorization) = authorization {
        Signing::V4Header(authorization)
    } else {
        Signing::Other
    }
}

/// `<access-key>/<date>/<region>/<service>/aws4_request`, split as s3s splits it.
#[derive(Debug, PartialEq, Eq)]
struct Scope<'a> {
    region: &'a str,
    service: &'a str,
}

impl<'a> Scope<'a> {
    fn parse(credential: &'a str) -> Option<Self> {
        Self::parse_prefix(credential).filter(|(_, rest)| rest.is_empty()).map(|(scope, _)| scope)
    }

    /// The scope at the start of `text`, and what follows `aws4_request`.
    fn parse_prefix(text: &'a str) -> Option<(Self, &'a str)> {
        let mut parts = text.splitn(5, '/');
        let (_key, _date) = (parts.next()?, parts.next()?);
        let (region, service) = (parts.next()?, parts.next()?);
        let rest = parts.next()?.strip_prefix("aws4_request")?;
        Some((Self { region, service }, rest))
    }
}

/// The parts of a SigV4 `Authorization` header these checks need.
struct AuthorizationV4<'a> {
    scope: Scope<'a>,
    signed_headers: &'a str,
}

impl<'a> AuthorizationV4<'a> {
    /// `<algorithm> Credential=<scope>, SignedHeaders=<a;b>, Signature=<hex>`; `None` when s3s
    /// would not parse it either.
    fn parse(header: &'a str) -> Option<Self> {
        let (_algorithm, rest) = header.split_once(|c: char| c.is_ascii_whitespace())?;
        let rest = rest.trim_start().strip_prefix("Credential=")?;
        let (scope, rest) = Scope::parse_prefix(rest)?;
        let rest = rest.strip_prefix(',')?.trim_start().strip_prefix("SignedHeaders=")?;
        let (signed_headers, _) = rest.split_once(',')?;
        Some(Self { scope, signed_headers })
    }
}

/// `Host` and every `x-amz-*` header must be in `signed` (`a;b;c`), or its value is the
/// sender's, not the signer's: an unsigned `Host` would let one signature be replayed on every
/// bucket of a virtual-hosted endpoint, and SigV4 requires it signed. Names compare exactly:
/// s3s looks signed headers up by their lower-case name, so a differently spelt entry would not
/// cover the header.
fn check_signed_headers(headers: &HeaderMap, signed: &str) -> Result<(), Refusal> {
    let signed: Vec<&str> = signed.split(';').collect();
    // Over HTTP/2 the host is the request's authority, not a header; it is signed all the same.
    let host_unsigned = (!signed.contains(&"host")).then_some("host");
    let mut unsigned: Vec<&str> = headers
        .keys()
        .map(http::HeaderName::as_str)
        .filter(|name| name.starts_with("x-amz-") && *name != MAY_BE_UNSIGNED && !signed.contains(name))
        .chain(host_unsigned)
        .collect();
    if unsigned.is_empty() {
        return Ok(());
    }
    unsigned.sort_unstable();
    Err(Refusal {
        code: S3ErrorCode::AccessDenied,
        message: "There were headers present in the request which were not signed".to_owned(),
        details: vec![("HeadersNotSigned", unsigned.join(", "))],
    })
}

/// `X-Amz-Expires`: whole seconds, at most a week.
fn check_expires(expires: &str) -> Result<(), Refusal> {
    let refuse = |message: &str| Refusal {
        code: S3ErrorCode::AuthorizationQueryParametersError,
        message: message.to_owned(),
        details: Vec::new(),
    };
    // Any run of digits is a number, however large: it is then more than a week.
    let digits = expires.strip_prefix('-').unwrap_or(expires);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(refuse("X-Amz-Expires should be a number"));
    }
    if expires.starts_with('-') && digits.bytes().any(|b| b != b'0') {
        return Err(refuse("X-Amz-Expires must be non-negative"));
    }
    if !expires.parse::<i64>().is_ok_and(|seconds| seconds <= MAX_PRESIGNED_EXPIRES) {
        return Err(refuse(
            "X-Amz-Expires must be less than a week (in seconds); that is, the given X-Amz-Expires must be less \
             than 604800 seconds",
        ));
    }
    Ok(())
}

/// Refuses a `versionId` or `version-id-marker` that no version can have, as AWS does (400
/// `InvalidArgument`), rather than answering NoSuchVersion, or 204 for a DELETE: a version id
/// is `null` or one the gateway made (`clock::new_id`: 44 lowercase hex digits).
fn check_version_ids(uri: &Uri) -> Result<(), Refusal> {
    let query = uri.query().unwrap_or_default();
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        if matches!(name.as_ref(), "versionId" | "version-id-marker") && !crate::clock::is_version_id(&value) {
            return Err(Refusal {
                code: S3ErrorCode::InvalidArgument,
                message: "Invalid version id specified".to_owned(),
                details: vec![("ArgumentName", name.into_owned()), ("ArgumentValue", value.into_owned())],
            });
        }
    }
    Ok(())
}

/// The query parameters of a SigV2 presigned URL: its signature, not part of what it signs.
const V2_QUERY_AUTH: [&str; 3] = ["AWSAccessKeyId", "Expires", "Signature"];

/// A SigV2 signature must cover every subresource the request names (see [`UNSIGNED_BY_V2`]).
/// It covers no query parameter of the registry API, which names its object and filters there
/// (where S3 names its object in the path): a SigV2 registry call with any is refused.
fn check_v2_covers_query(uri: &Uri, registry_api: bool) -> Result<(), Refusal> {
    let query = uri.query().unwrap_or_default();
    let mut names = form_urlencoded::parse(query.as_bytes()).map(|(name, _)| name);
    if registry_api && let Some(name) = names.clone().find(|name| !V2_QUERY_AUTH.contains(&name.as_ref())) {
        return Err(Refusal {
            code: S3ErrorCode::AccessDenied,
            message: format!(
                "A SigV2 signature does not cover the registry API's {name} parameter: sign the request with SigV4."
            ),
            details: Vec::new(),
        });
    }
    match names.find(|name| UNSIGNED_BY_V2.contains(&name.as_ref())) {
        None => Ok(()),
        Some(name) => Err(Refusal {
            code: S3ErrorCode::AccessDenied,
            message: format!("A SigV2 signature does not cover the {name} subresource: sign the request with SigV4."),
            details: Vec::new(),
        }),
    }
}

/// A SigV2 header signature covers the `x-amz-date` header when there is one, else `Date`; that
/// time must be within [`MAX_SKEW`] of `now`.
fn check_v2_date(headers: &HeaderMap, now: OffsetDateTime) -> Result<(), Refusal> {
    let name = if headers.contains_key("x-amz-date") { "x-amz-date" } else { "date" };
    let mut values = headers.get_all(name).iter();
    let (Some(value), None) = (values.next(), values.next()) else { return Err(no_valid_date()) };
    let value = value.to_str().map_err(|_| no_valid_date())?;
    let time = parse_v2_date(value).ok_or_else(no_valid_date)?;
    if (now - time).abs() > MAX_SKEW {
        return Err(Refusal {
            code: S3ErrorCode::RequestTimeTooSkewed,
            message: "The difference between the request time and the current time is too large.".to_owned(),
            details: vec![
                ("RequestTime", value.to_owned()),
                ("ServerTime", now.format(SERVER_TIME).unwrap_or_default()),
                ("MaxAllowedSkewMilliseconds", MAX_SKEW.whole_milliseconds().to_string()),
            ],
        });
    }
    Ok(())
}

fn no_valid_date() -> Refusal {
    Refusal {
        code: S3ErrorCode::AccessDenied,
        message: "AWS authentication requires a valid Date or x-amz-date header".to_owned(),
        details: Vec::new(),
    }
}

/// `20261203T191500Z`, the ISO 8601 basic form of SigV4's `x-amz-date`, as a time.
#[must_use]
pub fn parse_amz_date(text: &str) -> Option<std::time::SystemTime> {
    let time = time::PrimitiveDateTime::parse(text, BASIC_TIME).ok()?.assume_utc();
    let seconds = u64::try_from(time.unix_timestamp()).ok()?;
    Some(std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(seconds))
}

/// An HTTP date (`Tue, 27 Mar 2007 19:36:42 GMT` or `+0000`, RFC 2822) or the ISO 8601 basic
/// form SigV4 uses (`20070327T193642Z`), which some SigV2 clients send in `x-amz-date`.
fn parse_v2_date(value: &str) -> Option<OffsetDateTime> {
    if let Ok(time) = OffsetDateTime::parse(value.trim(), &Rfc2822) {
        return Some(time);
    }
    time::PrimitiveDateTime::parse(value.trim(), BASIC_TIME).ok().map(time::PrimitiveDateTime::assume_utc)
}

impl Refusal {
    /// The S3 error document, with `request_id` as `RequestId`.
    #[must_use]
    pub fn to_xml(&self, request_id: &str) -> Vec<u8> {
        let mut buf = Vec::with_capacity(256);
        let mut ser = s3s::xml::Serializer::new(&mut buf);
        let written = ser.decl().and_then(|()| {
            ser.element("Error", |s| {
                s.content("Code", self.code.as_str())?;
                s.content("Message", self.message.as_str())?;
                for (name, value) in &self.details {
                    s.content(name, value.as_str())?;
                }
                s.content("RequestId", request_id)?;
                s.content("HostId", crate::request::host_id())
            })
        });
        drop(ser);
        // Writing to a Vec cannot fail.
        debug_assert!(written.is_ok(), "{written:?}");
        buf
    }

    /// The HTTP status of the code.
    #[must_use]
    pub fn status(&self) -> StatusCode {
        self.code.status_code().unwrap_or(StatusCode::FORBIDDEN)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: OffsetDateTime = time::macros::datetime!(2026-12-02 07:30:00 UTC);

    fn checks() -> RequestChecks {
        RequestChecks::new("us-east-1")
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(http::HeaderName::from_bytes(name.as_bytes()).unwrap(), value.parse().unwrap());
        }
        map
    }

    fn check(method: &Method, target: &str, pairs: &[(&str, &str)]) -> Result<(), Refusal> {
        checks().check(method, &target.parse().unwrap(), &headers(pairs), false, NOW)
    }

    /// Found by a review: two `Authorization` headers, or one s3s cannot read beside one it
    /// can, were read one way here (the first) and another way by s3s (the only readable one),
    /// so a body could be framed as aws-chunked for s3s and not for its bound.
    #[test]
    fn signing_headers_sent_twice_or_not_in_ascii_are_refused() {
        let put = Method::PUT;
        let twice =
            check(&put, "/b/k", &[("authorization", "AWS4-HMAC-SHA256 x"), ("authorization", "AWS4-HMAC-SHA256 y")]);
        assert_eq!(twice.unwrap_err().code, S3ErrorCode::InvalidRequest);
        let sha_twice = check(
            &put,
            "/b/k",
            &[("x-amz-content-sha256", "UNSIGNED-PAYLOAD"), ("x-amz-content-sha256", "UNSIGNED-PAYLOAD")],
        );
        assert_eq!(sha_twice.unwrap_err().code, S3ErrorCode::InvalidRequest);
        let mut unreadable = headers(&[]);
        unreadable.append(http::header::AUTHORIZATION, http::HeaderValue::from_bytes(b"\xff").unwrap());
        let refused = checks().check(&put, &"/b/k".parse().unwrap(), &unreadable, false, NOW);
        assert_eq!(refused.unwrap_err().code, S3ErrorCode::InvalidRequest);
    }

    #[test]
    fn only_sigv4_in_the_header_is_taken_as_it_by_s3s() {
        let signed = |target: &str, authorization: Option<&str>| {
            let pairs: Vec<(&str, &str)> = authorization.map(|a| ("authorization", a)).into_iter().collect();
            is_sigv4_header_signed(&Method::PUT, &target.parse().unwrap(), &headers(&pairs))
        };
        assert!(signed("/b/k", Some("AWS4-HMAC-SHA256 Credential=a")));
        assert!(signed("/b/k", Some("aws4-hmac-sha256 Credential=a")), "s3s does not read the algorithm's word");
        assert!(signed("/b/k", Some("X Credential=a")));
        assert!(!signed("/b/k", Some("AWS AKID:c2ln")), "SigV2");
        assert!(!signed("/b/k", None), "anonymous");
        assert!(
            !signed("/b/k?AWSAccessKeyId=a&Expires=1&Signature=s", Some("AWS4-HMAC-SHA256 x")),
            "SigV2 query first"
        );
        assert!(!signed("/b/k?X-Amz-Signature=s", None), "presigned");
    }

    #[test]
    fn only_sigv2_requests_for_a_bucket_alone_reach_s3s_as_bucket_slash() {
        let uri = |target: &str, authorization: Option<&str>| {
            let pairs: Vec<(&str, &str)> = authorization.map(|a| ("authorization", a)).into_iter().collect();
            sig_v2_bucket_uri(&Method::GET, &target.parse().unwrap(), &headers(&pairs)).map(|uri| uri.to_string())
        };
        let v2 = Some("AWS AKID:c2ln");
        assert_eq!(uri("/b", v2).as_deref(), Some("/b/"));
        assert_eq!(uri("/b?versions&encoding-type=url", v2).as_deref(), Some("/b/?versions&encoding-type=url"));
        let presigned = "/b?list-type=2&AWSAccessKeyId=a&Expires=1&Signature=s";
        assert_eq!(uri(presigned, None).as_deref(), Some("/b/?list-type=2&AWSAccessKeyId=a&Expires=1&Signature=s"));
        assert_eq!(
            uri("http://host:9000/b?acl", v2).as_deref(),
            Some("http://host:9000/b/?acl"),
            "HTTP/2 keeps its authority"
        );
        for target in ["/", "/b/", "/b/k", "/a%2Fb", "/a+b"] {
            assert_eq!(uri(target, v2), None, "{target}");
        }
        assert_eq!(uri("/b", Some("AWS4-HMAC-SHA256 Credential=a")), None, "SigV4 signs the path as sent");
        assert_eq!(uri("/b?X-Amz-Signature=s", None), None, "SigV4 presigned");
        assert_eq!(uri("/b", None), None, "anonymous");
    }

    fn v4(scope: &str, signed: &str) -> String {
        format!("AWS4-HMAC-SHA256 Credential=AKID/20261202/{scope}/aws4_request, SignedHeaders={signed}, Signature=00")
    }

    fn code(result: Result<(), Refusal>) -> String {
        result.map_or_else(|refusal| refusal.code.as_str().to_owned(), |()| "ok".to_owned())
    }

    #[test]
    fn v2_dates_count_within_15_minutes_either_way() {
        let auth = ("authorization", "AWS AKID:c2lnbmF0dXJl");
        let ok = ["Wed, 02 Dec 2026 07:44:59 GMT", "Wed, 02 Dec 2026 07:15:00 +0000", "20261202T073000Z"];
        for date in ok {
            assert_eq!(code(check(&Method::GET, "/b/k", &[auth, ("date", date)])), "ok", "{date}");
        }
        let skewed =
            ["Tue, 02 Dec 2025 07:30:00 GMT", "Wed, 02 Dec 2026 07:45:01 GMT", "Wed, 02 Dec 2026 07:14:59 GMT"];
        for date in skewed {
            assert_eq!(code(check(&Method::DELETE, "/b/k", &[auth, ("date", date)])), "RequestTimeTooSkewed");
        }
        // x-amz-date is what the signature covers when present, whatever `Date` says.
        let old_amz =
            [auth, ("date", "Wed, 02 Dec 2026 07:30:00 GMT"), ("x-amz-date", "Tue, 02 Dec 2025 07:30:00 GMT")];
        assert_eq!(code(check(&Method::DELETE, "/b/k", &old_amz)), "RequestTimeTooSkewed");
        for pairs in
            [vec![auth], vec![auth, ("date", "yesterday")], vec![auth, ("date", "20261202T073000Z"), ("date", "x")]]
        {
            assert_eq!(code(check(&Method::GET, "/b/k", &pairs)), "AccessDenied", "{pairs:?}");
        }
    }

    #[test]
    fn skewed_v2_refusals_name_both_times() {
        let refusal =
            check(&Method::DELETE, "/b/k", &[("authorization", "AWS A:s"), ("date", "Tue, 02 Dec 2025 07:30:00 GMT")])
                .unwrap_err();
        assert_eq!(refusal.status(), StatusCode::FORBIDDEN);
        assert_eq!(
            refusal.details,
            [
                ("RequestTime", "Tue, 02 Dec 2025 07:30:00 GMT".to_owned()),
                ("ServerTime", "2026-12-02T07:30:00Z".to_owned()),
                ("MaxAllowedSkewMilliseconds", "900000".to_owned()),
            ]
        );
    }

    #[test]
    fn an_iam_scope_is_served_only_as_a_form_post_to_the_root() {
        let iam = [("authorization", v4("eu-west-1/iam", "host;x-amz-date"))];
        let pairs: Vec<(&str, &str)> = iam.iter().map(|(k, v)| (*k, v.as_str())).collect();
        // IAM is global: any region in its scope.
        assert_eq!(code(check(&Method::POST, "/", &pairs)), "ok");
        assert!(is_iam_request(&Method::POST, &"/".parse().unwrap(), &headers(&pairs)));
        for (method, target) in [(Method::GET, "/"), (Method::POST, "/bucket"), (Method::POST, "/?delete")] {
            assert!(!is_iam_request(&method, &target.parse().unwrap(), &headers(&pairs)), "{method} {target}");
            assert_eq!(code(check(&method, target, &pairs)), "AuthorizationHeaderMalformed", "{method} {target}");
        }
        let s3 = [("authorization", v4("us-east-1/s3", "host;x-amz-content-sha256;x-amz-date"))];
        let pairs: Vec<(&str, &str)> = s3.iter().map(|(k, v)| (*k, v.as_str())).collect();
        assert!(!is_iam_request(&Method::POST, &"/".parse().unwrap(), &headers(&pairs)));
    }

    #[test]
    fn v4_scopes_must_name_s3_in_the_served_region() {
        let signed = "host;x-amz-content-sha256;x-amz-date";
        let ok = v4("us-east-1/s3", signed);
        assert_eq!(code(check(&Method::GET, "/", &[("authorization", &ok)])), "ok");
        let region = check(&Method::DELETE, "/b/k", &[("authorization", &v4("eu-west-1/s3", signed))]).unwrap_err();
        assert_eq!(region.code, S3ErrorCode::AuthorizationHeaderMalformed);
        assert_eq!(
            region.message,
            "The authorization header is malformed; the region 'eu-west-1' is wrong; expecting 'us-east-1'"
        );
        assert_eq!(region.details, [("Region", "us-east-1".to_owned())]);
        let service = check(&Method::GET, "/", &[("authorization", &v4("us-east-1/iam", signed))]).unwrap_err();
        assert_eq!(service.code, S3ErrorCode::AuthorizationHeaderMalformed);
        assert_eq!(
            service.message,
            "The authorization header is malformed; incorrect service 'iam'. This endpoint belongs to 's3'."
        );
    }

    #[test]
    fn presigned_scopes_and_expiry_are_query_parameter_errors() {
        let url = |scope: &str, expires: &str| {
            format!(
                "/b/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKID%2F20261202%2F{scope}%2Faws4_request\
                 &X-Amz-Date=20261202T073000Z&X-Amz-Expires={expires}&X-Amz-SignedHeaders=host&X-Amz-Signature=00"
            )
        };
        assert_eq!(code(check(&Method::GET, &url("us-east-1%2Fs3", "604800"), &[])), "ok");
        assert_eq!(code(check(&Method::GET, &url("us-east-1%2Fs3", "-0"), &[])), "ok");
        let cases = [
            (
                url("eu-west-1%2Fs3", "60"),
                "Error parsing the X-Amz-Credential parameter; the region 'eu-west-1' is wrong; expecting 'us-east-1'",
            ),
            (
                url("us-east-1%2Fiam", "60"),
                "Error parsing the X-Amz-Credential parameter; incorrect service 'iam'. This endpoint belongs to 's3'.",
            ),
            (url("us-east-1%2Fs3", "-1"), "X-Amz-Expires must be non-negative"),
            (
                url("us-east-1%2Fs3", "604801"),
                "X-Amz-Expires must be less than a week (in seconds); that is, the given X-Amz-Expires must be less than 604800 seconds",
            ),
            (
                url("us-east-1%2Fs3", "99999999999999999999999"),
                "X-Amz-Expires must be less than a week (in seconds); that is, the given X-Amz-Expires must be less than 604800 seconds",
            ),
            (url("us-east-1%2Fs3", "1e3"), "X-Amz-Expires should be a number"),
            (url("us-east-1%2Fs3", ""), "X-Amz-Expires should be a number"),
        ];
        for (target, message) in cases {
            let refusal = check(&Method::GET, &target, &[]).unwrap_err();
            assert_eq!(refusal.status(), StatusCode::BAD_REQUEST);
            assert_eq!(
                (refusal.code, refusal.message.as_str()),
                (S3ErrorCode::AuthorizationQueryParametersError, message)
            );
        }
    }

    #[test]
    fn unsigned_amz_headers_are_refused_by_name() {
        let auth = v4("us-east-1/s3", "host;x-amz-content-sha256;x-amz-date;x-amz-meta-signed");
        let signed = [("authorization", auth.as_str()), ("x-amz-date", "20261202T073000Z"), ("x-amz-meta-signed", "1")];
        assert_eq!(code(check(&Method::PUT, "/b/k", &signed)), "ok");
        // Not x-amz-*, or the payload hash: may be unsigned, as on AWS.
        let mut allowed = signed.to_vec();
        allowed.extend([
            ("content-type", "text/plain"),
            ("cache-control", "no-store"),
            ("x-amz-content-sha256", "UNSIGNED-PAYLOAD"),
        ]);
        assert_eq!(code(check(&Method::PUT, "/b/k", &allowed)), "ok");
        let mut added = signed.to_vec();
        added.extend([("x-amz-copy-source", "/b/other"), ("x-amz-tagging", "a=b"), ("X-Amz-Meta-Owner", "me")]);
        let refusal = check(&Method::PUT, "/b/k", &added).unwrap_err();
        assert_eq!(refusal.code, S3ErrorCode::AccessDenied);
        assert_eq!(refusal.message, "There were headers present in the request which were not signed");
        assert_eq!(
            refusal.details,
            [("HeadersNotSigned", "x-amz-copy-source, x-amz-meta-owner, x-amz-tagging".to_owned())]
        );
        // An upper-case SignedHeaders entry does not cover the header: s3s would not sign its value.
        let upper = v4("us-east-1/s3", "host;X-Amz-Meta-Signed");
        assert_eq!(
            code(check(&Method::PUT, "/b/k", &[("authorization", &upper), ("x-amz-meta-signed", "1")])),
            "AccessDenied"
        );
        let presigned = "/b/k?X-Amz-Credential=AKID%2F20261202%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Expires=60\
                         &X-Amz-SignedHeaders=host&X-Amz-Signature=00";
        assert_eq!(code(check(&Method::PUT, presigned, &[("x-amz-content-sha256", "UNSIGNED-PAYLOAD")])), "ok");
        assert_eq!(code(check(&Method::PUT, presigned, &[("x-amz-acl", "public-read")])), "AccessDenied");
    }

    #[test]
    fn a_form_is_what_s3s_takes_for_one() {
        let form_type_of = |values: &[&[u8]]| {
            let mut headers = HeaderMap::new();
            for value in values {
                headers.append(http::header::CONTENT_TYPE, http::HeaderValue::from_bytes(value).unwrap());
            }
            form_type(&Method::POST, &headers).map(|mime| mime.essence_str().to_owned())
        };
        let form = Some("multipart/form-data".to_owned());
        assert_eq!(form_type_of(&[b"multipart/form-data; boundary=B"]), form);
        assert_eq!(form_type_of(&[b"Multipart/Form-Data;boundary=B"]), form);
        // A quoted parameter past ASCII: UTF-8, so s3s reads it.
        assert_eq!(form_type_of(&["multipart/form-data; boundary=B; x=\"\u{e9}\"".as_bytes()]), form);
        // A second value that is not UTF-8 is left out by s3s: one remains.
        assert_eq!(form_type_of(&[b"multipart/form-data; boundary=B", b"text/plain; x=\"\xff\""]), form);
        for near_miss in [&b"multipart/form-datax"[..], b"multipart/form-data; boundary=\"B", b""] {
            assert_eq!(form_type_of(&[near_miss]), None, "{}", String::from_utf8_lossy(near_miss));
        }
        assert_eq!(form_type_of(&[b"multipart/form-data; boundary=B", b"multipart/form-data; boundary=C"]), None);
        assert_eq!(form_type(&Method::PUT, &HeaderMap::new()), None);
    }

    #[test]
    fn what_s3s_chooses_or_refuses_itself_passes() {
        // Anonymous, SigV2 presigned (s3s enforces Expires), POST forms, unparseable headers.
        let old = [("date", "Tue, 02 Dec 2025 07:30:00 GMT"), ("x-amz-meta-a", "1")];
        assert_eq!(code(check(&Method::GET, "/b/k", &old)), "ok");
        assert_eq!(code(check(&Method::GET, "/b/k?AWSAccessKeyId=A&Expires=1&Signature=s", &old)), "ok");
        let form = [("content-type", "multipart/form-data; boundary=x"), ("authorization", "AWS4-HMAC-SHA256 x")];
        assert_eq!(code(check(&Method::POST, "/b", &form)), "ok");
        assert_eq!(code(check(&Method::GET, "/b/k", &[("authorization", "Bearer token")])), "ok");
        // A presigned query wins over a header, as in s3s.
        let both = "/b/k?X-Amz-Credential=AKID%2F20261202%2Feu-west-1%2Fs3%2Faws4_request&X-Amz-Signature=00";
        let header = v4("us-east-1/s3", "host");
        assert_eq!(code(check(&Method::GET, both, &[("authorization", &header)])), "AuthorizationQueryParametersError");
    }

    #[test]
    fn refusals_are_s3_error_documents() {
        let refusal = Refusal {
            code: S3ErrorCode::AuthorizationHeaderMalformed,
            message: "a < b".to_owned(),
            details: vec![("Region", "us-east-1".to_owned())],
        };
        assert_eq!(
            String::from_utf8(refusal.to_xml("0123456789ABCDEF")).unwrap(),
            format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>AuthorizationHeaderMalformed</Code>\
                 <Message>a &lt; b</Message><Region>us-east-1</Region><RequestId>0123456789ABCDEF</RequestId>\
                 <HostId>{}</HostId></Error>",
                crate::request::host_id()
            )
        );
    }
}
