#!/usr/bin/env bash
# Stops the daemons scripts/start-ceph-rgw.sh recorded in one state folder, newest first, by pid
# only, and deletes that folder (and the bluestore file with it); CEPH_RGW_KEEP=1 keeps it, to
# read the daemons' logs.
#
#   scripts/stop-ceph-rgw.sh [DIR]   DIR: the UPSTREAM_STATE_DIR start-ceph-rgw.sh printed
#                                    (default: CEPH_RGW_DIR)
set -u
dir="${1:-${CEPH_RGW_DIR:-}}"
[[ -n "$dir" ]] || { echo "usage: scripts/stop-ceph-rgw.sh DIR (or CEPH_RGW_DIR=DIR)" >&2; exit 2; }
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
[[ "${CEPH_RGW_KEEP:-0}" == 1 ]] || rm -rf "$dir"
