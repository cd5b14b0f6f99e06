#!/usr/bin/env bash
# A/B of two gateway builds on one s3bench workload: each run gets a fresh data folder, the
# order alternates between rounds, and each round prints both figures (the workload's `value`:
# MiB/s or operations/s) and their ratio (B/A); a last line gives the medians of each column.
# For changes too small to show across separate `scripts/bench.sh` runs (for example the
# cost of the read check: A a build with it bypassed, B main). With the same binary twice and
# BENCH_RUN_ARGS_B, it compares two ways of using one build (e.g. "--sse-s3").
#
#   scripts/bench-ab.sh <gateway binary A> <gateway binary B>
#
# Environment:
#   ROUNDS            rounds (default 6)
#   WORKLOAD          s3bench workload (default get_64m_c4)
#   BENCH_RUN_ARGS    extra arguments for `s3bench run`, e.g. "--large-objects 64"
#   BENCH_RUN_ARGS_A, BENCH_RUN_ARGS_B
#                     extra arguments for one side only, e.g. a bucket policy for B
#                     ("--bucket-policy bench/policies/twenty-statements.json")
#   BENCH_PORT        loopback port the servers take in turn (default 19761)
#   CARGO_TARGET_DIR  where s3bench is built
set -euo pipefail
[ $# -eq 2 ] || { echo "usage: $0 <gateway A> <gateway B>" >&2; exit 2; }
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
A=$(realpath "$1")
B=$(realpath "$2")
ROUNDS=${ROUNDS:-6}
WORKLOAD=${WORKLOAD:-get_64m_c4}
PORT=${BENCH_PORT:-19761}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
export S3BENCH_ACCESS_KEY=s3benchaccess S3BENCH_SECRET_KEY=s3bench-secret-key-0123456789
unset RUST_LOG

cargo build --release --locked --manifest-path "$ROOT/Cargo.toml" -p artifact-store-bench >&2
S3BENCH=$TARGET_DIR/release/s3bench
WORK=$(mktemp -d)
SERVER_PID=
stop() {
    if [ -n "$SERVER_PID" ]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
        SERVER_PID=
    fi
}
trap 'stop; rm -rf "$WORK"' EXIT

run() { # binary round side-arguments -> the workload's value
    rm -rf "$WORK/data"
    mkdir -p "$WORK/data"
    ARTIFACT_STORE_ACCESS_KEY=$S3BENCH_ACCESS_KEY ARTIFACT_STORE_SECRET_KEY=$S3BENCH_SECRET_KEY \
        "$1" serve --listen "127.0.0.1:$PORT" --data-dir "$WORK/data" >"$WORK/gateway.log" 2>&1 &
    SERVER_PID=$!
    for _ in $(seq 300); do
        curl -s -o /dev/null "http://127.0.0.1:$PORT/_health" && break
        sleep 0.1
    done
    # shellcheck disable=SC2086 # BENCH_RUN_ARGS is a list of arguments
    "$S3BENCH" run --endpoint "http://127.0.0.1:$PORT" --target ab --round "$2" --workloads "$WORKLOAD" \
        ${BENCH_RUN_ARGS:-} $3 | sed -n 's/.*"value":\([0-9.]*\).*/\1/p'
    stop
}

median() { sort -g | awk '{v[NR] = $1} END {if (NR) printf "%.3f", NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }

echo "round,a,b,ratio_b_a,load1"
rows=()
for round in $(seq "$ROUNDS"); do
    if (( round % 2 )); then
        a=$(run "$A" "$round" "${BENCH_RUN_ARGS_A:-}"); b=$(run "$B" "$round" "${BENCH_RUN_ARGS_B:-}")
    else
        b=$(run "$B" "$round" "${BENCH_RUN_ARGS_B:-}"); a=$(run "$A" "$round" "${BENCH_RUN_ARGS_A:-}")
    fi
    rows+=("$round,$a,$b,$(awk -v a="$a" -v b="$b" 'BEGIN {printf "%.3f", b / a}'),$(cut -d' ' -f1 /proc/loadavg)")
    echo "${rows[-1]}"
done
median_of() { printf '%s\n' "${rows[@]}" | cut -d, -f"$1" | median; }
echo "median,$(median_of 2),$(median_of 3),$(median_of 4),"
