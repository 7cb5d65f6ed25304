//! `open`/`open_with` pick the reader from the path: folder -> DICOM, `.nii[.gz]` -> NIfTI,
//! `.mhd`/`.mha` -> MetaImage, other files with `DICM` at byte 128 -> DICOM, else Unsupported.

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
