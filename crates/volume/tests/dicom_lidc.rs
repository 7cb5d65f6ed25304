//! Real data: LIDC-IDRI-0001 (133 axial slices, GE, CC BY 3.0) from `../shared/data/` next to the
//! workspace. Skips (with a note) when the data is absent.
//!
//! Geometry must match SimpleITK's `ImageSeriesReader` on the same files. When a peer Python with
//! SimpleITK is available (`SPECK_PEER_PYTHON`, else `/work/main/.venv-peer/bin/python`, else
//! `<workspace>/.venv-peer/bin/python`) the test runs `tests/peer/lidc_sitk.py` and compares live;
//! otherwise it compares with the values that script printed (recorded below).

use std::path::{Path, PathBuf};
use std::process::Command;

use speck_volume::dicom::read_series;
use speck_volume::{LoadOptions, Volume, VoxelIndex, WorldPoint};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("workspace root")
}

fn lidc_dir() -> Option<PathBuf> {
    let d = workspace().join("../shared/data/lidc-idri-0001");
    d.join("000001.dcm").is_file().then_some(d)
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

/// Voxels (x, y, z index) whose HU is compared with SimpleITK's.
const SAMPLES: [[usize; 3]; 4] = [[0, 0, 0], [256, 256, 66], [100, 300, 10], [400, 200, 132]];

/// What SimpleITK 2.5.7 printed for `tests/peer/lidc_sitk.py ../shared/data/lidc-idri-0001
/// --samples "0,0,0;256,256,66;100,300,10;400,200,132"` (recorded 2026-11-29).
const RECORDED: &str = r#"{"size_xyz": [512, 512, 133], "spacing_xyz_mm": [0.703125, 0.703125, 2.5], "origin_lps_mm": [-166.0, -171.699997, -340.0], "direction": [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]], "n_files": 133, "hu_min": -2048, "hu_max": 3071, "hu_sum": -28831525777, "series_uid": "1.3.6.1.4.1.14519.5.2.1.6279.6001.179049373636438705059720603192", "samples": [-2048, 399, -124, -137]}"#;

fn peer_reading(dir: &Path) -> serde_json::Value {
    let samples = SAMPLES
        .iter()
        .map(|s| format!("{},{},{}", s[0], s[1], s[2]))
        .collect::<Vec<_>>()
        .join(";");
    if let Some(py) = peer_python() {
        let out = Command::new(&py)
            .arg(workspace().join("tests/peer/lidc_sitk.py"))
            .arg(dir)
            .args(["--samples", &samples])
            .output()
            .expect("run peer python");
        if out.status.success() {
            eprintln!("comparing with SimpleITK live ({})", py.display());
            return serde_json::from_slice(&out.stdout).expect("peer JSON");
        }
        eprintln!(
            "peer python failed ({}), using recorded SimpleITK values",
            String::from_utf8_lossy(&out.stderr)
        );
    } else {
        eprintln!("no peer python: comparing with recorded SimpleITK values");
    }
    serde_json::from_str(RECORDED).expect("recorded JSON")
}

fn f64s(v: &serde_json::Value) -> Vec<f64> {
    v.as_array()
        .expect("array")
        .iter()
        .flat_map(|x| match x.as_array() {
            Some(a) => a.iter().map(|y| y.as_f64().expect("number")).collect(),
            None => vec![x.as_f64().expect("number")],
        })
        .collect()
}

fn close(a: &[f64], b: &[f64], tol: f64, what: &str) {
    assert_eq!(a.len(), b.len(), "{what}");
    for (x, y) in a.iter().zip(b) {
        assert!(
            (x - y).abs() <= tol,
            "{what}: speck {a:?} vs SimpleITK {b:?}"
        );
    }
}

fn load() -> Option<(PathBuf, Volume)> {
    let Some(dir) = lidc_dir() else {
        eprintln!("note: ../shared/data/lidc-idri-0001 absent; skipping the LIDC test");
        return None;
    };
    let v = read_series(&dir, &LoadOptions::default()).expect("LIDC-IDRI-0001 loads");
    Some((dir, v))
}

#[test]
fn lidc_geometry_and_voxels_match_simpleitk() {
    let Some((dir, v)) = load() else { return };
    let peer = peer_reading(&dir);
    let g = v.geometry();
    assert_eq!(
        v.size_xyz().map(|n| n as f64).to_vec(),
        f64s(&peer["size_xyz"]),
        "size"
    );
    close(
        &g.spacing.xyz(),
        &f64s(&peer["spacing_xyz_mm"]),
        1e-6,
        "spacing",
    );
    close(
        &g.origin.to_array(),
        &f64s(&peer["origin_lps_mm"]),
        1e-5,
        "origin",
    );
    let dir_rows: Vec<f64> = g.direction.rows().iter().flatten().copied().collect();
    close(&dir_rows, &f64s(&peer["direction"]), 1e-9, "direction");
    let (mn, mx, mean) = v.hu_stats();
    assert_eq!(f64::from(mn), peer["hu_min"].as_f64().expect("min"));
    assert_eq!(f64::from(mx), peer["hu_max"].as_f64().expect("max"));
    let n = v.voxels().len() as f64;
    assert!(
        (mean * n - peer["hu_sum"].as_f64().expect("sum")).abs() < 0.5,
        "HU sum"
    );
    for (s, want) in SAMPLES.iter().zip(f64s(&peer["samples"])) {
        let got = v.get(VoxelIndex::new(s[2], s[1], s[0])).expect("inside");
        assert_eq!(f64::from(got), want, "HU at [x, y, z] = {s:?}");
    }
    let p = v.provenance();
    assert_eq!(p.series_uid.as_deref(), peer["series_uid"].as_str());
    assert_eq!(p.slices.len(), 133);
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);
    // Sorted by position, so InstanceNumbers run one way through the stack.
    let inst: Vec<i32> = p
        .slices
        .iter()
        .map(|s| s.instance_number.expect("InstanceNumber"))
        .collect();
    let ascending = inst.windows(2).all(|w| w[0] < w[1]);
    let descending = inst.windows(2).all(|w| w[0] > w[1]);
    assert!(ascending || descending, "{inst:?}");
}

#[test]
fn luna16_nodule_lands_on_dense_tissue_inside_the_lung() {
    let Some((dir, v)) = load() else { return };
    let csv = std::fs::read_to_string(dir.join("annotations.csv")).expect("annotations.csv");
    let line = csv.lines().nth(1).expect("one nodule");
    let cols: Vec<&str> = line.split(',').collect();
    assert_eq!(Some(cols[0]), v.provenance().series_uid.as_deref());
    let num = |i: usize| cols[i].trim().parse::<f64>().expect("number");
    let centre = WorldPoint::new(num(1), num(2), num(3));
    let radius_mm = num(4) / 2.0;
    let c = v.world_to_voxel(centre).expect("nodule inside the volume");
    let hu = v.get(c).expect("voxel");
    assert!(hu > -400, "HU at the nodule centre {c:?} is {hu}");
    // Around the nodule, between 1.5 and 3 radii away, the lung: mostly air.
    let s = v.geometry().spacing;
    let [nz, ny, nx] = v.shape_zyx();
    let (mut air, mut total) = (0usize, 0usize);
    let reach = |sp: f64| (3.0 * radius_mm / sp).ceil() as isize;
    for dz in -reach(s.z_mm())..=reach(s.z_mm()) {
        for dy in -reach(s.y_mm())..=reach(s.y_mm()) {
            for dx in -reach(s.x_mm())..=reach(s.x_mm()) {
                let (z, y, x) = (c.z as isize + dz, c.y as isize + dy, c.x as isize + dx);
                if z < 0
                    || y < 0
                    || x < 0
                    || z >= nz as isize
                    || y >= ny as isize
                    || x >= nx as isize
                {
                    continue;
                }
                let idx = VoxelIndex::new(z as usize, y as usize, x as usize);
                let r = v.voxel_to_world(idx).distance_mm(centre);
                if r >= 1.5 * radius_mm && r <= 3.0 * radius_mm {
                    total += 1;
                    air += usize::from(v.get(idx).expect("voxel") < -700);
                }
            }
        }
    }
    let frac = air as f64 / total as f64;
    eprintln!("nodule at voxel {c:?}: {hu} HU; lung-like air (< -700 HU) in the shell: {frac:.2}");
    assert!(
        frac > 0.3,
        "only {frac:.2} of the shell around the nodule is air"
    );
}
