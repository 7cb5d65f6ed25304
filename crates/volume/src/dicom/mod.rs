//! DICOM series reading and writing (in progress: signatures fixed, bodies being written).

use std::path::Path;

use crate::{LoadOptions, Volume, VolumeError};

mod uid;
mod write;

/// One series found in a folder.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SeriesInfo {
    /// SeriesInstanceUID.
    pub series_uid: String,
    /// Modality (0008,0060), e.g. "CT".
    pub modality: Option<String>,
    /// SeriesDescription.
    pub description: Option<String>,
    /// Number of image files (or frames) in the series.
    pub n_images: usize,
    /// Rows x columns.
    pub rows_cols: (u32, u32),
    /// The files of the series.
    pub files: Vec<std::path::PathBuf>,
}

/// List the image series under `path` (a folder searched recursively, or one file).
///
/// # Errors
/// [`VolumeError::NotFound`] when nothing under `path` is DICOM.
pub fn scan_series(path: &Path) -> Result<Vec<SeriesInfo>, VolumeError> {
    Err(VolumeError::unsupported(
        path,
        "DICOM reading is not implemented yet",
    ))
}

/// Read one series under `path` into a volume: `options.series_uid`, or the largest axial CT stack.
///
/// # Errors
/// Any [`VolumeError`].
pub fn read_series(path: &Path, options: &LoadOptions) -> Result<Volume, VolumeError> {
    let _ = options;
    Err(VolumeError::unsupported(
        path,
        "DICOM reading is not implemented yet",
    ))
}

/// Options for [`write_series`].
#[derive(Debug, Clone, Default)]
pub struct DicomWriteOptions {
    /// SeriesInstanceUID to write; a fresh one when `None`.
    pub series_uid: Option<String>,
    /// StudyInstanceUID; a fresh one when `None`.
    pub study_uid: Option<String>,
    /// PatientID.
    pub patient_id: Option<String>,
}

/// Write `volume` as a DICOM CT series, one file per z slice, into folder `dir` (created).
///
/// # Errors
/// [`VolumeError::Io`] when the folder or a file cannot be written.
pub fn write_series(
    volume: &Volume,
    dir: &Path,
    options: &DicomWriteOptions,
) -> Result<(), VolumeError> {
    write::write_series(volume, dir, options)
}
