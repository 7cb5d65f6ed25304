//! Measured size: a candidate's volume and diameters from the image itself.
//!
//! The fine model regresses a diameter, which runs 10–22 % large on real nodules. [`measure`]
//! instead segments the lesion around a world position and measures the segmentation:
//!
//! 1. **Region of interest.** A box of a few cm around the seed (half-width
//!    `clamp(1.5 · hint + 12, 20, 45)` mm, 30 mm without a hint), clipped to the volume.
//! 2. **Levels.** The parenchyma level `B` is the median of the ROI voxels in the lung range
//!    (−990 … −600 HU). A radial profile (0.5 mm shells around the seed, world mm) gives the
//!    lesion's outer edge `r_b`: the first shell whose 30th percentile falls below
//!    `B + ½·min(peak − B, 250)` (a ground-glass halo around a solid core still counts, and a
//!    wall or vessel filling part of a shell does not push the edge out). The lesion level `L`
//!    is the median 1.0–1.5 mm inside that edge (the centre for small lesions): for a
//!    part-solid nodule the halo, not the core.
//! 3. **Threshold** `T = (B + L) / 2`: half-way between parenchyma and lesion, where the
//!    scanner's blur puts the true surface of a lesion larger than the blur.
//! 4. **Thick structures.** Everything above `T` that a ball of radius
//!    `r_b + max(1.5, 0.25 · r_b)` mm fits into (chest wall, mediastinum, diaphragm, hilar
//!    vessels: thicker than the lesion; outside the ROI counts as above `T`) is removed, a
//!    white top-hat. The part of a juxtapleural nodule that lies in the wall cannot be told
//!    from the wall and is not counted.
//! 5. **Region growing** (6-connected) from the seed (or the nearest remaining voxel within
//!    1.5 mm), limited to `1.4 · r_b + 1` mm from the seed (a compact lesion's reach, which
//!    bounds any leak); then a morphological opening with a ball of radius `0.4 · r_b` cuts
//!    vessels thinner than that and the component around the seed is kept. A result that
//!    fills more than 12 % of the outer shell of that reach has run into something and is
//!    [`Reliability::Leaked`].
//! 6. **Measures.** Volume = voxel count × voxel volume; equivalent diameter `(6V/π)^⅓`; the
//!    longest in-plane (axial slice) diameter and the longest diameter perpendicular to it in
//!    the same slice; [`Reliability`] says when the result should not be trusted.
//!
//! All distances are world millimetres (anisotropic spacing is honoured); they are computed as
//! index offsets times spacing, exact for the orthonormal directions every reader produces.
//! "Axial" means the volume's slice plane (`z` index).
//!
//! ```
//! use ndarray::Array3;
//! use speck_candidates::measure::{measure, Reliability};
//! use speck_volume::{Direction, Geometry, Provenance, Spacing, Volume, WorldPoint};
//!
//! // A 10 mm solid sphere (+40 HU) in lung (-870 HU), 0.7 x 0.7 x 1.0 mm voxels.
//! let spacing = Spacing::new(0.7, 0.7, 1.0)?;
//! let geometry = Geometry::new(spacing, WorldPoint::new(0.0, 0.0, 0.0), Direction::IDENTITY);
//! let voxels = Array3::from_shape_fn((40, 64, 64), |(z, y, x)| {
//!     let d = ((z as f64 - 20.0).powi(2)
//!         + ((y as f64 - 32.0) * 0.7).powi(2)
//!         + ((x as f64 - 32.0) * 0.7).powi(2))
//!     .sqrt();
//!     if d <= 5.0 { 40 } else { -870 }
//! });
//! let volume = Volume::new(voxels, geometry, Provenance::default())?;
//! let m = measure(&volume, WorldPoint::new(22.4, 22.4, 20.0), Some(12.0))?;
//! assert_eq!(m.reliability, Reliability::Reliable);
//! assert!((m.equivalent_diameter_mm - 10.0).abs() < 0.5);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::VecDeque;
use std::fmt;

use ndarray::{s, Array3, Axis};
use serde::{Deserialize, Serialize};
use speck_volume::{Volume, WorldPoint};

/// Why a lesion could not be measured at all.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MeasureError {
    /// The seed lies outside the volume.
    #[error("seed ({x_mm:.1}, {y_mm:.1}, {z_mm:.1}) mm (LPS) lies outside the volume")]
    OutsideVolume {
        /// Seed x, LPS mm.
        x_mm: f64,
        /// Seed y, LPS mm.
        y_mm: f64,
        /// Seed z, LPS mm.
        z_mm: f64,
    },
    /// The diameter hint is not a finite positive number.
    #[error("diameter hint {0} mm is not a finite positive number")]
    InvalidHint(f64),
    /// An option is out of range.
    #[error("invalid measure option: {0}")]
    InvalidOptions(String),
}

/// How far a [`Measurement`] can be trusted. The first problem found wins, in the order
/// [`Empty`](Reliability::Empty), [`Leaked`](Reliability::Leaked),
/// [`RoiBorder`](Reliability::RoiBorder).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Reliability {
    /// Nothing went wrong that the method can see.
    Reliable,
    /// The segmented region reaches the border of the region of interest (or of the volume):
    /// the lesion may be larger than measured.
    RoiBorder,
    /// The region runs on beyond a compact lesion's reach (it fills more than 12 % of the
    /// outer shell of the region it may grow in), or is over 2.5 times the hint's diameter or
    /// [`MeasureOptions::max_diameter_mm`]: it has probably run into a vessel or the wall.
    Leaked,
    /// Nothing lesion-like at the seed: no contrast against the parenchyma, or the region
    /// vanished when attachments were cut. The sizes are then 0.
    Empty,
}

impl Reliability {
    /// `true` only for [`Reliability::Reliable`].
    pub const fn is_reliable(self) -> bool {
        matches!(self, Self::Reliable)
    }

    /// A short name: `reliable`, `roi-border`, `leaked` or `empty`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Reliable => "reliable",
            Self::RoiBorder => "roi-border",
            Self::Leaked => "leaked",
            Self::Empty => "empty",
        }
    }
}

impl fmt::Display for Reliability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Lung-RADS v2022 size class of a **solid** nodule: the size steps of categories 2, 3, 4A and
/// 4B at baseline.
///
/// Lung-RADS v2022 sizes a nodule by its **mean diameter**, the average of its long axis and the
/// perpendicular short axis measured in one plane, rounded to one decimal (mm); volume
/// equivalents are 113, 268 and 1,767 mm³. Speck measures both axes in the axial slice
/// ([`Measurement::mean_axial_mm`]); part-solid and ground-glass nodules have other rules (solid
/// component, 30 mm) that this class does not cover.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum LungRadsSize {
    /// Mean diameter below 6 mm (category 2 at baseline).
    Below6,
    /// 6 mm to below 8 mm (category 3).
    From6To8,
    /// 8 mm to below 15 mm (category 4A).
    From8To15,
    /// 15 mm or more (category 4B).
    AtLeast15,
}

impl LungRadsSize {
    /// The class of a mean diameter (mm), rounded to one decimal first as Lung-RADS says
    /// (5.96 mm rounds to 6.0 and is `From6To8`). `None` for a diameter that is not finite or
    /// negative.
    pub fn from_mean_diameter_mm(d_mm: f64) -> Option<Self> {
        if !(d_mm.is_finite() && d_mm >= 0.0) {
            return None;
        }
        let d = (d_mm * 10.0).round() / 10.0;
        Some(if d < 6.0 {
            Self::Below6
        } else if d < 8.0 {
            Self::From6To8
        } else if d < 15.0 {
            Self::From8To15
        } else {
            Self::AtLeast15
        })
    }

    /// The class of a volume (mm³) by the Lung-RADS volume equivalents (113, 268, 1,767 mm³).
    /// `None` for a volume that is not finite or negative.
    pub fn from_volume_mm3(v_mm3: f64) -> Option<Self> {
        if !(v_mm3.is_finite() && v_mm3 >= 0.0) {
            return None;
        }
        Some(if v_mm3 < 113.0 {
            Self::Below6
        } else if v_mm3 < 268.0 {
            Self::From6To8
        } else if v_mm3 < 1767.0 {
            Self::From8To15
        } else {
            Self::AtLeast15
        })
    }

    /// The label used in CSV files and reports: `<6`, `6-8`, `8-15` or `>=15` (mm).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Below6 => "<6",
            Self::From6To8 => "6-8",
            Self::From8To15 => "8-15",
            Self::AtLeast15 => ">=15",
        }
    }
}

impl fmt::Display for LungRadsSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Knobs of [`measure_with`]; the defaults are what [`measure`] uses.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MeasureOptions {
    /// Half-width (mm) of the region of interest around the seed; `None`: from the hint,
    /// `clamp(1.5 · hint + 12, 20, 45)`, or 30 mm without one.
    pub roi_half_width_mm: Option<f64>,
    /// A region with a larger equivalent diameter (mm) is [`Reliability::Leaked`]. Default 45.
    pub max_diameter_mm: f64,
    /// How far (mm) from the seed to look for a voxel above the threshold when the seed voxel
    /// is below it. Default 1.5.
    pub seed_search_mm: f64,
}

impl Default for MeasureOptions {
    fn default() -> Self {
        Self {
            roi_half_width_mm: None,
            max_diameter_mm: 45.0,
            seed_search_mm: 1.5,
        }
    }
}

impl MeasureOptions {
    fn validate(&self) -> Result<(), MeasureError> {
        if let Some(h) = self.roi_half_width_mm {
            if !(h.is_finite() && (2.0..=200.0).contains(&h)) {
                return Err(MeasureError::InvalidOptions(format!(
                    "roi_half_width_mm {h}; allowed 2..=200"
                )));
            }
        }
        if !(self.max_diameter_mm.is_finite() && self.max_diameter_mm > 0.0) {
            return Err(MeasureError::InvalidOptions(format!(
                "max_diameter_mm {} must be finite and > 0",
                self.max_diameter_mm
            )));
        }
        if !(self.seed_search_mm.is_finite() && (0.0..=20.0).contains(&self.seed_search_mm)) {
            return Err(MeasureError::InvalidOptions(format!(
                "seed_search_mm {}; allowed 0..=20",
                self.seed_search_mm
            )));
        }
        Ok(())
    }
}

/// A lesion's size measured from the image.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Measurement {
    /// Volume of the segmentation, mm³ (voxel count × voxel volume).
    pub volume_mm3: f64,
    /// Diameter of the sphere of that volume, `(6V/π)^⅓`, mm.
    pub equivalent_diameter_mm: f64,
    /// Longest diameter within one axial slice (the volume's slice plane), mm, measured between
    /// voxel centres plus one in-plane voxel (so a row of n voxels measures n voxels).
    pub longest_axial_mm: f64,
    /// Longest diameter perpendicular to the long axis, in the same slice, mm.
    pub short_axial_mm: f64,
    /// Number of voxels in the segmentation.
    pub voxels: usize,
    /// Parenchyma level used, HU.
    pub parenchyma_hu: f64,
    /// Lesion level used (the halo for a part-solid nodule), HU.
    pub lesion_hu: f64,
    /// Threshold used, HU (half-way between the two levels).
    pub threshold_hu: f64,
    /// How far to trust the numbers.
    pub reliability: Reliability,
}

impl Measurement {
    /// Mean of the long and short axial diameters, mm: Lung-RADS' "mean diameter".
    pub fn mean_axial_mm(&self) -> f64 {
        0.5 * (self.longest_axial_mm + self.short_axial_mm)
    }

    /// Lung-RADS v2022 size class from [`Measurement::mean_axial_mm`] (meaningful for solid
    /// nodules); `None` when the measurement is [`Reliability::Empty`].
    pub fn lung_rads_size(&self) -> Option<LungRadsSize> {
        if self.reliability == Reliability::Empty {
            return None;
        }
        LungRadsSize::from_mean_diameter_mm(self.mean_axial_mm())
    }

    fn empty(b: f64, l: f64, t: f64) -> Self {
        Self {
            volume_mm3: 0.0,
            equivalent_diameter_mm: 0.0,
            longest_axial_mm: 0.0,
            short_axial_mm: 0.0,
            voxels: 0,
            parenchyma_hu: b,
            lesion_hu: l,
            threshold_hu: t,
            reliability: Reliability::Empty,
        }
    }
}

/// Measure the lesion at `centre` (LPS mm) with the default [`MeasureOptions`].
///
/// `hint_diameter_mm` (e.g. the model's estimate) only sizes the region of interest and the leak
/// test; the measured size does not depend on it otherwise.
///
/// # Errors
/// [`MeasureError::OutsideVolume`] when `centre` is outside the volume,
/// [`MeasureError::InvalidHint`] for a hint that is not finite and positive. A seed on nothing
/// lesion-like is not an error: the result is [`Reliability::Empty`].
pub fn measure(
    volume: &Volume,
    centre: WorldPoint,
    hint_diameter_mm: Option<f64>,
) -> Result<Measurement, MeasureError> {
    measure_with(volume, centre, hint_diameter_mm, &MeasureOptions::default())
}

/// [`measure`] with explicit options (see the [module docs](self) for the method).
///
/// # Errors
/// As [`measure`], plus [`MeasureError::InvalidOptions`] for options out of range.
pub fn measure_with(
    volume: &Volume,
    centre: WorldPoint,
    hint_diameter_mm: Option<f64>,
    options: &MeasureOptions,
) -> Result<Measurement, MeasureError> {
    options.validate()?;
    if let Some(h) = hint_diameter_mm {
        if !(h.is_finite() && h > 0.0) {
            return Err(MeasureError::InvalidHint(h));
        }
    }
    let shape = volume.shape_zyx();
    let ci = volume.world_to_index(centre);
    if ci.round_within(shape).is_none() {
        return Err(MeasureError::OutsideVolume {
            x_mm: centre.x_mm,
            y_mm: centre.y_mm,
            z_mm: centre.z_mm,
        });
    }
    let sp = volume.geometry().spacing.zyx();
    let half = options.roi_half_width_mm.unwrap_or(match hint_diameter_mm {
        Some(h) => (1.5 * h + 12.0).clamp(20.0, 45.0),
        None => 30.0,
    });
    let seed_c = [ci.z, ci.y, ci.x];
    let mut lo = [0usize; 3];
    let mut hi = [0usize; 3];
    for a in 0..3 {
        let r = (half / sp[a]).ceil();
        let l = (seed_c[a] - r).floor();
        let h = (seed_c[a] + r).ceil();
        lo[a] = l.max(0.0) as usize;
        hi[a] = (h.min((shape[a] - 1) as f64) as usize).max(lo[a]);
    }
    let roi = volume
        .voxels()
        .slice(s![lo[0]..=hi[0], lo[1]..=hi[1], lo[2]..=hi[2]])
        .mapv(f64::from);
    let dims = roi.dim();
    let seed_local = [
        seed_c[0] - lo[0] as f64,
        seed_c[1] - lo[1] as f64,
        seed_c[2] - lo[2] as f64,
    ];
    let dist = Array3::from_shape_fn(dims, |(z, y, x)| {
        let d = [
            (z as f64 - seed_local[0]) * sp[0],
            (y as f64 - seed_local[1]) * sp[1],
            (x as f64 - seed_local[2]) * sp[2],
        ];
        (d[0] * d[0] + d[1] * d[1] + d[2] * d[2]).sqrt()
    });

    // 2. Levels.
    let mut lung: Vec<f64> = roi
        .iter()
        .copied()
        .filter(|v| (-990.0..=-600.0).contains(v))
        .collect();
    let b = median(&mut lung).unwrap_or(-850.0);
    const SHELL_MM: f64 = 0.5;
    // A shell is past the edge when this fraction of it is below the edge level: a lower
    // quantile than the median, so that a wall or vessel filling part of the shell beside a
    // juxtapleural or vessel-attached lesion does not push the edge outwards.
    const EDGE_QUANTILE: f64 = 0.3;
    let n_shells = (half / SHELL_MM).ceil() as usize + 1;
    let mut shells: Vec<Vec<f64>> = vec![Vec::new(); n_shells];
    for (v, d) in roi.iter().zip(dist.iter()) {
        let k = (d / SHELL_MM) as usize;
        if k < n_shells {
            shells[k].push(*v);
        }
    }
    let mut profile = Vec::with_capacity(n_shells);
    let core_r = 1.0f64.max(0.5 * sp.iter().copied().fold(0.0, f64::max));
    let mut core: Vec<f64> = roi
        .iter()
        .zip(dist.iter())
        .filter(|(_, d)| **d <= core_r)
        .map(|(v, _)| *v)
        .collect();
    let peak = median(&mut core).unwrap_or(b);
    // Shells too thin to hold a voxel centre (near the seed) take the level inside them.
    let mut last = peak;
    for sh in shells.iter_mut() {
        if let Some(m) = quantile(sh, EDGE_QUANTILE) {
            last = m;
        }
        profile.push(last);
    }
    let edge_level = b + 0.5 * (peak - b).clamp(0.0, 250.0);
    let edge_shell = profile
        .iter()
        .position(|m| *m < edge_level)
        .unwrap_or(n_shells);
    let r_b = (edge_shell as f64 * SHELL_MM).max(SHELL_MM);
    let r_l = (r_b - 1.0).max(0.0);
    let mut inner: Vec<f64> = roi
        .iter()
        .zip(dist.iter())
        .filter(|(_, d)| **d >= (r_l - 0.5).max(0.0) && **d <= r_l.max(core_r))
        .map(|(v, _)| *v)
        .collect();
    let l = median(&mut inner).unwrap_or(peak);
    let t = 0.5 * (b + l);
    if l - b < 100.0 {
        return Ok(Measurement::empty(b, l, t));
    }

    // 4. Region growing from the seed, after removing what is thicker than the lesion.
    let seed_vox = [
        (seed_local[0].round().max(0.0) as usize).min(dims.0 - 1),
        (seed_local[1].round().max(0.0) as usize).min(dims.1 - 1),
        (seed_local[2].round().max(0.0) as usize).min(dims.2 - 1),
    ];
    let above = roi.mapv(|v| v >= t);
    // Chest wall, mediastinum, diaphragm, hilar vessels: every voxel a ball of radius `r2`
    // fits into (outside the ROI counts as above the threshold).
    let r2 = r_b + (0.25 * r_b).max(1.5);
    let thick = opening(&above, sp, r2);
    // Everything that can belong to the lesion: not thick, and within the reach of a compact
    // lesion of this size.
    let reach = 1.4 * r_b + 1.0;
    let mut cand = above.clone();
    ndarray::Zip::from(&mut cand)
        .and(&thick)
        .and(&dist)
        .for_each(|c, &w, &d| *c = *c && !w && d <= reach);
    let start = if cand[seed_vox] {
        Some(seed_vox)
    } else {
        nearest_set(&cand, &dist, options.seed_search_mm)
    };
    let Some(start) = start else {
        return Ok(Measurement::empty(b, l, t));
    };
    let grown = component(&cand, start);

    // 5. Vessels: an opening cuts those thinner than `r1`; keep the part around the seed.
    let r1 = 0.4 * r_b;
    let opened = opening(&grown, sp, r1);
    let Some(s1) = nearest_set(&opened, &dist, r_b.max(options.seed_search_mm)) else {
        return Ok(Measurement::empty(b, l, t));
    };
    let lesion = component(&opened, s1);
    // Leak test: a lesion that fills much of the outer shell of its reach runs on into
    // something (a wall the top-hat missed, a thick vessel).
    let shell_w = sp.iter().copied().fold(0.0, f64::max);
    let (mut shell_n, mut shell_set) = (0usize, 0usize);
    for (m, d) in lesion.iter().zip(dist.iter()) {
        if *d > reach - shell_w && *d <= reach {
            shell_n += 1;
            shell_set += usize::from(*m);
        }
    }
    let leaked_shell = shell_n > 0 && shell_set as f64 > 0.12 * shell_n as f64;

    // 6. Measures.
    let voxels = lesion.iter().filter(|v| **v).count();
    let vol = voxels as f64 * sp[0] * sp[1] * sp[2];
    let eq = (6.0 * vol / std::f64::consts::PI).cbrt();
    let (long, short) = axial_diameters(&lesion, sp);
    let roi_border = touches_border(&lesion);
    let leak_limit = hint_diameter_mm
        .map_or(f64::INFINITY, |h| 2.5 * h)
        .min(options.max_diameter_mm);
    let reliability = if leaked_shell || eq > leak_limit {
        Reliability::Leaked
    } else if roi_border {
        Reliability::RoiBorder
    } else {
        Reliability::Reliable
    };
    Ok(Measurement {
        volume_mm3: vol,
        equivalent_diameter_mm: eq,
        longest_axial_mm: long,
        short_axial_mm: short,
        voxels,
        parenchyma_hu: b,
        lesion_hu: l,
        threshold_hu: t,
        reliability,
    })
}

/// Median of a slice (reordered in place); `None` when empty.
fn median(v: &mut [f64]) -> Option<f64> {
    quantile(v, 0.5)
}

/// The `q` quantile (nearest rank) of a slice (reordered in place); `None` when empty.
fn quantile(v: &mut [f64], q: f64) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let k = ((q * v.len() as f64) as usize).min(v.len() - 1);
    let (_, m, _) = v.select_nth_unstable_by(k, f64::total_cmp);
    Some(*m)
}

/// The 6-connected component of `mask` containing `start` (empty if `start` is not set).
fn component(mask: &Array3<bool>, start: [usize; 3]) -> Array3<bool> {
    let dims = mask.dim();
    let mut out = Array3::from_elem(dims, false);
    if !mask[start] {
        return out;
    }
    let mut queue = VecDeque::from([start]);
    out[start] = true;
    let n = [dims.0, dims.1, dims.2];
    while let Some(p) = queue.pop_front() {
        for a in 0..3 {
            for up in [false, true] {
                let mut q = p;
                if up {
                    if p[a] + 1 >= n[a] {
                        continue;
                    }
                    q[a] += 1;
                } else {
                    if p[a] == 0 {
                        continue;
                    }
                    q[a] -= 1;
                }
                if mask[q] && !out[q] {
                    out[q] = true;
                    queue.push_back(q);
                }
            }
        }
    }
    out
}

/// The set voxel nearest the seed within `max_mm`, if any.
fn nearest_set(mask: &Array3<bool>, dist: &Array3<f64>, max_mm: f64) -> Option<[usize; 3]> {
    mask.indexed_iter()
        .filter(|(i, m)| **m && dist[*i] <= max_mm)
        .min_by(|a, b| dist[a.0].total_cmp(&dist[b.0]))
        .map(|((z, y, x), _)| [z, y, x])
}

/// Squared Euclidean distance (mm²) from every voxel centre to the nearest `source` voxel
/// centre (`f64::INFINITY` when there is none), exact, separable (Felzenszwalb–Huttenlocher).
fn edt_sq(source: &Array3<bool>, sp: [f64; 3]) -> Array3<f64> {
    let mut d = source.mapv(|s| if s { 0.0 } else { f64::INFINITY });
    let mut f = Vec::new();
    let mut out = Vec::new();
    let mut v = Vec::new();
    let mut zb = Vec::new();
    for (axis, s) in sp.iter().enumerate() {
        let s2 = s * s;
        for mut lane in d.lanes_mut(Axis(axis)) {
            f.clear();
            f.extend(lane.iter().copied());
            out.resize(f.len(), 0.0);
            edt_1d(&f, s2, &mut out, &mut v, &mut zb);
            for (o, n) in lane.iter_mut().zip(out.iter()) {
                *o = *n;
            }
        }
    }
    d
}

/// One pass of the lower envelope of parabolas `s2 (q − p)² + f[p]`.
fn edt_1d(f: &[f64], s2: f64, out: &mut [f64], v: &mut Vec<usize>, z: &mut Vec<f64>) {
    v.clear();
    z.clear();
    for (q, fq) in f.iter().enumerate() {
        if !fq.is_finite() {
            continue;
        }
        let qf = q as f64;
        loop {
            let Some(&p) = v.last() else {
                v.push(q);
                z.push(f64::NEG_INFINITY);
                break;
            };
            let pf = p as f64;
            let s = ((fq + s2 * qf * qf) - (f[p] + s2 * pf * pf)) / (2.0 * s2 * (qf - pf));
            if z.last().is_some_and(|zk| s <= *zk) {
                v.pop();
                z.pop();
                continue;
            }
            v.push(q);
            z.push(s);
            break;
        }
    }
    if v.is_empty() {
        out.iter_mut().for_each(|o| *o = f64::INFINITY);
        return;
    }
    let mut k = 0;
    for (q, o) in out.iter_mut().enumerate() {
        let qf = q as f64;
        while k + 1 < v.len() && z[k + 1] < qf {
            k += 1;
        }
        let p = v[k];
        let dq = qf - p as f64;
        *o = s2 * dq * dq + f[p];
    }
}

/// Morphological opening of `mask` by a ball of radius `r_mm` (world mm). Outside the array
/// counts as set, so structures running out of the ROI are not eroded from its border.
fn opening(mask: &Array3<bool>, sp: [f64; 3], r_mm: f64) -> Array3<bool> {
    if r_mm < sp.iter().copied().fold(f64::INFINITY, f64::min) {
        return mask.clone();
    }
    let r2 = r_mm * r_mm;
    let background = mask.mapv(|m| !m);
    let to_bg = edt_sq(&background, sp);
    let eroded = to_bg.mapv(|d| d > r2);
    let to_core = edt_sq(&eroded, sp);
    let mut out = to_core.mapv(|d| d <= r2);
    ndarray::Zip::from(&mut out)
        .and(mask)
        .for_each(|o, &m| *o = *o && m);
    out
}

/// Whether any set voxel lies on a face of the array.
fn touches_border(mask: &Array3<bool>) -> bool {
    let (nz, ny, nx) = mask.dim();
    mask.indexed_iter().any(|((z, y, x), m)| {
        *m && (z == 0 || y == 0 || x == 0 || z + 1 == nz || y + 1 == ny || x + 1 == nx)
    })
}

/// Longest in-slice diameter over all axial slices, and the longest diameter perpendicular to it
/// in the same slice (mm); each is the centre-to-centre extent plus one in-plane voxel.
fn axial_diameters(mask: &Array3<bool>, sp: [f64; 3]) -> (f64, f64) {
    let (sy, sx) = (sp[1], sp[2]);
    let pixel = 0.5 * (sy + sx);
    let mut best = (0.0, 0.0);
    for slice in mask.outer_iter() {
        let (ny, nx) = slice.dim();
        let mut edge: Vec<(f64, f64)> = Vec::new();
        for ((y, x), m) in slice.indexed_iter() {
            if !*m {
                continue;
            }
            let inside = |yy: Option<usize>, xx: Option<usize>| match (yy, xx) {
                (Some(a), Some(b)) if a < ny && b < nx => slice[[a, b]],
                _ => false,
            };
            let interior = inside(y.checked_sub(1), Some(x))
                && inside(Some(y + 1), Some(x))
                && inside(Some(y), x.checked_sub(1))
                && inside(Some(y), Some(x + 1));
            if !interior {
                edge.push((y as f64 * sy, x as f64 * sx));
            }
        }
        if edge.is_empty() {
            continue;
        }
        let mut long = 0.0f64;
        let mut axis = (0.0, 1.0);
        for (i, p) in edge.iter().enumerate() {
            for q in &edge[i..] {
                let (dy, dx) = (q.0 - p.0, q.1 - p.1);
                let d2 = dy * dy + dx * dx;
                if d2 > long {
                    long = d2;
                    axis = (dy, dx);
                }
            }
        }
        let long = long.sqrt();
        if long + pixel <= best.0 {
            continue;
        }
        let (ay, ax) = if long > 0.0 {
            (axis.0 / long, axis.1 / long)
        } else {
            (0.0, 1.0)
        };
        // Perpendicular extent: the projection on the normal of the long axis.
        let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
        for (y, x) in &edge {
            let t = -y * ax + x * ay;
            lo = lo.min(t);
            hi = hi.max(t);
        }
        best = (long + pixel, (hi - lo) + pixel);
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use speck_volume::{Direction, Geometry, Provenance, Spacing};

    fn ball_volume(spacing_zyx: [f64; 3], d_mm: f64, hu: i16) -> Volume {
        let n = [48usize, 80, 80];
        let c = [24.0, 40.0, 40.0];
        let voxels = Array3::from_shape_fn((n[0], n[1], n[2]), |(z, y, x)| {
            let d = (((z as f64 - c[0]) * spacing_zyx[0]).powi(2)
                + ((y as f64 - c[1]) * spacing_zyx[1]).powi(2)
                + ((x as f64 - c[2]) * spacing_zyx[2]).powi(2))
            .sqrt();
            if d <= 0.5 * d_mm {
                hu
            } else {
                -870
            }
        });
        let spacing = Spacing::new(spacing_zyx[2], spacing_zyx[1], spacing_zyx[0]).expect("sp");
        let g = Geometry::new(spacing, WorldPoint::new(0.0, 0.0, 0.0), Direction::IDENTITY);
        Volume::new(voxels, g, Provenance::default()).expect("volume")
    }

    fn centre(spacing_zyx: [f64; 3]) -> WorldPoint {
        WorldPoint::new(
            40.0 * spacing_zyx[2],
            40.0 * spacing_zyx[1],
            24.0 * spacing_zyx[0],
        )
    }

    #[test]
    fn edt_matches_brute_force() {
        let mut src = Array3::from_elem((5, 6, 7), false);
        src[[1, 2, 3]] = true;
        src[[4, 0, 6]] = true;
        let sp = [2.0, 0.7, 0.5];
        let d = edt_sq(&src, sp);
        for ((z, y, x), v) in d.indexed_iter() {
            let brute = [[1usize, 2, 3], [4, 0, 6]]
                .iter()
                .map(|p| {
                    ((z as f64 - p[0] as f64) * sp[0]).powi(2)
                        + ((y as f64 - p[1] as f64) * sp[1]).powi(2)
                        + ((x as f64 - p[2] as f64) * sp[2]).powi(2)
                })
                .fold(f64::INFINITY, f64::min);
            assert!((v - brute).abs() < 1e-9, "{z} {y} {x}: {v} vs {brute}");
        }
    }

    #[test]
    fn spheres_measure_their_size() {
        for (sp, d) in [
            ([1.0, 0.7, 0.7], 6.0),
            ([1.0, 0.7, 0.7], 12.0),
            ([2.0, 0.7, 0.7], 10.0),
        ] {
            let v = ball_volume(sp, d, 40);
            let m = measure(&v, centre(sp), None).expect("measure");
            assert_eq!(m.reliability, Reliability::Reliable, "{m:?}");
            let rel = m.equivalent_diameter_mm / d - 1.0;
            assert!(rel.abs() < 0.06, "d {d} at {sp:?}: {m:?}");
            assert!((m.longest_axial_mm - d).abs() < 1.5, "{m:?}");
            assert!((m.short_axial_mm - d).abs() < 1.5, "{m:?}");
        }
    }

    #[test]
    fn ground_glass_sphere_measures_its_size() {
        let sp = [1.0, 0.7, 0.7];
        let v = ball_volume(sp, 9.0, -500);
        let m = measure(&v, centre(sp), Some(10.0)).expect("measure");
        assert_eq!(m.reliability, Reliability::Reliable, "{m:?}");
        assert!((m.equivalent_diameter_mm / 9.0 - 1.0).abs() < 0.06, "{m:?}");
        assert!(m.threshold_hu < -600.0, "{m:?}");
    }

    #[test]
    fn nothing_there_is_empty_and_outside_is_an_error() {
        let sp = [1.0, 0.7, 0.7];
        let v = ball_volume(sp, 6.0, 40);
        let off = WorldPoint::new(10.0, 10.0, 10.0);
        let m = measure(&v, off, None).expect("measure");
        assert_eq!(m.reliability, Reliability::Empty);
        assert_eq!(m.lung_rads_size(), None);
        assert!(matches!(
            measure(&v, WorldPoint::new(-50.0, 0.0, 0.0), None),
            Err(MeasureError::OutsideVolume { .. })
        ));
        assert!(matches!(
            measure(&v, centre(sp), Some(f64::NAN)),
            Err(MeasureError::InvalidHint(_))
        ));
    }

    #[test]
    fn lung_rads_size_classes() {
        use LungRadsSize::*;
        let cases = [
            (0.0, Below6),
            (5.94, Below6),
            (5.96, From6To8),
            (7.9, From6To8),
            (8.0, From8To15),
            (14.9, From8To15),
            (15.0, AtLeast15),
        ];
        for (d, want) in cases {
            assert_eq!(LungRadsSize::from_mean_diameter_mm(d), Some(want), "{d}");
        }
        assert_eq!(LungRadsSize::from_mean_diameter_mm(-1.0), None);
        assert_eq!(LungRadsSize::from_volume_mm3(112.9), Some(Below6));
        assert_eq!(LungRadsSize::from_volume_mm3(113.0), Some(From6To8));
        assert_eq!(LungRadsSize::from_volume_mm3(1767.0), Some(AtLeast15));
        assert_eq!(From8To15.to_string(), "8-15");
        assert!(Below6 < AtLeast15);
    }
}
