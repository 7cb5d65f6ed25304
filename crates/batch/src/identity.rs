//! Which input a result came from, so that `--resume` never hands one scan another scan's results.
//!
//! A scan's `scan.json` records the [`InputIdentity`] of what was read: the resolved path, the
//! number and total size of the files, their latest modification time and a content fingerprint.
//! A resumed run recomputes it and redoes the scan when anything differs (another file under the
//! same id, a file replaced in place, a series that gained or lost slices).
//!
//! The fingerprint samples content instead of hashing it all, so that resuming an archive costs
//! a few kilobytes per file rather than a second read of every scan: the first and last 64 KiB of
//! a NIfTI/MetaImage file (and of the data file a `.mhd` header names), and the first 8 KiB of each
//! DICOM file of a series (its header, which holds the SOPInstanceUID).

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use super::names::fnv1a64;

/// Bytes sampled from each end of a single-file image.
const FILE_SAMPLE: u64 = 64 * 1024;
/// Bytes sampled from the start of each DICOM file.
const DICOM_SAMPLE: u64 = 8 * 1024;

/// What identifies the input of one scan (written in `scan.json`, compared by `--resume`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct InputIdentity {
    /// The resolved (canonical) path of the file, or of the folder holding the series.
    pub path: String,
    /// The SeriesInstanceUID read from that folder, for DICOM.
    pub series_uid: Option<String>,
    /// Files read.
    pub files: usize,
    /// Their total size in bytes.
    pub bytes: u64,
    /// Their latest modification time, nanoseconds since the Unix epoch (0 when unknown).
    pub modified_ns: u64,
    /// FNV-1a (64 bit, hex) over the files' names, sizes and sampled content.
    pub fingerprint: String,
}

/// Content sample of one file: its first `head` bytes and, when `tail`, its last [`FILE_SAMPLE`].
fn sample(path: &Path, head: u64, tail: bool, len: u64) -> io::Result<Vec<u8>> {
    let mut f = File::open(path)?;
    let mut buf = Vec::new();
    (&mut f).take(head).read_to_end(&mut buf)?;
    if tail && len > head {
        let from = len.saturating_sub(FILE_SAMPLE).max(head);
        f.seek(SeekFrom::Start(from))?;
        f.take(FILE_SAMPLE).read_to_end(&mut buf)?;
    }
    Ok(buf)
}

fn modified_ns(meta: &std::fs::Metadata) -> u64 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// Identity of `files` (sorted by the caller), read under `root`.
fn of_files(
    root: &Path,
    series_uid: Option<&str>,
    files: &[PathBuf],
    head: u64,
    tail: bool,
) -> io::Result<InputIdentity> {
    let canonical = std::fs::canonicalize(root)?;
    let mut digest = Vec::new();
    let (mut bytes, mut newest) = (0u64, 0u64);
    for f in files {
        let meta = std::fs::metadata(f)?;
        let len = meta.len();
        bytes = bytes.saturating_add(len);
        newest = newest.max(modified_ns(&meta));
        let name = f.strip_prefix(root).unwrap_or(f);
        digest.extend_from_slice(name.to_string_lossy().as_bytes());
        digest.push(0);
        digest.extend_from_slice(&len.to_le_bytes());
        digest.extend_from_slice(&fnv1a64(&sample(f, head, tail, len)?).to_le_bytes());
    }
    Ok(InputIdentity {
        path: canonical.to_string_lossy().into_owned(),
        series_uid: series_uid.map(str::to_string),
        files: files.len(),
        bytes,
        modified_ns: newest,
        fingerprint: format!("{:016x}", fnv1a64(&digest)),
    })
}

/// Identity of a NIfTI or MetaImage file (with the data file a `.mhd` header names, resolved as
/// the reader resolves it).
///
/// # Errors
/// An I/O error when the file cannot be read.
pub fn of_image_file(path: &Path) -> io::Result<InputIdentity> {
    let mut files = vec![path.to_path_buf()];
    let is_metaimage = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("mhd") || e.eq_ignore_ascii_case("mha"));
    if is_metaimage {
        // A header the reader refuses is the loader's error to report; its identity is then the
        // header alone.
        if let Ok(data) = speck_volume::metaimage::data_file(path) {
            if data != path {
                files.push(data);
            }
        }
    }
    let root = path.parent().unwrap_or_else(|| Path::new("."));
    let mut id = of_files(root, None, &files, FILE_SAMPLE, true)?;
    id.path = std::fs::canonicalize(path)?.to_string_lossy().into_owned();
    Ok(id)
}

/// Identity of one DICOM series: the folder it was found under, its UID and its files.
///
/// # Errors
/// An I/O error when a file of the series cannot be read.
pub fn of_dicom_series(
    dir: &Path,
    series_uid: &str,
    files: &[PathBuf],
) -> io::Result<InputIdentity> {
    let mut files = files.to_vec();
    files.sort();
    of_files(dir, Some(series_uid), &files, DICOM_SAMPLE, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_bytes_elsewhere_differ_by_path_and_changed_content_by_fingerprint() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = dir.path().join("a");
        let z = dir.path().join("z");
        std::fs::create_dir_all(&a).expect("mkdir");
        std::fs::create_dir_all(&z).expect("mkdir");
        let body: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(a.join("ct.nii"), &body).expect("write");
        std::fs::write(z.join("ct.nii"), &body).expect("write");
        let ia = of_image_file(&a.join("ct.nii")).expect("a");
        let iz = of_image_file(&z.join("ct.nii")).expect("z");
        assert_ne!(ia, iz);
        assert_eq!(
            ia.fingerprint, iz.fingerprint,
            "same names, sizes and bytes"
        );
        assert_eq!(ia, of_image_file(&a.join("ct.nii")).expect("again"));

        // One byte changed near the end, same size: the tail sample sees it.
        let mut changed = body.clone();
        let n = changed.len();
        changed[n - 10] ^= 0xff;
        std::fs::write(a.join("ct.nii"), &changed).expect("rewrite");
        let ia2 = of_image_file(&a.join("ct.nii")).expect("a2");
        assert_ne!(ia.fingerprint, ia2.fingerprint);
    }

    #[test]
    fn a_metaimage_data_file_is_part_of_the_identity() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mhd = dir.path().join("1.2.3.mhd");
        std::fs::write(&mhd, "ElementDataFile = 1.2.3.raw\n").expect("mhd");
        std::fs::write(dir.path().join("1.2.3.raw"), [1u8; 64]).expect("raw");
        let before = of_image_file(&mhd).expect("before");
        assert_eq!(before.files, 2);
        std::fs::write(dir.path().join("1.2.3.raw"), [2u8; 64]).expect("raw2");
        assert_ne!(
            before.fingerprint,
            of_image_file(&mhd).expect("after").fingerprint
        );
    }

    #[test]
    fn a_series_that_loses_a_slice_differs() {
        let dir = tempfile::tempdir().expect("tempdir");
        let files: Vec<PathBuf> = (0..3)
            .map(|i| {
                let p = dir.path().join(format!("{i}.dcm"));
                std::fs::write(&p, [i as u8; 300]).expect("write");
                p
            })
            .collect();
        let all = of_dicom_series(dir.path(), "1.2", &files).expect("all");
        let fewer = of_dicom_series(dir.path(), "1.2", &files[..2]).expect("fewer");
        assert_ne!(all, fewer);
        let other_uid = of_dicom_series(dir.path(), "1.3", &files).expect("uid");
        assert_ne!(all, other_uid);
    }
}
