//! NIfTI: writer round trips with oblique and flipped affines, headers built by hand from the
//! standard (sform, qform, pixdim, scaling, byte order), malformed and hostile files, and a
//! cross-check against nibabel/SimpleITK when the peer venv exists.

use std::io::Write;
use std::path::{Path, PathBuf};

use ndarray::Array3;
use speck_volume::nifti::{read_nifti, read_nifti_f32, write_nifti, write_nifti_f32};
use speck_volume::{
    Direction, Geometry, LoadOptions, Provenance, Spacing, Volume, VolumeError, VoxelIndex,
    WorldPoint,
};

fn mul(p: [[f64; 3]; 3], q: [[f64; 3]; 3]) -> [[f64; 3]; 3] {
    std::array::from_fn(|i| std::array::from_fn(|j| (0..3).map(|k| p[i][k] * q[k][j]).sum()))
}

/// An oblique direction (rotations about z and x) with the x axis flipped (det = -1).
fn oblique_flipped() -> Direction {
    let (a, b) = (0.5f64, 0.2f64);
    let rz = [
        [a.cos(), -a.sin(), 0.0],
        [a.sin(), a.cos(), 0.0],
        [0.0, 0.0, 1.0],
    ];
    let rx = [
        [1.0, 0.0, 0.0],
        [0.0, b.cos(), -b.sin()],
        [0.0, b.sin(), b.cos()],
    ];
    let flip = [[-1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];
    Direction::from_rows(mul(mul(rz, rx), flip)).expect("direction")
}

fn pattern(shape: (usize, usize, usize)) -> Array3<i16> {
    Array3::from_shape_fn(shape, |(z, y, x)| (z * 100 + y * 10 + x) as i16 - 500)
}

fn test_volume(direction: Direction) -> Volume {
    let g = Geometry::new(
        Spacing::new(0.7, 0.8, 2.5).expect("spacing"),
        WorldPoint::new(-100.5, 30.25, -200.0),
        direction,
    );
    Volume::new(pattern((5, 6, 7)), g, Provenance::default()).expect("volume")
}

fn assert_geometry_close(a: &Geometry, b: &Geometry, tol: f64) {
    let (sa, sb) = (a.spacing.xyz(), b.spacing.xyz());
    let (oa, ob) = (a.origin.to_array(), b.origin.to_array());
    for i in 0..3 {
        assert!((sa[i] - sb[i]).abs() < tol, "spacing {sa:?} vs {sb:?}");
        assert!((oa[i] - ob[i]).abs() < tol, "origin {oa:?} vs {ob:?}");
    }
    let (ra, rb) = (a.direction.rows(), b.direction.rows());
    for i in 0..3 {
        for j in 0..3 {
            assert!(
                (ra[i][j] - rb[i][j]).abs() < tol,
                "direction {ra:?} vs {rb:?}"
            );
        }
    }
}

#[test]
fn writer_round_trips_oblique_and_flipped_affines() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (k, direction) in [
        oblique_flipped(),
        Direction::from_rows([[-1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]]).expect("d"),
        Direction::IDENTITY,
    ]
    .into_iter()
    .enumerate()
    {
        let v = test_volume(direction);
        for name in [format!("v{k}.nii"), format!("v{k}.nii.gz")] {
            let path = dir.path().join(&name);
            write_nifti(&v, &path).expect("write");
            let back = read_nifti(&path, &LoadOptions::default()).expect("read");
            assert_eq!(back.voxels(), v.voxels(), "{name}");
            assert_geometry_close(back.geometry(), v.geometry(), 1e-4);
            // A known voxel lands on the same world point.
            let idx = VoxelIndex::new(4, 2, 6);
            let (p, q) = (v.voxel_to_world(idx), back.voxel_to_world(idx));
            assert!(p.distance_mm(q) < 1e-3, "{name}: {p:?} vs {q:?}");
            assert_eq!(
                back.provenance().series_uid.as_deref(),
                Some(&*format!("v{k}"))
            );
            assert_eq!(back.provenance().source.as_deref(), Some(path.as_path()));
        }
    }
}

#[test]
fn qform_written_alone_gives_the_same_geometry() {
    let dir = tempfile::tempdir().expect("tempdir");
    let v = test_volume(oblique_flipped());
    let path = dir.path().join("q.nii");
    write_nifti(&v, &path).expect("write");
    let mut bytes = std::fs::read(&path).expect("read bytes");
    bytes[254..256].copy_from_slice(&0i16.to_le_bytes()); // sform_code = 0
    std::fs::write(&path, &bytes).expect("rewrite");
    let back = read_nifti(&path, &LoadOptions::default()).expect("read");
    assert_geometry_close(back.geometry(), v.geometry(), 1e-4);
    assert!(back
        .provenance()
        .warnings
        .iter()
        .any(|w| w.contains("qform")));
}

#[test]
fn f32_maps_round_trip() {
    let dir = tempfile::tempdir().expect("tempdir");
    let g = *test_volume(oblique_flipped()).geometry();
    let map = Array3::from_shape_fn((3, 4, 5), |(z, y, x)| {
        (z as f32) * 0.5 - (y as f32) / 3.0 + x as f32
    });
    let path = dir.path().join("heat.nii.gz");
    write_nifti_f32(map.view(), &g, &path).expect("write");
    let (back, bg, _) = read_nifti_f32(&path, &LoadOptions::default()).expect("read");
    assert_eq!(back, map);
    assert_geometry_close(&bg, &g, 1e-4);
}

/// A NIfTI-1 header built field by field from the standard, independent of Speck's writer.
struct Hdr {
    b: Vec<u8>,
    be: bool,
}

impl Hdr {
    fn new(dims_xyz: [i16; 3], datatype: i16, bitpix: i16, be: bool) -> Self {
        let mut h = Hdr {
            b: vec![0u8; 352],
            be,
        };
        h.i32(0, 348);
        h.i16(40, 3);
        for (i, d) in dims_xyz.iter().enumerate() {
            h.i16(42 + 2 * i, *d);
        }
        for i in 4..8 {
            h.i16(40 + 2 * i, 1);
        }
        h.i16(70, datatype);
        h.i16(72, bitpix);
        h.f32(108, 352.0);
        h.b[123] = 2;
        h.b[344..348].copy_from_slice(b"n+1\0");
        h
    }
    fn i16(&mut self, off: usize, v: i16) {
        let b = if self.be {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        };
        self.b[off..off + 2].copy_from_slice(&b);
    }
    fn i32(&mut self, off: usize, v: i32) {
        let b = if self.be {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        };
        self.b[off..off + 4].copy_from_slice(&b);
    }
    fn f32(&mut self, off: usize, v: f32) {
        let b = if self.be {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        };
        self.b[off..off + 4].copy_from_slice(&b);
    }
    fn sform(&mut self, rows: [[f32; 4]; 3]) {
        self.i16(254, 1);
        for (r, row) in rows.iter().enumerate() {
            for (c, v) in row.iter().enumerate() {
                self.f32(280 + 16 * r + 4 * c, *v);
            }
        }
    }
    fn pixdim(&mut self, p: [f32; 4]) {
        for (i, v) in p.iter().enumerate() {
            self.f32(76 + 4 * i, *v);
        }
    }
}

fn write_file(path: &Path, header: &Hdr, data: &[u8], gzip: bool) {
    let mut bytes = header.b.clone();
    bytes.extend_from_slice(data);
    if gzip {
        let f = std::fs::File::create(path).expect("create");
        let mut gz = flate2::write::GzEncoder::new(f, flate2::Compression::default());
        gz.write_all(&bytes).expect("gz");
        gz.finish().expect("finish");
    } else {
        std::fs::write(path, bytes).expect("write");
    }
}

#[test]
fn sform_is_converted_from_ras_to_lps_and_preferred_over_qform() {
    // A typical CT sform: i runs right-to-left... in RAS x decreases with i (-0.7 mm), j goes
    // anterior-to-posterior (-0.7 mm), k goes up (2.5 mm).
    let dir = tempfile::tempdir().expect("tempdir");
    let mut h = Hdr::new([4, 3, 2], 4, 16, false);
    h.pixdim([1.0, 9.0, 9.0, 9.0]); // deliberately wrong: the sform must win
    h.sform([
        [-0.7, 0.0, 0.0, 180.0],
        [0.0, -0.7, 0.0, 200.0],
        [0.0, 0.0, 2.5, -300.0],
    ]);
    h.i16(252, 1); // a qform code with a zero quaternion: identity, must be ignored
    let data: Vec<u8> = (0..24i16)
        .flat_map(|v| (v * 10 - 1000).to_le_bytes())
        .collect();
    let path = dir.path().join("ct.nii");
    write_file(&path, &h, &data, false);
    let v = read_nifti(&path, &LoadOptions::default()).expect("read");
    assert_eq!(v.shape_zyx(), [2, 3, 4]);
    let g = v.geometry();
    assert_eq!(g.direction.rows(), Direction::IDENTITY.rows());
    assert!((g.spacing.x_mm() - 0.7).abs() < 1e-6 && (g.spacing.z_mm() - 2.5).abs() < 1e-6);
    assert_eq!(g.origin, WorldPoint::new(-180.0, -200.0, -300.0));
    // File order is x fastest: element 1 is (x=1, y=0, z=0); element 12 starts slice z=1.
    assert_eq!(v.get(VoxelIndex::new(0, 0, 1)), Some(-990));
    assert_eq!(v.get(VoxelIndex::new(1, 0, 0)), Some(12 * 10 - 1000));
    assert_eq!(v.get(VoxelIndex::new(1, 2, 3)), Some(23 * 10 - 1000));
    // Voxel (z=1, y=2, x=3) in RAS is (180 - 2.1, 200 - 1.4, -297.5) => LPS (-177.9, -198.6, -297.5).
    let p = v.voxel_to_world(VoxelIndex::new(1, 2, 3));
    assert!(
        p.distance_mm(WorldPoint::new(-177.9, -198.6, -297.5)) < 1e-4,
        "{p:?}"
    );
}

#[test]
fn qform_quaternion_big_endian_float64_with_scaling() {
    // qform: 180 degrees about z (b=c=0, d=1) maps i -> -x, j -> -y in RAS, i.e. +x, +y in LPS.
    let dir = tempfile::tempdir().expect("tempdir");
    let mut h = Hdr::new([2, 2, 2], 64, 64, true);
    h.i16(252, 2);
    h.pixdim([-1.0, 0.5, 0.6, 3.0]); // qfac = -1 flips k
    h.f32(264, 1.0); // quatern_d
    h.f32(268, 10.0);
    h.f32(272, 20.0);
    h.f32(276, 30.0);
    h.f32(112, 2.0); // scl_slope
    h.f32(116, -1024.0); // scl_inter
    let raw = [0.0f64, 1.0, 2.25, 3.0, 500.0, 512.0, 20000.0, -1.0];
    let data: Vec<u8> = raw.iter().flat_map(|v| v.to_be_bytes()).collect();
    let path = dir.path().join("q.nii.gz");
    write_file(&path, &h, &data, true);
    let v = read_nifti(&path, &LoadOptions::default()).expect("read");
    let g = v.geometry();
    assert!((g.spacing.x_mm() - 0.5).abs() < 1e-6);
    assert!((g.spacing.y_mm() - 0.6).abs() < 1e-6);
    assert!((g.spacing.z_mm() - 3.0).abs() < 1e-6);
    // LPS: x axis +L, y axis +P, z axis -S (qfac), origin (-10, -20, 30).
    let expect = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, -1.0]];
    for (r, e) in g.direction.rows().iter().zip(expect) {
        for (a, b) in r.iter().zip(e) {
            assert!((a - b).abs() < 1e-6, "{:?}", g.direction.rows());
        }
    }
    assert_eq!(g.origin, WorldPoint::new(-10.0, -20.0, 30.0));
    let hu: Vec<i16> = v.voxels().iter().copied().collect();
    // 2*2.25-1024 = -1019.5 rounds away from zero; 2*20000-1024 is clamped.
    assert_eq!(
        hu,
        vec![-1024, -1022, -1020, -1018, -24, 0, i16::MAX, -1026]
    );
    assert!(v
        .provenance()
        .warnings
        .iter()
        .any(|w| w.contains("clamped")));
}

#[test]
fn pixdim_only_warns_and_uses_the_simpleitk_orientation() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut h = Hdr::new([2, 2, 1], 2, 8, false);
    h.pixdim([1.0, 0.9, 0.8, 5.0]);
    let path = dir.path().join("p.nii");
    write_file(&path, &h, &[1, 2, 3, 255], false);
    let v = read_nifti(&path, &LoadOptions::default()).expect("read");
    assert_eq!(
        v.voxels().iter().copied().collect::<Vec<_>>(),
        vec![1, 2, 3, 255]
    );
    // SimpleITK 2.5 reads such a file with the identity direction (checked by hand:
    // `sitk.ReadImage(f).GetDirection()` on a NIfTI with both codes 0).
    assert_eq!(v.geometry().direction, Direction::IDENTITY);
    assert_eq!(
        v.geometry().spacing.xyz().map(|s| (s * 1e3).round() / 1e3),
        [0.9, 0.8, 5.0]
    );
    assert!(v.provenance().warnings.iter().any(|w| w.contains("pixdim")));
}

fn expect_malformed(path: &Path, needle: &str) {
    match read_nifti(path, &LoadOptions::default()) {
        Err(e @ VolumeError::Malformed { .. }) => {
            let s = e.to_string();
            assert!(s.contains(needle), "{s}");
            assert!(
                s.contains(&*path.to_string_lossy()),
                "error names the file: {s}"
            );
        }
        other => panic!(
            "{}: expected Malformed({needle}), got {other:?}",
            path.display()
        ),
    }
}

#[test]
fn malformed_and_hostile_files_give_typed_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = |n: &str| -> PathBuf { dir.path().join(n) };
    let data: Vec<u8> = vec![0u8; 4 * 4 * 4 * 2];

    // Truncated: the header promises 128 bytes, the file holds 100.
    let h = Hdr::new([4, 4, 4], 4, 16, false);
    write_file(&d("trunc.nii"), &h, &data[..100], false);
    expect_malformed(&d("trunc.nii"), "truncated");
    // Truncated gzip stream (cut in the middle of the deflate data).
    write_file(&d("trunc.nii.gz"), &h, &data, true);
    let gz = std::fs::read(d("trunc.nii.gz")).expect("read");
    std::fs::write(d("trunc.nii.gz"), &gz[..gz.len() / 2]).expect("write");
    assert!(matches!(
        read_nifti(&d("trunc.nii.gz"), &LoadOptions::default()),
        Err(VolumeError::Malformed { .. })
    ));
    // Corrupt gzip: garbage after a valid gzip header.
    let mut bad = gz[..10].to_vec();
    bad.extend_from_slice(&[0xff; 64]);
    std::fs::write(d("bad.nii.gz"), &bad).expect("write");
    expect_malformed(&d("bad.nii.gz"), "gzip");

    // Lying dims: 30000^3 int16 in a tiny file is refused by the limits, before allocation.
    let h = Hdr::new([30000, 30000, 30000], 4, 16, false);
    write_file(&d("huge.nii"), &h, &data, false);
    assert!(matches!(
        read_nifti(&d("huge.nii"), &LoadOptions::default()),
        Err(VolumeError::TooLarge { .. })
    ));
    // Within the limits but far more than a small gzip can hold.
    let h = Hdr::new([1000, 1000, 500], 4, 16, false);
    write_file(&d("lie.nii.gz"), &h, &data, true);
    expect_malformed(&d("lie.nii.gz"), "cannot expand");
    write_file(&d("lie.nii"), &h, &data, false);
    expect_malformed(&d("lie.nii"), "truncated");

    // Gzip bomb: the header declares 4x4x4, the stream inflates to 64 MiB of zeros.
    let h = Hdr::new([4, 4, 4], 4, 16, false);
    let mut bomb = data.clone();
    bomb.resize(64 << 20, 0);
    write_file(&d("bomb.nii.gz"), &h, &bomb, true);
    expect_malformed(&d("bomb.nii.gz"), "expands past");

    // NaN in float data.
    let mut h = Hdr::new([2, 1, 1], 16, 32, false);
    h.sform([
        [1.0, 0.0, 0.0, 0.0],
        [0.0, 1.0, 0.0, 0.0],
        [0.0, 0.0, 1.0, 0.0],
    ]);
    let nan: Vec<u8> = [1.0f32, f32::NAN]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    write_file(&d("nan.nii"), &h, &nan, false);
    expect_malformed(&d("nan.nii"), "x=1");

    // Singular sform, bad magic, bad datatype, 4-D, NIfTI-2, short file.
    let mut h = Hdr::new([2, 1, 1], 4, 16, false);
    h.sform([
        [1.0, 0.0, 0.0, 0.0],
        [0.0, 0.0, 0.0, 0.0],
        [0.0, 0.0, 1.0, 0.0],
    ]);
    write_file(&d("sing.nii"), &h, &[0; 4], false);
    expect_malformed(&d("sing.nii"), "affine");
    let mut h = Hdr::new([2, 1, 1], 4, 16, false);
    h.b[344..348].copy_from_slice(b"xxxx");
    write_file(&d("magic.nii"), &h, &[0; 4], false);
    assert!(matches!(
        read_nifti(&d("magic.nii"), &LoadOptions::default()),
        Err(VolumeError::Unsupported { .. })
    ));
    let h = Hdr::new([2, 1, 1], 3, 16, false);
    write_file(&d("dt.nii"), &h, &[0; 4], false);
    expect_malformed(&d("dt.nii"), "datatype");
    let mut h = Hdr::new([2, 1, 1], 4, 16, false);
    h.i16(40, 4);
    h.i16(48, 3);
    write_file(&d("4d.nii"), &h, &[0; 12], false);
    assert!(matches!(
        read_nifti(&d("4d.nii"), &LoadOptions::default()),
        Err(VolumeError::Unsupported { .. })
    ));
    std::fs::write(d("short.nii"), [0u8; 100]).expect("write");
    expect_malformed(&d("short.nii"), "header");
    let mut h = Hdr::new([2, 1, 1], 4, 16, false);
    h.i16(42, -5);
    write_file(&d("neg.nii"), &h, &[0; 4], false);
    expect_malformed(&d("neg.nii"), "dim[1]");
}

/// Peer check: nibabel's affine and SimpleITK's origin/spacing/direction of a file Speck wrote
/// agree with Speck's geometry. Runs only when `/work/main/.venv-peer`-style venv exists at the
/// workspace root (`.venv-peer`, with nibabel and SimpleITK); skips otherwise.
#[test]
fn nibabel_and_simpleitk_read_the_same_geometry() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let python = root.join(".venv-peer/bin/python");
    let script = root.join("benches/peer/nifti_geometry.py");
    if !python.exists() {
        eprintln!("skipped: no .venv-peer (see benches/peer/README.md)");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let v = test_volume(oblique_flipped());
    let path = dir.path().join("peer.nii.gz");
    write_nifti(&v, &path).expect("write");
    let nifti2 = dir.path().join("peer2.nii.gz");
    let out = std::process::Command::new(&python)
        .arg(&script)
        .arg(&path)
        .arg(&nifti2)
        .output()
        .expect("run python");
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        if err.contains("ModuleNotFoundError") {
            eprintln!("skipped: peer venv lacks nibabel/SimpleITK: {err}");
            return;
        }
        panic!("peer script failed: {err}");
    }
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let g = v.geometry();
    // nibabel: RAS affine = diag(-1,-1,1) * [D*diag(s) | o].
    let aff = &j["nibabel_affine"];
    let m = g.direction.rows();
    let s = g.spacing.xyz();
    let o = g.origin.to_array();
    let flip = [-1.0, -1.0, 1.0];
    for r in 0..3 {
        for c in 0..3 {
            let got = aff[r][c].as_f64().expect("num");
            assert!(
                (got - flip[r] * m[r][c] * s[c]).abs() < 1e-4,
                "affine {aff}"
            );
        }
        let got = aff[r][3].as_f64().expect("num");
        assert!((got - flip[r] * o[r]).abs() < 1e-4, "affine {aff}");
    }
    // SimpleITK: LPS origin, spacing, row-major direction.
    for i in 0..3 {
        assert!((j["sitk_origin"][i].as_f64().expect("num") - o[i]).abs() < 1e-4);
        assert!((j["sitk_spacing"][i].as_f64().expect("num") - s[i]).abs() < 1e-4);
        for c in 0..3 {
            let got = j["sitk_direction"][3 * i + c].as_f64().expect("num");
            assert!(
                (got - m[i][c]).abs() < 1e-4,
                "sitk direction {}",
                j["sitk_direction"]
            );
        }
    }
    // Both see the same voxel at (z=4, y=2, x=6).
    assert_eq!(
        j["sitk_value_z4_y2_x6"].as_i64(),
        v.get(VoxelIndex::new(4, 2, 6)).map(i64::from)
    );
    // nibabel's NIfTI-2 copy reads back as the same volume.
    let n2 = read_nifti(&nifti2, &LoadOptions::default()).expect("read nibabel NIfTI-2");
    assert_eq!(n2.voxels(), v.voxels());
    assert_geometry_close(n2.geometry(), v.geometry(), 1e-4);
    assert_eq!(
        j["nibabel_value_z4_y2_x6"].as_i64(),
        v.get(VoxelIndex::new(4, 2, 6)).map(i64::from)
    );
}

#[test]
fn sheared_direction_is_written_as_sform_only_and_read_back_exactly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sheared =
        Direction::from_axes([1.0, 0.0, 0.0], [0.3, 1.0, 0.0], [0.0, 0.0, 1.0]).expect("sheared");
    let v = test_volume(sheared);
    let path = dir.path().join("shear.nii");
    write_nifti(&v, &path).expect("write");
    let bytes = std::fs::read(&path).expect("bytes");
    assert_eq!(i16::from_le_bytes([bytes[252], bytes[253]]), 0, "no qform");
    assert_eq!(i16::from_le_bytes([bytes[254], bytes[255]]), 1, "sform");
    let back = read_nifti(&path, &LoadOptions::default()).expect("read");
    assert_geometry_close(back.geometry(), v.geometry(), 1e-4);
    assert!(back
        .provenance()
        .warnings
        .iter()
        .any(|w| w.contains("orthogonal")));
}

/// A NIfTI-2 header (540 bytes + 4 extension bytes) built from the standard's layout.
fn nifti2_file(dims_xyz: [i64; 3], be: bool, qform: bool, data: &[u8]) -> Vec<u8> {
    let mut b = vec![0u8; 544];
    let put = |b: &mut Vec<u8>, off: usize, bytes: &[u8]| {
        b[off..off + bytes.len()].copy_from_slice(bytes)
    };
    let i16b = |v: i16| if be { v.to_be_bytes() } else { v.to_le_bytes() };
    let i32b = |v: i32| if be { v.to_be_bytes() } else { v.to_le_bytes() };
    let i64b = |v: i64| if be { v.to_be_bytes() } else { v.to_le_bytes() };
    let f64b = |v: f64| if be { v.to_be_bytes() } else { v.to_le_bytes() };
    put(&mut b, 0, &i32b(540));
    put(&mut b, 4, b"n+2\0\r\n\x1a\n");
    put(&mut b, 12, &i16b(4)); // int16
    put(&mut b, 14, &i16b(16));
    let dims = [3, dims_xyz[0], dims_xyz[1], dims_xyz[2], 1, 1, 1, 1];
    for (i, d) in dims.iter().enumerate() {
        put(&mut b, 16 + 8 * i, &i64b(*d));
    }
    for (i, p) in [-1.0, 0.5, 0.6, 3.0, 1.0, 1.0, 1.0, 1.0].iter().enumerate() {
        put(&mut b, 104 + 8 * i, &f64b(*p));
    }
    put(&mut b, 168, &i64b(544));
    put(&mut b, 176, &f64b(1.0));
    put(&mut b, 184, &f64b(-1024.0));
    put(&mut b, 500, &i32b(2)); // mm
    if qform {
        // 180 degrees about z, qfac -1 (as the NIfTI-1 qform test).
        put(&mut b, 344, &i32b(1));
        put(&mut b, 368, &f64b(1.0));
        for (i, o) in [10.0, 20.0, 30.0].iter().enumerate() {
            put(&mut b, 376 + 8 * i, &f64b(*o));
        }
    } else {
        put(&mut b, 348, &i32b(2));
        let srow = [
            [-0.5, 0.0, 0.0, 100.0],
            [0.0, 0.0, 3.0, -50.0],
            [0.0, 0.6, 0.0, 7.25],
        ];
        for (r, row) in srow.iter().enumerate() {
            for (c, v) in row.iter().enumerate() {
                put(&mut b, 400 + 32 * r + 8 * c, &f64b(*v));
            }
        }
    }
    b.extend_from_slice(data);
    b
}

#[test]
fn nifti2_sform_and_qform_headers_are_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    let vals: Vec<i16> = (0..24).map(|v| v * 100).collect();
    for (be, qform) in [(false, false), (true, true), (false, true)] {
        let data: Vec<u8> = vals
            .iter()
            .flat_map(|v| if be { v.to_be_bytes() } else { v.to_le_bytes() })
            .collect();
        let path = dir.path().join(format!("n2_{be}_{qform}.nii.gz"));
        let bytes = nifti2_file([4, 3, 2], be, qform, &data);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&bytes).expect("gz");
        std::fs::write(&path, gz.finish().expect("gz")).expect("write");
        let v = read_nifti(&path, &LoadOptions::default()).expect("read NIfTI-2");
        assert_eq!(v.shape_zyx(), [2, 3, 4]);
        let hu: Vec<i16> = v.voxels().iter().copied().collect();
        assert_eq!(hu, vals.iter().map(|v| v - 1024).collect::<Vec<_>>());
        let g = v.geometry();
        if qform {
            assert_eq!(g.origin, WorldPoint::new(-10.0, -20.0, 30.0));
            assert!((g.direction.axis(2)[2] + 1.0).abs() < 1e-12, "qfac flips k");
            assert!((g.spacing.z_mm() - 3.0).abs() < 1e-12);
        } else {
            // RAS sform -> LPS: i along +L (0.5 mm), j along +S (0.6 mm), k along -P (3 mm).
            assert_eq!(g.origin, WorldPoint::new(-100.0, 50.0, 7.25));
            assert_eq!(g.direction.axis(0), [1.0, 0.0, 0.0]);
            assert_eq!(g.direction.axis(1), [0.0, 0.0, 1.0]);
            assert_eq!(g.direction.axis(2), [0.0, -1.0, 0.0]);
            assert_eq!(g.spacing.xyz(), [0.5, 0.6, 3.0]);
        }
    }
}
