//! `open(path)`: pick the reader from what the path is.
//!
//! A directory is a DICOM folder; `.nii`/`.nii.gz` is NIfTI; `.mhd`/`.mha` is MetaImage; any
//! other file is read as DICOM when it has the `DICM` marker at byte 128 (Part 10), at byte 0
//! (Part 10 without the preamble), or starts as a bare data set (implicit or explicit VR little
//! endian, as pydicom reads with `force=True`).

use std::path::Path;

use crate::{Limits, Volume, VolumeError};

/// Options for [`open_with`], built by chaining setters on the defaults:
///
/// ```
/// use speck_volume::{Limits, LoadOptions};
/// let options = LoadOptions::new()
///     .series_uid("1.2.840.113619.2.55.3".to_string())
///     .limits(Limits { max_voxels: 1 << 28, ..Limits::default() });
/// assert_eq!(options.series_uid.as_deref(), Some("1.2.840.113619.2.55.3"));
/// ```
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct LoadOptions {
    /// Bounds on allocations, checked against each header before anything is allocated.
    pub limits: Limits,
    /// For DICOM folders: load this SeriesInstanceUID instead of the largest axial CT stack.
    /// Ignored for NIfTI and MetaImage files, which hold one image.
    pub series_uid: Option<String>,
}

impl LoadOptions {
    /// The defaults: [`Limits::default`], and for DICOM folders the largest axial CT stack.
    pub fn new() -> Self {
        Self::default()
    }

    /// Bound allocations by `limits` (checked against each header before anything is
    /// allocated).
    #[must_use]
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// For DICOM folders: load this SeriesInstanceUID (`None`: the largest axial CT stack).
    /// Ignored for NIfTI and MetaImage files, which hold one image.
    #[must_use]
    pub fn series_uid(mut self, series_uid: impl Into<Option<String>>) -> Self {
        self.series_uid = series_uid.into();
        self
    }
}

/// The kind of file or folder [`open_with`] recognised.
///
/// Its text form (`Display`, `FromStr`, serde) is the lower-case name written in Speck's outputs:
/// `dicom`, `nifti` or `metaimage`.
///
/// ```
/// use speck_volume::Format;
/// assert_eq!(Format::MetaImage.to_string(), "metaimage");
/// assert_eq!("nifti".parse::<Format>().ok(), Some(Format::Nifti));
/// assert_eq!(Format::from_file_name("scan.NII.GZ".as_ref()), Some(Format::Nifti));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// A folder of DICOM files, or one DICOM file.
    Dicom,
    /// `.nii` or `.nii.gz`.
    Nifti,
    /// `.mhd` (+ data file) or `.mha`.
    MetaImage,
}

impl Format {
    /// The lower-case name: `dicom`, `nifti` or `metaimage`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Dicom => "dicom",
            Self::Nifti => "nifti",
            Self::MetaImage => "metaimage",
        }
    }

    /// The format a file name says it has: NIfTI for `.nii`/`.nii.gz`, MetaImage for
    /// `.mhd`/`.mha` (in any case); `None` for any other name (DICOM files are recognised by their
    /// content, not their name). Only the name is looked at.
    pub fn from_file_name(path: &Path) -> Option<Self> {
        let name = lower_name(path)?;
        if name.ends_with(".nii") || name.ends_with(".nii.gz") {
            Some(Self::Nifti)
        } else if name.ends_with(".mhd") || name.ends_with(".mha") {
            Some(Self::MetaImage)
        } else {
            None
        }
    }
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.name())
    }
}

/// The text given to [`Format`]'s `FromStr` is none of its names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown format {0:?}: expected dicom, nifti or metaimage")]
pub struct ParseFormatError(String);

impl std::str::FromStr for Format {
    type Err = ParseFormatError;

    /// `dicom`, `nifti` or `metaimage`, in any case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [Self::Dicom, Self::Nifti, Self::MetaImage]
            .into_iter()
            .find(|f| s.eq_ignore_ascii_case(f.name()))
            .ok_or_else(|| ParseFormatError(s.to_string()))
    }
}

/// The file name in lower case, if it is valid UTF-8.
fn lower_name(path: &Path) -> Option<String> {
    path.file_name()
        .and_then(|n| n.to_str())
        .map(str::to_ascii_lowercase)
}

/// The series UID Speck records for a NIfTI or MetaImage file: its file name without
/// `.nii.gz`, `.nii`, `.mhd` or `.mha` (LUNA16 names its files `<seriesuid>.mhd`), in any case.
///
/// A name that is nothing but one of those extensions (`.nii`), and any other name (a folder, a
/// `.txt`), is returned whole, so the result is empty only for a path without a file name.
///
/// ```
/// use speck_volume::stem_uid;
/// assert_eq!(stem_uid("/data/1.3.6.1.4.mhd".as_ref()), "1.3.6.1.4");
/// assert_eq!(stem_uid("case.NII.GZ".as_ref()), "case");
/// assert_eq!(stem_uid(".nii".as_ref()), ".nii");
/// ```
pub fn stem_uid(path: &Path) -> String {
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
    if let Some(format) = Format::from_file_name(path) {
        return Ok(format);
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
        assert_eq!(stem_uid(Path::new(".nii")), ".nii");
        assert_eq!(stem_uid(Path::new("/a/folder")), "folder");
    }

    #[test]
    fn format_names_round_trip() {
        for f in [Format::Dicom, Format::Nifti, Format::MetaImage] {
            assert_eq!(f.to_string().parse::<Format>(), Ok(f));
            assert_eq!(f.to_string().to_uppercase().parse::<Format>(), Ok(f));
            let json = serde_json::to_string(&f).expect("json");
            assert_eq!(json, format!("\"{f}\""));
        }
        assert!("mhd".parse::<Format>().is_err());
        assert_eq!(
            Format::from_file_name(Path::new("a/1.2.mha")),
            Some(Format::MetaImage)
        );
        assert_eq!(Format::from_file_name(Path::new("x.dcm")), None);
        assert_eq!(Format::from_file_name(Path::new("x.raw")), None);
    }
}
