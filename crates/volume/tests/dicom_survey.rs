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
