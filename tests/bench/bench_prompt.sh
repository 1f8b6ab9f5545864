#!/usr/bin/env bash
# bench_prompt.sh: the LLM recommender (`dynmm prompt`, stages/stage_prompt.c, src/prompt/llmrec.h) on the
# synthetic default with a small in-suite LM (dynmm lm: 2 layers, width 128, 4 heads, 100 steps; only
# the shapes matter here), at 1 and 2 ranks:
#   - users/s trained (listwise step through the frozen LM: the stage's "users/s" of its epoch) of llm
#     and llm_explain, and users/s scored by llm (the uni19 sample: users / its scoring seconds);
#   - scoring latency per batch of prompt.latency_batch users x 20 candidates at L = 10, 25, 50
#     soft prompt tokens (/prompt/latency in prompt.h5: median and p95 of 8 batches), llm,
#     llm_explain (4 user evidence tokens in the prompt, each candidate's evidence on the item-head
#     path; explain.tokens = 4 encoder slots) and llm_explain in the earlier per-candidate layout
#     (E = 16 evidence tokens before every candidate, explain.latency_per_candidate = 16)
#     interleaved: the overhead of evidence, the two layouts side by side;
#   - the same at L = 50 on an LM of Amazon Beauty's size (4 layers, width 256: configs/
#     amazon-beauty.cfg's, 50 pretraining steps; only the shapes matter), 1 rank, untrained
#     projectors (the cost does not depend on the weights);
#   - where a user's scoring goes and what prefix caching buys (build/bench/bench_prompt,
#     tests/bench/bench_prompt.c, on the same LM): the prompt appended to the KV cache once
#     (prefix) and the 20 candidates scored on it, against one forward per candidate over prompt +
#     candidate; prompt length = L soft tokens + 76 text/history positions (5 history items of 12
#     title tokens, their soft tokens and separators, prefix and query), candidates of 12 tokens.
# Medians of REPS runs (default 3). Target: llm_explain's overhead over llm at L = 50 at most +8.6%
# (the paper's), aiming at < 2%, reported on both LMs (PASSED/FAILED per row; the verdict is the
# Beauty-size LM's, the scale the target is stated at); the cached and recomputed scores must agree
# (max |difference| <= 1e-3, else FAILED).
set -u
REPS=${REPS:-3}
. tests/bench/bench_lib.sh
bench_setup prompt
NCPU=$(nproc)
status=0

CFG=(--set run.dir="$W/run" --set 'cf.models=[sasrec]' --set sasrec.epochs=5 --set sasrec.eval_every=5 --set align.epochs=2
     --set lm.layers=2 --set lm.width=128 --set lm.heads=4 --set lm.vocab=2048 --set lm.seq_len=64 --set lm.batch=16
     --set lm.steps=100 --set lm.log_every=50
     --set prompt.train_users=256 --set prompt.eval_users=200 --set prompt.epochs=1 --set 'prompt.protocols=[uni19]'
     --set 'prompt.latency_tokens=[10,25,50]' --set 'eval.splits=[test]' --set explain.latency_per_candidate=16)
echo "### prompt: the LLM recommender (soft prompts through the frozen LM), median of $REPS"
echo
if ! $DM_MPIRUN -n 2 "$B" run "${CFG[@]}" --set 'run.stages=[synth,train-cf,align,lm]' < /dev/null > "$W/prep.log" 2>&1; then
  echo "FAILED to prepare (see $W/prep.log)"; echo; exit 1
fi
lmline=$(sed -n 's/.*lm: GPT-2 \(.*\) parameters.*/\1 parameters/p' "$W/prep.log" | head -1)
vocab=$(sed -n 's/.*BPE vocabulary \([0-9]*\).*/\1/p' "$W/prep.log" | head -1)
echo "host: $NCPU cores, load average at start $(load); LM: GPT-2 $lmline, vocabulary $vocab (BPE on the"
echo "synthetic catalogue); synthetic default (2000 users x 1000 items); prompt.user_tokens 50, 5 history items,"
echo "titles <= 12 tokens; OMP_WAIT_POLICY=$OMP_WAIT_POLICY; 1 rank x $NCPU threads vs 2 ranks x 1 thread."
echo

declare -A TR TE SC LM LP EM EP CM CP
for np in 1 2; do
  : > "$W/tr"; : > "$W/te"; : > "$W/sc"
  for L in 10 25 50; do : > "$W/lm$L"; : > "$W/lp$L"; : > "$W/em$L"; : > "$W/ep$L"; : > "$W/cm$L"; : > "$W/cp$L"; done
  for r in $(seq "$REPS"); do
    out=$($DM_MPIRUN -n $np "$B" prompt "${CFG[@]}" < /dev/null 2>&1) || { echo "$out" | tail -3 > "$W/fail.log"; status=1; continue; }
    echo "$out" | sed -n 's/^ *llm epoch 1 .* \([0-9.]*\) users\/s.*/\1/p' >> "$W/tr"
    echo "$out" | sed -n 's/^ *llm_explain epoch 1 .* \([0-9.]*\) users\/s.*/\1/p' >> "$W/te"
    echo "$out" | awk '$1 == "test" && $2 == "uni19" && $3 == "llm" {u = $5} /\(llm scoring/ {s = $3; sub(/s$/, "", s); print u / s}' >> "$W/sc"
    $PY tests/reference/bench_prompt_h5.py "$W/run/prompt.h5" | while read -r L med p95 emed ep95 cmed cp95; do
      [ "$L" = batch_users ] && continue
      echo "$med" >> "$W/lm$L"; echo "$p95" >> "$W/lp$L"; echo "$emed" >> "$W/em$L"; echo "$ep95" >> "$W/ep$L"
      echo "$cmed" >> "$W/cm$L"; echo "$cp95" >> "$W/cp$L"
    done
  done
  TR[$np]=$(median < "$W/tr"); TE[$np]=$(median < "$W/te"); SC[$np]=$(median < "$W/sc")
  for L in 10 25 50; do
    LM[$np.$L]=$(median < "$W/lm$L"); LP[$np.$L]=$(median < "$W/lp$L"); EM[$np.$L]=$(median < "$W/em$L"); EP[$np.$L]=$(median < "$W/ep$L")
    CM[$np.$L]=$(median < "$W/cm$L"); CP[$np.$L]=$(median < "$W/cp$L")
  done
done
# the Beauty-size LM: 4 layers, width 256 (the lm.* defaults), at L = 50, 1 rank, untrained projectors
W4=$W/run4; mkdir -p "$W4"; cp "$W/run/dataset.h5" "$W/run/cf.h5" "$W/run/align.h5" "$W4/"
CFG4=("${CFG[@]}" --set run.dir="$W4" --set lm.layers=4 --set lm.width=256 --set lm.heads=4 --set lm.steps=50 --set lm.batch=8
      --set prompt.epochs=0 --set prompt.eval_users=16 --set 'prompt.latency_tokens=[50]')
: > "$W/bm"; : > "$W/bp"; : > "$W/be"; : > "$W/bq"; : > "$W/bc"; : > "$W/bd"
if "$B" lm "${CFG4[@]}" < /dev/null > "$W/lm4.log" 2>&1; then
  for r in $(seq "$REPS"); do
    "$B" prompt "${CFG4[@]}" < /dev/null > "$W/p4.log" 2>&1 || { tail -3 "$W/p4.log" > "$W/fail.log"; status=1; continue; }
    $PY tests/reference/bench_prompt_h5.py "$W4/prompt.h5" | while read -r L med p95 emed ep95 cmed cp95; do
      [ "$L" = batch_users ] && continue
      echo "$med" >> "$W/bm"; echo "$p95" >> "$W/bp"; echo "$emed" >> "$W/be"; echo "$ep95" >> "$W/bq"; echo "$cmed" >> "$W/bc"; echo "$cp95" >> "$W/bd"
    done
  done
else
  tail -3 "$W/lm4.log" > "$W/fail.log"; status=1
fi
# llm_head on the Beauty-size LM: users/s trained (one forward and one backward pass of the prompt and
# the full softmax over the catalogue per user), 1 rank x NCPU threads and 2 ranks x 1 thread
declare -A HT
HCFG=("${CFG4[@]}" --set 'prompt.models=[llm_head]' --set prompt.head_epochs=1 --set prompt.head_train_users=256
      --set prompt.valid_users=16 --set prompt.patience=1)
if [ -f "$W4/lm.h5" ]; then
  for np in 1 2; do
    : > "$W/ht$np"
    for r in $(seq "$REPS"); do
      out=$($DM_MPIRUN -n $np "$B" prompt "${HCFG[@]}" < /dev/null 2>&1) || { echo "$out" | tail -3 > "$W/fail.log"; status=1; continue; }
      echo "$out" | sed -n 's/^ *llm_head epoch 1 .* \([0-9.]*\) users\/s.*/\1/p' >> "$W/ht$np"
    done
    HT[$np]=$(median < "$W/ht$np")
  done
fi
BM=$(median < "$W/bm"); BP=$(median < "$W/bp"); BE=$(median < "$W/be"); BQ=$(median < "$W/bq"); BC=$(median < "$W/bc"); BD=$(median < "$W/bd")
[ $status = 0 ] || { echo "FAILED: a prompt run failed: $(cat "$W/fail.log")"; echo; }

echo "#### throughput and latency of the stage"
echo
echo "| ranks x threads | llm users/s trained | llm_explain users/s trained | llm users/s scored (uni19) | llm latency L=10 median / p95 | L=25 | L=50 | L=50 vs L=10 |"
echo "|---|---|---|---|---|---|---|---|"
for np in 1 2; do
  awk -v np=$np -v th=$((NCPU / np)) -v tr="${TR[$np]}" -v te="${TE[$np]}" -v sc="${SC[$np]}" -v a="${LM[$np.10]}" -v ap="${LP[$np.10]}" -v b="${LM[$np.25]}" \
      -v bp="${LP[$np.25]}" -v c="${LM[$np.50]}" -v cp="${LP[$np.50]}" \
    'BEGIN{printf "| %d x %d | %.1f | %.1f | %.1f | %.3f / %.3f s | %.3f / %.3f s | %.3f / %.3f s | %+.0f%% |\n", np, th, tr, te, sc, a, ap, b, bp, c, cp, 100 * (c / a - 1)}'
done
echo
echo "Latency: seconds per batch of 16 users x 20 candidates, each rank scoring its own copy of the batches (the"
echo "stage takes the max over ranks); users/s trained = 1 listwise step (1 + 4 candidates) per user, llm_explain"
echo "adding its evidence tokens, the masked-evidence row of the faithfulness loss and the rationale row."
echo
echo "#### evidence: latency overhead of llm_explain over llm, the two layouts side by side"
echo
echo "llm_explain: 4 user evidence tokens in the cached prompt, each candidate's evidence (4 encoder slots) on the"
echo "item-head path (one dot product per candidate); per-candidate layout (explain.latency_per_candidate = 16): E = 16"
echo "evidence tokens before every candidate."
echo
echo "| LM | ranks x threads | L | llm median / p95 | llm_explain median / p95 | overhead | per-candidate layout median / p95 | overhead | target (L = 50: <= +8.6%) |"
echo "|---|---|---|---|---|---|---|---|---|"
verdict() { awk -v L=$1 -v a="$2" -v e="$3" 'BEGIN{if (L != 50) print "-"; else if (a + 0 > 0 && e / a - 1 <= 0.086) print "PASSED"; else print "FAILED"}'; }
for np in 1 2; do
  for L in 10 25 50; do
    v=$(verdict $L "${LM[$np.$L]}" "${EM[$np.$L]}")
    awk -v np=$np -v th=$((NCPU / np)) -v L=$L -v a="${LM[$np.$L]}" -v ap="${LP[$np.$L]}" -v e="${EM[$np.$L]}" -v ep="${EP[$np.$L]}" \
        -v c="${CM[$np.$L]}" -v cp="${CP[$np.$L]}" -v v="$v" \
      'BEGIN{printf "| 2 x 128 | %d x %d | %d | %.3f / %.3f s | %.3f / %.3f s | %+.1f%% | %.3f / %.3f s | %+.1f%% | %s |\n", np, th, L, a, ap, e, ep, 100 * (e / a - 1), c, cp, 100 * (c / a - 1), v}'
  done
done
vb=$(verdict 50 "$BM" "$BE")
[ "$vb" = PASSED ] || status=1
awk -v th=$NCPU -v a="$BM" -v ap="$BP" -v e="$BE" -v ep="$BQ" -v c="$BC" -v cp="$BD" -v v="$vb" \
  'BEGIN{printf "| 4 x 256 | 1 x %d | 50 | %.3f / %.3f s | %.3f / %.3f s | %+.1f%% | %.3f / %.3f s | %+.1f%% | %s |\n", th, a, ap, e, ep, 100 * (e / a - 1), c, cp, 100 * (c / a - 1), v}'
echo
echo "The paper reports +8.6% at L = 50, E = 16. In the per-candidate layout the evidence of each (user, item) pair"
echo "precedes every candidate, so each candidate's scored positions grow from 13 to 13 + E. In the default layout"
echo "the LM sees the user evidence once in the cached prompt and a candidate's own evidence costs one dot product;"
echo "what is left is the evidence itself (neighbours, items, attributes of 20 candidates and of the user) and its"
echo "encoders, a cost per user that does not grow with the LM, so its share falls as the LM grows."
echo

echo "#### llm_head training on the Beauty-size LM (4 layers, width 256, L = 50), users/s, median of $REPS"
echo
echo "One training user = the prompt's forward and backward pass through the frozen LM and the full softmax over the"
echo "catalogue (1,000 items here; the head's share is small beside the LM's: about 2 x 12,101 x 114 multiply-adds"
echo "each way at Amazon Beauty's 12,101 items). Target: an epoch over all 22,363 Beauty training users in under"
echo "30 minutes at 2 ranks on 2 cores."
echo
echo "| ranks x threads | llm_head users/s trained | one epoch over 22,363 users | target (2 ranks: <= 30 min) |"
echo "|---|---|---|---|"
for np in 1 2; do
  awk -v np=$np -v th=$((NCPU / np)) -v u="${HT[$np]:-nan}" \
    'BEGIN{m = (u + 0 > 0) ? 22363 / u / 60 : -1; v = np == 2 ? (m > 0 && m <= 30 ? "PASSED" : "FAILED") : "-";
           if (m < 0) printf "| %d x %d | FAILED | - | %s |\n", np, th, v; else printf "| %d x %d | %.1f | %.1f min | %s |\n", np, th, u, m, v}'
done
[ "$(awk -v u="${HT[2]:-nan}" 'BEGIN{print (u + 0 > 0 && 22363 / u / 60 <= 30) ? 1 : 0}')" = 1 ] || status=1
echo

echo "#### one user's scoring: prefix vs candidates, and prefix caching (bench_prompt, $NCPU threads, 20 candidates, median of $REPS x 5 rounds)"
echo
echo "| L | prompt positions | prefix ms | candidates ms | prefix share | cached total ms | recompute per candidate ms | caching speedup | batched recompute ms (info) | max abs diff |"
echo "|---|---|---|---|---|---|---|---|---|---|"
LMDIR=$W/run/lm
for L in 10 25 50; do
  P=$((L + 76))
  for k in prefix_ms cands_ms prefix_share cached_ms recompute_ms speedup batched_ms max_diff; do : > "$W/h_$k"; done
  for r in $(seq "$REPS"); do
    out=$("$H" "$LMDIR" "$NCPU" $P 20 12 $L 5) || { echo "| $L | FAILED: bench_prompt | | | | | | | | |"; status=1; continue 2; }
    for k in prefix_ms cands_ms prefix_share cached_ms recompute_ms speedup batched_ms max_diff; do echo "$out" | field $k >> "$W/h_$k"; done
  done
  declare -A v=()
  for k in prefix_ms cands_ms prefix_share cached_ms recompute_ms speedup batched_ms; do v[$k]=$(median < "$W/h_$k"); done
  v[max_diff]=$(sort -g "$W/h_max_diff" | tail -1)
  ok=$(awk -v d="${v[max_diff]}" 'BEGIN{print (d <= 1e-3) ? "PASSED" : "FAILED"}')
  [ "$ok" = PASSED ] || status=1
  awk -v L=$L -v P=$P -v a="${v[prefix_ms]}" -v b="${v[cands_ms]}" -v s="${v[prefix_share]}" -v c="${v[cached_ms]}" -v r="${v[recompute_ms]}" \
      -v x="${v[speedup]}" -v bt="${v[batched_ms]}" -v d="${v[max_diff]}" -v ok=$ok \
    'BEGIN{printf "| %d | %d | %.2f | %.2f | %.0f%% | %.2f | %.2f | %.1fx | %.2f | %.1e (%s) |\n", L, P, a, b, 100 * s, c, r, x, bt, d, ok}'
done
echo
echo "load average at the end: $(load)"
echo
exit $status
