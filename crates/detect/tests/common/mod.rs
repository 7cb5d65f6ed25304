//! Shared helpers for speck-detect's integration tests.
//!
//! The models come from `models/test/make_test_models.py` (analytic, untrained; see its docstring).
#![allow(dead_code)]

use std::path::PathBuf;

/// `models/test/<name>` in the repository.
pub fn model(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../models/test")
        .join(name)
}

/// An error and its sources, joined by `: ` (as the `speck` command prints them with `{:#}`).
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        s.push_str(": ");
        s.push_str(&cause.to_string());
        next = cause.source();
    }
    s
}

/// True when ONNX Runtime can be found; otherwise prints why the test is skipped.
pub fn ort_available() -> bool {
    match speck_detect::find_ort_library(None) {
        Ok(_) => true,
        Err(e) => {
            eprintln!("SKIPPED: ONNX Runtime not found ({e})");
            false
        }
    }
}

use ndarray::Array3;
use speck_volume::{Direction, Geometry, Provenance, Spacing, Volume, VoxelIndex, WorldPoint};

/// A blob planted in a synthetic scan.
#[derive(Debug, Clone, Copy)]
pub struct Blob {
    /// Centre, voxel index `[z, y, x]` (may be fractional).
    pub centre: [f64; 3],
    /// Radius in voxels.
    pub radius: f64,
    /// HU inside.
    pub hu: i16,
}

/// A small synthetic chest, 1 mm isotropic, `[z, y, x]` = `shape`, built by hand: outside air
/// (-1000 HU), an elliptic body cylinder (40 HU), two ellipsoid lungs (-850 HU) centred at
/// x = nx/2 -+ 30, a vessel (40 HU, radius 1) along z in the left lung, and the given blobs.
/// Origin (-64, -64, -200) mm, identity direction.
pub fn chest(shape: [usize; 3], blobs: &[Blob]) -> Volume {
    let [nz, ny, nx] = shape;
    let (cy, cx) = (ny as f64 / 2.0, nx as f64 / 2.0);
    let cz = nz as f64 / 2.0;
    let mut v = Array3::<i16>::from_elem((nz, ny, nx), -1000);
    for ((z, y, x), h) in v.indexed_iter_mut() {
        let (fz, fy, fx) = (z as f64, y as f64, x as f64);
        let body =
            ((fy - cy) / (ny as f64 * 0.40)).powi(2) + ((fx - cx) / (nx as f64 * 0.47)).powi(2);
        if body <= 1.0 {
            *h = 40;
        }
        for side in [-1.0, 1.0] {
            let lx = cx + side * 30.0;
            let l = ((fz - cz) / (nz as f64 * 0.44)).powi(2)
                + ((fy - cy) / (ny as f64 * 0.28)).powi(2)
                + ((fx - lx) / 20.0).powi(2);
            if l <= 1.0 {
                *h = -850;
            }
        }
        // vessel in the left lung
        let (vy, vx) = (cy - 14.0, cx - 34.0);
        if (fy - vy).powi(2) + (fx - vx).powi(2) <= 1.0 && (fz - cz).abs() < nz as f64 * 0.3 {
            *h = 40;
        }
        for b in blobs {
            let d2 = (fz - b.centre[0]).powi(2)
                + (fy - b.centre[1]).powi(2)
                + (fx - b.centre[2]).powi(2);
            if d2 <= b.radius * b.radius {
                *h = b.hu;
            }
        }
    }
    let geometry = Geometry::new(
        Spacing::isotropic(1.0).expect("spacing"),
        WorldPoint::new(-64.0, -64.0, -200.0),
        Direction::IDENTITY,
    );
    Volume::new(v, geometry, Provenance::default()).expect("volume")
}

/// World position of a (possibly fractional) voxel centre.
pub fn world(volume: &Volume, c: [f64; 3]) -> WorldPoint {
    let _ = VoxelIndex::new(0, 0, 0);
    volume
        .geometry()
        .index_to_world(speck_volume::ContinuousIndex::new(c[0], c[1], c[2]))
}
