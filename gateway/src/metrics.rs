//! Prometheus metrics, named `artifact_store_*` and served at `/_metrics`.
//!
//! Request metrics are recorded where the S3 operation is known (`s3::Gateway`'s delegation
//! table), with an `api` label (`PutObject`, ...) and, for errors, a `code` label (the S3
//! error code); no per-bucket label, so the series count stays bounded. Registry figures
//! (events appended, group commits and their size and duration histograms) are read from
//! the registry's atomics when the page is rendered, so the writer thread does no metrics
//! work beyond a few relaxed adds.
//!
//! The recorder is process-wide (the `metrics` facade has one global recorder): the first
//! gateway of a process installs it and later ones share it.

use std::sync::OnceLock;
use std::sync::atomic::Ordering;
use std::time::Duration;

use metrics::{counter, histogram};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use registry::Registry;
use registry::sqlite::Histogram;

/// Request duration buckets in seconds: from a cached HEAD to a large upload.
const DURATION_BUCKETS: &[f64] =
    &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the Prometheus recorder once per process and returns its handle. If another
/// recorder was installed first (an embedding program's), ours renders only what it records
/// itself: nothing, rather than failing the gateway.
pub fn install() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let builder =
            PrometheusBuilder::new().set_buckets(DURATION_BUCKETS).expect("the duration buckets are not empty");
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("a metrics recorder was already installed; /_metrics shows only registry figures");
        }
        // A counter that must stay 0 is worth showing at 0.
        counter!("artifact_store_retrieval_records_dropped_total").increment(0);
        counter!("artifact_store_blob_corrupt_total", "reason" => "digest_mismatch").increment(0);
        handle
    })
}

/// One S3 request answered by operation `api`: `code` is the S3 error code of a refusal,
/// `None` for success. `elapsed` runs to the response head (a GET's body streams after).
pub fn s3_request(api: &'static str, code: Option<&str>, elapsed: Duration) {
    counter!("artifact_store_s3_requests_total", "api" => api).increment(1);
    histogram!("artifact_store_s3_request_duration_seconds", "api" => api).record(elapsed.as_secs_f64());
    if let Some(code) = code {
        counter!("artifact_store_s3_errors_total", "api" => api, "code" => code.to_owned()).increment(1);
    }
}

/// A connection closed as soon as it was accepted, by the setting whose limit refused it:
/// `reason` is `max_connections` (the pool was full) or `max_connections_per_client` (its
/// client held its share).
pub fn connection_refused(reason: &'static str) {
    counter!("artifact_store_connections_refused_total", "reason" => reason).increment(1);
}

/// Names of the series the console's operations page charts, read back from the text below.
pub const HTTP_RESPONSES: &str = "artifact_store_http_responses_total";
/// See [`bytes_received`].
pub const BYTES_RECEIVED: &str = "artifact_store_bytes_received_total";
/// See [`bytes_sent`].
pub const BYTES_SENT: &str = "artifact_store_bytes_sent_total";
/// Group commits of the registry's writer.
pub const GROUP_COMMITS: &str = "artifact_store_registry_group_commits_total";
/// Time the registry's writer spent in group commits.
pub const GROUP_COMMIT_SECONDS: &str = "artifact_store_registry_group_commit_seconds_total";

/// One HTTP response of any kind (S3, admin, registry API, and requests refused before an
/// operation was known, such as a bad signature), by status.
pub fn http_response(status: u16) {
    counter!(HTTP_RESPONSES, "status" => status.to_string()).increment(1);
}

/// Object bytes received from clients and stored (PUT bodies and parts).
pub fn bytes_received(bytes: u64) {
    counter!(BYTES_RECEIVED).increment(bytes);
}

/// Object bytes sent to clients in GET bodies.
pub fn bytes_sent(bytes: u64) {
    counter!(BYTES_SENT).increment(bytes);
}

/// Object bytes read from the blob store, for any reason: GET bodies, copies, integrity checks,
/// and what a multipart completion had to read back.
pub fn store_bytes_read(bytes: u64) {
    counter!("artifact_store_store_read_bytes_total").increment(bytes);
}

/// A retrieval record that could not be written to the registry.
pub fn retrieval_record_dropped() {
    counter!("artifact_store_retrieval_records_dropped_total").increment(1);
}

/// A read that refused a version's stored bytes (`v1.blob.corrupt`), by `reason`
/// (`digest_mismatch`, `missing`, `short`).
pub fn blob_corrupt(reason: &'static str) {
    counter!("artifact_store_blob_corrupt_total", "reason" => reason).increment(1);
}

/// One request to an upstream blob store, for upstream backends to call: `backend` names the
/// store (`s3`), `op` the upstream operation (`PutObject`), `outcome` the HTTP status it got
/// (`none` without an answer). All three come from small fixed sets, never from object keys.
pub fn upstream_request(backend: &'static str, op: &str, outcome: &str) {
    counter!("artifact_store_upstream_requests_total", "backend" => backend, "op" => op.to_owned(), "outcome" => outcome.to_owned())
        .increment(1);
}

/// The metrics page: the recorded metrics plus the registry's figures, in the Prometheus
/// text format. `opened_at` is the log's sequence when this gateway opened it.
#[must_use]
pub fn render(handle: &PrometheusHandle, registry: &Registry, opened_at: u64) -> String {
    let mut page = handle.render();
    let stats = registry.stats();
    let head = registry.committed_sequence();
    let micros = |value: &std::sync::atomic::AtomicU64| value.load(Ordering::Relaxed) as f64 / 1e6;
    let latest = registry.latest_cache_stats();
    let lines: [(&str, &str, &str, String); 13] = [
        (
            "artifact_store_registry_events_appended_total",
            "counter",
            "Events appended to the log since this gateway started.",
            head.saturating_sub(opened_at).to_string(),
        ),
        ("artifact_store_registry_head_sequence", "gauge", "Sequence of the last committed event.", head.to_string()),
        (
            GROUP_COMMITS,
            "counter",
            "Group commits (one transaction and one fsync each).",
            stats.batches.load(Ordering::Relaxed).to_string(),
        ),
        (
            "artifact_store_registry_group_commit_jobs_total",
            "counter",
            "Jobs run in group commits; divided by group commits, the mean batch size.",
            stats.jobs.load(Ordering::Relaxed).to_string(),
        ),
        (
            GROUP_COMMIT_SECONDS,
            "counter",
            "Time spent in group commits, from BEGIN to the end of COMMIT.",
            micros(&stats.busy_micros).to_string(),
        ),
        (
            "artifact_store_registry_commit_fsync_seconds_total",
            "counter",
            "Of that, time spent in COMMIT (writing and fsyncing the log).",
            micros(&stats.commit_micros).to_string(),
        ),
        (
            "artifact_store_registry_shared_head_wait_seconds_total",
            "counter",
            "On a registry shared on PostgreSQL: time group commits waited for the head's lock.",
            micros(&stats.head_wait_micros).to_string(),
        ),
        (
            "artifact_store_registry_shared_head_held_seconds_total",
            "counter",
            "On a registry shared on PostgreSQL: time group commits held the head's lock.",
            micros(&stats.head_held_micros).to_string(),
        ),
        (
            "artifact_store_registry_shared_head_caught_up_events_total",
            "counter",
            "On a registry shared on PostgreSQL: other gateways' events applied while holding the head's lock.",
            stats.head_caught_up_events.load(Ordering::Relaxed).to_string(),
        ),
        (
            "artifact_store_registry_latest_cache_hits_total",
            "counter",
            "Reads of an object's latest version answered from memory.",
            latest.hits.load(Ordering::Relaxed).to_string(),
        ),
        (
            "artifact_store_registry_latest_cache_misses_total",
            "counter",
            "Reads of an object's latest version that read the registry.",
            latest.misses.load(Ordering::Relaxed).to_string(),
        ),
        (
            "artifact_store_registry_bucket_cache_hits_total",
            "counter",
            "Lookups of a bucket answered from memory.",
            latest.bucket_hits.load(Ordering::Relaxed).to_string(),
        ),
        (
            "artifact_store_registry_bucket_cache_misses_total",
            "counter",
            "Lookups of a bucket that read the registry.",
            latest.bucket_misses.load(Ordering::Relaxed).to_string(),
        ),
    ];
    for (name, kind, help, value) in lines {
        page.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"));
    }
    push_histogram(
        &mut page,
        "artifact_store_registry_group_commit_size",
        "Jobs per group commit.",
        &stats.batch_sizes,
        1.0,
    );
    push_histogram(
        &mut page,
        "artifact_store_registry_group_commit_duration_seconds",
        "Time of each group commit, from BEGIN to the end of COMMIT.",
        &stats.batch_micros,
        1e-6,
    );
    push_histogram(
        &mut page,
        "artifact_store_registry_writer_checkpoint_duration_seconds",
        "Time of each checkpoint the registry writer finishes itself between group commits.",
        &stats.checkpoint_micros,
        1e-6,
    );
    page
}

/// Appends a registry histogram in the Prometheus text format, its values multiplied by
/// `scale` (microseconds to seconds).
fn push_histogram(page: &mut String, name: &str, help: &str, histogram: &Histogram, scale: f64) {
    page.push_str(&format!("# HELP {name} {help}\n# TYPE {name} histogram\n"));
    let buckets = histogram.cumulative();
    // Read after the buckets: the writer may record meanwhile, and +Inf must not be smaller.
    let count = histogram.count();
    for (bound, observed) in buckets {
        page.push_str(&format!("{name}_bucket{{le=\"{}\"}} {observed}\n", bound as f64 * scale));
    }
    page.push_str(&format!("{name}_bucket{{le=\"+Inf\"}} {count}\n"));
    page.push_str(&format!("{name}_sum {}\n{name}_count {count}\n", histogram.sum() as f64 * scale));
}
