//! The console's page shell and the small formatting every page shares: sizes, times, links
//! to buckets and objects. Pages are `maud` templates, which escape every value they insert,
//! so a key, a tag or a metadata value is always shown as text.

use maud::{DOCTYPE, Markup, html};

use super::CONSOLE_PREFIX;
use super::session::Session;
use crate::url_encode;

/// The style sheet, served at `/_console/static/console.css`.
pub const STYLESHEET: &str = include_str!("assets/console.css");

/// The live feed's script, served at `/_console/static/feed.js`.
pub const FEED_SCRIPT: &str = include_str!("assets/feed.js");

/// The changes' script, served at `/_console/static/actions.js`.
pub const ACTIONS_SCRIPT: &str = include_str!("assets/actions.js");

/// A whole page: the header with the signed-in user and the navigation, then `body`.
pub fn page(title: &str, session: Option<&Session>, body: &Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · artifact-store" }
                link rel="stylesheet" href={ (CONSOLE_PREFIX) "/static/console.css" };
            }
            body {
                header {
                    span.brand { "artifact-store" }
                    @if let Some(session) = session {
                        nav aria-label="Console" {
                            a href={ (CONSOLE_PREFIX) "/buckets" } { "Buckets" }
                            a href={ (CONSOLE_PREFIX) "/packages" } { "Packages" }
                            a href={ (CONSOLE_PREFIX) "/feed" } { "Live feed" }
                            a href={ (CONSOLE_PREFIX) "/operations" } { "Operations" }
                        }
                        span.mono title="Signed in with this access key" { (session.access_key) }
                        form method="post" action={ (CONSOLE_PREFIX) "/sign-out" } {
                            input type="hidden" name="csrf" value=(session.form_token);
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                main { (body) }
            }
        }
    }
}

/// The sign-in page, with `problem` above the form after a failed attempt.
pub fn sign_in(problem: Option<&str>) -> Markup {
    page(
        "Sign in",
        None,
        &html! {
            form.signin method="post" action={ (CONSOLE_PREFIX) "/sign-in" } {
                h1 { "Sign in" }
                @if let Some(problem) = problem {
                    p.notice role="alert" { (problem) }
                }
                label { "Access key" input name="access_key" autocomplete="username" required autofocus; }
                label { "Secret key" input type="password" name="secret_key" autocomplete="current-password" required; }
                button type="submit" { "Sign in" }
                p.muted { "The same credentials as for the S3 API; you see what your policies let you read." }
            }
        },
    )
}

/// A page that says why nothing else could be shown.
pub fn problem(session: Option<&Session>, title: &str, message: &str) -> Markup {
    page(title, session, &html! { h1 { (title) } p.notice { (message) } })
}

/// `bytes` in the largest binary unit that keeps it at or above 1.
pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// A time of the registry as RFC 3339 to the second, UTC, as the CLI prints it.
pub use crate::clock::rfc3339_seconds as time;

/// How long from `now_ms` until `until_ms`, roughly: "3 days 4 h", "25 min", or "expired".
pub fn time_left(until_ms: i64, now_ms: i64) -> String {
    if until_ms <= now_ms {
        return "expired".to_owned();
    }
    let seconds = (until_ms - now_ms) / 1000;
    let (days, hours, minutes) = (seconds / 86_400, seconds % 86_400 / 3600, seconds % 3600 / 60);
    match (days, hours) {
        (0, 0) => format!("{} min", minutes.max(1)),
        (0, h) => format!("{h} h {minutes} min"),
        (d, h) => format!("{d} day{} {h} h", if d == 1 { "" } else { "s" }),
    }
}

/// The console's page of a bucket, at `prefix`.
pub fn bucket_href(bucket: &str, prefix: &str) -> String {
    let mut href = format!("{CONSOLE_PREFIX}/buckets/{}", url_encode::component(bucket));
    if !prefix.is_empty() {
        href = format!("{href}?prefix={}", url_encode::component(prefix));
    }
    href
}

/// The console's page of an object, of one version when `version_id` is given. (The key's
/// `/` stay: no key has `.` or `..` segments, which the gateway refuses, so the browser never
/// resolves a link to another page.)
pub fn object_href(bucket: &str, key: &str, version_id: Option<&str>) -> String {
    let href = format!("{CONSOLE_PREFIX}/objects/{}/{}", url_encode::component(bucket), url_encode::path(key));
    match version_id {
        Some(id) => format!("{href}?version={}", url_encode::component(id)),
        None => href,
    }
}

/// A short form of a 64-digit hash, with the whole of it on hover.
pub fn short_hash(hash: &str) -> Markup {
    html! { code title=(hash) { (hash.get(..12).unwrap_or(hash)) "…" } }
}

/// A bar chart (SVG, no script) of `bars`, each a label and a value, oldest first.
pub fn bar_chart(label: &str, bars: &[(String, f64)]) -> Markup {
    let max = bars.iter().map(|(_, v)| *v).fold(0.0, f64::max);
    let max = if max > 0.0 { max } else { 1.0 };
    let width = 600.0 / bars.len().max(1) as f64;
    html! {
        svg.chart viewBox="0 0 600 100" preserveAspectRatio="none" role="img" aria-label=(label) {
            line x1="0" y1="99.5" x2="600" y2="99.5" {}
            @for (i, (at, value)) in bars.iter().enumerate() {
                @let height = 96.0 * value / max;
                rect x=(format!("{:.1}", i as f64 * width + 1.0)) y=(format!("{:.1}", 99.0 - height))
                    width=(format!("{:.1}", (width - 2.0).max(1.0))) height=(format!("{height:.1}")) {
                    title { (at) ": " (if value.fract() == 0.0 { format!("{value}") } else { format!("{value:.2}") }) }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_escaped_in_pages() {
        let page = problem(None, "<script>alert(1)</script>", "\"><img src=x onerror=alert(1)>");
        let html = page.into_string();
        assert!(!html.contains("<script>alert"), "{html}");
        assert!(!html.contains("<img src=x"), "{html}");
        assert!(html.contains("&lt;script&gt;"), "{html}");
    }

    #[test]
    fn sizes_times_and_links_read_well() {
        assert_eq!(size(512), "512 B");
        assert_eq!(size(4096), "4.0 KiB");
        assert_eq!(size(5 * 1024 * 1024 * 1024), "5.0 GiB");
        assert_eq!(time(0), "1970-01-01T00:00:00Z");
        assert_eq!(time_left(0, 1), "expired");
        assert_eq!(time_left(90 * 60_000, 0), "1 h 30 min");
        assert_eq!(time_left(3 * 86_400_000 + 3_600_000, 0), "3 days 1 h");
        assert_eq!(object_href("b", "a dir/x?y#z", Some("v 1")), "/_console/objects/b/a%20dir/x%3Fy%23z?version=v%201");
        assert_eq!(bucket_href("b", "logs/2026/"), "/_console/buckets/b?prefix=logs%2F2026%2F");
    }
}
