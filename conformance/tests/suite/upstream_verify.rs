//! `artifact-store verify` on the S3 backend re-reads the blobs from the upstream: intact ones
//! pass (a single-part object, a copy sharing its blob, a multipart object), and an upstream
//! object overwritten behind the gateway's back fails the check, named by its blob id.
//!
//! The data folder remembers the backend it was served with: `verify` and `gc` run with only
//! `--data-dir` (and the caller's upstream credentials) read the upstream's blobs, instead of
//! an empty local store whose "missing" blobs were a false alarm of data loss; a command naming
//! another place is refused; no upstream secret is written to the folder.
//!
//! Runs against the run's upstream (`CONFORMANCE_UPSTREAM_*`); ignored unless run with
//! `--include-ignored`, and failing then without one.

use std::time::{SystemTime, UNIX_EPOCH};

use artifact_store_conformance::upstream::RunUpstream;
use artifact_store_conformance::{Server, Transport, bytes};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};

const PREFIX: &str = "verify/";
const BUCKET: &str = "checked";
const MIB: usize = 1024 * 1024;

async fn upstream_keys(client: &aws_sdk_s3::Client, bucket: &str) -> Vec<String> {
    let listed = client.list_objects_v2().bucket(bucket).prefix(PREFIX).send().await.expect("list upstream");
    listed.contents().iter().filter_map(|o| o.key().map(str::to_owned)).collect()
}

/// A gateway on the S3 backend, in front of a new upstream bucket (`<label>-<time>`), with
/// bucket [`BUCKET`] made through it.
async fn serve_on_a_fresh_upstream_bucket(upstream: &RunUpstream, label: &str) -> (String, Server) {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
    let up_bucket = format!("{label}-{nanos:x}");
    upstream.client().create_bucket().bucket(&up_bucket).send().await.expect("upstream bucket");
    let (access, secret) = upstream.keys();
    let mut env = upstream.gateway_env(&up_bucket, PREFIX);
    env.push(("ARTIFACT_STORE_UPSTREAM_ACCESS_KEY".to_owned(), access.to_owned()));
    env.push(("ARTIFACT_STORE_UPSTREAM_SECRET_KEY".to_owned(), secret.to_owned()));
    let server = Server::start_with(Transport::Http, &[], env).await;
    server.s3().create_bucket().bucket(BUCKET).send().await.expect("create bucket");
    (up_bucket, server)
}

#[tokio::test]
#[ignore = "needs an S3 upstream (CONFORMANCE_UPSTREAM_*)"]
async fn verify_rehashes_upstream_blobs_and_names_a_corrupt_one() {
    let upstream = RunUpstream::required();
    let (up_bucket, server) = serve_on_a_fresh_upstream_bucket(&upstream, "verify").await;
    let direct = upstream.client();
    let s3 = server.s3();

    let body = bytes(300 * 1024, 11);
    s3.put_object().bucket(BUCKET).key("single").body(ByteStream::from(body.clone())).send().await.expect("put");
    let single = upstream_keys(&direct, &up_bucket).await;
    assert_eq!(single.len(), 1);
    s3.copy_object().bucket(BUCKET).key("copy").copy_source(format!("{BUCKET}/single")).send().await.expect("copy");
    let upload = s3.create_multipart_upload().bucket(BUCKET).key("multi").send().await.expect("create upload");
    let upload_id = upload.upload_id().unwrap();
    let mut completed = Vec::new();
    for (number, len) in [(1, 5 * MIB), (2, 64 * 1024)] {
        let part = s3
            .upload_part()
            .bucket(BUCKET)
            .key("multi")
            .upload_id(upload_id)
            .part_number(number)
            .body(ByteStream::from(bytes(len, number.unsigned_abs().into())))
            .send()
            .await
            .expect("part");
        completed.push(CompletedPart::builder().part_number(number).e_tag(part.e_tag().unwrap()).build());
    }
    s3.complete_multipart_upload()
        .bucket(BUCKET)
        .key("multi")
        .upload_id(upload_id)
        .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(completed)).build())
        .send()
        .await
        .expect("complete");

    let intact = server.cli(&["verify", "--json"]);
    let report = String::from_utf8_lossy(&intact.stdout);
    assert_eq!(intact.status.code(), Some(0), "{report}\n{}", String::from_utf8_lossy(&intact.stderr));
    let report: serde_json::Value = serde_json::from_str(&report).expect("json report");
    let expected_bytes = (body.len() + 5 * MIB + 64 * 1024) as u64;
    assert_eq!(report["blobs"]["bytes"], expected_bytes, "each distinct blob read once: {report}");
    assert_eq!(report["blobs"]["corrupt"], serde_json::json!([]));

    // The single-part object's upstream bytes are replaced, same length, behind the gateway.
    let mut tampered = body.clone();
    tampered[1234] ^= 0x55;
    direct
        .put_object()
        .bucket(&up_bucket)
        .key(&single[0])
        .body(ByteStream::from(tampered))
        .send()
        .await
        .expect("overwrite upstream");
    let failed = server.cli(&["verify"]);
    let text = String::from_utf8_lossy(&failed.stdout);
    assert_eq!(failed.status.code(), Some(1), "{text}\n{}", String::from_utf8_lossy(&failed.stderr));
    let blob = single[0].strip_prefix(PREFIX).unwrap();
    assert!(text.contains(&format!("FAILED blob {blob}: its bytes are not the ones recorded")), "{text}");
    assert_eq!(text.matches("FAILED").count(), 1, "only that blob: {text}");
}

/// `artifact-store <args> --data-dir <data>` with nothing of the server's configuration: only
/// the upstream credentials, as a user who exported them would run it, and `extra`.
fn bare_cli(data: &std::path::Path, keys: (&str, &str), args: &[&str], extra: &[(&str, &str)]) -> std::process::Output {
    std::process::Command::new(artifact_store_conformance::server::binary_path())
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("ARTIFACT_STORE_UPSTREAM_ACCESS_KEY", keys.0)
        .env("ARTIFACT_STORE_UPSTREAM_SECRET_KEY", keys.1)
        .envs(extra.iter().copied())
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run artifact-store")
}

#[tokio::test]
#[ignore = "needs an S3 upstream (CONFORMANCE_UPSTREAM_*)"]
async fn commands_on_the_data_folder_read_the_blobs_where_it_was_served_to_keep_them() {
    let upstream = RunUpstream::required();
    let (up_bucket, server) = serve_on_a_fresh_upstream_bucket(&upstream, "served").await;
    let s3 = server.s3();
    let (access, secret) = upstream.keys();
    let body = bytes(200 * 1024, 21);
    s3.put_object().bucket(BUCKET).key("kept").body(ByteStream::from(body)).send().await.expect("put");
    let data = server.data_dir();

    let verified = bare_cli(&data, (access, secret), &["verify", "--json"], &[]);
    let report = String::from_utf8_lossy(&verified.stdout);
    assert_eq!(verified.status.code(), Some(0), "{report}\n{}", String::from_utf8_lossy(&verified.stderr));
    let report: serde_json::Value = serde_json::from_str(&report).expect("json report");
    assert_eq!(report["blobs"]["checked"], 1, "the upstream blob was read: {report}");
    assert_eq!(report["blobs"]["missing"], serde_json::json!([]));

    let collected = bare_cli(&data, (access, secret), &["gc", "--min-age", "0s", "--dry-run", "--json"], &[]);
    let gc = String::from_utf8_lossy(&collected.stdout);
    assert_eq!(collected.status.code(), Some(0), "{gc}\n{}", String::from_utf8_lossy(&collected.stderr));
    let gc: serde_json::Value = serde_json::from_str(&gc).expect("json report");
    assert_eq!((gc["blobs_referenced"].as_u64(), gc["blobs_removed"].as_u64()), (Some(1), Some(0)), "{gc}");

    // Another prefix of the same bucket holds none of these blobs: refused, naming the served one.
    let elsewhere = [
        ("ARTIFACT_STORE_STORAGE_BACKEND", "s3"),
        ("ARTIFACT_STORE_UPSTREAM_BUCKET", up_bucket.as_str()),
        ("ARTIFACT_STORE_UPSTREAM_PREFIX", "other/"),
    ];
    let refused = bare_cli(&data, (access, secret), &["verify"], &elsewhere);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("was served with the S3 backend") && stderr.contains(&up_bucket), "{stderr}");

    for entry in walk(&data) {
        let content = std::fs::read(&entry).unwrap_or_default();
        assert!(
            !content.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "{} holds the upstream secret",
            entry.display()
        );
    }
}

/// Every file under `dir`.
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read the data folder").map_while(Result::ok) {
        let path = entry.path();
        if path.is_dir() { files.extend(walk(&path)) } else { files.push(path) }
    }
    files
}
