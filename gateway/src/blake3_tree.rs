//! The BLAKE3 of a multipart object from its parts' chaining values, without reading the
//! object back.
//!
//! BLAKE3 hashes a tree of 1 KiB chunks whose left subtrees are always the largest power of
//! two of chunks that leaves something on the right. Every aligned power-of-two run of chunks
//! inside the object is therefore a node of that tree, and so is every run from such a place to
//! the object's end that is no longer than the place's alignment. A part starting on a chunk
//! boundary splits into such runs ([`pieces`]): hashed at their offsets while the part streams
//! in, their chaining values are all completion needs to rebuild the tree above them
//! ([`Subtrees`], with the `hazmat` merge functions), whatever the part size, as long as every
//! part but the last is a whole number of chunks.
//!
//! This is the exact BLAKE3 of the object's bytes, not a digest of digests: it is the same
//! value `b3sum` prints for the downloaded file.

use std::collections::BTreeMap;

use blake3::hazmat::{ChainingValue, Mode, left_subtree_len, merge_subtrees_non_root, merge_subtrees_root};

/// BLAKE3's chunk, the tree's leaf.
const CHUNK: u64 = blake3::CHUNK_LEN as u64;

/// The subtrees (offset, length) that the `len` bytes from `offset` of an object form in its
/// BLAKE3 tree, in order; `None` when `offset` is not a chunk boundary or there are no bytes.
///
/// Each is the largest power of two of chunks that `offset` is aligned to and that fits, and
/// the last may end inside a chunk. They are nodes of the object's tree wherever it ends after
/// them, so a part can be hashed this way before anyone knows which part is the last.
#[must_use]
pub fn pieces(offset: u64, len: u64) -> Option<Vec<(u64, u64)>> {
    if !offset.is_multiple_of(CHUNK) || len == 0 {
        return None;
    }
    let (mut at, end) = (offset, offset.checked_add(len)?);
    let mut found = Vec::new();
    while at < end {
        let left = end - at;
        let size = if left < CHUNK {
            left
        } else {
            let fits = 1u64 << left.ilog2();
            if at == 0 { fits } else { fits.min(1 << at.trailing_zeros()) }
        };
        found.push((at, size));
        at += size;
    }
    Some(found)
}

/// Chaining values of some subtrees of one object's BLAKE3 tree, by where they start: the
/// nodes above them can be computed from them.
#[derive(Debug, Default)]
pub struct Subtrees {
    known: BTreeMap<u64, (u64, ChainingValue)>,
}

impl Subtrees {
    /// Nothing known yet.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Notes the chaining value of the subtree of `len` bytes at `offset`.
    pub fn insert(&mut self, offset: u64, len: u64, cv: ChainingValue) {
        self.known.insert(offset, (len, cv));
    }

    /// Notes the chaining values of the subtrees at `places` (offset, length), in order.
    pub fn insert_all(&mut self, places: &[(u64, u64)], cvs: &[ChainingValue]) {
        for (&(offset, len), &cv) in places.iter().zip(cvs) {
            self.insert(offset, len, cv);
        }
    }

    /// The chaining value of the (non-root) subtree of `len` bytes at `offset`: known, or
    /// merged from known subtrees below it; `None` when one of those is missing.
    #[must_use]
    pub fn non_root(&self, offset: u64, len: u64) -> Option<ChainingValue> {
        if let Some(&(known_len, cv)) = self.known.get(&offset)
            && known_len == len
        {
            return Some(cv);
        }
        if len <= CHUNK {
            return None;
        }
        let left_len = left_subtree_len(len);
        let left = self.non_root(offset, left_len)?;
        let right = self.non_root(offset + left_len, len - left_len)?;
        Some(merge_subtrees_non_root(&left, &right, Mode::Hash))
    }

    /// The BLAKE3 of the whole object of `len` bytes; `None` when a subtree is missing or the
    /// object is a single chunk (its hash is no merge).
    #[must_use]
    pub fn root(&self, len: u64) -> Option<blake3::Hash> {
        if len <= CHUNK {
            return None;
        }
        let left_len = left_subtree_len(len);
        let left = self.non_root(0, left_len)?;
        let right = self.non_root(left_len, len - left_len)?;
        Some(blake3::Hash::from_bytes(merge_subtrees_root(&left, &right, Mode::Hash).into()))
    }
}

/// The BLAKE3 hash of a whole object, from the chaining values of its pieces: `cvs` has one
/// per piece of `piece_size` bytes, in order, the last piece `last_len` bytes; every piece a
/// power of two of chunks at a multiple of its size (an object's 1 MiB groups).
#[must_use]
pub fn merge(cvs: &[ChainingValue], piece_size: u64, last_len: u64) -> blake3::Hash {
    debug_assert!(cvs.len() >= 2, "a one-piece object's hash is its piece's own hash");
    let total = piece_size * (cvs.len() as u64 - 1) + last_len;
    let left_len = left_subtree_len(total);
    let left = subtree(cvs, piece_size, 0, left_len);
    let right = subtree(cvs, piece_size, left_len, total - left_len);
    blake3::Hash::from_bytes(merge_subtrees_root(&left, &right, Mode::Hash).into())
}

/// The chaining value of a (non-root) subtree of `len` bytes, a power of two of chunks, from
/// the chaining values of its pieces of `piece_size` bytes (a power of two of chunks, the last
/// piece possibly shorter), each hashed at its offset in the subtree's input. A subtree of
/// one piece is that piece.
#[must_use]
pub fn merge_non_root(cvs: &[ChainingValue], piece_size: u64, len: u64) -> ChainingValue {
    subtree(cvs, piece_size, 0, len)
}

/// The chaining value of the (non-root) subtree covering `len` bytes from `offset`.
fn subtree(cvs: &[ChainingValue], piece_size: u64, offset: u64, len: u64) -> ChainingValue {
    if len <= piece_size {
        // Offsets of subtrees this small are piece boundaries: this is one piece.
        let index = usize::try_from(offset / piece_size).expect("piece index fits in usize");
        return cvs[index];
    }
    let left_len = left_subtree_len(len);
    let left = subtree(cvs, piece_size, offset, left_len);
    let right = subtree(cvs, piece_size, offset + left_len, len - left_len);
    merge_subtrees_non_root(&left, &right, Mode::Hash)
}

#[cfg(test)]
mod tests {
    use blake3::hazmat::HasherExt as _;
    use proptest::prelude::*;

    use super::*;

    fn cv_at(offset: u64, bytes: &[u8]) -> ChainingValue {
        blake3::Hasher::new().set_input_offset(offset).update(bytes).finalize_non_root()
    }

    fn data(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 31 % 251) as u8).collect()
    }

    /// Hashes `data` cut at `sizes` (the last part takes the rest) the way uploads and
    /// completion do: each part's pieces at its offset, then the tree above them.
    fn merged(data: &[u8], sizes: &[usize]) -> Option<blake3::Hash> {
        let mut known = Subtrees::new();
        let mut offset = 0;
        let last = data.len() - sizes.iter().sum::<usize>();
        for &size in sizes.iter().chain([&last]) {
            for (at, len) in pieces(offset as u64, size as u64)? {
                let bytes = &data[at as usize..(at + len) as usize];
                known.insert(at, len, cv_at(at, bytes));
            }
            offset += size;
        }
        known.root(data.len() as u64)
    }

    #[test]
    fn pieces_are_aligned_powers_of_two_of_chunks_but_the_last() {
        let mib = 1 << 20;
        assert_eq!(pieces(0, 5 * mib), Some(vec![(0, 4 * mib), (4 * mib, mib)]));
        assert_eq!(pieces(5 * mib, 5 * mib), Some(vec![(5 * mib, mib), (6 * mib, 2 * mib), (8 * mib, 2 * mib)]));
        assert_eq!(pieces(8 * mib, 8 * mib), Some(vec![(8 * mib, 8 * mib)]));
        assert_eq!(pieces(4096, 2500), Some(vec![(4096, 2048), (6144, 452)]));
        assert_eq!(pieces(100, 5 * mib), None, "not a chunk boundary");
        assert_eq!(pieces(0, 0), None);
    }

    #[test]
    fn parts_of_the_sdks_default_sizes_hash_to_the_whole_object_hash() {
        let mib = 1 << 20;
        for (sizes, len) in [
            (vec![5 * mib, 5 * mib], 12 * mib + 5),
            (vec![8 * mib], 8 * mib + 1),
            (vec![5 * mib + 1024, 5 * mib + 1024], 10 * mib + 4096),
            (vec![5 * mib, 6 * mib, 5 * mib], 17 * mib),
            (vec![1024], 1025),
        ] {
            let bytes = data(len);
            assert_eq!(merged(&bytes, &sizes), Some(blake3::hash(&bytes)), "parts {sizes:?}, len {len}");
        }
    }

    #[test]
    fn a_missing_subtree_or_a_single_chunk_gives_no_root() {
        let bytes = data(3000);
        let mut known = Subtrees::new();
        known.insert(0, 2048, cv_at(0, &bytes[..2048]));
        assert_eq!(known.root(3000), None);
        known.insert(2048, 952, cv_at(2048, &bytes[2048..]));
        assert_eq!(known.root(3000), Some(blake3::hash(&bytes)));
        assert_eq!(Subtrees::new().root(1024), None);
    }

    #[test]
    fn uniform_groups_merge_to_the_whole_object_hash() {
        for (group, len) in [(1024, 2048), (1024, 1025), (4096, 4096 * 3 + 1), (8192, 8192 * 5), (2048, 2048 * 7 + 100)]
        {
            let bytes = data(len);
            let cvs: Vec<_> = bytes.chunks(group).enumerate().map(|(i, p)| cv_at((i * group) as u64, p)).collect();
            let last = bytes.chunks(group).last().unwrap().len() as u64;
            assert_eq!(merge(&cvs, group as u64, last), blake3::hash(&bytes), "group {group}, len {len}");
        }
    }

    proptest! {
        /// Every part-size pattern whose parts but the last are whole chunks gives the BLAKE3
        /// of the whole object.
        #[test]
        fn any_parts_of_whole_chunks_merge_exactly(
            chunks in proptest::collection::vec(1usize..40, 1..8),
            last in 1usize..20_000,
        ) {
            let sizes: Vec<usize> = chunks.iter().map(|c| c * 1024).collect();
            let bytes = data(sizes.iter().sum::<usize>() + last);
            prop_assert_eq!(merged(&bytes, &sizes), Some(blake3::hash(&bytes)));
        }
    }
}
