//! Seed derivation, hash noise and small sampling helpers.
//!
//! Every random stream is derived from the user's seed and a fixed tag (plus an index such as a
//! slice number), so that a value never depends on which thread computed it or in which order.

use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// SplitMix64 finaliser: a fast, well-mixing bijection on `u64`.
pub(crate) const fn mix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// A sub-seed for stream `tag`, item `index` of the phantom seeded with `seed`.
pub(crate) fn derive_seed(seed: u64, tag: &str, index: u64) -> u64 {
    let mut h = mix64(seed ^ 0x5EED_0F5B_EC00_0001);
    for b in tag.bytes() {
        h = mix64(h ^ u64::from(b));
    }
    mix64(h ^ mix64(index))
}

/// A ChaCha8 generator for stream `tag`, item `index`.
pub(crate) fn rng_for(seed: u64, tag: &str, index: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(derive_seed(seed, tag, index))
}

/// Uniform in `[lo, hi)`.
pub(crate) fn uniform(rng: &mut impl Rng, lo: f64, hi: f64) -> f64 {
    lo + (hi - lo) * rng.random::<f64>()
}

/// A standard normal deviate (Box–Muller).
pub(crate) fn normal(rng: &mut impl Rng) -> f64 {
    let u1 = rng.random::<f64>().max(1e-300);
    let u2 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// A uniformly distributed unit vector.
pub(crate) fn unit_vector(rng: &mut impl Rng) -> [f64; 3] {
    let z = uniform(rng, -1.0, 1.0);
    let phi = uniform(rng, 0.0, std::f64::consts::TAU);
    let r = (1.0 - z * z).max(0.0).sqrt();
    [r * phi.cos(), r * phi.sin(), z]
}

/// An approximately Gaussian deviate (unit variance) from one 64-bit word: the sum of four
/// 16-bit uniforms (Irwin–Hall, bounded at ±3.46). Used for per-voxel CT noise, which is
/// smoothed afterwards and so becomes closer to Gaussian.
pub(crate) fn fast_normal(rng: &mut impl RngCore) -> f32 {
    let w = rng.next_u64();
    let s = (w & 0xFFFF) + ((w >> 16) & 0xFFFF) + ((w >> 32) & 0xFFFF) + (w >> 48);
    // mean 4 * 32767.5, variance 4 * (65536^2 - 1) / 12
    const MEAN: f32 = 131_070.0;
    const INV_SD: f32 = 1.0 / 37_837.23;
    (s as f32 - MEAN) * INV_SD
}

/// A hash of an integer lattice point to a value in `[-1, 1]`.
pub(crate) fn lattice_value(seed: u64, ix: i64, iy: i64, iz: i64) -> f32 {
    let h = mix64(
        seed ^ mix64((ix as u64).wrapping_mul(0x9E37_79B9))
            ^ mix64((iy as u64).wrapping_mul(0x85EB_CA6B).wrapping_add(17))
            ^ mix64((iz as u64).wrapping_mul(0xC2B2_AE35).wrapping_add(91)),
    );
    ((h >> 40) as f32) * (2.0 / 16_777_216.0) - 1.0
}

/// Smooth value noise on a cubic lattice of `cell_mm`, range about `[-1, 1]`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ValueNoise {
    seed: u64,
    inv_cell: f64,
}

impl ValueNoise {
    pub(crate) fn new(seed: u64, cell_mm: f64) -> Self {
        Self {
            seed,
            inv_cell: 1.0 / cell_mm,
        }
    }

    /// The noise at a point in mm (any frame, as long as it is used consistently).
    pub(crate) fn at(&self, p: [f64; 3]) -> f32 {
        let q = [
            p[0] * self.inv_cell,
            p[1] * self.inv_cell,
            p[2] * self.inv_cell,
        ];
        let i = [q[0].floor(), q[1].floor(), q[2].floor()];
        let f = [
            smooth((q[0] - i[0]) as f32),
            smooth((q[1] - i[1]) as f32),
            smooth((q[2] - i[2]) as f32),
        ];
        let (x0, y0, z0) = (i[0] as i64, i[1] as i64, i[2] as i64);
        let v = |dx: i64, dy: i64, dz: i64| lattice_value(self.seed, x0 + dx, y0 + dy, z0 + dz);
        let lerp = |a: f32, b: f32, t: f32| a + (b - a) * t;
        let x00 = lerp(v(0, 0, 0), v(1, 0, 0), f[0]);
        let x10 = lerp(v(0, 1, 0), v(1, 1, 0), f[0]);
        let x01 = lerp(v(0, 0, 1), v(1, 0, 1), f[0]);
        let x11 = lerp(v(0, 1, 1), v(1, 1, 1), f[0]);
        lerp(lerp(x00, x10, f[1]), lerp(x01, x11, f[1]), f[2])
    }
}

fn smooth(t: f32) -> f32 {
    t * t * (3.0 - 2.0 * t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_seeds_differ_by_tag_and_index() {
        let a = derive_seed(7, "noise", 0);
        assert_ne!(a, derive_seed(7, "noise", 1));
        assert_ne!(a, derive_seed(7, "vessels", 0));
        assert_ne!(a, derive_seed(8, "noise", 0));
        assert_eq!(a, derive_seed(7, "noise", 0));
    }

    #[test]
    fn fast_normal_has_unit_variance() {
        let mut rng = rng_for(1, "t", 0);
        let n = 200_000;
        let (mut s, mut s2) = (0.0f64, 0.0f64);
        for _ in 0..n {
            let v = f64::from(fast_normal(&mut rng));
            s += v;
            s2 += v * v;
        }
        let mean = s / n as f64;
        let var = s2 / n as f64 - mean * mean;
        assert!(mean.abs() < 0.01, "mean {mean}");
        assert!((var - 1.0).abs() < 0.02, "var {var}");
    }

    #[test]
    fn value_noise_is_continuous_and_bounded() {
        let n = ValueNoise::new(3, 2.0);
        let mut prev = n.at([0.0, 0.3, -1.7]);
        for i in 1..400 {
            let v = n.at([f64::from(i) * 0.01, 0.3, -1.7]);
            assert!((-1.0..=1.0).contains(&v));
            assert!((v - prev).abs() < 0.05, "jump at {i}");
            prev = v;
        }
    }
}
