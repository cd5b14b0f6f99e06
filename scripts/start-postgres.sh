#!/usr/bin/env bash
# Starts a PostgreSQL server (Debian's postgresql-15) for the registry's PostgreSQL engine in
# tests: a cluster of its own, initialised into a fresh folder, on a free loopback port, with a
# database and a role for the registry. Nothing is shared with another run on the same machine.
# Idempotent within one folder: when the server recorded in $POSTGRES_DIR still answers, it only
# prints the settings again.
#
#   scripts/start-postgres.sh      prints KEY=VALUE lines (POSTGRES_URL, POSTGRES_DIR)
#   scripts/stop-postgres.sh DIR   stops it and deletes DIR
#
#   POSTGRES_DIR                   cluster folder (default: a new folder under ${TMPDIR:-/tmp})
#   POSTGRES_PORT                  port on 127.0.0.1 (default: a free one)
#   POSTGRES_BIN                   PostgreSQL's programs (default: /usr/lib/postgresql/15/bin)
#
# The server trusts loopback connections: it holds test data only and listens on 127.0.0.1.
# PostgreSQL refuses to run as root, so as root the cluster belongs to the `postgres` user.
set -euo pipefail
bin="${POSTGRES_BIN:-/usr/lib/postgresql/15/bin}"
dir="${POSTGRES_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/artifact-store-postgres.XXXXXX")}"
[[ -x "$bin/initdb" ]] || { echo "PostgreSQL missing at $bin: run scripts/install-test-deps.sh" >&2; exit 2; }
mkdir -p "$dir"
if [[ -s "$dir/port" ]]; then
    port="$(cat "$dir/port")"
else
    port="${POSTGRES_PORT:-$("$(dirname "${BASH_SOURCE[0]}")/free-port.sh")}"
fi
url="postgres://artifact_store@127.0.0.1:$port/artifact_store"

as_owner() {
    if [[ "$(id -u)" == 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}
up() { as_owner "$bin/pg_isready" -q -h 127.0.0.1 -p "$port" 2>/dev/null; }
print_settings() {
    echo "POSTGRES_URL=$url"
    echo "POSTGRES_DIR=$dir"
}

if [[ -s "$dir/port" ]] && up; then
    print_settings
    exit 0
fi
echo "$port" >"$dir/port"
# The cluster's folder. As root, `postgres` may not reach into $dir (a private temp folder of
# the run): the cluster then lives in a folder of its own that `postgres` owns, named in
# $dir/cluster-path so that scripts/stop-postgres.sh removes it too.
if [[ "$(id -u)" != 0 ]]; then
    cluster="$dir/cluster"
elif [[ -s "$dir/cluster-path" ]]; then
    cluster="$(cat "$dir/cluster-path")"
else
    cluster="$(runuser -u postgres -- mktemp -d "/tmp/artifact-store-pgcluster.XXXXXX")/cluster"
    echo "$cluster" >"$dir/cluster-path"
fi
if [[ ! -s "$cluster/PG_VERSION" ]]; then
    as_owner "$bin/initdb" -D "$cluster" -U postgres --auth=trust --encoding=UTF8 --locale=C >"$dir/initdb.log" 2>&1 ||
        { cat "$dir/initdb.log" >&2; exit 1; }
fi
# The socket goes into the cluster's folder, not /run/postgresql (root-owned, shared).
as_owner "$bin/pg_ctl" -D "$cluster" -l "$cluster/server.log" -w -t 60 \
    -o "-h 127.0.0.1 -p $port -k $cluster -c max_connections=200 -c fsync=on" start >/dev/null ||
    { tail -20 "$cluster/server.log" >&2; exit 1; }
as_owner "$bin/psql" -q -h 127.0.0.1 -p "$port" -U postgres -d postgres -v ON_ERROR_STOP=1 >/dev/null <<'SQL'
SELECT 'CREATE ROLE artifact_store LOGIN CREATEDB' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'artifact_store')\gexec
SELECT 'CREATE DATABASE artifact_store OWNER artifact_store' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'artifact_store')\gexec
-- The tests drop their databases WITH (FORCE), which must end every backend connected to
-- them, an autovacuum worker's included: without this, a drop that meets one fails with
-- "must be a member of the role whose process is being terminated or member of
-- pg_signal_backend" (seen in a CI run). Still not a superuser.
GRANT pg_signal_backend TO artifact_store;
SQL
print_settings
