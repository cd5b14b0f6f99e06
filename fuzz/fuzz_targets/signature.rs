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

/// s3s 0.14.1 (`utils/parser.rs`, `digit`) computes `c - b'0'` before it checks that `c` is
/// a digit, when it parses the date of `x-amz-date` (header, `X-Amz-Date` query, POST form
/// field) and of a credential scope. With overflow checks on, as in this build, a byte below
/// `'0'` there panics; in the gateway's release build (no overflow checks) the difference
/// wraps, is thrown away, and the request gets its error. Inputs that reach it are skipped
/// so that the run looks for anything else.
fn reaches_s3s_date_digit_underflow(head: &[u8]) -> bool {
    let lower = head.to_ascii_lowercase();
    let decoded: Vec<u8> = percent_decode(&lower);
    let after = |marker: &[u8]| -> Vec<&[u8]> {
        decoded
            .windows(marker.len())
            .enumerate()
            .filter(|(_, w)| *w == marker)
            .map(|(i, _)| &decoded[i + marker.len()..])
            .collect()
    };
    let below_zero = |field: &[u8]| field.iter().any(|&b| b < b'0');
    let skip_separators =
        |rest: &[u8]| -> usize { rest.iter().position(|b| !b":=\" \t\r\n".contains(b)).unwrap_or(rest.len()) };
    // A value follows the name after `:` (header), `=` (query) or `"` (form field name).
    let dates =
        after(b"x-amz-date").into_iter().filter(|rest| rest.first().is_some_and(|b| b":=\"".contains(b))).map(|rest| {
            let rest = &rest[skip_separators(rest)..];
            &rest[..rest.len().min(16)]
        });
    let scopes = after(b"credential").into_iter().filter_map(|rest| {
        let rest = &rest[rest.iter().position(|&b| b == b'/')? + 1..];
        Some(&rest[..rest.len().min(8)])
    });
    dates.chain(scopes).any(below_zero)
}

/// `%XX` decoded, as s3s decodes a query before it parses it.
fn percent_decode(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if input[i] == b'%'
            && let (Some(Some(h)), Some(Some(l))) =
                (input.get(i + 1).map(|&b| hex(b)), input.get(i + 2).map(|&b| hex(b)))
        {
            out.push(u8::try_from(h * 16 + l).expect("two hex digits"));
            i += 3;
        } else {
            out.push(input[i]);
            i += 1;
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    if reaches_s3s_date_digit_underflow(data) {
        return;
    }
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
