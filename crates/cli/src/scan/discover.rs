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
//! Anything that cannot become a scan (a missing path, a folder holding no image, a non-CT series)
//! becomes an [`Item`] whose plan is [`Plan::Fail`], so it is sharded, counted and reported like
//! any failed scan. Item ids are unique safe file names (see [`super::names`]), assigned after
//! sorting, so every shard of a job array computes the same ids.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use super::header;
use super::names;

/// How to read a scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// A DICOM series.
    Dicom,
    /// NIfTI-1/2, `.nii` or `.nii.gz`.
    Nifti,
    /// MetaImage, `.mhd` (+ data file) or `.mha`.
    MetaImage,
}

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
        /// Voxels and stored bytes per voxel from the header, when it could be read.
        size: Option<header::HeaderSize>,
        /// For DICOM: the files of the series (for its [`super::identity::InputIdentity`]).
        files: Vec<PathBuf>,
    },
    /// The input cannot be scanned; `reason` goes to `errors.csv`.
    Fail {
        /// Why, in words a user can act on.
        reason: String,
    },
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
    /// What to do.
    pub plan: Plan,
}

/// Maximum folder depth searched under one input.
const MAX_DEPTH: usize = 64;

/// Lowercased file name.
fn lower_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default()
}

/// The format a file name says it has, for image formats read by extension.
pub fn format_of(p: &Path) -> Option<Format> {
    let n = lower_name(p);
    if n.ends_with(".nii") || n.ends_with(".nii.gz") {
        Some(Format::Nifti)
    } else if n.ends_with(".mhd") || n.ends_with(".mha") {
        Some(Format::MetaImage)
    } else {
        None
    }
}

/// True for a manifest's file name (`.txt`, `.lst`, `.list`, `.manifest`).
pub fn is_manifest(p: &Path) -> bool {
    let n = lower_name(p);
    [".txt", ".lst", ".list", ".manifest"]
        .iter()
        .any(|e| n.ends_with(e))
}

/// Files that are never scans on their own (MetaImage data, checksums, our own outputs...).
fn is_ignorable(p: &Path) -> bool {
    let n = lower_name(p);
    n.starts_with('.')
        || n == "dicomdir"
        || [
            ".raw", ".zraw", ".img", ".csv", ".json", ".md", ".html", ".png", ".jpg", ".jpeg",
            ".md5", ".sha256", ".xml", ".pdf", ".log", ".ini", ".db", ".svg",
        ]
        .iter()
        .any(|e| n.ends_with(e))
}

/// The file stem without `.nii.gz`, `.nii`, `.mhd` or `.mha`.
pub fn image_stem(p: &Path) -> String {
    let name = p
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let lower = name.to_ascii_lowercase();
    for ext in [".nii.gz", ".nii", ".mhd", ".mha"] {
        if lower.ends_with(ext) {
            return name[..name.len() - ext.len()].to_string();
        }
    }
    name
}

/// A raw (unsorted, id-less) item.
struct Raw {
    uid: String,
    input: PathBuf,
    source: PathBuf,
    series: Option<String>,
    plan: Plan,
}

fn file_item(input: &Path, path: &Path, format: Format) -> Raw {
    let size = match format {
        Format::Nifti => header::nifti(path),
        Format::MetaImage => header::metaimage(path),
        Format::Dicom => Err(std::io::Error::other("not read here")),
    };
    let size = match size {
        Ok(s) => Some(s),
        Err(e) => {
            // The loader gives the authoritative error; this is only the estimate failing.
            tracing::debug!("{}: header not read for the estimate: {e}", path.display());
            None
        }
    };
    Raw {
        uid: image_stem(path),
        input: input.to_path_buf(),
        source: path.to_path_buf(),
        series: None,
        plan: Plan::Scan {
            format,
            path: path.to_path_buf(),
            series_uid: None,
            size,
            files: Vec::new(),
        },
    }
}

fn fail(input: &Path, source: &Path, uid: String, series: Option<String>, reason: String) -> Raw {
    Raw {
        uid,
        input: input.to_path_buf(),
        source: source.to_path_buf(),
        series,
        plan: Plan::Fail { reason },
    }
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

/// Items for the DICOM series under `path`; returns the files those series hold (`None` when the
/// listing itself failed, which is then recorded).
fn dicom_items(
    input: &Path,
    path: &Path,
    out: &mut Vec<Raw>,
    quiet_if_none: bool,
) -> Option<BTreeSet<PathBuf>> {
    let mut used = BTreeSet::new();
    match speck_volume::dicom::scan_series(path) {
        Ok(series) => {
            if series.is_empty() && !quiet_if_none {
                out.push(fail(
                    input,
                    path,
                    image_stem(path),
                    None,
                    "no DICOM series, NIfTI or MetaImage file found".into(),
                ));
            }
            for s in series {
                used.extend(s.files.iter().cloned());
                let modality = s.modality.clone().unwrap_or_default();
                let dir = if path.is_file() {
                    Some(path.to_path_buf())
                } else {
                    common_dir(&s.files)
                };
                let dir = dir.unwrap_or_else(|| path.to_path_buf());
                if !modality.is_empty() && !modality.eq_ignore_ascii_case("CT") {
                    out.push(fail(
                        input,
                        &dir,
                        s.series_uid.clone(),
                        Some(s.series_uid.clone()),
                        format!(
                            "unsupported modality {modality:?} ({} images): Speck reads CT series",
                            s.n_images
                        ),
                    ));
                    continue;
                }
                let voxels = u64::from(s.rows_cols.0)
                    .saturating_mul(u64::from(s.rows_cols.1))
                    .saturating_mul(s.n_images as u64);
                out.push(Raw {
                    uid: s.series_uid.clone(),
                    input: input.to_path_buf(),
                    source: dir.clone(),
                    series: Some(s.series_uid.clone()),
                    plan: Plan::Scan {
                        format: Format::Dicom,
                        path: dir,
                        series_uid: Some(s.series_uid),
                        size: (voxels > 0).then_some(header::HeaderSize {
                            voxels,
                            bytes_per_voxel: 2,
                        }),
                        files: s.files,
                    },
                });
            }
        }
        Err(speck_volume::VolumeError::NotFound { .. }) if quiet_if_none => {}
        Err(e) => {
            out.push(fail(input, path, image_stem(path), None, e.to_string()));
            return None;
        }
    }
    Some(used)
}

/// Folders holding files that no scan uses (a study whose every file is corrupt, or not an image)
/// become failed items, so a broken study in an archive is reported rather than silently absent.
fn orphan_folders(
    input: &Path,
    others: &[PathBuf],
    used: &BTreeSet<PathBuf>,
    image_dirs: &BTreeSet<PathBuf>,
    out: &mut Vec<Raw>,
) {
    let mut by_dir: BTreeMap<PathBuf, (usize, bool)> = BTreeMap::new();
    for f in others {
        let dir = f.parent().unwrap_or(input).to_path_buf();
        let e = by_dir.entry(dir).or_insert((0, false));
        e.0 += 1;
        e.1 |= used.contains(f);
    }
    for (dir, (n, any_used)) in by_dir {
        if any_used || image_dirs.contains(&dir) {
            continue;
        }
        out.push(fail(
            input,
            &dir,
            image_stem(&dir),
            None,
            format!(
                "{n} file(s) here are not a readable image series (not DICOM, corrupt, or \
                 non-image DICOM objects); `speck info {}` names each file's problem",
                dir.display()
            ),
        ));
    }
}

/// Walk `dir`: image files by extension, and the other (possibly DICOM) files.
fn walk(
    skip: &[PathBuf],
    dir: &Path,
    depth: usize,
    images: &mut Vec<PathBuf>,
    other: &mut Vec<PathBuf>,
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
                walk(skip, &p, depth + 1, images, other, errs);
            }
        } else if meta.is_file() || meta.file_type().is_symlink() && p.is_file() {
            if format_of(&p).is_some() {
                images.push(p);
            } else if !is_ignorable(&p) && !is_manifest(&p) {
                other.push(p);
            }
        }
    }
}

fn discover_one(skip: &[PathBuf], input: &Path, out: &mut Vec<Raw>, in_manifest: bool) {
    let meta = match std::fs::metadata(input) {
        Ok(m) => m,
        Err(e) => {
            out.push(fail(
                input,
                input,
                image_stem(input),
                None,
                format!("cannot read input: {e}"),
            ));
            return;
        }
    };
    if meta.is_dir() {
        let (mut images, mut others, mut errs) = (Vec::new(), Vec::new(), Vec::new());
        walk(skip, input, 0, &mut images, &mut others, &mut errs);
        for (p, e) in errs {
            out.push(fail(input, &p, image_stem(&p), None, e));
        }
        let n_images = images.len();
        let image_dirs: BTreeSet<PathBuf> = images
            .iter()
            .filter_map(|p| p.parent().map(Path::to_path_buf))
            .collect();
        for p in images {
            let format = format_of(&p).unwrap_or(Format::Nifti);
            out.push(file_item(input, &p, format));
        }
        if !others.is_empty() {
            if let Some(used) = dicom_items(input, input, out, true) {
                orphan_folders(input, &others, &used, &image_dirs, out);
            }
        } else if n_images == 0 {
            out.push(fail(
                input,
                input,
                image_stem(input),
                None,
                "no DICOM series, NIfTI or MetaImage file found".into(),
            ));
        }
    } else if let Some(format) = format_of(input) {
        out.push(file_item(input, input, format));
    } else if is_manifest(input) {
        if in_manifest {
            out.push(fail(
                input,
                input,
                image_stem(input),
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
                image_stem(input),
                None,
                format!("cannot read manifest: {e}"),
            )),
        }
    } else {
        let _ = dicom_items(input, input, out, false);
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
/// scanned once), sorted, with unique safe ids. Folders in `skip` (the output folder, when it lies
/// inside an input) are not searched, so a run never scans its own heatmaps.
pub fn discover(inputs: &[PathBuf], skip: &[PathBuf]) -> Vec<Item> {
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
        };
        seen.entry(key).or_insert(r);
    }
    let mut raws: Vec<Raw> = seen.into_values().collect();
    raws.sort_by(|a, b| (&a.uid, &a.input, &a.series).cmp(&(&b.uid, &b.input, &b.series)));
    let (ids, uids) = stable_names(&raws);
    raws.into_iter()
        .zip(ids.into_iter().zip(uids))
        .map(|(r, (id, uid))| Item {
            id,
            uid,
            input: r.input,
            source: r.source,
            series: r.series,
            plan: r.plan,
        })
        .collect()
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
        Plan::Fail { .. } => &r.source,
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
fn stable_names(raws: &[Raw]) -> (Vec<String>, Vec<String>) {
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
            // One UID is one series, found more than once (copies, or one scan in several
            // formats): its annotations are keyed by that UID, so the column keeps it.
            tracing::warn!(
                "series {} is found {n_shared} times; {} is scanned as {id}",
                r.uid,
                r.source.display()
            );
            uids.push(r.uid.clone());
        } else if shared {
            tracing::warn!(
                "{n_shared} inputs are named {:?}; {} is reported as {with_hash}",
                r.uid,
                r.source.display()
            );
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
        assert_eq!(image_stem(Path::new("/a/1.2.3.mhd")), "1.2.3");
        assert_eq!(image_stem(Path::new("case.NII.GZ")), "case");
        assert_eq!(format_of(Path::new("x.nii.gz")), Some(Format::Nifti));
        assert_eq!(format_of(Path::new("x.mha")), Some(Format::MetaImage));
        assert_eq!(format_of(Path::new("x.dcm")), None);
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
        let items = discover(&[b.clone(), a.clone(), a], &[]);
        assert_eq!(items.len(), 2, "{items:?}");
        for it in &items {
            assert!(names::is_safe_component(&it.id));
        }
        assert!(items.iter().any(|i| i.uid == "evil"));
        assert!(items.iter().all(
            |i| matches!(&i.plan, Plan::Fail { reason } if reason.contains("cannot read input"))
        ));
    }
}
