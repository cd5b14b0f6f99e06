//! Faults and abuse (issue 16): inputs and behaviours meant to break the server rather than
//! use it: dates past the end of the calendar, bodies with wrong or missing digests, sizes
//! over S3's limits, HEAD answers that carry a body, idle and slow connections.
//!
//! Each test performs the attack against the real binary and asserts AWS's answer and that
//! the server keeps serving.

use std::time::{Duration, SystemTime};

use artifact_store_conformance::raw::{Payload, ROOT, RawRequest, assert_refused, send_from};
use artifact_store_conformance::sdk::{failure, put};
use artifact_store_conformance::server::upstream_env;
use artifact_store_conformance::{Server, Transport, bytes, crc32_base64, md5_base64, over_http_and_https};
use aws_sdk_s3::primitives::DateTime;
use aws_sdk_s3::types::{
    BucketLifecycleConfiguration, DefaultRetention, Delete, ExpirationStatus, LifecycleExpiration, LifecycleRule,
    LifecycleRuleFilter, ObjectIdentifier, ObjectLockConfiguration, ObjectLockEnabled, ObjectLockRetentionMode,
    ObjectLockRule,
};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

over_http_and_https!(
    retention_periods_past_100_years_are_refused_issue_16,
    dates_at_the_end_of_the_calendar_are_served_issue_16,
    document_bodies_with_wrong_or_missing_digests_change_nothing_issue_16,
    uploads_over_5_gib_and_metadata_over_2_kib_are_refused_up_front_issue_16,
    head_answers_carry_no_body_over_http1_and_http2_issue_16,
);

fn lock_config(days: Option<i32>, years: Option<i32>) -> ObjectLockConfiguration {
    let retention =
        DefaultRetention::builder().mode(ObjectLockRetentionMode::Compliance).set_days(days).set_years(years).build();
    ObjectLockConfiguration::builder()
        .object_lock_enabled(ObjectLockEnabled::Enabled)
        .rule(ObjectLockRule::builder().default_retention(retention).build())
        .build()
}

/// A default retention of `Days=2147483647` or `Years=300000` was accepted, and every later
/// HEAD or GET in the bucket panicked on the date it gave the new versions.
async fn retention_periods_past_100_years_are_refused_issue_16(server: &Server) {
    let s3 = server.s3();
    s3.create_bucket().bucket("forever").object_lock_enabled_for_bucket(true).send().await.expect("create bucket");
    for (days, years) in [(Some(i32::MAX), None), (Some(36_501), None), (None, Some(300_000)), (None, Some(101))] {
        let refused = s3
            .put_object_lock_configuration()
            .bucket("forever")
            .object_lock_configuration(lock_config(days, years))
            .send()
            .await;
        assert_eq!(failure(refused), (400, "InvalidArgument".to_owned()), "Days {days:?} Years {years:?}");
    }
    // The longest AWS allows is kept, and a version stored under it reads back.
    s3.put_object_lock_configuration()
        .bucket("forever")
        .object_lock_configuration(lock_config(None, Some(100)))
        .send()
        .await
        .expect("100 years");
    let data = bytes(100, 1);
    put(&s3, "forever", "kept", &data).await;
    let head = s3.head_object().bucket("forever").key("kept").send().await.expect("HEAD");
    let until = head.object_lock_retain_until_date().expect("retention").secs();
    let in_99_years = i64::try_from(SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs())
        .unwrap()
        + 99 * 365 * 86_400;
    assert!(until > in_99_years, "retained until {until}");
    let got = s3.get_object().bucket("forever").key("kept").send().await.expect("GET");
    assert_eq!(got.body.collect().await.expect("body").into_bytes().as_ref(), data.as_slice());
}

/// The last instant S3's dates can carry, as an object's retention and as a lifecycle
/// expiration billions of days away: HEAD, GET and the lock reads answer.
async fn dates_at_the_end_of_the_calendar_are_served_issue_16(server: &Server) {
    let s3 = server.s3();
    s3.create_bucket().bucket("far").object_lock_enabled_for_bucket(true).send().await.expect("create bucket");
    let last = DateTime::from_secs(253_402_300_799);
    s3.put_object()
        .bucket("far")
        .key("locked")
        .body(bytes(10, 2).into())
        .object_lock_mode(aws_sdk_s3::types::ObjectLockMode::Governance)
        .object_lock_retain_until_date(last)
        .send()
        .await
        .expect("PUT locked until 9999");
    let head = s3.head_object().bucket("far").key("locked").send().await.expect("HEAD");
    assert_eq!(head.object_lock_retain_until_date(), Some(&last));
    let retention = s3.get_object_retention().bucket("far").key("locked").send().await.expect("retention");
    assert_eq!(retention.retention().and_then(|r| r.retain_until_date()), Some(&last));

    let rule = LifecycleRule::builder()
        .id("never")
        .status(ExpirationStatus::Enabled)
        .filter(LifecycleRuleFilter::builder().prefix("").build())
        .expiration(LifecycleExpiration::builder().days(i32::MAX).build())
        .build()
        .expect("rule");
    s3.create_bucket().bucket("far-lifecycle").send().await.expect("create bucket");
    s3.put_bucket_lifecycle_configuration()
        .bucket("far-lifecycle")
        .lifecycle_configuration(BucketLifecycleConfiguration::builder().rules(rule).build().expect("config"))
        .send()
        .await
        .expect("lifecycle");
    put(&s3, "far-lifecycle", "k", b"x").await;
    let head = s3.head_object().bucket("far-lifecycle").key("k").send().await.expect("HEAD");
    let expiration = head.expiration().expect("x-amz-expiration");
    assert!(expiration.contains("9999"), "{expiration}");
    let response =
        server.send(&server.request("GET", "/far-lifecycle/k").sign(ROOT, SystemTime::now(), Payload::Signed)).await;
    assert_eq!((response.status, response.body.as_slice()), (200, b"x".as_slice()));
}

// ---- Digests of document bodies ------------------------------------------------------------

/// A POST `?delete` of `keys` with `headers` (added before signing).
fn delete_request(server: &Server, bucket: &str, keys: &[&str], headers: &[(&str, String)]) -> RawRequest {
    let objects: String = keys.iter().map(|k| format!("<Object><Key>{k}</Key></Object>")).collect();
    let body = format!("<Delete>{objects}</Delete>");
    let mut request = server.request("POST", &format!("/{bucket}?delete")).body(body.into_bytes());
    for (name, value) in headers {
        request = request.header(name, value);
    }
    request.sign(ROOT, SystemTime::now(), Payload::Signed)
}

fn delete_body(keys: &[&str]) -> Vec<u8> {
    let objects: String = keys.iter().map(|k| format!("<Object><Key>{k}</Key></Object>")).collect();
    format!("<Delete>{objects}</Delete>").into_bytes()
}

/// A wrong `Content-MD5` on DeleteObjects still deleted; without any digest it deleted too.
async fn document_bodies_with_wrong_or_missing_digests_change_nothing_issue_16(server: &Server) {
    let s3 = server.s3();
    s3.create_bucket().bucket("digests").send().await.expect("create bucket");
    put(&s3, "digests", "kept", b"kept").await;
    let before = server.events().len();
    let body = delete_body(&["kept"]);

    let wrong_md5 = delete_request(server, "digests", &["kept"], &[("content-md5", md5_base64(b"other"))]);
    assert_refused(&server.send(&wrong_md5).await, 400, "BadDigest", "DeleteObjects with a wrong Content-MD5");
    let wrong_crc = delete_request(server, "digests", &["kept"], &[("x-amz-checksum-crc32", crc32_base64(b"other"))]);
    assert_refused(&server.send(&wrong_crc).await, 400, "BadDigest", "DeleteObjects with a wrong CRC32");
    let missing = delete_request(server, "digests", &["kept"], &[]);
    assert_refused(&server.send(&missing).await, 400, "InvalidRequest", "DeleteObjects without a digest");

    let rules = b"<LifecycleConfiguration><Rule><ID>r</ID><Filter><Prefix></Prefix></Filter><Status>Enabled</Status>\
        <Expiration><Days>1</Days></Expiration></Rule></LifecycleConfiguration>";
    let lifecycle = server
        .request("PUT", "/digests?lifecycle")
        .body(rules.to_vec())
        .header("content-md5", &md5_base64(b"other"))
        .sign(ROOT, SystemTime::now(), Payload::Signed);
    assert_refused(&server.send(&lifecycle).await, 400, "BadDigest", "PutBucketLifecycleConfiguration");
    let lifecycle =
        server.request("PUT", "/digests?lifecycle").body(rules.to_vec()).sign(ROOT, SystemTime::now(), Payload::Signed);
    assert_refused(&server.send(&lifecycle).await, 400, "InvalidRequest", "lifecycle without a digest");
    server.assert_no_new_events(before, "document bodies with wrong or missing digests");
    assert!(s3.head_object().bucket("digests").key("kept").send().await.is_ok(), "nothing was deleted");
    let lifecycle = s3.get_bucket_lifecycle_configuration().bucket("digests").send().await;
    assert_eq!(failure(lifecycle), (404, "NoSuchLifecycleConfiguration".to_owned()));

    // The right digest, either kind, is obeyed; the SDK's own (a CRC32) too.
    let right = delete_request(server, "digests", &["kept"], &[("content-md5", md5_base64(&body))]);
    assert_eq!(server.send(&right).await.status, 200);
    server.s3().head_object().bucket("digests").key("kept").send().await.expect_err("deleted");
    put(&s3, "digests", "again", b"again").await;
    let right = delete_request(
        server,
        "digests",
        &["again"],
        &[("x-amz-checksum-crc32", crc32_base64(&delete_body(&["again"])))],
    );
    assert_eq!(server.send(&right).await.status, 200);
    put(&s3, "digests", "sdk", b"sdk").await;
    let ids = ObjectIdentifier::builder().key("sdk").build().expect("identifier");
    let deleted = s3
        .delete_objects()
        .bucket("digests")
        .delete(Delete::builder().objects(ids).build().expect("delete"))
        .send()
        .await
        .expect("DeleteObjects by the SDK");
    assert_eq!(deleted.deleted().len(), 1);
}

// ---- Sizes over S3's limits ----------------------------------------------------------------

const OVER_5_GIB: u64 = 5 * 1024 * 1024 * 1024 + 1;

/// A PUT announcing more than 5 GiB was read before it was refused; 2,100 bytes of user
/// metadata were stored.
async fn uploads_over_5_gib_and_metadata_over_2_kib_are_refused_up_front_issue_16(server: &Server) {
    let s3 = server.s3();
    s3.create_bucket().bucket("sizes").send().await.expect("create bucket");
    let before = server.events().len();

    // The body never comes (the connection stays open): the answer must not wait for it.
    let huge = server
        .request("PUT", "/sizes/huge")
        .header("content-length", &OVER_5_GIB.to_string())
        .body(b"a few bytes".to_vec())
        .sign(ROOT, SystemTime::now(), Payload::Unsigned);
    let response = server.send(&huge).await;
    assert_refused(&response, 400, "EntityTooLarge", "Content-Length over 5 GiB");
    let chunked = server
        .request("PUT", "/sizes/huge-chunked")
        .header("content-encoding", "aws-chunked")
        .header("x-amz-decoded-content-length", &OVER_5_GIB.to_string())
        .header("x-amz-trailer", "x-amz-checksum-crc32")
        .body(b"5\r\nhello\r\n".to_vec())
        .sign(ROOT, SystemTime::now(), Payload::StreamingUnsignedTrailer);
    let response = server.send(&chunked).await;
    assert_refused(&response, 400, "EntityTooLarge", "x-amz-decoded-content-length over 5 GiB");

    let upload = s3.create_multipart_upload().bucket("sizes").key("parts").send().await.expect("create upload");
    let upload_id = upload.upload_id().expect("upload id");
    let part = server
        .request("PUT", &format!("/sizes/parts?partNumber=1&uploadId={upload_id}"))
        .header("content-length", &OVER_5_GIB.to_string())
        .body(b"a few bytes".to_vec())
        .sign(ROOT, SystemTime::now(), Payload::Unsigned);
    let response = server.send(&part).await;
    assert_refused(&response, 400, "EntityTooLarge", "UploadPart over 5 GiB");

    // 2 KiB of names and values is the most; one byte more is refused, on PUT and on
    // CreateMultipartUpload.
    let fits = "v".repeat(2048 - "name".len());
    s3.put_object()
        .bucket("sizes")
        .key("fits")
        .metadata("name", &fits)
        .body(b"x".to_vec().into())
        .send()
        .await
        .expect("2 KiB of metadata");
    let over = "v".repeat(2100);
    let refused =
        s3.put_object().bucket("sizes").key("over").metadata("name", &over).body(b"x".to_vec().into()).send().await;
    assert_eq!(failure(refused), (400, "MetadataTooLarge".to_owned()));
    let refused = s3
        .put_object()
        .bucket("sizes")
        .key("over")
        .metadata("name", format!("{fits}v"))
        .body(b"x".to_vec().into())
        .send()
        .await;
    assert_eq!(failure(refused), (400, "MetadataTooLarge".to_owned()));
    let refused = s3.create_multipart_upload().bucket("sizes").key("over").metadata("name", &over).send().await;
    assert_eq!(failure(refused), (400, "MetadataTooLarge".to_owned()));
    server.assert_absent("sizes", "over").await;
    server.assert_absent("sizes", "huge").await;
    // The upload created above and the object that fits: nothing else.
    assert_eq!(server.events().len(), before + 2);
}

// ---- HEAD answers ----------------------------------------------------------------------------

/// A HEAD answered with a 4xx carried a body over HTTP/2: curl failed with PROTOCOL_ERROR and
/// rclone logged "received DATA on a HEAD request". Neither HTTP version sends one now.
async fn head_answers_carry_no_body_over_http1_and_http2_issue_16(server: &Server) {
    let s3 = server.s3();
    s3.create_bucket().bucket("heads").send().await.expect("create bucket");
    put(&s3, "heads", "present", b"twelve bytes").await;
    let signed =
        |key: &str| server.request("HEAD", &format!("/heads/{key}")).sign(ROOT, SystemTime::now(), Payload::Signed);
    let anonymous = server.request("HEAD", "/heads/missing");

    let mut h2 = server.http2().await;
    for (request, status, what) in [
        (signed("missing"), 404, "HEAD of a missing key"),
        (anonymous.clone(), 403, "anonymous HEAD"),
        (signed("present"), 200, "HEAD of an object"),
        (server.request("HEAD", "/_health"), 200, "HEAD /_health"),
    ] {
        let response = h2.send(server, &request).await;
        assert_eq!(response.status, status, "{what} over HTTP/2");
        assert_eq!(response.body.as_ref().map(Vec::len).map_err(ToString::to_string), Ok(0), "{what} over HTTP/2");

        let response = server.send(&request).await;
        assert_eq!((response.status, response.body.len()), (status, 0), "{what} over HTTP/1.1");
    }
    let response = server.send(&signed("present")).await;
    assert_eq!(response.header("content-length"), Some("12"), "HEAD keeps the length of the GET");
}

// ---- Idle connections and slow bodies ------------------------------------------------------

/// A server over HTTP with `settings` (`ARTIFACT_STORE_*` variables) on top of the run's
/// backend.
async fn server_with(settings: &[(&str, &str)]) -> Server {
    let mut env = upstream_env();
    env.extend(settings.iter().map(|(name, value)| ((*name).to_owned(), (*value).to_owned())));
    Server::start_with(Transport::Http, &[], env).await
}

/// How long a test waits for the server to close what it should close: far longer than the
/// short timeouts configured, so only a server that never closes fails.
const CLOSE_WITHIN: Duration = Duration::from_secs(30);

/// Whether the server closes `stream` (end of stream or reset) within [`CLOSE_WITHIN`],
/// reading and dropping anything it sends first.
async fn closed_by_server(stream: &mut TcpStream) -> bool {
    let mut buffer = [0_u8; 4096];
    let reading = async {
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(CLOSE_WITHIN, reading).await.is_ok()
}

/// Idle HTTP/2 cleartext connections were never closed (HTTP/1 ones were, at 30 s), and no
/// credentials were needed to hold one.
#[tokio::test]
async fn idle_connections_are_closed_over_http1_and_http2_issue_16() {
    let server = server_with(&[("ARTIFACT_STORE_SERVER_IDLE_TIMEOUT", "2")]).await;
    // HTTP/2 by prior knowledge, with its settings exchanged and nothing else.
    let h2 = server.http2().await;
    let closed = tokio::time::timeout(CLOSE_WITHIN, h2.connection).await;
    assert!(closed.is_ok(), "an idle HTTP/2 connection stays open\n{}", server.log());
    // HTTP/2 after a request, which answers; then idle.
    let mut h2 = server.http2().await;
    assert_eq!(h2.send(&server, &server.request("GET", "/_health")).await.status, 200);
    assert!(tokio::time::timeout(CLOSE_WITHIN, h2.connection).await.is_ok(), "HTTP/2 idle after a request");
    // HTTP/1 with no request at all, and after a request on a kept-alive connection.
    let mut http1 = TcpStream::connect(server.addr()).await.expect("connect");
    assert!(closed_by_server(&mut http1).await, "an HTTP/1 connection that sends nothing stays open");
    let mut http1 = TcpStream::connect(server.addr()).await.expect("connect");
    http1
        .write_all(format!("GET /_health HTTP/1.1\r\nhost: {}\r\n\r\n", server.host()).as_bytes())
        .await
        .expect("send");
    assert!(closed_by_server(&mut http1).await, "an idle kept-alive HTTP/1 connection stays open");
}

/// Connections past `server.max_connections` are closed at once; the server serves again as
/// soon as one closes.
#[tokio::test]
async fn connections_past_the_cap_are_closed_issue_16() {
    let server = server_with(&[("ARTIFACT_STORE_SERVER_MAX_CONNECTIONS", "3")]).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut h2 = server.http2().await;
        assert_eq!(h2.send(&server, &server.request("GET", "/_health")).await.status, 200);
        held.push(h2);
    }
    let mut refused = TcpStream::connect(server.addr()).await.expect("the kernel accepts");
    refused.write_all(format!("GET /_health HTTP/1.1\r\nhost: {}\r\n\r\n", server.host()).as_bytes()).await.ok();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(CLOSE_WITHIN, refused.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "a connection past the cap is left open");
    assert!(answer.is_empty(), "a connection past the cap was served: {}", String::from_utf8_lossy(&answer));
    drop(held.pop());
    let health = server.request("GET", "/_health");
    let mut served = false;
    for _ in 0..100 {
        if matches!(server.try_send(&health, false).await, Ok(Some(r)) if r.status == 200) {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(served, "no connection served after one of the capped ones closed\n{}", server.log());
}

/// Found by an attacker's pass: one client opening connections that each sent a request line
/// and then a header line now and then (reconnecting when dropped) held every
/// `server.max_connections` slot, and every other client was refused. One client address now
/// holds at most `server.max_connections_per_client` connections: past them its connections
/// are closed before anything is read, and other clients keep the rest of the pool.
#[tokio::test]
async fn one_client_cannot_hold_every_connection() {
    const POOL: usize = 64;
    const PER_CLIENT: usize = 8;
    // An address no other connection comes from: the harness's own `/_health` probes come
    // from 127.0.0.1, and the server may count one of them until it sees it closed.
    const CLIENT: &str = "127.0.0.4";
    let server = server_with(&[
        ("ARTIFACT_STORE_SERVER_MAX_CONNECTIONS", &POOL.to_string()),
        ("ARTIFACT_STORE_SERVER_MAX_CONNECTIONS_PER_CLIENT", &PER_CLIENT.to_string()),
        ("ARTIFACT_STORE_SERVER_TRUSTED_PROXIES", "127.0.0.3"),
        // Far longer than the test: the held connections stay until it lets them go.
        ("ARTIFACT_STORE_SERVER_HEADER_READ_TIMEOUT", "600"),
        ("ARTIFACT_STORE_SERVER_IDLE_TIMEOUT", "600"),
    ])
    .await;
    let head = format!("GET /_health HTTP/1.1\r\nhost: {}\r\n", server.host());
    // The client's share: request heads begun and not finished.
    let mut held = Vec::new();
    for _ in 0..PER_CLIENT {
        let mut stream = connect_from(&server, CLIENT).await;
        stream.write_all(head.as_bytes()).await.expect("send a partial head");
        held.push(stream);
    }
    // Every further connection of that client, as many as would fill the pool, is closed
    // unanswered, whole request or not.
    for extra in PER_CLIENT..=POOL {
        let mut stream = connect_from(&server, CLIENT).await;
        stream.write_all(format!("{head}connection: close\r\n\r\n").as_bytes()).await.ok();
        let mut answer = Vec::new();
        let read = tokio::time::timeout(CLOSE_WITHIN, stream.read_to_end(&mut answer)).await;
        assert!(read.is_ok(), "connection {extra} of a client at its cap is left open\n{}", server.log());
        assert!(
            answer.is_empty(),
            "connection {extra} of a client at its cap was served: {}",
            String::from_utf8_lossy(&answer)
        );
    }
    // Another client is served beside it.
    let health = server.request("GET", "/_health");
    let other = send_from("127.0.0.2".parse().unwrap(), server.addr(), &health).await;
    assert_eq!(other.status, 200, "a client beside one at its cap: {}", other.text());
    // A trusted proxy (a load balancer) carries every client behind it: its connections are
    // not counted per client.
    let mut proxied = Vec::new();
    for _ in 0..2 * PER_CLIENT {
        let mut stream = connect_from(&server, "127.0.0.3").await;
        stream.write_all(head.as_bytes()).await.expect("send a partial head");
        proxied.push(stream);
    }
    finish_held_heads(&server, proxied, "a trusted proxy's").await;
    // The client's own connections were kept: finishing their heads brings their answers, and
    // the server closes them after.
    finish_held_heads(&server, held, "held").await;
    // With its connections closed, the client is served again.
    let mut served = None;
    for _ in 0..100 {
        let mut stream = connect_from(&server, CLIENT).await;
        stream.write_all(&health.to_bytes()).await.ok();
        let mut answer = Vec::new();
        if let Ok(Ok(_)) = tokio::time::timeout(CLOSE_WITHIN, stream.read_to_end(&mut answer)).await
            && answer.starts_with(b"HTTP/1.1 200")
        {
            served = Some(answer);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(served.is_some(), "the client is not served after its connections closed\n{}", server.log());
}

/// Finishes the request heads `held` begun (`GET /_health`) and checks each is answered 200;
/// the server closes them after.
async fn finish_held_heads(server: &Server, held: Vec<TcpStream>, what: &str) {
    for (i, mut stream) in held.into_iter().enumerate() {
        if let Err(err) = stream.write_all(b"connection: close\r\n\r\n").await {
            panic!("{what} connection {i} was closed: {err}\n{}", server.log());
        }
        let mut answer = Vec::new();
        let read = tokio::time::timeout(CLOSE_WITHIN, stream.read_to_end(&mut answer)).await;
        assert!(read.is_ok(), "{what} connection {i} is not answered\n{}", server.log());
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 200"), "{what} connection {i}: {answer}");
    }
}

/// A TCP connection to the server from the local address `from` (any of 127.0.0.0/8).
async fn connect_from(server: &Server, from: &str) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.bind(std::net::SocketAddr::new(from.parse().unwrap(), 0)).expect("bind");
    socket.connect(server.addr()).await.expect("connect")
}

/// Writes the head of a signed PUT of `len` bytes to `key` and its first `sent` bytes, and
/// leaves the connection open.
async fn start_upload(server: &Server, key: &str, len: usize, sent: usize) -> TcpStream {
    let request = server
        .request("PUT", &format!("/slow/{key}"))
        .header("content-length", &len.to_string())
        .body(vec![b'x'; sent])
        .sign(ROOT, SystemTime::now(), Payload::Unsigned);
    let mut stream = TcpStream::connect(server.addr()).await.expect("connect");
    stream.write_all(&request.to_bytes()).await.expect("send the head");
    stream
}

/// Reads a whole HTTP/1.1 response (the server closes after it) and returns its status and
/// body.
async fn response_of(stream: &mut TcpStream) -> (u16, String) {
    let mut bytes = Vec::new();
    tokio::time::timeout(CLOSE_WITHIN, stream.read_to_end(&mut bytes)).await.expect("an answer in time").ok();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let status = text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, text)
}

/// 300 uploads sending their bodies one byte at a time held the blocking pool (two threads
/// each) and every other request stalled. Slow uploads now cost no thread while they wait:
/// GETs and small PUTs keep being served beside them.
#[tokio::test]
async fn slow_uploads_do_not_stall_other_requests_issue_16() {
    const SLOW: usize = 300;
    let server = server_with(&[
        ("ARTIFACT_STORE_SERVER_MAX_CONCURRENT_UPLOADS", "400"),
        ("ARTIFACT_STORE_SERVER_MAX_CONCURRENT_UPLOADS_PER_CLIENT", "400"),
        // All of them come from one address, as do the requests beside them.
        ("ARTIFACT_STORE_SERVER_MAX_CONNECTIONS_PER_CLIENT", "400"),
    ])
    .await;
    let s3 = server.s3();
    s3.create_bucket().bucket("slow").send().await.expect("create bucket");
    let data = bytes(1 << 20, 3);
    put(&s3, "slow", "read-me", &data).await;
    let mut uploads = Vec::new();
    for i in 0..SLOW {
        // Past the size the store hashes in one piece, so each upload streams.
        uploads.push(start_upload(&server, &format!("slow-{i}"), 4 << 20, 1).await);
    }
    for round in 0..10 {
        for stream in &mut uploads {
            stream.write_all(b"x").await.ok();
        }
        let Ok(got) = tokio::time::timeout(CLOSE_WITHIN, s3.get_object().bucket("slow").key("read-me").send()).await
        else {
            panic!("GET {round} stalled beside {SLOW} slow uploads");
        };
        let got = got.expect("GET");
        let body = got.body.collect().await.expect("body").into_bytes();
        assert!(body.as_ref() == data.as_slice(), "GET {round} returned other bytes");
        let key = format!("small-{round}");
        tokio::time::timeout(CLOSE_WITHIN, put(&s3, "slow", &key, &bytes(300 << 10, round)))
            .await
            .unwrap_or_else(|_| panic!("PUT {round} stalled beside {SLOW} slow uploads"));
    }
    drop(uploads);
    assert_eq!(server.s3().list_objects_v2().bucket("slow").send().await.expect("list").key_count(), Some(11));
}

/// A body that stops arriving fails with 400 RequestTimeout after `server.body_idle_timeout`
/// and stores nothing.
#[tokio::test]
async fn a_body_that_stops_arriving_times_out_issue_16() {
    let server = server_with(&[("ARTIFACT_STORE_SERVER_BODY_IDLE_TIMEOUT", "2")]).await;
    server.s3().create_bucket().bucket("slow").send().await.expect("create bucket");
    let before = server.events().len();
    for (len, sent) in [(1 << 20, 1000), (100, 10)] {
        let mut upload = start_upload(&server, "stalled", len, sent).await;
        let (status, text) = response_of(&mut upload).await;
        assert_eq!(status, 400, "{text}");
        assert!(text.contains("<Code>RequestTimeout</Code>"), "{text}");
    }
    server.assert_no_new_events(before, "bodies that stopped");
    server.assert_absent("slow", "stalled").await;
}

/// Found by an attacker's pass: a body that brought a byte now and then, each before the idle
/// timeout, was never timed out, and a few hundred such clients held every upload slot. A body
/// must bring 4 KiB within each `server.body_idle_timeout`.
#[tokio::test]
async fn a_body_that_trickles_times_out_issue_16() {
    let server = server_with(&[("ARTIFACT_STORE_SERVER_BODY_IDLE_TIMEOUT", "2")]).await;
    server.s3().create_bucket().bucket("slow").send().await.expect("create bucket");
    let before = server.events().len();
    let upload = start_upload(&server, "trickled", 1 << 20, 1).await;
    let (mut reading, mut writing) = upload.into_split();
    // A byte every half second, four times as often as the idle timeout, for up to a minute.
    let trickle = tokio::spawn(async move {
        for _ in 0..120 {
            tokio::time::sleep(Duration::from_millis(500)).await;
            if writing.write_all(b"x").await.is_err() {
                return;
            }
        }
    });
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(60), reading.read_to_end(&mut answer))
        .await
        .expect("an answer while the client still trickles")
        .ok();
    trickle.abort();
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 400"), "{text}");
    assert!(text.contains("<Code>RequestTimeout</Code>"), "{text}");
    server.assert_no_new_events(before, "a trickled body");
    server.assert_absent("slow", "trickled").await;
}

/// Past `server.max_concurrent_uploads`, uploads are refused with 503 SlowDown and `/_ready`
/// says the server is saturated; both recover when the uploads end.
#[tokio::test]
async fn uploads_past_the_cap_slow_down_and_ready_says_saturated_issue_16() {
    let server = server_with(&[("ARTIFACT_STORE_SERVER_MAX_CONCURRENT_UPLOADS", "2")]).await;
    let s3 = server.s3();
    s3.create_bucket().bucket("slow").send().await.expect("create bucket");
    let held = [start_upload(&server, "a", 1 << 20, 1).await, start_upload(&server, "b", 100, 1).await];
    let ready = server.request("GET", "/_ready");
    let mut saturated = None;
    for _ in 0..100 {
        let response = server.send(&ready).await;
        if response.status == 503 {
            saturated = Some(response.text());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let saturated = saturated.unwrap_or_else(|| panic!("/_ready stays 200 with every upload slot taken"));
    assert!(saturated.contains("saturated"), "{saturated}");
    let refused = server
        .send(&server.request("PUT", "/slow/c").body(b"c".to_vec()).sign(ROOT, SystemTime::now(), Payload::Signed))
        .await;
    assert_refused(&refused, 503, "SlowDown", "a third upload");
    assert_eq!(server.send(&server.request("GET", "/_health")).await.status, 200);
    drop(held);
    let mut recovered = false;
    for _ in 0..100 {
        if server.send(&ready).await.status == 200 {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(recovered, "/_ready stays 503 after the uploads ended");
    put(&s3, "slow", "c", b"c").await;
}

/// [`start_upload`] from the local address `from` (any of 127.0.0.0/8).
async fn start_upload_from(server: &Server, from: &str, key: &str) -> TcpStream {
    let request = server
        .request("PUT", &format!("/slow/{key}"))
        .header("content-length", &(1 << 20).to_string())
        .body(b"x".to_vec())
        .sign(ROOT, SystemTime::now(), Payload::Unsigned);
    let mut stream = connect_from(server, from).await;
    stream.write_all(&request.to_bytes()).await.expect("send the head");
    stream
}

/// Waits until `/_ready` answers `status` (503 while every upload slot is taken).
async fn ready_becomes(server: &Server, status: u16) {
    let ready = server.request("GET", "/_ready");
    for _ in 0..300 {
        if server.send(&ready).await.status == status {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("/_ready never answered {status}\n{}", server.log());
}

/// Found by an attacker's pass: slow clients that each brought just enough bytes held every
/// upload slot, and then no one else could upload. One client address now holds at most
/// `server.max_concurrent_uploads_per_client` slots, so the others keep theirs.
#[tokio::test]
async fn one_client_cannot_hold_every_upload_slot() {
    let server = server_with(&[
        ("ARTIFACT_STORE_SERVER_MAX_CONCURRENT_UPLOADS", "3"),
        ("ARTIFACT_STORE_SERVER_MAX_CONCURRENT_UPLOADS_PER_CLIENT", "2"),
    ])
    .await;
    let s3 = server.s3();
    s3.create_bucket().bucket("slow").send().await.expect("create bucket");
    // Two slow uploads from one client, and one from another: every slot is taken once all
    // three hold theirs, which `/_ready` tells. The other client's then ends, freeing one.
    let held = [start_upload_from(&server, "127.0.0.1", "a").await, start_upload_from(&server, "127.0.0.1", "b").await];
    let other = start_upload_from(&server, "127.0.0.2", "d").await;
    ready_becomes(&server, 503).await;
    drop(other);
    ready_becomes(&server, 200).await;
    let upload = |key: &str| {
        server.request("PUT", &format!("/slow/{key}")).body(key.as_bytes().to_vec()).sign(
            ROOT,
            SystemTime::now(),
            Payload::Signed,
        )
    };
    // A slot is free, but not for the client holding two.
    let refused = send_from("127.0.0.1".parse().unwrap(), server.addr(), &upload("c")).await;
    assert_refused(&refused, 503, "SlowDown", "a third upload from the same client");
    let taken = send_from("127.0.0.3".parse().unwrap(), server.addr(), &upload("e")).await;
    assert_eq!(taken.status, 200, "an upload from another client: {}", taken.text());
    drop(held);
    let mut again = None;
    for _ in 0..100 {
        let response = send_from("127.0.0.1".parse().unwrap(), server.addr(), &upload("c")).await;
        if response.status == 200 {
            again = Some(response);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(again.is_some(), "the client's slots are not given back when its uploads end\n{}", server.log());
    let got = s3.get_object().bucket("slow").key("e").send().await.expect("GET e");
    assert_eq!(got.body.collect().await.expect("body").into_bytes().as_ref(), b"e");
}

/// Reads one HTTP/1.1 response whose body has a `content-length`, leaving the connection
/// open; returns its head (lower-cased) and body.
async fn one_response(stream: &mut TcpStream) -> (String, Vec<u8>) {
    let mut bytes = Vec::new();
    let mut chunk = [0; 4096];
    let head_end = loop {
        if let Some(at) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let read = tokio::time::timeout(CLOSE_WITHIN, stream.read(&mut chunk)).await.expect("a response in time");
        let read = read.expect("read the response");
        assert!(read > 0, "the connection closed before a whole response head: {bytes:?}");
        bytes.extend_from_slice(&chunk[..read]);
    };
    let head = String::from_utf8_lossy(&bytes[..head_end]).to_lowercase();
    let length: usize = head
        .lines()
        .find_map(|line| line.strip_prefix("content-length:"))
        .and_then(|value| value.trim().parse().ok())
        .expect("a content-length");
    while bytes.len() < head_end + length {
        let read = tokio::time::timeout(CLOSE_WITHIN, stream.read(&mut chunk)).await.expect("a body in time");
        let read = read.expect("read the body");
        assert!(read > 0, "the connection closed inside the body");
        bytes.extend_from_slice(&chunk[..read]);
    }
    (head, bytes[head_end..].to_vec())
}

/// A PUT with `Expect: 100-continue` refused before its body was read (here: no such bucket)
/// got its final answer on a connection kept alive. A client that then sends no body (as
/// botocore does after a final answer) had the first byte of its next request read as that
/// body: `GET` arrived as `ET` and was refused with SignatureDoesNotMatch (CI, 2026-12-03,
/// boto3 `error-no-such-bucket` on Ceph RGW). An answer given before the body is read now
/// closes the HTTP/1 connection, as AWS S3 does.
#[tokio::test]
async fn an_answer_before_the_body_closes_the_connection_so_the_next_request_is_not_misread() {
    let server = Server::start_with(Transport::Http, &[], upstream_env()).await;
    let put = server
        .request("PUT", "/no-such-bucket/k")
        .header("content-length", "1")
        .header("expect", "100-continue")
        .sign(ROOT, SystemTime::now(), Payload::Unsigned);
    // Kept alive: the raw request asks to close by default.
    let head = String::from_utf8(put.to_bytes()).expect("an ASCII head").replace("connection: close\r\n", "");
    let mut stream = TcpStream::connect(server.addr()).await.expect("connect");
    stream.write_all(head.as_bytes()).await.expect("send the head, not the body");
    let (answer, body) = one_response(&mut stream).await;
    assert!(answer.starts_with("http/1.1 404"), "{answer}");
    assert!(String::from_utf8_lossy(&body).contains("<Code>NoSuchBucket</Code>"), "{body:?}");
    assert!(answer.contains("connection: close"), "the answer keeps the connection: {answer}");

    // What the client sends next is never read as the first request's body.
    let next = format!("GET /_health HTTP/1.1\r\nhost: {}\r\n\r\n", server.host());
    let _ = stream.write_all(next.as_bytes()).await;
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(CLOSE_WITHIN, stream.read_to_end(&mut rest)).await.expect("the server closes");
    assert!(rest.is_empty(), "the server read on: {}", String::from_utf8_lossy(&rest));

    // A body read to its end keeps the connection for the next request.
    let keep_alive = |request: RawRequest| {
        String::from_utf8(request.to_bytes()).expect("an ASCII request").replace("connection: close\r\n", "")
    };
    let create = keep_alive(server.request("PUT", "/kept").sign(ROOT, SystemTime::now(), Payload::Signed));
    let object = server.request("PUT", "/kept/k").body(b"x".to_vec()).sign(ROOT, SystemTime::now(), Payload::Signed);
    let mut stream = TcpStream::connect(server.addr()).await.expect("connect");
    for request in [create, keep_alive(object)] {
        stream.write_all(request.as_bytes()).await.expect("send on the same connection");
        let (answer, _) = one_response(&mut stream).await;
        assert!(answer.starts_with("http/1.1 200"), "{answer}");
        assert!(!answer.contains("connection: close"), "a read body closed the connection: {answer}");
    }
}
