#!/usr/bin/env bash
# quickstart.sh: the main job on the embedded default (called by `make quickstart`).
# Runs the whole pipeline on synthetic data under mpirun with 2 ranks: configs/quickstart.cfg
# (SASRec, EASE, popularity, the multimodal aligner, the in-suite language model, the LLM
# recommender, evaluation) and configs/quickstart-stream.cfg on top of it (the online adapter under
# the prequential protocol, then the LLM recommenders on the latents it served in the last window),
# then the report with tables and figures.
set -eu -o pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
NP=${NP:-2}
if [ "$(id -u)" = 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
export OMPI_MCA_btl_vader_single_copy_mechanism=${OMPI_MCA_btl_vader_single_copy_mechanism:-none}
run() { mpirun --oversubscribe --bind-to none -n "$NP" "$BUILD/dynmm" "$@"; }
t0=$(date +%s)
echo "== dynmm quickstart: the whole pipeline on synthetic data, $NP MPI ranks"
echo
echo "== 1/3 the recommender pipeline (configs/quickstart.cfg)"
run run configs/quickstart.cfg "$@"
echo
echo "== 2/3 streaming windows with the online adapter (configs/quickstart-stream.cfg)"
mkdir -p runs
run run configs/quickstart.cfg configs/quickstart-stream.cfg "$@" | tee runs/quickstart-stream.log.part
# keep the log of the last run that scored the windows (a rerun with nothing to do prints no tables)
if grep -q "drifting users; paired" runs/quickstart-stream.log.part; then mv runs/quickstart-stream.log.part runs/quickstart-stream.log
else rm -f runs/quickstart-stream.log.part; fi
echo
echo "== 3/3 report"
"$BUILD/dynmm" report runs/quickstart --set report.out=runs/quickstart/report --set stats.bootstrap=1000 -q
"$BUILD/dynmm" report runs/quickstart-stream --set report.out=runs/quickstart-stream/report --set stats.bootstrap=1000 -q
echo
echo "== what was produced"
"$BUILD/dynmm" info runs/quickstart/dataset.h5 | head -12
ls runs/quickstart/report/*.md 2>/dev/null | head -20 | sed 's/^/  /'
[ -f runs/quickstart/report/index.md ] && { echo; sed -n 1,60p runs/quickstart/report/index.md; }
if grep -q "drifting users; paired" runs/quickstart-stream.log 2>/dev/null; then
  echo; echo "== the online adapter under planted drift (per-user NDCG@10 over the streaming windows)"; echo
  awk '/(drifting|stable) users; paired/ { p = 1; print; next } p && /^    / { print; next } { p = 0 }' runs/quickstart-stream.log | sed 's/^ *//'
fi
if [ -f runs/quickstart-stream/report/test_uni19-llm.md ]; then
  echo; echo "== the LLM recommenders on the adapter's dynamic latents, last streaming window (MODEL) vs static latents (MODEL@static)"; echo
  sed -n '1,30p' runs/quickstart-stream/report/test_uni19-llm.md
  [ -f runs/quickstart-stream/report/test_uni19-llm_static.md ] && { echo; sed -n '1,30p' runs/quickstart-stream/report/test_uni19-llm_static.md; }
fi
echo
echo "Done in $(( $(date +%s) - t0 ))s. Outputs in runs/quickstart/ and runs/quickstart-stream/ (HDF5; 'dynmm info FILE'"
echo "describes any of them); tables and figures in runs/quickstart/report/ and, per streaming window,"
echo "in runs/quickstart-stream/report/ (report.tex compiles with pdflatex)."
echo "Next: 'make check' runs the tests; README.md shows how to run on your own data and on Slurm."
