//! The data directory's layout, in one place:
//!
//! - `registry.db` (with its WAL files): the registry's event log, see [`registry_path`].
//! - `registry.views.db`: the views rebuilt from that log (`registry::sqlite::views_path`).
//! - `blobs/ab/<64 hex digits>`: blob bytes, named by their BLAKE3, a multipart part's by its
//!   BLAKE3 subtrees at its offset ([`crate::backend::fs`]).
//! - `tmp/`: bodies being received ([`crate::backend::fs`]).
//! - `outboards/<64 hex digits>`: the 1 MiB group digests of large objects, named by the
//!   object's BLAKE3, so ranges are checked on their own ([`crate::outboard`]); derived data.
//!   `outboards/parts/`: those of multipart parts, until their upload completes.
//! - `root-credentials`: generated root credentials ([`crate::auth::root`]).
//! - `backend.json`: where the blobs are, the backend `serve` last ran with, no credentials
//!   ([`crate::served_backend`]).
//! - `registry.gc.lock`: held by the garbage collection pass running ([`crate::worker::gc`]).
//! - `replicas/<host>-<port>/`: on a log shared on PostgreSQL, each gateway's replica of it
//!   (a `registry.db` and its views), see [`local_registry_path`].
//!
//! Everything in it is its owner's alone: files 0600, folders 0700. The registry holds small
//! objects' bytes and every request's context, the blobs hold the rest; nobody else on the
//! machine has a reason to read them.

use std::io;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use rustix::fs::Mode;

/// Mode of every file in the data folder.
const FILE_MODE: u32 = 0o600;
/// Mode of every folder in the data folder.
const DIR_MODE: u32 = 0o700;

/// The registry database of a data directory.
#[must_use]
pub fn registry_path(data_dir: &Path) -> PathBuf {
    data_dir.join("registry.db")
}

/// The registry database this gateway writes: the data folder's own, or, on a log shared on
/// PostgreSQL (`registry.url`), this gateway's replica of it: `registry.replica_dir`, by
/// default `<data_dir>/replicas/<host>-<port>`, so that gateways sharing a data folder each
/// keep their own.
#[must_use]
pub fn local_registry_path(config: &crate::config::Config) -> PathBuf {
    if config.registry.url.is_none() {
        return registry_path(&config.storage.data_dir);
    }
    let dir = config.registry.replica_dir.clone().unwrap_or_else(|| {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        let port = config.server.listen.rsplit(':').next().unwrap_or_default();
        config.storage.data_dir.join("replicas").join(format!("{}-{port}", host.trim()))
    });
    registry_path(&dir)
}

/// Makes every file and folder this process creates from now on its owner's alone (0600 and
/// 0700), whoever creates it: SQLite (the databases and their WAL and shared-memory files,
/// which it gives the database's mode), the blob store, the key writers. Called once at start,
/// before any file is created.
pub fn restrict_new_files() {
    rustix::process::umask(Mode::from_bits_truncate(0o077));
}

/// Gives every file under `data_dir` mode 0600 and every folder 0700, for a data folder made by
/// an older build or loosened by hand; returns how many it changed. Symbolic links are left
/// alone (a link's target may lie elsewhere). A missing folder is not an error: it is created
/// later, with the right modes.
///
/// # Errors
/// I/O errors reading the folder or changing a mode.
pub fn make_private(data_dir: &Path) -> io::Result<u64> {
    match std::fs::symlink_metadata(data_dir) {
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(0),
        Err(err) => Err(err),
        Ok(meta) => make_private_entry(data_dir, &meta),
    }
}

fn make_private_entry(path: &Path, meta: &std::fs::Metadata) -> io::Result<u64> {
    let (wanted, is_dir) = if meta.is_dir() {
        (DIR_MODE, true)
    } else if meta.is_file() {
        (FILE_MODE, false)
    } else {
        return Ok(0);
    };
    let mut changed = 0;
    if meta.permissions().mode() & 0o7777 != wanted {
        match std::fs::set_permissions(path, std::fs::Permissions::from_mode(wanted)) {
            Ok(()) => changed += 1,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(0),
            Err(err) => return Err(err),
        }
    }
    if is_dir {
        // On a data folder other gateways share, their temp files, blobs and journals come and
        // go during the walk: one gone since it was listed needs nothing.
        let entries = match std::fs::read_dir(path) {
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(changed),
            entries => entries?,
        };
        for entry in entries {
            let entry = entry?;
            match entry.metadata() {
                Ok(meta) => changed += make_private_entry(&entry.path(), &meta)?,
                Err(err) if err.kind() == io::ErrorKind::NotFound => {}
                Err(err) => return Err(err),
            }
        }
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by an attacker's pass: on a data folder other gateways share, their temp files,
    /// blobs and journals come and go while a starting gateway walks it, and one gone between
    /// its listing and its look at it made the start fail ("No such file or directory").
    #[test]
    fn files_that_go_during_the_walk_are_passed_over() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir_all(data.join("tmp")).unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let churn = {
            let (tmp, stop) = (data.join("tmp"), std::sync::Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut n = 0_u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let path = tmp.join(format!("upload-{}.part", n % 64));
                    if std::fs::write(&path, b"x").is_ok() {
                        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).ok();
                    }
                    std::fs::remove_file(tmp.join(format!("upload-{}.part", (n + 32) % 64))).ok();
                    n += 1;
                }
            })
        };
        let walks: Vec<io::Result<u64>> = (0..2000).map(|_| make_private(&data)).collect();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        churn.join().unwrap();
        let failed: Vec<String> = walks.into_iter().filter_map(Result::err).map(|e| e.to_string()).collect();
        assert!(failed.is_empty(), "{} walks failed, first: {:?}", failed.len(), failed.first());
    }

    #[test]
    fn make_private_tightens_files_and_folders_and_leaves_links() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir_all(data.join("blobs/ab")).unwrap();
        std::fs::write(data.join("registry.db"), b"x").unwrap();
        std::fs::write(data.join("blobs/ab/f"), b"y").unwrap();
        std::fs::write(dir.path().join("outside"), b"z").unwrap();
        std::fs::set_permissions(dir.path().join("outside"), std::fs::Permissions::from_mode(0o644)).unwrap();
        std::os::unix::fs::symlink(dir.path().join("outside"), data.join("link")).unwrap();
        for (path, mode) in [("", 0o755), ("blobs", 0o775), ("registry.db", 0o644), ("blobs/ab/f", 0o666)] {
            std::fs::set_permissions(data.join(path), std::fs::Permissions::from_mode(mode)).unwrap();
        }

        assert_eq!(make_private(&data).unwrap(), 5);
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        for (path, wanted) in [("", 0o700), ("blobs", 0o700), ("blobs/ab", 0o700), ("registry.db", 0o600)] {
            assert_eq!(mode(&data.join(path)), wanted, "{path}");
        }
        assert_eq!(mode(&data.join("blobs/ab/f")), 0o600);
        assert_eq!(mode(&dir.path().join("outside")), 0o644, "a link's target is not ours to change");
        assert_eq!(make_private(&data).unwrap(), 0, "nothing left to change");
        assert_eq!(make_private(&dir.path().join("missing")).unwrap(), 0);
    }
}
