//! Speck against peer readers (pydicom, SimpleITK) on real-world DICOM files.
//!
//! Two parts, each skipping with a note when its peer is not there:
//! - `pydicom_data_files_decode_like_pydicom`: reads the references that
//!   `tests/peer/dicom_crosscheck.py` writes into `<workspace>/target/peer-ref` (or
//!   `$SPECK_PEER_REF`) from PyPI `pydicom-data` files — JPEG lossless, JPEG-LS, JPEG 2000
//!   (lossless and lossy), RLE, deflate, implicit VR, enhanced multi-frame CT — and requires
//!   Speck's modality values to equal pydicom's, Speck's geometry to put every pixel at the world
//!   position SimpleITK (or the per-frame functional groups) gives it, and 12-bit JPEG extended
//!   files to be refused as unsupported, naming the transfer syntax.
//!   Regenerate: `.venv-peer/bin/python tests/peer/dicom_crosscheck.py`.
//! - `write_series_is_read_identically_by_simpleitk_and_pydicom`: runs
//!   `tests/peer/lidc_sitk.py --pydicom` on a series written by `write_series` (peer python from
//!   `SPECK_PEER_PYTHON`, `/work/main/.venv-peer/bin/python` or `<workspace>/.venv-peer`).

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use speck_volume::dicom::{read_pixels, read_series, write_series, DicomWriteOptions};
use speck_volume::{
    Direction, Geometry, Limits, LoadOptions, Provenance, Spacing, Volume, VolumeError, WorldPoint,
};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("workspace root")
}

fn peer_python() -> Option<PathBuf> {
    std::env::var_os("SPECK_PEER_PYTHON")
        .map(PathBuf::from)
        .into_iter()
        .chain([
            PathBuf::from("/work/main/.venv-peer/bin/python"),
            workspace().join(".venv-peer/bin/python"),
        ])
        .find(|p| p.is_file())
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .expect("array")
        .iter()
        .flat_map(|x| match x.as_array() {
            Some(a) => a.iter().map(|y| y.as_f64().expect("number")).collect(),
            None => vec![x.as_f64().expect("number")],
        })
        .collect()
}

fn read_f64(path: &Path) -> Vec<f64> {
    std::fs::read(path)
        .expect("reference values")
        .chunks_exact(8)
        .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")))
        .collect()
}

/// The peer's placement of frame `k`, pixel (`row`, `col`): (origin, x step, y step, z step) in mm.
struct PeerGeometry {
    origins: Vec<[f64; 3]>,
    x_step: [f64; 3],
    y_step: [f64; 3],
}

impl PeerGeometry {
    fn world(&self, k: usize, row: usize, col: usize) -> WorldPoint {
        let o = self.origins[k];
        let p: [f64; 3] = std::array::from_fn(|i| {
            o[i] + col as f64 * self.x_step[i] + row as f64 * self.y_step[i]
        });
        WorldPoint::new(p[0], p[1], p[2])
    }
}

fn peer_geometry(entry: &Value) -> Option<PeerGeometry> {
    if let Some(frames) = entry.get("frames").filter(|f| !f.is_null()) {
        let iop = floats(&frames["iop"]);
        let ps = floats(&frames["pixel_spacing"]); // (row spacing, column spacing)
        let origins = frames["ipp"]
            .as_array()
            .expect("ipp")
            .iter()
            .map(|p| {
                let v = floats(p);
                [v[0], v[1], v[2]]
            })
            .collect();
        return Some(PeerGeometry {
            origins,
            x_step: std::array::from_fn(|i| iop[i] * ps[1]),
            y_step: std::array::from_fn(|i| iop[3 + i] * ps[0]),
        });
    }
    let s = entry
        .get("sitk")
        .filter(|s| !s.is_null() && s.get("error").is_none())?;
    let spacing = floats(&s["spacing_xyz_mm"]);
    let origin = floats(&s["origin_lps_mm"]);
    let d = floats(&s["direction"]); // row-major; column k is axis k
    let n = s["size_xyz"][2].as_u64().expect("size") as usize;
    Some(PeerGeometry {
        origins: (0..n)
            .map(|k| std::array::from_fn(|i| origin[i] + k as f64 * spacing[2] * d[3 * i + 2]))
            .collect(),
        x_step: std::array::from_fn(|i| d[3 * i] * spacing[0]),
        y_step: std::array::from_fn(|i| d[3 * i + 1] * spacing[1]),
    })
}

#[test]
fn pydicom_data_files_decode_like_pydicom() {
    let dir = std::env::var_os("SPECK_PEER_REF")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target/peer-ref"));
    let Ok(text) = std::fs::read_to_string(dir.join("manifest.json")) else {
        eprintln!(
            "note: no peer references in {}; skipping (run `.venv-peer/bin/python \
             tests/peer/dicom_crosscheck.py` to create them)",
            dir.display()
        );
        return;
    };
    let manifest: Value = serde_json::from_str(&text).expect("manifest JSON");
    let mut checked = 0;
    for entry in manifest["files"].as_array().expect("files") {
        let name = entry["name"].as_str().expect("name");
        let path = PathBuf::from(entry["path"].as_str().expect("path"));
        if !path.is_file() {
            eprintln!("note: {} is gone; skipping {name}", path.display());
            continue;
        }
        let ts = entry["transfer_syntax"].as_str().expect("ts");
        if entry["expect"] == "unsupported" {
            match read_pixels(&path, &Limits::default()) {
                Err(VolumeError::Unsupported { path: p, reason }) => {
                    assert_eq!(p, path);
                    assert!(reason.contains(ts), "{name}: {reason}");
                }
                other => panic!(
                    "{name}: expected Unsupported, got {:?}",
                    other.map(|a| a.dim())
                ),
            }
            checked += 1;
            continue;
        }
        let shape: Vec<usize> = floats(&entry["shape"])
            .iter()
            .map(|&v| v as usize)
            .collect();
        let want = read_f64(&dir.join(entry["values"].as_str().expect("values")));
        let tol = entry["tolerance"].as_f64().unwrap_or(0.0);
        let got =
            read_pixels(&path, &Limits::default()).unwrap_or_else(|e| panic!("{name} ({ts}): {e}"));
        assert_eq!(got.shape(), shape.as_slice(), "{name}: shape");
        let worst = got
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        assert!(
            worst <= tol + 1e-9,
            "{name} ({ts}): max difference {worst} from pydicom"
        );

        if let Some(peer) = peer_geometry(entry) {
            // Alone in a folder, so that read_series does not gather the other test files.
            let alone = tempfile::tempdir().expect("tmp");
            let copy = alone.path().join(name);
            std::fs::copy(&path, &copy).expect("copy");
            let v = read_series(&copy, &LoadOptions::default())
                .unwrap_or_else(|e| panic!("{name}: read_series: {e}"));
            let (frames, rows, cols) = (shape[0], shape[1], shape[2]);
            assert_eq!(v.shape_zyx(), [frames, rows, cols], "{name}");
            for k in 0..frames {
                for row in (0..rows).step_by(7) {
                    for col in (0..cols).step_by(5) {
                        let p = peer.world(k, row, col);
                        let c = v.world_to_index(p);
                        for a in [c.z, c.y, c.x] {
                            assert!((a - a.round()).abs() < 1e-3, "{name}: {p:?} -> {c:?}");
                        }
                        let hu = v.get(v.world_to_voxel(p).expect("inside")).expect("voxel");
                        let r = want[(k * rows + row) * cols + col];
                        let expect = r.round().clamp(-32768.0, 32767.0) as i16;
                        assert_eq!(hu, expect, "{name}: frame {k} ({row},{col}) at {p:?}");
                    }
                }
            }
        }
        checked += 1;
    }
    eprintln!("compared {checked} pydicom-data files with pydicom/SimpleITK");
    assert!(checked > 0, "manifest without files");
}

#[test]
fn write_series_is_read_identically_by_simpleitk_and_pydicom() {
    let Some(py) = peer_python() else {
        eprintln!("note: no peer python with SimpleITK; skipping");
        return;
    };
    let (ca, sa) = (25f64.to_radians().cos(), 25f64.to_radians().sin());
    let direction =
        Direction::from_axes([ca, 0.0, -sa], [0.0, 1.0, 0.0], [sa, 0.0, ca]).expect("direction");
    let geometry = Geometry::new(
        Spacing::new(0.68, 0.74, 1.25).expect("spacing"),
        WorldPoint::new(-170.5, -160.25, -310.125),
        direction,
    );
    let voxels = ndarray::Array3::from_shape_fn((6, 20, 24), |(z, y, x)| {
        ((z * 997 + y * 131 + x * 17) % 4000) as i16 - 2000
    });
    let volume = Volume::new(voxels, geometry, Provenance::default()).expect("volume");
    let tmp = tempfile::tempdir().expect("tmp");
    write_series(&volume, tmp.path(), &DicomWriteOptions::default()).expect("write");
    let samples = [[0usize, 0, 0], [23, 19, 5], [7, 3, 2]];
    let spec = samples
        .iter()
        .map(|s| format!("{},{},{}", s[0], s[1], s[2]))
        .collect::<Vec<_>>()
        .join(";");
    let out = Command::new(&py)
        .arg(workspace().join("tests/peer/lidc_sitk.py"))
        .arg(tmp.path())
        .args(["--samples", &spec, "--pydicom"])
        .output()
        .expect("run peer");
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        if err.contains("No module named") {
            eprintln!("note: peer python lacks SimpleITK/pydicom; skipping: {err}");
            return;
        }
        panic!("peer failed on write_series output: {err}");
    }
    let peer: Value = serde_json::from_slice(&out.stdout).expect("peer JSON");
    assert_eq!(floats(&peer["size_xyz"]), [24.0, 20.0, 6.0]);
    let close = |a: &[f64], b: &[f64], what: &str| {
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() < 1e-5, "{what}: speck {a:?}, SimpleITK {b:?}");
        }
    };
    close(
        &geometry.spacing.xyz(),
        &floats(&peer["spacing_xyz_mm"]),
        "spacing",
    );
    close(
        &geometry.origin.to_array(),
        &floats(&peer["origin_lps_mm"]),
        "origin",
    );
    let rows: Vec<f64> = direction.rows().iter().flatten().copied().collect();
    close(&rows, &floats(&peer["direction"]), "direction");
    let sum: i64 = volume.voxels().iter().map(|&v| i64::from(v)).sum();
    assert_eq!(peer["hu_sum"].as_i64(), Some(sum));
    assert_eq!(peer["pydicom_sum"].as_f64(), Some(sum as f64));
    assert_eq!(peer["pydicom_files"].as_u64(), Some(6));
    for (s, want) in samples.iter().zip(floats(&peer["samples"])) {
        let got = volume.voxels()[[s[2], s[1], s[0]]];
        assert_eq!(f64::from(got), want, "HU at [x, y, z] = {s:?}");
    }
}

/// A tilted series (slice positions step along (0, 0.8, 2) mm, not along the normal).
///
/// SimpleITK 2.5 ignores gantry tilt: it stacks the slices along the normal at the distance
/// between positions (2.154 mm here), so slice `k` lands `k * 0.8` mm off in y and `k * 0.154` mm
/// off in z. This test pins that peer behaviour (so a change in it is noticed) and checks that Speck
/// instead puts every written voxel at its true position (from ImagePositionPatient).
#[test]
fn a_tilted_series_is_placed_by_its_positions_where_simpleitk_ignores_the_tilt() {
    let Some(py) = peer_python() else {
        eprintln!("note: no peer python with SimpleITK; skipping");
        return;
    };
    let (nz, ny, nx) = (5usize, 12usize, 6usize);
    let step: [f64; 3] = [0.0, 0.8, 2.0]; // one row (0.8 mm) of in-plane shift per slice
    let step_len = (step[1] * step[1] + step[2] * step[2]).sqrt();
    let direction = Direction::from_axes(
        [1.0, 0.0, 0.0],
        [0.0, 1.0, 0.0],
        [0.0, step[1] / step_len, step[2] / step_len],
    )
    .expect("sheared direction");
    let geometry = Geometry::new(
        Spacing::new(0.6, 0.8, step_len).expect("spacing"),
        WorldPoint::new(-10.0, -20.0, -30.0),
        direction,
    );
    let voxels = ndarray::Array3::from_shape_fn((nz, ny, nx), |(z, y, x)| {
        (z * 100 + y * 10 + x) as i16 - 500
    });
    let tilted = Volume::new(voxels, geometry, Provenance::default()).expect("volume");
    let tmp = tempfile::tempdir().expect("tmp");
    write_series(&tilted, tmp.path(), &DicomWriteOptions::default()).expect("write");
    let out = Command::new(&py)
        .arg(workspace().join("tests/peer/lidc_sitk.py"))
        .arg(tmp.path())
        .output()
        .expect("run peer");
    if !out.status.success() {
        eprintln!(
            "note: peer failed, skipping: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        return;
    }
    let peer: Value = serde_json::from_slice(&out.stdout).expect("peer JSON");
    let d = floats(&peer["direction"]);
    assert_eq!(
        d,
        [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0],
        "SimpleITK direction"
    );
    let s = floats(&peer["spacing_xyz_mm"]);
    assert!(
        (s[2] - step_len).abs() < 1e-4,
        "SimpleITK z spacing {}",
        s[2]
    );

    let speck = read_series(tmp.path(), &LoadOptions::default()).expect("read tilted");
    assert!(speck
        .provenance()
        .warnings
        .iter()
        .any(|w| w.contains("gantry tilt")));
    assert_eq!(speck.geometry().direction, Direction::IDENTITY);
    assert!((speck.geometry().spacing.z_mm() - step[2]).abs() < 1e-9);
    let mut compared = 0;
    for ((z, y, x), &hu) in tilted.voxels().indexed_iter() {
        let p = tilted.voxel_to_world(speck_volume::VoxelIndex::new(z, y, x));
        if let Some(v) = speck.world_to_voxel(p) {
            let c = speck.world_to_index(p);
            assert!((c.y - c.y.round()).abs() < 1e-4 && (c.z - c.z.round()).abs() < 1e-4);
            assert_eq!(speck.get(v), Some(hu), "voxel [{z}, {y}, {x}] at {p:?}");
            compared += 1;
        }
    }
    // Rows that the tilt pushes below the first slice's field of view are outside Speck's grid.
    assert!(
        compared >= nz * (ny - nz) * nx,
        "only {compared} voxels compared"
    );
}
