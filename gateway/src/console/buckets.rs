//! The bucket list, and a bucket's keys as folders: decided as ListBuckets, ListObjects and
//! ListObjectVersions are, read through the same listings.

use http::{Response, StatusCode};
use maud::{Markup, html};
use registry::queries::{Bucket, BucketUsage, ListPage, ListQuery, VersionPage, VersionQuery};
use s3s::Body;

use super::layout::{self, bucket_href, object_href, page, size, time};
use super::{Console, Refusal, Visit, actions, html};
use crate::url_encode;

/// Entries (keys and folders) on one page of a bucket.
const PAGE_ENTRIES: usize = 200;

/// One row of the bucket list.
struct BucketRow {
    bucket: Bucket,
    /// What it holds, shown only to a user who may list it.
    usage: Option<BucketUsage>,
    /// Packages sealed in the bucket.
    packages: usize,
}

/// `/_console/buckets`: the signed-in account's buckets, as ListBuckets lists them; what
/// each holds only for a bucket the visitor may list.
pub(super) async fn list(console: &Console, visit: &Visit) -> Result<Response<Body>, Refusal> {
    console.allow(visit, "s3:ListAllMyBuckets", None, "*", &visit.keys, None).await?;
    let requester = console.access.requester(&visit.session.access_key).await.map_err(|err| {
        tracing::error!(code = err.code().as_str(), "console: the requester could not be named");
        Refusal::Failed(StatusCode::SERVICE_UNAVAILABLE)
    })?;
    // A signed key always names its account.
    let Some(requester) = requester else { return Err(Refusal::SignIn) };
    let (buckets, packages) =
        console.registry.read(move |reads| Ok((reads.account_buckets(&requester.account)?, reads.packages()?))).await?;
    let mut rows = Vec::with_capacity(buckets.len());
    for bucket in buckets {
        let resource = format!("arn:aws:s3:::{}", bucket.name);
        let listable = console.may(visit, "s3:ListBucket", Some(&bucket.name), &resource, None).await?;
        let name = bucket.name.clone();
        let usage =
            if listable { Some(console.registry.read(move |reads| reads.bucket_usage(&name)).await?) } else { None };
        let packages = packages.iter().filter(|p| p.sealed.bucket == bucket.name).count();
        rows.push(BucketRow { bucket, usage, packages });
    }
    let body = html! {
        h1 { "Buckets" }
        @if rows.is_empty() {
            p.muted { "No buckets yet." }
        } @else {
            div.scroll { table {
                thead { tr {
                    th { "Bucket" } th.num { "Objects" } th.num { "Size" } th.num.wide { "Versions" }
                    th { "Versioning" } th { "Object Lock" } th.wide { "Lifecycle" } th.wide { "Packages" }
                } }
                tbody { @for row in &rows { (bucket_row(row)) } }
            } }
        }
    };
    Ok(html(StatusCode::OK, &page("Buckets", Some(&visit.session), &body)))
}

fn bucket_row(row: &BucketRow) -> Markup {
    let bucket = &row.bucket;
    let versioning = match bucket.versioning {
        None => "off",
        Some(registry::event::v1::VersioningStatus::Enabled) => "enabled",
        Some(registry::event::v1::VersioningStatus::Suspended) => "suspended",
    };
    let lock = match (&bucket.default_retention, bucket.object_lock_enabled) {
        (Some(default), _) => format!("{} by default", lock_mode(default.mode)),
        (None, true) => "enabled".to_owned(),
        (None, false) => "off".to_owned(),
    };
    let rules = bucket.lifecycle.as_ref().and_then(|rules| rules.as_array().map(Vec::len)).unwrap_or(0);
    html! {
        tr {
            td { a href=(bucket_href(&bucket.name, "")) { (bucket.name) } }
            @match row.usage {
                Some(usage) => {
                    td.num { (usage.objects) }
                    td.num { (size(usage.bytes)) }
                    td.num.wide { (usage.versions) }
                }
                None => { td.num { "—" } td.num { "—" } td.num.wide { "—" } }
            }
            td { (versioning) }
            td { (lock) }
            td.wide { @if rules == 0 { "none" } @else { (rules) " rule" @if rules != 1 { "s" } } }
            td.wide { (row.packages) " sealed" }
        }
    }
}

/// The name AWS gives a lock mode.
pub(super) fn lock_mode(mode: registry::event::v1::LockMode) -> &'static str {
    match mode {
        registry::event::v1::LockMode::Governance => "GOVERNANCE",
        registry::event::v1::LockMode::Compliance => "COMPLIANCE",
    }
}

/// What one page of a bucket shows: current keys, or every version and delete marker.
enum Listing {
    Current(ListPage),
    Versions(VersionPage),
}

/// `/_console/buckets/{bucket}?prefix=&after=&versions=1`: the keys and folders under a
/// prefix, a page at a time, as ListObjects (or, with versions, ListObjectVersions) lists them.
pub(super) async fn browse(console: &Console, visit: &Visit, bucket: &str) -> Result<Response<Body>, Refusal> {
    let prefix = visit.query.get("prefix").cloned().unwrap_or_default();
    let after = visit.query.get("after").cloned().filter(|after| !after.is_empty());
    let after_version = visit.query.get("after_version").cloned().filter(|id| !id.is_empty());
    let versions = visit.query.get("versions").is_some_and(|v| v == "1");
    // A listing is decided with the condition keys S3 gives it, so a policy that allows a
    // prefix allows browsing it here.
    let mut keys = visit.keys.clone();
    keys.set("s3:prefix", prefix.as_str()).set("s3:delimiter", "/").set("s3:max-keys", PAGE_ENTRIES.to_string());
    let action = if versions { "s3:ListBucketVersions" } else { "s3:ListBucket" };
    console.allow(visit, action, Some(bucket), &format!("arn:aws:s3:::{bucket}"), &keys, None).await?;
    let (name, query_prefix, query_after) = (bucket.to_owned(), prefix.clone(), after.clone());
    let found = console
        .registry
        .read(move |reads| {
            let Some(bucket) = reads.bucket(&name)? else { return Ok(None) };
            let delimiter = Some("/".to_owned());
            let listing = if versions {
                Listing::Versions(reads.list_versions(&VersionQuery {
                    bucket: name,
                    prefix: query_prefix,
                    delimiter,
                    key_marker: query_after,
                    version_id_marker: after_version,
                    max_keys: PAGE_ENTRIES,
                })?)
            } else {
                Listing::Current(reads.list_objects(&ListQuery {
                    bucket: name,
                    prefix: query_prefix,
                    delimiter,
                    start_after: query_after,
                    max_keys: PAGE_ENTRIES,
                })?)
            };
            Ok(Some((bucket, listing)))
        })
        .await?;
    let Some((bucket, listing)) = found else {
        return Err(Refusal::NotFound(format!("There is no bucket called {bucket}.")));
    };
    let body = html! {
        h1 { (bucket.name) }
        (crumbs(&bucket.name, &prefix))
        form.toolbar method="get" action=(bucket_href(&bucket.name, "")) {
            label { "Keys starting with" input name="prefix" value=(prefix) size="40"; }
            label { "Versions"
                select name="versions" {
                    option value="0" selected[!versions] { "current only" }
                    option value="1" selected[versions] { "all, with delete markers" }
                }
            }
            button type="submit" { "Show" }
        }
        (upload_form(visit, &bucket.name, &prefix))
        @match &listing {
            Listing::Current(page) => (current_table(&bucket.name, &prefix, page)),
            Listing::Versions(page) => (versions_table(&bucket.name, &prefix, page)),
        }
        p {
            @if after.is_some() {
                a href=(page_href(&bucket.name, &prefix, versions, None)) { "First page" } " "
            }
            @if let Some((next, next_version)) = next_page(&listing) {
                a href=(page_href(&bucket.name, &prefix, versions, Some((next, next_version)))) { "Next page" }
            }
        }
    };
    Ok(html(StatusCode::OK, &page(&bucket.name, Some(&visit.session), &body)))
}

/// The upload form of a folder: the file goes up as the visitor's own S3 requests
/// (`actions.js`, `super::actions`), under `prefix` unless another key is given.
fn upload_form(visit: &Visit, bucket: &str, prefix: &str) -> Markup {
    html! {
        form.toolbar data-upload data-prefix=(prefix) data-part-size=(actions::PART_SIZE) method="post"
            action={ (super::CONSOLE_PREFIX) "/actions" } {
            input type="hidden" name="csrf" value=(visit.session.form_token);
            input type="hidden" name="bucket" value=(bucket);
            label { "Upload a file" input type="file" name="file" required; }
            label { "as key" input name="key" placeholder={ (prefix) "<file name>" } size="30"; }
            button type="submit" { "Upload" }
            progress #upload-progress max="100" value="0" hidden {}
        }
        p #action-status role="status" {}
        script src={ (super::CONSOLE_PREFIX) "/static/actions.js" } {}
    }
}

/// Where the page after this one starts: a key (and a version id), when there is one.
fn next_page(listing: &Listing) -> Option<(&str, Option<&str>)> {
    match listing {
        Listing::Current(page) if page.is_truncated => Some((page.last.as_deref()?, None)),
        Listing::Versions(page) if page.is_truncated => {
            Some((page.next_key_marker.as_deref()?, page.next_version_id_marker.as_deref()))
        }
        _ => None,
    }
}

fn page_href(bucket: &str, prefix: &str, versions: bool, after: Option<(&str, Option<&str>)>) -> String {
    let mut href = format!("{}?prefix={}", bucket_href(bucket, ""), url_encode::component(prefix));
    if versions {
        href.push_str("&versions=1");
    }
    if let Some((key, version)) = after {
        href = format!("{href}&after={}", url_encode::component(key));
        if let Some(version) = version {
            href = format!("{href}&after_version={}", url_encode::component(version));
        }
    }
    href
}

/// Buckets / bucket / each folder of `prefix`, each a link.
fn crumbs(bucket: &str, prefix: &str) -> Markup {
    let folders: Vec<(&str, &str)> = prefix
        .match_indices('/')
        .map(|(end, _)| {
            let start = prefix[..end].rfind('/').map_or(0, |slash| slash + 1);
            (&prefix[start..=end], &prefix[..=end])
        })
        .collect();
    html! {
        nav.crumbs aria-label="Folders" {
            a href={ (super::CONSOLE_PREFIX) "/buckets" } { "Buckets" } " / "
            a href=(bucket_href(bucket, "")) { (bucket) }
            @for (name, folder) in folders { " / " a href=(bucket_href(bucket, folder)) { (name) } }
        }
    }
}

fn current_table(bucket: &str, prefix: &str, page: &ListPage) -> Markup {
    html! {
        @if page.objects.is_empty() && page.common_prefixes.is_empty() {
            p.muted { "Nothing here." }
        } @else {
            div.scroll { table {
                thead { tr { th { "Name" } th.num { "Size" } th.wide { "Last modified" } th.wide { "BLAKE3" } } }
                tbody {
                    @for folder in &page.common_prefixes {
                        tr { td colspan="4" { a href=(bucket_href(bucket, folder)) { (shown(folder, prefix)) } } }
                    }
                    @for version in &page.objects {
                        tr {
                            td { a href=(object_href(bucket, &version.key, None)) { (shown(&version.key, prefix)) } }
                            td.num { (size(version.content.size)) }
                            td.wide { (time(version.created_at)) }
                            td.wide { (layout::short_hash(&version.content.blake3)) }
                        }
                    }
                }
            } }
        }
    }
}

fn versions_table(bucket: &str, prefix: &str, page: &VersionPage) -> Markup {
    html! {
        @if page.versions.is_empty() && page.common_prefixes.is_empty() {
            p.muted { "Nothing here." }
        } @else {
            div.scroll { table {
                thead { tr { th { "Name" } th { "Version" } th.num { "Size" } th.wide { "Last modified" } } }
                tbody {
                    @for folder in &page.common_prefixes {
                        tr { td colspan="4" { a href=(bucket_href(bucket, folder)) { (shown(folder, prefix)) } } }
                    }
                    @for version in &page.versions {
                        tr {
                            td { a href=(object_href(bucket, &version.key, None)) { (shown(&version.key, prefix)) } }
                            td {
                                a.mono href=(object_href(bucket, &version.key, Some(&version.version_id))) { (version.version_id) }
                                @if version.is_latest { " (current)" }
                            }
                            td.num { @if version.is_delete_marker { "delete marker" } @else { (size(version.content.size)) } }
                            td.wide { (time(version.created_at)) }
                        }
                    }
                }
            } }
        }
    }
}

/// A key or folder as shown under `prefix`: the part after it.
fn shown<'k>(name: &'k str, prefix: &str) -> &'k str {
    name.strip_prefix(prefix).filter(|rest| !rest.is_empty()).unwrap_or(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crumbs_link_every_folder_of_the_prefix() {
        let html = crumbs("b", "logs/2026/12/").into_string();
        for href in ["/_console/buckets/b?prefix=logs%2F\"", "prefix=logs%2F2026%2F\"", "prefix=logs%2F2026%2F12%2F\""]
        {
            assert!(html.contains(href), "{href} in {html}");
        }
    }

    #[test]
    fn a_page_link_carries_its_markers_encoded() {
        assert_eq!(
            page_href("b", "a b/", true, Some(("a b/k&1", Some("v=2")))),
            "/_console/buckets/b?prefix=a%20b%2F&versions=1&after=a%20b%2Fk%261&after_version=v%3D2"
        );
        assert_eq!(shown("logs/a.txt", "logs/"), "a.txt");
        assert_eq!(shown("logs/", "logs/"), "logs/");
    }
}
