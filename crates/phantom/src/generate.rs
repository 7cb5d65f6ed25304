//! Putting it together: geometry, anatomy, trees, nodules, rendering.

use std::sync::Arc;

use ndarray::Array3;
use rand::Rng;
use speck_volume::{Direction, Geometry, Provenance, Spacing, Volume, WorldPoint};

use crate::anatomy::Anatomy;
use crate::nodules::{place_all, Scene};
use crate::options::PhantomOptions;
use crate::render::{render, Geom, Grid, NoiseModel, Padding, Paint, Prim};
use crate::rng::{derive_seed, rng_for, uniform};
use crate::shapes::{lerp3, norm, sub, Capsule, Psf, V3};
use crate::trees::{grow, SegmentGrid, TreeParams};
use crate::truth::GroundTruth;
use crate::{Phantom, PhantomError};

/// Noise σ (HU) at 2.5 mm slices before the per-seed factor; calibrated on LIDC-IDRI-0001
/// (see docs/phantoms.md).
const NOISE_SD_AT_2_5_MM: f64 = 19.0;

/// A DICOM UID under the `2.25` (UUID-derived) root, from the seed and a tag.
fn uid_for(seed: u64, tag: &str) -> String {
    let hi = u128::from(derive_seed(seed, tag, 0));
    let lo = u128::from(derive_seed(seed, tag, 1));
    let v = ((hi << 64) | lo).max(1);
    format!("2.25.{v}")
}

/// Every option that changes the image, written exactly (floats as their bits), so that two
/// phantoms share a UID only when they are the same scan. `lung_mask` only adds an output and is
/// left out.
fn parameters_key(opts: &PhantomOptions) -> String {
    let bits = |v: &[f64]| {
        v.iter()
            .map(|x| format!("{:016x}", x.to_bits()))
            .collect::<Vec<_>>()
    };
    format!(
        "shape={:?};spacing={:?};nodules={};size={:?};density={:?};attachment={:?};noise={:?};\
         reference_min_vox={:?};psf={:?}",
        opts.shape_zyx,
        bits(&opts.spacing_zyx_mm),
        opts.nodules,
        opts.size_mix,
        opts.density_mix,
        opts.attachment_mix,
        opts.noise_sd_hu.map(|v| bits(&[v])),
        bits(&[opts.reference_min_vox]),
        bits(&[opts.psf_sigma_mm]),
    )
}

/// The SeriesInstanceUID of the phantom `opts` describes: from the seed and every generation
/// parameter (see [`parameters_key`]).
pub(crate) fn series_uid(opts: &PhantomOptions) -> String {
    uid_for(opts.seed, &format!("series-uid|{}", parameters_key(opts)))
}

/// Sample up to `n` points inside lung `side` (at least 1 mm deep).
fn lung_points(anatomy: &Anatomy, side: usize, n: usize, rng: &mut impl Rng) -> Vec<V3> {
    let (lo, hi) = anatomy.lung_box(side);
    let mut pts = Vec::with_capacity(n);
    let mut tries = 0usize;
    while pts.len() < n && tries < n * 40 {
        tries += 1;
        let p: V3 = std::array::from_fn(|i| uniform(rng, lo[i], hi[i]));
        let (sd, s) = anatomy.lung_sd_local(p);
        if sd < -1.0 && s == side {
            pts.push(p);
        }
    }
    pts
}

/// The vessel (arteries and veins) and airway trees of both lungs, in local mm.
fn grow_trees(anatomy: &Anatomy, seed: u64) -> (Vec<Capsule>, Vec<Capsule>) {
    let k = anatomy.k;
    let mut vessel_segs: Vec<Capsule> = Vec::new();
    let mut airway_segs: Vec<Capsule> = Vec::new();
    for side in 0..2 {
        let (lo, hi) = anatomy.lung_box(side);
        let box_mm3 = (0..3).map(|i| (hi[i] - lo[i]).max(0.0)).product::<f64>();
        let n = ((box_mm3 * 0.6 / 3500.0) as usize).clamp(40, 1200);
        let root = (5.6 * k.sqrt()).max(1.0);
        let art = TreeParams {
            root_radius: root,
            gamma: 2.8,
            min_radius: 0.25,
            twig_radius: 0.15,
        };
        let vein = TreeParams {
            root_radius: root * 1.05,
            ..art
        };
        let air = TreeParams {
            root_radius: (5.0 * k.sqrt()).max(1.2),
            gamma: 2.8,
            min_radius: 1.0,
            twig_radius: 0.8,
        };
        let hilum = anatomy.hila[side];
        let mut r = rng_for(seed, "arteries", side as u64);
        let pa = lung_points(anatomy, side, n, &mut r);
        vessel_segs.extend(grow(&pa, hilum.artery, art, |_| true, &mut r));
        let mut r = rng_for(seed, "veins", side as u64);
        let pv = lung_points(anatomy, side, n, &mut r);
        vessel_segs.extend(grow(&pv, hilum.vein, vein, |_| true, &mut r));
        let mut r = rng_for(seed, "airways", side as u64);
        let n_air = (n / 12).max(8).min(pa.len());
        let keep = airway_in_lung(anatomy, side, hilum.bronchus, &pa);
        airway_segs.extend(grow(&pa[..n_air], hilum.bronchus, air, keep, &mut r));
    }
    (vessel_segs, airway_segs)
}

/// Whether an airway piece of lung `side` stays inside that lung: every point of its axis (0.5 mm
/// apart) lies at least its lumen radius (at most 1 mm) deep in the lung, or in the hilum, the
/// ball about the main bronchus' end `bronchus` that reaches 2 mm past the nearest of the lung's
/// `points` (where lobar bronchi leave the mediastinum). Vessels need no such rule: the heart and
/// the mediastinum are painted over them. An airway lumen would show as air wherever it strayed
/// (the trees head for centroids of lung points, and the left lung wraps around the heart).
fn airway_in_lung<'a>(
    anatomy: &'a Anatomy,
    side: usize,
    bronchus: V3,
    points: &[V3],
) -> impl Fn(&Capsule) -> bool + 'a {
    let hilum = points
        .iter()
        .map(|&p| norm(sub(p, bronchus)))
        .fold(f64::INFINITY, f64::min)
        + 2.0;
    move |c: &Capsule| {
        axis_samples(c).all(|(t, p)| {
            if norm(sub(p, bronchus)) <= hilum {
                return true;
            }
            let (sd, s) = anatomy.lung_sd_local(p);
            s == side && sd < -c.radius_at(t).min(1.0)
        })
    }
}

/// Points along a capsule's axis, at most 0.5 mm apart, ends included: `(t, point)`.
fn axis_samples(c: &Capsule) -> impl Iterator<Item = (f64, V3)> + '_ {
    let n = (c.length() / 0.5).ceil().max(1.0) as usize;
    (0..=n).map(move |i| {
        let t = i as f64 / n as f64;
        (t, lerp3(c.a, c.b, t))
    })
}

/// Generate a phantom. See the crate docs.
pub(crate) fn generate(opts: &PhantomOptions) -> Result<Phantom, PhantomError> {
    opts.validate()?;
    let seed = opts.seed;
    let [nz, ny, nx] = opts.shape_zyx;
    let [sz, sy, sx] = opts.spacing_zyx_mm;
    let mut rng = rng_for(seed, "frame", 0);
    let spacing = Spacing::new(sx, sy, sz).map_err(|e| PhantomError::Volume {
        context: "phantom spacing".into(),
        source: e,
    })?;
    // A scanner-like origin: centred in-plane with a few mm of jitter, negative z.
    let origin = WorldPoint::new(
        -0.5 * (nx - 1) as f64 * sx + uniform(&mut rng, -15.0, 15.0),
        -0.5 * (ny - 1) as f64 * sy + uniform(&mut rng, -15.0, 15.0),
        -(nz as f64) * sz - uniform(&mut rng, 10.0, 150.0),
    );
    let geometry = Geometry::new(spacing, origin, Direction::IDENTITY);
    let fov = [nz as f64 * sz, ny as f64 * sy, nx as f64 * sx];
    let centre = (
        origin.x_mm + 0.5 * (nx - 1) as f64 * sx,
        origin.y_mm + 0.5 * (ny - 1) as f64 * sy,
    );
    let z_bottom = origin.z_mm - 0.5 * sz;
    let psf = Psf::new(opts.psf_sigma_mm);
    let mut anatomy = Anatomy::new(seed, fov, centre, z_bottom, psf);
    let structures = anatomy.take_structures();
    let (vessel_segs, airway_segs) = grow_trees(&anatomy, seed);
    let wall = |r: f64| 0.2 * r + 0.3;
    let mut prims: Vec<Prim> = structures;
    prims.extend(
        vessel_segs
            .iter()
            .map(|c| Prim::new(Geom::Capsule(*c), Paint::Vessel, &psf)),
    );
    let airway_hu = anatomy.hu.airway_wall;
    let airway_outer: Vec<Capsule> = airway_segs
        .iter()
        .map(|c| Capsule::new(c.a, c.b, c.ra + wall(c.ra), c.rb + wall(c.rb)))
        .collect();
    prims.extend(
        airway_outer
            .iter()
            .map(|c| Prim::new(Geom::Capsule(*c), Paint::Over(airway_hu), &psf)),
    );
    prims.extend(
        airway_segs
            .iter()
            .map(|c| Prim::new(Geom::Capsule(*c), Paint::Over(anatomy.hu.air), &psf)),
    );
    // Nodules.
    let vessels = SegmentGrid::new(vessel_segs, 8.0);
    let airways = SegmentGrid::new(airway_outer, 8.0);
    let attachable = vessels
        .segments
        .iter()
        .enumerate()
        .filter(|(_, s)| {
            let r = 0.5 * (s.ra + s.rb);
            (0.5..=2.5).contains(&r) && s.length() > 1.0
        })
        .map(|(i, _)| i)
        .collect();
    let off = anatomy.offset();
    let first_local = [
        origin.x_mm - off[0],
        origin.y_mm - off[1],
        origin.z_mm - off[2],
    ];
    let last_local = [
        first_local[0] + (nx - 1) as f64 * sx,
        first_local[1] + (ny - 1) as f64 * sy,
        first_local[2] + (nz - 1) as f64 * sz,
    ];
    let scene = Scene {
        anatomy: &anatomy,
        vessels: &vessels,
        airways: &airways,
        bounds: (
            [
                first_local[0] + 2.0,
                first_local[1] + 2.0,
                first_local[2] + sz,
            ],
            [last_local[0] - 2.0, last_local[1] - 2.0, last_local[2] - sz],
        ),
        attachable,
    };
    let placed = place_all(opts, &scene)?;
    let mut nodules = Vec::with_capacity(placed.len());
    for p in placed {
        prims.extend(p.prims);
        nodules.push(p.nodule);
    }
    // Paint order: vessels, then the rest in insertion order, nodules last.
    prims.sort_by_key(|p| match p.paint {
        Paint::Vessel => 0u8,
        Paint::Over(_) => 1,
        Paint::Nodule { .. } => 2,
    });
    // Noise and padding.
    let noise_sd_hu = opts.noise_sd_hu.unwrap_or_else(|| {
        NOISE_SD_AT_2_5_MM * uniform(&mut rng, 0.8, 1.3) * (2.5 / sz.max(0.5)).sqrt()
    });
    let noise = NoiseModel {
        seed,
        sd_hu: noise_sd_hu,
        sigma_px: 0.7,
        z_mix: 0.25,
        air_factor: 0.62,
    };
    let padding = (rng.random::<f64>() < 0.4).then(|| Padding {
        radius_mm: 0.5 * fov[1].min(fov[2]),
        centre: (
            0.5 * (first_local[0] + last_local[0]),
            0.5 * (first_local[1] + last_local[1]),
        ),
        value: [-2048i16, -3024, -1024][rng.random_range(0..3)],
    });
    let grid = Grid {
        shape_zyx: [nz, ny, nx],
        first_local,
        spacing: [sx, sy, sz],
    };
    let mut mask = opts.lung_mask.then(|| Array3::<u8>::zeros((nz, ny, nx)));
    let voxels = render(&anatomy, &prims, &grid, &noise, padding, mask.as_mut());
    let series_uid = series_uid(opts);
    let study_uid = uid_for(seed, "study-uid");
    let patient_id = format!("PHANTOM-{seed}");
    let provenance = Provenance {
        series_uid: Some(series_uid.clone()),
        study_uid: Some(study_uid.clone()),
        patient_id: Some(patient_id.clone()),
        ..Provenance::default()
    };
    let volume = Volume::new(voxels, geometry, provenance).map_err(|e| PhantomError::Volume {
        context: "building the phantom volume".into(),
        source: e,
    })?;
    tracing::debug!(
        seed,
        nodules = nodules.len(),
        noise_sd_hu,
        "phantom generated"
    );
    Ok(Phantom {
        volume,
        truth: GroundTruth {
            seed,
            series_uid,
            study_uid,
            patient_id,
            nodules,
            reference_min_vox: opts.reference_min_vox,
            in_plane_spacing_mm: opts.in_plane_spacing_mm(),
            noise_sd_hu,
            lung_mask: mask,
            anatomy: Arc::new(anatomy),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The anatomy and trees of a 300 x 512 x 512 phantom at 1.0 x 0.7 x 0.7 mm (the evaluation
    /// suite's size), without rendering it.
    fn trees_of(seed: u64) -> (Anatomy, Vec<Capsule>, Vec<Capsule>) {
        let psf = Psf::new(PhantomOptions::new(seed).psf_sigma_mm);
        let anatomy = Anatomy::new(seed, [300.0, 358.4, 358.4], (0.0, 0.0), -450.0, psf);
        let (vessels, airways) = grow_trees(&anatomy, seed);
        (anatomy, vessels, airways)
    }

    /// Airway lumens never cross the heart (seed 9009 of the evaluation suite once drew a small
    /// bronchus straight through it, painting air into the myocardium), and both lungs keep most
    /// of their airway tree.
    #[test]
    fn airways_stay_out_of_the_heart() {
        let mut sides = [0usize; 2];
        for seed in 9001..=9020 {
            let (anatomy, _, airways) = trees_of(seed);
            for c in &airways {
                for (_, p) in axis_samples(c) {
                    assert!(
                        anatomy.heart_sd(p) > 0.0,
                        "seed {seed}: airway axis point {p:?} inside the heart"
                    );
                }
            }
            for (side, count) in sides.iter_mut().enumerate() {
                let mine = airways
                    .iter()
                    .filter(|c| anatomy.lung_sd_local(c.b).1 == side)
                    .count();
                assert!(
                    mine >= 100,
                    "seed {seed}: lung {side} kept only {mine} airway pieces"
                );
                *count += mine;
            }
        }
        assert!(
            sides.iter().all(|&n| n > 20 * 150),
            "airway pieces per lung: {sides:?}"
        );
    }
}
