//! Writing phantoms: the scan (NIfTI, MetaImage or DICOM) and LUNA16-style annotation files.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use speck_volume::luna16::{AnnotationRow, ExcludedRow};
use speck_volume::{Provenance, Volume};

use crate::truth::{GroundTruth, Nodule};
use crate::{Phantom, PhantomError};

/// Header of `annotations.csv` (LUNA16 columns, then the phantom's extra columns): the columns
/// of [`AnnotationRow`].
pub const ANNOTATIONS_HEADER: &str =
    "seriesuid,coordX,coordY,coordZ,diameter_mm,diameter_vox,density,attachment";

/// Header of `annotations_excluded.csv`: the columns of [`ExcludedRow`].
pub const EXCLUDED_HEADER: &str = "seriesuid,coordX,coordY,coordZ,diameter_mm";

/// File format of the written scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum OutputFormat {
    /// `DIR/<seriesuid>.nii.gz`.
    #[default]
    Nifti,
    /// `DIR/<seriesuid>.mhd` + `.raw`.
    MetaImage,
    /// `DIR/<seriesuid>/` with one DICOM file per slice.
    Dicom,
}

impl FromStr for OutputFormat {
    type Err = PhantomError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "nifti" | "nii" | "nii.gz" => Ok(Self::Nifti),
            "mhd" | "metaimage" => Ok(Self::MetaImage),
            "dicom" | "dcm" => Ok(Self::Dicom),
            _ => Err(PhantomError::Parse {
                what: "output format",
                input: s.to_owned(),
                reason: "expected nifti, mhd or dicom".into(),
            }),
        }
    }
}

impl OutputFormat {
    /// Where the scan of series `uid` goes inside `dir`.
    pub fn scan_path(self, dir: &Path, uid: &str) -> PathBuf {
        match self {
            Self::Nifti => dir.join(format!("{uid}.nii.gz")),
            Self::MetaImage => dir.join(format!("{uid}.mhd")),
            Self::Dicom => dir.join(uid),
        }
    }
}

fn volume_err(path: &Path) -> impl FnOnce(speck_volume::VolumeError) -> PhantomError + '_ {
    move |source| PhantomError::Volume {
        context: format!("writing {}", path.display()),
        source,
    }
}

/// Write the scan into `dir` (created) under its SeriesInstanceUID; returns the path written.
///
/// # Errors
/// [`PhantomError::Io`] when `dir` cannot be created, [`PhantomError::Volume`] when the writer
/// fails.
pub fn write_scan(
    phantom: &Phantom,
    dir: &Path,
    format: OutputFormat,
) -> Result<PathBuf, PhantomError> {
    std::fs::create_dir_all(dir).map_err(|source| PhantomError::Io {
        path: dir.to_owned(),
        source,
    })?;
    let uid = &phantom.truth.series_uid;
    let path = format.scan_path(dir, uid);
    match format {
        OutputFormat::Nifti => speck_volume::nifti::write_nifti(&phantom.volume, &path),
        OutputFormat::MetaImage => speck_volume::metaimage::write_metaimage(&phantom.volume, &path),
        OutputFormat::Dicom => {
            // Keeps working when the writer gains options (they take their defaults).
            #[allow(clippy::needless_update)]
            let o = speck_volume::dicom::DicomWriteOptions {
                series_uid: Some(uid.clone()),
                study_uid: Some(phantom.truth.study_uid.clone()),
                patient_id: Some(phantom.truth.patient_id.clone()),
                ..Default::default()
            };
            speck_volume::dicom::write_series(&phantom.volume, &path, &o)
        }
    }
    .map_err(volume_err(&path))?;
    Ok(path)
}

/// Write the lung mask (`0` outside, `1` right, `2` left) as `DIR/<seriesuid>_lungmask.nii.gz`.
///
/// # Errors
/// [`PhantomError::InvalidOptions`] when the phantom was generated without a mask;
/// [`PhantomError::Volume`] when writing fails.
pub fn write_lung_mask(phantom: &Phantom, dir: &Path) -> Result<PathBuf, PhantomError> {
    let mask = phantom.truth.lung_mask.as_ref().ok_or_else(|| {
        PhantomError::InvalidOptions("the lung mask was not generated (set lung_mask)".into())
    })?;
    let path = dir.join(format!("{}_lungmask.nii.gz", phantom.truth.series_uid));
    let labels = mask.mapv(i16::from);
    let provenance = Provenance {
        series_uid: Some(format!("{}_lungmask", phantom.truth.series_uid)),
        ..Provenance::default()
    };
    let vol =
        Volume::new(labels, *phantom.volume.geometry(), provenance).map_err(volume_err(&path))?;
    speck_volume::nifti::write_nifti(&vol, &path).map_err(volume_err(&path))?;
    Ok(path)
}

/// The text of `annotations.csv` for these scans: one row per reference nodule, LPS mm, written
/// through [`AnnotationRow`] (four decimals).
///
/// # Errors
/// [`PhantomError::Csv`] if a row cannot be serialised (not expected: every field is plain text
/// or a number).
pub fn annotations_csv<'a>(
    truths: impl IntoIterator<Item = &'a GroundTruth>,
) -> Result<String, PhantomError> {
    let rows = truths
        .into_iter()
        .flat_map(|t| t.reference_nodules().map(|n| annotation_row(t, n)));
    rows_csv(ANNOTATIONS_HEADER, rows)
}

/// The text of `annotations_excluded.csv`: nodules below the reference size, LPS mm, written
/// through [`ExcludedRow`] (four decimals).
///
/// # Errors
/// As [`annotations_csv`].
pub fn excluded_csv<'a>(
    truths: impl IntoIterator<Item = &'a GroundTruth>,
) -> Result<String, PhantomError> {
    let rows = truths.into_iter().flat_map(|t| {
        t.excluded_nodules()
            .map(|n| ExcludedRow::from(annotation_row(t, n)))
    });
    rows_csv(EXCLUDED_HEADER, rows)
}

/// Nodule `n` of scan `t` as an annotation row.
fn annotation_row(t: &GroundTruth, n: &Nodule) -> AnnotationRow {
    AnnotationRow {
        seriesuid: t.series_uid.clone(),
        coord_x: n.centre.x_mm,
        coord_y: n.centre.y_mm,
        coord_z: n.centre.z_mm,
        diameter_mm: n.diameter_mm,
        diameter_vox: Some(n.diameter_vox),
        density: Some(n.density.to_string()),
        attachment: Some(n.attachment.to_string()),
    }
}

/// `header` (always, even without rows), then one line per row, `\n`-terminated.
fn rows_csv<R: Serialize>(
    header: &str,
    rows: impl Iterator<Item = R>,
) -> Result<String, PhantomError> {
    let csv_err = |source: csv::Error| PhantomError::Csv { source };
    let mut w = csv::WriterBuilder::new()
        .has_headers(false)
        .from_writer(Vec::new());
    w.write_record(header.split(',')).map_err(csv_err)?;
    for row in rows {
        w.serialize(row).map_err(csv_err)?;
    }
    let bytes = w
        .into_inner()
        .map_err(|e| csv_err(csv::Error::from(e.into_error())))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// Write `DIR/annotations.csv` and `DIR/annotations_excluded.csv` for these scans (overwriting).
///
/// # Errors
/// [`PhantomError::Io`] naming the file that could not be written; [`PhantomError::Csv`] as
/// [`annotations_csv`].
pub fn write_annotations<'a>(
    dir: &Path,
    truths: impl IntoIterator<Item = &'a GroundTruth> + Clone,
) -> Result<(), PhantomError> {
    std::fs::create_dir_all(dir).map_err(|source| PhantomError::Io {
        path: dir.to_owned(),
        source,
    })?;
    for (name, text) in [
        ("annotations.csv", annotations_csv(truths.clone())?),
        ("annotations_excluded.csv", excluded_csv(truths)?),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(|source| PhantomError::Io { path, source })?;
    }
    Ok(())
}
