#!/usr/bin/env bash
# Gateway benchmark: the release `artifact-store` against s3s-fs (an S3 server on the local
# filesystem that neither fsyncs nor records anything) served with TCP_NODELAY on
# (`s3s-fs-nodelay`, built from bench/: s3s-fs's own binary leaves Nagle's algorithm on, which
# slows its small responses by a delayed ACK each), with the same client and workloads,
# ROUNDS times, plus the machine's own limits (disk write with fsync, loopback HTTP GET) and the
# gateway's peak memory while it moves one huge object. Results and method: docs/benchmarks.md.
#
#   ROUNDS=3 scripts/bench.sh
#
# Environment:
#   ROUNDS            rounds of every workload on both servers (default 3; medians are reported)
#   BENCH_PORT        loopback port the servers take in turn (default 19740)
#   HUGE_GIB          size of the object for the memory measurement (default 5)
#   BENCH_RUN_ARGS    extra arguments for `s3bench run`, e.g. "--small-ops 200" for a quick try
#   CARGO_TARGET_DIR  as for cargo
#
# Writes target/bench/results-<date>.jsonl (one JSON line per workload and round) and
# target/bench/summary-<date>.md (the tables printed at the end). Ratios below their floors are
# reported, not failed: this is a benchmark, not a test.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
ROUNDS=${ROUNDS:-3}
PORT=${BENCH_PORT:-19740}
HUGE_GIB=${HUGE_GIB:-5}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
OUT=$ROOT/target/bench
# Data directories live on the repository's disk (not tmpfs): the gateway's fsyncs are part
# of what is measured.
WORK=$OUT/work
STAMP=$(date +%Y%m%d-%H%M%S)
RESULTS=$OUT/results-$STAMP.jsonl
SUMMARY=$OUT/summary-$STAMP.md
ENDPOINT=http://127.0.0.1:$PORT
ACCESS_KEY=s3benchaccess
SECRET_KEY=s3bench-secret-key-0123456789

export S3BENCH_ACCESS_KEY=$ACCESS_KEY S3BENCH_SECRET_KEY=$SECRET_KEY
# Both servers log at their defaults.
unset RUST_LOG
export LC_ALL=C

log() { printf '== %s  [load %s]\n' "$*" "$(cut -d' ' -f1-3 /proc/loadavg)" >&2; }
die() { printf 'bench.sh: %s\n' "$*" >&2; exit 1; }
load1() { cut -d' ' -f1 /proc/loadavg; }

log "building the release gateway, s3bench and s3s-fs-nodelay"
cargo build --release --manifest-path "$ROOT/Cargo.toml" -p artifact-store-gateway -p artifact-store-bench
GATEWAY=$TARGET_DIR/release/artifact-store
S3BENCH=$TARGET_DIR/release/s3bench
S3S_FS=$TARGET_DIR/release/s3s-fs-nodelay

SERVER_PID=
stop_server() {
    if [ -n "$SERVER_PID" ]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
        SERVER_PID=
    fi
}
trap 'stop_server; rm -rf "$WORK"' EXIT

# Waits until `curl $1` gets the HTTP status $2 (any status when $2 is "any").
wait_ready() {
    local url=$1 want=$2 code
    for _ in $(seq 300); do
        kill -0 "$SERVER_PID" 2>/dev/null || die "server exited; see its log in $OUT"
        code=$(curl -s -o /dev/null -w '%{http_code}' "$url" || true)
        if [ "$code" != 000 ] && { [ "$want" = any ] || [ "$code" = "$want" ]; }; then
            return
        fi
        sleep 0.1
    done
    die "no answer from $url after 30 s"
}

start_server() { # target data-dir
    if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
        die "port $PORT is taken; set BENCH_PORT"
    fi
    rm -rf "$2"
    mkdir -p "$2"
    case $1 in
    gateway)
        ARTIFACT_STORE_ACCESS_KEY=$ACCESS_KEY ARTIFACT_STORE_SECRET_KEY=$SECRET_KEY \
            "$GATEWAY" serve --listen "127.0.0.1:$PORT" --data-dir "$2" >"$OUT/gateway.log" 2>&1 &
        SERVER_PID=$!
        wait_ready "$ENDPOINT/_health" 200
        ;;
    s3s-fs)
        "$S3S_FS" --host 127.0.0.1 --port "$PORT" --access-key "$ACCESS_KEY" --secret-key "$SECRET_KEY" "$2" \
            >"$OUT/s3s-fs.log" 2>&1 &
        SERVER_PID=$!
        wait_ready "$ENDPOINT/" any
        ;;
    esac
}

# The machine's limits, measured in every round next to the servers.
machine_limits() { # round
    local secs
    dd if=/dev/zero of="$WORK/dd.bin" bs=1M count=1024 conv=fsync 2>"$OUT/dd.txt"
    secs=$(awk '/copied/ {print $(NF-3)}' "$OUT/dd.txt")
    printf '{"target":"machine","round":%s,"workload":"dd_fsync","value":%s,"unit":"MiB/s","seconds":%s,"load1":%s}\n' \
        "$1" "$(awk -v s="$secs" 'BEGIN {printf "%.1f", 1024 / s}')" "$secs" "$(load1)" | tee -a "$RESULTS"
    # The bound on any server that makes each small write durable before answering.
    dd if=/dev/zero of="$WORK/dsync.bin" bs=4k count=2000 oflag=dsync 2>"$OUT/dd.txt"
    secs=$(awk '/copied/ {print $(NF-3)}' "$OUT/dd.txt")
    printf '{"target":"machine","round":%s,"workload":"dd_4k_dsync","value":%s,"unit":"writes/s","seconds":%s,"load1":%s}\n' \
        "$1" "$(awk -v s="$secs" 'BEGIN {printf "%.1f", 2000 / s}')" "$secs" "$(load1)" | tee -a "$RESULTS"
    rm -f "$WORK/dsync.bin"
    # The file dd wrote first, served from the page cache by hyper and fetched by hyper.
    "$S3BENCH" serve-file --listen "127.0.0.1:$PORT" "$WORK/dd.bin" &
    SERVER_PID=$!
    wait_ready "$ENDPOINT/" 200
    "$S3BENCH" fetch --round "$1" "$ENDPOINT/" | tee -a "$RESULTS"
    stop_server
    rm -f "$WORK/dd.bin"
}

run_target() { # target round
    log "round $2: $1"
    start_server "$1" "$WORK/$1"
    # shellcheck disable=SC2086 # BENCH_RUN_ARGS is a list of arguments
    "$S3BENCH" run --endpoint "$ENDPOINT" --target "$1" --round "$2" ${BENCH_RUN_ARGS:-} | tee -a "$RESULTS"
    stop_server
    rm -rf "${WORK:?}/$1"
}

vmhwm_mib() { awk '/^VmHWM/ {printf "%.1f", $2 / 1024}' "/proc/$SERVER_PID/status"; }

# Peak resident memory of a server while one HUGE_GIB object is PUT (streamed from a
# generator) and then GET (drained). VmHWM is reset between the two, so each figure is that
# operation's own peak.
peak_memory() { # target
    log "peak memory of $1 with a $HUGE_GIB GiB object"
    start_server "$1" "$WORK/$1"
    local start put get
    start=$(vmhwm_mib)
    "$S3BENCH" run --endpoint "$ENDPOINT" --target "$1" --round 0 --workloads put_huge --huge-gib "$HUGE_GIB" \
        | tee -a "$RESULTS"
    put=$(vmhwm_mib)
    echo 5 >"/proc/$SERVER_PID/clear_refs" || die "cannot reset VmHWM of $SERVER_PID"
    "$S3BENCH" run --endpoint "$ENDPOINT" --target "$1" --round 0 --workloads get_huge --huge-gib "$HUGE_GIB" \
        | tee -a "$RESULTS"
    get=$(vmhwm_mib)
    printf '{"target":"%s","round":0,"workload":"rss_huge","gib":%s,"start_vmhwm_mib":%s,"put_vmhwm_mib":%s,"get_vmhwm_mib":%s,"load1":%s}\n' \
        "$1" "$HUGE_GIB" "$start" "$put" "$get" "$(load1)" | tee -a "$RESULTS"
    stop_server
    rm -rf "${WORK:?}/$1"
}

mkdir -p "$OUT"
rm -rf "$WORK"
mkdir -p "$WORK"
{
    echo "# artifact-store gateway benchmark, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "machine: $(nproc) CPUs, $(lscpu | sed -n 's/^Model name: *//p'), $(free -g | awk '/^Mem:/ {print $2}') GiB RAM, kernel $(uname -r)"
    echo "disk: $(df -T "$OUT" | awk 'NR == 2 {print $1, $2}'), data in $WORK"
    echo "rounds: $ROUNDS; load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$SUMMARY"

for round in $(seq "$ROUNDS"); do
    log "round $round: machine limits"
    machine_limits "$round"
    # Alternate which server goes first, so neither always meets a cold or a warm machine.
    if [ $((round % 2)) = 1 ]; then order="gateway s3s-fs"; else order="s3s-fs gateway"; fi
    for target in $order; do
        run_target "$target" "$round"
    done
done
peak_memory gateway
peak_memory s3s-fs

{
    echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "results: $RESULTS"
    echo
    "$S3BENCH" summary "$RESULTS"
} | tee -a "$SUMMARY"
