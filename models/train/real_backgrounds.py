"""False positives per real scan: the bundled pair (or any pair) on every real CT in ../shared/data.

Real backgrounds are the only check of the operating point that does not come from our own
generator (issue 15). For each real series this reports, at fine probabilities 0.5, 0.9, 0.99 and
the fine model's operating point (`speck.threshold`): the candidates in the lungs that are not on
an annotated finding (false positives), those outside the lung mask, the coarse candidates sent to
the fine stage, and the time. For the two patients of Lung-PET-CT-Dx, each reconstructed with two
kernels, it also reports how many findings above the operating point the two reconstructions share
(within 5 mm): a detector that reads the anatomy, not the kernel, gives the same findings.

    python real_backgrounds.py CANDIDATES_CSV TIMINGS_CSV [--model FINE.onnx] [--threshold T]

The CSVs are speck-train-detect's (models/train/phantom-gen), run with fine threshold 0.02 and
outside-lung candidates flagged on the series below, named by the links `real_series()` makes.

Findings: LIDC-IDRI-0001's LUNA16 annotation (and its excluded findings, neither true nor false);
Lung-PET-CT-Dx's per-slice tumour boxes (annotations/<patient>/<SOPInstanceUID>.xml, pixel
columns/rows), turned into one LPS box per series (the union of the slices' boxes, 10 mm margin).
Data: ../shared/data (LIDC-IDRI-0001: CC BY 3.0; Lung-PET-CT-Dx: CC BY 4.0, see its ATTRIBUTION).
"""
from __future__ import annotations

import argparse
import csv
import os
import sys
import xml.etree.ElementTree as ET

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.abspath(os.path.join(HERE, "..", "..", "..", "shared", "data"))
PETCT = os.path.join(DATA, "lung-pet-ct-dx")

# name -> (folder under DATA, patient annotations folder or None, patient)
SERIES = {
    "lidc0001": ("lidc-idri-0001", None, "LIDC-IDRI-0001"),
    "A1a": ("lung-pet-ct-dx/Lung_Dx-A0001/2.000000-5mm-40805", "A0001", "A0001"),
    "A1b": ("lung-pet-ct-dx/Lung_Dx-A0001/3.000000-5mm-41315", "A0001", "A0001"),
    "A2sharp": ("lung-pet-ct-dx/Lung_Dx-A0002/2.000000-ThoraxRoutine__8.0.0__B70f-62919", "A0002", "A0002"),
    "A2smooth": ("lung-pet-ct-dx/Lung_Dx-A0002/3.000000-ThoraxRoutine__8.0.0__B40f-10983", "A0002", "A0002"),
}
MARGIN_MM = 10.0


def real_series(link_dir: str) -> list[str]:
    """Make `link_dir/<name>` links to every real series present; return their paths."""
    os.makedirs(link_dir, exist_ok=True)
    out = []
    for name, (folder, _, _) in SERIES.items():
        src = os.path.join(DATA, folder)
        if not os.path.isdir(src):
            continue
        dst = os.path.join(link_dir, name)
        if not os.path.islink(dst):
            os.symlink(src, dst)
        out.append(dst)
    return out


def rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def tumour_box(folder: str, patient: str):
    """LPS (lo, hi) box of the annotated tumour in one series, or None when no box is on it."""
    import SimpleITK as sitk

    ann = os.path.join(PETCT, "annotations", patient)
    boxes = {}
    for f in os.listdir(ann):
        b = ET.parse(os.path.join(ann, f)).find(".//bndbox")
        boxes[f[:-4]] = [int(float(b.find(k).text)) for k in ("xmin", "ymin", "xmax", "ymax")]
    pts = []
    r = sitk.ImageFileReader()
    for f in sorted(os.listdir(folder)):
        r.SetFileName(os.path.join(folder, f))
        r.ReadImageInformation()
        sop = r.GetMetaData("0008|0018").strip()
        if sop not in boxes:
            continue
        ipp = np.array([float(v) for v in r.GetMetaData("0020|0032").split("\\")])
        iop = np.array([float(v) for v in r.GetMetaData("0020|0037").split("\\")])
        ps = [float(v) for v in r.GetMetaData("0028|0030").split("\\")]  # row spacing, column spacing
        x0, y0, x1, y1 = boxes[sop]
        for c, rr in ((x0, y0), (x1, y1), (x0, y1), (x1, y0)):
            pts.append(ipp + iop[:3] * c * ps[1] + iop[3:] * rr * ps[0])
    if not pts:
        return None
    pts = np.array(pts)
    return pts.min(0) - MARGIN_MM, pts.max(0) + MARGIN_MM


def findings(name: str):
    """(true boxes/spheres, excluded spheres) of a series: list of predicates on an LPS point."""
    folder, ann, patient = SERIES[name]
    if ann is None:
        case = os.path.join(DATA, folder)
        xyz = lambda r: np.array([float(r["coordX"]), float(r["coordY"]), float(r["coordZ"])])  # noqa: E731
        true = [(xyz(r), float(r["diameter_mm"])) for r in rows(os.path.join(case, "annotations.csv"))]
        exc = [(xyz(r), 10.0) for r in rows(os.path.join(case, "annotations_excluded.csv"))]
        return ([lambda p, c=c, d=d: np.linalg.norm(p - c) < max(d / 2, 5) for c, d in true],
                [lambda p, c=c, d=d: np.linalg.norm(p - c) < d / 2 for c, d in exc])
    box = tumour_box(os.path.join(DATA, folder), ann)
    if box is None:
        return [], []
    lo, hi = box
    return [lambda p: bool(np.all(p >= lo) and np.all(p <= hi))], []


def lidc_midline_x() -> float:
    """LPS x of LIDC-IDRI-0001's body midline (mean x of voxels > -500 HU, every 4th slice)."""
    import SimpleITK as sitk

    r = sitk.ImageSeriesReader()
    r.SetFileNames(r.GetGDCMSeriesFileNames(os.path.join(DATA, SERIES["lidc0001"][0])))
    img = r.Execute()
    hu = sitk.GetArrayFromImage(img)[::4]
    xs = np.nonzero(hu > -500)[2]
    return float(img.GetOrigin()[0] + img.GetSpacing()[0] * xs.mean())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("candidates")
    ap.add_argument("timings")
    ap.add_argument("--model", default=os.path.join(HERE, "..", "fine-v7.onnx"))
    ap.add_argument("--threshold", type=float, default=None, help="operating point (default: the model's)")
    ap.add_argument("--split", choices=("all", "train", "val"), default="all",
                    help="which backgrounds: train = A0002 and LIDC-IDRI-0001's right lung, val = A0001 and its "
                         "left lung (robust.py's split), all = every series whole")
    a = ap.parse_args()
    if not os.path.isdir(DATA):
        print(f"no real data at {DATA}; skipped")
        return
    op = a.threshold
    if op is None:
        import onnx

        op = float({p.key: p.value for p in onnx.load(a.model).metadata_props}["speck.threshold"])
    cands = rows(a.candidates)
    times = {r["seriesuid"]: r for r in rows(a.timings)}
    ths = [0.5, 0.9, 0.99, op]
    print(f"operating point {op:g}")
    print("| series | fine-stage candidates | s | " + " | ".join(f"FP p>={t:g}" for t in ths)
          + " | outside-lung p>=0.5 | finding found (best p) |")
    print("|---|---|---|" + "---|" * len(ths) + "---|---|")
    fps = {t: [] for t in ths}
    above = {}
    use = {"all": list(SERIES), "train": ["A2sharp", "A2smooth", "lidc0001"],
           "val": ["A1a", "A1b", "lidc0001"]}[a.split]
    for name in use:
        if name not in times:
            continue
        true, exc = findings(name)
        cs = [r for r in cands if r["seriesuid"] == name]
        if name == "lidc0001" and a.split != "all":
            mid = lidc_midline_x()
            left = a.split == "val"
            cs = [r for r in cs if (float(r["coordX"]) >= mid) == left]
            name_shown = f"lidc0001 ({'left' if left else 'right'} lung)"
        else:
            name_shown = name
        p = lambda r: float(r["probability"])  # noqa: E731
        xyz = lambda r: np.array([float(r["coordX"]), float(r["coordY"]), float(r["coordZ"])])  # noqa: E731
        lung = [r for r in cs if r["in_lung"] == "1"]
        is_true = lambda r: any(f(xyz(r)) for f in true)  # noqa: E731
        is_exc = lambda r: any(f(xyz(r)) for f in exc)  # noqa: E731
        fp = [r for r in lung if not is_true(r) and not is_exc(r)]
        hits = [p(r) for r in lung if is_true(r)]
        row = [name_shown, times[name].get("n_fine_evaluated", "?"), times[name]["detect_s"]]
        for t in ths:
            n = sum(1 for r in fp if p(r) >= t)
            fps[t].append(n)
            row.append(str(n))
        row.append(str(sum(1 for r in cs if r["in_lung"] == "0" and p(r) >= 0.5)))
        row.append(f"{len(true)} finding(s), best p {max(hits):.3f}" if hits else
                   (f"{len(true)} finding(s), not found" if true else "no box on this series"))
        print("| " + " | ".join(row) + " |")
        above[name] = [xyz(r) for r in lung if p(r) >= op]
    print("mean FP/scan: " + ", ".join(f"p>={t:g}: {np.mean(v):.1f}" for t, v in fps.items() if v))
    for a_, b_ in (("A1a", "A1b"), ("A2sharp", "A2smooth")):
        if a_ in above and b_ in above:
            shared = sum(1 for x in above[a_] if any(np.linalg.norm(x - y) < 5 for y in above[b_]))
            print(f"kernels {a_} / {b_}: {len(above[a_])} / {len(above[b_])} findings at the operating point, "
                  f"{shared} of {a_}'s within 5 mm of one of {b_}'s")


if __name__ == "__main__":
    sys.exit(main())
