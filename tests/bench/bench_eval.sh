#!/usr/bin/env bash
# bench_eval: full-ranking evaluation of every Amazon Beauty user with SASRec (scores by sgemm over
# item blocks, then one metric pass per user), 1 vs 2 ranks: seconds, users/s, achieved GFLOP/s of
# the scoring against the machine's sgemm peak measured in the same run, and peak memory.
set -u
REPS=${REPS:-3}
B=$DM_BUILD/dynmm
[ -n "$DM_DATA" ] && [ -d "$DM_DATA/amazon-beauty" ] || { echo "### evaluation: skipped (Amazon Beauty not found)"; exit 0; }
W=$DM_TMP/bench_eval; mkdir -p $W
export OMP_WAIT_POLICY=passive
base=(configs/amazon-beauty.cfg --set run.dir=$W --set data.inter=$DM_DATA/amazon-beauty/reviews_Beauty_5.json.gz
      --set data.meta=$DM_DATA/amazon-beauty/meta_Beauty.json.gz --set 'cf.models=[sasrec]' --set sasrec.epochs=1
      --set 'eval.models=[sasrec]' --set 'eval.protocols=[full]' --set 'eval.splits=[test]')
$DM_MPIRUN -n 2 $B run "${base[@]}" --set 'run.stages=[ingest,train-cf]' < /dev/null > $W/prep.log 2>&1 || { cat $W/prep.log; exit 1; }
median() { sort -g | awk '{a[NR]=$1} END{print (NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2}'; }
declare -A sec mem
for np in 1 2; do
  : > $W/s$np; : > $W/m$np
  for r in $(seq $REPS); do
    out=$($DM_MPIRUN -n $np $B eval "${base[@]}" --set run.threads=$((2 / np)) < /dev/null 2>&1) || { echo "$out"; exit 1; }
    echo "$out" | awk '$1=="test" && $2=="full" {print $NF}' >> $W/s$np
    echo "$out" | sed -n 's/.*peak memory \([0-9.]*\) MiB on rank.*/\1/p' >> $W/m$np
  done
  sec[$np]=$(median < $W/s$np); mem[$np]=$(median < $W/m$np)
done
peak=$($DM_BUILD/bench/bench_sgemm 2 2048 5)
users=22363; items=12101; d=50
echo "### full-ranking evaluation, Amazon Beauty test split, SASRec (median of $REPS)"
echo
echo "sgemm peak (OpenBLAS, 2 threads, 2048^3): $peak GFLOP/s"
echo
echo "| ranks x threads | seconds | users/s | scoring GFLOP/s | % of sgemm peak | peak MiB/rank |"
echo "|---|---|---|---|---|---|"
for np in 1 2; do
  awk -v np=$np -v s=${sec[$np]} -v u=$users -v n=$items -v d=$d -v p=$peak -v m=${mem[$np]} 'BEGIN{g=2*u*n*d/s/1e9; printf "| %d x %d | %.3f | %.0f | %.1f | %.0f%% | %.0f |\n", np, 2/np, s, u/s, g, 100*g/p, m}'
done
awk -v a=${sec[1]} -v b=${sec[2]} 'BEGIN{printf "\nspeedup 2 ranks vs 1 rank (same total cores): %.2fx\n", a/b}'
