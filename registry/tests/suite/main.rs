//! The registry's integration tests, one module per concern, in one test binary: each
//! binary links the registry and SQLite again, so one builds much faster than ten.

mod copies;
mod crash;
mod engines;
mod frozen_v1;
mod identities;
mod inline;
mod keys;
mod latest;
mod packages;
mod page_reads;
mod policy;
mod replay;
mod rules;
mod shared;
mod tail;
mod verify;
mod views_failure;
mod writer;

/// A stored part of `size` bytes named `blob`, with nothing beside its name and size: what most
/// tests record, whose bytes the registry never reads.
fn plain_part(blob: String, size: u64) -> artifact_store_registry::event::v1::BlobPart {
    artifact_store_registry::event::v1::BlobPart {
        blob,
        size,
        etag: "0".repeat(32),
        checksums: std::collections::BTreeMap::new(),
        subtree: None,
        subtrees: None,
        offset: None,
        store_etag: None,
        wrapped_key: None,
    }
}

/// Records that the running test did not run its check, and why: a line on stderr and, when
/// `CONFORMANCE_SKIP_LOG` names a file, a JSON line appended to it (the suite's skip log, which
/// the compatibility matrix reads).
fn skip(reason: &str) {
    let test = std::thread::current().name().unwrap_or("unknown").to_owned();
    eprintln!("SKIPPED {test}: {reason}");
    let Some(path) = std::env::var_os("CONFORMANCE_SKIP_LOG") else { return };
    let line = serde_json::json!({"test": test, "reason": reason}).to_string() + "\n";
    let mut log = std::fs::OpenOptions::new().create(true).append(true).open(&path).expect("open the skip log");
    std::io::Write::write_all(&mut log, line.as_bytes()).expect("write the skip log");
}
