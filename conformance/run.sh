#!/usr/bin/env bash
# End-to-end conformance: starts the real `artifact-store` binary (or a moto server, to test the
# tests), drives every real client against it over http and https, checks the registry, and writes
# the compatibility matrix.
#
#   conformance/run.sh [--target gateway|moto] [--transport http|https|both] [--clients "LIST"]
#                      [--backend fs|s3] [--upstream moto|rgw] [--tier full|core] [--gateways N]
#
# Two tiers. full: every client's every scenario over http and https, what the local store
# runs. core: what a backend changes (each client's round trips at every size, multipart,
# retention, packages) over http alone; the scenarios of the front end only (listings,
# pagination, error codes) are recorded as skipped. The S3 backend runs the core tier unless
# told otherwise: the front end in front of it is the same code.
#
# --gateways N (N > 1) runs N gateways on one registry shared on PostgreSQL and one blob store
# (a shared data folder, or one upstream prefix), behind HAProxy running deploy/haproxy.cfg:
# every client talks to the balancer, which spreads its requests over the gateways, and the
# registry checks and maintenance commands read the shared log. Over http only (the balancer
# ends plain HTTP here). The PostgreSQL server is POSTGRES_URL's, or one of the run's own.
#
# Clients run one after the other, but for the retention client, which runs beside them: most
# of its time goes into waiting for retention dates and lifecycle days.
#
# --backend s3 runs the gateway on its S3 backend, in front of an upstream started on loopback by
# scripts/start-moto.sh or scripts/start-ceph-rgw.sh (--upstream, default moto), with a fresh
# upstream bucket per run. Both upstreams keep objects in memory or a bounded file, so the
# large-file cases use 64 MiB there unless LARGE_SIZE says otherwise (the streaming path is the
# same at any size; see docs/backends.md).
#
# Environment:
#   CONFORMANCE_BACKEND      fs|s3, same as --backend (default: fs)
#   CONFORMANCE_UPSTREAM     moto|rgw, same as --upstream (default: moto)
#   ARTIFACT_STORE_BIN       gateway binary (default: build this checkout's release binary)
#   CONFORMANCE_TARGET       gateway|moto, same as --target (default: gateway)
#   CONFORMANCE_TIER         full|core, same as --tier (default: full, core with --backend s3)
#   CONFORMANCE_GATEWAYS     same as --gateways (default: 1)
#   POSTGRES_URL             with --gateways: the PostgreSQL server to make the run's database on
#   CONFORMANCE_CLIENTS      same as --clients; default: all of
#                            boto3 awscli-v2 awscli-v1 rclone s3cmd minio js browser retention
#                            (browser: the web console in Chromium, against the gateway only)
#   CONFORMANCE_OUT          results, server and client logs (default: target/conformance)
#   CONFORMANCE_REPORT       markdown matrix (default: docs/compatibility.md for the gateway,
#                            $CONFORMANCE_OUT/compatibility-moto.md for moto)
#   QUICK=1                  small "large" files (64 MiB instead of 1 GiB) for local iteration
#   LARGE_SIZE               exact size in bytes of the large-file cases
#   READY_TIMEOUT            seconds to wait for the server's health check (default: 60)
#   CLIENT_TIMEOUT           seconds one client's scenario script may run (default: 1500)
#   ARTIFACT_STORE_TEST_VENV the venv from scripts/install-test-deps.sh
#   LIFECYCLE_DAY_SECONDS    length of a lifecycle day on the gateway (default: 2), so the
#                            retention client watches lifecycle rules act within seconds
#   RUST_TEST_LOG            output of `cargo test` covering the conformance crate, whose cells
#                            join the matrix as client "aws-sdk-s3 (Rust)"
#   RUST_SKIP_LOG            that run's CONFORMANCE_SKIP_LOG: its tests that passed without running
#                            their check count as skipped
#
# Prints "N passed, N failed, N skipped" last; exits 1 when any cell failed or nothing ran.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
scenarios="$root/conformance/scenarios"
venv="${ARTIFACT_STORE_TEST_VENV:-$HOME/.cache/artifact-store/venv}"
target="${CONFORMANCE_TARGET:-gateway}"
transports=""
tier="${CONFORMANCE_TIER:-}"
clients="${CONFORMANCE_CLIENTS:-boto3 awscli-v2 awscli-v1 rclone s3cmd minio js browser retention}"
backend="${CONFORMANCE_BACKEND:-fs}"
upstream="${CONFORMANCE_UPSTREAM:-moto}"
gateways="${CONFORMANCE_GATEWAYS:-1}"

while (($#)); do
    case "$1" in
        --target) target="$2"; shift 2 ;;
        --transport) transports="$2"; shift 2 ;;
        --clients) clients="$2"; shift 2 ;;
        --backend) backend="$2"; shift 2 ;;
        --upstream) upstream="$2"; shift 2 ;;
        --tier) tier="$2"; shift 2 ;;
        --gateways) gateways="$2"; shift 2 ;;
        -h | --help) sed -n '2,55p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
    esac
done
[[ -n "$tier" ]] || { [[ "$backend" == s3 ]] && tier=core || tier=full; }
case "$tier" in full | core) ;; *) echo "--tier must be full or core" >&2; exit 2 ;; esac
[[ -n "$transports" ]] || { [[ "$tier" == core ]] && transports=http || transports=both; }
[[ "$transports" != both ]] || transports="http https"
export CONFORMANCE_TIER="$tier"
case "$target" in gateway | moto) ;; *) echo "--target must be gateway or moto" >&2; exit 2 ;; esac
case "$backend" in fs | s3) ;; *) echo "--backend must be fs or s3" >&2; exit 2 ;; esac
case "$upstream" in moto | rgw) ;; *) echo "--upstream must be moto or rgw" >&2; exit 2 ;; esac
[[ "$backend" == fs || "$target" == gateway ]] || { echo "--backend s3 needs --target gateway" >&2; exit 2; }
[[ "$gateways" =~ ^[1-9]$ ]] || { echo "--gateways must be 1 to 9" >&2; exit 2; }
if ((gateways > 1)); then
    [[ "$target" == gateway ]] || { echo "--gateways needs --target gateway" >&2; exit 2; }
    [[ "$transports" == http ]] || { echo "--gateways runs over http only (--transport http)" >&2; exit 2; }
fi

out="${CONFORMANCE_OUT:-$root/target/conformance}"
if ((gateways > 1)); then
    report="${CONFORMANCE_REPORT:-$root/docs/compatibility-shared.md}"
elif [[ "$target" == gateway && "$backend" == s3 ]]; then
    report="${CONFORMANCE_REPORT:-$root/docs/compatibility-s3-$upstream.md}"
elif [[ "$target" == gateway ]]; then
    report="${CONFORMANCE_REPORT:-$root/docs/compatibility.md}"
else
    report="${CONFORMANCE_REPORT:-$out/compatibility-moto.md}"
fi
bin="${ARTIFACT_STORE_BIN:-}"
if [[ -z "$bin" && "$target" == gateway ]]; then
    # No binary handed over: build the release gateway from this checkout.
    (cd "$root" && cargo build --release --locked -p artifact-store-gateway >&2)
    bin="${CARGO_TARGET_DIR:-$root/target}/release/artifact-store"
fi
[[ -z "$bin" || "$bin" == /* ]] || bin="$root/$bin"

log() { printf '\n=== %s\n' "$*" >&2; }
die() { printf '\nERROR: %s\n' "$*" >&2; exit 2; }

# --- prerequisites -------------------------------------------------------------------------
python="$venv/bin/python"
if ! [[ -x "$python" && -x /usr/bin/aws && -d "$root/conformance/js/node_modules/@aws-sdk/client-s3" \
    && -d "$root/conformance/js/node_modules/playwright-core" && -x /usr/bin/chromium ]] \
    || ! command -v rclone >/dev/null || ! command -v s3cmd >/dev/null || ! command -v jq >/dev/null; then
    die "test clients missing: run scripts/install-test-deps.sh first"
fi
if [[ "$target" == gateway ]]; then
    [[ -x "$bin" ]] || die "gateway binary not found at $bin (build it, or set ARTIFACT_STORE_BIN)"
fi

mkdir -p "$out"
results="$out/results.jsonl"
: >"$results"
scratch="$(mktemp -d "${TMPDIR:-/tmp}/conformance.XXXXXX")"
# The processes serving the clients: the server, or the gateways and their balancer.
server_pids=()
background_pid=""

stop_server() {
    local pid
    for pid in "${server_pids[@]}"; do
        kill -0 "$pid" 2>/dev/null || continue
        kill "$pid" 2>/dev/null || true
        # A server that ignores SIGTERM for 10 s is killed.
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
        kill -9 "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    server_pids=()
}
stop_upstream=""
stop_postgres=""
shared_db=""
cleanup() {
    [[ -z "$background_pid" ]] || kill "$background_pid" 2>/dev/null || true
    stop_server
    [[ -z "$stop_upstream" ]] || "$stop_upstream" "${UPSTREAM_STATE_DIR:-}" >/dev/null 2>&1 || true
    [[ -z "$shared_db" ]] || psql -q "$POSTGRES_URL" -c "DROP DATABASE IF EXISTS $shared_db WITH (FORCE)" >/dev/null 2>&1 || true
    [[ -z "$stop_postgres" ]] || "$stop_postgres" "${POSTGRES_DIR:-}" >/dev/null 2>&1 || true
    rm -rf "$scratch"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Fixed test credentials for the root user; they never leave this machine.
access_key="CONFORMANCEROOTKEY01"
secret_key="conformance-secret-0123456789abcdefghijk"
# A second user, not allowed to bypass governance retention, for the retention client.
export LIMITED_ACCESS_KEY_ID="CONFORMANCELIMITED01" LIMITED_SECRET_ACCESS_KEY="conformance-limited-0123456789abcdefghi"
# Lifecycle days of a few seconds (as Ceph's rgw_lc_debug_interval), swept every second; the
# CLI's `retention plan` and `retention explain` read the same setting.
export LIFECYCLE_DAY_SECONDS="${LIFECYCLE_DAY_SECONDS:-2}"
export ARTIFACT_STORE_LIFECYCLE_DAY_SECONDS="$LIFECYCLE_DAY_SECONDS" ARTIFACT_STORE_LIFECYCLE_SWEEP_INTERVAL_SECONDS=1

# record CLIENT VERSION SCENARIO TRANSPORT RESULT DETAIL: a result line written by the runner itself.
record() {
    jq -cn --arg client "$1" --arg version "$2" --arg scenario "$3" --arg transport "$4" --arg result "$5" \
        --arg detail "${6:0:2000}" \
        '{client: $client, version: $version, scenario: $scenario, transport: $transport, result: $result, detail: $detail}' \
        >>"$results"
    echo "[$(tr '[:lower:]' '[:upper:]' <<<"$5")] $1 $2 $4 $3${6:+: ${6:0:300}}"
}

free_port() {
    "$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

server_version() {
    if [[ "$target" == gateway ]]; then
        "$bin" --version 2>/dev/null | awk '{print $NF}' || echo unknown
    else
        "$python" -c 'import moto; print(moto.__version__)'
    fi
}
server_name() { [[ "$target" == gateway ]] && echo artifact-store || echo moto; }
# What the matrix says was tested: the server and, for the gateway, where its bytes lived.
target_label() {
    if [[ "$target" != gateway ]]; then echo "moto $(server_version)"
    else
        local label="artifact-store $(server_version), fs backend"
        [[ "$backend" == fs ]] || label="artifact-store $(server_version), s3 backend in front of $upstream_label"
        ((gateways == 1)) || label="$label; $gateways gateways on one registry on PostgreSQL, behind HAProxy"
        echo "$label"
    fi
}

# The upstream of the S3 backend, started once for the whole run: the caller's, when its state
# folder is handed over (MOTO_DIR or CEPH_RGW_DIR, as scripts/test.sh does), else one of this
# run's own, stopped when the run ends.
if [[ "$backend" == s3 ]]; then
    case "$upstream" in
        moto) [[ -n "${MOTO_DIR:-}" ]] || stop_upstream="$root/scripts/stop-moto.sh"
              settings="$("$root/scripts/start-moto.sh")" || die "cannot start moto"
              upstream_label="moto $("$python" -c 'import moto; print(moto.__version__)')" ;;
        rgw) [[ -n "${CEPH_RGW_DIR:-}" ]] || stop_upstream="$root/scripts/stop-ceph-rgw.sh"
             settings="$("$root/scripts/start-ceph-rgw.sh")" || die "cannot start Ceph RGW"
             upstream_label="Ceph RGW $(radosgw --version 2>/dev/null | awk '{print $3}')" ;;
    esac
    eval "$settings"
    upstream_bucket="cf-upstream-$(head -c4 /dev/urandom | od -An -tx1 | tr -d ' \n')"
    AWS_ACCESS_KEY_ID="$UPSTREAM_ACCESS_KEY" AWS_SECRET_ACCESS_KEY="$UPSTREAM_SECRET_KEY" AWS_CA_BUNDLE= \
        AWS_DEFAULT_REGION="$UPSTREAM_REGION" /usr/bin/aws --endpoint-url "$UPSTREAM_ENDPOINT" \
        s3api create-bucket --bucket "$upstream_bucket" >/dev/null || die "cannot create the upstream bucket"
    export ARTIFACT_STORE_UPSTREAM_ACCESS_KEY="$UPSTREAM_ACCESS_KEY" ARTIFACT_STORE_UPSTREAM_SECRET_KEY="$UPSTREAM_SECRET_KEY"
    # The same settings for the maintenance commands the scenarios run on the gateway's data
    # folder (package seal and verify read and write blobs in the upstream too).
    export ARTIFACT_STORE_STORAGE_BACKEND=s3 ARTIFACT_STORE_UPSTREAM_ENDPOINT="$UPSTREAM_ENDPOINT" \
        ARTIFACT_STORE_UPSTREAM_BUCKET="$upstream_bucket" ARTIFACT_STORE_UPSTREAM_REGION="$UPSTREAM_REGION"
    [[ -n "${LARGE_SIZE:-}" ]] || LARGE_SIZE=$((64 * 1024 * 1024))
fi

# The shared registry of --gateways: a database of the run's own on POSTGRES_URL's server (or on
# a server the run starts), dropped when the run ends. The maintenance commands the scenarios
# run, and the registry checks, read it through the same variable.
if ((gateways > 1)); then
    command -v haproxy >/dev/null || die "haproxy missing: run scripts/install-test-deps.sh first"
    if [[ -z "${POSTGRES_URL:-}" ]]; then
        stop_postgres="$root/scripts/stop-postgres.sh"
        postgres_settings="$("$root/scripts/start-postgres.sh")" || die "cannot start PostgreSQL"
        eval "$postgres_settings"
    fi
    [[ "$POSTGRES_URL" =~ ^postgres(ql)?://[^/]+/[^/?]+$ ]] \
        || die "POSTGRES_URL must be postgres://USER@HOST:PORT/DATABASE, without options: $POSTGRES_URL"
    shared_db="conformance_$(head -c4 /dev/urandom | od -An -tx1 | tr -d ' \n')"
    psql -q -v ON_ERROR_STOP=1 "$POSTGRES_URL" -c "CREATE DATABASE $shared_db" >/dev/null \
        || die "cannot create a database on $POSTGRES_URL"
    export ARTIFACT_STORE_REGISTRY_URL="${POSTGRES_URL%/*}/$shared_db"
fi

# start_server TRANSPORT PORT DATA_DIR: starts the server in the background; adds it to
# server_pids.
start_server() {
    local transport="$1" port="$2" data="$3" tls=()
    if [[ "$transport" == https ]]; then
        openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=localhost \
            -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" \
            -keyout "$scratch/tls.key" -out "$scratch/tls.crt" 2>/dev/null
    fi
    if [[ "$target" == gateway ]]; then
        [[ "$transport" == http ]] || tls=(--tls-cert "$scratch/tls.crt" --tls-key "$scratch/tls.key")
        local storage=()
        if [[ "$backend" == s3 ]]; then
            # Each transport's gateway gets a prefix of its own in the run's upstream bucket.
            storage=(--backend s3 --upstream-endpoint "$UPSTREAM_ENDPOINT" --upstream-bucket "$upstream_bucket"
                --upstream-region "$UPSTREAM_REGION")
            export ARTIFACT_STORE_UPSTREAM_PREFIX="$transport/"
        fi
        printf '[[auth.users]]\naccess_key = "%s"\nsecret_key = "%s"\n' \
            "$LIMITED_ACCESS_KEY_ID" "$LIMITED_SECRET_ACCESS_KEY" >"$scratch/gateway.toml"
        ARTIFACT_STORE_ACCESS_KEY="$access_key" ARTIFACT_STORE_SECRET_KEY="$secret_key" \
            "$bin" serve --config "$scratch/gateway.toml" --listen "127.0.0.1:$port" --data-dir "$data" "${tls[@]}" \
                "${storage[@]}" \
            >"$out/server-$transport.log" 2>&1 &
    else
        [[ "$transport" == http ]] || tls=(--ssl-cert "$scratch/tls.crt" --ssl-key "$scratch/tls.key")
        "$venv/bin/moto_server" -H 127.0.0.1 -p "$port" "${tls[@]}" >"$out/server-$transport.log" 2>&1 &
    fi
    server_pids+=($!)
}

# start_shared PORT DATA_DIR: starts $gateways gateways on the run's shared registry and
# DATA_DIR (or the upstream prefix), and HAProxy in front of them on PORT, each in the
# background (server_pids); waits until every gateway is ready.
start_shared() {
    local port="$1" data="$2" n gateway_port balancer_env=()
    for n in $(seq "$gateways"); do
        gateway_port="$(free_port)"
        # The balancer connects from loopback: the gateways record and authorize each client
        # by the address it appends to X-Forwarded-For.
        ARTIFACT_STORE_SERVER_TRUSTED_PROXIES=127.0.0.1 start_server http "$gateway_port" "$data"
        mv "$out/server-http.log" "$out/server-http-$n.log"
        wait_ready "http://127.0.0.1:$gateway_port" http "$out/server-http-$n.log" || return 1
        balancer_env+=("GATEWAY_$n=127.0.0.1:$gateway_port")
    done
    env LISTEN="127.0.0.1:$port" "${balancer_env[@]}" haproxy -db -f "$root/deploy/haproxy.cfg" \
        >"$out/haproxy.log" 2>&1 &
    server_pids+=($!)
}

# wait_ready URL TRANSPORT [LOG]: polls the health check; a dead server or the timeout fails
# loudly with its log (by default the server's, server-TRANSPORT.log).
wait_ready() {
    local url="$1" transport="$2" log_file="${3:-$out/server-$2.log}" deadline=$((SECONDS + ${READY_TIMEOUT:-60})) health
    [[ "$target" == gateway ]] && health="$url/_health" || health="$url/moto-api/"
    local curl_args=(-fsS -o /dev/null --max-time 2)
    [[ "$transport" == http ]] || curl_args+=(--cacert "$scratch/tls.crt")
    while ! curl "${curl_args[@]}" "$health" 2>/dev/null; do
        if ! kill -0 "${server_pids[-1]}" 2>/dev/null; then
            echo "server exited before it was ready; last lines of $log_file:" >&2
            tail -n 30 "$log_file" >&2
            return 1
        fi
        if ((SECONDS >= deadline)); then
            echo "TIMEOUT: $health did not answer 200 within ${READY_TIMEOUT:-60}s; last lines of $log_file:" >&2
            tail -n 30 "$log_file" >&2
            return 1
        fi
        sleep 0.2
    done
}

# Each client's script writes its results into a file of its own, merged into $results once it
# has ended: a client in the background cannot mix its lines, or its failures, into another's.
client_results() { echo "$out/results-$1-$2.jsonl"; }

# run_client NAME TRANSPORT COMMAND...: runs one client's scenario script, its output shown as it
# comes.
run_client() {
    local name="$1" transport="$2" status=0
    shift 2
    log "$name over $transport"
    : >"$(client_results "$name" "$transport")"
    RESULTS_FILE="$(client_results "$name" "$transport")" timeout --kill-after=10 "${CLIENT_TIMEOUT:-1500}" "$@" 2>&1 \
        | tee "$out/$name-$transport.log" || status=$?
    collect_client "$name" "$transport" "$status"
}

# start_background_client NAME TRANSPORT COMMAND...: runs one client's scenario script beside the
# others (sets background_pid); finish_background_client shows its output and collects it. For
# a client that spends most of its time waiting for the server's clocks (the retention client
# waits for lifecycle days), which the other clients' work can overlap.
start_background_client() {
    local name="$1" transport="$2"
    shift 2
    log "$name over $transport, beside the other clients (its output follows when it ends)"
    : >"$(client_results "$name" "$transport")"
    RESULTS_FILE="$(client_results "$name" "$transport")" timeout --kill-after=10 "${CLIENT_TIMEOUT:-1500}" "$@" \
        >"$out/$name-$transport.log" 2>&1 &
    background_pid=$!
}

finish_background_client() {
    local name="$1" transport="$2" status=0
    wait "$background_pid" || status=$?
    background_pid=""
    log "$name over $transport (ran beside the other clients)"
    cat "$out/$name-$transport.log"
    collect_client "$name" "$transport" "$status"
}

# collect_client NAME TRANSPORT STATUS: merges a client's results; a script that died, or timed
# out, without reporting a failure itself gets a failure line of its own.
collect_client() {
    local name="$1" transport="$2" status="$3" own reported failed_lines
    own="$(client_results "$name" "$transport")"
    reported="$(wc -l <"$own")"
    failed_lines="$(jq -s 'map(select(.result == "fail")) | length' "$own")"
    cat "$own" >>"$results"
    if ((status == 124 || status == 137)); then
        record "$name" "" "script" "$transport" fail "timed out after ${CLIENT_TIMEOUT:-1500}s"
    elif ((status != 0 && failed_lines == 0)); then
        record "$name" "" "script" "$transport" fail "exited $status after $reported results; see $out/$name-$transport.log"
    elif ((reported == 0)); then
        record "$name" "" "script" "$transport" fail "reported no result"
    fi
}

large_size() {
    if [[ -n "${LARGE_SIZE:-}" ]]; then echo "$LARGE_SIZE"
    elif [[ "${QUICK:-}" == 1 ]]; then echo $((64 * 1024 * 1024))
    else echo $((1024 * 1024 * 1024)); fi
}

# --- run ----------------------------------------------------------------------------------------
export LARGE_SIZE
LARGE_SIZE="$(large_size)"
export LARGE_FILE="$scratch/large.bin"
log "generating the shared $((LARGE_SIZE / 1024 / 1024)) MiB test file"
head -c "$LARGE_SIZE" /dev/urandom >"$LARGE_FILE"

# Only what the runner sets reaches the clients: no profile, session or endpoint of the caller's.
unset AWS_PROFILE AWS_SESSION_TOKEN AWS_ENDPOINT_URL AWS_ENDPOINT_URL_S3 AWS_CONFIG_FILE AWS_SHARED_CREDENTIALS_FILE
export AWS_ACCESS_KEY_ID="$access_key" AWS_SECRET_ACCESS_KEY="$secret_key"
export AWS_DEFAULT_REGION=us-east-1 AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true
export RESULTS_FILE="$results" PYTHON="$python" WORK_DIR="$scratch" PYTHONDONTWRITEBYTECODE=1
export AWS_SDK_JS_SUPPRESS_MAINTENANCE_MODE_MESSAGE=1 NODE_NO_WARNINGS=1

for transport in $transports; do
    port="$(free_port)"
    data="$(mktemp -d "$scratch/data-$transport.XXXXXX")"
    url="$transport://127.0.0.1:$port"
    if ((gateways > 1)); then
        log "starting $gateways gateways on $ARTIFACT_STORE_REGISTRY_URL behind HAProxy on $url (data: $data)"
        if ! start_shared "$port" "$data"; then
            record "$(server_name)" "$(server_version)" "server-ready" "$transport" fail \
                "a gateway did not become ready; see $out/server-http-*.log"
            stop_server
            continue
        fi
    else
        log "starting $(server_name) on $url (data: $data)"
        start_server "$transport" "$port" "$data"
    fi
    ready_log="$out/server-$transport.log"
    ((gateways == 1)) || ready_log="$out/haproxy.log"
    if ! wait_ready "$url" "$transport" "$ready_log"; then
        record "$(server_name)" "$(server_version)" "server-ready" "$transport" fail "no 200 from the health check; see $ready_log"
        stop_server
        continue
    fi
    export ENDPOINT_URL="$url" TRANSPORT="$transport"
    BUCKET_PREFIX="cf-${transport:0:5}-$(head -c3 /dev/urandom | od -An -tx1 | tr -d ' \n')-"
    export BUCKET_PREFIX
    if [[ "$transport" == https ]]; then export AWS_CA_BUNDLE="$scratch/tls.crt"; else unset AWS_CA_BUNDLE; fi
    if [[ "$target" == gateway ]]; then export DATA_DIR="$data" ARTIFACT_STORE_BIN="$bin"; else unset DATA_DIR ARTIFACT_STORE_BIN; fi

    # The retention client first, beside the others: most of its time is spent waiting.
    if [[ " $clients " == *" retention "* ]]; then
        if [[ "$target" == gateway ]]; then
            AWS_BIN=/usr/bin/aws ARTIFACT_STORE_BIN="$bin" \
                start_background_client retention "$transport" bash "$scenarios/retention.sh"
        else
            # Against moto there is no second user to refuse a bypass and no short lifecycle
            # day: those scenarios report that they had nothing to check.
            AWS_BIN=/usr/bin/aws LIMITED_ACCESS_KEY_ID="" LIFECYCLE_DAY_SECONDS=86400 \
                start_background_client retention "$transport" bash "$scenarios/retention.sh"
        fi
    fi
    for client in $clients; do
        case "$client" in
            boto3) run_client boto3 "$transport" "$python" "$scenarios/boto3_scenarios.py" ;;
            awscli-v2) AWS_BIN=/usr/bin/aws run_client awscli-v2 "$transport" bash "$scenarios/awscli.sh" ;;
            awscli-v1) AWS_BIN="$venv/bin/aws" run_client awscli-v1 "$transport" bash "$scenarios/awscli.sh" ;;
            rclone) run_client rclone "$transport" bash "$scenarios/rclone.sh" ;;
            s3cmd) run_client s3cmd "$transport" bash "$scenarios/s3cmd.sh" ;;
            minio) run_client minio "$transport" "$python" "$scenarios/minio_scenarios.py" ;;
            js) run_client js "$transport" node "$root/conformance/js/scenarios.mjs" ;;
            browser)
                # The console is the gateway's own: nothing to drive on moto.
                if [[ "$target" == gateway ]]; then
                    PYTHON="$python" AWS_BIN=/usr/bin/aws run_client browser "$transport" node "$root/conformance/js/console.mjs"
                fi
                ;;
            retention) ;;
            *) die "unknown client $client" ;;
        esac
    done
    [[ -z "$background_pid" ]] || finish_background_client retention "$transport"

    if [[ "$target" == gateway ]]; then
        log "artifact-store verify --data-dir (while serving)"
        if verify_out="$("$bin" verify --data-dir "$data" 2>&1)"; then
            record artifact-store "$(server_version)" registry-verify "$transport" pass ""
        else
            record artifact-store "$(server_version)" registry-verify "$transport" fail "$(tail -c 1500 <<<"$verify_out")"
        fi
    fi
    stop_server
done

# The Rust tier (aws-sdk-s3 and hand-signed requests) runs under cargo test; when its output
# is handed over, its cells join the matrix.
if [[ -n "${RUST_TEST_LOG:-}" ]]; then
    log "aws-sdk-s3 (Rust) results from $RUST_TEST_LOG"
    "$python" "$root/conformance/rust_results.py" --log "$RUST_TEST_LOG" --lock "$root/Cargo.lock" \
        ${RUST_SKIP_LOG:+--skips "$RUST_SKIP_LOG"} >>"$results" \
        || record "aws-sdk-s3 (Rust)" unknown cargo-test all fail "no results in $RUST_TEST_LOG"
fi

mkdir -p "$(dirname "$report")"
"$python" "$root/conformance/report.py" --results "$results" --target "$(target_label)" --tier "$tier" >"$report"
log "matrix written to $report; logs in $out"
passed="$(jq -s 'map(select(.result == "pass")) | length' "$results")"
failed="$(jq -s 'map(select(.result == "fail")) | length' "$results")"
skipped="$(jq -s 'map(select(.result == "skip")) | length' "$results")"
jq -r 'select(.result == "skip") | "SKIPPED: \(.client) \(.version) \(.transport) \(.scenario): \(.detail[0:200])"' "$results"
jq -r 'select(.result == "fail") | "FAILED: \(.client) \(.version) \(.transport) \(.scenario): \(.detail[0:200])"' "$results"
echo "conformance: $passed passed, $failed failed, $skipped skipped"
((failed == 0 && passed > 0))
