//! A fast classical lung mask: the region of interest of the detector and the guard against
//! findings outside the lungs ("heart = tumour").
//!
//! Works on a reduced grid (blocks of about [`LungMaskOptions::grid_mm`]):
//! 1. block-mean HU below [`LungMaskOptions::threshold_hu`] is air-like;
//! 2. air connected to the in-plane (`x`/`y`) border of the scan is outside air and removed (the
//!    `z` faces are not used: the lungs are routinely cut by the first and last slices), after
//!    leaving out planes with no body in view (an all-air slab at an end would join the two);
//! 3. the largest [`LungMaskOptions::max_components`] remaining air components are kept (a second
//!    one only when it holds at least [`LungMaskOptions::min_component_fraction`] of the first),
//!    ignoring those below [`LungMaskOptions::min_volume_ml`];
//! 4. morphological closing (radius [`LungMaskOptions::closing_mm`]) and hole filling bring back
//!    vessels and nodules, which are not air;
//! 5. dilation by [`LungMaskOptions::margin_mm`] gives the region of interest.
//!
//! Structuring elements are boxes (separable max/min filters), so radii are per axis in voxels of
//! the reduced grid.

use std::collections::VecDeque;

use speck_volume::{ContinuousIndex, Volume};

/// Options of [`LungMask::compute`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LungMaskOptions {
    /// Air threshold on the block-mean HU.
    pub threshold_hu: f32,
    /// Target block size in mm (the mask's resolution).
    pub grid_mm: f64,
    /// Closing radius in mm.
    pub closing_mm: f64,
    /// Dilation margin in mm around the closed lungs.
    pub margin_mm: f64,
    /// Keep at most this many air components (2 = two lungs).
    pub max_components: usize,
    /// A further component must be at least this fraction of the largest.
    pub min_component_fraction: f64,
    /// Ignore components smaller than this (ml).
    pub min_volume_ml: f64,
}

impl Default for LungMaskOptions {
    fn default() -> Self {
        Self {
            threshold_hu: -400.0,
            grid_mm: 2.0,
            closing_mm: 6.0,
            margin_mm: 5.0,
            max_components: 2,
            min_component_fraction: 0.1,
            min_volume_ml: 5.0,
        }
    }
}

/// Share of air blocks above which a plane of the reduced grid holds no body. A chest slice,
/// even at the neck in a wide field of view, keeps more than 2 % of its blocks in the body.
const EMPTY_PLANE_AIR: f64 = 0.98;

/// A lung region of interest on a reduced grid.
#[derive(Debug, Clone)]
pub struct LungMask {
    factor: [usize; 3],
    dims: [usize; 3],
    volume_shape: [usize; 3],
    roi: Vec<bool>,
    /// 3D prefix sums of `roi` with a zero border: `(dims + 1)` per axis.
    prefix: Vec<u32>,
    roi_voxels: usize,
    components: usize,
    slices_without_body: usize,
}

impl LungMask {
    /// Compute the mask of `volume`.
    pub fn compute(volume: &Volume, options: &LungMaskOptions) -> Self {
        let shape = volume.shape_zyx();
        let sp = volume.geometry().spacing.zyx();
        let factor: [usize; 3] =
            std::array::from_fn(|a| ((options.grid_mm / sp[a]).round() as usize).clamp(1, 16));
        let dims: [usize; 3] = std::array::from_fn(|a| shape[a].div_ceil(factor[a]));
        let n = dims[0] * dims[1] * dims[2];
        let cell_mm: [f64; 3] = std::array::from_fn(|a| sp[a] * factor[a] as f64);
        let idx = |z: usize, y: usize, x: usize| (z * dims[1] + y) * dims[2] + x;

        // 1. block means
        let vox = volume.voxels();
        let mut air = vec![false; n];
        {
            use rayon::prelude::*;
            let plane = dims[1] * dims[2];
            air.par_chunks_mut(plane).enumerate().for_each(|(bz, out)| {
                let mut sum = vec![0i64; plane];
                let mut cnt = vec![0u32; plane];
                let z0 = bz * factor[0];
                for z in z0..(z0 + factor[0]).min(shape[0]) {
                    for y in 0..shape[1] {
                        let base = (y / factor[1]) * dims[2];
                        let row = vox.slice(ndarray::s![z, y, ..]);
                        let mut add = |bx: usize, s: i64, c: u32| {
                            sum[base + bx] += s;
                            cnt[base + bx] += c;
                        };
                        match row.as_slice() {
                            Some(r) => {
                                for (bx, chunk) in r.chunks(factor[2]).enumerate() {
                                    let s: i64 = chunk.iter().map(|v| i64::from(*v)).sum();
                                    add(bx, s, chunk.len() as u32);
                                }
                            }
                            None => {
                                for (x, v) in row.iter().enumerate() {
                                    add(x / factor[2], i64::from(*v), 1);
                                }
                            }
                        }
                    }
                }
                for (o, (s, c)) in out.iter_mut().zip(sum.iter().zip(&cnt)) {
                    *o = *c > 0 && (*s as f64 / f64::from(*c)) < f64::from(options.threshold_hu);
                }
            });
        }

        // 1b. planes with no body in view (past the patient, or a slab a resampling tool filled
        //     with air) are left out: one of them would join the lungs to the outside air.
        let plane = dims[1] * dims[2];
        let mut slices_without_body = 0;
        for (bz, row) in air.chunks_mut(plane).enumerate() {
            let n_air = row.iter().filter(|a| **a).count();
            if n_air as f64 >= EMPTY_PLANE_AIR * plane as f64 {
                row.fill(false);
                let z0 = bz * factor[0];
                slices_without_body += (z0 + factor[0]).min(shape[0]) - z0;
            }
        }

        // 2. outside air: flood from the y/x border faces
        let mut outside = vec![false; n];
        let mut queue = VecDeque::new();
        for z in 0..dims[0] {
            for y in 0..dims[1] {
                for x in 0..dims[2] {
                    let border = y == 0 || x == 0 || y + 1 == dims[1] || x + 1 == dims[2];
                    if border && air[idx(z, y, x)] && !outside[idx(z, y, x)] {
                        outside[idx(z, y, x)] = true;
                        queue.push_back(idx(z, y, x));
                    }
                }
            }
        }
        flood(&mut queue, dims, |i| {
            let ok = air[i] && !outside[i];
            if ok {
                outside[i] = true;
            }
            ok
        });

        // 3. components of the inner air
        let mut label = vec![0u32; n];
        let mut sizes: Vec<usize> = vec![0];
        for start in 0..n {
            if !air[start] || outside[start] || label[start] != 0 {
                continue;
            }
            let l = sizes.len() as u32;
            label[start] = l;
            let mut count = 1usize;
            queue.clear();
            queue.push_back(start);
            flood(&mut queue, dims, |i| {
                let ok = air[i] && !outside[i] && label[i] == 0;
                if ok {
                    label[i] = l;
                    count += 1;
                }
                ok
            });
            sizes.push(count);
        }
        let cell_ml = cell_mm.iter().product::<f64>() / 1000.0;
        let mut order: Vec<usize> = (1..sizes.len())
            .filter(|&l| sizes[l] as f64 * cell_ml >= options.min_volume_ml)
            .collect();
        order.sort_by(|a, b| sizes[*b].cmp(&sizes[*a]).then(a.cmp(b)));
        let largest = order.first().map_or(0, |&l| sizes[l]);
        let keep: Vec<usize> = order
            .into_iter()
            .take(options.max_components.max(1))
            .filter(|&l| sizes[l] as f64 >= options.min_component_fraction * largest as f64)
            .collect();
        let mut mask: Vec<bool> = label
            .iter()
            .map(|&l| l != 0 && keep.contains(&(l as usize)))
            .collect();

        // 4. closing + hole filling
        let r_close: [usize; 3] =
            std::array::from_fn(|a| (options.closing_mm / cell_mm[a]).round() as usize);
        box_filter(&mut mask, dims, r_close, true);
        box_filter(&mut mask, dims, r_close, false);
        let mut reach = vec![false; n];
        queue.clear();
        for z in 0..dims[0] {
            for y in 0..dims[1] {
                for x in 0..dims[2] {
                    let border = y == 0 || x == 0 || y + 1 == dims[1] || x + 1 == dims[2];
                    let i = idx(z, y, x);
                    if border && !mask[i] {
                        reach[i] = true;
                        queue.push_back(idx(z, y, x));
                    }
                }
            }
        }
        flood(&mut queue, dims, |i| {
            let ok = !mask[i] && !reach[i];
            if ok {
                reach[i] = true;
            }
            ok
        });
        for (m, r) in mask.iter_mut().zip(&reach) {
            *m = !*r;
        }
        if keep.is_empty() {
            mask.fill(false);
        }

        // 5. margin
        let r_margin: [usize; 3] =
            std::array::from_fn(|a| (options.margin_mm / cell_mm[a]).round() as usize);
        box_filter(&mut mask, dims, r_margin, true);

        let prefix = prefix_sums(&mask, dims);
        let roi_voxels = mask.iter().filter(|m| **m).count();
        Self {
            factor,
            dims,
            volume_shape: shape,
            roi: mask,
            prefix,
            roi_voxels,
            components: keep.len(),
            slices_without_body,
        }
    }

    /// A mask that covers the whole volume (the lung mask switched off).
    pub fn everything(volume: &Volume) -> Self {
        let shape = volume.shape_zyx();
        let factor = [shape[0], shape[1], shape[2]];
        let dims = [1, 1, 1];
        let roi = vec![true];
        let prefix = prefix_sums(&roi, dims);
        Self {
            factor,
            dims,
            volume_shape: shape,
            roi,
            prefix,
            roi_voxels: 1,
            components: 0,
            slices_without_body: 0,
        }
    }

    /// Slices of the volume left out of the search because no body is in view in them (all
    /// air, as past the patient or in a slab a resampling tool filled); 0 for
    /// [`LungMask::everything`].
    pub fn slices_without_body(&self) -> usize {
        self.slices_without_body
    }

    /// Number of lung components kept (0 when none was found, or for [`LungMask::everything`]).
    pub fn components(&self) -> usize {
        self.components
    }

    /// Whether the region of interest is empty.
    pub fn is_empty(&self) -> bool {
        self.roi_voxels == 0
    }

    /// Fraction of the volume inside the region of interest.
    pub fn fraction(&self) -> f64 {
        self.roi_voxels as f64 / self.roi.len() as f64
    }

    /// Whether the voxel nearest to a continuous volume index (`[z, y, x]`) is inside.
    pub fn contains_index(&self, c: ContinuousIndex) -> bool {
        match c.round_within(self.volume_shape) {
            Some(v) => {
                let b = [
                    v.z / self.factor[0],
                    v.y / self.factor[1],
                    v.x / self.factor[2],
                ];
                self.roi[(b[0] * self.dims[1] + b[1]) * self.dims[2] + b[2]]
            }
            None => false,
        }
    }

    /// Bounding box of the region of interest in volume voxels, `lo..hi` (exclusive); `None`
    /// when empty.
    pub fn bbox(&self) -> Option<([usize; 3], [usize; 3])> {
        if self.is_empty() {
            return None;
        }
        let mut lo = self.dims;
        let mut hi = [0usize; 3];
        for (i, m) in self.roi.iter().enumerate() {
            if *m {
                let v = unflatten(i, self.dims);
                for a in 0..3 {
                    lo[a] = lo[a].min(v[a]);
                    hi[a] = hi[a].max(v[a] + 1);
                }
            }
        }
        Some((
            std::array::from_fn(|a| (lo[a] * self.factor[a]).min(self.volume_shape[a])),
            std::array::from_fn(|a| (hi[a] * self.factor[a]).min(self.volume_shape[a])),
        ))
    }

    /// Whether any region-of-interest voxel lies in the (inclusive, continuous) volume index box.
    pub fn touches_box(&self, lo: [f64; 3], hi: [f64; 3]) -> bool {
        let mut a0 = [0usize; 3];
        let mut a1 = [0usize; 3];
        for a in 0..3 {
            let l = lo[a].floor().max(0.0);
            let h = hi[a].ceil().min(self.volume_shape[a] as f64 - 1.0);
            if h < l {
                return false;
            }
            a0[a] = l as usize / self.factor[a];
            a1[a] = h as usize / self.factor[a] + 1;
        }
        let d = [self.dims[0] + 1, self.dims[1] + 1, self.dims[2] + 1];
        let p = |z: usize, y: usize, x: usize| i64::from(self.prefix[(z * d[1] + y) * d[2] + x]);
        let s = p(a1[0], a1[1], a1[2])
            - p(a0[0], a1[1], a1[2])
            - p(a1[0], a0[1], a1[2])
            - p(a1[0], a1[1], a0[2])
            + p(a0[0], a0[1], a1[2])
            + p(a0[0], a1[1], a0[2])
            + p(a1[0], a0[1], a0[2])
            - p(a0[0], a0[1], a0[2]);
        s > 0
    }
}

fn unflatten(i: usize, dims: [usize; 3]) -> [usize; 3] {
    [
        i / (dims[1] * dims[2]),
        (i / dims[2]) % dims[1],
        i % dims[2],
    ]
}

/// 6-connected flood fill from the queued (linear) voxel indices; `visit` marks a voxel and says
/// whether it was newly accepted.
fn flood(queue: &mut VecDeque<usize>, dims: [usize; 3], mut visit: impl FnMut(usize) -> bool) {
    let sy = dims[2];
    let sz = dims[1] * dims[2];
    while let Some(i) = queue.pop_front() {
        let x = i % dims[2];
        let y = (i / sy) % dims[1];
        let z = i / sz;
        let mut go = |j: usize| {
            if visit(j) {
                queue.push_back(j);
            }
        };
        if x > 0 {
            go(i - 1);
        }
        if x + 1 < dims[2] {
            go(i + 1);
        }
        if y > 0 {
            go(i - sy);
        }
        if y + 1 < dims[1] {
            go(i + sy);
        }
        if z > 0 {
            go(i - sz);
        }
        if z + 1 < dims[0] {
            go(i + sz);
        }
    }
}

/// Separable box dilation (`max = true`) or erosion; windows are clipped at the borders.
fn box_filter(mask: &mut [bool], dims: [usize; 3], r: [usize; 3], max: bool) {
    let strides = [dims[1] * dims[2], dims[2], 1];
    for a in 0..3 {
        if r[a] == 0 {
            continue;
        }
        let len = dims[a];
        let mut line = vec![false; len];
        let mut out = vec![false; len];
        let mut csum = vec![0usize; len + 1];
        let (o1, o2) = match a {
            0 => (1, 2),
            1 => (0, 2),
            _ => (0, 1),
        };
        for i in 0..dims[o1] {
            for j in 0..dims[o2] {
                let base = i * strides[o1] + j * strides[o2];
                for (k, l) in line.iter_mut().enumerate() {
                    *l = mask[base + k * strides[a]];
                }
                for k in 0..len {
                    csum[k + 1] = csum[k] + usize::from(line[k]);
                }
                for (k, o) in out.iter_mut().enumerate() {
                    let lo = k.saturating_sub(r[a]);
                    let hi = (k + r[a]).min(len - 1);
                    let count = csum[hi + 1] - csum[lo];
                    *o = if max { count > 0 } else { count == hi - lo + 1 };
                }
                for (k, o) in out.iter().enumerate() {
                    mask[base + k * strides[a]] = *o;
                }
            }
        }
    }
}

fn prefix_sums(mask: &[bool], dims: [usize; 3]) -> Vec<u32> {
    let d = [dims[0] + 1, dims[1] + 1, dims[2] + 1];
    let mut p = vec![0u32; d[0] * d[1] * d[2]];
    let at = |z: usize, y: usize, x: usize| (z * d[1] + y) * d[2] + x;
    for z in 1..d[0] {
        for y in 1..d[1] {
            for x in 1..d[2] {
                let m = u32::from(mask[((z - 1) * dims[1] + (y - 1)) * dims[2] + (x - 1)]);
                p[at(z, y, x)] = m + p[at(z - 1, y, x)] + p[at(z, y - 1, x)] + p[at(z, y, x - 1)]
                    - p[at(z - 1, y - 1, x)]
                    - p[at(z - 1, y, x - 1)]
                    - p[at(z, y - 1, x - 1)]
                    + p[at(z - 1, y - 1, x - 1)];
            }
        }
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn box_filter_matches_brute_force() {
        let dims = [7, 9, 11];
        let n = dims[0] * dims[1] * dims[2];
        let mask: Vec<bool> = (0..n)
            .map(|i| (i * 7919_usize).is_multiple_of(13))
            .collect();
        for max in [true, false] {
            let r = [1, 2, 0];
            let mut got = mask.clone();
            box_filter(&mut got, dims, r, max);
            for (i, g) in got.iter().enumerate() {
                let v = unflatten(i, dims);
                let mut any = false;
                let mut all = true;
                for z in v[0].saturating_sub(r[0])..=(v[0] + r[0]).min(dims[0] - 1) {
                    for y in v[1].saturating_sub(r[1])..=(v[1] + r[1]).min(dims[1] - 1) {
                        for x in v[2].saturating_sub(r[2])..=(v[2] + r[2]).min(dims[2] - 1) {
                            let m = mask[(z * dims[1] + y) * dims[2] + x];
                            any |= m;
                            all &= m;
                        }
                    }
                }
                assert_eq!(*g, if max { any } else { all }, "{v:?} max={max}");
            }
        }
    }
}
