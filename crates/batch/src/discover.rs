//! From the command line's inputs to a sorted list of scans (and of inputs that cannot be scans).
//!
//! - A folder is searched recursively (symbolic links to folders are not followed): every
//!   `.nii`/`.nii.gz`/`.mhd`/`.mha` file is one scan, and the other files are handed to
//!   [`speck_volume::dicom::scan_series`], which lists DICOM series; each series is one scan.
//! - A NIfTI or MetaImage file is one scan.
//! - A manifest (`.txt`, `.lst`, `.list`, `.manifest`) lists inputs, one per line; `#` starts a
//!   comment; relative paths are relative to the manifest's folder.
//! - Any other file is tried as a single DICOM file.
//!
//! Every item found has one of three plans:
//! - [`Plan::Scan`]: a CT image series (or NIfTI/MetaImage file) to load and scan;
//! - [`Plan::Fail`]: something that should have been a scan but cannot be (a missing path, an
//!   empty input folder, DICOM files whose header is corrupt, a file named `.dcm` that is not
//!   DICOM), sharded, counted and reported like any failed scan (`errors.csv`);
//! - [`Plan::Skip`]: something that is not a CT image series and is not meant to be scanned (a
//!   `LICENSE`, `metadata.csv` or XML annotation, a DICOMDIR, a dose report or presentation state,
//!   an MR series, a scout, a secondary capture, another reconstruction of an acquisition under
//!   `--series-policy best`), each with its [`SkipReason`] (`skipped.csv`).
//!
//! Item ids are unique safe file names (see [`super::names`]), assigned after sorting, so every
//! shard of a job array computes the same ids.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use speck_volume::{stem_uid, Format, Probe};

use super::names;

/// What to do with one discovered item.
#[derive(Debug, Clone, PartialEq)]
pub enum Plan {
    /// Load `path` (with `series_uid` for DICOM) and detect.
    Scan {
        /// The reader.
        format: Format,
        /// A file, or the folder that holds the series' files.
        path: PathBuf,
        /// For DICOM: the SeriesInstanceUID to load from `path`.
        series_uid: Option<String>,
        /// What the header says (shape, stored bytes per voxel), when it could be read: the
        /// memory estimate's input.
        size: Option<Probe>,
        /// For DICOM: the files of the series, every stack of its SeriesInstanceUID, and the
        /// unreadable DICOM files under `path`. A scan reads these, not the whole folder, and its
        /// [`super::identity::InputIdentity`] covers them.
        files: Vec<PathBuf>,
    },
    /// The input should have been a scan but cannot be; `reason` goes to `errors.csv`.
    Fail {
        /// Why, in words a user can act on.
        reason: String,
    },
    /// Not a CT image series: not scanned, listed in `skipped.csv`.
    Skip {
        /// What it is.
        reason: SkipReason,
    },
}

/// Why a found item is not scanned: it is not a CT image series (or, under
/// `--series-policy best`, not the series chosen of its acquisition).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkipReason {
    /// Not DICOM (no `DICM` magic, not a bare data set) and not named like an image: a
    /// `LICENSE`, `metadata.csv`, XML annotations, a PDF...
    NotDicom,
    /// A DICOMDIR: the index of a media export (its images are found by the search itself).
    DicomDir,
    /// A DICOM object without an image: a structured report (dose report), presentation state,
    /// key object selection, RT structure set, ...
    NonImage {
        /// Modality, e.g. `SR`, `PR`, `KO`.
        modality: Option<String>,
        /// SOPClassUID.
        sop_class_uid: Option<String>,
        /// Number of files.
        n_files: usize,
    },
    /// An image series of another modality (MR, PT, SEG, ...).
    Modality {
        /// The Modality value.
        modality: String,
        /// Number of images.
        n_images: usize,
    },
    /// A localizer (scout, topogram, surview): ImageType holds `LOCALIZER`.
    Localizer {
        /// Number of images.
        n_images: usize,
    },
    /// A secondary capture (screen save, dose screen, derived picture): a Secondary Capture SOP
    /// class, or ImageType holding `SCREEN SAVE`.
    SecondaryCapture {
        /// Number of images.
        n_images: usize,
    },
    /// Another series of the same acquisition (same study and FrameOfReferenceUID) is scanned
    /// instead (`--series-policy best`).
    NotChosen {
        /// The SeriesInstanceUID scanned instead.
        chosen: String,
        /// Why that one, in words.
        why: String,
    },
}

impl SkipReason {
    /// A short fixed name for the `kind` column of `skipped.csv`: `not-dicom`, `dicomdir`,
    /// `non-image`, `modality`, `localizer`, `secondary-capture` or `not-chosen`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::NotDicom => "not-dicom",
            Self::DicomDir => "dicomdir",
            Self::NonImage { .. } => "non-image",
            Self::Modality { .. } => "modality",
            Self::Localizer { .. } => "localizer",
            Self::SecondaryCapture { .. } => "secondary-capture",
            Self::NotChosen { .. } => "not-chosen",
        }
    }
}

/// What common non-image SOP classes are, for messages.
fn sop_class_name(uid: &str) -> Option<&'static str> {
    Some(match uid {
        "1.2.840.10008.1.3.10" => "media storage directory (DICOMDIR)",
        "1.2.840.10008.5.1.4.1.1.88.67" => "X-ray radiation dose report",
        "1.2.840.10008.5.1.4.1.1.88.11" => "basic text report",
        "1.2.840.10008.5.1.4.1.1.88.22" => "enhanced report",
        "1.2.840.10008.5.1.4.1.1.88.33" => "comprehensive report",
        "1.2.840.10008.5.1.4.1.1.88.59" => "key object selection",
        "1.2.840.10008.5.1.4.1.1.11.1" => "grayscale softcopy presentation state",
        "1.2.840.10008.5.1.4.1.1.481.3" => "RT structure set",
        "1.2.840.10008.5.1.4.1.1.104.1" => "encapsulated PDF",
        "1.2.840.10008.5.1.4.1.1.66" => "raw data",
        _ => return None,
    })
}

impl std::fmt::Display for SkipReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NotDicom => write!(f, "not a DICOM file or an image Speck reads"),
            Self::DicomDir => write!(
                f,
                "a DICOMDIR (the index of a media export; its series are found by the search)"
            ),
            Self::NonImage {
                modality,
                sop_class_uid,
                n_files,
            } => {
                let what = sop_class_uid
                    .as_deref()
                    .and_then(sop_class_name)
                    .map(str::to_string)
                    .or_else(|| sop_class_uid.as_ref().map(|u| format!("SOP class {u}")))
                    .unwrap_or_else(|| "unknown SOP class".into());
                let modality = modality.as_deref().unwrap_or("no modality");
                write!(
                    f,
                    "a DICOM object without an image ({modality}, {what}; {n_files} file(s))"
                )
            }
            Self::Modality { modality, n_images } => write!(
                f,
                "modality {modality:?} ({n_images} images): Speck reads CT series"
            ),
            Self::Localizer { n_images } => write!(
                f,
                "a localizer (scout; ImageType LOCALIZER, {n_images} images), not a CT volume"
            ),
            Self::SecondaryCapture { n_images } => write!(
                f,
                "a secondary capture (screen save or derived picture, {n_images} images), not \
                 a CT volume"
            ),
            Self::NotChosen { chosen, why } => write!(
                f,
                "another series of the same acquisition is scanned (--series-policy best): \
                 {chosen}, {why}"
            ),
        }
    }
}

/// Which series of one acquisition to scan when a study holds several (a lung and a
/// soft-tissue reconstruction, thin and thick slices).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum SeriesPolicy {
    /// Scan every CT series.
    #[default]
    All,
    /// Scan the series best suited to nodule detection: axial, thinnest slices, then the
    /// sharpest (lung) kernel, then the most slices.
    Best,
}

impl SeriesPolicy {
    /// `all` or `best`.
    pub fn name(self) -> &'static str {
        match self {
            Self::All => "all",
            Self::Best => "best",
        }
    }
}

/// Why a DICOM series of an acquisition with several series is scanned: recorded in `scan.json`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SeriesChoice {
    /// `all` or `best` (`--series-policy`).
    pub policy: String,
    /// The other series of the same acquisition (same study and FrameOfReferenceUID).
    pub others: Vec<String>,
    /// Why this series is scanned, in words.
    pub reason: String,
}

/// One scan (or one input that failed before it could become a scan).
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    /// Unique, safe file name for this scan's outputs.
    pub id: String,
    /// The identifier written in the `seriesuid` column: the SeriesInstanceUID for DICOM, the file
    /// stem for NIfTI/MetaImage (as LUNA16 names its `.mhd` files). Untrusted text.
    pub uid: String,
    /// The command-line (or manifest) input it was found under.
    pub input: PathBuf,
    /// The file or folder concerned (what is read, or what could not be).
    pub source: PathBuf,
    /// The series, for DICOM.
    pub series: Option<String>,
    /// PatientID, for DICOM.
    pub patient_id: Option<String>,
    /// StudyInstanceUID, for DICOM.
    pub study_uid: Option<String>,
    /// For a DICOM series whose acquisition has several: how it was chosen.
    pub choice: Option<SeriesChoice>,
    /// What to do.
    pub plan: Plan,
}

/// Refuse a list of items none of which can be scanned.
///
/// # Errors
/// [`crate::BatchError::NothingToScan`], listing the first 20 items (failures first: they are
/// what the user has to fix, then the items skipped) with their reasons.
pub fn check_scannable(all: &[Item]) -> Result<(), crate::BatchError> {
    const SHOWN: usize = 20;
    if all.iter().any(|it| matches!(it.plan, Plan::Scan { .. })) {
        return Ok(());
    }
    let failed = all.iter().filter(|it| matches!(it.plan, Plan::Fail { .. }));
    let skipped = all.iter().filter(|it| matches!(it.plan, Plan::Skip { .. }));
    let mut reasons: Vec<String> = failed
        .chain(skipped)
        .take(SHOWN)
        .map(|it| match &it.plan {
            Plan::Fail { reason } => format!("\n  {}: {reason}", it.source.display()),
            Plan::Skip { reason } => format!("\n  {}: skipped: {reason}", it.source.display()),
            Plan::Scan { .. } => String::new(),
        })
        .collect();
    if all.len() > SHOWN {
        reasons.push(format!("\n  ... and {} more", all.len() - SHOWN));
    }
    Err(crate::BatchError::NothingToScan {
        reasons: reasons.concat(),
    })
}

/// Files named per folder, at most, when a folder holds nothing readable (the others of that
/// folder are counted); and files whose problem is looked at, at most, in all.
const FILES_NAMED_PER_FOLDER: usize = 3;
const FILES_CHECKED: usize = 2000;

/// What is wrong with one file that `speck scan` would offer to a reader: the reader's error,
/// from its header alone.
fn problem(f: &Path) -> String {
    let res = if Format::from_file_name(f).is_some() {
        speck_volume::open(f).map(drop)
    } else {
        speck_volume::dicom::check_file(f)
    };
    let why = match res {
        Err(e) => e.to_string(),
        Ok(()) => "readable by itself: try `speck info` on this file".into(),
    };
    let path = f.display().to_string();
    why.strip_prefix(&format!("{path}: "))
        .map(str::to_owned)
        .unwrap_or(why)
}

/// Why a folder holds nothing to scan, for `speck info`: per folder, the first files with their
/// reader's error (files with the same error as the one before are counted, not repeated).
pub fn nothing_readable(dir: &Path) -> String {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for p in rd.flatten().map(|e| e.path()) {
            match std::fs::symlink_metadata(&p) {
                Ok(m) if m.is_dir() => stack.push(p),
                Ok(_) if files.len() < FILES_CHECKED => files.push(p),
                _ => {}
            }
        }
    }
    files.sort();
    let mut s = format!(
        "{} holds no DICOM series, NIfTI or MetaImage file Speck can read",
        dir.display()
    );
    if files.is_empty() {
        s.push_str(" (it holds no file)");
        return s;
    }
    s.push(':');
    let mut by_folder: BTreeMap<PathBuf, Vec<PathBuf>> = Default::default();
    for f in files {
        let folder = f.parent().map(PathBuf::from).unwrap_or_default();
        by_folder.entry(folder).or_default().push(f);
    }
    for (folder, files) in by_folder {
        let mut named = 0;
        let mut last: Option<String> = None;
        let mut same = 0usize;
        for f in &files {
            if named == FILES_NAMED_PER_FOLDER {
                break;
            }
            let why = problem(f);
            if last.as_deref() == Some(why.as_str()) {
                same += 1;
                continue;
            }
            let rel = f.strip_prefix(dir).unwrap_or(f).display().to_string();
            s.push_str(&format!("\n  {rel}: {why}"));
            last = Some(why);
            named += 1;
        }
        let rest = files.len() - named;
        if rest > 0 {
            let rel = folder
                .strip_prefix(dir)
                .unwrap_or(&folder)
                .display()
                .to_string();
            let rel = if rel.is_empty() { ".".into() } else { rel };
            let how = if same == rest {
                " with the same problem"
            } else {
                ""
            };
            s.push_str(&format!("\n  ... and {rest} more file(s) in {rel}/{how}"));
        }
    }
    s
}

/// Maximum folder depth searched under one input.
const MAX_DEPTH: usize = 64;

/// Lowercased file name.
fn lower_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default()
}

/// True for a manifest's file name (`.txt`, `.lst`, `.list`, `.manifest`).
pub fn is_manifest(p: &Path) -> bool {
    let n = lower_name(p);
    [".txt", ".lst", ".list", ".manifest"]
        .iter()
        .any(|e| n.ends_with(e))
}

/// Files that are never scans on their own and are not listed: hidden files (`.DS_Store`, our
/// temporary files) and the data files of MetaImage/Analyze headers (read through their header).
fn is_ignorable(p: &Path) -> bool {
    let n = lower_name(p);
    n.starts_with('.') || [".raw", ".zraw", ".img"].iter().any(|e| n.ends_with(e))
}

/// True for a DICOMDIR by its name (the name the standard gives it on media).
fn is_dicomdir_name(p: &Path) -> bool {
    lower_name(p) == "dicomdir"
}

/// True for a file named as a DICOM file (`.dcm`, `.dicom`, `.dic`, `.ima`): when it is not DICOM
/// it is a corrupt scan file, not an unrelated document.
fn named_as_dicom(p: &Path) -> bool {
    let n = lower_name(p);
    [".dcm", ".dicom", ".dic", ".ima"]
        .iter()
        .any(|e| n.ends_with(e))
}

/// A raw (unsorted, id-less) item.
struct Raw {
    uid: String,
    input: PathBuf,
    source: PathBuf,
    series: Option<String>,
    patient_id: Option<String>,
    study_uid: Option<String>,
    /// The series' header facts, for a DICOM series to scan (the series policy ranks them).
    facts: Option<Box<speck_volume::dicom::SeriesInfo>>,
    choice: Option<SeriesChoice>,
    plan: Plan,
}

impl Raw {
    fn new(input: &Path, source: &Path, uid: String, plan: Plan) -> Self {
        Self {
            uid,
            input: input.to_path_buf(),
            source: source.to_path_buf(),
            series: None,
            patient_id: None,
            study_uid: None,
            facts: None,
            choice: None,
            plan,
        }
    }
}

fn file_item(input: &Path, path: &Path, format: Format) -> Raw {
    let size = match speck_volume::probe(path) {
        Ok(s) => Some(s),
        Err(e) => {
            // The loader gives the authoritative error; this is only the estimate failing.
            tracing::debug!("{}: header not read for the estimate: {e}", path.display());
            None
        }
    };
    Raw::new(
        input,
        path,
        stem_uid(path),
        Plan::Scan {
            format,
            path: path.to_path_buf(),
            series_uid: None,
            size,
            files: Vec::new(),
        },
    )
}

fn fail(input: &Path, source: &Path, uid: String, series: Option<String>, reason: String) -> Raw {
    Raw {
        series,
        ..Raw::new(input, source, uid, Plan::Fail { reason })
    }
}

fn skip(input: &Path, source: &Path, uid: String, reason: SkipReason) -> Raw {
    Raw::new(input, source, uid, Plan::Skip { reason })
}

/// The file name of `p` (for the `seriesuid` of items that are single files).
fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| p.display().to_string())
}

/// The deepest folder holding every file in `files`.
fn common_dir(files: &[PathBuf]) -> Option<PathBuf> {
    let mut it = files.iter();
    let mut dir = it.next()?.parent()?.to_path_buf();
    for f in it {
        while !f.starts_with(&dir) {
            dir = dir.parent()?.to_path_buf();
        }
    }
    Some(dir)
}

/// True for a Secondary Capture SOP class (single-frame, or one of the multi-frame ones).
fn is_secondary_capture(sop_class_uid: Option<&str>) -> bool {
    sop_class_uid.is_some_and(|u| {
        u == "1.2.840.10008.5.1.4.1.1.7" || u.starts_with("1.2.840.10008.5.1.4.1.1.7.")
    })
}

/// What to do with one image stack: `None` to scan it, else why it is skipped.
fn classify_series(s: &speck_volume::dicom::SeriesInfo) -> Option<SkipReason> {
    let n_images = s.n_images;
    let has = |v: &str| s.image_type.iter().any(|t| t == v);
    if is_secondary_capture(s.sop_class_uid.as_deref()) || has("SCREEN SAVE") {
        return Some(SkipReason::SecondaryCapture { n_images });
    }
    let modality = s.modality.clone().unwrap_or_default();
    if !modality.is_empty() && !modality.eq_ignore_ascii_case("CT") {
        return Some(SkipReason::Modality { modality, n_images });
    }
    if has("LOCALIZER") {
        return Some(SkipReason::Localizer { n_images });
    }
    None
}

/// Items for the files `files` found under `input` that are not NIfTI/MetaImage: DICOM series to
/// scan, and everything else as skipped or failed items. `dicomdirs` are DICOMDIR files (by name).
fn dicom_items(input: &Path, files: &[PathBuf], dicomdirs: &[PathBuf], out: &mut Vec<Raw>) {
    for d in dicomdirs {
        out.push(skip(input, d, file_name(d), SkipReason::DicomDir));
    }
    let survey = speck_volume::dicom::survey_files(files);
    let dir_of = |s: &speck_volume::dicom::SeriesInfo| {
        let dir = if files.len() == 1 && s.files.len() == 1 {
            Some(s.files[0].clone())
        } else {
            common_dir(&s.files)
        };
        dir.unwrap_or_else(|| input.to_path_buf())
    };
    // What a scan of a series reads: the files of every stack of its SeriesInstanceUID (the reader
    // checks them against each other), and the unreadable DICOM files under its folder (the reader
    // refuses a folder holding one, so the scan fails naming it, as a scan of the folder would).
    // Loading these files, not the folder, keeps a flat export of many series from being read
    // once per series.
    let mut series_files: HashMap<&str, BTreeSet<&PathBuf>> = HashMap::new();
    for s in &survey.series {
        let entry = series_files.entry(s.series_uid.as_str()).or_default();
        entry.extend(s.files.iter());
        let dir = dir_of(s);
        entry.extend(
            survey
                .unreadable
                .iter()
                .filter(|u| u.path.starts_with(&dir))
                .map(|u| &u.path),
        );
    }
    let series_files: HashMap<&str, Vec<PathBuf>> = series_files
        .into_iter()
        .map(|(uid, set)| (uid, set.into_iter().cloned().collect()))
        .collect();
    // Image stacks.
    let mut scan_dirs: Vec<PathBuf> = Vec::new();
    for s in &survey.series {
        let s = s.clone();
        let dir = dir_of(&s);
        if let Some(reason) = classify_series(&s) {
            out.push(Raw {
                series: Some(s.series_uid.clone()),
                patient_id: s.patient_id.clone(),
                study_uid: s.study_uid.clone(),
                ..skip(input, &dir, s.series_uid.clone(), reason)
            });
            continue;
        }
        scan_dirs.push(dir.clone());
        out.push(Raw {
            uid: s.series_uid.clone(),
            input: input.to_path_buf(),
            source: dir.clone(),
            series: Some(s.series_uid.clone()),
            patient_id: s.patient_id.clone(),
            study_uid: s.study_uid.clone(),
            choice: None,
            plan: Plan::Scan {
                format: Format::Dicom,
                path: dir,
                series_uid: Some(s.series_uid.clone()),
                size: Some(Probe::from(&s)).filter(|p| p.voxels() > 0),
                files: series_files
                    .get(s.series_uid.as_str())
                    .cloned()
                    .unwrap_or_else(|| s.files.clone()),
            },
            facts: Some(Box::new(s)),
        });
    }
    // DICOM objects without an image, one item per series (or file, without a series).
    let mut objects: BTreeMap<ObjectKey, Vec<&speck_volume::dicom::DicomObjectInfo>> =
        BTreeMap::new();
    for o in &survey.objects {
        let key = o
            .series_uid
            .clone()
            .unwrap_or_else(|| o.path.display().to_string());
        objects
            .entry((key, o.modality.clone(), o.sop_class_uid.clone()))
            .or_default()
            .push(o);
    }
    for ((key, modality, sop_class_uid), group) in objects {
        let paths: Vec<PathBuf> = group.iter().map(|o| o.path.clone()).collect();
        let source = if paths.len() == 1 {
            paths[0].clone()
        } else {
            common_dir(&paths).unwrap_or_else(|| input.to_path_buf())
        };
        let reason = if sop_class_uid.as_deref() == Some("1.2.840.10008.1.3.10") {
            SkipReason::DicomDir
        } else {
            SkipReason::NonImage {
                modality,
                sop_class_uid,
                n_files: paths.len(),
            }
        };
        let first = group[0];
        out.push(Raw {
            series: first.series_uid.clone(),
            patient_id: first.patient_id.clone(),
            study_uid: first.study_uid.clone(),
            ..skip(input, &source, key, reason)
        });
    }
    // Files that are not DICOM: documents are skipped; files named as DICOM failed, per folder.
    let mut misnamed: BTreeMap<PathBuf, Vec<String>> = BTreeMap::new();
    for p in survey.not_dicom {
        if named_as_dicom(&p) {
            let dir = p.parent().unwrap_or(input).to_path_buf();
            misnamed.entry(dir).or_default().push(file_name(&p));
        } else {
            out.push(skip(input, &p, file_name(&p), SkipReason::NotDicom));
        }
    }
    for (dir, names) in misnamed {
        out.push(fail(
            input,
            &dir,
            stem_uid(&dir),
            None,
            format!(
                "{} file(s) here are named as DICOM but are not DICOM (no DICM magic, not a data \
                 set; empty, truncated or overwritten?): {}",
                names.len(),
                shown(&names)
            ),
        ));
    }
    // DICOM files whose header is unreadable: the load of a series in their folder reports them
    // (the reader refuses a folder holding a corrupt DICOM file); elsewhere, failed per folder.
    let mut broken: BTreeMap<PathBuf, Vec<&speck_volume::dicom::UnreadableFile>> = BTreeMap::new();
    for u in &survey.unreadable {
        if scan_dirs.iter().any(|d| u.path.starts_with(d)) {
            continue;
        }
        let dir = u.path.parent().unwrap_or(input).to_path_buf();
        broken.entry(dir).or_default().push(u);
    }
    for (dir, files) in broken {
        out.push(fail(
            input,
            &dir,
            stem_uid(&dir),
            None,
            format!(
                "{} DICOM file(s) here are not a readable image series (corrupt or truncated; \
                 the first: {}); `speck info {}` names each file's problem",
                files.len(),
                files[0].reason,
                dir.display()
            ),
        ));
    }
}

/// DICOM objects without an image are grouped by series (or path), modality and SOP class.
type ObjectKey = (String, Option<String>, Option<String>);

/// The first few names of a list, for a message.
fn shown(names: &[String]) -> String {
    let mut s = names.iter().take(3).cloned().collect::<Vec<_>>().join(", ");
    if names.len() > 3 {
        s.push_str(&format!(" and {} more", names.len() - 3));
    }
    s
}

/// Walk `dir`: image files by extension, DICOMDIRs, and the other (possibly DICOM) files.
fn walk(
    skip: &[PathBuf],
    dir: &Path,
    depth: usize,
    found: &mut Found,
    errs: &mut Vec<(PathBuf, String)>,
) {
    if depth > MAX_DEPTH {
        errs.push((
            dir.to_path_buf(),
            format!("deeper than {MAX_DEPTH} folders; not searched"),
        ));
        return;
    }
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) => {
            errs.push((dir.to_path_buf(), format!("cannot list folder: {e}")));
            return;
        }
    };
    let mut entries: Vec<_> = rd.flatten().map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        let Ok(meta) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        if meta.is_dir() {
            let inside_skip = std::fs::canonicalize(&p).is_ok_and(|c| skip.contains(&c));
            if inside_skip {
                tracing::debug!("{}: the output folder; not searched", p.display());
            } else {
                walk(skip, &p, depth + 1, found, errs);
            }
        } else if meta.is_file() || meta.file_type().is_symlink() && p.is_file() {
            found.n_files += 1;
            if Format::from_file_name(&p).is_some() {
                found.images.push(p);
            } else if is_dicomdir_name(&p) {
                found.dicomdirs.push(p);
            } else if !is_ignorable(&p) {
                found.others.push(p);
            }
        }
    }
}

/// What a folder walk found.
#[derive(Default)]
struct Found {
    images: Vec<PathBuf>,
    dicomdirs: Vec<PathBuf>,
    others: Vec<PathBuf>,
    n_files: usize,
}

fn discover_one(skip: &[PathBuf], input: &Path, out: &mut Vec<Raw>, in_manifest: bool) {
    let meta = match std::fs::metadata(input) {
        Ok(m) => m,
        Err(e) => {
            out.push(fail(
                input,
                input,
                stem_uid(input),
                None,
                format!("cannot read input: {e}"),
            ));
            return;
        }
    };
    if meta.is_dir() {
        let mut found = Found::default();
        let mut errs = Vec::new();
        walk(skip, input, 0, &mut found, &mut errs);
        for (p, e) in errs {
            out.push(fail(input, &p, stem_uid(&p), None, e));
        }
        if found.n_files == 0 {
            out.push(fail(
                input,
                input,
                stem_uid(input),
                None,
                "no DICOM series, NIfTI or MetaImage file found".into(),
            ));
            return;
        }
        for p in found.images {
            let format = Format::from_file_name(&p).unwrap_or(Format::Nifti);
            out.push(file_item(input, &p, format));
        }
        if !found.others.is_empty() || !found.dicomdirs.is_empty() {
            dicom_items(input, &found.others, &found.dicomdirs, out);
        }
    } else if let Some(format) = Format::from_file_name(input) {
        out.push(file_item(input, input, format));
    } else if is_manifest(input) {
        if in_manifest {
            out.push(fail(
                input,
                input,
                stem_uid(input),
                None,
                "a manifest may not list another manifest".into(),
            ));
            return;
        }
        match read_manifest(input) {
            Ok(paths) => {
                for p in paths {
                    discover_one(skip, &p, out, true);
                }
            }
            Err(e) => out.push(fail(
                input,
                input,
                stem_uid(input),
                None,
                format!("cannot read manifest: {e}"),
            )),
        }
    } else if is_dicomdir_name(input) {
        // A DICOMDIR named as the input stands for the media it indexes: its folder.
        let media = match input.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        discover_one(skip, media, out, in_manifest);
    } else {
        dicom_items(input, &[input.to_path_buf()], &[], out);
    }
}

/// The thickness a series' slices are compared by: SliceThickness, else the spacing of their
/// positions, in 0.01 mm (so 1.0 and 0.9999 are the same).
fn thickness_cmm(s: &speck_volume::dicom::SeriesInfo) -> Option<i64> {
    s.slice_thickness_mm
        .or(s.slice_spacing_mm)
        .filter(|t| t.is_finite() && *t > 0.0)
        .map(|t| (t * 100.0).round() as i64)
}

/// How sharp a reconstruction kernel is for lung nodules, higher is better: 3 a lung kernel,
/// 2 a sharp (bone, edge, high-frequency) kernel, 1 unknown, 0 a soft-tissue kernel; then the
/// kernel's number where the vendor numbers sharpness (Siemens `B70f`, Canon `FC52`).
///
/// A heuristic over the usual names: GE `LUNG`/`BONE`/`BONEPLUS`/`EDGE`/`STANDARD`/`SOFT`,
/// Siemens `B`/`Br`/`I`/`Q` + number (50 and above sharp), Canon/Toshiba `FC` + number (50 and
/// above lung), Philips `L` (lung), `YC`/`YD`/`D`/`E` (sharp), `A`/`B`/`C`/`YA`/`YB` (soft).
pub fn kernel_sharpness(kernel: Option<&str>) -> (u8, u32) {
    let Some(k) = kernel else {
        return (1, 0);
    };
    let k = k.trim().to_ascii_uppercase();
    let number: u32 = k
        .chars()
        .skip_while(|c| !c.is_ascii_digit())
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .unwrap_or(0);
    let class = if k.contains("LUNG") || k.contains("PULM") || k == "L" {
        3
    } else if ["BONE", "EDGE", "SHARP", "DETAIL", "HIGH"]
        .iter()
        .any(|w| k.contains(w))
        || ["YC", "YD", "YE", "D", "E"].contains(&k.as_str())
    {
        2
    } else if [
        "SOFT",
        "STANDARD",
        "STND",
        "SMOOTH",
        "BODY",
        "MEDIASTIN",
        "ABDOMEN",
    ]
    .iter()
    .any(|w| k.contains(w))
        || ["A", "B", "C", "YA", "YB"].contains(&k.as_str())
    {
        0
    } else if k.starts_with("FC") && number > 0 {
        if number >= 50 {
            3
        } else {
            0
        }
    } else if k.starts_with(['B', 'I', 'Q', 'H', 'D']) && number > 0 {
        if number >= 50 {
            2
        } else {
            0
        }
    } else {
        1
    };
    (class, number)
}

/// Words for a kernel's sharpness class.
fn kernel_words(kernel: Option<&str>) -> String {
    let class = match kernel_sharpness(kernel).0 {
        3 => "lung",
        2 => "sharp",
        0 => "soft tissue",
        _ => "unknown",
    };
    match kernel {
        Some(k) => format!("{k}, {class}"),
        None => "no kernel named".into(),
    }
}

/// Rank key of a series for `--series-policy best` (smaller is better).
fn rank_key(
    s: &speck_volume::dicom::SeriesInfo,
) -> (
    bool,
    i64,
    std::cmp::Reverse<(u8, u32)>,
    std::cmp::Reverse<usize>,
    String,
) {
    (
        s.orientation != speck_volume::dicom::Orientation::Axial,
        thickness_cmm(s).unwrap_or(i64::MAX),
        std::cmp::Reverse(kernel_sharpness(s.convolution_kernel.as_deref())),
        std::cmp::Reverse(s.n_images),
        s.series_uid.clone(),
    )
}

/// Why `a` ranks before `b`, in words: the first criterion that tells them apart.
fn why_better(a: &speck_volume::dicom::SeriesInfo, b: &speck_volume::dicom::SeriesInfo) -> String {
    use speck_volume::dicom::Orientation;
    let mm = |s: &speck_volume::dicom::SeriesInfo| {
        thickness_cmm(s).map_or("unknown".into(), |t| format!("{:.2} mm", t as f64 / 100.0))
    };
    if (a.orientation == Orientation::Axial) != (b.orientation == Orientation::Axial) {
        format!("axial slices (against {})", b.orientation.name())
    } else if thickness_cmm(a) != thickness_cmm(b) {
        format!("thinner slices ({} against {})", mm(a), mm(b))
    } else if kernel_sharpness(a.convolution_kernel.as_deref())
        != kernel_sharpness(b.convolution_kernel.as_deref())
    {
        format!(
            "a sharper kernel ({}, against {})",
            kernel_words(a.convolution_kernel.as_deref()),
            kernel_words(b.convolution_kernel.as_deref())
        )
    } else if a.n_images != b.n_images {
        format!("more slices ({} against {})", a.n_images, b.n_images)
    } else {
        "the first SeriesInstanceUID (the series are otherwise alike)".into()
    }
}

/// Apply the series policy to the DICOM series to scan: series of one acquisition (same patient,
/// study and FrameOfReferenceUID) are ranked; under `Best` only the first is scanned, the others
/// become skipped items; under `All` each records the others.
fn apply_policy(raws: &mut [Raw], policy: SeriesPolicy) {
    let mut groups: BTreeMap<(Option<String>, Option<String>, String), Vec<usize>> =
        BTreeMap::new();
    for (i, r) in raws.iter().enumerate() {
        let (Plan::Scan { .. }, Some(f)) = (&r.plan, &r.facts) else {
            continue;
        };
        let Some(frame) = &f.frame_of_reference_uid else {
            continue;
        };
        groups
            .entry((r.patient_id.clone(), r.study_uid.clone(), frame.clone()))
            .or_default()
            .push(i);
    }
    for (_, mut members) in groups {
        members.sort_by(|&a, &b| {
            let (Some(fa), Some(fb)) = (&raws[a].facts, &raws[b].facts) else {
                return std::cmp::Ordering::Equal;
            };
            rank_key(fa).cmp(&rank_key(fb))
        });
        let uids: Vec<String> = members.iter().map(|&i| raws[i].uid.clone()).collect();
        // Series reached twice (two overlapping inputs) are one series.
        let distinct: BTreeSet<&String> = uids.iter().collect();
        if distinct.len() < 2 {
            continue;
        }
        let best = members[0];
        let Some(best_facts) = raws[best].facts.clone() else {
            continue;
        };
        for (k, &i) in members.iter().enumerate() {
            let others: Vec<String> = uids
                .iter()
                .filter(|u| **u != raws[i].uid)
                .cloned()
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect();
            let Some(facts) = raws[i].facts.clone() else {
                continue;
            };
            if policy == SeriesPolicy::Best && raws[i].uid != raws[best].uid {
                raws[i].plan = Plan::Skip {
                    reason: SkipReason::NotChosen {
                        chosen: raws[best].uid.clone(),
                        why: why_better(&best_facts, &facts),
                    },
                };
                continue;
            }
            let reason = match policy {
                SeriesPolicy::Best => {
                    let runner_up = members
                        .iter()
                        .filter_map(|&j| raws[j].facts.as_ref())
                        .find(|f| f.series_uid != facts.series_uid);
                    match runner_up {
                        Some(r) => format!(
                            "the best of {} series of its acquisition for nodule detection: {}",
                            distinct.len(),
                            why_better(&facts, r)
                        ),
                        None => "the only series of its acquisition".into(),
                    }
                }
                SeriesPolicy::All => format!(
                    "every series of the acquisition is scanned (--series-policy all); rank {} \
                     of {} for nodule detection (axial, thinnest slices, sharpest kernel, most \
                     slices)",
                    k + 1,
                    members.len()
                ),
            };
            raws[i].choice = Some(SeriesChoice {
                policy: policy.name().into(),
                others,
                reason,
            });
        }
    }
}

/// The paths a manifest lists (blank lines and `#` comments skipped; relative to its folder).
///
/// # Errors
/// An I/O error when the manifest cannot be read, or it is not UTF-8.
pub fn read_manifest(path: &Path) -> std::io::Result<Vec<PathBuf>> {
    let text = std::fs::read_to_string(path)?;
    let base = path.parent().unwrap_or_else(|| Path::new("."));
    Ok(text
        .lines()
        .map(|l| l.split_once('#').map_or(l, |(a, _)| a).trim())
        .filter(|l| !l.is_empty())
        .map(|l| {
            let p = PathBuf::from(l);
            if p.is_absolute() {
                p
            } else {
                base.join(p)
            }
        })
        .collect())
}

/// Discover every item under `inputs`, de-duplicated (the same file or series reached twice is
/// scanned once), sorted, with unique safe ids, `policy` applied to acquisitions with several
/// series. Folders in `skip` (the output folder, when it lies inside an input) are not searched,
/// so a run never scans its own heatmaps.
pub fn discover(inputs: &[PathBuf], skip: &[PathBuf], policy: SeriesPolicy) -> Vec<Item> {
    let skip: Vec<PathBuf> = skip
        .iter()
        .filter_map(|p| std::fs::canonicalize(p).ok())
        .collect();
    let mut raws = Vec::new();
    for input in inputs {
        discover_one(&skip, input, &mut raws, false);
    }
    // De-duplicate by what would be read.
    let mut seen: BTreeMap<(String, Option<String>, String), Raw> = BTreeMap::new();
    for r in raws {
        let key = match &r.plan {
            Plan::Scan {
                path, series_uid, ..
            } => (
                std::fs::canonicalize(path)
                    .unwrap_or_else(|_| path.clone())
                    .to_string_lossy()
                    .into_owned(),
                series_uid.clone(),
                String::new(),
            ),
            Plan::Fail { reason } => (
                r.source.to_string_lossy().into_owned(),
                r.series.clone(),
                reason.clone(),
            ),
            Plan::Skip { reason } => (
                std::fs::canonicalize(&r.source)
                    .unwrap_or_else(|_| r.source.clone())
                    .to_string_lossy()
                    .into_owned(),
                r.series.clone(),
                reason.to_string(),
            ),
        };
        seen.entry(key).or_insert(r);
    }
    let mut raws: Vec<Raw> = seen.into_values().collect();
    apply_policy(&mut raws, policy);
    raws.sort_by(|a, b| (&a.uid, &a.input, &a.series).cmp(&(&b.uid, &b.input, &b.series)));
    // Skipped items are named among themselves: they never share a name with a scan's folder
    // or `seriesuid` column, and two `LICENSE` files are no reason for a warning.
    let (skipped, planned): (Vec<Raw>, Vec<Raw>) = raws
        .into_iter()
        .partition(|r| matches!(r.plan, Plan::Skip { .. }));
    let mut items = Vec::with_capacity(planned.len() + skipped.len());
    for (raws, warn) in [(planned, true), (skipped, false)] {
        let (ids, uids) = stable_names(&raws, warn);
        items.extend(
            raws.into_iter()
                .zip(ids.into_iter().zip(uids))
                .map(|(r, (id, uid))| Item {
                    id,
                    uid,
                    input: r.input,
                    source: r.source,
                    series: r.series,
                    patient_id: r.patient_id,
                    study_uid: r.study_uid,
                    choice: r.choice,
                    plan: r.plan,
                }),
        );
    }
    items.sort_by(|a, b| (&a.uid, &a.input, &a.series).cmp(&(&b.uid, &b.input, &b.series)));
    items
}

/// True when `s` has the form of a DICOM UID (dot-separated decimal components), as a
/// SeriesInstanceUID has and as LUNA16 names its `.mhd` files: unique by construction.
pub fn is_uid_like(s: &str) -> bool {
    s.len() <= 64
        && s.contains('.')
        && s.split('.')
            .all(|c| !c.is_empty() && c.bytes().all(|b| b.is_ascii_digit()))
}

/// Eight hex digits of the resolved path (and series) an item reads: the same for the same input
/// in every run, whatever else the run holds.
fn path_hash(r: &Raw) -> String {
    let path = match &r.plan {
        Plan::Scan { path, .. } => path,
        Plan::Fail { .. } | Plan::Skip { .. } => &r.source,
    };
    let mut key = std::fs::canonicalize(path)
        .unwrap_or_else(|_| path.clone())
        .to_string_lossy()
        .into_owned();
    if let Some(s) = &r.series {
        key.push('\0');
        key.push_str(s);
    }
    format!("{:08x}", names::fnv1a64(key.as_bytes()) & 0xffff_ffff)
}

fn hashed(raw: &str, hash: &str) -> String {
    let mut base = names::safe_name(raw);
    base.truncate(names::MAX_NAME_LEN - 9);
    format!("{base}-{hash}")
}

/// Scan ids and `seriesuid` values for sorted items.
///
/// - **Ids are a function of the input alone**, so adding inputs to a run never renames another
///   scan's folder (which `--resume` would then take for a different scan): a UID (DICOM, or a
///   LUNA16-style file name) is its own id; any other name (`ct.nii.gz`, `imaging.nii.gz`) gets
///   the hash of its resolved path (`ct-1a2b3c4d`). A UID found at two places (a copied series)
///   gets the path hash too.
/// - **`seriesuid` values never collide within a run**: a name is kept as is when no other item
///   of the run has it (so annotations keyed by file stem still match), and otherwise becomes the
///   hashed id, with a warning.
fn stable_names(raws: &[Raw], warn: bool) -> (Vec<String>, Vec<String>) {
    let mut count: BTreeMap<String, usize> = BTreeMap::new();
    for r in raws {
        *count
            .entry(names::safe_name(&r.uid).to_ascii_lowercase())
            .or_default() += 1;
    }
    let mut ids = Vec::with_capacity(raws.len());
    let mut uids = Vec::with_capacity(raws.len());
    for r in raws {
        let n_shared = count
            .get(&names::safe_name(&r.uid).to_ascii_lowercase())
            .copied()
            .unwrap_or(0);
        let shared = n_shared > 1;
        let uid_like = is_uid_like(&r.uid);
        let with_hash = hashed(&r.uid, &path_hash(r));
        let id = if uid_like && !shared {
            names::safe_name(&r.uid)
        } else {
            with_hash.clone()
        };
        if shared && uid_like {
            if warn {
                tracing::warn!(
                    "series {} is found {n_shared} times; {} is scanned as {id}",
                    r.uid,
                    r.source.display()
                );
            }
            // One UID is one series, found more than once (copies, or one scan in several
            // formats): its annotations are keyed by that UID, so the column keeps it.
            uids.push(r.uid.clone());
        } else if shared {
            if warn {
                tracing::warn!(
                    "{n_shared} inputs are named {:?}; {} is reported as {with_hash}",
                    r.uid,
                    r.source.display()
                );
            }
            uids.push(with_hash);
        } else {
            uids.push(r.uid.clone());
        }
        ids.push(id);
    }
    // A last guard (a case-only difference between a UID and a hashed name cannot occur, but ids
    // must be unique whatever the input).
    (names::assign_unique(&ids), uids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stems_and_formats() {
        assert_eq!(stem_uid(Path::new("/a/1.2.3.mhd")), "1.2.3");
        assert_eq!(stem_uid(Path::new("case.NII.GZ")), "case");
        // A name that is only an extension is kept whole, as the loader records it.
        assert_eq!(stem_uid(Path::new("/a/.nii")), ".nii");
        assert_eq!(
            Format::from_file_name(Path::new("x.nii.gz")),
            Some(Format::Nifti)
        );
        assert_eq!(
            Format::from_file_name(Path::new("x.mha")),
            Some(Format::MetaImage)
        );
        assert_eq!(Format::from_file_name(Path::new("x.dcm")), None);
    }

    #[test]
    fn manifest_comments_and_relative_paths() {
        let dir = tempfile::tempdir().expect("tempdir");
        let m = dir.path().join("list.txt");
        std::fs::write(&m, "# scans\na.nii.gz\n\n  /abs/b.mhd  # second\n").expect("write");
        let paths = read_manifest(&m).expect("manifest");
        assert_eq!(
            paths,
            vec![dir.path().join("a.nii.gz"), PathBuf::from("/abs/b.mhd")]
        );
    }

    #[test]
    fn missing_inputs_fail_and_ids_are_unique_and_sorted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = dir.path().join("../../evil.nii");
        let b = dir.path().join("missing");
        let items = discover(&[b.clone(), a.clone(), a], &[], SeriesPolicy::All);
        assert_eq!(items.len(), 2, "{items:?}");
        for it in &items {
            assert!(names::is_safe_component(&it.id));
        }
        assert!(items.iter().any(|i| i.uid == "evil"));
        assert!(items.iter().all(
            |i| matches!(&i.plan, Plan::Fail { reason } if reason.contains("cannot read input"))
        ));
    }

    fn series(uid: &str, thickness: f64, kernel: &str, n: usize) -> Raw {
        let facts = speck_volume::dicom::SeriesInfo {
            series_uid: uid.into(),
            modality: Some("CT".into()),
            description: None,
            n_images: n,
            rows_cols: (512, 512),
            files: Vec::new(),
            study_uid: Some("1.2".into()),
            patient_id: Some("P".into()),
            frame_of_reference_uid: Some("1.9".into()),
            sop_class_uid: Some("1.2.840.10008.5.1.4.1.1.2".into()),
            image_type: vec!["ORIGINAL".into(), "PRIMARY".into(), "AXIAL".into()],
            convolution_kernel: Some(kernel.into()),
            slice_thickness_mm: Some(thickness),
            slice_spacing_mm: Some(thickness),
            orientation: speck_volume::dicom::Orientation::Axial,
        };
        Raw {
            series: Some(uid.into()),
            patient_id: facts.patient_id.clone(),
            study_uid: facts.study_uid.clone(),
            facts: Some(Box::new(facts)),
            ..Raw::new(
                Path::new("/in"),
                Path::new("/in"),
                uid.into(),
                Plan::Scan {
                    format: Format::Dicom,
                    path: PathBuf::from("/in"),
                    series_uid: Some(uid.into()),
                    size: None,
                    files: Vec::new(),
                },
            )
        }
    }

    #[test]
    fn kernels_rank_lung_then_sharp_then_unknown_then_soft() {
        let class = |k: &str| kernel_sharpness(Some(k)).0;
        for k in [
            "LUNG", "B70f", "Br64", "I70f", "FC52", "L", "BONEPLUS", "YC",
        ] {
            assert!(class(k) >= 2, "{k}");
        }
        for k in ["STANDARD", "SOFT", "B30f", "Br40", "FC08", "B", "YA"] {
            assert_eq!(class(k), 0, "{k}");
        }
        assert_eq!(kernel_sharpness(None).0, 1);
        assert_eq!(class("XYZ"), 1);
        assert!(kernel_sharpness(Some("B70f")) > kernel_sharpness(Some("B60f")));
    }

    #[test]
    fn the_best_policy_keeps_the_thinnest_then_the_sharpest_and_says_why() {
        // Thickness first: the thin soft series beats the thick lung one.
        let mut raws = vec![
            series("1.1", 5.0, "B70f", 60),
            series("1.2", 1.0, "B30f", 300),
            series("1.3", 1.0, "B70f", 300),
        ];
        apply_policy(&mut raws, SeriesPolicy::Best);
        assert!(matches!(raws[2].plan, Plan::Scan { .. }));
        let choice = raws[2].choice.clone().expect("choice");
        assert_eq!(choice.others, vec!["1.1".to_string(), "1.2".to_string()]);
        assert!(
            choice
                .reason
                .contains("a sharper kernel (B70f, sharp, against B30f, soft tissue)"),
            "{choice:?}"
        );
        for (i, why) in [
            (0, "thinner slices (1.00 mm against 5.00 mm)"),
            (1, "sharper kernel"),
        ] {
            match &raws[i].plan {
                Plan::Skip {
                    reason: SkipReason::NotChosen { chosen, why: w },
                } => {
                    assert_eq!(chosen, "1.3");
                    assert!(w.contains(why), "{w}");
                }
                other => panic!("{other:?}"),
            }
        }
        // All: every series is scanned, each knowing the others.
        let mut raws = vec![
            series("1.1", 5.0, "B70f", 60),
            series("1.3", 1.0, "B70f", 300),
        ];
        apply_policy(&mut raws, SeriesPolicy::All);
        assert!(raws.iter().all(|r| matches!(r.plan, Plan::Scan { .. })));
        assert!(raws[1]
            .choice
            .as_ref()
            .is_some_and(|c| c.policy == "all" && c.reason.contains("rank 1 of 2")));
        // A series alone in its acquisition records no choice.
        let mut raws = vec![series("1.1", 5.0, "B70f", 60)];
        apply_policy(&mut raws, SeriesPolicy::Best);
        assert!(raws[0].choice.is_none());
    }

    #[test]
    fn scouts_captures_and_other_modalities_are_skipped() {
        let base = series("1.1", 1.0, "B70f", 100).facts.expect("facts");
        assert_eq!(classify_series(&base), None);
        let mut s = (*base).clone();
        s.image_type.push("LOCALIZER".into());
        assert_eq!(
            classify_series(&s),
            Some(SkipReason::Localizer { n_images: 100 })
        );
        let mut s = (*base).clone();
        s.sop_class_uid = Some("1.2.840.10008.5.1.4.1.1.7".into());
        assert_eq!(
            classify_series(&s),
            Some(SkipReason::SecondaryCapture { n_images: 100 })
        );
        let mut s = (*base).clone();
        s.modality = Some("SEG".into());
        assert_eq!(classify_series(&s).map(|r| r.kind()), Some("modality"));
    }
}
