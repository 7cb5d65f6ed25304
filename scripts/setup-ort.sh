#!/usr/bin/env bash
# Idempotent: make sure ./.venv holds the onnxruntime wheel whose libonnxruntime.so Speck loads,
# then print the library path (use it as ORT_DYLIB_PATH or --ort-lib if you want to be explicit).
#   ORT_VERSION=1.31.1 (default)   ORT_PACKAGE=onnxruntime-gpu for CUDA/TensorRT
set -euo pipefail
cd "$(dirname "$0")/.."
ORT_VERSION="${ORT_VERSION:-1.31.1}"
ORT_PACKAGE="${ORT_PACKAGE:-onnxruntime}"
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
have="$(.venv/bin/python -c 'import onnxruntime; print(onnxruntime.__version__)' 2>/dev/null || true)"
if [ "$have" != "$ORT_VERSION" ]; then
    .venv/bin/pip install --quiet "${ORT_PACKAGE}==${ORT_VERSION}" >&2
fi
lib="$(.venv/bin/python -c 'import onnxruntime, os, glob; d = os.path.join(os.path.dirname(onnxruntime.__file__), "capi"); print(max(glob.glob(os.path.join(d, "libonnxruntime.so*")), key=len))')"
if [ ! -f "$lib" ]; then
    echo "setup-ort: no libonnxruntime.so found in .venv after installing ${ORT_PACKAGE}==${ORT_VERSION}" >&2
    exit 1
fi
echo "$lib"
