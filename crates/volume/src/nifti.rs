//! NIfTI reading (NIfTI-1 and NIfTI-2) and NIfTI-1 writing (`.nii`, `.nii.gz`).
//!
//! The header (348 bytes for NIfTI-1, 540 for NIfTI-2) is parsed here rather than by the `nifti`
//! crate so that every field a hostile file can lie about (dimensions, data offset, data type,
//! affine) is checked against [`crate::Limits`] and against the file's real size *before*
//! anything is allocated, and so that a `.nii.gz` is decompressed as a stream that stops at the
//! size the header declares (a gzip bomb never allocates more than the header announced and is
//! refused once it expands past it).
//!
//! ## Geometry
//! NIfTI stores a RAS+ affine from voxel `(i, j, k)` (`i` fastest in the file) to millimetres.
//! As the standard says, the **sform** is used when `sform_code > 0`, else the **qform**
//! quaternion when `qform_code > 0`, else `pixdim` alone (with a warning; the orientation is then
//! unknown and, as SimpleITK does, taken as the identity in LPS). The affine is turned into LPS by
//! negating its first two rows; spacing is the length of each affine column and the direction its
//! unit vector. Spatial units in metres or microns are converted to millimetres. `i, j, k` become
//! Speck's `x, y, z`, so the voxels land in an ndarray `[z, y, x]` exactly in file order, without
//! a transpose.
//!
//! ## Intensities
//! `uint8`, `int8`, `int16`, `uint16`, `int32`, `uint32`, `float32` and `float64` are read.
//! `scl_slope`/`scl_inter` are applied when the slope is finite and non-zero (a zero or NaN slope
//! means "no scaling", as the standard and nibabel have it; an infinite one is an error). Values
//! become `i16` HU by rounding half away from zero and clamping to the `i16` range (the number of
//! clamped voxels is reported as a warning). NaN or infinite voxels are refused with an error
//! naming the first one: a CT with undefined intensities cannot be analysed safely.
//!
//! ## Writing
//! [`write_nifti`] (`int16`) and [`write_nifti_f32`] (`float32`) write a single-file NIfTI-1 with
//! both the sform (exact affine) and the qform (its rotation as a quaternion) set to code 1
//! ("scanner anatomical"), units mm, and gzip when the path ends with `.gz`.
//!
//! ```
//! use speck_volume::nifti::{read_nifti, write_nifti};
//! use speck_volume::{Direction, Geometry, LoadOptions, Provenance, Spacing, Volume, WorldPoint};
//! let g = Geometry::new(Spacing::new(0.7, 0.7, 2.5)?, WorldPoint::new(-180.0, -170.0, -340.0), Direction::IDENTITY);
//! let v = Volume::new(ndarray::Array3::from_elem((3, 4, 5), -1000), g, Provenance::default())?;
//! let dir = tempfile::tempdir().expect("tempdir");
//! let path = dir.path().join("1.2.3.nii.gz");
//! write_nifti(&v, &path)?;
//! let back = read_nifti(&path, &LoadOptions::default())?;
//! assert_eq!(back.voxels(), v.voxels());
//! assert_eq!(back.geometry().origin, WorldPoint::new(-180.0, -170.0, -340.0));
//! assert_eq!(back.provenance().series_uid.as_deref(), Some("1.2.3"));
//! # Ok::<(), speck_volume::VolumeError>(())
//! ```

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::Path;

use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;
use flate2::Compression;
use ndarray::{Array3, ArrayView3};

use crate::rawdata::{self, ElemType, Layout, Scale};
use crate::{
    Direction, Format, Geometry, LoadOptions, Probe, Provenance, Spacing, Volume, VolumeError,
    WorldPoint,
};

const HEADER_BYTES: usize = 348;
/// Header plus the 4-byte extension flag: where the voxels start in the files we write.
const VOX_OFFSET_WRITTEN: usize = 352;

/// Which part of the header the geometry came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AffineSource {
    /// `sform_code > 0`: the `srow_x/y/z` affine.
    Sform,
    /// `qform_code > 0` (and no sform): quaternion, `pixdim` and `qoffset`.
    Qform,
    /// Neither: `pixdim` only, origin 0, identity direction in LPS (as SimpleITK reads it).
    Pixdim,
}

/// What the header says, checked.
#[derive(Debug, Clone)]
struct Header {
    /// 348 (NIfTI-1) or 540 (NIfTI-2).
    header_len: u64,
    big_endian: bool,
    dims_xyz: [u64; 3],
    elem: ElemType,
    vox_offset: u64,
    scale: Scale,
    geometry: Geometry,
    affine_source: AffineSource,
    warnings: Vec<String>,
}

/// What the header declares about the image's size, checked as far as sizing it needs.
struct Declared {
    /// 348 (NIfTI-1) or 540 (NIfTI-2).
    header_len: u64,
    big_endian: bool,
    dims_xyz: [u64; 3],
    elem: ElemType,
    raw: RawFields,
}

struct Fields<'a> {
    b: &'a [u8],
    be: bool,
}

impl Fields<'_> {
    fn i16(&self, off: usize) -> i16 {
        let a = [self.b[off], self.b[off + 1]];
        if self.be {
            i16::from_be_bytes(a)
        } else {
            i16::from_le_bytes(a)
        }
    }
    fn f32(&self, off: usize) -> f64 {
        let a = [
            self.b[off],
            self.b[off + 1],
            self.b[off + 2],
            self.b[off + 3],
        ];
        f64::from(if self.be {
            f32::from_be_bytes(a)
        } else {
            f32::from_le_bytes(a)
        })
    }
    fn bytes8(&self, off: usize) -> [u8; 8] {
        std::array::from_fn(|i| self.b[off + i])
    }
    fn i32(&self, off: usize) -> i32 {
        let a = [
            self.b[off],
            self.b[off + 1],
            self.b[off + 2],
            self.b[off + 3],
        ];
        if self.be {
            i32::from_be_bytes(a)
        } else {
            i32::from_le_bytes(a)
        }
    }
    fn i64(&self, off: usize) -> i64 {
        let a = self.bytes8(off);
        if self.be {
            i64::from_be_bytes(a)
        } else {
            i64::from_le_bytes(a)
        }
    }
    fn f64(&self, off: usize) -> f64 {
        let a = self.bytes8(off);
        if self.be {
            f64::from_be_bytes(a)
        } else {
            f64::from_le_bytes(a)
        }
    }
}

/// The header fields Speck uses, from a NIfTI-1 (348-byte) or NIfTI-2 (540-byte) header.
struct RawFields {
    ndim: i64,
    dims: [i64; 7],
    datatype: i16,
    bitpix: i16,
    pixdim: [f64; 8],
    vox_offset: f64,
    slope: f64,
    inter: f64,
    units: u8,
    qform_code: i32,
    sform_code: i32,
    quatern: [f64; 3],
    qoffset: [f64; 3],
    srow: [[f64; 4]; 3],
}

impl RawFields {
    fn nifti1(f: &Fields<'_>) -> Self {
        Self {
            ndim: i64::from(f.i16(40)),
            dims: std::array::from_fn(|i| i64::from(f.i16(42 + 2 * i))),
            datatype: f.i16(70),
            bitpix: f.i16(72),
            pixdim: std::array::from_fn(|i| f.f32(76 + 4 * i)),
            vox_offset: f.f32(108),
            slope: f.f32(112),
            inter: f.f32(116),
            units: f.b[123],
            qform_code: i32::from(f.i16(252)),
            sform_code: i32::from(f.i16(254)),
            quatern: std::array::from_fn(|i| f.f32(256 + 4 * i)),
            qoffset: std::array::from_fn(|i| f.f32(268 + 4 * i)),
            srow: std::array::from_fn(|r| std::array::from_fn(|c| f.f32(280 + 16 * r + 4 * c))),
        }
    }

    fn nifti2(f: &Fields<'_>) -> Self {
        Self {
            ndim: f.i64(16),
            dims: std::array::from_fn(|i| f.i64(24 + 8 * i)),
            datatype: f.i16(12),
            bitpix: f.i16(14),
            pixdim: std::array::from_fn(|i| f.f64(104 + 8 * i)),
            vox_offset: f.i64(168) as f64,
            slope: f.f64(176),
            inter: f.f64(184),
            // xyzt_units is an i32 in NIfTI-2; only its low bits carry the spatial unit.
            units: (f.i32(500) & 0xff) as u8,
            qform_code: f.i32(344),
            sform_code: f.i32(348),
            quatern: std::array::from_fn(|i| f.f64(352 + 8 * i)),
            qoffset: std::array::from_fn(|i| f.f64(376 + 8 * i)),
            srow: std::array::from_fn(|r| std::array::from_fn(|c| f.f64(400 + 32 * r + 8 * c))),
        }
    }
}

/// NIfTI-2 header size.
const HEADER2_BYTES: usize = 540;

/// The header size announced by the first 4 bytes (348 or 540), if they are a NIfTI header's.
fn header_len(first4: [u8; 4]) -> Option<usize> {
    let (le, be) = (i32::from_le_bytes(first4), i32::from_be_bytes(first4));
    [le, be].into_iter().find_map(|v| match v {
        348 => Some(HEADER_BYTES),
        540 => Some(HEADER2_BYTES),
        _ => None,
    })
}

/// The first checks of a header, enough to size the image: `sizeof_hdr`, magic, dimensions and
/// data type.
fn parse_declared(path: &Path, b: &[u8]) -> Result<Declared, VolumeError> {
    if b.len() < HEADER_BYTES {
        return Err(VolumeError::malformed(
            path,
            format!(
                "only {} bytes, shorter than a {HEADER_BYTES}-byte NIfTI-1 header",
                b.len()
            ),
        ));
    }
    let first4 = [b[0], b[1], b[2], b[3]];
    let (le, be_v) = (i32::from_le_bytes(first4), i32::from_be_bytes(first4));
    let big_endian = match (le, be_v) {
        (348 | 540, _) => false,
        (_, 348 | 540) => true,
        _ => {
            return Err(VolumeError::malformed(
                path,
                format!("not a NIfTI file: sizeof_hdr is {le}, expected 348 (or 540 for NIfTI-2)"),
            ))
        }
    };
    let version2 = le == 540 || be_v == 540;
    if version2 && b.len() < HEADER2_BYTES {
        return Err(VolumeError::malformed(
            path,
            format!(
                "only {} bytes, shorter than a {HEADER2_BYTES}-byte NIfTI-2 header",
                b.len()
            ),
        ));
    }
    let f = Fields { b, be: big_endian };
    let (magic, single, pair): (&[u8], &[u8], &[u8]) = if version2 {
        (&b[4..12], b"n+2\0\r\n\x1a\n", b"ni2\0\r\n\x1a\n")
    } else {
        (&b[344..348], b"n+1\0", b"ni1\0")
    };
    if magic == pair {
        return Err(VolumeError::unsupported(
            path,
            "two-file NIfTI (.hdr/.img pair); Speck reads single-file .nii/.nii.gz",
        ));
    }
    if magic != single {
        return Err(VolumeError::unsupported(
            path,
            format!("no NIfTI magic (found {magic:?}): ANALYZE 7.5 files are not read"),
        ));
    }
    let raw = if version2 {
        RawFields::nifti2(&f)
    } else {
        RawFields::nifti1(&f)
    };
    let header_bytes = if version2 {
        HEADER2_BYTES
    } else {
        HEADER_BYTES
    };

    // Dimensions.
    let ndim = raw.ndim;
    if !(1..=7).contains(&ndim) {
        return Err(VolumeError::malformed(
            path,
            format!("dim[0] (number of dimensions) is {ndim}, expected 1..7"),
        ));
    }
    let mut dims = [1u64; 7];
    for (i, d) in dims.iter_mut().enumerate().take(ndim as usize) {
        let v = raw.dims[i];
        if v < 1 {
            return Err(VolumeError::malformed(
                path,
                format!("dim[{}] is {v}, expected >= 1", i + 1),
            ));
        }
        *d = v as u64;
    }
    if let Some(i) = dims[3..].iter().position(|&d| d > 1) {
        return Err(VolumeError::unsupported(
            path,
            format!(
                "{}-D image (dim[{}] = {}); Speck reads 3-D volumes",
                ndim,
                i + 4,
                dims[i + 3]
            ),
        ));
    }
    let dims_xyz = [dims[0], dims[1], dims[2]];

    // Data type.
    let datatype = raw.datatype;
    let elem = match datatype {
        2 => ElemType::U8,
        4 => ElemType::I16,
        8 => ElemType::I32,
        16 => ElemType::F32,
        64 => ElemType::F64,
        256 => ElemType::I8,
        512 => ElemType::U16,
        768 => ElemType::U32,
        1 | 32 | 128 | 1024 | 1280 | 1536 | 1792 | 2048 | 2304 => {
            return Err(VolumeError::unsupported(
                path,
                format!("NIfTI datatype {datatype} (not a scalar integer or float type)"),
            ))
        }
        _ => {
            return Err(VolumeError::malformed(
                path,
                format!("unknown NIfTI datatype {datatype}"),
            ))
        }
    };
    Ok(Declared {
        header_len: header_bytes as u64,
        big_endian,
        dims_xyz,
        elem,
        raw,
    })
}

/// The whole header, checked: [`parse_declared`], then data offset, scaling and geometry.
fn parse_header(path: &Path, b: &[u8]) -> Result<Header, VolumeError> {
    parse_declared(path, b)?.check(path)
}

impl Declared {
    /// Check the rest of the header (data offset, scaling, geometry).
    fn check(self, path: &Path) -> Result<Header, VolumeError> {
        let Declared {
            header_len,
            big_endian,
            dims_xyz,
            elem,
            raw,
        } = self;
        let datatype = raw.datatype;
        let mut warnings = Vec::new();
        let bitpix = raw.bitpix;
        if bitpix as usize != elem.size() * 8 {
            warnings.push(format!(
                "bitpix is {bitpix} but datatype {datatype} has {} bits; the datatype was used",
                elem.size() * 8
            ));
        }

        // Data offset.
        let vox_offset_f = raw.vox_offset;
        if !vox_offset_f.is_finite() || vox_offset_f.fract() != 0.0 {
            return Err(VolumeError::malformed(
                path,
                format!("vox_offset is {vox_offset_f}, expected a whole number of bytes"),
            ));
        }
        if vox_offset_f < header_len as f64 {
            return Err(VolumeError::malformed(
                path,
                format!("vox_offset is {vox_offset_f}, inside the {header_len}-byte header"),
            ));
        }
        let vox_offset = vox_offset_f as u64;

        // Intensity scaling.
        let (slope, inter) = (raw.slope, raw.inter);
        let scale = if slope.is_nan() || slope == 0.0 {
            Scale::IDENTITY
        } else if slope.is_infinite() || inter.is_infinite() {
            return Err(VolumeError::malformed(
                path,
                format!("scl_slope {slope} / scl_inter {inter} is infinite"),
            ));
        } else {
            Scale {
                slope,
                inter: if inter.is_nan() { 0.0 } else { inter },
            }
        };

        // Geometry.
        let unit_scale = match raw.units & 0x07 {
            1 => 1000.0,
            3 => 0.001,
            _ => 1.0,
        };
        let pixdim = raw.pixdim;
        let (qform_code, sform_code) = (raw.qform_code, raw.sform_code);
        let (ras, affine_source) = if sform_code > 0 {
            (raw.srow, AffineSource::Sform)
        } else if qform_code > 0 {
            (
                qform_affine(raw.quatern, raw.qoffset, &pixdim, &mut warnings),
                AffineSource::Qform,
            )
        } else {
            warnings.push(
                "neither sform nor qform is set: geometry from pixdim only, origin 0, orientation \
             unknown (identity in LPS assumed, as SimpleITK reads such a file)"
                    .into(),
            );
            let d = |i: usize| {
                if pixdim[i] > 0.0 && pixdim[i].is_finite() {
                    pixdim[i]
                } else {
                    1.0
                }
            };
            (
                [
                    // RAS rows of an LPS identity: negated x and y.
                    [-d(1), 0.0, 0.0, 0.0],
                    [0.0, -d(2), 0.0, 0.0],
                    [0.0, 0.0, d(3), 0.0],
                ],
                AffineSource::Pixdim,
            )
        };
        let mut ras = ras;
        for row in ras.iter_mut() {
            for v in row.iter_mut() {
                *v *= unit_scale;
            }
        }
        let geometry = geometry_from_ras(path, ras, &mut warnings)?;
        Ok(Header {
            header_len,
            big_endian,
            dims_xyz,
            elem,
            vox_offset,
            scale,
            geometry,
            affine_source,
            warnings,
        })
    }
}

/// The qform affine (RAS, 3x4), as `nifti_quatern_to_mat44` computes it.
fn qform_affine(
    quatern: [f64; 3],
    qoffset: [f64; 3],
    pixdim: &[f64; 8],
    warnings: &mut Vec<String>,
) -> [[f64; 4]; 3] {
    let [mut b, mut c, mut d] = quatern;
    let [qx, qy, qz] = qoffset;
    let mut a = 1.0 - (b * b + c * c + d * d);
    if a < 1e-7 {
        let n = (b * b + c * c + d * d).sqrt();
        a = 0.0;
        if n > 0.0 {
            b /= n;
            c /= n;
            d /= n;
        }
    } else {
        a = a.sqrt();
    }
    let mut sp = [pixdim[1], pixdim[2], pixdim[3]];
    for (i, s) in sp.iter_mut().enumerate() {
        if !(*s > 0.0 && s.is_finite()) {
            warnings.push(format!(
                "pixdim[{}] is {s}; 1 mm used, as the standard says",
                i + 1
            ));
            *s = 1.0;
        }
    }
    let qfac = if pixdim[0] < 0.0 { -1.0 } else { 1.0 };
    let (xd, yd, zd) = (sp[0], sp[1], sp[2] * qfac);
    [
        [
            (a * a + b * b - c * c - d * d) * xd,
            2.0 * (b * c - a * d) * yd,
            2.0 * (b * d + a * c) * zd,
            qx,
        ],
        [
            2.0 * (b * c + a * d) * xd,
            (a * a + c * c - b * b - d * d) * yd,
            2.0 * (c * d - a * b) * zd,
            qy,
        ],
        [
            2.0 * (b * d - a * c) * xd,
            2.0 * (c * d + a * b) * yd,
            (a * a + d * d - c * c - b * b) * zd,
            qz,
        ],
    ]
}

/// Spacing, origin and direction (LPS) from a RAS affine whose column `k` maps index axis `k`.
fn geometry_from_ras(
    path: &Path,
    ras: [[f64; 4]; 3],
    warnings: &mut Vec<String>,
) -> Result<Geometry, VolumeError> {
    if ras.iter().flatten().any(|v| !v.is_finite()) {
        return Err(VolumeError::malformed(
            path,
            format!("affine has non-finite entries: {ras:?}"),
        ));
    }
    // RAS -> LPS: negate the first two rows (x and y, translation included).
    let mut lps = ras;
    for row in lps.iter_mut().take(2) {
        for v in row.iter_mut() {
            *v = -*v;
        }
    }
    let col = |k: usize| [lps[0][k], lps[1][k], lps[2][k]];
    let norm = |v: [f64; 3]| (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt();
    let (cx, cy, cz) = (col(0), col(1), col(2));
    let spacing = Spacing::new(norm(cx), norm(cy), norm(cz))
        .map_err(|e| VolumeError::malformed(path, format!("affine {ras:?}: {e}")))?;
    let direction = Direction::from_axes(cx, cy, cz)
        .map_err(|e| VolumeError::malformed(path, format!("affine {ras:?}: {e}")))?;
    let dot = |p: [f64; 3], q: [f64; 3]| p[0] * q[0] + p[1] * q[1] + p[2] * q[2];
    let (ux, uy, uz) = (direction.axis(0), direction.axis(1), direction.axis(2));
    let shear = [dot(ux, uy), dot(ux, uz), dot(uy, uz)]
        .iter()
        .fold(0.0f64, |m, v| m.max(v.abs()));
    if shear > 1e-4 {
        warnings.push(format!(
            "the affine's axes are not orthogonal (largest cosine {shear:.4}); it is kept exactly, \
             but tools that assume a rotation may place voxels differently"
        ));
    }
    Ok(Geometry::new(
        spacing,
        WorldPoint::new(lps[0][3], lps[1][3], lps[2][3]),
        direction,
    ))
}

fn open_file(path: &Path) -> Result<(File, u64), VolumeError> {
    let file = File::open(path).map_err(|e| VolumeError::io(path, e))?;
    let len = file.metadata().map_err(|e| VolumeError::io(path, e))?.len();
    Ok((file, len))
}

/// The header, checked against the limits and the file size, and a reader positioned on the
/// first voxel.
struct Opened {
    header: Header,
    reader: Box<dyn Read>,
    gzip: bool,
    n_voxels: usize,
    raw_bytes: u64,
    file_len: u64,
}

/// The header's bytes (348, or 540 for NIfTI-2; fewer when the file is shorter), read through
/// gzip when the file starts with its magic, and the reader left after them.
struct HeaderBytes {
    bytes: Vec<u8>,
    reader: Box<dyn Read>,
    gzip: bool,
    file_len: u64,
}

fn read_header_bytes(path: &Path) -> Result<HeaderBytes, VolumeError> {
    let (file, file_len) = open_file(path)?;
    let mut buffered = BufReader::with_capacity(1 << 18, file);
    let mut magic = [0u8; 2];
    let n = buffered
        .read(&mut magic)
        .map_err(|e| VolumeError::io(path, e))?;
    let gzip = n == 2 && magic == [0x1f, 0x8b];
    // Re-chain the two sniffed bytes in front of the rest of the file.
    let raw: Box<dyn Read> = Box::new(io::Cursor::new(magic[..n].to_vec()).chain(buffered));
    let mut reader: Box<dyn Read> = if gzip {
        Box::new(MultiGzDecoder::new(raw))
    } else {
        raw
    };
    let what = if gzip { "gzip data" } else { "file" };
    let mut hdr = vec![0u8; HEADER2_BYTES];
    let mut got = 0;
    let mut want = HEADER_BYTES;
    while got < want {
        match reader.read(&mut hdr[got..want]) {
            Ok(0) => break,
            Ok(k) => got += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(rawdata::map_read_error(path, what, e)),
        }
        if got >= 4 && header_len([hdr[0], hdr[1], hdr[2], hdr[3]]) == Some(HEADER2_BYTES) {
            want = HEADER2_BYTES;
        }
    }
    hdr.truncate(got);
    Ok(HeaderBytes {
        bytes: hdr,
        reader,
        gzip,
        file_len,
    })
}

/// What the header of the NIfTI file `path` says, for [`crate::probe`]: its size and data type
/// checked as [`read_nifti`] checks them, the spacing when the rest of the header is valid too.
pub(crate) fn probe_nifti(path: &Path) -> Result<Probe, VolumeError> {
    let hdr = read_header_bytes(path)?;
    let declared = parse_declared(path, &hdr.bytes)?;
    let shape_zyx = {
        let [x, y, z] = declared.dims_xyz;
        [z, y, x]
    };
    let bytes_per_voxel = declared.elem.size() as u32;
    let spacing = declared.check(path).ok().map(|h| h.geometry.spacing);
    Ok(Probe {
        format: Format::Nifti,
        series_uid: Some(crate::stem_uid(path)),
        shape_zyx,
        spacing,
        bytes_per_voxel,
    })
}

fn open_nifti(path: &Path, options: &LoadOptions, out_bytes: u64) -> Result<Opened, VolumeError> {
    let HeaderBytes {
        bytes: hdr,
        mut reader,
        gzip,
        file_len,
    } = read_header_bytes(path)?;
    let what = if gzip { "gzip data" } else { "file" };
    let header = parse_header(path, &hdr)?;
    let (n_voxels, raw_bytes) = rawdata::check_size(
        path,
        header.dims_xyz,
        header.elem,
        out_bytes,
        &options.limits,
    )?;
    let needed = header.vox_offset.saturating_add(raw_bytes);
    if gzip {
        let max = file_len.saturating_mul(rawdata::MAX_DEFLATE_RATIO);
        if needed > max {
            return Err(VolumeError::malformed(
                path,
                format!(
                    "header declares {needed} bytes (offset {} + {raw_bytes} of voxels) but a \
                     {file_len}-byte gzip cannot expand to more than {max}",
                    header.vox_offset
                ),
            ));
        }
    } else if needed > file_len {
        return Err(VolumeError::malformed(
            path,
            format!(
                "header declares {raw_bytes} bytes of voxels at offset {} but the file has only \
                 {file_len} bytes (truncated or lying dimensions)",
                header.vox_offset
            ),
        ));
    }
    rawdata::skip(
        &mut reader,
        header.vox_offset - header.header_len,
        path,
        what,
    )?;
    Ok(Opened {
        header,
        reader,
        gzip,
        n_voxels,
        raw_bytes,
        file_len,
    })
}

fn finish_checks(
    path: &Path,
    o: &mut Opened,
    warnings: &mut Vec<String>,
) -> Result<(), VolumeError> {
    if o.gzip {
        if rawdata::has_more(&mut o.reader, path, "gzip data")? {
            return Err(VolumeError::malformed(
                path,
                format!(
                    "gzip data expands past the {} bytes the header declares; refused",
                    o.header.vox_offset + o.raw_bytes
                ),
            ));
        }
    } else {
        let extra = o.file_len - (o.header.vox_offset + o.raw_bytes);
        if extra > 0 {
            warnings.push(format!("{extra} bytes after the voxel data were ignored"));
        }
    }
    Ok(())
}

fn xyz_usize(d: [u64; 3]) -> [usize; 3] {
    d.map(|v| v as usize)
}

fn shape_zyx(d: [u64; 3]) -> (usize, usize, usize) {
    (d[2] as usize, d[1] as usize, d[0] as usize)
}

/// Read a `.nii` or `.nii.gz` file (NIfTI-1 or NIfTI-2) into a volume (HU, `i16`, `[z, y, x]`),
/// converting RAS to LPS.
///
/// Gzip is recognised by its magic bytes, whatever the extension. The provenance records the path
/// as `source` and the file name without `.nii`/`.nii.gz` as `series_uid`; warnings (qform or
/// pixdim fallback, clamped voxels, sheared affine) are in `provenance.warnings`.
///
/// # Errors
/// - [`VolumeError::Io`] when the file cannot be read;
/// - [`VolumeError::Malformed`] for a bad header, data shorter than declared (checked against the
///   file size before allocating), corrupt gzip, gzip data longer than declared, a singular or
///   non-finite affine, or NaN/infinite voxels;
/// - [`VolumeError::TooLarge`] when the declared size exceeds `options.limits`;
/// - [`VolumeError::Unsupported`] for `.hdr/.img` pairs, ANALYZE 7.5, 4-D images or complex/RGB
///   data.
pub fn read_nifti(path: &Path, options: &LoadOptions) -> Result<Volume, VolumeError> {
    let mut o = open_nifti(path, options, 2)?;
    let layout = Layout {
        elem: o.header.elem,
        big_endian: o.header.big_endian,
        scale: o.header.scale,
    };
    let what = if o.gzip { "gzip data" } else { "voxel data" };
    let (voxels, stats) = rawdata::decode_i16(
        &mut o.reader,
        path,
        what,
        layout,
        xyz_usize(o.header.dims_xyz),
        o.n_voxels,
    )?;
    let mut warnings = std::mem::take(&mut o.header.warnings);
    finish_checks(path, &mut o, &mut warnings)?;
    warnings.extend(rawdata::clamp_warning(stats));
    if o.header.affine_source == AffineSource::Qform {
        warnings.push("no sform: geometry from the qform".into());
    }
    for w in &warnings {
        tracing::warn!(path = %path.display(), "{w}");
    }
    let array = Array3::from_shape_vec(shape_zyx(o.header.dims_xyz), voxels)
        .map_err(|e| VolumeError::malformed(path, format!("voxel count: {e}")))?;
    let provenance = Provenance {
        source: Some(path.to_path_buf()),
        series_uid: Some(crate::open::stem_uid(path)),
        warnings,
        ..Provenance::default()
    };
    Volume::new(array, o.header.geometry, provenance)
}

/// Read a NIfTI file as `f32` values (after `scl_slope`/`scl_inter`), `[z, y, x]`, with its LPS
/// geometry and the reader's warnings — for heatmaps and masks, which are not HU.
///
/// # Errors
/// As [`read_nifti`].
pub fn read_nifti_f32(
    path: &Path,
    options: &LoadOptions,
) -> Result<(Array3<f32>, Geometry, Vec<String>), VolumeError> {
    let mut o = open_nifti(path, options, 4)?;
    let layout = Layout {
        elem: o.header.elem,
        big_endian: o.header.big_endian,
        scale: o.header.scale,
    };
    let what = if o.gzip { "gzip data" } else { "voxel data" };
    let values = rawdata::decode_f32(
        &mut o.reader,
        path,
        what,
        layout,
        xyz_usize(o.header.dims_xyz),
        o.n_voxels,
    )?;
    let mut warnings = std::mem::take(&mut o.header.warnings);
    finish_checks(path, &mut o, &mut warnings)?;
    let array = Array3::from_shape_vec(shape_zyx(o.header.dims_xyz), values)
        .map_err(|e| VolumeError::malformed(path, format!("voxel count: {e}")))?;
    Ok((array, o.header.geometry, warnings))
}

/// Which affine a NIfTI file's geometry comes from (sform, qform or pixdim), from its header.
///
/// # Errors
/// As [`read_nifti`] for the header.
pub fn affine_source(path: &Path) -> Result<AffineSource, VolumeError> {
    open_nifti(path, &LoadOptions::default(), 2).map(|o| o.header.affine_source)
}

// ---------------------------------------------------------------------------------------------
// Writing

/// Quaternion `(b, c, d)` and `qfac` of a rotation (columns = axis unit vectors), as
/// `nifti_mat44_to_quatern` computes them.
fn quaternion(r: [[f64; 3]; 3]) -> ([f64; 3], f64) {
    let mut r = r;
    let det = r[0][0] * (r[1][1] * r[2][2] - r[1][2] * r[2][1])
        - r[0][1] * (r[1][0] * r[2][2] - r[1][2] * r[2][0])
        + r[0][2] * (r[1][0] * r[2][1] - r[1][1] * r[2][0]);
    let qfac = if det < 0.0 {
        for row in r.iter_mut() {
            row[2] = -row[2];
        }
        -1.0
    } else {
        1.0
    };
    let (r11, r12, r13) = (r[0][0], r[0][1], r[0][2]);
    let (r21, r22, r23) = (r[1][0], r[1][1], r[1][2]);
    let (r31, r32, r33) = (r[2][0], r[2][1], r[2][2]);
    let trace1 = r11 + r22 + r33 + 1.0;
    let (a, mut b, mut c, mut d);
    if trace1 > 0.5 {
        a = 0.5 * trace1.sqrt();
        b = 0.25 * (r32 - r23) / a;
        c = 0.25 * (r13 - r31) / a;
        d = 0.25 * (r21 - r12) / a;
    } else {
        let xd = 1.0 + r11 - (r22 + r33);
        let yd = 1.0 + r22 - (r11 + r33);
        let zd = 1.0 + r33 - (r11 + r22);
        if xd > 1.0 {
            b = 0.5 * xd.sqrt();
            c = 0.25 * (r12 + r21) / b;
            d = 0.25 * (r13 + r31) / b;
            a = 0.25 * (r32 - r23) / b;
        } else if yd > 1.0 {
            c = 0.5 * yd.sqrt();
            b = 0.25 * (r12 + r21) / c;
            d = 0.25 * (r23 + r32) / c;
            a = 0.25 * (r13 - r31) / c;
        } else {
            d = 0.5 * zd.sqrt();
            b = 0.25 * (r13 + r31) / d;
            c = 0.25 * (r23 + r32) / d;
            a = 0.25 * (r21 - r12) / d;
        }
        if a < 0.0 {
            b = -b;
            c = -c;
            d = -d;
        }
    }
    ([b, c, d], qfac)
}

fn build_header(
    path: &Path,
    dims_xyz: [usize; 3],
    g: &Geometry,
    datatype: i16,
    bitpix: i16,
) -> Result<Vec<u8>, VolumeError> {
    let mut h = vec![0u8; VOX_OFFSET_WRITTEN];
    let put_i16 =
        |h: &mut [u8], off: usize, v: i16| h[off..off + 2].copy_from_slice(&v.to_le_bytes());
    let put_i32 =
        |h: &mut [u8], off: usize, v: i32| h[off..off + 4].copy_from_slice(&v.to_le_bytes());
    let put_f32 = |h: &mut [u8], off: usize, v: f64| {
        h[off..off + 4].copy_from_slice(&(v as f32).to_le_bytes())
    };
    put_i32(&mut h, 0, HEADER_BYTES as i32);
    h[38] = b'r'; // "regular", as nibabel and ITK write it
    let mut dims = [1i16; 8];
    dims[0] = 3;
    for (k, &n) in dims_xyz.iter().enumerate() {
        dims[k + 1] = i16::try_from(n).map_err(|_| {
            VolumeError::unsupported(path, format!("size {n} does not fit a NIfTI-1 dimension"))
        })?;
    }
    for (i, d) in dims.iter().enumerate() {
        put_i16(&mut h, 40 + 2 * i, *d);
    }
    put_i16(&mut h, 70, datatype);
    put_i16(&mut h, 72, bitpix);

    // LPS affine -> RAS: negate rows 0 and 1.
    let m = g.direction.rows();
    let s = g.spacing.xyz();
    let o = g.origin.to_array();
    let flip = [-1.0, -1.0, 1.0];
    let rot: [[f64; 3]; 3] = std::array::from_fn(|r| std::array::from_fn(|c| flip[r] * m[r][c]));
    let (q, qfac) = quaternion(rot);
    let pixdim = [qfac, s[0], s[1], s[2], 1.0, 1.0, 1.0, 1.0];
    for (i, p) in pixdim.iter().enumerate() {
        put_f32(&mut h, 76 + 4 * i, *p);
    }
    put_f32(&mut h, 108, VOX_OFFSET_WRITTEN as f64);
    put_f32(&mut h, 112, 1.0); // scl_slope
    put_f32(&mut h, 116, 0.0); // scl_inter
    h[123] = 2 | 8; // mm, seconds
    let descrip = b"speck";
    h[148..148 + descrip.len()].copy_from_slice(descrip);
    // A quaternion can only express a rotation: for a sheared direction only the sform is set.
    let dot = |a: usize, b: usize| (0..3).map(|r| rot[r][a] * rot[r][b]).sum::<f64>();
    let orthonormal = [dot(0, 1), dot(0, 2), dot(1, 2)]
        .iter()
        .all(|v| v.abs() < 1e-4);
    let qform_ok = orthonormal && q.iter().all(|v| v.is_finite());
    put_i16(&mut h, 252, i16::from(qform_ok)); // qform_code: 1 = scanner anatomical
    put_i16(&mut h, 254, 1); // sform_code: scanner anatomical
    if qform_ok {
        for (i, v) in q.iter().enumerate() {
            put_f32(&mut h, 256 + 4 * i, *v);
        }
    }
    for r in 0..3 {
        put_f32(&mut h, 268 + 4 * r, flip[r] * o[r]);
    }
    for r in 0..3 {
        for c in 0..3 {
            put_f32(&mut h, 280 + 16 * r + 4 * c, rot[r][c] * s[c]);
        }
        put_f32(&mut h, 280 + 16 * r + 12, flip[r] * o[r]);
    }
    h[344..348].copy_from_slice(b"n+1\0");
    Ok(h)
}

fn is_gz(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("gz"))
}

/// Write the header, then `body` in x-fastest order, gzipped if the path ends with `.gz`.
fn write_file(
    path: &Path,
    header: &[u8],
    body: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> Result<(), VolumeError> {
    let file = File::create(path).map_err(|e| VolumeError::io(path, e))?;
    let buffered = BufWriter::with_capacity(1 << 20, file);
    let result = (|| -> io::Result<()> {
        if is_gz(path) {
            let mut gz = GzEncoder::new(buffered, Compression::fast());
            gz.write_all(header)?;
            body(&mut gz)?;
            gz.finish()?.flush()
        } else {
            let mut w = buffered;
            w.write_all(header)?;
            body(&mut w)?;
            w.flush()
        }
    })();
    result.map_err(|e| VolumeError::io(path, e))
}

/// Write `values` (logical `[z, y, x]` order, so x fastest) as little-endian bytes.
fn write_values<T: Copy, const N: usize>(
    w: &mut dyn Write,
    values: impl Iterator<Item = T>,
    to_le: impl Fn(T) -> [u8; N],
) -> io::Result<()> {
    let mut buf = Vec::with_capacity(1 << 20);
    for v in values {
        buf.extend_from_slice(&to_le(v));
        if buf.len() >= (1 << 20) {
            w.write_all(&buf)?;
            buf.clear();
        }
    }
    w.write_all(&buf)
}

/// Write a volume as NIfTI-1 `int16` (`.nii`, or gzipped when the path ends with `.gz`).
///
/// Both the sform and the qform are set (code 1, scanner anatomical) from the volume's LPS
/// geometry converted to RAS (the qform only when the direction is a rotation, possibly
/// improper: a sheared direction is written as sform only); units are mm. Reading the file back with [`read_nifti`] gives the
/// same voxels and geometry (to `f32` precision).
///
/// # Errors
/// [`VolumeError::Io`] when the file cannot be written; [`VolumeError::Unsupported`] when a
/// dimension exceeds 32767 (the NIfTI-1 limit).
pub fn write_nifti(volume: &Volume, path: &Path) -> Result<(), VolumeError> {
    let header = build_header(path, volume.size_xyz(), volume.geometry(), 4, 16)?;
    let voxels = volume.voxels();
    write_file(path, &header, |w| {
        write_values(w, voxels.iter().copied(), i16::to_le_bytes)
    })
}

/// Write an `f32` map (`[z, y, x]`, e.g. a heatmap) with a geometry as NIfTI-1 `float32`.
///
/// # Errors
/// As [`write_nifti`]; [`VolumeError::InvalidGeometry`] when `data` has a zero dimension.
pub fn write_nifti_f32(
    data: ArrayView3<'_, f32>,
    geometry: &Geometry,
    path: &Path,
) -> Result<(), VolumeError> {
    let (nz, ny, nx) = data.dim();
    if nz == 0 || ny == 0 || nx == 0 {
        return Err(VolumeError::InvalidGeometry(format!(
            "empty map of shape [{nz}, {ny}, {nx}]"
        )));
    }
    let header = build_header(path, [nx, ny, nz], geometry, 16, 32)?;
    write_file(path, &header, |w| {
        write_values(w, data.iter().copied(), f32::to_le_bytes)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rot(axis: usize, t: f64) -> [[f64; 3]; 3] {
        let (c, s) = (t.cos(), t.sin());
        let mut m = [[0.0; 3]; 3];
        let (i, j) = ((axis + 1) % 3, (axis + 2) % 3);
        m[axis][axis] = 1.0;
        m[i][i] = c;
        m[j][j] = c;
        m[i][j] = -s;
        m[j][i] = s;
        m
    }

    #[test]
    fn quaternion_round_trips_through_qform() {
        for (axis, t, flip) in [
            (0, 0.3, false),
            (1, 2.9, true),
            (2, -1.2, false),
            (2, 3.1, true),
        ] {
            let mut r = rot(axis, t);
            if flip {
                for row in r.iter_mut() {
                    row[2] = -row[2];
                }
            }
            let (q, qfac) = quaternion(r);
            let q32 = q.map(|v| f64::from(v as f32));
            let mut w = Vec::new();
            let pixdim = [qfac, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0];
            let a = qform_affine(q32, [0.0; 3], &pixdim, &mut w);
            for i in 0..3 {
                for j in 0..3 {
                    assert!(
                        (a[i][j] - r[i][j]).abs() < 1e-5,
                        "{axis} {t} {flip}: {a:?} vs {r:?}"
                    );
                }
            }
        }
    }
}
