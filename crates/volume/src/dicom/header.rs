//! Reading the header of one DICOM file (everything before PixelData) into the few facts the
//! series assembly needs, including the per-frame geometry of enhanced multi-frame images.

use std::io::Read;
use std::path::{Path, PathBuf};

use dicom_core::Tag;
use dicom_dictionary_std::tags;
use dicom_object::file::ReadPreamble;
use dicom_object::{DefaultDicomObject, InMemDicomObject, OpenFileOptions};
use dicom_transfer_syntax_registry::{TransferSyntaxIndex, TransferSyntaxRegistry};

use crate::VolumeError;

/// Geometry and rescale of one frame (one z slice before sorting).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct FrameGeom {
    /// Frame number inside its file (0-based; 0 for single-frame files).
    pub frame: u32,
    /// ImagePositionPatient: centre of the first transmitted pixel, LPS mm.
    pub ipp: Option<[f64; 3]>,
    /// ImageOrientationPatient: row cosine (direction of increasing column), then column cosine.
    pub iop: Option<[f64; 6]>,
    /// PixelSpacing as stored: (between rows = y, between columns = x), mm.
    pub pixel_spacing: Option<[f64; 2]>,
    /// RescaleSlope.
    pub slope: f64,
    /// RescaleIntercept.
    pub intercept: f64,
}

/// What the series assembly needs to know about one image file.
#[derive(Debug, Clone)]
pub(crate) struct FileHeader {
    pub path: PathBuf,
    pub series_uid: String,
    pub study_uid: Option<String>,
    pub patient_id: Option<String>,
    pub modality: Option<String>,
    pub description: Option<String>,
    pub sop_uid: Option<String>,
    pub instance_number: Option<i32>,
    pub rows: u32,
    pub cols: u32,
    pub slice_thickness: Option<f64>,
    /// SOPClassUID.
    pub sop_class_uid: Option<String>,
    /// ImageType values, upper case.
    pub image_type: Vec<String>,
    /// FrameOfReferenceUID.
    pub frame_of_reference_uid: Option<String>,
    /// ConvolutionKernel as written (case kept), values joined by `\`.
    pub convolution_kernel: Option<String>,
    /// TransferSyntaxUID.
    pub transfer_syntax: String,
    /// Where the native (uncompressed) pixel bytes are in the file: offset and length.
    pub native_pixel_data: Option<(u64, u64)>,
    /// SamplesPerPixel (1 when absent).
    pub samples_per_pixel: u16,
    /// PhotometricInterpretation, trimmed ("" when absent).
    pub photometric: String,
    /// BitsAllocated (0 when absent).
    pub bits_allocated: u16,
    /// BitsStored (BitsAllocated when absent or larger).
    pub bits_stored: u16,
    /// PixelRepresentation is 1 (two's complement).
    pub signed: bool,
    /// NumberOfFrames (1 when absent).
    pub n_frames: u32,
    /// One entry per frame (only the first for a classic multi-frame image, see `unsupported`).
    pub frames: Vec<FrameGeom>,
    /// Set when the file is multi-frame without per-frame geometry (not readable as a stack).
    pub unsupported: Option<String>,
    /// How the data set is framed in the file.
    pub framing: Framing,
}

/// How a file holds its DICOM data set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    /// Part 10: 128-byte preamble, `DICM`, file meta group, data set.
    Preamble,
    /// Part 10 without the preamble: `DICM` at byte 0, then the file meta group (written by some
    /// older tools; pydicom and GDCM read it).
    NoPreamble,
    /// A bare data set without preamble or file meta group, in the transfer syntax given (implicit
    /// or explicit VR little endian, told apart by the first element), as pydicom reads it with
    /// `force=True`.
    Raw(&'static str),
}

/// Transfer syntax UID of implicit VR little endian.
pub(crate) const IMPLICIT_VR_LE: &str = "1.2.840.10008.1.2";
/// Transfer syntax UID of explicit VR little endian.
pub(crate) const EXPLICIT_VR_LE: &str = "1.2.840.10008.1.2.1";

/// Value representations, to tell an explicit-VR data set from an implicit one.
const VRS: [&[u8; 2]; 34] = [
    b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FD", b"FL", b"IS", b"LO", b"LT", b"OB",
    b"OD", b"OF", b"OL", b"OV", b"OW", b"PN", b"SH", b"SL", b"SQ", b"SS", b"ST", b"SV", b"TM",
    b"UC", b"UI", b"UL", b"UN", b"UR", b"US", b"UT", b"UV",
];

/// A bare data set: the file starts with an element of group 0008 (Identifying: SpecificCharacterSet,
/// ImageType, SOPClassUID, ... come first in every image), followed by a second element in
/// ascending order, both within the file. Returns its transfer syntax.
fn raw_dataset(head: &[u8], file_len: u64) -> Option<&'static str> {
    let u16_at = |i: usize| head.get(i..i + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
    let u32_at = |i: usize| {
        head.get(i..i + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let (group, element) = (u16_at(0)?, u16_at(2)?);
    if group != 0x0008 {
        return None;
    }
    let vr = head.get(4..6)?;
    let (ts, next) = if VRS.iter().any(|v| v.as_slice() == vr) {
        let long = matches!(
            vr,
            b"OB"
                | b"OD"
                | b"OF"
                | b"OL"
                | b"OV"
                | b"OW"
                | b"SQ"
                | b"UC"
                | b"UN"
                | b"UR"
                | b"UT"
                | b"SV"
                | b"UV"
        );
        if long {
            (EXPLICIT_VR_LE, 12 + u64::from(u32_at(8)?))
        } else {
            (EXPLICIT_VR_LE, 8 + u64::from(u16_at(6)?))
        }
    } else {
        (IMPLICIT_VR_LE, 8 + u64::from(u32_at(4)?))
    };
    if next + 8 > file_len {
        return None;
    }
    // The second element, when it lies in the bytes read: same or a later group, later tag.
    if let Ok(n) = usize::try_from(next) {
        if let (Some(g2), Some(e2)) = (u16_at(n), u16_at(n + 2)) {
            if (g2, e2) <= (group, element) {
                return None;
            }
        }
    }
    Some(ts)
}

type Obj = InMemDicomObject;

fn string(obj: &Obj, tag: Tag) -> Option<String> {
    let s = obj.get(tag)?.to_str().ok()?;
    let s = s.trim_matches(|c: char| c == '\0' || c.is_whitespace());
    (!s.is_empty()).then(|| s.to_string())
}

/// The values of a multi-valued string element, trimmed, empty ones dropped.
fn strings(obj: &Obj, tag: Tag) -> Vec<String> {
    let Some(e) = obj.get(tag) else {
        return Vec::new();
    };
    let Ok(v) = e.to_multi_str() else {
        return Vec::new();
    };
    v.iter()
        .map(|s| {
            s.trim_matches(|c: char| c == '\0' || c.is_whitespace())
                .to_string()
        })
        .filter(|s| !s.is_empty())
        .collect()
}

fn floats(obj: &Obj, tag: Tag) -> Option<Vec<f64>> {
    let v = obj.get(tag)?.to_multi_float64().ok()?;
    (!v.is_empty() && v.iter().all(|x| x.is_finite())).then_some(v)
}

fn float(obj: &Obj, tag: Tag) -> Option<f64> {
    floats(obj, tag).map(|v| v[0])
}

fn uint(obj: &Obj, tag: Tag) -> Option<u32> {
    obj.get(tag)?.to_int::<u32>().ok()
}

fn fixed<const N: usize>(v: Option<Vec<f64>>) -> Option<[f64; N]> {
    let v = v?;
    (v.len() >= N).then(|| std::array::from_fn(|i| v[i]))
}

/// The first item of sequence `seq` in `obj`.
fn item(obj: &Obj, seq: Tag) -> Option<&Obj> {
    obj.get(seq)?.items()?.first()
}

/// Attribute `attr` of functional group `seq`: from the per-frame item, else from the shared item.
fn group_floats(
    per_frame: Option<&Obj>,
    shared: Option<&Obj>,
    seq: Tag,
    attr: Tag,
) -> Option<Vec<f64>> {
    per_frame
        .and_then(|f| item(f, seq))
        .and_then(|g| floats(g, attr))
        .or_else(|| {
            shared
                .and_then(|s| item(s, seq))
                .and_then(|g| floats(g, attr))
        })
}

/// How `path` holds a DICOM data set: `DICM` at byte 128 (Part 10), at byte 0 (Part 10 without
/// preamble), or a bare data set ([`Framing::Raw`]); `None` when it does not look like DICOM.
pub(crate) fn sniff(path: &Path) -> Option<Framing> {
    let mut f = std::fs::File::open(path).ok()?;
    let file_len = f.metadata().ok()?.len();
    let mut head = Vec::with_capacity(512);
    f.by_ref().take(512).read_to_end(&mut head).ok()?;
    if head.get(128..132) == Some(b"DICM".as_slice()) {
        return Some(Framing::Preamble);
    }
    if head.get(0..4) == Some(b"DICM".as_slice()) {
        return Some(Framing::NoPreamble);
    }
    raw_dataset(&head, file_len).map(Framing::Raw)
}

/// The whole object of a file (pixel data included), whatever its [`Framing`].
pub(crate) fn open_object(
    path: &Path,
    framing: Framing,
) -> Result<DefaultDicomObject, VolumeError> {
    let bad = |e: String| VolumeError::malformed(path, format!("not a readable DICOM file: {e}"));
    match framing {
        Framing::Preamble => dicom_object::open_file(path).map_err(|e| bad(e.to_string())),
        Framing::NoPreamble => OpenFileOptions::new()
            .read_preamble(ReadPreamble::Never)
            .open_file(path)
            .map_err(|e| bad(e.to_string())),
        Framing::Raw(ts) => {
            let obj = read_raw(path, ts)?;
            let sop_class = string(&obj, tags::SOP_CLASS_UID).unwrap_or_default();
            let sop_instance = string(&obj, tags::SOP_INSTANCE_UID).unwrap_or_default();
            obj.with_meta(
                dicom_object::FileMetaTableBuilder::new()
                    .transfer_syntax(ts)
                    .media_storage_sop_class_uid(sop_class)
                    .media_storage_sop_instance_uid(sop_instance),
            )
            .map_err(|e| bad(e.to_string()))
        }
    }
}

/// A bare data set in transfer syntax `ts` (its lengths already checked by the guard).
fn read_raw(path: &Path, ts: &str) -> Result<Obj, VolumeError> {
    let ts = TransferSyntaxRegistry
        .get(ts)
        .ok_or_else(|| VolumeError::unsupported(path, format!("transfer syntax {ts}")))?;
    let file = std::fs::File::open(path).map_err(|e| VolumeError::io(path, e))?;
    InMemDicomObject::read_dataset_with_ts(std::io::BufReader::new(file), ts).map_err(|e| {
        VolumeError::malformed(
            path,
            format!("not a readable DICOM data set (no preamble or file meta group): {e}"),
        )
    })
}

/// Parse the header of `path` (which has passed [`sniff`]; otherwise read as Part 10).
///
/// `Ok(None)` for a DICOM file that is not an image (DICOMDIR, structured report, ...).
pub(crate) fn read_header(path: &Path) -> Result<Option<FileHeader>, VolumeError> {
    read_header_framed(path, sniff(path).unwrap_or(Framing::Preamble))
}

/// [`read_header`] of a file whose framing [`sniff`] already gave (so it is not sniffed again).
pub(crate) fn read_header_framed(
    path: &Path,
    framing: Framing,
) -> Result<Option<FileHeader>, VolumeError> {
    // No declared length may exceed what the file holds, before dicom-object allocates it.
    let layout = super::guard::check_lengths(path, framing, crate::Limits::default().max_bytes)?;
    let bad = |e: dicom_object::ReadError| {
        VolumeError::malformed(path, format!("not a readable DICOM file: {e}"))
    };
    let file;
    let raw;
    let obj: &Obj = match framing {
        Framing::Preamble | Framing::NoPreamble => {
            let preamble = if framing == Framing::Preamble {
                ReadPreamble::Always
            } else {
                ReadPreamble::Never
            };
            file = OpenFileOptions::new()
                .read_until(tags::PIXEL_DATA)
                .read_preamble(preamble)
                .open_file(path)
                .map_err(bad)?;
            &file
        }
        Framing::Raw(ts) => {
            raw = read_raw(path, ts)?;
            &raw
        }
    };
    let (Some(rows), Some(cols)) = (uint(obj, tags::ROWS), uint(obj, tags::COLUMNS)) else {
        tracing::debug!(path = %path.display(), "DICOM file without Rows/Columns skipped (not an image)");
        return Ok(None);
    };
    if rows == 0 || cols == 0 {
        return Err(VolumeError::malformed(
            path,
            format!("image of {rows} rows x {cols} columns"),
        ));
    }
    let series_uid = string(obj, tags::SERIES_INSTANCE_UID).unwrap_or_default();
    let n_frames = match string(obj, tags::NUMBER_OF_FRAMES) {
        None => 1,
        Some(s) => s.parse::<u32>().map_err(|_| {
            VolumeError::malformed(path, format!("NumberOfFrames is not a number: {s:?}"))
        })?,
    };
    if n_frames == 0 {
        return Err(VolumeError::malformed(path, "NumberOfFrames is 0"));
    }
    let slope = float(obj, tags::RESCALE_SLOPE);
    let intercept = float(obj, tags::RESCALE_INTERCEPT);
    let top = FrameGeom {
        frame: 0,
        ipp: fixed(floats(obj, tags::IMAGE_POSITION_PATIENT)),
        iop: fixed(floats(obj, tags::IMAGE_ORIENTATION_PATIENT)),
        pixel_spacing: fixed(floats(obj, tags::PIXEL_SPACING)),
        slope: slope.unwrap_or(1.0),
        intercept: intercept.unwrap_or(0.0),
    };
    let per_frame = obj
        .get(tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE)
        .and_then(|e| e.items());
    let shared = item(obj, tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE);
    let mut unsupported = None;
    let frames = if let Some(items) = per_frame {
        if items.len() != n_frames as usize {
            return Err(VolumeError::malformed(
                path,
                format!(
                    "PerFrameFunctionalGroupsSequence has {} items for NumberOfFrames {n_frames}",
                    items.len()
                ),
            ));
        }
        items
            .iter()
            .enumerate()
            .map(|(i, f)| {
                let g = |seq, attr| group_floats(Some(f), shared, seq, attr);
                let pvt = tags::PIXEL_VALUE_TRANSFORMATION_SEQUENCE;
                FrameGeom {
                    frame: i as u32,
                    ipp: fixed(g(
                        tags::PLANE_POSITION_SEQUENCE,
                        tags::IMAGE_POSITION_PATIENT,
                    )),
                    iop: fixed(g(
                        tags::PLANE_ORIENTATION_SEQUENCE,
                        tags::IMAGE_ORIENTATION_PATIENT,
                    ))
                    .or(top.iop),
                    pixel_spacing: fixed(g(tags::PIXEL_MEASURES_SEQUENCE, tags::PIXEL_SPACING))
                        .or(top.pixel_spacing),
                    slope: g(pvt, tags::RESCALE_SLOPE)
                        .map(|v| v[0])
                        .or(slope)
                        .unwrap_or(1.0),
                    intercept: g(pvt, tags::RESCALE_INTERCEPT)
                        .map(|v| v[0])
                        .or(intercept)
                        .unwrap_or(0.0),
                }
            })
            .collect()
    } else {
        if n_frames > 1 {
            unsupported = Some(format!(
                "multi-frame image ({n_frames} frames) without PerFrameFunctionalGroupsSequence: \
                 no per-frame position to build a volume from"
            ));
        }
        vec![top]
    };
    let instance_number = string(obj, tags::INSTANCE_NUMBER).and_then(|s| {
        s.parse::<i32>()
            .ok()
            .or_else(|| s.parse::<f64>().ok().map(|f| f as i32))
    });
    let bits_allocated = uint(obj, tags::BITS_ALLOCATED).unwrap_or(0) as u16;
    let bits_stored = match uint(obj, tags::BITS_STORED) {
        Some(b) if b > 0 && b <= u32::from(bits_allocated) => b as u16,
        _ => bits_allocated,
    };
    Ok(Some(FileHeader {
        framing,
        path: path.to_path_buf(),
        transfer_syntax: layout.transfer_syntax,
        native_pixel_data: layout.native_pixel_data,
        samples_per_pixel: uint(obj, tags::SAMPLES_PER_PIXEL).unwrap_or(1) as u16,
        photometric: string(obj, tags::PHOTOMETRIC_INTERPRETATION).unwrap_or_default(),
        bits_allocated,
        bits_stored,
        signed: uint(obj, tags::PIXEL_REPRESENTATION) == Some(1),
        series_uid,
        study_uid: string(obj, tags::STUDY_INSTANCE_UID),
        patient_id: string(obj, tags::PATIENT_ID),
        modality: string(obj, tags::MODALITY),
        description: string(obj, tags::SERIES_DESCRIPTION),
        sop_uid: string(obj, tags::SOP_INSTANCE_UID),
        instance_number,
        rows,
        cols,
        slice_thickness: float(obj, tags::SLICE_THICKNESS),
        sop_class_uid: string(obj, tags::SOP_CLASS_UID),
        image_type: strings(obj, tags::IMAGE_TYPE)
            .iter()
            .map(|t| t.to_ascii_uppercase())
            .collect(),
        frame_of_reference_uid: string(obj, tags::FRAME_OF_REFERENCE_UID),
        convolution_kernel: {
            let k = strings(obj, tags::CONVOLUTION_KERNEL);
            (!k.is_empty()).then(|| k.join("\\"))
        },
        n_frames,
        frames,
        unsupported,
    }))
}

/// What identifies a DICOM file that holds no image (see [`read_object_framed`]).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ObjectHeader {
    pub sop_class_uid: Option<String>,
    pub modality: Option<String>,
    pub series_uid: Option<String>,
    pub study_uid: Option<String>,
    pub patient_id: Option<String>,
    pub description: Option<String>,
}

/// The identifying attributes of a DICOM file that is not an image, framed as [`sniff`] found:
/// a DICOMDIR, a structured report, a presentation state, ... The SOP class comes from the data
/// set, else from the file meta group's MediaStorageSOPClassUID (a DICOMDIR has only the latter).
///
/// # Errors
/// [`VolumeError::Malformed`] when the header does not parse; [`VolumeError::Io`].
pub(crate) fn read_object_framed(
    path: &Path,
    framing: Framing,
) -> Result<ObjectHeader, VolumeError> {
    super::guard::check_lengths(path, framing, crate::Limits::default().max_bytes)?;
    let bad = |e: dicom_object::ReadError| {
        VolumeError::malformed(path, format!("not a readable DICOM file: {e}"))
    };
    let (obj, media_class) = match framing {
        Framing::Preamble | Framing::NoPreamble => {
            let preamble = if framing == Framing::Preamble {
                ReadPreamble::Always
            } else {
                ReadPreamble::Never
            };
            // Everything identifying lies in groups 0008-0020 (up to SeriesInstanceUID), before
            // any content (an SR's content tree, a presentation state's annotations).
            let file = OpenFileOptions::new()
                .read_until(tags::SERIES_NUMBER)
                .read_preamble(preamble)
                .open_file(path)
                .map_err(bad)?;
            let media = file
                .meta()
                .media_storage_sop_class_uid
                .trim_matches(|c: char| c == '\0' || c.is_whitespace())
                .to_string();
            (file.into_inner(), (!media.is_empty()).then_some(media))
        }
        Framing::Raw(ts) => (read_raw(path, ts)?, None),
    };
    Ok(ObjectHeader {
        sop_class_uid: string(&obj, tags::SOP_CLASS_UID).or(media_class),
        modality: string(&obj, tags::MODALITY),
        series_uid: string(&obj, tags::SERIES_INSTANCE_UID),
        study_uid: string(&obj, tags::STUDY_INSTANCE_UID),
        patient_id: string(&obj, tags::PATIENT_ID),
        description: string(&obj, tags::SERIES_DESCRIPTION),
    })
}
