"""Session-10 experiment (validation only; models/README.md, "Session 10"): do sharp-kernel
textures hurt the bundled pair, and would blurring such scans in-plane (kernel harmonisation) help?

    .venv-train/bin/python models/train/experiments/kernel_texture.py none [H0 ...]

`none` runs the pair on every input as it is: the real series (A0001 both kernels and
LIDC-IDRI-0001 as validation, A0002 both kernels shown beside them), the domain validation
phantoms 3100-3105, and the same phantoms given a sharp-kernel look (edge enhancement and
high-pass noise, `sharpen_native`). Each H0 (HU) first blurs every scan whose lung high-pass noise
(`hp_of`) exceeds H0 just enough to bring it under (only `none` was run: it showed no need).
Every input is written on the model grid (1.0 x 0.7 x 0.7 mm), so all conditions share one path.
Needs target/release/{speck,speck-train-detect} and ../shared/data."""
import os, sys, json, shutil, subprocess
os.environ.setdefault("SPECK_TRAIN_WORK", "/tmp/speck-train")
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
import numpy as np, SimpleITK as sitk
from scipy import ndimage as ndi
import robust as RB
import real_backgrounds as R

OUT = os.path.join(os.environ["SPECK_TRAIN_WORK"], "kernel-texture")
MODELS = os.path.abspath(os.path.join(HERE, "..", ".."))  # models/


def grid(img):
    return RB.resample_to_model_grid(img, sitk.sitkFloat32)


def hp_of(hu):
    sub = hu[::3]
    hp = sub - ndi.gaussian_filter(sub, (0, 1.5, 1.5))
    lung = ndi.binary_erosion((sub > -950) & (sub < -650), np.ones((1, 7, 7)))
    v = hp[lung]
    return float(np.median(np.abs(v - np.median(v))) * 1.4826)


def blur_xy(hu, s_mm):
    return hu if s_mm <= 0 else ndi.gaussian_filter(hu, (0, s_mm / 0.7, s_mm / 0.7))


LADDER = [0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 1.0, 1.2]


def harmonise(hu, h0):
    h = hp_of(hu)
    if h <= h0:
        return hu, 0.0, h, h
    for s in LADDER:
        b = blur_xy(hu, s)
        hb = hp_of(b)
        if hb <= h0:
            return b, s, h, hb
    return b, LADDER[-1], h, hb


def write(hu, ref, path):
    out = sitk.GetImageFromArray(np.round(hu).clip(-1024, 3071).astype(np.int16))
    out.CopyInformation(ref)
    sitk.WriteImage(out, path)


def sharpen_native(img, seed, sd, edge=0.6):
    """A sharp-kernel look on a native phantom: edge enhancement and high-pass (ramp-like) noise."""
    hu = sitk.GetArrayFromImage(img).astype(np.float32)
    rng = np.random.default_rng(seed)
    hu = hu + edge * (hu - ndi.gaussian_filter(hu, (0, 0.8, 0.8)))
    n = rng.standard_normal(hu.shape).astype(np.float32)
    n = n - ndi.gaussian_filter(n, (0, 1.0, 1.0))
    n *= sd / n.std()
    out = sitk.GetImageFromArray(np.round(hu + n).clip(-1024, 3071).astype(np.int16))
    out.CopyInformation(img)
    return out


def base_inputs():
    """{set: [(name, grid image, truth dir or None)]} on the model grid, cached as float arrays."""
    os.makedirs(OUT, exist_ok=True)
    sets = {"real": [], "domain": [], "domain_sharp": []}
    for name in ["A1a", "A1b", "lidc0001", "A2sharp", "A2smooth"]:
        sets["real"].append((name, grid(RB.read_native(os.path.join(R.DATA, R.SERIES[name][0]))), None))
    for s in RB.VAL_SEEDS:
        d = RB.make_domain_phantom(s)
        img = RB.read_native(RB.mhd_of(d))
        uid = os.path.basename(RB.mhd_of(d))[:-4]
        sets["domain"].append((uid, grid(img), d))
        sd = float(np.random.default_rng(s).uniform(25, 45))
        sets["domain_sharp"].append((uid, grid(sharpen_native(img, s, sd)), d))
    return sets


def run(cond, sets, h0):
    """Write every scan of `sets` (harmonised at h0; None = as is), run the engine, evaluate."""
    res = {"cond": cond, "h0": h0, "sigma": {}}
    for st, items in sets.items():
        d = os.path.join(OUT, cond, st)
        os.makedirs(d, exist_ok=True)
        scans, dirs = [], []
        for name, g, truth in items:
            hu = sitk.GetArrayFromImage(g)
            if h0 is not None:
                hu, s, h, hb = harmonise(hu, h0)
            else:
                s, h, hb = 0.0, hp_of(hu), None
            res["sigma"][f"{st}:{name}"] = (s, round(h, 1), None if hb is None else round(hb, 1))
            if truth is not None:
                sd = os.path.join(d, name)
                os.makedirs(sd, exist_ok=True)
                for f in ("annotations.csv", "annotations_excluded.csv"):
                    shutil.copy(os.path.join(truth, f), sd)
                p = os.path.join(sd, name + ".mhd")
                dirs.append(sd)
            else:
                p = os.path.join(d, name + ".mhd")
            if not os.path.exists(p):
                write(hu, g, p)
            scans.append(p)
        prefix = os.path.join(d, "run")
        RB.engine(os.path.join(MODELS, "coarse-v7.onnx"), os.path.join(MODELS, "fine-v7.onnx"), prefix, 0.02, scans,
                  tta="model")
        if st == "real":
            for split in ("val", "train"):
                txt = subprocess.run([sys.executable, os.path.join(RB.HERE, "real_backgrounds.py"), prefix + ".candidates.csv",
                                      prefix + ".timings.csv", "--split", split], check=True, capture_output=True,
                                     text=True).stdout
                res[f"real_{split}"] = txt
        else:
            truth = RB.combined_truth(dirs, os.path.join(d, "truth"))
            js, txt = RB.speck_eval(truth, prefix + ".candidates.csv", prefix)
            res[st] = txt
    json.dump(res, open(os.path.join(OUT, cond + ".json"), "w"), indent=1)
    return res


if __name__ == "__main__":
    sets = base_inputs()
    for cond in sys.argv[1:]:
        h0 = None if cond == "none" else float(cond)
        r = run(cond if h0 is None else f"h{cond}", sets, h0)
        print(json.dumps(r["sigma"]))
        for k in ("real_val", "real_train", "domain", "domain_sharp"):
            print(f"== {cond} {k}\n{r[k]}")
