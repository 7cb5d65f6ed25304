"""Patch banks: cut training patches out of one scan (nodules, random lung, hard negatives).

Hard negatives are placed on purpose where detectors fail: local maxima of a blob filter inside
the lungs that are not nodules (vessels seen end-on, bifurcations), the pleural surface, and the
heart/mediastinum next to the lungs. Nodule patches are stored once per nodule and re-cropped with
random offsets, rotations and scales at training time.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from common import Scan, lung_mask

# Stored patch sizes (z, y, x); training crops are smaller (room for rotation/scale jitter).
COARSE_STORE = (32, 88, 88)
FINE_STORE = (36, 60, 60)


def fast_lung_mask(hu: np.ndarray, spacing) -> np.ndarray:
    """Lung mask computed at (2,4,4)-subsampled resolution and nearest-upsampled (fast, approximate)."""
    f = (2, 4, 4)
    small = hu[::f[0], ::f[1], ::f[2]]
    m = lung_mask(small, np.asarray(spacing) * f)
    big = np.repeat(np.repeat(np.repeat(m, f[0], 0), f[1], 1), f[2], 2)
    return big[: hu.shape[0], : hu.shape[1], : hu.shape[2]]


def crop(vol: np.ndarray, centre, size, fill=-1024) -> np.ndarray:
    """Crop `size` around integer `centre` with constant padding outside the volume."""
    out = np.full(size, fill, dtype=vol.dtype)
    lo = [int(c) - s // 2 for c, s in zip(centre, size)]
    src = tuple(slice(max(l, 0), min(l + s, n)) for l, s, n in zip(lo, size, vol.shape))
    dst = tuple(slice(a.start - l, a.stop - l) for a, l in zip(src, lo))
    out[dst] = vol[src]
    return out


def blob_maxima(hu: np.ndarray, mask: np.ndarray, spacing, rng, n: int) -> np.ndarray:
    """Local maxima of a difference-of-Gaussians blob response (2-6 mm blobs) inside the lungs."""
    sub = (1, 2, 2)
    v = hu[::sub[0], ::sub[1], ::sub[2]].astype(np.float32)
    m = mask[::sub[0], ::sub[1], ::sub[2]]
    sp = np.asarray(spacing) * sub
    v = np.clip(v, -1000, 200)
    s1 = 1.0 / sp
    dog = ndi.gaussian_filter(v, s1) - ndi.gaussian_filter(v, 2.5 * s1)
    dog[~m] = -1e9
    mx = ndi.maximum_filter(dog, size=5)
    pk = np.argwhere((dog == mx) & (dog > 30))
    if len(pk) == 0:
        return np.zeros((0, 3), int)
    vals = dog[tuple(pk.T)]
    order = np.argsort(vals)[::-1][: 4 * n]
    pk = pk[order]
    pick = rng.choice(len(pk), size=min(n, len(pk)), replace=False)
    return pk[pick] * np.array(sub)


def surface_points(mask: np.ndarray, rng, n: int, inner: bool, allowed=None) -> np.ndarray:
    """Points on the lung surface (pleura) or just outside it (chest wall, heart, mediastinum);
    only where `allowed` (bool, same shape as `mask`) is True when it is given."""
    sub = (2, 4, 4)
    m = mask[::sub[0], ::sub[1], ::sub[2]]
    if inner:
        s = m & ~ndi.binary_erosion(m)
    else:
        s = ndi.binary_dilation(m, iterations=2) & ~m
    if allowed is not None:
        s &= allowed[::sub[0], ::sub[1], ::sub[2]]
    pts = np.argwhere(s)
    if len(pts) == 0:
        return np.zeros((0, 3), int)
    pick = rng.choice(len(pts), size=min(n, len(pts)), replace=False)
    return pts[pick] * np.array(sub) + rng.integers(0, 2, size=(min(n, len(pts)), 3)) * np.array(sub) // 2


def extract(scan: Scan, nodules, seed: int, n_random=10, n_blob_coarse=10, n_pleura=6, n_outside=6,
            n_blob_fine=60, n_fine_random=10, n_fine_pleura=10, allowed=None):
    """Return dict(coarse=(patches, meta), fine=(patches, meta)) for one scan.

    meta per patch: dict(kind, centre (z,y,x) in the scan, nodules=[(z,y,x local, d_mm, d_vox, density, attachment)]).
    `allowed` (optional bool array, the scan's shape): negative patches (random, blob, pleura,
    outside) are centred only where it is True (e.g. one side of a real scan held out)."""
    rng = np.random.default_rng(seed)
    hu = scan.hu
    mask = fast_lung_mask(hu, scan.spacing_zyx)
    neg_mask = mask if allowed is None else mask & allowed
    nods = []
    for nd in nodules:
        c = scan.world_to_index(nd.xyz)
        nods.append((c, nd.diameter_mm, nd.diameter_vox, nd.density, nd.attachment, nd.excluded))
    lung_pts = np.argwhere(neg_mask[::2, ::4, ::4]) * np.array([2, 4, 4])
    blobs = blob_maxima(hu, neg_mask, scan.spacing_zyx, rng, n_blob_coarse + n_blob_fine)

    def far_from_nodules(p, k=1.0):
        return all(np.linalg.norm((np.asarray(p) - c) * scan.spacing_zyx) > k * max(d, 3.0) for c, d, *_ in nods)

    def local(centre, size):
        lo = np.array([int(c) - s // 2 for c, s in zip(centre, size)], float)
        out = []
        for c, dmm, dvox, dens, att, exc in nods:
            q = c - lo
            if all(-dmm <= q[i] <= size[i] + dmm for i in range(3)):
                out.append((float(q[0]), float(q[1]), float(q[2]), dmm, dvox, dens, att, exc))
        # the patch's own nodule first
        out.sort(key=lambda n: np.linalg.norm(np.array(n[:3]) - np.array(size) // 2))
        return out

    res = {}
    for stage, size in (("coarse", COARSE_STORE), ("fine", FINE_STORE)):
        cents = []
        for c, *_r, exc in nods:
            if not exc:
                cents.append(("nodule", np.round(c).astype(int)))
        if stage == "coarse":
            if len(lung_pts):
                for i in rng.choice(len(lung_pts), size=min(n_random, len(lung_pts)), replace=False):
                    cents.append(("random", lung_pts[i]))
            for p in blobs[:n_blob_coarse]:
                cents.append(("blob", p))
            for p in surface_points(mask, rng, n_pleura, True, allowed):
                cents.append(("pleura", p))
            for p in surface_points(mask, rng, n_outside, False, allowed):
                cents.append(("outside", p))
        else:
            for p in blobs[n_blob_coarse:]:
                if far_from_nodules(p):
                    cents.append(("blob", p))
            if len(lung_pts):
                for i in rng.choice(len(lung_pts), size=min(n_fine_random, len(lung_pts)), replace=False):
                    cents.append(("random", lung_pts[i]))
            for p in surface_points(mask, rng, n_fine_pleura, True, allowed):
                cents.append(("pleura", p))
        patches = np.stack([crop(hu, p, size) for _, p in cents]) if cents else np.zeros((0,) + size, np.int16)
        meta = [dict(kind=k, centre=[int(v) for v in p], nodules=local(p, size)) for k, p in cents]
        res[stage] = (patches, meta)
    return res
