//! Appends per second on a log shared on PostgreSQL: 1, 16 and 256 concurrent submitters,
//! through one gateway's registry and spread over three (each with its own replica, all on one
//! database). The server is the one `POSTGRES_URL` names (scripts/start-postgres.sh); each
//! configuration gets a fresh database.
//!
//! `POSTGRES_URL=postgres://... cargo bench -p artifact-store-registry --bench shared`

use std::sync::Arc;

use artifact_store_registry::clock::SystemClock;
use artifact_store_registry::commands::{NewVersion, WriteCondition};
use artifact_store_registry::deletions::Epoch;
use artifact_store_registry::event::v1::{BlobPart, ObjectContent, ObjectPut, Origin};
use artifact_store_registry::{Caller, Registry, RequestContext, postgres};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

/// Appends per measured iteration, split across the submitters.
const APPENDS_PER_ITER: u64 = 4096;

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

/// The same `v1.object.put` as the embedded registry's benchmark (`benches/registry.rs`).
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

/// Runs one statement on the server's administrative database, on a thread of its own (a
/// client of the `postgres` crate may not live on an async runtime's thread).
fn admin(url: &str, statement: String) {
    std::thread::scope(|scope| {
        scope.spawn(|| postgres::connect(url).unwrap().batch_execute(&statement).unwrap()).join().unwrap();
    });
}

async fn append_burst(gateways: &[Registry], submitters: u64, round: u64) {
    let per_submitter = APPENDS_PER_ITER / submitters;
    let tasks: Vec<_> = (0..submitters)
        .map(|s| {
            let registry = gateways[(s as usize) % gateways.len()].clone();
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
    let Ok(url) = std::env::var("POSTGRES_URL") else {
        eprintln!("SKIPPED append_shared: POSTGRES_URL is not set (scripts/start-postgres.sh)");
        return;
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let mut group = c.benchmark_group("append_shared");
    group.sample_size(10);
    group.throughput(Throughput::Elements(APPENDS_PER_ITER));
    let (base, _) = url.rsplit_once('/').expect("a database in POSTGRES_URL");
    for gateways in [1usize, 3] {
        for submitters in [1u64, 16, 256] {
            let name = format!("bench_{gateways}_{submitters}_{}", std::process::id());
            admin(&url, format!("CREATE DATABASE {name}"));
            let db = format!("{base}/{name}");
            let dirs: Vec<_> = (0..gateways)
                .map(|_| tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temporary folder"))
                .collect();
            let registries: Vec<Registry> = dirs
                .iter()
                .map(|dir| Registry::open_shared(dir.path().join("registry.db"), &db, Arc::new(SystemClock)).unwrap())
                .collect();
            runtime.block_on(registries[0].create_bucket(caller(), "bench", "us-east-1", false)).unwrap();
            let mut round = 0;
            let id = BenchmarkId::new(format!("gateways/{gateways}/submitters"), submitters);
            group.bench_with_input(id, &submitters, |b, &submitters| {
                b.iter(|| {
                    round += 1;
                    runtime.block_on(append_burst(&registries, submitters, round));
                });
            });
            let (mut batches, mut jobs, mut busy, mut held) = (0, 0, 0, 0);
            for registry in &registries {
                let stats = registry.stats();
                batches += stats.batches.load(std::sync::atomic::Ordering::Relaxed);
                jobs += stats.jobs.load(std::sync::atomic::Ordering::Relaxed);
                busy += stats.busy_micros.load(std::sync::atomic::Ordering::Relaxed);
                held += stats.head_held_micros.load(std::sync::atomic::Ordering::Relaxed);
            }
            // Every event of the log, each appended under the head's lock by one of them.
            let events = registries.iter().map(Registry::committed_sequence).max().unwrap_or(0);
            eprintln!(
                "append_shared/gateways/{gateways}/submitters/{submitters}: {:.1} jobs per group commit, \
                 {:.1} µs writer time per job, {:.1} µs holding the head's lock per event",
                jobs as f64 / batches.max(1) as f64,
                busy as f64 / jobs.max(1) as f64,
                held as f64 / events.max(1) as f64,
            );
            for registry in registries {
                runtime.block_on(registry.close());
            }
            admin(&url, format!("DROP DATABASE {name} WITH (FORCE)"));
        }
    }
    group.finish();
}

criterion_group!(benches, appends);
criterion_main!(benches);
