#!/usr/bin/env bash
# Did a refactoring change what `speck scan` writes? Runs two speck binaries over the same inputs
# and compares every output file byte for byte, except the fields that measure time or memory
# (summary.csv's seconds column, scan.json's timings_s and peak RSS, the report's seconds).
#   scripts/compare-scan-outputs.sh OLD_SPECK NEW_SPECK INPUT_DIR [MODELS_DIR]
# Build OLD_SPECK from the commit before the change (e.g. a `git worktree` at it), NEW_SPECK from
# HEAD; make INPUT_DIR with `speck phantom` (DICOM, NIfTI and MetaImage). Exit status 0: identical.
set -euo pipefail
[ $# -ge 3 ] || { sed -n 2,7p "$0"; exit 2; }
OLD=$1 NEW=$2 IN=$3 MODELS=${4:-$(cd "$(dirname "$0")/.." && pwd)/models}
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
"$OLD" scan "$IN" --out "$OUT/old" --models-dir "$MODELS" > "$OUT/old.log" 2>&1
"$NEW" scan "$IN" --out "$OUT/new" --models-dir "$MODELS" > "$OUT/new.log" 2>&1
python3 - "$OUT/old" "$OUT/new" <<'EOF'
import json, os, re, sys
old, new = sys.argv[1:]
TIMED = {"timings_s", "process_peak_rss_bytes"}

def strip(d):
    if isinstance(d, dict):
        return {k: strip(v) for k, v in d.items() if k not in TIMED}
    if isinstance(d, list):
        return [strip(x) for x in d]
    return d

def norm(path):
    name = os.path.basename(path)
    data = open(path, "rb").read()
    if name == "scan.json":
        return strip(json.loads(data))
    if name == "summary.csv":   # column 5 is the scan's seconds
        rows = [line.split(",") for line in data.decode().splitlines()]
        return [r[:4] + r[5:] for r in rows]
    if name == "report.html":
        return re.sub(rb"<td>[0-9]+\.[0-9]+</td>", b"<td>s</td>", data)
    return data

files = lambda root: sorted(os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root) for f in fs)
a, b = files(old), files(new)
bad = [f"only in one run: {f}" for f in sorted(set(a) ^ set(b))]
bad += [f"differs: {f}" for f in sorted(set(a) & set(b)) if norm(os.path.join(old, f)) != norm(os.path.join(new, f))]
print("\n".join(bad) if bad else f"identical: {len(a)} files (timings and peak RSS aside)")
sys.exit(1 if bad else 0)
EOF
