//! Writes a blob's temp file in large aligned blocks with `O_DIRECT`, past the page cache.
//!
//! A buffered `write()` makes the kernel copy every byte into a page-cache page, account it
//! dirty and later write it back: on this machine that costs about 0.5 s of CPU per GiB
//! (`dd bs=1M count=1024 conv=fsync`), against 0.1 s with `oflag=direct`, and a large PUT is
//! CPU-bound (MD5 and BLAKE3 take most of the rest). With `O_DIRECT` the disk reads the blocks
//! straight from this process's buffer. The price is that the first read of a fresh blob comes
//! from the disk, not from memory; reads go through the page cache and read ahead (see
//! `FileChunks` in the store) to make up for it.
//!
//! `O_DIRECT` wants the buffer, file offset and length aligned to the device's logical block:
//! blocks are gathered in a [`DIRECT_ALIGN`]-aligned buffer, and the last one is padded with
//! zeros and the file cut back to its real length. A file system that refuses `O_DIRECT`
//! (tmpfs, some FUSE and network file systems) gets ordinary buffered writes of the same file.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt as _;
use std::sync::Arc;

use rustix::fs::{OFlags, fcntl_getfl, fcntl_setfl};
use rustix::io::Errno;

/// Bytes per write. Large enough that the syscall and the disk request per write are rare.
const WRITE_BLOCK: usize = 1 << 20;

/// Alignment of buffer, offset and length for `O_DIRECT`: a multiple of every common logical
/// block size (512 bytes and 4 KiB).
const DIRECT_ALIGN: usize = 4096;

/// Appends bytes to a file, in [`WRITE_BLOCK`]s past the page cache where the file system
/// allows it.
pub(super) struct BlockWriter {
    file: Arc<File>,
    direct: bool,
    /// [`WRITE_BLOCK`] + [`DIRECT_ALIGN`] bytes, so that an aligned block fits at `start`.
    buffer: Vec<u8>,
    start: usize,
    filled: usize,
    written: u64,
}

impl BlockWriter {
    /// A writer appending to `file`, which must be empty and open for writing; past the page
    /// cache if `direct` and the file system allows.
    pub(super) fn new(file: Arc<File>, direct: bool) -> Self {
        let direct = direct && enable_direct_io(&file);
        let (buffer, start) = if direct {
            let buffer = vec![0; WRITE_BLOCK + DIRECT_ALIGN];
            let start = buffer.as_ptr().align_offset(DIRECT_ALIGN);
            (buffer, start)
        } else {
            (Vec::new(), 0)
        };
        Self { file, direct, buffer, start, filled: 0, written: 0 }
    }

    /// Whether the writes bypass the page cache (and so need no early writeback).
    pub(super) fn is_direct(&self) -> bool {
        self.direct
    }

    /// Appends `data`.
    pub(super) fn write(&mut self, mut data: &[u8]) -> io::Result<()> {
        if !self.direct {
            self.file.write_all_at(data, self.written)?;
            self.written += data.len() as u64;
            return Ok(());
        }
        while !data.is_empty() {
            let take = data.len().min(WRITE_BLOCK - self.filled);
            let at = self.start + self.filled;
            self.buffer[at..at + take].copy_from_slice(&data[..take]);
            self.filled += take;
            data = &data[take..];
            if self.filled == WRITE_BLOCK {
                self.write_block(WRITE_BLOCK)?;
            }
        }
        Ok(())
    }

    /// Writes what is still buffered. The file then holds exactly the bytes given to
    /// [`BlockWriter::write`]; it is not synced.
    pub(super) fn finish(mut self) -> io::Result<()> {
        if self.filled == 0 {
            return Ok(());
        }
        let len = self.filled;
        let padded = len.next_multiple_of(DIRECT_ALIGN);
        let at = self.start;
        self.buffer[at + len..at + padded].fill(0);
        let end = self.written + len as u64;
        self.write_block(padded)?;
        self.file.set_len(end)
    }

    /// Writes the first `len` buffered bytes at the end of the file and empties the buffer.
    fn write_block(&mut self, len: usize) -> io::Result<()> {
        let block = &self.buffer[self.start..self.start + len];
        match self.file.write_all_at(block, self.written) {
            // The file system took O_DIRECT at open but refuses it for this write: write
            // this and the rest through the page cache.
            Err(err) if self.direct && Errno::from_io_error(&err) == Some(Errno::INVAL) => {
                self.direct = false;
                fcntl_setfl(&*self.file, fcntl_getfl(&*self.file)? - OFlags::DIRECT)?;
                self.file.write_all_at(block, self.written)?;
            }
            result => result?,
        }
        self.written += len as u64;
        self.filled = 0;
        Ok(())
    }
}

/// Turns on `O_DIRECT` for `file`; false when the file system does not support it.
fn enable_direct_io(file: &File) -> bool {
    fcntl_getfl(file).and_then(|flags| fcntl_setfl(file, flags | OFlags::DIRECT)).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i.wrapping_mul(131) ^ (i >> 11)) as u8).collect()
    }

    fn written(data: &[u8], piece: usize, direct: bool) -> Vec<u8> {
        // Read back through a handle of its own: the writer's has O_DIRECT set.
        let file = tempfile::NamedTempFile::new().unwrap();
        let mut writer = BlockWriter::new(Arc::new(file.reopen().unwrap()), direct);
        for chunk in data.chunks(piece) {
            writer.write(chunk).unwrap();
        }
        writer.finish().unwrap();
        std::fs::read(file.path()).unwrap()
    }

    #[test]
    fn files_hold_exactly_the_bytes_written_whatever_their_alignment() {
        for len in [0, 1, DIRECT_ALIGN - 1, DIRECT_ALIGN, WRITE_BLOCK, WRITE_BLOCK + 1, 3 * WRITE_BLOCK - 4_097] {
            for (piece, direct) in [(1_000, true), (65_536, true), (WRITE_BLOCK + 3, true), (1_000, false)] {
                let data = pattern(len);
                let out = written(&data, piece, direct);
                assert_eq!(out.len(), data.len(), "length {len} in pieces of {piece}, direct {direct}");
                assert!(out == data, "content {len} in pieces of {piece}, direct {direct}");
            }
        }
    }
}
