//! `open`/`open_with` pick the reader from the path: folder -> DICOM, `.nii[.gz]` -> NIfTI,
//! `.mhd`/`.mha` -> MetaImage, other files with `DICM` at byte 128 -> DICOM (also at byte 0, and
//! bare data sets: see `dicom_framing.rs`), else Unsupported.

use ndarray::Array3;
use speck_volume::dicom::{write_series, DicomWriteOptions};
use speck_volume::metaimage::write_metaimage;
use speck_volume::nifti::write_nifti;
use speck_volume::{
    detect_format, open, Direction, Format, Geometry, Provenance, Spacing, Volume, VolumeError,
    WorldPoint,
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
