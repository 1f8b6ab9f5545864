#!/usr/bin/env bash
# bench_evalshard: full-ranking evaluation of a dot-product model on a large synthetic catalogue
# (ITEMS items, default 200,000; USERS users, default 2,000; width 64), the item table on every rank
# (eval.item_shard = off) against the table sharded over the ranks (on), 1 thread per rank:
# 1 rank unsharded, then 2 ranks unsharded and sharded, and 4 ranks sharded (--oversubscribe: its
# times share the 2 cores; it is there for the memory). Per configuration: seconds to load the
# latents and to score, peak memory of the largest rank (medians of REPS runs, interleaved); ratios
# in the same run; PASSED when every run's per-user rows are the same bits (hash of the rows).
set -u
REPS=${REPS:-3}; ITEMS=${ITEMS:-200000}; USERS=${USERS:-2000}
X=$DM_BUILD/bench/bench_evalshard
[ -x "$X" ] || { echo "### item-sharded evaluation: skipped ($X not built)"; exit 0; }
W=$DM_TMP/bench_evalshard; rm -rf $W; mkdir -p $W
export OMP_WAIT_POLICY=passive OMP_NUM_THREADS=1
$X write $W/lat.h5 $ITEMS $USERS 64 || exit 1
median() { sort -g | awk '{a[NR]=$1} END{print (NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2}'; }
confs="1:off 2:off 2:on 4:on"
for r in $(seq $REPS); do
  for c in $confs; do
    np=${c%:*}; mode=${c#*:}
    $DM_MPIRUN -n $np $X $mode $W/lat.h5 $ITEMS $USERS < /dev/null > $W/out 2>&1 || { cat $W/out; exit 1; }
    grep "^$mode $np " $W/out >> $W/runs || { cat $W/out; exit 1; }
  done
done
declare -A load score mem
for c in $confs; do
  np=${c%:*}; mode=${c#*:}
  load[$c]=$(awk -v m=$mode -v n=$np '$1==m && $2==n {print $3}' $W/runs | median)
  score[$c]=$(awk -v m=$mode -v n=$np '$1==m && $2==n {print $4}' $W/runs | median)
  mem[$c]=$(awk -v m=$mode -v n=$np '$1==m && $2==n {print $5}' $W/runs | median)
done
hashes=$(awk '{print $6}' $W/runs | sort -u | wc -l)
table_mib=$(awk -v n=$ITEMS 'BEGIN{printf "%.1f", n * 64 * 4 / 1048576}')
echo "### item-sharded full-ranking evaluation: $ITEMS items x 64 (table $table_mib MiB), $USERS users (median of $REPS, 1 thread per rank)"
echo
echo "| ranks | item table | load s | score s | peak MiB (largest rank) |"
echo "|---|---|---|---|---|"
for c in $confs; do
  np=${c%:*}; mode=${c#*:}
  printf "| %d | %s | %.2f | %.2f | %.0f |\n" $np "$([ $mode = on ] && echo sharded || echo every rank)" ${load[$c]} ${score[$c]} ${mem[$c]}
done
echo
awk -v a=${mem[2:off]} -v b=${mem[2:on]} -v c=${mem[4:on]} 'BEGIN{printf "peak memory per rank, sharded / unsharded at 2 ranks: %.2f (4 ranks sharded / 2 unsharded: %.2f)\n", b/a, c/a}'
awk -v a=${score[1:off]} -v b=${score[2:on]} -v c=${score[2:off]} 'BEGIN{printf "scoring, 2 ranks sharded vs 1 rank: %.2fx faster (2 ranks unsharded vs 1 rank: %.2fx)\n", a/b, a/c}'
awk -v a=${load[2:off]} -v b=${load[2:on]} 'BEGIN{printf "loading at 2 ranks, unsharded / sharded: %.2f\n", a/b}'
echo "load: $(cut -d' ' -f1-3 /proc/loadavg) on $(getconf _NPROCESSORS_ONLN) cores"
if [ "$hashes" = 1 ]; then echo "rows: identical in every run ($(awk 'NR==1{print $6}' $W/runs)): PASSED"; else echo "rows: $hashes different hashes: FAILED"; exit 1; fi
