#!/usr/bin/env python3
"""Turns the output of `cargo test` (the workspace's, or the conformance crate's) into result
lines for the compatibility matrix: one cell per test and transport, client "aws-sdk-s3 (Rust)" at the
version Cargo.lock pins.

    rust_results.py --log cargo-test.log --lock Cargo.lock [--skips skips.jsonl] >> results.jsonl

Test names are `<scenario>::<transport>` (the suite's `over_http_and_https!` macro) inside the
test file that cargo announces with a `Running tests/<file>.rs` line; the scenario is written
as `<file>/<test>`. Tests without a transport suffix (every other crate's, and the harness's
unit tests) are left out, unless the skip log names them.

`--skips` reads the JSON lines `conformance::skip` appends to `CONFORMANCE_SKIP_LOG`
({"test", "suite", "reason"}): a test that returned without running its check passes for
cargo, and is a skip here with the reason as detail. A skipped test without a transport
suffix starts its server over HTTP and gets that cell. Prints the count of each result on
stderr.
"""

import argparse
import collections
import json
import re
import sys

RUNNING = re.compile(r"^\s*Running tests/(\w+)\.rs")
TEST = re.compile(r"^test (\w+)(?:::(http|https))? \.\.\. (ok|FAILED|ignored)")


def sdk_version(lock_path):
    with open(lock_path, encoding="utf-8") as lock:
        text = lock.read()
    match = re.search(r'name = "aws-sdk-s3"\nversion = "([^"]+)"', text)
    return match.group(1) if match else "unknown"


def read_skips(path):
    """{(suite, test name as cargo prints it): reason} from a skip log."""
    skips = {}
    if path is None:
        return skips
    try:
        log = open(path, encoding="utf-8")
    except FileNotFoundError:
        # No test skipped: `conformance::skip` creates the file on the first skip.
        return skips
    with log:
        for line in log:
            if line.strip():
                entry = json.loads(line)
                skips[(entry.get("suite", ""), entry["test"])] = entry["reason"]
    return skips


def skip_reason(skips, suite, test):
    """The reason `test` of `suite` was skipped, or None; a log line without a suite matches any."""
    return skips.get((suite, test), skips.get(("", test)))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--log", required=True)
    parser.add_argument("--lock", required=True)
    parser.add_argument("--skips", help="the CONFORMANCE_SKIP_LOG of the same cargo test run")
    args = parser.parse_args()
    version = sdk_version(args.lock)
    skips = read_skips(args.skips)
    suite = None
    counts = collections.Counter()
    with open(args.log, encoding="utf-8", errors="replace") as log:
        for line in log:
            if match := RUNNING.match(line):
                suite = match.group(1)
                continue
            match = TEST.match(line)
            if not match or suite is None:
                continue
            name, transport, outcome = match.groups()
            test = f"{name}::{transport}" if transport else name
            reason = skip_reason(skips, suite, test)
            if transport is None and reason is None:
                continue
            result = {"ok": "pass", "FAILED": "fail", "ignored": "skip"}[outcome]
            detail = "" if result == "pass" else f"cargo test: {outcome}"
            if result == "pass" and reason is not None:
                result, detail = "skip", f"skipped: {reason}"
            print(json.dumps({
                "client": "aws-sdk-s3 (Rust)",
                "version": version,
                "scenario": f"{suite}/{name}",
                "transport": transport or "http",
                "result": result,
                "detail": detail,
            }))
            counts[result] += 1
    print(f"rust_results.py: {sum(counts.values())} cells ({counts['pass']} pass, {counts['fail']} fail, "
          f"{counts['skip']} skip)", file=sys.stderr)
    if not counts:
        print("rust_results.py: no transport tests found in the log", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
