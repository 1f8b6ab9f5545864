#!/usr/bin/env bash
# tests/run.sh: runs every test of dynmm and prints a summary. Called by `make check`.
#
#   1. reference generators   tests/reference/gen_*.py   (Debian's python3-torch/scipy/h5py)
#                             each writes its files into $DM_REF_DIR
#   2. unit tests             build/tests/test_*  built from tests/unit/   (serial, no MPI)
#   3. multi-rank tests       build/tests/test_*  built from tests/mpi/    (1, 2 and 3 ranks)
#   4. command-line tests     tests/cli/*.sh  (drive build/dynmm end to end)
#
# Environment for the tests: DM_REF_DIR (reference outputs), DM_DATA (../shared/data when present),
# DM_BUILD, DM_TMP (scratch), DM_MPIRUN (mpirun with the flags root and oversubscription need).
# A test prints "SKIP: reason" and exits 77 to skip. ONLY=pattern runs matching tests only.
# DM_SUITE=sanitizer (make check's second pass, on the AddressSanitizer + UBSan build): no reference
# generators (DM_REF_DIR names the first pass's), every unit and multi-rank test, and the
# command-line tests of SANITIZER_CLI, the ones that drive each stage's own code quickly; `make asan`
# runs everything.
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
case $BUILD in /*) ;; *) BUILD=$PWD/$BUILD ;; esac
export DM_BUILD=$BUILD
# DM_REF_DIR may name another build's reference outputs (the sanitizer pass reuses build/ref)
export DM_REF_DIR=${DM_REF_DIR:-$BUILD/ref}
export DM_TMP=$BUILD/tmp
mkdir -p "$DM_REF_DIR" "$DM_TMP"
if [ -z "${DM_DATA:-}" ]; then
  for d in ../shared/data ../../shared/data; do [ -d "$d" ] && DM_DATA=$(cd "$d" && pwd) && break; done
fi
export DM_DATA=${DM_DATA:-}
if [ "$(id -u)" = 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
export OMPI_MCA_btl_vader_single_copy_mechanism=none   # containers often forbid CMA
export DM_MPIRUN="mpirun --oversubscribe --bind-to none"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
# a stage that reads a config key outside the groups its hash covers is an error in tests (stages/stage.h)
export DM_STRICT_KEYS=1
if [ -n "${DM_ASAN:-}" ]; then
  # Open MPI and OpenBLAS keep allocations until exit; report leaks of our own code only when asked
  export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:abort_on_error=1} UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
fi
PY=/usr/bin/python3
ONLY=${ONLY:-}
SUITE=${DM_SUITE:-all}
SANITIZER_CLI="probe synth ingest_inputs attributes train_cf gru4rec align stress pq itemknn evalshard export lm allmrec"

pass=0; fail=0; skip=0; failed=()
log=$DM_TMP/test.log; : > "$log"
run() { # name, command...
  local name=$1; shift
  if [ -n "$ONLY" ] && [[ "$name" != *$ONLY* ]]; then return; fi
  local t0=$(date +%s%N) out rc
  # no test may hang the suite: a hang is a failure (timeout's status 124)
  out=$(timeout -k 10 "${DM_TEST_TIMEOUT:-900}" "$@" 2>&1); rc=$?
  [ $rc -eq 124 ] && out="$out
FAIL: timed out after ${DM_TEST_TIMEOUT:-900} s (a hang)"
  local dt=$(awk -v a="$t0" -v b="$(date +%s%N)" 'BEGIN{printf "%.1f", (b-a)/1e9}')
  printf '==== %s (rc %d, %ss)\n%s\n' "$name" "$rc" "$dt" "$out" >> "$log"
  if [ $rc -eq 0 ]; then pass=$((pass+1)); printf '  ok    %-44s %6ss\n' "$name" "$dt"
  elif [ $rc -eq 77 ]; then skip=$((skip+1)); printf '  skip  %-44s %s\n' "$name" "$(echo "$out" | grep -m1 SKIP | cut -c1-70)"
  else fail=$((fail+1)); failed+=("$name"); printf '  FAIL  %-44s %6ss\n' "$name" "$dt"; echo "$out" | grep -E "FAIL|error|Error" | head -8 | sed 's/^/        /'; fi
}

[ "$SUITE" = sanitizer ] || echo "reference generators:"
for g in tests/reference/gen_*.py; do
  [ "$SUITE" = sanitizer ] && break
  [ -e "$g" ] || continue
  run "ref/$(basename "$g" .py)" $PY "$g" "$DM_REF_DIR"
done
echo "unit tests:"
for t in tests/unit/test_*.c; do
  [ -e "$t" ] || continue
  n=$(basename "$t" .c)
  run "unit/$n" "$BUILD/tests/$n"
done
echo "multi-rank tests:"
for t in tests/mpi/test_*.c; do
  [ -e "$t" ] || continue
  n=$(basename "$t" .c)
  # OpenMP workers wait passively here: spinning ones starve the other ranks of an oversubscribed
  # node (a 3-rank test at 2 threads a rank took 40 s instead of 0.6 s); the single-process tests
  # keep the default, as many short parallel regions pay for every wake-up
  for np in 1 2 3; do run "mpi/$n -n $np" env OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive} $DM_MPIRUN -n $np "$BUILD/tests/$n"; done
done
echo "command-line tests:"
for t in tests/cli/test_*.sh; do
  [ -e "$t" ] || continue
  n=$(basename "$t" .sh)
  [ "$SUITE" = sanitizer ] && [[ " $SANITIZER_CLI " != *" ${n#test_} "* ]] && continue
  run "cli/$n" bash "$t"
done
echo
[ "$SUITE" = sanitizer ] && printf 'under AddressSanitizer + UBSan: '
echo "tests: $pass passed, $fail failed, $skip skipped (full log: $log)"
if [ $fail -gt 0 ]; then printf '  failed: %s\n' "${failed[@]}"; exit 1; fi
exit 0
