#!/usr/bin/env bash
# Starts a single-node Ceph cluster with a RADOS Gateway on loopback, as the upstream of the
# gateway's S3 backend in tests and benchmarks: one monitor, one OSD (bluestore on a sparse
# file by default, or memstore), one radosgw (beast) and one S3 user. Installs Debian's Ceph
# packages first when they are missing (about 40 s). Every start is a cluster of its own, in a
# fresh state folder on free ports, so two runs on one machine never share one. Idempotent
# within one folder: when the daemons recorded in $CEPH_RGW_DIR/pids are alive and the S3 port
# answers, it only prints the settings again; otherwise it stops what that file lists and builds
# a fresh cluster there (about 20 s).
#
#   scripts/start-ceph-rgw.sh        prints KEY=VALUE lines (endpoint, credentials, state folder)
#   scripts/stop-ceph-rgw.sh DIR     stops the daemons and deletes the state folder (DIR: the
#                                    UPSTREAM_STATE_DIR printed, or CEPH_RGW_DIR)
#
#   CEPH_RGW_DIR   state folder                          (default: a new folder under ${TMPDIR:-/tmp})
#   RGW_PORT       S3 port on 127.0.0.1                  (default: a free one)
#   MON_PORT       monitor msgr2 port (msgr1 is +1)      (default: a free pair)
#   OSD_BACKEND    bluestore | memstore                  (default bluestore: memstore keeps
#                                                         every object in RAM)
#   OSD_SIZE_GB    bluestore file / memstore capacity    (default 16; the file is sparse)
set -euo pipefail

dir="${CEPH_RGW_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/artifact-store-rgw.XXXXXX")}"
free_port="$(dirname "${BASH_SOURCE[0]}")/free-port.sh"
# The ports of the cluster already in this folder (a rebuild there keeps them), or new ones.
if [[ -s "$dir/ports" ]]; then
    read -r rgw_port mon_port <"$dir/ports"
else
    rgw_port="${RGW_PORT:-$("$free_port")}"
    mon_port="${MON_PORT:-$("$free_port" --pair)}"
fi
osd_backend="${OSD_BACKEND:-bluestore}"
size_gb="${OSD_SIZE_GB:-16}"
endpoint="http://127.0.0.1:$rgw_port"
conf="$dir/ceph.conf"
pids="$dir/pids"
# Test-only keys of the S3 user; they never leave this machine.
access_key="artifactstorergw00001"
secret_key="artifactstorergwsecret000000000000000001"

log() { printf '[start-ceph-rgw] %s\n' "$*" >&2; }
print_settings() {
    cat <<EOT
UPSTREAM_ENDPOINT=$endpoint
UPSTREAM_ACCESS_KEY=$access_key
UPSTREAM_SECRET_KEY=$secret_key
UPSTREAM_REGION=default
UPSTREAM_STATE_DIR=$dir
EOT
}
s3_up() { curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$endpoint/" 2>/dev/null | grep -qE '^(200|403)$'; }
all_alive() {
    [[ -s "$pids" ]] || return 1
    local name pid
    while read -r name pid; do kill -0 "$pid" 2>/dev/null || return 1; done <"$pids"
}

# --- packages ------------------------------------------------------------------------------
"$(dirname "${BASH_SOURCE[0]}")/apt-install.sh" ceph-mon ceph-osd radosgw ceph-common uuid-runtime >&2

if all_alive && s3_up; then
    print_settings
    exit 0
fi
if [[ -s "$pids" ]]; then CEPH_RGW_KEEP=1 "$(dirname "${BASH_SOURCE[0]}")/stop-ceph-rgw.sh" "$dir" >/dev/null 2>&1 || true; fi
find "$dir" -mindepth 1 -delete 2>/dev/null || true
mkdir -p "$dir"/{run,log,mon.a,osd.0,rgw}
echo "$rgw_port $mon_port" >"$dir/ports"

fsid="$(uuidgen)"
mon_addr="[v2:127.0.0.1:$mon_port,v1:127.0.0.1:$((mon_port + 1))]"
cat >"$conf" <<EOT
[global]
fsid = $fsid
mon host = $mon_addr
public addr = 127.0.0.1
cluster addr = 127.0.0.1
keyring = $dir/keyring
run dir = $dir/run
admin socket = $dir/run/\$name.asok
pid file = $dir/run/\$name.pid
log file = $dir/log/\$name.log
auth cluster required = cephx
auth service required = cephx
auth client required = cephx
# One OSD: one copy of everything, small placement groups, no health warnings about it.
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon warn on pool no redundancy = false
mon max pg per osd = 1000
mon data avail warn = 2
mon data avail crit = 1
mon warn on insecure global id reclaim allowed = false

[mon.a]
mon data = $dir/mon.a

[osd.0]
osd data = $dir/osd.0
osd objectstore = $osd_backend
memstore device bytes = $((size_gb * 1024 * 1024 * 1024))
bluestore block path = $dir/osd.0.block
bluestore block create = true
bluestore block size = $((size_gb * 1024 * 1024 * 1024))
bluestore block db create = false
bluestore block wal create = false
osd memory target = 939524096
bluestore cache autotune = false
bluestore cache size = 134217728

[client.rgw.gw]
rgw data = $dir/rgw
rgw frontends = beast endpoint=127.0.0.1:$rgw_port
rgw dns name = localhost
rgw thread pool size = 64
rgw enable usage log = false
# Deleted objects' space comes back within a minute instead of hours: tests and benchmarks
# write and delete far more than the OSD file holds.
rgw gc obj min wait = 30
rgw gc processor period = 30
EOT

keyring="$dir/keyring"
ceph-authtool --create-keyring "$keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
ceph-authtool "$keyring" --gen-key -n client.admin --cap mon 'allow *' --cap osd 'allow *' --cap mgr 'allow *' >/dev/null
ceph-authtool "$keyring" --gen-key -n osd.0 --cap mon 'allow profile osd' --cap osd 'allow *' --cap mgr 'allow profile osd' >/dev/null
ceph-authtool "$keyring" --gen-key -n client.rgw.gw --cap mon 'allow rw' --cap osd 'allow rwx' --cap mgr 'allow rw' >/dev/null
monmaptool --create --fsid "$fsid" --addv a "$mon_addr" "$dir/monmap" >/dev/null
ceph-mon -c "$conf" --mkfs -i a --monmap "$dir/monmap" --keyring "$keyring"

start_daemon() { # NAME COMMAND...: runs in the foreground mode (-f) in a session of its own
    local name="$1"
    shift
    setsid "$@" -f </dev/null >"$dir/log/$name.out" 2>&1 &
    echo "$name $!" >>"$pids"
}
wait_for() { # WHAT TRIES COMMAND...
    local what="$1" tries="$2"
    shift 2
    for _ in $(seq "$tries"); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
    log "$what did not come up; logs in $dir/log"
    exit 1
}
ceph_() { ceph -c "$conf" --connect-timeout 2 "$@"; }

start_daemon mon.a ceph-mon -c "$conf" -i a
wait_for monitor 100 ceph_ -s

osd_uuid="$(uuidgen)"
echo "{\"cephx_secret\": \"$(ceph-authtool "$keyring" -p -n osd.0)\"}" >"$dir/osd.0/new.json"
ceph_ osd new "$osd_uuid" 0 -i "$dir/osd.0/new.json" >/dev/null
ceph-osd -c "$conf" -i 0 --mkfs --osd-uuid "$osd_uuid" >"$dir/log/osd.0.mkfs" 2>&1 || { cat "$dir/log/osd.0.mkfs" >&2; exit 1; }
start_daemon osd.0 ceph-osd -c "$conf" -i 0
osd_up() { ceph_ osd stat -f json | grep -q '"num_up_osds":1'; }
wait_for osd 150 osd_up

start_daemon rgw.gw radosgw -c "$conf" -n client.rgw.gw
wait_for radosgw 300 s3_up
radosgw-admin -c "$conf" user create --uid=artifact-store --display-name=artifact-store \
    --access-key="$access_key" --secret-key="$secret_key" >/dev/null
log "radosgw ready on $endpoint ($osd_backend)"
print_settings
