#!/usr/bin/env bash
# Stops the daemons scripts/start-ceph-rgw.sh recorded, newest first, by pid only.
# CEPH_RGW_WIPE=1 also deletes the state folder (and the bluestore file with it).
set -u
dir="${CEPH_RGW_DIR:-/tmp/artifact-store-rgw}"
pids="$dir/pids"
if [[ -s "$pids" ]]; then
    tac "$pids" | while read -r name pid; do
        kill -0 "$pid" 2>/dev/null || continue
        kill -TERM "$pid" 2>/dev/null
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
        echo "stopped $name ($pid)"
    done
    : >"$pids"
fi
[[ "${CEPH_RGW_WIPE:-0}" != 1 ]] || rm -rf "$dir"
