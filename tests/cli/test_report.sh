#!/usr/bin/env bash
# dynmm report on results files with planted effects (tests/reference/check_report.py make):
#  - every cell of the default and configured tables against NumPy (mean, sd over seeds) and SciPy
#    (Wilcoxon across users for one seed, paired t over seeds for several), Holm over each table,
#    the marks, best / second best, and the same numbers and marks in Markdown and LaTeX
#  - a baseline in another configuration of a sweep (model[group.key=value])
#  - 2 ranks give the same tables as 1
#  - figures: gnuplot scripts and data kept, PNG and PDF files real; axes named by quantity and unit, a
#    second quantity on a labelled right axis, one x value as bars, distinct captions, fitted y ranges,
#    flat models left out of sweep curves; report.tex compiles with pdflatex, Type 1 / TrueType fonts
#    only (pdffonts)
#  - baselines per table (report.baselines) in every table, every test in *_tests.csv, warnings where a
#    test cannot mean much (few seeds, few users, ties)
#  - errors name the problem (unknown metric, spec key, missing input)
set -u
PY=/usr/bin/python3; ref=tests/reference/check_report.py; B=$DM_BUILD/dynmm
W=$DM_TMP/report; rm -rf "$W"; mkdir -p "$W"
fail() { echo "FAIL: $*"; exit 1; }
$PY $ref make "$B" "$W/data" || fail "cannot make the test results"
quick=(--set stats.bootstrap=200)

# 1. defaults on one configuration with variants and a points group
$B report "$W/data/single" --set report.out="$W/r1" "${quick[@]}" > "$W/r1.log" 2>&1 || { cat "$W/r1.log"; fail "report (defaults)"; }
cat "$W/r1.log"
for f in test_full test_uni99 test_full_drop; do
  for e in .tex _tabular.tex .md .csv _tests.csv; do [ -s "$W/r1/$f$e" ] || fail "missing $f$e"; done
done
$PY $ref check "$W/data/single" "$W/r1" test_full test_uni99 test_full_drop || fail "tables differ from NumPy/SciPy"
for f in test_full_models test_full_drop latency stream_mean; do
  for e in gp dat; do [ -s "$W/r1/$f.$e" ] || fail "missing $f.$e"; done
  if command -v gnuplot > /dev/null; then
    [ "$(head -c 4 "$W/r1/$f.png" | od -An -c | tr -d ' ')" = "211PNG" ] || fail "$f.png is not a PNG"
    [ "$(head -c 4 "$W/r1/$f.pdf")" = "%PDF" ] || fail "$f.pdf is not a PDF"
    [ "$(stat -c %s "$W/r1/$f.png")" -gt 20000 ] || fail "$f.png is only $(stat -c %s "$W/r1/$f.png") bytes"
    [ "$(stat -c %s "$W/r1/$f.pdf")" -gt 5000 ] || fail "$f.pdf is only $(stat -c %s "$W/r1/$f.pdf") bytes"
  fi
done
grep -q 'index 1 using 1:2 with linespoints' "$W/r1/test_full_drop.gp" || fail "the variant curve has no second series"
grep -q 'set xlabel "prompt length L (tokens)"' "$W/r1/latency.gp" || fail "latency x label"
grep -q 'title "static aligner"' "$W/r1/stream_mean.gp" && grep -q 'set xlabel "window"' "$W/r1/stream_mean.gp" || fail "stream.h5: no curve per window"
[ "$(grep -vc '^#\|^$' "$W/r1/stream_mean.dat")" = 12 ] || fail "stream_mean.dat: expected 2 variants x 6 windows"
[ "$(grep -vc '^#\|^$' "$W/r1/latency.dat")" = 10 ] || fail "latency.dat: expected 2 series of 5 points"
if command -v gnuplot > /dev/null; then
  rm "$W/r1/latency.png"; (cd "$W/r1" && gnuplot latency.gp) && [ -s "$W/r1/latency.png" ] || fail "the kept script does not rerun"
fi
# figures a venue accepts: axes named by quantity and unit, one quantity per axis (losses left,
# seconds on a labelled right axis), one x value drawn as bars, distinct captions naming the data
G=$W/r1/train_llm_curve.gp
grep -q 'set ylabel "loss"' "$G" && grep -q 'set y2label "seconds per epoch"' "$G" && grep -q 'axes x1y2 .*title "time (right axis)"' "$G" ||
  { cat "$G"; fail "the training curve: losses and seconds are not on two labelled axes"; }
[ "$(grep -c 'axes x1y2' "$G")" = 1 ] || fail "the training curve: only the seconds belong on the right axis"
G=$W/r1/one_latency.gp
grep -q 'set style data histograms' "$G" && grep -q 'set xlabel "prompt tokens L = 10"' "$G" && grep -q 'set ylabel "seconds per batch"' "$G" ||
  { cat "$G"; fail "latency at one prompt length: not bars of seconds per batch at L = 10"; }
[ "$(grep -v '^#' "$W/r1/one_latency.dat" | cut -f1 | tr '\n' '|')" = "llm median|llm p95|llm_explain median|" ] ||
  { cat "$W/r1/one_latency.dat"; fail "latency bars: the categories are not the columns without their shared unit"; }
grep -q 'batches of 16 users x 20 candidates' "$W/r1/index.md" || fail "the latency caption does not say what a batch is"
grep -h '^set [xy]2*label' "$W"/r1/*.gp | grep -q '"value"\|"score"\|""$' && fail "an axis labelled value, score or nothing"
caps=$(grep -c '^\*Figure' "$W/r1/index.md"); [ "$caps" -ge 6 ] || fail "expected 6 figures, $caps captions"
[ "$(grep '^\*Figure' "$W/r1/index.md" | sed 's/^\*Figure [^ ]* //' | sort -u | wc -l)" = "$caps" ] || fail "two figures with the same caption"
for f in "$W"/r1/*.gp; do
  grep -q 'set style data histograms' "$f" && continue
  grep -q '^set yrange \[' "$f" || fail "$(basename "$f"): a curve without a y range fitted to its data"
done

# 2. a report config: a two-protocol table, labels, a filter, figures of every kind
cat > "$W/paper.cfg" <<'EOF'
report: {
  tables = ["name=main; split=test; protocols=full,uni99; models=pop,ease,sasrec; metrics=hit@10,ndcg@10,mrr; baseline=ease; caption=Main results.",
            "name=drop; models=sasrec,sasrec@drop_visual_*; metrics=ndcg@10,hit@20; baseline=sasrec"];
  figures = ["name=dropbars; kind=bars; models=sasrec,sasrec@drop_visual_*; metrics=hit@10,ndcg@10",
             "name=dropcurve; kind=curve; x=suffix; models=sasrec@drop_*; metrics=mrr; xlabel=share of items without the modality (%)",
             "name=lat; kind=curve; data=latency; x=column:prompt_len; metrics=seconds; logx=true"];
  labels = ["sasrec=SASRec$^{*}$", "ease=EASE"];
};
stats: { bootstrap = 200; };
EOF
$B report "$W/paper.cfg" "$W/data/single/results.h5" --set report.out="$W/r2" > "$W/r2.log" 2>&1 || { cat "$W/r2.log"; fail "report (paper.cfg)"; }
$PY $ref check "$W/data/single" "$W/r2" main drop || fail "configured tables"
grep -q 'multicolumn{3}{c}{full ranking} & \\multicolumn{3}{c}{1+99 uniform}' "$W/r2/main.tex" || fail "no protocol column groups"
grep -q 'cmidrule(lr){2-4}\\cmidrule(lr){5-7}' "$W/r2/main.tex" || fail "no cmidrules"
grep -q 'SASRec\$^{\*}\$ &' "$W/r2/main.tex" || fail "the LaTeX label was not passed through"
grep -q 'Main results.' "$W/r2/main.tex" || fail "caption"
grep -q 'set logscale x' "$W/r2/lat.gp" || fail "logx"
grep -q 'share of items without the modality' "$W/r2/dropcurve.gp" || fail "xlabel"
[ "$(grep -c '^$' "$W/r2/dropcurve.dat")" -ge 2 ] || fail "dropcurve: one series only"
if command -v pdflatex > /dev/null && kpsewhich booktabs.sty > /dev/null 2>&1; then
  cat > "$W/r2/paper.tex" <<'EOF'
\documentclass[twocolumn]{article}
\usepackage{booktabs}
\usepackage{graphicx}
\begin{document}
\input{main.tex}
\begin{table}[t]\centering\input{drop_tabular.tex}\end{table}
\begin{figure}[t]\centering\includegraphics{dropbars.pdf}\end{figure}
\end{document}
EOF
  for doc in paper report; do
    (cd "$W/r2" && timeout 120 pdflatex -interaction=nonstopmode -halt-on-error $doc.tex > $doc.pdflatex.log 2>&1) ||
      { tail -20 "$W/r2/$doc.pdflatex.log"; fail "$doc.tex does not compile"; }
    [ "$(head -c 4 "$W/r2/$doc.pdf")" = "%PDF" ] || fail "no $doc.pdf"
  done
  grep -q 'Overfull' "$W/r2/paper.pdflatex.log" && echo "note: overfull boxes in paper.tex"
  # Type 1 (or embedded TrueType) fonts only: ACM's and IEEE's checks reject Type 3
  if command -v pdffonts > /dev/null; then
    for f in "$W/r2/report.pdf" "$W/r2/paper.pdf" "$W"/r2/*.pdf; do
      pdffonts "$f" > "$W/fonts.txt" 2>&1 || { cat "$W/fonts.txt"; fail "pdffonts $f"; }
      [ "$(tail -n +3 "$W/fonts.txt" | grep -c .)" -gt 0 ] || fail "$f: no font"
      tail -n +3 "$W/fonts.txt" | grep -q 'Type 3' && { cat "$W/fonts.txt"; fail "$f embeds Type 3 fonts"; }
      tail -n +3 "$W/fonts.txt" | awk '$0 !~ / yes +(yes|no) +(yes|no) +[0-9]+ +[0-9]+ *$/ {bad = 1} END {exit bad}' ||
        { cat "$W/fonts.txt"; fail "$f: a font is not embedded"; }
    done
    # with Latin Modern known to fontconfig (fonts-lmodern), the figures' fonts are Type 1C too:
    # Type 1 only, no TrueType
    if fc-list 2>/dev/null | grep -q "Latin Modern Sans"; then
      for f in "$W/r2/report.pdf" "$W/r2/paper.pdf" "$W"/r2/*.pdf; do
        pdffonts "$f" | tail -n +3 | grep -Ev ' Type 1C? ' | grep -q . && { pdffonts "$f"; fail "$f: a font that is not Type 1"; }
      done
      echo "ok: every PDF embeds Type 1 fonts only (figures in Latin Modern Sans, Type 1C)"
    fi
    if kpsewhich lmodern.sty > /dev/null 2>&1; then
      pdffonts "$W/r2/report.pdf" | grep -q 'LMRoman10-Regular *Type 1' || fail "report.pdf: not in Latin Modern (T1) though lmodern is installed"
    fi
    echo "ok: report.pdf, paper.pdf and every figure embed Type 1 / TrueType fonts only (pdffonts)"
  else
    echo "note: pdffonts absent (Debian: poppler-utils); fonts not checked"
  fi
  echo "ok: the tables and figures compile with pdflatex (booktabs)"
else
  echo "note: pdflatex or booktabs absent (Debian: texlive-latex-base texlive-latex-recommended); LaTeX not compiled"
fi

# 3. a sweep: mean +- sd over seeds, t-test over seeds, a baseline in another configuration
$B report "$W/data/sweep" --set report.out="$W/r3" --set 'report.baseline=sasrec[sasrec.hidden=32]' "${quick[@]}" > "$W/r3.log" 2>&1 ||
  { cat "$W/r3.log"; fail "report (sweep)"; }
$PY $ref check "$W/data/sweep" "$W/r3" test_full || fail "sweep table"
grep -q 'sasrec.hidden' "$W/r3.log" || fail "the varied key is not reported"
grep -q '^| Pop | – |' "$W/r3/test_full.md" || fail "popularity (the same in every configuration) is not shown once"
[ "$(grep -c '^| SASRec |' "$W/r3/test_full.md")" = 2 ] || fail "expected one SASRec row per hidden size"
grep -q 'set xtics (32, 64)' "$W/r3/test_full_hidden.gp" || fail "the sweep curve"
# the sweep curve leaves out Pop (flat: it would stretch the y range over SASRec's effect) and says so
grep -q 'title "Pop"' "$W/r3/test_full_hidden.gp" && fail "the sweep curve draws Pop, which no configuration changes"
grep -q 'Pop, the same in every configuration, left out' "$W/r3/index.md" || fail "the sweep caption does not name what it left out"
# 3 seeds: a t-test with 2 degrees of freedom, said in the table's CSV, legend and the log
grep -q 'Caution: 6 of the 6 tests cannot mean much (6 rest on 3 seeds, a t-test with 2 degrees of freedom)' "$W/r3/test_full.md" &&
  grep -q "warning: table 'test_full': Caution" "$W/r3.log" || fail "the sweep table does not warn that 3 seeds make weak tests"

# 4. two ranks: the same tables
$DM_MPIRUN -n 2 $B report "$W/data/sweep" --set report.out="$W/r4" --set 'report.baseline=sasrec[sasrec.hidden=32]' "${quick[@]}" \
  > "$W/r4.log" 2>&1 || { cat "$W/r4.log"; fail "report at 2 ranks"; }
for f in test_full.csv test_full_tests.csv test_full.tex test_full.md; do cmp -s "$W/r3/$f" "$W/r4/$f" || fail "$f differs at 2 ranks"; done
echo "ok: 2 ranks give the same tables"

# 5. errors
expect_err() { # pattern, args...
  local pat=$1; shift
  if $B report "$@" > "$W/err.log" 2>&1; then cat "$W/err.log"; fail "report $* succeeded"; fi
  grep -q "$pat" "$W/err.log" || { cat "$W/err.log"; fail "expected '$pat'"; }
}
expect_err "no metric 'hit@7'" "$W/data/single" --set report.out="$W/e" --set 'report.tables=name=t; metrics=hit@7'
expect_err "unknown key 'model'" "$W/data/single" --set report.out="$W/e" --set 'report.tables=name=t; model=pop'
expect_err "cannot open '$W/nothere'" "$W/nothere"
expect_err "0 configurations match" "$W/data/sweep" --set report.out="$W/e" --set 'report.baseline=sasrec[sasrec.hidden=48]'
$B report "$W/data/single" --set report.out="$W/r5" --set report.gnuplot= "${quick[@]}" > /dev/null 2>&1 || fail "report without gnuplot"
[ -s "$W/r5/latency.gp" ] && [ ! -e "$W/r5/latency.png" ] || fail "report.gnuplot = \"\" should write scripts only"
# a streaming run without an eval stage (stream.h5 only) is a run of its own, as in make quickstart
mkdir -p "$W/data/streamonly" && cp "$W/data/single/stream.h5" "$W/data/streamonly/"
$PY -c 'import h5py, sys
r = h5py.File(sys.argv[1], "r"); s = h5py.File(sys.argv[2], "r+")
for k in ("config", "format", "format_version"):
    if k in r.attrs and k not in s.attrs: s.attrs[k] = r.attrs[k]
s.attrs["format"] = "dynmm-stream"' "$W/data/single/results.h5" "$W/data/streamonly/stream.h5" || fail "cannot plant the stream-only run"
$B report "$W/data/single" "$W/data/streamonly" --set report.out="$W/r6" --set report.gnuplot= "${quick[@]}" > "$W/r6.log" 2>&1 ||
  { cat "$W/r6.log"; fail "report of a run with stream.h5 only"; }
[ "$(grep -vc '^#\|^$' "$W/r6/stream_mean.dat")" -ge 12 ] && [ -s "$W/r6/test_full.md" ] || fail "stream.h5-only run: no stream curves or tables"
# prompt.h5 beside results.h5: the LLM stage's sampled users make tables of their own ("<protocol>-llm")
# whose cells are means over those users only, read from prompt.h5
mkdir -p "$W/data/withllm" && cp "$W/data/single/results.h5" "$W/data/withllm/"
$PY -c 'import h5py, numpy as np, sys
r = h5py.File(sys.argv[1], "r"); p = h5py.File(sys.argv[2], "w")
p.attrs["format"] = np.bytes_("dynmm-prompt"); p.attrs["format_version"] = 2; p.attrs["config"] = r.attrs["config"]
r.copy("columns", p)
x = r["test/uni99/sasrec"][...]; rng = np.random.default_rng(7)
keep = rng.random(x.shape[0]) < 0.5
al = np.clip(x + rng.normal(0, 0.05, x.shape), 0, 1)
tied = al.copy(); tied[np.flatnonzero(keep)[:5]] = x[np.flatnonzero(keep)[:5]]  # 5 users differ from align: ties
few = np.clip(x + rng.normal(0, 0.1, x.shape), 0, 1); few[np.flatnonzero(keep)[8:]] = np.nan  # 8 users only
for m, y in (("sasrec", x.copy()), ("align", al), ("llm", np.clip(x + rng.normal(0, 0.05, x.shape), 0, 1)), ("llm_tied", tied),
             ("llm_few", few)):
    y[~keep] = np.nan; p["test/uni99/" + m] = y
o = r["columns/offsets"][...]; c = r["columns/chars"][...].tobytes().decode()
j = [c[o[i]:o[i + 1]] for i in range(len(o) - 1)].index("hit@10")
sys.stdout.write("%.6f %.6f %d\n" % (np.nanmean(p["test/uni99/sasrec"][:, j]), np.nanmean(p["test/uni99/llm"][:, j]), keep.sum()))' \
  "$W/data/single/results.h5" "$W/data/withllm/prompt.h5" > "$W/llm_means" || fail "cannot plant prompt.h5"
$B report "$W/data/withllm" --set report.out="$W/r7" --set report.gnuplot= "${quick[@]}" > "$W/r7.log" 2>&1 ||
  { cat "$W/r7.log"; fail "report with prompt.h5"; }
[ -s "$W/r7/test_uni99-llm.md" ] && grep -q "users of the LLM stage" "$W/r7/test_uni99-llm.md" || fail "no table of the LLM stage's users"
read -r m_sas m_llm n_llm < "$W/llm_means"
grep -q "| llm | " "$W/r7/test_uni99-llm.md" || fail "llm missing from test_uni99-llm"
$PY - "$W/r7/test_uni99-llm.csv" "$m_sas" "$m_llm" <<'PYEOF' || fail "test_uni99-llm: means are not over the LLM stage's users"
import csv, sys
want = {"sasrec": float(sys.argv[2]), "llm": float(sys.argv[3])}
rows = list(csv.DictReader(open(sys.argv[1])))
got = {}
for r in rows:
    if r["metric"] == "hit@10" and r["model"] in want:
        got[r["model"]] = float(r["mean"])
sys.exit(0 if got and all(abs(got[m] - want[m]) < 1e-4 for m in got) and len(got) == 2 else 1)
PYEOF
# significance in the LLM table: against the aligner (report.baselines "*-llm=align"), every test in
# test_uni99-llm_tests.csv, SciPy's p-values, and the warnings where a test cannot mean much (llm_tied: 5
# users differ from it; llm_few: at most 8 users) in the CSV, the legend and the log
$PY $ref check "$W/data/withllm" "$W/r7" test_uni99-llm || fail "test_uni99-llm: tests"
[ "$(grep -c ',align,users,' "$W/r7/test_uni99-llm_tests.csv")" = 12 ] || fail "test_uni99-llm_tests.csv: expected 4 models x 3 metrics against align"
grep -q "llm_few,.*only [0-9] users" "$W/r7/test_uni99-llm_tests.csv" && grep -q "llm_tied,.*ties: [0-5] of" "$W/r7/test_uni99-llm_tests.csv" ||
  fail "test_uni99-llm_tests.csv: no warning on the tests of 8 users or of 5 differing users"
grep -q "warning: table 'test_uni99-llm': Caution: " "$W/r7.log" || fail "the log does not warn about the weak tests"
# report.baselines: a rule per table; a rule whose model is absent falls through; a bad rule is refused
$B report "$W/data/withllm" --set report.out="$W/r8" --set report.gnuplot= --set 'report.baselines=*-llm=nothere,*-llm=llm' \
  "${quick[@]}" > "$W/r8.log" 2>&1 || { cat "$W/r8.log"; fail "report with report.baselines"; }
grep -q "than llm of the same configuration" "$W/r8/test_uni99-llm.md" && grep -q "than Pop of" "$W/r8/test_full.md" ||
  fail "report.baselines: the LLM table is not compared with llm, or another table is"
expect_err "rule 'llm' is not TABLE=MODEL" "$W/data/withllm" --set report.out="$W/e" --set 'report.baselines=llm'
# report.baseline absent from a table: the table's first model, with a warning
$B report "$W/data/withllm" --set report.out="$W/r9" --set report.gnuplot= --set report.baseline=ease --set 'report.baselines=[]' \
  "${quick[@]}" > "$W/r9.log" 2>&1 || { cat "$W/r9.log"; fail "report with report.baseline absent from a table"; }
grep -q "report.baseline 'ease' has no results in it; comparing with sasrec" "$W/r9.log" && grep -q "than SASRec of" "$W/r9/test_uni99-llm.md" ||
  { cat "$W/r9.log"; fail "report.baseline absent from the LLM table: no fallback to its first model, or no warning"; }
grep -q "test_uni99-llm" "$W/r1.log" && fail "a run without prompt.h5 has LLM tables"
# without report.out, a run directory's report goes beside its results, never into the cwd
rm -rf "$W/data/single/report"
(cd "$W" && $B report data/single --set report.gnuplot= "${quick[@]}" > /dev/null 2>&1) || fail "report with the default report.out"
[ -s "$W/data/single/report/index.md" ] && [ ! -e "$W/report" ] || fail "the default report.out of a run directory should be DIR/report"
echo ok
