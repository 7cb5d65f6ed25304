//! Resampling, cropping and padding keep every voxel at its world position: a field that is
//! linear in world millimetres must be reproduced exactly (trilinear interpolation is exact for
//! it) at the world position the output geometry assigns to each voxel.

use ndarray::Array3;
use speck_volume::resample::{crop, output_shape, pad, resample_f32, resample_to_spacing};
use speck_volume::{Direction, Geometry, Provenance, Spacing, Volume, VoxelIndex, WorldPoint};

fn oblique_geometry() -> Geometry {
    let (a, b) = (0.4f64, -0.3f64);
    let x = [a.cos(), a.sin(), 0.0];
    let y = [-a.sin() * b.cos(), a.cos() * b.cos(), b.sin()];
    let z = [a.sin() * b.sin(), -a.cos() * b.sin(), b.cos()];
    Geometry::new(
        Spacing::new(0.7, 0.8, 2.5).expect("spacing"),
        WorldPoint::new(-150.0, 20.0, -310.0),
        Direction::from_axes(x, y, z).expect("direction"),
    )
}

/// A field linear in world mm.
fn field(p: WorldPoint) -> f64 {
    0.9 * p.x_mm - 0.4 * p.y_mm + 0.6 * p.z_mm + 100.0
}

fn field_map(g: &Geometry, shape: (usize, usize, usize)) -> Array3<f32> {
    Array3::from_shape_fn(shape, |(z, y, x)| {
        field(g.voxel_to_world(VoxelIndex::new(z, y, x))) as f32
    })
}

#[test]
fn f32_resampling_reproduces_a_linear_field_at_the_new_world_positions() {
    let g = oblique_geometry();
    let data = field_map(&g, (12, 17, 19));
    let target = Spacing::new(1.0, 0.55, 1.3).expect("target");
    let (out, og) = resample_f32(data.view(), &g, target).expect("resample");
    // round(extent / spacing) per axis.
    assert_eq!(out.dim(), (23, 25, 13));
    assert_eq!(og.origin, g.origin);
    assert_eq!(og.direction, g.direction);
    assert_eq!(og.spacing, target);
    let mut checked = 0;
    for ((z, y, x), v) in out.indexed_iter() {
        let p = og.voxel_to_world(VoxelIndex::new(z, y, x));
        let c = g.world_to_index(p);
        // Only inside the input's voxel centres (outside, edge voxels are repeated).
        if c.z <= 11.0 && c.y <= 16.0 && c.x <= 18.0 {
            assert!(
                (f64::from(*v) - field(p)).abs() < 2e-3,
                "{z} {y} {x}: {v} vs {}",
                field(p)
            );
            checked += 1;
        }
    }
    assert!(checked > 5000, "{checked}");
}

#[test]
fn i16_volume_resampling_rounds_and_keeps_world_positions() {
    let g = oblique_geometry();
    let vox = field_map(&g, (10, 12, 14)).mapv(|v| v.round() as i16);
    let v = Volume::new(vox, g, Provenance::default()).expect("volume");
    let iso = resample_to_spacing(&v, Spacing::isotropic(1.0).expect("s")).expect("resample");
    assert_eq!(
        iso.shape_zyx(),
        output_shape([10, 12, 14], g.spacing, Spacing::isotropic(1.0).expect("s"))
    );
    assert_eq!(iso.shape_zyx(), [25, 10, 10]);
    for ((z, y, x), hu) in iso.voxels().indexed_iter() {
        let p = iso.voxel_to_world(VoxelIndex::new(z, y, x));
        let c = g.world_to_index(p);
        if c.z <= 9.0 && c.y <= 11.0 && c.x <= 13.0 {
            // Input voxels were rounded (±0.5), interpolation and output rounding add ±0.5.
            assert!(
                (f64::from(*hu) - field(p)).abs() <= 1.0 + 1e-6,
                "{hu} vs {}",
                field(p)
            );
        }
    }
}

#[test]
fn crop_and_pad_keep_voxels_at_their_world_positions() {
    let g = oblique_geometry();
    let vox = Array3::from_shape_fn((6, 7, 8), |(z, y, x)| (z * 100 + y * 10 + x) as i16);
    let v = Volume::new(vox, g, Provenance::default()).expect("volume");

    let c = crop(&v, VoxelIndex::new(1, 2, 3), [3, 4, 5]).expect("crop");
    assert_eq!(c.shape_zyx(), [3, 4, 5]);
    for (idx, hu) in c.voxels().indexed_iter() {
        let p = c.voxel_to_world(VoxelIndex::new(idx.0, idx.1, idx.2));
        assert_eq!(v.world_to_voxel(p).and_then(|i| v.get(i)), Some(*hu));
    }
    assert!(crop(&v, VoxelIndex::new(4, 0, 0), [3, 1, 1]).is_err());
    assert!(crop(&v, VoxelIndex::new(0, 0, 0), [0, 1, 1]).is_err());

    let p = pad(&v, [1, 2, 3], [2, 0, 1], -1024).expect("pad");
    assert_eq!(p.shape_zyx(), [9, 9, 12]);
    for (idx, hu) in p.voxels().indexed_iter() {
        let w = p.voxel_to_world(VoxelIndex::new(idx.0, idx.1, idx.2));
        match v.world_to_voxel(w) {
            Some(i) => assert_eq!(v.get(i), Some(*hu)),
            None => assert_eq!(*hu, -1024),
        }
    }
}
