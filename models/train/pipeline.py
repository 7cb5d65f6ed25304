"""Reference coarse-to-fine pipeline in Python (onnxruntime) and a LUNA16-style FROC, used by the
recipe to validate the exported models on held-out phantoms and to mine the coarse stage's false
positives. Speck's engine (crates/detect) is the product; this mirrors its steps:
lung mask -> coarse heatmap tiles over the lungs -> peaks -> fine patches -> merge.

    python pipeline.py --models DIR --scans DIR [--out candidates.csv]
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
from scipy import ndimage as ndi

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import read_annotations, read_scan  # noqa: E402
from sample import crop, fast_lung_mask  # noqa: E402


class Models:
    def __init__(self, mdir, threads=2):
        import onnx
        import onnxruntime as ort

        o = ort.SessionOptions()
        o.intra_op_num_threads = threads
        self.c = ort.InferenceSession(os.path.join(mdir, "coarse-v2.onnx"), o, providers=["CPUExecutionProvider"])
        self.f = ort.InferenceSession(os.path.join(mdir, "fine-v2.onnx"), o, providers=["CPUExecutionProvider"])
        mc = {p.key: p.value for p in onnx.load(os.path.join(mdir, "coarse-v2.onnx")).metadata_props}
        mf = {p.key: p.value for p in onnx.load(os.path.join(mdir, "fine-v2.onnx")).metadata_props}
        self.cpatch = tuple(int(v) for v in mc["speck.patch_size"].split(","))
        self.cstride = tuple(int(v) for v in mc["speck.output_stride"].split(","))
        self.fpatch = tuple(int(v) for v in mf["speck.patch_size"].split(","))
        self.win = tuple(float(v) for v in mc["speck.hu_window"].split(","))


def norm(hu, win):
    lo, hi = win
    return np.clip((hu.astype(np.float32) - lo) / (hi - lo), 0, 1)


def coarse_heatmap(m: Models, hu, mask, overlap=0.25, batch=4):
    """Max-blended heatmap at output stride over tiles touching the (dilated) lung mask."""
    P, st = m.cpatch, m.cstride
    shape = hu.shape
    oshape = tuple(-(-n // s) for n, s in zip(shape, st))
    heat = np.zeros(oshape, np.float32)
    if not mask.any():
        return heat
    lo = np.array([s.start for s in ndi.find_objects(mask.astype(np.uint8))[0]])
    hi = np.array([s.stop for s in ndi.find_objects(mask.astype(np.uint8))[0]])
    step = [max(st[a], int(P[a] * (1 - overlap)) // st[a] * st[a]) for a in range(3)]
    starts = []
    for a in range(3):
        s = list(range(max(lo[a] - P[a] // 8, 0), max(hi[a], 1), step[a]))
        starts.append(s)
    msmall = mask[::8, ::8, ::8]
    tiles = []
    for z in starts[0]:
        for y in starts[1]:
            for x in starts[2]:
                # align starts to the stride so output voxels land on the common grid
                z0, y0, x0 = z - z % st[0], y - y % st[1], x - x % st[2]
                sub = msmall[z0 // 8:(z0 + P[0]) // 8 + 1, y0 // 8:(y0 + P[1]) // 8 + 1, x0 // 8:(x0 + P[2]) // 8 + 1]
                if sub.any():
                    tiles.append((z0, y0, x0))
    margin = [P[a] // st[a] // 8 for a in range(3)]
    for i in range(0, len(tiles), batch):
        tb = tiles[i:i + batch]
        x = np.stack([norm(crop(hu, (z + P[0] // 2, y + P[1] // 2, x_ + P[2] // 2), P), m.win) for z, y, x_ in tb])[:, None]
        out = m.c.run(None, {"input": x})[0][:, 0]
        for (z, y, x_), o in zip(tb, out):
            oz, oy, ox = z // st[0], y // st[1], x_ // st[2]
            sl_o, sl_h = [], []
            for a, (o0, n) in enumerate(zip((oz, oy, ox), o.shape)):
                a0 = margin[a] if o0 > 0 else 0
                a1 = n - margin[a] if o0 + n < oshape[a] else n
                a1 = min(a1, oshape[a] - o0)
                sl_o.append(slice(a0, a1))
                sl_h.append(slice(o0 + a0, o0 + a1))
            heat[tuple(sl_h)] = np.maximum(heat[tuple(sl_h)], o[tuple(sl_o)])
    return heat


def detect(m: Models, hu, spacing, thr=0.1, max_cands=300, tta=True):
    t0 = time.time()
    mask = fast_lung_mask(hu, spacing)
    t1 = time.time()
    st = m.cstride
    heat = coarse_heatmap(m, hu, mask)
    t2 = time.time()
    mx = ndi.maximum_filter(heat, size=3)
    msk_o = mask[::st[0], ::st[1], ::st[2]][: heat.shape[0], : heat.shape[1], : heat.shape[2]]
    dil = ndi.binary_dilation(msk_o, iterations=2)
    pk = np.argwhere((heat == mx) & (heat >= thr) & dil)
    vals = heat[tuple(pk.T)]
    order = np.argsort(vals)[::-1][:max_cands]
    pk, vals = pk[order], vals[order]
    cands = pk * np.array(st) + (np.array(st) - 1) / 2  # contract: output o sits at o*s + (s-1)/2
    res = []
    if len(cands):
        F = m.fpatch
        ci = np.round(cands + 0.5).astype(int)  # crop() puts ci at P//2, i.e. patch centre (P-1)/2 = ci - 0.5
        x = np.stack([norm(crop(hu, c, F), m.win) for c in ci])[:, None]
        outs = []
        for i in range(0, len(x), 32):
            o = m.f.run(None, {"input": x[i:i + 32]})[0]
            if tta:
                o2 = m.f.run(None, {"input": np.ascontiguousarray(x[i:i + 32, :, :, :, ::-1])})[0]
                o2[:, 4] *= -1  # the patch centre (P-1)/2 is the flip's fixed point
                o = (o + o2) / 2
            outs.append(o)
        o = np.concatenate(outs)
        for c, v, r in zip(ci, vals, o):
            res.append((c - 0.5 + r[2:5] / np.asarray(spacing), float(r[0]), float(r[1]), float(v)))
    t3 = time.time()
    # merge: greedy by prob, suppress within max(radius, 2 mm)
    res.sort(key=lambda t: -t[1])
    keep = []
    sp = np.asarray(spacing)
    for c, p, d, v in res:
        if all(np.linalg.norm((c - k[0]) * sp) > max(k[2] / 2, 2.0) for k in keep):
            keep.append((c, p, d, v))
    return keep, mask, dict(mask=t1 - t0, coarse=t2 - t1, fine=t3 - t2, total=time.time() - t0, n_coarse=len(cands))


def froc(per_scan, n_scans, fps=(0.125, 0.25, 0.5, 1, 2, 4, 8), boot=1000, seed=0):
    """LUNA16 FROC. per_scan: list of (nodules [(xyz, d_mm, meta)], cands [(xyz, p)]).
    Returns sens at fps, CPM, CI and per-nodule best probability (for bins)."""
    rows = []   # per scan: (list of best prob per nodule (or -1), list of FP probs)
    for nods, cands in per_scan:
        best = [-1.0] * len(nods)
        fpp = []
        for xyz, p in cands:
            hit = False
            for i, (c, d, _) in enumerate(nods):
                if np.linalg.norm(np.asarray(xyz) - c) <= d / 2:
                    hit = True
                    best[i] = max(best[i], p)
            if not hit:
                fpp.append(p)
        rows.append((best, fpp))

    def curve(idx):
        best = np.concatenate([rows[i][0] for i in idx]) if idx else np.zeros(0)
        fpp = np.concatenate([rows[i][1] for i in idx]) if idx else np.zeros(0)
        nn = max(len(best), 1)
        out = []
        fs = np.sort(fpp)[::-1]
        for f in fps:
            k = int(np.floor(f * len(idx)))
            # threshold such that at most f*N false positives are above it
            t = fs[k] if k < len(fs) else -0.5
            out.append(float((best > t).sum()) / nn)
        return np.array(out)

    idx = list(range(len(rows)))
    s = curve(idx)
    rng = np.random.default_rng(seed)
    bs = np.array([curve(list(rng.integers(0, len(rows), len(rows)))).mean() for _ in range(boot)])
    return s, float(s.mean()), (float(np.percentile(bs, 2.5)), float(np.percentile(bs, 97.5))), rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", required=True)
    ap.add_argument("--scans", nargs="+", required=True, help="phantom folders (scan + annotations.csv)")
    ap.add_argument("--out", default=None)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    m = Models(a.models, a.threads)
    per = []
    meta_all = []
    lines = ["seriesuid,coordX,coordY,coordZ,probability,diameter_mm"]
    for d in a.scans:
        ann = read_annotations(os.path.join(d, "annotations.csv"))
        for f in sorted(os.listdir(d)):
            if not f.endswith((".mhd", ".nii.gz")):
                continue
            scan = read_scan(os.path.join(d, f))
            uid = f.split(".mhd")[0].split(".nii")[0]
            keep, mask, tm = detect(m, scan.hu, scan.spacing_zyx)
            cands = [(scan.index_to_world(c), p) for c, p, dd, v in keep]
            for (c, p, dd, v) in keep:
                w = scan.index_to_world(c)
                lines.append(f"{uid},{w[0]:.3f},{w[1]:.3f},{w[2]:.3f},{p:.5f},{dd:.2f}")
            nods = [(n.xyz, n.diameter_mm, n) for n in ann if n.seriesuid == uid]
            per.append((nods, cands))
            # FPs outside the lung mask above 0.5
            out_fp = 0
            for c, p, dd, v in keep:
                ci = np.clip(np.round(c).astype(int), 0, np.array(mask.shape) - 1)
                if p > 0.5 and not mask[tuple(ci)]:
                    out_fp += 1
            meta_all.append((uid, tm, out_fp))
            print(uid, {k: round(v, 2) for k, v in tm.items()}, "outside>0.5:", out_fp, flush=True)
    s, cpm, ci, rows = froc(per, len(per))
    print("sens@fps", np.round(s, 3).tolist(), "CPM", round(cpm, 3), "CI", np.round(ci, 3).tolist())
    if a.out:
        open(a.out, "w").write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
