//! Resampling to a target spacing (trilinear, parallel over slices), cropping to a voxel box and
//! padding with a value. Every function returns new data with the geometry that keeps each voxel
//! at its true world position.
//!
//! Resampling keeps the origin (the centre of voxel `[0, 0, 0]`) and the direction; along each
//! axis the output has `max(1, round(n · old_spacing / new_spacing))` voxels, and output voxel `o`
//! samples the input at continuous index `o · new_spacing / old_spacing`, clamped to the input
//! (edge voxels are repeated rather than extrapolated).
//!
//! ```
//! use speck_volume::resample::{crop, resample_to_spacing};
//! use speck_volume::{Direction, Geometry, Provenance, Spacing, Volume, VoxelIndex, WorldPoint};
//! let g = Geometry::new(Spacing::new(0.5, 0.5, 2.0)?, WorldPoint::new(0.0, 0.0, 0.0), Direction::IDENTITY);
//! let v = Volume::new(ndarray::Array3::from_elem((10, 20, 20), 40), g, Provenance::default())?;
//! let iso = resample_to_spacing(&v, Spacing::isotropic(1.0)?)?;
//! assert_eq!(iso.shape_zyx(), [20, 10, 10]);
//! let c = crop(&iso, VoxelIndex::new(2, 3, 4), [4, 4, 4])?;
//! assert_eq!(c.voxel_to_world(VoxelIndex::new(0, 0, 0)), iso.voxel_to_world(VoxelIndex::new(2, 3, 4)));
//! # Ok::<(), speck_volume::VolumeError>(())
//! ```

use std::path::PathBuf;

use ndarray::{Array3, ArrayView3, Axis};
use rayon::prelude::*;

use crate::{
    ContinuousIndex, Geometry, Limits, Provenance, SliceSource, Spacing, Volume, VolumeError,
    VoxelIndex,
};

/// Voxel types that can be interpolated.
trait Sample: Copy + Send + Sync {
    fn to_f32(self) -> f32;
    fn from_f32(v: f32) -> Self;
}

impl Sample for f32 {
    #[inline]
    fn to_f32(self) -> f32 {
        self
    }
    #[inline]
    fn from_f32(v: f32) -> Self {
        v
    }
}

impl Sample for i16 {
    #[inline]
    fn to_f32(self) -> f32 {
        f32::from(self)
    }
    #[inline]
    fn from_f32(v: f32) -> Self {
        v.round().clamp(f32::from(i16::MIN), f32::from(i16::MAX)) as i16
    }
}

/// The output shape (`[z, y, x]`) when resampling `shape_zyx` voxels from spacing `from` to `to`.
pub fn output_shape(shape_zyx: [usize; 3], from: Spacing, to: Spacing) -> [usize; 3] {
    let (f, t) = (from.zyx(), to.zyx());
    std::array::from_fn(|a| ((shape_zyx[a] as f64 * f[a] / t[a]).round() as usize).max(1))
}

/// For each output index along one axis: the two input neighbours and the weight of the second.
fn axis_table(n_in: usize, n_out: usize, from_mm: f64, to_mm: f64) -> Vec<(usize, usize, f32)> {
    let last = n_in.saturating_sub(1);
    (0..n_out)
        .map(|o| {
            let p = (o as f64 * to_mm / from_mm).clamp(0.0, last as f64);
            let i0 = (p.floor() as usize).min(last);
            let i1 = (i0 + 1).min(last);
            (i0, i1, (p - i0 as f64) as f32)
        })
        .collect()
}

fn resample_array<T: Sample>(
    data: ArrayView3<'_, T>,
    from: Spacing,
    to: Spacing,
    out_shape: [usize; 3],
) -> Array3<T> {
    let input = data.as_standard_layout();
    let (nz, ny, nx) = input.dim();
    let src = input.as_slice().unwrap_or(&[]);
    let [oz, oy, ox] = out_shape;
    let (f, t) = (from.zyx(), to.zyx());
    let tz = axis_table(nz, oz, f[0], t[0]);
    let ty = axis_table(ny, oy, f[1], t[1]);
    let tx = axis_table(nx, ox, f[2], t[2]);
    let mut out = Array3::from_elem((oz, oy, ox), T::from_f32(0.0));
    out.axis_iter_mut(Axis(0))
        .into_par_iter()
        .zip(tz.par_iter())
        .for_each(|(mut plane, &(z0, z1, wz))| {
            for (mut row, &(y0, y1, wy)) in plane.axis_iter_mut(Axis(0)).zip(&ty) {
                let r = |z: usize, y: usize| &src[(z * ny + y) * nx..(z * ny + y + 1) * nx];
                let (r00, r01, r10, r11) = (r(z0, y0), r(z0, y1), r(z1, y0), r(z1, y1));
                for (o, &(x0, x1, wx)) in row.iter_mut().zip(&tx) {
                    let lerp = |row: &[T]| {
                        let a = row[x0].to_f32();
                        a + (row[x1].to_f32() - a) * wx
                    };
                    let a = lerp(r00);
                    let b = lerp(r01);
                    let c = lerp(r10);
                    let d = lerp(r11);
                    let ab = a + (b - a) * wy;
                    let cd = c + (d - c) * wy;
                    *o = T::from_f32(ab + (cd - ab) * wz);
                }
            }
        });
    out
}

fn check_output(shape: [usize; 3], source: Option<PathBuf>) -> Result<(), VolumeError> {
    let limits = Limits::default();
    let n = shape
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d as u64))
        .unwrap_or(u64::MAX);
    if n > limits.max_voxels || shape.iter().any(|&d| d as u64 > limits.max_dim) {
        return Err(VolumeError::TooLarge {
            path: source.unwrap_or_else(|| PathBuf::from("(resampled volume)")),
            reason: format!("resampling to {shape:?} voxels"),
            limit: format!("{} voxels, {} per axis", limits.max_voxels, limits.max_dim),
        });
    }
    Ok(())
}

/// Resample a volume to `target` spacing (mm) with trilinear interpolation, in parallel.
///
/// Origin and direction are kept; HU are rounded to `i16`. The provenance is kept, except the
/// per-slice records, which are dropped when the slices no longer map one to one.
///
/// # Errors
/// [`VolumeError::TooLarge`] when the output would exceed [`Limits::default`].
pub fn resample_to_spacing(volume: &Volume, target: Spacing) -> Result<Volume, VolumeError> {
    let g = volume.geometry();
    let shape = output_shape(volume.shape_zyx(), g.spacing, target);
    check_output(shape, volume.provenance().source.clone())?;
    let out = resample_array(volume.voxels(), g.spacing, target, shape);
    let mut provenance = volume.provenance().clone();
    if shape[0] != volume.shape_zyx()[0] || target.z_mm() != g.spacing.z_mm() {
        provenance.slices.clear();
    }
    Volume::new(
        out,
        Geometry::new(target, g.origin, g.direction),
        provenance,
    )
}

/// Resample an `f32` array (`[z, y, x]`, e.g. HU for the detector) with its geometry to `target`
/// spacing (mm); returns the new array and geometry (same origin and direction).
///
/// # Errors
/// [`VolumeError::InvalidGeometry`] for an empty array; [`VolumeError::TooLarge`] when the
/// output would exceed [`Limits::default`].
pub fn resample_f32(
    data: ArrayView3<'_, f32>,
    geometry: &Geometry,
    target: Spacing,
) -> Result<(Array3<f32>, Geometry), VolumeError> {
    let (nz, ny, nx) = data.dim();
    if nz == 0 || ny == 0 || nx == 0 {
        return Err(VolumeError::InvalidGeometry(format!(
            "cannot resample an empty array of shape [{nz}, {ny}, {nx}]"
        )));
    }
    let shape = output_shape([nz, ny, nx], geometry.spacing, target);
    check_output(shape, None)?;
    let out = resample_array(data, geometry.spacing, target, shape);
    Ok((
        out,
        Geometry::new(target, geometry.origin, geometry.direction),
    ))
}

/// The sub-volume of `shape_zyx` voxels starting at `start`; its origin is the world position
/// of `start`, so every voxel keeps its world position.
///
/// # Errors
/// [`VolumeError::InvalidGeometry`] when the box is empty or reaches outside the volume.
pub fn crop(
    volume: &Volume,
    start: VoxelIndex,
    shape_zyx: [usize; 3],
) -> Result<Volume, VolumeError> {
    let full = volume.shape_zyx();
    let s = start.to_array();
    for a in 0..3 {
        if shape_zyx[a] == 0 || s[a].checked_add(shape_zyx[a]).is_none_or(|e| e > full[a]) {
            return Err(VolumeError::InvalidGeometry(format!(
                "crop box {s:?} + {shape_zyx:?} does not fit a volume of shape {full:?}"
            )));
        }
    }
    let view = volume.voxels();
    let sub = view.slice(ndarray::s![
        s[0]..s[0] + shape_zyx[0],
        s[1]..s[1] + shape_zyx[1],
        s[2]..s[2] + shape_zyx[2]
    ]);
    let g = volume.geometry();
    let mut provenance: Provenance = volume.provenance().clone();
    if !provenance.slices.is_empty() {
        provenance.slices = provenance.slices[s[0]..s[0] + shape_zyx[0]].to_vec();
    }
    Volume::new(
        sub.to_owned(),
        Geometry::new(g.spacing, volume.voxel_to_world(start), g.direction),
        provenance,
    )
}

/// The volume padded with `value_hu` by `before_zyx` voxels before and `after_zyx` voxels after
/// along each axis; the origin moves so that every original voxel keeps its world position.
///
/// # Errors
/// [`VolumeError::TooLarge`] when the padded volume would exceed [`Limits::default`].
pub fn pad(
    volume: &Volume,
    before_zyx: [usize; 3],
    after_zyx: [usize; 3],
    value_hu: i16,
) -> Result<Volume, VolumeError> {
    let full = volume.shape_zyx();
    let mut shape = [0usize; 3];
    for a in 0..3 {
        shape[a] = full[a]
            .checked_add(before_zyx[a])
            .and_then(|v| v.checked_add(after_zyx[a]))
            .ok_or_else(|| {
                VolumeError::InvalidGeometry(format!(
                    "padding {before_zyx:?}/{after_zyx:?} overflows"
                ))
            })?;
    }
    check_output(shape, volume.provenance().source.clone())?;
    let mut out = Array3::from_elem((shape[0], shape[1], shape[2]), value_hu);
    let [bz, by, bx] = before_zyx;
    out.slice_mut(ndarray::s![
        bz..bz + full[0],
        by..by + full[1],
        bx..bx + full[2]
    ])
    .assign(&volume.voxels());
    let g = volume.geometry();
    let origin = g.index_to_world(ContinuousIndex::new(
        -(bz as f64),
        -(by as f64),
        -(bx as f64),
    ));
    let mut provenance = volume.provenance().clone();
    if !provenance.slices.is_empty() {
        let mut slices = vec![SliceSource::default(); bz];
        slices.extend(provenance.slices.iter().cloned());
        slices.resize(shape[0], SliceSource::default());
        provenance.slices = slices;
    }
    Volume::new(
        out,
        Geometry::new(g.spacing, origin, g.direction),
        provenance,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axis_table_clamps_and_interpolates() {
        let t = axis_table(3, 6, 1.0, 0.5);
        assert_eq!(t[0], (0, 1, 0.0));
        assert_eq!(t[1], (0, 1, 0.5));
        assert_eq!(t[4], (2, 2, 0.0));
        assert_eq!(
            t[5],
            (2, 2, 0.0),
            "beyond the last centre the edge is repeated"
        );
    }

    #[test]
    fn absurd_target_spacing_is_refused_not_overflowed() {
        let g = Geometry::new(
            Spacing::isotropic(1.0).expect("s"),
            crate::WorldPoint::default(),
            crate::Direction::IDENTITY,
        );
        let data = Array3::<f32>::zeros((4, 4, 4));
        let tiny = Spacing::isotropic(1e-300).expect("s");
        assert!(matches!(
            resample_f32(data.view(), &g, tiny),
            Err(VolumeError::TooLarge { .. })
        ));
    }
}
