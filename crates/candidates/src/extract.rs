//! Candidates from model outputs: peaks of a heatmap ([`local_maxima`]) and connected components
//! of a segmentation-style probability map ([`components`]).
//!
//! Both take the map in `[z, y, x]` order together with the [`Geometry`] of the map itself (which
//! may be coarser than the CT it came from) and return candidates in world LPS millimetres,
//! highest score first.

use std::collections::VecDeque;

use ndarray::ArrayView3;
use rayon::prelude::*;
use speck_volume::{ContinuousIndex, Geometry};

use crate::{Candidate, Stage};

/// Options for [`local_maxima`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PeakOptions {
    /// Minimum value of a peak (a voxel qualifies when `value >= threshold`).
    pub threshold: f32,
    /// Neighbourhood radius in voxels for the local-maximum test (1 = 3x3x3, 2 = 5x5x5, ...; 0 is
    /// read as 1).
    pub radius_vox: usize,
    /// Keep at most this many peaks (highest first).
    pub max_peaks: usize,
    /// Stage recorded in each candidate.
    pub stage: Stage,
}

impl Default for PeakOptions {
    fn default() -> Self {
        Self {
            threshold: 0.5,
            radius_vox: 1,
            max_peaks: 10_000,
            stage: Stage::Coarse,
        }
    }
}

/// What one voxel is, relative to its cubic neighbourhood.
enum Peak {
    /// Strictly greater than every neighbour.
    Strict,
    /// Not smaller than any neighbour but equal to at least one: part of a plateau.
    Plateau,
}

fn classify(map: &ArrayView3<'_, f32>, z: usize, y: usize, x: usize, r: usize) -> Option<Peak> {
    let v = map[[z, y, x]];
    let (nz, ny, nx) = map.dim();
    let mut tie = false;
    for zz in z.saturating_sub(r)..(z + r + 1).min(nz) {
        for yy in y.saturating_sub(r)..(y + r + 1).min(ny) {
            for xx in x.saturating_sub(r)..(x + r + 1).min(nx) {
                if (zz, yy, xx) == (z, y, x) {
                    continue;
                }
                let w = map[[zz, yy, xx]];
                // NaN neighbours never beat a peak (comparisons with NaN are false).
                if w > v {
                    return None;
                }
                if w == v {
                    tie = true;
                }
            }
        }
    }
    Some(if tie { Peak::Plateau } else { Peak::Strict })
}

/// Quadratic (parabola through three samples) sub-voxel offset along one axis, in `[-0.5, 0.5]`;
/// 0 at the border or where the profile is not concave.
fn parabola_offset(lo: Option<f32>, mid: f32, hi: Option<f32>) -> f64 {
    let (Some(a), Some(c)) = (lo, hi) else {
        return 0.0;
    };
    let (a, b, c) = (f64::from(a), f64::from(mid), f64::from(c));
    let den = a - 2.0 * b + c;
    // Only a concave (peaked) profile has a maximum; NaN also fails this test.
    if den.is_nan() || den >= 0.0 || !den.is_finite() {
        return 0.0;
    }
    let off = 0.5 * (a - c) / den;
    if off.is_finite() {
        off.clamp(-0.5, 0.5)
    } else {
        0.0
    }
}

fn refine(map: &ArrayView3<'_, f32>, z: usize, y: usize, x: usize) -> ContinuousIndex {
    let (nz, ny, nx) = map.dim();
    let at = |zz: usize, yy: usize, xx: usize| map[[zz, yy, xx]];
    let mid = at(z, y, x);
    let oz = parabola_offset(
        z.checked_sub(1).map(|zz| at(zz, y, x)),
        mid,
        (z + 1 < nz).then(|| at(z + 1, y, x)),
    );
    let oy = parabola_offset(
        y.checked_sub(1).map(|yy| at(z, yy, x)),
        mid,
        (y + 1 < ny).then(|| at(z, y + 1, x)),
    );
    let ox = parabola_offset(
        x.checked_sub(1).map(|xx| at(z, y, xx)),
        mid,
        (x + 1 < nx).then(|| at(z, y, x + 1)),
    );
    ContinuousIndex::new(z as f64 + oz, y as f64 + oy, x as f64 + ox)
}

/// 3D local maxima of `map` (`[z, y, x]`) above a threshold, with sub-voxel refinement, placed in
/// the world with `geometry` (the geometry of `map` itself).
///
/// - A voxel is a peak when its value is `>= options.threshold` and no voxel of its
///   `(2r+1)³` neighbourhood (`r = options.radius_vox`, clipped at the borders) is larger.
///   NaN voxels are never peaks and never suppress one.
/// - Plateaus (equal neighbouring maxima, e.g. a saturated sigmoid) give exactly **one** peak:
///   equal-valued voxels connected through the neighbourhood form one plateau, which is a peak
///   when none of its voxels has a larger neighbour (a flat shoulder on a slope is not), and is
///   reported at the mean index of its voxels (memory: one bit per voxel, only when a plateau
///   exists).
/// - A strict peak is refined to sub-voxel precision by fitting a parabola through the three
///   samples along each axis (offset clamped to ±0.5 voxel).
/// - The result is sorted by value descending, then by index `(z, y, x)`, and cut to
///   `options.max_peaks`. The scan runs in parallel over z-slices (rayon); the output does not
///   depend on the thread count.
///
/// `probability` is the map value as is (no clamping); `voxel` is the refined continuous index
/// in `map`; `world` is `geometry.index_to_world(voxel)`; `diameter_mm` is not estimated.
pub fn local_maxima(
    map: ArrayView3<'_, f32>,
    geometry: &Geometry,
    options: &PeakOptions,
) -> Vec<Candidate> {
    let (nz, ny, nx) = map.dim();
    if nz == 0 || ny == 0 || nx == 0 || options.max_peaks == 0 {
        return Vec::new();
    }
    let r = options.radius_vox.max(1);
    let thr = options.threshold;
    // (value, index, is_plateau) per z slice, in z order.
    let per_slice: Vec<Vec<(f32, [usize; 3], bool)>> = (0..nz)
        .into_par_iter()
        .map(|z| {
            let mut out = Vec::new();
            for y in 0..ny {
                for x in 0..nx {
                    let v = map[[z, y, x]];
                    if v.is_nan() || v < thr {
                        continue;
                    }
                    match classify(&map, z, y, x, r) {
                        Some(Peak::Strict) => out.push((v, [z, y, x], false)),
                        Some(Peak::Plateau) => out.push((v, [z, y, x], true)),
                        None => {}
                    }
                }
            }
            out
        })
        .collect();

    let mut peaks: Vec<(f32, [usize; 3], ContinuousIndex)> = Vec::new();
    let mut plateau_voxels: Vec<(f32, [usize; 3])> = Vec::new();
    for slice in per_slice {
        for (v, idx, plateau) in slice {
            if plateau {
                plateau_voxels.push((v, idx));
            } else {
                peaks.push((v, idx, refine(&map, idx[0], idx[1], idx[2])));
            }
        }
    }
    peaks.extend(group_plateaus(&map, &plateau_voxels, r));

    peaks.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    peaks.truncate(options.max_peaks);
    peaks
        .into_iter()
        .map(|(v, _, idx)| Candidate::new(geometry.index_to_world(idx), idx, v, options.stage))
        .collect()
}

/// Group plateau voxels into one peak each, at the mean index of the plateau.
///
/// A plateau is a set of equal-valued voxels connected through the `(2r+1)³` neighbourhood. It
/// is a peak only when no voxel of it has a strictly larger neighbour (a flat shoulder on a slope
/// is not a peak). `voxels` (the weak maxima with an equal neighbour) are in raster order; the
/// representative index (for ordering) is the plateau's first voxel in raster order.
fn group_plateaus(
    map: &ArrayView3<'_, f32>,
    voxels: &[(f32, [usize; 3])],
    r: usize,
) -> Vec<(f32, [usize; 3], ContinuousIndex)> {
    if voxels.is_empty() {
        return Vec::new();
    }
    let (nz, ny, nx) = map.dim();
    let lin = |[z, y, x]: [usize; 3]| (z * ny + y) * nx + x;
    // One bit per voxel, only allocated when a plateau exists.
    let mut visited = vec![0u64; (nz * ny * nx).div_ceil(64)];
    let mut out = Vec::new();
    let mut queue = VecDeque::new();
    for &(value, start) in voxels {
        let l = lin(start);
        if visited[l / 64] & (1 << (l % 64)) != 0 {
            continue;
        }
        visited[l / 64] |= 1 << (l % 64);
        queue.clear();
        queue.push_back(start);
        let mut sum = [0.0_f64; 3];
        let mut count = 0.0_f64;
        let mut is_peak = true;
        while let Some([z, y, x]) = queue.pop_front() {
            sum[0] += z as f64;
            sum[1] += y as f64;
            sum[2] += x as f64;
            count += 1.0;
            for zz in z.saturating_sub(r)..(z + r + 1).min(nz) {
                for yy in y.saturating_sub(r)..(y + r + 1).min(ny) {
                    for xx in x.saturating_sub(r)..(x + r + 1).min(nx) {
                        let w = map[[zz, yy, xx]];
                        if w > value {
                            is_peak = false;
                        } else if w == value {
                            let m = lin([zz, yy, xx]);
                            if visited[m / 64] & (1 << (m % 64)) == 0 {
                                visited[m / 64] |= 1 << (m % 64);
                                queue.push_back([zz, yy, xx]);
                            }
                        }
                    }
                }
            }
        }
        if is_peak {
            out.push((
                value,
                start,
                ContinuousIndex::new(sum[0] / count, sum[1] / count, sum[2] / count),
            ));
        }
    }
    out
}

/// Options for [`components`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ComponentOptions {
    /// A voxel is foreground when `value >= threshold`.
    pub threshold: f32,
    /// Components with fewer voxels are dropped.
    pub min_voxels: usize,
    /// Keep at most this many components (highest score first).
    pub max_components: usize,
    /// Stage recorded in each candidate.
    pub stage: Stage,
}

impl Default for ComponentOptions {
    fn default() -> Self {
        Self {
            threshold: 0.5,
            min_voxels: 1,
            max_components: 10_000,
            stage: Stage::Segmentation,
        }
    }
}

#[derive(Default)]
struct Acc {
    n: usize,
    wsum: f64,
    wz: f64,
    wy: f64,
    wx: f64,
    max: f32,
    first: [usize; 3],
}

/// Connected components of a segmentation-style probability map (`[z, y, x]`).
///
/// - Foreground: `value >= options.threshold` (NaN is background); 26-connectivity.
/// - Centre: the probability-weighted centroid of the component's voxels (continuous index, then
///   `geometry.index_to_world`).
/// - `diameter_mm`: the equivalent-sphere diameter `(6 V / π)^(1/3)` with
///   `V = voxels × voxel volume (mm³)` from `geometry.spacing`.
/// - `probability`: the maximum value in the component.
/// - Components smaller than `options.min_voxels` are dropped; the rest are sorted by probability
///   descending, then by their first voxel in raster order, and cut to `options.max_components`.
///
/// Memory: one bit per voxel for the visited mask plus the BFS queue.
pub fn components(
    map: ArrayView3<'_, f32>,
    geometry: &Geometry,
    options: &ComponentOptions,
) -> Vec<Candidate> {
    let (nz, ny, nx) = map.dim();
    let total = nz * ny * nx;
    if total == 0 || options.max_components == 0 {
        return Vec::new();
    }
    let thr = options.threshold;
    let fg = |z: usize, y: usize, x: usize| map[[z, y, x]] >= thr;
    let mut visited = vec![0u64; total.div_ceil(64)];
    let lin = |z: usize, y: usize, x: usize| (z * ny + y) * nx + x;
    let mut comps: Vec<Acc> = Vec::new();
    let mut queue: VecDeque<[usize; 3]> = VecDeque::new();
    for z in 0..nz {
        for y in 0..ny {
            for x in 0..nx {
                let l = lin(z, y, x);
                if visited[l / 64] & (1 << (l % 64)) != 0 || !fg(z, y, x) {
                    continue;
                }
                visited[l / 64] |= 1 << (l % 64);
                let mut acc = Acc {
                    first: [z, y, x],
                    max: f32::NEG_INFINITY,
                    ..Acc::default()
                };
                queue.clear();
                queue.push_back([z, y, x]);
                while let Some([cz, cy, cx]) = queue.pop_front() {
                    let v = map[[cz, cy, cx]];
                    let w = f64::from(v.max(0.0));
                    acc.n += 1;
                    acc.wsum += w;
                    acc.wz += w * cz as f64;
                    acc.wy += w * cy as f64;
                    acc.wx += w * cx as f64;
                    acc.max = acc.max.max(v);
                    for zz in cz.saturating_sub(1)..(cz + 2).min(nz) {
                        for yy in cy.saturating_sub(1)..(cy + 2).min(ny) {
                            for xx in cx.saturating_sub(1)..(cx + 2).min(nx) {
                                let m = lin(zz, yy, xx);
                                if visited[m / 64] & (1 << (m % 64)) == 0 && fg(zz, yy, xx) {
                                    visited[m / 64] |= 1 << (m % 64);
                                    queue.push_back([zz, yy, xx]);
                                }
                            }
                        }
                    }
                }
                if acc.n >= options.min_voxels.max(1) {
                    comps.push(acc);
                }
            }
        }
    }
    comps.sort_by(|a, b| b.max.total_cmp(&a.max).then(a.first.cmp(&b.first)));
    comps.truncate(options.max_components);
    let voxel_mm3 = geometry.spacing.voxel_volume_mm3();
    comps
        .into_iter()
        .map(|a| {
            // With a non-positive threshold all weights may be 0: fall back to the first voxel.
            let idx = if a.wsum > 0.0 {
                ContinuousIndex::new(a.wz / a.wsum, a.wy / a.wsum, a.wx / a.wsum)
            } else {
                ContinuousIndex::new(a.first[0] as f64, a.first[1] as f64, a.first[2] as f64)
            };
            let volume_mm3 = a.n as f64 * voxel_mm3;
            let diameter = (6.0 * volume_mm3 / std::f64::consts::PI).cbrt();
            Candidate::new(geometry.index_to_world(idx), idx, a.max, options.stage)
                .with_diameter_mm(diameter)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array3;
    use speck_volume::{Direction, Spacing, WorldPoint};

    fn geom() -> Geometry {
        Geometry::new(
            Spacing::new(0.7, 0.7, 1.0).expect("spacing"),
            WorldPoint::new(-10.0, 20.0, 100.0),
            Direction::IDENTITY,
        )
    }

    /// A Gaussian blob of height `h` at a sub-voxel centre `c` (`[z, y, x]`).
    fn add_blob(a: &mut Array3<f32>, c: [f64; 3], sigma: f64, h: f32) {
        for ((z, y, x), v) in a.indexed_iter_mut() {
            let d2 =
                (z as f64 - c[0]).powi(2) + (y as f64 - c[1]).powi(2) + (x as f64 - c[2]).powi(2);
            *v += h * (-(d2) / (2.0 * sigma * sigma)).exp() as f32;
        }
    }

    #[test]
    fn finds_blobs_with_subvoxel_centres_highest_first() {
        let mut a = Array3::<f32>::zeros((20, 24, 24));
        add_blob(&mut a, [5.3, 6.0, 7.8], 1.2, 0.9);
        add_blob(&mut a, [14.0, 17.4, 15.0], 1.2, 0.7);
        let g = geom();
        let peaks = local_maxima(a.view(), &g, &PeakOptions::default());
        assert_eq!(peaks.len(), 2, "{peaks:?}");
        assert!(peaks[0].probability > peaks[1].probability);
        let p = peaks[0].voxel;
        assert!(
            (p.z - 5.3).abs() < 0.15 && (p.y - 6.0).abs() < 0.15 && (p.x - 7.8).abs() < 0.15,
            "{p:?}"
        );
        let w = peaks[0].world;
        let expect = g.index_to_world(p);
        assert_eq!(w, expect);
        assert!((w.z_mm - (100.0 + 5.3)).abs() < 0.2);
        let q = peaks[1].voxel;
        assert!((q.y - 17.4).abs() < 0.15, "{q:?}");
        // The threshold removes the weaker blob; max_peaks caps.
        let o = PeakOptions {
            threshold: 0.8,
            ..PeakOptions::default()
        };
        assert_eq!(local_maxima(a.view(), &g, &o).len(), 1);
        let o = PeakOptions {
            max_peaks: 1,
            threshold: 0.1,
            ..PeakOptions::default()
        };
        assert_eq!(
            local_maxima(a.view(), &g, &o)[0].probability,
            peaks[0].probability
        );
    }

    #[test]
    fn plateau_gives_one_peak_at_its_centre() {
        let mut a = Array3::<f32>::zeros((10, 10, 10));
        for z in 3..6 {
            for y in 4..6 {
                for x in 2..7 {
                    a[[z, y, x]] = 1.0;
                }
            }
        }
        a[[0, 0, 0]] = f32::NAN;
        let peaks = local_maxima(a.view(), &geom(), &PeakOptions::default());
        assert_eq!(peaks.len(), 1, "{peaks:?}");
        let c = peaks[0].voxel;
        assert_eq!((c.z, c.y, c.x), (4.0, 4.5, 4.0));
    }

    #[test]
    fn a_flat_shoulder_is_not_a_peak() {
        let mut a = Array3::<f32>::zeros((5, 5, 8));
        for x in 1..4 {
            a[[2, 2, x]] = 0.6;
        }
        a[[2, 2, 4]] = 0.9;
        let peaks = local_maxima(a.view(), &geom(), &PeakOptions::default());
        assert_eq!(peaks.len(), 1, "{peaks:?}");
        assert_eq!(peaks[0].probability, 0.9);
    }

    #[test]
    fn larger_radius_suppresses_nearby_weaker_peaks() {
        let mut a = Array3::<f32>::zeros((9, 9, 9));
        a[[4, 4, 2]] = 0.9;
        a[[4, 4, 5]] = 0.8;
        let g = geom();
        assert_eq!(local_maxima(a.view(), &g, &PeakOptions::default()).len(), 2);
        let o = PeakOptions {
            radius_vox: 3,
            ..PeakOptions::default()
        };
        assert_eq!(local_maxima(a.view(), &g, &o).len(), 1);
    }

    #[test]
    fn empty_and_flat_maps() {
        let a = Array3::<f32>::zeros((0, 4, 4));
        assert!(local_maxima(a.view(), &geom(), &PeakOptions::default()).is_empty());
        let a = Array3::<f32>::zeros((4, 4, 4));
        assert!(local_maxima(a.view(), &geom(), &PeakOptions::default()).is_empty());
        let a = Array3::<f32>::from_elem((3, 3, 3), 0.7);
        assert_eq!(
            local_maxima(a.view(), &geom(), &PeakOptions::default()).len(),
            1
        );
    }

    #[test]
    fn components_centroid_diameter_and_score() {
        let mut a = Array3::<f32>::zeros((12, 12, 12));
        // A 3x3x3 cube (27 voxels) with a hot corner, and a diagonal neighbour (26-connected).
        for z in 2..5 {
            for y in 2..5 {
                for x in 2..5 {
                    a[[z, y, x]] = 0.6;
                }
            }
        }
        a[[4, 4, 4]] = 0.95;
        a[[5, 5, 5]] = 0.6;
        // A separate single voxel.
        a[[10, 1, 9]] = 0.7;
        let g = geom();
        let c = components(a.view(), &g, &ComponentOptions::default());
        assert_eq!(c.len(), 2, "{c:?}");
        assert_eq!(c[0].probability, 0.95);
        let n = 28.0;
        let v = n * 0.7 * 0.7 * 1.0;
        let d = (6.0 * v / std::f64::consts::PI).cbrt();
        assert!((c[0].diameter_mm.expect("d") - d).abs() < 1e-9);
        let wsum = 26.0 * 0.6 + 0.95 + 0.6;
        let cz = (0.6 * 9.0 * (2.0 + 3.0 + 4.0) - 0.6 * 4.0 + 0.95 * 4.0 + 0.6 * 5.0) / wsum;
        assert!((c[0].voxel.z - cz).abs() < 1e-5, "{:?} vs {cz}", c[0].voxel);
        assert_eq!(c[1].voxel, ContinuousIndex::new(10.0, 1.0, 9.0));
        let o = ComponentOptions {
            min_voxels: 2,
            ..ComponentOptions::default()
        };
        assert_eq!(components(a.view(), &g, &o).len(), 1);
    }
}
