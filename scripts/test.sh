#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs the test clients, builds the workspace
# once in release mode, runs every crate's tests with that build, then the end-to-end
# conformance suite against the built binary: on the local store, then on the S3 backend in
# front of moto (the AWS stand-in) and in front of Ceph RGW, each with its own matrix
# (docs/compatibility.md, docs/compatibility-s3-moto.md, docs/compatibility-s3-rgw.md).
#
#   scripts/test.sh                 everything
#   SKIP_INSTALL=1 scripts/test.sh  assume scripts/install-test-deps.sh already ran
#   SKIP_CONFORMANCE=1 ...          crate tests only
#   UPSTREAMS="moto rgw"            the S3 backend's upstreams to run the suite against ("" for none)
#
# CARGO_TARGET_DIR is honoured (CI points it at a cache outside the clone).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
target_dir="${CARGO_TARGET_DIR:-$root/target}"

# Each phase's time, printed at the end of every run (also a failed one), so a run that nears
# CI's limit shows where the time went.
phase_times=()
phase_name=""
phase_start=$SECONDS
phase() {
    if [[ -n "$phase_name" ]]; then
        phase_times+=("$(printf '%6ds  %s' $((SECONDS - phase_start)) "$phase_name")")
    fi
    phase_name="$1"
    phase_start=$SECONDS
}
finish() {
    phase ""
    # Upstreams started by this run are stopped on any exit, a failed or interrupted one too.
    scripts/stop-moto.sh >/dev/null 2>&1 || true
    scripts/stop-ceph-rgw.sh >/dev/null 2>&1 || true
    echo "== phase times (seconds)"
    printf '%s\n' "${phase_times[@]}"
    printf '%6ds  total\n' "$SECONDS"
}
trap finish EXIT

if [[ "${SKIP_INSTALL:-0}" != 1 ]]; then
    phase "install test clients"
    scripts/install-test-deps.sh
fi

# One release build serves the crate tests and the conformance suite: hashing and large
# transfers are far too slow in a debug build, and building twice would double CI time.
phase "release build"
cargo build --release --workspace --all-targets --locked
# One test run for the whole workspace (a second, narrower one would rebuild crates with other
# features). Its output also feeds the compatibility matrix with the Rust end-to-end tier.
rust_log="$target_dir/cargo-test.log"
rust_skips="$target_dir/cargo-test-skips.jsonl"
phase "crate tests (local store)"
: >"$rust_skips"
CONFORMANCE_SKIP_LOG="$rust_skips" cargo test --release --workspace --locked 2>&1 | tee "$rust_log"

if [[ "${SKIP_CONFORMANCE:-0}" != 1 ]]; then
    status=0
    phase "conformance clients (local store)"
    ARTIFACT_STORE_BIN="$target_dir/release/artifact-store" RUST_TEST_LOG="$rust_log" RUST_SKIP_LOG="$rust_skips" conformance/run.sh || status=1
    # The conformance crate's test targets, selected from the whole workspace: `-p` would
    # resolve features for that crate alone and rebuild its dependencies (minutes on a fresh
    # cache). Registry tests of the same names come along; they ignore the upstream.
    conformance_tests=()
    for test_file in conformance/tests/*.rs; do
        conformance_tests+=(--test "$(basename "$test_file" .rs)")
    done
    for upstream in ${UPSTREAMS-moto rgw}; do
        # The Rust tier again, every test server on the S3 backend in front of this upstream.
        phase "start $upstream"
        case "$upstream" in
            moto) settings="$(scripts/start-moto.sh)" ;;
            rgw) settings="$(scripts/start-ceph-rgw.sh)" ;;
        esac
        eval "$settings"
        bucket="rust-tier-$upstream-$(date +%s)"
        AWS_ACCESS_KEY_ID="$UPSTREAM_ACCESS_KEY" AWS_SECRET_ACCESS_KEY="$UPSTREAM_SECRET_KEY" AWS_CA_BUNDLE= \
            AWS_DEFAULT_REGION="$UPSTREAM_REGION" /usr/bin/aws --endpoint-url "$UPSTREAM_ENDPOINT" \
            s3api create-bucket --bucket "$bucket" >/dev/null
        upstream_log="$target_dir/cargo-test-s3-$upstream.log"
        upstream_skips="$target_dir/cargo-test-s3-$upstream-skips.jsonl"
        : >"$upstream_skips"
        phase "conformance crate tests on $upstream"
        CONFORMANCE_UPSTREAM_ENDPOINT="$UPSTREAM_ENDPOINT" CONFORMANCE_UPSTREAM_BUCKET="$bucket" \
            CONFORMANCE_UPSTREAM_REGION="$UPSTREAM_REGION" CONFORMANCE_UPSTREAM_ACCESS_KEY="$UPSTREAM_ACCESS_KEY" \
            CONFORMANCE_UPSTREAM_SECRET_KEY="$UPSTREAM_SECRET_KEY" CONFORMANCE_SKIP_LOG="$upstream_skips" \
            cargo test --release --locked --no-fail-fast --workspace "${conformance_tests[@]}" -- --include-ignored 2>&1 | tee "$upstream_log" || status=1
        phase "conformance clients on $upstream"
        ARTIFACT_STORE_BIN="$target_dir/release/artifact-store" RUST_TEST_LOG="$upstream_log" RUST_SKIP_LOG="$upstream_skips" \
            conformance/run.sh --backend s3 --upstream "$upstream" || status=1
    done
    exit "$status"
fi
