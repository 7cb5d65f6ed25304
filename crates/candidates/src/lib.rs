//! # speck-candidates
//!
//! The [`Candidate`] type every Speck stage passes on, candidate extraction from model outputs
//! ([`local_maxima`] of a heatmap, connected [`components`] of a segmentation map), and 3D
//! [`merge()`]-ing of duplicates by centre distance in millimetres (see [`merge`](mod@merge) for the
//! rule and why IoU is the wrong criterion for 3–5 voxel objects), and a candidate's size
//! [`measure()`]-d from the image (volume, equivalent and axial diameters, Lung-RADS size class;
//! see [`measure`](mod@measure)).
//!
//! All positions are in the LPS world frame (mm); maps and voxel indices are `[z, y, x]`.
//!
//! ```
//! use ndarray::Array3;
//! use speck_candidates::{local_maxima, merge, MergeOptions, PeakOptions};
//! use speck_volume::{Direction, Geometry, Spacing, WorldPoint};
//!
//! let geometry = Geometry::new(
//!     Spacing::new(0.7, 0.7, 1.0).unwrap(),
//!     WorldPoint::new(0.0, 0.0, 0.0),
//!     Direction::IDENTITY,
//! );
//! let mut heatmap = Array3::<f32>::zeros((16, 16, 16));
//! heatmap[[8, 5, 5]] = 0.9;
//! heatmap[[8, 5, 6]] = 0.8; // the same nodule, seen from a shifted window
//! let peaks = local_maxima(heatmap.view(), &geometry, &PeakOptions::default());
//! assert_eq!(peaks.len(), 1);
//! let merged = merge(&peaks, &MergeOptions::default());
//! assert!((merged[0].world.z_mm - 8.0).abs() < 1e-9);
//! ```

#![deny(unsafe_code)]
#![warn(missing_docs)]

mod candidate;
pub mod extract;
pub mod measure;
pub mod merge;

pub use candidate::{Candidate, CandidateSource, Stage};
pub use extract::{components, local_maxima, ComponentOptions, PeakOptions};
pub use measure::{measure, LungRadsSize, MeasureError, Measurement, Reliability};
pub use merge::{canonical_order, merge, Fusion, MergeOptions};
