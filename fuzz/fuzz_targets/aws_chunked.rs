//! The aws-chunked decoder behind every streaming upload: a correctly signed PutObject whose
//! body framing (chunk sizes, extensions, chunk and trailer signatures, trailers, CRLFs) is
//! the fuzzer's.
//!
//! Input: byte 0 picks the `x-amz-content-sha256` mode, bytes 1..5 are the
//! `x-amz-decoded-content-length` (little endian), the rest is the body. The request head is
//! signed here, so the decoder starts from a valid seed signature; in the unsigned-trailer
//! mode chunk signatures are optional and the whole framing is reachable without forging.

#![no_main]

use artifact_store_fuzz::{AMZ_DATE, authorization, call};
use libfuzzer_sys::fuzz_target;

const MODES: [&str; 3] = [
    "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
    "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER",
    "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
];

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let Some((decoded, body)) = rest.split_first_chunk::<4>() else { return };
    let mode = MODES[usize::from(mode) % MODES.len()];
    let decoded = u32::from_le_bytes(*decoded).to_string();
    let content_length = body.len().to_string();
    let path = "/bucket/key";
    let mut headers = vec![
        ("content-encoding", "aws-chunked"),
        ("content-length", content_length.as_str()),
        ("host", "localhost"),
        ("x-amz-content-sha256", mode),
        ("x-amz-date", AMZ_DATE),
        ("x-amz-decoded-content-length", decoded.as_str()),
    ];
    if mode.ends_with("TRAILER") {
        headers.push(("x-amz-trailer", "x-amz-checksum-crc32"));
    }
    let auth = authorization("PUT", path, &headers, mode);
    let mut request = http::Request::builder().method("PUT").uri(path);
    for (name, value) in &headers {
        request = request.header(*name, *value);
    }
    let request = request
        .header("authorization", auth)
        .body(s3s::Body::from(bytes::Bytes::copy_from_slice(body)))
        .expect("a valid request head");
    call(request);
});
