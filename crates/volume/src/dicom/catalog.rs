//! Finding DICOM files, reading their headers in parallel, and grouping frames into stacks
//! (one SeriesInstanceUID, one orientation, one image size).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use super::header::{read_header_framed, read_object_framed, sniff, FileHeader};
use super::{DicomObjectInfo, Orientation, SeriesInfo, Survey, UnreadableFile};
use crate::VolumeError;

/// One frame of one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FrameRef {
    /// Index into [`Catalog::files`].
    pub file: usize,
    /// Index into that file's frames.
    pub frame: usize,
}

/// Frames of one series that share orientation and image size.
#[derive(Debug, Clone)]
pub(crate) struct Stack {
    pub series_uid: String,
    pub rows: u32,
    pub cols: u32,
    /// Orientation of the first frame (all others agree within [`SAME_ORIENTATION`]).
    pub iop: Option<[f64; 6]>,
    pub frames: Vec<FrameRef>,
    /// Why this stack cannot be read, if it cannot (classic multi-frame).
    pub unsupported: Option<String>,
}

/// Direction cosines closer than this (max abs difference) are the same orientation.
pub(crate) const SAME_ORIENTATION: f64 = 1e-3;

/// Every image file found and the stacks they form.
#[derive(Debug, Default)]
pub(crate) struct Catalog {
    pub files: Vec<FileHeader>,
    pub stacks: Vec<Stack>,
}

pub(crate) fn iop_distance(a: &[f64; 6], b: &[f64; 6]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

fn walk(dir: &Path, recursive: bool, out: &mut Vec<PathBuf>) -> Result<(), VolumeError> {
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        let entries = std::fs::read_dir(&d).map_err(|e| VolumeError::io(&d, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| VolumeError::io(&d, e))?;
            let path = entry.path();
            let kind = entry.file_type().map_err(|e| VolumeError::io(&path, e))?;
            if kind.is_dir() {
                if recursive {
                    pending.push(path);
                }
            } else if kind.is_file() || (kind.is_symlink() && path.is_file()) {
                // Symlinked folders are not followed (no cycles).
                out.push(path);
            }
        }
    }
    Ok(())
}

/// All candidate files under `path`: the file itself, or a folder's files (recursively), sorted.
pub(crate) fn list_files(path: &Path, recursive: bool) -> Result<Vec<PathBuf>, VolumeError> {
    let meta = std::fs::metadata(path).map_err(|e| VolumeError::io(path, e))?;
    let mut files = Vec::new();
    if meta.is_dir() {
        walk(path, recursive, &mut files)?;
    } else {
        files.push(path.to_path_buf());
    }
    files.sort();
    Ok(files)
}

impl Catalog {
    /// Read the headers of `files` in parallel (non-DICOM and non-image files are skipped) and
    /// group their frames into stacks.
    ///
    /// A file with the DICOM magic that cannot be parsed is an error, unless `lenient`, where it
    /// is skipped (used for the siblings of a file the user named, and by `scan_series`).
    pub(crate) fn build(files: &[PathBuf], lenient: bool) -> Result<Self, VolumeError> {
        let headers: Vec<Option<FileHeader>> = files
            .par_iter()
            .map(|p| {
                let Some(framing) = sniff(p) else {
                    tracing::debug!(path = %p.display(), "not DICOM (no DICM magic at byte 128 or 0, not a bare data set); skipped");
                    return Ok(None);
                };
                match read_header_framed(p, framing) {
                    Err(e) if lenient => {
                        tracing::warn!(path = %p.display(), "unreadable DICOM file skipped: {e}");
                        Ok(None)
                    }
                    other => other,
                }
            })
            .collect::<Result<_, VolumeError>>()?;
        Ok(Self::group(headers.into_iter().flatten().collect()))
    }

    /// Sort every file of `files` by what it is (image, DICOM object without an image, not DICOM,
    /// unreadable), reading headers in parallel; never fails as a whole.
    pub(crate) fn survey(files: &[PathBuf]) -> (Self, Survey) {
        enum Kind {
            Image(Box<FileHeader>),
            Object(DicomObjectInfo),
            NotDicom(PathBuf),
            Unreadable(UnreadableFile),
        }
        let unreadable = |p: &Path, e: VolumeError| {
            Kind::Unreadable(UnreadableFile {
                path: p.to_path_buf(),
                reason: e.to_string(),
            })
        };
        let kinds: Vec<Kind> = files
            .par_iter()
            .map(|p| {
                let Some(framing) = sniff(p) else {
                    return Kind::NotDicom(p.clone());
                };
                match read_header_framed(p, framing) {
                    Ok(Some(h)) => Kind::Image(Box::new(h)),
                    Ok(None) => match read_object_framed(p, framing) {
                        Ok(o) => Kind::Object(DicomObjectInfo {
                            path: p.clone(),
                            sop_class_uid: o.sop_class_uid,
                            modality: o.modality,
                            series_uid: o.series_uid,
                            study_uid: o.study_uid,
                            patient_id: o.patient_id,
                            description: o.description,
                        }),
                        Err(e) => unreadable(p, e),
                    },
                    Err(e) => unreadable(p, e),
                }
            })
            .collect();
        let mut headers = Vec::new();
        let mut survey = Survey::default();
        for k in kinds {
            match k {
                Kind::Image(h) => headers.push(*h),
                Kind::Object(o) => survey.objects.push(o),
                Kind::NotDicom(p) => survey.not_dicom.push(p),
                Kind::Unreadable(u) => survey.unreadable.push(u),
            }
        }
        let catalog = Self::group(headers);
        survey.series = catalog.stacks.iter().map(|s| catalog.info(s)).collect();
        (catalog, survey)
    }

    /// Group the frames of image files into stacks, in one pass: each frame is compared only with
    /// the stacks of its own series and image size (a hash lookup), so a flat export of thousands
    /// of series groups in time linear in its files.
    fn group(files: Vec<FileHeader>) -> Self {
        let mut stacks: Vec<Stack> = Vec::new();
        // (SeriesInstanceUID, rows, columns) -> the supported stacks with them, oldest first.
        let mut by_key: HashMap<(&str, u32, u32), Vec<usize>> = HashMap::new();
        for (fi, h) in files.iter().enumerate() {
            if let Some(reason) = &h.unsupported {
                stacks.push(Stack {
                    series_uid: h.series_uid.clone(),
                    rows: h.rows,
                    cols: h.cols,
                    iop: h.frames.first().and_then(|f| f.iop),
                    frames: vec![FrameRef { file: fi, frame: 0 }],
                    unsupported: Some(reason.clone()),
                });
                continue;
            }
            let candidates = by_key
                .entry((h.series_uid.as_str(), h.rows, h.cols))
                .or_default();
            for (k, f) in h.frames.iter().enumerate() {
                let r = FrameRef { file: fi, frame: k };
                let found = candidates
                    .iter()
                    .copied()
                    .find(|&i| match (&stacks[i].iop, &f.iop) {
                        (Some(a), Some(b)) => iop_distance(a, b) < SAME_ORIENTATION,
                        (None, None) => true,
                        _ => false,
                    });
                match found {
                    Some(i) => stacks[i].frames.push(r),
                    None => {
                        candidates.push(stacks.len());
                        stacks.push(Stack {
                            series_uid: h.series_uid.clone(),
                            rows: h.rows,
                            cols: h.cols,
                            iop: f.iop,
                            frames: vec![r],
                            unsupported: None,
                        });
                    }
                }
            }
        }
        Self { files, stacks }
    }

    /// The header of the file of the first frame of `stack`.
    pub(crate) fn first_header(&self, stack: &Stack) -> Option<&FileHeader> {
        stack.frames.first().map(|r| &self.files[r.file])
    }

    /// Public description of a stack.
    pub(crate) fn info(&self, stack: &Stack) -> SeriesInfo {
        let first = self.first_header(stack);
        let mut files: Vec<PathBuf> = Vec::new();
        for r in &stack.frames {
            let p = &self.files[r.file].path;
            if files.last() != Some(p) {
                files.push(p.clone());
            }
        }
        files.dedup();
        SeriesInfo {
            series_uid: stack.series_uid.clone(),
            modality: first.and_then(|h| h.modality.clone()),
            description: first.and_then(|h| h.description.clone()),
            n_images: stack.frames.len(),
            rows_cols: (stack.rows, stack.cols),
            files,
            study_uid: first.and_then(|h| h.study_uid.clone()),
            patient_id: first.and_then(|h| h.patient_id.clone()),
            frame_of_reference_uid: first.and_then(|h| h.frame_of_reference_uid.clone()),
            sop_class_uid: first.and_then(|h| h.sop_class_uid.clone()),
            image_type: first.map(|h| h.image_type.clone()).unwrap_or_default(),
            convolution_kernel: first.and_then(|h| h.convolution_kernel.clone()),
            slice_thickness_mm: first.and_then(|h| h.slice_thickness),
            slice_spacing_mm: self.slice_spacing(stack),
            orientation: orientation_of(stack.iop),
        }
    }

    /// The median distance between neighbouring slice positions along the stack's normal, mm
    /// (`None` without an orientation or with fewer than two distinct positions).
    fn slice_spacing(&self, stack: &Stack) -> Option<f64> {
        let n = normal_of(&stack.iop?);
        let mut pos: Vec<f64> = stack
            .frames
            .iter()
            .filter_map(|r| {
                let ipp = self.files[r.file].frames.get(r.frame)?.ipp?;
                Some(ipp[0] * n[0] + ipp[1] * n[1] + ipp[2] * n[2])
            })
            .collect();
        pos.sort_by(f64::total_cmp);
        let mut gaps: Vec<f64> = pos
            .windows(2)
            .map(|w| w[1] - w[0])
            .filter(|g| *g > 1e-4)
            .collect();
        if gaps.is_empty() {
            return None;
        }
        gaps.sort_by(f64::total_cmp);
        Some(gaps[gaps.len() / 2])
    }

    /// One line describing a stack, for `Provenance::other_series`.
    pub(crate) fn summary(&self, stack: &Stack) -> String {
        let i = self.info(stack);
        let orient = match i.orientation {
            Orientation::Unknown => "no geometry",
            o => o.name(),
        };
        format!(
            "{} ({}, {:?}, {} images {}x{}, {orient})",
            i.series_uid,
            i.modality.as_deref().unwrap_or("?"),
            i.description.as_deref().unwrap_or(""),
            i.n_images,
            i.rows_cols.1,
            i.rows_cols.0
        )
    }
}

/// The orientation of slices of orientation `iop`.
fn orientation_of(iop: Option<[f64; 6]>) -> Orientation {
    match iop.map(|o| normal_of(&o)) {
        Some(n) if n[2].abs() >= AXIAL_MIN_NZ => Orientation::Axial,
        Some(n) if n[1].abs() >= AXIAL_MIN_NZ => Orientation::Coronal,
        Some(n) if n[0].abs() >= AXIAL_MIN_NZ => Orientation::Sagittal,
        Some(_) => Orientation::Oblique,
        None => Orientation::Unknown,
    }
}

/// |normal . z| at least this is "axial" (within 45 degrees).
pub(crate) const AXIAL_MIN_NZ: f64 = std::f64::consts::FRAC_1_SQRT_2;

/// The unit slice normal of an orientation (row x column), or zeros when degenerate.
pub(crate) fn normal_of(iop: &[f64; 6]) -> [f64; 3] {
    let (r, c) = ([iop[0], iop[1], iop[2]], [iop[3], iop[4], iop[5]]);
    let n = [
        r[1] * c[2] - r[2] * c[1],
        r[2] * c[0] - r[0] * c[2],
        r[0] * c[1] - r[1] * c[0],
    ];
    let len = (n[0] * n[0] + n[1] * n[1] + n[2] * n[2]).sqrt();
    if len > 1e-9 {
        [n[0] / len, n[1] / len, n[2] / len]
    } else {
        [0.0; 3]
    }
}
