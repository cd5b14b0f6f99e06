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
    /// Where the bytes start in their object (a multipart part's offset; 0 for an object).
    start: u64,
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
        Self::at(0)
    }

    /// A hasher for bytes starting at `start` of their object, a multiple of [`GROUP`]: the
    /// groups of a multipart part, whose chaining values become part of its object's outboard.
    #[must_use]
    pub fn at(start: u64) -> Self {
        debug_assert!(start.is_multiple_of(GROUP), "groups are aligned in their object");
        Self { hasher: group_hasher(start), start, in_group: 0, hashed: 0, cvs: Vec::new() }
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
                self.hasher = group_hasher(self.start + self.hashed);
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

impl GroupHasher {
    /// For bytes hashed from a `start` ([`GroupHasher::at`]) forming a BLAKE3 subtree there (a
    /// power of two of chunks, as a mergeable multipart part is): the subtree's chaining value,
    /// and its groups' chaining values. `None` for no bytes.
    #[must_use]
    pub fn finish_subtree(mut self) -> Option<(ChainingValue, Vec<ChainingValue>)> {
        if self.hashed == 0 {
            return None;
        }
        self.cvs.push(self.hasher.finalize_non_root());
        let cv = blake3_tree::merge_non_root(&self.cvs, GROUP, self.hashed);
        Some((cv, self.cvs))
    }
}

/// Hashes bytes as the BLAKE3 subtree starting at `offset` of their object (a multipart part):
/// by groups where the offset is a group boundary (every full part of a mergeable upload,
/// whose parts are at least 5 MiB), so its groups join the object's outboard; else as one
/// subtree.
pub struct SubtreeHasher {
    offset: u64,
    len: u64,
    hasher: SubtreeEngine,
}

enum SubtreeEngine {
    Groups(GroupHasher),
    Whole(blake3::Hasher),
}

impl SubtreeHasher {
    /// A hasher for bytes starting at `offset` of their object.
    #[must_use]
    pub fn at(offset: u64) -> Self {
        let hasher = if offset.is_multiple_of(GROUP) {
            SubtreeEngine::Groups(GroupHasher::at(offset))
        } else {
            SubtreeEngine::Whole(group_hasher(offset))
        };
        Self { offset, len: 0, hasher }
    }

    /// Hashes the next bytes.
    pub fn update(&mut self, data: &[u8]) {
        self.len += data.len() as u64;
        match &mut self.hasher {
            SubtreeEngine::Groups(hasher) => hasher.update(data),
            SubtreeEngine::Whole(hasher) => {
                hasher.update(data);
            }
        }
    }

    /// The subtree's chaining value, with its groups' when its offset is a group boundary
    /// (else none); `None` when the bytes cannot form a subtree at that offset (their length
    /// does not fit, or there are none).
    #[must_use]
    pub fn finish(self) -> Option<(ChainingValue, Vec<ChainingValue>)> {
        let fits = blake3::hazmat::max_subtree_len(self.offset).is_none_or(|max| self.len <= max) && self.len > 0;
        if !fits {
            return None;
        }
        match self.hasher {
            SubtreeEngine::Groups(hasher) => hasher.finish_subtree(),
            SubtreeEngine::Whole(hasher) => Some((hasher.finalize_non_root(), Vec::new())),
        }
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

    fn part_path(&self, subtree: &ChainingValue) -> PathBuf {
        self.dir.join("parts").join(hex::encode(subtree))
    }

    /// Keeps the groups' chaining values of a multipart part until its upload completes,
    /// named by the part's chaining value as a subtree at its offset (which they merge into).
    /// Blocking.
    ///
    /// # Errors
    /// I/O errors creating the folder or writing the file.
    pub fn save_part(&self, subtree: &ChainingValue, groups: &[ChainingValue]) -> io::Result<()> {
        write_cvs(&self.part_path(subtree), groups)
    }

    /// The groups' chaining values of the part whose subtree chaining value is `subtree`, of
    /// `len` bytes, if they are kept and merge into it. Blocking.
    #[must_use]
    pub fn load_part(&self, subtree: &ChainingValue, len: u64) -> Option<Vec<ChainingValue>> {
        let cvs = read_cvs(&self.part_path(subtree))?;
        let whole = cvs.len() as u64 == groups(len);
        (whole && blake3_tree::merge_non_root(&cvs, GROUP, len) == *subtree).then_some(cvs)
    }

    /// Every kept part's subtree chaining value and modification time. Blocking.
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
    pub fn remove_part(&self, subtree: &ChainingValue) -> io::Result<()> {
        remove_if_present(&self.part_path(subtree))
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

    #[test]
    fn parts_hashed_at_their_offsets_give_the_objects_outboard() {
        let part = 4 * GROUP as usize;
        let bytes = data(2 * part + 5000);
        let mut whole = GroupHasher::new();
        whole.update(&bytes);
        let (root, outboard) = whole.finish();

        let folder = tempfile::tempdir().unwrap();
        let files = OutboardFiles::new(folder.path());
        let mut joined = Vec::new();
        for (index, piece) in bytes.chunks(part).enumerate() {
            let mut hasher = GroupHasher::at((index * part) as u64);
            piece.chunks(300_000).for_each(|chunk| hasher.update(chunk));
            let (cv, groups) = hasher.finish_subtree().unwrap();
            let expected =
                blake3::Hasher::new().set_input_offset((index * part) as u64).update(piece).finalize_non_root();
            assert_eq!(cv, expected, "part {index}: the subtree chaining value");
            if piece.len() == part {
                files.save_part(&cv, &groups).unwrap();
                assert_eq!(files.load_part(&cv, part as u64), Some(groups.clone()));
                assert_eq!(files.load_part(&cv, part as u64 / 2), None, "another length");
                assert_eq!(files.list_parts().unwrap().iter().filter(|(c, _)| *c == cv).count(), 1);
                files.remove_part(&cv).unwrap();
                assert_eq!(files.load_part(&cv, part as u64), None);
            }
            joined.extend(groups);
        }
        assert_eq!(joined, outboard);
        assert!(matches(&joined, &root, bytes.len() as u64));
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
