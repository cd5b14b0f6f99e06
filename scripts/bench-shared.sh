#!/usr/bin/env bash
# Several gateways on one registry shared on PostgreSQL: 4 KiB PUT and GET at 16 clients through
# one gateway and through three, each behind deploy/haproxy.cfg (for one gateway, its three
# server lines name the same gateway, so both pay the balancer's hop). ROUNDS rounds, order
# alternating, medians reported; and over each run, the share of the time in which the shared
# head was taken (the gateways' `artifact_store_registry_shared_head_held_seconds_total`,
# summed), the other gateways' events each applied while holding it (per operation), and the
# CPU per operation of the gateways, PostgreSQL (its postmaster and backends, from /proc),
# HAProxy and s3bench. Results and method: docs/benchmarks.md.
#
#   ROUNDS=3 scripts/bench-shared.sh
#   ROUNDS=3 BENCH_RUN_ARGS="--small-ops 6000" scripts/bench-shared.sh   # more per workload
#   BENCH_KEEP=DIR ...   # also copies the raw results (JSON lines) into DIR
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

# A metric of the gateways started by `start`, summed over them.
summed() {
    local name=$1 addr page total=0
    for addr in $(printf '%s\n' "${addrs[@]}" | sort -u); do
        page=$(curl -fsS "http://$addr/_metrics") || { echo "no metrics from $addr" >&2; exit 1; }
        total=$(awk -v t="$total" -v name="$name" '$1 == name {t += $2} END {print t}' <<<"$page")
    done
    echo "$total"
}
# Seconds the gateways have held the shared head; events of other gateways they applied under it.
held() { summed artifact_store_registry_shared_head_held_seconds_total; }
caught_up() { summed artifact_store_registry_shared_head_caught_up_events_total; }

# CPU seconds of the given processes and of the children they reaped.
cpu() {
    local pid fields total=0
    for pid in "$@"; do
        [[ -r /proc/$pid/stat ]] || continue
        read -ra fields <<<"$(sed 's/.*) //' "/proc/$pid/stat")"
        total=$((total + fields[11] + fields[12] + fields[13] + fields[14]))
    done
    echo "$((total * 1000 / $(getconf CLK_TCK)))"
}
# PostgreSQL's: the postmaster reaps the backends of closed connections.
postgres_cpu() {
    local cluster="$work/postgres/cluster" postmaster
    [[ -f $work/postgres/cluster-path ]] && cluster=$(cat "$work/postgres/cluster-path")
    postmaster=$(head -1 "$cluster/postmaster.pid")
    cpu "$postmaster" $(ps -o pid= --ppid "$postmaster")
}

results=$work/results.jsonl
usage=$work/usage.jsonl
for round in $(seq "$ROUNDS"); do
    order=(1 3)
    ((round % 2)) || order=(3 1)
    for count in "${order[@]}"; do
        start "$count"
        gateways=("${pids[@]:0:count}") balancer=${pids[count]}
        held_before=$(held) caught_up_before=$(caught_up) started=$(date +%s.%N)
        gateways_before=$(cpu "${gateways[@]}") postgres_before=$(postgres_cpu) balancer_before=$(cpu "$balancer")
        TIMEFORMAT='%U %S'
        # shellcheck disable=SC2086 # BENCH_RUN_ARGS is a list of arguments
        { time "$S3BENCH" run --endpoint "$endpoint" --target "gateways-$count" --round "$round" \
            --workloads put_4k_c16,get_4k_c16 ${BENCH_RUN_ARGS:-} >>"$results" 2>&3; } 3>&2 2>"$work/s3bench-time"
        echo "{\"target\": \"gateways-$count\", \"round\": $round, \"held\": $(held)," \
            "\"held_before\": $held_before, \"started\": $started, \"ended\": $(date +%s.%N)," \
            "\"caught_up\": $(($(caught_up) - caught_up_before))," \
            "\"gateways_ms\": $(($(cpu "${gateways[@]}") - gateways_before))," \
            "\"postgres_ms\": $(($(postgres_cpu) - postgres_before))," \
            "\"balancer_ms\": $(($(cpu "$balancer") - balancer_before))," \
            "\"s3bench_ms\": $(awk '{printf "%d", ($1 + $2) * 1000}' "$work/s3bench-time")}" >>"$usage"
        for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
        wait 2>/dev/null || true
        pids=()
    done
done
[[ -n ${BENCH_KEEP:-} ]] && cp "$results" "$usage" "$BENCH_KEEP"
python3 - "$results" "$usage" <<'PY'
import json, statistics, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
usage = [json.loads(line) for line in open(sys.argv[2])]
targets = ("gateways-1", "gateways-3")
print("| workload | one gateway (median ops/s) | three gateways (median ops/s) | ratio |")
print("|---|---:|---:|---:|")
for workload in ("put_4k_c16", "get_4k_c16"):
    med = {}
    for target in targets:
        values = [r["value"] for r in rows if r["workload"] == workload and r["target"] == target and r.get("value")]
        med[target] = statistics.median(values) if values else float("nan")
    print(f"| {workload} | {med['gateways-1']:,.0f} | {med['gateways-3']:,.0f} | {med['gateways-3'] / med['gateways-1']:.2f} |")
# Over each whole run (both workloads; the GETs read what the PUTs wrote): the share of the time the
# head was taken, and the CPU per operation of each kind of process; medians of the rounds.
print()
print("| over the run (medians) | head taken | others' events applied under the head, per operation "
      "| CPU per operation: gateways | PostgreSQL | HAProxy | s3bench | all |")
print("|---|---:|---:|---:|---:|---:|---:|---:|")
for target in targets:
    runs = [u for u in usage if u["target"] == target]
    ops = lambda run: sum(r["ops"] for r in rows if r["target"] == target and r["round"] == run["round"])
    median = lambda values: statistics.median(values) if values else float("nan")
    share = median([(u["held"] - u["held_before"]) / (u["ended"] - u["started"]) for u in runs])
    per_op = {kind: median([u[f"{kind}_ms"] / ops(u) for u in runs])
              for kind in ("gateways", "postgres", "balancer", "s3bench")}
    caught_up = median([u["caught_up"] / ops(u) for u in runs])
    print(f"| {target} | {share:.0%} | {caught_up:.2f} | {per_op['gateways']:.2f} ms | {per_op['postgres']:.2f} ms | "
          f"{per_op['balancer']:.2f} ms | {per_op['s3bench']:.2f} ms | {sum(per_op.values()):.2f} ms |")
PY
