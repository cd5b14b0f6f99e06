//! Only signed intent runs (issue 16): a request is obeyed only for what its signature
//! covers, when and where it was signed for. Each test performs an attack with hand-signed
//! requests ([`artifact_store_conformance::raw`]) and checks AWS's error code, that nothing
//! changed (the object is still there, or was never stored) and that no event was recorded;
//! then sends the honest request once, so the refusal is known to come from the one thing
//! that was wrong.
//!
//! Over HTTP only: the checks read the request head, which is the same over HTTPS
//! (`bad_input.rs` runs the signature basics over both).

use std::time::{Duration, SystemTime};

use artifact_store_conformance::raw::{Payload, ROOT, RawResponse, S3, Scope, assert_refused, encode};
use artifact_store_conformance::sdk::{get, put};
use artifact_store_conformance::{Server, Transport};

const BUCKET: &str = "signing";

/// A week in seconds: the longest a presigned URL may be valid.
const WEEK: u64 = 604_800;

fn object_path(key: &str) -> String {
    format!("/{BUCKET}/{}", encode(key, true))
}

/// A server with [`BUCKET`] holding `key` = `data`, and the number of events so far.
async fn with_object(key: &str, data: &[u8]) -> (Server, usize) {
    let server = Server::start(Transport::Http).await;
    let s3 = server.s3();
    s3.create_bucket().bucket(BUCKET).send().await.expect("create bucket");
    put(&s3, BUCKET, key, data).await;
    let before = server.events().len();
    (server, before)
}

/// Asserts that the error document has `<element>value</element>` (compared unescaped).
fn assert_detail(response: &RawResponse, element: &str, value: &str, what: &str) {
    let expected = format!("<{element}>{value}</{element}>");
    let text =
        response.text().replace("&apos;", "'").replace("&quot;", "\"").replace("&lt;", "<").replace("&amp;", "&");
    assert!(text.contains(&expected), "{what}: expected {expected} in {}", response.text());
}

#[tokio::test]
async fn sig_v2_requests_dated_outside_15_minutes_are_refused() {
    let (server, before) = with_object("kept", b"kept bytes").await;
    let path = object_path("kept");
    let now = SystemTime::now();
    let year = Duration::from_secs(365 * 24 * 3600);
    let attacks = [
        ("DELETE dated a year ago", server.request("DELETE", &path).sign_v2(ROOT, now - year)),
        (
            "DELETE dated 20 minutes ahead",
            server.request("DELETE", &path).sign_v2(ROOT, now + Duration::from_secs(1200)),
        ),
        (
            "DELETE with x-amz-date a year ago beside a current Date",
            server
                .request("DELETE", &path)
                .header("x-amz-date", &httpdate::fmt_http_date(now - year))
                .sign_v2(ROOT, now),
        ),
    ];
    for (what, request) in attacks {
        let response = server.send(&request).await;
        assert_refused(&response, 403, "RequestTimeTooSkewed", what);
        assert_detail(&response, "MaxAllowedSkewMilliseconds", "900000", what);
    }
    let undated = server.request("DELETE", &path).header("x-amz-date", "last year").sign_v2(ROOT, now);
    assert_refused(&server.send(&undated).await, 403, "AccessDenied", "DELETE with an unreadable x-amz-date");
    server.assert_no_new_events(before, "old SigV2 requests");
    assert_eq!(get(&server.s3(), BUCKET, "kept").await, b"kept bytes");

    // Dated now, the same DELETE is obeyed: SigV2 itself works.
    let response = server.send(&server.request("DELETE", &path).sign_v2(ROOT, SystemTime::now())).await;
    assert_eq!(response.status, 204, "a current SigV2 DELETE: {}", response.text());
    server.assert_absent(BUCKET, "kept").await;
}

#[tokio::test]
async fn sig_v2_signatures_cover_amz_headers_and_presigned_expiry() {
    let (server, before) = with_object("kept", b"kept bytes").await;
    let added = server
        .request("PUT", &object_path("v2-added"))
        .body(b"data".to_vec())
        .sign_v2(ROOT, SystemTime::now())
        .header("x-amz-meta-owner", "mallory");
    assert_refused(
        &server.send(&added).await,
        403,
        "SignatureDoesNotMatch",
        "SigV2 PUT with a header added after signing",
    );
    let expired =
        server.request("GET", &object_path("kept")).presign_v2(ROOT, SystemTime::now() - Duration::from_secs(60));
    assert_refused(&server.send(&expired).await, 403, "AccessDenied", "expired SigV2 presigned GET");
    server.assert_no_new_events(before, "SigV2 refusals");
    server.assert_absent(BUCKET, "v2-added").await;

    let signed = server
        .request("PUT", &object_path("v2-signed"))
        .header("x-amz-meta-owner", "alice")
        .body(b"data".to_vec())
        .sign_v2(ROOT, SystemTime::now());
    let response = server.send(&signed).await;
    assert_eq!(response.status, 200, "SigV2 PUT with a signed x-amz-meta header: {}", response.text());
    let head = server.s3().head_object().bucket(BUCKET).key("v2-signed").send().await.expect("head");
    assert_eq!(head.metadata().and_then(|m| m.get("owner")).map(String::as_str), Some("alice"));
    let in_time =
        server.request("GET", &object_path("kept")).presign_v2(ROOT, SystemTime::now() + Duration::from_secs(300));
    let response = server.send(&in_time).await;
    assert_eq!((response.status, response.body.as_slice()), (200, b"kept bytes".as_slice()), "{}", response.text());
}

/// Found by a review: a SigV2 signature covers the path, not the query, and the registry API
/// names its object and filters in the query. A SigV2 URL presigned for one object's
/// retrieval records, with another object named in its query, read that object's records; a
/// filtered event feed's, with its filter taken off, the whole log. A SigV2 registry call with
/// any parameter is refused.
#[tokio::test]
async fn sig_v2_registry_calls_cannot_name_what_their_signature_leaves_out() {
    let (server, _) = with_object("kept", b"kept bytes").await;
    let in_five_minutes = SystemTime::now() + Duration::from_secs(300);
    let presigned = server.request("GET", "/_registry/retrievals").presign_v2(ROOT, in_five_minutes);
    let answer = server.send(&presigned.with_query(&format!("bucket={BUCKET}&key=kept"))).await;
    assert_refused(&answer, 403, "AccessDenied", "a presigned registry call with an object named in its query");
    let header_signed = server.request("GET", "/_registry/events").sign_v2(ROOT, SystemTime::now());
    let answer = server.send(&header_signed.with_query("limit=3")).await;
    assert_refused(&answer, 403, "AccessDenied", "a SigV2 registry call with a filter in its query");
    // What the signature covers still works: the path alone.
    let header_signed = server.request("GET", "/_registry/events").sign_v2(ROOT, SystemTime::now());
    let answer = server.send(&header_signed).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let presigned = server.request("GET", "/_registry/events").presign_v2(ROOT, in_five_minutes);
    let answer = server.send(&presigned).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
}

/// Found by an attacker's pass: s3s's SigV2 string to sign leaves out the subresources S3
/// gained after SigV2 (`publicAccessBlock`, `legal-hold`, `retention`, `policyStatus`, ...),
/// so one added to a SigV2 request after it was signed made it another operation: a
/// presigned `DELETE` of a bucket became DeletePublicAccessBlock. SigV2 requests naming them
/// are refused.
#[tokio::test]
async fn sig_v2_requests_cannot_gain_a_subresource_their_signature_leaves_out() {
    use aws_sdk_s3::types::PublicAccessBlockConfiguration;

    let (server, _) = with_object("kept", b"kept bytes").await;
    let s3 = server.s3();
    let block =
        PublicAccessBlockConfiguration::builder().block_public_policy(true).restrict_public_buckets(true).build();
    s3.put_public_access_block().bucket(BUCKET).public_access_block_configuration(block).send().await.expect("block");
    let before = server.events().len();
    let bucket = format!("/{BUCKET}");
    let in_five_minutes = SystemTime::now() + Duration::from_secs(300);
    let presigned_delete = server.request("DELETE", &bucket).presign_v2(ROOT, in_five_minutes);
    let answer = server.send(&presigned_delete.with_query("publicAccessBlock")).await;
    assert_refused(&answer, 403, "AccessDenied", "a presigned DeleteBucket turned DeletePublicAccessBlock");
    let header_signed = server.request("GET", &bucket).sign_v2(ROOT, SystemTime::now());
    let answer = server.send(&header_signed.with_query("policyStatus")).await;
    assert_refused(&answer, 403, "AccessDenied", "a SigV2 ListObjects turned GetBucketPolicyStatus");
    let presigned_get = server.request("GET", &object_path("kept")).presign_v2(ROOT, in_five_minutes);
    let answer = server.send(&presigned_get.with_query("attributes")).await;
    assert_refused(&answer, 403, "AccessDenied", "a presigned GetObject turned GetObjectAttributes");
    server.assert_no_new_events(before, "SigV2 requests with subresources added");
    let kept = s3.get_public_access_block().bucket(BUCKET).send().await.expect("the block stays");
    assert_eq!(kept.public_access_block_configuration().and_then(|c| c.block_public_policy()), Some(true));
    // What the signature covers still works.
    let presigned_get = server.request("GET", &object_path("kept")).presign_v2(ROOT, in_five_minutes);
    assert_eq!(server.send(&presigned_get).await.body, b"kept bytes");
}

/// A SigV2 request for a bucket alone is signed with `/bucket/` as its
/// CanonicalizedResource (AWS's examples; botocore, the Java SDK, s3cmd), and botocore sends
/// it path-style to `/bucket`. s3s signed the path as sent, `/bucket`, so every such request
/// from boto3 (a presigned ListObjectsV2, GetBucketVersioning, header-signed ones) failed with
/// `SignatureDoesNotMatch`.
#[tokio::test]
async fn sig_v2_bucket_requests_sent_to_the_bucket_and_signed_with_its_slash_are_obeyed() {
    let (server, before) = with_object("kept", b"kept bytes").await;
    let bucket = format!("/{BUCKET}");
    let signed = format!("/{BUCKET}/");
    let in_five_minutes = SystemTime::now() + Duration::from_secs(300);

    let list = server.request("GET", &format!("{bucket}?list-type=2&encoding-type=url"));
    let response = server.send(&list.presign_v2_as(ROOT, in_five_minutes, &signed)).await;
    assert_eq!(response.status, 200, "presigned ListObjectsV2: {}", response.text());
    assert!(response.text().contains("<Key>kept</Key>"), "{}", response.text());
    let versioning = server.request("GET", &format!("{bucket}?versioning"));
    let response = server.send(&versioning.presign_v2_as(ROOT, in_five_minutes, &format!("{signed}?versioning"))).await;
    assert_eq!(response.status, 200, "presigned GetBucketVersioning: {}", response.text());
    assert!(response.text().contains("VersioningConfiguration"), "{}", response.text());
    let versions = server.request("GET", &format!("{bucket}?versions"));
    let response = server.send(&versions.sign_v2_as(ROOT, SystemTime::now(), &format!("{signed}?versions"))).await;
    assert_eq!(response.status, 200, "header-signed ListObjectVersions: {}", response.text());
    assert!(response.text().contains("<Key>kept</Key>"), "{}", response.text());
    let head = server.request("HEAD", &bucket).sign_v2_as(ROOT, SystemTime::now(), &signed);
    assert_eq!(server.send(&head).await.status, 200, "header-signed HeadBucket");

    // The signature still binds the bucket and the subresource.
    let other_bucket = server.request("GET", "/other?versioning");
    let response =
        server.send(&other_bucket.presign_v2_as(ROOT, in_five_minutes, &format!("{signed}?versioning"))).await;
    assert_refused(&response, 403, "SignatureDoesNotMatch", "GetBucketVersioning signed for another bucket");
    let turned = server.request("GET", &format!("{bucket}?versioning"));
    let response = server.send(&turned.presign_v2_as(ROOT, in_five_minutes, &signed)).await;
    assert_refused(&response, 403, "SignatureDoesNotMatch", "a presigned ListObjects turned GetBucketVersioning");
    server.assert_no_new_events(before, "SigV2 bucket reads and refusals");
}

#[tokio::test]
async fn amz_headers_added_after_signing_are_refused() {
    let (server, before) = with_object("source", b"source bytes").await;
    let path = object_path("target");
    let signed_put =
        || server.request("PUT", &path).body(b"target bytes".to_vec()).sign(ROOT, SystemTime::now(), Payload::Signed);
    let presigned_put = || {
        server
            .request("PUT", &path)
            .presign(ROOT, SystemTime::now(), Duration::from_secs(300))
            .body(b"target bytes".to_vec())
    };
    let attacks = [
        ("x-amz-copy-source", "/signing/source", signed_put()),
        ("x-amz-meta-owner", "mallory", signed_put()),
        ("x-amz-tagging", "owner=mallory", signed_put()),
        ("x-amz-meta-owner", "mallory", presigned_put()),
    ];
    for (name, value, request) in attacks {
        let what = format!("{name} added to a signed PUT");
        let response = server.send(&request.header(name, value)).await;
        assert_refused(&response, 403, "AccessDenied", &what);
        assert_detail(&response, "Message", "There were headers present in the request which were not signed", &what);
        assert_detail(&response, "HeadersNotSigned", name, &what);
    }
    server.assert_no_new_events(before, "unsigned x-amz-* headers");
    server.assert_absent(BUCKET, "target").await;

    // Signed, the same headers are obeyed.
    let signed = server
        .request("PUT", &path)
        .header("x-amz-meta-owner", "alice")
        .header("x-amz-tagging", "owner=alice")
        .body(b"target bytes".to_vec())
        .sign(ROOT, SystemTime::now(), Payload::Signed);
    let response = server.send(&signed).await;
    assert_eq!(response.status, 200, "PUT with signed x-amz-* headers: {}", response.text());
    let head = server.s3().head_object().bucket(BUCKET).key("target").send().await.expect("head");
    assert_eq!(head.metadata().and_then(|m| m.get("owner")).map(String::as_str), Some("alice"));
    assert_eq!(get(&server.s3(), BUCKET, "target").await, b"target bytes");
}

/// A SigV4 signature by [`ROOT`] of `GET target` over `signed` (name, value) headers only,
/// `host` left out, as no signer library allows: the string to sign, computed here. With
/// `presign`, the signing fields go in the query (`target` has none of its own).
fn sign_without_host(target: &str, signed: &[(&str, &str)], presign: bool) -> (String, Vec<(String, String)>) {
    use hmac::{KeyInit as _, Mac as _};
    use sha2::Digest as _;
    let hmac = |key: &[u8], data: &str| {
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key).expect("any key length");
        mac.update(data.as_bytes());
        mac.finalize().into_bytes().to_vec()
    };
    let now = time::OffsetDateTime::now_utc();
    let date = format!("{:04}{:02}{:02}", now.year(), u8::from(now.month()), now.day());
    let amz_date = format!("{date}T{:02}{:02}{:02}Z", now.hour(), now.minute(), now.second());
    let scope = format!("{date}/us-east-1/s3/aws4_request");
    let mut headers: Vec<(String, String)> = signed.iter().map(|(n, v)| ((*n).to_owned(), (*v).to_owned())).collect();
    if !presign {
        headers.push(("x-amz-content-sha256".to_owned(), "UNSIGNED-PAYLOAD".to_owned()));
        headers.push(("x-amz-date".to_owned(), amz_date.clone()));
    }
    headers.sort();
    let names = headers.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>().join(";");
    let mut query = Vec::new();
    if presign {
        query = vec![
            ("X-Amz-Algorithm".to_owned(), "AWS4-HMAC-SHA256".to_owned()),
            ("X-Amz-Credential".to_owned(), encode(&format!("{}/{scope}", ROOT.access_key), false)),
            ("X-Amz-Date".to_owned(), amz_date.clone()),
            ("X-Amz-Expires".to_owned(), "300".to_owned()),
            ("X-Amz-SignedHeaders".to_owned(), encode(&names, false)),
        ];
    }
    let canonical_query = query.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&");
    let canonical_headers: String = headers.iter().map(|(n, v)| format!("{n}:{v}\n")).collect();
    let canonical = format!("GET\n{target}\n{canonical_query}\n{canonical_headers}\n{names}\nUNSIGNED-PAYLOAD");
    let to_sign =
        format!("AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}", hex::encode(sha2::Sha256::digest(canonical.as_bytes())));
    let mut key = hmac(format!("AWS4{}", ROOT.secret_key).as_bytes(), &date);
    for part in ["us-east-1", "s3", "aws4_request"] {
        key = hmac(&key, part);
    }
    let signature = hex::encode(hmac(&key, &to_sign));
    if presign {
        return (format!("{target}?{canonical_query}&X-Amz-Signature={signature}"), headers);
    }
    let credential = format!("{}/{scope}", ROOT.access_key);
    headers.push((
        "authorization".to_owned(),
        format!("AWS4-HMAC-SHA256 Credential={credential}, SignedHeaders={names}, Signature={signature}"),
    ));
    (target.to_owned(), headers)
}

/// SigV4 signs `Host`: a signature that leaves it out would hold for every bucket of a
/// virtual-hosted endpoint (the bucket is then in the host, not the signed path).
#[tokio::test]
async fn signatures_that_leave_the_host_out_are_refused() {
    let (server, before) = with_object("kept", b"kept bytes").await;
    let path = object_path("kept");
    for presign in [false, true] {
        let what = if presign { "a presigned GET without host" } else { "a header-signed GET without host" };
        let signed: &[(&str, &str)] = if presign { &[("range", "bytes=0-3")] } else { &[] };
        let (target, headers) = sign_without_host(&path, signed, presign);
        let request = headers.iter().fold(server.request("GET", &target), |request, (n, v)| request.header(n, v));
        let response = server.send(&request).await;
        assert_refused(&response, 403, "AccessDenied", what);
        assert_detail(&response, "HeadersNotSigned", "host", what);
    }
    server.assert_no_new_events(before, "signatures without host");
    // With host signed, the same GET is served.
    let response = server.send(&server.request("GET", &path).sign(ROOT, SystemTime::now(), Payload::Unsigned)).await;
    assert_eq!(response.status, 200, "{}", response.text());
}

/// s3s checks a form's policy instead of a header or query signature only when the request's
/// one `Content-Type` parses as `multipart/form-data`. A near miss is signed as any other
/// request, so it must not switch off the checks of what that signature covers.
#[tokio::test]
async fn a_content_type_that_only_looks_like_a_form_keeps_every_signature_check() {
    let (server, before) = with_object("kept", b"kept bytes").await;
    let start = format!("{}?uploads", object_path("upload"));
    let presigned =
        |seconds: u64| server.request("POST", &start).presign(ROOT, SystemTime::now(), Duration::from_secs(seconds));
    let near_misses = ["multipart/form-datax", "multipart/form-data; boundary=\"x", "Multipart/Form-Data-X"];
    for content_type in near_misses {
        for (name, value) in [("x-amz-meta-owner", "mallory"), ("x-amz-tagging", "owner=mallory")] {
            let what = format!("{name} added to a presigned POST sent as {content_type}");
            let request = presigned(300).header("content-type", content_type).header(name, value);
            let response = server.send(&request).await;
            assert_refused(&response, 403, "AccessDenied", &what);
            assert_detail(&response, "HeadersNotSigned", name, &what);
        }
        let what = format!("presigned POST valid for 10^9 s sent as {content_type}");
        let response = server.send(&presigned(1_000_000_000).header("content-type", content_type)).await;
        assert_refused(&response, 400, "AuthorizationQueryParametersError", &what);
    }
    server.assert_no_new_events(before, "near-miss form content types");

    // The same presigned POST, with nothing added, starts the upload.
    let response = server.send(&presigned(300).header("content-type", "multipart/form-datax")).await;
    assert_eq!(response.status, 200, "presigned POST ?uploads: {}", response.text());
    assert!(response.text().contains("<UploadId>"), "{}", response.text());
}

#[tokio::test]
async fn presigned_urls_valid_over_a_week_or_for_negative_time_are_refused() {
    let (server, before) = with_object("kept", b"kept bytes").await;
    let presigned = |seconds: u64| {
        server.request("PUT", &object_path("long")).presign(ROOT, SystemTime::now(), Duration::from_secs(seconds))
    };
    let over_a_week = "X-Amz-Expires must be less than a week (in seconds); that is, the given X-Amz-Expires must be less than 604800 seconds";
    for seconds in [WEEK + 1, 1_000_000_000] {
        let what = format!("presigned PUT valid for {seconds} s");
        let response = server.send(&presigned(seconds).body(b"late".to_vec())).await;
        assert_refused(&response, 400, "AuthorizationQueryParametersError", &what);
        assert_detail(&response, "Message", over_a_week, &what);
    }
    // No signer makes a negative expiry; AWS refuses it before looking at the signature.
    let negative = presigned(60).target().replace("X-Amz-Expires=60&", "X-Amz-Expires=-1&");
    let response = server.send(&server.request("PUT", &negative).body(b"late".to_vec())).await;
    assert_refused(&response, 400, "AuthorizationQueryParametersError", "presigned PUT valid for -1 s");
    assert_detail(&response, "Message", "X-Amz-Expires must be non-negative", "presigned PUT valid for -1 s");
    server.assert_no_new_events(before, "presigned URLs valid too long");
    server.assert_absent(BUCKET, "long").await;

    let response = server.send(&presigned(WEEK).body(b"a week".to_vec())).await;
    assert_eq!(response.status, 200, "presigned PUT valid for a week: {}", response.text());
}

#[tokio::test]
async fn credential_scopes_for_another_region_or_service_are_refused() {
    let (server, before) = with_object("kept", b"kept bytes").await;
    let path = object_path("kept");
    let (eu, iam) = (Scope { region: "eu-west-1", service: "s3" }, Scope { region: "us-east-1", service: "iam" });
    let now = SystemTime::now();
    let region = "the region 'eu-west-1' is wrong; expecting 'us-east-1'";
    let service = "incorrect service 'iam'. This endpoint belongs to 's3'.";
    let header = "The authorization header is malformed";
    let query = "Error parsing the X-Amz-Credential parameter";
    let attacks = [
        (
            "DELETE signed for eu-west-1",
            server.request("DELETE", &path).sign_in(eu, ROOT, now, Payload::Signed),
            header,
            region,
        ),
        (
            "DELETE signed for iam",
            server.request("DELETE", &path).sign_in(iam, ROOT, now, Payload::Signed),
            header,
            service,
        ),
        (
            "registry API signed for eu-west-1",
            server.request("GET", "/_registry/events").sign_in(eu, ROOT, now, Payload::Signed),
            header,
            region,
        ),
        (
            "DELETE presigned for eu-west-1",
            server.request("DELETE", &path).presign_in(eu, ROOT, now, Duration::from_secs(300)),
            query,
            region,
        ),
        (
            "DELETE presigned for iam",
            server.request("DELETE", &path).presign_in(iam, ROOT, now, Duration::from_secs(300)),
            query,
            service,
        ),
    ];
    for (what, request, prefix, reason) in attacks {
        let response = server.send(&request).await;
        let code = if prefix == header { "AuthorizationHeaderMalformed" } else { "AuthorizationQueryParametersError" };
        assert_refused(&response, 400, code, what);
        assert_detail(&response, "Message", &format!("{prefix}; {reason}"), what);
        if reason == region {
            assert_detail(&response, "Region", "us-east-1", what);
        }
    }
    server.assert_no_new_events(before, "requests signed for another scope");
    assert_eq!(get(&server.s3(), BUCKET, "kept").await, b"kept bytes");

    let response =
        server.send(&server.request("DELETE", &path).sign_in(S3, ROOT, SystemTime::now(), Payload::Signed)).await;
    assert_eq!(response.status, 204, "DELETE signed for us-east-1: {}", response.text());
}
