//! # speck-candidates
//!
//! The [`Candidate`] type every Speck stage passes on, peak extraction from heatmaps and
//! probability maps, and 3D merging of duplicates by distance in millimetres.

#![deny(unsafe_code)]
#![warn(missing_docs)]

mod candidate;
pub mod extract;
pub mod merge;

pub use candidate::{Candidate, CandidateSource, Stage};
pub use extract::{local_maxima, PeakOptions};
pub use merge::{merge, MergeOptions};
