//! The workloads: each one prints a JSON line with its main figure in `value` (higher is
//! better, `unit` says what it counts) and the details behind it.
//!
//! Only the operation being measured is timed; objects a workload needs (keys to GET, keys to
//! list) are written beforehand, untimed, unless an earlier workload in the same run wrote them.

use std::collections::HashSet;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, ensure};
use aws_sdk_s3::error::DisplayErrorContext;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, ServerSideEncryption};
use clap::ValueEnum;
use serde_json::{Value, json};
use tokio::task::JoinSet;

use crate::body::Bodies;
use crate::client::{self, Endpoint};

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;
const GIB: u64 = 1024 * MIB;
const SMALL: u64 = 4 * KIB;
const LARGE: u64 = 64 * MIB;
const MULTIPART: u64 = GIB;
/// rclone's and the Go and JS SDKs' default part size: not a power of two of KiB.
const PART: u64 = 5 * MIB;
const LIST_PAGE: i32 = 1000;

/// What to run and against which server.
#[derive(clap::Args)]
pub struct RunArgs {
    /// S3 endpoint URL, e.g. http://127.0.0.1:9000.
    #[arg(long)]
    endpoint: String,
    /// Access key to sign with.
    #[arg(long, env = "S3BENCH_ACCESS_KEY")]
    access_key: String,
    /// Secret key to sign with.
    #[arg(long, env = "S3BENCH_SECRET_KEY", hide_env_values = true)]
    secret_key: String,
    /// Signing region.
    #[arg(long, default_value = "us-east-1")]
    region: String,
    /// Bucket to use; created if missing.
    #[arg(long, default_value = "s3bench")]
    bucket: String,
    /// Name of the server in the results (the summary compares `gateway` with `s3s-fs`).
    #[arg(long)]
    target: String,
    /// Round number recorded in the results.
    #[arg(long, default_value_t = 1)]
    round: u32,
    /// Workloads to run, in this order.
    #[arg(long, value_delimiter = ',', default_value = Workload::DEFAULT)]
    workloads: Vec<Workload>,
    /// Operations per 4 KiB workload (fewer if `--small-seconds` runs out first).
    #[arg(long, default_value_t = 2000)]
    small_ops: u64,
    /// Time limit of each 4 KiB workload, in seconds.
    #[arg(long, default_value_t = 10)]
    small_seconds: u64,
    /// Keys the 4 KiB GET workloads read, round and round (default: every key written, each
    /// read once): a hot set of artifacts fetched again and again.
    #[arg(long)]
    hot_keys: Option<u64>,
    /// Objects per 64 MiB workload. 64 (4 GiB) by default: on the 23 GiB bench VM, 16 (1 GiB)
    /// stay below the kernel's background writeback threshold (10% of available memory), so a
    /// server that leaves its writes in the page cache is timed copying them into memory, not
    /// storing them. On a machine with much more memory, raise it to match.
    #[arg(long, default_value_t = 64)]
    large_objects: u64,
    /// Keys created for the listing workload.
    #[arg(long, default_value_t = 10_000)]
    list_keys: u64,
    /// Times the listing is repeated; the median is reported.
    #[arg(long, default_value_t = 5)]
    list_passes: usize,
    /// Size of the object in `put_huge` / `get_huge`, in GiB.
    #[arg(long, default_value_t = 5)]
    huge_gib: u64,
    /// A bucket policy (IAM JSON) set on the bucket before the workloads, to time what
    /// deciding requests under it costs (`bench/policies/`).
    #[arg(long, value_name = "FILE")]
    bucket_policy: Option<std::path::PathBuf>,
    /// Send `x-amz-server-side-encryption: AES256` (SSE-S3) on every PutObject (untimed ones
    /// included) and CreateMultipartUpload, and check that their answers and the GETs' say the
    /// object is encrypted.
    #[arg(long)]
    sse_s3: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Workload {
    #[value(name = "put_4k_c1")]
    Put4kC1,
    #[value(name = "get_4k_c1")]
    Get4kC1,
    #[value(name = "put_4k_c16")]
    Put4kC16,
    #[value(name = "get_4k_c16")]
    Get4kC16,
    #[value(name = "put_64m_c4")]
    Put64mC4,
    #[value(name = "get_64m_c4")]
    Get64mC4,
    #[value(name = "multipart_1g")]
    Multipart1g,
    #[value(name = "list_10k")]
    List10k,
    /// One PUT of `--huge-gib` GiB streamed from a generator (not in the default set).
    #[value(name = "put_huge")]
    PutHuge,
    /// One GET of the object `put_huge` wrote, drained (not in the default set).
    #[value(name = "get_huge")]
    GetHuge,
}

impl Workload {
    const DEFAULT: &'static str =
        "put_4k_c1,get_4k_c1,put_4k_c16,get_4k_c16,put_64m_c4,get_64m_c4,multipart_1g,list_10k";

    fn name(self) -> String {
        self.to_possible_value().expect("no workload is skipped").get_name().to_owned()
    }
}

/// Runs the chosen workloads in order, printing one JSON line after each.
pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    let endpoint = Endpoint {
        url: &args.endpoint,
        access_key: &args.access_key,
        secret_key: &args.secret_key,
        region: &args.region,
    };
    let client = client::build(&endpoint);
    let sse = args.sse_s3.then_some(ServerSideEncryption::Aes256);
    let runner = Arc::new(Runner::new(client.clone(), args.bucket.clone(), sse.clone()));
    // Listing gets a bucket of its own: servers that walk the whole bucket to list a prefix
    // are then timed on the 10,000 keys alone.
    let lister = Arc::new(Runner::new(client, format!("{}-list", args.bucket), sse));
    runner.create_bucket().await?;
    if let Some(path) = &args.bucket_policy {
        runner.set_policy(path).await?;
    }
    for &workload in &args.workloads {
        let result = match workload {
            Workload::Put4kC1 => runner.small_put(&args, 1).await,
            Workload::Get4kC1 => runner.small_get(&args, 1).await,
            Workload::Put4kC16 => runner.small_put(&args, 16).await,
            Workload::Get4kC16 => runner.small_get(&args, 16).await,
            Workload::Put64mC4 => runner.large_put(&args).await,
            Workload::Get64mC4 => runner.large_get(&args).await,
            Workload::Multipart1g => runner.multipart().await,
            Workload::List10k => lister.list(&args).await,
            Workload::PutHuge => runner.huge_put(&args).await,
            Workload::GetHuge => runner.huge_get(&args).await,
        };
        // A failed workload is reported in its line and the run goes on to the next one.
        let fields = result.unwrap_or_else(|e| json!({ "value": null, "errors": 1, "first_error": format!("{e:#}") }));
        let mut line = json!({
            "target": args.target,
            "round": args.round,
            "workload": workload.name(),
            "load1": load1(),
        });
        if args.sse_s3 {
            line["sse"] = json!("AES256");
        }
        line.as_object_mut().expect("an object").extend(fields.as_object().cloned().unwrap_or_default());
        println!("{line}");
    }
    Ok(())
}

struct Runner {
    client: aws_sdk_s3::Client,
    bucket: String,
    bodies: Bodies,
    /// The server-side encryption every PutObject and CreateMultipartUpload asks for (`--sse-s3`).
    sse: Option<ServerSideEncryption>,
    /// Key prefixes already populated in this run.
    written: Mutex<HashSet<String>>,
}

impl Runner {
    fn new(client: aws_sdk_s3::Client, bucket: String, sse: Option<ServerSideEncryption>) -> Self {
        Self { client, bucket, bodies: Bodies::new(), sse, written: Mutex::new(HashSet::new()) }
    }

    async fn create_bucket(&self) -> anyhow::Result<()> {
        match self.client.create_bucket().bucket(&self.bucket).send().await {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_bucket_already_owned_by_you() || e.is_bucket_already_exists()) =>
            {
                Ok(())
            }
            Err(e) => Err(anyhow!("create bucket {}: {}", self.bucket, DisplayErrorContext(e))),
        }
    }

    async fn set_policy(&self, path: &std::path::Path) -> anyhow::Result<()> {
        let text = std::fs::read_to_string(path).map_err(|e| anyhow!("read {}: {e}", path.display()))?;
        // The file names the default bucket; another one is substituted.
        let text = text.replace("arn:aws:s3:::s3bench", &format!("arn:aws:s3:::{}", self.bucket));
        self.client
            .put_bucket_policy()
            .bucket(&self.bucket)
            .policy(text)
            .send()
            .await
            .map_err(|e| anyhow!("put bucket policy on {}: {}", self.bucket, DisplayErrorContext(e)))?;
        Ok(())
    }

    async fn put(&self, key: String, size: u64) -> anyhow::Result<u64> {
        let out = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(&key)
            .content_length(i64::try_from(size)?)
            .set_server_side_encryption(self.sse.clone())
            .body(self.bodies.body(size))
            .customize()
            .disable_payload_signing()
            .send()
            .await
            .map_err(|e| anyhow!("PUT {key}: {}", DisplayErrorContext(e)))?;
        self.check_sse(&key, out.server_side_encryption())?;
        Ok(size)
    }

    /// With `--sse-s3`, an answer that does not say the object is encrypted is an error: the
    /// figure would not be that of encrypted objects.
    fn check_sse(&self, key: &str, answered: Option<&ServerSideEncryption>) -> anyhow::Result<()> {
        if let Some(asked) = &self.sse {
            ensure!(answered == Some(asked), "{key}: server-side encryption {answered:?}, expected {asked:?}");
        }
        Ok(())
    }

    /// GETs `key`, drains the body and checks it has `size` bytes.
    async fn get(&self, key: String, size: u64) -> anyhow::Result<u64> {
        let out = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(&key)
            .send()
            .await
            .map_err(|e| anyhow!("GET {key}: {}", DisplayErrorContext(e)))?;
        self.check_sse(&key, out.server_side_encryption())?;
        let mut body = out.body;
        let mut got = 0;
        while let Some(chunk) = body.try_next().await.with_context(|| format!("GET {key}: body"))? {
            got += chunk.len() as u64;
        }
        ensure!(got == size, "GET {key}: {got} bytes, expected {size}");
        Ok(got)
    }

    /// Writes `count` objects of `size` bytes under `prefix` (untimed) unless already done.
    async fn populate(self: &Arc<Self>, prefix: &str, count: u64, size: u64) -> anyhow::Result<()> {
        if self.written.lock().expect("not poisoned").contains(prefix) {
            return Ok(());
        }
        let tally = self.puts(prefix, 16, count, size, None).await;
        tally.check()?;
        Ok(())
    }

    fn puts(
        self: &Arc<Self>,
        prefix: &str,
        concurrency: u64,
        count: u64,
        size: u64,
        limit: Option<Duration>,
    ) -> impl Future<Output = Tally> + use<> {
        self.written.lock().expect("not poisoned").insert(prefix.to_owned());
        let (runner, prefix) = (Arc::clone(self), prefix.to_owned());
        drive(concurrency, count, limit, move |i| {
            let (runner, key) = (Arc::clone(&runner), key(&prefix, i));
            async move { runner.put(key, size).await }
        })
    }

    fn gets(
        self: &Arc<Self>,
        prefix: &str,
        concurrency: u64,
        count: u64,
        keys: u64,
        size: u64,
        limit: Option<Duration>,
    ) -> impl Future<Output = Tally> + use<> {
        let (runner, prefix) = (Arc::clone(self), prefix.to_owned());
        drive(concurrency, count, limit, move |i| {
            let (runner, key) = (Arc::clone(&runner), key(&prefix, i % keys));
            async move { runner.get(key, size).await }
        })
    }

    async fn small_put(self: &Arc<Self>, args: &RunArgs, concurrency: u64) -> anyhow::Result<Value> {
        let limit = Duration::from_secs(args.small_seconds);
        let tally = self.puts(&format!("small-c{concurrency}"), concurrency, args.small_ops, SMALL, Some(limit)).await;
        Ok(tally.ops_fields(concurrency))
    }

    async fn small_get(self: &Arc<Self>, args: &RunArgs, concurrency: u64) -> anyhow::Result<Value> {
        let prefix = format!("small-c{concurrency}");
        self.populate(&prefix, args.small_ops, SMALL).await?;
        // A PUT workload cut short by its time limit wrote fewer keys; read only those.
        let keys = self.count_keys(&prefix).await?;
        ensure!(keys > 0, "no objects under {prefix}/ to GET");
        let keys = args.hot_keys.map_or(keys, |hot| hot.clamp(1, keys));
        let limit = Duration::from_secs(args.small_seconds);
        let tally = self.gets(&prefix, concurrency, args.small_ops, keys, SMALL, Some(limit)).await;
        Ok(tally.ops_fields(concurrency))
    }

    async fn large_put(self: &Arc<Self>, args: &RunArgs) -> anyhow::Result<Value> {
        let tally = self.puts("large", 4, args.large_objects, LARGE, None).await;
        Ok(tally.throughput_fields(4))
    }

    async fn large_get(self: &Arc<Self>, args: &RunArgs) -> anyhow::Result<Value> {
        self.populate("large", args.large_objects, LARGE).await?;
        let tally = self.gets("large", 4, args.large_objects, args.large_objects, LARGE, None).await;
        Ok(tally.throughput_fields(4))
    }

    /// One 1 GiB upload in 5 MiB parts (the last smaller), four parts in flight, timed from
    /// create to complete; the completion is timed on its own too.
    async fn multipart(self: &Arc<Self>) -> anyhow::Result<Value> {
        let key = "multipart/1g".to_owned();
        let parts = MULTIPART.div_ceil(PART);
        let start = Instant::now();
        let created = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(&key)
            .set_server_side_encryption(self.sse.clone())
            .send()
            .await
            .map_err(|e| anyhow!("create multipart upload: {}", DisplayErrorContext(e)))?;
        self.check_sse(&key, created.server_side_encryption())?;
        let upload_id = created.upload_id().context("no upload id")?.to_owned();
        let done = Arc::new(Mutex::new(Vec::new()));
        let tally = {
            let (runner, key, upload_id, done) = (Arc::clone(self), key.clone(), upload_id.clone(), Arc::clone(&done));
            drive(4, parts, None, move |i| {
                let (runner, key, upload_id, done) =
                    (Arc::clone(&runner), key.clone(), upload_id.clone(), Arc::clone(&done));
                async move {
                    let number = i32::try_from(i + 1)?;
                    let size = PART.min(MULTIPART - i * PART);
                    let out = runner
                        .client
                        .upload_part()
                        .bucket(&runner.bucket)
                        .key(&key)
                        .upload_id(&upload_id)
                        .part_number(number)
                        .content_length(i64::try_from(size)?)
                        .body(runner.bodies.body(size))
                        .customize()
                        .disable_payload_signing()
                        .send()
                        .await
                        .map_err(|e| anyhow!("upload part {number}: {}", DisplayErrorContext(e)))?;
                    let part = CompletedPart::builder().part_number(number).set_e_tag(out.e_tag).build();
                    done.lock().expect("not poisoned").push(part);
                    Ok(size)
                }
            })
            .await
        };
        if let Err(e) = tally.check() {
            let _ =
                self.client.abort_multipart_upload().bucket(&self.bucket).key(&key).upload_id(&upload_id).send().await;
            return Err(e);
        }
        let mut parts_done = std::mem::take(&mut *done.lock().expect("not poisoned"));
        parts_done.sort_by_key(|p| p.part_number);
        let completing = Instant::now();
        self.client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(&key)
            .upload_id(&upload_id)
            .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts_done)).build())
            .send()
            .await
            .map_err(|e| anyhow!("complete multipart upload: {}", DisplayErrorContext(e)))?;
        let complete_seconds = completing.elapsed().as_secs_f64();
        let seconds = start.elapsed().as_secs_f64();
        let head = self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(&key)
            .send()
            .await
            .map_err(|e| anyhow!("HEAD {key}: {}", DisplayErrorContext(e)))?;
        ensure!(head.content_length() == Some(i64::try_from(MULTIPART)?), "{key}: size {:?}", head.content_length());
        Ok(json!({
            "value": mib_per_s(MULTIPART, seconds), "unit": "MiB/s", "seconds": seconds,
            "bytes": MULTIPART, "parts": parts, "part_bytes": PART, "concurrency": 4, "errors": 0,
            "complete_seconds": complete_seconds,
        }))
    }

    /// Lists `--list-keys` keys in pages of 1,000, `--list-passes` times; reports the median.
    async fn list(self: &Arc<Self>, args: &RunArgs) -> anyhow::Result<Value> {
        self.create_bucket().await?;
        self.populate("list", args.list_keys, 0).await?;
        let mut passes = Vec::with_capacity(args.list_passes);
        for _ in 0..args.list_passes.max(1) {
            let start = Instant::now();
            let keys = self.count_keys("list").await?;
            passes.push(start.elapsed().as_secs_f64());
            ensure!(keys == args.list_keys, "listed {keys} keys, expected {}", args.list_keys);
        }
        let seconds = median(&mut passes.clone());
        Ok(json!({
            "value": args.list_keys as f64 / seconds, "unit": "keys/s", "seconds": seconds,
            "keys": args.list_keys, "page": LIST_PAGE, "passes": passes, "errors": 0,
        }))
    }

    async fn count_keys(&self, prefix: &str) -> anyhow::Result<u64> {
        let mut keys = 0;
        let mut token = None;
        loop {
            let page = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(format!("{prefix}/"))
                .max_keys(LIST_PAGE)
                .set_continuation_token(token)
                .send()
                .await
                .map_err(|e| anyhow!("list {prefix}/: {}", DisplayErrorContext(e)))?;
            keys += page.contents().len() as u64;
            token = page.next_continuation_token().map(str::to_owned);
            if !page.is_truncated().unwrap_or(false) || token.is_none() {
                return Ok(keys);
            }
        }
    }

    async fn huge_put(&self, args: &RunArgs) -> anyhow::Result<Value> {
        let size = args.huge_gib * GIB;
        let start = Instant::now();
        self.put("huge/object".to_owned(), size).await?;
        Ok(single_fields(size, start.elapsed()))
    }

    async fn huge_get(&self, args: &RunArgs) -> anyhow::Result<Value> {
        let size = args.huge_gib * GIB;
        let start = Instant::now();
        self.get("huge/object".to_owned(), size).await?;
        Ok(single_fields(size, start.elapsed()))
    }
}

fn key(prefix: &str, i: u64) -> String {
    format!("{prefix}/{i:08}")
}

/// What a set of concurrent operations did.
#[derive(Default)]
struct Tally {
    ok: u64,
    errors: u64,
    first_error: Option<String>,
    bytes: u64,
    latencies: Vec<Duration>,
    elapsed: Duration,
}

impl Tally {
    fn check(&self) -> anyhow::Result<()> {
        match &self.first_error {
            None => Ok(()),
            Some(e) => Err(anyhow!("{} of {} operations failed; first: {e}", self.errors, self.ok + self.errors)),
        }
    }

    fn common(&self, concurrency: u64) -> Value {
        json!({
            "seconds": self.elapsed.as_secs_f64(), "ops": self.ok, "bytes": self.bytes,
            "concurrency": concurrency, "errors": self.errors, "first_error": self.first_error,
        })
    }

    /// Operations per second and latency percentiles, for small objects.
    fn ops_fields(mut self, concurrency: u64) -> Value {
        self.latencies.sort_unstable();
        let ms = |p: f64| percentile(&self.latencies, p).map(|d| d.as_secs_f64() * 1000.0);
        let mut fields = self.common(concurrency);
        let extra = json!({
            "value": self.ok as f64 / self.elapsed.as_secs_f64(), "unit": "ops/s",
            "object_bytes": SMALL, "p50_ms": ms(50.0), "p99_ms": ms(99.0),
        });
        merge(&mut fields, extra);
        fields
    }

    /// MiB per second over the whole run, for large objects.
    fn throughput_fields(&self, concurrency: u64) -> Value {
        let mut fields = self.common(concurrency);
        let extra = json!({ "value": mib_per_s(self.bytes, self.elapsed.as_secs_f64()), "unit": "MiB/s", "object_bytes": LARGE });
        merge(&mut fields, extra);
        fields
    }
}

/// Runs `op(0)`, `op(1)`, ... `op(count - 1)` on `concurrency` tasks, each starting its next
/// operation when the last one finishes, until all are done or `limit` has passed.
/// `op` returns the bytes it moved.
async fn drive<F, Fut>(concurrency: u64, count: u64, limit: Option<Duration>, op: F) -> Tally
where
    F: Fn(u64) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = anyhow::Result<u64>> + Send,
{
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut tasks = JoinSet::new();
    for _ in 0..concurrency {
        let (op, next) = (op.clone(), Arc::clone(&next));
        tasks.spawn(async move {
            let mut tally = Tally::default();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count || limit.is_some_and(|l| start.elapsed() >= l) {
                    return tally;
                }
                let began = Instant::now();
                match op(i).await {
                    Ok(bytes) => {
                        tally.ok += 1;
                        tally.bytes += bytes;
                        tally.latencies.push(began.elapsed());
                    }
                    Err(e) => {
                        tally.errors += 1;
                        tally.first_error.get_or_insert_with(|| format!("{e:#}"));
                    }
                }
            }
        });
    }
    let mut total = Tally::default();
    while let Some(joined) = tasks.join_next().await {
        let tally = joined.expect("workload tasks do not panic");
        total.ok += tally.ok;
        total.errors += tally.errors;
        total.bytes += tally.bytes;
        total.latencies.extend(tally.latencies);
        if total.first_error.is_none() {
            total.first_error = tally.first_error;
        }
    }
    total.elapsed = start.elapsed();
    total
}

fn single_fields(bytes: u64, elapsed: Duration) -> Value {
    let seconds = elapsed.as_secs_f64();
    json!({ "value": mib_per_s(bytes, seconds), "unit": "MiB/s", "seconds": seconds, "bytes": bytes, "errors": 0 })
}

fn merge(into: &mut Value, from: Value) {
    if let (Some(into), Value::Object(from)) = (into.as_object_mut(), from) {
        into.extend(from);
    }
}

fn mib_per_s(bytes: u64, seconds: f64) -> f64 {
    bytes as f64 / MIB as f64 / seconds
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[Duration], p: f64) -> Option<Duration> {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.max(1) - 1).copied()
}

/// Median of `values` (the mean of the middle two for an even count); NaN when empty.
pub fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

/// The one-minute load average: the machine is shared, so every line records how busy it was.
fn load1() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg").ok()?.split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let sorted: Vec<_> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&sorted, 50.0), Some(Duration::from_millis(50)));
        assert_eq!(percentile(&sorted, 99.0), Some(Duration::from_millis(99)));
        assert_eq!(percentile(&sorted[..1], 99.0), Some(Duration::from_millis(1)));
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn medians_of_odd_and_even_counts() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), 2.5);
        assert!(median(&mut []).is_nan());
    }
}
