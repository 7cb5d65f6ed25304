//! The LUNA16 protocol: matching candidates to findings, the FROC curve and the sensitivity at
//! given false-positive rates, reproducing `noduleCADEvaluationLUNA16.py`.
//!
//! See `docs/evaluation.md` for the rules with a worked example; the comments here say which
//! line of the official script each rule mirrors.

use std::collections::HashMap;

use serde::Serialize;

use crate::data::{hit_radius_mm, ExcludedFinding, Nodule, ScoredCandidate};

/// The seven false-positive rates (per scan) whose mean sensitivity is the CPM.
pub const LUNA16_FP_RATES: [f64; 7] = [0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0];

/// The official script keeps at most this many marks per scan (the most probable ones).
pub const LUNA16_MAX_MARKS_PER_SCAN: usize = 100;

/// One operating point of the FROC curve.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct FrocPoint {
    /// Candidates with `probability >= threshold` are kept (`+inf` for the first point).
    pub threshold: f64,
    /// Mean number of false positives per scan at this threshold.
    pub fp_per_scan: f64,
    /// Fraction of the reference nodules hit at this threshold.
    pub sensitivity: f64,
}

/// What matching did with the candidates, for the report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct MatchCounts {
    /// Candidates read.
    pub candidates: usize,
    /// Candidates in scans outside the evaluated series (ignored).
    pub unknown_series: usize,
    /// Candidates dropped by the per-scan cap on marks.
    pub over_cap: usize,
    /// Candidates evaluated (after the two filters above).
    pub evaluated: usize,
    /// Candidates that hit at least one nodule.
    pub on_nodules: usize,
    /// Extra hits on an already-hit nodule (ignored, not false positives).
    pub duplicate_hits: usize,
    /// Candidates that hit no nodule but an excluded finding (ignored).
    pub on_excluded: usize,
    /// False positives (hit nothing).
    pub false_positives: usize,
    /// Annotations (nodules or excluded findings) in scans outside the evaluated series.
    pub findings_unknown_series: usize,
}

/// A nodule after matching.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct MatchedNodule {
    /// Index of its scan in the evaluated series.
    pub scan: u32,
    /// The highest probability among the candidates hitting it (`None`: missed).
    pub best: Option<f64>,
    /// Index into the nodule list given to [`match_scans`].
    pub index: usize,
}

/// The outcome of matching, ready for FROC analysis of any subset of the nodules.
#[derive(Debug, Clone)]
pub(crate) struct Matched {
    pub n_scans: usize,
    /// Nodules in the evaluated scans.
    pub nodules: Vec<MatchedNodule>,
    /// Distinct false-positive scores, descending.
    pub fp_levels: Vec<f64>,
    /// Each false positive: (index into `fp_levels`, scan).
    pub fps: Vec<(u32, u32)>,
    pub counts: MatchCounts,
}

/// The per-scan cap of the official script (`maxNumberOfCADMarks`): when a scan has more than
/// `cap` marks, keep only those with a probability **strictly greater** than the `(cap+1)`-th
/// highest, so ties at the cut are all dropped (and fewer than `cap` may remain).
fn apply_cap(probs: &mut Vec<(f64, usize)>, cap: usize) -> usize {
    if probs.len() <= cap {
        return 0;
    }
    let mut sorted: Vec<f64> = probs.iter().map(|p| p.0).collect();
    sorted.sort_by(|a, b| b.total_cmp(a));
    let cut = sorted[cap];
    let before = probs.len();
    probs.retain(|p| p.0 > cut);
    before - probs.len()
}

/// Match candidates to nodules and excluded findings, scan by scan.
///
/// - `series`: the evaluated scans in order; findings and candidates elsewhere are ignored
///   (and counted).
/// - A candidate hits a finding when the squared distance between the centres is **strictly
///   less** than the squared hit radius (`diameter/2`, negative diameters → 10 mm).
/// - A nodule's score is the highest probability among the candidates hitting it; other hits on
///   it are ignored. One candidate may hit two nodules (it then counts for both, as in the
///   official script).
/// - A candidate hitting no nodule but an excluded finding is ignored; a candidate hitting
///   nothing is a false positive.
pub(crate) fn match_scans(
    nodules: &[Nodule],
    excluded: &[ExcludedFinding],
    candidates: &[ScoredCandidate],
    series: &[String],
    max_marks_per_scan: Option<usize>,
) -> Matched {
    let scan_index: HashMap<&str, u32> = series
        .iter()
        .enumerate()
        .map(|(i, s)| (s.as_str(), i as u32))
        .collect();
    let n = series.len();
    let mut counts = MatchCounts {
        candidates: candidates.len(),
        ..MatchCounts::default()
    };
    let mut cands_by_scan: Vec<Vec<(f64, usize)>> = vec![Vec::new(); n];
    for (i, c) in candidates.iter().enumerate() {
        match scan_index.get(c.seriesuid.as_str()) {
            Some(&s) => cands_by_scan[s as usize].push((c.probability, i)),
            None => counts.unknown_series += 1,
        }
    }
    if let Some(cap) = max_marks_per_scan {
        for list in &mut cands_by_scan {
            counts.over_cap += apply_cap(list, cap);
        }
    }
    let mut nods_by_scan: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, nod) in nodules.iter().enumerate() {
        match scan_index.get(nod.seriesuid.as_str()) {
            Some(&s) => nods_by_scan[s as usize].push(i),
            None => counts.findings_unknown_series += 1,
        }
    }
    let mut excl_by_scan: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, e) in excluded.iter().enumerate() {
        match scan_index.get(e.seriesuid.as_str()) {
            Some(&s) => excl_by_scan[s as usize].push(i),
            None => counts.findings_unknown_series += 1,
        }
    }

    let hits = |center: speck_volume::WorldPoint, c: &ScoredCandidate, diameter_mm: f64| {
        let r = hit_radius_mm(diameter_mm);
        let dx = center.x_mm - c.center.x_mm;
        let dy = center.y_mm - c.center.y_mm;
        let dz = center.z_mm - c.center.z_mm;
        dx * dx + dy * dy + dz * dz < r * r
    };

    let mut matched_nodules = Vec::new();
    let mut fp_raw: Vec<(f64, u32)> = Vec::new();
    for s in 0..n {
        let cands = &cands_by_scan[s];
        counts.evaluated += cands.len();
        let mut on_nodule = vec![false; cands.len()];
        for &ni in &nods_by_scan[s] {
            let nod = &nodules[ni];
            let mut best: Option<f64> = None;
            let mut n_hits = 0usize;
            for (k, &(p, ci)) in cands.iter().enumerate() {
                if hits(nod.center, &candidates[ci], nod.diameter_mm) {
                    on_nodule[k] = true;
                    n_hits += 1;
                    best = Some(best.map_or(p, |b: f64| b.max(p)));
                }
            }
            counts.duplicate_hits += n_hits.saturating_sub(1);
            matched_nodules.push(MatchedNodule {
                scan: s as u32,
                best,
                index: ni,
            });
        }
        for (k, &(p, ci)) in cands.iter().enumerate() {
            if on_nodule[k] {
                counts.on_nodules += 1;
                continue;
            }
            let c = &candidates[ci];
            if excl_by_scan[s]
                .iter()
                .any(|&ei| hits(excluded[ei].center, c, excluded[ei].diameter_mm))
            {
                counts.on_excluded += 1;
            } else {
                fp_raw.push((p, s as u32));
            }
        }
    }
    counts.false_positives = fp_raw.len();
    fp_raw.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    let mut fp_levels: Vec<f64> = Vec::new();
    let mut fps = Vec::with_capacity(fp_raw.len());
    for (p, s) in fp_raw {
        if fp_levels.last() != Some(&p) {
            fp_levels.push(p);
        }
        fps.push(((fp_levels.len() - 1) as u32, s));
    }
    Matched {
        n_scans: n,
        nodules: matched_nodules,
        fp_levels,
        fps,
        counts,
    }
}

/// The detected nodules of one analysis, sorted for fast counting.
#[derive(Debug, Clone)]
pub(crate) struct Subset {
    /// Scan of every nodule in the analysis (hit or not).
    pub scans: Vec<u32>,
    /// Detected nodules: (best probability, scan), probability descending.
    pub tp: Vec<(f64, u32)>,
}

impl Subset {
    pub fn new(matched: &Matched, member: impl Fn(&MatchedNodule) -> bool) -> Self {
        let mut scans = Vec::new();
        let mut tp = Vec::new();
        for m in matched.nodules.iter().filter(|m| member(m)) {
            scans.push(m.scan);
            if let Some(b) = m.best {
                tp.push((b, m.scan));
            }
        }
        tp.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        Self { scans, tp }
    }

    pub fn n_nodules(&self) -> usize {
        self.scans.len()
    }

    pub fn n_detected(&self) -> usize {
        self.tp.len()
    }
}

/// Cumulative false-positive weight per level (`fp_cum[k]` = weight of FPs scoring
/// `>= fp_levels[k]`), for scan weights `w` (`None`: every scan once).
pub(crate) fn fp_cumulative(matched: &Matched, w: Option<&[u32]>) -> Vec<f64> {
    let mut cum = vec![0.0_f64; matched.fp_levels.len()];
    for &(level, scan) in &matched.fps {
        cum[level as usize] += w.map_or(1.0, |w| f64::from(w[scan as usize]));
    }
    let mut acc = 0.0;
    for c in &mut cum {
        acc += *c;
        *c = acc;
    }
    cum
}

/// The FP/scan value the official script computes for a cumulative FP count `c`:
/// sklearn's `fpr = c / c_tot`, then `fps = fpr * c_tot / n_scans` (same operation order, so the
/// same rounding); 0 everywhere when there are no false positives at all (the script's border
/// case).
#[inline]
fn fp_rate(c: f64, c_tot: f64, n_scans: f64) -> f64 {
    if c_tot > 0.0 {
        (c / c_tot) * c_tot / n_scans
    } else {
        0.0
    }
}

/// The sensitivity the official script computes for a cumulative TP count `t`:
/// `tpr = t / d`, `sens = tpr * d / l` (`d` detected, `l` all nodules). With nothing detected
/// the script yields NaN (sklearn divides by zero); Speck reports 0.
#[inline]
fn sens_rate(t: f64, d: f64, l: f64) -> f64 {
    if d > 0.0 {
        (t / d) * d / l
    } else {
        0.0
    }
}

/// Sensitivity at each FP rate in `rates`, by `numpy.interp` over the FROC curve (see
/// [`interp_like_numpy`]) but without building the curve: `O(log n)` per rate.
///
/// `w`: scan weights (bootstrap multiplicities) or `None`; `fp_cum` from [`fp_cumulative`] with
/// the same weights. Returns `None` when the subset holds no nodule (weight 0).
pub(crate) fn sensitivity_at(
    matched: &Matched,
    fp_cum: &[f64],
    subset: &Subset,
    w: Option<&[u32]>,
    rates: &[f64],
) -> Option<Vec<f64>> {
    let weight = |s: u32| w.map_or(1.0, |w| f64::from(w[s as usize]));
    let l: f64 = subset.scans.iter().map(|&s| weight(s)).sum();
    if l <= 0.0 {
        return None;
    }
    let mut tp_cum = Vec::with_capacity(subset.tp.len() + 1);
    let mut acc = 0.0;
    tp_cum.push(0.0);
    for &(_, s) in &subset.tp {
        acc += weight(s);
        tp_cum.push(acc);
    }
    let d = acc;
    let n = matched.n_scans as f64;
    let c_tot = fp_cum.last().copied().unwrap_or(0.0);
    let out = rates
        .iter()
        .map(|&r| {
            // First FP level whose FP/scan exceeds r: the curve point just after the rate.
            let m = fp_cum.partition_point(|&c| fp_rate(c, c_tot, n) <= r);
            if m == fp_cum.len() {
                // Past the end of the curve: numpy.interp returns the last point.
                return sens_rate(d, d, l);
            }
            let g = matched.fp_levels[m];
            let c_prev = if m == 0 { 0.0 } else { fp_cum[m - 1] };
            let t_gt = tp_cum[subset.tp.partition_point(|t| t.0 > g)];
            let t_ge = tp_cum[subset.tp.partition_point(|t| t.0 >= g)];
            let (x0, y0) = (fp_rate(c_prev, c_tot, n), sens_rate(t_gt, d, l));
            let (x1, y1) = (fp_rate(fp_cum[m], c_tot, n), sens_rate(t_ge, d, l));
            if x0 == r {
                y0
            } else {
                let slope = (y1 - y0) / (x1 - x0);
                slope * (r - x0) + y0
            }
        })
        .collect();
    Some(out)
}

/// The full FROC curve of a subset (every scan once): the point `(0, 0)` at threshold `+inf`,
/// then one point per distinct score among the subset's detected nodules and all false
/// positives, thresholds descending (sklearn's `roc_curve` without dropping collinear points,
/// which leaves the interpolated curve unchanged). `None` when the subset is empty.
pub(crate) fn froc_curve(matched: &Matched, subset: &Subset) -> Option<Vec<FrocPoint>> {
    let l = subset.n_nodules() as f64;
    if l == 0.0 {
        return None;
    }
    let d = subset.n_detected() as f64;
    let c_tot = matched.fps.len() as f64;
    let n = matched.n_scans as f64;
    let mut pts = vec![FrocPoint {
        threshold: f64::INFINITY,
        fp_per_scan: 0.0,
        sensitivity: 0.0,
    }];
    let (mut i, mut j) = (0usize, 0usize);
    let (mut t, mut c) = (0.0_f64, 0.0_f64);
    loop {
        let next_tp = subset.tp.get(i).map(|x| x.0);
        let next_fp = matched.fps.get(j).map(|x| matched.fp_levels[x.0 as usize]);
        let g = match (next_tp, next_fp) {
            (None, None) => break,
            (Some(a), None) => a,
            (None, Some(b)) => b,
            (Some(a), Some(b)) => a.max(b),
        };
        while i < subset.tp.len() && subset.tp[i].0 >= g {
            t += 1.0;
            i += 1;
        }
        while j < matched.fps.len() && matched.fp_levels[matched.fps[j].0 as usize] >= g {
            c += 1.0;
            j += 1;
        }
        pts.push(FrocPoint {
            threshold: g,
            fp_per_scan: fp_rate(c, c_tot, n),
            sensitivity: sens_rate(t, d, l),
        });
    }
    Some(pts)
}

/// `numpy.interp(x, xp, fp)` for non-decreasing `xp`, exactly as numpy computes it: `j` is the
/// last index with `xp[j] <= x`; past the ends the end values are returned; at `xp[j] == x`
/// the value `fp[j]` (the top of a vertical step); otherwise
/// `slope * (x - xp[j]) + fp[j]` with `slope = (fp[j+1] - fp[j]) / (xp[j+1] - xp[j])`.
pub fn interp_like_numpy(x: f64, xp: &[f64], fp: &[f64]) -> f64 {
    let n = xp.len().min(fp.len());
    if n == 0 {
        return f64::NAN;
    }
    if x < xp[0] {
        return fp[0];
    }
    if x >= xp[n - 1] {
        return fp[n - 1];
    }
    let j = xp[..n].partition_point(|&v| v <= x) - 1;
    if xp[j] == x {
        return fp[j];
    }
    let slope = (fp[j + 1] - fp[j]) / (xp[j + 1] - xp[j]);
    slope * (x - xp[j]) + fp[j]
}

/// Sensitivity at `rate` FP/scan on an explicit curve ([`interp_like_numpy`]).
pub fn sensitivity_on_curve(curve: &[FrocPoint], rate: f64) -> f64 {
    let xp: Vec<f64> = curve.iter().map(|p| p.fp_per_scan).collect();
    let fp: Vec<f64> = curve.iter().map(|p| p.sensitivity).collect();
    interp_like_numpy(rate, &xp, &fp)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use speck_volume::WorldPoint;

    fn nod(s: &str, x: f64, d: f64) -> Nodule {
        Nodule {
            seriesuid: s.into(),
            center: WorldPoint::new(x, 0.0, 0.0),
            diameter_mm: d,
            diameter_vox: None,
            density: None,
            attachment: None,
            n_readers: None,
        }
    }

    fn cand(s: &str, x: f64, p: f64) -> ScoredCandidate {
        ScoredCandidate {
            seriesuid: s.into(),
            center: WorldPoint::new(x, 0.0, 0.0),
            probability: p,
        }
    }

    #[test]
    fn numpy_interp_semantics() {
        let xp = [0.0, 0.0, 0.25, 0.25, 0.5];
        let fp = [0.0, 0.25, 0.25, 0.5, 0.5];
        assert_eq!(interp_like_numpy(0.0, &xp, &fp), 0.25);
        assert_eq!(interp_like_numpy(0.25, &xp, &fp), 0.5);
        assert_eq!(interp_like_numpy(0.1, &xp, &fp), 0.25);
        assert_eq!(interp_like_numpy(9.0, &xp, &fp), 0.5);
        let xp = [0.0, 1.0];
        let fp = [0.0, 1.0];
        assert_eq!(interp_like_numpy(0.25, &xp, &fp), 0.25);
    }

    #[test]
    fn cap_drops_ties_at_the_cut_like_the_official_script() {
        let mut v = vec![(0.9, 0), (0.5, 1), (0.5, 2), (0.5, 3), (0.1, 4)];
        // cap 2: the 3rd highest is 0.5, so only scores > 0.5 survive.
        assert_eq!(apply_cap(&mut v, 2), 4);
        assert_eq!(v, vec![(0.9, 0)]);
        let mut v = vec![(0.9, 0), (0.5, 1)];
        assert_eq!(apply_cap(&mut v, 2), 0);
    }

    #[test]
    fn strict_radius_and_candidate_hitting_two_nodules() {
        // Two nodules 4 mm apart, each 6 mm: one candidate between them hits both.
        let nodules = [nod("a", 0.0, 6.0), nod("a", 4.0, 6.0), nod("a", 20.0, 6.0)];
        let cands = [cand("a", 2.0, 0.8), cand("a", 23.0, 0.9)];
        let m = match_scans(&nodules, &[], &cands, &["a".to_string()], None);
        assert_eq!(m.nodules[0].best, Some(0.8));
        assert_eq!(m.nodules[1].best, Some(0.8));
        // Exactly on the radius (3 mm): not a hit, so a false positive.
        assert_eq!(m.nodules[2].best, None);
        assert_eq!(m.counts.false_positives, 1);
        assert_eq!(m.fp_levels, vec![0.9]);
    }

    /// Nodules (scan, detected, score bucket), false positives (scan, score bucket), scans.
    type Case = (Vec<(u32, bool, u8)>, Vec<(u32, u8)>, u32);

    fn arb_case() -> impl Strategy<Value = Case> {
        (
            // nodules: (scan, detected, score bucket)
            prop::collection::vec((0u32..6, any::<bool>(), 0u8..20), 1..30),
            // false positives: (scan, score bucket)
            prop::collection::vec((0u32..6, 0u8..20), 0..80),
            6u32..9,
        )
    }

    fn build(nods: &[(u32, bool, u8)], fps: &[(u32, u8)], n_scans: u32) -> Matched {
        let nodules = nods
            .iter()
            .enumerate()
            .map(|(i, &(s, det, b))| MatchedNodule {
                scan: s,
                best: det.then_some(f64::from(b) / 20.0),
                index: i,
            })
            .collect();
        let mut raw: Vec<(f64, u32)> = fps.iter().map(|&(s, b)| (f64::from(b) / 20.0, s)).collect();
        raw.sort_by(|a, b| b.0.total_cmp(&a.0));
        let mut fp_levels: Vec<f64> = Vec::new();
        let mut f = Vec::new();
        for (p, s) in raw {
            if fp_levels.last() != Some(&p) {
                fp_levels.push(p);
            }
            f.push(((fp_levels.len() - 1) as u32, s));
        }
        Matched {
            n_scans: n_scans as usize,
            nodules,
            fp_levels,
            fps: f,
            counts: MatchCounts::default(),
        }
    }

    proptest! {
        /// The FROC curve is monotone, and the fast sensitivity equals numpy.interp on the
        /// explicit curve and is monotone in the FP rate.
        #[test]
        fn froc_monotone_and_fast_path_matches_curve((nods, fps, n) in arb_case()) {
            let m = build(&nods, &fps, n);
            let sub = Subset::new(&m, |_| true);
            let curve = froc_curve(&m, &sub).expect("non-empty");
            for w in curve.windows(2) {
                prop_assert!(w[1].fp_per_scan >= w[0].fp_per_scan);
                prop_assert!(w[1].sensitivity >= w[0].sensitivity);
                prop_assert!(w[1].threshold < w[0].threshold);
            }
            let rates: Vec<f64> = (0..=64).map(|k| f64::from(k) / 8.0).collect();
            let cum = fp_cumulative(&m, None);
            let fast = sensitivity_at(&m, &cum, &sub, None, &rates).expect("non-empty");
            for (r, s) in rates.iter().zip(&fast) {
                let slow = sensitivity_on_curve(&curve, *r);
                prop_assert!((slow - s).abs() < 1e-12, "rate {r}: fast {s} slow {slow}");
                prop_assert!((0.0..=1.0).contains(s));
            }
            for w in fast.windows(2) {
                prop_assert!(w[1] >= w[0] - 1e-15);
            }
        }

        /// Weighted counting equals building the resampled data set explicitly.
        #[test]
        fn weights_equal_explicit_duplication((nods, fps, n) in arb_case(), ws in prop::collection::vec(0u32..3, 9)) {
            let m = build(&nods, &fps, n);
            let w = &ws[..n as usize];
            let sub = Subset::new(&m, |_| true);
            let cum = fp_cumulative(&m, Some(w));
            let fast = sensitivity_at(&m, &cum, &sub, Some(w), &LUNA16_FP_RATES);
            // Duplicate every scan w[s] times (as new scans), keep the scan count.
            let mut dn = Vec::new();
            let mut df = Vec::new();
            let mut next = 0u32;
            for s in 0..n {
                for _ in 0..w[s as usize] {
                    for &(ns, det, b) in &nods { if ns == s { dn.push((next, det, b)); } }
                    for &(fs, b) in &fps { if fs == s { df.push((next, b)); } }
                    next += 1;
                }
            }
            if dn.is_empty() {
                prop_assert!(fast.is_none());
            } else {
                let md = build(&dn, &df, n);
                let sd = Subset::new(&md, |_| true);
                let curve = froc_curve(&md, &sd).expect("non-empty");
                let fast = fast.expect("some");
                for (r, s) in LUNA16_FP_RATES.iter().zip(&fast) {
                    let slow = sensitivity_on_curve(&curve, *r);
                    prop_assert!((slow - s).abs() < 1e-12, "rate {r}: {s} vs {slow}");
                }
            }
        }
    }
}
