#!/usr/bin/env python3
"""Writes the event_decode seed corpus: one canonical payload of each v1 event type, shaped
as the gateway writes them, and one whole event in its JSON form. Run from fuzz/."""
import json, os

TYPES = ["v1.bucket.created", "v1.bucket.deleted", "v1.bucket.versioning.set", "v1.bucket.object_lock.set",
         "v1.bucket.lifecycle.set", "v1.bucket.lifecycle.deleted", "v1.lifecycle.applied", "v1.object.put",
         "v1.object.deleted", "v1.object.delete_marker.created", "v1.object.tagging.set", "v1.object.retrieved",
         "v1.retention.set", "v1.retention.bypassed", "v1.legal_hold.set", "v1.multipart.created",
         "v1.multipart.part.uploaded", "v1.multipart.completed", "v1.multipart.aborted", "v1.package.finalized",
         "v9.unknown.type"]
B3 = "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
ETAG = '"5d41402abc4b2a76b9719d911017c592"'
V = {"bucket": "photos", "key": "2026/a b/ü.jpg", "version_id": "0192f5c2a3b47c1e9d0e6a5b4c3d2e1f"}
PART = {"blob": B3, "size": 5, "etag": ETAG, "checksums": {"CRC32": "NhCmhg=="}}
CONTENT = {"size": 5, "etag": ETAG, "blake3": B3, "checksums": {"CRC32": "NhCmhg=="}, "checksum_type": "FULL_OBJECT",
           "content_type": "image/jpeg", "headers": {"cache-control": "no-cache"}, "user_metadata": {"camera": "x"},
           "tags": {"team": "a"}, "parts": [PART]}
PUT = dict(V, content=CONTENT, origin={"kind": "put"}, retention={"mode": "GOVERNANCE", "retain_until": 1893456000000},
           legal_hold=True)
PAYLOADS = [
    {"bucket": "photos", "region": "us-east-1", "object_lock_enabled": True},
    {"bucket": "photos"},
    {"bucket": "photos", "status": "Enabled"},
    {"bucket": "photos", "default_retention": {"mode": "COMPLIANCE", "days": 30}},
    {"bucket": "photos", "rules": [{"id": "expire-tmp", "status": "Enabled", "filter": {"prefix": "tmp/"},
                                     "expiration": {"days": 1}, "noncurrent_days": 7}]},
    {"bucket": "photos"},
    {"bucket": "photos", "key": "tmp/x", "version_id": "v1", "rule_id": "expire-tmp", "action": "expiration",
     "effect": "delete_marker", "due": 1893456000000},
    PUT,
    dict(V, bypass_governance=True),
    V,
    dict(V, tags={"a": "1", "b": ""}),
    dict(V, method="GET", bytes=5, range="bytes=0-4"),
    dict(V, retention={"mode": "COMPLIANCE", "retain_until": 1893456000000}, bypass_governance=True),
    dict(V, retention={"mode": "GOVERNANCE", "retain_until": 1893456000000}, action="retention_change"),
    dict(V, on=True),
    {"bucket": "photos", "key": "big", "upload_id": "u1", "template": dict(CONTENT, parts=[]),
     "checksum_algorithm": "CRC32C", "store_upload": {"blob": B3, "upload_id": "s3-upload"}},
    {"bucket": "photos", "key": "big", "upload_id": "u1", "part_number": 2,
     "part": dict(PART, subtree=B3, offset=0, store_etag=ETAG)},
    {"upload_id": "u1", "version": dict(PUT, origin={"kind": "multipart", "upload_id": "u1"})},
    {"bucket": "photos", "key": "big", "upload_id": "u1"},
    {"name": "app", "bucket": "releases", "prefix": "app/1.0/", "manifest_key": "app/1.0/manifest.json",
     "manifest_version_id": "v1", "manifest_blake3": B3, "members": 3, "bytes": 1024},
    {"anything": [1, "two", None]},
]


def canonical(value):
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


os.makedirs("corpus/event_decode", exist_ok=True)
for index, (name, payload) in enumerate(zip(TYPES, PAYLOADS)):
    with open(f"corpus/event_decode/{index:02}-{name}", "wb") as f:
        f.write(bytes([index]) + canonical(payload))
event = {"sequence": 7, "created_at": 1764633600000, "event_type": "v1.legal_hold.set", "subject_kind": "object",
         "subject_id": "photos/2026/a b/ü.jpg", "actor": "AKIAIOSFODNN7EXAMPLE",
         "context": {"access_key": "AKIAIOSFODNN7EXAMPLE", "request_id": "0a1b2c", "source_addr": "127.0.0.1:5000",
                     "user_agent": "aws-cli/2"},
         "payload": dict(V, on=True), "payload_digest": B3, "prev_hash": "00" * 32, "hash": B3}
with open("corpus/event_decode/21-whole-event", "wb") as f:
    f.write(bytes([len(TYPES)]) + canonical(event))
