//! POST object, the HTML form upload (issue 18): a form signed with a SigV4 POST policy, as a
//! browser sends it, with `${filename}`, `acl`, `x-amz-meta-*`, `tagging`, checksum and
//! redirect fields; the policy's conditions; the access decision on the key stored; and the
//! bound on the file a form may carry.

use artifact_store_conformance::cli::expect;
use artifact_store_conformance::events::of_type;
use artifact_store_conformance::raw::{Key, ROOT, RawResponse, assert_refused, send_from};
use artifact_store_conformance::sdk::{create_bucket, get};
use artifact_store_conformance::server::upstream_env;
use artifact_store_conformance::{Server, Transport};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{KeyInit as _, Mac as _};
use serde_json::json;

const BUCKET: &str = "forms";
const BOUNDARY: &str = "----BrowserFormBoundary7MA4YWxkTrZu0gW";

fn hmac(key: &[u8], data: &str) -> Vec<u8> {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key).expect("any key length");
    mac.update(data.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

/// The fields a SigV4 POST policy adds to a form, for `conditions` (to which the signing
/// fields' own conditions are added), signed with `key`.
fn signed_fields(key: Key<'_>, conditions: &[serde_json::Value]) -> Vec<(String, String)> {
    let now = time::OffsetDateTime::now_utc();
    let date = format!("{:04}{:02}{:02}", now.year(), u8::from(now.month()), now.day());
    let amz_date = format!("{date}T{:02}{:02}{:02}Z", now.hour(), now.minute(), now.second());
    let credential = format!("{}/{date}/us-east-1/s3/aws4_request", key.access_key);
    let expiration = now + time::Duration::hours(1);
    let mut all = conditions.to_vec();
    all.extend([
        json!({"x-amz-algorithm": "AWS4-HMAC-SHA256"}),
        json!({"x-amz-credential": credential}),
        json!({"x-amz-date": amz_date}),
    ]);
    let policy = json!({
        "expiration": format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.000Z",
            expiration.year(),
            u8::from(expiration.month()),
            expiration.day(),
            expiration.hour(),
            expiration.minute(),
            expiration.second()
        ),
        "conditions": all,
    });
    let policy = BASE64.encode(policy.to_string());
    let mut signing = hmac(format!("AWS4{}", key.secret_key).as_bytes(), &date);
    for part in ["us-east-1", "s3", "aws4_request"] {
        signing = hmac(&signing, part);
    }
    let signature = hex::encode(hmac(&signing, &policy));
    vec![
        ("x-amz-algorithm".into(), "AWS4-HMAC-SHA256".into()),
        ("x-amz-credential".into(), credential),
        ("x-amz-date".into(), amz_date),
        ("policy".into(), policy),
        ("x-amz-signature".into(), signature),
    ]
}

/// A multipart/form-data body: the fields, then the file, last, as AWS requires.
fn form_body(fields: &[(String, String)], filename: &str, content: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    for (name, value) in fields {
        body.extend(
            format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n").bytes(),
        );
    }
    body.extend(
        format!(
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
        )
        .bytes(),
    );
    body.extend_from_slice(content);
    body.extend(format!("\r\n--{BOUNDARY}--\r\n").bytes());
    body
}

async fn post(server: &Server, fields: &[(String, String)], filename: &str, content: &[u8]) -> RawResponse {
    let request = server
        .request("POST", &format!("/{BUCKET}"))
        .header("content-type", &format!("multipart/form-data; boundary={BOUNDARY}"))
        .header("origin", "https://app.example.com")
        .body(form_body(fields, filename, content));
    server.send(&request).await
}

/// A form upload of `content` as `key` into `bucket`, signed by root, for the tests of other
/// files (`s3_api_doc`).
pub(crate) async fn post_to(server: &Server, bucket: &str, key: &str, content: &[u8]) -> RawResponse {
    let mut fields = vec![("key".to_owned(), key.to_owned())];
    fields.extend(signed_fields(ROOT, &[json!({"bucket": bucket}), json!({"key": key})]));
    let request = server
        .request("POST", &format!("/{bucket}"))
        .header("content-type", &format!("multipart/form-data; boundary={BOUNDARY}"))
        .body(form_body(&fields, "file.txt", content));
    server.send(&request).await
}

fn fields(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(n, v)| ((*n).to_owned(), (*v).to_owned())).collect()
}

/// Conditions that allow `fields` as given, and uploads under `uploads/`.
fn conditions_for(fields: &[(String, String)]) -> Vec<serde_json::Value> {
    let mut conditions = vec![json!({"bucket": BUCKET}), json!(["content-length-range", 1, 1_048_576])];
    for (name, value) in fields {
        conditions.push(if name == "key" {
            json!(["starts-with", "$key", "uploads/"])
        } else {
            json!({ name: value })
        });
    }
    conditions
}

fn signed(key: Key<'_>, pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut all = fields(pairs);
    let signing = signed_fields(key, &conditions_for(&all));
    all.extend(signing);
    all
}

#[tokio::test]
async fn a_form_upload_takes_the_files_name_and_every_field_and_answers_as_aws_issue_18() {
    let server = Server::start(Transport::Http).await;
    let s3 = server.s3();
    create_bucket(&s3, BUCKET).await;
    let content = b"quarterly numbers\n";
    let sha256 = BASE64.encode(<sha2::Sha256 as sha2::Digest>::digest(content));
    let md5 = hex::encode(<md5::Md5 as md5::Digest>::digest(content));
    let tagging = "<Tagging><TagSet><Tag><Key>team</Key><Value>web</Value></Tag></TagSet></Tagging>";
    let form = signed(
        ROOT,
        &[
            ("key", "uploads/${filename}"),
            ("acl", "private"),
            ("success_action_status", "201"),
            ("content-type", "text/plain"),
            ("x-amz-meta-origin", "browser"),
            ("tagging", tagging),
            ("x-amz-checksum-sha256", &sha256),
        ],
    );
    let answer = post(&server, &form, "report.txt", content).await;
    assert_eq!(answer.status, 201, "{}", answer.text());
    let text = answer.text();
    assert!(text.contains("<Key>uploads/report.txt</Key>"), "{text}");
    assert!(
        text.contains(&format!("<ETag>&quot;{md5}&quot;</ETag>")) || text.contains(&format!("<ETag>\"{md5}\"</ETag>")),
        "{text}"
    );
    assert_eq!(answer.header("etag"), Some(format!("\"{md5}\"").as_str()));
    assert_eq!(answer.header("location"), Some("/forms/uploads/report.txt"));

    // Stored under the file's name, with the form's type, metadata, tags and checksum.
    assert_eq!(get(&s3, BUCKET, "uploads/report.txt").await, content);
    let head = s3
        .head_object()
        .bucket(BUCKET)
        .key("uploads/report.txt")
        .checksum_mode(aws_sdk_s3::types::ChecksumMode::Enabled)
        .send()
        .await
        .expect("head");
    assert_eq!(head.content_type(), Some("text/plain"));
    assert_eq!(head.metadata().and_then(|m| m.get("origin")).map(String::as_str), Some("browser"));
    assert_eq!(head.checksum_sha256(), Some(sha256.as_str()));
    let tags = s3.get_object_tagging().bucket(BUCKET).key("uploads/report.txt").send().await.expect("tags");
    assert_eq!(tags.tag_set().len(), 1);
    assert_eq!((tags.tag_set()[0].key(), tags.tag_set()[0].value()), ("team", "web"));
    let events = server.events();
    let puts = of_type(&events, "v1.object.put");
    assert_eq!(puts.last().map(|e| e.subject_id.as_str()), Some("forms/uploads/report.txt"));

    // A redirect gets the bucket, the key and the quoted ETag.
    let form =
        signed(ROOT, &[("key", "uploads/${filename}"), ("success_action_redirect", "https://app.example.com/done")]);
    let answer = post(&server, &form, "second.txt", b"second").await;
    assert_eq!(answer.status, 303, "{}", answer.text());
    let location = answer.header("location").expect("Location");
    assert!(
        location.starts_with("https://app.example.com/done?bucket=forms&key=uploads%2Fsecond.txt&etag=%22"),
        "{location}"
    );
    assert!(location.ends_with("%22"), "{location}");
    assert_eq!(get(&s3, BUCKET, "uploads/second.txt").await, b"second");
    // The read is recorded once its body has gone out, maybe after the response: counted
    // before, it is not taken for an event of a refused upload below.
    server
        .wait_for_events(BUCKET, "uploads/second.txt", |events| !of_type(events, "v1.object.retrieved").is_empty())
        .await;

    // What is refused records nothing: a public ACL (ACLs are disabled), a wrong checksum, a
    // field the policy does not name, a key outside the policy's prefix, an expired signature.
    let before = server.events().len();
    let public = signed(ROOT, &[("key", "uploads/public.txt"), ("acl", "public-read")]);
    assert_refused(
        &post(&server, &public, "p.txt", b"p").await,
        400,
        "AccessControlListNotSupported",
        "public-read form",
    );
    let wrong = signed(ROOT, &[("key", "uploads/wrong.txt"), ("x-amz-checksum-sha256", &sha256)]);
    assert_refused(&post(&server, &wrong, "w.txt", b"other bytes").await, 400, "BadDigest", "wrong checksum");
    let mut extra = signed(ROOT, &[("key", "uploads/extra.txt")]);
    extra.push(("x-amz-meta-sneaked".into(), "in".into()));
    assert_refused(
        &post(&server, &extra, "e.txt", b"e").await,
        403,
        "AccessDenied",
        "a field the policy does not name",
    );
    let mut outside = fields(&[("key", "elsewhere/${filename}")]);
    let signing = signed_fields(ROOT, &[json!({"bucket": BUCKET}), json!(["starts-with", "$key", "uploads/"])]);
    outside.extend(signing);
    let refused = post(&server, &outside, "o.txt", b"o").await;
    assert!(matches!(refused.status, 400 | 403), "{}", refused.text());
    server.assert_no_new_events(before, "refused form uploads");
    for key in ["uploads/public.txt", "uploads/wrong.txt", "uploads/extra.txt", "elsewhere/o.txt"] {
        let missing = s3.head_object().bucket(BUCKET).key(key).send().await;
        assert!(missing.is_err(), "{key} must not exist");
    }
}

#[tokio::test]
async fn a_form_upload_is_decided_on_the_key_it_stores_issue_18() {
    let server = Server::start(Transport::Http).await;
    let dir = tempfile::tempdir().expect("temp folder");
    create_bucket(&server.s3(), BUCKET).await;
    expect(&server, &["user", "create", "web"], 0);
    let created = expect(&server, &["--json", "key", "create", "web"], 0);
    let key: serde_json::Value = serde_json::from_str(created.stdout.trim()).expect("key JSON");
    let web = Key {
        access_key: key["access_key"].as_str().expect("access key"),
        secret_key: key["secret_key"].as_str().expect("secret key"),
    };
    let policy = dir.path().join("uploads.json");
    std::fs::write(
        &policy,
        json!({"Statement": [
            {"Effect": "Allow", "Action": "s3:PutObject", "Resource": format!("arn:aws:s3:::{BUCKET}/uploads/*")},
            {"Effect": "Deny", "Action": "s3:PutObject", "Resource": format!("arn:aws:s3:::{BUCKET}/uploads/secret.txt")}
        ]})
        .to_string(),
    )
    .expect("policy file");
    expect(&server, &["user", "policy", "put", "web", "--file", &policy.display().to_string()], 0);

    // Allowed under uploads/: decided on the object, not on the bucket the form is posted to.
    let form = signed(web, &[("key", "uploads/${filename}"), ("success_action_status", "201")]);
    let answer = post(&server, &form, "notes.txt", b"notes").await;
    assert_eq!(answer.status, 201, "{}", answer.text());
    assert_eq!(get(&server.s3(), BUCKET, "uploads/notes.txt").await, b"notes");
    // The read is recorded once its body has gone out, maybe after the response: counted
    // before, it is not taken for an event of the refused upload below.
    server
        .wait_for_events(BUCKET, "uploads/notes.txt", |events| !of_type(events, "v1.object.retrieved").is_empty())
        .await;

    // `${filename}` cannot reach a key the policy denies.
    let before = server.events().len();
    let form = signed(web, &[("key", "uploads/${filename}")]);
    assert_refused(&post(&server, &form, "secret.txt", b"s").await, 403, "AccessDenied", "a denied key by its name");
    server.assert_no_new_events(before, "a denied form upload");
}

#[tokio::test]
async fn a_form_upload_larger_than_the_bound_is_refused_issue_18() {
    let mut env = upstream_env();
    env.push(("ARTIFACT_STORE_SERVER_MAX_POST_OBJECT_BYTES".into(), "4096".into()));
    let server = Server::start_with(Transport::Http, &[], env).await;
    create_bucket(&server.s3(), BUCKET).await;
    let before = server.events().len();
    let form = signed(ROOT, &[("key", "uploads/big.bin")]);
    let answer = post(&server, &form, "big.bin", &vec![7u8; 64 * 1024]).await;
    assert_refused(&answer, 400, "EntityTooLarge", "a form file past server.max_post_object_bytes");
    server.assert_no_new_events(before, "a refused large form upload");
    // Within the bound, the same form stores.
    let small = post(&server, &form, "big.bin", &[7u8; 4096]).await;
    assert_eq!(small.status, 204, "{}", small.text());
}

/// Starts a form upload of a `len`-byte request from `from`, with its fields and the first
/// bytes of its file, and leaves it open: s3s holds such a file in memory until it ends. The
/// server answers a form it refuses at once; one it takes waits for the rest of its body. A
/// form refused because a probe of the test still held memory is started again.
async fn start_form(server: &Server, from: &str, len: usize) -> tokio::net::TcpStream {
    for _ in 0..10 {
        let mut stream = send_form_start(server, from, len).await;
        let mut answer = [0_u8; 64];
        let answered = tokio::time::timeout(
            std::time::Duration::from_secs(1),
            tokio::io::AsyncReadExt::read(&mut stream, &mut answer),
        );
        if answered.await.is_err() {
            return stream;
        }
    }
    panic!("a form from {from} is never taken\n{}", server.log());
}

async fn send_form_start(server: &Server, from: &str, len: usize) -> tokio::net::TcpStream {
    let head = form_body(&fields(&[("key", "uploads/held")]), "held.bin", b"");
    let head = &head[..head.len() - format!("\r\n--{BOUNDARY}--\r\n").len()];
    let request = format!(
        "POST /{BUCKET} HTTP/1.1\r\nhost: {}\r\ncontent-type: multipart/form-data; boundary={BOUNDARY}\r\n\
         content-length: {len}\r\n\r\n",
        server.host()
    );
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.bind(std::net::SocketAddr::new(from.parse().unwrap(), 0)).expect("bind");
    let mut stream = socket.connect(server.addr()).await.expect("connect");
    let mut bytes = request.into_bytes();
    bytes.extend_from_slice(head);
    bytes.extend_from_slice(&[0_u8; 4096]);
    tokio::io::AsyncWriteExt::write_all(&mut stream, &bytes).await.expect("send the form's start");
    stream
}

/// An unsigned form of `len` bytes from `from`, sent whole; refused in the end (no one may
/// write anonymously) unless it is refused first for the memory it would take.
async fn anonymous_form(server: &Server, from: &str, len: usize) -> RawResponse {
    let mut body = form_body(&fields(&[("key", "uploads/probe")]), "probe.bin", b"");
    let file = len - body.len();
    body = form_body(&fields(&[("key", "uploads/probe")]), "probe.bin", &vec![1_u8; file]);
    let request = server
        .request("POST", &format!("/{BUCKET}"))
        .header("content-type", &format!("multipart/form-data; boundary={BOUNDARY}"))
        .body(body);
    send_from(from.parse().unwrap(), server.addr(), &request).await
}

/// Found by a review: s3s reads a form's whole file into memory before it checks the form's
/// signature, so anyone could make the server hold 64 MiB per connection (eight unsigned 60 MB
/// forms took the RSS from 25 MB to 307 MB). Forms in progress now hold at most
/// `server.max_post_object_memory` bytes, reserved by their length before s3s reads them, and
/// one client at most its share of it.
#[tokio::test]
async fn form_uploads_held_in_memory_are_bounded_in_bytes() {
    const MIB: usize = 1 << 20;
    let mut env = upstream_env();
    env.extend([
        ("ARTIFACT_STORE_SERVER_MAX_POST_OBJECT_BYTES".to_owned(), MIB.to_string()),
        ("ARTIFACT_STORE_SERVER_MAX_POST_OBJECT_MEMORY".to_owned(), (3 * MIB).to_string()),
        ("ARTIFACT_STORE_SERVER_MAX_CONCURRENT_UPLOADS".to_owned(), "8".to_owned()),
        ("ARTIFACT_STORE_SERVER_MAX_CONCURRENT_UPLOADS_PER_CLIENT".to_owned(), "2".to_owned()),
        // The held forms send nothing more while the test runs.
        ("ARTIFACT_STORE_SERVER_BODY_IDLE_TIMEOUT".to_owned(), "300".to_owned()),
    ]);
    let server = Server::start_with(Transport::Http, &[], env).await;
    create_bucket(&server.s3(), BUCKET).await;
    let before = server.events().len();
    // Asks until the held forms are seen to take their bytes (their requests reach the server
    // on their own connections): a form that gets through is refused as anonymous, 403.
    let refused_for_memory = |from: &'static str, len: usize| {
        let server = &server;
        async move {
            for _ in 0..100 {
                let answer = anonymous_form(server, from, len).await;
                if answer.status == 503 {
                    return answer;
                }
                assert_refused(&answer, 403, "AccessDenied", "an anonymous form");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            panic!("a form from {from} is read while the forms held take the memory\n{}", server.log());
        }
    };
    // One client holds 1.5 MiB: its share is a quarter of the 3 MiB (two of eight slots), but
    // never less than one form of the largest size (1 MiB and the fields' bound).
    let first = start_form(&server, "127.0.0.2", 3 * MIB / 2).await;
    let answer = refused_for_memory("127.0.0.2", MIB).await;
    assert_refused(&answer, 503, "SlowDown", "a second form past one client's share");
    // Another client may still send one; then the 3 MiB are taken.
    let second = start_form(&server, "127.0.0.3", 3 * MIB / 2).await;
    let answer = refused_for_memory("127.0.0.4", 2048).await;
    assert_refused(&answer, 503, "SlowDown", "a small form with every byte taken");
    // The bytes come back when the forms end.
    drop((first, second));
    let mut stored = None;
    for _ in 0..100 {
        let mut form = vec![("key".to_owned(), "uploads/after".to_owned())];
        form.extend(signed_fields(ROOT, &[json!({"bucket": BUCKET}), json!({"key": "uploads/after"})]));
        let request = server
            .request("POST", &format!("/{BUCKET}"))
            .header("content-type", &format!("multipart/form-data; boundary={BOUNDARY}"))
            .body(form_body(&form, "after.txt", b"after"));
        let answer = send_from("127.0.0.4".parse().unwrap(), server.addr(), &request).await;
        if answer.status == 204 {
            stored = Some(answer);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(stored.is_some(), "the held forms' bytes are not given back\n{}", server.log());
    let events = server.events();
    let puts = of_type(&events[before..], "v1.object.put");
    assert_eq!(puts.len(), 1, "only the signed form is recorded: {puts:?}");
    assert_eq!(get(&server.s3(), BUCKET, "uploads/after").await, b"after");
}

#[tokio::test]
async fn a_form_whose_fields_pass_the_bound_is_refused_before_its_file_is_read_issue_18() {
    // Every field a form upload has is held in memory until its file arrives, by s3s and by
    // the read-ahead of the key: 1 MiB of fields at most, where s3s's default allowed 20 MB.
    let server = Server::start(Transport::Http).await;
    create_bucket(&server.s3(), BUCKET).await;
    let before = server.events().len();
    let padding = "p".repeat(700 * 1024);
    let mut form = signed(ROOT, &[("key", "uploads/${filename}")]);
    form.push(("x-ignore-first".into(), padding.clone()));
    form.push(("x-ignore-second".into(), padding));
    let answer = post(&server, &form, "padded.txt", b"padded").await;
    assert_eq!(answer.status, 400, "{}", answer.text());
    server.assert_no_new_events(before, "a form past the bound on its fields");
    // The same form without the padding stores.
    let form = signed(ROOT, &[("key", "uploads/${filename}")]);
    assert_eq!(post(&server, &form, "padded.txt", b"padded").await.status, 204);
}

#[tokio::test]
async fn a_form_that_parsers_could_read_two_ways_is_refused_issue_18() {
    use aws_sdk_s3::types::ObjectOwnership;

    // The form's fields are read ahead of s3s, which checks them against the policy: a form
    // whose delimiters one parser would take and the other not could carry fields the policy
    // never saw (an `acl` hidden in an exempt `x-ignore-` field), or make the read-ahead give
    // up so that the request's own unsigned headers set the ACL. Either is refused.
    let server = Server::start(Transport::Http).await;
    let s3 = server.s3();
    s3.create_bucket().bucket(BUCKET).object_ownership(ObjectOwnership::ObjectWriter).send().await.expect("bucket");
    let before = server.events().len();

    let hidden = format!("x\r\n--{BOUNDARY} \r\nContent-Disposition: form-data; name=\"acl\"\r\n\r\npublic-read");
    let mut form = signed(ROOT, &[("key", "uploads/hidden.txt")]);
    form.push(("x-ignore-note".into(), hidden));
    let answer = post(&server, &form, "hidden.txt", b"hidden").await;
    assert_eq!(answer.status, 400, "{}", answer.text());

    let mut form = signed(ROOT, &[("key", "uploads/headers.txt")]);
    form.push(("x-ignore-note".into(), format!("x\r\n--{BOUNDARY}x")));
    let request = server
        .request("POST", &format!("/{BUCKET}"))
        .header("content-type", &format!("multipart/form-data; boundary={BOUNDARY}"))
        .header("x-amz-acl", "public-read")
        .body(form_body(&form, "headers.txt", b"headers"));
    let answer = server.send(&request).await;
    assert_eq!(answer.status, 400, "{}", answer.text());

    // A field given twice: which one the policy saw is not for the reader to guess.
    let mut form = signed(ROOT, &[("key", "uploads/twice.txt"), ("acl", "private")]);
    form.push(("acl".into(), "public-read".into()));
    assert_eq!(post(&server, &form, "twice.txt", b"twice").await.status, 400);

    server.assert_no_new_events(before, "forms read two ways");
    for key in ["uploads/hidden.txt", "uploads/headers.txt", "uploads/twice.txt"] {
        let read = server.send(&server.request("GET", &format!("/{BUCKET}/{key}"))).await;
        assert_ne!(read.status, 200, "{key} must not be readable by anyone");
    }
}

#[tokio::test]
async fn a_form_whose_policy_condition_fails_is_access_denied_as_on_aws_issue_18() {
    // AWS answers a form its policy does not allow with 403 AccessDenied ("Invalid according
    // to Policy: Policy Condition failed"), not with a 400: the form is well formed, its
    // signer did not allow it.
    let server = Server::start(Transport::Http).await;
    create_bucket(&server.s3(), BUCKET).await;
    let before = server.events().len();
    let mut form = fields(&[("key", "elsewhere/notes.txt")]);
    form.extend(signed_fields(ROOT, &[json!({"bucket": BUCKET}), json!(["starts-with", "$key", "uploads/"])]));
    let answer = post(&server, &form, "notes.txt", b"notes").await;
    assert_refused(&answer, 403, "AccessDenied", "a key outside the policy's starts-with");
    assert!(answer.text().contains("Invalid according to Policy: Policy Condition failed"), "{}", answer.text());

    let mut form = fields(&[("key", "uploads/notes.txt"), ("content-type", "text/html")]);
    let conditions =
        [json!({"bucket": BUCKET}), json!({"key": "uploads/notes.txt"}), json!({"content-type": "text/plain"})];
    form.extend(signed_fields(ROOT, &conditions));
    assert_refused(&post(&server, &form, "notes.txt", b"notes").await, 403, "AccessDenied", "an eq condition unmet");
    server.assert_no_new_events(before, "forms their policy does not allow");

    // The same form within its policy stores.
    let mut form = fields(&[("key", "uploads/notes.txt")]);
    form.extend(signed_fields(ROOT, &[json!({"bucket": BUCKET}), json!(["starts-with", "$key", "uploads/"])]));
    assert_eq!(post(&server, &form, "notes.txt", b"notes").await.status, 204);
}

/// Encryption fields are held to the policy like any other: a form's holder cannot have its
/// objects stored under a key of their own (which its owner would not have to read them) or
/// under a KMS key the policy's signer did not choose.
#[tokio::test]
async fn encryption_fields_the_policy_does_not_name_are_refused_as_extra_input() {
    let server = Server::start(Transport::Https).await;
    let s3 = server.s3();
    create_bucket(&s3, BUCKET).await;
    let before = server.events().len();
    let key = [9u8; 32];
    let (key_b64, key_md5) = (BASE64.encode(key), BASE64.encode(<md5::Md5 as md5::Digest>::digest(key)));
    let policy = [json!({"bucket": BUCKET}), json!(["starts-with", "$key", "uploads/"])];
    let attacks = [
        vec![
            ("x-amz-server-side-encryption-customer-algorithm", "AES256"),
            ("x-amz-server-side-encryption-customer-key", key_b64.as_str()),
            ("x-amz-server-side-encryption-customer-key-md5", key_md5.as_str()),
        ],
        vec![("x-amz-server-side-encryption", "AES256")],
    ];
    for extra in &attacks {
        let mut form = fields(&[("key", "uploads/chosen.txt")]);
        form.extend(fields(extra));
        form.extend(signed_fields(ROOT, &policy));
        let answer = post(&server, &form, "chosen.txt", b"chosen").await;
        let what = format!("{} outside the policy", extra[0].0);
        assert_refused(&answer, 403, "AccessDenied", &what);
        let expected = format!("Invalid according to Policy: Extra input fields: {}", extra[0].0);
        assert!(answer.text().contains(&expected), "{what}: {}", answer.text());
    }
    server.assert_no_new_events(before, "encryption fields outside the policy");
    server.assert_absent(BUCKET, "uploads/chosen.txt").await;

    // Named by the policy, the same fields are obeyed.
    let mut form = fields(&[("key", "uploads/chosen.txt"), ("x-amz-server-side-encryption", "AES256")]);
    let mut conditions = policy.to_vec();
    conditions.push(json!({"x-amz-server-side-encryption": "AES256"}));
    form.extend(signed_fields(ROOT, &conditions));
    let answer = post(&server, &form, "chosen.txt", b"chosen").await;
    assert_eq!(answer.status, 204, "{}", answer.text());
    assert_eq!(answer.header("x-amz-server-side-encryption"), Some("AES256"));
}

#[tokio::test]
async fn a_form_upload_asks_for_server_side_encryption_as_a_put_does() {
    let server = Server::start(Transport::Https).await;
    let s3 = server.s3();
    create_bucket(&s3, BUCKET).await;
    let content = b"payroll, encrypted at rest\n";

    let form = signed(ROOT, &[("key", "uploads/sse-s3.txt"), ("x-amz-server-side-encryption", "AES256")]);
    let answer = post(&server, &form, "a.txt", content).await;
    assert_eq!(answer.status, 204, "{}", answer.text());
    assert_eq!(answer.header("x-amz-server-side-encryption"), Some("AES256"));
    let got = s3.get_object().bucket(BUCKET).key("uploads/sse-s3.txt").send().await.expect("GET");
    assert_eq!(got.server_side_encryption().map(|s| s.as_str()), Some("AES256"));
    assert_eq!(got.body.collect().await.expect("body").into_bytes().as_ref(), content);

    // SSE-C: the customer's key comes as form fields; every read then needs it.
    let key = [7u8; 32];
    let (key_b64, key_md5) = (BASE64.encode(key), BASE64.encode(<md5::Md5 as md5::Digest>::digest(key)));
    let form = signed(
        ROOT,
        &[
            ("key", "uploads/sse-c.txt"),
            ("x-amz-server-side-encryption-customer-algorithm", "AES256"),
            ("x-amz-server-side-encryption-customer-key", &key_b64),
            ("x-amz-server-side-encryption-customer-key-md5", &key_md5),
        ],
    );
    let answer = post(&server, &form, "c.txt", content).await;
    assert_eq!(answer.status, 204, "{}", answer.text());
    assert_eq!(answer.header("x-amz-server-side-encryption-customer-algorithm"), Some("AES256"));
    let without = s3.get_object().bucket(BUCKET).key("uploads/sse-c.txt").send().await;
    assert_eq!(artifact_store_conformance::sdk::failure(without).0, 400, "a read without the customer's key");
    let with = s3
        .get_object()
        .bucket(BUCKET)
        .key("uploads/sse-c.txt")
        .sse_customer_algorithm("AES256")
        .sse_customer_key(&key_b64)
        .sse_customer_key_md5(&key_md5)
        .send()
        .await
        .expect("GET with the customer's key");
    assert_eq!(with.body.collect().await.expect("body").into_bytes().as_ref(), content);

    // A key whose MD5 does not match is refused and stores nothing. The reads above are
    // recorded once their bodies have gone out, maybe after the responses: waited for first,
    // they are not taken for events of the refused upload.
    for key in ["uploads/sse-s3.txt", "uploads/sse-c.txt"] {
        server.wait_for_events(BUCKET, key, |events| !of_type(events, "v1.object.retrieved").is_empty()).await;
    }
    let before = server.events().len();
    let form = signed(
        ROOT,
        &[
            ("key", "uploads/bad-c.txt"),
            ("x-amz-server-side-encryption-customer-algorithm", "AES256"),
            ("x-amz-server-side-encryption-customer-key", &key_b64),
            ("x-amz-server-side-encryption-customer-key-md5", &BASE64.encode([0u8; 16])),
        ],
    );
    assert_refused(&post(&server, &form, "c.txt", content).await, 400, "InvalidArgument", "a key that is not its MD5");
    server.assert_no_new_events(before, "a refused SSE-C form upload");
}
