//! One object version as the registry knows it: its record (digests, metadata, retention,
//! provenance), who has read it and how often, and the events about its key. Decided as
//! GetObject (GetObjectVersion for a named version) is.

use std::time::Duration;

use http::{Response, StatusCode};
use maud::{Markup, html};
use registry::Event;
use registry::queries::{ObjectVersion, RetrievalDay, VersionProvenance};
use s3s::Body;

use super::buckets::lock_mode;
use super::event::Standing;
use super::layout::{self, bar_chart, bucket_href, object_href, short_hash, size, time, time_left};
use super::{Console, Refusal, Visit, html, presign};
use crate::url_encode;

/// The newest events of a key its page lists.
const TIMELINE_EVENTS: usize = 200;
/// The newest versions of a key its page lists (the registry API pages through all of them).
const VERSIONS_SHOWN: usize = 100;
/// Days the chart of reads covers, up to today.
const CHART_DAYS: i64 = 30;
/// How long a download link stays valid.
const DOWNLOAD_LINK_LIFETIME: Duration = Duration::from_secs(300);
const DAY_MS: i64 = 86_400_000;

/// What the page of a key shows, read at once.
struct KeyRecord {
    /// The newest versions, up to one more than [`VERSIONS_SHOWN`] (to tell whether there are
    /// more), with the events that created them.
    versions: Vec<VersionProvenance>,
    /// The version the page is about: the current one, or the one named.
    shown: Option<VersionProvenance>,
    /// The newest events about the key, newest first, each with the version it is about as
    /// that stands now.
    events: Vec<(Event, Option<Standing>)>,
    /// How many events there are about the key in all.
    event_count: u64,
    /// Reads per day and reader.
    reads: Vec<RetrievalDay>,
    /// The package that seals the key, if one does.
    package: Option<String>,
}

/// Whether the page re-hashes the version's bytes before it is shown.
pub(super) enum Verify {
    /// Show the record only.
    No,
    /// Read the bytes back and compare their BLAKE3 with the recorded one (the form's
    /// "Verify" button).
    Now,
}

/// `/_console/objects/{bucket}/{key}?version=`: one version of a key, the current one unless
/// `version` names another.
pub(super) async fn page(
    console: &Console,
    visit: &Visit,
    bucket: &str,
    key: &str,
    verify: Verify,
) -> Result<Response<Body>, Refusal> {
    let version_id = visit.query.get("version").cloned();
    let action = if version_id.is_some() { "s3:GetObjectVersion" } else { "s3:GetObject" };
    let resource = format!("arn:aws:s3:::{bucket}/{key}");
    console.allow(visit, action, Some(bucket), &resource, &visit.keys, version_id.as_deref()).await?;
    let (b, k, named) = (bucket.to_owned(), key.to_owned(), version_id.clone());
    let record = console
        .registry
        .read_retrievals(move |reads| {
            // Events and records before the bucket's creation belong to a deleted bucket of
            // the same name, which may have been another account's.
            let born = reads.bucket(&b)?.map_or(0, |bucket| bucket.created_seq);
            let (sequences, event_count) =
                reads.recent_subject_sequences(&format!("{b}/{k}"), born, TIMELINE_EVENTS)?;
            let mut events = Vec::with_capacity(sequences.len());
            for sequence in sequences {
                if let Some(event) = reads.event(sequence)? {
                    let standing = super::event::standing(reads, &event)?;
                    events.push((event, standing));
                }
            }
            let versions = reads.key_provenance(&b, &k, u64::MAX, VERSIONS_SHOWN + 1)?;
            let shown = match &named {
                // A named version may be older than the versions listed.
                Some(id) => match reads.version(&b, &k, id)? {
                    Some(version) => reads.key_provenance(&b, &k, version.sequence + 1, 1)?.pop(),
                    None => None,
                },
                None => versions.iter().find(|v| v.version.is_latest).cloned(),
            };
            Ok(KeyRecord {
                versions,
                shown,
                events,
                event_count,
                reads: reads.retrieval_days(&b, &k, born)?,
                package: reads.sealing(&b, &k)?,
            })
        })
        .await?;
    // The other versions are listed as S3 would let the visitor read them: each as a GET of
    // that version, with its own tags and ACL.
    let mut listed = Vec::with_capacity(record.versions.len().min(VERSIONS_SHOWN));
    for version in record.versions.iter().take(VERSIONS_SHOWN) {
        let id = Some(version.version.version_id.as_str());
        if version.version.is_latest || console.may(visit, "s3:GetObjectVersion", Some(bucket), &resource, id).await? {
            listed.push(version.clone());
        }
    }
    let Some(shown) = &record.shown else {
        return Err(Refusal::NotFound(format!("There is no such version of {key} in {bucket}.")));
    };
    // The key's history and reads span all its versions: whoever may read the log sees them
    // whole; anyone else sees the events an event page would show them (about a version they
    // may read), and the reads only while they may read every version there is.
    let log_reader = console.may(visit, "artifact-store:ReadEvents", None, "*", None).await?;
    let every_version_readable = record.versions.len() <= VERSIONS_SHOWN && listed.len() == record.versions.len();
    let mut history = Vec::with_capacity(record.events.len());
    let mut decided: Vec<(&Standing, bool)> = Vec::new();
    for (event, standing) in &record.events {
        let readable = match standing {
            _ if log_reader => true,
            None => false,
            // Events of one version share its decision.
            Some(standing) => match decided.iter().find(|(seen, _)| *seen == standing) {
                Some((_, readable)) => *readable,
                None => {
                    let readable = super::event::readable_as_object(console, visit, event, Some(standing)).await?;
                    decided.push((standing, readable));
                    readable
                }
            },
        };
        if readable {
            history.push(event);
        }
    }
    let reads_shown = log_reader || every_version_readable;
    let verdict = match verify {
        Verify::Now if !shown.version.is_delete_marker => {
            let _running = console.verifications.try_acquire().map_err(|_| Refusal::Busy)?;
            Some(verified(console, &shown.version).await)
        }
        _ => None,
    };
    let download = (!shown.version.is_delete_marker)
        .then(|| presigned_get(console, visit, bucket, key, &shown.version.version_id))
        .flatten();
    let body = html! {
        h1 { (key) }
        (crumbs(bucket, key))
        @if let Some(verdict) = verdict { (verdict) }
        (facts(shown, record.package.as_deref(), download.as_deref()))
        @if !shown.version.is_delete_marker {
            form method="post" {
                input type="hidden" name="csrf" value=(visit.session.form_token);
                input type="hidden" name="action" value="verify";
                button type="submit" { "Verify this object" }
                span.muted { " reads its bytes back and compares their BLAKE3 with the recorded one" }
            }
        }
        (changes(visit, &shown.version))
        h2 { "Versions" }
        @if record.versions.len() > VERSIONS_SHOWN {
            p.muted {
                "The newest " (VERSIONS_SHOWN) " versions of this key. The registry API ("
                code { "/_registry/objects/" (bucket) "/" (key) } ") pages through all of them."
            }
        }
        (versions(bucket, key, &listed, &shown.version.version_id))
        h2 { "Reads" }
        @if reads_shown {
            (reads(&record.reads))
        } @else {
            p.muted { "Shown to those who may read every version of this key." }
        }
        h2 { "History" }
        @if !log_reader {
            p.muted { "The events about the versions you may read." }
        } @else if record.event_count > record.events.len() as u64 {
            p.muted {
                "The newest " (record.events.len()) " of "
                @if record.event_count >= registry::queries::MAX_SUBJECT_COUNT { "more than " }
                (record.event_count) " events about this key."
            }
        }
        (timeline(&history))
    };
    Ok(html(StatusCode::OK, &layout::page(key, Some(&visit.session), &body)))
}

/// Reads the version's bytes back and says whether they hash to the recorded BLAKE3.
async fn verified(console: &Console, version: &ObjectVersion) -> Markup {
    let rehashed = crate::rehash::blake3_of(&console.stored, &version.content.parts, false, |locator| {
        let registry = console.registry.clone();
        async move { Ok(registry.read(move |reads| reads.inline_bytes(&locator)).await?) }
    })
    .await;
    let recorded = &version.content.blake3;
    match rehashed {
        Ok((digest, _)) if digest == *recorded => html! {
            p.notice.good role="status" {
                "Verified: its " (version.content.size) " bytes hash to the recorded BLAKE3."
            }
        },
        Ok((digest, _)) => {
            tracing::error!(bucket = %version.bucket, key = %version.key, version = %version.version_id,
                recorded = %recorded, read = %digest, "console verify: the bytes differ from their record");
            html! {
                p.notice.bad role="alert" {
                    "FAILED: its bytes hash to " code { (digest) } ", the registry recorded " code { (recorded) } "."
                }
            }
        }
        Err(err) => {
            // The reason (a backend's error) goes to the log, not to the page.
            tracing::error!(bucket = %version.bucket, key = %version.key, version = %version.version_id,
                error = %format!("{err:#}"), "console verify: the bytes could not be read");
            html! { p.notice.bad role="alert" { "FAILED: its bytes could not be read; the gateway's log says why." } }
        }
    }
}

/// The forms of the changes a version takes, each sent as an S3 request in the visitor's name
/// (`actions.js`, `super::actions`).
fn changes(visit: &Visit, version: &ObjectVersion) -> Markup {
    let object = html! {
        input type="hidden" name="csrf" value=(visit.session.form_token);
        input type="hidden" name="bucket" value=(version.bucket);
        input type="hidden" name="key" value=(version.key);
        input type="hidden" name="version" value=(version.version_id);
    };
    let action = format!("{}/actions", super::CONSOLE_PREFIX);
    let tags: Vec<String> = version.content.tags.iter().map(|(name, value)| format!("{name}={value}")).collect();
    html! {
        h2 { "Change" }
        p.muted { "Each change is an S3 request in your name: decided by your policies and Object Lock, and recorded, as from any S3 client." }
        @if !version.is_delete_marker {
            form.toolbar data-change method="post" action=(action) {
                (object)
                input type="hidden" name="action" value="legal-hold";
                input type="hidden" name="status" value=(if version.legal_hold { "OFF" } else { "ON" });
                button type="submit" { "Set legal hold " (if version.legal_hold { "OFF" } else { "ON" }) }
            }
            form.toolbar data-change method="post" action=(action) {
                (object)
                input type="hidden" name="action" value="retention";
                label { "Mode" select name="mode" { option { "GOVERNANCE" } option { "COMPLIANCE" } } }
                label { "Retain until" input type="date" name="until" required; }
                label { input type="checkbox" name="bypass"; " bypass governance" }
                button type="submit" { "Set retention" }
            }
            form.toolbar data-change method="post" action=(action) {
                (object)
                input type="hidden" name="action" value="tags";
                label { "Tags, one name=value a line" textarea name="tags" rows="3" cols="40" { (tags.join("\n")) } }
                button type="submit" { "Save tags" }
            }
        }
        form.toolbar data-change method="post" action=(action)
            data-confirm="Delete this version for good?" data-then=(bucket_href(&version.bucket, folder_of(&version.key))) {
            (object)
            input type="hidden" name="action" value="delete";
            label { input type="checkbox" name="bypass"; " bypass governance" }
            button type="submit" { "Delete this version" }
        }
        p #action-status role="status" {}
        script src={ (super::CONSOLE_PREFIX) "/static/actions.js" } {}
    }
}

/// The folder a key is in: its part up to its last `/`.
fn folder_of(key: &str) -> &str {
    key.rfind('/').map_or("", |slash| &key[..=slash])
}

fn crumbs(bucket: &str, key: &str) -> Markup {
    let folder = folder_of(key);
    html! {
        nav.crumbs aria-label="Folders" {
            a href={ (super::CONSOLE_PREFIX) "/buckets" } { "Buckets" } " / "
            a href=(bucket_href(bucket, "")) { (bucket) }
            @if !folder.is_empty() { " / " a href=(bucket_href(bucket, folder)) { (folder) } }
        }
    }
}

fn facts(shown: &VersionProvenance, package: Option<&str>, download: Option<&str>) -> Markup {
    let version = &shown.version;
    let content = &version.content;
    let now = crate::clock::now_ms();
    html! {
        @if version.is_delete_marker { p.notice { "This version is a delete marker." } }
        dl.facts {
            dt { "Version" } dd.mono { (version.version_id) @if version.is_latest { " (current)" } }
            dt { "Created" } dd { (time(version.created_at)) }
            dt { "Uploaded by" } dd {
                span.mono { (version.actor) }
                @if let Some(signer) = &shown.signer {
                    " (user " (signer.user) " of account " (signer.account) ")"
                }
                @if let Some(addr) = &shown.event.context.source_addr { " from " (addr) }
            }
            dt { "Recorded by" } dd {
                a href={ (super::CONSOLE_PREFIX) "/events/" (shown.event.sequence) } { "event " (shown.event.sequence) }
                " " (shown.event.event_type) " " (short_hash(&hex::encode(shown.event.hash)))
            }
            @if !version.is_delete_marker {
                dt { "Size" } dd { (size(content.size)) " (" (content.size) " bytes)" }
                dt { "Content type" } dd { (content.content_type.as_deref().unwrap_or("—")) }
                dt { "ETag" } dd.mono { (content.etag) }
                dt { "BLAKE3" } dd.mono { (content.blake3) }
                @for (algorithm, value) in &content.checksums {
                    dt { (algorithm) } dd.mono { (value) @if let Some(kind) = &content.checksum_type { " (" (kind) ")" } }
                }
                @for (name, value) in &content.headers { dt { (name) } dd { (value) } }
                @for (name, value) in &content.user_metadata { dt { "x-amz-meta-" (name) } dd { (value) } }
                dt { "Tags" } dd {
                    @if content.tags.is_empty() { "none" }
                    @for (name, value) in &content.tags { code { (name) "=" (value) } " " }
                }
            }
            dt { "Retention" } dd {
                @match &version.retention {
                    Some(retention) => {
                        (lock_mode(retention.mode)) " until " (time(retention.retain_until))
                        " (" (time_left(retention.retain_until, now)) ")"
                    }
                    None => "none",
                }
            }
            dt { "Legal hold" } dd { @if version.legal_hold { "ON" } @else { "off" } }
            dt { "Package" } dd { @match package { Some(name) => { "sealed in " code { (name) } } None => "none" } }
        }
        @if let Some(link) = download {
            p { a href=(link) download { "Download" } span.muted { " (a link valid for 5 minutes)" } }
        }
    }
}

fn versions(bucket: &str, key: &str, all: &[VersionProvenance], shown: &str) -> Markup {
    html! {
        div.scroll { table {
            thead { tr { th { "Version" } th.num { "Size" } th.wide { "Created" } th.wide { "By" } } }
            tbody { @for v in all {
                tr {
                    td {
                        @if v.version.version_id == shown { strong.mono { (v.version.version_id) } }
                        @else { a.mono href=(object_href(bucket, key, Some(&v.version.version_id))) { (v.version.version_id) } }
                        @if v.version.is_latest { " (current)" }
                    }
                    td.num { @if v.version.is_delete_marker { "delete marker" } @else { (size(v.version.content.size)) } }
                    td.wide { (time(v.version.created_at)) }
                    td.wide.mono { (v.version.actor) }
                }
            } }
        } }
    }
}

/// How often the key was read: in all, by whom, and per day over the last [`CHART_DAYS`].
fn reads(days: &[RetrievalDay]) -> Markup {
    let total: u64 = days.iter().map(|d| d.reads).sum();
    let mut by_reader: Vec<(&str, u64)> = Vec::new();
    for day in days {
        match by_reader.iter_mut().find(|(actor, _)| *actor == day.actor) {
            Some((_, reads)) => *reads += day.reads,
            None => by_reader.push((&day.actor, day.reads)),
        }
    }
    by_reader.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let today = crate::clock::now_ms().div_euclid(DAY_MS) * DAY_MS;
    let bars: Vec<(String, f64)> = (0..CHART_DAYS)
        .rev()
        .map(|ago| {
            let day = today - ago * DAY_MS;
            let reads: u64 = days.iter().filter(|d| d.day_ms == day).map(|d| d.reads).sum();
            (time(day)[..10].to_owned(), reads as f64)
        })
        .collect();
    html! {
        @if total == 0 {
            p.muted { "Never read." }
        } @else {
            p { "Read " (total) " time" @if total != 1 { "s" } " (GET and HEAD), by " (by_reader.len()) " reader"
                @if by_reader.len() != 1 { "s" } "." }
            (bar_chart("Reads per day over the last 30 days", &bars))
            div.scroll { table {
                thead { tr { th { "Reader" } th.num { "Reads" } } }
                tbody { @for (actor, count) in &by_reader { tr { td.mono { (actor) } td.num { (count) } } } }
            } }
        }
    }
}

fn timeline(events: &[&Event]) -> Markup {
    html! {
        div.scroll { table {
            thead { tr { th.num { "Event" } th { "When" } th { "What" } th.wide { "By" } th.wide { "Hash" } } }
            tbody { @for event in events {
                tr {
                    td.num { a href={ (super::CONSOLE_PREFIX) "/events/" (event.sequence) } { (event.sequence) } }
                    td { (time(event.created_at)) }
                    td { (event.event_type) }
                    td.wide.mono { (event.actor) }
                    td.wide { (short_hash(&hex::encode(event.hash))) }
                }
            } }
        } }
    }
}

/// A presigned GET of one version, valid for [`DOWNLOAD_LINK_LIFETIME`].
fn presigned_get(console: &Console, visit: &Visit, bucket: &str, key: &str, version_id: &str) -> Option<String> {
    let target = format!(
        "/{}/{}?versionId={}",
        url_encode::component(bucket),
        url_encode::path(key),
        url_encode::component(version_id)
    );
    presign::url(visit, &console.region, "GET", &target, &[], DOWNLOAD_LINK_LIFETIME)
}
