"""Summarise an evaluate.sh run as Markdown (for models/README.md): speck eval's JSON plus
solid 3-5 voxel sensitivity, false positives inside vs outside the lungs, seconds per scan.

    python report.py WORKDIR    (WORKDIR = $SPECK_TRAIN_WORK/eval)
"""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from collections import Counter

import numpy as np


def rows(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def fmt_ci(v, ci):
    if v is None:
        return "–"
    return f"{v:.3f}" + (f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else "")


def at(group, fp):
    for r in group["sensitivity_at_fp"]:
        if abs(r["fp_per_scan"] - fp) < 1e-9:
            return fmt_ci(r["sensitivity"], r.get("ci95"))
    return "–"


def table(groups, title):
    out = [f"| {title} | n | detected (any FP rate) | sens @1/4 FP | sens @1 FP | sens @4 FP | CPM |",
           "|---|---|---|---|---|---|---|"]
    for g in groups or []:
        out.append(f"| {g['label']} | {g['n_nodules']} | {g['n_detected']} | {at(g, 0.25)} | {at(g, 1)} | {at(g, 4)} | "
                   f"{fmt_ci(g.get('cpm'), g.get('cpm_ci95'))} |")
    return "\n".join(out)


def main(work):
    speck = os.environ.get("SPECK", os.path.join(os.environ.get("CARGO_TARGET_DIR", "target"), "release", "speck"))
    ev = json.load(open(os.path.join(work, "eval.json")))
    md = []
    md.append(f"Scans: {ev['n_scans']}, reference nodules: {ev['n_nodules']}, excluded findings: {ev['n_excluded_findings']}.\n")
    md.append("| FP/scan | " + " | ".join(f"{r['fp_per_scan']:g}" for r in ev["sensitivity_at_fp"]) + " | CPM |")
    md.append("|---" * (len(ev["sensitivity_at_fp"]) + 2) + "|")
    md.append("| sensitivity | " + " | ".join(fmt_ci(r["sensitivity"], r.get("ci95")) for r in ev["sensitivity_at_fp"])
              + f" | **{fmt_ci(ev['cpm'], ev.get('cpm_ci95'))}** |\n")
    md.append(table(ev["by_size"].get("vox"), "size (voxels)") + "\n")
    md.append(table(ev["by_size"].get("mm"), "size (mm)") + "\n")
    md.append(table(ev.get("by_density"), "density") + "\n")
    md.append(table(ev.get("by_attachment"), "attachment") + "\n")

    # solid 3-5 voxel nodules: the others become excluded findings (their hits are neither hits nor FPs)
    ann = rows(os.path.join(work, "annotations.csv"))
    exc = rows(os.path.join(work, "excluded.csv"))
    keep = [r for r in ann if r.get("density") == "solid" and 2.5 <= float(r["diameter_vox"]) < 5.5]
    other = [r for r in ann if r not in keep]
    head = list(ann[0].keys())
    with open(os.path.join(work, "ann_solid35.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, head)
        w.writeheader()
        w.writerows(keep)
    with open(os.path.join(work, "exc_solid35.csv"), "w", newline="") as f:
        f.write("seriesuid,coordX,coordY,coordZ,diameter_mm\n")
        for r in exc + other:
            f.write(f"{r['seriesuid']},{r['coordX']},{r['coordY']},{r['coordZ']},{r['diameter_mm']}\n")
    try:
        js = subprocess.run([speck, "eval", "--annotations", os.path.join(work, "ann_solid35.csv"), "--excluded",
                             os.path.join(work, "exc_solid35.csv"), "--candidates", os.path.join(work, "candidates.csv"),
                             "--series", os.path.join(work, "series.csv"), "--json"], check=True, capture_output=True,
                            text=True).stdout
        s35 = json.loads(js)
        md.append(f"Solid nodules of 3-5 voxels (n = {s35['n_nodules']}): sensitivity at 1 FP/scan "
                  f"{at(s35, 1)}, at 1/4 FP/scan {at(s35, 0.25)}, at 4 FP/scan {at(s35, 4)}.\n")
    except Exception as e:  # noqa: BLE001
        md.append(f"(solid 3-5 voxel subset: speck eval failed: {e})\n")

    # FPs inside vs outside the lung mask (engine's mask; outside ones are flagged, Speck drops them)
    cands = rows(os.path.join(work, "run.candidates.csv"))
    nods = ann + exc
    by_uid = {}
    for r in nods:
        d = float(r["diameter_mm"])
        by_uid.setdefault(r["seriesuid"], []).append((np.array([float(r["coordX"]), float(r["coordY"]), float(r["coordZ"])]),
                                                      10.0 if d < 0 else d))
    n_scans = ev["n_scans"]
    # per candidate, once: its probability and the findings (indices into by_uid[uid]) it hits
    scored = []
    for c in cands:
        xyz = np.array([float(c["coordX"]), float(c["coordY"]), float(c["coordZ"])])
        near = [i for i, (q, d) in enumerate(by_uid.get(c["seriesuid"], [])) if np.linalg.norm(xyz - q) <= d / 2]
        scored.append((c, float(c["probability"]), near))
    lines = ["| probability ≥ | FP/scan in lungs | FP/scan outside lungs (flagged, dropped by default) |", "|---|---|---|"]
    for t in (0.1, 0.3, 0.5, 0.7, 0.9):
        fin = sum(1 for c, p, near in scored if p >= t and not near and c["in_lung"] == "1")
        fout = sum(1 for c, p, near in scored if p >= t and not near and c["in_lung"] != "1")
        lines.append(f"| {t} | {fin / n_scans:.2f} | {fout / n_scans:.2f} |")
    md.append("\n".join(lines) + "\n")
    # operating points: the lowest fine probability at which the in-lung false positives per scan
    # stay within 1/4, 1 and 4 (what `speck.threshold` is set from), and the sensitivity there
    fps, best = [], {}
    for c, p, near in scored:
        if c["in_lung"] != "1":
            continue
        if not near:
            fps.append(p)
        for i in near:
            k = (c["seriesuid"], i)
            best[k] = max(best.get(k, 0.0), p)
    fps.sort(reverse=True)
    # by_uid lists each scan's reference nodules first, then its excluded findings
    n_ann = Counter(r["seriesuid"] for r in ann)
    ref = {(uid, i) for uid, n in n_ann.items() for i in range(n)}
    ops = []
    for rate in (0.25, 1.0, 4.0):
        n_fp = int(rate * n_scans)
        th = fps[n_fp] + 1e-6 if len(fps) > n_fp else 0.0  # just above the first FP over budget
        sens = sum(1 for k in ref if best.get(k, 0.0) >= th) / max(len(ref), 1)
        ops.append(f"{rate:g} FP/scan: probability ≥ {th:.6f} (sensitivity {sens:.3f})")
    md.append("Operating points (in-lung false positives per scan): " + "; ".join(ops) + ".\n")
    out05 = sum(1 for c in cands if c["in_lung"] == "0" and float(c["probability"]) > 0.5)
    md.append(f"Candidates above 0.5 outside the lung mask: {out05} in {n_scans} scans.\n")

    t = rows(os.path.join(work, "run.timings.csv"))
    det = np.array([float(r["detect_s"]) for r in t])
    load = np.array([float(r["load_s"]) for r in t])
    stages = {k: np.mean([float(r[k]) for r in t]) for k in ("lung_mask_s", "dense_s", "fine_s", "merge_s")}
    md.append(f"Seconds per scan (engine, 2 threads): mean {det.mean():.1f}, median {np.median(det):.1f}, max {det.max():.1f}; "
              f"stages mean: lung mask {stages['lung_mask_s']:.1f}, coarse {stages['dense_s']:.1f}, fine {stages['fine_s']:.1f}, "
              f"merge {stages['merge_s']:.2f}; loading the MetaImage {load.mean():.1f}.\n")
    text = "\n".join(md)
    open(os.path.join(work, "report.md"), "w").write(text)
    print(text)


if __name__ == "__main__":
    main(sys.argv[1])
