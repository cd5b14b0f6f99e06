//! The maintenance commands (`verify`, `gc`, `replay`, `events list`, `retention`) run as the real binary
//! against real data directories, built through the registry API and the local blob store.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use artifact_store_gateway::backend::fs::FsBlobStore;
use artifact_store_gateway::backend::{BlobId, BlobStore as _};
use artifact_store_gateway::layout;
use bytes::Bytes;
use registry::clock::SystemClock;
use registry::commands::{NewVersion, WriteCondition};
use registry::deletions::Epoch;
use registry::event::v1::{BlobPart, ObjectContent, ObjectPut, Origin};
use registry::{Caller, Registry};
use serde_json::Value;

const BUCKET: &str = "releases";

/// Two hours ago: older than gc's default guard of one hour.
fn long_ago() -> SystemTime {
    SystemTime::now() - Duration::from_secs(2 * 3600)
}

/// A data directory with a bucket and two objects, `a.txt` and `b.txt`, whose blobs exist.
struct DataDir {
    dir: tempfile::TempDir,
    a: BlobId,
    b: BlobId,
}

impl DataDir {
    async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let registry = Registry::open(layout::registry_path(dir.path()), Arc::new(SystemClock)).unwrap();
        let store = FsBlobStore::open(dir.path()).unwrap();
        registry.create_bucket(Caller::system("test"), BUCKET, "us-east-1", false).await.unwrap();
        let a = put(&registry, &store, "a.txt", b"release notes for 1.0\n").await;
        let b = put(&registry, &store, "b.txt", b"checksums of the 1.0 artifacts\n").await;
        registry.close().await;
        Self { dir, a, b }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn blob_path(&self, id: &BlobId) -> PathBuf {
        let hex = id.as_str();
        self.path().join("blobs").join(&hex[0..2]).join(hex)
    }

    /// A blob file that no version references.
    async fn orphan_blob(&self, bytes: &[u8]) -> BlobId {
        let store = FsBlobStore::open(self.path()).unwrap();
        store_blob(&store, bytes).await
    }

    /// Runs SQL behind the registry's back, on the log with its views attached.
    fn sql(&self, statement: &str) {
        let log = layout::registry_path(self.path());
        let conn = rusqlite::Connection::open(&log).unwrap();
        let views = registry::sqlite::views_path(&log);
        conn.execute("ATTACH DATABASE ?1 AS views", [views.to_str().unwrap()]).unwrap();
        let changed = conn.execute(statement, []).unwrap();
        assert!(changed > 0, "{statement} changed nothing");
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_artifact-store"))
            .env_remove("ARTIFACT_STORE_CONFIG")
            .arg("--data-dir")
            .arg(self.path())
            .args(args)
            .output()
            .unwrap()
    }
}

async fn store_blob(store: &FsBlobStore, bytes: &[u8]) -> BlobId {
    let body = Box::pin(futures::stream::iter([Ok(Bytes::copy_from_slice(bytes))]));
    store.put(body, Some(bytes.len() as u64), &[], None, None).await.unwrap().commit().await.unwrap()
}

async fn put(registry: &Registry, store: &FsBlobStore, key: &str, bytes: &[u8]) -> BlobId {
    let id = store_blob(store, bytes).await;
    let part = BlobPart {
        blob: id.as_str().to_owned(),
        size: bytes.len() as u64,
        etag: "\"0123456789abcdef0123456789abcdef\"".to_owned(),
        checksums: BTreeMap::new(),
        subtree: None,
        subtrees: None,
        offset: None,
        store_etag: None,
        wrapped_key: None,
    };
    let put = ObjectPut {
        bucket: BUCKET.to_owned(),
        key: key.to_owned(),
        version_id: "null".to_owned(),
        content: ObjectContent {
            size: part.size,
            etag: part.etag.clone(),
            blake3: id.as_str().to_owned(),
            parts: vec![part],
            ..ObjectContent::default()
        },
        origin: Origin::Put,
        retention: None,
        legal_hold: false,
    };
    registry
        .put_object(
            Caller::system("test"),
            NewVersion {
                acl: registry::acl::ObjectAcl::default(),
                put,
                condition: WriteCondition::default(),
                placement: Some(Epoch::ORIGIN.into()),
            },
        )
        .await
        .unwrap();
    id
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn json(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("{e}: {}", stdout(output)))
}

#[track_caller]
fn assert_exit(output: &Output, code: i32) {
    assert_eq!(
        output.status.code(),
        Some(code),
        "stdout:\n{}\nstderr:\n{}",
        stdout(output),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn set_mtime(path: &Path, when: SystemTime) {
    std::fs::File::open(path).unwrap().set_modified(when).unwrap();
}

#[tokio::test]
async fn verify_passes_on_an_intact_data_dir() {
    let data = DataDir::new().await;

    let output = data.run(&["verify"]);
    assert_exit(&output, 0);
    assert!(stdout(&output).contains("chain: 3 events intact, head 3"), "{}", stdout(&output));
    assert!(stdout(&output).lines().last() == Some("ok"), "{}", stdout(&output));

    let report = json(&data.run(&["verify", "--json"]));
    assert_eq!(report["ok"], true);
    assert_eq!(report["chain"]["events"], 3);
    assert_eq!(report["chain"]["head_sequence"], 3);
    assert_eq!(report["views"]["matches_log"], true);
    assert_eq!(report["blobs"]["checked"], 2);
    assert_eq!(report["blobs"]["referenced"], 2);
    assert_eq!(report["problems"], serde_json::json!([]));
}

#[tokio::test]
async fn verify_names_a_blob_whose_bytes_changed() {
    let data = DataDir::new().await;
    std::fs::write(data.blob_path(&data.a), b"release notes for 1.1\n").unwrap();

    let output = data.run(&["verify"]);
    assert_exit(&output, 1);
    assert!(stdout(&output).contains(&format!("FAILED blob {}: its bytes do not hash to its name", data.a)));
    assert!(!stdout(&output).contains(data.b.as_str()), "{}", stdout(&output));

    let report = json(&data.run(&["--json", "verify"]));
    assert_eq!(report["blobs"]["corrupt"], serde_json::json!([data.a.as_str()]));
    assert_eq!(report["chain"]["first_mismatch"], Value::Null);

    // Without blob checks, the chain and views alone pass.
    assert_exit(&data.run(&["verify", "--no-blobs"]), 0);
}

#[tokio::test]
async fn verify_names_a_missing_referenced_blob() {
    let data = DataDir::new().await;
    std::fs::remove_file(data.blob_path(&data.b)).unwrap();

    let output = data.run(&["verify"]);
    assert_exit(&output, 1);
    assert!(stdout(&output).contains(&format!("FAILED blob {}: referenced by the registry but missing", data.b)));
}

#[tokio::test]
async fn verify_names_a_tampered_event() {
    let data = DataDir::new().await;
    data.sql("UPDATE events SET payload = CAST(replace(payload, 'a.txt', 'x.txt') AS BLOB) WHERE seq = 2");

    let output = data.run(&["verify"]);
    assert_exit(&output, 1);
    assert!(
        stdout(&output).contains("FAILED chain: event 2 does not match the hash chain (intact up to event 1)"),
        "{}",
        stdout(&output)
    );
    let report = json(&data.run(&["verify", "--json"]));
    assert_eq!(report["chain"]["first_mismatch"], 2);
    assert_eq!(report["chain"]["head_sequence"], 1);

    // Views are not rebuilt from a tampered log.
    let replay = data.run(&["replay"]);
    assert_exit(&replay, 1);
    assert!(String::from_utf8_lossy(&replay.stderr).contains("broken at event 2"));
}

#[tokio::test]
async fn verify_names_a_views_row_changed_behind_the_logs_back() {
    let data = DataDir::new().await;
    data.sql("UPDATE object_versions SET size = size + 1 WHERE key = 'b.txt'");

    let output = data.run(&["verify"]);
    assert_exit(&output, 1);
    let text = stdout(&output);
    assert!(text.contains("chain: 3 events intact"), "{text}");
    assert!(text.contains("FAILED views: table object_versions differs from the log at seq=3"), "{text}");
    assert!(!text.contains("table buckets"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_runs_beside_a_live_writer() {
    let data = DataDir::new().await;
    let registry = Registry::open(layout::registry_path(data.path()), Arc::new(SystemClock)).unwrap();
    let store = FsBlobStore::open(data.path()).unwrap();
    let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
    let writer = tokio::spawn({
        let registry = registry.clone();
        async move {
            let mut written = 0;
            while stopped.try_recv().is_err() {
                let bytes = format!("build output {written}");
                put(&registry, &store, &format!("builds/{written}"), bytes.as_bytes()).await;
                written += 1;
            }
            written
        }
    });

    let verify = |data_dir: PathBuf| {
        tokio::task::spawn_blocking(move || {
            Command::new(env!("CARGO_BIN_EXE_artifact-store"))
                .env_remove("ARTIFACT_STORE_CONFIG")
                .arg("--data-dir")
                .arg(data_dir)
                .args(["verify", "--json"])
                .output()
                .unwrap()
        })
    };
    let first = verify(data.path().to_owned()).await.unwrap();
    let second = verify(data.path().to_owned()).await.unwrap();
    stop.send(()).unwrap();
    let written = writer.await.unwrap();
    registry.close().await;

    assert!(written > 0);
    for output in [&first, &second] {
        assert_exit(output, 0);
        assert_eq!(json(output)["ok"], true);
    }
    assert_exit(&data.run(&["verify"]), 0);
}

#[tokio::test]
async fn gc_removes_old_unreferenced_blobs_and_stale_temp_files_only() {
    let data = DataDir::new().await;
    let old_orphan = data.orphan_blob(b"an upload that was never recorded").await;
    let young_orphan = data.orphan_blob(b"an upload being recorded right now").await;
    for id in [&data.a, &data.b, &old_orphan] {
        set_mtime(&data.blob_path(id), long_ago());
    }
    let stale_temp = data.path().join("tmp").join("dead.part");
    let live_temp = data.path().join("tmp").join("live.part");
    std::fs::write(&stale_temp, b"half a body").unwrap();
    std::fs::write(&live_temp, b"a body arriving").unwrap();
    set_mtime(&stale_temp, long_ago());

    let dry = data.run(&["gc", "--dry-run", "--json"]);
    assert_exit(&dry, 0);
    let report = json(&dry);
    assert_eq!(report["dry_run"], true);
    assert_eq!(report["blobs_removed"], 1);
    assert_eq!(report["blob_bytes_freed"], 33);
    assert_eq!(report["blobs_referenced"], 2);
    assert_eq!(report["blobs_too_young"], 1);
    assert_eq!(report["temp_files_removed"], 1);
    assert_eq!(report["temp_bytes_freed"], 11);
    for id in [&data.a, &data.b, &old_orphan, &young_orphan] {
        assert!(data.blob_path(id).exists(), "dry run removed {id}");
    }
    assert!(stale_temp.exists());

    let output = data.run(&["gc"]);
    assert_exit(&output, 0);
    assert!(stdout(&output).contains("blobs: removed 1 unreferenced (33 B); kept 2 referenced, 1 younger than 1h"));
    assert!(!data.blob_path(&old_orphan).exists());
    for id in [&data.a, &data.b, &young_orphan] {
        assert!(data.blob_path(id).exists(), "gc removed {id}");
    }
    assert!(!stale_temp.exists());
    assert!(live_temp.exists());
    assert_exit(&data.run(&["verify"]), 0);

    // With no age guard, the young orphan goes too; referenced blobs never do.
    let report = json(&data.run(&["gc", "--min-age", "0s", "--json"]));
    assert_eq!(report["blobs_removed"], 1);
    assert!(!data.blob_path(&young_orphan).exists());
    assert!(data.blob_path(&data.a).exists() && data.blob_path(&data.b).exists());
}

#[tokio::test]
async fn gc_rejects_a_malformed_duration() {
    let data = DataDir::new().await;
    assert_exit(&data.run(&["gc", "--min-age", "soon"]), 2);
}

#[tokio::test]
async fn replay_restores_a_deleted_views_row() {
    let data = DataDir::new().await;
    data.sql("DELETE FROM object_versions WHERE key = 'a.txt'");
    assert_exit(&data.run(&["verify", "--no-blobs"]), 1);

    let output = data.run(&["replay"]);
    assert_exit(&output, 0);
    assert_eq!(stdout(&output), "views rebuilt from the log; head sequence 3\n");
    assert_eq!(json(&data.run(&["replay", "--json"]))["head_sequence"], 3);

    assert_exit(&data.run(&["verify"]), 0);
    let views = registry::sqlite::views_path(&layout::registry_path(data.path()));
    let conn = rusqlite::Connection::open(views).unwrap();
    let size: i64 = conn
        .query_row("SELECT size FROM object_versions WHERE bucket = ?1 AND key = 'a.txt'", [BUCKET], |row| row.get(0))
        .unwrap();
    assert_eq!(size, 22);
}

#[tokio::test]
async fn events_list_prints_the_log() {
    let data = DataDir::new().await;

    let output = data.run(&["events", "list", "--json"]);
    assert_exit(&output, 0);
    let events: Vec<Value> = stdout(&output).lines().map(|line| serde_json::from_str(line).unwrap()).collect();
    let sequences: Vec<_> = events.iter().map(|e| e["sequence"].as_u64().unwrap()).collect();
    assert_eq!(sequences, [1, 2, 3]);
    assert_eq!(events[0]["event_type"], "v1.bucket.created");
    assert_eq!(events[1]["event_type"], "v1.object.put");
    assert_eq!(events[2]["prev_hash"], events[1]["hash"]);

    let output = data.run(&["events", "list", "--since", "1", "--limit", "1", "--json"]);
    let events: Vec<Value> = stdout(&output).lines().map(|line| serde_json::from_str(line).unwrap()).collect();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["sequence"], 2);

    let output = data.run(&["events", "list"]);
    assert_exit(&output, 0);
    let text = stdout(&output);
    let lines: Vec<_> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert!(lines[0].split_whitespace().eq(["SEQ", "TIME", "TYPE", "ACTOR", "SUBJECT"]), "{text}");
    assert!(lines[3].contains("v1.object.put") && lines[3].ends_with(&format!("object/{BUCKET}/b.txt")), "{text}");
}

#[tokio::test]
async fn retention_plan_shows_what_is_due_and_deletes_nothing_and_explain_reads_the_events() {
    let data = DataDir::new().await;
    let registry = Registry::open(layout::registry_path(data.path()), Arc::new(SystemClock)).unwrap();
    let rule = registry::lifecycle::Rule {
        id: "drafts".into(),
        enabled: true,
        filter: registry::lifecycle::Filter { prefix: "a".into(), ..Default::default() },
        expiration: Some(registry::lifecycle::Expiration { days: Some(1), ..Default::default() }),
        noncurrent_version_expiration: None,
        abort_incomplete_multipart_upload_days: None,
    };
    registry.set_lifecycle(Caller::system("test"), BUCKET, vec![rule]).await.unwrap();
    registry.close().await;

    let output = data.run(&["retention", "plan", "--json"]);
    assert_exit(&output, 0);
    let now: Value = serde_json::from_str(stdout(&output).trim()).unwrap();
    assert_eq!(now["actions"].as_array().unwrap().len(), 0, "{now}");

    let output = data.run(&["retention", "plan", "--at", "+3days", "--json"]);
    assert_exit(&output, 0);
    let later: Value = serde_json::from_str(stdout(&output).trim()).unwrap();
    let actions = later["actions"].as_array().unwrap();
    assert_eq!(actions.len(), 1, "{later}");
    assert_eq!(actions[0]["key"], "a.txt");
    assert_eq!(actions[0]["rule_id"], "drafts");
    assert_eq!(actions[0]["effect"]["effect"], "delete_version");
    let text = stdout(&data.run(&["retention", "plan", "--at", "+3days"]));
    assert!(text.contains("1 actions due, 0 held back"), "{text}");

    // Planning deleted nothing: the object is there and the log did not grow.
    let events = stdout(&data.run(&["events", "list", "--json"])).lines().count();
    assert_eq!(events, 4);
    let output = data.run(&["retention", "explain", &format!("s3://{BUCKET}/a.txt"), "--json"]);
    assert_exit(&output, 0);
    let why: Value = serde_json::from_str(stdout(&output).trim()).unwrap();
    assert_eq!(why["fate"], "current", "{why}");
    assert_eq!(why["history"][0]["event_type"], "v1.object.put");
    assert_eq!(why["version_id"], "null");
    let text = stdout(&data.run(&["retention", "explain", &format!("s3://{BUCKET}/a.txt")]));
    assert!(text.contains("nothing protects it"), "{text}");
    assert_exit(&data.run(&["retention", "explain", "releases/a.txt"]), 2);
}

#[test]
fn commands_refuse_a_data_dir_without_a_registry() {
    let empty = tempfile::tempdir().unwrap();
    for args in [&["verify"][..], &["gc"], &["replay"], &["events", "list"]] {
        let output = Command::new(env!("CARGO_BIN_EXE_artifact-store"))
            .env_remove("ARTIFACT_STORE_CONFIG")
            .arg("--data-dir")
            .arg(empty.path())
            .args(args)
            .output()
            .unwrap();
        assert_exit(&output, 2);
        assert!(String::from_utf8_lossy(&output.stderr).contains("no registry at"), "{args:?}");
        assert!(!layout::registry_path(empty.path()).exists(), "{args:?} created a registry");
    }
}
