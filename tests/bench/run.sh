#!/usr/bin/env bash
# tests/bench/run.sh: runs every benchmark (tests/bench/bench_*.sh) and collects their reports in
# build/bench/report.md. Each benchmark measures dynmm and its reference side by side in the same
# run, repeats the measurement, reports medians and ratios, and prints PASSED/FAILED against its
# target. ONLY=pattern runs matching benchmarks only.
set -u
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
case $BUILD in /*) ;; *) BUILD=$PWD/$BUILD ;; esac
export DM_BUILD=$BUILD DM_TMP=$BUILD/tmp
mkdir -p "$DM_TMP" "$BUILD/bench"
if [ -z "${DM_DATA:-}" ]; then
  for d in ../shared/data ../../shared/data; do [ -d "$d" ] && DM_DATA=$(cd "$d" && pwd) && break; done
fi
export DM_DATA=${DM_DATA:-}
if [ "$(id -u)" = 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
export OMPI_MCA_btl_vader_single_copy_mechanism=none
export DM_MPIRUN="mpirun --oversubscribe --bind-to none"
report=$BUILD/bench/report.md
{ echo "# dynmm benchmarks"; echo; echo "host: $(uname -n), $(nproc) cores, $(date -u +%Y-%m-%dT%H:%MZ), $(git describe --always --dirty 2>/dev/null)"; echo; } > "$report"
status=0
for b in tests/bench/bench_*.sh; do
  [ -e "$b" ] || continue
  n=$(basename "$b" .sh)
  if [ -n "${ONLY:-}" ] && [[ "$n" != *$ONLY* ]]; then continue; fi
  echo "== $n"
  if ! bash "$b" | tee -a "$report"; then status=1; fi
done
echo; echo "report: $report"
exit $status
