#!/usr/bin/env bash
# Stops the moto server that scripts/start-moto.sh started in one state folder (by its recorded
# pid only) and deletes that folder.
#
#   scripts/stop-moto.sh [DIR]   DIR: the UPSTREAM_STATE_DIR start-moto.sh printed (default: MOTO_DIR)
set -u
dir="${1:-${MOTO_DIR:-}}"
[[ -n "$dir" ]] || { echo "usage: scripts/stop-moto.sh DIR (or MOTO_DIR=DIR)" >&2; exit 2; }
if [[ -s "$dir/pid" ]]; then
    pid="$(cat "$dir/pid")"
    if kill -0 "$pid" 2>/dev/null; then
        kill "$pid"
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null || true
    fi
fi
rm -rf "$dir"
