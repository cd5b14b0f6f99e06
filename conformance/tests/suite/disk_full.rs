//! A full disk (issue 16, item 14): writes are refused with 503 and leave nothing behind,
//! `/_ready` fails while the registry cannot commit, reads are refused rather than served
//! unrecorded (`registry.retrievals = required`, the default), and everything recovers once
//! space is freed, without a restart.
//!
//! The data folder is moved onto a small tmpfs of its own, which needs root (mount); without
//! it the test records that it was skipped.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

use artifact_store_conformance::raw::{Payload, ROOT, assert_refused};
use artifact_store_conformance::sdk::{create_bucket, failure, get, put};
use artifact_store_conformance::server::upstream_env;
use artifact_store_conformance::{Server, Transport, bytes, cli, metrics, skip};

/// The tmpfs the data folder moves onto.
const DISK_MIB: u64 = 48;
/// `storage.min_free_bytes` of the server under test.
const RESERVE: u64 = 8 << 20;

/// A tmpfs mounted over a folder, unmounted when dropped (lazily: the server may still hold
/// files there when a failing test unwinds).
struct Mount(PathBuf);

impl Mount {
    /// Mounts a tmpfs of `mib` MiB at `at`, or `None` when this process may not mount.
    fn tmpfs(at: &Path, mib: u64) -> Option<Self> {
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m,mode=0700"), "tmpfs"])
            .arg(at)
            .status()
            .ok()?;
        status.success().then(|| Self(at.to_path_buf()))
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Moves the stopped server's data folder onto a tmpfs of its own.
fn move_onto_tmpfs(data: &Path) -> Option<Mount> {
    let old = data.with_extension("before-mount");
    std::fs::rename(data, &old).expect("move the data folder aside");
    std::fs::create_dir(data).expect("mount point");
    let Some(mount) = Mount::tmpfs(data, DISK_MIB) else {
        std::fs::remove_dir(data).expect("remove the mount point");
        std::fs::rename(&old, data).expect("move the data folder back");
        return None;
    };
    let copied = Command::new("cp").arg("-a").arg(old.join(".")).arg(data).status().expect("run cp");
    assert!(copied.success(), "copying the data folder onto the tmpfs failed");
    Some(mount)
}

/// Fills the file system of `dir` with a file until a write fails, and returns that file.
fn fill(dir: &Path) -> PathBuf {
    let path = dir.join("filler");
    fill_file(&path);
    path
}

/// Writes `path` until the file system is full.
fn fill_file(path: &Path) {
    let mut file = std::fs::File::create(path).expect("filler file");
    let chunk = vec![0u8; 64 << 10];
    loop {
        if let Err(err) = file.write_all(&chunk) {
            assert_eq!(err.kind(), std::io::ErrorKind::StorageFull, "filling the disk: {err}");
            break;
        }
    }
}

async fn ready_status(server: &Server) -> (u16, String) {
    let response = server.send(&server.request("GET", "/_ready")).await;
    (response.status, response.text())
}

/// A server with `settings` whose bucket `full` holds `kept`, restarted on a tmpfs of its
/// own; `None` when this process may not mount one.
async fn server_on_tmpfs(settings: &[(&str, &str)], kept: &[u8]) -> Option<(Server, Mount)> {
    let mut env = upstream_env();
    env.extend(settings.iter().map(|(name, value)| ((*name).to_owned(), (*value).to_owned())));
    let mut server = Server::start_with(Transport::Http, &[], env).await;
    let s3 = server.s3();
    create_bucket(&s3, "full").await;
    put(&s3, "full", "kept", kept).await;
    server.terminate();
    server.wait_exit().await;
    let mount = move_onto_tmpfs(&server.data_dir())?;
    server.restart().await;
    assert_eq!(get(&s3, "full", "kept").await, kept);
    // Its retrieval record commits after the answer: wait for it before counting events.
    server.wait_for_events("full", "kept", |events| events.iter().any(|e| e.event_type == "v1.object.retrieved")).await;
    Some((server, mount))
}

/// Fills the disk, then PUTs small objects (kept in the registry on the local store) until
/// one is refused, as the registry's commits fail too; the WAL may hold a few first. Returns
/// the filler file, the refused key and the refusal.
async fn fill_until_a_write_is_refused(server: &Server) -> (PathBuf, String, (u16, String)) {
    let s3 = server.s3();
    let filler = fill(&server.data_dir());
    for i in 0..200 {
        let key = format!("small-{i}");
        let result = s3.put_object().bucket("full").key(&key).body(b"small".to_vec().into()).send().await;
        if result.is_err() {
            return (filler, key, failure(result));
        }
    }
    panic!("200 writes were acknowledged on a full disk");
}

/// Reads `kept` on the full disk until one is refused with 503, filling again before each:
/// a refused read commits a probe first and is served when it fits, and a failed commit can
/// leave a few pages of room that such a probe takes (seen on the S3 backend). A read that is
/// served must still carry the right bytes.
async fn assert_a_read_is_refused_while_nothing_commits(server: &Server, kept: &[u8]) {
    let s3 = server.s3();
    for attempt in 0..20 {
        fill_file(&server.data_dir().join(format!("filler-{attempt}")));
        match s3.get_object().bucket("full").key("kept").send().await {
            Ok(out) => assert_eq!(out.body.collect().await.expect("body").into_bytes(), kept, "a read on a full disk"),
            Err(err) => {
                assert_eq!(failure::<(), _>(Err(err)), (503, "ServiceUnavailable".to_owned()), "a read on a full disk");
                return;
            }
        }
    }
    panic!("20 reads were served while the registry could not commit");
}

/// Removes `filler` and the fillers beside it.
fn free_the_disk(filler: &Path) {
    let dir = filler.parent().expect("the data folder");
    for entry in std::fs::read_dir(dir).expect("the data folder") {
        let path = entry.expect("an entry").path();
        if path.file_name().is_some_and(|name| name.to_string_lossy().starts_with("filler")) {
            std::fs::remove_file(&path).expect("free the disk");
        }
    }
}

/// `artifact_store_retrieval_records_dropped_total`, from `/_metrics`.
async fn dropped_records(server: &Server) -> f64 {
    metrics::sample(&server.scrape().await, "artifact_store_retrieval_records_dropped_total", &[]).unwrap_or(0.0)
}

#[tokio::test]
async fn a_full_disk_refuses_writes_and_unrecorded_reads_and_recovers_without_restart_issue_16() {
    let kept = bytes(100_000, 14);
    let reserve = RESERVE.to_string();
    let Some((server, _mount)) = server_on_tmpfs(&[("ARTIFACT_STORE_STORAGE_MIN_FREE_BYTES", &reserve)], &kept).await
    else {
        skip("mounting a tmpfs needs root; the disk-full checks did not run");
        return;
    };
    let s3 = server.s3();
    let data = server.data_dir();

    // The reserve: a body that would leave less than `storage.min_free_bytes` is refused
    // before it is read, on the local store (an upstream keeps the bytes elsewhere).
    if !server.on_s3_backend() {
        let before = server.events().len();
        // The body never comes: the answer must not wait for it.
        let big = server
            .request("PUT", "/full/big")
            .header("content-length", &((DISK_MIB << 20) - RESERVE).to_string())
            .body(b"a few bytes".to_vec())
            .sign(ROOT, SystemTime::now(), Payload::Unsigned);
        assert_refused(&server.send(&big).await, 503, "ServiceUnavailable", "a body eating into the reserve");
        assert!(server.log().contains("disk is full"), "the refusal is not logged as a full disk");
        server.assert_no_new_events(before, "a body refused for the reserve");
        assert_eq!(std::fs::read_dir(data.join("tmp")).expect("tmp").count(), 0, "a temp file stayed");
    }

    // Nothing left at all: the registry's commits fail too.
    let (filler, refused_key, (status, code)) = fill_until_a_write_is_refused(&server).await;
    assert_eq!((status, code.as_str()), (503, "ServiceUnavailable"), "a write on a full disk");
    let (status, text) = ready_status(&server).await;
    // Either the log's commit failed or the views' did (the log's WAL may still have had room).
    assert_eq!(status, 503, "/_ready on a full disk: {text}");
    assert!(text.starts_with("not ready: registry"), "{text}");
    assert_a_read_is_refused_while_nothing_commits(&server, &kept).await;
    assert_eq!(server.send(&server.request("GET", "/_health")).await.status, 200, "alive all along");

    // Space is freed: everything resumes, no restart. The first read commits again by itself.
    free_the_disk(&filler);
    let retrieved_before = server.object_events("full", "kept").len();
    assert_eq!(get(&s3, "full", "kept").await, kept);
    assert_eq!(ready_status(&server).await.0, 200, "/_ready once space is freed");
    put(&s3, "full", "after", b"after").await;
    assert_eq!(get(&s3, "full", "after").await, b"after");
    // The refused write left nothing: no version, no event; the reads are recorded.
    server.assert_absent("full", &refused_key).await;
    assert!(server.object_events("full", &refused_key).is_empty(), "an event for the refused write");
    let recorded = server.wait_for_events("full", "kept", |events| events.len() > retrieved_before).await;
    assert_eq!(recorded.last().map(|e| e.event_type.as_str()), Some("v1.object.retrieved"));
    if !server.on_s3_backend() {
        assert_eq!(std::fs::read_dir(data.join("tmp")).expect("tmp").count(), 0, "a temp file stayed");
    }
    cli::expect(&server, &["verify"], 0);
}

/// `registry.retrievals = best_effort`: on a full disk reads are served, and every record that
/// could not be committed is counted. (A read is refused in either mode while the views lack
/// events the log holds: they would answer from a state that is not the log's.)
#[tokio::test]
async fn best_effort_serves_reads_on_a_full_disk_and_counts_the_lost_records_issue_16() {
    let kept = bytes(100_000, 16);
    let Some((server, _mount)) = server_on_tmpfs(&[("ARTIFACT_STORE_REGISTRY_RETRIEVALS", "best_effort")], &kept).await
    else {
        skip("mounting a tmpfs needs root; the disk-full checks did not run");
        return;
    };
    let s3 = server.s3();
    let before = dropped_records(&server).await;
    let filler = fill(&server.data_dir());
    // Reads only: their records fill what room the registry's files had left, then fail.
    let (mut served, mut dropped) = (0, before);
    for _ in 0..300 {
        match s3.get_object().bucket("full").key("kept").send().await {
            Ok(out) => {
                assert_eq!(out.body.collect().await.expect("body").into_bytes(), kept, "a read on a full disk");
                served += 1;
            }
            Err(err) => assert_eq!(failure::<(), _>(Err(err)), (503, "ServiceUnavailable".to_owned())),
        }
        dropped = dropped_records(&server).await;
        if dropped > before {
            break;
        }
    }
    assert!(dropped > before, "no lost record was counted after 300 reads on a full disk ({served} served)");
    std::fs::remove_file(&filler).expect("free the disk");
    put(&s3, "full", "after", b"after").await;
    assert_eq!(get(&s3, "full", "after").await, b"after");
}
