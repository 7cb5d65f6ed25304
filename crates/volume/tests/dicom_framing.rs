//! DICOM files framed other than the Part 10 standard (issue 21, item 8): without the 128-byte
//! preamble (`DICM` at byte 0, as some older tools write them), and bare data sets without
//! preamble or file meta group, in implicit or explicit VR little endian (what pydicom reads with
//! `force=True`). Each reads to the same volume as the standard series.

use std::path::{Path, PathBuf};

use dicom_transfer_syntax_registry::{TransferSyntaxIndex, TransferSyntaxRegistry};
use ndarray::Array3;
use speck_volume::dicom::{write_series, DicomWriteOptions};
use speck_volume::{
    detect_format, open, Direction, Format, Geometry, Provenance, Spacing, Volume, WorldPoint,
};

fn volume() -> Volume {
    let g = Geometry::new(
        Spacing::new(0.75, 0.8, 2.5).expect("spacing"),
        WorldPoint::new(-190.0, -180.0, -320.0),
        Direction::IDENTITY,
    );
    let v = Array3::from_shape_fn((5, 8, 9), |(z, y, x)| (z * 60 + y * 7 + x) as i16 - 1000);
    Volume::new(v, g, Provenance::default()).expect("volume")
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("ls")
        .flatten()
        .map(|e| e.path())
        .collect();
    v.sort();
    v
}

/// Rewrite every file of `dir` with `f`.
fn rewrite(dir: &Path, f: impl Fn(&Path, Vec<u8>) -> Vec<u8>) {
    for p in files(dir) {
        let bytes = std::fs::read(&p).expect("read");
        std::fs::write(&p, f(&p, bytes)).expect("write");
    }
}

/// The data set of a Part 10 file: what follows the file meta group.
fn data_set(bytes: &[u8]) -> Vec<u8> {
    assert_eq!(&bytes[128..132], b"DICM");
    assert_eq!(
        &bytes[132..136],
        [0x02, 0x00, 0x00, 0x00],
        "(0002,0000) first"
    );
    let group_len = u32::from_le_bytes(bytes[140..144].try_into().expect("4 bytes")) as usize;
    bytes[144 + group_len..].to_vec()
}

fn assert_same(a: &Volume, b: &Volume, what: &str) {
    assert_eq!(a.voxels(), b.voxels(), "{what}");
    let (ga, gb) = (a.geometry(), b.geometry());
    assert!(
        ga.origin.distance_mm(gb.origin) < 1e-6,
        "{what}: {:?} {:?}",
        ga.origin,
        gb.origin
    );
    assert_eq!(ga.spacing.xyz(), gb.spacing.xyz(), "{what}");
    assert_eq!(
        a.provenance().series_uid,
        b.provenance().series_uid,
        "{what}"
    );
}

#[test]
fn part10_without_preamble_and_bare_data_sets_read_as_the_standard_series() {
    let dir = tempfile::tempdir().expect("tempdir");
    let v = volume();
    let standard = dir.path().join("standard");
    write_series(&v, &standard, &DicomWriteOptions::default()).expect("write");
    let reference = open(&standard).expect("standard series");
    assert_eq!(reference.voxels(), v.voxels());

    let copy = |name: &str| {
        let d = dir.path().join(name);
        std::fs::create_dir_all(&d).expect("mkdir");
        for p in files(&standard) {
            std::fs::copy(&p, d.join(p.file_name().expect("name"))).expect("copy");
        }
        d
    };

    // "DICM" at byte 0, then the file meta group.
    let no_preamble = copy("no-preamble");
    rewrite(&no_preamble, |_, b| b[128..].to_vec());
    // The data set alone, explicit VR little endian (as written).
    let explicit = copy("raw-explicit");
    rewrite(&explicit, |_, b| data_set(&b));
    // The data set alone, re-encoded in implicit VR little endian.
    let implicit = copy("raw-implicit");
    let ts = TransferSyntaxRegistry
        .get("1.2.840.10008.1.2")
        .expect("implicit VR LE");
    rewrite(&implicit, |p, _| {
        let obj = dicom_object::open_file(p).expect("open");
        let mut out = Vec::new();
        obj.write_dataset_with_ts(&mut out, ts)
            .expect("write implicit");
        out
    });

    for d in [&no_preamble, &explicit, &implicit] {
        let what = d.display().to_string();
        let back = open(d).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_same(&back, &reference, &what);
        // One file of the series, by itself (no extension: sniffed), reads the whole series.
        let one = &files(d)[2];
        assert_eq!(detect_format(one).expect("detect"), Format::Dicom, "{what}");
        let back = open(one).unwrap_or_else(|e| panic!("{}: {e}", one.display()));
        assert_same(&back, &reference, &what);
    }
    // The series lister of `speck scan` finds them too.
    for d in [&no_preamble, &implicit] {
        let listed = speck_volume::dicom::scan_series(d).expect("scan_series");
        assert_eq!(listed.len(), 1, "{}: {listed:?}", d.display());
    }
}

/// Junk that starts like nothing DICOM is still not DICOM, and a file cut inside a bare data set
/// is an error naming it, not a panic.
#[test]
fn junk_is_not_mistaken_for_a_bare_data_set() {
    let dir = tempfile::tempdir().expect("tempdir");
    let junk = dir.path().join("junk.bin");
    std::fs::write(&junk, [7u8; 4096]).expect("write");
    assert!(detect_format(&junk).is_err());
    let text = dir.path().join("notes");
    std::fs::write(&text, b"\x08\x00 this is text, not a data set").expect("write");
    assert!(detect_format(&text).is_err());

    let v = volume();
    let series = dir.path().join("s");
    write_series(&v, &series, &DicomWriteOptions::default()).expect("write");
    let one = files(&series).remove(0);
    let raw = data_set(&std::fs::read(&one).expect("read"));
    let cut = dir.path().join("cut");
    std::fs::write(&cut, &raw[..raw.len() / 2]).expect("write");
    let e = open(&cut).expect_err("a cut data set");
    assert!(e.to_string().contains("cut"), "{e}");
}
