#!/usr/bin/env bash
# Starts a moto server (the AWS S3 stand-in: current checksum and aws-chunked behaviour) on
# loopback, as the upstream of the gateway's S3 backend in tests. Idempotent: when the server
# recorded in $MOTO_DIR/pid still answers, it only prints the settings again.
#
#   scripts/start-moto.sh      prints KEY=VALUE lines (endpoint, credentials) on stdout
#   scripts/stop-moto.sh       stops it
#
#   MOTO_DIR                   state folder (default /tmp/artifact-store-moto)
#   MOTO_PORT                  port on 127.0.0.1 (default 7490)
#   ARTIFACT_STORE_TEST_VENV   venv with moto[server] (scripts/install-test-deps.sh)
#
# moto keeps every object in memory: keep the objects written through it small.
set -euo pipefail
dir="${MOTO_DIR:-/tmp/artifact-store-moto}"
port="${MOTO_PORT:-7490}"
venv="${ARTIFACT_STORE_TEST_VENV:-$HOME/.cache/artifact-store/venv}"
endpoint="http://127.0.0.1:$port"

print_settings() {
    # moto accepts any credentials; these are fixed so that scripts can sign consistently.
    cat <<EOT
UPSTREAM_ENDPOINT=$endpoint
UPSTREAM_ACCESS_KEY=motoaccesskey0000001
UPSTREAM_SECRET_KEY=motosecretkey00000000000000000000000001
UPSTREAM_REGION=us-east-1
EOT
}
up() { curl -fsS -o /dev/null --max-time 2 "$endpoint/moto-api/" 2>/dev/null; }

[[ -x "$venv/bin/moto_server" ]] || { echo "moto_server missing: run scripts/install-test-deps.sh" >&2; exit 2; }
if [[ -s "$dir/pid" ]] && kill -0 "$(cat "$dir/pid")" 2>/dev/null && up; then
    print_settings
    exit 0
fi
mkdir -p "$dir"
setsid "$venv/bin/moto_server" -H 127.0.0.1 -p "$port" </dev/null >"$dir/server.log" 2>&1 &
echo $! >"$dir/pid"
for _ in $(seq 100); do up && break; sleep 0.1; done
up || { echo "moto did not answer on $endpoint; see $dir/server.log" >&2; tail -20 "$dir/server.log" >&2; exit 1; }
print_settings
