//! Writing a [`Volume`] as a CT series: one explicit-VR-little-endian file per z slice.

use std::path::Path;

use dicom_core::value::PrimitiveValue;
use dicom_core::{DataElement, Tag, VR};
use dicom_dictionary_std::{tags, uids};
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};
use rayon::prelude::*;

use super::uid::new_uid;
use super::DicomWriteOptions;
use crate::{Volume, VolumeError};

/// Stored value = HU - this intercept (`RescaleIntercept` = -1024, `RescaleSlope` = 1).
const INTERCEPT_HU: i32 = -1024;

/// How pixel values are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Storage {
    /// `PixelRepresentation` 0, stored = HU + 1024 (all HU >= -1024).
    Unsigned,
    /// `PixelRepresentation` 1, stored = HU + 1024 (fits in i16).
    SignedShifted,
    /// `PixelRepresentation` 1, stored = HU, intercept 0 (extreme values).
    SignedRaw,
}

impl Storage {
    fn choose(min_hu: i16, max_hu: i16) -> Self {
        let (min, max) = (i32::from(min_hu), i32::from(max_hu));
        if min >= INTERCEPT_HU {
            Self::Unsigned
        } else if max - INTERCEPT_HU <= i32::from(i16::MAX) {
            Self::SignedShifted
        } else {
            Self::SignedRaw
        }
    }

    fn intercept(self) -> i32 {
        match self {
            Self::Unsigned | Self::SignedShifted => INTERCEPT_HU,
            Self::SignedRaw => 0,
        }
    }

    /// The 16 stored bits of one HU value (two's complement when signed).
    fn store(self, hu: i16) -> u16 {
        let v = i32::from(hu) - self.intercept();
        match self {
            // In range by construction of `choose` (HU >= -1024 gives 0..=33791).
            Self::Unsigned => u16::try_from(v).unwrap_or(0),
            Self::SignedShifted | Self::SignedRaw => (i16::try_from(v).unwrap_or(0)) as u16,
        }
    }
}

/// A decimal string (VR DS, PS3.5 6.2) of at most 16 characters, as precise as fits, never `-0`
/// (the one home of this rule: the phantom writer here and `speck-dicom-out` use it).
pub fn ds(v: f64) -> String {
    let v = if v == 0.0 { 0.0 } else { v }; // no "-0"
    let s = format!("{v}");
    if s.len() <= 16 && !s.contains('e') {
        return s;
    }
    for prec in (0..=15).rev() {
        let s = format!("{v:.prec$}");
        let s = if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s
        };
        if s.len() <= 16 {
            return if s == "-0" { "0".to_string() } else { s };
        }
    }
    // |v| >= 1e16: not a geometry value we can represent; DS allows exponents.
    format!("{v:.6e}")
}

fn ds_multi(values: &[f64]) -> PrimitiveValue {
    PrimitiveValue::Strs(values.iter().map(|&v| ds(v)).collect())
}

fn put(obj: &mut InMemDicomObject, tag: Tag, vr: VR, value: impl Into<PrimitiveValue>) {
    obj.put(DataElement::new(tag, vr, value.into()));
}

/// Write `volume` into `dir` as `IM000001.dcm`, `IM000002.dcm`, ... (see [`super::write_series`]).
pub(crate) fn write_series(
    volume: &Volume,
    dir: &Path,
    options: &DicomWriteOptions,
) -> Result<(), VolumeError> {
    std::fs::create_dir_all(dir).map_err(|e| VolumeError::io(dir, e))?;
    let [nz, ny, nx] = volume.shape_zyx();
    let rows = u16::try_from(ny).map_err(|_| {
        VolumeError::unsupported(dir, format!("{ny} rows do not fit DICOM's 16-bit Rows"))
    })?;
    let cols = u16::try_from(nx).map_err(|_| {
        VolumeError::unsupported(
            dir,
            format!("{nx} columns do not fit DICOM's 16-bit Columns"),
        )
    })?;
    if nz > 999_999 {
        return Err(VolumeError::unsupported(
            dir,
            format!("{nz} slices exceed the IM000001..IM999999 naming"),
        ));
    }
    let g = volume.geometry();
    let row_dir = g.direction.axis(0);
    let col_dir = g.direction.axis(1);
    let slice_dir = g.direction.axis(2);
    let spacing = g.spacing;
    let normal = cross(row_dir, col_dir);
    let study_uid = options.study_uid.clone().unwrap_or_else(new_uid);
    let series_uid = options.series_uid.clone().unwrap_or_else(new_uid);
    let frame_uid = new_uid();
    let patient_id = options
        .patient_id
        .clone()
        .or_else(|| volume.provenance().patient_id.clone())
        .unwrap_or_else(|| "SPECK".to_string());
    let (min_hu, max_hu, _) = volume.hu_stats();
    let storage = Storage::choose(min_hu, max_hu);
    let voxels = volume.voxels();
    tracing::debug!(?storage, nz, ny, nx, dir = %dir.display(), "writing DICOM series");

    (0..nz).into_par_iter().try_for_each(|k| {
        let path = dir.join(format!("IM{:06}.dcm", k + 1));
        let o = g.origin.to_array();
        let step = k as f64 * spacing.z_mm();
        let ipp: [f64; 3] = std::array::from_fn(|i| o[i] + step * slice_dir[i]);
        let slice_location: f64 = (0..3).map(|i| ipp[i] * normal[i]).sum();
        let sop_uid = new_uid();
        let mut obj = InMemDicomObject::new_empty();
        put(&mut obj, tags::SPECIFIC_CHARACTER_SET, VR::CS, "ISO_IR 100");
        put(
            &mut obj,
            tags::IMAGE_TYPE,
            VR::CS,
            PrimitiveValue::Strs(
                ["ORIGINAL", "PRIMARY", "AXIAL"]
                    .iter()
                    .map(|s| s.to_string())
                    .collect(),
            ),
        );
        put(
            &mut obj,
            tags::SOP_CLASS_UID,
            VR::UI,
            uids::CT_IMAGE_STORAGE,
        );
        put(&mut obj, tags::SOP_INSTANCE_UID, VR::UI, sop_uid.as_str());
        put(&mut obj, tags::MODALITY, VR::CS, "CT");
        put(&mut obj, tags::MANUFACTURER, VR::LO, "Speck");
        put(&mut obj, tags::SERIES_DESCRIPTION, VR::LO, "Speck volume");
        put(&mut obj, tags::PATIENT_NAME, VR::PN, patient_id.as_str());
        put(&mut obj, tags::PATIENT_ID, VR::LO, patient_id.as_str());
        put(&mut obj, tags::SLICE_THICKNESS, VR::DS, ds(spacing.z_mm()));
        put(
            &mut obj,
            tags::STUDY_INSTANCE_UID,
            VR::UI,
            study_uid.as_str(),
        );
        put(
            &mut obj,
            tags::SERIES_INSTANCE_UID,
            VR::UI,
            series_uid.as_str(),
        );
        put(&mut obj, tags::SERIES_NUMBER, VR::IS, "1");
        put(&mut obj, tags::INSTANCE_NUMBER, VR::IS, (k + 1).to_string());
        put(
            &mut obj,
            tags::IMAGE_POSITION_PATIENT,
            VR::DS,
            ds_multi(&ipp),
        );
        let iop = [
            row_dir[0], row_dir[1], row_dir[2], col_dir[0], col_dir[1], col_dir[2],
        ];
        put(
            &mut obj,
            tags::IMAGE_ORIENTATION_PATIENT,
            VR::DS,
            ds_multi(&iop),
        );
        put(
            &mut obj,
            tags::FRAME_OF_REFERENCE_UID,
            VR::UI,
            frame_uid.as_str(),
        );
        put(&mut obj, tags::SLICE_LOCATION, VR::DS, ds(slice_location));
        put(
            &mut obj,
            tags::SAMPLES_PER_PIXEL,
            VR::US,
            PrimitiveValue::from(1u16),
        );
        put(
            &mut obj,
            tags::PHOTOMETRIC_INTERPRETATION,
            VR::CS,
            "MONOCHROME2",
        );
        put(&mut obj, tags::ROWS, VR::US, PrimitiveValue::from(rows));
        put(&mut obj, tags::COLUMNS, VR::US, PrimitiveValue::from(cols));
        // PixelSpacing is (spacing between rows, spacing between columns) = (y, x).
        put(
            &mut obj,
            tags::PIXEL_SPACING,
            VR::DS,
            ds_multi(&[spacing.y_mm(), spacing.x_mm()]),
        );
        put(
            &mut obj,
            tags::BITS_ALLOCATED,
            VR::US,
            PrimitiveValue::from(16u16),
        );
        put(
            &mut obj,
            tags::BITS_STORED,
            VR::US,
            PrimitiveValue::from(16u16),
        );
        put(
            &mut obj,
            tags::HIGH_BIT,
            VR::US,
            PrimitiveValue::from(15u16),
        );
        let repr: u16 = if storage == Storage::Unsigned { 0 } else { 1 };
        put(
            &mut obj,
            tags::PIXEL_REPRESENTATION,
            VR::US,
            PrimitiveValue::from(repr),
        );
        put(&mut obj, tags::WINDOW_CENTER, VR::DS, "-600");
        put(&mut obj, tags::WINDOW_WIDTH, VR::DS, "1500");
        put(
            &mut obj,
            tags::RESCALE_INTERCEPT,
            VR::DS,
            storage.intercept().to_string(),
        );
        put(&mut obj, tags::RESCALE_SLOPE, VR::DS, "1");
        put(&mut obj, tags::RESCALE_TYPE, VR::LO, "HU");
        let slice = voxels.index_axis(ndarray::Axis(0), k);
        let pixels: dicom_core::value::C<u16> = slice.iter().map(|&hu| storage.store(hu)).collect();
        put(
            &mut obj,
            tags::PIXEL_DATA,
            VR::OW,
            PrimitiveValue::U16(pixels),
        );
        let file = obj
            .with_meta(
                FileMetaTableBuilder::new()
                    .transfer_syntax(uids::EXPLICIT_VR_LITTLE_ENDIAN)
                    .implementation_version_name("SPECK"),
            )
            .map_err(|e| VolumeError::malformed(&path, format!("DICOM file meta: {e}")))?;
        file.write_to_file(&path)
            .map_err(|e| write_error(&path, &e))
    })
}

/// A DICOM write error: an I/O failure anywhere in its chain (full disk, read-only folder) is
/// [`VolumeError::Io`] with the OS error, so that it is never mistaken for bad input.
fn write_error(path: &Path, e: &dicom_object::WriteError) -> VolumeError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            let copy = match io.raw_os_error() {
                Some(code) => std::io::Error::from_raw_os_error(code),
                None => std::io::Error::new(io.kind(), io.to_string()),
            };
            return VolumeError::io(path, copy);
        }
        source = s.source();
    }
    VolumeError::malformed(path, format!("writing DICOM: {e}"))
}

fn cross(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ds_fits_sixteen_chars_and_keeps_precision() {
        for v in [
            0.0,
            -0.0,
            1.0,
            0.703125,
            -175.5,
            std::f64::consts::FRAC_1_SQRT_2,
            -123456.789012345,
            1e-12,
        ] {
            let s = ds(v);
            assert!(s.len() <= 16, "{v} -> {s}");
            let back: f64 = s.parse().expect("parses");
            assert!(
                (back - v).abs() <= 1e-9 * v.abs().max(1.0) * 1e4,
                "{v} -> {s}"
            );
        }
        assert_eq!(ds(-0.0), "0");
        assert_eq!(ds(2.5), "2.5");
    }

    #[test]
    fn storage_round_trips_hu() {
        for (mn, mx) in [(-1024i16, 3000i16), (-3024, 3000), (-32768, 32767)] {
            let s = Storage::choose(mn, mx);
            for hu in [mn, mx, 0, -1000] {
                let stored = s.store(hu);
                let value = if s == Storage::Unsigned {
                    i32::from(stored)
                } else {
                    i32::from(stored as i16)
                };
                assert_eq!(value + s.intercept(), i32::from(hu), "{s:?} {hu}");
            }
        }
    }
}
