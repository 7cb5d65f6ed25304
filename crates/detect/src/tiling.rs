//! Memory-bounded sliding windows.
//!
//! A dense model runs over a *model grid*: the region of interest (a box of the volume, in volume
//! voxels) resampled to the model's spacing. Tiles of the model's patch size are laid over it with
//! a configurable overlap; the last tile on each axis is aligned to the end of the grid, so every
//! grid voxel is covered. Tiles that do not touch the region of interest are not run at all.
//!
//! Outputs are blended with a Gaussian importance map (σ = 1/8 of the tile on each axis, as in
//! nnU-Net and MONAI): `map = Σ wₜ·outₜ / Σ wₜ`, so the normalised weights of the tiles covering a
//! voxel sum to exactly 1.
//!
//! **Memory.** Tiles run in `z`-major order, batches never straddle two tile rows, and the
//! accumulator only holds the output rows (`z` planes) that a tile still to come may touch — at
//! most one tile depth. A row
//! whose last tile has been blended is normalised and handed to a row sink (peak extraction
//! with a halo, or a full map for small volumes), then freed. Nothing proportional to the whole
//! volume is ever allocated in `f32`.
//!
//! **Tile size.** A model whose contract has `speck.tile_multiple` is fully convolutional, so a
//! tile may be larger than its patch. With [`DenseTiles::Fit`] (the default) tiles keep the
//! patch's depth but span as much of the `y`/`x` extent of the region as `max_voxels` allows, so
//! in-plane neighbours no longer recompute each other's borders: on LIDC-IDRI-0001 this runs the
//! bundled coarse model over about a third fewer voxels (docs/benchmarks.md). Where a region
//! needs several tiles on an axis they share `overlap` of a patch, not of the larger tile.
//!
//! **Overlap.** While ONNX Runtime runs batch `k`, rayon prepares batch `k + 1` (crop, pad,
//! resample, normalise) and blends batch `k - 1`.

use std::collections::VecDeque;

use ndarray::{Array5, ArrayD, ArrayView3};
use rayon::prelude::*;
use speck_volume::{ContinuousIndex, Geometry, Spacing};

use crate::contract::ModelContract;
use crate::error::{DetectError, Result};
use crate::model::Model;
use crate::sample::{sample_patch, Normalizer, SampleGrid};

/// How large the dense model's tiles are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DenseTiles {
    /// Always the model's `speck.patch_size`.
    Patch,
    /// For a model with `speck.tile_multiple`: the patch's depth, and in-plane as much of the
    /// region as keeps a tile within `max_voxels` (never smaller than the patch). Models without
    /// the key run at their patch size.
    Fit {
        /// Largest tile, in model voxels (bounds ONNX Runtime's working memory).
        max_voxels: usize,
    },
}

impl Default for DenseTiles {
    /// [`DenseTiles::Fit`] up to 2 Mi voxels (e.g. 32 x 256 x 256: ONNX Runtime then needs about
    /// 100 MB more than for two patches of the bundled coarse model).
    fn default() -> Self {
        DenseTiles::Fit {
            max_voxels: 1 << 21,
        }
    }
}

/// The model grid over a box of the volume.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct DenseGrid {
    /// Volume continuous index (`[z, y, x]`) of model voxel `[0, 0, 0]`.
    pub start_v: [f64; 3],
    /// Volume voxels per model voxel.
    pub ratio: [f64; 3],
    /// Model grid size (a multiple of the stride, at least one tile... or less when the box is
    /// smaller than a tile, in which case the single tile is padded).
    pub dims: [usize; 3],
    /// Tile size, `[z, y, x]` model voxels: the patch, or larger (see [`DenseTiles`]).
    pub patch: [usize; 3],
    pub stride: [usize; 3],
    /// Distance between tile starts per axis (before the last start is aligned with the end).
    step: [usize; 3],
}

impl DenseGrid {
    /// The grid over volume voxels `lo..hi` (exclusive) for a model with `contract`, on a volume
    /// with spacing `spacing_zyx`, with tiles sharing `overlap` of a patch.
    pub fn new(
        lo: [usize; 3],
        hi: [usize; 3],
        spacing_zyx: [f64; 3],
        c: &ModelContract,
        overlap: f32,
        tiles: DenseTiles,
    ) -> Self {
        let ratio: [f64; 3] = std::array::from_fn(|a| c.spacing_mm[a] / spacing_zyx[a]);
        let dims: [usize; 3] = std::array::from_fn(|a| {
            let count = hi[a].saturating_sub(lo[a]).max(1);
            let n = ((count - 1) as f64 / ratio[a] - 1e-9).ceil().max(0.0) as usize + 1;
            let s = c.output_stride[a];
            n.div_ceil(s) * s
        });
        let (patch, stride) = (c.patch_size, c.output_stride);
        // Start distance for patch-sized tiles: patch·(1-overlap), down to a multiple of the stride.
        let patch_step: [usize; 3] = std::array::from_fn(|a| {
            let raw =
                (patch[a] as f64 * (1.0 - f64::from(overlap.clamp(0.0, 0.95)))).floor() as usize;
            (raw / stride[a]).max(1) * stride[a]
        });
        let tile = match (tiles, c.tile_multiple) {
            (DenseTiles::Fit { max_voxels }, Some(m)) => {
                fit_tile(dims, patch, m, patch_step, max_voxels)
            }
            _ => patch,
        };
        // A larger tile keeps the patch's overlap in voxels, not as a fraction of the tile.
        let step = std::array::from_fn(|a| {
            let shared = patch[a] - patch_step[a];
            ((tile[a] - shared) / stride[a]).max(1) * stride[a]
        });
        Self {
            start_v: lo.map(|v| v as f64),
            ratio,
            dims,
            patch: tile,
            stride,
            step,
        }
    }

    /// Input voxels of one tile.
    pub fn tile_voxels(&self) -> usize {
        self.patch.iter().product()
    }

    /// Output map size `[z, y, x]`.
    pub fn out_dims(&self) -> [usize; 3] {
        std::array::from_fn(|a| self.dims[a] / self.stride[a])
    }

    /// Volume continuous index of output voxel `o` (the centre of the input voxels it covers).
    pub fn out_to_volume(&self, o: [f64; 3]) -> [f64; 3] {
        std::array::from_fn(|a| {
            let s = self.stride[a] as f64;
            self.start_v[a] + (o[a] * s + (s - 1.0) / 2.0) * self.ratio[a]
        })
    }

    /// Geometry of the output map starting at output row `z0`.
    pub fn out_geometry(&self, volume: &Geometry, z0: usize) -> Result<Geometry> {
        let origin_v = self.out_to_volume([z0 as f64, 0.0, 0.0]);
        let origin =
            volume.index_to_world(ContinuousIndex::new(origin_v[0], origin_v[1], origin_v[2]));
        let s = volume.spacing.zyx();
        let m: [f64; 3] = std::array::from_fn(|a| s[a] * self.ratio[a] * self.stride[a] as f64);
        let spacing = Spacing::new(m[2], m[1], m[0]).map_err(|source| DetectError::Volume {
            what: "output map spacing",
            source,
        })?;
        Ok(Geometry::new(spacing, origin, volume.direction))
    }

    /// Tile start positions (model voxels) per axis.
    pub fn tile_starts(&self) -> [Vec<usize>; 3] {
        std::array::from_fn(|a| axis_starts(self.dims[a], self.patch[a], self.step[a]))
    }

    /// The sample grid of the tile starting at model voxel `t`.
    pub fn tile_samples(&self, t: [usize; 3]) -> SampleGrid {
        SampleGrid {
            origin: std::array::from_fn(|a| self.start_v[a] + t[a] as f64 * self.ratio[a]),
            step: self.ratio,
            dims: self.patch,
        }
    }

    /// Volume index box (inclusive, continuous) covered by the tile starting at `t`.
    pub fn tile_footprint(&self, t: [usize; 3]) -> ([f64; 3], [f64; 3]) {
        let lo = std::array::from_fn(|a| self.start_v[a] + t[a] as f64 * self.ratio[a]);
        let hi = std::array::from_fn(|a| {
            self.start_v[a] + (t[a] + self.patch[a] - 1) as f64 * self.ratio[a]
        });
        (lo, hi)
    }
}

/// The tile for [`DenseTiles::Fit`]: the patch's depth; in-plane, the fewest tiles per axis
/// (sharing `patch - patch_step` voxels, as patch-sized tiles do) whose size, rounded up to the
/// model's `multiple`, keeps a tile within `max_voxels`. Never smaller than the patch.
fn fit_tile(
    dims: [usize; 3],
    patch: [usize; 3],
    multiple: [usize; 3],
    patch_step: [usize; 3],
    max_voxels: usize,
) -> [usize; 3] {
    let size = |a: usize, n: usize| -> usize {
        if dims[a] <= patch[a] {
            return patch[a];
        }
        let shared = patch[a] - patch_step[a];
        let raw = (dims[a] + (n - 1) * shared).div_ceil(n);
        (raw.div_ceil(multiple[a]) * multiple[a]).max(patch[a])
    };
    let mut n = [1usize, 1, 1];
    loop {
        let t = [patch[0], size(1, n[1]), size(2, n[2])];
        if t.iter().product::<usize>() <= max_voxels || (t[1] == patch[1] && t[2] == patch[2]) {
            return t;
        }
        // Split the axis whose tile is larger.
        let a = if t[1] >= t[2] && t[1] > patch[1] {
            1
        } else {
            2
        };
        n[a] += 1;
    }
}

/// Starts along one axis for tiles of `p` voxels, `step` apart (a multiple of the stride), the
/// last start aligned with the end.
pub(crate) fn axis_starts(g: usize, p: usize, step: usize) -> Vec<usize> {
    if g <= p {
        return vec![0];
    }
    let mut v = Vec::new();
    let mut t = 0;
    while t + p < g {
        v.push(t);
        t += step;
    }
    v.push(g - p);
    v.dedup();
    v
}

/// Gaussian importance map over an output tile (`[z, y, x]`, C-contiguous), max 1.
pub(crate) fn gaussian_weights(q: [usize; 3]) -> Vec<f32> {
    let axis = |n: usize| -> Vec<f64> {
        let c = (n as f64 - 1.0) / 2.0;
        let sigma = n as f64 / 8.0;
        (0..n)
            .map(|i| (-(i as f64 - c).powi(2) / (2.0 * sigma * sigma)).exp())
            .collect()
    };
    let (wz, wy, wx) = (axis(q[0]), axis(q[1]), axis(q[2]));
    let mut out = Vec::with_capacity(q[0] * q[1] * q[2]);
    for a in &wz {
        for b in &wy {
            for c in &wx {
                out.push(((a * b * c) as f32).max(1e-6));
            }
        }
    }
    out
}

/// Receives finalised output rows in increasing `z` order.
pub(crate) trait RowSink: Send {
    /// `row` is the output `z` index; `data` holds `C` planes of `Oy·Ox` values (channel-major).
    fn push_row(&mut self, row: usize, data: &[f32]) -> Result<()>;
    /// Called once after the last row.
    fn finish(&mut self) -> Result<()>;
}

/// Rolling accumulator over output rows.
struct Accumulator<'s, S: RowSink> {
    channels: usize,
    out_dims: [usize; 3],
    plane: usize,
    base: usize,
    rows: VecDeque<Vec<f32>>,
    weights: Vec<f32>,
    q: [usize; 3],
    stride: [usize; 3],
    sink: &'s mut S,
    peak_rows: usize,
}

impl<S: RowSink> Accumulator<'_, S> {
    fn blend(&mut self, t: [usize; 3], out: &[f32]) {
        let [qz, qy, qx] = self.q;
        let qn = qz * qy * qx;
        let o: [usize; 3] = std::array::from_fn(|a| t[a] / self.stride[a]);
        let [oz_n, oy_n, ox_n] = self.out_dims;
        let c_n = self.channels;
        for dz in 0..qz {
            let r = o[0] + dz;
            if r >= oz_n || r < self.base {
                continue;
            }
            while self.base + self.rows.len() <= r {
                self.rows.push_back(vec![0.0; (c_n + 1) * self.plane]);
            }
            self.peak_rows = self.peak_rows.max(self.rows.len());
            let row = &mut self.rows[r - self.base];
            for dy in 0..qy {
                let y = o[1] + dy;
                if y >= oy_n {
                    break;
                }
                for dx in 0..qx {
                    let x = o[2] + dx;
                    if x >= ox_n {
                        break;
                    }
                    let qi = (dz * qy + dy) * qx + dx;
                    let w = self.weights[qi];
                    let idx = y * ox_n + x;
                    for c in 0..c_n {
                        row[c * self.plane + idx] += w * out[c * qn + qi];
                    }
                    row[c_n * self.plane + idx] += w;
                }
            }
        }
    }

    /// Normalise and emit every row below `limit`.
    fn finalise(&mut self, limit: usize) -> Result<()> {
        let limit = limit.min(self.out_dims[0]);
        let c_n = self.channels;
        while self.base < limit {
            let mut row = self
                .rows
                .pop_front()
                .unwrap_or_else(|| vec![0.0; (c_n + 1) * self.plane]);
            let (vals, w) = row.split_at_mut(c_n * self.plane);
            for c in 0..c_n {
                for (v, &wi) in vals[c * self.plane..(c + 1) * self.plane]
                    .iter_mut()
                    .zip(w.iter())
                {
                    *v = if wi > 0.0 { *v / wi } else { 0.0 };
                }
            }
            self.sink.push_row(self.base, vals)?;
            self.base += 1;
        }
        Ok(())
    }
}

/// What happened in one sliding-window pass.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct PassStats {
    pub tiles_total: usize,
    pub tiles_run: usize,
    pub batches: usize,
    /// Most output rows held at once (memory bound check).
    pub peak_rows: usize,
}

/// Run `model` over the `tiles` (model-grid starts, sorted `z`-major) of `grid`, blending into
/// rows handed to `sink`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn run_sliding_window<S: RowSink>(
    model: &Model,
    norm: &Normalizer,
    vox: ArrayView3<'_, i16>,
    grid: &DenseGrid,
    tiles: &[[usize; 3]],
    batch: usize,
    sink: &mut S,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<PassStats> {
    let c = model.contract();
    let channels = c.output_channels.len();
    // The tile may be larger than the patch (fitted tiles): its output follows the tile.
    let q: [usize; 3] = std::array::from_fn(|a| grid.patch[a] / grid.stride[a]);
    let out_dims = grid.out_dims();
    let plane = out_dims[1] * out_dims[2];
    let mut acc = Accumulator {
        channels,
        out_dims,
        plane,
        base: 0,
        rows: VecDeque::new(),
        weights: gaussian_weights(q),
        q,
        stride: grid.stride,
        sink,
        peak_rows: 0,
    };
    let batch = batch.max(1);
    // Batches never straddle two tile rows (same z start), so the accumulator holds at most one
    // tile depth of output rows.
    let mut chunks: Vec<&[[usize; 3]]> = Vec::new();
    for row in tiles.chunk_by(|a, b| a[0] == b[0]) {
        chunks.extend(row.chunks(batch));
    }
    let p = grid.patch;
    let pn = p[0] * p[1] * p[2];
    let prepare = |chunk: &[[usize; 3]]| -> Result<Array5<f32>> {
        let mut input = Array5::<f32>::zeros((chunk.len(), 1, p[0], p[1], p[2]));
        let slice = input
            .as_slice_mut()
            .ok_or_else(|| DetectError::Config("non-contiguous batch buffer".into()))?;
        slice
            .par_chunks_mut(pn)
            .zip(chunk.par_iter())
            .for_each(|(buf, t)| sample_patch(vox, &grid.tile_samples(*t), norm, c, buf));
        Ok(input)
    };
    let expect = |n: usize| vec![n, channels, q[0], q[1], q[2]];
    let qn = q[0] * q[1] * q[2];
    let blend_chunk = |acc: &mut Accumulator<'_, S>, j: usize, out: ArrayD<f32>| -> Result<()> {
        let chunk = chunks[j];
        if out.shape() != expect(chunk.len()).as_slice() {
            return Err(DetectError::OutputShape {
                path: model.path().to_path_buf(),
                expected: format!("{:?}", expect(chunk.len())),
                found: format!("{:?}", out.shape()),
            });
        }
        let out = out.as_standard_layout();
        let data = out
            .as_slice()
            .ok_or_else(|| DetectError::Config("non-contiguous model output".into()))?;
        for (b, t) in chunk.iter().enumerate() {
            acc.blend(*t, &data[b * channels * qn..(b + 1) * channels * qn]);
        }
        let limit = chunks
            .get(j + 1)
            .map_or(out_dims[0], |next| next[0][0] / grid.stride[0]);
        acc.finalise(limit)
    };
    let mut stats = PassStats {
        tiles_total: tiles.len(),
        ..PassStats::default()
    };
    if let Some(first) = chunks.first() {
        let mut input = prepare(first)?;
        let mut prev: Option<(usize, ArrayD<f32>)> = None;
        for k in 0..chunks.len() {
            let (res, (next, blended)) = rayon::join(
                || model.run(input.view()),
                || {
                    let next = chunks.get(k + 1).map(|ch| prepare(ch));
                    let blended = match prev.take() {
                        Some((j, out)) => blend_chunk(&mut acc, j, out),
                        None => Ok(()),
                    };
                    (next, blended)
                },
            );
            blended?;
            prev = Some((k, res?));
            stats.tiles_run += chunks[k].len();
            stats.batches += 1;
            progress(stats.tiles_run, tiles.len());
            if let Some(n) = next {
                input = n?;
            }
        }
        if let Some((j, out)) = prev.take() {
            blend_chunk(&mut acc, j, out)?;
        }
    }
    acc.finalise(out_dims[0])?;
    stats.peak_rows = acc.peak_rows;
    acc.sink.finish()?;
    Ok(stats)
}

/// A sink that keeps the whole map (small volumes, tests, segmentation export).
pub(crate) struct FullMap {
    pub channels: usize,
    pub dims: [usize; 3],
    pub data: Vec<f32>,
}

impl FullMap {
    pub fn new(channels: usize, dims: [usize; 3]) -> Self {
        Self {
            channels,
            dims,
            data: Vec::with_capacity(channels * dims[0] * dims[1] * dims[2]),
        }
    }

    /// Channel `c` as a `[z, y, x]` array.
    pub fn channel(&self, c: usize) -> ndarray::Array3<f32> {
        let [dz, dy, dx] = self.dims;
        let plane = dy * dx;
        ndarray::Array3::from_shape_fn((dz, dy, dx), |(z, y, x)| {
            self.data[(z * self.channels + c) * plane + y * dx + x]
        })
    }
}

impl RowSink for FullMap {
    fn push_row(&mut self, _row: usize, data: &[f32]) -> Result<()> {
        self.data.extend_from_slice(data);
        Ok(())
    }
    fn finish(&mut self) -> Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_cover_the_axis_and_align_to_stride() {
        for (g, p, s, ov) in [
            (100usize, 32usize, 1usize, 0.25f32),
            (100, 32, 2, 0.5),
            (32, 32, 1, 0.25),
            (20, 32, 1, 0.25),
            (65, 16, 4, 0.0),
        ] {
            let g = g.div_ceil(s) * s;
            let raw = (p as f64 * (1.0 - f64::from(ov))).floor() as usize;
            let st = axis_starts(g, p, (raw / s).max(1) * s);
            let mut covered = vec![false; g];
            for &t in &st {
                assert_eq!(t % s, 0, "start {t} not on stride {s}");
                for c in covered.iter_mut().skip(t).take(p) {
                    *c = true;
                }
            }
            assert!(covered.iter().all(|c| *c), "{g} {p} {s} {ov}: {st:?}");
            assert!(st.windows(2).all(|w| w[0] < w[1]));
        }
    }

    struct Collect(Vec<(usize, Vec<f32>)>);
    impl RowSink for Collect {
        fn push_row(&mut self, row: usize, data: &[f32]) -> Result<()> {
            self.0.push((row, data.to_vec()));
            Ok(())
        }
        fn finish(&mut self) -> Result<()> {
            Ok(())
        }
    }

    /// Normalised Gaussian weights of the tiles covering a voxel sum to 1 everywhere: blending a
    /// constant-1 output from every tile gives exactly 1 at every voxel of the grid, and the rows
    /// come out once each, in order.
    #[test]
    fn normalised_weights_sum_to_one_everywhere() {
        for (dims, patch, stride, overlap) in [
            (
                [40usize, 50, 37],
                [16usize, 16, 16],
                [1usize, 1, 1],
                0.25f32,
            ),
            ([40, 52, 36], [16, 16, 16], [2, 2, 2], 0.5),
            ([10, 30, 30], [16, 16, 16], [1, 1, 1], 0.6),
        ] {
            let grid = DenseGrid {
                start_v: [0.0; 3],
                ratio: [1.0; 3],
                dims: std::array::from_fn(|a| dims[a].div_ceil(stride[a]) * stride[a]),
                patch,
                stride,
                step: std::array::from_fn(|a| {
                    let raw = (patch[a] as f64 * (1.0 - f64::from(overlap))).floor() as usize;
                    (raw / stride[a]).max(1) * stride[a]
                }),
            };
            let q: [usize; 3] = std::array::from_fn(|a| patch[a] / stride[a]);
            let od = grid.out_dims();
            let mut sink = Collect(Vec::new());
            let mut acc = Accumulator {
                channels: 1,
                out_dims: od,
                plane: od[1] * od[2],
                base: 0,
                rows: VecDeque::new(),
                weights: gaussian_weights(q),
                q,
                stride,
                sink: &mut sink,
                peak_rows: 0,
            };
            let st = grid.tile_starts();
            let ones = vec![1.0f32; q[0] * q[1] * q[2]];
            for &z in &st[0] {
                acc.finalise(z / stride[0]).expect("finalise");
                for &y in &st[1] {
                    for &x in &st[2] {
                        acc.blend([z, y, x], &ones);
                    }
                }
            }
            acc.finalise(od[0]).expect("finalise");
            assert!(acc.peak_rows <= q[0], "held {} rows", acc.peak_rows);
            assert_eq!(sink.0.len(), od[0]);
            for (i, (row, data)) in sink.0.iter().enumerate() {
                assert_eq!(*row, i);
                for v in data {
                    assert!((v - 1.0).abs() < 1e-5, "row {row}: {v}");
                }
            }
        }
    }

    fn contract(patch: [usize; 3], stride: [usize; 3], multiple: Option<&str>) -> ModelContract {
        let p = format!("{},{},{}", patch[0], patch[1], patch[2]);
        let s = format!("{},{},{}", stride[0], stride[1], stride[2]);
        ModelContract::from_metadata(&|k| match k {
            "speck.role" => Some("coarse".into()),
            "speck.version" => Some("1".into()),
            "speck.spacing_mm" => Some("1,1,1".into()),
            "speck.patch_size" => Some(p.clone()),
            "speck.output_stride" => Some(s.clone()),
            "speck.hu_window" => Some("-1000,400".into()),
            "speck.normalization" => Some("window_to_unit".into()),
            "speck.output_channels" => Some("prob".into()),
            "speck.tile_multiple" => multiple.map(str::to_string),
            _ => None,
        })
        .expect("contract")
    }

    fn voxels_run(g: &DenseGrid) -> usize {
        g.tile_starts().iter().map(Vec::len).product::<usize>() * g.tile_voxels()
    }

    #[test]
    fn fitted_tiles_cover_the_region_within_the_limit_with_less_work() {
        let (patch, stride) = ([32, 128, 128], [1, 2, 2]);
        let fcn = contract(patch, stride, Some("4,8,8"));
        // A LIDC-like region (~300 x 300 x 420 model voxels), a small one and a wide one.
        for (hi, max_voxels) in [
            ([300, 300, 420], 1usize << 22),
            ([300, 300, 420], 1 << 20),
            ([20, 60, 90], 1 << 22),
            ([100, 700, 700], 1 << 22),
        ] {
            let fit = DenseGrid::new(
                [0; 3],
                hi,
                [1.0; 3],
                &fcn,
                0.25,
                DenseTiles::Fit { max_voxels },
            );
            let plain = DenseGrid::new([0; 3], hi, [1.0; 3], &fcn, 0.25, DenseTiles::Patch);
            assert_eq!(plain.patch, patch);
            assert_eq!(fit.patch[0], patch[0], "depth stays the patch's");
            assert!(
                fit.tile_voxels() <= max_voxels.max(plain.tile_voxels()),
                "{:?}",
                fit.patch
            );
            for a in 0..3 {
                assert_eq!(fit.patch[a] % [4, 8, 8][a], 0, "{:?}", fit.patch);
                assert!(fit.patch[a] >= patch[a]);
                let st = &fit.tile_starts()[a];
                let mut covered = vec![false; fit.dims[a]];
                for &t in st {
                    assert_eq!(t % stride[a], 0);
                    for c in covered.iter_mut().skip(t).take(fit.patch[a]) {
                        *c = true;
                    }
                }
                assert!(covered.iter().all(|c| *c), "axis {a}: {st:?}");
            }
            assert!(
                voxels_run(&fit) <= voxels_run(&plain),
                "{hi:?}: {} > {}",
                voxels_run(&fit),
                voxels_run(&plain)
            );
        }
        // The LIDC-like region: about a third less work.
        let fit = DenseGrid::new(
            [0; 3],
            [300, 300, 420],
            [1.0; 3],
            &fcn,
            0.25,
            DenseTiles::default(),
        );
        let plain = DenseGrid::new(
            [0; 3],
            [300, 300, 420],
            [1.0; 3],
            &fcn,
            0.25,
            DenseTiles::Patch,
        );
        // A few tiles in-plane under the default 2 Mi voxels (one would be 32 x 304 x 424),
        // against 15 patches.
        assert!(fit.tile_starts()[1].len() * fit.tile_starts()[2].len() <= 4);
        assert_eq!(
            plain.tile_starts()[1].len() * plain.tile_starts()[2].len(),
            15
        );
        assert!(
            voxels_run(&fit) * 3 < voxels_run(&plain) * 2,
            "{} vs {}",
            voxels_run(&fit),
            voxels_run(&plain)
        );
        // A model without the key always runs its patch.
        let fixed = contract(patch, stride, None);
        let g = DenseGrid::new(
            [0; 3],
            [300, 300, 420],
            [1.0; 3],
            &fixed,
            0.25,
            DenseTiles::default(),
        );
        assert_eq!(g.patch, patch);
        assert_eq!(g.tile_starts(), plain.tile_starts());
    }

    #[test]
    fn gaussian_has_sigma_of_an_eighth() {
        let w = gaussian_weights([1, 1, 64]);
        let c = 31.5f64;
        let sigma = 8.0f64;
        for (i, v) in w.iter().enumerate() {
            let e = (-(i as f64 - c).powi(2) / (2.0 * sigma * sigma))
                .exp()
                .max(1e-6);
            assert!((f64::from(*v) - e).abs() < 1e-6);
        }
    }
}
