//! 3D merging of duplicate candidates by centre distance in millimetres.
//!
//! Overlapping sliding windows, test-time flips and several scales report the same nodule many
//! times, each a voxel or so apart. For 3–5 voxel objects the intersection-over-union of their
//! boxes is the wrong criterion: two 3-voxel boxes shifted by one voxel already have an IoU of
//! 0.5, and by two voxels 0.2, so IoU-NMS either keeps every duplicate or must use a threshold
//! so low that it swallows true neighbours. Speck merges by **centre distance in mm** instead.
//!
//! ## The rule
//! Two candidates `a` and `b` (radii `r = diameter_mm / 2`, the radius used being
//! [`MergeOptions::default_diameter_mm`] / 2 for a candidate without a size estimate, and capped at
//! [`MergeOptions::max_radius_mm`]) are the same finding when
//!
//! ```text
//! distance_mm(a, b) < max(min_distance_mm, radius_factor × max(r_a, r_b))
//! ```
//!
//! With the defaults (3 mm, factor 1) every 3–5 voxel nodule at 0.7–1 mm spacing is merged over
//! the ±1 voxel jitter its duplicates show (two voxels apart diagonally at 1 × 0.7 × 0.7 mm is
//! 2.8 mm), while two such nodules 5 mm apart stay two. A 20 mm nodule reported by windows whose
//! centres spread by several millimetres merges within 10 mm.
//!
//! ## The algorithm
//! 1. Candidates whose centre or probability is not finite are dropped (with a `tracing` warning).
//! 2. The rest are sorted by a total order: probability descending, then world `x, y, z`,
//!    diameter, voxel position, support, window. The result therefore never depends on the input
//!    order (the property tests check this bit for bit).
//! 3. Greedy clustering in that order: the first unassigned candidate leads a new cluster and takes
//!    every unassigned candidate within the merge distance *of the leader*. Neighbours are found
//!    through a spatial hash grid whose cells are as large as the largest merge distance, so each
//!    query looks at 27 cells and the whole merge is near-linear: 100k candidates merge in
//!    ~40 ms wall / ~60 ms CPU on the shared 2-core development machine, and at 20k candidates
//!    the grid is ~14x faster than a brute-force neighbour search with the same rule
//!    (`cargo bench -p speck-benches --bench merge`).
//! 4. Each cluster is fused: position (world and voxel) = probability-weighted mean of its members
//!    (plain mean when all probabilities are 0); diameter = probability-weighted mean of the known
//!    diameters; probability = [`Fusion::Max`] (default) or [`Fusion::NoisyOr`];
//!    `support` = sum of the members' support. A fused cluster of two or more gets stage
//!    [`Stage::Merged`] and no window.
//!
//! Why `max` and not noisy-OR by default: duplicates from overlapping windows and flips are
//! strongly correlated views of the same voxels, not independent tests. Noisy-OR would lift a
//! region's score just because more windows overlap there (the centre of a scan more than its
//! border), which distorts FROC thresholds. Noisy-OR is offered for ensembles of genuinely
//! different models.

use std::collections::HashMap;

use crate::{Candidate, CandidateSource, Stage};

/// How the probabilities of fused duplicates combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Fusion {
    /// The highest member probability (the default; see the module docs for why).
    #[default]
    Max,
    /// `1 − Π(1 − pᵢ)`: treats members as independent detections (for ensembles).
    NoisyOr,
}

/// Options for [`merge`]: start from [`MergeOptions::default`] and change what you need with
/// the `with_*` methods.
///
/// ```
/// use speck_candidates::{Fusion, MergeOptions};
/// let options = MergeOptions::default().with_min_distance_mm(2.0).with_fusion(Fusion::NoisyOr);
/// assert_eq!(options.min_distance_mm, 2.0);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct MergeOptions {
    /// Two candidates closer than this (mm) are always the same finding.
    pub min_distance_mm: f64,
    /// Two candidates closer than `radius_factor × max(r_a, r_b)` (radii in mm) are the same
    /// finding.
    pub radius_factor: f64,
    /// Diameter (mm) assumed for candidates without a size estimate (0: only
    /// [`MergeOptions::min_distance_mm`] applies to them).
    pub default_diameter_mm: f64,
    /// Radii above this (mm) are capped when computing the merge distance, so a wild size
    /// estimate cannot swallow a whole lobe.
    pub max_radius_mm: f64,
    /// How duplicate probabilities combine.
    pub fusion: Fusion,
}

impl Default for MergeOptions {
    fn default() -> Self {
        Self {
            min_distance_mm: 3.0,
            radius_factor: 1.0,
            default_diameter_mm: 0.0,
            max_radius_mm: 15.0,
            fusion: Fusion::Max,
        }
    }
}

impl MergeOptions {
    /// Builder-style: set [`MergeOptions::min_distance_mm`].
    #[must_use]
    pub fn with_min_distance_mm(mut self, mm: f64) -> Self {
        self.min_distance_mm = mm;
        self
    }

    /// Builder-style: set [`MergeOptions::radius_factor`].
    #[must_use]
    pub fn with_radius_factor(mut self, factor: f64) -> Self {
        self.radius_factor = factor;
        self
    }

    /// Builder-style: set [`MergeOptions::default_diameter_mm`].
    #[must_use]
    pub fn with_default_diameter_mm(mut self, mm: f64) -> Self {
        self.default_diameter_mm = mm;
        self
    }

    /// Builder-style: set [`MergeOptions::max_radius_mm`].
    #[must_use]
    pub fn with_max_radius_mm(mut self, mm: f64) -> Self {
        self.max_radius_mm = mm;
        self
    }

    /// Builder-style: set [`MergeOptions::fusion`].
    #[must_use]
    pub fn with_fusion(mut self, fusion: Fusion) -> Self {
        self.fusion = fusion;
        self
    }

    /// The radius (mm) used for `c` in the merge rule.
    pub fn radius_mm(&self, c: &Candidate) -> f64 {
        let d = c
            .diameter_mm
            .filter(|d| d.is_finite() && *d > 0.0)
            .unwrap_or(self.default_diameter_mm);
        let r = if d.is_finite() && d > 0.0 {
            d / 2.0
        } else {
            0.0
        };
        r.min(self.max_radius_mm.max(0.0))
    }

    /// Sanitised scalar options: non-finite or negative values count as 0.
    fn sane(v: f64) -> f64 {
        if v.is_finite() && v > 0.0 {
            v
        } else {
            0.0
        }
    }

    /// The merge distance (mm) for two candidates with radii `ra`, `rb` (mm).
    pub fn merge_distance_mm(&self, ra: f64, rb: f64) -> f64 {
        Self::sane(self.min_distance_mm).max(Self::sane(self.radius_factor) * ra.max(rb))
    }
}

/// The total order used by [`merge`]: probability descending, then position, size and
/// provenance ascending. Exposed so that callers can sort candidates the same way.
pub fn canonical_order(a: &Candidate, b: &Candidate) -> std::cmp::Ordering {
    b.probability
        .total_cmp(&a.probability)
        .then(a.world.x_mm.total_cmp(&b.world.x_mm))
        .then(a.world.y_mm.total_cmp(&b.world.y_mm))
        .then(a.world.z_mm.total_cmp(&b.world.z_mm))
        .then(
            a.diameter_mm
                .unwrap_or(f64::NEG_INFINITY)
                .total_cmp(&b.diameter_mm.unwrap_or(f64::NEG_INFINITY)),
        )
        .then(a.voxel.z.total_cmp(&b.voxel.z))
        .then(a.voxel.y.total_cmp(&b.voxel.y))
        .then(a.voxel.x.total_cmp(&b.voxel.x))
        .then(a.source.support.cmp(&b.source.support))
        .then(a.source.window.cmp(&b.source.window))
        .then(stage_rank(a.source.stage).cmp(&stage_rank(b.source.stage)))
}

fn stage_rank(s: Stage) -> u8 {
    match s {
        Stage::Coarse => 0,
        Stage::Fine => 1,
        Stage::Segmentation => 2,
        Stage::Merged => 3,
        Stage::External => 4,
    }
}

fn is_finite(c: &Candidate) -> bool {
    c.probability.is_finite()
        && c.world.x_mm.is_finite()
        && c.world.y_mm.is_finite()
        && c.world.z_mm.is_finite()
}

type Cell = (i64, i64, i64);

fn cell_of(c: &Candidate, cell_mm: f64) -> Cell {
    // Coordinates are finite here; `as` saturates for absurd values, which only makes cells
    // coarser, never wrong (the distance test below is exact).
    (
        (c.world.x_mm / cell_mm).floor() as i64,
        (c.world.y_mm / cell_mm).floor() as i64,
        (c.world.z_mm / cell_mm).floor() as i64,
    )
}

/// Merge duplicates: order-independent, score-weighted fusion (see the [module docs](self) for
/// the rule); returns candidates sorted by descending probability (ties in the
/// [`canonical_order`]).
///
/// Candidates with a non-finite centre or probability are dropped (logged at `warn`).
/// Positions are world LPS mm; the voxel positions are fused the same way (they are only
/// meaningful when all inputs come from the same volume).
pub fn merge(candidates: &[Candidate], options: &MergeOptions) -> Vec<Candidate> {
    let mut sorted: Vec<Candidate> = candidates.iter().copied().filter(is_finite).collect();
    let dropped = candidates.len() - sorted.len();
    if dropped > 0 {
        tracing::warn!(
            dropped,
            "merge: dropped candidates with a non-finite centre or probability"
        );
    }
    sorted.sort_by(canonical_order);
    let n = sorted.len();
    if n == 0 {
        return Vec::new();
    }
    let radii: Vec<f64> = sorted.iter().map(|c| options.radius_mm(c)).collect();
    let max_r = radii.iter().copied().fold(0.0_f64, f64::max);
    let cell_mm = options.merge_distance_mm(max_r, max_r).max(1e-3);

    let mut grid: HashMap<Cell, Vec<usize>> = HashMap::with_capacity(n);
    let cells: Vec<Cell> = sorted.iter().map(|c| cell_of(c, cell_mm)).collect();
    for (i, cell) in cells.iter().enumerate() {
        grid.entry(*cell).or_default().push(i);
    }

    let mut assigned = vec![false; n];
    let mut out = Vec::new();
    let mut members: Vec<usize> = Vec::new();
    for leader in 0..n {
        if assigned[leader] {
            continue;
        }
        assigned[leader] = true;
        members.clear();
        members.push(leader);
        let (cx, cy, cz) = cells[leader];
        let lc = sorted[leader];
        for dx in -1..=1_i64 {
            for dy in -1..=1_i64 {
                for dz in -1..=1_i64 {
                    let key = (
                        cx.saturating_add(dx),
                        cy.saturating_add(dy),
                        cz.saturating_add(dz),
                    );
                    let Some(bucket) = grid.get_mut(&key) else {
                        continue;
                    };
                    bucket.retain(|&j| !assigned[j]);
                    bucket.retain(|&j| {
                        let d = lc.world.distance_mm(sorted[j].world);
                        if d < options.merge_distance_mm(radii[leader], radii[j]) {
                            assigned[j] = true;
                            members.push(j);
                            false
                        } else {
                            true
                        }
                    });
                }
            }
        }
        // Members in canonical order so that the fused sums are bit-identical whatever the
        // input order was.
        members.sort_unstable();
        out.push(fuse(&sorted, &members, options.fusion));
    }
    out.sort_by(canonical_order);
    out
}

/// Fuse the members (indices into `sorted`, ascending) of one cluster.
fn fuse(sorted: &[Candidate], members: &[usize], fusion: Fusion) -> Candidate {
    let first = sorted[members[0]];
    if members.len() == 1 {
        return first;
    }
    let wsum: f64 = members
        .iter()
        .map(|&i| f64::from(sorted[i].probability.max(0.0)))
        .sum();
    let weight = |i: usize| -> f64 {
        if wsum > 0.0 {
            f64::from(sorted[i].probability.max(0.0)) / wsum
        } else {
            1.0 / members.len() as f64
        }
    };
    let mut world = [0.0_f64; 3];
    let mut voxel = [0.0_f64; 3];
    let (mut dsum, mut dw, mut dn, mut dplain) = (0.0_f64, 0.0_f64, 0_usize, 0.0_f64);
    let mut support: u32 = 0;
    let mut prob_max = f32::NEG_INFINITY;
    let mut one_minus = 1.0_f64;
    for &i in members {
        let c = &sorted[i];
        let w = weight(i);
        world[0] += w * c.world.x_mm;
        world[1] += w * c.world.y_mm;
        world[2] += w * c.world.z_mm;
        voxel[0] += w * c.voxel.z;
        voxel[1] += w * c.voxel.y;
        voxel[2] += w * c.voxel.x;
        if let Some(d) = c.diameter_mm.filter(|d| d.is_finite()) {
            dsum += w * d;
            dw += w;
            dplain += d;
            dn += 1;
        }
        support = support.saturating_add(c.source.support.max(1));
        prob_max = prob_max.max(c.probability);
        one_minus *= 1.0 - f64::from(c.probability.clamp(0.0, 1.0));
    }
    let probability = match fusion {
        Fusion::Max => prob_max,
        Fusion::NoisyOr => (1.0 - one_minus) as f32,
    };
    let diameter_mm = if dn == 0 {
        None
    } else if dw > 0.0 {
        Some(dsum / dw)
    } else {
        Some(dplain / dn as f64)
    };
    Candidate {
        world: speck_volume::WorldPoint::new(world[0], world[1], world[2]),
        voxel: speck_volume::ContinuousIndex::new(voxel[0], voxel[1], voxel[2]),
        probability,
        diameter_mm,
        source: CandidateSource {
            stage: Stage::Merged,
            window: None,
            support,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use speck_volume::{ContinuousIndex, WorldPoint};

    fn cand(x: f64, y: f64, z: f64, p: f32, d: Option<f64>) -> Candidate {
        let mut c = Candidate::new(
            WorldPoint::new(x, y, z),
            ContinuousIndex::new(z, y / 0.7, x / 0.7),
            p,
            Stage::Coarse,
        );
        c.diameter_mm = d;
        c
    }

    #[test]
    fn empty_and_single() {
        assert!(merge(&[], &MergeOptions::default()).is_empty());
        let c = cand(1.0, 2.0, 3.0, 0.7, Some(2.1));
        assert_eq!(merge(&[c], &MergeOptions::default()), vec![c]);
    }

    #[test]
    fn fuses_with_probability_weights_and_counts_support() {
        let a = cand(0.0, 0.0, 0.0, 0.75, Some(2.0));
        let b = cand(1.0, 0.0, 0.0, 0.25, Some(4.0));
        let m = merge(&[b, a], &MergeOptions::default());
        assert_eq!(m.len(), 1);
        let f = m[0];
        assert!((f.world.x_mm - 0.25).abs() < 1e-12, "{f:?}");
        assert!((f.diameter_mm.expect("d") - 2.5).abs() < 1e-12);
        assert_eq!(f.probability, 0.75);
        assert_eq!(f.source.support, 2);
        assert_eq!(f.source.stage, Stage::Merged);
        let n = merge(
            &[a, b],
            &MergeOptions::default().with_fusion(Fusion::NoisyOr),
        );
        assert!((n[0].probability - (1.0 - 0.25 * 0.75)).abs() < 1e-6);
    }

    #[test]
    fn large_nodule_merges_by_radius() {
        // 20 mm nodule, duplicates 6 mm apart: beyond min distance, within the radius (10 mm).
        let a = cand(0.0, 0.0, 0.0, 0.9, Some(20.0));
        let b = cand(6.0, 0.0, 0.0, 0.8, Some(20.0));
        assert_eq!(merge(&[a, b], &MergeOptions::default()).len(), 1);
        let a = cand(0.0, 0.0, 0.0, 0.9, None);
        let b = cand(6.0, 0.0, 0.0, 0.8, None);
        assert_eq!(merge(&[a, b], &MergeOptions::default()).len(), 2);
    }

    #[test]
    fn non_finite_candidates_are_dropped() {
        let a = cand(f64::NAN, 0.0, 0.0, 0.9, None);
        let b = cand(0.0, 0.0, 0.0, f32::NAN, None);
        let c = cand(10.0, 0.0, 0.0, 0.5, None);
        assert_eq!(merge(&[a, b, c], &MergeOptions::default()), vec![c]);
    }

    #[test]
    fn huge_radius_is_capped() {
        let a = cand(0.0, 0.0, 0.0, 0.9, Some(1e9));
        let b = cand(40.0, 0.0, 0.0, 0.8, Some(2.0));
        assert_eq!(merge(&[a, b], &MergeOptions::default()).len(), 2);
    }

    /// Spacing of the default phantom: 1.0 mm slices, 0.7 mm pixels.
    const SP: [f64; 3] = [0.7, 0.7, 1.0];

    fn arb_candidates() -> impl Strategy<Value = Vec<Candidate>> {
        prop::collection::vec(
            (
                -30.0f64..30.0,
                -30.0f64..30.0,
                -30.0f64..30.0,
                0.0f32..1.0,
                prop::option::of(1.0f64..12.0),
                prop::option::of(0u32..20),
            ),
            0..120,
        )
        .prop_map(|v| {
            v.into_iter()
                .map(|(x, y, z, p, d, w)| {
                    let mut c = cand(x, y, z, p, d);
                    c.source.window = w;
                    c
                })
                .collect()
        })
    }

    proptest! {
        #[test]
        fn order_independent(cands in arb_candidates(), seed in any::<u64>()) {
            let opts = MergeOptions::default();
            let a = merge(&cands, &opts);
            // A deterministic permutation driven by `seed`.
            let mut shuffled = cands.clone();
            let mut s = seed | 1;
            for i in (1..shuffled.len()).rev() {
                s ^= s << 13; s ^= s >> 7; s ^= s << 17;
                shuffled.swap(i, (s % (i as u64 + 1)) as usize);
            }
            let b = merge(&shuffled, &opts);
            prop_assert_eq!(a, b);
        }

        #[test]
        fn probability_bounds_and_support(cands in arb_candidates(), noisy in any::<bool>()) {
            let fusion = if noisy { Fusion::NoisyOr } else { Fusion::Max };
            let opts = MergeOptions::default().with_fusion(fusion);
            let merged = merge(&cands, &opts);
            prop_assert!(merged.len() <= cands.len());
            let total: u32 = merged.iter().map(|c| c.source.support).sum();
            prop_assert_eq!(total as usize, cands.len());
            let pmax = cands.iter().map(|c| c.probability).fold(0.0f32, f32::max);
            for m in &merged {
                prop_assert!(m.probability >= 0.0 && m.probability <= 1.0);
                let bound = if noisy { 1.0 } else { pmax };
                prop_assert!(m.probability <= bound);
            }
            for w in merged.windows(2) {
                prop_assert!(w[0].probability >= w[1].probability);
            }
            if !noisy {
                // Max fusion: the best probability survives.
                if let Some(first) = merged.first() { prop_assert_eq!(first.probability, pmax); }
            }
            // No two survivors are within the min distance of each other.
            for (i, a) in merged.iter().enumerate() {
                for b in &merged[i + 1..] {
                    // Fused positions may move by up to the merge distance; the leaders were
                    // apart, so survivors are never exactly coincident.
                    prop_assert!(a.world.distance_mm(b.world) > 0.0);
                }
            }
        }

        #[test]
        fn two_small_nodules_5mm_apart_stay_two(
            vox in 3u32..=5, dir in 0usize..3, p1 in 0.3f32..1.0, p2 in 0.3f32..1.0,
            ox in -50.0f64..50.0, oy in -50.0f64..50.0, oz in -50.0f64..50.0,
            extra in 0.0f64..20.0,
        ) {
            let d1 = f64::from(vox) * SP[0];
            let mut off = [0.0; 3];
            off[dir] = 5.0 + extra;
            let a = cand(ox, oy, oz, p1, Some(d1));
            let b = cand(ox + off[0], oy + off[1], oz + off[2], p2, Some(d1));
            prop_assert_eq!(merge(&[a, b], &MergeOptions::default()).len(), 2);
        }

        #[test]
        fn eight_windows_with_one_voxel_jitter_become_one(
            vox in 3u32..=5,
            jit in prop::collection::vec((-1i32..=1, -1i32..=1, -1i32..=1, 0.2f32..1.0, any::<bool>()), 8),
            ox in -100.0f64..100.0, oy in -100.0f64..100.0, oz in -100.0f64..100.0,
        ) {
            let d = f64::from(vox) * SP[0];
            let cands: Vec<Candidate> = jit.iter().enumerate().map(|(w, &(jx, jy, jz, p, sized))| {
                let mut c = cand(
                    ox + f64::from(jx) * SP[0],
                    oy + f64::from(jy) * SP[1],
                    oz + f64::from(jz) * SP[2],
                    p,
                    sized.then_some(d),
                );
                c.source.window = Some(w as u32);
                c
            }).collect();
            let m = merge(&cands, &MergeOptions::default());
            prop_assert_eq!(m.len(), 1);
            prop_assert_eq!(m[0].source.support, 8);
            // The fused centre stays within one voxel diagonal of the true centre.
            prop_assert!(m[0].world.distance_mm(WorldPoint::new(ox, oy, oz)) <= (0.49f64 + 0.49 + 1.0).sqrt() + 1e-9);
        }
    }
}
