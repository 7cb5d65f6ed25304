//! The report and the segmentation written for a small CT series (written by the test with
//! `speck_volume::dicom::write_series`): what they hold, read back with dicom-rs; that writing
//! is deterministic apart from UIDs and dates; and, where dicom3tools' `dciodvfy` is installed
//! (`apt-get install dicom3tools`; `.ci/run` installs it), that it finds no error in either.

use std::path::{Path, PathBuf};

use dicom_core::value::Value;
use dicom_dictionary_std::tags;
use dicom_object::{InMemDicomObject, OpenFileOptions};
use speck_dicom_out::{
    measurement_report, segmentation, Algorithm, DicomOutError, Finding, Side, SourceSeries, Stamp,
};
use speck_test_support::Dciodvfy;
use speck_volume::dicom::{write_series, DicomWriteOptions};
use speck_volume::{Direction, Geometry, Provenance, Spacing, Volume, WorldPoint};

#[path = "support/enhanced.rs"]
mod enhanced;

const SERIES: &str = "1.2.826.0.1.3680043.10.1234.1";

/// A 12 x 40 x 48 series at 0.8 x 0.7 mm, 2 mm slices, into `dir`; its files.
fn series(dir: &Path) -> Vec<PathBuf> {
    let geometry = Geometry::new(
        Spacing::new(0.7, 0.8, 2.0).expect("spacing"),
        WorldPoint::new(-20.0, -15.0, -100.0),
        Direction::IDENTITY,
    );
    let voxels = ndarray::Array3::from_shape_fn((12, 40, 48), |(z, y, x)| {
        ((z * 7 + y * 3 + x) % 200) as i16 - 900
    });
    let volume = Volume::new(voxels, geometry, Provenance::default()).expect("volume");
    let options = DicomWriteOptions {
        series_uid: Some(SERIES.into()),
        study_uid: Some("1.2.826.0.1.3680043.10.1234".into()),
        patient_id: Some("PHANTOM-7".into()),
    };
    write_series(&volume, dir, &options).expect("write series");
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("list")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    files
}

fn findings(stamp: &Stamp) -> Vec<Finding> {
    vec![
        Finding {
            rank: 1,
            tracking_uid: stamp.uid(),
            centre: WorldPoint::new(-5.123, 3.456, -91.3),
            probability: 0.987654,
            diameter_mm: Some(4.25),
            volume_mm3: Some(40.2),
            side: Some(Side::Right),
        },
        Finding {
            rank: 2,
            tracking_uid: stamp.uid(),
            centre: WorldPoint::new(8.0, 10.0, -82.0),
            probability: 0.5,
            diameter_mm: None,
            volume_mm3: None,
            side: None,
        },
    ]
}

fn algorithm() -> Algorithm {
    Algorithm::speck(vec![
        r#"{"coarse":{"bytes":1,"file":"coarse-test.onnx","fnv1a64":"0123456789abcdef"}}"#.into(),
    ])
}

fn items(obj: &InMemDicomObject, tag: dicom_core::Tag) -> Vec<InMemDicomObject> {
    match obj.element_opt(tag).ok().flatten().map(|e| e.value()) {
        Some(Value::Sequence(s)) => s.items().to_vec(),
        _ => Vec::new(),
    }
}

fn text(obj: &InMemDicomObject, tag: dicom_core::Tag) -> String {
    obj.element_opt(tag)
        .ok()
        .flatten()
        .and_then(|e| e.to_str().ok())
        .map(|s| s.trim_end_matches(['\0', ' ']).to_string())
        .unwrap_or_default()
}

fn concept(item: &InMemDicomObject) -> String {
    items(item, tags::CONCEPT_NAME_CODE_SEQUENCE)
        .first()
        .map(|c| text(c, tags::CODE_VALUE))
        .unwrap_or_default()
}

fn read(bytes: &[u8], dir: &Path, name: &str) -> (PathBuf, InMemDicomObject) {
    let p = dir.join(name);
    std::fs::write(&p, bytes).expect("write");
    let obj = OpenFileOptions::new().open_file(&p).expect("reads back");
    (p, obj.into_inner())
}

#[test]
fn the_report_holds_one_measurement_group_per_finding() {
    let dir = tempfile::tempdir().expect("tempdir");
    let files = series(&dir.path().join("ct"));
    let source = SourceSeries::read(&files, SERIES).expect("source");
    assert_eq!(source.instances().len(), 12);
    let stamp = Stamp::now();
    let found = findings(&stamp);
    let sr = measurement_report(&source, &found, &algorithm(), &stamp).expect("report");
    let (_, obj) = read(&sr.to_bytes().expect("bytes"), dir.path(), "sr.dcm");

    assert_eq!(text(&obj, tags::MODALITY), "SR");
    assert_eq!(text(&obj, tags::PATIENT_ID), "PHANTOM-7");
    assert_eq!(text(&obj, tags::STUDY_INSTANCE_UID), source.study_uid());
    assert_ne!(text(&obj, tags::SERIES_INSTANCE_UID), SERIES);
    // Evidence: every instance of the series.
    let evidence = items(&obj, tags::CURRENT_REQUESTED_PROCEDURE_EVIDENCE_SEQUENCE);
    let series = items(&evidence[0], tags::REFERENCED_SERIES_SEQUENCE);
    assert_eq!(text(&series[0], tags::SERIES_INSTANCE_UID), SERIES);
    assert_eq!(items(&series[0], tags::REFERENCED_SOP_SEQUENCE).len(), 12);

    let root = items(&obj, tags::CONTENT_SEQUENCE);
    let measurements = root
        .iter()
        .find(|i| concept(i) == "126010")
        .expect("Imaging Measurements");
    let groups = items(measurements, tags::CONTENT_SEQUENCE);
    assert_eq!(groups.len(), 2);
    for (g, f) in groups.iter().zip(&found) {
        let content = items(g, tags::CONTENT_SEQUENCE);
        let by = |code: &str| {
            content
                .iter()
                .filter(|i| concept(i) == code)
                .collect::<Vec<_>>()
        };
        assert_eq!(text(by("112039")[0], tags::TEXT_VALUE), f.label());
        assert_eq!(text(by("112040")[0], tags::UID), f.tracking_uid);
        let point = by("111030")[0];
        assert_eq!(text(point, tags::GRAPHIC_TYPE), "POINT");
        assert_eq!(
            text(point, tags::REFERENCED_FRAME_OF_REFERENCE_UID),
            source.frame_of_reference_uid().expect("frame")
        );
        let xyz = point
            .element(tags::GRAPHIC_DATA)
            .expect("graphic data")
            .to_multi_float64()
            .expect("floats");
        let c = [f.centre.x_mm, f.centre.y_mm, f.centre.z_mm];
        for a in 0..3 {
            assert!((xyz[a] - c[a]).abs() < 0.001, "{xyz:?} vs {c:?}");
        }
        let certainty = by("111012")[0];
        let mv = &items(certainty, tags::MEASURED_VALUE_SEQUENCE)[0];
        let pct = mv
            .element(tags::FLOATING_POINT_VALUE)
            .expect("fd")
            .to_float64()
            .expect("f64");
        assert!((pct / 100.0 - f.probability).abs() < 1e-12);
        // The measurement's source slice is the slice nearest to the centre.
        let slice = source.nearest_instance(f.centre).expect("slice");
        let src = &items(certainty, tags::CONTENT_SEQUENCE)[0];
        let r = &items(src, tags::REFERENCED_SOP_SEQUENCE)[0];
        assert_eq!(
            text(r, tags::REFERENCED_SOP_INSTANCE_UID),
            slice.sop_instance_uid
        );
        assert_eq!(by("81827009").len(), usize::from(f.diameter_mm.is_some()));
        assert_eq!(by("118565006").len(), usize::from(f.volume_mm3.is_some()));
    }
    // Slice nearest to z = -91.3 is z = -92 (index 4): the volume's slices are 2 mm apart from -100.
    let near = source.nearest_instance(found[0].centre).expect("slice");
    assert_eq!(near.position_mm.map(|p| p[2]), Some(-92.0));
}

#[test]
fn the_segmentation_draws_each_finding_where_it_is() {
    let dir = tempfile::tempdir().expect("tempdir");
    let files = series(&dir.path().join("ct"));
    let source = SourceSeries::read(&files, SERIES).expect("source");
    let stamp = Stamp::now();
    let found = findings(&stamp);
    let seg = segmentation(&source, &found, &algorithm(), &stamp).expect("segmentation");
    let (_, obj) = read(&seg.to_bytes().expect("bytes"), dir.path(), "seg.dcm");
    assert_eq!(text(&obj, tags::MODALITY), "SEG");
    let segments = items(&obj, tags::SEGMENT_SEQUENCE);
    assert_eq!(segments.len(), 2);
    assert_eq!(
        text(&segments[0], tags::TRACKING_UID),
        found[0].tracking_uid
    );
    let frames = items(&obj, tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE);
    let n: usize = text(&obj, tags::NUMBER_OF_FRAMES).parse().expect("frames");
    assert_eq!(frames.len(), n);
    let (rows, cols) = (40usize, 48usize);
    let pixels = obj
        .element(tags::PIXEL_DATA)
        .expect("pixels")
        .to_bytes()
        .expect("bytes");
    assert_eq!(
        pixels.len(),
        (n * rows * cols).div_ceil(8).next_multiple_of(2)
    );
    // Centroid of each segment in world mm, from the frames' positions and the bits.
    let mut sums = [[0f64; 4]; 2];
    for (k, fr) in frames.iter().enumerate() {
        let seg_no: usize = items(fr, tags::SEGMENT_IDENTIFICATION_SEQUENCE)[0]
            .element(tags::REFERENCED_SEGMENT_NUMBER)
            .expect("segment")
            .to_int::<usize>()
            .expect("int");
        let ipp = items(fr, tags::PLANE_POSITION_SEQUENCE)[0]
            .element(tags::IMAGE_POSITION_PATIENT)
            .expect("ipp")
            .to_multi_float64()
            .expect("floats");
        for j in 0..rows {
            for i in 0..cols {
                let bit = k * rows * cols + j * cols + i;
                if pixels[bit / 8] >> (bit % 8) & 1 == 1 {
                    let s = &mut sums[seg_no - 1];
                    s[0] += ipp[0] + i as f64 * 0.7;
                    s[1] += ipp[1] + j as f64 * 0.8;
                    s[2] += ipp[2];
                    s[3] += 1.0;
                }
            }
        }
    }
    for (s, f) in sums.iter().zip(&found) {
        assert!(s[3] > 0.0, "segment of {} is empty", f.label());
        let c = [s[0] / s[3], s[1] / s[3], s[2] / s[3]];
        let d = ((c[0] - f.centre.x_mm).powi(2)
            + (c[1] - f.centre.y_mm).powi(2)
            + (c[2] - f.centre.z_mm).powi(2))
        .sqrt();
        // Within one voxel's half diagonal of the centre.
        assert!(
            d < 1.2,
            "{} centroid {c:?} is {d:.2} mm from its centre",
            f.label()
        );
    }
    // Only frames a finding touches: a 4.25 mm ball on 2 mm slices touches at most 3 slices, a
    // 6 mm one at most 4.
    assert!(n <= 7, "{n} frames");
}

/// Every element's value as text, nested items indented, with fresh UIDs and this stamp's
/// date and time masked.
fn dump(obj: &InMemDicomObject, keep: &[String], stamp: (&str, &str), out: &mut Vec<String>) {
    for e in obj.iter() {
        match e.value() {
            Value::Sequence(s) => {
                out.push(format!("{} [", e.header().tag));
                for i in s.items() {
                    dump(i, keep, stamp, out);
                    out.push("-".into());
                }
                out.push("]".into());
            }
            _ => {
                let v = e.to_str().map(|s| s.to_string()).unwrap_or_default();
                let v = if v.starts_with("2.25.") && !keep.contains(&v) {
                    "<new uid>".to_string()
                } else if v == stamp.0 || v == stamp.1 {
                    "<date or time>".to_string()
                } else {
                    v
                };
                out.push(format!("{} {v}", e.header().tag));
            }
        }
    }
}

#[test]
fn writing_is_deterministic_apart_from_uids_and_dates() {
    let dir = tempfile::tempdir().expect("tempdir");
    let files = series(&dir.path().join("ct"));
    let source = SourceSeries::read(&files, SERIES).expect("source");
    let bytes = |stamp: &Stamp| {
        let f = findings(stamp);
        (
            measurement_report(&source, &f, &algorithm(), stamp)
                .expect("report")
                .to_bytes()
                .expect("bytes"),
            segmentation(&source, &f, &algorithm(), stamp)
                .expect("seg")
                .to_bytes()
                .expect("bytes"),
        )
    };
    // A fixed stamp: byte for byte.
    let a = bytes(&Stamp::fixed(1, "20250101", "101010"));
    let b = bytes(&Stamp::fixed(1, "20250101", "101010"));
    assert!(a == b, "same stamp, different bytes");
    // The files of a source read in another order: the same.
    let mut reversed = files.clone();
    reversed.reverse();
    let again = SourceSeries::read(&reversed, SERIES).expect("source");
    let stamp = Stamp::fixed(1, "20250101", "101010");
    let f = findings(&stamp);
    let c = measurement_report(&again, &f, &algorithm(), &stamp)
        .expect("report")
        .to_bytes()
        .expect("bytes");
    assert!(c == a.0, "file order changed the report");

    // Fresh UIDs and the clock: equal once UIDs and dates are masked.
    let mut keep: Vec<String> = source
        .instances()
        .iter()
        .map(|i| i.sop_instance_uid.clone())
        .collect();
    keep.extend(source.frame_of_reference_uid().map(String::from));
    let s1 = Stamp::now();
    let s2 = Stamp::fixed(99, "19991231", "235959");
    let (x, y) = (bytes(&s1), bytes(&s2));
    assert!(x.0 != y.0);
    for (i, (p, q)) in [(&x.0, &y.0), (&x.1, &y.1)].into_iter().enumerate() {
        let (_, po) = read(p, dir.path(), &format!("p{i}.dcm"));
        let (_, qo) = read(q, dir.path(), &format!("q{i}.dcm"));
        let (mut dp, mut dq) = (Vec::new(), Vec::new());
        dump(&po, &keep, (s1.date(), s1.time()), &mut dp);
        dump(&qo, &keep, (s2.date(), s2.time()), &mut dq);
        assert_eq!(dp, dq);
    }
}

#[test]
fn bad_inputs_are_errors_that_say_why() {
    let dir = tempfile::tempdir().expect("tempdir");
    let files = series(&dir.path().join("ct"));
    let err = SourceSeries::read(&files, "9.9.9").expect_err("other series");
    assert!(matches!(err, DicomOutError::Series { .. }), "{err}");
    assert!(err.to_string().contains("9.9.9"), "{err}");
    let junk = dir.path().join("junk.dcm");
    std::fs::write(&junk, b"not dicom").expect("write");
    let err = SourceSeries::read(std::slice::from_ref(&junk), SERIES).expect_err("junk");
    assert!(err.to_string().contains("junk.dcm"), "{err}");

    let source = SourceSeries::read(&files, SERIES).expect("source");
    let stamp = Stamp::now();
    let mut f = findings(&stamp);
    f[0].probability = 1.5;
    let err = measurement_report(&source, &f, &algorithm(), &stamp).expect_err("p > 1");
    assert!(err.to_string().contains("finding 1"), "{err}");
    let err = segmentation(&source, &[], &algorithm(), &stamp).expect_err("no finding");
    assert!(err.to_string().contains("no finding"), "{err}");
    let mut f = findings(&stamp);
    f[1].centre = WorldPoint::new(500.0, 500.0, 500.0);
    let err = segmentation(&source, &f, &algorithm(), &stamp).expect_err("outside");
    assert!(err.to_string().contains("outside series"), "{err}");
}

#[test]
fn dciodvfy_finds_no_error_in_the_report_or_the_segmentation() {
    let dir = tempfile::tempdir().expect("tempdir");
    let files = series(&dir.path().join("ct"));
    let source = SourceSeries::read(&files, SERIES).expect("source");
    let stamp = Stamp::now();
    let f = findings(&stamp);
    let sr = measurement_report(&source, &f, &algorithm(), &stamp).expect("report");
    let seg = segmentation(&source, &f, &algorithm(), &stamp).expect("seg");
    for (name, obj) in [("sr.dcm", sr), ("seg.dcm", seg)] {
        let p = dir.path().join(name);
        std::fs::write(&p, obj.to_bytes().expect("bytes")).expect("write");
        let Some(d) = Dciodvfy::run(&p) else {
            eprintln!("skipped: dciodvfy not installed (apt-get install dicom3tools)");
            return;
        };
        assert!(d.errors().is_empty(), "{name}:\n{}", d.report);
        eprintln!("{name}: dciodvfy:\n{}", d.report);
    }
}

#[test]
fn no_finding_gives_a_report_with_no_measurement_group_and_no_segmentation() {
    let dir = tempfile::tempdir().expect("tempdir");
    let files = series(&dir.path().join("ct"));
    let source = SourceSeries::read(&files, SERIES).expect("source");
    let stamp = Stamp::now();
    let sr = measurement_report(&source, &[], &algorithm(), &stamp).expect("an empty report");
    let (p, obj) = read(&sr.to_bytes().expect("bytes"), dir.path(), "sr.dcm");
    assert_eq!(text(&obj, tags::COMPLETION_FLAG), "COMPLETE");
    // No Imaging Measurements container (126010, DCM); Qualitative Evaluations (C0034375, UMLS)
    // saying Nodule = Absent, in code and in words.
    let root = items(&obj, tags::CONTENT_SEQUENCE);
    assert!(!root.iter().any(|i| concept(i) == "126010"));
    let qualitative: Vec<&InMemDicomObject> =
        root.iter().filter(|i| concept(i) == "C0034375").collect();
    assert_eq!(qualitative.len(), 1);
    assert_eq!(text(qualitative[0], tags::VALUE_TYPE), "CONTAINER");
    let said = items(qualitative[0], tags::CONTENT_SEQUENCE);
    assert_eq!(said.len(), 2);
    assert_eq!(concept(&said[0]), "27925004");
    let value = items(&said[0], tags::CONCEPT_CODE_SEQUENCE);
    assert_eq!(text(&value[0], tags::CODE_VALUE), "272519000");
    assert_eq!(
        text(&said[1], tags::TEXT_VALUE),
        speck_dicom_out::NO_FINDING_TEXT
    );
    // The evidence still lists every instance the detector looked at.
    let study = items(&obj, tags::CURRENT_REQUESTED_PROCEDURE_EVIDENCE_SEQUENCE);
    let series = items(&study[0], tags::REFERENCED_SERIES_SEQUENCE);
    assert_eq!(items(&series[0], tags::REFERENCED_SOP_SEQUENCE).len(), 12);
    if let Some(d) = Dciodvfy::run(&p) {
        assert!(d.errors().is_empty(), "{}", d.report);
    }
    // A segmentation of nothing is not valid DICOM (Segment Sequence: one or more items).
    let err = segmentation(&source, &[], &algorithm(), &stamp).expect_err("no finding");
    assert!(err.to_string().contains("no finding"), "{err}");
}

/// Referenced SOP Instance UID and Referenced Frame Number (0 when absent) of a reference item.
fn cited(r: &InMemDicomObject) -> (String, u32) {
    let frame = text(r, tags::REFERENCED_FRAME_NUMBER).parse().unwrap_or(0);
    (text(r, tags::REFERENCED_SOP_INSTANCE_UID), frame)
}

fn position(obj: &InMemDicomObject) -> Vec<f64> {
    let p = items(obj, tags::PLANE_POSITION_SEQUENCE);
    p[0].element(tags::IMAGE_POSITION_PATIENT)
        .expect("IPP")
        .to_multi_float64()
        .expect("IPP")
}

#[test]
fn an_enhanced_ct_source_is_cited_by_frame_number() {
    const ENHANCED: &str = "1.2.826.0.1.3680043.10.1234.77";
    let dir = tempfile::tempdir().expect("tempdir");
    let files = series(&dir.path().join("ct"));
    let file = enhanced::enhanced_from_series(&files, &dir.path().join("enh/ct.dcm"), ENHANCED);
    let slices = SourceSeries::read(&files, SERIES).expect("slices");
    let source = SourceSeries::read(std::slice::from_ref(&file), SERIES).expect("enhanced");
    assert_eq!(source.instances().len(), 1);
    assert_eq!(source.instances()[0].frames, 12);
    // Twelve planes, sorted along the normal like the slices; stored in reverse, so the
    // lowest plane is frame 12.
    assert_eq!(source.frames().len(), 12);
    for (k, (f, s)) in source.frames().iter().zip(slices.frames()).enumerate() {
        assert_eq!(f.frame_number, Some(12 - k as u32));
        assert_eq!(f.position_mm, s.position_mm);
        assert_eq!(s.frame_number, None);
    }

    let stamp = Stamp::fixed(5, "20250101", "101010");
    let f = findings(&stamp);
    // The report: each measurement is inferred from the enhanced image, at the frame of the
    // slice nearest to the finding.
    let sr = measurement_report(&source, &f, &algorithm(), &stamp).expect("report");
    let (sr_path, obj) = read(&sr.to_bytes().expect("bytes"), dir.path(), "sr.dcm");
    let root = items(&obj, tags::CONTENT_SEQUENCE);
    let measurements = root
        .iter()
        .find(|i| concept(i) == "126010")
        .expect("126010");
    let groups = items(measurements, tags::CONTENT_SEQUENCE);
    assert_eq!(groups.len(), 2);
    for (g, finding) in groups.iter().zip(&f) {
        let want_z = slices
            .nearest_frame(finding.centre)
            .expect("slice")
            .position_mm;
        let want = source
            .frames()
            .iter()
            .find(|p| p.position_mm == want_z)
            .and_then(|p| p.frame_number)
            .expect("frame");
        let nums: Vec<InMemDicomObject> = items(g, tags::CONTENT_SEQUENCE)
            .into_iter()
            .filter(|i| text(i, tags::VALUE_TYPE) == "NUM")
            .collect();
        assert!(!nums.is_empty());
        for n in nums {
            let img = &items(&n, tags::CONTENT_SEQUENCE)[0];
            let r = &items(img, tags::REFERENCED_SOP_SEQUENCE)[0];
            assert_eq!(cited(r), (ENHANCED.to_string(), want));
        }
    }

    // The segmentation: the same frames and bits as on the slices, each derived from the frame
    // at its position.
    let seg = segmentation(&source, &f, &algorithm(), &stamp).expect("seg");
    let on_slices = segmentation(&slices, &f, &algorithm(), &stamp).expect("seg of slices");
    let (seg_path, obj) = read(&seg.to_bytes().expect("bytes"), dir.path(), "seg.dcm");
    let (_, other) = read(
        &on_slices.to_bytes().expect("bytes"),
        dir.path(),
        "seg0.dcm",
    );
    let pixels = |o: &InMemDicomObject| {
        o.element(tags::PIXEL_DATA)
            .expect("px")
            .to_bytes()
            .expect("px")
            .into_owned()
    };
    assert_eq!(pixels(&obj), pixels(&other));
    let frames = items(&obj, tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE);
    assert_eq!(
        frames.len(),
        items(&other, tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE).len()
    );
    for fr in &frames {
        let d = &items(fr, tags::DERIVATION_IMAGE_SEQUENCE)[0];
        let (uid, number) = cited(&items(d, tags::SOURCE_IMAGE_SEQUENCE)[0]);
        assert_eq!(uid, ENHANCED);
        let plane = source
            .frames()
            .iter()
            .find(|p| p.frame_number == Some(number))
            .expect("a frame of the source");
        let at = position(fr);
        for a in 0..3 {
            assert!(
                (plane.position_mm[a] - at[a]).abs() < 1e-6,
                "{:?} vs {at:?}",
                plane.position_mm
            );
        }
    }
    let series_refs = items(&obj, tags::REFERENCED_SERIES_SEQUENCE);
    let refs = items(&series_refs[0], tags::REFERENCED_INSTANCE_SEQUENCE);
    assert_eq!(refs.len(), 1);
    assert_eq!(cited(&refs[0]).0, ENHANCED);

    for p in [sr_path, seg_path] {
        if let Some(d) = Dciodvfy::run(&p) {
            assert!(d.errors().is_empty(), "{}:\n{}", p.display(), d.report);
        }
    }
}
