//! The live feed: the registry's events as they commit, filtered by bucket, event type and
//! principal, shown by a small script from a Server-Sent Events stream. Decided as the
//! registry API's event stream is (`artifact-store:ReadEvents`), and kept deciding while open.

use std::time::SystemTime;

use bytes::Bytes;
use futures::{StreamExt as _, TryStreamExt as _};
use http::{HeaderMap, HeaderValue, Response, StatusCode, header};
use maud::html;
use registry::Event;
use registry::queries::EventFilter;
use s3s::Body;
use s3s::auth::S3Auth as _;
use serde_json::json;

use super::layout;
use super::{CONSOLE_PREFIX, Console, Refusal, Visit, html};
use crate::admin::registry_api::{REAUTHORIZE, sse_body};
use crate::url_encode;

/// Events before the newest that a new feed starts with, so it is not empty until the next write.
const BACKLOG: u64 = 50;
/// The furthest back before the newest event that a reconnecting feed resumes.
const MAX_RESUME: u64 = 10_000;

/// The feed's filters, from the query.
struct Filters {
    bucket: String,
    event_type: String,
    principal: String,
}

impl Filters {
    fn of(visit: &Visit) -> Self {
        let get = |name: &str| visit.query.get(name).map(|v| v.trim().to_owned()).unwrap_or_default();
        Self { bucket: get("bucket"), event_type: get("type"), principal: get("principal") }
    }

    fn query(&self) -> String {
        format!(
            "bucket={}&type={}&principal={}",
            url_encode::component(&self.bucket),
            url_encode::component(&self.event_type),
            url_encode::component(&self.principal)
        )
    }

    fn matches(&self, event: &Event) -> bool {
        let filter = EventFilter {
            bucket: (!self.bucket.is_empty()).then(|| self.bucket.clone()),
            types: if self.event_type.is_empty() { Vec::new() } else { vec![self.event_type.clone()] },
        };
        filter.matches(event) && (self.principal.is_empty() || event.actor == self.principal)
    }
}

/// `/_console/feed?bucket=&type=&principal=`: the filters and the list the script fills.
pub(super) async fn page(console: &Console, visit: &Visit) -> Result<Response<Body>, Refusal> {
    console.allow(visit, "artifact-store:ReadEvents", None, "*", &visit.keys, None).await?;
    let filters = Filters::of(visit);
    let body = html! {
        h1 { "Live feed" }
        form.toolbar method="get" action={ (CONSOLE_PREFIX) "/feed" } {
            label { "Bucket" input name="bucket" value=(filters.bucket); }
            label { "Event type" input name="type" value=(filters.event_type) placeholder="v1.object.put"; }
            label { "Principal" input name="principal" value=(filters.principal) placeholder="access key"; }
            button type="submit" { "Filter" }
        }
        p {
            button #feed-pause type="button" aria-pressed="false" { "Pause" } " "
            span #feed-state.muted role="status" { "connecting" }
        }
        ul #feed aria-live="polite" data-stream={ (CONSOLE_PREFIX) "/feed/stream?" (filters.query()) } {}
        script src={ (CONSOLE_PREFIX) "/static/feed.js" } {}
    };
    Ok(html(StatusCode::OK, &layout::page("Live feed", Some(&visit.session), &body)))
}

/// `/_console/feed/stream`: the matching events from a little before now (or after
/// `Last-Event-ID` when the browser reconnects), then each as it commits.
pub(super) async fn stream(console: &Console, visit: &Visit, headers: &HeaderMap) -> Result<Response<Body>, Refusal> {
    console.allow(visit, "artifact-store:ReadEvents", None, "*", &visit.keys, None).await?;
    let filters = Filters::of(visit);
    let resumed: Option<u64> = headers.get("last-event-id").and_then(|id| id.to_str().ok()?.trim().parse().ok());
    // A browser resumes where its connection dropped, never further back than
    // [`MAX_RESUME`]: an old or forged id must not make one stream filter the whole log.
    let newest = console.registry.committed_sequence();
    let since = match resumed {
        Some(id) => id.max(newest.saturating_sub(MAX_RESUME)),
        None => newest.saturating_sub(BACKLOG),
    };
    let frames =
        console.registry.tail(since).try_filter(move |event| std::future::ready(filters.matches(event))).map(|event| {
            match event {
                Ok(event) => Ok(frame(&event)),
                Err(err) => {
                    tracing::error!(error = %err, "console feed read failed");
                    Err(std::io::Error::other("console feed read failed"))
                }
            }
        });
    let body = sse_body(frames, console.shutdown.clone(), revoked(console, visit));
    let mut response = Response::new(body);
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    Ok(response)
}

/// One event as the feed shows it: what happened, to what, by whom; not its payload.
fn frame(event: &Event) -> Bytes {
    let data = json!({
        "sequence": event.sequence,
        "created_at": event.created_at,
        "event_type": event.event_type,
        "subject_id": event.subject_id,
        "actor": event.actor,
        "hash": hex::encode(event.hash),
    });
    Bytes::from(format!("id: {}\ndata: {data}\n\n", event.sequence))
}

/// Resolves once the visitor's session has ended (its key disabled, deleted or given another
/// secret, or its time up) or it may no longer read the log, checked every [`REAUTHORIZE`].
fn revoked(console: &Console, visit: &Visit) -> impl Future<Output = ()> + Send + 'static {
    let (users, access) = (console.users.clone(), console.access.clone());
    let (claims, keys) = (visit.claims.clone(), visit.keys.clone());
    async move {
        loop {
            tokio::time::sleep(REAUTHORIZE).await;
            let session_holds = match users.get_secret_key(&claims.access_key).await {
                Ok(secret) => claims.clone().check(secret.expose(), SystemTime::now()).is_some(),
                Err(_) => false,
            };
            let access_key = Some(claims.access_key.as_str());
            if !session_holds
                || access.authorize(access_key, "artifact-store:ReadEvents", None, "*", &keys, None).await.is_err()
            {
                tracing::info!(code = "AccessDenied", "console feed closed: its session ended or lost the right");
                return;
            }
        }
    }
}
