#!/usr/bin/env python3
"""Compare the HU statistics of a phantom with the real LIDC-IDRI-0001 CT.

Both volumes go through the same measurements (numpy + scipy only):
  * body: per-slice largest component above -500 HU, holes filled;
  * lungs: components below -400 HU inside the body (the two largest), holes closed per slice,
    eroded by 3 voxels in-plane to keep away from the pleura;
  * parenchyma: lung voxels below -500 HU (median, 5th/95th percentiles);
  * vessels: fraction of lung voxels above -500 HU, their HU, and per axial slice the connected
    cross-sections (count per 10 cm^2 of lung, median equivalent diameter in mm);
  * fat and soft tissue: histogram modes in the body outside the lungs;
  * bone: fraction of body voxels above +300 HU and their percentiles;
  * noise: standard deviation in 7x7 in-plane windows over homogeneous fat / muscle / lung /
    outside air, 25th percentile (structure only adds variance, so the low quantile tracks noise).

Usage (from the repository root):
    cargo run --release -p speck-phantom --example phantom_raw -- 1 /tmp/p1 133 512 512 2.5 0.703125 0.703125
    .venv-peer/bin/python tests/peer/calibrate_phantom.py --phantom /tmp/p1 [--phantom /tmp/p2 ...]
A phantom is given as the prefix of the example's .raw/.json pair, or as a .nii.gz (needs nibabel).
Skips (exit 0 with a note) when the LIDC data is absent.
"""
import argparse
import glob
import json
import os
import sys

import numpy as np
from scipy import ndimage as ndi


def load_lidc(folder):
    import pydicom

    files = sorted(glob.glob(os.path.join(folder, "*.dcm")))
    ds = [pydicom.dcmread(f) for f in files]
    ds.sort(key=lambda d: float(d.ImagePositionPatient[2]))
    vol = np.stack(
        [d.pixel_array * float(d.RescaleSlope) + float(d.RescaleIntercept) for d in ds]
    ).astype(np.float32)
    zs = [float(d.ImagePositionPatient[2]) for d in ds]
    dz = float(np.median(np.diff(zs)))
    px = [float(v) for v in ds[0].PixelSpacing]
    return vol, (dz, px[0], px[1])


def load_phantom(path):
    if path.endswith(".nii.gz") or path.endswith(".nii"):
        import nibabel

        img = nibabel.load(path)
        data = np.asarray(img.dataobj).astype(np.float32)  # x, y, z
        zooms = img.header.get_zooms()
        return np.transpose(data, (2, 1, 0)), (zooms[2], zooms[1], zooms[0])
    meta = json.load(open(path + ".json"))
    vol = np.fromfile(path + ".raw", dtype="<i2").reshape(meta["shape_zyx"]).astype(np.float32)
    return vol, tuple(meta["spacing_zyx"])


def largest(mask):
    lab, n = ndi.label(mask)
    if n == 0:
        return mask
    sizes = ndi.sum(mask, lab, range(1, n + 1))
    return lab == (np.argmax(sizes) + 1)


def stats(vol, spacing):
    dz, dy, dx = spacing
    valid = vol > -1500
    body = np.zeros(vol.shape, bool)
    for z in range(vol.shape[0]):
        body[z] = ndi.binary_fill_holes(largest(vol[z] > -500))
    low = (vol < -400) & body
    lab, n = ndi.label(low)
    sizes = ndi.sum(low, lab, range(1, n + 1))
    order = np.argsort(sizes)[::-1]
    keep = [order[0] + 1]
    if n > 1 and sizes[order[1]] > 0.2 * sizes[order[0]]:
        keep.append(order[1] + 1)
    lung = np.isin(lab, keep)
    filled = np.zeros_like(lung)
    for z in range(vol.shape[0]):
        filled[z] = ndi.binary_fill_holes(ndi.binary_closing(lung[z], iterations=3))
    st = np.zeros((1, 3, 3), bool)
    st[0] = True
    eroded = ndi.binary_erosion(filled, structure=st, iterations=3)
    x = vol[eroded]
    out = {}
    par = x[x < -500]
    out["lung volume (L)"] = filled.sum() * dz * dy * dx / 1e6
    out["parenchyma median HU"] = np.median(par)
    out["parenchyma p5 HU"] = np.percentile(par, 5)
    out["parenchyma p95 HU"] = np.percentile(par, 95)
    out["lung fraction > -500 HU (vessels) %"] = 100 * (x > -500).mean()
    out["lung fraction > -300 HU %"] = 100 * (x > -300).mean()
    ves = x[x > -300]
    out["vessel HU median (> -300)"] = np.median(ves) if ves.size else np.nan
    out["vessel HU p95"] = np.percentile(ves, 95) if ves.size else np.nan
    counts, diams, area = 0, [], 0.0
    for z in range(vol.shape[0]):
        m = eroded[z]
        if m.sum() < 500:
            continue
        area += m.sum() * dy * dx
        lab2, k = ndi.label((vol[z] > -500) & m)
        if k:
            a = ndi.sum(np.ones_like(lab2), lab2, range(1, k + 1)) * dy * dx
            diams.extend(2 * np.sqrt(a / np.pi))
            counts += k
    out["vessel cross-sections per 10 cm^2"] = counts / (area / 1000.0) if area else np.nan
    out["cross-section diameter median mm"] = np.median(diams) if diams else np.nan
    out["cross-sections >= 3 mm %"] = 100 * np.mean(np.array(diams) >= 3.0) if diams else np.nan
    soft = vol[body & ~ndi.binary_dilation(filled, iterations=2)]
    h, e = np.histogram(soft, bins=np.arange(-250, 400, 5))
    c = e[:-1] + 2.5
    out["fat mode HU"] = c[np.argmax(np.where(c < -20, h, 0))]
    out["soft tissue mode HU"] = c[np.argmax(np.where((c > -20) & (c < 100), h, 0))]
    out["body fraction > +300 HU (bone) %"] = 100 * (soft > 300).mean() * soft.size / body.sum()
    bone = soft[soft > 300]
    out["bone HU median"] = np.median(bone)
    out["bone HU p95"] = np.percentile(bone, 95)
    m = ndi.uniform_filter(vol, size=(1, 7, 7))
    m2 = ndi.uniform_filter(vol * vol, size=(1, 7, 7))
    sd = np.sqrt(np.maximum(m2 - m * m, 0))
    inner = ndi.binary_erosion(body, structure=st, iterations=5)
    far = valid & ~ndi.binary_dilation(body, structure=st, iterations=10)
    far = ndi.binary_erosion(far, structure=st, iterations=4)
    for name, lo, hi, region in [
        ("fat", -150, -60, inner),
        ("muscle", 20, 80, inner),
        ("lung", -950, -780, eroded),
        ("air outside body", -1100, -900, far),
    ]:
        sel = (m > lo) & (m < hi) & region
        out[f"noise sd {name} (p25 of 7x7 sd)"] = np.percentile(sd[sel], 25) if sel.any() else np.nan
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lidc", default="../shared/data/lidc-idri-0001")
    ap.add_argument("--phantom", action="append", default=[])
    args = ap.parse_args()
    if not os.path.isdir(args.lidc):
        print(f"note: {args.lidc} absent; skipping the calibration")
        return 0
    cols = {}
    vol, sp = load_lidc(args.lidc)
    cols["LIDC-IDRI-0001"] = stats(vol, sp)
    for p in args.phantom:
        vol, sp = load_phantom(p)
        cols[os.path.basename(p)] = stats(vol, sp)
    names = list(cols)
    print("| statistic | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for key in cols[names[0]]:
        print(f"| {key} | " + " | ".join(f"{cols[n][key]:.3g}" for n in names) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
