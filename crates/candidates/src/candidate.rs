//! The [`Candidate`]: one proposed nodule, in world millimetres.

use serde::{Deserialize, Serialize};
use speck_volume::{ContinuousIndex, WorldPoint};

/// Which stage of the pipeline produced a candidate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Stage {
    /// A coarse heatmap pass.
    #[default]
    Coarse,
    /// A fine patch classifier.
    Fine,
    /// A segmentation-style probability map.
    Segmentation,
    /// Merged from several candidates.
    Merged,
    /// Given from outside (a CSV file, an annotation).
    External,
}

/// Where a candidate came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct CandidateSource {
    /// The stage that produced it.
    pub stage: Stage,
    /// The sliding-window tile index, when one tile produced it.
    pub window: Option<u32>,
    /// How many raw candidates were fused into this one (1 when none were).
    pub support: u32,
}

/// One proposed nodule: the unit every stage of Speck passes on.
///
/// Positions are in the LPS world frame (mm) so that merging and evaluation never need voxels;
/// the voxel position is kept for display and cropping.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    /// Centre in LPS world mm.
    pub world: WorldPoint,
    /// Centre as a continuous `[z, y, x]` index of the volume it was found in.
    pub voxel: ContinuousIndex,
    /// Probability (or score) in `[0, 1]`.
    pub probability: f32,
    /// Estimated diameter in mm, when the producer estimates one.
    pub diameter_mm: Option<f64>,
    /// Provenance.
    pub source: CandidateSource,
}

impl Candidate {
    /// A candidate at `world` / `voxel` with a probability and no size estimate.
    pub fn new(world: WorldPoint, voxel: ContinuousIndex, probability: f32, stage: Stage) -> Self {
        Self {
            world,
            voxel,
            probability,
            diameter_mm: None,
            source: CandidateSource {
                stage,
                window: None,
                support: 1,
            },
        }
    }

    /// Builder-style: set the estimated diameter (mm).
    #[must_use]
    pub fn with_diameter_mm(mut self, diameter_mm: f64) -> Self {
        self.diameter_mm = Some(diameter_mm);
        self
    }
}
