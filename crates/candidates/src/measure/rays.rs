//! Ray casting from the lesion's centre and a robust ellipsoid that completes the rays an
//! attachment blocks (see the [parent module](super) for where this fits).
//!
//! Why rays: a lesion is star-shaped about its centre, while the structures touching it are not.
//! Each ray's exit (the first crossing below the threshold, interpolated between samples, so
//! sub-voxel) measures the lesion in that direction. A ray that runs into the chest wall never
//! exits; one that runs along a vessel exits far beyond its neighbours. Both are replaced by a
//! quadric (a free-centre ellipsoid) fitted to the other rays. The part of a juxtapleural nodule
//! inside the wall is then completed as a radiologist would outline it, and a vessel stub is
//! cut where the lesion's own surface would be.

use ndarray::Array3;

/// Ray step, mm.
const STEP_MM: f64 = 0.1;
/// A ray has left the lesion once it stays below the threshold for this long (mm): a single
/// noisy voxel inside a textured ground-glass lesion does not end it.
const GAP_MM: f64 = 0.4;
/// An exit farther than `BUMP_REL × fit + BUMP_MM` is a vessel (or wall) bump, not lesion.
const BUMP_REL: f64 = 1.1;
const BUMP_MM: f64 = 0.25;
/// The first fit uses exits up to this multiple of their median (an ellipsoid's longest axis
/// is about 1.3 medians at axis ratios of 0.65); longer ones come back once the fit allows.
const START_REL: f64 = 1.35;
/// An exit nearer than this fraction of the fit is a noise dip.
const DIP_REL: f64 = 0.5;

/// `n` directions spread evenly over the sphere (Fibonacci lattice), as `[z, y, x]` unit
/// vectors; each stands for `4π / n` steradians.
pub(super) fn directions(n: usize) -> Vec<[f64; 3]> {
    let golden = std::f64::consts::PI * (3.0 - 5.0f64.sqrt());
    (0..n)
        .map(|i| {
            let z = 1.0 - (2.0 * i as f64 + 1.0) / n as f64;
            let r = (1.0 - z * z).max(0.0).sqrt();
            let phi = golden * i as f64;
            [z, r * phi.sin(), r * phi.cos()]
        })
        .collect()
}

/// Trilinear interpolation of `a` at fractional index `p` (`[z, y, x]`); `None` outside.
pub(super) fn sample(a: &Array3<f64>, p: [f64; 3]) -> Option<f64> {
    let d = a.dim();
    let n = [d.0, d.1, d.2];
    let mut i0 = [0usize; 3];
    let mut f = [0.0f64; 3];
    for k in 0..3 {
        if !(p[k] >= 0.0 && p[k] <= (n[k] - 1) as f64) {
            return None;
        }
        let fl = p[k].floor();
        i0[k] = (fl as usize).min(n[k].saturating_sub(2));
        f[k] = p[k] - i0[k] as f64;
    }
    let at = |dz: usize, dy: usize, dx: usize| {
        let z = (i0[0] + dz).min(n[0] - 1);
        let y = (i0[1] + dy).min(n[1] - 1);
        let x = (i0[2] + dx).min(n[2] - 1);
        a[[z, y, x]]
    };
    let mut v = 0.0;
    for (dz, wz) in [(0, 1.0 - f[0]), (1, f[0])] {
        for (dy, wy) in [(0, 1.0 - f[1]), (1, f[1])] {
            for (dx, wx) in [(0, 1.0 - f[2]), (1, f[2])] {
                let w = wz * wy * wx;
                if w > 0.0 {
                    v += w * at(dz, dy, dx);
                }
            }
        }
    }
    Some(v)
}

/// Where one ray left the lesion.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Exit {
    /// Left the lesion this far (mm) from the origin.
    At(f64),
    /// Still above the threshold at the longest length cast: wall, or a long structure.
    Blocked,
    /// Reached the border of the region of interest first.
    Border,
}

/// Cast `dirs` from `origin` (fractional index) in `roi` (spacing `sp`, `[z, y, x]` mm) up to
/// `max_mm`, each ending at the first stretch of `GAP_MM` below `t`.
pub(super) fn cast(
    roi: &Array3<f64>,
    sp: [f64; 3],
    origin: [f64; 3],
    dirs: &[[f64; 3]],
    t: f64,
    max_mm: f64,
) -> Vec<Exit> {
    let n_steps = (max_mm / STEP_MM).ceil() as usize;
    let gap = (GAP_MM / STEP_MM).round() as usize;
    dirs.iter()
        .map(|u| {
            let at = |s: f64| {
                sample(
                    roi,
                    [
                        origin[0] + s * u[0] / sp[0],
                        origin[1] + s * u[1] / sp[1],
                        origin[2] + s * u[2] / sp[2],
                    ],
                )
            };
            let mut prev = match at(0.0) {
                Some(v) => v,
                None => return Exit::Border,
            };
            let mut below_since: Option<(usize, f64)> = None;
            for k in 1..=n_steps {
                let s = k as f64 * STEP_MM;
                let Some(v) = at(s) else {
                    return match below_since {
                        Some((_, e)) => Exit::At(e),
                        None => Exit::Border,
                    };
                };
                if v < t {
                    if below_since.is_none() {
                        // Sub-step crossing by linear interpolation.
                        let frac = if prev > v {
                            (prev - t) / (prev - v)
                        } else {
                            1.0
                        };
                        below_since = Some((k, s - STEP_MM + STEP_MM * frac.clamp(0.0, 1.0)));
                    }
                    if let Some((k0, e)) = below_since {
                        if k - k0 >= gap {
                            return Exit::At(e);
                        }
                    }
                } else {
                    below_since = None;
                }
                prev = v;
            }
            match below_since {
                Some((_, e)) => Exit::At(e),
                None => Exit::Blocked,
            }
        })
        .collect()
}

/// A quadric `pᵀ A p + bᵀ p = 1` in world mm about the rays' origin (`p` as `[z, y, x]`):
/// an ellipsoid with a free centre when `A` is positive definite.
#[derive(Debug, Clone, Copy)]
pub(super) struct Quadric {
    /// `[zz, yy, xx, zy, zx, yx]` (off-diagonal terms counted twice in `pᵀ A p`).
    a: [f64; 6],
    b: [f64; 3],
}

impl Quadric {
    /// Least-squares fit to points (world mm about the origin); `None` when ill-posed.
    fn fit(points: &[[f64; 3]]) -> Option<Self> {
        if points.len() < 12 {
            return None;
        }
        // Scale to unit size for conditioning.
        let scale = points.iter().map(|p| norm(*p)).sum::<f64>() / points.len() as f64;
        if scale.is_nan() || scale <= 0.0 {
            return None;
        }
        let mut ata = [[0.0f64; 9]; 9];
        let mut atb = [0.0f64; 9];
        for p in points {
            let q = [p[0] / scale, p[1] / scale, p[2] / scale];
            let row = [
                q[0] * q[0],
                q[1] * q[1],
                q[2] * q[2],
                2.0 * q[0] * q[1],
                2.0 * q[0] * q[2],
                2.0 * q[1] * q[2],
                q[0],
                q[1],
                q[2],
            ];
            for i in 0..9 {
                atb[i] += row[i];
                for j in 0..9 {
                    ata[i][j] += row[i] * row[j];
                }
            }
        }
        let x = solve9(ata, atb)?;
        let s2 = scale * scale;
        Some(Self {
            a: [
                x[0] / s2,
                x[1] / s2,
                x[2] / s2,
                x[3] / s2,
                x[4] / s2,
                x[5] / s2,
            ],
            b: [x[6] / scale, x[7] / scale, x[8] / scale],
        })
    }

    /// Distance (mm) from the origin to the surface along unit `u`; `None` when the ray does
    /// not meet it (the quadric is not an ellipsoid around the origin).
    fn radius(&self, u: [f64; 3]) -> Option<f64> {
        let a = self.a;
        let qa = a[0] * u[0] * u[0]
            + a[1] * u[1] * u[1]
            + a[2] * u[2] * u[2]
            + 2.0 * (a[3] * u[0] * u[1] + a[4] * u[0] * u[2] + a[5] * u[1] * u[2]);
        let qb = self.b[0] * u[0] + self.b[1] * u[1] + self.b[2] * u[2];
        if qa.is_nan() || qa <= 0.0 {
            return None;
        }
        let disc = qb * qb + 4.0 * qa;
        let s = (-qb + disc.sqrt()) / (2.0 * qa);
        (s.is_finite() && s > 0.0).then_some(s)
    }
}

fn norm(p: [f64; 3]) -> f64 {
    (p[0] * p[0] + p[1] * p[1] + p[2] * p[2]).sqrt()
}

/// Gaussian elimination with partial pivoting; `None` for a (near-)singular system.
fn solve9(mut m: [[f64; 9]; 9], mut v: [f64; 9]) -> Option<[f64; 9]> {
    let scale = m.iter().flatten().fold(0.0f64, |a, b| a.max(b.abs()));
    if scale.is_nan() || scale <= 0.0 {
        return None;
    }
    for c in 0..9 {
        let p = (c..9).max_by(|&i, &j| m[i][c].abs().total_cmp(&m[j][c].abs()))?;
        if m[p][c].abs() < 1e-12 * scale {
            return None;
        }
        m.swap(c, p);
        v.swap(c, p);
        let (top, rest) = m.split_at_mut(c + 1);
        let pivot = &top[c];
        for (i, row) in rest.iter_mut().enumerate() {
            let f = row[c] / pivot[c];
            for (x, p) in row[c..].iter_mut().zip(&pivot[c..]) {
                *x -= f * p;
            }
            v[c + 1 + i] -= f * v[c];
        }
    }
    let mut x = [0.0f64; 9];
    for r in (0..9).rev() {
        let s: f64 = (r + 1..9).map(|k| m[r][k] * x[k]).sum();
        x[r] = (v[r] - s) / m[r][r];
    }
    x.iter().all(|v| v.is_finite()).then_some(x)
}

/// The lesion's radius along every ray, and what had to be completed.
#[derive(Debug, Clone)]
pub(super) struct Radii {
    /// Radius (mm) per direction.
    pub(super) r: Vec<f64>,
    /// Rays whose own exit was used.
    pub(super) kept: usize,
    /// Per ray: whether its own exit was used.
    pub(super) own: Vec<bool>,
    /// Rays that stopped at the region's border and were not completed by the fit.
    pub(super) border: usize,
    /// The fitted ellipsoid's centre (world mm about the origin, `[z, y, x]`), if one was fitted.
    pub(super) centre: Option<[f64; 3]>,
}

/// Robust radii: fit a quadric to the exits, drop exits that bump out past it (vessels) or dip
/// far inside it (noise), refit, and complete dropped and blocked rays from the fit.
pub(super) fn radii(dirs: &[[f64; 3]], exits: &[Exit]) -> Radii {
    let exit_r: Vec<Option<f64>> = exits
        .iter()
        .map(|e| match e {
            Exit::At(s) => Some(*s),
            _ => None,
        })
        .collect();
    // Without a usable ellipsoid: a sphere of the exits' median radius.
    let mut sorted: Vec<f64> = exit_r.iter().flatten().copied().collect();
    sorted.sort_by(f64::total_cmp);
    let median = sorted.get(sorted.len() / 2).copied().unwrap_or(0.0);
    // Start from the exits near the median, so that long bumps do not skew the first fit.
    let mut inlier: Vec<bool> = exit_r
        .iter()
        .map(|s| s.is_some_and(|s| s <= START_REL * median))
        .collect();
    let mut fit: Option<Quadric> = None;
    for _ in 0..10 {
        let pts: Vec<[f64; 3]> = dirs
            .iter()
            .zip(&exit_r)
            .zip(&inlier)
            .filter(|(_, k)| **k)
            .filter_map(|((u, s), _)| s.map(|s| [s * u[0], s * u[1], s * u[2]]))
            .collect();
        let Some(q) = Quadric::fit(&pts) else { break };
        let pred: Option<Vec<f64>> = dirs.iter().map(|u| q.radius(*u)).collect();
        let Some(pred) = pred else { break };
        fit = Some(q);
        let next: Vec<bool> = exit_r
            .iter()
            .zip(&pred)
            .map(|(s, p)| s.is_some_and(|s| s <= BUMP_REL * p + BUMP_MM && s >= DIP_REL * p))
            .collect();
        if next == inlier {
            break;
        }
        inlier = next;
    }
    let (mut kept, mut border) = (0usize, 0usize);
    let mut own = Vec::with_capacity(dirs.len());
    let r = dirs
        .iter()
        .zip(&exit_r)
        .zip(exits)
        .zip(&inlier)
        .map(|(((u, s), e), k)| {
            let model = fit.and_then(|q| q.radius(*u));
            match (s, k, model) {
                (Some(s), true, _) | (Some(s), false, None) => {
                    kept += 1;
                    own.push(true);
                    *s
                }
                (_, _, Some(m)) => {
                    own.push(false);
                    m
                }
                (None, _, None) => {
                    border += usize::from(*e == Exit::Border);
                    own.push(false);
                    median
                }
            }
        })
        .collect();
    let centre = fit.and_then(|q| q.centre());
    Radii {
        r,
        kept,
        own,
        border,
        centre,
    }
}

/// The mean value at each depth (steps of `STEP_MM` from 0) inside the surface, over the rays
/// whose own exit was used, up to `max_depth_mm`: the lesion's edge profile seen from outside,
/// free of its shape.
pub(super) fn inward_profile(
    roi: &Array3<f64>,
    sp: [f64; 3],
    origin: [f64; 3],
    dirs: &[[f64; 3]],
    radii: &Radii,
    max_depth_mm: f64,
) -> Vec<f64> {
    let n = (max_depth_mm / STEP_MM).floor() as usize + 1;
    let mut sum = vec![0.0f64; n];
    let mut count = vec![0usize; n];
    for ((u, r), own) in dirs.iter().zip(&radii.r).zip(&radii.own) {
        if !own {
            continue;
        }
        for k in 0..n {
            let s = r - k as f64 * STEP_MM;
            if s < 0.0 {
                break;
            }
            let p = [
                origin[0] + s * u[0] / sp[0],
                origin[1] + s * u[1] / sp[1],
                origin[2] + s * u[2] / sp[2],
            ];
            if let Some(v) = sample(roi, p) {
                sum[k] += v;
                count[k] += 1;
            }
        }
    }
    sum.iter()
        .zip(&count)
        .take_while(|(_, c)| **c > 0)
        .map(|(s, c)| s / *c as f64)
        .collect()
}

impl Quadric {
    /// The centre `-½ A⁻¹ b` (world mm about the origin), when `A` is invertible.
    fn centre(&self) -> Option<[f64; 3]> {
        let a = self.a;
        let m = [[a[0], a[3], a[4]], [a[3], a[1], a[5]], [a[4], a[5], a[2]]];
        let det = m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1])
            - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
            + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0]);
        if det.is_nan() || det.abs() <= 1e-12 {
            return None;
        }
        let inv = |r: usize, c: usize| {
            let (r1, r2) = ((r + 1) % 3, (r + 2) % 3);
            let (c1, c2) = ((c + 1) % 3, (c + 2) % 3);
            (m[c1][r1] * m[c2][r2] - m[c1][r2] * m[c2][r1]) / det
        };
        let b = self.b;
        let c: [f64; 3] =
            std::array::from_fn(|r| -0.5 * (0..3).map(|k| inv(r, k) * b[k]).sum::<f64>());
        c.iter().all(|v| v.is_finite()).then_some(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quadric_recovers_an_off_centre_ellipsoid() {
        let dirs = directions(200);
        let (c, s) = ([0.5, -0.3, 0.2], [3.0, 2.0, 2.5]);
        // Ray from the origin to the axis-aligned ellipsoid (p - c)^2 / s^2 = 1.
        let exit = |u: [f64; 3]| {
            let qa: f64 = (0..3).map(|k| (u[k] / s[k]).powi(2)).sum();
            let qb: f64 = (0..3).map(|k| -2.0 * u[k] * c[k] / (s[k] * s[k])).sum();
            let qc: f64 = (0..3).map(|k| (c[k] / s[k]).powi(2)).sum::<f64>() - 1.0;
            (-qb + (qb * qb - 4.0 * qa * qc).sqrt()) / (2.0 * qa)
        };
        let mut exits: Vec<Exit> = dirs.iter().map(|u| Exit::At(exit(*u))).collect();
        // A vessel bump and a blocked cap are completed from the fit.
        for (i, u) in dirs.iter().enumerate() {
            if u[2] > 0.8 {
                exits[i] = Exit::Blocked;
            } else if u[1] > 0.9 {
                exits[i] = Exit::At(2.0 * exit(*u));
            }
        }
        let r = radii(&dirs, &exits);
        for (u, got) in dirs.iter().zip(&r.r) {
            assert!(
                (got - exit(*u)).abs() < 1e-6,
                "{u:?}: {got} vs {}",
                exit(*u)
            );
        }
        let centre = r.centre.expect("centre");
        for k in 0..3 {
            assert!((centre[k] - c[k]).abs() < 1e-6, "{centre:?}");
        }
    }

    #[test]
    fn sample_interpolates_and_refuses_outside() {
        let a = Array3::from_shape_fn((2, 2, 2), |(z, y, x)| (4 * z + 2 * y + x) as f64);
        assert_eq!(sample(&a, [0.5, 0.5, 0.5]), Some(3.5));
        assert_eq!(sample(&a, [1.0, 1.0, 1.0]), Some(7.0));
        assert_eq!(sample(&a, [1.5, 0.0, 0.0]), None);
    }
}
