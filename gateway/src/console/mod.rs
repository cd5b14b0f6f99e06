//! The web console under `/_console/` on the S3 port: pages for people, rendered by the
//! gateway from templates built into the binary.
//!
//! A person signs in with an access key and its secret (`session`); every page is then
//! decided by the same access hook as S3 requests ([`Access::authorize`], with the S3 action
//! the page stands for) and reads through the same registry queries as `/_registry/`: there
//! is no second path to the data. Pages send no script but the live feed's, set a strict
//! content security policy, and are never cached.
//!
//! - `session`: sign-in cookies and the token each form carries.
//! - `layout`: the page shell and the formatting pages share.
//! - `buckets`: the bucket list and a bucket's folders.
//! - `object`: one object version: its record, its readers and its history.
//! - `event`: one event of the log, whole.
//! - `packages`: sealed packages, their manifests and their verification.
//! - `feed`: the live event feed.
//! - `actions`: changes (legal hold, retention, tags, deleting a version), prepared as S3
//!   requests that the browser sends to the S3 API; `presign` signs them and download links.
//! - [`operations`]: the gateway at work (charts of its metrics), readiness, checkpoints.

mod actions;
mod buckets;
mod event;
mod feed;
mod layout;
mod object;
pub mod operations;
mod packages;
mod presign;
mod session;

use std::collections::HashMap;
use std::time::SystemTime;

use http::request::Parts;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use maud::Markup;
use registry::Registry;
use registry::policy::ConditionKeys;
use s3s::Body;
use s3s::auth::{S3Auth as _, SecretKey};
use subtle::ConstantTimeEq as _;
use tokio::sync::watch;

use crate::auth::Users;
use crate::auth::access::{Access, SecureTransport};
use crate::client_addr::ClientAddr;
use crate::limits::SignInFailures;
use crate::rehash::Stored;
use session::{Claims, Session};

/// Where the console lives.
pub const CONSOLE_PREFIX: &str = "/_console";

/// The largest form the console reads (sign-in, sign-out).
const MAX_FORM_BYTES: usize = 16 * 1024;
/// Objects "verify this object" re-hashes at once, per gateway.
const MAX_VERIFICATIONS: usize = 2;
/// How long a form may take to arrive.
const FORM_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Every page's content security policy: the console's own style sheet and scripts only, no
/// inline script, no framing, forms posted back to the console only; requests (the live feed,
/// the changes' S3 requests) to the gateway only.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'self'; script-src 'self'; \
    connect-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The content security policy of every S3 response: a document opened from a bucket (an
/// HTML report, say) keeps its scripts, forms and pop-ups but runs in an opaque origin, so it
/// cannot read the console's pages nor send its session cookie (`SameSite=Strict` holds for
/// an opaque origin's requests), although both share the gateway's host and port.
pub const OBJECT_SANDBOX: &str = "sandbox allow-scripts allow-forms allow-popups allow-downloads allow-modals";

/// Whether `path` belongs to the console.
#[must_use]
pub fn is_console_path(path: &str) -> bool {
    path.strip_prefix(CONSOLE_PREFIX).is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// The console of one gateway.
pub struct Console {
    registry: Registry,
    /// Where "verify this object" reads bytes from.
    stored: Stored,
    /// Verifications running at once, at most [`MAX_VERIFICATIONS`]: each reads a whole object.
    verifications: tokio::sync::Semaphore,
    /// The secrets sessions are checked with.
    users: Users,
    /// Decides each page as the S3 request it stands for.
    access: Access,
    /// The region presigned download links are signed for.
    region: String,
    /// Whether a request came over HTTPS (the session cookie is `Secure` then).
    secure_transport: SecureTransport,
    /// Becomes `true` when the server shuts down: the live feed ends.
    shutdown: watch::Receiver<bool>,
    /// The operations page's readings, when the gateway keeps them.
    operations: Option<operations::Operations>,
    /// Failed sign-ins per client, which bound how fast a secret can be guessed.
    sign_in_failures: SignInFailures,
}

/// A signed-in request, as the pages see it. Holds the key's secret (presigned links are
/// signed with it): never logged.
struct Visit {
    session: Session,
    /// The cookie's claims, checked again while a live feed stays open.
    claims: Claims,
    secret: SecretKey,
    /// The request's condition keys, for the access decisions.
    keys: ConditionKeys,
    /// The `Host` the browser used: where presigned links point.
    host: String,
    /// Whether the browser came over HTTPS.
    secure: bool,
    /// The query's parameters.
    query: HashMap<String, String>,
}

/// Why a page is not shown.
#[derive(Debug)]
enum Refusal {
    /// No session, or one that ended: back to the sign-in page.
    SignIn,
    /// The signed-in user may not do `action` on `resource`.
    Denied { action: &'static str, resource: String },
    /// Nothing of that name.
    NotFound(String),
    /// A request no page of the console makes.
    Bad(String),
    /// The registry could not answer.
    Failed(StatusCode),
    /// Too many verifications are running.
    Busy,
}

impl From<registry::Error> for Refusal {
    fn from(err: registry::Error) -> Self {
        tracing::error!(error = %err, "console read failed");
        match err {
            registry::Error::ViewsBehind => Refusal::Failed(StatusCode::SERVICE_UNAVAILABLE),
            _ => Refusal::Failed(StatusCode::INTERNAL_SERVER_ERROR),
        }
    }
}

impl Refusal {
    fn respond(self, session: Option<&Session>, method: &Method) -> Response<Body> {
        let (status, title, message) = match self {
            Refusal::SignIn if *method == Method::GET => return redirect(&format!("{CONSOLE_PREFIX}/sign-in")),
            Refusal::SignIn => (StatusCode::UNAUTHORIZED, "Signed out", "Sign in again.".to_owned()),
            Refusal::Denied { action, resource } => {
                (StatusCode::FORBIDDEN, "Access denied", format!("Your policies do not allow {action} on {resource}."))
            }
            Refusal::NotFound(message) => (StatusCode::NOT_FOUND, "Not found", message),
            Refusal::Bad(message) => (StatusCode::BAD_REQUEST, "Bad request", message),
            Refusal::Busy => (
                StatusCode::SERVICE_UNAVAILABLE,
                "Busy",
                "Other verifications are running; try again shortly.".to_owned(),
            ),
            Refusal::Failed(status) => {
                (status, "Unavailable", "The registry could not answer; try again shortly.".to_owned())
            }
        };
        html(status, &layout::problem(session, title, &message))
    }
}

impl Console {
    /// The console over `registry` and the bytes in `blobs`, deciding with `access` and
    /// checking sessions with the secrets of `users`.
    #[must_use]
    pub fn new(
        registry: Registry,
        stored: Stored,
        users: Users,
        access: Access,
        region: String,
        secure_transport: SecureTransport,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        let verifications = tokio::sync::Semaphore::new(MAX_VERIFICATIONS);
        Self {
            registry,
            stored,
            verifications,
            users,
            access,
            region,
            secure_transport,
            shutdown,
            operations: None,
            sign_in_failures: SignInFailures::default(),
        }
    }

    /// The console with an operations page over `operations`.
    #[must_use]
    pub fn with_operations(self, operations: operations::Operations) -> Self {
        Self { operations: Some(operations), ..self }
    }

    /// Answers a request under [`CONSOLE_PREFIX`].
    pub async fn handle(&self, req: Request<Incoming>, client: Option<ClientAddr>) -> Response<Body> {
        let (parts, body) = req.into_parts();
        let secure = self.secure_transport.is_secure(client);
        let path = parts.uri.path().strip_prefix(CONSOLE_PREFIX).unwrap_or_default();
        let mut response = match (&parts.method, path) {
            (&Method::GET, "" | "/") => redirect(&format!("{CONSOLE_PREFIX}/buckets")),
            (&Method::GET, "/static/console.css") => asset("text/css; charset=utf-8", layout::STYLESHEET),
            (&Method::GET, "/static/feed.js") => asset("text/javascript; charset=utf-8", layout::FEED_SCRIPT),
            (&Method::GET, "/static/actions.js") => asset("text/javascript; charset=utf-8", layout::ACTIONS_SCRIPT),
            (&Method::GET, "/sign-in") => html(StatusCode::OK, &layout::sign_in(None)),
            (&Method::POST, _)
                if !same_origin(&parts.headers, crate::request::authority(&parts.uri, &parts.headers)) =>
            {
                tracing::info!(code = "AccessDenied", "console form from another site refused");
                html(
                    StatusCode::FORBIDDEN,
                    &layout::problem(None, "Access denied", "A form from another site was refused."),
                )
            }
            (&Method::POST, "/sign-in") => self.sign_in(body, client.map(|c| c.ip), secure).await,
            _ => match self.visit(&parts, client, secure).await {
                Err(refusal) => refusal.respond(None, &parts.method),
                Ok(visit) => match self.route(&parts, body, &visit).await {
                    Ok(response) => response,
                    Err(refusal) => refusal.respond(Some(&visit.session), &parts.method),
                },
            },
        };
        let headers = response.headers_mut();
        headers.entry(header::CACHE_CONTROL).or_insert(HeaderValue::from_static("no-store"));
        headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
        headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
        headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        // Not `no-referrer`: under it Chromium sends `Origin: null` with the console's own forms.
        headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
        response
    }

    async fn route(&self, parts: &Parts, body: Incoming, visit: &Visit) -> Result<Response<Body>, Refusal> {
        let path = parts.uri.path().strip_prefix(CONSOLE_PREFIX).unwrap_or_default();
        if parts.method == Method::POST {
            let form = read_form(body).await?;
            check_form_token(visit, &form)?;
            if path == "/sign-out" {
                return Ok(self.sign_out(visit));
            }
            if path == "/actions" {
                return actions::signed(&actions::prepare(&form)?, visit, &self.region);
            }
            let verify = form.get("action").is_some_and(|action| action == "verify");
            if let Some(object) = path.strip_prefix("/objects/")
                && verify
            {
                let (bucket, key) = object_path(object)?;
                return object::page(self, visit, &bucket, &key, object::Verify::Now).await;
            }
            if let Some(name) = path.strip_prefix("/packages/")
                && verify
            {
                return packages::page(self, visit, &decode(name)?, packages::Verify::Bytes).await;
            }
            return Err(Refusal::Bad("The console has no such form.".to_owned()));
        }
        if parts.method != Method::GET {
            return Err(Refusal::Bad("The console answers GET, and POST for its forms.".to_owned()));
        }
        match path {
            "/buckets" | "/buckets/" => return buckets::list(self, visit).await,
            "/feed" => return feed::page(self, visit).await,
            "/packages" | "/packages/" => return packages::list(self, visit).await,
            "/operations" => return operations::page(self, visit).await,
            "/feed/stream" => return feed::stream(self, visit, &parts.headers).await,
            _ => {}
        }
        if let Some(bucket) = path.strip_prefix("/buckets/") {
            return buckets::browse(self, visit, &decode(bucket)?).await;
        }
        if let Some(object) = path.strip_prefix("/objects/") {
            let (bucket, key) = object_path(object)?;
            return object::page(self, visit, &bucket, &key, object::Verify::No).await;
        }
        if let Some(name) = path.strip_prefix("/packages/") {
            return packages::page(self, visit, &decode(name)?, packages::Verify::Records).await;
        }
        if let Some(sequence) = path.strip_prefix("/events/") {
            let sequence = sequence.parse().map_err(|_| Refusal::NotFound("No such event.".to_owned()))?;
            return event::page(self, visit, sequence).await;
        }
        Err(Refusal::NotFound("No such page.".to_owned()))
    }

    /// The session the request's cookie proves, with what the pages need of the request.
    async fn visit(&self, parts: &Parts, client: Option<ClientAddr>, secure: bool) -> Result<Visit, Refusal> {
        let claims = session::cookie_value(parts.headers.get_all(header::COOKIE), secure)
            .and_then(Claims::parse)
            .ok_or(Refusal::SignIn)?;
        let secret = self.secret_of(&claims.access_key).await?;
        let session = claims.clone().check(secret.expose(), SystemTime::now()).ok_or(Refusal::SignIn)?;
        let host = crate::request::authority(&parts.uri, &parts.headers).unwrap_or("localhost").to_owned();
        let query =
            parts.uri.query().map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect()).unwrap_or_default();
        Ok(Visit {
            session,
            claims,
            secret,
            keys: self.access.request_keys(client, &parts.headers, &parts.uri),
            host,
            secure,
            query,
        })
    }

    /// The secret of a key that may sign now (active, not deleted); [`Refusal::SignIn`] when
    /// there is none.
    async fn secret_of(&self, access_key: &str) -> Result<SecretKey, Refusal> {
        self.users.get_secret_key(access_key).await.map_err(|err| match err.code().as_str() {
            "InvalidAccessKeyId" => Refusal::SignIn,
            code => {
                tracing::error!(code, "console could not look up a key");
                Refusal::Failed(StatusCode::SERVICE_UNAVAILABLE)
            }
        })
    }

    /// Refuses the page unless the visitor may do `action` on `resource` (under `bucket`'s
    /// grants), decided as the S3 request would be with condition keys `keys` (the request's,
    /// or those plus the keys the S3 operation would add); an object by its `version_id`'s
    /// tags and ACL, when given.
    async fn allow(
        &self,
        visit: &Visit,
        action: &'static str,
        bucket: Option<&str>,
        resource: &str,
        keys: &ConditionKeys,
        version_id: Option<&str>,
    ) -> Result<(), Refusal> {
        let decided = self.decide(visit, action, bucket, resource, keys, version_id).await;
        if let Err(Refusal::Denied { .. }) = decided {
            tracing::info!(code = "AccessDenied", action, resource, "console page refused");
        }
        decided
    }

    /// Whether the visitor may do `action` on `resource`, with the request's condition keys:
    /// for what a page shows or leaves out, rather than refuses.
    async fn may(
        &self,
        visit: &Visit,
        action: &'static str,
        bucket: Option<&str>,
        resource: &str,
        version_id: Option<&str>,
    ) -> Result<bool, Refusal> {
        match self.decide(visit, action, bucket, resource, &visit.keys, version_id).await {
            Ok(()) => Ok(true),
            Err(Refusal::Denied { .. }) => Ok(false),
            Err(refusal) => Err(refusal),
        }
    }

    async fn decide(
        &self,
        visit: &Visit,
        action: &'static str,
        bucket: Option<&str>,
        resource: &str,
        keys: &ConditionKeys,
        version_id: Option<&str>,
    ) -> Result<(), Refusal> {
        let access_key = Some(visit.session.access_key.as_str());
        match self.access.authorize(access_key, action, bucket, resource, keys, version_id).await {
            Ok(()) => Ok(()),
            Err(err) => match err.code().as_str() {
                "InvalidAccessKeyId" => Err(Refusal::SignIn),
                "AccessDenied" => Err(Refusal::Denied { action, resource: resource.to_owned() }),
                code => {
                    tracing::error!(code, action, resource, "console access check failed");
                    Err(Refusal::Failed(StatusCode::SERVICE_UNAVAILABLE))
                }
            },
        }
    }

    /// Checks the key and secret of the sign-in form from `client`; sets the session cookie
    /// when they match. A client past its failed sign-ins is refused before anything is checked.
    async fn sign_in(&self, body: Incoming, client: Option<std::net::IpAddr>, secure: bool) -> Response<Body> {
        if self.sign_in_failures.refuses(client) {
            tracing::info!(code = "SlowDown", "console sign-in refused: too many failed sign-ins from this client");
            let problem = format!(
                "Too many failed sign-ins from your address: try again in {} seconds.",
                SignInFailures::WINDOW.as_secs()
            );
            return html(StatusCode::TOO_MANY_REQUESTS, &layout::sign_in(Some(&problem)));
        }
        let Ok(form) = read_form(body).await else {
            return html(StatusCode::BAD_REQUEST, &layout::sign_in(Some("The form was too large.")));
        };
        let access_key = form.get("access_key").map_or("", |key| key.trim());
        let given = form.get("secret_key").map_or("", String::as_str);
        let secret = if access_key.is_empty() { None } else { self.users.get_secret_key(access_key).await.ok() };
        let known = secret.is_some();
        let Some(secret) = secret.filter(|secret| bool::from(secret.expose().as_bytes().ct_eq(given.as_bytes())))
        else {
            self.sign_in_failures.failed(client);
            // A key that names no one may be a secret typed into the wrong field: not logged.
            if known {
                tracing::info!(code = "AccessDenied", access_key, "console sign-in refused: not the key's secret");
            } else {
                tracing::info!(code = "AccessDenied", "console sign-in refused: no such access key");
            }
            let problem = "That access key and secret key do not sign in.";
            return html(StatusCode::UNAUTHORIZED, &layout::sign_in(Some(problem)));
        };
        self.sign_in_failures.succeeded(client);
        tracing::info!(access_key, "console sign-in");
        let cookie = Claims::issue(access_key, secret.expose(), SystemTime::now());
        let mut response = redirect(&format!("{CONSOLE_PREFIX}/buckets"));
        let cookie = HeaderValue::from_str(&session::set_cookie(&cookie, secure)).expect("the cookie is ASCII");
        response.headers_mut().insert(header::SET_COOKIE, cookie);
        response
    }

    /// Removes the session cookie (the form's token was checked).
    fn sign_out(&self, visit: &Visit) -> Response<Body> {
        tracing::info!(access_key = %visit.session.access_key, "console sign-out");
        let mut response = redirect(&format!("{CONSOLE_PREFIX}/sign-in"));
        let cookie = HeaderValue::from_str(&session::clear_cookie(visit.secure)).expect("the cookie is ASCII");
        response.headers_mut().insert(header::SET_COOKIE, cookie);
        response
    }
}

/// Refuses a state change whose form does not carry the session's token.
fn check_form_token(visit: &Visit, form: &HashMap<String, String>) -> Result<(), Refusal> {
    match form.get("csrf") {
        Some(token) if session::form_token_matches(&visit.session, token) => Ok(()),
        _ => {
            tracing::info!(code = "AccessDenied", "console form without its token refused");
            Err(Refusal::Denied { action: "a change", resource: "a form without its token".to_owned() })
        }
    }
}

/// Whether a POST comes from the console's own pages (at `host`), as far as the browser says:
/// a `Sec-Fetch-Site` other than same-origin, or an `Origin` naming another host, is another
/// site's form. (Without either header the request is not a browser's, and cannot be forged
/// by one.)
fn same_origin(headers: &http::HeaderMap, host: Option<&str>) -> bool {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = header("sec-fetch-site")
        && !matches!(site, "same-origin" | "none")
    {
        return false;
    }
    match header("origin") {
        None => true,
        Some(origin) => {
            let origin_host = origin.split_once("://").map_or(origin, |(_, host)| host);
            host.is_some_and(|host| host.eq_ignore_ascii_case(origin_host))
        }
    }
}

/// A form of at most [`MAX_FORM_BYTES`], sent within [`FORM_TIMEOUT`].
async fn read_form(body: Incoming) -> Result<HashMap<String, String>, Refusal> {
    let read = http_body_util::Limited::new(body, MAX_FORM_BYTES).collect();
    let bytes = tokio::time::timeout(FORM_TIMEOUT, read)
        .await
        .map_err(|_| Refusal::Bad("The form took too long to arrive.".to_owned()))?
        .map_err(|_| Refusal::Bad("The form is too large.".to_owned()))?
        .to_bytes();
    Ok(form_urlencoded::parse(&bytes).into_owned().collect())
}

/// The bucket and key of `{bucket}/{key}` (percent-encoded, as the console links them).
fn object_path(path: &str) -> Result<(String, String), Refusal> {
    let decoded = decode(path)?;
    match decoded.split_once('/') {
        Some((bucket, key)) if !bucket.is_empty() && !key.is_empty() => Ok((bucket.to_owned(), key.to_owned())),
        _ => Err(Refusal::NotFound("No such object.".to_owned())),
    }
}

/// A path segment (or the rest of a path) percent-decoded.
fn decode(text: &str) -> Result<String, Refusal> {
    percent_encoding::percent_decode_str(text)
        .decode_utf8()
        .map(|text| text.into_owned())
        .map_err(|_| Refusal::Bad("The path is not UTF-8.".to_owned()))
}

fn html(status: StatusCode, markup: &Markup) -> Response<Body> {
    let mut response = Response::new(Body::from(markup.clone().into_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    response
}

fn redirect(location: &str) -> Response<Body> {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::SEE_OTHER;
    response.headers_mut().insert(header::LOCATION, HeaderValue::from_str(location).expect("console paths are ASCII"));
    response
}

/// A file built into the binary; it holds nothing of any user, so browsers may keep it.
fn asset(content_type: &'static str, text: &'static str) -> Response<Body> {
    let mut response = Response::new(Body::from(text.to_owned()));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=3600"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> http::HeaderMap {
        pairs
            .iter()
            .map(|(name, value)| (http::HeaderName::from_static(name), HeaderValue::from_static(value)))
            .collect()
    }

    #[test]
    fn only_forms_of_the_consoles_own_origin_pass() {
        let host = Some("gw:9000");
        assert!(same_origin(&headers(&[]), host), "no browser headers: not a browser");
        assert!(same_origin(&headers(&[("origin", "http://gw:9000")]), host));
        assert!(same_origin(&headers(&[("sec-fetch-site", "same-origin")]), host));
        assert!(!same_origin(&headers(&[("origin", "https://evil.example")]), host));
        assert!(!same_origin(&headers(&[("origin", "null")]), host));
        assert!(!same_origin(&headers(&[("sec-fetch-site", "cross-site")]), host));
        assert!(!same_origin(&headers(&[("sec-fetch-site", "same-site")]), host));
        assert!(!same_origin(&headers(&[("origin", "http://gw:9000")]), None));
    }

    /// Found with Chromium over HTTPS: HTTP/2 names the host in the URI, with no `Host`
    /// header, and the sign-in form was refused as another site's.
    #[test]
    fn the_host_of_an_http2_request_is_its_uris_authority() {
        let (parts, ()) = Request::builder().uri("https://gw:9443/_console/sign-in").body(()).unwrap().into_parts();
        assert_eq!(crate::request::authority(&parts.uri, &parts.headers), Some("gw:9443"));
        let (parts, ()) =
            Request::builder().uri("/_console/sign-in").header("host", "gw:9000").body(()).unwrap().into_parts();
        assert_eq!(crate::request::authority(&parts.uri, &parts.headers), Some("gw:9000"));
    }

    #[test]
    fn console_paths_are_the_prefix_and_below() {
        assert!(is_console_path("/_console"));
        assert!(is_console_path("/_console/buckets"));
        assert!(!is_console_path("/_consoles"));
        assert!(!is_console_path("/bucket/_console"));
    }
}
