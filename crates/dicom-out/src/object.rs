//! What every object shares: the finding and algorithm descriptions, the modules copied from the
//! source, equipment, and encoding to a Part 10 file.

use dicom_core::VR;
use dicom_dictionary_std::{tags, uids};
use dicom_object::{FileDicomObject, FileMetaTableBuilder, InMemDicomObject};
use speck_volume::WorldPoint;

use crate::items::{put, put_empty};
use crate::stamp::{fnv1a64, Stamp};
use crate::{DicomOutError, SourceSeries};

/// The patient's side of a finding (LPS x of its centre against the body midline).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The patient's left.
    Left,
    /// The patient's right.
    Right,
}

/// One reported finding, as the objects describe it.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    /// 1-based rank in the scan (1 = most probable); the tracking identifier is
    /// `Nodule <rank>`.
    pub rank: u32,
    /// Tracking UID, shared by the report's measurement group and the segmentation's segment
    /// (make one with [`Stamp::uid`]).
    pub tracking_uid: String,
    /// Centre, LPS world mm.
    pub centre: WorldPoint,
    /// Detection probability in `[0, 1]`.
    pub probability: f64,
    /// Diameter, mm (the measured one, or the model's estimate); `None` when unknown.
    pub diameter_mm: Option<f64>,
    /// Measured volume, mm³; `None` when not measured.
    pub volume_mm3: Option<f64>,
    /// The patient's side, when known.
    pub side: Option<Side>,
}

impl Finding {
    /// `Nodule <rank>`: the tracking identifier and the segment label.
    pub fn label(&self) -> String {
        format!("Nodule {}", self.rank)
    }

    pub(crate) fn check(&self) -> Result<(), DicomOutError> {
        let bad = |reason: String| DicomOutError::Invalid {
            what: format!("finding {}", self.rank),
            reason,
        };
        let c = self.centre;
        if ![c.x_mm, c.y_mm, c.z_mm].iter().all(|v| v.is_finite()) {
            return Err(bad(format!("centre {c:?} is not finite")));
        }
        if !(self.probability.is_finite() && (0.0..=1.0).contains(&self.probability)) {
            return Err(bad(format!(
                "probability {} is not in [0, 1]",
                self.probability
            )));
        }
        for (name, v) in [("diameter", self.diameter_mm), ("volume", self.volume_mm3)] {
            if let Some(v) = v {
                if !(v.is_finite() && v >= 0.0) {
                    return Err(bad(format!(
                        "{name} {v} is not a finite non-negative number"
                    )));
                }
            }
        }
        if self.tracking_uid.is_empty() || self.tracking_uid.len() > 64 {
            return Err(bad(format!(
                "tracking UID {:?} is not a UID",
                self.tracking_uid
            )));
        }
        Ok(())
    }
}

/// The algorithm that made the findings (TID 4019 Algorithm Identification; the equipment
/// modules).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Algorithm {
    /// Name, e.g. `Speck`.
    pub name: String,
    /// Version, e.g. `0.1.0`.
    pub version: String,
    /// Manufacturer, e.g. `Speck`.
    pub manufacturer: String,
    /// Parameters, one text each: Speck gives the models (file, size, hash) as `scan.json` has
    /// them.
    pub parameters: Vec<String>,
}

impl Algorithm {
    /// `Speck` with this crate's version and the given parameters.
    pub fn speck(parameters: Vec<String>) -> Self {
        Self {
            name: "Speck".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            manufacturer: "Speck".into(),
            parameters,
        }
    }

    /// Device Serial Number: `models-<16 hex digits>`, a hash of the parameters, so the same
    /// models always give the same "device".
    pub(crate) fn serial(&self) -> String {
        format!(
            "models-{:016x}",
            fnv1a64(self.parameters.join("\n").as_bytes())
        )
    }
}

/// A DICOM object built by this crate, ready to be encoded.
#[derive(Debug, Clone)]
pub struct DicomObject {
    file: FileDicomObject<InMemDicomObject>,
    what: &'static str,
}

impl DicomObject {
    pub(crate) fn new(obj: InMemDicomObject, what: &'static str) -> Result<Self, DicomOutError> {
        let file = obj
            .with_meta(
                FileMetaTableBuilder::new()
                    .transfer_syntax(uids::EXPLICIT_VR_LITTLE_ENDIAN)
                    .implementation_version_name("SPECK"),
            )
            .map_err(|e| DicomOutError::Encode {
                what: what.to_string(),
                reason: e.to_string(),
            })?;
        Ok(Self { file, what })
    }

    /// The object (with its file meta group), to inspect it.
    pub fn object(&self) -> &FileDicomObject<InMemDicomObject> {
        &self.file
    }

    /// SOP Instance UID of the object.
    pub fn sop_instance_uid(&self) -> &str {
        self.file.meta().media_storage_sop_instance_uid()
    }

    /// The Part 10 file: 128-byte preamble, `DICM`, file meta group, explicit VR little endian
    /// data set.
    ///
    /// # Errors
    /// [`DicomOutError::Encode`] when dicom-rs cannot encode an element.
    pub fn to_bytes(&self) -> Result<Vec<u8>, DicomOutError> {
        let mut out = Vec::new();
        self.file
            .write_all(&mut out)
            .map_err(|e| DicomOutError::Encode {
                what: self.what.to_string(),
                reason: e.to_string(),
            })?;
        Ok(out)
    }
}

/// The modules every object shares: SOP Common, the copied Patient and Study modules, a new
/// series, General and Enhanced General Equipment (PS3.3 C.7.5.1, C.7.5.2). The source must have
/// a Frame of Reference (the findings are placed in it).
pub(crate) fn base(
    source: &SourceSeries,
    algorithm: &Algorithm,
    stamp: &Stamp,
    sop_class_uid: &str,
    modality: &str,
    series_number: i32,
    series_description: &str,
) -> Result<InMemDicomObject, DicomOutError> {
    let mut o = InMemDicomObject::new_empty();
    for e in source.common().iter() {
        o.put(e.clone());
    }
    if o.get(tags::SPECIFIC_CHARACTER_SET).is_none() {
        put(&mut o, tags::SPECIFIC_CHARACTER_SET, VR::CS, "ISO_IR 192");
    }
    let instance_uid = stamp.uid();
    put(&mut o, tags::SOP_CLASS_UID, VR::UI, sop_class_uid);
    put(
        &mut o,
        tags::SOP_INSTANCE_UID,
        VR::UI,
        instance_uid.as_str(),
    );
    put(&mut o, tags::INSTANCE_CREATION_DATE, VR::DA, stamp.date());
    put(&mut o, tags::INSTANCE_CREATION_TIME, VR::TM, stamp.time());
    put(&mut o, tags::MODALITY, VR::CS, modality);
    put(
        &mut o,
        tags::SERIES_INSTANCE_UID,
        VR::UI,
        stamp.uid().as_str(),
    );
    put(
        &mut o,
        tags::SERIES_NUMBER,
        VR::IS,
        series_number.to_string(),
    );
    put(&mut o, tags::SERIES_DATE, VR::DA, stamp.date());
    put(&mut o, tags::SERIES_TIME, VR::TM, stamp.time());
    put(&mut o, tags::SERIES_DESCRIPTION, VR::LO, series_description);
    put(&mut o, tags::INSTANCE_NUMBER, VR::IS, "1");
    put(&mut o, tags::CONTENT_DATE, VR::DA, stamp.date());
    put(&mut o, tags::CONTENT_TIME, VR::TM, stamp.time());
    if source.frame_of_reference_uid().is_none() {
        return Err(DicomOutError::Series {
            series_uid: source.series_uid().to_string(),
            reason: "no FrameOfReferenceUID (0020,0052): findings cannot be placed in the \
                     patient's frame"
                .into(),
        });
    }
    put(
        &mut o,
        tags::MANUFACTURER,
        VR::LO,
        algorithm.manufacturer.as_str(),
    );
    put(
        &mut o,
        tags::MANUFACTURER_MODEL_NAME,
        VR::LO,
        algorithm.name.as_str(),
    );
    put(
        &mut o,
        tags::DEVICE_SERIAL_NUMBER,
        VR::LO,
        algorithm.serial(),
    );
    put(
        &mut o,
        tags::SOFTWARE_VERSIONS,
        VR::LO,
        algorithm.version.as_str(),
    );
    Ok(o)
}

/// The Frame of Reference module (PS3.3 C.7.4.1): the source's, so the objects share its
/// patient coordinates.
pub(crate) fn put_frame_of_reference(o: &mut InMemDicomObject, source: &SourceSeries) {
    if let Some(f) = source.frame_of_reference_uid() {
        put(o, tags::FRAME_OF_REFERENCE_UID, VR::UI, f);
    }
    match source.position_reference_indicator() {
        Some(p) => put(o, tags::POSITION_REFERENCE_INDICATOR, VR::LO, p),
        None => put_empty(o, tags::POSITION_REFERENCE_INDICATOR, VR::LO),
    }
}
