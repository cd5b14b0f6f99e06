//! The data directory's layout, in one place:
//!
//! - `registry.db` (with its WAL files): the registry's event log, see [`registry_path`].
//! - `registry.views.db`: the views rebuilt from that log (`registry::sqlite::views_path`).
//! - `blobs/ab/<64 hex digits>`: blob bytes, named by their BLAKE3 ([`crate::backend::fs`]).
//! - `tmp/`: bodies being received ([`crate::backend::fs`]).
//! - `root-credentials`: generated root credentials ([`crate::auth::root`]).

use std::path::{Path, PathBuf};

/// The registry database of a data directory.
#[must_use]
pub fn registry_path(data_dir: &Path) -> PathBuf {
    data_dir.join("registry.db")
}
