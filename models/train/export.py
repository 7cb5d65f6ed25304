"""Export the trained nets to self-contained ONNX files with Speck's contract metadata
(docs/models.md), and check them against onnxruntime."""
from __future__ import annotations

import os
import sys

import numpy as np
import onnx
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from nets import HU_WINDOW, SPACING, Coarse, CoarseExport, Fine, FineExport  # noqa: E402

VERSION = "3.0.0"
TAG = "v3"                       # file names: models/coarse-v3.onnx, models/fine-v3.onnx
COARSE_PATCH = (32, 128, 128)   # tile the engine feeds (z,y,x); divisible by (4,8,8)
COARSE_STRIDE = (1, 2, 2)
FINE_PATCH = (32, 48, 48)
COARSE_THRESHOLD = 0.2           # suggested candidate threshold on the coarse heatmap
FINE_THRESHOLD = 0.9863          # 1 FP/scan on the 20 held-out phantoms, flip TTA (see models/README.md)
MEMBER_TAG = "v7"                # the bundled pair (train.py::member): models/coarse-v7.onnx, fine-v7.onnx
MEMBER_VERSION = "7.0.0"         # the v3 coarse model, the mean of two fine nets
MEMBER_COARSE_VERSION = "7.1.0"  # the same coarse weights, input axes freed (speck.tile_multiple)
MEMBER_THRESHOLD = 0.96824       # its 1 FP/scan point on the 20 held-out phantoms, flip TTA (models/README.md)


def fmt(v):
    return ",".join(f"{x:g}" for x in v)


COARSE_TILE_MULTIPLE = (4, 8, 8)  # the coarse net is fully convolutional: any multiple of this runs


def _export(model, shape, path, meta, spatial_dynamic=False):
    model.eval()
    x = torch.rand((2, 1) + tuple(shape))
    axes = {0: "N"}
    if spatial_dynamic:  # a fully convolutional dense net: the engine may feed larger tiles
        axes = {0: "N", 2: "D", 3: "H", 4: "W"}
    torch.onnx.export(model, (x,), path, dynamo=False, opset_version=17, input_names=["input"],
                      output_names=["output"], dynamic_axes={"input": axes, "output": axes},
                      do_constant_folding=True)
    m = onnx.load(path)
    del m.metadata_props[:]
    for k, v in meta.items():
        p = m.metadata_props.add()
        p.key, p.value = k, v
    m.producer_name = "speck models/train"
    onnx.checker.check_model(m)
    onnx.save(m, path)
    # check against onnxruntime
    import onnxruntime as ort

    s = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    with torch.no_grad():
        ref = model(x).numpy()
    got = s.run(None, {"input": x.numpy()})[0]
    diff = float(np.abs(ref - got).max())
    print(f"{os.path.basename(path)}: {os.path.getsize(path) / 1e6:.2f} MB, ORT max abs diff {diff:.2e}")
    if diff > 1e-4:
        raise SystemExit(f"ONNX export of {path} differs from torch by {diff}")
    return diff


def common_meta(role, patch, stride, channels, thr):
    return {"speck.role": role, "speck.version": VERSION, "speck.spacing_mm": fmt(SPACING),
            "speck.patch_size": fmt(patch), "speck.output_stride": fmt(stride),
            "speck.hu_window": fmt(HU_WINDOW), "speck.normalization": "window_to_unit",
            "speck.output_channels": channels, "speck.threshold": f"{thr:g}"}


def export_all(work, out):
    os.makedirs(out, exist_ok=True)
    c = Coarse()
    c.load_state_dict(torch.load(os.path.join(work, "coarse.pt")))
    _export(CoarseExport(c), COARSE_PATCH, os.path.join(out, f"coarse-{TAG}.onnx"),
            {**common_meta("coarse", COARSE_PATCH, COARSE_STRIDE, "prob", COARSE_THRESHOLD),
             "speck.tile_multiple": fmt(COARSE_TILE_MULTIPLE)}, spatial_dynamic=True)
    export_fine(work, os.path.join(out, f"fine-{TAG}.onnx"))


def export_fine(work, path, threshold=FINE_THRESHOLD):
    """Only the fine net of `work` (fine.pt) to `path`, with the contract's metadata."""
    f = Fine(FINE_PATCH)
    f.load_state_dict(torch.load(os.path.join(work, "fine.pt")))
    _export(FineExport(f), FINE_PATCH, path,
            dict(common_meta("fine", FINE_PATCH, (1, 1, 1), "prob,diameter_mm,dz,dy,dx", threshold),
                 **{"speck.flip_tta": "true"}))  # the operating point is measured with flip TTA


def set_metadata(path, updates):
    """Rewrite some `speck.*` metadata of an ONNX file in place (weights untouched)."""
    m = onnx.load(path)
    have = {p.key: p for p in m.metadata_props}
    for k, v in updates.items():
        if k in have:
            have[k].value = v
        else:
            p = m.metadata_props.add()
            p.key, p.value = k, v
    onnx.checker.check_model(m)
    onnx.save(m, path)


def average_fine(paths, out, meta_from):
    """One fine model that runs every model in `paths` on the same input and averages their
    outputs (probability, diameter, offsets), as a single self-contained ONNX graph; metadata
    from `meta_from`. Checked against the mean of the members under onnxruntime."""
    from onnx import TensorProto, compose, helper

    members = [onnx.load(p) for p in paths]
    nodes, inits, infos, outs = [], [], [], []
    for i, m in enumerate(members):
        m = compose.add_prefix(m, prefix=f"m{i}_", rename_inputs=False, rename_outputs=True)
        nodes += list(m.graph.node)
        inits += list(m.graph.initializer)
        infos += list(m.graph.value_info)
        outs.append(m.graph.output[0].name)
    total = outs[0]
    for j, o in enumerate(outs[1:]):
        nodes.append(helper.make_node("Add", [total, o], [f"sum{j}"]))
        total = f"sum{j}"
    inits.append(helper.make_tensor("mean_scale", TensorProto.FLOAT, [], [1.0 / len(members)]))
    nodes.append(helper.make_node("Mul", [total, "mean_scale"], ["output"]))
    first = members[0]
    g = helper.make_graph(nodes, "fine_mean", list(first.graph.input), list(first.graph.output), inits,
                          value_info=infos)
    m = helper.make_model(g, opset_imports=first.opset_import, producer_name="speck models/train")
    m.ir_version = first.ir_version
    for p in onnx.load(meta_from).metadata_props:
        q = m.metadata_props.add()
        q.key, q.value = p.key, p.value
    onnx.checker.check_model(m)
    onnx.save(m, out)
    import onnxruntime as ort

    x = np.random.default_rng(0).random((3, 1) + FINE_PATCH, dtype=np.float32)
    want = np.mean([ort.InferenceSession(p, providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
                    for p in paths], axis=0)
    got = ort.InferenceSession(out, providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    diff = float(np.abs(want - got).max())
    print(f"{os.path.basename(out)}: {os.path.getsize(out) / 1e6:.2f} MB, mean of {len(paths)}, "
          f"ORT max abs diff {diff:.2e}")
    if diff > 1e-5:
        raise SystemExit(f"averaged fine model {out} differs from the mean of its members by {diff}")


def operating_point(froc_csv, fp_per_scan=1.0):
    """The lowest threshold of a `speck eval --csv` FROC curve (`threshold,fp_per_scan,sensitivity`,
    thresholds descending) at which false positives per scan stay at or under `fp_per_scan`: how
    every bundled operating point was read off the validation suite."""
    import csv
    best = None
    for r in csv.DictReader(open(froc_csv)):
        if r["threshold"] == "inf":
            continue
        if float(r["fp_per_scan"]) > fp_per_scan:
            break
        best = float(r["threshold"])
    if best is None:
        raise SystemExit(f"{froc_csv}: no threshold keeps false positives at or under {fp_per_scan} per scan")
    return best


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--operating-point":
        # export.py --operating-point FROC_CSV FINE_ONNX: set the fine model's speck.threshold to the
        # validation suite's 1 FP/scan point (weights untouched)
        t = operating_point(sys.argv[2])
        set_metadata(sys.argv[3], {"speck.threshold": f"{t:g}"})
        print(f"{sys.argv[3]}: speck.threshold {t:g} (1 FP/scan on {sys.argv[2]})")
    else:
        export_all(sys.argv[1], sys.argv[2])


def make_fully_convolutional(path, version):
    """Free the D, H, W input axes of an exported coarse model and add `speck.tile_multiple`
    (weights and graph untouched), so the engine may run tiles larger than the patch. How the
    bundled coarse-v7.onnx (7.1.0) was made from the v3 coarse export (7.0.0)."""
    m = onnx.load(path)
    dims = m.graph.input[0].type.tensor_type.shape.dim
    for i, name in zip((2, 3, 4), ("D", "H", "W")):
        dims[i].ClearField("dim_value")
        dims[i].dim_param = name
    onnx.save(m, path)
    set_metadata(path, {"speck.tile_multiple": fmt(COARSE_TILE_MULTIPLE), "speck.version": version})
