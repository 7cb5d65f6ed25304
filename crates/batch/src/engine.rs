//! What the scan runner needs from a detector, as a trait so the runner's plumbing (discovery,
//! outputs, resume, errors) does not depend on how detection is done.

use std::collections::BTreeMap;

use ndarray::Array3;
use speck_candidates::Candidate;
use speck_volume::{Geometry, Volume};

/// One finding.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Found {
    /// The candidate, in LPS mm.
    pub candidate: Candidate,
    /// Whether its centre is in the lung mask; `None` when no mask was made.
    pub in_lung: Option<bool>,
    /// Whether its probability reaches the model's own operating point (`speck.threshold`).
    pub above_operating_point: bool,
}

/// What detection produced for one scan.
pub struct EngineOutput {
    /// Findings.
    pub candidates: Vec<Found>,
    /// The coarse heatmap and its geometry, when asked for and available.
    pub heatmap: Option<(Array3<f32>, Geometry)>,
    /// Seconds per stage.
    pub timings_s: BTreeMap<String, f64>,
    /// Counts per stage (numbers).
    pub counts: BTreeMap<String, serde_json::Value>,
    /// The device that actually ran.
    pub device: String,
    /// Warnings (fallbacks, models that did not fit...).
    pub warnings: Vec<String>,
}

/// A detector the runner can share across worker threads.
pub trait Engine: Send + Sync {
    /// Detect candidates in `volume`. `want_heatmap` asks for the heatmap to be kept.
    /// `progress` receives the fraction done in `[0, 1]`.
    ///
    /// # Errors
    /// Whatever makes detection impossible for this scan (written, with its sources, as the
    /// scan's `errors.csv` reason, stage `detect`).
    fn detect(
        &self,
        volume: &Volume,
        want_heatmap: bool,
        progress: &(dyn Fn(f32) + Sync),
    ) -> Result<EngineOutput, crate::BatchError>;

    /// The models and device, as written in every `scan.json` (and compared by `--resume`).
    fn describe(&self) -> serde_json::Value;
}
