//! Tamper evidence (issue 16): what someone with access to the data folder can do behind the
//! gateway's back, and how `verify` and `/_ready` name it.

use std::time::{Duration, Instant, SystemTime};

use artifact_store_conformance::sdk::failure;
use artifact_store_conformance::server::upstream_env;
use artifact_store_conformance::{Server, Transport, cli, tamper};
use aws_sdk_s3::primitives::{ByteStream, DateTime};
use aws_sdk_s3::types::ObjectLockMode;

/// How long a test waits for a background check of a server to report.
const CHECK_TIMEOUT: Duration = Duration::from_secs(60);

fn in_a_day() -> DateTime {
    let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).expect("after 1970").as_secs();
    DateTime::from_secs(i64::try_from(now + 86_400).expect("a date"))
}

/// `/_ready`'s status and body.
async fn ready(server: &Server) -> (u16, String) {
    let response = server.send(&server.request("GET", "/_ready")).await;
    (response.status, response.text())
}

#[tokio::test]
async fn a_delete_allowed_by_an_edited_views_file_is_named_by_verify_and_fails_ready_issue_16() {
    // The views are checked against the log every second here.
    let mut env = upstream_env();
    env.push(("ARTIFACT_STORE_REGISTRY_VIEWS_CHECK_INTERVAL_SECONDS".into(), "1".into()));
    let server = Server::start_with(Transport::Http, &[], env).await;
    let s3 = server.s3();
    s3.create_bucket().bucket("evidence").object_lock_enabled_for_bucket(true).send().await.expect("lock bucket");
    let put = |key: &'static str| {
        s3.put_object().bucket("evidence").key(key).body(ByteStream::from_static(b"signed report")).send()
    };
    let version = put("report.pdf").await.expect("put").version_id.expect("a version id");
    s3.put_object_retention()
        .bucket("evidence")
        .key("report.pdf")
        .version_id(&version)
        .retention(
            aws_sdk_s3::types::ObjectLockRetention::builder()
                .mode(aws_sdk_s3::types::ObjectLockRetentionMode::Compliance)
                .retain_until_date(in_a_day())
                .build(),
        )
        .send()
        .await
        .expect("COMPLIANCE retention");
    let delete = || s3.delete_object().bucket("evidence").key("report.pdf").version_id(&version).send();
    assert_eq!(failure(delete().await), (403, "AccessDenied".to_owned()));

    // Clear the retention in the views file and delete the locked version.
    tamper::edit_views(
        &server.registry_path(),
        "UPDATE object_versions SET retention_mode = NULL, retain_until = NULL WHERE key = 'report.pdf'",
    );
    delete().await.expect("the edited views let the delete through");
    let deleted = server
        .object_events("evidence", "report.pdf")
        .into_iter()
        .rfind(|e| e.event_type == "v1.object.deleted")
        .expect("the delete's event")
        .sequence;

    let failed = cli::expect(&server, &["verify", "--no-blobs"], 1);
    assert!(failed.stdout.contains(&format!("FAILED rules: event {deleted} (v1.object.deleted) deletes version")), "{failed:?}");
    assert!(failed.stdout.contains("COMPLIANCE retention protects until"), "{failed:?}");
    let failed = cli::expect(&server, &["replay"], 1);
    assert!(failed.stdout.contains(&format!("event {deleted} (v1.object.deleted)")), "{failed:?}");

    // The serving gateway's own check finds it too.
    let deadline = Instant::now() + CHECK_TIMEOUT;
    loop {
        let (status, body) = ready(&server).await;
        if status == 503 {
            assert!(body.contains(&format!("rules: event {deleted} (v1.object.deleted)")), "{body}");
            break;
        }
        assert!(Instant::now() < deadline, "/_ready still says {status} {body}\n{}", server.log());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // COMPLIANCE retention given when the version was written is read from the log itself.
    let locked = s3
        .put_object()
        .bucket("evidence")
        .key("audit.pdf")
        .object_lock_mode(ObjectLockMode::Compliance)
        .object_lock_retain_until_date(in_a_day())
        .body(ByteStream::from_static(b"audit"))
        .send()
        .await
        .expect("locked put")
        .version_id
        .expect("a version id");
    tamper::edit_views(
        &server.registry_path(),
        "UPDATE object_versions SET retention_mode = NULL, retain_until = NULL WHERE key = 'audit.pdf'",
    );
    let refused = failure(s3.delete_object().bucket("evidence").key("audit.pdf").version_id(&locked).send().await);
    assert_eq!(refused, (403, "AccessDenied".to_owned()));
}

