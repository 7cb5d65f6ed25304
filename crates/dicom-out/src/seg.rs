//! The segmentation: a binary DICOM Segmentation with one segment per finding.

use std::collections::BTreeSet;

use dicom_core::value::PrimitiveValue;
use dicom_core::{Tag, VR};
use dicom_dictionary_std::{tags, uids};
use dicom_object::InMemDicomObject;

use crate::codes;
use crate::items::{code_item, ds_multi, image_ref, put, put_code, put_empty, put_seq, series_ref};
use crate::object::{base, put_frame_of_reference, Algorithm, DicomObject, Finding, Side};
use crate::source::{SourceFrame, SourceInstance};
use crate::stamp::Stamp;
use crate::{DicomOutError, SourceSeries};

/// Series Number of the segmentation's series.
pub const SEG_SERIES_NUMBER: i32 = 9902;

/// Diameter (mm) drawn for a finding that has none.
pub const DEFAULT_DIAMETER_MM: f64 = 6.0;

/// Orientations agreeing within this (unit vector components) are the same.
const ORIENTATION_TOLERANCE: f64 = 1e-4;

/// One frame: a segment on one source plane.
struct Frame {
    segment: u16,
    /// Index into the source planes ([`SourceSeries::frames`]).
    slice: usize,
    bits: Vec<bool>,
}

/// Build a binary Segmentation (PS3.3 A.51, C.8.20) of `findings` on the source series' slices.
///
/// The source planes are its single-frame slices, or the frames of a multi-frame image such as
/// one Enhanced CT Image (PS3.3 A.38) holding the whole series; a frame derived from one of
/// those cites it by SOP Instance UID and Referenced Frame Number (0008,1160) in its Derivation
/// Image Sequence, so a viewer puts it on the right frame.
///
/// Segment `k` (1-based, in the order of `findings`) is the ball of the finding's diameter
/// ([`DEFAULT_DIAMETER_MM`] when it has none) around its centre, sampled at the centres of the
/// source pixels; the nearest pixel of the nearest slice is always in it, so even a finding
/// smaller than a pixel is drawn. Only frames that hold a segment pixel are written (Dimension
/// Organization: Referenced Segment Number, then Image Position (Patient)), bit-packed
/// (Bits Allocated 1), each referencing its source slice (Derivation Image Sequence). Each
/// segment's Tracking UID is the finding's, as in the measurement report.
///
/// # Errors
/// [`DicomOutError::Series`] when the source planes are not one stack a segmentation can share
/// (images without position, orientation or pixel spacing, among them a multi-frame image
/// without per-frame functional groups; planes of another orientation, spacing or size), or it
/// has no FrameOfReferenceUID; [`DicomOutError::Invalid`] for a bad
/// finding, none, or more than 65535 of them; [`DicomOutError::Encode`].
pub fn segmentation(
    source: &SourceSeries,
    findings: &[Finding],
    algorithm: &Algorithm,
    stamp: &Stamp,
) -> Result<DicomObject, DicomOutError> {
    for f in findings {
        f.check()?;
    }
    if findings.is_empty() {
        return Err(DicomOutError::Invalid {
            what: "segmentation".into(),
            reason: "no finding to segment: a segmentation needs at least one segment".into(),
        });
    }
    if findings.len() > usize::from(u16::MAX) {
        return Err(DicomOutError::Invalid {
            what: "segmentation".into(),
            reason: format!(
                "{} findings; a segmentation holds at most 65535",
                findings.len()
            ),
        });
    }
    let (slices, first_image) = stack(source)?;
    let first = slices[0];
    let (rows, cols) = (first_image.rows, first_image.columns);
    let [row_mm, col_mm] = first.pixel_spacing_mm;

    let mut frames: Vec<Frame> = Vec::new();
    for (k, f) in findings.iter().enumerate() {
        let segment = u16::try_from(k + 1).unwrap_or(u16::MAX);
        let r = f
            .diameter_mm
            .filter(|d| *d > 0.0)
            .unwrap_or(DEFAULT_DIAMETER_MM)
            / 2.0;
        let nearest = slices
            .iter()
            .enumerate()
            .map(|(i, s)| (s.distance_mm(f.centre).abs(), i))
            .min_by(|a, b| a.0.total_cmp(&b.0))
            .map(|(_, i)| i);
        for (si, s) in slices.iter().enumerate() {
            let (d, (u, v)) = (s.distance_mm(f.centre), s.pixel_of(f.centre));
            let mut bits = vec![false; usize::from(rows) * usize::from(cols)];
            let mut any = false;
            if d.abs() <= r {
                let rho = (r * r - d * d).max(0.0).sqrt();
                let (du, dv) = (rho / col_mm, rho / row_mm);
                let c0 = (u - du).floor().max(0.0) as usize;
                let c1 =
                    ((u + du).ceil().max(0.0) as usize).min(usize::from(cols).saturating_sub(1));
                let r0 = (v - dv).floor().max(0.0) as usize;
                let r1 =
                    ((v + dv).ceil().max(0.0) as usize).min(usize::from(rows).saturating_sub(1));
                for j in r0..=r1 {
                    for i in c0..=c1 {
                        let (x, y) = ((i as f64 - u) * col_mm, (j as f64 - v) * row_mm);
                        if x * x + y * y <= rho * rho {
                            bits[j * usize::from(cols) + i] = true;
                            any = true;
                        }
                    }
                }
            }
            if !any && Some(si) == nearest {
                let (i, j) = (u.round(), v.round());
                if i >= 0.0 && j >= 0.0 && i < f64::from(cols) && j < f64::from(rows) {
                    bits[j as usize * usize::from(cols) + i as usize] = true;
                    any = true;
                }
            }
            if any {
                frames.push(Frame {
                    segment,
                    slice: si,
                    bits,
                });
            }
        }
        if !frames.iter().any(|fr| fr.segment == segment) {
            return Err(DicomOutError::Invalid {
                what: format!("finding {}", f.rank),
                reason: format!(
                    "centre ({:.3}, {:.3}, {:.3}) mm is outside series {}",
                    f.centre.x_mm,
                    f.centre.y_mm,
                    f.centre.z_mm,
                    source.series_uid()
                ),
            });
        }
    }

    let mut o = base(
        source,
        algorithm,
        stamp,
        uids::SEGMENTATION_STORAGE,
        "SEG",
        SEG_SERIES_NUMBER,
        "Speck nodule segmentation",
    )?;
    put_frame_of_reference(&mut o, source);
    // Segmentation Image Module (C.8.20.2) with the Content Identification Macro.
    put(
        &mut o,
        tags::IMAGE_TYPE,
        VR::CS,
        PrimitiveValue::Strs(["DERIVED", "PRIMARY"].map(String::from).into()),
    );
    put(&mut o, tags::CONTENT_LABEL, VR::CS, "SPECK_NODULES");
    put(
        &mut o,
        tags::CONTENT_DESCRIPTION,
        VR::LO,
        "Nodules found by Speck",
    );
    put_empty(&mut o, tags::CONTENT_CREATOR_NAME, VR::PN);
    put(
        &mut o,
        tags::SAMPLES_PER_PIXEL,
        VR::US,
        PrimitiveValue::from(1u16),
    );
    put(
        &mut o,
        tags::PHOTOMETRIC_INTERPRETATION,
        VR::CS,
        "MONOCHROME2",
    );
    put(
        &mut o,
        tags::PIXEL_REPRESENTATION,
        VR::US,
        PrimitiveValue::from(0u16),
    );
    put(
        &mut o,
        tags::BITS_ALLOCATED,
        VR::US,
        PrimitiveValue::from(1u16),
    );
    put(
        &mut o,
        tags::BITS_STORED,
        VR::US,
        PrimitiveValue::from(1u16),
    );
    put(&mut o, tags::HIGH_BIT, VR::US, PrimitiveValue::from(0u16));
    put(&mut o, tags::LOSSY_IMAGE_COMPRESSION, VR::CS, "00");
    put(&mut o, tags::SEGMENTATION_TYPE, VR::CS, "BINARY");
    put(&mut o, tags::SEGMENTS_OVERLAP, VR::CS, "UNDEFINED");
    put(&mut o, tags::ROWS, VR::US, PrimitiveValue::from(rows));
    put(&mut o, tags::COLUMNS, VR::US, PrimitiveValue::from(cols));
    let segments: Vec<InMemDicomObject> = findings
        .iter()
        .enumerate()
        .map(|(k, f)| segment_item(u16::try_from(k + 1).unwrap_or(u16::MAX), f, algorithm))
        .collect();
    put_seq(&mut o, tags::SEGMENT_SEQUENCE, segments);

    // Multi-frame Functional Groups (C.7.6.16) and Multi-frame Dimension (C.7.6.17) modules.
    let mut measures = InMemDicomObject::new_empty();
    put(
        &mut measures,
        tags::PIXEL_SPACING,
        VR::DS,
        ds_multi(&[row_mm, col_mm]),
    );
    let thickness = first
        .slice_thickness_mm
        .or_else(|| spacing_between(&slices))
        .unwrap_or(1.0);
    put(
        &mut measures,
        tags::SLICE_THICKNESS,
        VR::DS,
        ds_multi(&[thickness]),
    );
    if let Some(s) = spacing_between(&slices) {
        put(
            &mut measures,
            tags::SPACING_BETWEEN_SLICES,
            VR::DS,
            ds_multi(&[s]),
        );
    }
    let mut orientation = InMemDicomObject::new_empty();
    put(
        &mut orientation,
        tags::IMAGE_ORIENTATION_PATIENT,
        VR::DS,
        ds_multi(&first.orientation),
    );
    let mut shared = InMemDicomObject::new_empty();
    put_seq(&mut shared, tags::PIXEL_MEASURES_SEQUENCE, vec![measures]);
    put_seq(
        &mut shared,
        tags::PLANE_ORIENTATION_SEQUENCE,
        vec![orientation],
    );
    put_seq(
        &mut o,
        tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE,
        vec![shared],
    );

    let image = |fr: &Frame| {
        let plane = slices[fr.slice];
        source.instances().get(plane.instance).map(|i| (plane, i))
    };
    let per_frame: Vec<InMemDicomObject> = frames
        .iter()
        .filter_map(|fr| image(fr).map(|(plane, i)| frame_item(fr, plane, i)))
        .collect();
    put_seq(
        &mut o,
        tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE,
        per_frame,
    );
    put(
        &mut o,
        tags::NUMBER_OF_FRAMES,
        VR::IS,
        frames.len().to_string(),
    );

    let organization = stamp.uid();
    let mut org = InMemDicomObject::new_empty();
    put(
        &mut org,
        tags::DIMENSION_ORGANIZATION_UID,
        VR::UI,
        organization.as_str(),
    );
    put_seq(&mut o, tags::DIMENSION_ORGANIZATION_SEQUENCE, vec![org]);
    let dim = |index: Tag, group: Tag, label: &str| {
        let mut d = InMemDicomObject::new_empty();
        put(
            &mut d,
            tags::DIMENSION_ORGANIZATION_UID,
            VR::UI,
            organization.as_str(),
        );
        put(
            &mut d,
            tags::DIMENSION_INDEX_POINTER,
            VR::AT,
            PrimitiveValue::Tags(vec![index].into()),
        );
        put(
            &mut d,
            tags::FUNCTIONAL_GROUP_POINTER,
            VR::AT,
            PrimitiveValue::Tags(vec![group].into()),
        );
        put(&mut d, tags::DIMENSION_DESCRIPTION_LABEL, VR::LO, label);
        d
    };
    put_seq(
        &mut o,
        tags::DIMENSION_INDEX_SEQUENCE,
        vec![
            dim(
                tags::REFERENCED_SEGMENT_NUMBER,
                tags::SEGMENT_IDENTIFICATION_SEQUENCE,
                "ReferencedSegmentNumber",
            ),
            dim(
                tags::IMAGE_POSITION_PATIENT,
                tags::PLANE_POSITION_SEQUENCE,
                "ImagePositionPatient",
            ),
        ],
    );

    // Common Instance Reference Module (C.12.2): the images the frames were derived from.
    let used: BTreeSet<usize> = frames.iter().map(|f| slices[f.slice].instance).collect();
    let series = series_ref(
        source.series_uid(),
        tags::REFERENCED_INSTANCE_SEQUENCE,
        used.iter().filter_map(|&i| source.instances().get(i)),
    );
    put_seq(&mut o, tags::REFERENCED_SERIES_SEQUENCE, vec![series]);

    put(
        &mut o,
        tags::PIXEL_DATA,
        VR::OB,
        PrimitiveValue::U8(pack(&frames).into()),
    );
    DicomObject::new(o, "segmentation")
}

/// The source planes, checked to form one stack of equal orientation, spacing and size, with
/// the image of the first one (for Rows and Columns).
fn stack(source: &SourceSeries) -> Result<(Vec<&SourceFrame>, &SourceInstance), DicomOutError> {
    let err = |reason: String| DicomOutError::Series {
        series_uid: source.series_uid().to_string(),
        reason,
    };
    let all = source.instances();
    let planes = source.frames();
    // Every image must contribute its planes: one without geometry cannot be drawn on.
    if let Some((_, m)) = all
        .iter()
        .enumerate()
        .find(|(k, _)| !planes.iter().any(|p| p.instance == *k))
    {
        let why = if m.frames > 1 {
            format!(
                "is a multi-frame image ({} frames) without per-frame Plane Position in its \
                 functional groups",
                m.frames
            )
        } else {
            "has no ImagePositionPatient, ImageOrientationPatient or PixelSpacing".to_string()
        };
        return Err(err(format!("{} {why}", m.path.display())));
    }
    let Some((first, first_image)) = planes.first().and_then(|p| Some((p, all.get(p.instance)?)))
    else {
        return Err(err("no instance".into()));
    };
    for p in planes {
        let Some(i) = all.get(p.instance) else {
            return Err(err("a plane of no image".into()));
        };
        let same_o = p
            .orientation
            .iter()
            .zip(first.orientation.iter())
            .all(|(x, y)| (x - y).abs() <= ORIENTATION_TOLERANCE);
        let same_s = (p.pixel_spacing_mm[0] - first.pixel_spacing_mm[0]).abs() <= 1e-6
            && (p.pixel_spacing_mm[1] - first.pixel_spacing_mm[1]).abs() <= 1e-6;
        if !same_o || !same_s || i.rows != first_image.rows || i.columns != first_image.columns {
            return Err(err(format!(
                "{}{} differs from {} in orientation, pixel spacing or size; one segmentation \
                 cannot share their geometry",
                i.path.display(),
                p.frame_number
                    .map(|n| format!(" frame {n}"))
                    .unwrap_or_default(),
                first_image.path.display()
            )));
        }
    }
    if first_image.rows == 0 || first_image.columns == 0 {
        return Err(err(format!(
            "{} has no Rows/Columns",
            first_image.path.display()
        )));
    }
    Ok((planes.iter().collect(), first_image))
}

/// Mean distance between consecutive plane positions along the normal, mm.
fn spacing_between(slices: &[&SourceFrame]) -> Option<f64> {
    let n = slices.first()?.normal();
    let pos: Vec<f64> = slices
        .iter()
        .map(|s| {
            let p = s.position_mm;
            p[0] * n[0] + p[1] * n[1] + p[2] * n[2]
        })
        .collect();
    if pos.len() < 2 {
        return None;
    }
    let s = (pos[pos.len() - 1] - pos[0]) / (pos.len() - 1) as f64;
    (s.is_finite() && s > 0.0).then_some(s)
}

fn segment_item(number: u16, f: &Finding, algorithm: &Algorithm) -> InMemDicomObject {
    let mut s = InMemDicomObject::new_empty();
    put(
        &mut s,
        tags::SEGMENT_NUMBER,
        VR::US,
        PrimitiveValue::from(number),
    );
    put(&mut s, tags::SEGMENT_LABEL, VR::LO, f.label());
    put(&mut s, tags::SEGMENT_ALGORITHM_TYPE, VR::CS, "AUTOMATIC");
    put(
        &mut s,
        tags::SEGMENT_ALGORITHM_NAME,
        VR::LO,
        algorithm.name.as_str(),
    );
    put_code(
        &mut s,
        tags::SEGMENTED_PROPERTY_CATEGORY_CODE_SEQUENCE,
        codes::MORPHOLOGICALLY_ABNORMAL_STRUCTURE,
    );
    put_code(
        &mut s,
        tags::SEGMENTED_PROPERTY_TYPE_CODE_SEQUENCE,
        codes::NODULE,
    );
    let mut lung = code_item(codes::LUNG);
    if let Some(side) = f.side {
        let c = match side {
            Side::Left => codes::LEFT,
            Side::Right => codes::RIGHT,
        };
        put_seq(
            &mut lung,
            tags::ANATOMIC_REGION_MODIFIER_SEQUENCE,
            vec![code_item(c)],
        );
    }
    put_seq(&mut s, tags::ANATOMIC_REGION_SEQUENCE, vec![lung]);
    put(&mut s, tags::TRACKING_ID, VR::UT, f.label());
    put(&mut s, tags::TRACKING_UID, VR::UI, f.tracking_uid.as_str());
    s
}

fn frame_item(fr: &Frame, plane: &SourceFrame, image: &SourceInstance) -> InMemDicomObject {
    let mut src = image_ref(
        &image.sop_class_uid,
        &image.sop_instance_uid,
        plane.frame_number,
    );
    put_code(
        &mut src,
        tags::PURPOSE_OF_REFERENCE_CODE_SEQUENCE,
        codes::SOURCE_IMAGE_FOR_PROCESSING,
    );
    let mut derivation = InMemDicomObject::new_empty();
    put_seq(&mut derivation, tags::SOURCE_IMAGE_SEQUENCE, vec![src]);
    put_code(
        &mut derivation,
        tags::DERIVATION_CODE_SEQUENCE,
        codes::SEGMENTATION_DERIVATION,
    );
    let mut content = InMemDicomObject::new_empty();
    let slice_index = u32::try_from(fr.slice + 1).unwrap_or(u32::MAX);
    put(
        &mut content,
        tags::DIMENSION_INDEX_VALUES,
        VR::UL,
        PrimitiveValue::U32([u32::from(fr.segment), slice_index].into()),
    );
    let mut position = InMemDicomObject::new_empty();
    put(
        &mut position,
        tags::IMAGE_POSITION_PATIENT,
        VR::DS,
        ds_multi(&plane.position_mm),
    );
    let mut ident = InMemDicomObject::new_empty();
    put(
        &mut ident,
        tags::REFERENCED_SEGMENT_NUMBER,
        VR::US,
        PrimitiveValue::from(fr.segment),
    );
    let mut g = InMemDicomObject::new_empty();
    put_seq(&mut g, tags::DERIVATION_IMAGE_SEQUENCE, vec![derivation]);
    put_seq(&mut g, tags::FRAME_CONTENT_SEQUENCE, vec![content]);
    put_seq(&mut g, tags::PLANE_POSITION_SEQUENCE, vec![position]);
    put_seq(&mut g, tags::SEGMENT_IDENTIFICATION_SEQUENCE, vec![ident]);
    g
}

/// The frames' bits one after the other, eight to a byte, first pixel in the lowest bit
/// (PS3.5 §8.1.1, Bits Allocated 1), padded to an even length.
fn pack(frames: &[Frame]) -> Vec<u8> {
    let total: usize = frames.iter().map(|f| f.bits.len()).sum();
    let mut out = vec![0u8; total.div_ceil(8)];
    let mut k = 0usize;
    for f in frames {
        for &b in &f.bits {
            if b {
                out[k / 8] |= 1 << (k % 8);
            }
            k += 1;
        }
    }
    if out.len() % 2 == 1 {
        out.push(0);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_pack_across_frames_lowest_bit_first() {
        let frames = vec![
            Frame {
                segment: 1,
                slice: 0,
                bits: vec![true, false, false],
            },
            Frame {
                segment: 1,
                slice: 1,
                bits: vec![false, true, true],
            },
        ];
        // Bits 0, 4, 5: 0b0011_0001.
        assert_eq!(pack(&frames), vec![0b0011_0001, 0]);
        assert!(pack(&[]).is_empty());
    }
}
