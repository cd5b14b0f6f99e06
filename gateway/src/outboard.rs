//! An object's outboard: the BLAKE3 chaining values of its 1 MiB groups, which let a ranged read
//! check the groups it touches without reading the rest of the object.
//!
//! Each [`GROUP`] of an object (aligned in it) is a whole BLAKE3 subtree, so its chaining value
//! can be recomputed from its bytes alone, and all of them merge into the object's BLAKE3
//! ([`crate::blake3_tree::merge`]). An outboard is therefore checked against the digest the
//! registry recorded before it is trusted: whoever damaged or wrote it, a wrong one is refused,
//! never believed.
//!
//! Writes compute it as they hash the body ([`GroupHasher`] gives the digest and the outboard in
//! one pass); it is kept in `outboards/` of the data folder ([`OutboardFiles`]), named by the
//! object's BLAKE3. It is derived data: a missing or refused file is computed again from the
//! object's bytes by the first ranged read that needs it.

use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use blake3::hazmat::{ChainingValue, HasherExt as _};

use crate::blake3_tree;

/// Objects are checked in groups of this many bytes, aligned in the object: each is a whole
/// BLAKE3 subtree (a power of two of 1 KiB chunks).
pub const GROUP: u64 = 1 << 20;

/// The number of groups of an object of `size` bytes.
#[must_use]
pub fn groups(size: u64) -> u64 {
    size.div_ceil(GROUP)
}

/// BLAKE3 of bytes given in any pieces, with the chaining values of their [`GROUP`]s: the
/// digest and the outboard in one pass, at the cost of one hash.
pub struct GroupHasher {
    hasher: blake3::Hasher,
    /// Bytes hashed into `hasher`, the current group.
    in_group: u64,
    hashed: u64,
    cvs: Vec<ChainingValue>,
}

impl Default for GroupHasher {
    fn default() -> Self {
        Self::new()
    }
}

impl GroupHasher {
    /// A hasher for an object's bytes, from its first.
    #[must_use]
    pub fn new() -> Self {
        Self { hasher: blake3::Hasher::new(), in_group: 0, hashed: 0, cvs: Vec::new() }
    }

    /// Bytes hashed so far.
    #[must_use]
    pub fn hashed(&self) -> u64 {
        self.hashed
    }

    /// Hashes the next bytes.
    pub fn update(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            // A full group is closed only when more bytes follow: an object of one group has
            // no outboard, and its digest is that group's root hash.
            if self.in_group == GROUP {
                self.cvs.push(self.hasher.finalize_non_root());
                self.hasher = group_hasher(self.hashed);
                self.in_group = 0;
            }
            #[expect(clippy::cast_possible_truncation, reason = "at most GROUP")]
            let take = data.len().min((GROUP - self.in_group) as usize);
            self.hasher.update(&data[..take]);
            self.in_group += take as u64;
            self.hashed += take as u64;
            data = &data[take..];
        }
    }

    /// The BLAKE3 of everything hashed, and its outboard (empty for at most one group).
    #[must_use]
    pub fn finish(mut self) -> (blake3::Hash, Vec<ChainingValue>) {
        if self.cvs.is_empty() {
            return (self.hasher.finalize(), Vec::new());
        }
        self.cvs.push(self.hasher.finalize_non_root());
        let root = blake3_tree::merge(&self.cvs, GROUP, self.in_group);
        (root, self.cvs)
    }
}

/// A multipart part's BLAKE3 as the subtrees it forms at its offset in its object (see
/// [`blake3_tree::pieces`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartHashes {
    /// Where in its object the part was hashed.
    pub offset: u64,
    /// The chaining value of each of its pieces, in order: what completion merges the
    /// object's BLAKE3 from.
    pub pieces: Vec<ChainingValue>,
    /// The chaining values of its pieces cut at [`GROUP`] boundaries (a large piece's groups, a
    /// small piece itself), in order: what the object's outboard is merged from.
    pub leaves: Vec<ChainingValue>,
}

impl PartHashes {
    /// The 32 bytes that name the blob of a part hashed only at its offset ([`Hashed::Part`]):
    /// a keyed BLAKE3 of that offset and its pieces' chaining values, which differ wherever its
    /// bytes or its offset do. Keyed so that no blob named by the plain BLAKE3 of its bytes can
    /// share the name: whoever knows a part's chaining values could otherwise store them as an
    /// object of their own under the part's name first, and the part would be taken as
    /// already stored.
    #[must_use]
    pub fn blob_name(&self) -> [u8; 32] {
        part_blob_name(self.offset, &self.pieces.concat())
    }
}

/// [`PartHashes::blob_name`] of a part hashed at `offset` into the chaining values `pieces`,
/// one after the other.
fn part_blob_name(offset: u64, pieces: &[u8]) -> [u8; 32] {
    let mut hasher = blake3::Hasher::new_derive_key(PART_BLOB_NAME_CONTEXT);
    hasher.update(&offset.to_le_bytes());
    hasher.update(pieces);
    *hasher.finalize().as_bytes()
}

/// [`part_blob_name`] of the values as an event records them (hex); `None` for text that is
/// not hex.
#[must_use]
pub fn part_blob_name_of_hex(offset: u64, pieces: &str) -> Option<[u8; 32]> {
    Some(part_blob_name(offset, &hex::decode(pieces).ok()?))
}

/// The context of [`PartHashes::blob_name`]'s key derivation (fixed: it names stored blobs).
const PART_BLOB_NAME_CONTEXT: &str = "artifact-store 2026-12-05 multipart part blob name";

/// The hash that names a blob, computed as its bytes stream: the BLAKE3 of the bytes with
/// their outboard, or, for a multipart part of known length, its BLAKE3 subtrees at its offset
/// in its object. A part is hashed once, at its offset: its blob is named by those subtrees
/// ([`PartHashes::blob_name`]) rather than by a second pass of BLAKE3 from offset 0.
pub enum BlobHasher {
    /// Bytes named by their own BLAKE3.
    Whole(GroupHasher),
    /// A part named by its subtrees at its offset.
    Part(PartHasher),
}

impl BlobHasher {
    /// A hasher for a part of `len` bytes at `part_offset` in its object when both are known
    /// and the part forms subtrees there, else for bytes named by their own BLAKE3.
    #[must_use]
    pub fn new(part_offset: Option<u64>, len: Option<u64>) -> Self {
        match part_offset.zip(len).and_then(|(offset, len)| PartHasher::at(offset, len)) {
            Some(part) => Self::Part(part),
            None => Self::Whole(GroupHasher::new()),
        }
    }

    /// Hashes the next bytes.
    pub fn update(&mut self, data: &[u8]) {
        match self {
            Self::Whole(hasher) => hasher.update(data),
            Self::Part(hasher) => hasher.update(data),
        }
    }

    /// What names the bytes hashed; `None` for a part that was not exactly the length
    /// announced.
    #[must_use]
    pub fn finish(self) -> Option<Hashed> {
        match self {
            Self::Whole(hasher) => {
                let (blake3, outboard) = hasher.finish();
                Some(Hashed::Whole { blake3, outboard })
            }
            Self::Part(hasher) => hasher.finish().map(Hashed::Part),
        }
    }
}

/// What a [`BlobHasher`] computed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hashed {
    /// Bytes hashed from their own first byte.
    Whole {
        /// Their BLAKE3.
        blake3: blake3::Hash,
        /// Their outboard (empty for at most one group).
        outboard: Vec<ChainingValue>,
    },
    /// A multipart part's subtrees at its offset; the BLAKE3 of the part alone was not computed.
    Part(PartHashes),
}

impl Hashed {
    /// The BLAKE3 of the bytes; `None` for a part hashed only at its offset.
    #[must_use]
    pub fn blake3(&self) -> Option<blake3::Hash> {
        match self {
            Self::Whole { blake3, .. } => Some(*blake3),
            Self::Part(_) => None,
        }
    }

    /// The 32 bytes the blob is named by: its BLAKE3, or a part's [`PartHashes::blob_name`].
    #[must_use]
    pub fn name(&self) -> [u8; 32] {
        match self {
            Self::Whole { blake3, .. } => *blake3.as_bytes(),
            Self::Part(part) => part.blob_name(),
        }
    }
}

/// The places (offset, length) of the leaves of a part's pieces: each piece larger than a
/// [`GROUP`] cut into its groups (it is a power of two of them, aligned), the others whole.
#[must_use]
pub fn leaves_of(pieces: &[(u64, u64)]) -> Vec<(u64, u64)> {
    let mut leaves = Vec::new();
    for &(offset, len) in pieces {
        if len > GROUP {
            leaves.extend((offset..offset + len).step_by(GROUP as usize).map(|at| (at, GROUP)));
        } else {
            leaves.push((offset, len));
        }
    }
    leaves
}

/// The name a multipart part's leaves are kept by: the BLAKE3 of its pieces' chaining values
/// one after the other (`pieces`, as its event records them), which differ wherever its bytes
/// or its offset do.
#[must_use]
pub fn part_name(pieces: &[u8]) -> [u8; 32] {
    *blake3::hash(pieces).as_bytes()
}

/// [`part_name`] of the values as an event records them (hex); `None` for text that is not hex.
#[must_use]
pub fn part_name_of_hex(pieces: &str) -> Option<[u8; 32]> {
    Some(part_name(&hex::decode(pieces).ok()?))
}

/// Hashes a multipart part of known length into its [`PartHashes`] at an offset, in one pass
/// of BLAKE3 over its leaves.
pub struct PartHasher {
    offset: u64,
    pieces: Vec<(u64, u64)>,
    leaves: Vec<(u64, u64)>,
    /// The leaf being hashed, an index into `leaves`.
    next: usize,
    in_leaf: u64,
    hasher: blake3::Hasher,
    cvs: Vec<ChainingValue>,
    too_long: bool,
}

impl PartHasher {
    /// A hasher for the `len` bytes starting at `offset` of their object; `None` when they
    /// form no subtrees there (`offset` is not a chunk boundary, or `len` is 0).
    #[must_use]
    pub fn at(offset: u64, len: u64) -> Option<Self> {
        let pieces = blake3_tree::pieces(offset, len)?;
        let leaves = leaves_of(&pieces);
        let hasher = group_hasher(offset);
        Some(Self { offset, pieces, leaves, next: 0, in_leaf: 0, hasher, cvs: Vec::new(), too_long: false })
    }

    /// Hashes the next bytes.
    pub fn update(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            let Some(&(_, leaf_len)) = self.leaves.get(self.next) else {
                self.too_long = true;
                return;
            };
            #[expect(clippy::cast_possible_truncation, reason = "at most GROUP")]
            let take = data.len().min((leaf_len - self.in_leaf) as usize);
            self.hasher.update(&data[..take]);
            self.in_leaf += take as u64;
            data = &data[take..];
            if self.in_leaf == leaf_len {
                self.cvs.push(self.hasher.finalize_non_root());
                self.next += 1;
                self.in_leaf = 0;
                if let Some(&(at, _)) = self.leaves.get(self.next) {
                    self.hasher = group_hasher(at);
                }
            }
        }
    }

    /// The part's hashes; `None` when it was not exactly the length announced.
    #[must_use]
    pub fn finish(self) -> Option<PartHashes> {
        if self.too_long || self.next != self.leaves.len() {
            return None;
        }
        let mut pieces = Vec::with_capacity(self.pieces.len());
        let mut leaves = self.cvs.as_slice();
        for &(_, len) in &self.pieces {
            let count = if len > GROUP { usize::try_from(len / GROUP).ok()? } else { 1 };
            let (of_piece, rest) = leaves.split_at(count);
            pieces.push(blake3_tree::merge_non_root(of_piece, GROUP, len));
            leaves = rest;
        }
        Some(PartHashes { offset: self.offset, pieces, leaves: self.cvs })
    }
}

/// A hasher for the group starting at `offset` of an object.
#[must_use]
pub fn group_hasher(offset: u64) -> blake3::Hasher {
    let mut hasher = blake3::Hasher::new();
    hasher.set_input_offset(offset);
    hasher
}

/// Whether `cvs` is the outboard of an object of `size` bytes whose BLAKE3 is `root`.
#[must_use]
pub fn matches(cvs: &[ChainingValue], root: &blake3::Hash, size: u64) -> bool {
    let count = groups(size);
    if count < 2 || cvs.len() as u64 != count {
        return false;
    }
    blake3_tree::merge(cvs, GROUP, size - (count - 1) * GROUP) == *root
}

/// The outboards kept in a data folder: `outboards/<64 hex digits of the object's BLAKE3>`, the
/// chaining values one after the other. Writes go through a temporary name and a rename, so a
/// reader sees a whole file or none; they are not synced, since a file lost to a crash is only
/// computed again.
#[derive(Debug, Clone)]
pub struct OutboardFiles {
    dir: PathBuf,
}

impl OutboardFiles {
    /// The outboards of the data folder `data_dir`.
    #[must_use]
    pub fn new(data_dir: &Path) -> Self {
        Self { dir: data_dir.join("outboards") }
    }

    fn path(&self, root: &blake3::Hash) -> PathBuf {
        self.dir.join(root.to_hex().as_str())
    }

    /// The outboard of the object `root` of `size` bytes, if one is kept and it matches.
    /// Blocking.
    #[must_use]
    pub fn load(&self, root: &blake3::Hash, size: u64) -> Option<Vec<ChainingValue>> {
        let cvs = read_cvs(&self.path(root))?;
        if !matches(&cvs, root, size) {
            tracing::warn!(blake3 = %root, "a kept outboard does not match its object; it is computed again");
            return None;
        }
        Some(cvs)
    }

    /// Keeps the outboard `cvs` of the object `root`. Blocking.
    ///
    /// # Errors
    /// I/O errors creating the folder or writing the file.
    pub fn save(&self, root: &blake3::Hash, cvs: &[ChainingValue]) -> io::Result<()> {
        write_cvs(&self.path(root), cvs)
    }

    fn part_path(&self, key: &[u8; 32]) -> PathBuf {
        self.dir.join("parts").join(hex::encode(key))
    }

    /// Keeps the leaves of a multipart part ([`PartHashes::leaves`]) until its upload
    /// completes, named by [`part_name`]. Blocking.
    ///
    /// # Errors
    /// I/O errors creating the folder or writing the file.
    pub fn save_part(&self, key: &[u8; 32], leaves: &[ChainingValue]) -> io::Result<()> {
        write_cvs(&self.part_path(key), leaves)
    }

    /// The leaves kept for the part named `key` ([`part_name`]), if there are `count` of them. Blocking. They are not checked here: the outboard merged from them is
    /// checked against the object's BLAKE3 before it is kept.
    #[must_use]
    pub fn load_part(&self, key: &[u8; 32], count: usize) -> Option<Vec<ChainingValue>> {
        read_cvs(&self.part_path(key)).filter(|cvs| cvs.len() == count)
    }

    /// Every kept part's name ([`part_name`]) and modification time.
    /// Blocking.
    ///
    /// # Errors
    /// I/O errors reading the folder; a missing folder holds nothing.
    pub fn list_parts(&self) -> io::Result<Vec<(ChainingValue, SystemTime)>> {
        list_named(&self.dir.join("parts"))
    }

    /// Removes a kept part; one already gone is not an error. Blocking.
    ///
    /// # Errors
    /// I/O errors.
    pub fn remove_part(&self, key: &[u8; 32]) -> io::Result<()> {
        remove_if_present(&self.part_path(key))
    }

    /// Every kept outboard's object digest and modification time (files that are not named by
    /// a digest, such as a write's temporary file, are left out). Blocking.
    ///
    /// # Errors
    /// I/O errors reading the folder; a missing folder holds nothing.
    pub fn list(&self) -> io::Result<Vec<(blake3::Hash, SystemTime)>> {
        Ok(list_named(&self.dir)?
            .into_iter()
            .map(|(root, modified)| (blake3::Hash::from_bytes(root), modified))
            .collect())
    }

    /// Removes the outboard of the object `root`; one already gone is not an error. Blocking.
    ///
    /// # Errors
    /// I/O errors.
    pub fn remove(&self, root: &blake3::Hash) -> io::Result<()> {
        remove_if_present(&self.path(root))
    }
}

/// Writes chaining values to `path` through a temporary name in its folder and a rename.
fn write_cvs(path: &Path, cvs: &[ChainingValue]) -> io::Result<()> {
    let dir = path.parent().expect("a kept file is in a folder");
    std::fs::create_dir_all(dir)?;
    let mut temp = tempfile::NamedTempFile::with_prefix_in(".tmp-", dir)?;
    temp.write_all(&cvs.concat())?;
    temp.persist(path).map_err(|err| err.error)?;
    Ok(())
}

/// The chaining values kept in `path`; `None` when it is missing, unreadable or not a whole
/// number of them.
fn read_cvs(path: &Path) -> Option<Vec<ChainingValue>> {
    let bytes = std::fs::read(path).ok()?;
    let whole = bytes.len().is_multiple_of(32);
    whole.then(|| bytes.chunks_exact(32).map(|cv| cv.try_into().expect("chunks of 32 bytes")).collect())
}

/// The files of `dir` named by 64 hex digits, with their modification times.
fn list_named(dir: &Path) -> io::Result<Vec<([u8; 32], SystemTime)>> {
    let entries = match std::fs::read_dir(dir) {
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        entries => entries?,
    };
    let mut named = Vec::new();
    for entry in entries {
        let entry = entry?;
        let mut digest = [0u8; 32];
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else { continue };
        if hex::decode_to_slice(&name, &mut digest).is_err() {
            continue;
        }
        match entry.metadata() {
            Ok(meta) => named.push((digest, meta.modified()?)),
            // Removed since the listing.
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(err) => return Err(err),
        }
    }
    Ok(named)
}

fn remove_if_present(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Err(err) if err.kind() != io::ErrorKind::NotFound => Err(err),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 31 % 251) as u8).collect()
    }

    #[test]
    fn the_digest_is_blake3_and_the_outboard_matches_it_whatever_the_pieces() {
        let group = GROUP as usize;
        for len in [0, 1, 1024, group - 1, group, group + 1, 2 * group, 3 * group + 777] {
            let bytes = data(len);
            for piece in [1000, 256 << 10, group, 3 * group] {
                let mut hasher = GroupHasher::new();
                bytes.chunks(piece).for_each(|chunk| hasher.update(chunk));
                assert_eq!(hasher.hashed(), len as u64);
                let (root, cvs) = hasher.finish();
                assert_eq!(root, blake3::hash(&bytes), "len {len}, pieces of {piece}");
                assert_eq!(cvs.len() as u64, if len <= group { 0 } else { groups(len as u64) });
                assert_eq!(matches(&cvs, &root, len as u64), len > group);
            }
        }
    }

    /// Hashes `bytes` cut into parts of `part` bytes as uploads do; returns each part's
    /// hashes.
    fn hashed_parts(bytes: &[u8], part: usize) -> Vec<PartHashes> {
        bytes
            .chunks(part)
            .enumerate()
            .map(|(index, piece)| {
                let mut hasher = PartHasher::at((index * part) as u64, piece.len() as u64).unwrap();
                piece.chunks(300_000).for_each(|chunk| hasher.update(chunk));
                hasher.finish().unwrap()
            })
            .collect()
    }

    #[test]
    fn parts_hashed_at_their_offsets_give_the_objects_digest_and_outboard() {
        let group = GROUP as usize;
        for part in [5 * group, 4 * group, 5 * group + 1024, 3 * group + 7 * 1024] {
            let bytes = data(2 * part + 5000);
            let mut whole = GroupHasher::new();
            whole.update(&bytes);
            let (root, outboard) = whole.finish();

            let (mut pieces, mut leaves) = (blake3_tree::Subtrees::new(), blake3_tree::Subtrees::new());
            for (index, hashes) in hashed_parts(&bytes, part).iter().enumerate() {
                let offset = (index * part) as u64;
                let len = part.min(bytes.len() - index * part) as u64;
                let places = blake3_tree::pieces(offset, len).unwrap();
                pieces.insert_all(&places, &hashes.pieces);
                leaves.insert_all(&leaves_of(&places), &hashes.leaves);
            }
            assert_eq!(pieces.root(bytes.len() as u64), Some(root), "parts of {part}: the digest");
            let size = bytes.len() as u64;
            let joined: Vec<_> =
                (0..groups(size)).map(|g| leaves.non_root(g * GROUP, GROUP.min(size - g * GROUP)).unwrap()).collect();
            assert_eq!(joined, outboard, "parts of {part}: the outboard");
        }
    }

    #[test]
    fn a_part_of_another_length_than_announced_has_no_hashes() {
        let bytes = data(3000);
        let mut short = PartHasher::at(0, 3001).unwrap();
        short.update(&bytes);
        assert_eq!(short.finish(), None);
        let mut long = PartHasher::at(0, 2999).unwrap();
        long.update(&bytes);
        assert_eq!(long.finish(), None);
        assert!(PartHasher::at(100, 3000).is_none(), "not a chunk boundary");
    }

    #[test]
    fn a_part_blob_name_is_no_plain_blake3_of_what_it_is_derived_from() {
        // Whoever knows a part's chaining values must not be able to store an object whose
        // plain BLAKE3 is the part's blob name: the part would then be taken as stored.
        let bytes = data(3 << 20);
        let mut hasher = PartHasher::at(1 << 20, bytes.len() as u64).unwrap();
        hasher.update(&bytes);
        let part = hasher.finish().unwrap();
        let name = part.blob_name();
        let pieces = part.pieces.concat();
        let offset_and_pieces = [(1u64 << 20).to_le_bytes().as_slice(), &pieces].concat();
        assert_ne!(&name, blake3::hash(&pieces).as_bytes());
        assert_ne!(&name, blake3::hash(&offset_and_pieces).as_bytes());
        assert_eq!(Some(name), part_blob_name_of_hex(1 << 20, &hex::encode(&pieces)));
        assert_ne!(Some(name), part_blob_name_of_hex(2 << 20, &hex::encode(&pieces)), "the offset is named too");
    }

    #[test]
    fn kept_parts_are_loaded_by_their_name_and_count() {
        let folder = tempfile::tempdir().unwrap();
        let files = OutboardFiles::new(folder.path());
        let hashes = hashed_parts(&data(3 * GROUP as usize), 3 * GROUP as usize).remove(0);
        let key = part_name(&hashes.pieces.concat());
        files.save_part(&key, &hashes.leaves).unwrap();
        assert_eq!(files.load_part(&key, 3), Some(hashes.leaves.clone()));
        assert_eq!(files.load_part(&key, 2), None, "another count");
        assert_eq!(files.list_parts().unwrap().iter().filter(|(c, _)| *c == key).count(), 1);
        files.remove_part(&key).unwrap();
        assert_eq!(files.load_part(&key, 3), None);
    }

    #[test]
    fn a_kept_outboard_is_loaded_only_when_it_matches_its_object() {
        let folder = tempfile::tempdir().unwrap();
        let files = OutboardFiles::new(folder.path());
        let bytes = data(3 * GROUP as usize + 5);
        let mut hasher = GroupHasher::new();
        hasher.update(&bytes);
        let (root, cvs) = hasher.finish();
        let size = bytes.len() as u64;
        assert_eq!(files.load(&root, size), None, "nothing kept yet");
        files.save(&root, &cvs).unwrap();
        assert_eq!(files.load(&root, size), Some(cvs.clone()));
        assert_eq!(files.list().unwrap().iter().map(|(r, _)| *r).collect::<Vec<_>>(), vec![root]);

        // A damaged file, a truncated one and one for another size are refused.
        let path = files.path(&root);
        let mut damaged = std::fs::read(&path).unwrap();
        damaged[40] ^= 1;
        std::fs::write(&path, &damaged).unwrap();
        assert_eq!(files.load(&root, size), None);
        std::fs::write(&path, &cvs.concat()[..100]).unwrap();
        assert_eq!(files.load(&root, size), None);
        files.save(&root, &cvs).unwrap();
        assert_eq!(files.load(&root, size + GROUP), None);

        files.remove(&root).unwrap();
        files.remove(&root).unwrap();
        assert_eq!(files.load(&root, size), None);
        assert!(files.list().unwrap().is_empty());
    }
}
