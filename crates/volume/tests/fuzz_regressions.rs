//! Reproducers of what the fuzz targets in `fuzz/` found, one test per finding, named
//! `regression_<target>_<n>` (see `docs/reliability.md`). Each input is rebuilt here from its
//! description rather than committed as an opaque file.

use std::path::Path;

use ndarray::Array3;
use speck_volume::dicom::{read_pixels, read_series, write_series, DicomWriteOptions};
use speck_volume::{
    Direction, Geometry, Limits, LoadOptions, Provenance, Spacing, Volume, VolumeError, WorldPoint,
};

fn small() -> Volume {
    let g = Geometry::new(
        Spacing::new(0.7, 0.8, 2.5).expect("spacing"),
        WorldPoint::new(-180.0, -170.0, -300.0),
        Direction::IDENTITY,
    );
    let v = Array3::from_shape_fn((2, 3, 4), |(z, y, x)| (z * 100 + y * 10 + x) as i16 - 1000);
    Volume::new(v, g, Provenance::default()).expect("volume")
}

/// One DICOM slice written by Speck, as bytes.
fn slice_bytes(dir: &Path) -> Vec<u8> {
    let out = dir.join("src");
    write_series(&small(), &out, &DicomWriteOptions::default()).expect("write");
    std::fs::read(out.join("IM000001.dcm")).expect("read")
}

/// Insert `element` just before the PixelData element (7FE0,0010) of an explicit-VR-LE file;
/// returns the new file and the offset of the inserted element.
fn insert_before_pixel_data(file: &[u8], element: &[u8]) -> (Vec<u8>, usize) {
    let at = file
        .windows(6)
        .rposition(|w| w == [0xE0, 0x7F, 0x10, 0x00, b'O', b'W'])
        .expect("PixelData");
    let mut out = file[..at].to_vec();
    out.extend_from_slice(element);
    out.extend_from_slice(&file[at..]);
    (out, at)
}

/// Writes `bytes` to `dir/name`; `read_pixels` and `read_series` must both refuse that file as
/// malformed, with exactly "PATH: corrupt DICOM: `reason`".
fn assert_refused(dir: &Path, name: &str, bytes: &[u8], reason: &str) {
    let p = dir.join(name);
    std::fs::write(&p, bytes).expect("write");
    let expected = format!("{}: corrupt DICOM: {reason}", p.display());
    let e = read_pixels(&p, &Limits::default()).expect_err("refused");
    assert!(matches!(e, VolumeError::Malformed { .. }), "{e:?}");
    assert_eq!(e.to_string(), expected);
    let e = read_series(&p, &LoadOptions::default()).expect_err("refused");
    assert_eq!(e.to_string(), expected);
}

fn tag(group: u16, element: u16) -> Vec<u8> {
    [group.to_le_bytes(), element.to_le_bytes()].concat()
}

const UNDEFINED: [u8; 4] = [0xFF; 4];

/// fuzz target `dicom_file`, finding 1 (out-of-memory, malloc of 3 758 161 918 bytes).
///
/// A private element of VR UN with undefined length holds a sequence in implicit VR, as the
/// standard says (pydicom's `UN_sequence.dcm`, written by GDCM, is such a file). dicom-parser 0.10
/// reads that content in the data set's *explicit* VR instead, so the implicit undefined length
/// `FFFFFFFF` of the nested sequence and the item tag `(FFFE,E000)` after it become VR `\xFF\xFF`
/// and a 4-byte length `0xE000FFFE`, which it allocates and zero-fills (3.7 GB for a 600-byte
/// file). The length guard walked the content as implicit VR and so did not see that length; it
/// now walks it as the parser will, and refuses the file before dicom-object allocates.
#[test]
fn regression_dicom_file_1() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut un = tag(0x4453, 0x100C);
    un.extend_from_slice(b"UN\0\0");
    un.extend_from_slice(&UNDEFINED);
    un.extend(tag(0xFFFE, 0xE000)); // item, undefined length
    un.extend_from_slice(&UNDEFINED);
    un.extend(tag(0x0008, 0x1115)); // implicit VR: ReferencedSeriesSequence, undefined length
    un.extend_from_slice(&UNDEFINED);
    un.extend(tag(0xFFFE, 0xE000)); // its item
    un.extend_from_slice(&UNDEFINED);
    un.extend(tag(0x0020, 0x000E)); // SeriesInstanceUID, 4 bytes
    un.extend_from_slice(&4u32.to_le_bytes());
    un.extend_from_slice(b"1.2\0");
    for delimiter in [0xE00D, 0xE0DD, 0xE00D, 0xE0DD] {
        un.extend(tag(0xFFFE, delimiter));
        un.extend_from_slice(&[0; 4]);
    }
    let (bytes, at) = insert_before_pixel_data(&slice_bytes(dir.path()), &un);
    // The nested element starts after the UN header (12 bytes) and the item header (8).
    let offset = at + 20;
    assert_refused(
        dir.path(),
        "un_sequence.dcm",
        &bytes,
        &format!(
            "undefined-length UN element (4453,100C) that dicom-rs cannot read: \
             invalid VR [255, 255] for (0008,1115) at byte {offset}"
        ),
    );
}

/// fuzz target `dicom_file`, finding 2 (10 s timeout and ~760 MB for a 546-byte file).
///
/// An element whose explicit VR is two letters that name no VR (`UF` in the file meta group,
/// `UK` in the data set). dicom-encoding reads any VR outside the 2-byte-length list as UN, with
/// 2 reserved bytes and a 4-byte length, so the first 4 bytes of the value (`1.2.` =
/// 0x2E322E31, 775 MB) became a length it allocated and zero-filled. The length guard read such
/// a header in the short form; it now uses the parser's rule.
#[test]
fn regression_dicom_file_2() {
    let dir = tempfile::tempdir().expect("tmp");
    let good = slice_bytes(dir.path());
    for (group, element, vr, what) in [
        (0x0002u16, 0x0002u16, b"UF", "meta element"),
        (0x0008, 0x0016, b"UK", "element"),
    ] {
        let mut header = tag(group, element);
        header.extend_from_slice(b"UI");
        let at = good
            .windows(6)
            .position(|w| w == header.as_slice())
            .expect("element");
        let mut bytes = good.clone();
        bytes[at + 4..at + 6].copy_from_slice(vr);
        let len = u32::from_le_bytes(bytes[at + 8..at + 12].try_into().expect("4 bytes"));
        let left = bytes.len() - (at + 12);
        assert_refused(
            dir.path(),
            &format!("vr_{group:04x}.dcm"),
            &bytes,
            &format!(
                "{what} ({group:04X},{element:04X}) claims {len} bytes but only {left} remain"
            ),
        );
    }
}

/// fuzz target `dicom_series`, finding 1 (13 s timeout, ~900 MB for a 1 KB slice).
///
/// PixelRepresentation (0028,0103) written with VR `SL` but its 2-byte value. dicom-parser reads
/// `len / 4` = 0 values, consumes nothing, yet advances its position by 2: the next header is
/// read 2 bytes early, as tag (0000,0028) with an unknown VR and the 4-byte length 0x362D0004
/// (908 MB) taken from the following element's bytes. The length guard now refuses a binary
/// value whose length is not a whole number of values.
#[test]
fn regression_dicom_series_1() {
    let dir = tempfile::tempdir().expect("tmp");
    let series = dir.path().join("series");
    write_series(&small(), &series, &DicomWriteOptions::default()).expect("write");
    let p = series.join("IM000002.dcm");
    let mut bytes = std::fs::read(&p).expect("read");
    let mut header = tag(0x0028, 0x0103);
    header.extend_from_slice(b"US");
    let at = bytes
        .windows(6)
        .position(|w| w == header.as_slice())
        .expect("PixelRepresentation");
    bytes[at + 4..at + 6].copy_from_slice(b"SL");
    std::fs::write(&p, &bytes).expect("write");
    let e = read_series(&series, &LoadOptions::default()).expect_err("refused");
    assert!(matches!(e, VolumeError::Malformed { .. }), "{e:?}");
    assert_eq!(
        e.to_string(),
        format!(
            "{}: corrupt DICOM: element (0028,0103) has 2 bytes, not a whole number of 4-byte \
             values",
            p.display()
        )
    );
}

/// fuzz target `dicom_file`, finding 3 (panic: `attempt to subtract with overflow` in the length
/// guard, debug build; in release the difference wrapped and the check passed).
///
/// A sequence item declaring 2 bytes holds a whole element header (8 bytes): after reading the
/// header the guard stood past the item's end and computed `end - pos`. It now refuses a header
/// that overruns its item.
#[test]
fn regression_dicom_file_3() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut sq = tag(0x0008, 0x1115);
    sq.extend_from_slice(b"SQ\0\0");
    sq.extend_from_slice(&10u32.to_le_bytes()); // item header (8) + 2
    sq.extend(tag(0xFFFE, 0xE000));
    sq.extend_from_slice(&2u32.to_le_bytes()); // the item claims 2 bytes...
    sq.extend(tag(0x0008, 0x1150)); // ...and holds a 10-byte element
    sq.extend_from_slice(b"UI");
    sq.extend_from_slice(&2u16.to_le_bytes());
    sq.extend_from_slice(b"1\0");
    let (bytes, at) = insert_before_pixel_data(&slice_bytes(dir.path()), &sq);
    let p = dir.path().join("short_item.dcm");
    std::fs::write(&p, &bytes).expect("write");
    let expected = format!(
        "{}: corrupt DICOM: element (0008,1150) header overruns its item at byte {}",
        p.display(),
        at + 28
    );
    let e = read_pixels(&p, &Limits::default()).expect_err("refused");
    assert_eq!(e.to_string(), expected);
}

/// fuzz target `dicom_file`, finding 4 (panic `index out of bounds` in dicom-transfer-syntax-
/// registry's RLE decoder): an RLE Lossless frame whose segments decode to fewer bytes than the
/// frame has pixels. The decoder's panic is now caught and reported as a corrupt frame.
#[test]
fn regression_dicom_file_4() {
    use dicom_core::value::PixelFragmentSequence;
    use dicom_core::{DataElement, VR};
    use dicom_dictionary_std::{tags, uids};
    let dir = tempfile::tempdir().expect("tmp");
    let src = dir.path().join("src");
    write_series(&small(), &src, &DicomWriteOptions::default()).expect("write");
    let p = src.join("IM000001.dcm");
    let mut obj = dicom_object::open_file(&p).expect("open");
    // RLE header: 2 segments (high and low bytes of 16-bit pixels) of one byte each.
    let mut fragment = vec![0u8; 64];
    fragment[0..4].copy_from_slice(&2u32.to_le_bytes());
    fragment[4..8].copy_from_slice(&64u32.to_le_bytes());
    fragment[8..12].copy_from_slice(&66u32.to_le_bytes());
    fragment.extend_from_slice(&[0x00, 0x05, 0x00, 0x07]);
    let fragments = PixelFragmentSequence::new(Vec::<u32>::new(), vec![fragment]);
    obj.put(DataElement::new(tags::PIXEL_DATA, VR::OB, fragments));
    obj.update_meta(|m| m.transfer_syntax = uids::RLE_LOSSLESS.to_string());
    obj.write_to_file(&p).expect("rewrite");
    let e = read_pixels(&p, &Limits::default()).expect_err("refused");
    assert_eq!(
        e.to_string(),
        format!(
            "{}: decoding frame 0 (RLE Lossless (1.2.840.10008.1.2.5)): the decoder failed",
            p.display()
        )
    );
}

/// One explicit-VR-little-endian element (short or long header form by VR).
fn element(group: u16, element: u16, vr: &[u8; 2], value: &[u8]) -> Vec<u8> {
    let mut out = tag(group, element);
    out.extend_from_slice(vr);
    if matches!(vr, b"OB" | b"OW" | b"SQ" | b"UN" | b"UT") {
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&(value.len() as u32).to_le_bytes());
    } else {
        out.extend_from_slice(&(value.len() as u16).to_le_bytes());
    }
    out.extend_from_slice(value);
    out
}

/// fuzz target `dicom_file`, finding 9 of docs/reliability.md (out-of-memory, malloc of
/// 2 374 864 269 bytes for an 18 KB file).
///
/// A deflated file (transfer syntax 1.2.840.10008.1.2.1.99) whose file meta group holds, inside
/// the span its group length (0002,0000) declares, an element of another group: (0003,0013), a
/// mutated (0002,0013). dicom-object reads the meta group by its length and inflates the data set
/// from the end of that span; the guard stopped at the first element outside group 0002 and
/// inflated from there, where the bytes `03 00` happen to be a complete, empty deflate stream.
/// The guard thus checked an empty data set while the parser read another one, with an OB value
/// claiming 0x8D8D8D8D bytes that it allocated. The guard now reads the meta group exactly as
/// dicom-object does, so both inflate the same bytes.
#[test]
fn regression_dicom_file_5() {
    use std::io::Write;
    let dir = tempfile::tempdir().expect("tmp");
    let mut meta = element(0x0002, 0x0001, b"OB", &[0, 1]);
    meta.extend(element(
        0x0002,
        0x0002,
        b"UI",
        b"1.2.840.10008.5.1.4.1.1.7\0",
    ));
    meta.extend(element(0x0002, 0x0003, b"UI", b"1.2.3.4\0"));
    meta.extend(element(0x0002, 0x0010, b"UI", b"1.2.840.10008.1.2.1.99"));
    meta.extend(element(0x0003, 0x0013, b"SH", b"DCTOOL100 "));
    let mut data_set = element(0x0008, 0x0016, b"UI", b"1.2.840.10008.5.1.4.1.1.7\0");
    data_set.extend(tag(0x0011, 0x1010));
    data_set.extend_from_slice(b"OB\0\0");
    data_set.extend_from_slice(&0x8D8D_8D8Du32.to_le_bytes());
    data_set.extend_from_slice(&[0u8; 64]);
    let mut deflate =
        flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    deflate.write_all(&data_set).expect("deflate");
    let mut bytes = vec![0u8; 128];
    bytes.extend_from_slice(b"DICM");
    bytes.extend(element(
        0x0002,
        0x0000,
        b"UL",
        &(meta.len() as u32).to_le_bytes(),
    ));
    bytes.extend(meta);
    bytes.extend(deflate.finish().expect("deflate"));
    assert_refused(
        dir.path(),
        "deflated.dcm",
        &bytes,
        "element (0011,1010) claims 2374864269 bytes but only 64 remain",
    );
}

/// The meta group must begin with its group length, as dicom-object requires: a file whose first
/// meta element is another one is refused by the guard with the reason, before any parsing.
#[test]
fn a_meta_group_without_its_group_length_is_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    let good = slice_bytes(dir.path());
    let mut bytes = good[..132].to_vec();
    // drop (0002,0000): 12 bytes (UL, short form: tag 4 + VR 2 + length 2 + value 4)
    assert_eq!(&good[132..138], &[0x02, 0x00, 0x00, 0x00, b'U', b'L']);
    bytes.extend_from_slice(&good[144..]);
    assert_refused(
        dir.path(),
        "no_group_length.dcm",
        &bytes,
        "the file meta group does not begin with its group length (0002,0000) of 4 bytes, but \
         with (0002,0001) of 2 bytes",
    );
}
