//! Candidates from model outputs (in progress: signatures fixed, bodies being written).

use ndarray::ArrayView3;
use speck_volume::Geometry;

use crate::{Candidate, Stage};

/// Options for [`local_maxima`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PeakOptions {
    /// Minimum value of a peak.
    pub threshold: f32,
    /// Neighbourhood radius in voxels for the local-maximum test (1 = 3x3x3).
    pub radius_vox: usize,
    /// Keep at most this many peaks (highest first).
    pub max_peaks: usize,
    /// Stage recorded in each candidate.
    pub stage: Stage,
}

impl Default for PeakOptions {
    fn default() -> Self {
        Self {
            threshold: 0.5,
            radius_vox: 1,
            max_peaks: 10_000,
            stage: Stage::Coarse,
        }
    }
}

/// 3D local maxima of `map` (`[z, y, x]`) above a threshold, with sub-voxel refinement, placed in
/// the world with `geometry` (the geometry of `map` itself).
pub fn local_maxima(
    map: ArrayView3<'_, f32>,
    geometry: &Geometry,
    options: &PeakOptions,
) -> Vec<Candidate> {
    let _ = (map, geometry, options);
    Vec::new()
}
