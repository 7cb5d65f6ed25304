//! MetaImage reading and writing: `.mhd` (text header) + data file, or `.mha` (header and data in
//! one file). This is LUNA16's format.
//!
//! ## Header fields read
//! `ObjectType = Image`, `NDims = 3`, `DimSize`, `ElementSpacing` (or `ElementSize`), `Offset`
//! (or `Origin`/`Position`), `TransformMatrix` (or `Rotation`/`Orientation`),
//! `AnatomicalOrientation`, `ElementType` (`MET_UCHAR`, `MET_CHAR`, `MET_SHORT`, `MET_USHORT`,
//! `MET_INT`, `MET_UINT`, `MET_FLOAT`, `MET_DOUBLE`), `ElementNumberOfChannels = 1`,
//! `ElementByteOrderMSB`/`BinaryDataByteOrderMSB`, `CompressedData` (zlib, or gzip) with
//! `CompressedDataSize`, `HeaderSize` (bytes to skip in the data file, `-1` = data at its end),
//! and `ElementDataFile` (a path relative to the header, or `LOCAL`). Keys are matched without
//! regard to case; unknown keys are ignored.
//!
//! ## Geometry (ITK semantics)
//! `TransformMatrix` lists nine numbers; as ITK's `MetaImageIO` reads them, numbers `3k..3k+3` are
//! the LPS unit vector of image axis `k` (x, then y, then z) — that is, the file holds the
//! *transpose* of the row-major direction matrix, whose **columns** are the axis directions.
//! `Offset` is the LPS position of the first voxel's centre. `AnatomicalOrientation` is, as in ITK,
//! not used for the geometry; when it disagrees with `TransformMatrix` a warning says so.
//!
//! Voxel values are converted to `i16` HU by rounding and clamping, as for NIfTI; non-finite
//! floats are an error.
//!
//! ```
//! use speck_volume::metaimage::{read_metaimage, write_metaimage};
//! use speck_volume::{Direction, Geometry, LoadOptions, Provenance, Spacing, Volume, WorldPoint};
//! let d = Direction::from_axes([0.0, 1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, 1.0])?;
//! let g = Geometry::new(Spacing::new(0.7, 0.7, 2.5)?, WorldPoint::new(-180.0, -170.0, -340.0), d);
//! let v = Volume::new(ndarray::Array3::from_elem((3, 4, 5), 40), g, Provenance::default())?;
//! let dir = tempfile::tempdir().expect("tempdir");
//! let path = dir.path().join("1.3.6.1.4.mhd"); // LUNA16 style: <seriesuid>.mhd + .raw
//! write_metaimage(&v, &path)?;
//! let header = std::fs::read_to_string(&path).expect("header");
//! assert!(header.contains("TransformMatrix = 0 1 0 -1 0 0 0 0 1")); // axis by axis
//! let back = read_metaimage(&path, &LoadOptions::default())?;
//! assert_eq!(back.geometry(), v.geometry());
//! assert_eq!(back.provenance().series_uid.as_deref(), Some("1.3.6.1.4"));
//! # Ok::<(), speck_volume::VolumeError>(())
//! ```

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use flate2::read::{MultiGzDecoder, ZlibDecoder};
use flate2::write::ZlibEncoder;
use flate2::Compression;
use ndarray::Array3;

use crate::rawdata::{self, ElemType, Layout, Scale};
use crate::{
    Direction, Format, LoadOptions, Probe, Provenance, Spacing, Volume, VolumeError, WorldPoint,
};

/// Largest header Speck reads (a real one is well under 1 KiB).
const MAX_HEADER_BYTES: u64 = 1 << 20;

/// Options for [`write_metaimage_with`].
#[derive(Debug, Clone, Copy, Default)]
pub struct MetaImageWriteOptions {
    /// Compress the voxel data with zlib (`CompressedData = True`).
    pub compress: bool,
}

/// The header's `key = value` lines as written, up to `ElementDataFile`: nothing is checked but
/// the line syntax.
struct Fields {
    /// Lower-cased key -> value.
    fields: HashMap<String, String>,
    /// Bytes from the start of the header file to the first data byte (for `LOCAL`).
    header_len: u64,
}

impl Fields {
    fn get(&self, key: &str) -> Option<&str> {
        self.fields
            .get(&key.to_ascii_lowercase())
            .map(String::as_str)
    }
}

/// Where the voxels start in the data file, after the part of it that belongs to the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DataStart {
    /// `HeaderSize = n` (or none: 0): this many bytes to skip.
    Skip(u64),
    /// `HeaderSize = -1`: the voxels are the last bytes of the file (uncompressed data only).
    AtEnd,
}

/// What a MetaImage header says, checked: every field [`read_metaimage`] uses, typed.
#[derive(Debug, Clone)]
struct Header {
    /// `DimSize`, x fastest.
    dims_xyz: [u64; 3],
    /// `ElementType`.
    elem: ElemType,
    /// `ElementByteOrderMSB` or `BinaryDataByteOrderMSB`.
    big_endian: bool,
    /// `CompressedData = True`, with `CompressedDataSize` when given.
    compressed: Option<Option<u64>>,
    /// Spacing, `Offset` and `TransformMatrix` (ITK semantics, see the module docs).
    geometry: crate::Geometry,
    /// The file that holds the voxels (the header itself for `LOCAL`).
    data_path: PathBuf,
    /// Bytes of `data_path` before its data part (the header's text for `LOCAL`, else 0).
    data_base: u64,
    /// `HeaderSize`.
    data_start: DataStart,
    /// What was assumed or ignored (no spacing, a disagreeing `AnatomicalOrientation`).
    warnings: Vec<String>,
}

fn parse_fields(path: &Path, bytes: &[u8], is_mha: bool) -> Result<Fields, VolumeError> {
    let mut fields = HashMap::new();
    let mut pos = 0usize;
    let mut found_data_file = false;
    while pos < bytes.len() {
        let end = bytes[pos..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(bytes.len(), |i| pos + i + 1);
        let line = &bytes[pos..end];
        pos = end;
        let text = std::str::from_utf8(line).map_err(|_| {
            VolumeError::malformed(path, "header line is not text (missing ElementDataFile?)")
        })?;
        let text = text.trim();
        if text.is_empty() {
            continue;
        }
        let (key, value) = text.split_once('=').ok_or_else(|| {
            VolumeError::malformed(path, format!("header line without '=': {text:?}"))
        })?;
        let key = key.trim().to_ascii_lowercase();
        let value = value.trim().to_string();
        let is_data_file = key == "elementdatafile";
        fields.insert(key, value);
        if is_data_file {
            found_data_file = true;
            break;
        }
    }
    if !found_data_file {
        return Err(VolumeError::malformed(
            path,
            if is_mha && bytes.len() as u64 >= MAX_HEADER_BYTES {
                format!("no ElementDataFile line in the first {MAX_HEADER_BYTES} bytes")
            } else {
                "no ElementDataFile line in the header".to_string()
            },
        ));
    }
    Ok(Fields {
        fields,
        header_len: pos as u64,
    })
}

/// Check and type the header `bytes` of the MetaImage `path` (an `.mha` when `is_mha`).
///
/// Only the header is looked at: the data file is neither opened nor required to exist.
fn parse_header(path: &Path, bytes: &[u8], is_mha: bool) -> Result<Header, VolumeError> {
    let h = parse_fields(path, bytes, is_mha)?;
    let mut warnings = Vec::new();

    if let Some(t) = h.get("ObjectType") {
        if !t.eq_ignore_ascii_case("Image") {
            return Err(VolumeError::unsupported(path, format!("ObjectType = {t}")));
        }
    }
    let ndims = h
        .get("NDims")
        .ok_or_else(|| VolumeError::malformed(path, "no NDims"))?;
    if ndims.trim() != "3" {
        return Err(VolumeError::unsupported(
            path,
            format!("NDims = {ndims}; Speck reads 3-D images"),
        ));
    }
    let dims_xyz = {
        let v = h
            .get("DimSize")
            .ok_or_else(|| VolumeError::malformed(path, "no DimSize"))?;
        let parsed: Result<Vec<u64>, _> = v.split_whitespace().map(str::parse::<u64>).collect();
        match parsed {
            Ok(d) if d.len() == 3 => [d[0], d[1], d[2]],
            _ => {
                return Err(VolumeError::malformed(
                    path,
                    format!("DimSize = {v:?}: expected 3 non-negative integers"),
                ))
            }
        }
    };
    if let Some(c) = h.get("ElementNumberOfChannels") {
        if c.trim() != "1" {
            return Err(VolumeError::unsupported(
                path,
                format!("ElementNumberOfChannels = {c}; Speck reads scalar images"),
            ));
        }
    }
    if h.get("BinaryData").is_some() && !boolean(path, &h, "BinaryData")? {
        return Err(VolumeError::unsupported(
            path,
            "BinaryData = False (ASCII voxel data)",
        ));
    }
    let elem_name = h
        .get("ElementType")
        .ok_or_else(|| VolumeError::malformed(path, "no ElementType"))?;
    let elem = match elem_name.to_ascii_uppercase().as_str() {
        "MET_UCHAR" => ElemType::U8,
        "MET_CHAR" => ElemType::I8,
        "MET_SHORT" => ElemType::I16,
        "MET_USHORT" => ElemType::U16,
        "MET_INT" | "MET_LONG" => ElemType::I32,
        "MET_UINT" | "MET_ULONG" => ElemType::U32,
        "MET_FLOAT" => ElemType::F32,
        "MET_DOUBLE" => ElemType::F64,
        other => {
            return Err(VolumeError::unsupported(
                path,
                format!("ElementType = {other}"),
            ))
        }
    };
    let big_endian =
        boolean(path, &h, "ElementByteOrderMSB")? || boolean(path, &h, "BinaryDataByteOrderMSB")?;
    let compressed = boolean(path, &h, "CompressedData")?;

    // Geometry.
    let spacing =
        first_numbers(path, &h, &["ElementSpacing", "ElementSize"], 3)?.unwrap_or_else(|| {
            warnings.push("no ElementSpacing: 1 mm assumed".into());
            vec![1.0; 3]
        });
    let spacing = Spacing::new(spacing[0], spacing[1], spacing[2])
        .map_err(|e| VolumeError::malformed(path, e.to_string()))?;
    let origin = first_numbers(path, &h, &["Offset", "Origin", "Position"], 3)?
        .unwrap_or_else(|| vec![0.0; 3]);
    let direction =
        match first_numbers(path, &h, &["TransformMatrix", "Rotation", "Orientation"], 9)? {
            Some(t) => {
                Direction::from_axes([t[0], t[1], t[2]], [t[3], t[4], t[5]], [t[6], t[7], t[8]])
                    .map_err(|e| VolumeError::malformed(path, format!("TransformMatrix: {e}")))?
            }
            None => Direction::IDENTITY,
        };
    if let Some(code) = h.get("AnatomicalOrientation") {
        let code = code.trim().to_ascii_uppercase();
        let implied = orientation_code(&direction);
        if code.len() == 3 && !code.contains('?') && code != implied {
            warnings.push(format!(
                "AnatomicalOrientation = {code} disagrees with TransformMatrix (which implies \
                 {implied}); TransformMatrix used, as ITK does"
            ));
        }
    }
    let geometry = crate::Geometry::new(
        spacing,
        WorldPoint::new(origin[0], origin[1], origin[2]),
        direction,
    );

    // Where the data is.
    let (data_path, data_base) = data_location(path, &h)?;
    let header_size: i64 = match h.get("HeaderSize") {
        None => 0,
        Some(v) => v.trim().parse().map_err(|_| {
            VolumeError::malformed(path, format!("HeaderSize = {v:?}: expected an integer"))
        })?,
    };
    let data_start =
        match header_size {
            -1 if !compressed => DataStart::AtEnd,
            n if n >= 0 => DataStart::Skip(n as u64),
            -1 => return Err(VolumeError::malformed(
                path,
                "HeaderSize = -1 (data at the end of the file) with compressed data, whose size \
                 is unknown",
            )),
            n => {
                return Err(VolumeError::malformed(
                    path,
                    format!("HeaderSize = {n} (only -1 or a byte count is valid)"),
                ))
            }
        };
    let compressed = if compressed {
        Some(match h.get("CompressedDataSize") {
            None => None,
            Some(v) => Some(v.trim().parse::<u64>().map_err(|_| {
                VolumeError::malformed(
                    path,
                    format!("CompressedDataSize = {v:?}: expected a byte count"),
                )
            })?),
        })
    } else {
        None
    };
    Ok(Header {
        dims_xyz,
        elem,
        big_endian,
        compressed,
        geometry,
        data_path,
        data_base,
        data_start,
        warnings,
    })
}

fn numbers(path: &Path, h: &Fields, key: &str, n: usize) -> Result<Option<Vec<f64>>, VolumeError> {
    let Some(v) = h.get(key) else {
        return Ok(None);
    };
    let parsed: Result<Vec<f64>, _> = v.split_whitespace().map(str::parse::<f64>).collect();
    match parsed {
        Ok(vals) if vals.len() == n && vals.iter().all(|x| x.is_finite()) => Ok(Some(vals)),
        _ => Err(VolumeError::malformed(
            path,
            format!("{key} = {v:?}: expected {n} finite numbers"),
        )),
    }
}

fn first_numbers(
    path: &Path,
    h: &Fields,
    keys: &[&str],
    n: usize,
) -> Result<Option<Vec<f64>>, VolumeError> {
    for k in keys {
        if let Some(v) = numbers(path, h, k, n)? {
            return Ok(Some(v));
        }
    }
    Ok(None)
}

fn boolean(path: &Path, h: &Fields, key: &str) -> Result<bool, VolumeError> {
    match h.get(key).map(str::to_ascii_lowercase).as_deref() {
        None | Some("false") | Some("0") => Ok(false),
        Some("true") | Some("1") => Ok(true),
        Some(other) => Err(VolumeError::malformed(
            path,
            format!("{key} = {other:?}: expected True or False"),
        )),
    }
}

/// The orientation letters ITK derives from a direction (e.g. `RAI` for the identity): for each
/// axis, the side it comes *from*.
fn orientation_code(d: &Direction) -> String {
    (0..3)
        .map(|k| {
            let a = d.axis(k);
            let (j, v) = a.iter().enumerate().fold((0, 0.0f64), |(bj, bv), (j, &v)| {
                if v.abs() > bv.abs() {
                    (j, v)
                } else {
                    (bj, bv)
                }
            });
            match (j, v >= 0.0) {
                (0, true) => 'R',
                (0, false) => 'L',
                (1, true) => 'A',
                (1, false) => 'P',
                (_, true) => 'I',
                (_, false) => 'S',
            }
        })
        .collect()
}

fn read_header_bytes(path: &Path, is_mha: bool) -> Result<Vec<u8>, VolumeError> {
    let file = File::open(path).map_err(|e| VolumeError::io(path, e))?;
    let mut bytes = Vec::new();
    if is_mha {
        // Header and data share the file: read the text part line by line, up to the limit.
        let mut r = BufReader::new(file.take(MAX_HEADER_BYTES));
        loop {
            let mut line = Vec::new();
            let n = io::BufRead::read_until(&mut r, b'\n', &mut line)
                .map_err(|e| VolumeError::io(path, e))?;
            if n == 0 {
                break;
            }
            let is_last = line
                .split(|&b| b == b'=')
                .next()
                .is_some_and(|k| k.trim_ascii().eq_ignore_ascii_case(b"ElementDataFile"));
            bytes.extend_from_slice(&line);
            if is_last {
                break;
            }
        }
    } else {
        file.take(MAX_HEADER_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| VolumeError::io(path, e))?;
        if bytes.len() as u64 > MAX_HEADER_BYTES {
            return Err(VolumeError::malformed(
                path,
                format!("a .mhd header larger than {MAX_HEADER_BYTES} bytes"),
            ));
        }
    }
    Ok(bytes)
}

/// Where the voxels of header `h` (read from `path`) are: the file and the byte offset of the
/// header part before them (`LOCAL` data follows the header in the same file).
fn data_location(path: &Path, h: &Fields) -> Result<(PathBuf, u64), VolumeError> {
    let value = h
        .get("ElementDataFile")
        .unwrap_or_default()
        .trim()
        .to_string();
    if value.eq_ignore_ascii_case("LOCAL") {
        Ok((path.to_path_buf(), h.header_len))
    } else if value.is_empty()
        || value.to_ascii_uppercase().starts_with("LIST")
        || value.contains('%')
    {
        Err(VolumeError::unsupported(
            path,
            format!("ElementDataFile = {value:?} (multi-file data)"),
        ))
    } else {
        let dir = path.parent().unwrap_or_else(|| Path::new(""));
        Ok((dir.join(Path::new(&value)), 0))
    }
}

/// The file holding the voxels of the MetaImage `path`, as [`read_metaimage`] resolves
/// `ElementDataFile` (the header itself for `.mha` and `LOCAL` data); only the header is read.
///
/// # Errors
/// As [`read_metaimage`] for an unreadable or malformed header, or multi-file data.
pub fn data_file(path: &Path) -> Result<PathBuf, VolumeError> {
    let is_mha = is_mha(path);
    let bytes = read_header_bytes(path, is_mha)?;
    let h = parse_fields(path, &bytes, is_mha)?;
    Ok(data_location(path, &h)?.0)
}

/// What the header of the MetaImage `path` says, for [`crate::probe`]: checked as
/// [`read_metaimage`] checks it; the data file is not opened.
pub(crate) fn probe_metaimage(path: &Path) -> Result<Probe, VolumeError> {
    let is_mha = is_mha(path);
    let h = parse_header(path, &read_header_bytes(path, is_mha)?, is_mha)?;
    let [x, y, z] = h.dims_xyz;
    Ok(Probe {
        format: Format::MetaImage,
        series_uid: Some(crate::stem_uid(path)),
        shape_zyx: [z, y, x],
        spacing: Some(h.geometry.spacing),
        bytes_per_voxel: h.elem.size() as u32,
    })
}

/// True for an `.mha` (header and data in one file).
fn is_mha(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("mha"))
}

/// Read a `.mhd` (with its data file) or `.mha` into a volume (HU `i16`, `[z, y, x]`, LPS).
///
/// The provenance records the header path as `source` and the file name without `.mhd`/`.mha`
/// as `series_uid` (LUNA16 names files `<seriesuid>.mhd`).
///
/// # Errors
/// - [`VolumeError::Io`] when the header or data file cannot be read;
/// - [`VolumeError::Malformed`] for a bad or inconsistent header, data shorter than declared
///   (checked against the file size before allocating), corrupt compressed data or compressed
///   data that expands past the declared size, a singular direction, or non-finite voxels;
/// - [`VolumeError::TooLarge`] when the declared size exceeds `options.limits`;
/// - [`VolumeError::Unsupported`] for non-image objects, other than 3 dimensions, several
///   channels, ASCII data, or multi-file (`LIST`, pattern) data.
pub fn read_metaimage(path: &Path, options: &LoadOptions) -> Result<Volume, VolumeError> {
    let is_mha = is_mha(path);
    let bytes = read_header_bytes(path, is_mha)?;
    let h = parse_header(path, &bytes, is_mha)?;
    let mut warnings = h.warnings;

    // Data.
    let (n_voxels, raw_bytes) = rawdata::check_size(path, h.dims_xyz, h.elem, 2, &options.limits)?;
    let (data_path, base) = (h.data_path, h.data_base);
    // Only a regular file: opening a FIFO named by a hostile header would block forever.
    let kind = std::fs::metadata(&data_path).map_err(|e| VolumeError::io(&data_path, e))?;
    if !kind.is_file() {
        return Err(VolumeError::unsupported(
            &data_path,
            "ElementDataFile is not a regular file",
        ));
    }
    let data = File::open(&data_path).map_err(|e| VolumeError::io(&data_path, e))?;
    let data_len = data
        .metadata()
        .map_err(|e| VolumeError::io(&data_path, e))?
        .len();
    let available = data_len.saturating_sub(base);
    let start = match h.data_start {
        DataStart::AtEnd => {
            if raw_bytes > available {
                return Err(VolumeError::malformed(
                    &data_path,
                    format!(
                        "DimSize declares {raw_bytes} bytes but the data file holds {available}"
                    ),
                ));
            }
            data_len - raw_bytes
        }
        DataStart::Skip(n) => base.saturating_add(n),
    };
    if start > data_len {
        return Err(VolumeError::malformed(
            &data_path,
            format!("data should start at byte {start} but the file has {data_len}"),
        ));
    }
    let remaining = data_len - start;
    let mut file = data;
    file.seek(SeekFrom::Start(start))
        .map_err(|e| VolumeError::io(&data_path, e))?;
    let buffered = BufReader::with_capacity(1 << 18, file);
    let layout = Layout {
        elem: h.elem,
        big_endian: h.big_endian,
        scale: Scale::IDENTITY,
    };
    let dims_usize = h.dims_xyz.map(|d| d as usize);
    let (voxels, stats) = if let Some(compressed_size) = h.compressed {
        let csize = match compressed_size {
            None => remaining,
            Some(n) => {
                if n > remaining {
                    return Err(VolumeError::malformed(
                        &data_path,
                        format!("CompressedDataSize = {n} but only {remaining} bytes follow"),
                    ));
                }
                n
            }
        };
        let max = csize.saturating_mul(rawdata::MAX_DEFLATE_RATIO);
        if raw_bytes > max {
            return Err(VolumeError::malformed(
                &data_path,
                format!(
                    "DimSize declares {raw_bytes} bytes but {csize} compressed bytes cannot expand \
                     to more than {max}"
                ),
            ));
        }
        let mut limited = buffered.take(csize);
        let mut magic = [0u8; 2];
        let got = limited
            .read(&mut magic)
            .map_err(|e| VolumeError::io(&data_path, e))?;
        let chained = io::Cursor::new(magic[..got].to_vec()).chain(limited);
        let mut reader: Box<dyn Read> = if got == 2 && magic == [0x1f, 0x8b] {
            Box::new(MultiGzDecoder::new(chained))
        } else {
            Box::new(ZlibDecoder::new(chained))
        };
        let out = rawdata::decode_i16(
            &mut reader,
            &data_path,
            "compressed data",
            layout,
            dims_usize,
            n_voxels,
        )?;
        if rawdata::has_more(&mut reader, &data_path, "compressed data")? {
            return Err(VolumeError::malformed(
                &data_path,
                format!(
                    "compressed data expands past the {raw_bytes} bytes DimSize declares; refused"
                ),
            ));
        }
        out
    } else {
        if raw_bytes > remaining {
            return Err(VolumeError::malformed(
                &data_path,
                format!(
                    "DimSize declares {raw_bytes} bytes of voxels but only {remaining} follow \
                     (truncated or lying dimensions)"
                ),
            ));
        }
        if remaining > raw_bytes {
            warnings.push(format!(
                "{} bytes after the voxel data were ignored",
                remaining - raw_bytes
            ));
        }
        let mut limited = buffered.take(raw_bytes);
        rawdata::decode_i16(
            &mut limited,
            &data_path,
            "voxel data",
            layout,
            dims_usize,
            n_voxels,
        )?
    };
    warnings.extend(rawdata::clamp_warning(stats));
    for w in &warnings {
        tracing::warn!(path = %path.display(), "{w}");
    }
    let array = Array3::from_shape_vec((dims_usize[2], dims_usize[1], dims_usize[0]), voxels)
        .map_err(|e| VolumeError::malformed(path, format!("voxel count: {e}")))?;
    let provenance = Provenance {
        source: Some(path.to_path_buf()),
        series_uid: Some(crate::stem_uid(path)),
        warnings,
        ..Provenance::default()
    };
    Volume::new(array, h.geometry, provenance)
}

fn header_text(volume: &Volume, compressed: Option<u64>, data_file: &str) -> String {
    let g = volume.geometry();
    let d = g.direction;
    let axes: Vec<String> = (0..3)
        .flat_map(|k| d.axis(k))
        .map(|v| format!("{v}"))
        .collect();
    let [sx, sy, sz] = g.spacing.xyz();
    let [ox, oy, oz] = g.origin.to_array();
    let [nx, ny, nz] = volume.size_xyz();
    let mut s = String::new();
    s.push_str(
        "ObjectType = Image\nNDims = 3\nBinaryData = True\nBinaryDataByteOrderMSB = False\n",
    );
    match compressed {
        Some(n) => s.push_str(&format!(
            "CompressedData = True\nCompressedDataSize = {n}\n"
        )),
        None => s.push_str("CompressedData = False\n"),
    }
    s.push_str(&format!("TransformMatrix = {}\n", axes.join(" ")));
    s.push_str(&format!("Offset = {ox} {oy} {oz}\n"));
    s.push_str("CenterOfRotation = 0 0 0\n");
    s.push_str(&format!(
        "AnatomicalOrientation = {}\n",
        orientation_code(&d)
    ));
    s.push_str(&format!("ElementSpacing = {sx} {sy} {sz}\n"));
    s.push_str(&format!("DimSize = {nx} {ny} {nz}\n"));
    s.push_str("ElementType = MET_SHORT\n");
    s.push_str(&format!("ElementDataFile = {data_file}\n"));
    s
}

/// Write the voxels as little-endian `i16`, x fastest, in 1 MiB pieces (no full-size copy).
fn write_voxels(w: &mut impl Write, volume: &Volume) -> io::Result<()> {
    let mut buf = Vec::with_capacity(1 << 20);
    for x in volume.voxels().iter() {
        buf.extend_from_slice(&x.to_le_bytes());
        if buf.len() >= (1 << 20) {
            w.write_all(&buf)?;
            buf.clear();
        }
    }
    w.write_all(&buf)
}

/// Create `p` and run `body` on a buffered writer, mapping every I/O error to one naming `p`.
fn write_file(
    p: &Path,
    body: impl FnOnce(&mut BufWriter<File>) -> io::Result<()>,
) -> Result<(), VolumeError> {
    let f = File::create(p).map_err(|e| VolumeError::io(p, e))?;
    let mut w = BufWriter::with_capacity(1 << 20, f);
    body(&mut w)
        .and_then(|()| w.flush())
        .map_err(|e| VolumeError::io(p, e))
}

/// Write a volume as MetaImage `MET_SHORT`: `.mhd` + a `.raw` (or `.zraw`) beside it, or a
/// single `.mha`, by extension.
///
/// # Errors
/// [`VolumeError::Io`] when a file cannot be written; [`VolumeError::Unsupported`] for another
/// extension.
pub fn write_metaimage(volume: &Volume, path: &Path) -> Result<(), VolumeError> {
    write_metaimage_with(volume, path, MetaImageWriteOptions::default())
}

/// As [`write_metaimage`], with options (zlib compression).
///
/// # Errors
/// As [`write_metaimage`].
pub fn write_metaimage_with(
    volume: &Volume,
    path: &Path,
    options: MetaImageWriteOptions,
) -> Result<(), VolumeError> {
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase());
    let is_mha = match ext.as_deref() {
        Some("mha") => true,
        Some("mhd") => false,
        _ => {
            return Err(VolumeError::unsupported(
                path,
                "MetaImage files end with .mhd or .mha",
            ))
        }
    };
    match (is_mha, options.compress) {
        (true, false) => write_file(path, |w| {
            w.write_all(header_text(volume, None, "LOCAL").as_bytes())?;
            write_voxels(w, volume)
        }),
        (true, true) => {
            // The header announces CompressedDataSize, so the compressed bytes come first.
            let mut enc = ZlibEncoder::new(Vec::new(), Compression::fast());
            let z = write_voxels(&mut enc, volume)
                .and_then(|()| enc.finish())
                .map_err(|e| VolumeError::io(path, e))?;
            write_file(path, |w| {
                w.write_all(header_text(volume, Some(z.len() as u64), "LOCAL").as_bytes())?;
                w.write_all(&z)
            })
        }
        (false, compress) => {
            let raw_path = path.with_extension(if compress { "zraw" } else { "raw" });
            let raw_name = raw_path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let mut size = None;
            write_file(&raw_path, |w| {
                if compress {
                    let mut enc = ZlibEncoder::new(
                        CountingWriter { inner: w, count: 0 },
                        Compression::fast(),
                    );
                    write_voxels(&mut enc, volume)?;
                    size = Some(enc.finish()?.count);
                    Ok(())
                } else {
                    write_voxels(w, volume)
                }
            })?;
            write_file(path, |w| {
                w.write_all(header_text(volume, size, &raw_name).as_bytes())
            })
        }
    }
}

/// Counts the bytes written through it (the compressed size for the header).
struct CountingWriter<W> {
    inner: W,
    count: u64,
}

impl<W: Write> Write for CountingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.count += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "ObjectType = Image\nNDims = 3\nDimSize = 5 4 3\nElementType = MET_SHORT\n\
                        ElementSpacing = 0.7 0.8 2.5\nOffset = 1 2 3\nElementDataFile = x.raw\n";

    fn parse(text: &str) -> Result<Header, VolumeError> {
        parse_header(Path::new("/d/x.mhd"), text.as_bytes(), false)
    }

    /// `GOOD` with the line of `key` replaced by `line` (or `line` added before the data file).
    fn with(key: &str, line: &str) -> String {
        let mut lines: Vec<String> = GOOD
            .lines()
            .filter(|l| !l.starts_with(&format!("{key} ")))
            .map(str::to_string)
            .collect();
        // Before the ElementDataFile line, which ends the header (or as that line).
        let at = if key == "ElementDataFile" {
            lines.len()
        } else {
            lines.len() - 1
        };
        if !line.is_empty() {
            lines.insert(at, line.to_string());
        }
        lines.join("\n") + "\n"
    }

    /// The error of `text`'s header: its variant and its message (which names the file).
    fn error(text: &str) -> (&'static str, String) {
        let e = match parse(text) {
            Ok(h) => panic!("accepted: {h:?}"),
            Err(e) => e,
        };
        let kind = match &e {
            VolumeError::Malformed { .. } => "malformed",
            VolumeError::Unsupported { .. } => "unsupported",
            _ => "other",
        };
        let msg = e.to_string();
        assert!(msg.starts_with("/d/x.mhd: "), "{msg}");
        (kind, msg)
    }

    #[test]
    fn a_good_header_is_typed() {
        let h = parse(GOOD).expect("header");
        assert_eq!(h.dims_xyz, [5, 4, 3]);
        assert_eq!(h.elem, ElemType::I16);
        assert!(!h.big_endian);
        assert_eq!(h.compressed, None);
        assert_eq!(h.geometry.spacing.xyz(), [0.7, 0.8, 2.5]);
        assert_eq!(h.geometry.origin, WorldPoint::new(1.0, 2.0, 3.0));
        assert_eq!(h.geometry.direction, Direction::IDENTITY);
        assert_eq!(h.data_path, Path::new("/d/x.raw"));
        assert_eq!((h.data_base, h.data_start), (0, DataStart::Skip(0)));
        assert!(h.warnings.is_empty(), "{:?}", h.warnings);

        let h = parse(&with("ElementSpacing", "")).expect("no spacing");
        assert_eq!(h.geometry.spacing.xyz(), [1.0; 3]);
        assert_eq!(h.warnings, ["no ElementSpacing: 1 mm assumed"]);

        let text = with("ElementDataFile", "ElementDataFile = LOCAL");
        let text = text.replace(
            "NDims",
            "CompressedData = True\nCompressedDataSize = 77\nNDims",
        );
        let h = parse_header(Path::new("/d/x.mha"), text.as_bytes(), true).expect("mha");
        assert_eq!(h.data_path, Path::new("/d/x.mha"));
        assert_eq!(h.data_base, text.len() as u64);
        assert_eq!(h.compressed, Some(Some(77)));

        let h = parse(&with("HeaderSize", "HeaderSize = -1")).expect("at end");
        assert_eq!(h.data_start, DataStart::AtEnd);
        let h = parse(&with("ElementByteOrderMSB", "ElementByteOrderMSB = True")).expect("msb");
        assert!(h.big_endian);
        // CompressedDataSize is only read for compressed data.
        assert!(parse(&with("CompressedDataSize", "CompressedDataSize = ?")).is_ok());
    }

    #[test]
    fn header_errors_name_the_file_and_the_field() {
        let cases: &[(String, &str, &str)] = &[
            (
                "NDims = 3\n".into(),
                "malformed",
                "no ElementDataFile line in the header",
            ),
            (
                with("NDims", "NDims 3"),
                "malformed",
                "header line without '='",
            ),
            (
                with("ObjectType", "ObjectType = Mesh"),
                "unsupported",
                "ObjectType = Mesh",
            ),
            (with("NDims", ""), "malformed", "no NDims"),
            (
                with("NDims", "NDims = 2"),
                "unsupported",
                "NDims = 2; Speck reads 3-D",
            ),
            (with("DimSize", ""), "malformed", "no DimSize"),
            (
                with("DimSize", "DimSize = 5 -4 3"),
                "malformed",
                "expected 3 non-negative",
            ),
            (
                with("DimSize", "DimSize = 5 4"),
                "malformed",
                "expected 3 non-negative",
            ),
            (
                with("ElementNumberOfChannels", "ElementNumberOfChannels = 3"),
                "unsupported",
                "Speck reads scalar images",
            ),
            (
                with("BinaryData", "BinaryData = False"),
                "unsupported",
                "ASCII voxel data",
            ),
            (with("ElementType", ""), "malformed", "no ElementType"),
            (
                with("ElementType", "ElementType = MET_STRING"),
                "unsupported",
                "MET_STRING",
            ),
            (
                with("ElementByteOrderMSB", "ElementByteOrderMSB = maybe"),
                "malformed",
                "expected True or False",
            ),
            (
                with("ElementSpacing", "ElementSpacing = 1 2"),
                "malformed",
                "expected 3 finite numbers",
            ),
            (
                with("ElementSpacing", "ElementSpacing = 0 1 1"),
                "malformed",
                "spacing",
            ),
            (with("Offset", "Offset = 1 2 inf"), "malformed", "Offset"),
            (
                with("TransformMatrix", "TransformMatrix = 1 0 0 1 0 0 0 0 1"),
                "malformed",
                "TransformMatrix: ",
            ),
            (
                with("ElementDataFile", "ElementDataFile = LIST"),
                "unsupported",
                "multi-file data",
            ),
            (
                with("ElementDataFile", "ElementDataFile = x%03d.raw 1 3 1"),
                "unsupported",
                "multi-file data",
            ),
            (
                with("HeaderSize", "HeaderSize = ten"),
                "malformed",
                "expected an integer",
            ),
            (
                with("HeaderSize", "HeaderSize = -2"),
                "malformed",
                "only -1 or a byte count",
            ),
            (
                with("HeaderSize", "HeaderSize = -1\nCompressedData = True"),
                "malformed",
                "with compressed data",
            ),
            (
                with(
                    "CompressedData",
                    "CompressedData = True\nCompressedDataSize = big",
                ),
                "malformed",
                "expected a byte count",
            ),
        ];
        for (text, kind, words) in cases {
            let (k, msg) = error(text);
            assert_eq!((k, msg.contains(words)), (*kind, true), "{text}: {msg}");
        }
        let e = parse_header(Path::new("/d/x.mha"), b"NDims = 3\n\xff\xfe\n", true)
            .expect_err("binary");
        assert!(e.to_string().contains("not text"), "{e}");
    }

    #[test]
    fn orientation_code_matches_itk_for_identity_and_flips() {
        assert_eq!(orientation_code(&Direction::IDENTITY), "RAI");
        let d = Direction::from_rows([[-1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, 1.0]])
            .expect("dir");
        assert_eq!(orientation_code(&d), "LPI");
    }
}
