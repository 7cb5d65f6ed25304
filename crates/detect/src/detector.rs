//! The [`Detector`]: lung mask → dense (coarse or segmentation) model → fine model → merge; and
//! the [`Refiner`]: the fine model alone, on given candidates.
//!
//! Each stage is a type: a [`Detector`] holds a dense stage by construction (so
//! [`Detector::detect`] never fails for lack of one) and optionally a fine stage; a [`Refiner`]
//! holds a fine stage. Both are built by [`DetectorBuilder`], the one way to set their tunables.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ndarray::Array3;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use speck_candidates::{local_maxima, merge, Candidate, MergeOptions, PeakOptions, Stage};
use speck_volume::{ContinuousIndex, Geometry, Volume};

use crate::contract::{ModelContract, ModelRole};
use crate::error::{DetectError, ModelSlot, Result};
use crate::lung::{LungMask, LungMaskOptions};
use crate::model::{Model, SessionOptions};
use crate::runtime::Device;
use crate::sample::{sample_patch, Normalizer, SampleGrid};
use crate::tiling::{run_sliding_window, DenseGrid, DenseTiles, FullMap, PassStats, RowSink};

/// What to do with candidates outside the lung mask.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum OutsideLung {
    /// Remove them (counted in [`StageCounts::outside_lung`]).
    #[default]
    Drop,
    /// Keep them, with [`Detection::in_lung`] = `Some(false)`.
    Flag,
}

/// The tunables a [`Detector`] or [`Refiner`] was built with (all have defaults), read with
/// [`Detector::config`] / [`Refiner::config`]. Each is set by the [`DetectorBuilder`] method of the
/// same name, the only way in.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct DetectorConfig {
    /// Fraction of a patch shared with its neighbour, `[0, 0.95]` (default 0.25).
    pub overlap: f32,
    /// Dense tile size: larger than the patch where the model allows it (default
    /// [`DenseTiles::Fit`] up to 2 Mi voxels; see [`crate::tiling`]).
    pub dense_tiles: DenseTiles,
    /// Tiles (dense) per ONNX Runtime call; fine patches per call are 8x this (default 2).
    pub batch_size: usize,
    /// Peak threshold on the dense map (default: the model's `speck.threshold`, else 0.5).
    pub dense_threshold: Option<f32>,
    /// Minimum fine probability kept (default: the model's `speck.threshold`, else 0.5).
    pub fine_threshold: Option<f32>,
    /// Local-maximum neighbourhood radius in output voxels (default 1 = 3x3x3).
    pub peak_radius_vox: usize,
    /// Average the fine model over flips along z, y and x (4 runs per candidate); `None` (the
    /// default) follows the fine model's `speck.flip_tta`, else off.
    pub flip_tta: Option<bool>,
    /// With flip TTA, only candidates whose un-flipped fine probability reaches this floor are
    /// run flipped and averaged; the others keep their single probability (default 0.5; 0 flips
    /// every candidate). A 4-run mean reaches a threshold `t` only if the first run reaches
    /// `4t - 3`, so any floor up to that (0.87 for the bundled 0.968) leaves every finding at the
    /// operating point exactly as with full TTA, at a fraction of the cost.
    pub tta_floor: f32,
    /// The lung mask, or `None` to process the whole volume (then `in_lung` is `None`).
    pub lung_mask: Option<LungMaskOptions>,
    /// Policy for candidates outside the lung mask.
    pub outside_lung: OutsideLung,
    /// At most this many dense candidates go to the fine model, highest coarse probability first
    /// (default 150). The coarse stage proposes 150-250 peaks on a phantom and 480-730 on real
    /// chest CT; with the bundled models the cap took a real 333-slice series from 31 s to 20 s and
    /// left the 20-phantom validation suite's FROC as it was (CPM 0.945, models/README.md).
    pub max_fine_candidates: usize,
    /// At most this many final candidates (highest first; default 500).
    pub max_candidates: usize,
    /// Duplicate merging.
    pub merge: MergeOptions,
    /// Output rows per peak-extraction slab (default 16).
    pub slab_rows: usize,
}

impl Default for DetectorConfig {
    fn default() -> Self {
        Self {
            overlap: 0.25,
            dense_tiles: DenseTiles::default(),
            batch_size: 2,
            dense_threshold: None,
            fine_threshold: None,
            peak_radius_vox: 1,
            flip_tta: None,
            tta_floor: 0.5,
            lung_mask: Some(LungMaskOptions::default()),
            outside_lung: OutsideLung::Drop,
            max_fine_candidates: 150,
            max_candidates: 500,
            merge: MergeOptions::default(),
            slab_rows: 16,
        }
    }
}

/// Builds a [`Detector`] (`Detector::builder().coarse(p).fine(q).device(Device::Cpu).build()?`)
/// or a fine-only [`Refiner`] (`Detector::builder().fine(q).build_refiner()?`).
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct DetectorBuilder {
    dense: Option<PathBuf>,
    fine: Option<PathBuf>,
    session: SessionOptions,
    config: DetectorConfig,
}

impl DetectorBuilder {
    /// The dense model (`speck.role` = `coarse` or `segmentation`).
    pub fn coarse(mut self, path: impl Into<PathBuf>) -> Self {
        self.dense = Some(path.into());
        self
    }
    /// Same slot as [`DetectorBuilder::coarse`], for a `segmentation` model.
    pub fn segmentation(self, path: impl Into<PathBuf>) -> Self {
        self.coarse(path)
    }
    /// The fine patch classifier (`speck.role` = `fine`).
    pub fn fine(mut self, path: impl Into<PathBuf>) -> Self {
        self.fine = Some(path.into());
        self
    }
    /// Requested execution provider (default CPU). See [`Device`] for the fallback rules.
    pub fn device(mut self, device: Device) -> Self {
        self.session.device = device;
        self
    }
    /// ONNX Runtime intra-op threads per model (0 = one per core, the default).
    pub fn threads(mut self, threads: usize) -> Self {
        self.session.threads = threads;
        self
    }
    /// Explicit `libonnxruntime.so` path.
    pub fn ort_library(mut self, path: impl Into<PathBuf>) -> Self {
        self.session.ort_library = Some(path.into());
        self
    }
    /// Tile overlap fraction.
    pub fn overlap(mut self, overlap: f32) -> Self {
        self.config.overlap = overlap;
        self
    }
    /// Dense tile size (see [`DenseTiles`]).
    pub fn dense_tiles(mut self, tiles: DenseTiles) -> Self {
        self.config.dense_tiles = tiles;
        self
    }
    /// Tiles per ONNX Runtime call.
    pub fn batch_size(mut self, n: usize) -> Self {
        self.config.batch_size = n;
        self
    }
    /// Peak threshold on the dense map.
    pub fn dense_threshold(mut self, t: f32) -> Self {
        self.config.dense_threshold = Some(t);
        self
    }
    /// Minimum fine probability.
    pub fn fine_threshold(mut self, t: f32) -> Self {
        self.config.fine_threshold = Some(t);
        self
    }
    /// Flip test-time augmentation for the fine model (default: what the model's
    /// `speck.flip_tta` says, else off).
    pub fn flip_tta(mut self, on: bool) -> Self {
        self.config.flip_tta = Some(on);
        self
    }
    /// The TTA cascade's floor (see [`DetectorConfig::tta_floor`]).
    pub fn tta_floor(mut self, floor: f32) -> Self {
        self.config.tta_floor = floor;
        self
    }
    /// Lung mask options, or `None` to process the whole volume.
    pub fn lung_mask(mut self, options: Option<LungMaskOptions>) -> Self {
        self.config.lung_mask = options;
        self
    }
    /// Policy for candidates outside the lungs.
    pub fn outside_lung(mut self, policy: OutsideLung) -> Self {
        self.config.outside_lung = policy;
        self
    }
    /// Cap on the candidates sent to the fine model (see
    /// [`DetectorConfig::max_fine_candidates`]).
    pub fn max_fine_candidates(mut self, n: usize) -> Self {
        self.config.max_fine_candidates = n;
        self
    }
    /// Cap on final candidates.
    pub fn max_candidates(mut self, n: usize) -> Self {
        self.config.max_candidates = n;
        self
    }
    /// Local-maximum neighbourhood radius on the dense map, in output voxels (see
    /// [`DetectorConfig::peak_radius_vox`]).
    pub fn peak_radius_vox(mut self, radius: usize) -> Self {
        self.config.peak_radius_vox = radius;
        self
    }
    /// Duplicate merging (see [`MergeOptions`]).
    pub fn merge(mut self, options: MergeOptions) -> Self {
        self.config.merge = options;
        self
    }
    /// Output rows per peak-extraction slab (see [`DetectorConfig::slab_rows`]); the result does
    /// not depend on it, only the memory held at once.
    pub fn slab_rows(mut self, rows: usize) -> Self {
        self.config.slab_rows = rows;
        self
    }

    /// Load the models and check the configuration: a coarse (or segmentation) model, and
    /// optionally a fine one.
    ///
    /// # Errors
    /// [`DetectError::MissingModel`] without a coarse (or segmentation) model (a fine model alone
    /// is a [`Refiner`]: [`DetectorBuilder::build_refiner`]); [`DetectError::Config`] with a model
    /// in the wrong slot or an out-of-range option; any error of [`Model::load`].
    pub fn build(self) -> Result<Detector> {
        self.check()?;
        let Some(dense) = &self.dense else {
            return Err(DetectError::MissingModel {
                slot: ModelSlot::Coarse,
            });
        };
        let dense = DenseStage::load(dense, &self.session)?;
        let fine = match &self.fine {
            Some(p) => Some(FineStage::load(p, &self.session)?),
            None => None,
        };
        Ok(Detector {
            dense,
            fine,
            requested: self.session.device,
            config: self.config,
        })
    }

    /// Load the fine model alone and check the configuration, for refining given candidates.
    ///
    /// # Errors
    /// [`DetectError::MissingModel`] without a fine model; [`DetectError::Config`] with a coarse
    /// model too (use [`DetectorBuilder::build`]), a model in the wrong slot or an out-of-range
    /// option; any error of [`Model::load`].
    pub fn build_refiner(self) -> Result<Refiner> {
        self.check()?;
        if let Some(p) = &self.dense {
            return Err(DetectError::Config(format!(
                "a refiner runs only the fine model, but {} was given as the coarse model: use \
                 build() for a detector",
                p.display()
            )));
        }
        let Some(fine) = &self.fine else {
            return Err(DetectError::MissingModel {
                slot: ModelSlot::Fine,
            });
        };
        Ok(Refiner {
            fine: FineStage::load(fine, &self.session)?,
            config: self.config,
        })
    }

    /// The configuration's ranges.
    fn check(&self) -> Result<()> {
        let c = &self.config;
        if !(0.0..=0.95).contains(&c.overlap) {
            return Err(DetectError::Config(format!(
                "overlap must be in [0, 0.95], found {}",
                c.overlap
            )));
        }
        for (name, t) in [
            ("dense_threshold", c.dense_threshold),
            ("fine_threshold", c.fine_threshold),
            ("tta_floor", Some(c.tta_floor)),
        ] {
            if let Some(t) = t {
                if !(0.0..=1.0).contains(&t) {
                    return Err(DetectError::Config(format!(
                        "{name} must be in [0, 1], found {t}"
                    )));
                }
            }
        }
        if c.batch_size == 0
            || c.slab_rows == 0
            || c.max_candidates == 0
            || c.max_fine_candidates == 0
        {
            return Err(DetectError::Config(
                "batch_size, slab_rows, max_candidates and max_fine_candidates must be at least 1"
                    .into(),
            ));
        }
        Ok(())
    }
}

/// Load the model at `path` for `slot`, refusing one whose role belongs in another slot.
fn load_for(slot: ModelSlot, path: &Path, session: &SessionOptions) -> Result<(Model, Normalizer)> {
    let model = Model::load(path, session)?;
    let role = model.contract().role;
    let needs = match slot {
        ModelSlot::Coarse if !role.is_dense() => {
            Some("the coarse slot needs coarse or segmentation")
        }
        ModelSlot::Fine if role != ModelRole::Fine => Some("the fine slot needs a fine model"),
        _ => None,
    };
    if let Some(needs) = needs {
        return Err(DetectError::Config(format!(
            "{} has role {}, but {needs}",
            path.display(),
            role.as_str()
        )));
    }
    let norm = Normalizer::new(model.contract());
    Ok((model, norm))
}

/// The dense (coarse or segmentation) model and its input normaliser.
#[derive(Debug)]
struct DenseStage {
    model: Model,
    norm: Normalizer,
}

impl DenseStage {
    /// Load a model for the coarse slot.
    fn load(path: &Path, session: &SessionOptions) -> Result<Self> {
        let (model, norm) = load_for(ModelSlot::Coarse, path, session)?;
        Ok(Self { model, norm })
    }
}

/// The fine patch classifier and its input normaliser.
#[derive(Debug)]
struct FineStage {
    model: Model,
    norm: Normalizer,
}

/// One final finding.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Detection {
    /// The candidate (world LPS mm, probability, diameter).
    pub candidate: Candidate,
    /// Inside the lung mask? `None` when the mask was switched off.
    pub in_lung: Option<bool>,
}

/// Wall-clock time per stage.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct StageTimings {
    /// Lung mask.
    pub lung_mask: Duration,
    /// Dense model (sliding windows and peak extraction).
    pub dense: Duration,
    /// Fine model.
    pub fine: Duration,
    /// Flagging, merging, sorting.
    pub merge: Duration,
    /// Everything.
    pub total: Duration,
}

/// What each stage did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct StageCounts {
    /// Fraction of the volume inside the region of interest (1 without a lung mask).
    pub roi_fraction: f64,
    /// Tiles laid over the region of interest's bounding box.
    pub tiles_total: usize,
    /// Tiles run (touching the region of interest).
    pub tiles_run: usize,
    /// Tiles skipped (outside the region of interest).
    pub tiles_skipped: usize,
    /// Most output rows (z planes) the blending accumulator held at once.
    pub accumulator_rows: usize,
    /// Peaks of the dense map above its threshold (before merging).
    pub dense_candidates: usize,
    /// Candidates outside the lung mask (dropped or flagged, by policy).
    pub outside_lung: usize,
    /// Candidates sent to the fine model.
    pub fine_evaluated: usize,
    /// Fine model runs (candidates x TTA variants).
    pub fine_runs: usize,
    /// Final candidates.
    pub final_candidates: usize,
    /// Model input voxels processed, over all stages: a measure of compute.
    pub input_voxels: u64,
}

/// Progress reports of [`Detector::detect_with_progress`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Progress {
    /// The lung mask is being computed.
    LungMask,
    /// Dense tiles done out of total.
    Dense {
        /// Done.
        done: usize,
        /// Total.
        total: usize,
    },
    /// Fine candidates done out of total.
    Fine {
        /// Done.
        done: usize,
        /// Total.
        total: usize,
    },
    /// Finished.
    Done,
}

/// The result of [`Detector::detect`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Detections {
    /// Findings, highest probability first.
    pub candidates: Vec<Detection>,
    /// Time per stage.
    pub timings: StageTimings,
    /// Counts per stage.
    pub counts: StageCounts,
    /// The device that actually ran the models.
    pub device: Device,
    /// The device that was requested.
    pub requested_device: Device,
    /// Things a user should know (no lungs found, a device fallback...).
    pub warnings: Vec<String>,
}

/// A dense model's probability map over the region of interest (from
/// [`Detector::probability_map`]).
#[derive(Debug, Clone)]
pub struct ProbabilityMap {
    /// `prob` channel, `[z, y, x]`.
    pub data: Array3<f32>,
    /// Geometry of `data` (model spacing x output stride).
    pub geometry: Geometry,
}

/// The detection engine: a dense (coarse or segmentation) stage, always, and optionally a fine
/// stage. `Send + Sync`, built once, used for many scans (concurrent calls are serialised per
/// model by a lock).
#[derive(Debug)]
pub struct Detector {
    dense: DenseStage,
    fine: Option<FineStage>,
    requested: Device,
    config: DetectorConfig,
}

/// The fine stage alone: refines given candidates (world positions, e.g. from a CSV or another
/// detector). Built by [`DetectorBuilder::build_refiner`]; `Send + Sync` like [`Detector`].
///
/// ```no_run
/// use speck_detect::Detector;
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let refiner = Detector::builder()
///     .fine("models/test/blob_fine_1mm.onnx")
///     .build_refiner()?;
/// let volume = speck_volume::open("scan.nii.gz")?;
/// let given: Vec<speck_candidates::Candidate> = Vec::new();
/// for c in refiner.refine(&volume, &given)? {
///     println!("{:?} p={:.2}", c.world, c.probability);
/// }
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Refiner {
    fine: FineStage,
    config: DetectorConfig,
}

impl Refiner {
    /// The fine model.
    pub fn model(&self) -> &Model {
        &self.fine.model
    }

    /// The configuration.
    pub fn config(&self) -> &DetectorConfig {
        &self.config
    }

    /// The device that actually runs the model.
    pub fn device(&self) -> Device {
        self.fine.model.device()
    }

    /// Run the fine model on given candidates. Returns refined candidates above the fine
    /// threshold, merged and sorted.
    ///
    /// # Errors
    /// Runtime errors.
    pub fn refine(&self, volume: &Volume, candidates: &[Candidate]) -> Result<Vec<Candidate>> {
        let mut counts = StageCounts::default();
        let refined = self
            .fine
            .run(&self.config, volume, candidates, &mut counts, &|_| {})?;
        let mut out = merge(&refined, &self.config.merge);
        out.truncate(self.config.max_candidates);
        Ok(out)
    }
}

impl std::fmt::Debug for Normalizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Normalizer")
    }
}

impl Detector {
    /// Start building a detector.
    pub fn builder() -> DetectorBuilder {
        DetectorBuilder::default()
    }

    /// The dense (coarse or segmentation) model.
    pub fn dense_model(&self) -> &Model {
        &self.dense.model
    }

    /// The fine model, if any.
    pub fn fine_model(&self) -> Option<&Model> {
        self.fine.as_ref().map(|f| &f.model)
    }

    /// The configuration.
    pub fn config(&self) -> &DetectorConfig {
        &self.config
    }

    /// The device that actually runs the models.
    pub fn device(&self) -> Device {
        self.dense.model.device()
    }

    /// Detect nodules in `volume`.
    ///
    /// # Errors
    /// Runtime errors (ONNX Runtime, a model output of the wrong shape, a degenerate volume).
    pub fn detect(&self, volume: &Volume) -> Result<Detections> {
        self.detect_with_progress(volume, &|_| {})
    }

    /// [`Detector::detect`] with progress reports.
    ///
    /// # Errors
    /// As [`Detector::detect`].
    pub fn detect_with_progress(
        &self,
        volume: &Volume,
        progress: &(dyn Fn(Progress) + Sync),
    ) -> Result<Detections> {
        let t_all = Instant::now();
        let DenseStage {
            model: dense,
            norm: dense_norm,
        } = &self.dense;
        let mut counts = StageCounts::default();
        let mut timings = StageTimings::default();
        let mut warnings = Vec::new();
        if self.device() != self.requested {
            warnings.push(format!(
                "requested device {} is unavailable; ran on {}",
                self.requested,
                self.device()
            ));
        }

        progress(Progress::LungMask);
        let t = Instant::now();
        let mask = self.mask(volume);
        timings.lung_mask = t.elapsed();
        counts.roi_fraction = mask.fraction();
        let use_mask = self.config.lung_mask.is_some();
        if use_mask && mask.slices_without_body() > 0 {
            let w = format!(
                "{} slice(s) with no body in view (all air) were left out of the lung search",
                mask.slices_without_body()
            );
            tracing::warn!("{w}");
            warnings.push(w);
        }
        if use_mask && mask.is_empty() {
            let w = "no lungs found (no enclosed air region): nothing was searched".to_string();
            tracing::warn!("{w}");
            warnings.push(w);
        }

        let t = Instant::now();
        let mut cands = Vec::new();
        if let Some((lo, hi)) = mask.bbox() {
            let c = dense.contract();
            let grid = self.grid(lo, hi, volume, c);
            let tiles = plan_tiles(&grid);
            counts.tiles_total = tiles.len();
            let active: Vec<[usize; 3]> = tiles
                .into_iter()
                .filter(|t| {
                    let (a, b) = grid.tile_footprint(*t);
                    mask.touches_box(a, b)
                })
                .collect();
            counts.tiles_skipped = counts.tiles_total - active.len();
            let stage = if c.role == ModelRole::Segmentation {
                Stage::Segmentation
            } else {
                Stage::Coarse
            };
            let mut sink = PeakSink::new(
                &grid,
                volume.geometry(),
                c.output_channels.len(),
                PeakOptions {
                    threshold: self.config.dense_threshold.or(c.threshold).unwrap_or(0.5),
                    radius_vox: self.config.peak_radius_vox.max(1),
                    max_peaks: self.config.max_fine_candidates.max(1) * 4,
                    stage,
                },
                c.channel("diameter_mm"),
                self.config.slab_rows,
            );
            let stats: PassStats = run_sliding_window(
                dense,
                dense_norm,
                volume.voxels(),
                &grid,
                &active,
                self.batch_for(&grid, c),
                &mut sink,
                &|done, total| progress(Progress::Dense { done, total }),
            )?;
            counts.tiles_run = stats.tiles_run;
            counts.accumulator_rows = stats.peak_rows;
            counts.input_voxels += (stats.tiles_run * grid.tile_voxels()) as u64;
            let shape = volume.shape_zyx();
            cands = sink
                .found
                .into_iter()
                .filter(|c| {
                    let v = [c.voxel.z, c.voxel.y, c.voxel.x];
                    (0..3).all(|a| v[a] >= -0.5 && v[a] <= shape[a] as f64 - 0.5)
                })
                .collect();
        }
        counts.dense_candidates = cands.len();
        timings.dense = t.elapsed();

        let t = Instant::now();
        let mut flagged = self.flag(&mask, volume, cands, &mut counts);
        flagged = self.merge_flagged(&flagged, &mask, volume);
        timings.merge += t.elapsed();

        if let Some(fine) = &self.fine {
            let t = Instant::now();
            flagged.truncate(self.config.max_fine_candidates);
            let list: Vec<Candidate> = flagged.iter().map(|d| d.candidate).collect();
            let refined = fine.run(&self.config, volume, &list, &mut counts, progress)?;
            timings.fine = t.elapsed();
            let t = Instant::now();
            // Findings at the model's operating point are merged among themselves, so a lower
            // `fine_threshold` only adds rows below it and never moves a finding above it.
            let op = fine.model.contract().threshold.unwrap_or(0.5);
            let (above, below): (Vec<Candidate>, Vec<Candidate>) =
                refined.into_iter().partition(|c| c.probability >= op);
            let mut c2 = StageCounts::default();
            let above = self.flag(&mask, volume, above, &mut c2);
            flagged = self.merge_flagged(&above, &mask, volume);
            if !below.is_empty() {
                let below = self.flag(&mask, volume, below, &mut c2);
                let m = &self.config.merge;
                let kept = flagged.clone();
                for d in self.merge_flagged(&below, &mask, volume) {
                    let (a, ra) = (d.candidate, m.radius_mm(&d.candidate));
                    let joins = kept.iter().any(|k| {
                        let rk = m.radius_mm(&k.candidate);
                        a.world.distance_mm(k.candidate.world) < m.merge_distance_mm(ra, rk)
                    });
                    if !joins {
                        flagged.push(d);
                    }
                }
            }
            timings.merge += t.elapsed();
        }
        if !use_mask {
            for d in &mut flagged {
                d.in_lung = None;
            }
        }
        flagged.truncate(self.config.max_candidates);
        counts.final_candidates = flagged.len();
        timings.total = t_all.elapsed();
        progress(Progress::Done);
        Ok(Detections {
            candidates: flagged,
            timings,
            counts,
            device: self.device(),
            requested_device: self.requested,
            warnings,
        })
    }

    /// The dense model's `prob` map over the region of interest's bounding box, whole (memory
    /// proportional to that box: for inspection, export and tests; [`Detector::detect`] never
    /// holds it).
    ///
    /// # Errors
    /// Runtime errors.
    pub fn probability_map(&self, volume: &Volume) -> Result<Option<ProbabilityMap>> {
        let DenseStage { model: dense, norm } = &self.dense;
        let mask = self.mask(volume);
        let Some((lo, hi)) = mask.bbox() else {
            return Ok(None);
        };
        let c = dense.contract();
        let grid = self.grid(lo, hi, volume, c);
        let active: Vec<[usize; 3]> = plan_tiles(&grid)
            .into_iter()
            .filter(|t| {
                let (a, b) = grid.tile_footprint(*t);
                mask.touches_box(a, b)
            })
            .collect();
        let mut sink = FullMap::new(c.output_channels.len(), grid.out_dims());
        run_sliding_window(
            dense,
            norm,
            volume.voxels(),
            &grid,
            &active,
            self.batch_for(&grid, c),
            &mut sink,
            &|_, _| {},
        )?;
        Ok(Some(ProbabilityMap {
            data: sink.channel(0),
            geometry: grid.out_geometry(volume.geometry(), 0)?,
        }))
    }

    /// The dense model's grid over volume voxels `lo..hi`.
    fn grid(
        &self,
        lo: [usize; 3],
        hi: [usize; 3],
        volume: &Volume,
        c: &ModelContract,
    ) -> DenseGrid {
        let spacing = volume.geometry().spacing.zyx();
        DenseGrid::new(
            lo,
            hi,
            spacing,
            c,
            self.config.overlap,
            self.config.dense_tiles,
        )
    }

    /// Tiles per ONNX Runtime call: `batch_size` patches' worth of voxels, at least one tile.
    fn batch_for(&self, grid: &DenseGrid, c: &ModelContract) -> usize {
        let patch: usize = c.patch_size.iter().product();
        (self.config.batch_size * patch / grid.tile_voxels().max(1)).max(1)
    }

    fn mask(&self, volume: &Volume) -> LungMask {
        match &self.config.lung_mask {
            Some(o) => LungMask::compute(volume, o),
            None => LungMask::everything(volume),
        }
    }

    fn flag(
        &self,
        mask: &LungMask,
        volume: &Volume,
        cands: Vec<Candidate>,
        counts: &mut StageCounts,
    ) -> Vec<Detection> {
        let mut out = Vec::with_capacity(cands.len());
        for c in cands {
            let inside = mask.contains_index(volume.world_to_index(c.world));
            if !inside {
                counts.outside_lung += 1;
                if self.config.outside_lung == OutsideLung::Drop {
                    continue;
                }
            }
            out.push(Detection {
                candidate: c,
                in_lung: Some(inside),
            });
        }
        out
    }

    fn merge_flagged(&self, d: &[Detection], mask: &LungMask, volume: &Volume) -> Vec<Detection> {
        let list: Vec<Candidate> = d.iter().map(|d| d.candidate).collect();
        merge(&list, &self.config.merge)
            .into_iter()
            .map(|c| Detection {
                candidate: c,
                in_lung: Some(mask.contains_index(volume.world_to_index(c.world))),
            })
            .collect()
    }
}

impl FineStage {
    /// Load a model for the fine slot.
    fn load(path: &Path, session: &SessionOptions) -> Result<Self> {
        let (model, norm) = load_for(ModelSlot::Fine, path, session)?;
        Ok(Self { model, norm })
    }

    /// Refine `cands`: probability, centre and diameter from the fine model (with flip TTA as
    /// configured), keeping those at or above the fine threshold.
    fn run(
        &self,
        config: &DetectorConfig,
        volume: &Volume,
        cands: &[Candidate],
        counts: &mut StageCounts,
        progress: &(dyn Fn(Progress) + Sync),
    ) -> Result<Vec<Candidate>> {
        let c = self.model.contract();
        let sv = volume.geometry().spacing.zyx();
        let p = c.patch_size;
        let tta = config.flip_tta.or(c.flip_tta).unwrap_or(false);
        let threshold = config.fine_threshold.or(c.threshold).unwrap_or(0.5);
        let (ch_d, ch_z, ch_y, ch_x) = (
            c.channel("diameter_mm"),
            c.channel("dz"),
            c.channel("dy"),
            c.channel("dx"),
        );
        let half_mm: [f64; 3] = std::array::from_fn(|a| p[a] as f64 * c.spacing_mm[a] / 2.0);
        counts.fine_evaluated = cands.len();

        // Cascade: every candidate once as is; with TTA, the three flips only for candidates whose
        // first probability reaches the floor (the others cannot reach the operating point).
        let plain = [[false; 3]];
        let flips = [
            [true, false, false],
            [false, true, false],
            [false, false, true],
        ];
        let total = if tta { 2 * cands.len() } else { cands.len() };
        let first = self.pass(config, volume, cands, &plain, counts, &|done| {
            progress(Progress::Fine { done, total });
        })?;
        let mut sums: Vec<(Vec<f64>, f64)> = first.into_iter().map(|r| (r, 1.0)).collect();
        if tta {
            let floor = f64::from(config.tta_floor);
            let again: Vec<usize> = (0..cands.len())
                .filter(|&i| sums[i].0[0] >= floor)
                .collect();
            let list: Vec<Candidate> = again.iter().map(|&i| cands[i]).collect();
            let flipped = self.pass(config, volume, &list, &flips, counts, &|done| {
                let done = cands.len() + done * cands.len() / list.len().max(1);
                progress(Progress::Fine { done, total });
            })?;
            for (&i, r) in again.iter().zip(flipped) {
                for (s, v) in sums[i].0.iter_mut().zip(r) {
                    *s += v;
                }
                sums[i].1 += flips.len() as f64;
            }
        }

        let mut out = Vec::new();
        for (cand, (r, n)) in cands.iter().zip(sums) {
            let prob = (r[0] / n) as f32;
            if !prob.is_finite() || prob < threshold {
                continue;
            }
            let ci = volume.world_to_index(cand.world);
            let centre = [ci.z, ci.y, ci.x];
            let pos: [f64; 3] = std::array::from_fn(|a| {
                let o = [ch_z, ch_y, ch_x][a].map_or(0.0, |ch| r[ch] / n);
                let o = if o.is_finite() {
                    o.clamp(-half_mm[a], half_mm[a])
                } else {
                    0.0
                };
                centre[a] + o / sv[a]
            });
            let voxel = ContinuousIndex::new(pos[0], pos[1], pos[2]);
            let world = volume.geometry().index_to_world(voxel);
            let mut refined = Candidate::new(world, voxel, prob.clamp(0.0, 1.0), Stage::Fine);
            if let Some(d) = ch_d {
                let d = r[d] / n;
                if d.is_finite() && d > 0.0 {
                    refined = refined.with_diameter_mm(d);
                }
            }
            out.push(refined);
        }
        Ok(out)
    }

    /// Run the fine model on every candidate under each of `variants` (flips along z, y, x) and
    /// return, per candidate, the sum over variants of its output channels, with offsets mapped
    /// back to the unflipped frame.
    fn pass(
        &self,
        config: &DetectorConfig,
        volume: &Volume,
        cands: &[Candidate],
        variants: &[[bool; 3]],
        counts: &mut StageCounts,
        progress: &dyn Fn(usize),
    ) -> Result<Vec<Vec<f64>>> {
        let norm = &self.norm;
        let c = self.model.contract();
        let sv = volume.geometry().spacing.zyx();
        let ratio: [f64; 3] = std::array::from_fn(|a| c.spacing_mm[a] / sv[a]);
        let p = c.patch_size;
        let pn = p[0] * p[1] * p[2];
        let nch = c.output_channels.len();
        let nv = variants.len();
        let offsets = [c.channel("dz"), c.channel("dy"), c.channel("dx")];
        let per_call = (config.batch_size * 8).max(nv);
        let cands_per_call = (per_call / nv).max(1);
        let mut sums = Vec::with_capacity(cands.len());
        for chunk in cands.chunks(cands_per_call) {
            let mut input = ndarray::Array5::<f32>::zeros((chunk.len() * nv, 1, p[0], p[1], p[2]));
            let slice = input
                .as_slice_mut()
                .ok_or_else(|| DetectError::Config("non-contiguous batch buffer".into()))?;
            slice
                .par_chunks_mut(pn * nv)
                .zip(chunk.par_iter())
                .for_each(|(buf, cand)| {
                    let ci = volume.world_to_index(cand.world);
                    let centre = [ci.z, ci.y, ci.x];
                    let grid = SampleGrid {
                        origin: std::array::from_fn(|a| {
                            centre[a] - (p[a] as f64 - 1.0) / 2.0 * ratio[a]
                        }),
                        step: ratio,
                        dims: p,
                    };
                    let mut plain = vec![0.0f32; pn];
                    sample_patch(volume.voxels(), &grid, norm, c, &mut plain);
                    for (v, f) in variants.iter().enumerate() {
                        let dst = &mut buf[v * pn..(v + 1) * pn];
                        if *f == [false; 3] {
                            dst.copy_from_slice(&plain);
                        } else {
                            flip_into(&plain, dst, p, *f);
                        }
                    }
                });
            let res = self.model.run(input.view())?;
            if res.len() != chunk.len() * nv * nch {
                return Err(DetectError::OutputShape {
                    path: self.model.path().to_path_buf(),
                    expected: format!("[{}, {nch}]", chunk.len() * nv),
                    found: format!("{:?}", res.shape()),
                });
            }
            let res = res.as_standard_layout();
            let data = res
                .as_slice()
                .ok_or_else(|| DetectError::Config("non-contiguous model output".into()))?;
            for i in 0..chunk.len() {
                let mut sum = vec![0.0f64; nch];
                for (v, f) in variants.iter().enumerate() {
                    let r = &data[(i * nv + v) * nch..(i * nv + v + 1) * nch];
                    for (ch, s) in sum.iter_mut().enumerate() {
                        let x = f64::from(r[ch]);
                        // An offset predicted on a patch flipped along axis a points the other way.
                        let flipped = (0..3).any(|a| offsets[a] == Some(ch) && f[a]);
                        *s += if flipped { -x } else { x };
                    }
                }
                sums.push(sum);
            }
            counts.fine_runs += chunk.len() * nv;
            counts.input_voxels += (chunk.len() * nv * pn) as u64;
            progress(sums.len());
        }
        Ok(sums)
    }
}

/// All tile starts of the grid, `z`-major.
fn plan_tiles(grid: &DenseGrid) -> Vec<[usize; 3]> {
    let [sz, sy, sx] = grid.tile_starts();
    let mut out = Vec::with_capacity(sz.len() * sy.len() * sx.len());
    for &z in &sz {
        for &y in &sy {
            for &x in &sx {
                out.push([z, y, x]);
            }
        }
    }
    out
}

fn flip_into(src: &[f32], dst: &mut [f32], p: [usize; 3], f: [bool; 3]) {
    for z in 0..p[0] {
        let sz = if f[0] { p[0] - 1 - z } else { z };
        for y in 0..p[1] {
            let sy = if f[1] { p[1] - 1 - y } else { y };
            for x in 0..p[2] {
                let sx = if f[2] { p[2] - 1 - x } else { x };
                dst[(z * p[1] + y) * p[2] + x] = src[(sz * p[1] + sy) * p[2] + sx];
            }
        }
    }
}

/// Extracts peaks slab by slab, with a halo so that a peak on a slab border is found exactly once.
struct PeakSink<'a> {
    grid: &'a DenseGrid,
    geometry: &'a Geometry,
    channels: usize,
    plane: usize,
    dims: [usize; 3],
    options: PeakOptions,
    diameter: Option<usize>,
    halo: usize,
    slab: usize,
    rows: VecDeque<(usize, Vec<f32>)>,
    next: usize,
    found: Vec<Candidate>,
}

impl<'a> PeakSink<'a> {
    fn new(
        grid: &'a DenseGrid,
        geometry: &'a Geometry,
        channels: usize,
        options: PeakOptions,
        diameter: Option<usize>,
        slab: usize,
    ) -> Self {
        let dims = grid.out_dims();
        Self {
            grid,
            geometry,
            channels,
            plane: dims[1] * dims[2],
            dims,
            options,
            diameter,
            halo: options.radius_vox.max(1) + 1,
            slab: slab.max(1),
            rows: VecDeque::new(),
            next: 0,
            found: Vec::new(),
        }
    }

    fn emit(&mut self, core_hi: usize) -> Result<()> {
        let core_lo = self.next;
        let Some(first) = self.rows.front().map(|r| r.0) else {
            return Ok(());
        };
        let last = self.rows.back().map_or(first, |r| r.0);
        let z0 = first.max(core_lo.saturating_sub(self.halo));
        let z1 = (last + 1).min(core_hi + self.halo);
        let n = z1 - z0;
        let [_, dy, dx] = self.dims;
        let mut prob = Array3::<f32>::zeros((n, dy, dx));
        for (row, data) in self.rows.iter().filter(|r| r.0 >= z0 && r.0 < z1) {
            if let Some(dst) = prob
                .index_axis_mut(ndarray::Axis(0), row - z0)
                .as_slice_mut()
            {
                dst.copy_from_slice(&data[..self.plane]);
            }
        }
        let geom = self.grid.out_geometry(self.geometry, z0)?;
        for mut c in local_maxima(prob.view(), &geom, &self.options) {
            let lz = c.voxel.z.round();
            let gz = z0 as f64 + lz;
            if gz < core_lo as f64 || gz >= core_hi as f64 {
                continue;
            }
            if let Some(ch) = self.diameter {
                let iy = (c.voxel.y.round().max(0.0) as usize).min(dy - 1);
                let ix = (c.voxel.x.round().max(0.0) as usize).min(dx - 1);
                if let Some((_, data)) = self.rows.iter().find(|r| r.0 == gz as usize) {
                    let d = data[ch * self.plane + iy * dx + ix];
                    if d.is_finite() && d > 0.0 {
                        c = c.with_diameter_mm(f64::from(d));
                    }
                }
            }
            let v = self
                .grid
                .out_to_volume([z0 as f64 + c.voxel.z, c.voxel.y, c.voxel.x]);
            c.voxel = ContinuousIndex::new(v[0], v[1], v[2]);
            self.found.push(c);
        }
        self.next = core_hi;
        let keep_from = core_hi.saturating_sub(self.halo);
        while self.rows.front().is_some_and(|r| r.0 < keep_from) {
            self.rows.pop_front();
        }
        Ok(())
    }
}

impl RowSink for PeakSink<'_> {
    fn push_row(&mut self, row: usize, data: &[f32]) -> Result<()> {
        debug_assert_eq!(data.len(), self.channels * self.plane);
        self.rows.push_back((row, data.to_vec()));
        if row + 1 >= self.next + self.slab + self.halo {
            self.emit(self.next + self.slab)?;
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<()> {
        if self.next < self.dims[0] {
            self.emit(self.dims[0])?;
        }
        Ok(())
    }
}
