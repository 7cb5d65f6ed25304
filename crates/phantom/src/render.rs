//! Rendering: the analytic background voxel by voxel, then every object inside its bounding box,
//! then correlated noise, slab by slab in parallel.
//!
//! Determinism: slabs have a fixed size (independent of the thread count), each voxel is written by
//! exactly one slab, objects are painted in a fixed order, and the noise of slice `z` comes from
//! its own random stream; so the output is bit-identical whatever the number of threads.

use ndarray::{Array3, ArrayViewMut3, Axis};
use rayon::prelude::*;

use crate::anatomy::Anatomy;
use crate::rng::{derive_seed, fast_normal, ValueNoise};
use crate::shapes::{Aabb, Blobs, Capsule, Ellipsoid, Psf, ZCylinder, V3};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// Slices per parallel work item.
const SLAB: usize = 8;

/// The geometry of an object.
#[derive(Debug, Clone)]
pub(crate) enum Geom {
    Capsule(Capsule),
    ZCyl(ZCylinder),
    Ellipsoid(Ellipsoid),
    Blobs(Blobs),
}

/// How an object changes the voxels it covers.
#[derive(Debug, Clone)]
pub(crate) enum Paint {
    /// Accumulates vessel occupancy (maximum), composited once with the blood HU.
    Vessel,
    /// Replaces the value in proportion to occupancy.
    Over(f64),
    /// Nodule: blends towards `hu + texture` but never darkens (keeps vessels it touches).
    Nodule {
        hu: f64,
        texture_hu: f64,
        texture: ValueNoise,
    },
}

/// An object ready to render.
#[derive(Debug, Clone)]
pub(crate) struct Prim {
    pub(crate) geom: Geom,
    pub(crate) paint: Paint,
    gain: (f64, f64),
    aabb: Aabb,
}

impl Prim {
    pub(crate) fn new(geom: Geom, paint: Paint, psf: &Psf) -> Self {
        let (gain, aabb) = match &geom {
            Geom::Capsule(c) => ((psf.tube_gain(c.ra), psf.tube_gain(c.rb)), c.aabb()),
            Geom::ZCyl(c) => ((1.0, 1.0), c.aabb()),
            Geom::Ellipsoid(e) => {
                let g = psf.ball_gain(e.s[0].min(e.s[1]).min(e.s[2]));
                ((g, g), e.aabb())
            }
            Geom::Blobs(b) => {
                let r = b.spheres.iter().map(|s| s.1).fold(0.0, f64::max);
                let g = psf.ball_gain(r);
                ((g, g), b.aabb())
            }
        };
        Self {
            geom,
            paint,
            gain,
            aabb: aabb.grow(psf.reach_mm()),
        }
    }

    #[inline]
    fn occupancy(&self, psf: &Psf, p: V3) -> f64 {
        match &self.geom {
            Geom::Capsule(c) => {
                let (d, t) = c.axis_distance(p);
                let sd = d - c.radius_at(t);
                if sd > psf.reach_mm() {
                    return 0.0;
                }
                psf.edge(sd) * (self.gain.0 + (self.gain.1 - self.gain.0) * t)
            }
            Geom::ZCyl(c) => psf.edge(c.sd(p)),
            Geom::Ellipsoid(e) => psf.edge(e.sd(p)) * self.gain.0,
            Geom::Blobs(b) => psf.edge(b.sd(p)) * self.gain.0,
        }
    }
}

/// Grid placement: local coordinates of voxel `[0, 0, 0]` and spacing, both `[x, y, z]` mm.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Grid {
    pub(crate) shape_zyx: [usize; 3],
    pub(crate) first_local: V3,
    pub(crate) spacing: V3,
}

impl Grid {
    #[inline]
    fn local(&self, iz: usize, iy: usize, ix: usize) -> V3 {
        [
            self.first_local[0] + ix as f64 * self.spacing[0],
            self.first_local[1] + iy as f64 * self.spacing[1],
            self.first_local[2] + iz as f64 * self.spacing[2],
        ]
    }

    /// Inclusive index range along axis `a` (0 = x, 1 = y, 2 = z) covering `[lo, hi]` mm.
    fn range(&self, a: usize, lo: f64, hi: f64) -> Option<(usize, usize)> {
        let n = match a {
            0 => self.shape_zyx[2],
            1 => self.shape_zyx[1],
            _ => self.shape_zyx[0],
        };
        let i0 = ((lo - self.first_local[a]) / self.spacing[a]).ceil();
        let i1 = ((hi - self.first_local[a]) / self.spacing[a]).floor();
        if i1 < 0.0 || i0 > (n as f64 - 1.0) || i1 < i0 {
            return None;
        }
        Some((i0.max(0.0) as usize, (i1 as usize).min(n - 1)))
    }
}

/// Noise settings.
#[derive(Debug, Clone, Copy)]
pub(crate) struct NoiseModel {
    pub(crate) seed: u64,
    pub(crate) sd_hu: f64,
    /// In-plane correlation: Gaussian σ in pixels.
    pub(crate) sigma_px: f64,
    /// Weight of each neighbouring slice.
    pub(crate) z_mix: f64,
    /// Noise gain outside the body (air), relative to inside.
    pub(crate) air_factor: f64,
}

/// Outside a circular reconstruction field, scanners store a padding value.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Padding {
    pub(crate) radius_mm: f64,
    pub(crate) centre: (f64, f64),
    pub(crate) value: i16,
}

/// Render everything into `[z, y, x]` HU, and the lung mask when `mask` is given.
pub(crate) fn render(
    anatomy: &Anatomy,
    prims: &[Prim],
    grid: &Grid,
    noise: &NoiseModel,
    padding: Option<Padding>,
    mask: Option<&mut Array3<u8>>,
) -> Array3<i16> {
    let [nz, ny, nx] = grid.shape_zyx;
    // Thick slices are rendered as the mean of `nsub` planes spread over the slice (an odd
    // number, so the middle plane is the slice centre): the slice-sensitivity profile.
    let nsub = ((grid.spacing[2] / 1.25).ceil().max(1.0) as usize) | 1;
    let fine_dz = grid.spacing[2] / nsub as f64;
    let fine = Grid {
        shape_zyx: [nz * nsub, ny, nx],
        first_local: [
            grid.first_local[0],
            grid.first_local[1],
            grid.first_local[2] - (nsub / 2) as f64 * fine_dz,
        ],
        spacing: [grid.spacing[0], grid.spacing[1], fine_dz],
    };
    // Bin prims by slab.
    let n_slabs = nz.div_ceil(SLAB);
    let mut bins: Vec<Vec<u32>> = vec![Vec::new(); n_slabs];
    for (i, p) in prims.iter().enumerate() {
        if let Some((z0, z1)) = fine.range(2, p.aabb.min[2], p.aabb.max[2]) {
            for bin in &mut bins[z0 / (SLAB * nsub)..=z1 / (SLAB * nsub)] {
                bin.push(i as u32);
            }
        }
    }
    let mut out = Array3::<i16>::zeros((nz, ny, nx));
    let kernel = gaussian_kernel(noise.sigma_px);
    let work = |(s, (mut o, m)): (
        usize,
        (ArrayViewMut3<'_, i16>, Option<ArrayViewMut3<'_, u8>>),
    )| {
        render_slab(
            anatomy,
            prims,
            &bins[s],
            &fine,
            nsub,
            noise,
            &kernel,
            padding,
            s * SLAB,
            &mut o,
            m,
        );
    };
    match mask {
        Some(m) => out
            .axis_chunks_iter_mut(Axis(0), SLAB)
            .into_par_iter()
            .zip(m.axis_chunks_iter_mut(Axis(0), SLAB).into_par_iter())
            .enumerate()
            .for_each(|(s, (o, m))| work((s, (o, Some(m))))),
        None => out
            .axis_chunks_iter_mut(Axis(0), SLAB)
            .into_par_iter()
            .enumerate()
            .for_each(|(s, o)| work((s, (o, None)))),
    }
    out
}

#[allow(clippy::too_many_arguments)]
fn render_slab(
    anatomy: &Anatomy,
    prims: &[Prim],
    bin: &[u32],
    grid: &Grid,
    nsub: usize,
    noise: &NoiseModel,
    kernel: &[f64],
    padding: Option<Padding>,
    z_start: usize,
    out: &mut ArrayViewMut3<'_, i16>,
    mut mask: Option<ArrayViewMut3<'_, u8>>,
) {
    let (sz_out, ny, nx) = out.dim();
    let plane = ny * nx;
    // `grid` is the fine grid (nsub planes per output slice); `sz` counts fine planes.
    let sz = sz_out * nsub;
    let fine_start = z_start * nsub;
    let mut buf = vec![0.0f64; sz * plane];
    let psf = anatomy.psf;
    let reach = psf.reach_mm();
    // 1. Background.
    let (t_lo, t_hi, t_hw) = anatomy.table_rows();
    for dz in 0..sz {
        let iz = fine_start + dz;
        let z = grid.first_local[2] + iz as f64 * grid.spacing[2];
        let ctx = anatomy.slice(z);
        let centre_plane = dz % nsub == nsub / 2;
        for iy in 0..ny {
            let y = grid.first_local[1] + iy as f64 * grid.spacing[1];
            let row = &mut buf[dz * plane + iy * nx..dz * plane + (iy + 1) * nx];
            row.fill(anatomy.hu.air);
            if y >= t_lo && y <= t_hi {
                if let Some((i0, i1)) = grid.range(0, -t_hw, t_hw) {
                    for (ix, v) in row.iter_mut().enumerate().take(i1 + 1).skip(i0) {
                        let x = grid.first_local[0] + ix as f64 * grid.spacing[0];
                        *v += (anatomy.hu.table - *v) * anatomy.table_occupancy(x, y);
                    }
                }
            }
            let Some((x_lo, x_hi)) = anatomy.body_half_width(y, reach) else {
                continue;
            };
            let Some((i0, i1)) = grid.range(0, x_lo, x_hi) else {
                continue;
            };
            for ix in i0..=i1 {
                let x = grid.first_local[0] + ix as f64 * grid.spacing[0];
                let (v, label) = anatomy.background(&ctx, x, y);
                row[ix] = v;
                if centre_plane {
                    if let Some(m) = mask.as_mut() {
                        m[[dz / nsub, iy, ix]] = label;
                    }
                }
            }
        }
    }
    // 2. Objects.
    let z_end = fine_start + sz - 1;
    let mut occ: Vec<f32> = Vec::new();
    let mut composited = false;
    for &pi in bin {
        let p = &prims[pi as usize];
        let is_vessel = matches!(p.paint, Paint::Vessel);
        if !is_vessel && !composited {
            composite_vessels(&mut buf, &occ, anatomy.hu.blood);
            composited = true;
        }
        let Some((z0, z1)) = grid.range(2, p.aabb.min[2], p.aabb.max[2]) else {
            continue;
        };
        let (z0, z1) = (z0.max(fine_start), z1.min(z_end));
        if z0 > z1 {
            continue;
        }
        let (Some((y0, y1)), Some((x0, x1))) = (
            grid.range(1, p.aabb.min[1], p.aabb.max[1]),
            grid.range(0, p.aabb.min[0], p.aabb.max[0]),
        ) else {
            continue;
        };
        if is_vessel && occ.is_empty() {
            occ = vec![0.0f32; sz * plane];
        }
        for iz in z0..=z1 {
            for iy in y0..=y1 {
                let base = (iz - fine_start) * plane + iy * nx;
                for ix in x0..=x1 {
                    let q = grid.local(iz, iy, ix);
                    let o = p.occupancy(&psf, q);
                    if o <= 0.0 {
                        continue;
                    }
                    let v = &mut buf[base + ix];
                    match &p.paint {
                        Paint::Vessel => {
                            let c = &mut occ[base + ix];
                            *c = c.max(o as f32);
                        }
                        Paint::Over(hu) => *v += (hu - *v) * o,
                        Paint::Nodule {
                            hu,
                            texture_hu,
                            texture,
                        } => {
                            let target = hu + texture_hu * f64::from(texture.at(q));
                            let t = *v + (target - *v) * o;
                            if t > *v {
                                *v = t;
                            }
                        }
                    }
                }
            }
        }
    }
    if !composited {
        composite_vessels(&mut buf, &occ, anatomy.hu.blood);
    }
    // 3. Average the sub-planes, add noise (correlated in-plane and across slices; weaker
    //    outside the body, where fewer photons are absorbed), store.
    let scale = noise.sd_hu / noise_sd_unit(kernel, noise.z_mix);
    let slices: Vec<Vec<f32>> = (0..sz_out + 2)
        .map(|k| noise_slice(noise, kernel, z_start + k, ny, nx))
        .collect();
    let inv = 1.0 / nsub as f64;
    for dz in 0..sz_out {
        let (a, b, c) = (&slices[dz], &slices[dz + 1], &slices[dz + 2]);
        for iy in 0..ny {
            let y = grid.first_local[1] + iy as f64 * grid.spacing[1];
            let body = anatomy
                .body_half_width(y, 0.0)
                .unwrap_or((f64::MAX, f64::MIN));
            for ix in 0..nx {
                let i = iy * nx + ix;
                let mut v = 0.0;
                for sub in 0..nsub {
                    v += buf[(dz * nsub + sub) * plane + i];
                }
                v *= inv;
                let x = grid.first_local[0] + ix as f64 * grid.spacing[0];
                let gain = if x >= body.0 && x <= body.1 {
                    1.0
                } else {
                    noise.air_factor
                };
                let n = f64::from(b[i]) + noise.z_mix * (f64::from(a[i]) + f64::from(c[i]));
                let mut q = (v + gain * scale * n).round().clamp(-1024.0, 3071.0) as i16;
                if let Some(pad) = padding {
                    let (dx, dy) = (x - pad.centre.0, y - pad.centre.1);
                    if dx * dx + dy * dy > pad.radius_mm * pad.radius_mm {
                        q = pad.value;
                    }
                }
                out[[dz, iy, ix]] = q;
            }
        }
    }
}

fn composite_vessels(buf: &mut [f64], occ: &[f32], blood: f64) {
    for (v, &o) in buf.iter_mut().zip(occ) {
        if o > 0.0 {
            *v += (blood - *v) * f64::from(o);
        }
    }
}

fn gaussian_kernel(sigma_px: f64) -> Vec<f64> {
    let r = (2.5 * sigma_px).ceil().max(1.0) as i64;
    let mut k: Vec<f64> = (-r..=r)
        .map(|i| (-0.5 * (i as f64 / sigma_px).powi(2)).exp())
        .collect();
    let s: f64 = k.iter().sum();
    for v in &mut k {
        *v /= s;
    }
    k
}

/// The standard deviation of unit white noise after the in-plane kernel and the slice mix.
fn noise_sd_unit(kernel: &[f64], z_mix: f64) -> f64 {
    let s2: f64 = kernel.iter().map(|w| w * w).sum();
    (s2 * s2 * (1.0 + 2.0 * z_mix * z_mix)).sqrt()
}

/// White noise of slice `k - 1` (so that slice −1 exists), blurred in-plane.
fn noise_slice(noise: &NoiseModel, kernel: &[f64], k: usize, ny: usize, nx: usize) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(derive_seed(noise.seed, "noise", k as u64));
    let white: Vec<f32> = (0..ny * nx).map(|_| fast_normal(&mut rng)).collect();
    let r = (kernel.len() / 2) as isize;
    let mut tmp = vec![0.0f32; ny * nx];
    for iy in 0..ny {
        let row = &white[iy * nx..(iy + 1) * nx];
        for ix in 0..nx {
            let mut s = 0.0f64;
            for (j, w) in kernel.iter().enumerate() {
                let x = (ix as isize + j as isize - r).clamp(0, nx as isize - 1) as usize;
                s += w * f64::from(row[x]);
            }
            tmp[iy * nx + ix] = s as f32;
        }
    }
    let mut out = vec![0.0f32; ny * nx];
    for iy in 0..ny {
        for (j, w) in kernel.iter().enumerate() {
            let y = (iy as isize + j as isize - r).clamp(0, ny as isize - 1) as usize;
            let src = &tmp[y * nx..(y + 1) * nx];
            let dst = &mut out[iy * nx..(iy + 1) * nx];
            for (d, s) in dst.iter_mut().zip(src) {
                *d += (*w as f32) * s;
            }
        }
    }
    out
}
