//! # speck-phantom
//!
//! Seeded synthetic chest CT with nodules of known centre and size: the yardstick the detector is
//! trained and judged on.
//!
//! A phantom is an `i16` HU [`Volume`] (default 300 x 512 x 512 voxels at 1.0 x 0.7 x 0.7 mm,
//! `[z, y, x]`, identity direction, LPS millimetres) holding a body with fat and muscle, lungs that
//! change shape from apex to base, a mediastinum with heart, contrast-filled chambers and great
//! vessels, trachea and bronchi, ribs, spine and sternum, two branching vessel trees per lung
//! tapering from ~5 mm to sub-voxel, partial-volume blur and correlated noise; and a
//! [`GroundTruth`] listing every nodule (centre in LPS mm, equivalent diameter in mm and in-plane
//! voxels, density, attachment, shape) plus the true lung mask.
//!
//! Same [`PhantomOptions`] (seed included) ⇒ bit-identical voxels, whatever the thread count:
//! every random stream is derived from the seed per object or per slice, never shared between
//! threads. See `docs/phantoms.md` for what is modelled and how it was calibrated.
//!
//! ```
//! use speck_phantom::{generate, PhantomOptions, SizeMix};
//! let opts = PhantomOptions::new(7)
//!     .shape([48, 128, 128])
//!     .spacing([2.0, 1.2, 1.2])
//!     .nodules(2)
//!     .size_mix(SizeMix::Small);
//! let phantom = generate(&opts)?;
//! assert_eq!(phantom.volume.shape_zyx(), [48, 128, 128]);
//! for n in &phantom.truth.nodules {
//!     // Every nodule centre lies inside a lung.
//!     assert!(phantom.truth.lung_at(n.centre).is_some());
//! }
//! let csv = speck_phantom::annotations_csv([&phantom.truth])?;
//! assert!(csv.starts_with("seriesuid,coordX,coordY,coordZ,diameter_mm,diameter_vox"));
//! # Ok::<(), speck_phantom::PhantomError>(())
//! ```

#![deny(unsafe_code)]
#![warn(missing_docs)]

mod anatomy;
mod error;
mod generate;
mod nodules;
mod options;
mod output;
mod render;
mod rng;
mod shapes;
mod sizes;
mod trees;
mod truth;

pub use error::PhantomError;
pub use options::{AttachmentMix, DensityMix, PhantomOptions, SizeMix};
pub use output::{
    annotations_csv, excluded_csv, write_annotations, write_lung_mask, write_scan, OutputFormat,
    ANNOTATIONS_HEADER, EXCLUDED_HEADER,
};
pub use truth::{Attachment, Density, GroundTruth, Lung, Nodule, NoduleShape};

use speck_volume::Volume;

/// A generated scan and what is true about it.
#[derive(Debug, Clone)]
pub struct Phantom {
    /// The CT volume (`i16` HU, `[z, y, x]`, LPS geometry, SeriesInstanceUID in its provenance).
    pub volume: Volume,
    /// Nodules, identifiers and lung mask.
    pub truth: GroundTruth,
}

/// Generate the phantom described by `options`.
///
/// Runs in parallel on the current rayon pool; the result does not depend on its size.
///
/// # Errors
/// [`PhantomError::InvalidOptions`] for out-of-range options, [`PhantomError::Placement`] when
/// the requested nodules do not fit in the lungs.
pub fn generate(options: &PhantomOptions) -> Result<Phantom, PhantomError> {
    generate::generate(options)
}

/// The SeriesInstanceUID the phantom `options` describes gets (`2.25.<decimal>`, at most 44
/// characters), without generating it. It depends on the seed and on every option that changes
/// the image (shape, spacing, nodule count, size/density/attachment mixes, noise, reference
/// threshold, PSF), so two different phantoms never share a UID; `lung_mask` only adds an output
/// and does not change it.
pub fn series_uid(options: &PhantomOptions) -> String {
    generate::series_uid(options)
}
