//! Nodule shapes, densities and placement.

use rand::Rng;

use crate::anatomy::Anatomy;
use crate::options::PhantomOptions;
use crate::render::{Geom, Paint, Prim};
use crate::rng::{derive_seed, rng_for, uniform, unit_vector, ValueNoise};
use crate::shapes::{
    add, norm, perpendicular, random_rotation, scale, sub, Blobs, Capsule, Ellipsoid, V3,
};
use crate::sizes::draw_diameter_mm;
use crate::trees::SegmentGrid;
use crate::truth::{Attachment, Density, Lung, Nodule, NoduleShape};
use crate::PhantomError;

/// A nodule's geometry centred on the origin (its volume centroid).
#[derive(Debug, Clone)]
enum Template {
    Ellipsoid(Ellipsoid),
    Blobs(Blobs),
}

impl Template {
    fn at(&self, c: V3, k: f64) -> Geom {
        match self {
            Self::Ellipsoid(e) => Geom::Ellipsoid(Ellipsoid::new(c, scale(e.s, k), e.rot)),
            Self::Blobs(b) => Geom::Blobs(Blobs {
                spheres: b
                    .spheres
                    .iter()
                    .map(|(p, r)| (add(c, scale(*p, k)), r * k))
                    .collect(),
            }),
        }
    }
}

/// Build a shape of equivalent radius `r_eq`; returns the template, its bounding radius and the
/// shape descriptor.
fn make_shape(r_eq: f64, rng: &mut impl Rng) -> (Template, f64, NoduleShape) {
    let u = uniform(rng, 0.0, 1.0);
    if u < 0.3 {
        let e = Ellipsoid::sphere([0.0; 3], r_eq);
        (Template::Ellipsoid(e), r_eq, NoduleShape::Sphere)
    } else if u < 0.7 {
        let (rb, rc) = (uniform(rng, 0.65, 1.0), uniform(rng, 0.65, 1.0));
        let a = r_eq / (rb * rc).cbrt();
        let s = [a, a * rb, a * rc];
        let e = Ellipsoid::new([0.0; 3], s, random_rotation(rng));
        (
            Template::Ellipsoid(e),
            a,
            NoduleShape::Ellipsoid { semi_axes_mm: s },
        )
    } else {
        let lobes = rng.random_range(3..=6);
        let mut spheres = vec![([0.0; 3], 1.0)];
        for _ in 0..lobes {
            let d = scale(unit_vector(rng), uniform(rng, 0.45, 0.75));
            spheres.push((d, uniform(rng, 0.4, 0.65)));
        }
        let blobs = Blobs { spheres };
        // Volume and centroid on a 40^3 grid over [-1.75, 1.75]^3 (every lobe fits inside).
        let n = 40usize;
        let h = 3.5 / n as f64;
        let (mut count, mut sum) = (0usize, [0.0; 3]);
        for i in 0..n {
            for j in 0..n {
                for l in 0..n {
                    let p = [
                        -1.75 + (i as f64 + 0.5) * h,
                        -1.75 + (j as f64 + 0.5) * h,
                        -1.75 + (l as f64 + 0.5) * h,
                    ];
                    if blobs.sd(p) <= 0.0 {
                        count += 1;
                        sum = add(sum, p);
                    }
                }
            }
        }
        let vol = count as f64 * h * h * h;
        let centroid = scale(sum, 1.0 / count.max(1) as f64);
        let k = r_eq / (3.0 * vol / (4.0 * std::f64::consts::PI)).cbrt();
        let shifted = Blobs {
            spheres: blobs
                .spheres
                .iter()
                .map(|(p, r)| (scale(sub(*p, centroid), k), r * k))
                .collect(),
        };
        let bound = shifted
            .spheres
            .iter()
            .map(|(p, r)| norm(*p) + r)
            .fold(0.0, f64::max);
        (
            Template::Blobs(shifted),
            bound,
            NoduleShape::Lobulated { lobes },
        )
    }
}

fn pick<T: Copy>(weights: &[(T, f64)], rng: &mut impl Rng) -> T {
    let total: f64 = weights.iter().map(|w| w.1).sum();
    let mut u = uniform(rng, 0.0, total);
    for (t, w) in weights {
        if u < *w {
            return *t;
        }
        u -= w;
    }
    weights[weights.len() - 1].0
}

/// Everything placement needs to know about the scene.
pub(crate) struct Scene<'a> {
    pub(crate) anatomy: &'a Anatomy,
    pub(crate) vessels: &'a SegmentGrid,
    pub(crate) airways: &'a SegmentGrid,
    /// Local box the nodule centres must stay within (the volume, less a margin).
    pub(crate) bounds: (V3, V3),
    /// Segments (indices into `vessels.segments`) of 0.5–2.5 mm radius, for vessel attachment.
    pub(crate) attachable: Vec<usize>,
}

/// A placed nodule: ground truth (centre in local mm) and prims.
pub(crate) struct Placed {
    pub(crate) nodule: Nodule,
    pub(crate) centre_local: V3,
    pub(crate) bound: f64,
    pub(crate) prims: Vec<Prim>,
}

const ATTEMPTS: usize = 40;
const POSITIONS: usize = 150;

/// Place `opts.nodules` nodules, one random stream per nodule.
pub(crate) fn place_all(
    opts: &PhantomOptions,
    scene: &Scene<'_>,
) -> Result<Vec<Placed>, PhantomError> {
    let mut placed: Vec<Placed> = Vec::with_capacity(opts.nodules);
    let px = opts.in_plane_spacing_mm();
    for i in 0..opts.nodules {
        let mut rng = rng_for(opts.seed, "nodule", i as u64);
        let mut done = None;
        for _ in 0..ATTEMPTS {
            let d_mm = draw_diameter_mm(opts.size_mix, px, &mut rng);
            let density = pick(&opts.density_mix.weights(), &mut rng);
            let attachment = pick(&opts.attachment_mix.weights(), &mut rng);
            let r_eq = 0.5 * d_mm;
            let (template, bound, shape) = make_shape(r_eq, &mut rng);
            let Some((c, side)) = find_centre(scene, &placed, attachment, r_eq, bound, &mut rng)
            else {
                continue;
            };
            let tex_seed = derive_seed(opts.seed, "nodule-texture", i as u64);
            let (prims, peak) = paint(
                &template,
                c,
                density,
                tex_seed,
                &scene.anatomy.psf,
                &mut rng,
            );
            let diameter_vox = d_mm / px;
            let nodule = Nodule {
                id: i as u32 + 1,
                centre: scene.anatomy.to_world(c),
                diameter_mm: d_mm,
                diameter_vox,
                density,
                attachment,
                shape,
                peak_hu: peak,
                lung: if side == 0 { Lung::Right } else { Lung::Left },
                reference: diameter_vox >= opts.reference_min_vox,
            };
            done = Some(Placed {
                nodule,
                centre_local: c,
                bound,
                prims,
            });
            break;
        }
        match done {
            Some(p) => placed.push(p),
            None => {
                return Err(PhantomError::Placement {
                    seed: opts.seed,
                    placed: placed.len(),
                    requested: opts.nodules,
                    reason: format!(
                        "no room for nodule {} after {ATTEMPTS} size draws; use fewer nodules, \
                         a smaller size mix or a larger field of view",
                        i + 1
                    ),
                })
            }
        }
    }
    Ok(placed)
}

fn paint(
    template: &Template,
    c: V3,
    density: Density,
    tex_seed: u64,
    psf: &crate::shapes::Psf,
    rng: &mut impl Rng,
) -> (Vec<Prim>, f64) {
    let tex = ValueNoise::new(tex_seed, 1.5);
    let nod = |hu: f64, texture_hu: f64| Paint::Nodule {
        hu,
        texture_hu,
        texture: tex,
    };
    match density {
        Density::Solid => {
            let hu = uniform(rng, 40.0, 100.0);
            (vec![Prim::new(template.at(c, 1.0), nod(hu, 12.0), psf)], hu)
        }
        Density::GroundGlass => {
            let hu = uniform(rng, -600.0, -300.0);
            (vec![Prim::new(template.at(c, 1.0), nod(hu, 50.0), psf)], hu)
        }
        Density::PartSolid => {
            let halo = uniform(rng, -600.0, -350.0);
            let core = uniform(rng, 20.0, 80.0);
            let f = uniform(rng, 0.35, 0.6);
            (
                vec![
                    Prim::new(template.at(c, 1.0), nod(halo, 50.0), psf),
                    Prim::new(template.at(c, f), nod(core, 12.0), psf),
                ],
                core,
            )
        }
    }
}

fn free_of_others(placed: &[Placed], c: V3, bound: f64) -> bool {
    placed
        .iter()
        .all(|p| norm(sub(p.centre_local, c)) >= p.bound + bound + 2.0)
}

fn inside_bounds(scene: &Scene<'_>, c: V3, bound: f64) -> bool {
    (0..3).all(|i| c[i] - bound >= scene.bounds.0[i] && c[i] + bound <= scene.bounds.1[i])
}

fn random_lung_point(scene: &Scene<'_>, rng: &mut impl Rng) -> (V3, usize) {
    let side = usize::from(rng.random::<bool>());
    let (lo, hi) = scene.anatomy.lung_box(side);
    let p = std::array::from_fn(|i| uniform(rng, lo[i], hi[i]));
    (p, side)
}

fn find_centre(
    scene: &Scene<'_>,
    placed: &[Placed],
    attachment: Attachment,
    r_eq: f64,
    bound: f64,
    rng: &mut impl Rng,
) -> Option<(V3, usize)> {
    let a = scene.anatomy;
    for _ in 0..POSITIONS {
        let candidate = match attachment {
            Attachment::Isolated => {
                let (p, _) = random_lung_point(scene, rng);
                let (sd, side) = a.lung_sd_local(p);
                if sd > -(bound + 2.0) {
                    continue;
                }
                if scene.vessels.clearance(p, bound, 0.3, 5.0) < 1.0
                    || scene.airways.clearance(p, bound, 0.0, 5.0) < 1.5
                {
                    continue;
                }
                (p, side)
            }
            Attachment::Vessel => {
                if scene.attachable.is_empty() {
                    return None;
                }
                let s: &Capsule = &scene.vessels.segments
                    [scene.attachable[rng.random_range(0..scene.attachable.len())]];
                let t = uniform(rng, 0.2, 0.8);
                let axis = crate::shapes::lerp3(s.a, s.b, t);
                let dir = crate::shapes::normalize(sub(s.b, s.a));
                let u = perpendicular(dir);
                let w = crate::shapes::cross(dir, u);
                let ang = uniform(rng, 0.0, std::f64::consts::TAU);
                let n = add(scale(u, ang.cos()), scale(w, ang.sin()));
                let p = add(axis, scale(n, r_eq + 0.2 * s.radius_at(t)));
                let (sd, side) = a.lung_sd_local(p);
                if sd > -(0.7 * bound + 1.0) || scene.airways.clearance(p, bound, 0.0, 5.0) < 1.0 {
                    continue;
                }
                (p, side)
            }
            Attachment::Pleura => {
                let (mut p, _) = random_lung_point(scene, rng);
                let target = -uniform(rng, 0.6, 0.95) * r_eq;
                let mut ok = false;
                for _ in 0..6 {
                    let (sd, _) = a.lung_sd_local(p);
                    if sd > 40.0 {
                        break;
                    }
                    if (sd - target).abs() < 0.15 {
                        ok = true;
                        break;
                    }
                    let h = 0.5;
                    let g: V3 = std::array::from_fn(|i| {
                        let mut q1 = p;
                        let mut q0 = p;
                        q1[i] += h;
                        q0[i] -= h;
                        (a.lung_sd_local(q1).0 - a.lung_sd_local(q0).0) / (2.0 * h)
                    });
                    let gn = norm(g);
                    if gn < 1e-6 {
                        break;
                    }
                    p = sub(p, scale(g, (sd - target) / (gn * gn)));
                }
                if !ok {
                    continue;
                }
                let (sd, side) = a.lung_sd_local(p);
                if sd >= 0.0 {
                    continue;
                }
                // Mostly costal or mediastinal pleura (abutting the wall within the axial
                // slice, the classic look); a quarter may sit on the diaphragm or apex.
                let h = 0.5;
                let (mut up, mut down) = (p, p);
                up[2] += h;
                down[2] -= h;
                let gz = (a.lung_sd_local(up).0 - a.lung_sd_local(down).0) / (2.0 * h);
                if gz.abs() > 0.7 && rng.random::<f64>() < 0.75 {
                    continue;
                }
                (p, side)
            }
        };
        let (p, side) = candidate;
        if inside_bounds(scene, p, bound) && free_of_others(placed, p, bound) {
            return Some((p, side));
        }
    }
    None
}
