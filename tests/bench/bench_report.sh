#!/usr/bin/env bash
# bench_report.sh: the two ends of a study, `dynmm eval` (stages/stage_eval.c) and `dynmm report`
# (analysis/cmd_report.c, analysis/report_*.c), on the synthetic default (2000 users x 1000 items; SASRec 5
# epochs, the aligner 2 epochs: only the shapes matter here), prepared once at 2 ranks:
#   - evaluation throughput, users/s, of every model the eval stage scores: pop, ease, sasrec and
#     align (eval.models of configs/quickstart.cfg; the embedded default lists pop, ease, sasrec
#     only) on the test split under every protocol of eval.protocols (full, uni99, uni19), and
#     align's stress variants (stress.enabled: align@drop_*, align@noise_*, align@shuffle_*, each
#     family summed over its variants and protocols; the align@without_* aliases repeat the
#     drop_*_100 rows and are not counted), at 1 rank x 2 threads and 2 ranks x 1 thread (the same
#     cores, run.threads). Seconds per entry are the 'seconds' attributes of
#     /test/<protocol>/<model> in results.h5 (scoring and metrics; a stress variant's first entry
#     also counts its recomputed latents; the HDF5 writes are not in them), read by
#     tests/reference/bench_report_h5.py seconds; the stage's own wall time (loading, stress
#     latents, writes: the root attribute 'wall_seconds') is reported beside them.
#     Speedup = seconds at 1 rank / seconds at 2 ranks.
#   - report generation for a sweep of NRUNS (default 100) runs: NRUNS results files planted from
#     one results.h5 of the same models without stress (bench_report_h5.py plant: a 5 x 5 grid over
#     sasrec.hidden and align.dim times seeds, per-user rows resampled), then `dynmm report SWEEPDIR`
#     as README shows it (one process, run.threads = all cores; report.out set, since a directory
#     without manifest.tsv would otherwise write ./report): seconds and runs/s, with the default
#     statistics (stats.bootstrap = 10000 BCa resamples per comparison) and with stats.bootstrap = 0
#     (no intervals; the tests and marks are the same). Every table the report lists must exist as
#     .md, .tex, _tabular.tex, .csv and _tests.csv, every figure as .gp, .dat and (with gnuplot) a
#     real .png and .pdf, with index.md and report.tex: else FAILED.
# Medians of REPS runs (default 3). No target: the numbers are reported; exit status 1 only when a
# run fails or an output is missing.
set -u
REPS=${REPS:-3}
NRUNS=${NRUNS:-100}
. tests/bench/bench_lib.sh
H=tests/reference/bench_report_h5.py
W=$DM_TMP/bench_report; mkdir -p "$W"
now() { date +%s.%N; }
NCPU=$(nproc)
status=0

MODELS="pop ease sasrec align"
PROTOS="full uni99 uni19"
CFG=(--set run.dir="$W/run" --set sasrec.epochs=5 --set sasrec.eval_every=5 --set align.epochs=2
     --set "eval.models=[${MODELS// /,}]" --set "eval.protocols=[${PROTOS// /,}]" --set 'eval.splits=[test]')
echo "### report: evaluation throughput and report generation, median of $REPS"
echo
if ! $DM_MPIRUN -n 2 "$B" run "${CFG[@]}" --set 'run.stages=[synth,train-cf,align]' < /dev/null > "$W/prep.log" 2>&1; then
  echo "FAILED to prepare (see $W/prep.log)"; echo; exit 1
fi
echo "host: $NCPU cores, load average at start $(load); synthetic default (2000 users x 1000 items), test split;"
echo "OMP_WAIT_POLICY=$OMP_WAIT_POLICY."
echo

# ---- 1. evaluation throughput ------------------------------------------------------------------
# rows of one results.h5: "order<TAB>model<TAB>protocol<TAB>entries<TAB>users<TAB>seconds"
rows() {
  awk -v models="$MODELS" -v protos="$PROTOS" '
    BEGIN { nm = split(models, m, " "); for (i = 1; i <= nm; i++) mo[m[i]] = i
            np = split(protos, p, " "); for (i = 1; i <= np; i++) po[p[i]] = i }
    NF == 4 {
      model = $2; proto = $1
      if (model ~ /@cold$/ || model ~ /@without_/) next      # a subset of, or an alias of, rows counted elsewhere
      if (index(model, "@") == 0) {
        key = model "\t" proto; ord[key] = sprintf("1%03d%03d", (model in mo) ? mo[model] : 999, (proto in po) ? po[proto] : 999)
      } else {
        fam = model; at = index(fam, "@"); suf = substr(fam, at + 1); sub(/[_0-9].*$/, "", suf)
        fam = substr(fam, 1, at) suf "_*"; key = fam "\tall"; ord[key] = "2" fam
      }
      E[key]++; U[key] += $3; S[key] += $4; te++; tu += $3; ts += $4
    }
    END { for (k in E) printf "%s\t%s\t%d\t%d\t%.6f\n", ord[k], k, E[k], U[k], S[k]
          printf "3\tall scored entries\tall\t%d\t%d\t%.6f\n", te, tu, ts }' | sort
}
declare -A WALL
rm -f "$W"/rows[12].*
for np in 1 2; do
  : > "$W/wall$np"
  for r in $(seq "$REPS"); do
    if ! $DM_MPIRUN -n $np "$B" eval "${CFG[@]}" --set stress.enabled=true --set run.threads=$((2 / np)) < /dev/null > "$W/eval$np.log" 2>&1; then
      echo "FAILED: dynmm eval at $np ranks: $(tail -3 "$W/eval$np.log")"; echo; status=1; continue
    fi
    $PY -c 'import sys, h5py; print(h5py.File(sys.argv[1], "r").attrs["wall_seconds"])' "$W/run/results.h5" >> "$W/wall$np"
    $PY $H seconds "$W/run/results.h5" test | rows > "$W/rows$np.$r" || { echo "FAILED: bench_report_h5.py seconds"; echo; status=1; }
  done
  WALL[$np]=$(median < "$W/wall$np")
done
[ -s "$W/rows1.1" ] && [ -s "$W/rows2.1" ] || { echo "FAILED: no evaluation results"; echo; exit 1; }
nv=$(sed -n 's/.*stress: \([0-9]*\) variants of align.*/\1/p' "$W/eval1.log" | head -1)

echo "#### evaluation throughput of \`dynmm eval\`, users/s (1 rank x 2 threads vs 2 ranks x 1 thread)"
echo
echo "| model | protocol | entries | users scored | 1 x 2 seconds | 1 x 2 users/s | 2 x 1 seconds | 2 x 1 users/s | speedup 2 vs 1 ranks |"
echo "|---|---|---|---|---|---|---|---|---|"
row_line() { # label protocol entries users s1 s2
  awk -v l="$1" -v p="$2" -v e="$3" -v u="$4" -v a="$5" -v b="$6" \
    'function rate(s) { return (s > 0) ? sprintf("%.0f", u / s) : "n/a" }
     BEGIN { printf "| %s | %s | %s | %d | %.4f | %s | %.4f | %s | %s |\n", l, p, e, u, a, rate(a), b, rate(b), (a > 0 && b > 0) ? sprintf("%.2fx", a / b) : "n/a" }'
}
cut -f1-3 "$W/rows1.1" | while IFS=$'\t' read -r ord model proto; do
  e=$(awk -F'\t' -v o="$ord" '$1 == o {print $4}' "$W/rows1.1"); u=$(awk -F'\t' -v o="$ord" '$1 == o {print $5}' "$W/rows1.1")
  s1=$(cat "$W"/rows1.* | awk -F'\t' -v o="$ord" '$1 == o {print $6}' | median)
  s2=$(cat "$W"/rows2.* | awk -F'\t' -v o="$ord" '$1 == o {print $6}' | median)
  [ "$proto" = all ] && proto="$PROTOS" && proto=${proto// /, }
  label=$model
  [[ "$model" == *@* ]] && label="$model ($((e / $(echo $PROTOS | wc -w))) variants)"
  [ "$model" = "all scored entries" ] && label="**all scored entries**"
  row_line "$label" "$proto" "$e" "$u" "$s1" "$s2"
  [ "$model" = "all scored entries" ] && row_line "**eval stage, wall** (load, stress latents, HDF5 writes)" "$proto" "" "$u" "${WALL[1]}" "${WALL[2]}"
done
echo
echo "users scored = users x entries; seconds = sum of the entries' 'seconds' (median over runs)."
echo "${nv:-?} stress variants of align, each scored under every protocol."
echo

# ---- 2. report generation for a sweep ----------------------------------------------------------
if ! $DM_MPIRUN -n 2 "$B" eval "${CFG[@]}" --set stress.enabled=false --set run.threads=1 < /dev/null > "$W/eval_src.log" 2>&1; then
  echo "FAILED: dynmm eval of the sweep's source results (see $W/eval_src.log)"; echo; exit 1
fi
cp "$W/run/results.h5" "$W/src.h5"
rm -rf "$W/sweep"
if ! $PY $H plant "$B" "$W/src.h5" "$W/sweep" "$NRUNS" > "$W/plant.log" 2>&1; then
  echo "FAILED: bench_report_h5.py plant: $(tail -3 "$W/plant.log")"; echo; exit 1
fi
planted=$(cat "$W/plant.log")
have_gnuplot=0; command -v gnuplot > /dev/null && have_gnuplot=1

# outputs listed in LOG present and real in DIR; prints "N tables, M figures" or "missing ..."
check_outputs() {
  local log=$1 dir=$2 miss="" t f e tabs figs
  tabs=$(awk '$1 == "table" {print $2}' "$log"); figs=$(awk '$1 == "figure" {print $2}' "$log")
  [ -n "$tabs" ] || miss+=" (no table)"
  [ -n "$figs" ] || miss+=" (no figure)"
  for t in $tabs; do for e in .md .tex _tabular.tex .csv _tests.csv; do [ -s "$dir/$t$e" ] || miss+=" $t$e"; done; done
  for f in $figs; do
    for e in .gp .dat; do [ -s "$dir/$f$e" ] || miss+=" $f$e"; done
    if [ $have_gnuplot = 1 ]; then
      [ "$(head -c 4 "$dir/$f.png" 2> /dev/null | od -An -c | tr -d ' ')" = "211PNG" ] || miss+=" $f.png"
      [ "$(head -c 4 "$dir/$f.pdf" 2> /dev/null)" = "%PDF" ] || miss+=" $f.pdf"
    fi
  done
  for f in index.md report.tex; do [ -s "$dir/$f" ] || miss+=" $f"; done
  if [ -n "$miss" ]; then echo "FAILED, missing:$miss"; return 1; fi
  echo "$(echo "$tabs" | wc -w) tables (.md .tex .csv), $(echo "$figs" | wc -w) figures ($([ $have_gnuplot = 1 ] && echo ".png .pdf" || echo "scripts only: no gnuplot"))"
}

echo "#### report generation, \`dynmm report\` over a sweep of $NRUNS runs (1 process, $NCPU threads)"
echo
echo "$planted; from one results.h5 of $MODELS, test split, $PROTOS ($(du -sh "$W/sweep" | cut -f1) on disk)."
echo
echo "| statistics | seconds | runs/s | seconds per run | outputs |"
echo "|---|---|---|---|---|"
for mode in default noboot; do
  extra=(); label="defaults (stats.bootstrap 10000, BCa)"
  [ $mode = noboot ] && extra=(--set stats.bootstrap=0) && label="stats.bootstrap = 0"
  : > "$W/t_$mode"; ok=1
  for r in $(seq "$REPS"); do
    rm -rf "$W/report_$mode"
    t0=$(now)
    if ! "$B" report "$W/sweep" --set report.out="$W/report_$mode" "${extra[@]}" < /dev/null > "$W/report_$mode.log" 2>&1; then
      echo "| $label | FAILED: $(tail -2 "$W/report_$mode.log" | tr '\n|' ' /') | | | |"; status=1; ok=0; break
    fi
    t1=$(now)
    awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.3f\n", b - a}' >> "$W/t_$mode"
  done
  [ $ok = 1 ] || continue
  outs=$(check_outputs "$W/report_$mode.log" "$W/report_$mode") || status=1
  s=$(median < "$W/t_$mode")
  awk -v l="$label" -v s="$s" -v n="$NRUNS" -v o="$outs" 'BEGIN{printf "| %s | %.1f | %.2f | %.3f | %s |\n", l, s, n / s, s / n, o}'
done
echo
sed -n 's/^report: /report: /p' "$W/report_default.log" 2> /dev/null | head -1
echo
echo "load average at the end: $(load)"
echo
exit $status
