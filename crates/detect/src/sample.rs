//! Reading model input patches straight from the `i16` volume: crop, pad with air, resample to the
//! model's spacing and normalise, in one pass and without a whole-volume float copy.

use ndarray::ArrayView3;
use speck_volume::sample::{trilinear, Border};

use crate::contract::ModelContract;

/// HU of the padding outside the volume (air), applied before normalisation.
pub const PAD_HU: i16 = -1000;

/// Normalised model input for every `i16` HU value (a 256 KiB lookup table).
pub(crate) struct Normalizer {
    lut: Vec<f32>,
}

impl Normalizer {
    pub(crate) fn new(contract: &ModelContract) -> Self {
        let lut = (i16::MIN..=i16::MAX)
            .map(|hu| contract.normalize(f32::from(hu)))
            .collect();
        Self { lut }
    }

    #[inline]
    pub(crate) fn of(&self, hu: i16) -> f32 {
        self.lut[(i32::from(hu) - i32::from(i16::MIN)) as usize]
    }

    /// Normalise a (possibly interpolated) HU value.
    #[inline]
    pub(crate) fn of_f32(&self, hu: f32, contract: &ModelContract) -> f32 {
        contract.normalize(hu)
    }
}

/// Where the samples of a patch lie in the volume: sample `i` (per axis, `[z, y, x]`) is at the
/// continuous volume index `origin + i * step`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct SampleGrid {
    pub origin: [f64; 3],
    pub step: [f64; 3],
    pub dims: [usize; 3],
}

/// Fill `out` (`dims` in `[z, y, x]` order, C-contiguous) with normalised samples.
///
/// - `step == 1` on every axis with an integer origin: a plain crop (the common case).
/// - Otherwise trilinear interpolation ([`speck_volume::sample::trilinear`], padded with
///   [`PAD_HU`] neighbour by neighbour); when `step > 1` on an axis (downsampling) each sample is
///   the mean of `ceil(step)` trilinear sub-samples spread over its footprint on that axis, so a
///   small bright object is averaged in, not skipped.
///
/// Outside the volume the value is [`PAD_HU`].
pub(crate) fn sample_patch(
    vox: ArrayView3<'_, i16>,
    grid: &SampleGrid,
    norm: &Normalizer,
    contract: &ModelContract,
    out: &mut [f32],
) {
    let [dz, dy, dx] = grid.dims;
    debug_assert_eq!(out.len(), dz * dy * dx);
    let (nz, ny, nx) = vox.dim();
    let integer = grid
        .origin
        .iter()
        .zip(grid.step)
        .all(|(o, s)| s == 1.0 && o.fract() == 0.0);
    let pad = norm.of(PAD_HU);
    if integer {
        let o = grid.origin.map(|v| v as i64);
        for z in 0..dz {
            let vz = o[0] + z as i64;
            for y in 0..dy {
                let vy = o[1] + y as i64;
                let row = &mut out[(z * dy + y) * dx..(z * dy + y + 1) * dx];
                if vz < 0 || vz >= nz as i64 || vy < 0 || vy >= ny as i64 {
                    row.fill(pad);
                    continue;
                }
                let src = vox.slice(ndarray::s![vz as usize, vy as usize, ..]);
                for (x, r) in row.iter_mut().enumerate() {
                    let vx = o[2] + x as i64;
                    *r = if vx < 0 || vx >= nx as i64 {
                        pad
                    } else {
                        norm.of(src[vx as usize])
                    };
                }
            }
        }
        return;
    }
    // Sub-sample offsets per axis (in volume index units) for box averaging.
    let subs: [Vec<f64>; 3] = std::array::from_fn(|a| {
        let s = grid.step[a];
        if s <= 1.0 {
            vec![0.0]
        } else {
            let k = s.ceil() as usize;
            (0..k)
                .map(|j| (j as f64 + 0.5) / k as f64 * s - s / 2.0)
                .collect()
        }
    });
    let count = (subs[0].len() * subs[1].len() * subs[2].len()) as f32;
    let trilinear = |p: [f64; 3]| -> f32 { trilinear(vox, p, Border::Constant(f32::from(PAD_HU))) };
    for z in 0..dz {
        let pz = grid.origin[0] + z as f64 * grid.step[0];
        for y in 0..dy {
            let py = grid.origin[1] + y as f64 * grid.step[1];
            for x in 0..dx {
                let px = grid.origin[2] + x as f64 * grid.step[2];
                let mut sum = 0.0f32;
                for oz in &subs[0] {
                    for oy in &subs[1] {
                        for ox in &subs[2] {
                            sum += trilinear([pz + oz, py + oy, px + ox]);
                        }
                    }
                }
                out[(z * dy + y) * dx + x] = norm.of_f32(sum / count, contract);
            }
        }
    }
}
