//! Shared by the NIfTI and MetaImage readers: stream raw voxel bytes of a known element type into
//! `i16` HU (or `f32`), bounded by the declared size, with typed errors.
//!
//! Data is consumed in fixed-size chunks straight from the (possibly decompressing) reader, so the
//! only large allocation is the output vector, reserved once after the size checks.

use std::io::{self, Read};
use std::path::Path;

use crate::{Limits, VolumeError};

/// Element types the readers accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ElemType {
    U8,
    I8,
    I16,
    U16,
    I32,
    U32,
    F32,
    F64,
}

impl ElemType {
    /// Bytes per element.
    pub(crate) const fn size(self) -> usize {
        match self {
            Self::U8 | Self::I8 => 1,
            Self::I16 | Self::U16 => 2,
            Self::I32 | Self::U32 | Self::F32 => 4,
            Self::F64 => 8,
        }
    }
}

/// A linear intensity mapping `value * slope + inter`, applied before conversion.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Scale {
    pub(crate) slope: f64,
    pub(crate) inter: f64,
}

impl Scale {
    pub(crate) const IDENTITY: Scale = Scale {
        slope: 1.0,
        inter: 0.0,
    };

    fn is_identity(self) -> bool {
        self.slope == 1.0 && self.inter == 0.0
    }
}

/// How the raw bytes are laid out.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Layout {
    pub(crate) elem: ElemType,
    pub(crate) big_endian: bool,
    pub(crate) scale: Scale,
}

/// Counts gathered while converting, turned into warnings by the caller.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct ConvertStats {
    /// Values outside the `i16` range, clamped to it.
    pub(crate) clamped: u64,
}

/// Check a voxel count against `limits` and return `(voxels, raw bytes)`.
///
/// `out_bytes_per_voxel` is the size of the decoded output element; raw and decoded bytes are
/// counted together against `limits.max_bytes` since both may be alive at once in the worst case.
pub(crate) fn check_size(
    path: &Path,
    dims_xyz: [u64; 3],
    elem: ElemType,
    out_bytes_per_voxel: u64,
    limits: &Limits,
) -> Result<(usize, u64), VolumeError> {
    for (axis, d) in ["x", "y", "z"].iter().zip(dims_xyz) {
        if d == 0 {
            return Err(VolumeError::malformed(
                path,
                format!("size along {axis} is zero"),
            ));
        }
        if d > limits.max_dim {
            return Err(VolumeError::TooLarge {
                path: path.into(),
                reason: format!("size along {axis} is {d}"),
                limit: format!("{} per axis", limits.max_dim),
            });
        }
    }
    let voxels = dims_xyz
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d))
        .filter(|&v| v <= limits.max_voxels)
        .ok_or_else(|| VolumeError::TooLarge {
            path: path.into(),
            reason: format!("{}x{}x{} voxels", dims_xyz[0], dims_xyz[1], dims_xyz[2]),
            limit: format!("{} voxels", limits.max_voxels),
        })?;
    let raw_bytes = voxels * elem.size() as u64;
    let total = raw_bytes + voxels * out_bytes_per_voxel;
    if total > limits.max_bytes {
        return Err(VolumeError::TooLarge {
            path: path.into(),
            reason: format!("{total} bytes to decode"),
            limit: format!("{} bytes", limits.max_bytes),
        });
    }
    let voxels = usize::try_from(voxels).map_err(|_| VolumeError::TooLarge {
        path: path.into(),
        reason: format!("{voxels} voxels"),
        limit: "the address space of this machine".into(),
    })?;
    Ok((voxels, raw_bytes))
}

/// Map an I/O error from reading data into a typed error: corrupt compressed data and early ends
/// are `Malformed`, everything else is `Io`.
pub(crate) fn map_read_error(path: &Path, what: &str, e: io::Error) -> VolumeError {
    match e.kind() {
        io::ErrorKind::InvalidData | io::ErrorKind::InvalidInput => {
            VolumeError::malformed(path, format!("corrupt {what}: {e}"))
        }
        io::ErrorKind::UnexpectedEof => {
            VolumeError::malformed(path, format!("{what} ends early: {e}"))
        }
        _ => VolumeError::io(path, e),
    }
}

/// Read until `buf` is full or the stream ends; returns the bytes read.
fn fill(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// Skip exactly `n` bytes of `r`.
pub(crate) fn skip(r: &mut impl Read, n: u64, path: &Path, what: &str) -> Result<(), VolumeError> {
    let copied =
        io::copy(&mut r.take(n), &mut io::sink()).map_err(|e| map_read_error(path, what, e))?;
    if copied != n {
        return Err(VolumeError::malformed(
            path,
            format!("{what} ends after {copied} of {n} bytes"),
        ));
    }
    Ok(())
}

/// True when `r` still has at least one byte (used to detect streams longer than declared).
pub(crate) fn has_more(r: &mut impl Read, path: &Path, what: &str) -> Result<bool, VolumeError> {
    let mut one = [0u8; 1];
    let n = fill(r, &mut one).map_err(|e| map_read_error(path, what, e))?;
    Ok(n > 0)
}

const CHUNK_BYTES: usize = 1 << 20;

/// Feed exactly `n_voxels` elements from `r` to `sink`, in whole-element chunks.
fn stream<R: Read>(
    r: &mut R,
    path: &Path,
    what: &str,
    elem: ElemType,
    n_voxels: usize,
    mut sink: impl FnMut(&[u8]) -> Result<(), VolumeError>,
) -> Result<(), VolumeError> {
    let es = elem.size();
    let total = n_voxels.saturating_mul(es);
    let chunk = (CHUNK_BYTES / es * es).min(total).max(es);
    let mut buf = vec![0u8; chunk];
    let mut done = 0usize;
    while done < total {
        let want = chunk.min(total - done);
        let got = fill(r, &mut buf[..want]).map_err(|e| map_read_error(path, what, e))?;
        if got < want {
            return Err(VolumeError::malformed(
                path,
                format!(
                    "{what} ends after {} of the {total} bytes the header declares (truncated?)",
                    done + got
                ),
            ));
        }
        sink(&buf[..got])?;
        done += got;
    }
    Ok(())
}

/// Raw value of element `b` (exactly `elem.size()` bytes) as `f64`.
#[inline]
fn value(elem: ElemType, be: bool, b: &[u8]) -> f64 {
    macro_rules! get {
        ($t:ty, $n:expr) => {{
            let mut a = [0u8; $n];
            a.copy_from_slice(&b[..$n]);
            if be {
                <$t>::from_be_bytes(a) as f64
            } else {
                <$t>::from_le_bytes(a) as f64
            }
        }};
    }
    match elem {
        ElemType::U8 => f64::from(b[0]),
        ElemType::I8 => f64::from(b[0] as i8),
        ElemType::I16 => get!(i16, 2),
        ElemType::U16 => get!(u16, 2),
        ElemType::I32 => get!(i32, 4),
        ElemType::U32 => get!(u32, 4),
        ElemType::F32 => get!(f32, 4),
        ElemType::F64 => get!(f64, 8),
    }
}

fn reserve<T>(path: &Path, n: usize) -> Result<Vec<T>, VolumeError> {
    let mut v = Vec::new();
    v.try_reserve_exact(n).map_err(|e| VolumeError::TooLarge {
        path: path.into(),
        reason: format!("cannot allocate {n} voxels: {e}"),
        limit: "available memory".into(),
    })?;
    Ok(v)
}

fn not_finite(path: &Path, index: usize, dims_xyz: [usize; 3], v: f64) -> VolumeError {
    let x = index % dims_xyz[0].max(1);
    let y = (index / dims_xyz[0].max(1)) % dims_xyz[1].max(1);
    let z = index / (dims_xyz[0].max(1) * dims_xyz[1].max(1));
    VolumeError::malformed(
        path,
        format!("voxel [z={z}, y={y}, x={x}] is {v}: Speck does not load non-finite intensities"),
    )
}

/// Decode `dims_xyz` voxels (x fastest) from `r` into `i16` HU: scale, round half away from zero,
/// clamp to the `i16` range (counted in the stats). Non-finite values are an error.
pub(crate) fn decode_i16<R: Read>(
    r: &mut R,
    path: &Path,
    what: &str,
    layout: Layout,
    dims_xyz: [usize; 3],
    n_voxels: usize,
) -> Result<(Vec<i16>, ConvertStats), VolumeError> {
    let mut out: Vec<i16> = reserve(path, n_voxels)?;
    let mut stats = ConvertStats::default();
    let Layout {
        elem,
        big_endian: be,
        scale,
    } = layout;
    let es = elem.size();
    if elem == ElemType::I16 && scale.is_identity() {
        stream(r, path, what, elem, n_voxels, |c| {
            if be {
                out.extend(c.chunks_exact(2).map(|b| i16::from_be_bytes([b[0], b[1]])));
            } else {
                out.extend(c.chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]])));
            }
            Ok(())
        })?;
    } else {
        stream(r, path, what, elem, n_voxels, |c| {
            for b in c.chunks_exact(es) {
                let v = value(elem, be, b) * scale.slope + scale.inter;
                if !v.is_finite() {
                    return Err(not_finite(path, out.len(), dims_xyz, v));
                }
                let rounded = v.round();
                let clamped = rounded.clamp(f64::from(i16::MIN), f64::from(i16::MAX));
                if clamped != rounded {
                    stats.clamped += 1;
                }
                out.push(clamped as i16);
            }
            Ok(())
        })?;
    }
    Ok((out, stats))
}

/// Decode `n_voxels` values (x fastest) from `r` into `f32` after scaling; non-finite values are
/// an error.
pub(crate) fn decode_f32<R: Read>(
    r: &mut R,
    path: &Path,
    what: &str,
    layout: Layout,
    dims_xyz: [usize; 3],
    n_voxels: usize,
) -> Result<Vec<f32>, VolumeError> {
    let mut out: Vec<f32> = reserve(path, n_voxels)?;
    let Layout {
        elem,
        big_endian: be,
        scale,
    } = layout;
    let es = elem.size();
    stream(r, path, what, elem, n_voxels, |c| {
        for b in c.chunks_exact(es) {
            let v = value(elem, be, b) * scale.slope + scale.inter;
            let f = v as f32;
            if !f.is_finite() {
                return Err(not_finite(path, out.len(), dims_xyz, v));
            }
            out.push(f);
        }
        Ok(())
    })?;
    Ok(out)
}

/// A warning line for clamped voxels, if any.
pub(crate) fn clamp_warning(stats: ConvertStats) -> Option<String> {
    (stats.clamped > 0).then(|| {
        format!(
            "{} voxels were outside the i16 range after scaling and were clamped to [-32768, 32767]",
            stats.clamped
        )
    })
}

/// Largest factor by which deflate can expand data (a stream of maximal-length back-references).
pub(crate) const MAX_DEFLATE_RATIO: u64 = 1032;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_scaled_big_endian_u16_with_rounding_and_clamping() {
        let vals: [u16; 4] = [0, 1000, 40000, 3];
        let bytes: Vec<u8> = vals.iter().flat_map(|v| v.to_be_bytes()).collect();
        let layout = Layout {
            elem: ElemType::U16,
            big_endian: true,
            scale: Scale {
                slope: 1.0,
                inter: -1024.5,
            },
        };
        let (out, stats) = decode_i16(
            &mut bytes.as_slice(),
            Path::new("t"),
            "data",
            layout,
            [4, 1, 1],
            4,
        )
        .expect("decode");
        // -1024.5 rounds away from zero; 40000-1024.5 = 38975.5 is clamped.
        assert_eq!(out, vec![-1025, -25, i16::MAX, -1022]);
        assert_eq!(stats.clamped, 1);
    }

    #[test]
    fn nan_is_an_error_naming_the_voxel() {
        let vals: [f32; 3] = [1.0, f32::NAN, 2.0];
        let bytes: Vec<u8> = vals.iter().flat_map(|v| v.to_le_bytes()).collect();
        let layout = Layout {
            elem: ElemType::F32,
            big_endian: false,
            scale: Scale::IDENTITY,
        };
        let err = decode_i16(
            &mut bytes.as_slice(),
            Path::new("t"),
            "data",
            layout,
            [3, 1, 1],
            3,
        )
        .expect_err("NaN");
        assert!(err.to_string().contains("x=1"), "{err}");
    }

    #[test]
    fn short_stream_is_malformed() {
        let bytes = vec![0u8; 7];
        let layout = Layout {
            elem: ElemType::I16,
            big_endian: false,
            scale: Scale::IDENTITY,
        };
        let err = decode_i16(
            &mut bytes.as_slice(),
            Path::new("t"),
            "data",
            layout,
            [4, 1, 1],
            4,
        )
        .expect_err("short");
        assert!(matches!(err, VolumeError::Malformed { .. }), "{err}");
    }

    #[test]
    fn size_checks_refuse_before_allocating() {
        let l = Limits::default();
        assert!(matches!(
            check_size(
                Path::new("t"),
                [1 << 20, 1 << 20, 1 << 20],
                ElemType::I16,
                2,
                &l
            ),
            Err(VolumeError::TooLarge { .. })
        ));
        assert!(matches!(
            check_size(Path::new("t"), [0, 1, 1], ElemType::I16, 2, &l),
            Err(VolumeError::Malformed { .. })
        ));
        assert_eq!(
            check_size(Path::new("t"), [2, 3, 4], ElemType::F32, 2, &l).expect("ok"),
            (24, 96)
        );
    }
}
