//! The rows of the LUNA16 CSV files: reference nodules (`annotations.csv`), excluded findings
//! (`annotations_excluded.csv`) and CAD marks (`candidates.csv`), in LPS world millimetres.
//!
//! These types are the one description of those columns: `speck-phantom` writes its truth
//! through them and `speck-eval` reads annotations and candidates through them (with the `csv`
//! crate). Columns are matched by name (exact, case-sensitive), so other columns and any column
//! order are accepted when reading.
//!
//! How values are read:
//! - numbers must be finite (`nan`, `inf` and overflowing values are refused);
//! - an empty value is refused where the column is required;
//! - in optional columns an empty value, `NA`, `nan` (any case) or `-` means absent.
//!
//! A refused value fails deserialisation with one of the messages `empty`, `not a number` or
//! `not a finite number`, which readers report with the file, line and column.
//!
//! Written back, millimetres and voxel diameters have four decimals (0.1 µm, far below any CT
//! voxel) and a probability is written in full.

use serde::{Deserialize, Serialize, Serializer};

use crate::WorldPoint;

/// The columns of [`AnnotationRow`] that every annotation file must have.
pub const ANNOTATION_REQUIRED: [&str; 5] =
    ["seriesuid", "coordX", "coordY", "coordZ", "diameter_mm"];

/// The columns of [`ExcludedRow`] (all required).
pub const EXCLUDED_COLUMNS: [&str; 5] = ANNOTATION_REQUIRED;

/// The columns of [`CandidateRow`] (all required).
pub const CANDIDATE_COLUMNS: [&str; 5] = ["seriesuid", "coordX", "coordY", "coordZ", "probability"];

/// A row type that starts with the scan and the centre (`seriesuid,coordX,coordY,coordZ`, the
/// same in every LUNA16 file), then has the given fields, and its `center()`.
macro_rules! located_row {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $($(#[$field_meta:meta])* pub $field:ident: $ty:ty,)*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        pub struct $name {
            /// The scan (SeriesInstanceUID or file stem); required, non-empty.
            #[serde(deserialize_with = "de::required_text")]
            pub seriesuid: String,
            /// Centre, LPS x, mm.
            #[serde(rename = "coordX", serialize_with = "fixed4", deserialize_with = "de::finite")]
            pub coord_x: f64,
            /// Centre, LPS y, mm.
            #[serde(rename = "coordY", serialize_with = "fixed4", deserialize_with = "de::finite")]
            pub coord_y: f64,
            /// Centre, LPS z, mm.
            #[serde(rename = "coordZ", serialize_with = "fixed4", deserialize_with = "de::finite")]
            pub coord_z: f64,
            $($(#[$field_meta])* pub $field: $ty,)*
        }

        impl $name {
            /// The centre as a world point (LPS mm).
            pub fn center(&self) -> WorldPoint {
                WorldPoint::new(self.coord_x, self.coord_y, self.coord_z)
            }
        }
    };
}

located_row! {
    /// One reference nodule: LUNA16's five columns, then the optional `diameter_vox`, `density`
    /// and `attachment` that Speck's phantoms add.
    pub struct AnnotationRow {
        /// Diameter, mm (LUNA16 writes `-1` for a finding without a size).
        #[serde(serialize_with = "fixed4", deserialize_with = "de::finite")]
        pub diameter_mm: f64,
        /// Diameter in voxels, when given.
        #[serde(
            default,
            serialize_with = "optional_fixed4",
            deserialize_with = "de::optional_finite"
        )]
        pub diameter_vox: Option<f64>,
        /// Density class (e.g. `solid`), when given.
        #[serde(default, deserialize_with = "de::optional_text")]
        pub density: Option<String>,
        /// Attachment class (e.g. `vessel`), when given.
        #[serde(default, deserialize_with = "de::optional_text")]
        pub attachment: Option<String>,
    }
}

located_row! {
    /// One excluded finding (LUNA16 `annotations_excluded.csv`): hits on it count neither as
    /// hits nor as false positives.
    pub struct ExcludedRow {
        /// Diameter, mm; a negative value (LUNA16's `-1`) stands for a 10 mm finding.
        #[serde(serialize_with = "fixed4", deserialize_with = "de::finite")]
        pub diameter_mm: f64,
    }
}

impl From<AnnotationRow> for ExcludedRow {
    /// The LUNA16 columns of an annotation (its optional columns dropped).
    fn from(a: AnnotationRow) -> Self {
        Self {
            seriesuid: a.seriesuid,
            coord_x: a.coord_x,
            coord_y: a.coord_y,
            coord_z: a.coord_z,
            diameter_mm: a.diameter_mm,
        }
    }
}

located_row! {
    /// One CAD mark (LUNA16 `candidates.csv`).
    pub struct CandidateRow {
        /// Score; any finite value (only the order matters to FROC).
        #[serde(deserialize_with = "de::finite")]
        pub probability: f64,
    }
}

/// The value rules of these files as `deserialize_with` functions, for readers of further
/// columns (e.g. `speck-eval`'s `reader` and `n_readers`).
pub mod de {
    use serde::{Deserialize, Deserializer};

    /// Whether a value in an optional column means "absent": empty, `NA`, `nan` (any case) or `-`.
    pub fn is_missing(value: &str) -> bool {
        value.is_empty()
            || value.eq_ignore_ascii_case("na")
            || value.eq_ignore_ascii_case("nan")
            || value == "-"
    }

    /// A required finite number, or the reason it is refused (`empty`, `not a number`, `not a
    /// finite number`).
    pub fn parse_finite(s: &str) -> Result<f64, &'static str> {
        match s.parse::<f64>() {
            Ok(v) if v.is_finite() => Ok(v),
            Ok(_) => Err("not a finite number"),
            Err(_) if s.is_empty() => Err("empty"),
            Err(_) => Err("not a number"),
        }
    }

    /// Deserialise a required finite number ([`parse_finite`]).
    pub fn finite<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        let s = String::deserialize(d)?;
        parse_finite(&s).map_err(serde::de::Error::custom)
    }

    /// Deserialise an optional finite number: [`is_missing`] values give `None`.
    pub fn optional_finite<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
        let s = String::deserialize(d)?;
        if is_missing(&s) {
            return Ok(None);
        }
        parse_finite(&s).map(Some).map_err(serde::de::Error::custom)
    }

    /// Deserialise a required, non-empty text.
    pub fn required_text<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        let s = String::deserialize(d)?;
        if s.is_empty() {
            return Err(serde::de::Error::custom("empty"));
        }
        Ok(s)
    }

    /// Deserialise an optional text: [`is_missing`] values give `None`.
    pub fn optional_text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        let s = String::deserialize(d)?;
        Ok((!is_missing(&s)).then_some(s))
    }
}

fn fixed4<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&format_args!("{v:.4}"))
}

fn optional_fixed4<S: Serializer>(v: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(v) => fixed4(v, s),
        None => s.serialize_str(""),
    }
}
