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
# A third target bounds what sharing can reach on the machine: three gateways that share
# nothing (each its own database and data folder) behind the same HAProxy, which then sends each
# path to one of them (`balance uri`, so a key's GET finds the gateway that took its PUT). They do
# the work of one gateway in three processes with nothing shared between them: what they lose
# against one gateway is not the shared registry's.
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

# Starts the gateways of a target (gateways-1, gateways-3: that many on one fresh database and
# data folder; separate-3: three, each on its own) and HAProxy in front of them; sets `endpoint`
# to the balancer's (not printed: a command substitution would run this in a subshell, whose
# `pids` the cleanup never sees).
start() {
    local target=$1 count=${1##*-} name i config=$ROOT/deploy/haproxy.cfg
    addrs=()
    for ((i = 0; i < count; i++)); do
        # Gateways that share a registry share its database and data folder.
        if [[ $target == separate-* || $i == 0 ]]; then
            name="bench_${target//-/_}_${i}_$RANDOM"
            psql -q "$POSTGRES_URL" -c "CREATE DATABASE $name" >/dev/null
        fi
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
    if [[ $target == separate-* ]]; then
        # Each gateway has the bucket, whichever of them the bucket's own path hashes to.
        for addr in "${addrs[@]}"; do
            curl -fsS -o /dev/null -X PUT --aws-sigv4 aws:amz:us-east-1:s3 --user "$ACCESS_KEY:$SECRET_KEY" \
                -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" \
                "http://$addr/s3bench"
        done
        config=$work/haproxy-by-path.cfg
        sed 's/^\( *balance\) leastconn$/\1 uri/' "$ROOT/deploy/haproxy.cfg" >"$config"
        grep -q '^ *balance uri$' "$config" || { echo "deploy/haproxy.cfg: no 'balance leastconn' line" >&2; exit 1; }
    fi
    while ((${#addrs[@]} < 3)); do addrs+=("${addrs[0]}"); done
    local lb; lb=$(port)
    LISTEN=127.0.0.1:$lb GATEWAY_1=${addrs[0]} GATEWAY_2=${addrs[1]} GATEWAY_3=${addrs[2]} \
        haproxy -db -f "$config" >"$work/haproxy-$name.log" 2>&1 &
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
# Group commits of the gateways (each one transaction on PostgreSQL and one on the replica).
commits() { summed artifact_store_registry_group_commits_total; }

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
    order=(gateways-1 gateways-3 separate-3)
    ((round % 2)) || order=(separate-3 gateways-3 gateways-1)
    for target in "${order[@]}"; do
        start "$target"
        count=${target##*-}
        gateways=("${pids[@]:0:count}") balancer=${pids[count]}
        held_before=$(held) caught_up_before=$(caught_up) commits_before=$(commits) started=$(date +%s.%N)
        gateways_before=$(cpu "${gateways[@]}") postgres_before=$(postgres_cpu) balancer_before=$(cpu "$balancer")
        TIMEFORMAT='%U %S'
        # shellcheck disable=SC2086 # BENCH_RUN_ARGS is a list of arguments
        { time "$S3BENCH" run --endpoint "$endpoint" --target "$target" --round "$round" \
            --workloads put_4k_c16,get_4k_c16 ${BENCH_RUN_ARGS:-} >>"$results" 2>&3; } 3>&2 2>"$work/s3bench-time"
        echo "{\"target\": \"$target\", \"round\": $round, \"held\": $(held)," \
            "\"held_before\": $held_before, \"started\": $started, \"ended\": $(date +%s.%N)," \
            "\"caught_up\": $(($(caught_up) - caught_up_before))," \
            "\"commits\": $(($(commits) - commits_before))," \
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
targets = ("gateways-1", "gateways-3", "separate-3")
print("| workload | one gateway (median ops/s) | three gateways (median ops/s) | ratio "
      "| three sharing nothing (median ops/s) | ratio |")
print("|---|---:|---:|---:|---:|---:|")
for workload in ("put_4k_c16", "get_4k_c16"):
    med = {}
    for target in targets:
        values = [r["value"] for r in rows if r["workload"] == workload and r["target"] == target and r.get("value")]
        med[target] = statistics.median(values) if values else float("nan")
    one = med["gateways-1"]
    print(f"| {workload} | {one:,.0f} | {med['gateways-3']:,.0f} | {med['gateways-3'] / one:.2f} "
          f"| {med['separate-3']:,.0f} | {med['separate-3'] / one:.2f} |")
# Over each whole run (both workloads; the GETs read what the PUTs wrote): the share of the time the
# head was taken (summed over the gateways: separate-3 has three heads), how many operations a
# group commit carried, the CPU per operation of each kind of process, and how many of the
# machine's cores those processes kept busy over the run; medians of the rounds.
print()
print("| over the run (medians) | head taken | others' events applied under the head, per operation "
      "| operations per group commit | CPU per operation: gateways | PostgreSQL | HAProxy | s3bench | all "
      "| cores busy |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
kinds = ("gateways", "postgres", "balancer", "s3bench")
for target in targets:
    runs = [u for u in usage if u["target"] == target]
    ops = lambda run: sum(r["ops"] for r in rows if r["target"] == target and r["round"] == run["round"])
    median = lambda values: statistics.median(values) if values else float("nan")
    share = median([(u["held"] - u["held_before"]) / (u["ended"] - u["started"]) for u in runs])
    per_op = {kind: median([u[f"{kind}_ms"] / ops(u) for u in runs]) for kind in kinds}
    caught_up = median([u["caught_up"] / ops(u) for u in runs])
    batch = median([ops(u) / u["commits"] for u in runs if u["commits"]])
    busy = median([sum(u[f"{kind}_ms"] for kind in kinds) / (u["ended"] - u["started"]) / 1000 for u in runs])
    print(f"| {target} | {share:.0%} | {caught_up:.2f} | {batch:.1f} | {per_op['gateways']:.2f} ms | {per_op['postgres']:.2f} ms | "
          f"{per_op['balancer']:.2f} ms | {per_op['s3bench']:.2f} ms | {sum(per_op.values()):.2f} ms | {busy:.2f} |")
PY
