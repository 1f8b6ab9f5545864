#!/usr/bin/env bash
# bench_lm.sh: the frozen LM (src/lm) against a PyTorch GPT-2 on the same 124M-parameter
# GPT-2-small-shaped model (random weights, generated once into $DM_TMP), the same threads and the
# same inputs, measured side by side in rounds that alternate C and PyTorch (the machine may be
# shared, so neither side gets the quiet minutes). Both sides run under both OpenMP wait policies
# (default and passive) and keep their better one. Reports medians over rounds of per-run medians:
#   forward tokens/s (logits of every position) for a batch of prompts (B=8, T=128) and a long
#   context (B=1, T=1024), plus (B=1, T=256) for information;
#   candidate scoring: a 128-token prefix computed once, 64 candidates of 8 tokens scored on it;
#   a prompt-training step for information: 8 sequences of 66 soft vectors + 62 text tokens, loss on
#   the text, gradient to the soft vectors through the frozen weights (PyTorch: inputs_embeds with
#   requires_grad, full logits, cross_entropy(ignore_index));
#   achieved GFLOP/s against the sgemm peak measured in the same run, and the ratio C would reach
#   at 100% of that peak (a GEMM-bound workload cannot beat it); peak RSS of the C scorer beyond the
#   weights.
# Targets: >= 1.5x PyTorch on the prompt-batch and long-context forwards and on scoring; scoring
# within 1 GiB beyond the weights; C and PyTorch agree on the numbers (checksums).
set -u
BUILD=${DM_BUILD:-build}
TMP=${DM_TMP:-/tmp}
TH=${BENCH_THREADS:-$(nproc)}
ROUNDS=${BENCH_ROUNDS:-3}
PY=/usr/bin/python3
BIN=$BUILD/bench/bench_lm
PYB=tests/bench/bench_lm.py
MODEL=$TMP/lm_bench_124m
if [ ! -x "$BIN" ]; then echo "## lm: SKIPPED ($BIN not built; run make benches)"; exit 0; fi
if [ ! -f "$MODEL/model.safetensors" ]; then "$BIN" gen "$MODEL" >/dev/null || { echo "## lm: FAILED (cannot generate the model)"; exit 1; }; fi

get() { echo "$1" | tr ' ' '\n' | sed -n "s/^$2=//p"; }
med() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {m = NR % 2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2; if (m == int(m)) printf "%d\n", m; else printf "%.1f\n", m}'; }
best() { awk -v a="$1" -v b="$2" 'BEGIN {print (a > b ? a : b)}'; }

declare -A C P
peaks=()
fail=0
configs=("fwd 8 128" "fwd 1 1024" "fwd 1 256" "score 128 64 8" "prompt 8 128 66")
for r in $(seq 1 "$ROUNDS"); do
  peaks+=("$(get "$("$BIN" sgemm "$TH" 2048 5)" sgemm_gflops)")
  for cfg in "${configs[@]}"; do
    set -- $cfg
    if [ "$1" = fwd ]; then
      c=$("$BIN" forward "$MODEL" "$TH" "$2" "$3" 3) || fail=1
      c2=$(OMP_WAIT_POLICY=passive "$BIN" forward "$MODEL" "$TH" "$2" "$3" 3) || fail=1
      p1=$($PY $PYB forward "$MODEL" "$TH" "$2" "$3" 3) || fail=1
      p2=$(OMP_WAIT_POLICY=passive $PY $PYB forward "$MODEL" "$TH" "$2" "$3" 3) || fail=1
      key="fwd_$2x$3"; unit=tokens_per_s
      C[$key.ck]=$(get "$c" checksum); P[$key.ck]=$(get "$p1" checksum)
    elif [ "$1" = prompt ]; then
      c=$("$BIN" prompt "$MODEL" "$TH" "$2" "$3" "$4" 2) || fail=1
      c2=$(OMP_WAIT_POLICY=passive "$BIN" prompt "$MODEL" "$TH" "$2" "$3" "$4" 2) || fail=1
      p1=$($PY $PYB prompt "$MODEL" "$TH" "$2" "$3" "$4" 2) || fail=1
      p2=$(OMP_WAIT_POLICY=passive $PY $PYB prompt "$MODEL" "$TH" "$2" "$3" "$4" 2) || fail=1
      key=prompt; unit=tokens_per_s
      C[$key.ck]=$(get "$c" checksum); P[$key.ck]=$(get "$p1" checksum)
    else
      c=$("$BIN" score "$MODEL" "$TH" "$2" "$3" "$4" 3) || fail=1
      c2=$(OMP_WAIT_POLICY=passive "$BIN" score "$MODEL" "$TH" "$2" "$3" "$4" 3) || fail=1
      p1=$($PY $PYB score "$MODEL" "$TH" "$2" "$3" "$4" 3) || fail=1
      p2=$(OMP_WAIT_POLICY=passive $PY $PYB score "$MODEL" "$TH" "$2" "$3" "$4" 3) || fail=1
      key=score; unit=cands_per_s
      C[$key.ck]=$(get "$c" ll_sum); P[$key.ck]=$(get "$p1" ll_sum)
      C[rss]="${C[rss]:-} $(get "$c" peak_rss)"; C[weights]=$(get "$c" weights)
      P[rss]="${P[rss]:-} $(get "$p1" peak_rss)"
    fi
    if awk -v a="$(get "$c2" $unit)" -v b="$(get "$c" $unit)" 'BEGIN {exit !(a > b)}'; then c=$c2; fi
    C[$key]="${C[$key]:-} $(get "$c" $unit)"
    C[$key.gf]="${C[$key.gf]:-} $(get "$c" gflops)"
    P[$key]="${P[$key]:-} $(best "$(get "$p1" $unit)" "$(get "$p2" $unit)")"
  done
done

peak=$(med "${peaks[@]}")
load=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null)
echo "## lm: frozen GPT-2 runtime vs PyTorch $($PY -c 'import torch; print(torch.__version__)' 2>/dev/null)"
echo
echo "Model: 124,439,808 parameters (GPT-2 small shape, random weights), float32; $TH threads; $ROUNDS rounds"
echo "alternating C and PyTorch, medians. sgemm peak in this run: $peak GFLOP/s (2048^3, median of ${#peaks[@]});"
echo "load average at the end: $load (other processes on the machine disturb both sides)."
echo
echo "| workload | C | PyTorch | ratio | C GFLOP/s | % of sgemm peak | ratio at 100% of peak | C = PyTorch | target |"
echo "|---|---|---|---|---|---|---|---|---|"
verdict=PASSED
[ $fail -eq 0 ] || verdict=FAILED
row() { # key label unit target(1/0)
  local k=$1 c p ratio gf pct agree tgt
  c=$(med ${C[$k]}); p=$(med ${P[$k]}); gf=$(med ${C[$k.gf]})
  ratio=$(awk -v a="$c" -v b="$p" 'BEGIN {printf "%.2f", (b > 0 ? a / b : 0)}')
  pct=$(awk -v a="$gf" -v b="$peak" 'BEGIN {printf "%.0f%%", (b > 0 ? 100 * a / b : 0)}')
  ceil=$(awk -v r="$ratio" -v a="$gf" -v b="$peak" 'BEGIN {printf "%.2fx", (a > 0 ? r * b / a : 0)}')
  agree=$(awk -v a="${C[$k.ck]}" -v b="${P[$k.ck]}" 'BEGIN {d = a - b; if (d < 0) d = -d; s = (a < 0 ? -a : a); print (d <= 1e-3 * (s > 1 ? s : 1) ? "yes" : "NO")}')
  [ "$agree" = yes ] || verdict=FAILED
  if [ "$4" = 1 ]; then
    tgt=">= 1.5x: $(awk -v r="$ratio" 'BEGIN {print (r >= 1.5 ? "ok" : "MISSED")}')"
    awk -v r="$ratio" 'BEGIN {exit !(r < 1.5)}' && verdict=FAILED
  else tgt="(information)"; fi
  echo "| $2 | $c $3 | $p $3 | ${ratio}x | $gf | $pct | $ceil | $agree | $tgt |"
}
row fwd_8x128 "forward B=8 T=128 (prompt batch)" "tok/s" 1
row fwd_1x1024 "forward B=1 T=1024 (long context)" "tok/s" 1
row fwd_1x256 "forward B=1 T=256" "tok/s" 0
row score "score 64 x 8-token candidates after a 128-token prefix" "cand/s" 1
row prompt "prompt step: fwd + bwd to 66 soft vectors, B=8 T=128" "tok/s" 0
rss=$(med ${C[rss]}); prss=$(med ${P[rss]}); w=${C[weights]}
mib() { awk -v a="$1" 'BEGIN {printf "%.0f", a / 1048576}'; }
extra=$(awk -v a="$rss" -v w="$w" 'BEGIN {printf "%.0f", (a - w) / 1048576}')
pextra=$(awk -v a="$prss" -v w="$w" 'BEGIN {printf "%.0f", (a - w) / 1048576}')
mem=ok; [ "$extra" -le 1024 ] || { mem=MISSED; verdict=FAILED; }
echo
echo "Memory (load + score, peak RSS): C $(mib "$rss") MiB = weights $(mib "$w") MiB + $extra MiB (target <= 1024 MiB beyond the weights: $mem);"
echo "PyTorch $(mib "$prss") MiB (+$pextra MiB)."
echo
echo "lm benchmark: $verdict"
echo
[ "$verdict" = PASSED ]
