//! The memory budget: estimate each scan's peak before loading it, refuse what can never fit, and
//! let scans run in parallel only while their estimates fit together.

use std::sync::{Condvar, Mutex};

/// Bytes in one GiB.
pub const GIB: u64 = 1 << 30;

/// Fixed part of a scan's peak: the ONNX Runtime sessions, their arenas (a coarse tile of up to
/// 2 Mi voxels needs about 200 MB) and the process itself.
pub const BASE_BYTES: u64 = 448 << 20;

/// Bytes per voxel on top of the stored data while a scan is processed: the `i16` volume (2) and
/// the detector's working set — lung mask, region-of-interest tiles, slab accumulators, the heatmap
/// when asked for (2, about twice what was measured).
///
/// Calibration (release build, bundled models with fitted coarse tiles): a 300 x 512 x 512 NIfTI
/// phantom peaks at 575 MB RSS (estimate 941 MB), LIDC-IDRI-0001 (133 x 512 x 512 DICOM) at
/// 553 MB (estimate 679 MB).
pub const WORK_BYTES_PER_VOXEL: u64 = 4;

/// Estimated peak memory (bytes) of scanning an image of `voxels` voxels stored with
/// `stored_bytes_per_voxel` bytes each.
pub fn estimate_peak_bytes(voxels: u64, stored_bytes_per_voxel: u32) -> u64 {
    BASE_BYTES.saturating_add(
        voxels.saturating_mul(WORK_BYTES_PER_VOXEL + u64::from(stored_bytes_per_voxel)),
    )
}

/// Voxels whose estimate fits in `budget` bytes (the inverse of [`estimate_peak_bytes`], used to
/// bound the loader when a header could not be read beforehand).
pub fn voxels_within(budget: u64, stored_bytes_per_voxel: u32) -> u64 {
    budget.saturating_sub(BASE_BYTES) / (WORK_BYTES_PER_VOXEL + u64::from(stored_bytes_per_voxel))
}

/// The memory this process may use: the cgroup limit (containers, Slurm, Kubernetes) or the
/// machine's total memory, whichever is lower, times 0.8. `None` when neither can be read.
pub fn default_budget() -> Option<u64> {
    let total = std::fs::read_to_string("/proc/meminfo").ok().and_then(|s| {
        s.lines()
            .find(|l| l.starts_with("MemTotal:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<u64>().ok())
            .map(|kb| kb * 1024)
    });
    let cgroup = [
        "/sys/fs/cgroup/memory.max",
        "/sys/fs/cgroup/memory/memory.limit_in_bytes",
    ]
    .iter()
    .filter_map(|p| std::fs::read_to_string(p).ok())
    .filter_map(|s| s.trim().parse::<u64>().ok())
    .min();
    let limit = match (total, cgroup) {
        (Some(t), Some(c)) => Some(t.min(c)),
        (t, c) => t.or(c),
    }?;
    Some(limit / 10 * 8)
}

/// This process's peak resident set size so far (bytes), from `/proc/self/status` (`VmHWM`).
pub fn peak_rss_bytes() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// A counting semaphore over bytes: scans reserve their estimate before loading and release it
/// when done.
#[derive(Debug)]
pub struct Budget {
    total: u64,
    used: Mutex<u64>,
    freed: Condvar,
}

/// A reservation; released on drop.
#[derive(Debug)]
pub struct Reservation<'a> {
    budget: &'a Budget,
    bytes: u64,
}

impl Budget {
    /// A budget of `total` bytes.
    pub fn new(total: u64) -> Self {
        Self {
            total,
            used: Mutex::new(0),
            freed: Condvar::new(),
        }
    }

    /// Total bytes.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Wait until `bytes` fit beside the other reservations, then reserve them. Returns `None`
    /// at once when `bytes` exceeds the whole budget (it could never fit).
    pub fn reserve(&self, bytes: u64) -> Option<Reservation<'_>> {
        if bytes > self.total {
            return None;
        }
        let mut used = self
            .used
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        while *used + bytes > self.total {
            used = self
                .freed
                .wait(used)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
        *used += bytes;
        Some(Reservation {
            budget: self,
            bytes,
        })
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        let mut used = self
            .budget
            .used
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *used = used.saturating_sub(self.bytes);
        self.budget.freed.notify_all();
    }
}

/// Format bytes as GiB with two decimals.
pub fn gib(bytes: u64) -> String {
    format!("{:.2} GiB", bytes as f64 / GIB as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;

    #[test]
    fn estimate_grows_with_voxels_and_inverts() {
        let small = estimate_peak_bytes(48 * 128 * 128, 2);
        let big = estimate_peak_bytes(300 * 512 * 512, 2);
        assert!(small < big);
        let v = voxels_within(big, 2);
        assert!(estimate_peak_bytes(v, 2) <= big);
        assert!(estimate_peak_bytes(v + 1, 2) > big);
        assert_eq!(estimate_peak_bytes(u64::MAX, 8), u64::MAX);
    }

    #[test]
    fn too_big_is_refused_and_reservations_never_overlap_beyond_total() {
        let b = Arc::new(Budget::new(100));
        assert!(b.reserve(101).is_none());
        let in_use = Arc::new(AtomicU64::new(0));
        let max_seen = Arc::new(AtomicU64::new(0));
        std::thread::scope(|s| {
            for i in 0..8u64 {
                let (b, in_use, max_seen) = (b.clone(), in_use.clone(), max_seen.clone());
                s.spawn(move || {
                    let bytes = 30 + i * 5;
                    let _r = b.reserve(bytes).expect("fits");
                    let now = in_use.fetch_add(bytes, Ordering::SeqCst) + bytes;
                    max_seen.fetch_max(now, Ordering::SeqCst);
                    std::thread::sleep(std::time::Duration::from_millis(5));
                    in_use.fetch_sub(bytes, Ordering::SeqCst);
                });
            }
        });
        assert!(max_seen.load(Ordering::SeqCst) <= 100);
    }
}
