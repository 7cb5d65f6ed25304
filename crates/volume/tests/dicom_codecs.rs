//! Compressed series written by `dicom-pixeldata`'s own encoders (JPEG-LS lossless for 16-bit
//! signed CT, JPEG baseline for 8-bit images) read back through `read_series`: the encapsulated
//! path must give the same HU as the native one (exactly when lossless), with the rescale applied
//! once. Real-world compressed files are compared with pydicom in `dicom_peer.rs`.

use std::path::Path;

use dicom_core::value::PrimitiveValue;
use dicom_core::{DataElement, VR};
use dicom_dictionary_std::{tags, uids};
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};
use dicom_pixeldata::Transcode;
use dicom_transfer_syntax_registry::{TransferSyntaxIndex, TransferSyntaxRegistry};
use speck_volume::dicom::{read_series, write_series, DicomWriteOptions};
use speck_volume::{Direction, Geometry, LoadOptions, Provenance, Spacing, Volume, WorldPoint};

/// Transcode every file of `from` into `to` with transfer syntax `ts`.
fn transcode_dir(from: &Path, to: &Path, ts: &str) {
    std::fs::create_dir_all(to).expect("mkdir");
    let target = TransferSyntaxRegistry
        .get(ts)
        .expect("known transfer syntax");
    for entry in std::fs::read_dir(from).expect("read_dir") {
        let path = entry.expect("entry").path();
        let mut obj = dicom_object::open_file(&path).expect("open");
        obj.transcode(target).expect("encode");
        obj.write_to_file(to.join(path.file_name().expect("name")))
            .expect("write");
    }
}

fn geometry() -> Geometry {
    Geometry::new(
        Spacing::new(0.7, 0.7, 2.0).expect("spacing"),
        WorldPoint::new(-20.0, -30.0, -40.0),
        Direction::IDENTITY,
    )
}

#[test]
fn jpeg_ls_lossless_signed_ct_reads_exactly() {
    let tmp = tempfile::tempdir().expect("tmp");
    // Below -1024 HU, so write_series stores signed values: the encoded samples are negative.
    let voxels = ndarray::Array3::from_shape_fn((4, 16, 16), |(z, y, x)| {
        ((z * 811 + y * 97 + x * 13) % 3500) as i16 - 2048
    });
    let volume = Volume::new(voxels, geometry(), Provenance::default()).expect("volume");
    let native = tmp.path().join("native");
    write_series(&volume, &native, &DicomWriteOptions::default()).expect("write");
    let jls = tmp.path().join("jls");
    transcode_dir(&native, &jls, uids::JPEGLS_LOSSLESS);
    let first = std::fs::read_dir(&jls)
        .expect("dir")
        .next()
        .expect("file")
        .expect("entry");
    let meta = dicom_object::open_file(first.path()).expect("open");
    assert_eq!(
        meta.meta().transfer_syntax().trim_end_matches('\0'),
        uids::JPEGLS_LOSSLESS
    );
    let back = read_series(&jls, &LoadOptions::default()).expect("read JPEG-LS");
    assert_eq!(back.voxels(), volume.voxels());
    assert_eq!(back.geometry(), volume.geometry());
}

#[test]
fn jpeg_baseline_8_bit_reads_close_to_the_original() {
    let tmp = tempfile::tempdir().expect("tmp");
    let native = tmp.path().join("native");
    std::fs::create_dir_all(&native).expect("mkdir");
    let (rows, cols) = (32usize, 32usize);
    let stored = |k: usize, r: usize, c: usize| -> u8 {
        // Smooth, so that lossy JPEG stays close.
        (40 + k * 30 + r * 2 + c * 3) as u8
    };
    for k in 0..3 {
        let mut obj = InMemDicomObject::new_empty();
        let mut put = |tag, vr, v: PrimitiveValue| {
            obj.put(DataElement::new(tag, vr, v));
        };
        put(tags::SOP_CLASS_UID, VR::UI, uids::CT_IMAGE_STORAGE.into());
        put(tags::SOP_INSTANCE_UID, VR::UI, format!("1.2.3.{k}").into());
        put(tags::SERIES_INSTANCE_UID, VR::UI, "1.2.3".into());
        put(tags::MODALITY, VR::CS, "CT".into());
        put(tags::INSTANCE_NUMBER, VR::IS, (k + 1).to_string().into());
        let ipp = PrimitiveValue::Strs(
            ["0", "0", &(2 * k).to_string()]
                .map(String::from)
                .into_iter()
                .collect(),
        );
        put(tags::IMAGE_POSITION_PATIENT, VR::DS, ipp);
        let iop = PrimitiveValue::Strs(
            ["1", "0", "0", "0", "1", "0"]
                .map(String::from)
                .into_iter()
                .collect(),
        );
        put(tags::IMAGE_ORIENTATION_PATIENT, VR::DS, iop);
        put(
            tags::PIXEL_SPACING,
            VR::DS,
            PrimitiveValue::Strs(["1", "1"].map(String::from).into_iter().collect()),
        );
        put(tags::SAMPLES_PER_PIXEL, VR::US, 1u16.into());
        put(
            tags::PHOTOMETRIC_INTERPRETATION,
            VR::CS,
            "MONOCHROME2".into(),
        );
        put(tags::ROWS, VR::US, (rows as u16).into());
        put(tags::COLUMNS, VR::US, (cols as u16).into());
        put(tags::BITS_ALLOCATED, VR::US, 8u16.into());
        put(tags::BITS_STORED, VR::US, 8u16.into());
        put(tags::HIGH_BIT, VR::US, 7u16.into());
        put(tags::PIXEL_REPRESENTATION, VR::US, 0u16.into());
        put(tags::RESCALE_SLOPE, VR::DS, "4".into());
        put(tags::RESCALE_INTERCEPT, VR::DS, "-1024".into());
        let px: Vec<u8> = (0..rows * cols)
            .map(|i| stored(k, i / cols, i % cols))
            .collect();
        put(tags::PIXEL_DATA, VR::OB, PrimitiveValue::U8(px.into()));
        obj.with_meta(FileMetaTableBuilder::new().transfer_syntax(uids::EXPLICIT_VR_LITTLE_ENDIAN))
            .expect("meta")
            .write_to_file(native.join(format!("s{k}.dcm")))
            .expect("write");
    }
    let jpeg = tmp.path().join("jpeg");
    transcode_dir(&native, &jpeg, uids::JPEG_BASELINE8_BIT);
    let meta = dicom_object::open_file(jpeg.join("s0.dcm")).expect("open");
    assert_eq!(
        meta.meta().transfer_syntax().trim_end_matches('\0'),
        uids::JPEG_BASELINE8_BIT
    );
    let exact = read_series(&native, &LoadOptions::default()).expect("native");
    let lossy = read_series(&jpeg, &LoadOptions::default()).expect("JPEG baseline");
    let mut worst = 0i32;
    for ((z, y, x), &v) in exact.voxels().indexed_iter() {
        assert_eq!(
            i32::from(v),
            4 * i32::from(stored(z, y, x)) - 1024,
            "native rescale"
        );
        worst = worst.max((i32::from(lossy.voxels()[[z, y, x]]) - i32::from(v)).abs());
    }
    // A few grey levels of JPEG error, times the slope of 4; a missing or doubled rescale would
    // be off by hundreds.
    assert!(worst <= 4 * 6, "JPEG baseline differs by up to {worst} HU");
    assert_eq!(lossy.geometry(), exact.geometry());
}
