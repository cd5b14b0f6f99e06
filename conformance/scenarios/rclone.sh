#!/usr/bin/env bash
# rclone scenarios against any S3 endpoint (environment: see lib.sh).
# The remote "cf:" exists only in the environment (RCLONE_CONFIG_CF_*); no config file is read.
set -uo pipefail
# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CLIENT="rclone"
VERSION="$(rclone version 2>/dev/null | sed -nE '1s/^rclone v?//p')"
[[ -n "$VERSION" ]] || { echo "cannot run rclone" >&2; exit 2; }

export RCLONE_CONFIG="$WORK/rclone.conf"
: >"$RCLONE_CONFIG"
export RCLONE_CONFIG_CF_TYPE=s3 RCLONE_CONFIG_CF_PROVIDER=Other RCLONE_CONFIG_CF_ENV_AUTH=false
export RCLONE_CONFIG_CF_ACCESS_KEY_ID="$AWS_ACCESS_KEY_ID" RCLONE_CONFIG_CF_SECRET_ACCESS_KEY="$AWS_SECRET_ACCESS_KEY"
export RCLONE_CONFIG_CF_ENDPOINT="$ENDPOINT_URL" RCLONE_CONFIG_CF_REGION="$AWS_DEFAULT_REGION"
export RCLONE_CONFIG_CF_FORCE_PATH_STYLE=true

# rclone's own --ca-cert, not AWS_CA_BUNDLE: the bundle variable is the AWS SDKs' convention and is
# kept away from rclone so that this flag is what is tested. Multipart from 5 MiB up.
rclone_args=(--s3-upload-cutoff 5M --s3-chunk-size 5M --retries 1 --low-level-retries 2)
[[ -z "${AWS_CA_BUNDLE:-}" ]] || rclone_args+=(--ca-cert "$AWS_CA_BUNDLE")
rc() { env -u AWS_CA_BUNDLE rclone "${rclone_args[@]}" "$@"; }

B="$(bucket_name rclone)"
R="cf:$B"

make_tree() {
    mkdir -p "$WORK/tree/sub/deeper" "$WORK/tree/other"
    head -c 200000 /dev/urandom | split -b 2000 -d -a 3 - "$WORK/tree/sub/f-"
    head -c 50000 /dev/urandom | split -b 500 -d -a 3 - "$WORK/tree/sub/deeper/g-"
    random_file "$WORK/tree/other/big.bin" $((12 * MIB))
    : >"$WORK/tree/other/empty"
}

copied() { grep -c "Copied" "$1" || true; }

# logged LOG COMMAND...: runs an rclone command with -v into LOG; on failure its errors are shown.
logged() {
    local log="$1"
    shift
    rc -v "$@" 2>"$log" || fail "rclone $1 failed: $(grep -E 'ERROR|Failed' "$log" | head -3)"
}

mkdir_bucket() {
    rc mkdir "$R"
    grep -q " $B\$" <<<"$(rc lsd cf:)" || fail "bucket $B not listed by lsd"
    expect_events "$B" "" "" v1.bucket.created
}

copy_up_and_check() {
    make_tree
    logged "$WORK/copy.log" copy "$WORK/tree" "$R/tree"
    assert_eq "$(copied "$WORK/copy.log")" 202 "files copied up"
    # check compares sizes and MD5 hashes; the 12 MiB multipart file's MD5 comes from rclone's metadata.
    rc check "$WORK/tree" "$R/tree"
    rc check --download "$WORK/tree/other" "$R/tree/other"
    expect_events "$B" tree/other/big.bin "$WORK/tree/other/big.bin" v1.multipart.completed
    expect_events "$B" tree/sub/f-000 "$WORK/tree/sub/f-000" v1.object.put
}

copy_down() {
    rc copy "$R/tree" "$WORK/down"
    diff -r "$WORK/tree" "$WORK/down" || fail "downloaded tree differs"
}

md5sum_matches() {
    (cd "$WORK/tree" && find . -type f -printf '%P\n' | sort | xargs -d '\n' md5sum) | sort -k2 >"$WORK/local.md5"
    rc md5sum "$R/tree" | sed 's/  */  /' | sort -k2 >"$WORK/remote.md5"
    diff "$WORK/local.md5" "$WORK/remote.md5" || fail "rclone md5sum differs from local md5sum"
}

sync_checksum() {
    rm "$WORK/tree/sub/f-010"
    head -c 3000 /dev/urandom >"$WORK/tree/sub/f-011"
    head -c 3000 /dev/urandom >"$WORK/tree/sub/new"
    # Same size, new content: only a hash comparison (--checksum) notices.
    head -c 2000 /dev/urandom >"$WORK/tree/sub/f-012"
    logged "$WORK/sync1.log" sync --checksum "$WORK/tree" "$R/tree"
    assert_eq "$(copied "$WORK/sync1.log")" 3 "files copied by the sync"
    grep -q "f-010: Deleted" "$WORK/sync1.log" || fail "sync did not delete f-010: $(grep -i delet "$WORK/sync1.log")"
    rc check "$WORK/tree" "$R/tree"
    logged "$WORK/sync2.log" sync --checksum "$WORK/tree" "$R/tree"
    assert_eq "$(copied "$WORK/sync2.log")" 0 "files copied by a second sync (nothing to do)"
    expect_events "$B" tree/sub/f-010 "" v1.object.put v1.object.deleted
}

lsf_listing() {
    (cd "$WORK/tree" && find . -type f -printf '%P\n' | sort) >"$WORK/local.lst"
    rc lsf -R --files-only "$R/tree" | sort >"$WORK/remote.lst"
    diff "$WORK/local.lst" "$WORK/remote.lst" || fail "lsf differs from the local tree"
    assert_eq "$(rc lsf "$R/tree" | sort | tr '\n' ' ')" "other/ sub/ " "top-level lsf"
}

# 48 MiB: ten 5 MiB parts are enough for rclone's multipart path; the 1 GiB cases belong to the
# SDK-based clients, where they cost less time.
large_round_trip() {
    local src="$WORK/large.bin"
    random_file "$src" $((48 * MIB))
    rc copyto "$src" "$R/large.bin"
    rc copyto "$R/large.bin" "$WORK/large.down"
    assert_same_file "$src" "$WORK/large.down"
    rm -f "$WORK/large.down"
}

delete_and_purge() {
    rc delete "$R/tree/sub/deeper"
    assert_eq "$(rc lsf -R "$R/tree/sub/deeper" | wc -l)" 0 "objects left under sub/deeper"
    [[ "$(rc lsf -R --files-only "$R/tree" | wc -l)" -gt 0 ]] || fail "delete removed more than sub/deeper"
    rc purge "$R"
    local buckets
    buckets="$(rc lsd cf:)"
    if grep -q " $B\$" <<<"$buckets"; then fail "bucket still listed after purge"; fi
}

# A prefix sealed as a package (beside the serving gateway) refuses uploads, multipart uploads
# and deletes with AccessDenied; reads go on.
sealed_package() {
    local b
    b="$(bucket_name rclone-sealed)"
    rc mkdir "cf:$b"
    random_file "$WORK/member" 1000
    random_file "$WORK/other" 1000
    random_file "$WORK/big" $((12 * MIB))
    rc copyto "$WORK/member" "cf:$b/release/1/a.bin"
    seal_package "s3://$b/release/1/" "$b-release-1"
    expect_error AccessDenied rc copyto "$WORK/other" "cf:$b/release/1/a.bin"
    expect_error AccessDenied rc copyto "$WORK/other" "cf:$b/release/1/new.bin"
    expect_error AccessDenied rc copyto "$WORK/big" "cf:$b/release/1/big.bin"
    expect_error AccessDenied rc deletefile "cf:$b/release/1/a.bin"
    expect_error AccessDenied rc purge "cf:$b/release/1"
    rc copyto "cf:$b/release/1/a.bin" "$WORK/back"
    assert_same_file "$WORK/member" "$WORK/back"
    rc copyto "$WORK/other" "cf:$b/release/2/a.bin"
    verify_package "$b-release-1"
}

run_scenario mkdir mkdir_bucket
run_scenario copy-up-check copy_up_and_check
run_scenario copy-down copy_down
run_scenario md5sum md5sum_matches
run_scenario sync-checksum sync_checksum
run_scenario lsf lsf_listing
run_scenario copyto-48mib-multipart large_round_trip
run_scenario delete-purge delete_and_purge
if can_seal; then
    run_scenario sealed-package-refuses-writes sealed_package
else
    record sealed-package-refuses-writes skip "packages are sealed by artifact-store's own CLI, on its data folder"
fi
finish
