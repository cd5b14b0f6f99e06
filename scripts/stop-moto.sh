#!/usr/bin/env bash
# Stops the moto server that scripts/start-moto.sh started (by its recorded pid only).
set -u
dir="${MOTO_DIR:-/tmp/artifact-store-moto}"
[[ -s "$dir/pid" ]] || exit 0
pid="$(cat "$dir/pid")"
if kill -0 "$pid" 2>/dev/null; then
    kill "$pid"
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
fi
: >"$dir/pid"
