//! Upstream credentials from a profile of the shared AWS files (`upstream.profile`), with no
//! static keys: objects go through the gateway to the upstream and back, and a profile that
//! does not exist stops the start with the reason.
//!
//! Runs against the run's upstream (`CONFORMANCE_UPSTREAM_*`); ignored unless run with
//! `--include-ignored`, and failing then without one.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use artifact_store_conformance::server::binary_path;
use artifact_store_conformance::upstream::RunUpstream;
use artifact_store_conformance::{Server, Transport, bytes};
use aws_sdk_s3::primitives::ByteStream;

const PREFIX: &str = "profile/";

/// Shared config and credentials files holding the upstream's keys in profile `gateway`, and
/// the settings pointing at them.
fn profile_files(upstream: &RunUpstream, dir: &std::path::Path) -> Vec<(String, String)> {
    let (access, secret) = upstream.keys();
    let credentials = dir.join("credentials");
    let config = dir.join("config");
    std::fs::write(
        &credentials,
        format!("[default]\naws_access_key_id = wrong\naws_secret_access_key = wrong\n\n[gateway]\naws_access_key_id = {access}\naws_secret_access_key = {secret}\n"),
    )
    .unwrap();
    std::fs::write(&config, "[profile gateway]\noutput = json\n").unwrap();
    vec![
        ("AWS_SHARED_CREDENTIALS_FILE".to_owned(), credentials.display().to_string()),
        ("AWS_CONFIG_FILE".to_owned(), config.display().to_string()),
    ]
}

#[tokio::test]
#[ignore = "needs an S3 upstream (CONFORMANCE_UPSTREAM_*)"]
async fn upstream_credentials_come_from_a_profile() {
    let upstream = RunUpstream::required();
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
    let bucket = format!("profile-{nanos:x}");
    let direct = upstream.client();
    direct.create_bucket().bucket(&bucket).send().await.expect("upstream bucket");
    let files = tempfile::tempdir().expect("temp folder");
    let mut env = upstream.gateway_env(&bucket, PREFIX);
    env.extend(profile_files(&upstream, files.path()));

    // A profile the files do not have: no start, and the reason.
    let data = tempfile::tempdir().expect("temp folder");
    let serve = tokio::process::Command::new(binary_path())
        .args(["serve", "--listen", "127.0.0.1:0", "--upstream-profile", "missing", "--data-dir"])
        .arg(data.path())
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(60), serve).await.expect("serve must stop").expect("run");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "serve must refuse: {stderr}");
    assert!(stderr.contains("cannot take the upstream credentials from profile missing"), "{stderr}");

    // The profile that has the keys, and no other credentials anywhere.
    env.push(("ARTIFACT_STORE_UPSTREAM_PROFILE".to_owned(), "gateway".to_owned()));
    let server = Server::start_with(Transport::Http, &[], env).await;
    let s3 = server.s3();
    s3.create_bucket().bucket("through-profile").send().await.expect("create bucket");
    let body = bytes(256 * 1024, 7);
    s3.put_object()
        .bucket("through-profile")
        .key("object")
        .body(ByteStream::from(body.clone()))
        .send()
        .await
        .expect("put through the profile's credentials");
    let read = s3.get_object().bucket("through-profile").key("object").send().await.expect("get");
    assert_eq!(read.body.collect().await.unwrap().into_bytes().as_ref(), body.as_slice());
    let listed = direct.list_objects_v2().bucket(&bucket).prefix(PREFIX).send().await.expect("list upstream");
    assert_eq!(listed.contents().len(), 1, "the bytes are upstream");
}
