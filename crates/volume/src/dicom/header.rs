//! Reading the header of one DICOM file (everything before PixelData) into the few facts the
//! series assembly needs, including the per-frame geometry of enhanced multi-frame images.

use std::io::Read;
use std::path::{Path, PathBuf};

use dicom_core::Tag;
use dicom_dictionary_std::tags;
use dicom_object::{InMemDicomObject, OpenFileOptions};

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
}

type Obj = InMemDicomObject;

fn string(obj: &Obj, tag: Tag) -> Option<String> {
    let s = obj.get(tag)?.to_str().ok()?;
    let s = s.trim_matches(|c: char| c == '\0' || c.is_whitespace());
    (!s.is_empty()).then(|| s.to_string())
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

/// True when the file has the DICOM Part 10 magic `DICM` at byte 128.
pub(crate) fn sniff(path: &Path) -> bool {
    let mut buf = [0u8; 132];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut buf))
        .map(|()| &buf[128..] == b"DICM")
        .unwrap_or(false)
}

/// Parse the header of `path` (which has passed [`sniff`]).
///
/// `Ok(None)` for a DICOM file that is not an image (DICOMDIR, structured report, ...).
pub(crate) fn read_header(path: &Path) -> Result<Option<FileHeader>, VolumeError> {
    // No declared length may exceed what the file holds, before dicom-object allocates it.
    let layout = super::guard::check_lengths(path, crate::Limits::default().max_bytes)?;
    let file = OpenFileOptions::new()
        .read_until(tags::PIXEL_DATA)
        .open_file(path)
        .map_err(|e| VolumeError::malformed(path, format!("not a readable DICOM file: {e}")))?;
    let obj: &Obj = &file;
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
        n_frames,
        frames,
        unsupported,
    }))
}
