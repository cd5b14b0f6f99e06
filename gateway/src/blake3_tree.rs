//! The BLAKE3 of a multipart object from its parts' chaining values, without reading the
//! object back.
//!
//! BLAKE3 hashes a tree of 1 KiB chunks whose left subtrees are always the largest power of
//! two of chunks that leaves something on the right. When every part but the last has the
//! same size `P`, a power of two of chunks, every subtree boundary above the part level falls
//! on a part boundary: each full part is itself a subtree, and the tree above them can be
//! rebuilt from the parts' chaining values (computed while each part streamed in, at its offset
//! in the object) with the `hazmat` merge functions. The last part, whose offset is only known
//! at completion, is re-hashed at that offset (at most `P` bytes). Any other shape of parts
//! falls back to reading the object once.
//!
//! This is the exact BLAKE3 of the object's bytes, not a digest of digests: it is the same
//! value `b3sum` prints for the downloaded file.

use blake3::hazmat::{ChainingValue, Mode, left_subtree_len, merge_subtrees_non_root, merge_subtrees_root};

/// The subtree offset to hash a part at while it streams in, if parts of its size can be
/// merged: `size` must be a power of two number of 1 KiB chunks. Part numbers start at 1.
#[must_use]
pub fn part_offset(part_number: u32, size: u64) -> Option<u64> {
    let chunks = size / blake3::CHUNK_LEN as u64;
    (size.is_multiple_of(blake3::CHUNK_LEN as u64) && chunks.is_power_of_two())
        .then(|| u64::from(part_number.saturating_sub(1)) * size)
}

/// Whether the parts (sizes in order, numbered 1..=n) can be merged: at least two, every part
/// but the last of one size that [`part_offset`] accepts, the last no larger and not empty.
#[must_use]
pub fn mergeable(sizes: &[u64]) -> Option<u64> {
    let (last, full) = sizes.split_last()?;
    let part_size = *full.first()?;
    let uniform = full.iter().all(|&s| s == part_size);
    (uniform && part_offset(1, part_size).is_some() && *last > 0 && *last <= part_size).then_some(part_size)
}

/// The BLAKE3 hash of the whole object, from the chaining values of its parts (full parts
/// of `part_size` bytes, then the last part of `last_len` bytes, each hashed at its offset).
///
/// `cvs` has one chaining value per part, in order; [`mergeable`] must have accepted the
/// sizes.
#[must_use]
pub fn merge(cvs: &[ChainingValue], part_size: u64, last_len: u64) -> blake3::Hash {
    debug_assert!(cvs.len() >= 2, "a one-part object's hash is its part's own hash");
    let total = part_size * (cvs.len() as u64 - 1) + last_len;
    let left_len = left_subtree_len(total);
    let left = subtree(cvs, part_size, 0, left_len);
    let right = subtree(cvs, part_size, left_len, total - left_len);
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
fn subtree(cvs: &[ChainingValue], part_size: u64, offset: u64, len: u64) -> ChainingValue {
    if len <= part_size {
        // Offsets of subtrees this small are part boundaries: this is one part.
        let index = usize::try_from(offset / part_size).expect("part index fits in usize");
        return cvs[index];
    }
    let left_len = left_subtree_len(len);
    let left = subtree(cvs, part_size, offset, left_len);
    let right = subtree(cvs, part_size, offset + left_len, len - left_len);
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

    /// Hashes `data` split into parts of `part_size` the way completion does.
    fn merged(data: &[u8], part_size: usize) -> blake3::Hash {
        let parts: Vec<&[u8]> = data.chunks(part_size).collect();
        let cvs: Vec<_> = parts.iter().enumerate().map(|(i, p)| cv_at((i * part_size) as u64, p)).collect();
        merge(&cvs, part_size as u64, parts.last().unwrap().len() as u64)
    }

    fn data(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 31 % 251) as u8).collect()
    }

    #[test]
    fn merged_parts_hash_to_the_whole_object_hash() {
        for (part_size, len) in
            [(1024, 2048), (1024, 1025), (4096, 4096 * 3 + 1), (8192, 8192 * 5), (2048, 2048 * 7 + 100)]
        {
            let bytes = data(len);
            assert_eq!(merged(&bytes, part_size), blake3::hash(&bytes), "part {part_size}, len {len}");
        }
    }

    #[test]
    fn only_uniform_power_of_two_parts_merge() {
        assert_eq!(mergeable(&[8 << 20, 8 << 20, 3]), Some(8 << 20));
        assert_eq!(mergeable(&[16 << 20, 16 << 20]), Some(16 << 20));
        assert_eq!(mergeable(&[5 << 20, 5 << 20, 1]), None);
        assert_eq!(mergeable(&[8 << 20, 4 << 20, 1]), None);
        assert_eq!(mergeable(&[8 << 20, (8 << 20) + 1]), None);
        assert_eq!(mergeable(&[8 << 20, 0]), None);
        assert_eq!(mergeable(&[8 << 20]), None);
        assert_eq!(part_offset(3, 8 << 20), Some(16 << 20));
        assert_eq!(part_offset(1, 5 << 20), None);
        assert_eq!(part_offset(1, 512), None);
    }

    proptest! {
        #[test]
        fn any_split_into_equal_power_of_two_parts_merges_exactly(
            exponent in 0u32..4,
            full_parts in 1usize..9,
            last in 1usize..=1024,
        ) {
            let part_size = 1024usize << exponent;
            let last = last * (part_size / 1024).max(1) % part_size + 1;
            let bytes = data(part_size * full_parts + last);
            prop_assert_eq!(merged(&bytes, part_size), blake3::hash(&bytes));
        }
    }
}
