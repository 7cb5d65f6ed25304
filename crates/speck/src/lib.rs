//! # speck
//!
//! Find tiny lung nodules in CT scans. This crate re-exports what an embedding program needs.

#![deny(unsafe_code)]
#![warn(missing_docs)]

pub use speck_candidates as candidates;
pub use speck_candidates::Candidate;
pub use speck_volume as volume;
pub use speck_volume::{Volume, VolumeError, WorldPoint};
