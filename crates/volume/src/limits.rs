//! Bounds on what a header may make us allocate.

use serde::{Deserialize, Serialize};

/// Bounds checked *before* any header-dependent allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Largest number of voxels in one volume.
    pub max_voxels: u64,
    /// Largest number of bytes decoded for one volume (all slices, all intermediate buffers).
    pub max_bytes: u64,
    /// Largest size along any one axis.
    pub max_dim: u64,
}

impl Default for Limits {
    /// 2^30 voxels (a 1024x1024x1024 scan), 8 GiB of decoded data, 16384 per axis.
    fn default() -> Self {
        Self {
            max_voxels: 1 << 30,
            max_bytes: 8 << 30,
            max_dim: 16384,
        }
    }
}
