//! DICOM series reading, on series written by the tests themselves with `dicom-object` (slice by
//! slice, with full control over every tag) or with `write_series`.
//!
//! Every test checks voxels and the world coordinates of known points, computed independently of
//! the reader from the positions written into the files.

use std::path::{Path, PathBuf};

use dicom_core::value::{DataSetSequence, PixelFragmentSequence, PrimitiveValue};
use dicom_core::{DataElement, Tag, VR};
use dicom_dictionary_std::{tags, uids};
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};
use speck_volume::dicom::{read_pixels, read_series, scan_series, write_series, DicomWriteOptions};
use speck_volume::{
    Direction, Geometry, Limits, LoadOptions, Provenance, Spacing, Volume, VolumeError, VoxelIndex,
    WorldPoint,
};

const AXIAL: [f64; 6] = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0];

/// One image file to write.
#[derive(Clone)]
struct Slice {
    series_uid: String,
    sop_uid: String,
    modality: &'static str,
    instance: i32,
    ipp: [f64; 3],
    iop: [f64; 6],
    /// (row spacing, column spacing) as stored in PixelSpacing.
    pixel_spacing: [f64; 2],
    rows: usize,
    cols: usize,
    slope: f64,
    intercept: f64,
    signed: bool,
    bits_stored: u16,
    /// Stored values, row-major.
    stored: Vec<i32>,
}

impl Slice {
    fn new(series: &str, instance: i32, ipp: [f64; 3], rows: usize, cols: usize) -> Self {
        Self {
            series_uid: series.to_string(),
            sop_uid: format!("{series}.{instance}"),
            modality: "CT",
            instance,
            ipp,
            iop: AXIAL,
            pixel_spacing: [0.8, 0.6],
            rows,
            cols,
            slope: 1.0,
            intercept: -1024.0,
            signed: false,
            bits_stored: 16,
            stored: vec![1024; rows * cols],
        }
    }

    /// The world position of pixel (row, col), from the tags alone.
    fn world(&self, row: usize, col: usize) -> WorldPoint {
        let (r, c) = (&self.iop[0..3], &self.iop[3..6]);
        let p: [f64; 3] = std::array::from_fn(|i| {
            self.ipp[i]
                + col as f64 * self.pixel_spacing[1] * r[i]
                + row as f64 * self.pixel_spacing[0] * c[i]
        });
        WorldPoint::new(p[0], p[1], p[2])
    }
}

fn ds(values: &[f64]) -> PrimitiveValue {
    PrimitiveValue::Strs(values.iter().map(|v| format!("{v}")).collect())
}

fn put(obj: &mut InMemDicomObject, tag: Tag, vr: VR, value: impl Into<PrimitiveValue>) {
    obj.put(DataElement::new(tag, vr, value.into()));
}

fn pixel_bytes(stored: &[i32]) -> Vec<u8> {
    stored
        .iter()
        .flat_map(|&v| (v as u16).to_le_bytes())
        .collect()
}

fn image_module(obj: &mut InMemDicomObject, s: &Slice) {
    put(obj, tags::SOP_CLASS_UID, VR::UI, uids::CT_IMAGE_STORAGE);
    put(obj, tags::SOP_INSTANCE_UID, VR::UI, s.sop_uid.as_str());
    put(obj, tags::MODALITY, VR::CS, s.modality);
    put(obj, tags::PATIENT_ID, VR::LO, "TEST-PATIENT");
    put(obj, tags::STUDY_INSTANCE_UID, VR::UI, "1.2.826.0.1.1");
    put(
        obj,
        tags::SERIES_INSTANCE_UID,
        VR::UI,
        s.series_uid.as_str(),
    );
    put(obj, tags::INSTANCE_NUMBER, VR::IS, s.instance.to_string());
    put(
        obj,
        tags::SAMPLES_PER_PIXEL,
        VR::US,
        PrimitiveValue::from(1u16),
    );
    put(obj, tags::PHOTOMETRIC_INTERPRETATION, VR::CS, "MONOCHROME2");
    put(obj, tags::ROWS, VR::US, PrimitiveValue::from(s.rows as u16));
    put(
        obj,
        tags::COLUMNS,
        VR::US,
        PrimitiveValue::from(s.cols as u16),
    );
    put(
        obj,
        tags::BITS_ALLOCATED,
        VR::US,
        PrimitiveValue::from(16u16),
    );
    put(
        obj,
        tags::BITS_STORED,
        VR::US,
        PrimitiveValue::from(s.bits_stored),
    );
    put(
        obj,
        tags::HIGH_BIT,
        VR::US,
        PrimitiveValue::from(s.bits_stored - 1),
    );
    put(
        obj,
        tags::PIXEL_REPRESENTATION,
        VR::US,
        PrimitiveValue::from(u16::from(s.signed)),
    );
}

fn save(obj: InMemDicomObject, path: &Path, ts: &str) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    obj.with_meta(FileMetaTableBuilder::new().transfer_syntax(ts))
        .expect("meta")
        .write_to_file(path)
        .expect("write DICOM");
}

fn write_slice(path: &Path, s: &Slice) {
    let mut obj = InMemDicomObject::new_empty();
    image_module(&mut obj, s);
    put(&mut obj, tags::SLICE_THICKNESS, VR::DS, "5"); // deliberately not the spacing
    put(&mut obj, tags::IMAGE_POSITION_PATIENT, VR::DS, ds(&s.ipp));
    put(
        &mut obj,
        tags::IMAGE_ORIENTATION_PATIENT,
        VR::DS,
        ds(&s.iop),
    );
    put(&mut obj, tags::PIXEL_SPACING, VR::DS, ds(&s.pixel_spacing));
    put(&mut obj, tags::RESCALE_SLOPE, VR::DS, ds(&[s.slope]));
    put(
        &mut obj,
        tags::RESCALE_INTERCEPT,
        VR::DS,
        ds(&[s.intercept]),
    );
    put(
        &mut obj,
        tags::PIXEL_DATA,
        VR::OW,
        PrimitiveValue::U8(pixel_bytes(&s.stored).into()),
    );
    save(obj, path, uids::EXPLICIT_VR_LITTLE_ENDIAN);
}

/// A stack of `n` axial slices `gap` mm apart; pixel (r, c) of slice k stores `k * 100 + r * 10 + c`
/// (HU = that - 1024).
fn stack(series: &str, n: usize, gap: f64, rows: usize, cols: usize) -> Vec<Slice> {
    (0..n)
        .map(|k| {
            let mut s = Slice::new(
                series,
                k as i32 + 1,
                [-50.0, -40.0, -100.0 + k as f64 * gap],
                rows,
                cols,
            );
            s.stored = (0..rows * cols)
                .map(|i| (k * 100 + (i / cols) * 10 + i % cols) as i32)
                .collect();
            s
        })
        .collect()
}

fn hu(s: &Slice, row: usize, col: usize) -> i16 {
    let v = f64::from(s.stored[row * s.cols + col]) * s.slope + s.intercept;
    v.round() as i16
}

fn opts() -> LoadOptions {
    LoadOptions::default()
}

/// The volume's voxel at world point `p`, which must be (within 1e-6 voxel) a voxel centre.
fn at_world(v: &Volume, p: WorldPoint) -> i16 {
    let c = v.world_to_index(p);
    for (a, what) in [(c.z, "z"), (c.y, "y"), (c.x, "x")] {
        assert!(
            (a - a.round()).abs() < 1e-6,
            "{p:?} is not a voxel centre along {what}: {c:?}"
        );
    }
    v.get(v.world_to_voxel(p).expect("inside")).expect("voxel")
}

#[test]
fn shuffled_files_in_subfolders_are_sorted_by_position() {
    let dir = tempfile::tempdir().expect("tmp");
    // Oblique orientation: rows along (cos30, sin30, 0), columns along z-tilted direction.
    let (c30, s30) = (30f64.to_radians().cos(), 30f64.to_radians().sin());
    let iop = [c30, s30, 0.0, 0.0, 0.0, -1.0]; // coronal, rotated 30 degrees about z
    let r = [c30, s30, 0.0];
    let c = [0.0, 0.0, -1.0];
    let n = [
        r[1] * c[2] - r[2] * c[1],
        r[2] * c[0] - r[0] * c[2],
        r[0] * c[1] - r[1] * c[0],
    ];
    let mut slices = stack("1.2.3", 6, 1.25, 4, 5);
    // Positions go *against* the normal as instance numbers increase, and files are named in
    // neither order.
    for (k, s) in slices.iter_mut().enumerate() {
        s.iop = iop;
        let d = -(k as f64) * 1.25;
        s.ipp = [10.0 + d * n[0], 20.0 + d * n[1], 30.0 + d * n[2]];
    }
    let names = ["b/x7", "a/zz.dcm", "q", "a/deep/er/1", "m.dcm", "0"];
    for (s, name) in slices.iter().zip(names) {
        write_slice(&dir.path().join(name), s);
    }
    std::fs::write(dir.path().join("README.txt"), "not DICOM").expect("write");
    std::fs::write(dir.path().join("a/empty"), "").expect("write");
    let v = read_series(dir.path(), &opts()).expect("read");
    assert_eq!(v.shape_zyx(), [6, 4, 5]);
    let g = v.geometry();
    // Sorted along the normal: the last instance has the lowest position, so it comes first.
    assert_eq!(
        g.origin,
        WorldPoint::new(slices[5].ipp[0], slices[5].ipp[1], slices[5].ipp[2])
    );
    assert!(
        (g.spacing.z_mm() - 1.25).abs() < 1e-9,
        "z spacing from positions, not SliceThickness"
    );
    assert_eq!((g.spacing.x_mm(), g.spacing.y_mm()), (0.6, 0.8));
    for k in 0..3 {
        let want = [r, c, n][k];
        let got = g.direction.axis(k);
        for i in 0..3 {
            assert!(
                (got[i] - want[i]).abs() < 1e-12,
                "axis {k}: {got:?} vs {want:?}"
            );
        }
    }
    let inst: Vec<_> = v
        .provenance()
        .slices
        .iter()
        .map(|s| s.instance_number)
        .collect();
    assert_eq!(inst, [6, 5, 4, 3, 2, 1].map(Some));
    assert_eq!(
        v.provenance().slices[0].sop_instance_uid.as_deref(),
        Some("1.2.3.6")
    );
    assert_eq!(v.provenance().patient_id.as_deref(), Some("TEST-PATIENT"));
    // Every pixel of every file is found at its world position.
    for s in &slices {
        for (row, col) in [(0, 0), (3, 4), (1, 2), (2, 3)] {
            assert_eq!(
                at_world(&v, s.world(row, col)),
                hu(s, row, col),
                "{} ({row},{col})",
                s.instance
            );
        }
    }
}

#[test]
fn two_series_the_largest_axial_ct_is_loaded_and_others_listed() {
    let dir = tempfile::tempdir().expect("tmp");
    let a = stack("1.1", 5, 2.0, 4, 4);
    let mut b = stack("1.2", 8, 1.0, 3, 4); // larger, but coronal
    for s in &mut b {
        s.iop = [1.0, 0.0, 0.0, 0.0, 0.0, -1.0];
        s.ipp = [0.0, s.ipp[2], 0.0];
    }
    let mut mr = stack("1.3", 7, 1.0, 4, 4); // larger, axial, but MR
    mr.iter_mut().for_each(|s| s.modality = "MR");
    for (i, s) in a.iter().chain(&b).chain(&mr).enumerate() {
        write_slice(&dir.path().join(format!("f{i:03}")), s);
    }
    let v = read_series(dir.path(), &opts()).expect("read");
    assert_eq!(v.provenance().series_uid.as_deref(), Some("1.1"));
    assert_eq!(v.shape_zyx(), [5, 4, 4]);
    assert_eq!(
        v.provenance().other_series.len(),
        2,
        "{:?}",
        v.provenance().other_series
    );
    assert!(v
        .provenance()
        .other_series
        .iter()
        .any(|l| l.starts_with("1.2 ") && l.contains("coronal")));
    assert_eq!(at_world(&v, a[3].world(2, 1)), hu(&a[3], 2, 1));

    let picked = opts().series_uid("1.2".to_string());
    let v = read_series(dir.path(), &picked).expect("read 1.2");
    assert_eq!(v.shape_zyx(), [8, 3, 4]);
    // Coronal: rows along +x, columns along -z, normal = x cross -z = +y.
    assert_eq!(v.geometry().direction.axis(2), [0.0, 1.0, 0.0]);
    assert_eq!(at_world(&v, b[6].world(2, 3)), hu(&b[6], 2, 3));

    let infos = scan_series(dir.path()).expect("scan");
    let counts: Vec<(String, usize)> = infos
        .iter()
        .map(|i| (i.series_uid.clone(), i.n_images))
        .collect();
    assert_eq!(
        counts,
        [
            ("1.2".to_string(), 8),
            ("1.3".to_string(), 7),
            ("1.1".to_string(), 5)
        ]
    );
    assert_eq!(infos[2].files.len(), 5);
    assert_eq!(infos[1].modality.as_deref(), Some("MR"));

    let missing = opts().series_uid("9.9".to_string());
    match read_series(dir.path(), &missing) {
        Err(VolumeError::NotFound { reason, .. }) => assert!(reason.contains("9.9"), "{reason}"),
        other => panic!("expected NotFound, got {other:?}"),
    }
}

#[test]
fn rescale_is_applied_once_per_slice_including_signed_12_bit() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut slices = stack("2.1", 3, 2.5, 2, 3);
    slices[0].slope = 2.0;
    slices[0].intercept = -2048.0;
    slices[1].slope = 0.5;
    slices[1].intercept = -1000.25;
    // Signed 12-bit storage: -1000 stored as 12-bit two's complement, high bits garbage-free.
    slices[2].signed = true;
    slices[2].bits_stored = 12;
    slices[2].intercept = 0.0;
    slices[2].stored = vec![-1000, -1, 0, 2047, -2048, 5];
    for (i, s) in slices.iter().enumerate() {
        let mut s = s.clone();
        if s.bits_stored == 12 {
            // Only the low 12 bits are meaningful: set the unused high bits to prove they're masked.
            s.stored = s.stored.iter().map(|&v| (v & 0x0fff) | 0x5000).collect();
        }
        write_slice(&dir.path().join(format!("s{i}")), &s);
    }
    let v = read_series(dir.path(), &opts()).expect("read");
    for (k, s) in slices.iter().enumerate() {
        for row in 0..2 {
            for col in 0..3 {
                let got = v.get(VoxelIndex::new(k, row, col)).expect("voxel");
                assert_eq!(got, hu(s, row, col), "slice {k} ({row},{col})");
            }
        }
    }
    assert_eq!(v.get(VoxelIndex::new(2, 0, 0)), Some(-1000));
    assert_eq!(v.get(VoxelIndex::new(2, 1, 1)), Some(-2048));
    // 0.5 * 112 - 1000.25 = -944.25 -> -944
    assert_eq!(v.get(VoxelIndex::new(1, 1, 2)), Some(-944));
}

#[test]
fn a_missing_slice_is_interpolated_with_a_warning() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut slices = stack("3.1", 7, 2.5, 3, 3);
    let gone = slices.remove(3);
    for (i, s) in slices.iter().enumerate() {
        write_slice(&dir.path().join(format!("s{i}")), s);
    }
    let v = read_series(dir.path(), &opts()).expect("read");
    assert_eq!(v.shape_zyx(), [7, 3, 3]);
    assert!((v.geometry().spacing.z_mm() - 2.5).abs() < 1e-9);
    let w = &v.provenance().warnings;
    assert!(
        w.iter()
            .any(|w| w.contains("irregular") && w.contains("interpolat")),
        "{w:?}"
    );
    // The missing slice is the mean of its neighbours, which here is exactly what it held.
    for row in 0..3 {
        for col in 0..3 {
            assert_eq!(at_world(&v, gone.world(row, col)), hu(&gone, row, col));
        }
    }
    for s in &slices {
        assert_eq!(at_world(&v, s.world(2, 1)), hu(s, 2, 1));
    }
    assert_eq!(
        v.provenance().slices[3].instance_number,
        None,
        "interpolated: no source image"
    );
    assert_eq!(v.provenance().slices[4].instance_number, Some(5));
}

#[test]
fn a_tilted_stack_is_shifted_onto_a_perpendicular_grid() {
    let dir = tempfile::tempdir().expect("tmp");
    // Slices 2 mm apart along z, each shifted by one row (0.8 mm) in y: a gantry tilt.
    let (rows, cols) = (10, 6);
    let mut slices = stack("4.1", 5, 2.0, rows, cols);
    let rod = WorldPoint::new(-50.0 + 3.0 * 0.6, -40.0 + 5.0 * 0.8, 0.0); // a rod along z
    for (k, s) in slices.iter_mut().enumerate() {
        s.ipp[1] -= k as f64 * 0.8; // the image moves towards -y, so the rod moves down a row
        s.stored = vec![1024; rows * cols]; // 0 HU everywhere
        let row = 5 + k; // where the rod is in this tilted slice
        s.stored[row * cols + 3] = 1024 + 1000;
        assert!((s.world(row, 3).y_mm - rod.y_mm).abs() < 1e-9);
    }
    for (i, s) in slices.iter().enumerate() {
        write_slice(&dir.path().join(format!("t{i}")), s);
    }
    let v = read_series(dir.path(), &opts()).expect("read");
    let w = &v.provenance().warnings;
    assert!(
        w.iter()
            .any(|w| w.contains("gantry tilt") && w.contains("21.80 degrees")),
        "{w:?}"
    );
    assert_eq!(v.geometry().direction, Direction::IDENTITY);
    assert!((v.geometry().spacing.z_mm() - 2.0).abs() < 1e-9);
    for (k, s) in slices.iter().enumerate() {
        let z = s.ipp[2];
        let p = WorldPoint::new(rod.x_mm, rod.y_mm, z);
        assert_eq!(at_world(&v, p), 1000, "rod at slice {k}");
        // Next to the rod: 0 HU.
        let beside = v
            .world_to_voxel(WorldPoint::new(rod.x_mm + 0.6, rod.y_mm, z))
            .expect("in");
        assert_eq!(v.get(beside), Some(0));
    }
    // The last slice moved 4 rows: its bottom rows come from outside the field of view (air).
    assert_eq!(v.get(VoxelIndex::new(4, rows - 1, 0)), Some(-1024));
    assert_eq!(v.get(VoxelIndex::new(4, rows - 5, 0)), Some(0));
    assert_eq!(v.get(VoxelIndex::new(4, rows - 4, 0)), Some(-1024));
}

fn seq(items: Vec<InMemDicomObject>) -> DataSetSequence<InMemDicomObject> {
    DataSetSequence::from(items)
}

fn item(tag: Tag, vr: VR, value: PrimitiveValue) -> InMemDicomObject {
    let mut o = InMemDicomObject::new_empty();
    put(&mut o, tag, vr, value);
    o
}

/// An enhanced CT file with `frames` (positions in the given order) and per-frame intercepts.
fn write_enhanced(path: &Path, frames: &[(Slice, f64)]) {
    let first = &frames[0].0;
    let mut obj = InMemDicomObject::new_empty();
    image_module(&mut obj, first);
    put(
        &mut obj,
        tags::SOP_CLASS_UID,
        VR::UI,
        uids::ENHANCED_CT_IMAGE_STORAGE,
    );
    put(
        &mut obj,
        tags::NUMBER_OF_FRAMES,
        VR::IS,
        frames.len().to_string(),
    );
    let mut shared = InMemDicomObject::new_empty();
    let measures = item(tags::PIXEL_SPACING, VR::DS, ds(&first.pixel_spacing));
    shared.put(DataElement::new(
        tags::PIXEL_MEASURES_SEQUENCE,
        VR::SQ,
        seq(vec![measures]),
    ));
    let orient = item(tags::IMAGE_ORIENTATION_PATIENT, VR::DS, ds(&first.iop));
    shared.put(DataElement::new(
        tags::PLANE_ORIENTATION_SEQUENCE,
        VR::SQ,
        seq(vec![orient]),
    ));
    obj.put(DataElement::new(
        tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE,
        VR::SQ,
        seq(vec![shared]),
    ));
    let per_frame: Vec<InMemDicomObject> = frames
        .iter()
        .map(|(s, intercept)| {
            let mut f = InMemDicomObject::new_empty();
            let pos = item(tags::IMAGE_POSITION_PATIENT, VR::DS, ds(&s.ipp));
            f.put(DataElement::new(
                tags::PLANE_POSITION_SEQUENCE,
                VR::SQ,
                seq(vec![pos]),
            ));
            let mut pvt = item(tags::RESCALE_INTERCEPT, VR::DS, ds(&[*intercept]));
            put(&mut pvt, tags::RESCALE_SLOPE, VR::DS, ds(&[1.0]));
            put(&mut pvt, tags::RESCALE_TYPE, VR::LO, "HU");
            f.put(DataElement::new(
                tags::PIXEL_VALUE_TRANSFORMATION_SEQUENCE,
                VR::SQ,
                seq(vec![pvt]),
            ));
            f
        })
        .collect();
    obj.put(DataElement::new(
        tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE,
        VR::SQ,
        seq(per_frame),
    ));
    let all: Vec<i32> = frames.iter().flat_map(|(s, _)| s.stored.clone()).collect();
    put(
        &mut obj,
        tags::PIXEL_DATA,
        VR::OW,
        PrimitiveValue::U8(pixel_bytes(&all).into()),
    );
    save(obj, path, uids::EXPLICIT_VR_LITTLE_ENDIAN);
}

#[test]
fn an_enhanced_multi_frame_file_reads_like_a_series() {
    let dir = tempfile::tempdir().expect("tmp");
    let slices = stack("5.1", 4, 3.0, 3, 4);
    // Frames stored out of spatial order, each with its own intercept.
    let order = [2usize, 0, 3, 1];
    let frames: Vec<(Slice, f64)> = order
        .iter()
        .map(|&k| (slices[k].clone(), -1024.0 - k as f64 * 10.0))
        .collect();
    let file = dir.path().join("enhanced.dcm");
    write_enhanced(&file, &frames);
    for path in [dir.path(), file.as_path()] {
        let v = read_series(path, &opts()).expect("read enhanced");
        assert_eq!(v.shape_zyx(), [4, 3, 4]);
        assert!((v.geometry().spacing.z_mm() - 3.0).abs() < 1e-9);
        assert_eq!(v.geometry().origin, WorldPoint::new(-50.0, -40.0, -100.0));
        for (s, intercept) in &frames {
            let k = (s.ipp[2] + 100.0) / 3.0;
            for (row, col) in [(0, 0), (2, 3), (1, 2)] {
                let want = (f64::from(s.stored[row * 4 + col]) + intercept) as i16;
                assert_eq!(
                    at_world(&v, s.world(row, col)),
                    want,
                    "frame at z index {k}"
                );
            }
        }
        assert!(
            v.provenance().warnings.is_empty(),
            "{:?}",
            v.provenance().warnings
        );
    }
}

#[test]
fn inconsistent_rows_in_a_stack_are_refused_naming_the_file() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut slices = stack("6.1", 6, 2.0, 4, 4);
    let odd = Slice::new("6.1", 99, slices[3].ipp, 3, 4);
    slices[3] = Slice {
        ipp: [-50.0, -40.0, -100.0 + 3.0 * 2.0],
        ..odd
    };
    for (i, s) in slices.iter().enumerate() {
        write_slice(&dir.path().join(format!("s{i}.dcm")), s);
    }
    match read_series(dir.path(), &opts()) {
        Err(VolumeError::Series { series_uid, reason }) => {
            assert_eq!(series_uid, "6.1");
            assert!(
                reason.contains("s3.dcm") && reason.contains("3 rows"),
                "{reason}"
            );
        }
        other => panic!("expected a Series error, got {other:?}"),
    }
}

#[test]
fn duplicates_copies_are_dropped_but_conflicting_images_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    let slices = stack("7.1", 4, 2.0, 2, 2);
    for (i, s) in slices.iter().enumerate() {
        write_slice(&dir.path().join(format!("s{i}")), s);
    }
    // The same image again under another name: dropped with a warning.
    write_slice(&dir.path().join("copy-of-s1"), &slices[1]);
    let v = read_series(dir.path(), &opts()).expect("read");
    assert_eq!(v.shape_zyx(), [4, 2, 2]);
    assert!(v
        .provenance()
        .warnings
        .iter()
        .any(|w| w.contains("duplicate")));
    // A different image at the same position: refused, naming both files.
    let mut other = slices[2].clone();
    other.sop_uid = "7.1.77".into();
    write_slice(&dir.path().join("impostor"), &other);
    match read_series(dir.path(), &opts()) {
        Err(VolumeError::Series { reason, .. }) => {
            assert!(
                reason.contains("impostor") && reason.contains("s2"),
                "{reason}"
            )
        }
        other => panic!("expected a Series error, got {other:?}"),
    }
}

#[test]
fn jpeg_12_bit_extended_is_reported_as_unsupported() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut s = Slice::new("8.1", 1, [0.0, 0.0, 0.0], 2, 2);
    s.bits_stored = 12;
    let mut obj = InMemDicomObject::new_empty();
    image_module(&mut obj, &s);
    put(&mut obj, tags::IMAGE_POSITION_PATIENT, VR::DS, ds(&s.ipp));
    put(
        &mut obj,
        tags::IMAGE_ORIENTATION_PATIENT,
        VR::DS,
        ds(&s.iop),
    );
    put(&mut obj, tags::PIXEL_SPACING, VR::DS, ds(&s.pixel_spacing));
    let fragments =
        PixelFragmentSequence::new(Vec::<u32>::new(), vec![vec![0xFFu8, 0xD8, 0xFF, 0xD9]]);
    obj.put(DataElement::new(tags::PIXEL_DATA, VR::OB, fragments));
    let path = dir.path().join("jpeg12.dcm");
    save(obj, &path, uids::JPEG_EXTENDED12_BIT);
    match read_series(dir.path(), &opts()) {
        Err(VolumeError::Unsupported { path: p, reason }) => {
            assert_eq!(p, path);
            assert!(reason.contains("1.2.840.10008.1.2.4.51"), "{reason}");
        }
        other => panic!("expected Unsupported, got {other:?}"),
    }
}

#[test]
fn limits_are_checked_before_allocating() {
    let dir = tempfile::tempdir().expect("tmp");
    for (i, s) in stack("9.1", 4, 1.0, 8, 8).iter().enumerate() {
        write_slice(&dir.path().join(format!("s{i}")), s);
    }
    let small = opts().limits(Limits {
        max_voxels: 255,
        ..Limits::default()
    });
    assert!(matches!(
        read_series(dir.path(), &small),
        Err(VolumeError::TooLarge { .. })
    ));
    let thin = opts().limits(Limits {
        max_dim: 7,
        ..Limits::default()
    });
    assert!(matches!(
        read_series(dir.path(), &thin),
        Err(VolumeError::TooLarge { .. })
    ));
    assert!(read_series(dir.path(), &opts()).is_ok());
}

#[test]
fn one_slice_path_loads_its_series_and_bad_paths_are_errors() {
    let dir = tempfile::tempdir().expect("tmp");
    let a = stack("10.1", 3, 1.0, 2, 2);
    let b = stack("10.2", 5, 1.0, 2, 2);
    for (i, s) in a.iter().chain(&b).enumerate() {
        write_slice(&dir.path().join(format!("s{i}")), s);
    }
    let v = read_series(&dir.path().join("s1"), &opts()).expect("read via one slice");
    assert_eq!(v.provenance().series_uid.as_deref(), Some("10.1"));
    assert_eq!(v.shape_zyx(), [3, 2, 2]);
    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "hello").expect("write");
    assert!(matches!(
        read_series(&text, &opts()),
        Err(VolumeError::Malformed { .. })
    ));
    let empty = tempfile::tempdir().expect("tmp");
    assert!(matches!(
        read_series(empty.path(), &opts()),
        Err(VolumeError::NotFound { .. })
    ));
    assert!(matches!(
        read_series(&dir.path().join("nope"), &opts()),
        Err(VolumeError::Io { .. })
    ));
    // A truncated DICOM file is an error naming it, not a panic.
    let bytes = std::fs::read(dir.path().join("s0")).expect("read");
    let cut = dir.path().join("s-truncated");
    std::fs::write(&cut, &bytes[..bytes.len() / 3]).expect("write");
    match read_series(dir.path(), &opts()) {
        Err(VolumeError::Malformed { path, .. }) => assert_eq!(path, cut),
        other => panic!("expected Malformed, got {other:?}"),
    }
    // Listing the folder skips it; reading through a good sibling slice does too.
    let infos = scan_series(dir.path()).expect("scan");
    assert_eq!(infos.iter().map(|i| i.n_images).sum::<usize>(), 8);
    let v = read_series(&dir.path().join("s4"), &opts()).expect("sibling");
    assert_eq!(v.provenance().series_uid.as_deref(), Some("10.2"));
}

fn oblique_volume() -> Volume {
    let (ca, sa) = (20f64.to_radians().cos(), 20f64.to_radians().sin());
    let direction =
        Direction::from_axes([ca, sa, 0.0], [-sa, ca, 0.0], [0.0, 0.0, 1.0]).expect("dir");
    let geometry = Geometry::new(
        Spacing::new(0.75, 0.9, 1.5).expect("spacing"),
        WorldPoint::new(-123.4, 56.7, -200.25),
        direction,
    );
    let voxels = ndarray::Array3::from_shape_fn((5, 6, 7), |(z, y, x)| {
        (z as i16 * 300 + y as i16 * 40 + x as i16) - 1100
    });
    Volume::new(voxels, geometry, Provenance::default()).expect("volume")
}

#[test]
fn write_series_round_trips_through_read_series() {
    let dir = tempfile::tempdir().expect("tmp");
    let volume = oblique_volume();
    let out: PathBuf = dir.path().join("series");
    write_series(&volume, &out, &DicomWriteOptions::default()).expect("write");
    let back = read_series(&out, &opts()).expect("read");
    assert_eq!(back.voxels(), volume.voxels());
    let (g, h) = (volume.geometry(), back.geometry());
    for (a, b) in g.spacing.xyz().iter().zip(h.spacing.xyz()) {
        assert!((a - b).abs() < 1e-9);
    }
    for (a, b) in g.origin.to_array().iter().zip(h.origin.to_array()) {
        assert!((a - b).abs() < 1e-9);
    }
    for (a, b) in g
        .direction
        .rows()
        .iter()
        .flatten()
        .zip(h.direction.rows().iter().flatten())
    {
        assert!((a - b).abs() < 1e-12);
    }
    let p = back.provenance();
    assert_eq!(
        p.slices
            .iter()
            .map(|s| s.instance_number)
            .collect::<Vec<_>>(),
        (1..=5).map(Some).collect::<Vec<_>>()
    );
    assert!(p
        .series_uid
        .as_deref()
        .is_some_and(|u| u.starts_with("2.25.")));
}

#[test]
fn truncated_and_corrupted_files_are_errors_not_panics() {
    let src = tempfile::tempdir().expect("tmp");
    let mut s = stack("11.1", 1, 1.0, 4, 4).remove(0);
    s.stored = (0..16).collect();
    let good = src.path().join("good");
    write_slice(&good, &s);
    let bytes = std::fs::read(&good).expect("read");
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("f.dcm");
    // Every truncation point, then single-byte corruptions across the header.
    let mut cases: Vec<Vec<u8>> = (0..bytes.len())
        .step_by(3)
        .map(|n| bytes[..n].to_vec())
        .collect();
    for i in (132..bytes.len()).step_by(5) {
        let mut b = bytes.clone();
        b[i] ^= 0xA5;
        cases.push(b);
    }
    // A PixelData element claiming ~4 GB.
    let mut huge = bytes.clone();
    let n = huge.len();
    let len_at = n - 32 - 4; // OW: tag(4) VR(2) reserved(2) length(4), then 32 bytes of pixels
    huge[len_at..len_at + 4].copy_from_slice(&0xFFFF_FFF0u32.to_le_bytes());
    std::fs::write(&path, &huge).expect("write");
    match read_series(&path, &opts()) {
        Err(VolumeError::Malformed { path: p, reason }) => {
            assert_eq!(p, path);
            assert!(reason.contains("claims 4294967280 bytes"), "{reason}");
        }
        other => panic!("expected Malformed, got {other:?}"),
    }
    cases.push(huge);
    for (i, case) in cases.iter().enumerate() {
        std::fs::write(&path, case).expect("write");
        // Must return (Ok or Err), never panic; an Ok volume must hold the right pixels.
        if let Ok(v) = read_series(&path, &opts()) {
            assert_eq!(v.shape_zyx(), [1, 4, 4], "case {i}");
        }
        let _ = read_pixels(&path, &Limits::default());
    }
}
