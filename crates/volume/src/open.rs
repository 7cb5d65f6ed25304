//! `open(path)`: pick the reader from what the path is.
//!
//! A directory is a DICOM folder; `.nii`/`.nii.gz` is NIfTI; `.mhd`/`.mha` is MetaImage; any
//! other file is read as DICOM when it has the `DICM` marker at byte 128 (Part 10), at byte 0
//! (Part 10 without the preamble), or starts as a bare data set (implicit or explicit VR little
//! endian, as pydicom reads with `force=True`).

use std::path::Path;

use crate::{Limits, Volume, VolumeError};

/// Options for [`open_with`].
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// Bounds on allocations, checked against each header before anything is allocated.
    pub limits: Limits,
    /// For DICOM folders: load this SeriesInstanceUID instead of the largest axial CT stack.
    /// Ignored for NIfTI and MetaImage files, which hold one image.
    pub series_uid: Option<String>,
}

/// The kind of file or folder [`open_with`] recognised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// A folder of DICOM files, or one DICOM file.
    Dicom,
    /// `.nii` or `.nii.gz`.
    Nifti,
    /// `.mhd` (+ data file) or `.mha`.
    MetaImage,
}

/// The file name in lower case, if it is valid UTF-8.
fn lower_name(path: &Path) -> Option<String> {
    path.file_name()
        .and_then(|n| n.to_str())
        .map(str::to_ascii_lowercase)
}

/// The series UID Speck records for a NIfTI or MetaImage file: its file name without
/// `.nii.gz`, `.nii`, `.mhd` or `.mha` (LUNA16 names its files `<seriesuid>.mhd`).
pub(crate) fn stem_uid(path: &Path) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let lower = name.to_ascii_lowercase();
    for ext in [".nii.gz", ".nii", ".mhd", ".mha"] {
        if lower.ends_with(ext) && lower.len() > ext.len() {
            return name[..name.len() - ext.len()].to_string();
        }
    }
    name
}

/// Which reader [`open_with`] would use for `path`.
///
/// # Errors
/// [`VolumeError::Io`] when the path cannot be inspected; [`VolumeError::Unsupported`] naming the
/// path when it is none of the known formats.
pub fn detect_format(path: &Path) -> Result<Format, VolumeError> {
    let meta = std::fs::metadata(path).map_err(|e| VolumeError::io(path, e))?;
    if meta.is_dir() {
        return Ok(Format::Dicom);
    }
    let name = lower_name(path).unwrap_or_default();
    if name.ends_with(".nii") || name.ends_with(".nii.gz") {
        return Ok(Format::Nifti);
    }
    if name.ends_with(".mhd") || name.ends_with(".mha") {
        return Ok(Format::MetaImage);
    }
    // Opened here so that an unreadable file is an I/O error naming it, not "not DICOM".
    std::fs::File::open(path).map_err(|e| VolumeError::io(path, e))?;
    if crate::dicom::sniff(path) {
        return Ok(Format::Dicom);
    }
    Err(VolumeError::unsupported(
        path,
        "not a DICOM folder or file, .nii, .nii.gz, .mhd or .mha",
    ))
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
/// Any [`VolumeError`] of the reader involved; [`VolumeError::Unsupported`] naming the path when
/// the format is not recognised.
pub fn open_with(path: impl AsRef<Path>, options: &LoadOptions) -> Result<Volume, VolumeError> {
    let path = path.as_ref();
    match detect_format(path)? {
        Format::Dicom => crate::dicom::read_series(path, options),
        Format::Nifti => crate::nifti::read_nifti(path, options),
        Format::MetaImage => crate::metaimage::read_metaimage(path, options),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stem_uid_strips_known_extensions_only() {
        assert_eq!(stem_uid(Path::new("/d/1.2.3.mhd")), "1.2.3");
        assert_eq!(stem_uid(Path::new("a/scan.NII.GZ")), "scan");
        assert_eq!(stem_uid(Path::new("scan.nii")), "scan");
        assert_eq!(stem_uid(Path::new("x.mha")), "x");
        assert_eq!(stem_uid(Path::new("x.raw")), "x.raw");
    }
}
