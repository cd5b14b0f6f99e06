//! The at-rest format of an encrypted blob: AES-256-GCM over fixed segments.
//!
//! The plaintext is cut into [`SEGMENT`]-byte segments (the last one may be shorter, and an
//! empty blob is one empty segment). Segment `i` is stored as its ciphertext followed by its
//! 16-byte tag, sealed under the blob's own data key with the nonce `i` (96 bits, big-endian)
//! and one byte of associated data saying whether it is the blob's last segment. So:
//!
//! - a range decrypts only the segments it touches ([`sealed_span`]);
//! - a changed, swapped or reordered segment fails its tag (the index is in the nonce);
//! - a blob cut short at a segment boundary fails too: its new last segment was not sealed as
//!   the last one;
//! - nonces never repeat, because every blob has a data key of its own.
//!
//! The format has no header: the data key and what wraps it are in the registry's record of
//! the part (`registry::event::v1::WrappedKey`), never in the blob.

use bytes::{Bytes, BytesMut};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};

/// Plaintext bytes per segment: 64 KiB, so that a small range decrypts at most 128 KiB and the
/// tags cost 0.02%.
pub const SEGMENT: u64 = 64 << 10;

/// Bytes a segment's tag adds.
pub const TAG: u64 = 16;

/// A segment as stored, when it is whole.
const SEALED_SEGMENT: u64 = SEGMENT + TAG;

/// Number of segments a plaintext of `len` bytes is cut into (at least one).
#[must_use]
pub fn segments(len: u64) -> u64 {
    len.div_ceil(SEGMENT).max(1)
}

/// Size of the stored blob of a plaintext of `len` bytes.
#[must_use]
pub fn sealed_len(len: u64) -> u64 {
    len + TAG * segments(len)
}

/// The stored bytes (inclusive) that hold the plaintext bytes `first..=last` of a blob whose
/// plaintext is `len` bytes long: whole segments, from the one holding `first` to the one
/// holding `last`.
#[must_use]
pub fn sealed_span(len: u64, (first, last): (u64, u64)) -> (u64, u64) {
    let start = first / SEGMENT * SEALED_SEGMENT;
    let end = ((last / SEGMENT + 1) * SEALED_SEGMENT).min(sealed_len(len));
    (start, end - 1)
}

/// Why stored bytes could not be decrypted.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// A segment's tag does not match: the bytes were changed, moved or cut short.
    #[error("segment {0} does not authenticate")]
    Forged(u64),
    /// The stored bytes end inside a segment or before the last one.
    #[error("the stored bytes end inside segment {0}")]
    Truncated(u64),
}

fn nonce(index: u64) -> Nonce {
    let mut bytes = [0u8; NONCE_LEN];
    bytes[NONCE_LEN - 8..].copy_from_slice(&index.to_be_bytes());
    Nonce::assume_unique_for_key(bytes)
}

fn aad(last: bool) -> Aad<[u8; 1]> {
    Aad::from([u8::from(last)])
}

/// A blob's data key as a cipher.
pub(super) fn cipher(key: &[u8; 32]) -> LessSafeKey {
    LessSafeKey::new(UnboundKey::new(&AES_256_GCM, key).expect("a 32-byte key is an AES-256 key"))
}

/// Encrypts a plaintext that arrives in pieces of any size into the segment format. The last
/// segment is only sealed by [`Sealer::finish`], so whatever the pieces, a full segment is held
/// back until the sealer knows whether more follows.
pub struct Sealer {
    cipher: LessSafeKey,
    pending: BytesMut,
    next: u64,
}

impl Sealer {
    pub(super) fn new(cipher: LessSafeKey) -> Self {
        Self { cipher, pending: BytesMut::new(), next: 0 }
    }

    /// Takes the next plaintext bytes and returns the sealed segments they complete (possibly
    /// none).
    pub fn push(&mut self, plaintext: &[u8]) -> Bytes {
        self.pending.extend_from_slice(plaintext);
        let whole = (self.pending.len() as u64).saturating_sub(1) / SEGMENT;
        #[expect(clippy::cast_possible_truncation, reason = "bounded by the bytes in memory")]
        let mut out = BytesMut::with_capacity((whole * SEALED_SEGMENT) as usize);
        for _ in 0..whole {
            #[expect(clippy::cast_possible_truncation, reason = "a segment is 64 KiB")]
            let segment = self.pending.split_to(SEGMENT as usize);
            self.seal_into(&mut out, &segment, false);
        }
        out.freeze()
    }

    /// Seals what is left as the last segment and returns it.
    #[must_use]
    pub fn finish(mut self) -> Bytes {
        let rest = std::mem::take(&mut self.pending);
        let mut out = BytesMut::with_capacity(rest.len() + 16);
        self.seal_into(&mut out, &rest, true);
        out.freeze()
    }

    fn seal_into(&mut self, out: &mut BytesMut, segment: &[u8], last: bool) {
        let start = out.len();
        out.extend_from_slice(segment);
        let tag = self
            .cipher
            .seal_in_place_separate_tag(nonce(self.next), aad(last), &mut out[start..])
            .expect("a segment is far below AES-GCM's limit");
        out.extend_from_slice(tag.as_ref());
        self.next += 1;
    }
}

/// Decrypts the stored bytes of [`sealed_span`] back into the plaintext bytes asked for, as
/// they arrive in pieces of any size.
pub struct Opener {
    cipher: LessSafeKey,
    pending: BytesMut,
    /// Index of the next segment to open.
    next: u64,
    /// Index of the blob's last segment.
    last: u64,
    /// Plaintext bytes still to drop from the front (the range starts inside a segment).
    skip: u64,
    /// Plaintext bytes still to give.
    remaining: u64,
}

impl Opener {
    /// An opener of the plaintext bytes `first..=last` of a blob of `len` plaintext bytes,
    /// fed the stored bytes of `sealed_span(len, (first, last))`.
    pub(super) fn new(cipher: LessSafeKey, len: u64, (first, last): (u64, u64)) -> Self {
        let next = first / SEGMENT;
        Self {
            cipher,
            pending: BytesMut::new(),
            next,
            last: segments(len) - 1,
            skip: first - next * SEGMENT,
            remaining: last - first + 1,
        }
    }

    /// Takes the next stored bytes and returns the plaintext of the segments they complete.
    ///
    /// # Errors
    /// [`OpenError::Forged`] for a segment that does not authenticate, or bytes beyond the
    /// span (refused as they come, so a store that sends too much cannot fill the memory).
    pub fn push(&mut self, sealed: &[u8]) -> Result<Bytes, OpenError> {
        if self.pending.len() + sealed.len() > self.room() {
            return Err(OpenError::Forged(self.next));
        }
        self.pending.extend_from_slice(sealed);
        let mut out = BytesMut::new();
        // The last segment may be short: it is opened by `finish`, which knows the bytes ended.
        while self.next < self.last && self.pending.len() as u64 >= SEALED_SEGMENT {
            #[expect(clippy::cast_possible_truncation, reason = "a segment is 64 KiB")]
            let segment = self.pending.split_to(SEALED_SEGMENT as usize);
            self.open_into(&mut out, segment, false)?;
        }
        Ok(out.freeze())
    }

    /// Opens what is left, which must end the span, and returns its plaintext.
    ///
    /// # Errors
    /// [`OpenError::Forged`]; [`OpenError::Truncated`] when bytes are missing.
    pub fn finish(mut self) -> Result<Bytes, OpenError> {
        let mut out = BytesMut::new();
        if self.remaining > 0 {
            if (self.pending.len() as u64) < TAG {
                return Err(OpenError::Truncated(self.next));
            }
            let rest = std::mem::take(&mut self.pending);
            let last = self.next == self.last;
            self.open_into(&mut out, rest, last)?;
        }
        if self.remaining > 0 || !self.pending.is_empty() {
            return Err(OpenError::Truncated(self.next));
        }
        Ok(out.freeze())
    }

    /// The most stored bytes still to come: the rest of the span's segments.
    #[expect(clippy::cast_possible_truncation, reason = "bounded by the span, which is in one blob")]
    fn room(&self) -> usize {
        if self.remaining == 0 {
            return 0;
        }
        let segments_left = (self.skip + self.remaining).div_ceil(SEGMENT).min(self.last + 1 - self.next);
        (segments_left * SEALED_SEGMENT) as usize
    }

    fn open_into(&mut self, out: &mut BytesMut, mut segment: BytesMut, last: bool) -> Result<(), OpenError> {
        let index = self.next;
        let plain =
            self.cipher.open_in_place(nonce(index), aad(last), &mut segment).map_err(|_| OpenError::Forged(index))?;
        self.next += 1;
        let plain_len = plain.len() as u64;
        let from = self.skip.min(plain_len);
        let to = (from + self.remaining).min(plain_len);
        self.skip -= from;
        self.remaining -= to - from;
        #[expect(clippy::cast_possible_truncation, reason = "inside a segment")]
        out.extend_from_slice(&plain[from as usize..to as usize]);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> LessSafeKey {
        cipher(&[7u8; 32])
    }

    fn seal(data: &[u8], piece: usize) -> Vec<u8> {
        let mut sealer = Sealer::new(key());
        let mut out = Vec::new();
        for chunk in data.chunks(piece.max(1)) {
            out.extend_from_slice(&sealer.push(chunk));
        }
        out.extend_from_slice(&sealer.finish());
        out
    }

    fn open(stored: &[u8], len: u64, range: (u64, u64), piece: usize) -> Result<Vec<u8>, OpenError> {
        let (start, end) = sealed_span(len, range);
        let mut opener = Opener::new(key(), len, range);
        let mut out = Vec::new();
        #[expect(clippy::cast_possible_truncation, reason = "test sizes")]
        for chunk in stored[start as usize..=end as usize].chunks(piece) {
            out.extend_from_slice(&opener.push(chunk)?);
        }
        out.extend_from_slice(&opener.finish()?);
        Ok(out)
    }

    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 31 % 251) as u8).collect()
    }

    #[test]
    fn every_range_of_every_size_decrypts_to_the_plaintext() {
        let seg = SEGMENT as usize;
        for len in [0, 1, 100, seg - 1, seg, seg + 1, 2 * seg, 3 * seg + 17] {
            let data = pattern(len);
            let stored = seal(&data, 10_000);
            assert_eq!(stored.len() as u64, sealed_len(len as u64), "{len}");
            assert_eq!(stored, seal(&data, 1 << 20), "sealing does not depend on how the bytes arrive");
            if len == 0 {
                // An empty blob is one empty segment: its tag, and no byte to read.
                assert!(open(&stored, 0, (0, 0), 7).is_err());
                continue;
            }
            assert_ne!(&stored[..len.min(64)], &data[..len.min(64)]);
            for (first, last) in
                [(0, len - 1), (0, 0), (len - 1, len - 1), (len / 3, len / 2), (seg.min(len - 1), len - 1)]
            {
                for piece in [1000, 70_000] {
                    let plain = open(&stored, len as u64, (first as u64, last as u64), piece).unwrap();
                    assert_eq!(plain, &data[first..=last], "{len} {first}-{last} by {piece}");
                }
            }
        }
    }

    #[test]
    fn a_changed_byte_fails_its_segment() {
        let data = pattern(3 * SEGMENT as usize);
        let mut stored = seal(&data, 4096);
        stored[SEALED_SEGMENT as usize + 5] ^= 1;
        let err = open(&stored, data.len() as u64, (0, data.len() as u64 - 1), 4096).unwrap_err();
        assert!(matches!(err, OpenError::Forged(1)), "{err}");
        // A range that does not touch the changed segment still reads.
        assert_eq!(open(&stored, data.len() as u64, (0, 10), 4096).unwrap(), &data[..=10]);
    }

    #[test]
    fn a_blob_cut_at_a_segment_boundary_fails_instead_of_reading_short() {
        let data = pattern(2 * SEGMENT as usize + 10);
        let stored = seal(&data, 4096);
        let cut = &stored[..2 * SEALED_SEGMENT as usize];
        // Read as a blob of two segments, its second segment was not sealed as the last one.
        let err = open(cut, 2 * SEGMENT, (0, 2 * SEGMENT - 1), 4096).unwrap_err();
        assert!(matches!(err, OpenError::Forged(1)), "{err}");
    }

    #[test]
    fn bytes_past_the_span_are_refused_as_they_come() {
        let data = pattern(3 * SEGMENT as usize);
        let stored = seal(&data, 4096);
        let len = data.len() as u64;
        // A range inside the first segment, fed the whole blob and then more.
        let mut opener = Opener::new(key(), len, (0, 10));
        assert!(matches!(opener.push(&stored), Err(OpenError::Forged(0))));
        // The last segment, fed an endless stream.
        let mut opener = Opener::new(key(), len, (len - 5, len - 1));
        let (start, _) = sealed_span(len, (len - 5, len - 1));
        #[expect(clippy::cast_possible_truncation, reason = "test sizes")]
        let tail = &stored[start as usize..];
        assert!(opener.push(tail).is_ok());
        assert!(opener.push(&[0; 1]).is_err(), "one byte past the blob");
    }

    #[test]
    fn swapped_segments_fail() {
        let data = pattern(2 * SEGMENT as usize);
        let stored = seal(&data, 4096);
        let (a, b) = stored.split_at(SEALED_SEGMENT as usize);
        let swapped = [b, a].concat();
        assert!(open(&swapped, data.len() as u64, (0, 10), 4096).is_err());
    }
}
