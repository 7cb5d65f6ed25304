//! Bootstrap over scans, as in the official script's `computeFROC_bootstrap`: each resample
//! draws `n_scans` scans uniformly **with replacement**; a scan drawn `k` times contributes its
//! nodules and candidates `k` times; the scan count stays `n_scans`.
//!
//! Deterministic for a seed whatever the thread count: resample `b` uses its own ChaCha8 stream
//! (`seed`, stream `b`), and results are collected in resample order.

use rand::Rng;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

/// Scan multiplicities of resample `b`.
pub(crate) fn multiplicities(n_scans: usize, seed: u64, b: u64) -> Vec<u32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(b);
    let mut w = vec![0u32; n_scans];
    for _ in 0..n_scans {
        w[rng.random_range(0..n_scans)] += 1;
    }
    w
}

/// Run `f` on every resample's multiplicities, in parallel, results in resample order.
pub(crate) fn run<T: Send>(
    n_scans: usize,
    resamples: usize,
    seed: u64,
    f: impl Fn(&[u32]) -> T + Sync,
) -> Vec<T> {
    if n_scans == 0 {
        return Vec::new();
    }
    (0..resamples as u64)
        .into_par_iter()
        .map(|b| f(&multiplicities(n_scans, seed, b)))
        .collect()
}

/// The official script's interval: sort the values, lower = `v[floor(((1-c)/2)·n)]`,
/// upper = `v[floor((1-(1-c)/2)·n)]` (clamped to the last index). `None` for no values.
pub(crate) fn percentile_interval(values: &mut [f64], confidence: f64) -> Option<[f64; 2]> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let n = values.len();
    let pz = (1.0 - confidence) / 2.0;
    let lo = ((pz * n as f64).floor() as usize).min(n - 1);
    let hi = (((1.0 - pz) * n as f64).floor() as usize).min(n - 1);
    Some([values[lo], values[hi]])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multiplicities_sum_to_n_and_are_deterministic() {
        let a = multiplicities(17, 42, 3);
        assert_eq!(a.iter().sum::<u32>(), 17);
        assert_eq!(a, multiplicities(17, 42, 3));
        assert_ne!(a, multiplicities(17, 42, 4));
        assert_ne!(a, multiplicities(17, 43, 3));
    }

    #[test]
    fn interval_uses_the_official_indices() {
        let mut v: Vec<f64> = (0..1000).rev().map(f64::from).collect();
        assert_eq!(percentile_interval(&mut v, 0.95), Some([25.0, 975.0]));
        let mut one = vec![0.5];
        assert_eq!(percentile_interval(&mut one, 0.95), Some([0.5, 0.5]));
        assert_eq!(percentile_interval(&mut [], 0.95), None);
    }
}
