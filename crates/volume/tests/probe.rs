//! `probe` reads what `open` would load from headers alone: format, series UID, shape, spacing
//! and stored bytes per voxel, for every format; it believes a header that lies about its data
//! (only loading can tell) and never opens a MetaImage data file.

use ndarray::Array3;
use speck_volume::dicom::{scan_series, write_series, DicomWriteOptions};
use speck_volume::metaimage::write_metaimage;
use speck_volume::nifti::{write_nifti, write_nifti_f32};
use speck_volume::{
    open, probe, Direction, Format, Geometry, Probe, Provenance, Spacing, Volume, VolumeError,
    WorldPoint,
};

fn volume() -> Volume {
    let g = Geometry::new(
        Spacing::new(0.75, 0.5, 2.0).expect("spacing"),
        WorldPoint::new(-190.0, -180.0, -320.0),
        Direction::IDENTITY,
    );
    let v = Array3::from_shape_fn((4, 8, 9), |(z, y, x)| (z * 50 + y * 7 + x) as i16 - 1000);
    Volume::new(v, g, Provenance::default()).expect("volume")
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
        assert!(close(spacing, [0.75, 0.5, 2.0]), "{f}: {spacing:?}");
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

/// A NIfTI-1 header claiming 512 x 512 x 2000 `int16` voxels, with no data after it and a
/// `vox_offset` of 0 (inside the header): the declared size is still what a budget needs.
fn lying_nifti_header() -> Vec<u8> {
    let mut h = vec![0u8; 352];
    h[0..4].copy_from_slice(&348i32.to_le_bytes());
    for (i, d) in [3i16, 512, 512, 2000, 1, 1, 1, 1].iter().enumerate() {
        h[40 + 2 * i..42 + 2 * i].copy_from_slice(&d.to_le_bytes());
    }
    h[70..72].copy_from_slice(&4i16.to_le_bytes());
    h[72..74].copy_from_slice(&16i16.to_le_bytes());
    h[344..348].copy_from_slice(b"n+1\0");
    h
}

#[test]
fn a_header_that_lies_is_believed_by_probe_and_refused_by_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path().join("huge.nii");
    std::fs::write(&p, lying_nifti_header()).expect("write");
    let got = probe(&p).expect("probe");
    assert_eq!(got.shape_zyx, [2000, 512, 512]);
    assert_eq!(got.bytes_per_voxel, 2);
    assert_eq!(
        got.spacing, None,
        "the header's vox_offset is invalid: no geometry"
    );
    assert!(matches!(open(&p), Err(VolumeError::Malformed { .. })));

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
fn unreadable_headers_are_errors_naming_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path().join("bad.nii");
    std::fs::write(&p, b"hello").expect("write");
    let e = probe(&p).expect_err("garbage");
    assert!(matches!(e, VolumeError::Malformed { .. }), "{e}");
    assert!(e.to_string().starts_with(&p.display().to_string()), "{e}");

    let mut neg = lying_nifti_header();
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

    let txt = dir.path().join("notes.txt");
    std::fs::write(&txt, "not an image").expect("write");
    assert!(matches!(probe(&txt), Err(VolumeError::Unsupported { .. })));
    assert!(matches!(
        probe(dir.path().join("absent.nii")),
        Err(VolumeError::Io { .. })
    ));
}
