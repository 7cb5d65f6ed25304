//! A pre-flight walk over every element length of a DICOM file, before `dicom-object` parses it.
//!
//! `dicom-object` allocates (and zero-fills) a value's declared length before reading it, so a
//! 700-byte file whose PixelData claims 4 GB would make it allocate 4 GB. This walk reads only tags
//! and lengths, seeking over values, and refuses any element, item or sequence that claims more
//! bytes than remain in its file (or in its enclosing item), nesting deeper than [`MAX_DEPTH`], or
//! a deflated data set that inflates beyond the byte limit.

use std::io::{BufReader, Cursor, Read, Seek};
use std::path::Path;

use dicom_core::dictionary::{DataDictionary, DataDictionaryEntry, VirtualVr};
use dicom_core::{Tag, VR};
use dicom_dictionary_std::StandardDataDictionary;

use super::header::Framing;
use crate::VolumeError;

/// Deepest nesting of sequences accepted.
const MAX_DEPTH: u32 = 32;
const UNDEFINED: u32 = 0xFFFF_FFFF;
const DEFLATED: &str = "1.2.840.10008.1.2.1.99";
const IMPLICIT: &str = "1.2.840.10008.1.2";
const BIG_ENDIAN: &str = "1.2.840.10008.1.2.2";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Enc {
    ExplicitLe,
    ImplicitLe,
    ExplicitBe,
}

struct Cur<R> {
    r: R,
    pos: u64,
}

impl<R: Read + SeekRelative> Cur<R> {
    fn bytes<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let mut b = [0u8; N];
        self.r
            .read_exact(&mut b)
            .map_err(|_| format!("truncated at byte {}", self.pos))?;
        self.pos += N as u64;
        Ok(b)
    }

    fn u16(&mut self, enc: Enc) -> Result<u16, String> {
        let b = self.bytes::<2>()?;
        Ok(if enc == Enc::ExplicitBe {
            u16::from_be_bytes(b)
        } else {
            u16::from_le_bytes(b)
        })
    }

    fn u32(&mut self, enc: Enc) -> Result<u32, String> {
        let b = self.bytes::<4>()?;
        Ok(if enc == Enc::ExplicitBe {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        })
    }

    fn tag(&mut self, enc: Enc) -> Result<Tag, String> {
        Ok(Tag(self.u16(enc)?, self.u16(enc)?))
    }

    fn skip(&mut self, n: u64) -> Result<(), String> {
        let n_i64 = i64::try_from(n).map_err(|_| format!("length {n} too large"))?;
        self.r
            .seek_relative(n_i64)
            .map_err(|e| format!("seek at byte {}: {e}", self.pos))?;
        self.pos += n;
        Ok(())
    }
}

/// Relative seeks that keep a `BufReader`'s buffer when they can.
trait SeekRelative {
    fn seek_relative(&mut self, n: i64) -> std::io::Result<()>;
}

impl SeekRelative for BufReader<std::fs::File> {
    fn seek_relative(&mut self, n: i64) -> std::io::Result<()> {
        BufReader::seek_relative(self, n)
    }
}

impl SeekRelative for Cursor<Vec<u8>> {
    fn seek_relative(&mut self, n: i64) -> std::io::Result<()> {
        self.seek(std::io::SeekFrom::Current(n)).map(|_| ())
    }
}

/// Whether an explicit-VR header has the 12-byte form (2 reserved bytes, 4-byte length). As in
/// dicom-encoding, only the listed VRs have a 2-byte length: any other pair of letters, known or
/// not, is read as UN with a 4-byte length (fuzz: regression_dicom_file_2).
fn long_form(vr: &[u8; 2]) -> bool {
    !matches!(
        vr,
        b"AE"
            | b"AS"
            | b"AT"
            | b"CS"
            | b"DA"
            | b"DS"
            | b"DT"
            | b"FL"
            | b"FD"
            | b"IS"
            | b"LO"
            | b"LT"
            | b"PN"
            | b"SH"
            | b"SL"
            | b"SS"
            | b"ST"
            | b"TM"
            | b"UI"
            | b"UL"
            | b"US"
    )
}

fn dictionary_says_sequence(tag: Tag) -> bool {
    StandardDataDictionary
        .by_tag(tag)
        .is_some_and(|e| e.vr() == VirtualVr::Exact(VR::SQ))
}

/// The size of one value of a binary VR (explicit, or from the dictionary in implicit VR), whose
/// length must be a multiple of it.
fn binary_value_size(vr: Option<[u8; 2]>, tag: Tag) -> Option<u32> {
    let code: [u8; 2] = match vr {
        Some(v) => v,
        None => match StandardDataDictionary.by_tag(tag).map(|e| e.vr()) {
            Some(VirtualVr::Exact(v)) => {
                let b = v.to_string().as_bytes();
                [b[0], b[1]]
            }
            Some(VirtualVr::Xs) => return Some(2),
            _ => return None,
        },
    };
    match &code {
        b"US" | b"SS" | b"OW" => Some(2),
        b"AT" | b"SL" | b"UL" | b"OL" | b"FL" | b"OF" => Some(4),
        b"FD" | b"OD" | b"SV" | b"UV" | b"OV" => Some(8),
        _ => None,
    }
}

struct Walker<R> {
    c: Cur<R>,
    /// Offset and length of the top-level PixelData value, when its length is defined.
    pixel_data: Option<(u64, u64)>,
}

/// What the walk learnt about a file besides its lengths being sound.
#[derive(Debug, Clone, Default)]
pub(crate) struct Layout {
    /// TransferSyntaxUID from the file meta group.
    pub transfer_syntax: String,
    /// Byte offset and length of the top-level PixelData value in the file, when it is stored
    /// natively with a defined length (`None` for encapsulated or deflated data).
    pub native_pixel_data: Option<(u64, u64)>,
}

impl<R: Read + SeekRelative> Walker<R> {
    /// Walk data elements until `end`, or until an item delimiter when `in_undefined_item`.
    fn dataset(
        &mut self,
        end: u64,
        enc: Enc,
        depth: u32,
        in_undefined_item: bool,
    ) -> Result<(), String> {
        if depth > MAX_DEPTH {
            return Err(format!("sequences nested deeper than {MAX_DEPTH}"));
        }
        while self.c.pos < end {
            let tag = self.c.tag(enc)?;
            if tag == Tag(0xFFFE, 0xE00D) {
                self.c.u32(enc)?;
                return if in_undefined_item {
                    Ok(())
                } else {
                    Err(format!("stray item delimiter at byte {}", self.c.pos - 8))
                };
            }
            if tag.0 == 0xFFFE {
                return Err(format!("unexpected {tag} at byte {}", self.c.pos - 4));
            }
            let (vr, len) = match enc {
                Enc::ImplicitLe => (None, self.c.u32(enc)?),
                Enc::ExplicitLe | Enc::ExplicitBe => {
                    let vr = self.c.bytes::<2>()?;
                    if !vr.iter().all(u8::is_ascii_uppercase) {
                        return Err(format!(
                            "invalid VR {vr:?} for {tag} at byte {}",
                            self.c.pos - 6
                        ));
                    }
                    let len = if long_form(&vr) {
                        self.c.bytes::<2>()?;
                        self.c.u32(enc)?
                    } else {
                        u32::from(self.c.u16(enc)?)
                    };
                    (Some(vr), len)
                }
            };
            let is_sq = match vr {
                Some(v) => &v == b"SQ",
                None => dictionary_says_sequence(tag),
            };
            if len == UNDEFINED {
                let fragments = matches!(vr, Some(v) if &v == b"OB" || &v == b"OW")
                    || (vr.is_none() && tag == Tag(0x7FE0, 0x0010));
                // Undefined-length UN holds implicit VR little endian data (PS3.5 6.2.2), but
                // dicom-parser 0.10 reads it in the data set's own encoding: walk it as the
                // parser will, or a length it trusts goes unchecked (fuzz: regression_dicom_file_1).
                let is_un = matches!(vr, Some(v) if &v == b"UN");
                self.items(end, enc, depth + 1, fragments).map_err(|e| {
                    if is_un {
                        format!("undefined-length UN element {tag} that dicom-rs cannot read: {e}")
                    } else {
                        e
                    }
                })?;
            } else {
                // The header itself may end past a short item (fuzz: regression_dicom_file_3).
                let left = end.checked_sub(self.c.pos).ok_or_else(|| {
                    format!(
                        "element {tag} header overruns its item at byte {}",
                        self.c.pos
                    )
                })?;
                if u64::from(len) > left {
                    return Err(format!(
                        "element {tag} claims {len} bytes but only {left} remain"
                    ));
                }
                // dicom-parser reads `len / size` binary values but advances its position by
                // `len`: a remainder desynchronises every later header (fuzz:
                // regression_dicom_series_1).
                if let Some(size) = binary_value_size(vr, tag) {
                    if len % size != 0 {
                        return Err(format!(
                            "element {tag} has {len} bytes, not a whole number of {size}-byte \
                             values"
                        ));
                    }
                }
                if is_sq {
                    let item_end = self.c.pos + u64::from(len);
                    self.items(item_end, enc, depth + 1, false)?;
                    if self.c.pos != item_end {
                        return Err(format!("sequence {tag} overruns its length"));
                    }
                } else {
                    if depth == 0 && tag == Tag(0x7FE0, 0x0010) {
                        self.pixel_data = Some((self.c.pos, u64::from(len)));
                    }
                    self.c.skip(u64::from(len))?;
                }
            }
        }
        if in_undefined_item {
            return Err("item without its delimiter before the end of its container".into());
        }
        Ok(())
    }

    /// Items of a sequence (or fragments of encapsulated pixel data) until `end` or a sequence
    /// delimiter.
    fn items(&mut self, end: u64, enc: Enc, depth: u32, fragments: bool) -> Result<(), String> {
        if depth > MAX_DEPTH {
            return Err(format!("sequences nested deeper than {MAX_DEPTH}"));
        }
        while self.c.pos < end {
            let tag = self.c.tag(enc)?;
            let len = self.c.u32(enc)?;
            if tag == Tag(0xFFFE, 0xE0DD) {
                return Ok(());
            }
            if tag != Tag(0xFFFE, 0xE000) {
                return Err(format!(
                    "expected an item, found {tag} at byte {}",
                    self.c.pos - 8
                ));
            }
            if len == UNDEFINED {
                if fragments {
                    return Err("pixel data fragment of undefined length".into());
                }
                self.dataset(end, enc, depth + 1, true)?;
            } else {
                // The header itself may end past a short item (fuzz: regression_dicom_file_3).
                let left = end.checked_sub(self.c.pos).ok_or_else(|| {
                    format!("item header overruns its sequence at byte {}", self.c.pos)
                })?;
                if u64::from(len) > left {
                    return Err(format!("item claims {len} bytes but only {left} remain"));
                }
                if fragments {
                    self.c.skip(u64::from(len))?;
                } else {
                    let item_end = self.c.pos + u64::from(len);
                    self.dataset(item_end, enc, depth + 1, false)?;
                }
            }
        }
        Ok(())
    }
}

/// One element header of the file meta group (explicit VR little endian): group, element and
/// value length. The header form follows dicom-encoding, as everywhere in this guard.
fn meta_header<R: Read + SeekRelative>(
    c: &mut Cur<R>,
    file_len: u64,
) -> Result<(u16, u16, u32), String> {
    if c.pos + 8 > file_len {
        return Err(format!("file meta group ends early at byte {}", c.pos));
    }
    let group = c.u16(Enc::ExplicitLe)?;
    let element = c.u16(Enc::ExplicitLe)?;
    let vr = c.bytes::<2>()?;
    if !vr.iter().all(u8::is_ascii_uppercase) {
        return Err(format!(
            "invalid VR {vr:?} in meta element ({group:04X},{element:04X})"
        ));
    }
    let len = if long_form(&vr) {
        c.bytes::<2>()?;
        c.u32(Enc::ExplicitLe)?
    } else {
        u32::from(c.u16(Enc::ExplicitLe)?)
    };
    Ok((group, element, len))
}

/// Check every length in `path`, framed as `framing` (a Part 10 file with or without the 128-byte
/// preamble before `DICM`, or a bare data set). `max_inflated` bounds the inflated size of a
/// deflated data set.
pub(crate) fn check_lengths(
    path: &Path,
    framing: Framing,
    max_inflated: u64,
) -> Result<Layout, VolumeError> {
    let bad = |reason: String| VolumeError::malformed(path, format!("corrupt DICOM: {reason}"));
    let file = std::fs::File::open(path).map_err(|e| VolumeError::io(path, e))?;
    let file_len = file.metadata().map_err(|e| VolumeError::io(path, e))?.len();
    let mut w = Walker {
        c: Cur {
            r: BufReader::with_capacity(16 * 1024, file),
            pos: 0,
        },
        pixel_data: None,
    };
    let skip = match framing {
        Framing::Preamble => 132,
        Framing::NoPreamble => 4,
        Framing::Raw(ts) => {
            let enc = if ts == IMPLICIT {
                Enc::ImplicitLe
            } else {
                Enc::ExplicitLe
            };
            w.dataset(file_len, enc, 0, false).map_err(bad)?;
            return Ok(Layout {
                native_pixel_data: w.pixel_data,
                transfer_syntax: ts.to_string(),
            });
        }
    };
    w.c.skip(skip).map_err(bad)?;
    // File meta group, explicit VR little endian, walked exactly as dicom-object 0.10 reads it
    // (`FileMetaTable::from_reader`): the first element must be the group length (0002,0000), a
    // 4-byte UL; then elements, of any group, are read until that many bytes are consumed, and
    // the data set starts where that read stops. Stopping at the first element outside group
    // 0002 instead (as this guard once did) let a file whose group length runs past such an
    // element start its data set at a place the parser never reads from
    // (fuzz: regression_dicom_file_5).
    let (group, element, len) = meta_header(&mut w.c, file_len).map_err(bad)?;
    if (group, element, len) != (0x0002, 0x0000, 4) {
        return Err(bad(format!(
            "the file meta group does not begin with its group length (0002,0000) of 4 bytes, but with ({group:04X},{element:04X}) of {len} bytes"
        )));
    }
    let group_length = u64::from(w.c.u32(Enc::ExplicitLe).map_err(bad)?);
    let mut consumed = 0u64;
    let mut ts = String::new();
    while consumed < group_length {
        let start = w.c.pos;
        let (group, element, len) = meta_header(&mut w.c, file_len).map_err(bad)?;
        let left = file_len - w.c.pos;
        if u64::from(len) > left {
            return Err(bad(format!(
                "meta element ({group:04X},{element:04X}) claims {len} bytes but only {left} remain"
            )));
        }
        if (group, element) == (0x0002, 0x0010) && len <= 128 {
            let mut v = vec![0u8; len as usize];
            w.c.r.read_exact(&mut v).map_err(|e| bad(e.to_string()))?;
            w.c.pos += u64::from(len);
            ts = String::from_utf8_lossy(&v)
                .trim_end_matches(['\0', ' '])
                .to_string();
        } else {
            w.c.skip(u64::from(len)).map_err(bad)?;
        }
        consumed += w.c.pos - start;
    }
    if ts == DEFLATED {
        let mut raw = Vec::new();
        let limit = max_inflated.saturating_add(1);
        flate2::read::DeflateDecoder::new(w.c.r)
            .take(limit)
            .read_to_end(&mut raw)
            .map_err(|e| bad(format!("inflating the deflated data set: {e}")))?;
        if raw.len() as u64 > max_inflated {
            return Err(VolumeError::TooLarge {
                path: path.to_path_buf(),
                reason: "the deflated data set inflates beyond the byte limit".into(),
                limit: format!("{max_inflated} bytes"),
            });
        }
        let end = raw.len() as u64;
        let mut inner = Walker {
            c: Cur {
                r: Cursor::new(raw),
                pos: 0,
            },
            pixel_data: None,
        };
        inner.dataset(end, Enc::ExplicitLe, 0, false).map_err(bad)?;
        return Ok(Layout {
            transfer_syntax: ts,
            native_pixel_data: None,
        });
    }
    let enc = match ts.as_str() {
        IMPLICIT => Enc::ImplicitLe,
        BIG_ENDIAN => Enc::ExplicitBe,
        _ => Enc::ExplicitLe,
    };
    w.dataset(file_len, enc, 0, false).map_err(bad)?;
    Ok(Layout {
        native_pixel_data: if enc == Enc::ExplicitBe {
            None
        } else {
            w.pixel_data
        },
        transfer_syntax: ts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use dicom_core::value::{DataSetSequence, PrimitiveValue};
    use dicom_core::DataElement;
    use dicom_dictionary_std::{tags, uids};
    use dicom_object::{FileMetaTableBuilder, InMemDicomObject};

    /// A small object with a nested sequence, written with transfer syntax `ts`.
    fn write(path: &Path, ts: &str) {
        let mut item = InMemDicomObject::new_empty();
        item.put(DataElement::new(
            tags::REFERENCED_SOP_CLASS_UID,
            VR::UI,
            PrimitiveValue::from("1.2.3.4"),
        ));
        let mut obj = InMemDicomObject::new_empty();
        obj.put(DataElement::new(
            tags::SOP_CLASS_UID,
            VR::UI,
            PrimitiveValue::from("1.2.3"),
        ));
        obj.put(DataElement::new(
            tags::SOP_INSTANCE_UID,
            VR::UI,
            PrimitiveValue::from("1.2.3.5"),
        ));
        obj.put(DataElement::new(
            tags::REFERENCED_IMAGE_SEQUENCE,
            VR::SQ,
            DataSetSequence::from(vec![item]),
        ));
        obj.put(DataElement::new(
            tags::PIXEL_DATA,
            VR::OW,
            PrimitiveValue::U8(vec![7u8; 32].into()),
        ));
        obj.with_meta(FileMetaTableBuilder::new().transfer_syntax(ts))
            .expect("meta")
            .write_to_file(path)
            .expect("write");
    }

    /// Overwrite the 4-byte length that follows the (implicit VR) tag `tag` with `len`.
    fn patch_implicit_length(path: &Path, tag: Tag, len: u32) {
        let mut b = std::fs::read(path).expect("read");
        let mut needle = tag.0.to_le_bytes().to_vec();
        needle.extend(tag.1.to_le_bytes());
        let at = b
            .windows(4)
            .rposition(|w| w == needle.as_slice())
            .expect("tag present");
        b[at + 4..at + 8].copy_from_slice(&len.to_le_bytes());
        std::fs::write(path, b).expect("write");
    }

    #[test]
    fn sound_files_pass_and_native_pixel_data_is_located() {
        let dir = tempfile::tempdir().expect("tmp");
        for ts in [
            uids::IMPLICIT_VR_LITTLE_ENDIAN,
            uids::EXPLICIT_VR_LITTLE_ENDIAN,
        ] {
            let p = dir.path().join("ok.dcm");
            write(&p, ts);
            let layout = check_lengths(&p, Framing::Preamble, 1 << 20).expect("sound file");
            let (offset, len) = layout.native_pixel_data.expect("pixel data found");
            assert_eq!(len, 32);
            let bytes = std::fs::read(&p).expect("read");
            assert_eq!(bytes.len() as u64, offset + len);
            assert!(bytes[offset as usize..].iter().all(|&b| b == 7));
        }
    }

    #[test]
    fn a_lying_length_inside_an_implicit_vr_sequence_is_refused() {
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("nested.dcm");
        write(&p, uids::IMPLICIT_VR_LITTLE_ENDIAN);
        patch_implicit_length(&p, tags::REFERENCED_SOP_CLASS_UID, 0x7FFF_FFF0);
        let e = check_lengths(&p, Framing::Preamble, 1 << 20).expect_err("lying nested length");
        assert!(e.to_string().contains("claims 2147483632 bytes"), "{e}");
    }

    #[test]
    fn a_deflated_data_set_is_bounded() {
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("deflated.dcm");
        write(&p, uids::DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN);
        assert!(check_lengths(&p, Framing::Preamble, 1 << 20).is_ok());
        match check_lengths(&p, Framing::Preamble, 16) {
            Err(VolumeError::TooLarge { path, .. }) => assert_eq!(path, p),
            other => panic!("expected TooLarge, got {other:?}"),
        }
    }
}
