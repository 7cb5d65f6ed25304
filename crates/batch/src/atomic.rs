//! Atomic file writes: a temporary file in the destination folder, `fsync`, then `rename`.
//!
//! A reader (or a resumed run) therefore sees either the old file or the complete new one under
//! the final name, never a half-written one. Temporary files are named
//! `.speck-tmp-<pid>-<n>-<final name>`; each one is registered while it exists, so that an
//! interrupted run can remove them ([`remove_all_temps`]) and a resumed run can sweep stale ones
//! left by a killed process ([`sweep_stale_temps`]).

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};

/// Prefix of every temporary file Speck writes.
pub const TEMP_PREFIX: &str = ".speck-tmp-";

static COUNTER: AtomicU64 = AtomicU64::new(0);
/// Set once [`remove_all_temps`] ran: no temporary file may be created after it.
static CLOSED: AtomicBool = AtomicBool::new(false);

fn registry() -> &'static Mutex<BTreeSet<PathBuf>> {
    static REG: OnceLock<Mutex<BTreeSet<PathBuf>>> = OnceLock::new();
    REG.get_or_init(|| Mutex::new(BTreeSet::new()))
}

fn lock() -> MutexGuard<'static, BTreeSet<PathBuf>> {
    // A poisoned lock only means another thread panicked while holding it; the set is still valid.
    registry()
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Create an empty temporary file beside `dest` whose name keeps `dest`'s extension (writers that
/// pick a format by extension, like `.nii.gz`, still see it). The file is created and registered
/// under one lock, and stays registered until [`commit`] or [`discard`].
///
/// # Errors
/// Any I/O error, or [`io::ErrorKind::Interrupted`] once the run is being torn down.
pub fn create_temp(dest: &Path) -> io::Result<(PathBuf, File)> {
    let parent = dest.parent().unwrap_or_else(|| Path::new("."));
    let name = dest
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| io::Error::other(format!("{}: not a file path", dest.display())))?;
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let tmp = parent.join(format!("{TEMP_PREFIX}{}-{n}-{name}", std::process::id()));
    let mut guard = lock();
    if CLOSED.load(Ordering::SeqCst) {
        return Err(io::Error::new(
            io::ErrorKind::Interrupted,
            "run interrupted",
        ));
    }
    let f = File::create(&tmp)?;
    guard.insert(tmp.clone());
    Ok((tmp, f))
}

/// Flush `tmp` to disk, rename it to `dest`, and flush the folder entry.
///
/// # Errors
/// Any I/O error; `tmp` is removed when the rename fails.
pub fn commit(tmp: &Path, dest: &Path) -> io::Result<()> {
    let result = (|| {
        File::open(tmp)?.sync_all()?;
        fs::rename(tmp, dest)?;
        if let Some(parent) = dest.parent() {
            // Directory fsync makes the rename durable; not every platform allows opening a dir.
            if let Ok(d) = File::open(parent) {
                let _ = d.sync_all();
            }
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(tmp);
    }
    lock().remove(tmp);
    result
}

/// Remove a temporary file that will not be committed.
pub fn discard(tmp: &Path) {
    let _ = fs::remove_file(tmp);
    lock().remove(tmp);
}

/// Write `bytes` to `dest` atomically.
///
/// # Errors
/// Any I/O error; nothing is left under `dest` or a temporary name.
pub fn write_atomic(dest: &Path, bytes: &[u8]) -> io::Result<()> {
    write_atomic_with(dest, |f| f.write_all(bytes))
}

/// Write `dest` atomically with a closure that fills a buffered writer.
///
/// # Errors
/// Any I/O error from the closure or the file system; nothing is left behind.
pub fn write_atomic_with(
    dest: &Path,
    fill: impl FnOnce(&mut io::BufWriter<File>) -> io::Result<()>,
) -> io::Result<()> {
    let (tmp, f) = create_temp(dest)?;
    let result = (|| {
        let mut w = io::BufWriter::new(f);
        fill(&mut w)?;
        w.flush()?;
        drop(w);
        Ok(())
    })();
    match result {
        Ok(()) => commit(&tmp, dest),
        Err(e) => {
            discard(&tmp);
            Err(e)
        }
    }
}

/// Remove every registered temporary file, holding the registry lock so no new one appears until
/// the process exits. Returns the guard; keep it alive until `std::process::exit`.
pub fn remove_all_temps() -> MutexGuard<'static, BTreeSet<PathBuf>> {
    let mut guard = lock();
    CLOSED.store(true, Ordering::SeqCst);
    for p in guard.iter() {
        let _ = fs::remove_file(p);
    }
    guard.clear();
    guard
}

/// Remove temporary files left in `dir` (not recursive) by an earlier, killed process.
/// Returns how many were removed.
pub fn sweep_stale_temps(dir: &Path) -> usize {
    let Ok(rd) = fs::read_dir(dir) else {
        return 0;
    };
    let live = lock().clone();
    let mut n = 0;
    for entry in rd.flatten() {
        let name = entry.file_name();
        let is_temp = name.to_str().is_some_and(|s| s.starts_with(TEMP_PREFIX));
        let path = entry.path();
        if is_temp
            && !live.contains(&path)
            && entry.file_type().is_ok_and(|t| t.is_file())
            && fs::remove_file(&path).is_ok()
        {
            n += 1;
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_then_read_and_no_temp_left() {
        let dir = tempfile::tempdir().expect("tempdir");
        let dest = dir.path().join("a.csv");
        write_atomic(&dest, b"x,y\n").expect("write");
        write_atomic(&dest, b"z\n").expect("overwrite");
        assert_eq!(fs::read(&dest).expect("read"), b"z\n");
        let names: Vec<_> = fs::read_dir(dir.path())
            .expect("ls")
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names.len(), 1);
    }

    #[test]
    fn failed_fill_leaves_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let dest = dir.path().join("b.csv");
        let err = write_atomic_with(&dest, |w| {
            w.write_all(b"partial")?;
            Err(io::Error::other("boom"))
        });
        assert!(err.is_err());
        assert_eq!(fs::read_dir(dir.path()).expect("ls").count(), 0);
    }

    #[test]
    fn stale_temps_are_swept_but_not_live_ones() {
        let dir = tempfile::tempdir().expect("tempdir");
        let stale = dir.path().join(format!("{TEMP_PREFIX}1-0-x.csv"));
        fs::write(&stale, b"half").expect("write");
        let (live, _f) = create_temp(&dir.path().join("y.csv")).expect("tmp");
        assert_eq!(sweep_stale_temps(dir.path()), 1);
        assert!(!stale.exists());
        assert!(live.exists());
        discard(&live);
        assert!(!live.exists());
    }
}
