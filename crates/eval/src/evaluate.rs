//! [`evaluate`]: the whole evaluation, from read inputs to an [`Evaluation`].

use std::collections::BTreeSet;

use serde::Serialize;

use crate::bins::{MmBins, VoxBins};
use crate::bootstrap;
use crate::data::{ExcludedFinding, Nodule, ScoredCandidate};
use crate::protocol::{
    fp_cumulative, froc_curve, match_scans, sensitivity_at, FrocPoint, MatchCounts, Matched,
    MatchedNodule, Subset, LUNA16_FP_RATES, LUNA16_MAX_MARKS_PER_SCAN,
};
use crate::EvalError;

/// The largest number of bootstrap resamples [`evaluate`] accepts (results are kept in memory).
pub const MAX_BOOTSTRAP: usize = 100_000;

/// Options of [`evaluate`]: start from [`EvalOptions::default`] (the LUNA16 settings with 1,000
/// bootstrap resamples) and change what you need with the `with_*` methods.
///
/// ```
/// use speck_eval::EvalOptions;
/// let options = EvalOptions::default().with_bootstrap(200).with_seed(7).with_min_readers(3);
/// assert_eq!((options.bootstrap, options.min_readers), (200, 3));
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct EvalOptions {
    /// Bootstrap resamples of the scans for the confidence intervals (0: no intervals; at most
    /// [`MAX_BOOTSTRAP`]).
    pub bootstrap: usize,
    /// Seed of the bootstrap.
    pub seed: u64,
    /// Confidence level of the intervals (0.95).
    pub confidence: f64,
    /// Per-scan cap on marks (`Some(100)` as in the official evaluation; `None`: no cap).
    pub max_marks_per_scan: Option<usize>,
    /// Nodules marked by fewer readers are treated as excluded findings (1: all nodules count).
    /// Needs reader information (`reader` or `n_readers` column) when above 1.
    pub min_readers: u32,
    /// Size bins over the rounded diameter in voxels.
    pub size_bins_vox: VoxBins,
    /// Size bins over the diameter in mm.
    pub size_bins_mm: MmBins,
    /// Voxel size (mm) to derive `diameter_vox = diameter_mm / voxel_mm` for nodules whose
    /// annotation has no `diameter_vox`.
    pub voxel_mm: Option<f64>,
}

impl Default for EvalOptions {
    fn default() -> Self {
        Self {
            bootstrap: 1000,
            seed: 0,
            confidence: 0.95,
            max_marks_per_scan: Some(LUNA16_MAX_MARKS_PER_SCAN),
            min_readers: 1,
            size_bins_vox: VoxBins::default(),
            size_bins_mm: MmBins::default(),
            voxel_mm: None,
        }
    }
}

impl EvalOptions {
    /// Set [`EvalOptions::bootstrap`].
    #[must_use]
    pub fn with_bootstrap(mut self, resamples: usize) -> Self {
        self.bootstrap = resamples;
        self
    }

    /// Set [`EvalOptions::seed`].
    #[must_use]
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Set [`EvalOptions::confidence`].
    #[must_use]
    pub fn with_confidence(mut self, confidence: f64) -> Self {
        self.confidence = confidence;
        self
    }

    /// Set [`EvalOptions::max_marks_per_scan`].
    #[must_use]
    pub fn with_max_marks_per_scan(mut self, cap: Option<usize>) -> Self {
        self.max_marks_per_scan = cap;
        self
    }

    /// Set [`EvalOptions::min_readers`].
    #[must_use]
    pub fn with_min_readers(mut self, readers: u32) -> Self {
        self.min_readers = readers;
        self
    }

    /// Set [`EvalOptions::size_bins_vox`].
    #[must_use]
    pub fn with_size_bins_vox(mut self, bins: VoxBins) -> Self {
        self.size_bins_vox = bins;
        self
    }

    /// Set [`EvalOptions::size_bins_mm`].
    #[must_use]
    pub fn with_size_bins_mm(mut self, bins: MmBins) -> Self {
        self.size_bins_mm = bins;
        self
    }

    /// Set [`EvalOptions::voxel_mm`].
    #[must_use]
    pub fn with_voxel_mm(mut self, voxel_mm: Option<f64>) -> Self {
        self.voxel_mm = voxel_mm;
        self
    }
}

/// Sensitivity at one FP rate.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct RatePoint {
    /// False positives per scan.
    pub fp_per_scan: f64,
    /// Sensitivity (`None`/null when the group has no nodule).
    pub sensitivity: Option<f64>,
    /// Bootstrap interval (`None` without bootstrap or without nodules).
    pub ci95: Option<[f64; 2]>,
}

/// The result for one group of nodules (a size bin, a density or attachment class, a
/// consensus level).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupResult {
    /// The group's label (`"3"`, `"4-6"`, `"solid"`, `">=2"`).
    pub label: String,
    /// Nodules in the group.
    pub n_nodules: usize,
    /// Of which hit by at least one candidate.
    pub n_detected: usize,
    /// Sensitivity at the seven LUNA16 FP rates.
    pub sensitivity_at_fp: Vec<RatePoint>,
    /// Mean of the seven sensitivities.
    pub cpm: Option<f64>,
    /// Bootstrap interval of the CPM.
    pub cpm_ci95: Option<[f64; 2]>,
}

/// Results per nodule size.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BySize {
    /// By rounded diameter in voxels (`None` when no nodule has a voxel diameter).
    pub vox: Option<Vec<GroupResult>>,
    /// Nodules with a voxel diameter in no voxel bin.
    pub vox_unbinned: usize,
    /// By diameter in mm.
    pub mm: Vec<GroupResult>,
    /// Nodules in no mm bin (negative diameters).
    pub mm_unbinned: usize,
}

/// How the intervals were computed.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct BootstrapInfo {
    /// Resamples of the scans.
    pub resamples: usize,
    /// Seed.
    pub seed: u64,
    /// Confidence level.
    pub confidence: f64,
}

/// The bootstrap band of the overall FROC curve, sampled at log-spaced FP rates.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Band {
    /// FP rates (per scan), from 1/8 to 8.
    pub fp_per_scan: Vec<f64>,
    /// Point-estimate sensitivity at each rate.
    pub sensitivity: Vec<f64>,
    /// Lower bound (`None` without bootstrap).
    pub lower: Option<Vec<f64>>,
    /// Upper bound.
    pub upper: Option<Vec<f64>>,
}

/// The outcome of an evaluation. Serialises to the `--json` document.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Evaluation {
    /// Always `"LUNA16"`.
    pub protocol: &'static str,
    /// Scans evaluated (including scans without nodules).
    pub n_scans: usize,
    /// Reference nodules (after the reader threshold) in the evaluated scans.
    pub n_nodules: usize,
    /// Of which hit by at least one candidate.
    pub n_detected: usize,
    /// Excluded findings in the evaluated scans.
    pub n_excluded_findings: usize,
    /// Nodules below `min_readers`, treated as excluded findings.
    pub n_below_min_readers: usize,
    /// The reader threshold used.
    pub min_readers: u32,
    /// What happened to the candidates.
    pub candidates: MatchCounts,
    /// The per-scan cap on marks (null: none).
    pub max_marks_per_scan: Option<usize>,
    /// Highest sensitivity reached (all candidates kept).
    pub max_sensitivity: f64,
    /// FP/scan with all candidates kept.
    pub max_fp_per_scan: f64,
    /// Competition performance metric: mean sensitivity at the seven FP rates.
    pub cpm: f64,
    /// Its bootstrap interval.
    pub cpm_ci95: Option<[f64; 2]>,
    /// Sensitivity at 1/8, 1/4, 1/2, 1, 2, 4 and 8 FP per scan.
    pub sensitivity_at_fp: Vec<RatePoint>,
    /// Results per size bin.
    pub by_size: BySize,
    /// Per density class (when the annotations have a `density` column).
    pub by_density: Option<Vec<GroupResult>>,
    /// Per attachment class (when the annotations have an `attachment` column).
    pub by_attachment: Option<Vec<GroupResult>>,
    /// Per consensus level `>=k` readers (when reader information exists); independent of
    /// `min_readers`.
    pub by_readers: Option<Vec<GroupResult>>,
    /// Bootstrap settings.
    pub bootstrap: BootstrapInfo,
    /// The full FROC curve (thresholds descending); not in the JSON, see the CSV output.
    #[serde(skip)]
    pub froc: Vec<FrocPoint>,
    /// The curve and its band at log-spaced rates, for plots; not in the JSON.
    #[serde(skip)]
    pub band: Band,
}

/// Log-spaced FP rates from 1/8 to 8 (64 per octave) for plots.
fn band_rates() -> Vec<f64> {
    (0..=384)
        .map(|k| (f64::from(k) / 64.0 - 3.0).exp2())
        .collect()
}

/// One group of nodules and its label.
struct Group {
    label: String,
    subset: Subset,
}

fn groups_by<K: Ord + Clone>(
    matched: &Matched,
    nodules: &[Nodule],
    member: &dyn Fn(&MatchedNodule) -> bool,
    keys: &[(K, String)],
    key_of: &dyn Fn(&Nodule) -> Option<K>,
) -> Vec<Group> {
    keys.iter()
        .map(|(k, label)| Group {
            label: label.clone(),
            subset: Subset::new(matched, |m| {
                member(m) && key_of(&nodules[m.index]).as_ref() == Some(k)
            }),
        })
        .collect()
}

fn class_groups(
    matched: &Matched,
    nodules: &[Nodule],
    member: &dyn Fn(&MatchedNodule) -> bool,
    field: fn(&Nodule) -> Option<&String>,
) -> Option<Vec<Group>> {
    if !nodules.iter().any(|n| field(n).is_some()) {
        return None;
    }
    let values: BTreeSet<String> = matched
        .nodules
        .iter()
        .filter(|m| member(m))
        .map(|m| {
            field(&nodules[m.index])
                .cloned()
                .unwrap_or_else(|| "unspecified".into())
        })
        .collect();
    let keys: Vec<(String, String)> = values.into_iter().map(|v| (v.clone(), v)).collect();
    Some(groups_by(matched, nodules, member, &keys, &|n: &Nodule| {
        Some(field(n).cloned().unwrap_or_else(|| "unspecified".into()))
    }))
}

/// Evaluate `candidates` against `nodules` with the LUNA16 protocol.
///
/// - `excluded`: findings whose hits are ignored (neither hits nor false positives).
/// - `series`: the evaluated scans; `None` infers them as the union of the seriesuids of
///   nodules, excluded findings and candidates (a scan with none of these cannot be known, so
///   pass the list when such scans exist: they count in FP/scan).
///
/// In steps: check the options, list the scans, match candidates to nodules per scan, keep the
/// nodules that reach the reader threshold, group them by size, class and consensus, score every
/// group on all scans and on each bootstrap resample, then summarise.
///
/// # Errors
/// [`EvalError::NoScans`] without scans, [`EvalError::NoNodules`] when no reference nodule lies
/// in the evaluated scans, [`EvalError::InvalidOption`] for a bad confidence, voxel size or a
/// reader threshold without reader information.
pub fn evaluate(
    nodules: &[Nodule],
    excluded: &[ExcludedFinding],
    candidates: &[ScoredCandidate],
    series: Option<&[String]>,
    options: &EvalOptions,
) -> Result<Evaluation, EvalError> {
    validate(nodules, options)?;
    let series = evaluated_series(nodules, excluded, candidates, series)?;
    let matched = match_scans(
        nodules,
        excluded,
        candidates,
        &series,
        options.max_marks_per_scan,
    );
    if matched.counts.unknown_series > 0 || matched.counts.findings_unknown_series > 0 {
        tracing::warn!(
            candidates = matched.counts.unknown_series,
            findings = matched.counts.findings_unknown_series,
            "ignored candidates/findings in scans outside the series list"
        );
    }
    let min_readers = options.min_readers.max(1);
    let in_main = |m: &MatchedNodule| nodules[m.index].n_readers.unwrap_or(1) >= min_readers;
    let main = main_subset(&matched, series.len(), min_readers, &in_main)?;
    let sections = Sections::new(&matched, nodules, options, &in_main);
    let scores = Scores::compute(&matched, &main, &sections, options);

    let conf = options.confidence;
    let main_result = scores.summarise(0, "all".into(), &main, conf);
    let mut k = 1;
    let mut take = |groups: Option<&Vec<Group>>| -> Option<Vec<GroupResult>> {
        groups.map(|gs| {
            gs.iter()
                .map(|g| {
                    let r = scores.summarise(k, g.label.clone(), &g.subset, conf);
                    k += 1;
                    r
                })
                .collect()
        })
    };
    let vox = take(sections.vox.as_ref());
    let mm = take(Some(&sections.mm)).unwrap_or_default();
    let by_density = take(sections.density.as_ref());
    let by_attachment = take(sections.attachment.as_ref());
    let by_readers = take(sections.readers.as_ref());
    let (vox_unbinned, mm_unbinned) =
        sections.unbinned(&matched, nodules, options.voxel_mm, &main, &in_main);

    let froc = froc_curve(&matched, &main).unwrap_or_default();
    let last = froc.last().copied();
    let n_excluded_findings = {
        let set: BTreeSet<&str> = series.iter().map(String::as_str).collect();
        excluded
            .iter()
            .filter(|e| set.contains(e.seriesuid.as_str()))
            .count()
    };
    Ok(Evaluation {
        protocol: "LUNA16",
        n_scans: matched.n_scans,
        n_nodules: main.n_nodules(),
        n_detected: main.n_detected(),
        n_excluded_findings,
        n_below_min_readers: matched.nodules.len() - main.n_nodules(),
        min_readers,
        candidates: matched.counts,
        max_marks_per_scan: options.max_marks_per_scan,
        max_sensitivity: last.map_or(0.0, |p| p.sensitivity),
        max_fp_per_scan: last.map_or(0.0, |p| p.fp_per_scan),
        cpm: main_result.cpm.unwrap_or(0.0),
        cpm_ci95: main_result.cpm_ci95,
        sensitivity_at_fp: main_result.sensitivity_at_fp,
        by_size: BySize {
            vox,
            vox_unbinned,
            mm,
            mm_unbinned,
        },
        by_density,
        by_attachment,
        by_readers,
        bootstrap: BootstrapInfo {
            resamples: options.bootstrap,
            seed: options.seed,
            confidence: conf,
        },
        froc,
        band: scores.band(conf),
    })
}

/// Step 1: the options are usable with these nodules.
fn validate(nodules: &[Nodule], options: &EvalOptions) -> Result<(), EvalError> {
    if !(options.confidence > 0.0 && options.confidence < 1.0) {
        return Err(EvalError::InvalidOption {
            option: "confidence".into(),
            reason: format!("{} is not in (0, 1)", options.confidence),
        });
    }
    if options.bootstrap > MAX_BOOTSTRAP {
        return Err(EvalError::InvalidOption {
            option: "bootstrap".into(),
            reason: format!("{} resamples: at most {MAX_BOOTSTRAP}", options.bootstrap),
        });
    }
    if let Some(v) = options.voxel_mm {
        if !(v.is_finite() && v > 0.0) {
            return Err(EvalError::InvalidOption {
                option: "voxel_mm".into(),
                reason: format!("{v} is not a positive length"),
            });
        }
    }
    if options.min_readers > 1 && nodules.iter().any(|n| n.n_readers.is_none()) {
        return Err(EvalError::InvalidOption {
            option: "min_readers".into(),
            reason: format!(
                "{}: some annotations carry no reader count (add a `reader` or `n_readers` column)",
                options.min_readers
            ),
        });
    }
    Ok(())
}

/// Step 2: the evaluated scans, given or inferred (sorted union of the seriesuids of nodules,
/// excluded findings and candidates).
fn evaluated_series(
    nodules: &[Nodule],
    excluded: &[ExcludedFinding],
    candidates: &[ScoredCandidate],
    series: Option<&[String]>,
) -> Result<Vec<String>, EvalError> {
    let series: Vec<String> = match series {
        Some(s) => s.to_vec(),
        None => {
            let set: BTreeSet<&str> = nodules
                .iter()
                .map(|n| n.seriesuid.as_str())
                .chain(excluded.iter().map(|e| e.seriesuid.as_str()))
                .chain(candidates.iter().map(|c| c.seriesuid.as_str()))
                .collect();
            set.into_iter().map(String::from).collect()
        }
    };
    if series.is_empty() {
        return Err(EvalError::NoScans(
            "no series list and no seriesuid in annotations or candidates".into(),
        ));
    }
    Ok(series)
}

/// Step 3: the nodules that count (at or above the reader threshold); an error when there are
/// none.
fn main_subset(
    matched: &Matched,
    n_scans: usize,
    min_readers: u32,
    in_main: &dyn Fn(&MatchedNodule) -> bool,
) -> Result<Subset, EvalError> {
    let main = Subset::new(matched, in_main);
    if main.n_nodules() == 0 {
        return Err(EvalError::NoNodules {
            n_scans,
            hint: if matched.nodules.is_empty() {
                "do the seriesuids of annotations and series list agree?".into()
            } else {
                format!("all nodules are below the reader threshold (min_readers {min_readers})")
            },
        });
    }
    Ok(main)
}

/// A nodule's diameter in voxels: its own, or derived from `voxel_mm`; never negative.
fn diameter_vox(n: &Nodule, voxel_mm: Option<f64>) -> Option<f64> {
    n.diameter_vox
        .or_else(|| voxel_mm.map(|v| n.diameter_mm / v))
        .filter(|d| *d >= 0.0)
}

/// Step 4: the groups of counted nodules, per section of the report.
struct Sections {
    /// By rounded diameter in voxels (when some nodule has one).
    vox: Option<Vec<Group>>,
    /// By diameter in mm.
    mm: Vec<Group>,
    /// By density class (when given).
    density: Option<Vec<Group>>,
    /// By attachment class (when given).
    attachment: Option<Vec<Group>>,
    /// By consensus level `>=k` (when reader information exists).
    readers: Option<Vec<Group>>,
}

impl Sections {
    fn new(
        matched: &Matched,
        nodules: &[Nodule],
        options: &EvalOptions,
        in_main: &dyn Fn(&MatchedNodule) -> bool,
    ) -> Self {
        let vox = if nodules
            .iter()
            .any(|n| diameter_vox(n, options.voxel_mm).is_some())
        {
            let keys: Vec<(usize, String)> = options
                .size_bins_vox
                .0
                .iter()
                .enumerate()
                .map(|(i, b)| (i, b.label.clone()))
                .collect();
            Some(groups_by(
                matched,
                nodules,
                in_main,
                &keys,
                &|n: &Nodule| {
                    diameter_vox(n, options.voxel_mm).and_then(|d| options.size_bins_vox.bin_of(d))
                },
            ))
        } else {
            None
        };
        let mm_keys: Vec<(usize, String)> = options
            .size_bins_mm
            .labels()
            .into_iter()
            .enumerate()
            .collect();
        let mm = groups_by(matched, nodules, in_main, &mm_keys, &|n: &Nodule| {
            options.size_bins_mm.bin_of(n.diameter_mm)
        });
        let density = class_groups(matched, nodules, in_main, |n| n.density.as_ref());
        let attachment = class_groups(matched, nodules, in_main, |n| n.attachment.as_ref());
        let readers = nodules.iter().any(|n| n.n_readers.is_some()).then(|| {
            let max = nodules
                .iter()
                .filter_map(|n| n.n_readers)
                .max()
                .unwrap_or(1);
            (1..=max.max(3))
                .map(|k| Group {
                    label: format!(">={k}"),
                    subset: Subset::new(matched, |m| nodules[m.index].n_readers.unwrap_or(1) >= k),
                })
                .collect::<Vec<_>>()
        });
        Self {
            vox,
            mm,
            density,
            attachment,
            readers,
        }
    }

    /// Every group's subset, in report order (voxels, mm, density, attachment, readers).
    fn subsets(&self) -> impl Iterator<Item = &Subset> {
        [
            self.vox.as_ref(),
            Some(&self.mm),
            self.density.as_ref(),
            self.attachment.as_ref(),
            self.readers.as_ref(),
        ]
        .into_iter()
        .flatten()
        .flat_map(|g| g.iter().map(|g| &g.subset))
    }

    /// Counted nodules in no voxel bin (among those with a voxel diameter) and in no mm bin.
    fn unbinned(
        &self,
        matched: &Matched,
        nodules: &[Nodule],
        voxel_mm: Option<f64>,
        main: &Subset,
        in_main: &dyn Fn(&MatchedNodule) -> bool,
    ) -> (usize, usize) {
        let count_in =
            |groups: &[Group]| -> usize { groups.iter().map(|g| g.subset.n_nodules()).sum() };
        let vox_unbinned = self.vox.as_ref().map_or(0, |groups| {
            let n_with_vox = matched
                .nodules
                .iter()
                .filter(|m| in_main(m) && diameter_vox(&nodules[m.index], voxel_mm).is_some())
                .count();
            n_with_vox - count_in(groups)
        });
        (vox_unbinned, main.n_nodules() - count_in(&self.mm))
    }
}

/// Sensitivities at the LUNA16 rates of one scoring (the point estimate or one resample), per
/// subset (`None`: the subset has no nodule), and the main curve at the band's rates.
type Scoring = (Vec<Option<Vec<f64>>>, Option<Vec<f64>>);

/// Step 5: every subset scored on all scans and on each bootstrap resample of the scans.
struct Scores {
    /// Point estimates per subset: the main subset first, then [`Sections::subsets`].
    point: Vec<Option<Vec<f64>>>,
    /// Point estimate of the main curve at [`Scores::band_rates`].
    band_point: Vec<f64>,
    /// The FP rates of the band.
    band_rates: Vec<f64>,
    /// One scoring per resample.
    boot: Vec<Scoring>,
}

impl Scores {
    fn compute(
        matched: &Matched,
        main: &Subset,
        sections: &Sections,
        options: &EvalOptions,
    ) -> Self {
        let all: Vec<&Subset> = std::iter::once(main).chain(sections.subsets()).collect();
        let rates = LUNA16_FP_RATES;
        let band_rates = band_rates();
        let cum = fp_cumulative(matched, None);
        let point: Vec<Option<Vec<f64>>> = all
            .iter()
            .map(|s| sensitivity_at(matched, &cum, s, None, &rates))
            .collect();
        let band_point = sensitivity_at(matched, &cum, main, None, &band_rates).unwrap_or_default();
        let boot = bootstrap::run(matched.n_scans, options.bootstrap, options.seed, |w| {
            let cum = fp_cumulative(matched, Some(w));
            let per: Vec<Option<Vec<f64>>> = all
                .iter()
                .map(|s| sensitivity_at(matched, &cum, s, Some(w), &rates))
                .collect();
            let band = sensitivity_at(matched, &cum, main, Some(w), &band_rates);
            (per, band)
        });
        Self {
            point,
            band_point,
            band_rates,
            boot,
        }
    }

    /// The result of subset `k` (in [`Scores::point`] order), with intervals at `conf`.
    fn summarise(&self, k: usize, label: String, subset: &Subset, conf: f64) -> GroupResult {
        let p = self.point[k].as_ref();
        let sensitivity_at_fp = LUNA16_FP_RATES
            .iter()
            .enumerate()
            .map(|(i, &r)| {
                let mut v: Vec<f64> = self
                    .boot
                    .iter()
                    .filter_map(|(per, _)| per[k].as_ref().map(|s| s[i]))
                    .collect();
                RatePoint {
                    fp_per_scan: r,
                    sensitivity: p.map(|s| s[i]),
                    ci95: bootstrap::percentile_interval(&mut v, conf),
                }
            })
            .collect();
        let mut cpms: Vec<f64> = self
            .boot
            .iter()
            .filter_map(|(per, _)| {
                per[k]
                    .as_ref()
                    .map(|s| s.iter().sum::<f64>() / s.len() as f64)
            })
            .collect();
        GroupResult {
            label,
            n_nodules: subset.n_nodules(),
            n_detected: subset.n_detected(),
            sensitivity_at_fp,
            cpm: p.map(|s| s.iter().sum::<f64>() / s.len() as f64),
            cpm_ci95: bootstrap::percentile_interval(&mut cpms, conf),
        }
    }

    /// The main curve and its bootstrap band at `conf`.
    fn band(self, conf: f64) -> Band {
        let (lower, upper) = if self.boot.is_empty() {
            (None, None)
        } else {
            let mut lo = Vec::with_capacity(self.band_rates.len());
            let mut hi = Vec::with_capacity(self.band_rates.len());
            for i in 0..self.band_rates.len() {
                let mut v: Vec<f64> = self
                    .boot
                    .iter()
                    .filter_map(|(_, b)| b.as_ref().map(|b| b[i]))
                    .collect();
                let iv = bootstrap::percentile_interval(&mut v, conf).unwrap_or([f64::NAN; 2]);
                lo.push(iv[0]);
                hi.push(iv[1]);
            }
            (Some(lo), Some(hi))
        };
        Band {
            fp_per_scan: self.band_rates,
            sensitivity: self.band_point,
            lower,
            upper,
        }
    }
}
