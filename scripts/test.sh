#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs the test clients, builds the workspace
# once in release mode, runs every crate's tests with that build, then the end-to-end
# conformance suite against the built binary (with a PostgreSQL server of its own for the shared
# registry): on the local store, then against three gateways sharing one registry behind
# HAProxy, then on the S3 backend in front of moto (the AWS stand-in) and in front of Ceph RGW,
# each with its own matrix (docs/compatibility.md, docs/compatibility-shared.md,
# docs/compatibility-s3-moto.md, docs/compatibility-s3-rgw.md).
#
#   scripts/test.sh                 everything
#   SKIP_INSTALL=1 scripts/test.sh  assume scripts/install-test-deps.sh already ran
#   SKIP_CONFORMANCE=1 ...          crate tests only
#   UPSTREAMS="moto rgw"            the S3 backend's upstreams to run the suite against ("" for none)
#   TEST_TIME_LIMIT=80m             the whole run's limit (timeout(1) syntax): a hung run fails
#                                   with its phase times instead of eating CI's own limit
#
# CARGO_TARGET_DIR is honoured (CI points it at a cache outside the clone).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
target_dir="${CARGO_TARGET_DIR:-$root/target}"

# The outer time limit: the run re-executes itself under timeout(1), which signals the whole
# process group; the TERM trap below turns that into a normal exit, so the EXIT trap still
# stops the upstreams and prints the phase times.
if [[ -z "${ARTIFACT_STORE_TEST_LIMITED:-}" ]]; then
    export ARTIFACT_STORE_TEST_LIMITED=1
    exec timeout --kill-after=60 "${TEST_TIME_LIMIT:-80m}" "$root/scripts/test.sh" "$@"
fi

# Upstream daemons of this run live in a folder of its own, on free ports (the start scripts
# pick them): nothing is shared with, or left to, another run on the same machine.
run_dir="$(mktemp -d "${TMPDIR:-/tmp}/artifact-store-test.XXXXXX")"
export MOTO_DIR="$run_dir/moto" CEPH_RGW_DIR="$run_dir/rgw" POSTGRES_DIR="$run_dir/postgres"

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
    scripts/stop-moto.sh "$MOTO_DIR" >/dev/null 2>&1 || true
    scripts/stop-ceph-rgw.sh "$CEPH_RGW_DIR" >/dev/null 2>&1 || true
    scripts/stop-postgres.sh "$POSTGRES_DIR" >/dev/null 2>&1 || true
    rm -rf "$run_dir"
    echo "== phase times (seconds)"
    printf '%s\n' "${phase_times[@]}"
    printf '%6ds  total\n' "$SECONDS"
}
trap finish EXIT
trap 'echo "== stopped by SIGTERM (the time limit is ${TEST_TIME_LIMIT:-80m})" >&2; exit 143' TERM
trap 'exit 130' INT

if [[ "${SKIP_INSTALL:-0}" != 1 ]]; then
    phase "install test clients"
    scripts/install-test-deps.sh
fi

# One PostgreSQL server for the whole run: the registry's tests of the shared log and the
# gateways that share one make a database each on it (POSTGRES_URL).
phase "start postgresql"
eval "$(scripts/start-postgres.sh)"
export POSTGRES_URL

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
    # Every client's scenarios again, spread by HAProxy over three gateways on one registry on
    # PostgreSQL and one data folder, over http (the balancer's side). Large files of 64 MiB:
    # the streaming path is the one above, and three gateways share the run's two cores.
    phase "conformance clients (three gateways, shared registry)"
    ARTIFACT_STORE_BIN="$target_dir/release/artifact-store" LARGE_SIZE=$((64 * 1024 * 1024)) \
        conformance/run.sh --gateways 3 --transport http || status=1
    # The conformance suite's test binary, selected from the whole workspace: `-p` would
    # resolve features for that crate alone and rebuild its dependencies (minutes on a fresh
    # cache).
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
            cargo test --release --locked --no-fail-fast --workspace --test suite -- --include-ignored 2>&1 | tee "$upstream_log" || status=1
        phase "conformance clients on $upstream"
        ARTIFACT_STORE_BIN="$target_dir/release/artifact-store" RUST_TEST_LOG="$upstream_log" RUST_SKIP_LOG="$upstream_skips" \
            conformance/run.sh --backend s3 --upstream "$upstream" || status=1
    done
    exit "$status"
fi
