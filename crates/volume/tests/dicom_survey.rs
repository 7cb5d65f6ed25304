//! `speck_volume::dicom::survey_files`: every file of an archive sorted by what the DICOM reader
//! makes of it (image stacks with the facts a batch needs to choose among them, DICOM objects
//! without an image, unreadable DICOM files, files that are not DICOM), without failing as a
//! whole. The files are written here: a series by `write_series`, retagged with `dicom-object`,
//! and a dose report built with `dicom-object`.

use std::path::{Path, PathBuf};

use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::tags;
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};
use speck_volume::dicom::{survey_files, write_series, DicomWriteOptions, Orientation};
use speck_volume::{Direction, Geometry, Provenance, Spacing, Volume, WorldPoint};

fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("ls")
        .flatten()
        .map(|e| e.path())
        .collect();
    v.sort();
    v
}

#[test]
fn survey_sorts_images_objects_unreadable_and_other_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    // A 5-slice CT series at 2.5 mm, then given a reconstruction kernel.
    let voxels = ndarray::Array3::from_shape_fn((5, 6, 7), |(z, y, x)| (z * 10 + y + x) as i16);
    let geometry = Geometry::new(
        Spacing::new(0.8, 0.8, 2.5).expect("spacing"),
        WorldPoint::new(-10.0, -20.0, -30.0),
        Direction::IDENTITY,
    );
    let volume = Volume::new(voxels, geometry, Provenance::default()).expect("volume");
    let series = d.join("ct");
    let options = DicomWriteOptions {
        series_uid: Some("1.2.3.1".into()),
        study_uid: Some("1.2.3".into()),
        patient_id: Some("P7".into()),
    };
    write_series(&volume, &series, &options).expect("write");
    let slices = files_in(&series);
    for p in &slices {
        let mut obj = dicom_object::open_file(p).expect("open");
        obj.put(DataElement::new(
            tags::CONVOLUTION_KERNEL,
            VR::SH,
            PrimitiveValue::from("B70f"),
        ));
        obj.write_to_file(p).expect("write");
    }
    // A dose report: a DICOM object without an image.
    let mut sr = InMemDicomObject::new_empty();
    for (tag, vr, v) in [
        (tags::SOP_CLASS_UID, VR::UI, "1.2.840.10008.5.1.4.1.1.88.67"),
        (tags::SOP_INSTANCE_UID, VR::UI, "1.2.3.9.1"),
        (tags::MODALITY, VR::CS, "SR"),
        (tags::PATIENT_ID, VR::LO, "P7"),
        (tags::STUDY_INSTANCE_UID, VR::UI, "1.2.3"),
        (tags::SERIES_INSTANCE_UID, VR::UI, "1.2.3.9"),
    ] {
        sr.put(DataElement::new(tag, vr, PrimitiveValue::from(v)));
    }
    let sr_path = d.join("dose.dcm");
    sr.with_meta(
        FileMetaTableBuilder::new()
            .transfer_syntax("1.2.840.10008.1.2.1")
            .media_storage_sop_class_uid("1.2.840.10008.5.1.4.1.1.88.67")
            .media_storage_sop_instance_uid("1.2.3.9.1"),
    )
    .expect("meta")
    .write_to_file(&sr_path)
    .expect("write");
    // A DICOM file cut inside its header, and a text file.
    let cut = d.join("cut.dcm");
    let bytes = std::fs::read(&slices[0]).expect("read");
    std::fs::write(&cut, &bytes[..300]).expect("write");
    let license = d.join("LICENSE");
    std::fs::write(&license, "CC BY 4.0\n").expect("write");

    let mut files = slices.clone();
    files.extend([sr_path.clone(), cut.clone(), license.clone()]);
    let s = survey_files(&files);

    assert_eq!(s.series.len(), 1, "{:?}", s.series);
    let ct = &s.series[0];
    assert_eq!(ct.series_uid, "1.2.3.1");
    assert_eq!(ct.n_images, 5);
    assert_eq!(ct.files, slices);
    assert_eq!(ct.study_uid.as_deref(), Some("1.2.3"));
    assert_eq!(ct.patient_id.as_deref(), Some("P7"));
    assert_eq!(ct.convolution_kernel.as_deref(), Some("B70f"));
    assert_eq!(ct.image_type, ["ORIGINAL", "PRIMARY", "AXIAL"]);
    assert_eq!(ct.orientation, Orientation::Axial);
    assert_eq!(ct.slice_thickness_mm, Some(2.5));
    assert!((ct.slice_spacing_mm.expect("spacing") - 2.5).abs() < 1e-6);
    assert!(ct.frame_of_reference_uid.is_some());
    assert_eq!(
        ct.sop_class_uid.as_deref(),
        Some("1.2.840.10008.5.1.4.1.1.2")
    );

    assert_eq!(s.objects.len(), 1, "{:?}", s.objects);
    let o = &s.objects[0];
    assert_eq!(o.path, sr_path);
    assert_eq!(o.modality.as_deref(), Some("SR"));
    assert_eq!(o.series_uid.as_deref(), Some("1.2.3.9"));
    assert_eq!(
        o.sop_class_uid.as_deref(),
        Some("1.2.840.10008.5.1.4.1.1.88.67")
    );

    assert_eq!(s.unreadable.len(), 1, "{:?}", s.unreadable);
    assert_eq!(s.unreadable[0].path, cut);
    assert!(
        s.unreadable[0].reason.contains("cut.dcm"),
        "{:?}",
        s.unreadable
    );
    assert_eq!(s.not_dicom, [license]);
}

/// A flat export: the files of several series (two image sizes, one series in two orientations)
/// interleaved in one folder. The survey groups them per series, orientation and size; each series
/// read from its surveyed files equals the series read from the folder by its SeriesInstanceUID,
/// and an unreadable file among the files is an error naming it, as in the folder.
#[test]
fn a_flat_export_of_interleaved_series_groups_and_loads_from_its_files() {
    use speck_volume::dicom::read_series_files;
    use speck_volume::{open_with, LoadOptions};
    let dir = tempfile::tempdir().expect("tempdir");
    let flat = dir.path().join("export");
    std::fs::create_dir_all(&flat).expect("mkdir");
    let mut uids = Vec::new();
    for s in 0..6usize {
        let n = 4 + s;
        let (ny, nx) = if s % 2 == 0 { (8, 9) } else { (10, 6) };
        let voxels = ndarray::Array3::from_shape_fn((n, ny, nx), |(z, y, x)| {
            (s * 100 + z * 10 + y + x) as i16
        });
        let geometry = Geometry::new(
            Spacing::new(0.8, 0.8, 2.0).expect("spacing"),
            WorldPoint::new(-10.0, -20.0, -30.0 + s as f64),
            Direction::IDENTITY,
        );
        let volume = Volume::new(voxels, geometry, Provenance::default()).expect("volume");
        let uid = format!("1.2.826.9.{s}");
        let staging = dir.path().join(format!("s{s}"));
        let options = DicomWriteOptions {
            series_uid: Some(uid.clone()),
            ..DicomWriteOptions::default()
        };
        write_series(&volume, &staging, &options).expect("write");
        // Interleave: file k of series s is named so that series alternate in the listing.
        for (k, p) in files_in(&staging).iter().enumerate() {
            std::fs::rename(p, flat.join(format!("IM{k:03}_{s}.dcm"))).expect("mv");
        }
        uids.push((uid, n));
    }
    let s = survey_files(&files_in(&flat));
    assert_eq!(s.series.len(), 6, "{:?}", s.series);
    assert!(s.unreadable.is_empty() && s.not_dicom.is_empty());
    for (uid, n) in &uids {
        let info = s
            .series
            .iter()
            .find(|i| &i.series_uid == uid)
            .expect("series surveyed");
        assert_eq!(info.files.len(), *n, "{uid}");
        assert!(info.files.iter().all(|f| f
            .to_string_lossy()
            .ends_with(&format!("_{}.dcm", &uid[uid.len() - 1..]))));
        let opts = LoadOptions::new().series_uid(uid.clone());
        let from_files = read_series_files(&flat, &info.files, &opts).expect("from files");
        let from_folder = open_with(&flat, &opts).expect("from folder");
        assert_eq!(from_files.voxels(), from_folder.voxels(), "{uid}");
        assert_eq!(from_files.geometry(), from_folder.geometry(), "{uid}");
    }
    // An unreadable DICOM file among a series' files fails the load, naming it.
    let first = &s.series[0];
    let cut = flat.join("cut.dcm");
    let bytes = std::fs::read(&first.files[0]).expect("read");
    std::fs::write(&cut, &bytes[..300]).expect("write");
    let mut files = first.files.clone();
    files.push(cut.clone());
    let err = read_series_files(&flat, &files, &LoadOptions::default()).expect_err("cut file");
    assert!(err.to_string().contains("cut.dcm"), "{err}");
}
