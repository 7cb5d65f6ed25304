//! The analytic chest: body, chest wall, thoracic cavity, lungs, mediastinum, diaphragm, heart,
//! great vessels, airways' central part and skeleton.
//!
//! Everything is laid out in a *local* frame in mm: `x` and `y` from the body's centre (LPS
//! directions: `+x` patient left, `+y` posterior), `z` from the bottom edge of the field of view
//! (`+z` superior). Sizes are designed for a 358 x 358 x 300 mm field of view and scaled to the
//! requested one (and by a per-seed patient size), so a small test phantom is a small chest.

use rand::Rng;
use speck_volume::WorldPoint;

use crate::render::{Geom, Paint, Prim};
use crate::rng::{rng_for, uniform, ValueNoise};
use crate::shapes::{ellipse_sd, rotation_zy, Capsule, Ellipsoid, Psf, ZCylinder, V3};
use crate::truth::Lung;

/// Attenuation of every tissue (HU, before noise); some are drawn per seed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TissueHu {
    pub(crate) air: f64,
    pub(crate) fat: f64,
    pub(crate) muscle: f64,
    pub(crate) mediastinal_fat: f64,
    pub(crate) liver: f64,
    pub(crate) spleen: f64,
    pub(crate) lung: f64,
    pub(crate) lung_gradient: f64,
    pub(crate) lung_texture_coarse: f64,
    pub(crate) lung_texture_fine: f64,
    pub(crate) blood: f64,
    pub(crate) aorta: f64,
    pub(crate) myocardium: f64,
    pub(crate) bone_cortex: f64,
    pub(crate) bone_marrow: f64,
    pub(crate) cartilage: f64,
    pub(crate) disc: f64,
    pub(crate) csf: f64,
    pub(crate) airway_wall: f64,
    pub(crate) table: f64,
}

/// The lung envelope of one side at mid height; it tapers to the apex.
#[derive(Debug, Clone, Copy)]
struct LungEnvelope {
    cx: f64,
    cy: f64,
    a: f64,
    b: f64,
    z_taper: f64,
    z_apex: f64,
}

/// One diaphragm dome: `z(x, y) = top − drop·(dx² + dy²) − posterior·max(0, dy)²`, with `dx`, `dy`
/// normalised by the cavity's semi-axes.
#[derive(Debug, Clone, Copy)]
struct Dome {
    cx: f64,
    cy: f64,
    top: f64,
    drop: f64,
    posterior: f64,
}

/// A tube the lungs keep clear of (great vessels, trachea, main bronchi, oesophagus).
#[derive(Debug, Clone, Copy)]
struct Exclusion {
    cap: Capsule,
    margin: f64,
}

/// Points where the trees of one lung start, and where they join the mediastinum.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Hilum {
    pub(crate) artery: V3,
    pub(crate) vein: V3,
    pub(crate) bronchus: V3,
}

/// The chest model of one seed.
#[derive(Debug, Clone)]
pub(crate) struct Anatomy {
    /// World position of the local origin.
    offset: V3,
    /// Field-of-view height (mm).
    pub(crate) h: f64,
    /// In-plane scale of lengths (reference 358 mm FOV, patient size included).
    pub(crate) k: f64,
    body: (f64, f64, f64, f64),
    back_y: f64,
    fat_mm: f64,
    cavity_c: (f64, f64),
    cavity_ab: (f64, f64),
    med_x: f64,
    med_w: (f64, f64, f64),
    med_y: f64,
    envelopes: [LungEnvelope; 2],
    domes: [Dome; 2],
    pub(crate) spine: (f64, f64, f64),
    heart: Ellipsoid,
    exclusions: Vec<Exclusion>,
    pub(crate) hila: [Hilum; 2],
    table: (f64, f64, f64),
    pub(crate) hu: TissueHu,
    tex_coarse: ValueNoise,
    tex_fine: ValueNoise,
    tex_micro: ValueNoise,
    pub(crate) psf: Psf,
    /// Mediastinal structures (painted over the background), built with the anatomy.
    structures: Vec<Prim>,
}

fn smoothstep(e0: f64, e1: f64, x: f64) -> f64 {
    let t = ((x - e0) / (e1 - e0)).clamp(0.0, 1.0);
    t * t * (3.0 - 2.0 * t)
}

/// Per-slice constants of the background model.
#[derive(Debug, Clone)]
pub(crate) struct SliceCtx {
    z: f64,
    cav_ab: (f64, f64),
    env: [Option<(f64, f64, f64, f64)>; 2],
    med_w_mid: f64,
    heart: bool,
    excl: Vec<usize>,
}

impl Anatomy {
    /// Build the anatomy for a field of view `fov_mm` (`[z, y, x]`) whose bottom edge is at world
    /// z `z_bottom` and whose in-plane centre is at world `(cx, cy)`.
    pub(crate) fn new(
        seed: u64,
        fov_mm: [f64; 3],
        centre: (f64, f64),
        z_bottom: f64,
        psf: Psf,
    ) -> Self {
        let mut rng = rng_for(seed, "anatomy", 0);
        let h = fov_mm[0];
        let patient = uniform(&mut rng, 0.88, 1.04);
        let kx = fov_mm[2] / 358.0 * patient;
        let ky = fov_mm[1] / 358.0 * patient;
        let k = kx.min(ky);
        let hu = TissueHu {
            air: -1000.0,
            fat: uniform(&mut rng, -115.0, -90.0),
            muscle: uniform(&mut rng, 45.0, 70.0),
            mediastinal_fat: uniform(&mut rng, -110.0, -75.0),
            liver: uniform(&mut rng, 55.0, 95.0),
            spleen: uniform(&mut rng, 40.0, 60.0),
            lung: uniform(&mut rng, -920.0, -870.0),
            lung_gradient: uniform(&mut rng, 20.0, 50.0),
            lung_texture_coarse: uniform(&mut rng, 15.0, 25.0),
            lung_texture_fine: uniform(&mut rng, 20.0, 32.0),
            blood: uniform(&mut rng, 40.0, 330.0),
            aorta: 0.0,
            myocardium: uniform(&mut rng, 35.0, 60.0),
            bone_cortex: uniform(&mut rng, 750.0, 1100.0),
            bone_marrow: uniform(&mut rng, 260.0, 420.0),
            cartilage: uniform(&mut rng, 90.0, 160.0),
            disc: uniform(&mut rng, 70.0, 110.0),
            csf: uniform(&mut rng, 5.0, 25.0),
            airway_wall: uniform(&mut rng, 0.0, 40.0),
            table: uniform(&mut rng, 150.0, 350.0),
        };
        let hu = TissueHu {
            aorta: hu.blood + uniform(&mut rng, 0.0, 60.0),
            ..hu
        };
        // Body and chest wall.
        let (bx, by) = (
            uniform(&mut rng, -6.0, 6.0) * k,
            (8.0 + uniform(&mut rng, -5.0, 5.0)) * k,
        );
        let a = 160.0 * kx * uniform(&mut rng, 0.92, 1.06);
        let b = 115.0 * ky * uniform(&mut rng, 0.92, 1.06);
        let back_y = by + 0.9 * b;
        let fat_mm = uniform(&mut rng, 7.0, 20.0) * k;
        let r_vb = 18.0 * k;
        let y_vb = back_y - 62.0 * k;
        let cav_front = by - b + fat_mm + 11.0 * k;
        let cav_back = y_vb + 14.0 * k;
        let cavity_c = (bx, 0.5 * (cav_front + cav_back));
        let cavity_ab = (a - fat_mm - 17.0 * k, 0.5 * (cav_back - cav_front));
        let (ac, bc) = cavity_ab;
        let cyc = cavity_c.1;
        // Mediastinum band.
        let med_x = bx + 0.03 * ac;
        let med_w = (9.0 * k, 26.0 * k * uniform(&mut rng, 0.9, 1.15), 18.0 * k);
        let med_y = cyc - 0.1 * bc;
        // Lungs.
        let z_apex_r = h * uniform(&mut rng, 0.90, 0.95);
        let z_apex_l = z_apex_r - h * uniform(&mut rng, 0.0, 0.02);
        let envelope = |sgn: f64, z_apex: f64| LungEnvelope {
            cx: bx + sgn * 0.5 * ac,
            cy: cyc,
            a: 0.62 * ac,
            b: 1.1 * bc,
            z_taper: z_apex - 0.22 * h,
            z_apex,
        };
        let envelopes = [envelope(-1.0, z_apex_r), envelope(1.0, z_apex_l)];
        let dome_top_r = h * uniform(&mut rng, 0.32, 0.38);
        let dome = |sgn: f64, top: f64| Dome {
            cx: bx + sgn * 0.45 * ac,
            cy: cyc - 0.05 * bc,
            top,
            drop: 0.16 * h,
            posterior: 0.10 * h,
        };
        let domes = [
            dome(-1.0, dome_top_r),
            dome(1.0, dome_top_r - h * uniform(&mut rng, 0.02, 0.05)),
        ];
        // Heart: long axis towards left-anterior-inferior.
        let hs = uniform(&mut rng, 0.9, 1.1);
        let heart = Ellipsoid::new(
            [bx + 22.0 * k, cyc - 0.22 * bc, domes[1].top + 0.08 * h],
            [
                (60.0 * k * hs).min(0.45 * ac),
                (46.0 * k * hs).min(0.6 * bc),
                (0.17 * h * hs).min(60.0 * k * hs),
            ],
            rotation_zy(-0.6, 0.4),
        );
        let w_mid = med_w.1;
        let y_es = y_vb - r_vb - 9.0 * k;
        let y_tr = y_es - 17.0 * k;
        let hz = |f: f64| f * h;
        let hila = [
            Hilum {
                artery: [med_x - w_mid - 14.0 * k, cyc - 0.02 * bc, hz(0.60)],
                vein: [med_x - w_mid - 12.0 * k, cyc + 0.08 * bc, hz(0.50)],
                bronchus: [med_x - w_mid - 12.0 * k, cyc + 0.15 * bc, hz(0.625)],
            },
            Hilum {
                artery: [med_x + w_mid + 14.0 * k, cyc + 0.02 * bc, hz(0.62)],
                vein: [med_x + w_mid + 12.0 * k, cyc + 0.10 * bc, hz(0.51)],
                bronchus: [med_x + w_mid + 12.0 * k, cyc + 0.18 * bc, hz(0.64)],
            },
        ];
        let table_y = back_y + 6.0 * k;
        let mut anatomy = Self {
            offset: [centre.0, centre.1, z_bottom],
            h,
            k,
            body: (bx, by, a, b),
            back_y,
            fat_mm,
            cavity_c,
            cavity_ab,
            med_x,
            med_w,
            med_y,
            envelopes,
            domes,
            spine: (bx, y_vb, r_vb),
            heart,
            exclusions: Vec::new(),
            hila,
            table: (table_y, 0.42 * fov_mm[2], 20.0 * k),
            hu,
            tex_coarse: ValueNoise::new(crate::rng::derive_seed(seed, "texture", 0), 6.0),
            tex_fine: ValueNoise::new(crate::rng::derive_seed(seed, "texture", 1), 2.0),
            tex_micro: ValueNoise::new(crate::rng::derive_seed(seed, "texture", 2), 0.9),
            psf,
            structures: Vec::new(),
        };
        anatomy.build_structures(&mut rng, y_es, y_tr);
        anatomy
    }

    /// World ↔ local.
    pub(crate) fn to_local(&self, p: WorldPoint) -> V3 {
        [
            p.x_mm - self.offset[0],
            p.y_mm - self.offset[1],
            p.z_mm - self.offset[2],
        ]
    }

    pub(crate) fn to_world(&self, p: V3) -> WorldPoint {
        WorldPoint::new(
            p[0] + self.offset[0],
            p[1] + self.offset[1],
            p[2] + self.offset[2],
        )
    }

    pub(crate) fn offset(&self) -> V3 {
        self.offset
    }

    /// The structures (tubes, heart, skeleton) to paint over the background.
    pub(crate) fn take_structures(&mut self) -> Vec<Prim> {
        std::mem::take(&mut self.structures)
    }

    fn cavity_ab_at(&self, z: f64) -> (f64, f64) {
        let s = smoothstep(0.72 * self.h, 1.0 * self.h, z);
        (
            self.cavity_ab.0 * (1.0 - 0.22 * s),
            self.cavity_ab.1 * (1.0 - 0.12 * s),
        )
    }

    fn envelope_at(&self, side: usize, z: f64) -> Option<(f64, f64, f64, f64)> {
        let e = &self.envelopes[side];
        if z >= e.z_apex {
            return None;
        }
        let t = ((z - e.z_taper) / (e.z_apex - e.z_taper)).clamp(0.0, 1.0);
        let f = (1.0 - t * t).sqrt();
        if f < 0.02 {
            return None;
        }
        // The apex sits posterior and lateral of the envelope's centre.
        let sgn = if side == 0 { -1.0 } else { 1.0 };
        Some((
            e.cx + sgn * 0.15 * e.a * t,
            e.cy + 0.25 * e.b * t,
            e.a * f,
            e.b * f,
        ))
    }

    /// Precompute what a slice at local `z` needs.
    pub(crate) fn slice(&self, z: f64) -> SliceCtx {
        let hb = self.heart.aabb().grow(4.0);
        let excl = self
            .exclusions
            .iter()
            .enumerate()
            .filter(|(_, e)| {
                let b = e.cap.aabb().grow(e.margin + 4.0);
                z >= b.min[2] && z <= b.max[2]
            })
            .map(|(i, _)| i)
            .collect();
        let upper = smoothstep(0.66 * self.h, 0.8 * self.h, z);
        SliceCtx {
            z,
            cav_ab: self.cavity_ab_at(z),
            env: [self.envelope_at(0, z), self.envelope_at(1, z)],
            med_w_mid: self.med_w.1 + (self.med_w.2 - self.med_w.1) * upper,
            heart: z >= hb.min[2] && z <= hb.max[2],
            excl,
        }
    }

    fn dome_sd(&self, side: usize, x: f64, y: f64, z: f64) -> f64 {
        let d = &self.domes[side];
        let (ac, bc) = self.cavity_ab;
        let dx = (x - d.cx) / ac;
        let dy = (y - d.cy) / bc;
        let post = dy.max(0.0);
        let zd = d.top - d.drop * (dx * dx + dy * dy) - d.posterior * post * post;
        let gx = -2.0 * d.drop * dx / ac;
        let gy = (-2.0 * d.drop * dy - 2.0 * d.posterior * post) / bc;
        (zd - z) / (1.0 + gx * gx + gy * gy).sqrt()
    }

    fn side_of(&self, x: f64) -> usize {
        usize::from(x >= self.med_x)
    }

    /// Signed distance to the lung surface at local `p` given the slice context, and the side.
    pub(crate) fn lung_sd(&self, ctx: &SliceCtx, x: f64, y: f64) -> (f64, usize) {
        let side = self.side_of(x);
        let z = ctx.z;
        let Some((ex, ey, ea, eb)) = ctx.env[side] else {
            return (1e3, side);
        };
        let mut sd = ellipse_sd(x - ex, y - ey, ea, eb);
        sd = sd.max(ellipse_sd(
            x - self.cavity_c.0,
            y - self.cavity_c.1,
            ctx.cav_ab.0,
            ctx.cav_ab.1,
        ));
        if sd > 30.0 {
            return (sd, side);
        }
        // Mediastinal band.
        let dy = (y - self.med_y) / (0.55 * self.cavity_ab.1);
        let w = self.med_w.0 + (ctx.med_w_mid - self.med_w.0) * (-dy * dy).exp();
        sd = sd.max(w - (x - self.med_x).abs());
        // Spine.
        let (sx, sy, sr) = self.spine;
        let ds = ((x - sx).powi(2) + (y - sy).powi(2)).sqrt();
        sd = sd.max(sr + 4.0 * self.k - ds);
        sd = sd.max(self.dome_sd(side, x, y, z));
        let p = [x, y, z];
        if ctx.heart {
            sd = sd.max(3.0 * self.k - self.heart.sd(p));
        }
        for &i in &ctx.excl {
            let e = &self.exclusions[i];
            sd = sd.max(e.margin - e.cap.sd(p));
        }
        (sd, side)
    }

    /// Lung signed distance at a local point (slower: builds the slice context).
    pub(crate) fn lung_sd_local(&self, p: V3) -> (f64, usize) {
        let ctx = self.slice(p[2]);
        self.lung_sd(&ctx, p[0], p[1])
    }

    /// Signed distance (mm) to the heart's outer surface, negative inside.
    #[cfg(test)]
    pub(crate) fn heart_sd(&self, p: V3) -> f64 {
        self.heart.sd(p)
    }

    pub(crate) fn lung_sd_world(&self, p: WorldPoint) -> f64 {
        self.lung_sd_local(self.to_local(p)).0
    }

    pub(crate) fn lung_at_world(&self, p: WorldPoint) -> Option<Lung> {
        let (sd, side) = self.lung_sd_local(self.to_local(p));
        (sd < 0.0).then_some(if side == 0 { Lung::Right } else { Lung::Left })
    }

    /// A box (local mm) containing lung `side`.
    pub(crate) fn lung_box(&self, side: usize) -> ([f64; 3], [f64; 3]) {
        let (ac, bc) = self.cavity_ab;
        let (cx, cy) = self.cavity_c;
        let x = if side == 0 {
            (cx - ac, self.med_x)
        } else {
            (self.med_x, cx + ac)
        };
        let zmin = self.domes[side].top - self.domes[side].drop * 2.0 - self.domes[side].posterior;
        (
            [x.0, cy - bc, zmin.max(0.0)],
            [x.1, cy + bc, self.envelopes[side].z_apex],
        )
    }

    /// Half-width in x of the body at local `y` (0 when the row misses the body), plus `reach`.
    pub(crate) fn body_half_width(&self, y: f64, reach: f64) -> Option<(f64, f64)> {
        let (bx, by, a, b) = self.body;
        if y > self.back_y + reach {
            return None;
        }
        let v = (y - by) / (b + reach);
        if v.abs() >= 1.0 {
            return None;
        }
        let hw = (a + reach) * (1.0 - v * v).sqrt();
        Some((bx - hw, bx + hw))
    }

    /// `(y_min, y_max, half width)` of the table band (local mm).
    pub(crate) fn table_rows(&self) -> (f64, f64, f64) {
        let (ty, hw, lift) = self.table;
        (ty - lift - 3.0, ty + 3.0, hw)
    }

    /// The CT table at local `(x, y)`: occupancy 0..1.
    pub(crate) fn table_occupancy(&self, x: f64, y: f64) -> f64 {
        let (ty, hw, lift) = self.table;
        if x.abs() > hw {
            return 0.0;
        }
        let u = x / hw;
        let yc = ty - lift * u * u;
        self.psf.edge((y - yc).abs() - 1.5)
    }

    /// The background HU at local `(x, y)` in the slice, and the lung label (0, 1 right, 2 left).
    pub(crate) fn background(&self, ctx: &SliceCtx, x: f64, y: f64) -> (f64, u8) {
        let hu = &self.hu;
        let (bx, by, a, b) = self.body;
        let mut sd_body = ellipse_sd(x - bx, y - by, a, b).max(y - self.back_y);
        let mut v = hu.air;
        let o_body = self.psf.edge(sd_body);
        if o_body <= 0.0 {
            return (v, 0);
        }
        v += (hu.fat - v) * o_body;
        sd_body = ellipse_sd(x - bx, y - by, a - self.fat_mm, b - self.fat_mm)
            .max(y - self.back_y + self.fat_mm * 0.6);
        let o_m = self.psf.edge(sd_body);
        if o_m <= 0.0 {
            return (v, 0);
        }
        v += (hu.muscle - v) * o_m;
        let sd_cav = ellipse_sd(
            x - self.cavity_c.0,
            y - self.cavity_c.1,
            ctx.cav_ab.0,
            ctx.cav_ab.1,
        );
        let o_c = self.psf.edge(sd_cav);
        if o_c <= 0.0 {
            return (v, 0);
        }
        // Cavity content: mediastinal fat above the diaphragm, liver/spleen below.
        let side = self.side_of(x);
        let below = self.psf.edge(-self.dome_sd(side, x, y, ctx.z));
        let abdomen = if x < self.cavity_c.0 + 0.15 * self.cavity_ab.0 {
            hu.liver
        } else {
            hu.spleen
        };
        let cav = hu.mediastinal_fat + (abdomen - hu.mediastinal_fat) * below;
        v += (cav - v) * o_c;
        let (sd_lung, side) = self.lung_sd(ctx, x, y);
        let o_l = self.psf.edge(sd_lung);
        if o_l <= 0.0 {
            return (v, 0);
        }
        let p = [x, y, ctx.z];
        let grad = (y - self.cavity_c.1) / self.cavity_ab.1;
        let lung = hu.lung
            + hu.lung_gradient * grad
            + hu.lung_texture_coarse * f64::from(self.tex_coarse.at(p))
            + hu.lung_texture_fine * f64::from(self.tex_fine.at(p))
            + 0.7 * hu.lung_texture_fine * f64::from(self.tex_micro.at(p));
        v += (lung - v) * o_l;
        (v, if sd_lung < 0.0 { side as u8 + 1 } else { 0 })
    }

    /// Mediastinal tubes, heart, skeleton; also registers the tubes the lungs must avoid.
    fn build_structures(&mut self, rng: &mut impl Rng, y_es: f64, y_tr: f64) {
        let k = self.k;
        let h = self.h;
        let hu = self.hu;
        let bc = self.cavity_ab.1;
        let (cxc, cyc) = self.cavity_c;
        let (sx, y_vb, r_vb) = self.spine;
        let mut over: Vec<Prim> = Vec::new();
        let mut vessel: Vec<Prim> = Vec::new();
        let mut excl: Vec<Exclusion> = Vec::new();
        let psf = self.psf;
        let cap = |a: V3, b: V3, ra: f64, rb: f64| Capsule::new(a, b, ra, rb);
        let chain = |pts: &[V3], r: &[f64]| -> Vec<Capsule> {
            pts.windows(2)
                .zip(r.windows(2))
                .map(|(p, r)| Capsule::new(p[0], p[1], r[0], r[1]))
                .collect()
        };
        // Aorta: ascending, arch, descending (left-anterolateral of the spine).
        let aorta_pts = [
            [cxc - 12.0 * k, cyc - 0.30 * bc, 0.47 * h],
            [cxc - 10.0 * k, cyc - 0.28 * bc, 0.68 * h],
            [cxc + 2.0 * k, cyc - 0.05 * bc, 0.76 * h],
            [cxc + 18.0 * k, cyc + 0.30 * bc, 0.74 * h],
            [sx + 30.0 * k, y_vb - 12.0 * k, 0.64 * h],
            [sx + 26.0 * k, y_vb - 14.0 * k, -0.05 * h],
        ];
        let aorta_r = [15.0 * k, 14.0 * k, 13.0 * k, 12.5 * k, 12.0 * k, 11.0 * k];
        for c in chain(&aorta_pts, &aorta_r) {
            over.push(Prim::new(Geom::Capsule(c), Paint::Over(hu.aorta), &psf));
            excl.push(Exclusion {
                cap: c,
                margin: 2.0 * k,
            });
        }
        // Superior vena cava.
        let svc = cap(
            [cxc - 28.0 * k, cyc - 0.22 * bc, 1.05 * h],
            [cxc - 26.0 * k, cyc - 0.25 * bc, 0.50 * h],
            9.0 * k,
            9.0 * k,
        );
        over.push(Prim::new(Geom::Capsule(svc), Paint::Over(hu.blood), &psf));
        excl.push(Exclusion {
            cap: svc,
            margin: 2.0 * k,
        });
        // Oesophagus.
        let es = cap(
            [sx + 3.0 * k, y_es, 1.05 * h],
            [sx + 8.0 * k, y_es + 2.0 * k, 0.22 * h],
            7.0 * k,
            7.0 * k,
        );
        over.push(Prim::new(
            Geom::Capsule(es),
            Paint::Over(hu.muscle - 5.0),
            &psf,
        ));
        excl.push(Exclusion {
            cap: es,
            margin: 2.0 * k,
        });
        // Pulmonary trunk and arteries to the hila; veins from the hila to the left atrium.
        let pa_split = [cxc + 10.0 * k, cyc - 0.2 * bc, 0.60 * h];
        let pa = [
            cap(
                [cxc + 16.0 * k, cyc - 0.42 * bc, 0.46 * h],
                pa_split,
                13.0 * k,
                12.0 * k,
            ),
            cap(
                pa_split,
                [cxc - 12.0 * k, cyc - 0.02 * bc, 0.60 * h],
                9.5 * k,
                8.5 * k,
            ),
            cap(
                [cxc - 12.0 * k, cyc - 0.02 * bc, 0.60 * h],
                self.hila[0].artery,
                8.5 * k,
                6.0 * k,
            ),
            cap(pa_split, self.hila[1].artery, 9.5 * k, 6.0 * k),
        ];
        let la = [cxc + 6.0 * k, cyc + 0.05 * bc, 0.47 * h];
        let veins = [
            cap(la, self.hila[0].vein, 6.5 * k, 5.5 * k),
            cap(la, self.hila[1].vein, 6.5 * k, 5.5 * k),
        ];
        for c in pa.into_iter().chain(veins) {
            vessel.push(Prim::new(Geom::Capsule(c), Paint::Vessel, &psf));
            excl.push(Exclusion {
                cap: c,
                margin: 1.5 * k,
            });
        }
        // Trachea and main bronchi (wall, then lumen).
        let carina = [sx, y_tr, 0.64 * h];
        let trachea = [
            cap([sx, y_tr, 1.05 * h], carina, 9.0 * k, 8.5 * k),
            cap(carina, self.hila[0].bronchus, 7.0 * k, 5.5 * k),
            cap(carina, self.hila[1].bronchus, 6.5 * k, 5.0 * k),
        ];
        let wall = 2.0 * k;
        for c in trachea {
            let mut w = c;
            w.ra += wall;
            w.rb += wall;
            over.push(Prim::new(
                Geom::Capsule(w),
                Paint::Over(hu.airway_wall),
                &psf,
            ));
            excl.push(Exclusion {
                cap: w,
                margin: 1.5 * k,
            });
        }
        for c in trachea {
            over.push(Prim::new(Geom::Capsule(c), Paint::Over(hu.air), &psf));
        }
        // Heart: myocardium, contrast-filled chambers, septum.
        let heart = self.heart;
        over.push(Prim::new(
            Geom::Ellipsoid(heart),
            Paint::Over(hu.myocardium),
            &psf,
        ));
        let chambers = heart.offset(-9.0 * k);
        over.push(Prim::new(
            Geom::Ellipsoid(chambers),
            Paint::Over(hu.blood),
            &psf,
        ));
        let septum = Ellipsoid::new(
            heart.c,
            [0.85 * heart.s[0], 4.0 * k, 0.85 * heart.s[2]],
            heart.rot,
        );
        over.push(Prim::new(
            Geom::Ellipsoid(septum),
            Paint::Over(hu.myocardium),
            &psf,
        ));
        // Spine: discs, vertebral bodies (cortex, marrow), arches, canal, processes.
        let period = 0.093 * h;
        let disc_h = 0.2 * period;
        let y_canal = y_vb + r_vb + 9.0 * k;
        let mut cortex: Vec<Prim> = Vec::new();
        let mut marrow: Vec<Prim> = Vec::new();
        let mut z0 = -uniform(rng, 0.0, period);
        while z0 < 1.05 * h {
            let z1 = z0 + period - disc_h;
            let body = ZCylinder {
                cx: sx,
                cy: y_vb,
                rx: r_vb,
                ry: r_vb * 0.9,
                z0,
                z1,
            };
            over.push(Prim::new(
                Geom::ZCyl(ZCylinder {
                    z0: z1 - 1.0,
                    z1: z1 + disc_h + 1.0,
                    rx: r_vb - 0.5,
                    ry: r_vb * 0.9 - 0.5,
                    ..body
                }),
                Paint::Over(hu.disc),
                &psf,
            ));
            cortex.push(Prim::new(
                Geom::ZCyl(body),
                Paint::Over(hu.bone_cortex),
                &psf,
            ));
            let m = 1.4 * k.max(0.6);
            marrow.push(Prim::new(
                Geom::ZCyl(ZCylinder {
                    rx: r_vb - m,
                    ry: r_vb * 0.9 - m,
                    z0: z0 + m,
                    z1: z1 - m,
                    ..body
                }),
                Paint::Over(hu.bone_marrow),
                &psf,
            ));
            let arch = ZCylinder {
                cx: sx,
                cy: y_canal,
                rx: 13.0 * k,
                ry: 11.0 * k,
                z0: z0 + 0.1 * period,
                z1: z1 - 0.05 * period,
            };
            cortex.push(Prim::new(
                Geom::ZCyl(arch),
                Paint::Over(hu.bone_cortex),
                &psf,
            ));
            let zc = 0.5 * (arch.z0 + arch.z1);
            let procs = [
                cap(
                    [sx, y_canal + 9.0 * k, zc],
                    [sx, y_canal + 22.0 * k, zc - 0.3 * period],
                    4.0 * k,
                    3.0 * k,
                ),
                cap(
                    [sx - 8.0 * k, y_canal - 2.0 * k, zc],
                    [sx - 28.0 * k, y_canal + 3.0 * k, zc],
                    4.5 * k,
                    4.0 * k,
                ),
                cap(
                    [sx + 8.0 * k, y_canal - 2.0 * k, zc],
                    [sx + 28.0 * k, y_canal + 3.0 * k, zc],
                    4.5 * k,
                    4.0 * k,
                ),
            ];
            for c in procs {
                cortex.push(Prim::new(
                    Geom::Capsule(c),
                    Paint::Over(hu.bone_cortex),
                    &psf,
                ));
            }
            z0 += period;
        }
        // Ribs: 12 per side around the cavity, descending anteriorly; cartilage at the front.
        let rib_r = 4.5 * k;
        let rib_shell = 1.3 * k.max(0.6);
        let mut cartilage: Vec<Prim> = Vec::new();
        for side in [-1.0f64, 1.0] {
            for j in 0..12 {
                let jf = f64::from(j);
                let zp = (0.90 - jf * 0.062) * h + uniform(rng, -0.005, 0.005) * h;
                let drop = (0.30 + 0.006 * jf) * h;
                let phi1 = match j {
                    0..=6 => 2.75,
                    7..=9 => 2.45 - 0.05 * (jf - 7.0),
                    _ => 1.9,
                };
                let n = 18;
                let mut pts: Vec<V3> = Vec::with_capacity(n + 1);
                let mut phi0 = 0.0;
                for i in 0..=n {
                    let off = rib_r + 1.5 * k;
                    if i == 0 {
                        let ca = self.cavity_ab_at(zp).0;
                        phi0 = ((28.0 * k) / (ca + off)).clamp(0.0, 1.0).asin();
                    }
                    let phi = phi0 + (phi1 - phi0) * (i as f64) / (n as f64);
                    let z = zp - drop * (phi / std::f64::consts::PI);
                    let (ca, cb) = self.cavity_ab_at(z);
                    pts.push([
                        cxc + side * (ca + off) * phi.sin(),
                        cyc + (cb + off) * phi.cos(),
                        z,
                    ]);
                }
                let bone_until = if j < 10 {
                    (n as f64 * 0.78) as usize
                } else {
                    n
                };
                for (i, w) in pts.windows(2).enumerate() {
                    let c = cap(w[0], w[1], rib_r, rib_r);
                    if i < bone_until {
                        cortex.push(Prim::new(
                            Geom::Capsule(c),
                            Paint::Over(hu.bone_cortex),
                            &psf,
                        ));
                        let mut m = c;
                        m.ra -= rib_shell;
                        m.rb -= rib_shell;
                        marrow.push(Prim::new(
                            Geom::Capsule(m),
                            Paint::Over(hu.bone_marrow),
                            &psf,
                        ));
                    } else {
                        cartilage.push(Prim::new(
                            Geom::Capsule(c),
                            Paint::Over(hu.cartilage),
                            &psf,
                        ));
                    }
                }
            }
        }
        // Sternum: three parallel bars in front of the cavity.
        let (_, bc_mid) = self.cavity_ab_at(0.65 * h);
        let ys = cyc - bc_mid - 5.5 * k;
        for dx in [-8.0, 0.0, 8.0] {
            let c = cap(
                [cxc + dx * k, ys, 0.45 * h],
                [cxc + dx * k, ys - 2.0 * k, 0.84 * h],
                5.0 * k,
                5.0 * k,
            );
            cortex.push(Prim::new(
                Geom::Capsule(c),
                Paint::Over(hu.bone_cortex),
                &psf,
            ));
            let mut m = c;
            m.ra -= rib_shell;
            m.rb -= rib_shell;
            marrow.push(Prim::new(
                Geom::Capsule(m),
                Paint::Over(hu.bone_marrow),
                &psf,
            ));
        }
        // Scapulae: thin plates in the posterolateral muscle of the upper chest.
        let (bx, by, ba, bb) = self.body;
        for sgn in [-1.0f64, 1.0] {
            let th: f64 = 0.9;
            let (ca, cb) = self.cavity_ab_at(0.8 * h);
            let pc = [
                cxc + sgn * (ca + 8.0 * k) * th.sin(),
                cyc + (cb + 8.0 * k) * th.cos(),
            ];
            let pm = [
                bx + sgn * (ba - self.fat_mm) * th.sin(),
                (by + (bb - self.fat_mm) * th.cos()).min(self.back_y - self.fat_mm),
            ];
            let c = [
                pc[0] + 0.55 * (pm[0] - pc[0]),
                pc[1] + 0.55 * (pm[1] - pc[1]),
                0.8 * h,
            ];
            let t = crate::shapes::normalize([sgn * ba * th.cos(), -bb * th.sin(), 0.0]);
            let rot = [[t[1], -t[0], 0.0], t, [0.0, 0.0, 1.0]];
            let e = Ellipsoid::new(c, [2.5 * k, 40.0 * k, 0.1 * h], rot);
            cortex.push(Prim::new(
                Geom::Ellipsoid(e),
                Paint::Over(0.75 * hu.bone_cortex),
                &psf,
            ));
        }
        let canal = ZCylinder {
            cx: sx,
            cy: y_canal,
            rx: 7.5 * k,
            ry: 7.0 * k,
            z0: -0.1 * h,
            z1: 1.1 * h,
        };
        let mut prims = vessel;
        prims.extend(over);
        prims.extend(cartilage);
        prims.extend(cortex);
        prims.extend(marrow);
        prims.push(Prim::new(Geom::ZCyl(canal), Paint::Over(hu.csf), &psf));
        self.structures = prims;
        self.exclusions = excl;
    }
}
