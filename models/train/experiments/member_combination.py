"""Session-10 experiment (validation only; models/README.md, "Session 10"): the fine model is the
mean of two nets. Would their minimum or geometric mean, which punish disagreement (a sign of a
structure neither net saw in training), keep fewer real false positives at the operating point?

    .venv-train/bin/python models/train/experiments/member_combination.py

Writes fine models whose probability is min(p0, p1) or sqrt(p0 p1) of the bundled members (the
other channels stay the mean), then runs each variant and the bundled pair through the engine on
every validation set (the LIDC-IDRI-0001 left-lung inserts, the real validation backgrounds, the
domain phantoms 3100-3105 and the phantom suite 9001-9020) and reads each variant's own 1 FP/scan
point off the suite, as for every bundled pair. Needs target/release/{speck,speck-train-detect,
speck-train-phantom-gen}, `lidc_insert.py` run, and ../shared/data.
"""
import os
import subprocess
import sys

import numpy as np
import onnx
from onnx import helper, numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))
TRAIN = os.path.dirname(HERE)
REPO = os.path.abspath(os.path.join(TRAIN, "..", ".."))
WORK = os.environ.setdefault("SPECK_TRAIN_WORK", "/tmp/speck-train")
sys.path.insert(0, TRAIN)
from export import operating_point  # noqa: E402


def variant(kind: str, out: str):
    """The bundled fine model with its members' probabilities combined by `kind` (min or geo)."""
    m = onnx.load(os.path.join(REPO, "models", "fine-v7.onnx"))
    g = m.graph
    keep = [n for n in g.node if not (n.output and n.output[0] in ("sum0", "output"))]
    del g.node[:]
    g.node.extend(keep)
    for name, v in (("e_s0", [0]), ("e_s1", [1]), ("e_s5", [5]), ("e_ax", [1])):
        g.initializer.append(numpy_helper.from_array(np.array(v, np.int64), name))
    g.initializer.append(numpy_helper.from_array(np.array(0.5, np.float32), "e_half"))
    new = []
    for k in "01":
        new.append(helper.make_node("Slice", [f"m{k}_output", "e_s0", "e_s1", "e_ax"], [f"p{k}"]))
        new.append(helper.make_node("Slice", [f"m{k}_output", "e_s1", "e_s5", "e_ax"], [f"r{k}"]))
    if kind == "min":
        new.append(helper.make_node("Min", ["p0", "p1"], ["p"]))
    else:
        new += [helper.make_node("Mul", ["p0", "p1"], ["pp"]), helper.make_node("Sqrt", ["pp"], ["p"])]
    new += [helper.make_node("Add", ["r0", "r1"], ["rs"]), helper.make_node("Mul", ["rs", "e_half"], ["r"]),
            helper.make_node("Concat", ["p", "r"], ["output"], axis=1)]
    g.node.extend(new)
    onnx.checker.check_model(m)
    onnx.save(m, out)


def main():
    import robust

    for s in robust.VAL_SEEDS:  # the domain validation phantoms (robust.py --data-only makes them too)
        robust.make_domain_phantom(s)
    env = dict(os.environ, SPECK_EVAL_SKIP_BUILD="1")
    for kind in ("mean", "min", "geo"):
        d = os.path.join(WORK, "members", kind)
        os.makedirs(d, exist_ok=True)
        for f in ("coarse-v7.onnx", "fine-v7.onnx"):
            dst = os.path.join(d, f)
            if os.path.lexists(dst):
                os.remove(dst)
        os.symlink(os.path.join(REPO, "models", "coarse-v7.onnx"), os.path.join(d, "coarse-v7.onnx"))
        if kind == "mean":
            os.symlink(os.path.join(REPO, "models", "fine-v7.onnx"), os.path.join(d, "fine-v7.onnx"))
        else:
            variant(kind, os.path.join(d, "fine-v7.onnx"))
        # the suite's phantoms and truth (evaluate.sh makes them), then every validation set
        subprocess.run([os.path.join(TRAIN, "evaluate.sh")], check=True, cwd=REPO,
                       env=dict(env, SPECK_EVAL_MODELS=d, SPECK_EVAL_NAME=f"members-{kind}"))
        subprocess.run([os.path.join(TRAIN, "evaluate_lidc.sh")], check=True, cwd=REPO,
                       env=dict(env, SPECK_EVAL_MODELS=d, SPECK_EVAL_NAME=f"lidc-members-{kind}"))
        subprocess.run([sys.executable, os.path.join(TRAIN, "robust.py"), "--validate", d, "--tag", "v7",
                        "--sets", "real,domain"], check=True, cwd=REPO)
        t = operating_point(os.path.join(WORK, "eval", f"members-{kind}", "froc.csv"))
        print(f"{kind}: 1 FP/scan on the suite at {t:.6g}")
        print(subprocess.run([sys.executable, os.path.join(TRAIN, "real_backgrounds.py"),
                              os.path.join(WORK, f"val-{kind}", "real.candidates.csv"),
                              os.path.join(WORK, f"val-{kind}", "real.timings.csv"), "--split", "val",
                              "--threshold", str(t)], check=True, capture_output=True, text=True).stdout)


if __name__ == "__main__":
    main()
