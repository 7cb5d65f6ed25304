//! `open(path)`: pick the reader from what the path is.
//!
//! (Owned by the NIfTI/MetaImage work; the DICOM reader plugs in through `crate::dicom`.)

use std::path::Path;

use crate::{Limits, Volume, VolumeError};

/// Options for [`open_with`].
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// Bounds on allocations.
    pub limits: Limits,
    /// For DICOM folders: load this SeriesInstanceUID instead of the largest axial CT stack.
    pub series_uid: Option<String>,
}

/// Load a DICOM folder (or single DICOM file), `.nii`/`.nii.gz`, or `.mhd`/`.mha` with default
/// options.
///
/// # Errors
/// Any [`VolumeError`] of the reader involved.
pub fn open(path: impl AsRef<Path>) -> Result<Volume, VolumeError> {
    open_with(path, &LoadOptions::default())
}

/// As [`open`], with options.
///
/// # Errors
/// Any [`VolumeError`] of the reader involved.
pub fn open_with(path: impl AsRef<Path>, options: &LoadOptions) -> Result<Volume, VolumeError> {
    let path = path.as_ref();
    Err(VolumeError::unsupported(
        path,
        format!("no reader yet ({options:?})"),
    ))
}
