#!/usr/bin/env python3
"""Registry check: do the expected events exist for a bucket or an object?

Reads `<data-dir>/registry.db` (SQLite, WAL) read-only while the gateway runs. When the
registry is shared on PostgreSQL (ARTIFACT_STORE_REGISTRY_URL, several gateways), it asks the
product instead: `artifact-store events list --json --bucket B` (ARTIFACT_STORE_BIN). Used by
the scenario scripts only when DATA_DIR is set, i.e. against our own gateway.

    events.py --data-dir DIR --bucket B [--key K] --expect v1.object.put [--expect ...]
              [--file PATH] [--actor ACCESS_KEY]

Exit status 0 when every expectation holds, 1 otherwise (the problems are printed).
Events about a retrieval may be written just after the response has been sent, so the check
polls for a few seconds before it gives up.
"""

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import time

POLL_SECONDS = float(os.environ.get("EVENTS_POLL_SECONDS", "10"))


def connect(data_dir):
    path = os.path.join(data_dir, "registry.db")
    if not os.path.exists(path):
        raise FileNotFoundError(f"no registry at {path}")
    # mode=ro: this check must never write; the gateway owns the file.
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)


def load(data_dir, subject_id):
    if os.environ.get("ARTIFACT_STORE_REGISTRY_URL"):
        return load_shared(data_dir, subject_id)
    with connect(data_dir) as db:
        rows = db.execute(
            "SELECT seq, event_type, actor, payload FROM events WHERE subject_id = ? ORDER BY seq",
            (subject_id,),
        ).fetchall()
    events = []
    for seq, event_type, actor, payload in rows:
        try:
            body = json.loads(bytes(payload).decode("utf-8")) if payload is not None else {}
        except (UnicodeDecodeError, ValueError):
            body = {"_undecodable": True}
        events.append({"seq": seq, "type": event_type, "actor": actor, "payload": body})
    return events


class RegistryUnreadable(Exception):
    """The shared log could not be read through the CLI."""


def load_shared(data_dir, subject_id):
    """The subject's events from the shared log, as `events list --json` prints them."""
    bucket = subject_id.split("/", 1)[0]
    binary = os.environ.get("ARTIFACT_STORE_BIN")
    if not binary:
        raise RegistryUnreadable("ARTIFACT_STORE_BIN is not set: no CLI to read the shared log with")
    command = [binary, "events", "list", "--json", "--bucket", bucket, "--data-dir", data_dir]
    try:
        ran = subprocess.run(command, capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise RegistryUnreadable(f"events list: {err}") from err
    if ran.returncode != 0:
        raise RegistryUnreadable(f"events list exited {ran.returncode}: {ran.stderr.strip()[-500:]}")
    events = []
    for line in ran.stdout.splitlines():
        try:
            event = json.loads(line)
            if event["subject_id"] == subject_id:
                events.append(
                    {"seq": event["sequence"], "type": event["event_type"], "actor": event["actor"],
                     "payload": event["payload"]}
                )
        except (ValueError, KeyError, TypeError) as err:
            raise RegistryUnreadable(f"events list printed something other than an event: {line[:200]}") from err
    return events


def file_digest(path):
    import blake3

    digest = blake3.blake3()
    size = 0
    with open(path, "rb") as f:
        while block := f.read(8 << 20):
            digest.update(block)
            size += len(block)
    return size, digest.hexdigest()


def problems_with(events, types, path, actor):
    problems = []
    seen = {e["type"] for e in events}
    for t in types:
        if t not in seen:
            problems.append(f"missing {t} (have: {', '.join(sorted(seen)) or 'none'})")
    if actor:
        wrong = [e for e in events if e["type"] in types and e["actor"] != actor]
        if wrong:
            problems.append(f"event {wrong[0]['seq']} ({wrong[0]['type']}) has actor {wrong[0]['actor']!r}")
    if path:
        writes = [e for e in events if e["type"] in ("v1.object.put", "v1.multipart.completed")]
        if not writes:
            problems.append("no v1.object.put or v1.multipart.completed to compare the file with")
        else:
            size, digest = file_digest(path)
            # v1.object.put carries the version; v1.multipart.completed wraps it in "version".
            last = writes[-1]["payload"]
            content = last.get("version", last).get("content", {})
            if content.get("size") != size:
                problems.append(f"payload size {content.get('size')!r} != {size}")
            if str(content.get("blake3", "")).lower() != digest:
                problems.append(f"payload blake3 {content.get('blake3')!r} != {digest}")
    return problems


def check(data_dir, bucket, key, types, path=None, actor=None):
    """Returns a list of problems (empty when every expectation holds)."""
    subject_id = bucket if key is None else f"{bucket}/{key}"
    deadline = time.monotonic() + POLL_SECONDS
    while True:
        try:
            problems = problems_with(load(data_dir, subject_id), types, path, actor)
        except (sqlite3.Error, FileNotFoundError, RegistryUnreadable) as err:
            problems = [f"cannot read the registry: {err}"]
        if not problems or time.monotonic() >= deadline:
            return [f"{subject_id}: {p}" for p in problems]
        # A look at the shared log is a process of its own.
        time.sleep(1 if os.environ.get("ARTIFACT_STORE_REGISTRY_URL") else 0.25)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=os.environ.get("DATA_DIR"), required=not os.environ.get("DATA_DIR"))
    parser.add_argument("--bucket", required=True)
    parser.add_argument("--key")
    parser.add_argument("--expect", action="append", default=[], help="event type, repeatable")
    parser.add_argument("--file", help="local copy of the object: size and BLAKE3 must match")
    parser.add_argument("--actor", default=os.environ.get("AWS_ACCESS_KEY_ID"))
    args = parser.parse_args()
    problems = check(args.data_dir, args.bucket, args.key, args.expect, path=args.file, actor=args.actor)
    for p in problems:
        print(f"registry: {p}", file=sys.stderr)
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
