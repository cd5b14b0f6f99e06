//! The web console under `/_console/` (issue 22) against the real binary, driven as a browser
//! drives it (forms, cookies, links followed) with raw HTTP requests: sign-in and sessions,
//! what a page shows of an object an SDK uploaded, access decided as over S3, the live feed;
//! and the attacks a console invites: pages without a session, forged cookies and forms,
//! script in keys and metadata (tags cannot hold markup: S3 allows none of its characters).

use std::time::Duration;

use artifact_store_conformance::cli::expect;
use artifact_store_conformance::raw::{RawResponse, encode};
use artifact_store_conformance::sdk::{create_bucket, enable_versioning, put};
use artifact_store_conformance::{ACCESS_KEY, SECRET_KEY, Server, Transport, blake3_hex, bytes, md5_hex};

use crate::integrity::{Damage, damage};
use aws_sdk_s3::primitives::ByteStream;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// A browser's view of the console: the session cookie it holds, if any.
struct Browser<'s> {
    server: &'s Server,
    cookie: Option<String>,
}

impl<'s> Browser<'s> {
    /// A browser that signed in with `access_key` and `secret_key`.
    async fn signed_in(server: &'s Server, access_key: &str, secret_key: &str) -> Self {
        let mut browser = Self { server, cookie: None };
        let response = browser.sign_in(access_key, secret_key).await;
        assert_eq!(response.status, 303, "sign-in: {}", response.text());
        assert_eq!(response.header("location"), Some("/_console/buckets"));
        browser
    }

    /// Posts the sign-in form; keeps the cookie it sets.
    async fn sign_in(&mut self, access_key: &str, secret_key: &str) -> RawResponse {
        let response = self.post("/_console/sign-in", &[("access_key", access_key), ("secret_key", secret_key)]).await;
        if let Some(set) = response.header("set-cookie") {
            let pair = set.split(';').next().expect("a cookie");
            self.cookie = Some(pair.to_owned());
        }
        response
    }

    async fn get(&self, target: &str) -> RawResponse {
        let mut request = self.server.request("GET", target);
        if let Some(cookie) = &self.cookie {
            request = request.header("cookie", cookie);
        }
        self.server.send(&request).await
    }

    /// A page that must answer 200: its HTML.
    async fn page(&self, target: &str) -> String {
        let response = self.get(target).await;
        assert_eq!(response.status, 200, "GET {target}: {}", response.text());
        assert_eq!(response.header("content-type"), Some("text/html; charset=utf-8"), "GET {target}");
        response.text()
    }

    async fn post_from(&self, target: &str, form: &[(&str, &str)], origin: Option<&str>) -> RawResponse {
        let body: String = form_urlencoded::Serializer::new(String::new()).extend_pairs(form).finish();
        let mut request = self
            .server
            .request("POST", target)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body.into_bytes());
        if let Some(cookie) = &self.cookie {
            request = request.header("cookie", cookie);
        }
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        self.server.send(&request).await
    }

    /// Posts a form as the console's own page does, from the console's origin.
    async fn post(&self, target: &str, form: &[(&str, &str)]) -> RawResponse {
        let origin = format!("{}://{}", self.scheme(), self.server.host());
        self.post_from(target, form, Some(&origin)).await
    }

    fn scheme(&self) -> &'static str {
        match self.server.transport() {
            Transport::Http => "http",
            Transport::Https => "https",
        }
    }

    /// The token the page's forms carry.
    async fn form_token(&self) -> String {
        let html = self.page("/_console/buckets").await;
        attribute_after(&html, "name=\"csrf\"", "value").expect("a sign-out form with its token")
    }
}

/// The value of attribute `name` in the first tag after `marker`.
fn attribute_after(html: &str, marker: &str, name: &str) -> Option<String> {
    let rest = &html[html.find(marker)?..];
    let start = rest.find(&format!("{name}=\""))? + name.len() + 2;
    let value = &rest[start..start + rest[start..].find('"')?];
    Some(value.replace("&amp;", "&").replace("&quot;", "\""))
}

/// The `href` of the link whose text starts with `text` (`>Download<`).
fn href_of(html: &str, text: &str) -> Option<String> {
    let at = html.find(text)?;
    let start = html[..at].rfind("href=\"")? + 6;
    Some(html[start..start + html[start..].find('"')?].replace("&amp;", "&"))
}

/// A user `name` of the root account with a key of its own and, if given, the inline
/// `policy`: its access key and secret.
fn user(server: &Server, name: &str, policy: Option<&str>) -> (String, String) {
    expect(server, &["user", "create", name], 0);
    let created = expect(server, &["--json", "key", "create", name], 0);
    let created: serde_json::Value = serde_json::from_str(created.stdout.trim()).expect("JSON");
    if let Some(policy) = policy {
        let dir = tempfile::tempdir().expect("temp folder");
        let file = dir.path().join("policy.json");
        std::fs::write(&file, policy).expect("policy file");
        expect(server, &["user", "policy", "put", name, "--file", file.to_str().unwrap()], 0);
    }
    (created["access_key"].as_str().unwrap().to_owned(), created["secret_key"].as_str().unwrap().to_owned())
}

/// `/_console/objects/{bucket}/{key}` as the console links it.
fn object_page(bucket: &str, key: &str) -> String {
    format!("/_console/objects/{bucket}/{}", encode(key, true))
}

#[tokio::test]
async fn no_console_page_answers_without_a_session_and_only_the_right_secret_signs_in_issue_22() {
    let server = Server::start(Transport::Http).await;
    create_bucket(&server.s3(), "art").await;
    put(&server.s3(), "art", "app.tar", b"bytes").await;
    let anonymous = Browser { server: &server, cookie: None };
    let forged = Browser {
        server: &server,
        cookie: Some(format!(
            "console_session=Q09ORk9STUFOQ0VBQ0NFU1NLRVk.4102444800.{}.{}",
            "0".repeat(32),
            "ab".repeat(32)
        )),
    };
    let pages = [
        "/_console/buckets",
        "/_console/buckets/art",
        "/_console/objects/art/app.tar",
        "/_console/events/1",
        "/_console/feed",
        "/_console/feed/stream",
    ];
    for browser in [&anonymous, &forged] {
        for target in pages {
            let response = browser.get(target).await;
            assert_eq!(response.status, 303, "GET {target}: {}", response.text());
            assert_eq!(response.header("location"), Some("/_console/sign-in"), "GET {target}");
            assert!(response.body.is_empty(), "GET {target} told something: {}", response.text());
        }
        let sign_out = browser.post("/_console/sign-out", &[("csrf", "x")]).await;
        assert_eq!(sign_out.status, 401, "{}", sign_out.text());
    }

    let sign_in_page = anonymous.get("/_console/sign-in").await;
    assert_eq!(sign_in_page.status, 200);
    assert!(sign_in_page.text().contains("name=\"secret_key\""), "{}", sign_in_page.text());

    let mut guesser = Browser { server: &server, cookie: None };
    for (access_key, secret_key) in [(ACCESS_KEY, "not-the-secret"), ("NOSUCHKEY", SECRET_KEY), (ACCESS_KEY, "")] {
        let refused = guesser.sign_in(access_key, secret_key).await;
        assert_eq!(refused.status, 401, "{access_key}: {}", refused.text());
        assert_eq!(refused.header("set-cookie"), None);
        assert!(refused.text().contains("do not sign in"), "{}", refused.text());
    }

    let mut browser = Browser { server: &server, cookie: None };
    let signed_in = browser.sign_in(ACCESS_KEY, SECRET_KEY).await;
    assert_eq!(signed_in.status, 303, "{}", signed_in.text());
    let cookie = signed_in.header("set-cookie").expect("a session cookie");
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/_console", "Max-Age=28800"] {
        assert!(cookie.contains(flag), "{flag} in {cookie}");
    }
    assert!(!cookie.contains("Secure"), "a Secure cookie is never sent back over plain HTTP: {cookie}");
    assert!(!cookie.contains(SECRET_KEY), "{cookie}");

    let buckets = browser.get("/_console/buckets").await;
    assert_eq!(buckets.status, 200, "{}", buckets.text());
    assert!(buckets.text().contains("href=\"/_console/buckets/art\""), "{}", buckets.text());
    assert_eq!(buckets.header("cache-control"), Some("no-store"), "a later user of the browser sees nothing");
    let policy = buckets.header("content-security-policy").expect("a content security policy");
    assert!(policy.contains("script-src 'self'") && policy.contains("frame-ancestors 'none'"), "{policy}");
    assert_eq!(buckets.header("x-content-type-options"), Some("nosniff"));

    // The log holds no secret and no cookie.
    let log = server.log();
    assert!(!log.contains(SECRET_KEY) && !log.contains(&browser.cookie.clone().unwrap()), "{log}");
}

/// Found by a review: sign-ins were not bounded (thousands of wrong secrets a second were
/// answered), and a secret typed into the access key field was logged as the key refused.
#[tokio::test]
async fn failed_sign_ins_are_bounded_per_client_and_a_mistyped_secret_is_not_logged_issue_22() {
    let server = Server::start(Transport::Http).await;
    let mut guesser = Browser { server: &server, cookie: None };
    let mistyped = guesser.sign_in(SECRET_KEY, SECRET_KEY).await;
    assert_eq!(mistyped.status, 401, "{}", mistyped.text());
    for n in 2..=10 {
        let refused = guesser.sign_in(ACCESS_KEY, &format!("guess-{n}")).await;
        assert_eq!(refused.status, 401, "failed sign-in {n}: {}", refused.text());
    }
    // Past ten failures in a minute, even the right secret is refused, unchecked.
    let throttled = guesser.sign_in(ACCESS_KEY, SECRET_KEY).await;
    assert_eq!(throttled.status, 429, "{}", throttled.text());
    assert_eq!(throttled.header("set-cookie"), None);
    assert!(throttled.text().contains("Too many failed sign-ins"), "{}", throttled.text());
    let log = server.log();
    assert!(!log.contains(SECRET_KEY), "a secret reached the log: {log}");
}

#[tokio::test]
async fn over_https_the_session_cookie_is_secure_issue_22() {
    let server = Server::start(Transport::Https).await;
    let mut browser = Browser { server: &server, cookie: None };
    let signed_in = browser.sign_in(ACCESS_KEY, SECRET_KEY).await;
    assert_eq!(signed_in.status, 303, "{}", signed_in.text());
    let cookie = signed_in.header("set-cookie").expect("a session cookie");
    assert!(cookie.starts_with("__Host-console_session=") && cookie.contains("; Secure"), "{cookie}");
    assert!(cookie.contains("Path=/;"), "a __Host- cookie is the whole host's: {cookie}");
    browser.page("/_console/buckets").await;

    // The same session under the plain name (what a page of a sibling host could plant, as
    // no Domain can be set on a __Host- cookie) signs no one in over HTTPS.
    let value = browser.cookie.as_deref().unwrap().split_once('=').unwrap().1.to_owned();
    let planted = Browser { server: &server, cookie: Some(format!("console_session={value}")) };
    assert_eq!(planted.get("/_console/buckets").await.status, 303);
}

#[tokio::test]
async fn an_object_uploaded_by_an_sdk_shows_its_digest_uploader_readers_and_history_and_downloads_whole_issue_22() {
    let server = Server::start(Transport::Http).await;
    let s3 = server.s3();
    create_bucket(&s3, "art").await;
    let data = bytes(300_000, 22);
    s3.put_object()
        .bucket("art")
        .key("releases/1.0/app.tar")
        .content_type("application/x-tar")
        .metadata("build", "ci-1234")
        .tagging("stage=release")
        .body(ByteStream::from(data.clone()))
        .send()
        .await
        .expect("put the release");
    let browser = Browser::signed_in(&server, ACCESS_KEY, SECRET_KEY).await;

    let buckets = browser.page("/_console/buckets").await;
    assert!(buckets.contains("<td class=\"num\">1</td>"), "one object: {buckets}");
    assert!(buckets.contains("293.0 KiB"), "its size: {buckets}");
    let root = browser.page("/_console/buckets/art").await;
    assert!(root.contains("href=\"/_console/buckets/art?prefix=releases%2F\""), "a folder: {root}");
    let folder = browser.page("/_console/buckets/art?prefix=releases%2F1.0%2F").await;
    assert!(folder.contains(&format!("href=\"{}\"", object_page("art", "releases/1.0/app.tar"))), "{folder}");

    let page = browser.page(&object_page("art", "releases/1.0/app.tar")).await;
    for fact in [blake3_hex(&data), md5_hex(&data), ACCESS_KEY.to_owned(), "application/x-tar".to_owned()] {
        assert!(page.contains(&fact), "{fact} on the page: {page}");
    }
    for fact in ["x-amz-meta-build", "ci-1234", "stage=release", "v1.object.put", "Never read."] {
        assert!(page.contains(fact), "{fact} on the page: {page}");
    }

    // The download link is a presigned GET of the version: the same bytes, and a read
    // recorded against the user who signed in.
    let link = href_of(&page, ">Download<").expect("a download link");
    let target = link.split_once(&server.host()).expect("a link to this gateway").1;
    assert!(target.contains("X-Amz-Signature=") && target.contains("X-Amz-Expires=300"), "{target}");
    let downloaded = server.send(&server.request("GET", target)).await;
    assert_eq!(downloaded.status, 200, "{}", downloaded.text());
    assert_eq!(blake3_hex(&downloaded.body), blake3_hex(&data), "the download is the object");

    // The read is recorded (without waiting for its commit): the page shows it once it is.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let page = browser.page(&object_page("art", "releases/1.0/app.tar")).await;
        if page.contains("Read 1 time") && page.contains("v1.object.retrieved") {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the download never showed as a read: {page}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // One event whole: its hash is the chain's.
    let event = browser.page("/_console/events/1").await;
    assert!(event.contains("Previous hash") && event.contains("Payload BLAKE3"), "{event}");
}

#[tokio::test]
async fn a_user_sees_in_the_console_only_what_its_policies_let_it_read_issue_22() {
    let server = Server::start(Transport::Http).await;
    let s3 = server.s3();
    create_bucket(&s3, "team").await;
    put(&s3, "team", "build/app.tar", b"app").await;
    put(&s3, "team", "secret/plan.txt", b"plan").await;
    let policy = r#"{"Version":"2012-10-17","Statement":[
            {"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::team/build/*"},
            {"Effect":"Allow","Action":"s3:ListBucket","Resource":"arn:aws:s3:::team",
             "Condition":{"StringLike":{"s3:prefix":"build/*"}}}]}"#;
    let (access_key, secret_key) = user(&server, "alice", Some(policy));
    let alice = Browser::signed_in(&server, &access_key, &secret_key).await;
    let allowed = alice.page(&object_page("team", "build/app.tar")).await;
    assert!(allowed.contains(&blake3_hex(b"app")), "{allowed}");
    let listed = alice.page("/_console/buckets/team?prefix=build%2F").await;
    assert!(listed.contains("app.tar"), "{listed}");

    let events = server.events();
    let plan_put = events.iter().find(|e| e.subject_id == "team/secret/plan.txt").expect("the plan's put");
    let app_put = events.iter().find(|e| e.subject_id == "team/build/app.tar").expect("the app's put");
    alice.page(&format!("/_console/events/{}", app_put.sequence)).await;
    for target in [
        object_page("team", "secret/plan.txt"),
        "/_console/buckets/team?prefix=secret%2F".to_owned(),
        "/_console/buckets".to_owned(),
        "/_console/feed".to_owned(),
        "/_console/feed/stream".to_owned(),
    ] {
        let refused = alice.get(&target).await;
        assert_eq!(refused.status, 403, "GET {target}: {}", refused.text());
        assert!(refused.text().contains("Access denied"), "{}", refused.text());
        assert!(!refused.text().contains(&blake3_hex(b"plan")), "{}", refused.text());
    }
    // An event she may not read is answered as one that does not exist: walking the
    // sequences must not list the keys of the log (found by a review: the refusal named the
    // object's ARN).
    let refused = alice.get(&format!("/_console/events/{}", plan_put.sequence)).await;
    let missing = alice.get("/_console/events/999999").await;
    assert_eq!((refused.status, missing.status), (404, 404), "{}", refused.text());
    assert!(!refused.text().contains("plan.txt") && !refused.text().contains("secret"), "{}", refused.text());
    let strip = |text: String| text.replace(&plan_put.sequence.to_string(), "N").replace("999999", "N");
    assert_eq!(strip(refused.text()), strip(missing.text()), "a refusal reads as a missing event");

    // Disabling the key ends its sessions at once.
    expect(&server, &["key", "disable", &access_key], 0);
    let ended = alice.get(&object_page("team", "build/app.tar")).await;
    assert_eq!(ended.status, 303, "{}", ended.text());
    assert_eq!(ended.header("location"), Some("/_console/sign-in"));
}

#[tokio::test]
async fn forged_forms_are_refused_and_script_in_keys_and_metadata_is_shown_as_text_issue_22() {
    let server = Server::start(Transport::Http).await;
    let s3 = server.s3();
    create_bucket(&s3, "art").await;
    let key = "x/<script>alert('key')</script>.txt";
    s3.put_object()
        .bucket("art")
        .key(key)
        .metadata("note", "\"><img src=x onerror=alert('meta')>")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .expect("put an object named with markup");
    let browser = Browser::signed_in(&server, ACCESS_KEY, SECRET_KEY).await;
    for target in [object_page("art", key), "/_console/buckets/art?prefix=x%2F".to_owned()] {
        let page = browser.page(&target).await;
        for markup in ["<script>alert", "<img src=x"] {
            assert!(!page.contains(markup), "{markup} rendered as markup on {target}: {page}");
        }
        // (In the listing, the `/` of `</script>` makes a folder of the key's start.)
        assert!(page.contains("&lt;script&gt;alert('key')&lt;/"), "the key as text: {page}");
    }
    let page = browser.page(&object_page("art", key)).await;
    assert!(page.contains("&lt;script&gt;alert('key')&lt;/script&gt;.txt"), "the key as text: {page}");
    assert!(page.contains("&lt;img src=x onerror=alert('meta')&gt;"), "{page}");

    // Signing out needs the page's token, from the console's own origin.
    let token = browser.form_token().await;
    let without = browser.post("/_console/sign-out", &[("csrf", "0123")]).await;
    assert_eq!(without.status, 403, "{}", without.text());
    assert_eq!(without.header("set-cookie"), None);
    let cross_site = browser.post_from("/_console/sign-out", &[("csrf", &token)], Some("http://evil.example")).await;
    assert_eq!(cross_site.status, 403, "{}", cross_site.text());
    let mut other = Browser::signed_in(&server, ACCESS_KEY, SECRET_KEY).await;
    let foreign_token = other.form_token().await;
    assert_ne!(foreign_token, token, "each session has its own token");
    let with_another_sessions = browser.post("/_console/sign-out", &[("csrf", &foreign_token)]).await;
    assert_eq!(with_another_sessions.status, 403, "{}", with_another_sessions.text());
    browser.page("/_console/buckets").await;

    let signed_out = browser.post("/_console/sign-out", &[("csrf", &token)]).await;
    assert_eq!(signed_out.status, 303, "{}", signed_out.text());
    let cleared = signed_out.header("set-cookie").expect("the cookie removed");
    assert!(cleared.starts_with("console_session=;") && cleared.contains("Max-Age=0"), "{cleared}");
    other.cookie = None;
    assert_eq!(other.get("/_console/buckets").await.status, 303);
}

#[tokio::test]
async fn the_live_feed_streams_a_get_as_it_is_recorded_issue_22() {
    let server = Server::start(Transport::Http).await;
    let s3 = server.s3();
    create_bucket(&s3, "art").await;
    create_bucket(&s3, "other").await;
    put(&s3, "art", "app.tar", b"the app").await;
    let browser = Browser::signed_in(&server, ACCESS_KEY, SECRET_KEY).await;
    let page = browser.page("/_console/feed?bucket=art&type=v1.object.retrieved").await;
    let stream = attribute_after(&page, "id=\"feed\"", "data-stream").expect("the feed's stream");
    assert!(page.contains("src=\"/_console/static/feed.js\""), "{page}");
    let script = server.send(&server.request("GET", "/_console/static/feed.js")).await;
    assert_eq!(script.status, 200);
    assert!(!script.text().contains("innerHTML"), "events are shown as text");

    let request = server.request("GET", &stream).header("cookie", browser.cookie.as_deref().unwrap());
    let mut tcp = tokio::net::TcpStream::connect(server.addr()).await.expect("connect");
    tcp.write_all(&request.to_bytes()).await.expect("send");
    put(&s3, "other", "noise", b"n").await;
    s3.get_object().bucket("other").key("noise").send().await.expect("a GET elsewhere");
    let got = s3.get_object().bucket("art").key("app.tar").send().await.expect("get");
    assert_eq!(got.body.collect().await.expect("body").into_bytes().as_ref(), b"the app");

    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut seen = String::new();
    while !seen.contains("\"event_type\":\"v1.object.retrieved\"") {
        let mut chunk = [0; 4096];
        let read = tokio::time::timeout_at(deadline, tcp.read(&mut chunk))
            .await
            .unwrap_or_else(|_| panic!("no GET in the feed within a minute: {seen}"))
            .expect("read the feed");
        assert!(read > 0, "the feed ended: {seen}");
        seen.push_str(&String::from_utf8_lossy(&chunk[..read]));
    }
    assert!(seen.starts_with("HTTP/1.1 200") && seen.contains("text/event-stream"), "{seen}");
    assert!(
        seen.contains("\"subject_id\":\"art/app.tar\"") && seen.contains(&format!("\"actor\":\"{ACCESS_KEY}\"")),
        "{seen}"
    );
    assert!(!seen.contains("other/noise") && !seen.contains("v1.object.put"), "the filters hold: {seen}");
}

#[tokio::test]
async fn verify_this_object_re_hashes_its_bytes_and_finds_a_flipped_byte_issue_22() {
    let server = Server::start(Transport::Http).await;
    let s3 = server.s3();
    create_bucket(&s3, "art").await;
    // Large enough to live in the blob store, not inline in the registry.
    let data = bytes(1 << 20, 5);
    put(&s3, "art", "big.bin", &data).await;
    put(&s3, "art", "small.txt", b"inline bytes").await;
    let browser = Browser::signed_in(&server, ACCESS_KEY, SECRET_KEY).await;
    let token = browser.form_token().await;
    for (key, size) in [("big.bin", data.len()), ("small.txt", 12)] {
        let verified = browser.post(&object_page("art", key), &[("csrf", &token), ("action", "verify")]).await;
        assert_eq!(verified.status, 200, "{}", verified.text());
        assert!(
            verified.text().contains(&format!("Verified: its {size} bytes hash to the recorded BLAKE3")),
            "{}",
            verified.text()
        );
    }
    let forged = browser.post(&object_page("art", "big.bin"), &[("csrf", "0"), ("action", "verify")]).await;
    assert_eq!(forged.status, 403, "{}", forged.text());

    damage(&server, "art", "big.bin", &data, Damage::Flip(700_000)).await;
    let failed = browser.post(&object_page("art", "big.bin"), &[("csrf", &token), ("action", "verify")]).await;
    assert_eq!(failed.status, 200, "{}", failed.text());
    assert!(failed.text().contains("FAILED: its bytes hash to"), "{}", failed.text());
    assert!(failed.text().contains(&blake3_hex(&data)), "the recorded digest is named: {}", failed.text());
}

/// Found by a review: the pages of an object and of its events were decided without the
/// object's tags, so a policy denying reads of tagged objects (`s3:ExistingObjectTag`) did not
/// hide their record; the registry API's provenance had the same hole.
#[tokio::test]
async fn a_policy_on_existing_object_tags_decides_console_pages_and_registry_api_reads_issue_22() {
    let server = Server::start(Transport::Http).await;
    let s3 = server.s3();
    create_bucket(&s3, "team").await;
    put(&s3, "team", "open.txt", b"open").await;
    s3.put_object()
        .bucket("team")
        .key("classified.txt")
        .tagging("secret=yes")
        .body(ByteStream::from_static(b"classified"))
        .send()
        .await
        .expect("put a tagged object");
    let policy = r#"{"Version":"2012-10-17","Statement":[
            {"Effect":"Allow","Action":["s3:GetObject","s3:ListAllMyBuckets"],"Resource":"*"},
            {"Effect":"Deny","Action":"s3:GetObject","Resource":"arn:aws:s3:::team/*",
             "Condition":{"StringEquals":{"s3:ExistingObjectTag/secret":"yes"}}}]}"#;
    let (access_key, secret_key) = user(&server, "carol", Some(policy));
    let key = artifact_store_conformance::raw::Key { access_key: &access_key, secret_key: &secret_key };
    let denied = (403, "AccessDenied".to_owned());
    let refused = server.s3_as(key).get_object().bucket("team").key("classified.txt").send().await;
    assert_eq!(artifact_store_conformance::sdk::failure(refused), denied, "S3 itself refuses it");

    let carol = Browser::signed_in(&server, &access_key, &secret_key).await;
    assert!(carol.page(&object_page("team", "open.txt")).await.contains(&blake3_hex(b"open")));
    let hidden = carol.get(&object_page("team", "classified.txt")).await;
    assert_eq!(hidden.status, 403, "{}", hidden.text());
    assert!(!hidden.text().contains(&blake3_hex(b"classified")), "{}", hidden.text());
    let put_event = server.events().into_iter().find(|e| e.subject_id == "team/classified.txt").expect("its put");
    assert_eq!(carol.get(&format!("/_console/events/{}", put_event.sequence)).await.status, 404);

    let api = |target: &str| {
        server.request("GET", target).sign(
            key,
            std::time::SystemTime::now(),
            artifact_store_conformance::raw::Payload::Signed,
        )
    };
    assert_eq!(server.send(&api("/_registry/objects/team/open.txt")).await.status, 200);
    let provenance = server.send(&api("/_registry/objects/team/classified.txt")).await;
    assert_eq!(provenance.status, 403, "{}", provenance.text());

    // She may list the buckets but not their keys: the list does not tell what they hold.
    let buckets = carol.page("/_console/buckets").await;
    assert!(
        buckets.contains("href=\"/_console/buckets/team\"") && buckets.contains("<td class=\"num\">—</td>"),
        "{buckets}"
    );
}

/// Found by an attacker's pass: the registry API and the console decided a key's record on its
/// current version alone, and listed every older version with it; and the page of an event
/// about a version deleted since was decided with no tags at all. An older version is now
/// shown as S3 would serve it: `s3:GetObjectVersion` on that version, with its own tags.
#[tokio::test]
async fn older_versions_and_their_events_are_shown_only_as_s3_would_serve_them_issue_22() {
    let server = Server::start(Transport::Http).await;
    let s3 = server.s3();
    create_bucket(&s3, "vault").await;
    enable_versioning(&s3, "vault").await;
    let secret = s3
        .put_object()
        .bucket("vault")
        .key("plan.txt")
        .tagging("secret=yes")
        .metadata("codename", "bluebird")
        .body(ByteStream::from_static(b"the secret plan"))
        .send()
        .await
        .expect("put the tagged version");
    let secret_id = secret.version_id().expect("a version id").to_owned();
    let public = s3
        .put_object()
        .bucket("vault")
        .key("plan.txt")
        .body(ByteStream::from_static(b"the public plan"))
        .send()
        .await
        .expect("put the untagged version");
    let public_id = public.version_id().expect("a version id").to_owned();
    let secret_put = server
        .events()
        .into_iter()
        .find(|e| e.subject_id == "vault/plan.txt" && e.event_type == "v1.object.put")
        .expect("the tagged version's put");

    // Carol may read versions, not tagged secret ones; Dave may read current objects only.
    let carol_policy = r#"{"Version":"2012-10-17","Statement":[
            {"Effect":"Allow","Action":["s3:GetObject","s3:GetObjectVersion"],"Resource":"arn:aws:s3:::vault/*"},
            {"Effect":"Deny","Action":["s3:GetObject","s3:GetObjectVersion"],"Resource":"arn:aws:s3:::vault/*",
             "Condition":{"StringEquals":{"s3:ExistingObjectTag/secret":"yes"}}}]}"#;
    let dave_policy = r#"{"Version":"2012-10-17","Statement":[
            {"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::vault/*"}]}"#;
    let carol = user(&server, "carol", Some(carol_policy));
    let dave = user(&server, "dave", Some(dave_policy));
    let carol_key = artifact_store_conformance::raw::Key { access_key: &carol.0, secret_key: &carol.1 };
    let dave_key = artifact_store_conformance::raw::Key { access_key: &dave.0, secret_key: &dave.1 };
    let refused =
        server.s3_as(carol_key).get_object().bucket("vault").key("plan.txt").version_id(&secret_id).send().await;
    assert_eq!(artifact_store_conformance::sdk::failure(refused).0, 403, "S3 itself refuses the tagged version");

    let provenance = |key| {
        let server = &server;
        async move {
            let request = server.request("GET", "/_registry/objects/vault/plan.txt").sign(
                key,
                std::time::SystemTime::now(),
                artifact_store_conformance::raw::Payload::Signed,
            );
            let response = server.send(&request).await;
            assert_eq!(response.status, 200, "{}", response.text());
            let doc: serde_json::Value = serde_json::from_slice(&response.body).expect("JSON");
            let ids: Vec<String> = doc["versions"]
                .as_array()
                .expect("versions")
                .iter()
                .map(|v| v["version_id"].as_str().unwrap().to_owned())
                .collect();
            (ids, response.text())
        }
    };
    for key in [carol_key, dave_key] {
        let (ids, text) = provenance(key).await;
        assert_eq!(ids, [public_id.as_str()], "{}: only the version it may read", key.access_key);
        assert!(!text.contains("bluebird") && !text.contains(&blake3_hex(b"the secret plan")), "{text}");
    }
    let (ids, _) = provenance(artifact_store_conformance::raw::ROOT).await;
    assert_eq!(ids, [public_id.as_str(), secret_id.as_str()], "the owner sees both");

    let browser = Browser::signed_in(&server, &carol.0, &carol.1).await;
    let page = browser.page(&object_page("vault", "plan.txt")).await;
    assert!(page.contains(&public_id) && !page.contains(&secret_id), "{page}");
    // The key's history and reads span its versions: the tagged version's put is not in
    // Carol's history, and the reads are not shown to her (found by a review: they were).
    let secret_link = format!("/_console/events/{}\"", secret_put.sequence);
    assert!(!page.contains(&secret_link), "the tagged version's put is in the history: {page}");
    assert!(page.contains("Shown to those who may read every version"), "{page}");
    let root_page =
        Browser::signed_in(&server, ACCESS_KEY, SECRET_KEY).await.page(&object_page("vault", "plan.txt")).await;
    assert!(root_page.contains(&secret_link), "whoever reads the log sees the whole history: {root_page}");
    let event_page = format!("/_console/events/{}", secret_put.sequence);
    assert_eq!(browser.get(&event_page).await.status, 404, "the tagged version's put");

    // An upload started names no version, yet its payload holds the metadata and tags of the
    // version to come: it is the log's alone (found by a review: it was decided by the current,
    // untagged version).
    s3.create_multipart_upload()
        .bucket("vault")
        .key("plan.txt")
        .tagging("secret=yes")
        .metadata("codename", "kestrel")
        .send()
        .await
        .expect("start an upload");
    let started = server
        .events()
        .into_iter()
        .find(|e| e.subject_id == "vault/plan.txt" && e.event_type == "v1.multipart.created")
        .expect("the upload's start");
    let upload_page = browser.get(&format!("/_console/events/{}", started.sequence)).await;
    assert_eq!(upload_page.status, 404, "{}", upload_page.text());
    assert!(!upload_page.text().contains("kestrel"), "{}", upload_page.text());

    // Deleted, the version takes its tags with it: its events become the log's alone.
    s3.delete_object().bucket("vault").key("plan.txt").version_id(&secret_id).send().await.expect("delete it");
    let gone = browser.get(&event_page).await;
    assert_eq!(gone.status, 404, "{}", gone.text());
    assert!(!gone.text().contains("bluebird"), "{}", gone.text());
    let root = Browser::signed_in(&server, ACCESS_KEY, SECRET_KEY).await;
    assert!(root.page(&event_page).await.contains("bluebird"), "whoever reads the log still reads it");
}

/// Found by a review: the console and the registry API decided a version with the `s3:VersionId`
/// of the request's own query, not of the version decided on. A Deny on one version did not
/// hide it, and a `versionId` of a version a policy allows, added to the URL, showed another.
#[tokio::test]
async fn a_policy_on_s3_version_id_decides_the_version_shown_not_the_query_issue_22() {
    let server = Server::start(Transport::Http).await;
    let s3 = server.s3();
    create_bucket(&s3, "vpub").await;
    enable_versioning(&s3, "vpub").await;
    let put_version = |body: &'static [u8], codename: &'static str| {
        let s3 = s3.clone();
        async move {
            let put = s3.put_object().bucket("vpub").key("doc.txt").metadata("codename", codename);
            let put = put.body(ByteStream::from_static(body)).send().await.expect("put a version");
            put.version_id().expect("a version id").to_owned()
        }
    };
    let first = put_version(b"the first draft", "bluebird").await;
    let second = put_version(b"the final text", "kestrel").await;

    // Erin may read every version but the first; Dave may read older versions only if they
    // are the second.
    let erin_policy = format!(
        r#"{{"Version":"2012-10-17","Statement":[
            {{"Effect":"Allow","Action":["s3:GetObject","s3:GetObjectVersion"],"Resource":"arn:aws:s3:::vpub/*"}},
            {{"Effect":"Deny","Action":["s3:GetObject","s3:GetObjectVersion"],"Resource":"arn:aws:s3:::vpub/*",
             "Condition":{{"StringEquals":{{"s3:VersionId":"{first}"}}}}}}]}}"#
    );
    let dave_policy = format!(
        r#"{{"Version":"2012-10-17","Statement":[
            {{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::vpub/*"}},
            {{"Effect":"Allow","Action":"s3:GetObjectVersion","Resource":"arn:aws:s3:::vpub/*",
             "Condition":{{"StringEquals":{{"s3:VersionId":"{second}"}}}}}}]}}"#
    );
    let erin = user(&server, "erin", Some(&erin_policy));
    let dave = user(&server, "dave", Some(&dave_policy));
    for (name, (access_key, secret_key)) in [("erin", &erin), ("dave", &dave)] {
        let key = artifact_store_conformance::raw::Key { access_key, secret_key };
        let refused = server.s3_as(key).get_object().bucket("vpub").key("doc.txt").version_id(&first).send().await;
        assert_eq!(artifact_store_conformance::sdk::failure(refused).0, 403, "{name}: S3 refuses the first version");
        for query in ["", "?versionId="] {
            let query = if query.is_empty() { String::new() } else { format!("{query}{second}") };
            let request = server.request("GET", &format!("/_registry/objects/vpub/doc.txt{query}")).sign(
                key,
                std::time::SystemTime::now(),
                artifact_store_conformance::raw::Payload::Signed,
            );
            let response = server.send(&request).await;
            assert_eq!(response.status, 200, "{name}: {}", response.text());
            assert!(!response.text().contains(&first), "{name}, query {query:?}: {}", response.text());
            assert!(!response.text().contains("bluebird"), "{name}, query {query:?}: {}", response.text());
        }
        let browser = Browser::signed_in(&server, access_key, secret_key).await;
        for page in [
            format!("{}?version={first}", object_page("vpub", "doc.txt")),
            format!("{}?version={first}&versionId={second}", object_page("vpub", "doc.txt")),
        ] {
            let shown = browser.get(&page).await;
            assert_eq!(shown.status, 403, "{name}, {page}: {}", shown.text());
            assert!(!shown.text().contains("bluebird"), "{name}, {page}: {}", shown.text());
        }
    }
}

/// Found by a review: the bucket list was decided as the root account's resource, so the root
/// user of any other account, who lists its buckets over S3, was refused its console page.
#[tokio::test]
async fn another_accounts_root_sees_its_own_buckets_and_not_the_others_issue_22() {
    let server = Server::start(Transport::Http).await;
    create_bucket(&server.s3(), "roots-bucket").await;
    let created = expect(&server, &["--json", "account", "create", "partner"], 0);
    let created: serde_json::Value = serde_json::from_str(created.stdout.trim()).expect("account JSON");
    let (access_key, secret_key) =
        (created["access_key"].as_str().expect("access_key"), created["secret_key"].as_str().expect("secret_key"));
    let partner = server.s3_as(artifact_store_conformance::raw::Key { access_key, secret_key });
    partner.create_bucket().bucket("partners-bucket").send().await.expect("the partner's bucket");
    let browser = Browser::signed_in(&server, access_key, secret_key).await;
    let page = browser.page("/_console/buckets").await;
    assert!(page.contains("partners-bucket"), "{page}");
    assert!(!page.contains("roots-bucket"), "another account's bucket is listed: {page}");
}

/// Found by a review: a bucket name deleted by one account and taken by another carried the
/// old bucket's history (events, readers) into the new owner's console.
#[tokio::test]
async fn a_bucket_name_taken_again_does_not_show_the_old_buckets_history_issue_22() {
    let server = Server::start(Transport::Http).await;
    let s3 = server.s3();
    create_bucket(&s3, "reused").await;
    put(&s3, "reused", "k", b"the first owner's").await;
    artifact_store_conformance::sdk::get(&s3, "reused", "k").await;
    s3.delete_object().bucket("reused").key("k").send().await.expect("delete the object");
    s3.delete_bucket().bucket("reused").send().await.expect("delete the bucket");
    let old_put = server.events().into_iter().find(|e| e.subject_id == "reused/k").expect("the old put");

    let partner = expect(&server, &["--json", "account", "create", "partner"], 0);
    let partner: serde_json::Value = serde_json::from_str(partner.stdout.trim()).expect("JSON");
    let (access_key, secret_key) =
        (partner["access_key"].as_str().unwrap().to_owned(), partner["secret_key"].as_str().unwrap().to_owned());
    let as_partner =
        server.s3_as(artifact_store_conformance::raw::Key { access_key: &access_key, secret_key: &secret_key });
    create_bucket(&as_partner, "reused").await;
    put(&as_partner, "reused", "k", b"the second owner's").await;

    let browser = Browser::signed_in(&server, &access_key, &secret_key).await;
    let page = browser.page(&object_page("reused", "k")).await;
    assert!(page.contains(&blake3_hex(b"the second owner's")), "{page}");
    assert!(page.contains("Never read."), "the first owner's reads are not this bucket's: {page}");
    assert!(!page.contains(&format!("/_console/events/{}\"", old_put.sequence)), "{page}");
    assert!(!page.contains(ACCESS_KEY), "the first owner's key: {page}");
    assert_eq!(browser.get(&format!("/_console/events/{}", old_put.sequence)).await.status, 404);
}

/// Found by a review: a document opened from a bucket shares the console's host and port; it
/// runs sandboxed, in an origin of its own, so uploaded HTML cannot read the console.
#[tokio::test]
async fn objects_are_served_sandboxed_from_the_consoles_origin_issue_22() {
    let server = Server::start(Transport::Http).await;
    create_bucket(&server.s3(), "art").await;
    put(&server.s3(), "art", "report.html", b"<script>fetch('/_console/buckets')</script>").await;
    let request = server.request("GET", "/art/report.html").sign(
        artifact_store_conformance::raw::ROOT,
        std::time::SystemTime::now(),
        artifact_store_conformance::raw::Payload::Signed,
    );
    let got = server.send(&request).await;
    assert_eq!(got.status, 200);
    let policy = got.header("content-security-policy").expect("objects are served with a policy");
    assert!(policy.starts_with("sandbox ") && !policy.contains("allow-same-origin"), "{policy}");
}

#[tokio::test]
async fn a_sealed_package_shows_its_members_and_verifies_their_bytes_issue_22() {
    let server = Server::start(Transport::Http).await;
    let s3 = server.s3();
    create_bucket(&s3, "rel").await;
    // 1000 bytes are kept inline in the registry, 64 KiB go to the blob store.
    let members = [("v1/app.bin", bytes(64 * 1024, 1)), ("v1/notes.txt", bytes(1000, 2))];
    for (key, data) in &members {
        put(&s3, "rel", key, data).await;
    }
    expect(&server, &["package", "seal", "s3://rel/v1/", "--name", "app-1"], 0);
    let browser = Browser::signed_in(&server, ACCESS_KEY, SECRET_KEY).await;
    let list = browser.page("/_console/packages").await;
    assert!(list.contains("href=\"/_console/packages/app-1\""), "{list}");
    let page = browser.page("/_console/packages/app-1").await;
    assert!(page.contains("every member is still the version it names"), "{page}");
    for (key, data) in &members {
        assert!(page.contains(key) && page.contains(&blake3_hex(data)[..12]), "{key} on {page}");
    }
    let token = browser.form_token().await;
    let verified = browser.post("/_console/packages/app-1", &[("csrf", &token), ("action", "verify")]).await;
    assert_eq!(verified.status, 200, "{}", verified.text());
    assert!(verified.text().contains("Verified: the manifest is the sealed one"), "{}", verified.text());

    damage(&server, "rel", "v1/app.bin", &members[0].1, Damage::Flip(100)).await;
    let records = browser.page("/_console/packages/app-1").await;
    assert!(records.contains("every member is still the version it names"), "the records still hold: {records}");
    let failed = browser.post("/_console/packages/app-1", &[("csrf", &token), ("action", "verify")]).await;
    assert_eq!(failed.status, 200, "{}", failed.text());
    assert!(
        failed.text().contains("FAILED:") && failed.text().contains("v1/app.bin version null: its bytes hash to"),
        "{}",
        failed.text()
    );
    assert!(!failed.text().contains("v1/notes.txt version null"), "only the damaged member: {}", failed.text());

    // A user who may not read the manifest sees no package.
    let (access_key, secret_key) = user(&server, "dave", None);
    let dave = Browser::signed_in(&server, &access_key, &secret_key).await;
    assert!(!dave.page("/_console/packages").await.contains("app-1"));
    assert_eq!(dave.get("/_console/packages/app-1").await.status, 404);
}

#[tokio::test]
async fn the_operations_page_shows_readiness_and_whether_the_log_still_holds_its_checkpoint_issue_22() {
    let server = Server::start(Transport::Http).await;
    create_bucket(&server.s3(), "ops").await;
    put(&server.s3(), "ops", "k", b"v").await;
    let browser = Browser::signed_in(&server, ACCESS_KEY, SECRET_KEY).await;
    let page = browser.page("/_console/operations").await;
    assert!(page.contains("<dt>Ready</dt><dd><span class=\"good\">yes</span>"), "{page}");
    assert!(page.contains("none signed yet") || page.contains("none: no checkpoint key yet"), "{page}");

    let file = server.data_dir().join("checkpoints").join("first.json");
    std::fs::create_dir_all(file.parent().unwrap()).expect("checkpoints folder");
    expect(&server, &["checkpoint", "create", "--out", file.to_str().unwrap()], 0);
    let page = browser.page("/_console/operations").await;
    assert!(page.contains("the log still holds it"), "{page}");

    // The log rewritten behind the gateway's back, its chain recomputed: the checkpoint no
    // longer matches.
    let put_seq = server.object_events("ops", "k")[0].sequence;
    artifact_store_conformance::tamper::rewrite_payload(&server.registry_path(), put_seq, |payload| {
        payload["content"]["user_metadata"]["approved-by"] = "someone else".into();
    });
    let page = browser.page("/_console/operations").await;
    assert!(page.contains("the log no longer holds it"), "{page}");
}

#[tokio::test]
async fn a_bucket_is_browsed_a_page_at_a_time_with_its_versions_on_demand_issue_22() {
    let server = Server::start(Transport::Http).await;
    let s3 = server.s3();
    create_bucket(&s3, "many").await;
    enable_versioning(&s3, "many").await;
    // 201 keys, one of them with two versions: 201 entries of current keys, 202 of versions.
    let keys: Vec<String> = (0..201).map(|i| format!("k{i:03}")).collect();
    for key in &keys {
        put(&s3, "many", key, key.as_bytes()).await;
    }
    put(&s3, "many", "k000", b"again").await;
    let browser = Browser::signed_in(&server, ACCESS_KEY, SECRET_KEY).await;
    for (first, per_key) in [("/_console/buckets/many", 1), ("/_console/buckets/many?prefix=&versions=1", 2)] {
        let mut target = first.to_owned();
        let mut seen = Vec::new();
        let mut pages = 0;
        loop {
            let page = browser.page(&target).await;
            pages += 1;
            let rows = page.split("<tr>").filter(|row| row.contains("/_console/objects/many/"));
            // A version's own link in the versions table, the key's otherwise.
            let marker = if per_key == 1 { "<a" } else { "class=\"mono\"" };
            seen.extend(rows.map(|row| attribute_after(row, marker, "href").expect("a link")));
            match href_of(&page, ">Next page<") {
                Some(next) => target = next,
                None => break,
            }
            assert!(pages < 5, "paging does not end: {target}");
        }
        assert_eq!(pages, 2, "{first}: pages of 200");
        let expected = if per_key == 1 { 201 } else { 202 };
        assert_eq!(seen.len(), expected, "{first}: every entry once: {seen:?}");
        let distinct: std::collections::BTreeSet<&String> = seen.iter().collect();
        assert_eq!(distinct.len(), if per_key == 1 { 201 } else { 202 }, "{first}: no entry twice");
    }
}

#[tokio::test]
async fn a_key_with_many_versions_lists_its_newest_and_still_shows_the_oldest_issue_22() {
    let server = Server::start(Transport::Http).await;
    let s3 = server.s3();
    create_bucket(&s3, "hist").await;
    enable_versioning(&s3, "hist").await;
    let mut ids = Vec::new();
    for i in 0..102 {
        let out = s3
            .put_object()
            .bucket("hist")
            .key("app.bin")
            .body(ByteStream::from(format!("build {i}").into_bytes()))
            .send()
            .await
            .expect("put a version");
        ids.push(out.version_id().expect("a version id").to_owned());
    }
    let browser = Browser::signed_in(&server, ACCESS_KEY, SECRET_KEY).await;
    let page = browser.page(&object_page("hist", "app.bin")).await;
    let listed: Vec<&String> = ids.iter().filter(|id| page.contains(&format!(">{id}<"))).collect();
    assert_eq!(listed.len(), 100, "the newest 100 versions are listed");
    assert!(!page.contains(&format!(">{}<", ids[0])) && !page.contains(&format!(">{}<", ids[1])), "not the oldest two");
    assert!(page.contains("The newest 100 versions of this key"), "the page says it lists only some: {page}");

    let oldest = browser.page(&format!("{}?version={}", object_page("hist", "app.bin"), ids[0])).await;
    assert!(oldest.contains(&ids[0]), "an old version named is shown: {oldest}");
    assert!(oldest.contains(&blake3_hex(b"build 0")), "with its own digest: {oldest}");
    let missing = browser.get(&format!("{}?version=no-such-version", object_page("hist", "app.bin"))).await;
    assert_eq!(missing.status, 404, "{}", missing.text());
}

#[tokio::test]
async fn an_open_live_feed_ends_once_its_key_is_disabled_issue_22() {
    let server = Server::start(Transport::Http).await;
    let policy = r#"{"Statement":{"Effect":"Allow","Action":"artifact-store:ReadEvents","Resource":"*"}}"#;
    let (access_key, secret_key) = user(&server, "watcher", Some(policy));
    let watcher = Browser::signed_in(&server, &access_key, &secret_key).await;
    let request = server.request("GET", "/_console/feed/stream").header("cookie", watcher.cookie.as_deref().unwrap());
    let mut tcp = tokio::net::TcpStream::connect(server.addr()).await.expect("connect");
    tcp.write_all(&request.to_bytes()).await.expect("send");
    let mut seen = Vec::new();
    let mut chunk = [0; 4096];
    let read = tcp.read(&mut chunk).await.expect("the stream's head");
    seen.extend_from_slice(&chunk[..read]);
    assert!(String::from_utf8_lossy(&seen).starts_with("HTTP/1.1 200"), "{}", String::from_utf8_lossy(&seen));

    expect(&server, &["key", "disable", &access_key], 0);
    // The stream checks its session every 10 seconds and ends: the connection closes.
    let ended = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            match tcp.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(read) => seen.extend_from_slice(&chunk[..read]),
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the feed stayed open after its key was disabled");
}

/// Sends a change the console prepared, as the console's script does: its method, URL,
/// headers and body, as given.
async fn send_prepared(server: &Server, prepared: &RawResponse) -> RawResponse {
    assert_eq!(prepared.status, 200, "prepare: {}", prepared.text());
    let json: serde_json::Value = serde_json::from_slice(&prepared.body).expect("a prepared request");
    let url = json["url"].as_str().expect("a URL");
    let target = url.split_once(&server.host()).expect("a URL of this gateway").1;
    let mut request = server.request(json["method"].as_str().unwrap(), target);
    for (name, value) in json["headers"].as_object().unwrap() {
        request = request.header(name, value.as_str().unwrap());
    }
    server.send(&request.body(json["body"].as_str().unwrap().as_bytes().to_vec())).await
}

#[tokio::test]
async fn changes_from_the_console_are_s3_requests_in_the_users_name_refused_by_object_lock_as_over_s3_issue_22() {
    let server = Server::start(Transport::Http).await;
    let s3 = server.s3();
    s3.create_bucket().bucket("locked").object_lock_enabled_for_bucket(true).send().await.expect("lock bucket");
    let put = s3
        .put_object()
        .bucket("locked")
        .key("rel/app.tar")
        .body(ByteStream::from_static(b"app"))
        .send()
        .await
        .expect("put");
    let version = put.version_id().expect("a version").to_owned();
    let browser = Browser::signed_in(&server, ACCESS_KEY, SECRET_KEY).await;
    let page = browser.page(&format!("{}?version={version}", object_page("locked", "rel/app.tar"))).await;
    assert!(page.contains("Set legal hold ON") && page.contains("src=\"/_console/static/actions.js\""), "{page}");
    let token = browser.form_token().await;
    let object = [("csrf", token.as_str()), ("bucket", "locked"), ("key", "rel/app.tar"), ("version", &version)];
    let form = |extra: &[(&'static str, &'static str)]| -> Vec<(&str, &str)> {
        object.iter().copied().chain(extra.iter().copied()).collect()
    };

    // Without the session's token, nothing is prepared.
    let forged = browser.post("/_console/actions", &[("csrf", "0"), ("action", "delete")]).await;
    assert_eq!(forged.status, 403, "{}", forged.text());

    let hold = browser.post("/_console/actions", &form(&[("action", "legal-hold"), ("status", "ON")])).await;
    assert_eq!(send_prepared(&server, &hold).await.status, 200);
    let held = s3.get_object_legal_hold().bucket("locked").key("rel/app.tar").version_id(&version).send().await;
    assert_eq!(held.expect("legal hold").legal_hold().and_then(|h| h.status()).map(|s| s.as_str()), Some("ON"));
    let events = server.object_events("locked", "rel/app.tar");
    let recorded = events.iter().find(|e| e.event_type == "v1.legal_hold.set").expect("a legal hold event");
    assert_eq!(recorded.actor, ACCESS_KEY, "recorded in the user's name");

    // Deleting the held version is refused exactly as over S3.
    let delete = browser.post("/_console/actions", &form(&[("action", "delete")])).await;
    let refused = send_prepared(&server, &delete).await;
    assert_eq!((refused.status, refused.code().as_deref()), (403, Some("AccessDenied")), "{}", refused.text());
    let over_s3 = s3.delete_object().bucket("locked").key("rel/app.tar").version_id(&version).send().await;
    assert_eq!(artifact_store_conformance::sdk::failure(over_s3), (403, "AccessDenied".to_owned()));

    let tags = browser
        .post("/_console/actions", &form(&[("action", "tags"), ("tags", "stage=release\nteam=ops/build @2")]))
        .await;
    assert_eq!(send_prepared(&server, &tags).await.status, 200);
    let tagged = s3.get_object_tagging().bucket("locked").key("rel/app.tar").version_id(&version).send().await;
    let tagged: Vec<(String, String)> =
        tagged.expect("tags").tag_set().iter().map(|t| (t.key().to_owned(), t.value().to_owned())).collect();
    assert_eq!(tagged, [("stage".to_owned(), "release".to_owned()), ("team".to_owned(), "ops/build @2".to_owned())]);

    let release = browser.post("/_console/actions", &form(&[("action", "legal-hold"), ("status", "OFF")])).await;
    assert_eq!(send_prepared(&server, &release).await.status, 200);
    let delete = browser.post("/_console/actions", &form(&[("action", "delete")])).await;
    assert_eq!(send_prepared(&server, &delete).await.status, 204);
    let gone = s3.head_object().bucket("locked").key("rel/app.tar").version_id(&version).send().await;
    assert!(gone.is_err(), "the version is deleted");
}

#[tokio::test]
async fn uploads_from_the_console_are_the_users_own_put_and_multipart_requests_issue_22() {
    let server = Server::start(Transport::Http).await;
    create_bucket(&server.s3(), "drop").await;
    let browser = Browser::signed_in(&server, ACCESS_KEY, SECRET_KEY).await;
    let page = browser.page("/_console/buckets/drop?prefix=in%2F").await;
    assert!(page.contains("data-upload") && page.contains("data-prefix=\"in/\""), "{page}");
    let token = browser.form_token().await;
    let step = |fields: &[(&'static str, String)]| -> Vec<(String, String)> {
        [("csrf", token.clone()), ("bucket", "drop".to_owned())]
            .into_iter()
            .chain(fields.iter().cloned())
            .map(|(k, v)| (k.to_owned(), v))
            .collect()
    };
    let post = |fields: Vec<(String, String)>| {
        let browser = &browser;
        async move {
            let pairs: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            browser.post("/_console/actions", &pairs).await
        }
    };

    // One PUT, with its content type.
    let small = bytes(3000, 7);
    let put =
        post(step(&[("action", "upload".into()), ("key", "in/small.bin".into()), ("type", "text/plain".into())])).await;
    let json: serde_json::Value = serde_json::from_slice(&put.body).expect("JSON");
    let target = json["url"].as_str().unwrap().split_once(&server.host()).unwrap().1.to_owned();
    let request = server.request("PUT", &target).header("content-type", "text/plain").body(small.clone());
    assert_eq!(server.send(&request).await.status, 200);
    let got = server.s3().get_object().bucket("drop").key("in/small.bin").send().await.expect("get");
    assert_eq!(got.content_type(), Some("text/plain"));
    assert_eq!(got.body.collect().await.unwrap().into_bytes().as_ref(), small.as_slice());

    // A multipart upload, a part at a time.
    let large = bytes(5 * 1024 * 1024 + 1024, 8);
    let created =
        post(step(&[("action", "upload-create".into()), ("key", "in/large.bin".into()), ("type", "".into())])).await;
    let created = send_prepared(&server, &created).await;
    assert_eq!(created.status, 200, "{}", created.text());
    let text = created.text();
    let id = text.split("<UploadId>").nth(1).and_then(|rest| rest.split("</UploadId>").next()).expect("an upload id");
    let mut parts = Vec::new();
    for (number, chunk) in large.chunks(5 * 1024 * 1024).enumerate() {
        let fields = step(&[
            ("action", "upload-part".into()),
            ("key", "in/large.bin".into()),
            ("part", (number + 1).to_string()),
            ("upload", id.to_owned()),
        ]);
        let prepared: serde_json::Value = serde_json::from_slice(&post(fields).await.body).expect("JSON");
        let target = prepared["url"].as_str().unwrap().split_once(&server.host()).unwrap().1.to_owned();
        let answer = server.send(&server.request("PUT", &target).body(chunk.to_vec())).await;
        assert_eq!(answer.status, 200, "{}", answer.text());
        parts.push(format!("{} {}", number + 1, answer.header("etag").expect("an ETag")));
    }
    let fields = step(&[
        ("action", "upload-complete".into()),
        ("key", "in/large.bin".into()),
        ("upload", id.to_owned()),
        ("parts", parts.join("\n")),
    ]);
    let done = send_prepared(&server, &post(fields).await).await;
    assert_eq!(done.status, 200, "{}", done.text());
    assert!(!done.text().contains("<Error>"), "{}", done.text());
    let page = browser.page(&object_page("drop", "in/large.bin")).await;
    assert!(page.contains(&blake3_hex(&large)), "the object is the file: {page}");
    let completed = server.object_events("drop", "in/large.bin");
    assert!(completed.iter().any(|e| e.event_type == "v1.multipart.completed" && e.actor == ACCESS_KEY));
}
