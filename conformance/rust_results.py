#!/usr/bin/env python3
"""Turns the output of `cargo test` (the workspace's, or the conformance crate's) into result
lines for the compatibility matrix: one cell per test and transport, client "aws-sdk-s3 (Rust)" at the
version Cargo.lock pins.

    rust_results.py --log cargo-test.log --lock Cargo.lock >> results.jsonl

Test names are `<scenario>::<transport>` (the suite's `over_http_and_https!` macro) inside the
test file that cargo announces with a `Running tests/<file>.rs` line; the scenario is written
as `<file>/<test>`. Tests without a transport suffix (every other crate's, and the harness's
unit tests) are skipped.
"""

import argparse
import json
import re
import sys

RUNNING = re.compile(r"^\s*Running tests/(\w+)\.rs")
TEST = re.compile(r"^test (\w+)::(http|https) \.\.\. (ok|FAILED|ignored)")


def sdk_version(lock_path):
    with open(lock_path, encoding="utf-8") as lock:
        text = lock.read()
    match = re.search(r'name = "aws-sdk-s3"\nversion = "([^"]+)"', text)
    return match.group(1) if match else "unknown"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--log", required=True)
    parser.add_argument("--lock", required=True)
    args = parser.parse_args()
    version = sdk_version(args.lock)
    suite = None
    cells = 0
    with open(args.log, encoding="utf-8", errors="replace") as log:
        for line in log:
            if match := RUNNING.match(line):
                suite = match.group(1)
                continue
            match = TEST.match(line)
            if not match or suite is None:
                continue
            name, transport, outcome = match.groups()
            result = {"ok": "pass", "FAILED": "fail", "ignored": "skip"}[outcome]
            print(json.dumps({
                "client": "aws-sdk-s3 (Rust)",
                "version": version,
                "scenario": f"{suite}/{name}",
                "transport": transport,
                "result": result,
                "detail": "" if result == "pass" else f"cargo test: {outcome}",
            }))
            cells += 1
    if cells == 0:
        print("rust_results.py: no transport tests found in the log", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
