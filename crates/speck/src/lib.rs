//! # speck
//!
//! Find tiny lung nodules (3–5 voxels) in CT scans. This crate is the front door for programs that
//! embed Speck: it re-exports the pieces, so one dependency gives
//!
//! - **reading** DICOM series, NIfTI and MetaImage into one [`Volume`] (`i16` HU, `[z, y, x]`
//!   voxels, LPS millimetres): [`open`], [`open_with`], [`LoadOptions`], and the format modules
//!   under [`volume`];
//! - **detecting**: a [`Detector`] built once from ONNX models (coarse heatmap, fine classifier),
//!   `Send + Sync`, reused across scans and threads; [`Detector::detect`] returns
//!   [`Detections`] with per-stage timings and counts;
//! - **candidates** in world millimetres: [`Candidate`], duplicate [`merge()`], peak extraction;
//! - **evaluation** with the LUNA16 protocol, per nodule size: [`evaluate`] and the CSV readers
//!   under [`eval`];
//! - **phantoms**: seeded synthetic chest CTs with nodules of known size, [`phantom::generate`];
//! - **batch scanning** as `speck scan` does it, under [`batch`]: discovery of scans in archives,
//!   sharding, a memory budget, atomic per-scan outputs, `--resume`, the run's CSV files and
//!   report ([`batch::run::run`], [`batch::merge::merge`]).
//!
//! Every fallible function returns its crate's error type; [`Error`] gathers them, so `?` works
//! across the pieces in one function.
//!
//! ```no_run
//! use speck::{Detector, Device};
//!
//! fn main() -> Result<(), speck::Error> {
//!     // Models are loaded once; the detector is then shared by every scan.
//!     let detector = Detector::builder()
//!         .coarse("models/coarse-v7.onnx")
//!         .fine("models/fine-v7.onnx")
//!         .device(Device::Cpu)
//!         .build()?;
//!     // A DICOM folder (the largest axial CT series in it), a .nii.gz or a .mhd.
//!     let volume = speck::open("/data/study-0001")?;
//!     let found = detector.detect(&volume)?;
//!     for d in &found.candidates {
//!         let c = &d.candidate;
//!         let slice = volume
//!             .world_to_voxel(c.world)
//!             .map(|v| v.z);
//!         println!(
//!             "LPS ({:.1}, {:.1}, {:.1}) mm  p={:.3}  diameter {:?} mm  slice {:?}",
//!             c.world.x_mm, c.world.y_mm, c.world.z_mm, c.probability, c.diameter_mm, slice
//!         );
//!     }
//!     Ok(())
//! }
//! ```
//!
//! Without models or files at hand, the same types work on a phantom and a candidate list
//! (this example runs as a doctest):
//!
//! ```
//! use speck::eval::{evaluate, EvalOptions, Nodule, ScoredCandidate};
//! use speck::phantom::{generate, PhantomOptions, SizeMix};
//!
//! let phantom = generate(&PhantomOptions::new(3).shape([24, 96, 96]).spacing([2.5, 1.4, 1.4])
//!     .nodules(2).size_mix(SizeMix::Small))?;
//! let truth = &phantom.truth;
//! // Pretend a detector found every nodule exactly, with probability 0.9.
//! let nodules: Vec<Nodule> = truth.reference_nodules().map(|n| Nodule {
//!     seriesuid: truth.series_uid.clone(),
//!     center: n.centre,
//!     diameter_mm: n.diameter_mm,
//!     diameter_vox: Some(n.diameter_vox),
//!     density: None,
//!     attachment: None,
//!     n_readers: None,
//! }).collect();
//! let marks: Vec<ScoredCandidate> = nodules.iter().map(|n| ScoredCandidate {
//!     seriesuid: n.seriesuid.clone(),
//!     center: n.center,
//!     probability: 0.9,
//! }).collect();
//! if !nodules.is_empty() {
//!     let e = evaluate(&nodules, &[], &marks, None, &EvalOptions::default().with_bootstrap(0))?;
//!     assert_eq!(e.n_detected, nodules.len());
//! }
//! # Ok::<(), speck::Error>(())
//! ```
//!
//! See `docs/library.md` for a longer guide (threads, GPUs, memory, errors) and
//! `crates/speck/examples/detect_folder.rs` for a complete program.

#![deny(unsafe_code)]
#![warn(missing_docs)]

/// Batch scanning: discovery, sharding, memory budget, per-scan outputs, resume, report.
pub use speck_batch as batch;
/// Candidates: the [`Candidate`] type, peak extraction, 3D merging.
pub use speck_candidates as candidates;
/// The detection engine: models, sliding windows, lung mask, coarse-to-fine.
pub use speck_detect as detect;
/// LUNA16 evaluation: FROC, CPM, sensitivity per size, bootstrap intervals.
pub use speck_eval as eval;
/// Synthetic chest CT phantoms with nodules of known size.
pub use speck_phantom as phantom;
/// Volumes, geometry and the DICOM/NIfTI/MetaImage readers and writers.
pub use speck_volume as volume;

pub use speck_batch::BatchError;
pub use speck_candidates::{merge, Candidate, MergeOptions, Stage};
pub use speck_detect::{
    DetectError, Detection, Detections, Detector, DetectorBuilder, Device, ModelSlot, OutsideLung,
    Progress, Refiner,
};
pub use speck_eval::{evaluate, EvalError, EvalOptions, Evaluation};
pub use speck_phantom::PhantomError;
pub use speck_volume::{
    open, open_with, ContinuousIndex, Geometry, Limits, LoadOptions, Spacing, Volume, VolumeError,
    VoxelIndex, WorldPoint,
};

/// Any error of Speck's crates, for programs that use several of them in one function.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading or writing a volume.
    #[error(transparent)]
    Volume(#[from] VolumeError),
    /// Loading models or detecting.
    #[error(transparent)]
    Detect(#[from] DetectError),
    /// Evaluating.
    #[error(transparent)]
    Eval(#[from] EvalError),
    /// Generating or writing a phantom.
    #[error(transparent)]
    Phantom(#[from] PhantomError),
    /// Setting up or running a batch scan, or merging runs.
    #[error(transparent)]
    Batch(#[from] BatchError),
}
