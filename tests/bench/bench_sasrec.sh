#!/usr/bin/env bash
# bench_sasrec.sh: training throughput (sequences/s) of the C SASRec (build/bench/bench_sasrec)
# against the PyTorch SASRec of the same arrangement (tests/bench/bench_sasrec.py, Debian's
# python3-torch), side by side in one run: for each thread count, REPS rounds each timing C and then
# PyTorch on the same synthetic batches; medians and their ratio, PASSED when C is at least 3x
# faster at every thread count on the Beauty-like data.
#
# Setting (the reference's): d = 50, maxlen = 50, 2 blocks, 1 head, dropout 0.5, batch 128, BCE with
# one negative per position, Adam; one step = zero grad + forward + loss + backward + Adam.
# Data: 12101 items (Amazon Beauty's catalogue size), Zipf popularity, 5-core-like users (mean 8.9
# interactions), the reference sampler's left-padded layout, so about 88% of the 50 positions are
# padding. The C kernels skip padded rows (their outputs are masked to zero and padded keys are
# excluded, so the result is the same); PyTorch computes the padded tensors as the reference code
# does. A second, informational measurement uses full-length sequences (no padding at all).
#
# Both sides run with the same OMP_WAIT_POLICY (default passive here): on a shared node, libgomp's
# spinning workers otherwise starve OpenBLAS's threads and both implementations slow down by 10-100x.
#
# Environment: DM_BUILD (build dir), DM_TMP (scratch), REPS (default 5), THREADS (default "1 N" with
# N = nproc), OMP_WAIT_POLICY.
set -u
cd "$(dirname "$0")/../.."
BUILD=${DM_BUILD:-$PWD/build}
TMP=${DM_TMP:-$BUILD/tmp}/bench_sasrec
BIN=$BUILD/bench/bench_sasrec
PY=/usr/bin/python3
REPS=${REPS:-5}
NCPU=$(nproc)
THREADS=${THREADS:-$( [ "$NCPU" -gt 1 ] && echo "1 $NCPU" || echo 1 )}
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
TARGET=3

if [ ! -x "$BIN" ]; then echo "bench_sasrec: $BIN missing (run make benches)"; exit 1; fi
if ! $PY -c "import torch" 2>/dev/null; then echo "bench_sasrec: FAILED (no torch in $PY; apt-get install python3-torch)"; exit 1; fi
mkdir -p "$TMP/beauty" "$TMP/full"
"$BIN" gen "$TMP/beauty" | sed 's/^/  beauty-like: /' || exit 1
"$BIN" gen "$TMP/full" --full | sed 's/^/  full-length: /' || exit 1

field() { sed -n "s/.*$1=\([0-9.]*\).*/\1/p"; }
median() { sort -g | awk '{a[NR]=$1} END {if (NR == 0) print "nan"; else if (NR % 2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }

# measure DATA THREADS REPS -> sets c_med t_med c_all t_all
measure() {
  local data=$1 th=$2 reps=$3 c t
  c_all=""; t_all=""
  for r in $(seq "$reps"); do
    c=$("$BIN" run "$data" "$th" 200 5 | field seq_per_s)
    t=$($PY tests/bench/bench_sasrec.py "$data" "$th" 15 3 | field seq_per_s)
    c_all="$c_all ${c:-0}"; t_all="$t_all ${t:-0}"
  done
  c_med=$(echo $c_all | tr ' ' '\n' | median)
  t_med=$(echo $t_all | tr ' ' '\n' | median)
}

echo
echo "## SASRec training throughput, C vs PyTorch $($PY -c 'import torch; print(torch.__version__)')"
echo
echo "d=50 maxlen=50 blocks=2 heads=1 dropout=0.5 batch=128 BCE+Adam, 12101 items; medians of $REPS rounds run side by side; OMP_WAIT_POLICY=$OMP_WAIT_POLICY; host load at start: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| data | threads | C seq/s | PyTorch seq/s | ratio | target | verdict |"
echo "|---|---|---|---|---|---|---|"
status=0
for th in $THREADS; do
  measure "$TMP/beauty" "$th" "$REPS"
  ratio=$(awk -v a="$c_med" -v b="$t_med" 'BEGIN {printf "%.1f", (b > 0 ? a / b : 0)}')
  ok=$(awk -v r="$ratio" -v t="$TARGET" 'BEGIN {print (r >= t) ? "PASSED" : "FAILED"}')
  [ "$ok" = PASSED ] || status=1
  echo "| beauty-like (88% padding) | $th | $c_med | $t_med | ${ratio}x | >= ${TARGET}x | $ok |"
  echo "  rounds C:$c_all | torch:$t_all" >&2
done
th=$(echo $THREADS | awk '{print $NF}')
measure "$TMP/full" "$th" 3
ratio=$(awk -v a="$c_med" -v b="$t_med" 'BEGIN {printf "%.1f", (b > 0 ? a / b : 0)}')
echo "| full-length (no padding) | $th | $c_med | $t_med | ${ratio}x | info | - |"
echo "  rounds C:$c_all | torch:$t_all" >&2
echo
if [ $status -eq 0 ]; then echo "bench_sasrec: PASSED (C >= ${TARGET}x PyTorch at every thread count)"; else echo "bench_sasrec: FAILED (C < ${TARGET}x PyTorch at some thread count)"; fi
exit $status
