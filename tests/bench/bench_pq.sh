#!/usr/bin/env bash
# bench_pq.sh: full-catalogue scoring of product-quantised item latents (src/pq/pq.h) against exact
# float32 scoring with OpenBLAS, side by side in one process, one thread (build/bench/bench_pq,
# tests/bench/bench_pq.c), on synthetic clustered latents of d = 64 at 1M and 100k items. Two
# quantisers, both 16x smaller than float32:
#   ADC8  pq.m = 16, pq.k = 256: one-byte codes, float tables, M lookups per item from memory
#   FS4   pq.m = 32, pq.k = 16: 4-bit codes by fast scan (byte tables in registers, pshufb); and
#         pq.m = 8 x pq.stages = 4, pq.k = 16 (residual stages: the same 32 four-bit columns)
#   batch 1   one user: exact = sgemv (reads the whole float table: memory bound)
#   batch 64  eval's shape: exact = sgemm (compute bound, the table read once per 64 users)
# and exact again by the fixed-order kernel eval scores with (nn_sgemm_fixed, 16384 items a call:
# the same bits at any rank count, slower than OpenBLAS), the reference eval's exact path is
# each also with exact re-ranking of the user's top 100 (+rr; FS4 also the top 1000); FS4 again on every fast-scan path
# the CPU runs; recall@10 of the exact top 10 without and with re-ranking. Medians of REPS
# interleaved repetitions, ratios from the same run. The target: ADC full ranking >= 4x
# faster than exact fp32 scoring at 1M items. Each row carries the correctness verdict of its scores
# (ADC8 within gamma_(ds+m) of the decoded dot products; FS4 the same bits on every path and within
# pq.h's bound of the float ADC).
set -u
REPS=${REPS:-7}
USERS=${USERS:-100}
. tests/bench/bench_lib.sh
bench_setup pq
echo "### pq: fast-scan and byte-code ADC vs exact float32 scoring (1 thread, load $(load))"
echo
echo "| items | batch | FS4 codes | exact ms | ADC8 ms | ADC8 + rr ms | FS4 ms | FS4 + rr ms | FS4 + rr1000 ms | ADC8 speed-up | FS4 speed-up | FS4 + rr speed-up | FS4 + rr1000 speed-up | exact, eval's fixed kernel, ms | FS4 / FS4 + rr speed-up vs it | verdict |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
status=0; fs=0; fsrr=0; lines=()
for run in "1000000 1 1" "1000000 64 1" "1000000 1 4" "1000000 64 4" "100000 1 1"; do
  set -- $run
  line=$(OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 $H $1 64 $2 $REPS $USERS 0.5 $3) || status=1
  lines+=("$line")
  f() { echo "$line" | field "$1"; }
  codes="m 32"; [ $3 != 1 ] && codes="m $(f m4) x $3 stages"
  printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s / %s | %s |\n' $1 $2 "$codes" "$(f exact_ms)" "$(f adc8_ms)" "$(f adc8_rr_ms)" "$(f fs4_ms)" \
    "$(f fs4_rr_ms)" "$(f fs4_rr1000_ms)" "$(f speedup_adc8)" "$(f speedup_fs4)" "$(f speedup_fs4_rr)" "$(f speedup_fs4_rr1000)" "$(f exact_fixed_ms)" \
    "$(f speedup_fs4_fixed)" "$(f speedup_fs4_rr_fixed)" "$(f verdict)"
  if [ "$1 $2 $3" = "1000000 1 1" ]; then fs=$(f speedup_fs4); fsrr=$(f speedup_fs4_rr); first=$line; fi
  if [ "$1 $2 $3" = "1000000 1 4" ]; then rq=$line; fi
done
echo
echo "FS4 per fast-scan path (ms; the automatic one: $(echo "$first" | field isa)):"
echo
echo "| items | batch | scalar | ssse3 | avx2 | avx512bw |"
echo "|---|---|---|---|---|---|"
for line in "${lines[@]}"; do
  f() { echo "$line" | field "$1"; }
  printf '| %s | %s | %s | %s | %s | %s |\n' "$(f n) ($(f m4) x $(f stages4))" "$(f batch)" "$(f fs4_scalar_ms)" "$(f fs4_ssse3_ms)" "$(f fs4_avx2_ms)" "$(f fs4_avx512bw_ms)"
done
echo
f() { echo "$first" | field "$1"; }
echo "Recall@10 of the exact top 10 at 1M items ($(f recall_users) users; relative quantisation error ADC8 $(f rel_err8), FS4 $(f rel_err4)):"
echo
echo "| scorer | ADC only | re-rank top 100 | re-rank top 1000 |"
echo "|---|---|---|---|"
for s in adc8 fs4 adc4; do
  case $s in adc8) name="ADC8 (m 16, k 256)" ;; fs4) name="FS4 fast scan (m 32, k 16)" ;; adc4) name="float ADC over FS4's codes" ;; esac
  printf '| %s | %s | %s | %s |\n' "$name" "$(f recall_$s)" "$(f recall_${s}_rr100)" "$(f recall_${s}_rr1000)"
done
g() { echo "$rq" | field "$1"; }
printf '| %s | %s | %s | %s |\n' "FS4 fast scan, m 8 x 4 stages, k 16 (relative error $(g rel_err4))" "$(g recall_fs4)" "$(g recall_fs4_rr100)" "$(g recall_fs4_rr1000)"
echo
verdict=$(awk -v s="$fs" 'BEGIN{print (s >= 4) ? "PASSED" : "FAILED"}')
echo "FS4 full ranking vs exact fp32 at 1M items, one user: ${fs}x, ${fsrr}x with re-ranking of the top 100 (target 4x): $verdict"
rv=$(awk -v s="$(f recall_fs4_rr100)" 'BEGIN{print (s >= 0.95) ? "PASSED" : "FAILED"}')
echo "FS4 recall@10 with re-ranking of the top 100 (target 0.95), here on isotropic synthetic clusters of 1M items: $(f recall_fs4_rr100): $rv"
[ $status = 0 ] && [ $verdict = PASSED ] || exit 1
