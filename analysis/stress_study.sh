#!/usr/bin/env bash
# analysis/stress_study.sh: the stress experiments of the multimodal aligner on the real data,
# TikTok (cf from SASRec + visual + audio, no text) and Amazon Beauty (cf + LSA text of titles,
# brands and categories): modality dropout of each modality and pair at 0..100% of the items
# (align@drop_<set>_<rate>, and the complete removals align@without_<set>), Gaussian noise on each
# modality at 30..-10 dB (align@noise_<modality>_<snr>), shuffled features (align@shuffle_<m>),
# and the cold-item subsets (align@cold, sasrec@cold), all scored on the same users and stored
# candidate sets as the intact aligner; `dynmm report` then tables them with paired Wilcoxon tests
# against the intact aligner (Holm over each table) and draws the dropout curve and bars and the
# noise curve.
#
#   analysis/stress_study.sh [OUT]                 default OUT=/tmp/dynmm-stress (never the repo)
#
# Environment: DM_BIN (default build/dynmm), DM_NP ranks (default 2), DM_MPIRUN (default
# "mpirun --oversubscribe --bind-to none"), DM_DATA (default ../shared/data: the directory holding
# tiktok/ and amazon-beauty/), BEAUTY_SASREC_EPOCHS (default 30: configs/amazon-beauty.cfg trains
# SASRec for up to 100 epochs, ~15 minutes on two idle cores; the stress study is about the
# aligner's degradation, so it trains fewer), STUDIES (default "tiktok beauty").
# Stages whose output is current are skipped, so an interrupted study resumes where it stopped.
# Output: OUT/<study>/{dataset,cf,align,results}.h5, OUT/<study>/report/ (tables .md/.tex/.csv and
# figures .png/.pdf), OUT/<study>.log, and the Markdown tables printed at the end.
set -eu
cd "$(dirname "$0")/.."
OUT=${1:-/tmp/dynmm-stress}
B=${DM_BIN:-build/dynmm}
NP=${DM_NP:-2}
MPIRUN=${DM_MPIRUN:-mpirun --oversubscribe --bind-to none}
DATA=${DM_DATA:-../shared/data}
STUDIES=${STUDIES:-tiktok beauty}
if [ "$(id -u)" = 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
[ -x "$B" ] || { echo "error: no $B (run make)" >&2; exit 1; }
mkdir -p "$OUT"

# every study: pop, SASRec and the aligner scored; the stress variants of the aligner on the test
# split under every protocol; the cold-item subsets of the aligner and of SASRec
common=(--set 'run.stages=[ingest,train-cf,align,eval]' --set 'cf.models=[pop,sasrec]'
        --set 'eval.models=[pop,sasrec,align]' --set stress.enabled=true --set 'stress.models=[align,sasrec]')
# the marks come from the paired Wilcoxon tests; 1000 bootstrap resamples (not 10000) for the
# confidence intervals of *_tests.csv keep the report of Beauty's 22k users to minutes
labels=(--set stats.bootstrap=1000 --set 'report.labels=["drop=items whose modality set is dropped (%)","noise=SNR (dB) of the noisy modality"]')

run_study() { # name, config, extra --set...
  local name=$1 cfg=$2; shift 2
  local t0=$SECONDS
  echo "== $name: $cfg, $NP ranks, run dir $OUT/$name"
  $MPIRUN -n "$NP" "$B" run "$cfg" --set run.dir="$OUT/$name" "${common[@]}" "$@" < /dev/null > "$OUT/$name.log" 2>&1 ||
    { tail -30 "$OUT/$name.log"; echo "error: $name failed (log: $OUT/$name.log)" >&2; exit 1; }
  grep -E "^\[|^stress|wrote" "$OUT/$name.log" | sed 's/^/   /'
  echo "   pipeline: $((SECONDS - t0)) s"
  t0=$SECONDS
  "$B" report "$OUT/$name/results.h5" --set report.out="$OUT/$name/report" "${labels[@]}" > "$OUT/$name.report.log" 2>&1 ||
    { cat "$OUT/$name.report.log"; echo "error: report of $name failed" >&2; exit 1; }
  echo "   report: $((SECONDS - t0)) s -> $OUT/$name/report/"
}

for s in $STUDIES; do
  case $s in
    tiktok)
      run_study tiktok configs/tiktok.cfg \
        --set data.inter="$DATA/tiktok/train.tsv" --set data.valid="$DATA/tiktok/valid.tsv" --set data.test="$DATA/tiktok/test.tsv" \
        --set modal.visual.path="$DATA/tiktok/image_feat.npy" --set modal.audio.path="$DATA/tiktok/audio_feat.npy" ;;
    beauty)
      run_study beauty configs/amazon-beauty.cfg \
        --set data.inter="$DATA/amazon-beauty/reviews_Beauty_5.json.gz" --set data.meta="$DATA/amazon-beauty/meta_Beauty.json.gz" \
        --set sasrec.epochs="${BEAUTY_SASREC_EPOCHS:-30}" ;;
    *) echo "error: unknown study '$s' (tiktok, beauty)" >&2; exit 1 ;;
  esac
done

for s in $STUDIES; do
  echo
  echo "# $s"
  for t in test_full test_full_without test_full_drop test_full_noise test_full_shuffle test_full_cold; do
    [ -s "$OUT/$s/report/$t.md" ] && { echo; cat "$OUT/$s/report/$t.md"; echo; }
  done
done
