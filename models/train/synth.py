"""A quick numpy stand-in for `speck phantom` (used only by `train.py --smoke` to test the recipe
end to end when the speck binary is not built). Same outputs: DIR/<uid>.mhd(+.raw) and
DIR/annotations.csv with Speck's columns. Not used for the bundled models."""
from __future__ import annotations

import os
import sys

import numpy as np
from scipy import ndimage as ndi

HEADER = "seriesuid,coordX,coordY,coordZ,diameter_mm,diameter_vox,density,attachment\n"


def write_mhd(path: str, hu: np.ndarray, spacing_zyx, origin_xyz) -> None:
    raw = os.path.basename(path)[:-4] + ".raw"
    hu.astype(np.int16).tofile(os.path.join(os.path.dirname(path), raw))
    with open(path, "w") as f:
        f.write("ObjectType = Image\nNDims = 3\nBinaryData = True\nBinaryDataByteOrderMSB = False\n")
        f.write("TransformMatrix = 1 0 0 0 1 0 0 0 1\n")
        f.write("Offset = %g %g %g\n" % tuple(origin_xyz))
        f.write("ElementSpacing = %g %g %g\n" % tuple(spacing_zyx[::-1]))
        f.write("DimSize = %d %d %d\n" % tuple(hu.shape[::-1]))
        f.write(f"ElementType = MET_SHORT\nElementDataFile = {raw}\n")


def make(seed: int, shape=(64, 192, 192), spacing=(1.0, 0.7, 0.7), count=8):
    rng = np.random.default_rng(seed)
    Z, Y, X = shape
    sp = np.array(spacing)
    zz, yy, xx = np.meshgrid(*[np.arange(n, dtype=np.float32) for n in shape], indexing="ij")
    mm = [zz * sp[0], yy * sp[1], xx * sp[2]]
    cz, cy, cx = Z * sp[0] / 2, Y * sp[1] / 2, X * sp[2] / 2
    hu = np.full(shape, -1000.0, np.float32)
    body = ((mm[1] - cy) / (0.45 * Y * sp[1])) ** 2 + ((mm[2] - cx) / (0.48 * X * sp[2])) ** 2 < 1
    hu[body] = 40
    lungs = np.zeros(shape, bool)
    for side in (-1, 1):
        e = (((mm[1] - cy) / (0.33 * Y * sp[1])) ** 2 + ((mm[2] - cx - side * 0.2 * X * sp[2]) / (0.16 * X * sp[2])) ** 2
             + ((mm[0] - cz) / (0.8 * Z * sp[0])) ** 2)
        lungs |= e < 1
    hu[lungs] = -850 + rng.normal(0, 15, size=lungs.sum())
    heart = ((mm[1] - cy - 0.1 * Y * sp[1]) ** 2 + (mm[2] - cx) ** 2) < (0.12 * X * sp[2]) ** 2
    hu[heart & body] = 45
    # vessels: random tapered segments inside the lungs
    lz, ly, lx = np.nonzero(lungs)
    vessel = np.zeros(shape, np.float32)
    for _ in range(60):
        i = rng.integers(len(lz))
        p = np.array([lz[i], ly[i], lx[i]], float) * sp
        d = rng.normal(size=3)
        d /= np.linalg.norm(d)
        r0 = rng.uniform(0.4, 2.5)
        L = rng.uniform(15, 60)
        for t in np.linspace(0, L, int(L / 0.5)):
            q = p + d * t
            r = r0 * (1 - 0.6 * t / L)
            lo = np.maximum(((q - r - 1) / sp).astype(int), 0)
            hi = np.minimum(((q + r + 1) / sp).astype(int) + 1, shape)
            if np.any(hi <= lo):
                continue
            sl = tuple(slice(a, b) for a, b in zip(lo, hi))
            dist = np.sqrt(sum((m[sl] - c) ** 2 for m, c in zip(mm, q)))
            vessel[sl] = np.maximum(vessel[sl], np.clip(r + 0.5 - dist, 0, 1))
    hu = np.where(lungs, hu * (1 - vessel) + 40 * vessel, hu)
    rows = []
    uid = f"synth.{seed}"
    for k in range(count):
        dvox = float(rng.choice([3, 3, 4, 4, 5, 5, 6, 8, 12, 20]) + rng.uniform(-0.4, 0.4))
        dmm = dvox * sp[2]
        i = rng.integers(len(lz))
        c = np.array([lz[i], ly[i], lx[i]], float) * sp
        dens = rng.choice(["solid", "solid", "part-solid", "ground-glass"])
        val = {"solid": 30.0, "part-solid": -300.0, "ground-glass": -550.0}[dens]
        r = dmm / 2
        lo = np.maximum(((c - r - 2) / sp).astype(int), 0)
        hi = np.minimum(((c + r + 2) / sp).astype(int) + 1, shape)
        sl = tuple(slice(a, b) for a, b in zip(lo, hi))
        dist = np.sqrt(sum((m[sl] - q) ** 2 for m, q in zip(mm, c)))
        w = np.clip(r + 0.5 - dist, 0, 1)
        hu[sl] = hu[sl] * (1 - w) + val * w
        ci = c / sp
        rows.append((uid, ci[2] * sp[2], ci[1] * sp[1], ci[0] * sp[0], dmm, dvox, dens, "isolated"))
    hu = ndi.gaussian_filter(hu, 0.6) + rng.normal(0, 20, size=shape)
    return uid, np.clip(hu, -1024, 3000).astype(np.int16), rows


def main(out: str, seeds: list[int], shape=(64, 192, 192)) -> None:
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "annotations.csv"), "w") as f:
        f.write(HEADER)
        for s in seeds:
            uid, hu, rows = make(s, shape)
            write_mhd(os.path.join(out, uid + ".mhd"), hu, (1.0, 0.7, 0.7), (0.0, 0.0, 0.0))
            for r in rows:
                f.write("%s,%.3f,%.3f,%.3f,%.3f,%.3f,%s,%s\n" % r)


if __name__ == "__main__":
    main(sys.argv[1], [int(s) for s in sys.argv[2:]])
