//! Test helper: one Enhanced CT Image (PS3.3 A.38) holding a whole single-frame CT series, its
//! geometry in the Multi-frame Functional Groups (PS3.3 C.7.6.16), written with dicom-rs. The
//! frames are stored in reverse order along the slice normal, so that a frame's number and
//! its place in the stack differ and a reference by position index instead of frame number
//! shows.
//!
//! Shared by `crates/dicom-out/tests/objects.rs` and `crates/cli/tests/dicom_out_e2e.rs`.

use std::path::{Path, PathBuf};

use dicom_core::header::Header;
use dicom_core::value::DataSetSequence;
use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
use dicom_dictionary_std::{tags, uids};
use dicom_object::{FileMetaTableBuilder, InMemDicomObject, OpenFileOptions};

/// Attributes of a slice that become per-frame or shared functional groups (or go).
const PER_SLICE: &[Tag] = &[
    tags::SOP_INSTANCE_UID,
    tags::INSTANCE_NUMBER,
    tags::IMAGE_POSITION_PATIENT,
    tags::IMAGE_ORIENTATION_PATIENT,
    tags::PIXEL_SPACING,
    tags::SLICE_THICKNESS,
    tags::SLICE_LOCATION,
    tags::RESCALE_INTERCEPT,
    tags::RESCALE_SLOPE,
    tags::RESCALE_TYPE,
    tags::PIXEL_DATA,
];

fn text(obj: &InMemDicomObject, tag: Tag) -> Option<String> {
    let s = obj.element_opt(tag).ok()??.to_str().ok()?.to_string();
    let s = s.trim_matches(|c: char| c == '\0' || c.is_whitespace());
    (!s.is_empty()).then(|| s.to_string())
}

fn element(obj: &InMemDicomObject, tag: Tag) -> DataElement<InMemDicomObject> {
    obj.element(tag).expect("slice attribute").clone()
}

fn item(elements: Vec<DataElement<InMemDicomObject>>) -> InMemDicomObject {
    InMemDicomObject::from_element_iter(elements)
}

fn seq(tag: Tag, items: Vec<InMemDicomObject>) -> DataElement<InMemDicomObject> {
    DataElement::new(tag, VR::SQ, DataSetSequence::from(items))
}

/// Write the slices `files` (one single-frame series) as one Enhanced CT Image `out` with SOP
/// Instance UID `sop_uid`, in the same series, study and frame of reference. Returns `out`.
pub fn enhanced_from_series(files: &[PathBuf], out: &Path, sop_uid: &str) -> PathBuf {
    let mut slices: Vec<InMemDicomObject> = files
        .iter()
        .map(|p| {
            OpenFileOptions::new()
                .open_file(p)
                .expect("read slice")
                .into_inner()
        })
        .collect();
    let z = |o: &InMemDicomObject| {
        let iop = o
            .element(tags::IMAGE_ORIENTATION_PATIENT)
            .expect("IOP")
            .to_multi_float64()
            .expect("IOP");
        let ipp = o
            .element(tags::IMAGE_POSITION_PATIENT)
            .expect("IPP")
            .to_multi_float64()
            .expect("IPP");
        let n = [
            iop[1] * iop[5] - iop[2] * iop[4],
            iop[2] * iop[3] - iop[0] * iop[5],
            iop[0] * iop[4] - iop[1] * iop[3],
        ];
        ipp[0] * n[0] + ipp[1] * n[1] + ipp[2] * n[2]
    };
    // Reverse order along the normal: frame 1 is the last slice.
    slices.sort_by(|a, b| z(b).total_cmp(&z(a)));
    let first = &slices[0];
    let mut obj = InMemDicomObject::new_empty();
    for e in first.iter() {
        if !PER_SLICE.contains(&e.tag()) {
            obj.put(e.clone());
        }
    }
    obj.put(DataElement::new(
        tags::SOP_CLASS_UID,
        VR::UI,
        PrimitiveValue::from(uids::ENHANCED_CT_IMAGE_STORAGE),
    ));
    obj.put(DataElement::new(
        tags::SOP_INSTANCE_UID,
        VR::UI,
        PrimitiveValue::from(sop_uid),
    ));
    obj.put(DataElement::new(
        tags::INSTANCE_NUMBER,
        VR::IS,
        PrimitiveValue::from("1"),
    ));
    obj.put(DataElement::new(
        tags::NUMBER_OF_FRAMES,
        VR::IS,
        PrimitiveValue::from(slices.len().to_string()),
    ));
    let mut measures = vec![element(first, tags::PIXEL_SPACING)];
    if first
        .element_opt(tags::SLICE_THICKNESS)
        .ok()
        .flatten()
        .is_some()
    {
        measures.push(element(first, tags::SLICE_THICKNESS));
    }
    let shared = item(vec![
        seq(tags::PIXEL_MEASURES_SEQUENCE, vec![item(measures)]),
        seq(
            tags::PLANE_ORIENTATION_SEQUENCE,
            vec![item(vec![element(first, tags::IMAGE_ORIENTATION_PATIENT)])],
        ),
    ]);
    obj.put(seq(tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE, vec![shared]));
    let per_frame: Vec<InMemDicomObject> = slices
        .iter()
        .map(|s| {
            let mut rescale = vec![
                element(s, tags::RESCALE_INTERCEPT),
                element(s, tags::RESCALE_SLOPE),
            ];
            rescale.push(DataElement::new(
                tags::RESCALE_TYPE,
                VR::LO,
                PrimitiveValue::from(text(s, tags::RESCALE_TYPE).unwrap_or_else(|| "HU".into())),
            ));
            item(vec![
                seq(
                    tags::PLANE_POSITION_SEQUENCE,
                    vec![item(vec![element(s, tags::IMAGE_POSITION_PATIENT)])],
                ),
                seq(
                    tags::PIXEL_VALUE_TRANSFORMATION_SEQUENCE,
                    vec![item(rescale)],
                ),
            ])
        })
        .collect();
    obj.put(seq(tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE, per_frame));
    let pixels: Vec<u8> = slices
        .iter()
        .flat_map(|s| {
            s.element(tags::PIXEL_DATA)
                .expect("pixel data")
                .to_bytes()
                .expect("native pixel data")
                .into_owned()
        })
        .collect();
    obj.put(DataElement::new(
        tags::PIXEL_DATA,
        VR::OW,
        PrimitiveValue::U8(pixels.into()),
    ));
    std::fs::create_dir_all(out.parent().expect("parent")).expect("mkdir");
    obj.with_meta(FileMetaTableBuilder::new().transfer_syntax(uids::EXPLICIT_VR_LITTLE_ENDIAN))
        .expect("meta")
        .write_to_file(out)
        .expect("write enhanced CT");
    out.to_path_buf()
}
