//! Replaying the log from zero into an empty database gives the same views, byte for byte,
//! as the direct path; and no sequence of operations (lifecycle sweeps included) removes a
//! protected version.

use std::collections::BTreeMap;
use std::sync::Arc;

use artifact_store_registry::clock::ManualClock;
use artifact_store_registry::commands::{NewVersion, WriteCondition};
use artifact_store_registry::deletions::Epoch;
use artifact_store_registry::event::v1::{
    BlobPart, DefaultRetention, LockMode, MultipartCreated, ObjectContent, ObjectLockSet, ObjectPut, Origin,
    PartUploaded, Retention, Retrieved, StoreUpload, UploadRef, VersionRef, VersioningStatus,
};
use artifact_store_registry::inline::{self, InlineBlob};
use artifact_store_registry::lifecycle::{Expiration, Filter, NoncurrentExpiration, Rule};
use artifact_store_registry::packages::Manifest;
use artifact_store_registry::sqlite::views;
use artifact_store_registry::{Caller, Registry, log, retention, sqlite};
use proptest::prelude::*;

const T0: i64 = 1_800_000_000_000;
const DAY: i64 = 86_400_000;
/// A short lifecycle day, so that hour-sized clock advances make rules due.
const LIFECYCLE_DAY: i64 = 6 * 3_600_000;

#[derive(Debug, Clone)]
enum Op {
    CreateBucket {
        bucket: u8,
        lock: bool,
    },
    DeleteBucket {
        bucket: u8,
    },
    Versioning {
        bucket: u8,
        enabled: bool,
    },
    DefaultRetention {
        bucket: u8,
        days: u32,
        compliance: bool,
    },
    Put {
        bucket: u8,
        key: u8,
        size: u16,
        if_none_match: bool,
    },
    Delete {
        bucket: u8,
        key: u8,
        nth_version: Option<u8>,
        bypass: bool,
    },
    Tag {
        bucket: u8,
        key: u8,
        value: u8,
    },
    Retention {
        bucket: u8,
        key: u8,
        days: i8,
        compliance: bool,
        bypass: bool,
    },
    LegalHold {
        bucket: u8,
        key: u8,
        on: bool,
    },
    CreateUpload {
        bucket: u8,
        key: u8,
    },
    UploadPart {
        upload: u8,
        number: u8,
        size: u16,
    },
    Complete {
        upload: u8,
    },
    Abort {
        upload: u8,
    },
    Read {
        bucket: u8,
        key: u8,
    },
    Seal {
        bucket: u8,
        prefix: u8,
    },
    Advance {
        hours: u16,
    },
    Lifecycle {
        bucket: u8,
        prefix: u8,
        expiration: Option<u8>,
        noncurrent: Option<(u8, Option<u8>)>,
        abort: Option<u8>,
        markers: bool,
    },
    DeleteLifecycle {
        bucket: u8,
    },
    Sweep,
}

fn op() -> impl Strategy<Value = Op> {
    let b = 0u8..3;
    let k = 0u8..4;
    prop_oneof![
        (b.clone(), any::<bool>()).prop_map(|(bucket, lock)| Op::CreateBucket { bucket, lock }),
        b.clone().prop_map(|bucket| Op::DeleteBucket { bucket }),
        (b.clone(), any::<bool>()).prop_map(|(bucket, enabled)| Op::Versioning { bucket, enabled }),
        (b.clone(), 1u32..5, any::<bool>())
            .prop_map(|(bucket, days, compliance)| { Op::DefaultRetention { bucket, days, compliance } }),
        (b.clone(), k.clone(), any::<u16>(), any::<bool>()).prop_map(|(bucket, key, size, if_none_match)| Op::Put {
            bucket,
            key,
            size,
            if_none_match
        }),
        (b.clone(), k.clone(), proptest::option::of(0u8..4), any::<bool>())
            .prop_map(|(bucket, key, nth_version, bypass)| Op::Delete { bucket, key, nth_version, bypass }),
        (b.clone(), k.clone(), any::<u8>()).prop_map(|(bucket, key, value)| Op::Tag { bucket, key, value }),
        (b.clone(), k.clone(), -2i8..5, any::<bool>(), any::<bool>()).prop_map(
            |(bucket, key, days, compliance, bypass)| Op::Retention { bucket, key, days, compliance, bypass }
        ),
        (b.clone(), k.clone(), any::<bool>()).prop_map(|(bucket, key, on)| Op::LegalHold { bucket, key, on }),
        (b.clone(), k.clone()).prop_map(|(bucket, key)| Op::CreateUpload { bucket, key }),
        (0u8..4, 1u8..4, any::<u16>()).prop_map(|(upload, number, size)| Op::UploadPart { upload, number, size }),
        (0u8..4).prop_map(|upload| Op::Complete { upload }),
        (0u8..4).prop_map(|upload| Op::Abort { upload }),
        (b.clone(), k.clone()).prop_map(|(bucket, key)| Op::Read { bucket, key }),
        (b.clone(), 0u8..4).prop_map(|(bucket, prefix)| Op::Seal { bucket, prefix }),
        (1u16..96).prop_map(|hours| Op::Advance { hours }),
        (
            b.clone(),
            0u8..3,
            proptest::option::of(1u8..4),
            proptest::option::of((1u8..4, proptest::option::of(1u8..3))),
            proptest::option::of(1u8..3),
            any::<bool>()
        )
            .prop_map(|(bucket, prefix, expiration, noncurrent, abort, markers)| Op::Lifecycle {
                bucket,
                prefix,
                expiration,
                noncurrent,
                abort,
                markers
            }),
        b.clone().prop_map(|bucket| Op::DeleteLifecycle { bucket }),
        Just(Op::Sweep),
        Just(Op::Sweep),
    ]
}

/// One rule from the generated choices; `markers` adds a second rule that removes lone
/// delete markers.
fn lifecycle_rules(
    prefix: u8,
    expiration: Option<u8>,
    noncurrent: Option<(u8, Option<u8>)>,
    abort: Option<u8>,
    markers: bool,
) -> Vec<Rule> {
    let filter = Filter { prefix: ["", "a/", "ü"][usize::from(prefix)].to_owned(), ..Filter::default() };
    let mut rules = vec![Rule {
        id: "generated".into(),
        enabled: true,
        filter: filter.clone(),
        expiration: expiration.map(|days| Expiration { days: Some(u32::from(days)), ..Expiration::default() }),
        noncurrent_version_expiration: noncurrent.map(|(days, newer)| NoncurrentExpiration {
            noncurrent_days: u32::from(days),
            newer_noncurrent_versions: newer.map(u32::from),
        }),
        abort_incomplete_multipart_upload_days: abort.map(u32::from),
    }];
    if markers {
        rules.push(Rule {
            id: "markers".into(),
            enabled: true,
            filter,
            expiration: Some(Expiration { expired_object_delete_marker: true, ..Expiration::default() }),
            noncurrent_version_expiration: None,
            abort_incomplete_multipart_upload_days: None,
        });
    }
    rules
}

fn bucket_name(b: u8) -> String {
    format!("bucket-{b}")
}

fn key_name(k: u8) -> String {
    ["a", "a/b", "a/c/d", "ü/ñ"][usize::from(k)].to_owned()
}

fn prefix_name(p: u8) -> String {
    ["a/", "a/c/", "ü", ""][usize::from(p)].to_owned()
}

fn blob(seed: u64) -> BlobPart {
    let digest = blake3::hash(&seed.to_le_bytes()).to_hex().to_string();
    BlobPart {
        blob: digest,
        size: seed % 10_000,
        etag: format!("\"{:032x}\"", seed),
        checksums: BTreeMap::new(),
        subtree: None,
        subtrees: None,
        // Every third part as an S3 upstream's multipart upload records it.
        offset: seed.is_multiple_of(3).then_some(seed % 7),
        store_etag: seed.is_multiple_of(3).then(|| format!("\"{seed:x}\"")),
        wrapped_key: None,
    }
}

fn caller() -> Caller {
    let mut caller = Caller::system("AKIATESTKEY");
    caller.context.request_id = Some("req-1".into());
    caller.context.source_addr = Some("127.0.0.1:5000".into());
    caller
}

/// Drives the registry through `ops`, ignoring refusals, and checks after each step that no
/// version protected from this request has disappeared and that no sealed package changed.
async fn run(registry: &Registry, clock: &ManualClock, ops: &[Op]) {
    let mut uploads: Vec<(String, String, String)> = Vec::new();
    let mut sealed: Vec<Manifest> = Vec::new();
    for (step, op) in ops.iter().enumerate() {
        let seed = step as u64 + 1;
        let now = clock_now(clock);
        let bypass = matches!(op, Op::Delete { bypass: true, .. });
        let protected = protected_versions(registry, now, bypass).await;
        match op.clone() {
            Op::CreateBucket { bucket, lock } => {
                let _ = registry.create_bucket(caller(), &bucket_name(bucket), "us-east-1", lock).await;
            }
            Op::DeleteBucket { bucket } => {
                let _ = registry.delete_bucket(caller(), &bucket_name(bucket)).await;
            }
            Op::Versioning { bucket, enabled } => {
                let status = if enabled { VersioningStatus::Enabled } else { VersioningStatus::Suspended };
                let _ = registry.set_versioning(caller(), &bucket_name(bucket), status).await;
            }
            Op::DefaultRetention { bucket, days, compliance } => {
                let mode = if compliance { LockMode::Compliance } else { LockMode::Governance };
                let set = ObjectLockSet {
                    bucket: bucket_name(bucket),
                    default_retention: Some(DefaultRetention { mode, days: Some(days), years: None }),
                };
                let _ = registry.set_object_lock(caller(), set).await;
            }
            Op::Put { bucket, key, size, if_none_match } => {
                let mut part = blob(seed * 7 + u64::from(size));
                // Every fourth size is a small object kept inline: only its blob id differs.
                let inline = (size % 4 == 0).then(|| InlineBlob::new(format!("object {}", size % 64).into_bytes()));
                if let Some(inline) = &inline {
                    part.blob = inline.locator();
                    part.size = inline.bytes().len() as u64;
                }
                let put = ObjectPut {
                    bucket: bucket_name(bucket),
                    key: key_name(key),
                    version_id: format!("v{seed:08}"),
                    content: ObjectContent {
                        size: part.size,
                        etag: part.etag.clone(),
                        blake3: part.blob.clone(),
                        content_type: Some("application/octet-stream".into()),
                        user_metadata: BTreeMap::from([("build".into(), seed.to_string())]),
                        parts: vec![part],
                        ..ObjectContent::default()
                    },
                    origin: Origin::Put,
                    retention: None,
                    legal_hold: false,
                };
                let condition = WriteCondition { if_none_match_any: if_none_match, ..WriteCondition::default() };
                let new = NewVersion {
                    acl: artifact_store_registry::acl::ObjectAcl::default(),
                    put,
                    condition,
                    placement: Some(Epoch::ORIGIN.into()),
                };
                let _ = match inline {
                    Some(inline) => registry.put_inline_object(caller(), new, inline).await,
                    None => registry.put_object(caller(), new).await,
                };
            }
            Op::Delete { bucket, key, nth_version, bypass } => {
                let (bucket, key) = (bucket_name(bucket), key_name(key));
                let version_id = match nth_version {
                    Some(n) => nth_version_id(registry, &bucket, &key, n).await,
                    None => None,
                };
                let by_id = version_id.is_some();
                let target = VersionRef { bucket, key, version_id: version_id.unwrap_or_default() };
                let _ = registry.delete_object(caller(), target, by_id, format!("m{seed:08}"), bypass, None).await;
            }
            Op::Tag { bucket, key, value } => {
                let tags = BTreeMap::from([("t".to_owned(), value.to_string())]);
                let _ = registry.set_tagging(caller(), &bucket_name(bucket), &key_name(key), None, tags).await;
            }
            Op::Retention { bucket, key, days, compliance, bypass } => {
                let mode = if compliance { LockMode::Compliance } else { LockMode::Governance };
                let retention = (days >= 0).then(|| Retention { mode, retain_until: now + i64::from(days) * DAY });
                let target = VersionRef { bucket: bucket_name(bucket), key: key_name(key), version_id: String::new() };
                let _ = registry.set_retention(caller(), target, false, retention, bypass).await;
            }
            Op::LegalHold { bucket, key, on } => {
                let target = VersionRef { bucket: bucket_name(bucket), key: key_name(key), version_id: String::new() };
                let _ = registry.set_legal_hold(caller(), target, false, on).await;
            }
            Op::CreateUpload { bucket, key } => {
                let upload_id = format!("u{seed:08}");
                let created = MultipartCreated {
                    acl: Vec::new(),
                    owner: None,
                    bucket: bucket_name(bucket),
                    key: key_name(key),
                    upload_id: upload_id.clone(),
                    template: ObjectContent::default(),
                    checksum_algorithm: None,
                    retention: None,
                    legal_hold: false,
                    // Half the uploads as an S3 upstream records them.
                    store_upload: seed
                        .is_multiple_of(2)
                        .then(|| StoreUpload { blob: format!("{seed:032x}"), upload_id: format!("s{seed:08}") }),
                };
                if registry.create_multipart_upload(caller(), created).await.is_ok() {
                    uploads.push((bucket_name(bucket), key_name(key), upload_id));
                }
            }
            Op::UploadPart { upload, number, size } => {
                if let Some((bucket, key, upload_id)) = uploads.get(usize::from(upload)) {
                    let part = PartUploaded {
                        bucket: bucket.clone(),
                        key: key.clone(),
                        upload_id: upload_id.clone(),
                        part_number: u32::from(number),
                        part: blob(seed * 13 + u64::from(size)),
                    };
                    let _ = registry.upload_part(caller(), part, Epoch::ORIGIN.into()).await;
                }
            }
            Op::Complete { upload } => {
                if let Some((_, _, upload_id)) = uploads.get(usize::from(upload)).cloned() {
                    complete(registry, upload_id, seed).await;
                }
            }
            Op::Abort { upload } => {
                if let Some((bucket, key, upload_id)) = uploads.get(usize::from(upload)).cloned() {
                    let _ = registry.abort_multipart_upload(caller(), UploadRef { bucket, key, upload_id }).await;
                }
            }
            Op::Read { bucket, key } => {
                let (bucket, key) = (bucket_name(bucket), key_name(key));
                let latest = registry
                    .read({
                        let (bucket, key) = (bucket.clone(), key.clone());
                        move |conn| conn.latest_version(&bucket, &key)
                    })
                    .await
                    .unwrap();
                if let Some(version) = latest.filter(|v| !v.is_delete_marker) {
                    let retrieved = Retrieved {
                        version: VersionRef { bucket, key, version_id: version.version_id },
                        method: "GET".into(),
                        bytes: version.content.size,
                        range: None,
                    };
                    registry.record_retrieval(caller(), retrieved, |e| panic!("retrieval lost: {e}")).unwrap();
                }
            }
            Op::Seal { bucket, prefix } => {
                if let Some(manifest) = seal(registry, &bucket_name(bucket), &prefix_name(prefix), seed).await {
                    sealed.push(manifest);
                }
            }
            Op::Advance { hours } => clock.advance(i64::from(hours) * 3_600_000),
            Op::Lifecycle { bucket, prefix, expiration, noncurrent, abort, markers } => {
                let rules = lifecycle_rules(prefix, expiration, noncurrent, abort, markers);
                let _ = registry.set_lifecycle(caller(), &bucket_name(bucket), rules).await;
            }
            Op::DeleteLifecycle { bucket } => {
                let _ = registry.delete_lifecycle(caller(), &bucket_name(bucket)).await;
            }
            Op::Sweep => sweep(registry, now, seed, &protected).await,
        }
        // Flush detached writes before looking.
        registry.write(|_| Ok(())).await.unwrap();
        for (bucket, key, version_id) in protected {
            let still_there =
                registry.read(move |conn| conn.version(&bucket, &key, &version_id).map(|v| v.is_some())).await.unwrap();
            assert!(still_there, "step {step} ({op:?}) removed a protected version");
        }
        for manifest in &sealed {
            let expected = manifest.clone();
            let now = registry
                .read(move |conn| conn.manifest(&expected.name, &expected.bucket, &expected.prefix))
                .await
                .unwrap();
            assert_eq!(&now, manifest, "step {step} ({op:?}) changed sealed package {}", manifest.name);
        }
    }
}

/// Seals `prefix` of `bucket` the way `package seal` does, with a made-up blob for the
/// manifest's bytes. Returns the manifest when the seal was recorded.
async fn seal(registry: &Registry, bucket: &str, prefix: &str, seed: u64) -> Option<Manifest> {
    let name = format!("{bucket}/{prefix}");
    let manifest = {
        let (name, bucket, prefix) = (name.clone(), bucket.to_owned(), prefix.to_owned());
        registry.read(move |conn| conn.manifest(&name, &bucket, &prefix)).await.unwrap()
    };
    let bytes = manifest.encode();
    let digest = blake3::hash(&bytes).to_hex().to_string();
    let part = BlobPart {
        blob: digest.clone(),
        size: bytes.len() as u64,
        etag: format!("{seed:032x}"),
        checksums: BTreeMap::new(),
        subtree: None,
        subtrees: None,
        offset: None,
        store_etag: None,
        wrapped_key: None,
    };
    let put = ObjectPut {
        bucket: bucket.to_owned(),
        key: manifest.key(),
        version_id: format!("p{seed:08}"),
        content: ObjectContent {
            size: part.size,
            etag: part.etag.clone(),
            blake3: digest,
            content_type: Some("application/json".into()),
            parts: vec![part],
            ..ObjectContent::default()
        },
        origin: Origin::Put,
        retention: None,
        legal_hold: false,
    };
    registry.seal_package(caller(), manifest.clone(), put, Epoch::ORIGIN.into()).await.ok().map(|_| manifest)
}

/// What the gateway's sweeper does: plan every bucket, then have the registry apply the
/// plan. The plan itself must never name a protected version.
async fn sweep(registry: &Registry, now: i64, seed: u64, protected: &[(String, String, String)]) {
    let plans = registry.read(move |conn| conn.lifecycle_plan(now, LIFECYCLE_DAY)).await.unwrap();
    // Planning two versions' worth of keys at a time, as the sweeper pages through a large
    // bucket, gives the same plan as planning each bucket whole.
    let paged = registry
        .read(move |conn| {
            let mut paged = Vec::new();
            for bucket in conn.buckets()? {
                let mut after = String::new();
                loop {
                    let page = conn.lifecycle_plan_page(&bucket, &after, 2, now, LIFECYCLE_DAY)?;
                    paged.extend(page.plan.actions.iter().chain(&page.plan.held).map(|a| format!("{a:?}")));
                    match page.next {
                        Some(next) => after = next,
                        None => break,
                    }
                }
            }
            Ok(paged)
        })
        .await
        .unwrap();
    let whole = plans.iter().flat_map(|p| p.actions.iter().chain(&p.held)).map(|a| format!("{a:?}"));
    let (mut paged, mut whole) = (paged, whole.collect::<Vec<_>>());
    paged.sort();
    whole.sort();
    assert_eq!(paged, whole, "paging changed the lifecycle plan");
    for plan in plans {
        for action in &plan.actions {
            if let artifact_store_registry::lifecycle::Effect::DeleteVersion { version_id } = &action.effect {
                let named = (action.bucket.clone(), action.key.clone(), version_id.clone());
                assert!(!protected.contains(&named), "the plan deletes a protected version: {action:?}");
            }
        }
        let Some(bucket) = plan.actions.first().map(|a| a.bucket.clone()) else { continue };
        let counter = std::sync::atomic::AtomicU32::new(0);
        let new_id = move || format!("l{seed:08}-{}", counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
        registry
            .apply_lifecycle(Caller::system("lifecycle"), &bucket, plan.actions, LIFECYCLE_DAY, new_id)
            .await
            .unwrap();
    }
}

fn clock_now(clock: &ManualClock) -> i64 {
    use artifact_store_registry::clock::Clock;
    clock.now_ms()
}

/// Versions that the next request may not remove: legal holds and COMPLIANCE always,
/// GOVERNANCE unless the request bypasses.
async fn protected_versions(registry: &Registry, now: i64, bypass: bool) -> Vec<(String, String, String)> {
    registry
        .read_blocking(move |conn| {
            let mut statement = conn.prepare(
                "SELECT bucket, key, version_id, retention_mode, retain_until, legal_hold FROM object_versions",
            )?;
            let rows = statement.query_map([], |row| {
                let mode: Option<String> = row.get(3)?;
                let until: Option<i64> = row.get(4)?;
                let hold: bool = row.get(5)?;
                let retention = mode.zip(until).map(|(mode, until)| Retention {
                    mode: if mode == "COMPLIANCE" { LockMode::Compliance } else { LockMode::Governance },
                    retain_until: until,
                });
                let kept = !retention::may_delete(retention, hold, now, bypass);
                Ok((row.get(0)?, row.get(1)?, row.get(2)?, kept))
            })?;
            Ok(rows.filter_map(Result::ok).filter(|r| r.3).map(|(b, k, v, _)| (b, k, v)).collect())
        })
        .unwrap()
}

async fn nth_version_id(registry: &Registry, bucket: &str, key: &str, n: u8) -> Option<String> {
    let (bucket, key) = (bucket.to_owned(), key.to_owned());
    let versions = registry.read(move |conn| conn.versions_of_key(&bucket, &key)).await.unwrap();
    versions.get(usize::from(n)).map(|v| v.version_id.clone())
}

async fn complete(registry: &Registry, upload_id: String, seed: u64) {
    let id = upload_id.clone();
    let Some((upload, parts)) = registry
        .read(move |conn| {
            let upload = conn.upload(&id)?;
            Ok(upload.map(|u| (u, conn.parts(&id, 0, usize::MAX).unwrap_or_default())))
        })
        .await
        .unwrap()
    else {
        return;
    };
    let blobs: Vec<BlobPart> = parts.iter().map(|p| p.part.clone()).collect();
    let put = ObjectPut {
        bucket: upload.created.bucket.clone(),
        key: upload.created.key.clone(),
        version_id: format!("v{seed:08}"),
        content: ObjectContent {
            size: blobs.iter().map(|b| b.size).sum(),
            etag: format!("\"{seed:032x}-{}\"", blobs.len()),
            blake3: blake3::hash(&seed.to_be_bytes()).to_hex().to_string(),
            parts: blobs,
            ..ObjectContent::default()
        },
        origin: Origin::Multipart { upload_id: upload_id.clone() },
        retention: None,
        legal_hold: false,
    };
    let expected = parts.iter().map(|p| (p.number, p.part.etag.clone())).collect();
    let _ = registry
        .complete_multipart_upload(
            caller(),
            upload_id,
            expected,
            NewVersion {
                acl: artifact_store_registry::acl::ObjectAcl::default(),
                put,
                condition: WriteCondition::default(),
                placement: None,
            },
        )
        .await;
}

/// Checks replay against the direct path; returns the dump and how many lifecycle actions
/// were applied, for tests that look at what the history produced.
fn replayed_dump_equals_direct_dump(ops: &[Op]) -> (String, u64) {
    let dir = tempfile::tempdir().unwrap();
    let direct_path = dir.path().join("direct.db");
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let clock = Arc::new(ManualClock::new(T0));
        let registry = Registry::open(&direct_path, clock.clone()).unwrap();
        run(&registry, &clock, ops).await;
        registry.close().await;
    });

    let direct = sqlite::open_offline(&direct_path).unwrap();
    let direct_dump = views::dump(&direct).unwrap();
    assert!(log::verify(&direct).unwrap().first_mismatch.is_none());
    let inline_checked = inline::check(&direct).unwrap();
    assert!(inline_checked.corrupt.is_empty() && inline_checked.missing.is_empty(), "{inline_checked:?}");

    // A fresh database that holds nothing but a copy of the log.
    let fresh_path = dir.path().join("fresh.db");
    let mut fresh = sqlite::open_offline(&fresh_path).unwrap();
    fresh.execute("ATTACH DATABASE ?1 AS direct", [direct_path.to_str().unwrap()]).unwrap();
    fresh.execute("INSERT INTO main.events SELECT * FROM direct.events", []).unwrap();
    fresh.execute("DETACH DATABASE direct", []).unwrap();
    let replayed = log::replay(&mut fresh).unwrap();
    assert_eq!(replayed.last, log::verify(&direct).unwrap().head.sequence);
    // Every event the commands appended keeps the rules in force at its sequence.
    assert_eq!(replayed.first_violation, None);
    let fresh_dump = views::dump(&fresh).unwrap();
    assert_eq!(String::from_utf8_lossy(&direct_dump), String::from_utf8_lossy(&fresh_dump));

    // Replaying in place changes nothing either.
    let mut direct = direct;
    log::replay(&mut direct).unwrap();
    assert_eq!(views::dump(&direct).unwrap(), direct_dump);
    let applied = direct
        .query_row("SELECT count(*) FROM events WHERE event_type = 'v1.lifecycle.applied'", [], |row| row.get(0))
        .unwrap();
    (String::from_utf8_lossy(&direct_dump).into_owned(), applied)
}

/// The same check on a log shared on PostgreSQL: the history runs through one gateway's
/// registry; a second gateway's replica, built from nothing but the shared log, and a replay
/// into a fresh SQLite database of the events read back from PostgreSQL both have the views of
/// the first, byte for byte. Skipped without a PostgreSQL server.
fn shared_views_equal_a_replay_of_the_shared_log(ops: &[Op]) {
    let Some(db) = crate::shared::SharedDb::create() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (first, second) = (dir.path().join("first.db"), dir.path().join("second.db"));
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let clock = Arc::new(ManualClock::new(T0));
        let registry = Registry::open_shared(&first, db.url(), clock.clone()).unwrap();
        run(&registry, &clock, ops).await;
        registry.close().await;
        let other = Registry::open_shared(&second, db.url(), clock.clone()).unwrap();
        other.catch_up_with_shared().await.unwrap();
        other.close().await;
    });
    let first_dump = views::dump(&sqlite::open_offline(&first).unwrap()).unwrap();
    let second_replica = sqlite::open_offline(&second).unwrap();
    assert!(log::verify(&second_replica).unwrap().first_mismatch.is_none());
    assert_eq!(String::from_utf8_lossy(&views::dump(&second_replica).unwrap()), String::from_utf8_lossy(&first_dump));

    // The second replica's events are the shared log's, copied as they are.
    let fresh_path = dir.path().join("fresh.db");
    let mut fresh = sqlite::open_offline(&fresh_path).unwrap();
    fresh.execute("ATTACH DATABASE ?1 AS copied", [second.to_str().unwrap()]).unwrap();
    fresh.execute("INSERT INTO main.events SELECT * FROM copied.events", []).unwrap();
    fresh.execute("DETACH DATABASE copied", []).unwrap();
    let replayed = log::replay(&mut fresh).unwrap();
    assert_eq!(replayed.first_violation, None);
    assert_eq!(String::from_utf8_lossy(&views::dump(&fresh).unwrap()), String::from_utf8_lossy(&first_dump));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn replay_into_a_fresh_database_reproduces_every_view(ops in proptest::collection::vec(op(), 1..120)) {
        let _ = replayed_dump_equals_direct_dump(&ops);
    }
}

proptest! {
    // Each case makes a database of its own on the server.
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    #[test]
    fn the_views_of_a_shared_log_are_those_of_its_replay(ops in proptest::collection::vec(op(), 1..120)) {
        shared_views_equal_a_replay_of_the_shared_log(&ops);
    }
}

#[test]
fn a_rich_fixed_history_replays_byte_for_byte() {
    let mut ops = vec![
        Op::CreateBucket { bucket: 0, lock: true },
        Op::CreateBucket { bucket: 1, lock: false },
        Op::Versioning { bucket: 1, enabled: true },
        Op::DefaultRetention { bucket: 0, days: 1, compliance: false },
    ];
    for i in 0..40u8 {
        ops.push(Op::Put { bucket: i % 2, key: i % 4, size: u16::from(i) * 100, if_none_match: false });
        ops.push(Op::CreateUpload { bucket: i % 2, key: (i + 1) % 4 });
        ops.push(Op::UploadPart { upload: i % 4, number: 1 + i % 3, size: u16::from(i) });
        ops.push(Op::Read { bucket: i % 2, key: i % 4 });
        ops.push(Op::Delete { bucket: i % 2, key: i % 4, nth_version: (i % 3 == 0).then_some(1), bypass: i % 5 == 0 });
        ops.push(Op::Complete { upload: i % 4 });
        ops.push(Op::LegalHold { bucket: 0, key: i % 4, on: i % 2 == 0 });
        ops.push(Op::Retention { bucket: 0, key: i % 4, days: 3, compliance: i % 7 == 0, bypass: false });
        ops.push(Op::Advance { hours: 30 });
        if i == 10 {
            ops.push(Op::Lifecycle {
                bucket: 0,
                prefix: 0,
                expiration: Some(1),
                noncurrent: Some((1, None)),
                abort: Some(1),
                markers: true,
            });
            ops.push(Op::Lifecycle {
                bucket: 1,
                prefix: 1,
                expiration: Some(2),
                noncurrent: Some((1, Some(1))),
                abort: None,
                markers: false,
            });
        }
        if i > 10 {
            ops.push(Op::Sweep);
        }
        if i % 10 == 9 {
            ops.push(Op::Seal { bucket: i % 2, prefix: (i / 10) % 4 });
        }
    }
    let (dump, applied) = replayed_dump_equals_direct_dump(&ops);
    assert!(applied > 0, "the sweeps applied no lifecycle action");
    let packages = dump.split("table packages\n").nth(1).expect("a packages table");
    assert!(packages.lines().count() >= 2, "the history seals packages:\n{packages}");
}

/// Versions removed by id from the middle and from the top of a key's history: the rebuild
/// tracks which row is the newest left without the table's indexes, and must promote the
/// same one the direct path does. (Most histories mask a wrong promotion: the next put to
/// the key demotes whatever is latest.)
#[test]
fn removing_the_latest_version_promotes_the_newest_left() {
    let mut ops = vec![Op::CreateBucket { bucket: 1, lock: false }, Op::Versioning { bucket: 1, enabled: true }];
    for size in 1..=4 {
        ops.push(Op::Put { bucket: 1, key: 0, size, if_none_match: false });
    }
    for nth_version in [1, 0, 0] {
        ops.push(Op::Delete { bucket: 1, key: 0, nth_version: Some(nth_version), bypass: false });
    }
    let (dump, _) = replayed_dump_equals_direct_dump(&ops);
    let versions = dump.split("table object_versions\n").nth(1).expect("an object_versions table");
    let versions = versions.split("table ").next().unwrap_or_default();
    assert_eq!(versions.lines().count(), 1, "one version is left:\n{versions}");
}

/// Replay through the live writer (the views in their own connection) rebuilds the same
/// views and leaves the schema as it found it: the rebuild drops the indexes and builds
/// them again.
#[test]
fn replay_through_the_writer_keeps_views_and_indexes() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let clock = Arc::new(ManualClock::new(T0));
        let registry = Registry::open(dir.path().join("registry.db"), clock.clone()).unwrap();
        let mut ops = vec![Op::CreateBucket { bucket: 0, lock: false }, Op::Versioning { bucket: 0, enabled: true }];
        for i in 0..12u8 {
            ops.push(Op::Put { bucket: 0, key: i % 4, size: u16::from(i), if_none_match: false });
            ops.push(Op::Delete { bucket: 0, key: i % 4, nth_version: (i % 3 == 0).then_some(1), bypass: false });
        }
        run(&registry, &clock, &ops).await;
        let schema = |conn: &rusqlite::Connection| -> artifact_store_registry::Result<Vec<String>> {
            let mut statement = conn.prepare(
                "SELECT sql FROM views.sqlite_master WHERE type = 'index' AND sql IS NOT NULL ORDER BY name",
            )?;
            let indexes = statement.query_map([], |row| row.get(0))?.collect::<rusqlite::Result<Vec<String>>>()?;
            Ok(indexes)
        };
        let before = (registry.read_blocking(views::dump).unwrap(), registry.read_blocking(schema).unwrap());
        assert!(before.1.len() >= 2, "{:?}", before.1);
        registry.replay().await.unwrap();
        let after = (registry.read_blocking(views::dump).unwrap(), registry.read_blocking(schema).unwrap());
        assert_eq!(before, after);
        registry.close().await;
    });
}
