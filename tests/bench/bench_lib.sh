# bench_lib.sh: what the benchmark scripts share (sourced from the repository root by
# tests/bench/bench_*.sh).
#   field NAME         the value of NAME=value among the space-separated pairs on stdin
#   median             the median of the numbers on stdin, one a line ("nan" for none)
#   load               the load averages over 1, 5 and 15 minutes
#   bench_setup NAME   the benchmark's scratch directory W=$DM_TMP/bench_NAME (created) and its
#                      program H=$DM_BUILD/bench/bench_NAME: a FAILED line and exit when not built
# and the settings: B the binary, PY the Python of the references, and OMP_WAIT_POLICY passive
# unless set (spinning OpenMP workers starve BLAS threads and the other ranks on a shared node).
B=$DM_BUILD/dynmm
PY=/usr/bin/python3
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
field() { tr ' ' '\n' | sed -n "s/^$1=//p"; }
median() { sort -g | awk '{a[NR]=$1} END{if (NR == 0) print "nan"; else print (NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2}'; }
load() { cut -d' ' -f1-3 /proc/loadavg; }
bench_setup() {
  W=$DM_TMP/bench_$1; mkdir -p "$W"
  H=$DM_BUILD/bench/bench_$1
  [ -x "$H" ] || { echo "### $1: FAILED ($H missing; run make benches)"; exit 1; }
}
