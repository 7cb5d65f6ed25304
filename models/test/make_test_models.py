#!/usr/bin/env python3
"""Build the tiny, analytic ONNX models that speck-detect's tests run.

Every model here is made of fixed operators with hand-computed weights: nothing is trained, so the
behaviour of each model is known exactly and the tests can assert real positions and values.
Run from the repository root (needs only the `onnx` and `numpy` packages of ./.venv):

    .venv/bin/python models/test/make_test_models.py

The files are small (a few KB each) and committed next to this script. See docs/models.md for the
metadata contract ("speck.*" keys) that every valid model carries.

Models (input "image" [N,1,D,H,W] float32, already windowed to [0,1] by Speck unless said otherwise):

- blob_coarse_1mm.onnx  role=coarse, spacing 1 mm, patch 32^3, stride 1, channels "prob".
    A "bright blob surrounded by dark" filter: one Conv3d (9^3 kernel, 15 output channels) computes
    the mean of a centre ball (radius 1.5 vox) and the means of 14 small boxes around it (6 planes
    at +-4 vox on each axis, 8 cubes at (+-3,+-3,+-3)); score = centre - max(sides); then
    prob = sigmoid(20 * (score - 0.2)). An isolated 3-5 voxel bright blob scores ~0.6, an edge or
    a vessel ~0 (one side is bright), flat regions 0.
- blob_coarse_2mm.onnx  role=coarse, spacing 2 mm, patch 24^3, stride 1: the same idea at 2 mm
    (centre radius 1, sides single voxels at +-2 vox and (+-2,+-2,+-2)), threshold 0.1: a cheap,
    high-recall first pass.
- blob_coarse_1mm_stride2.onnx  as blob_coarse_1mm followed by MaxPool(2): output stride 2.
- blob_seg_1mm.onnx  the blob_coarse_1mm graph declared as role=segmentation.
- blob_fine_1mm.onnx  role=fine, spacing 1 mm, patch 16^3, output [N,5] "prob,diameter_mm,dz,dy,dx".
    prob: the blob score of the central 6^3 positions (valid 9^3 conv), max, sigmoid as above.
    diameter_mm: voxels above 0.45 (HU > -370 with the lung window) inside a ball of radius 5 around
    the patch centre, V, as an equivalent sphere 2*(3V/4pi)^(1/3) (x 1 mm).
    dz,dy,dx: centroid of those voxels minus the patch centre ((P-1)/2), in mm.
- bench_conv4_64.onnx  role=coarse, spacing 1 mm, patch 64^3: four 3x3x3 Conv3d layers (1->16->16->16->1,
    ReLU between, fixed seeded random weights) and 0.5*sigmoid: a benchmark workload shaped like a
    small real network (~15 kMAC per voxel), never above its threshold 0.9 (no peaks).
- identity_seg_1mm.onnx  role=segmentation, output = input (patch 16^3): tiling/blending tests.
- identity_seg_1mm_f16.onnx  same with float16 input and output.
- identity_seg_1mm_fcn.onnx  identity_seg_1mm with "speck.tile_multiple" = 4,4,4: fitted (larger) tiles.
- invalid_rank4.onnx  input rank 4: must be refused.
- invalid_no_role.onnx  blob_coarse_1mm without "speck.role".
- invalid_bad_spacing.onnx  "speck.spacing_mm" = "1.0,abc,1.0".
- invalid_patch_mismatch.onnx  "speck.patch_size" disagrees with the static input shape.
- invalid_static_tile_multiple.onnx  "speck.tile_multiple" on a model whose input axes are static.
- invalid_garbage.onnx  random bytes: not an ONNX model at all.
"""

import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))
OPSET = 17
LUNG_WINDOW = "-1000,400"


def meta(role, spacing, patch, stride, channels, window=LUNG_WINDOW, norm="window_to_unit", extra=None):
    d = {
        "speck.role": role,
        "speck.version": "test-1",
        "speck.spacing_mm": ",".join(str(float(s)) for s in spacing),
        "speck.patch_size": ",".join(str(int(p)) for p in patch),
        "speck.output_stride": ",".join(str(int(s)) for s in stride),
        "speck.hu_window": window,
        "speck.normalization": norm,
        "speck.output_channels": channels,
    }
    if extra:
        d.update(extra)
    return d


def save(model, name, metadata):
    for k, v in metadata.items():
        p = model.metadata_props.add()
        p.key, p.value = k, v
    model.producer_name = "speck models/test/make_test_models.py"
    model.ir_version = 8  # ONNX Runtime 1.31 reads IR <= 13; 8 is what opset 17 needs
    onnx.checker.check_model(model)
    path = os.path.join(HERE, name)
    onnx.save(model, path)
    print(f"wrote {path} ({os.path.getsize(path)} bytes)")


def blob_kernel(radius, centre_r, axis_off, axis_half, diag_off, diag_half):
    """15-channel kernel: channel 0 = centre-ball mean, 1..6 = axis planes, 7..14 = diagonal cubes."""
    k = 2 * radius + 1
    w = np.zeros((15, 1, k, k, k), np.float32)
    g = np.arange(k) - radius
    zz, yy, xx = np.meshgrid(g, g, g, indexing="ij")
    ball = (zz**2 + yy**2 + xx**2) <= centre_r**2 + 1e-9
    w[0, 0][ball] = 1.0 / ball.sum()
    ch = 1
    for axis in range(3):
        for sign in (-1, 1):
            coords = [zz, yy, xx]
            m = coords[axis] == sign * axis_off
            for other in range(3):
                if other != axis:
                    m &= np.abs(coords[other]) <= axis_half
            w[ch, 0][m] = 1.0 / m.sum()
            ch += 1
    for sz in (-1, 1):
        for sy in (-1, 1):
            for sx in (-1, 1):
                m = (
                    (np.abs(zz - sz * diag_off) <= diag_half)
                    & (np.abs(yy - sy * diag_off) <= diag_half)
                    & (np.abs(xx - sx * diag_off) <= diag_half)
                )
                w[ch, 0][m] = 1.0 / m.sum()
                ch += 1
    assert ch == 15
    return w


def blob_score_nodes(inp, out, kernel, pad, prefix):
    """Nodes computing score = centre - max(sides) from `inp` into `out` ([N,1,...])."""
    r = kernel.shape[-1] // 2
    pads = [r] * 6 if pad else [0] * 6
    inits = [
        numpy_helper.from_array(kernel, f"{prefix}_w"),
        numpy_helper.from_array(np.array([0], np.int64), f"{prefix}_s0"),
        numpy_helper.from_array(np.array([1], np.int64), f"{prefix}_s1"),
        numpy_helper.from_array(np.array([15], np.int64), f"{prefix}_s15"),
        numpy_helper.from_array(np.array([1], np.int64), f"{prefix}_ax1"),
    ]
    nodes = [
        helper.make_node("Conv", [inp, f"{prefix}_w"], [f"{prefix}_f"], pads=pads),
        helper.make_node("Slice", [f"{prefix}_f", f"{prefix}_s0", f"{prefix}_s1", f"{prefix}_ax1"], [f"{prefix}_c"]),
        helper.make_node("Slice", [f"{prefix}_f", f"{prefix}_s1", f"{prefix}_s15", f"{prefix}_ax1"], [f"{prefix}_sides"]),
        helper.make_node("ReduceMax", [f"{prefix}_sides"], [f"{prefix}_m"], axes=[1], keepdims=1),
        helper.make_node("Sub", [f"{prefix}_c", f"{prefix}_m"], [out]),
    ]
    return nodes, inits


def prob_nodes(score, out, gain, thr, prefix):
    inits = [
        numpy_helper.from_array(np.array(thr, np.float32), f"{prefix}_thr"),
        numpy_helper.from_array(np.array(gain, np.float32), f"{prefix}_gain"),
    ]
    nodes = [
        helper.make_node("Sub", [score, f"{prefix}_thr"], [f"{prefix}_d"]),
        helper.make_node("Mul", [f"{prefix}_d", f"{prefix}_gain"], [f"{prefix}_g"]),
        helper.make_node("Sigmoid", [f"{prefix}_g"], [out]),
    ]
    return nodes, inits


def io(name, elem, shape):
    return helper.make_tensor_value_info(name, elem, shape)


def dyn5(c):
    return ["N", c, "D", "H", "W"]


def blob_coarse(kernel, thr, patch, spacing, role="coarse", pool=False, input_shape=None):
    nodes, inits = blob_score_nodes("image", "score", kernel, True, "blob")
    pn, pi = prob_nodes("score", "p" if pool else "prob", 20.0, thr, "sig")
    nodes += pn
    inits += pi
    stride = (1, 1, 1)
    if pool:
        nodes.append(helper.make_node("MaxPool", ["p"], ["prob"], kernel_shape=[2, 2, 2], strides=[2, 2, 2]))
        stride = (2, 2, 2)
    graph = helper.make_graph(
        nodes,
        "speck_blob_coarse",
        [io("image", TensorProto.FLOAT, input_shape or dyn5(1))],
        [io("prob", TensorProto.FLOAT, dyn5(1))],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    return model, meta(role, spacing, patch, stride, "prob")


def blob_fine():
    p = 16
    kernel = blob_kernel(4, 1.5, 4, 1, 3, 1)
    nodes, inits = blob_score_nodes("image", "score", kernel, False, "blob")  # [N,1,8,8,8]
    # central 6^3 of the 8^3 valid positions: positions 1..6 = patch voxels 5..10 (centre 7.5 +- 2.5)
    inits += [
        numpy_helper.from_array(np.array([1, 1, 1], np.int64), "c_start"),
        numpy_helper.from_array(np.array([7, 7, 7], np.int64), "c_end"),
        numpy_helper.from_array(np.array([2, 3, 4], np.int64), "c_axes"),
    ]
    nodes.append(helper.make_node("Slice", ["score", "c_start", "c_end", "c_axes"], ["score_c"]))
    nodes.append(helper.make_node("ReduceMax", ["score_c"], ["smax"], axes=[1, 2, 3, 4], keepdims=0))
    pn, pi = prob_nodes("smax", "prob_n", 20.0, 0.2, "sig")
    nodes += pn
    inits += pi
    # size and centroid of the bright voxels near the centre
    g = np.arange(p, dtype=np.float32) - (p - 1) / 2.0
    zz, yy, xx = np.meshgrid(g, g, g, indexing="ij")
    ball = ((zz**2 + yy**2 + xx**2) <= 5.0**2).astype(np.float32)
    inits += [
        numpy_helper.from_array(np.array(0.45, np.float32), "bright_thr"),
        numpy_helper.from_array(ball[None, None], "ball"),
        numpy_helper.from_array((ball * zz)[None, None], "cz"),
        numpy_helper.from_array((ball * yy)[None, None], "cy"),
        numpy_helper.from_array((ball * xx)[None, None], "cx"),
        numpy_helper.from_array(np.array([1, 2, 3, 4], np.int64), "ax1234"),
        numpy_helper.from_array(np.array([1], np.int64), "ax1"),
        numpy_helper.from_array(np.array(1e-6, np.float32), "eps"),
        numpy_helper.from_array(np.array(3.0 / (4.0 * np.pi), np.float32), "k_vol"),
        numpy_helper.from_array(np.array(1.0 / 3.0, np.float32), "third"),
        numpy_helper.from_array(np.array(2.0, np.float32), "two"),
    ]
    nodes += [
        helper.make_node("Greater", ["image", "bright_thr"], ["bright_b"]),
        helper.make_node("Cast", ["bright_b"], ["bright"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["bright", "ball"], ["mb"]),
        helper.make_node("ReduceSum", ["mb", "ax1234"], ["vol"], keepdims=0),
        helper.make_node("Mul", ["vol", "k_vol"], ["r3"]),
        helper.make_node("Pow", ["r3", "third"], ["r"]),
        helper.make_node("Mul", ["r", "two"], ["diam_n"]),
        helper.make_node("Max", ["vol", "eps"], ["vol_safe"]),
    ]
    for c in ("z", "y", "x"):
        nodes += [
            helper.make_node("Mul", ["bright", f"c{c}"], [f"m{c}"]),
            helper.make_node("ReduceSum", [f"m{c}", "ax1234"], [f"s{c}"], keepdims=0),
            helper.make_node("Div", [f"s{c}", "vol_safe"], [f"d{c}_n"]),
        ]
    outs = ["prob_n", "diam_n", "dz_n", "dy_n", "dx_n"]
    for o in outs:
        nodes.append(helper.make_node("Unsqueeze", [o, "ax1"], [o + "_u"]))
    nodes.append(helper.make_node("Concat", [o + "_u" for o in outs], ["out"], axis=1))
    graph = helper.make_graph(
        nodes,
        "speck_blob_fine",
        [io("image", TensorProto.FLOAT, ["N", 1, p, p, p])],
        [io("out", TensorProto.FLOAT, ["N", 5])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    return model, meta("fine", (1, 1, 1), (p, p, p), (1, 1, 1), "prob,diameter_mm,dz,dy,dx")


def identity(elem):
    graph = helper.make_graph(
        [helper.make_node("Identity", ["image"], ["out"])],
        "speck_identity",
        [io("image", elem, dyn5(1))],
        [io("out", elem, dyn5(1))],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    return model, meta("segmentation", (1, 1, 1), (16, 16, 16), (1, 1, 1), "prob")


def conv4_bench():
    rng = np.random.default_rng(64)
    chans = [1, 16, 16, 16, 1]
    nodes, inits = [], []
    x = "image"
    for i in range(4):
        cin, cout = chans[i], chans[i + 1]
        w = (rng.standard_normal((cout, cin, 3, 3, 3)) / np.sqrt(cin * 27)).astype(np.float32)
        b = np.zeros(cout, np.float32)
        inits += [numpy_helper.from_array(w, f"w{i}"), numpy_helper.from_array(b, f"b{i}")]
        y = f"c{i}"
        nodes.append(helper.make_node("Conv", [x, f"w{i}", f"b{i}"], [y], pads=[1] * 6))
        if i < 3:
            nodes.append(helper.make_node("Relu", [y], [f"r{i}"]))
            y = f"r{i}"
        x = y
    inits.append(numpy_helper.from_array(np.array(0.5, np.float32), "half"))
    nodes.append(helper.make_node("Sigmoid", [x], ["sg"]))
    nodes.append(helper.make_node("Mul", ["sg", "half"], ["prob"]))
    graph = helper.make_graph(
        nodes, "speck_bench_conv4", [io("image", TensorProto.FLOAT, dyn5(1))], [io("prob", TensorProto.FLOAT, dyn5(1))], inits
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    return model, meta("coarse", (1, 1, 1), (64, 64, 64), (1, 1, 1), "prob", extra={"speck.threshold": "0.9"})


def main():
    k1 = blob_kernel(4, 1.5, 4, 1, 3, 1)
    k2 = blob_kernel(2, 1.0, 2, 0, 2, 0)

    m, d = blob_coarse(k1, 0.2, (32, 32, 32), (1, 1, 1))
    d["speck.threshold"] = "0.5"
    save(m, "blob_coarse_1mm.onnx", d)
    m, d = blob_coarse(k2, 0.1, (24, 24, 24), (2, 2, 2))
    d["speck.threshold"] = "0.3"  # flat lung scores sigmoid(-2) = 0.12 with this model
    save(m, "blob_coarse_2mm.onnx", d)
    m, d = blob_coarse(k1, 0.2, (32, 32, 32), (1, 1, 1), pool=True)
    save(m, "blob_coarse_1mm_stride2.onnx", d)
    m, d = blob_coarse(k1, 0.2, (32, 32, 32), (1, 1, 1), role="segmentation")
    save(m, "blob_seg_1mm.onnx", d)
    m, d = blob_fine()
    save(m, "blob_fine_1mm.onnx", d)
    m, d = conv4_bench()
    save(m, "bench_conv4_64.onnx", d)
    m, d = identity(TensorProto.FLOAT)
    save(m, "identity_seg_1mm.onnx", d)
    m, d = identity(TensorProto.FLOAT16)
    save(m, "identity_seg_1mm_f16.onnx", d)
    m, d = identity(TensorProto.FLOAT)
    save(m, "identity_seg_1mm_fcn.onnx", {**d, "speck.tile_multiple": "4,4,4"})
    m, d = blob_coarse(k1, 0.2, (32, 32, 32), (1, 1, 1), input_shape=["N", 1, 32, 32, 32])
    save(m, "invalid_static_tile_multiple.onnx", {**d, "speck.tile_multiple": "4,4,4"})

    # invalid models
    graph = helper.make_graph(
        [helper.make_node("Identity", ["image"], ["out"])],
        "speck_rank4",
        [io("image", TensorProto.FLOAT, ["N", 1, "H", "W"])],
        [io("out", TensorProto.FLOAT, ["N", 1, "H", "W"])],
    )
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    save(m, "invalid_rank4.onnx", meta("segmentation", (1, 1, 1), (16, 16, 16), (1, 1, 1), "prob"))

    m, d = blob_coarse(k1, 0.2, (32, 32, 32), (1, 1, 1))
    del d["speck.role"]
    save(m, "invalid_no_role.onnx", d)

    m, d = blob_coarse(k1, 0.2, (32, 32, 32), (1, 1, 1))
    d["speck.spacing_mm"] = "1.0,abc,1.0"
    save(m, "invalid_bad_spacing.onnx", d)

    m, d = blob_coarse(k1, 0.2, (32, 32, 32), (1, 1, 1), input_shape=["N", 1, 16, 16, 16])
    save(m, "invalid_patch_mismatch.onnx", d)

    rng = np.random.default_rng(4)
    path = os.path.join(HERE, "invalid_garbage.onnx")
    with open(path, "wb") as f:
        f.write(rng.integers(0, 256, 512, dtype=np.uint8).tobytes())
    print(f"wrote {path} (512 bytes)")


if __name__ == "__main__":
    main()
