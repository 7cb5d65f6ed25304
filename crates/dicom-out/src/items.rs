//! Building blocks: code sequences, SR content items (PS3.3 C.17.3) and decimal strings.

use dicom_core::value::{DataSetSequence, PrimitiveValue};
use dicom_core::{DataElement, Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;

use crate::codes::Code;

/// An element holding one value.
pub(crate) fn put(obj: &mut InMemDicomObject, tag: Tag, vr: VR, value: impl Into<PrimitiveValue>) {
    obj.put(DataElement::new(tag, vr, value.into()));
}

/// A sequence element holding `items` (possibly none: an empty type 2 sequence).
pub(crate) fn put_seq(obj: &mut InMemDicomObject, tag: Tag, items: Vec<InMemDicomObject>) {
    obj.put(DataElement::new(tag, VR::SQ, DataSetSequence::from(items)));
}

/// An empty element (a type 2 attribute with no value).
pub(crate) fn put_empty(obj: &mut InMemDicomObject, tag: Tag, vr: VR) {
    obj.put(DataElement::new(tag, vr, PrimitiveValue::Empty));
}

/// A decimal string (VR DS): the rule lives in `speck_volume`.
pub(crate) use speck_volume::dicom::decimal_string as ds;

/// Several decimal strings (one multi-valued DS).
pub(crate) fn ds_multi(values: &[f64]) -> PrimitiveValue {
    PrimitiveValue::Strs(values.iter().map(|&v| ds(v)).collect())
}

/// One item of a code sequence (Code Sequence Macro, PS3.3 Table 8.8-1).
pub(crate) fn code_item(c: Code) -> InMemDicomObject {
    let mut o = InMemDicomObject::new_empty();
    put(&mut o, tags::CODE_VALUE, VR::SH, c.value);
    put(&mut o, tags::CODING_SCHEME_DESIGNATOR, VR::SH, c.scheme);
    put(&mut o, tags::CODE_MEANING, VR::LO, c.meaning);
    o
}

/// A code sequence holding `c`.
pub(crate) fn put_code(obj: &mut InMemDicomObject, tag: Tag, c: Code) {
    put_seq(obj, tag, vec![code_item(c)]);
}

/// SR relationship types (PS3.3 C.17.3.2.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rel {
    Contains,
    HasObsContext,
    HasConceptMod,
    InferredFrom,
}

impl Rel {
    fn as_str(self) -> &'static str {
        match self {
            Rel::Contains => "CONTAINS",
            Rel::HasObsContext => "HAS OBS CONTEXT",
            Rel::HasConceptMod => "HAS CONCEPT MOD",
            Rel::InferredFrom => "INFERRED FROM",
        }
    }
}

/// A content item with its relationship, value type and concept name, and children when any.
fn item(
    rel: Rel,
    value_type: &str,
    name: Code,
    children: Vec<InMemDicomObject>,
) -> InMemDicomObject {
    let mut o = InMemDicomObject::new_empty();
    put(&mut o, tags::RELATIONSHIP_TYPE, VR::CS, rel.as_str());
    put(&mut o, tags::VALUE_TYPE, VR::CS, value_type);
    put_code(&mut o, tags::CONCEPT_NAME_CODE_SEQUENCE, name);
    if !children.is_empty() {
        put_seq(&mut o, tags::CONTENT_SEQUENCE, children);
    }
    o
}

/// The `ContentTemplateSequence` naming DCMR template `tid`.
pub(crate) fn put_template(obj: &mut InMemDicomObject, tid: &str) {
    let mut t = InMemDicomObject::new_empty();
    put(&mut t, tags::MAPPING_RESOURCE, VR::CS, "DCMR");
    put(&mut t, tags::TEMPLATE_IDENTIFIER, VR::CS, tid);
    put_seq(obj, tags::CONTENT_TEMPLATE_SEQUENCE, vec![t]);
}

/// A CONTAINER (continuity SEPARATE), optionally naming its template.
pub(crate) fn container(
    rel: Rel,
    name: Code,
    template: Option<&str>,
    children: Vec<InMemDicomObject>,
) -> InMemDicomObject {
    let mut o = item(rel, "CONTAINER", name, children);
    put(&mut o, tags::CONTINUITY_OF_CONTENT, VR::CS, "SEPARATE");
    if let Some(t) = template {
        put_template(&mut o, t);
    }
    o
}

/// A CODE item.
pub(crate) fn code(
    rel: Rel,
    name: Code,
    value: Code,
    children: Vec<InMemDicomObject>,
) -> InMemDicomObject {
    let mut o = item(rel, "CODE", name, children);
    put_code(&mut o, tags::CONCEPT_CODE_SEQUENCE, value);
    o
}

/// A TEXT item.
pub(crate) fn text(rel: Rel, name: Code, value: &str) -> InMemDicomObject {
    let mut o = item(rel, "TEXT", name, Vec::new());
    put(&mut o, tags::TEXT_VALUE, VR::UT, value);
    o
}

/// A UIDREF item.
pub(crate) fn uidref(rel: Rel, name: Code, uid: &str) -> InMemDicomObject {
    let mut o = item(rel, "UIDREF", name, Vec::new());
    put(&mut o, tags::UID, VR::UI, uid);
    o
}

/// A NUM item: `value` in `unit`, as a decimal string and (exactly) as a 64-bit float.
pub(crate) fn num(
    rel: Rel,
    name: Code,
    value: f64,
    unit: Code,
    children: Vec<InMemDicomObject>,
) -> InMemDicomObject {
    let mut o = item(rel, "NUM", name, children);
    let mut mv = InMemDicomObject::new_empty();
    put(&mut mv, tags::NUMERIC_VALUE, VR::DS, ds(value));
    put(
        &mut mv,
        tags::FLOATING_POINT_VALUE,
        VR::FD,
        PrimitiveValue::from(value),
    );
    put_code(&mut mv, tags::MEASUREMENT_UNITS_CODE_SEQUENCE, unit);
    put_seq(&mut o, tags::MEASURED_VALUE_SEQUENCE, vec![mv]);
    o
}

/// A SCOORD3D POINT at `p` (LPS mm, x y z) in frame of reference `frame_uid`.
pub(crate) fn scoord3d_point(
    rel: Rel,
    name: Code,
    p: [f64; 3],
    frame_uid: &str,
) -> InMemDicomObject {
    let mut o = item(rel, "SCOORD3D", name, Vec::new());
    put(&mut o, tags::GRAPHIC_TYPE, VR::CS, "POINT");
    // Graphic Data is FL: 32-bit floats, about 8 micrometres of precision at 100 mm.
    let data: Vec<f32> = p.iter().map(|&v| v as f32).collect();
    put(
        &mut o,
        tags::GRAPHIC_DATA,
        VR::FL,
        PrimitiveValue::F32(data.into()),
    );
    put(
        &mut o,
        tags::REFERENCED_FRAME_OF_REFERENCE_UID,
        VR::UI,
        frame_uid,
    );
    o
}

/// A Referenced SOP Sequence item (SOP Instance Reference Macro, PS3.3 Table 10-11).
pub(crate) fn sop_ref(class_uid: &str, instance_uid: &str) -> InMemDicomObject {
    let mut r = InMemDicomObject::new_empty();
    put(&mut r, tags::REFERENCED_SOP_CLASS_UID, VR::UI, class_uid);
    put(
        &mut r,
        tags::REFERENCED_SOP_INSTANCE_UID,
        VR::UI,
        instance_uid,
    );
    r
}

/// A Referenced Series Sequence item: the source series' UID and, in the sequence `refs_tag`
/// (Referenced SOP Sequence for the SR's evidence, Referenced Instance Sequence for the SEG's
/// Common Instance Reference Module, PS3.3 C.12.2), one [`sop_ref`] per cited instance.
pub(crate) fn series_ref<'a>(
    series_uid: &str,
    refs_tag: Tag,
    instances: impl Iterator<Item = &'a crate::SourceInstance>,
) -> InMemDicomObject {
    let mut series = InMemDicomObject::new_empty();
    put(&mut series, tags::SERIES_INSTANCE_UID, VR::UI, series_uid);
    put_seq(
        &mut series,
        refs_tag,
        instances
            .map(|i| sop_ref(&i.sop_class_uid, &i.sop_instance_uid))
            .collect(),
    );
    series
}

/// A Referenced SOP Sequence item citing one image, and one frame of it when `frame` is given
/// (Image SOP Instance Reference Macro, PS3.3 Table 10-3: Referenced Frame Number (0008,1160)
/// is required when the image is multi-frame and the reference is to some of its frames).
pub(crate) fn image_ref(
    class_uid: &str,
    instance_uid: &str,
    frame: Option<u32>,
) -> InMemDicomObject {
    let mut r = sop_ref(class_uid, instance_uid);
    if let Some(n) = frame {
        put(&mut r, tags::REFERENCED_FRAME_NUMBER, VR::IS, n.to_string());
    }
    r
}

/// An IMAGE item referencing one instance (one frame of it when `frame` is given).
pub(crate) fn image(
    rel: Rel,
    name: Code,
    class_uid: &str,
    instance_uid: &str,
    frame: Option<u32>,
) -> InMemDicomObject {
    let mut o = item(rel, "IMAGE", name, Vec::new());
    put_seq(
        &mut o,
        tags::REFERENCED_SOP_SEQUENCE,
        vec![image_ref(class_uid, instance_uid, frame)],
    );
    o
}
