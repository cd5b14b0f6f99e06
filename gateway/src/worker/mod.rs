//! Background work of a serving gateway.
//!
//! - [`sweeper`]: the lifecycle sweeper, which applies `registry::lifecycle`'s plan.
//! - [`checkpointer`]: signed checkpoints of the chain, made every so many events or minutes.
//! - [`gc`]: garbage collection, run in the background and by `artifact-store gc`.
//! - [`views_check`]: the periodic check of the views against the log.

pub mod checkpointer;
pub mod gc;
pub mod sweeper;
pub mod views_check;

use std::sync::Mutex;

/// What a background check last found, for `/_ready`: its problems, empty when it passed or
/// has not run yet.
#[derive(Debug, Default)]
pub struct Findings(Mutex<Vec<String>>);

impl Findings {
    /// The problems found; empty when the check passed or has not run.
    #[must_use]
    pub fn problems(&self) -> Vec<String> {
        self.0.lock().expect("findings lock").clone()
    }

    /// Replaces what was found.
    pub fn set(&self, problems: Vec<String>) {
        *self.0.lock().expect("findings lock") = problems;
    }
}
