//! Ground truth: the nodules placed in a phantom and its true lung mask.

use std::fmt;
use std::sync::Arc;

use ndarray::Array3;
use serde::{Deserialize, Serialize};
use speck_volume::WorldPoint;

use crate::anatomy::Anatomy;

/// Nodule density class (the `density` column of `annotations.csv`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Density {
    /// Solid: peak +40..+100 HU.
    Solid,
    /// Part-solid: a ground-glass halo (−600..−350 HU) around a solid core (+20..+80 HU).
    PartSolid,
    /// Ground-glass: −600..−300 HU, textured.
    GroundGlass,
}

impl Density {
    /// The name used in CSV files: `solid`, `part-solid` or `ground-glass`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Solid => "solid",
            Self::PartSolid => "part-solid",
            Self::GroundGlass => "ground-glass",
        }
    }
}

impl fmt::Display for Density {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a nodule sits (the `attachment` column of `annotations.csv`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Attachment {
    /// In the parenchyma, clear of vessels (> 1 mm gap) and of the pleura (> 2 mm).
    Isolated,
    /// Touching and overlapping a vessel of 1–5 mm calibre.
    Vessel,
    /// Juxtapleural: centre 0.6–0.95 radii inside the lung surface, so it abuts the pleura.
    Pleura,
}

impl Attachment {
    /// The name used in CSV files: `isolated`, `vessel` or `pleura`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Isolated => "isolated",
            Self::Vessel => "vessel",
            Self::Pleura => "pleura",
        }
    }
}

impl fmt::Display for Attachment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The shape of a nodule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum NoduleShape {
    /// A sphere.
    Sphere,
    /// An ellipsoid with these semi-axes (mm), randomly oriented.
    Ellipsoid {
        /// Semi-axes in mm (their geometric mean is the equivalent radius).
        semi_axes_mm: [f64; 3],
    },
    /// A union of overlapping spheres (lobulated margin).
    Lobulated {
        /// Number of lobes around the central sphere.
        lobes: usize,
    },
}

impl NoduleShape {
    /// A short name: `sphere`, `ellipsoid` or `lobulated`.
    pub const fn as_str(&self) -> &'static str {
        match self {
            Self::Sphere => "sphere",
            Self::Ellipsoid { .. } => "ellipsoid",
            Self::Lobulated { .. } => "lobulated",
        }
    }
}

/// One nodule of a phantom.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Nodule {
    /// 1-based index within its scan.
    pub id: u32,
    /// Centre (centroid of the nodule's volume), LPS mm.
    pub centre: WorldPoint,
    /// Equivalent-sphere diameter `(6V/π)^(1/3)` of the whole nodule (halo included), mm.
    pub diameter_mm: f64,
    /// `diameter_mm` divided by the in-plane spacing (mean of row and column spacing).
    pub diameter_vox: f64,
    /// Density class.
    pub density: Density,
    /// Attachment class.
    pub attachment: Attachment,
    /// Shape.
    pub shape: NoduleShape,
    /// Peak attenuation before noise (HU): the solid core for part-solid nodules.
    pub peak_hu: f64,
    /// Which lung it lies in.
    pub lung: Lung,
    /// `true` when it counts in `annotations.csv`, `false` when it is below the reference size
    /// and goes to `annotations_excluded.csv`.
    pub reference: bool,
}

/// Right or left lung (patient's side; right is towards −x in LPS).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Lung {
    /// The patient's right lung (label 1 in the mask).
    Right,
    /// The patient's left lung (label 2 in the mask).
    Left,
}

impl Lung {
    /// The mask label: 1 right, 2 left.
    pub const fn label(self) -> u8 {
        match self {
            Self::Right => 1,
            Self::Left => 2,
        }
    }
}

/// What is true about a phantom: its identifiers, nodules and lungs.
#[derive(Debug, Clone)]
pub struct GroundTruth {
    /// The seed it was generated from.
    pub seed: u64,
    /// SeriesInstanceUID (`2.25.<decimal>`, derived from the seed and every generation parameter:
    /// [`crate::series_uid`]); also the file stem.
    pub series_uid: String,
    /// StudyInstanceUID derived from the seed.
    pub study_uid: String,
    /// PatientID (`PHANTOM-<seed>`).
    pub patient_id: String,
    /// Every nodule placed, reference and excluded.
    pub nodules: Vec<Nodule>,
    /// The reference threshold used, in in-plane voxels of equivalent diameter.
    pub reference_min_vox: f64,
    /// In-plane spacing (mm) used to convert diameters to voxels.
    pub in_plane_spacing_mm: f64,
    /// Noise standard deviation actually used (HU).
    pub noise_sd_hu: f64,
    /// The true lung mask `[z, y, x]` (`0` outside, `1` right, `2` left), when asked for.
    pub lung_mask: Option<Array3<u8>>,
    pub(crate) anatomy: Arc<Anatomy>,
}

impl GroundTruth {
    /// Which lung contains a world point (LPS mm), from the analytic model; `None` outside both.
    /// Vessels, airways and nodules inside a lung count as lung, as in a clinical lung mask.
    pub fn lung_at(&self, p: WorldPoint) -> Option<Lung> {
        self.anatomy.lung_at_world(p)
    }

    /// Signed distance (mm, negative inside) from a world point to the nearest lung surface;
    /// accurate to a fraction of a mm within ~10 mm of the surface.
    pub fn lung_signed_distance_mm(&self, p: WorldPoint) -> f64 {
        self.anatomy.lung_sd_world(p)
    }

    /// The reference nodules (those in `annotations.csv`).
    pub fn reference_nodules(&self) -> impl Iterator<Item = &Nodule> {
        self.nodules.iter().filter(|n| n.reference)
    }

    /// The excluded findings (those in `annotations_excluded.csv`).
    pub fn excluded_nodules(&self) -> impl Iterator<Item = &Nodule> {
        self.nodules.iter().filter(|n| !n.reference)
    }
}
