#!/usr/bin/env python3
"""boto3 scenarios: run against any S3 endpoint given by the environment (see common.py).

Covers single PUT/GET of empty, small and 100 MiB objects, multipart through upload_file with the
default TransferConfig, ranged GET, presigned GET/PUT, copy, listing 2,500 keys with both list
APIs, batch delete, metadata and tags, awkward keys, every checksum algorithm under both
request_checksum_calculation modes, refused wrong checksums, and SSE-S3 (single and multipart
uploads, whole and ranged reads, copies) with the SSE requests refused until they are built or
because they are malformed.
"""

import base64
import hashlib
import json
import os
import re
import sys
import time
import uuid
import zlib
from concurrent.futures import ThreadPoolExecutor

import boto3
import botocore
import requests
from boto3.s3.transfer import TransferConfig
from botocore.config import Config

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import boto3_aws_behaviours  # noqa: E402
from boto3_aws_behaviours import expect_status_error  # noqa: E402
from common import (  # noqa: E402
    CA_BUNDLE,
    DATA_DIR,
    ENDPOINT_URL,
    MIB,
    QUICK,
    TRANSPORT,
    WORK_DIR,
    Reporter,
    bucket_name,
    check,
    error_code,
    expect_error,
    expect_events,
    large_file,
    random_file,
    sha256_file,
)

ALGORITHMS = ("CRC32", "CRC32C", "CRC64NVME", "SHA1", "SHA256")
MODES = ("when_supported", "when_required")


def client(mode="when_supported"):
    return client_with(request_checksum_calculation=mode)


def client_with(**settings):
    config = Config(
        s3={"addressing_style": "path"},
        response_checksum_validation="when_supported",
        retries={"max_attempts": 2, "mode": "standard"},
        **settings,
    )
    return boto3.client("s3", endpoint_url=ENDPOINT_URL, config=config, verify=CA_BUNDLE or True)


def checksum_b64(algorithm, data):
    """The base64 checksum AWS returns for `data`, computed here independently of botocore."""
    if algorithm == "CRC32":
        raw = zlib.crc32(data).to_bytes(4, "big")
    elif algorithm == "CRC32C":
        from awscrt import checksums

        raw = checksums.crc32c(data).to_bytes(4, "big")
    elif algorithm == "CRC64NVME":
        from awscrt import checksums

        raw = checksums.crc64nvme(data).to_bytes(8, "big")
    else:
        raw = hashlib.new(algorithm.lower(), data).digest()
    return base64.b64encode(raw).decode()


def body_sha256(response):
    digest = hashlib.sha256()
    for chunk in response["Body"].iter_chunks(MIB):
        digest.update(chunk)
    return digest.hexdigest()


def file_path(name):
    return os.path.join(WORK_DIR, f"boto3-{uuid.uuid4().hex[:8]}-{name}")


def assert_absent(s3, bucket, key):
    expect_error(("404", "NoSuchKey"), s3.head_object, Bucket=bucket, Key=key)


def main():
    rep = Reporter("boto3", f"{boto3.__version__}")
    s3 = client()
    bucket = bucket_name("boto3")

    with rep.scenario("create-bucket"):
        s3.create_bucket(Bucket=bucket)
        s3.head_bucket(Bucket=bucket)
        expect_events(bucket, types=["v1.bucket.created"])

    put_get_sizes = [("empty", 0), ("small", 1024), ("100mib", 8 * MIB if QUICK else 100 * MIB)]
    for label, size in put_get_sizes:
        with rep.scenario(f"put-get-{label}"):
            path = file_path(label)
            want = random_file(path, size)
            key = f"put-get/{label}"
            with open(path, "rb") as body:
                put = s3.put_object(Bucket=bucket, Key=key, Body=body)
            with open(path, "rb") as f:
                md5 = hashlib.file_digest(f, "md5").hexdigest()
            check(put["ETag"].strip('"') == md5, f"ETag {put['ETag']} != md5 {md5}")
            got = s3.get_object(Bucket=bucket, Key=key)
            check(got["ContentLength"] == size, f"ContentLength {got['ContentLength']} != {size}")
            check(body_sha256(got) == want, "GET bytes differ from PUT bytes (sha256)")
            expect_events(bucket, key, ["v1.object.put", "v1.object.retrieved"], path=path)
            os.remove(path)

    with rep.scenario("multipart-upload-file-large"):
        src = large_file()
        key = "multipart/large.bin"
        s3.upload_file(src, bucket, key, Config=TransferConfig())
        head = s3.head_object(Bucket=bucket, Key=key)
        check(head["ContentLength"] == os.path.getsize(src), f"size {head['ContentLength']}")
        check("-" in head["ETag"], f"multipart ETag expected, got {head['ETag']}")
        dst = file_path("large-download")
        s3.download_file(bucket, key, dst)
        check(sha256_file(dst) == sha256_file(src), "downloaded bytes differ (sha256)")
        os.remove(dst)
        expect_events(bucket, key, ["v1.multipart.created", "v1.multipart.part.uploaded", "v1.multipart.completed"],
                      path=src)

    with rep.scenario("ranged-get"):
        data = os.urandom(1000)
        s3.put_object(Bucket=bucket, Key="range", Body=data)
        for header, want, content_range in (
            ("bytes=0-99", data[:100], "bytes 0-99/1000"),
            ("bytes=900-", data[900:], "bytes 900-999/1000"),
            ("bytes=-10", data[-10:], "bytes 990-999/1000"),
            ("bytes=990-5000", data[990:], "bytes 990-999/1000"),
        ):
            got = s3.get_object(Bucket=bucket, Key="range", Range=header)
            check(got["ResponseMetadata"]["HTTPStatusCode"] == 206, f"{header}: status not 206")
            check(got["ContentRange"] == content_range, f"{header}: Content-Range {got.get('ContentRange')}")
            check(got["Body"].read() == want, f"{header}: wrong bytes")
        expect_error("InvalidRange", s3.get_object, Bucket=bucket, Key="range", Range="bytes=1000-1001")

    # boto3 presigns with SigV2 by default for S3; SigV4 is what most SDKs use. Test both.
    for signer, presigner in (("v2", s3), ("v4", client_with(signature_version="s3v4"))):
        with rep.scenario(f"presigned-get-put-{signer}"):
            data = os.urandom(4096)
            key = f"presigned-{signer}"
            put_url = presigner.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=300)
            r = requests.put(put_url, data=data, verify=CA_BUNDLE or True, timeout=60)
            check(r.status_code == 200, f"presigned PUT: {r.status_code} {r.text[:300]}")
            get_url = presigner.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=300)
            r = requests.get(get_url, verify=CA_BUNDLE or True, timeout=60)
            check(r.status_code == 200 and r.content == data, f"presigned GET: {r.status_code}, {len(r.content)} bytes")
            # A different digit keeps the signature well-formed (hex for v4, base64 for v2).
            bad = re.sub(r"((?:X-Amz-)?Signature=)(.)", lambda m: m.group(1) + ("1" if m.group(2) == "0" else "0"), get_url)
            check(bad != get_url, "the URL has no signature to tamper with")
            r = requests.get(bad, verify=CA_BUNDLE or True, timeout=60)
            check(r.status_code == 403 and b"SignatureDoesNotMatch" in r.content,
                  f"tampered presigned GET answered {r.status_code}, expected 403 SignatureDoesNotMatch")
            expired = presigner.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=1)
            time.sleep(2)
            r = requests.get(expired, verify=CA_BUNDLE or True, timeout=60)
            check(r.status_code == 403, f"expired presigned GET answered {r.status_code}, expected 403")

    with rep.scenario("copy-object"):
        data = os.urandom(10_000)
        s3.put_object(Bucket=bucket, Key="copy/src", Body=data, Metadata={"origin": "source"}, ContentType="text/x-src")
        s3.copy_object(Bucket=bucket, Key="copy/same-meta", CopySource={"Bucket": bucket, "Key": "copy/src"})
        head = s3.head_object(Bucket=bucket, Key="copy/same-meta")
        check(head["Metadata"] == {"origin": "source"}, f"COPY directive metadata {head['Metadata']}")
        s3.copy_object(Bucket=bucket, Key="copy/new-meta", CopySource={"Bucket": bucket, "Key": "copy/src"},
                       MetadataDirective="REPLACE", Metadata={"origin": "copy"}, ContentType="text/x-dst")
        head = s3.head_object(Bucket=bucket, Key="copy/new-meta")
        check(head["Metadata"] == {"origin": "copy"} and head["ContentType"] == "text/x-dst",
              f"REPLACE directive: {head['Metadata']} {head['ContentType']}")
        for key in ("copy/same-meta", "copy/new-meta"):
            check(s3.get_object(Bucket=bucket, Key=key)["Body"].read() == data, f"{key}: bytes differ")
        expect_error("NoSuchKey", s3.copy_object, Bucket=bucket, Key="copy/x",
                     CopySource={"Bucket": bucket, "Key": "copy/missing"})

    # SSE-S3: a write asking for x-amz-server-side-encryption: AES256 is stored encrypted (in
    # segments of 64 KiB on artifact-store), and every answer about the object says AES256. Sizes
    # of no segment, part of one, and several with a partial last.
    for label, size in (("empty", 0), ("small", 5000), ("300kb", 300_000)):
        with rep.scenario(f"sse-s3-put-get-{label}"):
            path = file_path(f"sse-{label}")
            want = random_file(path, size)
            key = f"sse/{label}"
            with open(path, "rb") as body:
                put = s3.put_object(Bucket=bucket, Key=key, Body=body, ServerSideEncryption="AES256")
            with open(path, "rb") as f:
                md5 = hashlib.file_digest(f, "md5").hexdigest()
            check(put["ETag"].strip('"') == md5, f"ETag {put['ETag']} != md5 of the plaintext {md5}")
            got = s3.get_object(Bucket=bucket, Key=key)
            check(got["ContentLength"] == size, f"ContentLength {got['ContentLength']} != {size}")
            check(body_sha256(got) == want, "GET bytes differ from PUT bytes (sha256)")
            head = s3.head_object(Bucket=bucket, Key=key)
            check(head["ContentLength"] == size, f"HEAD ContentLength {head['ContentLength']} != {size}")
            for operation, answer in (("PUT", put), ("GET", got), ("HEAD", head)):
                check(answer.get("ServerSideEncryption") == "AES256",
                      f"{operation} answered ServerSideEncryption {answer.get('ServerSideEncryption')!r}")
            expect_events(bucket, key, ["v1.object.put", "v1.object.retrieved"], path=path)
            os.remove(path)

    with rep.scenario("sse-s3-ranged-get"):
        # Ranges within, across and exactly on the 64 KiB segments, and in the partial last one.
        data = os.urandom(300_000)
        s3.put_object(Bucket=bucket, Key="sse/ranged", Body=data, ServerSideEncryption="AES256")
        for header, start, end in (
            ("bytes=65530-65545", 65530, 65545),
            ("bytes=100000-200000", 100000, 200000),
            ("bytes=65536-131071", 65536, 131071),
            ("bytes=0-0", 0, 0),
            ("bytes=262140-", 262140, 299999),
            ("bytes=-10", 299990, 299999),
        ):
            got = s3.get_object(Bucket=bucket, Key="sse/ranged", Range=header)
            check(got["ResponseMetadata"]["HTTPStatusCode"] == 206, f"{header}: status not 206")
            check(got["ContentRange"] == f"bytes {start}-{end}/300000",
                  f"{header}: Content-Range {got.get('ContentRange')}")
            check(got.get("ServerSideEncryption") == "AES256",
                  f"{header}: ServerSideEncryption {got.get('ServerSideEncryption')!r}")
            check(got["Body"].read() == data[start:end + 1], f"{header}: wrong bytes")
        expect_error("InvalidRange", s3.get_object, Bucket=bucket, Key="sse/ranged", Range="bytes=300000-300001")

    with rep.scenario("sse-s3-copy-stays-encrypted"):
        data = os.urandom(200_000)
        s3.put_object(Bucket=bucket, Key="sse/copy-src", Body=data, ServerSideEncryption="AES256",
                      Metadata={"origin": "sse"})
        source = {"Bucket": bucket, "Key": "sse/copy-src"}
        copies = {
            "sse/copy": s3.copy_object(Bucket=bucket, Key="sse/copy", CopySource=source),
            "sse/copy-replace": s3.copy_object(Bucket=bucket, Key="sse/copy-replace", CopySource=source,
                                               MetadataDirective="REPLACE", Metadata={"origin": "copy"}),
            "sse/copy-aes256": s3.copy_object(Bucket=bucket, Key="sse/copy-aes256", CopySource=source,
                                              ServerSideEncryption="AES256"),
        }
        for key, answer in copies.items():
            # A copy without the header keeps its source's encryption on artifact-store, and AWS
            # encrypts every new object (its buckets' default); moto leaves such a copy plain.
            if DATA_DIR or key == "sse/copy-aes256":
                head = s3.head_object(Bucket=bucket, Key=key)
                for operation, said in (("COPY", answer), ("HEAD", head)):
                    check(said.get("ServerSideEncryption") == "AES256",
                          f"{key}: {operation} answered ServerSideEncryption {said.get('ServerSideEncryption')!r}")
            check(s3.get_object(Bucket=bucket, Key=key)["Body"].read() == data, f"{key}: bytes differ")
            got = s3.get_object(Bucket=bucket, Key=key, Range="bytes=65530-65545")["Body"].read()
            check(got == data[65530:65546], f"{key}: wrong bytes in bytes=65530-65545")
        head = s3.head_object(Bucket=bucket, Key="sse/copy-replace")
        check(head["Metadata"] == {"origin": "copy"}, f"REPLACE directive metadata {head['Metadata']}")

    with rep.scenario("sse-none-sends-no-header"):
        # An object written without the header is stored as sent, and no answer about it claims
        # an encryption (AWS would answer AES256: it encrypts every object by default).
        put = s3.put_object(Bucket=bucket, Key="sse/plain", Body=b"plain bytes")
        answers = {
            "PutObject": put,
            "CopyObject": s3.copy_object(Bucket=bucket, Key="sse/plain-copy",
                                         CopySource={"Bucket": bucket, "Key": "sse/plain"}),
            "GetObject": s3.get_object(Bucket=bucket, Key="sse/plain"),
            "HeadObject": s3.head_object(Bucket=bucket, Key="sse/plain-copy"),
        }
        for operation, answer in answers.items():
            headers = answer["ResponseMetadata"]["HTTPHeaders"]
            check("ServerSideEncryption" not in answer and "x-amz-server-side-encryption" not in headers,
                  f"{operation}: x-amz-server-side-encryption {headers.get('x-amz-server-side-encryption')!r}")
        check(answers["GetObject"]["Body"].read() == b"plain bytes", "GET bytes differ")

    with rep.scenario("sse-s3-multipart"):
        # An encrypted multipart upload, every answer saying AES256: a part uploaded and a part
        # copied from a range of an encrypted object join into one object, read back whole, across
        # the parts' boundary and by part number; then upload_file's own upload of two parts.
        source = os.urandom(200_000)
        s3.put_object(Bucket=bucket, Key="sse/multipart-src", Body=source, ServerSideEncryption="AES256")
        key = "sse/multipart"
        first = os.urandom(5 * MIB)
        mpu = s3.create_multipart_upload(Bucket=bucket, Key=key, ServerSideEncryption="AES256")
        uploaded = s3.upload_part(Bucket=bucket, Key=key, UploadId=mpu["UploadId"], PartNumber=1, Body=first)
        copied = s3.upload_part_copy(Bucket=bucket, Key=key, UploadId=mpu["UploadId"], PartNumber=2,
                                     CopySource={"Bucket": bucket, "Key": "sse/multipart-src"},
                                     CopySourceRange="bytes=60000-139999")
        done = s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=mpu["UploadId"], MultipartUpload={
            "Parts": [{"PartNumber": 1, "ETag": uploaded["ETag"]},
                      {"PartNumber": 2, "ETag": copied["CopyPartResult"]["ETag"]}]})
        data = first + source[60000:140000]
        got = s3.get_object(Bucket=bucket, Key=key)
        check(got["Body"].read() == data, "GET bytes differ from the parts")
        boundary = s3.get_object(Bucket=bucket, Key=key, Range=f"bytes={5 * MIB - 10}-{5 * MIB + 9}")
        check(boundary["Body"].read() == data[5 * MIB - 10:5 * MIB + 10], "wrong bytes across the parts' boundary")
        second = s3.get_object(Bucket=bucket, Key=key, PartNumber=2)
        check(second["Body"].read() == source[60000:140000], "part 2 is not the copied range")
        head = s3.head_object(Bucket=bucket, Key=key)
        check("-2" in head["ETag"], f"multipart ETag of 2 parts expected, got {head['ETag']}")
        answers = {"CreateMultipartUpload": mpu, "UploadPart": uploaded, "UploadPartCopy": copied,
                   "CompleteMultipartUpload": done, "GetObject": got, "ranged GetObject": boundary,
                   "GetObject of part 2": second, "HeadObject": head}
        for operation, answer in answers.items():
            check(answer.get("ServerSideEncryption") == "AES256",
                  f"{operation} answered ServerSideEncryption {answer.get('ServerSideEncryption')!r}")
        expect_events(bucket, key, ["v1.multipart.created", "v1.multipart.part.uploaded", "v1.multipart.completed"])
        path = file_path("sse-upload-file")
        want = random_file(path, 6 * MIB)
        s3.upload_file(path, bucket, "sse/upload-file", ExtraArgs={"ServerSideEncryption": "AES256"},
                       Config=TransferConfig(multipart_threshold=5 * MIB, multipart_chunksize=5 * MIB))
        head = s3.head_object(Bucket=bucket, Key="sse/upload-file")
        check("-2" in head["ETag"], f"upload_file: multipart ETag of 2 parts expected, got {head['ETag']}")
        check(head.get("ServerSideEncryption") == "AES256",
              f"upload_file: HEAD answered ServerSideEncryption {head.get('ServerSideEncryption')!r}")
        dst = file_path("sse-upload-file-download")
        s3.download_file(bucket, "sse/upload-file", dst)
        check(sha256_file(dst) == want, "downloaded bytes differ (sha256)")
        expect_events(bucket, "sse/upload-file", ["v1.multipart.completed"], path=path)
        os.remove(path)
        os.remove(dst)

    with rep.scenario("sse-kms-put-get-copy"):
        # No key named: the default key (AWS's aws/s3), named back by its ARN on every answer.
        data = os.urandom(200 * 1024)
        put = s3.put_object(Bucket=bucket, Key="sse/kms", Body=data, ServerSideEncryption="aws:kms")
        check(put.get("ServerSideEncryption") == "aws:kms", f"PUT answered {put.get('ServerSideEncryption')!r}")
        arn = put.get("SSEKMSKeyId", "")
        check(arn.startswith("arn:aws:kms:") and ":key/" in arn, f"PUT named the key {arn!r}")
        got = s3.get_object(Bucket=bucket, Key="sse/kms")
        check(got["Body"].read() == data, "GET bytes differ")
        check(got.get("SSEKMSKeyId") == arn, f"GET named the key {got.get('SSEKMSKeyId')!r}, PUT {arn!r}")
        # A copy of an unencrypted object asked to be encrypted: stored again under the key.
        copy = s3.copy_object(Bucket=bucket, Key="sse/kms-copy", CopySource={"Bucket": bucket, "Key": "sse/plain"},
                              ServerSideEncryption="aws:kms")
        check(copy.get("ServerSideEncryption") == "aws:kms", f"copy answered {copy.get('ServerSideEncryption')!r}")
        check(s3.get_object(Bucket=bucket, Key="sse/kms-copy")["Body"].read() == b"plain bytes", "copy bytes differ")
        copy = s3.copy_object(Bucket=bucket, Key="sse/s3-copy", CopySource={"Bucket": bucket, "Key": "sse/plain"},
                              ServerSideEncryption="AES256")
        check(copy.get("ServerSideEncryption") == "AES256", f"copy answered {copy.get('ServerSideEncryption')!r}")
        check(s3.get_object(Bucket=bucket, Key="sse/s3-copy")["Body"].read() == b"plain bytes", "copy bytes differ")

    # A KMS key that does not exist is AWS's 400, and SSE-C (the client's key with every request)
    # works over HTTPS and is refused over plain HTTP, as on AWS; other servers answer these
    # their own way.
    front_end_only = ("sse-kms-unknown-key-refused", "sse-c-put-get-copy")
    if not DATA_DIR:
        for name in front_end_only:
            rep.skip(name, "answered by artifact-store only; other servers store the object")
    else:
        with rep.scenario("sse-kms-unknown-key-refused"):
            err = expect_error("KMS.NotFoundException", s3.put_object, Bucket=bucket, Key="sse/kms-unknown", Body=b"x",
                               ServerSideEncryption="aws:kms", SSEKMSKeyId="alias/nobody-made-this")
            status = err.response["ResponseMetadata"]["HTTPStatusCode"]
            check(status == 400, f"status {status}, expected 400")
            assert_absent(s3, bucket, "sse/kms-unknown")
        with rep.scenario("sse-c-put-get-copy"):
            key = os.urandom(32)
            customer = {"SSECustomerAlgorithm": "AES256", "SSECustomerKey": key}
            data = os.urandom(150 * 1024)
            if TRANSPORT != "https":
                # boto3 sends SSE-C over http as over https; AWS refuses it over http.
                expect_status_error(400, "InvalidRequest", s3.put_object, Bucket=bucket, Key="sse/customer",
                                    Body=data, **customer)
                assert_absent(s3, bucket, "sse/customer")
            else:
                put = s3.put_object(Bucket=bucket, Key="sse/customer", Body=data, **customer)
                check(put.get("SSECustomerAlgorithm") == "AES256", f"PUT answered {put.get('SSECustomerAlgorithm')!r}")
                got = s3.get_object(Bucket=bucket, Key="sse/customer", Range="bytes=65530-70000", **customer)
                check(got["Body"].read() == data[65530:70001], "ranged GET bytes differ")
                expect_status_error(400, "InvalidRequest", s3.get_object, Bucket=bucket, Key="sse/customer")
                expect_status_error(403, "AccessDenied", s3.get_object, Bucket=bucket, Key="sse/customer",
                                    SSECustomerAlgorithm="AES256", SSECustomerKey=os.urandom(32))
                s3.copy_object(Bucket=bucket, Key="sse/customer-copy",
                               CopySource={"Bucket": bucket, "Key": "sse/customer"},
                               CopySourceSSECustomerAlgorithm="AES256", CopySourceSSECustomerKey=key)
                check(s3.get_object(Bucket=bucket, Key="sse/customer-copy")["Body"].read() == data,
                      "the copy (SSE-S3) reads without a key")

    if not DATA_DIR:
        rep.skip("sse-malformed-refused-invalid-argument", "moto stores objects with malformed SSE headers")
    else:
        with rep.scenario("sse-malformed-refused-invalid-argument"):
            # botocore does not check the mode against its enum: AES512 reaches the server, which
            # answers 400 as AWS does, as it does to a KMS key without aws:kms and to SSE-C beside
            # a mode.
            for label, extra in (
                ("AES512", {"ServerSideEncryption": "AES512"}),
                ("AES256 with a KMS key", {"ServerSideEncryption": "AES256", "SSEKMSKeyId": "alias/artifacts"}),
                ("AES256 with SSE-C", {"ServerSideEncryption": "AES256", "SSECustomerAlgorithm": "AES256",
                                       "SSECustomerKey": os.urandom(32)}),
            ):
                err = expect_error("InvalidArgument", s3.put_object, Bucket=bucket, Key="sse/malformed", Body=b"x",
                                   **extra)
                status = err.response["ResponseMetadata"]["HTTPStatusCode"]
                check(status == 400, f"{label}: status {status}, expected 400")
            assert_absent(s3, bucket, "sse/malformed")

    list_bucket = bucket_name("boto3-list")
    keys = [f"many/{i // 100:02d}/key-{i:04d}" for i in range(2500)]
    with rep.scenario("list-2500-objects-v2"):
        s3.create_bucket(Bucket=list_bucket)
        with ThreadPoolExecutor(16) as pool:
            list(pool.map(lambda k: s3.put_object(Bucket=list_bucket, Key=k, Body=k.encode()), keys))
        pages = list(s3.get_paginator("list_objects_v2").paginate(Bucket=list_bucket))
        listed = [o["Key"] for p in pages for o in p.get("Contents", [])]
        check(len(pages) == 3, f"{len(pages)} pages of the default 1000 keys, expected 3")
        check(listed == sorted(keys), f"listed {len(listed)} keys, not the 2500 in order")
        small = list(s3.get_paginator("list_objects_v2").paginate(
            Bucket=list_bucket, Prefix="many/1", PaginationConfig={"PageSize": 333}))
        listed = [o["Key"] for p in small for o in p.get("Contents", [])]
        check(listed == [k for k in keys if k.startswith("many/1")], f"prefix many/1 listed {len(listed)}")
        delim = s3.list_objects_v2(Bucket=list_bucket, Prefix="many/", Delimiter="/")
        prefixes = [p["Prefix"] for p in delim.get("CommonPrefixes", [])]
        check(prefixes == [f"many/{i:02d}/" for i in range(25)], f"common prefixes {prefixes[:3]}... ({len(prefixes)})")
        check(delim["KeyCount"] == 25, f"KeyCount {delim['KeyCount']} with delimiter, expected 25")

    with rep.scenario("list-2500-objects-v1"):
        pages = list(s3.get_paginator("list_objects").paginate(Bucket=list_bucket))
        listed = [o["Key"] for p in pages for o in p.get("Contents", [])]
        check(len(pages) == 3, f"{len(pages)} pages, expected 3")
        check(listed == sorted(keys), f"listed {len(listed)} keys, not the 2500 in order")
        small = list(s3.get_paginator("list_objects").paginate(
            Bucket=list_bucket, Prefix="many/", Delimiter="/", PaginationConfig={"PageSize": 10}))
        prefixes = [p["Prefix"] for page in small for p in page.get("CommonPrefixes", [])]
        check(prefixes == [f"many/{i:02d}/" for i in range(25)], f"{len(prefixes)} common prefixes over pages of 10")

    with rep.scenario("delete-objects-batch"):
        for start in range(0, len(keys), 1000):
            batch = keys[start:start + 1000]
            out = s3.delete_objects(Bucket=list_bucket, Delete={"Objects": [{"Key": k} for k in batch]})
            check(not out.get("Errors"), f"errors: {out.get('Errors', [])[:2]}")
            check(len(out.get("Deleted", [])) == len(batch), f"{len(out.get('Deleted', []))} deleted of {len(batch)}")
        out = s3.delete_objects(Bucket=list_bucket, Delete={"Objects": [{"Key": "never-there"}], "Quiet": True})
        check(not out.get("Errors") and not out.get("Deleted"),
              f"quiet delete of a missing key listed Deleted={out.get('Deleted')} Errors={out.get('Errors')}")
        check(s3.list_objects_v2(Bucket=list_bucket)["KeyCount"] == 0, "bucket not empty after batch delete")
        s3.delete_bucket(Bucket=list_bucket)
        expect_events(list_bucket, keys[0], ["v1.object.put", "v1.object.deleted"])

    with rep.scenario("metadata-and-tags"):
        key = "meta/tagged"
        s3.put_object(Bucket=bucket, Key=key, Body=b"meta", ContentType="application/x-test",
                      CacheControl="max-age=60", ContentDisposition='attachment; filename="a.txt"',
                      Metadata={"build-id": "1234", "sha": "abc"}, Tagging="team=release&stage=rc")
        head = s3.head_object(Bucket=bucket, Key=key)
        check(head["Metadata"] == {"build-id": "1234", "sha": "abc"}, f"metadata {head['Metadata']}")
        check(head["ContentType"] == "application/x-test", f"content type {head['ContentType']}")
        check(head.get("CacheControl") == "max-age=60", f"cache control {head.get('CacheControl')}")
        check(head.get("ContentDisposition") == 'attachment; filename="a.txt"', f"disposition {head.get('ContentDisposition')}")
        tags = {t["Key"]: t["Value"] for t in s3.get_object_tagging(Bucket=bucket, Key=key)["TagSet"]}
        check(tags == {"team": "release", "stage": "rc"}, f"tags at PUT {tags}")
        s3.put_object_tagging(Bucket=bucket, Key=key, Tagging={"TagSet": [{"Key": "stage", "Value": "final"}]})
        tags = {t["Key"]: t["Value"] for t in s3.get_object_tagging(Bucket=bucket, Key=key)["TagSet"]}
        check(tags == {"stage": "final"}, f"tags after PutObjectTagging {tags}")
        expect_events(bucket, key, ["v1.object.put", "v1.object.tagging.set"])

    with rep.scenario("awkward-keys"):
        awkward = ["with space", "plus+sign", "percent%20literal", "unicode-é-日本", "a//double/slash",
                   "question?mark", "hash#tag", "tilde~and=equals&amp", "trailing/", "(parens) [brackets]"]
        for key in awkward:
            s3.put_object(Bucket=bucket, Key=f"awkward/{key}", Body=key.encode())
        for key in awkward:
            body = s3.get_object(Bucket=bucket, Key=f"awkward/{key}")["Body"].read()
            check(body == key.encode(), f"{key!r}: wrong body")
        listed = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="awkward/")["Contents"]]
        check(listed == sorted(f"awkward/{k}" for k in awkward), f"listed {listed}")

    for mode in MODES:
        s3m = client(mode)
        for algorithm in (None, *ALGORITHMS):
            name = f"checksum-{mode}-{(algorithm or 'default').lower()}"
            with rep.scenario(name):
                data = os.urandom(70_000)
                key = f"checksum/{mode}/{algorithm}"
                extra = {"ChecksumAlgorithm": algorithm} if algorithm else {}
                s3m.put_object(Bucket=bucket, Key=key, Body=data, **extra)
                got = s3m.get_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
                check(got["Body"].read() == data, "GET bytes differ")
                if algorithm:
                    head = s3m.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
                    stored = head.get(f"Checksum{algorithm}")
                    want = checksum_b64(algorithm, data)
                    check(stored == want, f"stored {algorithm} {stored!r} != {want!r}")
                expect_events(bucket, key, ["v1.object.put"])
            # A multipart upload whose parts carry the checksum, for each algorithm.
            if algorithm:
                with rep.scenario(f"multipart-checksum-{mode}-{algorithm.lower()}"):
                    key = f"checksum-mpu/{mode}/{algorithm}"
                    parts_data = [os.urandom(5 * MIB), os.urandom(1234)]
                    mpu = s3m.create_multipart_upload(Bucket=bucket, Key=key, ChecksumAlgorithm=algorithm)
                    parts = []
                    for number, data in enumerate(parts_data, 1):
                        out = s3m.upload_part(Bucket=bucket, Key=key, UploadId=mpu["UploadId"], PartNumber=number,
                                              Body=data, ChecksumAlgorithm=algorithm)
                        want = checksum_b64(algorithm, data)
                        check(out.get(f"Checksum{algorithm}") == want,
                              f"part {number} {algorithm} {out.get(f'Checksum{algorithm}')!r} != {want!r}")
                        parts.append({"PartNumber": number, "ETag": out["ETag"], f"Checksum{algorithm}": want})
                    s3m.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=mpu["UploadId"],
                                                  MultipartUpload={"Parts": parts})
                    got = s3m.get_object(Bucket=bucket, Key=key)["Body"].read()
                    check(got == b"".join(parts_data), "GET bytes differ from the parts")

    for algorithm in ALGORITHMS:
        with rep.scenario(f"bad-checksum-refused-{algorithm.lower()}"):
            key = f"bad-checksum/{algorithm}"
            wrong = checksum_b64(algorithm, b"not the body")
            expect_error(("BadDigest", "InvalidRequest"), s3.put_object, Bucket=bucket, Key=key, Body=b"the body",
                         **{f"Checksum{algorithm}": wrong})
            assert_absent(s3, bucket, key)
    with rep.scenario("bad-content-md5-refused"):
        key = "bad-checksum/content-md5"
        wrong = base64.b64encode(hashlib.md5(b"not the body").digest()).decode()
        expect_error("BadDigest", client("when_required").put_object, Bucket=bucket, Key=key, Body=b"the body",
                     ContentMD5=wrong)
        assert_absent(s3, bucket, key)

    missing = bucket_name("boto3-missing")
    with rep.scenario("error-no-such-bucket"):
        expect_error("NoSuchBucket", s3.get_object, Bucket=missing, Key="k")
        expect_error("NoSuchBucket", s3.put_object, Bucket=missing, Key="k", Body=b"x")
        expect_error("NoSuchBucket", s3.list_objects_v2, Bucket=missing)
    with rep.scenario("error-no-such-key"):
        expect_error("NoSuchKey", s3.get_object, Bucket=bucket, Key="no/such/key")
        expect_error("404", s3.head_object, Bucket=bucket, Key="no/such/key")
    with rep.scenario("error-bucket-not-empty"):
        expect_error("BucketNotEmpty", s3.delete_bucket, Bucket=bucket)
    with rep.scenario("recreate-own-bucket-keeps-objects"):
        # us-east-1 answers 200 to re-creating a bucket one owns (other regions
        # BucketAlreadyOwnedByYou, and so do moto and RGW); either way nothing in it may be lost.
        before = s3.list_objects_v2(Bucket=bucket)["KeyCount"]
        try:
            s3.create_bucket(Bucket=bucket)
        except botocore.exceptions.ClientError as err:
            check(error_code(err) == "BucketAlreadyOwnedByYou" and not DATA_DIR, f"re-create answered {error_code(err)}")
        after = s3.list_objects_v2(Bucket=bucket)["KeyCount"]
        check(after == before and before > 0, f"{before} objects before re-creating the bucket, {after} after")
    with rep.scenario("error-no-such-upload"):
        expect_error("NoSuchUpload", s3.abort_multipart_upload, Bucket=bucket, Key="k", UploadId="nonexistent-upload")
        expect_error("NoSuchUpload", s3.upload_part, Bucket=bucket, Key="k", UploadId="nonexistent-upload",
                     PartNumber=1, Body=b"x")
    with rep.scenario("error-invalid-part"):
        mpu = s3.create_multipart_upload(Bucket=bucket, Key="invalid-part")
        s3.upload_part(Bucket=bucket, Key="invalid-part", UploadId=mpu["UploadId"], PartNumber=1, Body=b"x")
        expect_error("InvalidPart", s3.complete_multipart_upload, Bucket=bucket, Key="invalid-part",
                     UploadId=mpu["UploadId"],
                     MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": '"' + "0" * 32 + '"'}]})
        s3.abort_multipart_upload(Bucket=bucket, Key="invalid-part", UploadId=mpu["UploadId"])
        assert_absent(s3, bucket, "invalid-part")

    with rep.scenario("bucket-policy-public-read"):
        # A policy granting anonymous reads of one prefix: an unsigned client reads there and
        # nowhere else; the policy reads back as written, and removing it closes the bucket.
        shared = bucket_name("boto3-policy")
        s3.create_bucket(Bucket=shared)
        s3.put_object(Bucket=shared, Key="public/a.txt", Body=b"for everyone")
        s3.put_object(Bucket=shared, Key="private/b.txt", Body=b"for us")
        anonymous = client_with(signature_version=botocore.UNSIGNED)
        expect_error("AccessDenied", anonymous.get_object, Bucket=shared, Key="public/a.txt")
        expect_error("MalformedPolicy", s3.put_bucket_policy, Bucket=shared, Policy="not a policy")
        policy = json.dumps({
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
                           "Resource": f"arn:aws:s3:::{shared}/public/*"}],
        })
        s3.put_bucket_policy(Bucket=shared, Policy=policy)
        got = s3.get_bucket_policy(Bucket=shared)["Policy"]
        check(json.loads(got) == json.loads(policy), f"policy read back as {got}")
        read = anonymous.get_object(Bucket=shared, Key="public/a.txt")["Body"].read()
        check(read == b"for everyone", f"anonymous read {read!r}")
        expect_error("AccessDenied", anonymous.get_object, Bucket=shared, Key="private/b.txt")
        expect_error("AccessDenied", anonymous.put_object, Bucket=shared, Key="public/new", Body=b"x")
        expect_error("AccessDenied", anonymous.list_objects_v2, Bucket=shared)
        s3.delete_bucket_policy(Bucket=shared)
        expect_error("NoSuchBucketPolicy", s3.get_bucket_policy, Bucket=shared)
        expect_error("AccessDenied", anonymous.get_object, Bucket=shared, Key="public/a.txt")
        expect_events(shared, types=["v1.bucket.created", "v1.bucket.policy.set", "v1.bucket.policy.deleted"])
        s3.delete_objects(Bucket=shared, Delete={"Objects": [{"Key": "public/a.txt"}, {"Key": "private/b.txt"}]})
        s3.delete_bucket(Bucket=shared)

    if not DATA_DIR:
        rep.skip("iam-user-policy-conditions-presigned", "the IAM API checked here is artifact-store's")
    else:
        with rep.scenario("iam-user-policy-conditions-presigned"):
            # A user made through boto3's IAM client may do what its policy allows, under the
            # policy's conditions, signed or presigned, and nothing once its key is inactive.
            iam = boto3.client("iam", endpoint_url=ENDPOINT_URL, region_name="us-east-1", verify=CA_BUNDLE or True)
            shared = bucket_name("boto3-iam")
            s3.create_bucket(Bucket=shared)
            s3.put_object(Bucket=shared, Key="reports/a.csv", Body=b"numbers")
            s3.put_object(Bucket=shared, Key="secret/b.txt", Body=b"not for reports")
            user = f"boto3-{uuid.uuid4().hex[:8]}"
            iam.create_user(UserName=user)
            key = iam.create_access_key(UserName=user)["AccessKey"]
            limited = boto3.client(
                "s3", endpoint_url=ENDPOINT_URL, region_name="us-east-1", verify=CA_BUNDLE or True,
                aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"],
                config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
            )
            expect_error("AccessDenied", limited.get_object, Bucket=shared, Key="reports/a.csv")
            policy = {"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{shared}/reports/*",
                 "Condition": {"IpAddress": {"aws:SourceIp": ["127.0.0.0/8", "::1/128"]}}},
                {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": f"arn:aws:s3:::{shared}",
                 "Condition": {"StringLike": {"s3:prefix": "reports/*"}}},
            ]}
            iam.put_user_policy(UserName=user, PolicyName="reports", PolicyDocument=json.dumps(policy))
            read = limited.get_object(Bucket=shared, Key="reports/a.csv")["Body"].read()
            check(read == b"numbers", f"allowed read {read!r}")
            expect_error("AccessDenied", limited.get_object, Bucket=shared, Key="secret/b.txt")
            listed = limited.list_objects_v2(Bucket=shared, Prefix="reports/")
            check([o["Key"] for o in listed.get("Contents", [])] == ["reports/a.csv"], f"listed {listed.get('Contents')}")
            expect_error("AccessDenied", limited.list_objects_v2, Bucket=shared, Prefix="secret/")
            allowed = limited.generate_presigned_url("get_object", Params={"Bucket": shared, "Key": "reports/a.csv"})
            got = requests.get(allowed, verify=CA_BUNDLE or True, timeout=30)
            check(got.status_code == 200 and got.content == b"numbers", f"presigned read {got.status_code}")
            denied = limited.generate_presigned_url("get_object", Params={"Bucket": shared, "Key": "secret/b.txt"})
            got = requests.get(denied, verify=CA_BUNDLE or True, timeout=30)
            check(got.status_code == 403 and b"AccessDenied" in got.content, f"presigned denied {got.status_code}")
            iam.update_access_key(UserName=user, AccessKeyId=key["AccessKeyId"], Status="Inactive")
            got = requests.get(allowed, verify=CA_BUNDLE or True, timeout=30)
            check(got.status_code == 403 and b"InvalidAccessKeyId" in got.content, f"inactive key {got.status_code}")
            iam.delete_access_key(UserName=user, AccessKeyId=key["AccessKeyId"])
            iam.delete_user_policy(UserName=user, PolicyName="reports")
            iam.delete_user(UserName=user)
            expect_error("NoSuchEntity", iam.get_user, UserName=user)
            s3.delete_objects(Bucket=shared, Delete={"Objects": [{"Key": "reports/a.csv"}, {"Key": "secret/b.txt"}]})
            s3.delete_bucket(Bucket=shared)

    with rep.scenario("bucket-acl-ownership"):
        # ACLs as boto3 users set them: enabled by the bucket's ownership, a public-read bucket
        # listed anonymously, the public access block's two ACL settings, and what is refused.
        shared = bucket_name("boto3-acl")
        expect_error("InvalidBucketAclWithObjectOwnership", s3.create_bucket, Bucket=shared, ACL="public-read")
        s3.create_bucket(Bucket=shared, ObjectOwnership="ObjectWriter")
        s3.put_object(Bucket=shared, Key="listed.txt", Body=b"x")
        rules = s3.get_bucket_ownership_controls(Bucket=shared)["OwnershipControls"]["Rules"]
        check(rules == [{"ObjectOwnership": "ObjectWriter"}], f"ownership {rules}")
        anonymous_list = lambda: requests.get(f"{ENDPOINT_URL}/{shared}?list-type=2", verify=CA_BUNDLE or True, timeout=30)
        check(anonymous_list().status_code == 403, "anonymous list before any grant")
        s3.put_bucket_acl(Bucket=shared, ACL="public-read")
        listed = anonymous_list()
        check(listed.status_code == 200 and b"<Key>listed.txt</Key>" in listed.content, f"public list {listed.status_code}")
        grants = s3.get_bucket_acl(Bucket=shared)["Grants"]
        check({"Grantee": {"Type": "Group", "URI": "http://acs.amazonaws.com/groups/global/AllUsers"},
               "Permission": "READ"} in grants, f"grants {grants}")
        expect_error("UnresolvableGrantByEmailAddress", s3.put_bucket_acl, Bucket=shared,
                     GrantRead='emailAddress="someone@example.com"')
        s3.put_object(Bucket=shared, Key="public.txt", Body=b"p", ACL="public-read")
        public = requests.get(f"{ENDPOINT_URL}/{shared}/public.txt", verify=CA_BUNDLE or True, timeout=30)
        check(public.status_code == 200 and public.content == b"p", f"public-read object {public.status_code}")
        object_grants = s3.get_object_acl(Bucket=shared, Key="public.txt")["Grants"]
        check(any(g["Grantee"].get("URI", "").endswith("/AllUsers") for g in object_grants), f"{object_grants}")
        s3.put_public_access_block(Bucket=shared, PublicAccessBlockConfiguration={"IgnorePublicAcls": True})
        check(anonymous_list().status_code == 403, "public ACL ignored under IgnorePublicAcls")
        s3.put_public_access_block(Bucket=shared, PublicAccessBlockConfiguration={"BlockPublicAcls": True})
        expect_error("AccessDenied", s3.put_bucket_acl, Bucket=shared, ACL="public-read-write")
        s3.delete_public_access_block(Bucket=shared)
        s3.put_bucket_acl(Bucket=shared, ACL="private")
        s3.put_bucket_ownership_controls(Bucket=shared, OwnershipControls={"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]})
        expect_error("AccessControlListNotSupported", s3.put_bucket_acl, Bucket=shared, ACL="public-read")
        expect_events(shared, None, ["v1.bucket.ownership.set", "v1.bucket.acl.set"])
        expect_error("AccessControlListNotSupported", s3.put_object, Bucket=shared, Key="late.txt", Body=b"l",
                     ACL="public-read")
        s3.delete_objects(Bucket=shared, Delete={"Objects": [{"Key": "listed.txt"}, {"Key": "public.txt"}]})
        s3.delete_bucket(Bucket=shared)

    with rep.scenario("presigned-post-form-and-cors"):
        # A browser's upload: CORS rules set with boto3, a preflight from the page's origin, then
        # the form boto3's generate_presigned_post signs, posted as a browser posts it.
        shared = bucket_name("boto3-post")
        origin = "https://app.example.com"
        s3.create_bucket(Bucket=shared)
        s3.put_bucket_cors(Bucket=shared, CORSConfiguration={"CORSRules": [
            {"AllowedOrigins": [origin], "AllowedMethods": ["POST", "GET"], "AllowedHeaders": ["*"],
             "ExposeHeaders": ["ETag"]}]})
        rules = s3.get_bucket_cors(Bucket=shared)["CORSRules"]
        check(rules[0]["AllowedOrigins"] == [origin], f"CORS rules {rules}")
        preflight = requests.options(f"{ENDPOINT_URL}/{shared}", verify=CA_BUNDLE or True, timeout=30, headers={
            "Origin": origin, "Access-Control-Request-Method": "POST"})
        check(preflight.status_code == 200, f"preflight {preflight.status_code} {preflight.text[:200]}")
        check(preflight.headers.get("Access-Control-Allow-Origin") == origin, f"preflight {preflight.headers}")
        tagging = "<Tagging><TagSet><Tag><Key>from</Key><Value>form</Value></Tag></TagSet></Tagging>"
        fields = {"acl": "private", "success_action_status": "201", "x-amz-meta-origin": "browser", "tagging": tagging}
        post = s3.generate_presigned_post(
            shared, "uploads/${filename}", Fields=fields,
            Conditions=[{k: v} for k, v in fields.items()] + [["content-length-range", 1, 1024 * 1024]],
            ExpiresIn=600)
        sent = requests.post(post["url"], data=post["fields"], files={"file": ("photo.jpg", b"jpeg bytes")},
                             headers={"Origin": origin}, verify=CA_BUNDLE or True, timeout=30)
        check(sent.status_code == 201, f"form upload {sent.status_code} {sent.text[:300]}")
        check("<Key>uploads/photo.jpg</Key>" in sent.text, f"201 document {sent.text[:300]}")
        check(sent.headers.get("Access-Control-Allow-Origin") == origin, f"form answer headers {sent.headers}")
        stored = s3.get_object(Bucket=shared, Key="uploads/photo.jpg")
        check(stored["Body"].read() == b"jpeg bytes", "stored bytes")
        check(stored["Metadata"] == {"origin": "browser"}, f"metadata {stored['Metadata']}")
        check(f'"{stored["ETag"].strip(chr(34))}"' in sent.text or "&quot;" in sent.text, f"quoted ETag {sent.text}")
        tags = s3.get_object_tagging(Bucket=shared, Key="uploads/photo.jpg")["TagSet"]
        check(tags == [{"Key": "from", "Value": "form"}], f"tags {tags}")
        expect_events(shared, "uploads/photo.jpg", ["v1.object.put"])
        # A field the signed policy does not name is refused, and nothing is stored.
        sneaked = dict(post["fields"], **{"x-amz-meta-sneaked": "in"})
        refused = requests.post(post["url"], data=sneaked, files={"file": ("other.jpg", b"x")},
                                verify=CA_BUNDLE or True, timeout=30)
        check(refused.status_code == 403 and b"AccessDenied" in refused.content, f"extra field {refused.status_code}")
        assert_absent(s3, shared, "uploads/other.jpg")
        s3.delete_object(Bucket=shared, Key="uploads/photo.jpg")
        s3.delete_bucket_cors(Bucket=shared)
        s3.delete_bucket(Bucket=shared)

    with rep.scenario("delete-and-remove-bucket"):
        s3.delete_object(Bucket=bucket, Key="range")
        assert_absent(s3, bucket, "range")
        s3.delete_object(Bucket=bucket, Key="range")  # deleting a missing key is not an error
        expect_events(bucket, "range", ["v1.object.put", "v1.object.deleted"])
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            objects = [{"Key": o["Key"]} for o in page.get("Contents", [])]
            if objects:
                s3.delete_objects(Bucket=bucket, Delete={"Objects": objects, "Quiet": True})
        s3.delete_bucket(Bucket=bucket)
        expect_error(("NoSuchBucket", "404"), s3.head_bucket, Bucket=bucket)

    aws_bucket = bucket_name("boto3-aws")
    s3.create_bucket(Bucket=aws_bucket)
    boto3_aws_behaviours.run(rep, s3, aws_bucket)

    rep.finish()


if __name__ == "__main__":
    print(f"boto3 {boto3.__version__}, botocore {botocore.__version__}", flush=True)
    main()
