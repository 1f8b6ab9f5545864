#!/usr/bin/env bash
# The scaling model's pieces end to end:
#  1. a counted run (DM_MPI_COUNT) writes one CSV with every rank's rows under the stage labels, and
#     the calls and bytes of a deterministic stage (synth) are identical between two runs; an
#     unwritable path is reported; without the variable nothing is written;
#  2. analysis/scalefit.sh recovers known alpha, beta and compute model s + w/p from synthetic
#     counts made with them, and its projection equals the model's formula worked out here.
set -u
W=$DM_TMP/scaling
rm -rf "$W"; mkdir -p "$W"
fail() { echo "FAIL: $*"; exit 1; }

# ---- 1. counting a real stage
for k in 1 2; do
  DM_MPI_COUNT=$W/count$k.csv $DM_MPIRUN -n 2 "$DM_BUILD/dynmm" synth --set run.dir=$W/run$k --set synth.users=400 \
    --set synth.items=200 < /dev/null > $W/log$k 2>&1 || { cat $W/log$k; fail "counted synth run $k"; }
done
head -1 $W/count1.csv | grep -qx 'ranks,rank,stage,op,kind,calls,bytes,max_bytes,seconds,cpu_seconds' || fail "CSV header"
for r in 0 1; do
  grep -q "^2,$r,synth,wall,stage,1," $W/count1.csv || fail "no synth stage row of rank $r"
  grep -q "^2,$r,other,wall,stage,1," $W/count1.csv || fail "no 'other' row of rank $r"
  grep -q "^2,$r,synth,Allreduce,coll," $W/count1.csv || fail "no synth Allreduce of rank $r"
  grep -q "^2,$r,synth,File_write_at_all,io," $W/count1.csv || fail "synth's collective HDF5 writes not counted on rank $r"
done
# rows without the times: rank, stage, call, calls, bytes, largest call
for k in 1 2; do grep ',synth,' $W/count$k.csv | grep -v ',wall,stage,' | cut -d, -f1-8 | sort > $W/cnt$k; done
[ -s $W/cnt1 ] || fail "no synth rows"
cmp -s $W/cnt1 $W/cnt2 || { diff $W/cnt1 $W/cnt2 | head; fail "synth's counts differ between two identical runs"; }
echo "synth at 2 ranks: $(wc -l < $W/cnt1) (rank, call) rows, identical in two runs"
before=$(find $W -newer $W/count2.csv -type f | wc -l)
DM_MPI_COUNT= $DM_MPIRUN -n 2 "$DM_BUILD/dynmm" synth --set run.dir=$W/run3 --set synth.users=400 --set synth.items=200 < /dev/null \
  > /dev/null 2>&1 || fail "uncounted run"
# an uncounted run writes its dataset (and the run.dir lock) and nothing else
[ "$(find $W -newer $W/count2.csv -type f -not -path "$W/run3/*" | wc -l)" = "$before" ] || fail "an uncounted run wrote a file outside its run.dir"
[ -z "$(ls -A $W/run3 | grep -v -e '^dataset.h5$' -e '^\.dynmm.lock$')" ] || fail "an uncounted run wrote more than its dataset: $(ls -A $W/run3)"
out=$(DM_MPI_COUNT=$W/no/such/dir/c.csv "$DM_BUILD/dynmm" synth --set run.dir=$W/run4 --set synth.users=400 --set synth.items=200 2>&1 < /dev/null)
echo "$out" | grep -q "DM_MPI_COUNT: cannot write '$W/no/such/dir/c.csv'" || { echo "$out" | tail -3; fail "unwritable DM_MPI_COUNT not reported"; }

# ---- 2. the fit on synthetic counts: alpha0 = 3 us, beta0 = 0.25 ns/byte; compute 1.5 + 12/p s
S=$W/synthetic
mkdir -p $S
printf 'stage,steps\nsolve,10\n' > $S/steps.csv
for p in 1 2 3 4 6 8; do
  awk -v p=$p 'function lg(p,  l, q) { l = 0; q = 1; while (q < p) { q *= 2; l++ } return l }
  BEGIN {
    a = 3e-6; b = 2.5e-10
    print "ranks,rank,stage,op,kind,calls,bytes,max_bytes,seconds,cpu_seconds"
    for (r = 0; r < p; r++) {
      mpi = 0
      if (p > 1) {
        # Allreduce: 40 calls of 80 kB (replicated); Allgather: 10 calls of 48000/p bytes each (divided);
        # Isend: 10 x (p - 1) messages of 2 kB (one per peer); Bcast: 5 calls of 64 bytes
        n = 40; by = n * 80000; t = a * n * 2 * lg(p) + b * by * 2 * (p - 1) / p; mpi += t
        printf "%d,%d,solve,Allreduce,coll,%d,%d,80000,%.12f,%.12f\n", p, r, n, by, t, t
        n = 10; by = n * 48000 / p; t = a * n * lg(p) + b * by * (p - 1); mpi += t
        printf "%d,%d,solve,Allgather,coll,%d,%d,%d,%.12f,%.12f\n", p, r, n, by, 48000 / p, t, t
        n = 10 * (p - 1); by = n * 2048; t = a * n + b * by; mpi += t
        printf "%d,%d,solve,Isend,p2p,%d,%d,2048,%.12f,%.12f\n", p, r, n, by, t, t
        n = 5; by = n * 64; t = a * n * lg(p) + b * by * 2 * (p - 1) / p; mpi += t
        printf "%d,%d,solve,Bcast,coll,%d,%d,64,%.12f,%.12f\n", p, r, n, by, t, t
      }
      c = 1.5 + 12 / p
      printf "%d,%d,solve,wall,stage,1,0,0,%.12f,%.12f\n", p, r, c + mpi, c + mpi
    }
  }' > $S/counts_p$p.csv
done
# derived weak scaling first (no weak/ measurements): the divided parts kept at their one-rank size
ALPHA=2e-6 BANDWIDTH=100e9 analysis/scalefit.sh $S > $W/fit.log 2>&1 || { cat $W/fit.log; fail "scalefit.sh"; }
cat $S/fit.csv
# the synthetic times are exact up to the 12 printed digits: the fitted values agree to 1e-6 relative
check() { # name, got, want
  awk -v g="$2" -v w="$3" 'BEGIN { d = g - w; if (d < 0) d = -d; exit !(d <= 1e-6 * (w < 0 ? -w : w) + 1e-9) }' \
    || fail "$1: $2, want $3"
}
val() { awk -F, -v w="$1" -v s="$2" -v c="$3" '$1 == w && $3 == s { print $c }' $S/fit.csv; }
check alpha_fit "$(val alpha_fit '' 5)" 3e-6
check beta_fit "$(val beta_fit '' 5)" 2.5e-10
check compute_serial "$(val compute solve 5)" 1.5
check compute_parallel "$(val compute solve 6)" 12
# the projection at 1024 ranks for 2 us and 100 Gb/s (beta = 8e-11 s/byte), lg = 10, worked out here:
#   strong: 1.5 + 12/1024 + Allreduce 40 (2 us x 20 + 80000 x 8e-11 x 2 x 1023/1024)
#           + Allgather 10 (2 us x 10 + 48000/1024 x 8e-11 x 1023) + Isend 10 x 1023 (2 us + 2048 x 8e-11)
#           + Bcast 5 (2 us x 10 + 64 x 8e-11 x 2 x 1023/1024)
#   weak:   the divided parts at their one-rank size: compute 13.5, Allgather 48000 bytes per call
want_s=$(awk 'BEGIN { OFMT = "%.9f"; a = 2e-6; b = 8e-11; p = 1024
  print 1.5 + 12 / p + 40 * (a * 20 + 80000 * b * 2 * (p - 1) / p) + 10 * (a * 10 + 48000 / p * b * (p - 1)) \
        + 10 * (p - 1) * (a + 2048 * b) + 5 * (a * 10 + 64 * b * 2 * (p - 1) / p) }')
want_w=$(awk 'BEGIN { OFMT = "%.9f"; a = 2e-6; b = 8e-11; p = 1024
  print 13.5 + 40 * (a * 20 + 80000 * b * 2 * (p - 1) / p) + 10 * (a * 10 + 48000 * b * (p - 1)) \
        + 10 * (p - 1) * (a + 2048 * b) + 5 * (a * 10 + 64 * b * 2 * (p - 1) / p) }')
proj() { awk -F, -v m="$1" -v p="$2" -v c="$3" '$1 == m && $2 == "solve" && $3 == p { print $c }' $S/projection.csv; }
# printed with 6 decimals: within 1e-5 relative
near() { awk -v g="$2" -v w="$3" 'BEGIN { exit !((g - w) ^ 2 <= (1e-5 * w) ^ 2) }' || fail "$1: $2, want $3"; }
echo "projection at 1024 ranks: strong $(proj strong 1024 6) s (want $want_s), derived weak $(proj weak 1024 6) s (want $want_w)"
near "strong projection" "$(proj strong 1024 6)" "$want_s"
near "derived weak projection" "$(proj weak 1024 6)" "$want_w"
[ "$(proj strong 1 5)" = 0.000000 ] || fail "communication at one rank should be 0, is $(proj strong 1 5)"
grep -q "^PROJECTION from the measured counts" $S/projection.md || fail "projection.md not labelled as a projection"
grep -q "Strong scaling: projection from measured counts" $S/scaling.gp && grep -q "Weak scaling: projection from measured counts" $S/scaling.gp || fail "figures not labelled as projections"
if command -v gnuplot > /dev/null; then for x in scaling.png scaling.pdf scaling_weak.png scaling_weak.pdf; do [ -s $S/$x ] || fail "figure $x not drawn"; done; fi

# measured weak scaling (weak/): compute 2 + 0.01 p; a 40-call Allreduce of 80 kB; every rank sends
# 10 (p - 1) messages of 2 kB and rank 0 receives 10 (p - 1) of 4 kB (the busier direction counts)
mkdir -p $S/weak
printf 'stage,steps\nsolve,10\n' > $S/weak/steps.csv
for p in 1 2 3 4 6 8; do
  awk -v p=$p 'BEGIN {
    print "ranks,rank,stage,op,kind,calls,bytes,max_bytes,seconds,cpu_seconds"
    for (r = 0; r < p; r++) {
      if (p > 1) {
        printf "%d,%d,solve,Allreduce,coll,40,3200000,80000,0.01,0.01\n", p, r
        printf "%d,%d,solve,Isend,p2p,%d,%d,2048,0.001,0.001\n", p, r, 10 * (p - 1), 20480 * (p - 1)
        if (r == 0) printf "%d,%d,solve,Irecv,p2p,%d,%d,4096,0.001,0.001\n", p, r, 10 * (p - 1), 40960 * (p - 1)
      }
      c = 2 + 0.01 * p
      printf "%d,%d,solve,wall,stage,1,0,0,%.12f,%.12f\n", p, r, c + (p > 1 ? 0.011 + (r == 0) * 0.001 : 0), c + (p > 1 ? 0.011 + (r == 0) * 0.001 : 0)
    }
  }' > $S/weak/counts_p$p.csv
done
ALPHA=2e-6 BANDWIDTH=100e9 analysis/scalefit.sh $S > $W/fit.log 2>&1 || { cat $W/fit.log; fail "scalefit.sh with weak/"; }
vw() { awk -F, -v c="$1" '$1 == "compute" && $2 == "weak" && $3 == "solve" { print $c }' $S/fit.csv; }
check "weak compute a" "$(vw 5)" 2
check "weak compute b" "$(vw 7)" 0.01
want_w=$(awk 'BEGIN { OFMT = "%.9f"; a = 2e-6; b = 8e-11; p = 1024
  print 2 + 0.01 * p + 40 * (a * 20 + 80000 * b * 2 * (p - 1) / p) + a * 10 * (p - 1) + b * 40960 * (p - 1) }')
echo "measured weak projection at 1024 ranks: $(proj weak 1024 6) s (want $want_w)"
near "weak projection" "$(proj weak 1024 6)" "$want_w"
near "strong projection unchanged" "$(proj strong 1024 6)" "$want_s"
echo ok
