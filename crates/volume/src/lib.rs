//! # speck-volume
//!
//! Reads what a hospital or a dataset hands us — DICOM series, NIfTI, MetaImage — into one
//! [`Volume`]: `i16` Hounsfield units indexed `[z, y, x]`, plus spacing, origin and direction in the
//! DICOM/ITK **LPS** patient frame (millimetres). See [`geometry`] for the conventions.
//!
//! ```
//! use speck_volume::{Direction, Geometry, Provenance, Spacing, Volume, VoxelIndex, WorldPoint};
//! let geometry = Geometry::new(
//!     Spacing::new(0.7, 0.7, 1.0)?,
//!     WorldPoint::new(-180.0, -180.0, -300.0),
//!     Direction::IDENTITY,
//! );
//! let volume = Volume::new(ndarray::Array3::from_elem((4, 5, 6), -1000), geometry, Provenance::default())?;
//! let p = volume.voxel_to_world(VoxelIndex::new(1, 2, 3));
//! assert!((p.z_mm - (-299.0)).abs() < 1e-9);
//! assert_eq!(volume.world_to_voxel(p), Some(VoxelIndex::new(1, 2, 3)));
//! # Ok::<(), speck_volume::VolumeError>(())
//! ```

#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod dicom;
mod error;
pub mod geometry;
mod limits;
pub mod luna16;
pub mod metaimage;
pub mod nifti;
mod open;
mod probe;
mod rawdata;
pub mod resample;
pub mod sample;
mod volume;

pub use error::VolumeError;
pub use geometry::{ContinuousIndex, Direction, Geometry, Spacing, VoxelIndex, WorldPoint};
pub use limits::Limits;
pub use open::{detect_format, open, open_with, stem_uid, Format, LoadOptions, ParseFormatError};
pub use probe::{probe, Probe};
pub use volume::{Provenance, SliceSource, Volume};
