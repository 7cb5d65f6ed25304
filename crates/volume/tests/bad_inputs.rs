//! Hostile and broken inputs to the loaders: every row of the table in `docs/reliability.md` that
//! concerns a scan file is a test here, and each one pins the **exact** error text a user sees
//! (`{path}` / `{dir}` stand for the temporary file or folder of the test).
//!
//! The inputs are made at test time from small volumes written by Speck's own writers, then
//! damaged in one precise way; the committed files in `tests/bad/` (see its README) are read by
//! [`committed_bad_files_fail_cleanly`].

use std::io::Write;
use std::path::{Path, PathBuf};

use dicom_core::value::{PixelFragmentSequence, PrimitiveValue};
use dicom_core::{DataElement, VR};
use dicom_dictionary_std::{tags, uids};
use ndarray::Array3;
use speck_volume::dicom::{read_series, write_series, DicomWriteOptions};
use speck_volume::metaimage::{read_metaimage, write_metaimage_with, MetaImageWriteOptions};
use speck_volume::nifti::{read_nifti, write_nifti, write_nifti_f32};
use speck_volume::{
    open, Direction, Geometry, LoadOptions, Provenance, Spacing, Volume, VolumeError, WorldPoint,
};

/// A 4 (z) x 5 (y) x 6 (x) volume, 0.7 x 0.8 x 2.5 mm, identity direction.
fn small() -> Volume {
    small_n(4)
}

/// As [`small`] with `nz` slices.
fn small_n(nz: usize) -> Volume {
    let g = Geometry::new(
        Spacing::new(0.7, 0.8, 2.5).expect("spacing"),
        WorldPoint::new(-180.0, -170.0, -300.0),
        Direction::IDENTITY,
    );
    let v = Array3::from_shape_fn((nz, 5, 6), |(z, y, x)| (z * 100 + y * 10 + x) as i16 - 1000);
    Volume::new(v, g, Provenance::default()).expect("volume")
}

/// `result` must be an error whose text is exactly `expected` with `{path}` replaced by `path`
/// and `{dir}` by `dir`.
#[track_caller]
fn assert_error<T: std::fmt::Debug>(
    result: Result<T, VolumeError>,
    path: &Path,
    dir: &Path,
    expected: &str,
) -> VolumeError {
    let err = result.expect_err(expected);
    let want = expected
        .replace("{path}", &path.display().to_string())
        .replace("{dir}", &dir.display().to_string());
    assert_eq!(err.to_string(), want, "{err:?}");
    err
}

fn put_i16(b: &mut [u8], off: usize, v: i16) {
    b[off..off + 2].copy_from_slice(&v.to_le_bytes());
}

fn put_f32(b: &mut [u8], off: usize, v: f32) {
    b[off..off + 4].copy_from_slice(&v.to_le_bytes());
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(bytes).expect("gz");
    gz.finish().expect("gz")
}

fn zlib(bytes: &[u8]) -> Vec<u8> {
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    z.write_all(bytes).expect("zlib");
    z.finish().expect("zlib")
}

/// The bytes of `small()` written as an int16 `.nii` (352-byte header, 240 bytes of voxels).
fn nifti_bytes(dir: &Path) -> Vec<u8> {
    let p = dir.join("good.nii");
    write_nifti(&small(), &p).expect("write");
    std::fs::read(&p).expect("read")
}

/// `small()` as a `.mha` (header text, then 240 bytes of voxels) and the header length.
fn mha_bytes(dir: &Path) -> (Vec<u8>, usize) {
    let p = dir.join("good.mha");
    write_metaimage_with(&small(), &p, MetaImageWriteOptions::default()).expect("write");
    let b = std::fs::read(&p).expect("read");
    let n = b.len() - 240;
    (b, n)
}

fn replace_header_line(mha: &[u8], header_len: usize, key: &str, line: &str) -> Vec<u8> {
    let text = std::str::from_utf8(&mha[..header_len]).expect("text");
    let mut out: String = text
        .lines()
        .map(|l| {
            if l.starts_with(key) {
                line.to_string()
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    out.push('\n');
    let mut b = out.into_bytes();
    b.extend_from_slice(&mha[header_len..]);
    b
}

/// `small()` as a DICOM series in `dir/series` (4 files, `IM000001.dcm` ... `IM000004.dcm`).
fn dicom_series(dir: &Path) -> PathBuf {
    let out = dir.join("series");
    let options = DicomWriteOptions {
        series_uid: Some("1.2.3.4".into()),
        ..DicomWriteOptions::default()
    };
    write_series(&small(), &out, &options).expect("write series");
    out
}

/// Open slice `k` (1-based) of a series, change it with `f`, and write it back.
fn edit_slice(series: &Path, k: usize, f: impl FnOnce(&mut dicom_object::DefaultDicomObject)) {
    let p = series.join(format!("IM{k:06}.dcm"));
    let mut obj = dicom_object::open_file(&p).expect("open");
    f(&mut obj);
    obj.write_to_file(&p).expect("rewrite");
}

fn ds(values: &[f64]) -> PrimitiveValue {
    PrimitiveValue::Strs(values.iter().map(|v| format!("{v}")).collect())
}

// ---------------------------------------------------------------------------------------------
// Truncated files

#[test]
fn truncated_nifti_is_refused_before_allocating() {
    let dir = tempfile::tempdir().expect("tmp");
    let good = nifti_bytes(dir.path());
    let p = dir.path().join("cut.nii");
    std::fs::write(&p, &good[..362]).expect("write");
    assert_error(
        read_nifti(&p, &LoadOptions::default()),
        &p,
        dir.path(),
        "{path}: header declares 240 bytes of voxels at offset 352 but the file has only 362 \
         bytes (truncated or lying dimensions)",
    );
    std::fs::write(&p, &good[..100]).expect("write");
    assert_error(
        read_nifti(&p, &LoadOptions::default()),
        &p,
        dir.path(),
        "{path}: only 100 bytes, shorter than a 348-byte NIfTI-1 header",
    );
}

#[test]
fn truncated_gzip_nifti_is_an_error() {
    let dir = tempfile::tempdir().expect("tmp");
    let gz = gzip(&nifti_bytes(dir.path()));
    let p = dir.path().join("cut.nii.gz");
    std::fs::write(&p, &gz[..gz.len() - 20]).expect("write");
    assert_error(
        read_nifti(&p, &LoadOptions::default()),
        &p,
        dir.path(),
        "{path}: gzip data ends early: incomplete deflate stream",
    );
}

#[test]
fn truncated_metaimage_is_refused_before_allocating() {
    let dir = tempfile::tempdir().expect("tmp");
    let (mha, n) = mha_bytes(dir.path());
    let p = dir.path().join("cut.mha");
    std::fs::write(&p, &mha[..n + 100]).expect("write");
    assert_error(
        read_metaimage(&p, &LoadOptions::default()),
        &p,
        dir.path(),
        "{path}: DimSize declares 240 bytes of voxels but only 100 follow (truncated or lying \
         dimensions)",
    );
}

#[test]
fn truncated_dicom_slice_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().expect("tmp");
    let series = dicom_series(dir.path());
    let p = series.join("IM000002.dcm");
    let bytes = std::fs::read(&p).expect("read");
    std::fs::write(&p, &bytes[..bytes.len() - 30]).expect("write");
    assert_error(
        read_series(&series, &LoadOptions::default()),
        &p,
        dir.path(),
        "{path}: corrupt DICOM: element (7FE0,0010) claims 60 bytes but only 30 remain",
    );
}

// ---------------------------------------------------------------------------------------------
// Headers that lie about dimensions

#[test]
fn nifti_dimensions_larger_than_the_data_are_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut b = nifti_bytes(dir.path());
    put_i16(&mut b, 42, 512);
    put_i16(&mut b, 44, 512);
    put_i16(&mut b, 46, 300);
    let p = dir.path().join("lying.nii");
    std::fs::write(&p, &b).expect("write");
    assert_error(
        read_nifti(&p, &LoadOptions::default()),
        &p,
        dir.path(),
        "{path}: header declares 157286400 bytes of voxels at offset 352 but the file has only \
         592 bytes (truncated or lying dimensions)",
    );
}

#[test]
fn metaimage_dimensions_larger_than_the_data_are_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    let (mha, n) = mha_bytes(dir.path());
    let b = replace_header_line(&mha, n, "DimSize", "DimSize = 512 512 300");
    let p = dir.path().join("lying.mha");
    std::fs::write(&p, &b).expect("write");
    assert_error(
        read_metaimage(&p, &LoadOptions::default()),
        &p,
        dir.path(),
        "{path}: DimSize declares 157286400 bytes of voxels but only 240 follow (truncated or \
         lying dimensions)",
    );
}

#[test]
fn dicom_rows_and_columns_larger_than_the_pixel_data_are_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    let series = dicom_series(dir.path());
    for k in 1..=4 {
        edit_slice(&series, k, |o| {
            o.put(DataElement::new(
                tags::ROWS,
                VR::US,
                PrimitiveValue::from(512u16),
            ));
            o.put(DataElement::new(
                tags::COLUMNS,
                VR::US,
                PrimitiveValue::from(512u16),
            ));
        });
    }
    let p = series.join("IM000001.dcm");
    assert_error(
        read_series(&series, &LoadOptions::default()),
        &p,
        dir.path(),
        "{path}: PixelData holds 60 bytes, frame 0 needs bytes 0..524288",
    );
}

// ---------------------------------------------------------------------------------------------
// 2^31-voxel claims: refused by the limits before anything is allocated

#[test]
fn two_to_the_31_voxels_are_refused_by_the_limits() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut b = nifti_bytes(dir.path());
    put_i16(&mut b, 42, 2048);
    put_i16(&mut b, 44, 1024);
    put_i16(&mut b, 46, 1024);
    let p = dir.path().join("huge.nii");
    std::fs::write(&p, &b).expect("write");
    let e = assert_error(
        read_nifti(&p, &LoadOptions::default()),
        &p,
        dir.path(),
        "{path}: 2048x1024x1024 voxels (limit: 1073741824 voxels)",
    );
    assert!(matches!(e, VolumeError::TooLarge { .. }));

    let (mha, n) = mha_bytes(dir.path());
    let b = replace_header_line(&mha, n, "DimSize", "DimSize = 2048 1024 1024");
    let p = dir.path().join("huge.mha");
    std::fs::write(&p, &b).expect("write");
    assert_error(
        read_metaimage(&p, &LoadOptions::default()),
        &p,
        dir.path(),
        "{path}: 2048x1024x1024 voxels (limit: 1073741824 voxels)",
    );
    // One axis of 2^31 is caught by the per-axis limit.
    let b = replace_header_line(&mha, n, "DimSize", "DimSize = 2147483648 1 1");
    std::fs::write(&p, &b).expect("write");
    assert_error(
        read_metaimage(&p, &LoadOptions::default()),
        &p,
        dir.path(),
        "{path}: size along x is 2147483648 (limit: 16384 per axis)",
    );

    // DICOM: 8 slices of 16384 x 16384 (the pixel data is not even there).
    let series = dir.path().join("eight");
    write_series(&small_n(8), &series, &DicomWriteOptions::default()).expect("write");
    for k in 1..=8 {
        edit_slice(&series, k, |o| {
            for t in [tags::ROWS, tags::COLUMNS] {
                o.put(DataElement::new(t, VR::US, PrimitiveValue::from(16384u16)));
            }
        });
    }
    let e = assert_error(
        read_series(&series, &LoadOptions::default()),
        &series,
        dir.path(),
        "{path}: 8 x 16384 x 16384 = 2147483648 voxels (limit: 1073741824 voxels)",
    );
    assert!(matches!(e, VolumeError::TooLarge { .. }));
}

// ---------------------------------------------------------------------------------------------
// Gzip / zlib bombs

#[test]
fn gzip_bomb_nifti_is_refused_as_soon_as_it_expands_past_the_header() {
    let dir = tempfile::tempdir().expect("tmp");
    // A valid 4x5x6 file followed by 64 MiB of zeros inside the gzip stream (~65 KB on disk).
    let mut body = nifti_bytes(dir.path());
    body.resize(body.len() + (64 << 20), 0);
    let p = dir.path().join("bomb.nii.gz");
    std::fs::write(&p, gzip(&body)).expect("write");
    assert_error(
        read_nifti(&p, &LoadOptions::default()),
        &p,
        dir.path(),
        "{path}: gzip data expands past the 592 bytes the header declares; refused",
    );
}

#[test]
fn gzip_claiming_more_than_deflate_can_expand_is_refused_before_decompressing() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut b = nifti_bytes(dir.path());
    put_i16(&mut b, 42, 1024);
    put_i16(&mut b, 44, 1024);
    put_i16(&mut b, 46, 512);
    let gz = gzip(&b);
    let p = dir.path().join("claim.nii.gz");
    std::fs::write(&p, &gz).expect("write");
    let declared = 352u64 + 1024 * 1024 * 512 * 2;
    let max = gz.len() as u64 * 1032;
    assert_error(
        read_nifti(&p, &LoadOptions::default()),
        &p,
        dir.path(),
        &format!(
            "{{path}}: header declares {declared} bytes (offset 352 + {} of voxels) but a {}-byte \
             gzip cannot expand to more than {max}",
            declared - 352,
            gz.len()
        ),
    );
}

#[test]
fn zlib_bomb_metaimage_is_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    let (mha, n) = mha_bytes(dir.path());
    let mut raw = mha[n..].to_vec();
    raw.resize(raw.len() + (64 << 20), 0);
    let z = zlib(&raw);
    let header = replace_header_line(&mha[..n], n, "CompressedData", "CompressedData = True");
    let mut b = header;
    b.extend_from_slice(&z);
    let p = dir.path().join("bomb.mha");
    std::fs::write(&p, &b).expect("write");
    assert_error(
        read_metaimage(&p, &LoadOptions::default()),
        &p,
        dir.path(),
        "{path}: compressed data expands past the 240 bytes DimSize declares; refused",
    );
}

// ---------------------------------------------------------------------------------------------
// Transfer syntaxes

#[test]
fn twelve_bit_jpeg_transfer_syntax_is_unsupported_and_named() {
    let dir = tempfile::tempdir().expect("tmp");
    let series = dicom_series(dir.path());
    for k in 1..=4 {
        edit_slice(&series, k, |o| {
            o.put(DataElement::new(
                tags::BITS_STORED,
                VR::US,
                PrimitiveValue::from(12u16),
            ));
            let fragments =
                PixelFragmentSequence::new(Vec::<u32>::new(), vec![vec![0xFFu8, 0xD8, 0xFF, 0xD9]]);
            o.put(DataElement::new(tags::PIXEL_DATA, VR::OB, fragments));
            o.update_meta(|m| m.transfer_syntax = uids::JPEG_EXTENDED12_BIT.to_string());
        });
    }
    let e = assert_error(
        read_series(&series, &LoadOptions::default()),
        &series.join("IM000001.dcm"),
        dir.path(),
        "{path}: unsupported: transfer syntax JPEG Extended (Process 2 & 4) \
         (1.2.840.10008.1.2.4.51): 12-bit JPEG (extended process 2 & 4) is not decoded by \
         dicom-pixeldata; convert the series (e.g. `gdcmconv --raw`) first",
    );
    assert!(matches!(e, VolumeError::Unsupported { .. }));
}

#[test]
fn unknown_transfer_syntax_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().expect("tmp");
    let series = dicom_series(dir.path());
    // Same length as "1.2.840.10008.1.2.1", so only the UID changes.
    let p = series.join("IM000003.dcm");
    let mut b = std::fs::read(&p).expect("read");
    let at = b
        .windows(19)
        .position(|w| w == b"1.2.840.10008.1.2.1")
        .expect("ts uid");
    b[at..at + 19].copy_from_slice(b"1.2.840.10008.9.9.9");
    std::fs::write(&p, &b).expect("write");
    assert_error(
        read_series(&series, &LoadOptions::default()),
        &p,
        dir.path(),
        "{path}: not a readable DICOM file: Unrecognized transfer syntax `1.2.840.10008.9.9.9`",
    );
}

#[test]
fn encapsulated_transfer_syntax_over_native_pixels_is_an_error() {
    // The file says RLE Lossless but its pixel data is plain little-endian values.
    let dir = tempfile::tempdir().expect("tmp");
    let series = dicom_series(dir.path());
    let p = series.join("IM000001.dcm");
    let mut b = std::fs::read(&p).expect("read");
    let at = b
        .windows(20)
        .position(|w| w == b"1.2.840.10008.1.2.1\0")
        .expect("ts uid");
    b[at..at + 20].copy_from_slice(b"1.2.840.10008.1.2.5\0"); // RLE Lossless, same length
    std::fs::write(&p, &b).expect("write");
    assert_error(
        read_series(&series, &LoadOptions::default()),
        &p,
        dir.path(),
        "{path}: decoding frame 0 (RLE Lossless (1.2.840.10008.1.2.5)): Could not decode pixel data",
    );
}

// ---------------------------------------------------------------------------------------------
// Missing pixel data, inconsistent slices

#[test]
fn missing_pixel_data_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().expect("tmp");
    let series = dicom_series(dir.path());
    edit_slice(&series, 2, |o| {
        o.remove_element(tags::PIXEL_DATA);
    });
    let p = series.join("IM000002.dcm");
    let e = assert_error(
        read_series(&series, &LoadOptions::default()),
        &p,
        dir.path(),
        "{path}: no PixelData",
    );
    assert!(matches!(e, VolumeError::Malformed { .. }));
}

#[test]
fn a_slice_of_another_size_is_refused_naming_it() {
    let dir = tempfile::tempdir().expect("tmp");
    let series = dicom_series(dir.path());
    edit_slice(&series, 3, |o| {
        o.put(DataElement::new(
            tags::COLUMNS,
            VR::US,
            PrimitiveValue::from(5u16),
        ));
    });
    let e = assert_error(
        read_series(&series, &LoadOptions::default()),
        &series,
        dir.path(),
        "series 1.2.3.4: inconsistent slices: {dir}/series/IM000003.dcm: image of 5 rows x 5 \
         columns, while the other 3 slices of the stack have 5 rows x 6 columns and orientation \
         [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]",
    );
    assert!(matches!(e, VolumeError::Series { .. }));
}

#[test]
fn a_slice_with_another_pixel_spacing_is_refused_naming_it() {
    let dir = tempfile::tempdir().expect("tmp");
    let series = dicom_series(dir.path());
    edit_slice(&series, 2, |o| {
        o.put(DataElement::new(
            tags::PIXEL_SPACING,
            VR::DS,
            ds(&[0.8, 0.9]),
        ));
    });
    assert_error(
        read_series(&series, &LoadOptions::default()),
        &series,
        dir.path(),
        "series 1.2.3.4: inconsistent PixelSpacing: {dir}/series/IM000002.dcm has [0.8, 0.9] mm, \
         other slices [0.8, 0.7] mm",
    );
}

#[test]
fn two_different_images_at_one_position_are_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    let series = dicom_series(dir.path());
    let src = series.join("IM000002.dcm");
    let copy = series.join("IM000009.dcm");
    std::fs::copy(&src, &copy).expect("copy");
    edit_slice(&series, 9, |o| {
        o.put(DataElement::new(
            tags::SOP_INSTANCE_UID,
            VR::UI,
            PrimitiveValue::from("1.2.3.4.99"),
        ));
    });
    assert_error(
        read_series(&series, &LoadOptions::default()),
        &series,
        dir.path(),
        "series 1.2.3.4: two different images at the same position -297.500 mm along the slice normal: \
         {dir}/series/IM000002.dcm and {dir}/series/IM000009.dcm",
    );
}

// ---------------------------------------------------------------------------------------------
// NaN / Inf voxels, non-invertible affines

#[test]
fn nan_and_infinite_float_voxels_are_refused_naming_the_voxel() {
    let dir = tempfile::tempdir().expect("tmp");
    let v = small();
    for (bad, name, shown) in [
        (f32::NAN, "nan.nii", "NaN"),
        (f32::INFINITY, "inf.nii", "inf"),
        (f32::NEG_INFINITY, "ninf.nii.gz", "-inf"),
    ] {
        let mut f = v.to_f32();
        f[[2, 3, 4]] = bad;
        let p = dir.path().join(name);
        write_nifti_f32(f.view(), v.geometry(), &p).expect("write");
        assert_error(
            read_nifti(&p, &LoadOptions::default()),
            &p,
            dir.path(),
            &format!(
                "{{path}}: voxel [z=2, y=3, x=4] is {shown}: Speck does not load non-finite \
                 intensities"
            ),
        );
    }
}

#[test]
fn singular_affines_are_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut b = nifti_bytes(dir.path());
    // sform rows (RAS): the j column equal to the i column.
    for (r, row) in [
        [0.7f32, 0.7, 0.0, 1.0],
        [0.0, 0.0, 0.0, 2.0],
        [0.0, 0.0, 2.5, 3.0],
    ]
    .iter()
    .enumerate()
    {
        for (c, v) in row.iter().enumerate() {
            put_f32(&mut b, 280 + 16 * r + 4 * c, *v);
        }
    }
    let p = dir.path().join("singular.nii");
    std::fs::write(&p, &b).expect("write");
    assert_error(
        read_nifti(&p, &LoadOptions::default()),
        &p,
        dir.path(),
        "{path}: affine [[0.699999988079071, 0.699999988079071, 0.0, 1.0], [0.0, 0.0, 0.0, 2.0], \
         [0.0, 0.0, 2.5, 3.0]]: invalid geometry: direction matrix is singular: \
         [[-0.699999988079071, -0.699999988079071, -0.0], [-0.0, -0.0, -0.0], [0.0, 0.0, 2.5]]",
    );

    let (mha, n) = mha_bytes(dir.path());
    let m = replace_header_line(
        &mha,
        n,
        "TransformMatrix",
        "TransformMatrix = 1 0 0 1 0 0 0 0 1",
    );
    let p = dir.path().join("singular.mha");
    std::fs::write(&p, &m).expect("write");
    assert_error(
        read_metaimage(&p, &LoadOptions::default()),
        &p,
        dir.path(),
        "{path}: TransformMatrix: invalid geometry: direction matrix is singular: \
         [[1.0, 1.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 1.0]]",
    );

    // DICOM: row and column cosines parallel.
    let series = dicom_series(dir.path());
    for k in 1..=4 {
        edit_slice(&series, k, |o| {
            o.put(DataElement::new(
                tags::IMAGE_ORIENTATION_PATIENT,
                VR::DS,
                ds(&[1.0, 0.0, 0.0, 1.0, 0.0, 0.0]),
            ));
        });
    }
    assert_error(
        read_series(&series, &LoadOptions::default()),
        &series,
        dir.path(),
        "series 1.2.3.4: ImageOrientationPatient row and column cosines are not perpendicular: \
         [1.0, 0.0, 0.0, 1.0, 0.0, 0.0]",
    );
}

// ---------------------------------------------------------------------------------------------
// Committed files

/// Every file in `tests/bad/` with the error it must give (see `tests/bad/README.md`).
const COMMITTED: &[(&str, &str)] = &[
    (
        "four_d.nii",
        "{path}: unsupported: 4-D image (dim[4] = 10); Speck reads 3-D volumes",
    ),
    (
        "lying_dims.nii",
        "{path}: header declares 157286400 bytes of voxels at offset 352 but the file has only \
         352 bytes (truncated or lying dimensions)",
    ),
    (
        "missing_data.mhd",
        "{dir}/missing_data.raw: No such file or directory (os error 2)",
    ),
    (
        "no_data_file.mhd",
        "{path}: no ElementDataFile line in the header",
    ),
    (
        "not_dicom.dcm",
        "{path}: unsupported: not a DICOM folder or file, .nii, .nii.gz, .mhd or .mha",
    ),
    (
        "truncated_header.nii",
        "{path}: only 200 bytes, shorter than a 348-byte NIfTI-1 header",
    ),
    (
        "two_to_31.nii.gz",
        "{path}: 2048x1024x1024 voxels (limit: 1073741824 voxels)",
    ),
];

#[test]
fn committed_bad_files_fail_cleanly() {
    let bad = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/bad");
    let mut names: Vec<String> = std::fs::read_dir(&bad)
        .expect("tests/bad")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n != "README.md" && n != "make_bad.py")
        .collect();
    names.sort();
    let mut listed: Vec<String> = COMMITTED.iter().map(|(n, _)| n.to_string()).collect();
    listed.sort();
    assert_eq!(
        names, listed,
        "every file in tests/bad/ has an expected error"
    );
    for (name, expected) in COMMITTED {
        let p = bad.join(name);
        assert_error(open(&p), &p, &bad, expected);
    }
}

// ---------------------------------------------------------------------------------------------
// Writers: an output folder that cannot be written, a full disk

/// True when the process can create files in a folder without write permission (root can).
fn permissions_are_bypassed(dir: &Path) -> bool {
    let probe = dir.join("probe");
    let ok = std::fs::write(&probe, b"x").is_ok();
    let _ = std::fs::remove_file(&probe);
    ok
}

#[test]
fn writing_where_no_file_can_be_created_is_an_io_error_naming_the_path() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tmp");
    let v = small();
    // A "folder" that is a regular file: refused by the OS for every user, root included.
    let file = dir.path().join("plain-file");
    std::fs::write(&file, b"x").expect("write");
    let p = file.join("out.nii");
    let e = assert_error(
        write_nifti(&v, &p),
        &p,
        dir.path(),
        "{path}: Not a directory (os error 20)",
    );
    assert!(matches!(e, VolumeError::Io { .. }));
    let p = file.join("out.mha");
    assert_error(
        write_metaimage_with(&v, &p, MetaImageWriteOptions::default()),
        &p,
        dir.path(),
        "{path}: Not a directory (os error 20)",
    );
    let p = file.join("series");
    assert_error(
        write_series(&v, &p, &DicomWriteOptions::default()),
        &p,
        dir.path(),
        "{path}: Not a directory (os error 20)",
    );
    // A read-only folder (meaningful only without root, which bypasses permissions).
    let ro = dir.path().join("read-only");
    std::fs::create_dir(&ro).expect("mkdir");
    std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o555)).expect("chmod");
    if permissions_are_bypassed(&ro) {
        eprintln!(
            "NOTE: running as root; the read-only folder case is covered by the ignored test"
        );
    } else {
        let p = ro.join("out.nii.gz");
        assert_error(
            write_nifti(&v, &p),
            &p,
            dir.path(),
            "{path}: Permission denied (os error 13)",
        );
    }
    std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

#[test]
fn a_full_disk_is_an_io_error_for_every_writer() {
    // `/dev/full` accepts the open and fails every write with ENOSPC, like a full disk; the
    // writers open the path through a symbolic link so that each keeps its own extension.
    let full = Path::new("/dev/full");
    if !full.exists() {
        eprintln!("SKIPPED: no /dev/full on this system");
        return;
    }
    let dir = tempfile::tempdir().expect("tmp");
    let v = small();
    for name in ["out.nii", "out.nii.gz", "out.mha"] {
        let p = dir.path().join(name);
        std::os::unix::fs::symlink(full, &p).expect("symlink");
        let r = if name.ends_with(".mha") {
            write_metaimage_with(&v, &p, MetaImageWriteOptions::default())
        } else {
            write_nifti(&v, &p)
        };
        let e = assert_error(
            r,
            &p,
            dir.path(),
            "{path}: No space left on device (os error 28)",
        );
        assert!(matches!(e, VolumeError::Io { .. }));
    }
    let series = dir.path().join("series");
    std::fs::create_dir(&series).expect("mkdir");
    std::os::unix::fs::symlink(full, series.join("IM000001.dcm")).expect("symlink");
    let e = assert_error(
        write_series(&v, &series, &DicomWriteOptions::default()),
        &series.join("IM000001.dcm"),
        dir.path(),
        "{path}: No space left on device (os error 28)",
    );
    // An I/O failure, not bad input: a batch runner must not blame the scan for it.
    assert!(matches!(e, VolumeError::Io { .. }), "{e:?}");
}

/// Root only: a real 64 KiB tmpfs that fills up, and a read-only mount. Run with
/// `sudo -E cargo test -p speck-volume --test bad_inputs -- --ignored tmpfs`.
#[test]
#[ignore = "needs root (mount); see docs/reliability.md"]
fn tmpfs_full_and_read_only_mounts() {
    let dir = tempfile::tempdir().expect("tmp");
    let mnt = dir.path().join("small");
    std::fs::create_dir(&mnt).expect("mkdir");
    let mount = |opts: &str| {
        std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", opts, "tmpfs"])
            .arg(&mnt)
            .status()
            .expect("mount")
            .success()
    };
    let umount = || {
        std::process::Command::new("umount")
            .arg(&mnt)
            .status()
            .expect("umount");
    };
    assert!(mount("size=64k"), "mount tmpfs (root needed)");
    // 16 x 64 x 64 int16 = 128 KiB of voxels: more than the disk holds.
    let g = Geometry::new(
        Spacing::isotropic(1.0).expect("spacing"),
        WorldPoint::new(0.0, 0.0, 0.0),
        Direction::IDENTITY,
    );
    let big = Volume::new(
        Array3::from_shape_fn((16, 64, 64), |(z, y, x)| (z * 7 + y * 3 + x) as i16),
        g,
        Provenance::default(),
    )
    .expect("volume");
    let p = mnt.join("big.nii");
    let r1 = write_nifti(&big, &p);
    let p2 = mnt.join("big.mha");
    let r2 = write_metaimage_with(&big, &p2, MetaImageWriteOptions::default());
    let r3 = write_series(&big, &mnt.join("series"), &DicomWriteOptions::default());
    umount();
    for (r, what) in [(r1, "nifti"), (r2, "metaimage"), (r3, "dicom")] {
        let e = r.expect_err(what);
        assert!(
            e.to_string().contains("No space left on device"),
            "{what}: {e}"
        );
    }
    assert!(mount("ro,size=64k"), "mount read-only tmpfs");
    let p = mnt.join("x.nii");
    let r = write_nifti(&big, &p);
    umount();
    let e = r.expect_err("read-only");
    assert_eq!(
        e.to_string(),
        format!("{}: Read-only file system (os error 30)", p.display())
    );
}

// ---------------------------------------------------------------------------------------------
// Data files that are not files

#[test]
fn metaimage_data_file_that_is_a_fifo_or_a_folder_is_refused_without_blocking() {
    let dir = tempfile::tempdir().expect("tmp");
    let fifo = dir.path().join("d.raw");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .is_ok_and(|s| s.success());
    if !made {
        eprintln!("SKIPPED: mkfifo unavailable");
        return;
    }
    let header = "ObjectType = Image\nNDims = 3\nDimSize = 2 2 2\nElementType = MET_SHORT\n\
                  ElementDataFile = d.raw\n";
    let p = dir.path().join("fifo.mhd");
    std::fs::write(&p, header).expect("write");
    // Opening a FIFO without a writer blocks: run the read on a thread and give it 10 s.
    let (tx, rx) = std::sync::mpsc::channel();
    let p2 = p.clone();
    std::thread::spawn(move || {
        let _ = tx.send(read_metaimage(&p2, &LoadOptions::default()).map(|_| ()));
    });
    let r = rx
        .recv_timeout(std::time::Duration::from_secs(10))
        .expect("read_metaimage blocked on a FIFO");
    assert_error(
        r,
        &fifo,
        dir.path(),
        "{path}: unsupported: ElementDataFile is not a regular file",
    );
    // A folder is refused the same way.
    std::fs::remove_file(&fifo).expect("rm");
    std::fs::create_dir(&fifo).expect("mkdir");
    assert_error(
        read_metaimage(&p, &LoadOptions::default()),
        &fifo,
        dir.path(),
        "{path}: unsupported: ElementDataFile is not a regular file",
    );
}
