//! 3D merging of duplicate candidates (in progress: signatures fixed, bodies being written).

use crate::Candidate;

/// Options for [`merge`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MergeOptions {
    /// Two candidates closer than this (mm) are always the same finding.
    pub min_distance_mm: f64,
}

impl Default for MergeOptions {
    fn default() -> Self {
        Self {
            min_distance_mm: 2.0,
        }
    }
}

/// Merge duplicates: order-independent, score-weighted fusion; returns candidates sorted by
/// descending probability.
pub fn merge(candidates: &[Candidate], options: &MergeOptions) -> Vec<Candidate> {
    let _ = options;
    candidates.to_vec()
}
