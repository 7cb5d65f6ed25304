#!/usr/bin/env bash
# Whole-pipeline evaluation of the bundled models on 20 held-out phantoms (seeds 9001-9020, never
# used in training), through Speck's engine (speck-detect) and `speck eval`.
#   models/train/evaluate.sh [N_SCANS] [SIZE_Z,Y,X]     (defaults: 20, 300,512,512)
# Writes $SPECK_TRAIN_WORK/eval/[$SPECK_EVAL_NAME/]{candidates,timings,annotations,excluded,series}.csv,
# froc.csv (threshold, FP/scan, sensitivity) and eval.json; SPECK_EVAL_MODELS names the folder of the pair (default models/). SPECK_EVAL_SUITE=confirm
# uses the confirmation suite instead (seeds 9101-9120 in $SPECK_TRAIN_WORK/confirm), which no
# choice between models has looked at (models/README.md).
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${1:-20}
SIZE=${2:-300,512,512}
SUITE=${SPECK_EVAL_SUITE:-eval}
case $SUITE in
  eval) FIRST=9001 ;;
  confirm) FIRST=9101 ;;
  *) echo "SPECK_EVAL_SUITE must be eval or confirm, not $SUITE" >&2; exit 2 ;;
esac
WORK=${SPECK_TRAIN_WORK:-/tmp/speck-train}/$SUITE
OUT=$WORK/${SPECK_EVAL_NAME:-.}   # results (scans and annotations stay in $WORK)
MODELS=${SPECK_EVAL_MODELS:-models}   # folder holding the pair to evaluate
TAG=${SPECK_EVAL_TAG:-v7}   # file names: coarse-$TAG.onnx, fine-$TAG.onnx
TGT=${CARGO_TARGET_DIR:-target}
VENV=${VENV:-.venv-train}
COUNT=${SPECK_EVAL_COUNT:-10}
FINE_T=${SPECK_EVAL_FINE_T:-0.02}   # low, so the FROC curve extends to 8 FP/scan
THREADS=${SPECK_EVAL_THREADS:-2}
if [ -z "${SPECK_EVAL_SKIP_BUILD:-}" ]; then   # set it to use the binaries already in $TGT
  (cd models/train/phantom-gen && CARGO_TARGET_DIR=$(cd "$TGT" 2>/dev/null && pwd || echo "$PWD/$TGT") cargo build --release)
  cargo build --release -p speck-cli
fi
mkdir -p "$WORK"
seeds=$(seq $FIRST $((FIRST + N - 1)))
# phantoms, two at a time
for s in $seeds; do
  [ -f "$WORK/$s/annotations.csv" ] || echo "$s"
done | xargs -r -P 2 -I{} "$TGT/release/speck-train-phantom-gen" {} "$COUNT" "$SIZE" "$WORK/{}"
scans=()
echo "seriesuid" > "$WORK/series.csv"
head -n1 "$WORK/$FIRST/annotations.csv" > "$WORK/annotations.csv"
head -n1 "$WORK/$FIRST/annotations_excluded.csv" > "$WORK/excluded.csv"
for s in $seeds; do
  f=$(ls "$WORK/$s"/*.mhd)
  scans+=("$f")
  basename "$f" .mhd >> "$WORK/series.csv"
  tail -n +2 "$WORK/$s/annotations.csv" >> "$WORK/annotations.csv"
  tail -n +2 "$WORK/$s/annotations_excluded.csv" >> "$WORK/excluded.csv"
done
mkdir -p "$OUT"
"$TGT/release/speck-train-detect" "$MODELS/coarse-$TAG.onnx" "$MODELS/fine-$TAG.onnx" "$OUT/run" \
  "${SPECK_EVAL_DENSE_T:-0.2}" "$FINE_T" "${SPECK_EVAL_TTA:-model}" "$THREADS" "${scans[@]}"
# in-lung candidates only (Speck's default drops the others)
awk -F, 'NR==1 || $7==1' "$OUT/run.candidates.csv" > "$OUT/candidates.csv"
"$TGT/release/speck" eval --annotations "$WORK/annotations.csv" --excluded "$WORK/excluded.csv" \
  --candidates "$OUT/candidates.csv" --series "$WORK/series.csv" --json --plot "$OUT/froc.svg" --csv "$OUT/froc.csv" > "$OUT/eval.json"
"$TGT/release/speck" eval --annotations "$WORK/annotations.csv" --excluded "$WORK/excluded.csv" \
  --candidates "$OUT/candidates.csv" --series "$WORK/series.csv" | tee "$OUT/eval.txt"
# report.py reads the truth from the results folder
[ -z "${SPECK_EVAL_NAME:-}" ] || cp "$WORK/annotations.csv" "$WORK/excluded.csv" "$WORK/series.csv" "$OUT/"
"$VENV/bin/python" models/train/report.py "$OUT"
