//! Phantom options: size, spacing, nodule count and the size/density/attachment mixes.

use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::truth::{Attachment, Density};
use crate::PhantomError;

/// How nodule diameters are drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum SizeMix {
    /// Mostly 3–5 voxel nodules (in-plane voxels): 15 % of 2–3 voxels (below the reference
    /// size, so excluded), 70 % of 3–6 voxels, 15 % of 6–10 voxels.
    Small,
    /// The 1,186 LUNA16 reference diameters (3.3–32 mm, median 6.4 mm), capped at 30 mm.
    Luna16,
    /// Uniform in diameter over 2–30 mm.
    Uniform,
    /// Half [`SizeMix::Small`], half [`SizeMix::Luna16`] (the default).
    #[default]
    Mixed,
}

impl FromStr for SizeMix {
    type Err = PhantomError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "small" => Ok(Self::Small),
            "luna16" => Ok(Self::Luna16),
            "uniform" => Ok(Self::Uniform),
            "mixed" => Ok(Self::Mixed),
            _ => Err(PhantomError::Parse {
                what: "size mix",
                input: s.to_owned(),
                reason: "expected small, luna16, uniform or mixed".into(),
            }),
        }
    }
}

/// Relative weights of the nodule density classes (need not sum to 1).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DensityMix {
    /// Weight of solid nodules.
    pub solid: f64,
    /// Weight of part-solid nodules.
    pub part_solid: f64,
    /// Weight of ground-glass nodules.
    pub ground_glass: f64,
}

impl Default for DensityMix {
    /// 65 % solid, 15 % part-solid, 20 % ground-glass.
    fn default() -> Self {
        Self {
            solid: 0.65,
            part_solid: 0.15,
            ground_glass: 0.20,
        }
    }
}

impl DensityMix {
    pub(crate) fn weights(&self) -> [(Density, f64); 3] {
        [
            (Density::Solid, self.solid),
            (Density::PartSolid, self.part_solid),
            (Density::GroundGlass, self.ground_glass),
        ]
    }
}

/// Relative weights of the nodule attachment classes (need not sum to 1).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AttachmentMix {
    /// Weight of isolated nodules (in parenchyma, clear of vessels and pleura).
    pub isolated: f64,
    /// Weight of vessel-attached nodules.
    pub vessel: f64,
    /// Weight of pleura-attached (juxtapleural) nodules.
    pub pleura: f64,
}

impl Default for AttachmentMix {
    /// 50 % isolated, 30 % vessel-attached, 20 % pleura-attached.
    fn default() -> Self {
        Self {
            isolated: 0.5,
            vessel: 0.3,
            pleura: 0.2,
        }
    }
}

impl AttachmentMix {
    pub(crate) fn weights(&self) -> [(Attachment, f64); 3] {
        [
            (Attachment::Isolated, self.isolated),
            (Attachment::Vessel, self.vessel),
            (Attachment::Pleura, self.pleura),
        ]
    }
}

/// Parse `name=weight,name=weight` against the given class names, or a single class name
/// (weight 1 for it, 0 for the others).
fn parse_weights<const N: usize>(
    what: &'static str,
    s: &str,
    names: [&str; N],
) -> Result<[f64; N], PhantomError> {
    let err = |reason: String| PhantomError::Parse {
        what,
        input: s.to_owned(),
        reason,
    };
    let mut w = [0.0; N];
    let trimmed = s.trim();
    if let Some(i) = names.iter().position(|n| *n == trimmed) {
        w[i] = 1.0;
        return Ok(w);
    }
    for part in trimmed.split(',').filter(|p| !p.trim().is_empty()) {
        let (name, value) = part
            .split_once('=')
            .ok_or_else(|| err(format!("{part:?} is not name=weight")))?;
        let i = names
            .iter()
            .position(|n| *n == name.trim())
            .ok_or_else(|| {
                err(format!(
                    "unknown class {:?}; expected one of {names:?}",
                    name.trim()
                ))
            })?;
        let v: f64 = value
            .trim()
            .parse()
            .map_err(|_| err(format!("weight {value:?} is not a number")))?;
        if !(v.is_finite() && v >= 0.0) {
            return Err(err(format!("weight {v} must be finite and >= 0")));
        }
        w[i] = v;
    }
    if w.iter().sum::<f64>() <= 0.0 {
        return Err(err("at least one weight must be positive".into()));
    }
    Ok(w)
}

impl FromStr for DensityMix {
    type Err = PhantomError;
    /// `solid=0.6,part-solid=0.2,ground-glass=0.2`, or one class name.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let [solid, part_solid, ground_glass] =
            parse_weights("density mix", s, ["solid", "part-solid", "ground-glass"])?;
        Ok(Self {
            solid,
            part_solid,
            ground_glass,
        })
    }
}

impl FromStr for AttachmentMix {
    type Err = PhantomError;
    /// `isolated=0.5,vessel=0.3,pleura=0.2`, or one class name.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let [isolated, vessel, pleura] =
            parse_weights("attachment mix", s, ["isolated", "vessel", "pleura"])?;
        Ok(Self {
            isolated,
            vessel,
            pleura,
        })
    }
}

/// Everything that defines a phantom. Same options (seed included) ⇒ bit-identical output,
/// whatever the number of threads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhantomOptions {
    /// The seed; every random choice derives from it.
    pub seed: u64,
    /// Volume shape `[z, y, x]` in voxels. Default `[300, 512, 512]`.
    pub shape_zyx: [usize; 3],
    /// Voxel spacing `[z, y, x]` in mm. Default `[1.0, 0.7, 0.7]`.
    pub spacing_zyx_mm: [f64; 3],
    /// Number of nodules to place (reference and excluded together). Default 8.
    pub nodules: usize,
    /// How diameters are drawn.
    pub size_mix: SizeMix,
    /// Density class weights.
    pub density_mix: DensityMix,
    /// Attachment class weights.
    pub attachment_mix: AttachmentMix,
    /// CT noise standard deviation in HU (per voxel, after correlation). `None`: drawn per seed
    /// around the level calibrated on LIDC-IDRI-0001, scaled by `sqrt(2.5 mm / slice spacing)`.
    pub noise_sd_hu: Option<f64>,
    /// Nodules with an equivalent diameter below this many in-plane voxels go to
    /// `annotations_excluded.csv` instead of `annotations.csv`. Default 3.0.
    pub reference_min_vox: f64,
    /// Standard deviation (mm) of the Gaussian point-spread function used for partial volume.
    /// Default 0.5 mm (≈1.2 mm FWHM, a standard soft-tissue kernel; see docs/phantoms.md).
    pub psf_sigma_mm: f64,
    /// Also return the true lung mask as a voxel array (`0` outside, `1` right, `2` left lung).
    pub lung_mask: bool,
}

impl Default for PhantomOptions {
    fn default() -> Self {
        Self {
            seed: 0,
            shape_zyx: [300, 512, 512],
            spacing_zyx_mm: [1.0, 0.7, 0.7],
            nodules: 8,
            size_mix: SizeMix::default(),
            density_mix: DensityMix::default(),
            attachment_mix: AttachmentMix::default(),
            noise_sd_hu: None,
            reference_min_vox: 3.0,
            psf_sigma_mm: 0.5,
            lung_mask: false,
        }
    }
}

impl PhantomOptions {
    /// Default options with the given seed.
    pub fn new(seed: u64) -> Self {
        Self {
            seed,
            ..Self::default()
        }
    }

    /// Set the shape `[z, y, x]` in voxels.
    #[must_use]
    pub fn shape(mut self, shape_zyx: [usize; 3]) -> Self {
        self.shape_zyx = shape_zyx;
        self
    }

    /// Set the spacing `[z, y, x]` in mm.
    #[must_use]
    pub fn spacing(mut self, spacing_zyx_mm: [f64; 3]) -> Self {
        self.spacing_zyx_mm = spacing_zyx_mm;
        self
    }

    /// Set the number of nodules.
    #[must_use]
    pub fn nodules(mut self, n: usize) -> Self {
        self.nodules = n;
        self
    }

    /// Set the size mix.
    #[must_use]
    pub fn size_mix(mut self, mix: SizeMix) -> Self {
        self.size_mix = mix;
        self
    }

    /// Set the density mix.
    #[must_use]
    pub fn density_mix(mut self, mix: DensityMix) -> Self {
        self.density_mix = mix;
        self
    }

    /// Set the attachment mix.
    #[must_use]
    pub fn attachment_mix(mut self, mix: AttachmentMix) -> Self {
        self.attachment_mix = mix;
        self
    }

    /// Fix the noise level (HU standard deviation).
    #[must_use]
    pub fn noise_sd_hu(mut self, sd: Option<f64>) -> Self {
        self.noise_sd_hu = sd;
        self
    }

    /// Ask for the voxel lung mask in the ground truth.
    #[must_use]
    pub fn with_lung_mask(mut self, yes: bool) -> Self {
        self.lung_mask = yes;
        self
    }

    /// In-plane spacing used for diameters in voxels: the mean of the row and column spacing, mm.
    pub fn in_plane_spacing_mm(&self) -> f64 {
        0.5 * (self.spacing_zyx_mm[1] + self.spacing_zyx_mm[2])
    }

    /// Check every option.
    ///
    /// # Errors
    /// [`PhantomError::InvalidOptions`] naming the first option out of range.
    pub fn validate(&self) -> Result<(), PhantomError> {
        let bad = |m: String| Err(PhantomError::InvalidOptions(m));
        let [nz, ny, nx] = self.shape_zyx;
        if nz < 24 || ny < 48 || nx < 48 {
            return bad(format!(
                "shape [{nz}, {ny}, {nx}] is too small (need at least [24, 48, 48] voxels)"
            ));
        }
        if nz > 2048 || ny > 2048 || nx > 2048 {
            return bad(format!(
                "shape [{nz}, {ny}, {nx}] is too large (at most 2048 per axis)"
            ));
        }
        if (nz as u64) * (ny as u64) * (nx as u64) > 1 << 30 {
            return bad(format!(
                "shape [{nz}, {ny}, {nx}] has more than 2^30 voxels"
            ));
        }
        for (axis, s) in ["z", "y", "x"].iter().zip(self.spacing_zyx_mm) {
            if !(s.is_finite() && (0.1..=10.0).contains(&s)) {
                return bad(format!("spacing along {axis} is {s} mm; allowed 0.1..=10"));
            }
        }
        let fov = [
            nz as f64 * self.spacing_zyx_mm[0],
            ny as f64 * self.spacing_zyx_mm[1],
            nx as f64 * self.spacing_zyx_mm[2],
        ];
        if fov[0] < 40.0 || fov[1] < 60.0 || fov[2] < 60.0 {
            return bad(format!(
                "field of view {:.0}x{:.0}x{:.0} mm (z, y, x) is too small for a chest (need 40x60x60)",
                fov[0], fov[1], fov[2]
            ));
        }
        if self.nodules > 200 {
            return bad(format!("{} nodules requested; at most 200", self.nodules));
        }
        if let Some(sd) = self.noise_sd_hu {
            if !(sd.is_finite() && (0.0..=500.0).contains(&sd)) {
                return bad(format!("noise sd {sd} HU; allowed 0..=500"));
            }
        }
        if !(self.reference_min_vox.is_finite() && (0.0..=100.0).contains(&self.reference_min_vox))
        {
            return bad(format!(
                "reference_min_vox {}; allowed 0..=100",
                self.reference_min_vox
            ));
        }
        if !(self.psf_sigma_mm.is_finite() && (0.05..=3.0).contains(&self.psf_sigma_mm)) {
            return bad(format!(
                "psf_sigma_mm {}; allowed 0.05..=3",
                self.psf_sigma_mm
            ));
        }
        let mixes = [
            ("density", self.density_mix.weights().map(|w| w.1)),
            ("attachment", self.attachment_mix.weights().map(|w| w.1)),
        ];
        for (name, w) in mixes {
            if w.iter().any(|v| !(v.is_finite() && *v >= 0.0)) || w.iter().sum::<f64>() <= 0.0 {
                return bad(format!(
                    "{name} mix weights {w:?} must be >= 0 with a positive sum"
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mixes_parse() {
        let d: DensityMix = "solid=1,ground-glass=3".parse().expect("parse");
        assert_eq!(d.solid, 1.0);
        assert_eq!(d.part_solid, 0.0);
        assert_eq!(d.ground_glass, 3.0);
        let a: AttachmentMix = "pleura".parse().expect("parse");
        assert_eq!((a.isolated, a.vessel, a.pleura), (0.0, 0.0, 1.0));
        assert!("solid=x".parse::<DensityMix>().is_err());
        assert!("solid=0".parse::<DensityMix>().is_err());
        assert!("blob=1".parse::<AttachmentMix>().is_err());
        assert_eq!("LUNA16".parse::<SizeMix>().expect("parse"), SizeMix::Luna16);
        assert!("huge".parse::<SizeMix>().is_err());
    }

    #[test]
    fn validation_refuses_bad_options() {
        assert!(PhantomOptions::default().validate().is_ok());
        assert!(PhantomOptions::default()
            .shape([10, 512, 512])
            .validate()
            .is_err());
        assert!(PhantomOptions::default()
            .spacing([0.0, 0.7, 0.7])
            .validate()
            .is_err());
        assert!(PhantomOptions::default()
            .spacing([f64::NAN, 0.7, 0.7])
            .validate()
            .is_err());
        assert!(PhantomOptions::default()
            .noise_sd_hu(Some(-1.0))
            .validate()
            .is_err());
        assert!(PhantomOptions::default()
            .nodules(10_000)
            .validate()
            .is_err());
    }
}
