//! Geometric primitives (world mm, `[x, y, z]` LPS) with signed distances, bounding boxes and a
//! partial-volume model.
//!
//! Every object is rendered through its signed distance `sd` (negative inside, mm) blurred by the
//! scanner's point-spread function, a Gaussian of standard deviation `σ`: the occupancy of a voxel
//! centre is `Φ(−sd/σ)`. For thin tubes and small balls a gain makes the peak exact: the centre of
//! a disc of radius `r` blurred by a 2-D Gaussian is `1 − exp(−r²/2σ²)`, of a ball
//! `erf(r/√2σ) − √(2/π)(r/σ)exp(−r²/2σ²)`; a sub-voxel vessel therefore fades instead of
//! showing at half contrast.

/// 3-vector helpers.
pub(crate) type V3 = [f64; 3];

pub(crate) fn sub(a: V3, b: V3) -> V3 {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}
pub(crate) fn add(a: V3, b: V3) -> V3 {
    [a[0] + b[0], a[1] + b[1], a[2] + b[2]]
}
pub(crate) fn scale(a: V3, s: f64) -> V3 {
    [a[0] * s, a[1] * s, a[2] * s]
}
pub(crate) fn dot(a: V3, b: V3) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}
pub(crate) fn norm(a: V3) -> f64 {
    dot(a, a).sqrt()
}
pub(crate) fn cross(a: V3, b: V3) -> V3 {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}
pub(crate) fn normalize(a: V3) -> V3 {
    let n = norm(a);
    if n > 1e-12 {
        scale(a, 1.0 / n)
    } else {
        [0.0, 0.0, 1.0]
    }
}
pub(crate) fn lerp3(a: V3, b: V3, t: f64) -> V3 {
    [
        a[0] + (b[0] - a[0]) * t,
        a[1] + (b[1] - a[1]) * t,
        a[2] + (b[2] - a[2]) * t,
    ]
}
/// A unit vector perpendicular to `d`.
pub(crate) fn perpendicular(d: V3) -> V3 {
    let helper = if d[0].abs() < 0.8 {
        [1.0, 0.0, 0.0]
    } else {
        [0.0, 1.0, 0.0]
    };
    normalize(cross(d, helper))
}

/// The error function (Abramowitz & Stegun 7.1.26, |error| < 1.5e-7).
pub(crate) fn erf(x: f64) -> f64 {
    let s = x.signum();
    let x = x.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * x);
    let y = 1.0
        - (((((1.061_405_429 * t - 1.453_152_027) * t) + 1.421_413_741) * t - 0.284_496_736) * t
            + 0.254_829_592)
            * t
            * (-x * x).exp();
    s * y
}

/// The standard normal CDF.
pub(crate) fn phi(x: f64) -> f64 {
    0.5 * (1.0 + erf(x * std::f64::consts::FRAC_1_SQRT_2))
}

/// The scanner point-spread function (isotropic Gaussian, σ in mm).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Psf {
    pub(crate) sigma_mm: f64,
    inv_sigma: f64,
}

impl Psf {
    pub(crate) fn new(sigma_mm: f64) -> Self {
        Self {
            sigma_mm,
            inv_sigma: 1.0 / sigma_mm,
        }
    }

    /// Occupancy (0..1) of a point at signed distance `sd` mm from an edge.
    #[inline]
    pub(crate) fn edge(&self, sd: f64) -> f64 {
        let u = -sd * self.inv_sigma;
        if u > 4.0 {
            1.0
        } else if u < -4.0 {
            0.0
        } else {
            phi(u)
        }
    }

    /// How far (mm) outside an edge the blur still matters.
    pub(crate) fn reach_mm(&self) -> f64 {
        4.0 * self.sigma_mm
    }

    /// Peak gain of a tube of radius `r` mm (see the module docs).
    pub(crate) fn tube_gain(&self, r: f64) -> f64 {
        let u = r * self.inv_sigma;
        let exact = 1.0 - (-0.5 * u * u).exp();
        let edge = phi(u);
        if edge > 0.0 {
            (exact / edge).clamp(0.0, 1.0)
        } else {
            0.0
        }
    }

    /// Peak gain of a ball of radius `r` mm.
    pub(crate) fn ball_gain(&self, r: f64) -> f64 {
        let u = r * self.inv_sigma;
        let exact = erf(u * std::f64::consts::FRAC_1_SQRT_2)
            - (2.0 / std::f64::consts::PI).sqrt() * u * (-0.5 * u * u).exp();
        let edge = phi(u);
        if edge > 0.0 {
            (exact / edge).clamp(0.0, 1.0)
        } else {
            0.0
        }
    }
}

/// An axis-aligned box in world mm.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Aabb {
    pub(crate) min: V3,
    pub(crate) max: V3,
}

impl Aabb {
    pub(crate) fn around(c: V3, r: f64) -> Self {
        Self {
            min: [c[0] - r, c[1] - r, c[2] - r],
            max: [c[0] + r, c[1] + r, c[2] + r],
        }
    }
    pub(crate) fn union(self, o: Aabb) -> Self {
        Self {
            min: std::array::from_fn(|i| self.min[i].min(o.min[i])),
            max: std::array::from_fn(|i| self.max[i].max(o.max[i])),
        }
    }
    pub(crate) fn grow(self, m: f64) -> Self {
        Self {
            min: std::array::from_fn(|i| self.min[i] - m),
            max: std::array::from_fn(|i| self.max[i] + m),
        }
    }
}

/// A segment with a radius varying linearly from `ra` (at `a`) to `rb` (at `b`): vessels,
/// airways, ribs, tubes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Capsule {
    pub(crate) a: V3,
    pub(crate) b: V3,
    pub(crate) ra: f64,
    pub(crate) rb: f64,
}

impl Capsule {
    pub(crate) fn new(a: V3, b: V3, ra: f64, rb: f64) -> Self {
        Self { a, b, ra, rb }
    }

    /// `(distance to the axis, parameter t in [0, 1] of the nearest axis point)`.
    #[inline]
    pub(crate) fn axis_distance(&self, p: V3) -> (f64, f64) {
        let pa = sub(p, self.a);
        let ba = sub(self.b, self.a);
        let bb = dot(ba, ba);
        let t = if bb > 0.0 {
            (dot(pa, ba) / bb).clamp(0.0, 1.0)
        } else {
            0.0
        };
        let d = sub(pa, scale(ba, t));
        (norm(d), t)
    }

    /// Radius at parameter `t`.
    #[inline]
    pub(crate) fn radius_at(&self, t: f64) -> f64 {
        self.ra + (self.rb - self.ra) * t
    }

    /// Signed distance (mm), negative inside.
    #[inline]
    pub(crate) fn sd(&self, p: V3) -> f64 {
        let (d, t) = self.axis_distance(p);
        d - self.radius_at(t)
    }

    pub(crate) fn aabb(&self) -> Aabb {
        Aabb::around(self.a, self.ra).union(Aabb::around(self.b, self.rb))
    }

    pub(crate) fn length(&self) -> f64 {
        norm(sub(self.b, self.a))
    }
}

/// A cylinder along z with flat ends (vertebral bodies, discs, the spinal canal).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct ZCylinder {
    pub(crate) cx: f64,
    pub(crate) cy: f64,
    pub(crate) rx: f64,
    pub(crate) ry: f64,
    pub(crate) z0: f64,
    pub(crate) z1: f64,
}

impl ZCylinder {
    #[inline]
    pub(crate) fn sd(&self, p: V3) -> f64 {
        let radial = ellipse_sd(p[0] - self.cx, p[1] - self.cy, self.rx, self.ry);
        let axial = (self.z0 - p[2]).max(p[2] - self.z1);
        radial.max(axial)
    }
    pub(crate) fn aabb(&self) -> Aabb {
        Aabb {
            min: [self.cx - self.rx, self.cy - self.ry, self.z0],
            max: [self.cx + self.rx, self.cy + self.ry, self.z1],
        }
    }
}

/// Approximate signed distance to an axis-aligned ellipse with semi-axes `a`, `b` (first-order:
/// `(ρ − 1)/|∇ρ|`, exact on the boundary, good within a few mm of it).
#[inline]
pub(crate) fn ellipse_sd(x: f64, y: f64, a: f64, b: f64) -> f64 {
    if a <= 1e-9 || b <= 1e-9 {
        return 1e9;
    }
    let (u, v) = (x / a, y / b);
    let rho = (u * u + v * v).sqrt();
    if rho < 1e-9 {
        return -a.min(b);
    }
    let g = ((u / a) * (u / a) + (v / b) * (v / b)).sqrt() / rho;
    (rho - 1.0) / g
}

/// An ellipsoid with semi-axes `s` along the rows of `rot` (an orthonormal matrix whose rows are
/// the ellipsoid's axes in world coordinates).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Ellipsoid {
    pub(crate) c: V3,
    pub(crate) s: V3,
    pub(crate) rot: [V3; 3],
}

impl Ellipsoid {
    pub(crate) fn new(c: V3, s: V3, rot: [V3; 3]) -> Self {
        Self { c, s, rot }
    }

    pub(crate) fn sphere(c: V3, r: f64) -> Self {
        Self::new(
            c,
            [r, r, r],
            [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]],
        )
    }

    /// The same ellipsoid with every semi-axis changed by `m` mm (m < 0 shrinks).
    pub(crate) fn offset(&self, m: f64) -> Self {
        Self::new(
            self.c,
            [
                (self.s[0] + m).max(0.01),
                (self.s[1] + m).max(0.01),
                (self.s[2] + m).max(0.01),
            ],
            self.rot,
        )
    }

    #[inline]
    pub(crate) fn sd(&self, p: V3) -> f64 {
        let d = sub(p, self.c);
        let q = [
            dot(self.rot[0], d),
            dot(self.rot[1], d),
            dot(self.rot[2], d),
        ];
        let u = [q[0] / self.s[0], q[1] / self.s[1], q[2] / self.s[2]];
        let rho = norm(u);
        let min_axis = self.s[0].min(self.s[1]).min(self.s[2]);
        if rho < 1e-9 {
            return -min_axis;
        }
        let g = norm([u[0] / self.s[0], u[1] / self.s[1], u[2] / self.s[2]]) / rho;
        ((rho - 1.0) / g).max(-min_axis)
    }

    pub(crate) fn aabb(&self) -> Aabb {
        // Exact half-extent of a rotated ellipsoid along world axis i: sqrt(sum_k (R_ki s_k)^2).
        let h: V3 = std::array::from_fn(|i| {
            (0..3)
                .map(|k| (self.rot[k][i] * self.s[k]).powi(2))
                .sum::<f64>()
                .sqrt()
        });
        Aabb {
            min: sub(self.c, h),
            max: add(self.c, h),
        }
    }
}

/// A union of spheres (lobulated nodules).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Blobs {
    pub(crate) spheres: Vec<(V3, f64)>,
}

impl Blobs {
    #[inline]
    pub(crate) fn sd(&self, p: V3) -> f64 {
        self.spheres
            .iter()
            .map(|(c, r)| norm(sub(p, *c)) - r)
            .fold(f64::INFINITY, f64::min)
    }

    pub(crate) fn aabb(&self) -> Aabb {
        let mut it = self.spheres.iter().map(|(c, r)| Aabb::around(*c, *r));
        let first = it.next().unwrap_or(Aabb::around([0.0; 3], 0.0));
        it.fold(first, Aabb::union)
    }
}

/// A rotation matrix (rows are the rotated axes) from a uniformly random unit quaternion.
pub(crate) fn random_rotation(rng: &mut impl rand::Rng) -> [V3; 3] {
    let q: [f64; 4] = {
        let mut v = [0.0; 4];
        loop {
            for x in &mut v {
                *x = crate::rng::normal(rng);
            }
            let n = v.iter().map(|x| x * x).sum::<f64>().sqrt();
            if n > 1e-6 {
                for x in &mut v {
                    *x /= n;
                }
                break v;
            }
        }
    };
    let [w, x, y, z] = q;
    [
        [
            1.0 - 2.0 * (y * y + z * z),
            2.0 * (x * y - w * z),
            2.0 * (x * z + w * y),
        ],
        [
            2.0 * (x * y + w * z),
            1.0 - 2.0 * (x * x + z * z),
            2.0 * (y * z - w * x),
        ],
        [
            2.0 * (x * z - w * y),
            2.0 * (y * z + w * x),
            1.0 - 2.0 * (x * x + y * y),
        ],
    ]
}

/// Rotation about z by `a` radians then about the (new) y axis by `b`, as rows.
pub(crate) fn rotation_zy(a: f64, b: f64) -> [V3; 3] {
    let (ca, sa, cb, sb) = (a.cos(), a.sin(), b.cos(), b.sin());
    // Axes of the rotated frame expressed in world coordinates.
    let ex = [ca * cb, sa * cb, -sb];
    let ey = [-sa, ca, 0.0];
    let ez = [ca * sb, sa * sb, cb];
    [ex, ey, ez]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erf_matches_known_values() {
        assert!((erf(0.5) - 0.520_499_877_8).abs() < 1e-6);
        assert!((erf(-1.0) + 0.842_700_792_9).abs() < 1e-6);
        assert!((phi(0.0) - 0.5).abs() < 1e-7);
    }

    #[test]
    fn small_objects_fade_large_ones_do_not() {
        let psf = Psf::new(0.5);
        assert!(psf.tube_gain(0.05) < 0.05);
        assert!(psf.tube_gain(3.0) > 0.99);
        assert!(psf.ball_gain(0.2) < 0.05);
        assert!(psf.ball_gain(3.0) > 0.99);
    }

    #[test]
    #[allow(clippy::needless_range_loop)]
    fn ellipsoid_sd_is_zero_on_surface_and_aabb_contains_it() {
        let rot = rotation_zy(0.7, 0.3);
        let e = Ellipsoid::new([1.0, 2.0, 3.0], [5.0, 3.0, 2.0], rot);
        for k in 0..3 {
            let p = add(e.c, scale(rot[k], e.s[k]));
            assert!(e.sd(p).abs() < 1e-9);
            let b = e.aabb();
            for i in 0..3 {
                assert!(p[i] >= b.min[i] - 1e-9 && p[i] <= b.max[i] + 1e-9);
            }
        }
        assert!(e.sd(e.c) < 0.0);
    }

    #[test]
    fn capsule_sd_tapers() {
        let c = Capsule::new([0.0; 3], [10.0, 0.0, 0.0], 2.0, 1.0);
        assert!((c.sd([0.0, 2.0, 0.0])).abs() < 1e-12);
        assert!((c.sd([10.0, 1.0, 0.0])).abs() < 1e-12);
        assert!((c.sd([5.0, 0.0, 0.0]) + 1.5).abs() < 1e-12);
    }
}
