#!/usr/bin/env bash
# Run one fuzz target (built by `cargo fuzz build -O --debug-assertions`) on its corpus with the
# bounds used for docs/reliability.md: usage `fuzz/run_target.sh TARGET SECONDS [extra libFuzzer args]`.
set -euo pipefail
cd "$(dirname "$0")"
t=$1; secs=$2; shift 2
bin=${FUZZ_BIN:-${CARGO_TARGET_DIR:-target}/x86_64-unknown-linux-gnu/release/$t}
mkdir -p "corpus/$t" "artifacts/$t" logs
# keep every run's log: an earlier logs/$t.log is renamed after its last change, never overwritten
if [ -f "logs/$t.log" ]; then mv "logs/$t.log" "logs/$t.$(date -r "logs/$t.log" +%Y%m%dT%H%M%S).log"; fi
exec nice "$bin" "corpus/$t" -max_total_time="$secs" -rss_limit_mb=2048 -malloc_limit_mb=2048 \
  -timeout=10 -artifact_prefix="artifacts/$t/" -print_final_stats=1 "$@" > "logs/$t.log" 2>&1
