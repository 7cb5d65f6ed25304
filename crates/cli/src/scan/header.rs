//! Sizes from file headers, read before any image data, to estimate a scan's peak memory.
//!
//! Only the header is read (348 bytes of NIfTI, at most 64 KiB of MetaImage text), so a file that
//! lies about its size costs nothing here; the loader re-checks everything with its own
//! [`speck_volume::Limits`].

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;

/// What a header says about the image: number of voxels of the first 3D volume and the stored
/// bytes per voxel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderSize {
    /// Voxels in the first 3D volume (`x * y * z`).
    pub voxels: u64,
    /// Bytes per stored voxel (2 for `int16`, 4 for `float32`, ...).
    pub bytes_per_voxel: u32,
}

/// Read a NIfTI-1/NIfTI-2 header (`.nii` or `.nii.gz`).
///
/// # Errors
/// An I/O error, or `InvalidData` when the header is not NIfTI.
pub fn nifti(path: &Path) -> io::Result<HeaderSize> {
    let f = File::open(path)?;
    let gz = path
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.to_ascii_lowercase().ends_with(".gz"));
    let mut buf = [0u8; 540];
    let mut reader: Box<dyn Read> = if gz {
        Box::new(flate2::read::GzDecoder::new(f))
    } else {
        Box::new(f)
    };
    let n = read_up_to(&mut reader, &mut buf)?;
    let bad = |why: &str| io::Error::new(io::ErrorKind::InvalidData, format!("not NIfTI: {why}"));
    if n < 348 {
        return Err(bad("shorter than a header"));
    }
    let le32 = i32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]);
    let be32 = i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
    let (v2, le) = match (le32, be32) {
        (348, _) => (false, true),
        (_, 348) => (false, false),
        (540, _) => (true, true),
        (_, 540) => (true, false),
        _ => return Err(bad("sizeof_hdr is neither 348 nor 540")),
    };
    let i16_at = |o: usize| {
        let b = [buf[o], buf[o + 1]];
        if le {
            i16::from_le_bytes(b)
        } else {
            i16::from_be_bytes(b)
        }
    };
    let i64_at = |o: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&buf[o..o + 8]);
        if le {
            i64::from_le_bytes(b)
        } else {
            i64::from_be_bytes(b)
        }
    };
    let (dims, bitpix): ([i64; 3], i64) = if v2 {
        if n < 540 {
            return Err(bad("shorter than a NIfTI-2 header"));
        }
        ([i64_at(24), i64_at(32), i64_at(40)], i64::from(i16_at(14)))
    } else {
        (
            [
                i64::from(i16_at(42)),
                i64::from(i16_at(44)),
                i64::from(i16_at(46)),
            ],
            i64::from(i16_at(72)),
        )
    };
    voxels_of(&dims, bitpix).ok_or_else(|| bad("non-positive or overflowing dimensions"))
}

/// Read a MetaImage header (`.mhd` or `.mha`): `DimSize` and `ElementType`.
///
/// # Errors
/// An I/O error, or `InvalidData` when `DimSize` is missing or invalid.
pub fn metaimage(path: &Path) -> io::Result<HeaderSize> {
    let f = File::open(path)?;
    let mut reader = BufReader::new(f.take(64 * 1024));
    let mut line = Vec::new();
    let mut dims: Option<Vec<i64>> = None;
    let mut bytes = 2i64;
    let bad = |why: &str| io::Error::new(io::ErrorKind::InvalidData, format!("MetaImage: {why}"));
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        let text = String::from_utf8_lossy(&line);
        let Some((key, value)) = text.split_once('=') else {
            continue;
        };
        match key.trim().to_ascii_lowercase().as_str() {
            "dimsize" => {
                let d: Result<Vec<i64>, _> =
                    value.split_whitespace().map(str::parse::<i64>).collect();
                dims = Some(d.map_err(|_| bad("DimSize is not a list of integers"))?);
            }
            "elementtype" => {
                bytes = match value.trim().to_ascii_uppercase().as_str() {
                    "MET_CHAR" | "MET_UCHAR" => 1,
                    "MET_SHORT" | "MET_USHORT" => 2,
                    "MET_INT" | "MET_UINT" | "MET_FLOAT" => 4,
                    "MET_LONG" | "MET_ULONG" | "MET_DOUBLE" | "MET_LONG_LONG"
                    | "MET_ULONG_LONG" => 8,
                    _ => 4,
                };
            }
            "elementdatafile" => break,
            _ => {}
        }
    }
    let dims = dims.ok_or_else(|| bad("no DimSize"))?;
    if dims.len() < 3 {
        return Err(bad("DimSize has fewer than 3 values"));
    }
    voxels_of(&[dims[0], dims[1], dims[2]], bytes * 8).ok_or_else(|| bad("invalid DimSize"))
}

fn voxels_of(dims: &[i64; 3], bitpix: i64) -> Option<HeaderSize> {
    let mut v: u64 = 1;
    for &d in dims {
        if d <= 0 {
            return None;
        }
        v = v.checked_mul(u64::try_from(d).ok()?)?;
    }
    let bytes = u32::try_from((bitpix.max(8) + 7) / 8).ok()?;
    Some(HeaderSize {
        voxels: v,
        bytes_per_voxel: bytes,
    })
}

fn read_up_to(r: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nifti1_header(dims: [i16; 3], bitpix: i16) -> Vec<u8> {
        let mut h = vec![0u8; 352];
        h[0..4].copy_from_slice(&348i32.to_le_bytes());
        h[40..42].copy_from_slice(&3i16.to_le_bytes());
        for (i, d) in dims.iter().enumerate() {
            h[42 + 2 * i..44 + 2 * i].copy_from_slice(&d.to_le_bytes());
        }
        h[72..74].copy_from_slice(&bitpix.to_le_bytes());
        h
    }

    #[test]
    fn nifti_plain_and_gz() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("a.nii");
        std::fs::write(&p, nifti1_header([10, 20, 30], 16)).expect("write");
        assert_eq!(
            nifti(&p).expect("header"),
            HeaderSize {
                voxels: 6000,
                bytes_per_voxel: 2
            }
        );
        let pz = dir.path().join("a.nii.gz");
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut enc, &nifti1_header([4, 4, 4], 32)).expect("gz");
        std::fs::write(&pz, enc.finish().expect("gz")).expect("write");
        assert_eq!(nifti(&pz).expect("header").bytes_per_voxel, 4);
    }

    #[test]
    fn nifti_garbage_and_negative_dims_are_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("b.nii");
        std::fs::write(&p, b"hello").expect("write");
        assert!(nifti(&p).is_err());
        std::fs::write(&p, nifti1_header([10, -1, 30], 16)).expect("write");
        assert!(nifti(&p).is_err());
    }

    #[test]
    fn metaimage_dims() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("c.mhd");
        std::fs::write(
            &p,
            "ObjectType = Image\nNDims = 3\nDimSize = 512 512 300\nElementType = MET_SHORT\nElementDataFile = c.raw\n",
        )
        .expect("write");
        assert_eq!(
            metaimage(&p).expect("header"),
            HeaderSize {
                voxels: 512 * 512 * 300,
                bytes_per_voxel: 2
            }
        );
        std::fs::write(&p, "DimSize = 99999999999 99999999999 99999999999\n").expect("write");
        assert!(metaimage(&p).is_err());
    }
}
