//! Guards the loader's speed: Speck must load a 300-slice 512x512 CT series at least 2x faster
//! than SimpleITK, and a 300x512x512 `.nii.gz` no slower.
//!
//! Run: `cargo bench -p speck-benches --bench load` (release). Needs the peer venv
//! (`.venv-peer` with SimpleITK, see benches/peer/); without it only Speck's times are printed.
//! Both tools load the same files, written once into a temporary folder, in the same run; each
//! figure is the best of `SPECK_BENCH_REPEATS` (default 3) loads after one warm-up load, and the
//! voxel sums are compared so that both are known to have read the same data.
//! Set `SPECK_BENCH_SLICES` to use fewer slices for a quick look, and `SPECK_BENCH_PROFILE=dicom`
//! (or `nifti`) to load one format 10 times without the peer, e.g. under `perf record -D 6000`.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use ndarray::Array3;
use speck::volume::dicom::{write_series, DicomWriteOptions};
use speck::volume::nifti::write_nifti;
use speck::volume::{open, Direction, Geometry, Provenance, Spacing, Volume, WorldPoint};

/// A chest-like CT: air, a body ellipse with noisy soft tissue, two lungs, some bone.
fn synthetic_ct(nz: usize, ny: usize, nx: usize) -> Volume {
    let data = Array3::from_shape_fn((nz, ny, nx), |(z, y, x)| {
        let (fx, fy) = (x as f64 / nx as f64 - 0.5, y as f64 / ny as f64 - 0.5);
        // Cheap deterministic noise (±25 HU), like CT quantum noise.
        let h = (x as u64)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
            .wrapping_add((y as u64).wrapping_mul(0xC2B2_AE3D_27D4_EB4F))
            .wrapping_add((z as u64).wrapping_mul(0x1656_67B1_9E37_79F9));
        let noise = ((h >> 40) % 51) as i16 - 25;
        let body = (fx / 0.45).powi(2) + (fy / 0.35).powi(2) < 1.0;
        let lung = ((fx.abs() - 0.2) / 0.14).powi(2) + (fy / 0.25).powi(2) < 1.0;
        let spine = (fx / 0.05).powi(2) + ((fy - 0.25) / 0.05).powi(2) < 1.0;
        match (body, lung, spine) {
            (false, _, _) => -1000,
            (true, _, true) => 700 + noise * 4,
            (true, true, _) => -850 + noise,
            (true, false, _) => 40 + noise,
        }
    });
    let g = Geometry::new(
        Spacing::new(0.7, 0.7, 1.0).unwrap_or_else(|e| panic!("{e}")),
        WorldPoint::new(-179.0, -179.0, -350.0),
        Direction::IDENTITY,
    );
    Volume::new(data, g, Provenance::default()).unwrap_or_else(|e| panic!("{e}"))
}

fn sum(v: &Volume) -> i64 {
    v.voxels().iter().map(|&x| i64::from(x)).sum()
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else to parse.
    let slices: usize = std::env::var("SPECK_BENCH_SLICES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(300);
    let repeats: usize = std::env::var("SPECK_BENCH_REPEATS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let dicom_dir = tmp.path().join("series");
    let nii = tmp.path().join("ct.nii.gz");

    let t = Instant::now();
    let ct = synthetic_ct(slices, 512, 512);
    write_series(&ct, &dicom_dir, &DicomWriteOptions::default())
        .unwrap_or_else(|e| panic!("write DICOM: {e}"));
    write_nifti(&ct, &nii).unwrap_or_else(|e| panic!("write NIfTI: {e}"));
    let nii_mb = std::fs::metadata(&nii).map(|m| m.len()).unwrap_or(0) as f64 / 1e6;
    eprintln!(
        "wrote {slices}x512x512 as DICOM and .nii.gz ({nii_mb:.0} MB) in {:.1} s",
        t.elapsed().as_secs_f64()
    );

    // For profiling (e.g. `perf record -D 6000`): load one format in a loop, no peer.
    if let Ok(which) = std::env::var("SPECK_BENCH_PROFILE") {
        let path = if which == "nifti" { &nii } else { &dicom_dir };
        let (best, _) = speck_benches::best_of(10, || open(path).unwrap_or_else(|e| panic!("{e}")));
        println!("profile {which}: best of 10 {best:.3} s");
        return;
    }

    let (speck_dicom, v) = speck_benches::best_of(repeats, || {
        open(&dicom_dir).unwrap_or_else(|e| panic!("Speck DICOM: {e}"))
    });
    assert_eq!(
        v.voxels(),
        ct.voxels(),
        "Speck read the DICOM series back exactly"
    );
    let (speck_nii, v) = speck_benches::best_of(repeats, || {
        open(&nii).unwrap_or_else(|e| panic!("Speck NIfTI: {e}"))
    });
    assert_eq!(
        v.voxels(),
        ct.voxels(),
        "Speck read the .nii.gz back exactly"
    );
    let expected_sum = sum(&ct);

    println!("loader benchmark: {slices} x 512 x 512, best of {repeats}");
    println!("  speck     DICOM series {speck_dicom:7.3} s   .nii.gz {speck_nii:7.3} s");

    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let python = root.join(".venv-peer/bin/python");
    if !python.exists() {
        println!("  (no .venv-peer: SimpleITK comparison skipped)");
        return;
    }
    let out = Command::new(&python)
        .arg(root.join("benches/peer/load_sitk.py"))
        .arg(&dicom_dir)
        .arg(&nii)
        .arg(repeats.to_string())
        .output()
        .unwrap_or_else(|e| panic!("run python: {e}"));
    if !out.status.success() {
        println!(
            "  SimpleITK failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        return;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |k: &str| speck_benches::peer_number(&text, k);
    let (sitk_dicom, sitk_nii) = (field("dicom_s"), field("nifti_s"));
    assert_eq!(
        field("dicom_sum") as i64,
        expected_sum,
        "SimpleITK read the same DICOM voxels"
    );
    assert_eq!(
        field("nifti_sum") as i64,
        expected_sum,
        "SimpleITK read the same NIfTI voxels"
    );
    println!(
        "  simpleitk DICOM series {sitk_dicom:7.3} s   .nii.gz {sitk_nii:7.3} s   ({})",
        text.trim()
    );
    println!(
        "  ratio (SimpleITK time / Speck time): DICOM {:.2}x (target >= 2), .nii.gz {:.2}x (target >= 1)",
        sitk_dicom / speck_dicom,
        sitk_nii / speck_nii
    );
}
