#!/usr/bin/env bash
# bench_ingest: `dynmm ingest` throughput and peak memory per rank, 1 vs 2 ranks, on Amazon Beauty
# (2014 JSON + Python-literal metadata, gzip) and on a 20M-interaction TSV from the synthetic
# generator's tastes, plus the generator itself at 20M interactions. Medians of REPS runs.
set -u
REPS=${REPS:-3}
B=$DM_BUILD/dynmm
W=$DM_TMP/bench_ingest; mkdir -p $W
median() { sort -g | awk '{a[NR]=$1} END{print (NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2}'; }
run() { # label np args... -> "seconds peakMiB"
  local np=$1; shift
  local out t0 t1
  t0=$(date +%s%N)
  out=$($DM_MPIRUN -n $np $B ingest "$@" --set run.dir=$W/run$np < /dev/null 2>&1) || { echo "FAILED: $out" >&2; echo "nan nan"; return; }
  t1=$(date +%s%N)
  echo "$(awk -v a=$t0 -v b=$t1 'BEGIN{print (b-a)/1e9}') $(echo "$out" | sed -n 's/.*peak memory \([0-9.]*\) MiB on rank.*/\1/p')"
}
report() { # name ninter args...
  local name=$1 n=$2; shift 2
  local r1 r2
  echo "| $name | $n |" > /dev/null
  for np in 1 2; do
    : > $W/t$np; : > $W/m$np
    for r in $(seq $REPS); do set -- "$@"; x=$(run $np "$@"); echo "${x% *}" >> $W/t$np; echo "${x#* }" >> $W/m$np; done
  done
  t1=$(median < $W/t1); t2=$(median < $W/t2); m1=$(median < $W/m1); m2=$(median < $W/m2)
  awk -v n=$n -v t1=$t1 -v t2=$t2 -v m1=$m1 -v m2=$m2 -v name="$name" 'BEGIN{printf "| %s | %d | %.2f s (%.2f M/s) | %.2f s (%.2f M/s) | %.2fx | %.0f MiB | %.0f MiB |\n", name, n, t1, n/t1/1e6, t2, n/t2/1e6, t1/t2, m1, m2}'
}
echo "### ingest throughput (median of $REPS, wall time including startup and the collective HDF5 write)"
echo
echo "| input | interactions | 1 rank | 2 ranks | speedup | peak MiB/rank (1) | peak MiB/rank (2) |"
echo "|---|---|---|---|---|---|---|"
if [ -n "$DM_DATA" ] && [ -d "$DM_DATA/amazon-beauty" ]; then
  report "Amazon Beauty (json.gz + meta)" 198502 configs/amazon-beauty.cfg --set data.inter=$DM_DATA/amazon-beauty/reviews_Beauty_5.json.gz --set data.meta=$DM_DATA/amazon-beauty/meta_Beauty.json.gz
else
  echo "| Amazon Beauty | skipped: data not found | | | | | |"
fi
N=${BENCH_INGEST_N:-20000000}
tsv=$W/synth20m.tsv
if [ ! -s $tsv ]; then
  awk -v n=$N 'BEGIN{srand(7); for(i=0;i<n;i++){u=int(i/20); printf "%d\t%d\t%d\n", u, int(100000*rand()*rand()), 1500000000+i}}' > $tsv
fi
report "synthetic TSV, 1M users x 100k items" $N --set data.format=tsv --set data.inter=$tsv --set data.time_col=2
echo
echo "### generator at scale (\`dynmm synth\`, same writer)"
echo
echo "| users x items | interactions | 1 rank | 2 ranks | speedup |"
echo "|---|---|---|---|---|"
for np in 1 2; do
  t0=$(date +%s%N)
  out=$($DM_MPIRUN -n $np $B synth --set run.dir=$W/s$np --set synth.users=1000000 --set synth.items=100000 --set synth.clusters=200 < /dev/null 2>&1)
  t1=$(date +%s%N); eval "s$np=$(awk -v a=$t0 -v b=$t1 'BEGIN{print (b-a)/1e9}')"
  n=$(echo "$out" | sed -n 's/.* items, \([0-9]*\) interactions.*/\1/p')
done
awk -v n=$n -v a=$s1 -v b=$s2 'BEGIN{printf "| 1M x 100k | %d | %.1f s | %.1f s | %.2fx |\n", n, a, b, a/b}'
