"""Shared plumbing for the Python scenario scripts.

Every scenario script runs against any S3 endpoint described by the environment
(see conformance/run.sh), and appends one JSON line per scenario to RESULTS_FILE:
    {"client", "version", "scenario", "transport", "result": "pass"|"fail", "detail"}
"""

import hashlib
import json
import os
import sys
import tempfile
import time
import traceback
import uuid
from contextlib import contextmanager

MIB = 1024 * 1024

ENDPOINT_URL = os.environ["ENDPOINT_URL"]
ACCESS_KEY = os.environ["AWS_ACCESS_KEY_ID"]
SECRET_KEY = os.environ["AWS_SECRET_ACCESS_KEY"]
REGION = os.environ.get("AWS_DEFAULT_REGION", "us-east-1")
CA_BUNDLE = os.environ.get("AWS_CA_BUNDLE") or None
TRANSPORT = os.environ.get("TRANSPORT") or ENDPOINT_URL.split(":", 1)[0]
QUICK = os.environ.get("QUICK") == "1"
DATA_DIR = os.environ.get("DATA_DIR") or None
RESULTS_FILE = os.environ.get("RESULTS_FILE")
WORK_DIR = os.environ.get("WORK_DIR") or tempfile.gettempdir()


def bucket_name(suffix):
    """A bucket name unique to this run: BUCKET_PREFIX is set by the runner."""
    prefix = os.environ.get("BUCKET_PREFIX") or f"cf-{uuid.uuid4().hex[:8]}-"
    name = f"{prefix}{suffix}".lower()
    assert len(name) <= 63, name
    return name


def large_size():
    """Size of the "large file" cases: LARGE_SIZE bytes, 1 GiB by default, 64 MiB under QUICK=1."""
    if os.environ.get("LARGE_SIZE"):
        return int(os.environ["LARGE_SIZE"])
    return 64 * MIB if QUICK else 1024 * MIB


def random_file(path, size):
    """Writes `size` random bytes to `path` in 8 MiB blocks and returns the SHA-256 hex."""
    digest = hashlib.sha256()
    with open(path, "wb") as out:
        left = size
        while left:
            block = os.urandom(min(left, 8 * MIB))
            digest.update(block)
            out.write(block)
            left -= len(block)
    return digest.hexdigest()


def large_file():
    """The runner's shared large file (LARGE_FILE) when it has the wanted size, else a new one."""
    size = large_size()
    shared = os.environ.get("LARGE_FILE")
    if shared and os.path.exists(shared) and os.path.getsize(shared) == size:
        return shared
    path = os.path.join(WORK_DIR, f"large-{uuid.uuid4().hex[:8]}.bin")
    random_file(path, size)
    return path


def sha256_file(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(8 * MIB):
            digest.update(block)
    return digest.hexdigest()


class Failure(AssertionError):
    """A scenario's expectation that did not hold; its message becomes the result's detail."""


def check(condition, message):
    if not condition:
        raise Failure(message)


def expect_error(code, call, *args, **kwargs):
    """Runs `call` and asserts it fails with the S3 error `code` (a string or a tuple of accepted codes).

    Works for botocore's ClientError and minio's S3Error; returns the exception.
    """
    accepted = (code,) if isinstance(code, str) else tuple(code)
    try:
        call(*args, **kwargs)
    except Exception as err:  # noqa: BLE001 - the code is what is asserted
        got = error_code(err)
        check(got in accepted, f"expected error {'/'.join(accepted)}, got {got!r}: {err}")
        return err
    raise Failure(f"expected error {'/'.join(accepted)}, the call succeeded")


def error_code(err):
    response = getattr(err, "response", None)
    if isinstance(response, dict) and "Error" in response:
        return response["Error"].get("Code")
    return getattr(err, "code", None) or type(err).__name__


class Reporter:
    """Runs named scenarios, prints one line each, and appends the JSON result lines."""

    def __init__(self, client, version):
        self.client = client
        self.version = version
        self.passed = 0
        self.failed = 0

    def skip(self, scenario, reason):
        """Records a scenario that could not run here, with why: never counted as passed."""
        self._write(scenario, "skip", reason)
        print(f"[SKIP] {self.client} {self.version} {TRANSPORT} {scenario}: {reason}", flush=True)

    def _write(self, scenario, result, detail):
        line = {
            "client": self.client,
            "version": self.version,
            "scenario": scenario,
            "transport": TRANSPORT,
            "result": result,
            "detail": detail[:2000],
        }
        if RESULTS_FILE:
            with open(RESULTS_FILE, "a", encoding="utf-8") as out:
                out.write(json.dumps(line) + "\n")

    def record(self, scenario, ok, detail=""):
        self._write(scenario, "pass" if ok else "fail", detail)
        if ok:
            self.passed += 1
        else:
            self.failed += 1
        status = "PASS" if ok else "FAIL"
        print(f"[{status}] {self.client} {self.version} {TRANSPORT} {scenario}" + (f": {detail}" if detail and not ok else ""),
              flush=True)

    @contextmanager
    def scenario(self, name):
        """`with reporter.scenario("name"):` records pass, or fail with the exception as detail."""
        started = time.monotonic()
        try:
            yield
        except Failure as err:
            self.record(name, False, str(err))
        except Exception as err:  # noqa: BLE001 - any error fails the scenario, the run goes on
            tb = traceback.format_exception(type(err), err, err.__traceback__, limit=-3)
            self.record(name, False, f"{type(err).__name__}: {err} | {''.join(tb).strip()}")
        else:
            self.record(name, True, f"{time.monotonic() - started:.1f}s")

    def finish(self):
        print(f"{self.client}: {self.passed} passed, {self.failed} failed", flush=True)
        sys.exit(1 if self.failed else 0)


def expect_events(bucket, key=None, types=(), path=None):
    """When DATA_DIR is set (our gateway), asserts the registry holds `types` for bucket[/key].

    With `path`, the latest v1.object.put / v1.multipart.completed payload must also carry the
    size and BLAKE3 of that file. Against other endpoints this does nothing.
    """
    if not DATA_DIR:
        return
    import events  # local module; imported lazily so that other endpoints need no SQLite file

    problems = events.check(DATA_DIR, bucket, key, list(types), path=path, actor=ACCESS_KEY)
    check(not problems, "registry: " + "; ".join(problems))
