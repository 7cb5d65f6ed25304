//! MetaImage (.mhd/.raw, .mha) reading and writing (in progress: signatures fixed).

use std::path::Path;

use crate::{LoadOptions, Volume, VolumeError};

/// Read a `.mhd` (with its data file) or `.mha` into a volume.
///
/// # Errors
/// Any [`VolumeError`].
pub fn read_metaimage(path: &Path, options: &LoadOptions) -> Result<Volume, VolumeError> {
    let _ = options;
    Err(VolumeError::unsupported(
        path,
        "MetaImage reading is not implemented yet",
    ))
}

/// Write a volume as MetaImage: `.mhd` + `.raw` beside it, or a single `.mha`, by extension.
///
/// # Errors
/// [`VolumeError::Io`] when a file cannot be written.
pub fn write_metaimage(volume: &Volume, path: &Path) -> Result<(), VolumeError> {
    let _ = volume;
    Err(VolumeError::unsupported(
        path,
        "MetaImage writing is not implemented yet",
    ))
}
