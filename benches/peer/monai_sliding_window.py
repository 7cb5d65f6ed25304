#!/usr/bin/env python3
"""Peer for benches/detect.rs: MONAI's sliding_window_inference driving the same ONNX model.

Reads the raw int16 volume the Rust bench wrote, normalises it exactly as Speck does (clip to the
model's speck.hu_window, speck.normalization), pads with -1000 HU (constant mode, normalised), and
runs monai.inferers.sliding_window_inference with the model's patch size, the same overlap, batch
(sw_batch_size), Gaussian importance map with sigma_scale=0.125, and ONNX Runtime with the same
number of intra-op threads (torch also limited to that many threads). Prints one JSON line:
seconds (inference only), peak_rss_mb (whole process, ru_maxrss), and how many of the planted
blobs have a map value >= the threshold at their centre.

    python monai_sliding_window.py VOLUME.raw Z,Y,X MODEL.onnx THREADS OVERLAP BATCH BLOBS.json
"""

import json
import resource
import sys
import time

import numpy as np
import onnx
import onnxruntime as ort
import torch
from monai.inferers import sliding_window_inference


def main():
    raw, shape, model_path, threads, overlap, batch, blobs_path = sys.argv[1:8]
    shape = tuple(int(v) for v in shape.split(","))
    threads, overlap, batch = int(threads), float(overlap), int(batch)
    torch.set_num_threads(threads)

    meta = {p.key: p.value for p in onnx.load(model_path, load_external_data=False).metadata_props}
    patch = tuple(int(v) for v in meta["speck.patch_size"].split(","))
    lo, hi = (float(v) for v in meta["speck.hu_window"].split(","))
    norm = meta["speck.normalization"]
    threshold = float(meta.get("speck.threshold", "0.5"))

    def normalise(hu):
        c = np.clip(hu, lo, hi)
        if norm == "window_to_unit":
            return (c - lo) / (hi - lo)
        mean, std = (float(v) for v in norm.split(":", 1)[1].split(","))
        return (c - mean) / std

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(model_path, so, providers=["CPUExecutionProvider"])
    in_name = sess.get_inputs()[0].name

    def predictor(x):
        out = sess.run(None, {in_name: x.numpy().astype(np.float32, copy=False)})[0]
        return torch.from_numpy(out)

    vol = np.fromfile(raw, dtype=np.int16).reshape(shape)
    t0 = time.perf_counter()
    x = torch.from_numpy(normalise(vol.astype(np.float32))[None, None])
    with torch.no_grad():
        y = sliding_window_inference(
            x,
            roi_size=patch,
            sw_batch_size=batch,
            predictor=predictor,
            overlap=overlap,
            mode="gaussian",
            sigma_scale=0.125,
            padding_mode="constant",
            cval=float(normalise(np.float32(-1000.0))),
            sw_device="cpu",
            device="cpu",
        )
    seconds = time.perf_counter() - t0
    prob = y[0, 0].numpy()
    blobs = json.load(open(blobs_path))
    found = 0
    for b in blobs:
        z, yy, xx = (int(round(v)) for v in b)
        if prob[z, yy, xx] >= threshold:
            found += 1
    print(
        json.dumps(
            {
                "seconds": seconds,
                "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
                "found": found,
                "planted": len(blobs),
                "patch": patch,
            }
        )
    )


if __name__ == "__main__":
    main()
