//! End-to-end tests for artifact-store: each test starts the real `artifact-store` binary on
//! a free port with a fresh data folder, drives a real client against it, and reads the
//! registry the binary wrote to check what it recorded.
//!
//! # Modules
//! - [`server`]: [`Server`], the guard that spawns the binary, waits for `/_health` and kills
//!   it on drop (or stops it with SIGTERM and restarts it on the same data); runs CLI
//!   commands on its data folder; [`Transport`] picks HTTP or HTTPS (a self-signed certificate per server).
//! - [`sdk`]: aws-sdk-s3 clients for a server (path-style, test credentials, the server's
//!   certificate as the only trusted root).
//! - [`raw`]: hand-signed HTTP/1.1 requests for what the SDK will not send (short bodies,
//!   broken aws-chunked framing, wrong trailers, skewed clocks).
//! - [`events`]: the registry's events for a bucket or key, and their payloads.
//! - [`http2`]: HTTP/2 connections (ALPN over TLS, prior knowledge without).
//! - [`cli`]: the binary's maintenance commands run on a server's data folder.
//! - [`tamper`]: edits of the log behind the registry's back, as an attacker would make them.
//! - [`upstream`]: a moto server as the S3 backend's upstream, and a proxy that injects
//!   upstream faults.
//!
//! # Which binary
//! `ARTIFACT_STORE_BIN` names it; otherwise it is `artifact-store` in the target directory of
//! the running test (`target/<profile>/artifact-store`), so build it first with
//! `cargo build -p artifact-store-gateway` using the same target directory and profile.
//! A missing binary fails the test loudly: nothing is skipped.
//!
//! # Skips
//! A test that needs an S3 upstream is `#[ignore]`d and runs with `--include-ignored` when
//! `CONFORMANCE_UPSTREAM_*` names one (it fails without). A check that can only be left out
//! at run time (on one backend, without root) calls [`skip`] and returns: cargo counts it as
//! passed, so the skip log tells the results which of those did not run.

pub mod cli;
pub mod events;
pub mod http2;
pub mod metrics;
pub mod raw;
pub mod sdk;
pub mod server;
pub mod tamper;
pub mod upstream;

pub use server::{Server, Transport};

/// The root access key every test server runs with; the actor of every event a test causes.
pub const ACCESS_KEY: &str = "CONFORMANCEACCESSKEY";
/// The root secret key every test server runs with.
pub const SECRET_KEY: &str = "conformance0secret0key0for0tests0only000";
/// The region the servers sign for.
pub const REGION: &str = "us-east-1";
/// Events every gateway records on its first start, before any request: the root account,
/// its root user and the configured root key.
pub const FIRST_START_EVENTS: usize = 3;

/// Runs `async fn name(server: &Server)` twice, over HTTP and over HTTPS, as the tests
/// `name::http` and `name::https`, each against its own server. Attributes written before a
/// name (such as `#[ignore = "..."]`) apply to both.
#[macro_export]
macro_rules! over_http_and_https {
    ($($(#[$attr:meta])* $name:ident),* $(,)?) => {$(
        mod $name {
            $(#[$attr])*
            #[tokio::test]
            async fn http() {
                super::$name(&$crate::Server::start($crate::Transport::Http).await).await;
            }

            $(#[$attr])*
            #[tokio::test]
            async fn https() {
                super::$name(&$crate::Server::start($crate::Transport::Https).await).await;
            }
        }
    )*};
}

/// Records that the running test did not run its check, and why: a line on stderr and, when
/// `CONFORMANCE_SKIP_LOG` names a file, a JSON line appended to it with the test's path as
/// cargo prints it (`<file>::<scenario>::<transport>` or `<file>::<test>`) and `reason`, which
/// `rust_results.py --skips` reads. Call it right before returning from the test.
///
/// # Panics
/// When the skip log cannot be written.
pub fn skip(reason: &str) {
    // libtest names each test's thread after the test's path.
    let test = std::thread::current().name().unwrap_or("unknown").to_owned();
    eprintln!("SKIPPED {test}: {reason}");
    let Some(path) = std::env::var_os("CONFORMANCE_SKIP_LOG") else { return };
    let line = serde_json::json!({"test": test, "reason": reason}).to_string() + "\n";
    let mut log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .unwrap_or_else(|err| panic!("cannot open the skip log {}: {err}", path.to_string_lossy()));
    // One write per line: the suite's tests run on several threads.
    std::io::Write::write_all(&mut log, line.as_bytes()).expect("write the skip log");
}

/// Deterministic test bytes of `len` bytes that differ for each `seed`, so that two objects
/// in a test never share content by accident (blobs are content-addressed).
#[must_use]
pub fn bytes(len: usize, seed: u64) -> Vec<u8> {
    // xorshift64*: cheap, and no two seeds give the same stream.
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        out.extend_from_slice(&state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// The hex MD5 of `data`: the ETag S3 gives a single PUT.
#[must_use]
pub fn md5_hex(data: &[u8]) -> String {
    use md5::Digest as _;
    hex::encode(md5::Md5::digest(data))
}

/// The hex BLAKE3 of `data`, as the registry records it.
#[must_use]
pub fn blake3_hex(data: &[u8]) -> String {
    blake3::hash(data).to_hex().to_string()
}

/// The base64 CRC32 of `data`, as `x-amz-checksum-crc32` carries it.
#[must_use]
pub fn crc32_base64(data: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(crc32fast::hash(data).to_be_bytes())
}

/// The base64 SHA-256 of `data`, as `x-amz-checksum-sha256` carries it.
#[must_use]
pub fn sha256_base64(data: &[u8]) -> String {
    use base64::Engine as _;
    use sha2::Digest as _;
    base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(data))
}

/// The base64 MD5 of `data`, as `Content-MD5` carries it.
#[must_use]
pub fn md5_base64(data: &[u8]) -> String {
    use base64::Engine as _;
    use md5::Digest as _;
    base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(data))
}
