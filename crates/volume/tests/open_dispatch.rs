//! `open`/`open_with` pick the reader from the path: folder -> DICOM, `.nii[.gz]` -> NIfTI,
//! `.mhd`/`.mha` -> MetaImage, other files with `DICM` at byte 128 -> DICOM (also at byte 0, and
//! bare data sets: see `dicom_framing.rs`), else Unsupported. `probe` reads what `open` would
//! load from headers alone; it believes a header that lies about its data (only loading can tell)
//! and never opens a MetaImage data file.

use ndarray::Array3;
use speck_volume::dicom::{scan_series, write_series, DicomWriteOptions};
use speck_volume::metaimage::write_metaimage;
use speck_volume::nifti::{write_nifti, write_nifti_f32};
use speck_volume::{
    detect_format, open, probe, Direction, Format, Geometry, Probe, Provenance, Spacing, Volume,
    VolumeError, WorldPoint,
};

fn volume() -> Volume {
    let g = Geometry::new(
        Spacing::new(0.75, 0.75, 2.0).expect("spacing"),
        WorldPoint::new(-190.0, -180.0, -320.0),
        Direction::IDENTITY,
    );
    let v = Array3::from_shape_fn((4, 8, 9), |(z, y, x)| (z * 50 + y * 7 + x) as i16 - 1000);
    Volume::new(v, g, Provenance::default()).expect("volume")
}

#[test]
fn every_format_opens_to_the_same_volume() {
    let dir = tempfile::tempdir().expect("tempdir");
    let v = volume();
    let files = ["1.2.3.nii", "1.2.3.nii.gz", "1.2.3.mhd", "1.2.3.mha"];
    for f in files {
        let p = dir.path().join(f);
        if f.contains(".nii") {
            write_nifti(&v, &p).expect("write nifti");
        } else {
            write_metaimage(&v, &p).expect("write metaimage");
        }
        let back = open(&p).expect("open");
        assert_eq!(back.voxels(), v.voxels(), "{f}");
        assert_eq!(
            back.provenance().series_uid.as_deref(),
            Some("1.2.3"),
            "{f}"
        );
        let o = back.geometry().origin;
        assert!(o.distance_mm(v.geometry().origin) < 1e-4, "{f}: {o:?}");
    }
    // A DICOM folder, and one file of it without an extension (sniffed by its preamble).
    let series = dir.path().join("dicom");
    write_series(&v, &series, &DicomWriteOptions::default()).expect("write dicom");
    assert_eq!(detect_format(&series).expect("detect"), Format::Dicom);
    let back = open(&series).expect("open dicom folder");
    assert_eq!(back.voxels(), v.voxels());
    let one = std::fs::read_dir(&series)
        .expect("list")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .next()
        .expect("a file");
    let renamed = dir.path().join("IM0001");
    std::fs::copy(&one, &renamed).expect("copy");
    assert_eq!(detect_format(&renamed).expect("detect"), Format::Dicom);
}

#[test]
fn unknown_and_missing_paths_are_typed_errors_naming_the_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path().join("notes.txt");
    std::fs::write(&p, "hello").expect("write");
    match open(&p) {
        Err(e @ VolumeError::Unsupported { .. }) => {
            assert!(e.to_string().contains("notes.txt"), "{e}")
        }
        other => panic!("expected Unsupported, got {other:?}"),
    }
    match open(dir.path().join("absent.nii")) {
        Err(e @ VolumeError::Io { .. }) => assert!(e.to_string().contains("absent.nii"), "{e}"),
        other => panic!("expected Io, got {other:?}"),
    }
}

/// Real data: SimpleITK converts the LIDC-IDRI-0001 series to `.nii.gz` and compressed `.mha`;
/// Speck must read the same voxels and geometry from the DICOM folder and from both files.
/// Skips when `../shared/data` or the peer venv is absent.
#[test]
fn lidc_series_reads_alike_as_dicom_nifti_and_metaimage() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let series = root.join("../shared/data/lidc-idri-0001");
    let python = root.join(".venv-peer/bin/python");
    if !series.is_dir() || !python.exists() {
        eprintln!("skipped: needs ../shared/data/lidc-idri-0001 and .venv-peer");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let (nii, mha) = (dir.path().join("lidc.nii.gz"), dir.path().join("lidc.mha"));
    let out = std::process::Command::new(&python)
        .arg(root.join("benches/peer/convert_sitk.py"))
        .args([&series, &nii, &mha])
        .output()
        .expect("run python");
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        if err.contains("ModuleNotFoundError") {
            eprintln!("skipped: peer venv lacks SimpleITK: {err}");
            return;
        }
        panic!("peer script failed: {err}");
    }
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let dicom = open(&series).expect("DICOM");
    for path in [&nii, &mha] {
        let v = open(path).expect("converted file");
        assert_eq!(v.shape_zyx(), dicom.shape_zyx(), "{}", path.display());
        assert!(
            v.voxels() == dicom.voxels(),
            "{}: voxels differ",
            path.display()
        );
        let (a, b) = (v.geometry(), dicom.geometry());
        for i in 0..3 {
            // NIfTI stores the affine as f32.
            assert!((a.origin.to_array()[i] - b.origin.to_array()[i]).abs() < 1e-3);
            assert!((a.spacing.xyz()[i] - b.spacing.xyz()[i]).abs() < 1e-5);
            assert!((a.origin.to_array()[i] - j["origin"][i].as_f64().expect("o")).abs() < 1e-3);
            for c in 0..3 {
                let (da, db) = (a.direction.rows()[i][c], b.direction.rows()[i][c]);
                assert!((da - db).abs() < 1e-5, "{}", path.display());
                let peer = j["direction"][3 * i + c].as_f64().expect("d");
                assert!((da - peer).abs() < 1e-5, "{}", path.display());
            }
        }
    }
}

fn close(a: [f64; 3], b: [f64; 3]) -> bool {
    a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-6)
}

#[test]
fn nifti_and_metaimage_headers_give_what_open_loads() {
    let dir = tempfile::tempdir().expect("tempdir");
    let v = volume();
    for (f, format) in [
        ("1.2.3.nii", Format::Nifti),
        ("1.2.3.nii.gz", Format::Nifti),
        ("1.2.3.mhd", Format::MetaImage),
        ("1.2.3.mha", Format::MetaImage),
    ] {
        let p = dir.path().join(f);
        if format == Format::Nifti {
            write_nifti(&v, &p).expect("write nifti");
        } else {
            write_metaimage(&v, &p).expect("write metaimage");
        }
        let got = probe(&p).expect("probe");
        assert_eq!(got.format, format, "{f}");
        assert_eq!(got.shape_zyx, [4, 8, 9], "{f}");
        assert_eq!(got.voxels(), 4 * 8 * 9, "{f}");
        assert_eq!(got.bytes_per_voxel, 2, "{f}");
        let spacing = got.spacing.expect("spacing").xyz();
        assert!(close(spacing, [0.75, 0.75, 2.0]), "{f}: {spacing:?}");
        let loaded = open(&p).expect("open");
        assert_eq!(got.series_uid, loaded.provenance().series_uid, "{f}");
    }
    let p = dir.path().join("float.nii");
    let values = v.voxels().mapv(f32::from);
    write_nifti_f32(values.view(), v.geometry(), &p).expect("write f32");
    assert_eq!(probe(&p).expect("probe f32").bytes_per_voxel, 4);
}

#[test]
fn a_dicom_folder_probes_as_the_series_open_loads() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_series(&volume(), dir.path(), &DicomWriteOptions::default()).expect("write series");
    let got = probe(dir.path()).expect("probe");
    let loaded = open(dir.path()).expect("open");
    assert_eq!(got.format, Format::Dicom);
    assert_eq!(got.series_uid, loaded.provenance().series_uid);
    assert_eq!(got.shape_zyx, [4, 8, 9]);
    assert_eq!((got.spacing, got.bytes_per_voxel), (None, 2));
    // One slice of the series stands for its series, as `open` reads it.
    let slice = dir.path().join("IM000002.dcm");
    assert_eq!(probe(&slice).expect("probe slice"), got);
    // Discovery's survey gives the same probe without reading the headers again.
    let series = scan_series(dir.path()).expect("scan");
    assert_eq!(Probe::from(&series[0]), got);
}

/// The 352-byte header of a NIfTI-1 file written for `volume()`, patched to claim 512 x 512 x 2000
/// voxels: its data is absent.
fn lying_nifti_header(dir: &std::path::Path) -> Vec<u8> {
    let p = dir.join("small.nii");
    write_nifti(&volume(), &p).expect("write");
    let mut h = std::fs::read(&p).expect("read");
    h.truncate(352);
    for (i, d) in [512i16, 512, 2000].iter().enumerate() {
        h[42 + 2 * i..44 + 2 * i].copy_from_slice(&d.to_le_bytes());
    }
    h
}

#[test]
fn a_header_that_lies_is_believed_by_probe_and_refused_by_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path().join("huge.nii");
    let mut h = lying_nifti_header(dir.path());
    std::fs::write(&p, &h).expect("write");
    let got = probe(&p).expect("probe");
    assert_eq!((got.shape_zyx, got.bytes_per_voxel), ([2000, 512, 512], 2));
    assert!(got.spacing.is_some());
    assert!(matches!(open(&p), Err(VolumeError::Malformed { .. })));
    // A vox_offset inside the header: the size is still read, the geometry is not.
    h[108..112].copy_from_slice(&0f32.to_le_bytes());
    std::fs::write(&p, &h).expect("write");
    let got = probe(&p).expect("probe");
    assert_eq!((got.shape_zyx, got.spacing), ([2000, 512, 512], None));

    // A MetaImage header declaring far more voxels than its data file holds.
    let mhd = dir.path().join("lying.mhd");
    write_metaimage(&volume(), &mhd).expect("write");
    let text = std::fs::read_to_string(&mhd).expect("read");
    std::fs::write(
        &mhd,
        text.replace("DimSize = 9 8 4", "DimSize = 512 512 300"),
    )
    .expect("write");
    assert_eq!(probe(&mhd).expect("probe").shape_zyx, [300, 512, 512]);
    let e = open(&mhd).expect_err("lying data size");
    assert!(e.to_string().contains("truncated or lying"), "{e}");
}

#[test]
fn a_missing_data_file_is_not_probed_but_open_names_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mhd = dir.path().join("1.2.mhd");
    write_metaimage(&volume(), &mhd).expect("write");
    let raw = dir.path().join("1.2.raw");
    std::fs::remove_file(&raw).expect("rm raw");
    let got = probe(&mhd).expect("probe reads the header only");
    assert_eq!(got.shape_zyx, [4, 8, 9]);
    match open(&mhd) {
        Err(VolumeError::Io { path, .. }) => assert_eq!(path, raw),
        other => panic!("expected an I/O error naming the data file: {other:?}"),
    }
}

#[test]
fn unreadable_headers_are_probe_errors_naming_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path().join("bad.nii");
    std::fs::write(&p, b"hello").expect("write");
    let e = probe(&p).expect_err("garbage");
    assert!(matches!(e, VolumeError::Malformed { .. }), "{e}");
    assert!(e.to_string().starts_with(&p.display().to_string()), "{e}");

    let mut neg = lying_nifti_header(dir.path());
    neg[44..46].copy_from_slice(&(-1i16).to_le_bytes());
    std::fs::write(&p, neg).expect("write");
    assert!(matches!(probe(&p), Err(VolumeError::Malformed { .. })));

    let mhd = dir.path().join("bad.mhd");
    std::fs::write(
        &mhd,
        "NDims = 3\nDimSize = 512 512\nElementDataFile = x.raw\n",
    )
    .expect("w");
    let e = probe(&mhd).expect_err("two sizes");
    assert!(e.to_string().contains("DimSize"), "{e}");
    let absent = dir.path().join("absent.mha");
    assert!(matches!(probe(&absent), Err(VolumeError::Io { .. })));
}
