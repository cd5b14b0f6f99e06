#!/usr/bin/env bash
# Several gateways on one registry shared on PostgreSQL: 4 KiB PUT and GET at 16 clients through
# one gateway and through three, each behind deploy/haproxy.cfg (for one gateway, its three
# server lines name the same gateway, so both pay the balancer's hop). ROUNDS rounds, order
# alternating, medians reported, with the share of each workload's time in which the shared
# head was taken (the gateways' `artifact_store_registry_shared_head_held_seconds_total`,
# summed). Results and method: docs/benchmarks.md.
#
#   ROUNDS=3 scripts/bench-shared.sh
#   ROUNDS=3 BENCH_RUN_ARGS="--small-ops 6000" scripts/bench-shared.sh   # more per workload
#
# Needs the release build (`cargo build --release --workspace`), PostgreSQL 15 and HAProxy
# (scripts/install-test-deps.sh). Everything runs on loopback in a temporary folder.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
ROUNDS=${ROUNDS:-3}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=$TARGET_DIR/release/artifact-store
S3BENCH=$TARGET_DIR/release/s3bench
[[ -x "$BIN" && -x "$S3BENCH" ]] || { echo "build first: cargo build --release --workspace" >&2; exit 2; }
ACCESS_KEY=s3benchaccess
SECRET_KEY=s3bench-secret-key-0123456789
export S3BENCH_ACCESS_KEY=$ACCESS_KEY S3BENCH_SECRET_KEY=$SECRET_KEY

work=$(mktemp -d "${TMPDIR:-/tmp}/artifact-store-bench-shared.XXXXXX")
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    "$ROOT/scripts/stop-postgres.sh" "$work/postgres" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT
eval "$(POSTGRES_DIR=$work/postgres "$ROOT/scripts/start-postgres.sh")"
port() { "$ROOT/scripts/free-port.sh"; }

# Starts `count` gateways on a fresh database and data folder, and HAProxy in front of them;
# sets `endpoint` to the balancer's (not printed: a command substitution would run this in a
# subshell, whose `pids` the cleanup never sees).
start() {
    local count=$1 name="bench_$1_$RANDOM" i
    addrs=()
    psql -q "$POSTGRES_URL" -c "CREATE DATABASE $name" >/dev/null
    for ((i = 0; i < count; i++)); do
        local p; p=$(port)
        ARTIFACT_STORE_ACCESS_KEY=$ACCESS_KEY ARTIFACT_STORE_SECRET_KEY=$SECRET_KEY \
            "$BIN" serve --listen "127.0.0.1:$p" --data-dir "$work/data-$name" \
            --registry "${POSTGRES_URL%/*}/$name" >"$work/gateway-$name-$i.log" 2>&1 &
        pids+=($!)
        addrs+=("127.0.0.1:$p")
    done
    for addr in "${addrs[@]}"; do
        for _ in $(seq 200); do curl -fs -o /dev/null "http://$addr/_ready" && break; sleep 0.05; done
    done
    while ((${#addrs[@]} < 3)); do addrs+=("${addrs[0]}"); done
    local lb; lb=$(port)
    LISTEN=127.0.0.1:$lb GATEWAY_1=${addrs[0]} GATEWAY_2=${addrs[1]} GATEWAY_3=${addrs[2]} \
        haproxy -db -f "$ROOT/deploy/haproxy.cfg" >"$work/haproxy-$name.log" 2>&1 &
    pids+=($!)
    for _ in $(seq 100); do curl -fs -o /dev/null "http://127.0.0.1:$lb/_health" && break; sleep 0.05; done
    endpoint="http://127.0.0.1:$lb"
}

# Seconds the gateways started by `start` have held the shared head, summed.
held() {
    local addr total=0
    for addr in $(printf '%s\n' "${addrs[@]}" | sort -u); do
        total=$(curl -fs "http://$addr/_metrics" |
            awk -v t="$total" '/^artifact_store_registry_shared_head_held_seconds_total /{t += $2} END {print t}')
    done
    echo "$total"
}

results=$work/results.jsonl
taken=$work/taken.jsonl
for round in $(seq "$ROUNDS"); do
    order=(1 3)
    ((round % 2)) || order=(3 1)
    for count in "${order[@]}"; do
        start "$count"
        for workload in put_4k_c16 get_4k_c16; do
            held_before=$(held) started=$(date +%s.%N)
            # shellcheck disable=SC2086 # BENCH_RUN_ARGS is a list of arguments
            "$S3BENCH" run --endpoint "$endpoint" --target "gateways-$count" --round "$round" \
                --workloads "$workload" ${BENCH_RUN_ARGS:-} >>"$results"
            echo "{\"target\": \"gateways-$count\", \"workload\": \"$workload\", \"held\": $(held), \"held_before\": $held_before, \"started\": $started, \"ended\": $(date +%s.%N)}" >>"$taken"
        done
        for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
        wait 2>/dev/null || true
        pids=()
    done
done
python3 - "$results" "$taken" <<'PY'
import json, statistics, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
taken = [json.loads(line) for line in open(sys.argv[2])]
print("| workload | one gateway (median ops/s) | three gateways (median ops/s) | ratio | head taken (one / three) |")
print("|---|---:|---:|---:|---|")
for workload in ("put_4k_c16", "get_4k_c16"):
    med, share = {}, {}
    for target in ("gateways-1", "gateways-3"):
        values = [r["value"] for r in rows if r["workload"] == workload and r["target"] == target and r.get("value")]
        med[target] = statistics.median(values) if values else float("nan")
        shares = [(t["held"] - t["held_before"]) / (t["ended"] - t["started"])
                  for t in taken if t["workload"] == workload and t["target"] == target]
        share[target] = f"{min(shares):.0%}-{max(shares):.0%}" if shares else "?"
    print(f"| {workload} | {med['gateways-1']:,.0f} | {med['gateways-3']:,.0f} | "
          f"{med['gateways-3'] / med['gateways-1']:.2f} | {share['gateways-1']} / {share['gateways-3']} |")
PY
