#!/usr/bin/env bash
# bench_align.sh: the multimodal base aligner (`dynmm align`, stages/stage_align.c) at 1 and 2 ranks with
# the same global batch (align.batch 256 examples x (1 + 4) items) and the same total cores (1 x 2
# threads, 2 x 1 thread):
#   - steps/s of the stage itself (its own "ms/step" log line of the last of 2 epochs; the first
#     warms up) and its peak memory per rank ("peak memory X MiB on rank r"), on the synthetic
#     default with all four modalities (cf, text, visual, audio; 10000 users x 5000 items) and on
#     Amazon Beauty (cf + LSA text) when DM_DATA holds it;
#   - where a step goes (build/bench/bench_align, tests/bench/bench_align.c): the stage's calling
#     sequence on random features of the same widths, timed phase by phase (forward, InfoNCE/loss,
#     backward, Adam, and the collectives: the allgather of the negative bank, the allreduces of
#     its gradient and of the parameter gradient, the error-flag agreements), and the collectives'
#     share of the step.
# Medians of REPS runs (default 3). No target: the numbers are reported. OMP_WAIT_POLICY=passive as
# bench_eval (spinning OpenMP workers starve BLAS threads on a shared node).
set -u
REPS=${REPS:-3}
. tests/bench/bench_lib.sh
bench_setup align
status=0

echo "### align: \`dynmm align\` steps/s, 1 vs 2 ranks (median of $REPS)"
echo
echo "host: $(nproc) cores, load average at start $(load); global batch 256 x (1 + 4) at both rank counts,"
echo "1 rank x 2 threads vs 2 ranks x 1 thread; OMP_WAIT_POLICY=$OMP_WAIT_POLICY. Steps/s from the stage's"
echo "ms/step of its second (last) epoch; wall = the whole stage (LSA, epochs, validation, write)."
echo
echo "| data | modalities | steps/epoch | 1 rank steps/s | 2 ranks steps/s | speedup | wall 1 / 2 ranks | peak MiB/rank (1) | peak MiB/rank (2) |"
echo "|---|---|---|---|---|---|---|---|---|"

# stage_rows NAME ARGS...: runs align REPS times at 1 and 2 ranks on a prepared run dir
stage_rows() {
  local name=$1; shift
  local np r out ms t0 t1 mods spe
  declare -A S M T
  for np in 1 2; do
    : > "$W/s$np"; : > "$W/m$np"; : > "$W/t$np"
    for r in $(seq "$REPS"); do
      t0=$(date +%s%N)
      out=$($DM_MPIRUN -n $np "$B" align "$@" < /dev/null 2>&1) || { echo "| $name | FAILED: $(echo "$out" | grep -m1 error) | | | | | | | |"; status=1; return; }
      t1=$(date +%s%N)
      ms=$(echo "$out" | sed -n 's/.* \([0-9.]*\) ms\/step.*/\1/p' | tail -1)
      awk -v m="$ms" 'BEGIN{print 1000 / m}' >> "$W/s$np"
      echo "$out" | sed -n 's/.*peak memory \([0-9.]*\) MiB on rank.*/\1/p' >> "$W/m$np"
      awk -v a="$t0" -v b="$t1" 'BEGIN{print (b - a) / 1e9}' >> "$W/t$np"
      mods=$(echo "$out" | sed -n 's/.*modalities \(.*\), d=.*/\1/p' | tr ' ' '+')
      spe=$(echo "$out" | sed -n 's/.* \([0-9]*\) steps\/epoch.*/\1/p')
    done
    S[$np]=$(median < "$W/s$np"); M[$np]=$(median < "$W/m$np"); T[$np]=$(median < "$W/t$np")
  done
  awk -v n="$name" -v mo="$mods" -v spe="$spe" -v s1="${S[1]}" -v s2="${S[2]}" -v t1="${T[1]}" -v t2="${T[2]}" -v m1="${M[1]}" -v m2="${M[2]}" \
    'BEGIN{printf "| %s | %s | %d | %.2f | %.2f | %.2fx | %.1f s / %.1f s | %.0f | %.0f |\n", n, mo, spe, s1, s2, s2 / s1, t1, t2, m1, m2}'
}

# synthetic: all four modalities
SY=(--set run.dir="$W/synth" --set synth.users=10000 --set synth.items=5000 --set 'cf.models=[sasrec]' --set sasrec.epochs=1
    --set align.epochs=2)
if $DM_MPIRUN -n 2 "$B" run "${SY[@]}" --set 'run.stages=[synth,train-cf]' < /dev/null > "$W/prep_synth.log" 2>&1; then
  stage_rows "synthetic 10k users x 5k items" "${SY[@]}"
else
  echo "| synthetic | FAILED to prepare (see $W/prep_synth.log) | | | | | | | |"; status=1
fi
# Amazon Beauty: cf + LSA text
BE=()
if [ -n "${DM_DATA:-}" ] && [ -f "$DM_DATA/amazon-beauty/reviews_Beauty_5.json.gz" ]; then
  BE=(configs/amazon-beauty.cfg --set run.dir="$W/beauty" --set data.inter="$DM_DATA/amazon-beauty/reviews_Beauty_5.json.gz"
      --set data.meta="$DM_DATA/amazon-beauty/meta_Beauty.json.gz" --set 'cf.models=[sasrec]' --set sasrec.epochs=1
      --set sasrec.loss=bce --set align.epochs=2)
  if $DM_MPIRUN -n 2 "$B" run "${BE[@]}" --set 'run.stages=[ingest,train-cf]' < /dev/null > "$W/prep_beauty.log" 2>&1; then
    stage_rows "Amazon Beauty (22363 users x 12101 items)" "${BE[@]}"
  else
    echo "| Amazon Beauty | FAILED to prepare (see $W/prep_beauty.log) | | | | | | | |"; status=1
  fi
else
  echo "| Amazon Beauty | skipped: \$DM_DATA/amazon-beauty not found | | | | | | | |"
fi

echo
echo "### align: where a step goes (bench_align harness, the stage's calling sequence, median of $REPS runs x 20 steps)"
echo
echo "Random features of the stage's widths; ms per phase = mean over ranks, median over steps. \"agree\" = the"
echo "three error-flag allreduces, which absorb the ranks' load imbalance; collectives = agree + allgather of the"
echo "negative bank + allreduce of its gradient + allreduce of the parameter gradient."
echo
echo "| shapes (D_cf, D_text, D_visual, D_audio) | ranks x threads | step ms | steps/s | forward | loss (InfoNCE + rank) | backward | Adam | allgather bank | allreduce dbank | allreduce grads | agree | collectives % of step | MiB sent/rank/step | peak MiB/rank |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
harness() { # label items dims...
  local label=$1 items=$2 np r out k; shift 2
  local keys="step_ms steps_per_s fwd_ms loss_ms bwd_ms adam_ms gather_ms red_bank_ms red_grad_ms agree_ms comm_share bytes_per_rank peak_rss_mib threads"
  for np in 1 2; do
    for k in $keys; do : > "$W/h_$k"; done
    for r in $(seq "$REPS"); do
      out=$($DM_MPIRUN -n $np "$H" 20 256 4 "$@" "$items" < /dev/null 2>&1) || { echo "| $label | $np | FAILED: $(echo "$out" | tail -1) |"; status=1; continue 2; }
      for k in $keys; do echo "$out" | tail -1 | field "$k" >> "$W/h_$k"; done
    done
    declare -A v
    for k in $keys; do v[$k]=$(median < "$W/h_$k"); done
    awk -v l="$label" -v np=$np -v th="${v[threads]}" -v st="${v[step_ms]}" -v sps="${v[steps_per_s]}" -v f="${v[fwd_ms]}" -v lo="${v[loss_ms]}" \
        -v b="${v[bwd_ms]}" -v a="${v[adam_ms]}" -v g="${v[gather_ms]}" -v rb="${v[red_bank_ms]}" -v rg="${v[red_grad_ms]}" -v ag="${v[agree_ms]}" \
        -v cs="${v[comm_share]}" -v by="${v[bytes_per_rank]}" -v m="${v[peak_rss_mib]}" \
      'BEGIN{printf "| %s | %d x %d | %.1f | %.2f | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f%% | %.1f | %.0f |\n", l, np, th, st, sps, f, lo, b, a, g, rb, rg, ag, 100 * cs, by / 1048576, m}'
  done
}
harness "synthetic: 50, 64, 64, 32" 5000 50 64 64 32
harness "Beauty: 50, 64 (LSA), -, -" 12101 50 64 0 0
echo
echo "load average at the end: $(load)"
echo
exit $status
