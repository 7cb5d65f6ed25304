//! NIfTI-1 reading and writing (in progress: signatures fixed, bodies being written).

use std::path::Path;

use ndarray::ArrayView3;

use crate::{Geometry, LoadOptions, Volume, VolumeError};

/// Read a `.nii` or `.nii.gz` file into a volume (HU, `i16`), converting RAS to LPS.
///
/// # Errors
/// Any [`VolumeError`].
pub fn read_nifti(path: &Path, options: &LoadOptions) -> Result<Volume, VolumeError> {
    let _ = options;
    Err(VolumeError::unsupported(
        path,
        "NIfTI reading is not implemented yet",
    ))
}

/// Write a volume as NIfTI-1 (`.nii` or, by extension, `.nii.gz`), `i16` data.
///
/// # Errors
/// [`VolumeError::Io`] when the file cannot be written.
pub fn write_nifti(volume: &Volume, path: &Path) -> Result<(), VolumeError> {
    let _ = volume;
    Err(VolumeError::unsupported(
        path,
        "NIfTI writing is not implemented yet",
    ))
}

/// Write an `f32` map (`[z, y, x]`, e.g. a heatmap) with a geometry as NIfTI-1.
///
/// # Errors
/// [`VolumeError::Io`] when the file cannot be written.
pub fn write_nifti_f32(
    data: ArrayView3<'_, f32>,
    geometry: &Geometry,
    path: &Path,
) -> Result<(), VolumeError> {
    let _ = (data, geometry);
    Err(VolumeError::unsupported(
        path,
        "NIfTI writing is not implemented yet",
    ))
}
