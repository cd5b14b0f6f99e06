//! One event of the log, whole: its type, subject, principal, request, hashes and payload.

use http::{Response, StatusCode};
use maud::html;
use s3s::Body;

use super::layout::{self, object_href, time};
use registry::queries::Reads;

use super::{CONSOLE_PREFIX, Console, Refusal, Visit, html};

/// `/_console/events/{sequence}`: one event, whole. An event about an object version that
/// still stands is the version's to show, decided as a read of it (GetObject, or
/// GetObjectVersion for a version no longer current, with the tags of that version); any event
/// (those that name no version included) is shown to whoever may read the log
/// (`artifact-store:ReadEvents`).
pub(super) async fn page(console: &Console, visit: &Visit, sequence: u64) -> Result<Response<Body>, Refusal> {
    let found = console
        .registry
        .read(move |reads| {
            let Some(event) = reads.event(sequence)? else { return Ok(None) };
            let standing = standing(reads, &event)?;
            Ok(Some((event, standing)))
        })
        .await?;
    // Refused and missing answer alike: a refusal must not tell what the event is about.
    let not_found = || Refusal::NotFound(format!("The log has no event {sequence} for you."));
    let Some((event, standing)) = found else { return Err(not_found()) };
    // Whoever may read the whole log may read any event of it.
    if !readable_as_object(console, visit, &event, standing.as_ref()).await?
        && !console.may(visit, "artifact-store:ReadEvents", None, "*", None).await?
    {
        tracing::info!(code = "AccessDenied", sequence, "console event page refused");
        return Err(not_found());
    }
    let payload = String::from_utf8_lossy(&event.payload);
    let pretty = serde_json::from_str::<serde_json::Value>(&payload)
        .ok()
        .and_then(|value| serde_json::to_string_pretty(&value).ok())
        .unwrap_or_else(|| payload.into_owned());
    let context = &event.context;
    let body = html! {
        h1 { "Event " (event.sequence) }
        dl.facts {
            dt { "Type" } dd { (event.event_type) }
            dt { "When" } dd { (time(event.created_at)) }
            dt { "Subject" } dd {
                @if let Some((bucket, key)) = event.subject_id.split_once('/').filter(|_| event.subject_kind == "object") {
                    a href=(object_href(bucket, key, None)) { (event.subject_id) }
                } @else { (event.subject_kind) " " (event.subject_id) }
            }
            dt { "By" } dd.mono { (event.actor) }
            @if let Some(addr) = &context.source_addr { dt { "From" } dd { (addr) } }
            @if let Some(agent) = &context.user_agent { dt { "User agent" } dd { (agent) } }
            @if let Some(id) = &context.request_id { dt { "Request" } dd.mono { (id) } }
            dt { "Hash" } dd.mono { (hex::encode(event.hash)) }
            dt { "Previous hash" } dd.mono {
                @if event.sequence > 1 {
                    a href={ (CONSOLE_PREFIX) "/events/" (event.sequence - 1) } { (hex::encode(event.prev_hash)) }
                } @else { (hex::encode(event.prev_hash)) }
            }
            dt { "Payload BLAKE3" } dd.mono { (hex::encode(event.payload_digest)) }
        }
        h2 { "Payload" }
        pre.mono.scroll { (pretty) }
    };
    Ok(html(StatusCode::OK, &layout::page(&format!("Event {sequence}"), Some(&visit.session), &body)))
}

/// The object version `event` is about, as it stands now: `None` for an event of no object, of
/// a deleted bucket of the same name, that names no version, or whose version was deleted or
/// replaced since.
///
/// # Errors
/// The registry's.
pub(super) fn standing(reads: &dyn Reads, event: &registry::Event) -> registry::Result<Option<Standing>> {
    let Some((bucket, key)) = object_of(event) else { return Ok(None) };
    // An event of a deleted bucket of the same name is not the current bucket's.
    let born = reads.bucket(bucket)?.map_or(u64::MAX, |b| b.created_seq);
    if event.sequence < born {
        return Ok(None);
    }
    // A version deleted since, or a `null` version replaced since, no longer has the tags and
    // ACL that decided who could read what the event tells of it; an event that names no
    // version (an upload's start and parts, whose payload carries the metadata and tags of a
    // version to come) has none to be decided by.
    let Some(id) = version_named(event) else { return Ok(None) };
    Ok(reads
        .version(bucket, key, &id)?
        .filter(|version| version.sequence <= event.sequence)
        .map(|version| Standing { version_id: id, current: version.is_latest }))
}

/// Whether `visit` may read `event` as a read of the version it is about (`standing`): GetObject,
/// or GetObjectVersion for a version no longer current, with that version's tags and ACL.
pub(super) async fn readable_as_object(
    console: &Console,
    visit: &Visit,
    event: &registry::Event,
    standing: Option<&Standing>,
) -> Result<bool, Refusal> {
    let (Some((bucket, key)), Some(standing)) = (object_of(event), standing) else { return Ok(false) };
    let resource = format!("arn:aws:s3:::{bucket}/{key}");
    let action = if standing.current { "s3:GetObject" } else { "s3:GetObjectVersion" };
    console.may(visit, action, Some(bucket), &resource, Some(&standing.version_id)).await
}

/// The object version an event is about, as it stands now.
#[derive(PartialEq, Eq)]
pub(super) struct Standing {
    /// The version the event names.
    version_id: String,
    /// Whether it is the key's current version.
    current: bool,
}

/// The bucket and key an object event is about.
fn object_of(event: &registry::Event) -> Option<(&str, &str)> {
    (event.subject_kind == "object").then(|| event.subject_id.split_once('/')).flatten()
}

/// The version an object event names (`version_id`, or its `version`'s), if any.
fn version_named(event: &registry::Event) -> Option<String> {
    let payload: serde_json::Value = serde_json::from_slice(&event.payload).ok()?;
    let id = payload.get("version_id").or_else(|| payload.get("version")?.get("version_id"))?;
    id.as_str().map(str::to_owned)
}
