//! What `speck scan` writes, and how it reads it back (for `--resume` and `speck merge`).
//!
//! Every number is written with a fixed number of decimals and every table is sorted, so the same
//! detections give byte-identical files whatever the thread count or the order scans finished in.

use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use speck_candidates::LungRadsSize;

use crate::{atomic, names, BatchError};

/// Columns of the per-scan and combined candidate files. The first five are LUNA16's.
pub const CANDIDATE_COLUMNS: [&str; 20] = [
    "seriesuid",
    "coordX",
    "coordY",
    "coordZ",
    "probability",
    "scan_id",
    "rank",
    "index_z",
    "index_y",
    "index_x",
    "diameter_mm",
    "side",
    "in_lung",
    "instance_number",
    "above_operating_point",
    "measured_volume_mm3",
    "measured_diameter_mm",
    "longest_axial_mm",
    "lung_rads_size",
    "measure_reliability",
];

/// Columns of `summary.csv` (files written before `patient_id` and `study_uid` existed have the
/// first seven).
pub const SUMMARY_COLUMNS: [&str; 9] = [
    "scan_id",
    "seriesuid",
    "status",
    "n_candidates",
    "seconds",
    "format",
    "source",
    "patient_id",
    "study_uid",
];

/// Columns of `errors.csv`.
pub const ERROR_COLUMNS: [&str; 5] = ["input", "series", "reason", "scan_id", "stage"];

/// Columns of `skipped.csv`.
pub const SKIPPED_COLUMNS: [&str; 6] = [
    "input",
    "series",
    "kind",
    "reason",
    "patient_id",
    "study_uid",
];

/// Decimals of the world coordinates (`coordX`, `coordY`, `coordZ`), mm.
pub const COORD_DECIMALS: usize = 3;
/// Decimals of `probability`.
pub const PROBABILITY_DECIMALS: usize = 6;
/// Decimals of the diameters (`diameter_mm`, `measured_diameter_mm`, `longest_axial_mm`), mm.
pub const DIAMETER_DECIMALS: usize = 2;
/// Decimals of `measured_volume_mm3`.
pub const VOLUME_DECIMALS: usize = 1;
/// Decimals of `summary.csv`'s `seconds`.
pub const SECONDS_DECIMALS: usize = 2;

/// One candidate as written: LUNA16 world coordinates (LPS mm) and probability, then extras.
///
/// Numbers hold the value as written (rounded to their column's decimals, see
/// [`as_written`]), so a row read back equals the row written, and the CSV shows each
/// with a fixed number of decimals ([`fixed`]); `None` is an empty cell.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CandidateRow {
    /// SeriesInstanceUID (DICOM) or file stem (NIfTI/MetaImage).
    pub seriesuid: String,
    /// LPS x, mm, to [`COORD_DECIMALS`] (NaN, an empty cell, when not finite).
    #[serde(rename = "coordX", with = "Dec::<COORD_DECIMALS>")]
    pub coord_x: f64,
    /// LPS y, mm.
    #[serde(rename = "coordY", with = "Dec::<COORD_DECIMALS>")]
    pub coord_y: f64,
    /// LPS z, mm.
    #[serde(rename = "coordZ", with = "Dec::<COORD_DECIMALS>")]
    pub coord_z: f64,
    /// Probability in `[0, 1]`, to [`PROBABILITY_DECIMALS`].
    #[serde(with = "Dec::<PROBABILITY_DECIMALS>")]
    pub probability: f64,
    /// The scan's output folder name under `scans/`.
    pub scan_id: String,
    /// 1-based rank within the scan (1 = most probable); thumbnails are named by it.
    pub rank: u32,
    /// Nearest voxel, slice index (0-based); `None` outside the volume.
    pub index_z: Option<usize>,
    /// Nearest voxel, row index (0-based).
    pub index_y: Option<usize>,
    /// Nearest voxel, column index (0-based).
    pub index_x: Option<usize>,
    /// Estimated diameter in mm, to [`DIAMETER_DECIMALS`]; `None` when the model does not
    /// estimate one.
    #[serde(with = "OptDec::<DIAMETER_DECIMALS>")]
    pub diameter_mm: Option<f64>,
    /// The patient's side, relative to the body midline; `None` when unknown.
    pub side: Option<Side>,
    /// Whether the centre lies in the lung mask; `None` when no mask was made.
    pub in_lung: Option<bool>,
    /// DICOM InstanceNumber of the nearest slice; `None` for NIfTI/MetaImage.
    pub instance_number: Option<i32>,
    /// Whether the probability reaches the model's own operating point (`speck.threshold`);
    /// always `true` unless `--threshold` kept candidates below it, so a file written before
    /// the column existed (no `--threshold` then) reads as `true`.
    #[serde(default = "above_by_default")]
    pub above_operating_point: bool,
    /// Volume of the lesion segmented around the candidate (`speck_candidates::measure`), mm³,
    /// to [`VOLUME_DECIMALS`]; `None` when it could not be measured (and in files written
    /// before the column existed).
    #[serde(default, with = "OptDec::<VOLUME_DECIMALS>")]
    pub measured_volume_mm3: Option<f64>,
    /// Diameter of the sphere of that volume, mm.
    #[serde(default, with = "OptDec::<DIAMETER_DECIMALS>")]
    pub measured_diameter_mm: Option<f64>,
    /// Longest diameter within one axial slice, mm.
    #[serde(default, with = "OptDec::<DIAMETER_DECIMALS>")]
    pub longest_axial_mm: Option<f64>,
    /// Lung-RADS v2022 size class of a solid nodule from the mean axial diameter, written as
    /// `<6`, `6-8`, `8-15` or `>=15` ([`speck_candidates::LungRadsSize::as_str`]); `None` when
    /// nothing was segmented.
    #[serde(default, with = "LungRadsCell")]
    pub lung_rads_size: Option<LungRadsSize>,
    /// How far to trust the measured sizes; `None` when nothing was measured.
    #[serde(default)]
    pub measure_reliability: Option<speck_candidates::Reliability>,
}

fn above_by_default() -> bool {
    true
}

/// The patient's side of a finding, relative to the body midline: `left` or `right` in the CSV.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    /// The patient's left (LPS x at or beyond the midline).
    Left,
    /// The patient's right.
    Right,
}

impl Side {
    /// `left` or `right`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Left => "left",
            Self::Right => "right",
        }
    }
}

/// `v` rounded to `decimals` decimals as [`fixed`] writes it (NaN when it writes nothing), so a
/// row holds what its file shows.
pub fn as_written(v: f64, decimals: usize) -> f64 {
    fixed(v, decimals).parse().unwrap_or(f64::NAN)
}

/// An optional value as its cell shows it: empty for `None`.
pub fn cell<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

/// Serde of an `f64` cell with `D` decimals ([`fixed`]): a value that is not finite is an empty
/// cell, and an empty cell reads as NaN. Use as `#[serde(with = "Dec::<3>")]`.
#[derive(Debug)]
pub struct Dec<const D: usize>;

impl<const D: usize> Dec<D> {
    /// Write `v` with `D` decimals.
    ///
    /// # Errors
    /// The serialiser's.
    pub fn serialize<S: serde::Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&fixed(*v, D))
    }

    /// Read a decimal number (NaN for an empty cell).
    ///
    /// # Errors
    /// A cell that is not a number.
    pub fn deserialize<'de, De: serde::Deserializer<'de>>(d: De) -> Result<f64, De::Error> {
        let text = String::deserialize(d)?;
        if text.is_empty() {
            return Ok(f64::NAN);
        }
        text.trim().parse().map_err(serde::de::Error::custom)
    }
}

/// Serde of an `Option<f64>` cell with `D` decimals: `None` (or a value that is not finite) is an
/// empty cell. Use as `#[serde(with = "OptDec::<2>")]`.
#[derive(Debug)]
pub struct OptDec<const D: usize>;

impl<const D: usize> OptDec<D> {
    /// Write `v` with `D` decimals, `None` as an empty cell.
    ///
    /// # Errors
    /// The serialiser's.
    pub fn serialize<S: serde::Serializer>(v: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&v.map(|v| fixed(v, D)).unwrap_or_default())
    }

    /// Read a decimal number, `None` for an empty cell.
    ///
    /// # Errors
    /// A cell that is not a number.
    pub fn deserialize<'de, De: serde::Deserializer<'de>>(d: De) -> Result<Option<f64>, De::Error> {
        let text = String::deserialize(d)?;
        if text.is_empty() {
            return Ok(None);
        }
        text.trim()
            .parse()
            .map(Some)
            .map_err(serde::de::Error::custom)
    }
}

/// Serde of a Lung-RADS size class cell by its label ([`LungRadsSize::as_str`]: `<6`, `6-8`,
/// `8-15`, `>=15`), `None` as an empty cell. Use as `#[serde(with = "LungRadsCell")]`.
#[derive(Debug)]
pub struct LungRadsCell;

impl LungRadsCell {
    /// Every class, smallest first.
    pub(crate) const CLASSES: [LungRadsSize; 4] = [
        LungRadsSize::Below6,
        LungRadsSize::From6To8,
        LungRadsSize::From8To15,
        LungRadsSize::AtLeast15,
    ];

    /// Write the label, `None` as an empty cell.
    ///
    /// # Errors
    /// The serialiser's.
    pub fn serialize<S: serde::Serializer>(
        v: &Option<LungRadsSize>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_str(v.map_or("", LungRadsSize::as_str))
    }

    /// Read a label, `None` for an empty cell.
    ///
    /// # Errors
    /// A cell that is not one of the labels.
    pub fn deserialize<'de, De: serde::Deserializer<'de>>(
        d: De,
    ) -> Result<Option<LungRadsSize>, De::Error> {
        let text = String::deserialize(d)?;
        if text.is_empty() {
            return Ok(None);
        }
        Self::CLASSES
            .into_iter()
            .find(|c| c.as_str() == text)
            .map(Some)
            .ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "{text:?} is not a Lung-RADS size class (<6, 6-8, 8-15 or >=15)"
                ))
            })
    }
}

/// Format `v` with `decimals` decimals, never as `-0.000` (so tiny sign differences of zero
/// cannot make two runs differ).
pub fn fixed(v: f64, decimals: usize) -> String {
    if !v.is_finite() {
        return String::new();
    }
    let s = format!("{v:.decimals$}");
    if s.starts_with('-') && s[1..].chars().all(|c| c == '0' || c == '.') {
        s[1..].to_string()
    } else {
        s
    }
}

/// Whether a scan succeeded: the `status` column of `summary.csv`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// The scan's outputs are complete.
    Ok,
    /// The scan failed (its reason is in `errors.csv`).
    Failed,
}

impl Status {
    /// `ok` or `failed`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Failed => "failed",
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a scan failed: the `stage` column of `errors.csv`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    /// Discovery could not make a scan of the item.
    Discover,
    /// Not a CT image series (an `errors.csv` row only under `--strict-skips`).
    Skipped,
    /// Too big for the memory budget.
    Memory,
    /// The run was interrupted before the scan finished or started.
    Interrupted,
    /// The input could not be read.
    Load,
    /// Detection failed.
    Detect,
    /// The outputs could not be written.
    Write,
}

impl Stage {
    /// The name in `errors.csv`: `discover`, `skipped`, `memory`, `interrupted`, `load`,
    /// `detect` or `write`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Discover => "discover",
            Self::Skipped => "skipped",
            Self::Memory => "memory",
            Self::Interrupted => "interrupted",
            Self::Load => "load",
            Self::Detect => "detect",
            Self::Write => "write",
        }
    }
}

impl std::fmt::Display for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One line of `summary.csv`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SummaryRow {
    /// Output folder name.
    pub scan_id: String,
    /// Identifier as in the candidate files.
    pub seriesuid: String,
    /// Whether the scan succeeded.
    pub status: Status,
    /// Number of candidates (0 when failed).
    pub n_candidates: usize,
    /// Wall-clock seconds spent on the scan (load + detect + write), to [`SECONDS_DECIMALS`].
    #[serde(with = "Dec::<SECONDS_DECIMALS>")]
    pub seconds: f64,
    /// `dicom`, `nifti`, `metaimage`, or empty when unknown.
    pub format: String,
    /// What was read.
    pub source: String,
    /// PatientID (DICOM), empty when unknown.
    #[serde(default)]
    pub patient_id: String,
    /// StudyInstanceUID (DICOM), empty when unknown.
    #[serde(default)]
    pub study_uid: String,
}

/// One line of `skipped.csv`: something found that is not a CT image series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SkippedRow {
    /// The file, or the folder holding the series' files.
    pub input: String,
    /// SeriesInstanceUID, when known.
    pub series: String,
    /// The reason's kind (see [`crate::discover::SkipReason::kind`]): `not-dicom`, `dicomdir`,
    /// `non-image`, `modality`, `localizer`, `secondary-capture`, `not-chosen`.
    pub kind: String,
    /// What it is, in words.
    pub reason: String,
    /// PatientID, when known.
    pub patient_id: String,
    /// StudyInstanceUID, when known.
    pub study_uid: String,
}

/// Columns of `studies.csv`.
pub const STUDY_COLUMNS: [&str; 6] = [
    "patient_id",
    "study_uid",
    "scanned",
    "failed",
    "skipped",
    "scan_ids",
];

/// One line of `studies.csv`: what became of one study's items (files without a study, such as
/// NIfTI and MetaImage, share the line whose `study_uid` is empty).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StudyRow {
    /// PatientID, empty when unknown.
    pub patient_id: String,
    /// StudyInstanceUID, empty for files without a study.
    pub study_uid: String,
    /// Scans that succeeded.
    pub scanned: usize,
    /// Scans that failed.
    pub failed: usize,
    /// Items skipped as not CT image series.
    pub skipped: usize,
    /// The scan ids of the study's scans (scanned or failed), space-separated, sorted.
    pub scan_ids: String,
}

/// The `studies.csv` lines of a run: its summary and skipped rows grouped by patient and study,
/// sorted.
pub fn studies(summary: &[SummaryRow], skipped: &[SkippedRow]) -> Vec<StudyRow> {
    let mut by: std::collections::BTreeMap<(String, String), StudyRow> =
        std::collections::BTreeMap::new();
    for s in summary {
        let r = by
            .entry((s.patient_id.clone(), s.study_uid.clone()))
            .or_insert_with(|| empty_study(&s.patient_id, &s.study_uid));
        if s.status == Status::Ok {
            r.scanned += 1;
        } else {
            r.failed += 1;
        }
        if !r.scan_ids.is_empty() {
            r.scan_ids.push(' ');
        }
        r.scan_ids.push_str(&s.scan_id);
    }
    for k in skipped {
        by.entry((k.patient_id.clone(), k.study_uid.clone()))
            .or_insert_with(|| empty_study(&k.patient_id, &k.study_uid))
            .skipped += 1;
    }
    by.into_values()
        .map(|mut r| {
            let mut ids: Vec<&str> = r.scan_ids.split(' ').filter(|i| !i.is_empty()).collect();
            ids.sort_unstable();
            r.scan_ids = ids.join(" ");
            r
        })
        .collect()
}

fn empty_study(patient: &str, study: &str) -> StudyRow {
    StudyRow {
        patient_id: patient.to_string(),
        study_uid: study.to_string(),
        scanned: 0,
        failed: 0,
        skipped: 0,
        scan_ids: String::new(),
    }
}

/// One line of `errors.csv`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorRow {
    /// The file or folder that failed (or could not be read).
    pub input: String,
    /// SeriesInstanceUID, when known.
    pub series: String,
    /// What went wrong.
    pub reason: String,
    /// The scan id it would have had.
    pub scan_id: String,
    /// Where it failed.
    pub stage: Stage,
}

/// Timings, counts and facts about one scan: `scans/<id>/scan.json`, written last, so its presence
/// marks the scan's outputs complete.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScanRecord {
    /// Record format version.
    pub version: u32,
    /// Output folder name.
    pub scan_id: String,
    /// SeriesInstanceUID or file stem.
    pub seriesuid: String,
    /// The command-line or manifest input.
    pub input: String,
    /// What was read.
    pub source: String,
    /// Which input exactly (resolved path, sizes, times, content fingerprint): `--resume` redoes
    /// the scan when the input it finds under this id is not this one.
    pub input_identity: crate::identity::InputIdentity,
    /// Reader used.
    pub format: String,
    /// StudyInstanceUID, when DICOM.
    pub study_uid: Option<String>,
    /// PatientID, when the file has one.
    pub patient_id: Option<String>,
    /// For a DICOM series whose acquisition has several series (same study and
    /// FrameOfReferenceUID): the `--series-policy`, the other series and why this one is
    /// scanned. Absent otherwise, and in records written before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub series_choice: Option<crate::discover::SeriesChoice>,
    /// Shape `[z, y, x]`.
    pub shape_zyx: [usize; 3],
    /// Spacing `[z, y, x]`, mm, to 6 decimals (the order of `shape_zyx`, `--spacing` and the
    /// CSVs' `index_z,index_y,index_x`). Absent (zeros) in records written before it replaced
    /// `spacing_xyz_mm`, which `--resume` still accepts.
    #[serde(default)]
    pub spacing_zyx_mm: [f64; 3],
    /// Number of candidates written.
    pub n_candidates: usize,
    /// Device that actually ran the models.
    pub device: String,
    /// Seconds per stage (`load`, the detector's stages, `write`, `total`), to 4 decimals.
    pub timings_s: std::collections::BTreeMap<String, f64>,
    /// Counts reported by the detector (tiles, raw candidates, ...).
    pub counts: std::collections::BTreeMap<String, serde_json::Value>,
    /// Things a user should know (from the reader and the detector).
    pub warnings: Vec<String>,
    /// Estimated peak memory (bytes) used to schedule the scan.
    pub estimated_peak_bytes: u64,
    /// Process peak RSS (bytes) after the scan; with `--jobs > 1` it covers concurrent scans too.
    pub process_peak_rss_bytes: Option<u64>,
    /// The models, with a content hash, so `--resume` redoes scans made with other models.
    pub models: serde_json::Value,
    /// The options that shaped the outputs (heatmap, number of thumbnails).
    pub requested: serde_json::Value,
    /// Files written, relative to the scan folder.
    pub outputs: Vec<String>,
}

/// Current [`ScanRecord::version`].
pub const RECORD_VERSION: u32 = 2;

fn csv_bytes<T: Serialize>(columns: &[&str], rows: &[T]) -> io::Result<Vec<u8>> {
    let mut w = csv::WriterBuilder::new()
        .has_headers(false)
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(Vec::new());
    w.write_record(columns).map_err(io::Error::other)?;
    for r in rows {
        w.serialize(r).map_err(io::Error::other)?;
    }
    w.into_inner().map_err(|e| io::Error::other(e.to_string()))
}

/// Write rows as CSV with a header line, atomically.
///
/// # Errors
/// Any I/O error.
pub fn write_csv<T: Serialize>(path: &Path, columns: &[&str], rows: &[T]) -> io::Result<()> {
    let bytes = csv_bytes(columns, rows)?;
    atomic::write_atomic(path, &bytes)
}

/// Read rows written by [`write_csv`] (columns matched by name).
///
/// # Errors
/// An I/O error, or `InvalidData` naming the line that does not parse.
pub fn read_csv<T: for<'de> Deserialize<'de>>(path: &Path) -> io::Result<Vec<T>> {
    let mut r = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_path(path)
        .map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: {e}", path.display()),
            )
        })?;
    let mut out = Vec::new();
    for (i, row) in r.deserialize().enumerate() {
        out.push(row.map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: line {}: {e}", path.display(), i + 2),
            )
        })?);
    }
    Ok(out)
}

/// Sort candidate rows for a combined file: by series, scan, then rank.
pub fn sort_candidates(rows: &mut [CandidateRow]) {
    rows.sort_by(|a, b| {
        (&a.seriesuid, &a.scan_id, a.rank).cmp(&(&b.seriesuid, &b.scan_id, b.rank))
    });
}

/// Sort summary rows by scan id.
pub fn sort_summary(rows: &mut [SummaryRow]) {
    rows.sort_by(|a, b| a.scan_id.cmp(&b.scan_id));
}

/// Sort skipped rows by patient, study, input, series and kind.
pub fn sort_skipped(rows: &mut [SkippedRow]) {
    rows.sort_by(|a, b| {
        (&a.patient_id, &a.study_uid, &a.input, &a.series, &a.kind).cmp(&(
            &b.patient_id,
            &b.study_uid,
            &b.input,
            &b.series,
            &b.kind,
        ))
    });
}

/// Sort error rows by scan id, then input and reason.
pub fn sort_errors(rows: &mut [ErrorRow]) {
    rows.sort_by(|a, b| {
        (&a.scan_id, &a.input, &a.series, &a.reason)
            .cmp(&(&b.scan_id, &b.input, &b.series, &b.reason))
    });
}

/// The run-level tables of a run (or of a merge of runs): `candidates.csv`, `summary.csv`,
/// `errors.csv` and `skipped.csv`, from which `studies.csv` and the report are made.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Tables {
    /// Every candidate of the scans that succeeded.
    pub candidates: Vec<CandidateRow>,
    /// One line per scan.
    pub summary: Vec<SummaryRow>,
    /// One line per failure.
    pub errors: Vec<ErrorRow>,
    /// One line per item skipped as not a CT image series.
    pub skipped: Vec<SkippedRow>,
}

impl Tables {
    /// Sort every table into its file's order ([`sort_candidates`], [`sort_summary`],
    /// [`sort_errors`], [`sort_skipped`]).
    pub fn sort(&mut self) {
        sort_candidates(&mut self.candidates);
        sort_summary(&mut self.summary);
        sort_errors(&mut self.errors);
        sort_skipped(&mut self.skipped);
    }

    /// Write the tables and `studies.csv` into `dir`, each atomically.
    ///
    /// # Errors
    /// [`BatchError::Io`] naming the file that cannot be written.
    pub fn write(&self, dir: &Path) -> Result<(), BatchError> {
        let studies = studies(&self.summary, &self.skipped);
        write_table(dir, "candidates.csv", &CANDIDATE_COLUMNS, &self.candidates)?;
        write_table(dir, "summary.csv", &SUMMARY_COLUMNS, &self.summary)?;
        write_table(dir, "errors.csv", &ERROR_COLUMNS, &self.errors)?;
        write_table(dir, "skipped.csv", &SKIPPED_COLUMNS, &self.skipped)?;
        write_table(dir, "studies.csv", &STUDY_COLUMNS, &studies)
    }
}

/// [`write_csv`] of `dir/name`, its error naming the file.
fn write_table<T: Serialize>(
    dir: &Path,
    name: &str,
    columns: &[&str],
    rows: &[T],
) -> Result<(), BatchError> {
    let path = dir.join(name);
    write_csv(&path, columns, rows).map_err(BatchError::io("cannot write", path))
}

/// Paths of one scan's outputs under `out/scans/<id>/`.
#[derive(Debug, Clone)]
pub struct ScanPaths {
    /// The scan folder.
    pub dir: PathBuf,
    /// `candidates.csv`.
    pub candidates: PathBuf,
    /// `scan.json`, the completion marker.
    pub record: PathBuf,
    /// `heatmap.nii.gz`.
    pub heatmap: PathBuf,
    /// `thumbnails/`.
    pub thumbnails: PathBuf,
    /// `sr.dcm`: the DICOM measurement report (`--dicom-sr`).
    pub dicom_sr: PathBuf,
    /// `seg.dcm`: the DICOM segmentation (`--dicom-seg`).
    pub dicom_seg: PathBuf,
}

impl ScanPaths {
    /// Paths for scan `id` (a safe name) under `out`.
    pub fn new(out: &Path, id: &str) -> Self {
        // Ids are made safe at discovery; this re-check keeps every path under `out` regardless.
        let id = if names::is_safe_component(id) {
            id.to_string()
        } else {
            names::safe_name(id)
        };
        let dir = out.join("scans").join(id);
        Self {
            candidates: dir.join("candidates.csv"),
            record: dir.join("scan.json"),
            heatmap: dir.join("heatmap.nii.gz"),
            thumbnails: dir.join("thumbnails"),
            dicom_sr: dir.join("sr.dcm"),
            dicom_seg: dir.join("seg.dcm"),
            dir,
        }
    }

    /// Thumbnail file of the candidate of 1-based `rank`.
    pub fn thumbnail(&self, rank: u32) -> PathBuf {
        self.thumbnails.join(format!("candidate-{rank:03}.png"))
    }
}

/// Read `scan.json` if it exists and parses.
pub fn read_record(path: &Path) -> Option<ScanRecord> {
    let bytes = std::fs::read(path).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Write `scan.json` atomically.
///
/// # Errors
/// Any I/O or serialisation error.
pub fn write_record(path: &Path, record: &ScanRecord) -> io::Result<()> {
    let mut bytes = serde_json::to_vec_pretty(record).map_err(io::Error::other)?;
    bytes.push(b'\n');
    atomic::write_atomic(path, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_has_no_negative_zero() {
        assert_eq!(fixed(-0.0001, 3), "0.000");
        assert_eq!(fixed(-1.23456, 3), "-1.235");
        assert_eq!(fixed(2.0, 2), "2.00");
        assert_eq!(fixed(f64::NAN, 2), "");
    }

    #[test]
    fn csv_round_trip_with_hostile_uid() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("c.csv");
        let row = CandidateRow {
            seriesuid: "a,\"b\"\nc".into(),
            coord_x: 1.0,
            coord_y: 2.0,
            coord_z: 3.0,
            probability: 0.5,
            scan_id: "x".into(),
            rank: 1,
            index_z: Some(1),
            index_y: Some(2),
            index_x: Some(3),
            diameter_mm: None,
            side: Some(Side::Left),
            in_lung: Some(true),
            instance_number: None,
            above_operating_point: true,
            measured_volume_mm3: Some(14.1),
            measured_diameter_mm: Some(3.0),
            longest_axial_mm: Some(3.2),
            lung_rads_size: Some(LungRadsSize::Below6),
            measure_reliability: Some(speck_candidates::Reliability::Reliable),
        };
        write_csv(&p, &CANDIDATE_COLUMNS, std::slice::from_ref(&row)).expect("write");
        let text = std::fs::read_to_string(&p).expect("read");
        assert!(text.starts_with("seriesuid,coordX,coordY,coordZ,probability,"));
        let back: Vec<CandidateRow> = read_csv(&p).expect("read");
        assert_eq!(back, vec![row.clone()]);

        // A file of an earlier version (no above_operating_point column; resume, merge).
        let row = CandidateRow {
            seriesuid: "1.2.3".into(),
            ..row
        };
        write_csv(&p, &CANDIDATE_COLUMNS, std::slice::from_ref(&row)).expect("write");
        let old = std::fs::read_to_string(&p)
            .expect("read")
            .lines()
            .map(|l| {
                let cols: Vec<&str> = l.split(',').collect();
                cols[..cols.len() - 6].join(",") + "\n"
            })
            .collect::<String>();
        assert!(!old.contains("above_operating_point") && !old.contains("measured"));
        std::fs::write(&p, old).expect("write");
        let back: Vec<CandidateRow> = read_csv(&p).expect("read");
        let unmeasured = CandidateRow {
            measured_volume_mm3: None,
            measured_diameter_mm: None,
            longest_axial_mm: None,
            lung_rads_size: None,
            measure_reliability: None,
            ..row
        };
        assert_eq!(back, vec![unmeasured]);
    }

    #[test]
    fn typed_cells_read_back_and_are_written_again_byte_for_byte() {
        // What resume and merge rely on: rows read from a file are written again as they were.
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("c.csv");
        let line =
            "1.2,0.000,-12.346,,0.700000,s,2,,0,511,4.00,right,false,-3,false,,,,>=15,roi-border";
        std::fs::write(&p, format!("{}\n{line}\n", CANDIDATE_COLUMNS.join(","))).expect("write");
        let back: Vec<CandidateRow> = read_csv(&p).expect("read");
        let r = &back[0];
        assert!(r.coord_x == 0.0 && r.coord_y == -12.346 && r.coord_z.is_nan());
        assert_eq!(
            (r.index_z, r.index_y, r.index_x),
            (None, Some(0), Some(511))
        );
        assert_eq!(
            (r.side, r.in_lung, r.instance_number),
            (Some(Side::Right), Some(false), Some(-3))
        );
        assert_eq!(
            (r.measured_volume_mm3, r.lung_rads_size),
            (None, Some(LungRadsSize::AtLeast15))
        );
        write_csv(&p, &CANDIDATE_COLUMNS, &back).expect("write");
        let text = std::fs::read_to_string(&p).expect("read");
        assert_eq!(text.lines().nth(1), Some(line));
    }
}
