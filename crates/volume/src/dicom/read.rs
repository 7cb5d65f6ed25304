//! `read_series`: choose a stack, plan its grid, decode its frames in parallel, build the volume.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use ndarray::{Array2, Array3, ArrayViewMut2, Axis};
use rayon::prelude::*;

use super::catalog::{iop_distance, list_files, normal_of, Catalog, Stack, AXIAL_MIN_NZ};
use super::decode::PixelSource;
use super::header::{read_header, sniff};
use super::plan::{plan, Plan, SliceGeom};
use crate::probe::DICOM_BYTES_PER_VOXEL;
use crate::sample::{trilinear, Border};
use crate::{
    Direction, Format, Geometry, Limits, LoadOptions, Probe, Provenance, SliceSource, Spacing,
    Volume, VolumeError, WorldPoint,
};

/// HU given to voxels that a tilt correction shifts in from outside the field of view.
const OUTSIDE_HU: f32 = -1024.0;

/// Why a file is not read as DICOM.
pub(crate) const NOT_DICOM: &str =
    "not a DICOM file (no \"DICM\" magic at byte 128 or 0, and not a \
     bare data set starting with a group 0008 element)";

/// Stacks of one series whose orientation differs by less than this from the chosen stack (but
/// more than [`super::catalog::SAME_ORIENTATION`]), or whose size differs, and that sit among the
/// chosen stack's slices, are inconsistent slices rather than a separate stack.
const NEAR_ORIENTATION: f64 = 0.05;

pub(crate) fn read_series(path: &Path, options: &LoadOptions) -> Result<Volume, VolumeError> {
    let (catalog, must_contain) = catalog_of(path)?;
    from_catalog(&catalog, options, path, must_contain.as_deref())
}

/// The headers [`read_series`] reads for `path`, and the slice the stack must hold when `path` is
/// one slice of a series.
fn catalog_of(path: &Path) -> Result<(Catalog, Option<PathBuf>), VolumeError> {
    let meta = std::fs::metadata(path).map_err(|e| VolumeError::io(path, e))?;
    if meta.is_dir() {
        return Ok((Catalog::build(&list_files(path, true)?, false)?, None));
    }
    if sniff(path).is_none() {
        return Err(VolumeError::malformed(path, NOT_DICOM));
    }
    let header = read_header(path)?.ok_or_else(|| VolumeError::NotFound {
        path: path.to_path_buf(),
        reason: "this DICOM file holds no image".into(),
    })?;
    if header.frames.len() > 1 || header.unsupported.is_some() {
        Ok((Catalog::build(&[path.to_path_buf()], false)?, None))
    } else {
        // One slice of a series: read the series it belongs to from its folder.
        let parent = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or_else(|| Path::new("."));
        Ok((
            Catalog::build(&list_files(parent, false)?, true)?,
            Some(path.to_path_buf()),
        ))
    }
}

/// The stack [`read_series`] would load from `path` (with default options), from headers only.
pub(crate) fn probe_series(path: &Path) -> Result<Probe, VolumeError> {
    let (catalog, must_contain) = catalog_of(path)?;
    if catalog.stacks.is_empty() {
        return Err(no_image(path));
    }
    let (chosen, _) = select(
        &catalog,
        &LoadOptions::default(),
        path,
        must_contain.as_deref(),
    )?;
    let s = &catalog.stacks[chosen];
    Ok(Probe {
        format: Format::Dicom,
        series_uid: Some(s.series_uid.clone()),
        shape_zyx: [s.frames.len() as u64, u64::from(s.rows), u64::from(s.cols)],
        spacing: None,
        bytes_per_voxel: DICOM_BYTES_PER_VOXEL,
    })
}

fn no_image(path: &Path) -> VolumeError {
    VolumeError::NotFound {
        path: path.to_path_buf(),
        reason: "no DICOM image found".into(),
    }
}

pub(crate) fn read_series_files(
    path: &Path,
    files: &[PathBuf],
    options: &LoadOptions,
) -> Result<Volume, VolumeError> {
    from_catalog(&Catalog::build(files, false)?, options, path, None)
}

/// Choose a stack of `catalog`, check it and read it; `path` names the input in messages.
fn from_catalog(
    catalog: &Catalog,
    options: &LoadOptions,
    path: &Path,
    must_contain: Option<&Path>,
) -> Result<Volume, VolumeError> {
    if catalog.stacks.is_empty() {
        return Err(no_image(path));
    }
    let (chosen, mut warnings) = select(catalog, options, path, must_contain)?;
    check_consistency(catalog, chosen)?;
    let mut volume = assemble(catalog, chosen, options, path)?;
    let p = volume.provenance_mut();
    warnings.append(&mut p.warnings);
    p.warnings = warnings;
    p.other_series = catalog
        .stacks
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != chosen)
        .map(|(_, s)| catalog.summary(s))
        .collect();
    for w in &p.warnings {
        tracing::warn!(path = %path.display(), "{w}");
    }
    Ok(volume)
}

pub(crate) fn read_pixels(
    path: &Path,
    limits: &Limits,
) -> Result<ndarray::Array3<f64>, VolumeError> {
    if sniff(path).is_none() {
        return Err(VolumeError::malformed(path, NOT_DICOM));
    }
    let h = read_header(path)?
        .ok_or_else(|| VolumeError::malformed(path, "this DICOM file holds no image"))?;
    let (n, rows, cols) = (h.n_frames as usize, h.rows as usize, h.cols as usize);
    let options = LoadOptions::new().limits(*limits);
    check_limits(&options, path, [n, rows, cols], 0, false)?;
    let bytes = (n as u64)
        .saturating_mul(rows as u64)
        .saturating_mul(cols as u64)
        .saturating_mul(8);
    if bytes > limits.max_bytes {
        return Err(VolumeError::TooLarge {
            path: path.to_path_buf(),
            reason: format!("{bytes} bytes of f64 values"),
            limit: format!("{} bytes", limits.max_bytes),
        });
    }
    let source = PixelSource::open(&h)?;
    let mut out = ndarray::Array3::<f64>::zeros((n, rows, cols));
    out.axis_iter_mut(Axis(0))
        .into_par_iter()
        .enumerate()
        .try_for_each(|(i, mut frame)| {
            let g = h.frames.get(i).or(h.frames.first());
            let (slope, intercept) = g.map_or((1.0, 0.0), |g| (g.slope, g.intercept));
            let raw = source.frame_values(path, i as u32)?;
            for (o, &v) in frame.iter_mut().zip(raw.iter()) {
                *o = f64::from(v) * slope + intercept;
            }
            Ok::<(), VolumeError>(())
        })?;
    Ok(out)
}

fn has_geometry(catalog: &Catalog, s: &Stack) -> bool {
    s.unsupported.is_none()
        && s.frames.iter().all(|r| {
            let f = &catalog.files[r.file].frames[r.frame];
            f.ipp.is_some() && f.iop.is_some()
        })
}

/// The index of the stack to load, and warnings about the choice.
fn select(
    catalog: &Catalog,
    options: &LoadOptions,
    path: &Path,
    must_contain: Option<&Path>,
) -> Result<(usize, Vec<String>), VolumeError> {
    let stacks = &catalog.stacks;
    let largest = |filter: &dyn Fn(&Stack) -> bool| {
        stacks
            .iter()
            .enumerate()
            .filter(|(_, s)| filter(s))
            .max_by(|(ia, a), (ib, b)| a.frames.len().cmp(&b.frames.len()).then(ib.cmp(ia)))
            .map(|(i, _)| i)
    };
    let contains = |s: &Stack| match must_contain {
        Some(p) => s.frames.iter().any(|r| catalog.files[r.file].path == p),
        None => true,
    };
    let unsupported_error = |s: &Stack| {
        let file = catalog
            .first_header(s)
            .map(|h| h.path.clone())
            .unwrap_or_else(|| path.to_path_buf());
        VolumeError::unsupported(file, s.unsupported.clone().unwrap_or_default())
    };
    if let Some(uid) = &options.series_uid {
        let pick = largest(&|s| &s.series_uid == uid && has_geometry(catalog, s))
            .or_else(|| largest(&|s| &s.series_uid == uid));
        return match pick {
            Some(i) if stacks[i].unsupported.is_some() => Err(unsupported_error(&stacks[i])),
            Some(i) => Ok((i, Vec::new())),
            None => Err(VolumeError::NotFound {
                path: path.to_path_buf(),
                reason: format!(
                    "no series {uid}; found: {}",
                    stacks
                        .iter()
                        .map(|s| catalog.summary(s))
                        .collect::<Vec<_>>()
                        .join("; ")
                ),
            }),
        };
    }
    if must_contain.is_some() {
        // The user named one slice: load the stack it belongs to, whatever it is.
        return match largest(&|s| contains(s)) {
            Some(i) if stacks[i].unsupported.is_some() => Err(unsupported_error(&stacks[i])),
            Some(i) if has_geometry(catalog, &stacks[i]) => Ok((i, Vec::new())),
            _ => Err(VolumeError::unsupported(
                must_contain.unwrap_or(path),
                "image without ImagePositionPatient/ImageOrientationPatient: cannot place it in \
                 3-D",
            )),
        };
    }
    let axial_ct = |s: &Stack| {
        let ct = catalog
            .first_header(s)
            .and_then(|h| h.modality.as_deref())
            .is_some_and(|m| m.eq_ignore_ascii_case("CT"));
        ct && s
            .iop
            .is_some_and(|o| normal_of(&o)[2].abs() >= AXIAL_MIN_NZ)
    };
    if let Some(i) = largest(&|s| contains(s) && has_geometry(catalog, s) && axial_ct(s)) {
        return Ok((i, Vec::new()));
    }
    if let Some(i) = largest(&|s| contains(s) && has_geometry(catalog, s)) {
        let w = format!(
            "no axial CT series found; loaded the largest image stack instead: {}",
            catalog.summary(&stacks[i])
        );
        return Ok((i, vec![w]));
    }
    match largest(&|s| contains(s)) {
        Some(i) if stacks[i].unsupported.is_some() => Err(unsupported_error(&stacks[i])),
        Some(i) => {
            let s = &stacks[i];
            let bad = s
                .frames
                .iter()
                .map(|r| &catalog.files[r.file])
                .find(|h| h.frames.iter().any(|f| f.ipp.is_none() || f.iop.is_none()));
            Err(VolumeError::unsupported(
                bad.map(|h| h.path.clone())
                    .unwrap_or_else(|| path.to_path_buf()),
                "image without ImagePositionPatient/ImageOrientationPatient: cannot place it in \
                 3-D",
            ))
        }
        None => Err(VolumeError::NotFound {
            path: path.to_path_buf(),
            reason: "no DICOM image found".into(),
        }),
    }
}

/// Refuse a series where a few slices differ in size or (slightly) in orientation from the
/// stack they sit in.
fn check_consistency(catalog: &Catalog, chosen: usize) -> Result<(), VolumeError> {
    let main = &catalog.stacks[chosen];
    let Some(iop) = main.iop else { return Ok(()) };
    let normal = normal_of(&iop);
    let pos = |s: &Stack| -> Vec<f64> {
        s.frames
            .iter()
            .filter_map(|r| catalog.files[r.file].frames[r.frame].ipp)
            .map(|p| p[0] * normal[0] + p[1] * normal[1] + p[2] * normal[2])
            .collect()
    };
    let main_pos = pos(main);
    let lo = main_pos.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = main_pos.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let margin = if main_pos.len() > 1 {
        (hi - lo) / (main_pos.len() - 1) as f64
    } else {
        0.0
    };
    for (i, other) in catalog.stacks.iter().enumerate() {
        if i == chosen || other.series_uid != main.series_uid || other.unsupported.is_some() {
            continue;
        }
        let Some(oiop) = other.iop else { continue };
        if iop_distance(&iop, &oiop) >= NEAR_ORIENTATION || other.frames.len() > main.frames.len() {
            continue;
        }
        let inside = pos(other)
            .iter()
            .any(|&d| d >= lo - margin && d <= hi + margin);
        if !inside {
            continue;
        }
        let file = &catalog.files[other.frames[0].file].path;
        let what = if (other.rows, other.cols) != (main.rows, main.cols) {
            format!(
                "{}: image of {} rows x {} columns",
                file.display(),
                other.rows,
                other.cols
            )
        } else {
            format!("{}: ImageOrientationPatient {:?}", file.display(), oiop)
        };
        return Err(VolumeError::Series {
            series_uid: main.series_uid.clone(),
            reason: format!(
                "inconsistent slices: {what}, while the other {} slices of the stack have {} rows x \
                 {} columns and orientation {:?}",
                main.frames.len(),
                main.rows,
                main.cols,
                iop
            ),
        });
    }
    Ok(())
}

/// One sorted source frame: where its pixels are and how to rescale them.
struct Src {
    file: usize,
    frame: u32,
    slope: f64,
    intercept: f64,
}

fn assemble(
    catalog: &Catalog,
    chosen: usize,
    options: &LoadOptions,
    path: &Path,
) -> Result<Volume, VolumeError> {
    let stack = &catalog.stacks[chosen];
    let uid = stack.series_uid.clone();
    let series_err = |reason: String| VolumeError::Series {
        series_uid: uid.clone(),
        reason,
    };
    let first = catalog
        .first_header(stack)
        .ok_or_else(|| series_err("empty stack".into()))?;
    let iop = stack
        .iop
        .ok_or_else(|| VolumeError::malformed(&first.path, "no ImageOrientationPatient"))?;
    let label = |file: usize, frame: u32| {
        let h = &catalog.files[file];
        if h.frames.len() > 1 {
            format!("{} frame {}", h.path.display(), frame + 1)
        } else {
            h.path.display().to_string()
        }
    };
    let mut geoms = Vec::with_capacity(stack.frames.len());
    let mut pixel_spacing: Option<[f64; 2]> = None;
    for r in &stack.frames {
        let h = &catalog.files[r.file];
        let f = &h.frames[r.frame];
        let ipp = f
            .ipp
            .ok_or_else(|| VolumeError::malformed(&h.path, "no ImagePositionPatient"))?;
        let ps = f.pixel_spacing.ok_or_else(|| {
            VolumeError::malformed(&h.path, "no PixelSpacing: the pixel size is unknown")
        })?;
        if !(ps[0] > 0.0 && ps[1] > 0.0) {
            return Err(VolumeError::malformed(
                &h.path,
                format!("PixelSpacing {ps:?}"),
            ));
        }
        match pixel_spacing {
            None => pixel_spacing = Some(ps),
            Some(p0) => {
                if (0..2).any(|i| (ps[i] - p0[i]).abs() > 1e-4 * p0[i].max(1.0)) {
                    return Err(series_err(format!(
                        "inconsistent PixelSpacing: {} has {ps:?} mm, other slices {p0:?} mm",
                        label(r.file, f.frame)
                    )));
                }
            }
        }
        geoms.push(SliceGeom {
            ipp,
            identity: h.sop_uid.clone().map(|u| (u, f.frame)),
            label: label(r.file, f.frame),
        });
    }
    let pixel_spacing = pixel_spacing.ok_or_else(|| series_err("empty stack".into()))?;
    let fallback_z = first.slice_thickness.filter(|t| *t > 0.0).unwrap_or(1.0);
    let plan = plan(iop, &geoms, fallback_z).map_err(|e| series_err(e.0))?;

    let (rows, cols) = (stack.rows as usize, stack.cols as usize);
    let n_out = plan.out.len();
    let n_src = plan.order.len();
    check_limits(options, path, [n_out, rows, cols], n_src, plan.resampled)?;

    let [row, col, normal] = plan.axes;
    let direction = Direction::from_axes(row, col, normal)?;
    // PixelSpacing is (between rows, between columns) = (y, x).
    let spacing = Spacing::new(pixel_spacing[1], pixel_spacing[0], plan.spacing_z_mm)?;
    let origin = WorldPoint::new(plan.origin[0], plan.origin[1], plan.origin[2]);
    let geometry = Geometry::new(spacing, origin, direction);

    let srcs: Vec<Src> = plan
        .order
        .iter()
        .map(|&k| {
            let r = stack.frames[k];
            let f = &catalog.files[r.file].frames[r.frame];
            Src {
                file: r.file,
                frame: f.frame,
                slope: f.slope,
                intercept: f.intercept,
            }
        })
        .collect();
    let pixels = Pixels::open_multiframe(catalog, &srcs)?;

    let mut voxels = Array3::<i16>::zeros((n_out, rows, cols));
    let clamped: usize = if plan.resampled {
        let hu: Vec<Array2<f32>> = srcs
            .par_iter()
            .map(|s| pixels.hu_f32(catalog, s, rows, cols))
            .collect::<Result<_, _>>()?;
        voxels
            .axis_iter_mut(Axis(0))
            .into_par_iter()
            .enumerate()
            .map(|(k, out)| resample_slice(&plan, k, &hu, spacing, out))
            .sum()
    } else {
        voxels
            .axis_iter_mut(Axis(0))
            .into_par_iter()
            .zip(srcs.par_iter())
            .map(|(mut out, s)| -> Result<usize, VolumeError> {
                let mut clamped = 0;
                let integer_intercept =
                    (s.slope == 1.0 && s.intercept.fract() == 0.0 && s.intercept.abs() <= 1e9)
                        .then_some(s.intercept as i64);
                let h = &catalog.files[s.file];
                let out = out.as_slice_mut().ok_or_else(|| {
                    VolumeError::malformed(&h.path, "internal: output slice is not contiguous")
                })?;
                let write = |src: &PixelSource, out: &mut [i16], clamped: &mut usize| {
                    match integer_intercept {
                        // The common case (slope 1, integer intercept): exact integer arithmetic.
                        Some(b) => src.frame_into(&h.path, s.frame, out, |o, v| {
                            let hu = i64::from(v) + b;
                            let c = hu.clamp(i64::from(i16::MIN), i64::from(i16::MAX));
                            *clamped += usize::from(c != hu);
                            *o = c as i16;
                        }),
                        None => src.frame_into(&h.path, s.frame, out, |o, v| {
                            let (hu, c) = to_i16(f64::from(v) * s.slope + s.intercept);
                            *o = hu;
                            *clamped += usize::from(c);
                        }),
                    }
                };
                match pixels.shared.get(&s.file) {
                    Some(p) => write(p, out, &mut clamped)?,
                    None => write(&PixelSource::open(h)?, out, &mut clamped)?,
                }
                Ok(clamped)
            })
            .try_reduce(|| 0, |a, b| Ok(a + b))?
    };

    let mut warnings = plan.warnings.clone();
    if clamped > 0 {
        warnings.push(format!(
            "{clamped} voxels were outside the i16 range after RescaleSlope/Intercept and were clamped"
        ));
    }
    let slices = plan
        .out
        .iter()
        .map(|o| match o.exact() {
            Some(k) => {
                let h = &catalog.files[srcs[k].file];
                SliceSource {
                    instance_number: h.instance_number,
                    sop_instance_uid: h.sop_uid.clone(),
                }
            }
            None => SliceSource::default(),
        })
        .collect();
    let provenance = Provenance {
        source: Some(path.to_path_buf()),
        patient_id: first.patient_id.clone(),
        study_uid: first.study_uid.clone(),
        series_uid: Some(stack.series_uid.clone()),
        slices,
        warnings,
        other_series: Vec::new(),
    };
    Volume::new(voxels, geometry, provenance)
}

/// Round to the nearest integer and clamp to i16; the flag says whether it was clamped.
fn to_i16(v: f64) -> (i16, bool) {
    let r = v.round();
    if r < f64::from(i16::MIN) {
        (i16::MIN, true)
    } else if r > f64::from(i16::MAX) {
        (i16::MAX, true)
    } else if r.is_nan() {
        (0, true)
    } else {
        (r as i16, false)
    }
}

fn check_limits(
    options: &LoadOptions,
    path: &Path,
    shape: [usize; 3],
    n_src: usize,
    resampled: bool,
) -> Result<(), VolumeError> {
    let l = options.limits;
    let too_large = |reason: String, limit: String| VolumeError::TooLarge {
        path: path.to_path_buf(),
        reason,
        limit,
    };
    for (axis, n) in ["z", "y", "x"].iter().zip(shape) {
        if n as u64 > l.max_dim {
            return Err(too_large(
                format!("{n} voxels along {axis}"),
                format!("{} per axis", l.max_dim),
            ));
        }
    }
    let plane = (shape[1] as u64) * (shape[2] as u64);
    let voxels = (shape[0] as u64).saturating_mul(plane);
    if voxels > l.max_voxels {
        return Err(too_large(
            format!(
                "{} x {} x {} = {voxels} voxels",
                shape[0], shape[1], shape[2]
            ),
            format!("{} voxels", l.max_voxels),
        ));
    }
    // Output i16, plus f32 copies of all sources when resampling, plus per-thread decode buffers.
    let threads = rayon::current_num_threads() as u64;
    let sources = if resampled {
        (n_src as u64).saturating_mul(plane).saturating_mul(4)
    } else {
        0
    };
    let bytes = voxels
        .saturating_mul(2)
        .saturating_add(sources)
        .saturating_add(threads.saturating_mul(plane).saturating_mul(12));
    if bytes > l.max_bytes {
        return Err(too_large(
            format!("decoding needs about {bytes} bytes"),
            format!("{} bytes", l.max_bytes),
        ));
    }
    Ok(())
}

/// Multi-frame files opened once and shared; single-frame files are opened by each task.
struct Pixels {
    shared: HashMap<usize, PixelSource>,
}

impl Pixels {
    fn open_multiframe(catalog: &Catalog, srcs: &[Src]) -> Result<Self, VolumeError> {
        let mut multi: Vec<usize> = srcs
            .iter()
            .map(|s| s.file)
            .filter(|&f| catalog.files[f].frames.len() > 1)
            .collect();
        multi.sort_unstable();
        multi.dedup();
        let shared = multi
            .into_iter()
            .map(|f| Ok((f, PixelSource::open(&catalog.files[f])?)))
            .collect::<Result<_, VolumeError>>()?;
        Ok(Self { shared })
    }

    fn raw(&self, catalog: &Catalog, s: &Src) -> Result<Vec<i32>, VolumeError> {
        let h = &catalog.files[s.file];
        match self.shared.get(&s.file) {
            Some(p) => p.frame_values(&h.path, s.frame),
            None => PixelSource::open(h)?.frame_values(&h.path, s.frame),
        }
    }

    fn hu_f32(
        &self,
        catalog: &Catalog,
        s: &Src,
        rows: usize,
        cols: usize,
    ) -> Result<Array2<f32>, VolumeError> {
        let raw = self.raw(catalog, s)?;
        let hu: Vec<f32> = raw
            .iter()
            .map(|&v| (f64::from(v) * s.slope + s.intercept) as f32)
            .collect();
        Array2::from_shape_vec((rows, cols), hu)
            .map_err(|e| VolumeError::malformed(&catalog.files[s.file].path, e.to_string()))
    }
}

/// Bilinear sample of `img` at (row `y`, column `x`); outside the image: [`OUTSIDE_HU`].
fn bilinear(img: &Array2<f32>, y: f64, x: f64) -> f32 {
    let plane = img.view().insert_axis(Axis(0));
    trilinear(plane, [0.0, y, x], Border::Constant(OUTSIDE_HU))
}

/// Fill output slice `k` from its one or two sources; returns the number of clamped voxels.
fn resample_slice(
    plan: &Plan,
    k: usize,
    hu: &[Array2<f32>],
    spacing: Spacing,
    mut out: ArrayViewMut2<'_, i16>,
) -> usize {
    let o = plan.out[k];
    let sample = |src: usize, y: usize, x: usize| -> f32 {
        let [u, v] = plan.shift_mm[src];
        if u == 0.0 && v == 0.0 {
            hu[src][[y, x]]
        } else {
            // The source slice's pixel (x', y') lies at x' = x - u/sx (u along the row cosine).
            bilinear(
                &hu[src],
                y as f64 - v / spacing.y_mm(),
                x as f64 - u / spacing.x_mm(),
            )
        }
    };
    let t = o.t as f32;
    let mut clamped = 0;
    for ((y, x), v) in out.indexed_iter_mut() {
        let value = if o.lo == o.hi || t == 0.0 {
            sample(o.lo, y, x)
        } else {
            sample(o.lo, y, x) * (1.0 - t) + sample(o.hi, y, x) * t
        };
        let (h, c) = to_i16(f64::from(value));
        *v = h;
        clamped += usize::from(c);
    }
    clamped
}
