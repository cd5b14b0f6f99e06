//! Garbage collection beside a serving gateway, and the data folder the gateway keeps: `gc`
//! never takes the bytes of a write it races with (issue 16, item 1), nor does a pass that
//! died refuse them, a copy whose source goes (and a part copy or an encrypting copy whose
//! source gc collects as it runs) is refused as a copy made a moment later would be, nor is a
//! completion whose aborted upload's parts gc collects as it runs refused as damaged, nor does
//! a part copy or a GET whose overwritten object's old bytes gc collects as it runs raise a
//! corruption alarm (the GET answers 503, to be retried), a serving gateway collects garbage by
//! itself, temp files of uploads killed with the server are gone after a restart (item 17), and
//! every file of the data folder is its owner's alone (item 10).

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use artifact_store_conformance::raw::{Payload, ROOT};
use artifact_store_conformance::sdk::{completion_of, create_bucket, failure, get, put, upload_parts};
use artifact_store_conformance::server::upstream_env;
use artifact_store_conformance::{Server, Transport, blake3_hex, bytes, cli, md5_hex, skip};
use aws_sdk_s3::types::ServerSideEncryption;
use tokio::io::AsyncWriteExt as _;

/// Larger than any inline limit, so bodies go to the blob store.
const BLOB: usize = 20_000;

/// How long a test waits for something the server does on its own before it fails.
const PATIENCE: Duration = Duration::from_secs(60);

/// The local store's file for a blob of `data`.
fn blob_file(server: &Server, data: &[u8]) -> PathBuf {
    let hex = blake3_hex(data);
    server.data_dir().join("blobs").join(&hex[..2]).join(&hex)
}

/// Waits until `done` holds, failing the test after [`PATIENCE`].
async fn wait_until(what: &str, server: &Server, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not within {PATIENCE:?}\n{}", server.log());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_put_between_gcs_check_and_its_delete_keeps_its_bytes_issue_16() {
    let server = Server::start(Transport::Http).await;
    if server.on_s3_backend() {
        skip("on the S3 backend: its blobs are never shared by two writes (see the load test)");
        return;
    }
    let s3 = server.s3();
    create_bucket(&s3, "gc-race").await;
    let data = bytes(BLOB, 1601);
    // An old blob that nothing references any more.
    put(&s3, "gc-race", "old", &data).await;
    s3.delete_object().bucket("gc-race").key("old").send().await.expect("delete");

    // gc decides, then waits at the barrier before deleting.
    let (barrier, reached) = gc_barrier(&server);
    let gc = cli::spawn_gc_paused(&server, &barrier);
    wait_until("gc reached its barrier", &server, || reached.exists()).await;

    // A PUT of the same content while gc waits. It may finish at once (and must then keep
    // its bytes) or wait for gc (and must then store them again).
    let writer = {
        let (s3, data) = (s3.clone(), data.clone());
        tokio::spawn(async move { put(&s3, "gc-race", "new", &data).await })
    };
    wait_until("the PUT finished or met gc", &server, || {
        writer.is_finished() || server.log().contains("gc is deleting the blob of this write")
    })
    .await;
    std::fs::write(&barrier, b"").expect("open the barrier");
    let gc = gc.wait_with_output().expect("gc");
    assert!(gc.status.success(), "gc failed: {}", String::from_utf8_lossy(&gc.stderr));
    writer.await.expect("PUT task");

    // gc deleted the blob it marked itself: the waiting PUT did not take its marks over.
    let report: serde_json::Value = serde_json::from_slice(&gc.stdout).expect("gc --json");
    assert_eq!(report["blobs_removed"], 1, "{report}\n{}", server.log());
    assert!(blob_file(&server, &data).is_file(), "the acknowledged PUT's blob file is gone\n{}", server.log());
    assert_eq!(get(&s3, "gc-race", "new").await, data);
    cli::expect(&server, &["verify"], 0);
}

/// The barrier file of a gc paused by [`cli::spawn_gc_paused`], and the one it writes when it
/// got there.
fn gc_barrier(server: &Server) -> (PathBuf, PathBuf) {
    let barrier = server.data_dir().parent().expect("test folder").join("gc-barrier");
    let mut reached = barrier.clone().into_os_string();
    reached.push(".reached");
    (barrier, PathBuf::from(reached))
}

/// Runs `gc` until it has marked the blob of `data`, and kills it there with SIGKILL, as a
/// crash between its marks and their release would: the blob stays marked, still in the store.
async fn kill_gc_after_its_marks(server: &Server, data: &[u8]) {
    let (barrier, reached) = gc_barrier(server);
    let mut gc = cli::spawn_gc_paused(server, &barrier);
    wait_until("gc reached its barrier", server, || reached.exists()).await;
    gc.kill().expect("kill gc");
    gc.wait().expect("reap gc");
    assert!(blob_file(server, data).is_file(), "gc was killed before it deleted anything");
}

/// A gc pass killed after marking left its marks to the next pass, an hour later for the
/// gateway's own: until then every write of those bytes waited 30 s for a pass that was gone
/// and answered 503 (found by an attacker's pass). With no pass alive, the write finishes the
/// dead pass's deletions and stores its bytes again.
#[tokio::test]
async fn a_put_of_bytes_a_killed_gc_pass_had_marked_is_stored() {
    let server = Server::start(Transport::Http).await;
    if server.on_s3_backend() {
        skip("on the S3 backend: every write uploads an object of its own, which no pass marked");
        return;
    }
    let s3 = server.s3();
    create_bucket(&s3, "gc-killed").await;
    let data = bytes(BLOB, 2101);
    put(&s3, "gc-killed", "g1", &data).await;
    s3.delete_object().bucket("gc-killed").key("g1").send().await.expect("delete");
    kill_gc_after_its_marks(&server, &data).await;

    let written = s3.put_object().bucket("gc-killed").key("g2").body(data.clone().into()).send().await;
    if let Err(err) = written {
        panic!("PUT of the marked bytes: {:?}\n{}", failure::<(), _>(Err(err)), server.log());
    }
    assert_eq!(get(&s3, "gc-killed", "g2").await, data);
    cli::expect(&server, &["gc", "--min-age", "0s"], 0);
    assert!(blob_file(&server, &data).is_file(), "gc removed the blob of g2\n{}", server.log());
    assert_eq!(get(&s3, "gc-killed", "g2").await, data);
    cli::expect(&server, &["verify"], 0);
}

/// The pass that finishes a killed pass's deletions counts the bytes it frees: it reported
/// "removed 1 unreferenced (0 B)".
#[tokio::test]
async fn a_pass_finishing_a_killed_pass_reports_the_bytes_it_freed() {
    let server = Server::start(Transport::Http).await;
    if server.on_s3_backend() {
        skip("on the S3 backend: the test watches the local store's blob files");
        return;
    }
    let s3 = server.s3();
    create_bucket(&s3, "gc-report").await;
    let data = bytes(BLOB, 2201);
    put(&s3, "gc-report", "gone", &data).await;
    s3.delete_object().bucket("gc-report").key("gone").send().await.expect("delete");
    kill_gc_after_its_marks(&server, &data).await;

    let ran = cli::expect(&server, &["gc", "--min-age", "0s", "--json"], 0);
    let report: serde_json::Value = serde_json::from_str(&ran.stdout).expect("gc --json");
    assert_eq!((report["blobs_removed"].as_u64(), report["blob_bytes_freed"].as_u64()), (Some(1), Some(BLOB as u64)));
    assert!(!blob_file(&server, &data).exists());
}

#[tokio::test]
async fn puts_of_repeating_contents_beside_repeated_gc_all_read_back_issue_16() {
    const WRITERS: u64 = 4;
    const PUTS: u64 = 150;
    const KEYS: u64 = 6;
    const CONTENTS: u64 = 5;
    let server = Arc::new(Server::start(Transport::Http).await);
    let s3 = server.s3();
    create_bucket(&s3, "gc-load").await;
    let contents: Arc<Vec<Vec<u8>>> = Arc::new((0..CONTENTS).map(|seed| bytes(BLOB, 1700 + seed)).collect());

    // gc over and over, each run collecting what the overwrites just released.
    let stop = Arc::new(AtomicBool::new(false));
    let runs = Arc::new(AtomicU64::new(0));
    let collector = {
        let (server, stop, runs) = (Arc::clone(&server), Arc::clone(&stop), Arc::clone(&runs));
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                cli::expect(&server, &["gc", "--min-age", "0s", "--json"], 0);
                runs.fetch_add(1, Ordering::SeqCst);
            }
        })
    };

    // Each writer overwrites and deletes keys of its own, so its last acknowledged write per
    // key is what the key must hold at the end. On an S3 upstream every write uploads an
    // object of its own, which a gc with no minimum age may delete before the write is
    // recorded: the write is then refused with 503 and records nothing (no copy is kept to
    // upload again; docs/architecture.md, "Garbage collection beside writes"). On the local
    // store a write places its bytes again, so no write is refused.
    let may_refuse = server.on_s3_backend();
    let refused = Arc::new(AtomicU64::new(0));
    let mut writers = Vec::new();
    for writer in 0..WRITERS {
        let (s3, contents, refused) = (s3.clone(), Arc::clone(&contents), Arc::clone(&refused));
        writers.push(tokio::spawn(async move {
            let mut last: Vec<Option<u64>> = vec![None; KEYS as usize];
            for i in 0..PUTS {
                let key_index = (i * 7 + writer) % KEYS;
                let key = format!("w{writer}/k{key_index}");
                if i % 11 == 10 {
                    s3.delete_object().bucket("gc-load").key(&key).send().await.expect("delete");
                    last[key_index as usize] = None;
                } else {
                    let content = (i * 3 + writer) % CONTENTS;
                    let body = contents[content as usize].clone().into();
                    match s3.put_object().bucket("gc-load").key(&key).body(body).send().await {
                        Ok(_) => last[key_index as usize] = Some(content),
                        Err(err) if may_refuse => {
                            assert_eq!(failure::<(), _>(Err(err)), (503, "ServiceUnavailable".to_owned()), "put {key}");
                            refused.fetch_add(1, Ordering::SeqCst);
                        }
                        Err(err) => panic!("put {key}: {err:?}"),
                    }
                }
            }
            last
        }));
    }
    let mut expected = Vec::new();
    for (writer, task) in writers.into_iter().enumerate() {
        expected.push((writer, task.await.expect("writer")));
    }
    stop.store(true, Ordering::SeqCst);
    collector.join().expect("gc loop");
    let runs = runs.load(Ordering::SeqCst);
    let refused = refused.load(Ordering::SeqCst);
    eprintln!("{} PUTs and deletes by {WRITERS} writers beside {runs} gc runs, {refused} refused", WRITERS * PUTS);
    let log = server.log();
    let explained = log.lines().filter(|line| line.contains("before its write was recorded")).count() as u64;
    assert!(explained >= refused, "{refused} PUTs refused, {explained} of them because gc took their object:\n{log}");
    assert!(runs > 0, "gc never ran");

    for (writer, keys) in expected {
        for (key_index, content) in keys.iter().enumerate() {
            let key = format!("w{writer}/k{key_index}");
            match content {
                Some(content) => assert_eq!(get(&s3, "gc-load", &key).await, contents[*content as usize], "{key}"),
                None => {
                    let err = s3.get_object().bucket("gc-load").key(&key).send().await;
                    assert_eq!(failure(err), (404, "NoSuchKey".to_owned()), "{key}");
                }
            }
        }
    }
    // A last gc after the writes have stopped, then every byte the registry names is there.
    cli::expect(&server, &["gc", "--min-age", "0s"], 0);
    cli::expect(&server, &["verify"], 0);
}

#[tokio::test]
async fn a_serving_gateway_collects_deleted_objects_blobs_by_itself_issue_16() {
    let mut env = upstream_env();
    env.push(("ARTIFACT_STORE_GC_INTERVAL_SECONDS".to_owned(), "1".to_owned()));
    env.push(("ARTIFACT_STORE_GC_MIN_AGE_SECONDS".to_owned(), "0".to_owned()));
    let server = Server::start_with(Transport::Http, &[], env).await;
    if server.on_s3_backend() {
        skip("on the S3 backend: the test watches the local store's blob files");
        return;
    }
    let s3 = server.s3();
    create_bucket(&s3, "gc-background").await;
    let (kept, dropped) = (bytes(BLOB, 1801), bytes(BLOB, 1802));
    put(&s3, "gc-background", "kept", &kept).await;
    put(&s3, "gc-background", "dropped", &dropped).await;
    assert!(blob_file(&server, &dropped).is_file());
    s3.delete_object().bucket("gc-background").key("dropped").send().await.expect("delete");

    // No operator runs gc: the space comes back on its own.
    let file = blob_file(&server, &dropped);
    wait_until("the deleted object's blob file was removed", &server, || !file.exists()).await;
    assert!(blob_file(&server, &kept).is_file(), "gc removed a referenced blob");
    assert_eq!(get(&s3, "gc-background", "kept").await, kept);
    cli::expect(&server, &["verify"], 0);
}

/// A copy whose source was deleted or replaced between the copy's read of it and its record
/// found the source's blob unreferenced, and answered 503 "reduce your request rate", logged as
/// gc taking its blob, though no gc ran (found by an attacker's pass: 8 of 1,534 copies racing
/// a writer). It reads its source again and answers as a copy made then: NoSuchKey when the
/// source is gone, and, when another version replaced it, 503 `ServiceUnavailable`, never a
/// copy of that version, which the request was not authorized for (a retry is decided on it).
/// A bounded race: it cannot tell how often the window was hit, only that no copy answered
/// anything else (the registry's `copies.rs` drives that window deterministically).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copies_racing_deletes_and_overwrites_of_their_source_copy_it_or_answer_no_such_key() {
    const ROUNDS: usize = 300;
    let server = Server::start(Transport::Http).await;
    let s3 = server.s3();
    create_bucket(&s3, "gc-copy").await;
    let contents = Arc::new([bytes(BLOB, 2301), bytes(BLOB, 2302)]);

    let done = Arc::new(AtomicBool::new(false));
    let writer = {
        let (s3, contents, done) = (s3.clone(), Arc::clone(&contents), Arc::clone(&done));
        tokio::spawn(async move {
            for round in 0..ROUNDS {
                put(&s3, "gc-copy", "src", &contents[round % 2]).await;
                if round % 3 == 2 {
                    s3.delete_object().bucket("gc-copy").key("src").send().await.expect("delete");
                }
            }
            done.store(true, Ordering::SeqCst);
        })
    };
    let (mut copied, mut missing) = (0, 0);
    while !done.load(Ordering::SeqCst) {
        let answer = s3.copy_object().bucket("gc-copy").key("dst").copy_source("gc-copy/src").send().await;
        match answer {
            Ok(_) => copied += 1,
            Err(err) => {
                let failure = failure::<(), _>(Err(err));
                let expected = [(404, "NoSuchKey".to_owned()), (503, "ServiceUnavailable".to_owned())];
                assert!(expected.contains(&failure), "{failure:?} after {copied} copies\n{}", server.log());
                missing += 1;
            }
        }
    }
    writer.await.expect("writer");
    eprintln!("{copied} copies and {missing} NoSuchKey beside {ROUNDS} PUTs of the source");
    assert!(copied > 0, "no copy succeeded: the race test tested nothing");
    assert!(contents.contains(&get(&s3, "gc-copy", "dst").await), "the copy holds bytes no source had");
    cli::expect(&server, &["verify"], 0);
}

/// A server whose test barrier `variable` (see the gateway's `test_barrier`) is set: the
/// barrier's file, the file the server writes when it got there, and the folder holding both.
async fn server_with_barrier(variable: &str) -> (Server, PathBuf, PathBuf, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp folder");
    let barrier = dir.path().join("barrier");
    let mut env = upstream_env();
    env.push((variable.to_owned(), barrier.to_str().expect("a UTF-8 path").to_owned()));
    let server = Server::start_with(Transport::Http, &[], env).await;
    (server, barrier, dir.path().join("barrier.reached"), dir)
}

/// Runs `gc` with no minimum age and returns how many blobs it removed.
fn collect_garbage(server: &Server) -> u64 {
    let ran = cli::expect(server, &["gc", "--min-age", "0s", "--json"], 0);
    let report: serde_json::Value = serde_json::from_str(&ran.stdout).expect("gc --json");
    report["blobs_removed"].as_u64().expect("blobs_removed")
}

/// An UploadPartCopy whose source was deleted, and its blob collected, after the copy read the
/// source's version and before it read its bytes answered 500 InternalError. A copy made a
/// moment later would find no source: it answers NoSuchKey, as CopyObject does, and records no
/// part, no event and no blob. The gateway waits at a test barrier at that point.
#[tokio::test]
async fn an_upload_part_copy_whose_source_is_deleted_and_collected_mid_copy_answers_no_such_key() {
    let (server, barrier, reached, _dir) = server_with_barrier("ARTIFACT_STORE_PART_COPY_PAUSE").await;
    let s3 = server.s3();
    create_bucket(&s3, "gc-part-copy").await;
    let data = bytes(BLOB, 2401);
    put(&s3, "gc-part-copy", "src", &data).await;
    let created = s3.create_multipart_upload().bucket("gc-part-copy").key("dst").send().await.expect("create upload");
    let upload_id = created.upload_id().expect("upload id").to_owned();

    let copy = {
        let (s3, upload_id) = (s3.clone(), upload_id.clone());
        tokio::spawn(async move {
            s3.upload_part_copy()
                .bucket("gc-part-copy")
                .key("dst")
                .upload_id(upload_id)
                .part_number(1)
                .copy_source("gc-part-copy/src")
                .send()
                .await
        })
    };
    wait_until("the copy read its source", &server, || reached.exists()).await;
    s3.delete_object().bucket("gc-part-copy").key("src").send().await.expect("delete");
    assert_eq!(collect_garbage(&server), 1, "gc did not collect the source's blob\n{}", server.log());
    let before = server.events().len();
    std::fs::write(&barrier, b"").expect("open the barrier");

    let copied = copy.await.expect("copy task");
    assert_eq!(failure(copied), (404, "NoSuchKey".to_owned()), "{}", server.log());
    server.assert_no_new_events(before, "the refused part copy");
    let parts = s3.list_parts().bucket("gc-part-copy").key("dst").upload_id(&upload_id).send().await.expect("parts");
    assert!(parts.parts().is_empty(), "the refused copy recorded a part: {:?}", parts.parts());
    if !server.on_s3_backend() {
        assert!(!blob_file(&server, &data).exists(), "the refused copy left its bytes in the store");
    }
    cli::expect(&server, &["verify"], 0);
}

/// A CopyObject that asks for SSE-S3 of an unencrypted source reads the source's bytes to store
/// them again, encrypted. When the source was deleted, and its blob collected, after the copy
/// read its version and before it read its bytes, the copy answered 500 InternalError. A copy
/// made a moment later would find no source: it answers NoSuchKey, and records no object, no
/// event and no blob. The gateway waits at a test barrier at that point.
#[tokio::test]
async fn an_encrypting_copy_whose_source_is_deleted_and_collected_mid_copy_answers_no_such_key() {
    let (server, barrier, reached, _dir) = server_with_barrier("ARTIFACT_STORE_COPY_PAUSE").await;
    let s3 = server.s3();
    create_bucket(&s3, "gc-sse-copy").await;
    put(&s3, "gc-sse-copy", "src", &bytes(BLOB, 2601)).await;

    let copy = {
        let s3 = s3.clone();
        tokio::spawn(async move {
            s3.copy_object()
                .bucket("gc-sse-copy")
                .key("dst")
                .copy_source("gc-sse-copy/src")
                .server_side_encryption(ServerSideEncryption::Aes256)
                .send()
                .await
        })
    };
    wait_until("the copy read its source", &server, || reached.exists()).await;
    s3.delete_object().bucket("gc-sse-copy").key("src").send().await.expect("delete");
    assert_eq!(collect_garbage(&server), 1, "gc did not collect the source's blob\n{}", server.log());
    let before = server.events().len();
    std::fs::write(&barrier, b"").expect("open the barrier");

    let copied = copy.await.expect("copy task");
    assert_eq!(failure(copied), (404, "NoSuchKey".to_owned()), "{}", server.log());
    server.assert_no_new_events(before, "the refused copy");
    server.assert_absent("gc-sse-copy", "dst").await;
    if !server.on_s3_backend() {
        let blobs = files_in(&server.data_dir().join("blobs"));
        assert_eq!(blobs, Vec::<PathBuf>::new(), "the refused copy left bytes in the store");
    }
    cli::expect(&server, &["verify"], 0);
}

/// A completion that read its upload's parts before the upload was aborted and the parts'
/// blobs collected found them gone when it read them back, and answered 500 "a stored part of
/// the upload is damaged" with a corruption record. The upload is no more: it answers
/// NoSuchUpload, as AWS does for an aborted upload, and records nothing. The gateway waits at a
/// test barrier between its read of the parts and its read of their bytes.
#[tokio::test]
async fn a_multipart_completion_of_an_upload_aborted_and_collected_meanwhile_answers_no_such_upload() {
    let (server, barrier, reached, _dir) = server_with_barrier("ARTIFACT_STORE_COMPLETION_PAUSE").await;
    let s3 = server.s3();
    create_bucket(&s3, "gc-complete").await;
    // One part of less than a chunk: the completion reads it back to hash the object.
    let (upload_id, parts) = upload_parts(&s3, "gc-complete", "mpu", &[1000], 2501).await;

    let completion = {
        let (s3, upload_id) = (s3.clone(), upload_id.clone());
        tokio::spawn(async move {
            s3.complete_multipart_upload()
                .bucket("gc-complete")
                .key("mpu")
                .upload_id(upload_id)
                .multipart_upload(completion_of(&parts))
                .send()
                .await
        })
    };
    wait_until("the completion read its parts", &server, || reached.exists()).await;
    s3.abort_multipart_upload().bucket("gc-complete").key("mpu").upload_id(&upload_id).send().await.expect("abort");
    let removed = collect_garbage(&server);
    // On an S3 upstream the abort took the parts with the upstream's upload.
    if !server.on_s3_backend() {
        assert_eq!(removed, 1, "gc did not collect the part's blob\n{}", server.log());
    }
    let before = server.events().len();
    std::fs::write(&barrier, b"").expect("open the barrier");

    let completed = completion.await.expect("completion task");
    assert_eq!(failure(completed), (404, "NoSuchUpload".to_owned()), "{}", server.log());
    server.assert_no_new_events(before, "the refused completion");
    server.assert_absent("gc-complete", "mpu").await;
    cli::expect(&server, &["verify"], 0);
}

/// An UploadPartCopy of an unversioned source that read the source's version before the key
/// was overwritten, and the old bytes collected, found them gone: besides reading its source
/// again, it recorded a `v1.blob.corrupt` event, a false alarm, since the `null` version it
/// asked about still stood (the new one). It records no corruption, and does not copy the new
/// bytes, which the request was not authorized for: it answers 503 (clients retry, and the
/// retry copies them).
#[tokio::test]
async fn an_upload_part_copy_whose_unversioned_source_is_overwritten_and_collected_mid_copy_is_retried_not_alarmed() {
    let (server, barrier, reached, _dir) = server_with_barrier("ARTIFACT_STORE_PART_COPY_PAUSE").await;
    let s3 = server.s3();
    create_bucket(&s3, "gc-part-over").await;
    let (old, new) = (bytes(BLOB, 2801), bytes(BLOB, 2802));
    put(&s3, "gc-part-over", "src", &old).await;
    let created = s3.create_multipart_upload().bucket("gc-part-over").key("dst").send().await.expect("create upload");
    let upload_id = created.upload_id().expect("upload id").to_owned();

    let copy = {
        let (s3, upload_id) = (s3.clone(), upload_id.clone());
        tokio::spawn(async move {
            s3.upload_part_copy()
                .bucket("gc-part-over")
                .key("dst")
                .upload_id(upload_id)
                .part_number(1)
                .copy_source("gc-part-over/src")
                .send()
                .await
        })
    };
    wait_until("the copy read its source", &server, || reached.exists()).await;
    put(&s3, "gc-part-over", "src", &new).await;
    assert_eq!(collect_garbage(&server), 1, "gc did not collect the old bytes\n{}", server.log());
    std::fs::write(&barrier, b"").expect("open the barrier");

    let refused = copy.await.expect("copy task");
    assert_eq!(failure(refused), (503, "ServiceUnavailable".to_owned()), "{}", server.log());
    let retried = s3.upload_part_copy().bucket("gc-part-over").key("dst").upload_id(&upload_id).part_number(1);
    let copied = retried.copy_source("gc-part-over/src").send().await.expect("the retried part copy");
    let etag = copied.copy_part_result().and_then(|r| r.e_tag()).expect("the part's ETag");
    assert_eq!(etag, format!("\"{}\"", md5_hex(&new)), "the retry holds bytes other than the new source's");
    assert_no_corruption_recorded(&server).await;
    cli::expect(&server, &["verify"], 0);
}

/// A GET of an unversioned object that read its version before the key was overwritten, and
/// the old bytes collected, found them gone: it answered 500 and recorded a `v1.blob.corrupt`
/// event, a false alarm in the tamper-evident log, since the `null` version it asked about
/// still stood (the new one). The version it read is no more, and the new one was not what the
/// request was authorized for: the GET answers 503 (clients retry, and the retry reads the new
/// bytes) and records no corruption. The gateway waits at a test barrier between the GET's
/// read of the version and its read of the bytes.
#[tokio::test]
async fn a_get_of_an_unversioned_object_overwritten_and_collected_mid_read_is_retried_not_alarmed() {
    let (server, barrier, reached, _dir) = server_with_barrier("ARTIFACT_STORE_GET_PAUSE").await;
    let s3 = server.s3();
    create_bucket(&s3, "gc-get").await;
    let (old, new) = (bytes(BLOB, 2701), bytes(BLOB, 2702));
    put(&s3, "gc-get", "obj", &old).await;

    let read = {
        let s3 = s3.clone();
        tokio::spawn(async move {
            match s3.get_object().bucket("gc-get").key("obj").send().await {
                Ok(got) => Ok(got.body.collect().await.expect("the GET's body").to_vec()),
                Err(err) => Err(failure::<(), _>(Err(err))),
            }
        })
    };
    wait_until("the GET read the version", &server, || reached.exists()).await;
    put(&s3, "gc-get", "obj", &new).await;
    assert_eq!(collect_garbage(&server), 1, "gc did not collect the old bytes\n{}", server.log());
    if !server.on_s3_backend() {
        assert!(!blob_file(&server, &old).exists(), "gc left the old bytes in the store");
    }
    std::fs::write(&barrier, b"").expect("open the barrier");

    match read.await.expect("GET task") {
        Err(failure) => assert_eq!(failure, (503, "ServiceUnavailable".to_owned()), "{}", server.log()),
        Ok(got) => panic!("the GET answered {} bytes of a version it was not authorized for", got.len()),
    }
    assert_eq!(get(&s3, "gc-get", "obj").await, new, "the retry reads the new version");
    assert_no_corruption_recorded(&server).await;
    cli::expect(&server, &["verify"], 0);
}

/// Asserts that no `v1.blob.corrupt` event was recorded.
async fn assert_no_corruption_recorded(server: &Server) {
    // A corruption record is queued, not waited for: give it the time to land.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let corrupt: Vec<_> = server.events().into_iter().filter(|e| e.event_type == "v1.blob.corrupt").collect();
    assert!(corrupt.is_empty(), "a false corruption alarm: {corrupt:?}\n{}", server.log());
}

/// Files in `dir`, recursively.
fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            files.extend(files_in(&path));
        } else {
            files.push(path);
        }
    }
    files
}

#[tokio::test]
async fn temp_files_of_an_upload_killed_with_the_server_are_removed_at_start_issue_16() {
    let mut server = Server::start(Transport::Http).await;
    if server.on_s3_backend() {
        skip("on the S3 backend: its uploads stream upstream, not into tmp/");
        return;
    }
    create_bucket(&server.s3(), "killed").await;
    let tmp = server.data_dir().join("tmp");

    // A large streamed PUT: headers announcing 64 MiB, then 8 MiB of it, then nothing.
    let request = server.request("PUT", "/killed/large.bin").header("content-length", &(64 << 20).to_string()).sign(
        ROOT,
        SystemTime::now(),
        Payload::Unsigned,
    );
    let mut upload = tokio::net::TcpStream::connect(server.addr()).await.expect("connect");
    upload.write_all(&request.to_bytes()).await.expect("send headers");
    upload.write_all(&vec![7u8; 8 << 20]).await.expect("send part of the body");
    wait_until("the upload's temp file has bytes", &server, || {
        files_in(&tmp).iter().any(|f| std::fs::metadata(f).is_ok_and(|m| m.len() > 0))
    })
    .await;

    // kill -9 mid-upload, and start again on the same data.
    server.restart().await;
    drop(upload);
    assert_eq!(files_in(&tmp), Vec::<PathBuf>::new(), "temp files survived the restart");
    // The store still works.
    let data = bytes(BLOB, 1901);
    put(&server.s3(), "killed", "after.bin", &data).await;
    assert_eq!(get(&server.s3(), "killed", "after.bin").await, data);
}

/// Every path under `dir` whose mode is not 0600 (files) or 0700 (folders), with its mode.
fn not_private(dir: &Path) -> Vec<(PathBuf, u32)> {
    let mut found = Vec::new();
    let mode = |path: &Path| std::fs::symlink_metadata(path).expect("metadata").permissions().mode() & 0o777;
    if mode(dir) != 0o700 {
        found.push((dir.to_owned(), mode(dir)));
    }
    for entry in std::fs::read_dir(dir).expect("read dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            found.extend(not_private(&path));
        } else if mode(&path) != 0o600 {
            found.push((path.clone(), mode(&path)));
        }
    }
    found
}

#[tokio::test]
async fn every_file_of_the_data_folder_is_private_to_its_owner_issue_16() {
    let mut server = Server::start(Transport::Http).await;
    let s3 = server.s3();
    create_bucket(&s3, "private").await;
    put(&s3, "private", "large", &bytes(BLOB, 2001)).await;
    put(&s3, "private", "small", &bytes(100, 2002)).await;
    let data_dir = server.data_dir();
    assert_eq!(not_private(&data_dir), Vec::<(PathBuf, u32)>::new(), "after serving PUTs");

    // A data folder made by an older build, or loosened by hand, is tightened at start.
    for path in [data_dir.join("registry.db"), data_dir.join("registry.views.db")] {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    }
    std::fs::set_permissions(&data_dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    if !server.on_s3_backend() {
        let blob = blob_file(&server, &bytes(BLOB, 2001));
        std::fs::set_permissions(&blob, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        std::fs::set_permissions(blob.parent().expect("shard"), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    server.restart().await;
    assert_eq!(not_private(&data_dir), Vec::<(PathBuf, u32)>::new(), "after a restart");
    assert_eq!(get(&s3, "private", "large").await, bytes(BLOB, 2001));
}

/// `gc`'s report speaks of the backend the folder has: on the local store no line about an S3
/// upstream (its locked objects, its multipart uploads), on the S3 backend none about local
/// temp files.
#[tokio::test]
async fn gc_reports_only_what_the_folders_backend_has() {
    let server = Server::start(Transport::Http).await;
    let ran = cli::expect(&server, &["gc", "--min-age", "0s"], 0);
    assert!(ran.stdout.starts_with("blobs: removed"), "{}", ran.stdout);
    let mentions = |word: &str| ran.stdout.lines().any(|line| line.contains(word));
    if server.on_s3_backend() {
        assert!(mentions("upstream") && !mentions("tmp:"), "{}", ran.stdout);
    } else {
        assert!(!mentions("upstream") && mentions("tmp:"), "{}", ran.stdout);
    }
}
