//! Pixel data of one frame to stored integer values (before RescaleSlope/Intercept).
//!
//! Rescaling is *not* done here and not by `dicom-pixeldata` either: the native path reads the
//! stored bits directly, and the encapsulated path takes the decoder's raw samples, so the caller
//! applies each frame's slope and intercept exactly once.

use std::borrow::Cow;
use std::path::Path;

use dicom_core::value::Value;
use dicom_dictionary_std::{tags, uids};
use dicom_object::DefaultDicomObject;
use dicom_pixeldata::PixelDecoder;
use dicom_transfer_syntax_registry::{TransferSyntaxIndex, TransferSyntaxRegistry};

use crate::VolumeError;

/// Explicit VR Big Endian (retired; its constant in the dictionary is deprecated).
const EXPLICIT_VR_BIG_ENDIAN: &str = "1.2.840.10008.1.2.2";

/// A DICOM file opened with its pixel data, ready to hand out frames.
pub(crate) struct PixelSource {
    obj: DefaultDicomObject,
    /// All native (uncompressed) pixel bytes, little endian; `None` when encapsulated.
    native: Option<Vec<u8>>,
    format: Format,
}

#[derive(Debug, Clone, Copy)]
struct Format {
    rows: usize,
    cols: usize,
    bits_allocated: u16,
    bits_stored: u16,
    signed: bool,
}

fn ts_name(uid: &str) -> String {
    match TransferSyntaxRegistry.get(uid) {
        Some(ts) => format!("{} ({uid})", ts.name()),
        None => format!("unknown transfer syntax {uid}"),
    }
}

fn us(
    obj: &DefaultDicomObject,
    path: &Path,
    tag: dicom_core::Tag,
    name: &str,
) -> Result<u16, VolumeError> {
    obj.get(tag)
        .ok_or_else(|| VolumeError::malformed(path, format!("missing {name}")))?
        .to_int::<u16>()
        .map_err(|e| VolumeError::malformed(path, format!("{name}: {e}")))
}

impl PixelSource {
    /// Open `path` fully and check that its pixels are something Speck can turn into HU.
    pub(crate) fn open(path: &Path) -> Result<Self, VolumeError> {
        let obj = dicom_object::open_file(path)
            .map_err(|e| VolumeError::malformed(path, format!("not a readable DICOM file: {e}")))?;
        let ts = obj
            .meta()
            .transfer_syntax()
            .trim_end_matches(['\0', ' '])
            .to_string();
        let samples = obj
            .get(tags::SAMPLES_PER_PIXEL)
            .and_then(|e| e.to_int::<u16>().ok())
            .unwrap_or(1);
        if samples != 1 {
            return Err(VolumeError::unsupported(
                path,
                format!("{samples} samples per pixel (colour); CT images are greyscale"),
            ));
        }
        let photometric = obj
            .get(tags::PHOTOMETRIC_INTERPRETATION)
            .and_then(|e| e.to_str().ok().map(|s| s.trim().to_string()))
            .unwrap_or_default();
        if !photometric.is_empty() && !photometric.starts_with("MONOCHROME") {
            return Err(VolumeError::unsupported(
                path,
                format!("photometric interpretation {photometric}; CT images are MONOCHROME"),
            ));
        }
        let format = Format {
            rows: usize::from(us(&obj, path, tags::ROWS, "Rows")?),
            cols: usize::from(us(&obj, path, tags::COLUMNS, "Columns")?),
            bits_allocated: us(&obj, path, tags::BITS_ALLOCATED, "BitsAllocated")?,
            bits_stored: obj
                .get(tags::BITS_STORED)
                .and_then(|e| e.to_int::<u16>().ok())
                .unwrap_or(0),
            signed: obj
                .get(tags::PIXEL_REPRESENTATION)
                .and_then(|e| e.to_int::<u16>().ok())
                .unwrap_or(0)
                == 1,
        };
        let mut format = format;
        if !matches!(format.bits_allocated, 8 | 16 | 32) {
            return Err(VolumeError::unsupported(
                path,
                format!(
                    "BitsAllocated {} (only 8, 16 and 32 are read)",
                    format.bits_allocated
                ),
            ));
        }
        if format.bits_stored == 0 || format.bits_stored > format.bits_allocated {
            format.bits_stored = format.bits_allocated;
        }
        let registry_ts = TransferSyntaxRegistry.get(&ts);
        let Some(registry_ts) = registry_ts else {
            return Err(VolumeError::unsupported(path, ts_name(&ts)));
        };
        if ts == uids::JPEG_EXTENDED12_BIT && format.bits_stored > 8 {
            return Err(VolumeError::unsupported(
                path,
                format!(
                    "transfer syntax {}: 12-bit JPEG (extended process 2 & 4) is not decoded by \
                     dicom-pixeldata; convert the series (e.g. `gdcmconv --raw`) first",
                    ts_name(&ts)
                ),
            ));
        }
        if ts == EXPLICIT_VR_BIG_ENDIAN {
            return Err(VolumeError::unsupported(
                path,
                format!("retired transfer syntax {}", ts_name(&ts)),
            ));
        }
        let native = if registry_ts.is_encapsulated_pixel_data() {
            if !registry_ts.can_decode_all() {
                return Err(VolumeError::unsupported(
                    path,
                    format!("no decoder for transfer syntax {}", ts_name(&ts)),
                ));
            }
            None
        } else {
            let element = obj
                .get(tags::PIXEL_DATA)
                .ok_or_else(|| VolumeError::malformed(path, "no PixelData"))?;
            match element.value() {
                Value::Primitive(p) => Some(p.to_bytes().into_owned()),
                _ => {
                    return Err(VolumeError::malformed(
                        path,
                        format!(
                            "encapsulated PixelData in a native transfer syntax {}",
                            ts_name(&ts)
                        ),
                    ))
                }
            }
        };
        Ok(Self {
            obj,
            native,
            format,
        })
    }

    /// The stored values of frame `frame` (row-major, `rows * cols`), sign-extended from
    /// BitsStored, without any rescale.
    pub(crate) fn frame_values(&self, path: &Path, frame: u32) -> Result<Vec<i32>, VolumeError> {
        let f = self.format;
        let n = f.rows * f.cols;
        let bytes_per = usize::from(f.bits_allocated / 8);
        let bytes: Cow<'_, [u8]> = match &self.native {
            Some(all) => {
                let start = n * bytes_per * frame as usize;
                let chunk = all.get(start..start + n * bytes_per).ok_or_else(|| {
                    VolumeError::malformed(
                        path,
                        format!(
                            "PixelData holds {} bytes, frame {frame} needs bytes {start}..{}",
                            all.len(),
                            start + n * bytes_per
                        ),
                    )
                })?;
                Cow::Borrowed(chunk)
            }
            None => {
                let ts = self
                    .obj
                    .meta()
                    .transfer_syntax()
                    .trim_end_matches('\0')
                    .to_string();
                let decoded = self.obj.decode_pixel_data_frame(frame).map_err(|e| {
                    VolumeError::malformed(
                        path,
                        format!("decoding frame {frame} ({}): {e}", ts_name(&ts)),
                    )
                })?;
                if decoded.bits_allocated() != f.bits_allocated || decoded.samples_per_pixel() != 1
                {
                    return Err(VolumeError::malformed(
                        path,
                        format!(
                            "decoder returned {} bits x {} samples, header says {} bits x 1",
                            decoded.bits_allocated(),
                            decoded.samples_per_pixel(),
                            f.bits_allocated
                        ),
                    ));
                }
                let data = decoded.into_data();
                if data.len() < n * bytes_per {
                    return Err(VolumeError::malformed(
                        path,
                        format!(
                            "frame {frame} decoded to {} bytes, {} expected ({})",
                            data.len(),
                            n * bytes_per,
                            ts_name(&ts)
                        ),
                    ));
                }
                Cow::Owned(data)
            }
        };
        let bits = u32::from(f.bits_stored);
        let mask: u32 = if bits >= 32 {
            u32::MAX
        } else {
            (1u32 << bits) - 1
        };
        let sign_shift = 32 - bits;
        let convert = |raw: u32| -> i32 {
            let v = raw & mask;
            if f.signed {
                ((v << sign_shift) as i32) >> sign_shift
            } else {
                // Unsigned 32-bit values beyond i32 cannot be HU anyway; saturate.
                i32::try_from(v).unwrap_or(i32::MAX)
            }
        };
        let out = match bytes_per {
            1 => bytes[..n].iter().map(|&b| convert(u32::from(b))).collect(),
            2 => bytes[..2 * n]
                .chunks_exact(2)
                .map(|c| convert(u32::from(u16::from_le_bytes([c[0], c[1]]))))
                .collect(),
            _ => bytes[..4 * n]
                .chunks_exact(4)
                .map(|c| convert(u32::from_le_bytes([c[0], c[1], c[2], c[3]])))
                .collect(),
        };
        Ok(out)
    }

    /// Rows and columns of the image.
    pub(crate) fn rows_cols(&self) -> (usize, usize) {
        (self.format.rows, self.format.cols)
    }
}
