//! `write_series`: the files it writes are valid CT images whose tags carry the volume's geometry
//! and voxels (checked by reading them back with `dicom-object`, independently of Speck's reader).

use dicom_dictionary_std::tags;
use dicom_object::open_file;
use ndarray::Array3;
use speck_volume::dicom::{write_series, DicomWriteOptions};
use speck_volume::{Direction, Geometry, Provenance, Spacing, Volume, WorldPoint};

fn floats(obj: &dicom_object::DefaultDicomObject, tag: dicom_core::Tag) -> Vec<f64> {
    obj.element(tag)
        .expect("tag present")
        .to_multi_float64()
        .expect("numbers")
}

fn test_volume(min_hu: i16) -> Volume {
    let (nz, ny, nx) = (4, 5, 6);
    let voxels = Array3::from_shape_fn((nz, ny, nx), |(z, y, x)| {
        if (z, y, x) == (0, 0, 0) {
            min_hu
        } else {
            (z * 100 + y * 10 + x) as i16 - 500
        }
    });
    let direction = Direction::from_axes([0.0, 1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, 1.0])
        .expect("direction");
    let geometry = Geometry::new(
        Spacing::new(0.7, 0.8, 2.5).expect("spacing"),
        WorldPoint::new(-10.0, 20.5, -300.25),
        direction,
    );
    Volume::new(voxels, geometry, Provenance::default()).expect("volume")
}

#[test]
fn written_files_carry_geometry_and_hu() {
    for min_hu in [-1024i16, -3024] {
        let dir = tempfile::tempdir().expect("tempdir");
        let volume = test_volume(min_hu);
        let options = DicomWriteOptions {
            series_uid: Some("1.2.3.4".into()),
            study_uid: None,
            patient_id: Some("P1".into()),
        };
        write_series(&volume, dir.path(), &options).expect("write");
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .expect("read_dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                "IM000001.dcm",
                "IM000002.dcm",
                "IM000003.dcm",
                "IM000004.dcm"
            ]
        );
        let mut study = None;
        for (k, name) in names.iter().enumerate() {
            let obj = open_file(dir.path().join(name)).expect("valid DICOM");
            assert_eq!(
                obj.meta().transfer_syntax().trim_end_matches('\0'),
                "1.2.840.10008.1.2.1"
            );
            let s = |t| {
                obj.element(t)
                    .expect("tag")
                    .to_str()
                    .expect("str")
                    .to_string()
            };
            assert_eq!(s(tags::SOP_CLASS_UID), "1.2.840.10008.5.1.4.1.1.2");
            assert_eq!(s(tags::SERIES_INSTANCE_UID), "1.2.3.4");
            assert_eq!(s(tags::PATIENT_ID), "P1");
            assert!(s(tags::STUDY_INSTANCE_UID).starts_with("2.25."));
            let this_study = s(tags::STUDY_INSTANCE_UID);
            assert_eq!(study.get_or_insert(this_study.clone()), &this_study);
            assert_eq!(s(tags::INSTANCE_NUMBER), (k + 1).to_string());
            let ipp = floats(&obj, tags::IMAGE_POSITION_PATIENT);
            let expect = volume.voxel_to_world(speck_volume::VoxelIndex::new(k, 0, 0));
            for (a, b) in ipp.iter().zip(expect.to_array()) {
                assert!((a - b).abs() < 1e-9, "{ipp:?} vs {expect:?}");
            }
            assert_eq!(
                floats(&obj, tags::IMAGE_ORIENTATION_PATIENT),
                [0.0, 1.0, 0.0, -1.0, 0.0, 0.0]
            );
            // Row spacing (y) first, then column spacing (x).
            assert_eq!(floats(&obj, tags::PIXEL_SPACING), [0.8, 0.7]);
            assert_eq!(floats(&obj, tags::SLICE_THICKNESS), [2.5]);
            let slope = floats(&obj, tags::RESCALE_SLOPE)[0];
            let intercept = floats(&obj, tags::RESCALE_INTERCEPT)[0];
            let signed = obj
                .element(tags::PIXEL_REPRESENTATION)
                .expect("tag")
                .to_int::<u16>()
                .expect("int")
                == 1;
            assert_eq!(signed, min_hu < -1024);
            let bytes = obj
                .element(tags::PIXEL_DATA)
                .expect("pixels")
                .to_bytes()
                .expect("bytes");
            assert_eq!(bytes.len(), 2 * 5 * 6);
            for y in 0..5 {
                for x in 0..6 {
                    let i = 2 * (y * 6 + x);
                    let raw = [bytes[i], bytes[i + 1]];
                    let stored = if signed {
                        f64::from(i16::from_le_bytes(raw))
                    } else {
                        f64::from(u16::from_le_bytes(raw))
                    };
                    let hu = stored * slope + intercept;
                    let want = volume
                        .get(speck_volume::VoxelIndex::new(k, y, x))
                        .expect("inside");
                    assert_eq!(hu, f64::from(want), "slice {k} row {y} col {x}");
                }
            }
        }
    }
}
