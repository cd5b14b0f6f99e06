//! Signature canonicalisation inputs: a whole request head (method, path and query, headers)
//! and body from the fuzzer, through s3s's SigV4 and SigV2 parsing (Authorization header,
//! presigned query, POST policy), canonical request building and verification.
//!
//! Input: `METHOD target\n`, then `name: value\n` header lines up to an empty line, then the
//! body. Lines that do not make a valid HTTP head are dropped, as hyper would refuse them
//! before s3s sees them.

#![no_main]

use artifact_store_fuzz::call;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (head, body) = match data.windows(2).position(|w| w == b"\n\n") {
        Some(at) => (&data[..at], &data[at + 2..]),
        None => (data, &[][..]),
    };
    let mut lines = head.split(|&b| b == b'\n');
    let Some(first) = lines.next() else { return };
    let Ok(first) = std::str::from_utf8(first) else { return };
    let Some((method, target)) = first.split_once(' ') else { return };
    let Ok(method) = http::Method::from_bytes(method.as_bytes()) else { return };
    let Ok(uri) = target.parse::<http::Uri>() else { return };
    let mut request = http::Request::builder().method(method).uri(uri);
    for line in lines {
        let Some(colon) = line.iter().position(|&b| b == b':') else { continue };
        let (name, value) = (&line[..colon], line[colon + 1..].trim_ascii());
        let (Ok(name), Ok(value)) = (http::HeaderName::from_bytes(name), http::HeaderValue::from_bytes(value)) else {
            continue;
        };
        request = request.header(name, value);
    }
    let Ok(request) = request.body(s3s::Body::from(bytes::Bytes::copy_from_slice(body))) else { return };
    call(request);
});
