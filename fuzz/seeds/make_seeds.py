#!/usr/bin/env python3
"""Writes the seed corpora of the aws_chunked and signature targets: real requests signed
the way the targets' service checks them (AWS's example key and date, us-east-1), so the
fuzzer starts from inputs that get all the way through s3s.

Run from fuzz/: python3 seeds/make_seeds.py. Checks itself against AWS's published
chunked-upload example first.
"""
import base64, hashlib, hmac, os, struct, zlib

AK, SK = "AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
DATE, REGION = "20130524T000000Z", "us-east-1"
SCOPE = f"{DATE[:8]}/{REGION}/s3/aws4_request"
EMPTY = hashlib.sha256(b"").hexdigest()


def sign(string_to_sign):
    key = ("AWS4" + SK).encode()
    for part in (DATE[:8], REGION, "s3", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()


def authorization(method, path, headers, content_sha256, query=""):
    """(Authorization header, signature) of a request with sorted lowercase `headers`."""
    canonical_headers = "".join(f"{n}:{v}\n" for n, v in headers)
    signed = ";".join(n for n, _ in headers)
    canonical = f"{method}\n{path}\n{query}\n{canonical_headers}\n{signed}\n{content_sha256}"
    sts = f"AWS4-HMAC-SHA256\n{DATE}\n{SCOPE}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
    sig = sign(sts)
    return f"AWS4-HMAC-SHA256 Credential={AK}/{SCOPE}, SignedHeaders={signed}, Signature={sig}", sig


def frame(chunks, seed, signed, trailers):
    """An aws-chunked body: signed chunks chained from `seed`, then trailers."""
    out, prev = b"", seed
    for chunk in list(chunks) + [b""]:
        if signed:
            sts = f"AWS4-HMAC-SHA256-PAYLOAD\n{DATE}\n{SCOPE}\n{prev}\n{EMPTY}\n{hashlib.sha256(chunk).hexdigest()}"
            prev = sign(sts)
            out += f"{len(chunk):x};chunk-signature={prev}\r\n".encode()
        else:
            out += f"{len(chunk):x}\r\n".encode()
        out += chunk
        if chunk:
            out += b"\r\n"
    if trailers:
        lines = "".join(f"{n}:{v}\n" for n, v in sorted(trailers))
        for n, v in trailers:
            out += f"{n}:{v}\r\n".encode()
        if signed:
            sts = f"AWS4-HMAC-SHA256-TRAILER\n{DATE}\n{SCOPE}\n{prev}\n{hashlib.sha256(lines.encode()).hexdigest()}"
            out += f"x-amz-trailer-signature:{sign(sts)}\r\n".encode()
    return out + b"\r\n"


def chunked_headers(mode, content_length, decoded, host="localhost", extra=()):
    headers = [("content-encoding", "aws-chunked"), ("content-length", str(content_length)), ("host", host),
               ("x-amz-content-sha256", mode), ("x-amz-date", DATE), ("x-amz-decoded-content-length", str(decoded))]
    headers += list(extra)
    if mode.endswith("TRAILER"):
        headers.append(("x-amz-trailer", "x-amz-checksum-crc32"))
    return sorted(headers)


def chunked_body(mode, chunks, trailers, path="/bucket/key", host="localhost", extra=()):
    signed = not mode.startswith("STREAMING-UNSIGNED")
    length = len(frame(chunks, "0" * 64, signed, trailers))
    decoded = sum(map(len, chunks))
    headers = chunked_headers(mode, length, decoded, host, extra)
    auth, seed = authorization("PUT", path, headers, mode)
    return headers, auth, frame(chunks, seed, signed, trailers)


def self_check():
    """AWS's "transferring payload in multiple chunks" example."""
    a = [b"a" * 65536, b"a" * 1024]
    _, auth, body = chunked_body("STREAMING-AWS4-HMAC-SHA256-PAYLOAD", a, [], "/examplebucket/chunkObject.txt",
                                 "s3.amazonaws.com", [("x-amz-storage-class", "REDUCED_REDUNDANCY")])
    assert auth.endswith("4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9"), auth
    assert b"0;chunk-signature=b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9" in body
    assert len(body) == 66824


def write(target, name, data):
    os.makedirs(f"corpus/{target}", exist_ok=True)
    with open(f"corpus/{target}/{name}", "wb") as f:
        f.write(data)


def crc32(data):
    return base64.b64encode(struct.pack(">I", zlib.crc32(data))).decode()


def aws_chunked_seeds():
    modes = ["STREAMING-AWS4-HMAC-SHA256-PAYLOAD", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER",
             "STREAMING-UNSIGNED-PAYLOAD-TRAILER"]
    cases = {"one": [b"hello world"], "three": [b"a" * 1000, b"b" * 24, b"c"], "empty": []}
    for i, mode in enumerate(modes):
        for name, chunks in cases.items():
            trailers = [("x-amz-checksum-crc32", crc32(b"".join(chunks)))] if mode.endswith("TRAILER") else []
            _, _, body = chunked_body(mode, chunks, trailers)
            write("aws_chunked", f"{i}-{name}", bytes([i]) + struct.pack("<I", sum(map(len, chunks))) + body)


def request(method, target, headers, body=b""):
    head = f"{method} {target}\n" + "".join(f"{n}: {v}\n" for n, v in headers)
    return head.encode() + b"\n" + body


def signature_seeds():
    # SigV4 in the Authorization header, empty payload and a signed single-chunk payload.
    headers = sorted([("host", "localhost"), ("x-amz-content-sha256", EMPTY), ("x-amz-date", DATE)])
    auth, _ = authorization("GET", "/bucket/key", headers, EMPTY)
    write("signature", "v4-header-get", request("GET", "/bucket/key", headers + [("authorization", auth)]))
    body = b"object bytes"
    sha = hashlib.sha256(body).hexdigest()
    headers = sorted([("content-length", str(len(body))), ("host", "localhost"), ("x-amz-content-sha256", sha),
                      ("x-amz-date", DATE)])
    auth, _ = authorization("PUT", "/bucket/key", headers, sha)
    write("signature", "v4-header-put", request("PUT", "/bucket/key", headers + [("authorization", auth)], body))
    query = "list-type=2&prefix=a%2Fb"
    headers = sorted([("host", "localhost"), ("x-amz-content-sha256", EMPTY), ("x-amz-date", DATE)])
    auth, _ = authorization("GET", "/bucket", headers, EMPTY, query)
    write("signature", "v4-header-query", request("GET", f"/bucket?{query}", headers + [("authorization", auth)]))
    # An aws-chunked PUT through the generic request path as well.
    headers, auth, body = chunked_body("STREAMING-AWS4-HMAC-SHA256-PAYLOAD", [b"hello", b"world"], [])
    write("signature", "v4-chunked-put", request("PUT", "/bucket/key", headers + [("authorization", auth)], body))
    # SigV4 presigned URL.
    params = sorted([("X-Amz-Algorithm", "AWS4-HMAC-SHA256"), ("X-Amz-Credential", f"{AK}%2F{SCOPE.replace('/', '%2F')}"),
                     ("X-Amz-Date", DATE), ("X-Amz-Expires", "86400"), ("X-Amz-SignedHeaders", "host")])
    query = "&".join(f"{k}={v}" for k, v in params)
    canonical = f"GET\n/bucket/key\n{query}\nhost:localhost\n\nhost\nUNSIGNED-PAYLOAD"
    sig = sign(f"AWS4-HMAC-SHA256\n{DATE}\n{SCOPE}\n{hashlib.sha256(canonical.encode()).hexdigest()}")
    write("signature", "v4-presigned", request("GET", f"/bucket/key?{query}&X-Amz-Signature={sig}", [("host", "localhost")]))
    # AWS's published examples, verbatim (their host names a bucket, virtual-host style).
    write("signature", "aws-v4-get-object", request("GET", "/test.txt", [
        ("host", "examplebucket.s3.amazonaws.com"), ("range", "bytes=0-9"), ("x-amz-content-sha256", EMPTY),
        ("x-amz-date", DATE), ("authorization", "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41")]))
    write("signature", "aws-v4-presigned", request("GET", "/test.txt?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404", [("host", "examplebucket.s3.amazonaws.com")]))
    write("signature", "aws-v2-header", request("GET", "/photos/puppy.jpg", [
        ("host", "johnsmith.s3.amazonaws.com"), ("date", "Tue, 27 Mar 2007 19:36:42 +0000"),
        ("authorization", "AWS AKIAIOSFODNN7EXAMPLE:bWq2s1WEIj+Ydj0vQ697zp+IXMU=")]))
    write("signature", "aws-v2-presigned", request("GET", "/photos/puppy.jpg?AWSAccessKeyId=AKIAIOSFODNN7EXAMPLE&Expires=1175139620&Signature=NpgCjnDzrM%2BWFzoENXmpNDUsSn8%3D", [("host", "johnsmith.s3.amazonaws.com")]))
    # A browser-form POST signed with a SigV4 policy.
    policy = base64.b64encode(b'{"expiration":"2030-01-01T00:00:00Z","conditions":[{"bucket":"bucket"},["starts-with","$key",""]]}').decode()
    fields = [("key", "upload/${filename}"), ("x-amz-algorithm", "AWS4-HMAC-SHA256"), ("x-amz-credential", f"{AK}/{SCOPE}"),
              ("x-amz-date", DATE), ("policy", policy), ("x-amz-signature", sign(policy))]
    form = b"".join(f'--B\r\nContent-Disposition: form-data; name="{n}"\r\n\r\n{v}\r\n'.encode() for n, v in fields)
    form += b'--B\r\nContent-Disposition: form-data; name="file"; filename="a.txt"\r\nContent-Type: text/plain\r\n\r\nfile bytes\r\n--B--\r\n'
    write("signature", "v4-post-policy", request("POST", "/bucket", [("host", "localhost"),
          ("content-type", "multipart/form-data; boundary=B"), ("content-length", str(len(form)))], form))


if __name__ == "__main__":
    self_check()
    aws_chunked_seeds()
    signature_seeds()
