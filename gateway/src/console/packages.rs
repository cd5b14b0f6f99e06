//! Sealed packages: the list, and one package with its seal, its manifest's members and a
//! verification. A package is shown to whoever may read its manifest (GetObject on the
//! sealed version), as its members are listed there.

use http::{Response, StatusCode};
use maud::{Markup, html};
use registry::packages::Package;
use s3s::Body;

use super::layout::{self, bucket_href, object_href, short_hash, size, time};
use super::{CONSOLE_PREFIX, Console, Refusal, Visit, html};
use crate::package_check;
use crate::url_encode;

/// Whether the package page re-hashes every member's bytes.
pub(super) enum Verify {
    /// The seal and each member's record only.
    Records,
    /// Also read every member's bytes back (the form's button).
    Bytes,
}

/// Members listed on a package's page (all are checked).
const SHOWN_MEMBERS: usize = 1000;

fn manifest_resource(package: &Package) -> String {
    format!("arn:aws:s3:::{}/{}", package.sealed.bucket, package.sealed.manifest_key)
}

fn package_href(name: &str) -> String {
    format!("{CONSOLE_PREFIX}/packages/{}", url_encode::component(name))
}

/// `/_console/packages`: the packages whose manifests the visitor may read.
pub(super) async fn list(console: &Console, visit: &Visit) -> Result<Response<Body>, Refusal> {
    let all = console.registry.read(|reads| reads.packages()).await?;
    let mut shown = Vec::new();
    for package in all {
        let bucket = package.sealed.bucket.clone();
        let resource = manifest_resource(&package);
        let version = Some(package.sealed.manifest_version_id.as_str());
        if console.may(visit, "s3:GetObject", Some(&bucket), &resource, version).await? {
            shown.push(package);
        }
    }
    let body = html! {
        h1 { "Packages" }
        @if shown.is_empty() {
            p.muted { "No sealed package you may read." }
        } @else {
            div.scroll { table {
                thead { tr {
                    th { "Package" } th { "Prefix" } th.num { "Members" } th.num { "Size" }
                    th.wide { "Sealed" } th.wide { "Manifest BLAKE3" }
                } }
                tbody { @for package in &shown {
                    @let sealed = &package.sealed;
                    tr {
                        td { a href=(package_href(&sealed.name)) { (sealed.name) } }
                        td { a href=(bucket_href(&sealed.bucket, &sealed.prefix)) { (sealed.bucket) "/" (sealed.prefix) } }
                        td.num { (sealed.members) }
                        td.num { (size(sealed.bytes)) }
                        td.wide { (time(package.sealed_at)) }
                        td.wide { (short_hash(&sealed.manifest_blake3)) }
                    }
                } }
            } }
        }
    };
    Ok(html(StatusCode::OK, &layout::page("Packages", Some(&visit.session), &body)))
}

/// `/_console/packages/{name}`: the seal, the manifest's members against the registry, and
/// with [`Verify::Bytes`] against their bytes.
pub(super) async fn page(
    console: &Console,
    visit: &Visit,
    name: &str,
    verify: Verify,
) -> Result<Response<Body>, Refusal> {
    let wanted = name.to_owned();
    let found = console
        .registry
        .read(move |reads| {
            let Some(package) = reads.package(&wanted)? else { return Ok(None) };
            let sealed = &package.sealed;
            let seal = reads.event(package.sealed_seq)?;
            let manifest = reads.version(&sealed.bucket, &sealed.manifest_key, &sealed.manifest_version_id)?;
            Ok(Some((package, seal, manifest.map(|v| v.content.parts))))
        })
        .await?;
    let not_found = || Refusal::NotFound(format!("There is no package {name} you may read."));
    let Some((package, seal, manifest_parts)) = found else { return Err(not_found()) };
    let bucket = package.sealed.bucket.clone();
    let version = Some(package.sealed.manifest_version_id.as_str());
    if !console.may(visit, "s3:GetObject", Some(&bucket), &manifest_resource(&package), version).await? {
        return Err(not_found());
    }
    // Before any byte is read: a verification reads every member.
    let _running = match verify {
        Verify::Bytes => Some(console.verifications.try_acquire().map_err(|_| Refusal::Busy)?),
        Verify::Records => None,
    };
    let mut problems = Vec::new();
    let recorded = package_check::sealed_digest(seal.as_ref(), &package).unwrap_or_else(|err| {
        problems.push(err.to_string());
        String::new()
    });
    let inline = |locator: String| {
        let registry = console.registry.clone();
        async move { Ok(registry.read(move |reads| reads.inline_bytes(&locator)).await?) }
    };
    let (manifest, manifest_problems) = match package_check::manifest(
        &console.stored,
        &package,
        &recorded,
        manifest_parts.as_deref(),
        inline,
    )
    .await
    {
        Ok(checked) => checked,
        Err(err) => {
            tracing::error!(package = %name, error = %format!("{err:#}"), "console: the manifest could not be read");
            (None, vec!["the manifest could not be read; the gateway's log says why".to_owned()])
        }
    };
    problems.extend(manifest_problems);
    let members = manifest.map(|manifest| manifest.members).unwrap_or_default();
    let wanted: Vec<(String, String)> = members.iter().map(|m| (m.key.clone(), m.version_id.clone())).collect();
    let in_bucket = bucket.clone();
    let versions = console
        .registry
        .read(move |reads| {
            wanted.iter().map(|(key, id)| reads.version(&in_bucket, key, id)).collect::<Result<Vec<_>, _>>()
        })
        .await?;
    let rehash = matches!(verify, Verify::Bytes);
    let mut rows = Vec::with_capacity(members.len());
    for (member, version) in members.iter().zip(&versions) {
        let checked = package_check::member(&console.stored, &bucket, member, version.as_ref(), rehash, inline).await;
        rows.push((member, checked.problems.is_empty()));
        problems.extend(checked.problems);
    }
    let body = html! {
        h1 { "Package " (package.sealed.name) }
        @if problems.is_empty() {
            p.notice.good role="status" {
                @if rehash { "Verified: the manifest is the sealed one, and every member's bytes hash to its BLAKE3." }
                @else { "The manifest is the sealed one, and every member is still the version it names." }
            }
        } @else {
            div.notice.bad role="alert" { p { "FAILED:" } ul { @for problem in &problems { li { (problem) } } } }
        }
        (facts(&package))
        form method="post" {
            input type="hidden" name="csrf" value=(visit.session.form_token);
            input type="hidden" name="action" value="verify";
            button type="submit" { "Verify every member's bytes" }
        }
        h2 { "Members" }
        @if rows.len() > SHOWN_MEMBERS {
            p.muted { "The first " (SHOWN_MEMBERS) " of " (rows.len()) " members; every one was checked." }
        }
        div.scroll { table {
            thead { tr { th { "Key" } th.num { "Size" } th.wide { "BLAKE3" } th { "Holds" } } }
            tbody { @for (member, holds) in rows.iter().take(SHOWN_MEMBERS) {
                tr {
                    td { a href=(object_href(&bucket, &member.key, Some(&member.version_id))) { (member.key) } }
                    td.num { (size(member.size)) }
                    td.wide { (short_hash(&member.blake3)) }
                    td { @if *holds { span.good { "yes" } } @else { span.bad { "no" } } }
                }
            } }
        } }
    };
    Ok(html(StatusCode::OK, &layout::page(&package.sealed.name, Some(&visit.session), &body)))
}

fn facts(package: &Package) -> Markup {
    let sealed = &package.sealed;
    html! {
        dl.facts {
            dt { "Prefix" } dd { a href=(bucket_href(&sealed.bucket, &sealed.prefix)) { (sealed.bucket) "/" (sealed.prefix) } }
            dt { "Sealed" } dd {
                (time(package.sealed_at)) " by " span.mono { (package.actor) } ", "
                a href={ (CONSOLE_PREFIX) "/events/" (package.sealed_seq) } { "event " (package.sealed_seq) }
            }
            dt { "Members" } dd { (sealed.members) ", " (size(sealed.bytes)) }
            dt { "Manifest" } dd {
                a href=(object_href(&sealed.bucket, &sealed.manifest_key, Some(&sealed.manifest_version_id))) { (sealed.manifest_key) }
            }
            dt { "Manifest BLAKE3" } dd.mono { (sealed.manifest_blake3) }
        }
    }
}
