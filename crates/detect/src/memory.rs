//! The detector's memory model: how much memory one scan needs at its peak, estimated from its
//! size before it is loaded (from a header), so that a batch can refuse what can never fit and run
//! scans in parallel only while their estimates fit together.
//!
//! ```
//! use speck_detect::memory::{estimate_peak_bytes, voxels_within};
//! // A 300 x 512 x 512 scan stored as 16-bit integers.
//! let peak = estimate_peak_bytes(300 * 512 * 512, 2);
//! assert_eq!(peak, (448 << 20) + 300 * 512 * 512 * 6);
//! assert_eq!(voxels_within(peak, 2), 300 * 512 * 512);
//! ```

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

/// Estimated peak memory (bytes) of loading and scanning an image of `voxels` voxels stored with
/// `stored_bytes_per_voxel` bytes each (as its file holds them, before conversion to `i16`).
/// Saturates at `u64::MAX`.
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
