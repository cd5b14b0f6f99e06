"""boto3 scenarios of S3 behaviours that SDKs and their test suites rely on, each compared with
what AWS S3 documents (codes, statuses and headers exactly): error bodies, conditional writes,
multipart completion and checksums, part numbers, copy ranges, listing and tagging details.

Run by boto3_scenarios.py with its reporter and client; `run` is the entry point.
"""

import base64
import datetime
import hashlib
import http.client
import os
import urllib.parse
import xml.etree.ElementTree as ET

import boto3
import requests

from common import CA_BUNDLE, DATA_DIR, ENDPOINT_URL, check, expect_error

MIB = 1024 * 1024


def status(err):
    return err.response["ResponseMetadata"]["HTTPStatusCode"]


def expect_status_error(want_status, want_code, call, **kwargs):
    err = expect_error(want_code, call, **kwargs)
    check(status(err) == want_status, f"{want_code}: status {status(err)}, expected {want_status}")
    return err


def sha256_b64(data):
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def two_part_upload(s3, bucket, key, algorithm="SHA256"):
    """A started upload of two parts (5 MiB and 4 bytes) with `algorithm`; returns (id, parts)."""
    extra = {"ChecksumAlgorithm": algorithm} if algorithm else {}
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key=key, **extra)["UploadId"]
    parts = []
    for number, body in ((1, os.urandom(5 * MIB)), (2, b"tail")):
        part = s3.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=body, **extra)
        entry = {"PartNumber": number, "ETag": part["ETag"]}
        if algorithm:
            entry[f"Checksum{algorithm}"] = part[f"Checksum{algorithm}"]
        parts.append(entry)
    return upload_id, parts


def run(rep, s3, bucket):
    """Runs every scenario against `bucket` (created, versioning never enabled)."""

    with rep.scenario("aws-error-body-names-request-and-host"):
        # Unsigned and signed (presigned) refusals alike carry the ids AWS puts in the body.
        missing = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "no/such/key"})
        for url, code in ((f"{ENDPOINT_URL}/{bucket}/no/such/key", "AccessDenied"), (missing, "NoSuchKey")):
            response = requests.get(url, verify=CA_BUNDLE or True, timeout=30)
            body = ET.fromstring(response.content)
            check(body.findtext("Code") == code, f"{url}: code {body.findtext('Code')}")
            request_id = response.headers.get("x-amz-request-id")
            check(request_id and body.findtext("RequestId") == request_id,
                  f"<RequestId> {body.findtext('RequestId')!r} != x-amz-request-id {request_id!r}")
            host_id = response.headers.get("x-amz-id-2")
            check(host_id and body.findtext("HostId") == host_id,
                  f"<HostId> {body.findtext('HostId')!r} != x-amz-id-2 {host_id!r}")

    with rep.scenario("aws-put-without-versioning-sends-no-version-id"):
        put = s3.put_object(Bucket=bucket, Key="plain", Body=b"plain")
        s3.put_object(Bucket=bucket, Key="gone", Body=b"gone")
        answers = {
            "PutObject": put,
            "CopyObject": s3.copy_object(Bucket=bucket, Key="copied", CopySource={"Bucket": bucket, "Key": "plain"}),
            "HeadObject": s3.head_object(Bucket=bucket, Key="plain"),
            "DeleteObject": s3.delete_object(Bucket=bucket, Key="gone"),
        }
        for operation, answer in answers.items():
            headers = answer["ResponseMetadata"]["HTTPHeaders"]
            check("x-amz-version-id" not in headers, f"{operation}: x-amz-version-id {headers.get('x-amz-version-id')!r}")

    with rep.scenario("aws-head-sends-tagging-count"):
        s3.put_object(Bucket=bucket, Key="tagged", Body=b"x", Tagging="a=1&b=2")
        head = s3.head_object(Bucket=bucket, Key="tagged")["ResponseMetadata"]["HTTPHeaders"]
        check(head.get("x-amz-tagging-count") == "2", f"HEAD x-amz-tagging-count {head.get('x-amz-tagging-count')!r}")
        got = s3.get_object(Bucket=bucket, Key="tagged")
        check(got.get("TagCount") == 2, f"GET TagCount {got.get('TagCount')!r}")
        untagged = s3.head_object(Bucket=bucket, Key="plain")["ResponseMetadata"]["HTTPHeaders"]
        check("x-amz-tagging-count" not in untagged, "x-amz-tagging-count on an untagged object")

    with rep.scenario("aws-list-empty-delimiter-not-echoed"):
        for listed in (s3.list_objects(Bucket=bucket, Delimiter=""), s3.list_objects_v2(Bucket=bucket, Delimiter="")):
            check("Delimiter" not in listed, f"<Delimiter> echoed: {listed.get('Delimiter')!r}")
            check(not listed.get("CommonPrefixes"), "an empty delimiter grouped keys")

    with rep.scenario("aws-list-prefix-round-trips-url-encoding"):
        # botocore asks for encoding-type=url and decodes what S3 encodes: keys, and the
        # top-level Prefix of ListObjectsV2 but not of ListObjects, which S3 leaves as given.
        # Either way the caller sees what it sent.
        s3.put_object(Bucket=bucket, Key="a b/ü+c", Body=b"x")
        for listed in (s3.list_objects(Bucket=bucket, Prefix="a b/"), s3.list_objects_v2(Bucket=bucket, Prefix="a b/")):
            check(listed.get("Prefix") == "a b/", f"Prefix {listed.get('Prefix')!r}")
            keys = [o["Key"] for o in listed.get("Contents", [])]
            check(keys == ["a b/ü+c"], f"keys {keys}")
        # Asked for explicitly, botocore decodes nothing: the raw elements show.
        v1 = s3.list_objects(Bucket=bucket, Prefix="a b/", EncodingType="url")
        check(v1.get("Prefix") == "a b/", f"ListObjects Prefix {v1.get('Prefix')!r}")
        v2 = s3.list_objects_v2(Bucket=bucket, Prefix="a b/", EncodingType="url")
        check(v2.get("Prefix") == "a%20b/", f"ListObjectsV2 Prefix {v2.get('Prefix')!r}")
        check([o["Key"] for o in v1["Contents"]] == ["a%20b/%C3%BC%2Bc"], f"encoded keys {v1['Contents']}")

    with rep.scenario("aws-create-own-bucket-again-in-us-east-1"):
        # 200, and the bucket's ACL reset to the one asked for (private): AWS's legacy answer in
        # us-east-1. The objects stay.
        s3.put_bucket_ownership_controls(Bucket=bucket,
                                         OwnershipControls={"Rules": [{"ObjectOwnership": "BucketOwnerPreferred"}]})
        owner = s3.get_bucket_acl(Bucket=bucket)["Owner"]["ID"]
        s3.put_bucket_acl(Bucket=bucket, GrantRead=f"id={owner}", GrantFullControl=f"id={owner}")
        check(len(s3.get_bucket_acl(Bucket=bucket)["Grants"]) == 2, "the READ grant was not set")
        again = s3.create_bucket(Bucket=bucket)
        check(again["ResponseMetadata"]["HTTPStatusCode"] == 200, f"status {again['ResponseMetadata']}")
        grants = s3.get_bucket_acl(Bucket=bucket)["Grants"]
        check([g["Permission"] for g in grants] == ["FULL_CONTROL"], f"ACL after re-creating: {grants}")
        check(s3.head_object(Bucket=bucket, Key="plain")["ContentLength"] == 5, "the bucket lost an object")
        s3.delete_bucket_ownership_controls(Bucket=bucket)

    with rep.scenario("aws-bucket-tagging"):
        expect_status_error(404, "NoSuchTagSet", s3.get_bucket_tagging, Bucket=bucket)
        tags = [{"Key": "team", "Value": "builds"}, {"Key": "cost centre", "Value": "42"}]
        s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": tags})
        got = sorted(s3.get_bucket_tagging(Bucket=bucket)["TagSet"], key=lambda t: t["Key"])
        check(got == sorted(tags, key=lambda t: t["Key"]), f"TagSet {got}")
        expect_status_error(400, "InvalidTag", s3.put_bucket_tagging, Bucket=bucket,
                            Tagging={"TagSet": [{"Key": "aws:reserved", "Value": "x"}]})
        expect_status_error(400, "InvalidTag", s3.put_bucket_tagging, Bucket=bucket,
                            Tagging={"TagSet": [{"Key": f"k{i}", "Value": "v"} for i in range(51)]})
        check(len(s3.get_bucket_tagging(Bucket=bucket)["TagSet"]) == 2, "a refused set replaced the tags")
        deleted = s3.delete_bucket_tagging(Bucket=bucket)
        check(deleted["ResponseMetadata"]["HTTPStatusCode"] == 204, f"delete: {deleted['ResponseMetadata']}")
        expect_status_error(404, "NoSuchTagSet", s3.get_bucket_tagging, Bucket=bucket)
        expect_status_error(404, "NoSuchBucket", s3.get_bucket_tagging, Bucket=bucket + "-missing")
        if DATA_DIR:
            import events

            recorded = [e["type"] for e in events.load(DATA_DIR, bucket)]
            check(recorded.count("v1.bucket.tagging.set") == 1 and recorded.count("v1.bucket.tagging.deleted") == 1,
                  f"events {recorded}")

    with rep.scenario("aws-lifecycle-legacy-prefix-and-transition-dates"):
        legacy = {"ID": "legacy", "Prefix": "logs/", "Status": "Enabled", "Expiration": {"Days": 3}}
        current = {"ID": "filtered", "Filter": {"Prefix": "tmp/"}, "Status": "Enabled", "Expiration": {"Days": 1}}
        s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": [legacy, current]})
        rules = {r["ID"]: r for r in s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]}
        check(rules["legacy"].get("Prefix") == "logs/" and "Filter" not in rules["legacy"], f"legacy {rules['legacy']}")
        check(rules["filtered"].get("Filter") == {"Prefix": "tmp/"} and "Prefix" not in rules["filtered"],
              f"filtered {rules['filtered']}")
        not_midnight = {"ID": "t", "Filter": {"Prefix": ""}, "Status": "Enabled",
                        "Transitions": [{"Date": "2030-01-01T01:00:00Z", "StorageClass": "GLACIER"}]}
        expect_status_error(400, "InvalidArgument", s3.put_bucket_lifecycle_configuration, Bucket=bucket,
                            LifecycleConfiguration={"Rules": [not_midnight]})
        s3.delete_bucket_lifecycle(Bucket=bucket)

    with rep.scenario("aws-expected-bucket-owner"):
        iam = boto3.client("iam", endpoint_url=ENDPOINT_URL, verify=CA_BUNDLE or True)
        account = iam.get_user()["User"]["Arn"].split(":")[4]
        other = "000000000000" if account != "000000000000" else "111111111111"
        s3.put_object(Bucket=bucket, Key="owned", Body=b"x", ExpectedBucketOwner=account)
        expect_status_error(403, "AccessDenied", s3.put_object, Bucket=bucket, Key="not-owned", Body=b"x",
                            ExpectedBucketOwner=other)
        expect_error("NoSuchKey", s3.get_object, Bucket=bucket, Key="not-owned")
        expect_status_error(403, "AccessDenied", s3.get_object, Bucket=bucket, Key="owned",
                            ExpectedBucketOwner=other)
        expect_status_error(403, "AccessDenied", s3.copy_object, Bucket=bucket, Key="owned-copy",
                            CopySource={"Bucket": bucket, "Key": "owned"}, ExpectedSourceBucketOwner=other)
        s3.copy_object(Bucket=bucket, Key="owned-copy", CopySource={"Bucket": bucket, "Key": "owned"},
                       ExpectedSourceBucketOwner=account, ExpectedBucketOwner=account)

    with rep.scenario("aws-mfa-delete-refused"):
        # No MFA device here: enabling MFA delete is refused rather than ignored; Disabled is
        # what every bucket has, and is accepted.
        mfa_bucket = bucket + "-mfa"
        s3.create_bucket(Bucket=mfa_bucket)
        expect_status_error(501, "NotImplemented", s3.put_bucket_versioning, Bucket=mfa_bucket,
                            VersioningConfiguration={"Status": "Enabled", "MFADelete": "Enabled"})
        check("Status" not in s3.get_bucket_versioning(Bucket=mfa_bucket), "a refused configuration applied")
        s3.put_bucket_versioning(Bucket=mfa_bucket, VersioningConfiguration={"Status": "Enabled", "MFADelete": "Disabled"})
        check(s3.get_bucket_versioning(Bucket=mfa_bucket).get("Status") == "Enabled", "versioning not enabled")
        s3.delete_bucket(Bucket=mfa_bucket)

    with rep.scenario("aws-conditional-put"):
        first = s3.put_object(Bucket=bucket, Key="cond", Body=b"one")["ETag"]
        expect_status_error(412, "PreconditionFailed", s3.put_object, Bucket=bucket, Key="cond", Body=b"x",
                            IfNoneMatch="*")
        expect_status_error(412, "PreconditionFailed", s3.put_object, Bucket=bucket, Key="cond", Body=b"x",
                            IfMatch='"0123456789abcdef0123456789abcdef"')
        expect_status_error(404, "NoSuchKey", s3.put_object, Bucket=bucket, Key="cond-missing", Body=b"x",
                            IfMatch=first)
        # If-None-Match takes only '*' on writes: AWS refuses any other value as not implemented.
        expect_status_error(501, "NotImplemented", s3.put_object, Bucket=bucket, Key="cond", Body=b"x",
                            IfNoneMatch=first)
        second = s3.put_object(Bucket=bucket, Key="cond", Body=b"two", IfMatch=first)["ETag"]
        check(s3.get_object(Bucket=bucket, Key="cond")["ETag"] == second, "If-Match write not applied")

    with rep.scenario("aws-conditional-delete"):
        # If-Match on DeleteObject, and a key's ETag in DeleteObjects (AWS, 2025): the delete
        # happens only while the current version has that ETag.
        etag = s3.put_object(Bucket=bucket, Key="del-cond", Body=b"keep me")["ETag"]
        expect_status_error(412, "PreconditionFailed", s3.delete_object, Bucket=bucket, Key="del-cond",
                            IfMatch='"0123456789abcdef0123456789abcdef"')
        check(s3.get_object(Bucket=bucket, Key="del-cond")["Body"].read() == b"keep me", "a refused delete deleted")
        result = s3.delete_objects(Bucket=bucket, Delete={"Objects": [
            {"Key": "del-cond", "ETag": '"0123456789abcdef0123456789abcdef"'}]})
        codes = [e["Code"] for e in result.get("Errors", [])]
        check(codes == ["PreconditionFailed"] and not result.get("Deleted"), f"DeleteObjects: {result}")
        s3.delete_object(Bucket=bucket, Key="del-cond", IfMatch=etag)
        expect_error("NoSuchKey", s3.get_object, Bucket=bucket, Key="del-cond")
        expect_status_error(404, "NoSuchKey", s3.delete_object, Bucket=bucket, Key="del-cond", IfMatch="*")
        s3.put_object(Bucket=bucket, Key="del-cond", Body=b"again")
        s3.delete_object(Bucket=bucket, Key="del-cond", IfMatch="*")
        expect_error("NoSuchKey", s3.get_object, Bucket=bucket, Key="del-cond")
        # Conditions this gateway does not evaluate (directory buckets on AWS) refuse the
        # request rather than let it through unconditionally.
        s3.put_object(Bucket=bucket, Key="del-cond", Body=b"kept")
        expect_status_error(501, "NotImplemented", s3.delete_object, Bucket=bucket, Key="del-cond", IfMatchSize=4)
        expect_status_error(501, "NotImplemented", s3.delete_objects, Bucket=bucket,
                            Delete={"Objects": [{"Key": "del-cond", "Size": 4}]})
        check(s3.get_object(Bucket=bucket, Key="del-cond")["Body"].read() == b"kept", "a refused delete deleted")
        upload_id = s3.create_multipart_upload(Bucket=bucket, Key="abort-cond")["UploadId"]
        expect_status_error(501, "NotImplemented", s3.abort_multipart_upload, Bucket=bucket, Key="abort-cond",
                            UploadId=upload_id, IfMatchInitiatedTime=datetime.datetime.now(datetime.timezone.utc))
        check(s3.list_parts(Bucket=bucket, Key="abort-cond", UploadId=upload_id)["UploadId"] == upload_id,
              "a refused abort aborted")
        s3.abort_multipart_upload(Bucket=bucket, Key="abort-cond", UploadId=upload_id)
        expect_status_error(501, "NotImplemented", s3.put_object, Bucket=bucket, Key="del-cond", Body=b"more",
                            WriteOffsetBytes=4)
        check(s3.get_object(Bucket=bucket, Key="del-cond")["Body"].read() == b"kept", "a refused append wrote")

    with rep.scenario("aws-complete-checks-conditions"):
        s3.put_object(Bucket=bucket, Key="mp-cond", Body=b"existing")
        current = s3.head_object(Bucket=bucket, Key="mp-cond")["ETag"]
        upload_id, parts = two_part_upload(s3, bucket, "mp-cond", algorithm=None)
        done = {"Parts": parts}
        expect_status_error(412, "PreconditionFailed", s3.complete_multipart_upload, Bucket=bucket, Key="mp-cond",
                            UploadId=upload_id, MultipartUpload=done, IfNoneMatch="*")
        expect_status_error(412, "PreconditionFailed", s3.complete_multipart_upload, Bucket=bucket, Key="mp-cond",
                            UploadId=upload_id, MultipartUpload=done, IfMatch='"0123456789abcdef0123456789abcdef"')
        check(s3.head_object(Bucket=bucket, Key="mp-cond")["ETag"] == current, "a refused completion wrote")
        # x-amz-mp-object-size: the size the caller expects; another is InvalidRequest.
        expect_status_error(400, "InvalidRequest", s3.complete_multipart_upload, Bucket=bucket, Key="mp-cond",
                            UploadId=upload_id, MultipartUpload=done, MpuObjectSize=5 * MIB + 5)
        completed = s3.complete_multipart_upload(Bucket=bucket, Key="mp-cond", UploadId=upload_id,
                                                 MultipartUpload=done, IfMatch=current, MpuObjectSize=5 * MIB + 4)
        check(completed["ETag"].endswith('-2"'), f"ETag {completed['ETag']}")

    with rep.scenario("aws-complete-twice-answers-the-same"):
        upload_id, parts = two_part_upload(s3, bucket, "mp-twice")
        first = s3.complete_multipart_upload(Bucket=bucket, Key="mp-twice", UploadId=upload_id,
                                             MultipartUpload={"Parts": parts})
        again = s3.complete_multipart_upload(Bucket=bucket, Key="mp-twice", UploadId=upload_id,
                                             MultipartUpload={"Parts": parts})
        for field in ("ETag", "ChecksumSHA256", "ChecksumType", "Key", "Bucket"):
            check(first.get(field) == again.get(field), f"{field}: {first.get(field)!r} then {again.get(field)!r}")
        expect_status_error(404, "NoSuchUpload", s3.complete_multipart_upload, Bucket=bucket, Key="mp-twice",
                            UploadId=upload_id, MultipartUpload={"Parts": parts[:1]})

    with rep.scenario("aws-complete-checks-the-object-checksum"):
        upload_id, parts = two_part_upload(s3, bucket, "mp-sum")
        wrong = sha256_b64(b"not the parts")
        expect_status_error(400, "BadDigest", s3.complete_multipart_upload, Bucket=bucket, Key="mp-sum",
                            UploadId=upload_id, MultipartUpload={"Parts": parts}, ChecksumSHA256=wrong)
        expect_error("NoSuchKey", s3.get_object, Bucket=bucket, Key="mp-sum")
        # The COMPOSITE checksum: SHA-256 of the parts' binary SHA-256s.
        joined = b"".join(base64.b64decode(p["ChecksumSHA256"]) for p in parts)
        right = sha256_b64(joined)
        # With its -<parts> suffix, the claim names the part count too.
        expect_status_error(400, "BadDigest", s3.complete_multipart_upload, Bucket=bucket, Key="mp-sum",
                            UploadId=upload_id, MultipartUpload={"Parts": parts}, ChecksumSHA256=f"{right}-3")
        done = s3.complete_multipart_upload(Bucket=bucket, Key="mp-sum", UploadId=upload_id,
                                            MultipartUpload={"Parts": parts}, ChecksumSHA256=right)
        check(done.get("ChecksumSHA256") == f"{right}-2", f"ChecksumSHA256 {done.get('ChecksumSHA256')}")
        check(done.get("ChecksumType") == "COMPOSITE", f"ChecksumType {done.get('ChecksumType')}")

    with rep.scenario("aws-get-head-checksum-type"):
        for call in (s3.head_object, s3.get_object):
            got = call(Bucket=bucket, Key="mp-sum", ChecksumMode="ENABLED")
            check(got.get("ChecksumType") == "COMPOSITE", f"{call.__name__} multipart {got.get('ChecksumType')}")
            check(got.get("ChecksumSHA256", "").endswith("-2"), f"{call.__name__} {got.get('ChecksumSHA256')}")
        single = s3.put_object(Bucket=bucket, Key="single-sum", Body=b"abc", ChecksumAlgorithm="SHA256")
        for call in (s3.head_object, s3.get_object):
            got = call(Bucket=bucket, Key="single-sum", ChecksumMode="ENABLED")
            check(got.get("ChecksumType") == "FULL_OBJECT", f"{call.__name__} single {got.get('ChecksumType')}")
            check(got.get("ChecksumSHA256") == single["ChecksumSHA256"], f"{call.__name__} {got.get('ChecksumSHA256')}")

    with rep.scenario("aws-get-object-attributes"):
        everything = ["ETag", "Checksum", "ObjectParts", "StorageClass", "ObjectSize"]
        got = s3.get_object_attributes(Bucket=bucket, Key="mp-sum", ObjectAttributes=everything)
        head = s3.head_object(Bucket=bucket, Key="mp-sum", ChecksumMode="ENABLED")
        check(got["ETag"].strip('"') == head["ETag"].strip('"'), f"ETag {got['ETag']} vs {head['ETag']}")
        check(got["ObjectSize"] == 5 * MIB + 4 and got["StorageClass"] == "STANDARD", f"{got}")
        check(got["Checksum"] == {"ChecksumSHA256": head["ChecksumSHA256"].split("-")[0], "ChecksumType": "COMPOSITE"},
              f"Checksum {got['Checksum']}")
        parts = got["ObjectParts"]
        check(parts["TotalPartsCount"] == 2 and [p["Size"] for p in parts["Parts"]] == [5 * MIB, 4], f"{parts}")
        check(all("ChecksumSHA256" in p for p in parts["Parts"]), f"part checksums {parts['Parts']}")
        page = s3.get_object_attributes(Bucket=bucket, Key="mp-sum", ObjectAttributes=["ObjectParts"], MaxParts=1)
        page_parts = page["ObjectParts"]
        check(page_parts["IsTruncated"] and page_parts["NextPartNumberMarker"] == 1
              and [p["PartNumber"] for p in page_parts["Parts"]] == [1], f"first page {page_parts}")
        rest = s3.get_object_attributes(Bucket=bucket, Key="mp-sum", ObjectAttributes=["ObjectParts"],
                                        PartNumberMarker=1)["ObjectParts"]
        check(not rest["IsTruncated"] and [p["PartNumber"] for p in rest["Parts"]] == [2], f"second page {rest}")
        single = s3.get_object_attributes(Bucket=bucket, Key="plain", ObjectAttributes=everything)
        check("ObjectParts" not in single and single["ObjectSize"] == 5, f"single PUT {single}")
        expect_status_error(404, "NoSuchKey", s3.get_object_attributes, Bucket=bucket, Key="no/such/key",
                            ObjectAttributes=["ETag"])
        expect_status_error(400, "InvalidArgument", s3.get_object_attributes, Bucket=bucket, Key="plain",
                            ObjectAttributes=["Colour"])

    with rep.scenario("aws-malformed-checksum-header"):
        # A value that is not base64 of the algorithm's size is refused as AWS refuses it
        # ("Value for x-amz-checksum-crc32 header is invalid."); a well-formed wrong one is BadDigest.
        err = expect_status_error(400, "InvalidRequest", s3.put_object, Bucket=bucket, Key="bad-sum", Body=b"abc",
                                  ChecksumCRC32="!!not base64")
        message = err.response["Error"].get("Message", "")
        check(message == "Value for x-amz-checksum-crc32 header is invalid.", f"message {message!r}")
        expect_status_error(400, "BadDigest", s3.put_object, Bucket=bucket, Key="bad-sum", Body=b"abc",
                            ChecksumCRC32="AAAAAA==")
        expect_error("NoSuchKey", s3.get_object, Bucket=bucket, Key="bad-sum")

    with rep.scenario("aws-part-numbers"):
        for key in ("mp-sum", "plain"):
            expect_status_error(416, "InvalidPartNumber", s3.get_object, Bucket=bucket, Key=key, PartNumber=3)
        whole = s3.get_object(Bucket=bucket, Key="plain", PartNumber=1)
        check(whole["Body"].read() == b"plain" and "PartsCount" not in whole, f"plain part 1: {whole.get('PartsCount')}")
        part2 = s3.head_object(Bucket=bucket, Key="mp-sum", PartNumber=2)
        check(part2.get("PartsCount") == 2 and part2["ContentLength"] == 4, f"part 2 of 2: {part2}")
        upload_id = s3.create_multipart_upload(Bucket=bucket, Key="one-part")["UploadId"]
        etag = s3.upload_part(Bucket=bucket, Key="one-part", UploadId=upload_id, PartNumber=1, Body=b"single")["ETag"]
        s3.complete_multipart_upload(Bucket=bucket, Key="one-part", UploadId=upload_id,
                                     MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]})
        one = s3.head_object(Bucket=bucket, Key="one-part", PartNumber=1)
        check(one.get("PartsCount") == 1, f"PartsCount of a one-part upload: {one.get('PartsCount')}")

    with rep.scenario("aws-upload-part-copy-range-past-end"):
        s3.put_object(Bucket=bucket, Key="copy-src", Body=b"0123456789")
        upload_id = s3.create_multipart_upload(Bucket=bucket, Key="copy-dst")["UploadId"]
        expect_error("InvalidRange", s3.upload_part_copy, Bucket=bucket, Key="copy-dst", UploadId=upload_id,
                     PartNumber=1, CopySource={"Bucket": bucket, "Key": "copy-src"}, CopySourceRange="bytes=5-10")
        copied = s3.upload_part_copy(Bucket=bucket, Key="copy-dst", UploadId=upload_id, PartNumber=1,
                                     CopySource={"Bucket": bucket, "Key": "copy-src"}, CopySourceRange="bytes=5-9")
        check(copied["CopyPartResult"]["ETag"].strip('"') == hashlib.md5(b"56789").hexdigest(), f"{copied}")
        s3.abort_multipart_upload(Bucket=bucket, Key="copy-dst", UploadId=upload_id)

    with rep.scenario("aws-part-uploaded-twice-last-finished-wins"):
        # The first upload of part 1 starts, the second starts and finishes, then the first
        # finishes: S3 keeps the one that finished last.
        key = "race"
        upload_id = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
        slow_body, fast_body = b"A" * 200_000, b"B" * 100
        url = urllib.parse.urlsplit(s3.generate_presigned_url(
            "upload_part", Params={"Bucket": bucket, "Key": key, "UploadId": upload_id, "PartNumber": 1}))
        connection = connect(url)
        connection.putrequest("PUT", f"{url.path}?{url.query}")
        connection.putheader("Content-Length", str(len(slow_body)))
        connection.endheaders()
        connection.send(slow_body[:100_000])
        fast = s3.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=1, Body=fast_body)["ETag"]
        connection.send(slow_body[100_000:])
        response = connection.getresponse()
        slow = response.getheader("ETag")
        check(response.status == 200, f"slow part: {response.status} {response.read()[:200]}")
        connection.close()
        check(slow != fast, "both uploads got one ETag")
        listed = s3.list_parts(Bucket=bucket, Key=key, UploadId=upload_id)["Parts"]
        check([(p["ETag"], p["Size"]) for p in listed] == [(slow, len(slow_body))], f"parts {listed}")
        expect_error("InvalidPart", s3.complete_multipart_upload, Bucket=bucket, Key=key, UploadId=upload_id,
                     MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": fast}]})
        s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id,
                                     MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": slow}]})
        check(s3.get_object(Bucket=bucket, Key=key)["Body"].read() == slow_body, "the object is not the last part")

    with rep.scenario("aws-expect-continue-refusal-then-retry-on-the-connection"):
        # A refusal before the body leaves the connection usable (or closes it, saying so), and
        # a retry on it then succeeds: what SDKs that send Expect: 100-continue do.
        url = urllib.parse.urlsplit(s3.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": "expect"}))
        wrong = urllib.parse.urlsplit(s3.generate_presigned_url(
            "put_object", Params={"Bucket": bucket + "-missing", "Key": "expect"}))
        body = os.urandom(MIB)
        connection = connect(url)
        connection.putrequest("PUT", f"{wrong.path}?{wrong.query}")
        connection.putheader("Content-Length", str(len(body)))
        connection.putheader("Expect", "100-continue")
        connection.endheaders()
        refused = connection.getresponse()
        refused_body = refused.read()
        check(refused.status == 404 and b"NoSuchBucket" in refused_body, f"{refused.status} {refused_body[:200]}")
        if refused.getheader("Connection", "").lower() == "close":
            connection.close()
            connection = connect(url)
        connection.request("PUT", f"{url.path}?{url.query}", body=body)
        retried = connection.getresponse()
        retried_body = retried.read()
        check(retried.status == 200, f"retry: {retried.status} {retried_body[:200]}")
        connection.close()
        got = s3.get_object(Bucket=bucket, Key="expect")["Body"].read()
        check(got == body, "the retried PUT stored other bytes")

    with rep.scenario("aws-chunked-transfer-without-length"):
        # Plain HTTP chunked encoding (not aws-chunked) carries no length: S3 refuses PutObject
        # with 411 MissingContentLength, as here; nothing is written.
        url = urllib.parse.urlsplit(s3.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": "chunked"}))
        connection = connect(url)
        connection.putrequest("PUT", f"{url.path}?{url.query}")
        connection.putheader("Transfer-Encoding", "chunked")
        connection.endheaders()
        connection.send(b"5\r\nhello\r\n0\r\n\r\n")
        response = connection.getresponse()
        answer = response.read()
        connection.close()
        check(response.status == 411 and b"<Code>MissingContentLength</Code>" in answer,
              f"{response.status} {answer[:300]}")
        expect_error("NoSuchKey", s3.get_object, Bucket=bucket, Key="chunked")


def connect(url):
    """A raw HTTP(S) connection to the endpoint of `url`."""
    if url.scheme == "https":
        import ssl

        context = ssl.create_default_context(cafile=CA_BUNDLE) if CA_BUNDLE else ssl.create_default_context()
        return http.client.HTTPSConnection(url.hostname, url.port, context=context, timeout=60)
    return http.client.HTTPConnection(url.hostname, url.port, timeout=60)
