//! Registry throughput: appends per second with `synchronous=FULL` at 1, 16 and 256
//! concurrent submitters (group commit), replayed events per second, verified events per
//! second. Databases live in a temporary folder on the same disk as the target directory,
//! so every commit pays a real fsync.
//!
//! `cargo bench -p artifact-store-registry --bench registry`

use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;

use artifact_store_registry::clock::SystemClock;
use artifact_store_registry::commands::{NewVersion, WriteCondition};
use artifact_store_registry::deletions::Epoch;
use artifact_store_registry::event::v1::{BlobPart, ObjectContent, ObjectPut, Origin};
use artifact_store_registry::{Caller, Registry, RequestContext, log, sqlite};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

/// Appends per measured iteration, split across the submitters.
const APPENDS_PER_ITER: u64 = 4096;
/// Events in the log that replay and verify walk.
const LOG_EVENTS: u64 = 100_000;

fn caller() -> Caller {
    Caller {
        actor: "AKIABENCHMARK0000000".into(),
        context: RequestContext {
            access_key: Some("AKIABENCHMARK0000000".into()),
            request_id: Some("17A2B3C4D5E6F708".into()),
            source_addr: Some("127.0.0.1:53211".into()),
            user_agent: Some("aws-cli/2.9.19 Python/3.11.2 Linux/6.1 botocore/2.0.0".into()),
        },
    }
}

/// A realistic `v1.object.put`: one blob, metadata, an ETag and a checksum.
fn version(submitter: u64, i: u64) -> NewVersion {
    let digest = blake3::hash(&[submitter.to_le_bytes(), i.to_le_bytes()].concat()).to_hex().to_string();
    let part = BlobPart {
        blob: digest.clone(),
        size: 4096,
        etag: format!("\"{i:032x}\""),
        checksums: Default::default(),
        subtree: None,
        subtrees: None,
        offset: None,
        store_etag: None,
        wrapped_key: None,
    };
    NewVersion {
        acl: artifact_store_registry::acl::ObjectAcl::default(),
        placement: Some(Epoch::ORIGIN.into()),
        put: ObjectPut {
            bucket: "bench".into(),
            key: format!("builds/{submitter}/artifact-{i}.tar.gz"),
            version_id: format!("{submitter:04}{i:012}"),
            content: ObjectContent {
                size: 4096,
                etag: part.etag.clone(),
                blake3: digest,
                checksums: [("CRC32".to_owned(), "DUoRhQ==".to_owned())].into(),
                content_type: Some("application/gzip".into()),
                user_metadata: [("commit".to_owned(), "9f2c1e7".to_owned())].into(),
                parts: vec![part],
                ..Default::default()
            },
            origin: Origin::Put,
            retention: None,
            legal_hold: false,
        },
        condition: WriteCondition::default(),
    }
}

fn bench_dir() -> tempfile::TempDir {
    tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temporary folder on the target disk")
}

async fn append_burst(registry: &Registry, submitters: u64, round: u64) {
    let per_submitter = APPENDS_PER_ITER / submitters;
    let tasks: Vec<_> = (0..submitters)
        .map(|s| {
            let registry = registry.clone();
            tokio::spawn(async move {
                for i in 0..per_submitter {
                    registry.put_object(caller(), version(s, round * per_submitter + i)).await.unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
}

fn appends(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let mut group = c.benchmark_group("append");
    group.sample_size(10);
    group.throughput(Throughput::Elements(APPENDS_PER_ITER));
    for submitters in [1u64, 16, 256] {
        let dir = bench_dir();
        let registry = Registry::open(dir.path().join("registry.db"), Arc::new(SystemClock)).unwrap();
        runtime.block_on(registry.create_bucket(caller(), "bench", "us-east-1", false)).unwrap();
        let mut round = 0;
        group.bench_with_input(BenchmarkId::new("submitters", submitters), &submitters, |b, &submitters| {
            b.iter(|| {
                round += 1;
                runtime.block_on(append_burst(&registry, submitters, round));
            });
        });
        let stats = registry.stats();
        let batches = stats.batches.load(std::sync::atomic::Ordering::Relaxed).max(1);
        let jobs = stats.jobs.load(std::sync::atomic::Ordering::Relaxed).max(1) as f64;
        eprintln!(
            "append/submitters/{submitters}: {:.1} jobs per group commit, {:.1} µs writer time per job, of which {:.1} µs in COMMIT",
            jobs / batches as f64,
            stats.busy_micros.load(std::sync::atomic::Ordering::Relaxed) as f64 / jobs,
            stats.commit_micros.load(std::sync::atomic::Ordering::Relaxed) as f64 / jobs,
        );
        runtime.block_on(registry.close());
    }
    group.finish();
}

/// Builds a log of `LOG_EVENTS` object puts with the fast path (256 submitters).
fn build_log(path: &Path) {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async {
        let registry = Registry::open(path, Arc::new(SystemClock)).unwrap();
        registry.create_bucket(caller(), "bench", "us-east-1", false).await.unwrap();
        for round in 0..LOG_EVENTS / APPENDS_PER_ITER {
            append_burst(&registry, 256, round).await;
        }
        registry.close().await;
    });
}

fn replay_and_verify(c: &mut Criterion) {
    let dir = bench_dir();
    let path = dir.path().join("registry.db");
    build_log(&path);
    if let Ok(keep) = std::env::var("REGISTRY_BENCH_KEEP_LOG") {
        std::fs::copy(&path, keep).unwrap();
    }
    let mut conn = sqlite::open_offline(&path).unwrap();
    let events = log::verify(&conn).unwrap().events;

    let mut group = c.benchmark_group("log");
    group.sample_size(10);
    group.throughput(Throughput::Elements(events));
    group.bench_function("replay", |b| b.iter(|| black_box(log::replay(&mut conn).unwrap())));
    group.bench_function("verify", |b| {
        b.iter(|| {
            let verified = log::verify(&conn).unwrap();
            assert!(verified.first_mismatch.is_none());
            black_box(verified)
        });
    });
    group.finish();
}

criterion_group!(benches, appends, replay_and_verify);
criterion_main!(benches);
