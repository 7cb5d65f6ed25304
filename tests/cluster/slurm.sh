#!/usr/bin/env bash
# A real Slurm run of the job-array script of docs/cluster.md (docs/cluster/speck-array.sbatch),
# on this one machine (issue 19). Run by .ci/run; takes a few minutes on 2 cores.
#
# It starts munged, slurmctld and slurmd (one node, 2 CPUs, as root) with a minimal slurm.conf in
# a temporary folder, writes an archive of 9 small phantom studies and 3 broken inputs, and checks:
#   1. the docs' script is this file, byte for byte (the doc shows it inline);
#   2. one unsharded `speck scan` of the archive, as the reference;
#   3. `sbatch --array=0-3` of the script; one task is cancelled (`scancel`) once it has finished
#      a scan and before it has finished its last; its shard lists the rest as interrupted;
#   4. `scontrol requeue` of that task (same script, --resume): afterwards every scan is there and
#      no scan.json written before the cancel was written again (same inode: never redone);
#   5. `speck merge` as a dependent job (afterany): candidates.csv, errors.csv, skipped.csv and
#      studies.csv byte-identical to the unsharded run's, summary.csv too but for its seconds
#      column; the broken inputs are in errors.csv;
#   6. a new one-task submission of that shard (`sbatch --array=K` with SPECK_SHARD=K/4) redoes
#      nothing either.
# Every daemon it started is stopped on exit (trap), whatever happened.
#
# Exit status: 0 passed, or skipped with a line `SKIP slurm: why` (not root, no apt-get, Slurm or
# munge not installable or not starting); 1 failed, with the daemons' and jobs' logs.
# Environment: SPECK_BIN (default target/debug/speck, built when missing), SPECK_SLURM_KEEP=1
# keeps the work folder, SPECK_SLURM_INSTALL=0 does not apt-get install missing packages.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
SBATCH_FILE=$ROOT/docs/cluster/speck-array.sbatch
T0=$(date +%s)
WORK=""
JOB=""
say() { echo "slurm: [$(($(date +%s) - T0)) s] $*"; }

cleanup() {
    local rc=$?
    set +e
    if [ -n "$WORK" ] && [ -f "$WORK/slurm.conf" ]; then
        export SLURM_CONF=$WORK/slurm.conf
        [ -n "$JOB" ] && scancel "$JOB" >/dev/null 2>&1
        scancel --user=root >/dev/null 2>&1
        for p in slurmd slurmctld munged; do
            local f=$WORK/run/$p.pid
            [ -f "$f" ] || continue
            local pid
            pid=$(cat "$f")
            kill "$pid" 2>/dev/null
            for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
            kill -9 "$pid" 2>/dev/null
        done
    fi
    if [ -n "$WORK" ] && [ "${SPECK_SLURM_KEEP:-0}" != 1 ]; then
        rm -rf "$WORK"
    elif [ -n "$WORK" ]; then
        echo "slurm: work folder kept: $WORK"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

skip() {
    echo "SKIP slurm: $*"
    exit 0
}

show_logs() {
    set +e
    [ -n "${SLURM_CONF:-}" ] || return 0
    echo "---- squeue / jobs"
    squeue 2>&1
    [ -n "$JOB" ] && scontrol show job "$JOB" 2>&1 | grep -E "JobId|JobState|ExitCode|Restarts"
    for f in "$WORK"/run/*.log "$WORK"/jobs/logs/*.log "$WORK"/jobs/*.log; do
        [ -f "$f" ] || continue
        echo "---- $f (last 30 lines)"
        tail -n 30 "$f"
    done
}

fail() {
    echo "FAIL slurm: $*"
    show_logs
    exit 1
}

# 1. The doc shows the script inline, after a marker line naming the file: they must be equal.
doc_copy=$(awk '/^<!-- docs\/cluster\/speck-array.sbatch/ { on = 1; next }
    on == 1 && /^```/ { on = 2; next }
    on == 2 && /^```/ { exit }
    on == 2 { print }' "$ROOT/docs/cluster.md")
if [ "$doc_copy" != "$(cat "$SBATCH_FILE")" ]; then
    diff <(printf '%s\n' "$doc_copy") "$SBATCH_FILE" || true
    fail "docs/cluster.md's sbatch script differs from docs/cluster/speck-array.sbatch"
fi

# Install and start what a one-node cluster needs; anything missing here is a skip, not a failure.
[ "$(id -u)" = 0 ] || skip "needs root (slurmd and munged run as root here)"
need_install=0
for c in munged slurmctld slurmd sbatch; do
    command -v "$c" >/dev/null 2>&1 || need_install=1
done
if [ "$need_install" = 1 ]; then
    [ "${SPECK_SLURM_INSTALL:-1}" = 1 ] || skip "slurm-wlm/munge not installed (SPECK_SLURM_INSTALL=0)"
    command -v apt-get >/dev/null 2>&1 || skip "slurm-wlm/munge not installed and no apt-get"
    say "installing slurm-wlm and munge"
    if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        slurm-wlm munge; } >/tmp/speck-slurm-apt.log 2>&1; then
        tail -n 5 /tmp/speck-slurm-apt.log
        skip "apt-get install slurm-wlm munge failed (log: /tmp/speck-slurm-apt.log)"
    fi
fi
for c in munged slurmctld slurmd sbatch; do
    command -v "$c" >/dev/null 2>&1 || skip "$c not found after installing slurm-wlm and munge"
done

SPECK_BIN=${SPECK_BIN:-$ROOT/target/debug/speck}
if [ ! -x "$SPECK_BIN" ]; then
    say "building $SPECK_BIN"
    (cd "$ROOT" && cargo build -q -p speck-cli) || fail "cargo build -p speck-cli failed"
fi
[ -x "$SPECK_BIN" ] || fail "no speck binary at $SPECK_BIN"
BIN_DIR=$(mktemp -d /tmp/speck-slurm-bin.XXXXXX)
WORK=$(mktemp -d /tmp/speck-slurm.XXXXXX)
mv "$BIN_DIR" "$WORK/bin"
ln -s "$SPECK_BIN" "$WORK/bin/speck"
export PATH=$WORK/bin:$PATH
mkdir -p "$WORK/run" "$WORK/state" "$WORK/spool" "$WORK/jobs/logs"

# munged with its own key, socket and files.
dd if=/dev/urandom of="$WORK/run/munge.key" bs=1024 count=1 status=none
chmod 400 "$WORK/run/munge.key"
SOCK=$WORK/run/munge.sock
munged --force --key-file="$WORK/run/munge.key" --socket="$SOCK" \
    --pid-file="$WORK/run/munged.pid" --log-file="$WORK/run/munged.log" \
    --seed-file="$WORK/run/munge.seed" >"$WORK/run/munged.out" 2>&1 ||
    skip "munged does not start: $(tail -n 2 "$WORK/run/munged.out" "$WORK/run/munged.log" 2>/dev/null | tr '\n' ' ')"
munge -n --socket="$SOCK" | unmunge --socket="$SOCK" >/dev/null 2>&1 ||
    skip "munge credentials do not round-trip"

# One node with 2 CPUs; no cgroups, no accounting. Ports from the process id, so that two runs on
# one machine (or a system Slurm on 6817/6818) do not collide.
HOST=$(hostname -s 2>/dev/null || uname -n)
PORT=$((20000 + ($$ % 10000) * 2))
MEM_MB=$(awk '/^MemTotal:/ { printf "%d", $2 / 1024 * 0.9 }' /proc/meminfo)
cat >"$WORK/slurm.conf" <<EOF
ClusterName=speckci
SlurmctldHost=$HOST
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$SOCK
CredType=cred/munge
SlurmctldPort=$PORT
SlurmdPort=$((PORT + 1))
StateSaveLocation=$WORK/state
SlurmdSpoolDir=$WORK/spool
SlurmctldPidFile=$WORK/run/slurmctld.pid
SlurmdPidFile=$WORK/run/slurmd.pid
SlurmctldLogFile=$WORK/run/slurmctld.log
SlurmdLogFile=$WORK/run/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SlurmdParameters=config_overrides
ReturnToService=2
MinJobAge=3600
KillWait=60
MpiDefault=none
NodeName=$HOST CPUs=2 RealMemory=$MEM_MB State=UNKNOWN
PartitionName=ci Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
export SLURM_CONF=$WORK/slurm.conf
slurmctld -i >"$WORK/run/slurmctld.out" 2>&1 ||
    skip "slurmctld does not start: $(tail -n 3 "$WORK/run/slurmctld.out" "$WORK/run/slurmctld.log" 2>/dev/null | tr '\n' ' ')"
slurmd >"$WORK/run/slurmd.out" 2>&1 ||
    skip "slurmd does not start: $(tail -n 3 "$WORK/run/slurmd.out" "$WORK/run/slurmd.log" 2>/dev/null | tr '\n' ' ')"
state=""
for _ in $(seq 60); do
    state=$(sinfo -h -n "$HOST" -o %t 2>/dev/null || true)
    [ "$state" = idle ] && break
    sleep 0.5
done
[ "$state" = idle ] || skip "the node did not come up (state '$state'): $(tail -n 3 "$WORK/run/slurmd.log" 2>/dev/null | tr '\n' ' ')"
say "slurm up: node $HOST idle, 2 CPUs"

# The archive: 9 small phantoms (DICOM folders and NIfTI files) and 3 broken inputs.
ARCHIVE=$WORK/archive
SIZE=48,128,128
speck phantom --seed 1 --count 5 --size "$SIZE" --format dicom --out "$ARCHIVE/dicom" >/dev/null
speck phantom --seed 11 --count 4 --size "$SIZE" --out "$ARCHIVE/nifti" >/dev/null
niftis=("$ARCHIVE"/nifti/*.nii.gz)
head -c 20000 "${niftis[0]}" >"$ARCHIVE/nifti/broken-truncated.nii.gz"
mkdir -p "$ARCHIVE/broken-notdicom" "$ARCHIVE/broken-header"
echo "this is not a DICOM file" >"$ARCHIVE/broken-notdicom/IM0001.dcm"
dcms=("$ARCHIVE"/dicom/*/*.dcm)
[ -f "${dcms[0]}" ] || fail "no .dcm file in the phantom DICOM series"
head -c 400 "${dcms[0]}" >"$ARCHIVE/broken-header/IM0001.dcm"
say "archive: 9 phantoms of $SIZE voxels and 3 broken inputs in $ARCHIVE"

# 2. The reference: one unsharded run, outside Slurm.
rc=0
speck scan "$ARCHIVE" --out "$WORK/whole" --threads 1 --thumbnails --no-progress \
    >"$WORK/whole.log" 2>&1 || rc=$?
[ "$rc" = 1 ] || fail "unsharded run: exit $rc, expected 1 (3 broken inputs): $(tail -n 3 "$WORK/whole.log")"
say "unsharded reference run done"

# Which shard to cancel: the one with the most scans (at least 2).
N=4
K=-1
best=0
for k in $(seq 0 $((N - 1))); do
    speck scan "$ARCHIVE" --out "$WORK/plan" --dry-run --shard "$k/$N" >"$WORK/plan-$k.txt"
    n=$(awk -F'\t' '$3 == "dicom" || $3 == "nifti" || $3 == "metaimage"' "$WORK/plan-$k.txt" | wc -l)
    if [ "$n" -gt "$best" ]; then best=$n; K=$k; fi
done
[ "$best" -ge 2 ] || fail "no shard has 2 scans to cancel one part-way"
mapfile -t K_SCANS < <(awk -F'\t' '$3 == "dicom" || $3 == "nifti" || $3 == "metaimage" { print $1 }' "$WORK/plan-$K.txt")

wait_gone() { # JOBID SECONDS: until squeue no longer lists it
    local deadline=$(($(date +%s) + $2))
    while squeue -h -j "$1" 2>/dev/null | grep -q .; do
        [ "$(date +%s)" -lt "$deadline" ] || fail "job $1 still queued or running after $2 s"
        sleep 1
    done
}
task_state() { # JOBID_TASK
    scontrol show job "$1" 2>/dev/null | sed -n 's/.*JobState=\([A-Z_]*\).*/\1/p' | head -n 1
}

# 3. The array, submitted as the docs say (sbatch options override the script's #SBATCH lines).
OUT=$WORK/results
cd "$WORK/jobs"
export ARCHIVE OUT
JOB=$(sbatch --parsable --array=0-$((N - 1)) --cpus-per-task=1 --mem=1G --time=00:20:00 \
    "$SBATCH_FILE") || fail "sbatch refused the array"
say "array job $JOB submitted ($N tasks); will cancel task $K (${#K_SCANS[@]} scans) part-way"
deadline=$(($(date +%s) + 300))
first="$OUT/scans/${K_SCANS[0]}/scan.json"
last="$OUT/scans/${K_SCANS[${#K_SCANS[@]} - 1]}/scan.json"
until [ -f "$first" ]; do
    [ "$(date +%s)" -lt "$deadline" ] || fail "task $K did not finish its first scan in 300 s"
    sleep 0.2
done
[ -f "$last" ] && fail "task $K finished its last scan before it could be cancelled (scans too fast?)"
scancel "${JOB}_$K"
# Speck finishes the scan in flight on SIGTERM, writes its files, and lists the rest as
# interrupted (its shard files appear then: the task had not written them before).
deadline=$(($(date +%s) + 120))
until [ -f "$OUT/shards/$K-of-$N/summary.csv" ]; do
    [ "$(date +%s)" -lt "$deadline" ] || fail "task $K wrote no shard files within 120 s of its cancel"
    sleep 0.2
done
wait_gone "${JOB}_$K" 120
[ "$(task_state "${JOB}_$K")" = CANCELLED ] || fail "task $K ended $(task_state "${JOB}_$K"), not CANCELLED"
before=()
for id in "${K_SCANS[@]}"; do
    f=$OUT/scans/$id/scan.json
    [ -f "$f" ] && before+=("$id $(stat -c %i "$f")")
done
[ "${#before[@]}" -ge 1 ] && [ "${#before[@]}" -lt "${#K_SCANS[@]}" ] ||
    fail "task $K was not cancelled part-way: ${#before[@]} of ${#K_SCANS[@]} scans finished"
grep -q interrupted "$OUT/shards/$K-of-$N/errors.csv" 2>/dev/null ||
    fail "the cancelled shard's errors.csv does not list its unfinished scans as interrupted"
say "task $K cancelled after ${#before[@]} of ${#K_SCANS[@]} scans; requeueing it"

# 4. Requeue the cancelled task: Slurm holds a requeued job for a while (BeginTime); release it.
scontrol requeue "${JOB}_$K" || fail "scontrol requeue ${JOB}_$K failed"
scontrol update jobid="${JOB}_$K" starttime=now || true

# 5. The merge as a dependent job, submitted as the docs say.
MERGE=$(sbatch --parsable --dependency="afterany:$JOB" --output="$WORK/jobs/merge.log" \
    --wrap "speck merge $OUT") || fail "sbatch refused the merge job"
wait_gone "$JOB" 600
wait_gone "$MERGE" 120
for k in $(seq 0 $((N - 1))); do
    s=$(task_state "${JOB}_$k")
    [ "$s" = COMPLETED ] || fail "array task $k ended $s, expected COMPLETED"
done
scontrol show job "${JOB}_$K" | grep -q "Restarts=1" || fail "task $K was not restarted once"
say "array and merge done"

for f in candidates.csv errors.csv skipped.csv studies.csv; do
    cmp -s "$WORK/whole/$f" "$OUT/$f" || {
        diff "$WORK/whole/$f" "$OUT/$f" | head -n 20
        fail "merged $f differs from the unsharded run's"
    }
done
no_seconds() { # a CSV without its seconds column
    awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == "seconds") c = i }
        { out = ""; for (i = 1; i <= NF; i++) if (i != c) out = out (out == "" ? "" : ",") $i; print out }' "$1"
}
[ "$(no_seconds "$WORK/whole/summary.csv")" = "$(no_seconds "$OUT/summary.csv")" ] || {
    diff <(no_seconds "$WORK/whole/summary.csv") <(no_seconds "$OUT/summary.csv") | head -n 20
    fail "merged summary.csv differs from the unsharded run's (seconds aside)"
}
for b in broken-truncated broken-notdicom broken-header; do
    grep -q "$b" "$OUT/errors.csv" || fail "$b is not in errors.csv"
done
[ "$(grep -c ',ok,' "$OUT/summary.csv")" = 9 ] || fail "expected 9 scans ok in summary.csv"
grep -q interrupted "$OUT/errors.csv" && fail "merged errors.csv still lists interrupted scans"
for entry in "${before[@]}"; do
    id=${entry% *}
    [ "$(stat -c %i "$OUT/scans/$id/scan.json")" = "${entry#* }" ] ||
        fail "scan $id was redone after the requeue"
done
say "merged outputs equal the unsharded run's; broken inputs in errors.csv; nothing redone"

# 6. A later rerun of that one shard as a new submission: SPECK_SHARD names it (a one-task array
# has SLURM_ARRAY_TASK_COUNT=1). Everything is complete, so nothing is scanned again.
mapfile -t all_before < <(cd "$OUT/scans" && for d in *; do echo "$d $(stat -c %i "$d/scan.json")"; done)
RERUN=$(sbatch --parsable --array="$K" --cpus-per-task=1 --mem=1G \
    --export="ALL,SPECK_SHARD=$K/$N" "$SBATCH_FILE") || fail "sbatch refused the rerun"
wait_gone "$RERUN" 300
[ "$(task_state "${RERUN}_$K")" = COMPLETED ] || fail "the rerun of shard $K did not complete"
mapfile -t all_after < <(cd "$OUT/scans" && for d in *; do echo "$d $(stat -c %i "$d/scan.json")"; done)
[ "${all_before[*]}" = "${all_after[*]}" ] || fail "the rerun of shard $K redid or removed scans"
rc=0
speck merge "$OUT" >"$WORK/merge2.log" 2>&1 || rc=$?
[ "$rc" = 1 ] || fail "speck merge after the rerun: exit $rc, expected 1 (broken inputs)"
for f in candidates.csv errors.csv skipped.csv studies.csv; do
    cmp -s "$WORK/whole/$f" "$OUT/$f" || fail "after the rerun, merged $f differs"
done
say "PASS: the docs' job array on a real Slurm (array, cancel, requeue, dependent merge, rerun)"
