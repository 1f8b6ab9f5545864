#!/usr/bin/env bash
# analysis/scaling.sh: the measured half of the scaling model. Runs the pipeline's stages synth,
# train-cf (popularity, EASE through ScaLAPACK, SASRec), align and eval on a small synthetic
# problem at 1, 2, 3, 4, 6 and 8 ranks with MPI counting on (DM_MPI_COUNT, mpi/mpicount.h), and
# records per rank count the counts CSV, the log and the steps each stage took; once for a fixed
# problem (strong scaling) and once for a problem grown with the ranks (weak scaling, in OUT/weak);
# then analysis/scalefit.sh fits the alpha-beta model and projects to 1024 ranks (see its header).
#
#   analysis/scaling.sh [OUT]          default OUT=analysis/scaling (the committed tables and figure)
#
# Environment: DM_BIN (default build/dynmm), RANKS (default "1 2 3 4 6 8"), DM_MPIRUN (default
# "mpirun --oversubscribe --bind-to none"), SCALE_TMP (run directories, default /tmp/dynmm-scaling),
# OMP_NUM_THREADS (default 1: one thread per rank, so ranks are the only parallelism), SKIP_RUNS=1
# (refit the counts already in OUT), and the network of the projection: ALPHA (s, default 2e-6),
# BANDWIDTH (bit/s, default 100e9).
# Output in OUT and OUT/weak: counts_p<P>.csv (one row per rank, stage and MPI call; mpi/mpicount.h),
# log_p<P>.txt, steps.csv, problem.txt; in OUT what scalefit.sh writes.
set -eu
cd "$(dirname "$0")/.."
OUT=${1:-analysis/scaling}
B=${DM_BIN:-build/dynmm}
RANKS=${RANKS:-1 2 3 4 6 8}
MPIRUN=${DM_MPIRUN:-mpirun --oversubscribe --bind-to none}
TMPD=${SCALE_TMP:-/tmp/dynmm-scaling}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
if [ "$(id -u)" = 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
export OMPI_MCA_btl_vader_single_copy_mechanism=${OMPI_MCA_btl_vader_single_copy_mechanism:-none}
mkdir -p "$OUT"

# strong scaling: the quickstart's synthetic default (3000 users, 1500 items), fewer epochs;
# weak scaling: 375 users per rank (3000 at 8 ranks), the same 1500 items, and the global batches of
# SASRec and the aligner grown with the ranks (16 and 32 per rank), so steps per epoch stay fixed
common=(--set 'run.stages=[synth,train-cf,align,eval]' --set synth.items=1500 --set 'cf.models=[pop,ease,sasrec]'
        --set sasrec.epochs=4 --set sasrec.eval_every=2 --set align.epochs=3 --set 'eval.models=[pop,ease,sasrec,align]')
strong() { echo --set synth.users=3000; }
weak() { echo --set synth.users=$((375 * $1)) --set sasrec.batch=$((16 * $1)) --set align.batch=$((32 * $1)); }

# measure DIR KIND: the runs at every rank count, counts and logs in DIR, then DIR/steps.csv
measure() {
  local dir=$1 kind=$2 abs p t0
  mkdir -p "$dir"
  abs=$(cd "$dir" && pwd)
  for p in $RANKS; do
    rm -rf "$TMPD/$kind$p"
    t0=$(date +%s)
    # shellcheck disable=SC2046
    DM_MPI_COUNT="$abs/counts_p$p.csv" $MPIRUN -n "$p" "$B" run configs/quickstart.cfg --set run.dir="$TMPD/$kind$p" \
      "${common[@]}" $($kind "$p") > "$dir/log_p$p.txt" 2>&1 || { echo "error: the $kind run at $p ranks failed (see $dir/log_p$p.txt)" >&2; exit 1; }
    echo "  $kind, $p ranks: $(( $(date +%s) - t0 ))s"
  done
  # steps: the optimiser steps of the training stages (SASRec's and the aligner's, from the log of
  # the first rank count; steps per epoch do not depend on the rank count in either problem); synth
  # and eval count per run
  awk 'BEGIN { print "stage,steps" }
       /sasrec: [0-9]+ epochs, [0-9]+ steps/ { for (i = 1; i <= NF; i++) if ($i ~ /^steps/) s = $(i - 1); cf = s + 0 }
       /align: .* steps\/epoch/ { for (i = 1; i <= NF; i++) if ($i ~ /^steps\/epoch/) spe = $(i - 1) + 0 }
       /^  epoch +[0-9]+ +loss/ { ae++ }
       END { print "synth,1"; print "train-cf," cf; print "align," spe * ae; print "eval,1"; print "other,1" }' \
    "$dir/log_p$(set -- $RANKS; echo "$1").txt" > "$dir/steps.csv"
}

if [ "${SKIP_RUNS:-0}" != 1 ]; then
  [ -x "$B" ] || { echo "error: no $B (run make)" >&2; exit 1; }
  echo "3000 users x 1500 items, SASRec 4 epochs (global batch 128), aligner 3 epochs (global batch 256), eval of pop, EASE, SASRec, aligner" > "$OUT/problem.txt"
  measure "$OUT" strong
  mkdir -p "$OUT/weak"
  echo "375 users per rank x 1500 items, SASRec 4 epochs (global batch 16 per rank), aligner 3 epochs (global batch 32 per rank), the same models" > "$OUT/weak/problem.txt"
  measure "$OUT/weak" weak
fi
ALPHA=${ALPHA:-2e-6} BANDWIDTH=${BANDWIDTH:-100e9} analysis/scalefit.sh "$OUT"
