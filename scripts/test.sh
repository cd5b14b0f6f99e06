#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs the test clients, builds the workspace
# once in release mode, runs every crate's tests with that build, then the end-to-end
# conformance suite against the built binary.
#
#   scripts/test.sh                 everything
#   SKIP_INSTALL=1 scripts/test.sh  assume scripts/install-test-deps.sh already ran
#   SKIP_CONFORMANCE=1 ...          crate tests only
#
# CARGO_TARGET_DIR is honoured (CI points it at a cache outside the clone).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
target_dir="${CARGO_TARGET_DIR:-$root/target}"

if [[ "${SKIP_INSTALL:-0}" != 1 ]]; then
    scripts/install-test-deps.sh
fi

# One release build serves the crate tests and the conformance suite: hashing and large
# transfers are far too slow in a debug build, and building twice would double CI time.
cargo build --release --workspace --all-targets --locked
# One test run for the whole workspace (a second, narrower one would rebuild crates with other
# features). Its output also feeds the compatibility matrix with the Rust end-to-end tier.
rust_log="$target_dir/cargo-test.log"
cargo test --release --workspace --locked 2>&1 | tee "$rust_log"

if [[ "${SKIP_CONFORMANCE:-0}" != 1 ]]; then
    ARTIFACT_STORE_BIN="$target_dir/release/artifact-store" RUST_TEST_LOG="$rust_log" conformance/run.sh
fi
