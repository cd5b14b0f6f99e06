//! The registry's read API under `/_registry/`, signed with the same credentials as S3
//! requests: s3s checks the signature (header or presigned SigV4, SigV2) and hands the request
//! here as a custom route. Each call is authorized like an S3 request ([`required_permission`]):
//! an object's provenance and its retrievals need `s3:GetObject` on it (and each version but
//! the current one `s3:GetObjectVersion` on that version, or it is left out); the whole event log
//! needs `artifact-store:ReadEvents`, and retrievals not narrowed to one object
//! `artifact-store:ReadRetrievals`. Unsigned requests are refused with `AccessDenied`.
//!
//! - `GET /_registry/objects/{bucket}/{key}?before=&limit=`: the versions of a key with their
//!   provenance, newest first, a page at a time.
//! - `GET /_registry/retrievals?bucket=&key=&actor=&from=&to=&after=&limit=&format=`:
//!   retrieval records as JSON, S3 access-log lines or CloudTrail records.
//! - `GET /_registry/events?since=&limit=&bucket=&type=&wait=`: events as JSON lines; with
//!   `wait`, a long poll that answers as soon as a matching event commits.
//! - `GET /_registry/events/stream?since=&bucket=&type=`: Server-Sent Events, resumable
//!   with `Last-Event-ID`.
//! - `GET /_registry/events/{sequence}`: one event, to check a receipt.
//!
//! `docs/registry-api.md` documents every parameter.

use std::collections::HashMap;
use std::pin::pin;
use std::time::Duration;

use bytes::Bytes;
use futures::{StreamExt as _, TryStreamExt as _};
use http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use http_body_util::StreamBody;
use hyper::body::Frame;
use registry::queries::{self, EventFilter, RetrievalFilter, VersionProvenance};
use registry::{Event, Registry};
use s3s::route::S3Route;
use s3s::{Body, S3Request, S3Response, S3Result};
use serde_json::json;
use tokio::sync::watch;

use super::{REGISTRY_PREFIX, records};
use crate::auth::access::Access;
use crate::client_addr::ClientAddr;

/// Most events or records one call returns.
const MAX_LIMIT: usize = 10_000;
/// Events or records returned when `limit` is not given.
const DEFAULT_LIMIT: usize = 1000;
/// Most events one feed call looks at while filtering, so a rare filter cannot make one call
/// read the whole log; the response says where the scan stopped.
const SCAN_BUDGET: usize = 100_000;
/// The longest long poll.
const MAX_WAIT: Duration = Duration::from_secs(60);
/// An SSE comment sent this often keeps proxies from closing a quiet stream.
const KEEPALIVE: Duration = Duration::from_secs(15);
/// How often an open event stream checks that its signer may still read the log.
pub const REAUTHORIZE: Duration = Duration::from_secs(10);

/// Header of a feed page: the last sequence the scan looked at, the `since` of the next call.
pub const NEXT_SINCE_HEADER: &str = "x-artifact-store-next-since";

/// Marks a request the server routed to the registry API (set in its extensions).
#[derive(Debug, Clone, Copy)]
pub struct RegistryRequest;

/// The s3s custom route serving the registry API.
pub struct RegistryApi {
    registry: Registry,
    /// Decides who may read what; set by the S3 service that serves the API.
    access: Option<Access>,
    region: String,
    /// Becomes `true` when the server shuts down: long polls answer and streams end.
    shutdown: watch::Receiver<bool>,
}

impl RegistryApi {
    /// The API over `registry`; `region` goes into CloudTrail records.
    #[must_use]
    pub fn new(registry: Registry, region: String, shutdown: watch::Receiver<bool>) -> Self {
        Self { registry, access: None, region, shutdown }
    }

    /// The API deciding each call with `access`, as S3 requests are decided.
    #[must_use]
    pub fn with_access(self, access: Access) -> Self {
        Self { access: Some(access), ..self }
    }
}

/// The permission a registry API call needs: `(action, bucket, resource)`.
#[must_use]
pub fn required_permission(path: &str, query: Option<&str>) -> (&'static str, Option<String>, String) {
    let path = path.strip_prefix(REGISTRY_PREFIX).unwrap_or_default();
    if let Some(object) = path.strip_prefix("/objects/") {
        let decoded = percent_encoding::percent_decode_str(object).decode_utf8_lossy().into_owned();
        let bucket = decoded.split('/').next().unwrap_or_default().to_owned();
        return ("s3:GetObject", Some(bucket), format!("arn:aws:s3:::{decoded}"));
    }
    if path.trim_end_matches('/') == "/retrievals" {
        let query = Query::parse(query);
        if let (Some(bucket), Some(key)) = (query.get("bucket"), query.get("key")) {
            return ("s3:GetObject", Some(bucket.to_owned()), format!("arn:aws:s3:::{bucket}/{key}"));
        }
        return ("artifact-store:ReadRetrievals", None, "*".to_owned());
    }
    ("artifact-store:ReadEvents", None, "*".to_owned())
}

/// `text` as a whole number within SQLite's integers, which hold every sequence: a larger one
/// would fail in the query as a server error rather than the client's.
fn sequence_number(text: &str) -> Option<u64> {
    text.parse::<u64>().ok().filter(|n| i64::try_from(*n).is_ok())
}

/// A refusal, answered as `{"code": ..., "message": ...}`.
struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    fn bad(message: impl Into<String>) -> Self {
        Self { status: StatusCode::BAD_REQUEST, code: "InvalidArgument", message: message.into() }
    }

    fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self { status: StatusCode::NOT_FOUND, code, message: message.into() }
    }

    fn access_denied() -> Self {
        Self { status: StatusCode::FORBIDDEN, code: "AccessDenied", message: "Access Denied".to_owned() }
    }
}

impl From<registry::Error> for ApiError {
    fn from(err: registry::Error) -> Self {
        tracing::error!(error = %err, "registry API query failed");
        Self { status: StatusCode::INTERNAL_SERVER_ERROR, code: "InternalError", message: "registry error".to_owned() }
    }
}

type ApiResult = Result<S3Response<Body>, ApiError>;

#[async_trait::async_trait]
impl S3Route for RegistryApi {
    fn is_match(&self, _method: &Method, _uri: &Uri, _headers: &HeaderMap, extensions: &mut http::Extensions) -> bool {
        extensions.get::<RegistryRequest>().is_some()
    }

    async fn check_access(&self, req: &mut S3Request<Body>) -> S3Result<()> {
        let Some(credentials) = &req.credentials else {
            return Err(s3s::s3_error!(AccessDenied, "Signature is required"));
        };
        let Some(access) = &self.access else { return Ok(()) };
        let (action, bucket, resource) = required_permission(req.uri.path(), req.uri.query());
        let keys = access.request_keys(req.extensions.get::<ClientAddr>().copied(), &req.headers, &req.uri);
        access.authorize(Some(&credentials.access_key), action, bucket.as_deref(), &resource, &keys, None).await
    }

    async fn call(&self, req: S3Request<Body>) -> S3Result<S3Response<Body>> {
        let result = if req.method == Method::GET {
            self.route(&req).await
        } else {
            Err(ApiError {
                status: StatusCode::METHOD_NOT_ALLOWED,
                code: "MethodNotAllowed",
                message: "GET only".into(),
            })
        };
        Ok(result.unwrap_or_else(|err| {
            let body = json!({ "code": err.code, "message": err.message });
            respond(err.status, "application/json", Body::from(format!("{body}\n")))
        }))
    }
}

impl RegistryApi {
    async fn route(&self, req: &S3Request<Body>) -> ApiResult {
        let path = req.uri.path().strip_prefix(REGISTRY_PREFIX).unwrap_or_default();
        let query = Query::parse(req.uri.query());
        match path.trim_end_matches('/') {
            "/events" => self.events(&query).await,
            "/events/stream" => self.stream(&query, req),
            "/retrievals" => self.retrievals(req, &query).await,
            rest => {
                if let Some(sequence) = rest.strip_prefix("/events/") {
                    let sequence =
                        sequence_number(sequence).ok_or_else(|| ApiError::bad("the event sequence is a number"))?;
                    return self.event(sequence).await;
                }
                if let Some(object) = path.strip_prefix("/objects/") {
                    return self.object(req, object, &query).await;
                }
                Err(ApiError::not_found("NotFound", "no such registry endpoint"))
            }
        }
    }

    /// `objects/{bucket}/{key}?before=&limit=`: a page of the key's versions, newest first,
    /// with their provenance; `next_before` names the next page when there is one.
    async fn object(&self, req: &S3Request<Body>, path: &str, query: &Query) -> ApiResult {
        let decoded = percent_encoding::percent_decode_str(path)
            .decode_utf8()
            .map_err(|_| ApiError::bad("the object path is not UTF-8"))?;
        let Some((bucket, key)) = decoded.split_once('/').filter(|(b, k)| !b.is_empty() && !k.is_empty()) else {
            return Err(ApiError::bad("expected /_registry/objects/{bucket}/{key}"));
        };
        let before = query.number("before")?;
        let limit = query.limit()?;
        let (bucket, key) = (bucket.to_owned(), key.to_owned());
        let (b, k) = (bucket.clone(), key.clone());
        // One more than the page, to tell whether another follows.
        let mut versions =
            self.registry.read(move |conn| conn.key_provenance(&b, &k, before.unwrap_or(u64::MAX), limit + 1)).await?;
        // Whether a key exists is told only to whoever may list its bucket, as a GET tells it:
        // an empty page (the first, or one `before` the oldest) tells it as much as a 404.
        if versions.is_empty() && !self.may_list(req, &bucket).await {
            return Err(ApiError::access_denied());
        }
        if versions.is_empty() && before.is_none() {
            return Err(ApiError::not_found("NoSuchKey", "the registry has no version of this key"));
        }
        let more = versions.len() > limit;
        versions.truncate(limit);
        // The cursor is the page's, whatever of it the caller may see.
        let next_before = versions.last().filter(|_| more).map(|last| last.version.sequence);
        let versions = self.readable_versions(req, &bucket, &key, versions).await?;
        let mut document = records::provenance(&bucket, &key, &versions);
        if let Some(next_before) = next_before {
            document["next_before"] = json!(next_before);
        }
        Ok(json_response(&document))
    }

    /// Whether the signer of `req` may list `bucket` (`s3:ListBucket`).
    async fn may_list(&self, req: &S3Request<Body>, bucket: &str) -> bool {
        let Some(access) = &self.access else { return true };
        let access_key = req.credentials.as_ref().map(|c| c.access_key.as_str());
        let keys = access.request_keys(req.extensions.get::<ClientAddr>().copied(), &req.headers, &req.uri);
        let resource = format!("arn:aws:s3:::{bucket}");
        access.authorize(access_key, "s3:ListBucket", Some(bucket), &resource, &keys, None).await.is_ok()
    }

    /// The versions of `versions` the signer of `req` may read: the current one as the call
    /// was decided (`s3:GetObject`), every other as a read of that version
    /// (`s3:GetObjectVersion`, with its own tags and ACL), as S3 decides a GET of it.
    async fn readable_versions(
        &self,
        req: &S3Request<Body>,
        bucket: &str,
        key: &str,
        versions: Vec<VersionProvenance>,
    ) -> Result<Vec<VersionProvenance>, ApiError> {
        let Some(access) = &self.access else { return Ok(versions) };
        let access_key = req.credentials.as_ref().map(|c| c.access_key.as_str());
        let keys = access.request_keys(req.extensions.get::<ClientAddr>().copied(), &req.headers, &req.uri);
        let resource = format!("arn:aws:s3:::{bucket}/{key}");
        let mut readable = Vec::with_capacity(versions.len());
        for version in versions {
            let id = version.version.version_id.as_str();
            let allowed = version.version.is_latest
                || access
                    .authorize(access_key, "s3:GetObjectVersion", Some(bucket), &resource, &keys, Some(id))
                    .await
                    .is_ok();
            if allowed {
                readable.push(version);
            }
        }
        Ok(readable)
    }

    /// `events/{sequence}`: one event.
    async fn event(&self, sequence: u64) -> ApiResult {
        let event = self.registry.read(move |conn| conn.event(sequence)).await?;
        let event = event.ok_or_else(|| ApiError::not_found("NoSuchEvent", "the log has no event at this sequence"))?;
        let body = serde_json::to_string(&event).expect("events serialise") + "\n";
        Ok(respond(StatusCode::OK, "application/json", Body::from(body)))
    }

    /// `events`: a page of the filtered feed as JSON lines, after waiting up to `wait`
    /// seconds for a first match when there is none yet.
    async fn events(&self, query: &Query) -> ApiResult {
        let filter = query.event_filter();
        let since = query.number("since")?.unwrap_or(0);
        let limit = query.limit()?;
        let wait = query.number("wait")?.map_or(Duration::ZERO, |s| Duration::from_secs(s).min(MAX_WAIT));
        let mut page = self.page(&filter, since, limit).await?;
        // Sequences have no gaps: an empty page that looked at the whole budget stopped for it
        // before the head, and answers at once so that the client goes on from where it
        // stopped; a wait would tail the rest of the log unbudgeted.
        let stopped_for_budget = page.scanned_to - since >= SCAN_BUDGET as u64;
        if page.events.is_empty() && !wait.is_zero() && !stopped_for_budget {
            // Wake on the first matching commit after what the scan covered.
            let mut tail = pin!(self.registry.tail(page.scanned_to).try_filter({
                let filter = filter.clone();
                move |event| std::future::ready(filter.matches(event))
            }));
            let mut shutdown = self.shutdown.clone();
            tokio::select! {
                _ = tokio::time::timeout(wait, tail.next()) => {}
                _ = shutdown.wait_for(|stopping| *stopping) => {}
            }
            page = self.page(&filter, page.scanned_to, limit).await?;
        }
        let mut body = String::new();
        for event in &page.events {
            body.push_str(&serde_json::to_string(event).expect("events serialise"));
            body.push('\n');
        }
        let mut response = respond(StatusCode::OK, "application/x-ndjson", Body::from(body));
        response.headers.insert(NEXT_SINCE_HEADER, HeaderValue::from(page.scanned_to));
        Ok(response)
    }

    async fn page(&self, filter: &EventFilter, since: u64, limit: usize) -> Result<queries::EventPage, ApiError> {
        let filter = filter.clone();
        Ok(self.registry.read(move |conn| conn.events_matching(&filter, since, limit, SCAN_BUDGET)).await?)
    }

    /// `events/stream`: every matching event after `since` (or `Last-Event-ID`), then each new
    /// one as it commits, as Server-Sent Events; ends when the server shuts down.
    fn stream(&self, query: &Query, req: &S3Request<Body>) -> ApiResult {
        let headers = &req.headers;
        let filter = query.event_filter();
        let resume = match headers.get("last-event-id") {
            Some(id) => Some(
                id.to_str()
                    .ok()
                    .and_then(|id| id.trim().parse().ok())
                    .ok_or_else(|| ApiError::bad("Last-Event-ID is an event sequence"))?,
            ),
            None => None,
        };
        let since = match resume {
            Some(id) => id,
            None => query.number("since")?.unwrap_or(0),
        };
        let events =
            self.registry.tail(since).try_filter(move |event| std::future::ready(filter.matches(event))).map(|event| {
                match event {
                    Ok(event) => Ok(sse_frame(&event)),
                    Err(err) => {
                        tracing::error!(error = %err, "event stream read failed");
                        Err(std::io::Error::other("event stream read failed"))
                    }
                }
            });
        // A stream outlives the check that opened it: it ends once its key is disabled or
        // deleted, or its permission taken away.
        let body = sse_body(events, self.shutdown.clone(), self.revoked(req));
        let mut response = respond(StatusCode::OK, "text/event-stream", body);
        response.headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        Ok(response)
    }

    /// Resolves once the request's signer may no longer read the event log, checked every
    /// [`REAUTHORIZE`]; never without an access check (tests build the API without one).
    fn revoked(&self, req: &S3Request<Body>) -> impl std::future::Future<Output = ()> + Send + 'static {
        let access = self.access.clone();
        let access_key = req.credentials.as_ref().map(|c| c.access_key.clone());
        let keys = access
            .as_ref()
            .map(|a| a.request_keys(req.extensions.get::<ClientAddr>().copied(), &req.headers, &req.uri));
        async move {
            let (Some(access), Some(keys)) = (access, keys) else { return std::future::pending().await };
            loop {
                tokio::time::sleep(REAUTHORIZE).await;
                let (action, _, resource) = required_permission(&format!("{REGISTRY_PREFIX}/events/stream"), None);
                if access.authorize(access_key.as_deref(), action, None, &resource, &keys, None).await.is_err() {
                    tracing::info!(code = "AccessDenied", "event stream closed: its signer may no longer read the log");
                    return;
                }
            }
        }
    }

    /// `retrievals`: filtered retrieval records, as JSON, access-log lines or CloudTrail.
    async fn retrievals(&self, req: &S3Request<Body>, query: &Query) -> ApiResult {
        let filter = query.retrieval_filter()?;
        let object = filter.bucket.clone().zip(filter.key.clone());
        let limit = query.limit()?;
        let format = query.get("format").unwrap_or("json").to_owned();
        let records = self
            .registry
            .read_retrievals(move |conn| {
                let mut filter = filter;
                // Asked as a read of one object (`s3:GetObject`), the records are of that
                // object's bucket: reads of the key in a deleted bucket of the same name,
                // which may have been another account's, are not the new owner's to see.
                if let (Some(bucket), Some(_)) = (&filter.bucket, &filter.key) {
                    let born = conn.bucket(bucket)?.map_or(0, |bucket| bucket.created_seq);
                    filter.after = filter.after.max(born);
                }
                conn.retrievals(&filter, limit)
            })
            .await?;
        // Asked of one object: no records of a key that has no version tell that it does not
        // exist, which only whoever may list the bucket is told (as by a GET of it).
        if let Some((bucket, key)) = object.filter(|_| records.is_empty()) {
            let (b, k) = (bucket.clone(), key);
            let versions = self.registry.read(move |conn| conn.key_provenance(&b, &k, u64::MAX, 1)).await?;
            if versions.is_empty() && !self.may_list(req, &bucket).await {
                return Err(ApiError::access_denied());
            }
        }
        let next = records.last().map(|r| r.sequence);
        let mut response = match format.as_str() {
            "json" => json_response(&json!({
                "retrievals": records.iter().map(records::retrieval).collect::<Vec<_>>(),
            })),
            "access-log" => {
                let lines: String = records.iter().map(|r| records::access_log_line(r) + "\n").collect();
                respond(StatusCode::OK, "text/plain; charset=utf-8", Body::from(lines))
            }
            "cloudtrail" => json_response(&records::cloudtrail(&records, &self.region)),
            _ => return Err(ApiError::bad("format is json, access-log or cloudtrail")),
        };
        if let Some(next) = next {
            response.headers.insert(NEXT_SINCE_HEADER, HeaderValue::from(next));
        }
        Ok(response)
    }
}

/// A Server-Sent Events body of `frames`, with a comment every [`KEEPALIVE`] between them,
/// that ends when the server shuts down (`shutdown` becomes `true`) or `revoked` resolves.
pub fn sse_body(
    frames: impl futures::Stream<Item = std::io::Result<Bytes>> + Send + 'static,
    mut shutdown: watch::Receiver<bool>,
    revoked: impl std::future::Future<Output = ()> + Send + 'static,
) -> Body {
    let keepalive = futures::stream::unfold((), |()| async {
        tokio::time::sleep(KEEPALIVE).await;
        Some((Ok(Bytes::from_static(b": keepalive\n\n")), ()))
    });
    let stopping = async move {
        let _ = shutdown.wait_for(|stopping| *stopping).await;
    };
    let ended = futures::future::select(Box::pin(stopping), Box::pin(revoked));
    let stream = futures::stream::select(frames, keepalive).take_until(ended).map_ok(Frame::data);
    Body::http_body(StreamBody::new(sync_wrapper::SyncStream::new(stream)))
}

/// One SSE message: `id` is the sequence (what `Last-Event-ID` resumes from), `event` the type.
fn sse_frame(event: &Event) -> Bytes {
    let data = serde_json::to_string(event).expect("events serialise");
    Bytes::from(format!("id: {}\nevent: {}\ndata: {data}\n\n", event.sequence, event.event_type))
}

fn respond(status: StatusCode, content_type: &'static str, body: Body) -> S3Response<Body> {
    let mut response = S3Response::new(body);
    response.status = Some(status);
    response.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

fn json_response(value: &serde_json::Value) -> S3Response<Body> {
    respond(StatusCode::OK, "application/json", Body::from(format!("{value}\n")))
}

/// Query-string parameters (the last value of a repeated name wins).
struct Query(HashMap<String, String>);

impl Query {
    fn parse(query: Option<&str>) -> Self {
        Self(form_urlencoded::parse(query.unwrap_or_default().as_bytes()).into_owned().collect())
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str).filter(|v| !v.is_empty())
    }

    /// A whole number no larger than a sequence can be (SQLite's integers are signed).
    fn number(&self, name: &str) -> Result<Option<u64>, ApiError> {
        self.get(name)
            .map(|v| sequence_number(v).ok_or_else(|| ApiError::bad(format!("{name} is a whole number"))))
            .transpose()
    }

    /// `limit`, at most [`MAX_LIMIT`]. Zero is refused: a page that can hold nothing never moves
    /// the cursor, so a client following the feed with it would poll in place for ever.
    fn limit(&self) -> Result<usize, ApiError> {
        let limit = self.number("limit")?.map_or(DEFAULT_LIMIT, |n| usize::try_from(n).unwrap_or(MAX_LIMIT));
        if limit == 0 {
            return Err(ApiError::bad("limit is at least 1"));
        }
        Ok(limit.min(MAX_LIMIT))
    }

    fn event_filter(&self) -> EventFilter {
        EventFilter {
            bucket: self.get("bucket").map(str::to_owned),
            types: self.get("type").map(|t| t.split(',').map(str::to_owned).collect()).unwrap_or_default(),
        }
    }

    fn retrieval_filter(&self) -> Result<RetrievalFilter, ApiError> {
        Ok(RetrievalFilter {
            bucket: self.get("bucket").map(str::to_owned),
            key: self.get("key").map(str::to_owned),
            actor: self.get("actor").map(str::to_owned),
            from_ms: self.get("from").map(parse_time).transpose().map_err(ApiError::bad)?,
            to_ms: self.get("to").map(parse_time).transpose().map_err(ApiError::bad)?,
            after: self.number("after")?.unwrap_or(0),
        })
    }
}

/// A time parameter: RFC 3339 (`2026-01-02T03:04:05Z`) or milliseconds since the epoch.
///
/// # Errors
/// Neither form.
pub fn parse_time(value: &str) -> Result<i64, String> {
    if let Ok(ms) = value.parse::<i64>() {
        return Ok(ms);
    }
    let time = humantime::parse_rfc3339_weak(value)
        .map_err(|_| format!("{value:?} is not an RFC 3339 time or milliseconds"))?;
    let since = time.duration_since(std::time::UNIX_EPOCH).map_err(|_| "times before 1970".to_owned())?;
    Ok(i64::try_from(since.as_millis()).unwrap_or(i64::MAX))
}
