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
if [[ -s "$dir/cluster/postmaster.pid" ]]; then
    if [[ "$(id -u)" == 0 ]]; then
        runuser -u postgres -- "$bin/pg_ctl" -D "$dir/cluster" -m immediate -w stop >/dev/null 2>&1
    else
        "$bin/pg_ctl" -D "$dir/cluster" -m immediate -w stop >/dev/null 2>&1
    fi
fi
[[ "$keep" == 1 ]] || rm -rf "$dir"
