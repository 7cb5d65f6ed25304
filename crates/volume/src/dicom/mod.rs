//! DICOM series: reading a folder of slices (or one enhanced multi-frame file) into a [`Volume`],
//! and writing a volume as a CT series.
//!
//! # Reading
//! A file is DICOM when it is Part 10 (`DICM` at byte 128, after the preamble), Part 10 without
//! the preamble (`DICM` at byte 0, then the file meta group: some older tools write these, and
//! pydicom and GDCM read them), or a bare data set with no preamble and no file meta group,
//! starting with a group 0008 element, in implicit or explicit VR little endian (told apart by the
//! first element, as pydicom's `force=True` does). Every length is checked before parsing
//! whichever the framing.
//!
//! [`read_series`] searches a folder recursively (files in any order, non-DICOM files skipped),
//! groups images by SeriesInstanceUID and then by orientation and image size ("stacks"), and loads
//! `LoadOptions::series_uid` or else the largest axial CT stack; the others are listed in
//! [`crate::Provenance::other_series`].
//!
//! Slices are sorted by ImagePositionPatient projected on the slice normal (row cosine x column
//! cosine), never by InstanceNumber. The geometry is the one ITK/SimpleITK's series reader gives:
//! image axes x = row cosine, y = column cosine, z = the normal (so z points towards increasing
//! sorted position), origin = ImagePositionPatient of the first sorted slice, x/y spacing from
//! PixelSpacing (stored as row spacing, column spacing = y, x), and z spacing from the positions
//! (first to last, divided by the number of gaps), not from SliceThickness.
//!
//! Voxels are `RescaleSlope * stored + RescaleIntercept` (per slice, or per frame from the
//! PixelValueTransformationSequence), applied once, rounded and clamped to `i16` HU.
//!
//! What is handled, with a warning in [`crate::Provenance::warnings`]:
//! - missing slices / irregular spacing: resampled by linear interpolation along z onto a regular
//!   grid at the usual (median) spacing; gaps over 3 slices are refused;
//! - gantry tilt (positions not along the normal): every slice is shifted in-plane (bilinear) onto
//!   a grid perpendicular to the slices, so world coordinates stay exact; voxels shifted in from
//!   outside the field of view are -1024 HU;
//! - the same image twice (same SOPInstanceUID and position): the copy is ignored.
//!
//! What is refused, with an error naming the series or file: two different images at one
//! position, slices of another size or orientation among the stack's slices, inconsistent
//! PixelSpacing, missing position/orientation/spacing, colour images, transfer syntaxes without a
//! decoder (12-bit JPEG extended `.51` among them), and anything larger than
//! [`crate::Limits`] (checked before the volume is allocated).
//!
//! Compressed transfer syntaxes (JPEG baseline and lossless, JPEG-LS, JPEG 2000, RLE, deflate)
//! are decoded by `dicom-pixeldata`; slices are decoded in parallel with rayon.
//!
//! # Writing
//! [`write_series`] writes one explicit-VR-little-endian CT Image Storage file per z slice,
//! `IM000001.dcm`, `IM000002.dcm`, ... with the volume's geometry, RescaleSlope 1 and
//! RescaleIntercept -1024.
//!
//! ```
//! use speck_volume::dicom::{read_series, write_series, DicomWriteOptions};
//! use speck_volume::{Direction, Geometry, LoadOptions, Provenance, Spacing, Volume, WorldPoint};
//! let geometry = Geometry::new(
//!     Spacing::new(0.7, 0.7, 2.5)?,
//!     WorldPoint::new(-180.0, -180.0, -300.0),
//!     Direction::IDENTITY,
//! );
//! let voxels = ndarray::Array3::from_shape_fn((3, 4, 5), |(z, y, x)| (z * 100 + y * 10 + x) as i16 - 1000);
//! let volume = Volume::new(voxels, geometry, Provenance::default())?;
//! let dir = std::env::temp_dir().join(format!("speck-doc-{}", std::process::id()));
//! write_series(&volume, &dir, &DicomWriteOptions::default())?;
//! let back = read_series(&dir, &LoadOptions::default())?;
//! assert_eq!(back.voxels(), volume.voxels());
//! assert_eq!(back.provenance().slices[2].instance_number, Some(3));
//! # std::fs::remove_dir_all(&dir).ok();
//! # Ok::<(), speck_volume::VolumeError>(())
//! ```

use std::path::Path;

use crate::{Limits, LoadOptions, Volume, VolumeError};

mod catalog;
mod decode;
mod guard;
mod header;
mod plan;
mod read;
mod uid;
mod write;

pub use write::ds as decimal_string;

/// True when `path` looks like a DICOM file Speck reads: Part 10 with or without the 128-byte
/// preamble before `DICM`, or a bare data set (no preamble, no file meta group) in implicit or
/// explicit VR little endian starting with a group 0008 element.
pub(crate) fn sniff(path: &Path) -> bool {
    header::sniff(path).is_some()
}

/// What [`read_series`] would load from `path` (with default options), from headers only.
pub(crate) fn probe_series(path: &Path) -> Result<crate::Probe, VolumeError> {
    read::probe_series(path)
}

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
    /// StudyInstanceUID.
    #[serde(default)]
    pub study_uid: Option<String>,
    /// PatientID.
    #[serde(default)]
    pub patient_id: Option<String>,
    /// FrameOfReferenceUID: the reconstructions of one acquisition (a lung and a soft-tissue
    /// kernel, thin and thick slices) share it.
    #[serde(default)]
    pub frame_of_reference_uid: Option<String>,
    /// SOPClassUID, e.g. `1.2.840.10008.5.1.4.1.1.2` (CT Image Storage).
    #[serde(default)]
    pub sop_class_uid: Option<String>,
    /// ImageType (0008,0008) values in upper case, e.g. `["ORIGINAL", "PRIMARY", "AXIAL"]`; a
    /// scout has `LOCALIZER` among them.
    #[serde(default)]
    pub image_type: Vec<String>,
    /// ConvolutionKernel (0018,1210), several values joined by `\`, e.g. `B70f` or `LUNG`.
    #[serde(default)]
    pub convolution_kernel: Option<String>,
    /// SliceThickness of the first image, mm.
    #[serde(default)]
    pub slice_thickness_mm: Option<f64>,
    /// Median distance between neighbouring slice positions along the slice normal, mm (`None`
    /// for a single image or without position and orientation).
    #[serde(default)]
    pub slice_spacing_mm: Option<f64>,
    /// Orientation of the slices.
    #[serde(default)]
    pub orientation: Orientation,
}

/// Which way the slices of a stack face: the patient axis closest to their normal (within 45
/// degrees), from ImageOrientationPatient.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Orientation {
    /// Normal along the patient's z (head-feet) axis.
    Axial,
    /// Normal along y (anterior-posterior).
    Coronal,
    /// Normal along x (left-right).
    Sagittal,
    /// None of the three within 45 degrees.
    Oblique,
    /// No ImageOrientationPatient.
    #[default]
    Unknown,
}

impl Orientation {
    /// The lowercase name (`axial`, `coronal`, `sagittal`, `oblique`, `unknown`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Axial => "axial",
            Self::Coronal => "coronal",
            Self::Sagittal => "sagittal",
            Self::Oblique => "oblique",
            Self::Unknown => "unknown",
        }
    }
}

/// A DICOM file that holds no image (no Rows/Columns): a DICOMDIR, a structured report (dose
/// report), a presentation state, a key object selection, an RT structure set, ...
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DicomObjectInfo {
    /// The file.
    pub path: std::path::PathBuf,
    /// SOPClassUID (from the data set, else the file meta group's MediaStorageSOPClassUID).
    pub sop_class_uid: Option<String>,
    /// Modality, e.g. `SR`, `PR`, `KO`, `RTSTRUCT`.
    pub modality: Option<String>,
    /// SeriesInstanceUID.
    pub series_uid: Option<String>,
    /// StudyInstanceUID.
    pub study_uid: Option<String>,
    /// PatientID.
    pub patient_id: Option<String>,
    /// SeriesDescription.
    pub description: Option<String>,
}

/// A file that looks like DICOM (see [`read_series`]) but whose header cannot be read.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct UnreadableFile {
    /// The file.
    pub path: std::path::PathBuf,
    /// The reader's error.
    pub reason: String,
}

/// Every file of a list sorted by what the DICOM reader makes of it (see [`survey_files`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Survey {
    /// The image stacks, as [`scan_series`] lists them (largest first).
    pub series: Vec<SeriesInfo>,
    /// DICOM files that hold no image.
    pub objects: Vec<DicomObjectInfo>,
    /// Files that look like DICOM but whose header cannot be read (truncated, corrupt).
    pub unreadable: Vec<UnreadableFile>,
    /// Files that are not DICOM at all (no `DICM` magic, not a bare data set), in input order.
    pub not_dicom: Vec<std::path::PathBuf>,
}

/// Sort every file of `files` by what it is to the DICOM reader: image stacks (one per
/// SeriesInstanceUID, orientation and image size, as [`scan_series`] gives them, largest first),
/// DICOM objects without an image, unreadable DICOM files, and files that are not DICOM.
///
/// Only headers are read (not pixel data), in parallel. Nothing fails as a whole: each file's
/// problem is recorded in the result. Folders in `files` are reported as unreadable.
pub fn survey_files(files: &[std::path::PathBuf]) -> Survey {
    let (_, mut survey) = catalog::Catalog::survey(files);
    survey.series.sort_by(|a, b| {
        b.n_images
            .cmp(&a.n_images)
            .then(a.series_uid.cmp(&b.series_uid))
    });
    survey
}

/// List the image stacks under `path` (a folder searched recursively, or one file): one entry per
/// SeriesInstanceUID and, within a series, per orientation and image size; largest first.
///
/// Only headers are read (not pixel data), in parallel. Files that have the DICOM magic but cannot
/// be parsed are skipped here (logged with `tracing`); [`read_series`] on their folder reports them.
///
/// # Errors
/// [`VolumeError::NotFound`] when nothing under `path` is a DICOM image; [`VolumeError::Io`] when
/// the folder cannot be listed.
pub fn scan_series(path: &Path) -> Result<Vec<SeriesInfo>, VolumeError> {
    let catalog = catalog::Catalog::build(&catalog::list_files(path, true)?, true)?;
    if catalog.stacks.is_empty() {
        return Err(VolumeError::NotFound {
            path: path.to_path_buf(),
            reason: "no DICOM image found".into(),
        });
    }
    let mut infos: Vec<SeriesInfo> = catalog.stacks.iter().map(|s| catalog.info(s)).collect();
    infos.sort_by(|a, b| {
        b.n_images
            .cmp(&a.n_images)
            .then(a.series_uid.cmp(&b.series_uid))
    });
    Ok(infos)
}

/// Check one file as the series reader would, reading its header only (not its pixels, nor its
/// siblings): `Ok(())` for a DICOM image file.
///
/// # Errors
/// [`VolumeError::Malformed`] naming the file when it is not DICOM (no `DICM` at byte 128 or 0,
/// not a bare data set) or its header is corrupt; [`VolumeError::NotFound`] for a DICOM file that
/// holds no image (a DICOMDIR, a structured report, ...); [`VolumeError::Io`].
pub fn check_file(path: &Path) -> Result<(), VolumeError> {
    if !sniff(path) {
        return Err(VolumeError::malformed(path, read::NOT_DICOM));
    }
    match header::read_header(path)? {
        Some(_) => Ok(()),
        None => Err(VolumeError::NotFound {
            path: path.to_path_buf(),
            reason: "a DICOM file that holds no image (no Rows/Columns)".into(),
        }),
    }
}

/// Read one series under `path` into a volume: `options.series_uid`, or the largest axial CT stack
/// (see the [module docs](self) for sorting, geometry and what is handled or refused).
///
/// `path` may be a folder (searched recursively), an enhanced multi-frame file, or one slice of a
/// series (its folder's files are then read, not recursively, and the stack holding that slice is
/// loaded; unreadable siblings are skipped there, while in a folder they are an error).
///
/// # Errors
/// [`VolumeError::NotFound`] (no image, or no series `options.series_uid`),
/// [`VolumeError::Malformed`] / [`VolumeError::Unsupported`] naming the file,
/// [`VolumeError::Series`] when the slices cannot form one regular volume,
/// [`VolumeError::TooLarge`] before allocating beyond `options.limits`, [`VolumeError::Io`].
pub fn read_series(path: &Path, options: &LoadOptions) -> Result<Volume, VolumeError> {
    read::read_series(path, options)
}

/// Read one series from `files`, the files discovery found for it (for example the
/// [`SeriesInfo::files`] of [`survey_files`]), instead of listing a folder and reading every
/// header in it again: in a flat export of many series, loading each series by its folder would
/// read the whole folder's headers once per series.
///
/// The stack is chosen and checked as [`read_series`] does among these files
/// (`options.series_uid`, else the largest axial CT stack); a file that looks like DICOM but cannot
/// be read is an error, as in a folder. `path` (the series' folder) names the input in messages
/// and in the volume's provenance.
///
/// # Errors
/// As [`read_series`]; [`VolumeError::NotFound`] when none of `files` is a DICOM image.
pub fn read_series_files(
    path: &Path,
    files: &[std::path::PathBuf],
    options: &LoadOptions,
) -> Result<Volume, VolumeError> {
    read::read_series_files(path, files, options)
}

/// The modality values (`RescaleSlope * stored + RescaleIntercept`, per frame) of every frame of
/// one DICOM image file, indexed `[frame, row, column]`, without geometry and without rounding.
///
/// This is the decoding step of [`read_series`] on its own: for checking decoders against other
/// readers, and for images that are not part of a 3-D stack (no position, classic multi-frame).
///
/// # Errors
/// [`VolumeError::Malformed`] (not DICOM, not an image, truncated or undecodable pixel data),
/// [`VolumeError::Unsupported`] (colour, or a transfer syntax without a decoder, named),
/// [`VolumeError::TooLarge`] (checked against `limits` before decoding), [`VolumeError::Io`].
pub fn read_pixels(path: &Path, limits: &Limits) -> Result<ndarray::Array3<f64>, VolumeError> {
    read::read_pixels(path, limits)
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

/// Write `volume` as a DICOM CT series, one file per z slice, into folder `dir` (created):
/// `IM000001.dcm` (z = 0), `IM000002.dcm`, ...
///
/// Explicit VR little endian, SOP Class CT Image Storage; ImagePositionPatient of slice `k` is the
/// world position of voxel `[k, 0, 0]`, ImageOrientationPatient the x and y axis directions,
/// PixelSpacing `(y, x)` mm, SliceThickness the z spacing; stored values are HU + 1024 with
/// RescaleSlope 1 and RescaleIntercept -1024 (unsigned when every HU >= -1024, signed otherwise;
/// intercept 0 for volumes whose range does not fit). UIDs not given are fresh `2.25.` UIDs.
/// A volume whose z axis is not along x cross y (left-handed or sheared) is written faithfully, but
/// a reader sorting along the normal will index its slices in the opposite order.
///
/// # Errors
/// [`VolumeError::Io`] when the folder or a file cannot be written; [`VolumeError::Unsupported`]
/// when a dimension does not fit DICOM (more than 65535 rows or columns, or 999999 slices).
pub fn write_series(
    volume: &Volume,
    dir: &Path,
    options: &DicomWriteOptions,
) -> Result<(), VolumeError> {
    write::write_series(volume, dir, options)
}
