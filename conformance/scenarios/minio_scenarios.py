#!/usr/bin/env python3
"""MinIO Python SDK scenarios against any S3 endpoint given by the environment (see common.py)."""

import hashlib
import io
import os
import sys
from urllib.parse import urlparse

import minio
import requests
import urllib3
from minio import Minio
from minio.commonconfig import CopySource, Tags
from minio.deleteobjects import DeleteObject

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import (  # noqa: E402
    ACCESS_KEY,
    CA_BUNDLE,
    ENDPOINT_URL,
    MIB,
    REGION,
    SECRET_KEY,
    WORK_DIR,
    Reporter,
    bucket_name,
    check,
    expect_error,
    expect_events,
    random_file,
    sha256_file,
)


def client():
    url = urlparse(ENDPOINT_URL)
    secure = url.scheme == "https"
    pool = urllib3.PoolManager(
        cert_reqs="CERT_REQUIRED" if secure else "CERT_NONE",
        ca_certs=CA_BUNDLE if secure else None,
        retries=urllib3.Retry(total=2, backoff_factor=0.2),
    )
    return Minio(url.netloc, access_key=ACCESS_KEY, secret_key=SECRET_KEY, secure=secure, region=REGION,
                 http_client=pool)


def main():
    rep = Reporter("minio-py", minio.__version__)
    mc = client()
    bucket = bucket_name("minio")

    with rep.scenario("make-bucket"):
        mc.make_bucket(bucket)
        check(mc.bucket_exists(bucket), "bucket_exists is false after make_bucket")
        expect_events(bucket, types=["v1.bucket.created"])

    with rep.scenario("put-get-bytes"):
        data = os.urandom(1024)
        result = mc.put_object(bucket, "bytes", io.BytesIO(data), len(data), metadata={"x-amz-meta-build": "7"})
        check(result.etag == hashlib.md5(data).hexdigest(), f"etag {result.etag}")
        response = mc.get_object(bucket, "bytes")
        try:
            check(response.read() == data, "GET bytes differ")
        finally:
            response.close()
            response.release_conn()
        stat = mc.stat_object(bucket, "bytes")
        check(stat.size == len(data), f"size {stat.size}")
        check(stat.metadata.get("x-amz-meta-build") == "7", f"metadata {dict(stat.metadata)}")
        expect_events(bucket, "bytes", ["v1.object.put", "v1.object.retrieved"])

    with rep.scenario("put-stream-unknown-length"):
        # length=-1: the SDK cuts the stream into 5 MiB parts and uploads them as a multipart upload.
        data = os.urandom(11 * MIB + 17)
        result = mc.put_object(bucket, "stream", io.BytesIO(data), -1, part_size=5 * MIB)
        check(result.etag.endswith("-3"), f"multipart etag expected, got {result.etag}")
        response = mc.get_object(bucket, "stream")
        try:
            check(response.read() == data, "GET bytes differ")
        finally:
            response.close()
            response.release_conn()

    with rep.scenario("fput-fget-multipart"):
        src = os.path.join(WORK_DIR, f"minio-{os.getpid()}.up")
        dst = src + ".down"
        random_file(src, 12 * MIB)
        mc.fput_object(bucket, "file", src, part_size=5 * MIB)
        mc.fget_object(bucket, "file", dst)
        check(sha256_file(src) == sha256_file(dst), "downloaded bytes differ")
        expect_events(bucket, "file", ["v1.multipart.completed"], path=src)
        os.remove(src)
        os.remove(dst)

    with rep.scenario("ranged-get"):
        data = os.urandom(5000)
        mc.put_object(bucket, "range", io.BytesIO(data), len(data))
        response = mc.get_object(bucket, "range", offset=1000, length=500)
        try:
            check(response.read() == data[1000:1500], "ranged bytes differ")
        finally:
            response.close()
            response.release_conn()

    with rep.scenario("copy-object"):
        mc.copy_object(bucket, "copy", CopySource(bucket, "range"))
        response = mc.get_object(bucket, "copy")
        try:
            check(response.read() == data, "copied bytes differ")
        finally:
            response.close()
            response.release_conn()

    with rep.scenario("tags"):
        tags = Tags.new_object_tags()
        tags["release"] = "1.0"
        mc.set_object_tags(bucket, "copy", tags)
        got = mc.get_object_tags(bucket, "copy")
        check(dict(got or {}) == {"release": "1.0"}, f"tags {dict(got or {})}")
        expect_events(bucket, "copy", ["v1.object.tagging.set"])

    with rep.scenario("presigned-get"):
        from datetime import timedelta

        url = mc.presigned_get_object(bucket, "range", expires=timedelta(minutes=5))
        r = requests.get(url, verify=CA_BUNDLE or True, timeout=60)
        check(r.status_code == 200 and r.content == data, f"presigned GET {r.status_code}")

    with rep.scenario("list-and-remove-objects"):
        for i in range(120):
            mc.put_object(bucket, f"list/{i:03d}", io.BytesIO(b"x"), 1)
        names = [o.object_name for o in mc.list_objects(bucket, prefix="list/", recursive=True)]
        check(names == [f"list/{i:03d}" for i in range(120)], f"listed {len(names)} keys")
        v1 = [o.object_name for o in mc.list_objects(bucket, prefix="list/", recursive=True, use_api_v1=True)]
        check(v1 == names, f"ListObjects v1 listed {len(v1)} keys")
        errors = list(mc.remove_objects(bucket, [DeleteObject(n) for n in names]))
        check(not errors, f"remove_objects errors: {errors[:2]}")
        check(not list(mc.list_objects(bucket, prefix="list/")), "objects left after remove_objects")

    with rep.scenario("error-codes"):
        expect_error("NoSuchKey", mc.get_object, bucket, "missing")
        expect_error("NoSuchBucket", mc.get_object, bucket_name("minio-missing"), "missing")
        expect_error("BucketNotEmpty", mc.remove_bucket, bucket)

    with rep.scenario("remove-bucket"):
        for o in mc.list_objects(bucket, recursive=True):
            mc.remove_object(bucket, o.object_name)
        mc.remove_bucket(bucket)
        check(not mc.bucket_exists(bucket), "bucket still exists")

    rep.finish()


if __name__ == "__main__":
    main()
