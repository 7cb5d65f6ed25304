//! `probe(path)`: what [`crate::open`] would load from a path, from its headers alone.

use std::path::Path;

use crate::dicom::SeriesInfo;
use crate::{Format, Spacing, VolumeError};

/// What the headers of a file or series say about the image [`crate::open`] would load from it,
/// read without the voxels: enough to plan and budget a scan before loading it.
///
/// A header may lie about its data (declare more voxels than the file holds, or name a data file
/// that is missing): only loading finds that out. The loader also checks the declared size
/// against its [`crate::Limits`], which `probe` does not.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Probe {
    /// How the image is stored.
    pub format: Format,
    /// The SeriesInstanceUID for DICOM; for NIfTI and MetaImage the file name without its
    /// extension (see [`crate::stem_uid`]), as the loader records it.
    pub series_uid: Option<String>,
    /// Size of the image in voxels, `[z, y, x]` (for DICOM, `[images, rows, columns]`).
    pub shape_zyx: [u64; 3],
    /// Voxel spacing in millimetres, when the header's geometry is readable without the data
    /// (NIfTI and MetaImage); `None` for DICOM, whose slice spacing only the slices' positions
    /// give.
    pub spacing: Option<Spacing>,
    /// Bytes per stored voxel (2 for `int16`, 4 for `float32`, ...); 2 for DICOM, whose CT pixels
    /// are stored in 16 bits.
    pub bytes_per_voxel: u32,
}

impl Probe {
    /// The number of voxels (`z * y * x`), saturating at `u64::MAX`.
    pub fn voxels(&self) -> u64 {
        self.shape_zyx
            .iter()
            .fold(1u64, |acc, &d| acc.saturating_mul(d))
    }
}

impl From<&SeriesInfo> for Probe {
    /// The probe of one series found by [`crate::dicom::scan_series`] or
    /// [`crate::dicom::survey_files`]: its images, rows and columns.
    fn from(s: &SeriesInfo) -> Self {
        Self {
            format: Format::Dicom,
            series_uid: Some(s.series_uid.clone()),
            shape_zyx: [
                s.n_images as u64,
                u64::from(s.rows_cols.0),
                u64::from(s.rows_cols.1),
            ],
            spacing: None,
            bytes_per_voxel: DICOM_BYTES_PER_VOXEL,
        }
    }
}

/// Bytes per stored voxel assumed for DICOM (CT stores 16-bit pixels).
pub(crate) const DICOM_BYTES_PER_VOXEL: u32 = 2;

/// Read the headers of what [`crate::open`] would load from `path`, not its voxels.
///
/// - NIfTI (`.nii`, `.nii.gz`): the 348- or 540-byte header; its size and data type are checked as
///   the loader checks them, and the spacing is given when the rest of the header is valid.
/// - MetaImage (`.mhd`, `.mha`): the text header, checked as the loader checks it; the data file
///   is neither opened nor required to exist.
/// - DICOM (a folder, or one file of a series): the headers of the files the loader would list,
///   and the stack it would choose (the largest axial CT stack).
///
/// ```
/// use speck_volume::nifti::write_nifti;
/// use speck_volume::{probe, Direction, Format, Geometry, Provenance, Spacing, Volume, WorldPoint};
/// let g = Geometry::new(Spacing::new(0.7, 0.7, 2.5)?, WorldPoint::new(0.0, 0.0, 0.0), Direction::IDENTITY);
/// let v = Volume::new(ndarray::Array3::from_elem((3, 4, 5), -1000), g, Provenance::default())?;
/// let dir = tempfile::tempdir().expect("tempdir");
/// let path = dir.path().join("1.2.3.nii.gz");
/// write_nifti(&v, &path)?;
/// let p = probe(&path)?;
/// assert_eq!((p.format, p.shape_zyx, p.bytes_per_voxel), (Format::Nifti, [3, 4, 5], 2));
/// assert_eq!(p.series_uid.as_deref(), Some("1.2.3"));
/// # Ok::<(), speck_volume::VolumeError>(())
/// ```
///
/// # Errors
/// As [`crate::detect_format`] for an unrecognised path; [`VolumeError::Io`] when a header cannot
/// be read; [`VolumeError::Malformed`] or [`VolumeError::Unsupported`] for a header the loader
/// would refuse; for DICOM, [`VolumeError::NotFound`] when no image is found.
pub fn probe(path: impl AsRef<Path>) -> Result<Probe, VolumeError> {
    let path = path.as_ref();
    match crate::detect_format(path)? {
        Format::Dicom => crate::dicom::probe_series(path),
        Format::Nifti => crate::nifti::probe_nifti(path),
        Format::MetaImage => crate::metaimage::probe_metaimage(path),
    }
}
