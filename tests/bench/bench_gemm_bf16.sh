#!/usr/bin/env bash
# bench_gemm_bf16.sh: the LM's bf16 products (src/nn/gemm_bf16, lm.precision = "bf16") against
# oneDNN's bf16 matmul and OpenBLAS's fp32 sgemm on the GPT-2 124M shapes (forward B=8, T=128 and
# candidate scoring), 1 and 2 threads, interleaved, medians of REPS (default 7); each row with the
# error of every result against a float64 product and its fp32-accumulation bound (PASSED/FAILED).
# Also oneDNN's library size, dynamic-loading cost, the ISA and implementation it dispatched to, and
# its per-primitive start-up (tests/bench/bench_gemm_bf16.c). oneDNN (libdnnl-dev) is needed by this
# benchmark only: without it the Makefile does not build the binary and this script skips.
set -u
BUILD=${DM_BUILD:-build}
BIN=$BUILD/bench/bench_gemm_bf16
REPS=${REPS:-7}
THREADS=${BENCH_GEMM_THREADS:-1 2}
echo "### gemm_bf16: nn bf16 kernel vs oneDNN bf16 matmul vs OpenBLAS sgemm (GFLOP/s, median of $REPS)"
echo
if [ ! -x "$BIN" ]; then
  echo "SKIPPED: $BIN not built (oneDNN's header oneapi/dnnl/dnnl.h not found: apt-get install libdnnl-dev, then make benches)"
  echo
  exit 0
fi
lib=$(ldd "$BIN" | awk '/libdnnl/ {print $3}')
cyc=$(LD_DEBUG=statistics "$BIN" 0 2>&1 | sed -n 's/.*total startup time in dynamic loader: \([0-9]*\) cycles.*/\1/p' | head -1)
echo "host: $(nproc) cores, load average at start $(cut -d' ' -f1-3 /proc/loadavg); OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}"
echo "oneDNN library: $lib, $(du -k --apparent-size "$(readlink -f "$lib")" | cut -f1) KiB on disk; the whole process's dynamic loading: ${cyc:-?} cycles"
# shellcheck disable=SC2086
"$BIN" "$REPS" $THREADS
status=$?
echo
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
exit $status
