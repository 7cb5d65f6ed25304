//! The memory budget: with each scan's peak estimated before loading it
//! ([`speck_detect::memory`]), refuse what can never fit, and let scans run in parallel only while
//! their estimates fit together.

use std::sync::{Condvar, Mutex};

/// Bytes in one GiB.
pub const GIB: u64 = 1 << 30;

// The memory model of a scan is the detector's; the budget below only adds it up.
pub use speck_detect::memory::{estimate_peak_bytes, voxels_within, BASE_BYTES};

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
