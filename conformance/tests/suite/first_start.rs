//! What someone trying the gateway for the first time meets: the first-start banner's client
//! lines pasted as they are, in a shell that has `AWS_CA_BUNDLE` set (many machines set it for
//! their own CA); the error of a data folder the gateway cannot write; `serve --json`; and the
//! log line of a refused request, which must say why it was refused.

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use artifact_store_conformance::raw::{Key, ROOT};
use artifact_store_conformance::sdk::failure;
use artifact_store_conformance::server::{binary_path, upstream_env};
use artifact_store_conformance::{ACCESS_KEY, Server, Transport, skip};
use serde_json::Value;

/// A server started here, killed when dropped, so a failed assertion does not leave it running.
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The first-start banner of a fresh data folder: `serve` without configured credentials, on a
/// port of its own, until the banner's last line. Returns the server and the banner.
fn first_start(data_dir: &Path, flags: &[&str]) -> (Running, Vec<String>) {
    let mut server = Running(
        Command::new(binary_path())
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .args(flags)
            .env_remove("ARTIFACT_STORE_ACCESS_KEY")
            .env_remove("ARTIFACT_STORE_SECRET_KEY")
            .env_remove("ARTIFACT_STORE_CONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start artifact-store serve"),
    );
    let mut banner = Vec::new();
    let mut lines = BufReader::new(server.0.stderr.take().expect("stderr")).lines();
    while let Some(Ok(line)) = lines.next() {
        let last = line.starts_with("This is shown once.");
        banner.push(line);
        if last {
            // The log goes on after the banner: a closed pipe would fail the server's writes.
            std::thread::spawn(move || lines.for_each(drop));
            return (server, banner);
        }
    }
    panic!("no first-start banner:\n{}", banner.join("\n"));
}

/// The command line printed under `title` (`aws cli:`, `rclone:`).
fn line_under<'a>(banner: &'a [String], title: &str) -> &'a str {
    let at = banner.iter().position(|line| line.trim() == title).unwrap_or_else(|| panic!("no {title}: {banner:?}"));
    banner[at + 1].trim()
}

fn has_command(name: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {name}"))
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Runs the banner's lines for `aws` and `rclone` with `bash -c`, as pasted into a shell whose
/// `AWS_CA_BUNDLE` names a CA that is not the gateway's.
fn banner_lines_work_as_pasted(flags: &[&str]) {
    let dir = tempfile::tempdir().expect("temp folder");
    let (_server, banner) = first_start(&dir.path().join("data"), flags);
    let other_ca = rcgen::generate_simple_self_signed(vec!["ca.example".to_owned()]).expect("certificate");
    let bundle = dir.path().join("corporate-ca.pem");
    std::fs::write(&bundle, other_ca.cert.pem()).expect("write the CA bundle");
    let mut ran = 0;
    for (tool, title) in [("aws", "aws cli:"), ("rclone", "rclone:")] {
        if !has_command(tool) {
            continue;
        }
        let line = line_under(&banner, title);
        let output = Command::new("bash")
            .arg("-c")
            .arg(line)
            .env("AWS_CA_BUNDLE", &bundle)
            .env("RCLONE_CONFIG", dir.path().join("rclone.conf"))
            .stdin(Stdio::null())
            .output()
            .expect("run bash");
        assert!(
            output.status.success(),
            "the banner's {tool} line failed with AWS_CA_BUNDLE set:\n{line}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        ran += 1;
    }
    if ran < 2 {
        skip("aws or rclone is not installed (scripts/install-test-deps.sh installs them)");
    }
}

#[test]
fn the_banners_client_lines_work_with_aws_ca_bundle_set_over_http() {
    banner_lines_work_as_pasted(&[]);
}

#[test]
fn the_banners_client_lines_work_with_aws_ca_bundle_set_over_https() {
    banner_lines_work_as_pasted(&["--tls-self-signed"]);
}

/// A data folder the gateway may not write is named in the error, with the reason.
#[test]
fn an_unwritable_data_folder_is_named_in_the_error() {
    let dir = tempfile::tempdir().expect("temp folder");
    let data = dir.path().join("data");
    std::fs::create_dir(&data).expect("data folder");
    use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o555)).expect("chmod");
    // Root writes anywhere: the gateway runs as nobody then, as a service account would. A
    // folder this test made is owned by whom the test runs as.
    let root = std::fs::metadata(&data).expect("data folder").uid() == 0;
    if root && !has_command("setpriv") {
        skip("running as root without setpriv: no user the folder is unwritable for");
        return;
    }
    let as_tester = |program: &Path| {
        if !root {
            return Command::new(program);
        }
        let mut command = Command::new("setpriv");
        command.args(["--reuid=65534", "--regid=65534", "--clear-groups"]).arg(program);
        command
    };
    // nobody must reach the binary and the folder (a target directory in a private home is
    // out of its reach): what is checked is the gateway's error, not the test's setup.
    let reachable = as_tester(Path::new("sh"))
        .args(["-c", "test -x \"$0\" && cd \"$1\""])
        .arg(binary_path())
        .arg(&data)
        .status()
        .is_ok_and(|status| status.success());
    if !reachable {
        skip("the test's user cannot reach the binary or the temp folder as nobody");
        return;
    }
    let output = as_tester(&binary_path())
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .env_remove("ARTIFACT_STORE_ACCESS_KEY")
        .env_remove("ARTIFACT_STORE_SECRET_KEY")
        .env_remove("ARTIFACT_STORE_CONFIG")
        .stdin(Stdio::null())
        .output()
        .expect("run artifact-store serve");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(&data.display().to_string()), "the error names the folder: {stderr}");
    assert!(stderr.contains("Permission denied"), "and says why: {stderr}");
}

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
    let server = Server::start_with(Transport::Http, &["--json"], upstream_env()).await;
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
    let server = Server::start_with(Transport::Http, &["--log-format", "json"], upstream_env()).await;
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
