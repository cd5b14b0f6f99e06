//! What someone trying the gateway for the first time meets: `serve --json`, and the log line
//! of a refused request, which must say why it was refused.

use artifact_store_conformance::raw::{Key, ROOT};
use artifact_store_conformance::sdk::failure;
use artifact_store_conformance::{ACCESS_KEY, Server, Transport};
use serde_json::Value;

/// The server's log lines, each parsed as JSON.
fn json_log(server: &Server) -> Vec<Value> {
    let log = server.log();
    log.lines()
        .filter(|line| line.starts_with('{'))
        .map(|line| serde_json::from_str(line).unwrap_or_else(|err| panic!("{err}: {line}")))
        .collect()
}

/// `serve --json` writes its log as JSON lines, as `--json` makes the other commands print
/// JSON.
#[tokio::test]
async fn serve_json_logs_json_lines() {
    let server = Server::start_with(Transport::Http, &["--json"], Vec::new()).await;
    server.s3().list_buckets().send().await.expect("list buckets");
    let log = server.log();
    let lines: Vec<&str> = log.lines().filter(|line| line.contains("listening")).collect();
    assert!(!lines.is_empty(), "{log}");
    for line in lines {
        let parsed: Value = serde_json::from_str(line).unwrap_or_else(|err| panic!("not JSON ({err}): {line}"));
        assert_eq!(parsed["fields"]["message"], "listening");
    }
}

/// A refused request's log line carries the S3 error code and its message beside the status:
/// a 403 alone does not tell a wrong secret from a missing permission.
#[tokio::test]
async fn refused_requests_are_logged_with_their_error_code_and_reason() {
    let server = Server::start_with(Transport::Http, &["--log-format", "json"], Vec::new()).await;
    let wrong = Key { access_key: ACCESS_KEY, secret_key: "not0the0secret0key0000000000000000000000" };
    let (status, code) = failure(server.s3_as(wrong).list_buckets().send().await);
    assert_eq!((status, code.as_str()), (403, "SignatureDoesNotMatch"));
    let (status, code) = failure(server.s3_as(ROOT).head_bucket().bucket("no-such-bucket").send().await);
    assert_eq!(status, 404, "{code}");
    let (status, code) = failure(server.s3_as(ROOT).get_object().bucket("no-such-bucket").key("k").send().await);
    assert_eq!((status, code.as_str()), (404, "NoSuchBucket"));

    let requests: Vec<Value> = json_log(&server)
        .into_iter()
        .filter(|line| line["fields"]["message"] == "request")
        .map(|line| line["fields"].clone())
        .collect();
    let logged = |status: u64, code: &str| {
        requests.iter().find(|fields| fields["status"] == status && fields["code"] == code).unwrap_or_else(|| {
            panic!("no {status} {code} request line: {requests:#?}");
        })
    };
    let denied = logged(403, "SignatureDoesNotMatch");
    assert!(denied["reason"].as_str().is_some_and(|r| !r.is_empty()), "{denied}");
    let missing = logged(404, "NoSuchBucket");
    assert!(missing["reason"].as_str().is_some_and(|r| !r.is_empty()), "{missing}");
    let listed = requests.iter().find(|fields| fields["status"] == 200);
    assert!(listed.is_none_or(|fields| fields.get("code").is_none()), "success has no error code: {listed:?}");
}
