#!/usr/bin/env python3
"""Turns the output of `cargo test` (the workspace's, or the conformance crate's) into result
lines for the compatibility matrix: one cell per test and transport, client "aws-sdk-s3 (Rust)" at the
version Cargo.lock pins.

    rust_results.py --log cargo-test.log --lock Cargo.lock [--skips skips.jsonl] >> results.jsonl

The suite is one test binary (`tests/suite/main.rs`, one module per file), so cargo names
each test `<file>::<scenario>::<transport>` (the suite's `over_http_and_https!` macro); the
scenario is written as `<file>/<scenario>`. Tests without a transport suffix, and every other
test binary's, are left out, unless the skip log names them.

`--skips` reads the JSON lines `conformance::skip` appends to `CONFORMANCE_SKIP_LOG`
({"test", "reason"}): a test that returned without running its check passes for cargo, and
is a skip here with the reason as detail. A skipped test without a transport suffix starts
its server over HTTP and gets that cell. Prints the count of each result on stderr.
"""

import argparse
import collections
import json
import re
import sys

RUNNING = re.compile(r"^\s*Running (\S+)")
SUITE = "tests/suite/main.rs"
TEST = re.compile(r"^test (\w+)::(\w+)(?:::(http|https))? \.\.\. (ok|FAILED|ignored)")


def sdk_version(lock_path):
    with open(lock_path, encoding="utf-8") as lock:
        text = lock.read()
    match = re.search(r'name = "aws-sdk-s3"\nversion = "([^"]+)"', text)
    return match.group(1) if match else "unknown"


def read_skips(path):
    """{test path as cargo prints it: reason} from a skip log."""
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
                skips[entry["test"]] = entry["reason"]
    return skips


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--log", required=True)
    parser.add_argument("--lock", required=True)
    parser.add_argument("--skips", help="the CONFORMANCE_SKIP_LOG of the same cargo test run")
    args = parser.parse_args()
    version = sdk_version(args.lock)
    skips = read_skips(args.skips)
    in_suite = False
    counts = collections.Counter()
    with open(args.log, encoding="utf-8", errors="replace") as log:
        for line in log:
            if match := RUNNING.match(line):
                in_suite = match.group(1) == SUITE
                continue
            match = TEST.match(line)
            if not match or not in_suite:
                continue
            suite, name, transport, outcome = match.groups()
            test = f"{suite}::{name}" + (f"::{transport}" if transport else "")
            reason = skips.get(test)
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
