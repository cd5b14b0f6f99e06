#!/usr/bin/env bash
# s3cmd scenarios against any S3 endpoint (environment: see lib.sh). SigV4, path-style.
set -uo pipefail
# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CLIENT="s3cmd"
VERSION="$(s3cmd --version 2>/dev/null | awk '{print $3}')"
[[ -n "$VERSION" ]] || { echo "cannot run s3cmd" >&2; exit 2; }

hostport="${ENDPOINT_URL#*://}"
hostport="${hostport%%/*}"
use_https=False
[[ "$ENDPOINT_URL" != https://* ]] || use_https=True
cfg="$WORK/s3cfg"
# The config holds the secret, so it lives in the private scratch folder only.
umask 077
cat >"$cfg" <<EOF
[default]
access_key = $AWS_ACCESS_KEY_ID
secret_key = $AWS_SECRET_ACCESS_KEY
host_base = $hostport
host_bucket = $hostport
bucket_location = $AWS_DEFAULT_REGION
use_https = $use_https
check_ssl_certificate = True
ca_certs_file = ${AWS_CA_BUNDLE:-}
signature_v2 = False
progress_meter = False
EOF
umask 022
s3c() { s3cmd -c "$cfg" "$@"; }

B="$(bucket_name s3cmd)"
S="s3://$B"

make_bucket() {
    s3c mb "$S"
    grep -q "$S\$" <<<"$(s3c ls)" || fail "bucket not listed"
    expect_events "$B" "" "" v1.bucket.created
}

put_get() {
    random_file "$WORK/small" 1000
    random_file "$WORK/multi" $((12 * MIB))
    s3c put "$WORK/small" "$S/obj/small"
    s3c put --multipart-chunk-size-mb=5 "$WORK/multi" "$S/obj/multi"
    s3c get "$S/obj/small" "$WORK/small.down"
    s3c get "$S/obj/multi" "$WORK/multi.down"
    assert_same_file "$WORK/small" "$WORK/small.down"
    assert_same_file "$WORK/multi" "$WORK/multi.down"
    grep -q "MD5 sum: *$(md5sum "$WORK/small" | cut -d' ' -f1)" <<<"$(s3c info "$S/obj/small")" || fail "info: wrong MD5"
    expect_events "$B" obj/small "$WORK/small" v1.object.put v1.object.retrieved
    expect_events "$B" obj/multi "$WORK/multi" v1.multipart.completed
}

sync_twice() {
    mkdir -p "$WORK/tree/d"
    head -c 100000 /dev/urandom | split -b 1000 -d -a 3 - "$WORK/tree/d/f-"
    s3c sync "$WORK/tree/" "$S/sync/" >"$WORK/sync1.out"
    assert_eq "$(grep -c "^upload:" "$WORK/sync1.out" || true)" 100 "uploads in the first sync"
    s3c sync "$WORK/tree/" "$S/sync/" >"$WORK/sync2.out"
    assert_eq "$(grep -c "^upload:" "$WORK/sync2.out" || true)" 0 "uploads in the second sync (nothing to do)"
    assert_eq "$(s3c ls -r "$S/sync/" | wc -l)" 100 "objects listed"
}

delete_objects() {
    s3c del "$S/obj/small"
    expect_error 'does not exist|NoSuchKey' s3c get "$S/obj/small" "$WORK/gone"
    s3c del --recursive --force "$S/"
    assert_eq "$(s3c ls -r "$S" | wc -l)" 0 "objects left"
    expect_events "$B" obj/small "" v1.object.deleted
}

remove_bucket() {
    s3c rb "$S"
    expect_error 'NoSuchBucket' s3c ls "$S"
}

run_scenario make-bucket make_bucket
run_scenario put-get put_get
run_scenario sync-twice sync_twice
run_scenario delete delete_objects
run_scenario remove-bucket remove_bucket
finish
