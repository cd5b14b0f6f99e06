//! Barriers for tests only, which let a test run another request at exactly the point where a
//! race would otherwise take luck to hit: with the barrier's variable set to `<path>`, the
//! first time the process reaches the barrier it creates `<path>.reached` and waits until
//! `<path>` exists; later passes go through. Nothing else reads the variables.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// One barrier, named by its environment variable.
pub(crate) struct Barrier {
    variable: &'static str,
    /// The variable's value, read once: a GET reaches its barrier on every request, and the
    /// environment is not read again for each.
    path: OnceLock<Option<PathBuf>>,
    passed: AtomicBool,
}

impl Barrier {
    pub(crate) const fn new(variable: &'static str) -> Self {
        Self { variable, path: OnceLock::new(), passed: AtomicBool::new(false) }
    }

    /// Waits here the first time, when the barrier's variable is set.
    pub(crate) async fn reach(&self) {
        let Some(path) = self.path.get_or_init(|| std::env::var_os(self.variable).map(PathBuf::from)) else {
            return;
        };
        if self.passed.swap(true, Ordering::SeqCst) {
            return;
        }
        let mut reached = path.clone().into_os_string();
        reached.push(".reached");
        if let Err(err) = std::fs::write(&reached, b"") {
            tracing::warn!(%err, barrier = self.variable, "cannot signal a test barrier");
        }
        while !path.exists() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}
