//! Measured size: a candidate's volume and diameters from the image itself.
//!
//! The fine model regresses a diameter, which runs 10–22 % large on real nodules. [`measure`]
//! instead measures the lesion around a world position from the image:
//!
//! 1. **Region of interest.** A box of a few cm around the seed (half-width
//!    `clamp(1.5 · hint + 12, 20, 45)` mm, 30 mm without a hint), clipped to the volume.
//! 2. **Levels.** The parenchyma level `B` is the median of the ROI voxels in the lung range
//!    (−990 … −600 HU). A radial profile (0.5 mm shells around the seed, 30th percentile of each)
//!    gives a first reach `r_b`: the first shell below the edge level
//!    `B + ½·min(peak − B, 250)`, where `peak` is the median within 1 mm of the seed. Rays go
//!    at most `2 · r_b + 3` mm.
//! 3. **Rays.** 400 rays leave the seed (or the nearest voxel above the threshold within 1.5 mm)
//!    evenly over the sphere; each ends where the trilinearly interpolated image first stays
//!    below the threshold for 0.4 mm, the crossing interpolated between samples (sub-voxel,
//!    which is what keeps 4–6 mm nodules within a few per cent). A lesion is star-shaped about
//!    its centre; what touches it is not: a ray into the chest wall never exits, one along a
//!    vessel exits well beyond its neighbours. A free-centre ellipsoid (quadric) is fitted to the
//!    exits by least squares, exits beyond `1.1 · fit + 0.25 mm` (vessel or wall bumps) or
//!    inside `0.5 · fit` (noise) are dropped and the fit repeated; dropped and blocked rays take
//!    the ellipsoid's radius. So a juxtapleural nodule is completed across the pleura as a reader
//!    outlines it, and a vessel is cut where the lesion's own surface runs. When the fitted
//!    centre lies more than 0.5 mm from the seed, the rays are cast once more from it (a
//!    detector's centre is approximate).
//! 4. **Threshold.** Rays are cast first at the edge level; the values inward from every exit
//!    are averaged by depth (the lesion's edge profile, free of its shape), and the lesion level
//!    `L` is the profile's flattest point within the outer half of the median radius (at most
//!    3 mm): the halo of a part-solid nodule, the inside of a solid one, past the blurred margin
//!    of a real one. The threshold is `T = (B + L) / 2`, where the scanner's blur puts the
//!    surface of a lesion larger than the blur, and the rays are cast again at `T`.
//! 5. **Measures.** Volume = the rays' radii integrated over the sphere (`Σ 4π/n · r³/3`);
//!    equivalent diameter `(6V/π)^⅓`; the longest in-plane (axial slice) diameter and the longest
//!    diameter perpendicular to it in the same slice, on the voxels inside the rays' radii;
//!    [`Reliability`] says when the result should not be trusted (fewer than half of the rays
//!    kept their own exit: [`Reliability::Leaked`]).
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

use std::fmt;

use ndarray::{s, Array3};
use serde::{Deserialize, Serialize};
use speck_volume::{Volume, WorldPoint};

mod rays;

/// Rays cast from the lesion's centre.
const N_RAYS: usize = 400;
/// A fitted centre this far (mm) from the seed is worth casting again from.
const RECENTRE_MM: f64 = 0.5;
/// A lesion this little above the parenchyma (HU) is nothing lesion-like.
const MIN_CONTRAST_HU: f64 = 100.0;
/// Below this fraction of rays with their own exit, the result is [`Reliability::Leaked`].
const MIN_KEPT: f64 = 0.5;

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
    /// Fewer than half of the rays ended on the lesion's own surface (the wall or vessels cover
    /// most of it, so the ellipsoid completing them has too little to go on), or the result is
    /// over 2.5 times the hint's diameter or [`MeasureOptions::max_diameter_mm`].
    Leaked,
    /// Nothing lesion-like at the seed: no contrast against the parenchyma, or nothing above
    /// the threshold within [`MeasureOptions::seed_search_mm`]. The sizes are then 0.
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
    /// Volume, mm³: the lesion's radius along 400 rays integrated over the sphere (sub-voxel).
    pub volume_mm3: f64,
    /// Diameter of the sphere of that volume, `(6V/π)^⅓`, mm.
    pub equivalent_diameter_mm: f64,
    /// Longest diameter within one axial slice (the volume's slice plane), mm, measured between
    /// voxel centres plus one in-plane voxel (so a row of n voxels measures n voxels).
    pub longest_axial_mm: f64,
    /// Longest diameter perpendicular to the long axis, in the same slice, mm.
    pub short_axial_mm: f64,
    /// Number of voxels inside the rays' radii (the segmentation the axial diameters use).
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
    if peak - b < MIN_CONTRAST_HU {
        return Ok(Measurement::empty(b, peak, 0.5 * (b + peak)));
    }

    // 4. Rays from the seed (or the nearest voxel above the threshold), completed by a robust
    //    ellipsoid where the wall blocks them or a vessel bumps them out.
    let dirs = rays::directions(N_RAYS);
    let max_mm = (2.0 * r_b + 3.0).min(half);
    let pass = |t: f64| -> Option<([f64; 3], rays::Radii)> {
        let mut origin = if rays::sample(&roi, seed_local).is_some_and(|v| v >= t) {
            seed_local
        } else {
            let above = roi.mapv(|v| v >= t);
            nearest_set(&above, &dist, options.seed_search_mm)?.map(|i| i as f64)
        };
        let mut fitted = rays::radii(&dirs, &rays::cast(&roi, sp, origin, &dirs, t, max_mm));
        // A seed off the lesion's centre (a detector's estimate) sees it from the side: cast
        // once more from the fitted centre when that lies well inside the lesion.
        if let Some(c) = fitted.centre {
            let shift = (c[0] * c[0] + c[1] * c[1] + c[2] * c[2]).sqrt();
            let moved = [
                origin[0] + c[0] / sp[0],
                origin[1] + c[1] / sp[1],
                origin[2] + c[2] / sp[2],
            ];
            if shift > RECENTRE_MM
                && shift < 0.5 * r_b
                && rays::sample(&roi, moved).is_some_and(|v| v >= t)
            {
                origin = moved;
                fitted = rays::radii(&dirs, &rays::cast(&roi, sp, origin, &dirs, t, max_mm));
            }
        }
        Some((origin, fitted))
    };
    // The lesion level from the rays: cast at the edge level, then average the values inward
    //    from each ray's exit (the edge profile, free of the lesion's shape) and take the
    //    flattest point of its outer half (of the median radius, at most 3 mm): the halo of a
    //    part-solid nodule, the inside of a solid one, past the blurred margin of a real one.
    let Some((o0, f0)) = pass(edge_level) else {
        return Ok(Measurement::empty(b, peak, edge_level));
    };
    let mut r0 = f0.r.clone();
    r0.sort_by(f64::total_cmp);
    let r_med = r0.get(r0.len() / 2).copied().unwrap_or(0.0);
    let profile_in = rays::inward_profile(&roi, sp, o0, &dirs, &f0, (0.5 * r_med).min(3.0));
    let l = plateau(&profile_in).unwrap_or(peak);
    let t = 0.5 * (b + l);
    if l - b < MIN_CONTRAST_HU {
        return Ok(Measurement::empty(b, l, t));
    }
    let Some((origin, fitted)) = pass(t) else {
        return Ok(Measurement::empty(b, l, t));
    };

    // 5. Measures. The volume integrates the radii over the sphere (sub-voxel); the axial
    //    diameters come from the voxels inside those radii.
    let solid_angle = 4.0 * std::f64::consts::PI / dirs.len() as f64;
    let vol: f64 = fitted.r.iter().map(|r| solid_angle * r.powi(3) / 3.0).sum();
    let eq = (6.0 * vol / std::f64::consts::PI).cbrt();
    let r_max = fitted.r.iter().copied().fold(0.0, f64::max);
    let lesion = Array3::from_shape_fn(dims, |(z, y, x)| {
        let d = [
            (z as f64 - origin[0]) * sp[0],
            (y as f64 - origin[1]) * sp[1],
            (x as f64 - origin[2]) * sp[2],
        ];
        let n = (d[0] * d[0] + d[1] * d[1] + d[2] * d[2]).sqrt();
        if n > r_max {
            return false;
        }
        if n == 0.0 {
            return true;
        }
        let nearest = dirs
            .iter()
            .enumerate()
            .max_by(|a, b| {
                let da = a.1[0] * d[0] + a.1[1] * d[1] + a.1[2] * d[2];
                let db = b.1[0] * d[0] + b.1[1] * d[1] + b.1[2] * d[2];
                da.total_cmp(&db)
            })
            .map_or(0, |(k, _)| k);
        n <= fitted.r[nearest]
    });
    let voxels = lesion.iter().filter(|v| **v).count();
    let (long, short) = axial_diameters(&lesion, sp);
    let roi_border = fitted.border > 0 || touches_border(&lesion);
    let leak_limit = hint_diameter_mm
        .map_or(f64::INFINITY, |h| 2.5 * h)
        .min(options.max_diameter_mm);
    // Attachments covering most of the lesion leave the ellipsoid too little to go on.
    let leaked = (fitted.kept as f64) < MIN_KEPT * dirs.len() as f64;
    let reliability = if leaked || eq > leak_limit {
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

/// The level of a lesion's outer layer from its inward edge profile (one value per 0.1 mm of
/// depth): the value where the profile is flattest beyond the first 0.5 mm (the halo of a
/// part-solid nodule, the inside of a solid one); `None` when the profile is too short.
fn plateau(profile: &[f64]) -> Option<f64> {
    const FIRST: usize = 5;
    const HALF: usize = 2;
    if profile.len() < FIRST + HALF + 1 {
        return profile.last().copied();
    }
    let slope = |k: usize| profile[(k + HALF).min(profile.len() - 1)] - profile[k - HALF];
    let k = (FIRST..profile.len()).min_by(|a, b| slope(*a).abs().total_cmp(&slope(*b).abs()))?;
    Some(profile[k])
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

/// The set voxel nearest the seed within `max_mm`, if any.
fn nearest_set(mask: &Array3<bool>, dist: &Array3<f64>, max_mm: f64) -> Option<[usize; 3]> {
    mask.indexed_iter()
        .filter(|(i, m)| **m && dist[*i] <= max_mm)
        .min_by(|a, b| dist[a.0].total_cmp(&dist[b.0]))
        .map(|((z, y, x), _)| [z, y, x])
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

    /// A 7 mm solid ball 2.8 mm from a wall (a +40 HU half-space: a cap of the ball lies in
    /// it), and the same ball touching a 2 mm-thick vessel that runs on across the ROI.
    #[test]
    fn attached_balls_measure_the_ball_alone() {
        let sp = [1.0, 0.7, 0.7];
        let (n, c, d) = ([48usize, 80, 80], [24.0, 40.0, 40.0], 7.0);
        let make = |wall: bool| {
            let voxels = Array3::from_shape_fn((n[0], n[1], n[2]), |(z, y, x)| {
                let p = [
                    (z as f64 - c[0]) * sp[0],
                    (y as f64 - c[1]) * sp[1],
                    (x as f64 - c[2]) * sp[2],
                ];
                let ball = (p[0] * p[0] + p[1] * p[1] + p[2] * p[2]).sqrt() <= 0.5 * d;
                let other = if wall {
                    p[1] >= 2.8
                } else {
                    // Vessel along z, axis 3.5 + 0.2 mm from the centre, radius 1 mm.
                    ((p[1] - 3.7).powi(2) + p[2] * p[2]).sqrt() <= 1.0
                };
                if ball || other {
                    40
                } else {
                    -870
                }
            });
            let spacing = Spacing::new(sp[2], sp[1], sp[0]).expect("sp");
            let g = Geometry::new(spacing, WorldPoint::new(0.0, 0.0, 0.0), Direction::IDENTITY);
            Volume::new(voxels, g, Provenance::default()).expect("volume")
        };
        for wall in [true, false] {
            let m = measure(&make(wall), centre(sp), None).expect("measure");
            let rel = m.equivalent_diameter_mm / d - 1.0;
            assert!(rel.abs() < 0.08, "wall {wall}: {m:?}");
            assert!(m.longest_axial_mm < 1.2 * d, "wall {wall}: {m:?}");
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
