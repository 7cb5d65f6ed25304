#!/usr/bin/env bash
# Whole-pipeline evaluation of the bundled models on the held-out LIDC-IDRI-0001 insertion set:
# the real case with nodules inserted in its LEFT lung only (models/train/lidc_insert.py
# --val-seeds ...; the right lung is training material), through Speck's engine (speck-train-detect)
# and `speck eval`. Only candidates in the engine's lung mask AND in the held-out left half
# (x_LPS > the midline lidc_insert.py measured, in truth.json) are scored, so every figure,
# false positives per scan included, is about the left lung.
#   models/train/evaluate_lidc.sh [VAL_DIR]   (default $SPECK_TRAIN_WORK/lidc-insert/val)
# Writes $SPECK_TRAIN_WORK/eval-lidc/: all.candidates.csv (every candidate), run.candidates.csv
# (left half), candidates.csv (left half, in the lungs), eval.json, eval.txt, froc.svg, report.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
WORK_ROOT=${SPECK_TRAIN_WORK:-/tmp/speck-train}
VAL=${1:-$WORK_ROOT/lidc-insert/val}
WORK=$WORK_ROOT/${SPECK_EVAL_NAME:-eval-lidc}
MODELS=${SPECK_EVAL_MODELS:-models}   # folder holding the pair to evaluate
TAG=${SPECK_EVAL_TAG:-v7}   # file names: coarse-$TAG.onnx, fine-$TAG.onnx
TGT=${CARGO_TARGET_DIR:-target}
VENV=${VENV:-.venv-train}
FINE_T=${SPECK_EVAL_FINE_T:-0.02}   # low, so the FROC curve extends to 8 FP/scan
THREADS=${SPECK_EVAL_THREADS:-2}
if [ ! -f "$VAL/series.csv" ]; then
  echo "evaluate_lidc: no validation set in $VAL (run models/train/lidc_insert.py first); skipped"
  exit 0
fi
[ -x "$TGT/release/speck-train-detect" ] || (cd models/train/phantom-gen && cargo build --release)
[ -x "$TGT/release/speck" ] || cargo build --release -p speck-cli
mkdir -p "$WORK"
mapfile -t scans < <(tail -n +2 "$VAL/series.csv" | sed "s|^|$VAL/|; s|\$|.mhd|")
cp "$VAL/annotations.csv" "$WORK/annotations.csv"
cp "$VAL/annotations_excluded.csv" "$WORK/excluded.csv"
cp "$VAL/series.csv" "$WORK/series.csv"
"$TGT/release/speck-train-detect" "$MODELS/coarse-$TAG.onnx" "$MODELS/fine-$TAG.onnx" "$WORK/all" \
  "${SPECK_EVAL_DENSE_T:-0.2}" "$FINE_T" "${SPECK_EVAL_TTA:-model}" "$THREADS" "${scans[@]}"
cp "$WORK/all.timings.csv" "$WORK/run.timings.csv"
MID=$("$VENV/bin/python" -c "import json, sys; print(json.load(open(sys.argv[1]))['midline_x'])" "$VAL/truth.json")
# held-out half only (column 2 = coordX, LPS); then in-lung only (column 7), as Speck's default
awk -F, -v mid="$MID" 'NR==1 || $2 > mid' "$WORK/all.candidates.csv" > "$WORK/run.candidates.csv"
awk -F, 'NR==1 || $7==1' "$WORK/run.candidates.csv" > "$WORK/candidates.csv"
"$TGT/release/speck" eval --annotations "$WORK/annotations.csv" --excluded "$WORK/excluded.csv" \
  --candidates "$WORK/candidates.csv" --series "$WORK/series.csv" --json --plot "$WORK/froc.svg" > "$WORK/eval.json"
"$TGT/release/speck" eval --annotations "$WORK/annotations.csv" --excluded "$WORK/excluded.csv" \
  --candidates "$WORK/candidates.csv" --series "$WORK/series.csv" | tee "$WORK/eval.txt"
"$VENV/bin/python" models/train/report.py "$WORK"
