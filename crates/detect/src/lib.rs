//! # speck-detect
//!
//! The detection engine of Speck: run self-describing ONNX models (see [`contract`] and
//! `docs/models.md`) over a CT [`Volume`](speck_volume::Volume) and return merged
//! [`Candidate`](speck_candidates::Candidate)s in world millimetres.
//!
//! The pipeline ([`Detector::detect`]):
//! 1. **Lung mask** ([`lung`]): a fast classical region of interest; tiles outside it never run,
//!    and candidates outside it are dropped or flagged ([`OutsideLung`]).
//! 2. **Dense model** (`coarse` heatmap or `segmentation` map) over the region of interest at the
//!    model's own spacing, by memory-bounded sliding windows with Gaussian blending ([`tiling`]);
//!    peaks are extracted slab by slab.
//! 3. **Fine model** (optional) on patches centred on each dense candidate (optional flip
//!    test-time augmentation): refined probability, centre and diameter.
//! 4. **Merge** duplicates ([`speck_candidates::merge()`]), sort and cap.
//!
//! A [`Detector`] always has a dense model: [`DetectorBuilder::build`] refuses to build one
//! without ([`DetectError::MissingModel`]). The fine model alone is a [`Refiner`]
//! ([`DetectorBuilder::build_refiner`]), which refines given candidates.
//!
//! ONNX Runtime is loaded at run time ([`runtime`]): `--ort-lib`/[`DetectorBuilder::ort_library`],
//! then `ORT_DYLIB_PATH`, then a Python `onnxruntime` wheel (`./.venv`, `$VIRTUAL_ENV`,
//! `python3`).
//!
//! ```no_run
//! use speck_detect::{Detector, Device};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let detector = Detector::builder()
//!     .coarse("models/test/blob_coarse_2mm.onnx")
//!     .fine("models/test/blob_fine_1mm.onnx")
//!     .device(Device::Cpu)
//!     .threads(2)
//!     .build()?;
//! let volume = speck_volume::open("scan.nii.gz")?;
//! let found = detector.detect(&volume)?;
//! for d in &found.candidates {
//!     println!("{:?} p={:.2} in lung: {:?}", d.candidate.world, d.candidate.probability, d.in_lung);
//! }
//! println!("{} of {} tiles run on {}", found.counts.tiles_run, found.counts.tiles_total, found.device);
//! # Ok(()) }
//! ```

#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod contract;
mod detector;
mod error;
pub mod lung;
pub mod memory;
pub mod model;
pub mod models;
pub mod runtime;
mod sample;
pub mod tiling;

pub use contract::{ContractError, ModelContract, ModelRole, Normalization};
pub use detector::{
    Detection, Detections, Detector, DetectorBuilder, DetectorConfig, OutsideLung, ProbabilityMap,
    Progress, Refiner, StageCounts, StageTimings,
};
pub use error::{DetectError, ModelLoadError, ModelSlot, Result};
pub use lung::{LungMask, LungMaskOptions};
pub use model::{Model, SessionOptions};
pub use runtime::{find_ort_library, Device};
pub use sample::PAD_HU;
pub use tiling::DenseTiles;
