//! From the positions of a stack's slices to a regular grid: sorting along the slice normal,
//! duplicates, gaps (missing slices, irregular spacing) and gantry tilt.
//!
//! Pure geometry, no pixels: the result says, for every output slice, which sorted source slices
//! to blend and by how much, and by how many pixels each source slice must be shifted in-plane.

/// Where one source slice sits, as far as the geometry is concerned.
#[derive(Debug, Clone)]
pub(crate) struct SliceGeom {
    /// ImagePositionPatient (LPS mm).
    pub ipp: [f64; 3],
    /// An identity used to recognise the same image present twice (SOPInstanceUID + frame).
    pub identity: Option<(String, u32)>,
    /// A name for messages (the file, plus the frame for multi-frame files).
    pub label: String,
}

/// One output slice: `(1 - t) * source[lo] + t * source[hi]` (indices into the sorted sources).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct OutSlice {
    pub lo: usize,
    pub hi: usize,
    pub t: f64,
}

impl OutSlice {
    /// The single source slice this output slice is a copy of, if it is one.
    pub fn exact(&self) -> Option<usize> {
        if self.t <= 1e-6 {
            Some(self.lo)
        } else if self.t >= 1.0 - 1e-6 {
            Some(self.hi)
        } else {
            None
        }
    }
}

/// The regular grid chosen for a stack and how to fill it.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    /// Source slice indices (into the input) in sorted order, duplicates removed.
    pub order: Vec<usize>,
    /// Row cosine, column cosine and slice normal (unit vectors, LPS).
    pub axes: [[f64; 3]; 3],
    /// Position of the first sorted slice (LPS mm).
    pub origin: [f64; 3],
    /// Spacing between output slices along the normal (mm).
    pub spacing_z_mm: f64,
    /// One entry per output slice.
    pub out: Vec<OutSlice>,
    /// Per sorted source: in-plane offset from the first slice's frame, in mm along (row, column)
    /// cosines (non-zero only for a tilted stack).
    pub shift_mm: Vec<[f64; 2]>,
    /// True when any output voxel needs interpolation or shifting (not a plain copy).
    pub resampled: bool,
    /// What a user should know.
    pub warnings: Vec<String>,
}

/// Why a stack cannot be made into a volume.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PlanError(pub String);

fn dot(a: [f64; 3], b: [f64; 3]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

fn cross(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}

fn unit(a: [f64; 3]) -> Option<[f64; 3]> {
    let n = dot(a, a).sqrt();
    (n.is_finite() && n > 1e-6).then(|| [a[0] / n, a[1] / n, a[2] / n])
}

/// Positions closer than this along the normal are the same position (mm).
const SAME_POSITION_MM: f64 = 0.01;
/// A gap may differ from the median gap by this much (mm + fraction of the median) and still count
/// as regular.
const GAP_TOL_MM: f64 = 0.01;
const GAP_TOL_REL: f64 = 0.02;
/// Largest gap, in median gaps, that is bridged by interpolation (2 = one missing slice).
const MAX_GAP_FACTOR: f64 = 3.05;

/// Plan the grid of a stack whose slices share the orientation `iop`.
///
/// `fallback_spacing_z_mm` is used for a single-slice stack (SliceThickness, else 1 mm).
pub(crate) fn plan(
    iop: [f64; 6],
    slices: &[SliceGeom],
    fallback_spacing_z_mm: f64,
) -> Result<Plan, PlanError> {
    let row = unit([iop[0], iop[1], iop[2]]).ok_or_else(|| {
        PlanError(format!(
            "ImageOrientationPatient row cosine is zero: {iop:?}"
        ))
    })?;
    let col = unit([iop[3], iop[4], iop[5]]).ok_or_else(|| {
        PlanError(format!(
            "ImageOrientationPatient column cosine is zero: {iop:?}"
        ))
    })?;
    if dot(row, col).abs() > 1e-2 {
        return Err(PlanError(format!(
            "ImageOrientationPatient row and column cosines are not perpendicular: {iop:?}"
        )));
    }
    let normal = unit(cross(row, col))
        .ok_or_else(|| PlanError(format!("degenerate ImageOrientationPatient {iop:?}")))?;
    if slices.is_empty() {
        return Err(PlanError("no slices".into()));
    }
    let mut warnings = Vec::new();

    // Sort by position along the normal (ties keep input order, i.e. file path order).
    let mut order: Vec<usize> = (0..slices.len()).collect();
    let d = |i: usize| dot(slices[i].ipp, normal);
    order.sort_by(|&a, &b| d(a).total_cmp(&d(b)));

    // Duplicates: the same image twice is dropped; two different images at one position refused.
    let mut kept: Vec<usize> = Vec::with_capacity(order.len());
    for &i in &order {
        if let Some(&prev) = kept.last() {
            if (d(i) - d(prev)).abs() < SAME_POSITION_MM {
                let same =
                    slices[i].identity.is_some() && slices[i].identity == slices[prev].identity;
                if same {
                    warnings.push(format!(
                        "{} is a duplicate of {} (same SOPInstanceUID and position); ignored",
                        slices[i].label, slices[prev].label
                    ));
                    continue;
                }
                return Err(PlanError(format!(
                    "two different images at the same position {:.3} mm along the slice normal: {} and {}",
                    d(i),
                    slices[prev].label,
                    slices[i].label
                )));
            }
        }
        kept.push(i);
    }
    let order = kept;
    let n = order.len();
    let origin = slices[order[0]].ipp;
    let pos: Vec<f64> = order.iter().map(|&i| d(i) - dot(origin, normal)).collect();

    // Gantry tilt: the offset between slices has a component inside the slice plane.
    let mut shift_mm = Vec::with_capacity(n);
    let mut max_tilt_deg: f64 = 0.0;
    for (k, &i) in order.iter().enumerate() {
        let p = slices[i].ipp;
        let delta = [p[0] - origin[0], p[1] - origin[1], p[2] - origin[2]];
        let (u, v) = (dot(delta, row), dot(delta, col));
        let inplane = (u * u + v * v).sqrt();
        if inplane > GAP_TOL_MM && pos[k] > 0.0 {
            max_tilt_deg = max_tilt_deg.max(inplane.atan2(pos[k]).to_degrees());
        }
        shift_mm.push([u, v]);
    }
    let tilted = max_tilt_deg > 0.05;
    if !tilted {
        shift_mm.iter_mut().for_each(|s| *s = [0.0, 0.0]);
    }

    let axes = [row, col, normal];
    if n == 1 {
        return Ok(Plan {
            order,
            axes,
            origin,
            spacing_z_mm: fallback_spacing_z_mm,
            out: vec![OutSlice {
                lo: 0,
                hi: 0,
                t: 0.0,
            }],
            shift_mm,
            resampled: false,
            warnings,
        });
    }

    let gaps: Vec<f64> = pos.windows(2).map(|w| w[1] - w[0]).collect();
    let mut sorted_gaps = gaps.clone();
    sorted_gaps.sort_by(f64::total_cmp);
    let median = sorted_gaps[sorted_gaps.len() / 2];
    let tol = GAP_TOL_MM + GAP_TOL_REL * median;
    let regular = gaps.iter().all(|g| (g - median).abs() <= tol);
    let extent = pos[n - 1];

    let (spacing_z_mm, out) = if regular {
        // As ITK: the mean spacing from the first to the last slice, one output per source.
        let s = extent / (n - 1) as f64;
        (
            s,
            (0..n)
                .map(|k| OutSlice {
                    lo: k,
                    hi: k,
                    t: 0.0,
                })
                .collect::<Vec<_>>(),
        )
    } else {
        if let Some((k, g)) = gaps
            .iter()
            .enumerate()
            .find(|(_, g)| **g > MAX_GAP_FACTOR * median + tol)
        {
            return Err(PlanError(format!(
                "a gap of {g:.3} mm between {} and {} is more than {MAX_GAP_FACTOR:.0} times the usual \
                 slice spacing of {median:.3} mm: too many missing slices to interpolate",
                slices[order[k]].label,
                slices[order[k + 1]].label
            )));
        }
        let n_out = (extent / median).round() as usize + 1;
        let s = extent / (n_out - 1) as f64;
        let mut out = Vec::with_capacity(n_out);
        let mut lo = 0;
        for k in 0..n_out {
            let z = k as f64 * s;
            while lo + 2 < n && pos[lo + 1] <= z {
                lo += 1;
            }
            let hi = (lo + 1).min(n - 1);
            let span = pos[hi] - pos[lo];
            let t = if span > 0.0 {
                ((z - pos[lo]) / span).clamp(0.0, 1.0)
            } else {
                0.0
            };
            out.push(OutSlice { lo, hi, t });
        }
        let missing: Vec<String> = gaps
            .iter()
            .enumerate()
            .filter(|(_, g)| (*g - median).abs() > tol)
            .map(|(k, g)| format!("{g:.3} mm after {}", slices[order[k]].label))
            .collect();
        let interpolated = out.iter().filter(|o| o.exact().is_none()).count();
        warnings.push(format!(
            "irregular slice spacing (usual {median:.3} mm; {}): resampled {n} slices onto a regular \
             grid of {n_out} slices {s:.4} mm apart by linear interpolation along z \
             ({interpolated} slices interpolated)",
            missing.join(", ")
        ));
        (s, out)
    };
    if tilted {
        warnings.push(format!(
            "gantry tilt of {max_tilt_deg:.2} degrees (slice positions are not along the slice \
             normal): each slice was shifted in-plane by bilinear interpolation onto a grid \
             perpendicular to the slices; voxels shifted in from outside the field of view are \
             -1024 HU"
        ));
    }
    let resampled = tilted || out.iter().any(|o| o.exact().is_none());
    Ok(Plan {
        order,
        axes,
        origin,
        spacing_z_mm,
        out,
        shift_mm,
        resampled,
        warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const AXIAL: [f64; 6] = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0];

    fn slices(zs: &[f64]) -> Vec<SliceGeom> {
        zs.iter()
            .enumerate()
            .map(|(i, &z)| SliceGeom {
                ipp: [-100.0, -50.0, z],
                identity: Some((format!("uid{i}"), 0)),
                label: format!("f{i}"),
            })
            .collect()
    }

    #[test]
    fn sorts_by_position_not_input_order() {
        let p = plan(AXIAL, &slices(&[5.0, -5.0, 0.0, 2.5, -2.5]), 1.0).expect("plan");
        assert_eq!(p.order, [1, 4, 2, 3, 0]);
        assert_eq!(p.origin, [-100.0, -50.0, -5.0]);
        assert!((p.spacing_z_mm - 2.5).abs() < 1e-12);
        assert!(!p.resampled && p.warnings.is_empty());
    }

    #[test]
    fn normal_orientation_decides_the_order() {
        // Column cosine flipped: the normal points to -z, so increasing position is decreasing z.
        let p = plan(
            [1.0, 0.0, 0.0, 0.0, -1.0, 0.0],
            &slices(&[0.0, 1.0, 2.0]),
            1.0,
        )
        .expect("plan");
        assert_eq!(p.order, [2, 1, 0]);
        assert_eq!(p.axes[2], [0.0, 0.0, -1.0]);
    }

    #[test]
    fn missing_slice_is_interpolated_with_a_warning() {
        let p = plan(AXIAL, &slices(&[0.0, 1.0, 2.0, 4.0, 5.0]), 1.0).expect("plan");
        assert_eq!(p.out.len(), 6);
        assert_eq!(
            p.out[3],
            OutSlice {
                lo: 2,
                hi: 3,
                t: 0.5
            }
        );
        assert_eq!(p.out[4].exact(), Some(3));
        assert!(p.resampled);
        assert!(p.warnings[0].contains("irregular"), "{:?}", p.warnings);
    }

    #[test]
    fn large_gaps_and_different_images_at_one_position_are_refused() {
        assert!(plan(AXIAL, &slices(&[0.0, 1.0, 2.0, 9.0]), 1.0).is_err());
        let e = plan(AXIAL, &slices(&[0.0, 1.0, 1.0, 2.0]), 1.0).expect_err("duplicate");
        assert!(e.0.contains("f1") && e.0.contains("f2"), "{e:?}");
    }

    #[test]
    fn the_same_image_twice_is_dropped() {
        let mut s = slices(&[0.0, 1.0, 2.0]);
        let mut copy = s[1].clone();
        copy.label = "copy".into();
        s.push(copy);
        let p = plan(AXIAL, &s, 1.0).expect("plan");
        assert_eq!(p.order.len(), 3);
        assert!(p.warnings[0].contains("duplicate"));
    }

    #[test]
    fn tilt_is_detected_and_measured() {
        let mut s = slices(&[0.0, 1.0, 2.0]);
        for (i, sl) in s.iter_mut().enumerate() {
            sl.ipp[1] += i as f64 * (10f64).to_radians().tan();
        }
        let p = plan(AXIAL, &s, 1.0).expect("plan");
        assert!(p.resampled);
        assert!((p.shift_mm[2][1] - 2.0 * (10f64).to_radians().tan()).abs() < 1e-12);
        assert!(p.warnings[0].contains("10.00 degrees"), "{:?}", p.warnings);
    }
}
