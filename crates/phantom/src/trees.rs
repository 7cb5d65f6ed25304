//! Branching trees (pulmonary arteries, veins, bronchi) grown by recursive space partition.
//!
//! Each tree serves a cloud of points sampled uniformly inside its lung. A branch serving a set of
//! points splits it across its principal axis at a random quantile (asymmetric bifurcations); each
//! child heads part of the way towards the centroid of its half, with a radius following a
//! Murray-type law `r = r_root (n / N)^(1/γ)` (`n` points served of `N`). Branches therefore fan
//! out from the hilum in every direction and taper from several mm to a fraction of a voxel;
//! every split is a bifurcation. Segments are slightly bent (two pieces per branch) for tortuosity.

use rand::Rng;

use crate::rng::{normal, uniform};
use crate::shapes::{add, dot, lerp3, norm, perpendicular, scale, sub, Capsule, V3};

/// Parameters of one tree.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TreeParams {
    pub(crate) root_radius: f64,
    pub(crate) gamma: f64,
    pub(crate) min_radius: f64,
    /// Radius of the twig that reaches each terminal point.
    pub(crate) twig_radius: f64,
}

/// Grow a tree from `root` serving `points`; returns its segments.
///
/// Every branch's two pieces must pass `keep`. A branch that fails heads instead for the served
/// point nearest the centroid it aimed at; if that fails too, or it was a twig, it is left out
/// together with everything it would have fed (its points stay unserved). Airways use this to
/// stay inside the lung, which wraps around the heart, so that a branch heading for the centroid
/// of points on the far side of the heart cannot paint air through it. With a `keep` that
/// accepts everything the tree is the same as without one, draw for draw.
pub(crate) fn grow(
    points: &[V3],
    root: V3,
    params: TreeParams,
    keep: impl Fn(&Capsule) -> bool,
    rng: &mut impl Rng,
) -> Vec<Capsule> {
    let n_total = points.len().max(1) as f64;
    let radius = |n: usize| params.root_radius * (n as f64 / n_total).powf(1.0 / params.gamma);
    let mut out = Vec::with_capacity(points.len() * 4);
    let mut stack: Vec<(V3, Vec<usize>, f64)> =
        vec![(root, (0..points.len()).collect(), params.root_radius)];
    while let Some((start, idx, r_start)) = stack.pop() {
        if idx.is_empty() {
            continue;
        }
        if idx.len() <= 2 || radius(idx.len()) < params.min_radius {
            for &i in &idx {
                let r0 = r_start.min(radius(idx.len())).max(params.twig_radius);
                push_kept(
                    &mut out,
                    bent(start, points[i], r0, params.twig_radius, rng),
                    &keep,
                );
            }
            continue;
        }
        let (a, b) = split(points, idx, rng);
        for half in [a, b] {
            if half.is_empty() {
                continue;
            }
            let c = centroid(points, &half);
            let r = radius(half.len()).min(r_start);
            let lambda = if half.len() == 1 {
                1.0
            } else {
                uniform(rng, 0.35, 0.6)
            };
            let end = lerp3(start, c, lambda);
            if half.len() == 1 {
                push_kept(
                    &mut out,
                    bent(start, end, r, params.twig_radius, rng),
                    &keep,
                );
                continue;
            }
            if push_kept(&mut out, bent(start, end, r, r * 0.96, rng), &keep) {
                stack.push((end, half, r * 0.96));
                continue;
            }
            // The way to the centroid leaves the region `keep` allows (the centroid of points
            // wrapped around an obstacle can lie inside it): head for the served point nearest
            // the centroid instead, and prune only if that way is barred too.
            let Some(&m) = half
                .iter()
                .min_by(|&&i, &&j| norm(sub(points[i], c)).total_cmp(&norm(sub(points[j], c))))
            else {
                continue;
            };
            let end = lerp3(start, points[m], lambda);
            if push_kept(&mut out, bent(start, end, r, r * 0.96, rng), &keep) {
                stack.push((end, half, r * 0.96));
            }
        }
    }
    out
}

/// Append both pieces of a branch if both pass `keep`; whether the branch may go on (a branch
/// too short to draw goes on: it is its parent's end point).
fn push_kept(
    out: &mut Vec<Capsule>,
    pieces: Option<[Capsule; 2]>,
    keep: &impl Fn(&Capsule) -> bool,
) -> bool {
    match pieces {
        None => true,
        Some(pieces) if pieces.iter().all(keep) => {
            out.extend(pieces);
            true
        }
        Some(_) => false,
    }
}

/// A branch from `a` to `b` as two capsules meeting at a randomly displaced midpoint; `None` when
/// it is too short to draw (no random draws then).
fn bent(a: V3, b: V3, ra: f64, rb: f64, rng: &mut impl Rng) -> Option<[Capsule; 2]> {
    let d = sub(b, a);
    let len = norm(d);
    if len < 1e-6 {
        return None;
    }
    let u = perpendicular(scale(d, 1.0 / len));
    let w = crate::shapes::cross(scale(d, 1.0 / len), u);
    let bend = 0.07 * len;
    let m = add(
        lerp3(a, b, 0.5),
        add(scale(u, bend * normal(rng)), scale(w, bend * normal(rng))),
    );
    let rm = 0.5 * (ra + rb);
    Some([Capsule::new(a, m, ra, rm), Capsule::new(m, b, rm, rb)])
}

fn centroid(points: &[V3], idx: &[usize]) -> V3 {
    let mut c = [0.0; 3];
    for &i in idx {
        c = add(c, points[i]);
    }
    scale(c, 1.0 / idx.len().max(1) as f64)
}

/// Split across the principal axis at a random quantile in [0.3, 0.5].
fn split(points: &[V3], mut idx: Vec<usize>, rng: &mut impl Rng) -> (Vec<usize>, Vec<usize>) {
    let c = centroid(points, &idx);
    let mut cov = [[0.0f64; 3]; 3];
    for &i in &idx {
        let d = sub(points[i], c);
        for (r, row) in cov.iter_mut().enumerate() {
            for (s, v) in row.iter_mut().enumerate() {
                *v += d[r] * d[s];
            }
        }
    }
    let mut axis = [0.577, 0.577, 0.577];
    for _ in 0..12 {
        let v: V3 = std::array::from_fn(|r| dot(cov[r], axis));
        let n = norm(v);
        if n < 1e-12 {
            break;
        }
        axis = scale(v, 1.0 / n);
    }
    let mut keyed: Vec<(f64, usize)> = idx.iter().map(|&i| (dot(points[i], axis), i)).collect();
    keyed.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let q = uniform(rng, 0.3, 0.5);
    let cut = ((keyed.len() as f64 * q).round() as usize).clamp(1, keyed.len() - 1);
    let (lo, hi): (Vec<_>, Vec<_>) = (keyed[..cut].to_vec(), keyed[cut..].to_vec());
    idx.clear();
    let lo: Vec<usize> = lo.into_iter().map(|x| x.1).collect();
    let hi: Vec<usize> = hi.into_iter().map(|x| x.1).collect();
    if rng.random::<bool>() {
        (lo, hi)
    } else {
        (hi, lo)
    }
}

/// A uniform grid over segments for proximity queries (mm, local frame).
#[derive(Debug, Clone)]
pub(crate) struct SegmentGrid {
    min: V3,
    cell: f64,
    dims: [usize; 3],
    cells: Vec<Vec<u32>>,
    pub(crate) segments: Vec<Capsule>,
}

impl SegmentGrid {
    pub(crate) fn new(segments: Vec<Capsule>, cell: f64) -> Self {
        let mut min = [f64::INFINITY; 3];
        let mut max = [f64::NEG_INFINITY; 3];
        for s in &segments {
            let b = s.aabb();
            for i in 0..3 {
                min[i] = min[i].min(b.min[i]);
                max[i] = max[i].max(b.max[i]);
            }
        }
        if segments.is_empty() {
            min = [0.0; 3];
            max = [0.0; 3];
        }
        let dims: [usize; 3] =
            std::array::from_fn(|i| (((max[i] - min[i]) / cell).floor() as usize + 1).min(4096));
        let mut cells = vec![Vec::new(); dims[0] * dims[1] * dims[2]];
        let mut grid = Self {
            min,
            cell,
            dims,
            cells: Vec::new(),
            segments: Vec::new(),
        };
        for (i, s) in segments.iter().enumerate() {
            let b = s.aabb();
            let (lo, hi) = (grid.cell_of(b.min), grid.cell_of(b.max));
            for z in lo[2]..=hi[2] {
                for y in lo[1]..=hi[1] {
                    for x in lo[0]..=hi[0] {
                        cells[(z * dims[1] + y) * dims[0] + x].push(i as u32);
                    }
                }
            }
        }
        grid.cells = cells;
        grid.segments = segments;
        grid
    }

    fn cell_of(&self, p: V3) -> [usize; 3] {
        std::array::from_fn(|i| {
            (((p[i] - self.min[i]) / self.cell).floor().max(0.0) as usize).min(self.dims[i] - 1)
        })
    }

    /// The smallest gap (mm) between a ball `(c, r)` and the surface of any segment whose radius
    /// exceeds `min_seg_radius`, searching within `horizon` mm; `horizon` when none is nearer.
    pub(crate) fn clearance(&self, c: V3, r: f64, min_seg_radius: f64, horizon: f64) -> f64 {
        let mut best = horizon;
        if self.segments.is_empty() {
            return best;
        }
        let lo = self.cell_of(sub(c, [r + horizon; 3]));
        let hi = self.cell_of(add(c, [r + horizon; 3]));
        for z in lo[2]..=hi[2] {
            for y in lo[1]..=hi[1] {
                for x in lo[0]..=hi[0] {
                    for &i in &self.cells[(z * self.dims[1] + y) * self.dims[0] + x] {
                        let s = &self.segments[i as usize];
                        if s.ra.max(s.rb) < min_seg_radius {
                            continue;
                        }
                        best = best.min(s.sd(c) - r);
                    }
                }
            }
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::rng_for;

    fn cloud(n: usize) -> Vec<V3> {
        let mut rng = rng_for(5, "cloud", 0);
        (0..n)
            .map(|_| {
                [
                    uniform(&mut rng, 0.0, 80.0),
                    uniform(&mut rng, -40.0, 40.0),
                    uniform(&mut rng, -60.0, 60.0),
                ]
            })
            .collect()
    }

    #[test]
    fn tree_tapers_reaches_every_point_and_bifurcates() {
        let pts = cloud(500);
        let params = TreeParams {
            root_radius: 4.0,
            gamma: 2.8,
            min_radius: 0.3,
            twig_radius: 0.2,
        };
        let segs = grow(&pts, [0.0; 3], params, |_| true, &mut rng_for(1, "tree", 0));
        let max_r = segs.iter().map(|s| s.ra.max(s.rb)).fold(0.0, f64::max);
        let min_r = segs
            .iter()
            .map(|s| s.ra.min(s.rb))
            .fold(f64::INFINITY, f64::min);
        assert!(max_r <= 4.0 + 1e-9 && max_r > 3.0, "max radius {max_r}");
        assert!(min_r <= 0.2 + 1e-9, "min radius {min_r}");
        for p in &pts {
            let d = segs
                .iter()
                .map(|s| norm(sub(s.b, *p)))
                .fold(f64::INFINITY, f64::min);
            assert!(d < 1e-9, "point {p:?} not reached");
        }
        // Bifurcations: some start points are shared by two segments.
        let root_children = segs
            .iter()
            .filter(|s| norm(sub(s.a, [0.0; 3])) < 1e-12)
            .count();
        assert_eq!(root_children, 2);
    }

    #[test]
    fn clearance_finds_the_nearest_segment() {
        let g = SegmentGrid::new(
            vec![Capsule::new([0.0, 0.0, 0.0], [0.0, 0.0, 50.0], 1.0, 1.0)],
            8.0,
        );
        let c = g.clearance([5.0, 0.0, 25.0], 2.0, 0.0, 20.0);
        assert!((c - 2.0).abs() < 1e-9, "{c}");
        assert_eq!(g.clearance([5.0, 0.0, 25.0], 2.0, 1.5, 20.0), 20.0);
    }
}
