#!/usr/bin/env bash
# Runs every cargo-fuzz target of fuzz/ in turn for SECONDS each (default 600), then
# minimises its corpus in place (`cargo fuzz cmin`, one input per coverage edge), and prints
# libFuzzer's figures.
#
#   scripts/fuzz.sh                  every target, 10 minutes each
#   scripts/fuzz.sh 60 xml_bodies    one target for a minute
#
# Needs `cargo install cargo-fuzz`. cargo-fuzz passes nightly flags (-Zsanitizer, ...); on a
# stable toolchain RUSTC_BOOTSTRAP=1 lets it. SANITIZER (default address) is passed on;
# CARGO_TARGET_DIR is honoured. Logs go to fuzz/logs/<target>.log (ignored by git); a crash
# stops that target's run and leaves its input in fuzz/artifacts/<target>/.
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root/fuzz"
seconds="${1:-600}"
shift || true
targets=("$@")
[[ ${#targets[@]} -gt 0 ]] || targets=(aws_chunked signature xml_bodies event_decode)
export RUSTC_BOOTSTRAP=1
options=(--sanitizer "${SANITIZER:-address}")
[[ -n "${CARGO_TARGET_DIR:-}" ]] && options+=(--target-dir "$CARGO_TARGET_DIR")
mkdir -p logs
status=0
for target in "${targets[@]}"; do
    echo "== $target: ${seconds}s from $(date -u +%H:%M:%SZ)"
    # -timeout: an input that takes this long is a hang, reported like a crash.
    cargo fuzz run "${options[@]}" "$target" -- \
        -max_total_time="$seconds" -timeout=30 -print_final_stats=1 >"logs/$target.log" 2>&1 || status=1
    grep -E '^#[0-9]+[[:space:]]+(DONE|pulse|NEW|REDUCE)' "logs/$target.log" | tail -1
    grep -E '^(Done|stat::number_of_executed_units|stat::average_exec_per_sec|==[0-9]+==ERROR|SUMMARY)' "logs/$target.log"
    cargo fuzz cmin "${options[@]}" "$target" -- -use_counters=0 >"logs/$target.cmin.log" 2>&1 || status=1
    echo "corpus after cmin: $(find "corpus/$target" -type f | wc -l) files, $(du -sh "corpus/$target" | cut -f1)"
done
exit "$status"
