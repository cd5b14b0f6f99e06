#!/usr/bin/env bash
# Starts a moto server (the AWS S3 stand-in: current checksum and aws-chunked behaviour) on
# loopback, as the upstream of the gateway's S3 backend in tests. Every start is a server of its
# own, in a fresh state folder on a free port, so two runs on one machine never share one.
# Idempotent within one folder: when the server recorded in $MOTO_DIR/pid still answers, it only
# prints the settings again (a run that starts moto once and hands MOTO_DIR to its parts).
#
#   scripts/start-moto.sh      prints KEY=VALUE lines (endpoint, credentials, state folder)
#   scripts/stop-moto.sh DIR   stops it (DIR: the UPSTREAM_STATE_DIR printed, or MOTO_DIR)
#
#   MOTO_DIR                   state folder (default: a new folder under ${TMPDIR:-/tmp})
#   MOTO_PORT                  port on 127.0.0.1 (default: a free one)
#   ARTIFACT_STORE_TEST_VENV   venv with moto[server] (scripts/install-test-deps.sh)
#
# moto keeps every object in memory: keep the objects written through it small.
set -euo pipefail
dir="${MOTO_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/artifact-store-moto.XXXXXX")}"
venv="${ARTIFACT_STORE_TEST_VENV:-$HOME/.cache/artifact-store/venv}"
if [[ -s "$dir/port" ]]; then
    port="$(cat "$dir/port")"
else
    port="${MOTO_PORT:-$("$(dirname "${BASH_SOURCE[0]}")/free-port.sh")}"
fi
endpoint="http://127.0.0.1:$port"

print_settings() {
    # moto accepts any credentials; these are fixed so that scripts can sign consistently.
    cat <<EOT
UPSTREAM_ENDPOINT=$endpoint
UPSTREAM_ACCESS_KEY=motoaccesskey0000001
UPSTREAM_SECRET_KEY=motosecretkey00000000000000000000000001
UPSTREAM_REGION=us-east-1
UPSTREAM_STATE_DIR=$dir
EOT
}
up() { curl -fsS -o /dev/null --max-time 2 "$endpoint/moto-api/" 2>/dev/null; }

[[ -x "$venv/bin/moto_server" ]] || { echo "moto_server missing: run scripts/install-test-deps.sh" >&2; exit 2; }
if [[ -s "$dir/pid" ]] && kill -0 "$(cat "$dir/pid")" 2>/dev/null && up; then
    print_settings
    exit 0
fi
mkdir -p "$dir"
echo "$port" >"$dir/port"
setsid "$venv/bin/moto_server" -H 127.0.0.1 -p "$port" </dev/null >"$dir/server.log" 2>&1 &
echo $! >"$dir/pid"
for _ in $(seq 100); do up && break; sleep 0.1; done
up || { echo "moto did not answer on $endpoint; see $dir/server.log" >&2; tail -20 "$dir/server.log" >&2; exit 1; }
print_settings
