#!/usr/bin/env bash
# quickstart_same.sh [REV]: the outputs of the quickstart pipeline (configs/quickstart.cfg and
# configs/quickstart-stream.cfg, every stage, at reduced sizes, 2 ranks) made by the working tree
# and by commit REV (default: HEAD) compared file by file (tests/reference/compare_runs.py):
# dataset.h5 bitwise, integer datasets equal, float datasets within 1e-4 relative (DM_SAME_TOL).
# For refactoring: a change that should not alter any number must pass this. Reuses the built
# reference of REV in $DM_SAME_DIR (default build/same/<rev>) when present; BUILD names the working
# tree's build directory (default build).
set -eu -o pipefail
cd "$(dirname "$0")/.."
REV=$(git rev-parse --short "${1:-HEAD}")
W=${DM_SAME_DIR:-$PWD/build/same}/$REV
TOL=${DM_SAME_TOL:-1e-4}
if [ "$(id -u)" = 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
export OMPI_MCA_btl_vader_single_copy_mechanism=${OMPI_MCA_btl_vader_single_copy_mechanism:-none} OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
small=(--set synth.users=400 --set synth.items=200 --set sasrec.epochs=3 --set sasrec.eval_every=1 --set align.epochs=2
       --set lm.steps=20 --set prompt.train_users=30 --set prompt.eval_users=20 --set prompt.epochs=1
       --set 'prompt.latency_tokens=[]' --set explain.users=5 --set explain.candidates=8 --set explain.top_k=3
       --set window.count=4 --set adapter.steps=10)
pipeline() { # dynmm binary, output directory
  mpirun --oversubscribe --bind-to none -n 2 "$1" run configs/quickstart.cfg --set run.dir="$2/main" "${small[@]}" > "$2/main.log" 2>&1 ||
    { tail -20 "$2/main.log"; echo "FAIL: pipeline with $1"; exit 1; }
  mpirun --oversubscribe --bind-to none -n 2 "$1" run configs/quickstart.cfg configs/quickstart-stream.cfg --set run.dir="$2/stream" \
    "${small[@]}" > "$2/stream.log" 2>&1 || { tail -20 "$2/stream.log"; echo "FAIL: streaming pipeline with $1"; exit 1; }
}
if [ ! -f "$W/ref/done" ]; then
  rm -rf "$W"; mkdir -p "$W/src" "$W/ref"
  git archive "$REV" | tar -x -C "$W/src"
  make -C "$W/src" BUILD="$W/build" -j2 all > "$W/build.log" 2>&1 || { tail -20 "$W/build.log"; echo "FAIL: building $REV"; exit 1; }
  (cd "$W/src" && pipeline "$W/build/dynmm" "$W/ref")
  touch "$W/ref/done"
fi
# the working tree's build (BUILD, default build); its outputs in a directory of this process
B=${BUILD:-build}
case $B in /*) ;; *) B=$PWD/$B ;; esac
make BUILD="$B" -j2 all > /dev/null
N="$W/new.$$"; rm -rf "$N"; mkdir -p "$N"
pipeline "$B/dynmm" "$N"
for r in main stream; do
  echo "== $r (working tree vs $REV)"
  /usr/bin/python3 tests/reference/compare_runs.py "$W/ref/$r" "$N/$r" --tol "$TOL"
done
rm -rf "$N"
echo "same outputs as $REV"
