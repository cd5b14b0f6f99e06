#!/usr/bin/env bash
# The S3 backend's cost: client → gateway → Ceph RGW against client → RGW directly, same client
# (s3bench), same RGW, same run, ROUNDS times alternating which goes first. Workloads: 4 KiB
# PUT and GET one at a time (ops/s and latency), 64 MiB PUT and GET four at a time (MiB/s).
# Results and method: docs/benchmarks.md.
#
#   ROUNDS=5 scripts/bench-upstream.sh
#
# Environment:
#   ROUNDS            rounds (default 5; medians are reported)
#   BENCH_PORT        loopback port of the gateway (default 19750)
#   BENCH_RUN_ARGS    extra arguments for `s3bench run` (e.g. "--small-ops 500")
#   HUGE_GIB          size of the object whose PUT and GET measure the gateway's peak memory
#                     (default 2; 0 skips it)
#   CARGO_TARGET_DIR  as for cargo
#
# Writes target/bench/upstream-<date>.jsonl and prints the summary table (also appended to
# target/bench/upstream-<date>.md). Floors (gateway ≥ 85% of direct for 64 MiB, ≤ 3 ms added p50
# for 4 KiB PUT) are reported, not enforced.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
ROUNDS=${ROUNDS:-5}
HUGE_GIB=${HUGE_GIB:-2}
PORT=${BENCH_PORT:-19750}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
OUT=$ROOT/target/bench
STAMP=$(date +%Y%m%d-%H%M%S)
RESULTS=$OUT/upstream-$STAMP.jsonl
SUMMARY=$OUT/upstream-$STAMP.md
WORK=$OUT/upstream-work
WORKLOADS=put_4k_c1,get_4k_c1,put_64m_c4,get_64m_c4
ACCESS_KEY=s3benchaccess
SECRET_KEY=s3bench-secret-key-0123456789
export LC_ALL=C
unset RUST_LOG

log() { printf '== %s  [load %s]\n' "$*" "$(cut -d' ' -f1-3 /proc/loadavg)" >&2; }

log "building the release gateway and s3bench"
cargo build --release --locked --manifest-path "$ROOT/Cargo.toml" -p artifact-store-gateway -p artifact-store-bench
GATEWAY=$TARGET_DIR/release/artifact-store
S3BENCH=$TARGET_DIR/release/s3bench

log "starting Ceph RGW"
eval "$("$ROOT/scripts/start-ceph-rgw.sh")"
upstream_aws() {
    AWS_ACCESS_KEY_ID=$UPSTREAM_ACCESS_KEY AWS_SECRET_ACCESS_KEY=$UPSTREAM_SECRET_KEY AWS_CA_BUNDLE= \
        AWS_DEFAULT_REGION=$UPSTREAM_REGION aws --endpoint-url "$UPSTREAM_ENDPOINT" "$@"
}
# Objects from earlier rounds would only fill the OSD: each round starts from empty buckets.
empty_bucket() { upstream_aws s3 rm --recursive --quiet "s3://$1" >/dev/null 2>&1 || true; }

GATEWAY_PID=
stop_gateway() {
    if [ -n "$GATEWAY_PID" ]; then
        kill "$GATEWAY_PID" 2>/dev/null || true
        wait "$GATEWAY_PID" 2>/dev/null || true
        GATEWAY_PID=
    fi
}
trap 'stop_gateway; rm -rf "$WORK"; "$ROOT/scripts/stop-ceph-rgw.sh" "$UPSTREAM_STATE_DIR" >/dev/null' EXIT

mkdir -p "$OUT"
upstream_aws s3api create-bucket --bucket bench-blobs >/dev/null 2>&1 || true

start_gateway() {
    rm -rf "$WORK"
    mkdir -p "$WORK"
    empty_bucket bench-blobs
    ARTIFACT_STORE_ACCESS_KEY=$ACCESS_KEY ARTIFACT_STORE_SECRET_KEY=$SECRET_KEY \
        ARTIFACT_STORE_UPSTREAM_ACCESS_KEY=$UPSTREAM_ACCESS_KEY ARTIFACT_STORE_UPSTREAM_SECRET_KEY=$UPSTREAM_SECRET_KEY \
        "$GATEWAY" serve --listen "127.0.0.1:$PORT" --data-dir "$WORK" --backend s3 \
        --upstream-endpoint "$UPSTREAM_ENDPOINT" --upstream-bucket bench-blobs --upstream-region "$UPSTREAM_REGION" \
        >"$OUT/gateway-upstream.log" 2>&1 &
    GATEWAY_PID=$!
    for _ in $(seq 100); do curl -fs -o /dev/null "http://127.0.0.1:$PORT/_health" && break; sleep 0.1; done
}

run_gateway() { # round
    start_gateway
    # shellcheck disable=SC2086 # BENCH_RUN_ARGS is a list of arguments
    S3BENCH_ACCESS_KEY=$ACCESS_KEY S3BENCH_SECRET_KEY=$SECRET_KEY "$S3BENCH" run \
        --endpoint "http://127.0.0.1:$PORT" --target gateway-rgw --round "$1" --workloads "$WORKLOADS" \
        ${BENCH_RUN_ARGS:-} | tee -a "$RESULTS"
    stop_gateway
}

run_direct() { # round
    empty_bucket s3bench
    # shellcheck disable=SC2086
    S3BENCH_ACCESS_KEY=$UPSTREAM_ACCESS_KEY S3BENCH_SECRET_KEY=$UPSTREAM_SECRET_KEY "$S3BENCH" run \
        --endpoint "$UPSTREAM_ENDPOINT" --region "$UPSTREAM_REGION" --target rgw --round "$1" \
        --workloads "$WORKLOADS" ${BENCH_RUN_ARGS:-} | tee -a "$RESULTS"
}

{
    echo "# gateway on Ceph RGW vs RGW directly, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "machine: $(nproc) CPUs, $(free -g | awk '/^Mem:/ {print $2}') GiB RAM; RGW $(radosgw --version | awk '{print $3}'), bluestore on a sparse file"
    echo "rounds: $ROUNDS; load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$SUMMARY"
for round in $(seq "$ROUNDS"); do
    if [ $((round % 2)) = 1 ]; then
        log "round $round: gateway first"; run_gateway "$round"; run_direct "$round"
    else
        log "round $round: RGW first"; run_direct "$round"; run_gateway "$round"
    fi
done
vmhwm_mib() { awk '/^VmHWM/ {printf "%.1f", $2 / 1024}' "/proc/$GATEWAY_PID/status"; }
if [ "$HUGE_GIB" != 0 ]; then
    # Peak resident memory of the gateway while one HUGE_GIB object streams through it to RGW
    # and back; VmHWM is reset between the PUT and the GET.
    log "peak memory with a $HUGE_GIB GiB object"
    start_gateway
    start=$(vmhwm_mib)
    S3BENCH_ACCESS_KEY=$ACCESS_KEY S3BENCH_SECRET_KEY=$SECRET_KEY "$S3BENCH" run --endpoint "http://127.0.0.1:$PORT" \
        --target gateway-rgw --round 0 --workloads put_huge --huge-gib "$HUGE_GIB" | tee -a "$RESULTS"
    put=$(vmhwm_mib)
    echo 5 >"/proc/$GATEWAY_PID/clear_refs"
    S3BENCH_ACCESS_KEY=$ACCESS_KEY S3BENCH_SECRET_KEY=$SECRET_KEY "$S3BENCH" run --endpoint "http://127.0.0.1:$PORT" \
        --target gateway-rgw --round 0 --workloads get_huge --huge-gib "$HUGE_GIB" | tee -a "$RESULTS"
    get=$(vmhwm_mib)
    stop_gateway
    echo "gateway peak RSS with a $HUGE_GIB GiB object: start $start MiB, PUT $put MiB, GET $get MiB" | tee -a "$SUMMARY"
fi
empty_bucket bench-blobs
empty_bucket s3bench

# Medians over rounds of each figure, and the gateway's share of the direct figure.
python3 - "$RESULTS" <<'PY' | tee -a "$SUMMARY"
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
def med(target, workload, field="value"):
    vals = [r[field] for r in rows if r["target"] == target and r["workload"] == workload and r.get(field) is not None]
    return statistics.median(vals) if vals else None
print(f"\nload average at end: {open('/proc/loadavg').read().split()[:3]}\n")
print("| workload | unit | gateway → RGW | RGW direct | gateway / direct | floor |")
print("|---|---|---|---|---|---|")
for w, unit, floor in [("put_4k_c1", "ops/s", ""), ("get_4k_c1", "ops/s", ""),
                       ("put_64m_c4", "MiB/s", "≥ 85%"), ("get_64m_c4", "MiB/s", "≥ 85%")]:
    g, d = med("gateway-rgw", w), med("rgw", w)
    ratio = f"{100 * g / d:.0f}%" if g and d else "–"
    print(f"| {w} | {unit} | {g:.1f} | {d:.1f} | {ratio} | {floor} |" if g and d else f"| {w} | {unit} | {g} | {d} | – | {floor} |")
print()
print("| 4 KiB latency, ms (median of rounds) | gateway p50 | direct p50 | added p50 | gateway p99 | direct p99 | floor |")
print("|---|---|---|---|---|---|---|")
for w, floor in [("put_4k_c1", "≤ 3 ms added p50"), ("get_4k_c1", "")]:
    gp, dp = med("gateway-rgw", w, "p50_ms"), med("rgw", w, "p50_ms")
    g99, d99 = med("gateway-rgw", w, "p99_ms"), med("rgw", w, "p99_ms")
    if None not in (gp, dp, g99, d99):
        print(f"| {w} | {gp:.2f} | {dp:.2f} | {gp - dp:+.2f} | {g99:.2f} | {d99:.2f} | {floor} |")
errors = [r for r in rows if r.get("errors")]
print(f"\nworkload runs with errors: {len(errors)}")
for r in errors:
    print(f"- {r['target']} round {r['round']} {r['workload']}: {r.get('errors')} errors, first: {r.get('first_error', '')[:200]}")
PY
echo "results: $RESULTS" | tee -a "$SUMMARY"
