#!/usr/bin/env bash
# bench_stream.sh: the online adapter of dynamic incremental alignment (`dynmm stream`,
# stages/stage_stream.c) under the prequential protocol (split.protocol = "stream"), 2 ranks:
#   - update cost: the adapter's update per window (/stream/adapter/train_seconds: its optimisation
#     steps and the Fisher for EWC) against retraining SASRec from scratch per window
#     (/stream/retrained/train_seconds), side by side in one run, medians over windows
#     (tests/reference/bench_stream_h5.py reads stream.h5);
#   - inference overhead of the dynamic latents over the base latents, target < 2%:
#     (a) build/bench/bench_stream (tests/bench/bench_stream.c), side by side in one process. The
#         dynamic latents are window-level objects (their inputs and the EMA weights change only
#         between windows), so the stage computes them once per window (the refresh: every item's
#         residual and the window's users') and a request then scores h . z^T exactly as a base
#         request scores h_base . z_base^T. Reported: the per-request overhead (passes of requests
#         over the window's users on the served latents vs on the base latents, interleaved,
#         medians; the verdict row), the refresh time, the overhead when a window serves a single
#         pass over its users (the prequential evaluation's own load), and the break-even load
#         (passes per window) above which the refresh costs under 2%;
#     (b) the stage's own timings, for information: (adapter score + serve - static score) / static
#         score per window, where score = full ranking + metrics of the rank's users and serve = the
#         refresh of every item and of the rank's users.
# Data: the synthetic default (2000 users x 1000 items, 8 equal-count windows) and Amazon Beauty
# with monthly windows (the last 6 months) when DM_DATA holds it. SASRec trains sasrec.epochs for the
# base and retrains stream.retrain_epochs (set equal) every stream.retrain_every = 2 windows.
set -u
REPS=${REPS:-3}
. tests/bench/bench_lib.sh
bench_setup stream
TARGET=2
status=0
NCPU=$(nproc)

# prepare and run one stream stage; sets line_<tag> (bench_stream_h5.py output) or leaves it empty
run_stream() { # tag args...
  local tag=$1; shift
  if $DM_MPIRUN -n 2 "$B" run "$@" --set 'run.stages=[train-cf,align,stream]' --set run.force=true --set split.protocol=stream \
       --set 'cf.models=[sasrec]' --set 'stream.variants=[static,adapter,retrained]' --set stream.retrain_every=2 \
       < /dev/null > "$W/$tag.log" 2>&1; then
    eval "line_$tag=\"\$($PY tests/reference/bench_stream_h5.py \"$W/$tag/stream.h5\" 1)\""
  else
    eval "line_$tag="
    status=1
  fi
}

echo "### stream: online adapter vs SASRec retraining, and the inference overhead of the dynamic latents"
echo
echo "host: $NCPU cores, load average at start $(load); stages at 2 ranks x 1 thread; OMP_WAIT_POLICY=$OMP_WAIT_POLICY."
echo

t0=$(date +%s)
# synthetic default: 2000 users x 1000 items, 8 windows
SY=(--set run.dir="$W/synth" --set sasrec.epochs=10 --set sasrec.eval_every=5 --set stream.retrain_epochs=10 --set align.epochs=5)
if $DM_MPIRUN -n 2 "$B" run "${SY[@]}" --set split.protocol=stream --set 'run.stages=[synth]' < /dev/null > "$W/synth_prep.log" 2>&1; then
  run_stream synth "${SY[@]}"
else
  line_synth=; status=1
fi
EP_SY=10
have_beauty=0
if [ -n "${DM_DATA:-}" ] && [ -f "$DM_DATA/amazon-beauty/reviews_Beauty_5.json.gz" ]; then
  have_beauty=1
  BE=(configs/amazon-beauty.cfg --set run.dir="$W/beauty" --set data.inter="$DM_DATA/amazon-beauty/reviews_Beauty_5.json.gz"
      --set data.meta="$DM_DATA/amazon-beauty/meta_Beauty.json.gz" --set window.last=6 --set sasrec.loss=bce --set sasrec.epochs=2
      --set sasrec.eval_every=1 --set stream.retrain_epochs=2 --set align.epochs=2)
  EP_BE=2
  if $DM_MPIRUN -n 2 "$B" run "${BE[@]}" --set split.protocol=stream --set 'run.stages=[ingest]' < /dev/null > "$W/beauty_prep.log" 2>&1; then
    run_stream beauty "${BE[@]}"
  else
    line_beauty=; status=1
  fi
fi
t_stage=$(( $(date +%s) - t0 ))

echo "#### update cost per window (one run each, medians over windows)"
echo
echo "| data | windows | users scored/window | adapter update s/window | SASRec retrain s/window (epochs) | retrain / adapter | windows retrained | at the full run's epochs |"
echo "|---|---|---|---|---|---|---|---|"
urow() { # label line epochs full_epochs
  if [ -z "$2" ]; then echo "| $1 | FAILED (see $W/*.log) | | | | | | |"; return; fi
  awk -v l="$1" -v ep="$3" -v fe="$4" -v w="$(echo "$2" | field windows)" -v u="$(echo "$2" | field users_med)" -v a="$(echo "$2" | field adapter_s)" \
      -v r="$(echo "$2" | field retrained_s)" -v q="$(echo "$2" | field ratio_w)" -v n="$(echo "$2" | field retrain_windows)" \
    'BEGIN{printf "| %s | %d | %.0f | %.2f | %.2f (%d, %.2f s/epoch) | %.1fx | %d | %.1fx (%d epochs) |\n", l, w, u, a, r, ep, r / ep, q, n, r / ep * fe / a, fe}'
}
urow "synthetic default (2000 x 1000)" "${line_synth:-}" $EP_SY 30
if [ $have_beauty = 1 ]; then urow "Amazon Beauty, monthly (last 6)" "${line_beauty:-}" $EP_BE 20
else echo "| Amazon Beauty | skipped: \$DM_DATA/amazon-beauty not found | | | | | | |"; fi
echo
echo "retrain / adapter = median over the retraining windows of the per-window ratio; SASRec retraining time grows"
echo "linearly with its epochs (the stage's default retrains as long as the base model trained), so the last column"
echo "scales this run's s/epoch to the epochs of the full runs in the README (SASRec's selected epoch: 20 on Beauty's"
echo "stream split; quickstart.cfg's 30 on the synthetic default). The adapter update runs in reproducible mode"
echo "(src/nn/gemm.h: fixed-order sgemm, so its weights are bitwise the same at any rank and thread count)."
echo

echo "#### inference overhead of the dynamic latents (target < ${TARGET}%)"
echo
echo "(a) side by side in one process (bench_stream, $NCPU threads, batches of 512 users, median of $REPS x 5 rounds,"
echo "each timing 4 interleaved passes of each kind): base = a pass of requests over the window's users on h_base, z_base;"
echo "served = the same pass on the dynamic latents h, z (computed by the window's refresh: every item's residual and the"
echo "window's users'). Per-request overhead = (served - base) / base (the verdict); one-pass overhead adds the refresh to a"
echo "window that serves a single pass over its users (the prequential evaluation's load); break-even = passes per window"
echo "above which the refresh costs under 2%."
echo
echo "| shapes | items | users/window | base pass ms | served pass ms | refresh ms (items + users) | per-request overhead | one-pass overhead | break-even passes | target | verdict |"
echo "|---|---|---|---|---|---|---|---|---|---|---|"
hrow() { # label items users verdict(1/0)
  local k out vals=() ks="base_ms dyn_ms items_ms users_ms overhead overhead_pass breakeven_passes"
  for k in $ks; do : > "$W/h_$k"; done
  for r in $(seq "$REPS"); do
    out=$("$H" "$2" "$3" 512 "$NCPU" 5) || { echo "| $1 | FAILED: bench_stream | | | | | | | | | |"; status=1; return; }
    for k in $ks; do echo "$out" | field $k >> "$W/h_$k"; done
  done
  for k in $ks; do vals+=("$(median < "$W/h_$k")"); done
  awk -v l="$1" -v ni="$2" -v nu="$3" -v b="${vals[0]}" -v d="${vals[1]}" -v i="${vals[2]}" -v u="${vals[3]}" -v o="${vals[4]}" \
      -v op="${vals[5]}" -v be="${vals[6]}" -v t=$TARGET -v v="$4" \
    'BEGIN{ok = (100 * o < t); printf "| %s | %d | %d | %.2f | %.2f | %.2f (%.2f + %.2f) | %.1f%% | %.0f%% | %.0f | %s | %s |\n", l, ni, nu, b, d, i + u, i, u,
           100 * o, 100 * op, be, v ? "< " t "% per request" : "(information)", v ? (ok ? "PASSED" : "FAILED") : "-"}'
}
usy=$(echo "${line_synth:-}" | field users_med); usy=${usy:-1200}; usy=${usy%.*}
hrow "synthetic default" 999 "$usy" 1
if [ $have_beauty = 1 ]; then
  ube=$(echo "${line_beauty:-}" | field users_med); ube=${ube:-3000}; ube=${ube%.*}
  hrow "Amazon Beauty, monthly" 12101 "$ube" 1
fi
hrow "larger catalogue" 50000 10000 0
echo
echo "(b) measured on the stage (one run, medians over the scored windows; score = full ranking + metrics of the"
echo "rank's users; serve = the refresh: dynamic latents of all items and of the rank's users):"
echo
echo "| data | static score ms/window | adapter score ms/window | serve ms/window | overhead (median of windows) | overhead (sums) |"
echo "|---|---|---|---|---|---|"
srow() {
  if [ -z "$2" ]; then echo "| $1 | FAILED | | | | |"; return; fi
  awk -v l="$1" -v s="$(echo "$2" | field score_static_s)" -v a="$(echo "$2" | field score_adapter_s)" -v v="$(echo "$2" | field serve_s)" \
      -v o="$(echo "$2" | field overhead_w)" -v q="$(echo "$2" | field overhead_sum)" \
    'BEGIN{printf "| %s | %.1f | %.1f | %.1f | %.1f%% | %.1f%% |\n", l, 1e3 * s, 1e3 * a, 1e3 * v, 100 * o, 100 * q}'
}
srow "synthetic default" "${line_synth:-}"
[ $have_beauty = 1 ] && srow "Amazon Beauty, monthly" "${line_beauty:-}"
echo
echo "stage runs took ${t_stage} s; load average at the end: $(load)"
echo
exit $status
