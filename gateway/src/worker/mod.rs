//! Background work of a serving gateway.
//!
//! - [`lifecycle`]: the lifecycle sweeper.

pub mod lifecycle;
