#!/usr/bin/env python3
"""Reference for speck-eval: the LUNA16 evaluation as `noduleCADEvaluationLUNA16.py` computes it
(evaluateCAD + computeFROC with sklearn's roc_curve, then numpy.interp at the seven FP rates),
rewritten compactly. Used by `crates/eval/tests/reference.rs`; needs numpy and scikit-learn
(e.g. in /work/main/.venv-peer).

usage: luna16_reference.py DIR [DIR...]
each DIR holds annotations.csv, excluded.csv, seriesuids.csv and candidates.csv;
prints one JSON line per DIR: {"sensitivity": [7 values], "cpm": value}
"""
import csv
import json
import math
import sys

import numpy as np
import sklearn.metrics as skl_metrics

RATES = [0.125, 0.25, 0.5, 1, 2, 4, 8]
MAX_MARKS = 100


def rows(path):
    with open(path) as f:
        r = list(csv.reader(f))
    return r[0], r[1:]


def main(ann_path, excl_path, series_path, cand_path):
    with open(series_path) as f:
        series = [row[0] for row in csv.reader(f) if row]
    h, ann = rows(ann_path)
    he, excl = rows(excl_path)
    hc, cands = rows(cand_path)

    def col(header, row, name):
        return row[header.index(name)]

    findings = {s: [] for s in series}
    for r in ann:
        s = col(h, r, "seriesuid")
        if s in findings:
            findings[s].append((True, [float(col(h, r, k)) for k in ("coordX", "coordY", "coordZ", "diameter_mm")]))
    for r in excl:
        s = col(he, r, "seriesuid")
        if s in findings:
            findings[s].append((False, [float(col(he, r, k)) for k in ("coordX", "coordY", "coordZ", "diameter_mm")]))

    gt, prob, exclude = [], [], []
    for s in series:
        marks = {}
        for r in cands:
            if col(hc, r, "seriesuid") == s:
                marks[len(marks)] = ([float(col(hc, r, k)) for k in ("coordX", "coordY", "coordZ")], float(col(hc, r, "probability")))
        if len(marks) > MAX_MARKS:
            # The official cap: keep marks strictly above the (MAX_MARKS+1)-th probability.
            ps = sorted((m[1] for m in marks.values()), reverse=True)
            thr = ps[MAX_MARKS]
            marks = {k: m for k, m in marks.items() if m[1] > thr}
        remaining = dict(marks)
        for included, (x, y, z, d) in findings[s]:
            if d < 0.0:
                d = 10.0
            r2 = (d / 2.0) ** 2
            matches = []
            for k, (c, p) in marks.items():
                dist = (x - c[0]) ** 2 + (y - c[1]) ** 2 + (z - c[2]) ** 2
                if dist < r2:
                    if included:
                        matches.append(p)
                        remaining.pop(k, None)
                    else:
                        remaining.pop(k, None)
            if included:
                if matches:
                    gt.append(1.0); prob.append(max(matches)); exclude.append(False)
                else:
                    gt.append(1.0); prob.append(-1000000000.0); exclude.append(True)
        for k, (c, p) in remaining.items():
            gt.append(0.0); prob.append(p); exclude.append(False)

    gt_l = [g for g, e in zip(gt, exclude) if not e]
    prob_l = [p for p, e in zip(prob, exclude) if not e]
    detected = sum(gt_l)
    total = sum(gt)
    fpr, tpr, _ = skl_metrics.roc_curve(gt_l, prob_l)
    if sum(gt) == len(gt):
        fps = np.zeros(len(fpr))
    else:
        fps = fpr * (len(prob_l) - detected) / len(series)
    sens = (tpr * detected) / total
    at = [float(np.interp(r, fps, sens)) for r in RATES]
    print(json.dumps({"sensitivity": at, "cpm": float(np.mean(at))}))


if __name__ == "__main__":
    for d in sys.argv[1:]:
        main(*(f"{d}/{f}" for f in ("annotations.csv", "excluded.csv", "seriesuids.csv", "candidates.csv")))
