//! Browsers' cross-origin requests, answered from the bucket's CORS rules
//! ([`registry::cors`]) as S3 answers them:
//! - a preflight (`OPTIONS` with `Origin` and `Access-Control-Request-Method`) is answered
//!   here, before any signature check, since browsers send it unsigned: 200 with the
//!   `Access-Control-*` headers of the rule that allows it, 403 `AccessForbidden` when the
//!   bucket has no rules or none allows it, 400 when the preflight lacks what it must name;
//! - any other request that names an `Origin` gets the headers of the first rule that allows
//!   its origin and method, whatever its answer (an error included, so that a page can read
//!   why it was refused), presigned or not.

use http::{HeaderMap, HeaderValue, Method, Response, StatusCode};
use s3s::{Body, S3ErrorCode};

use registry::Registry;
use registry::event::v1::CorsRule;

use crate::auth::request_checks::Refusal;

/// What S3 says when a preflight matches no rule.
const NOT_ALLOWED: &str = "CORSResponse: This CORS request is not allowed. This is usually because the evalution of Origin, request method / Access-Control-Request-Method or Access-Control-Request-Headers are not whitelisted by the resource's CORS spec.";

/// A browser's request: the bucket it names, the page's origin and the method it uses.
#[derive(Debug, Clone)]
pub struct BrowserRequest {
    bucket: String,
    origin: String,
    method: Method,
}

impl BrowserRequest {
    /// The request as CORS sees it, when it comes from a page (it has `Origin`) and names a
    /// bucket.
    #[must_use]
    pub fn of(bucket: Option<&str>, method: &Method, headers: &HeaderMap) -> Option<Self> {
        let origin = headers.get(http::header::ORIGIN)?.to_str().ok()?;
        Some(Self { bucket: bucket?.to_owned(), origin: origin.to_owned(), method: method.clone() })
    }
}

/// Answers preflights and adds CORS headers to actual responses.
#[derive(Clone)]
pub struct Cors {
    registry: Registry,
}

impl Cors {
    /// Answers from the rules `registry` holds.
    #[must_use]
    pub fn new(registry: Registry) -> Self {
        Self { registry }
    }

    /// Answers a preflight for `bucket`.
    pub async fn preflight(&self, bucket: Option<&str>, headers: &HeaderMap, request_id: &str) -> Response<Body> {
        let header = |name: http::header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
        let Some(origin) = header(http::header::ORIGIN) else {
            return refused(bad_request("Insufficient information. Origin request header needed."), request_id);
        };
        let method = header(http::header::ACCESS_CONTROL_REQUEST_METHOD);
        let Some(method) = method.filter(|m| registry::cors::METHODS.contains(m)) else {
            let message = format!("Invalid Access-Control-Request-Method: {}", method.unwrap_or("null"));
            return refused(bad_request(&message), request_id);
        };
        let Some(bucket) = bucket else {
            return refused(bad_request("Insufficient information. Bucket name needed."), request_id);
        };
        let requested: Vec<&str> = headers
            .get_all(http::header::ACCESS_CONTROL_REQUEST_HEADERS)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|h| !h.is_empty())
            .collect();

        let rules = match self.rules(bucket).await {
            Ok(Some(rules)) => rules,
            Ok(None) => return refused(forbidden("CORSResponse: CORS is not enabled for this bucket."), request_id),
            Err(refusal) => return refused(refusal, request_id),
        };
        let Some(rule) = registry::cors::preflight(&rules, origin, method, &requested) else {
            tracing::info!(code = "AccessForbidden", status = 403, "preflight refused: no CORS rule allows it");
            return refused(forbidden(NOT_ALLOWED), request_id);
        };
        let mut response = Response::new(Body::empty());
        let out = response.headers_mut();
        allow(out, rule, origin);
        if !requested.is_empty() {
            insert(out, http::header::ACCESS_CONTROL_ALLOW_HEADERS, &requested.join(", "));
        }
        out.insert(
            http::header::VARY,
            HeaderValue::from_static("Origin, Access-Control-Request-Headers, Access-Control-Request-Method"),
        );
        response
    }

    /// Adds the headers of the rule that allows `request`, if any, to its response.
    pub async fn answer(&self, request: &BrowserRequest, response: &mut HeaderMap) {
        let Ok(Some(rules)) = self.rules(&request.bucket).await else {
            return;
        };
        if let Some(rule) = registry::cors::actual(&rules, &request.origin, request.method.as_str()) {
            allow(response, rule, &request.origin);
            response.append(http::header::VARY, HeaderValue::from_static("Origin"));
        }
    }

    /// The bucket's rules, or the refusal for a bucket that does not exist.
    async fn rules(&self, bucket: &str) -> Result<Option<Vec<CorsRule>>, Refusal> {
        let name = bucket.to_owned();
        let read = self
            .registry
            .read(move |reads| match reads.bucket(&name)? {
                Some(_) => reads.bucket_cors(&name),
                None => Err(registry::Error::NoSuchBucket(name)),
            })
            .await;
        read.map_err(|err| match err {
            registry::Error::NoSuchBucket(_) => Refusal {
                code: S3ErrorCode::NoSuchBucket,
                message: "The specified bucket does not exist".into(),
                details: vec![("BucketName", bucket.to_owned())],
            },
            err => {
                tracing::error!(error = %err, "CORS rules could not be read");
                Refusal {
                    code: S3ErrorCode::ServiceUnavailable,
                    message: "Please reduce your request rate.".into(),
                    details: Vec::new(),
                }
            }
        })
    }
}

/// The headers every allowed request gets: a rule allowing any origin answers `*` and no
/// credentials, as S3 does.
fn allow(out: &mut HeaderMap, rule: &CorsRule, origin: &str) {
    if registry::cors::allows_any_origin(rule, origin) {
        out.insert(http::header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    } else {
        insert(out, http::header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        out.insert(http::header::ACCESS_CONTROL_ALLOW_CREDENTIALS, HeaderValue::from_static("true"));
    }
    insert(out, http::header::ACCESS_CONTROL_ALLOW_METHODS, &rule.allowed_methods.join(", "));
    if !rule.expose_headers.is_empty() {
        insert(out, http::header::ACCESS_CONTROL_EXPOSE_HEADERS, &rule.expose_headers.join(", "));
    }
    if let Some(age) = rule.max_age_seconds {
        out.insert(http::header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from(age));
    }
}

/// Inserts a value that came from a request header or a recorded rule, both of which hold
/// only what a header value may.
fn insert(out: &mut HeaderMap, name: http::header::HeaderName, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        out.insert(name, value);
    }
}

fn bad_request(message: &str) -> Refusal {
    Refusal { code: S3ErrorCode::Custom("BadRequest".into()), message: message.into(), details: Vec::new() }
}

fn forbidden(message: &str) -> Refusal {
    Refusal { code: S3ErrorCode::Custom("AccessForbidden".into()), message: message.into(), details: Vec::new() }
}

fn refused(refusal: Refusal, request_id: &str) -> Response<Body> {
    let status = match refusal.code.as_str() {
        "BadRequest" => StatusCode::BAD_REQUEST,
        _ => refusal.status(),
    };
    let mut response = Response::new(Body::from(refusal.to_xml(request_id)));
    *response.status_mut() = status;
    response.headers_mut().insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/xml"));
    response
}
