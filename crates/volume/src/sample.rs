//! Trilinear sampling of a voxel grid at a continuous index: the one interpolation kernel shared by
//! the detector's patch reader, the scan thumbnails and the in-plane shift of gantry-tilted DICOM
//! slices.
//!
//! Positions are continuous `[z, y, x]` indices (voxel centres at integers, as in
//! [`ContinuousIndex`](crate::ContinuousIndex)). The value is the sum, over the eight neighbours in
//! `z`, `y`, `x` order, of the product of the three axis weights times the neighbour's value, in the
//! precision of the output type (`f32` or `f64`); neighbours of weight zero are skipped. What is
//! read outside the grid is a [`Border`].
//!
//! ```
//! use ndarray::Array3;
//! use speck_volume::sample::{trilinear, Border};
//! let a = Array3::from_shape_fn((2, 2, 2), |(z, _, _)| if z == 0 { 0i16 } else { 100 });
//! let v: f64 = trilinear(a.view(), [0.25, 0.5, 0.5], Border::Constant(-1000.0));
//! assert!((v - 25.0).abs() < 1e-12);
//! // A quarter voxel outside, `Constant` blends with the border value, `Clamp` repeats the edge;
//! // from half a voxel out, `Clamp` reads the border value.
//! let fade: f32 = trilinear(a.view(), [-0.25, 0.0, 0.0], Border::Constant(-1000.0));
//! assert_eq!(fade, -250.0);
//! let edge: f32 = trilinear(a.view(), [-0.25, 0.0, 0.0], Border::Clamp(-1000.0));
//! assert_eq!(edge, 0.0);
//! let out: f32 = trilinear(a.view(), [-0.5, 0.0, 0.0], Border::Clamp(-1000.0));
//! assert_eq!(out, -1000.0);
//! ```

use std::ops::{Add, Mul, Sub};

use ndarray::ArrayView3;

/// What a sample reads outside the voxel grid.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum Border<T> {
    /// Every neighbour outside the grid reads this value, so a sample fades to it over the last
    /// voxel (the detector pads with air this way).
    Constant(T),
    /// Within half a voxel of the grid the position is clamped onto it (the edge voxels repeat);
    /// farther out the sample is this value.
    Clamp(T),
}

/// The floating-point types a sample can be computed in: `f32` and `f64`.
pub trait Real:
    Copy + PartialEq + Add<Output = Self> + Sub<Output = Self> + Mul<Output = Self>
{
    /// Zero.
    const ZERO: Self;
    /// One.
    const ONE: Self;
    /// A weight computed in `f64`, rounded to this type.
    fn from_f64(v: f64) -> Self;
}

impl Real for f32 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
    #[inline]
    fn from_f64(v: f64) -> Self {
        v as f32
    }
}

impl Real for f64 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
    #[inline]
    fn from_f64(v: f64) -> Self {
        v
    }
}

/// Trilinear interpolation of `voxels` at the continuous index `p` (`[z, y, x]`), computed in `T`.
///
/// With [`Border::Constant`] each neighbour outside the grid reads the constant; with
/// [`Border::Clamp`] a position within half a voxel of the grid is clamped onto it and one farther
/// out (or any position in an empty grid) returns the constant. Never panics.
#[inline]
pub fn trilinear<V, T>(voxels: ArrayView3<'_, V>, p: [f64; 3], border: Border<T>) -> T
where
    V: Copy,
    T: Real + From<V>,
{
    let (nz, ny, nx) = voxels.dim();
    let n = [nz, ny, nx];
    // Per axis: the two neighbours and the weight of the second.
    let (axes, outside): ([(i64, i64, T); 3], T) = match border {
        Border::Constant(c) => (
            std::array::from_fn(|a| {
                let f = p[a].floor();
                let i = f as i64;
                (i, i + 1, T::from_f64(p[a] - f))
            }),
            c,
        ),
        Border::Clamp(c) => {
            if n.contains(&0)
                || (0..3).any(|a| p[a].is_nan() || p[a] <= -0.5 || p[a] > n[a] as f64 - 0.5)
            {
                return c;
            }
            (
                std::array::from_fn(|a| {
                    let q = p[a].clamp(0.0, (n[a] - 1) as f64);
                    let f = q.floor();
                    let i = f as i64;
                    (i, (i + 1).min(n[a] as i64 - 1), T::from_f64(q - f))
                }),
                c,
            )
        }
    };
    let at = |z: i64, y: i64, x: i64| -> T {
        if z < 0 || y < 0 || x < 0 || z >= nz as i64 || y >= ny as i64 || x >= nx as i64 {
            outside
        } else {
            T::from(voxels[[z as usize, y as usize, x as usize]])
        }
    };
    let [(z0, z1, tz), (y0, y1, ty), (x0, x1, tx)] = axes;
    let mut acc = T::ZERO;
    for (z, wz) in [(z0, T::ONE - tz), (z1, tz)] {
        if wz == T::ZERO {
            continue;
        }
        for (y, wy) in [(y0, T::ONE - ty), (y1, ty)] {
            if wy == T::ZERO {
                continue;
            }
            for (x, wx) in [(x0, T::ONE - tx), (x1, tx)] {
                if wx == T::ZERO {
                    continue;
                }
                acc = acc + wz * wy * wx * at(z, y, x);
            }
        }
    }
    acc
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array2, Array3};

    /// A small deterministic generator (xorshift64*), so the points are the same on every run.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        /// Uniform in `[lo, hi)`; one draw in eight is snapped to a multiple of 0.5 (voxel centres
        /// and half-voxel borders, where the border policies differ).
        fn coord(&mut self, lo: f64, hi: f64) -> f64 {
            let u = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
            let v = lo + u * (hi - lo);
            if self.next().is_multiple_of(8) {
                (v * 2.0).round() / 2.0
            } else {
                v
            }
        }
    }

    fn volume(shape: (usize, usize, usize), rng: &mut Rng) -> Array3<i16> {
        Array3::from_shape_simple_fn(shape, || (rng.next() % 4096) as i16 - 1024)
    }

    /// The detector's patch reader before this module (crates/detect/src/sample.rs).
    fn detect_old(vox: &Array3<i16>, p: [f64; 3], pad: i16) -> f32 {
        let (nz, ny, nx) = vox.dim();
        let at = |z: i64, y: i64, x: i64| -> f32 {
            if z < 0 || y < 0 || x < 0 || z >= nz as i64 || y >= ny as i64 || x >= nx as i64 {
                f32::from(pad)
            } else {
                f32::from(vox[[z as usize, y as usize, x as usize]])
            }
        };
        let f = p.map(f64::floor);
        let t = [
            (p[0] - f[0]) as f32,
            (p[1] - f[1]) as f32,
            (p[2] - f[2]) as f32,
        ];
        let i = f.map(|v| v as i64);
        let mut acc = 0.0f32;
        for (cz, wz) in [(0, 1.0 - t[0]), (1, t[0])] {
            if wz == 0.0 {
                continue;
            }
            for (cy, wy) in [(0, 1.0 - t[1]), (1, t[1])] {
                if wy == 0.0 {
                    continue;
                }
                for (cx, wx) in [(0, 1.0 - t[2]), (1, t[2])] {
                    if wx == 0.0 {
                        continue;
                    }
                    acc += wz * wy * wx * at(i[0] + cz, i[1] + cy, i[2] + cx);
                }
            }
        }
        acc
    }

    /// The thumbnails' sampler before this module (then in crates/cli/src/scan/thumbs.rs, now
    /// crates/batch/src/thumbs.rs).
    fn thumbs_old(v: &Array3<i16>, p: [f64; 3]) -> f64 {
        let (nz, ny, nx) = v.dim();
        let [z, y, x] = p;
        if !(z > -0.5 && y > -0.5 && x > -0.5)
            || z > nz as f64 - 0.5
            || y > ny as f64 - 0.5
            || x > nx as f64 - 0.5
        {
            return -1024.0;
        }
        let clampf = |t: f64, n: usize| t.clamp(0.0, (n - 1) as f64);
        let (z, y, x) = (clampf(z, nz), clampf(y, ny), clampf(x, nx));
        let (z0, y0, x0) = (z.floor() as usize, y.floor() as usize, x.floor() as usize);
        let (z1, y1, x1) = (
            (z0 + 1).min(nz - 1),
            (y0 + 1).min(ny - 1),
            (x0 + 1).min(nx - 1),
        );
        let (fz, fy, fx) = (z - z0 as f64, y - y0 as f64, x - x0 as f64);
        let g = |a: usize, b: usize, c: usize| f64::from(v[[a, b, c]]);
        let c00 = g(z0, y0, x0) * (1.0 - fx) + g(z0, y0, x1) * fx;
        let c01 = g(z0, y1, x0) * (1.0 - fx) + g(z0, y1, x1) * fx;
        let c10 = g(z1, y0, x0) * (1.0 - fx) + g(z1, y0, x1) * fx;
        let c11 = g(z1, y1, x0) * (1.0 - fx) + g(z1, y1, x1) * fx;
        let c0 = c00 * (1.0 - fy) + c01 * fy;
        let c1 = c10 * (1.0 - fy) + c11 * fy;
        c0 * (1.0 - fz) + c1 * fz
    }

    /// The gantry-tilt in-plane shift before this module (crates/volume/src/dicom/read.rs).
    fn bilinear_old(img: &Array2<f32>, y: f64, x: f64) -> f32 {
        let (ny, nx) = img.dim();
        let (y0, x0) = (y.floor(), x.floor());
        let (fy, fx) = ((y - y0) as f32, (x - x0) as f32);
        let at = |yy: f64, xx: f64| -> f32 {
            if yy < 0.0 || xx < 0.0 || yy >= ny as f64 || xx >= nx as f64 {
                -1024.0
            } else {
                img[[yy as usize, xx as usize]]
            }
        };
        let a = at(y0, x0) * (1.0 - fx) + at(y0, x0 + 1.0) * fx;
        let b = at(y0 + 1.0, x0) * (1.0 - fx) + at(y0 + 1.0, x0 + 1.0) * fx;
        a * (1.0 - fy) + b * fy
    }

    const SHAPES: [(usize, usize, usize); 4] = [(1, 1, 1), (1, 7, 5), (6, 5, 4), (9, 3, 11)];

    #[test]
    fn constant_border_is_the_detectors_old_sampler_bit_for_bit() {
        let mut rng = Rng(0x5eed_0001);
        for shape in SHAPES {
            let vox = volume(shape, &mut rng);
            let n = [shape.0, shape.1, shape.2];
            for _ in 0..20_000 {
                let p: [f64; 3] = std::array::from_fn(|a| rng.coord(-2.5, n[a] as f64 + 1.5));
                let new: f32 = trilinear(vox.view(), p, Border::Constant(f32::from(-1000i16)));
                let old = detect_old(&vox, p, -1000);
                assert_eq!(new.to_bits(), old.to_bits(), "{shape:?} at {p:?}");
            }
        }
    }

    /// The thumbnails see the value only through a lung window rounded to a `u8`. The kernel sums
    /// weighted neighbours where the old code nested lerps, so the `f64` values may differ in the
    /// last bit; the grey levels must not.
    #[test]
    fn clamp_border_gives_the_thumbnails_old_grey_levels() {
        let window = |hu: f64| {
            let t = ((hu - (-600.0 - 750.0)) / 1500.0).clamp(0.0, 1.0);
            (t * 255.0).round() as u8
        };
        let mut rng = Rng(0x5eed_0002);
        for shape in SHAPES {
            let vox = volume(shape, &mut rng);
            let n = [shape.0, shape.1, shape.2];
            for _ in 0..20_000 {
                let p: [f64; 3] = std::array::from_fn(|a| rng.coord(-2.5, n[a] as f64 + 1.5));
                let new: f64 = trilinear(vox.view(), p, Border::Clamp(-1024.0));
                let old = thumbs_old(&vox, p);
                assert!(
                    (new - old).abs() <= 1e-9,
                    "{shape:?} at {p:?}: {new} vs {old}"
                );
                assert_eq!(window(new), window(old), "{shape:?} at {p:?}");
            }
        }
    }

    /// The tilt correction stores the value rounded to `i16`; the kernel's sum of weighted
    /// neighbours may differ from the old nested lerps in the last `f32` bit, the stored HU must not.
    #[test]
    fn constant_border_on_one_slice_gives_the_old_bilinear_hu() {
        let mut rng = Rng(0x5eed_0003);
        for (ny, nx) in [(1, 1), (7, 5), (16, 16)] {
            let img = Array2::from_shape_simple_fn((ny, nx), || {
                ((rng.next() % 4096) as f64 - 1024.0) as f32 * 0.5 - 3.0
            });
            let vol = img.view().insert_axis(ndarray::Axis(0));
            for _ in 0..20_000 {
                let y = rng.coord(-2.5, ny as f64 + 1.5);
                let x = rng.coord(-2.5, nx as f64 + 1.5);
                let new: f32 = trilinear(vol, [0.0, y, x], Border::Constant(-1024.0));
                let old = bilinear_old(&img, y, x);
                assert!((new - old).abs() <= 1e-3, "at {y}, {x}: {new} vs {old}");
                let hu = |v: f32| f64::from(v).round() as i16;
                assert_eq!(hu(new), hu(old), "at {y}, {x}: {new} vs {old}");
            }
        }
    }

    #[test]
    fn empty_grid_and_far_points_read_the_border() {
        let empty = Array3::<i16>::zeros((0, 3, 3));
        let v: f32 = trilinear(empty.view(), [0.0, 1.0, 1.0], Border::Clamp(-7.0));
        assert_eq!(v, -7.0);
        let v: f32 = trilinear(empty.view(), [0.0, 1.0, 1.0], Border::Constant(-7.0));
        assert_eq!(v, -7.0);
        let one = Array3::<i16>::from_elem((1, 1, 1), 5);
        let v: f64 = trilinear(one.view(), [1e9, 0.0, 0.0], Border::Constant(-7.0));
        assert_eq!(v, -7.0);
    }
}
