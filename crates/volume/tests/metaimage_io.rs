//! MetaImage: writer round trips (.mhd/.raw, .mha, compressed), hand-written headers
//! (TransformMatrix semantics, byte order, HeaderSize), malformed files, and SimpleITK as the peer
//! (it writes compressed files Speck reads, and reads the files Speck writes) when the peer venv
//! exists.

use std::io::Write;
use std::path::Path;

use ndarray::Array3;
use speck_volume::metaimage::{
    read_metaimage, write_metaimage, write_metaimage_with, MetaImageWriteOptions,
};
use speck_volume::{
    Direction, Geometry, LoadOptions, Provenance, Spacing, Volume, VolumeError, VoxelIndex,
    WorldPoint,
};

fn oblique() -> Direction {
    // Rotation about z by 0.5 rad then about x by 0.2 rad, with the x axis flipped.
    let (a, b) = (0.5f64, 0.2f64);
    let x = [-a.cos(), -a.sin() * b.cos(), -a.sin() * b.sin()];
    let y = [-a.sin(), a.cos() * b.cos(), a.cos() * b.sin()];
    let z = [0.0, -b.sin(), b.cos()];
    Direction::from_axes(x, y, z).expect("direction")
}

fn test_volume(direction: Direction) -> Volume {
    let g = Geometry::new(
        Spacing::new(0.7, 0.8, 2.5).expect("spacing"),
        WorldPoint::new(-100.5, 30.25, -200.0),
        direction,
    );
    let v = Array3::from_shape_fn((5, 6, 7), |(z, y, x)| (z * 100 + y * 10 + x) as i16 - 500);
    Volume::new(v, g, Provenance::default()).expect("volume")
}

fn close(a: &Geometry, b: &Geometry, tol: f64) {
    let (ra, rb) = (a.direction.rows(), b.direction.rows());
    for i in 0..3 {
        assert!(
            (a.spacing.xyz()[i] - b.spacing.xyz()[i]).abs() < tol,
            "{a:?} {b:?}"
        );
        assert!(
            (a.origin.to_array()[i] - b.origin.to_array()[i]).abs() < tol,
            "{a:?} {b:?}"
        );
        for j in 0..3 {
            assert!((ra[i][j] - rb[i][j]).abs() < tol, "{ra:?} vs {rb:?}");
        }
    }
}

#[test]
fn writer_round_trips_mhd_mha_and_compressed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let v = test_volume(oblique());
    for (name, compress) in [
        ("1.2.840.113.mhd", false),
        ("a.mha", false),
        ("c.mhd", true),
        ("c.mha", true),
    ] {
        let path = dir.path().join(name);
        write_metaimage_with(&v, &path, MetaImageWriteOptions { compress }).expect("write");
        let back = read_metaimage(&path, &LoadOptions::default()).expect("read");
        assert_eq!(back.voxels(), v.voxels(), "{name}");
        close(back.geometry(), v.geometry(), 1e-12);
        assert!(
            back.provenance().warnings.is_empty(),
            "{:?}",
            back.provenance().warnings
        );
        let stem = name.trim_end_matches(".mhd").trim_end_matches(".mha");
        assert_eq!(back.provenance().series_uid.as_deref(), Some(stem));
    }
    let header = std::fs::read_to_string(dir.path().join("c.mhd")).expect("header");
    assert!(header.contains("CompressedData = True"));
    assert!(header.contains("ElementDataFile = c.zraw"));
}

#[test]
fn transform_matrix_lists_axis_directions_as_itk_reads_it() {
    // TransformMatrix "0 1 0  -1 0 0  0 0 1": x axis along +P, y axis along -L (towards R).
    // Big-endian unsigned shorts, 4 bytes of junk skipped by HeaderSize, Origin as a synonym.
    let dir = tempfile::tempdir().expect("tempdir");
    let header = "ObjectType = Image\nNDims = 3\nBinaryData = True\nElementByteOrderMSB = True\n\
        TransformMatrix = 0 1 0 -1 0 0 0 0 1\nOrigin = 10 20 30\nElementSpacing = 0.5 2 3\n\
        AnatomicalOrientation = ALI\nDimSize = 3 2 2\nElementType = MET_USHORT\n\
        HeaderSize = 4\nElementDataFile = data/img.bin\n";
    std::fs::create_dir(dir.path().join("data")).expect("mkdir");
    let mut bytes = vec![0xde, 0xad, 0xbe, 0xef];
    for v in 0u16..12 {
        bytes.extend_from_slice(&(v * 1000).to_be_bytes());
    }
    std::fs::write(dir.path().join("data/img.bin"), bytes).expect("data");
    let path = dir.path().join("img.mhd");
    std::fs::write(&path, header).expect("header");
    let v = read_metaimage(&path, &LoadOptions::default()).expect("read");
    assert_eq!(v.size_xyz(), [3, 2, 2]);
    assert_eq!(v.get(VoxelIndex::new(1, 1, 2)), Some(11000));
    assert_eq!(v.get(VoxelIndex::new(0, 1, 0)), Some(3000));
    let g = v.geometry();
    assert_eq!(g.direction.axis(0), [0.0, 1.0, 0.0]);
    assert_eq!(g.direction.axis(1), [-1.0, 0.0, 0.0]);
    // Voxel (z=1, y=1, x=2): origin + 2*0.5*(0,1,0) + 1*2*(-1,0,0) + 1*3*(0,0,1).
    let p = v.voxel_to_world(VoxelIndex::new(1, 1, 2));
    assert_eq!(p, WorldPoint::new(8.0, 21.0, 33.0));
    assert!(v.provenance().warnings.is_empty(), "ALI matches the matrix");
}

#[test]
fn anatomical_orientation_disagreeing_with_the_matrix_warns() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("w.mha");
    let mut f = std::fs::File::create(&path).expect("create");
    write!(
        f,
        "NDims = 3\nDimSize = 2 1 1\nElementType = MET_FLOAT\nAnatomicalOrientation = LPS\n\
         ElementDataFile = LOCAL\n"
    )
    .expect("header");
    f.write_all(&[-1000.4f32, 40.6].map(f32::to_le_bytes).concat())
        .expect("data");
    drop(f);
    let v = read_metaimage(&path, &LoadOptions::default()).expect("read");
    assert_eq!(
        v.voxels().iter().copied().collect::<Vec<_>>(),
        vec![-1000, 41]
    );
    assert_eq!(v.geometry().direction, Direction::IDENTITY);
    assert!(v.provenance().warnings.iter().any(|w| w.contains("LPS")));
}

fn write_mha(path: &Path, header: &str, data: &[u8]) {
    let mut bytes = header.as_bytes().to_vec();
    bytes.extend_from_slice(data);
    std::fs::write(path, bytes).expect("write");
}

fn zlib(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).expect("zlib");
    e.finish().expect("finish")
}

#[test]
fn malformed_and_hostile_files_give_typed_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = LoadOptions::default();
    let hdr = |dims: &str, extra: &str| {
        format!("ObjectType = Image\nNDims = 3\nDimSize = {dims}\nElementType = MET_SHORT\n{extra}ElementDataFile = LOCAL\n")
    };
    let is_malformed = |p: &Path, needle: &str| match read_metaimage(p, &opts) {
        Err(e @ VolumeError::Malformed { .. }) => {
            assert!(e.to_string().contains(needle), "{e}");
        }
        other => panic!(
            "{}: expected Malformed({needle}), got {other:?}",
            p.display()
        ),
    };
    let data = vec![0u8; 2 * 4 * 4 * 4];

    let p = dir.path().join("trunc.mha");
    write_mha(&p, &hdr("4 4 4", ""), &data[..50]);
    is_malformed(&p, "truncated");

    let p = dir.path().join("huge.mha");
    write_mha(&p, &hdr("100000 100000 100000", ""), &data);
    assert!(matches!(
        read_metaimage(&p, &opts),
        Err(VolumeError::TooLarge { .. })
    ));

    let p = dir.path().join("lie.mha");
    write_mha(
        &p,
        &hdr("1000 1000 500", "CompressedData = True\n"),
        &zlib(&data),
    );
    is_malformed(&p, "cannot expand");

    let p = dir.path().join("badz.mha");
    write_mha(
        &p,
        &hdr("4 4 4", "CompressedData = True\n"),
        &[0x78, 0x9c, 0xff, 0xff, 0xff, 0xff],
    );
    is_malformed(&p, "compressed");

    let p = dir.path().join("bomb.mha");
    write_mha(
        &p,
        &hdr("4 4 4", "CompressedData = True\n"),
        &zlib(&vec![0u8; 32 << 20]),
    );
    is_malformed(&p, "expands past");

    let p = dir.path().join("csize.mha");
    write_mha(
        &p,
        &hdr(
            "4 4 4",
            "CompressedData = True\nCompressedDataSize = 99999\n",
        ),
        &zlib(&data),
    );
    is_malformed(&p, "CompressedDataSize");

    let p = dir.path().join("dims.mha");
    write_mha(&p, &hdr("4 4", ""), &data);
    is_malformed(&p, "DimSize");

    let p = dir.path().join("sing.mha");
    write_mha(
        &p,
        &hdr("4 4 4", "TransformMatrix = 1 0 0 1 0 0 0 0 1\n"),
        &data,
    );
    is_malformed(&p, "TransformMatrix");

    let p = dir.path().join("nodata.mha");
    std::fs::write(&p, "NDims = 3\nDimSize = 4 4 4\nElementType = MET_SHORT\n").expect("w");
    is_malformed(&p, "ElementDataFile");

    let p = dir.path().join("rgb.mha");
    write_mha(&p, &hdr("4 4 4", "ElementNumberOfChannels = 3\n"), &data);
    assert!(matches!(
        read_metaimage(&p, &opts),
        Err(VolumeError::Unsupported { .. })
    ));

    let p = dir.path().join("missing.mhd");
    std::fs::write(
        &p,
        "NDims = 3\nDimSize = 4 4 4\nElementType = MET_SHORT\nElementDataFile = nope.raw\n",
    )
    .expect("w");
    match read_metaimage(&p, &opts) {
        Err(VolumeError::Io { path, .. }) => assert!(path.ends_with("nope.raw")),
        other => panic!("expected Io naming nope.raw, got {other:?}"),
    }

    // HeaderSize = -1: the voxels are the last bytes of the file.
    let p = dir.path().join("tail.mhd");
    let mut raw = vec![7u8; 10];
    raw.extend((0i16..8).flat_map(|v| v.to_le_bytes()));
    std::fs::write(dir.path().join("tail.raw"), raw).expect("w");
    std::fs::write(&p, "NDims = 3\nDimSize = 2 2 2\nElementType = MET_SHORT\nHeaderSize = -1\nElementDataFile = tail.raw\n")
        .expect("w");
    let v = read_metaimage(&p, &opts).expect("tail");
    assert_eq!(
        v.voxels().iter().copied().collect::<Vec<_>>(),
        (0..8).collect::<Vec<i16>>()
    );
}

fn peer() -> Option<(std::path::PathBuf, std::path::PathBuf)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let python = root.join(".venv-peer/bin/python");
    python
        .exists()
        .then(|| (python, root.join("benches/peer/metaimage_geometry.py")))
}

fn run_peer(python: &Path, script: &Path, args: &[&str]) -> Option<serde_json::Value> {
    let out = std::process::Command::new(python)
        .arg(script)
        .args(args)
        .output()
        .expect("run python");
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        if err.contains("ModuleNotFoundError") {
            eprintln!("skipped: peer venv lacks SimpleITK: {err}");
            return None;
        }
        panic!("peer script failed: {err}");
    }
    Some(serde_json::from_slice(&out.stdout).expect("json"))
}

fn assert_matches_peer(v: &Volume, j: &serde_json::Value) {
    let g = v.geometry();
    let rows = g.direction.rows();
    for i in 0..3 {
        let o = j["origin"][i].as_f64().expect("num");
        let s = j["spacing"][i].as_f64().expect("num");
        assert!((o - g.origin.to_array()[i]).abs() < 1e-9, "origin {j}");
        assert!((s - g.spacing.xyz()[i]).abs() < 1e-9, "spacing {j}");
        for c in 0..3 {
            let d = j["direction"][3 * i + c].as_f64().expect("num");
            assert!((d - rows[i][c]).abs() < 1e-9, "direction {j} vs {rows:?}");
        }
        assert_eq!(j["size_xyz"][i].as_u64(), Some(v.size_xyz()[i] as u64));
    }
    assert_eq!(
        j["value_z4_y2_x6"].as_i64(),
        v.get(VoxelIndex::new(4, 2, 6)).map(i64::from)
    );
}

/// SimpleITK writes compressed, oblique .mha/.mhd files that Speck must read identically, and
/// reads Speck's files with the same geometry. Skips without the peer venv.
#[test]
fn simpleitk_agrees_both_ways() {
    let Some((python, script)) = peer() else {
        eprintln!("skipped: no .venv-peer");
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let v = test_volume(oblique());
    let rows = v.geometry().direction.rows();
    let dir9: Vec<String> = rows.iter().flatten().map(|x| format!("{x:.17}")).collect();
    for name in ["sitk.mha", "sitk.mhd"] {
        let path = dir.path().join(name);
        let p = path.to_string_lossy();
        let Some(j) = run_peer(&python, &script, &["write", &p, &dir9.join(",")]) else {
            return;
        };
        let ours = read_metaimage(&path, &LoadOptions::default()).expect("read sitk file");
        assert_matches_peer(&ours, &j);
        assert_eq!(ours.voxels(), v.voxels());
        // ITK's AnatomicalOrientation agrees with the one Speck derives from the matrix.
        assert!(
            ours.provenance().warnings.is_empty(),
            "{:?}",
            ours.provenance().warnings
        );
    }
    for name in ["speck.mha", "speck.mhd"] {
        let path = dir.path().join(name);
        write_metaimage(&v, &path).expect("write");
        let Some(j) = run_peer(&python, &script, &["read", &path.to_string_lossy()]) else {
            return;
        };
        assert_matches_peer(&v, &j);
    }
}
