"""What the bundled pair finds on the real case LIDC-IDRI-0001 (for models/README.md).

Runs Speck's engine (speck-train-detect: both models, coarse threshold 0.2, fine threshold 0.02,
flip TTA as the fine model says, outside-lung candidates kept and flagged) on the DICOM folder as
it is, then reports the LUNA16 nodule's rank, probability, distance and diameter estimate, and the
candidates in and outside the lungs at probability 0.5, 0.9 and the fine model's operating point
(`speck.threshold`).

    python real_case.py [MODELS_DIR] [TAG]     (defaults: models, v7)
Env: SPECK_TRAIN_DETECT (the speck-train-detect binary; default: CARGO_TARGET_DIR or
models/train/phantom-gen/target, release/), SPECK_TRAIN_WORK (output folder root).
Exits 0 with a note when ../shared/data is absent.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
CASE = os.path.join(REPO, "..", "shared", "data", "lidc-idri-0001")

from report import rows  # noqa: E402


def main():
    models = sys.argv[1] if len(sys.argv) > 1 else os.path.join(REPO, "models")
    tag = sys.argv[2] if len(sys.argv) > 2 else "v7"
    if not os.path.isdir(CASE):
        print(f"no real case at {CASE}; skipped")
        return
    import onnx

    coarse, fine = (os.path.join(models, f"{r}-{tag}.onnx") for r in ("coarse", "fine"))
    meta = {p.key: p.value for p in onnx.load(fine).metadata_props}
    op = float(meta["speck.threshold"])
    work = os.path.join(os.environ.get("SPECK_TRAIN_WORK", "/tmp/speck-train"), f"real-case-{tag}")
    os.makedirs(work, exist_ok=True)
    # models/train/phantom-gen builds speck-train-detect (run.sh and evaluate.sh build it)
    tgt = os.environ.get("CARGO_TARGET_DIR", os.path.join(HERE, "phantom-gen", "target"))
    tool = os.environ.get("SPECK_TRAIN_DETECT", os.path.join(tgt, "release", "speck-train-detect"))
    if not os.path.exists(tool):
        sys.exit(f"{tool} not found: build it with `cd models/train/phantom-gen && cargo build --release` "
                 "(or set SPECK_TRAIN_DETECT)")
    t = time.time()
    subprocess.run([tool, coarse, fine, os.path.join(work, "run"), "0.2", "0.02", "model", "2", CASE], check=True)
    secs = time.time() - t
    cands = rows(os.path.join(work, "run.candidates.csv"))
    xyz = lambda r: np.array([float(r["coordX"]), float(r["coordY"]), float(r["coordZ"])])  # noqa: E731
    cands.sort(key=lambda r: -float(r["probability"]))
    lung = [r for r in cands if r["in_lung"] == "1"]
    out = [r for r in cands if r["in_lung"] == "0"]
    nod = rows(os.path.join(CASE, "annotations.csv"))[0]
    n_xyz, n_d = xyz(nod), float(nod["diameter_mm"])
    exc = [xyz(r) for r in rows(os.path.join(CASE, "annotations_excluded.csv"))]
    print(f"{len(cands)} candidates ({len(lung)} in the lungs), {secs:.1f} s including loading the DICOM folder; "
          f"operating point {op:g}")
    hit = [(i, r) for i, r in enumerate(lung) if np.linalg.norm(xyz(r) - n_xyz) < n_d / 2]
    if hit:
        i, r = hit[0]
        print(f"LUNA16 nodule ({n_d:.1f} mm): rank {i + 1} in the lungs, probability {float(r['probability']):.4f}, "
              f"{np.linalg.norm(xyz(r) - n_xyz):.1f} mm from the centre, diameter estimate {float(r['diameter_mm']):.1f} mm, "
              f"{'reported' if float(r['probability']) >= op else 'not reported'} at the operating point")
    else:
        print("LUNA16 nodule: not found")

    def fp(rs):
        return [r for r in rs if np.linalg.norm(xyz(r) - n_xyz) >= n_d / 2]

    for th in (0.5, 0.9, op):
        print(f"p >= {th:g}: {len(fp([r for r in lung if float(r['probability']) >= th]))} false positives in the lungs "
              f"(of them within 5 mm of an excluded finding: "
              f"{sum(1 for r in lung if float(r['probability']) >= th and any(np.linalg.norm(xyz(r) - e) < 5 for e in exc))}), "
              f"{sum(1 for r in out if float(r['probability']) >= th)} outside the lung mask")


if __name__ == "__main__":
    main()
