//! World and voxel coordinates, and the affine that links them.
//!
//! Speck works in the DICOM/ITK patient frame, **LPS**: `+x` towards the patient's left, `+y`
//! towards the posterior, `+z` towards the head (superior), in millimetres. LUNA16 annotations
//! (`coordX, coordY, coordZ`) are in this frame.
//!
//! Voxel indices are always stored and named in `[z, y, x]` order (slice, row, column), the order
//! of the ndarray axes; spacing and direction are stored per *image axis* (`x` = column, `y` = row,
//! `z` = slice). [`WorldPoint`], [`VoxelIndex`] and [`ContinuousIndex`] are distinct types so that a
//! world position can never be used as an index by accident.
//!
//! The mapping is the ITK one:
//! `world = origin + direction · diag(spacing) · [i_x, i_y, i_z]ᵀ`,
//! where column `k` of `direction` is the unit vector of image axis `k` in LPS.

use serde::{Deserialize, Serialize};

use crate::VolumeError;

/// A point in the LPS patient frame, in millimetres.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
pub struct WorldPoint {
    /// Towards the patient's left (mm).
    pub x_mm: f64,
    /// Towards the patient's posterior (mm).
    pub y_mm: f64,
    /// Towards the patient's head (mm).
    pub z_mm: f64,
}

impl WorldPoint {
    /// A point from its LPS coordinates in mm.
    pub const fn new(x_mm: f64, y_mm: f64, z_mm: f64) -> Self {
        Self { x_mm, y_mm, z_mm }
    }

    /// The coordinates as `[x, y, z]` mm.
    pub const fn to_array(self) -> [f64; 3] {
        [self.x_mm, self.y_mm, self.z_mm]
    }

    /// Euclidean distance to `other`, in mm.
    pub fn distance_mm(self, other: WorldPoint) -> f64 {
        let dx = self.x_mm - other.x_mm;
        let dy = self.y_mm - other.y_mm;
        let dz = self.z_mm - other.z_mm;
        (dx * dx + dy * dy + dz * dz).sqrt()
    }
}

/// An integer voxel index in `[z, y, x]` order (slice, row, column).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub struct VoxelIndex {
    /// Slice index.
    pub z: usize,
    /// Row index.
    pub y: usize,
    /// Column index.
    pub x: usize,
}

impl VoxelIndex {
    /// An index from slice, row and column.
    pub const fn new(z: usize, y: usize, x: usize) -> Self {
        Self { z, y, x }
    }

    /// As an ndarray index `[z, y, x]`.
    pub const fn to_array(self) -> [usize; 3] {
        [self.z, self.y, self.x]
    }

    /// The same position as a continuous index.
    pub fn to_continuous(self) -> ContinuousIndex {
        ContinuousIndex::new(self.z as f64, self.y as f64, self.x as f64)
    }
}

/// A sub-voxel position in index space, `[z, y, x]` order; integer values are voxel centres.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
pub struct ContinuousIndex {
    /// Slice coordinate.
    pub z: f64,
    /// Row coordinate.
    pub y: f64,
    /// Column coordinate.
    pub x: f64,
}

impl ContinuousIndex {
    /// A continuous index from slice, row and column coordinates.
    pub const fn new(z: f64, y: f64, x: f64) -> Self {
        Self { z, y, x }
    }

    /// The nearest voxel, or `None` when the point is outside a volume of `shape` (`[z, y, x]`).
    pub fn round_within(self, shape: [usize; 3]) -> Option<VoxelIndex> {
        let r = [self.z.round(), self.y.round(), self.x.round()];
        if r.iter()
            .zip(shape)
            .any(|(v, n)| !v.is_finite() || *v < 0.0 || *v >= n as f64)
        {
            return None;
        }
        Some(VoxelIndex::new(r[0] as usize, r[1] as usize, r[2] as usize))
    }
}

/// Voxel spacing in mm along each image axis; every value is finite and positive.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Spacing {
    x_mm: f64,
    y_mm: f64,
    z_mm: f64,
}

impl Spacing {
    /// Spacing along the column (`x`), row (`y`) and slice (`z`) axes in mm.
    ///
    /// # Errors
    /// [`VolumeError::InvalidGeometry`] unless all three are finite and > 0.
    pub fn new(x_mm: f64, y_mm: f64, z_mm: f64) -> Result<Self, VolumeError> {
        for (axis, v) in [("x", x_mm), ("y", y_mm), ("z", z_mm)] {
            if !(v.is_finite() && v > 0.0) {
                return Err(VolumeError::InvalidGeometry(format!(
                    "spacing along {axis} must be finite and positive, got {v}"
                )));
            }
        }
        Ok(Self { x_mm, y_mm, z_mm })
    }

    /// Isotropic spacing.
    ///
    /// # Errors
    /// As [`Spacing::new`].
    pub fn isotropic(mm: f64) -> Result<Self, VolumeError> {
        Self::new(mm, mm, mm)
    }

    /// Column spacing (mm).
    pub const fn x_mm(&self) -> f64 {
        self.x_mm
    }
    /// Row spacing (mm).
    pub const fn y_mm(&self) -> f64 {
        self.y_mm
    }
    /// Slice spacing (mm).
    pub const fn z_mm(&self) -> f64 {
        self.z_mm
    }
    /// `[x, y, z]` in mm (ITK order).
    pub const fn xyz(&self) -> [f64; 3] {
        [self.x_mm, self.y_mm, self.z_mm]
    }
    /// `[z, y, x]` in mm (ndarray axis order).
    pub const fn zyx(&self) -> [f64; 3] {
        [self.z_mm, self.y_mm, self.x_mm]
    }
    /// Volume of one voxel in mm³.
    pub fn voxel_volume_mm3(&self) -> f64 {
        self.x_mm * self.y_mm * self.z_mm
    }
}

/// A 3x3 direction matrix, row-major; **column** `k` is the LPS unit vector of image axis `k`
/// (`0` = x/column, `1` = y/row, `2` = z/slice). Always invertible.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Direction {
    m: [[f64; 3]; 3],
    inv: [[f64; 3]; 3],
}

impl Direction {
    /// The identity: image axes along L, P, S.
    pub const IDENTITY: Direction = Direction {
        m: [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]],
        inv: [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]],
    };

    /// A direction matrix from its rows (row-major, columns are the axis directions).
    ///
    /// Columns are normalised to unit length.
    ///
    /// # Errors
    /// [`VolumeError::InvalidGeometry`] when an entry is not finite, a column is zero, or the
    /// matrix is singular (|det| < 1e-6 after normalisation).
    pub fn from_rows(rows: [[f64; 3]; 3]) -> Result<Self, VolumeError> {
        let mut m = rows;
        for c in 0..3 {
            let norm = (0..3).map(|r| m[r][c] * m[r][c]).sum::<f64>().sqrt();
            if !norm.is_finite() || norm < 1e-9 {
                return Err(VolumeError::InvalidGeometry(format!(
                    "direction column {c} is zero or not finite: {rows:?}"
                )));
            }
            for row in m.iter_mut() {
                row[c] /= norm;
            }
        }
        let inv = invert3(&m).ok_or_else(|| {
            VolumeError::InvalidGeometry(format!("direction matrix is singular: {rows:?}"))
        })?;
        Ok(Self { m, inv })
    }

    /// A direction from the three axis unit vectors (x, y, z axes), each in LPS.
    ///
    /// # Errors
    /// As [`Direction::from_rows`].
    pub fn from_axes(x: [f64; 3], y: [f64; 3], z: [f64; 3]) -> Result<Self, VolumeError> {
        Self::from_rows([[x[0], y[0], z[0]], [x[1], y[1], z[1]], [x[2], y[2], z[2]]])
    }

    /// Row-major entries.
    pub const fn rows(&self) -> [[f64; 3]; 3] {
        self.m
    }

    /// The LPS unit vector of image axis `k` (`0` = x, `1` = y, `2` = z); `k` is taken modulo 3.
    pub fn axis(&self, k: usize) -> [f64; 3] {
        let k = k % 3;
        [self.m[0][k], self.m[1][k], self.m[2][k]]
    }

    /// Determinant (±1 for a proper/improper rotation).
    pub fn determinant(&self) -> f64 {
        det3(&self.m)
    }

    /// The inverse matrix, row-major.
    pub const fn inverse_rows(&self) -> [[f64; 3]; 3] {
        self.inv
    }

    /// True when every axis is within `tol` of a signed unit LPS axis (no obliquity).
    pub fn is_axis_aligned(&self, tol: f64) -> bool {
        (0..3).all(|c| {
            let a = self.axis(c);
            a.iter().filter(|v| (v.abs() - 1.0).abs() < tol).count() == 1
                && a.iter().filter(|v| v.abs() < tol).count() == 2
        })
    }
}

impl Default for Direction {
    fn default() -> Self {
        Self::IDENTITY
    }
}

fn det3(m: &[[f64; 3]; 3]) -> f64 {
    m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1])
        - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
        + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0])
}

fn invert3(m: &[[f64; 3]; 3]) -> Option<[[f64; 3]; 3]> {
    let d = det3(m);
    if !d.is_finite() || d.abs() < 1e-6 {
        return None;
    }
    let mut r = [[0.0; 3]; 3];
    for (i, row) in r.iter_mut().enumerate() {
        for (j, v) in row.iter_mut().enumerate() {
            let (a, b) = ((j + 1) % 3, (j + 2) % 3);
            let (c, e) = ((i + 1) % 3, (i + 2) % 3);
            *v = (m[a][c] * m[b][e] - m[a][e] * m[b][c]) / d;
        }
    }
    Some(r)
}

/// Spacing, origin and direction: everything needed to place voxels in the world.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Geometry {
    /// Voxel spacing per image axis.
    pub spacing: Spacing,
    /// World position of the centre of voxel `[0, 0, 0]`.
    pub origin: WorldPoint,
    /// Orientation of the image axes in LPS.
    pub direction: Direction,
}

impl Geometry {
    /// Geometry from its parts.
    pub const fn new(spacing: Spacing, origin: WorldPoint, direction: Direction) -> Self {
        Self {
            spacing,
            origin,
            direction,
        }
    }

    /// World position (LPS mm) of a (possibly fractional) index.
    pub fn index_to_world(&self, idx: ContinuousIndex) -> WorldPoint {
        let s = self.spacing.xyz();
        let v = [idx.x * s[0], idx.y * s[1], idx.z * s[2]];
        let m = self.direction.rows();
        let o = self.origin.to_array();
        let w: [f64; 3] =
            std::array::from_fn(|r| o[r] + m[r][0] * v[0] + m[r][1] * v[1] + m[r][2] * v[2]);
        WorldPoint::new(w[0], w[1], w[2])
    }

    /// World position of a voxel centre.
    pub fn voxel_to_world(&self, idx: VoxelIndex) -> WorldPoint {
        self.index_to_world(idx.to_continuous())
    }

    /// Continuous index of a world point (may lie outside the volume).
    pub fn world_to_index(&self, p: WorldPoint) -> ContinuousIndex {
        let d = [
            p.x_mm - self.origin.x_mm,
            p.y_mm - self.origin.y_mm,
            p.z_mm - self.origin.z_mm,
        ];
        let inv = self.direction.inverse_rows();
        let v: [f64; 3] =
            std::array::from_fn(|r| inv[r][0] * d[0] + inv[r][1] * d[1] + inv[r][2] * d[2]);
        let s = self.spacing.xyz();
        ContinuousIndex::new(v[2] / s[2], v[1] / s[1], v[0] / s[0])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn identity_maps_index_times_spacing_plus_origin() {
        let g = Geometry::new(
            Spacing::new(0.7, 0.8, 2.5).expect("spacing"),
            WorldPoint::new(-100.0, -50.0, 300.0),
            Direction::IDENTITY,
        );
        let w = g.voxel_to_world(VoxelIndex::new(2, 3, 4));
        assert!((w.x_mm - (-100.0 + 4.0 * 0.7)).abs() < 1e-12);
        assert!((w.y_mm - (-50.0 + 3.0 * 0.8)).abs() < 1e-12);
        assert!((w.z_mm - (300.0 + 2.0 * 2.5)).abs() < 1e-12);
    }

    #[test]
    fn singular_direction_and_bad_spacing_are_refused() {
        assert!(Direction::from_rows([[1.0, 1.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 1.0]]).is_err());
        assert!(Direction::from_rows([[1.0, 2.0, 0.0], [2.0, 4.0, 0.0], [0.0, 0.0, 1.0]]).is_err());
        assert!(Spacing::new(0.0, 1.0, 1.0).is_err());
        assert!(Spacing::new(1.0, f64::NAN, 1.0).is_err());
    }

    #[test]
    fn flipped_axes_are_axis_aligned() {
        let d = Direction::from_rows([[-1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, 1.0]])
            .expect("dir");
        assert!(d.is_axis_aligned(1e-6));
        assert!((d.determinant() - 1.0).abs() < 1e-12);
    }

    proptest! {
        #[test]
        fn world_index_round_trip(
            a in -3.0f64..3.0, b in -3.0f64..3.0, c in -3.0f64..3.0,
            sx in 0.3f64..5.0, sy in 0.3f64..5.0, sz in 0.3f64..5.0,
            ox in -500.0f64..500.0, oy in -500.0f64..500.0, oz in -500.0f64..500.0,
            iz in -10.0f64..400.0, iy in -10.0f64..600.0, ix in -10.0f64..600.0,
        ) {
            // A rotation from Euler angles, so the direction is always orthonormal.
            let (ca, sa, cb, sb, cc, sc) = (a.cos(), a.sin(), b.cos(), b.sin(), c.cos(), c.sin());
            let rx = [[1.0, 0.0, 0.0], [0.0, ca, -sa], [0.0, sa, ca]];
            let ry = [[cb, 0.0, sb], [0.0, 1.0, 0.0], [-sb, 0.0, cb]];
            let rz = [[cc, -sc, 0.0], [sc, cc, 0.0], [0.0, 0.0, 1.0]];
            let mul = |p: [[f64; 3]; 3], q: [[f64; 3]; 3]| -> [[f64; 3]; 3] {
                std::array::from_fn(|i| std::array::from_fn(|j| (0..3).map(|k| p[i][k] * q[k][j]).sum()))
            };
            let dir = Direction::from_rows(mul(rz, mul(ry, rx))).expect("rotation");
            let g = Geometry::new(Spacing::new(sx, sy, sz).expect("s"), WorldPoint::new(ox, oy, oz), dir);
            let idx = ContinuousIndex::new(iz, iy, ix);
            let back = g.world_to_index(g.index_to_world(idx));
            prop_assert!((back.z - iz).abs() < 1e-6 && (back.y - iy).abs() < 1e-6 && (back.x - ix).abs() < 1e-6);
        }
    }
}
