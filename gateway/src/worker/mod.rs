//! Background work of a serving gateway.
//!
//! - [`lifecycle`]: the lifecycle sweeper.
//! - [`gc`]: garbage collection, run in the background and by `artifact-store gc`.

pub mod gc;
pub mod lifecycle;
