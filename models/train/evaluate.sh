#!/usr/bin/env bash
# Whole-pipeline evaluation of the bundled models on 20 held-out phantoms (seeds 9001-9020, never
# used in training), through Speck's engine (speck-detect) and `speck eval`.
#   models/train/evaluate.sh [N_SCANS] [SIZE_Z,Y,X]     (defaults: 20, 300,512,512)
# Writes $SPECK_TRAIN_WORK/eval/{candidates,timings,annotations,excluded,series}.csv and eval.json.
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${1:-20}
SIZE=${2:-300,512,512}
WORK=${SPECK_TRAIN_WORK:-/tmp/speck-train}/eval
TGT=${CARGO_TARGET_DIR:-target}
VENV=${VENV:-.venv-train}
COUNT=${SPECK_EVAL_COUNT:-10}
FINE_T=${SPECK_EVAL_FINE_T:-0.02}   # low, so the FROC curve extends to 8 FP/scan
THREADS=${SPECK_EVAL_THREADS:-2}
(cd models/train/phantom-gen && cargo build --release)
cargo build --release -p speck-cli
mkdir -p "$WORK"
seeds=$(seq 9001 $((9000 + N)))
# phantoms, two at a time
for s in $seeds; do
  [ -f "$WORK/$s/annotations.csv" ] || echo "$s"
done | xargs -r -P 2 -I{} "$TGT/release/speck-train-phantom-gen" {} "$COUNT" "$SIZE" "$WORK/{}"
scans=()
echo "seriesuid" > "$WORK/series.csv"
head -n1 "$WORK/9001/annotations.csv" > "$WORK/annotations.csv"
head -n1 "$WORK/9001/annotations_excluded.csv" > "$WORK/excluded.csv"
for s in $seeds; do
  f=$(ls "$WORK/$s"/*.mhd)
  scans+=("$f")
  basename "$f" .mhd >> "$WORK/series.csv"
  tail -n +2 "$WORK/$s/annotations.csv" >> "$WORK/annotations.csv"
  tail -n +2 "$WORK/$s/annotations_excluded.csv" >> "$WORK/excluded.csv"
done
"$TGT/release/speck-train-detect" models/coarse-v1.onnx models/fine-v1.onnx "$WORK/run" \
  "${SPECK_EVAL_DENSE_T:-0.2}" "$FINE_T" "${SPECK_EVAL_TTA:-0}" "$THREADS" "${scans[@]}"
# in-lung candidates only (Speck's default drops the others)
awk -F, 'NR==1 || $7==1' "$WORK/run.candidates.csv" > "$WORK/candidates.csv"
"$TGT/release/speck" eval --annotations "$WORK/annotations.csv" --excluded "$WORK/excluded.csv" \
  --candidates "$WORK/candidates.csv" --series "$WORK/series.csv" --json --plot "$WORK/froc.svg" > "$WORK/eval.json"
"$TGT/release/speck" eval --annotations "$WORK/annotations.csv" --excluded "$WORK/excluded.csv" \
  --candidates "$WORK/candidates.csv" --series "$WORK/series.csv" | tee "$WORK/eval.txt"
"$VENV/bin/python" models/train/report.py "$WORK"
