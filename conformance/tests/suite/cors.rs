//! CORS (issue 18): Put/Get/DeleteBucketCors checked as S3 checks them and recorded as
//! events; preflights answered from the rules without a signature; the `Access-Control-*`
//! headers on actual responses, signed, presigned and refused alike.

use std::time::{Duration, SystemTime};

use artifact_store_conformance::cli::expect;
use artifact_store_conformance::events::of_type;
use artifact_store_conformance::raw::{Key, Payload, ROOT, RawResponse, assert_refused};
use artifact_store_conformance::sdk::{create_bucket, failure, put};
use artifact_store_conformance::{ACCESS_KEY, Server, Transport};
use aws_sdk_s3::types::{CorsConfiguration, CorsRule};

const BUCKET: &str = "browsers";
const APP: &str = "https://app.example.com";

fn rule(origins: &[&str], methods: &[&str], headers: &[&str]) -> aws_sdk_s3::types::builders::CorsRuleBuilder {
    let mut rule = CorsRule::builder();
    for origin in origins {
        rule = rule.allowed_origins(*origin);
    }
    for method in methods {
        rule = rule.allowed_methods(*method);
    }
    for header in headers {
        rule = rule.allowed_headers(*header);
    }
    rule
}

fn config(rules: Vec<CorsRule>) -> CorsConfiguration {
    CorsConfiguration::builder().set_cors_rules(Some(rules)).build().expect("CORS configuration")
}

/// The app's origin may upload and read with any `x-amz-*` header; anyone may read.
fn uploads_from_the_app_and_public_reads() -> CorsConfiguration {
    config(vec![
        rule(&["https://*.example.com"], &["PUT", "POST", "GET"], &["content-type", "x-amz-*"])
            .id("uploads")
            .expose_headers("ETag")
            .expose_headers("x-amz-version-id")
            .max_age_seconds(600)
            .build()
            .expect("rule"),
        rule(&["*"], &["GET", "HEAD"], &[]).build().expect("rule"),
    ])
}

fn header<'r>(response: &'r RawResponse, name: &str) -> Option<&'r str> {
    response.header(name)
}

#[tokio::test]
async fn cors_rules_are_checked_recorded_and_answer_preflights_and_actual_requests_issue_18() {
    let server = Server::start(Transport::Http).await;
    let s3 = server.s3();
    create_bucket(&s3, BUCKET).await;
    put(&s3, BUCKET, "site/index.html", b"<html></html>").await;

    let preflight = |origin: Option<&str>, method: Option<&str>, headers: Option<&str>| {
        let mut request = server.request("OPTIONS", &format!("/{BUCKET}/site/index.html"));
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        if let Some(method) = method {
            request = request.header("access-control-request-method", method);
        }
        if let Some(headers) = headers {
            request = request.header("access-control-request-headers", headers);
        }
        request
    };

    // No configuration yet: S3's 404 for the read, 403 for a preflight.
    let (status, code) = failure(s3.get_bucket_cors().bucket(BUCKET).send().await);
    assert_eq!((status, code.as_str()), (404, "NoSuchCORSConfiguration"));
    let no_rules = server.send(&preflight(Some(APP), Some("GET"), None)).await;
    assert_refused(&no_rules, 403, "AccessForbidden", "preflight before any rule");
    assert!(no_rules.text().contains("CORS is not enabled for this bucket"), "{}", no_rules.text());

    // What S3 refuses is refused with its words, and records nothing.
    let before = server.events().len();
    let refusals = [
        (
            config(vec![rule(&["*"], &["PATCH"], &[]).build().expect("rule")]),
            "Found unsupported HTTP method in CORS config. Unsupported method is PATCH",
        ),
        (
            config(vec![rule(&["https://*.*.example.com"], &["GET"], &[]).build().expect("rule")]),
            "AllowedOrigin \"https://*.*.example.com\" can not have more than one wildcard.",
        ),
        (
            config(vec![rule(&["*"], &["GET"], &["x-*-*"]).build().expect("rule")]),
            "AllowedHeader \"x-*-*\" can not have more than one wildcard.",
        ),
    ];
    for (refused_config, message) in refusals {
        let refused = s3.put_bucket_cors().bucket(BUCKET).cors_configuration(refused_config).send().await;
        let err = refused.as_ref().expect_err(message);
        assert_eq!(err.as_service_error().and_then(|e| e.meta().message()), Some(message));
        assert_eq!(failure(refused), (400, "InvalidRequest".to_owned()));
    }
    server.assert_no_new_events(before, "refused CORS configurations");

    // Recorded, read back as given.
    s3.put_bucket_cors()
        .bucket(BUCKET)
        .cors_configuration(uploads_from_the_app_and_public_reads())
        .send()
        .await
        .expect("put bucket cors");
    let stored = s3.get_bucket_cors().bucket(BUCKET).send().await.expect("get bucket cors");
    assert_eq!(stored.cors_rules(), uploads_from_the_app_and_public_reads().cors_rules());
    let events = server.bucket_events(BUCKET);
    let set = of_type(&events, "v1.bucket.cors.set");
    assert_eq!(set.len(), 1);
    assert_eq!(set[0].actor, ACCESS_KEY);
    assert_eq!(set[0].payload["rules"][0]["allowed_origins"][0], "https://*.example.com");
    assert_eq!(set[0].payload["rules"][0]["max_age_seconds"], 600);

    // A preflight the first rule allows, unsigned.
    let allowed = server.send(&preflight(Some(APP), Some("PUT"), Some("Content-Type, X-Amz-Date"))).await;
    assert_eq!(allowed.status, 200, "{}", allowed.text());
    assert_eq!(header(&allowed, "access-control-allow-origin"), Some(APP));
    assert_eq!(header(&allowed, "access-control-allow-methods"), Some("PUT, POST, GET"));
    assert_eq!(header(&allowed, "access-control-allow-headers"), Some("Content-Type, X-Amz-Date"));
    assert_eq!(header(&allowed, "access-control-expose-headers"), Some("ETag, x-amz-version-id"));
    assert_eq!(header(&allowed, "access-control-max-age"), Some("600"));
    assert_eq!(header(&allowed, "access-control-allow-credentials"), Some("true"));
    // The second rule answers any origin with `*`, and no credentials.
    let anyone = server.send(&preflight(Some("https://elsewhere.test"), Some("GET"), None)).await;
    assert_eq!(anyone.status, 200, "{}", anyone.text());
    assert_eq!(header(&anyone, "access-control-allow-origin"), Some("*"));
    assert_eq!(header(&anyone, "access-control-allow-methods"), Some("GET, HEAD"));
    assert_eq!(header(&anyone, "access-control-allow-credentials"), None);

    // What no rule allows: another origin's PUT, a header the rule does not name.
    for (origin, method, headers) in
        [("https://elsewhere.test", "PUT", None), (APP, "PUT", Some("x-custom-header")), (APP, "DELETE", None)]
    {
        let response = server.send(&preflight(Some(origin), Some(method), headers)).await;
        assert_refused(&response, 403, "AccessForbidden", &format!("{origin} {method} {headers:?}"));
        assert_eq!(header(&response, "access-control-allow-origin"), None);
    }
    // A malformed preflight.
    let no_origin = server.send(&preflight(None, Some("GET"), None)).await;
    assert_refused(&no_origin, 400, "BadRequest", "preflight without Origin");
    let bad_method = server.send(&preflight(Some(APP), Some("PATCH"), None)).await;
    assert_refused(&bad_method, 400, "BadRequest", "preflight for PATCH");
    let no_method = server.send(&preflight(Some(APP), None, None)).await;
    assert_refused(&no_method, 400, "BadRequest", "preflight without a method");
    let missing = server
        .send(
            &server
                .request("OPTIONS", "/no-such-bucket/x")
                .header("origin", APP)
                .header("access-control-request-method", "GET"),
        )
        .await;
    assert_refused(&missing, 404, "NoSuchBucket", "preflight to a missing bucket");

    // Actual requests from a page: signed, presigned, and refused (anonymous).
    let target = format!("/{BUCKET}/site/index.html");
    let signed = server.request("GET", &target).header("origin", APP).sign(ROOT, SystemTime::now(), Payload::Signed);
    let read = server.send(&signed).await;
    assert_eq!(read.status, 200, "{}", read.text());
    assert_eq!(read.body, b"<html></html>");
    assert_eq!(header(&read, "access-control-allow-origin"), Some(APP));
    assert_eq!(header(&read, "access-control-expose-headers"), Some("ETag, x-amz-version-id"));
    let presigned =
        server.request("GET", &target).header("origin", APP).presign(ROOT, SystemTime::now(), Duration::from_secs(60));
    let read = server.send(&presigned).await;
    assert_eq!(read.status, 200, "{}", read.text());
    assert_eq!(header(&read, "access-control-allow-origin"), Some(APP));
    let anonymous = server.send(&server.request("GET", &target).header("origin", "https://elsewhere.test")).await;
    assert_refused(&anonymous, 403, "AccessDenied", "anonymous read");
    assert_eq!(header(&anonymous, "access-control-allow-origin"), Some("*"), "a page may read why it was refused");
    // No Origin, no CORS headers; an origin no rule allows for the method, none either.
    let plain = server.send(&server.request("GET", &target).sign(ROOT, SystemTime::now(), Payload::Signed)).await;
    assert_eq!(header(&plain, "access-control-allow-origin"), None);
    let delete = server.request("DELETE", &format!("/{BUCKET}/site/gone.html")).header("origin", APP).sign(
        ROOT,
        SystemTime::now(),
        Payload::Signed,
    );
    let deleted = server.send(&delete).await;
    assert_eq!(deleted.status, 204);
    assert_eq!(header(&deleted, "access-control-allow-origin"), None);

    // Deleted: recorded once, then preflights are refused again.
    s3.delete_bucket_cors().bucket(BUCKET).send().await.expect("delete bucket cors");
    s3.delete_bucket_cors().bucket(BUCKET).send().await.expect("delete bucket cors again");
    assert_eq!(of_type(&server.bucket_events(BUCKET), "v1.bucket.cors.deleted").len(), 1);
    let (status, code) = failure(s3.get_bucket_cors().bucket(BUCKET).send().await);
    assert_eq!((status, code.as_str()), (404, "NoSuchCORSConfiguration"));
    assert_refused(
        &server.send(&preflight(Some(APP), Some("GET"), None)).await,
        403,
        "AccessForbidden",
        "preflight after the rules were deleted",
    );
}

#[tokio::test]
async fn a_user_without_permission_cannot_change_cors_issue_18() {
    let server = Server::start(Transport::Http).await;
    let s3 = server.s3();
    create_bucket(&s3, BUCKET).await;
    expect(&server, &["user", "create", "web"], 0);
    let key: serde_json::Value =
        serde_json::from_str(expect(&server, &["--json", "key", "create", "web"], 0).stdout.trim()).expect("key JSON");
    let web = server.s3_as(Key {
        access_key: key["access_key"].as_str().expect("access key"),
        secret_key: key["secret_key"].as_str().expect("secret key"),
    });

    let before = server.events().len();
    let refused =
        web.put_bucket_cors().bucket(BUCKET).cors_configuration(uploads_from_the_app_and_public_reads()).send();
    assert_eq!(failure(refused.await), (403, "AccessDenied".to_owned()));
    server.assert_no_new_events(before, "a CORS change by a user with no policy");
    let (status, code) = failure(web.get_bucket_cors().bucket(BUCKET).send().await);
    assert_eq!((status, code.as_str()), (403, "AccessDenied"));
}
