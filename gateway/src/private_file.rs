//! Files only the gateway's user may read (keys), created whole or not at all: a process that
//! reads one never finds it empty or half written, and two processes creating the same one at
//! once (gateways started together on one data folder) keep the first.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

/// Writes `bytes` to a new file at `path` (mode 0600), durably: to a temporary file beside it,
/// linked into place, the folder flushed. Fails with `AlreadyExists`, replacing nothing, when
/// `path` exists.
///
/// # Errors
/// `AlreadyExists`, or the failure to write, link or flush.
pub fn create(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir)?;
    let name = path.file_name().and_then(|name| name.to_str()).unwrap_or("key");
    let temporary = dir.join(format!(".{name}.new-{}-{:016x}", std::process::id(), rand::random::<u64>()));
    let written = (|| {
        let mut file = OpenOptions::new().write(true).create_new(true).mode(0o600).open(&temporary)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::hard_link(&temporary, path)
    })();
    let _ = fs::remove_file(&temporary);
    written?;
    // The link is durable only once its folder is: a key lost to a power cut loses what it
    // signed or wrapped.
    sync_dir(dir)
}

/// Flushes a folder's entries (new links, renames) to disk.
///
/// # Errors
/// The folder cannot be opened or flushed.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}
