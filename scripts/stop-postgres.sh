#!/usr/bin/env bash
# Stops the PostgreSQL server that scripts/start-postgres.sh started in one folder and deletes
# that folder.
#
#   scripts/stop-postgres.sh [DIR]          DIR: the POSTGRES_DIR start-postgres.sh printed
#   scripts/stop-postgres.sh --keep DIR     stops the server only; start-postgres.sh with
#                                           POSTGRES_DIR=DIR starts it again on the same port
set -u
keep=0
if [[ "${1:-}" == --keep ]]; then keep=1; shift; fi
bin="${POSTGRES_BIN:-/usr/lib/postgresql/15/bin}"
dir="${1:-${POSTGRES_DIR:-}}"
[[ -n "$dir" ]] || { echo "usage: scripts/stop-postgres.sh DIR (or POSTGRES_DIR=DIR)" >&2; exit 2; }
# As root, the cluster lives in a folder `postgres` owns, named in $dir/cluster-path.
cluster="$dir/cluster"
[[ ! -s "$dir/cluster-path" ]] || cluster="$(cat "$dir/cluster-path")"
if [[ -s "$cluster/postmaster.pid" ]]; then
    if [[ "$(id -u)" == 0 ]]; then
        runuser -u postgres -- "$bin/pg_ctl" -D "$cluster" -m immediate -w stop >/dev/null 2>&1
    else
        "$bin/pg_ctl" -D "$cluster" -m immediate -w stop >/dev/null 2>&1
    fi
fi
if [[ "$keep" != 1 ]]; then
    [[ ! -s "$dir/cluster-path" ]] || rm -rf "$(dirname "$cluster")"
    rm -rf "$dir"
fi
