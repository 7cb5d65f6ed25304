//! Pixel data of one frame to stored integer values (before RescaleSlope/Intercept).
//!
//! Rescaling is *not* done here and not by `dicom-pixeldata` either: native pixel data is read
//! straight from the file at the offset the length guard found (no parsing, one read), and
//! encapsulated data goes through `dicom-pixeldata`'s decoders, whose raw samples are taken as they
//! are; the caller applies each frame's slope and intercept exactly once.

use std::borrow::Cow;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use dicom_core::value::Value;
use dicom_dictionary_std::{tags, uids};
use dicom_object::DefaultDicomObject;
use dicom_pixeldata::PixelDecoder;
use dicom_transfer_syntax_registry::{TransferSyntaxIndex, TransferSyntaxRegistry};

use super::header::FileHeader;
use crate::VolumeError;

/// Explicit VR Big Endian (retired; its constant in the dictionary is deprecated).
const EXPLICIT_VR_BIG_ENDIAN: &str = "1.2.840.10008.1.2.2";

/// Where a file's pixels come from.
enum Data {
    /// Native pixel bytes (little endian), all frames.
    Native(Vec<u8>),
    /// Encapsulated (compressed) pixel data, decoded frame by frame.
    Encapsulated(Box<DefaultDicomObject>),
}

/// A DICOM file's pixel data, ready to hand out frames.
pub(crate) struct PixelSource {
    data: Data,
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

impl PixelSource {
    /// Check that the pixels of the file `h` describes are something Speck can turn into HU, and
    /// load them (native) or the object (encapsulated).
    pub(crate) fn open(h: &FileHeader) -> Result<Self, VolumeError> {
        let path = h.path.as_path();
        if h.samples_per_pixel != 1 {
            return Err(VolumeError::unsupported(
                path,
                format!(
                    "{} samples per pixel (colour); CT images are greyscale",
                    h.samples_per_pixel
                ),
            ));
        }
        if !h.photometric.is_empty() && !h.photometric.starts_with("MONOCHROME") {
            return Err(VolumeError::unsupported(
                path,
                format!(
                    "photometric interpretation {}; CT images are MONOCHROME",
                    h.photometric
                ),
            ));
        }
        if !matches!(h.bits_allocated, 8 | 16 | 32) {
            return Err(VolumeError::unsupported(
                path,
                format!(
                    "BitsAllocated {} (only 8, 16 and 32 are read)",
                    h.bits_allocated
                ),
            ));
        }
        let format = Format {
            rows: h.rows as usize,
            cols: h.cols as usize,
            bits_allocated: h.bits_allocated,
            bits_stored: h.bits_stored,
            signed: h.signed,
        };
        let ts = h.transfer_syntax.as_str();
        let Some(registry_ts) = TransferSyntaxRegistry.get(ts) else {
            return Err(VolumeError::unsupported(path, ts_name(ts)));
        };
        if ts == uids::JPEG_EXTENDED12_BIT && format.bits_stored > 8 {
            return Err(VolumeError::unsupported(
                path,
                format!(
                    "transfer syntax {}: 12-bit JPEG (extended process 2 & 4) is not decoded by \
                     dicom-pixeldata; convert the series (e.g. `gdcmconv --raw`) first",
                    ts_name(ts)
                ),
            ));
        }
        if ts == EXPLICIT_VR_BIG_ENDIAN {
            return Err(VolumeError::unsupported(
                path,
                format!("retired transfer syntax {}", ts_name(ts)),
            ));
        }
        let frame_bytes = format.rows * format.cols * usize::from(format.bits_allocated / 8);
        let needed = frame_bytes as u64 * u64::from(h.n_frames);
        let data = if registry_ts.is_encapsulated_pixel_data() {
            if !registry_ts.can_decode_all() {
                return Err(VolumeError::unsupported(
                    path,
                    format!("no decoder for transfer syntax {}", ts_name(ts)),
                ));
            }
            let obj = super::header::open_object(path, h.framing)?;
            Data::Encapsulated(Box::new(obj))
        } else if let Some((offset, len)) = h.native_pixel_data {
            if len < needed {
                // The first frame that does not fit.
                let frame = len / frame_bytes as u64;
                let start = frame * frame_bytes as u64;
                return Err(VolumeError::malformed(
                    path,
                    format!(
                        "PixelData holds {len} bytes, frame {frame} needs bytes {start}..{}",
                        start + frame_bytes as u64
                    ),
                ));
            }
            let mut f = std::fs::File::open(path).map_err(|e| VolumeError::io(path, e))?;
            f.seek(SeekFrom::Start(offset))
                .map_err(|e| VolumeError::io(path, e))?;
            let mut bytes = vec![0u8; needed as usize];
            f.read_exact(&mut bytes)
                .map_err(|e| VolumeError::io(path, e))?;
            Data::Native(bytes)
        } else {
            // Native but not found by the guard (deflated data set): let dicom-object parse it.
            let obj = super::header::open_object(path, h.framing)?;
            let element = obj
                .get(tags::PIXEL_DATA)
                .ok_or_else(|| VolumeError::malformed(path, "no PixelData"))?;
            match element.value() {
                Value::Primitive(p) => Data::Native(p.to_bytes().into_owned()),
                _ => {
                    return Err(VolumeError::malformed(
                        path,
                        format!(
                            "encapsulated PixelData in a native transfer syntax {}",
                            ts_name(ts)
                        ),
                    ))
                }
            }
        };
        Ok(Self { data, format })
    }

    /// The stored values of frame `frame` (row-major, `rows * cols`), sign-extended from
    /// BitsStored, without any rescale.
    pub(crate) fn frame_values(&self, path: &Path, frame: u32) -> Result<Vec<i32>, VolumeError> {
        let mut out = vec![0i32; self.format.rows * self.format.cols];
        self.frame_into(path, frame, &mut out, |o, v| *o = v)?;
        Ok(out)
    }

    /// As [`Self::frame_values`], but hands each stored value to `sink` together with its slot in
    /// `out` (`rows * cols` long), so callers convert straight into their output without an
    /// intermediate buffer (the hot path of series loading).
    pub(crate) fn frame_into<T, F: FnMut(&mut T, i32)>(
        &self,
        path: &Path,
        frame: u32,
        out: &mut [T],
        mut sink: F,
    ) -> Result<(), VolumeError> {
        let f = self.format;
        let n = f.rows * f.cols;
        let bytes_per = usize::from(f.bits_allocated / 8);
        let bytes: Cow<'_, [u8]> = match &self.data {
            Data::Native(all) => {
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
            Data::Encapsulated(obj) => {
                let ts = obj
                    .meta()
                    .transfer_syntax()
                    .trim_end_matches('\0')
                    .to_string();
                // dicom-pixeldata's decoders can panic on corrupt streams (RLE segments shorter
                // than the frame index out of bounds; fuzz: regression_dicom_file_4): a panic
                // there is a corrupt file, not a crash.
                let decoded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    obj.decode_pixel_data_frame(frame)
                }))
                .map_err(|_| {
                    VolumeError::malformed(
                        path,
                        format!(
                            "decoding frame {frame} ({}): the decoder failed",
                            ts_name(&ts)
                        ),
                    )
                })?
                .map_err(|e| {
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
        if out.len() != n {
            return Err(VolumeError::malformed(
                path,
                format!("frame {frame} has {n} pixels, {} expected", out.len()),
            ));
        }
        match bytes_per {
            1 => {
                for (o, &b) in out.iter_mut().zip(&bytes[..n]) {
                    sink(o, convert(u32::from(b)));
                }
            }
            2 => {
                for (o, c) in out.iter_mut().zip(bytes[..2 * n].chunks_exact(2)) {
                    sink(o, convert(u32::from(u16::from_le_bytes([c[0], c[1]]))));
                }
            }
            _ => {
                for (o, c) in out.iter_mut().zip(bytes[..4 * n].chunks_exact(4)) {
                    sink(o, convert(u32::from_le_bytes([c[0], c[1], c[2], c[3]])));
                }
            }
        }
        Ok(())
    }
}
