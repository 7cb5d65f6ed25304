//! The measurement report: a Comprehensive 3D SR document following TID 1500.

use dicom_core::VR;
use dicom_dictionary_std::{tags, uids};
use dicom_object::InMemDicomObject;

use crate::codes::{self, Code};
use crate::items::{self, put, put_code, put_seq, put_template, series_ref, Rel};
use crate::object::{base, Algorithm, DicomObject, Finding, Side};
use crate::stamp::{name_uid, Stamp};
use crate::{DicomOutError, SourceSeries};

/// Series Number of the report's series.
pub const SR_SERIES_NUMBER: i32 = 9901;

/// The words of a report with no finding (a TEXT item "Finding" under Qualitative Evaluations).
pub const NO_FINDING_TEXT: &str = "No lung nodule at or above Speck's operating point";

/// Build the TID 1500 measurement report of `findings` (in the order given) on `source`.
///
/// The content tree (PS3.16 TID 1500, with TID 1204, 1001/1004, 1410, 4019, 1419/300):
///
/// ```text
/// CONTAINER Imaging Measurement Report (126000, DCM)              TID 1500
///   HAS CONCEPT MOD  CODE Language of Content Item and Descendants = English (United States)
///   HAS OBS CONTEXT  CODE Observer Type = Device; UIDREF Device Observer UID;
///                    TEXT Device Observer Name / Manufacturer / Model Name
///   HAS CONCEPT MOD  CODE Procedure reported = CT unspecified body region (25045-6, LN)
///   CONTAINS CONTAINER Imaging Measurements (126010, DCM)             when there are findings
///     CONTAINS CONTAINER Measurement Group (125007, DCM)           TID 1410, one per finding
///       HAS OBS CONTEXT  TEXT Tracking Identifier = "Nodule <rank>"
///       HAS OBS CONTEXT  UIDREF Tracking Unique Identifier
///       CONTAINS         CODE Finding = Nodule (27925004, SCT)
///       HAS CONCEPT MOD  CODE Finding Site = Lung (39607008, SCT)
///                          HAS CONCEPT MOD CODE Laterality = Right | Left   (when known)
///       HAS CONCEPT MOD  TEXT Algorithm Name / Algorithm Version / Algorithm Parameters
///       CONTAINS         SCOORD3D Image Region: POINT (x, y, z) in the series' frame of reference
///       CONTAINS         NUM Diameter (mm), NUM Volume (mm3), NUM Certainty of Finding (%)
///                          INFERRED FROM IMAGE Source of Measurement = the nearest source slice
///                          (with its Referenced Frame Number when it is a frame of a multi-frame
///                          image, e.g. Enhanced CT)
/// ```
///
/// The evidence (Current Requested Procedure Evidence Sequence) lists every instance of the
/// source series: the detector used them all.
///
/// **No finding** gives a report too, so that every scanned series has one in the PACS. It has
/// no Imaging Measurements container (a container without children would have to go without
/// its Content Sequence, and highdicom cannot read that) but a Qualitative Evaluations one
/// (TID 1500 row 12), saying it with a code and in words:
///
/// ```text
///   CONTAINS CONTAINER Qualitative Evaluations (C0034375, UMLS)
///     CONTAINS CODE Nodule (27925004, SCT) = Absent (272519000, SCT)
///     CONTAINS TEXT Finding (121071, DCM) = "No lung nodule at or above Speck's operating point"
/// ```
///
/// DCMTK's TID 1500 implementation (`TID1500_MeasurementReport::isValid`) accepts a report with
/// either container, dciodvfy finds no error, and highdicom reads it as a report with no
/// measurement groups.
///
/// # Errors
/// [`DicomOutError::Invalid`] for a finding with a non-finite centre or a probability outside
/// `[0, 1]`; [`DicomOutError::Series`] when the source has no FrameOfReferenceUID;
/// [`DicomOutError::Encode`] when dicom-rs refuses the object.
pub fn measurement_report(
    source: &SourceSeries,
    findings: &[Finding],
    algorithm: &Algorithm,
    stamp: &Stamp,
) -> Result<DicomObject, DicomOutError> {
    for f in findings {
        f.check()?;
    }
    let mut o = base(
        source,
        algorithm,
        stamp,
        uids::COMPREHENSIVE3_DSR_STORAGE,
        "SR",
        SR_SERIES_NUMBER,
        "Speck nodule report",
    )?;
    let frame_uid = source
        .frame_of_reference_uid()
        .unwrap_or_default()
        .to_string();

    // SR Document General Module (PS3.3 C.17.2).
    put(&mut o, tags::COMPLETION_FLAG, VR::CS, "COMPLETE");
    put(&mut o, tags::VERIFICATION_FLAG, VR::CS, "UNVERIFIED");
    put(&mut o, tags::PRELIMINARY_FLAG, VR::CS, "PRELIMINARY");
    // SR Document Series Module (C.17.1): no performed procedure step is known.
    put_seq(
        &mut o,
        tags::REFERENCED_PERFORMED_PROCEDURE_STEP_SEQUENCE,
        Vec::new(),
    );
    put_seq(&mut o, tags::PERFORMED_PROCEDURE_CODE_SEQUENCE, Vec::new());
    let series = series_ref(
        source.series_uid(),
        tags::REFERENCED_SOP_SEQUENCE,
        source.instances().iter(),
    );
    let mut study = InMemDicomObject::new_empty();
    put(
        &mut study,
        tags::STUDY_INSTANCE_UID,
        VR::UI,
        source.study_uid(),
    );
    put_seq(&mut study, tags::REFERENCED_SERIES_SEQUENCE, vec![series]);
    put_seq(
        &mut o,
        tags::CURRENT_REQUESTED_PROCEDURE_EVIDENCE_SEQUENCE,
        vec![study],
    );

    // SR Document Content Module (PS3.3 C.17.3): the root container.
    put(&mut o, tags::VALUE_TYPE, VR::CS, "CONTAINER");
    put_code(
        &mut o,
        tags::CONCEPT_NAME_CODE_SEQUENCE,
        codes::IMAGING_MEASUREMENT_REPORT,
    );
    put(&mut o, tags::CONTINUITY_OF_CONTENT, VR::CS, "SEPARATE");
    put_template(&mut o, "1500");

    let device = format!("{} {}", algorithm.name, algorithm.version);
    let mut root = vec![
        items::code(
            Rel::HasConceptMod,
            codes::LANGUAGE_OF_CONTENT,
            codes::ENGLISH_US,
            Vec::new(),
        ),
        items::code(
            Rel::HasObsContext,
            codes::OBSERVER_TYPE,
            codes::DEVICE,
            Vec::new(),
        ),
        items::uidref(
            Rel::HasObsContext,
            codes::DEVICE_OBSERVER_UID,
            &name_uid(&device),
        ),
        items::text(
            Rel::HasObsContext,
            codes::DEVICE_OBSERVER_NAME,
            &algorithm.name,
        ),
        items::text(
            Rel::HasObsContext,
            codes::DEVICE_OBSERVER_MANUFACTURER,
            &algorithm.manufacturer,
        ),
        items::text(
            Rel::HasObsContext,
            codes::DEVICE_OBSERVER_MODEL_NAME,
            &device,
        ),
        items::code(
            Rel::HasConceptMod,
            codes::PROCEDURE_REPORTED,
            codes::CT_UNSPECIFIED_BODY_REGION,
            Vec::new(),
        ),
    ];
    let groups: Vec<InMemDicomObject> = findings
        .iter()
        .map(|f| group(source, f, algorithm, &frame_uid))
        .collect();
    if groups.is_empty() {
        root.push(items::container(
            Rel::Contains,
            codes::QUALITATIVE_EVALUATIONS,
            None,
            vec![
                items::code(Rel::Contains, codes::NODULE, codes::ABSENT, Vec::new()),
                items::text(Rel::Contains, codes::FINDING, NO_FINDING_TEXT),
            ],
        ));
    } else {
        root.push(items::container(
            Rel::Contains,
            codes::IMAGING_MEASUREMENTS,
            None,
            groups,
        ));
    }
    put_seq(&mut o, tags::CONTENT_SEQUENCE, root);
    DicomObject::new(o, "measurement report")
}

/// One finding's TID 1410 measurement group.
fn group(
    source: &SourceSeries,
    f: &Finding,
    algorithm: &Algorithm,
    frame_uid: &str,
) -> InMemDicomObject {
    let mut c = vec![
        items::text(Rel::HasObsContext, codes::TRACKING_IDENTIFIER, &f.label()),
        items::uidref(
            Rel::HasObsContext,
            codes::TRACKING_UNIQUE_IDENTIFIER,
            &f.tracking_uid,
        ),
        items::code(Rel::Contains, codes::FINDING, codes::NODULE, Vec::new()),
    ];
    let laterality: Vec<InMemDicomObject> = f
        .side
        .map(|s| {
            let side = match s {
                Side::Left => codes::LEFT,
                Side::Right => codes::RIGHT,
            };
            items::code(Rel::HasConceptMod, codes::LATERALITY, side, Vec::new())
        })
        .into_iter()
        .collect();
    c.push(items::code(
        Rel::HasConceptMod,
        codes::FINDING_SITE,
        codes::LUNG,
        laterality,
    ));
    c.push(items::text(
        Rel::HasConceptMod,
        codes::ALGORITHM_NAME,
        &algorithm.name,
    ));
    c.push(items::text(
        Rel::HasConceptMod,
        codes::ALGORITHM_VERSION,
        &algorithm.version,
    ));
    for p in &algorithm.parameters {
        c.push(items::text(
            Rel::HasConceptMod,
            codes::ALGORITHM_PARAMETERS,
            p,
        ));
    }
    let p = f.centre;
    c.push(items::scoord3d_point(
        Rel::Contains,
        codes::IMAGE_REGION,
        [p.x_mm, p.y_mm, p.z_mm],
        frame_uid,
    ));
    let slice = source
        .nearest_frame(p)
        .and_then(|f| Some((source.instances().get(f.instance)?, f.frame_number)));
    let source_of = || -> Vec<InMemDicomObject> {
        slice
            .map(|(i, frame)| {
                items::image(
                    Rel::InferredFrom,
                    codes::SOURCE_OF_MEASUREMENT,
                    &i.sop_class_uid,
                    &i.sop_instance_uid,
                    frame,
                )
            })
            .into_iter()
            .collect()
    };
    let mut measure = |name: Code, value: Option<f64>, unit: Code| {
        if let Some(v) = value {
            c.push(items::num(Rel::Contains, name, v, unit, source_of()));
        }
    };
    measure(codes::DIAMETER, f.diameter_mm, codes::UNIT_MM);
    measure(codes::VOLUME, f.volume_mm3, codes::UNIT_MM3);
    measure(
        codes::CERTAINTY_OF_FINDING,
        Some(f.probability * 100.0),
        codes::UNIT_PERCENT,
    );
    items::container(Rel::Contains, codes::MEASUREMENT_GROUP, Some("1410"), c)
}
