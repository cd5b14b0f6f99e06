//! Hashing bytes: every checksum algorithm S3 defines, and MD5.
//!
//! One table ([`ChecksumAlgorithm::ALL`] and the `match`es on it) knows every algorithm: its
//! name, header name, digest length and how to hash. [`Checksummer`] computes any set of them in
//! one pass over a stream; [`Md5`] computes the ETag digest. Both the S3 front end (to check what
//! clients claim) and the backends (which hash bytes as they store them) build on this module,
//! which knows nothing of either.
//!
//! Wire values are base64 of the big-endian digest, as AWS sends them.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use sha1::Sha1;
use sha2::{Digest as _, Sha256};

/// An S3 additional checksum algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ChecksumAlgorithm {
    /// CRC-32 (ISO-HDLC, as zlib), 4 bytes.
    Crc32,
    /// CRC-32C (Castagnoli), 4 bytes.
    Crc32c,
    /// CRC-64/NVME, 8 bytes.
    Crc64Nvme,
    /// SHA-1, 20 bytes.
    Sha1,
    /// SHA-256, 32 bytes.
    Sha256,
}

impl ChecksumAlgorithm {
    /// Every algorithm, in a fixed order.
    pub const ALL: [Self; 5] = [Self::Crc32, Self::Crc32c, Self::Crc64Nvme, Self::Sha1, Self::Sha256];

    /// The name S3 uses in `x-amz-checksum-algorithm` and XML (`CRC32`, `SHA256`, ...).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Crc32 => "CRC32",
            Self::Crc32c => "CRC32C",
            Self::Crc64Nvme => "CRC64NVME",
            Self::Sha1 => "SHA1",
            Self::Sha256 => "SHA256",
        }
    }

    /// The header (and trailer) carrying this checksum's value.
    #[must_use]
    pub fn header_name(self) -> &'static str {
        match self {
            Self::Crc32 => "x-amz-checksum-crc32",
            Self::Crc32c => "x-amz-checksum-crc32c",
            Self::Crc64Nvme => "x-amz-checksum-crc64nvme",
            Self::Sha1 => "x-amz-checksum-sha1",
            Self::Sha256 => "x-amz-checksum-sha256",
        }
    }

    /// Length of the raw digest in bytes.
    #[must_use]
    pub fn digest_len(self) -> usize {
        match self {
            Self::Crc32 | Self::Crc32c => 4,
            Self::Crc64Nvme => 8,
            Self::Sha1 => 20,
            Self::Sha256 => 32,
        }
    }

    /// Parses an algorithm name as S3 spells it; case-insensitive, as AWS accepts `crc32`.
    #[must_use]
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str().eq_ignore_ascii_case(name))
    }

    /// The algorithm whose header is `name` (`x-amz-checksum-crc32` → `Crc32`).
    #[must_use]
    pub fn from_header_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.header_name().eq_ignore_ascii_case(name.trim()))
    }
}

impl std::fmt::Display for ChecksumAlgorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A raw digest of one algorithm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChecksumValue {
    /// The algorithm that produced `digest`.
    pub algorithm: ChecksumAlgorithm,
    /// Big-endian digest bytes, `algorithm.digest_len()` long.
    pub digest: Vec<u8>,
}

impl ChecksumValue {
    /// The value as it appears on the wire (base64).
    #[must_use]
    pub fn to_base64(&self) -> String {
        BASE64.encode(&self.digest)
    }

    /// Parses a wire value; `None` unless it is base64 of exactly `digest_len` bytes.
    #[must_use]
    pub fn from_base64(algorithm: ChecksumAlgorithm, value: &str) -> Option<Self> {
        let digest = BASE64.decode(value.trim()).ok()?;
        (digest.len() == algorithm.digest_len()).then_some(Self { algorithm, digest })
    }

    /// The CRC of this value's bytes followed by `next_len` bytes whose CRC is `next`,
    /// computed from the two values alone (`crc_fast::checksum_combine`): a FULL_OBJECT
    /// multipart checksum from its parts' without reading them. `None` for the SHA algorithms,
    /// which cannot be combined, or two algorithms.
    #[must_use]
    pub fn followed_by(&self, next: &Self, next_len: u64) -> Option<Self> {
        let crc = match self.algorithm {
            ChecksumAlgorithm::Crc32 => crc_fast::CrcAlgorithm::Crc32IsoHdlc,
            ChecksumAlgorithm::Crc32c => crc_fast::CrcAlgorithm::Crc32Iscsi,
            ChecksumAlgorithm::Crc64Nvme => crc_fast::CrcAlgorithm::Crc64Nvme,
            ChecksumAlgorithm::Sha1 | ChecksumAlgorithm::Sha256 => return None,
        };
        if next.algorithm != self.algorithm {
            return None;
        }
        let as_u64 = |digest: &[u8]| digest.iter().fold(0u64, |value, &byte| (value << 8) | u64::from(byte));
        let combined = crc_fast::checksum_combine(crc, as_u64(&self.digest), as_u64(&next.digest), next_len);
        let len = self.algorithm.digest_len();
        let digest = combined.to_be_bytes()[8 - len..].to_vec();
        Some(Self { algorithm: self.algorithm, digest })
    }
}

/// The checksums computed over a body, at most one per algorithm.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Checksums(Vec<ChecksumValue>);

impl Checksums {
    /// The value computed for `algorithm`, if it was requested.
    #[must_use]
    pub fn get(&self, algorithm: ChecksumAlgorithm) -> Option<&ChecksumValue> {
        self.0.iter().find(|v| v.algorithm == algorithm)
    }

    /// All computed values.
    pub fn iter(&self) -> impl Iterator<Item = &ChecksumValue> {
        self.0.iter()
    }
}

enum Hasher {
    Crc32(crc32fast::Hasher),
    Crc32c(u32),
    Crc64Nvme(crc64fast_nvme::Digest),
    Sha1(Sha1),
    Sha256(Sha256),
}

impl Hasher {
    fn new(algorithm: ChecksumAlgorithm) -> Self {
        match algorithm {
            ChecksumAlgorithm::Crc32 => Self::Crc32(crc32fast::Hasher::new()),
            ChecksumAlgorithm::Crc32c => Self::Crc32c(0),
            ChecksumAlgorithm::Crc64Nvme => Self::Crc64Nvme(crc64fast_nvme::Digest::new()),
            ChecksumAlgorithm::Sha1 => Self::Sha1(Sha1::new()),
            ChecksumAlgorithm::Sha256 => Self::Sha256(Sha256::new()),
        }
    }

    fn update(&mut self, data: &[u8]) {
        match self {
            Self::Crc32(h) => h.update(data),
            Self::Crc32c(crc) => *crc = crc32c::crc32c_append(*crc, data),
            Self::Crc64Nvme(h) => h.write(data),
            Self::Sha1(h) => h.update(data),
            Self::Sha256(h) => h.update(data),
        }
    }

    fn finish(self) -> ChecksumValue {
        let (algorithm, digest) = match self {
            Self::Crc32(h) => (ChecksumAlgorithm::Crc32, h.finalize().to_be_bytes().to_vec()),
            Self::Crc32c(crc) => (ChecksumAlgorithm::Crc32c, crc.to_be_bytes().to_vec()),
            Self::Crc64Nvme(h) => (ChecksumAlgorithm::Crc64Nvme, h.sum64().to_be_bytes().to_vec()),
            Self::Sha1(h) => (ChecksumAlgorithm::Sha1, h.finalize().to_vec()),
            Self::Sha256(h) => (ChecksumAlgorithm::Sha256, h.finalize().to_vec()),
        };
        ChecksumValue { algorithm, digest }
    }
}

/// Computes a set of checksums in one pass over a byte stream.
pub struct Checksummer {
    hashers: Vec<Hasher>,
}

impl Checksummer {
    /// A checksummer for `algorithms`; duplicates are computed once.
    #[must_use]
    pub fn new(algorithms: &[ChecksumAlgorithm]) -> Self {
        let hashers = ChecksumAlgorithm::ALL.into_iter().filter(|a| algorithms.contains(a)).map(Hasher::new).collect();
        Self { hashers }
    }

    /// Feeds the next bytes of the stream.
    pub fn update(&mut self, data: &[u8]) {
        for h in &mut self.hashers {
            h.update(data);
        }
    }

    /// The digests of everything fed so far.
    #[must_use]
    pub fn finish(self) -> Checksums {
        Checksums(self.hashers.into_iter().map(Hasher::finish).collect())
    }
}

/// The MD5 of `data`, for callers that have the whole body in memory.
#[must_use]
pub fn md5(data: &[u8]) -> [u8; 16] {
    let mut md5 = Md5::new();
    md5.update(data);
    md5.finalize()
}

/// MD5, the ETag of every object written in one part and the largest CPU cost of a large PUT.
///
/// Computed by the system's OpenSSL, whose assembly hashes about 25% faster on this machine
/// than the md-5 crate's (one core, 1 GiB in 1 MiB updates: 618-626 MiB/s against 488-499).
/// Where OpenSSL refuses MD5 (a FIPS-only configuration), the md-5 crate computes it.
pub struct Md5(Md5Engine);

enum Md5Engine {
    OpenSsl(openssl::hash::Hasher),
    RustCrypto(md5::Md5),
}

impl Md5 {
    /// A hasher with nothing fed yet.
    #[must_use]
    pub fn new() -> Self {
        match openssl::hash::Hasher::new(openssl::hash::MessageDigest::md5()) {
            Ok(hasher) => Self(Md5Engine::OpenSsl(hasher)),
            Err(_) => Self::rust_crypto(),
        }
    }

    fn rust_crypto() -> Self {
        Self(Md5Engine::RustCrypto(md5::Digest::new()))
    }

    /// Feeds `data`.
    pub fn update(&mut self, data: &[u8]) {
        match &mut self.0 {
            // EVP_DigestUpdate fails only on a context that failed to initialise, which
            // `new` has ruled out.
            Md5Engine::OpenSsl(hasher) => hasher.update(data).expect("an initialised MD5 context takes input"),
            Md5Engine::RustCrypto(hasher) => md5::Digest::update(hasher, data),
        }
    }

    /// The digest of everything fed.
    #[must_use]
    pub fn finalize(self) -> [u8; 16] {
        match self.0 {
            Md5Engine::OpenSsl(mut hasher) => {
                let digest = hasher.finish().expect("an initialised MD5 context finishes");
                digest.as_ref().try_into().expect("MD5 digests are 16 bytes")
            }
            Md5Engine::RustCrypto(hasher) => md5::Digest::finalize(hasher).into(),
        }
    }
}

impl Default for Md5 {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Known vectors, computed with Python's zlib/hashlib and a bitwise CRC for CRC32C and
    /// CRC64NVME (whose check values for "123456789" are 0xE3069283 and 0xAE8B14860A799888).
    pub(crate) const HELLO: &[(ChecksumAlgorithm, &str)] = &[
        (ChecksumAlgorithm::Crc32, "DUoRhQ=="),
        (ChecksumAlgorithm::Crc32c, "yZRlqg=="),
        (ChecksumAlgorithm::Crc64Nvme, "jSnVw/bqjr4="),
        (ChecksumAlgorithm::Sha1, "Kq5sNclPz7QV2+lfQIuc6R7oRu0="),
        (ChecksumAlgorithm::Sha256, "uU0nuZNNPgilLlLX2n2r+sSE7+N6U4DukIj3rOLvzek="),
    ];
    const EMPTY: &[(ChecksumAlgorithm, &str)] = &[
        (ChecksumAlgorithm::Crc32, "AAAAAA=="),
        (ChecksumAlgorithm::Crc32c, "AAAAAA=="),
        (ChecksumAlgorithm::Crc64Nvme, "AAAAAAAAAAA="),
        (ChecksumAlgorithm::Sha1, "2jmj7l5rSw0yVb/vlWAYkK/YBwk="),
        (ChecksumAlgorithm::Sha256, "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="),
    ];

    pub(crate) fn compute(chunks: &[&[u8]]) -> Checksums {
        let mut c = Checksummer::new(&ChecksumAlgorithm::ALL);
        for chunk in chunks {
            c.update(chunk);
        }
        c.finish()
    }

    #[test]
    fn every_algorithm_matches_known_vectors() {
        let computed = compute(&[b"hello world"]);
        for (algorithm, expected) in HELLO {
            assert_eq!(computed.get(*algorithm).unwrap().to_base64(), *expected, "{algorithm}");
        }
        let computed = compute(&[]);
        for (algorithm, expected) in EMPTY {
            assert_eq!(computed.get(*algorithm).unwrap().to_base64(), *expected, "{algorithm}");
        }
    }

    #[test]
    fn chunking_does_not_change_the_digest() {
        assert_eq!(compute(&[b"hel", b"", b"lo wor", b"ld"]), compute(&[b"hello world"]));
    }

    #[test]
    fn only_requested_algorithms_are_computed() {
        let mut c = Checksummer::new(&[ChecksumAlgorithm::Sha1, ChecksumAlgorithm::Sha1]);
        c.update(b"hello world");
        let computed = c.finish();
        assert_eq!(computed.iter().count(), 1);
        assert!(computed.get(ChecksumAlgorithm::Crc32).is_none());
    }

    #[test]
    fn md5_matches_known_vector() {
        assert_eq!(BASE64.encode(md5(b"hello world")), "XrY7u+Ae7tCTyyK7j1rNww==");
        let mut fallback = Md5::rust_crypto();
        fallback.update(b"hello world");
        assert_eq!(BASE64.encode(fallback.finalize()), "XrY7u+Ae7tCTyyK7j1rNww==");
    }

    #[test]
    fn both_md5_engines_agree_across_updates() {
        let data: Vec<u8> = (0..300_001u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        for piece in [1, 63, 64, 65, 4096, 100_000] {
            let (mut openssl, mut fallback) = (Md5::new(), Md5::rust_crypto());
            assert!(matches!(openssl.0, Md5Engine::OpenSsl(_)), "OpenSSL provides MD5 on this machine");
            for chunk in data.chunks(piece) {
                openssl.update(chunk);
                fallback.update(chunk);
            }
            assert_eq!(openssl.finalize(), fallback.finalize(), "pieces of {piece}");
        }
    }

    #[test]
    fn algorithm_names_round_trip() {
        for a in ChecksumAlgorithm::ALL {
            assert_eq!(ChecksumAlgorithm::parse(a.as_str()), Some(a));
            assert_eq!(ChecksumAlgorithm::parse(&a.as_str().to_lowercase()), Some(a));
            assert_eq!(ChecksumAlgorithm::from_header_name(a.header_name()), Some(a));
        }
        assert_eq!(ChecksumAlgorithm::parse("MD5"), None);
    }

    #[test]
    fn crcs_of_runs_combine_into_the_crc_of_the_whole() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 253) as u8).collect();
        for algorithm in [ChecksumAlgorithm::Crc32, ChecksumAlgorithm::Crc32c, ChecksumAlgorithm::Crc64Nvme] {
            let of = |bytes: &[u8]| {
                let mut checksummer = Checksummer::new(&[algorithm]);
                checksummer.update(bytes);
                checksummer.finish().get(algorithm).cloned().unwrap()
            };
            for cut in [0, 1, 4096, 65_537, 100_000] {
                let (head, tail) = data.split_at(cut);
                let combined = of(head).followed_by(&of(tail), tail.len() as u64).unwrap();
                assert_eq!(combined, of(&data), "{algorithm} cut at {cut}");
            }
        }
        let sha = ChecksumValue { algorithm: ChecksumAlgorithm::Sha256, digest: vec![0; 32] };
        assert_eq!(sha.followed_by(&sha, 1), None);
    }
}
