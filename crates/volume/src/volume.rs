//! The [`Volume`]: voxels in `[z, y, x]` order plus their geometry and provenance.

use ndarray::{Array3, ArrayView3};
use serde::{Deserialize, Serialize};

use crate::geometry::{ContinuousIndex, Geometry, VoxelIndex, WorldPoint};
use crate::VolumeError;

/// Where one z slice of a volume came from (DICOM only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct SliceSource {
    /// DICOM InstanceNumber (0020,0013), the "Img N" radiologists quote.
    pub instance_number: Option<i32>,
    /// DICOM SOPInstanceUID (0008,0018).
    pub sop_instance_uid: Option<String>,
}

/// What is known about where a volume came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Provenance {
    /// The file or folder it was read from.
    pub source: Option<std::path::PathBuf>,
    /// PatientID (0010,0020).
    pub patient_id: Option<String>,
    /// StudyInstanceUID (0020,000D).
    pub study_uid: Option<String>,
    /// SeriesInstanceUID (0020,000E); for NIfTI/MetaImage, the file stem.
    pub series_uid: Option<String>,
    /// One entry per z slice (empty unless read from DICOM).
    pub slices: Vec<SliceSource>,
    /// Things the reader handled but a user should know (resampling, gaps, tilt...).
    pub warnings: Vec<String>,
    /// Other series found beside the one loaded (DICOM folders), one line each.
    pub other_series: Vec<String>,
}

/// A CT volume: Hounsfield units as `i16`, indexed `[z, y, x]`, with LPS geometry.
///
/// Fields are private so that the shape and the geometry always agree; build one with
/// [`Volume::new`].
#[derive(Debug, Clone)]
pub struct Volume {
    voxels: Array3<i16>,
    geometry: Geometry,
    provenance: Provenance,
}

impl Volume {
    /// A volume from voxels (`[z, y, x]`, HU) and geometry.
    ///
    /// # Errors
    /// [`VolumeError::InvalidGeometry`] when any dimension is zero, or when `provenance.slices` is
    /// neither empty nor one entry per z slice.
    pub fn new(
        voxels: Array3<i16>,
        geometry: Geometry,
        provenance: Provenance,
    ) -> Result<Self, VolumeError> {
        let (nz, ny, nx) = voxels.dim();
        if nz == 0 || ny == 0 || nx == 0 {
            return Err(VolumeError::InvalidGeometry(format!(
                "empty volume of shape [{nz}, {ny}, {nx}]"
            )));
        }
        if !provenance.slices.is_empty() && provenance.slices.len() != nz {
            return Err(VolumeError::InvalidGeometry(format!(
                "{} slice records for {nz} slices",
                provenance.slices.len()
            )));
        }
        Ok(Self {
            voxels,
            geometry,
            provenance,
        })
    }

    /// The voxels, `[z, y, x]`, in HU.
    pub fn voxels(&self) -> ArrayView3<'_, i16> {
        self.voxels.view()
    }

    /// Consume the volume and return its voxels.
    pub fn into_voxels(self) -> Array3<i16> {
        self.voxels
    }

    /// Shape as `[z, y, x]`.
    pub fn shape_zyx(&self) -> [usize; 3] {
        let (z, y, x) = self.voxels.dim();
        [z, y, x]
    }

    /// Shape as `[x, y, z]` (ITK order, as `speck info` prints it).
    pub fn size_xyz(&self) -> [usize; 3] {
        let [z, y, x] = self.shape_zyx();
        [x, y, z]
    }

    /// Spacing, origin and direction.
    pub fn geometry(&self) -> &Geometry {
        &self.geometry
    }

    /// Where it came from.
    pub fn provenance(&self) -> &Provenance {
        &self.provenance
    }

    /// Mutable provenance (to add warnings or identifiers).
    pub fn provenance_mut(&mut self) -> &mut Provenance {
        &mut self.provenance
    }

    /// The HU value at a voxel, or `None` outside the volume.
    pub fn get(&self, idx: VoxelIndex) -> Option<i16> {
        self.voxels.get(idx.to_array()).copied()
    }

    /// World position (LPS mm) of a voxel centre.
    pub fn voxel_to_world(&self, idx: VoxelIndex) -> WorldPoint {
        self.geometry.voxel_to_world(idx)
    }

    /// Continuous index of a world point.
    pub fn world_to_index(&self, p: WorldPoint) -> ContinuousIndex {
        self.geometry.world_to_index(p)
    }

    /// The voxel nearest to a world point, or `None` outside the volume.
    pub fn world_to_voxel(&self, p: WorldPoint) -> Option<VoxelIndex> {
        self.world_to_index(p).round_within(self.shape_zyx())
    }

    /// The voxels as `f32` HU (for the detector), computed in parallel.
    pub fn to_f32(&self) -> Array3<f32> {
        let mut out = Array3::<f32>::zeros(self.voxels.raw_dim());
        ndarray::Zip::from(&mut out)
            .and(&self.voxels)
            .par_for_each(|o, &v| *o = f32::from(v));
        out
    }

    /// Minimum, maximum and mean HU.
    pub fn hu_stats(&self) -> (i16, i16, f64) {
        use rayon::prelude::*;
        let slice = self.voxels.as_slice_memory_order();
        let (mn, mx, sum) = match slice {
            Some(s) => s
                .par_chunks(1 << 16)
                .map(|c| {
                    c.iter().fold((i16::MAX, i16::MIN, 0i64), |(a, b, t), &v| {
                        (a.min(v), b.max(v), t + i64::from(v))
                    })
                })
                .reduce(
                    || (i16::MAX, i16::MIN, 0),
                    |x, y| (x.0.min(y.0), x.1.max(y.1), x.2 + y.2),
                ),
            None => self
                .voxels
                .iter()
                .fold((i16::MAX, i16::MIN, 0i64), |(a, b, t), &v| {
                    (a.min(v), b.max(v), t + i64::from(v))
                }),
        };
        (mn, mx, sum as f64 / self.voxels.len() as f64)
    }
}
