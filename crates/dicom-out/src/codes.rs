//! The coded concepts Speck's DICOM objects use, each checked against the code tables of DICOM
//! PS3.16 (the context group, CID, that lists it is named; the tables as pydicom 3.0 ships them
//! were used to check every value and meaning).
//!
//! A coded concept is a triplet: code value, coding scheme designator and code meaning
//! (PS3.3 §8.8, "Code Sequence Macro"). Schemes used here: `DCM` (DICOM's own, PS3.16 Annex D),
//! `SCT` (SNOMED CT), `LN` (LOINC), `UCUM` (units), `RFC5646` (languages), `UMLS`.

/// One coded concept: `(code value, coding scheme designator, code meaning)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Code {
    /// Code Value (0008,0100).
    pub value: &'static str,
    /// Coding Scheme Designator (0008,0102).
    pub scheme: &'static str,
    /// Code Meaning (0008,0104).
    pub meaning: &'static str,
}

impl Code {
    /// A code from its three parts.
    pub const fn new(value: &'static str, scheme: &'static str, meaning: &'static str) -> Self {
        Self {
            value,
            scheme,
            meaning,
        }
    }
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "({}, {}, \"{}\")", self.value, self.scheme, self.meaning)
    }
}

// --- Document and containers (TID 1500, PS3.16 Annex A) ---

/// (126000, DCM, "Imaging Measurement Report"): the document title of TID 1500 (CID 7021).
pub const IMAGING_MEASUREMENT_REPORT: Code =
    Code::new("126000", "DCM", "Imaging Measurement Report");
/// (126010, DCM, "Imaging Measurements"): the container of the measurement groups (TID 1500).
pub const IMAGING_MEASUREMENTS: Code = Code::new("126010", "DCM", "Imaging Measurements");
/// (125007, DCM, "Measurement Group"): one finding's group (TID 1410).
pub const MEASUREMENT_GROUP: Code = Code::new("125007", "DCM", "Measurement Group");
/// (C0034375, UMLS, "Qualitative Evaluations"): the container of TID 1500 row 12, used by a report
/// with no finding (pydicom 3.0's tables do not list it; this is the code of TID 1500 and of
/// DCMTK's `CODE_UMLS_QualitativeEvaluations`).
pub const QUALITATIVE_EVALUATIONS: Code = Code::new("C0034375", "UMLS", "Qualitative Evaluations");
/// (272519000, SCT, "Absent") (CID 240 Present-Absent): the value of [`NODULE`] in a report with
/// no finding.
pub const ABSENT: Code = Code::new("272519000", "SCT", "Absent");

// --- Document context (TID 1204, TID 1001/1004, TID 1500 row "Procedure reported") ---

/// (121049, DCM, "Language of Content Item and Descendants") (TID 1204).
pub const LANGUAGE_OF_CONTENT: Code =
    Code::new("121049", "DCM", "Language of Content Item and Descendants");
/// (en-US, RFC5646, "English (United States)"): the report's language.
pub const ENGLISH_US: Code = Code::new("en-US", "RFC5646", "English (United States)");
/// (121005, DCM, "Observer Type") (TID 1002).
pub const OBSERVER_TYPE: Code = Code::new("121005", "DCM", "Observer Type");
/// (121007, DCM, "Device"): the observer is a device (CID 270).
pub const DEVICE: Code = Code::new("121007", "DCM", "Device");
/// (121012, DCM, "Device Observer UID") (TID 1004).
pub const DEVICE_OBSERVER_UID: Code = Code::new("121012", "DCM", "Device Observer UID");
/// (121013, DCM, "Device Observer Name") (TID 1004).
pub const DEVICE_OBSERVER_NAME: Code = Code::new("121013", "DCM", "Device Observer Name");
/// (121014, DCM, "Device Observer Manufacturer") (TID 1004).
pub const DEVICE_OBSERVER_MANUFACTURER: Code =
    Code::new("121014", "DCM", "Device Observer Manufacturer");
/// (121015, DCM, "Device Observer Model Name") (TID 1004).
pub const DEVICE_OBSERVER_MODEL_NAME: Code =
    Code::new("121015", "DCM", "Device Observer Model Name");
/// (121058, DCM, "Procedure reported") (TID 1500).
pub const PROCEDURE_REPORTED: Code = Code::new("121058", "DCM", "Procedure reported");
/// (25045-6, LN, "CT unspecified body region"): the procedure (CID 100, Quantitative Diagnostic
/// Imaging Procedures).
pub const CT_UNSPECIFIED_BODY_REGION: Code =
    Code::new("25045-6", "LN", "CT unspecified body region");

// --- Measurement group content (TID 1410, TID 4108, TID 4019, TID 1419) ---

/// (112039, DCM, "Tracking Identifier"): the finding's human-readable identifier (TID 4108).
pub const TRACKING_IDENTIFIER: Code = Code::new("112039", "DCM", "Tracking Identifier");
/// (112040, DCM, "Tracking Unique Identifier"): the finding's UID (TID 4108); the segmentation's
/// segment carries the same UID as TrackingUID.
pub const TRACKING_UNIQUE_IDENTIFIER: Code =
    Code::new("112040", "DCM", "Tracking Unique Identifier");
/// (121071, DCM, "Finding") (TID 1410).
pub const FINDING: Code = Code::new("121071", "DCM", "Finding");
/// (27925004, SCT, "Nodule"): what Speck finds (CID 6102 Chest Finding or Feature Modifier,
/// CID 7151 Segmentation Property Type), with [`LUNG`] as its finding site.
///
/// SNOMED CT's pre-coordinated 786838002 "Nodule of lung" is not in any PS3.16 context group;
/// "Nodule" at finding site "Lung" says the same with codes a DICOM viewer knows.
pub const NODULE: Code = Code::new("27925004", "SCT", "Nodule");
/// (363698007, SCT, "Finding Site") (TID 1410).
pub const FINDING_SITE: Code = Code::new("363698007", "SCT", "Finding Site");
/// (39607008, SCT, "Lung") (CID 4 Anatomic Region).
pub const LUNG: Code = Code::new("39607008", "SCT", "Lung");
/// (272741003, SCT, "Laterality"): modifier of the finding site (TID 1410).
pub const LATERALITY: Code = Code::new("272741003", "SCT", "Laterality");
/// (24028007, SCT, "Right") (CID 244 Laterality, CID 2 Anatomic Modifier).
pub const RIGHT: Code = Code::new("24028007", "SCT", "Right");
/// (7771000, SCT, "Left") (CID 244 Laterality, CID 2 Anatomic Modifier).
pub const LEFT: Code = Code::new("7771000", "SCT", "Left");
/// (111001, DCM, "Algorithm Name") (TID 4019).
pub const ALGORITHM_NAME: Code = Code::new("111001", "DCM", "Algorithm Name");
/// (111003, DCM, "Algorithm Version") (TID 4019).
pub const ALGORITHM_VERSION: Code = Code::new("111003", "DCM", "Algorithm Version");
/// (111002, DCM, "Algorithm Parameters") (TID 4019): the models' file names, sizes and hashes.
pub const ALGORITHM_PARAMETERS: Code = Code::new("111002", "DCM", "Algorithm Parameters");
/// (111030, DCM, "Image Region"): the finding's centre as a SCOORD3D POINT (TID 1410).
pub const IMAGE_REGION: Code = Code::new("111030", "DCM", "Image Region");
/// (81827009, SCT, "Diameter") (CID 7470 Linear Measurement): the measured diameter of the
/// sphere of the lesion's volume.
pub const DIAMETER: Code = Code::new("81827009", "SCT", "Diameter");
/// (118565006, SCT, "Volume") (CID 7472 Volume Measurement).
pub const VOLUME: Code = Code::new("118565006", "SCT", "Volume");
/// (111012, DCM, "Certainty of Finding") (CID 6048): the detection probability, in percent, as
/// the CAD SR templates give it.
pub const CERTAINTY_OF_FINDING: Code = Code::new("111012", "DCM", "Certainty of Finding");
/// (121112, DCM, "Source of Measurement"): the source slice a measurement was made on (TID 300).
pub const SOURCE_OF_MEASUREMENT: Code = Code::new("121112", "DCM", "Source of Measurement");

// --- Units (UCUM, CID 7181) ---

/// (mm, UCUM, "millimeter").
pub const UNIT_MM: Code = Code::new("mm", "UCUM", "millimeter");
/// (mm3, UCUM, "cubic millimeter").
pub const UNIT_MM3: Code = Code::new("mm3", "UCUM", "cubic millimeter");
/// (%, UCUM, "Percent").
pub const UNIT_PERCENT: Code = Code::new("%", "UCUM", "Percent");

// --- Segmentation (PS3.3 C.8.20) ---

/// (49755003, SCT, "Morphologically Abnormal Structure") (CID 7150 Segmentation Property
/// Category): the category of every segment.
pub const MORPHOLOGICALLY_ABNORMAL_STRUCTURE: Code =
    Code::new("49755003", "SCT", "Morphologically Abnormal Structure");
/// (121322, DCM, "Source image for image processing operation") (CID 7202): the purpose of the
/// reference from a segmentation frame to its source slice.
pub const SOURCE_IMAGE_FOR_PROCESSING: Code = Code::new(
    "121322",
    "DCM",
    "Source image for image processing operation",
);
/// (113076, DCM, "Segmentation") (CID 7203 Image Derivation).
pub const SEGMENTATION_DERIVATION: Code = Code::new("113076", "DCM", "Segmentation");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_fit_their_value_representations() {
        for c in [
            IMAGING_MEASUREMENT_REPORT,
            IMAGING_MEASUREMENTS,
            MEASUREMENT_GROUP,
            QUALITATIVE_EVALUATIONS,
            ABSENT,
            LANGUAGE_OF_CONTENT,
            ENGLISH_US,
            NODULE,
            LUNG,
            RIGHT,
            LEFT,
            CT_UNSPECIFIED_BODY_REGION,
            DIAMETER,
            VOLUME,
            CERTAINTY_OF_FINDING,
            UNIT_MM3,
            MORPHOLOGICALLY_ABNORMAL_STRUCTURE,
        ] {
            // Code Value is SH (16 characters), Code Meaning LO (64).
            assert!(!c.value.is_empty() && c.value.len() <= 16, "{c}");
            assert!(!c.meaning.is_empty() && c.meaning.len() <= 64, "{c}");
            assert!(!c.scheme.is_empty() && c.scheme.len() <= 16, "{c}");
        }
        assert_eq!(NODULE.to_string(), "(27925004, SCT, \"Nodule\")");
    }
}
