//! No wrong byte is served, against the real binary with aws-sdk-s3: stored bytes damaged
//! behind the gateway's back (a flipped byte in a blob or an inline row, a deleted or
//! truncated blob) are never answered as a complete, successful GET. Small reads answer 500
//! InternalError; a large read whose damage shows only after the head is cut short. Every
//! refusal leaves a `v1.blob.corrupt` event and counts in `/_metrics`.
//!
//! On the S3 backend the damage is done to the upstream's objects, as someone with access to
//! the upstream bucket would.

use std::os::unix::fs::FileExt as _;

use artifact_store_conformance::events::{of_type, version};
use artifact_store_conformance::sdk::{completion_of, create_bucket, failure, get_range, put, upload_parts};
use artifact_store_conformance::server::upstream_env;
use artifact_store_conformance::upstream::RunUpstream;
use artifact_store_conformance::{Server, Transport, blake3_hex, bytes, cli, metrics, skip};
use aws_sdk_s3::primitives::ByteStream;

const MIB: usize = 1 << 20;

/// Where and how the test damages the bytes behind one object.
pub(crate) enum Damage {
    /// One byte at this offset changes.
    Flip(usize),
    /// The blob goes away.
    Delete,
    /// The blob keeps only its first bytes.
    Truncate(usize),
}

/// The blob id of the latest version of `bucket/key` (its only part).
fn blob_of(server: &Server, bucket: &str, key: &str) -> String {
    let events = server.object_events(bucket, key);
    let put = of_type(&events, "v1.object.put").last().copied().expect("a v1.object.put event");
    version(put)["content"]["parts"][0]["blob"].as_str().expect("a blob id").to_owned()
}

/// Damages the stored bytes of `bucket/key`, whose content is `data`: the blob file on the
/// local store, the upstream object on the S3 backend.
pub(crate) async fn damage(server: &Server, bucket: &str, key: &str, data: &[u8], how: Damage) {
    let blob = blob_of(server, bucket, key);
    if server.on_s3_backend() {
        let upstream = RunUpstream::from_env().expect("the S3 backend's upstream");
        let upstream_bucket = server.setting("ARTIFACT_STORE_UPSTREAM_BUCKET").expect("upstream bucket");
        let prefix = server.setting("ARTIFACT_STORE_UPSTREAM_PREFIX").unwrap_or_default();
        let object_key = format!("{prefix}{blob}");
        let client = upstream.client();
        let replacement = match how {
            Damage::Delete => {
                client.delete_object().bucket(upstream_bucket).key(&object_key).send().await.expect("delete upstream");
                return;
            }
            Damage::Flip(at) => {
                let mut damaged = data.to_vec();
                damaged[at] ^= 0x01;
                damaged
            }
            Damage::Truncate(len) => data[..len].to_vec(),
        };
        client
            .put_object()
            .bucket(upstream_bucket)
            .key(&object_key)
            .body(ByteStream::from(replacement))
            .send()
            .await
            .expect("overwrite the upstream object");
        return;
    }
    let path = server.data_dir().join("blobs").join(&blob[..2]).join(&blob);
    match how {
        Damage::Delete => std::fs::remove_file(&path).expect("delete the blob file"),
        Damage::Flip(at) => {
            let file = std::fs::OpenOptions::new().write(true).open(&path).expect("open the blob file");
            file.write_all_at(&[data[at] ^ 0x01], at as u64).expect("flip a byte");
        }
        Damage::Truncate(len) => {
            let file = std::fs::OpenOptions::new().write(true).open(&path).expect("open the blob file");
            file.set_len(len as u64).expect("truncate the blob file");
        }
    }
}

/// The `v1.blob.corrupt` events of `bucket/key` once there are `count`, their reasons in order
/// (`digest_mismatch`, `missing`, `short`).
async fn corrupt_reasons(server: &Server, bucket: &str, key: &str, count: usize) -> Vec<String> {
    let events = server.wait_for_events(bucket, key, |e| of_type(e, "v1.blob.corrupt").len() >= count).await;
    of_type(&events, "v1.blob.corrupt")
        .into_iter()
        .map(|event| event.payload["reason"].as_str().expect("a corrupt reason").to_owned())
        .collect()
}

/// `artifact_store_blob_corrupt_total` for `reason`, from `/_metrics` (0 before the first).
async fn corrupt_metric(server: &Server, reason: &str) -> f64 {
    metrics::sample(&server.scrape().await, "artifact_store_blob_corrupt_total", &[("reason", reason)]).unwrap_or(0.0)
}

/// A GET whose response is a 500 InternalError, before any byte of the body.
async fn assert_refused(s3: &aws_sdk_s3::Client, bucket: &str, key: &str, range: Option<&str>, what: &str) {
    let result = s3.get_object().bucket(bucket).key(key).set_range(range.map(str::to_owned)).send().await;
    assert_eq!(failure(result), (500, "InternalError".to_owned()), "{what}");
}

/// A GET that must not complete successfully: refused, or cut before its body ends.
async fn assert_not_served(s3: &aws_sdk_s3::Client, bucket: &str, key: &str, data: &[u8], what: &str) {
    let response = match s3.get_object().bucket(bucket).key(key).send().await {
        Err(err) => {
            let status = err.raw_response().map(|r| r.status().as_u16());
            assert_eq!(status, Some(500), "{what}: {err:?}");
            return;
        }
        Ok(response) => response,
    };
    // Every byte that arrives before the body is cut must be the stored one: a client that
    // uses bytes as they come (a pipe into tar) must never take in a damaged one.
    let mut body = response.body;
    let mut received = Vec::new();
    loop {
        match body.try_next().await {
            Ok(Some(chunk)) => received.extend_from_slice(&chunk),
            Ok(None) => panic!(
                "{what}: a complete response of {} bytes (stored {}, matches: {})",
                received.len(),
                data.len(),
                received == data
            ),
            Err(_) => break,
        }
    }
    let wrong = received.iter().zip(data).position(|(sent, stored)| sent != stored);
    assert_eq!(wrong, None, "{what}: a damaged byte was sent before the body was cut ({} bytes sent)", received.len());
}

#[tokio::test]
async fn a_flipped_byte_in_a_blob_is_refused_and_recorded() {
    let server = Server::start_with(Transport::Http, &[], upstream_env()).await;
    let s3 = server.s3();
    create_bucket(&s3, "flipped").await;
    let before = corrupt_metric(&server, "digest_mismatch").await;

    // A small object: checked before the head, 500.
    let small = bytes(100_000, 1);
    put(&s3, "flipped", "small.bin", &small).await;
    damage(&server, "flipped", "small.bin", &small, Damage::Flip(54_321)).await;
    assert_refused(&s3, "flipped", "small.bin", None, "GET of a small object with a flipped byte").await;
    assert_refused(&s3, "flipped", "small.bin", Some("bytes=0-9"), "a range of it").await;
    assert_eq!(corrupt_reasons(&server, "flipped", "small.bin", 2).await, ["digest_mismatch"; 2]);

    // A large object read in a range before the damage (its outboard is then known), damaged
    // in its third MiB: the whole object and a range over the damage are refused, a range
    // elsewhere is served.
    let large = bytes(3 * MIB + 1234, 2);
    put(&s3, "flipped", "large.bin", &large).await;
    assert_eq!(get_range(&s3, "flipped", "large.bin", Some("bytes=10-19")).await, &large[10..20]);
    let at = 2 * MIB + MIB / 2;
    damage(&server, "flipped", "large.bin", &large, Damage::Flip(at)).await;
    assert_not_served(&s3, "flipped", "large.bin", &large, "GET of a large object with a flipped byte").await;
    let over = format!("bytes={}-{}", at - 10, at + 10);
    assert_refused(&s3, "flipped", "large.bin", Some(&over), "a range over the flipped byte").await;
    let elsewhere = (100, 2 * MIB - 100);
    let intact = get_range(&s3, "flipped", "large.bin", Some(&format!("bytes={}-{}", elsewhere.0, elsewhere.1))).await;
    assert_eq!(intact, &large[elsewhere.0..=elsewhere.1], "a range of intact groups is served");
    assert_eq!(corrupt_reasons(&server, "flipped", "large.bin", 2).await, ["digest_mismatch"; 2]);

    // Found by a review: a whole GET sent every byte but its last chunk before the digest was
    // checked, the damaged one included. Damage in the first group now refuses the read before
    // the head; damage later cuts the body before the damaged group.
    for (key, at, seed) in [("first.bin", 0, 5), ("middle.bin", 3 * MIB + 5, 6)] {
        let data = bytes(6 * MIB + 99, seed);
        put(&s3, "flipped", key, &data).await;
        damage(&server, "flipped", key, &data, Damage::Flip(at)).await;
        assert_not_served(&s3, "flipped", key, &data, &format!("GET of {key}, damaged at {at}")).await;
    }
    let first = s3.get_object().bucket("flipped").key("first.bin").send().await;
    assert_eq!(failure(first).0, 500, "damage in the first group is refused before the head");

    assert_eq!(corrupt_metric(&server, "digest_mismatch").await, before + 7.0);
    assert!(server.log().contains("InternalError"), "the log names the answer");
    let verify = server.cli(&["verify", "--no-blobs"]);
    assert!(verify.status.success(), "replay accepts v1.blob.corrupt: {verify:#?}");
}

/// A large object's outboard was computed by its first ranged read, from the whole object:
/// damage anywhere made every range of it unreadable (and each first range after a restart
/// read the whole object). The write keeps it now, so a range costs its own groups.
#[tokio::test]
async fn a_write_keeps_its_outboard_so_ranges_away_from_damage_are_served() {
    let mut server = Server::start_with(Transport::Http, &[], upstream_env()).await;
    let s3 = server.s3();
    create_bucket(&s3, "outboard").await;
    let data = bytes(6 * MIB + 77, 4);
    put(&s3, "outboard", "large.bin", &data).await;
    let digest = blake3::hash(&data).to_hex().to_string();
    let kept = server.data_dir().join("outboards").join(&digest);
    assert_eq!(std::fs::read(&kept).expect("the write kept an outboard"), group_digests(&data));

    // Damaged before any read, after a restart (nothing in memory): a range elsewhere is
    // served from the kept outboard, a range over the damage is refused.
    server.restart().await;
    let s3 = server.s3();
    let at = 5 * MIB + 3;
    damage(&server, "outboard", "large.bin", &data, Damage::Flip(at)).await;
    let elsewhere = (MIB - 5, 3 * MIB + 5);
    let range = format!("bytes={}-{}", elsewhere.0, elsewhere.1);
    assert_eq!(get_range(&s3, "outboard", "large.bin", Some(&range)).await, &data[elsewhere.0..=elsewhere.1]);
    assert_refused(&s3, "outboard", "large.bin", Some(&format!("bytes={at}-{}", at + 1)), "a range over the damage")
        .await;
    assert_eq!(corrupt_reasons(&server, "outboard", "large.bin", 1).await, ["digest_mismatch"]);

    // An outboard is not believed on its word: damage to group 1 with an outboard rewritten to
    // vouch for it (a forged chaining value) does not merge into the recorded digest, so the
    // read computes the outboard again from the object, which fails: the range is refused
    // instead of served damaged.
    let forged_at = MIB + 10;
    damage(&server, "outboard", "large.bin", &data, Damage::Flip(forged_at)).await;
    let mut forged = data[MIB..2 * MIB].to_vec();
    forged[10] ^= 0x01;
    let mut cvs = std::fs::read(&kept).expect("read the outboard");
    let forged_cv = {
        use blake3::hazmat::HasherExt as _;
        blake3::Hasher::new().set_input_offset(MIB as u64).update(&forged).finalize_non_root()
    };
    cvs[32..64].copy_from_slice(&forged_cv);
    std::fs::write(&kept, &cvs).expect("forge the outboard");
    server.restart().await;
    let s3 = server.s3();
    let group1 = format!("bytes={}-{}", MIB, MIB + 20);
    assert_refused(&s3, "outboard", "large.bin", Some(&group1), "a range vouched for by a forged outboard").await;

    // gc removes the outboard once no version has that content.
    s3.delete_object().bucket("outboard").key("large.bin").send().await.expect("delete");
    let gc = server.cli(&["gc", "--min-age", "0s", "--json"]);
    assert!(gc.status.success(), "gc: {gc:#?}");
    let report: serde_json::Value = serde_json::from_slice(&gc.stdout).expect("gc's JSON report");
    assert_eq!(report["outboards_removed"], 1, "{report}");
    assert!(!kept.exists(), "the outboard of a deleted object is removed");
}

/// A multipart object got its outboard only from its first ranged read, which read all of it.
/// Completion keeps it now: joined from the parts' groups (kept while they were uploaded) where
/// the digest is merged from the parts, computed in the same pass where the parts are read back.
/// The parts' kept groups go with the upload (completed, or aborted and collected).
#[tokio::test]
async fn a_multipart_completion_keeps_its_outboard() {
    let server = Server::start_with(Transport::Http, &[], upstream_env()).await;
    let s3 = server.s3();
    create_bucket(&s3, "mpu").await;
    let parts_dir = server.data_dir().join("outboards").join("parts");
    let kept_parts = || std::fs::read_dir(&parts_dir).map(|d| d.count()).unwrap_or(0);
    let upload = |key: &'static str, sizes: Vec<usize>, complete: bool| {
        let s3 = s3.clone();
        async move {
            let (upload_id, parts) = upload_parts(&s3, "mpu", key, &sizes, 20).await;
            let data: Vec<u8> = parts.iter().flat_map(|(bytes, _)| bytes.iter().copied()).collect();
            if complete {
                s3.complete_multipart_upload()
                    .bucket("mpu")
                    .key(key)
                    .upload_id(&upload_id)
                    .multipart_upload(completion_of(&parts))
                    .send()
                    .await
                    .expect("complete");
            } else {
                s3.abort_multipart_upload().bucket("mpu").key(key).upload_id(&upload_id).send().await.expect("abort");
            }
            data
        }
    };

    // 5 MiB parts: the digest is merged, the outboard joined from the parts' kept leaves.
    let merged = upload("merged.bin", vec![5 * MIB, 5 * MIB, 3 * MIB + 5], true).await;
    // A first part that is not a whole number of 1 KiB chunks: the object is read back once,
    // and the outboard computed on the way.
    let read_back = upload("read-back.bin", vec![5 * MIB + 1, 2 * MIB], true).await;
    for (key, data) in [("merged.bin", &merged), ("read-back.bin", &read_back)] {
        let kept = server.data_dir().join("outboards").join(blake3::hash(data).to_hex().as_str());
        let outboard = std::fs::read(&kept).unwrap_or_else(|e| panic!("{key}: no outboard kept: {e}"));
        assert_eq!(outboard, group_digests(data), "{key}: the chaining value of each MiB");
        let range = (MIB + 17, 4 * MIB + 3);
        let got = get_range(&s3, "mpu", key, Some(&format!("bytes={}-{}", range.0, range.1))).await;
        assert_eq!(got, &data[range.0..=range.1], "{key}: a range");
    }
    assert_eq!(kept_parts(), 0, "completion drops the parts' kept groups");

    // An aborted upload leaves its parts' groups for gc.
    upload("aborted.bin", vec![8 * MIB, MIB], false).await;
    assert_eq!(kept_parts(), 2, "the parts' groups are kept while the upload is open");
    let gc = server.cli(&["gc", "--min-age", "0s", "--json"]);
    assert!(gc.status.success(), "gc: {gc:#?}");
    assert_eq!(kept_parts(), 0, "gc removes the groups of parts no open upload has");
}

/// The chaining values of the 1 MiB groups of `data`, one after the other: its outboard.
fn group_digests(data: &[u8]) -> Vec<u8> {
    use blake3::hazmat::HasherExt as _;
    data.chunks(MIB)
        .enumerate()
        .flat_map(|(index, group)| {
            blake3::Hasher::new().set_input_offset((index * MIB) as u64).update(group).finalize_non_root()
        })
        .collect()
}

/// Completion read stored parts back (to hash the object, or some of its parts) without
/// checking them: a part damaged between its upload and completion was hashed into the new
/// version's digest, which then vouched for the damage. Each part read back is checked against
/// its own digest now, and a refusal is recorded as a `v1.blob.corrupt` event naming the upload
/// and the part. A part not read back was hashed as it arrived, so the object's digest is that
/// of the uploaded bytes and damage is refused by the first read. (The local store: on an S3
/// upstream the parts are the upstream's, which completes only those whose ETags match.)
#[tokio::test]
async fn a_part_damaged_or_lost_before_completion_is_refused_or_never_served() {
    let server = Server::start_with(Transport::Http, &[], upstream_env()).await;
    if server.on_s3_backend() {
        skip("the upstream keeps the parts of its own multipart uploads");
        return;
    }
    let s3 = server.s3();
    create_bucket(&s3, "parts").await;
    // Parts completion reads back: a first part that is not a whole number of 1 KiB chunks
    // (the object is hashed whole), and uneven parts (the second and third were hashed where
    // they are not); the damage is in the first part, then in the second; then a part is gone.
    let cases = [
        ("whole.bin", [5 * MIB + 1, 5 * MIB, MIB], 0, "digest_mismatch"),
        ("uneven.bin", [5 * MIB, 6 * MIB, MIB], 1, "digest_mismatch"),
        ("lost.bin", [5 * MIB + 1, 5 * MIB, MIB], 2, "missing"),
    ];
    for (seed, (key, sizes, damaged, reason)) in (10..).zip(cases) {
        // Blobs are named by their contents: each case has its own, so no damage carries over.
        let (upload_id, parts) = upload_parts(&s3, "parts", key, &sizes, seed).await;
        let uploaded = server.object_events("parts", key);
        let blob = of_type(&uploaded, "v1.multipart.part.uploaded")[damaged].payload["part"]["blob"]
            .as_str()
            .expect("a part's blob id")
            .to_owned();
        let path = server.data_dir().join("blobs").join(&blob[..2]).join(&blob);
        if reason == "missing" {
            std::fs::remove_file(&path).expect("remove the part's blob");
        } else {
            let file = std::fs::OpenOptions::new().write(true).open(&path).expect("open the part's blob");
            file.write_all_at(&[parts[damaged].0[1000] ^ 0x01], 1000).expect("flip a byte");
        }
        let before = corrupt_metric(&server, reason).await;

        let result = s3
            .complete_multipart_upload()
            .bucket("parts")
            .key(key)
            .upload_id(&upload_id)
            .multipart_upload(completion_of(&parts))
            .send()
            .await;
        assert_eq!(failure(result), (500, "InternalError".to_owned()), "{key}: completion over a damaged part");
        assert_eq!(corrupt_reasons(&server, "parts", key, 1).await, [reason], "{key}");
        let events = server.object_events("parts", key);
        assert!(of_type(&events, "v1.multipart.completed").is_empty(), "{key}: the upload was completed: {events:#?}");
        let corrupt = &of_type(&events, "v1.blob.corrupt")[0].payload;
        assert_eq!(corrupt["upload_id"], upload_id.as_str(), "{key}: {corrupt}");
        assert_eq!(corrupt["part_number"], damaged + 1, "{key}: {corrupt}");
        assert_eq!(corrupt["blobs"], serde_json::json!([blob]), "{key}: {corrupt}");
        assert_eq!(corrupt_metric(&server, reason).await, before + 1.0, "{key}");
    }
    assert!(server.log().contains("a stored part failed its integrity check"), "the log says why");

    // Parts that completion does not read back: the damage is found by the first read, which
    // refuses the bytes, since the object's BLAKE3 is that of the bytes as they were uploaded.
    let key = "merged.bin";
    let (upload_id, parts) = upload_parts(&s3, "parts", key, &[5 * MIB, 5 * MIB, MIB], 40).await;
    let uploaded = server.object_events("parts", key);
    let blob = of_type(&uploaded, "v1.multipart.part.uploaded")[1].payload["part"]["blob"].as_str().expect("blob");
    let path = server.data_dir().join("blobs").join(&blob[..2]).join(blob);
    let file = std::fs::OpenOptions::new().write(true).open(&path).expect("open the part's blob");
    file.write_all_at(&[parts[1].0[1000] ^ 0x01], 1000).expect("flip a byte");
    let completed = s3.complete_multipart_upload().bucket("parts").key(key).upload_id(&upload_id);
    completed.multipart_upload(completion_of(&parts)).send().await.expect("completion reads no part back");
    let whole: Vec<u8> = parts.iter().flat_map(|(data, _)| data.iter().copied()).collect();
    let recorded = of_type(&server.object_events("parts", key), "v1.multipart.completed")[0].payload["version"]
        ["content"]["blake3"]
        .clone();
    assert_eq!(recorded, blake3_hex(&whole).as_str(), "the digest of the bytes uploaded");
    let damaged_group = format!("bytes={}-{}", 5 * MIB, 6 * MIB - 1);
    assert_refused(&s3, "parts", key, Some(&damaged_group), "a range over the damaged part").await;
    assert_eq!(corrupt_reasons(&server, "parts", key, 1).await, ["digest_mismatch"], "{key}");

    let verify = cli::expect(&server, &["verify", "--no-blobs"], 0);
    assert!(verify.stdout.contains("views: match the log"), "replay accepts a part's v1.blob.corrupt: {verify:?}");
}

#[tokio::test]
async fn a_flipped_byte_in_an_inline_row_is_refused_before_the_head() {
    let server = Server::start_with(Transport::Http, &["--inline-max-bytes", "4096"], upstream_env()).await;
    let s3 = server.s3();
    create_bucket(&s3, "inline-flipped").await;
    let data = bytes(3000, 3);
    put(&s3, "inline-flipped", "small.bin", &data).await;
    assert!(blob_of(&server, "inline-flipped", "small.bin").starts_with("inline:"), "kept inline");

    let mut damaged = data.clone();
    damaged[1500] ^= 0x01;
    let conn = rusqlite::Connection::open(server.registry_path()).expect("open the log");
    conn.busy_timeout(std::time::Duration::from_secs(10)).expect("busy timeout");
    let altered = conn.execute(
        "UPDATE inline_blobs SET bytes = ?1 WHERE digest = ?2",
        (damaged, blake3::hash(&data).as_bytes().to_vec()),
    );
    assert_eq!(altered.expect("alter the inline row"), 1);
    drop(conn);

    assert_refused(&s3, "inline-flipped", "small.bin", None, "GET of an altered inline object").await;
    assert_refused(&s3, "inline-flipped", "small.bin", Some("bytes=2000-2099"), "a range of it").await;
    assert_eq!(corrupt_reasons(&server, "inline-flipped", "small.bin", 2).await, ["digest_mismatch"; 2]);
    assert_eq!(corrupt_metric(&server, "digest_mismatch").await, 2.0);
}

/// Found by an attacker's pass: a write whose content was stored before kept the stored copy
/// (a blob file, an inline row) without looking at it. Once that copy was damaged, a new
/// write of the same bytes was acknowledged and could never be read, and uploading again did
/// not mend it. A write now stores its own bytes, which also mends the copy every version of
/// that content reads.
#[tokio::test]
async fn a_write_of_content_whose_stored_copy_is_damaged_stores_its_own_bytes() {
    let server = Server::start_with(Transport::Http, &["--inline-max-bytes", "4096"], upstream_env()).await;
    let s3 = server.s3();
    create_bucket(&s3, "mended").await;

    let data = bytes(100_000, 7);
    put(&s3, "mended", "first.bin", &data).await;
    damage(&server, "mended", "first.bin", &data, Damage::Flip(54_321)).await;
    assert_refused(&s3, "mended", "first.bin", None, "GET of the damaged copy").await;
    put(&s3, "mended", "second.bin", &data).await;
    assert_eq!(get_range(&s3, "mended", "second.bin", None).await, data, "the acknowledged write reads back");
    if !server.on_s3_backend() {
        // On the local store both versions read the one file of their content; an upstream
        // keeps each write's object apart, and the damaged one stays refused.
        assert_eq!(get_range(&s3, "mended", "first.bin", None).await, data, "the earlier version is mended");
    }

    let small = bytes(3000, 8);
    put(&s3, "mended", "small-1.bin", &small).await;
    assert!(blob_of(&server, "mended", "small-1.bin").starts_with("inline:"), "kept inline");
    let mut damaged = small.clone();
    damaged[1500] ^= 0x01;
    let conn = rusqlite::Connection::open(server.registry_path()).expect("open the log");
    conn.busy_timeout(std::time::Duration::from_secs(10)).expect("busy timeout");
    let altered = conn.execute(
        "UPDATE inline_blobs SET bytes = ?1 WHERE digest = ?2",
        (damaged, blake3::hash(&small).as_bytes().to_vec()),
    );
    assert_eq!(altered.expect("alter the inline row"), 1);
    drop(conn);
    assert_refused(&s3, "mended", "small-1.bin", None, "GET of the altered inline row").await;
    put(&s3, "mended", "small-2.bin", &small).await;
    assert_eq!(get_range(&s3, "mended", "small-2.bin", None).await, small, "the acknowledged inline write");
    assert_eq!(get_range(&s3, "mended", "small-1.bin", None).await, small, "the earlier inline version is mended");
    // On an upstream the first write's damaged object stays, and verify names it.
    let verify = server.cli(&["verify"]);
    assert_eq!(verify.status.success(), !server.on_s3_backend(), "{verify:#?}");
}

#[tokio::test]
async fn a_missing_or_truncated_blob_is_an_error_not_an_empty_success() {
    let server = Server::start_with(Transport::Http, &[], upstream_env()).await;
    let s3 = server.s3();
    create_bucket(&s3, "lost").await;

    let gone = bytes(50_000, 4);
    put(&s3, "lost", "gone.bin", &gone).await;
    damage(&server, "lost", "gone.bin", &gone, Damage::Delete).await;
    assert_refused(&s3, "lost", "gone.bin", None, "GET of an object whose blob is gone").await;
    assert_eq!(corrupt_reasons(&server, "lost", "gone.bin", 1).await, ["missing"]);

    let short = bytes(3 * MIB, 5);
    put(&s3, "lost", "short.bin", &short).await;
    damage(&server, "lost", "short.bin", &short, Damage::Truncate(MIB)).await;
    assert_not_served(&s3, "lost", "short.bin", &short, "GET of an object whose blob was truncated").await;
    assert_eq!(corrupt_reasons(&server, "lost", "short.bin", 1).await, ["short"]);

    // Larger than the local store's default inline limit (4 KiB), so that it has a blob.
    let empty = bytes(20_000, 6);
    put(&s3, "lost", "emptied.bin", &empty).await;
    damage(&server, "lost", "emptied.bin", &empty, Damage::Truncate(0)).await;
    assert_refused(&s3, "lost", "emptied.bin", None, "GET of an object whose blob was emptied").await;
    assert_eq!(corrupt_reasons(&server, "lost", "emptied.bin", 1).await, ["short"]);

    assert_eq!(corrupt_metric(&server, "missing").await, 1.0);
    assert_eq!(corrupt_metric(&server, "short").await, 2.0);
}

/// UploadPartCopy streamed its source's bytes unchecked: a damaged source became a part, with
/// digests computed over the damage, and the object completed from it looked sound.
#[tokio::test]
async fn a_damaged_source_of_upload_part_copy_is_refused_not_copied() {
    let server = Server::start_with(Transport::Http, &[], upstream_env()).await;
    let s3 = server.s3();
    create_bucket(&s3, "copied").await;
    let source = bytes(6 * MIB, 3);
    put(&s3, "copied", "source.bin", &source).await;
    // A ranged read before the damage makes its outboard known, so that intact ranges stay
    // readable after it (as in the GET test above).
    assert_eq!(get_range(&s3, "copied", "source.bin", Some("bytes=0-9")).await, &source[..10]);
    damage(&server, "copied", "source.bin", &source, Damage::Flip(5 * MIB + 7)).await;

    let upload = s3.create_multipart_upload().bucket("copied").key("target.bin").send().await.expect("create upload");
    let upload_id = upload.upload_id().expect("upload id");
    let copy = |range: Option<String>| {
        s3.upload_part_copy()
            .bucket("copied")
            .key("target.bin")
            .upload_id(upload_id)
            .part_number(1)
            .copy_source("copied/source.bin")
            .set_copy_source_range(range)
            .send()
    };
    assert_eq!(failure(copy(None).await), (500, "InternalError".to_owned()), "a whole damaged source");
    let over = format!("bytes={}-{}", 5 * MIB, 6 * MIB - 1);
    assert_eq!(failure(copy(Some(over)).await), (500, "InternalError".to_owned()), "a range over the damage");
    assert!(
        of_type(&server.object_events("copied", "target.bin"), "v1.multipart.part.uploaded").is_empty(),
        "a part was recorded from damaged bytes"
    );
    assert_eq!(corrupt_reasons(&server, "copied", "source.bin", 2).await, ["digest_mismatch"; 2]);

    // A range of intact bytes is copied, and is what the source held.
    let intact = (MIB, 2 * MIB - 1);
    copy(Some(format!("bytes={}-{}", intact.0, intact.1))).await.expect("copy of an intact range");
    let parts = s3.list_parts().bucket("copied").key("target.bin").upload_id(upload_id).send().await.expect("list");
    let part = &parts.parts()[0];
    assert_eq!(part.size(), Some(i64::try_from(MIB).unwrap()));
    let completed = aws_sdk_s3::types::CompletedMultipartUpload::builder()
        .parts(aws_sdk_s3::types::CompletedPart::builder().part_number(1).e_tag(part.e_tag().expect("ETag")).build())
        .build();
    s3.complete_multipart_upload()
        .bucket("copied")
        .key("target.bin")
        .upload_id(upload_id)
        .multipart_upload(completed)
        .send()
        .await
        .expect("complete");
    assert_eq!(get_range(&s3, "copied", "target.bin", None).await, &source[intact.0..=intact.1]);
}

/// Found by an attacker's pass: a multipart object deleted, and its blobs collected, while a
/// GET of it streamed: the body stopped at the end of the part being read, as it must (the next
/// part's file is gone), but a `v1.blob.corrupt` event was recorded and an error logged for
/// bytes nobody damaged, a false alarm in the tamper-evident log. A part found missing now
/// raises the alarm only while its version still stands.
#[tokio::test]
async fn a_version_deleted_while_it_is_read_is_no_corruption() {
    let server = Server::start_with(Transport::Http, &[], upstream_env()).await;
    if server.on_s3_backend() {
        skip("the upstream's objects, not this folder's files, hold the parts there");
        return;
    }
    let s3 = server.s3();
    create_bucket(&s3, "gone").await;
    // A first part larger than the connection's buffers: the read is still in it when the
    // object goes.
    let (upload_id, parts) = upload_parts(&s3, "gone", "parts.bin", &[32 * MIB, 5 * MIB, 5 * MIB], 40).await;
    s3.complete_multipart_upload()
        .bucket("gone")
        .key("parts.bin")
        .upload_id(&upload_id)
        .multipart_upload(completion_of(&parts))
        .send()
        .await
        .expect("complete");
    let mut body = s3.get_object().bucket("gone").key("parts.bin").send().await.expect("GET").body;
    let first = body.next().await.expect("a first chunk").expect("its bytes");
    assert!(!first.is_empty());
    s3.delete_object().bucket("gone").key("parts.bin").send().await.expect("delete");
    let gc = server.cli(&["gc", "--min-age", "0s"]);
    assert!(gc.status.success(), "gc: {gc:#?}");
    let mut read = first.len();
    let mut cut = false;
    while let Some(chunk) = body.next().await {
        match chunk {
            Ok(chunk) => read += chunk.len(),
            Err(_) => {
                cut = true;
                break;
            }
        }
    }
    assert!(cut && read < 42 * MIB, "the read ends where the files went ({read} bytes, cut: {cut})");
    // Nothing is recorded or counted as corrupt, once the read's end was handled.
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let events = server.object_events("gone", "parts.bin");
    assert!(of_type(&events, "v1.blob.corrupt").is_empty(), "a false alarm: {events:?}");
    assert_eq!(corrupt_metric(&server, "missing").await, 0.0);
}
